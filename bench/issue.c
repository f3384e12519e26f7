/*
 * bench_issue: single-threaded certificate issuance from CSRs, end to end,
 * against the bound set by OpenSSL itself.
 *
 * Up front (not timed): a P-256 root and issuing CA, a temporary SQLite
 * store (store_open, WAL, synchronous=NORMAL) and N P-256 CSRs in PEM, each
 * with its own key. Timed, per CSR, what a server does for
 * CreateCertificateFromCsr: pki_csr_parse (PEM decode, DER decode, key
 * check, self-signature verify) + pki_cert_issue + pki_cert_to_pem +
 * pki_cert_id + the row fields (validity, serial, subject) + an INSERT into
 * the certificates table, committed in batches of --batch rows (default 100)
 * per transaction, as a server under load would group them.
 *
 * The bound: EVP_DigestSign + EVP_DigestVerify (each with a fresh
 * EVP_MD_CTX and DigestSign/VerifyInit, as one-shot use does) of a 32-byte
 * message with one P-256 key, looped for --bound-seconds (default 2), run
 * before and after the issuance loop; the mean is reported. Issuance needs one
 * verify (the CSR) and one sign (the certificate), so the ratio says how
 * much of the time goes to everything else.
 *
 * A second, diagnostic pass on up to 2,000 CSRs splits pki_csr_parse into
 * the DER decode (where OpenSSL 3.0 decodes the public key through its
 * generic decoder) and the signature verification.
 *
 * Usage: bench_issue [--count N] [--batch B] [--bound-seconds S] [--store URL]
 * (defaults 10000, 100, 2: about 20 s on a 2-vCPU machine). --store
 * postgresql://... puts each path's store in a scratch schema of that
 * database instead of a temporary SQLite file (bench/scratch_store.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"
#include "core/core.h"
#include "core/pki.h"
#include "core/registry.h"
#include "core/store/store.h"

#include "scratch_store.h"

#define DIAG_MAX 2000
#define CHUNK 500

static const char insert_sql[] =
	"INSERT INTO certificates (id, pem, ca_id, status, subject, serial, not_before, "
	"not_after, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

static void die(const char *what, const struct iotp_err *err)
{
	fprintf(stderr, "bench_issue: %s: %s\n", what, err != NULL ? err->msg : "failed");
	exit(1);
}

static double secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* One P-256 CSR in PEM with its own key; malloc'ed. */
static char *make_csr(int i)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", (char *)"P-256");
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	BIO *bio = BIO_new(BIO_s_mem());
	char cn[64], *data = NULL, *out;
	long n;

	snprintf(cn, sizeof(cn), "bench-device-%06d", i);
	if (key == NULL || req == NULL || name == NULL || bio == NULL ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Acme",
	                               -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
	                               -1, 0) != 1 ||
	    X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0 || PEM_write_bio_X509_REQ(bio, req) != 1)
		die("make CSR", NULL);
	n = BIO_get_mem_data(bio, &data);
	out = malloc((size_t)n + 1);
	if (out == NULL)
		die("out of memory", NULL);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(bio);
	X509_NAME_free(name);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return out;
}

/* Sign+verify pairs with one key for about `seconds`, added to *pairs and
 * *ns. */
static void bound_slice(EVP_PKEY *key, double seconds, long *pairs, uint64_t *ns)
{
	static const unsigned char msg[32] = "iotprov issuance bound message!";
	unsigned char sig[128];
	uint64_t start = util_mono_ns(), now = start;

	while (secs(now - start) < seconds) {
		for (int k = 0; k < 20; k++) {
			EVP_MD_CTX *s = EVP_MD_CTX_new(), *v = EVP_MD_CTX_new();
			size_t siglen = sizeof(sig);

			if (s == NULL || v == NULL ||
			    EVP_DigestSignInit_ex(s, NULL, "SHA256", NULL, NULL, key, NULL) != 1 ||
			    EVP_DigestSign(s, sig, &siglen, msg, sizeof(msg)) != 1 ||
			    EVP_DigestVerifyInit_ex(v, NULL, "SHA256", NULL, NULL, key, NULL) != 1 ||
			    EVP_DigestVerify(v, sig, siglen, msg, sizeof(msg)) != 1)
				die("sign/verify", NULL);
			EVP_MD_CTX_free(s);
			EVP_MD_CTX_free(v);
			(*pairs)++;
		}
		now = util_mono_ns();
	}
	*ns += now - start;
}

static void parse_args(int argc, char **argv, int *count, int *batch, double *bound_s,
                       const char **store)
{
	for (int i = 1; i < argc; i++) {
		int64_t v;

		if (i + 1 < argc && strcmp(argv[i], "--count") == 0 &&
		    util_parse_int64(argv[i + 1], 1, 10000000, &v) == IOTP_OK) {
			*count = (int)v;
			i++;
		} else if (i + 1 < argc && strcmp(argv[i], "--batch") == 0 &&
		           util_parse_int64(argv[i + 1], 1, 1000000, &v) == IOTP_OK) {
			*batch = (int)v;
			i++;
		} else if (i + 1 < argc && strcmp(argv[i], "--bound-seconds") == 0 &&
		           util_parse_int64(argv[i + 1], 1, 600, &v) == IOTP_OK) {
			*bound_s = (double)v;
			i++;
		} else if (i + 1 < argc && strcmp(argv[i], "--store") == 0 &&
		           (strcmp(argv[i + 1], "sqlite") == 0 || scratch_is_pg(argv[i + 1]))) {
			*store = scratch_is_pg(argv[i + 1]) ? argv[i + 1] : NULL;
			i++;
		} else {
			fprintf(stderr, "usage: bench_issue [--count N] [--batch B] "
			                "[--bound-seconds S] [--store sqlite|postgresql://...]\n");
			exit(2);
		}
	}
}

enum stage { ST_PARSE, ST_ISSUE, ST_PEM, ST_ID, ST_FIELDS, ST_STORE, ST_N };
static const char *const stage_names[2][ST_N] = {
	{"pki_csr_parse", "pki_cert_issue", "PEM encode", "cert id (SHA-256)", "row fields",
	 "store insert+commit"},
	{"-", "pki_csr_issue", "PEM encode", "cert id (SHA-256)", "row fields",
	 "store insert+commit"},
};

enum path { PATH_TWO_CALLS, PATH_ONE_CALL, PATH_REGISTRY, PATH_N };

struct run {
	const struct pki_ca *ca;
	struct store *st;
	struct iotp_core *core; /* PATH_REGISTRY: owns st */
	const char *ca_id;
	char **csrs;
	int count, batch;
	enum path path;
	int one_call; /* pki_csr_issue instead of pki_csr_parse + pki_cert_issue */
	uint64_t stage_ns[ST_N];
	uint64_t total_ns;
};

/* The registry path: CSRs [from, to) through registry_cert_create_from_csr,
 * one transaction (certificate row + event) per certificate. */
static void registry_range(struct run *r, int from, int to)
{
	struct iotp_err err;
	uint64_t t_start = util_mono_ns();

	for (int i = from; i < to; i++) {
		struct registry_cert_created out = {0};

		if (registry_cert_create_from_csr(r->core, "bench", r->csrs[i], strlen(r->csrs[i]),
		                                  REGISTRY_CERT_ACTIVE, &out, &err) != IOTP_OK)
			die("registry_cert_create_from_csr", &err);
		registry_cert_created_cleanup(&out);
	}
	r->total_ns += util_mono_ns() - t_start;
}

/* The timed loop: CSRs [from, to) to stored certificates. */
static void issue_range(struct run *r, int from, int to)
{
	struct pki_issue_opts opts = {.days = 365, .not_before_skew = 300};
	struct iotp_err err;
	uint64_t t_start = util_mono_ns();

	for (int i = from; i < to; i++) {
		X509_REQ *req = NULL;
		X509 *cert = NULL;
		char id[PKI_CERT_ID_LEN + 1], *pem = NULL, *serial = NULL, *subject = NULL;
		int64_t nb = 0, na = 0, now;
		uint64_t t0, t1, t2, t3, t4, t5, t6;
		size_t len = strlen(r->csrs[i]);

		t0 = util_mono_ns();
		if (r->one_call) {
			t1 = t0;
			if (pki_csr_issue(r->ca, r->csrs[i], len, &opts, &cert, &err) != IOTP_OK)
				die("pki_csr_issue", &err);
		} else {
			if (pki_csr_parse(r->csrs[i], len, &req, &err) != IOTP_OK)
				die("pki_csr_parse", &err);
			t1 = util_mono_ns();
			if (pki_cert_issue(r->ca, req, &opts, &cert, &err) != IOTP_OK)
				die("pki_cert_issue", &err);
		}
		t2 = util_mono_ns();
		if (pki_cert_to_pem(cert, &pem, &err) != IOTP_OK)
			die("pki_cert_to_pem", &err);
		t3 = util_mono_ns();
		if (pki_cert_id(cert, id, &err) != IOTP_OK)
			die("pki_cert_id", &err);
		t4 = util_mono_ns();
		if (pki_cert_validity(cert, &nb, &na, &err) != IOTP_OK ||
		    pki_cert_serial_hex(cert, &serial, &err) != IOTP_OK ||
		    pki_cert_subject_string(cert, 0, &subject, &err) != IOTP_OK)
			die("row fields", &err);
		t5 = util_mono_ns();
		now = util_now();
		{
			struct store_val p[] = {
				SV_TEXT(id),      SV_TEXT(pem),    SV_TEXT(r->ca_id), SV_TEXT("ACTIVE"),
				SV_TEXT(subject), SV_TEXT(serial), SV_INT(nb),        SV_INT(na),
				SV_INT(now),      SV_INT(now),
			};

			if (i % r->batch == 0 && store_begin(r->st, &err) != IOTP_OK)
				die("store_begin", &err);
			if (store_exec(r->st, insert_sql, p, 10, NULL, NULL, &err) != IOTP_OK)
				die("insert certificate", &err);
			if ((i % r->batch == r->batch - 1 || i == r->count - 1) &&
			    store_commit(r->st, &err) != IOTP_OK)
				die("store_commit", &err);
		}
		t6 = util_mono_ns();
		r->stage_ns[ST_PARSE] += t1 - t0;
		r->stage_ns[ST_ISSUE] += t2 - t1;
		r->stage_ns[ST_PEM] += t3 - t2;
		r->stage_ns[ST_ID] += t4 - t3;
		r->stage_ns[ST_FIELDS] += t5 - t4;
		r->stage_ns[ST_STORE] += t6 - t5;
		free(pem);
		free(serial);
		free(subject);
		X509_free(cert);
		X509_REQ_free(req);
	}
	r->total_ns += util_mono_ns() - t_start;
}

static void report(const struct run *r, double bound)
{
	double rate = r->count / secs(r->total_ns);

	if (r->path == PATH_REGISTRY) {
		printf("issue: %.0f certs/s (registry_cert_create_from_csr: CSR parse+verify+sign+"
		       "store+event, one commit each)   bound: %.0f sign+verify/s (OpenSSL P-256, 1 "
		       "thread)   ratio %.2f\n",
		       rate, bound, rate / bound);
		printf("  path: what iotprovd runs for CreateCertificateFromCsr; %.1f us per "
		       "certificate (bound pair %.1f us)\n",
		       secs(r->total_ns) / r->count * 1e6, 1e6 / bound);
		printf("RESULT name=issue_registry value=%.0f unit=certs/s bound=%.0f bound_name=\"P-256 "
		       "sign+verify pairs, one thread\" ratio=%.3f\n", rate, bound, rate / bound);
		return;
	}
	printf("issue: %.0f certs/s (CSR parse+verify+sign+PEM+id+store)   bound: %.0f "
	       "sign+verify/s (OpenSSL P-256, 1 thread)   ratio %.2f\n",
	       rate, bound, rate / bound);
	printf("RESULT name=issue_%s value=%.0f unit=certs/s bound=%.0f bound_name=\"P-256 "
	       "sign+verify pairs, one thread\" ratio=%.3f\n", r->one_call ? "one_call" : "two_calls",
	       rate, bound, rate / bound);
	printf("  path: %s; %.1f us per certificate (bound pair %.1f us):\n",
	       r->one_call ? "pki_csr_issue (one call)" : "pki_csr_parse + pki_cert_issue",
	       secs(r->total_ns) / r->count * 1e6, 1e6 / bound);
	for (int s = 0; s < ST_N; s++)
		if (!(r->one_call && s == ST_PARSE))
			printf("    %-24s %7.1f us\n", stage_names[r->one_call][s],
			       (double)r->stage_ns[s] / r->count / 1e3);
}

/* A fresh store holding the issuing CA's row: a SQLite file in dir, or a
 * scratch schema (its name in schema) of the PostgreSQL database pg when
 * not NULL; *ca_id gets the CA's id. Each path gets its own, so both insert
 * into tables of the same size. */
static struct store *open_store(const char *dir, const char *pg, int k, const struct pki_ca *ca,
                                char ca_id[PKI_CERT_ID_LEN + 1], char schema[64])
{
	char url[2048], *pem = NULL, *subject = NULL;
	int64_t nb = 0, na = 0, now = util_now();
	struct iotp_err err;
	struct store *st = NULL;

	schema[0] = '\0';
	if (pg == NULL)
		snprintf(url, sizeof(url), "sqlite:%s/bench-%d.db", dir, k);
	else if (scratch_create(pg, "bench_issue", k, url, sizeof(url), schema, 64) != 0)
		die("--store: cannot create a scratch schema", NULL);
	if (store_open(url, &st, &err) != IOTP_OK)
		die("store_open", &err);
	if (pki_cert_id(ca->cert, ca_id, &err) != IOTP_OK ||
	    pki_cert_to_pem(ca->cert, &pem, &err) != IOTP_OK ||
	    pki_cert_subject_string(ca->cert, 0, &subject, &err) != IOTP_OK ||
	    pki_cert_validity(ca->cert, &nb, &na, &err) != IOTP_OK)
		die("CA fields", &err);
	{
		struct store_val p[] = {SV_TEXT(ca_id),    SV_TEXT(pem),       SV_TEXT(subject),
		                        SV_TEXT("ACTIVE"), SV_TEXT("ISSUING"), SV_INT(nb),
		                        SV_INT(na),        SV_INT(now),        SV_INT(now)};

		if (store_exec(st, "INSERT INTO cas (id, pem, subject, status, origin, not_before, "
		                   "not_after, created, updated) VALUES (?,?,?,?,?,?,?,?,?)",
		               p, 9, NULL, NULL, &err) != IOTP_OK)
			die("insert CA", &err);
	}
	free(pem);
	free(subject);
	return st;
}

static void remove_store(const char *dir, int k)
{
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	char f[256];

	for (size_t i = 0; i < 3; i++) {
		snprintf(f, sizeof(f), "%s/bench-%d.db%s", dir, k, suffixes[i]);
		unlink(f);
	}
}

int main(int argc, char **argv)
{
	int count = 10000, batch = 100;
	double bound_s = 2.0, bound;
	const char *pg = NULL;
	char schemas[PATH_N][64];
	long bound_pairs = 0;
	uint64_t bound_ns = 0;
	struct pki_ca root = {0}, ca = {0};
	struct run runs[PATH_N];
	struct iotp_err err;
	struct store *st[PATH_N];
	struct iotp_conf conf;
	struct iotp_core core;
	char tmpl[] = "/tmp/bench-issue-XXXXXX", ca_id[PKI_CERT_ID_LEN + 1];
	char **csrs;

	parse_args(argc, argv, &count, &batch, &bound_s, &pg);
	iotp_log_set_level(IOTP_LOG_WARN);

	/* Untimed set-up. */
	if (pki_key_generate(PKI_KEY_EC_P256, &root.key, &err) != IOTP_OK ||
	    pki_ca_create_root(root.key, "Bench Root CA", 3650, &root.cert, &err) != IOTP_OK ||
	    pki_key_generate(PKI_KEY_EC_P256, &ca.key, &err) != IOTP_OK ||
	    pki_ca_create_issuing(&root, ca.key, "Bench Issuing CA", 1825, &ca.cert, &err) !=
	            IOTP_OK)
		die("CA", &err);
	if (mkdtemp(tmpl) == NULL)
		die("mkdtemp", NULL);
	for (int k = 0; k < PATH_N; k++)
		st[k] = open_store(tmpl, pg, k, &ca, ca_id, schemas[k]);
	/* The registry path's core: that store and the issuing CA (its own
	 * references: core_close releases them). */
	conf_init(&conf, tmpl);
	core_init_with_store(&core, &conf, st[PATH_REGISTRY]);
	if (X509_up_ref(ca.cert) != 1 || EVP_PKEY_up_ref(ca.key) != 1)
		die("CA references", NULL);
	core.issuing.cert = ca.cert;
	core.issuing.key = ca.key;
	fprintf(stderr, "bench_issue: generating %d P-256 CSRs (untimed)...\n", count);
	csrs = calloc((size_t)count, sizeof(*csrs));
	if (csrs == NULL)
		die("out of memory", NULL);
	for (int i = 0; i < count; i++)
		csrs[i] = make_csr(i);

	/* Timed, interleaved in chunks (the three paths, a slice of the bound,
	 * again) so that all of them see the same load from whatever else runs
	 * on the machine. */
	{
		int nchunks = (count + CHUNK - 1) / CHUNK;
		double slice = 2 * bound_s / nchunks;

		for (int k = 0; k < PATH_N; k++)
			runs[k] = (struct run){.ca = &ca, .st = st[k], .core = &core, .ca_id = ca_id,
			                       .csrs = csrs, .count = count, .batch = batch,
			                       .path = (enum path)k, .one_call = k == PATH_ONE_CALL};
		for (int from = 0; from < count; from += CHUNK) {
			int to = from + CHUNK < count ? from + CHUNK : count;

			/* Each path goes first in every third chunk: the first to
			 * touch a chunk's CSRs pays for the cache misses. */
			for (int k = 0; k < PATH_N; k++) {
				struct run *r = &runs[(from / CHUNK + k) % PATH_N];

				if (r->path == PATH_REGISTRY)
					registry_range(r, from, to);
				else
					issue_range(r, from, to);
			}
			bound_slice(ca.key, slice, &bound_pairs, &bound_ns);
		}
	}
	/* Every path stored every certificate (the registry path's CA row was
	 * inserted by open_store, its certificates carry no ca_id). */
	for (int k = 0; k < PATH_N; k++) {
		int64_t rows = 0;

		if (store_query_int(st[k], "SELECT count(*) FROM certificates", NULL, 0, &rows,
		                    &err) != IOTP_OK || rows != count)
			die("row count", &err);
	}
	bound = (double)bound_pairs / secs(bound_ns);

	printf("%d P-256 CSRs per path, each path into its own store (%s; the PKI paths "
	       "commit every %d rows); paths and bound interleaved in chunks of %d (bound: %ld "
	       "pairs in %.1f s)\n",
	       count, pg != NULL ? "PostgreSQL" : "SQLite WAL, synchronous=NORMAL", batch, CHUNK,
	       bound_pairs, secs(bound_ns));
	report(&runs[PATH_REGISTRY], bound);
	report(&runs[PATH_TWO_CALLS], bound);
	report(&runs[PATH_ONE_CALL], bound);

	/* Diagnostic split of pki_csr_parse. */
	{
		int n = count < DIAG_MAX ? count : DIAG_MAX;
		uint64_t decode_ns = 0, verify_ns = 0;

		for (int i = 0; i < n; i++) {
			X509_REQ *req = NULL;
			BIO *bio = BIO_new_mem_buf(csrs[i], -1);
			uint64_t t0 = util_mono_ns(), t1, t2;

			req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
			t1 = util_mono_ns();
			if (req == NULL || X509_REQ_verify(req, X509_REQ_get0_pubkey(req)) != 1)
				die("diagnostic verify", NULL);
			t2 = util_mono_ns();
			decode_ns += t1 - t0;
			verify_ns += t2 - t1;
			X509_REQ_free(req);
			BIO_free(bio);
		}
		printf("  pki_csr_parse split (%d CSRs): PEM+DER decode incl. OpenSSL 3.0 key "
		       "decoder %.1f us, X509_REQ_verify %.1f us\n",
		       n, (double)decode_ns / n / 1e3, (double)verify_ns / n / 1e3);
	}

	for (int i = 0; i < count; i++)
		free(csrs[i]);
	free(csrs);
	core_close(&core); /* closes st[PATH_REGISTRY] */
	for (int k = 0; k < PATH_N; k++) {
		if (k != PATH_REGISTRY)
			store_close(st[k]);
		remove_store(tmpl, k);
		if (pg != NULL)
			scratch_drop(pg, schemas[k]);
	}
	rmdir(tmpl);
	pki_ca_cleanup(&ca);
	pki_ca_cleanup(&root);
	return 0;
}
