/*
 * Backend-independent half of the store: choosing a backend from the URL,
 * running migrations (under a cross-process lock where the backend has one),
 * nested transactions as savepoints with the "a failed statement poisons its
 * level" rule enforced for every backend, the event log with its change
 * notifications, and the small query helpers (see store.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "core/store/schema.h"
#include "core/store/store.h"

struct store {
	const struct store_backend *be;
	void *conn;
	int depth;          /* open transaction levels */
	iotp_rc failed;     /* why the innermost open level failed (IOTP_OK: it did not) */
	int schema_version;
};

static const struct store_backend *backend_for(const char *url, const char **target)
{
	if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
		*target = url;
		return &store_backend_pg;
	}
	if (strncmp(url, "sqlite:", 7) == 0) {
		*target = url + 7;
		return &store_backend_sqlite;
	}
	*target = url;
	return &store_backend_sqlite;
}

/* Expands @SERIAL@ for the backend. *out is malloc'ed. */
static iotp_rc expand_sql(const struct store_backend *be, const char *sql, char **out)
{
	struct buf b;
	const char *p = sql, *q;
	iotp_rc rc = IOTP_OK;

	buf_init(&b, 0);
	while ((q = strstr(p, "@SERIAL@")) != NULL) {
		if ((rc = buf_append(&b, p, (size_t)(q - p))) != IOTP_OK ||
		    (rc = buf_puts(&b, be->serial_pk)) != IOTP_OK)
			goto out;
		p = q + 8;
	}
	if ((rc = buf_puts(&b, p)) != IOTP_OK)
		goto out;
	*out = buf_detach(&b, NULL);
out:
	buf_cleanup(&b);
	return rc;
}

static iotp_rc run_script(struct store *st, const char *script, struct iotp_err *err)
{
	char *sql = NULL, *p, *end;
	iotp_rc rc;

	if ((rc = expand_sql(st->be, script, &sql)) != IOTP_OK)
		return iotp_err_set(err, rc, "migration: %s", iotp_strerror(rc));
	for (p = sql; *p != '\0'; p = end) {
		end = strstr(p, ";\n");
		if (end != NULL) {
			*end = '\0';
			end += 2;
		} else {
			end = p + strlen(p);
		}
		if ((rc = store_exec(st, p, NULL, 0, NULL, NULL, err)) != IOTP_OK)
			break;
	}
	free(sql);
	return rc;
}

static iotp_rc migrate_steps(struct store *st, struct iotp_err *err)
{
	int64_t v = 0;
	iotp_rc rc;

	rc = store_exec(st, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
	                NULL, 0, NULL, NULL, err);
	if (rc != IOTP_OK)
		return rc;
	for (;;) {
		/* Each step re-reads the version inside its write transaction, so
		 * a concurrent opener that got there first is simply seen. */
		if ((rc = store_begin(st, err)) != IOTP_OK)
			return rc;
		rc = store_query_int(st, "SELECT MAX(version) FROM schema_version", NULL, 0, &v,
		                     err);
		if (rc == IOTP_ERR_NOT_FOUND) {
			v = 0;
			rc = IOTP_OK;
		}
		if (rc != IOTP_OK)
			goto fail;
		if (v > store_migration_count) {
			rc = iotp_err_set(err, IOTP_ERR_DB,
			                  "store schema version %lld is newer than this build "
			                  "(%d): upgrade iotprov",
			                  (long long)v, store_migration_count);
			goto fail;
		}
		if (v == store_migration_count)
			break;
		if ((rc = run_script(st, store_migrations[v], err)) != IOTP_OK)
			goto fail;
		{
			struct store_val p[] = {SV_INT(v + 1)};

			rc = store_exec(st, "INSERT INTO schema_version (version) VALUES (?)", p, 1,
			                NULL, NULL, err);
		}
		if (rc != IOTP_OK)
			goto fail;
		if ((rc = store_commit(st, err)) != IOTP_OK)
			return rc;
		LOG_INFO("store: schema migrated to version %lld", (long long)(v + 1));
	}
	store_rollback(st);
	st->schema_version = (int)v;
	return IOTP_OK;
fail:
	store_rollback(st);
	return rc;
}

static iotp_rc migrate(struct store *st, struct iotp_err *err)
{
	struct iotp_err e;
	iotp_rc rc;

	if (st->be->migrate_lock == NULL)
		return migrate_steps(st, err);
	if ((rc = st->be->migrate_lock(st->conn, 1, err)) != IOTP_OK)
		return rc;
	rc = migrate_steps(st, err);
	if (st->be->migrate_lock(st->conn, 0, &e) != IOTP_OK)
		LOG_WARN("store: releasing the migration lock: %s", e.msg);
	return rc;
}

iotp_rc store_open(const char *url, struct store **out, struct iotp_err *err)
{
	const char *target;
	const struct store_backend *be;
	struct store *st;
	iotp_rc rc;

	if (url == NULL || *url == '\0')
		return iotp_err_set(err, IOTP_ERR_CONFIG, "store: empty store URL");
	be = backend_for(url, &target);
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "store: out of memory");
	st->be = be;
	if ((rc = be->open(target, &st->conn, err)) != IOTP_OK) {
		free(st);
		return rc;
	}
	if ((rc = migrate(st, err)) != IOTP_OK) {
		store_close(st);
		return rc;
	}
	*out = st;
	return IOTP_OK;
}

void store_close(struct store *st)
{
	if (st == NULL)
		return;
	if (st->depth > 0) {
		/* The outermost rollback discards every savepoint inside it. */
		st->depth = 1;
		store_rollback(st);
	}
	st->be->close(st->conn);
	free(st);
}

const char *store_backend_name(const struct store *st)
{
	return st->be->name;
}

iotp_rc store_open_twin(struct store *st, struct store **out, struct iotp_err *err)
{
	const char *target = st->be->twin_target != NULL ? st->be->twin_target(st->conn) : NULL;
	struct store *tw;
	iotp_rc rc;

	*out = NULL;
	if (target == NULL || *target == '\0')
		return iotp_err_set(err, IOTP_ERR_UNSUPPORTED, "store: no second connection to "
		                    "checkpoint with on %s", st->be->name);
	if ((tw = calloc(1, sizeof(*tw))) == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "store: out of memory");
	tw->be = st->be;
	tw->schema_version = st->schema_version;
	/* The schema is st's: already migrated, nothing to check again. */
	if ((rc = tw->be->open(target, &tw->conn, err)) != IOTP_OK) {
		free(tw);
		return rc;
	}
	*out = tw;
	return IOTP_OK;
}

iotp_rc store_checkpoint(struct store *st, struct iotp_err *err)
{
	return st->be->checkpoint != NULL ? st->be->checkpoint(st->conn, err) : IOTP_OK;
}

void store_autocheckpoint(struct store *st, int pages)
{
	if (st->be->autocheckpoint != NULL)
		st->be->autocheckpoint(st->conn, pages);
}

int store_schema_version(const struct store *st)
{
	return st->schema_version;
}

/* The answer to anything but a rollback at a failed level: the code of the
 * original failure, so a lost connection (BUSY) still reads "retry". */
static iotp_rc refuse(const struct store *st, struct iotp_err *err)
{
	return iotp_err_set(err, st->failed,
	                    "store: transaction aborted by an earlier error (%s): roll it back",
	                    iotp_strerror(st->failed));
}

/* Every statement goes through here: a failure inside a transaction poisons
 * the innermost level until it is rolled back (see store.h). */
static iotp_rc run(struct store *st, const char *sql, const struct store_val *params,
                   int nparams, store_row_fn fn, void *ud, int64_t *changes,
                   struct iotp_err *err)
{
	iotp_rc rc;

	if (st->failed != IOTP_OK)
		return refuse(st, err);
	rc = st->be->exec(st->conn, sql, params, nparams, fn, ud, changes, err);
	if (rc != IOTP_OK && st->depth > 0)
		st->failed = rc;
	return rc;
}

iotp_rc store_exec(struct store *st, const char *sql, const struct store_val *params,
                   int nparams, store_row_fn fn, void *ud, struct iotp_err *err)
{
	return run(st, sql, params, nparams, fn, ud, NULL, err);
}

iotp_rc store_exec_changes(struct store *st, const char *sql,
                           const struct store_val *params, int nparams,
                           int64_t *changes, struct iotp_err *err)
{
	return run(st, sql, params, nparams, NULL, NULL, changes, err);
}

struct one_val {
	int found;
	int is_text;
	int64_t i;
	char *s;
	iotp_rc rc;
};

static int one_int_row(void *ud, const struct store_row *row)
{
	struct one_val *v = ud;

	if (row->ncols < 1 || row->cols[0].type == STORE_NULL)
		return 1; /* MAX() of nothing: treat as no row */
	v->found = 1;
	if (row->cols[0].type == STORE_INT)
		v->i = row->cols[0].i;
	else if (row->cols[0].type == STORE_TEXT &&
	         util_parse_int64(row->cols[0].s, INT64_MIN, INT64_MAX, &v->i) == IOTP_OK)
		;
	else
		v->rc = IOTP_ERR_DB;
	return 1;
}

iotp_rc store_query_int(struct store *st, const char *sql, const struct store_val *params,
                        int nparams, int64_t *out, struct iotp_err *err)
{
	struct one_val v = {0};
	iotp_rc rc;

	rc = store_exec(st, sql, params, nparams, one_int_row, &v, err);
	if (rc != IOTP_OK)
		return rc;
	if (v.rc != IOTP_OK)
		return iotp_err_set(err, v.rc, "store: expected an integer from: %s", sql);
	if (!v.found)
		return iotp_err_set(err, IOTP_ERR_NOT_FOUND, "store: no row");
	*out = v.i;
	return IOTP_OK;
}

static int one_text_row(void *ud, const struct store_row *row)
{
	struct one_val *v = ud;

	v->found = 1;
	if (row->ncols < 1 || row->cols[0].type == STORE_NULL)
		return 1;
	v->s = strndup(row->cols[0].s, row->cols[0].len);
	if (v->s == NULL)
		v->rc = IOTP_ERR_NOMEM;
	return 1;
}

iotp_rc store_query_text(struct store *st, const char *sql,
                         const struct store_val *params, int nparams, char **out,
                         struct iotp_err *err)
{
	struct one_val v = {0};
	iotp_rc rc;

	rc = store_exec(st, sql, params, nparams, one_text_row, &v, err);
	if (rc != IOTP_OK) {
		free(v.s);
		return rc;
	}
	if (v.rc != IOTP_OK)
		return iotp_err_set(err, v.rc, "store: out of memory");
	if (!v.found)
		return iotp_err_set(err, IOTP_ERR_NOT_FOUND, "store: no row");
	*out = v.s;
	return IOTP_OK;
}

static iotp_rc savepoint(struct store *st, enum store_sp op, int level,
                         struct iotp_err *err)
{
	static const char *const verbs[] = {"SAVEPOINT", "RELEASE SAVEPOINT",
	                                    "ROLLBACK TO SAVEPOINT"};
	char sql[64];

	if (st->be->savepoint != NULL)
		return st->be->savepoint(st->conn, op, level, err);
	snprintf(sql, sizeof(sql), "%s sp%d", verbs[op], level);
	return st->be->exec(st->conn, sql, NULL, 0, NULL, NULL, NULL, err);
}

iotp_rc store_begin(struct store *st, struct iotp_err *err)
{
	iotp_rc rc;

	if (st->failed != IOTP_OK)
		return refuse(st, err);
	if (st->depth == 0)
		rc = st->be->begin(st->conn, err);
	else
		rc = savepoint(st, STORE_SP_BEGIN, st->depth, err);
	if (rc == IOTP_OK)
		st->depth++;
	else if (st->depth > 0)
		st->failed = rc;
	return rc;
}

iotp_rc store_commit(struct store *st, struct iotp_err *err)
{
	iotp_rc rc;

	if (st->depth <= 0)
		return iotp_err_set(err, IOTP_ERR_INTERNAL, "store: commit without begin");
	if (st->depth == 1) {
		if (st->failed != IOTP_OK)
			rc = refuse(st, err);
		else
			rc = st->be->commit(st->conn, err);
		if (rc != IOTP_OK) {
			/* The transaction is gone either way: leave a clean state. */
			st->be->rollback(st->conn, NULL);
			st->depth = 0;
			st->failed = IOTP_OK;
			return rc;
		}
	} else {
		if (st->failed != IOTP_OK)
			return refuse(st, err);
		rc = savepoint(st, STORE_SP_RELEASE, st->depth - 1, err);
		if (rc != IOTP_OK) {
			st->failed = rc;
			return rc;
		}
	}
	st->depth--;
	return IOTP_OK;
}

void store_rollback(struct store *st)
{
	struct iotp_err e;

	if (st->depth <= 0)
		return;
	if (st->depth == 1) {
		if (st->be->rollback(st->conn, &e) != IOTP_OK)
			LOG_ERROR("store: rollback: %s", e.msg);
	} else if (savepoint(st, STORE_SP_ROLLBACK, st->depth - 1, &e) != IOTP_OK) {
		/* The savepoint is unusable, so the level above is poisoned. */
		LOG_ERROR("store: rollback to savepoint sp%d: %s", st->depth - 1, e.msg);
		st->depth--;
		st->failed = e.rc != IOTP_OK ? e.rc : IOTP_ERR_DB;
		return;
	}
	st->depth--;
	st->failed = IOTP_OK;
}

int store_tx_depth(const struct store *st)
{
	return st->depth;
}

#define EVENT_INSERT \
	"INSERT INTO events (ts, actor, action, object, detail) VALUES (?, ?, ?, ?, ?)"

iotp_rc store_event_append(struct store *st, const char *actor, const char *action,
                           const char *object, const char *detail, int64_t *id,
                           struct iotp_err *err)
{
	struct store_val p[] = {
		SV_INT(0), SV_TEXT(actor),
		SV_TEXT(action), SV_TEXT(object), SV_TEXT(detail),
	};
	int64_t newid;
	int own_tx = 0;
	iotp_rc rc;

	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		p[0] = SV_INT((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	}
	/* Even alone an append is a write transaction: that is what makes ids
	 * become visible in increasing order (see store.h). */
	if (st->depth == 0) {
		if ((rc = store_begin(st, err)) != IOTP_OK)
			return rc;
		own_tx = 1;
	}
	if (st->be->event_insert_sql == NULL && st->be->last_insert_id != NULL) {
		rc = store_exec(st, EVENT_INSERT, p, 5, NULL, NULL, err);
		newid = rc == IOTP_OK ? st->be->last_insert_id(st->conn) : 0;
	} else {
		rc = store_query_int(st,
		                     st->be->event_insert_sql != NULL ? st->be->event_insert_sql
		                                                      : EVENT_INSERT " RETURNING id",
		                     p, 5, &newid, err);
	}
	if (own_tx) {
		if (rc == IOTP_OK)
			rc = store_commit(st, err);
		else
			store_rollback(st);
	}
	if (rc != IOTP_OK)
		return rc;
	if (id != NULL)
		*id = newid;
	return IOTP_OK;
}

struct events_ctx {
	store_event_fn fn;
	void *ud;
};

static int event_row(void *ud, const struct store_row *row)
{
	struct events_ctx *c = ud;
	struct store_event ev = {
		.id = row->cols[0].i,
		.ts_ms = row->cols[1].i,
		.actor = row->cols[2].s,
		.action = row->cols[3].s,
		.object = row->cols[4].s,
		.detail = row->cols[5].type == STORE_NULL ? NULL : row->cols[5].s,
	};

	return c->fn(c->ud, &ev);
}

iotp_rc store_events_since(struct store *st, int64_t after_id, int limit,
                           store_event_fn fn, void *ud, struct iotp_err *err)
{
	struct events_ctx c = {fn, ud};
	struct store_val p[] = {SV_INT(after_id), SV_INT(limit)};

	return store_exec(st,
	                  "SELECT id, ts, actor, action, object, detail FROM events "
	                  "WHERE id > ? ORDER BY id LIMIT ?",
	                  p, 2, event_row, &c, err);
}

iotp_rc store_events_last_id(struct store *st, int64_t *out, struct iotp_err *err)
{
	iotp_rc rc = store_query_int(st, "SELECT MAX(id) FROM events", NULL, 0, out, err);

	if (rc == IOTP_ERR_NOT_FOUND) {
		*out = 0;
		return IOTP_OK;
	}
	return rc;
}

iotp_rc store_events_listen(struct store *st, struct iotp_err *err)
{
	if (st->be->listen == NULL)
		return IOTP_OK;
	return st->be->listen(st->conn, err);
}

int store_events_fd(struct store *st)
{
	return st->be->notify_fd != NULL ? st->be->notify_fd(st->conn) : -1;
}

int store_events_drain(struct store *st)
{
	return st->be->notify_drain != NULL ? st->be->notify_drain(st->conn) : 0;
}

iotp_rc store_events_wait(struct store *st, int timeout_ms, int *woken,
                          struct iotp_err *err)
{
	int64_t deadline = util_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int fd;

	if (store_events_drain(st) > 0) {
		*woken = 1;
		return IOTP_OK;
	}
	for (;;) {
		int64_t left = deadline - util_mono_ms();
		struct pollfd pfd;
		int n;

		if (left <= 0)
			break;
		fd = store_events_fd(st);
		if (fd < 0) {
			/* No notifications (or no connection right now): sleep. */
			struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};

			nanosleep(&ts, NULL);
			if (store_events_drain(st) > 0) {
				*woken = 1;
				return IOTP_OK;
			}
			continue;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno != EINTR)
			return iotp_err_set(err, IOTP_ERR_IO, "store: poll: %s", strerror(errno));
		if (store_events_drain(st) > 0) {
			*woken = 1;
			return IOTP_OK;
		}
	}
	*woken = 0;
	return IOTP_OK;
}

iotp_rc store_meta_get(struct store *st, const char *key, char **out,
                       struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(key)};
	iotp_rc rc = store_query_text(st, "SELECT value FROM meta WHERE key = ?", p, 1, out, err);

	if (rc == IOTP_ERR_NOT_FOUND)
		return iotp_err_set(err, rc, "store: no setting %s", key);
	return rc;
}

iotp_rc store_meta_set(struct store *st, const char *key, const char *value,
                       struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(key), SV_TEXT(value)};

	return store_exec(st,
	                  "INSERT INTO meta (key, value) VALUES (?, ?) "
	                  "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	                  p, 2, NULL, NULL, err);
}
