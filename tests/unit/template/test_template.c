/*
 * unit.template: the provisioning template language (src/core/template*.c).
 *
 * What an operator or a device would check: a template from the AWS
 * documentation's examples (rewritten here with the same structure)
 * evaluates to the plan the applier must carry out; every intrinsic gives
 * the documented value; every mistake in a template is reported with its
 * JSON path, all of them at once; evaluation failures name the path and the
 * parameter; hostile templates (cycles, deep nesting, oversize) are refused
 * cleanly. Templates are written with single quotes for readability and
 * turned into JSON by q(): ' becomes " and ` becomes \".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>

#include "core/template.h"

#define CERT_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define CERT_ID_UPPER "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
#define POLICY_ALLOW_CONNECT \
	"'{`Version`:`2012-10-17`,`Statement`:[{`Effect`:`Allow`,`Action`:`iot:Connect`," \
	"`Resource`:`*`}]}'"
/* The smallest valid Resources section. */
#define R_MIN "'Resources':{'policy':{'Type':'AWS::IoT::Policy','Properties':{'PolicyName':'p1'}}}"
/* A thing whose ThingName is given by NAME (already quoted JSON). */
#define THING(name) "'thing':{'Type':'AWS::IoT::Thing','Properties':{'ThingName':" name "}}"

static char *q(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc(2 * n + 1);

	assert_non_null(out);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\'') {
			out[o++] = '"';
		} else if (s[i] == '`') {
			out[o++] = '\\';
			out[o++] = '"';
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

static json_t *qjson(const char *s)
{
	char *text = q(s);
	json_error_t e;
	json_t *v = json_loads(text, 0, &e);

	if (v == NULL)
		fail_msg("bad test JSON: %s: %s", e.text, text);
	free(text);
	return v;
}

static struct template *parse_ok(const char *tq, enum template_kind kind)
{
	char *body = q(tq);
	struct template *t = NULL;
	struct iotp_err err;
	iotp_rc rc;

	iotp_err_clear(&err);
	rc = template_parse(body, strlen(body), kind, &t, &err);
	if (rc != IOTP_OK)
		fail_msg("template refused: %s\n%s", err.msg, body);
	free(body);
	return t;
}

/* Evaluates and returns the plan as JSON (asserting success). */
static json_t *eval_ok(const struct template *t, const char *params_q,
                       const struct template_pseudo *ps)
{
	json_t *params = params_q != NULL ? qjson(params_q) : NULL, *j = NULL;
	struct template_plan *plan = NULL;
	struct iotp_err err;

	iotp_err_clear(&err);
	if (template_evaluate(t, params, ps, &plan, &err) != IOTP_OK)
		fail_msg("evaluation failed: %s", err.msg);
	assert_int_equal(template_plan_json(plan, &j, &err), IOTP_OK);
	template_plan_free(plan);
	json_decref(params);
	return j;
}

static void assert_json_eq(json_t *got, const char *want_q)
{
	json_t *want = qjson(want_q);

	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_SORT_KEYS | JSON_INDENT(1));
		char *w = json_dumps(want, JSON_SORT_KEYS | JSON_INDENT(1));

		fail_msg("plan differs\n got: %s\nwant: %s", g, w);
	}
	json_decref(want);
}

static void expect_eval_error(const struct template *t, const char *params_q,
                              const struct template_pseudo *ps, iotp_rc want_rc,
                              const char *want_msg)
{
	json_t *params = params_q != NULL ? qjson(params_q) : NULL;
	struct template_plan *plan = (struct template_plan *)&want_rc; /* sentinel */
	struct iotp_err err;
	iotp_rc rc;
	size_t n = strlen(want_msg);

	iotp_err_clear(&err);
	rc = template_evaluate(t, params, ps, &plan, &err);
	json_decref(params);
	if (rc != want_rc)
		fail_msg("rc %d (%s), want %d", rc, err.msg, want_rc);
	assert_ptr_equal(plan, (struct template_plan *)&want_rc); /* untouched */
	if (n > 0 && want_msg[n - 1] == '*' ? strncmp(err.msg, want_msg, n - 1) != 0
	                                     : strcmp(err.msg, want_msg) != 0)
		fail_msg("message\n got: %s\nwant: %s", err.msg, want_msg);
}

/* '*' at the end of want: prefix match; at the start: suffix match. */
static int problem_matches(const char *got, const char *want)
{
	size_t gn = strlen(got), wn = strlen(want);

	if (wn > 0 && want[wn - 1] == '*')
		return strncmp(got, want, wn - 1) == 0;
	if (wn > 0 && want[0] == '*')
		return gn >= wn - 1 && strcmp(got + gn - (wn - 1), want + 1) == 0;
	return strcmp(got, want) == 0;
}

/* template_validate() reports want (among its problems), and
 * template_parse() refuses the template with INVALID. */
static void expect_problem(const char *tq, enum template_kind kind, const char *want)
{
	char *body = q(tq);
	struct template_problems pr = {NULL, 0, 0};
	struct template *t = NULL;
	struct iotp_err err;
	int found = 0;

	iotp_err_clear(&err);
	assert_int_equal(template_validate(body, strlen(body), kind, &pr, &err), IOTP_OK);
	for (size_t i = 0; i < pr.count; i++)
		found |= problem_matches(pr.items[i], want);
	if (!found) {
		fprintf(stderr, "template: %s\nproblems (%zu):\n", body, pr.count);
		for (size_t i = 0; i < pr.count; i++)
			fprintf(stderr, "  %s\n", pr.items[i]);
		fail_msg("missing problem: %s", want);
	}
	assert_int_not_equal(template_parse(body, strlen(body), kind, &t, &err), IOTP_OK);
	assert_null(t);
	template_problems_cleanup(&pr);
	free(body);
}

/* ------------------------------------------------------------------ */
/* The documentation's examples                                        */

/* Same structure as the fleet provisioning example of the AWS guide. */
static const char fleet_template[] =
	"{'Parameters':{"
	"  'ThingName':{'Type':'String'},"
	"  'SerialNumber':{'Type':'String'},"
	"  'DeviceLocation':{'Type':'String'}},"
	" 'Mappings':{'LocationTable':{'Lyon':{'LocationUrl':'https://lyon.example.net'},"
	"                              'Oslo':{'LocationUrl':'https://oslo.example.net'}}},"
	" 'Resources':{"
	"  'thing':{'Type':'AWS::IoT::Thing',"
	"   'Properties':{"
	"    'AttributePayload':{'version':'v2','serialNumber':{'Ref':'SerialNumber'}},"
	"    'ThingName':{'Ref':'ThingName'},"
	"    'ThingTypeName':{'Fn::Join':['',['PumpType_',{'Ref':'SerialNumber'}]]},"
	"    'ThingGroups':['v2-pumps','EU'],"
	"    'BillingGroup':'PumpBilling'},"
	"   'OverrideSettings':{'AttributePayload':'MERGE','ThingTypeName':'REPLACE',"
	"                       'ThingGroups':'DO_NOTHING'}},"
	"  'certificate':{'Type':'AWS::IoT::Certificate',"
	"   'Properties':{'CertificateId':{'Ref':'AWS::IoT::Certificate::Id'},'Status':'Active'}},"
	"  'policy':{'Type':'AWS::IoT::Policy',"
	"   'Properties':{'PolicyDocument':{'Version':'2012-10-17','Statement':[{"
	"     'Effect':'Allow','Action':['iot:Publish','iot:Receive'],"
	"     'Resource':['arn:aws:iot:us-east-1:123456789012:topic/pumps/"
	"${iot:Connection.Thing.ThingName}/*']}]}}}},"
	" 'DeviceConfiguration':{'FallbackUrl':'https://www.example.net/fallback',"
	"  'LocationUrl':{'Fn::FindInMap':['LocationTable',{'Ref':'DeviceLocation'},'LocationUrl']}}}";

static void test_fleet_example(void **state)
{
	struct template *t = parse_ok(fleet_template, TEMPLATE_KIND_FLEET);
	struct template_pseudo ps = {.certificate_id = CERT_ID};
	json_t *plan = eval_ok(t, "{'ThingName':'pump-0042','SerialNumber':'SN42',"
	                          "'DeviceLocation':'Oslo','Unused':'ignored'}", &ps);

	(void)state;
	assert_int_equal(template_kind_of(t), TEMPLATE_KIND_FLEET);
	assert_json_eq(plan,
	               "{'thing':{'logicalId':'thing','thingName':'pump-0042',"
	               " 'thingTypeName':'PumpType_SN42','thingGroups':['v2-pumps','EU'],"
	               " 'attributes':{'version':'v2','serialNumber':'SN42'},"
	               " 'billingGroup':'PumpBilling',"
	               " 'overrideSettings':{'ThingTypeName':'REPLACE','ThingGroups':'DO_NOTHING',"
	               "                     'AttributePayload':'MERGE'}},"
	               " 'certificate':{'logicalId':'certificate','certificateId':'" CERT_ID "',"
	               "  'status':'ACTIVE','overrideSettings':{'Status':'DO_NOTHING'}},"
	               " 'policy':{'logicalId':'policy',"
	               "  'policyName':'63734d27f7db50923b58f5d8a540b297431b51e9e59c2ff35f79826482a8e49a',"
	               "  'policyDocument':'{`Version`:`2012-10-17`,`Statement`:[{`Effect`:`Allow`,"
	               "`Action`:[`iot:Publish`,`iot:Receive`],`Resource`:[`arn:aws:iot:us-east-1:"
	               "123456789012:topic/pumps/${iot:Connection.Thing.ThingName}/*`]}]}'},"
	               " 'deviceConfiguration':{'FallbackUrl':'https://www.example.net/fallback',"
	               "  'LocationUrl':'https://oslo.example.net'}}");
	json_decref(plan);
	/* A location the map does not know fails that provisioning, by path. */
	expect_eval_error(t, "{'ThingName':'pump-1','SerialNumber':'S1','DeviceLocation':'Paris'}",
	                  &ps, IOTP_ERR_TEMPLATE,
	                  "DeviceConfiguration.LocationUrl: Fn::FindInMap: no key 'Paris' in map "
	                  "'LocationTable'");
	template_free(t);
}

/* Same structure as the JITP example of the AWS guide. */
static const char jitp_template[] =
	"{'Parameters':{"
	"  'AWS::IoT::Certificate::CommonName':{'Type':'String'},"
	"  'AWS::IoT::Certificate::Country':{'Type':'String'},"
	"  'AWS::IoT::Certificate::Id':{'Type':'String'}},"
	" 'Resources':{"
	"  'thing':{'Type':'AWS::IoT::Thing','Properties':{"
	"    'ThingName':{'Ref':'AWS::IoT::Certificate::CommonName'},"
	"    'AttributePayload':{'version':'v1','country':{'Ref':'AWS::IoT::Certificate::Country'}}}},"
	"  'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
	"    'CertificateId':{'Ref':'AWS::IoT::Certificate::Id'},'Status':'ACTIVE'}},"
	"  'policy':{'Type':'AWS::IoT::Policy','Properties':{'PolicyDocument':"
	"    '{`Version`: `2012-10-17`, `Statement`: [{`Effect`: `Allow`, `Action`: [`iot:Publish`],"
	" `Resource`: [`arn:aws:iot:us-east-1:123456789012:topic/foo/bar`]}]}'}}}}";

static void test_jitp_example(void **state)
{
	struct template *t = parse_ok(jitp_template, TEMPLATE_KIND_JITP);
	struct template_pseudo ps = {
		.certificate_id = CERT_ID_UPPER, .common_name = "pump-0042", .country = "FR",
	};
	json_t *plan = eval_ok(t, NULL, &ps);

	(void)state;
	assert_json_eq(plan,
	               "{'thing':{'logicalId':'thing','thingName':'pump-0042',"
	               " 'attributes':{'version':'v1','country':'FR'},"
	               " 'overrideSettings':{'ThingTypeName':'DO_NOTHING','ThingGroups':'DO_NOTHING',"
	               "                     'AttributePayload':'DO_NOTHING'}},"
	               " 'certificate':{'logicalId':'certificate','certificateId':'" CERT_ID "',"
	               "  'status':'ACTIVE','overrideSettings':{'Status':'DO_NOTHING'}},"
	               " 'policy':{'logicalId':'policy',"
	               "  'policyName':'044449508fc22ffa52dd8e9b2753242185e177d63a9d812703b52350aca34d66',"
	               "  'policyDocument':'{`Version`: `2012-10-17`, `Statement`: [{`Effect`: `Allow`,"
	               " `Action`: [`iot:Publish`], `Resource`: [`arn:aws:iot:us-east-1:123456789012:"
	               "topic/foo/bar`]}]}'},"
	               " 'deviceConfiguration':{}}");
	json_decref(plan);
	/* A certificate without a Country cannot be provisioned by it. */
	ps.country = NULL;
	expect_eval_error(t, NULL, &ps, IOTP_ERR_INVALID,
	                  "Resources.thing.Properties.AttributePayload.country: no value for "
	                  "parameter 'AWS::IoT::Certificate::Country': the certificate does not "
	                  "provide it");
	/* A device cannot choose the certificate id itself. */
	ps.country = "FR";
	expect_eval_error(t, "{'AWS::IoT::Certificate::Id':'" CERT_ID "'}", &ps, IOTP_ERR_INVALID,
	                  "parameter 'AWS::IoT::Certificate::Id' is reserved: iotprov sets it from "
	                  "the certificate");
	template_free(t);
}

/* The AWS bulk registration example: CSR, default parameter value. */
static void test_bulk_example_defaults(void **state)
{
	struct template *t = parse_ok(
		"{'Parameters':{'ThingName':{'Type':'String'},'SerialNumber':{'Type':'String'},"
		" 'Location':{'Type':'String','Default':'WA'},'CSR':{'Type':'String'}},"
		" 'Resources':{"
		"  'thing':{'Type':'AWS::IoT::Thing','Properties':{'ThingName':{'Ref':'ThingName'},"
		"   'AttributePayload':{'version':'v1','serialNumber':{'Ref':'SerialNumber'}},"
		"   'ThingTypeName':'lightBulb-versionA',"
		"   'ThingGroups':['v1-lightbulbs',{'Ref':'Location'},'v1-lightbulbs']}},"
		"  'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
		"   'CertificateSigningRequest':{'Ref':'CSR'},'Status':'INACTIVE'},"
		"   'OverrideSettings':{'Status':'REPLACE'}},"
		"  'policy':{'Type':'AWS::IoT::Policy','Properties':{'PolicyName':'bulk-policy'}}}}",
		TEMPLATE_KIND_ANY);
	json_t *plan;

	(void)state;
	plan = eval_ok(t, "{'ThingName':'bulb-7','SerialNumber':'77','CSR':'-----BEGIN CSR'}",
	               NULL);
	assert_json_eq(plan,
	               "{'thing':{'logicalId':'thing','thingName':'bulb-7',"
	               " 'thingTypeName':'lightBulb-versionA','thingGroups':['v1-lightbulbs','WA'],"
	               " 'attributes':{'version':'v1','serialNumber':'77'},"
	               " 'overrideSettings':{'ThingTypeName':'DO_NOTHING','ThingGroups':'DO_NOTHING',"
	               "                     'AttributePayload':'DO_NOTHING'}},"
	               " 'certificate':{'logicalId':'certificate',"
	               "  'certificateSigningRequest':'-----BEGIN CSR','status':'INACTIVE',"
	               "  'overrideSettings':{'Status':'REPLACE'}},"
	               " 'policy':{'logicalId':'policy','policyName':'bulk-policy'},"
	               " 'deviceConfiguration':{}}");
	json_decref(plan);
	/* The Default yields to a given value. */
	plan = eval_ok(t, "{'ThingName':'bulb-8','SerialNumber':'78','CSR':'x','Location':'OR'}",
	               NULL);
	assert_string_equal(json_string_value(json_array_get(
		json_object_get(json_object_get(plan, "thing"), "thingGroups"), 1)), "OR");
	json_decref(plan);
	/* No Default: the missing parameter is named. */
	expect_eval_error(t, "{'SerialNumber':'78','CSR':'x'}", NULL, IOTP_ERR_INVALID,
	                  "Resources.thing.Properties.ThingName: missing parameter 'ThingName'");
	expect_eval_error(t, "{'ThingName':7,'SerialNumber':'78','CSR':'x'}", NULL,
	                  IOTP_ERR_INVALID, "parameter 'ThingName' must be a string");
	expect_eval_error(t, "['ThingName']", NULL, IOTP_ERR_INVALID,
	                  "parameters must be a JSON object");
	template_free(t);
}

/* ------------------------------------------------------------------ */
/* Intrinsics                                                          */

static const char intrinsics_template[] =
	"{'Parameters':{'P':{'Type':'String'},'Path':{'Type':'String'},"
	"  'Idx':{'Type':'String','Default':'0'},'Site':{'Type':'String','Default':'Lyon'},"
	"  'Name':{'Type':'String'}},"
	" 'Mappings':{'Sites':{'Lyon':{'Url':'https://lyon.example.net','Brokers':['b1','b2']}}},"
	" 'Resources':{"
	"  'thing':{'Type':'AWS::IoT::Thing','Properties':{'ThingName':{'Ref':'Name'}}},"
	"  'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
	"   'CertificateId':{'Ref':'AWS::IoT::Certificate::Id'}}},"
	"  'policy':{'Type':'AWS::IoT::Policy','Properties':{'PolicyDocument':"
	"   {'Fn::Sub':'{`Version`:`2012-10-17`,`Statement`:[{`Effect`:`Allow`,"
	"`Action`:`iot:Connect`,`Resource`:`arn:aws:iot:us-east-1:123456789012:client/${thing}`}]}'}}}},"
	" 'DeviceConfiguration':{"
	"  'join':{'Fn::Join':['-',['a',{'Ref':'P'},'c']]},"
	"  'joinsplit':{'Fn::Join':['+',{'Fn::Split':[',','a,b,,c']}]},"
	"  'joinempty':{'Fn::Join':['',[]]},"
	"  'select':{'Fn::Select':[1,['a','b','c']]},"
	"  'selectstr':{'Fn::Select':['2',{'Fn::Split':['/',{'Ref':'Path'}]}]},"
	"  'selectref':{'Fn::Select':[{'Ref':'Idx'},['first','second']]},"
	"  'nosplit':{'Fn::Select':[0,{'Fn::Split':[';','abc']}]},"
	"  'map':{'Fn::FindInMap':['Sites',{'Ref':'Site'},'Url']},"
	"  'maplist':{'Fn::Select':[1,{'Fn::FindInMap':['Sites','Lyon','Brokers']}]},"
	"  'sub':{'Fn::Sub':'id=${AWS::IoT::Certificate::Id};p=${P};lit=${!Literal};cost $5'},"
	"  'submap':{'Fn::Sub':['${Greeting}, ${P}${Name}',{'Greeting':{'Fn::Join':['',['he','llo']]},"
	"             'Name':'!'}]},"
	"  'subthing':{'Fn::Sub':'thing=${thing}'},"
	"  'refthing':{'Ref':'thing'},"
	"  'refcert':{'Ref':'certificate'},"
	"  'refpolicy':{'Ref':'policy'},"
	"  'nested':{'Fn::Join':[':',[{'Fn::Select':[0,{'Fn::Split':['.',{'Fn::Sub':'${P}.x'}]}]},"
	"             {'Fn::FindInMap':['Sites',{'Fn::Join':['',['Ly','on']]},'Url']}]]}}}";

static void test_intrinsics(void **state)
{
	struct template *t = parse_ok(intrinsics_template, TEMPLATE_KIND_ANY);
	struct template_pseudo ps = {.certificate_id = CERT_ID_UPPER};
	json_t *plan = eval_ok(t, "{'P':'x','Path':'a/b/c','Name':'dev-1'}", &ps);
	json_t *policy = json_object_get(plan, "policy");

	(void)state;
	assert_json_eq(json_object_get(plan, "deviceConfiguration"),
	               "{'join':'a-x-c','joinsplit':'a+b++c','joinempty':'','select':'b',"
	               " 'selectstr':'c','selectref':'first','nosplit':'abc',"
	               " 'map':'https://lyon.example.net','maplist':'b2',"
	               " 'sub':'id=" CERT_ID_UPPER ";p=x;lit=${Literal};cost $5',"
	               " 'submap':'hello, x!','subthing':'thing=dev-1','refthing':'dev-1',"
	               " 'refcert':'" CERT_ID "',"
	               " 'refpolicy':'3e7a5ba3f42c9d6380186ffc6322526720d38f32d5c7789b90776a5851a38d50',"
	               " 'nested':'x:https://lyon.example.net'}");
	/* The policy document is built with the thing's name in it. */
	assert_string_equal(json_string_value(json_object_get(policy, "policyDocument")),
	                    "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
	                    "\"Action\":\"iot:Connect\",\"Resource\":\"arn:aws:iot:us-east-1:"
	                    "123456789012:client/dev-1\"}]}");
	assert_string_equal(json_string_value(json_object_get(policy, "policyName")),
	                    json_string_value(json_object_get(
	                            json_object_get(plan, "deviceConfiguration"), "refpolicy")));
	json_decref(plan);
	template_free(t);
}

static void test_intrinsic_eval_errors(void **state)
{
	struct template *t = parse_ok(
		"{'Parameters':{'Idx':{'Type':'String'},'List':{'Type':'String'},"
		"  'Site':{'Type':'String'},'Big':{'Type':'String','Default':''}},"
		" 'Mappings':{'Sites':{'Lyon':{'Url':'u','Brokers':['b1']}}},"
		" " R_MIN ","
		" 'DeviceConfiguration':{"
		"  'sel':{'Fn::Select':[{'Ref':'Idx'},{'Fn::Split':[',',{'Ref':'List'}]}]},"
		"  'map':{'Fn::FindInMap':['Sites',{'Ref':'Site'},'Url']},"
		"  'big':{'Fn::Join':['',[{'Ref':'Big'},{'Ref':'Big'},{'Ref':'Big'},{'Ref':'Big'},"
		"     {'Ref':'Big'},{'Ref':'Big'},{'Ref':'Big'},{'Ref':'Big'},{'Ref':'Big'},"
		"     {'Ref':'Big'},{'Ref':'Big'},{'Ref':'Big'},{'Ref':'Big'},{'Ref':'Big'},"
		"     {'Ref':'Big'},{'Ref':'Big'},{'Ref':'Big'}]]}}}",
		TEMPLATE_KIND_ANY);
	char *params;
	json_t *plan;

	(void)state;
	plan = eval_ok(t, "{'Idx':'2','List':'a,b,c','Site':'Lyon'}", NULL);
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(plan, "deviceConfiguration"), "sel")), "c");
	json_decref(plan);
	expect_eval_error(t, "{'Idx':'3','List':'a,b,c','Site':'Lyon'}", NULL, IOTP_ERR_TEMPLATE,
	                  "DeviceConfiguration.sel: Fn::Select index 3 is out of range (the list "
	                  "has 3 elements)");
	expect_eval_error(t, "{'Idx':'two','List':'a','Site':'Lyon'}", NULL, IOTP_ERR_TEMPLATE,
	                  "DeviceConfiguration.sel.Fn::Select[0]: Fn::Select index 'two' is not a "
	                  "non-negative integer");
	expect_eval_error(t, "{'Idx':'-1','List':'a','Site':'Lyon'}", NULL, IOTP_ERR_TEMPLATE,
	                  "DeviceConfiguration.sel.Fn::Select[0]: Fn::Select index '-1' is not a "
	                  "non-negative integer");
	expect_eval_error(t, "{'Idx':'0','List':'a','Site':'Paris'}", NULL, IOTP_ERR_TEMPLATE,
	                  "DeviceConfiguration.map: Fn::FindInMap: no key 'Paris' in map 'Sites'");
	/* 17 x 4096 characters: more than any string may grow. */
	params = malloc(4096 + 64);
	assert_non_null(params);
	memcpy(params, "{'Idx':'0','List':'a','Site':'Lyon','Big':'", 43);
	memset(params + 43, 'z', 4096);
	memcpy(params + 43 + 4096, "'}", 3);
	expect_eval_error(t, params, NULL, IOTP_ERR_TOO_BIG,
	                  "DeviceConfiguration.big: Fn::Join builds a string longer than 65536 bytes");
	/* And one character more than a parameter may hold. */
	memcpy(params + 43 + 4096, "z'}", 4);
	expect_eval_error(t, params, NULL, IOTP_ERR_TOO_BIG,
	                  "parameter 'Big' is longer than 4096 characters");
	free(params);
	template_free(t);
}

static void test_values_checked_when_evaluated(void **state)
{
	struct template *t = parse_ok(
		"{'Parameters':{'N':{'Type':'String'},'S':{'Type':'String','Default':'active'},"
		"  'A':{'Type':'String','Default':'ok'},'G':{'Type':'String','Default':'g1,g2,g1'},"
		"  'Doc':{'Type':'String','Default':" POLICY_ALLOW_CONNECT "}},"
		" 'Mappings':{'M':{'k':{'list':['a','b']}}},"
		" 'Resources':{"
		"  'thing':{'Type':'AWS::IoT::Thing','Properties':{'ThingName':{'Ref':'N'},"
		"   'ThingGroups':{'Fn::Split':[',',{'Ref':'G'}]},'AttributePayload':{'a':{'Ref':'A'}}}},"
		"  'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
		"   'CertificateId':'" CERT_ID_UPPER "','Status':{'Ref':'S'}}},"
		"  'policy':{'Type':'AWS::IoT::Policy','Properties':{'PolicyDocument':{'Ref':'Doc'}}}}}",
		TEMPLATE_KIND_ANY);
	json_t *plan;

	(void)state;
	plan = eval_ok(t, "{'N':'dev-1'}", NULL);
	assert_json_eq(json_object_get(json_object_get(plan, "thing"), "thingGroups"),
	               "['g1','g2']");
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(plan, "certificate"), "status")), "ACTIVE");
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(plan, "certificate"), "certificateId")), CERT_ID);
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(plan, "policy"), "policyName")),
		"f7493be1d9041cb081d63630b901b62aa92ae4ced399ebac0cfd1ad396937cc6");
	json_decref(plan);
	expect_eval_error(t, "{'N':'dev 1'}", NULL, IOTP_ERR_TEMPLATE,
	                  "Resources.thing.Properties.ThingName: 'dev 1' is not a valid thing name: "
	                  "use 1 to 128 of a-z A-Z 0-9 : _ -");
	expect_eval_error(t, "{'N':'d','G':'g1,,g2'}", NULL, IOTP_ERR_TEMPLATE,
	                  "Resources.thing.Properties.ThingGroups[1]: '' is not a valid thing group "
	                  "name: use 1 to 128 of a-z A-Z 0-9 : _ -");
	expect_eval_error(t, "{'N':'d','A':'x y'}", NULL, IOTP_ERR_TEMPLATE,
	                  "Resources.thing.Properties.AttributePayload.a: 'x y' is not a valid "
	                  "attribute value: use at most 800 of a-z A-Z 0-9 _ . , @ / : # -");
	expect_eval_error(t, "{'N':'d','S':'REVOKED'}", NULL, IOTP_ERR_TEMPLATE,
	                  "Resources.certificate.Properties.Status: 'REVOKED' is not a certificate "
	                  "status: use ACTIVE or INACTIVE");
	expect_eval_error(t, "{'N':'d','Doc':'{}'}", NULL, IOTP_ERR_TEMPLATE,
	                  "Resources.policy.Properties.PolicyDocument: invalid policy document: *");
	template_free(t);

	/* A Mappings list where a string is needed fails when evaluated. */
	t = parse_ok("{'Parameters':{'K':{'Type':'String'}},"
	             " 'Mappings':{'M':{'k':{'list':['a','b'],'str':'s'}}}," R_MIN ","
	             " 'DeviceConfiguration':{'v':{'Fn::FindInMap':['M','k',{'Ref':'K'}]}}}",
	             TEMPLATE_KIND_ANY);
	plan = eval_ok(t, "{'K':'str'}", NULL);
	json_decref(plan);
	expect_eval_error(t, "{'K':'list'}", NULL, IOTP_ERR_TEMPLATE,
	                  "DeviceConfiguration.v: Fn::FindInMap gives a list where a string is needed");
	template_free(t);
}

/* ------------------------------------------------------------------ */
/* OverrideSettings                                                    */

static void test_override_settings(void **state)
{
	static const struct {
		const char *types, *groups, *attrs, *status;
	} cases[] = {
		{"DO_NOTHING", "MERGE", "REPLACE", "FAIL"},
		{"REPLACE", "REPLACE", "MERGE", "DO_NOTHING"},
		{"FAIL", "FAIL", "FAIL", "REPLACE"},
		{"DO_NOTHING", "DO_NOTHING", "DO_NOTHING", "FAIL"},
	};
	char tq[2048], want[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct template *t;
		json_t *plan;

		/* Even cases use the property names, odd ones the upper-case names. */
		snprintf(tq, sizeof(tq),
		         "{'Resources':{'thing':{'Type':'AWS::IoT::Thing','Properties':{"
		         "'ThingName':'t1'},'OverrideSettings':{'%s':'%s','%s':'%s','%s':'%s'}},"
		         "'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
		         "'CertificateId':'" CERT_ID "'},'OverrideSettings':{'%s':'%s'}}}}",
		         i % 2 ? "THING_TYPE_NAME" : "ThingTypeName", cases[i].types,
		         i % 2 ? "THING_GROUPS" : "ThingGroups", cases[i].groups,
		         i % 2 ? "ATTRIBUTE_PAYLOAD" : "AttributePayload", cases[i].attrs,
		         i % 2 ? "STATUS" : "Status", cases[i].status);
		t = parse_ok(tq, TEMPLATE_KIND_FLEET);
		plan = eval_ok(t, NULL, NULL);
		snprintf(want, sizeof(want),
		         "{'ThingTypeName':'%s','ThingGroups':'%s','AttributePayload':'%s'}",
		         cases[i].types, cases[i].groups, cases[i].attrs);
		assert_json_eq(json_object_get(json_object_get(plan, "thing"), "overrideSettings"),
		               want);
		snprintf(want, sizeof(want), "{'Status':'%s'}", cases[i].status);
		assert_json_eq(json_object_get(json_object_get(plan, "certificate"),
		                               "overrideSettings"), want);
		json_decref(plan);
		template_free(t);
	}
	assert_string_equal(template_override_name(TEMPLATE_OVERRIDE_MERGE), "MERGE");
	assert_string_equal(template_override_name((enum template_override)9), "");
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */

#define T(name, props, over) \
	"{'Resources':{'thing':{'Type':'AWS::IoT::Thing','Properties':" props over "}}}"

static const struct {
	const char *tq;
	enum template_kind kind;
	const char *problem;
} problems[] = {
	/* Sections */
	{"{" R_MIN ",'Outputs':{}}", TEMPLATE_KIND_ANY,
	 "Outputs: Outputs are not part of provisioning templates (sections: Parameters, Mappings, "
	 "Resources, DeviceConfiguration)"},
	{"{" R_MIN ",'Conditions':{}}", TEMPLATE_KIND_ANY, "Conditions: Conditions are not part*"},
	{"{" R_MIN ",'Foo':1}", TEMPLATE_KIND_ANY,
	 "Foo: unknown section (allowed: Parameters, Mappings, Resources, DeviceConfiguration)"},
	{"{'Parameters':{}}", TEMPLATE_KIND_ANY, "Resources is missing: a template declares resources"},
	{"{'Resources':{}}", TEMPLATE_KIND_ANY, "Resources: declare at least one resource"},
	{"{'Resources':[]}", TEMPLATE_KIND_ANY,
	 "Resources: must be an object of resources by logical id"},
	{"", TEMPLATE_KIND_ANY, "template body is empty"},
	{"[1]", TEMPLATE_KIND_ANY, "template body must be a JSON object"},
	{"{'Resources':", TEMPLATE_KIND_ANY, "template body is not valid JSON: *"},
	{"{" R_MIN "," R_MIN "}", TEMPLATE_KIND_ANY,
	 "template body is not valid JSON: duplicate object key*"},
	/* Parameters */
	{"{'Parameters':{'Count':{'Type':'Number'}}," R_MIN "}", TEMPLATE_KIND_ANY,
	 "Parameters.Count.Type: unsupported parameter type: parameters are of Type String"},
	{"{'Parameters':{'P':{'Default':'x'}}," R_MIN "}", TEMPLATE_KIND_ANY,
	 "Parameters.P: Type is missing (parameters are of Type String)"},
	{"{'Parameters':{'P':{'Type':'String','AllowedValues':['a']}}," R_MIN "}", TEMPLATE_KIND_ANY,
	 "Parameters.P.AllowedValues: unknown parameter member (allowed: Type, Default)"},
	{"{'Parameters':{'P':{'Type':'String','Default':3}}," R_MIN "}", TEMPLATE_KIND_ANY,
	 "Parameters.P.Default: a Default must be a string, not a number or boolean"},
	{"{'Parameters':{'P':'String'}," R_MIN "}", TEMPLATE_KIND_ANY,
	 "Parameters.P: a parameter is declared as {\"Type\": \"String\", \"Default\": ...}"},
	{"{'Parameters':{'AWS::IoT::Certificate::Email':{'Type':'String'}}," R_MIN "}",
	 TEMPLATE_KIND_ANY, "Parameters.AWS::IoT::Certificate::Email: unknown pseudo parameter*"},
	{"{'Parameters':{'':{'Type':'String'}}," R_MIN "}", TEMPLATE_KIND_ANY,
	 "Parameters.(empty): parameter names must not be empty"},
	{"{'Parameters':[]," R_MIN "}", TEMPLATE_KIND_ANY,
	 "Parameters: must be an object of parameter declarations"},
	/* Mappings */
	{"{'Mappings':{'M':{'a':{'b':{'Ref':'X'}}}}," R_MIN "}", TEMPLATE_KIND_ANY,
	 "Mappings.M.a.b: must be a string or a list of strings (Mappings cannot use intrinsic "
	 "functions)"},
	{"{'Mappings':{'M':{'a':{'b':[1]}}}," R_MIN "}", TEMPLATE_KIND_ANY,
	 "Mappings.M.a.b: must be a string or a list of strings"},
	{"{'Mappings':{'M':'x'}," R_MIN "}", TEMPLATE_KIND_ANY,
	 "Mappings.M: a map is an object of top-level keys"},
	{"{'Mappings':{'M':{'a':'x'}}," R_MIN "}", TEMPLATE_KIND_ANY,
	 "Mappings.M.a: a top-level key maps to an object of second-level keys"},
	/* Resources */
	{"{'Resources':{'x':{'Type':'AWS::IoT::Foo','Properties':{}}}}", TEMPLATE_KIND_ANY,
	 "Resources.x.Type: unknown resource type 'AWS::IoT::Foo' (allowed: AWS::IoT::Thing, "
	 "AWS::IoT::Certificate, AWS::IoT::Policy)"},
	{"{'Resources':{" THING("'a'") ",'thing2':{'Type':'AWS::IoT::Thing','Properties':{"
	 "'ThingName':'b'}}}}", TEMPLATE_KIND_ANY,
	 "Resources.thing2: a template declares at most one AWS::IoT::Thing (already declared as "
	 "'thing')"},
	{"{'Resources':{'p1':{'Type':'AWS::IoT::Policy','Properties':{'PolicyName':'a'}},"
	 "'p2':{'Type':'AWS::IoT::Policy','Properties':{'PolicyName':'b'}}}}", TEMPLATE_KIND_ANY,
	 "Resources.p2: a template declares at most one AWS::IoT::Policy (already declared as 'p1')"},
	{T("thing", "{'ThingName':'a'}", ",'Metadata':{}"), TEMPLATE_KIND_ANY,
	 "Resources.thing.Metadata: unknown resource member (allowed: Type, Properties, "
	 "OverrideSettings)"},
	{"{'Resources':{'thing':{'Type':'AWS::IoT::Thing'}}}", TEMPLATE_KIND_ANY,
	 "Resources.thing: Properties is missing"},
	{"{'Resources':{'thing':{'Properties':{}}}}", TEMPLATE_KIND_ANY,
	 "Resources.thing: Type is missing"},
	{"{'Resources':{'thing':{'Type':'AWS::IoT::Thing','Properties':[]}}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties: must be an object"},
	{"{'Resources':{'my thing':{'Type':'AWS::IoT::Thing','Properties':{'ThingName':'a'}}}}",
	 TEMPLATE_KIND_ANY, "Resources.my thing: a logical id is 1 to 255 of A-Z a-z 0-9 _ -"},
	{"{'Parameters':{'Serial':{'Type':'String'}},'Resources':{'Serial':{'Type':"
	 "'AWS::IoT::Thing','Properties':{'ThingName':'a'}}}}", TEMPLATE_KIND_ANY,
	 "Resources.Serial: this logical id is also the name of a parameter: Ref would be ambiguous"},
	/* Thing */
	{T("thing", "{'ThingName':'a','Name':'b'}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.Name: unknown property of AWS::IoT::Thing (allowed: ThingName, "
	 "ThingTypeName, ThingGroups, AttributePayload, BillingGroup)"},
	{T("thing", "{'ThingTypeName':'a'}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties: ThingName is missing"},
	{T("thing", "{'ThingName':'a','PackageVersions':{}}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.PackageVersions: PackageVersions is not supported by iotprov"},
	{T("thing", "{'ThingName':'a b'}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: 'a b' is not a valid thing name: use 1 to 128 of "
	 "a-z A-Z 0-9 : _ -"},
	{T("thing", "{'ThingName':'a','ThingTypeName':'t/1'}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingTypeName: 't/1' is not a valid thing type name: use 1 to "
	 "128 of a-z A-Z 0-9 : _ -"},
	{T("thing", "{'ThingName':'a','ThingGroups':['ok','x/y']}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingGroups[1]: 'x/y' is not a valid thing group name: use 1 to "
	 "128 of a-z A-Z 0-9 : _ -"},
	{T("thing", "{'ThingName':'a','ThingGroups':'g1'}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingGroups: a string is given where a list is needed"},
	{T("thing", "{'ThingName':'a','ThingGroups':{'Fn::Join':[',',['a','b']]}}", ""),
	 TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingGroups: Fn::Join gives a string where a list is needed"},
	{T("thing", "{'ThingName':'a','ThingGroups':{'Fn::Join':'abc'}}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingGroups: Fn::Join needs [delimiter, [values]]"},
	{T("thing", "{'ThingName':{'Fn::Split':[',','a,b']}}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Fn::Split gives a list where a string is needed"},
	{T("thing", "{'ThingName':['a']}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: a list is given where a string is needed"},
	{T("thing", "{'ThingName':'a','BillingGroup':'b g'}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.BillingGroup: 'b g' is not a valid billing group name*"},
	{T("thing", "{'ThingName':'a','AttributePayload':{'bad name':'v'}}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.AttributePayload.bad name: not a valid attribute name: use 1 "
	 "to 128 of a-z A-Z 0-9 _ . , @ / : # -"},
	{T("thing", "{'ThingName':'a','AttributePayload':{'color':'red green'}}", ""),
	 TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.AttributePayload.color: 'red green' is not a valid attribute "
	 "value: use at most 800 of a-z A-Z 0-9 _ . , @ / : # -"},
	{T("thing", "{'ThingName':'a','AttributePayload':{'Attributes':{'n':1}}}", ""),
	 TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.AttributePayload.Attributes.n: expected a string, a list or an "
	 "intrinsic function, not a number"},
	{T("thing", "{'ThingName':'a','AttributePayload':['x']}", ""), TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.AttributePayload: must be an object of attribute names and "
	 "values"},
	/* References */
	{"{'Parameters':{'SerialNumber':{'Type':'String'}},'Resources':{"
	 THING("{'Ref':'SerialNumbr'}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Ref to unknown parameter 'SerialNumbr' (did you mean "
	 "'SerialNumber'?)"},
	{"{'Parameters':{'ThingName ':{'Type':'String'}},'Resources':{"
	 THING("{'Ref':'ThingName'}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Ref to unknown parameter 'ThingName' (did you mean "
	 "'ThingName '? mind the whitespace)"},
	{"{'Resources':{" THING("{'Ref':'AWS::Region'}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Ref to unknown parameter 'AWS::Region'"},
	{"{'Resources':{" THING("{'Ref':['x']}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Ref needs the name of a parameter or a resource"},
	{"{'Resources':{" THING("{'Fn::If':['c','a','b']}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: unknown intrinsic function 'Fn::If' (supported: Ref, "
	 "Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap, Fn::Sub)"},
	{"{'Resources':{" THING("{'Fn::GetAtt':['a','b']}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: unknown intrinsic function 'Fn::GetAtt'*"},
	{"{'Resources':{" THING("{'Reff':'x'}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: expected a string, a list or an intrinsic function, "
	 "not an object with member 'Reff'"},
	{"{'Resources':{" THING("42") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: expected a string, a list or an intrinsic function, "
	 "not a number"},
	{"{'Resources':{" THING("{'Ref':'certificate'}") ",'certificate':{'Type':"
	 "'AWS::IoT::Certificate','Properties':{'CertificateSigningRequest':'x'}}}}",
	 TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Ref to resource 'certificate' needs it declared by "
	 "CertificateId (a new certificate's id is not known in advance)"},
	/* Intrinsic shapes */
	{"{'Resources':{" THING("{'Fn::Join':[',']}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Fn::Join needs [delimiter, [values]]"},
	{"{'Resources':{" THING("{'Fn::Join':[1,['a']]}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Fn::Join needs [delimiter, [values]]"},
	{"{'Resources':{" THING("{'Fn::Join':[',',['a',{'Ref':'Nope'}]]}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName.Fn::Join[1][1]: Ref to unknown parameter 'Nope'"},
	{"{'Resources':{" THING("{'Fn::Select':[0]}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Fn::Select needs [index, [values]]"},
	{"{'Resources':{" THING("{'Fn::Select':[-1,['a']]}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName.Fn::Select[0]: Fn::Select index must not be negative"},
	{"{'Resources':{" THING("{'Fn::Select':['x',['a']]}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName.Fn::Select[0]: Fn::Select index 'x' is not a "
	 "non-negative integer"},
	{"{'Resources':{" THING("{'Fn::Select':[{},['a']]}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName.Fn::Select[0]: Fn::Select index must be a "
	 "non-negative integer"},
	{"{'Resources':{" THING("{'Fn::Select':[2,['a','b']]}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Fn::Select index 2 is out of range (the list has 2 "
	 "elements)"},
	{"{'Resources':{" THING("{'Fn::Split':[',']}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Fn::Split needs [delimiter, string]"},
	{"{'Resources':{" THING("{'Fn::Select':[0,{'Fn::Split':['','ab']}]}") "}}",
	 TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName.Fn::Select[1]: Fn::Split delimiter must not be empty"},
	{"{'Resources':{" THING("{'Fn::FindInMap':['M','a']}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Fn::FindInMap needs [map name, top-level key, "
	 "second-level key]"},
	{"{'Resources':{" THING("{'Fn::FindInMap':['Nope','a','b']}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Fn::FindInMap: no map 'Nope' in Mappings"},
	{"{'Mappings':{'Sites':{'Lyon':{'Url':'u'}}},'Resources':{"
	 THING("{'Fn::FindInMap':['Sites','Paris','Url']}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Fn::FindInMap: no key 'Paris' in map 'Sites'"},
	{"{'Mappings':{'Sites':{'Lyon':{'Url':'u'}}},'Resources':{"
	 THING("{'Fn::FindInMap':['Sites','Lyon','Zip']}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Fn::FindInMap: no key 'Zip' in entry 'Lyon'"},
	{"{'Resources':{" THING("{'Fn::Sub':['a']}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName: Fn::Sub needs a string or [string, {variables}]"},
	{"{'Resources':{" THING("{'Fn::Sub':'a${b'}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName.Fn::Sub: Fn::Sub: '${' without a closing '}'"},
	{"{'Resources':{" THING("{'Fn::Sub':'a${}'}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName.Fn::Sub: Fn::Sub: empty variable '${}'"},
	{"{'Parameters':{'SerialNumber':{'Type':'String'}},'Resources':{"
	 THING("{'Fn::Sub':'d-${SerialNumbr}'}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName.Fn::Sub: Fn::Sub refers to unknown parameter "
	 "'SerialNumbr' (did you mean 'SerialNumber'?)"},
	{"{'Resources':{" THING("{'Fn::Sub':['${a}',{'a':['x']}]}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing.Properties.ThingName.Fn::Sub[1].a: a list is given where a string is "
	 "needed"},
	{"{'Resources':{'policy':{'Type':'AWS::IoT::Policy','Properties':{'PolicyDocument':"
	 "{'Fn::Sub':'{`Version`:`2012-10-17`,`Statement`:[{`Effect`:`Allow`,`Action`:`iot:Connect`,"
	 "`Resource`:`${iot:ClientId}`}]}'}}}}}", TEMPLATE_KIND_ANY,
	 "Resources.policy.Properties.PolicyDocument.Fn::Sub: Fn::Sub refers to unknown parameter "
	 "'iot:ClientId' (write ${!iot:ClientId} for the literal text)"},
	/* Certificate */
	{"{'Resources':{'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
	 "'Status':'ACTIVE'}}}}", TEMPLATE_KIND_ANY,
	 "Resources.certificate.Properties: declare exactly one of CertificateId, CertificatePem, "
	 "CertificateSigningRequest"},
	{"{'Resources':{'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
	 "'CertificateId':'" CERT_ID "','CertificateSigningRequest':'x'}}}}", TEMPLATE_KIND_ANY,
	 "Resources.certificate.Properties: declare exactly one of CertificateId, CertificatePem, "
	 "CertificateSigningRequest"},
	{"{'Resources':{'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
	 "'CertificateId':'" CERT_ID "','CACertificatePem':'x'}}}}", TEMPLATE_KIND_ANY,
	 "Resources.certificate.Properties: CACertificatePem goes only with CertificatePem"},
	{"{'Resources':{'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
	 "'CertificateId':'" CERT_ID "','Status':'REVOKED'}}}}", TEMPLATE_KIND_ANY,
	 "Resources.certificate.Properties.Status: 'REVOKED' is not a certificate status: use "
	 "ACTIVE or INACTIVE"},
	{"{'Resources':{'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
	 "'CertificateId':'abc'}}}}", TEMPLATE_KIND_ANY,
	 "Resources.certificate.Properties.CertificateId: 'abc' is not a certificate id (64 "
	 "hexadecimal digits)"},
	{"{'Resources':{'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
	 "'CertificatePem':''}}}}", TEMPLATE_KIND_ANY,
	 "Resources.certificate.Properties.CertificatePem: must not be empty"},
	{"{'Resources':{'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
	 "'CertificateSigningRequest':'x'}}}}", TEMPLATE_KIND_FLEET,
	 "Resources.certificate.Properties: a fleet provisioning template declares its certificate "
	 "by CertificateId only"},
	{"{'Resources':{'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
	 "'CertificatePem':'x'}}}}", TEMPLATE_KIND_JITP,
	 "Resources.certificate.Properties: a JITP template declares its certificate by "
	 "CertificateId only"},
	{"{" R_MIN ",'DeviceConfiguration':{'a':'b'}}", TEMPLATE_KIND_JITP,
	 "DeviceConfiguration: DeviceConfiguration is for fleet provisioning templates only"},
	/* Policy */
	{"{'Resources':{'policy':{'Type':'AWS::IoT::Policy','Properties':{'PolicyName':'a',"
	 "'PolicyDocument':" POLICY_ALLOW_CONNECT "}}}}", TEMPLATE_KIND_ANY,
	 "Resources.policy.Properties: declare exactly one of PolicyName (an existing policy) and "
	 "PolicyDocument"},
	{"{'Resources':{'policy':{'Type':'AWS::IoT::Policy','Properties':{}}}}", TEMPLATE_KIND_ANY,
	 "Resources.policy.Properties: declare exactly one of PolicyName*"},
	{"{'Resources':{'policy':{'Type':'AWS::IoT::Policy','Properties':{'PolicyName':'a b'}}}}",
	 TEMPLATE_KIND_ANY,
	 "Resources.policy.Properties.PolicyName: 'a b' is not a valid policy name: use 1 to 128 of "
	 "a-z A-Z 0-9 _ + = , . @ -"},
	{"{'Resources':{'policy':{'Type':'AWS::IoT::Policy','Properties':{'PolicyDocument':"
	 "'{`Version`:`2012-10-17`}'}}}}", TEMPLATE_KIND_ANY,
	 "Resources.policy.Properties.PolicyDocument: invalid policy document: *"},
	{"{'Resources':{'policy':{'Type':'AWS::IoT::Policy','Properties':{'PolicyDocument':"
	 "{'Version':'2012-10-17','Statement':[{'Effect':'Maybe','Action':'iot:Connect',"
	 "'Resource':'*'}]}}}}}", TEMPLATE_KIND_ANY,
	 "Resources.policy.Properties.PolicyDocument: invalid policy document: *"},
	{"{'Resources':{'policy':{'Type':'AWS::IoT::Policy','Properties':{'PolicyName':'a'},"
	 "'OverrideSettings':{}}}}", TEMPLATE_KIND_ANY,
	 "Resources.policy.OverrideSettings: OverrideSettings are not available for "
	 "AWS::IoT::Policy"},
	/* OverrideSettings */
	{T("thing", "{'ThingName':'a'}", ",'OverrideSettings':{'ThingName':'REPLACE'}"),
	 TEMPLATE_KIND_ANY,
	 "Resources.thing.OverrideSettings.ThingName: unknown override setting (allowed: "
	 "ThingTypeName, ThingGroups, AttributePayload)"},
	{T("thing", "{'ThingName':'a'}", ",'OverrideSettings':{'ThingGroups':'KEEP'}"),
	 TEMPLATE_KIND_ANY,
	 "Resources.thing.OverrideSettings.ThingGroups: an override setting is one of DO_NOTHING, "
	 "REPLACE, FAIL, MERGE"},
	{T("thing", "{'ThingName':'a'}", ",'OverrideSettings':{'ThingGroups':'merge'}"),
	 TEMPLATE_KIND_ANY,
	 "Resources.thing.OverrideSettings.ThingGroups: an override setting is one of*"},
	{T("thing", "{'ThingName':'a'}", ",'OverrideSettings':{'ThingTypeName':'MERGE'}"),
	 TEMPLATE_KIND_ANY,
	 "Resources.thing.OverrideSettings.ThingTypeName: MERGE is valid only for ThingGroups and "
	 "AttributePayload"},
	{T("thing", "{'ThingName':'a'}",
	   ",'OverrideSettings':{'ThingGroups':'FAIL','THING_GROUPS':'MERGE'}"),
	 TEMPLATE_KIND_ANY,
	 "Resources.thing.OverrideSettings.THING_GROUPS: this property's setting is given twice"},
	{T("thing", "{'ThingName':'a'}", ",'OverrideSettings':'REPLACE'"), TEMPLATE_KIND_ANY,
	 "Resources.thing.OverrideSettings: must be an object of property: setting"},
	{"{'Resources':{'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
	 "'CertificateId':'" CERT_ID "'},'OverrideSettings':{'Status':'MERGE'}}}}", TEMPLATE_KIND_ANY,
	 "Resources.certificate.OverrideSettings.Status: MERGE is valid only for ThingGroups and "
	 "AttributePayload"},
	{"{'Resources':{'certificate':{'Type':'AWS::IoT::Certificate','Properties':{"
	 "'CertificateId':'" CERT_ID "'},'OverrideSettings':{'CertificateId':'REPLACE'}}}}",
	 TEMPLATE_KIND_ANY,
	 "Resources.certificate.OverrideSettings.CertificateId: unknown override setting (allowed: "
	 "Status)"},
	/* DeviceConfiguration */
	{"{" R_MIN ",'DeviceConfiguration':{'x':{'a':'b','c':'d'}}}", TEMPLATE_KIND_FLEET,
	 "DeviceConfiguration.x: nested values are not supported: DeviceConfiguration is a flat map "
	 "of strings"},
	{"{" R_MIN ",'DeviceConfiguration':{'x':['a']}}", TEMPLATE_KIND_FLEET,
	 "DeviceConfiguration.x: nested values are not supported*"},
	{"{" R_MIN ",'DeviceConfiguration':{'n':5}}", TEMPLATE_KIND_FLEET,
	 "DeviceConfiguration.n: expected a string, a list or an intrinsic function, not a number"},
	{"{" R_MIN ",'DeviceConfiguration':{'s':{'Fn::Split':[',','a']}}}", TEMPLATE_KIND_FLEET,
	 "DeviceConfiguration.s: Fn::Split gives a list where a string is needed"},
	{"{" R_MIN ",'DeviceConfiguration':'x'}", TEMPLATE_KIND_FLEET,
	 "DeviceConfiguration: must be a flat object of string values"},
	/* Cycles between resources */
	{"{'Resources':{" THING("{'Ref':'thing'}") "}}", TEMPLATE_KIND_ANY,
	 "Resources.thing: circular reference: thing -> thing"},
	{"{'Resources':{" THING("{'Fn::Sub':'t-${certificate}'}") ",'certificate':{'Type':"
	 "'AWS::IoT::Certificate','Properties':{'CertificateId':{'Fn::Join':['',[{'Ref':'thing'}]]}}}}}",
	 TEMPLATE_KIND_ANY,
	 "Resources.thing: circular reference: thing -> certificate -> thing"},
	{"{'Resources':{" THING("{'Ref':'cert'}") ",'cert':{'Type':'AWS::IoT::Certificate',"
	 "'Properties':{'CertificateId':{'Ref':'pol'}}},'pol':{'Type':'AWS::IoT::Policy',"
	 "'Properties':{'PolicyName':{'Fn::Sub':'p-${thing}'}}}}}", TEMPLATE_KIND_ANY,
	 "Resources.thing: circular reference: thing -> cert -> pol -> thing"},
	{"{'Resources':{'pol':{'Type':'AWS::IoT::Policy','Properties':{'PolicyDocument':{"
	 "'Version':'2012-10-17','Statement':[{'Effect':'Allow','Action':'iot:Connect',"
	 "'Resource':{'Ref':'pol'}}]}}}}}", TEMPLATE_KIND_ANY,
	 "Resources.pol: circular reference: pol -> pol"},
};

static void test_each_problem_reported_with_path(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(problems) / sizeof(problems[0]); i++)
		expect_problem(problems[i].tq, problems[i].kind, problems[i].problem);
}

/* Every problem of one template comes back in one answer. */
static void test_all_problems_together(void **state)
{
	char *body = q("{'Parameters':{'SerialNumber':{'Type':'Number'}},"
	               " 'Resources':{"
	               "  'thing':{'Type':'AWS::IoT::Thing','Properties':{"
	               "   'ThingName':{'Ref':'SerialNumbr'},'ThingGroups':{'Fn::Join':'abc'}}},"
	               "  'x':{'Type':'AWS::IoT::Foo','Properties':{}}}}");
	struct template_problems pr = {NULL, 0, 0};
	struct template *t = NULL;
	struct iotp_err err;

	(void)state;
	iotp_err_clear(&err);
	assert_int_equal(template_validate(body, strlen(body), TEMPLATE_KIND_ANY, &pr, &err),
	                 IOTP_OK);
	assert_int_equal(pr.count, 4);
	assert_string_equal(pr.items[0], "Parameters.SerialNumber.Type: unsupported parameter "
	                                 "type: parameters are of Type String");
	assert_string_equal(pr.items[1], "Resources.x.Type: unknown resource type 'AWS::IoT::Foo' "
	                                 "(allowed: AWS::IoT::Thing, AWS::IoT::Certificate, "
	                                 "AWS::IoT::Policy)");
	assert_string_equal(pr.items[2], "Resources.thing.Properties.ThingName: Ref to unknown "
	                                 "parameter 'SerialNumbr' (did you mean 'SerialNumber'?)");
	assert_string_equal(pr.items[3], "Resources.thing.Properties.ThingGroups: Fn::Join needs "
	                                 "[delimiter, [values]]");
	template_problems_cleanup(&pr);
	/* template_parse: the same problems in err, joined, as many as fit. */
	assert_int_equal(template_parse(body, strlen(body), TEMPLATE_KIND_ANY, &t, &err),
	                 IOTP_ERR_INVALID);
	assert_null(t);
	assert_non_null(strstr(err.msg, "Parameters.SerialNumber.Type: unsupported parameter type"));
	assert_non_null(strstr(err.msg, "; Resources.x.Type: unknown resource type"));
	assert_non_null(strstr(err.msg, "; Resources.thing.Properties.ThingName: Ref to unknown"));
	free(body);

	/* More problems than fit in a message: the count of the rest is given. */
	{
		char big[8192];
		size_t used = 0;
		const char *p;

		used += (size_t)snprintf(big + used, sizeof(big) - used, "{'Resources':{");
		for (int i = 0; i < 30; i++)
			used += (size_t)snprintf(big + used, sizeof(big) - used,
			                         "%s'r%d':{'Type':'AWS::IoT::Bogus%d','Properties':{}}",
			                         i > 0 ? "," : "", i, i);
		snprintf(big + used, sizeof(big) - used, "}}");
		body = q(big);
		assert_int_equal(template_validate(body, strlen(body), TEMPLATE_KIND_ANY, &pr, &err),
		                 IOTP_OK);
		assert_int_equal(pr.count, 30);
		template_problems_cleanup(&pr);
		assert_int_equal(template_parse(body, strlen(body), TEMPLATE_KIND_ANY, &t, &err),
		                 IOTP_ERR_INVALID);
		assert_true(strlen(err.msg) < sizeof(err.msg));
		p = strstr(err.msg, " more)");
		assert_non_null(p);
		assert_non_null(strstr(err.msg, "Resources.r0.Type: unknown resource type"));
		free(body);
	}
}

/* ------------------------------------------------------------------ */
/* Hostile templates                                                   */

static void test_deep_nesting_refused(void **state)
{
	char *buf = malloc(64 * 1024);
	size_t used = 0;
	struct template *t = NULL;
	struct template_problems pr = {NULL, 0, 0};
	struct iotp_err err;
	iotp_rc rc;

	(void)state;
	assert_non_null(buf);
	/* 40 nested Fn::Join: over TEMPLATE_MAX_DEPTH, within the size cap. */
	used += (size_t)snprintf(buf + used, 65536 - used,
	                         "{\"Resources\":{\"thing\":{\"Type\":\"AWS::IoT::Thing\","
	                         "\"Properties\":{\"ThingName\":");
	for (int i = 0; i < 40; i++)
		used += (size_t)snprintf(buf + used, 65536 - used, "{\"Fn::Join\":[\"\",[");
	used += (size_t)snprintf(buf + used, 65536 - used, "\"x\"");
	for (int i = 0; i < 40; i++)
		used += (size_t)snprintf(buf + used, 65536 - used, "]]}");
	used += (size_t)snprintf(buf + used, 65536 - used, "}}}}");
	iotp_err_clear(&err);
	assert_int_equal(template_validate(buf, used, TEMPLATE_KIND_ANY, &pr, &err), IOTP_OK);
	assert_int_equal(pr.count, 1);
	assert_true(problem_matches(pr.items[0], "*: nested more than 32 levels deep"));
	assert_true(problem_matches(pr.items[0], "Resources.thing.Properties.ThingName.Fn::Join*"));
	template_problems_cleanup(&pr);
	rc = template_parse(buf, used, TEMPLATE_KIND_ANY, &t, &err);
	assert_int_equal(rc, IOTP_ERR_INVALID);
	assert_null(t);

	/* 5000 nested arrays: refused by the parser's own bound, no crash. */
	used = 0;
	used += (size_t)snprintf(buf, 65536, "{\"Resources\":");
	memset(buf + used, '[', 5000);
	used += 5000;
	memset(buf + used, ']', 5000);
	used += 5000;
	buf[used++] = '}';
	rc = template_parse(buf, used, TEMPLATE_KIND_ANY, &t, &err);
	assert_int_equal(rc, IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "template body is not valid JSON"));
	free(buf);
}

static void test_size_limits(void **state)
{
	/* A template padded with spaces to exactly the limit, then one more. */
	const char *head = "{\"Resources\":{\"policy\":{\"Type\":\"AWS::IoT::Policy\","
	                   "\"Properties\":{\"PolicyName\":\"p\"}}},\"DeviceConfiguration\":"
	                   "{\"note\":\"";
	const char *tail = "\"}}";
	size_t hn = strlen(head), tn = strlen(tail), fill = TEMPLATE_BODY_MAX - hn - tn;
	char *buf = malloc(4 * TEMPLATE_BODY_MAX + 16);
	struct template *t = NULL;
	struct iotp_err err;
	size_t len;

	(void)state;
	assert_non_null(buf);
	memcpy(buf, head, hn);
	memset(buf + hn, 'a', fill);
	memcpy(buf + hn + fill, tail, tn);
	len = hn + fill + tn;
	assert_int_equal(len, TEMPLATE_BODY_MAX);
	iotp_err_clear(&err);
	assert_int_equal(template_parse(buf, len, TEMPLATE_KIND_FLEET, &t, &err), IOTP_OK);
	template_free(t);
	t = NULL;
	/* 10241 characters: refused before parsing. */
	memmove(buf + hn + 1, buf + hn, fill + tn);
	len++;
	assert_int_equal(template_parse(buf, len, TEMPLATE_KIND_FLEET, &t, &err), IOTP_ERR_TOO_BIG);
	assert_null(t);
	assert_string_equal(err.msg, "template body is longer than 10240 characters");
	/* The limit counts characters, not bytes: 2-byte 'é' fill is accepted. */
	memcpy(buf, head, hn);
	for (size_t i = 0; i < fill; i++)
		memcpy(buf + hn + 2 * i, "\xc3\xa9", 2);
	memcpy(buf + hn + 2 * fill, tail, tn);
	len = hn + 2 * fill + tn;
	assert_true(len > TEMPLATE_BODY_MAX);
	assert_int_equal(template_parse(buf, len, TEMPLATE_KIND_FLEET, &t, &err), IOTP_OK);
	template_free(t);
	/* Way over: not even counted. */
	memset(buf, ' ', 4 * TEMPLATE_BODY_MAX + 1);
	t = NULL;
	assert_int_equal(template_parse(buf, 4 * TEMPLATE_BODY_MAX + 1, TEMPLATE_KIND_ANY, &t, &err),
	                 IOTP_ERR_TOO_BIG);
	free(buf);
}

/* Messages carry only printable UTF-8, whatever the template holds. */
static void test_messages_are_clean(void **state)
{
	const char body[] = "{\"Resources\":{\"x\":{\"Type\":\"AWS::IoT::\\u0001\\u00e9\","
	                    "\"Properties\":{}}}}";
	struct template *t = NULL;
	struct iotp_err err;
	json_t *s;

	(void)state;
	assert_int_equal(template_parse(body, strlen(body), TEMPLATE_KIND_ANY, &t, &err),
	                 IOTP_ERR_INVALID);
	assert_null(strchr(err.msg, '\001'));
	s = json_string(err.msg); /* valid UTF-8 or NULL */
	assert_non_null(s);
	json_decref(s);
}

struct thread_arg {
	const struct template *t;
	int failures;
};

static void *eval_many(void *p)
{
	struct thread_arg *a = p;
	char params[128], want[64];
	struct iotp_err err;

	for (int i = 0; i < 300; i++) {
		json_t *jp;
		struct template_plan *plan = NULL;

		snprintf(params, sizeof(params),
		         "{\"ThingName\":\"pump-%d\",\"SerialNumber\":\"S%d\",\"DeviceLocation\":\"Lyon\"}",
		         i, i);
		snprintf(want, sizeof(want), "PumpType_S%d", i);
		jp = json_loads(params, 0, NULL);
		if (template_evaluate(a->t, jp, &(struct template_pseudo){.certificate_id = CERT_ID},
		                      &plan, &err) != IOTP_OK ||
		    strcmp(plan->thing.type_name, want) != 0 ||
		    strcmp(json_string_value(json_object_get(plan->device_configuration, "LocationUrl")),
		           "https://lyon.example.net") != 0)
			a->failures++;
		template_plan_free(plan);
		json_decref(jp);
	}
	return NULL;
}

static void test_concurrent_evaluation(void **state)
{
	struct template *t = parse_ok(fleet_template, TEMPLATE_KIND_FLEET);
	struct thread_arg args[4];
	pthread_t th[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		args[i].t = t;
		args[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, eval_many, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
	template_free(t);
}

/* The plan's C form, as the applier reads it. */
static void test_plan_struct(void **state)
{
	struct template *t = parse_ok(fleet_template, TEMPLATE_KIND_FLEET);
	json_t *params = qjson("{'ThingName':'pump-9','SerialNumber':'S9','DeviceLocation':'Lyon'}");
	struct template_pseudo ps = {.certificate_id = CERT_ID};
	struct template_plan *plan = NULL;
	struct iotp_err err;

	(void)state;
	assert_int_equal(template_evaluate(t, params, &ps, &plan, &err), IOTP_OK);
	assert_true(plan->thing.present);
	assert_string_equal(plan->thing.logical_id, "thing");
	assert_string_equal(plan->thing.name, "pump-9");
	assert_true(plan->thing.groups_declared);
	assert_int_equal(plan->thing.group_count, 2);
	assert_string_equal(plan->thing.groups[0], "v2-pumps");
	assert_int_equal(plan->thing.attributes_override, TEMPLATE_OVERRIDE_MERGE);
	assert_int_equal(plan->thing.type_override, TEMPLATE_OVERRIDE_REPLACE);
	assert_int_equal(plan->certificate.source, TEMPLATE_CERT_BY_ID);
	assert_string_equal(plan->certificate.status, "ACTIVE");
	assert_true(plan->certificate.status_declared);
	assert_true(plan->policy.name_generated);
	assert_non_null(plan->policy.document);
	template_plan_free(plan);
	template_plan_free(NULL);
	template_free(NULL);
	json_decref(params);
	template_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fleet_example),
		cmocka_unit_test(test_jitp_example),
		cmocka_unit_test(test_bulk_example_defaults),
		cmocka_unit_test(test_intrinsics),
		cmocka_unit_test(test_intrinsic_eval_errors),
		cmocka_unit_test(test_values_checked_when_evaluated),
		cmocka_unit_test(test_override_settings),
		cmocka_unit_test(test_each_problem_reported_with_path),
		cmocka_unit_test(test_all_problems_together),
		cmocka_unit_test(test_deep_nesting_refused),
		cmocka_unit_test(test_size_limits),
		cmocka_unit_test(test_messages_are_clean),
		cmocka_unit_test(test_concurrent_evaluation),
		cmocka_unit_test(test_plan_struct),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
