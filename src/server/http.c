/*
 * The HTTPS server of iotprovd (see http.h).
 *
 * One event loop serves every connection. Each accepted socket gets an
 * OpenSSL bufferevent from make_bev() and a small `struct conn` hung on its
 * SSL object as ex-data, so that the connection's bookkeeping is released
 * exactly when libevent frees the SSL (conn_release): that is how the
 * server counts connections, enforces max_connections and tracks idle and
 * busy connections without any hook inside evhttp.
 *
 * Each connection carries one timer, its deadline: armed when the
 * connection is accepted and again after every response, disarmed while a
 * complete request is being handled. When it fires the socket is shut down
 * and evhttp, seeing end-of-file, frees the connection. The same timer,
 * armed with zero delay, closes connections refused over the limit and idle
 * ones at shutdown.
 *
 * A request goes: body size (413) -> route lookup (404/405) -> SigV4 (403)
 * -> path and query decoding (400) -> role check (403) -> JSON body (400)
 * -> handler -> response. Every error leaves through reply_error() and the
 * table of api_errors.h.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "common/util.h"
#include "core/accesskey.h"
#include "core/pki.h"
#include "server/api.h"
#include "server/api_errors.h"
#include "server/auth.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/router.h"
#include "server/sigv4.h"

struct conn {
	struct http_server *srv;
	struct conn *prev, *next;
	struct bufferevent *bev;
	struct event *timer;   /* the deadline, see the file comment */
	int busy;              /* request bytes seen, response not yet sent */
	int refused;           /* over max_connections: close at once */
};

struct http_server {
	struct event_base *base;
	struct iotp_conf *conf;          /* borrowed, updated by reload */
	char conf_path[CONF_STR_MAX * 2];
	struct iotp_core *core;          /* borrowed */
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	SSL_CTX *ssl_ctx;
	int ex_index;                    /* SSL ex-data slot of struct conn */
	struct router *router;
	struct metrics *metrics;
	struct conn *conns;              /* every open connection */
	int nconns;
	int stopping;
	int freeing;
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *grace;             /* hard deadline of a graceful stop */
	int64_t refusal_logged;          /* last refusal warning (epoch s) */
	char listen_spec[256];           /* [api] listen as bound */
	char file_listen[256];           /* [api] listen as the file says: differs
	                                  * from listen_spec under --api-listen */
	int port;
	char url[300];
};

/* ------------------------------------------------------------------ */
/* TLS                                                                  */

/* Verification callback: the chain is not judged here (see make_ssl_ctx). */
static int accept_any_peer(int preverify_ok, X509_STORE_CTX *store)
{
	(void)preverify_ok;
	(void)store;
	return 1;
}

static iotp_rc make_ssl_ctx(const struct iotp_conf *conf, SSL_CTX **out, struct iotp_err *err)
{
	char cert[CONF_STR_MAX * 2], key[CONF_STR_MAX * 2];
	SSL_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	iotp_rc rc;

	if ((rc = conf_path(conf, conf->api_tls_cert, cert, sizeof(cert), err)) != IOTP_OK ||
	    (rc = conf_path(conf, conf->api_tls_key, key, sizeof(key), err)) != IOTP_OK)
		return rc;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "TLS context");
		goto out;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "TLS versions");
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	                             SSL_OP_NO_COMPRESSION);
	/* One TLS 1.3 ticket is enough for a client to resume; each costs a
	 * signature-free but measurable encryption per handshake. */
	SSL_CTX_set_num_tickets(ctx, 1);
	/* Ask every client for a certificate but accept whatever it sends (or
	 * nothing): EST re-enrolment and claim-certificate enrolment take the
	 * verified-by-possession peer certificate to the route, which checks it
	 * against the registry (api_request.peer_cert). */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_peer);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CONFIG, "[api] tls_cert: cannot load %s", cert);
		goto out;
	}
	if ((rc = pki_key_read_file(key, &pkey, err)) != IOTP_OK) {
		rc = iotp_err_prefix(err, IOTP_ERR_CONFIG, "[api] tls_key");
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CONFIG,
		                  "[api] tls_key %s does not match the certificate %s", key, cert);
		goto out;
	}
	*out = ctx;
	ctx = NULL;
out:
	EVP_PKEY_free(pkey);
	SSL_CTX_free(ctx);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */

static void conn_arm(struct conn *conn, int seconds)
{
	struct timeval tv = {seconds, 0};

	evtimer_add(conn->timer, &tv);
}

static void conn_link(struct http_server *srv, struct conn *conn)
{
	conn->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = conn;
	srv->conns = conn;
	srv->nconns++;
	metrics_set_connections(srv->metrics, srv->nconns);
}

static void conn_unlink(struct http_server *srv, struct conn *conn)
{
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		srv->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	srv->nconns--;
	metrics_set_connections(srv->metrics, srv->nconns);
}

/* SSL ex-data free callback: libevent has freed the connection's SSL, so
 * the connection is gone. Runs for every SSL object of the process; those
 * of other code carry NULL here. */
static void conn_release(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp)
{
	struct conn *conn = ptr;
	struct http_server *srv;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (conn == NULL)
		return;
	srv = conn->srv;
	if (srv == NULL) {
		/* Outlived its server (see http_server_free): nothing to update,
		 * and the timer went with the event base. */
		free(conn);
		return;
	}
	conn_unlink(srv, conn);
	event_free(conn->timer);
	free(conn);
	if (srv->stopping && !srv->freeing && srv->nconns == 0)
		event_base_loopexit(srv->base, NULL);
}

static void on_conn_timer(evutil_socket_t fd_unused, short what, void *arg)
{
	struct conn *conn = arg;
	evutil_socket_t fd = bufferevent_getfd(conn->bev);

	(void)fd_unused;
	(void)what;
	if (!conn->refused && !conn->srv->stopping)
		LOG_DEBUG("http: closing a connection that took more than %lld s",
		          (long long)conn->srv->conf->api_timeout);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
	/* evhttp frees the connection when it sees the end of the stream;
	 * should it not be reading right now, try again shortly. */
	conn_arm(conn, 1);
}

/* Input-buffer callback: request bytes arrived. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	(void)buf;
	if (info->n_added > 0)
		((struct conn *)arg)->busy = 1;
}

/* evhttp's bufferevent factory: one TLS bufferevent per accepted socket. */
static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
	struct http_server *srv = arg;
	struct conn *conn = calloc(1, sizeof(*conn));
	SSL *ssl = NULL;
	struct bufferevent *bev;

	if (conn == NULL || (conn->timer = evtimer_new(base, on_conn_timer, conn)) == NULL ||
	    (ssl = SSL_new(srv->ssl_ctx)) == NULL) {
		LOG_ERROR("http: out of memory accepting a connection");
		goto fail;
	}
	conn->srv = srv;
	conn_link(srv, conn);
	if (SSL_set_ex_data(ssl, srv->ex_index, conn) != 1) {
		conn_unlink(srv, conn);
		goto fail;
	}
	/* From here the SSL owns conn: freeing it runs conn_release. */
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		/* evhttp then falls back to a plain socket, which answers a TLS
		 * client's first bytes with 400 and closes: nothing is served. */
		LOG_ERROR("http: cannot create a TLS bufferevent");
		return NULL;
	}
	conn->bev = bev;
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	evbuffer_add_cb(bufferevent_get_input(bev), on_input, conn);
	if (srv->stopping || srv->nconns > srv->conf->api_max_connections) {
		/* One warning a second at most: a flood must not flood the log
		 * too (the metric counts every refusal). */
		if (!srv->stopping && util_now() != srv->refusal_logged) {
			srv->refusal_logged = util_now();
			LOG_WARN("http: refusing connections: %d open, [api] max_connections is %lld",
			         srv->nconns - 1, (long long)srv->conf->api_max_connections);
		}
		metrics_connection_refused(srv->metrics);
		conn->refused = 1;
		conn_arm(conn, 0);
	} else {
		conn_arm(conn, (int)srv->conf->api_timeout);
	}
	return bev;
fail:
	SSL_free(ssl);
	if (conn != NULL && conn->timer != NULL)
		event_free(conn->timer);
	free(conn);
	return NULL;
}

static struct conn *conn_of(struct http_server *srv, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;

	return ssl != NULL ? SSL_get_ex_data(ssl, srv->ex_index) : NULL;
}

/* The response has been written: the connection is idle again. */
static void on_complete(struct evhttp_request *req, void *arg)
{
	struct conn *conn = arg;

	(void)req;
	conn->busy = evbuffer_get_length(bufferevent_get_input(conn->bev)) > 0;
	if (!conn->srv->stopping)
		conn_arm(conn, (int)conn->srv->conf->api_timeout);
}

/* ------------------------------------------------------------------ */
/* Requests                                                             */

/* What one request needs until its response is sent. */
struct exchange {
	struct http_server *srv;
	struct evhttp_request *req;
	char request_id[37];
	const char *method;
	const char *operation;
	char key_id[ACCESSKEY_ID_LEN + 1];
	uint64_t t0;
	int status;
	const char *error_type;
};

static const char *method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "UNKNOWN";
}

static void send_headers(struct exchange *x, const char *content_type)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(x->req);

	evhttp_add_header(oh, "Content-Type",
	                  content_type != NULL ? content_type : "application/json");
	evhttp_add_header(oh, "x-amzn-RequestId", x->request_id);
	if (x->srv->stopping)
		evhttp_add_header(oh, "Connection", "close");
}

static void send_body(struct exchange *x, int status, const char *content_type,
                      const char *body, size_t len)
{
	send_headers(x, content_type);
	if (len > 0)
		evbuffer_add(evhttp_request_get_output_buffer(x->req), body, len);
	x->status = status;
	evhttp_send_reply(x->req, status, NULL, NULL);
}

/* evbuffer reference cleanup: the secret body has been written to the TLS
 * connection (or the connection went away). */
static void secret_sent(const void *data, size_t len, void *extra)
{
	(void)extra;
	OPENSSL_cleanse((void *)data, len);
	free((void *)data);
}

static void reply_error(struct exchange *x, const struct api_error *e, const char *detail,
                        const json_t *extra, const char *allow);

/* Sends a body that holds a secret (api_response_secret_json). The
 * evbuffer refers to it instead of copying, libevent moves the reference
 * to the connection's output buffer, and secret_sent wipes it once
 * written: one copy from the handler to the socket. Takes resp->text. */
static void send_secret(struct exchange *x, struct api_response *resp)
{
	char *body = resp->text;
	size_t len = resp->text_len;

	resp->text = NULL;
	resp->text_len = 0;
	resp->secret = 0;
	if (evbuffer_add_reference(evhttp_request_get_output_buffer(x->req), body, len,
	                           secret_sent, NULL) != 0) {
		secret_sent(body, len, NULL);
		reply_error(x, api_error_for(IOTP_ERR_NOMEM), "cannot queue the response", NULL,
		            NULL);
		return;
	}
	send_headers(x, resp->content_type);
	x->status = resp->status;
	evhttp_send_reply(x->req, resp->status, NULL, NULL);
}

/* Sends an AWS error. detail is the message for 4xx; for 5xx it is logged
 * and the client gets the generic text with the request id. */
static void reply_error(struct exchange *x, const struct api_error *e, const char *detail,
                        const json_t *extra, const char *allow)
{
	char msg[IOTP_ERR_MSG_MAX + 64], type[128];
	char *body = NULL;
	size_t len = 0;

	if (api_error_is_internal(e->status))
		LOG_ERROR("api: request %s %s: %s", x->request_id,
		          x->operation != NULL ? x->operation : "-",
		          detail != NULL ? detail : "(no detail)");
	api_error_client_message(e->status, detail, x->request_id, msg, sizeof(msg));
	api_error_type_header(e->type, type, sizeof(type));
	evhttp_add_header(evhttp_request_get_output_headers(x->req), "x-amzn-ErrorType", type);
	if (allow != NULL && allow[0] != '\0')
		evhttp_add_header(evhttp_request_get_output_headers(x->req), "Allow", allow);
	x->error_type = e->type;
	if (api_error_body(msg, extra, &body, &len) != IOTP_OK) {
		static const char fallback[] = "{\"message\":\"internal error\"}";

		send_body(x, e->status, NULL, fallback, sizeof(fallback) - 1);
		return;
	}
	send_body(x, e->status, NULL, body, len);
	free(body);
}

static void reply_response(struct exchange *x, struct api_response *resp)
{
	char *body = NULL;

	for (int i = 0; i < resp->nheaders; i++)
		evhttp_add_header(evhttp_request_get_output_headers(x->req), resp->headers[i].name,
		                  resp->headers[i].value);
	if (resp->json != NULL) {
		body = json_dumps(resp->json, JSON_COMPACT);
		if (body == NULL) {
			reply_error(x, api_error_for(IOTP_ERR_NOMEM), "cannot encode the response",
			            NULL, NULL);
			return;
		}
		send_body(x, resp->status, NULL, body, strlen(body));
		free(body);
		return;
	}
	if (resp->text != NULL && resp->secret) {
		send_secret(x, resp);
		return;
	}
	if (resp->text != NULL) {
		send_body(x, resp->status, resp->content_type, resp->text, resp->text_len);
		return;
	}
	send_body(x, resp->status, NULL, "{}", 2);
}

/* Copies the request headers into the array SigV4 reads. *out malloc'ed. */
static iotp_rc header_array(struct evkeyvalq *headers, struct sigv4_header **out, size_t *n)
{
	struct evkeyval *h;
	struct sigv4_header *arr;
	size_t count = 0, i = 0;

	TAILQ_FOREACH(h, headers, next)
		count++;
	arr = calloc(count > 0 ? count : 1, sizeof(*arr));
	if (arr == NULL)
		return IOTP_ERR_NOMEM;
	TAILQ_FOREACH(h, headers, next) {
		arr[i].name = h->key;
		arr[i].value = h->value;
		i++;
	}
	*out = arr;
	*n = count;
	return IOTP_OK;
}

static void finish(struct exchange *x, int quiet)
{
	int64_t us = (int64_t)((util_mono_ns() - x->t0) / 1000);
	enum iotp_log_level level = IOTP_LOG_INFO;

	metrics_request(x->srv->metrics, x->operation != NULL ? x->operation : "unknown",
	                x->status, us);
	if (x->error_type != NULL)
		metrics_error(x->srv->metrics, x->error_type);
	/* Health checks and scrapes arrive every few seconds: successful ones
	 * are logged at debug level only. */
	if (x->status >= 500)
		level = IOTP_LOG_ERROR;
	else if (quiet && x->status < 400)
		level = IOTP_LOG_DEBUG;
	IOTP_LOG(level,
	         "api: %s %s %s key=%s -> %d%s%s (%lld us)", x->request_id, x->method,
	         x->operation != NULL ? x->operation : "unknown",
	         x->key_id[0] != '\0' ? x->key_id : "-", x->status, x->error_type != NULL ? " " : "",
	         x->error_type != NULL ? x->error_type : "", (long long)us);
}

/* SigV4 for a route that is not public. On success *key is the caller's
 * access key (secret wiped); on failure the error has been sent, counted
 * and audited, and the code is returned. */
static iotp_rc authenticate(struct exchange *x, const struct api_request *rq,
                            struct accesskey *key, struct iotp_err *err)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(x->req);
	struct sigv4_header *headers = NULL;
	struct sigv4_request sreq;
	struct auth_context actx;
	const char *reason = NULL;
	char *peer = NULL;
	ev_uint16_t peer_port = 0;
	size_t nheaders = 0;
	iotp_rc rc;

	if ((rc = header_array(evhttp_request_get_input_headers(x->req), &headers, &nheaders)) !=
	    IOTP_OK) {
		reply_error(x, api_error_for(rc), "out of memory", NULL, NULL);
		return rc;
	}
	if (evcon != NULL)
		evhttp_connection_get_peer(evcon, &peer, &peer_port);
	sreq.method = rq->method;
	sreq.target = rq->target;
	sreq.headers = headers;
	sreq.nheaders = nheaders;
	sreq.body = rq->body;
	sreq.body_len = rq->body_len;
	actx.request_id = rq->request_id;
	actx.operation = rq->route->operation;
	actx.remote = peer;
	actx.region = x->srv->conf->region;
	actx.now = util_now();
	actx.max_skew = x->srv->conf->api_clock_skew;
	rc = auth_verify(x->srv->core, &sreq, &actx, key, &reason, err);
	if (rc != IOTP_OK) {
		metrics_auth_failure(x->srv->metrics, reason != NULL ? reason : "unknown");
		if (reason != NULL && strcmp(reason, AUTH_REASON_MISSING) == 0)
			reply_error(x, &api_error_missing_auth, err->msg, NULL, NULL);
		else
			reply_error(x, api_error_for(rc), err->msg, NULL, NULL);
	}
	free(headers);
	return rc;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct http_server *srv = arg;
	struct conn *conn = conn_of(srv, req);
	struct exchange x;
	struct api_request rq;
	struct api_response resp;
	struct iotp_err err;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *target = evhttp_request_get_uri(req);
	const struct route *route = NULL;
	char allow[128];
	size_t body_len = evbuffer_get_length(in), pathlen;
	enum router_result match;
	iotp_rc rc;

	memset(&x, 0, sizeof(x));
	memset(&rq, 0, sizeof(rq));
	api_response_init(&resp);
	iotp_err_clear(&err);
	x.srv = srv;
	x.req = req;
	x.t0 = util_mono_ns();
	x.method = method_name(evhttp_request_get_command(req));
	if (conn != NULL) {
		evtimer_del(conn->timer);
		evhttp_request_set_on_complete_cb(req, on_complete, conn);
	}
	if (util_uuid(x.request_id, NULL) != IOTP_OK)
		util_strlcpy(x.request_id, "00000000-0000-0000-0000-000000000000",
		             sizeof(x.request_id));

	if (target == NULL || target[0] != '/') {
		reply_error(&x, api_error_for(IOTP_ERR_INVALID),
		            "the request target must be an absolute path", NULL, NULL);
		goto out;
	}
	pathlen = strcspn(target, "?");
	match = router_match(srv->router, x.method, target, pathlen, &route, allow, sizeof(allow));
	if (match == ROUTER_FOUND)
		x.operation = route->operation;
	/* Too big is refused first, whatever the route: the body has been
	 * read already, so the connection stays usable. */
	if (body_len > (size_t)srv->conf->api_max_body) {
		snprintf(err.msg, sizeof(err.msg),
		         "request body of %zu bytes is larger than the limit of %lld bytes "
		         "([api] max_body)",
		         body_len, (long long)srv->conf->api_max_body);
		reply_error(&x, &api_error_too_large, err.msg, NULL, NULL);
		goto out;
	}
	if (match == ROUTER_NO_METHOD) {
		snprintf(err.msg, sizeof(err.msg), "%s is not allowed on %.*s (allowed: %s)",
		         x.method, (int)(pathlen > 200 ? 200 : pathlen), target, allow);
		reply_error(&x, &api_error_method_not_allowed, err.msg, NULL, allow);
		goto out;
	}
	if (match == ROUTER_NO_PATH) {
		snprintf(err.msg, sizeof(err.msg), "no operation for %s %.*s", x.method,
		         (int)(pathlen > 200 ? 200 : pathlen), target);
		reply_error(&x, &api_error_unknown_operation, err.msg, NULL, NULL);
		goto out;
	}
	/* A NUL after the body makes it a C string for handlers that want one. */
	if (evbuffer_add(in, "", 1) != 0) {
		reply_error(&x, api_error_for(IOTP_ERR_NOMEM), "out of memory", NULL, NULL);
		goto out;
	}
	rq.core = srv->core;
	rq.metrics = srv->metrics;
	rq.route = route;
	rq.request_id = x.request_id;
	rq.method = x.method;
	rq.target = target;
	rq.headers = evhttp_request_get_input_headers(req);
	rq.body = (const char *)evbuffer_pullup(in, -1);
	rq.body_len = body_len;
	rq.draining = srv->stopping;
	{
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);
		struct bufferevent *bev =
			evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
		SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;

		rq.peer_cert = ssl != NULL ? SSL_get0_peer_certificate(ssl) : NULL;
	}
	util_strlcpy(rq.actor, "anonymous", sizeof(rq.actor));
	if (rq.body == NULL) {
		reply_error(&x, api_error_for(IOTP_ERR_NOMEM), "out of memory", NULL, NULL);
		goto out;
	}

	if (!(route->flags & ROUTE_PUBLIC)) {
		struct accesskey key;

		if ((rc = authenticate(&x, &rq, &key, &err)) != IOTP_OK)
			goto out;
		util_strlcpy(x.key_id, key.id, sizeof(x.key_id));
		util_strlcpy(rq.key_id, key.id, sizeof(rq.key_id));
		snprintf(rq.actor, sizeof(rq.actor), "key:%s", key.id);
		rq.role = key.role;
		if ((rc = api_request_parse_target(&rq, route, &err)) == IOTP_OK)
			rc = accesskey_authorize(&key, route->operation,
			                         route->scope_param != NULL
			                             ? api_param(&rq, route->scope_param)
			                             : NULL,
			                         &err);
		accesskey_cleanup(&key);
	} else {
		rc = api_request_parse_target(&rq, route, &err);
	}
	if (rc == IOTP_OK && (route->flags & ROUTE_JSON))
		rc = api_request_parse_json(&rq, &err);
	if (rc == IOTP_OK)
		rc = route->handler(&rq, &resp, &err);
	if (rc != IOTP_OK)
		reply_error(&x, api_error_for(rc), err.msg, resp.error_extra, NULL);
	else
		reply_response(&x, &resp);
out:
	finish(&x, route != NULL && (route->flags & ROUTE_PUBLIC));
	api_request_cleanup(&rq);
	api_response_cleanup(&resp);
}

/* ------------------------------------------------------------------ */
/* Listening, signals, reload                                           */

static iotp_rc open_listener(const char *host, int port, evutil_socket_t *out, int *bound_port,
                             struct iotp_err *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[16];
	int gai, saved = 0;
	evutil_socket_t fd = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	gai = getaddrinfo(host, portstr, &hints, &res);
	if (gai != 0)
		return iotp_err_set(err, IOTP_ERR_IO, "cannot listen on %s:%d: %s", host, port,
		                    gai_strerror(gai));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		/* TCP_NODELAY on the listener is inherited by every accepted
		 * socket (Linux): a response leaves as two TLS records (headers,
		 * body), and with Nagle the second waits for the client's delayed
		 * ACK, some 40 ms per request. */
		if (evutil_make_listen_socket_reuseable(fd) == 0 &&
		    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 511) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (saved == EADDRINUSE)
			return iotp_err_set(err, IOTP_ERR_IO,
			                    "cannot listen on %s:%d: address already in use (another "
			                    "iotprovd or another program is listening there; choose "
			                    "another port with --api-listen or [api] listen)",
			                    host, port);
		return iotp_err_set(err, IOTP_ERR_IO, "cannot listen on %s:%d: %s", host, port,
		                    strerror(saved));
	}
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		*bound_port = port;
		if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
			if (ss.ss_family == AF_INET)
				*bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
			else if (ss.ss_family == AF_INET6)
				*bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
	}
	*out = fd;
	return IOTP_OK;
}

static void apply_limits(struct http_server *srv)
{
	const struct iotp_conf *c = srv->conf;

	/* evhttp's own cap is a backstop: bodies between max_body and twice it
	 * are read and refused with the AWS-shaped 413 (see http.h). */
	evhttp_set_max_body_size(srv->http, (ev_ssize_t)(c->api_max_body * 2));
	evhttp_set_max_headers_size(srv->http, (ev_ssize_t)c->api_max_headers);
	evhttp_set_timeout(srv->http, (int)c->api_timeout);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *srv = arg;

	(void)fd;
	(void)what;
	LOG_WARN("iotprovd: %d connection(s) still open after %lld s; closing them",
	         srv->nconns, (long long)srv->conf->api_timeout);
	event_base_loopexit(srv->base, NULL);
}

void http_server_stop(struct http_server *srv)
{
	int busy = 0;

	if (srv->stopping)
		return;
	srv->stopping = 1;
	if (srv->bound != NULL) {
		evhttp_del_accept_socket(srv->http, srv->bound);
		srv->bound = NULL;
	}
	for (struct conn *c = srv->conns; c != NULL; c = c->next) {
		if (c->busy)
			busy++;
		else
			conn_arm(c, 0);
	}
	LOG_INFO("iotprovd: stopping: no new connections; waiting for %d in-flight request(s)",
	         busy);
	if (srv->nconns == 0) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	{
		struct timeval tv = {(time_t)srv->conf->api_timeout, 0};

		evtimer_add(srv->grace, &tv);
	}
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct http_server *srv = arg;
	struct iotp_err err;

	(void)what;
	if (sig == SIGHUP) {
		LOG_INFO("iotprovd: SIGHUP: reloading %s", srv->conf_path);
		http_server_reload(srv, &err);
		return;
	}
	if (srv->stopping) {
		LOG_WARN("iotprovd: second stop signal: exiting now");
		event_base_loopbreak(srv->base);
		return;
	}
	LOG_INFO("iotprovd: %s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	http_server_stop(srv);
}

iotp_rc http_server_handle_signals(struct http_server *srv, struct iotp_err *err)
{
	srv->sig_term = evsignal_new(srv->base, SIGTERM, on_signal, srv);
	srv->sig_int = evsignal_new(srv->base, SIGINT, on_signal, srv);
	srv->sig_hup = evsignal_new(srv->base, SIGHUP, on_signal, srv);
	if (srv->sig_term == NULL || srv->sig_int == NULL || srv->sig_hup == NULL ||
	    evsignal_add(srv->sig_term, NULL) != 0 || evsignal_add(srv->sig_int, NULL) != 0 ||
	    evsignal_add(srv->sig_hup, NULL) != 0)
		return iotp_err_set(err, IOTP_ERR_INTERNAL, "cannot install signal handlers");
	return IOTP_OK;
}

/* Keeps a running value that only a restart can change, saying so when the
 * file asks for another. */
static void keep(const char *what, char *fresh, const char *running, size_t size)
{
	if (strcmp(fresh, running) != 0)
		LOG_WARN("iotprovd: reload: %s changed to '%s': restart iotprovd to apply it "
		         "(still using '%s')",
		         what, fresh, running);
	util_strlcpy(fresh, running, size);
}

iotp_rc http_server_reload(struct http_server *srv, struct iotp_err *err)
{
	struct iotp_conf *fresh = NULL;
	SSL_CTX *ctx = NULL;
	enum iotp_log_level level;
	iotp_rc rc;

	if (srv->conf_path[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_CONFIG, "no configuration file to reload");
	fresh = malloc(sizeof(*fresh));
	if (fresh == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "reload: out of memory");
	conf_init(fresh, srv->conf->data_dir);
	if ((rc = conf_load(fresh, srv->conf_path, err)) != IOTP_OK ||
	    (rc = conf_validate(fresh, err)) != IOTP_OK) {
		LOG_ERROR("iotprovd: reload failed, keeping the running configuration: %s",
		          err != NULL ? err->msg : iotp_strerror(rc));
		goto out;
	}
	/* Compared with what the file said before, not with what is bound: a
	 * --api-listen override is not a change the operator made in the file. */
	if (strcmp(fresh->api_listen, srv->file_listen) != 0) {
		LOG_WARN("iotprovd: reload: [api] listen changed to '%s': restart iotprovd to apply "
		         "it (still listening on '%s')",
		         fresh->api_listen, srv->listen_spec);
		util_strlcpy(srv->file_listen, fresh->api_listen, sizeof(srv->file_listen));
	}
	util_strlcpy(fresh->api_listen, srv->listen_spec, sizeof(fresh->api_listen));
	keep("[store] url", fresh->store_url, srv->conf->store_url, sizeof(fresh->store_url));
	keep("[pki] root_cert", fresh->pki_root_cert, srv->conf->pki_root_cert,
	     sizeof(fresh->pki_root_cert));
	keep("[pki] root_key", fresh->pki_root_key, srv->conf->pki_root_key,
	     sizeof(fresh->pki_root_key));
	keep("[pki] issuing_cert", fresh->pki_issuing_cert, srv->conf->pki_issuing_cert,
	     sizeof(fresh->pki_issuing_cert));
	keep("[pki] issuing_key", fresh->pki_issuing_key, srv->conf->pki_issuing_key,
	     sizeof(fresh->pki_issuing_key));
	{
		struct iotp_err terr;

		/* The certificate files may have been replaced in place (renewal),
		 * so the TLS context is rebuilt even when the paths are the same. */
		if (make_ssl_ctx(fresh, &ctx, &terr) == IOTP_OK) {
			SSL_CTX_free(srv->ssl_ctx); /* open connections hold their own reference */
			srv->ssl_ctx = ctx;
		} else {
			LOG_ERROR("iotprovd: reload: keeping the running TLS certificate: %s", terr.msg);
			util_strlcpy(fresh->api_tls_cert, srv->conf->api_tls_cert,
			             sizeof(fresh->api_tls_cert));
			util_strlcpy(fresh->api_tls_key, srv->conf->api_tls_key,
			             sizeof(fresh->api_tls_key));
		}
	}
	*srv->conf = *fresh;
	if (iotp_log_level_parse(srv->conf->log_level, &level) == IOTP_OK)
		iotp_log_set_level(level);
	apply_limits(srv);
	LOG_INFO("iotprovd: configuration reloaded from %s", srv->conf_path);
out:
	free(fresh);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                           */

iotp_rc http_server_new(struct event_base *base, struct iotp_conf *conf, const char *conf_path,
                        struct iotp_core *core, struct http_server **out,
                        struct iotp_err *err)
{
	struct http_server *srv = calloc(1, sizeof(*srv));
	char host[256];
	int port;
	evutil_socket_t fd = -1;
	iotp_rc rc;

	if (srv == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "http: out of memory");
	srv->base = base;
	srv->conf = conf;
	srv->core = core;
	srv->ex_index = -1;
	if (conf_path != NULL &&
	    util_strlcpy(srv->conf_path, conf_path, sizeof(srv->conf_path)) >= sizeof(srv->conf_path)) {
		rc = iotp_err_set(err, IOTP_ERR_CONFIG, "config path too long");
		goto fail;
	}
	util_strlcpy(srv->listen_spec, conf->api_listen, sizeof(srv->listen_spec));
	util_strlcpy(srv->file_listen, conf->api_listen, sizeof(srv->file_listen));
	if (srv->conf_path[0] != '\0') {
		struct iotp_conf *file = malloc(sizeof(*file));

		if (file != NULL) {
			conf_init(file, conf->data_dir);
			if (conf_load(file, srv->conf_path, NULL) == IOTP_OK)
				util_strlcpy(srv->file_listen, file->api_listen, sizeof(srv->file_listen));
			conf_cleanup(file);
			free(file);
		}
	}
	if ((rc = conf_parse_listen(conf->api_listen, host, sizeof(host), &port, err)) != IOTP_OK)
		goto fail;
	if ((rc = metrics_new(&srv->metrics, err)) != IOTP_OK ||
	    (rc = router_new(api_tables, api_table_count, &srv->router, err)) != IOTP_OK ||
	    (rc = make_ssl_ctx(conf, &srv->ssl_ctx, err)) != IOTP_OK)
		goto fail;
	srv->ex_index = SSL_get_ex_new_index(0, (void *)"iotprovd connection", NULL, NULL,
	                                     conn_release);
	srv->http = evhttp_new(base);
	srv->grace = evtimer_new(base, on_grace, srv);
	if (srv->ex_index < 0 || srv->http == NULL || srv->grace == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "http: out of memory");
		goto fail;
	}
	evhttp_set_bevcb(srv->http, make_bev, srv);
	evhttp_set_gencb(srv->http, on_request, srv);
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
	                                          EVHTTP_REQ_HEAD);
	evhttp_set_default_content_type(srv->http, "application/json");
	evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);
	apply_limits(srv);
	if ((rc = open_listener(host, port, &fd, &srv->port, err)) != IOTP_OK)
		goto fail;
	srv->bound = evhttp_accept_socket_with_handle(srv->http, fd);
	if (srv->bound == NULL) {
		close(fd);
		rc = iotp_err_set(err, IOTP_ERR_IO, "cannot accept on %s", conf->api_listen);
		goto fail;
	}
	snprintf(srv->url, sizeof(srv->url), strchr(host, ':') != NULL ? "https://[%s]:%d"
	                                                               : "https://%s:%d",
	         host, srv->port);
	*out = srv;
	return IOTP_OK;
fail:
	http_server_free(srv);
	return rc;
}

const char *http_server_url(const struct http_server *srv)
{
	return srv->url;
}

int http_server_port(const struct http_server *srv)
{
	return srv->port;
}

struct metrics *http_server_metrics(struct http_server *srv)
{
	return srv->metrics;
}

int http_server_connections(const struct http_server *srv)
{
	return srv->nconns;
}

void http_server_free(struct http_server *srv)
{
	if (srv == NULL)
		return;
	srv->freeing = 1;
	if (srv->http != NULL)
		evhttp_free(srv->http);
	/* evhttp frees its connections' bufferevents through deferred
	 * finalizers; run them now, while the server that conn_release
	 * updates still exists. */
	event_base_loop(srv->base, EVLOOP_NONBLOCK);
	if (srv->sig_term != NULL)
		event_free(srv->sig_term);
	if (srv->sig_int != NULL)
		event_free(srv->sig_int);
	if (srv->sig_hup != NULL)
		event_free(srv->sig_hup);
	if (srv->grace != NULL)
		event_free(srv->grace);
	/* Connections whose SSL outlives this point (none are expected after
	 * the loop above) must not call back into freed memory. */
	if (srv->nconns > 0)
		LOG_WARN("http: %d connection(s) not yet released at shutdown", srv->nconns);
	for (struct conn *c = srv->conns; c != NULL; c = c->next) {
		event_free(c->timer);
		c->timer = NULL;
		c->srv = NULL;
	}
	SSL_CTX_free(srv->ssl_ctx);
	router_free(srv->router);
	metrics_free(srv->metrics);
	free(srv);
}
