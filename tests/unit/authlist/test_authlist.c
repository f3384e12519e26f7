/*
 * Unit tests of authorized public-key lists and enrolment by CSR, on a real
 * SQLite store with an issuing CA and the real provisioning engine: a key
 * on a list enrols once (certificate chains to the CA, thing named after
 * the device id with the list's attributes), a replay and an unknown key
 * are refused and audited, uploads are all or nothing, PEM and hex give the
 * same fingerprint, claim and access-key enrolment obey their template, and
 * re-enrolment keeps the attachments and retires the old certificate on
 * first use.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/util.h"
#include "core/accesskey.h"
#include "core/authlist.h"
#include "core/core.h"
#include "core/pki.h"
#include "core/provision.h"
#include "core/registry.h"

#define ACTOR "key:AKIATESTLIST"

static const char tmpl_body[] =
	"{\"Parameters\":{\"DeviceId\":{\"Type\":\"String\"},"
	"\"Site\":{\"Type\":\"String\",\"Default\":\"none\"},"
	"\"AWS::IoT::Certificate::Id\":{\"Type\":\"String\"}},"
	"\"Resources\":{\"thing\":{\"Type\":\"AWS::IoT::Thing\",\"Properties\":{"
	"\"ThingName\":{\"Ref\":\"DeviceId\"},"
	"\"AttributePayload\":{\"site\":{\"Ref\":\"Site\"}}}},"
	"\"cert\":{\"Type\":\"AWS::IoT::Certificate\",\"Properties\":{"
	"\"CertificateId\":{\"Ref\":\"AWS::IoT::Certificate::Id\"},\"Status\":\"ACTIVE\"}}}}";

static const char tmpl_cn_body[] =
	"{\"Parameters\":{\"AWS::IoT::Certificate::CommonName\":{\"Type\":\"String\"},"
	"\"AWS::IoT::Certificate::Id\":{\"Type\":\"String\"}},"
	"\"Resources\":{\"thing\":{\"Type\":\"AWS::IoT::Thing\",\"Properties\":{"
	"\"ThingName\":{\"Ref\":\"AWS::IoT::Certificate::CommonName\"}}},"
	"\"cert\":{\"Type\":\"AWS::IoT::Certificate\",\"Properties\":{"
	"\"CertificateId\":{\"Ref\":\"AWS::IoT::Certificate::Id\"},\"Status\":\"ACTIVE\"}}}}";

struct fx {
	char dir[256];
	struct iotp_conf conf;
	struct iotp_core core;
	struct iotp_err err;
};

static void make_template(struct fx *f, const char *name, const char *body, int enabled)
{
	struct prov_template t;
	struct registry_ref ref;

	memset(&t, 0, sizeof(t));
	util_strlcpy(t.name, name, sizeof(t.name));
	util_strlcpy(t.type, "FLEET_PROVISIONING", sizeof(t.type));
	t.enabled = enabled;
	t.body = (char *)body;
	assert_int_equal(prov_template_create(&f->core, ACTOR, &t, &ref, &f->err), IOTP_OK);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store *st = NULL;
	struct pki_ca root = {0};
	EVP_PKEY *rkey = NULL, *ikey = NULL;
	X509 *icert = NULL;
	char url[512];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/iotp-authlist-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	conf_init(&f->conf, f->dir);
	snprintf(url, sizeof(url), "sqlite:%s/store.db", f->dir);
	assert_int_equal(store_open(url, &st, &f->err), IOTP_OK);
	core_init_with_store(&f->core, &f->conf, st);
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &rkey, &f->err), IOTP_OK);
	assert_int_equal(pki_ca_create_root(rkey, "List Test Root", 30, &root.cert, &f->err),
	                 IOTP_OK);
	root.key = rkey;
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &ikey, &f->err), IOTP_OK);
	assert_int_equal(pki_ca_create_issuing(&root, ikey, "List Test Issuing", 30, &icert,
	                                       &f->err),
	                 IOTP_OK);
	f->core.issuing.cert = icert;
	f->core.issuing.key = ikey;
	f->core.root = root.cert;
	root.cert = NULL;
	pki_ca_cleanup(&root);
	make_template(f, "factory", tmpl_body, 1);
	make_template(f, "by-cn", tmpl_cn_body, 1);
	make_template(f, "off", tmpl_cn_body, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[600];

	core_close(&f->core);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int64_t count(struct fx *f, const char *sql)
{
	int64_t n = -1;

	assert_int_equal(store_query_int(f->core.store, sql, NULL, 0, &n, &f->err), IOTP_OK);
	return n;
}

/* A DER CSR for key with CN=cn; *len its length; malloc'ed. */
static unsigned char *make_csr(EVP_PKEY *key, const char *cn, size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	unsigned char *der = NULL;
	int n;

	assert_non_null(req);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_REQ_set_subject_name(req, name);
	X509_REQ_set_pubkey(req, key);
	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	n = i2d_X509_REQ(req, &der);
	assert_true(n > 0);
	*len = (size_t)n;
	X509_NAME_free(name);
	X509_REQ_free(req);
	return der;
}

static char *pubkey_pem(EVP_PKEY *key)
{
	char *pem = NULL;
	struct iotp_err err;

	assert_int_equal(pki_pubkey_to_pem(key, &pem, &err), IOTP_OK);
	return pem;
}

static char *pubkey_hex(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(key, &der);
	char *hex = malloc((size_t)n * 3 + 1);
	size_t o = 0;

	for (int i = 0; i < n; i++) {
		util_hex(der + i, 1, hex + o);
		o += 2;
		if (i % 16 == 15)
			hex[o++] = '\n'; /* line breaks are allowed */
	}
	hex[o] = '\0';
	OPENSSL_free(der);
	return hex;
}

static void upload(struct fx *f, const char *list, EVP_PKEY *key, const char *device,
                   int use_hex)
{
	char *pk = use_hex ? pubkey_hex(key) : pubkey_pem(key);
	json_t *keys = json_pack("[{s:s, s:s, s:{s:s}}]", "publicKey", pk, "deviceId", device,
	                         "attributes", "Site", "plant-7");
	int64_t added = 0;

	assert_int_equal(authlist_add_keys(&f->core, ACTOR, list, keys, &added, &f->err), IOTP_OK);
	assert_int_equal(added, 1);
	json_decref(keys);
	free(pk);
}

static void test_fingerprints_agree(void **state)
{
	EVP_PKEY *key = NULL;
	struct iotp_err err;
	char a[65], b[65], c[65];
	char *pem, *hex;

	(void)state;
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &err), IOTP_OK);
	pem = pubkey_pem(key);
	hex = pubkey_hex(key);
	assert_int_equal(authlist_key_fingerprint(pem, a, &err), IOTP_OK);
	assert_int_equal(authlist_key_fingerprint(hex, b, &err), IOTP_OK);
	assert_int_equal(pki_pubkey_fingerprint(key, c, &err), IOTP_OK);
	assert_string_equal(a, b);
	assert_string_equal(a, c);
	assert_int_equal(authlist_key_fingerprint("zz", a, &err), IOTP_ERR_INVALID);
	assert_int_equal(authlist_key_fingerprint("3059", a, &err), IOTP_ERR_INVALID);
	assert_int_equal(authlist_key_fingerprint("-----BEGIN PUBLIC KEY-----\nAAAA\n", a, &err),
	                 IOTP_ERR_INVALID);
	free(pem);
	free(hex);
	EVP_PKEY_free(key);
}

static void test_enrol_once(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *key = NULL;
	struct enroll_in in;
	struct enroll_out out;
	struct registry_thing th;
	struct registry_cert rc_;
	struct authlist_info info;
	unsigned char *csr;
	size_t csr_len;
	X509 *x = NULL;

	memset(&in, 0, sizeof(in));
	memset(&out, 0, sizeof(out));
	memset(&th, 0, sizeof(th));
	memset(&rc_, 0, sizeof(rc_));
	memset(&info, 0, sizeof(info));
	assert_int_equal(authlist_create(&f->core, ACTOR, "line-7", "factory", "batch 7", &f->err),
	                 IOTP_OK);
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &f->err), IOTP_OK);
	upload(f, "line-7", key, "meter-0001", 1);
	csr = make_csr(key, "anything", &csr_len);
	in.via = ENROLL_AUTHLIST;
	in.csr = csr;
	in.csr_len = csr_len;
	assert_int_equal(authlist_enroll(&f->core, "device:authlist", &in, &out, &f->err), IOTP_OK);
	assert_string_equal(out.thing_name, "meter-0001");
	/* The certificate is iotprov's, for the device's key, ACTIVE, attached. */
	assert_int_equal(pki_cert_parse(out.cert_pem, strlen(out.cert_pem), &x, &f->err), IOTP_OK);
	assert_int_equal(pki_cert_chains_to(x, f->core.issuing.cert, &f->err), IOTP_OK);
	X509_free(x);
	assert_int_equal(registry_cert_describe(&f->core, out.cert_id, &rc_, &f->err), IOTP_OK);
	assert_int_equal(rc_.status, REGISTRY_CERT_ACTIVE);
	registry_cert_cleanup(&rc_);
	assert_int_equal(registry_thing_describe(&f->core, "meter-0001", &th, &f->err), IOTP_OK);
	assert_string_equal(json_string_value(json_object_get(th.attributes, "site")), "plant-7");
	registry_thing_cleanup(&th);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM thing_principals WHERE thing_name = "
	                          "'meter-0001'"),
	                 1);
	assert_int_equal(authlist_describe(&f->core, "line-7", &info, &f->err), IOTP_OK);
	assert_int_equal(info.keys, 1);
	assert_int_equal(info.consumed, 1);
	assert_string_equal(info.template_name, "factory");
	authlist_info_cleanup(&info);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM events WHERE action = 'authlist.consume'"),
	                 1);
	enroll_out_cleanup(&out);

	/* Replay: refused, audited, nothing new. */
	assert_int_equal(authlist_enroll(&f->core, "device:authlist", &in, &out, &f->err),
	                 IOTP_ERR_DENIED);
	assert_non_null(strstr(f->err.msg, "already been used"));
	assert_int_equal(count(f, "SELECT COUNT(*) FROM events WHERE action = 'authlist.replay'"),
	                 1);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM certificates"), 1);
	free(csr);
	EVP_PKEY_free(key);
}

static void test_unknown_key_and_wrong_label(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *key = NULL, *other = NULL;
	struct enroll_in in;
	struct enroll_out out;
	unsigned char *csr;
	size_t csr_len;
	int known = 1;

	memset(&in, 0, sizeof(in));
	memset(&out, 0, sizeof(out));
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &f->err), IOTP_OK);
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &other, &f->err), IOTP_OK);
	assert_int_equal(authlist_create(&f->core, ACTOR, "l1", "factory", NULL, &f->err), IOTP_OK);
	upload(f, "l1", other, "dev-x", 0);
	csr = make_csr(key, "x", &csr_len);
	assert_int_equal(authlist_csr_known(&f->core, csr, csr_len, &known, &f->err), IOTP_OK);
	assert_int_equal(known, 0);
	in.via = ENROLL_AUTHLIST;
	in.csr = csr;
	in.csr_len = csr_len;
	assert_int_equal(authlist_enroll(&f->core, "device:authlist", &in, &out, &f->err),
	                 IOTP_ERR_DENIED);
	assert_non_null(strstr(f->err.msg, "not on any authorized key list"));
	assert_int_equal(
		count(f, "SELECT COUNT(*) FROM events WHERE action = 'authlist.unknown_key'"), 1);
	free(csr);
	/* The listed key under another template (EST label) is refused and
	 * stays unused. */
	csr = make_csr(other, "x", &csr_len);
	in.csr = csr;
	in.csr_len = csr_len;
	in.template_name = "by-cn";
	assert_int_equal(authlist_enroll(&f->core, "device:authlist", &in, &out, &f->err),
	                 IOTP_ERR_DENIED);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM authlist_keys WHERE consumed IS NULL"), 1);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM certificates"), 0);
	free(csr);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
}

static void test_upload_all_or_none(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *k1 = NULL, *k2 = NULL;
	char *p1, *p2;
	json_t *keys;
	int64_t added = 0;

	assert_int_equal(authlist_create(&f->core, ACTOR, "a", "factory", NULL, &f->err), IOTP_OK);
	assert_int_equal(authlist_create(&f->core, ACTOR, "a", "factory", NULL, &f->err),
	                 IOTP_ERR_EXISTS);
	assert_int_equal(authlist_create(&f->core, ACTOR, "b", "no-such", NULL, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &k1, &f->err), IOTP_OK);
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &k2, &f->err), IOTP_OK);
	p1 = pubkey_pem(k1);
	p2 = pubkey_pem(k2);
	/* The second entry repeats the first key: nothing is added. */
	keys = json_pack("[{s:s, s:s}, {s:s, s:s}]", "publicKey", p1, "deviceId", "d1",
	                 "publicKey", p1, "deviceId", "d2");
	assert_int_equal(authlist_add_keys(&f->core, ACTOR, "a", keys, &added, &f->err),
	                 IOTP_ERR_EXISTS);
	assert_non_null(strstr(f->err.msg, "keys[1]"));
	json_decref(keys);
	keys = json_pack("[{s:s, s:s}, {s:s, s:s}]", "publicKey", p1, "deviceId", "d1",
	                 "publicKey", p2, "deviceId", "bad id!");
	assert_int_equal(authlist_add_keys(&f->core, ACTOR, "a", keys, &added, &f->err),
	                 IOTP_ERR_INVALID);
	json_decref(keys);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM authlist_keys"), 0);
	keys = json_pack("[{s:s, s:s}]", "publicKey", p1, "deviceId", "d1");
	assert_int_equal(authlist_add_keys(&f->core, ACTOR, "missing", keys, &added, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(authlist_add_keys(&f->core, ACTOR, "a", keys, &added, &f->err), IOTP_OK);
	json_decref(keys);
	assert_int_equal(authlist_delete(&f->core, ACTOR, "a", &f->err), IOTP_OK);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM authlist_keys"), 0);
	assert_int_equal(authlist_delete(&f->core, ACTOR, "a", &f->err), IOTP_ERR_NOT_FOUND);
	free(p1);
	free(p2);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

static void test_enrol_by_key_and_claim(void **state)
{
	struct fx *f = *state;
	struct accesskey inst, other;
	struct prov_claim claim;
	struct enroll_in in;
	struct enroll_out out;
	EVP_PKEY *key = NULL;
	unsigned char *csr;
	size_t csr_len;

	memset(&in, 0, sizeof(in));
	memset(&out, 0, sizeof(out));
	memset(&claim, 0, sizeof(claim));
	assert_int_equal(accesskey_create(&f->core, "cli", ACCESSKEY_ROLE_INSTALLER, "by-cn", NULL,
	                                  &inst, &f->err),
	                 IOTP_OK);
	assert_int_equal(accesskey_create(&f->core, "cli", ACCESSKEY_ROLE_INSTALLER, "factory,off",
	                                  NULL, &other, &f->err),
	                 IOTP_OK);
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &f->err), IOTP_OK);
	csr = make_csr(key, "sensor-9", &csr_len);
	in.via = ENROLL_KEY;
	in.csr = csr;
	in.csr_len = csr_len;
	in.key = &other; /* not allowed for by-cn; two templates: must name one */
	assert_int_equal(authlist_enroll(&f->core, "key:x", &in, &out, &f->err), IOTP_ERR_INVALID);
	in.template_name = "by-cn";
	assert_int_equal(authlist_enroll(&f->core, "key:x", &in, &out, &f->err), IOTP_ERR_DENIED);
	in.template_name = "off";
	assert_int_equal(authlist_enroll(&f->core, "key:x", &in, &out, &f->err), IOTP_ERR_DENIED);
	assert_non_null(strstr(f->err.msg, "disabled"));
	in.key = &inst;
	in.template_name = NULL; /* its only template */
	assert_int_equal(authlist_enroll(&f->core, "key:x", &in, &out, &f->err), IOTP_OK);
	assert_string_equal(out.thing_name, "sensor-9");
	enroll_out_cleanup(&out);

	/* A trusted-user claim enrols for its own template only. */
	assert_int_equal(prov_claim_create(&f->core, ACTOR, "by-cn", &claim, &f->err), IOTP_OK);
	free(csr);
	csr = make_csr(key, "sensor-10", &csr_len);
	in.via = ENROLL_CLAIM;
	in.csr = csr;
	in.csr_len = csr_len;
	in.key = NULL;
	in.claim_cert_id = claim.cert_id;
	in.template_name = "factory";
	assert_int_equal(authlist_enroll(&f->core, "device:c", &in, &out, &f->err), IOTP_ERR_DENIED);
	in.template_name = NULL;
	assert_int_equal(authlist_enroll(&f->core, "device:c", &in, &out, &f->err), IOTP_OK);
	assert_string_equal(out.thing_name, "sensor-10");
	enroll_out_cleanup(&out);
	{
		int is_claim = 0;

		assert_int_equal(authlist_cert_is_claim(&f->core, claim.cert_id, &is_claim, &f->err),
		                 IOTP_OK);
		assert_true(is_claim);
	}
	prov_claim_cleanup(&claim);
	accesskey_cleanup(&inst);
	accesskey_cleanup(&other);
	free(csr);
	EVP_PKEY_free(key);
}

static void test_reenroll(void **state)
{
	struct fx *f = *state;
	EVP_PKEY *key = NULL, *key2 = NULL;
	struct enroll_in in;
	struct enroll_out first, second;
	struct registry_cert c;
	unsigned char *csr;
	size_t csr_len;
	int retired = 0;
	char sql[256];

	memset(&in, 0, sizeof(in));
	memset(&first, 0, sizeof(first));
	memset(&second, 0, sizeof(second));
	memset(&c, 0, sizeof(c));
	assert_int_equal(authlist_create(&f->core, ACTOR, "r", "factory", NULL, &f->err), IOTP_OK);
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &f->err), IOTP_OK);
	upload(f, "r", key, "valve-3", 0);
	csr = make_csr(key, "valve-3", &csr_len);
	in.via = ENROLL_AUTHLIST;
	in.csr = csr;
	in.csr_len = csr_len;
	assert_int_equal(authlist_enroll(&f->core, "device:authlist", &in, &first, &f->err), IOTP_OK);
	free(csr);

	/* Another subject is refused; the same subject with a new key works. */
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key2, &f->err), IOTP_OK);
	csr = make_csr(key2, "someone-else", &csr_len);
	assert_int_equal(authlist_reenroll(&f->core, "device:x", first.cert_id, csr, csr_len,
	                                   &second, &f->err),
	                 IOTP_ERR_CERT);
	free(csr);
	csr = make_csr(key2, "valve-3", &csr_len);
	assert_int_equal(authlist_reenroll(&f->core, "device:x", first.cert_id, csr, csr_len,
	                                   &second, &f->err),
	                 IOTP_OK);
	assert_string_not_equal(second.cert_id, first.cert_id);
	snprintf(sql, sizeof(sql),
	         "SELECT COUNT(*) FROM thing_principals WHERE thing_name = 'valve-3' AND "
	         "principal = 'cert/%s'",
	         second.cert_id);
	assert_int_equal(count(f, sql), 1);
	/* The old one stays ACTIVE until the new one is used. */
	assert_int_equal(registry_cert_describe(&f->core, first.cert_id, &c, &f->err), IOTP_OK);
	assert_int_equal(c.status, REGISTRY_CERT_ACTIVE);
	registry_cert_cleanup(&c);
	assert_int_equal(authlist_retire_on_use(&f->core, "system", second.cert_id, &retired,
	                                        &f->err),
	                 IOTP_OK);
	assert_int_equal(retired, 1);
	assert_int_equal(registry_cert_describe(&f->core, first.cert_id, &c, &f->err), IOTP_OK);
	assert_int_equal(c.status, REGISTRY_CERT_INACTIVE);
	registry_cert_cleanup(&c);
	assert_int_equal(authlist_retire_on_use(&f->core, "system", second.cert_id, &retired,
	                                        &f->err),
	                 IOTP_OK);
	assert_int_equal(retired, 0);
	/* An expired certificate cannot re-enrol, ACTIVE or not: TLS accepted
	 * it for possession only. */
	{
		struct enroll_out late;
		struct store_val p[] = {SV_TEXT(second.cert_id)};

		memset(&late, 0, sizeof(late));
		assert_int_equal(store_exec(f->core.store,
		                            "UPDATE certificates SET not_after = 1000 WHERE id = ?", p,
		                            1, NULL, NULL, &f->err),
		                 IOTP_OK);
		assert_int_equal(authlist_reenroll(&f->core, "device:x", second.cert_id, csr, csr_len,
		                                   &late, &f->err),
		                 IOTP_ERR_DENIED);
		assert_non_null(strstr(f->err.msg, "expired"));
		assert_null(late.cert_pem);
		assert_int_equal(store_exec(f->core.store,
		                            "UPDATE certificates SET not_after = 4102444800 WHERE id = ?",
		                            p, 1, NULL, NULL, &f->err),
		                 IOTP_OK);
	}
	/* A revoked certificate cannot re-enrol. */
	assert_int_equal(registry_cert_update_status(&f->core, ACTOR, second.cert_id,
	                                             REGISTRY_CERT_REVOKED, &f->err),
	                 IOTP_OK);
	{
		struct enroll_out third;

		memset(&third, 0, sizeof(third));
		assert_int_equal(authlist_reenroll(&f->core, "device:x", second.cert_id, csr, csr_len,
		                                   &third, &f->err),
		                 IOTP_ERR_DENIED);
		assert_non_null(strstr(f->err.msg, "REVOKED"));
	}
	enroll_out_cleanup(&first);
	enroll_out_cleanup(&second);
	free(csr);
	EVP_PKEY_free(key);
	EVP_PKEY_free(key2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fingerprints_agree),
		cmocka_unit_test_setup_teardown(test_enrol_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_key_and_wrong_label, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upload_all_or_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enrol_by_key_and_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reenroll, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
