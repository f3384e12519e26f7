/*
 * Fleet-provisioning payloads in JSON and CBOR: requests decode to what
 * the service expects (checked with libcbor, an independent decoder),
 * replies built by libcbor or by hand decode to the same results as their
 * JSON twins, and hostile or broken replies are refused without crashing
 * (truncations, lying lengths, deep nesting, duplicate keys, a certificate
 * id that is not the certificate's, a private key where none was asked).
 */
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <jansson.h>

#include "device/dev.h"
#include "helpers.h"

static char *cert_pem;
static char cert_id[65];

static int setup(void **state)
{
	EVP_PKEY *k = NULL;
	X509 *x = NULL;

	(void)state;
	if (pki_key_generate(PKI_KEY_EC_P256, &k, NULL) != IOTP_OK)
		return -1;
	cert_pem = th_issue(k, "codec-device");
	if (pki_cert_parse(cert_pem, strlen(cert_pem), &x, NULL) != IOTP_OK ||
	    pki_cert_id(x, cert_id, NULL) != IOTP_OK)
		return -1;
	X509_free(x);
	EVP_PKEY_free(k);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(cert_pem);
	return 0;
}

/* A CBOR map of text pairs (NULL-terminated list) via libcbor. */
static unsigned char *cbor_map(size_t *len, const char *const *kv, int status)
{
	size_t n = 0, i;
	cbor_item_t *m;
	unsigned char *out = NULL;
	size_t size = 0;

	while (kv[n] != NULL)
		n += 2;
	m = cbor_new_definite_map(n / 2 + (status ? 1 : 0));
	for (i = 0; i < n; i += 2) {
		struct cbor_pair p = { cbor_move(cbor_build_string(kv[i])),
		                       cbor_move(cbor_build_string(kv[i + 1])) };

		assert_true(cbor_map_add(m, p));
	}
	if (status) {
		struct cbor_pair p = { cbor_move(cbor_build_string("statusCode")),
		                       cbor_move(cbor_build_uint16((uint16_t)status)) };

		assert_true(cbor_map_add(m, p));
	}
	*len = cbor_serialize_alloc(m, &out, &size);
	cbor_decref(&m);
	assert_true(*len > 0);
	return out;
}

static void test_csr_request(void **state)
{
	static const char csr[] = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n"
	                          "-----END CERTIFICATE REQUEST-----\n";
	uint8_t *out = NULL;
	size_t len = 0;
	json_t *j;
	struct cbor_load_result res;
	cbor_item_t *item;

	(void)state;
	assert_int_equal(fp_encode_csr_request(IOTP_FP_JSON, csr, strlen(csr), &out, &len, NULL),
	                 IOTP_OK);
	j = json_loadb((char *)out, len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "certificateSigningRequest")), csr);
	json_decref(j);
	free(out);

	assert_int_equal(fp_encode_csr_request(IOTP_FP_CBOR, csr, strlen(csr), &out, &len, NULL),
	                 IOTP_OK);
	item = cbor_load(out, len, &res);
	assert_non_null(item);
	assert_int_equal(res.read, len);
	assert_true(cbor_isa_map(item));
	assert_int_equal(cbor_map_size(item), 1);
	{
		struct cbor_pair *p = cbor_map_handle(item);

		assert_int_equal(cbor_string_length(p[0].key), strlen("certificateSigningRequest"));
		assert_memory_equal(cbor_string_handle(p[0].key), "certificateSigningRequest", 25);
		assert_int_equal(cbor_string_length(p[0].value), strlen(csr));
		assert_memory_equal(cbor_string_handle(p[0].value), csr, strlen(csr));
	}
	cbor_decref(&item);
	free(out);
}

static void test_register_request(void **state)
{
	struct iotp_param params[] = { { "SerialNumber", "sn-1" }, { "Color", "blue" } };
	struct iotp_param dup[] = { { "A", "1" }, { "A", "2" } };
	uint8_t *out = NULL;
	size_t len = 0, i;
	json_t *j, *p;
	struct cbor_load_result res;
	cbor_item_t *item;

	(void)state;
	assert_int_equal(fp_encode_register_request(IOTP_FP_JSON, "tok", params, 2, &out, &len, NULL),
	                 IOTP_OK);
	j = json_loadb((char *)out, len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "certificateOwnershipToken")), "tok");
	p = json_object_get(j, "parameters");
	assert_string_equal(json_string_value(json_object_get(p, "SerialNumber")), "sn-1");
	assert_string_equal(json_string_value(json_object_get(p, "Color")), "blue");
	json_decref(j);
	free(out);

	assert_int_equal(fp_encode_register_request(IOTP_FP_CBOR, "tok", params, 2, &out, &len, NULL),
	                 IOTP_OK);
	item = cbor_load(out, len, &res);
	assert_non_null(item);
	assert_int_equal(cbor_map_size(item), 2);
	for (i = 0; i < 2; i++) {
		struct cbor_pair *pr = &cbor_map_handle(item)[i];

		if (cbor_string_length(pr->key) == 10) { /* "parameters" */
			assert_true(cbor_isa_map(pr->value));
			assert_int_equal(cbor_map_size(pr->value), 2);
		} else {
			assert_memory_equal(cbor_string_handle(pr->value), "tok", 3);
		}
	}
	cbor_decref(&item);
	free(out);

	assert_int_equal(fp_encode_register_request(IOTP_FP_JSON, "t", dup, 2, &out, &len, NULL),
	                 IOTP_ERR_INVALID);
	assert_int_equal(fp_encode_register_request(IOTP_FP_CBOR, "t", dup, 2, &out, &len, NULL),
	                 IOTP_ERR_INVALID);
}

static void test_cert_accepted_both_formats(void **state)
{
	const char *kv[] = { "certificateId", cert_id, "certificatePem", cert_pem,
	                     "certificateOwnershipToken", "secret-token", NULL };
	struct iotp_fleet_cert c;
	unsigned char *cb;
	size_t cl;
	char *js;

	(void)state;
	js = NULL;
	{
		json_t *o = json_pack("{s:s,s:s,s:s}", kv[0], kv[1], kv[2], kv[3], kv[4], kv[5]);

		js = json_dumps(o, 0);
		json_decref(o);
	}
	assert_int_equal(fp_decode_cert_accepted(IOTP_FP_JSON, js, strlen(js), 0, &c, NULL), IOTP_OK);
	assert_string_equal(c.cert_id, cert_id);
	assert_string_equal(c.token, "secret-token");
	assert_string_equal(c.cert_pem, cert_pem);
	assert_null(c.private_key_pem);
	iotp_fleet_cert_cleanup(&c);
	/* create (want_key) without a key is incomplete. */
	assert_int_equal(fp_decode_cert_accepted(IOTP_FP_JSON, js, strlen(js), 1, &c, NULL),
	                 IOTP_ERR_INVALID);
	free(js);

	cb = cbor_map(&cl, kv, 0);
	assert_int_equal(fp_decode_cert_accepted(IOTP_FP_CBOR, cb, cl, 0, &c, NULL), IOTP_OK);
	assert_string_equal(c.cert_id, cert_id);
	assert_string_equal(c.token, "secret-token");
	iotp_fleet_cert_cleanup(&c);
	/* The same bytes are not JSON, and one byte short is not CBOR. */
	assert_int_not_equal(fp_decode_cert_accepted(IOTP_FP_JSON, cb, cl, 0, &c, NULL), IOTP_OK);
	assert_int_equal(fp_decode_cert_accepted(IOTP_FP_CBOR, cb, cl - 1, 0, &c, NULL),
	                 IOTP_ERR_INVALID);
	free(cb);
}

static void test_cert_accepted_refusals(void **state)
{
	struct iotp_fleet_cert c;
	struct iotp_err err;
	char wrong_id[65];
	json_t *o;
	char *js;

	(void)state;
	memset(wrong_id, 'a', 64);
	wrong_id[64] = '\0';
	/* An id that is not the certificate's. */
	o = json_pack("{s:s,s:s,s:s}", "certificateId", wrong_id, "certificatePem", cert_pem,
	              "certificateOwnershipToken", "t");
	js = json_dumps(o, 0);
	assert_int_equal(fp_decode_cert_accepted(IOTP_FP_JSON, js, strlen(js), 0, &c, &err),
	                 IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "does not match"));
	free(js);
	json_decref(o);
	/* A private key in the reply to a CSR. */
	o = json_pack("{s:s,s:s,s:s,s:s}", "certificateId", cert_id, "certificatePem", cert_pem,
	              "certificateOwnershipToken", "t", "privateKey", "-----BEGIN PRIVATE KEY-----");
	js = json_dumps(o, 0);
	assert_int_equal(fp_decode_cert_accepted(IOTP_FP_JSON, js, strlen(js), 0, &c, &err),
	                 IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "private key"));
	free(js);
	json_decref(o);
	/* Short id, upper-case id, missing token, non-string, not a map. */
	assert_int_equal(fp_decode_cert_accepted(IOTP_FP_JSON,
	                                         "{\"certificateId\":\"ab\",\"certificatePem\":\"x\","
	                                         "\"certificateOwnershipToken\":\"t\"}",
	                                         85, 0, &c, NULL),
	                 IOTP_ERR_INVALID);
	assert_int_equal(fp_decode_cert_accepted(IOTP_FP_JSON, "{\"certificateId\":1}", 19, 0, &c,
	                                         NULL),
	                 IOTP_ERR_INVALID);
	assert_int_equal(fp_decode_cert_accepted(IOTP_FP_JSON, "[1,2]", 5, 0, &c, NULL),
	                 IOTP_ERR_INVALID);
	/* Duplicate keys (a second certificateId could smuggle another id). */
	assert_int_equal(fp_decode_cert_accepted(IOTP_FP_JSON,
	                                         "{\"certificateId\":\"a\",\"certificateId\":\"b\"}", 41,
	                                         0, &c, NULL),
	                 IOTP_ERR_INVALID);
}

static void test_register_and_rejected(void **state)
{
	const char *rk[] = { "errorCode", "InvalidCertificateOwnershipToken", "errorMessage",
	                     "token expired", NULL };
	struct iotp_fleet_thing t;
	int status = 0;
	char code[IOTP_ERROR_CODE_MAX], msg[64];
	unsigned char *cb;
	size_t cl;
	static const char js[] =
		"{\"thingName\":\"sensor-9\",\"deviceConfiguration\":{\"fw\":\"1.2\",\"mode\":\"eco\"}}";

	(void)state;
	assert_int_equal(fp_decode_register_accepted(IOTP_FP_JSON, js, strlen(js), &t, NULL), IOTP_OK);
	assert_string_equal(t.thing_name, "sensor-9");
	assert_string_equal(t.device_configuration, "{\"fw\":\"1.2\",\"mode\":\"eco\"}");
	iotp_fleet_thing_cleanup(&t);
	/* No deviceConfiguration: an empty object. A non-string value: refused. */
	assert_int_equal(fp_decode_register_accepted(IOTP_FP_JSON, "{\"thingName\":\"x\"}", 17, &t,
	                                             NULL),
	                 IOTP_OK);
	assert_string_equal(t.device_configuration, "{}");
	iotp_fleet_thing_cleanup(&t);
	assert_int_equal(fp_decode_register_accepted(IOTP_FP_JSON,
	                                             "{\"deviceConfiguration\":{\"a\":[1]}}", 33, &t,
	                                             NULL),
	                 IOTP_ERR_INVALID);

	cb = cbor_map(&cl, rk, 400);
	assert_int_equal(fp_decode_rejected(IOTP_FP_CBOR, cb, cl, &status, code, msg, sizeof(msg), NULL),
	                 IOTP_OK);
	assert_int_equal(status, 400);
	assert_string_equal(code, "InvalidCertificateOwnershipToken");
	assert_string_equal(msg, "token expired");
	free(cb);
	assert_int_equal(fp_decode_rejected(IOTP_FP_JSON,
	                                    "{\"statusCode\":403,\"errorCode\":\"AccessDenied\"}", 45,
	                                    &status, code, msg, sizeof(msg), NULL),
	                 IOTP_OK);
	assert_int_equal(status, 403);
	assert_string_equal(code, "AccessDenied");
	assert_string_equal(msg, "");
	assert_int_equal(fp_decode_rejected(IOTP_FP_JSON, "{\"statusCode\":\"x\"}", 18, &status, code,
	                                    msg, sizeof(msg), NULL),
	                 IOTP_ERR_INVALID);
}

static void test_cbor_hostile(void **state)
{
	/* Each is a broken or hostile reply; none may crash or allocate
	 * according to a lying length. */
	static const struct {
		const char *what;
		const unsigned char *b;
		size_t n;
	} cases[] = {
		{ "empty", (const unsigned char *)"", 0 },
		{ "map of 2^32 pairs", (const unsigned char *)"\xba\xff\xff\xff\xff", 5 },
		{ "text of 2^63 bytes",
		  (const unsigned char *)"\xa1\x7b\x7f\xff\xff\xff\xff\xff\xff\xff", 10 },
		{ "array claims 2^60",
		  (const unsigned char *)"\xa1\x61k\x9b\x10\x00\x00\x00\x00\x00\x00\x00", 12 },
		{ "reserved info", (const unsigned char *)"\xa1\x61k\x1c", 4 },
		{ "unterminated indefinite map", (const unsigned char *)"\xbf\x61k\x61v", 5 },
		{ "break outside container", (const unsigned char *)"\xff", 1 },
		{ "integer key", (const unsigned char *)"\xa1\x01\x02", 3 },
		{ "NUL in text", (const unsigned char *)"\xa1\x61k\x63\x61\x00\x62", 7 },
		{ "bad utf-8", (const unsigned char *)"\xa1\x61k\x62\xc3\x28", 6 },
		{ "duplicate key", (const unsigned char *)"\xa2\x61k\x61v\x61k\x61w", 9 },
		{ "trailing bytes", (const unsigned char *)"\xa0\x00", 2 },
		{ "top-level text", (const unsigned char *)"\x61k", 2 },
		{ "bad chunk in indefinite text", (const unsigned char *)"\xa1\x61k\x7f\x41x\xff", 7 },
	};
	unsigned char deep[80];
	struct iotp_fleet_thing t;
	int status;
	char code[IOTP_ERROR_CODE_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		iotp_rc rc = fp_decode_rejected(IOTP_FP_CBOR, cases[i].b, cases[i].n, &status, code,
		                                NULL, 0, NULL);

		if (rc != IOTP_ERR_INVALID)
			fail_msg("%s: rc %d", cases[i].what, rc);
	}
	/* 40 nested maps: over the depth bound. */
	for (i = 0; i < 40; i++) {
		deep[2 * i] = 0xa1;
		deep[2 * i + 1] = 0x60; /* key "" */
	}
	deep[80 - 1] = 0xa0;
	assert_int_equal(fp_decode_register_accepted(IOTP_FP_CBOR, deep, 80, &t, NULL),
	                 IOTP_ERR_INVALID);
	/* Over the size cap. */
	{
		unsigned char *big = calloc(1, DEV_REPLY_MAX + 1);

		assert_int_equal(fp_decode_rejected(IOTP_FP_CBOR, big, DEV_REPLY_MAX + 1, &status, code,
		                                    NULL, 0, NULL),
		                 IOTP_ERR_TOO_BIG);
		free(big);
	}
}

static void test_cbor_forms(void **state)
{
	/* Indefinite-length map and chunked text, integers, booleans, a
	 * skipped byte string and tag: a tolerant reader of valid CBOR. */
	static const unsigned char m[] = {
		0xbf,                                     /* map (indefinite) */
		0x69, 't', 'h', 'i', 'n', 'g', 'N', 'a', 'm', 'e',
		0x7f, 0x62, 'a', 'b', 0x61, 'c', 0xff,    /* "abc" in chunks */
		0x63, 'b', 'i', 'n', 0x42, 0x01, 0x02,    /* bytes: skipped */
		0x63, 't', 'a', 'g', 0xc1, 0x1a, 0, 0, 0, 1, /* tag 1: skipped */
		0x61, 'n', 0x38, 0x63,                    /* -100 */
		0x61, 'f', 0xf4,                          /* false */
		0x73, 'd', 'e', 'v', 'i', 'c', 'e', 'C', 'o', 'n', 'f', 'i', 'g', 'u', 'r', 'a', 't',
		'i', 'o', 'n', 0xa1, 0x61, 'k', 0x61, 'v',
		0xff,
	};
	struct iotp_fleet_thing t;

	(void)state;
	assert_int_equal(fp_decode_register_accepted(IOTP_FP_CBOR, m, sizeof(m), &t, NULL), IOTP_OK);
	assert_string_equal(t.thing_name, "abc");
	assert_string_equal(t.device_configuration, "{\"k\":\"v\"}");
	iotp_fleet_thing_cleanup(&t);
}

const struct CMUnitTest th_codec_tests[] = {
	cmocka_unit_test_setup_teardown(test_csr_request, setup, teardown),
	cmocka_unit_test_setup_teardown(test_register_request, setup, teardown),
	cmocka_unit_test_setup_teardown(test_cert_accepted_both_formats, setup, teardown),
	cmocka_unit_test_setup_teardown(test_cert_accepted_refusals, setup, teardown),
	cmocka_unit_test_setup_teardown(test_register_and_rejected, setup, teardown),
	cmocka_unit_test_setup_teardown(test_cbor_hostile, setup, teardown),
	cmocka_unit_test_setup_teardown(test_cbor_forms, setup, teardown),
};
const size_t th_codec_count = sizeof(th_codec_tests) / sizeof(th_codec_tests[0]);
