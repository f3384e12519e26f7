/*
 * bench_bulk: bulk registration throughput, things registered per second,
 * next to the bound set by the machine's ECDSA P-256 verify rate measured
 * in the same run.
 *
 * Up front (timed apart, not part of the figure): a temporary data dir with
 * a SQLite store, a vendor CA (P-256) registered SNI_ONLY, a policy, and an
 * input file of N lines, each a device certificate signed by the vendor CA
 * (made by two processes). Timed: a thing registration task over that file
 * run by the real runner (bulk_run_step, --batch records per transaction)
 * with a template that, for each line, registers the certificate (PEM
 * decode, the issuer found among the registered CAs and its signature
 * verified: the chain check), creates the thing and attaches the
 * certificate to the thing and the policy to the certificate -- the
 * "certificate registration + thing + attachments" of issue 7. The runner
 * uses two threads as in iotprovd: its worker reads the next batch and
 * makes the certificates' lite parse and signature checks while the store
 * writes the current one (src/core/bulk_run.c).
 *
 * The bound: EVP_DigestVerify of a P-256 signature (fresh context each, as
 * one-shot use does) looped for --bound-seconds of CPU, before and after.
 * Each line needs one verify (the chain check), so lines per CPU second
 * over verifies per CPU second says how much of the time goes to
 * everything else. Both are also given per CPU second because this machine
 * is shared: wall-clock rates depend on what else runs.
 *
 * Usage: bench_bulk [--lines N (1000000)] [--batch B (500)]
 *                   [--format jsonl|certs-pem] [--bound-seconds S (1)]
 *                   [--keep DIR: keep the data dir there]
 *                   [--store sqlite|postgresql://...: the store (default a SQLite
 *                    file in the data dir; PostgreSQL: a scratch schema of that
 *                    database, bench/scratch_store.h)]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/util.h"
#include "core/bulk.h"
#include "core/core.h"
#include "core/pki.h"
#include "core/registry.h"

#include "scratch_store.h"

#define ACTOR "key:AKIABENCHBULK"

static const char tmpl_jsonl[] =
	"{\"Parameters\":{\"CertificatePem\":{\"Type\":\"String\"},"
	"\"ThingName\":{\"Type\":\"String\"}},"
	"\"Resources\":{"
	"\"thing\":{\"Type\":\"AWS::IoT::Thing\",\"Properties\":{\"ThingName\":{\"Ref\":"
	"\"ThingName\"}}},"
	"\"cert\":{\"Type\":\"AWS::IoT::Certificate\",\"Properties\":{\"CertificatePem\":"
	"{\"Ref\":\"CertificatePem\"},\"Status\":\"ACTIVE\"}},"
	"\"policy\":{\"Type\":\"AWS::IoT::Policy\",\"Properties\":{\"PolicyName\":"
	"\"bench-policy\"}}}}";

static const char tmpl_pem[] =
	"{\"Parameters\":{\"CertificatePem\":{\"Type\":\"String\"},"
	"\"CommonName\":{\"Type\":\"String\"}},"
	"\"Resources\":{"
	"\"thing\":{\"Type\":\"AWS::IoT::Thing\",\"Properties\":{\"ThingName\":{\"Ref\":"
	"\"CommonName\"}}},"
	"\"cert\":{\"Type\":\"AWS::IoT::Certificate\",\"Properties\":{\"CertificatePem\":"
	"{\"Ref\":\"CertificatePem\"},\"Status\":\"ACTIVE\"}},"
	"\"policy\":{\"Type\":\"AWS::IoT::Policy\",\"Properties\":{\"PolicyName\":"
	"\"bench-policy\"}}}}";

static void die(const char *what, const struct iotp_err *err)
{
	fprintf(stderr, "bench_bulk: %s: %s\n", what, err != NULL ? err->msg : "failed");
	exit(1);
}

static double now_s(void)
{
	return (double)util_mono_ns() / 1e9;
}

static double cpu_s(void);

/* CPU seconds (user + system) of this process: a figure the other load of
 * a shared machine does not change. */
static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* P-256 verifies per CPU second, one thread, looped for `seconds` of CPU
 * time (so that other load on a shared machine does not change it). */
static double verify_rate(double seconds)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", (char *)"P-256");
	unsigned char msg[32] = {1}, sig[80];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	double t0, t;
	long n = 0;

	if (key == NULL || ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, msg, sizeof(msg)) != 1)
		die("verify bound setup", NULL);
	EVP_MD_CTX_free(ctx);
	t0 = cpu_s();
	do {
		for (int i = 0; i < 200; i++) {
			EVP_MD_CTX *v = EVP_MD_CTX_new();

			if (v == NULL || EVP_DigestVerifyInit(v, NULL, EVP_sha256(), NULL, key) != 1 ||
			    EVP_DigestVerify(v, sig, siglen, msg, sizeof(msg)) != 1)
				die("verify bound", NULL);
			EVP_MD_CTX_free(v);
		}
		n += 200;
		t = cpu_s();
	} while (t - t0 < seconds);
	EVP_PKEY_free(key);
	return (double)n / (t - t0);
}

/* Writes lines [from, to) of the input to path: one certificate per line
 * (jsonl) or per PEM block (certs-pem). One device key for all: the cost
 * per line is in the certificate, whose id, subject and serial differ. */
static void make_part(const char *path, long from, long to, const struct pki_ca *ca,
                      EVP_PKEY *dev, int jsonl)
{
	FILE *f = fopen(path, "w");
	X509 *x = X509_new();
	X509_NAME *name;
	char cn[32];

	if (f == NULL || x == NULL)
		die("input file", NULL);
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	X509_set_version(x, 2);
	X509_set_issuer_name(x, X509_get_subject_name(ca->cert));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400);
	X509_set_pubkey(x, dev);
	for (long i = from; i < to; i++) {
		BIO *mem = BIO_new(BIO_s_mem());
		char *pem;
		long len;

		snprintf(cn, sizeof(cn), "bench-%08ld", i);
		name = X509_NAME_new();
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (unsigned char *)cn, -1, -1, 0);
		X509_set_subject_name(x, name);
		X509_NAME_free(name);
		ASN1_INTEGER_set(X509_get_serialNumber(x), i + 1);
		if (X509_sign(x, ca->key, EVP_sha256()) <= 0 || mem == NULL ||
		    PEM_write_bio_X509(mem, x) != 1)
			die("sign a device certificate", NULL);
		len = BIO_get_mem_data(mem, &pem);
		if (jsonl) {
			fputs("{\"ThingName\":\"", f);
			fputs(cn, f);
			fputs("\",\"CertificatePem\":\"", f);
			for (long k = 0; k < len; k++) {
				if (pem[k] == '\n')
					fputs("\\n", f);
				else
					fputc(pem[k], f);
			}
			fputs("\"}\n", f);
		} else {
			fwrite(pem, 1, (size_t)len, f);
		}
		BIO_free(mem);
	}
	X509_free(x);
	if (fclose(f) != 0)
		die("write input", NULL);
}

/* Two processes write the halves, then they are joined. */
static void make_input(const char *dir, const char *path, long lines, const struct pki_ca *ca,
                       int jsonl)
{
	EVP_PKEY *dev = EVP_PKEY_Q_keygen(NULL, NULL, "EC", (char *)"P-256");
	char part[2][1200], cmd[8000];
	pid_t pid[2];

	if (dev == NULL)
		die("device key", NULL);
	for (int p = 0; p < 2; p++) {
		snprintf(part[p], sizeof(part[p]), "%s/part%d", dir, p);
		pid[p] = fork();
		if (pid[p] < 0)
			die("fork", NULL);
		if (pid[p] == 0) {
			make_part(part[p], p == 0 ? 0 : lines / 2, p == 0 ? lines / 2 : lines, ca, dev,
			          jsonl);
			_exit(0);
		}
	}
	for (int p = 0; p < 2; p++) {
		int st = 0;

		if (waitpid(pid[p], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			die("input generator process", NULL);
	}
	snprintf(cmd, sizeof(cmd), "cat '%s' '%s' > '%s' && rm -f '%s' '%s'", part[0], part[1],
	         path, part[0], part[1]);
	if (system(cmd) != 0)
		die("join the input", NULL);
	EVP_PKEY_free(dev);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"lines", required_argument, NULL, 'n'},
		{"batch", required_argument, NULL, 'b'},
		{"format", required_argument, NULL, 'f'},
		{"bound-seconds", required_argument, NULL, 's'},
		{"keep", required_argument, NULL, 'k'},
		{"store", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	long lines = 1000000, batch = BULK_BATCH_DEFAULT;
	double bound_s = 1.0, v_before, v_after, t0, t1, gen_s, run_s, c0, run_cpu;
	const char *format = "jsonl", *keep = NULL, *pg = NULL;
	char dir[1024], path[1200], url[2048], cmd[1300], id[BULK_TASK_ID_MAX + 1], schema[64] = "";
	struct iotp_conf conf;
	struct iotp_core core;
	struct store *st = NULL;
	struct pki_ca vendor = {0};
	struct iotp_err err;
	struct bulk_run *run = NULL;
	struct bulk_task task;
	char *vendor_pem = NULL;
	int opt, finished = 0, jsonl;
	long next_report;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': lines = strtol(optarg, NULL, 10); break;
		case 'b': batch = strtol(optarg, NULL, 10); break;
		case 'f': format = optarg; break;
		case 's': bound_s = strtod(optarg, NULL); break;
		case 'k': keep = optarg; break;
		case 'S':
			if (strcmp(optarg, "sqlite") != 0 && !scratch_is_pg(optarg)) {
				fprintf(stderr, "bench_bulk: --store sqlite|postgresql://...\n");
				return 2;
			}
			pg = scratch_is_pg(optarg) ? optarg : NULL;
			break;
		default:
			fprintf(stderr, "usage: bench_bulk [--lines N] [--batch B] "
			                "[--format jsonl|certs-pem] [--bound-seconds S] [--keep DIR] "
			                "[--store sqlite|postgresql://...]\n");
			return 2;
		}
	}
	if (lines < 2 || batch < 1 || bound_s <= 0 ||
	    (strcmp(format, "jsonl") != 0 && strcmp(format, "certs-pem") != 0)) {
		fprintf(stderr, "bench_bulk: bad arguments\n");
		return 2;
	}
	jsonl = strcmp(format, "jsonl") == 0;
	if (keep != NULL) {
		snprintf(dir, sizeof(dir), "%s", keep);
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			die("--keep directory", NULL);
	} else {
		snprintf(dir, sizeof(dir), "/tmp/iotp-bench-bulk-XXXXXX");
		if (mkdtemp(dir) == NULL)
			die("mkdtemp", NULL);
	}
	conf_init(&conf, dir);
	if (pg == NULL) {
		snprintf(url, sizeof(url), "sqlite:%s/bench.db", dir);
		unlink(url + 7);
	} else if (scratch_create(pg, "bench_bulk", 0, url, sizeof(url), schema, sizeof(schema)) !=
	           0) {
		die("--store: cannot create a scratch schema", NULL);
	}
	if (store_open(url, &st, &err) != IOTP_OK)
		die("store", &err);
	core_init_with_store(&core, &conf, st);

	/* The vendor CA, registered, and the policy every certificate gets. */
	if (pki_key_generate(PKI_KEY_EC_P256, &vendor.key, &err) != IOTP_OK ||
	    pki_ca_create_root(vendor.key, "Bench Vendor CA", 365, &vendor.cert, &err) != IOTP_OK ||
	    pki_cert_to_pem(vendor.cert, &vendor_pem, &err) != IOTP_OK)
		die("vendor CA", &err);
	{
		struct registry_ca_register in = {vendor_pem, NULL, "SNI_ONLY", 1, 0, NULL};
		struct registry_ref ref;
		struct registry_policy pol;

		memset(&pol, 0, sizeof(pol));
		if (registry_ca_register(&core, ACTOR, &in, &ref, &err) != IOTP_OK)
			die("register the vendor CA", &err);
		if (registry_policy_create(&core, ACTOR, "bench-policy",
		                           "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":"
		                           "\"Allow\",\"Action\":\"iot:Connect\",\"Resource\":\"*\"}]}",
		                           &pol, &err) != IOTP_OK)
			die("policy", &err);
		registry_policy_cleanup(&pol);
	}

	snprintf(path, sizeof(path), "%s/import", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/import/bench", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/import/bench/devices.%s", dir, jsonl ? "jsonl" : "pem");
	printf("bench_bulk: %ld lines, format %s, batch %ld, data dir %s, store %s\n", lines, format,
	       batch, dir, store_backend_name(st));
	fflush(stdout);
	t0 = now_s();
	make_input(dir, path, lines, &vendor, jsonl);
	gen_s = now_s() - t0;
	printf("input: %ld device certificates signed by the vendor CA in %.1f s (2 processes, "
	       "not timed below)\n",
	       lines, gen_s);
	v_before = verify_rate(bound_s);

	{
		struct bulk_start in = {jsonl ? tmpl_jsonl : tmpl_pem, "bench",
		                        jsonl ? "devices.jsonl" : "devices.pem", format, NULL};

		if (bulk_task_start(&core, ACTOR, &in, id, &err) != IOTP_OK)
			die("start the task", &err);
	}
	if (bulk_run_open(&core, id, &run, &err) != IOTP_OK)
		die("open the run", &err);
	next_report = lines / 10;
	c0 = cpu_s();
	t0 = now_s();
	while (!finished) {
		if (bulk_run_step(run, (int)batch, &finished, &err) != IOTP_OK)
			die("batch", &err);
		if (bulk_run_applied(run) >= next_report) {
			t1 = now_s();
			printf("  %8lld lines  %6.1f s  %8.0f lines/s  (%.0f per CPU second)\n",
			       (long long)bulk_run_applied(run), t1 - t0,
			       (double)bulk_run_applied(run) / (t1 - t0),
			       (double)bulk_run_applied(run) / (cpu_s() - c0));
			fflush(stdout);
			next_report += lines / 10;
		}
	}
	run_s = now_s() - t0;
	run_cpu = cpu_s() - c0;
	bulk_run_close(run);
	v_after = verify_rate(bound_s);

	memset(&task, 0, sizeof(task));
	if (bulk_task_describe(&core, id, &task, &err) != IOTP_OK)
		die("describe", &err);
	{
		int64_t things = 0, certs = 0, attached = 0, pols = 0;

		store_query_int(core.store, "SELECT COUNT(*) FROM things", NULL, 0, &things, &err);
		store_query_int(core.store, "SELECT COUNT(*) FROM certificates", NULL, 0, &certs, &err);
		store_query_int(core.store, "SELECT COUNT(*) FROM thing_principals", NULL, 0, &attached,
		                &err);
		store_query_int(core.store, "SELECT COUNT(*) FROM policy_targets", NULL, 0, &pols,
		                &err);
		printf("result: task %s, %lld registered, %lld failed; %lld things, %lld "
		       "certificates, %lld thing attachments, %lld policy attachments\n",
		       task.status, (long long)task.success_count, (long long)task.failure_count,
		       (long long)things, (long long)certs, (long long)attached, (long long)pols);
		if (task.success_count != lines || things != lines || certs != lines ||
		    attached != lines || pols != lines) {
			fprintf(stderr, "bench_bulk: the registry does not hold what was imported\n");
			return 1;
		}
	}
	{
		double rate = (double)lines / run_s, cpu_rate = (double)lines / run_cpu;
		double bound = (v_before + v_after) / 2;

		printf("\nthings registered: %.0f /s wall (%ld lines in %.1f s, one process, two "
		       "threads); "
		       "%.0f per CPU second (%.0f us of CPU per line)\n",
		       rate, lines, run_s, cpu_rate, run_cpu * 1e6 / (double)lines);
		printf("P-256 verify bound: %.0f per CPU second (one thread; %.0f before, %.0f "
		       "after)\n",
		       bound, v_before, v_after);
		printf("ratio: %.3f of the verify bound (CPU for CPU); 1,000,000 lines would take "
		       "%.0f s at this wall rate, %.0f s on one idle core (goal: under 120 s)\n",
		       cpu_rate / bound, 1e6 / rate, 1e6 / cpu_rate);
		printf("RESULT name=bulk_register_per_cpu_s value=%.0f unit=lines/s bound=%.0f "
		       "bound_name=\"P-256 verify, one thread\" ratio=%.3f\n", cpu_rate, bound,
		       cpu_rate / bound);
		/* The runner's two threads against the verify rate of two cores:
		 * what the wall clock of a task on this machine can approach. */
		printf("RESULT name=bulk_register_wall value=%.0f unit=lines/s bound=%.0f "
		       "bound_name=\"P-256 verify, two threads\" ratio=%.3f\n", rate, 2 * bound,
		       rate / (2 * bound));
	}
	bulk_task_cleanup(&task);
	core_close(&core);
	if (pg != NULL)
		scratch_drop(pg, schema);
	pki_ca_cleanup(&vendor);
	free(vendor_pem);
	if (keep == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_bulk: could not remove %s\n", dir);
	}
	return 0;
}
