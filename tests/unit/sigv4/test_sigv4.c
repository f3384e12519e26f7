/*
 * SigV4 against botocore: the vectors below were produced by botocore's own
 * SigV4Auth (botocore 1.43, `python3 -c` with the clock pinned to
 * 2024-05-17T10:30:00Z, access key AKIAIOSFODNN7EXAMPLE and secret
 * wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY), for both service names the
 * installed aws CLIs use, a path with %3A, a query with repeated and
 * space-holding parameters, a body, extra signed headers and a Date header.
 * iotprovd must accept exactly these requests and refuse their tampered
 * variants.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "server/sigv4.h"

#define SECRET "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"
#define KEY_ID "AKIAIOSFODNN7EXAMPLE"
#define SIGNED_AT 1715941800 /* 2024-05-17T10:30:00Z */

struct vector {
	const char *service;
	const char *method;
	const char *target;
	struct sigv4_header headers[4];
	size_t nheaders;
	const char *body;
	const char *canonical;
	const char *authorization;
};

static const struct vector vectors[] = {
	{
		"iot", "GET", "/endpoint?endpointType=iot%3AData-ATS",
		{{"X-Amz-Date", "20240517T103000Z"}, {"Host", "127.0.0.1:8443"}},
		2,
		"",
		"GET\n"
		"/endpoint\n"
		"endpointType=iot%3AData-ATS\n"
		"host:127.0.0.1:8443\n"
		"x-amz-date:20240517T103000Z\n"
		"\n"
		"host;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/iot/aws4_request"
		", SignedHeaders=host;x-amz-date"
		", Signature=397d26f60e4027608a3f7d20a0bd36e2f037f440181a90a91ed4e15a29c0bf05",
	},
	{
		"execute-api", "GET", "/endpoint?endpointType=iot%3AData-ATS",
		{{"X-Amz-Date", "20240517T103000Z"}, {"Host", "127.0.0.1:8443"}},
		2,
		"",
		"GET\n"
		"/endpoint\n"
		"endpointType=iot%3AData-ATS\n"
		"host:127.0.0.1:8443\n"
		"x-amz-date:20240517T103000Z\n"
		"\n"
		"host;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/execute-api/aws4_request"
		", SignedHeaders=host;x-amz-date"
		", Signature=a6c4f5428c8185fe3efa779628d6a8304fa59d2d53f7ffb76d39c51f8c54eee9",
	},
	{
		"iot", "GET", "/things/a%3Ab",
		{{"X-Amz-Date", "20240517T103000Z"}, {"Host", "127.0.0.1:8443"}},
		2,
		"",
		"GET\n"
		"/things/a%253Ab\n"
		"\n"
		"host:127.0.0.1:8443\n"
		"x-amz-date:20240517T103000Z\n"
		"\n"
		"host;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/iot/aws4_request"
		", SignedHeaders=host;x-amz-date"
		", Signature=f86ad73dff0f23409f1fe1abebbd57ef462afa2cd0d3d27d58e4ed99d3b9dea5",
	},
	{
		"execute-api", "GET", "/things?maxResults=5&attributeName=color%20name&attributeValue=dark%20blue&nextToken=abc%2Bdef%3D&attributeName=a",
		{{"X-Amz-Date", "20240517T103000Z"}, {"Host", "localhost:8443"}},
		2,
		"",
		"GET\n"
		"/things\n"
		"attributeName=a&attributeName=color%20name&attributeValue=dark%20blue&maxResults=5&nextToken=abc%2Bdef%3D\n"
		"host:localhost:8443\n"
		"x-amz-date:20240517T103000Z\n"
		"\n"
		"host;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/execute-api/aws4_request"
		", SignedHeaders=host;x-amz-date"
		", Signature=dcb54407594841c3fe62aca91d12fa763bd4804f70388278ee311a594e5c019b",
	},
	{
		"iot", "POST", "/things/pump-1",
		{{"Content-Type", "application/x-amz-json-1.0"}, {"X-Amz-Date", "20240517T103000Z"}, {"Host", "127.0.0.1:8443"}},
		3,
		"{\"attributePayload\": {\"attributes\": {\"room\": \"b 12\"}}}",
		"POST\n"
		"/things/pump-1\n"
		"\n"
		"content-type:application/x-amz-json-1.0\n"
		"host:127.0.0.1:8443\n"
		"x-amz-date:20240517T103000Z\n"
		"\n"
		"content-type;host;x-amz-date\n"
		"0b9c720dbba08215f2d973b448629ae7fa4887b8f7fa3098b011a3a705fef110",
		"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/iot/aws4_request"
		", SignedHeaders=content-type;host;x-amz-date"
		", Signature=7ee1481b3620761d536d94d579700861384c25cded7fd606615fb11c49a31ac8",
	},
	{
		"execute-api", "PUT", "/things/pump%3A1/principals",
		{{"x-amzn-principal", "arn:aws:iot:us-east-1:123456789012:cert/ab12"}, {"X-Custom", "  a   b  "}, {"X-Amz-Date", "20240517T103000Z"}, {"Host", "[::1]:8443"}},
		4,
		"",
		"PUT\n"
		"/things/pump%253A1/principals\n"
		"\n"
		"host:[::1]:8443\n"
		"x-amz-date:20240517T103000Z\n"
		"x-amzn-principal:arn:aws:iot:us-east-1:123456789012:cert/ab12\n"
		"x-custom:a b\n"
		"\n"
		"host;x-amz-date;x-amzn-principal;x-custom\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/execute-api/aws4_request"
		", SignedHeaders=host;x-amz-date;x-amzn-principal;x-custom"
		", Signature=abdf7bf7718e0909bea36ef536a70b489efa69834000f42dd2598289e176179f",
	},
	{
		"iot", "POST", "/attached-policies/arn%3Aaws%3Aiot%3Aus-east-1%3A123456789012%3Acert%2Fab12?recursive=false",
		{{"X-Amz-Date", "20240517T103000Z"}, {"Host", "127.0.0.1:8443"}},
		2,
		"",
		"POST\n"
		"/attached-policies/arn%253Aaws%253Aiot%253Aus-east-1%253A123456789012%253Acert%252Fab12\n"
		"recursive=false\n"
		"host:127.0.0.1:8443\n"
		"x-amz-date:20240517T103000Z\n"
		"\n"
		"host;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/iot/aws4_request"
		", SignedHeaders=host;x-amz-date"
		", Signature=6db78e9b8b087b0141032ba9c99331f5a1230054b7f256888062792e4ad21262",
	},
	{
		"iot", "GET", "/a/./b/../c//d/",
		{{"X-Amz-Date", "20240517T103000Z"}, {"Host", "127.0.0.1:8443"}},
		2,
		"",
		"GET\n"
		"/a/c/d/\n"
		"\n"
		"host:127.0.0.1:8443\n"
		"x-amz-date:20240517T103000Z\n"
		"\n"
		"host;x-amz-date\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/iot/aws4_request"
		", SignedHeaders=host;x-amz-date"
		", Signature=3a0d788d725b9b7039ef02ae6ecc6cd1fa0b442dfea9172f6746c5273df4c1e7",
	},
	{
		"iot", "DELETE", "/things/x?expectedVersion=3",
		{{"Date", "Fri, 17 May 2024 10:30:00 -0000"}, {"Host", "127.0.0.1:8443"}},
		2,
		"",
		"DELETE\n"
		"/things/x\n"
		"expectedVersion=3\n"
		"date:Fri, 17 May 2024 10:30:00 -0000\n"
		"host:127.0.0.1:8443\n"
		"\n"
		"date;host\n"
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240517/us-east-1/iot/aws4_request"
		", SignedHeaders=date;host"
		", Signature=daea0b54e7996250df4740349ecc448325f567075b90561e65d6a892a2bfedec",
	},
};

#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

/* The request of a vector, with the Authorization header added. */
static void make_request(const struct vector *v, struct sigv4_header *hbuf,
                         struct sigv4_request *req)
{
	memcpy(hbuf, v->headers, v->nheaders * sizeof(*hbuf));
	hbuf[v->nheaders].name = "Authorization";
	hbuf[v->nheaders].value = v->authorization;
	req->method = v->method;
	req->target = v->target;
	req->headers = hbuf;
	req->nheaders = v->nheaders + 1;
	req->body = v->body;
	req->body_len = strlen(v->body);
}

static void test_botocore_vectors_verify(void **state)
{
	(void)state;
	for (size_t i = 0; i < NVECTORS; i++) {
		const struct vector *v = &vectors[i];
		struct sigv4_header h[8];
		struct sigv4_request req;
		struct sigv4_auth a;
		struct iotp_err err;
		char amzdate[17];
		int64_t t = 0;
		struct buf cr;

		make_request(v, h, &req);
		assert_int_equal(sigv4_parse_authorization(v->authorization, &a, &err), IOTP_OK);
		assert_string_equal(a.key_id, KEY_ID);
		assert_string_equal(a.service, v->service);
		assert_string_equal(a.region, "us-east-1");
		assert_string_equal(a.date, "20240517");
		assert_int_equal(sigv4_request_time(&req, amzdate, &t, &err), IOTP_OK);
		assert_string_equal(amzdate, "20240517T103000Z");
		assert_int_equal(t, SIGNED_AT);

		buf_init(&cr, SIGV4_CANONICAL_MAX);
		assert_int_equal(sigv4_canonical_request(&req, &a, &cr, &err), IOTP_OK);
		assert_string_equal(cr.data, v->canonical);
		buf_cleanup(&cr);

		assert_int_equal(sigv4_check_scope(&a, amzdate, t, "us-east-1", SIGNED_AT + 60, 900,
		                                   &err),
		                 IOTP_OK);
		if (sigv4_verify(&req, &a, amzdate, SECRET, &err) != IOTP_OK)
			fail_msg("vector %zu (%s %s): %s", i, v->method, v->target, err.msg);
	}
}

static void test_botocore_vectors_sign(void **state)
{
	(void)state;
	for (size_t i = 0; i < NVECTORS; i++) {
		const struct vector *v = &vectors[i];
		struct sigv4_request req = {v->method, v->target, v->headers, v->nheaders, v->body,
		                            strlen(v->body)};
		struct iotp_err err;
		char out[SIGV4_AUTH_HEADER_MAX];

		assert_int_equal(sigv4_sign(&req, KEY_ID, SECRET, "us-east-1", v->service,
		                            "20240517T103000Z", out, sizeof(out), &err),
		                 IOTP_OK);
		assert_string_equal(out, v->authorization);
	}
}

/* Verifies a modified copy of vector i; returns the rc. */
static iotp_rc verify_modified(size_t i, const char *target, const char *body,
                               const char *secret, const char *extra_name,
                               const char *extra_value, struct iotp_err *err)
{
	const struct vector *v = &vectors[i];
	struct sigv4_header h[8];
	struct sigv4_request req;
	struct sigv4_auth a;
	char amzdate[17];
	int64_t t;

	make_request(v, h, &req);
	if (target != NULL)
		req.target = target;
	if (body != NULL) {
		req.body = body;
		req.body_len = strlen(body);
	}
	if (extra_name != NULL) {
		h[req.nheaders].name = extra_name;
		h[req.nheaders].value = extra_value;
		req.nheaders++;
	}
	assert_int_equal(sigv4_parse_authorization(v->authorization, &a, err), IOTP_OK);
	assert_int_equal(sigv4_request_time(&req, amzdate, &t, err), IOTP_OK);
	return sigv4_verify(&req, &a, amzdate, secret != NULL ? secret : SECRET, err);
}

static int has_hex64(const char *s)
{
	size_t run = 0;

	for (; *s != '\0'; s++) {
		run = ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')) ? run + 1 : 0;
		if (run >= 64)
			return 1;
	}
	return 0;
}

static void test_tampered_requests_refused(void **state)
{
	struct iotp_err err;

	(void)state;
	/* vector 4 is the POST with a body */
	assert_int_equal(verify_modified(4, NULL, NULL, NULL, NULL, NULL, &err), IOTP_OK);
	assert_int_equal(verify_modified(4, NULL, "{\"attributePayload\": {\"attributes\": "
	                                          "{\"room\": \"b 13\"}}}",
	                                 NULL, NULL, NULL, &err),
	                 IOTP_ERR_SIGNATURE);
	assert_null(strstr(err.msg, SECRET));
	assert_false(has_hex64(err.msg)); /* never echoes the expected signature */
	assert_int_equal(verify_modified(4, NULL, "", NULL, NULL, NULL, &err), IOTP_ERR_SIGNATURE);
	assert_int_equal(verify_modified(4, "/things/pump-2", NULL, NULL, NULL, NULL, &err),
	                 IOTP_ERR_SIGNATURE);
	/* wrong secret */
	assert_int_equal(verify_modified(0, NULL, NULL, "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEZ",
	                                 NULL, NULL, &err),
	                 IOTP_ERR_SIGNATURE);
	/* query value changed, parameter added */
	assert_int_equal(verify_modified(0, "/endpoint?endpointType=iot%3AData", NULL, NULL, NULL,
	                                 NULL, &err),
	                 IOTP_ERR_SIGNATURE);
	assert_int_equal(verify_modified(0, "/endpoint?endpointType=iot%3AData-ATS&x=1", NULL, NULL,
	                                 NULL, NULL, &err),
	                 IOTP_ERR_SIGNATURE);
	/* the same query re-ordered and differently (but equivalently) encoded
	 * still verifies: the canonical form is what is signed */
	assert_int_equal(verify_modified(3,
	                                 "/things?attributeName=a&nextToken=abc%2bdef%3d&"
	                                 "attributeValue=dark%20blue&maxResults=5&"
	                                 "attributeName=color%20name",
	                                 NULL, NULL, NULL, NULL, &err),
	                 IOTP_OK);
	/* %3A decoded on the wire is another path */
	assert_int_equal(verify_modified(2, "/things/a:b", NULL, NULL, NULL, NULL, &err),
	                 IOTP_ERR_SIGNATURE);
	/* a body hash header that lies about the body */
	assert_int_equal(verify_modified(4, NULL, NULL, NULL, "x-amz-content-sha256",
	                                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
	                                 "7852b855",
	                                 &err),
	                 IOTP_ERR_SIGNATURE);
	assert_non_null(strstr(err.msg, "x-amz-content-sha256"));
	/* ... and one that tells the truth changes nothing */
	assert_int_equal(verify_modified(4, NULL, NULL, NULL, "X-Amz-Content-Sha256",
	                                 "0b9c720dbba08215f2d973b448629ae7fa4887b8f7fa3098b011a3a7"
	                                 "05fef110",
	                                 &err),
	                 IOTP_OK);
}

static void test_missing_signed_header(void **state)
{
	const struct vector *v = &vectors[4];
	struct sigv4_header h[2] = {{"X-Amz-Date", "20240517T103000Z"}, {"Host", "127.0.0.1:8443"}};
	struct sigv4_request req = {v->method, v->target, h, 2, v->body, strlen(v->body)};
	struct sigv4_auth a;
	struct iotp_err err;

	(void)state;
	assert_int_equal(sigv4_parse_authorization(v->authorization, &a, &err), IOTP_OK);
	assert_int_equal(sigv4_verify(&req, &a, "20240517T103000Z", SECRET, &err),
	                 IOTP_ERR_SIGNATURE);
	assert_non_null(strstr(err.msg, "content-type"));
}

static void test_scope_and_clock(void **state)
{
	struct sigv4_auth a;
	struct iotp_err err;
	const char *d = "20240517T103000Z";

	(void)state;
	assert_int_equal(sigv4_parse_authorization(vectors[0].authorization, &a, &err), IOTP_OK);
	assert_int_equal(sigv4_check_scope(&a, d, SIGNED_AT, "us-east-1", SIGNED_AT + 900, 900, &err),
	                 IOTP_OK);
	assert_int_equal(sigv4_check_scope(&a, d, SIGNED_AT, "us-east-1", SIGNED_AT - 900, 900, &err),
	                 IOTP_OK);
	assert_int_equal(sigv4_check_scope(&a, d, SIGNED_AT, "us-east-1", SIGNED_AT + 901, 900, &err),
	                 IOTP_ERR_SIGNATURE);
	assert_non_null(strstr(err.msg, "Signature expired"));
	assert_int_equal(sigv4_check_scope(&a, d, SIGNED_AT, "us-east-1", SIGNED_AT - 901, 900, &err),
	                 IOTP_ERR_SIGNATURE);
	assert_non_null(strstr(err.msg, "not yet current"));
	assert_int_equal(sigv4_check_scope(&a, d, SIGNED_AT, "eu-west-1", SIGNED_AT, 900, &err),
	                 IOTP_ERR_SIGNATURE);
	assert_non_null(strstr(err.msg, "region"));
	/* the scope date must be the request's date */
	assert_int_equal(sigv4_check_scope(&a, "20240518T000500Z", SIGNED_AT + 48300, "us-east-1",
	                                   SIGNED_AT + 48300, 900, &err),
	                 IOTP_ERR_SIGNATURE);
	/* only iot and execute-api are accepted */
	memcpy(a.service, "s3", 3);
	assert_int_equal(sigv4_check_scope(&a, d, SIGNED_AT, "us-east-1", SIGNED_AT, 900, &err),
	                 IOTP_ERR_SIGNATURE);
	assert_non_null(strstr(err.msg, "service"));
}

static void test_bad_authorization_syntax(void **state)
{
	static const char *const bad[] = {
		"",
		"AWS4-HMAC-SHA256",
		"AWS4-HMAC-SHA256 ",
		"AWS4-HMAC-SHA1 Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000"
		"000000000000",
		"AWS4-HMAC-SHA256Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000"
		"000000000000",
		/* missing Signature */
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=host",
		/* Credential twice */
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"Credential=AKID/20240517/us-east-1/iot/aws4_request, SignedHeaders=host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		/* four and six scope parts */
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/aws4_request, SignedHeaders=host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/x/aws4_request, "
		"SignedHeaders=host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		/* bad date, bad terminator, empty key id, key id with a slash-free junk */
		"AWS4-HMAC-SHA256 Credential=AKID/2024051/us-east-1/iot/aws4_request, SignedHeaders=host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_requesx, "
		"SignedHeaders=host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=/20240517/us-east-1/iot/aws4_request, SignedHeaders=host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AK-D/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/US-EAST-1/iot/aws4_request, "
		"SignedHeaders=host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		/* signed headers: uppercase, unsorted, duplicate, without host, empty */
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=Host;x-amz-date, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=x-amz-date;host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=host;host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=x-amz-date, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=host;;x-amz-date, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		/* signature: short, uppercase, not hex */
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=host, Signature=00000000",
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=host, "
		"Signature=ABCDEF0000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=host, "
		"Signature=g000000000000000000000000000000000000000000000000000000000000000",
		/* unknown parameter, missing separator, no '=' */
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_request, "
		"SignedHeaders=host, Foo=bar, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential=AKID/20240517/us-east-1/iot/aws4_request "
		"SignedHeaders=host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
		"AWS4-HMAC-SHA256 Credential, SignedHeaders=host, "
		"Signature=0000000000000000000000000000000000000000000000000000000000000000",
	};
	struct sigv4_auth a;
	struct iotp_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sigv4_parse_authorization(bad[i], &a, &err) != IOTP_ERR_AUTH)
			fail_msg("accepted malformed header #%zu: %s", i, bad[i]);
		assert_true(err.msg[0] != '\0');
	}
	assert_int_equal(sigv4_parse_authorization(NULL, &a, &err), IOTP_ERR_AUTH);
	/* parameters in another order, without blanks after commas: fine */
	assert_int_equal(sigv4_parse_authorization(
	                     "AWS4-HMAC-SHA256 Signature=0000000000000000000000000000000000000000"
	                     "000000000000000000000000,SignedHeaders=host,Credential=AKID/20240517/"
	                     "us-east-1/execute-api/aws4_request",
	                     &a, &err),
	                 IOTP_OK);
	assert_string_equal(a.service, "execute-api");
	assert_int_equal(a.nsigned, 1);
	{
		char big[SIGV4_AUTH_HEADER_MAX + 100];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		memcpy(big, "AWS4-HMAC-SHA256 ", 17);
		assert_int_equal(sigv4_parse_authorization(big, &a, &err), IOTP_ERR_AUTH);
	}
}

static void test_request_time_formats(void **state)
{
	struct sigv4_header h[1];
	struct sigv4_request req = {"GET", "/", h, 1, "", 0};
	struct iotp_err err;
	char d[17];
	int64_t t;
	static const char *const bad_amz[] = {"20240517T103000", "20240517 103000Z",
	                                      "20240231T103000Z", "20241317T103000Z",
	                                      "20240517T246000Z", "2024051aT103000Z", ""};
	static const char *const bad_date[] = {"Fri, 17 May 2024 10:30:00 CET",
	                                       "Fri, 17 Mai 2024 10:30:00 GMT",
	                                       "Fri 17 May 2024 10:30:00 GMT",
	                                       "Friday, 17-May-24 10:30:00 GMT"};

	(void)state;
	h[0].name = "x-amz-date";
	for (size_t i = 0; i < sizeof(bad_amz) / sizeof(bad_amz[0]); i++) {
		h[0].value = bad_amz[i];
		assert_int_equal(sigv4_request_time(&req, d, &t, &err), IOTP_ERR_AUTH);
	}
	h[0].name = "Date";
	for (size_t i = 0; i < sizeof(bad_date) / sizeof(bad_date[0]); i++) {
		h[0].value = bad_date[i];
		assert_int_equal(sigv4_request_time(&req, d, &t, &err), IOTP_ERR_AUTH);
	}
	h[0].value = "Fri, 17 May 2024 10:30:00 GMT";
	assert_int_equal(sigv4_request_time(&req, d, &t, &err), IOTP_OK);
	assert_int_equal(t, SIGNED_AT);
	assert_string_equal(d, "20240517T103000Z");
	h[0].value = "Fri, 17 May 2024 10:30:00 +0000";
	assert_int_equal(sigv4_request_time(&req, d, &t, &err), IOTP_OK);
	assert_int_equal(t, SIGNED_AT);
	h[0].name = "X-Other";
	assert_int_equal(sigv4_request_time(&req, d, &t, &err), IOTP_ERR_AUTH);
}

static void check_uri(const char *path, const char *expect)
{
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(sigv4_canonical_uri(path, strlen(path), &b), IOTP_OK);
	assert_non_null(b.data);
	assert_string_equal(b.data, expect);
	buf_cleanup(&b);
}

static void check_query(const char *q, const char *expect)
{
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(buf_puts(&b, ""), IOTP_OK);
	assert_int_equal(sigv4_canonical_query(q, strlen(q), &b), IOTP_OK);
	assert_string_equal(b.data, expect);
	buf_cleanup(&b);
}

static void test_canonical_uri_and_query(void **state)
{
	(void)state;
	check_uri("", "/");
	check_uri("/", "/");
	check_uri("/things/a%3Ab", "/things/a%253Ab");
	check_uri("/a b/c+d", "/a%20b/c%2Bd");
	check_uri("/~x_y-z.1", "/~x_y-z.1");
	check_uri("/%7E", "/%257E");
	check_uri("/a/../../b", "/b");
	check_uri("/..", "/");
	check_uri("//a//b//", "/a/b/");
	check_uri("/\xc3\xa9", "/%C3%A9");

	check_query("b=2&a=1", "a=1&b=2");
	check_query("a=%7e", "a=~");
	check_query("setAsActive", "setAsActive=");
	check_query("a=x+y", "a=x%2By");
	check_query("a=%zz&b=%4", "a=%25zz&b=%254");
	check_query("a=1&a=0", "a=0&a=1");
	check_query("a=b=c", "a=b%3Dc");
	check_query("A=1&a=1&_=1", "A=1&_=1&a=1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_botocore_vectors_verify),
		cmocka_unit_test(test_botocore_vectors_sign),
		cmocka_unit_test(test_tampered_requests_refused),
		cmocka_unit_test(test_missing_signed_header),
		cmocka_unit_test(test_scope_and_clock),
		cmocka_unit_test(test_bad_authorization_syntax),
		cmocka_unit_test(test_request_time_formats),
		cmocka_unit_test(test_canonical_uri_and_query),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
