/*
 * Commissioning over a local web page: a tiny single-threaded HTTP/1.1
 * server for the SoftAP case (the installer's phone joins the device's
 * access point and opens http://<device>/). It serves exactly two things:
 * the one-file page built from web/commission/ (GET /) and the message
 * endpoint (POST /api/commission, one JSON message in, one out), plus
 * GET /healthz for scripts. Each connection carries one request
 * (Connection: close); reads and writes are non-blocking inside the
 * commission_serve loop, every request has a size cap and a deadline, so a
 * slow or hostile client cannot stall the serial or media transports.
 *
 * Cross-site requests are refused: a POST must be application/json (which
 * a foreign page cannot send without a CORS preflight this server never
 * grants) and an Origin header, when present, must name this server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"
#include "device/commission.h"

#define CONNS_MAX 8
#define REQ_MAX (COMMISSION_LINE_MAX + 8192)
#define PAGE_MAX (8 * 1024 * 1024)
#define CONN_DEADLINE_MS 10000

struct conn {
	int fd;                  /* -1: free slot */
	struct buf in;
	char *out;
	size_t out_len, out_off;
	int64_t deadline;
};

struct http_t {
	struct cm_transport base;
	int lfd;
	int port;
	char *page_path;
	struct conn conns[CONNS_MAX];
};

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	buf_cleanup(&c->in);
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
}

/* Queues a whole response on c. body may be NULL for an empty one. */
static void respond(struct conn *c, int status, const char *reason, const char *ctype,
                    const char *body, size_t len)
{
	struct buf r;

	buf_init(&r, 0);
	if (buf_printf(&r,
	               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	               "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
	               "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
	               "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
	               "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
	               "form-action 'none'; frame-ancestors 'none'\r\n"
	               "Connection: close\r\n\r\n",
	               status, reason, ctype, len) != IOTP_OK ||
	    (len && buf_append(&r, body, len) != IOTP_OK)) {
		buf_cleanup(&r);
		conn_close(c);
		return;
	}
	c->out = buf_detach(&r, &c->out_len);
	c->out_off = 0;
	/* Nothing more is read from this connection. */
	buf_cleanup(&c->in);
}

static void respond_text(struct conn *c, int status, const char *reason, const char *text)
{
	respond(c, status, reason, "text/plain; charset=utf-8", text, strlen(text));
}

/* The value of header name in the head (NUL-terminated at the blank line),
 * copied into out; 0 when absent. */
static int header(const char *head, const char *name, char *out, size_t size)
{
	size_t n = strlen(name);
	const char *p = strstr(head, "\r\n");

	while (p && p[2] != '\r' && p[2] != '\0') {
		const char *line = p + 2, *end = strstr(line, "\r\n");

		if (!end)
			break;
		if ((size_t)(end - line) > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
			const char *v = line + n + 1;
			size_t len;

			while (*v == ' ' || *v == '\t')
				v++;
			len = (size_t)(end - v);
			while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
				len--;
			if (len >= size)
				len = size - 1;
			memcpy(out, v, len);
			out[len] = '\0';
			return 1;
		}
		p = end;
	}
	return 0;
}

static void serve_page(struct http_t *h, struct conn *c)
{
	char *page = NULL;
	size_t len = 0;
	struct iotp_err err;

	if (!h->page_path ||
	    util_read_file(h->page_path, PAGE_MAX, &page, &len, &err) != IOTP_OK) {
		LOG_WARN("commission http: no page to serve (%s)",
		         h->page_path ? err.msg : "no --page given");
		respond_text(c, 404, "Not Found",
		             "The commissioning page is not installed on this device "
		             "(build it with scripts/build-web).\n");
		return;
	}
	respond(c, 200, "OK", "text/html; charset=utf-8", page, len);
	free(page);
}

static void serve_message(struct conn *c, const char *head, const char *body, size_t len,
                          struct commission_device *dev)
{
	char ctype[128], origin[256], host[256], self[300];
	struct buf reply;
	struct iotp_err err;

	if (!header(head, "Content-Type", ctype, sizeof(ctype)) ||
	    strncasecmp(ctype, "application/json", 16) != 0) {
		respond_text(c, 415, "Unsupported Media Type", "send application/json\n");
		return;
	}
	if (header(head, "Origin", origin, sizeof(origin))) {
		if (!header(head, "Host", host, sizeof(host)))
			host[0] = '\0';
		snprintf(self, sizeof(self), "http://%s", host);
		if (strcmp(origin, self) != 0) {
			LOG_WARN("commission http: refused a request from origin %.100s", origin);
			respond_text(c, 403, "Forbidden", "cross-origin requests are refused\n");
			return;
		}
	}
	buf_init(&reply, 0);
	if (commission_device_handle(dev, body, len, &reply, &err) != IOTP_OK) {
		buf_cleanup(&reply);
		respond_text(c, 500, "Internal Server Error", "out of memory\n");
		return;
	}
	buf_puts(&reply, "\n");
	respond(c, 200, "OK", "application/json", reply.data, reply.len);
	buf_cleanup(&reply);
}

/* Handles the request in c->in once it is complete. */
static void try_request(struct http_t *h, struct conn *c, struct commission_device *dev)
{
	char *head_end, method[8], path[128], clen[32];
	int64_t body_len = 0;
	size_t head_len;

	head_end = c->in.data ? strstr(c->in.data, "\r\n\r\n") : NULL;
	if (!head_end)
		return;
	head_len = (size_t)(head_end - c->in.data) + 4;
	if (sscanf(c->in.data, "%7s %127s HTTP/1.", method, path) != 2) {
		respond_text(c, 400, "Bad Request", "bad request line\n");
		return;
	}
	if (header(c->in.data, "Content-Length", clen, sizeof(clen)) &&
	    util_parse_int64(clen, 0, COMMISSION_LINE_MAX, &body_len) != IOTP_OK) {
		respond_text(c, 413, "Payload Too Large", "one message at a time, at most 64 KiB\n");
		return;
	}
	if (c->in.len < head_len + (size_t)body_len)
		return; /* body still arriving */
	head_end[2] = '\0';
	if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
		if (strcmp(method, "GET") != 0)
			respond_text(c, 405, "Method Not Allowed", "GET only\n");
		else
			serve_page(h, c);
	} else if (strcmp(path, "/api/commission") == 0) {
		if (strcmp(method, "POST") != 0)
			respond_text(c, 405, "Method Not Allowed", "POST only\n");
		else
			serve_message(c, c->in.data, c->in.data + head_len, (size_t)body_len, dev);
	} else if (strcmp(path, "/healthz") == 0) {
		respond_text(c, 200, "OK", "ok\n");
	} else {
		respond_text(c, 404, "Not Found", "not found\n");
	}
}

static int http_pollfds(struct cm_transport *t, struct pollfd *fds, int max)
{
	struct http_t *h = (struct http_t *)t;
	int n = 0;

	if (n < max) {
		fds[n].fd = h->lfd;
		fds[n].events = POLLIN;
		n++;
	}
	for (int i = 0; i < CONNS_MAX && n < max; i++) {
		if (h->conns[i].fd < 0)
			continue;
		fds[n].fd = h->conns[i].fd;
		fds[n].events = h->conns[i].out ? POLLOUT : POLLIN;
		n++;
	}
	return n;
}

static struct conn *conn_of(struct http_t *h, int fd)
{
	for (int i = 0; i < CONNS_MAX; i++)
		if (h->conns[i].fd == fd)
			return &h->conns[i];
	return NULL;
}

static void accept_one(struct http_t *h)
{
	struct conn *slot = NULL;
	int fd = accept(h->lfd, NULL, NULL);

	if (fd < 0)
		return;
	for (int i = 0; i < CONNS_MAX && !slot; i++)
		if (h->conns[i].fd < 0)
			slot = &h->conns[i];
	if (!slot || fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
		close(fd); /* full: the client retries */
		return;
	}
	slot->fd = fd;
	buf_init(&slot->in, REQ_MAX);
	slot->deadline = util_mono_ms() + CONN_DEADLINE_MS;
}

static void http_dispatch(struct cm_transport *t, const struct pollfd *fds, int n,
                          struct commission_device *dev)
{
	struct http_t *h = (struct http_t *)t;

	for (int i = 0; i < n; i++) {
		struct conn *c;

		if (!fds[i].revents)
			continue;
		if (fds[i].fd == h->lfd) {
			accept_one(h);
			continue;
		}
		if (!(c = conn_of(h, fds[i].fd)))
			continue;
		if (c->out) {
			ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

			if (w < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (w <= 0 || (c->out_off += (size_t)w) == c->out_len)
				conn_close(c);
			continue;
		}
		char tmp[8192];
		ssize_t r = read(c->fd, tmp, sizeof(tmp));

		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0) {
			conn_close(c);
			continue;
		}
		if (buf_append(&c->in, tmp, (size_t)r) != IOTP_OK) {
			respond_text(c, 413, "Payload Too Large", "request too big\n");
			continue;
		}
		try_request(h, c, dev);
	}
}

static void http_tick(struct cm_transport *t, struct commission_device *dev)
{
	struct http_t *h = (struct http_t *)t;
	int64_t now = util_mono_ms();

	(void)dev;
	for (int i = 0; i < CONNS_MAX; i++)
		if (h->conns[i].fd >= 0 && now > h->conns[i].deadline)
			conn_close(&h->conns[i]);
}

static void http_free(struct cm_transport *t)
{
	struct http_t *h = (struct http_t *)t;

	if (!h)
		return;
	for (int i = 0; i < CONNS_MAX; i++)
		conn_close(&h->conns[i]);
	if (h->lfd >= 0)
		close(h->lfd);
	free(h->page_path);
	free(h);
}

int cm_http_port(const struct cm_transport *t)
{
	return ((const struct http_t *)t)->port;
}

iotp_rc cm_http_new(const char *listen_addr, const char *page_path, struct cm_transport **out,
                    struct iotp_err *err)
{
	struct http_t *h;
	struct sockaddr_storage ss;
	socklen_t sl;
	char host[256];
	int port = 0, one = 1;
	iotp_rc rc;

	rc = conf_parse_listen(listen_addr, host, sizeof(host), &port, err);
	if (rc != IOTP_OK)
		return rc;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		return iotp_err_set(err, IOTP_ERR_CONFIG, "--http %s: an IP address is needed",
		                    listen_addr);
	}
	if (!(h = calloc(1, sizeof(*h))))
		return iotp_err_set(err, IOTP_ERR_NOMEM, "http transport");
	for (int i = 0; i < CONNS_MAX; i++)
		h->conns[i].fd = -1;
	h->base.name = "http";
	h->base.pollfds = http_pollfds;
	h->base.dispatch = http_dispatch;
	h->base.tick = http_tick;
	h->base.free = http_free;
	h->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->lfd < 0) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "socket: %s", strerror(errno));
		goto fail;
	}
	setsockopt(h->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(h->lfd, (struct sockaddr *)&ss, sl) != 0 || listen(h->lfd, 16) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "cannot listen on %s: %s", listen_addr,
		                  strerror(errno));
		goto fail;
	}
	sl = sizeof(ss);
	getsockname(h->lfd, (struct sockaddr *)&ss, &sl);
	h->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
	                                        : ((struct sockaddr_in6 *)&ss)->sin6_port);
	if (page_path && !(h->page_path = strdup(page_path))) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "http transport");
		goto fail;
	}
	*out = &h->base;
	return IOTP_OK;
fail:
	http_free(&h->base);
	return rc;
}
