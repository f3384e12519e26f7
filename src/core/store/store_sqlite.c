/*
 * SQLite backend of the store: one connection per struct store, WAL journal,
 * synchronous=NORMAL (durable across a process crash; a power cut may lose
 * the last transactions but never corrupts), foreign keys on, and a busy
 * timeout so concurrent writers from the daemon and the broker plugin wait
 * for each other instead of failing; temporary storage in memory. Prepared
 * statements are cached per connection keyed by their SQL text, because the
 * same few statements run on every hot path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/log.h"
#include "common/util.h"
#include "core/store/store.h"

#define STMT_CACHE 64

struct cached_stmt {
	const char *sql; /* the caller's string; compared by content */
	size_t len;
	sqlite3_stmt *stmt;
	unsigned long used;
};

struct sqlite_conn {
	sqlite3 *db;
	struct cached_stmt cache[STMT_CACHE];
	unsigned long tick;
};

static iotp_rc map_rc(sqlite3 *db, int rc, const char *what, struct iotp_err *err)
{
	int ext = sqlite3_extended_errcode(db);
	iotp_rc code = IOTP_ERR_DB;

	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
		code = IOTP_ERR_BUSY;
	else if (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE)
		code = IOTP_ERR_EXISTS;
	else if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
		code = IOTP_ERR_CONFLICT;
	else if (rc == SQLITE_FULL)
		code = IOTP_ERR_IO;
	return iotp_err_set(err, code, "sqlite: %s: %s", what, sqlite3_errmsg(db));
}

static void sqlite_autocheckpoint(void *conn, int pages);

/*
 * Switches the database to WAL. On a new database file opened by several
 * connections at once, the switch needs an exclusive lock that SQLite
 * refuses at once with SQLITE_BUSY, without calling the busy handler (it
 * would deadlock against a reader waiting the same way). Retried here for
 * the same 10 s the busy timeout allows; once any connection has switched
 * the file, the pragma is a read of the header and never busy.
 */
static int set_wal(sqlite3 *db, char **msg)
{
	int64_t deadline = util_mono_ms() + 10000;
	int rc, pause = 1;

	for (;;) {
		rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL;", NULL, NULL, msg);
		if (rc != SQLITE_BUSY || util_mono_ms() >= deadline)
			return rc;
		sqlite3_free(*msg);
		*msg = NULL;
		sqlite3_sleep(pause);
		if (pause < 32)
			pause *= 2;
	}
}

static iotp_rc sqlite_open(const char *target, void **conn, struct iotp_err *err)
{
	struct sqlite_conn *c;
	char *msg = NULL;
	int rc;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "sqlite: out of memory");
	rc = sqlite3_open_v2(target, &c->db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                     NULL);
	if (rc != SQLITE_OK) {
		iotp_err_set(err, IOTP_ERR_DB, "sqlite: open %s: %s", target,
		             c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		sqlite3_close(c->db);
		free(c);
		return IOTP_ERR_DB;
	}
	sqlite3_busy_timeout(c->db, 10000);
	/* temp_store=MEMORY: the statement journals of savepoints and the
	 * ephemeral tables of IN (subquery) and recursive queries stay in
	 * memory instead of temporary files. Measured: the broker's connect
	 * authorization with 1M certificates p50 121 -> 43 us (p99 4.3 ms ->
	 * 0.1 ms), bulk registration +25% lines per CPU second.
	 * cache_size 64 MiB (default 2 MiB) and a checkpoint every 16,384 WAL
	 * pages (64 MiB, default 1,000): certificate ids, thing ids and
	 * principals are random keys, so past a few hundred thousand things
	 * every insert lands on an index page out of a small cache and every
	 * checkpoint rewrites pages barely changed. Measured, bench_bulk
	 * --lines 200000: 3,394 -> 4,410 lines/s. The cache is a bound, taken
	 * only as a connection reads. (STORE_AUTOCHECKPOINT_PAGES, set below.)
	 * journal_size_limit follows the checkpoint size (sqlite_autocheckpoint):
	 * a bulk task lets the WAL grow to 1 GiB (bulk_run.c); when the WAL next
	 * starts over after it, the file shrinks back to 64 MiB. */
	rc = set_wal(c->db, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(c->db,
		                  "PRAGMA synchronous=NORMAL; "
		                  "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; "
		                  "PRAGMA cache_size=-65536;",
		                  NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		sqlite_autocheckpoint(c, STORE_AUTOCHECKPOINT_PAGES);
	if (rc != SQLITE_OK) {
		iotp_err_set(err, rc == SQLITE_BUSY ? IOTP_ERR_BUSY : IOTP_ERR_DB,
		             "sqlite: configure %s: %s", target, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		sqlite3_close(c->db);
		free(c);
		return err ? err->rc : IOTP_ERR_DB;
	}
	*conn = c;
	return IOTP_OK;
}

static void sqlite_close(void *conn)
{
	struct sqlite_conn *c = conn;

	if (c == NULL)
		return;
	for (int i = 0; i < STMT_CACHE; i++) {
		sqlite3_finalize(c->cache[i].stmt);
		free((char *)c->cache[i].sql);
	}
	sqlite3_close(c->db);
	free(c);
}

/* Finds or prepares the statement for sql. */
static iotp_rc get_stmt(struct sqlite_conn *c, const char *sql, sqlite3_stmt **out,
                        struct iotp_err *err)
{
	size_t len = strlen(sql);
	struct cached_stmt *victim = &c->cache[0];
	sqlite3_stmt *stmt = NULL;
	int rc;

	c->tick++;
	for (int i = 0; i < STMT_CACHE; i++) {
		struct cached_stmt *e = &c->cache[i];

		if (e->stmt != NULL && e->len == len && memcmp(e->sql, sql, len) == 0) {
			e->used = c->tick;
			*out = e->stmt;
			return IOTP_OK;
		}
		if (e->used < victim->used)
			victim = e;
	}
	rc = sqlite3_prepare_v2(c->db, sql, (int)len, &stmt, NULL);
	if (rc != SQLITE_OK)
		return map_rc(c->db, rc, sql, err);
	/* The caller's SQL may be a temporary string: the cache keeps a copy. */
	{
		char *copy = malloc(len + 1);

		if (copy == NULL) {
			sqlite3_finalize(stmt);
			return iotp_err_set(err, IOTP_ERR_NOMEM, "sqlite: out of memory");
		}
		memcpy(copy, sql, len + 1);
		sqlite3_finalize(victim->stmt);
		free((char *)victim->sql);
		victim->sql = copy;
		victim->len = len;
		victim->stmt = stmt;
		victim->used = c->tick;
	}
	*out = stmt;
	return IOTP_OK;
}

static iotp_rc sqlite_exec(void *conn, const char *sql, const struct store_val *params,
                           int nparams, store_row_fn fn, void *ud, int64_t *changes,
                           struct iotp_err *err)
{
	struct sqlite_conn *c = conn;
	sqlite3_stmt *stmt = NULL;
	struct store_val cols[32];
	iotp_rc rc;
	int src;

	if ((rc = get_stmt(c, sql, &stmt, err)) != IOTP_OK)
		return rc;
	for (int i = 0; i < nparams; i++) {
		const struct store_val *v = &params[i];

		switch (v->type) {
		case STORE_NULL: src = sqlite3_bind_null(stmt, i + 1); break;
		case STORE_INT: src = sqlite3_bind_int64(stmt, i + 1, v->i); break;
		case STORE_TEXT:
			src = sqlite3_bind_text(stmt, i + 1, v->s, (int)v->len, SQLITE_STATIC);
			break;
		case STORE_BLOB:
			src = sqlite3_bind_blob(stmt, i + 1, v->s, (int)v->len, SQLITE_STATIC);
			break;
		default: src = SQLITE_MISUSE; break;
		}
		if (src != SQLITE_OK) {
			rc = map_rc(c->db, src, "bind", err);
			goto out;
		}
	}
	for (;;) {
		int ncols;

		src = sqlite3_step(stmt);
		if (src == SQLITE_DONE)
			break;
		if (src != SQLITE_ROW) {
			rc = map_rc(c->db, src, sql, err);
			goto out;
		}
		if (fn == NULL)
			continue;
		ncols = sqlite3_column_count(stmt);
		if (ncols > (int)(sizeof(cols) / sizeof(cols[0]))) {
			rc = iotp_err_set(err, IOTP_ERR_INTERNAL, "sqlite: too many columns");
			goto out;
		}
		for (int i = 0; i < ncols; i++) {
			switch (sqlite3_column_type(stmt, i)) {
			case SQLITE_NULL: cols[i] = SV_NULL; break;
			case SQLITE_INTEGER:
				cols[i] = SV_INT(sqlite3_column_int64(stmt, i));
				break;
			case SQLITE_BLOB:
				cols[i].type = STORE_BLOB;
				cols[i].s = sqlite3_column_blob(stmt, i);
				cols[i].len = (size_t)sqlite3_column_bytes(stmt, i);
				cols[i].i = 0;
				break;
			default: /* text and float, read as text */
				cols[i].type = STORE_TEXT;
				cols[i].s = (const char *)sqlite3_column_text(stmt, i);
				cols[i].len = (size_t)sqlite3_column_bytes(stmt, i);
				cols[i].i = 0;
				if (cols[i].s == NULL)
					cols[i] = SV_NULL;
				break;
			}
		}
		{
			struct store_row row = {ncols, cols};

			if (fn(ud, &row) != 0)
				break;
		}
	}
	if (changes != NULL)
		*changes = sqlite3_changes64(c->db);
out:
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return rc;
}

static iotp_rc simple(void *conn, const char *sql, struct iotp_err *err)
{
	struct sqlite_conn *c = conn;
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return map_rc(c->db, rc, sql, err);
	return IOTP_OK;
}

static iotp_rc sqlite_begin(void *conn, struct iotp_err *err)
{
	/* IMMEDIATE takes the write lock now, so two writers queue on the busy
	 * timeout instead of deadlocking on a lock upgrade. */
	return simple(conn, "BEGIN IMMEDIATE", err);
}

static iotp_rc sqlite_commit(void *conn, struct iotp_err *err)
{
	return simple(conn, "COMMIT", err);
}

static iotp_rc sqlite_rollback(void *conn, struct iotp_err *err)
{
	struct sqlite_conn *c = conn;

	if (sqlite3_get_autocommit(c->db))
		return IOTP_OK; /* SQLite already rolled back (e.g. on SQLITE_FULL) */
	return simple(conn, "ROLLBACK", err);
}

static const char *sqlite_twin_target(void *conn)
{
	struct sqlite_conn *c = conn;
	const char *f = sqlite3_db_filename(c->db, "main");

	/* An in-memory database has no twin: "" or NULL. */
	return f != NULL && *f != '\0' ? f : NULL;
}

static iotp_rc sqlite_checkpoint(void *conn, struct iotp_err *err)
{
	struct sqlite_conn *c = conn;
	int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);

	/* BUSY: another checkpoint runs; it does the same work. */
	if (rc == SQLITE_OK || rc == SQLITE_BUSY)
		return IOTP_OK;
	return map_rc(c->db, rc, "checkpoint", err);
}

static void sqlite_autocheckpoint(void *conn, int pages)
{
	struct sqlite_conn *c = conn;
	char sql[64];

	sqlite3_wal_autocheckpoint(c->db, pages);
	/* The WAL file keeps the size it grew to unless told otherwise: the
	 * same bound (pages of 4 KiB, the default), so that the file shrinks
	 * back after a bulk task but is not cut and regrown during one. */
	snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit=%lld", (long long)pages * 4096);
	sqlite3_exec(c->db, sql, NULL, NULL, NULL);
}

static int64_t sqlite_last_insert_id(void *conn)
{
	struct sqlite_conn *c = conn;

	return sqlite3_last_insert_rowid(c->db);
}

const struct store_backend store_backend_sqlite = {
	.name = "sqlite",
	.serial_pk = "INTEGER PRIMARY KEY AUTOINCREMENT",
	.open = sqlite_open,
	.close = sqlite_close,
	.exec = sqlite_exec,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.twin_target = sqlite_twin_target,
	.checkpoint = sqlite_checkpoint,
	.autocheckpoint = sqlite_autocheckpoint,
	.last_insert_id = sqlite_last_insert_id,
};
