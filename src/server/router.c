/*
 * Route matching, request parsing and response helpers (see router.h).
 *
 * Patterns are split into segments once, at start-up; a request is split
 * on '/' without decoding, compared segment by segment, and only the
 * parameters of the chosen route are decoded. The router keeps no mutable
 * state, so matching is safe from any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/crypto.h>

#include "common/util.h"
#include "server/router.h"

struct seg {
	const char *text; /* literal text or parameter name, into the pattern */
	size_t len;
	int param;
};

struct compiled {
	const struct route *route;
	struct seg segs[ROUTE_MAX_SEGMENTS];
	int nsegs;
};

struct router {
	struct compiled *routes;
	size_t count;
};

static iotp_rc compile(const struct route *rt, struct compiled *c, struct iotp_err *err)
{
	const char *p = rt->pattern;

	memset(c, 0, sizeof(*c));
	c->route = rt;
	if (rt->method == NULL || rt->operation == NULL || rt->handler == NULL || p == NULL ||
	    p[0] != '/')
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "route %s: needs a method, an operation, a handler and a "
		                    "pattern starting with '/'",
		                    rt->operation != NULL ? rt->operation : "?");
	if (strcmp(p, "/") == 0)
		return IOTP_OK;
	while (*p == '/') {
		const char *s = ++p;
		size_t n;

		while (*p != '\0' && *p != '/')
			p++;
		n = (size_t)(p - s);
		if (c->nsegs == ROUTE_MAX_SEGMENTS || n == 0)
			return iotp_err_set(err, IOTP_ERR_CONFIG,
			                    "route %s %s: empty segment or more than %d segments",
			                    rt->method, rt->pattern, ROUTE_MAX_SEGMENTS);
		if (s[0] == '{') {
			if (n < 3 || s[n - 1] != '}' || memchr(s + 1, '{', n - 2) != NULL ||
			    memchr(s + 1, '}', n - 2) != NULL)
				return iotp_err_set(err, IOTP_ERR_CONFIG,
				                    "route %s %s: a parameter must be a whole segment "
				                    "{name}",
				                    rt->method, rt->pattern);
			c->segs[c->nsegs].text = s + 1;
			c->segs[c->nsegs].len = n - 2;
			c->segs[c->nsegs].param = 1;
		} else {
			if (memchr(s, '{', n) != NULL || memchr(s, '}', n) != NULL)
				return iotp_err_set(err, IOTP_ERR_CONFIG,
				                    "route %s %s: braces inside a literal segment",
				                    rt->method, rt->pattern);
			c->segs[c->nsegs].text = s;
			c->segs[c->nsegs].len = n;
		}
		c->nsegs++;
	}
	if (*p != '\0')
		return iotp_err_set(err, IOTP_ERR_CONFIG, "route %s %s: malformed pattern",
		                    rt->method, rt->pattern);
	return IOTP_OK;
}

iotp_rc router_new(const struct route_table *const *tables, size_t ntables,
                   struct router **out, struct iotp_err *err)
{
	struct router *r = NULL;
	size_t total = 0, k = 0;
	iotp_rc rc = IOTP_OK;

	for (size_t t = 0; t < ntables; t++)
		total += tables[t]->count;
	r = calloc(1, sizeof(*r));
	if (r == NULL || (total > 0 && (r->routes = calloc(total, sizeof(*r->routes))) == NULL)) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "router: out of memory");
		goto out;
	}
	for (size_t t = 0; t < ntables; t++) {
		for (size_t i = 0; i < tables[t]->count; i++) {
			const struct route *rt = &tables[t]->routes[i];

			if ((rc = compile(rt, &r->routes[k], err)) != IOTP_OK)
				goto out;
			for (size_t j = 0; j < k; j++) {
				if (strcmp(r->routes[j].route->method, rt->method) == 0 &&
				    strcmp(r->routes[j].route->pattern, rt->pattern) == 0) {
					rc = iotp_err_set(err, IOTP_ERR_CONFIG,
					                  "routes %s and %s both claim %s %s",
					                  r->routes[j].route->operation, rt->operation,
					                  rt->method, rt->pattern);
					goto out;
				}
			}
			k++;
		}
	}
	r->count = k;
	*out = r;
	r = NULL;
out:
	router_free(r);
	return rc;
}

void router_free(struct router *r)
{
	if (r == NULL)
		return;
	free(r->routes);
	free(r);
}

struct rawseg {
	const char *s;
	size_t len;
};

/* Splits a raw path into at most max segments; -1 when it has more or does
 * not start with '/'. "/" has zero segments. */
static int split_path(const char *path, size_t len, struct rawseg *segs, int max)
{
	int n = 0;
	size_t i = 1;

	if (len == 0 || path[0] != '/')
		return -1;
	if (len == 1)
		return 0;
	while (i <= len) {
		size_t start = i;

		while (i < len && path[i] != '/')
			i++;
		if (n == max)
			return -1;
		segs[n].s = path + start;
		segs[n].len = i - start;
		n++;
		i++;
	}
	return n;
}

/* 1 when c matches segs; the specificity mask has bit (nsegs-1-i) set for
 * each literal segment i, so a larger mask is more specific from the left. */
static int matches(const struct compiled *c, const struct rawseg *segs, int n, uint32_t *mask)
{
	uint32_t m = 0;

	if (c->nsegs != n)
		return 0;
	for (int i = 0; i < n; i++) {
		if (c->segs[i].param) {
			if (segs[i].len == 0)
				return 0;
		} else {
			if (segs[i].len != c->segs[i].len ||
			    memcmp(segs[i].s, c->segs[i].text, segs[i].len) != 0)
				return 0;
			m |= 1u << (ROUTE_MAX_SEGMENTS - 1 - i);
		}
	}
	*mask = m;
	return 1;
}

enum router_result router_match(const struct router *r, const char *method, const char *path,
                                size_t pathlen, const struct route **out, char *allow,
                                size_t allowsize)
{
	struct rawseg segs[ROUTE_MAX_SEGMENTS];
	const struct compiled *best = NULL;
	uint32_t best_mask = 0;
	int n = split_path(path, pathlen, segs, ROUTE_MAX_SEGMENTS);
	int path_found = 0;
	size_t used = 0;

	if (allow != NULL && allowsize > 0)
		allow[0] = '\0';
	if (n < 0)
		return ROUTER_NO_PATH;
	for (size_t i = 0; i < r->count; i++) {
		const struct compiled *c = &r->routes[i];
		uint32_t mask;

		if (!matches(c, segs, n, &mask))
			continue;
		path_found = 1;
		if (strcmp(c->route->method, method) != 0) {
			if (allow != NULL && strstr(allow, c->route->method) == NULL) {
				int w = snprintf(allow + used, allowsize - used, "%s%s",
				                 used > 0 ? ", " : "", c->route->method);

				if (w > 0 && (size_t)w < allowsize - used)
					used += (size_t)w;
			}
			continue;
		}
		if (best == NULL || mask > best_mask) {
			best = c;
			best_mask = mask;
		}
	}
	if (best != NULL) {
		*out = best->route;
		return ROUTER_FOUND;
	}
	return path_found ? ROUTER_NO_METHOD : ROUTER_NO_PATH;
}

iotp_rc api_percent_decode(const char *s, size_t n, char **out)
{
	char *d = malloc(n + 1);
	size_t k = 0;

	if (d == NULL)
		return IOTP_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3 || (hi = util_hexval(s[i + 1])) < 0 ||
			    (lo = util_hexval(s[i + 2])) < 0 || (hi == 0 && lo == 0)) {
				free(d);
				return IOTP_ERR_INVALID;
			}
			c = (char)(hi * 16 + lo);
			i += 2;
		} else if (c == '\0') {
			free(d);
			return IOTP_ERR_INVALID;
		}
		d[k++] = c;
	}
	d[k] = '\0';
	*out = d;
	return IOTP_OK;
}

static iotp_rc parse_query(struct api_request *rq, const char *q, struct iotp_err *err)
{
	const char *p = q;

	while (*p != '\0') {
		const char *end = strchr(p, '&'), *eq;
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		char *name = NULL, *value = NULL;
		iotp_rc rc;

		if (n > 0) {
			if (rq->nquery == API_MAX_QUERY)
				return iotp_err_set(err, IOTP_ERR_INVALID,
				                    "more than %d query parameters", API_MAX_QUERY);
			eq = memchr(p, '=', n);
			rc = api_percent_decode(p, eq != NULL ? (size_t)(eq - p) : n, &name);
			if (rc == IOTP_OK)
				rc = eq != NULL ? api_percent_decode(eq + 1, n - (size_t)(eq + 1 - p), &value)
				                : api_percent_decode("", 0, &value);
			if (rc != IOTP_OK) {
				free(name);
				return iotp_err_set(err, rc, rc == IOTP_ERR_INVALID
				                                 ? "malformed percent-encoding in the query"
				                                 : "out of memory");
			}
			rq->query[rq->nquery].name = name;
			rq->query[rq->nquery].value = value;
			rq->nquery++;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return IOTP_OK;
}

iotp_rc api_request_parse_target(struct api_request *rq, const struct route *route,
                                 struct iotp_err *err)
{
	struct compiled c;
	struct rawseg segs[ROUTE_MAX_SEGMENTS];
	const char *q = strchr(rq->target, '?');
	size_t pathlen = q != NULL ? (size_t)(q - rq->target) : strlen(rq->target);
	int n;
	iotp_rc rc;

	if ((rc = compile(route, &c, err)) != IOTP_OK)
		return rc;
	n = split_path(rq->target, pathlen, segs, ROUTE_MAX_SEGMENTS);
	if (n != c.nsegs)
		return iotp_err_set(err, IOTP_ERR_INTERNAL, "path does not match its route");
	for (int i = 0; i < n; i++) {
		char *v = NULL;

		if (!c.segs[i].param)
			continue;
		if (rq->nparams == API_MAX_PARAMS)
			return iotp_err_set(err, IOTP_ERR_INTERNAL, "route has too many parameters");
		rc = api_percent_decode(segs[i].s, segs[i].len, &v);
		if (rc != IOTP_OK)
			return iotp_err_set(err, rc, rc == IOTP_ERR_INVALID
			                                 ? "malformed percent-encoding in the path"
			                                 : "out of memory");
		/* The name points into the static pattern and ends at its '}':
		 * api_param() compares it that way, so nothing is copied. */
		rq->params[rq->nparams].name = c.segs[i].text;
		rq->params[rq->nparams].value = v;
		rq->nparams++;
	}
	if (q != NULL)
		return parse_query(rq, q + 1, err);
	return IOTP_OK;
}

iotp_rc api_request_parse_json(struct api_request *rq, struct iotp_err *err)
{
	json_error_t jerr;
	json_t *j;
	size_t i = 0;

	while (i < rq->body_len && (rq->body[i] == ' ' || rq->body[i] == '\t' ||
	                            rq->body[i] == '\r' || rq->body[i] == '\n'))
		i++;
	if (i == rq->body_len) {
		j = json_object();
		if (j == NULL)
			return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	} else {
		j = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &jerr);
		if (j == NULL)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "malformed JSON in the request body: %s (line %d, "
			                    "column %d)",
			                    jerr.text, jerr.line, jerr.column);
		if (!json_is_object(j)) {
			json_decref(j);
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "the request body must be a JSON object");
		}
	}
	json_decref(rq->json);
	rq->json = j;
	return IOTP_OK;
}

void api_request_cleanup(struct api_request *rq)
{
	for (int i = 0; i < rq->nparams; i++)
		free(rq->params[i].value);
	for (int i = 0; i < rq->nquery; i++) {
		free((char *)rq->query[i].name);
		free(rq->query[i].value);
	}
	rq->nparams = rq->nquery = 0;
	json_decref(rq->json);
	rq->json = NULL;
}

const char *api_param(const struct api_request *rq, const char *name)
{
	size_t len = strlen(name);

	/* Parameter names point into the pattern and end at its '}'. */
	for (int i = 0; i < rq->nparams; i++) {
		if (strncmp(rq->params[i].name, name, len) == 0 && rq->params[i].name[len] == '}')
			return rq->params[i].value;
	}
	return NULL;
}

const char *api_query(const struct api_request *rq, const char *name)
{
	for (int i = 0; i < rq->nquery; i++) {
		if (strcmp(rq->query[i].name, name) == 0)
			return rq->query[i].value;
	}
	return NULL;
}

const char *api_header(const struct api_request *rq, const char *name)
{
	if (rq->headers == NULL)
		return NULL;
	return evhttp_find_header(rq->headers, name);
}

iotp_rc api_query_int(const struct api_request *rq, const char *name, int64_t min, int64_t max,
                      int64_t *out, struct iotp_err *err)
{
	const char *v = api_query(rq, name);

	if (v == NULL)
		return IOTP_OK;
	if (util_parse_int64(v, min, max, out) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "query parameter %s must be a whole number from %lld to %lld",
		                    name, (long long)min, (long long)max);
	return IOTP_OK;
}

iotp_rc api_query_bool(const struct api_request *rq, const char *name, int *out,
                       struct iotp_err *err)
{
	const char *v = api_query(rq, name);

	if (v == NULL)
		return IOTP_OK;
	if (strcmp(v, "true") == 0)
		*out = 1;
	else if (strcmp(v, "false") == 0)
		*out = 0;
	else
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "query parameter %s must be true or false", name);
	return IOTP_OK;
}

/* The member, NULL when absent or JSON null. */
static json_t *member(const struct api_request *rq, const char *name)
{
	json_t *v = rq->json != NULL ? json_object_get(rq->json, name) : NULL;

	return json_is_null(v) ? NULL : v;
}

static iotp_rc missing(const char *name, int required, struct iotp_err *err)
{
	if (required)
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s is required", name);
	return IOTP_OK;
}

iotp_rc api_body_string(const struct api_request *rq, const char *name, int required,
                        const char **out, struct iotp_err *err)
{
	json_t *v = member(rq, name);

	if (v == NULL)
		return missing(name, required, err);
	if (!json_is_string(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must be a string", name);
	*out = json_string_value(v);
	return IOTP_OK;
}

iotp_rc api_body_bool(const struct api_request *rq, const char *name, int required, int *out,
                      struct iotp_err *err)
{
	json_t *v = member(rq, name);

	if (v == NULL)
		return missing(name, required, err);
	if (!json_is_boolean(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must be true or false", name);
	*out = json_is_true(v);
	return IOTP_OK;
}

iotp_rc api_body_int(const struct api_request *rq, const char *name, int required,
                     int64_t min, int64_t max, int64_t *out, struct iotp_err *err)
{
	json_t *v = member(rq, name);

	if (v == NULL)
		return missing(name, required, err);
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "%s must be a whole number from %lld to %lld", name,
		                    (long long)min, (long long)max);
	*out = (int64_t)json_integer_value(v);
	return IOTP_OK;
}

iotp_rc api_body_object(const struct api_request *rq, const char *name, int required,
                        const json_t **out, struct iotp_err *err)
{
	json_t *v = member(rq, name);

	if (v == NULL)
		return missing(name, required, err);
	if (!json_is_object(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must be an object", name);
	*out = v;
	return IOTP_OK;
}

iotp_rc api_body_array(const struct api_request *rq, const char *name, int required,
                       const json_t **out, struct iotp_err *err)
{
	json_t *v = member(rq, name);

	if (v == NULL)
		return missing(name, required, err);
	if (!json_is_array(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must be a list", name);
	*out = v;
	return IOTP_OK;
}

void api_response_init(struct api_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->status = 200;
}

/* Frees the text body, wiping it first when it holds a secret. */
static void text_free(struct api_response *resp)
{
	if (resp->text != NULL && resp->secret)
		OPENSSL_cleanse(resp->text, resp->text_len);
	free(resp->text);
	resp->text = NULL;
	resp->text_len = 0;
	resp->secret = 0;
}

void api_response_cleanup(struct api_response *resp)
{
	json_decref(resp->json);
	json_decref(resp->error_extra);
	text_free(resp);
	for (int i = 0; i < resp->nheaders; i++)
		free(resp->headers[i].value);
	memset(resp, 0, sizeof(*resp));
}

iotp_rc api_response_json(struct api_response *resp, int status, json_t *body)
{
	if (body == NULL && (body = json_object()) == NULL)
		return IOTP_ERR_NOMEM;
	json_decref(resp->json);
	resp->json = body;
	resp->status = status;
	resp->content_type = NULL;
	return IOTP_OK;
}

iotp_rc api_response_text(struct api_response *resp, int status, const char *content_type,
                          const char *text, size_t len)
{
	char *copy = malloc(len + 1);

	if (copy == NULL)
		return IOTP_ERR_NOMEM;
	memcpy(copy, text, len);
	copy[len] = '\0';
	text_free(resp);
	json_decref(resp->json);
	resp->json = NULL;
	resp->text = copy;
	resp->text_len = len;
	resp->status = status;
	resp->content_type = content_type;
	return IOTP_OK;
}

iotp_rc api_response_secret_json(struct api_response *resp, int status, struct buf *body)
{
	size_t len = 0;
	char *text = buf_detach(body, &len);

	if (text == NULL)
		return IOTP_ERR_INVALID;
	text_free(resp);
	json_decref(resp->json);
	resp->json = NULL;
	resp->text = text;
	resp->text_len = len;
	resp->secret = 1;
	resp->status = status;
	resp->content_type = NULL;
	return IOTP_OK;
}

iotp_rc api_response_header(struct api_response *resp, const char *name, const char *value)
{
	char *copy;

	if (resp->nheaders == API_MAX_RESP_HEADERS)
		return IOTP_ERR_LIMIT;
	if ((copy = strdup(value)) == NULL)
		return IOTP_ERR_NOMEM;
	resp->headers[resp->nheaders].name = name;
	resp->headers[resp->nheaders].value = copy;
	resp->nheaders++;
	return IOTP_OK;
}
