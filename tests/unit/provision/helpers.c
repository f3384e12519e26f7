/*
 * Fixtures of the provisioning-engine tests (see helpers.h).
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
#include "../../common/test_store.h"
#include "helpers.h"

const char FX_FLEET_BODY[] =
	"{\"Parameters\": {\"SerialNumber\": {\"Type\": \"String\"},"
	" \"AWS::IoT::Certificate::Id\": {\"Type\": \"String\"}},"
	" \"Resources\": {"
	"  \"thing\": {\"Type\": \"AWS::IoT::Thing\", \"Properties\": {"
	"    \"ThingName\": {\"Fn::Join\": [\"\", [\"dev-\", {\"Ref\": \"SerialNumber\"}]]},"
	"    \"ThingGroups\": [\"fleet\"],"
	"    \"AttributePayload\": {\"serial\": {\"Ref\": \"SerialNumber\"}}}},"
	"  \"certificate\": {\"Type\": \"AWS::IoT::Certificate\", \"Properties\": {"
	"    \"CertificateId\": {\"Ref\": \"AWS::IoT::Certificate::Id\"}, \"Status\": \"Active\"}},"
	"  \"policy\": {\"Type\": \"AWS::IoT::Policy\", \"Properties\": {"
	"    \"PolicyName\": \"fleet-policy\"}}},"
	" \"DeviceConfiguration\": {\"Fallback\": \"https://fallback.example\"}}";

const char FX_JITP_BODY[] =
	"{\"Parameters\": {\"AWS::IoT::Certificate::CommonName\": {\"Type\": \"String\"},"
	" \"AWS::IoT::Certificate::Id\": {\"Type\": \"String\"}},"
	" \"Resources\": {"
	"  \"thing\": {\"Type\": \"AWS::IoT::Thing\", \"Properties\": {"
	"    \"ThingName\": {\"Ref\": \"AWS::IoT::Certificate::CommonName\"},"
	"    \"AttributePayload\": {\"via\": \"jitp\"}}},"
	"  \"certificate\": {\"Type\": \"AWS::IoT::Certificate\", \"Properties\": {"
	"    \"CertificateId\": {\"Ref\": \"AWS::IoT::Certificate::Id\"}, \"Status\": \"ACTIVE\"}},"
	"  \"policy\": {\"Type\": \"AWS::IoT::Policy\", \"Properties\": {"
	"    \"PolicyName\": \"fleet-policy\"}}}}";

static int open_core(struct fx *f, struct iotp_core *core)
{
	struct store *st = NULL;
	struct pki_ca copy;
	char url[512];

	snprintf(url, sizeof(url), "sqlite:%s", f->db);
	assert_int_equal(store_open(url, &st, &f->err), IOTP_OK);
	core_init_with_store(core, &f->conf, st);
	if (f->core.issuing.cert != NULL) {
		copy.cert = f->core.issuing.cert;
		copy.key = f->core.issuing.key;
		X509_up_ref(copy.cert);
		EVP_PKEY_up_ref(copy.key);
		core->issuing = copy;
	}
	return 0;
}

int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct pki_ca root = {0};
	EVP_PKEY *ikey = NULL;
	X509 *icert = NULL;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/iotp-provision-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/store.db", f->dir);
	conf_init(&f->conf, f->dir);
	open_core(f, &f->core);
	fx_make_root("Test Root CA", &root);
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &ikey, &f->err), IOTP_OK);
	assert_int_equal(pki_ca_create_issuing(&root, ikey, "Test Issuing CA", 3650, &icert,
	                                       &f->err),
	                 IOTP_OK);
	f->core.issuing.cert = icert;
	f->core.issuing.key = ikey;
	f->core.root = root.cert;
	root.cert = NULL;
	pki_ca_cleanup(&root);
	*state = f;
	return 0;
}

void fx_core_open(struct fx *f, struct iotp_core *out)
{
	open_core(f, out);
}

int fx_teardown(void **state)
{
	struct fx *f = *state;
	DIR *d;
	struct dirent *e;

	core_close(&f->core);
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

int64_t fx_int(struct fx *f, const char *sql)
{
	int64_t n = -1;

	assert_int_equal(store_query_int(f->core.store, sql, NULL, 0, &n, &f->err), IOTP_OK);
	return n;
}

char *fx_text(struct fx *f, const char *sql, const char *param)
{
	struct store_val p[] = {SV_TEXT(param)};
	char *out = NULL;
	iotp_rc rc = store_query_text(f->core.store, sql, p, param != NULL ? 1 : 0, &out, &f->err);

	assert_true(rc == IOTP_OK || rc == IOTP_ERR_NOT_FOUND);
	return out;
}

void fx_exec(struct fx *f, const char *sql)
{
	assert_int_equal(store_exec(f->core.store, sql, NULL, 0, NULL, NULL, &f->err), IOTP_OK);
}

void fx_make_root(const char *cn, struct pki_ca *out)
{
	struct iotp_err err;

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

char *fx_issue_pem(const struct pki_ca *ca, const char *cn, const char *org, int days)
{
	struct iotp_err err;
	EVP_PKEY *key = NULL;
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	struct pki_issue_opts opts = {.days = days};
	X509 *x = NULL;
	char *pem;

	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &err), IOTP_OK);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	                                            (const unsigned char *)cn, -1, -1, 0),
	                 1);
	if (org != NULL)
		assert_int_equal(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
		                                            (const unsigned char *)org, -1, -1, 0),
		                 1);
	assert_int_equal(X509_REQ_set_subject_name(req, name), 1);
	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	assert_int_equal(pki_cert_issue(ca, req, &opts, &x, &err), IOTP_OK);
	pem = fx_cert_pem(x);
	X509_free(x);
	X509_NAME_free(name);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return pem;
}

void fx_cert(struct fx *f, enum registry_cert_status status, char id[65])
{
	struct registry_cert_created c = {0};
	char *csr = fx_csr_pem("device");

	assert_int_equal(registry_cert_create_from_csr(&f->core, ACTOR, csr, strlen(csr), status,
	                                               &c, &f->err),
	                 IOTP_OK);
	memcpy(id, c.id, 65);
	registry_cert_created_cleanup(&c);
	free(csr);
}

void fx_template(struct fx *f, const char *name, const char *type, int enabled,
                 const char *body, const json_t *hook)
{
	struct prov_template in;
	struct registry_ref ref;

	memset(&in, 0, sizeof(in));
	snprintf(in.name, sizeof(in.name), "%s", name);
	snprintf(in.type, sizeof(in.type), "%s", type);
	in.enabled = enabled;
	in.body = (char *)body;
	in.hook = (json_t *)hook;
	if (prov_template_create(&f->core, ACTOR, &in, &ref, &f->err) != IOTP_OK)
		fail_msg("template %s: %s", name, f->err.msg);
}

void fx_policy(struct fx *f, const char *name)
{
	struct registry_policy p = {0};

	assert_int_equal(
		registry_policy_create(&f->core, ACTOR, name,
		                       "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":"
		                       "\"Allow\",\"Action\":\"iot:Connect\",\"Resource\":\"*\"}]}",
		                       &p, &f->err),
		IOTP_OK);
	registry_policy_cleanup(&p);
}

void fx_type(struct fx *f, const char *name)
{
	struct registry_thing_type_spec s = {.name = name};
	struct registry_ref ref;

	assert_int_equal(registry_thing_type_create(&f->core, ACTOR, &s, &ref, &f->err), IOTP_OK);
}

void fx_group(struct fx *f, const char *name)
{
	struct registry_thing_group_spec s = {.name = name};
	struct registry_ref ref;

	assert_int_equal(registry_thing_group_create(&f->core, ACTOR, &s, &ref, &f->err),
	                 IOTP_OK);
}

void fx_claimant(struct fx *f, char id[65])
{
	fx_cert(f, REGISTRY_CERT_ACTIVE, id);
}
