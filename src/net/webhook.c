/*
 * The pre-provisioning hook caller over libcurl (see webhook.h): the secret
 * file, HMAC-SHA256 signing, one bounded POST per call on the caller's
 * thread, and the parsing of the answer.
 *
 * Nothing here keeps per-call state in the struct webhook, so one caller
 * serves every thread of a process (the broker's workers, iotprovd's
 * tasks) without a lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "net/webhook.h"

struct webhook {
	unsigned char *secret;
	size_t secret_len;
	char *ca_file;      /* NULL: system trust store */
	int curl_inited;
};

void webhook_free(struct webhook *w)
{
	if (w == NULL)
		return;
	if (w->secret != NULL)
		OPENSSL_clear_free(w->secret, w->secret_len);
	free(w->ca_file);
	if (w->curl_inited)
		curl_global_cleanup();
	free(w);
}

iotp_rc webhook_new_secret(const void *secret, size_t len, const char *ca_file,
                           struct webhook **out, struct iotp_err *err)
{
	struct webhook *w;
	iotp_rc rc = IOTP_OK;

	if (secret == NULL || len < WEBHOOK_SECRET_MIN || len > WEBHOOK_SECRET_MAX)
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "the hook secret must be %d to %d bytes", WEBHOOK_SECRET_MIN,
		                    WEBHOOK_SECRET_MAX);
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "webhook: out of memory");
	w->secret = OPENSSL_malloc(len);
	if (w->secret == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "webhook: out of memory");
		goto out;
	}
	memcpy(w->secret, secret, len);
	w->secret_len = len;
	if (ca_file != NULL && ca_file[0] != '\0' && (w->ca_file = strdup(ca_file)) == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "webhook: out of memory");
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rc = iotp_err_set(err, IOTP_ERR_INTERNAL, "libcurl failed to initialise");
		goto out;
	}
	w->curl_inited = 1;
	*out = w;
	w = NULL;
out:
	webhook_free(w);
	return rc;
}

/* Creates path with a fresh random secret unless it exists: the secret is
 * written to a private temporary file first and published with link(),
 * which fails with EEXIST when another process got there first. */
static iotp_rc secret_create(const char *path, struct iotp_err *err)
{
	unsigned char raw[32];
	char hex[65 + 1], tmp[CONF_STR_MAX * 2 + 32];
	int fd = -1, n;
	iotp_rc rc = IOTP_OK;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return iotp_err_set(err, IOTP_ERR_CONFIG, "hook secret path too long");
	if ((rc = util_random(raw, sizeof(raw), err)) != IOTP_OK)
		return rc;
	util_hex(raw, sizeof(raw), hex);
	OPENSSL_cleanse(raw, sizeof(raw));
	hex[64] = '\n';
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (write(fd, hex, 65) != 65 || fsync(fd) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (link(tmp, path) != 0 && errno != EEXIST)
		rc = iotp_err_set(err, IOTP_ERR_IO, "cannot create %s: %s", path, strerror(errno));
	else
		LOG_INFO("webhook: created the hook secret %s", path);
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	OPENSSL_cleanse(hex, sizeof(hex));
	return rc;
}

static iotp_rc secret_read(const char *path, unsigned char *buf, size_t *len,
                           struct iotp_err *err)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	iotp_rc rc = IOTP_OK;

	if (fd < 0)
		return iotp_err_set(err, errno == ENOENT ? IOTP_ERR_NOT_FOUND : IOTP_ERR_IO,
		                    "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = iotp_err_set(err, IOTP_ERR_CONFIG, "%s is not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_CONFIG,
		                  "%s is readable by group or others: chmod 600 it", path);
		goto out;
	}
	while (got < WEBHOOK_SECRET_MAX + 1 &&
	       (n = read(fd, buf + got, WEBHOOK_SECRET_MAX + 1 - got)) > 0)
		got += (size_t)n;
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
		got--;
	if (got < WEBHOOK_SECRET_MIN || got > WEBHOOK_SECRET_MAX)
		rc = iotp_err_set(err, IOTP_ERR_CONFIG, "%s must hold %d to %d bytes of secret", path,
		                  WEBHOOK_SECRET_MIN, WEBHOOK_SECRET_MAX);
	else
		*len = got;
out:
	close(fd);
	return rc;
}

iotp_rc webhook_new(const struct iotp_conf *conf, struct webhook **out, struct iotp_err *err)
{
	unsigned char secret[WEBHOOK_SECRET_MAX + 1];
	char path[CONF_STR_MAX * 2], ca[CONF_STR_MAX * 2];
	size_t len = 0;
	iotp_rc rc;

	ca[0] = '\0';
	if ((rc = conf_path(conf, conf->prov_hook_secret_file, path, sizeof(path), err)) !=
	        IOTP_OK ||
	    (conf->prov_hook_ca_file[0] != '\0' &&
	     (rc = conf_path(conf, conf->prov_hook_ca_file, ca, sizeof(ca), err)) != IOTP_OK))
		return rc;
	rc = secret_read(path, secret, &len, err);
	if (rc == IOTP_ERR_NOT_FOUND) {
		if ((rc = secret_create(path, err)) == IOTP_OK)
			rc = secret_read(path, secret, &len, err);
	}
	if (rc == IOTP_OK)
		rc = webhook_new_secret(secret, len, ca[0] != '\0' ? ca : NULL, out, err);
	OPENSSL_cleanse(secret, sizeof(secret));
	return rc;
}

iotp_rc webhook_sign(const void *secret, size_t secret_len, int64_t timestamp,
                     const char *body, size_t body_len, char out[68], struct iotp_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t mdlen = 0;
	char ts[24], digest[] = "SHA256";
	OSSL_PARAM params[2];
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	int ok, n = snprintf(ts, sizeof(ts), "%lld.", (long long)timestamp);

	params[0] = OSSL_PARAM_construct_utf8_string("digest", digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	ok = ctx != NULL && EVP_MAC_init(ctx, secret, secret_len, params) == 1 &&
	     EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)n) == 1 &&
	     EVP_MAC_update(ctx, (const unsigned char *)body, body_len) == 1 &&
	     EVP_MAC_final(ctx, md, &mdlen, sizeof(md)) == 1 && mdlen == 32;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	if (!ok)
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "HMAC-SHA256");
	memcpy(out, WEBHOOK_SIG_PREFIX, 3);
	util_hex(md, 32, out + 3);
	OPENSSL_cleanse(md, sizeof(md));
	return IOTP_OK;
}

iotp_rc webhook_answer_parse(const char *body, size_t len, json_t **out, struct iotp_err *err)
{
	json_error_t jerr;
	json_t *j;

	if (len > WEBHOOK_ANSWER_MAX)
		return iotp_err_set(err, IOTP_ERR_TOO_BIG, "hook answer over %d bytes",
		                    WEBHOOK_ANSWER_MAX);
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "hook answer is not JSON: %.80s",
		                    jerr.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return iotp_err_set(err, IOTP_ERR_INVALID, "hook answer is not a JSON object");
	}
	*out = j;
	return IOTP_OK;
}

struct sink {
	struct buf b;
	int too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	struct sink *s = ud;
	size_t len = size * n;

	if (buf_append(&s->b, p, len) != IOTP_OK) {
		s->too_big = 1;
		return 0; /* aborts the transfer */
	}
	return len;
}

/* The signed POST of body to url; the answer's body goes to s (which the
 * caller initialised and cleans up). IOTP_OK for any 2xx. */
static iotp_rc webhook_post(struct webhook *w, const char *url, const char *body, int timeout_ms,
                            struct sink *s, struct iotp_err *err)
{
	struct curl_slist *hdrs = NULL, *h;
	char sig[68], line[128], cerr[CURL_ERROR_SIZE];
	int64_t ts = util_now();
	size_t body_len;
	long status = 0;
	CURL *c = NULL;
	CURLcode cc;
	iotp_rc rc;

	cerr[0] = '\0';
	if (w == NULL || url == NULL || body == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "webhook: missing argument");
	if (!prov_hook_url_ok(url))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "hook URL refused: https:// (or http:// to a loopback host) only");
	if (timeout_ms <= 0)
		timeout_ms = PROV_HOOK_TIMEOUT_DEFAULT * 1000;
	body_len = strlen(body);
	if ((rc = webhook_sign(w->secret, w->secret_len, ts, body, body_len, sig, err)) != IOTP_OK)
		return rc;
	h = curl_slist_append(NULL, "Content-Type: application/json");
	hdrs = h;
	if (h != NULL)
		h = curl_slist_append(hdrs, "Expect:");
	snprintf(line, sizeof(line), "X-Iotprov-Timestamp: %lld", (long long)ts);
	if (h != NULL)
		h = curl_slist_append(hdrs, line);
	snprintf(line, sizeof(line), "X-Iotprov-Signature: %s", sig);
	if (h != NULL)
		h = curl_slist_append(hdrs, line);
	OPENSSL_cleanse(line, sizeof(line));
	c = curl_easy_init();
	if (h == NULL || c == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "webhook: out of memory");
		goto out;
	}
	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_USERAGENT, "iotprov-webhook/1") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, s) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr) != CURLE_OK ||
	    (w->ca_file != NULL && curl_easy_setopt(c, CURLOPT_CAINFO, w->ca_file) != CURLE_OK)) {
		rc = iotp_err_set(err, IOTP_ERR_INTERNAL, "webhook: libcurl refused an option");
		goto out;
	}
	cc = curl_easy_perform(c);
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		rc = iotp_err_set(err, IOTP_ERR_TIMEOUT, "hook %s: no answer within %d ms", url,
		                  timeout_ms);
		goto out;
	}
	if (cc == CURLE_WRITE_ERROR && s->too_big) {
		rc = iotp_err_set(err, IOTP_ERR_TOO_BIG, "hook %s: answer over %d bytes", url,
		                  WEBHOOK_ANSWER_MAX);
		goto out;
	}
	if (cc != CURLE_OK) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "hook %s: %s", url,
		                  cerr[0] != '\0' ? cerr : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "hook %s answered HTTP %ld", url, status);
		goto out;
	}
	rc = IOTP_OK;
out:
	if (c != NULL)
		curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	return rc;
}

iotp_rc webhook_call(struct webhook *w, const char *url, const char *body, int timeout_ms,
                     json_t **answer, struct iotp_err *err)
{
	struct sink s;
	iotp_rc rc;

	if (answer == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "webhook: missing argument");
	buf_init(&s.b, WEBHOOK_ANSWER_MAX);
	s.too_big = 0;
	rc = webhook_post(w, url, body, timeout_ms, &s, err);
	if (rc == IOTP_OK)
		rc = webhook_answer_parse(s.b.data != NULL ? s.b.data : "", s.b.len, answer, err);
	buf_cleanup(&s.b);
	return rc;
}

iotp_rc webhook_notify(struct webhook *w, const char *url, const char *body, int timeout_ms,
                       struct iotp_err *err)
{
	struct sink s;
	iotp_rc rc;

	buf_init(&s.b, WEBHOOK_ANSWER_MAX);
	s.too_big = 0;
	rc = webhook_post(w, url, body, timeout_ms, &s, err);
	buf_cleanup(&s.b);
	return rc;
}

static iotp_rc hook_call(void *ctx, const char *url, const char *body, int timeout_ms,
                         json_t **answer, struct iotp_err *err)
{
	return webhook_call(ctx, url, body, timeout_ms, answer, err);
}

void webhook_prov_hook(struct webhook *w, struct prov_hook *hook)
{
	hook->call = hook_call;
	hook->ctx = w;
}
