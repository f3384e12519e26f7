/*
 * bench_register: RegisterThing applications per second through the core
 * (prov_apply, the one function every registration path calls) into a
 * store that already holds a million things, single-process and with
 * several processes, each printed next to bounds measured in the same run.
 *
 * Up front (not timed in the rate): a P-256 root and issuing CA, a
 * temporary SQLite store (WAL, synchronous=NORMAL) with a thing type, a
 * group and a policy, --things rows in `things` inserted in one
 * transaction (timed and reported on its own), one P-256 CSR and the
 * template parsed once. The template is the usual RegisterThing one: a
 * thing (type, group, one attribute), a certificate issued from the CSR
 * (ACTIVE), a policy by name; each application gets a unique thing name and
 * issues a new certificate, in its own transaction.
 *
 * Bounds, each with the same number of operations and the same processes:
 *   raw SQL   one transaction per application inserting as many rows as an
 *             application writes (counted in the run) into a 6-column
 *             indexed table: what the store allows at best;
 *   issuance  pki_csr_issue + pki_cert_to_pem + pki_cert_id of the CSR:
 *             what the crypto allows at best;
 *   serial    1 / (1/raw + 1/issuance): both costs paid one after the
 *             other, the bound for an application that does both.
 * Each figure is also given per CPU second of the processes doing the work
 * (getrusage), which the other load of a shared machine does not change;
 * the wall-clock rates time the application loop alone.
 * With several processes SQLite still has one writer at a time, so the SQL
 * part serialises while the crypto part spreads over the cores (OpenSSL 3
 * threads scale badly: processes, not threads, per PERF-NOTES.md).
 *
 * Usage: bench_register [--things N] [--count M] [--procs P] [--dir DIR]
 *                       [--store sqlite|postgresql://...]
 * (defaults 1000000, 2000 per process, 2; DIR: a new directory under /tmp,
 * removed at the end unless given; --store postgresql://... puts the store
 * in a scratch schema of that database, bench/scratch_store.h)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"
#include "core/core.h"
#include "core/pki.h"
#include "core/provision.h"
#include "core/registry.h"
#include "core/store/store.h"

#include "scratch_store.h"

#define FILL_ROWS 200      /* rows per INSERT statement while filling */
#define PROCS_MAX 16

static const char template_body[] =
	"{\"Parameters\": {\"ThingName\": {\"Type\": \"String\"}, \"CSR\": {\"Type\": \"String\"}},"
	" \"Resources\": {"
	"  \"thing\": {\"Type\": \"AWS::IoT::Thing\", \"Properties\": {"
	"    \"ThingName\": {\"Ref\": \"ThingName\"}, \"ThingTypeName\": \"sensor\","
	"    \"ThingGroups\": [\"bench\"],"
	"    \"AttributePayload\": {\"batch\": \"b1\"}}},"
	"  \"certificate\": {\"Type\": \"AWS::IoT::Certificate\", \"Properties\": {"
	"    \"CertificateSigningRequest\": {\"Ref\": \"CSR\"}, \"Status\": \"ACTIVE\"}},"
	"  \"policy\": {\"Type\": \"AWS::IoT::Policy\", \"Properties\": {"
	"    \"PolicyName\": \"bench-policy\"}}}}";

struct bench {
	char dir[512];
	char url[600];
	struct iotp_conf conf;
	struct pki_ca issuing;
	char *csr;
	struct template *tmpl;
	long count;
	double rows_per_app;
};

static void die(const char *what, const struct iotp_err *err)
{
	fprintf(stderr, "bench_register: %s: %s\n", what, err != NULL ? err->msg : "failed");
	exit(1);
}

static double now_s(void)
{
	return (double)util_mono_ns() / 1e9;
}

/* CPU seconds (user + system) of this process or of its waited-for
 * children: figures the other load of a shared machine does not change. */
static double cpu_s(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void open_core(struct bench *b, struct iotp_core *core)
{
	struct store *st = NULL;
	struct iotp_err err;

	if (store_open(b->url, &st, &err) != IOTP_OK)
		die("open the store", &err);
	core_init_with_store(core, &b->conf, st);
	X509_up_ref(b->issuing.cert);
	EVP_PKEY_up_ref(b->issuing.key);
	core->issuing = b->issuing;
}

static char *make_csr(void)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", (char *)"P-256");
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL, *out;
	long n;

	if (key == NULL || req == NULL || name == NULL || bio == NULL ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                               (const unsigned char *)"bench-device", -1, -1, 0) != 1 ||
	    X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0 || PEM_write_bio_X509_REQ(bio, req) != 1)
		die("make a CSR", NULL);
	n = BIO_get_mem_data(bio, &data);
	out = strndup(data, (size_t)n);
	if (out == NULL)
		die("make a CSR", NULL);
	BIO_free(bio);
	X509_NAME_free(name);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return out;
}

/* The registry objects the template names, and the million things. */
static void prepare(struct bench *b, long things)
{
	struct iotp_core core;
	struct iotp_err err;
	struct registry_ref ref;
	struct registry_policy pol = {0};
	struct registry_thing_type_spec ts = {.name = "sensor"};
	struct registry_thing_group_spec gs = {.name = "bench"};
	char *sql = NULL;
	struct store_val *p = NULL;
	char (*names)[32] = NULL, (*ids)[37] = NULL;
	double t0;
	int64_t now = util_now();

	open_core(b, &core);
	if (registry_thing_type_create(&core, "system", &ts, &ref, &err) != IOTP_OK ||
	    registry_thing_group_create(&core, "system", &gs, &ref, &err) != IOTP_OK ||
	    registry_policy_create(&core, "system", "bench-policy",
	                           "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
	                           "\"Action\":\"iot:Connect\",\"Resource\":\"*\"}]}",
	                           &pol, &err) != IOTP_OK)
		die("create the type, group and policy", &err);
	registry_policy_cleanup(&pol);

	/* One multi-row INSERT statement, reused for every chunk. */
	{
		size_t cap = 200 + (size_t)FILL_ROWS * 40, len;

		sql = malloc(cap);
		p = calloc((size_t)FILL_ROWS * 4, sizeof(*p));
		names = calloc(FILL_ROWS, sizeof(*names));
		ids = calloc(FILL_ROWS, sizeof(*ids));
		if (sql == NULL || p == NULL || names == NULL || ids == NULL)
			die("fill: out of memory", NULL);
		len = (size_t)snprintf(sql, cap,
		                       "INSERT INTO things (name, id, type_name, attributes, version, "
		                       "created, updated) VALUES ");
		for (int i = 0; i < FILL_ROWS; i++)
			len += (size_t)snprintf(sql + len, cap - len, "%s(?, ?, 'sensor', '{}', 1, ?, ?)",
			                        i > 0 ? ", " : "");
	}
	/* A cache that holds the random-UUID index keeps the fill from
	 * re-reading pages (this connection only; the timed ones keep the
	 * store's defaults). SQLite only: PostgreSQL's is the server's. */
	if (strncmp(b->url, "sqlite:", 7) == 0 &&
	    store_exec(core.store, "PRAGMA cache_size = -262144", NULL, 0, NULL, NULL, &err) !=
	        IOTP_OK)
		die("fill: cache size", &err);
	t0 = now_s();
	if (store_begin(core.store, &err) != IOTP_OK)
		die("fill: begin", &err);
	for (long done = 0; done < things; done += FILL_ROWS) {
		long n = things - done < FILL_ROWS ? things - done : FILL_ROWS;

		for (long i = 0; i < n; i++) {
			snprintf(names[i], sizeof(names[i]), "fill-%08ld", done + i);
			if (util_uuid(ids[i], &err) != IOTP_OK)
				die("fill: uuid", &err);
			p[i * 4] = SV_TEXT(names[i]);
			p[i * 4 + 1] = SV_TEXT(ids[i]);
			p[i * 4 + 2] = SV_INT(now);
			p[i * 4 + 3] = SV_INT(now);
		}
		if (n == FILL_ROWS) {
			if (store_exec(core.store, sql, p, FILL_ROWS * 4, NULL, NULL, &err) != IOTP_OK)
				die("fill: insert", &err);
			continue;
		}
		for (long i = 0; i < n; i++) {
			if (store_exec(core.store,
			               "INSERT INTO things (name, id, type_name, attributes, version, "
			               "created, updated) VALUES (?, ?, 'sensor', '{}', 1, ?, ?)",
			               p + i * 4, 4, NULL, NULL, &err) != IOTP_OK)
				die("fill: insert", &err);
		}
	}
	if (store_commit(core.store, &err) != IOTP_OK)
		die("fill: commit", &err);
	{
		double dt = now_s() - t0;

		printf("fill: %ld things in one transaction: %.1f s (%.0f rows/s)\n", things, dt,
		       (double)things / dt);
		fflush(stdout);
	}
	if (store_exec(core.store,
	               "CREATE TABLE bench_raw (a TEXT PRIMARY KEY, b TEXT NOT NULL, c INTEGER, "
	               "d INTEGER, e TEXT, f TEXT)",
	               NULL, 0, NULL, NULL, &err) != IOTP_OK ||
	    store_exec(core.store, "CREATE INDEX bench_raw_b ON bench_raw(b, c)", NULL, 0, NULL,
	               NULL, &err) != IOTP_OK)
		die("create the raw table", &err);
	free(sql);
	free(p);
	free(names);
	free(ids);
	core_close(&core);
}

static int64_t total_rows(struct iotp_core *core)
{
	static const char *const tables[] = {"things", "thing_attributes", "thing_group_members",
	                                     "certificates", "thing_principals", "policy_targets",
	                                     "events"};
	struct iotp_err err;
	int64_t sum = 0;

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		char sql[96];
		int64_t n = 0;

		snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", tables[i]);
		if (store_query_int(core->store, sql, NULL, 0, &n, &err) != IOTP_OK)
			die("count rows", &err);
		sum += n;
	}
	return sum;
}

enum work { WORK_APPLY, WORK_RAW, WORK_ISSUE };

/* One worker's share: count operations of the kind, names prefixed by id. */
static double work(struct bench *b, enum work kind, int id, int measure_rows, double *cpu)
{
	struct iotp_core core;
	struct iotp_err err;
	json_t *params = json_pack("{s:s, s:s}", "ThingName", "", "CSR", b->csr);
	int64_t rows0 = 0;
	double t0, t1, c0;
	int rows = b->rows_per_app > 0 ? (int)(b->rows_per_app + 0.5) : 1;

	if (params == NULL)
		die("parameters", NULL);
	open_core(b, &core);
	if (measure_rows)
		rows0 = total_rows(&core);
	t0 = now_s();
	c0 = cpu_s(RUSAGE_SELF);
	for (long i = 0; i < b->count; i++) {
		char name[48];

		snprintf(name, sizeof(name), "w%d-%s-%08ld", id,
		         kind == WORK_APPLY ? "dev" : "raw", i);
		if (kind == WORK_APPLY) {
			struct prov_apply_in in;
			struct prov_result r = {0};

			memset(&in, 0, sizeof(in));
			in.tmpl = b->tmpl;
			in.parameters = params;
			json_object_set_new(params, "ThingName", json_string(name));
			if (prov_apply(&core, "system", &in, &r, &err) != IOTP_OK)
				die("prov_apply", &err);
			prov_result_cleanup(&r);
		} else if (kind == WORK_RAW) {
			if (store_begin(core.store, &err) != IOTP_OK)
				die("raw: begin", &err);
			for (int k = 0; k < rows; k++) {
				char key[64];

				snprintf(key, sizeof(key), "%s-%d", name, k);
				struct store_val p[] = {SV_TEXT(key), SV_TEXT(name), SV_INT(i), SV_INT(k),
				                        SV_TEXT("arn:aws:iot:us-east-1:123456789012:x"),
				                        SV_TEXT("{\"detail\":\"a small json object\"}")};

				if (store_exec(core.store,
				               "INSERT INTO bench_raw (a, b, c, d, e, f) VALUES (?, ?, ?, ?, ?, "
				               "?)",
				               p, 6, NULL, NULL, &err) != IOTP_OK)
					die("raw: insert", &err);
			}
			if (store_commit(core.store, &err) != IOTP_OK)
				die("raw: commit", &err);
		} else {
			struct pki_issue_opts opts = {.days = 365, .not_before_skew = 300};
			char cid[PKI_CERT_ID_LEN + 1], *pem = NULL;
			X509 *x = NULL;

			if (pki_csr_issue(&b->issuing, b->csr, strlen(b->csr), &opts, &x, &err) !=
			        IOTP_OK ||
			    pki_cert_to_pem(x, &pem, &err) != IOTP_OK || pki_cert_id(x, cid, &err) != IOTP_OK)
				die("issue", &err);
			free(pem);
			X509_free(x);
		}
	}
	t1 = now_s();
	if (cpu != NULL)
		*cpu = cpu_s(RUSAGE_SELF) - c0;
	if (measure_rows)
		b->rows_per_app = (double)(total_rows(&core) - rows0) / (double)b->count;
	json_decref(params);
	core_close(&core);
	return t1 - t0;
}

/* Runs kind in procs processes (1: in this one) and returns operations/s
 * (wall clock: with one process the loop alone, not the row counting
 * around it); *cpu_rate receives operations per CPU second of the
 * processes that did the work. */
static double run(struct bench *b, enum work kind, int procs, int round, double *cpu_rate)
{
	pid_t pids[PROCS_MAX];
	double t0 = now_s(), c0 = cpu_s(RUSAGE_CHILDREN), cpu = 0, wall;

	if (procs == 1) {
		wall = work(b, kind, round * PROCS_MAX, kind == WORK_APPLY && b->rows_per_app == 0,
		            &cpu);
		*cpu_rate = (double)b->count / cpu;
		return (double)b->count / wall;
	}
	fflush(stdout);
	for (int i = 0; i < procs; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork", NULL);
		if (pids[i] == 0) {
			/* The parent's store connection is not touched here. */
			work(b, kind, round * PROCS_MAX + i, 0, NULL);
			_exit(0);
		}
	}
	for (int i = 0; i < procs; i++) {
		int status = 0;

		if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			die("a worker process failed", NULL);
	}
	wall = now_s() - t0;
	*cpu_rate = (double)b->count * procs / (cpu_s(RUSAGE_CHILDREN) - c0);
	return (double)b->count * procs / wall;
}

static void report(const char *label, int procs, double apply, double raw, double issue,
                   const double cpu[3])
{
	double serial = 1.0 / (1.0 / raw + 1.0 / issue);
	double cserial = 1.0 / (1.0 / cpu[1] + 1.0 / cpu[2]);

	printf("\n%d process%s:\n", procs, procs > 1 ? "es" : "");
	printf("  RegisterThing (prov_apply)   %9.0f /s\n", apply);
	printf("  bound: raw SQL, same rows     %9.0f /s\n", raw);
	printf("  bound: CSR issuance           %9.0f /s\n", issue);
	printf("  bound: both in series         %9.0f /s\n", serial);
	printf("  %s: %.2f of the serial bound\n", label, apply / serial);
	printf("  per CPU second: apply %.0f, raw SQL %.0f, issuance %.0f, in series %.0f "
	       "(%.2f; %.0f us of CPU per application)\n",
	       cpu[0], cpu[1], cpu[2], cserial, cpu[0] / cserial, 1e6 / cpu[0]);
	printf("RESULT name=register_%dproc value=%.0f unit=applies/s bound=%.0f bound_name=\"raw SQL "
	       "and CSR issuance in series\" ratio=%.3f\n", procs, apply, serial, apply / serial);
	printf("RESULT name=register_%dproc_per_cpu_s value=%.0f unit=applies/s bound=%.0f "
	       "bound_name=\"raw SQL and CSR issuance in series, per CPU second\" ratio=%.3f\n",
	       procs, cpu[0], cserial, cpu[0] / cserial);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"things", required_argument, NULL, 't'}, {"count", required_argument, NULL, 'c'},
		{"procs", required_argument, NULL, 'p'},  {"dir", required_argument, NULL, 'd'},
		{"store", required_argument, NULL, 'S'},  {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *pg = NULL;
	char schema[64] = "";
	struct bench b;
	struct iotp_err err;
	struct pki_ca root = {0};
	long things = 1000000;
	int procs = 2, opt, keep = 0;
	double a1, r1, i1, an, rn, in, c1[3], cn[3];

	memset(&b, 0, sizeof(b));
	b.count = 2000;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 't': things = strtol(optarg, NULL, 10); break;
		case 'c': b.count = strtol(optarg, NULL, 10); break;
		case 'p': procs = (int)strtol(optarg, NULL, 10); break;
		case 'd':
			snprintf(b.dir, sizeof(b.dir), "%s", optarg);
			keep = 1;
			break;
		case 'S':
			if (strcmp(optarg, "sqlite") != 0 && !scratch_is_pg(optarg)) {
				fprintf(stderr, "bench_register: --store sqlite|postgresql://...\n");
				return 2;
			}
			pg = scratch_is_pg(optarg) ? optarg : NULL;
			break;
		case 'h':
			printf("usage: bench_register [--things N] [--count M] [--procs P] [--dir DIR] "
			       "[--store sqlite|postgresql://...]\n");
			return 0;
		default: return 2;
		}
	}
	if (things < 0 || b.count < 1 || procs < 2 || procs > PROCS_MAX) {
		fprintf(stderr, "bench_register: --things >= 0, --count >= 1, --procs 2..%d\n",
		        PROCS_MAX);
		return 2;
	}
	iotp_log_set_level(IOTP_LOG_WARN);
	if (!keep) {
		snprintf(b.dir, sizeof(b.dir), "/tmp/iotp-bench-register-XXXXXX");
		if (mkdtemp(b.dir) == NULL)
			die("mkdtemp", NULL);
	} else if (util_mkdir(b.dir, 0700, &err) != IOTP_OK) {
		die("--dir", &err);
	}
	if (pg == NULL)
		snprintf(b.url, sizeof(b.url), "sqlite:%s/bench.db", b.dir);
	else if (scratch_create(pg, "bench_register", 0, b.url, sizeof(b.url), schema,
	                        sizeof(schema)) != 0)
		die("--store: cannot create a scratch schema", NULL);
	conf_init(&b.conf, b.dir);
	if (pki_key_generate(PKI_KEY_EC_P256, &root.key, &err) != IOTP_OK ||
	    pki_ca_create_root(root.key, "Bench Root", 3650, &root.cert, &err) != IOTP_OK ||
	    pki_key_generate(PKI_KEY_EC_P256, &b.issuing.key, &err) != IOTP_OK ||
	    pki_ca_create_issuing(&root, b.issuing.key, "Bench Issuing", 3650, &b.issuing.cert,
	                          &err) != IOTP_OK)
		die("create the CAs", &err);
	pki_ca_cleanup(&root);
	b.csr = make_csr();
	if (template_parse(template_body, strlen(template_body), TEMPLATE_KIND_ANY, &b.tmpl, &err) !=
	    IOTP_OK)
		die("parse the template", &err);
	printf("bench_register: %ld things pre-filled, %ld applications per process, store %s%s\n",
	       things, b.count, pg != NULL ? "PostgreSQL schema " : "", pg != NULL ? schema : b.url);
	prepare(&b, things);

	a1 = run(&b, WORK_APPLY, 1, 0, &c1[0]);
	printf("rows written per application: %.1f (counted)\n", b.rows_per_app);
	fflush(stdout);
	r1 = run(&b, WORK_RAW, 1, 0, &c1[1]);
	i1 = run(&b, WORK_ISSUE, 1, 0, &c1[2]);
	an = run(&b, WORK_APPLY, procs, 1, &cn[0]);
	rn = run(&b, WORK_RAW, procs, 1, &cn[1]);
	in = run(&b, WORK_ISSUE, procs, 1, &cn[2]);
	report("single process", 1, a1, r1, i1, c1);
	report("several processes", procs, an, rn, in, cn);
	printf("\nscaling with %d processes: apply x%.2f, raw SQL x%.2f, issuance x%.2f\n", procs,
	       an / a1, rn / r1, in / i1);

	template_free(b.tmpl);
	free(b.csr);
	pki_ca_cleanup(&b.issuing);
	if (pg != NULL)
		scratch_drop(pg, schema);
	if (!keep) {
		char path[700];
		const char *files[] = {"bench.db", "bench.db-wal", "bench.db-shm"};

		for (size_t i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "%s/%s", b.dir, files[i]);
			unlink(path);
		}
		rmdir(b.dir);
	}
	return 0;
}
