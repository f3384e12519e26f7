/*
 * bench_connect_auth: the broker plugin's connect authorization latency
 * with a large registry, next to the raw store lookup that bounds it.
 *
 * Up front (not timed): a data dir with a P-256 root and issuing CA and a
 * SQLite store holding --certs certificates (default 1,000,000). --real of
 * them (default 1,000) are issued by the issuing CA and each attached to its
 * own thing and to a policy with ${iot:Connection.Thing.ThingName}
 * variables; the rest are filler rows with the same shape in the table.
 *
 * Timed, per connect of a random real device: the plugin's own
 * MOSQ_EVT_BASIC_AUTH callback (src/plugin compiled in, with the broker's
 * mosquitto_* functions stubbed to hand it the device's certificate and
 * client id): certificate id (SHA-256 of the DER), certificate row, CA
 * check, thing and attributes, the policies in force (one recursive query),
 * compiling them, and iot:Connect. The bound: the single indexed
 * `SELECT ... FROM certificates WHERE id = ?` of the same certificate on
 * the same store. Prints p50/p99 of both and their ratio.
 *
 * Usage: bench_connect_auth [--certs N] [--real R] [--samples S] [--dir D]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

/* The plugin itself (a module, not a library). */
#include "plugin/acl.c"
#include "plugin/auth.c"
#include "plugin/conn.c"
#include "plugin/feed.c"
#include "plugin/fleet.c"
#include "plugin/fleet_payload.c"
#include "plugin/plugin.c"
#include "plugin/work.c"

/* ---- the broker, stubbed: one fake client at a time ---- */

struct mosquitto {
	X509 *cert;
	const char *id;
};

void *mosquitto_client_certificate(const struct mosquitto *client)
{
	X509_up_ref(client->cert);
	return client->cert;
}

const char *mosquitto_client_id(const struct mosquitto *client)
{
	return client->id;
}

void mosquitto_log_printf(int level, const char *fmt, ...)
{
	(void)level;
	(void)fmt;
}

int mosquitto_kick_client_by_clientid(const char *clientid, bool with_will)
{
	(void)clientid;
	(void)with_will;
	return 0;
}

int mosquitto_broker_publish_copy(const char *clientid, const char *topic, int payloadlen,
                                  const void *payload, int qos, bool retain,
                                  mosquitto_property *properties)
{
	(void)clientid, (void)topic, (void)payloadlen, (void)payload, (void)qos, (void)retain;
	(void)properties;
	return 0;
}

int mosquitto_callback_register(mosquitto_plugin_id_t *identifier, int event,
                                MOSQ_FUNC_generic_callback cb_func, const void *event_data,
                                void *userdata)
{
	(void)identifier, (void)event, (void)cb_func, (void)event_data, (void)userdata;
	return 0;
}

int mosquitto_callback_unregister(mosquitto_plugin_id_t *identifier, int event,
                                  MOSQ_FUNC_generic_callback cb_func, const void *event_data)
{
	(void)identifier, (void)event, (void)cb_func, (void)event_data;
	return 0;
}

/* ---- set-up ---- */

static void die(const char *what, const struct iotp_err *err)
{
	fprintf(stderr, "bench_connect_auth: %s: %s\n", what, err != NULL ? err->msg : "failed");
	exit(1);
}

static void write_pem(const char *dir, const char *name, X509 *x)
{
	char path[4096], *pem = NULL;
	struct iotp_err err;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (pki_cert_to_pem(x, &pem, &err) != IOTP_OK ||
	    util_write_file(path, pem, strlen(pem), 0644, &err) != IOTP_OK)
		die(path, &err);
	free(pem);
}

static void make_data_dir(const char *dir)
{
	EVP_PKEY *rk = NULL, *ik = NULL;
	X509 *root = NULL, *issuing = NULL;
	struct pki_ca rca;
	struct iotp_err err;
	char path[4096];

	if (util_mkdir(dir, 0700, &err) != IOTP_OK ||
	    pki_key_generate(PKI_KEY_EC_P256, &rk, &err) != IOTP_OK ||
	    pki_key_generate(PKI_KEY_EC_P256, &ik, &err) != IOTP_OK ||
	    pki_ca_create_root(rk, "bench root", 30, &root, &err) != IOTP_OK)
		die("root CA", &err);
	rca.cert = root;
	rca.key = rk;
	if (pki_ca_create_issuing(&rca, ik, "bench issuing", 30, &issuing, &err) != IOTP_OK)
		die("issuing CA", &err);
	write_pem(dir, "root-ca.crt", root);
	write_pem(dir, "issuing-ca.crt", issuing);
	snprintf(path, sizeof(path), "%s/root-ca.key", dir);
	if (pki_key_write_file(rk, path, &err) != IOTP_OK)
		die(path, &err);
	snprintf(path, sizeof(path), "%s/issuing-ca.key", dir);
	if (pki_key_write_file(ik, path, &err) != IOTP_OK)
		die(path, &err);
	snprintf(path, sizeof(path), "%s/iotprov.conf", dir);
	if (util_write_file(path, "[service]\nlog_level = error\n", 28, 0644, &err) != IOTP_OK)
		die(path, &err);
	X509_free(root);
	X509_free(issuing);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ik);
}

/* Filler rows: ids that are SHA-256 shaped, PEM a placeholder. */
static void fill(struct store *st, long n)
{
	struct iotp_err err;
	char id[65];
	int64_t now = util_now();
	uint64_t t0 = util_mono_ns();

	if (store_begin(st, &err) != IOTP_OK)
		die("begin", &err);
	for (long i = 0; i < n; i++) {
		unsigned char h[32];
		char seed[32];
		struct store_val p[5];

		snprintf(seed, sizeof(seed), "filler-%ld", i);
		EVP_Digest(seed, strlen(seed), h, NULL, EVP_sha256(), NULL);
		util_hex(h, 32, id);
		p[0] = SV_TEXT(id);
		p[1] = SV_TEXT("-----BEGIN CERTIFICATE-----\nfiller\n-----END CERTIFICATE-----\n");
		p[2] = SV_INT(now - 60);
		p[3] = SV_INT(now + 86400);
		p[4] = SV_INT(now);
		if (store_exec(st,
		               "INSERT INTO certificates (id, pem, status, subject, serial, not_before, "
		               "not_after, created, updated) VALUES (?, ?, 'ACTIVE', 'CN=filler', '01', ?, "
		               "?, ?, ?)",
		               (struct store_val[]){p[0], p[1], p[2], p[3], p[4], p[4]}, 6, NULL, NULL,
		               &err) != IOTP_OK)
			die("insert filler", &err);
		if ((i + 1) % 100000 == 0) {
			if (store_commit(st, &err) != IOTP_OK || store_begin(st, &err) != IOTP_OK)
				die("commit", &err);
			fprintf(stderr, "  %ld filler rows (%.0f rows/s)\n", i + 1,
			        (double)(i + 1) / ((double)(util_mono_ns() - t0) / 1e9));
		}
	}
	if (store_commit(st, &err) != IOTP_OK)
		die("commit", &err);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, int n, double p)
{
	int i = (int)(p * (n - 1) + 0.5);

	return (double)v[i] / 1000.0;
}

static int row_cb(void *ud, const struct store_row *row)
{
	(void)row;
	(*(int *)ud)++;
	return 0;
}

int main(int argc, char **argv)
{
	long certs = 1000000;
	int real = 1000, samples = 20000;
	char dir[4096] = "", conf_path[4200];
	struct iotp_conf conf;
	struct iotp_core core;
	struct iotp_err err;
	X509 **xs;
	char (*ids)[65];
	uint64_t *t_auth, *t_raw;
	void *ud = NULL;
	struct mosquitto_opt opt;
	struct plugin *pl;
	int denied = 0;

	for (int i = 1; i < argc; i += 2) {
		int64_t v = 0;
		int ok = i + 1 < argc;

		if (ok && strcmp(argv[i], "--dir") == 0) {
			util_strlcpy(dir, argv[i + 1], sizeof(dir));
			continue;
		}
		ok = ok && util_parse_int64(argv[i + 1], 1, 100000000, &v) == IOTP_OK;
		if (ok && strcmp(argv[i], "--certs") == 0)
			certs = (long)v;
		else if (ok && strcmp(argv[i], "--real") == 0)
			real = (int)v;
		else if (ok && strcmp(argv[i], "--samples") == 0)
			samples = (int)v;
		else
			real = 0; /* usage */
	}
	if (real < 1 || samples < 1 || certs < real) {
		fprintf(stderr, "usage: bench_connect_auth [--certs N] [--real R] [--samples S] "
		                "[--dir D]\n");
		return 2;
	}
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/bench-connect-auth-XXXXXX");
		if (mkdtemp(dir) == NULL)
			return 1;
	}
	make_data_dir(dir);
	conf_init(&conf, dir);
	snprintf(conf_path, sizeof(conf_path), "%s/iotprov.conf", dir);
	if (conf_load(&conf, conf_path, &err) != IOTP_OK || core_open(&core, &conf, &err) != IOTP_OK)
		die("core", &err);

	fprintf(stderr, "setting up %d devices and %ld filler certificates in %s\n", real,
	        certs - real, dir);
	struct registry_policy pol = {0};

	if (registry_policy_create(&core, "key:bench", "devices",
	                           "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
	                           "\"Action\":\"iot:Connect\",\"Resource\":\"arn:aws:iot:*:*:client/"
	                           "${iot:Connection.Thing.ThingName}\"},{\"Effect\":\"Allow\","
	                           "\"Action\":[\"iot:Publish\",\"iot:Receive\"],\"Resource\":\"arn:aws:"
	                           "iot:*:*:topic/d/${iot:Connection.Thing.ThingName}/*\"}]}",
	                           &pol, &err) != IOTP_OK)
		die("policy", &err);
	registry_policy_cleanup(&pol);
	xs = calloc((size_t)real, sizeof(*xs));
	ids = calloc((size_t)real, sizeof(*ids));
	t_auth = calloc((size_t)samples, sizeof(*t_auth));
	t_raw = calloc((size_t)samples, sizeof(*t_raw));
	if (xs == NULL || ids == NULL || t_auth == NULL || t_raw == NULL)
		return 1;
	for (int i = 0; i < real; i++) {
		struct registry_cert_created c = {0};
		struct registry_thing_spec spec = {0};
		struct registry_ref ref;
		char name[32], principal[80];

		snprintf(name, sizeof(name), "dev-%06d", i);
		spec.name = name;
		if (registry_cert_create_with_keys(&core, "key:bench", REGISTRY_CERT_ACTIVE, &c, &err) !=
		        IOTP_OK ||
		    pki_cert_parse(c.pem, strlen(c.pem), &xs[i], &err) != IOTP_OK ||
		    registry_thing_create(&core, "key:bench", &spec, &ref, &err) != IOTP_OK)
			die("device", &err);
		snprintf(principal, sizeof(principal), "cert/%s", c.id);
		if (registry_thing_attach_principal(&core, "key:bench", name, principal, &err) !=
		        IOTP_OK ||
		    registry_policy_attach(&core, "key:bench", "devices", principal, &err) != IOTP_OK)
			die("attach", &err);
		memcpy(ids[i], c.id, sizeof(ids[i]));
		registry_cert_created_cleanup(&c);
	}
	fill(core.store, certs - real);

	opt.key = (char *)"config";
	opt.value = conf_path;
	if (mosquitto_plugin_init(NULL, &ud, &opt, 1) != MOSQ_ERR_SUCCESS)
		die("plugin init", NULL);
	pl = ud;
	srand(42);
	for (int s = 0; s < samples; s++) {
		int i = rand() % real;
		char name[32];
		struct mosquitto client;
		uint64_t t0;
		int rows = 0;

		snprintf(name, sizeof(name), "dev-%06d", i);
		client.cert = xs[i];
		client.id = name;
		t0 = util_mono_ns();
		if (on_basic_auth(MOSQ_EVT_BASIC_AUTH,
		                  &(struct mosquitto_evt_basic_auth){.client = &client}, pl) !=
		    MOSQ_ERR_SUCCESS)
			denied++;
		t_auth[s] = util_mono_ns() - t0;
		conn_map_remove(&pl->conns, &client);
		t0 = util_mono_ns();
		{
			struct store_val p[] = {SV_TEXT(ids[i])};

			if (store_exec(core.store,
			               "SELECT status, ca_id, purpose, template_name, not_before, "
			               "not_after, serial FROM certificates WHERE id = ?",
			               p, 1, row_cb, &rows, &err) != IOTP_OK || rows != 1)
				die("lookup", &err);
		}
		t_raw[s] = util_mono_ns() - t0;
	}
	qsort(t_auth, (size_t)samples, sizeof(*t_auth), cmp_u64);
	qsort(t_raw, (size_t)samples, sizeof(*t_raw), cmp_u64);
	printf("connect_auth: %ld certificates in the store, %d connects of %d devices, %d refused\n",
	       certs, samples, real, denied);
	printf("  plugin auth (BASIC_AUTH callback): p50 %.1f us  p99 %.1f us\n",
	       pct(t_auth, samples, 0.50), pct(t_auth, samples, 0.99));
	printf("  bound: certificate row lookup:     p50 %.1f us  p99 %.1f us\n",
	       pct(t_raw, samples, 0.50), pct(t_raw, samples, 0.99));
	printf("  ratio p50 %.1fx\n", pct(t_auth, samples, 0.50) / pct(t_raw, samples, 0.50));
	printf("RESULT name=connect_auth_p50 value=%.1f unit=us bound=%.1f bound_name=\"certificate "
	       "row lookup, same store\" ratio=%.4f\n", pct(t_auth, samples, 0.50),
	       pct(t_raw, samples, 0.50), pct(t_raw, samples, 0.50) / pct(t_auth, samples, 0.50));
	mosquitto_plugin_cleanup(ud, &opt, 1);
	for (int i = 0; i < real; i++)
		X509_free(xs[i]);
	free(xs);
	free(ids);
	free(t_auth);
	free(t_raw);
	core_close(&core);
	return denied != 0;
}
