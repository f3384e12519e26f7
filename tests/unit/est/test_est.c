/*
 * Unit tests of the EST codecs (server/est.h): the base64 body decoder
 * (line breaks anywhere, strict padding, size cap, garbage refused), the
 * PKCS#7 certs-only encoder (what openssl and EST clients read back) and
 * the HTTP Basic parser.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "core/pki.h"
#include "server/est.h"

static void test_decode_body(void **state)
{
	static const unsigned char raw[] = {0x30, 0x82, 0x01, 0x02, 0xff, 0x00, 0x7f};
	unsigned char *der = NULL;
	size_t len = 0;
	struct iotp_err err;

	(void)state;
	/* "MIIBAv8Afw==" with line breaks and spaces inside. */
	assert_int_equal(est_decode_body("MIIB\r\nAv8A fw==\n", 16, &der, &len, &err), IOTP_OK);
	assert_int_equal(len, sizeof(raw));
	assert_memory_equal(der, raw, sizeof(raw));
	free(der);
	assert_int_equal(est_decode_body("MIIBAv8Afw", 10, &der, &len, &err), IOTP_OK);
	assert_int_equal(len, sizeof(raw));
	free(der);
	assert_int_equal(est_decode_body("MIIB*v8A", 8, &der, &len, &err), IOTP_ERR_INVALID);
	assert_int_equal(est_decode_body("MIIBA", 5, &der, &len, &err), IOTP_ERR_INVALID);
	assert_int_equal(est_decode_body("MI==IB", 6, &der, &len, &err), IOTP_ERR_INVALID);
	assert_int_equal(est_decode_body("MIIBAv8Afw===", 13, &der, &len, &err), IOTP_ERR_INVALID);
	assert_int_equal(est_decode_body(" \r\n", 3, &der, &len, &err), IOTP_ERR_INVALID);
	{
		size_t big = EST_BODY_MAX + 4;
		char *body = malloc(big);

		memset(body, 'A', big);
		assert_int_equal(est_decode_body(body, big, &der, &len, &err), IOTP_ERR_TOO_BIG);
		free(body);
	}
}

static void test_encode_certs(void **state)
{
	EVP_PKEY *k1 = NULL, *k2 = NULL;
	X509 *c[2] = {NULL, NULL};
	struct iotp_err err;
	char *text = NULL;
	size_t len = 0;
	unsigned char *der = NULL;
	const unsigned char *p;
	PKCS7 *p7;
	STACK_OF(X509) *certs;

	(void)state;
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &k1, &err), IOTP_OK);
	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &k2, &err), IOTP_OK);
	assert_int_equal(pki_ca_create_root(k1, "One", 5, &c[0], &err), IOTP_OK);
	assert_int_equal(pki_ca_create_root(k2, "Two", 5, &c[1], &err), IOTP_OK);
	assert_int_equal(est_encode_certs(c, 2, &text, &len, &err), IOTP_OK);
	assert_int_equal(strlen(text), len);
	/* Lines of at most 64 characters, as `openssl base64 -d` reads them. */
	for (const char *l = text; *l != '\0'; l = strchr(l, '\n') + 1)
		assert_true(strchr(l, '\n') - l <= 64);
	{
		size_t dlen = 0;

		assert_int_equal(est_decode_body(text, len, &der, &dlen, &err), IOTP_OK);
		p = der;
		p7 = d2i_PKCS7(NULL, &p, (long)dlen);
	}
	assert_non_null(p7);
	assert_true(PKCS7_type_is_signed(p7));
	certs = p7->d.sign->cert;
	assert_int_equal(sk_X509_num(certs), 2);
	assert_int_equal(X509_cmp(sk_X509_value(certs, 0), c[0]), 0);
	assert_int_equal(X509_cmp(sk_X509_value(certs, 1), c[1]), 0);
	assert_int_equal(sk_PKCS7_SIGNER_INFO_num(p7->d.sign->signer_info), 0);
	PKCS7_free(p7);
	free(der);
	free(text);
	X509_free(c[0]);
	X509_free(c[1]);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
}

static void test_parse_basic(void **state)
{
	char user[EST_USER_MAX + 1], pass[EST_PASS_MAX + 1];
	struct iotp_err err;

	(void)state;
	/* "AKIAEXAMPLE:se:cret" */
	assert_int_equal(est_parse_basic("Basic QUtJQUVYQU1QTEU6c2U6Y3JldA==", user, pass, &err),
	                 IOTP_OK);
	assert_string_equal(user, "AKIAEXAMPLE");
	assert_string_equal(pass, "se:cret");
	assert_int_equal(est_parse_basic("basic QUtJQUVYQU1QTEU6c2U6Y3JldA==", user, pass, &err),
	                 IOTP_OK);
	assert_int_equal(est_parse_basic("Bearer abc", user, pass, &err), IOTP_ERR_AUTH);
	assert_int_equal(est_parse_basic("Basic bm9jb2xvbg==", user, pass, &err), IOTP_ERR_AUTH);
	assert_int_equal(est_parse_basic("Basic ***", user, pass, &err), IOTP_ERR_AUTH);
	assert_int_equal(est_parse_basic("Basic ", user, pass, &err), IOTP_ERR_AUTH);
	assert_int_equal(est_parse_basic(NULL, user, pass, &err), IOTP_ERR_AUTH);
	{
		char hdr[1024] = "Basic ";

		memset(hdr + 6, 'A', 600);
		hdr[606] = '\0';
		assert_int_equal(est_parse_basic(hdr, user, pass, &err), IOTP_ERR_AUTH);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_body),
		cmocka_unit_test(test_encode_certs),
		cmocka_unit_test(test_parse_basic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
