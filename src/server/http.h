/*
 * iotprovd's HTTPS server: libevent's evhttp on OpenSSL bufferevents (TLS
 * 1.2 and 1.3), the configured limits, SigV4 authentication, authorization
 * by role, dispatch to the route tables (api.h) and the AWS error shape.
 *
 * All of it runs on one event loop, one thread: every socket is
 * non-blocking, so a slow or broken client holds only its own connection.
 * Limits ([api] in iotprov.conf):
 *   max_body         larger bodies get 413 RequestEntityTooLargeException;
 *                    evhttp stops buffering at twice that and answers a
 *                    plain 413 (then closes) beyond it
 *   max_headers      larger header blocks get 400 from evhttp
 *   timeout          seconds a connection may take to deliver a request
 *                    (TLS handshake included) or sit idle between requests
 *   max_connections  connections beyond it are closed as soon as accepted
 *
 * The struct http_server holds all server state; there are no globals.
 */
#ifndef IOTP_HTTP_H
#define IOTP_HTTP_H

#include <event2/event.h>

#include "common/conf.h"
#include "common/err.h"
#include "core/core.h"

struct http_server;
struct metrics;

/* Creates the server on base: loads the TLS certificate and key named by
 * conf ([api] tls_cert, tls_key), builds the routes and binds conf's
 * [api] listen address (port 0 picks a free port). conf and core are
 * borrowed and must outlive the server; conf is updated in place by
 * http_server_reload (core->conf should point to it). conf_path is the file
 * SIGHUP re-reads (copied; may be NULL to disable reloads).
 * Errors: IOTP_ERR_CONFIG (bad certificate or key), IOTP_ERR_IO (cannot
 * listen; the message says why, e.g. "address already in use").
 * Free with http_server_free(). */
iotp_rc http_server_new(struct event_base *base, struct iotp_conf *conf, const char *conf_path,
                        struct iotp_core *core, struct http_server **out,
                        struct iotp_err *err);

/* Installs SIGTERM and SIGINT (graceful stop; a second one stops at once)
 * and SIGHUP (reload) handlers on the server's event base. */
iotp_rc http_server_handle_signals(struct http_server *srv, struct iotp_err *err);

/* "https://HOST:PORT" of the bound listener (IPv6 hosts bracketed), and the
 * port alone. Static storage in the server. */
const char *http_server_url(const struct http_server *srv);
int http_server_port(const struct http_server *srv);

/* Graceful stop: closes the listener, closes idle connections, lets
 * in-flight requests finish (their responses carry Connection: close), then
 * makes the event loop return; after [api] timeout seconds whatever is left
 * is closed. Safe to call more than once. */
void http_server_stop(struct http_server *srv);

/* Re-reads the config file: when it loads and validates, applies what can
 * change at run time (log level, region, account id, limits, TLS
 * certificate and key, MQTT endpoint) and logs options that need a restart
 * (listen address, store, PKI files); when it does not, logs why and keeps
 * the running config. Returns the load/validate result. */
iotp_rc http_server_reload(struct http_server *srv, struct iotp_err *err);

/* The server's counters (for routes and workers: metrics_cert_issued). */
struct metrics *http_server_metrics(struct http_server *srv);

/* Open connections right now. */
int http_server_connections(const struct http_server *srv);

/* Frees everything, closing open connections. NULL is a no-op. Call after
 * the event loop has returned. */
void http_server_free(struct http_server *srv);

#endif
