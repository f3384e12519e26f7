/*
 * The keystore: the device's private key behind a URI, with one interface
 * for a PEM file (mode 0600, refused when group or others can read it), a
 * PKCS#11 token (p11.c) and memory (simulated devices, server-generated
 * keys). Whatever the backend, callers get an EVP_PKEY that signs in place.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "common/util.h"
#include "core/pki.h"
#include "device/dev.h"

struct iotp_keystore {
	enum iotp_key_backend backend;
	EVP_PKEY *pkey;              /* owned */
	struct p11_key *p11;         /* PKCS#11 only */
	char uri[1280];              /* as opened, without a PIN; "" for memory */
};

iotp_rc iotp_key_alg_parse(const char *s, enum iotp_key_alg *out, struct iotp_err *err)
{
	if (s != NULL && strcasecmp(s, "ec-p256") == 0)
		*out = IOTP_KEY_EC_P256;
	else if (s != NULL && strcasecmp(s, "ec-p384") == 0)
		*out = IOTP_KEY_EC_P384;
	else if (s != NULL && strcasecmp(s, "rsa-2048") == 0)
		*out = IOTP_KEY_RSA_2048;
	else
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "unknown key type '%s': use ec-p256, ec-p384 or rsa-2048",
		                    s != NULL ? s : "");
	return IOTP_OK;
}

static enum pki_key_type pki_type(enum iotp_key_alg alg)
{
	switch (alg) {
	case IOTP_KEY_EC_P384: return PKI_KEY_EC_P384;
	case IOTP_KEY_RSA_2048: return PKI_KEY_RSA_2048;
	case IOTP_KEY_EC_P256: break;
	}
	return PKI_KEY_EC_P256;
}

static int is_pkcs11(const char *uri)
{
	return strncasecmp(uri, "pkcs11:", 7) == 0;
}

/* The file path of a file: URI or plain path. */
static const char *file_path(const char *uri)
{
	return strncmp(uri, "file:", 5) == 0 ? uri + 5 : uri;
}

/* Splits path into its directory (out) and base name. */
static iotp_rc split_path(const char *path, char *dir, size_t size, const char **base,
                          struct iotp_err *err)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		util_strlcpy(dir, ".", size);
		*base = path;
	} else if (slash == path) {
		util_strlcpy(dir, "/", size);
		*base = slash + 1;
	} else {
		if ((size_t)(slash - path) >= size)
			return iotp_err_set(err, IOTP_ERR_INVALID, "path too long: %s", path);
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		*base = slash + 1;
	}
	if (**base == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID, "not a file path: %s", path);
	return IOTP_OK;
}

static iotp_rc write_key_file(EVP_PKEY *key, const char *path, struct iotp_err *err)
{
	char dir[4096];
	const char *base;
	char *pem = NULL;
	iotp_rc rc;

	if ((rc = split_path(path, dir, sizeof(dir), &base, err)) != IOTP_OK)
		return rc;
	if ((rc = pki_key_to_pem(key, &pem, err)) != IOTP_OK)
		return rc;
	rc = dev_write_durable(dir, base, "key", pem, strlen(pem), 0600, err);
	iotp_free_secret(pem);
	return rc;
}

iotp_rc iotp_keystore_generate(const char *uri, enum iotp_key_alg alg, struct iotp_err *err)
{
	struct p11_uri u;
	struct stat st;
	EVP_PKEY *key = NULL;
	iotp_rc rc;

	if (uri == NULL || uri[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID, "no key URI");
	if (is_pkcs11(uri)) {
		if ((rc = p11_uri_parse(uri, &u, err)) != IOTP_OK)
			return rc;
		rc = p11_generate(&u, alg, err);
		p11_uri_cleanup(&u);
		return rc;
	}
	if (lstat(file_path(uri), &st) == 0)
		return iotp_err_set(err, IOTP_ERR_EXISTS, "key file %s exists already",
		                    file_path(uri));
	if ((rc = pki_key_generate(pki_type(alg), &key, err)) != IOTP_OK)
		return rc;
	rc = write_key_file(key, file_path(uri), err);
	EVP_PKEY_free(key);
	return rc;
}

static iotp_rc wrap(enum iotp_key_backend backend, EVP_PKEY *key, struct p11_key *p11,
                    const char *uri, iotp_keystore **out, struct iotp_err *err)
{
	iotp_keystore *ks = calloc(1, sizeof(*ks));

	if (ks == NULL) {
		EVP_PKEY_free(key);
		p11_close(p11);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	}
	ks->backend = backend;
	ks->pkey = key;
	ks->p11 = p11;
	util_strlcpy(ks->uri, uri, sizeof(ks->uri));
	*out = ks;
	return IOTP_OK;
}

iotp_rc iotp_keystore_open(const char *uri, iotp_keystore **out, struct iotp_err *err)
{
	struct p11_uri u;
	struct p11_key *k = NULL;
	EVP_PKEY *key = NULL;
	char pub[1280];
	iotp_rc rc;

	if (uri == NULL || uri[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID, "no key URI");
	if (is_pkcs11(uri)) {
		if ((rc = p11_uri_parse(uri, &u, err)) != IOTP_OK)
			return rc;
		rc = p11_uri_public(&u, pub, sizeof(pub), err);
		if (rc == IOTP_OK)
			rc = p11_open(&u, &k, &key, err);
		p11_uri_cleanup(&u);
		if (rc != IOTP_OK)
			return rc;
		return wrap(IOTP_KEYSTORE_PKCS11, key, k, pub, out, err);
	}
	if ((rc = pki_key_read_file(file_path(uri), &key, err)) != IOTP_OK)
		return rc;
	return wrap(IOTP_KEYSTORE_FILE, key, NULL, uri, out, err);
}

iotp_rc iotp_keystore_generate_memory(enum iotp_key_alg alg, iotp_keystore **out,
                                      struct iotp_err *err)
{
	EVP_PKEY *key = NULL;
	iotp_rc rc;

	if ((rc = pki_key_generate(pki_type(alg), &key, err)) != IOTP_OK)
		return rc;
	return wrap(IOTP_KEYSTORE_MEMORY, key, NULL, "", out, err);
}

iotp_rc iotp_keystore_from_pem(const char *pem, size_t len, iotp_keystore **out,
                               struct iotp_err *err)
{
	BIO *bio;
	EVP_PKEY *key;
	iotp_rc rc;

	if (pem == NULL || len == 0 || len > DEV_PEM_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "no private key PEM");
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (key == NULL)
		return iotp_err_ssl(err, IOTP_ERR_INVALID, "not a PEM private key");
	if ((rc = pki_key_check(key, err)) != IOTP_OK) {
		EVP_PKEY_free(key);
		return rc;
	}
	return wrap(IOTP_KEYSTORE_MEMORY, key, NULL, "", out, err);
}

iotp_rc iotp_keystore_save(iotp_keystore *ks, const char *path, struct iotp_err *err)
{
	if (ks->backend == IOTP_KEYSTORE_PKCS11)
		return iotp_err_set(err, IOTP_ERR_STATE, "a token key cannot be written to a file");
	return write_key_file(ks->pkey, file_path(path), err);
}

iotp_rc iotp_keystore_remove(const char *uri, struct iotp_err *err)
{
	struct p11_uri u;
	char dir[4096];
	const char *base;
	iotp_rc rc;

	if (uri == NULL || uri[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID, "no key URI");
	if (is_pkcs11(uri)) {
		if ((rc = p11_uri_parse(uri, &u, err)) != IOTP_OK)
			return rc;
		rc = p11_remove(&u, err);
		p11_uri_cleanup(&u);
		return rc;
	}
	if (unlink(file_path(uri)) != 0)
		return iotp_err_set(err, errno == ENOENT ? IOTP_ERR_NOT_FOUND : IOTP_ERR_IO,
		                    "remove %s: %s", file_path(uri), strerror(errno));
	if ((rc = split_path(file_path(uri), dir, sizeof(dir), &base, err)) != IOTP_OK)
		return rc;
	return dev_fsync_dir(dir, err);
}

void iotp_keystore_free(iotp_keystore *ks)
{
	if (ks == NULL)
		return;
	/* The EVP_PKEY of a token key refers to libp11's objects: free it
	 * before the module can go. */
	EVP_PKEY_free(ks->pkey);
	p11_close(ks->p11);
	free(ks);
}

iotp_rc iotp_keystore_info(iotp_keystore *ks, struct iotp_key_info *out, struct iotp_err *err)
{
	struct iotp_key_info info;
	iotp_rc rc;

	memset(&info, 0, sizeof(info));
	info.backend = ks->backend;
	if (EVP_PKEY_get_base_id(ks->pkey) == EVP_PKEY_RSA)
		info.alg = IOTP_KEY_RSA_2048;
	else if (EVP_PKEY_get_bits(ks->pkey) > 256)
		info.alg = IOTP_KEY_EC_P384;
	else
		info.alg = IOTP_KEY_EC_P256;
	info.extractable = 1;
	if ((rc = pki_pubkey_fingerprint(ks->pkey, info.fingerprint, err)) != IOTP_OK)
		return rc;
	if (ks->backend == IOTP_KEYSTORE_PKCS11 &&
	    (rc = p11_attributes(ks->p11, &info, err)) != IOTP_OK)
		return rc;
	*out = info;
	return IOTP_OK;
}

EVP_PKEY *iotp_keystore_pkey(iotp_keystore *ks)
{
	return ks->pkey;
}

iotp_rc iotp_keystore_public_pem(iotp_keystore *ks, char **out, size_t *len,
                                 struct iotp_err *err)
{
	char *pem = NULL;
	iotp_rc rc = pki_pubkey_to_pem(ks->pkey, &pem, err);

	if (rc != IOTP_OK)
		return rc;
	*out = pem;
	if (len != NULL)
		*len = strlen(pem);
	return IOTP_OK;
}

const char *keystore_uri(const iotp_keystore *ks)
{
	return ks->uri;
}

enum iotp_key_backend keystore_backend(const iotp_keystore *ks)
{
	return ks->backend;
}
