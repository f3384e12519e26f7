/*
 * The PKCS#11 keystore backend: the device key lives in a token (a secure
 * element; SoftHSM2 in tests) and never leaves it.
 *
 * libp11 turns a token key into an OpenSSL EVP_PKEY whose signatures are
 * computed by the token, which is what CSR signing and the TLS handshake
 * need. libp11 0.4 cannot generate EC keys nor read object attributes, so
 * key generation (C_GenerateKeyPair with CKA_SENSITIVE true, CKA_EXTRACTABLE
 * false), attribute checks and deletion go to the module's function list
 * directly, in sessions of our own on the slot libp11 opened.
 *
 * A PKCS#11 module is initialised once per process (C_Initialize) and
 * finalising it ends every session of that process, so modules are shared
 * through a small reference-counted table: the one process-wide state of
 * the library, forced by the PKCS#11 model. We never call C_Initialize or
 * C_Finalize ourselves: libp11 does, under that table's reference count.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libp11.h>
#include <openssl/crypto.h>

#define CRYPTOKI_GNU 1
#include <p11-kit-1/p11-kit/pkcs11.h>

#include "common/util.h"
#include "device/dev.h"

struct p11_module {
	char path[1024];
	PKCS11_CTX *ctx;
	PKCS11_SLOT *slots;
	unsigned int nslots;
	void *dl;
	struct ck_function_list *fl;
	int refs;
	struct p11_module *next;
};

struct p11_key {
	struct p11_module *m;
	PKCS11_SLOT *slot;
	char label[P11_LABEL_MAX + 1];
	unsigned char id[P11_ID_MAX];
	size_t id_len;
};

static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct p11_module *modules;

static void module_free(struct p11_module *m)
{
	if (m == NULL)
		return;
	if (m->ctx != NULL) {
		if (m->slots != NULL)
			PKCS11_release_all_slots(m->ctx, m->slots, m->nslots);
		PKCS11_CTX_unload(m->ctx);
		PKCS11_CTX_free(m->ctx);
	}
	if (m->dl != NULL)
		dlclose(m->dl);
	free(m);
}

static iotp_rc module_get(const char *path, struct p11_module **out, struct iotp_err *err)
{
	struct p11_module *m;
	CK_C_GetFunctionList get;
	iotp_rc rc = IOTP_OK;

	pthread_mutex_lock(&modules_lock);
	for (m = modules; m != NULL; m = m->next)
		if (strcmp(m->path, path) == 0) {
			m->refs++;
			*out = m;
			goto unlock;
		}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto unlock;
	}
	util_strlcpy(m->path, path, sizeof(m->path));
	m->ctx = PKCS11_CTX_new();
	if (m->ctx == NULL) {
		rc = iotp_err_ssl(err, IOTP_ERR_NOMEM, "libp11 context");
		goto fail;
	}
	if (PKCS11_CTX_load(m->ctx, path) != 0) {
		rc = iotp_err_ssl(err, IOTP_ERR_CONFIG, "load the PKCS#11 module %s", path);
		PKCS11_CTX_free(m->ctx);
		m->ctx = NULL;
		goto fail;
	}
	if (PKCS11_enumerate_slots(m->ctx, &m->slots, &m->nslots) != 0) {
		rc = iotp_err_ssl(err, IOTP_ERR_IO, "list the slots of %s", path);
		goto fail;
	}
	/* Same path, same handle: this reaches the function list libp11 has
	 * initialised. */
	m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	get = m->dl != NULL ? (CK_C_GetFunctionList)dlsym(m->dl, "C_GetFunctionList") : NULL;
	if (get == NULL || get(&m->fl) != CKR_OK || m->fl == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_CONFIG, "%s has no PKCS#11 function list", path);
		goto fail;
	}
	m->refs = 1;
	m->next = modules;
	modules = m;
	*out = m;
	goto unlock;
fail:
	module_free(m);
unlock:
	pthread_mutex_unlock(&modules_lock);
	return rc;
}

static void module_put(struct p11_module *m)
{
	struct p11_module **pp;

	if (m == NULL)
		return;
	pthread_mutex_lock(&modules_lock);
	if (--m->refs == 0) {
		for (pp = &modules; *pp != NULL; pp = &(*pp)->next)
			if (*pp == m) {
				*pp = m->next;
				break;
			}
		module_free(m);
	}
	pthread_mutex_unlock(&modules_lock);
}

static iotp_rc find_slot(struct p11_module *m, const char *token, PKCS11_SLOT **out,
                         struct iotp_err *err)
{
	unsigned int i;

	for (i = 0; i < m->nslots; i++) {
		PKCS11_SLOT *s = &m->slots[i];

		if (s->token != NULL && s->token->initialized && s->token->label != NULL &&
		    strcmp(s->token->label, token) == 0) {
			*out = s;
			return IOTP_OK;
		}
	}
	return iotp_err_set(err, IOTP_ERR_NOT_FOUND, "no initialised token labelled '%s' in %s",
	                    token, m->path);
}

static iotp_rc login(PKCS11_SLOT *slot, const struct p11_uri *u, struct iotp_err *err)
{
	char pin[256];
	int logged = 0;
	iotp_rc rc = IOTP_OK;

	if (!slot->token->loginRequired)
		return IOTP_OK;
	if (PKCS11_is_logged_in(slot, 0, &logged) == 0 && logged)
		return IOTP_OK;
	if ((rc = p11_uri_pin(u, pin, sizeof(pin), err)) != IOTP_OK)
		goto out;
	if (pin[0] == '\0') {
		rc = iotp_err_set(err, IOTP_ERR_CONFIG,
		                  "token '%s' needs a PIN: give pin-value or pin-source in the URI, "
		                  "or set IOTP_PKCS11_PIN",
		                  u->token);
		goto out;
	}
	if (PKCS11_login(slot, 0, pin) != 0) {
		ERR_clear_error();
		rc = iotp_err_set(err, IOTP_ERR_AUTH, "login to token '%s' failed (wrong PIN?)",
		                  u->token);
		goto out;
	}
out:
	OPENSSL_cleanse(pin, sizeof(pin));
	return rc;
}

static iotp_rc open_session(struct p11_key *k, int rw, ck_session_handle_t *out,
                            struct iotp_err *err)
{
	ck_flags_t flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
	ck_rv_t rv = k->m->fl->C_OpenSession(PKCS11_get_slotid_from_slot(k->slot), flags, NULL,
	                                     NULL, out);

	if (rv != CKR_OK)
		return iotp_err_set(err, IOTP_ERR_IO, "PKCS#11 C_OpenSession: 0x%lx", rv);
	return IOTP_OK;
}

/* Up to max objects of class cls ((ck_object_class_t)-1: any) matching the
 * key's label and id (each when set). */
static iotp_rc find_objects(struct p11_key *k, ck_session_handle_t s, ck_object_class_t cls,
                            ck_object_handle_t *out, unsigned long max, unsigned long *count,
                            struct iotp_err *err)
{
	struct ck_attribute tmpl[3];
	unsigned long n = 0;
	ck_rv_t rv;

	if (cls != (ck_object_class_t)-1) {
		tmpl[n].type = CKA_CLASS;
		tmpl[n].value = &cls;
		tmpl[n].value_len = sizeof(cls);
		n++;
	}
	if (k->label[0] != '\0') {
		tmpl[n].type = CKA_LABEL;
		tmpl[n].value = k->label;
		tmpl[n].value_len = strlen(k->label);
		n++;
	}
	if (k->id_len > 0) {
		tmpl[n].type = CKA_ID;
		tmpl[n].value = k->id;
		tmpl[n].value_len = k->id_len;
		n++;
	}
	rv = k->m->fl->C_FindObjectsInit(s, tmpl, n);
	if (rv != CKR_OK)
		return iotp_err_set(err, IOTP_ERR_IO, "PKCS#11 C_FindObjectsInit: 0x%lx", rv);
	rv = k->m->fl->C_FindObjects(s, out, max, count);
	k->m->fl->C_FindObjectsFinal(s);
	if (rv != CKR_OK)
		return iotp_err_set(err, IOTP_ERR_IO, "PKCS#11 C_FindObjects: 0x%lx", rv);
	return IOTP_OK;
}

/* Module, slot and login for u, filled into a zeroed k. */
static iotp_rc key_prepare(const struct p11_uri *u, struct p11_key *k, struct iotp_err *err)
{
	iotp_rc rc;

	memset(k, 0, sizeof(*k));
	util_strlcpy(k->label, u->object, sizeof(k->label));
	memcpy(k->id, u->id, u->id_len);
	k->id_len = u->id_len;
	if ((rc = module_get(p11_uri_module(u), &k->m, err)) != IOTP_OK)
		return rc;
	if ((rc = find_slot(k->m, u->token, &k->slot, err)) != IOTP_OK ||
	    (rc = login(k->slot, u, err)) != IOTP_OK) {
		module_put(k->m);
		k->m = NULL;
	}
	return rc;
}

iotp_rc p11_generate(const struct p11_uri *u, enum iotp_key_alg alg, struct iotp_err *err)
{
	/* DER OIDs of the named curves, as CKA_EC_PARAMS wants them. */
	static const unsigned char p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
	                                      0x3d, 0x03, 0x01, 0x07 };
	static const unsigned char p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
	static const unsigned char exponent[] = { 0x01, 0x00, 0x01 };
	unsigned char yes = 1, no = 0; /* CK_BBOOL */
	ck_object_class_t pub_class = CKO_PUBLIC_KEY, priv_class = CKO_PRIVATE_KEY;
	ck_key_type_t ktype = alg == IOTP_KEY_RSA_2048 ? CKK_RSA : CKK_EC;
	unsigned long bits = 2048;
	struct ck_mechanism mech = { alg == IOTP_KEY_RSA_2048 ? CKM_RSA_PKCS_KEY_PAIR_GEN
	                                                     : CKM_EC_KEY_PAIR_GEN,
	                             NULL, 0 };
	struct ck_attribute pub[9], priv[10];
	unsigned long npub = 0, npriv = 0, found = 0;
	ck_object_handle_t hpub, hpriv, existing[1];
	ck_session_handle_t s = CK_INVALID_HANDLE;
	struct p11_key k;
	ck_rv_t rv;
	iotp_rc rc;

#define ATTR(arr, n, t, v, l) \
	do { \
		(arr)[n].type = (t); \
		(arr)[n].value = (void *)(v); \
		(arr)[n].value_len = (l); \
		(n)++; \
	} while (0)

	if (u->object[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "generating a token key needs object=<label> in the URI");
	if ((rc = key_prepare(u, &k, err)) != IOTP_OK)
		return rc;
	if ((rc = open_session(&k, 1, &s, err)) != IOTP_OK)
		goto out;
	/* Refuse to add a second key under a label already in use: which one a
	 * later lookup would find is anybody's guess. */
	{
		size_t id_len = k.id_len;

		k.id_len = 0;
		rc = find_objects(&k, s, CKO_PRIVATE_KEY, existing, 1, &found, err);
		k.id_len = id_len;
	}
	if (rc != IOTP_OK)
		goto out;
	if (found > 0) {
		rc = iotp_err_set(err, IOTP_ERR_EXISTS, "token '%s' already holds a key labelled '%s'",
		                  u->token, u->object);
		goto out;
	}
	if (k.id_len == 0) {
		if ((rc = util_random(k.id, 16, err)) != IOTP_OK)
			goto out;
		k.id_len = 16;
	}
	ATTR(pub, npub, CKA_CLASS, &pub_class, sizeof(pub_class));
	ATTR(pub, npub, CKA_KEY_TYPE, &ktype, sizeof(ktype));
	ATTR(pub, npub, CKA_TOKEN, &yes, 1);
	ATTR(pub, npub, CKA_VERIFY, &yes, 1);
	ATTR(pub, npub, CKA_LABEL, k.label, strlen(k.label));
	ATTR(pub, npub, CKA_ID, k.id, k.id_len);
	ATTR(priv, npriv, CKA_CLASS, &priv_class, sizeof(priv_class));
	ATTR(priv, npriv, CKA_KEY_TYPE, &ktype, sizeof(ktype));
	ATTR(priv, npriv, CKA_TOKEN, &yes, 1);
	ATTR(priv, npriv, CKA_PRIVATE, &yes, 1);
	ATTR(priv, npriv, CKA_SENSITIVE, &yes, 1);
	ATTR(priv, npriv, CKA_EXTRACTABLE, &no, 1);
	ATTR(priv, npriv, CKA_SIGN, &yes, 1);
	ATTR(priv, npriv, CKA_LABEL, k.label, strlen(k.label));
	ATTR(priv, npriv, CKA_ID, k.id, k.id_len);
	switch (alg) {
	case IOTP_KEY_EC_P256:
		ATTR(pub, npub, CKA_EC_PARAMS, p256, sizeof(p256));
		break;
	case IOTP_KEY_EC_P384:
		ATTR(pub, npub, CKA_EC_PARAMS, p384, sizeof(p384));
		break;
	case IOTP_KEY_RSA_2048:
		ATTR(pub, npub, CKA_MODULUS_BITS, &bits, sizeof(bits));
		ATTR(pub, npub, CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent));
		break;
	}
#undef ATTR
	rv = k.m->fl->C_GenerateKeyPair(s, &mech, pub, npub, priv, npriv, &hpub, &hpriv);
	if (rv != CKR_OK) {
		rc = iotp_err_set(err, IOTP_ERR_CRYPTO,
		                  "PKCS#11 C_GenerateKeyPair in token '%s': 0x%lx", u->token, rv);
		goto out;
	}
out:
	if (s != CK_INVALID_HANDLE)
		k.m->fl->C_CloseSession(s);
	module_put(k.m);
	return rc;
}

iotp_rc p11_open(const struct p11_uri *u, struct p11_key **out, EVP_PKEY **pkey,
                 struct iotp_err *err)
{
	struct p11_key *k = NULL;
	PKCS11_KEY *keys = NULL, *key = NULL;
	unsigned int nkeys = 0, i;
	EVP_PKEY *pk = NULL;
	iotp_rc rc;

	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	if ((rc = key_prepare(u, k, err)) != IOTP_OK)
		goto out;
	if (PKCS11_enumerate_keys(k->slot->token, &keys, &nkeys) != 0) {
		rc = iotp_err_ssl(err, IOTP_ERR_IO, "list the keys of token '%s'", u->token);
		goto out;
	}
	for (i = 0; i < nkeys && key == NULL; i++) {
		if (!keys[i].isPrivate)
			continue;
		if (k->label[0] != '\0' && (keys[i].label == NULL || strcmp(keys[i].label, k->label)))
			continue;
		if (k->id_len > 0 &&
		    (keys[i].id_len != k->id_len || memcmp(keys[i].id, k->id, k->id_len) != 0))
			continue;
		key = &keys[i];
	}
	if (key == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "token '%s' has no private key '%s'",
		                  u->token, u->object);
		goto out;
	}
	/* Remember the id so that attribute lookups hit this very object. */
	if (k->id_len == 0 && key->id_len > 0 && key->id_len <= sizeof(k->id)) {
		memcpy(k->id, key->id, key->id_len);
		k->id_len = key->id_len;
	}
	pk = PKCS11_get_private_key(key);
	if (pk == NULL) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "use key '%s' of token '%s'", u->object,
		                  u->token);
		goto out;
	}
	*out = k;
	*pkey = pk;
	k = NULL;
out:
	if (k != NULL) {
		module_put(k->m);
		free(k);
	}
	return rc;
}

iotp_rc p11_attributes(struct p11_key *k, struct iotp_key_info *info, struct iotp_err *err)
{
	unsigned char sens = 0, extr = 1, asens = 0, nextr = 0, local = 0;
	struct ck_attribute a[5] = {
		{ CKA_SENSITIVE, &sens, 1 },
		{ CKA_EXTRACTABLE, &extr, 1 },
		{ CKA_ALWAYS_SENSITIVE, &asens, 1 },
		{ CKA_NEVER_EXTRACTABLE, &nextr, 1 },
		{ CKA_LOCAL, &local, 1 },
	};
	ck_session_handle_t s = CK_INVALID_HANDLE;
	ck_object_handle_t h[2];
	unsigned long found = 0;
	ck_rv_t rv;
	iotp_rc rc;

	if ((rc = open_session(k, 0, &s, err)) != IOTP_OK)
		return rc;
	if ((rc = find_objects(k, s, CKO_PRIVATE_KEY, h, 2, &found, err)) != IOTP_OK)
		goto out;
	if (found != 1) {
		rc = iotp_err_set(err, found == 0 ? IOTP_ERR_NOT_FOUND : IOTP_ERR_CONFLICT,
		                  "%lu private keys labelled '%s' in the token", found, k->label);
		goto out;
	}
	rv = k->m->fl->C_GetAttributeValue(s, h[0], a, 5);
	/* CKR_ATTRIBUTE_TYPE_INVALID leaves the readable ones filled. */
	if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_SENSITIVE) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "PKCS#11 C_GetAttributeValue: 0x%lx", rv);
		goto out;
	}
	info->sensitive = sens == 1;
	info->extractable = extr == 1;
	info->always_sensitive = asens == 1;
	info->never_extractable = nextr == 1;
	info->local = local == 1;
out:
	k->m->fl->C_CloseSession(s);
	return rc;
}

iotp_rc p11_remove(const struct p11_uri *u, struct iotp_err *err)
{
	ck_session_handle_t s = CK_INVALID_HANDLE;
	ck_object_handle_t h[16];
	unsigned long found = 0, i;
	struct p11_key k;
	iotp_rc rc;

	if ((rc = key_prepare(u, &k, err)) != IOTP_OK)
		return rc;
	if ((rc = open_session(&k, 1, &s, err)) != IOTP_OK)
		goto out;
	/* The key pair only: a certificate stored under the same label stays. */
	if ((rc = find_objects(&k, s, CKO_PRIVATE_KEY, h, 8, &found, err)) != IOTP_OK)
		goto out;
	{
		unsigned long more = 0;

		if ((rc = find_objects(&k, s, CKO_PUBLIC_KEY, h + found, 8, &more, err)) != IOTP_OK)
			goto out;
		found += more;
	}
	if (found == 0) {
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "token '%s' has no key '%s'", u->token,
		                  u->object);
		goto out;
	}
	for (i = 0; i < found; i++) {
		ck_rv_t rv = k.m->fl->C_DestroyObject(s, h[i]);

		if (rv != CKR_OK) {
			rc = iotp_err_set(err, IOTP_ERR_IO, "PKCS#11 C_DestroyObject: 0x%lx", rv);
			goto out;
		}
	}
out:
	if (s != CK_INVALID_HANDLE)
		k.m->fl->C_CloseSession(s);
	module_put(k.m);
	return rc;
}

void p11_close(struct p11_key *k)
{
	if (k == NULL)
		return;
	module_put(k->m);
	free(k);
}
