/*
 * The store's integrity check (core/check.h): a registry built through the
 * registry's own functions passes with no problem at all, and each kind of
 * damage a crash, a bug or a hand edit could leave is reported with its
 * kind and the object it concerns. Runs on SQLite, and on PostgreSQL when
 * IOTP_STORE_URL names one (tests/common/test_store.h): damage that the
 * schema's references would refuse is written with them switched off.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../common/test_store.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"
#include "core/check.h"
#include "core/core.h"
#include "core/pki.h"
#include "core/provision.h"
#include "core/registry.h"
#include "core/setup.h"

#define ACTOR "key:AKIATEST"

struct fx {
	struct test_store ts;
	struct iotp_conf conf;
	struct iotp_core core;
	struct iotp_err err;
	struct pki_ca vendor;   /* an external CA, registered */
	struct pki_ca stranger; /* a CA the store does not know */
	char issued[PKI_CERT_ID_LEN + 1];   /* issued by iotprov, ACTIVE */
	char vendor_cert[PKI_CERT_ID_LEN + 1];
	char noca_cert[PKI_CERT_ID_LEN + 1];
	char vendor_ca[PKI_CERT_ID_LEN + 1];
};

static int is_pg(struct fx *f)
{
	return strcmp(store_backend_name(f->core.store), "postgresql") == 0;
}

static void sql(struct fx *f, const char *q)
{
	if (store_exec(f->core.store, q, NULL, 0, NULL, NULL, &f->err) != IOTP_OK)
		fail_msg("%s: %s", q, f->err.msg);
}

static void sqlf(struct fx *f, const char *fmt, ...) IOTP_PRINTF(2, 3);

static void sqlf(struct fx *f, const char *fmt, ...)
{
	char q[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	sql(f, q);
}

/* Lets the next statements write rows the schema's references refuse. */
static void references_off(struct fx *f)
{
	sql(f, is_pg(f) ? "SET session_replication_role = replica" : "PRAGMA foreign_keys = OFF");
}

static void make_ca(const char *cn, struct pki_ca *out)
{
	struct iotp_err err;

	memset(out, 0, sizeof(*out));
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &out->key, &err), IOTP_OK);
	assert_int_equal(pki_ca_create_root(out->key, cn, 3650, &out->cert, &err), IOTP_OK);
}

static char *pem_of(X509 *x)
{
	struct iotp_err err;
	char *pem = NULL;

	assert_int_equal(pki_cert_to_pem(x, &pem, &err), IOTP_OK);
	return pem;
}

/* A device certificate for a new key signed by ca; PEM malloc'ed. */
static char *issue_pem(const struct pki_ca *ca, const char *cn)
{
	struct pki_issue_opts opts = {.days = 30};
	struct iotp_err err;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	char *pem;

	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &err), IOTP_OK);
	assert_int_equal(pki_cert_issue_for_key(ca, key, cn, &opts, &x, &err), IOTP_OK);
	pem = pem_of(x);
	X509_free(x);
	EVP_PKEY_free(key);
	return pem;
}

static void id_of(const char *pem, char out[PKI_CERT_ID_LEN + 1])
{
	struct iotp_err err;
	X509 *x = NULL;

	assert_int_equal(pki_cert_parse(pem, strlen(pem), &x, &err), IOTP_OK);
	assert_int_equal(pki_cert_id(x, out, &err), IOTP_OK);
	X509_free(x);
}

/* Records ca in the cas table as an external CA, as RegisterCACertificate
 * leaves it. */
static void record_external_ca(struct fx *f, X509 *ca, const char *status, char id[65])
{
	char *pem = pem_of(ca), *subject = NULL;
	int64_t now = util_now();

	id_of(pem, id);
	assert_int_equal(pki_cert_subject_string(ca, 0, &subject, &f->err), IOTP_OK);
	struct store_val p[] = {SV_TEXT(id),         SV_TEXT(pem), SV_TEXT(subject), SV_TEXT(status),
	                        SV_INT(now),         SV_INT(now + 86400), SV_INT(now), SV_INT(now)};

	if (store_exec(f->core.store,
	               "INSERT INTO cas (id, pem, subject, status, not_before, not_after, created, "
	               "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
	               p, 8, NULL, NULL, &f->err) != IOTP_OK)
		fail_msg("insert CA: %s", f->err.msg);
	free(subject);
	free(pem);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store *st = NULL;
	struct pki_ca root = {0};
	EVP_PKEY *ikey = NULL;
	X509 *icert = NULL;

	assert_non_null(f);
	conf_init(&f->conf, NULL);
	if (test_store_new(&f->ts, &f->err) != IOTP_OK)
		fail_msg("fresh store: %s", f->err.msg);
	assert_int_equal(store_open(f->ts.url, &st, &f->err), IOTP_OK);
	core_init_with_store(&f->core, &f->conf, st);
	make_ca("Check Root CA", &root);
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &ikey, &f->err), IOTP_OK);
	assert_int_equal(pki_ca_create_issuing(&root, ikey, "Check Issuing CA", 3650, &icert,
	                                       &f->err),
	                 IOTP_OK);
	f->core.issuing.cert = icert;
	f->core.issuing.key = ikey;
	f->core.root = root.cert;
	/* What `iotprov init` records about iotprov's own PKI. */
	assert_int_equal(setup_own_ca_record(&f->core, "cli", root.cert, "ROOT", &f->err), IOTP_OK);
	assert_int_equal(setup_own_ca_record(&f->core, "cli", icert, "ISSUING", &f->err), IOTP_OK);
	root.cert = NULL;
	pki_ca_cleanup(&root);
	make_ca("Vendor CA", &f->vendor);
	make_ca("Stranger CA", &f->stranger);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	core_close(&f->core);
	test_store_drop(&f->ts);
	pki_ca_cleanup(&f->vendor);
	pki_ca_cleanup(&f->stranger);
	free(f);
	return 0;
}

static const char policy_doc[] =
	"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
	"\"Action\":\"iot:Connect\",\"Resource\":\"*\"}]}";

static const char template_body[] =
	"{\"Parameters\":{\"SerialNumber\":{\"Type\":\"String\"}},"
	"\"Resources\":{\"thing\":{\"Type\":\"AWS::IoT::Thing\",\"Properties\":"
	"{\"ThingName\":{\"Ref\":\"SerialNumber\"}}},"
	"\"certificate\":{\"Type\":\"AWS::IoT::Certificate\",\"Properties\":"
	"{\"CertificateId\":{\"Ref\":\"AWS::IoT::Certificate::Id\"},\"Status\":\"ACTIVE\"}}}}";

/* A registry with one of everything, made the way the API makes it. */
static void populate(struct fx *f)
{
	struct registry_thing_type_spec type = {"sensor", "a sensor", NULL};
	json_t *attrs = json_pack("{s:s}", "site", "lab");
	struct registry_thing_spec t1 = {"t1", "sensor", attrs}, t2 = {"t2", NULL, NULL};
	struct registry_thing_group_spec g1 = {"g-root", NULL, NULL, NULL};
	struct registry_thing_group_spec g2 = {"g-child", "g-root", "child", NULL};
	struct registry_cert_created issued = {0};
	struct registry_cert_register reg = {0};
	struct registry_policy pol;
	struct prov_template tpl;
	struct registry_ref ref;
	char target[PKI_CERT_ID_LEN + 6], *pem;

	assert_int_equal(registry_thing_type_create(&f->core, ACTOR, &type, &ref, &f->err), IOTP_OK);
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &t1, &ref, &f->err), IOTP_OK);
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &t2, &ref, &f->err), IOTP_OK);
	json_decref(attrs);
	assert_int_equal(registry_thing_group_create(&f->core, ACTOR, &g1, &ref, &f->err), IOTP_OK);
	assert_int_equal(registry_thing_group_create(&f->core, ACTOR, &g2, &ref, &f->err), IOTP_OK);
	assert_int_equal(registry_thing_group_add_thing(&f->core, ACTOR, "g-child", "t1", &f->err),
	                 IOTP_OK);

	/* issued by iotprov's issuing CA: no ca_id, mode DEFAULT */
	assert_int_equal(registry_cert_create_with_keys(&f->core, ACTOR, REGISTRY_CERT_ACTIVE,
	                                                &issued, &f->err),
	                 IOTP_OK);
	util_strlcpy(f->issued, issued.id, sizeof(f->issued));
	registry_cert_created_cleanup(&issued);

	/* registered under a registered external CA */
	record_external_ca(f, f->vendor.cert, "ACTIVE", f->vendor_ca);
	pem = issue_pem(&f->vendor, "vendor-device");
	reg.cert_pem = pem;
	reg.set_active = 1;
	if (registry_cert_register(&f->core, ACTOR, &reg, &ref, &f->err) != IOTP_OK)
		fail_msg("register: %s", f->err.msg);
	util_strlcpy(f->vendor_cert, ref.id, sizeof(f->vendor_cert));
	free(pem);

	/* registered without a CA (SNI_ONLY), signed by a CA nobody registered */
	pem = issue_pem(&f->stranger, "noca-device");
	reg.cert_pem = pem;
	assert_int_equal(registry_cert_register_no_ca(&f->core, ACTOR, &reg, &ref, &f->err),
	                 IOTP_OK);
	util_strlcpy(f->noca_cert, ref.id, sizeof(f->noca_cert));
	free(pem);

	snprintf(target, sizeof(target), "cert/%s", f->issued);
	assert_int_equal(registry_thing_attach_principal(&f->core, ACTOR, "t1", target, &f->err),
	                 IOTP_OK);
	memset(&pol, 0, sizeof(pol));
	assert_int_equal(registry_policy_create(&f->core, ACTOR, "p1", policy_doc, &pol, &f->err),
	                 IOTP_OK);
	free(pol.document);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "p1", target, &f->err), IOTP_OK);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "p1", "thinggroup/g-child",
	                                        &f->err),
	                 IOTP_OK);

	memset(&tpl, 0, sizeof(tpl));
	util_strlcpy(tpl.name, "fleet", sizeof(tpl.name));
	util_strlcpy(tpl.type, "FLEET_PROVISIONING", sizeof(tpl.type));
	tpl.enabled = 1;
	tpl.body = (char *)template_body;
	if (prov_template_create(&f->core, ACTOR, &tpl, &ref, &f->err) != IOTP_OK)
		fail_msg("template: %s", f->err.msg);
}

static void run(struct fx *f, int64_t now, int64_t grace, struct check_report *r)
{
	struct check_opts o = {now, grace};

	if (check_run(f->core.store, &o, r, &f->err) != IOTP_OK)
		fail_msg("check_run: %s", f->err.msg);
}

/* The problem of that kind about that object, or NULL. */
static const struct check_problem *find(const struct check_report *r, const char *kind,
                                        const char *object)
{
	for (size_t i = 0; i < r->count; i++)
		if (strcmp(r->problems[i].kind, kind) == 0 &&
		    (object == NULL || strcmp(r->problems[i].object, object) == 0))
			return &r->problems[i];
	return NULL;
}

static void print(const struct check_report *r)
{
	for (size_t i = 0; i < r->count; i++)
		printf("  %s %s %s: %s\n", check_severity_name(r->problems[i].severity),
		       r->problems[i].kind, r->problems[i].object, r->problems[i].detail);
}

static void test_clean_registry_has_no_problem(void **state)
{
	struct fx *f = *state;
	struct check_report r;

	populate(f);
	run(f, 0, -1, &r);
	print(&r);
	assert_int_equal(r.errors, 0);
	assert_int_equal(r.warnings, 0);
	assert_int_equal(r.count, 0);
	/* it looked at what is there */
	assert_int_equal(r.certificates, 3);
	assert_int_equal(r.cas, 3);
	assert_int_equal(r.things, 2);
	assert_true(r.events >= 10);
	check_report_cleanup(&r);
}

static void test_dangling_references(void **state)
{
	struct fx *f = *state;
	struct check_report r;

	populate(f);
	references_off(f);
	/* a member whose thing is gone, a thing whose type is gone */
	sql(f, "INSERT INTO thing_group_members (group_name, thing_name) VALUES ('g-root', 'ghost')");
	sql(f, "UPDATE things SET type_name = 'vanished' WHERE name = 't2'");
	sql(f, "INSERT INTO policy_versions (policy_name, version, document, created) "
	       "VALUES ('nopolicy', 1, '{}', 0)");
	run(f, 0, -1, &r);
	print(&r);
	assert_non_null(find(&r, "foreign_key", "thing_group_members.thing_name = 'ghost'"));
	assert_non_null(find(&r, "foreign_key", "things.type_name = 'vanished'"));
	assert_non_null(find(&r, "foreign_key", "policy_versions.policy_name = 'nopolicy'"));
	assert_int_equal(r.errors, 3);
	check_report_cleanup(&r);
}

static void test_dangling_attachments(void **state)
{
	struct fx *f = *state;
	struct check_report r;
	char obj[CHECK_OBJECT_MAX];

	populate(f);
	sqlf(f, "INSERT INTO policy_targets (policy_name, target) VALUES ('p1', 'cert/%064d')", 7);
	sql(f, "INSERT INTO policy_targets (policy_name, target) VALUES ('p1', 'thinggroup/gone')");
	sql(f, "INSERT INTO policy_targets (policy_name, target) VALUES ('p1', 'thing/t1')");
	sqlf(f, "INSERT INTO thing_principals (thing_name, principal) VALUES ('t2', 'cert/%064d')", 9);
	run(f, 0, -1, &r);
	print(&r);
	assert_int_equal(r.errors, 4);
	assert_non_null(find(&r, "dangling_target", "policy/p1"));
	assert_non_null(find(&r, "dangling_principal", "thing/t2"));
	snprintf(obj, sizeof(obj), "cert/%064d", 9);
	assert_non_null(strstr(find(&r, "dangling_principal", "thing/t2")->detail, obj));
	check_report_cleanup(&r);

	/* deleting the certificate behind a principal leaves one more */
	references_off(f);
	sqlf(f, "DELETE FROM certificates WHERE id = '%s'", f->issued);
	run(f, 0, -1, &r);
	print(&r);
	snprintf(obj, sizeof(obj), "cert/%s", f->issued);
	assert_int_equal(r.errors, 6); /* + principal of t1, + policy target */
	assert_non_null(find(&r, "dangling_principal", "thing/t1"));
	assert_non_null(strstr(find(&r, "dangling_principal", "thing/t1")->detail, obj));
	check_report_cleanup(&r);
}

static void test_certificate_chains(void **state)
{
	struct fx *f = *state;
	struct check_report r;
	char obj[CHECK_OBJECT_MAX], forged[PKI_CERT_ID_LEN + 1];
	char *pem = issue_pem(&f->stranger, "forged");
	int64_t now = util_now();

	populate(f);
	/* ACTIVE, no CA id, mode DEFAULT, but no registered CA signed it */
	id_of(pem, forged);
	{
		struct store_val p[] = {SV_TEXT(forged), SV_TEXT(pem), SV_INT(now), SV_INT(now + 999),
		                        SV_INT(now), SV_INT(now)};

		assert_int_equal(store_exec(f->core.store,
		                            "INSERT INTO certificates (id, pem, status, not_before, "
		                            "not_after, created, updated) VALUES (?, ?, 'ACTIVE', ?, ?, "
		                            "?, ?)",
		                            p, 6, NULL, NULL, &f->err),
		                 IOTP_OK);
	}
	free(pem);
	/* the vendor's certificate moved under another CA it was not signed by */
	sqlf(f, "UPDATE certificates SET ca_id = (SELECT id FROM cas WHERE origin = 'ISSUING') "
	        "WHERE id = '%s'", f->vendor_cert);
	run(f, 0, -1, &r);
	print(&r);
	snprintf(obj, sizeof(obj), "cert/%s", forged);
	assert_non_null(find(&r, "cert_chain", obj));
	snprintf(obj, sizeof(obj), "cert/%s", f->vendor_cert);
	assert_non_null(find(&r, "cert_chain", obj));
	assert_int_equal(r.errors, 2);
	check_report_cleanup(&r);

	/* back under its CA, which is then deactivated: a warning only */
	sqlf(f, "UPDATE certificates SET ca_id = '%s' WHERE id = '%s'", f->vendor_ca,
	     f->vendor_cert);
	sqlf(f, "UPDATE cas SET status = 'INACTIVE' WHERE id = '%s'", f->vendor_ca);
	sqlf(f, "DELETE FROM certificates WHERE id = '%s'", forged);
	run(f, 0, -1, &r);
	print(&r);
	assert_int_equal(r.errors, 0);
	assert_int_equal(r.warnings, 1);
	assert_non_null(find(&r, "cert_ca_inactive", obj));
	check_report_cleanup(&r);

	/* an id that is not the certificate's hash; an unknown status */
	sqlf(f, "UPDATE certificates SET status = 'LIMBO' WHERE id = '%s'", f->noca_cert);
	sqlf(f, "UPDATE certificates SET id = '%064d' WHERE id = '%s'", 5, f->noca_cert);
	run(f, 0, -1, &r);
	print(&r);
	snprintf(obj, sizeof(obj), "cert/%064d", 5);
	assert_non_null(find(&r, "cert_id", obj));
	assert_non_null(find(&r, "bad_status", obj));
	assert_int_equal(r.errors, 2);
	check_report_cleanup(&r);
}

static void test_pending_until_swept(void **state)
{
	struct fx *f = *state;
	struct check_report r;
	struct registry_cert_created claim = {0};
	struct prov_claimant who = {NULL, "claim-client"};
	struct prov_new_cert a = {0}, b = {0};
	char obj[CHECK_OBJECT_MAX];
	int64_t now = util_now(), expiry;
	int deleted = 0;

	populate(f);
	assert_int_equal(registry_cert_create_with_keys(&f->core, ACTOR, REGISTRY_CERT_ACTIVE,
	                                                &claim, &f->err),
	                 IOTP_OK);
	who.cert_id = claim.id;
	if (prov_create_keys_and_certificate(&f->core, &who, &a, &f->err) != IOTP_OK)
		fail_msg("create keys: %s", f->err.msg);
	assert_int_equal(prov_create_keys_and_certificate(&f->core, &who, &b, &f->err), IOTP_OK);
	/* a JITR certificate waiting for the operator: PENDING, but no token */
	{
		struct registry_cert_register reg = {0};
		struct registry_ref ref;
		char *pem = issue_pem(&f->vendor, "jitr-device");

		reg.cert_pem = pem;
		reg.status = "PENDING_ACTIVATION";
		assert_int_equal(registry_cert_register(&f->core, ACTOR, &reg, &ref, &f->err), IOTP_OK);
		free(pem);
	}
	/* b's token was used (the device provisioned), the certificate left
	 * pending by hand so that only the token's use tells them apart */
	sqlf(f, "UPDATE prov_tokens SET used = 1 WHERE cert_id = '%s'", b.cert_id);
	assert_int_equal(store_query_int(f->core.store, "SELECT MAX(expires) FROM prov_tokens",
	                                 NULL, 0, &expiry, &f->err),
	                 IOTP_OK);
	assert_true(expiry > now);

	/* before expiry, and within the grace after it: nothing to say */
	run(f, now, -1, &r);
	assert_int_equal(r.errors, 0);
	check_report_cleanup(&r);
	run(f, expiry + CHECK_PENDING_GRACE - 1, -1, &r);
	assert_int_equal(r.errors, 0);
	check_report_cleanup(&r);
	/* past the grace: a, and only a, should have been swept */
	run(f, expiry + CHECK_PENDING_GRACE + 1, -1, &r);
	print(&r);
	snprintf(obj, sizeof(obj), "cert/%s", a.cert_id);
	assert_int_equal(r.errors, 1);
	assert_non_null(find(&r, "pending_not_swept", obj));
	check_report_cleanup(&r);
	run(f, expiry + 1, 0, &r);
	assert_int_equal(r.errors, 1);
	check_report_cleanup(&r);

	/* the sweep fixes it */
	assert_int_equal(prov_sweep_expired(&f->core, expiry + 1, &deleted, &f->err), IOTP_OK);
	assert_int_equal(deleted, 1);
	run(f, expiry + 1, 0, &r);
	print(&r);
	assert_int_equal(r.errors, 0);
	assert_int_equal(r.warnings, 0);
	check_report_cleanup(&r);
	prov_new_cert_cleanup(&a);
	prov_new_cert_cleanup(&b);
	registry_cert_created_cleanup(&claim);
}

static void test_versions_and_groups(void **state)
{
	struct fx *f = *state;
	struct check_report r;

	populate(f);
	sql(f, "UPDATE policies SET default_version = 4 WHERE name = 'p1'");
	sql(f, "UPDATE provisioning_templates SET default_version = 9 WHERE name = 'fleet'");
	/* a loop: g-root's parent is its own child */
	sql(f, "UPDATE thing_groups SET parent_name = 'g-child' WHERE name = 'g-root'");
	run(f, 0, -1, &r);
	print(&r);
	assert_non_null(find(&r, "missing_version", "policy/p1"));
	assert_non_null(find(&r, "missing_version", "provisioningtemplate/fleet"));
	assert_non_null(find(&r, "group_cycle", "thinggroup/g-root"));
	assert_non_null(find(&r, "group_cycle", "thinggroup/g-child"));
	assert_int_equal(r.errors, 4);
	check_report_cleanup(&r);
}

static void test_events(void **state)
{
	struct fx *f = *state;
	struct check_report r;
	int64_t last = 0;

	populate(f);
	assert_int_equal(store_events_last_id(f->core.store, &last, &f->err), IOTP_OK);
	/* an event stamped a minute before its predecessor */
	sqlf(f, "UPDATE events SET ts = ts - 60000 WHERE id = %lld", (long long)last);
	run(f, 0, -1, &r);
	print(&r);
	assert_int_equal(r.errors, 0);
	assert_int_equal(r.warnings, 1);
	assert_non_null(find(&r, "event_time", NULL));
	check_report_cleanup(&r);

	/* a sequence left behind the largest id, as a careless restore would */
	sqlf(f, "INSERT INTO events (id, ts, actor, action, object) VALUES (%lld, %lld, 'x', "
	        "'y', 'z')", (long long)last + 1000, (long long)util_now() * 1000);
	if (is_pg(f))
		sqlf(f, "SELECT setval(pg_get_serial_sequence('events', 'id'), %lld)", (long long)last);
	else
		sqlf(f, "UPDATE sqlite_sequence SET seq = %lld WHERE name = 'events'", (long long)last);
	run(f, 0, -1, &r);
	print(&r);
	assert_int_equal(r.errors, 1);
	assert_non_null(find(&r, "event_order", "events"));
	check_report_cleanup(&r);
}

static void test_problems_capped_but_counted(void **state)
{
	struct fx *f = *state;
	struct check_report r;
	const int n = CHECK_MAX_PROBLEMS + 50;

	populate(f);
	assert_int_equal(store_begin(f->core.store, &f->err), IOTP_OK);
	for (int i = 0; i < n; i++)
		sqlf(f, "INSERT INTO thing_principals (thing_name, principal) VALUES ('t2', "
		        "'cert/%064d')", i);
	assert_int_equal(store_commit(f->core.store, &f->err), IOTP_OK);
	run(f, 0, -1, &r);
	assert_int_equal(r.count, CHECK_MAX_PROBLEMS);
	assert_int_equal(r.errors, (size_t)n);
	check_report_cleanup(&r);
}

/* check.c's list of references is the schema's: a migration adding one
 * must add it there (SQLite knows its schema's references). */
static int fk_schema_row(void *ud, const struct store_row *row)
{
	int *missing = ud;
	int found = 0;

	for (size_t i = 0; check_fk_at(i) != NULL; i++) {
		const struct check_fk *k = check_fk_at(i);

		if (strcmp(k->table, row->cols[0].s) == 0 && strcmp(k->parent, row->cols[1].s) == 0 &&
		    strcmp(k->column, row->cols[2].s) == 0 &&
		    strcmp(k->parent_column, row->cols[3].s) == 0)
			found = 1;
	}
	if (!found) {
		printf("  not in check.c: %s.%s -> %s(%s)\n", row->cols[0].s, row->cols[2].s,
		       row->cols[1].s, row->cols[3].s);
		(*missing)++;
	}
	return 0;
}

static void test_fk_list_is_the_schemas(void **state)
{
	struct fx *f = *state;
	int missing = 0;
	int64_t declared = 0;
	size_t listed = 0;

	if (is_pg(f))
		skip();
	assert_int_equal(store_exec(f->core.store,
	                            "SELECT m.name, p.\"table\", p.\"from\", p.\"to\" FROM "
	                            "sqlite_master m, pragma_foreign_key_list(m.name) p "
	                            "WHERE m.type = 'table'",
	                            NULL, 0, fk_schema_row, &missing, &f->err),
	                 IOTP_OK);
	assert_int_equal(store_query_int(f->core.store,
	                                 "SELECT COUNT(*) FROM sqlite_master m, "
	                                 "pragma_foreign_key_list(m.name) p WHERE m.type = 'table'",
	                                 NULL, 0, &declared, &f->err),
	                 IOTP_OK);
	while (check_fk_at(listed) != NULL)
		listed++;
	assert_int_equal(missing, 0);
	assert_int_equal((size_t)declared, listed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clean_registry_has_no_problem, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dangling_references, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dangling_attachments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_certificate_chains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_until_swept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_versions_and_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_problems_capped_but_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fk_list_is_the_schemas, setup, teardown),
	};

	iotp_log_set_level(IOTP_LOG_WARN);
	return cmocka_run_group_tests_name("check", tests, NULL, NULL);
}
