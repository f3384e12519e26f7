/*
 * The API client (see client.h). libcurl does the TLS and the SigV4
 * signature; this file resolves where to connect and with what, builds
 * canonical (sorted, RFC 3986) query strings so that the signature libcurl
 * computes is the one the server recomputes, and turns every failure into
 * a sentence that says what to do.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "cli/iotprov/cli.h"
#include "cli/iotprov/client.h"
#include "cli/iotprov/datadir.h"
#include "common/buf.h"
#include "common/util.h"

#define MAX_PAGES 1000000

static iotp_rc env_creds(struct api_client *c, struct iotp_err *err)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");

	if (id == NULL || *id == '\0' || secret == NULL || *secret == '\0')
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "no credentials: with --endpoint-url, set AWS_ACCESS_KEY_ID and "
		                    "AWS_SECRET_ACCESS_KEY (e.g. from `iotprov key create --format "
		                    "env`), or pass --data-dir DIR to use DIR/%s",
		                    DATADIR_CREDENTIALS);
	if (util_strlcpy(c->key_id, id, sizeof(c->key_id)) >= sizeof(c->key_id) ||
	    util_strlcpy(c->secret, secret, sizeof(c->secret)) >= sizeof(c->secret))
		return iotp_err_set(err, IOTP_ERR_CONFIG, "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY "
		                                          "is too long");
	snprintf(c->creds_from, sizeof(c->creds_from), "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
	return IOTP_OK;
}

static iotp_rc dir_setup(struct api_client *c, const char *dir, int want_endpoint,
                         struct iotp_err *err)
{
	struct datadir d;
	struct creds cr;
	char path[PATH_MAX];
	iotp_rc rc;

	if ((rc = datadir_open(&d, dir, err)) != IOTP_OK)
		return rc;
	util_strlcpy(c->region, d.conf->region, sizeof(c->region));
	if (want_endpoint) {
		if ((rc = datadir_api_url(d.conf->api_listen, c->endpoint, sizeof(c->endpoint),
		                          err)) != IOTP_OK)
			goto out;
		snprintf(c->endpoint_from, sizeof(c->endpoint_from), "[api] listen of %s",
		         d.conf_file);
	}
	if ((rc = datadir_file(&d, DATADIR_CA_BUNDLE, c->ca_file, sizeof(c->ca_file), err)) !=
	        IOTP_OK ||
	    (rc = datadir_file(&d, DATADIR_CREDENTIALS, path, sizeof(path), err)) != IOTP_OK)
		goto out;
	if ((rc = creds_read(path, DATADIR_PROFILE, &cr, err)) != IOTP_OK)
		goto out;
	util_strlcpy(c->key_id, cr.key_id, sizeof(c->key_id));
	util_strlcpy(c->secret, cr.secret, sizeof(c->secret));
	creds_cleanup(&cr);
	snprintf(c->creds_from, sizeof(c->creds_from), "%s", path);
out:
	datadir_close(&d);
	return rc;
}

iotp_rc client_open(struct api_client *c, const char *data_dir, const char *endpoint_url,
                    struct iotp_err *err)
{
	iotp_rc rc;

	memset(c, 0, sizeof(*c));
	if (endpoint_url != NULL) {
		size_t n;

		if (strncmp(endpoint_url, "https://", 8) != 0 && strncmp(endpoint_url, "http://", 7) != 0)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "--endpoint-url %s: expected https://HOST:PORT", endpoint_url);
		if (util_strlcpy(c->endpoint, endpoint_url, sizeof(c->endpoint)) >= sizeof(c->endpoint))
			return iotp_err_set(err, IOTP_ERR_INVALID, "--endpoint-url is too long");
		n = strlen(c->endpoint);
		while (n > 0 && c->endpoint[n - 1] == '/')
			c->endpoint[--n] = '\0';
		snprintf(c->endpoint_from, sizeof(c->endpoint_from), "--endpoint-url");
		if (data_dir != NULL) {
			rc = dir_setup(c, data_dir, 0, err);
		} else {
			const char *ca = getenv("AWS_CA_BUNDLE");
			const char *region = getenv("AWS_REGION");

			if (region == NULL || *region == '\0')
				region = getenv("AWS_DEFAULT_REGION");
			util_strlcpy(c->region, region != NULL && *region != '\0' ? region : "us-east-1",
			             sizeof(c->region));
			if (ca != NULL && *ca != '\0')
				util_strlcpy(c->ca_file, ca, sizeof(c->ca_file));
			rc = env_creds(c, err);
		}
	} else {
		rc = dir_setup(c, data_dir != NULL ? data_dir : CLI_DEFAULT_DATA_DIR, 1, err);
	}
	if (rc != IOTP_OK) {
		OPENSSL_cleanse(c->secret, sizeof(c->secret));
		return rc;
	}
	c->curl = curl_easy_init();
	if (c->curl == NULL) {
		OPENSSL_cleanse(c->secret, sizeof(c->secret));
		return iotp_err_set(err, IOTP_ERR_NOMEM, "cannot initialise libcurl");
	}
	return IOTP_OK;
}

void client_close(struct api_client *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
	OPENSSL_cleanse(c->secret, sizeof(c->secret));
}

static int param_cmp(const void *a, const void *b)
{
	return strcmp(((const struct client_param *)a)->name,
	              ((const struct client_param *)b)->name);
}

/* Appends "?name=value&..." sorted by name, values RFC 3986 encoded. */
static iotp_rc query_append(CURL *curl, struct buf *url, const struct client_param *params,
                            size_t n, struct iotp_err *err)
{
	struct client_param *sorted;
	iotp_rc rc = IOTP_OK;
	int first = 1;

	if (n == 0)
		return IOTP_OK;
	sorted = malloc(n * sizeof(*sorted));
	if (sorted == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	memcpy(sorted, params, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), param_cmp);
	for (size_t i = 0; rc == IOTP_OK && i < n; i++) {
		char *v;

		if (sorted[i].value == NULL)
			continue;
		/* curl_easy_escape keeps exactly the RFC 3986 unreserved set. */
		v = curl_easy_escape(curl, sorted[i].value, 0);
		if (v == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
			break;
		}
		if (buf_printf(url, "%c%s=%s", first ? '?' : '&', sorted[i].name, v) != IOTP_OK)
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "request URL too long");
		first = 0;
		curl_free(v);
	}
	free(sorted);
	return rc;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct buf *b = ud;

	if (buf_append(b, p, size * n) != IOTP_OK)
		return 0; /* over CLIENT_MAX_RESPONSE: libcurl stops with a write error */
	return size * n;
}

struct headers {
	char error_type[128];
};

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct headers *h = ud;
	size_t len = size * n;
	static const char name[] = "x-amzn-errortype:";

	if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
		size_t i = sizeof(name) - 1, k = 0;

		while (i < len && (p[i] == ' ' || p[i] == '\t'))
			i++;
		/* "Name:" or "Name:extra": keep the name. */
		while (i < len && p[i] != ':' && p[i] != '\r' && p[i] != '\n' &&
		       k + 1 < sizeof(h->error_type))
			h->error_type[k++] = p[i++];
		h->error_type[k] = '\0';
	}
	return len;
}

static iotp_rc transport_error(struct api_client *c, CURLcode cc, const char *errbuf,
                               struct iotp_err *err)
{
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);

	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		return iotp_err_set(err, IOTP_ERR_IO,
		                    "cannot connect to %s (from %s): %s. Is `iotprov up` running? If "
		                    "it listens elsewhere, pass --endpoint-url",
		                    c->endpoint, c->endpoint_from, detail);
	case CURLE_COULDNT_RESOLVE_HOST:
		return iotp_err_set(err, IOTP_ERR_IO, "cannot resolve the host of %s (from %s): %s",
		                    c->endpoint, c->endpoint_from, detail);
	case CURLE_PEER_FAILED_VERIFICATION:
#if LIBCURL_VERSION_NUM < 0x073e00
	case CURLE_SSL_CACERT:
#endif
		return iotp_err_set(err, IOTP_ERR_IO,
		                    "the TLS certificate of %s does not verify against %s: %s. Use the "
		                    "data directory's %s (--data-dir, or AWS_CA_BUNDLE)",
		                    c->endpoint, c->ca_file[0] ? c->ca_file : "the system's CAs",
		                    detail, DATADIR_CA_BUNDLE);
	case CURLE_SSL_CACERT_BADFILE:
		return iotp_err_set(err, IOTP_ERR_IO, "cannot read the CA bundle %s: %s", c->ca_file,
		                    detail);
	case CURLE_OPERATION_TIMEDOUT:
		return iotp_err_set(err, IOTP_ERR_IO, "no answer from %s in time: %s", c->endpoint,
		                    detail);
	case CURLE_WRITE_ERROR:
		return iotp_err_set(err, IOTP_ERR_TOO_BIG, "the answer of %s is larger than %d bytes",
		                    c->endpoint, CLIENT_MAX_RESPONSE);
	default:
		return iotp_err_set(err, IOTP_ERR_IO, "request to %s failed: %s", c->endpoint, detail);
	}
}

static iotp_rc http_error(struct api_client *c, const char *operation, long status,
                          const struct headers *h, const struct buf *body, struct iotp_err *err)
{
	const char *type = h->error_type[0] ? h->error_type : "error";
	const char *message = "";
	json_t *j = NULL;
	char msg[300];
	iotp_rc rc;

	if (body->data != NULL) {
		j = json_loadb(body->data, body->len, 0, NULL);
		if (json_is_object(j)) {
			json_t *m = json_object_get(j, "message");

			if (!json_is_string(m))
				m = json_object_get(j, "Message");
			if (json_is_string(m))
				message = json_string_value(m);
		}
	}
	/* The server's text goes to a terminal: keep it on one clean line. */
	util_strlcpy(msg, message, sizeof(msg));
	for (char *p = msg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = ' ';
	if (status == 401 || (status == 403 && strcmp(type, "AccessDeniedException") != 0))
		rc = iotp_err_set(err, IOTP_ERR_AUTH,
		                  "%s: the server refused the credentials (HTTP %ld %s: %s). Check "
		                  "the access key in %s",
		                  operation, status, type, msg, c->creds_from);
	else if (status == 403)
		rc = iotp_err_set(err, IOTP_ERR_DENIED,
		                  "%s: access denied (%s). Use a key whose role allows it (iotprov "
		                  "key create --role admin|operator)",
		                  operation, msg);
	else if (status == 404)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "%s: not found (HTTP 404 %s: %s)", operation,
		                  type, msg);
	else if (status >= 500)
		rc = iotp_err_set(err, IOTP_ERR_INTERNAL,
		                  "%s: the server failed (HTTP %ld %s: %s); see the iotprovd log",
		                  operation, status, type, msg);
	else
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "%s: HTTP %ld %s: %s", operation, status, type,
		                  msg);
	json_decref(j);
	return rc;
}

iotp_rc client_call(struct api_client *c, const char *method, const char *path,
                    const struct client_param *params, size_t nparams, const char *operation,
                    const char *body, json_t **out, struct iotp_err *err)
{
	CURL *curl = c->curl;
	struct curl_slist *hdrs = NULL, *h2;
	struct buf url, resp;
	struct headers h;
	char sigv4[128], errbuf[CURL_ERROR_SIZE];
	json_t *j = NULL;
	json_error_t jerr;
	long status = 0;
	CURLcode cc;
	iotp_rc rc;

	buf_init(&url, 8192);
	buf_init(&resp, CLIENT_MAX_RESPONSE);
	memset(&h, 0, sizeof(h));
	errbuf[0] = '\0';
	if ((rc = buf_printf(&url, "%s%s", c->endpoint, path)) != IOTP_OK ||
	    (rc = query_append(curl, &url, params, nparams, err)) != IOTP_OK)
		goto out;
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:iot", c->region);
	hdrs = curl_slist_append(NULL, "Accept: application/json");
	if (hdrs != NULL && body != NULL) {
		h2 = curl_slist_append(hdrs, "Content-Type: application/json");
		if (h2 == NULL) {
			curl_slist_free_all(hdrs);
			hdrs = NULL;
		} else {
			hdrs = h2;
		}
	}
	if (hdrs == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url.data);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4);
	curl_easy_setopt(curl, CURLOPT_USERNAME, c->key_id);
	curl_easy_setopt(curl, CURLOPT_PASSWORD, c->secret);
	if (c->ca_file[0] != '\0')
		curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &h);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "iotprov-cli/" "0.1");
	cc = curl_easy_perform(curl);
	/* The password lives on in the handle until the next reset: drop it. */
	curl_easy_setopt(curl, CURLOPT_PASSWORD, "");
	if (cc != CURLE_OK) {
		rc = transport_error(c, cc, errbuf, err);
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		rc = http_error(c, operation, status, &h, &resp, err);
		goto out;
	}
	if (resp.len == 0) {
		j = json_object();
	} else {
		j = json_loadb(resp.data, resp.len, 0, &jerr);
		if (j == NULL || !json_is_object(j)) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID,
			                  "%s: the answer of %s is not a JSON object (%s): is it iotprovd?",
			                  operation, c->endpoint, j == NULL ? jerr.text : "not an object");
			goto out;
		}
	}
	if (j == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	*out = j;
	j = NULL;
	rc = IOTP_OK;
out:
	json_decref(j);
	curl_slist_free_all(hdrs);
	buf_cleanup(&url);
	buf_cleanup(&resp);
	return rc;
}

iotp_rc client_list_all(struct api_client *c, const struct client_pager *pager,
                        const struct client_param *extra, size_t nextra, json_t **items,
                        struct iotp_err *err)
{
	struct client_param *params;
	json_t *all = json_array();
	char *token = NULL;
	iotp_rc rc = IOTP_OK;

	params = calloc(nextra + 2, sizeof(*params));
	if (params == NULL || all == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (nextra > 0)
		memcpy(params, extra, nextra * sizeof(*params));
	params[nextra] = (struct client_param){pager->size_param, pager->size_value};
	for (int page = 0;; page++) {
		json_t *ans = NULL, *list, *next;

		params[nextra + 1] = (struct client_param){pager->token_param, token};
		if (page >= MAX_PAGES) {
			rc = iotp_err_set(err, IOTP_ERR_LIMIT, "%s: more than %d pages", pager->operation,
			                  MAX_PAGES);
			goto out;
		}
		if ((rc = client_call(c, "GET", pager->path, params, nextra + 2, pager->operation, NULL,
		                      &ans, err)) != IOTP_OK)
			goto out;
		list = json_object_get(ans, pager->items_member);
		next = json_object_get(ans, pager->next_member);
		if (list != NULL && !json_is_array(list)) {
			json_decref(ans);
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "%s: \"%s\" in the answer is not a list",
			                  pager->operation, pager->items_member);
			goto out;
		}
		if (list != NULL && json_array_extend(all, list) != 0) {
			json_decref(ans);
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
			goto out;
		}
		if (!json_is_string(next) || json_string_length(next) == 0) {
			json_decref(ans);
			break;
		}
		if (token != NULL && strcmp(token, json_string_value(next)) == 0) {
			json_decref(ans);
			rc = iotp_err_set(err, IOTP_ERR_INVALID,
			                  "%s: the server returned the same %s twice", pager->operation,
			                  pager->next_member);
			goto out;
		}
		free(token);
		token = strdup(json_string_value(next));
		json_decref(ans);
		if (token == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	*items = all;
	all = NULL;
out:
	json_decref(all);
	free(token);
	free(params);
	return rc;
}
