/*
 * The --store option of bench_issue, bench_register and bench_bulk: where
 * their stores live. Without it (or with "sqlite") each benchmark keeps its
 * temporary SQLite files; with a postgresql:// URL each store it needs is a
 * fresh schema of that database (created here, dropped at the end), so
 * that several stores, and several runs, share one database without seeing
 * each other's rows. scripts/bench-pg runs the three on both backends.
 *
 * The schema is chosen with libpq's `options=-c search_path=...` appended
 * to the URL, which every connection the benchmark opens (forked processes
 * too) then carries: the store's migrations create their tables there. The
 * URL given must not set `options` itself.
 *
 * A header of static functions, not a program: bench/<name>.c files are
 * each a benchmark, so shared code lives here.
 */
#ifndef IOTP_BENCH_SCRATCH_STORE_H
#define IOTP_BENCH_SCRATCH_STORE_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

/* 1 when url names a PostgreSQL database. */
static int scratch_is_pg(const char *url)
{
	return url != NULL &&
	       (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0);
}

static void scratch_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg; /* DROP ... CASCADE lists every table it drops */
}

/* Runs one statement on the database of base (no schema chosen). 0 on
 * success, -1 with the server's message on stderr. */
static int scratch_sql(const char *base, const char *sql)
{
	PGconn *pg = PQconnectdb(base);
	PGresult *res = NULL;
	int rc = -1;

	if (pg != NULL && PQstatus(pg) == CONNECTION_OK) {
		PQsetNoticeProcessor(pg, scratch_quiet, NULL);
		res = PQexec(pg, sql);
		if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
			rc = 0;
	}
	if (rc != 0)
		fprintf(stderr, "scratch store: %s: %s", sql,
		        pg != NULL ? PQerrorMessage(pg) : "out of memory\n");
	PQclear(res);
	PQfinish(pg);
	return rc;
}

/* Creates schema "<prefix>_<pid>_<k>" in base's database and writes into
 * url the store URL whose connections use it (schema receives its name).
 * 0 on success, -1 on failure (explained on stderr). */
static int scratch_create(const char *base, const char *prefix, int k, char *url, size_t size,
                          char *schema, size_t schema_size)
{
	char sql[160];
	int n;

	n = snprintf(schema, schema_size, "%s_%ld_%d", prefix, (long)getpid(), k);
	if (n < 0 || (size_t)n >= schema_size)
		return -1;
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %.63s", schema);
	if (scratch_sql(base, sql) != 0)
		return -1;
	/* "-c search_path=<schema>", percent-encoded for the URI. */
	n = snprintf(url, size, "%s%soptions=-c%%20search_path%%3D%s", base,
	             strchr(base, '?') != NULL ? "&" : "?", schema);
	if (n < 0 || (size_t)n >= size) {
		fprintf(stderr, "scratch store: URL too long\n");
		return -1;
	}
	return 0;
}

/* Drops what scratch_create made (best effort). */
static void scratch_drop(const char *base, const char *schema)
{
	char sql[160];

	if (schema[0] == '\0')
		return;
	snprintf(sql, sizeof(sql), "DROP SCHEMA %.63s CASCADE", schema);
	(void)scratch_sql(base, sql);
}

#endif
