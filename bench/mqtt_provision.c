/*
 * bench_mqtt_provision: devices fully provisioned per second through the
 * broker, with N simulated devices in parallel, and the request-to-reply
 * time of the fleet-provisioning requests.
 *
 * Up front (not timed): a data dir (P-256 root and issuing CA, server
 * certificate for 127.0.0.1), a fleet template "bench" whose devices get
 * a thing meter-<serial> and the policy "devices", a claim certificate with
 * the claim policy, one key + CSR per device, and a real /usr/sbin/mosquitto
 * with iotprov_mosquitto.so on a free 127.0.0.1 port (the broker config is
 * the one `iotprov up` writes: broker_conf_write).
 *
 * Timed, per device, as firmware does it: TLS handshake with the claim
 * certificate, subscribe to the reply topics, create-from-csr (JSON),
 * provision with the ownership token, disconnect, reconnect with the new
 * certificate and publish one QoS 1 message on its own topic (PUBACK
 * awaited). Clients use libmosquitto with a prebuilt SSL_CTX
 * (MOSQ_OPT_SSL_CTX), so the client side costs little (PERF-NOTES).
 *
 * The bound, measured in the same run with the same parallelism: mutual-TLS
 * connect + disconnect with the claim certificate and nothing else. A
 * provisioned device needs two such connections, so "bound" is half that
 * rate; the ratio says what provisioning adds to the handshakes.
 *
 * Usage: bench_mqtt_provision [--devices D] [--parallel N] [--plugin PATH]
 *                             [--bound-seconds S] [--workers W]
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <jansson.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "common/util.h"
#include "core/broker_conf.h"
#include "core/core.h"
#include "core/provision.h"
#include "core/registry.h"

#define REPLY_TIMEOUT_MS 10000

static const char template_body[] =
	"{\"Parameters\":{\"SerialNumber\":{\"Type\":\"String\"},"
	"\"AWS::IoT::Certificate::Id\":{\"Type\":\"String\"}},"
	"\"Resources\":{\"thing\":{\"Type\":\"AWS::IoT::Thing\",\"Properties\":{\"ThingName\":"
	"{\"Fn::Join\":[\"\",[\"meter-\",{\"Ref\":\"SerialNumber\"}]]}}},"
	"\"certificate\":{\"Type\":\"AWS::IoT::Certificate\",\"Properties\":{\"CertificateId\":"
	"{\"Ref\":\"AWS::IoT::Certificate::Id\"},\"Status\":\"ACTIVE\"}},"
	"\"policy\":{\"Type\":\"AWS::IoT::Policy\",\"Properties\":{\"PolicyName\":\"devices\"}}},"
	"\"DeviceConfiguration\":{\"interval\":\"60\"}}";

static const char device_policy[] =
	"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"iot:Connect\","
	"\"Resource\":\"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}\"},{\"Effect\":"
	"\"Allow\",\"Action\":\"iot:Publish\",\"Resource\":\"arn:aws:iot:*:*:topic/d/"
	"${iot:Connection.Thing.ThingName}/*\"}]}";

static const char claim_policy[] =
	"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"iot:Connect\","
	"\"Resource\":\"arn:aws:iot:*:*:client/*\"},{\"Effect\":\"Allow\",\"Action\":[\"iot:Publish\","
	"\"iot:Receive\"],\"Resource\":[\"arn:aws:iot:*:*:topic/$aws/certificates/create-from-csr/*\","
	"\"arn:aws:iot:*:*:topic/$aws/provisioning-templates/bench/provision/*\"]},{\"Effect\":"
	"\"Allow\",\"Action\":\"iot:Subscribe\",\"Resource\":[\"arn:aws:iot:*:*:topicfilter/$aws/"
	"certificates/create-from-csr/*\",\"arn:aws:iot:*:*:topicfilter/$aws/provisioning-templates/"
	"bench/provision/*\"]}]}";

struct device {
	char *csr;        /* PEM */
	char *key_pem;    /* PEM */
	char *cert_pem;   /* from the accepted reply */
	char thing[64];
	int ok;
};

struct bench {
	char dir[PATH_MAX];
	char ca_file[PATH_MAX + 32];
	int port;
	SSL_CTX *claim_ctx;
	struct device *devs;
	int ndev;
	int next;                 /* next device to run */
	pthread_mutex_t lock;
	uint64_t *lat_csr, *lat_prov; /* request-to-reply, ns */
	int nlat_csr, nlat_prov;
	volatile int stop_bound;
	long bound_conns;
};

/* One synchronous MQTT session on top of libmosquitto's loop. */
struct sess {
	struct mosquitto *m;
	int connected, refused, subacked, pubacked, puback_rc, got;
	char topic[256];
	char *payload;
};

static void die(const char *what, const struct iotp_err *err)
{
	fprintf(stderr, "bench_mqtt_provision: %s: %s\n", what, err != NULL ? err->msg : "failed");
	exit(1);
}

static void on_connect(struct mosquitto *m, void *ud, int rc, int f, const mosquitto_property *p)
{
	struct sess *s = ud;

	(void)m, (void)f, (void)p;
	if (rc == 0)
		s->connected = 1;
	else
		s->refused = 1;
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *g,
                         const mosquitto_property *p)
{
	(void)m, (void)mid, (void)n, (void)g, (void)p;
	((struct sess *)ud)->subacked = 1;
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int rc,
                       const mosquitto_property *p)
{
	struct sess *s = ud;

	(void)m, (void)mid, (void)p;
	s->pubacked = 1;
	s->puback_rc = rc;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *p)
{
	struct sess *s = ud;

	(void)m, (void)p;
	util_strlcpy(s->topic, msg->topic, sizeof(s->topic));
	free(s->payload);
	s->payload = malloc((size_t)msg->payloadlen + 1);
	if (s->payload != NULL) {
		memcpy(s->payload, msg->payload, (size_t)msg->payloadlen);
		s->payload[msg->payloadlen] = '\0';
	}
	s->got = 1;
}

static int wait_for(struct sess *s, const int *flag, int64_t ms)
{
	int64_t end = util_mono_ms() + ms;

	while (!*flag) {
		if (s->refused || util_mono_ms() > end ||
		    mosquitto_loop(s->m, 20, 1) != MOSQ_ERR_SUCCESS)
			return 0;
	}
	return 1;
}

static int sess_open(struct sess *s, SSL_CTX *ctx, const char *id, int port)
{
	memset(s, 0, sizeof(*s));
	s->m = mosquitto_new(id, true, s);
	if (s->m == NULL)
		return 0;
	mosquitto_int_option(s->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	/* our context as it is: libmosquitto adds nothing (and rebuilds nothing) */
	mosquitto_int_option(s->m, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
	mosquitto_void_option(s->m, MOSQ_OPT_SSL_CTX, ctx);
	mosquitto_connect_v5_callback_set(s->m, on_connect);
	mosquitto_subscribe_v5_callback_set(s->m, on_subscribe);
	mosquitto_publish_v5_callback_set(s->m, on_publish);
	mosquitto_message_v5_callback_set(s->m, on_message);
	{
		int rc = mosquitto_connect(s->m, "127.0.0.1", port, 60);

		if (rc != MOSQ_ERR_SUCCESS) {
			fprintf(stderr, "connect: %s\n", mosquitto_strerror(rc));
			return 0;
		}
	}
	return wait_for(s, &s->connected, REPLY_TIMEOUT_MS);
}

static void sess_close(struct sess *s)
{
	if (s->m != NULL) {
		if (s->connected && !s->refused) {
			mosquitto_disconnect(s->m);
			mosquitto_loop(s->m, 10, 1);
		}
		mosquitto_destroy(s->m);
	}
	free(s->payload);
	memset(s, 0, sizeof(*s));
}

/* Publishes and waits for the reply; its JSON (new reference) or NULL. */
static json_t *request(struct sess *s, const char *topic, const char *body, uint64_t *lat)
{
	uint64_t t0 = util_mono_ns();
	json_t *j;

	s->got = 0;
	if (mosquitto_publish(s->m, NULL, topic, (int)strlen(body), body, 1, false) !=
	        MOSQ_ERR_SUCCESS ||
	    !wait_for(s, &s->got, REPLY_TIMEOUT_MS))
		return NULL;
	*lat = util_mono_ns() - t0;
	if (strstr(s->topic, "/accepted") == NULL) {
		fprintf(stderr, "rejected on %s: %s\n", s->topic, s->payload);
		return NULL;
	}
	j = json_loads(s->payload, 0, NULL);
	return j;
}

static SSL_CTX *ctx_new(const char *ca_file, const char *cert_pem, const char *key_pem)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	BIO *b;
	X509 *x;
	EVP_PKEY *k;
	int ok;

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	b = BIO_new_mem_buf(cert_pem, -1);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	b = BIO_new_mem_buf(key_pem, -1);
	k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	ok = SSL_CTX_load_verify_locations(ctx, ca_file, NULL) == 1 && x != NULL && k != NULL &&
	     SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, k) == 1;
	X509_free(x);
	EVP_PKEY_free(k);
	if (!ok) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static void record(struct bench *b, uint64_t *arr, int *n, uint64_t v)
{
	pthread_mutex_lock(&b->lock);
	arr[(*n)++] = v;
	pthread_mutex_unlock(&b->lock);
}

static void run_device(struct bench *b, int i)
{
	struct device *d = &b->devs[i];
	char id[32], body[8192], topic[160];
	struct sess s;
	json_t *r = NULL;
	const char *subs[] = {"$aws/certificates/create-from-csr/json/accepted",
	                      "$aws/certificates/create-from-csr/json/rejected",
	                      "$aws/provisioning-templates/bench/provision/json/accepted",
	                      "$aws/provisioning-templates/bench/provision/json/rejected"};
	uint64_t lat;
	SSL_CTX *ctx = NULL;

	snprintf(id, sizeof(id), "claim-%d", i);
	if (!sess_open(&s, b->claim_ctx, id, b->port))
		goto out;
	mosquitto_subscribe_multiple(s.m, NULL, 4, (char *const *)subs, 1, 0, NULL);
	if (!wait_for(&s, &s.subacked, REPLY_TIMEOUT_MS))
		goto out;
	{
		json_t *req = json_pack("{s:s}", "certificateSigningRequest", d->csr);
		char *t = json_dumps(req, JSON_COMPACT);

		util_strlcpy(body, t, sizeof(body));
		free(t);
		json_decref(req);
	}
	if ((r = request(&s, "$aws/certificates/create-from-csr/json", body, &lat)) == NULL)
		goto out;
	record(b, b->lat_csr, &b->nlat_csr, lat);
	d->cert_pem = strdup(json_string_value(json_object_get(r, "certificatePem")));
	snprintf(body, sizeof(body),
	         "{\"certificateOwnershipToken\":\"%s\",\"parameters\":{\"SerialNumber\":\"%06d\"}}",
	         json_string_value(json_object_get(r, "certificateOwnershipToken")), i);
	json_decref(r);
	if ((r = request(&s, "$aws/provisioning-templates/bench/provision/json", body, &lat)) ==
	    NULL)
		goto out;
	record(b, b->lat_prov, &b->nlat_prov, lat);
	util_strlcpy(d->thing, json_string_value(json_object_get(r, "thingName")),
	             sizeof(d->thing));
	sess_close(&s);
	if ((ctx = ctx_new(b->ca_file, d->cert_pem, d->key_pem)) == NULL ||
	    !sess_open(&s, ctx, d->thing, b->port))
		goto out;
	snprintf(topic, sizeof(topic), "d/%s/hello", d->thing);
	if (mosquitto_publish(s.m, NULL, topic, 2, "hi", 1, false) != MOSQ_ERR_SUCCESS ||
	    !wait_for(&s, &s.pubacked, REPLY_TIMEOUT_MS) || s.puback_rc >= 128)
		goto out;
	d->ok = 1;
out:
	json_decref(r);
	sess_close(&s);
	SSL_CTX_free(ctx);
}

static void *provision_thread(void *arg)
{
	struct bench *b = arg;

	for (;;) {
		int i;

		pthread_mutex_lock(&b->lock);
		i = b->next < b->ndev ? b->next++ : -1;
		pthread_mutex_unlock(&b->lock);
		if (i < 0)
			return NULL;
		run_device(b, i);
	}
}

static void *bound_thread(void *arg)
{
	struct bench *b = arg;
	long n = 0;
	char id[32];

	snprintf(id, sizeof(id), "bound-%p", (void *)&n);
	while (!b->stop_bound) {
		struct sess s;

		if (sess_open(&s, b->claim_ctx, id, b->port))
			n++;
		sess_close(&s);
	}
	pthread_mutex_lock(&b->lock);
	b->bound_conns += n;
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

/* ---- set-up ---- */

static void write_text(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX + 64];
	struct iotp_err err;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (util_write_file(path, text, strlen(text), mode, &err) != IOTP_OK)
		die(path, &err);
}

static void write_cert(const char *dir, const char *name, X509 *x, int append_issuing,
                       X509 *issuing)
{
	char *a = NULL, *c = NULL;
	struct iotp_err err;
	struct buf bb;

	buf_init(&bb, 0);
	if (pki_cert_to_pem(x, &a, &err) != IOTP_OK ||
	    (append_issuing && pki_cert_to_pem(issuing, &c, &err) != IOTP_OK))
		die(name, &err);
	buf_puts(&bb, a);
	if (c != NULL)
		buf_puts(&bb, c);
	write_text(dir, name, bb.data, 0644);
	buf_cleanup(&bb);
	free(a);
	free(c);
}

static void make_data_dir(struct bench *b)
{
	EVP_PKEY *rk = NULL, *ik = NULL, *sk = NULL;
	X509 *root = NULL, *issuing = NULL, *server = NULL;
	struct pki_ca rca, ica;
	struct iotp_err err;
	char path[PATH_MAX + 64];

	if (pki_key_generate(PKI_KEY_EC_P256, &rk, &err) != IOTP_OK ||
	    pki_key_generate(PKI_KEY_EC_P256, &ik, &err) != IOTP_OK ||
	    pki_key_generate(PKI_KEY_EC_P256, &sk, &err) != IOTP_OK ||
	    pki_ca_create_root(rk, "bench root", 30, &root, &err) != IOTP_OK)
		die("root CA", &err);
	rca = (struct pki_ca){root, rk};
	if (pki_ca_create_issuing(&rca, ik, "bench issuing", 30, &issuing, &err) != IOTP_OK)
		die("issuing CA", &err);
	ica = (struct pki_ca){issuing, ik};
	if (pki_server_cert_create(&ica, sk, "localhost,127.0.0.1", 30, &server, &err) != IOTP_OK)
		die("server certificate", &err);
	write_cert(b->dir, "root-ca.crt", root, 0, NULL);
	write_cert(b->dir, "ca-bundle.pem", root, 0, NULL);
	write_cert(b->dir, "issuing-ca.crt", issuing, 0, NULL);
	write_cert(b->dir, "server.crt", server, 1, issuing);
	snprintf(path, sizeof(path), "%s/root-ca.key", b->dir);
	if (pki_key_write_file(rk, path, &err) != IOTP_OK)
		die(path, &err);
	snprintf(path, sizeof(path), "%s/issuing-ca.key", b->dir);
	if (pki_key_write_file(ik, path, &err) != IOTP_OK)
		die(path, &err);
	snprintf(path, sizeof(path), "%s/server.key", b->dir);
	if (pki_key_write_file(sk, path, &err) != IOTP_OK)
		die(path, &err);
	write_text(b->dir, "iotprov.conf", "[service]\nlog_level = warn\n", 0644);
	X509_free(root);
	X509_free(issuing);
	X509_free(server);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ik);
	EVP_PKEY_free(sk);
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int port_open(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_ms(uint64_t *v, int n, double p)
{
	if (n == 0)
		return 0;
	return (double)v[(int)(p * (n - 1) + 0.5)] / 1e6;
}

static char *csr_new(EVP_PKEY **key)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	BIO *bio = BIO_new(BIO_s_mem());
	char *out = NULL, *p;
	long n;

	*key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", (char *)"P-256");
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"meter", -1, -1,
	                           0);
	X509_REQ_set_subject_name(req, name);
	X509_REQ_set_pubkey(req, *key);
	if (X509_REQ_sign(req, *key, EVP_sha256()) > 0 && PEM_write_bio_X509_REQ(bio, req) == 1 &&
	    (n = BIO_get_mem_data(bio, &p)) > 0 && (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, p, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(bio);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return out;
}

int main(int argc, char **argv)
{
	struct bench b = {0};
	int parallel = 8, workers = 2, bound_seconds = 3, ok = 0;
	char plugin[PATH_MAX] = "", conf_path[PATH_MAX + 32], mconf[PATH_MAX + 32];
	char capath[PATH_MAX + 32], user[64] = "";
	struct iotp_conf conf;
	struct iotp_core core;
	struct iotp_err err;
	pthread_t *th;
	pid_t broker;
	uint64_t t0, t1;

	b.ndev = 200;
	for (int i = 1; i < argc; i += 2) {
		int64_t v = 0;

		if (i + 1 >= argc)
			goto usage;
		if (strcmp(argv[i], "--plugin") == 0) {
			util_strlcpy(plugin, argv[i + 1], sizeof(plugin));
			continue;
		}
		if (util_parse_int64(argv[i + 1], 1, 1000000, &v) != IOTP_OK)
			goto usage;
		if (strcmp(argv[i], "--devices") == 0)
			b.ndev = (int)v;
		else if (strcmp(argv[i], "--parallel") == 0)
			parallel = (int)v;
		else if (strcmp(argv[i], "--workers") == 0)
			workers = (int)v;
		else if (strcmp(argv[i], "--bound-seconds") == 0)
			bound_seconds = (int)v;
		else
			goto usage;
	}
	if (plugin[0] == '\0') {
		char exe[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

		if (n <= 0)
			goto usage;
		exe[n] = '\0';
		snprintf(plugin, sizeof(plugin), "%s/iotprov_mosquitto.so", dirname(exe));
	}
	if (access(plugin, R_OK) != 0) {
		fprintf(stderr, "bench_mqtt_provision: no plugin at %s (--plugin)\n", plugin);
		return 1;
	}
	snprintf(b.dir, sizeof(b.dir), "/tmp/bench-mqtt-provision-XXXXXX");
	if (mkdtemp(b.dir) == NULL)
		return 1;
	make_data_dir(&b);
	snprintf(conf_path, sizeof(conf_path), "%s/iotprov.conf", b.dir);
	snprintf(b.ca_file, sizeof(b.ca_file), "%s/ca-bundle.pem", b.dir);
	conf_init(&conf, b.dir);
	if (conf_load(&conf, conf_path, &err) != IOTP_OK || core_open(&core, &conf, &err) != IOTP_OK)
		die("core", &err);
	{
		struct registry_policy pol = {0};
		struct prov_template t = {0};
		struct registry_ref ref;
		struct registry_cert_created claim = {0};
		char principal[80];

		if (registry_policy_create(&core, "key:bench", "devices", device_policy, &pol, &err) !=
		    IOTP_OK)
			die("device policy", &err);
		registry_policy_cleanup(&pol);
		if (registry_policy_create(&core, "key:bench", "claim", claim_policy, &pol, &err) !=
		    IOTP_OK)
			die("claim policy", &err);
		registry_policy_cleanup(&pol);
		util_strlcpy(t.name, "bench", sizeof(t.name));
		util_strlcpy(t.type, "FLEET_PROVISIONING", sizeof(t.type));
		t.enabled = 1;
		t.body = (char *)template_body;
		t.description = (char *)"";
		t.role_arn = (char *)"arn:aws:iam::123456789012:role/provisioning";
		if (prov_template_create(&core, "key:bench", &t, &ref, &err) != IOTP_OK)
			die("template", &err);
		if (registry_cert_create_with_keys(&core, "key:bench", REGISTRY_CERT_ACTIVE, &claim,
		                                   &err) != IOTP_OK)
			die("claim", &err);
		snprintf(principal, sizeof(principal), "cert/%s", claim.id);
		if (registry_policy_attach(&core, "key:bench", "claim", principal, &err) != IOTP_OK)
			die("claim policy attach", &err);
		if ((b.claim_ctx = ctx_new(b.ca_file, claim.pem, claim.private_key_pem)) == NULL)
			die("claim TLS context", NULL);
		registry_cert_created_cleanup(&claim);
	}
	if ((b.devs = calloc((size_t)b.ndev, sizeof(*b.devs))) == NULL ||
	    (b.lat_csr = calloc((size_t)b.ndev, sizeof(uint64_t))) == NULL ||
	    (b.lat_prov = calloc((size_t)b.ndev, sizeof(uint64_t))) == NULL)
		return 1;
	for (int i = 0; i < b.ndev; i++) {
		EVP_PKEY *k = NULL;

		b.devs[i].csr = csr_new(&k);
		if (b.devs[i].csr == NULL || pki_key_to_pem(k, &b.devs[i].key_pem, &err) != IOTP_OK)
			die("device key", &err);
		EVP_PKEY_free(k);
	}
	b.port = free_port();
	snprintf(mconf, sizeof(mconf), "%s/mosquitto.conf", b.dir);
	snprintf(capath, sizeof(capath), "%s/capath", b.dir);
	{
		struct broker_conf_opts o = {0};
		char listen[64];

		snprintf(listen, sizeof(listen), "127.0.0.1:%d", b.port);
		if (geteuid() == 0)
			util_strlcpy(user, "root", sizeof(user));
		o.plugin_path = plugin;
		o.conf_path = conf_path;
		o.capath = capath;
		o.listen = listen;
		o.user = user;
		o.workers = workers;
		if (util_mkdir(capath, 0755, &err) != IOTP_OK ||
		    broker_conf_write(&conf, &o, mconf, &err) != IOTP_OK)
			die("mosquitto.conf", &err);
	}
	core_close(&core);
	if ((broker = fork()) == 0) {
		char logp[PATH_MAX + 32];
		FILE *f;

		snprintf(logp, sizeof(logp), "%s/mosquitto.log", b.dir);
		f = freopen(logp, "w", stderr);
		(void)f;
		execl("/usr/sbin/mosquitto", "mosquitto", "-c", mconf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300 && !port_open(b.port); i++)
		usleep(100000);
	if (!port_open(b.port)) {
		fprintf(stderr, "bench_mqtt_provision: mosquitto did not start (see %s)\n", b.dir);
		kill(broker, SIGTERM);
		return 1;
	}
	mosquitto_lib_init();
	pthread_mutex_init(&b.lock, NULL);
	th = calloc((size_t)parallel, sizeof(*th));

	/* the bound: bare mutual-TLS connects */
	t0 = util_mono_ns();
	for (int i = 0; i < parallel; i++)
		pthread_create(&th[i], NULL, bound_thread, &b);
	sleep((unsigned)bound_seconds);
	b.stop_bound = 1;
	for (int i = 0; i < parallel; i++)
		pthread_join(th[i], NULL);
	t1 = util_mono_ns();
	{
		double conns = (double)b.bound_conns / ((double)(t1 - t0) / 1e9);

		t0 = util_mono_ns();
		for (int i = 0; i < parallel; i++)
			pthread_create(&th[i], NULL, provision_thread, &b);
		for (int i = 0; i < parallel; i++)
			pthread_join(th[i], NULL);
		t1 = util_mono_ns();
		for (int i = 0; i < b.ndev; i++)
			ok += b.devs[i].ok;
		qsort(b.lat_csr, (size_t)b.nlat_csr, sizeof(uint64_t), cmp_u64);
		qsort(b.lat_prov, (size_t)b.nlat_prov, sizeof(uint64_t), cmp_u64);
		{
			double rate = ok / ((double)(t1 - t0) / 1e9);

			printf("mqtt_provision: %d devices, %d in parallel, %d plugin workers\n", b.ndev,
			       parallel, workers);
			printf("  provisioned and reconnected: %d ok, %d failed, %.1f devices/s\n", ok,
			       b.ndev - ok, rate);
			printf("  create-from-csr request->reply: p50 %.2f ms  p99 %.2f ms\n",
			       pct_ms(b.lat_csr, b.nlat_csr, 0.5), pct_ms(b.lat_csr, b.nlat_csr, 0.99));
			printf("  provision request->reply:       p50 %.2f ms  p99 %.2f ms\n",
			       pct_ms(b.lat_prov, b.nlat_prov, 0.5), pct_ms(b.lat_prov, b.nlat_prov, 0.99));
			printf("  bound: bare mTLS connects %.1f/s -> %.1f devices/s (2 connects each); "
			       "ratio %.2f\n",
			       conns, conns / 2, conns > 0 ? rate / (conns / 2) : 0);
			printf("RESULT name=mqtt_provision value=%.1f unit=devices/s bound=%.1f "
			       "bound_name=\"bare mTLS connects / 2, same parallelism\" ratio=%.3f\n", rate,
			       conns / 2, conns > 0 ? rate / (conns / 2) : 0);
		}
	}
	kill(broker, SIGTERM);
	waitpid(broker, NULL, 0);
	for (int i = 0; i < b.ndev; i++) {
		free(b.devs[i].csr);
		if (b.devs[i].key_pem != NULL)
			OPENSSL_clear_free(b.devs[i].key_pem, strlen(b.devs[i].key_pem));
		free(b.devs[i].cert_pem);
	}
	free(b.devs);
	free(b.lat_csr);
	free(b.lat_prov);
	free(th);
	SSL_CTX_free(b.claim_ctx);
	mosquitto_lib_cleanup();
	return ok == b.ndev ? 0 : 1;
usage:
	fprintf(stderr, "usage: bench_mqtt_provision [--devices D] [--parallel N] [--plugin PATH] "
	                "[--bound-seconds S] [--workers W]\n");
	return 2;
}
