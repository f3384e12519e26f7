/*
 * Unit tests of the shared helpers in src/common that other suites use only
 * in passing: the capped buffer across growth, re-labelled error messages,
 * and the hand-written JSON and CBOR encoders of enc.h (checked by decoding
 * their output with jansson and libcbor, the decoders clients use).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <cmocka.h>
#include <jansson.h>

#include "common/buf.h"
#include "common/enc.h"
#include "common/err.h"

static void test_buf_growth_keeps_content(void **state)
{
	struct buf b;
	char expect[5000];

	(void)state;
	buf_init(&b, sizeof(expect));
	for (size_t i = 0; i < sizeof(expect) - 1; i++) {
		char c = (char)('a' + i % 26);

		expect[i] = c;
		assert_int_equal(buf_append(&b, &c, 1), IOTP_OK);
	}
	expect[sizeof(expect) - 1] = '\0';
	assert_int_equal(b.len, sizeof(expect) - 1);
	assert_string_equal(b.data, expect);
	assert_int_equal(buf_printf(&b, "%s", "x"), IOTP_OK);
	/* one more byte than the cap */
	assert_int_equal(buf_append(&b, "y", 1), IOTP_ERR_TOO_BIG);
	assert_int_equal(b.len, sizeof(expect));
	buf_cleanup_secure(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void test_err_prefix(void **state)
{
	struct iotp_err err;
	char longmsg[IOTP_ERR_MSG_MAX + 10];

	(void)state;
	iotp_err_set(&err, IOTP_ERR_INVALID, "bad base64 character");
	assert_int_equal(iotp_err_prefix(&err, IOTP_ERR_AUTH, "field \"%s\"", "X"), IOTP_ERR_AUTH);
	assert_int_equal(err.rc, IOTP_ERR_AUTH);
	assert_string_equal(err.msg, "field \"X\": bad base64 character");
	/* twice: each layer adds its prefix */
	iotp_err_prefix(&err, IOTP_ERR_INVALID, "msgs[%d]", 2);
	assert_string_equal(err.msg, "msgs[2]: field \"X\": bad base64 character");
	/* an empty previous message adds no ": " */
	iotp_err_clear(&err);
	iotp_err_prefix(&err, IOTP_ERR_IO, "read");
	assert_string_equal(err.msg, "read");
	/* a long message is cut, still terminated */
	memset(longmsg, 'm', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	iotp_err_set(&err, IOTP_ERR_IO, "%s", longmsg);
	iotp_err_prefix(&err, IOTP_ERR_IO, "outer");
	assert_int_equal(strlen(err.msg), IOTP_ERR_MSG_MAX - 1);
	assert_memory_equal(err.msg, "outer: mmm", 10);
	assert_int_equal(iotp_err_prefix(NULL, IOTP_ERR_NOMEM, "x"), IOTP_ERR_NOMEM);
}

static void test_json_strings(void **state)
{
	static const char *const samples[] = {
		"",
		"-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n",
		"quote \" backslash \\ slash /",
		"\x01\x02\x1f tab\t cr\r",
		"caf\xc3\xa9 \xe2\x82\xac",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		const char *kv[] = {"k", samples[i], "second", "v"};
		struct buf b;
		json_error_t jerr;
		json_t *o;

		buf_init(&b, 0);
		assert_int_equal(enc_string_map(&b, 0, kv, 2), IOTP_OK);
		o = json_loads(b.data, JSON_REJECT_DUPLICATES, &jerr);
		assert_non_null(o);
		assert_int_equal(json_object_size(o), 2);
		assert_string_equal(json_string_value(json_object_get(o, "k")), samples[i]);
		assert_string_equal(json_string_value(json_object_get(o, "second")), "v");
		/* no raw control character survives */
		for (size_t j = 0; j < b.len; j++)
			assert_true((unsigned char)b.data[j] >= 0x20);
		json_decref(o);
		buf_cleanup_secure(&b);
	}
}

static void test_cbor_heads_and_maps(void **state)
{
	static const struct {
		uint64_t n;
		size_t len;
		unsigned char first;
	} heads[] = {
		{0, 1, 0x60},          {23, 1, 0x77},          {24, 2, 0x78},
		{255, 2, 0x78},        {256, 3, 0x79},         {65535, 3, 0x79},
		{65536, 5, 0x7a},      {0xffffffffu, 5, 0x7a}, {0x100000000ull, 9, 0x7b},
	};
	struct buf b;
	char *big;
	const char *kv[4];
	struct cbor_load_result res;
	cbor_item_t *it;
	struct cbor_pair *pairs;

	(void)state;
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		buf_init(&b, 0);
		assert_int_equal(enc_cbor_head(&b, 3, heads[i].n), IOTP_OK);
		assert_int_equal(b.len, heads[i].len);
		assert_int_equal((unsigned char)b.data[0], heads[i].first);
		if (heads[i].len > 1) {
			uint64_t v = 0;

			for (size_t j = 1; j < b.len; j++)
				v = v << 8 | (unsigned char)b.data[j];
			assert_true(v == heads[i].n);
		}
		buf_cleanup(&b);
	}
	buf_init(&b, 0);
	assert_int_equal(enc_cbor_head(&b, 8, 1), IOTP_ERR_INVALID);
	/* a map libcbor reads back, with a value over 255 bytes */
	big = malloc(1001);
	assert_non_null(big);
	memset(big, 'k', 1000);
	big[1000] = '\0';
	kv[0] = "privateKey";
	kv[1] = big;
	kv[2] = "id";
	kv[3] = "abc";
	assert_int_equal(enc_string_map(&b, 1, kv, 2), IOTP_OK);
	it = cbor_load((const unsigned char *)b.data, b.len, &res);
	assert_non_null(it);
	assert_int_equal(res.read, b.len);
	assert_true(cbor_isa_map(it) && cbor_map_size(it) == 2);
	pairs = cbor_map_handle(it);
	assert_int_equal(cbor_string_length(pairs[0].key), 10);
	assert_memory_equal(cbor_string_handle(pairs[0].key), "privateKey", 10);
	assert_int_equal(cbor_string_length(pairs[0].value), 1000);
	assert_memory_equal(cbor_string_handle(pairs[0].value), big, 1000);
	assert_memory_equal(cbor_string_handle(pairs[1].value), "abc", 3);
	cbor_decref(&it);
	buf_cleanup_secure(&b);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_growth_keeps_content),
		cmocka_unit_test(test_err_prefix),
		cmocka_unit_test(test_json_strings),
		cmocka_unit_test(test_cbor_heads_and_maps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
