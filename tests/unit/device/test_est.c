/*
 * EST: replies (base64 certs-only PKCS#7) parse to the certificate issued
 * for our key, first, with the rest after it; broken replies are refused.
 * Then iotp_est_enroll against a small HTTPS server in a thread that
 * issues real certificates from the test CA: the request is what RFC 7030
 * says (path, content type, base64 DER CSR), Basic credentials go out only
 * after a 401 that asks for them, a 202 is retried after its Retry-After,
 * re-enrolment presents the current certificate (mTLS), and refusals and
 * an untrusted server are reported with their cause.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/ssl.h>

#include "common/util.h"
#include "device/dev.h"
#include "helpers.h"

/* base64 of a certs-only PKCS#7 holding certs, with line breaks. */
static char *p7_b64(STACK_OF(X509) *certs)
{
	PKCS7 *p7 = PKCS7_new();
	unsigned char *der = NULL;
	BIO *b64, *mem;
	char *data, *out;
	long n;
	int i, len;

	assert_int_equal(PKCS7_set_type(p7, NID_pkcs7_signed), 1);
	assert_int_equal(PKCS7_content_new(p7, NID_pkcs7_data), 1);
	for (i = 0; i < sk_X509_num(certs); i++)
		assert_int_equal(PKCS7_add_certificate(p7, sk_X509_value(certs, i)), 1);
	len = i2d_PKCS7(p7, &der);
	assert_true(len > 0);
	b64 = BIO_new(BIO_f_base64());
	mem = BIO_new(BIO_s_mem());
	b64 = BIO_push(b64, mem);
	BIO_write(b64, der, len);
	(void)BIO_flush(b64);
	n = BIO_get_mem_data(mem, &data);
	out = malloc((size_t)n + 1);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free_all(b64);
	OPENSSL_free(der);
	PKCS7_free(p7);
	return out;
}

static X509 *pem_x509(const char *pem)
{
	X509 *x = NULL;

	assert_int_equal(pki_cert_parse(pem, strlen(pem), &x, NULL), IOTP_OK);
	return x;
}

static void test_parse(void **state)
{
	iotp_keystore *ks = NULL, *other = NULL;
	char *leaf_pem, *other_pem, *b64, *out = NULL, *armoured;
	STACK_OF(X509) *certs = sk_X509_new_null();
	X509 *leaf, *oth;
	size_t len;
	struct iotp_err err;

	(void)state;
	assert_int_equal(iotp_keystore_generate_memory(IOTP_KEY_EC_P256, &ks, NULL), IOTP_OK);
	assert_int_equal(iotp_keystore_generate_memory(IOTP_KEY_EC_P256, &other, NULL), IOTP_OK);
	leaf_pem = th_issue(iotp_keystore_pkey(ks), "est-leaf");
	other_pem = th_issue(iotp_keystore_pkey(other), "est-other");
	leaf = pem_x509(leaf_pem);
	oth = pem_x509(other_pem);
	/* The CA first, then someone else's, then ours: ours comes out first. */
	sk_X509_push(certs, th_ca.cert);
	sk_X509_push(certs, oth);
	sk_X509_push(certs, leaf);
	b64 = p7_b64(certs);
	assert_int_equal(est_parse_certs(b64, strlen(b64), iotp_keystore_pkey(ks), &out, &len, &err),
	                 IOTP_OK);
	assert_int_equal(strncmp(out, leaf_pem, strlen(leaf_pem)), 0);
	{
		STACK_OF(X509) *back = NULL;

		assert_int_equal(pki_cert_parse_bundle(out, len, &back, NULL), IOTP_OK);
		assert_int_equal(sk_X509_num(back), 3);
		sk_X509_pop_free(back, X509_free);
	}
	free(out);
	/* PEM armour is accepted too. */
	armoured = malloc(strlen(b64) + 64);
	snprintf(armoured, strlen(b64) + 64, "-----BEGIN PKCS7-----\n%s-----END PKCS7-----\n", b64);
	assert_int_equal(est_parse_certs(armoured, strlen(armoured), iotp_keystore_pkey(ks), &out,
	                                 &len, &err),
	                 IOTP_OK);
	free(out);
	free(armoured);
	/* No certificate for our key. */
	sk_X509_pop(certs);
	free(b64);
	b64 = p7_b64(certs);
	assert_int_equal(est_parse_certs(b64, strlen(b64), iotp_keystore_pkey(ks), &out, &len, &err),
	                 IOTP_ERR_CERT);
	/* Broken: not base64, truncated, trailing garbage, empty. */
	assert_int_equal(est_parse_certs("!!!!", 4, NULL, &out, &len, &err), IOTP_ERR_INVALID);
	assert_int_equal(est_parse_certs(b64, strlen(b64) / 2 / 4 * 4, NULL, &out, &len, &err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(est_parse_certs("", 0, NULL, &out, &len, &err), IOTP_ERR_INVALID);
	assert_int_equal(est_parse_certs("AAAA", 4, NULL, &out, &len, &err), IOTP_ERR_INVALID);
	free(b64);
	sk_X509_free(certs);
	X509_free(leaf);
	X509_free(oth);
	free(leaf_pem);
	free(other_pem);
	iotp_keystore_free(ks);
	iotp_keystore_free(other);
}

/* ---- a one-thread HTTPS EST server ---------------------------------- */

struct srv {
	int fd, port;
	SSL_CTX *ctx;
	int connections;          /* to serve, then exit */
	int want_auth;            /* 401 until Basic user:pass */
	int pending_once;         /* first answer 202 Retry-After: 1 */
	int status;               /* force this status (0: normal) */
	/* seen */
	int requests;
	char auth[8][128];
	char path[256];
	char ctype[128];
	int client_cert;          /* a client certificate was presented */
	char client_cn[64];
};

/* Case-insensitive strstr (strcasestr is a GNU extension). */
static char *find_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay != '\0'; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return (char *)hay;
	return NULL;
}

static void respond(SSL *s, const char *status, const char *headers, const char *body)
{
	char buf[16384];
	int n = snprintf(buf, sizeof(buf), "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n"
	                 "Connection: close\r\n\r\n%s",
	                 status, headers, strlen(body), body);

	SSL_write(s, buf, n);
}

static char *issue_from_body(const char *body, size_t len)
{
	unsigned char *der = NULL;
	size_t dlen = 0;
	const unsigned char *p;
	X509_REQ *req;
	X509 *x = NULL;
	struct pki_issue_opts o = { .days = 30 };
	STACK_OF(X509) *certs = sk_X509_new_null();
	char *b64;
	char *clean = malloc(len + 1);
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		if (body[i] != '\r' && body[i] != '\n')
			clean[n++] = body[i];
	der = malloc(n);
	dlen = (size_t)EVP_DecodeBlock(der, (unsigned char *)clean, (int)n);
	while (n > 0 && clean[n - 1] == '=') {
		dlen--;
		n--;
	}
	p = der;
	req = d2i_X509_REQ(NULL, &p, (long)dlen);
	if (req == NULL || pki_cert_issue(&th_ca, req, &o, &x, NULL) != IOTP_OK) {
		free(der);
		free(clean);
		X509_REQ_free(req);
		sk_X509_free(certs);
		return NULL;
	}
	{
		/* Reparse so the certificate carries a decoded key. */
		char *pem = NULL;
		X509 *y;

		pki_cert_to_pem(x, &pem, NULL);
		y = pem_x509(pem);
		free(pem);
		X509_free(x);
		x = y;
	}
	sk_X509_push(certs, th_ca.cert);
	sk_X509_push(certs, x);
	b64 = p7_b64(certs);
	sk_X509_free(certs);
	X509_free(x);
	X509_REQ_free(req);
	free(der);
	free(clean);
	return b64;
}

static void *serve(void *arg)
{
	struct srv *sv = arg;
	int i;

	for (i = 0; i < sv->connections; i++) {
		int c = accept(sv->fd, NULL, NULL);
		SSL *s;
		char req[16384];
		int got = 0, n;
		char *hdr_end, *cl, *auth;
		size_t body_len = 0;

		if (c < 0)
			break;
		s = SSL_new(sv->ctx);
		SSL_set_fd(s, c);
		if (SSL_accept(s) != 1) {
			ERR_clear_error();
			SSL_free(s);
			close(c);
			continue;
		}
		{
			X509 *peer = SSL_get1_peer_certificate(s);

			if (peer != NULL) {
				sv->client_cert = 1;
				X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName,
				                          sv->client_cn, sizeof(sv->client_cn));
				X509_free(peer);
			}
		}
		while ((hdr_end = strstr(req, "\r\n\r\n")) == NULL || got == 0) {
			n = SSL_read(s, req + got, (int)sizeof(req) - 1 - got);
			if (n <= 0)
				break;
			got += n;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n") != NULL)
				break;
		}
		hdr_end = strstr(req, "\r\n\r\n");
		if (hdr_end == NULL)
			goto next;
		cl = find_ci(req, "Content-Length:");
		if (cl != NULL && cl < hdr_end)
			body_len = (size_t)strtoul(cl + 15, NULL, 10);
		while ((size_t)(got - (hdr_end + 4 - req)) < body_len) {
			n = SSL_read(s, req + got, (int)sizeof(req) - 1 - got);
			if (n <= 0)
				break;
			got += n;
			req[got] = '\0';
			hdr_end = strstr(req, "\r\n\r\n");
		}
		sscanf(req, "POST %255s", sv->path);
		{
			char *ct = find_ci(req, "Content-Type:");

			if (ct != NULL)
				sscanf(ct + 13, " %127[^\r]", sv->ctype);
		}
		auth = find_ci(req, "Authorization:");
		if (auth != NULL && auth < hdr_end && sv->requests < 8)
			sscanf(auth + 14, " %127[^\r]", sv->auth[sv->requests]);
		sv->requests++;
		if (sv->status != 0) {
			char st[64];

			snprintf(st, sizeof(st), "%d Nope", sv->status);
			respond(s, st, "", "go away");
		} else if (sv->want_auth &&
		           (auth == NULL || strncmp(sv->auth[sv->requests - 1],
		                                    "Basic dXNlcjpwYXNz", 18) != 0)) {
			respond(s, "401 Unauthorized", "WWW-Authenticate: Basic realm=\"est\"\r\n", "");
		} else if (sv->pending_once) {
			sv->pending_once = 0;
			respond(s, "202 Accepted", "Retry-After: 1\r\n", "");
		} else {
			char *b64 = issue_from_body(hdr_end + 4, body_len);

			if (b64 == NULL) {
				respond(s, "400 Bad Request", "", "bad csr");
			} else {
				respond(s, "200 OK",
				        "Content-Type: application/pkcs7-mime; smime-type=certs-only\r\n"
				        "Content-Transfer-Encoding: base64\r\n",
				        b64);
				free(b64);
			}
		}
next:
		SSL_shutdown(s);
		SSL_free(s);
		close(c);
	}
	return NULL;
}

static pthread_t srv_thread;

static void srv_start(struct srv *sv, int connections)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	char *cert = NULL, *key = NULL;
	BIO *b;
	X509 *x;
	EVP_PKEY *k;

	th_server_cert(&cert, &key);
	sv->ctx = SSL_CTX_new(TLS_server_method());
	b = BIO_new_mem_buf(cert, -1);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	b = BIO_new_mem_buf(key, -1);
	k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	SSL_CTX_use_certificate(sv->ctx, x);
	SSL_CTX_use_PrivateKey(sv->ctx, k);
	X509_STORE_add_cert(SSL_CTX_get_cert_store(sv->ctx), th_ca.cert);
	SSL_CTX_set_verify(sv->ctx, SSL_VERIFY_PEER, NULL);
	X509_free(x);
	EVP_PKEY_free(k);
	free(cert);
	iotp_free_secret(key);
	sv->connections = connections;
	sv->fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(sv->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(sv->fd, 8), 0);
	getsockname(sv->fd, (struct sockaddr *)&a, &alen);
	sv->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&srv_thread, NULL, serve, sv), 0);
}

static void srv_stop(struct srv *sv)
{
	shutdown(sv->fd, SHUT_RDWR);
	close(sv->fd);
	pthread_join(srv_thread, NULL);
	SSL_CTX_free(sv->ctx);
}

static void enroll_setup(iotp_keystore **ks, char **csr, size_t *csr_len, char *url, int port)
{
	struct iotp_csr_subject subj = { "est-device", NULL, NULL, NULL, NULL };

	assert_int_equal(iotp_keystore_generate_memory(IOTP_KEY_EC_P256, ks, NULL), IOTP_OK);
	assert_int_equal(iotp_csr_create(*ks, &subj, csr, csr_len, NULL), IOTP_OK);
	snprintf(url, 64, "https://127.0.0.1:%d", port);
}

static void test_enroll_basic_after_401(void **state)
{
	struct srv sv;
	struct iotp_est_opts o;
	iotp_keystore *ks = NULL;
	char *csr = NULL, *cert = NULL, url[64];
	size_t csr_len, cert_len;
	struct iotp_failure why;
	struct iotp_err err;
	X509 *x;

	(void)state;
	memset(&sv, 0, sizeof(sv));
	sv.want_auth = 1;
	sv.pending_once = 1;
	srv_start(&sv, 6);
	enroll_setup(&ks, &csr, &csr_len, url, sv.port);
	memset(&o, 0, sizeof(o));
	o.base_url = url;
	o.ca_file = th_path("ca.pem");
	o.username = "user";
	o.password = "pass";
	o.timeout_ms = 5000;
	assert_int_equal(iotp_est_enroll(&o, 0, csr, csr_len, &cert, &cert_len, &why, &err), IOTP_OK);
	srv_stop(&sv);
	/* RFC 7030 paths and media type. */
	assert_string_equal(sv.path, "/.well-known/est/simpleenroll");
	assert_string_equal(sv.ctype, "application/pkcs10");
	/* No credentials until the 401 asked for them, then Basic; then the
	 * 202 was retried (curl may probe once more on the new transfer). */
	assert_true(sv.requests >= 3 && sv.requests <= 4);
	assert_string_equal(sv.auth[0], "");
	assert_string_equal(sv.auth[1], "Basic dXNlcjpwYXNz");
	assert_string_equal(sv.auth[sv.requests - 1], "Basic dXNlcjpwYXNz");
	assert_int_equal(sv.client_cert, 0);
	/* The issued certificate is for our key and chains to the CA. */
	x = pem_x509(cert);
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), iotp_keystore_pkey(ks)), 1);
	assert_int_equal(pki_cert_chains_to(x, th_ca.cert, NULL), IOTP_OK);
	X509_free(x);
	free(cert);
	free(csr);
	iotp_keystore_free(ks);
}

static void test_reenroll_mtls_token_key(void **state)
{
	struct srv sv;
	struct iotp_est_opts o;
	iotp_keystore *ks = NULL, *cur = NULL;
	char *csr = NULL, *cert = NULL, *cur_cert, url[64];
	size_t csr_len, cert_len;
	struct iotp_err err;

	(void)state;
	memset(&sv, 0, sizeof(sv));
	srv_start(&sv, 1);
	enroll_setup(&ks, &csr, &csr_len, url, sv.port);
	/* The current identity's key lives in the token: it signs the
	 * handshake of the re-enrolment. */
	assert_int_equal(iotp_keystore_generate(th_p11("estkey"), IOTP_KEY_EC_P256, &err), IOTP_OK);
	assert_int_equal(iotp_keystore_open(th_p11("estkey"), &cur, &err), IOTP_OK);
	cur_cert = th_issue(iotp_keystore_pkey(cur), "current-identity");
	memset(&o, 0, sizeof(o));
	o.base_url = url;
	o.label = "fleet";
	o.ca_file = th_path("ca.pem");
	o.cert_pem = cur_cert;
	o.cert_len = strlen(cur_cert);
	o.key = cur;
	assert_int_equal(iotp_est_enroll(&o, 1, csr, csr_len, &cert, &cert_len, NULL, &err), IOTP_OK);
	srv_stop(&sv);
	assert_string_equal(sv.path, "/.well-known/est/fleet/simplereenroll");
	assert_int_equal(sv.client_cert, 1);
	assert_string_equal(sv.client_cn, "current-identity");
	free(cert);
	free(cur_cert);
	free(csr);
	iotp_keystore_free(ks);
	iotp_keystore_free(cur);
}

static void test_enroll_failures(void **state)
{
	struct srv sv;
	struct iotp_est_opts o;
	iotp_keystore *ks = NULL;
	char *csr = NULL, *cert = NULL, url[64];
	size_t csr_len, cert_len;
	struct iotp_failure why;
	struct iotp_err err;

	(void)state;
	/* Refused. */
	memset(&sv, 0, sizeof(sv));
	sv.status = 403;
	srv_start(&sv, 1);
	enroll_setup(&ks, &csr, &csr_len, url, sv.port);
	memset(&o, 0, sizeof(o));
	o.base_url = url;
	o.ca_file = th_path("ca.pem");
	o.timeout_ms = 5000;
	assert_int_equal(iotp_est_enroll(&o, 0, csr, csr_len, &cert, &cert_len, &why, &err),
	                 IOTP_ERR_AUTH);
	assert_int_equal(why.cause, IOTP_CAUSE_REFUSED);
	assert_int_equal(why.status, 403);
	srv_stop(&sv);
	/* Rejected with a 400. */
	memset(&sv, 0, sizeof(sv));
	sv.status = 400;
	srv_start(&sv, 1);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", sv.port);
	assert_int_equal(iotp_est_enroll(&o, 0, csr, csr_len, &cert, &cert_len, &why, &err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(why.cause, IOTP_CAUSE_REJECTED);
	assert_int_equal(why.status, 400);
	assert_non_null(strstr(err.msg, "go away"));
	srv_stop(&sv);
	/* A server the device does not trust. */
	memset(&sv, 0, sizeof(sv));
	srv_start(&sv, 1);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", sv.port);
	th_write("other-ca.pem", "", 0644);
	{
		EVP_PKEY *k = NULL;
		X509 *x = NULL;
		FILE *f;

		pki_key_generate(PKI_KEY_EC_P256, &k, NULL);
		pki_ca_create_root(k, "stranger", 1, &x, NULL);
		f = fopen(th_path("other-ca.pem"), "w");
		PEM_write_X509(f, x);
		fclose(f);
		X509_free(x);
		EVP_PKEY_free(k);
	}
	o.ca_file = th_path("other-ca.pem");
	assert_int_equal(iotp_est_enroll(&o, 0, csr, csr_len, &cert, &cert_len, &why, &err),
	                 IOTP_ERR_IO);
	assert_int_equal(why.cause, IOTP_CAUSE_TLS);
	srv_stop(&sv);
	/* Nobody listening. */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", sv.port);
	o.ca_file = th_path("ca.pem");
	assert_int_equal(iotp_est_enroll(&o, 0, csr, csr_len, &cert, &cert_len, &why, &err),
	                 IOTP_ERR_IO);
	assert_int_equal(why.cause, IOTP_CAUSE_NETWORK);
	free(csr);
	iotp_keystore_free(ks);
}

const struct CMUnitTest th_est_tests[] = {
	cmocka_unit_test(test_parse),
	cmocka_unit_test(test_enroll_basic_after_401),
	cmocka_unit_test(test_reenroll_mtls_token_key),
	cmocka_unit_test(test_enroll_failures),
};
const size_t th_est_count = sizeof(th_est_tests) / sizeof(th_est_tests[0]);
