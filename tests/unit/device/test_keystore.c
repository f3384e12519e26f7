/*
 * Keystores. File keys: created 0600, refused when group or others can
 * read them, never overwritten. PKCS#11 keys (SoftHSM2): generated inside
 * the token with CKA_SENSITIVE and without CKA_EXTRACTABLE, signing a CSR
 * that verifies, and presenting the device certificate in a real TLS
 * handshake whose signature only the token could make. URIs: attributes,
 * percent-encoding, PIN sources, and a stored form without the PIN.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "device/dev.h"
#include "helpers.h"

static void test_file_key(void **state)
{
	const char *path = th_path("k1.pem");
	char uri[600];
	iotp_keystore *ks = NULL;
	struct iotp_key_info info;
	struct iotp_err err;
	struct stat st;

	(void)state;
	snprintf(uri, sizeof(uri), "file:%s", path);
	assert_int_equal(iotp_keystore_generate(uri, IOTP_KEY_EC_P256, &err), IOTP_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Never overwritten. */
	assert_int_equal(iotp_keystore_generate(uri, IOTP_KEY_EC_P256, &err), IOTP_ERR_EXISTS);
	assert_int_equal(iotp_keystore_open(path, &ks, &err), IOTP_OK);
	assert_int_equal(iotp_keystore_info(ks, &info, &err), IOTP_OK);
	assert_int_equal(info.backend, IOTP_KEYSTORE_FILE);
	assert_int_equal(info.alg, IOTP_KEY_EC_P256);
	assert_int_equal(info.extractable, 1);
	assert_int_equal(strlen(info.fingerprint), 64);
	iotp_keystore_free(ks);
	/* Readable by the group, or by others: refused, with the fix. */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(iotp_keystore_open(uri, &ks, &err), IOTP_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "chmod 600"));
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(iotp_keystore_open(uri, &ks, &err), IOTP_ERR_CONFIG);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(iotp_keystore_remove(uri, &err), IOTP_OK);
	assert_int_equal(iotp_keystore_open(uri, &ks, &err), IOTP_ERR_NOT_FOUND);
	assert_int_equal(iotp_keystore_remove(uri, &err), IOTP_ERR_NOT_FOUND);
}

static void test_memory_and_pem(void **state)
{
	iotp_keystore *a = NULL, *b = NULL;
	char *pem = NULL, *pub1 = NULL, *pub2 = NULL;
	struct iotp_err err;

	(void)state;
	assert_int_equal(iotp_keystore_generate_memory(IOTP_KEY_EC_P384, &a, &err), IOTP_OK);
	assert_int_equal(pki_key_to_pem(iotp_keystore_pkey(a), &pem, NULL), IOTP_OK);
	assert_int_equal(iotp_keystore_from_pem(pem, strlen(pem), &b, &err), IOTP_OK);
	assert_int_equal(iotp_keystore_public_pem(a, &pub1, NULL, &err), IOTP_OK);
	assert_int_equal(iotp_keystore_public_pem(b, &pub2, NULL, &err), IOTP_OK);
	assert_string_equal(pub1, pub2);
	/* Saved: 0600, and readable back as the same key. */
	assert_int_equal(iotp_keystore_save(b, th_path("saved.pem"), &err), IOTP_OK);
	{
		struct stat st;
		iotp_keystore *c = NULL;
		char *pub3 = NULL;

		assert_int_equal(stat(th_path("saved.pem"), &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		assert_int_equal(iotp_keystore_open(th_path("saved.pem"), &c, &err), IOTP_OK);
		assert_int_equal(iotp_keystore_public_pem(c, &pub3, NULL, &err), IOTP_OK);
		assert_string_equal(pub1, pub3);
		free(pub3);
		iotp_keystore_free(c);
	}
	assert_int_equal(iotp_keystore_from_pem("junk", 4, &b, &err), IOTP_ERR_INVALID);
	iotp_free_secret(pem);
	free(pub1);
	free(pub2);
	iotp_keystore_free(a);
	iotp_keystore_free(b);
}

static void test_pkcs11_generate_in_token(void **state)
{
	iotp_keystore *ks = NULL;
	struct iotp_key_info info;
	struct iotp_err err;
	char *csr = NULL;
	size_t len = 0;
	struct iotp_csr_subject subj = { "token-device", "SN-42", "Acme", NULL, "FR" };
	X509_REQ *req = NULL;

	(void)state;
	assert_int_equal(iotp_keystore_generate(th_p11("devkey"), IOTP_KEY_EC_P256, &err), IOTP_OK);
	/* A second key under the same label is refused. */
	assert_int_equal(iotp_keystore_generate(th_p11("devkey"), IOTP_KEY_EC_P256, &err),
	                 IOTP_ERR_EXISTS);
	assert_int_equal(iotp_keystore_open(th_p11("devkey"), &ks, &err), IOTP_OK);
	assert_int_equal(iotp_keystore_info(ks, &info, &err), IOTP_OK);
	/* The private key never existed outside the token and cannot leave. */
	assert_int_equal(info.backend, IOTP_KEYSTORE_PKCS11);
	assert_int_equal(info.sensitive, 1);
	assert_int_equal(info.extractable, 0);
	assert_int_equal(info.always_sensitive, 1);
	assert_int_equal(info.never_extractable, 1);
	assert_int_equal(info.local, 1);
	/* The token signs the CSR; it verifies with the key it carries. */
	assert_int_equal(iotp_csr_create(ks, &subj, &csr, &len, &err), IOTP_OK);
	assert_int_equal(pki_csr_parse(csr, len, &req, &err), IOTP_OK);
	{
		char cn[64];
		X509_NAME *n = X509_REQ_get_subject_name(req);

		assert_true(X509_NAME_get_text_by_NID(n, NID_commonName, cn, sizeof(cn)) > 0);
		assert_string_equal(cn, "token-device");
		assert_true(X509_NAME_get_text_by_NID(n, NID_serialNumber, cn, sizeof(cn)) > 0);
		assert_string_equal(cn, "SN-42");
		assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), iotp_keystore_pkey(ks)), 1);
	}
	/* A file key cannot be written from a token. */
	assert_int_equal(iotp_keystore_save(ks, th_path("nope.pem"), &err), IOTP_ERR_STATE);
	X509_REQ_free(req);
	free(csr);
	iotp_keystore_free(ks);
}

/* Drives a client and a server SSL over a BIO pair until both finish. */
static int handshake(SSL *c, SSL *s)
{
	int i, cd = 0, sd = 0;

	for (i = 0; i < 100 && !(cd && sd); i++) {
		if (!cd) {
			int r = SSL_do_handshake(c);

			if (r == 1)
				cd = 1;
			else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
				return -1;
		}
		if (!sd) {
			int r = SSL_do_handshake(s);

			if (r == 1)
				sd = 1;
			else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
				return -2;
		}
	}
	return cd && sd ? 0 : -3;
}

static void test_pkcs11_tls_handshake(void **state)
{
	iotp_keystore *ks = NULL, *wrong = NULL;
	char *dev_cert = NULL, *srv_cert = NULL, *srv_key = NULL, *other = NULL;
	SSL_CTX *cctx = NULL, *sctx = NULL;
	SSL *c, *s;
	BIO *cb, *sb;
	BIO *mem;
	X509 *x;
	EVP_PKEY *k;
	struct iotp_err err;
	int ver;

	(void)state;
	assert_int_equal(iotp_keystore_generate(th_p11("tlskey"), IOTP_KEY_EC_P256, &err), IOTP_OK);
	assert_int_equal(iotp_keystore_open(th_p11("tlskey"), &ks, &err), IOTP_OK);
	dev_cert = th_issue(iotp_keystore_pkey(ks), "tls-device");
	th_server_cert(&srv_cert, &srv_key);
	/* A certificate for another key is refused up front. */
	assert_int_equal(iotp_keystore_generate_memory(IOTP_KEY_EC_P256, &wrong, &err), IOTP_OK);
	other = th_issue(iotp_keystore_pkey(wrong), "other");
	assert_int_equal(iotp_tls_ctx_new(th_path("ca.pem"), "127.0.0.1", other, strlen(other), ks,
	                                  &cctx, &err),
	                 IOTP_ERR_CERT);
	assert_int_equal(iotp_tls_ctx_new(th_path("ca.pem"), "127.0.0.1", dev_cert,
	                                  strlen(dev_cert), ks, &cctx, &err),
	                 IOTP_OK);
	/* The server: requires a client certificate from the test CA. */
	sctx = SSL_CTX_new(TLS_server_method());
	mem = BIO_new_mem_buf(srv_cert, -1);
	x = PEM_read_bio_X509(mem, NULL, NULL, NULL);
	BIO_free(mem);
	mem = BIO_new_mem_buf(srv_key, -1);
	k = PEM_read_bio_PrivateKey(mem, NULL, NULL, NULL);
	BIO_free(mem);
	assert_int_equal(SSL_CTX_use_certificate(sctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(sctx, k), 1);
	X509_STORE_add_cert(SSL_CTX_get_cert_store(sctx), th_ca.cert);
	SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	for (ver = TLS1_2_VERSION; ver <= TLS1_3_VERSION; ver++) {
		X509 *peer;

		SSL_CTX_set_max_proto_version(sctx, ver);
		c = SSL_new(cctx);
		s = SSL_new(sctx);
		assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
		SSL_set_bio(c, cb, cb);
		SSL_set_bio(s, sb, sb);
		SSL_set_connect_state(c);
		SSL_set_accept_state(s);
		assert_int_equal(handshake(c, s), 0);
		/* The server saw the device certificate, proven by a signature
		 * made inside the token. */
		peer = SSL_get1_peer_certificate(s);
		assert_non_null(peer);
		assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(peer), iotp_keystore_pkey(ks)), 1);
		assert_int_equal(SSL_get_verify_result(s), X509_V_OK);
		X509_free(peer);
		SSL_free(c);
		SSL_free(s);
	}
	/* Server name checking: a context for another host fails the handshake. */
	{
		SSL_CTX *bad = NULL;

		assert_int_equal(iotp_tls_ctx_new(th_path("ca.pem"), "example.com", dev_cert,
		                                  strlen(dev_cert), ks, &bad, &err),
		                 IOTP_OK);
		c = SSL_new(bad);
		s = SSL_new(sctx);
		assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
		SSL_set_bio(c, cb, cb);
		SSL_set_bio(s, sb, sb);
		SSL_set_connect_state(c);
		SSL_set_accept_state(s);
		assert_int_not_equal(handshake(c, s), 0);
		assert_int_equal(SSL_get_verify_result(c), X509_V_ERR_HOSTNAME_MISMATCH);
		ERR_clear_error();
		SSL_free(c);
		SSL_free(s);
		SSL_CTX_free(bad);
	}
	X509_free(x);
	EVP_PKEY_free(k);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	free(dev_cert);
	free(srv_cert);
	iotp_free_secret(srv_key);
	free(other);
	iotp_keystore_free(wrong);
	iotp_keystore_free(ks);
}

static void test_pkcs11_errors_and_remove(void **state)
{
	iotp_keystore *ks = NULL, *ks2 = NULL;
	struct iotp_err err;
	char uri[300];

	(void)state;
	assert_int_equal(iotp_keystore_generate(th_p11("gone"), IOTP_KEY_EC_P384, &err), IOTP_OK);
	/* Wrong PIN, unknown token, unknown object, no PIN at all. */
	assert_int_equal(iotp_keystore_open("pkcs11:token=dev;object=gone;pin-value=0000", &ks, &err),
	                 IOTP_ERR_AUTH);
	assert_int_equal(iotp_keystore_open("pkcs11:token=nope;object=gone;pin-value=1234", &ks,
	                                    &err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(iotp_keystore_open(th_p11("missing"), &ks, &err), IOTP_ERR_NOT_FOUND);
	unsetenv("IOTP_PKCS11_PIN");
	assert_int_equal(iotp_keystore_open("pkcs11:token=dev;object=gone", &ks, &err),
	                 IOTP_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "PIN"));
	/* PIN from the environment and from a file. */
	setenv("IOTP_PKCS11_PIN", TH_PIN, 1);
	assert_int_equal(iotp_keystore_open("pkcs11:token=dev;object=gone", &ks, &err), IOTP_OK);
	unsetenv("IOTP_PKCS11_PIN");
	th_write("pin.txt", TH_PIN "\n", 0600);
	snprintf(uri, sizeof(uri), "pkcs11:token=dev;object=gone?pin-source=file:%s",
	         th_path("pin.txt"));
	/* Two handles on the same module at once share one initialisation. */
	assert_int_equal(iotp_keystore_open(uri, &ks2, &err), IOTP_OK);
	{
		struct iotp_key_info info;

		assert_int_equal(iotp_keystore_info(ks2, &info, &err), IOTP_OK);
		assert_int_equal(info.alg, IOTP_KEY_EC_P384);
	}
	iotp_keystore_free(ks);
	iotp_keystore_free(ks2);
	assert_int_equal(iotp_keystore_remove(th_p11("gone"), &err), IOTP_OK);
	assert_int_equal(iotp_keystore_open(th_p11("gone"), &ks, &err), IOTP_ERR_NOT_FOUND);
	assert_int_equal(iotp_keystore_remove(th_p11("gone"), &err), IOTP_ERR_NOT_FOUND);
}

static void test_p11_uri(void **state)
{
	struct p11_uri u;
	struct iotp_err err;
	char pub[512], pin[64];

	(void)state;
	assert_int_equal(p11_uri_parse("pkcs11:token=My%20Token;object=dev%2Fkey;id=%01%ff;"
	                               "type=private;manufacturer=x?module-path=/opt/p11.so"
	                               "&pin-value=12%3B4",
	                               &u, &err),
	                 IOTP_OK);
	assert_string_equal(u.token, "My Token");
	assert_string_equal(u.object, "dev/key");
	assert_int_equal(u.id_len, 2);
	assert_int_equal(u.id[0], 0x01);
	assert_int_equal(u.id[1], 0xff);
	assert_string_equal(p11_uri_module(&u), "/opt/p11.so");
	assert_int_equal(p11_uri_pin(&u, pin, sizeof(pin), &err), IOTP_OK);
	assert_string_equal(pin, "12;4");
	/* The stored form has no PIN and parses back to the same object. */
	assert_int_equal(p11_uri_public(&u, pub, sizeof(pub), &err), IOTP_OK);
	assert_null(strstr(pub, "pin"));
	assert_null(strstr(pub, "12"));
	p11_uri_cleanup(&u);
	assert_int_equal(p11_uri_parse(pub, &u, &err), IOTP_OK);
	assert_string_equal(u.token, "My Token");
	assert_string_equal(u.object, "dev/key");
	assert_int_equal(u.id_len, 2);
	assert_string_equal(u.module_path, "/opt/p11.so");
	assert_int_equal(u.has_pin, 0);
	p11_uri_cleanup(&u);
	/* PIN in the path (as iotprov documents it) and from env:VAR. */
	setenv("MY_PIN_VAR", "9876", 1);
	assert_int_equal(p11_uri_parse("pkcs11:token=t;object=o;pin-value=55", &u, &err), IOTP_OK);
	assert_int_equal(p11_uri_pin(&u, pin, sizeof(pin), &err), IOTP_OK);
	assert_string_equal(pin, "55");
	assert_string_equal(p11_uri_module(&u), getenv("IOTP_PKCS11_MODULE") != NULL
	                                            ? getenv("IOTP_PKCS11_MODULE")
	                                            : "/usr/lib/softhsm/libsofthsm2.so");
	assert_int_equal(p11_uri_parse("pkcs11:token=t;object=o?pin-source=env:MY_PIN_VAR", &u,
	                               &err),
	                 IOTP_OK);
	assert_int_equal(p11_uri_pin(&u, pin, sizeof(pin), &err), IOTP_OK);
	assert_string_equal(pin, "9876");
	/* Broken URIs. */
	assert_int_equal(p11_uri_parse("file:/x", &u, &err), IOTP_ERR_INVALID);
	assert_int_equal(p11_uri_parse("pkcs11:object=o", &u, &err), IOTP_ERR_INVALID);
	assert_int_equal(p11_uri_parse("pkcs11:token=t", &u, &err), IOTP_ERR_INVALID);
	assert_int_equal(p11_uri_parse("pkcs11:token=t;object=%4", &u, &err), IOTP_ERR_INVALID);
	assert_int_equal(p11_uri_parse("pkcs11:token=t;object=%zz", &u, &err), IOTP_ERR_INVALID);
	assert_int_equal(p11_uri_parse("pkcs11:token=t;object=a%00b", &u, &err), IOTP_ERR_INVALID);
	assert_int_equal(p11_uri_parse("pkcs11:token=t;object", &u, &err), IOTP_ERR_INVALID);
	assert_int_equal(p11_uri_parse("pkcs11:token=t;object=o;type=cert", &u, &err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(p11_uri_parse("pkcs11:token=0123456789012345678901234567890123;object=o",
	                               &u, &err),
	                 IOTP_ERR_INVALID);
}

const struct CMUnitTest th_keystore_tests[] = {
	cmocka_unit_test(test_file_key),
	cmocka_unit_test(test_memory_and_pem),
	cmocka_unit_test(test_pkcs11_generate_in_token),
	cmocka_unit_test(test_pkcs11_tls_handshake),
	cmocka_unit_test(test_pkcs11_errors_and_remove),
	cmocka_unit_test(test_p11_uri),
};
const size_t th_keystore_count = sizeof(th_keystore_tests) / sizeof(th_keystore_tests[0]);
