/*
 * unit.store: the store conformance suite. Every backend must pass it
 * unchanged; run it on PostgreSQL with IOTP_STORE_URL=postgresql://... (the
 * pg.store ctest does that on a private cluster).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "helpers.h"

int sfx_is_pg(void)
{
	return test_store_is_pg(getenv("IOTP_STORE_URL"));
}

int sfx_setup(void **state)
{
	struct sfx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	if (test_store_new(&f->ts, &f->err) != IOTP_OK)
		fail_msg("fresh store: %s", f->err.msg);
	if (store_open(f->ts.url, &f->st, &f->err) != IOTP_OK)
		fail_msg("store_open: %s", f->err.msg);
	*state = f;
	return 0;
}

int sfx_teardown(void **state)
{
	struct sfx *f = *state;

	store_close(f->st);
	test_store_drop(&f->ts);
	free(f);
	return 0;
}

struct store *sfx_open(struct sfx *f)
{
	struct store *st = NULL;
	struct iotp_err err;

	if (store_open(f->ts.url, &st, &err) != IOTP_OK)
		fail_msg("store_open: %s", err.msg);
	return st;
}

void sfx_exec(struct store *st, const char *sql)
{
	struct iotp_err err;

	if (store_exec(st, sql, NULL, 0, NULL, NULL, &err) != IOTP_OK)
		fail_msg("%s: %s", sql, err.msg);
}

int64_t sfx_int(struct store *st, const char *sql, const char *param)
{
	struct store_val p[] = {SV_TEXT(param)};
	struct iotp_err err;
	int64_t v = -1;

	if (store_query_int(st, sql, p, param != NULL ? 1 : 0, &v, &err) != IOTP_OK)
		fail_msg("%s: %s", sql, err.msg);
	return v;
}

void sfx_table_t(struct store *st)
{
	sfx_exec(st, "CREATE TABLE t (k TEXT PRIMARY KEY, i INTEGER, s TEXT, b BLOB)");
}

int main(void)
{
	int failed = 0;

	iotp_log_set_level(IOTP_LOG_ERROR);
	fprintf(stderr, "store conformance suite on %s\n",
	        sfx_is_pg() ? "PostgreSQL (IOTP_STORE_URL)" : "SQLite");
	failed += suite_basic();
	failed += suite_tx();
	failed += suite_events();
	failed += suite_concurrency();
	failed += suite_connection();
	return failed != 0;
}
