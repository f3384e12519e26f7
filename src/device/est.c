/*
 * EST enrolment (RFC 7030) over libcurl: the device POSTs its CSR (base64
 * of the DER, Content-Type application/pkcs10) to /.well-known/est/
 * simpleenroll, or simplereenroll authenticated by its current certificate,
 * and reads back a certs-only PKCS#7 in base64. The client certificate and
 * key go into curl's SSL_CTX through CURLOPT_SSL_CTX_FUNCTION, so a token
 * key signs the handshake in place. Basic credentials are sent only after
 * a 401 that asks for them (CURLAUTH_ONLY), never pre-emptively.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/ssl.h>

#include "common/buf.h"
#include "common/util.h"
#include "core/pki.h"
#include "device/dev.h"

#define EST_RETRY_BUDGET_MS 60000

/* ------------------------------------------------------------------ */
/* The reply */

/* Base64 text to bytes, skipping whitespace and an optional PEM armour. */
static iotp_rc unbase64(const char *in, size_t len, unsigned char **out, size_t *outlen,
                        struct iotp_err *err)
{
	char *clean = NULL;
	unsigned char *bin = NULL;
	size_t i, n = 0, pad = 0;
	int got;
	iotp_rc rc = IOTP_OK;

	if (len >= 10 && memcmp(in, "-----BEGIN", 10) == 0) {
		const char *body = memchr(in, '\n', len);
		const char *end = NULL;

		for (i = 0; body != NULL && i + 8 <= len; i++)
			if (memcmp(in + i, "-----END", 8) == 0) {
				end = in + i;
				break;
			}
		if (body == NULL || end == NULL || end < body)
			return iotp_err_set(err, IOTP_ERR_INVALID, "EST reply: broken PEM armour");
		len = (size_t)(end - body);
		in = body;
	}
	clean = malloc(len + 1);
	if (clean == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (isspace(c))
			continue;
		if (!(isalnum(c) || c == '+' || c == '/' || c == '=')) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "EST reply: not base64");
			goto out;
		}
		if (pad > 0 && c != '=') {
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "EST reply: data after base64 padding");
			goto out;
		}
		if (c == '=')
			pad++;
		clean[n++] = (char)c;
	}
	if (n == 0 || n % 4 != 0 || pad > 2) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "EST reply: base64 of bad length");
		goto out;
	}
	bin = malloc(n / 4 * 3 + 1);
	if (bin == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	got = EVP_DecodeBlock(bin, (const unsigned char *)clean, (int)n);
	if (got < 0 || (size_t)got < pad) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "EST reply: bad base64");
		goto out;
	}
	*out = bin;
	*outlen = (size_t)got - pad;
	bin = NULL;
out:
	free(clean);
	free(bin);
	return rc;
}

static iotp_rc append_pem(struct buf *b, X509 *x, struct iotp_err *err)
{
	char *pem = NULL;
	iotp_rc rc = pki_cert_to_pem(x, &pem, err);

	if (rc != IOTP_OK)
		return rc;
	rc = buf_puts(b, pem);
	free(pem);
	if (rc != IOTP_OK)
		return iotp_err_set(err, rc, "EST reply too big");
	return IOTP_OK;
}

iotp_rc est_parse_certs(const void *body, size_t len, EVP_PKEY *match, char **pem,
                        size_t *pem_len, struct iotp_err *err)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t der_len = 0;
	PKCS7 *p7 = NULL;
	STACK_OF(X509) *certs, *check = NULL;
	struct buf b;
	int i, leaf = -1;
	iotp_rc rc;

	buf_init(&b, DEV_PEM_MAX * 4);
	if (len > DEV_EST_REPLY_MAX) {
		rc = iotp_err_set(err, IOTP_ERR_TOO_BIG, "EST reply over %d bytes", DEV_EST_REPLY_MAX);
		goto out;
	}
	if ((rc = unbase64(body, len, &der, &der_len, err)) != IOTP_OK)
		goto out;
	p = der;
	p7 = d2i_PKCS7(NULL, &p, (long)der_len);
	if (p7 == NULL || p != der + der_len) {
		rc = iotp_err_ssl(err, IOTP_ERR_INVALID, "EST reply is not one PKCS#7 structure");
		goto out;
	}
	if (!PKCS7_type_is_signed(p7) || p7->d.sign == NULL || p7->d.sign->cert == NULL ||
	    sk_X509_num(p7->d.sign->cert) == 0) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "EST reply holds no certificate");
		goto out;
	}
	certs = p7->d.sign->cert;
	/* The PKCS#7 decoder is lenient about what is inside a certificate:
	 * one whose key does not decode would only fail later, in TLS. */
	for (i = 0; i < sk_X509_num(certs); i++)
		if (X509_get0_pubkey(sk_X509_value(certs, i)) == NULL) {
			rc = iotp_err_ssl(err, IOTP_ERR_CERT,
			                  "EST reply: certificate %d has an unreadable key", i + 1);
			goto out;
		}
	for (i = 0; i < sk_X509_num(certs) && leaf < 0; i++) {
		EVP_PKEY *pub = X509_get0_pubkey(sk_X509_value(certs, i));

		if (match == NULL || (pub != NULL && EVP_PKEY_eq(pub, match) == 1))
			leaf = i;
	}
	ERR_clear_error();
	if (leaf < 0) {
		rc = iotp_err_set(err, IOTP_ERR_CERT, "no certificate in the EST reply is for our key");
		goto out;
	}
	if ((rc = append_pem(&b, sk_X509_value(certs, leaf), err)) != IOTP_OK)
		goto out;
	for (i = 0; i < sk_X509_num(certs); i++)
		if (i != leaf && (rc = append_pem(&b, sk_X509_value(certs, i), err)) != IOTP_OK)
			goto out;
	/* What is handed out parses the way every later user will parse it. */
	if ((rc = pki_cert_parse_bundle(b.data, b.len, &check, err)) != IOTP_OK)
		goto out;
	*pem = buf_detach(&b, pem_len);
out:
	sk_X509_pop_free(check, X509_free);
	buf_cleanup(&b);
	PKCS7_free(p7);
	free(der);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The exchange */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct est_call {
	const struct iotp_est_opts *o;
	struct buf body;
	iotp_rc ctx_rc;
	struct iotp_err ctx_err;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct est_call *c = ud;

	if (buf_append(&c->body, p, size * n) != IOTP_OK)
		return 0; /* over the cap: curl aborts with CURLE_WRITE_ERROR */
	return size * n;
}

/* Puts the client certificate and key into curl's context, so the token's
 * EVP_PKEY signs the handshake. */
static CURLcode on_ssl_ctx(CURL *curl, void *sslctx, void *ud)
{
	struct est_call *c = ud;
	SSL_CTX *ctx = sslctx;
	STACK_OF(X509) *certs = NULL;
	int i;

	(void)curl;
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	if (c->o->cert_pem == NULL)
		return CURLE_OK;
	if ((c->ctx_rc = pki_cert_parse_bundle(c->o->cert_pem, c->o->cert_len, &certs,
	                                       &c->ctx_err)) != IOTP_OK)
		return CURLE_SSL_CERTPROBLEM;
	if (SSL_CTX_use_certificate(ctx, sk_X509_value(certs, 0)) != 1)
		goto bad;
	for (i = 1; i < sk_X509_num(certs); i++)
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(certs, i)) != 1)
			goto bad;
	if (SSL_CTX_use_PrivateKey(ctx, iotp_keystore_pkey(c->o->key)) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto bad;
	sk_X509_pop_free(certs, X509_free);
	return CURLE_OK;
bad:
	c->ctx_rc = iotp_err_ssl(&c->ctx_err, IOTP_ERR_CERT,
	                         "the client certificate does not match the device key");
	sk_X509_pop_free(certs, X509_free);
	return CURLE_SSL_CERTPROBLEM;
}

/* base64 of the DER of a PEM CSR. */
static iotp_rc csr_base64(const char *pem, size_t len, char **out, struct iotp_err *err)
{
	X509_REQ *req = NULL;
	unsigned char *der = NULL;
	char *b64 = NULL;
	int n;
	iotp_rc rc;

	if ((rc = pki_csr_parse(pem, len, &req, err)) != IOTP_OK)
		return rc;
	n = i2d_X509_REQ(req, &der);
	if (n <= 0) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "encode the CSR");
		goto out;
	}
	b64 = malloc((size_t)(n + 2) / 3 * 4 + 1);
	if (b64 == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)b64, der, n);
	*out = b64;
	b64 = NULL;
out:
	X509_REQ_free(req);
	OPENSSL_free(der);
	free(b64);
	return rc;
}

/* A short printable excerpt of an error body for the message. */
static void excerpt(const struct buf *b, char *out, size_t size)
{
	size_t i, o = 0;

	for (i = 0; i < b->len && o + 1 < size && i < 160; i++) {
		unsigned char ch = (unsigned char)b->data[i];

		out[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : ' ';
	}
	out[o] = '\0';
}

iotp_rc iotp_est_enroll(const struct iotp_est_opts *o, int reenroll, const char *csr_pem,
                        size_t csr_len, char **cert_pem, size_t *cert_len,
                        struct iotp_failure *why, struct iotp_err *err)
{
	struct est_call call;
	CURL *curl = NULL;
	struct curl_slist *hdrs = NULL;
	char *b64 = NULL, url[1024], ebuf[CURL_ERROR_SIZE];
	X509_REQ *req = NULL;
	EVP_PKEY *csr_key;
	int timeout = o != NULL && o->timeout_ms > 0 ? o->timeout_ms : 30000;
	int64_t give_up = util_mono_ms() + EST_RETRY_BUDGET_MS;
	iotp_rc rc;

	memset(&call, 0, sizeof(call));
	buf_init(&call.body, DEV_EST_REPLY_MAX);
	iotp_failure_clear(why);
	if (o == NULL || o->base_url == NULL || o->ca_file == NULL ||
	    (o->cert_pem != NULL && o->key == NULL)) {
		rc = dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_INVALID,
		              "EST needs a base URL, a CA file, and a key with a certificate");
		goto out;
	}
	call.o = o;
	if ((size_t)snprintf(url, sizeof(url), "%s/.well-known/est/%s%s%s", o->base_url,
	                     o->label != NULL ? o->label : "", o->label != NULL ? "/" : "",
	                     reenroll ? "simplereenroll" : "simpleenroll") >= sizeof(url)) {
		rc = dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_INVALID, "URL too long");
		goto out;
	}
	if ((rc = pki_csr_parse(csr_pem, csr_len, &req, err)) != IOTP_OK ||
	    (rc = csr_base64(csr_pem, csr_len, &b64, err)) != IOTP_OK) {
		dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "CSR");
		goto out;
	}
	csr_key = X509_REQ_get0_pubkey(req);
	pthread_once(&curl_once, curl_init);
	curl = curl_easy_init();
	hdrs = curl_slist_append(hdrs, "Content-Type: application/pkcs10");
	hdrs = hdrs != NULL ? curl_slist_append(hdrs, "Content-Transfer-Encoding: base64") : NULL;
	if (curl == NULL || hdrs == NULL) {
		rc = dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, b64);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(b64));
	curl_easy_setopt(curl, CURLOPT_CAINFO, o->ca_file);
	curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, &call);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &call);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L);
	if (o->username != NULL) {
		curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)(CURLAUTH_BASIC | CURLAUTH_ONLY));
		curl_easy_setopt(curl, CURLOPT_USERNAME, o->username);
		curl_easy_setopt(curl, CURLOPT_PASSWORD, o->password != NULL ? o->password : "");
	}
	for (;;) {
		long status = 0;
		CURLcode cc;
		struct curl_header *h = NULL;
		char text[200];

		ebuf[0] = '\0';
		buf_cleanup(&call.body);
		cc = curl_easy_perform(curl);
		if (cc != CURLE_OK) {
			enum iotp_cause cause = IOTP_CAUSE_NETWORK;

			if (call.ctx_rc != IOTP_OK) {
				rc = dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, call.ctx_rc, "%s",
				              call.ctx_err.msg);
				goto out;
			}
			if (cc == CURLE_OPERATION_TIMEDOUT)
				cause = IOTP_CAUSE_TIMEOUT;
			else if (cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_PEER_FAILED_VERIFICATION ||
			         cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CACERT_BADFILE ||
			         cc == CURLE_SSL_ISSUER_ERROR)
				cause = IOTP_CAUSE_TLS;
			else if (cc == CURLE_WRITE_ERROR)
				cause = IOTP_CAUSE_PROTOCOL;
			rc = dev_fail(why, cause, 0, NULL, err,
			              cause == IOTP_CAUSE_TIMEOUT ? IOTP_ERR_TIMEOUT : IOTP_ERR_IO,
			              "EST %s: %s", url, ebuf[0] ? ebuf : curl_easy_strerror(cc));
			goto out;
		}
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200)
			break;
		excerpt(&call.body, text, sizeof(text));
		if (status == 202) {
			int64_t wait_s = 5;

			if (curl_easy_header(curl, "Retry-After", 0, CURLH_HEADER, -1, &h) ==
			            CURLHE_OK &&
			    util_parse_int64(h->value, 0, 3600, &wait_s) != IOTP_OK)
				wait_s = 5;
			if (util_mono_ms() + wait_s * 1000 > give_up) {
				rc = dev_fail(why, IOTP_CAUSE_TIMEOUT, 202, NULL, err, IOTP_ERR_TIMEOUT,
				              "EST %s: enrolment still pending after %d s", url,
				              EST_RETRY_BUDGET_MS / 1000);
				goto out;
			}
			dev_sleep_ms((uint32_t)(wait_s * 1000));
			continue;
		}
		if (status == 401 || status == 403) {
			rc = dev_fail(why, IOTP_CAUSE_REFUSED, (int)status, NULL, err, IOTP_ERR_AUTH,
			              "EST %s refused the device (%ld): %s", url, status, text);
			goto out;
		}
		rc = dev_fail(why, IOTP_CAUSE_REJECTED, (int)status, NULL, err,
		              status >= 500 ? IOTP_ERR_INTERNAL : IOTP_ERR_INVALID,
		              "EST %s answered %ld: %s", url, status, text);
		goto out;
	}
	if ((rc = est_parse_certs(call.body.data != NULL ? call.body.data : "", call.body.len,
	                          csr_key, cert_pem, cert_len, err)) != IOTP_OK)
		dev_fail(why, IOTP_CAUSE_PROTOCOL, 0, NULL, NULL, rc, "reply");
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(curl);
	X509_REQ_free(req);
	free(b64);
	buf_cleanup(&call.body);
	return rc;
}
