/*
 * Routes of the control-plane API: a table entry per operation (method,
 * path pattern with {param} segments, botocore operation name, flags,
 * handler), the request context a handler receives and the response it
 * fills in.
 *
 * Adding an AWS operation is one table entry and one small handler:
 *
 *   static iotp_rc describe_thing(struct api_request *rq, struct api_response *resp,
 *                                 struct iotp_err *err)
 *   {
 *           struct registry_thing t = {0};
 *           iotp_rc rc = registry_thing_describe(rq->core, api_param(rq, "thingName"),
 *                                                &t, err);
 *           if (rc == IOTP_OK)
 *                   rc = api_response_json(resp, 200, thing_to_json(&t));
 *           registry_thing_cleanup(&t);
 *           return rc;
 *   }
 *   const struct route api_thing_routes[] = {
 *           {"GET", "/things/{thingName}", "DescribeThing", 0, NULL, describe_thing},
 *   };
 *
 * A handler returns IOTP_OK with the response filled in, or an error code
 * with err set: the server turns it into the AWS error (api_errors.h) and
 * logs it. Handlers run on the event-loop thread and must not block beyond
 * a store call.
 *
 * Matching: a route matches when every literal segment equals the raw path
 * segment and every {param} segment is non-empty. Among the routes that
 * match the path and the method, the most specific wins: at the first
 * segment where two patterns differ, a literal beats a parameter (so PUT
 * /thing-groups/addThingToThingGroup is not UpdateThingGroup). A path that
 * matches only under other methods is 405; no match at all is 404. Path
 * parameters are percent-decoded after matching, so "%2F" stays inside its
 * segment (ListAttachedPolicies' target ARN).
 */
#ifndef IOTP_ROUTER_H
#define IOTP_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/err.h"
#include "core/accesskey.h"
#include "core/core.h"

#define ROUTE_MAX_SEGMENTS 16
#define API_MAX_PARAMS 8
#define API_MAX_QUERY 32
#define API_MAX_RESP_HEADERS 8

struct api_request;
struct api_response;
struct metrics;

typedef iotp_rc (*route_fn)(struct api_request *rq, struct api_response *resp,
                            struct iotp_err *err);

enum route_flag {
	ROUTE_PUBLIC = 1u << 0, /* no SigV4 (health checks, metrics scrapes) */
	ROUTE_JSON = 1u << 1    /* the body must be a JSON object; empty means {} */
};

struct route {
	const char *method;      /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	const char *pattern;     /* "/things/{thingName}" */
	const char *operation;   /* botocore name: metrics, logs, authorization */
	unsigned flags;          /* enum route_flag bits */
	/* For operations an installer key may call: the path parameter that
	 * names the provisioning template ("templateName"); NULL otherwise. */
	const char *scope_param;
	route_fn handler;
};

struct route_table {
	const struct route *routes;
	size_t count;
};

/* A name and an owned, NUL-terminated, percent-decoded value. */
struct api_kv {
	const char *name; /* path params: borrowed from the pattern; query: owned */
	char *value;
};

struct api_request {
	/* Context, set by the server. */
	struct iotp_core *core;       /* call core functions through this only */
	struct metrics *metrics;      /* e.g. metrics_cert_issued() */
	const struct route *route;
	const char *request_id;       /* also sent as x-amzn-RequestId */
	const char *method;
	const char *target;           /* raw request-target (path?query) */
	const struct evkeyvalq *headers;
	const char *body;             /* raw body, NUL-terminated; "" when none */
	size_t body_len;
	/* Identity: for ROUTE_PUBLIC routes key_id is "" and actor
	 * "anonymous". actor is what core functions record ("key:AKIA..."). */
	char key_id[ACCESSKEY_ID_LEN + 1];
	enum accesskey_role role;
	char actor[ACCESSKEY_ID_LEN + 8];
	/* Parsed input, owned by the request. */
	struct api_kv params[API_MAX_PARAMS];
	int nparams;
	struct api_kv query[API_MAX_QUERY];
	int nquery;
	json_t *json;                 /* ROUTE_JSON routes: the body object */
	/* Set while the server drains for shutdown (health checks say so). */
	int draining;
	/* The TLS client certificate, when the client sent one (borrowed from
	 * the connection; NULL otherwise). The server requests one but accepts
	 * any: the handshake proves possession of its key, nothing more. A
	 * route that authenticates with it (EST) checks it against the
	 * registry itself. */
	X509 *peer_cert;
};

struct api_response {
	int status;                   /* 200 unless set */
	json_t *json;                 /* owned: the body when set */
	char *text;                   /* owned: the body when json is NULL */
	size_t text_len;
	int secret;                   /* text holds a private key: wiped when freed,
	                               * sent without copies (api_response_secret_json) */
	const char *content_type;     /* static string; NULL means application/json */
	/* Extra members of an error body (resourceId, resourceArn), owned;
	 * used only when the handler returns an error. */
	json_t *error_extra;
	struct {
		const char *name;         /* static string */
		char *value;              /* owned */
	} headers[API_MAX_RESP_HEADERS];
	int nheaders;
};

/* The route set the server dispatches over, built from tables at start-up.
 * Immutable afterwards (safe to share read-only). */
struct router;

/* Validates every pattern (starts with '/', {name} only as a whole segment,
 * at most ROUTE_MAX_SEGMENTS, no duplicate method+pattern, a handler and an
 * operation) and builds the router. IOTP_ERR_CONFIG naming the bad entry
 * otherwise. Free with router_free(). Tables are borrowed and must outlive
 * the router (they are static arrays). */
iotp_rc router_new(const struct route_table *const *tables, size_t ntables,
                   struct router **out, struct iotp_err *err);
void router_free(struct router *r);

enum router_result { ROUTER_FOUND, ROUTER_NO_PATH, ROUTER_NO_METHOD };

/* Finds the route for method and the raw path (no query). On
 * ROUTER_NO_METHOD, allow (when not NULL) receives the methods that would
 * match, comma-separated, for the Allow header. */
enum router_result router_match(const struct router *r, const char *method, const char *path,
                                size_t pathlen, const struct route **out, char *allow,
                                size_t allowsize);

/* Fills rq->params (decoded path parameters of route) and rq->query
 * (decoded query) from rq->target. IOTP_ERR_INVALID on malformed percent
 * escapes or an encoded NUL; IOTP_ERR_LIMIT past API_MAX_QUERY
 * parameters. */
iotp_rc api_request_parse_target(struct api_request *rq, const struct route *route,
                                 struct iotp_err *err);
/* Parses rq->body as a JSON object into rq->json (duplicate keys and
 * non-object bodies are IOTP_ERR_INVALID with a message naming the
 * problem; an empty body is {}). */
iotp_rc api_request_parse_json(struct api_request *rq, struct iotp_err *err);
/* Frees what the request owns (params, query, json). */
void api_request_cleanup(struct api_request *rq);

/* Accessors; returned strings are borrowed from the request. NULL when
 * absent. api_query returns the first value of a repeated name. */
const char *api_param(const struct api_request *rq, const char *name);
const char *api_query(const struct api_request *rq, const char *name);
const char *api_header(const struct api_request *rq, const char *name);

/* Typed query parameters: absent leaves *out unchanged and returns OK;
 * malformed or out of range is IOTP_ERR_INVALID naming the parameter.
 * Booleans are "true" or "false". */
iotp_rc api_query_int(const struct api_request *rq, const char *name, int64_t min, int64_t max,
                      int64_t *out, struct iotp_err *err);
iotp_rc api_query_bool(const struct api_request *rq, const char *name, int *out,
                       struct iotp_err *err);

/* Typed members of the JSON body (ROUTE_JSON routes). Absent (or null)
 * leaves *out unchanged and returns OK unless required, which makes it
 * IOTP_ERR_INVALID; a member of the wrong type is IOTP_ERR_INVALID naming
 * it. Strings and objects are borrowed from rq->json. */
iotp_rc api_body_string(const struct api_request *rq, const char *name, int required,
                        const char **out, struct iotp_err *err);
iotp_rc api_body_bool(const struct api_request *rq, const char *name, int required, int *out,
                      struct iotp_err *err);
iotp_rc api_body_int(const struct api_request *rq, const char *name, int required,
                     int64_t min, int64_t max, int64_t *out, struct iotp_err *err);
iotp_rc api_body_object(const struct api_request *rq, const char *name, int required,
                        const json_t **out, struct iotp_err *err);
iotp_rc api_body_array(const struct api_request *rq, const char *name, int required,
                       const json_t **out, struct iotp_err *err);

void api_response_init(struct api_response *resp);
void api_response_cleanup(struct api_response *resp);
/* Sets status and a JSON body; takes the reference to body (even on
 * failure). NULL body means {}. */
iotp_rc api_response_json(struct api_response *resp, int status, json_t *body);
/* Sets status and a text body (copied) with a static content type. */
iotp_rc api_response_text(struct api_response *resp, int status, const char *content_type,
                          const char *text, size_t len);
/* Sets status and a JSON body that carries a secret (a private key),
 * written by hand into body (common/enc.h) so that no other copy exists:
 * takes body's content (body is left empty), wipes it when the response is
 * freed, and the server hands it to the connection by reference, wiping it
 * once sent. IOTP_ERR_INVALID when body is empty. */
iotp_rc api_response_secret_json(struct api_response *resp, int status, struct buf *body);
/* Adds a response header (name static, value copied). IOTP_ERR_LIMIT past
 * API_MAX_RESP_HEADERS. */
iotp_rc api_response_header(struct api_response *resp, const char *name, const char *value);

/* Percent-decodes [s, s+n) into a new malloc'ed string. Strict: '%' must be
 * followed by two hex digits and %00 is refused (IOTP_ERR_INVALID). '+' is
 * a plus sign. */
iotp_rc api_percent_decode(const char *s, size_t n, char **out);

#endif
