/*
 * EST routes (see est.h): decode the body, decide which credential the
 * request carries, call the enrolment of core/authlist.h, encode the
 * certificate as RFC 7030 wants it. Every answer, errors included, is made
 * here (not through the AWS error table), because EST clients expect the
 * HTTP semantics of RFC 7030 and a WWW-Authenticate challenge.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/pkcs7.h>

#include "common/log.h"
#include "common/util.h"
#include "core/accesskey.h"
#include "core/authlist.h"
#include "server/api.h"
#include "server/est.h"

#define EST_REALM "Basic realm=\"iotprov EST\", charset=\"UTF-8\""
#define PKCS7_CERTS_ONLY "application/pkcs7-mime; smime-type=certs-only"

/* ------------------------------------------------------------------ */
/* Codecs                                                              */

/* Strict base64 with whitespace skipped; out has room for len * 3 / 4 + 3. */
static iotp_rc b64_decode(const char *in, size_t len, unsigned char *out, size_t *out_len,
                          struct iotp_err *err)
{
	uint32_t acc = 0;
	size_t n = 0, o = 0, pad = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		int v;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || (v = util_b64val(c)) < 0)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "the body is not base64 (character %zu)", i + 1);
		acc = acc << 6 | (uint32_t)v;
		if (++n % 4 == 0) {
			out[o++] = (unsigned char)(acc >> 16);
			out[o++] = (unsigned char)(acc >> 8);
			out[o++] = (unsigned char)acc;
			acc = 0;
		}
	}
	switch (n % 4) {
	case 0:
		if (pad != 0)
			goto bad;
		break;
	case 2:
		if (pad > 2 || (acc & 0xf) != 0)
			goto bad;
		out[o++] = (unsigned char)(acc >> 4);
		break;
	case 3:
		if (pad > 1 || (acc & 0x3) != 0)
			goto bad;
		out[o++] = (unsigned char)(acc >> 10);
		out[o++] = (unsigned char)(acc >> 2);
		break;
	default:
		goto bad;
	}
	*out_len = o;
	return IOTP_OK;
bad:
	return iotp_err_set(err, IOTP_ERR_INVALID, "the body is not base64 (bad length or padding)");
}

iotp_rc est_decode_body(const char *body, size_t len, unsigned char **der, size_t *der_len,
                        struct iotp_err *err)
{
	unsigned char *buf;
	size_t n = 0;
	iotp_rc rc;

	if (len > EST_BODY_MAX)
		return iotp_err_set(err, IOTP_ERR_TOO_BIG, "the body is larger than %d bytes",
		                    EST_BODY_MAX);
	buf = malloc(len / 4 * 3 + 4);
	if (buf == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	if ((rc = b64_decode(body, len, buf, &n, err)) != IOTP_OK) {
		free(buf);
		return rc;
	}
	if (n == 0) {
		free(buf);
		return iotp_err_set(err, IOTP_ERR_INVALID, "the body is empty: send a base64 PKCS#10");
	}
	*der = buf;
	*der_len = n;
	return IOTP_OK;
}

iotp_rc est_encode_certs(X509 *const *certs, size_t n, char **out, size_t *len,
                         struct iotp_err *err)
{
	PKCS7 *p7 = PKCS7_new();
	unsigned char *der = NULL;
	char *text = NULL;
	int dlen;
	size_t pos = 0, cap;
	iotp_rc rc = IOTP_OK;

	if (p7 == NULL || PKCS7_set_type(p7, NID_pkcs7_signed) != 1 ||
	    PKCS7_content_new(p7, NID_pkcs7_data) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "PKCS#7");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (PKCS7_add_certificate(p7, certs[i]) != 1) {
			rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "PKCS#7 certificate");
			goto out;
		}
	if ((dlen = i2d_PKCS7(p7, &der)) <= 0) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "PKCS#7 encoding");
		goto out;
	}
	cap = ((size_t)dlen + 2) / 3 * 4 + (size_t)dlen / 48 + 3;
	if ((text = malloc(cap)) == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < dlen; i += 48) {
		int chunk = dlen - i < 48 ? dlen - i : 48;

		pos += (size_t)EVP_EncodeBlock((unsigned char *)text + pos, der + i, chunk);
		text[pos++] = '\n';
	}
	text[pos] = '\0';
	*out = text;
	*len = pos;
	text = NULL;
out:
	free(text);
	OPENSSL_free(der);
	PKCS7_free(p7);
	return rc;
}

iotp_rc est_parse_basic(const char *header, char user[EST_USER_MAX + 1],
                        char pass[EST_PASS_MAX + 1], struct iotp_err *err)
{
	unsigned char dec[EST_USER_MAX + EST_PASS_MAX + 8];
	const char *p;
	size_t len, n = 0;
	char *colon;
	iotp_rc rc = IOTP_OK;

	if (header == NULL || strncasecmp(header, "Basic ", 6) != 0)
		return iotp_err_set(err, IOTP_ERR_AUTH, "not HTTP Basic credentials");
	p = header + 6;
	while (*p == ' ')
		p++;
	len = strlen(p);
	if (len == 0 || len / 4 * 3 + 4 > sizeof(dec) - 1)
		return iotp_err_set(err, IOTP_ERR_AUTH, "malformed HTTP Basic credentials");
	if (b64_decode(p, len, dec, &n, NULL) != IOTP_OK || n >= sizeof(dec)) {
		rc = iotp_err_set(err, IOTP_ERR_AUTH, "malformed HTTP Basic credentials");
		goto out;
	}
	dec[n] = '\0';
	colon = memchr(dec, ':', n);
	if (colon == NULL || memchr(dec, '\0', n) != NULL ||
	    (size_t)(colon - (char *)dec) > EST_USER_MAX ||
	    n - (size_t)(colon - (char *)dec) - 1 > EST_PASS_MAX) {
		rc = iotp_err_set(err, IOTP_ERR_AUTH, "malformed HTTP Basic credentials");
		goto out;
	}
	*colon = '\0';
	util_strlcpy(user, (char *)dec, EST_USER_MAX + 1);
	util_strlcpy(pass, colon + 1, EST_PASS_MAX + 1);
out:
	OPENSSL_cleanse(dec, sizeof(dec));
	return rc;
}

/* ------------------------------------------------------------------ */
/* Answers                                                             */

static iotp_rc text_answer(struct api_response *resp, int status, const char *msg)
{
	char line[IOTP_ERR_MSG_MAX + 2];
	size_t n = util_strlcpy(line, msg, sizeof(line) - 1);

	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	line[n] = '\0';
	return api_response_text(resp, status, "text/plain; charset=utf-8", line, n);
}

static iotp_rc error_answer(struct api_request *rq, struct api_response *resp, iotp_rc rc,
                            const char *msg)
{
	int status;

	switch (rc) {
	case IOTP_ERR_INVALID:
	case IOTP_ERR_CERT:
	case IOTP_ERR_TEMPLATE:
	case IOTP_ERR_UNSUPPORTED:
	case IOTP_ERR_POLICY:
	case IOTP_ERR_LIMIT:
		status = 400;
		break;
	case IOTP_ERR_AUTH:
		status = 401;
		break;
	case IOTP_ERR_DENIED:
	case IOTP_ERR_STATE:
	case IOTP_ERR_EXPIRED:
		status = 403;
		break;
	case IOTP_ERR_NOT_FOUND:
		status = 404;
		break;
	case IOTP_ERR_EXISTS:
	case IOTP_ERR_CONFLICT:
		status = 409;
		break;
	case IOTP_ERR_TOO_BIG:
		status = 413;
		break;
	case IOTP_ERR_BUSY:
	case IOTP_ERR_THROTTLED:
		status = 503;
		break;
	default:
		status = 500;
		break;
	}
	LOG_INFO("est: %s %s -> %d: %s", rq->request_id, rq->route->operation, status, msg);
	if (status >= 500) {
		char generic[128];

		snprintf(generic, sizeof(generic), "internal error, see server log (request id %s)",
		         rq->request_id);
		return text_answer(resp, status, generic);
	}
	return text_answer(resp, status, msg);
}

static iotp_rc challenge(struct api_request *rq, struct api_response *resp, const char *why)
{
	iotp_rc rc = api_response_header(resp, "WWW-Authenticate", EST_REALM);

	if (rc != IOTP_OK)
		return rc;
	LOG_INFO("est: %s %s -> 401: %s", rq->request_id, rq->route->operation, why);
	return text_answer(resp, 401, why);
}

static iotp_rc certs_answer(struct api_response *resp, X509 *const *certs, size_t n,
                            struct iotp_err *err)
{
	char *text = NULL;
	size_t len = 0;
	iotp_rc rc;

	if ((rc = est_encode_certs(certs, n, &text, &len, err)) != IOTP_OK)
		return rc;
	rc = api_response_text(resp, 200, PKCS7_CERTS_ONLY, text, len);
	if (rc == IOTP_OK)
		rc = api_response_header(resp, "Content-Transfer-Encoding", "base64");
	free(text);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Routes                                                              */

static int auth_enabled(const struct api_request *rq, const char *kind)
{
	const char *p = rq->core->conf->est_auth;
	size_t k = strlen(kind);

	while (*p != '\0') {
		size_t n = strcspn(p, ",");

		if (n == k && strncmp(p, kind, n) == 0)
			return 1;
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int label_ok(const char *label)
{
	size_t n = label != NULL ? strlen(label) : 0;

	if (n == 0 || n > 36)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)label[i]) && label[i] != '_' && label[i] != '-')
			return 0;
	return 1;
}

/* GET cacerts */
static iotp_rc get_cacerts(struct api_request *rq, struct api_response *resp,
                           struct iotp_err *err)
{
	X509 *certs[2];
	size_t n = 0;

	if (api_param(rq, "label") != NULL && !label_ok(api_param(rq, "label")))
		return error_answer(rq, resp, IOTP_ERR_NOT_FOUND, "unknown EST label");
	if (rq->core->issuing.cert == NULL)
		return error_answer(rq, resp, IOTP_ERR_CONFIG, "no issuing CA loaded");
	certs[n++] = rq->core->issuing.cert;
	if (rq->core->root != NULL)
		certs[n++] = rq->core->root;
	return certs_answer(resp, certs, n, err);
}

/* GET csrattrs */
static iotp_rc get_csrattrs(struct api_request *rq, struct api_response *resp,
                            struct iotp_err *err)
{
	(void)err;
	if (api_param(rq, "label") != NULL && !label_ok(api_param(rq, "label")))
		return error_answer(rq, resp, IOTP_ERR_NOT_FOUND, "unknown EST label");
	return api_response_text(resp, 204, "application/csrattrs", "", 0);
}

/* Checks the content type and decodes the body. On failure the answer is
 * set and *answered is 1. */
static iotp_rc read_csr(struct api_request *rq, struct api_response *resp, unsigned char **der,
                        size_t *der_len, int *answered)
{
	const char *ct = api_header(rq, "Content-Type");
	struct iotp_err e;
	iotp_rc rc;

	*answered = 1;
	if (ct == NULL || strncasecmp(ct, "application/pkcs10", 18) != 0 ||
	    (ct[18] != '\0' && ct[18] != ';' && ct[18] != ' ')) {
		iotp_rc arc = text_answer(resp, 415,
		                          "Content-Type must be application/pkcs10 (a base64 PKCS#10 "
		                          "CSR)");

		LOG_INFO("est: %s %s -> 415", rq->request_id, rq->route->operation);
		return arc;
	}
	if ((rc = est_decode_body(rq->body, rq->body_len, der, der_len, &e)) != IOTP_OK)
		return error_answer(rq, resp, rc, e.msg);
	*answered = 0;
	return IOTP_OK;
}

static iotp_rc answer_enrolled(struct api_request *rq, struct api_response *resp,
                               struct enroll_out *out, struct iotp_err *err)
{
	X509 *x = NULL;
	iotp_rc rc;

	if ((rc = pki_cert_parse(out->cert_pem, strlen(out->cert_pem), &x, err)) != IOTP_OK)
		return rc;
	LOG_INFO("est: %s %s: certificate %s%s%s", rq->request_id, rq->route->operation,
	         out->cert_id, out->thing_name[0] != '\0' ? " for thing " : "", out->thing_name);
	rc = certs_answer(resp, &x, 1, err);
	X509_free(x);
	return rc;
}

/* POST simpleenroll */
static iotp_rc simple_enroll(struct api_request *rq, struct api_response *resp,
                             struct iotp_err *err)
{
	const char *label = api_param(rq, "label"), *authz = api_header(rq, "Authorization");
	struct enroll_in in;
	struct enroll_out out;
	struct accesskey key;
	unsigned char *der = NULL;
	size_t der_len = 0;
	char actor[ACCESSKEY_ID_LEN + PKI_CERT_ID_LEN + 16], peer_id[PKI_CERT_ID_LEN + 1];
	struct iotp_err e;
	int answered = 0, is_claim = 0;
	iotp_rc rc;

	memset(&in, 0, sizeof(in));
	memset(&out, 0, sizeof(out));
	memset(&key, 0, sizeof(key));
	iotp_err_clear(&e);
	if (label != NULL && !label_ok(label))
		return error_answer(rq, resp, IOTP_ERR_NOT_FOUND, "unknown EST label");
	if ((rc = read_csr(rq, resp, &der, &der_len, &answered)) != IOTP_OK || answered)
		goto out;
	in.csr = der;
	in.csr_len = der_len;
	in.template_name = label;

	if (rq->peer_cert != NULL && auth_enabled(rq, "claim")) {
		if ((rc = pki_cert_id(rq->peer_cert, peer_id, &e)) != IOTP_OK ||
		    (rc = authlist_cert_is_claim(rq->core, peer_id, &is_claim, &e)) != IOTP_OK) {
			rc = error_answer(rq, resp, rc, e.msg);
			goto out;
		}
	}
	if (is_claim) {
		in.via = ENROLL_CLAIM;
		in.claim_cert_id = peer_id;
		snprintf(actor, sizeof(actor), "device:%s", peer_id);
	} else if (authz != NULL && auth_enabled(rq, "basic")) {
		char user[EST_USER_MAX + 1], pass[EST_PASS_MAX + 1];
		int ok = 0;

		if (est_parse_basic(authz, user, pass, &e) == IOTP_OK && accesskey_id_valid(user) &&
		    accesskey_lookup(rq->core, user, &key, &e) == IOTP_OK && key.active &&
		    util_secure_eq(key.secret, strlen(key.secret), pass, strlen(pass)))
			ok = 1;
		OPENSSL_cleanse(pass, sizeof(pass));
		if (!ok) {
			accesskey_cleanup(&key);
			rc = challenge(rq, resp, "the access key id or secret is not valid");
			goto out;
		}
		in.via = ENROLL_KEY;
		in.key = &key;
		if (accesskey_touch(rq->core, &key, util_now(), &e) != IOTP_OK)
			LOG_WARN("est: %s: cannot record the use of key %s: %s", rq->request_id, key.id,
			         e.msg);
		snprintf(actor, sizeof(actor), "key:%s", key.id);
	} else {
		int known = 0;

		if (auth_enabled(rq, "list") &&
		    (rc = authlist_csr_known(rq->core, der, der_len, &known, &e)) != IOTP_OK) {
			rc = error_answer(rq, resp, rc, e.msg);
			goto out;
		}
		if (!known && auth_enabled(rq, "basic")) {
			rc = challenge(rq, resp,
			               "authenticate: this public key is on no authorized key list");
			goto out;
		}
		if (!auth_enabled(rq, "list")) {
			rc = error_answer(rq, resp, IOTP_ERR_DENIED,
			                  "enrolment needs a provisioning claim certificate (mutual TLS)");
			goto out;
		}
		in.via = ENROLL_AUTHLIST;
		util_strlcpy(actor, "device:authlist", sizeof(actor));
	}
	rc = authlist_enroll(rq->core, actor, &in, &out, &e);
	accesskey_cleanup(&key);
	if (rc != IOTP_OK) {
		rc = error_answer(rq, resp, rc, e.msg);
		goto out;
	}
	rc = answer_enrolled(rq, resp, &out, err);
out:
	enroll_out_cleanup(&out);
	free(der);
	return rc;
}

/* POST simplereenroll */
static iotp_rc simple_reenroll(struct api_request *rq, struct api_response *resp,
                               struct iotp_err *err)
{
	struct enroll_out out;
	unsigned char *der = NULL;
	size_t der_len = 0;
	char peer_id[PKI_CERT_ID_LEN + 1], actor[PKI_CERT_ID_LEN + 16];
	struct iotp_err e;
	int answered = 0;
	iotp_rc rc;

	memset(&out, 0, sizeof(out));
	if (api_param(rq, "label") != NULL && !label_ok(api_param(rq, "label")))
		return error_answer(rq, resp, IOTP_ERR_NOT_FOUND, "unknown EST label");
	if (rq->peer_cert == NULL)
		return error_answer(rq, resp, IOTP_ERR_DENIED,
		                    "re-enrolment needs the current certificate as the TLS client "
		                    "certificate");
	if ((rc = read_csr(rq, resp, &der, &der_len, &answered)) != IOTP_OK || answered)
		goto out;
	if ((rc = pki_cert_id(rq->peer_cert, peer_id, &e)) != IOTP_OK) {
		rc = error_answer(rq, resp, rc, e.msg);
		goto out;
	}
	snprintf(actor, sizeof(actor), "device:%s", peer_id);
	if ((rc = authlist_reenroll(rq->core, actor, peer_id, der, der_len, &out, &e)) != IOTP_OK) {
		rc = error_answer(rq, resp, rc, e.msg);
		goto out;
	}
	rc = answer_enrolled(rq, resp, &out, err);
out:
	enroll_out_cleanup(&out);
	free(der);
	return rc;
}

static const struct route routes[] = {
	{"GET", "/.well-known/est/cacerts", "EstCaCerts", ROUTE_PUBLIC, NULL, get_cacerts},
	{"GET", "/.well-known/est/{label}/cacerts", "EstCaCerts", ROUTE_PUBLIC, NULL, get_cacerts},
	{"GET", "/.well-known/est/csrattrs", "EstCsrAttrs", ROUTE_PUBLIC, NULL, get_csrattrs},
	{"GET", "/.well-known/est/{label}/csrattrs", "EstCsrAttrs", ROUTE_PUBLIC, NULL,
	 get_csrattrs},
	{"POST", "/.well-known/est/simpleenroll", "EstSimpleEnroll", ROUTE_PUBLIC, NULL,
	 simple_enroll},
	{"POST", "/.well-known/est/{label}/simpleenroll", "EstSimpleEnroll", ROUTE_PUBLIC, NULL,
	 simple_enroll},
	{"POST", "/.well-known/est/simplereenroll", "EstSimpleReenroll", ROUTE_PUBLIC, NULL,
	 simple_reenroll},
	{"POST", "/.well-known/est/{label}/simplereenroll", "EstSimpleReenroll", ROUTE_PUBLIC,
	 NULL, simple_reenroll},
};

const struct route_table api_est_routes = {routes, sizeof(routes) / sizeof(routes[0])};
