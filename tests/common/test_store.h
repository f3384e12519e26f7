/*
 * A fresh, empty store for each test, on the backend IOTP_STORE_URL names.
 *
 * Unset or not a PostgreSQL URL: a SQLite file in a new temporary directory.
 * "postgresql://..." or "postgres://...": a new schema in that database
 * (the tests/pg/pg_cluster.py harness starts a private cluster and sets the
 * variable), reached by adding options=-csearch_path=<schema> to the URL, so
 * that tests never see each other's rows and the database needs no reset.
 * Header-only so that every tests/unit/<module> can include it.
 */
#ifndef IOTP_TEST_STORE_H
#define IOTP_TEST_STORE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "core/store/store.h"

struct test_store {
	char url[1536];      /* the URL to pass to store_open */
	char base[1024];     /* PostgreSQL: the URL without the schema option */
	char dir[256];       /* SQLite: the temporary directory */
	char schema[64];     /* PostgreSQL: the schema name */
};

static inline int test_store_is_pg(const char *url)
{
	return url != NULL && (strncmp(url, "postgresql://", 13) == 0 ||
	                       strncmp(url, "postgres://", 11) == 0);
}

/* Prepares a fresh empty store; returns IOTP_OK or an error in err. Undo
 * with test_store_drop(). */
static inline iotp_rc test_store_new(struct test_store *ts, struct iotp_err *err)
{
	static unsigned counter;
	const char *env = getenv("IOTP_STORE_URL");
	struct store *admin = NULL;
	char sql[128];
	iotp_rc rc;

	memset(ts, 0, sizeof(*ts));
	if (!test_store_is_pg(env)) {
		snprintf(ts->dir, sizeof(ts->dir), "%s/iotp-store-XXXXXX",
		         getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
		if (mkdtemp(ts->dir) == NULL)
			return iotp_err_set(err, IOTP_ERR_IO, "mkdtemp %s failed", ts->dir);
		snprintf(ts->url, sizeof(ts->url), "sqlite:%s/store.db", ts->dir);
		return IOTP_OK;
	}
	if (strlen(env) >= sizeof(ts->base))
		return iotp_err_set(err, IOTP_ERR_INVALID, "IOTP_STORE_URL too long");
	memcpy(ts->base, env, strlen(env) + 1);
	snprintf(ts->schema, sizeof(ts->schema), "t_%ld_%u", (long)getpid(), ++counter);
	snprintf(ts->url, sizeof(ts->url), "%s%soptions=-csearch_path%%3D%s", ts->base,
	         strchr(ts->base, '?') != NULL ? "&" : "?", ts->schema);
	if ((rc = store_open(ts->base, &admin, err)) != IOTP_OK)
		return rc;
	snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", ts->schema);
	rc = store_exec(admin, sql, NULL, 0, NULL, NULL, err);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", ts->schema);
	if (rc == IOTP_OK)
		rc = store_exec(admin, sql, NULL, 0, NULL, NULL, err);
	store_close(admin);
	return rc;
}

/* Removes what test_store_new made. Close every store on it first. */
static inline void test_store_drop(struct test_store *ts)
{
	if (ts->schema[0] != '\0') {
		struct store *admin = NULL;
		struct iotp_err err;
		char sql[128];

		snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", ts->schema);
		if (store_open(ts->base, &admin, &err) == IOTP_OK) {
			if (store_exec(admin, sql, NULL, 0, NULL, NULL, &err) != IOTP_OK)
				fprintf(stderr, "test_store_drop: %s\n", err.msg);
			store_close(admin);
		}
	}
	if (ts->dir[0] != '\0') {
		static const char *const files[] = {"store.db", "store.db-wal", "store.db-shm",
		                                    "store.db-journal"};
		char path[320];

		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", ts->dir, files[i]);
			unlink(path);
		}
		rmdir(ts->dir);
	}
	memset(ts, 0, sizeof(*ts));
}

static inline int test_store_name_row(void *ud, const struct store_row *row)
{
	struct buf *b = ud;

	buf_puts(b, row->cols[0].s);
	buf_puts(b, "\n");
	return 0;
}

static inline int test_store_dump_row(void *ud, const struct store_row *row)
{
	struct buf *b = ud;

	for (int i = 0; i < row->ncols; i++) {
		const struct store_val *v = &row->cols[i];

		if (v->type == STORE_NULL)
			buf_puts(b, "NULL");
		else if (v->type == STORE_INT)
			buf_printf(b, "%lld", (long long)v->i);
		else
			buf_append(b, v->s, v->len);
		buf_puts(b, "|");
	}
	buf_puts(b, "\n");
	return 0;
}

/* Every row of every table of st, in a stable order, as text (*out
 * malloc'ed): two dumps compare equal exactly when nothing changed, which
 * is how tests show a failed operation left the store as it was. SQLite's
 * own tables (sqlite_sequence...) are included; PostgreSQL, which has no
 * rowid, orders each table by its rows as text. */
static inline iotp_rc test_store_dump(struct store *st, char **out, struct iotp_err *err)
{
	int pg = strcmp(store_backend_name(st), "postgresql") == 0;
	struct buf names, dump;
	char *list = NULL, *p, *nl;
	iotp_rc rc;

	buf_init(&names, 0);
	buf_init(&dump, 0);
	rc = store_exec(st,
	                pg ? "SELECT table_name FROM information_schema.tables "
	                     "WHERE table_schema = current_schema() ORDER BY 1"
	                   : "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
	                NULL, 0, test_store_name_row, &names, err);
	if (rc == IOTP_OK && (list = buf_detach(&names, NULL)) == NULL)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "dump: out of memory");
	for (p = list; rc == IOTP_OK && (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		char sql[256];

		*nl = '\0';
		if (pg)
			snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY %s::text", p, p);
		else
			snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY rowid", p);
		buf_printf(&dump, "== %s\n", p);
		rc = store_exec(st, sql, NULL, 0, test_store_dump_row, &dump, err);
	}
	free(list);
	buf_cleanup(&names);
	if (rc == IOTP_OK && (*out = buf_detach(&dump, NULL)) == NULL)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "dump: out of memory");
	buf_cleanup(&dump);
	return rc;
}

#endif
