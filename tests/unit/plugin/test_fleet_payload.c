/*
 * Unit tests of the broker plugin's payload codec (src/plugin/fleet_payload.c,
 * compiled in here since the plugin is a module, not a library): the create
 * replies written by hand (they carry a private key and must decode exactly
 * as the jansson/libcbor path would), CBOR requests with a duplicate key
 * refused as JSON ones are, and a decoded token released.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/fleet_payload.c"

static const char key_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n"
	"-----END PRIVATE KEY-----\n";

static const char *const reply_kv[] = {
	"certificateId", "0123abcd", "certificatePem", "-----BEGIN CERTIFICATE-----\nMII\n",
	"privateKey", key_pem, "certificateOwnershipToken", "tok\"en\\1",
};

static void check_reply(const json_t *o)
{
	assert_true(json_is_object(o));
	assert_int_equal(json_object_size(o), 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(json_string_value(json_object_get(o, reply_kv[2 * i])),
		                    reply_kv[2 * i + 1]);
}

static void test_create_reply_json_and_cbor(void **state)
{
	struct fleet_topic t;
	struct iotp_err err;
	void *out = NULL;
	size_t len = 0;
	json_t *o;

	(void)state;
	assert_true(fleet_topic_parse("$aws/certificates/create/json", &t));
	assert_int_equal(fleet_encode_strings(t.fmt, reply_kv, 4, &out, &len, &err), IOTP_OK);
	o = json_loadb(out, len, JSON_REJECT_DUPLICATES, NULL);
	check_reply(o);
	json_decref(o);
	free(out);

	assert_true(fleet_topic_parse("$aws/certificates/create/cbor", &t));
	assert_int_equal(fleet_encode_strings(t.fmt, reply_kv, 4, &out, &len, &err), IOTP_OK);
	o = NULL;
	assert_int_equal(fleet_cbor_to_json(out, len, &o, &err), IOTP_OK);
	check_reply(o);
	/* the same bytes the general encoder produces for that object */
	{
		void *gen = NULL;
		size_t glen = 0;
		json_t *back = NULL;

		assert_int_equal(fleet_encode(FLEET_CBOR, o, &gen, &glen, &err), IOTP_OK);
		assert_int_equal(fleet_cbor_to_json(gen, glen, &back, &err), IOTP_OK);
		assert_true(json_equal(back, o));
		json_decref(back);
		free(gen);
	}
	json_decref(o);
	free(out);
}

static void test_cbor_duplicate_key_refused(void **state)
{
	/* {"certificateOwnershipToken": "a", "certificateOwnershipToken": "b"} */
	static const char name[] = "certificateOwnershipToken";
	unsigned char p[64];
	size_t n = 0;
	struct fleet_topic t;
	struct fleet_request r;
	struct iotp_err err;

	(void)state;
	p[n++] = 0xa2;
	for (int i = 0; i < 2; i++) {
		p[n++] = 0x78; /* text string, one length byte follows */
		p[n++] = (unsigned char)(sizeof(name) - 1);
		memcpy(p + n, name, sizeof(name) - 1);
		n += sizeof(name) - 1;
		p[n++] = 0x61;
		p[n++] = (unsigned char)('a' + i);
	}
	assert_true(fleet_topic_parse("$aws/provisioning-templates/fleet-1/provision/cbor", &t));
	memset(&r, 0, sizeof(r));
	assert_int_equal(fleet_request_decode(&t, p, n, &r, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "duplicate"));
	/* the same map with one member decodes, and the token is released */
	p[0] = 0xa1;
	n = 1 + 2 + (sizeof(name) - 1) + 2;
	assert_int_equal(fleet_request_decode(&t, p, n, &r, &err), IOTP_OK);
	assert_string_equal(r.token, "a");
	fleet_request_cleanup(&r);
	assert_null(r.token);
}

/* Integers go out in the fewest bytes: an array of 2,000 zeros (2,003
 * bytes of CBOR) encodes back to 2,003 bytes and decodes to the same value;
 * with 9-byte integers it would pass FLEET_PAYLOAD_MAX and be refused (a
 * fuzz_mqtt_payload finding). Values at each width boundary round-trip. */
static void test_cbor_integers_minimal(void **state)
{
	static const json_int_t edges[] = {0, 23, 24, 255, 256, 65535, 65536, 4294967295LL,
	                                   4294967296LL, INT64_MAX, -1, -24, -25, -256, -257,
	                                   -65536, -65537, -4294967296LL, -4294967297LL, INT64_MIN};
	unsigned char in[2003];
	json_t *j = NULL, *back = NULL, *arr;
	void *out = NULL;
	size_t len = 0;
	struct iotp_err err;

	(void)state;
	memset(in, 0, sizeof(in));
	in[0] = 0x99; /* array, 2-byte length */
	in[1] = 0x07;
	in[2] = 0xd0;
	assert_int_equal(fleet_cbor_to_json(in, sizeof(in), &j, &err), IOTP_OK);
	assert_int_equal(fleet_encode(FLEET_CBOR, j, &out, &len, &err), IOTP_OK);
	assert_int_equal(len, sizeof(in));
	assert_memory_equal(out, in, sizeof(in));
	assert_int_equal(fleet_cbor_to_json(out, len, &back, &err), IOTP_OK);
	assert_true(json_equal(j, back));
	json_decref(j);
	json_decref(back);
	free(out);

	arr = json_array();
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		json_array_append_new(arr, json_integer(edges[i]));
	assert_int_equal(fleet_encode(FLEET_CBOR, arr, &out, &len, &err), IOTP_OK);
	/* header 1 + 0,23: 1 each; 24,255: 2; 256,65535: 3; 65536,2^32-1: 5;
	 * 2^32,INT64_MAX: 9; and the same for the negatives */
	assert_int_equal(len, 1 + 2 * (1 + 1 + 2 + 2 + 3 + 3 + 5 + 5 + 9 + 9));
	assert_int_equal(fleet_cbor_to_json(out, len, &back, &err), IOTP_OK);
	assert_true(json_equal(arr, back));
	json_decref(arr);
	json_decref(back);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_reply_json_and_cbor),
		cmocka_unit_test(test_cbor_duplicate_key_refused),
		cmocka_unit_test(test_cbor_integers_minimal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
