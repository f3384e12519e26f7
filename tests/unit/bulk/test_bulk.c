/*
 * Unit tests of bulk registration: the manifest formats (jsonl, csv,
 * certs-pem) through the same reader a task uses, and tasks end to end on a
 * real SQLite store with the real provisioning engine: every good line
 * becomes a thing, every bad line an ERRORS report line with its number, a
 * run abandoned between batches resumes with nothing applied twice or
 * skipped, a stopped task stops, and inputs outside the import directory
 * are refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/util.h"
#include "core/bulk.h"
#include "core/core.h"
#include "core/manifest.h"
#include "core/pki.h"
#include "core/registry.h"

#define ACTOR "key:AKIATESTBULK"

static const char tmpl_body[] =
	"{\"Parameters\":{\"ThingName\":{\"Type\":\"String\"},"
	"\"Serial\":{\"Type\":\"String\",\"Default\":\"none\"}},"
	"\"Resources\":{\"thing\":{\"Type\":\"AWS::IoT::Thing\",\"Properties\":{"
	"\"ThingName\":{\"Ref\":\"ThingName\"},"
	"\"AttributePayload\":{\"serial\":{\"Ref\":\"Serial\"}}}}}}";

struct fx {
	char dir[256];
	struct iotp_conf conf;
	struct iotp_core core;
	struct iotp_err err;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store *st = NULL;
	char url[512], imp[512];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/iotp-bulk-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	conf_init(&f->conf, f->dir);
	snprintf(url, sizeof(url), "sqlite:%s/store.db", f->dir);
	assert_int_equal(store_open(url, &st, &f->err), IOTP_OK);
	core_init_with_store(&f->core, &f->conf, st);
	snprintf(imp, sizeof(imp), "%s/import", f->dir);
	assert_int_equal(mkdir(imp, 0700), 0);
	snprintf(imp, sizeof(imp), "%s/import/bkt", f->dir);
	assert_int_equal(mkdir(imp, 0700), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[600];

	core_close(&f->core);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void write_input(struct fx *f, const char *key, const char *text)
{
	char path[600];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/import/bkt/%s", f->dir, key);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
	fclose(fp);
}

/* ------------------------------------------------------------------ */
/* Manifest formats                                                    */

struct collected {
	int n;
	int64_t lines[64];
	int bad[64];
	char reasons[64][MANIFEST_REASON_MAX];
	char first_value[64][256]; /* value of the member named `member` */
	const char *member;
	int64_t end_offsets[64];
};

static void collect(void *ud, const struct manifest_record *rec)
{
	struct collected *c = ud;
	const json_t *v;

	if (c->n >= 64)
		return;
	c->lines[c->n] = rec->line;
	c->bad[c->n] = rec->step == MANIFEST_BAD;
	c->end_offsets[c->n] = rec->end_offset;
	util_strlcpy(c->reasons[c->n], rec->reason, sizeof(c->reasons[0]));
	c->first_value[c->n][0] = '\0';
	if (rec->params != NULL && c->member != NULL &&
	    (v = json_object_get(rec->params, c->member)) != NULL)
		util_strlcpy(c->first_value[c->n], json_string_value(v), sizeof(c->first_value[0]));
	c->n++;
}

static void test_jsonl_lines(void **state)
{
	static const char text[] = "{\"ThingName\":\"a\"}\n"
	                           "\n"
	                           "{\"ThingName\":\"b\"}\r\n"
	                           "not json\n"
	                           "[1,2]\n"
	                           "{\"ThingName\":5}\n"
	                           "{\"ThingName\":\"c\"}"; /* no final newline */
	struct collected c;
	struct iotp_err err;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.member = "ThingName";
	assert_int_equal(manifest_parse_buffer(&manifest_jsonl, text, sizeof(text) - 1, collect, &c,
	                                       &err),
	                 IOTP_OK);
	assert_int_equal(c.n, 6);
	assert_int_equal(c.lines[0], 1);
	assert_string_equal(c.first_value[0], "a");
	assert_int_equal(c.lines[1], 3);
	assert_string_equal(c.first_value[1], "b");
	assert_int_equal(c.lines[2], 4);
	assert_true(c.bad[2]);
	assert_non_null(strstr(c.reasons[2], "not a JSON object"));
	assert_int_equal(c.lines[3], 5);
	assert_true(c.bad[3]);
	assert_int_equal(c.lines[4], 6);
	assert_true(c.bad[4]);
	assert_non_null(strstr(c.reasons[4], "'ThingName' must be a string"));
	assert_int_equal(c.lines[5], 7);
	assert_string_equal(c.first_value[5], "c");
	assert_int_equal(c.end_offsets[5], (int64_t)sizeof(text) - 1);
}

static void test_csv_quoting(void **state)
{
	static const char text[] = "ThingName,Serial\r\n"
	                           "pump-1,\"S,1\"\r\n"
	                           "\"pump-2\",\"multi\nline \"\"quoted\"\"\"\n"
	                           "pump-3\n"
	                           "pump-4,x\"y\n"
	                           "pump-5,\n";
	struct collected c;
	struct iotp_err err;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.member = "Serial";
	assert_int_equal(manifest_parse_buffer(&manifest_csv, text, sizeof(text) - 1, collect, &c,
	                                       &err),
	                 IOTP_OK);
	assert_int_equal(c.n, 5);
	assert_int_equal(c.lines[0], 2);
	assert_string_equal(c.first_value[0], "S,1");
	assert_int_equal(c.lines[1], 3);
	assert_string_equal(c.first_value[1], "multi\nline \"quoted\"");
	assert_int_equal(c.lines[2], 5); /* the quoted line break counts */
	assert_true(c.bad[2]);
	assert_non_null(strstr(c.reasons[2], "1 fields, the header has 2"));
	assert_int_equal(c.lines[3], 6);
	assert_true(c.bad[3]);
	assert_non_null(strstr(c.reasons[3], "stray quote"));
	assert_int_equal(c.lines[4], 7);
	assert_false(c.bad[4]);
	assert_string_equal(c.first_value[4], ""); /* empty cell: no parameter */
}

static void test_csv_bad_header(void **state)
{
	struct collected c;
	struct iotp_err err;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(manifest_parse_buffer(&manifest_csv, "a,a\n1,2\n", 8, collect, &c, &err),
	                 IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "appears twice"));
	assert_int_equal(manifest_parse_buffer(&manifest_csv, "a,,b\n", 5, collect, &c, &err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(c.n, 0);
}

static char *issue_pem(EVP_PKEY **keep_key, const char *cn)
{
	struct pki_ca ca = {0};
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	char *pem = NULL;
	struct iotp_err err;

	assert_int_equal(pki_key_generate(PKI_KEY_EC_P256, &key, &err), IOTP_OK);
	assert_int_equal(pki_ca_create_root(key, cn, 30, &x, &err), IOTP_OK);
	assert_int_equal(pki_cert_to_pem(x, &pem, &err), IOTP_OK);
	ca.cert = x;
	ca.key = key;
	if (keep_key != NULL) {
		*keep_key = key;
		ca.key = NULL;
	}
	pki_ca_cleanup(&ca);
	return pem;
}

static void test_certs_pem(void **state)
{
	struct collected c;
	struct iotp_err err;
	struct buf b;
	char *p1 = issue_pem(NULL, "dev-one"), *p2 = issue_pem(NULL, "dev-two");
	X509 *x = NULL;
	char id[PKI_CERT_ID_LEN + 1];

	(void)state;
	buf_init(&b, 0);
	buf_puts(&b, "# vendor manifest\nsubject=CN = dev-one\n");
	buf_puts(&b, p1);
	buf_puts(&b, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
	buf_puts(&b, p2);
	memset(&c, 0, sizeof(c));
	c.member = "CommonName";
	assert_int_equal(manifest_parse_buffer(&manifest_certs_pem, b.data, b.len, collect, &c, &err),
	                 IOTP_OK);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.lines[0], 3);
	assert_string_equal(c.first_value[0], "dev-one");
	assert_true(c.bad[1]);
	assert_string_equal(c.first_value[2], "dev-two");
	/* CertificateId is the registry's id of that certificate. */
	memset(&c, 0, sizeof(c));
	c.member = "CertificateId";
	assert_int_equal(manifest_parse_buffer(&manifest_certs_pem, p2, strlen(p2), collect, &c, &err),
	                 IOTP_OK);
	assert_int_equal(pki_cert_parse(p2, strlen(p2), &x, &err), IOTP_OK);
	assert_int_equal(pki_cert_id(x, id, &err), IOTP_OK);
	assert_string_equal(c.first_value[0], id);
	X509_free(x);
	free(p1);
	free(p2);
	buf_cleanup(&b);
}

static void test_reader_resume_and_oversized(void **state)
{
	struct fx *f = *state;
	struct manifest_file *mf = NULL;
	struct manifest_record rec;
	struct buf b;
	char path[600];
	int done = 0;
	int64_t off2 = 0, line2 = 0;

	buf_init(&b, 0);
	buf_puts(&b, "{\"ThingName\":\"r1\"}\n{\"ThingName\":\"r2\"}\n{\"x\":\"");
	for (int i = 0; i < MANIFEST_RECORD_MAX + 100; i++)
		buf_append(&b, "a", 1);
	buf_puts(&b, "\"}\n{\"ThingName\":\"r4\"}\n");
	write_input(f, "big.jsonl", b.data);
	buf_cleanup(&b);
	snprintf(path, sizeof(path), "%s/import/bkt/big.jsonl", f->dir);

	assert_int_equal(manifest_file_open(path, &manifest_jsonl, 0, 0, &mf, &f->err), IOTP_OK);
	assert_int_equal(manifest_file_next(mf, &rec, &done, &f->err), IOTP_OK);
	json_decref(rec.params);
	assert_int_equal(manifest_file_next(mf, &rec, &done, &f->err), IOTP_OK);
	assert_string_equal(json_string_value(json_object_get(rec.params, "ThingName")), "r2");
	json_decref(rec.params);
	off2 = rec.end_offset;
	line2 = rec.end_line;
	manifest_file_close(mf);

	/* Reopened at the boundary after r2: the oversized line, then r4. */
	assert_int_equal(manifest_file_open(path, &manifest_jsonl, off2, line2, &mf, &f->err),
	                 IOTP_OK);
	assert_int_equal(manifest_file_next(mf, &rec, &done, &f->err), IOTP_OK);
	assert_int_equal(rec.step, MANIFEST_BAD);
	assert_int_equal(rec.line, 3);
	assert_non_null(strstr(rec.reason, "longer than"));
	assert_int_equal(manifest_file_next(mf, &rec, &done, &f->err), IOTP_OK);
	assert_int_equal(rec.step, MANIFEST_RECORD);
	assert_int_equal(rec.line, 4);
	assert_string_equal(json_string_value(json_object_get(rec.params, "ThingName")), "r4");
	json_decref(rec.params);
	assert_int_equal(manifest_file_next(mf, &rec, &done, &f->err), IOTP_OK);
	assert_int_equal(done, 1);
	manifest_file_close(mf);
	/* An offset past the end is refused. */
	assert_int_equal(manifest_file_open(path, &manifest_jsonl, 1 << 30, 0, &mf, &f->err),
	                 IOTP_ERR_INVALID);
}

/* ------------------------------------------------------------------ */
/* Tasks                                                               */

static int64_t count(struct fx *f, const char *sql)
{
	int64_t n = -1;

	assert_int_equal(store_query_int(f->core.store, sql, NULL, 0, &n, &f->err), IOTP_OK);
	return n;
}

/* 25 lines: 22 good, line 5 not JSON, line 11 a bad thing name, line 17
 * blank (skipped), line 20 repeats line 1 (idempotent: no second thing). */
static void make_input(struct fx *f, const char *key)
{
	struct buf b;

	buf_init(&b, 0);
	for (int i = 1; i <= 25; i++) {
		if (i == 5)
			buf_puts(&b, "{broken\n");
		else if (i == 11)
			buf_puts(&b, "{\"ThingName\":\"bad name!\"}\n");
		else if (i == 17)
			buf_puts(&b, "\n");
		else if (i == 20)
			buf_puts(&b, "{\"ThingName\":\"dev-1\",\"Serial\":\"s1\"}\n");
		else
			buf_printf(&b, "{\"ThingName\":\"dev-%d\",\"Serial\":\"s%d\"}\n", i, i);
	}
	write_input(f, key, b.data);
	buf_cleanup(&b);
}

static void start(struct fx *f, const char *key, char id[BULK_TASK_ID_MAX + 1])
{
	struct bulk_start in = {tmpl_body, "bkt", key, NULL, NULL};

	assert_int_equal(bulk_task_start(&f->core, ACTOR, &in, id, &f->err), IOTP_OK);
}

static void test_task_runs_to_completion(void **state)
{
	struct fx *f = *state;
	char id[BULK_TASK_ID_MAX + 1];
	struct bulk_run *run = NULL;
	struct bulk_task t;
	struct registry_thing th;
	struct buf b;
	int finished = 0, steps = 0;
	int64_t n = 0;

	memset(&t, 0, sizeof(t));
	memset(&th, 0, sizeof(th));
	make_input(f, "devices.jsonl");
	start(f, "devices.jsonl", id);
	assert_int_equal(bulk_task_describe(&f->core, id, &t, &f->err), IOTP_OK);
	assert_string_equal(t.status, "InProgress");
	assert_int_equal(t.percentage, 0);
	bulk_task_cleanup(&t);

	assert_int_equal(bulk_run_open(&f->core, id, &run, &f->err), IOTP_OK);
	while (!finished) {
		assert_int_equal(bulk_run_step(run, 7, &finished, &f->err), IOTP_OK);
		steps++;
	}
	bulk_run_close(run);
	assert_true(steps >= 4); /* 7 records a batch, or fewer when a batch runs long */

	assert_int_equal(bulk_task_describe(&f->core, id, &t, &f->err), IOTP_OK);
	assert_string_equal(t.status, "Completed");
	assert_int_equal(t.success_count, 22);
	assert_int_equal(t.failure_count, 2);
	assert_int_equal(t.percentage, 100);
	assert_int_equal(t.cursor_line, 25);
	bulk_task_cleanup(&t);
	/* 21 distinct things (line 20 repeats line 1). */
	assert_int_equal(count(f, "SELECT COUNT(*) FROM things"), 21);
	assert_int_equal(registry_thing_describe(&f->core, "dev-24", &th, &f->err), IOTP_OK);
	assert_string_equal(json_string_value(json_object_get(th.attributes, "serial")), "s24");
	registry_thing_cleanup(&th);

	assert_int_equal(bulk_report_count(&f->core, id, "ERRORS", &n, &f->err), IOTP_OK);
	assert_int_equal(n, 2);
	assert_int_equal(bulk_report_count(&f->core, id, "RESULTS", &n, &f->err), IOTP_OK);
	assert_int_equal(n, 22);
	buf_init(&b, 0);
	assert_int_equal(bulk_report_part(&f->core, id, "ERRORS", 0, &b, &f->err), IOTP_OK);
	assert_non_null(strstr(b.data, "\"lineNumber\":5,"));
	assert_non_null(strstr(b.data, "\"lineNumber\":11,"));
	assert_non_null(strstr(b.data, "bad name!"));
	buf_cleanup(&b);
	buf_init(&b, 0);
	assert_int_equal(bulk_report_part(&f->core, id, "RESULTS", 0, &b, &f->err), IOTP_OK);
	assert_non_null(strstr(b.data, "{\"lineNumber\":20,\"thingName\":\"dev-1\""));
	assert_non_null(strstr(b.data, "\"thingCreated\":false"));
	buf_cleanup(&b);
	assert_int_equal(bulk_report_count(&f->core, id, "OTHER", &n, &f->err), IOTP_ERR_INVALID);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM events WHERE action = 'task.complete'"), 1);
}

/* A runner that goes away between batches (the process died) leaves the
 * store at a batch boundary; a new runner finishes with nothing twice. */
static void test_task_resumes_exactly(void **state)
{
	struct fx *f = *state;
	char id[BULK_TASK_ID_MAX + 1];
	struct bulk_run *run = NULL;
	struct bulk_task t;
	int finished = 0;

	memset(&t, 0, sizeof(t));
	make_input(f, "resume.jsonl");
	start(f, "resume.jsonl", id);
	assert_int_equal(bulk_run_open(&f->core, id, &run, &f->err), IOTP_OK);
	assert_int_equal(bulk_run_step(run, 9, &finished, &f->err), IOTP_OK);
	assert_int_equal(finished, 0);
	/* Half of a batch read but never committed: as if killed mid-batch. */
	assert_int_equal(store_begin(f->core.store, &f->err), IOTP_OK);
	store_rollback(f->core.store);
	bulk_run_close(run);
	assert_int_equal(bulk_task_describe(&f->core, id, &t, &f->err), IOTP_OK);
	assert_int_equal(t.success_count, 8); /* 9 lines, line 5 bad */
	assert_int_equal(t.failure_count, 1);
	assert_true(t.percentage > 0 && t.percentage < 100);
	bulk_task_cleanup(&t);

	assert_int_equal(bulk_run_open(&f->core, id, &run, &f->err), IOTP_OK);
	while (!finished)
		assert_int_equal(bulk_run_step(run, 50, &finished, &f->err), IOTP_OK);
	bulk_run_close(run);
	assert_int_equal(bulk_task_describe(&f->core, id, &t, &f->err), IOTP_OK);
	assert_int_equal(t.success_count, 22);
	assert_int_equal(t.failure_count, 2);
	bulk_task_cleanup(&t);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM things"), 21);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM bulk_reports"), 24);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM events WHERE action = 'thing.create'"), 21);
}

/* A batch that fails in the store (here its report table is gone) is
 * rolled back with the records the worker had read ahead; the run rewinds
 * to the stored cursor and, once the store is back, ends with every line
 * applied exactly once. */
static void test_failed_batch_rewinds(void **state)
{
	struct fx *f = *state;
	char id[BULK_TASK_ID_MAX + 1];
	struct bulk_run *run = NULL;
	struct bulk_task t;
	int finished = 0, failures = 0;

	memset(&t, 0, sizeof(t));
	make_input(f, "fail.jsonl");
	start(f, "fail.jsonl", id);
	assert_int_equal(bulk_run_open(&f->core, id, &run, &f->err), IOTP_OK);
	assert_int_equal(bulk_run_step(run, 4, &finished, &f->err), IOTP_OK);
	assert_int_equal(store_exec(f->core.store, "ALTER TABLE bulk_reports RENAME TO gone", NULL,
	                            0, NULL, NULL, &f->err), IOTP_OK);
	for (int i = 0; i < 2; i++) {
		if (bulk_run_step(run, 4, &finished, &f->err) != IOTP_OK)
			failures++;
		assert_int_equal(finished, 0);
	}
	assert_int_equal(failures, 2);
	assert_int_equal(bulk_task_describe(&f->core, id, &t, &f->err), IOTP_OK);
	assert_int_equal(t.cursor_line, 4);
	bulk_task_cleanup(&t);
	assert_int_equal(store_exec(f->core.store, "ALTER TABLE gone RENAME TO bulk_reports", NULL,
	                            0, NULL, NULL, &f->err), IOTP_OK);
	while (!finished)
		assert_int_equal(bulk_run_step(run, 4, &finished, &f->err), IOTP_OK);
	bulk_run_close(run);
	assert_int_equal(bulk_task_describe(&f->core, id, &t, &f->err), IOTP_OK);
	assert_string_equal(t.status, "Completed");
	assert_int_equal(t.success_count, 22);
	assert_int_equal(t.failure_count, 2);
	bulk_task_cleanup(&t);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM things"), 21);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM bulk_reports"), 24);
	assert_int_equal(count(f, "SELECT COUNT(DISTINCT line) FROM bulk_reports"), 24);
}

static void test_task_stop(void **state)
{
	struct fx *f = *state;
	char id[BULK_TASK_ID_MAX + 1];
	struct bulk_run *run = NULL;
	struct bulk_task t;
	int finished = 0;

	memset(&t, 0, sizeof(t));
	make_input(f, "stop.jsonl");
	start(f, "stop.jsonl", id);
	assert_int_equal(bulk_run_open(&f->core, id, &run, &f->err), IOTP_OK);
	assert_int_equal(bulk_run_step(run, 3, &finished, &f->err), IOTP_OK);
	assert_int_equal(bulk_task_stop(&f->core, ACTOR, id, &f->err), IOTP_OK);
	assert_int_equal(bulk_run_step(run, 3, &finished, &f->err), IOTP_OK);
	assert_int_equal(finished, 1);
	bulk_run_close(run);
	assert_int_equal(bulk_task_describe(&f->core, id, &t, &f->err), IOTP_OK);
	assert_string_equal(t.status, "Cancelled");
	assert_int_equal(t.success_count, 3);
	bulk_task_cleanup(&t);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM things"), 3);
	/* Stopping again changes nothing; a stopped task cannot be run. */
	assert_int_equal(bulk_task_stop(&f->core, ACTOR, id, &f->err), IOTP_OK);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM events WHERE action = 'task.stop'"), 1);
	assert_int_equal(bulk_run_open(&f->core, id, &run, &f->err), IOTP_ERR_STATE);
	assert_int_equal(bulk_task_stop(&f->core, ACTOR, "nope", &f->err), IOTP_ERR_NOT_FOUND);
}

static void test_start_refusals(void **state)
{
	struct fx *f = *state;
	char id[BULK_TASK_ID_MAX + 1];
	struct bulk_start in = {tmpl_body, "bkt", "missing.jsonl", NULL, NULL};

	assert_int_equal(bulk_task_start(&f->core, ACTOR, &in, id, &f->err), IOTP_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "not found"));
	write_input(f, "ok.jsonl", "{}\n");
	in.key = "../bkt/ok.jsonl";
	assert_int_equal(bulk_task_start(&f->core, ACTOR, &in, id, &f->err), IOTP_ERR_INVALID);
	in.key = "sub//ok.jsonl";
	assert_int_equal(bulk_task_start(&f->core, ACTOR, &in, id, &f->err), IOTP_ERR_INVALID);
	in.key = "ok.jsonl";
	in.bucket = "...";
	assert_int_equal(bulk_task_start(&f->core, ACTOR, &in, id, &f->err), IOTP_ERR_INVALID);
	in.bucket = "bkt";
	in.format = "xml";
	assert_int_equal(bulk_task_start(&f->core, ACTOR, &in, id, &f->err), IOTP_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "jsonl"));
	in.format = NULL;
	in.template_body = "{\"Resources\":{\"x\":{\"Type\":\"AWS::IoT::Nope\"}}}";
	assert_int_equal(bulk_task_start(&f->core, ACTOR, &in, id, &f->err), IOTP_ERR_INVALID);
	assert_int_equal(count(f, "SELECT COUNT(*) FROM bulk_tasks"), 0);
	/* A symbolic link out of the import directory is refused too. */
	{
		char link[600];

		snprintf(link, sizeof(link), "%s/import/bkt/escape", f->dir);
		assert_int_equal(symlink("/etc/passwd", link), 0);
		in.template_body = tmpl_body;
		in.key = "escape";
		assert_int_equal(bulk_task_start(&f->core, ACTOR, &in, id, &f->err), IOTP_ERR_INVALID);
		assert_non_null(strstr(f->err.msg, "outside"));
	}
}

static void test_input_upload_and_list(void **state)
{
	struct fx *f = *state;
	struct registry_str_list l = {0};
	struct registry_page page = {NULL, 2};
	char id[BULK_TASK_ID_MAX + 1];
	int64_t size = 0;

	assert_int_equal(bulk_input_write(&f->conf, "up-bucket", "a/b/in.jsonl", 0, "{}\n", 3,
	                                  &size, &f->err),
	                 IOTP_OK);
	assert_int_equal(size, 3);
	/* A retried or out-of-order chunk is refused with the size to go on. */
	assert_int_equal(bulk_input_write(&f->conf, "up-bucket", "a/b/in.jsonl", 10, "{}\n", 3,
	                                  &size, &f->err),
	                 IOTP_ERR_CONFLICT);
	assert_non_null(strstr(f->err.msg, "continue at 3"));
	assert_int_equal(bulk_input_write(&f->conf, "up-bucket", "a/b/in.jsonl", 3, "{}\n", 3,
	                                  &size, &f->err),
	                 IOTP_OK);
	assert_int_equal(size, 6);
	assert_int_equal(bulk_input_write(&f->conf, "up-bucket", "../x", 0, "{}", 2, &size,
	                                  &f->err),
	                 IOTP_ERR_INVALID);
	for (int i = 0; i < 3; i++) {
		struct bulk_start in = {tmpl_body, "up-bucket", "a/b/in.jsonl", NULL, NULL};

		assert_int_equal(bulk_task_start(&f->core, ACTOR, &in, id, &f->err), IOTP_OK);
	}
	assert_int_equal(bulk_task_list(&f->core, NULL, &page, &l, &f->err), IOTP_OK);
	assert_int_equal(l.count, 2);
	assert_non_null(l.next_token);
	page.token = l.next_token;
	{
		struct registry_str_list l2 = {0};

		assert_int_equal(bulk_task_list(&f->core, "InProgress", &page, &l2, &f->err), IOTP_OK);
		assert_int_equal(l2.count, 1);
		assert_null(l2.next_token);
		assert_string_not_equal(l2.items[0], l.items[0]);
		assert_string_not_equal(l2.items[0], l.items[1]);
		registry_str_list_cleanup(&l2);
	}
	registry_str_list_cleanup(&l);
	assert_int_equal(bulk_task_list(&f->core, "Done", NULL, &l, &f->err), IOTP_ERR_INVALID);
}

/* Uploads go through the same containment as task inputs, also when the
 * file does not exist yet: a directory link (or a dangling one) inside the
 * import directory cannot carry a new file out of it. */
static void test_upload_cannot_escape(void **state)
{
	struct fx *f = *state;
	char outside[600], link[600], path[700];
	struct buf part;
	int64_t size = 0;

	snprintf(outside, sizeof(outside), "%s/outside", f->dir);
	assert_int_equal(mkdir(outside, 0700), 0);
	snprintf(link, sizeof(link), "%s/import/linked", f->dir);
	assert_int_equal(symlink(outside, link), 0);
	assert_int_equal(bulk_input_write(&f->conf, "linked", "new.jsonl", 0, "{}\n", 3, &size,
	                                  &f->err),
	                 IOTP_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "outside"));
	snprintf(path, sizeof(path), "%s/new.jsonl", outside);
	assert_int_equal(access(path, F_OK), -1);
	/* a linked directory deeper in the key */
	snprintf(link, sizeof(link), "%s/import/bkt/sub", f->dir);
	assert_int_equal(symlink(outside, link), 0);
	assert_int_equal(bulk_input_write(&f->conf, "bkt", "sub/deeper/x.jsonl", 0, "{}\n", 3,
	                                  &size, &f->err),
	                 IOTP_ERR_INVALID);
	snprintf(path, sizeof(path), "%s/deeper", outside);
	assert_int_equal(access(path, F_OK), -1);
	/* a dangling link */
	snprintf(link, sizeof(link), "%s/import/dangle", f->dir);
	snprintf(path, sizeof(path), "%s/nowhere", f->dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(bulk_input_write(&f->conf, "dangle", "x.jsonl", 0, "{}\n", 3, &size,
	                                  &f->err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(access(path, F_OK), -1);
	/* a new bucket and new directories inside are fine */
	assert_int_equal(bulk_input_write(&f->conf, "fresh", "a/b.jsonl", 0, "{}\n", 3, &size,
	                                  &f->err),
	                 IOTP_OK);
	assert_int_equal(size, 3);
	/* a report part whose offset would overflow is refused, not computed */
	buf_init(&part, 0);
	assert_int_equal(bulk_report_part(&f->core, "t", "ERRORS", INT64_MAX / 2, &part, &f->err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(part.len, 0);
	buf_cleanup(&part);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jsonl_lines),
		cmocka_unit_test(test_csv_quoting),
		cmocka_unit_test(test_csv_bad_header),
		cmocka_unit_test(test_certs_pem),
		cmocka_unit_test_setup_teardown(test_reader_resume_and_oversized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_task_runs_to_completion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_task_resumes_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_batch_rewinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_task_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_upload_and_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upload_cannot_escape, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
