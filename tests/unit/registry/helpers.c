/*
 * Fixtures for the registry tests (see helpers.h).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "core/pki.h"
#include "core/store/store.h"
#include "helpers.h"

int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store *st = NULL;
	struct pki_ca root = {0};
	EVP_PKEY *ikey = NULL;
	X509 *icert = NULL;
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/iotp-registry-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	conf_init(&f->conf, f->dir);
	if (test_store_new(&f->ts, &f->err) != IOTP_OK)
		fail_msg("fresh store: %s", f->err.msg);
	assert_int_equal(store_open(f->ts.url, &st, &f->err), IOTP_OK);
	core_init_with_store(&f->core, &f->conf, st);

	fx_make_root("Test Root CA", &root);
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &ikey, &f->err), IOTP_OK);
	assert_int_equal(pki_ca_create_issuing(&root, ikey, "Test Issuing CA", 3650, &icert, &f->err),
	                 IOTP_OK);
	f->core.issuing.cert = icert;
	f->core.issuing.key = ikey;
	f->core.root = root.cert;
	root.cert = NULL;
	pki_ca_cleanup(&root);
	*state = f;
	return 0;
}

int fx_teardown(void **state)
{
	struct fx *f = *state;
	DIR *d;
	struct dirent *e;

	core_close(&f->core);
	test_store_drop(&f->ts);
	d = opendir(f->dir);
	if (d != NULL) {
		while ((e = readdir(d)) != NULL) {
			char path[600];

			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

char *fx_dump(struct fx *f)
{
	char *dump = NULL;

	assert_int_equal(test_store_dump(f->core.store, &dump, &f->err), IOTP_OK);
	return dump;
}

int64_t fx_events(struct fx *f, const char *action, const char *object)
{
	struct store_val p[] = {SV_TEXT(action), SV_TEXT(object)};
	int64_t n = -1;

	assert_int_equal(store_query_int(f->core.store,
	                                 object != NULL
	                                     ? "SELECT COUNT(*) FROM events WHERE action = ? AND "
	                                       "object = ?"
	                                     : "SELECT COUNT(*) FROM events WHERE action = ?",
	                                 p, object != NULL ? 2 : 1, &n, &f->err),
	                 IOTP_OK);
	return n;
}

int64_t fx_foreign_events(struct fx *f)
{
	struct store_val p[] = {SV_TEXT(ACTOR)};
	int64_t n = -1;

	assert_int_equal(store_query_int(f->core.store,
	                                 "SELECT COUNT(*) FROM events WHERE actor <> ?", p, 1, &n,
	                                 &f->err),
	                 IOTP_OK);
	return n;
}

int64_t fx_event_total(struct fx *f)
{
	return fx_int(f, "SELECT COUNT(*) FROM events");
}

int64_t fx_int(struct fx *f, const char *sql)
{
	int64_t n = -1;

	assert_int_equal(store_query_int(f->core.store, sql, NULL, 0, &n, &f->err), IOTP_OK);
	return n;
}

void fx_make_root(const char *cn, struct pki_ca *out)
{
	struct iotp_err err;

	memset(out, 0, sizeof(*out));
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &out->key, &err), IOTP_OK);
	assert_int_equal(pki_ca_create_root(out->key, cn, 3650, &out->cert, &err), IOTP_OK);
}

char *fx_cert_pem(X509 *x)
{
	struct iotp_err err;
	char *pem = NULL;

	assert_int_equal(pki_cert_to_pem(x, &pem, &err), IOTP_OK);
	return pem;
}

char *fx_issue_pem(const struct pki_ca *ca, const char *cn, int days)
{
	struct pki_issue_opts opts = {.days = days};
	struct iotp_err err;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	char *pem;

	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &err), IOTP_OK);
	assert_int_equal(pki_cert_issue_for_key(ca, key, cn, &opts, &x, &err), IOTP_OK);
	pem = fx_cert_pem(x);
	X509_free(x);
	EVP_PKEY_free(key);
	return pem;
}

char *fx_csr_pem(const char *cn)
{
	struct iotp_err err;
	EVP_PKEY *key = NULL;
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL, *pem;
	long len;

	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &err), IOTP_OK);
	assert_non_null(req);
	assert_non_null(name);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	                                            (const unsigned char *)cn, -1, -1, 0),
	                 1);
	assert_int_equal(X509_REQ_set_subject_name(req, name), 1);
	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509_REQ(bio, req), 1);
	len = BIO_get_mem_data(bio, &data);
	pem = strndup(data, (size_t)len);
	assert_non_null(pem);
	BIO_free(bio);
	X509_NAME_free(name);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return pem;
}
