/*
 * The store: iotprov's only persistent state.
 *
 * A backend is a small vtable over a SQL connection (SQLite, the embedded
 * default, and PostgreSQL for scale-out). Everything above it -- migrations,
 * nested transactions, the event log and every registry query -- is written
 * once in portable SQL with `?` placeholders, so the backends cannot drift.
 * Portable means: types TEXT and INTEGER (64-bit), `INSERT ... ON CONFLICT`,
 * `RETURNING`, `LIMIT`, no backend-specific functions.
 *
 * A `struct store` is one connection. It is not thread-safe: each thread opens
 * its own (SQLite in WAL mode and PostgreSQL both allow many connections).
 */
#ifndef IOTP_STORE_H
#define IOTP_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"

enum store_type { STORE_NULL = 0, STORE_INT, STORE_TEXT, STORE_BLOB };

/* A parameter or a column value. Text is NUL-terminated in columns; `len`
 * excludes the NUL. Values in a row are borrowed: valid only during the
 * callback that receives them. */
struct store_val {
	enum store_type type;
	int64_t i;
	const char *s;
	size_t len;
};

#define SV_NULL ((struct store_val){STORE_NULL, 0, NULL, 0})
#define SV_INT(v) ((struct store_val){STORE_INT, (int64_t)(v), NULL, 0})
/* NULL text becomes SQL NULL. */
#define SV_TEXT(v) \
	((struct store_val){(v) != NULL ? STORE_TEXT : STORE_NULL, 0, (v), \
	                    (v) != NULL ? strlen(v) : 0})
#define SV_BLOB(p, n) ((struct store_val){STORE_BLOB, 0, (const char *)(p), (n)})

struct store_row {
	int ncols;
	const struct store_val *cols;
};

/* Row callback: return 0 to continue, nonzero to stop early (not an error). */
typedef int (*store_row_fn)(void *ud, const struct store_row *row);

struct store_backend {
	const char *name;        /* "sqlite", "postgresql" */
	const char *serial_pk;   /* DDL for a monotonic integer primary key */
	/* Opens a connection to target (a path for SQLite, a conninfo URL for
	 * PostgreSQL). *conn is written only on success. */
	iotp_rc (*open)(const char *target, void **conn, struct iotp_err *err);
	void (*close)(void *conn);
	/* Runs one statement with `?` placeholders; calls fn for each row when
	 * fn is not NULL; *changes (may be NULL) receives the affected row count.
	 * Maps unique violations to IOTP_ERR_EXISTS, foreign-key violations to
	 * IOTP_ERR_CONFLICT, lock contention to IOTP_ERR_BUSY. */
	iotp_rc (*exec)(void *conn, const char *sql, const struct store_val *params,
	                int nparams, store_row_fn fn, void *ud, int64_t *changes,
	                struct iotp_err *err);
	/* Outermost write transaction; nesting is handled above with savepoints. */
	iotp_rc (*begin)(void *conn, struct iotp_err *err);
	iotp_rc (*commit)(void *conn, struct iotp_err *err);
	iotp_rc (*rollback)(void *conn, struct iotp_err *err);
};

extern const struct store_backend store_backend_sqlite;

struct store;

/* Opens url and brings the schema up to date. url is "sqlite:PATH", a plain
 * PATH (SQLite), or "postgresql://..." / "postgres://...". The caller frees
 * *out with store_close(). */
iotp_rc store_open(const char *url, struct store **out, struct iotp_err *err);
/* Closes the connection, rolling back an open transaction. NULL is a no-op. */
void store_close(struct store *st);
/* The backend's name: "sqlite" or "postgresql". */
const char *store_backend_name(const struct store *st);
/* Current schema version (the number of migrations applied). */
int store_schema_version(const struct store *st);

/* Runs one statement (see store_backend.exec). */
iotp_rc store_exec(struct store *st, const char *sql, const struct store_val *params,
                   int nparams, store_row_fn fn, void *ud, struct iotp_err *err);
/* As store_exec, returning the number of rows changed in *changes. */
iotp_rc store_exec_changes(struct store *st, const char *sql,
                           const struct store_val *params, int nparams,
                           int64_t *changes, struct iotp_err *err);
/* Runs a query expected to return at most one row with one integer column.
 * IOTP_ERR_NOT_FOUND when no row. */
iotp_rc store_query_int(struct store *st, const char *sql, const struct store_val *params,
                        int nparams, int64_t *out, struct iotp_err *err);
/* As store_query_int for one text column; *out is malloc'ed (caller frees),
 * NULL for SQL NULL. */
iotp_rc store_query_text(struct store *st, const char *sql,
                         const struct store_val *params, int nparams, char **out,
                         struct iotp_err *err);

/* Transactions nest: the outermost begin starts a write transaction, inner
 * ones are savepoints. Every begin must be paired with exactly one commit or
 * rollback. A rollback of an inner level undoes only that level. */
iotp_rc store_begin(struct store *st, struct iotp_err *err);
iotp_rc store_commit(struct store *st, struct iotp_err *err);
/* Never fails in a way the caller can act on; errors are logged. */
void store_rollback(struct store *st);
/* Depth of open transactions (0 = none). */
int store_tx_depth(const struct store *st);

/* Appends to the event log, the audit trail and change feed in one. actor is
 * who did it ("key:AKIA..", "device:<cert id>", "system"), action a dotted
 * verb ("thing.create", "cert.status"), object the resource part of the ARN
 * ("thing/pump-1"), detail a JSON object or NULL. *id (may be NULL) receives
 * the new event id, which grows monotonically. Call inside the transaction
 * that makes the change so both land or neither does. */
iotp_rc store_event_append(struct store *st, const char *actor, const char *action,
                           const char *object, const char *detail, int64_t *id,
                           struct iotp_err *err);

struct store_event {
	int64_t id;
	int64_t ts_ms;
	const char *actor;
	const char *action;
	const char *object;
	const char *detail; /* may be NULL */
};
typedef int (*store_event_fn)(void *ud, const struct store_event *ev);

/* Calls fn for events with id > after_id, oldest first, at most limit of
 * them. Values are borrowed for the duration of the callback. */
iotp_rc store_events_since(struct store *st, int64_t after_id, int limit,
                           store_event_fn fn, void *ud, struct iotp_err *err);
/* The newest event id, 0 when there is none. */
iotp_rc store_events_last_id(struct store *st, int64_t *out, struct iotp_err *err);

/* Key/value settings kept in the store (registration code, account id...).
 * store_meta_get: *out malloc'ed, IOTP_ERR_NOT_FOUND when unset. */
iotp_rc store_meta_get(struct store *st, const char *key, char **out,
                       struct iotp_err *err);
iotp_rc store_meta_set(struct store *st, const char *key, const char *value,
                       struct iotp_err *err);

#endif
