/*
 * iotprov-device simulate: N virtual devices, each with its own in-memory
 * key, provisioned by claim over MQTT concurrently (create-from-csr, then
 * provision with parameters), each then connecting with its new identity
 * and publishing one message. A fixed pool of worker threads each drives
 * one device at a time through libmosquitto's mosquitto_loop; the claim's
 * TLS context is built once and shared (MOSQ_OPT_SSL_CTX), so the numbers
 * measure the service rather than the simulator.
 *
 * Prints a progress bar on stderr, then a summary: failures by cause and
 * step, latency percentiles, distinct certificates, and as the last line
 * "N passed, M failed" (M counts devices that did not end provisioned and
 * connected). Exit 0 when every device passed.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cli/iotprov-device/cli.h"
#include "common/util.h"

#define MAX_PARAMS 32
#define MAX_KINDS 48

struct outcome {
	int ok;
	uint32_t total_ms, prov_ms, conn_ms;
	char cert_id[IOTP_CERT_ID_LEN + 1];
	char kind[96];           /* "<step>: <cause> [errorCode]" for a failure */
	char msg[160];           /* first message of that kind, for the summary */
};

struct sim {
	/* settings */
	long devices, concurrency;
	double rate;
	char host[256];
	int port;
	const char *ca, *claim_cert, *claim_key, *tmpl, *prefix, *topic_fmt;
	enum iotp_fp_format fmt;
	int mqtt_version, timeout_ms, connect, server_key, json, quiet, tty;
	struct iotp_param params[MAX_PARAMS];
	size_t nparams;
	char run_id[9];
	/* shared */
	SSL_CTX *claim_ctx;
	int64_t t0;
	atomic_long next, done, passed;
	atomic_int stop;
	struct outcome *out;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void help(void)
{
	printf("usage: iotprov-device simulate --devices N --endpoint HOST:PORT --ca FILE\n"
	       "                               --claim-cert FILE --claim-key FILE --template NAME\n"
	       "                               [--rate R] [--concurrency C] [--method claim]\n"
	       "                               [--format json|cbor] [--param NAME=VALUE]...\n"
	       "                               [--prefix P] [--server-key] [--no-connect]\n"
	       "                               [--timeout SECONDS] [--mqtt-version 4|5] [--json]\n\n"
	       "Runs N virtual devices, each with its own P-256 key in memory, through fleet\n"
	       "provisioning by claim, then connects each with its new identity and publishes\n"
	       "to things/<thing>/hello. --rate limits device starts per second (default: as\n"
	       "fast as --concurrency workers allow, default 16). Every device sends the\n"
	       "parameter SerialNumber=<prefix>-<run>-<n>; in --param values {n} and {name}\n"
	       "are replaced by the device number and that name.\n"
	       "The summary's last line is \"N passed, M failed\"; exit 0 when M is 0.\n");
}

/* Value with {n} and {name} substituted. */
static void subst(const char *tmpl, long n, const char *name, char *out, size_t size)
{
	size_t o = 0;
	const char *p;

	for (p = tmpl; *p != '\0' && o + 1 < size;) {
		if (strncmp(p, "{n}", 3) == 0) {
			o += (size_t)snprintf(out + o, size - o, "%ld", n);
			p += 3;
		} else if (strncmp(p, "{name}", 6) == 0) {
			o += (size_t)snprintf(out + o, size - o, "%s", name);
			p += 6;
		} else {
			out[o++] = *p++;
		}
		if (o >= size)
			o = size - 1;
	}
	out[o] = '\0';
}

static void fail_kind(struct outcome *r, const char *step, const struct iotp_failure *why,
                      const struct iotp_err *err)
{
	r->ok = 0;
	snprintf(r->kind, sizeof(r->kind), "%s: %s%s%.48s", step, iotp_cause_name(why->cause),
	         why->code[0] ? " " : "", why->code);
	util_strlcpy(r->msg, err->msg, sizeof(r->msg));
}

/* One virtual device, start to end. */
static void run_device(struct sim *s, iotp_transport *t, long n, struct outcome *r)
{
	char name[128], cid[IOTP_THING_NAME_MAX + 1], topic[300], payload[200];
	char values[MAX_PARAMS][256];
	struct iotp_param params[MAX_PARAMS + 1];
	struct iotp_err err = { IOTP_OK, "" };
	struct iotp_failure why;
	struct iotp_fleet_opts fo;
	struct iotp_fleet_cert fc;
	struct iotp_fleet_thing ft;
	struct iotp_mqtt_params mp;
	iotp_keystore *ks = NULL, *sk = NULL;
	iotp_fleet *f = NULL;
	SSL_CTX *ctx = NULL;
	char *csr = NULL;
	size_t csr_len = 0, i, np = 0;
	int64_t start = util_mono_ms(), mid;

	memset(&fc, 0, sizeof(fc));
	memset(&ft, 0, sizeof(ft));
	iotp_failure_clear(&why);
	snprintf(name, sizeof(name), "%s-%s-%ld", s->prefix, s->run_id, n);
	params[np].name = "SerialNumber";
	params[np].value = name;
	np++;
	for (i = 0; i < s->nparams; i++) {
		if (strcmp(s->params[i].name, "SerialNumber") == 0)
			np = 0; /* the user's SerialNumber replaces ours */
	}
	for (i = 0; i < s->nparams; i++) {
		subst(s->params[i].value, n, name, values[i], sizeof(values[i]));
		params[np].name = s->params[i].name;
		params[np].value = values[i];
		np++;
	}
	if (!s->server_key) {
		struct iotp_csr_subject subj = { name, name, NULL, NULL, NULL };

		if (iotp_keystore_generate_memory(IOTP_KEY_EC_P256, &ks, &err) != IOTP_OK ||
		    iotp_csr_create(ks, &subj, &csr, &csr_len, &err) != IOTP_OK) {
			why.cause = IOTP_CAUSE_LOCAL;
			fail_kind(r, "key", &why, &err);
			goto out;
		}
	}
	memset(&fo, 0, sizeof(fo));
	fo.host = s->host;
	fo.port = s->port;
	fo.claim_ctx = s->claim_ctx;
	fo.client_id = name;
	fo.template_name = s->tmpl;
	fo.format = s->fmt;
	fo.timeout_ms = s->timeout_ms;
	fo.mqtt_version = s->mqtt_version;
	fo.ops = IOTP_FLEET_OP_REGISTER |
	         (s->server_key ? IOTP_FLEET_OP_CREATE : IOTP_FLEET_OP_CREATE_FROM_CSR);
	fo.transport = t;
	if (iotp_fleet_open(&fo, &f, &why, &err) != IOTP_OK) {
		fail_kind(r, "claim connect", &why, &err);
		goto out;
	}
	if ((s->server_key ? iotp_fleet_create(f, &fc, &why, &err)
	                   : iotp_fleet_create_from_csr(f, csr, csr_len, &fc, &why, &err)) !=
	    IOTP_OK) {
		fail_kind(r, s->server_key ? "create" : "create-from-csr", &why, &err);
		goto out;
	}
	if (iotp_fleet_register(f, fc.token, params, np, &ft, &why, &err) != IOTP_OK) {
		fail_kind(r, "provision", &why, &err);
		goto out;
	}
	iotp_fleet_close(f);
	f = NULL;
	memcpy(r->cert_id, fc.cert_id, sizeof(r->cert_id));
	mid = util_mono_ms();
	r->prov_ms = (uint32_t)(mid - start);
	if (s->connect) {
		if (s->server_key &&
		    iotp_keystore_from_pem(fc.private_key_pem, strlen(fc.private_key_pem), &sk, &err) !=
		            IOTP_OK) {
			why.cause = IOTP_CAUSE_PROTOCOL;
			fail_kind(r, "key", &why, &err);
			goto out;
		}
		if (iotp_tls_ctx_new(s->ca, s->host, fc.cert_pem, strlen(fc.cert_pem),
		                     s->server_key ? sk : ks, &ctx, &err) != IOTP_OK) {
			why.cause = IOTP_CAUSE_LOCAL;
			fail_kind(r, "connect", &why, &err);
			goto out;
		}
		snprintf(cid, sizeof(cid), "%s", ft.thing_name[0] ? ft.thing_name : name);
		subst(s->topic_fmt, n, cid, topic, sizeof(topic));
		snprintf(payload, sizeof(payload), "{\"hello\":\"simulate\",\"device\":%ld}", n);
		memset(&mp, 0, sizeof(mp));
		mp.host = s->host;
		mp.port = s->port;
		mp.client_id = cid;
		mp.ssl_ctx = ctx;
		mp.timeout_ms = s->timeout_ms;
		mp.mqtt_version = s->mqtt_version;
		if (iotp_mqtt_check(t, &mp, topic, payload, strlen(payload), &why, &err) != IOTP_OK) {
			fail_kind(r, "connect", &why, &err);
			goto out;
		}
		r->conn_ms = (uint32_t)(util_mono_ms() - mid);
	}
	r->ok = 1;
	r->total_ms = (uint32_t)(util_mono_ms() - start);
out:
	iotp_fleet_close(f);
	iotp_fleet_cert_cleanup(&fc);
	iotp_fleet_thing_cleanup(&ft);
	SSL_CTX_free(ctx);
	iotp_keystore_free(ks);
	iotp_keystore_free(sk);
	free(csr);
}

static void *worker(void *arg)
{
	struct sim *s = arg;
	iotp_transport *t = NULL;
	struct iotp_err err;

	if (iotp_transport_mosquitto(&t, &err) != IOTP_OK)
		return NULL;
	for (;;) {
		long n = atomic_fetch_add(&s->next, 1);

		if (n >= s->devices || atomic_load(&s->stop))
			break;
		if (s->rate > 0) {
			int64_t due = s->t0 + (int64_t)((double)n * 1000.0 / s->rate);
			int64_t now = util_mono_ms();

			if (due > now)
				usleep((useconds_t)(due - now) * 1000);
		}
		run_device(s, t, n, &s->out[n]);
		if (s->out[n].ok)
			atomic_fetch_add(&s->passed, 1);
		atomic_fetch_add(&s->done, 1);
	}
	iotp_transport_free(t);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static uint32_t pct(const uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static void bar(const struct sim *s, int final)
{
	static long last_tenth = -1;
	long done = atomic_load(&s->done), passed = atomic_load(&s->passed);
	double secs = (double)(util_mono_ms() - s->t0) / 1000.0;
	int width = 30, fill = s->devices > 0 ? (int)(done * width / s->devices) : width, i;
	char b[64];

	/* Not a terminal (a log, CI): a line per tenth instead of redrawing. */
	if (!s->tty) {
		long tenth = s->devices > 0 ? done * 10 / s->devices : 10;

		if (tenth == last_tenth && !final)
			return;
		last_tenth = tenth;
	}
	for (i = 0; i < width; i++)
		b[i] = i < fill ? '#' : '.';
	b[width] = '\0';
	fprintf(stderr, "%s[%s] %ld/%ld  %ld ok  %ld failed  %.0f/s   %s", s->tty ? "\r" : "", b,
	        done, s->devices, passed, done - passed, secs > 0 ? (double)done / secs : 0.0,
	        s->tty && !final ? "" : "\n");
	fflush(stderr);
}

/* Failure kinds and their counts, most frequent first. */
struct kind_count {
	const char *kind, *msg;
	long count;
};

static int cmp_kind(const void *a, const void *b)
{
	const struct kind_count *x = a, *y = b;

	return x->count < y->count ? 1 : x->count > y->count ? -1 : strcmp(x->kind, y->kind);
}

static void summary(struct sim *s, double secs)
{
	size_t n = (size_t)atomic_load(&s->done), i, k, nk = 0, npass = 0, distinct = 0;
	uint32_t *tot = calloc(n + 1, sizeof(uint32_t)), *prov = calloc(n + 1, sizeof(uint32_t));
	uint32_t *conn = calloc(n + 1, sizeof(uint32_t));
	const char **ids = calloc(n + 1, sizeof(char *));
	struct kind_count kinds[MAX_KINDS];
	long failed = s->devices - atomic_load(&s->passed), other = 0;

	if (tot == NULL || prov == NULL || conn == NULL || ids == NULL) {
		fprintf(stderr, "iotprov-device simulate: out of memory\n");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct outcome *r = &s->out[i];

		if (r->ok) {
			tot[npass] = r->total_ms;
			prov[npass] = r->prov_ms;
			conn[npass] = r->conn_ms;
			ids[npass] = r->cert_id;
			npass++;
			continue;
		}
		for (k = 0; k < nk && strcmp(kinds[k].kind, r->kind) != 0; k++)
			;
		if (k == nk) {
			if (nk == MAX_KINDS) {
				other++;
				continue;
			}
			kinds[nk].kind = r->kind;
			kinds[nk].msg = r->msg;
			kinds[nk].count = 0;
			nk++;
		}
		kinds[k].count++;
	}
	qsort(tot, npass, sizeof(uint32_t), cmp_u32);
	qsort(prov, npass, sizeof(uint32_t), cmp_u32);
	qsort(conn, npass, sizeof(uint32_t), cmp_u32);
	qsort(ids, npass, sizeof(char *), cmp_str);
	for (i = 0; i < npass; i++)
		if (i == 0 || strcmp(ids[i], ids[i - 1]) != 0)
			distinct++;
	qsort(kinds, nk, sizeof(kinds[0]), cmp_kind);
	if (s->json) {
		printf("{\"devices\":%ld,\"passed\":%ld,\"failed\":%ld,\"seconds\":%.3f,"
		       "\"perSecond\":%.1f,\"distinctCertificates\":%zu,\"run\":\"%s\","
		       "\"latencyMs\":{\"p50\":%u,\"p90\":%u,\"p99\":%u,\"max\":%u},"
		       "\"provisionMs\":{\"p50\":%u,\"p99\":%u},\"connectMs\":{\"p50\":%u,\"p99\":%u},"
		       "\"failures\":{",
		       s->devices, atomic_load(&s->passed), failed, secs,
		       secs > 0 ? (double)n / secs : 0.0, distinct, s->run_id, pct(tot, npass, 50),
		       pct(tot, npass, 90), pct(tot, npass, 99), npass ? tot[npass - 1] : 0,
		       pct(prov, npass, 50), pct(prov, npass, 99), pct(conn, npass, 50),
		       pct(conn, npass, 99));
		for (k = 0; k < nk; k++) {
			printf("%s", k ? "," : "");
			cli_json_string(stdout, kinds[k].kind);
			printf(":%ld", kinds[k].count);
		}
		if ((long)n < s->devices)
			printf("%s\"not started\":%ld", nk ? "," : "", s->devices - (long)n);
		printf("}}\n");
		goto out;
	}
	printf("simulate: %ld devices by claim (%s%s) against %s:%d, template %s, run %s\n",
	       s->devices, s->fmt == IOTP_FP_CBOR ? "CBOR" : "JSON",
	       s->server_key ? ", server-made keys" : "", s->host, s->port, s->tmpl, s->run_id);
	printf("  %zu finished in %.2f s (%.1f devices/s), %ld at a time\n", n, secs,
	       secs > 0 ? (double)n / secs : 0.0, s->concurrency);
	if (npass > 0) {
		printf("  latency ms (provision + connect): p50 %u  p90 %u  p99 %u  max %u\n",
		       pct(tot, npass, 50), pct(tot, npass, 90), pct(tot, npass, 99), tot[npass - 1]);
		printf("    provision: p50 %u  p99 %u;  connect: p50 %u  p99 %u\n", pct(prov, npass, 50),
		       pct(prov, npass, 99), pct(conn, npass, 50), pct(conn, npass, 99));
		printf("  certificates: %zu distinct\n", distinct);
	}
	if (nk > 0 || other > 0 || (long)n < s->devices) {
		printf("  failures by cause:\n");
		for (k = 0; k < nk; k++)
			printf("    %6ld  %s  (e.g. %s)\n", kinds[k].count, kinds[k].kind, kinds[k].msg);
		if (other > 0)
			printf("    %6ld  other\n", other);
		if ((long)n < s->devices)
			printf("    %6ld  not started (interrupted)\n", s->devices - (long)n);
	}
	printf("%ld passed, %ld failed\n", atomic_load(&s->passed), failed);
out:
	free(tot);
	free(prov);
	free(conn);
	free(ids);
}

enum { S_DEVICES = 300, S_RATE, S_CONC, S_ENDPOINT, S_CA, S_CCERT, S_CKEY, S_TEMPLATE,
       S_METHOD, S_FORMAT, S_PARAM, S_PREFIX, S_SERVERKEY, S_NOCONNECT, S_TIMEOUT, S_MQTT,
       S_JSON, S_HELP, S_TOPIC, S_QUIET };

int cmd_simulate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "devices", required_argument, NULL, S_DEVICES },
		{ "rate", required_argument, NULL, S_RATE },
		{ "concurrency", required_argument, NULL, S_CONC },
		{ "endpoint", required_argument, NULL, S_ENDPOINT },
		{ "ca", required_argument, NULL, S_CA },
		{ "claim-cert", required_argument, NULL, S_CCERT },
		{ "claim-key", required_argument, NULL, S_CKEY },
		{ "template", required_argument, NULL, S_TEMPLATE },
		{ "method", required_argument, NULL, S_METHOD },
		{ "format", required_argument, NULL, S_FORMAT },
		{ "param", required_argument, NULL, S_PARAM },
		{ "prefix", required_argument, NULL, S_PREFIX },
		{ "server-key", no_argument, NULL, S_SERVERKEY },
		{ "no-connect", no_argument, NULL, S_NOCONNECT },
		{ "timeout", required_argument, NULL, S_TIMEOUT },
		{ "mqtt-version", required_argument, NULL, S_MQTT },
		{ "topic", required_argument, NULL, S_TOPIC },
		{ "json", no_argument, NULL, S_JSON },
		{ "quiet", no_argument, NULL, S_QUIET },
		{ "help", no_argument, NULL, S_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct sim s;
	struct iotp_err err = { IOTP_OK, "" };
	iotp_keystore *claim_key = NULL;
	char *claim_pem = NULL, *param_buf[MAX_PARAMS];
	size_t claim_len = 0, i;
	pthread_t *threads = NULL;
	long nthreads = 0, v;
	const char *endpoint = NULL;
	unsigned char rnd[4];
	struct sigaction sa, old;
	int c, rc = 1;
	double secs;

	memset(&s, 0, sizeof(s));
	memset(param_buf, 0, sizeof(param_buf));
	s.concurrency = 16;
	s.prefix = "sim";
	s.topic_fmt = "things/{name}/hello";
	s.connect = 1;
	s.timeout_ms = 10000;
	s.mqtt_version = 5;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hq", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
		case S_HELP: help(); rc = 0; goto out;
		case S_DEVICES:
			if (cli_int("simulate", "--devices", optarg, 1, 10000000, &s.devices) != 0)
				goto usage;
			break;
		case S_RATE:
			if (cli_int("simulate", "--rate", optarg, 0, 1000000, &v) != 0)
				goto usage;
			s.rate = (double)v;
			break;
		case S_CONC:
			if (cli_int("simulate", "--concurrency", optarg, 1, 1024, &s.concurrency) != 0)
				goto usage;
			break;
		case S_ENDPOINT: endpoint = optarg; break;
		case S_CA: s.ca = optarg; break;
		case S_CCERT: s.claim_cert = optarg; break;
		case S_CKEY: s.claim_key = optarg; break;
		case S_TEMPLATE: s.tmpl = optarg; break;
		case S_METHOD:
			if (strcmp(optarg, "claim") != 0 && strcmp(optarg, "trusted-user") != 0) {
				rc = cli_usage("simulate", "--method is claim (or trusted-user, the same "
				                           "on the wire); not '%s'", optarg);
				goto out;
			}
			break;
		case S_FORMAT:
			if (strcmp(optarg, "json") != 0 && strcmp(optarg, "cbor") != 0) {
				rc = cli_usage("simulate", "--format is json or cbor");
				goto out;
			}
			s.fmt = strcmp(optarg, "cbor") == 0 ? IOTP_FP_CBOR : IOTP_FP_JSON;
			break;
		case S_PARAM: {
			char *eq = strchr(optarg, '=');

			if (eq == NULL || eq == optarg || s.nparams == MAX_PARAMS) {
				rc = cli_usage("simulate", "--param takes NAME=VALUE (at most %d)",
				               MAX_PARAMS);
				goto out;
			}
			param_buf[s.nparams] = strdup(optarg);
			if (param_buf[s.nparams] == NULL)
				goto out;
			param_buf[s.nparams][eq - optarg] = '\0';
			s.params[s.nparams].name = param_buf[s.nparams];
			s.params[s.nparams].value = param_buf[s.nparams] + (eq - optarg) + 1;
			s.nparams++;
			break;
		}
		case S_PREFIX: s.prefix = optarg; break;
		case S_SERVERKEY: s.server_key = 1; break;
		case S_NOCONNECT: s.connect = 0; break;
		case S_TIMEOUT:
			if (cli_int("simulate", "--timeout", optarg, 1, 3600, &v) != 0)
				goto usage;
			s.timeout_ms = (int)v * 1000;
			break;
		case S_MQTT:
			if (cli_int("simulate", "--mqtt-version", optarg, 4, 5, &v) != 0)
				goto usage;
			s.mqtt_version = (int)v;
			break;
		case S_TOPIC: s.topic_fmt = optarg; break;
		case S_JSON: s.json = 1; break;
		case 'q':
		case S_QUIET: s.quiet = 1; break;
		case ':':
			rc = cli_usage("simulate", "option %s needs a value", argv[optind - 1]);
			goto out;
		default:
			rc = cli_usage("simulate", "unknown option '%s'", argv[optind - 1]);
			goto out;
		}
	}
	if (optind < argc) {
		rc = cli_usage("simulate", "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (s.devices == 0 || endpoint == NULL || s.ca == NULL || s.claim_cert == NULL ||
	    s.claim_key == NULL || s.tmpl == NULL) {
		rc = cli_usage("simulate", "--devices, --endpoint, --ca, --claim-cert, --claim-key "
		                           "and --template are required");
		goto out;
	}
	if (iotp_endpoint_parse(endpoint, s.host, sizeof(s.host), &s.port, &err) != IOTP_OK) {
		rc = cli_usage("simulate", "%s", err.msg);
		goto out;
	}
	if (util_read_file(s.claim_cert, 65536, &claim_pem, &claim_len, &err) != IOTP_OK ||
	    iotp_keystore_open(s.claim_key, &claim_key, &err) != IOTP_OK ||
	    iotp_tls_ctx_new(s.ca, s.host, claim_pem, claim_len, claim_key, &s.claim_ctx, &err) !=
	            IOTP_OK) {
		rc = cli_fail("simulate", s.json, &err, NULL);
		goto out;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		fprintf(stderr, "iotprov-device simulate: no randomness\n");
		goto out;
	}
	util_hex(rnd, sizeof(rnd), s.run_id);
	s.out = calloc((size_t)s.devices, sizeof(*s.out));
	nthreads = s.concurrency < s.devices ? s.concurrency : s.devices;
	threads = calloc((size_t)nthreads, sizeof(*threads));
	if (s.out == NULL || threads == NULL) {
		fprintf(stderr, "iotprov-device simulate: out of memory\n");
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, &old);
	s.tty = isatty(STDERR_FILENO);
	s.t0 = util_mono_ms();
	for (i = 0; i < (size_t)nthreads; i++)
		if (pthread_create(&threads[i], NULL, worker, &s) != 0) {
			nthreads = (long)i;
			atomic_store(&s.stop, 1);
			fprintf(stderr, "iotprov-device simulate: cannot start threads\n");
			break;
		}
	/* Workers finish the device in hand after an interrupt, then stop. */
	while (atomic_load(&s.done) < s.devices && nthreads > 0 && !atomic_load(&s.stop)) {
		if (interrupted)
			atomic_store(&s.stop, 1);
		if (!s.quiet)
			bar(&s, 0);
		usleep(200000);
	}
	for (i = 0; i < (size_t)nthreads; i++)
		pthread_join(threads[i], NULL);
	secs = (double)(util_mono_ms() - s.t0) / 1000.0;
	if (!s.quiet)
		bar(&s, 1);
	sigaction(SIGINT, &old, NULL);
	summary(&s, secs);
	rc = atomic_load(&s.passed) == s.devices ? 0 : 1;
	goto out;
usage:
	rc = EXIT_USAGE;
out:
	for (i = 0; i < MAX_PARAMS; i++)
		free(param_buf[i]);
	free(threads);
	free(s.out);
	SSL_CTX_free(s.claim_ctx);
	iotp_keystore_free(claim_key);
	free(claim_pem);
	return rc;
}
