/*
 * The server's building blocks without sockets: route matching and its
 * traps, request parsing (path, query, JSON), the error table, metrics,
 * access keys and their roles, and SigV4 authentication against a real
 * SQLite store with its audit trail. The HTTPS side is exercised end to end
 * by tests/e2e/server_basic.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/conf.h"
#include "common/util.h"
#include "core/accesskey.h"
#include "core/core.h"
#include "core/store/store.h"
#include "server/api.h"
#include "server/api_errors.h"
#include "server/api_json.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/router.h"
#include "server/sigv4.h"

/* ------------------------------------------------------------------ */
/* Routing                                                              */

static iotp_rc dummy(struct api_request *rq, struct api_response *resp, struct iotp_err *err)
{
	(void)rq;
	(void)resp;
	(void)err;
	return IOTP_OK;
}

static const struct route trap_routes[] = {
	{"POST", "/things", "RegisterThing", ROUTE_JSON, NULL, dummy},
	{"GET", "/things", "ListThings", 0, NULL, dummy},
	{"POST", "/things/{thingName}", "CreateThing", ROUTE_JSON, NULL, dummy},
	{"GET", "/things/{thingName}", "DescribeThing", 0, NULL, dummy},
	{"PUT", "/things/{thingName}/principals", "AttachThingPrincipal", 0, NULL, dummy},
	{"PATCH", "/thing-groups/{thingGroupName}", "UpdateThingGroup", ROUTE_JSON, NULL, dummy},
	{"PUT", "/thing-groups/addThingToThingGroup", "AddThingToThingGroup", ROUTE_JSON, NULL,
	 dummy},
	{"PUT", "/target-policies/{policyName}", "AttachPolicy", ROUTE_JSON, NULL, dummy},
	{"POST", "/target-policies/{policyName}", "DetachPolicy", ROUTE_JSON, NULL, dummy},
	{"GET", "/certificates", "ListCertificates", 0, NULL, dummy},
	{"GET", "/certificates/{certificateId}", "DescribeCertificate", 0, NULL, dummy},
	{"POST", "/attached-policies/{target}", "ListAttachedPolicies", 0, NULL, dummy},
	{"POST", "/provisioning-templates/{templateName}/provisioning-claim",
	 "CreateProvisioningClaim", 0, "templateName", dummy},
};
static const struct route_table trap_table = {trap_routes,
                                              sizeof(trap_routes) / sizeof(trap_routes[0])};
static const struct route_table *const trap_tables[] = {&trap_table};

static const char *op_of(const struct router *r, const char *method, const char *path)
{
	const struct route *rt = NULL;

	if (router_match(r, method, path, strlen(path), &rt, NULL, 0) != ROUTER_FOUND)
		return NULL;
	return rt->operation;
}

static void test_routing_traps(void **state)
{
	struct router *r = NULL;
	struct iotp_err err;
	const struct route *rt;
	char allow[64];

	(void)state;
	assert_int_equal(router_new(trap_tables, 1, &r, &err), IOTP_OK);
	assert_string_equal(op_of(r, "POST", "/things"), "RegisterThing");
	assert_string_equal(op_of(r, "POST", "/things/pump-1"), "CreateThing");
	assert_string_equal(op_of(r, "GET", "/things"), "ListThings");
	assert_string_equal(op_of(r, "GET", "/certificates"), "ListCertificates");
	assert_string_equal(op_of(r, "GET", "/certificates/abc"), "DescribeCertificate");
	assert_string_equal(op_of(r, "PUT", "/target-policies/p1"), "AttachPolicy");
	assert_string_equal(op_of(r, "POST", "/target-policies/p1"), "DetachPolicy");
	/* the literal wins for PUT, the parameter takes PATCH */
	assert_string_equal(op_of(r, "PUT", "/thing-groups/addThingToThingGroup"),
	                    "AddThingToThingGroup");
	assert_string_equal(op_of(r, "PATCH", "/thing-groups/addThingToThingGroup"),
	                    "UpdateThingGroup");
	/* an encoded slash stays inside its segment */
	assert_string_equal(op_of(r, "POST", "/attached-policies/arn%3Aaws%3Aiot%3Aus-east-1%3A1%3A"
	                                     "cert%2Fab"),
	                    "ListAttachedPolicies");
	assert_null(op_of(r, "GET", "/things/"));
	assert_null(op_of(r, "GET", "/things//principals"));
	assert_null(op_of(r, "GET", "/nothing"));
	assert_null(op_of(r, "GET", "things"));
	assert_int_equal(router_match(r, "GET", "/nothing", 8, &rt, allow, sizeof(allow)),
	                 ROUTER_NO_PATH);
	assert_int_equal(router_match(r, "DELETE", "/target-policies/p1", 19, &rt, allow,
	                              sizeof(allow)),
	                 ROUTER_NO_METHOD);
	assert_non_null(strstr(allow, "PUT"));
	assert_non_null(strstr(allow, "POST"));
	router_free(r);
}

static void test_router_rejects_bad_tables(void **state)
{
	static const struct route dup[] = {
		{"GET", "/a/{x}", "A", 0, NULL, dummy},
		{"GET", "/a/{x}", "B", 0, NULL, dummy},
	};
	static const struct route braces[] = {{"GET", "/a/x{y}", "A", 0, NULL, dummy}};
	static const struct route nohandler[] = {{"GET", "/a", "A", 0, NULL, NULL}};
	static const struct route relative[] = {{"GET", "a", "A", 0, NULL, dummy}};
	const struct route_table t1 = {dup, 2}, t2 = {braces, 1}, t3 = {nohandler, 1},
	                         t4 = {relative, 1};
	const struct route_table *const l1[] = {&t1}, *const l2[] = {&t2}, *const l3[] = {&t3},
	                                *const l4[] = {&t4};
	struct router *r = NULL;
	struct iotp_err err;

	(void)state;
	assert_int_equal(router_new(l1, 1, &r, &err), IOTP_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "both claim"));
	assert_int_equal(router_new(l2, 1, &r, &err), IOTP_ERR_CONFIG);
	assert_int_equal(router_new(l3, 1, &r, &err), IOTP_ERR_CONFIG);
	assert_int_equal(router_new(l4, 1, &r, &err), IOTP_ERR_CONFIG);
	assert_null(r);
	/* the server's own tables are valid */
	assert_int_equal(router_new(api_tables, api_table_count, &r, &err), IOTP_OK);
	router_free(r);
}

static void test_parse_target(void **state)
{
	struct api_request rq;
	struct iotp_err err;

	(void)state;
	memset(&rq, 0, sizeof(rq));
	rq.target = "/provisioning-templates/fleet%2Dt1/provisioning-claim?a=1&b=x%20y&a=2&flag&"
	            "plus=a+b";
	assert_int_equal(api_request_parse_target(&rq, &trap_routes[12], &err), IOTP_OK);
	assert_string_equal(api_param(&rq, "templateName"), "fleet-t1");
	assert_null(api_param(&rq, "template"));
	assert_string_equal(api_query(&rq, "a"), "1");
	assert_string_equal(api_query(&rq, "b"), "x y");
	assert_string_equal(api_query(&rq, "flag"), "");
	assert_string_equal(api_query(&rq, "plus"), "a+b");
	assert_null(api_query(&rq, "c"));
	{
		int64_t v = 7;
		int flag = 0;

		assert_int_equal(api_query_int(&rq, "a", 0, 10, &v, &err), IOTP_OK);
		assert_int_equal(v, 1);
		assert_int_equal(api_query_int(&rq, "b", 0, 10, &v, &err), IOTP_ERR_INVALID);
		assert_non_null(strstr(err.msg, "b"));
		assert_int_equal(api_query_int(&rq, "missing", 0, 10, &v, &err), IOTP_OK);
		assert_int_equal(v, 1);
		assert_int_equal(api_query_bool(&rq, "flag", &flag, &err), IOTP_ERR_INVALID);
	}
	api_request_cleanup(&rq);

	memset(&rq, 0, sizeof(rq));
	rq.target = "/things/a%zzb";
	assert_int_equal(api_request_parse_target(&rq, &trap_routes[3], &err), IOTP_ERR_INVALID);
	api_request_cleanup(&rq);
	memset(&rq, 0, sizeof(rq));
	rq.target = "/things/a%00b";
	assert_int_equal(api_request_parse_target(&rq, &trap_routes[3], &err), IOTP_ERR_INVALID);
	api_request_cleanup(&rq);
	memset(&rq, 0, sizeof(rq));
	rq.target = "/things?x=%4";
	assert_int_equal(api_request_parse_target(&rq, &trap_routes[1], &err), IOTP_ERR_INVALID);
	api_request_cleanup(&rq);
	{
		char many[API_MAX_QUERY * 8 + 32];
		size_t n = (size_t)snprintf(many, sizeof(many), "/things?");

		for (int i = 0; i <= API_MAX_QUERY; i++)
			n += (size_t)snprintf(many + n, sizeof(many) - n, "q%d=1&", i);
		memset(&rq, 0, sizeof(rq));
		rq.target = many;
		assert_int_equal(api_request_parse_target(&rq, &trap_routes[1], &err),
		                 IOTP_ERR_INVALID);
		api_request_cleanup(&rq);
	}
}

static iotp_rc parse_body(const char *body, struct api_request *rq, struct iotp_err *err)
{
	memset(rq, 0, sizeof(*rq));
	rq->body = body;
	rq->body_len = strlen(body);
	return api_request_parse_json(rq, err);
}

static void test_json_body(void **state)
{
	struct api_request rq;
	struct iotp_err err;
	const char *s = NULL;
	const json_t *o = NULL;
	int b = 0;
	int64_t n = 0;

	(void)state;
	assert_int_equal(parse_body("{\"thingName\": \"x\", ", &rq, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "malformed JSON"));
	assert_non_null(strstr(err.msg, "line 1"));
	assert_int_equal(parse_body("{\"a\": 1, \"a\": 2}", &rq, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "duplicate"));
	assert_int_equal(parse_body("[1, 2]", &rq, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "JSON object"));
	assert_int_equal(parse_body("\"text\"", &rq, &err), IOTP_ERR_INVALID);
	assert_int_equal(parse_body(" \r\n", &rq, &err), IOTP_OK);
	assert_true(json_is_object(rq.json));
	assert_int_equal(json_object_size(rq.json), 0);
	api_request_cleanup(&rq);

	assert_int_equal(parse_body("{\"name\": \"pump\", \"on\": true, \"n\": 5, \"attrs\": {},"
	                            " \"list\": [], \"gone\": null}",
	                            &rq, &err),
	                 IOTP_OK);
	assert_int_equal(api_body_string(&rq, "name", 1, &s, &err), IOTP_OK);
	assert_string_equal(s, "pump");
	assert_int_equal(api_body_bool(&rq, "on", 1, &b, &err), IOTP_OK);
	assert_int_equal(b, 1);
	assert_int_equal(api_body_int(&rq, "n", 1, 0, 10, &n, &err), IOTP_OK);
	assert_int_equal(n, 5);
	assert_int_equal(api_body_int(&rq, "n", 1, 6, 10, &n, &err), IOTP_ERR_INVALID);
	assert_int_equal(api_body_object(&rq, "attrs", 1, &o, &err), IOTP_OK);
	assert_int_equal(api_body_array(&rq, "list", 1, &o, &err), IOTP_OK);
	assert_int_equal(api_body_string(&rq, "on", 0, &s, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "on must be a string"));
	assert_int_equal(api_body_string(&rq, "gone", 1, &s, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "gone is required"));
	s = "kept";
	assert_int_equal(api_body_string(&rq, "absent", 0, &s, &err), IOTP_OK);
	assert_string_equal(s, "kept");
	api_request_cleanup(&rq);
}

/* ------------------------------------------------------------------ */
/* Errors and responses                                                 */

static void test_error_table(void **state)
{
	static const struct {
		iotp_rc rc;
		int status;
		const char *type;
	} expect[] = {
		{IOTP_ERR_INVALID, 400, "InvalidRequestException"},
		{IOTP_ERR_NOT_FOUND, 404, "ResourceNotFoundException"},
		{IOTP_ERR_EXISTS, 409, "ResourceAlreadyExistsException"},
		{IOTP_ERR_CONFLICT, 409, "DeleteConflictException"},
		{IOTP_ERR_VERSION, 409, "VersionConflictException"},
		{IOTP_ERR_STATE, 406, "CertificateStateException"},
		{IOTP_ERR_CERT, 400, "CertificateValidationException"},
		{IOTP_ERR_POLICY, 400, "MalformedPolicyException"},
		{IOTP_ERR_AUTH, 403, "UnrecognizedClientException"},
		{IOTP_ERR_DENIED, 403, "AccessDeniedException"},
		{IOTP_ERR_SIGNATURE, 403, "InvalidSignatureException"},
		{IOTP_ERR_LIMIT, 410, "LimitExceededException"},
		{IOTP_ERR_REGCODE, 400, "RegistrationCodeValidationException"},
		{IOTP_ERR_THROTTLED, 400, "ThrottlingException"},
		{IOTP_ERR_TEMPLATE, 400, "ResourceRegistrationFailureException"},
		{IOTP_ERR_TOO_BIG, 413, "RequestEntityTooLargeException"},
		{IOTP_ERR_DB, 500, "InternalFailureException"},
		{IOTP_ERR_INTERNAL, 500, "InternalFailureException"},
		{IOTP_ERR_NOMEM, 500, "InternalFailureException"},
		{IOTP_ERR_BUSY, 503, "ServiceUnavailableException"},
		{(iotp_rc)999, 500, "InternalFailureException"},
	};
	char msg[256], hdr[128];
	char *body = NULL;
	size_t len = 0;
	json_t *extra, *parsed;

	(void)state;
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		const struct api_error *e = api_error_for(expect[i].rc);

		assert_int_equal(e->status, expect[i].status);
		assert_string_equal(e->type, expect[i].type);
	}
	/* internal detail never reaches the client */
	api_error_client_message(500, "sqlite: disk I/O error at /var/lib/x", "req-1", msg,
	                         sizeof(msg));
	assert_null(strstr(msg, "sqlite"));
	assert_non_null(strstr(msg, "req-1"));
	api_error_client_message(404, "thing pump-1 not found", "req-1", msg, sizeof(msg));
	assert_string_equal(msg, "thing pump-1 not found");
	api_error_type_header("ResourceNotFoundException", hdr, sizeof(hdr));
	assert_string_equal(hdr, "ResourceNotFoundException:");

	extra = json_pack("{s:s,s:s}", "resourceId", "id-1", "resourceArn", "arn:x");
	assert_int_equal(api_error_body("thing exists", extra, &body, &len), IOTP_OK);
	parsed = json_loads(body, 0, NULL);
	assert_non_null(parsed);
	assert_string_equal(json_string_value(json_object_get(parsed, "message")), "thing exists");
	assert_string_equal(json_string_value(json_object_get(parsed, "resourceId")), "id-1");
	json_decref(parsed);
	json_decref(extra);
	free(body);
	/* a message holding invalid UTF-8 (a decoded %FF) still makes JSON */
	assert_int_equal(api_error_body("thing a\xff" "b not found", NULL, &body, &len), IOTP_OK);
	parsed = json_loads(body, 0, NULL);
	assert_non_null(parsed);
	assert_string_equal(json_string_value(json_object_get(parsed, "message")),
	                    "thing a?b not found");
	json_decref(parsed);
	free(body);
}

static void test_response_helpers(void **state)
{
	struct api_response resp;

	(void)state;
	api_response_init(&resp);
	assert_int_equal(resp.status, 200);
	assert_int_equal(api_response_json(&resp, 201, NULL), IOTP_OK);
	assert_int_equal(resp.status, 201);
	assert_true(json_is_object(resp.json));
	assert_int_equal(api_response_text(&resp, 200, "text/plain", "abc", 3), IOTP_OK);
	assert_null(resp.json);
	assert_string_equal(resp.text, "abc");
	for (int i = 0; i < API_MAX_RESP_HEADERS; i++)
		assert_int_equal(api_response_header(&resp, "X-A", "v"), IOTP_OK);
	assert_int_equal(api_response_header(&resp, "X-A", "v"), IOTP_ERR_LIMIT);
	api_response_cleanup(&resp);
}

/* CreateKeysAndCertificate and CreateProvisioningClaim answer with a body
 * written by hand (so the private key can be wiped): it must be the JSON
 * the AWS model describes, marked secret. */
static void test_reply_with_key(void **state)
{
	static const char key[] = "-----BEGIN PRIVATE KEY-----\nMIGH\\\"\n-----END PRIVATE KEY-----\n";
	const char *members[] = {"certificateArn", "arn:aws:iot:us-east-1:1:cert/ab",
	                         "certificateId", "ab", "certificatePem", "PEM\n"};
	struct api_response resp;
	struct iotp_err err;
	json_t *o, *kp;

	(void)state;
	api_response_init(&resp);
	assert_int_equal(api_reply_with_key(&resp, members, 3, "PUB\n", key, NULL, 0, &err),
	                 IOTP_OK);
	assert_int_equal(resp.status, 200);
	assert_true(resp.secret);
	assert_null(resp.json);
	assert_null(resp.content_type);
	o = json_loadb(resp.text, resp.text_len, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(o);
	assert_int_equal(json_object_size(o), 4);
	assert_string_equal(json_string_value(json_object_get(o, "certificateId")), "ab");
	assert_string_equal(json_string_value(json_object_get(o, "certificatePem")), "PEM\n");
	kp = json_object_get(o, "keyPair");
	assert_int_equal(json_object_size(kp), 2);
	assert_string_equal(json_string_value(json_object_get(kp, "PublicKey")), "PUB\n");
	assert_string_equal(json_string_value(json_object_get(kp, "PrivateKey")), key);
	json_decref(o);
	/* the claim's shape: a number after the key pair */
	assert_int_equal(api_reply_with_key(&resp, members + 2, 2, "PUB", key, "expiration",
	                                    1700000000, &err),
	                 IOTP_OK);
	o = json_loadb(resp.text, resp.text_len, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(o);
	assert_int_equal(json_object_size(o), 4);
	assert_int_equal(json_integer_value(json_object_get(o, "expiration")), 1700000000);
	json_decref(o);
	/* replaced by an ordinary answer, the flag goes */
	assert_int_equal(api_response_text(&resp, 200, "text/plain", "x", 1), IOTP_OK);
	assert_false(resp.secret);
	api_response_cleanup(&resp);
}

static void test_metrics(void **state)
{
	struct metrics *m = NULL;
	struct iotp_err err;
	struct buf b;

	(void)state;
	assert_int_equal(metrics_new(&m, &err), IOTP_OK);
	metrics_request(m, "CreateThing", 200, 800);
	metrics_request(m, "CreateThing", 200, 3000);
	metrics_request(m, "CreateThing", 409, 50);
	metrics_request(m, "odd\"op", 500, 20000000);
	metrics_auth_failure(m, "signature");
	metrics_auth_failure(m, "signature");
	metrics_error(m, "ResourceAlreadyExistsException");
	metrics_cert_issued(m, 3);
	metrics_set_connections(m, 4);
	assert_int_equal(metrics_requests_total(m, "CreateThing", 200), 2);
	assert_int_equal(metrics_requests_total(m, "CreateThing", 404), 0);
	assert_int_equal(metrics_auth_failures_total(m, "signature"), 2);
	assert_int_equal(metrics_certs_issued_total(m), 3);
	buf_init(&b, 0);
	assert_int_equal(metrics_format(m, &b), IOTP_OK);
	assert_non_null(strstr(b.data,
	                       "iotprov_api_requests_total{operation=\"CreateThing\",status=\"200\"} 2\n"));
	assert_non_null(strstr(b.data, "iotprov_api_request_duration_seconds_bucket{operation="
	                               "\"CreateThing\",le=\"0.001\"} 2\n"));
	assert_non_null(strstr(b.data, "iotprov_api_request_duration_seconds_bucket{operation="
	                               "\"CreateThing\",le=\"0.0025\"} 2\n"));
	assert_non_null(strstr(b.data, "iotprov_api_request_duration_seconds_bucket{operation="
	                               "\"CreateThing\",le=\"0.005\"} 3\n"));
	assert_non_null(strstr(b.data, "iotprov_api_request_duration_seconds_count{operation="
	                               "\"CreateThing\"} 3\n"));
	/* 20 s is beyond the last bucket: only +Inf counts it */
	assert_non_null(strstr(b.data, "{operation=\"odd\\\"op\",le=\"10\"} 0\n"));
	assert_non_null(strstr(b.data, "{operation=\"odd\\\"op\",le=\"+Inf\"} 1\n"));
	assert_non_null(strstr(b.data, "iotprov_api_auth_failures_total{reason=\"signature\"} 2\n"));
	assert_non_null(strstr(b.data, "iotprov_certificates_issued_total 3\n"));
	assert_non_null(strstr(b.data, "iotprov_api_connections 4\n"));
	assert_non_null(strstr(b.data, "iotprov_api_errors_total{type=\"ResourceAlreadyExists"
	                               "Exception\"} 1\n"));
	buf_cleanup(&b);
	/* more distinct operations than slots: the excess is counted as other */
	for (int i = 0; i < 300; i++) {
		char name[32];

		snprintf(name, sizeof(name), "Op%d", i);
		metrics_request(m, name, 200, 10);
	}
	assert_int_equal(metrics_requests_total(m, "Op0", 200), 1);
	assert_true(metrics_requests_total(m, "other", 200) >= 300 - 256 + 2);
	metrics_free(m);
}

static void test_mqtt_endpoint(void **state)
{
	struct iotp_conf conf;
	struct iotp_err err;
	char out[256];

	(void)state;
	conf_init(&conf, "/tmp");
	assert_int_equal(api_mqtt_endpoint(&conf, out, sizeof(out), &err), IOTP_OK);
	assert_string_equal(out, "127.0.0.1");
	util_strlcpy(conf.mqtt_listen, "0.0.0.0:1883", sizeof(conf.mqtt_listen));
	assert_int_equal(api_mqtt_endpoint(&conf, out, sizeof(out), &err), IOTP_OK);
	assert_string_equal(out, "localhost:1883");
	util_strlcpy(conf.mqtt_listen, "[::1]:8884", sizeof(conf.mqtt_listen));
	assert_int_equal(api_mqtt_endpoint(&conf, out, sizeof(out), &err), IOTP_OK);
	assert_string_equal(out, "[::1]:8884");
	util_strlcpy(conf.mqtt_endpoint, "iot.example.com", sizeof(conf.mqtt_endpoint));
	assert_int_equal(api_mqtt_endpoint(&conf, out, sizeof(out), &err), IOTP_OK);
	assert_string_equal(out, "iot.example.com");
}

/* ------------------------------------------------------------------ */
/* Access keys and authentication (real SQLite store)                   */

struct fixture {
	char dir[64];
	struct iotp_conf conf;
	struct iotp_core core;
};

static int setup_store(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store *st = NULL;
	struct iotp_err err;
	char url[128];

	if (f == NULL)
		return -1;
	util_strlcpy(f->dir, "/tmp/iotp-http-XXXXXX", sizeof(f->dir));
	if (mkdtemp(f->dir) == NULL)
		return -1;
	conf_init(&f->conf, f->dir);
	snprintf(url, sizeof(url), "sqlite:%s/t.db", f->dir);
	if (store_open(url, &st, &err) != IOTP_OK) {
		fprintf(stderr, "store_open: %s\n", err.msg);
		return -1;
	}
	core_init_with_store(&f->core, &f->conf, st);
	*state = f;
	return 0;
}

static int teardown_store(void **state)
{
	struct fixture *f = *state;
	char path[128];

	core_close(&f->core);
	snprintf(path, sizeof(path), "%s/t.db", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/t.db-wal", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/t.db-shm", f->dir);
	unlink(path);
	rmdir(f->dir);
	free(f);
	return 0;
}

struct list_ctx {
	int n;
	int secrets_empty;
	char last_role[16];
};

static int on_key(void *ud, const struct accesskey *key)
{
	struct list_ctx *c = ud;

	c->n++;
	c->secrets_empty &= key->secret[0] == '\0';
	util_strlcpy(c->last_role, accesskey_role_name(key->role), sizeof(c->last_role));
	return 0;
}

struct event_ctx {
	int count;
	char actions[512];
	int leaked_secret;
	const char *secret;
	char last_actor[64];
	char last_detail[1024];
};

static int on_event(void *ud, const struct store_event *ev)
{
	struct event_ctx *c = ud;
	size_t n = strlen(c->actions);

	c->count++;
	snprintf(c->actions + n, sizeof(c->actions) - n, "%s;", ev->action);
	if (c->secret != NULL &&
	    ((ev->detail != NULL && strstr(ev->detail, c->secret) != NULL) ||
	     strstr(ev->actor, c->secret) != NULL || strstr(ev->object, c->secret) != NULL))
		c->leaked_secret = 1;
	util_strlcpy(c->last_actor, ev->actor, sizeof(c->last_actor));
	util_strlcpy(c->last_detail, ev->detail != NULL ? ev->detail : "", sizeof(c->last_detail));
	return 0;
}

static void test_accesskey_lifecycle(void **state)
{
	struct fixture *f = *state;
	struct accesskey admin, inst, found;
	struct list_ctx lc = {0, 1, ""};
	struct event_ctx ec;
	struct iotp_err err;
	enum accesskey_role role;

	memset(&ec, 0, sizeof(ec));
	assert_int_equal(accesskey_create(&f->core, "test", ACCESSKEY_ROLE_ADMIN, NULL, "first",
	                                  &admin, &err),
	                 IOTP_OK);
	assert_true(accesskey_id_valid(admin.id));
	assert_int_equal(strlen(admin.secret), ACCESSKEY_SECRET_LEN);
	for (size_t i = 0; i < ACCESSKEY_SECRET_LEN; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
		                       admin.secret[i]));
	assert_int_equal(accesskey_lookup(&f->core, admin.id, &found, &err), IOTP_OK);
	assert_string_equal(found.secret, admin.secret);
	assert_int_equal(found.role, ACCESSKEY_ROLE_ADMIN);
	assert_true(found.active);
	assert_string_equal(found.description, "first");
	accesskey_cleanup(&found);

	/* installer keys need templates; the others refuse them */
	assert_int_equal(accesskey_create(&f->core, "test", ACCESSKEY_ROLE_INSTALLER, NULL, NULL,
	                                  &inst, &err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(accesskey_create(&f->core, "test", ACCESSKEY_ROLE_OPERATOR, "fleet", NULL,
	                                  &inst, &err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(accesskey_create(&f->core, "test", ACCESSKEY_ROLE_INSTALLER, "fl eet",
	                                  NULL, &inst, &err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(accesskey_create(&f->core, "test", ACCESSKEY_ROLE_INSTALLER, "a,,b", NULL,
	                                  &inst, &err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(accesskey_create(&f->core, "test", ACCESSKEY_ROLE_INSTALLER,
	                                  "fleet-a,fleet_b", NULL, &inst, &err),
	                 IOTP_OK);
	assert_string_not_equal(inst.id, admin.id);

	assert_int_equal(accesskey_list(&f->core, on_key, &lc, &err), IOTP_OK);
	assert_int_equal(lc.n, 2);
	assert_true(lc.secrets_empty);

	assert_int_equal(accesskey_disable(&f->core, "test", inst.id, &err), IOTP_OK);
	assert_int_equal(accesskey_disable(&f->core, "test", inst.id, &err), IOTP_OK);
	assert_int_equal(accesskey_disable(&f->core, "test", "AKIAAAAAAAAAAAAAAAAA", &err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(accesskey_lookup(&f->core, inst.id, &found, &err), IOTP_OK);
	assert_false(found.active);
	assert_string_equal(found.templates, "fleet-a,fleet_b");
	accesskey_cleanup(&found);
	assert_int_equal(accesskey_lookup(&f->core, "AKIAAAAAAAAAAAAAAAAA", &found, &err),
	                 IOTP_ERR_NOT_FOUND);

	/* touch: written once, then not again within the interval */
	assert_int_equal(accesskey_touch(&f->core, &admin, 1000000, &err), IOTP_OK);
	assert_int_equal(accesskey_lookup(&f->core, admin.id, &found, &err), IOTP_OK);
	assert_int_equal(found.last_used, 1000000);
	assert_int_equal(accesskey_touch(&f->core, &found, 1000030, &err), IOTP_OK);
	accesskey_cleanup(&found);
	assert_int_equal(accesskey_lookup(&f->core, admin.id, &found, &err), IOTP_OK);
	assert_int_equal(found.last_used, 1000000);
	accesskey_cleanup(&found);

	/* the audit trail: two creations, one disable (the repeat adds none),
	 * and never a secret */
	ec.secret = admin.secret;
	assert_int_equal(store_events_since(f->core.store, 0, 100, on_event, &ec, &err), IOTP_OK);
	assert_string_equal(ec.actions, "accesskey.create;accesskey.create;accesskey.disable;");
	assert_false(ec.leaked_secret);

	assert_int_equal(accesskey_role_parse("operator", &role, &err), IOTP_OK);
	assert_int_equal(role, ACCESSKEY_ROLE_OPERATOR);
	assert_int_equal(accesskey_role_parse("root", &role, &err), IOTP_ERR_INVALID);
	accesskey_cleanup(&admin);
	accesskey_cleanup(&inst);
}

static void test_authorization_by_role(void **state)
{
	struct accesskey k;
	struct iotp_err err;

	(void)state;
	memset(&k, 0, sizeof(k));
	util_strlcpy(k.id, "AKIAAAAAAAAAAAAAAAAA", sizeof(k.id));
	k.active = 1;

	k.role = ACCESSKEY_ROLE_ADMIN;
	assert_int_equal(accesskey_authorize(&k, "CreateThing", NULL, &err), IOTP_OK);
	assert_int_equal(accesskey_authorize(&k, "CreateAccessKey", NULL, &err), IOTP_OK);
	assert_int_equal(accesskey_authorize(&k, "CreateProvisioningClaim", "any", &err), IOTP_OK);

	k.role = ACCESSKEY_ROLE_OPERATOR;
	assert_int_equal(accesskey_authorize(&k, "CreateThing", NULL, &err), IOTP_OK);
	assert_int_equal(accesskey_authorize(&k, "DescribeCACertificate", NULL, &err), IOTP_OK);
	/* CA keys are the admin's: they decide which devices are trusted */
	assert_int_equal(accesskey_authorize(&k, "RegisterCACertificate", NULL, &err),
	                 IOTP_ERR_DENIED);
	assert_int_equal(accesskey_authorize(&k, "GetRegistrationCode", NULL, &err),
	                 IOTP_ERR_DENIED);
	assert_int_equal(accesskey_authorize(&k, "DescribeEndpoint", NULL, &err), IOTP_OK);
	assert_int_equal(accesskey_authorize(&k, "CreateProvisioningClaim", "t", &err), IOTP_OK);
	/* not listed: admin only (fails closed) */
	assert_int_equal(accesskey_authorize(&k, "CreateAccessKey", NULL, &err), IOTP_ERR_DENIED);
	assert_non_null(strstr(err.msg, "admin"));
	assert_int_equal(accesskey_authorize(&k, NULL, NULL, &err), IOTP_ERR_DENIED);

	k.role = ACCESSKEY_ROLE_INSTALLER;
	util_strlcpy(k.templates, "fleet-a,fleet_b", sizeof(k.templates));
	assert_int_equal(accesskey_authorize(&k, "CreateProvisioningClaim", "fleet_b", &err),
	                 IOTP_OK);
	assert_int_equal(accesskey_authorize(&k, "CreateProvisioningClaim", "fleet", &err),
	                 IOTP_ERR_DENIED);
	assert_int_equal(accesskey_authorize(&k, "CreateProvisioningClaim", "fleet-a,fleet_b",
	                                     &err),
	                 IOTP_ERR_DENIED);
	assert_int_equal(accesskey_authorize(&k, "CreateProvisioningClaim", NULL, &err),
	                 IOTP_ERR_DENIED);
	assert_int_equal(accesskey_authorize(&k, "CreateThing", NULL, &err), IOTP_ERR_DENIED);
	assert_non_null(strstr(err.msg, "CreateThing"));
	assert_int_equal(accesskey_authorize(&k, "DescribeEndpoint", NULL, &err), IOTP_ERR_DENIED);

	k.role = ACCESSKEY_ROLE_ADMIN;
	k.active = 0;
	assert_int_equal(accesskey_authorize(&k, "DescribeEndpoint", NULL, &err), IOTP_ERR_DENIED);
	assert_int_equal(accesskey_min_role("ListThings"), ACCESSKEY_ROLE_OPERATOR);
	assert_int_equal(accesskey_min_role("CreateProvisioningClaim"), ACCESSKEY_ROLE_INSTALLER);
	assert_int_equal(accesskey_min_role("DisableAccessKey"), ACCESSKEY_ROLE_ADMIN);
}

/* Signs GET /endpoint as a client would, at time `when`. */
static void sign_request(const char *key_id, const char *secret, int64_t when,
                         const char *region, struct sigv4_header *h, size_t *nh,
                         char *auth, size_t authsize, char *amzdate)
{
	struct sigv4_request req;
	struct iotp_err err;

	sigv4_format_amzdate(when, amzdate);
	h[0].name = "Host";
	h[0].value = "127.0.0.1:8443";
	h[1].name = "X-Amz-Date";
	h[1].value = amzdate;
	req.method = "GET";
	req.target = "/endpoint";
	req.headers = h;
	req.nheaders = 2;
	req.body = "";
	req.body_len = 0;
	assert_int_equal(sigv4_sign(&req, key_id, secret, region, "iot", amzdate, auth, authsize,
	                            &err),
	                 IOTP_OK);
	h[2].name = "Authorization";
	h[2].value = auth;
	*nh = 3;
}

static iotp_rc try_auth(struct fixture *f, struct sigv4_header *h, size_t nh, int64_t now,
                        struct accesskey *key, const char **reason, struct iotp_err *err)
{
	struct sigv4_request req = {"GET", "/endpoint", h, nh, "", 0};
	struct auth_context ctx = {"req-1", "DescribeEndpoint", "127.0.0.1", "us-east-1", now, 900};

	return auth_verify(&f->core, &req, &ctx, key, reason, err);
}

static void test_auth_verify(void **state)
{
	struct fixture *f = *state;
	struct accesskey admin, key, found;
	struct sigv4_header h[4];
	struct event_ctx ec;
	char auth[SIGV4_AUTH_HEADER_MAX], amzdate[17];
	const char *reason = NULL;
	struct iotp_err err;
	size_t nh;
	int64_t now = util_now();

	memset(&ec, 0, sizeof(ec));
	assert_int_equal(accesskey_create(&f->core, "test", ACCESSKEY_ROLE_OPERATOR, NULL, NULL,
	                                  &admin, &err),
	                 IOTP_OK);

	sign_request(admin.id, admin.secret, now, "us-east-1", h, &nh, auth, sizeof(auth), amzdate);
	assert_int_equal(try_auth(f, h, nh, now, &key, &reason, &err), IOTP_OK);
	assert_string_equal(key.id, admin.id);
	assert_int_equal(key.role, ACCESSKEY_ROLE_OPERATOR);
	assert_string_equal(key.secret, ""); /* wiped before it is handed out */
	assert_int_equal(accesskey_lookup(&f->core, admin.id, &found, &err), IOTP_OK);
	assert_int_equal(found.last_used, now);
	accesskey_cleanup(&found);

	/* wrong secret */
	sign_request(admin.id, "0000000000000000000000000000000000000000", now, "us-east-1", h, &nh,
	             auth, sizeof(auth), amzdate);
	assert_int_equal(try_auth(f, h, nh, now, &key, &reason, &err), IOTP_ERR_SIGNATURE);
	assert_string_equal(reason, AUTH_REASON_SIGNATURE);
	/* unknown key and disabled key answer the same */
	sign_request("AKIAAAAAAAAAAAAAAAAA", admin.secret, now, "us-east-1", h, &nh, auth,
	             sizeof(auth), amzdate);
	assert_int_equal(try_auth(f, h, nh, now, &key, &reason, &err), IOTP_ERR_AUTH);
	assert_string_equal(reason, AUTH_REASON_UNKNOWN_KEY);
	{
		char unknown_msg[IOTP_ERR_MSG_MAX];

		util_strlcpy(unknown_msg, err.msg, sizeof(unknown_msg));
		assert_int_equal(accesskey_disable(&f->core, "test", admin.id, &err), IOTP_OK);
		sign_request(admin.id, admin.secret, now, "us-east-1", h, &nh, auth, sizeof(auth),
		             amzdate);
		assert_int_equal(try_auth(f, h, nh, now, &key, &reason, &err), IOTP_ERR_AUTH);
		assert_string_equal(reason, AUTH_REASON_DISABLED);
		assert_string_equal(err.msg, unknown_msg);
	}
	/* expired: signed 16 minutes ago */
	sign_request(admin.id, admin.secret, now - 960, "us-east-1", h, &nh, auth, sizeof(auth),
	             amzdate);
	assert_int_equal(try_auth(f, h, nh, now, &key, &reason, &err), IOTP_ERR_SIGNATURE);
	assert_string_equal(reason, AUTH_REASON_EXPIRED);
	assert_non_null(strstr(err.msg, "Signature expired"));
	/* wrong region */
	sign_request(admin.id, admin.secret, now, "eu-west-1", h, &nh, auth, sizeof(auth), amzdate);
	assert_int_equal(try_auth(f, h, nh, now, &key, &reason, &err), IOTP_ERR_SIGNATURE);
	assert_string_equal(reason, AUTH_REASON_SCOPE);
	/* session token */
	sign_request(admin.id, admin.secret, now, "us-east-1", h, &nh, auth, sizeof(auth), amzdate);
	h[3].name = "X-Amz-Security-Token";
	h[3].value = "FwoGZXIvYXdzE";
	assert_int_equal(try_auth(f, h, 4, now, &key, &reason, &err), IOTP_ERR_AUTH);
	assert_string_equal(reason, AUTH_REASON_TOKEN);
	assert_non_null(strstr(err.msg, "x-amz-security-token"));
	/* no Authorization at all, and a malformed one */
	assert_int_equal(try_auth(f, h, 2, now, &key, &reason, &err), IOTP_ERR_AUTH);
	assert_string_equal(reason, AUTH_REASON_MISSING);
	h[2].value = "Bearer abc";
	assert_int_equal(try_auth(f, h, 3, now, &key, &reason, &err), IOTP_ERR_AUTH);
	assert_string_equal(reason, AUTH_REASON_MALFORMED);

	/* every failure is in the audit log, none with the secret */
	ec.secret = admin.secret;
	assert_int_equal(store_events_since(f->core.store, 0, 100, on_event, &ec, &err), IOTP_OK);
	assert_string_equal(ec.actions, "accesskey.create;auth.fail;auth.fail;accesskey.disable;"
	                                "auth.fail;auth.fail;auth.fail;auth.fail;auth.fail;"
	                                "auth.fail;");
	assert_false(ec.leaked_secret);
	assert_string_equal(ec.last_actor, "anonymous");
	assert_non_null(strstr(ec.last_detail, "\"reason\":\"malformed\""));
	assert_non_null(strstr(ec.last_detail, "\"requestId\":\"req-1\""));
	accesskey_cleanup(&admin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routing_traps),
		cmocka_unit_test(test_router_rejects_bad_tables),
		cmocka_unit_test(test_parse_target),
		cmocka_unit_test(test_json_body),
		cmocka_unit_test(test_error_table),
		cmocka_unit_test(test_response_helpers),
		cmocka_unit_test(test_reply_with_key),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_mqtt_endpoint),
		cmocka_unit_test_setup_teardown(test_accesskey_lifecycle, setup_store, teardown_store),
		cmocka_unit_test(test_authorization_by_role),
		cmocka_unit_test_setup_teardown(test_auth_verify, setup_store, teardown_store),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
