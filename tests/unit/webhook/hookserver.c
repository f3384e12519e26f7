/*
 * The tests' hook server (see hookserver.h): a blocking accept loop and a
 * detached thread per connection that reads one HTTP request and answers
 * it according to its path.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "net/webhook.h"
#include "hookserver.h"

struct conn {
	struct hookserver *s;
	int fd;
	SSL *ssl;
};

static int io_read(struct conn *c, char *buf, size_t n)
{
	if (c->ssl != NULL)
		return SSL_read(c->ssl, buf, (int)n);
	return (int)recv(c->fd, buf, n, 0);
}

static void io_write(struct conn *c, const char *buf, size_t n)
{
	if (c->ssl != NULL)
		SSL_write(c->ssl, buf, (int)n);
	else if (send(c->fd, buf, n, MSG_NOSIGNAL) < 0)
		return;
}

static void reply(struct conn *c, int status, const char *extra, const char *body)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%s"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	                 status, extra != NULL ? extra : "", strlen(body));

	io_write(c, head, (size_t)n);
	io_write(c, body, strlen(body));
}

/* Value of a header (case-insensitive name) in the head, copied to out. */
static void header(const char *head, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);
	const char *p = head;

	out[0] = '\0';
	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1, *e;

			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			snprintf(out, size, "%.*s", (int)(e != NULL ? e - v : (long)strlen(v)), v);
			return;
		}
	}
}

static void *serve(void *ud)
{
	struct conn *c = ud;
	struct hookserver *s = c->s;
	char buf[65536], path[128], clen[32], sig[128], ts[32], ctype[64];
	size_t got = 0, need;
	char *end = NULL, *body;
	int n;

	if (s->tls != NULL) {
		c->ssl = SSL_new(s->tls);
		SSL_set_fd(c->ssl, c->fd);
		if (SSL_accept(c->ssl) != 1)
			goto done;
	}
	while (got < sizeof(buf) - 1 && (end = strstr(buf, "\r\n\r\n")) == NULL) {
		n = io_read(c, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			goto done;
		got += (size_t)n;
		buf[got] = '\0';
	}
	if (end == NULL)
		goto done;
	header(buf, "Content-Length", clen, sizeof(clen));
	need = (size_t)(end + 4 - buf) + (size_t)strtoul(clen, NULL, 10);
	while (got < need && got < sizeof(buf) - 1) {
		n = io_read(c, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			goto done;
		got += (size_t)n;
		buf[got] = '\0';
	}
	body = end + 4;
	if (sscanf(buf, "POST %127s", path) != 1)
		snprintf(path, sizeof(path), "?");
	header(buf, "X-Iotprov-Signature", sig, sizeof(sig));
	header(buf, "X-Iotprov-Timestamp", ts, sizeof(ts));
	header(buf, "Content-Type", ctype, sizeof(ctype));
	pthread_mutex_lock(&s->lock);
	s->requests++;
	snprintf(s->last_path, sizeof(s->last_path), "%s", path);
	snprintf(s->last_sig, sizeof(s->last_sig), "%s", sig);
	snprintf(s->last_ts, sizeof(s->last_ts), "%s", ts);
	snprintf(s->last_ctype, sizeof(s->last_ctype), "%s", ctype);
	free(s->last_body);
	s->last_body = strdup(body);
	pthread_mutex_unlock(&s->lock);

	if (strcmp(path, "/allow") == 0) {
		reply(c, 200, NULL, "{\"allowProvisioning\": true}");
	} else if (strcmp(path, "/deny") == 0) {
		reply(c, 200, NULL, "{\"allowProvisioning\": false}");
	} else if (strcmp(path, "/override") == 0) {
		reply(c, 200, NULL,
		      "{\"allowProvisioning\": true, \"parameterOverrides\": "
		      "{\"SerialNumber\": \"HOOK\"}}");
	} else if (strncmp(path, "/sleep/", 7) == 0) {
		long ms = strtol(path + 7, NULL, 10);
		struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};

		nanosleep(&t, NULL);
		reply(c, 200, NULL, "{\"allowProvisioning\": true}");
	} else if (strcmp(path, "/500") == 0) {
		reply(c, 500, NULL, "{\"allowProvisioning\": true}");
	} else if (strcmp(path, "/garbage") == 0) {
		reply(c, 200, NULL, "allowProvisioning: yes {");
	} else if (strcmp(path, "/big") == 0) {
		char *big = malloc(100 * 1024 + 64);

		if (big != NULL) {
			memset(big, ' ', 100 * 1024);
			memcpy(big, "{\"allowProvisioning\": true", 26);
			memcpy(big + 100 * 1024, "}", 2);
			reply(c, 200, NULL, big);
			free(big);
		}
	} else if (strcmp(path, "/redirect") == 0) {
		reply(c, 302, "Location: /allow\r\n", "{}");
	} else if (strcmp(path, "/verify") == 0) {
		char want[68];
		long long t = strtoll(ts, NULL, 10);
		int ok = webhook_sign(s->secret, strlen(s->secret), t, body, strlen(body), want,
		                      NULL) == IOTP_OK &&
		         strlen(sig) == strlen(want) && CRYPTO_memcmp(sig, want, strlen(want)) == 0 &&
		         llabs((long long)time(NULL) - t) <= 300;

		if (ok)
			reply(c, 200, NULL, "{\"allowProvisioning\": true}");
		else
			reply(c, 401, NULL, "{\"message\": \"bad signature\"}");
	} else {
		reply(c, 404, NULL, "{}");
	}
done:
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	close(c->fd);
	pthread_mutex_lock(&s->lock);
	s->active--;
	pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
	free(c);
	return NULL;
}

static void *accept_loop(void *ud)
{
	struct hookserver *s = ud;

	for (;;) {
		struct pollfd p = {s->fd, POLLIN, 0};
		struct conn *c;
		pthread_t t;
		int fd;

		pthread_mutex_lock(&s->lock);
		if (s->stopping) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		pthread_mutex_unlock(&s->lock);
		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(s->fd, NULL, NULL);
		if (fd < 0)
			continue;
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->s = s;
		c->fd = fd;
		pthread_mutex_lock(&s->lock);
		s->active++;
		pthread_mutex_unlock(&s->lock);
		if (pthread_create(&t, NULL, serve, c) != 0) {
			close(fd);
			free(c);
			pthread_mutex_lock(&s->lock);
			s->active--;
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

int hookserver_start(struct hookserver *s, const char *secret, X509 *tls_cert,
                     EVP_PKEY *tls_key)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int one = 1;

	memset(s, 0, sizeof(*s));
	s->secret = secret;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	if (tls_cert != NULL) {
		s->tls = SSL_CTX_new(TLS_server_method());
		if (s->tls == NULL || SSL_CTX_use_certificate(s->tls, tls_cert) != 1 ||
		    SSL_CTX_use_PrivateKey(s->tls, tls_key) != 1)
			return -1;
	}
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (s->fd < 0)
		return -1;
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->fd, 64) != 0 ||
	    getsockname(s->fd, (struct sockaddr *)&a, &alen) != 0)
		return -1;
	s->port = ntohs(a.sin_port);
	return pthread_create(&s->thread, NULL, accept_loop, s) == 0 ? 0 : -1;
}

void hookserver_stop(struct hookserver *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_mutex_lock(&s->lock);
	while (s->active > 0)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
	close(s->fd);
	SSL_CTX_free(s->tls);
	free(s->last_body);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->idle);
}
