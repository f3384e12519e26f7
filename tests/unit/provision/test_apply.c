/*
 * prov_apply and RegisterThing: what lands in the registry for each kind of
 * resource, every OverrideSettings value, every intrinsic function, the
 * pseudo parameters of a certificate, idempotent re-runs, and rollbacks that
 * leave every table (and `sqlite3 .dump` of the file) exactly as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "core/store/store.h"
#include "helpers.h"

/* Templates are written with ' for " to stay readable. */
static char *jq(const char *s)
{
	char *d = strdup(s);

	assert_non_null(d);
	for (char *p = d; *p != '\0'; p++) {
		if (*p == '\'')
			*p = '"';
	}
	return d;
}

static struct template *parse(const char *single_quoted)
{
	struct template *t = NULL;
	struct iotp_err err;
	char *body = jq(single_quoted);

	if (template_parse(body, strlen(body), TEMPLATE_KIND_ANY, &t, &err) != IOTP_OK)
		fail_msg("template does not parse: %s", err.msg);
	free(body);
	return t;
}

static json_t *params(const char *single_quoted)
{
	char *s = jq(single_quoted);
	json_t *j = json_loads(s, 0, NULL);

	assert_non_null(j);
	free(s);
	return j;
}

static iotp_rc apply(struct fx *f, const char *tmpl, const char *param_json, const char *cert_id,
                     struct prov_result *out)
{
	struct template *t = parse(tmpl);
	json_t *p = param_json != NULL ? params(param_json) : NULL;
	struct prov_apply_in in;
	iotp_rc rc;

	memset(&in, 0, sizeof(in));
	in.tmpl = t;
	in.template_name = "test";
	in.parameters = p;
	in.cert.id = cert_id;
	rc = prov_apply(&f->core, ACTOR, &in, out, &f->err);
	json_decref(p);
	template_free(t);
	return rc;
}

/* `sqlite3 FILE .dump`, when the CLI is installed; NULL otherwise. */
static char *cli_dump(struct fx *f)
{
	char cmd[600], chunk[4096];
	struct buf b;
	FILE *p;
	size_t n;

	if (access("/usr/bin/sqlite3", X_OK) != 0)
		return NULL;
	snprintf(cmd, sizeof(cmd), "/usr/bin/sqlite3 -readonly '%s' .dump", f->db);
	p = popen(cmd, "r");
	assert_non_null(p);
	buf_init(&b, 0);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		assert_int_equal(buf_append(&b, chunk, n), IOTP_OK);
	assert_int_equal(pclose(p), 0);
	return buf_detach(&b, NULL);
}

static int64_t count_q(struct fx *f, const char *sql, const char *a, const char *b)
{
	struct store_val p[] = {SV_TEXT(a), SV_TEXT(b)};
	int64_t n = -1;

	assert_int_equal(store_query_int(f->core.store, sql, p, b != NULL ? 2 : 1, &n, &f->err),
	                 IOTP_OK);
	return n;
}

static int in_group(struct fx *f, const char *group, const char *thing)
{
	return (int)count_q(f,
	                    "SELECT COUNT(*) FROM thing_group_members WHERE group_name = ? AND "
	                    "thing_name = ?",
	                    group, thing);
}

static int attached(struct fx *f, const char *thing, const char *cert_id)
{
	char res[80];

	snprintf(res, sizeof(res), "cert/%s", cert_id);
	return (int)count_q(f,
	                    "SELECT COUNT(*) FROM thing_principals WHERE thing_name = ? AND "
	                    "principal = ?",
	                    thing, res);
}

static int policy_on(struct fx *f, const char *policy, const char *cert_id)
{
	char res[80];

	snprintf(res, sizeof(res), "cert/%s", cert_id);
	return (int)count_q(f,
	                    "SELECT COUNT(*) FROM policy_targets WHERE policy_name = ? AND "
	                    "target = ?",
	                    policy, res);
}

static char *cert_status(struct fx *f, const char *id)
{
	return fx_text(f, "SELECT status FROM certificates WHERE id = ?", id);
}

static const char FULL[] =
	"{'Parameters': {'Name': {'Type': 'String'}, 'Csr': {'Type': 'String'}},"
	" 'Resources': {"
	"  'thing': {'Type': 'AWS::IoT::Thing', 'Properties': {'ThingName': {'Ref': 'Name'},"
	"    'ThingTypeName': 'sensor', 'ThingGroups': ['fleet'],"
	"    'AttributePayload': {'site': 'lyon', 'empty': ''}}},"
	"  'cert': {'Type': 'AWS::IoT::Certificate', 'Properties': {"
	"    'CertificateSigningRequest': {'Ref': 'Csr'}, 'Status': 'ACTIVE'}},"
	"  'pol': {'Type': 'AWS::IoT::Policy', 'Properties': {'PolicyDocument': {"
	"    'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 'iot:Connect',"
	"    'Resource': {'Fn::Join': ['', ['arn:aws:iot:*:*:client/', {'Ref': 'Name'}]]}}]}}}}}";

/* RegisterThing with a CSR: every resource lands and is linked. */
static void register_with_csr(void **state)
{
	struct fx *f = *state;
	struct prov_result r = {0};
	struct registry_thing th = {0};
	char *csr = fx_csr_pem("sensor-1"), *body = jq(FULL), *status;
	json_t *p = json_pack("{s:s, s:s}", "Name", "sensor-1", "Csr", csr);
	X509 *x = NULL;

	fx_type(f, "sensor");
	fx_group(f, "fleet");
	assert_int_equal(prov_register_thing_body(&f->core, ACTOR, body, strlen(body), p, &r,
	                                          &f->err),
	                 IOTP_OK);
	assert_string_equal(r.thing_name, "sensor-1");
	assert_true(r.thing_created);
	assert_int_equal(strlen(r.cert_id), 64);
	assert_non_null(r.cert_pem);
	assert_int_equal(strlen(r.policy_name), 64); /* named by the document's hash */
	assert_string_equal(json_string_value(json_object_get(r.resource_arns, "thing")),
	                    "arn:aws:iot:us-east-1:123456789012:thing/sensor-1");
	assert_non_null(strstr(json_string_value(json_object_get(r.resource_arns, "cert")),
	                       r.cert_id));
	assert_non_null(strstr(json_string_value(json_object_get(r.resource_arns, "pol")),
	                       ":policy/"));
	assert_int_equal(json_object_size(r.device_configuration), 0);

	/* The certificate is signed by the issuing CA, for the CSR's subject. */
	assert_int_equal(pki_cert_parse(r.cert_pem, strlen(r.cert_pem), &x, &f->err), IOTP_OK);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(f->core.issuing.cert)), 1);
	{
		char cn[64];

		assert_int_equal(pki_cert_name_field(x, 0, "CommonName", cn, sizeof(cn), &f->err),
		                 IOTP_OK);
		assert_string_equal(cn, "sensor-1");
	}
	X509_free(x);

	assert_int_equal(registry_thing_describe(&f->core, "sensor-1", &th, &f->err), IOTP_OK);
	assert_string_equal(th.type_name, "sensor");
	assert_string_equal(json_string_value(json_object_get(th.attributes, "site")), "lyon");
	assert_null(json_object_get(th.attributes, "empty")); /* "" means no attribute */
	registry_thing_cleanup(&th);
	assert_int_equal(in_group(f, "fleet", "sensor-1"), 1);
	assert_int_equal(attached(f, "sensor-1", r.cert_id), 1);
	assert_int_equal(policy_on(f, r.policy_name, r.cert_id), 1);
	status = cert_status(f, r.cert_id);
	assert_string_equal(status, "ACTIVE");
	free(status);
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM events WHERE action = 'provision.apply'"),
	                 1);

	prov_result_cleanup(&r);
	json_decref(p);
	free(body);
	free(csr);
}

static const char BY_ID[] =
	"{'Parameters': {'AWS::IoT::Certificate::Id': {'Type': 'String'}},"
	" 'Resources': {"
	"  'thing': {'Type': 'AWS::IoT::Thing', 'Properties': {'ThingName': 'pump-7',"
	"    'ThingGroups': ['fleet'], 'AttributePayload': {'model': 'p7'}}},"
	"  'certificate': {'Type': 'AWS::IoT::Certificate', 'Properties': {"
	"    'CertificateId': {'Ref': 'AWS::IoT::Certificate::Id'}, 'Status': 'ACTIVE'}},"
	"  'policy': {'Type': 'AWS::IoT::Policy', 'Properties': {'PolicyName': 'fleet-policy'}}},"
	" 'DeviceConfiguration': {'Url': 'mqtts://x.example'}}";

/* The same inputs twice: the second run changes nothing, not even events. */
static void idempotent(void **state)
{
	struct fx *f = *state;
	struct prov_result r1 = {0}, r2 = {0};
	char id[65], *before, *after, *cli_before, *cli_after;

	fx_group(f, "fleet");
	fx_policy(f, "fleet-policy");
	fx_cert(f, REGISTRY_CERT_PENDING_ACTIVATION, id);
	assert_int_equal(apply(f, BY_ID, NULL, id, &r1), IOTP_OK);
	assert_true(r1.thing_created);
	assert_null(r1.cert_pem); /* nothing issued or registered */
	assert_string_equal(json_string_value(json_object_get(r1.device_configuration, "Url")),
	                    "mqtts://x.example");
	before = fx_dump(f);
	cli_before = cli_dump(f);
	assert_int_equal(apply(f, BY_ID, NULL, id, &r2), IOTP_OK);
	after = fx_dump(f);
	cli_after = cli_dump(f);
	assert_false(r2.thing_created);
	assert_string_equal(r1.thing_arn, r2.thing_arn);
	assert_string_equal(r1.cert_arn, r2.cert_arn);
	assert_true(json_equal(r1.resource_arns, r2.resource_arns));
	assert_string_equal(before, after);
	if (cli_before != NULL)
		assert_string_equal(cli_before, cli_after);
	prov_result_cleanup(&r1);
	prov_result_cleanup(&r2);
	free(before);
	free(after);
	free(cli_before);
	free(cli_after);
}

/* Failures late in the application (after a certificate was issued and a
 * thing created) leave every table as it was, standalone and nested in a
 * caller's transaction. */
static void rollback(void **state)
{
	struct fx *f = *state;
	struct prov_result r = {0};
	char *csr = fx_csr_pem("dev"), *before, *after, *cli_before, *cli_after;
	const char *cases[][2] = {
		{"'ThingGroups': ['fleet', 'missing-group']", "'PolicyName': 'fleet-policy'"},
		{"'ThingGroups': ['fleet']", "'PolicyName': 'no-such-policy'"},
		{"'ThingGroups': ['fleet'], 'ThingTypeName': 'no-such-type'",
		 "'PolicyName': 'fleet-policy'"},
	};
	const char *where[] = {"missing-group", "no-such-policy", "no-such-type"};

	fx_group(f, "fleet");
	fx_policy(f, "fleet-policy");
	/* Some history first, so that sequences and events are not empty. */
	{
		char id[65];

		fx_cert(f, REGISTRY_CERT_ACTIVE, id);
		assert_int_equal(apply(f, BY_ID, NULL, id, &r), IOTP_OK);
		prov_result_cleanup(&r);
	}
	before = fx_dump(f);
	cli_before = cli_dump(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[2048];
		json_t *p = json_pack("{s:s}", "Csr", csr);
		struct template *t;
		struct prov_apply_in in;

		snprintf(buf, sizeof(buf),
		         "{'Parameters': {'Csr': {'Type': 'String'}}, 'Resources': {"
		         " 'thing': {'Type': 'AWS::IoT::Thing', 'Properties': {'ThingName': 'new-%zu', %s}},"
		         " 'cert': {'Type': 'AWS::IoT::Certificate', 'Properties': {"
		         "   'CertificateSigningRequest': {'Ref': 'Csr'}}},"
		         " 'policy': {'Type': 'AWS::IoT::Policy', 'Properties': {%s}}}}",
		         i, cases[i][0], cases[i][1]);
		t = parse(buf);
		memset(&in, 0, sizeof(in));
		in.tmpl = t;
		in.parameters = p;
		assert_int_equal(prov_apply(&f->core, ACTOR, &in, &r, &f->err), IOTP_ERR_TEMPLATE);
		assert_non_null(strstr(f->err.msg, "Resources."));
		assert_non_null(strstr(f->err.msg, where[i]));
		assert_int_equal(store_tx_depth(f->core.store), 0);
		after = fx_dump(f);
		assert_string_equal(before, after);
		free(after);

		/* Nested: the caller's transaction stays usable. */
		assert_int_equal(store_begin(f->core.store, &f->err), IOTP_OK);
		assert_int_equal(prov_apply(&f->core, ACTOR, &in, &r, &f->err), IOTP_ERR_TEMPLATE);
		assert_int_equal(store_tx_depth(f->core.store), 1);
		assert_int_equal(store_commit(f->core.store, &f->err), IOTP_OK);
		after = fx_dump(f);
		assert_string_equal(before, after);
		free(after);
		template_free(t);
		json_decref(p);
	}
	cli_after = cli_dump(f);
	if (cli_before != NULL)
		assert_string_equal(cli_before, cli_after);
	/* The template itself was fine: with the right inputs it applies. */
	fx_group(f, "missing-group");
	{
		json_t *p = json_pack("{s:s}", "Csr", csr);
		char buf[1024];
		struct template *t;
		struct prov_apply_in in;

		snprintf(buf, sizeof(buf),
		         "{'Parameters': {'Csr': {'Type': 'String'}}, 'Resources': {"
		         " 'thing': {'Type': 'AWS::IoT::Thing', 'Properties': {'ThingName': 'new-0',"
		         "   'ThingGroups': ['fleet', 'missing-group']}},"
		         " 'cert': {'Type': 'AWS::IoT::Certificate', 'Properties': {"
		         "   'CertificateSigningRequest': {'Ref': 'Csr'}}}}}");
		t = parse(buf);
		memset(&in, 0, sizeof(in));
		in.tmpl = t;
		in.parameters = p;
		assert_int_equal(prov_apply(&f->core, ACTOR, &in, &r, &f->err), IOTP_OK);
		assert_int_equal(in_group(f, "missing-group", "new-0"), 1);
		prov_result_cleanup(&r);
		template_free(t);
		json_decref(p);
	}
	free(before);
	free(cli_before);
	free(cli_after);
	free(csr);
}

/* ---- OverrideSettings ---- */

/* t1: type a, groups [g1], attributes {x: 1, y: 2}. */
static void reset_thing(struct fx *f)
{
	struct registry_thing_spec s = {.name = "t1", .type_name = "a"};
	struct registry_ref ref;
	json_t *attrs = json_pack("{s:s, s:s}", "x", "1", "y", "2");

	assert_int_equal(registry_thing_delete(&f->core, ACTOR, "t1", REGISTRY_NO_VERSION,
	                                       &f->err),
	                 IOTP_OK);
	s.attributes = attrs;
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &s, &ref, &f->err), IOTP_OK);
	assert_int_equal(registry_thing_group_add_thing(&f->core, ACTOR, "g1", "t1", &f->err),
	                 IOTP_OK);
	json_decref(attrs);
}

static iotp_rc apply_over(struct fx *f, const char *type_o, const char *groups_o,
                          const char *attrs_o)
{
	struct prov_result r = {0};
	char buf[1024];
	iotp_rc rc;

	snprintf(buf, sizeof(buf),
	         "{'Resources': {'thing': {'Type': 'AWS::IoT::Thing', 'Properties': {"
	         " 'ThingName': 't1', 'ThingTypeName': 'b', 'ThingGroups': ['g2'],"
	         " 'AttributePayload': {'y': '3', 'z': '4'}},"
	         " 'OverrideSettings': {'ThingTypeName': '%s', 'ThingGroups': '%s',"
	         " 'AttributePayload': '%s'}}}}",
	         type_o, groups_o, attrs_o);
	rc = apply(f, buf, NULL, NULL, &r);
	if (rc == IOTP_OK)
		assert_false(r.thing_created);
	prov_result_cleanup(&r);
	return rc;
}

static void expect_thing(struct fx *f, const char *type, int g1, int g2, const char *attrs_json)
{
	struct registry_thing th = {0};
	json_t *want = params(attrs_json);

	assert_int_equal(registry_thing_describe(&f->core, "t1", &th, &f->err), IOTP_OK);
	assert_string_equal(th.type_name, type);
	if (!json_equal(th.attributes, want)) {
		char *got = json_dumps(th.attributes, JSON_SORT_KEYS);

		fail_msg("attributes %s, expected %s", got, attrs_json);
	}
	assert_int_equal(in_group(f, "g1", "t1"), g1);
	assert_int_equal(in_group(f, "g2", "t1"), g2);
	registry_thing_cleanup(&th);
	json_decref(want);
}

static void thing_overrides(void **state)
{
	struct fx *f = *state;
	char *before, *after;

	fx_type(f, "a");
	fx_type(f, "b");
	fx_group(f, "g1");
	fx_group(f, "g2");

	reset_thing(f);
	assert_int_equal(apply_over(f, "DO_NOTHING", "DO_NOTHING", "DO_NOTHING"), IOTP_OK);
	expect_thing(f, "a", 1, 0, "{'x': '1', 'y': '2'}");

	reset_thing(f);
	assert_int_equal(apply_over(f, "REPLACE", "REPLACE", "REPLACE"), IOTP_OK);
	expect_thing(f, "b", 0, 1, "{'y': '3', 'z': '4'}");
	/* Now the thing is what the template says: FAIL everywhere passes. */
	assert_int_equal(apply_over(f, "FAIL", "FAIL", "FAIL"), IOTP_OK);
	expect_thing(f, "b", 0, 1, "{'y': '3', 'z': '4'}");

	reset_thing(f);
	assert_int_equal(apply_over(f, "DO_NOTHING", "MERGE", "MERGE"), IOTP_OK);
	expect_thing(f, "a", 1, 1, "{'x': '1', 'y': '3', 'z': '4'}");

	/* Each FAIL refuses and changes nothing. */
	{
		const char *fails[][3] = {{"FAIL", "DO_NOTHING", "DO_NOTHING"},
		                          {"DO_NOTHING", "FAIL", "DO_NOTHING"},
		                          {"DO_NOTHING", "DO_NOTHING", "FAIL"},
		                          {"REPLACE", "MERGE", "FAIL"}};
		const char *names[] = {"ThingTypeName", "ThingGroups", "AttributePayload",
		                       "AttributePayload"};

		reset_thing(f);
		before = fx_dump(f);
		for (size_t i = 0; i < 4; i++) {
			assert_int_equal(apply_over(f, fails[i][0], fails[i][1], fails[i][2]),
			                 IOTP_ERR_TEMPLATE);
			assert_non_null(strstr(f->err.msg, names[i]));
			after = fx_dump(f);
			assert_string_equal(before, after);
			free(after);
		}
		free(before);
	}
	/* Type alone, and the version goes up by one per changing run only. */
	reset_thing(f);
	assert_int_equal(apply_over(f, "REPLACE", "DO_NOTHING", "DO_NOTHING"), IOTP_OK);
	expect_thing(f, "b", 1, 0, "{'x': '1', 'y': '2'}");
	assert_int_equal(fx_int(f, "SELECT version FROM things WHERE name = 't1'"), 2);
	assert_int_equal(apply_over(f, "REPLACE", "DO_NOTHING", "DO_NOTHING"), IOTP_OK);
	assert_int_equal(fx_int(f, "SELECT version FROM things WHERE name = 't1'"), 2);
}

static iotp_rc apply_status(struct fx *f, const char *id, const char *override)
{
	struct prov_result r = {0};
	char buf[1024];
	iotp_rc rc;

	snprintf(buf, sizeof(buf),
	         "{'Parameters': {'AWS::IoT::Certificate::Id': {'Type': 'String'}}, 'Resources': {"
	         " 'cert': {'Type': 'AWS::IoT::Certificate', 'Properties': {"
	         "  'CertificateId': {'Ref': 'AWS::IoT::Certificate::Id'}, 'Status': 'inactive'}%s%s%s}}}",
	         override != NULL ? ", 'OverrideSettings': {'Status': '" : "",
	         override != NULL ? override : "", override != NULL ? "'}" : "");
	rc = apply(f, buf, NULL, id, &r);
	prov_result_cleanup(&r);
	return rc;
}

static void expect_status(struct fx *f, const char *id, const char *want)
{
	char *s = cert_status(f, id);

	assert_string_equal(s, want);
	free(s);
}

static void status_overrides(void **state)
{
	struct fx *f = *state;
	char active[65], pending[65], revoked[65];

	fx_cert(f, REGISTRY_CERT_ACTIVE, active);
	fx_cert(f, REGISTRY_CERT_PENDING_ACTIVATION, pending);
	fx_cert(f, REGISTRY_CERT_ACTIVE, revoked);
	assert_int_equal(registry_cert_update_status(&f->core, ACTOR, revoked,
	                                             REGISTRY_CERT_REVOKED, &f->err),
	                 IOTP_OK);

	/* Default DO_NOTHING keeps an ACTIVE certificate ACTIVE... */
	assert_int_equal(apply_status(f, active, NULL), IOTP_OK);
	expect_status(f, active, "ACTIVE");
	assert_int_equal(apply_status(f, active, "DO_NOTHING"), IOTP_OK);
	expect_status(f, active, "ACTIVE");
	/* ...FAIL refuses the difference... */
	assert_int_equal(apply_status(f, active, "FAIL"), IOTP_ERR_TEMPLATE);
	assert_non_null(strstr(f->err.msg, "Status"));
	expect_status(f, active, "ACTIVE");
	/* ...REPLACE sets it, after which FAIL is satisfied. */
	assert_int_equal(apply_status(f, active, "REPLACE"), IOTP_OK);
	expect_status(f, active, "INACTIVE");
	assert_int_equal(apply_status(f, active, "FAIL"), IOTP_OK);

	/* A certificate waiting for its provisioning takes the template's. */
	assert_int_equal(apply_status(f, pending, "DO_NOTHING"), IOTP_OK);
	expect_status(f, pending, "INACTIVE");

	/* Revoked is final whatever the setting. */
	assert_int_equal(apply_status(f, revoked, "REPLACE"), IOTP_ERR_TEMPLATE);
	assert_non_null(strstr(f->err.msg, "REVOKED"));
	expect_status(f, revoked, "REVOKED");
}

/* ---- intrinsics ---- */

static const char INTRINSICS[] =
	"{'Parameters': {'Serial': {'Type': 'String'}, 'Site': {'Type': 'String', 'Default': 'lyon'},"
	"   'Kinds': {'Type': 'String'}},"
	" 'Mappings': {'Sites': {'lyon': {'Group': 'grp-lyon'}, 'oslo': {'Group': 'grp-oslo'}}},"
	" 'Resources': {"
	"  'thing': {'Type': 'AWS::IoT::Thing', 'Properties': {"
	"    'ThingName': {'Fn::Join': ['-', ['dev', {'Ref': 'Serial'}]]},"
	"    'ThingTypeName': {'Fn::Select': [1, {'Fn::Split': [',', {'Ref': 'Kinds'}]}]},"
	"    'ThingGroups': [{'Fn::FindInMap': ['Sites', {'Ref': 'Site'}, 'Group']}],"
	"    'AttributePayload': {'label': {'Fn::Sub': '${Site}_${Serial}'},"
	"                         'sel': {'Fn::Select': ['0', ['first', 'second']]}}}},"
	"  'policy': {'Type': 'AWS::IoT::Policy', 'Properties': {"
	"    'PolicyName': {'Fn::Sub': ['p-${S}', {'S': {'Ref': 'Site'}}]}}}},"
	" 'DeviceConfiguration': {'ref': {'Ref': 'Serial'}}}";

static void intrinsics(void **state)
{
	struct fx *f = *state;
	struct prov_result r = {0};
	struct registry_thing th = {0};

	fx_type(f, "sensor");
	fx_group(f, "grp-lyon");
	fx_policy(f, "p-lyon");
	assert_int_equal(apply(f, INTRINSICS, "{'Serial': 'SN42', 'Kinds': 'meter,sensor'}", NULL,
	                       &r),
	                 IOTP_OK);
	assert_string_equal(r.thing_name, "dev-SN42");                 /* Fn::Join, Ref */
	assert_string_equal(r.policy_name, "p-lyon");                  /* Fn::Sub with a map */
	assert_string_equal(json_string_value(json_object_get(r.device_configuration, "ref")),
	                    "SN42");
	assert_non_null(json_object_get(r.resource_arns, "policy"));
	assert_int_equal(registry_thing_describe(&f->core, "dev-SN42", &th, &f->err), IOTP_OK);
	assert_string_equal(th.type_name, "sensor");                   /* Fn::Select + Fn::Split */
	assert_string_equal(json_string_value(json_object_get(th.attributes, "label")),
	                    "lyon_SN42");                                /* Fn::Sub, Default */
	assert_string_equal(json_string_value(json_object_get(th.attributes, "sel")), "first");
	assert_int_equal(in_group(f, "grp-lyon", "dev-SN42"), 1);     /* Fn::FindInMap */
	registry_thing_cleanup(&th);
	prov_result_cleanup(&r);

	/* Evaluation failures name the path and change nothing. */
	{
		char *before = fx_dump(f), *after;

		assert_int_equal(apply(f, INTRINSICS, "{'Serial': 'SN43', 'Kinds': 'meter'}", NULL, &r),
		                 IOTP_ERR_TEMPLATE);
		assert_non_null(strstr(f->err.msg, "Fn::Select"));
		assert_int_equal(apply(f, INTRINSICS,
		                       "{'Serial': 'SN43', 'Kinds': 'a,b', 'Site': 'paris'}", NULL, &r),
		                 IOTP_ERR_TEMPLATE);
		assert_non_null(strstr(f->err.msg, "paris"));
		/* oslo maps to a group that does not exist: a registry refusal. */
		assert_int_equal(apply(f, INTRINSICS,
		                       "{'Serial': 'SN43', 'Kinds': 'a,sensor', 'Site': 'oslo'}", NULL,
		                       &r),
		                 IOTP_ERR_TEMPLATE);
		assert_non_null(strstr(f->err.msg, "grp-oslo"));
		assert_int_equal(apply(f, INTRINSICS, "{'Kinds': 'a,b'}", NULL, &r), IOTP_ERR_INVALID);
		assert_non_null(strstr(f->err.msg, "Serial"));
		after = fx_dump(f);
		assert_string_equal(before, after);
		free(before);
		free(after);
	}
}

/* ---- the certificate's own fields ---- */

static const char PSEUDO[] =
	"{'Parameters': {'AWS::IoT::Certificate::CommonName': {'Type': 'String'},"
	"   'AWS::IoT::Certificate::Organization': {'Type': 'String', 'Default': 'none'}},"
	" 'Resources': {"
	"  'thing': {'Type': 'AWS::IoT::Thing', 'Properties': {"
	"    'ThingName': {'Ref': 'AWS::IoT::Certificate::CommonName'},"
	"    'AttributePayload': {'org': {'Ref': 'AWS::IoT::Certificate::Organization'},"
	"                         'cert': {'Ref': 'AWS::IoT::Certificate::Id'}}}},"
	"  'certificate': {'Type': 'AWS::IoT::Certificate', 'Properties': {"
	"    'CertificateId': {'Ref': 'AWS::IoT::Certificate::Id'}}}}}";

static void pseudo_parameters(void **state)
{
	struct fx *f = *state;
	struct prov_result r = {0};
	struct registry_thing th = {0};
	struct pki_ca vendor;
	struct registry_ref ref;
	struct registry_cert_register reg = {0};
	char id[65], *pem;
	X509 *x = NULL;

	/* By id only: the fields come from the stored certificate (CN "device"). */
	fx_cert(f, REGISTRY_CERT_PENDING_ACTIVATION, id);
	assert_int_equal(apply(f, PSEUDO, NULL, id, &r), IOTP_OK);
	assert_string_equal(r.thing_name, "device");
	assert_string_equal(r.cert_id, id);
	assert_int_equal(registry_thing_describe(&f->core, "device", &th, &f->err), IOTP_OK);
	assert_string_equal(json_string_value(json_object_get(th.attributes, "org")), "none");
	assert_string_equal(json_string_value(json_object_get(th.attributes, "cert")), id);
	registry_thing_cleanup(&th);
	prov_result_cleanup(&r);

	/* By X509 only: id computed, CN and O from its subject. */
	fx_make_root("Vendor", &vendor);
	pem = fx_issue_pem(&vendor, "meter-9", "ACME", 30);
	assert_int_equal(pki_cert_parse(pem, strlen(pem), &x, &f->err), IOTP_OK);
	reg.cert_pem = pem;
	reg.status = "PENDING_ACTIVATION";
	assert_int_equal(registry_cert_register_no_ca(&f->core, ACTOR, &reg, &ref, &f->err),
	                 IOTP_OK);
	{
		struct template *t = parse(PSEUDO);
		struct prov_apply_in in;

		memset(&in, 0, sizeof(in));
		in.tmpl = t;
		in.cert.x509 = x;
		assert_int_equal(prov_apply(&f->core, ACTOR, &in, &r, &f->err), IOTP_OK);
		template_free(t);
	}
	assert_string_equal(r.thing_name, "meter-9");
	assert_string_equal(r.cert_id, ref.id);
	assert_int_equal(attached(f, "meter-9", ref.id), 1);
	expect_status(f, ref.id, "ACTIVE");
	assert_int_equal(registry_thing_describe(&f->core, "meter-9", &th, &f->err), IOTP_OK);
	assert_string_equal(json_string_value(json_object_get(th.attributes, "org")), "ACME");
	registry_thing_cleanup(&th);
	prov_result_cleanup(&r);
	X509_free(x);
	free(pem);
	pki_ca_cleanup(&vendor);
}

/* ---- errors ---- */

static void refusals(void **state)
{
	struct fx *f = *state;
	struct prov_result r = {0};
	struct iotp_core bare;
	char id[65], *before, *after, *csr = fx_csr_pem("x"), *body;
	json_t *p;

	fx_group(f, "fleet");
	fx_policy(f, "fleet-policy");
	before = fx_dump(f);
	/* An unknown certificate id. */
	assert_int_equal(apply(f, BY_ID, NULL,
	                       "00000000000000000000000000000000000000000000000000000000000000aa",
	                       &r),
	                 IOTP_ERR_TEMPLATE);
	assert_non_null(strstr(f->err.msg, "Resources.certificate"));
	/* A malformed id. */
	assert_int_equal(apply(f, BY_ID, NULL, "xyz", &r), IOTP_ERR_INVALID);
	/* No certificate id where the template needs one. */
	assert_int_equal(apply(f, BY_ID, NULL, NULL, &r), IOTP_ERR_INVALID);
	/* A caller may not pass the pseudo parameters. */
	fx_cert(f, REGISTRY_CERT_ACTIVE, id);
	free(before);
	before = fx_dump(f);
	{
		char buf[256];

		snprintf(buf, sizeof(buf), "{'AWS::IoT::Certificate::Id': '%s'}", id);
		assert_int_equal(apply(f, BY_ID, buf, NULL, &r), IOTP_ERR_INVALID);
	}
	after = fx_dump(f);
	assert_string_equal(before, after);
	free(after);

	/* A CSR without a CA to sign it. */
	fx_core_open(f, &bare);
	pki_ca_cleanup(&bare.issuing);
	bare.issuing.cert = NULL;
	bare.issuing.key = NULL;
	core_close(&f->core);
	f->core = bare;
	body = jq("{'Parameters': {'Csr': {'Type': 'String'}}, 'Resources': {'cert': {"
	          "'Type': 'AWS::IoT::Certificate', 'Properties': {"
	          "'CertificateSigningRequest': {'Ref': 'Csr'}}}}}");
	p = json_pack("{s:s}", "Csr", csr);
	assert_int_equal(prov_register_thing_body(&f->core, ACTOR, body, strlen(body), p, &r,
	                                          &f->err),
	                 IOTP_ERR_CONFIG);
	json_decref(p);
	free(body);
	/* A body with several problems names them all. */
	body = jq("{'Resources': {'a': {'Type': 'AWS::IoT::Nope'}, 'thing': {'Type':"
	          " 'AWS::IoT::Thing', 'Properties': {'ThingName': {'Ref': 'Missing'}}}},"
	          " 'Conditions': {}}");
	assert_int_equal(prov_register_thing_body(&f->core, ACTOR, body, strlen(body), NULL, &r,
	                                          &f->err),
	                 IOTP_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "Conditions"));
	assert_non_null(strstr(f->err.msg, "AWS::IoT::Nope"));
	assert_non_null(strstr(f->err.msg, "Missing"));
	free(body);
	after = fx_dump(f);
	assert_string_equal(before, after);
	free(after);
	free(before);
	free(csr);
}

/* A certificate given by PEM is registered once and reused after. */
static void by_pem(void **state)
{
	struct fx *f = *state;
	struct prov_result r = {0};
	struct registry_ca_register ca = {0};
	struct registry_ref ref;
	struct pki_ca vendor;
	char code[65], *ca_pem, *verif, *leaf, *body;
	json_t *p;

	fx_make_root("Vendor CA", &vendor);
	ca_pem = fx_cert_pem(vendor.cert);
	assert_int_equal(registry_regcode_get(&f->core, ACTOR, code, &f->err), IOTP_OK);
	verif = fx_issue_pem(&vendor, code, NULL, 1);
	leaf = fx_issue_pem(&vendor, "legacy-1", NULL, 30);
	ca.ca_pem = ca_pem;
	ca.verification_pem = verif;
	ca.set_active = 1;
	assert_int_equal(registry_ca_register(&f->core, ACTOR, &ca, &ref, &f->err), IOTP_OK);
	body = jq("{'Parameters': {'Pem': {'Type': 'String'}}, 'Resources': {"
	          " 'thing': {'Type': 'AWS::IoT::Thing', 'Properties': {'ThingName': 'legacy-1'}},"
	          " 'cert': {'Type': 'AWS::IoT::Certificate', 'Properties': {"
	          "   'CertificatePem': {'Ref': 'Pem'}, 'Status': 'ACTIVE'}}}}");
	p = json_pack("{s:s}", "Pem", leaf);
	assert_int_equal(prov_register_thing_body(&f->core, ACTOR, body, strlen(body), p, &r,
	                                          &f->err),
	                 IOTP_OK);
	assert_non_null(r.cert_pem);
	assert_int_equal(attached(f, "legacy-1", r.cert_id), 1);
	expect_status(f, r.cert_id, "ACTIVE");
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM events WHERE action = 'cert.register'"), 1);
	prov_result_cleanup(&r);
	{
		char *before = fx_dump(f), *after;

		assert_int_equal(prov_register_thing_body(&f->core, ACTOR, body, strlen(body), p, &r,
		                                          &f->err),
		                 IOTP_OK);
		after = fx_dump(f);
		assert_string_equal(before, after);
		free(before);
		free(after);
		prov_result_cleanup(&r);
	}
	json_decref(p);
	free(body);
	free(ca_pem);
	free(verif);
	free(leaf);
	pki_ca_cleanup(&vendor);
}

int suite_apply(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(register_with_csr, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(idempotent, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(rollback, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(thing_overrides, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(status_overrides, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(intrinsics, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(pseudo_parameters, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(refusals, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(by_pem, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("apply", tests, NULL, NULL);
}
