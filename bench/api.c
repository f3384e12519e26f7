/*
 * bench_api: a load generator for iotprovd's control-plane API on loopback.
 * N client threads, each with one keep-alive TLS connection, send SigV4
 * signed requests (signed with src/server/sigv4.c, exactly as the iotprov
 * CLI signs) back to back for a fixed time per phase, and the program
 * reports requests per second with p50 and p99 latency for:
 *
 *   GetHealth       GET /healthz, unauthenticated: the same server's bound
 *                   for one request on one connection (TLS record, HTTP
 *                   parse, one store round trip, response);
 *   CreateThing     POST /things/<unique name> with a small attribute body;
 *   DescribeThing   GET /things/<a name this thread created>;
 *
 * and, in this process on one thread, how many SigV4 signatures per second
 * sigv4_sign computes (every signed request costs the client one and the
 * server one verification of the same cost).
 *
 * The server: by default the program makes a throw-away data directory
 * (P-256 root and issuing CA, a server certificate for 127.0.0.1, an empty
 * iotprov.conf), creates an admin key with `iotprovd --create-key`, starts
 * `iotprovd --api-listen 127.0.0.1:0` (stderr to iotprovd.log in that
 * directory), and stops it with SIGTERM at the end. With --endpoint it
 * measures a running server instead, with the key from AWS_ACCESS_KEY_ID
 * and AWS_SECRET_ACCESS_KEY and --ca for the TLS trust anchor.
 *
 * Usage: bench_api [--connections N] [--seconds S] [--iotprovd PATH]
 *                  [--endpoint https://127.0.0.1:PORT --ca FILE] [--keep]
 * It is a program, not a test: the machine's load decides the figures.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/util.h"
#include "core/pki.h"
#include "server/sigv4.h"

#define REGION "us-east-1"
#define RESP_MAX (64 * 1024)

enum phase { PHASE_HEALTH, PHASE_CREATE, PHASE_DESCRIBE, PHASE_COUNT };
static const char *const phase_names[PHASE_COUNT] = {"GetHealth", "CreateThing",
                                                     "DescribeThing"};

struct bench {
	int conns;
	double seconds;
	char host[64];
	int port;
	char ca_file[1024];
	char key_id[SIGV4_KEY_ID_MAX + 1];
	char secret[128];
	char run_tag[32];            /* keeps thing names unique across runs */
	SSL_CTX *ctx;
	pthread_barrier_t start;
};

struct worker {
	struct bench *b;
	int index;
	enum phase phase;
	SSL *ssl;
	int fd;
	uint64_t deadline_ns;
	uint32_t *lat_us;            /* one entry per completed request */
	size_t nlat, alat;
	uint64_t errors;
	int64_t created;             /* things this worker created */
	char first_error[160];
};

/* The daemon this program started, stopped by die() too. */
static pid_t started_daemon = -1;

static void die(const char *what, const char *detail)
{
	if (started_daemon > 0)
		kill(started_daemon, SIGTERM);
	fprintf(stderr, "bench_api: %s%s%s\n", what, detail != NULL ? ": " : "",
	        detail != NULL ? detail : "");
	exit(1);
}

/* ------------------------------------------------------------------ */
/* A throw-away data directory and the daemon                          */

static void write_pem_cert(const char *dir, const char *name, X509 *a, X509 *b)
{
	char path[1200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL || PEM_write_X509(f, a) != 1 || (b != NULL && PEM_write_X509(f, b) != 1))
		die("cannot write", path);
	fclose(f);
}

static void write_key(const char *dir, const char *name, EVP_PKEY *key)
{
	char path[1200];
	struct iotp_err err;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (pki_key_write_file(key, path, &err) != IOTP_OK)
		die("cannot write a key", err.msg);
}

/* root-ca, issuing-ca and server certificates and keys where the default
 * iotprov.conf looks for them, ca-bundle.pem and an iotprov.conf that
 * keeps the daemon quiet and lets every bench connection in. */
static void make_data_dir(const char *dir)
{
	struct pki_ca root = {NULL, NULL}, issuing = {NULL, NULL};
	EVP_PKEY *server_key = NULL;
	X509 *server = NULL;
	struct iotp_err err;
	char path[1200];
	static const char conf[] = "[service]\nlog_level = warn\n\n[api]\nmax_connections = 4096\n";

	if (pki_key_generate(PKI_KEY_EC_P256, &root.key, &err) != IOTP_OK ||
	    pki_ca_create_root(root.key, "bench root", 2, &root.cert, &err) != IOTP_OK ||
	    pki_key_generate(PKI_KEY_EC_P256, &issuing.key, &err) != IOTP_OK ||
	    pki_ca_create_issuing(&root, issuing.key, "bench issuing", 2, &issuing.cert, &err) !=
	        IOTP_OK ||
	    pki_key_generate(PKI_KEY_EC_P256, &server_key, &err) != IOTP_OK ||
	    pki_server_cert_create(&issuing, server_key, "127.0.0.1,localhost", 2, &server, &err) !=
	        IOTP_OK)
		die("cannot make the CAs", err.msg);
	write_pem_cert(dir, "root-ca.crt", root.cert, NULL);
	write_pem_cert(dir, "ca-bundle.pem", root.cert, NULL);
	write_pem_cert(dir, "issuing-ca.crt", issuing.cert, NULL);
	write_pem_cert(dir, "server.crt", server, issuing.cert);
	write_key(dir, "root-ca.key", root.key);
	write_key(dir, "issuing-ca.key", issuing.key);
	write_key(dir, "server.key", server_key);
	snprintf(path, sizeof(path), "%s/iotprov.conf", dir);
	if (util_write_file(path, conf, sizeof(conf) - 1, 0600, &err) != IOTP_OK)
		die("cannot write iotprov.conf", err.msg);
	pki_ca_cleanup(&root);
	pki_ca_cleanup(&issuing);
	EVP_PKEY_free(server_key);
	X509_free(server);
}

/* Runs argv with stdout into a pipe; returns the pid and the read end. */
static pid_t spawn(char *const argv[], const char *log_path, int *out_fd)
{
	int p[2];
	pid_t pid;

	if (pipe(p) != 0)
		die("pipe", strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork", strerror(errno));
	if (pid == 0) {
		FILE *log = log_path != NULL ? fopen(log_path, "a") : NULL;

		dup2(p[1], 1);
		if (log != NULL)
			dup2(fileno(log), 2);
		close(p[0]);
		close(p[1]);
		execv(argv[0], argv);
		fprintf(stderr, "bench_api: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	*out_fd = p[0];
	return pid;
}

/* Reads what fd delivers until EOF or a newline count is reached. */
static size_t read_lines(int fd, char *buf, size_t size, int lines)
{
	size_t n = 0;
	int seen = 0;

	while (n + 1 < size && seen < lines) {
		ssize_t r = read(fd, buf + n, 1);

		if (r <= 0)
			break;
		if (buf[n] == '\n')
			seen++;
		n++;
	}
	buf[n] = '\0';
	return n;
}

static void create_key(struct bench *b, const char *iotprovd, const char *dir)
{
	char *argv[] = {(char *)iotprovd, (char *)"--data-dir", (char *)dir,
	                (char *)"--create-key", (char *)"admin", NULL};
	char out[512], log_path[1200];
	const char *id, *secret;
	int fd, status = 0;
	pid_t pid;

	snprintf(log_path, sizeof(log_path), "%s/iotprovd.log", dir);
	pid = spawn(argv, log_path, &fd);
	read_lines(fd, out, sizeof(out), 2);
	close(fd);
	waitpid(pid, &status, 0);
	id = strstr(out, "AWS_ACCESS_KEY_ID=");
	secret = strstr(out, "AWS_SECRET_ACCESS_KEY=");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || id == NULL || secret == NULL ||
	    sscanf(id, "AWS_ACCESS_KEY_ID=%128s", b->key_id) != 1 ||
	    sscanf(secret, "AWS_SECRET_ACCESS_KEY=%127s", b->secret) != 1)
		die("iotprovd --create-key failed, see", log_path);
}

static pid_t start_daemon(struct bench *b, const char *iotprovd, const char *dir)
{
	char *argv[] = {(char *)iotprovd, (char *)"--data-dir", (char *)dir,
	                (char *)"--api-listen", (char *)"127.0.0.1:0", NULL};
	char line[256], log_path[1200];
	int fd;
	pid_t pid;

	snprintf(log_path, sizeof(log_path), "%s/iotprovd.log", dir);
	pid = spawn(argv, log_path, &fd);
	read_lines(fd, line, sizeof(line), 1);
	close(fd);
	if (sscanf(line, "iotprovd: listening on https://127.0.0.1:%d", &b->port) != 1)
		die("iotprovd did not start, see", log_path);
	util_strlcpy(b->host, "127.0.0.1", sizeof(b->host));
	return pid;
}

static void parse_endpoint(struct bench *b, const char *url)
{
	char host[64];
	int port;

	if (sscanf(url, "https://%63[0-9.]:%d", host, &port) != 2 || port <= 0 || port > 65535)
		die("--endpoint must be https://<IPv4 loopback address>:PORT", url);
	if (strncmp(host, "127.", 4) != 0)
		die("--endpoint must be a loopback address (127.x.x.x)", url);
	util_strlcpy(b->host, host, sizeof(b->host));
	b->port = port;
}

/* ------------------------------------------------------------------ */
/* One client connection                                                */

static int conn_open(struct worker *w)
{
	struct sockaddr_in sa;
	int one = 1;

	w->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (w->fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)w->b->port);
	if (inet_pton(AF_INET, w->b->host, &sa.sin_addr) != 1 ||
	    connect(w->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto fail;
	setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	w->ssl = SSL_new(w->b->ctx);
	if (w->ssl == NULL || SSL_set_fd(w->ssl, w->fd) != 1 ||
	    SSL_set1_host(w->ssl, w->b->host) != 1 || SSL_connect(w->ssl) != 1)
		goto fail;
	return 0;
fail:
	SSL_free(w->ssl);
	w->ssl = NULL;
	close(w->fd);
	w->fd = -1;
	return -1;
}

static void conn_close(struct worker *w)
{
	if (w->ssl != NULL) {
		SSL_shutdown(w->ssl);
		SSL_free(w->ssl);
	}
	if (w->fd >= 0)
		close(w->fd);
	w->ssl = NULL;
	w->fd = -1;
}

static int write_all(SSL *ssl, const char *p, size_t n)
{
	while (n > 0) {
		int w = SSL_write(ssl, p, n > 1u << 30 ? 1 << 30 : (int)n);

		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The first case-insensitive occurrence of needle in [s, end), or NULL
 * (strcasestr is a GNU extension). */
static const char *find_ci(const char *s, const char *end, const char *needle)
{
	size_t n = strlen(needle);

	for (; s + n <= end; s++) {
		if (strncasecmp(s, needle, n) == 0)
			return s;
	}
	return NULL;
}

/* Reads one response; returns the status (0 on a broken connection).
 * *close_after is set when the server asked to close. */
static int read_response(SSL *ssl, char *buf, size_t size, int *close_after)
{
	size_t n = 0, need = 0;
	char *end = NULL;
	long clen = -1;
	int status = 0;

	*close_after = 0;
	for (;;) {
		int r;

		if (end == NULL) {
			buf[n] = '\0';
			end = strstr(buf, "\r\n\r\n");
			if (end != NULL) {
				const char *cl = find_ci(buf, end, "\r\ncontent-length:");

				if (sscanf(buf, "HTTP/1.1 %d", &status) != 1 || cl == NULL)
					return 0;
				clen = strtol(cl + 17, NULL, 10);
				if (clen < 0 || (size_t)clen + (size_t)(end + 4 - buf) >= size)
					return 0;
				need = (size_t)(end + 4 - buf) + (size_t)clen;
				*close_after = find_ci(buf, end, "\r\nconnection: close") != NULL;
			}
		}
		if (end != NULL && n >= need)
			return status;
		if (n + 1 >= size)
			return 0;
		r = SSL_read(ssl, buf + n, (int)(size - n - 1));
		if (r <= 0)
			return 0;
		n += (size_t)r;
	}
}

/* Builds, signs (unless public) and sends one request; returns the
 * status. */
static int do_request(struct worker *w, const char *method, const char *path,
                      const char *body, int sign, char *resp, size_t resp_size)
{
	char host[96], amzdate[17], auth[1024], req[4096];
	struct sigv4_header h[3];
	struct sigv4_request sr;
	struct iotp_err err;
	size_t blen = body != NULL ? strlen(body) : 0;
	int n, close_after = 0, status;

	snprintf(host, sizeof(host), "%s:%d", w->b->host, w->b->port);
	if (!sign) {
		n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, path,
		             host);
	} else {
		sigv4_format_amzdate(util_now(), amzdate);
		h[0].name = "host";
		h[0].value = host;
		h[1].name = "x-amz-date";
		h[1].value = amzdate;
		h[2].name = "content-type";
		h[2].value = "application/json";
		sr.method = method;
		sr.target = path;
		sr.headers = h;
		sr.nheaders = blen > 0 ? 3 : 2;
		sr.body = body != NULL ? body : "";
		sr.body_len = blen;
		if (sigv4_sign(&sr, w->b->key_id, w->b->secret, REGION, "iot", amzdate, auth,
		               sizeof(auth), &err) != IOTP_OK)
			die("sigv4_sign", err.msg);
		n = snprintf(req, sizeof(req),
		             "%s %s HTTP/1.1\r\nHost: %s\r\nX-Amz-Date: %s\r\n%s"
		             "Authorization: %s\r\nContent-Length: %zu\r\n\r\n%s",
		             method, path, host, amzdate,
		             blen > 0 ? "Content-Type: application/json\r\n" : "", auth, blen,
		             body != NULL ? body : "");
	}
	if (n < 0 || (size_t)n >= sizeof(req))
		die("request too long", path);
	if (w->ssl == NULL && conn_open(w) != 0)
		return 0;
	if (write_all(w->ssl, req, (size_t)n) != 0) {
		conn_close(w);
		return 0;
	}
	status = read_response(w->ssl, resp, resp_size, &close_after);
	if (status == 0 || close_after)
		conn_close(w);
	return status;
}

static void record(struct worker *w, uint64_t ns)
{
	if (w->nlat == w->alat) {
		size_t na = w->alat != 0 ? w->alat * 2 : 4096;
		uint32_t *p = realloc(w->lat_us, na * sizeof(*p));

		if (p == NULL)
			die("out of memory", NULL);
		w->lat_us = p;
		w->alat = na;
	}
	w->lat_us[w->nlat++] = (uint32_t)(ns / 1000 > UINT32_MAX ? UINT32_MAX : ns / 1000);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char path[256], *resp = malloc(RESP_MAX);
	static const char body[] = "{\"attributePayload\":{\"attributes\":{\"bench\":\"1\"}}}";
	int64_t i = 0;

	if (resp == NULL)
		die("out of memory", NULL);
	if (conn_open(w) != 0)
		die("cannot connect", w->b->host);
	pthread_barrier_wait(&w->b->start);
	while (util_mono_ns() < w->deadline_ns) {
		uint64_t t0 = util_mono_ns();
		int status, want = 200;

		switch (w->phase) {
		case PHASE_HEALTH:
			status = do_request(w, "GET", "/healthz", NULL, 0, resp, RESP_MAX);
			break;
		case PHASE_CREATE:
			snprintf(path, sizeof(path), "/things/b%s-%d-%lld", w->b->run_tag, w->index,
			         (long long)w->created);
			status = do_request(w, "POST", path, body, 1, resp, RESP_MAX);
			if (status == 200)
				w->created++;
			break;
		default:
			if (w->created == 0)
				die("DescribeThing needs things from the CreateThing phase", NULL);
			snprintf(path, sizeof(path), "/things/b%s-%d-%lld", w->b->run_tag, w->index,
			         (long long)(i % w->created));
			status = do_request(w, "GET", path, NULL, 1, resp, RESP_MAX);
			break;
		}
		i++;
		if (status == want) {
			record(w, util_mono_ns() - t0);
		} else {
			if (w->errors++ == 0)
				snprintf(w->first_error, sizeof(w->first_error), "%s -> %d %.100s",
				         phase_names[w->phase], status, status != 0 ? resp : "");
			if (w->ssl == NULL && conn_open(w) != 0)
				break;
		}
	}
	conn_close(w);
	free(resp);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

struct result {
	double rate;
	double p50_ms, p99_ms;
	uint64_t count, errors;
};

static struct result run_phase(struct bench *b, struct worker *ws, enum phase ph)
{
	pthread_t *th = calloc((size_t)b->conns, sizeof(*th));
	struct result r = {0, 0, 0, 0, 0};
	uint32_t *all;
	size_t total = 0, k = 0;
	uint64_t t0, t1;

	if (th == NULL || pthread_barrier_init(&b->start, NULL, (unsigned)b->conns + 1) != 0)
		die("out of memory", NULL);
	for (int i = 0; i < b->conns; i++) {
		ws[i].phase = ph;
		ws[i].nlat = 0;
		ws[i].errors = 0;
		ws[i].deadline_ns = UINT64_MAX;
		if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0)
			die("pthread_create", NULL);
	}
	/* The deadline is set before the threads pass the barrier. */
	t0 = util_mono_ns();
	for (int i = 0; i < b->conns; i++)
		ws[i].deadline_ns = t0 + (uint64_t)(b->seconds * 1e9);
	pthread_barrier_wait(&b->start);
	t0 = util_mono_ns();
	for (int i = 0; i < b->conns; i++)
		pthread_join(th[i], NULL);
	t1 = util_mono_ns();
	pthread_barrier_destroy(&b->start);
	free(th);
	for (int i = 0; i < b->conns; i++) {
		total += ws[i].nlat;
		r.errors += ws[i].errors;
		if (ws[i].errors > 0)
			fprintf(stderr, "bench_api: connection %d: %llu error(s), first: %s\n", i,
			        (unsigned long long)ws[i].errors, ws[i].first_error);
	}
	all = malloc((total > 0 ? total : 1) * sizeof(*all));
	if (all == NULL)
		die("out of memory", NULL);
	for (int i = 0; i < b->conns; i++) {
		memcpy(all + k, ws[i].lat_us, ws[i].nlat * sizeof(*all));
		k += ws[i].nlat;
	}
	qsort(all, total, sizeof(*all), cmp_u32);
	r.count = total;
	r.rate = (double)total / ((double)(t1 - t0) / 1e9);
	if (total > 0) {
		r.p50_ms = all[total / 2] / 1000.0;
		r.p99_ms = all[(size_t)((double)(total - 1) * 0.99)] / 1000.0;
	}
	free(all);
	return r;
}

/* sigv4_sign of a DescribeThing request, one thread, for `seconds`. */
static double sign_rate(const struct bench *b, double seconds)
{
	struct sigv4_header h[2] = {{"host", "127.0.0.1:8443"}, {"x-amz-date", NULL}};
	struct sigv4_request sr = {"GET", "/things/bench-0-0", h, 2, "", 0};
	char amzdate[17], auth[1024];
	struct iotp_err err;
	uint64_t t0 = util_mono_ns(), end = t0 + (uint64_t)(seconds * 1e9), n = 0;

	sigv4_format_amzdate(util_now(), amzdate);
	h[1].value = amzdate;
	while (util_mono_ns() < end) {
		for (int i = 0; i < 100; i++) {
			if (sigv4_sign(&sr, b->key_id, b->secret, REGION, "iot", amzdate, auth,
			               sizeof(auth), &err) != IOTP_OK)
				die("sigv4_sign", err.msg);
		}
		n += 100;
	}
	return (double)n / ((double)(util_mono_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"connections", required_argument, NULL, 'c'},
		{"seconds", required_argument, NULL, 's'},
		{"iotprovd", required_argument, NULL, 'i'},
		{"endpoint", required_argument, NULL, 'e'},
		{"ca", required_argument, NULL, 'a'},
		{"keep", no_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct bench b;
	struct worker *ws;
	struct result res[PHASE_COUNT];
	char dir[] = "/tmp/iotp-bench-api-XXXXXX", iotprovd[1200];
	const char *endpoint = NULL, *ca = NULL;
	int opt, keep = 0, status = 0;
	pid_t daemon = -1;
	int64_t conns = 8;
	double hmac;

	memset(&b, 0, sizeof(b));
	b.seconds = 3.0;
	/* By default the iotprovd built next to this program. */
	{
		const char *slash = strrchr(argv[0], '/');

		if (slash != NULL)
			snprintf(iotprovd, sizeof(iotprovd), "%.*s/iotprovd", (int)(slash - argv[0]),
			         argv[0]);
		else
			util_strlcpy(iotprovd, "./iotprovd", sizeof(iotprovd));
	}
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (util_parse_int64(optarg, 1, 1024, &conns) != IOTP_OK)
				die("--connections must be 1..1024", optarg);
			break;
		case 's': {
			int64_t s;

			if (util_parse_int64(optarg, 1, 600, &s) != IOTP_OK)
				die("--seconds must be 1..600", optarg);
			b.seconds = (double)s;
			break;
		}
		case 'i': util_strlcpy(iotprovd, optarg, sizeof(iotprovd)); break;
		case 'e': endpoint = optarg; break;
		case 'a': ca = optarg; break;
		case 'k': keep = 1; break;
		case 'h':
		default:
			fprintf(opt == 'h' ? stdout : stderr,
			        "usage: bench_api [--connections N] [--seconds S] [--iotprovd PATH]\n"
			        "                 [--endpoint https://127.0.0.1:PORT --ca FILE] "
			        "[--keep]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	b.conns = (int)conns;
	signal(SIGPIPE, SIG_IGN);
	snprintf(b.run_tag, sizeof(b.run_tag), "%lld%d", (long long)util_now() % 100000,
	         (int)getpid() % 1000);

	if (endpoint != NULL) {
		const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");

		if (ca == NULL || id == NULL || secret == NULL)
			die("--endpoint needs --ca and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY", NULL);
		parse_endpoint(&b, endpoint);
		util_strlcpy(b.ca_file, ca, sizeof(b.ca_file));
		util_strlcpy(b.key_id, id, sizeof(b.key_id));
		util_strlcpy(b.secret, secret, sizeof(b.secret));
	} else {
		if (access(iotprovd, X_OK) != 0)
			die("iotprovd not found (use --iotprovd PATH)", iotprovd);
		if (mkdtemp(dir) == NULL)
			die("mkdtemp", strerror(errno));
		make_data_dir(dir);
		create_key(&b, iotprovd, dir);
		daemon = start_daemon(&b, iotprovd, dir);
		started_daemon = daemon;
		snprintf(b.ca_file, sizeof(b.ca_file), "%s/ca-bundle.pem", dir);
	}
	b.ctx = SSL_CTX_new(TLS_client_method());
	if (b.ctx == NULL || SSL_CTX_load_verify_locations(b.ctx, b.ca_file, NULL) != 1)
		die("cannot load the CA bundle", b.ca_file);
	SSL_CTX_set_verify(b.ctx, SSL_VERIFY_PEER, NULL);

	ws = calloc((size_t)b.conns, sizeof(*ws));
	if (ws == NULL)
		die("out of memory", NULL);
	for (int i = 0; i < b.conns; i++) {
		ws[i].b = &b;
		ws[i].index = i;
		ws[i].fd = -1;
	}
	printf("bench_api: %d connection(s), %.0f s per phase, server https://%s:%d%s\n", b.conns,
	       b.seconds, b.host, b.port, daemon > 0 ? " (iotprovd started here)" : "");
	for (int ph = 0; ph < PHASE_COUNT; ph++)
		res[ph] = run_phase(&b, ws, (enum phase)ph);
	hmac = sign_rate(&b, b.seconds < 2 ? b.seconds : 2);

	printf("%-14s %10s %9s %9s %8s %9s\n", "operation", "req/s", "p50 ms", "p99 ms",
	       "errors", "x bound");
	for (int ph = 0; ph < PHASE_COUNT; ph++) {
		printf("%-14s %10.0f %9.2f %9.2f %8llu %9.2f\n", phase_names[ph], res[ph].rate,
		       res[ph].p50_ms, res[ph].p99_ms, (unsigned long long)res[ph].errors,
		       res[PHASE_HEALTH].rate > 0 ? res[ph].rate / res[PHASE_HEALTH].rate : 0.0);
		if (res[ph].errors > 0 || res[ph].count == 0)
			status = 1;
	}
	printf("bound: GetHealth on the same server and connections (unauthenticated, one store "
	       "query); sigv4_sign here, one thread: %.0f signatures/s\n",
	       hmac);
	for (int ph = 0; ph < PHASE_COUNT; ph++)
		printf("RESULT name=api_%s value=%.0f unit=req/s bound=%.0f bound_name=\"GetHealth, same "
		       "server and connections\" ratio=%.3f\n", phase_names[ph], res[ph].rate,
		       res[PHASE_HEALTH].rate, res[PHASE_HEALTH].rate > 0 ? res[ph].rate /
		       res[PHASE_HEALTH].rate : 0.0);

	for (int i = 0; i < b.conns; i++)
		free(ws[i].lat_us);
	free(ws);
	SSL_CTX_free(b.ctx);
	if (daemon > 0) {
		int st = 0;

		kill(daemon, SIGTERM);
		waitpid(daemon, &st, 0);
		started_daemon = -1;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "bench_api: iotprovd did not stop cleanly (see %s/iotprovd.log)\n",
			        dir);
			status = 1;
			keep = 1;
		}
		if (keep) {
			printf("data directory kept: %s\n", dir);
		} else {
			char *rm[] = {(char *)"/bin/rm", (char *)"-rf", dir, NULL};
			int fd;
			pid_t pid = spawn(rm, NULL, &fd);

			close(fd);
			waitpid(pid, &st, 0);
		}
	}
	OPENSSL_cleanse(b.secret, sizeof(b.secret));
	return status;
}
