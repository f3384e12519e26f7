/*
 * The store: iotprov's only persistent state.
 *
 * A backend is a small vtable over a SQL connection (SQLite, the embedded
 * default, and PostgreSQL for scale-out). Everything above it -- migrations,
 * nested transactions, the event log and every registry query -- is written
 * once in portable SQL with `?` placeholders, so the backends cannot drift.
 * Portable means: types TEXT, INTEGER (always 64-bit: PostgreSQL DDL gets
 * BIGINT) and BLOB (BYTEA), `INSERT ... ON CONFLICT`, `RETURNING`, `LIMIT`,
 * no backend-specific functions. tests/unit/store is the conformance suite
 * both backends pass; it is the executable form of the contracts below.
 *
 * A `struct store` is one connection. It is not thread-safe: each thread opens
 * its own (SQLite in WAL mode and PostgreSQL both allow many connections).
 *
 * Contracts every backend keeps:
 * - Write transactions are serialized: from the first statement after the
 *   outermost store_begin to its commit, no other connection's transaction
 *   or write commits (SQLite: BEGIN IMMEDIATE, taken at store_begin;
 *   PostgreSQL: a transaction-scoped advisory lock taken with the first
 *   statement of every transaction and by every write outside one, in the
 *   same round trip). So read, check, then
 *   write inside one transaction is safe from lost updates, and event ids
 *   become visible in increasing order: a tailer that remembers the last id
 *   it saw misses nothing.
 * - A statement that fails inside a transaction poisons its level: every
 *   further statement, begin or commit at that level fails, with the code of
 *   the original failure (a lost connection still reads IOTP_ERR_BUSY),
 *   until the caller rolls the level back. PostgreSQL aborts the
 *   transaction; SQLite would carry on, so store.c refuses there too and
 *   both behave the same.
 *   Rolling back an inner level leaves the outer levels usable.
 * - Errors: unique violation -> IOTP_ERR_EXISTS, foreign-key violation (insert
 *   of a dangling reference or delete of a referenced row) ->
 *   IOTP_ERR_CONFLICT, lock contention, serialization failure, deadlock or a
 *   lost connection -> IOTP_ERR_BUSY (retry the whole transaction). A lost
 *   connection is re-established on the next use: one the server closed
 *   while it sat idle (a restart) is replaced before the next statement, and
 *   a read outside a transaction whose connection dies under it runs once
 *   more on a fresh one (it changed nothing). A write or a transaction that
 *   loses its connection fails with IOTP_ERR_BUSY and is never repeated
 *   behind the caller's back; a transaction it held is gone and every call
 *   in it fails with IOTP_ERR_BUSY until rolled back.
 *   A commit whose reply was lost is resolved after reconnecting: OK if it
 *   committed, IOTP_ERR_BUSY if it did not (safe to retry), IOTP_ERR_DB when
 *   the server stays unreachable and the outcome is unknown. Never a silent
 *   loss.
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

/* Savepoint operations for nested transaction levels (level >= 1). */
enum store_sp { STORE_SP_BEGIN, STORE_SP_RELEASE, STORE_SP_ROLLBACK };

struct store_backend {
	const char *name;        /* "sqlite", "postgresql" */
	const char *serial_pk;   /* DDL for a monotonic integer primary key */
	/* Opens a connection to target (a path for SQLite, a conninfo URL for
	 * PostgreSQL). *conn is written only on success. */
	iotp_rc (*open)(const char *target, void **conn, struct iotp_err *err);
	void (*close)(void *conn);
	/* Runs one statement with `?` placeholders; calls fn for each row when
	 * fn is not NULL; *changes (may be NULL) receives the affected row count.
	 * Maps errors as the contracts above say. */
	iotp_rc (*exec)(void *conn, const char *sql, const struct store_val *params,
	                int nparams, store_row_fn fn, void *ud, int64_t *changes,
	                struct iotp_err *err);
	/* Outermost write transaction; nesting is handled above with savepoints. */
	iotp_rc (*begin)(void *conn, struct iotp_err *err);
	iotp_rc (*commit)(void *conn, struct iotp_err *err);
	iotp_rc (*rollback)(void *conn, struct iotp_err *err);
	/* Optional (NULL: store.c runs SAVEPOINT spN / RELEASE / ROLLBACK TO
	 * through exec). */
	iotp_rc (*savepoint)(void *conn, enum store_sp op, int level, struct iotp_err *err);
	/* Optional: takes (lock = 1) or releases (0) a lock across processes
	 * held while migrating, so that daemons starting together migrate once.
	 * NULL when begin already excludes other writers for the whole check. */
	iotp_rc (*migrate_lock)(void *conn, int lock, struct iotp_err *err);
	/* Optional: SQL that inserts one event (parameters ts, actor, action,
	 * object, detail), returns its id in the first column and wakes
	 * listeners when the transaction commits. NULL: a plain INSERT. */
	const char *event_insert_sql;
	/* Optional: the integer key of the row the last INSERT on conn made.
	 * With it (and no event_insert_sql) an event is a plain INSERT, which
	 * SQLite runs in half the time of INSERT ... RETURNING. */
	int64_t (*last_insert_id)(void *conn);
	/* Optional change notifications (NULL: none, tailers poll). listen
	 * subscribes; fd returns the descriptor to poll for readability or -1;
	 * drain consumes what arrived and returns how many wake-ups (a reconnect
	 * counts as one, since notifications may have been missed). */
	iotp_rc (*listen)(void *conn, struct iotp_err *err);
	int (*notify_fd)(void *conn);
	int (*notify_drain)(void *conn);
	/* Optional WAL control (SQLite). twin_target: what open takes to reach
	 * the same database, or NULL. checkpoint: a PASSIVE checkpoint, which
	 * never waits for the writer. autocheckpoint: the WAL size in pages
	 * after which a commit on conn checkpoints on its own (0: never). */
	const char *(*twin_target)(void *conn);
	iotp_rc (*checkpoint)(void *conn, struct iotp_err *err);
	void (*autocheckpoint)(void *conn, int pages);
};

extern const struct store_backend store_backend_sqlite;
extern const struct store_backend store_backend_pg;

struct store;

/* Opens url and brings the schema up to date. url is "sqlite:PATH", a plain
 * PATH (SQLite), or a libpq URI "postgresql://..." / "postgres://..."
 * (several processes opening one database at once migrate it once). The
 * caller frees *out with store_close(). */
iotp_rc store_open(const char *url, struct store **out, struct iotp_err *err);
/* Closes the connection, rolling back every open transaction level. NULL is
 * a no-op. */
void store_close(struct store *st);
/* The backend's name: "sqlite" or "postgresql". */
const char *store_backend_name(const struct store *st);

/* Checkpointing beside a busy writer (bulk registration; SQLite only): a
 * second connection to st's database (IOTP_ERR_UNSUPPORTED on backends
 * without a WAL to checkpoint), a PASSIVE checkpoint on it, and the
 * writer's own automatic checkpoints moved further out meanwhile
 * (STORE_AUTOCHECKPOINT_PAGES is the default; the last two do nothing on
 * other backends). */
#define STORE_AUTOCHECKPOINT_PAGES 16384
iotp_rc store_open_twin(struct store *st, struct store **out, struct iotp_err *err);
iotp_rc store_checkpoint(struct store *st, struct iotp_err *err);
void store_autocheckpoint(struct store *st, int pages);
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
 * rollback. A rollback of an inner level undoes only that level. A commit
 * that fails at the outermost level has rolled everything back (depth 0);
 * at an inner level it leaves the level open for the caller to roll back. */
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
 * them. Values are borrowed for the duration of the callback. This is the
 * change feed's source of truth; notifications below only say "look again". */
iotp_rc store_events_since(struct store *st, int64_t after_id, int limit,
                           store_event_fn fn, void *ud, struct iotp_err *err);
/* The newest event id, 0 when there is none. */
iotp_rc store_events_last_id(struct store *st, int64_t *out, struct iotp_err *err);

/* Change notifications, so that a tailer in another process wakes when an
 * event commits instead of polling. store_events_listen subscribes this
 * connection (PostgreSQL: LISTEN; the append's NOTIFY is part of its
 * transaction, so a rolled-back append wakes nobody); on SQLite it succeeds
 * and does nothing. A tailer loops:
 *     store_events_since(after last) ...; store_events_wait(st, ms, &woken)
 * or, with its own poll loop: store_events_since, then if
 * store_events_drain() > 0 read again, else poll store_events_fd() (which
 * may change after a reconnect: fetch it each time).
 * store_events_fd: the descriptor to poll for readability, or -1 when the
 * backend has no notifications (SQLite: poll the feed on a timer).
 * store_events_drain: consumes pending notifications, returns how many
 * wake-ups arrived (0: none); never blocks.
 * store_events_wait: returns when a notification arrives (*woken = 1) or
 * after timeout_ms (*woken = 0); on SQLite it sleeps timeout_ms. */
iotp_rc store_events_listen(struct store *st, struct iotp_err *err);
int store_events_fd(struct store *st);
int store_events_drain(struct store *st);
iotp_rc store_events_wait(struct store *st, int timeout_ms, int *woken,
                          struct iotp_err *err);

/* Key/value settings kept in the store (registration code, account id...).
 * store_meta_get: *out malloc'ed, IOTP_ERR_NOT_FOUND when unset. */
iotp_rc store_meta_get(struct store *st, const char *key, char **out,
                       struct iotp_err *err);
iotp_rc store_meta_set(struct store *st, const char *key, const char *value,
                       struct iotp_err *err);

#endif
