/*
 * unit.policy: the AWS IoT policy engine (src/core/policy.c).
 *
 * Table-driven: each eval case is a set of policy documents, a request
 * (action, resource, connection context) and the decision a broker must
 * reach; each malformed case is a document and the exact "path: reason" the
 * operator must see. Documents are written with single quotes for
 * readability and turned into JSON by q().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/obj_mac.h>

#include "core/policy.h"

#define A "arn:aws:iot:us-east-1:123456789012:"
#define V12 "'Version':'2012-10-17'"
#define DOC(stmts) "{" V12 ",'Statement':[" stmts "]}"
#define ST(effect, action, resource) \
	"{'Effect':'" effect "','Action':" action ",'Resource':" resource "}"
#define STC(effect, action, resource, cond) \
	"{'Effect':'" effect "','Action':" action ",'Resource':" resource \
	",'Condition':" cond "}"
#define R(suffix) "'" A suffix "'"

/* Connection contexts used by the tables. */
enum ctx_id {
	C_NONE = 0, /* NULL: nothing resolves */
	C_DEV,      /* a fully known device dev1, attached to its thing */
	C_DETACHED, /* dev1 whose certificate is not attached to the thing */
	C_CLIENT,   /* only the client id dev1 is known (no thing) */
	C_OTHER,    /* client id dev1 but thing dev2 of type blocked */
	C_STAR,     /* client id "*" */
	C_PLUS,     /* client id "+" */
	C_HASH,     /* client id "#" */
	C_QMARK,    /* client id "?" */
	C_DEVSTAR,  /* client id "dev*" */
	C_BADUTF8,  /* client id that is not UTF-8 */
	C_COUNT
};

static const struct policy_attr dev_attrs[] = {
	{"site", "paris"},
	{"floor", "3"},
	{"Site", "lyon"},
};

static void ctx_make(enum ctx_id id, struct policy_ctx *c)
{
	policy_ctx_init(c);
	switch (id) {
	case C_DEV:
	case C_DETACHED:
		c->var[POLICY_VAR_CLIENT_ID] = "dev1";
		c->var[POLICY_VAR_THING_NAME] = "dev1";
		c->var[POLICY_VAR_THING_TYPE_NAME] = "sensor";
		c->var[POLICY_VAR_THING_IS_ATTACHED] = id == C_DEV ? "true" : "false";
		c->var[POLICY_VAR_CERT_SERIAL_NUMBER] = "0A1B";
		c->var[POLICY_VAR_SUBJECT(POLICY_CERT_COMMON_NAME)] = "dev1.example.com";
		c->var[POLICY_VAR_SUBJECT(POLICY_CERT_ORGANIZATION)] = "Acme";
		c->var[POLICY_VAR_SUBJECT(POLICY_CERT_ORGANIZATIONAL_UNIT)] = "Lab";
		c->var[POLICY_VAR_SUBJECT(POLICY_CERT_COUNTRY)] = "FR";
		c->var[POLICY_VAR_SUBJECT(POLICY_CERT_SERIAL_NUMBER)] = "SN-77";
		c->var[POLICY_VAR_ISSUER(POLICY_CERT_COMMON_NAME)] = "Acme Issuing CA";
		c->var[POLICY_VAR_ISSUER(POLICY_CERT_GENERATION_QUALIFIER)] = "II";
		c->attrs = dev_attrs;
		c->n_attrs = sizeof(dev_attrs) / sizeof(dev_attrs[0]);
		break;
	case C_CLIENT:
		c->var[POLICY_VAR_CLIENT_ID] = "dev1";
		break;
	case C_OTHER:
		c->var[POLICY_VAR_CLIENT_ID] = "dev1";
		c->var[POLICY_VAR_THING_NAME] = "dev2";
		c->var[POLICY_VAR_THING_TYPE_NAME] = "blocked";
		break;
	case C_STAR:
		c->var[POLICY_VAR_CLIENT_ID] = "*";
		break;
	case C_PLUS:
		c->var[POLICY_VAR_CLIENT_ID] = "+";
		break;
	case C_HASH:
		c->var[POLICY_VAR_CLIENT_ID] = "#";
		break;
	case C_QMARK:
		c->var[POLICY_VAR_CLIENT_ID] = "?";
		break;
	case C_DEVSTAR:
		c->var[POLICY_VAR_CLIENT_ID] = "dev*";
		break;
	case C_BADUTF8:
		c->var[POLICY_VAR_CLIENT_ID] = "dev\xff";
		break;
	default:
		break;
	}
}

/* A malloc'ed copy of s with every ' turned into ". */
static char *q(const char *s)
{
	size_t n = strlen(s);
	char *d = malloc(n + 1);

	assert_non_null(d);
	for (size_t i = 0; i <= n; i++)
		d[i] = s[i] == '\'' ? '"' : s[i];
	return d;
}

static struct policy *compile_ok(const char *sq)
{
	struct iotp_err err = {0};
	struct policy *p = NULL;
	char *d = q(sq);
	iotp_rc rc = policy_compile(d, strlen(d), &p, &err);

	if (rc != IOTP_OK)
		fail_msg("compile failed (%s) for %s", err.msg, d);
	assert_int_equal(policy_validate(d, strlen(d), &err), IOTP_OK);
	free(d);
	assert_non_null(p);
	return p;
}

static enum policy_decision eval_docs(const char *const *docs, enum policy_action act,
                                      const char *res, enum ctx_id cid)
{
	struct policy *ps[4] = {NULL, NULL, NULL, NULL};
	char full[512];
	struct policy_ctx ctx;
	enum policy_decision d;
	size_t n = 0;

	while (n < 3 && docs[n] != NULL) {
		ps[n] = compile_ok(docs[n]);
		n++;
	}
	ctx_make(cid, &ctx);
	if (strncmp(res, "arn:", 4) == 0)
		snprintf(full, sizeof(full), "%s", res);
	else
		snprintf(full, sizeof(full), "%s%s", A, res);
	d = policy_eval((const struct policy *const *)ps, n, act, full,
	                cid == C_NONE ? NULL : &ctx);
	for (size_t i = 0; i < n; i++)
		policy_free(ps[i]);
	return d;
}

/* ------------------------------------------------------------------------ */

struct eval_case {
	const char *name;
	const char *docs[3];
	enum policy_action act;
	const char *res; /* appended to A unless it starts with "arn:" */
	enum ctx_id ctx;
	enum policy_decision want;
};

#define PUB POLICY_ACTION_PUBLISH
#define SUB POLICY_ACTION_SUBSCRIBE
#define RCV POLICY_ACTION_RECEIVE
#define CON POLICY_ACTION_CONNECT
#define RET POLICY_ACTION_RETAIN_PUBLISH
#define ALLOW POLICY_ALLOW
#define DENY POLICY_DENY

#define P_PUB_A DOC(ST("Allow", "'iot:Publish'", R("topic/a")))
#define P_LISTS DOC(ST("Allow", "['iot:Subscribe','iot:Publish']", \
                       "[" R("topic/x") "," R("topic/a") "]"))
#define P_DEVSTAR DOC(ST("Allow", "'iot:Publish'", R("topic/dev/*")))
#define P_MIDSTAR DOC(ST("Allow", "'iot:Publish'", R("topic/*/status")))
#define P_QMARK DOC(ST("Allow", "'iot:Publish'", R("topic/dev/?")))
#define P_PLUS DOC(ST("Allow", "['iot:Subscribe','iot:Publish']", \
                      "[" R("topicfilter/dev/+") "," R("topic/+/x") "]"))
#define P_HASH DOC(ST("Allow", "'iot:Subscribe'", R("topicfilter/dev/#")))
#define P_ALLOW_ALL DOC(ST("Allow", "'iot:*'", "'*'"))
#define P_DENY_X DOC(ST("Deny", "'iot:Publish'", R("topic/x")))
#define P_ALLOW_DENY DOC(ST("Allow", "'iot:*'", "'*'") "," \
                         ST("Deny", "'iot:Publish'", R("topic/secret/*")))
#define P_CID DOC(ST("Allow", "['iot:Connect']", R("client/${iot:ClientId}")) "," \
                  ST("Allow", "'iot:Publish'", R("topic/dev/${iot:ClientId}")) "," \
                  ST("Allow", "'iot:Subscribe'", R("topicfilter/dev/${iot:ClientId}")))
#define P_THING DOC(ST("Allow", "'iot:Publish'", \
                       "[" R("topic/things/${iot:Connection.Thing.ThingName}/*") "," \
                       R("topic/types/${iot:Connection.Thing.ThingTypeName}") "," \
                       R("topic/site/${iot:Connection.Thing.Attributes[site]}/*") "," \
                       R("topic/b/${iot:Connection.Thing.Attributes[building]}/x") "," \
                       R("topic/attached/${iot:Connection.Thing.IsAttached}") "]"))
#define P_CERT DOC(ST("Allow", "'iot:Publish'", \
                      "[" R("topic/serial/${iot:Certificate.SerialNumber}") "," \
                      R("topic/cn/${iot:Certificate.Subject.CommonName}") "," \
                      R("topic/org/${iot:Certificate.Subject.Organization}/" \
                        "${iot:Certificate.Subject.OrganizationalUnit}") "," \
                      R("topic/c/${iot:Certificate.Subject.Country}") "," \
                      R("topic/dnsn/${iot:Certificate.Subject.SerialNumber}") "," \
                      R("topic/issuer/${iot:Certificate.Issuer.CommonName}") "," \
                      R("topic/gq/${iot:Certificate.Issuer.GenerationQualifier}") "," \
                      R("topic/l/${iot:Certificate.Subject.Locality}") "]"))
#define P_ESC DOC(ST("Allow", "'iot:Publish'", \
                     "[" R("topic/a${*}") "," R("topic/q${?}") "," R("topic/d/${$}{x}") "]"))
#define P_V2008 "{'Version':'2008-10-17','Statement':" \
                ST("Allow", "'iot:Connect'", R("client/${iot:ClientId}")) "}"
#define P_DENY_THING DOC(ST("Allow", "'iot:Publish'", R("topic/*")) "," \
                         ST("Deny", "'iot:Publish'", \
                            R("topic/${iot:Connection.Thing.ThingName}/admin")))
#define P_DENY_CID DOC(ST("Allow", "'iot:Publish'", R("topic/*")) "," \
                       ST("Deny", "'iot:Publish'", R("topic/${iot:ClientId}/x")))
#define P_MIXED_UNRES DOC(ST("Allow", "'iot:Publish'", \
                             "[" R("topic/a") "," \
                             R("topic/${iot:Connection.Thing.ThingName}") "]"))
#define P_BOOL DOC(STC("Allow", "'iot:Connect'", "'*'", \
                       "{'Bool':{'iot:Connection.Thing.IsAttached':'true'}}"))
#define P_BOOLJ DOC(STC("Allow", "'iot:Connect'", "'*'", \
                        "{'Bool':{'iot:Connection.Thing.IsAttached':[true]}}"))
#define P_SEQ DOC(STC("Allow", "'iot:Publish'", "'*'", \
                      "{'StringEquals':{'iot:Connection.Thing.ThingTypeName':['x','sensor']}}"))
#define P_SLIKE DOC(STC("Allow", "'iot:Publish'", "'*'", \
                        "{'StringLike':{'iot:Connection.Thing.Attributes[site]':'par*'}}"))
#define P_SEQ_STAR DOC(STC("Allow", "'iot:Publish'", "'*'", \
                           "{'StringEquals':{'iot:Connection.Thing.Attributes[site]':'par*'}}"))
#define P_SNEQ DOC(STC("Allow", "'iot:Publish'", "'*'", \
                       "{'StringNotEquals':{'iot:Connection.Thing.ThingTypeName':'blocked'}}"))
#define P_SNEQVAR DOC(STC("Allow", "'iot:Publish'", "'*'", \
                         "{'StringNotEquals':{'iot:ClientId':" \
                         "'${iot:Connection.Thing.ThingName}'}}"))
#define P_DENY_WILD_IDS DOC(ST("Allow", "'iot:Connect'", "'*'") "," \
                            ST("Deny", "'iot:Connect'", "[" R("client/*+*") "," \
                               R("client/*#*") "," R("client/*${*}*") "," \
                               R("client/*${?}*") "]"))
#define P_SEQIC DOC(STC("Allow", "'iot:Publish'", "'*'", \
                        "{'StringEqualsIgnoreCase':" \
                        "{'iot:Connection.Thing.ThingTypeName':'SENSOR'}}"))
#define P_SEQVAR DOC(STC("Allow", "'iot:Connect'", R("client/*"), \
                         "{'StringEquals':{'iot:Connection.Thing.ThingName':'${iot:ClientId}'}}"))
#define P_DENY_COND DOC(ST("Allow", "'iot:Publish'", "'*'") "," \
                        STC("Deny", "'iot:Publish'", "'*'", \
                            "{'StringEquals':{'iot:Connection.Thing.ThingTypeName':'blocked'}}"))
#define P_TWO_OPS DOC(STC("Allow", "'iot:Publish'", "'*'", \
                          "{'StringEquals':{'iot:Connection.Thing.ThingTypeName':'sensor'}," \
                          "'Bool':{'iot:Connection.Thing.IsAttached':'true'}}"))
#define P_NOTACTION "{" V12 ",'Statement':{'Effect':'Allow','NotAction':'iot:Publish'," \
                    "'Resource':'*'}}"
#define P_NOTRES DOC("{'Effect':'Allow','Action':'iot:Publish','NotResource':" \
                     R("topic/admin/*") "}")
#define P_DENY_NOTRES DOC(ST("Allow", "'iot:Publish'", "'*'") "," \
                          "{'Effect':'Deny','Action':'iot:Publish','NotResource':[" \
                          R("topic/dev/*") "]}")
#define P_DENY_NOTRES_VAR DOC(ST("Allow", "'iot:Publish'", "'*'") "," \
                              "{'Effect':'Deny','Action':'iot:Publish','NotResource':" \
                              R("topic/${iot:Connection.Thing.ThingName}/*") "}")
#define P_ALLOW_NOTRES_VAR DOC("{'Effect':'Allow','Action':'iot:Publish','NotResource':" \
                               R("topic/${iot:Connection.Thing.ThingName}/*") "}")

static const struct eval_case eval_cases[] = {
	/* default deny, exact resources, list forms */
	{"other action is denied", {P_PUB_A}, SUB, "topicfilter/a", C_NONE, DENY},
	{"exact resource allowed", {P_PUB_A}, PUB, "topic/a", C_NONE, ALLOW},
	{"other topic denied", {P_PUB_A}, PUB, "topic/b", C_NONE, DENY},
	{"no implicit prefix match", {P_PUB_A}, PUB, "topic/ab", C_NONE, DENY},
	{"no implicit sub-topic match", {P_PUB_A}, PUB, "topic/a/b", C_NONE, DENY},
	{"other account denied", {P_PUB_A}, PUB, "arn:aws:iot:us-east-1:999999999999:topic/a",
	 C_NONE, DENY},
	{"receive not implied by publish", {P_PUB_A}, RCV, "topic/a", C_NONE, DENY},
	{"retain not implied by publish", {P_PUB_A}, RET, "topic/a", C_NONE, DENY},
	{"array forms: second resource", {P_LISTS}, PUB, "topic/a", C_NONE, ALLOW},
	{"array forms: first resource", {P_LISTS}, PUB, "topic/x", C_NONE, ALLOW},
	{"topic is not topicfilter", {P_LISTS}, SUB, "topicfilter/a", C_NONE, DENY},
	{"no documents denies", {NULL}, CON, "client/a", C_NONE, DENY},
	/* wildcards */
	{"* crosses /", {P_DEVSTAR}, PUB, "topic/dev/a/b/c", C_NONE, ALLOW},
	{"* matches empty", {P_DEVSTAR}, PUB, "topic/dev/", C_NONE, ALLOW},
	{"* needs the literal prefix", {P_DEVSTAR}, PUB, "topic/devx", C_NONE, DENY},
	{"* in the middle", {P_MIDSTAR}, PUB, "topic/a/b/status", C_NONE, ALLOW},
	{"* in the middle, suffix must end", {P_MIDSTAR}, PUB, "topic/a/statusx", C_NONE, DENY},
	{"* in the middle, backtracks", {P_MIDSTAR}, PUB, "topic/status/x/status", C_NONE, ALLOW},
	{"region and account wildcards",
	 {DOC(ST("Allow", "'iot:Publish'", "'arn:aws:iot:*:*:topic/x'"))}, PUB, "topic/x", C_NONE,
	 ALLOW},
	{"? one character", {P_QMARK}, PUB, "topic/dev/a", C_NONE, ALLOW},
	{"? not two characters", {P_QMARK}, PUB, "topic/dev/ab", C_NONE, DENY},
	{"? not zero characters", {P_QMARK}, PUB, "topic/dev/", C_NONE, DENY},
	{"? one 2-byte UTF-8 character", {P_QMARK}, PUB, "topic/dev/\xc3\xa9", C_NONE, ALLOW},
	{"? one 3-byte UTF-8 character", {P_QMARK}, PUB, "topic/dev/\xe2\x82\xac", C_NONE, ALLOW},
	{"? one 4-byte UTF-8 character", {P_QMARK}, PUB, "topic/dev/\xf0\x9f\x98\x80", C_NONE,
	 ALLOW},
	{"? matches '/'", {P_QMARK}, PUB, "topic/dev//", C_NONE, ALLOW},
	{"+ is literal: same filter", {P_PLUS}, SUB, "topicfilter/dev/+", C_NONE, ALLOW},
	{"+ is literal: not a level", {P_PLUS}, SUB, "topicfilter/dev/x", C_NONE, DENY},
	{"+ is literal in topics", {P_PLUS}, PUB, "topic/a/x", C_NONE, DENY},
	{"# is literal: same filter", {P_HASH}, SUB, "topicfilter/dev/#", C_NONE, ALLOW},
	{"# is literal: not levels", {P_HASH}, SUB, "topicfilter/dev/a/b", C_NONE, DENY},
	{"resources are case-sensitive", {P_PUB_A}, PUB, "topic/A", C_NONE, DENY},
	{"invalid UTF-8 resource denied", {P_ALLOW_ALL}, PUB, "topic/\xff", C_NONE, DENY},
	/* actions */
	{"action upper case", {DOC(ST("Allow", "'IOT:PUBLISH'", "'*'"))}, PUB, "topic/a", C_NONE,
	 ALLOW},
	{"action lower case", {DOC(ST("Allow", "'iot:subscribe'", "'*'"))}, SUB, "topicfilter/a",
	 C_NONE, ALLOW},
	{"iot:* connect", {P_ALLOW_ALL}, CON, "client/a", C_NONE, ALLOW},
	{"iot:* publish", {P_ALLOW_ALL}, PUB, "topic/a", C_NONE, ALLOW},
	{"iot:* receive", {P_ALLOW_ALL}, RCV, "topic/a", C_NONE, ALLOW},
	{"iot:* subscribe", {P_ALLOW_ALL}, SUB, "topicfilter/a", C_NONE, ALLOW},
	{"iot:* retain", {P_ALLOW_ALL}, RET, "topic/a", C_NONE, ALLOW},
	{"* action", {DOC(ST("Allow", "'*'", "'*'"))}, CON, "client/a", C_NONE, ALLOW},
	{"iot:*ublish covers RetainPublish", {DOC(ST("Allow", "'iot:*ublish'", "'*'"))}, RET,
	 "topic/a", C_NONE, ALLOW},
	{"iot:*ublish not Subscribe", {DOC(ST("Allow", "'iot:*ublish'", "'*'"))}, SUB,
	 "topicfilter/a", C_NONE, DENY},
	{"iot:?onnect", {DOC(ST("Allow", "'iot:?onnect'", "'*'"))}, CON, "client/a", C_NONE,
	 ALLOW},
	{"iot:?onnect not Publish", {DOC(ST("Allow", "'iot:?onnect'", "'*'"))}, PUB, "topic/a",
	 C_NONE, DENY},
	{"control-plane action grants nothing",
	 {DOC(ST("Allow", "['iot:CreateThing','iot:GetThingShadow']", "'*'"))}, PUB, "topic/a",
	 C_NONE, DENY},
	{"NotAction: other action allowed", {P_NOTACTION}, SUB, "topicfilter/a", C_NONE, ALLOW},
	{"NotAction: listed action denied", {P_NOTACTION}, PUB, "topic/a", C_NONE, DENY},
	{"NotResource: other resource", {P_NOTRES}, PUB, "topic/x", C_NONE, ALLOW},
	{"NotResource: listed resource", {P_NOTRES}, PUB, "topic/admin/a", C_NONE, DENY},
	/* explicit deny */
	{"deny wins in one document", {P_ALLOW_DENY}, PUB, "topic/secret/x", C_NONE, DENY},
	{"deny is per resource", {P_ALLOW_DENY}, PUB, "topic/public", C_NONE, ALLOW},
	{"deny is per action", {P_ALLOW_DENY}, RCV, "topic/secret/x", C_NONE, ALLOW},
	{"deny wins across documents", {P_ALLOW_ALL, P_DENY_X}, PUB, "topic/x", C_NONE, DENY},
	{"deny wins across documents, reversed", {P_DENY_X, P_ALLOW_ALL}, PUB, "topic/x", C_NONE,
	 DENY},
	{"non-matching deny leaves allow", {P_DENY_X, P_ALLOW_ALL}, PUB, "topic/y", C_NONE,
	 ALLOW},
	{"deny alone is still deny", {P_DENY_X}, PUB, "topic/y", C_NONE, DENY},
	{"deny NotResource outside", {P_DENY_NOTRES}, PUB, "topic/other", C_NONE, DENY},
	{"deny NotResource inside", {P_DENY_NOTRES}, PUB, "topic/dev/a", C_NONE, ALLOW},
	/* variables */
	{"ClientId", {P_CID}, CON, "client/dev1", C_DEV, ALLOW},
	{"ClientId other", {P_CID}, CON, "client/dev2", C_DEV, DENY},
	{"ClientId unresolved", {P_CID}, CON, "client/dev1", C_NONE, DENY},
	{"ClientId unresolved is not empty", {P_CID}, CON, "client/", C_NONE, DENY},
	{"ThingName", {P_THING}, PUB, "topic/things/dev1/state", C_DEV, ALLOW},
	{"ThingName other", {P_THING}, PUB, "topic/things/dev2/state", C_DEV, DENY},
	{"ThingName unresolved", {P_THING}, PUB, "topic/things/dev1/state", C_CLIENT, DENY},
	{"ThingTypeName", {P_THING}, PUB, "topic/types/sensor", C_DEV, ALLOW},
	{"ThingTypeName other", {P_THING}, PUB, "topic/types/blocked", C_DEV, DENY},
	{"Attributes[site]", {P_THING}, PUB, "topic/site/paris/x", C_DEV, ALLOW},
	{"Attributes[site] other", {P_THING}, PUB, "topic/site/lyon/x", C_DEV, DENY},
	{"attribute missing", {P_THING}, PUB, "topic/b//x", C_DEV, DENY},
	{"IsAttached true", {P_THING}, PUB, "topic/attached/true", C_DEV, ALLOW},
	{"IsAttached false", {P_THING}, PUB, "topic/attached/true", C_DETACHED, DENY},
	{"Certificate.SerialNumber", {P_CERT}, PUB, "topic/serial/0A1B", C_DEV, ALLOW},
	{"Certificate.SerialNumber is case-sensitive", {P_CERT}, PUB, "topic/serial/0a1b", C_DEV,
	 DENY},
	{"Subject.CommonName", {P_CERT}, PUB, "topic/cn/dev1.example.com", C_DEV, ALLOW},
	{"Subject.Organization/OU", {P_CERT}, PUB, "topic/org/Acme/Lab", C_DEV, ALLOW},
	{"Subject.Organization/OU other", {P_CERT}, PUB, "topic/org/Acme/Ops", C_DEV, DENY},
	{"Subject.Country", {P_CERT}, PUB, "topic/c/FR", C_DEV, ALLOW},
	{"Subject.SerialNumber", {P_CERT}, PUB, "topic/dnsn/SN-77", C_DEV, ALLOW},
	{"Issuer.CommonName", {P_CERT}, PUB, "topic/issuer/Acme Issuing CA", C_DEV, ALLOW},
	{"Issuer.GenerationQualifier", {P_CERT}, PUB, "topic/gq/II", C_DEV, ALLOW},
	{"Subject.Locality unresolved", {P_CERT}, PUB, "topic/l/", C_DEV, DENY},
	{"variable names are case-insensitive",
	 {DOC(ST("Allow", "'iot:Connect'", R("client/${IOT:clientid}")))}, CON, "client/dev1",
	 C_DEV, ALLOW},
	{"attribute names are case-sensitive",
	 {DOC(ST("Allow", "'iot:Publish'", R("topic/${iot:Connection.Thing.Attributes[Site]}")))},
	 PUB, "topic/lyon", C_DEV, ALLOW},
	{"two variables",
	 {DOC(ST("Allow", "'iot:Publish'",
	         R("topic/${iot:Connection.Thing.Attributes[site]}/${iot:ClientId}")))},
	 PUB, "topic/paris/dev1", C_DEV, ALLOW},
	{"two variables, second differs",
	 {DOC(ST("Allow", "'iot:Publish'",
	         R("topic/${iot:Connection.Thing.Attributes[site]}/${iot:ClientId}")))},
	 PUB, "topic/paris/dev2", C_DEV, DENY},
	{"2008-10-17: no variables", {P_V2008}, CON, "client/dev1", C_DEV, DENY},
	{"2008-10-17: ${} is text", {P_V2008}, CON, "client/${iot:ClientId}", C_DEV, ALLOW},
	{"${*} is a literal *", {P_ESC}, PUB, "topic/a*", C_NONE, ALLOW},
	{"${*} is not a wildcard", {P_ESC}, PUB, "topic/ab", C_NONE, DENY},
	{"${?} is a literal ?", {P_ESC}, PUB, "topic/q?", C_NONE, ALLOW},
	{"${?} is not a wildcard", {P_ESC}, PUB, "topic/qx", C_NONE, DENY},
	{"${$} is a literal $", {P_ESC}, PUB, "topic/d/${x}", C_NONE, ALLOW},
	{"bare $ is text",
	 {DOC(ST("Allow", "'iot:Publish'", R("topic/$aws/things/${iot:ClientId}/shadow/*")))}, PUB,
	 "topic/$aws/things/dev1/shadow/update", C_DEV, ALLOW},
	/* unresolvable variables never widen access */
	{"unresolved allow entry: sibling still allows", {P_MIXED_UNRES}, PUB, "topic/a",
	 C_CLIENT, ALLOW},
	{"unresolved allow entry matches nothing", {P_MIXED_UNRES}, PUB, "topic/dev1", C_CLIENT,
	 DENY},
	{"unresolved deny covers every value", {P_DENY_THING}, PUB, "topic/x/admin", C_CLIENT,
	 DENY},
	{"unresolved deny keeps its literal part", {P_DENY_THING}, PUB, "topic/x/data", C_CLIENT,
	 ALLOW},
	{"resolved deny: own thing", {P_DENY_THING}, PUB, "topic/dev1/admin", C_DEV, DENY},
	{"resolved deny: other thing", {P_DENY_THING}, PUB, "topic/dev2/admin", C_DEV, ALLOW},
	{"unresolved deny NotResource applies", {P_DENY_NOTRES_VAR}, PUB, "topic/dev1/a",
	 C_CLIENT, DENY},
	{"resolved deny NotResource inside", {P_DENY_NOTRES_VAR}, PUB, "topic/dev1/a", C_DEV,
	 ALLOW},
	{"unresolved allow NotResource grants nothing", {P_ALLOW_NOTRES_VAR}, PUB, "topic/zz/a",
	 C_CLIENT, DENY},
	{"resolved allow NotResource", {P_ALLOW_NOTRES_VAR}, PUB, "topic/zz/a", C_DEV, ALLOW},
	{"non-UTF-8 value is unresolved", {P_CID}, CON, "client/dev\xff", C_BADUTF8, DENY},
	{"non-UTF-8 value in a deny covers every value", {P_DENY_CID}, PUB, "topic/a/x", C_BADUTF8,
	 DENY},
	/* substituted text is literal */
	{"client id * is not a wildcard", {P_CID}, PUB, "topic/dev/anything", C_STAR, DENY},
	{"client id * is not a wildcard (empty)", {P_CID}, PUB, "topic/dev/", C_STAR, DENY},
	{"client id * matches itself", {P_CID}, PUB, "topic/dev/*", C_STAR, ALLOW},
	{"client id * connect", {P_CID}, CON, "client/x", C_STAR, DENY},
	{"client id + is not a level", {P_CID}, SUB, "topicfilter/dev/x", C_PLUS, DENY},
	{"client id + matches itself", {P_CID}, SUB, "topicfilter/dev/+", C_PLUS, ALLOW},
	{"client id # is not levels", {P_CID}, SUB, "topicfilter/dev/a/b", C_HASH, DENY},
	{"client id # matches itself", {P_CID}, SUB, "topicfilter/dev/#", C_HASH, ALLOW},
	{"client id ? is not a character", {P_CID}, PUB, "topic/dev/a", C_QMARK, DENY},
	{"client id dev* is not a prefix", {P_CID}, CON, "client/dev1", C_DEVSTAR, DENY},
	{"client id dev* matches itself", {P_CID}, CON, "client/dev*", C_DEVSTAR, ALLOW},
	{"deny client ids with +", {P_DENY_WILD_IDS}, CON, "client/a+b", C_NONE, DENY},
	{"deny client ids with #", {P_DENY_WILD_IDS}, CON, "client/x#", C_NONE, DENY},
	{"deny client ids with *", {P_DENY_WILD_IDS}, CON, "client/*", C_NONE, DENY},
	{"deny client ids with ?", {P_DENY_WILD_IDS}, CON, "client/a?", C_NONE, DENY},
	{"plain client ids pass", {P_DENY_WILD_IDS}, CON, "client/dev-1", C_NONE, ALLOW},
	{"deny with client id * is literal", {P_DENY_CID}, PUB, "topic/a/x", C_STAR, ALLOW},
	{"deny with client id * hits itself", {P_DENY_CID}, PUB, "topic/*/x", C_STAR, DENY},
	/* conditions */
	{"Bool IsAttached true", {P_BOOL}, CON, "client/dev1", C_DEV, ALLOW},
	{"Bool IsAttached false", {P_BOOL}, CON, "client/dev1", C_DETACHED, DENY},
	{"Bool IsAttached unresolved", {P_BOOL}, CON, "client/dev1", C_CLIENT, DENY},
	{"Bool with a JSON boolean", {P_BOOLJ}, CON, "client/dev1", C_DEV, ALLOW},
	{"StringEquals any value", {P_SEQ}, PUB, "topic/a", C_DEV, ALLOW},
	{"StringEquals mismatch", {P_SEQ}, PUB, "topic/a", C_OTHER, DENY},
	{"StringLike wildcard", {P_SLIKE}, PUB, "topic/a", C_DEV, ALLOW},
	{"StringEquals * is literal", {P_SEQ_STAR}, PUB, "topic/a", C_DEV, DENY},
	{"StringNotEquals", {P_SNEQ}, PUB, "topic/a", C_DEV, ALLOW},
	{"StringNotEquals hit", {P_SNEQ}, PUB, "topic/a", C_OTHER, DENY},
	{"StringNotEquals unresolved key", {P_SNEQ}, PUB, "topic/a", C_CLIENT, DENY},
	{"StringEqualsIgnoreCase", {P_SEQIC}, PUB, "topic/a", C_DEV, ALLOW},
	{"StringNotEquals against a variable", {P_SNEQVAR}, PUB, "topic/a", C_OTHER, ALLOW},
	{"StringNotEquals against the same value", {P_SNEQVAR}, PUB, "topic/a", C_DEV, DENY},
	{"StringNotEquals against an unresolved variable", {P_SNEQVAR}, PUB, "topic/a", C_CLIENT,
	 DENY},
	{"condition value with a variable", {P_SEQVAR}, CON, "client/dev1", C_DEV, ALLOW},
	{"condition value with a variable, differs", {P_SEQVAR}, CON, "client/dev1", C_OTHER,
	 DENY},
	{"deny condition false", {P_DENY_COND}, PUB, "topic/a", C_DEV, ALLOW},
	{"deny condition true", {P_DENY_COND}, PUB, "topic/a", C_OTHER, DENY},
	{"deny condition unresolved applies", {P_DENY_COND}, PUB, "topic/a", C_NONE, DENY},
	{"two operators both hold", {P_TWO_OPS}, PUB, "topic/a", C_DEV, ALLOW},
	{"two operators, one fails", {P_TWO_OPS}, PUB, "topic/a", C_DETACHED, DENY},
};

static void test_eval_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(eval_cases) / sizeof(eval_cases[0]); i++) {
		const struct eval_case *c = &eval_cases[i];
		enum policy_decision d = eval_docs(c->docs, c->act, c->res, c->ctx);

		if (d != c->want)
			fail_msg("case %zu \"%s\": got %s, want %s", i, c->name,
			         d == POLICY_ALLOW ? "ALLOW" : "DENY",
			         c->want == POLICY_ALLOW ? "ALLOW" : "DENY");
	}
}

/* Knowing less never grants more: for every table request, an ALLOW reached
 * with no variable resolved must also be reached with any context. */
static void test_eval_monotonic(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(eval_cases) / sizeof(eval_cases[0]); i++) {
		const struct eval_case *c = &eval_cases[i];

		if (eval_docs(c->docs, c->act, c->res, C_NONE) != POLICY_ALLOW)
			continue;
		for (int k = 0; k < C_COUNT; k++)
			if (eval_docs(c->docs, c->act, c->res, (enum ctx_id)k) != POLICY_ALLOW)
				fail_msg("case \"%s\": ALLOW without context but DENY with context %d",
				         c->name, k);
	}
}

/* ------------------------------------------------------------------------ */

struct bad_case {
	const char *doc;
	const char *msg; /* the whole message must start with this */
};

#define S_OK "{'Effect':'Allow','Action':'iot:Connect','Resource':'*'}"

static const struct bad_case bad_cases[] = {
	{"", "policy document is empty"},
	{"[1]", "policy document must be a JSON object"},
	{"{'Version':'2012-10-17','Statement':[" S_OK "]", "policy document is not valid JSON"},
	{"{'Version':'2012-10-17','Statement':[" S_OK "],'Version':'2012-10-17'}",
	 "policy document is not valid JSON: duplicate object key"},
	{"{'Statement':[" S_OK "]}", "Version: required"},
	{"{'Version':'2020-01-01','Statement':[" S_OK "]}",
	 "Version: must be \"2012-10-17\" or \"2008-10-17\""},
	{"{'Version':20121017,'Statement':[" S_OK "]}", "Version: must be"},
	{"{'Version':'2012-10-17'}", "Statement: required"},
	{"{'Version':'2012-10-17','Statement':7}",
	 "Statement: must be an object or an array of objects"},
	{"{'Version':'2012-10-17','Statement':[]}", "Statement: must not be empty"},
	{"{'Version':'2012-10-17','Statement':[" S_OK ",'x']}", "Statement[1]: must be an object"},
	{"{'Version':'2012-10-17','Extra':1,'Statement':[" S_OK "]}",
	 "Extra: unknown key (allowed: Version, Id, Statement)"},
	{"{'Version':'2012-10-17','Id':5,'Statement':[" S_OK "]}", "Id: must be a string"},
	{DOC(S_OK ",{'Effect':'allow','Action':'iot:Connect','Resource':'*'}"),
	 "Statement[1].Effect: must be Allow or Deny"},
	{DOC("{'Action':'iot:Connect','Resource':'*'}"), "Statement[0].Effect: required"},
	{"{" V12 ",'Statement':{'Effect':'Permit','Action':'iot:Connect','Resource':'*'}}",
	 "Statement.Effect: must be Allow or Deny"},
	{DOC("{'Effect':'Allow','Action':3,'Resource':'*'}"),
	 "Statement[0].Action: must be a string or a non-empty array of strings"},
	{DOC("{'Effect':'Allow','Action':[],'Resource':'*'}"),
	 "Statement[0].Action: must be a string or a non-empty array of strings"},
	{DOC("{'Effect':'Allow','Action':['iot:Connect',null],'Resource':'*'}"),
	 "Statement[0].Action[1]: must be a string"},
	{DOC("{'Effect':'Allow','Action':['iot:Connect','s3:GetObject'],'Resource':'*'}"),
	 "Statement[0].Action[1]: \"s3:GetObject\" is not an AWS IoT action"},
	{DOC("{'Effect':'Allow','Action':'iot:Pub1ish','Resource':'*'}"),
	 "Statement[0].Action: \"iot:Pub1ish\" is not an AWS IoT action"},
	{DOC("{'Effect':'Allow','Action':'iot:','Resource':'*'}"),
	 "Statement[0].Action: \"iot:\" is not an AWS IoT action"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','NotAction':'iot:Publish','Resource':'*'}"),
	 "Statement[0]: has both Action and NotAction"},
	{DOC("{'Effect':'Allow','Resource':'*'}"), "Statement[0]: needs Action or NotAction"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect'}"),
	 "Statement[0]: needs Resource or NotResource"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':'*','NotResource':'*'}"),
	 "Statement[0]: has both Resource and NotResource"},
	{DOC(S_OK "," S_OK ",{'Effect':'Allow','Action':'iot:Connect','Resource':['*','*',{}]}"),
	 "Statement[2].Resource[2]: must be a string"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':'topic/x'}"),
	 "Statement[0].Resource: must be \"*\" or an ARN starting with \"arn:\""},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':['*','']}"),
	 "Statement[0].Resource[1]: must be \"*\" or an ARN"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':" R("client/${iot:Nope}") "}"),
	 "Statement[0].Resource: unsupported policy variable ${iot:Nope}"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':["
	     R("client/${iot:Certificate.Subject.CommonName.List[0]}") "]}"),
	 "Statement[0].Resource[0]: unsupported policy variable "
	 "${iot:Certificate.Subject.CommonName.List[0]}"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':" R("client/${iot:ClientId") "}"),
	 "Statement[0].Resource: unterminated policy variable"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':"
	     R("client/${iot:Connection.Thing.Attributes[]}") "}"),
	 "Statement[0].Resource: unsupported policy variable"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':"
	     R("${iot:ClientId}${iot:ClientId}${iot:ClientId}${iot:ClientId}${iot:ClientId}"
	       "${iot:ClientId}${iot:ClientId}${iot:ClientId}${iot:ClientId}") "}"),
	 "Statement[0].Resource: more than 8 policy variables"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':'*','Principal':'*'}"),
	 "Statement[0].Principal: unknown key"},
	{DOC("{'Sid':1,'Effect':'Allow','Action':'iot:Connect','Resource':'*'}"),
	 "Statement[0].Sid: must be a string"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':'*','Condition':[]}"),
	 "Statement[0].Condition: must be an object"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':'*','Condition':"
	     "{'NumericEquals':{'iot:ClientId':'1'}}}"),
	 "Statement[0].Condition.NumericEquals: unsupported condition operator"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':'*','Condition':"
	     "{'StringEquals':{'aws:SourceIp':'1.2.3.4'}}}"),
	 "Statement[0].Condition.StringEquals.aws:SourceIp: unsupported condition key"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':'*','Condition':"
	     "{'Bool':{'iot:Connection.Thing.IsAttached':['true','yes']}}}"),
	 "Statement[0].Condition.Bool.iot:Connection.Thing.IsAttached[1]: must be \"true\" or "
	 "\"false\""},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':'*','Condition':"
	     "{'StringEquals':{}}}"),
	 "Statement[0].Condition.StringEquals: must be a non-empty object of condition keys"},
	{DOC("{'Effect':'Allow','Action':'iot:Connect','Resource':'*','Condition':"
	     "{'StringLike':{'iot:ClientId':[1]}}}"),
	 "Statement[0].Condition.StringLike.iot:ClientId[0]: must be a string"},
};

static void test_malformed_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct iotp_err e1 = {0}, e2 = {0};
		struct policy *sentinel = (struct policy *)&e1;
		struct policy *p = sentinel;
		char *d = q(bad_cases[i].doc);
		iotp_rc r1 = policy_validate(d, strlen(d), &e1);
		iotp_rc r2 = policy_compile(d, strlen(d), &p, &e2);

		if (r1 != IOTP_ERR_POLICY || strncmp(e1.msg, bad_cases[i].msg,
		                                     strlen(bad_cases[i].msg)) != 0)
			fail_msg("case %zu: rc %d msg \"%s\", want \"%s...\" for %s", i, r1, e1.msg,
			         bad_cases[i].msg, d);
		assert_int_equal(r2, IOTP_ERR_POLICY);
		assert_string_equal(e1.msg, e2.msg);
		assert_ptr_equal(p, sentinel); /* out-param untouched on failure */
		free(d);
	}
}

/* A NULL err is allowed and the rc still says what happened. */
static void test_null_err(void **state)
{
	const char *doc = "{\"Version\":\"2012-10-17\"}";

	(void)state;
	assert_int_equal(policy_validate(doc, strlen(doc), NULL), IOTP_ERR_POLICY);
	assert_int_equal(policy_validate(NULL, 0, NULL), IOTP_ERR_POLICY);
}

/* ------------------------------------------------------------------------ */

/* A document whose Sid is sid_len characters long. */
static char *doc_with_sid(size_t sid_len, size_t spaces)
{
	const char *head = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"";
	const char *tail = "\",\"Effect\":\"Allow\",\"Action\":\"iot:Connect\",\"Resource\":\"*\"}]}";
	size_t n = strlen(head) + sid_len + strlen(tail) + spaces;
	char *d = malloc(n + 1), *w = d;

	assert_non_null(d);
	memset(w, ' ', spaces);
	w += spaces;
	memcpy(w, head, strlen(head));
	w += strlen(head);
	memset(w, 'x', sid_len);
	w += sid_len;
	memcpy(w, tail, strlen(tail) + 1);
	return d;
}

static void test_size_limits(void **state)
{
	struct iotp_err err = {0};
	size_t base;
	char *d;

	(void)state;
	d = doc_with_sid(0, 0);
	base = strlen(d);
	free(d);

	/* exactly the limit passes, one more character fails */
	d = doc_with_sid(POLICY_MAX_CHARS - base, 0);
	assert_int_equal(policy_validate(d, strlen(d), &err), IOTP_OK);
	free(d);
	d = doc_with_sid(POLICY_MAX_CHARS - base + 1, 0);
	assert_int_equal(policy_validate(d, strlen(d), &err), IOTP_ERR_POLICY);
	assert_string_equal(err.msg, "policy document has 2049 characters excluding whitespace; "
	                             "the limit is 2048");
	free(d);

	/* whitespace does not count... */
	d = doc_with_sid(POLICY_MAX_CHARS - base, 60000);
	assert_int_equal(policy_validate(d, strlen(d), &err), IOTP_OK);
	free(d);
	/* ...but the raw size is capped */
	d = doc_with_sid(10, POLICY_MAX_BYTES);
	assert_int_equal(policy_validate(d, strlen(d), &err), IOTP_ERR_POLICY);
	assert_non_null(strstr(err.msg, "bytes; the limit is 65536"));
	free(d);

	/* many statements: refused by characters, and far more by raw bytes */
	for (int round = 0; round < 2; round++) {
		int stmts = round == 0 ? 30 : 1000;
		const char *want = round == 0 ? "characters excluding whitespace; the limit is 2048"
		                              : "bytes; the limit is 65536";
		size_t cap = 200000, used = 0;
		char *big = malloc(cap);
		struct policy *p = NULL;

		assert_non_null(big);
		used += (size_t)snprintf(big, cap, "{\"Version\":\"2012-10-17\",\"Statement\":[");
		for (int i = 0; i < stmts; i++)
			used += (size_t)snprintf(big + used, cap - used,
			                         "%s{\"Effect\":\"Allow\",\"Action\":\"iot:Publish\","
			                         "\"Resource\":\"arn:aws:iot:*:*:topic/%d\"}",
			                         i ? "," : "", i);
		snprintf(big + used, cap - used, "]}");
		assert_int_equal(policy_compile(big, strlen(big), &p, &err), IOTP_ERR_POLICY);
		assert_null(p);
		if (strstr(err.msg, want) == NULL)
			fail_msg("%d statements: \"%s\", want \"%s\"", stmts, err.msg, want);
		free(big);
	}
}

static void test_nesting_limits(void **state)
{
	struct iotp_err err = {0};
	size_t n = 100000;
	char *d = malloc(2 * n + 64);
	size_t w = 0;

	(void)state;
	assert_non_null(d);
	/* 17 levels */
	w = (size_t)snprintf(d, 64, "{\"Version\":\"2012-10-17\",\"Statement\":");
	for (int i = 0; i < 16; i++)
		d[w++] = '[';
	for (int i = 0; i < 16; i++)
		d[w++] = ']';
	d[w++] = '}';
	assert_int_equal(policy_validate(d, w, &err), IOTP_ERR_POLICY);
	assert_string_equal(err.msg, "policy document nests deeper than 16 levels");

	/* 16 levels are parsed, then refused for their structure */
	w = (size_t)snprintf(d, 64, "{\"Version\":\"2012-10-17\",\"Statement\":");
	for (int i = 0; i < 15; i++)
		d[w++] = '[';
	for (int i = 0; i < 15; i++)
		d[w++] = ']';
	d[w++] = '}';
	assert_int_equal(policy_validate(d, w, &err), IOTP_ERR_POLICY);
	assert_string_equal(err.msg, "Statement[0]: must be an object");

	/* unbalanced nesting far past any parser's recursion budget */
	memset(d, '[', 60000);
	assert_int_equal(policy_validate(d, 60000, &err), IOTP_ERR_POLICY);
	assert_string_equal(err.msg, "policy document nests deeper than 16 levels");
	/* brackets inside strings are text */
	w = (size_t)snprintf(d, 2 * n + 64, "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"");
	for (int i = 0; i < 40; i++)
		d[w++] = '[';
	w += (size_t)snprintf(d + w, 2 * n + 64 - w, "\",\"Effect\":\"Allow\",\"Action\":"
	                      "\"iot:Connect\",\"Resource\":\"*\"}]}");
	assert_int_equal(policy_validate(d, w, &err), IOTP_OK);
	free(d);
}

/* ------------------------------------------------------------------------ */

static void test_eval_edges(void **state)
{
	struct policy *p = compile_ok(P_ALLOW_ALL);
	const struct policy *list[3] = {NULL, p, NULL};

	(void)state;
	assert_int_equal(policy_eval(list, 3, POLICY_ACTION_PUBLISH, A "topic/a", NULL),
	                 POLICY_ALLOW);
	assert_int_equal(policy_eval(list, 0, POLICY_ACTION_PUBLISH, A "topic/a", NULL),
	                 POLICY_DENY);
	assert_int_equal(policy_eval(NULL, 0, POLICY_ACTION_PUBLISH, A "topic/a", NULL),
	                 POLICY_DENY);
	assert_int_equal(policy_eval(list, 3, POLICY_ACTION_PUBLISH, NULL, NULL), POLICY_DENY);
	assert_int_equal(policy_eval(list, 3, POLICY_ACTION_COUNT, A "topic/a", NULL),
	                 POLICY_DENY);
	policy_free(p);
	policy_free(NULL);
}

/* A compiled policy is independent of the text it came from. */
static void test_compile_copies(void **state)
{
	char *d = q(P_CID);
	struct policy *p = NULL;
	struct policy_ctx ctx;
	const struct policy *list[1];

	(void)state;
	assert_int_equal(policy_compile(d, strlen(d), &p, NULL), IOTP_OK);
	memset(d, 'Z', strlen(d));
	free(d);
	ctx_make(C_DEV, &ctx);
	list[0] = p;
	assert_int_equal(policy_eval(list, 1, POLICY_ACTION_CONNECT, A "client/dev1", &ctx),
	                 POLICY_ALLOW);
	assert_int_equal(policy_eval(list, 1, POLICY_ACTION_CONNECT, A "client/dev2", &ctx),
	                 POLICY_DENY);
	policy_free(p);
}

/* The star backtracking stays polynomial on adversarial input. */
static void test_pathological_pattern(void **state)
{
	struct policy *p = compile_ok(DOC(ST("Allow", "'iot:Publish'",
	                                     "'arn:*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b'")));
	const struct policy *list[1] = {p};
	char res[4096];

	(void)state;
	memset(res, 'a', sizeof(res) - 1);
	memcpy(res, "arn:", 4);
	res[sizeof(res) - 1] = '\0';
	assert_int_equal(policy_eval(list, 1, POLICY_ACTION_PUBLISH, res, NULL), POLICY_DENY);
	res[sizeof(res) - 2] = 'b';
	assert_int_equal(policy_eval(list, 1, POLICY_ACTION_PUBLISH, res, NULL), POLICY_ALLOW);
	policy_free(p);
}

static void test_names(void **state)
{
	enum policy_action a = POLICY_ACTION_CONNECT;
	struct iotp_err err = {0};

	(void)state;
	assert_int_equal(policy_action_parse("iot:Publish", &a, &err), IOTP_OK);
	assert_int_equal(a, POLICY_ACTION_PUBLISH);
	assert_int_equal(policy_action_parse("IOT:retainpublish", &a, &err), IOTP_OK);
	assert_int_equal(a, POLICY_ACTION_RETAIN_PUBLISH);
	assert_int_equal(policy_action_parse("iot:*", &a, &err), IOTP_ERR_INVALID);
	assert_int_equal(policy_action_parse("Publish", &a, &err), IOTP_ERR_INVALID);
	assert_int_equal(a, POLICY_ACTION_RETAIN_PUBLISH);
	for (int i = 0; i < POLICY_ACTION_COUNT; i++) {
		assert_int_equal(policy_action_parse(policy_action_name((enum policy_action)i), &a,
		                                     &err), IOTP_OK);
		assert_int_equal(a, i);
	}
	assert_string_equal(policy_action_name(POLICY_ACTION_SUBSCRIBE), "iot:Subscribe");
	assert_string_equal(policy_action_name(POLICY_ACTION_COUNT), "");
	assert_string_equal(policy_var_name(POLICY_VAR_CLIENT_ID), "iot:ClientId");
	assert_string_equal(policy_var_name(POLICY_VAR_SUBJECT(POLICY_CERT_COMMON_NAME)),
	                    "iot:Certificate.Subject.CommonName");
	assert_string_equal(policy_var_name(POLICY_VAR_ISSUER(POLICY_CERT_GENERATION_QUALIFIER)),
	                    "iot:Certificate.Issuer.GenerationQualifier");
	assert_string_equal(policy_var_name(POLICY_VAR_COUNT), "");
	assert_int_equal(policy_cert_field_nid(POLICY_CERT_COMMON_NAME), NID_commonName);
	assert_int_equal(policy_cert_field_nid(POLICY_CERT_ORGANIZATIONAL_UNIT),
	                 NID_organizationalUnitName);
	assert_int_equal(policy_cert_field_nid(POLICY_CERT_FIELD_COUNT), NID_undef);
}

/* Every variable name the header lists compiles and resolves from its slot. */
static void test_every_variable(void **state)
{
	(void)state;
	for (int v = 0; v < POLICY_VAR_COUNT; v++) {
		char doc[512];
		struct policy *p = NULL;
		struct policy_ctx ctx;
		struct iotp_err err = {0};
		const struct policy *list[1];

		snprintf(doc, sizeof(doc),
		         "{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\","
		         "\"Action\":\"iot:Publish\",\"Resource\":\"" A "topic/${%s}\"}}",
		         policy_var_name((enum policy_var)v));
		if (policy_compile(doc, strlen(doc), &p, &err) != IOTP_OK)
			fail_msg("%s: %s", policy_var_name((enum policy_var)v), err.msg);
		list[0] = p;
		policy_ctx_init(&ctx);
		assert_int_equal(policy_eval(list, 1, POLICY_ACTION_PUBLISH, A "topic/v", &ctx),
		                 POLICY_DENY);
		ctx.var[v] = "v";
		assert_int_equal(policy_eval(list, 1, POLICY_ACTION_PUBLISH, A "topic/v", &ctx),
		                 POLICY_ALLOW);
		assert_int_equal(policy_eval(list, 1, POLICY_ACTION_PUBLISH, A "topic/w", &ctx),
		                 POLICY_DENY);
		policy_free(p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eval_table),
		cmocka_unit_test(test_eval_monotonic),
		cmocka_unit_test(test_malformed_table),
		cmocka_unit_test(test_null_err),
		cmocka_unit_test(test_size_limits),
		cmocka_unit_test(test_nesting_limits),
		cmocka_unit_test(test_eval_edges),
		cmocka_unit_test(test_compile_copies),
		cmocka_unit_test(test_pathological_pattern),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_every_variable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
