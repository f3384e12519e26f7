/*
 * Fleet provisioning without a transport: certificates with ownership
 * tokens, register-thing (token life cycle, a race on one token, the hook
 * through a fake caller), trusted-user claims and their policy, the sweep,
 * iotprovd's sweep timer, JITP, and the small pure helpers (error shape, hook
 * answer, hook URL).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <event2/event.h>

#include "common/util.h"
#include "core/policy.h"
#include "core/store/store.h"
#include "helpers.h"
#include "server/sweep.h"

/* A fleet template "fleet" (enabled) and what it names. */
static void fleet_setup(struct fx *f, const json_t *hook)
{
	fx_group(f, "fleet");
	fx_policy(f, "fleet-policy");
	fx_template(f, "fleet", "FLEET_PROVISIONING", 1, FX_FLEET_BODY, hook);
}

static json_t *serial(const char *s)
{
	return json_pack("{s:s}", "SerialNumber", s);
}

static char *status_of(struct fx *f, const char *id)
{
	return fx_text(f, "SELECT status FROM certificates WHERE id = ?", id);
}

static void expect_status(struct fx *f, const char *id, const char *want)
{
	char *s = status_of(f, id);

	if (want == NULL)
		assert_null(s);
	else
		assert_string_equal(s, want);
	free(s);
}

static void keys_and_token(void **state)
{
	struct fx *f = *state;
	struct prov_new_cert nc = {0};
	struct prov_result r = {0};
	struct prov_claimant who = {0};
	char claim[65], hash[65], *stored, *dump;
	unsigned char md[32];
	unsigned int mdlen = 0;
	json_t *p = serial("SN1");
	int64_t expires;

	fleet_setup(f, NULL);
	fx_claimant(f, claim);
	who.cert_id = claim;
	who.client_id = "factory-7";
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &who, &nc, &f->err), IOTP_OK);
	assert_int_equal(strlen(nc.cert_id), 64);
	assert_int_equal(strlen(nc.token), 64);
	assert_int_equal(strspn(nc.token, "0123456789abcdef"), 64);
	expect_status(f, nc.cert_id, "PENDING_ACTIVATION");
	/* The key belongs to the certificate. */
	{
		BIO *b = BIO_new_mem_buf(nc.private_key_pem, -1);
		EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
		X509 *x = NULL;

		assert_non_null(k);
		assert_int_equal(pki_cert_parse(nc.cert_pem, strlen(nc.cert_pem), &x, &f->err),
		                 IOTP_OK);
		assert_int_equal(X509_check_private_key(x, k), 1);
		X509_free(x);
		EVP_PKEY_free(k);
		BIO_free(b);
	}
	/* Only the token's SHA-256 is stored; the token itself nowhere. */
	assert_int_equal(EVP_Digest(nc.token, 64, md, &mdlen, EVP_sha256(), NULL), 1);
	util_hex(md, 32, hash);
	stored = fx_text(f, "SELECT token_hash FROM prov_tokens WHERE cert_id = ?", nc.cert_id);
	assert_string_equal(stored, hash);
	free(stored);
	dump = fx_dump(f);
	assert_null(strstr(dump, nc.token));
	free(dump);
	expires = fx_int(f, "SELECT expires - created FROM prov_tokens");
	assert_int_equal(expires, 3600);

	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", nc.token, p, NULL, &r,
	                                     &f->err),
	                 IOTP_OK);
	assert_string_equal(r.thing_name, "dev-SN1");
	assert_string_equal(r.cert_id, nc.cert_id);
	assert_string_equal(json_string_value(json_object_get(r.device_configuration, "Fallback")),
	                    "https://fallback.example");
	expect_status(f, nc.cert_id, "ACTIVE");
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM thing_principals WHERE thing_name = "
	                           "'dev-SN1'"),
	                 1);
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM policy_targets WHERE policy_name = "
	                           "'fleet-policy'"),
	                 1);
	assert_int_equal(fx_int(f, "SELECT used FROM prov_tokens"), 1);
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM events WHERE action = 'provision.apply' "
	                           "AND actor LIKE 'device:%'"),
	                 1);
	prov_result_cleanup(&r);

	/* Single use. */
	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", nc.token, p, NULL, &r,
	                                     &f->err),
	                 IOTP_ERR_TOKEN);
	json_decref(p);
	prov_new_cert_cleanup(&nc);
}

static void token_refusals(void **state)
{
	struct fx *f = *state;
	struct prov_new_cert nc = {0};
	struct prov_result r = {0};
	struct prov_claimant who = {0}, other = {0}, unknown = {0};
	char claim[65], claim2[65], inactive[65], *before, *after;
	json_t *p = serial("SN2");
	int status;
	const char *code;

	fleet_setup(f, NULL);
	fx_template(f, "off", "FLEET_PROVISIONING", 0, FX_FLEET_BODY, NULL);
	fx_template(f, "jitp", "JITP", 1, FX_JITP_BODY, NULL);
	fx_claimant(f, claim);
	fx_claimant(f, claim2);
	fx_cert(f, REGISTRY_CERT_INACTIVE, inactive);
	who.cert_id = claim;
	other.cert_id = claim2;
	unknown.cert_id = "00000000000000000000000000000000000000000000000000000000000000aa";
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &unknown, &nc, &f->err),
	                 IOTP_ERR_DENIED);
	unknown.cert_id = inactive;
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &unknown, &nc, &f->err),
	                 IOTP_ERR_DENIED);
	assert_int_equal(prov_create_keys_and_certificate(&f->core, NULL, &nc, &f->err),
	                 IOTP_ERR_DENIED);
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &who, &nc, &f->err), IOTP_OK);

	before = fx_dump(f);
	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", "not-a-token", p, NULL, &r,
	                                     &f->err),
	                 IOTP_ERR_TOKEN);
	prov_error_shape(f->err.rc, &status, &code);
	assert_int_equal(status, 400);
	assert_string_equal(code, "InvalidCertificateOwnershipToken");
	/* Issued to another claim certificate. */
	assert_int_equal(prov_register_thing(&f->core, &other, "fleet", nc.token, p, NULL, &r,
	                                     &f->err),
	                 IOTP_ERR_TOKEN);
	assert_int_equal(prov_register_thing(&f->core, &who, "off", nc.token, p, NULL, &r, &f->err),
	                 IOTP_ERR_DENIED);
	assert_int_equal(prov_register_thing(&f->core, &who, "jitp", nc.token, p, NULL, &r,
	                                     &f->err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(prov_register_thing(&f->core, &who, "nope", nc.token, p, NULL, &r,
	                                     &f->err),
	                 IOTP_ERR_NOT_FOUND);
	prov_error_shape(f->err.rc, &status, &code);
	assert_int_equal(status, 404);
	assert_string_equal(code, "ResourceNotFound");
	/* A failed application does not consume the token... */
	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", nc.token, NULL, NULL, &r,
	                                     &f->err),
	                 IOTP_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "SerialNumber"));
	prov_error_shape(f->err.rc, &status, &code);
	assert_string_equal(code, "InvalidParameters");
	after = fx_dump(f);
	assert_string_equal(before, after);
	free(after);

	/* ...and an expired one is refused. */
	fx_exec(f, "UPDATE prov_tokens SET expires = created - 1");
	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", nc.token, p, NULL, &r,
	                                     &f->err),
	                 IOTP_ERR_TOKEN);
	fx_exec(f, "UPDATE prov_tokens SET expires = created + 3600");
	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", nc.token, p, NULL, &r,
	                                     &f->err),
	                 IOTP_OK);
	assert_string_equal(r.thing_name, "dev-SN2");
	prov_result_cleanup(&r);
	free(before);
	json_decref(p);
	prov_new_cert_cleanup(&nc);
}

/* ---- one token, several threads ---- */

struct racer {
	struct fx *f;
	const char *claim;
	const char *token;
	pthread_barrier_t *go;
	iotp_rc rc;
};

static void *race(void *ud)
{
	struct racer *rc = ud;
	struct iotp_core core;
	struct prov_claimant who = {rc->claim, NULL};
	struct prov_result r = {0};
	struct iotp_err err;
	json_t *p = serial("RACE");

	fx_core_open(rc->f, &core);
	pthread_barrier_wait(rc->go);
	rc->rc = prov_register_thing(&core, &who, "fleet", rc->token, p, NULL, &r, &err);
	prov_result_cleanup(&r);
	json_decref(p);
	core_close(&core);
	return NULL;
}

static void token_race(void **state)
{
	struct fx *f = *state;
	struct prov_new_cert nc = {0};
	struct prov_claimant who = {0};
	struct racer racers[4];
	pthread_t th[4];
	pthread_barrier_t go;
	char claim[65];
	int ok = 0, token_errors = 0;

	fleet_setup(f, NULL);
	fx_claimant(f, claim);
	who.cert_id = claim;
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &who, &nc, &f->err), IOTP_OK);
	assert_int_equal(pthread_barrier_init(&go, NULL, 4), 0);
	for (int i = 0; i < 4; i++) {
		racers[i] = (struct racer){f, claim, nc.token, &go, IOTP_ERR_INTERNAL};
		assert_int_equal(pthread_create(&th[i], NULL, race, &racers[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ok += racers[i].rc == IOTP_OK;
		token_errors += racers[i].rc == IOTP_ERR_TOKEN;
	}
	pthread_barrier_destroy(&go);
	assert_int_equal(ok, 1);
	assert_int_equal(token_errors, 3);
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM things WHERE name = 'dev-RACE'"), 1);
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM events WHERE action = 'provision.apply'"),
	                 1);
	prov_new_cert_cleanup(&nc);
}

static void from_csr(void **state)
{
	struct fx *f = *state;
	struct prov_new_cert nc = {0};
	struct prov_claimant who = {0};
	char claim[65], *csr = fx_csr_pem("csr-device");
	X509 *x = NULL;
	X509_REQ *req = NULL;

	fx_claimant(f, claim);
	who.cert_id = claim;
	assert_int_equal(prov_create_certificate_from_csr(&f->core, &who, "garbage", 7, &nc,
	                                                  &f->err),
	                 IOTP_ERR_CERT);
	assert_int_equal(prov_create_certificate_from_csr(&f->core, &who, csr, 0, &nc, &f->err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(prov_create_certificate_from_csr(&f->core, &who, csr, strlen(csr), &nc,
	                                                  &f->err),
	                 IOTP_OK);
	assert_null(nc.private_key_pem);
	assert_int_equal(strlen(nc.token), 64);
	expect_status(f, nc.cert_id, "PENDING_ACTIVATION");
	assert_int_equal(pki_cert_parse(nc.cert_pem, strlen(nc.cert_pem), &x, &f->err), IOTP_OK);
	assert_int_equal(pki_csr_parse(csr, strlen(csr), &req, &f->err), IOTP_OK);
	{
		EVP_PKEY *cert_key = NULL;
		BIO *b = BIO_new_mem_buf(nc.cert_pem, -1);
		X509 *full = PEM_read_bio_X509(b, NULL, NULL, NULL);

		cert_key = X509_get0_pubkey(full);
		assert_int_equal(EVP_PKEY_eq(cert_key, X509_REQ_get0_pubkey(req)), 1);
		X509_free(full);
		BIO_free(b);
	}
	assert_int_equal(X509_verify(x, X509_get0_pubkey(f->core.issuing.cert)), 1);
	X509_REQ_free(req);
	X509_free(x);
	free(csr);
	prov_new_cert_cleanup(&nc);
}

/* ---- the hook through a fake caller ---- */

struct fake_hook {
	const char *answer;     /* JSON text, or NULL to fail */
	iotp_rc fail_rc;
	int calls;
	int timeout_ms;
	char url[128];
	json_t *payload;
};

static iotp_rc fake_call(void *ctx, const char *url, const char *body, int timeout_ms,
                         json_t **answer, struct iotp_err *err)
{
	struct fake_hook *h = ctx;

	h->calls++;
	h->timeout_ms = timeout_ms;
	snprintf(h->url, sizeof(h->url), "%s", url);
	json_decref(h->payload);
	h->payload = json_loads(body, 0, NULL);
	if (h->answer == NULL)
		return iotp_err_set(err, h->fail_rc, "fake hook failure");
	*answer = json_loads(h->answer, 0, NULL);
	return *answer != NULL ? IOTP_OK : iotp_err_set(err, IOTP_ERR_INVALID, "bad fake answer");
}

static void hook_fake(void **state)
{
	struct fx *f = *state;
	struct fake_hook fh = {0};
	struct prov_hook hook = {fake_call, &fh};
	struct prov_new_cert nc = {0};
	struct prov_result r = {0};
	struct prov_claimant who = {0};
	json_t *hk = json_pack("{s:s}", "targetArn", "https://hook.example/pre");
	json_t *p = serial("SN5");
	char claim[65];
	const char *refusals[] = {
		"{\"allowProvisioning\": false}",
		"{\"allowProvisioning\": \"true\"}",
		"{\"allowProvisioning\": 1}",
		"{}",
		"{\"allowProvisioning\": true, \"parameterOverrides\": {\"SerialNumber\": 5}}",
		"{\"allowProvisioning\": true, \"parameterOverrides\": [\"x\"]}",
		"[true]",
	};

	fleet_setup(f, hk);
	fx_claimant(f, claim);
	who.cert_id = claim;
	who.client_id = "client-5";
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &who, &nc, &f->err), IOTP_OK);

	/* No hook caller where the template has a hook: refused. */
	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", nc.token, p, NULL, &r,
	                                     &f->err),
	                 IOTP_ERR_DENIED);
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		fh.answer = refusals[i];
		assert_int_equal(prov_register_thing(&f->core, &who, "fleet", nc.token, p, &hook, &r,
		                                     &f->err),
		                 IOTP_ERR_DENIED);
	}
	fh.answer = NULL;
	fh.fail_rc = IOTP_ERR_TIMEOUT;
	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", nc.token, p, &hook, &r,
	                                     &f->err),
	                 IOTP_ERR_DENIED);
	assert_non_null(strstr(f->err.msg, "in time"));
	fh.fail_rc = IOTP_ERR_IO;
	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", nc.token, p, &hook, &r,
	                                     &f->err),
	                 IOTP_ERR_DENIED);
	expect_status(f, nc.cert_id, "PENDING_ACTIVATION");
	assert_int_equal(fx_int(f, "SELECT used FROM prov_tokens"), 0);

	/* Allowed, with an override of the device's parameter. */
	fh.answer = "{\"allowProvisioning\": true, \"parameterOverrides\": "
	            "{\"SerialNumber\": \"FROM-HOOK\"}}";
	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", nc.token, p, &hook, &r,
	                                     &f->err),
	                 IOTP_OK);
	assert_string_equal(r.thing_name, "dev-FROM-HOOK");
	assert_string_equal(fh.url, "https://hook.example/pre");
	assert_int_equal(fh.timeout_ms, 5000);
	assert_string_equal(json_string_value(json_object_get(fh.payload, "claimCertificateId")),
	                    claim);
	assert_string_equal(json_string_value(json_object_get(fh.payload, "certificateId")),
	                    nc.cert_id);
	assert_string_equal(json_string_value(json_object_get(fh.payload, "certificatePem")),
	                    nc.cert_pem);
	assert_string_equal(json_string_value(json_object_get(fh.payload, "templateArn")),
	                    "arn:aws:iot:us-east-1:123456789012:provisioningtemplate/fleet");
	assert_string_equal(json_string_value(json_object_get(fh.payload, "clientId")), "client-5");
	assert_string_equal(json_string_value(json_object_get(
	                        json_object_get(fh.payload, "parameters"), "SerialNumber")),
	                    "SN5");
	prov_result_cleanup(&r);
	json_decref(fh.payload);
	json_decref(hk);
	json_decref(p);
	prov_new_cert_cleanup(&nc);
}

/* ---- claims ---- */

static void claims(void **state)
{
	struct fx *f = *state;
	struct prov_claim c = {0};
	struct prov_new_cert nc = {0};
	struct prov_result r = {0};
	struct prov_claimant who = {0};
	json_t *p = serial("SN9");
	int64_t now = util_now(), nb = 0, na = 0;
	char *purpose, *tmpl;
	X509 *x = NULL;

	fleet_setup(f, NULL);
	fx_template(f, "other", "FLEET_PROVISIONING", 1, FX_FLEET_BODY, NULL);
	fx_template(f, "off", "FLEET_PROVISIONING", 0, FX_FLEET_BODY, NULL);
	fx_template(f, "jitp", "JITP", 1, FX_JITP_BODY, NULL);
	assert_int_equal(prov_claim_create(&f->core, ACTOR, "nope", &c, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(prov_claim_create(&f->core, ACTOR, "off", &c, &f->err), IOTP_ERR_INVALID);
	assert_int_equal(prov_claim_create(&f->core, ACTOR, "jitp", &c, &f->err), IOTP_ERR_INVALID);
	assert_int_equal(prov_claim_create(&f->core, ACTOR, "fleet", &c, &f->err), IOTP_OK);
	assert_true(c.expiration >= now + 300 && c.expiration <= now + 302);
	assert_non_null(strstr(c.public_key_pem, "BEGIN PUBLIC KEY"));
	assert_non_null(strstr(c.private_key_pem, "PRIVATE KEY"));
	assert_int_equal(pki_cert_parse(c.cert_pem, strlen(c.cert_pem), &x, &f->err), IOTP_OK);
	assert_int_equal(pki_cert_validity(x, &nb, &na, &f->err), IOTP_OK);
	assert_int_equal(na, c.expiration);
	X509_free(x);
	purpose = fx_text(f, "SELECT purpose FROM certificates WHERE id = ?", c.cert_id);
	tmpl = fx_text(f, "SELECT template_name FROM certificates WHERE id = ?", c.cert_id);
	assert_string_equal(purpose, "CLAIM");
	assert_string_equal(tmpl, "fleet");
	free(purpose);
	free(tmpl);
	expect_status(f, c.cert_id, "ACTIVE");

	/* The claim provisions through its own template only. */
	who.cert_id = c.cert_id;
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &who, &nc, &f->err), IOTP_OK);
	assert_int_equal(prov_register_thing(&f->core, &who, "other", nc.token, p, NULL, &r,
	                                     &f->err),
	                 IOTP_ERR_DENIED);
	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", nc.token, p, NULL, &r,
	                                     &f->err),
	                 IOTP_OK);
	assert_string_equal(r.thing_name, "dev-SN9");
	prov_result_cleanup(&r);
	prov_new_cert_cleanup(&nc);

	/* Expired: no more certificates for it. */
	{
		struct store_val pv[] = {SV_INT(now - 1), SV_TEXT(c.cert_id)};

		assert_int_equal(store_exec(f->core.store,
		                            "UPDATE certificates SET not_after = ? WHERE id = ?", pv, 2,
		                            NULL, NULL, &f->err),
		                 IOTP_OK);
	}
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &who, &nc, &f->err),
	                 IOTP_ERR_DENIED);
	assert_non_null(strstr(f->err.msg, "expired"));
	prov_claim_cleanup(&c);

	/* The validity follows [provisioning] claim_ttl. */
	f->conf.prov_claim_ttl = 60;
	assert_int_equal(prov_claim_create(&f->core, ACTOR, "fleet", &c, &f->err), IOTP_OK);
	assert_true(c.expiration >= now + 60 && c.expiration <= now + 62);
	prov_claim_cleanup(&c);
	json_decref(p);
}

static void claim_policy(void **state)
{
	struct iotp_err err;
	struct policy *pol = NULL;
	const struct policy *list[1];
	char *doc = NULL;
	const char *base = "arn:aws:iot:us-east-1:123456789012:";
	struct {
		enum policy_action a;
		const char *res;
		enum policy_decision want;
	} cases[] = {
		{POLICY_ACTION_CONNECT, "client/anything", POLICY_ALLOW},
		{POLICY_ACTION_PUBLISH, "topic/$aws/certificates/create/json", POLICY_ALLOW},
		{POLICY_ACTION_PUBLISH, "topic/$aws/certificates/create-from-csr/cbor", POLICY_ALLOW},
		{POLICY_ACTION_RECEIVE, "topic/$aws/certificates/create/json/accepted", POLICY_ALLOW},
		{POLICY_ACTION_PUBLISH, "topic/$aws/provisioning-templates/fleet/provision/json",
		 POLICY_ALLOW},
		{POLICY_ACTION_SUBSCRIBE,
		 "topicfilter/$aws/provisioning-templates/fleet/provision/json/rejected", POLICY_ALLOW},
		{POLICY_ACTION_PUBLISH, "topic/$aws/provisioning-templates/other/provision/json",
		 POLICY_DENY},
		{POLICY_ACTION_PUBLISH, "topic/$aws/provisioning-templates/fleet2/provision/json",
		 POLICY_DENY},
		{POLICY_ACTION_PUBLISH, "topic/$aws/things/x/shadow/update", POLICY_DENY},
		{POLICY_ACTION_SUBSCRIBE, "topicfilter/#", POLICY_DENY},
		{POLICY_ACTION_RETAIN_PUBLISH, "topic/$aws/certificates/create/json", POLICY_DENY},
	};

	(void)state;
	assert_int_equal(prov_claim_policy_document("bad name", &doc, &err), IOTP_ERR_INVALID);
	assert_int_equal(prov_claim_policy_document("fleet", &doc, &err), IOTP_OK);
	assert_int_equal(policy_validate(doc, strlen(doc), &err), IOTP_OK);
	assert_int_equal(policy_compile(doc, strlen(doc), &pol, &err), IOTP_OK);
	list[0] = pol;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char res[256];

		snprintf(res, sizeof(res), "%s%s", base, cases[i].res);
		if (policy_eval(list, 1, cases[i].a, res, NULL) != cases[i].want)
			fail_msg("%s %s", policy_action_name(cases[i].a), cases[i].res);
	}
	policy_free(pol);
	free(doc);
}

/* ---- the sweep ---- */

static void sweep(void **state)
{
	struct fx *f = *state;
	struct prov_new_cert a = {0}, b = {0}, c = {0};
	struct prov_claim old = {0}, fresh = {0};
	struct prov_result r = {0};
	struct prov_claimant who = {0};
	json_t *p = serial("SW");
	char claim[65];
	int64_t now = util_now();
	int deleted = -1;

	fleet_setup(f, NULL);
	fx_claimant(f, claim);
	who.cert_id = claim;
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &who, &a, &f->err), IOTP_OK);
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &who, &b, &f->err), IOTP_OK);
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &who, &c, &f->err), IOTP_OK);
	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", b.token, p, NULL, &r, &f->err),
	                 IOTP_OK);
	prov_result_cleanup(&r);
	assert_int_equal(prov_claim_create(&f->core, ACTOR, "fleet", &old, &f->err), IOTP_OK);
	assert_int_equal(prov_claim_create(&f->core, ACTOR, "fleet", &fresh, &f->err), IOTP_OK);

	/* Nothing is due yet. */
	assert_int_equal(prov_sweep_expired(&f->core, now, &deleted, &f->err), IOTP_OK);
	assert_int_equal(deleted, 0);

	/* a's and b's tokens run out (b's was used); the old claim expires. */
	{
		struct store_val pa[] = {SV_INT(now - 1), SV_TEXT(a.cert_id), SV_TEXT(b.cert_id)};
		struct store_val pc[] = {SV_INT(now - 1), SV_TEXT(old.cert_id)};

		assert_int_equal(store_exec(f->core.store,
		                            "UPDATE prov_tokens SET expires = ? WHERE cert_id IN (?, ?)",
		                            pa, 3, NULL, NULL, &f->err),
		                 IOTP_OK);
		assert_int_equal(store_exec(f->core.store,
		                            "UPDATE certificates SET not_after = ? WHERE id = ?", pc, 2,
		                            NULL, NULL, &f->err),
		                 IOTP_OK);
	}
	assert_int_equal(prov_sweep_expired(&f->core, now, &deleted, &f->err), IOTP_OK);
	assert_int_equal(deleted, 2);
	expect_status(f, a.cert_id, NULL);     /* unclaimed: gone */
	expect_status(f, b.cert_id, "ACTIVE"); /* provisioned: kept */
	expect_status(f, c.cert_id, "PENDING_ACTIVATION");
	expect_status(f, old.cert_id, NULL);
	expect_status(f, fresh.cert_id, "ACTIVE");
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM prov_tokens"), 1); /* c's */
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM events WHERE action = 'cert.delete' AND "
	                           "actor = 'system'"),
	                 2);
	/* A sweep of nothing due changes nothing. */
	{
		char *before = fx_dump(f), *after;

		assert_int_equal(prov_sweep_expired(&f->core, now, &deleted, &f->err), IOTP_OK);
		assert_int_equal(deleted, 0);
		after = fx_dump(f);
		assert_string_equal(before, after);
		free(before);
		free(after);
	}
	/* a's token is gone with its certificate. */
	assert_int_equal(prov_register_thing(&f->core, &who, "fleet", a.token, p, NULL, &r, &f->err),
	                 IOTP_ERR_TOKEN);
	json_decref(p);
	prov_new_cert_cleanup(&a);
	prov_new_cert_cleanup(&b);
	prov_new_cert_cleanup(&c);
	prov_claim_cleanup(&old);
	prov_claim_cleanup(&fresh);
}

/* iotprovd's timer runs the sweep on its event loop. */
static void sweep_timer(void **state)
{
	struct fx *f = *state;
	struct prov_new_cert a = {0};
	struct prov_claimant who = {0};
	struct event_base *base = event_base_new();
	struct sweep *sw = NULL;
	struct timeval tv = {1, 600000};
	char claim[65];

	assert_non_null(base);
	fx_claimant(f, claim);
	who.cert_id = claim;
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &who, &a, &f->err), IOTP_OK);
	fx_exec(f, "UPDATE prov_tokens SET expires = created - 10");
	assert_int_equal(sweep_start(base, &f->core, 1, &sw, &f->err), IOTP_OK);
	expect_status(f, a.cert_id, "PENDING_ACTIVATION"); /* not before the first tick */
	event_base_loopexit(base, &tv);
	assert_int_equal(event_base_dispatch(base), 0);
	expect_status(f, a.cert_id, NULL);
	sweep_free(sw);
	event_base_free(base);
	prov_new_cert_cleanup(&a);
}

/* ---- JITP ---- */

static void jitp(void **state)
{
	struct fx *f = *state;
	struct registry_ca_register in = {0};
	struct registry_ca_update up = {0};
	struct registry_ref ca;
	struct prov_result r = {0};
	struct pki_ca vendor, stranger;
	char code[65], *ca_pem, *verif, *dev_pem, *other_pem, *before, *after, *ca_id;
	json_t *cfg = json_pack("{s:s}", "templateName", "jitp");
	X509 *dev = NULL, *other = NULL;

	fx_policy(f, "fleet-policy");
	fx_template(f, "jitp", "JITP", 1, FX_JITP_BODY, NULL);
	fx_make_root("Vendor CA", &vendor);
	fx_make_root("Stranger CA", &stranger);
	ca_pem = fx_cert_pem(vendor.cert);
	assert_int_equal(registry_regcode_get(&f->core, ACTOR, code, &f->err), IOTP_OK);
	verif = fx_issue_pem(&vendor, code, NULL, 1);
	in.ca_pem = ca_pem;
	in.verification_pem = verif;
	in.set_active = 1;
	in.allow_auto_registration = 1;
	in.registration_config = cfg;
	assert_int_equal(registry_ca_register(&f->core, ACTOR, &in, &ca, &f->err), IOTP_OK);
	dev_pem = fx_issue_pem(&vendor, "meter-1", NULL, 30);
	other_pem = fx_issue_pem(&stranger, "meter-2", NULL, 30);
	assert_int_equal(pki_cert_parse(dev_pem, strlen(dev_pem), &dev, &f->err), IOTP_OK);
	assert_int_equal(pki_cert_parse(other_pem, strlen(other_pem), &other, &f->err), IOTP_OK);

	assert_int_equal(prov_jitp(&f->core, "system", dev, ca.id, &r, &f->err), IOTP_OK);
	assert_string_equal(r.thing_name, "meter-1");
	expect_status(f, r.cert_id, "ACTIVE");
	ca_id = fx_text(f, "SELECT ca_id FROM certificates WHERE id = ?", r.cert_id);
	assert_string_equal(ca_id, ca.id);
	free(ca_id);
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM policy_targets WHERE policy_name = "
	                           "'fleet-policy'"),
	                 1);
	prov_result_cleanup(&r);
	/* The next connection changes nothing. */
	before = fx_dump(f);
	assert_int_equal(prov_jitp(&f->core, "system", dev, ca.id, &r, &f->err), IOTP_OK);
	assert_false(r.thing_created);
	prov_result_cleanup(&r);
	after = fx_dump(f);
	assert_string_equal(before, after);
	free(after);
	/* Not from that CA. */
	assert_int_equal(prov_jitp(&f->core, "system", other, ca.id, &r, &f->err), IOTP_ERR_CERT);
	/* Auto-registration off: refused, nothing registered. */
	up.id = ca.id;
	up.new_auto_registration = "DISABLE";
	assert_int_equal(registry_ca_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
	free(before);
	before = fx_dump(f);
	{
		char *pem3 = fx_issue_pem(&vendor, "meter-3", NULL, 30);
		X509 *x3 = NULL;

		assert_int_equal(pki_cert_parse(pem3, strlen(pem3), &x3, &f->err), IOTP_OK);
		assert_int_equal(prov_jitp(&f->core, "system", x3, ca.id, &r, &f->err),
		                 IOTP_ERR_DENIED);
		after = fx_dump(f);
		assert_string_equal(before, after);
		free(after);
		/* An inline body in the registrationConfig works too. */
		json_decref(cfg);
		cfg = json_pack("{s:s}", "templateBody", FX_JITP_BODY);
		up.new_auto_registration = "ENABLE";
		up.registration_config = cfg;
		assert_int_equal(registry_ca_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
		assert_int_equal(prov_jitp(&f->core, "system", x3, ca.id, &r, &f->err), IOTP_OK);
		assert_string_equal(r.thing_name, "meter-3");
		prov_result_cleanup(&r);
		X509_free(x3);
		free(pem3);
	}
	free(before);
	json_decref(cfg);
	X509_free(dev);
	X509_free(other);
	free(dev_pem);
	free(other_pem);
	free(ca_pem);
	free(verif);
	pki_ca_cleanup(&vendor);
	pki_ca_cleanup(&stranger);
}

/* ---- pure helpers ---- */

static void helpers(void **state)
{
	struct iotp_err err;
	json_t *params = json_pack("{s:s, s:s}", "A", "1", "B", "2"), *merged = NULL, *ans;
	struct {
		iotp_rc rc;
		int status;
		const char *code;
	} shapes[] = {
		{IOTP_ERR_TOKEN, 400, "InvalidCertificateOwnershipToken"},
		{IOTP_ERR_INVALID, 400, "InvalidParameters"},
		{IOTP_ERR_TOO_BIG, 400, "InvalidParameters"},
		{IOTP_ERR_CERT, 400, "InvalidCertificateSigningRequest"},
		{IOTP_ERR_TEMPLATE, 400, "ResourceRegistrationFailure"},
		{IOTP_ERR_DENIED, 403, "AccessDenied"},
		{IOTP_ERR_NOT_FOUND, 404, "ResourceNotFound"},
		{IOTP_ERR_THROTTLED, 429, "Throttled"},
		{IOTP_ERR_BUSY, 503, "ServiceUnavailable"},
		{IOTP_ERR_DB, 500, "InternalError"},
		{IOTP_ERR_NOMEM, 500, "InternalError"},
	};
	struct {
		const char *url;
		int ok;
	} urls[] = {
		{"https://hooks.example/x", 1},        {"HTTPS://hooks.example:8443", 1},
		{"http://127.0.0.1:9000/h", 1},        {"http://localhost/h", 1},
		{"http://[::1]:80/h", 1},              {"http://hooks.example/h", 0},
		{"http://127.0.0.1.evil.example/", 0}, {"https://user:pw@hooks.example/", 0},
		{"ftp://hooks.example/", 0},           {"https:///nohost", 0},
		{"https://a b/", 0},                   {"arn:aws:lambda:us-east-1:1:function:f", 0},
		{"", 0},                               {NULL, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		int status = 0;
		const char *code = NULL;

		prov_error_shape(shapes[i].rc, &status, &code);
		assert_int_equal(status, shapes[i].status);
		assert_string_equal(code, shapes[i].code);
	}
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		if (prov_hook_url_ok(urls[i].url) != urls[i].ok)
			fail_msg("prov_hook_url_ok(%s)", urls[i].url != NULL ? urls[i].url : "NULL");
	}
	ans = json_pack("{s:b, s:{s:s, s:s}}", "allowProvisioning", 1, "parameterOverrides", "B",
	                "two", "C", "3");
	assert_int_equal(prov_hook_answer(ans, params, &merged, &err), IOTP_OK);
	assert_string_equal(json_string_value(json_object_get(merged, "A")), "1");
	assert_string_equal(json_string_value(json_object_get(merged, "B")), "two");
	assert_string_equal(json_string_value(json_object_get(merged, "C")), "3");
	assert_string_equal(json_string_value(json_object_get(params, "B")), "2"); /* untouched */
	json_decref(merged);
	json_decref(ans);
	ans = json_pack("{s:b}", "allowProvisioning", 1);
	assert_int_equal(prov_hook_answer(ans, NULL, &merged, &err), IOTP_OK);
	assert_int_equal(json_object_size(merged), 0);
	json_decref(merged);
	json_decref(ans);
	ans = json_pack("{s:b}", "allowProvisioning", 0);
	assert_int_equal(prov_hook_answer(ans, params, &merged, &err), IOTP_ERR_DENIED);
	json_decref(ans);
	assert_int_equal(prov_hook_answer(NULL, params, &merged, &err), IOTP_ERR_DENIED);
	json_decref(params);
}

int suite_fleet(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(keys_and_token, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(token_refusals, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(token_race, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(from_csr, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(hook_fake, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(claims, fx_setup, fx_teardown),
		cmocka_unit_test(claim_policy),
		cmocka_unit_test_setup_teardown(sweep, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(sweep_timer, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(jitp, fx_setup, fx_teardown),
		cmocka_unit_test(helpers),
	};

	return cmocka_run_group_tests_name("fleet", tests, NULL, NULL);
}
