/*
 * Conformance: opening and migrations, value round trips, placeholders, the
 * query helpers, constraint errors, meta settings, large values and closing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/store/schema.h"
#include "helpers.h"

/* ---- value capture ---- */

struct cap_val {
	enum store_type type;
	int64_t i;
	char *s; /* copy of text or blob bytes, NUL-terminated */
	size_t len;
};

struct cap_rows {
	int nrows;
	int ncols;
	struct cap_val v[8][8];
};

static int cap_row(void *ud, const struct store_row *row)
{
	struct cap_rows *c = ud;

	assert_true(c->nrows < 8);
	assert_true(row->ncols <= 8);
	c->ncols = row->ncols;
	for (int k = 0; k < row->ncols; k++) {
		struct cap_val *d = &c->v[c->nrows][k];
		const struct store_val *v = &row->cols[k];

		d->type = v->type;
		d->i = v->i;
		d->len = v->len;
		if (v->type == STORE_TEXT || v->type == STORE_BLOB) {
			d->s = malloc(v->len + 1);
			assert_non_null(d->s);
			if (v->len > 0)
				memcpy(d->s, v->s, v->len);
			d->s[v->len] = '\0';
		}
	}
	c->nrows++;
	return 0;
}

static void cap_free(struct cap_rows *c)
{
	for (int r = 0; r < 8; r++)
		for (int k = 0; k < 8; k++)
			free(c->v[r][k].s);
	memset(c, 0, sizeof(*c));
}

/* ---- tests ---- */

static void open_reports_backend_and_schema(void **state)
{
	struct sfx *f = *state;

	assert_string_equal(store_backend_name(f->st), sfx_is_pg() ? "postgresql" : "sqlite");
	assert_int_equal(store_schema_version(f->st), store_migration_count);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM schema_version", NULL),
	                 store_migration_count);
	assert_int_equal(sfx_int(f->st, "SELECT MAX(version) FROM schema_version", NULL),
	                 store_migration_count);
	/* The tables of the first migration exist and are empty. */
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM events", NULL), 0);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM things", NULL), 0);
	assert_int_equal(store_tx_depth(f->st), 0);
}

static void open_rejects_bad_urls(void **state)
{
	struct sfx *f = *state;
	struct store *st = (struct store *)0x1;

	assert_int_equal(store_open("", &st, &f->err), IOTP_ERR_CONFIG);
	assert_ptr_equal(st, (struct store *)0x1);
	assert_int_not_equal(store_open("sqlite:/nonexistent-dir-iotp/x/store.db", &st, &f->err),
	                     IOTP_OK);
	assert_ptr_equal(st, (struct store *)0x1);
	/* A PostgreSQL server that is not there: an error naming it, no
	 * password in the message. */
	assert_int_not_equal(store_open("postgresql://u:hunter2@127.0.0.1:1/db?connect_timeout=2",
	                                &st, &f->err),
	                     IOTP_OK);
	assert_ptr_equal(st, (struct store *)0x1);
	assert_non_null(strstr(f->err.msg, "127.0.0.1"));
	assert_null(strstr(f->err.msg, "hunter2"));
}

static void values_round_trip(void **state)
{
	struct sfx *f = *state;
	static const char text[] = "h\xc3\xa9llo \xe2\x9c\x93 'quoted' \"dq\" ? $1 \\ end";
	unsigned char bytes[256];
	struct cap_rows c = {0};

	for (int i = 0; i < 256; i++)
		bytes[i] = (unsigned char)i;
	sfx_table_t(f->st);
	{
		struct store_val rows[][4] = {
			{SV_TEXT("a"), SV_INT(INT64_MAX), SV_TEXT(text), SV_BLOB(bytes, sizeof(bytes))},
			{SV_TEXT("b"), SV_INT(INT64_MIN), SV_TEXT(""), SV_BLOB("", 0)},
			{SV_TEXT("c"), SV_NULL, SV_NULL, SV_NULL},
			{SV_TEXT("d"), SV_INT(-1), {STORE_TEXT, 0, "abcdef", 3}, SV_BLOB("\0\0x", 3)},
		};

		for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)
			assert_int_equal(store_exec(f->st, "INSERT INTO t (k, i, s, b) VALUES (?, ?, ?, ?)",
			                            rows[r], 4, NULL, NULL, &f->err),
			                 IOTP_OK);
	}
	assert_int_equal(store_exec(f->st, "SELECT k, i, s, b FROM t ORDER BY k", NULL, 0, cap_row,
	                            &c, &f->err),
	                 IOTP_OK);
	assert_int_equal(c.nrows, 4);
	assert_int_equal(c.ncols, 4);
	/* a: extremes and every byte value */
	assert_int_equal(c.v[0][1].type, STORE_INT);
	assert_true(c.v[0][1].i == INT64_MAX);
	assert_int_equal(c.v[0][2].type, STORE_TEXT);
	assert_string_equal(c.v[0][2].s, text);
	assert_int_equal(c.v[0][2].len, strlen(text));
	assert_int_equal(c.v[0][3].type, STORE_BLOB);
	assert_int_equal(c.v[0][3].len, sizeof(bytes));
	assert_memory_equal(c.v[0][3].s, bytes, sizeof(bytes));
	/* b: empty text and empty blob are values, not NULL */
	assert_true(c.v[1][1].i == INT64_MIN);
	assert_int_equal(c.v[1][2].type, STORE_TEXT);
	assert_int_equal(c.v[1][2].len, 0);
	assert_int_equal(c.v[1][3].type, STORE_BLOB);
	assert_int_equal(c.v[1][3].len, 0);
	/* c: NULL in every type */
	assert_int_equal(c.v[2][1].type, STORE_NULL);
	assert_int_equal(c.v[2][2].type, STORE_NULL);
	assert_int_equal(c.v[2][3].type, STORE_NULL);
	/* d: a text slice stores only its length; a blob keeps its NULs */
	assert_int_equal(c.v[3][1].i, -1);
	assert_string_equal(c.v[3][2].s, "abc");
	assert_int_equal(c.v[3][3].len, 3);
	assert_memory_equal(c.v[3][3].s, "\0\0x", 3);
	cap_free(&c);

	/* Computed values: counts, sums, comparisons and integer parameters
	 * read back as integers on every backend. */
	{
		struct store_val p[] = {SV_INT(5000000000LL)};

		assert_int_equal(store_exec(f->st,
		                            "SELECT COUNT(*), SUM(i), (COUNT(*) > 1), ? + 1 FROM t "
		                            "WHERE i IS NOT NULL AND i > -2 AND i < 0",
		                            p, 1, cap_row, &c, &f->err),
		                 IOTP_OK);
	}
	assert_int_equal(c.nrows, 1);
	for (int k = 0; k < 4; k++)
		assert_int_equal(c.v[0][k].type, STORE_INT);
	assert_int_equal(c.v[0][0].i, 1);
	assert_int_equal(c.v[0][1].i, -1);
	assert_int_equal(c.v[0][2].i, 0);
	assert_true(c.v[0][3].i == 5000000001LL);
	cap_free(&c);

	/* A 64-bit value survives an INTEGER column declared in DDL. */
	{
		struct store_val p[] = {SV_TEXT("e"), SV_INT(1700000000123LL)};

		assert_int_equal(store_exec(f->st, "INSERT INTO t (k, i) VALUES (?, ?)", p, 2, NULL,
		                            NULL, &f->err),
		                 IOTP_OK);
		assert_true(sfx_int(f->st, "SELECT i FROM t WHERE k = ?", "e") == 1700000000123LL);
	}
}

static void placeholders_skip_literals_and_comments(void **state)
{
	struct sfx *f = *state;
	struct cap_rows c = {0};
	struct store_val p[] = {SV_TEXT("x"), SV_INT(7)};
	char sql[512];
	struct store_val many[40];
	int64_t sum = 0, got = -1;
	size_t n = 0;

	assert_int_equal(store_exec(f->st,
	                            "SELECT '?' || ?, 'it''s ?', /* ? */ ? -- ? trailing\n",
	                            p, 2, cap_row, &c, &f->err),
	                 IOTP_OK);
	assert_int_equal(c.nrows, 1);
	assert_string_equal(c.v[0][0].s, "?x");
	assert_string_equal(c.v[0][1].s, "it's ?");
	assert_int_equal(c.v[0][2].i, 7);
	cap_free(&c);

	/* Many parameters, all positional. */
	n = (size_t)snprintf(sql, sizeof(sql), "SELECT ?");
	for (int i = 0; i < 40; i++) {
		many[i] = SV_INT(i + 1);
		sum += i + 1;
		if (i > 0)
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, " + ?");
	}
	assert_int_equal(store_query_int(f->st, sql, many, 40, &got, &f->err), IOTP_OK);
	assert_int_equal(got, sum);

	/* The same statement with different parameter types (cached per
	 * connection must not confuse them). */
	sfx_table_t(f->st);
	{
		struct store_val a[] = {SV_TEXT("k1"), SV_INT(1), SV_TEXT("one"), SV_BLOB("b", 1)};
		struct store_val b[] = {SV_TEXT("k2"), SV_NULL, SV_NULL, SV_NULL};
		struct store_val d[] = {SV_TEXT("k3"), SV_INT(3), SV_TEXT("three"), SV_NULL};

		for (int i = 0; i < 3; i++) {
			struct store_val *v = i == 0 ? a : i == 1 ? b : d;

			assert_int_equal(store_exec(f->st, "INSERT INTO t (k, i, s, b) VALUES (?, ?, ?, ?)",
			                            v, 4, NULL, NULL, &f->err),
			                 IOTP_OK);
		}
	}
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM t WHERE i IS NULL", NULL), 1);
	assert_int_equal(sfx_int(f->st, "SELECT i FROM t WHERE s = ?", "three"), 3);
}

struct counter {
	int rows;
};

static int count_and_stop(void *ud, const struct store_row *row)
{
	struct counter *c = ud;

	(void)row;
	c->rows++;
	return 1;
}

static void query_helpers(void **state)
{
	struct sfx *f = *state;
	struct counter cnt = {0};
	int64_t v = 42, changes = -1;
	char *s = (char *)"untouched";

	sfx_table_t(f->st);
	/* No row, and MAX() of nothing: NOT_FOUND, out-params untouched. */
	assert_int_equal(store_query_int(f->st, "SELECT i FROM t", NULL, 0, &v, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(store_query_int(f->st, "SELECT MAX(i) FROM t", NULL, 0, &v, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(v, 42);
	assert_int_equal(store_query_text(f->st, "SELECT s FROM t", NULL, 0, &s, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_string_equal(s, "untouched");

	sfx_exec(f->st, "INSERT INTO t (k, i, s) VALUES ('a', 1, 'one')");
	sfx_exec(f->st, "INSERT INTO t (k, i, s) VALUES ('b', 2, NULL)");
	sfx_exec(f->st, "INSERT INTO t (k, i, s) VALUES ('c', 3, 'three')");
	assert_int_equal(store_query_text(f->st, "SELECT s FROM t WHERE k = 'a'", NULL, 0, &s,
	                                  &f->err),
	                 IOTP_OK);
	assert_string_equal(s, "one");
	free(s);
	/* SQL NULL text: OK with a NULL string. */
	s = (char *)"untouched";
	assert_int_equal(store_query_text(f->st, "SELECT s FROM t WHERE k = 'b'", NULL, 0, &s,
	                                  &f->err),
	                 IOTP_OK);
	assert_null(s);

	assert_int_equal(store_exec_changes(f->st, "UPDATE t SET i = i + 10 WHERE i >= 2", NULL, 0,
	                                    &changes, &f->err),
	                 IOTP_OK);
	assert_int_equal(changes, 2);
	assert_int_equal(store_exec_changes(f->st, "DELETE FROM t WHERE k = 'zz'", NULL, 0,
	                                    &changes, &f->err),
	                 IOTP_OK);
	assert_int_equal(changes, 0);
	assert_int_equal(sfx_int(f->st, "SELECT SUM(i) FROM t", NULL), 1 + 12 + 13);

	/* A callback that returns nonzero stops the scan without an error. */
	assert_int_equal(store_exec(f->st, "SELECT k FROM t ORDER BY k", NULL, 0, count_and_stop,
	                            &cnt, &f->err),
	                 IOTP_OK);
	assert_int_equal(cnt.rows, 1);

	/* A syntax error is an error, not a crash or a silent success. */
	assert_int_not_equal(store_exec(f->st, "SELEC nonsense", NULL, 0, NULL, NULL, &f->err),
	                     IOTP_OK);
	assert_true(strlen(f->err.msg) > 0);
}

static void constraint_errors_map_alike(void **state)
{
	struct sfx *f = *state;
	struct store_val dangling[] = {SV_TEXT("c9"), SV_TEXT("nope")};
	struct store_val good[] = {SV_TEXT("c1"), SV_TEXT("p1")};

	sfx_exec(f->st, "CREATE TABLE parent (id TEXT PRIMARY KEY, code TEXT NOT NULL UNIQUE)");
	sfx_exec(f->st, "CREATE TABLE child (id TEXT PRIMARY KEY, "
	                "parent_id TEXT NOT NULL REFERENCES parent(id))");
	sfx_exec(f->st, "INSERT INTO parent (id, code) VALUES ('p1', 'A')");

	/* Duplicate primary key and duplicate UNIQUE column: EXISTS. */
	assert_int_equal(store_exec(f->st, "INSERT INTO parent (id, code) VALUES ('p1', 'B')",
	                            NULL, 0, NULL, NULL, &f->err),
	                 IOTP_ERR_EXISTS);
	assert_int_equal(store_exec(f->st, "INSERT INTO parent (id, code) VALUES ('p2', 'A')",
	                            NULL, 0, NULL, NULL, &f->err),
	                 IOTP_ERR_EXISTS);
	/* A dangling reference, and deleting a referenced row: CONFLICT. */
	assert_int_equal(store_exec(f->st, "INSERT INTO child (id, parent_id) VALUES (?, ?)",
	                            dangling, 2, NULL, NULL, &f->err),
	                 IOTP_ERR_CONFLICT);
	assert_int_equal(store_exec(f->st, "INSERT INTO child (id, parent_id) VALUES (?, ?)", good,
	                            2, NULL, NULL, &f->err),
	                 IOTP_OK);
	assert_int_equal(store_exec(f->st, "DELETE FROM parent WHERE id = 'p1'", NULL, 0, NULL,
	                            NULL, &f->err),
	                 IOTP_ERR_CONFLICT);
	/* NOT NULL: an error, but neither EXISTS nor CONFLICT. */
	{
		iotp_rc rc = store_exec(f->st, "INSERT INTO parent (id) VALUES ('p3')", NULL, 0, NULL,
		                        NULL, &f->err);

		assert_int_not_equal(rc, IOTP_OK);
		assert_int_not_equal(rc, IOTP_ERR_EXISTS);
		assert_int_not_equal(rc, IOTP_ERR_CONFLICT);
	}
	/* Nothing of the refused statements landed. */
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM parent", NULL), 1);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM child", NULL), 1);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM parent WHERE code = 'A'", NULL), 1);

	/* The same inside a transaction. */
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_exec(f->st, "INSERT INTO parent (id, code) VALUES ('p1', 'C')",
	                            NULL, 0, NULL, NULL, &f->err),
	                 IOTP_ERR_EXISTS);
	store_rollback(f->st);
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_exec(f->st, "INSERT INTO child (id, parent_id) VALUES (?, ?)",
	                            dangling, 2, NULL, NULL, &f->err),
	                 IOTP_ERR_CONFLICT);
	store_rollback(f->st);
	assert_int_equal(store_tx_depth(f->st), 0);
}

static void meta_get_set(void **state)
{
	struct sfx *f = *state;
	char *v = (char *)"untouched";
	char big[5000];

	assert_int_equal(store_meta_get(f->st, "account_id", &v, &f->err), IOTP_ERR_NOT_FOUND);
	assert_string_equal(v, "untouched");
	assert_int_equal(store_meta_set(f->st, "account_id", "123456789012", &f->err), IOTP_OK);
	assert_int_equal(store_meta_get(f->st, "account_id", &v, &f->err), IOTP_OK);
	assert_string_equal(v, "123456789012");
	free(v);
	assert_int_equal(store_meta_set(f->st, "account_id", "210987654321", &f->err), IOTP_OK);
	assert_int_equal(store_meta_get(f->st, "account_id", &v, &f->err), IOTP_OK);
	assert_string_equal(v, "210987654321");
	free(v);
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(store_meta_set(f->st, "big", big, &f->err), IOTP_OK);
	assert_int_equal(store_meta_get(f->st, "big", &v, &f->err), IOTP_OK);
	assert_string_equal(v, big);
	free(v);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM meta", NULL), 2);
}

static void reopen_is_idempotent(void **state)
{
	struct sfx *f = *state;

	assert_int_equal(store_meta_set(f->st, "k", "v", &f->err), IOTP_OK);
	for (int round = 0; round < 2; round++) {
		char *v = NULL;

		store_close(f->st);
		f->st = NULL;
		assert_int_equal(store_open(f->ts.url, &f->st, &f->err), IOTP_OK);
		assert_int_equal(store_schema_version(f->st), store_migration_count);
		assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM schema_version", NULL),
		                 store_migration_count);
		assert_int_equal(store_meta_get(f->st, "k", &v, &f->err), IOTP_OK);
		assert_string_equal(v, "v");
		free(v);
	}
}

/* Migration 5 rebuilds policy_targets: a store at version 4 with
 * attachments keeps every one of them, and the lookups still find them. The
 * version-4 table is put back by hand (the DDL of migration 1). */
static void migration_5_keeps_policy_targets(void **state)
{
	struct sfx *f = *state;
	struct store *st = f->st;

	sfx_exec(st, "INSERT INTO policies (name, default_version, created, updated) "
	             "VALUES ('p', 1, 0, 0)");
	sfx_exec(st, "INSERT INTO policies (name, default_version, created, updated) "
	             "VALUES ('q', 1, 0, 0)");
	sfx_exec(st, "DROP TABLE policy_targets");
	sfx_exec(st, "CREATE TABLE policy_targets (policy_name TEXT NOT NULL REFERENCES "
	             "policies(name), target TEXT NOT NULL, PRIMARY KEY (policy_name, target))");
	sfx_exec(st, "CREATE INDEX policy_targets_target ON policy_targets(target)");
	sfx_exec(st, "CREATE INDEX certificates_ca_id ON certificates(ca_id)");
	sfx_exec(st, "CREATE INDEX things_type_name ON things(type_name)");
	sfx_exec(st, "INSERT INTO policy_targets (policy_name, target) VALUES "
	             "('p', 'cert/bb'), ('p', 'cert/aa'), ('q', 'cert/aa'), ('p', 'thinggroup/g')");
	sfx_exec(st, "DELETE FROM schema_version WHERE version >= 5");
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(store_open(f->ts.url, &f->st, &f->err), IOTP_OK);
	st = f->st;
	assert_int_equal(store_schema_version(st), store_migration_count);
	assert_int_equal(sfx_int(st, "SELECT COUNT(*) FROM policy_targets", NULL), 4);
	assert_int_equal(sfx_int(st, "SELECT COUNT(*) FROM policy_targets WHERE target = ?",
	                         "cert/aa"), 2);
	assert_int_equal(sfx_int(st, "SELECT COUNT(*) FROM policy_targets WHERE policy_name = ?",
	                         "p"), 3);
	/* Ids follow (policy_name, target) for the rows carried over. */
	assert_int_equal(sfx_int(st, "SELECT id FROM policy_targets WHERE policy_name = 'p' "
	                             "AND target = ?", "cert/aa") + 1,
	                 sfx_int(st, "SELECT id FROM policy_targets WHERE policy_name = 'p' "
	                             "AND target = ?", "cert/bb"));
	/* (target, policy_name) is unique, and new rows get new ids. */
	{
		struct store_val p[] = {SV_TEXT("q"), SV_TEXT("cert/aa")};

		assert_int_equal(store_exec(st, "INSERT INTO policy_targets (policy_name, target) "
		                                "VALUES (?, ?)", p, 2, NULL, NULL, &f->err),
		                 IOTP_ERR_EXISTS);
	}
	sfx_exec(st, "INSERT INTO policy_targets (policy_name, target) VALUES ('q', 'cert/bb')");
	assert_true(sfx_int(st, "SELECT id FROM policy_targets WHERE policy_name = 'q' "
	                        "AND target = ?", "cert/bb") > 4);
}

static void large_values(void **state)
{
	struct sfx *f = *state;
	size_t blen = 4u << 20, tlen = 1u << 20;
	unsigned char *blob = malloc(blen);
	char *text = malloc(tlen + 1);
	struct cap_rows c = {0};
	uint32_t x = 2463534242u;

	assert_non_null(blob);
	assert_non_null(text);
	for (size_t i = 0; i < blen; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		blob[i] = (unsigned char)x;
	}
	for (size_t i = 0; i < tlen; i++)
		text[i] = (char)('a' + i % 26);
	text[tlen] = '\0';
	sfx_table_t(f->st);
	{
		struct store_val p[] = {SV_TEXT("big"), SV_TEXT(text), SV_BLOB(blob, blen)};

		assert_int_equal(store_exec(f->st, "INSERT INTO t (k, s, b) VALUES (?, ?, ?)", p, 3,
		                            NULL, NULL, &f->err),
		                 IOTP_OK);
	}
	assert_int_equal(store_exec(f->st, "SELECT s, b FROM t WHERE k = 'big'", NULL, 0, cap_row,
	                            &c, &f->err),
	                 IOTP_OK);
	assert_int_equal(c.nrows, 1);
	assert_int_equal(c.v[0][0].len, tlen);
	assert_memory_equal(c.v[0][0].s, text, tlen);
	assert_int_equal(c.v[0][1].type, STORE_BLOB);
	assert_int_equal(c.v[0][1].len, blen);
	assert_memory_equal(c.v[0][1].s, blob, blen);
	cap_free(&c);
	free(blob);
	free(text);
}

static void close_discards_open_transaction(void **state)
{
	struct sfx *f = *state;

	store_close(NULL); /* a no-op */
	sfx_table_t(f->st);
	sfx_exec(f->st, "INSERT INTO t (k) VALUES ('kept')");
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	sfx_exec(f->st, "INSERT INTO t (k) VALUES ('outer')");
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	sfx_exec(f->st, "INSERT INTO t (k) VALUES ('inner')");
	store_close(f->st);
	f->st = sfx_open(f);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM t", NULL), 1);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM t WHERE k = 'kept'", NULL), 1);
	/* The write lock went with the closed connection. */
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	sfx_exec(f->st, "INSERT INTO t (k) VALUES ('after')");
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
}

static int three_ints(void *ud, const struct store_row *row)
{
	int64_t *v = ud;

	for (int i = 0; i < 3 && i < row->ncols; i++)
		v[i] = row->cols[i].i;
	return 1;
}

/* The checkpointing twin (bulk registration): on SQLite a second
 * connection that sees the writer's commits and checkpoints the WAL while
 * the writer holds a transaction open; on PostgreSQL none (the server
 * checkpoints), and the calls do nothing. */
static void twin_checkpoints_beside_writer(void **state)
{
	struct sfx *f = *state;
	struct store *tw = NULL;
	int64_t ck[3] = {-1, -1, -1};

	sfx_table_t(f->st);
	if (sfx_is_pg()) {
		assert_int_equal(store_open_twin(f->st, &tw, &f->err), IOTP_ERR_UNSUPPORTED);
		assert_null(tw);
		assert_int_equal(store_checkpoint(f->st, &f->err), IOTP_OK);
		store_autocheckpoint(f->st, 0);
		return;
	}
	assert_int_equal(store_open_twin(f->st, &tw, &f->err), IOTP_OK);
	store_autocheckpoint(f->st, 0); /* the writer leaves it all to the twin */
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	for (int i = 0; i < 2000; i++) {
		char k[32];

		snprintf(k, sizeof(k), "k%d", i);
		{
			struct store_val p[] = {SV_TEXT(k)};

			assert_int_equal(store_exec(f->st, "INSERT INTO t (k) VALUES (?)", p, 1, NULL,
			                            NULL, &f->err), IOTP_OK);
		}
	}
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
	assert_int_equal(sfx_int(tw, "SELECT COUNT(*) FROM t", NULL), 2000);
	/* A checkpoint while the writer holds a write transaction: PASSIVE
	 * does not wait for it. */
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	sfx_exec(f->st, "INSERT INTO t (k) VALUES ('during')");
	assert_int_equal(store_checkpoint(tw, &f->err), IOTP_OK);
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
	/* Once the writer is done, the twin's checkpoint takes every frame
	 * to the database file, so the writer's next commit starts the WAL
	 * over: SQLite then counts (busy, frames, checkpointed) a frame or
	 * two, not the dozens the inserts above wrote. */
	assert_int_equal(store_checkpoint(tw, &f->err), IOTP_OK);
	sfx_exec(f->st, "INSERT INTO t (k) VALUES ('after')");
	assert_int_equal(store_exec(tw, "PRAGMA wal_checkpoint(PASSIVE)", NULL, 0, three_ints, ck,
	                            &f->err), IOTP_OK);
	assert_int_equal(ck[0], 0);
	assert_true(ck[1] > 0 && ck[1] < 5);
	assert_int_equal(ck[2], ck[1]);
	assert_int_equal(sfx_int(tw, "SELECT COUNT(*) FROM t", NULL), 2002);
	store_autocheckpoint(f->st, STORE_AUTOCHECKPOINT_PAGES);
	store_close(tw);
}

int suite_basic(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(open_reports_backend_and_schema, sfx_setup,
		                                sfx_teardown),
		cmocka_unit_test_setup_teardown(open_rejects_bad_urls, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(values_round_trip, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(placeholders_skip_literals_and_comments, sfx_setup,
		                                sfx_teardown),
		cmocka_unit_test_setup_teardown(query_helpers, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(constraint_errors_map_alike, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(meta_get_set, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(reopen_is_idempotent, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(migration_5_keeps_policy_targets, sfx_setup,
		                                sfx_teardown),
		cmocka_unit_test_setup_teardown(large_values, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(twin_checkpoints_beside_writer, sfx_setup,
		                                sfx_teardown),
		cmocka_unit_test_setup_teardown(close_discards_open_transaction, sfx_setup,
		                                sfx_teardown),
	};

	return cmocka_run_group_tests_name("store.basic", tests, NULL, NULL);
}
