/*
 * PKI, part 1: keys, CAs and certificate issuance (see pki.h; parsing,
 * encoding and checks of existing certificates are in pki_cert.c).
 *
 * Issuance is on the hot path of every provisioning flow
 * (CreateCertificateFromCsr, fleet provisioning, EST), so pki_cert_issue
 * skips OpenSSL 3.0's generic machinery where that loses nothing:
 * - the CSR's SubjectPublicKeyInfo, decoded and verified once by
 *   pki_csr_parse, is copied into the certificate byte for byte instead of
 *   going through X509_set_pubkey (an encoder and decoder round trip that
 *   costs more than the signature itself);
 * - the fixed extensions are written from their DER encodings instead of
 *   through the X509V3 configuration-string parser.
 * CA and server certificates are rare and take the plain API for the key.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/util.h"
#include "core/pki.h"
#include "core/pki_int.h"

#define KEY_FILE_MAX (1024 * 1024)
#define CERT_FILE_MAX (1024 * 1024)
#define MAX_DAYS (100 * 366)
#define MAX_SKEW (7 * 86400)
#define CN_MAX 64        /* ub-common-name */
#define RSA_MAX_BITS 16384
#define DEFAULT_KEY_CN "AWS IoT Certificate" /* what AWS puts in its own */

/* Extension values that never change, DER-encoded. */
static const unsigned char bc_leaf[] = {0x30, 0x00};                 /* CA:FALSE */
static const unsigned char bc_root[] = {0x30, 0x03, 0x01, 0x01, 0xff}; /* CA:TRUE */
static const unsigned char bc_issuing[] = {0x30, 0x06, 0x01, 0x01, 0xff,
                                           0x02, 0x01, 0x00};         /* CA:TRUE, pathlen 0 */
static const unsigned char ku_ca[] = {0x03, 0x02, 0x01, 0x06};       /* keyCertSign, cRLSign */
static const unsigned char ku_sig[] = {0x03, 0x02, 0x07, 0x80};      /* digitalSignature */
static const unsigned char ku_sig_enc[] = {0x03, 0x02, 0x05, 0xa0};  /* + keyEncipherment */
static const unsigned char eku_client[] = {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01,
                                           0x05, 0x05, 0x07, 0x03, 0x02};
static const unsigned char eku_server[] = {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01,
                                           0x05, 0x05, 0x07, 0x03, 0x01};

/* ---- keys ---------------------------------------------------------------- */

iotp_rc pki_key_type_parse(const char *s, enum pki_key_type *out, struct iotp_err *err)
{
	static const struct {
		const char *name;
		enum pki_key_type type;
	} types[] = {
		{"ec-p256", PKI_KEY_EC_P256},
		{"ec-p384", PKI_KEY_EC_P384},
		{"rsa-2048", PKI_KEY_RSA_2048},
	};

	for (size_t i = 0; s != NULL && i < IOTP_ARRAY_LEN(types); i++) {
		if (strcasecmp(s, types[i].name) == 0) {
			*out = types[i].type;
			return IOTP_OK;
		}
	}
	return iotp_err_set(err, IOTP_ERR_INVALID,
	                    "unknown key type \"%s\": use ec-p256, ec-p384 or rsa-2048",
	                    s != NULL ? s : "");
}

iotp_rc pki_key_generate(enum pki_key_type type, EVP_PKEY **out, struct iotp_err *err)
{
	EVP_PKEY *key = NULL;

	switch (type) {
	case PKI_KEY_EC_P256:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", (char *)"P-256");
		break;
	case PKI_KEY_EC_P384:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", (char *)"P-384");
		break;
	case PKI_KEY_RSA_2048:
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	default:
		return iotp_err_set(err, IOTP_ERR_INVALID, "unknown key type %d", (int)type);
	}
	if (key == NULL)
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "key generation failed");
	*out = key;
	return IOTP_OK;
}

/* Display name of a key type for messages ("DSA", "Ed25519"). */
static const char *key_type_name(EVP_PKEY *key)
{
	const char *n = EVP_PKEY_get0_type_name(key);

	if (n == NULL)
		return "unknown";
	if (strcasecmp(n, "ED25519") == 0)
		return "Ed25519";
	if (strcasecmp(n, "ED448") == 0)
		return "Ed448";
	return n;
}

static iotp_rc check_rsa(EVP_PKEY *key, struct iotp_err *err)
{
	BIGNUM *e = NULL;
	int bits = EVP_PKEY_get_bits(key);
	iotp_rc rc = IOTP_OK;

	if (bits < 2048)
		return iotp_err_set(err, IOTP_ERR_CERT,
		                    "RSA key of %d bits is too small: use at least 2048", bits);
	/* Verifying with a huge modulus costs the server seconds: a cheap DoS. */
	if (bits > RSA_MAX_BITS)
		return iotp_err_set(err, IOTP_ERR_CERT,
		                    "RSA key of %d bits is too large: use at most %d", bits,
		                    RSA_MAX_BITS);
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
		ERR_clear_error();
		return iotp_err_set(err, IOTP_ERR_CERT, "RSA key without a public exponent");
	}
	/* e = 1 would let anyone forge a signature, even e must be odd. */
	if (!BN_is_odd(e) || BN_num_bits(e) < 2)
		rc = iotp_err_set(err, IOTP_ERR_CERT,
		                  "RSA key with an even or trivial public exponent is not "
		                  "accepted: use 65537");
	BN_free(e);
	return rc;
}

static iotp_rc check_ec(EVP_PKEY *key, struct iotp_err *err)
{
	char group[80], enc[32];
	size_t glen = 0;
	int nid;

	if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING, enc, sizeof(enc),
	                                   NULL) == 1 &&
	    strcmp(enc, OSSL_PKEY_EC_ENCODING_EXPLICIT) == 0)
		return iotp_err_set(err, IOTP_ERR_CERT,
		                    "EC keys with explicit curve parameters are not accepted: "
		                    "use the named curve P-256, P-384 or P-521");
	if (EVP_PKEY_get_group_name(key, group, sizeof(group), &glen) != 1 || glen == 0) {
		ERR_clear_error();
		return iotp_err_set(err, IOTP_ERR_CERT,
		                    "EC key on an unnamed curve is not accepted: "
		                    "use P-256, P-384 or P-521");
	}
	nid = OBJ_txt2nid(group);
	if (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1 || nid == NID_secp521r1)
		return IOTP_OK;
	ERR_clear_error();
	return iotp_err_set(err, IOTP_ERR_CERT,
	                    "EC key on curve %s is not accepted: use P-256, P-384 or P-521",
	                    group);
}

iotp_rc pki_key_check(EVP_PKEY *key, struct iotp_err *err)
{
	if (key == NULL)
		return iotp_err_set(err, IOTP_ERR_CERT, "no public key");
	if (EVP_PKEY_is_a(key, "RSA"))
		return check_rsa(key, err);
	if (EVP_PKEY_is_a(key, "EC"))
		return check_ec(key, err);
	return iotp_err_set(err, IOTP_ERR_CERT,
	                    "%s keys are not accepted: use EC P-256 or RSA >= 2048",
	                    key_type_name(key));
}

/* Copies a memory BIO's content into a malloc'ed NUL-terminated string. */
static iotp_rc bio_to_string(BIO *bio, char **out, struct iotp_err *err)
{
	char *data = NULL, *s;
	long n = BIO_get_mem_data(bio, &data);

	if (n < 0 || data == NULL)
		n = 0;
	s = malloc((size_t)n + 1);
	if (s == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	if (n > 0)
		memcpy(s, data, (size_t)n);
	s[n] = '\0';
	*out = s;
	return IOTP_OK;
}

iotp_rc pki_key_to_pem(EVP_PKEY *key, char **out, struct iotp_err *err)
{
	/* secmem: the buffer is wiped when the BIO is freed. */
	BIO *bio = BIO_new(BIO_s_secmem());
	iotp_rc rc;

	if (bio == NULL)
		return iotp_err_ssl(err, IOTP_ERR_NOMEM, "BIO_new");
	if (key == NULL || PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "cannot encode the private key");
	else
		rc = bio_to_string(bio, out, err);
	BIO_free(bio);
	return rc;
}

iotp_rc pki_pubkey_to_pem(EVP_PKEY *key, char **out, struct iotp_err *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	iotp_rc rc;

	if (bio == NULL)
		return iotp_err_ssl(err, IOTP_ERR_NOMEM, "BIO_new");
	if (key == NULL || PEM_write_bio_PUBKEY(bio, key) != 1)
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "cannot encode the public key");
	else
		rc = bio_to_string(bio, out, err);
	BIO_free(bio);
	return rc;
}

iotp_rc pki_key_write_file(EVP_PKEY *key, const char *path, struct iotp_err *err)
{
	char *pem = NULL;
	iotp_rc rc;

	if ((rc = pki_key_to_pem(key, &pem, err)) != IOTP_OK)
		return rc;
	rc = util_write_file(path, pem, strlen(pem), 0600, err);
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	return rc;
}

/* Never prompt on a terminal for a pass phrase: a daemon has nobody to ask. */
static int no_password(char *buf, int size, int rwflag, void *ud)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)ud;
	return -1;
}

iotp_rc pki_key_read_file(const char *path, EVP_PKEY **out, struct iotp_err *err)
{
	struct stat st;
	unsigned char *data = NULL;
	size_t n = 0;
	int fd = -1;
	BIO *bio = NULL;
	EVP_PKEY *key = NULL;
	iotp_rc rc = IOTP_OK;

	/* Check the mode of the file actually read, not of a path that could be
	 * swapped between a stat() and an open(). */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = iotp_err_set(err, errno == ENOENT ? IOTP_ERR_NOT_FOUND : IOTP_ERR_IO,
		                  "open key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "key file %s is not a regular file", path);
		goto out;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_CONFIG,
		                  "key file %s has mode %04o: a private key must not be "
		                  "accessible by group or others (run: chmod 600 %s)",
		                  path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_size > KEY_FILE_MAX) {
		rc = iotp_err_set(err, IOTP_ERR_TOO_BIG, "key file %s is larger than %d bytes",
		                  path, KEY_FILE_MAX);
		goto out;
	}
	data = malloc((size_t)st.st_size + 1);
	if (data == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	while (n < (size_t)st.st_size) {
		ssize_t got = read(fd, data + n, (size_t)st.st_size - n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = iotp_err_set(err, IOTP_ERR_IO, "read %s: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	bio = BIO_new_mem_buf(data, (int)n);
	if (bio == NULL) {
		rc = iotp_err_ssl(err, IOTP_ERR_NOMEM, "BIO_new_mem_buf");
		goto out;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	if (key == NULL) {
		ERR_clear_error();
		rc = iotp_err_set(err, IOTP_ERR_CERT,
		                  "%s holds no readable PEM private key (encrypted keys are "
		                  "not supported)", path);
		goto out;
	}
	if ((rc = pki_key_check(key, err)) != IOTP_OK)
		goto out;
	*out = key;
	key = NULL;
out:
	EVP_PKEY_free(key);
	BIO_free(bio);
	if (data != NULL) {
		OPENSSL_cleanse(data, n);
		free(data);
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- building blocks of every certificate -------------------------------- */

void pki_ca_cleanup(struct pki_ca *ca)
{
	if (ca == NULL)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	ca->cert = NULL;
	ca->key = NULL;
}

/* Adds an extension given the DER of its value. */
static iotp_rc add_ext_der(X509 *x, int nid, int critical, const unsigned char *der,
                           size_t len, struct iotp_err *err)
{
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *ext = NULL;
	iotp_rc rc = IOTP_OK;

	if (os == NULL || ASN1_OCTET_STRING_set(os, der, (int)len) != 1 ||
	    (ext = X509_EXTENSION_create_by_NID(NULL, nid, critical, os)) == NULL ||
	    X509_add_ext(x, ext, -1) != 1)
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "add extension %s", OBJ_nid2sn(nid));
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	return rc;
}

/* RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
static iotp_rc key_id_of(X509 *x, unsigned char id[20], struct iotp_err *err)
{
	const ASN1_BIT_STRING *bits = X509_get0_pubkey_bitstr(x);
	unsigned int n = 0;

	if (bits == NULL)
		return iotp_err_set(err, IOTP_ERR_CERT, "certificate has no public key");
	if (EVP_Digest(ASN1_STRING_get0_data(bits), (size_t)ASN1_STRING_length(bits), id, &n,
	               EVP_sha1(), NULL) != 1 || n != 20)
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "SHA-1 of the public key");
	return IOTP_OK;
}

/* subjectKeyIdentifier of the certificate's own key. */
static iotp_rc add_ski(X509 *x, struct iotp_err *err)
{
	unsigned char der[22] = {0x04, 20};
	iotp_rc rc;

	if ((rc = key_id_of(x, der + 2, err)) != IOTP_OK)
		return rc;
	return add_ext_der(x, NID_subject_key_identifier, 0, der, sizeof(der), err);
}

/* authorityKeyIdentifier: the issuer's SKI, or the hash of its key when the
 * issuer carries none. */
static iotp_rc add_aki(X509 *x, X509 *issuer, struct iotp_err *err)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(issuer);
	unsigned char der[4 + 64];
	size_t n;
	iotp_rc rc;

	if (ski != NULL && ASN1_STRING_length(ski) > 0 &&
	    ASN1_STRING_length(ski) <= 64) {
		n = (size_t)ASN1_STRING_length(ski);
		memcpy(der + 4, ASN1_STRING_get0_data(ski), n);
	} else {
		n = 20;
		if ((rc = key_id_of(issuer, der + 4, err)) != IOTP_OK)
			return rc;
	}
	der[0] = 0x30;
	der[1] = (unsigned char)(n + 2);
	der[2] = 0x80; /* [0] keyIdentifier */
	der[3] = (unsigned char)n;
	return add_ext_der(x, NID_authority_key_identifier, 0, der, n + 4, err);
}

/* A new v3 certificate with a random positive 16-byte serial, the given
 * names and validity. notAfter is clamped to the issuer's own notAfter when
 * issuer is given: a certificate cannot outlive the CA that vouches for it. */
static iotp_rc cert_start(const X509_NAME *subject, X509 *issuer, int64_t not_before,
                          int64_t not_after, X509 **out, struct iotp_err *err)
{
	unsigned char serial[16];
	X509 *x = NULL;
	iotp_rc rc;

	if (issuer != NULL) {
		int64_t ca_end = 0;

		if (pki_cert_validity(issuer, NULL, &ca_end, NULL) == IOTP_OK && not_after > ca_end)
			not_after = ca_end;
		if (not_after <= not_before)
			return iotp_err_set(err, IOTP_ERR_CERT, "the issuing CA has expired");
	}
	if ((rc = util_random(serial, sizeof(serial), err)) != IOTP_OK)
		return rc;
	serial[0] &= 0x7f; /* positive */
	if (serial[0] == 0)
		serial[0] = 1; /* keep 16 bytes: DER forbids a leading zero byte */
	x = X509_new();
	if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1 ||
	    ASN1_STRING_set(X509_get_serialNumber(x), serial, (int)sizeof(serial)) != 1 ||
	    X509_set_subject_name(x, subject) != 1 ||
	    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer)
	                                           : subject) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) == NULL) {
		X509_free(x);
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "cannot build the certificate");
	}
	*out = x;
	return IOTP_OK;
}

/* SHA-256, or the hash matching the strength of a P-384/P-521 key. */
static const EVP_MD *sig_md(EVP_PKEY *key)
{
	if (EVP_PKEY_is_a(key, "EC")) {
		int bits = EVP_PKEY_get_bits(key);

		if (bits >= 512)
			return EVP_sha512();
		if (bits >= 384)
			return EVP_sha384();
	}
	return EVP_sha256();
}

static iotp_rc cert_sign(X509 *x, EVP_PKEY *key, struct iotp_err *err)
{
	if (X509_sign(x, key, sig_md(key)) <= 0)
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "signing the certificate failed");
	return IOTP_OK;
}

/* An X509_NAME holding only CN=cn. */
static iotp_rc name_cn(const char *cn, X509_NAME **out, struct iotp_err *err)
{
	X509_NAME *name;
	size_t n = cn != NULL ? strlen(cn) : 0;

	if (n == 0 || n > CN_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "common name must be 1 to %d characters", CN_MAX);
	name = X509_NAME_new();
	if (name == NULL || X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	                                               (const unsigned char *)cn, (int)n,
	                                               -1, 0) != 1) {
		X509_NAME_free(name);
		return iotp_err_ssl(err, IOTP_ERR_INVALID, "invalid common name \"%s\"", cn);
	}
	*out = name;
	return IOTP_OK;
}

static iotp_rc check_days(int days, struct iotp_err *err)
{
	if (days <= 0 || days > MAX_DAYS)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "validity of %d days is out of range 1..%d", days, MAX_DAYS);
	return IOTP_OK;
}

static iotp_rc check_ca(const struct pki_ca *ca, struct iotp_err *err)
{
	if (ca == NULL || ca->cert == NULL || ca->key == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "no CA to sign with");
	if (!pki_cert_is_ca(ca->cert))
		return iotp_err_set(err, IOTP_ERR_CERT,
		                    "the signing certificate is not a CA (basicConstraints)");
	return IOTP_OK;
}

/* ---- CAs ----------------------------------------------------------------- */

iotp_rc pki_ca_load(const char *cert_path, const char *key_path, struct pki_ca *out,
                    struct iotp_err *err)
{
	char *pem = NULL;
	size_t len = 0;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	iotp_rc rc;

	if ((rc = util_read_file(cert_path, CERT_FILE_MAX, &pem, &len, err)) != IOTP_OK)
		goto out;
	if ((rc = pki_cert_parse(pem, len, &cert, err)) != IOTP_OK) {
		size_t used = strlen(err != NULL ? err->msg : "");

		if (err != NULL && used + 1 < sizeof(err->msg))
			snprintf(err->msg + used, sizeof(err->msg) - used, " (%s)", cert_path);
		goto out;
	}
	if (!pki_cert_is_ca(cert)) {
		rc = iotp_err_set(err, IOTP_ERR_CERT,
		                  "%s is not a CA certificate (basicConstraints CA:TRUE missing)",
		                  cert_path);
		goto out;
	}
	if ((rc = pki_key_read_file(key_path, &key, err)) != IOTP_OK)
		goto out;
	if (X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		rc = iotp_err_set(err, IOTP_ERR_CERT, "key %s does not match certificate %s",
		                  key_path, cert_path);
		goto out;
	}
	out->cert = cert;
	out->key = key;
	cert = NULL;
	key = NULL;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	free(pem);
	return rc;
}

iotp_rc pki_ca_create_root(EVP_PKEY *key, const char *common_name, int days, X509 **out,
                           struct iotp_err *err)
{
	X509_NAME *name = NULL;
	X509 *x = NULL;
	int64_t now = util_now();
	iotp_rc rc;

	if ((rc = check_days(days, err)) != IOTP_OK || (rc = pki_key_check(key, err)) != IOTP_OK ||
	    (rc = name_cn(common_name, &name, err)) != IOTP_OK)
		goto out;
	/* Backdated an hour so that devices with a slightly slow clock accept it. */
	if ((rc = cert_start(name, NULL, now - 3600, now + (int64_t)days * 86400, &x, err)) !=
	    IOTP_OK)
		goto out;
	if (X509_set_pubkey(x, key) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "set the CA public key");
		goto out;
	}
	if ((rc = add_ext_der(x, NID_basic_constraints, 1, bc_root, sizeof(bc_root), err)) !=
	            IOTP_OK ||
	    (rc = add_ext_der(x, NID_key_usage, 1, ku_ca, sizeof(ku_ca), err)) != IOTP_OK ||
	    (rc = add_ski(x, err)) != IOTP_OK || (rc = cert_sign(x, key, err)) != IOTP_OK)
		goto out;
	*out = x;
	x = NULL;
out:
	X509_free(x);
	X509_NAME_free(name);
	return rc;
}

iotp_rc pki_ca_create_issuing(const struct pki_ca *parent, EVP_PKEY *key,
                              const char *common_name, int days, X509 **out,
                              struct iotp_err *err)
{
	X509_NAME *name = NULL;
	X509 *x = NULL;
	int64_t now = util_now();
	iotp_rc rc;

	if ((rc = check_ca(parent, err)) != IOTP_OK || (rc = check_days(days, err)) != IOTP_OK ||
	    (rc = pki_key_check(key, err)) != IOTP_OK ||
	    (rc = name_cn(common_name, &name, err)) != IOTP_OK)
		goto out;
	if ((rc = cert_start(name, parent->cert, now - 3600, now + (int64_t)days * 86400, &x,
	                     err)) != IOTP_OK)
		goto out;
	if (X509_set_pubkey(x, key) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "set the CA public key");
		goto out;
	}
	if ((rc = add_ext_der(x, NID_basic_constraints, 1, bc_issuing, sizeof(bc_issuing),
	                      err)) != IOTP_OK ||
	    (rc = add_ext_der(x, NID_key_usage, 1, ku_ca, sizeof(ku_ca), err)) != IOTP_OK ||
	    (rc = add_ski(x, err)) != IOTP_OK || (rc = add_aki(x, parent->cert, err)) != IOTP_OK ||
	    (rc = cert_sign(x, parent->key, err)) != IOTP_OK)
		goto out;
	*out = x;
	x = NULL;
out:
	X509_free(x);
	X509_NAME_free(name);
	return rc;
}

/* ---- server certificates ------------------------------------------------- */

/* A dNSName: letters, digits, '-', '.', '_' and a leading "*." wildcard. */
static int dns_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalnum(c) || c == '-' || c == '.' || c == '_')
			continue;
		if (c == '*' && i == 0 && n > 2 && s[1] == '.')
			continue;
		return 0;
	}
	return 1;
}

/* Appends one SAN entry for name (n bytes, not NUL-terminated). */
static iotp_rc san_add(GENERAL_NAMES *gens, const char *name, size_t n, int *is_dns,
                       struct iotp_err *err)
{
	char buf[256];
	unsigned char ip[16];
	GENERAL_NAME *gen = NULL;
	ASN1_OCTET_STRING *os = NULL;
	int iplen = 0;

	if (n >= sizeof(buf))
		return iotp_err_set(err, IOTP_ERR_INVALID, "server name too long");
	memcpy(buf, name, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, ip) == 1)
		iplen = 4;
	else if (inet_pton(AF_INET6, buf, ip) == 1)
		iplen = 16;
	else if (!dns_name_ok(buf, n))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "\"%s\" is neither an IP address nor a DNS name", buf);
	*is_dns = iplen == 0;
	gen = GENERAL_NAME_new();
	os = ASN1_OCTET_STRING_new(); /* IA5String and OCTET STRING share the type */
	if (gen == NULL || os == NULL ||
	    ASN1_STRING_set(os, iplen ? (const void *)ip : (const void *)buf,
	                    iplen ? iplen : (int)n) != 1)
		goto fail;
	if (!iplen)
		os->type = V_ASN1_IA5STRING;
	GENERAL_NAME_set0_value(gen, iplen ? GEN_IPADD : GEN_DNS, os);
	os = NULL;
	if (sk_GENERAL_NAME_push(gens, gen) <= 0)
		goto fail;
	return IOTP_OK;
fail:
	ASN1_OCTET_STRING_free(os);
	GENERAL_NAME_free(gen);
	return iotp_err_ssl(err, IOTP_ERR_NOMEM, "subjectAltName");
}

iotp_rc pki_server_cert_create(const struct pki_ca *ca, EVP_PKEY *key, const char *names,
                               int days, X509 **out, struct iotp_err *err)
{
	GENERAL_NAMES *gens = NULL;
	X509_NAME *subject = NULL;
	X509 *x = NULL;
	char cn[CN_MAX + 1] = "";
	const char *p = names;
	int64_t now = util_now();
	int have_dns_cn = 0;
	iotp_rc rc;

	if ((rc = check_ca(ca, err)) != IOTP_OK || (rc = check_days(days, err)) != IOTP_OK ||
	    (rc = pki_key_check(key, err)) != IOTP_OK)
		goto out;
	gens = sk_GENERAL_NAME_new_null();
	if (gens == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ',');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		int is_dns = 0;

		while (n > 0 && isspace((unsigned char)*p)) {
			p++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)p[n - 1]))
			n--;
		if (n > 0) {
			if ((rc = san_add(gens, p, n, &is_dns, err)) != IOTP_OK)
				goto out;
			/* CN: the first DNS name (or the first name at all) that fits. */
			if ((cn[0] == '\0' || (is_dns && !have_dns_cn)) && n <= CN_MAX) {
				memcpy(cn, p, n);
				cn[n] = '\0';
				have_dns_cn = is_dns;
			}
		}
		p = end != NULL ? end + 1 : NULL;
	}
	if (sk_GENERAL_NAME_num(gens) == 0) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "a server certificate needs a name");
		goto out;
	}
	if (cn[0] == '\0')
		util_strlcpy(cn, "iotprov server", sizeof(cn));
	if ((rc = name_cn(cn, &subject, err)) != IOTP_OK ||
	    (rc = cert_start(subject, ca->cert, now - 3600, now + (int64_t)days * 86400, &x,
	                     err)) != IOTP_OK)
		goto out;
	if (X509_set_pubkey(x, key) != 1 ||
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "build the server certificate");
		goto out;
	}
	if ((rc = add_ext_der(x, NID_basic_constraints, 1, bc_leaf, sizeof(bc_leaf), err)) !=
	            IOTP_OK ||
	    (rc = EVP_PKEY_is_a(key, "RSA")
	                  ? add_ext_der(x, NID_key_usage, 1, ku_sig_enc, sizeof(ku_sig_enc), err)
	                  : add_ext_der(x, NID_key_usage, 1, ku_sig, sizeof(ku_sig), err)) !=
	            IOTP_OK ||
	    (rc = add_ext_der(x, NID_ext_key_usage, 0, eku_server, sizeof(eku_server), err)) !=
	            IOTP_OK ||
	    (rc = add_ski(x, err)) != IOTP_OK || (rc = add_aki(x, ca->cert, err)) != IOTP_OK ||
	    (rc = cert_sign(x, ca->key, err)) != IOTP_OK)
		goto out;
	*out = x;
	x = NULL;
out:
	X509_free(x);
	X509_NAME_free(subject);
	GENERAL_NAMES_free(gens);
	return rc;
}

/* ---- device certificates ------------------------------------------------- */

static iotp_rc check_opts(const struct pki_issue_opts *opts, struct iotp_err *err)
{
	if (opts == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "no issuance options");
	if (opts->not_before_skew < 0 || opts->not_before_skew > MAX_SKEW)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "notBefore skew of %d s is out of range 0..%d",
		                    opts->not_before_skew, MAX_SKEW);
	if (opts->validity_seconds != 0) {
		if (opts->validity_seconds < 0)
			return iotp_err_set(err, IOTP_ERR_INVALID, "validity of %d s is negative",
			                    opts->validity_seconds);
		return IOTP_OK;
	}
	return check_days(opts->days, err);
}

/* notAfter of a leaf certificate issued at now. */
static int64_t leaf_not_after(const struct pki_issue_opts *opts, int64_t now)
{
	if (opts->validity_seconds > 0)
		return now + opts->validity_seconds;
	return now + (int64_t)opts->days * 86400;
}

/* Copies a verified SubjectPublicKeyInfo (algorithm, parameters and key
 * bits) into the certificate without decoding or re-encoding the key. */
static iotp_rc copy_spki(X509 *x, const X509_ALGOR *alg, const unsigned char *bits,
                         int nbits, struct iotp_err *err)
{
	X509_PUBKEY *dst = X509_get_X509_PUBKEY(x);
	const ASN1_OBJECT *alg_obj = NULL;
	ASN1_OBJECT *obj = NULL;
	unsigned char *copy = NULL;
	X509_ALGOR *dst_alg = NULL;

	if (alg != NULL)
		X509_ALGOR_get0(&alg_obj, NULL, NULL, alg);
	if (dst == NULL || alg_obj == NULL || bits == NULL || nbits <= 0)
		return iotp_err_set(err, IOTP_ERR_CERT, "no public key to certify");
	obj = OBJ_dup(alg_obj);
	copy = OPENSSL_memdup(bits, (size_t)nbits);
	if (obj == NULL || copy == NULL ||
	    X509_PUBKEY_set0_param(dst, obj, V_ASN1_UNDEF, NULL, copy, nbits) != 1) {
		ASN1_OBJECT_free(obj);
		OPENSSL_free(copy);
		return iotp_err_ssl(err, IOTP_ERR_NOMEM, "copy the public key");
	}
	/* Now owned by dst; the algorithm parameters (the curve) follow. */
	if (X509_PUBKEY_get0_param(NULL, NULL, NULL, &dst_alg, dst) != 1 ||
	    X509_ALGOR_copy(dst_alg, alg) != 1)
		return iotp_err_ssl(err, IOTP_ERR_NOMEM, "copy the key algorithm");
	return IOTP_OK;
}

/* The common tail of both issuance functions: the key is already in x. */
static iotp_rc leaf_finish(const struct pki_ca *ca, X509 *x, int rsa, struct iotp_err *err)
{
	iotp_rc rc;

	if ((rc = add_ext_der(x, NID_basic_constraints, 1, bc_leaf, sizeof(bc_leaf), err)) !=
	            IOTP_OK ||
	    (rc = rsa ? add_ext_der(x, NID_key_usage, 1, ku_sig_enc, sizeof(ku_sig_enc), err)
	              : add_ext_der(x, NID_key_usage, 1, ku_sig, sizeof(ku_sig), err)) !=
	            IOTP_OK ||
	    (rc = add_ext_der(x, NID_ext_key_usage, 0, eku_client, sizeof(eku_client), err)) !=
	            IOTP_OK ||
	    (rc = add_ski(x, err)) != IOTP_OK || (rc = add_aki(x, ca->cert, err)) != IOTP_OK)
		return rc;
	return cert_sign(x, ca->key, err);
}

iotp_rc pki_issue_spki(const struct pki_ca *ca, const X509_NAME *subject,
                       const X509_ALGOR *alg, const unsigned char *bits, int nbits,
                       const struct pki_issue_opts *opts, X509 **out, struct iotp_err *err)
{
	X509_NAME *override = NULL;
	const ASN1_OBJECT *alg_obj = NULL;
	X509 *x = NULL;
	int64_t now = util_now();
	iotp_rc rc;

	if ((rc = check_ca(ca, err)) != IOTP_OK || (rc = check_opts(opts, err)) != IOTP_OK)
		goto out;
	if (opts->subject_cn != NULL) {
		if ((rc = name_cn(opts->subject_cn, &override, err)) != IOTP_OK)
			goto out;
		subject = override;
	} else if (subject == NULL || X509_NAME_entry_count(subject) == 0) {
		rc = iotp_err_set(err, IOTP_ERR_CERT, "the CSR has an empty subject: put a CN in it");
		goto out;
	}
	if ((rc = cert_start(subject, ca->cert, now - opts->not_before_skew,
	                     leaf_not_after(opts, now), &x, err)) != IOTP_OK ||
	    (rc = copy_spki(x, alg, bits, nbits, err)) != IOTP_OK)
		goto out;
	X509_ALGOR_get0(&alg_obj, NULL, NULL, alg);
	if ((rc = leaf_finish(ca, x, OBJ_obj2nid(alg_obj) == NID_rsaEncryption, err)) != IOTP_OK)
		goto out;
	*out = x;
	x = NULL;
out:
	X509_free(x);
	X509_NAME_free(override);
	return rc;
}

iotp_rc pki_cert_issue(const struct pki_ca *ca, X509_REQ *csr,
                       const struct pki_issue_opts *opts, X509 **out, struct iotp_err *err)
{
	X509_PUBKEY *spki;
	const unsigned char *bits = NULL;
	X509_ALGOR *alg = NULL;
	int nbits = 0;
	iotp_rc rc;

	if (csr == NULL || (spki = X509_REQ_get_X509_PUBKEY(csr)) == NULL ||
	    X509_PUBKEY_get0_param(NULL, &bits, &nbits, &alg, spki) != 1)
		return iotp_err_set(err, IOTP_ERR_INVALID, "no CSR");
	/* A cheap re-check (nothing is decoded) for CSRs that did not come
	 * through pki_csr_parse. */
	if ((rc = pki_key_check(X509_REQ_get0_pubkey(csr), err)) != IOTP_OK)
		return rc;
	return pki_issue_spki(ca, X509_REQ_get_subject_name(csr), alg, bits, nbits, opts, out,
	                      err);
}

iotp_rc pki_cert_issue_for_key(const struct pki_ca *ca, EVP_PKEY *pub, const char *subject_cn,
                               const struct pki_issue_opts *opts, X509 **out,
                               struct iotp_err *err)
{
	X509_NAME *subject = NULL;
	X509 *x = NULL;
	const char *cn = subject_cn;
	int64_t now = util_now();
	iotp_rc rc;

	if (cn == NULL && opts != NULL)
		cn = opts->subject_cn;
	if (cn == NULL)
		cn = DEFAULT_KEY_CN;
	if ((rc = check_ca(ca, err)) != IOTP_OK || (rc = check_opts(opts, err)) != IOTP_OK ||
	    (rc = pki_key_check(pub, err)) != IOTP_OK ||
	    (rc = name_cn(cn, &subject, err)) != IOTP_OK)
		goto out;
	if ((rc = cert_start(subject, ca->cert, now - opts->not_before_skew,
	                     leaf_not_after(opts, now), &x, err)) != IOTP_OK)
		goto out;
	if (X509_set_pubkey(x, pub) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "set the public key");
		goto out;
	}
	if ((rc = leaf_finish(ca, x, EVP_PKEY_is_a(pub, "RSA"), err)) != IOTP_OK)
		goto out;
	*out = x;
	x = NULL;
out:
	X509_free(x);
	X509_NAME_free(subject);
	return rc;
}
