/*
 * PostgreSQL backend of the store (libpq), for several iotprovd and brokers
 * on one registry. It keeps the contracts of store.h with the same portable
 * SQL the SQLite backend runs:
 * - `?` placeholders become $1..$n (outside literals, quoted names and
 *   comments); in DDL the portable types become PostgreSQL's (INTEGER ->
 *   BIGINT, since store.h promises 64-bit integers; BLOB -> BYTEA).
 * - Statements with parameters are prepared once per connection and cached
 *   by their SQL text and parameter types (integers are sent as int8, blobs
 *   as binary bytea, text as text); results come back in text form and are
 *   turned into integers for integer and boolean columns, bytes for bytea.
 * - Every transaction, and every write outside one, first takes one
 *   transaction-scoped advisory lock: writers are serialized as SQLite's
 *   BEGIN IMMEDIATE serializes them, so registry code that reads, checks and
 *   writes is correct on both, and event ids commit in order. BEGIN and the
 *   lock are sent with the transaction's first statement in one round trip
 *   (libpq pipeline mode), so a one-statement transaction costs two round
 *   trips (that and COMMIT). lock_timeout (10 s) plays the part of SQLite's
 *   busy timeout.
 * - A connection the server closed while it was idle (a restart) is noticed
 *   with a non-blocking read before the next statement and re-opened, and a
 *   read outside a transaction that loses its connection runs once more on a
 *   fresh one. Otherwise a lost connection fails the call with IOTP_ERR_BUSY
 *   and is re-opened on the next use; a transaction it carried stays failed
 *   until rolled back.
 *   The transaction id is fetched with the lock so that a COMMIT whose answer
 *   was lost is resolved with txid_status() after reconnecting.
 * - Appending an event NOTIFYs channel iotprov_events in the same
 *   transaction; a listening connection's socket becomes readable when such
 *   a transaction commits.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "core/store/store.h"

#define STMT_CACHE 64
#define INLINE_PARAMS 32
#define INLINE_COLS 32
#define RESOLVE_MS 15000 /* how long to try to learn a lost COMMIT's outcome */

/* Type oids from PostgreSQL's catalog (stable across versions). */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_NUMERIC 1700

/* Advisory lock keys: "iotp" in the high half. */
#define LOCK_WRITER "7597419120782475265"
#define LOCK_MIGRATE "7597419120782475266"
#define CHANNEL "iotprov_events"

struct pg_stmt {
	char *key; /* caller's SQL, NUL, one type letter per parameter */
	size_t keylen;
	char name[24];
	unsigned long used;
};

struct pg_conn {
	PGconn *pg;
	struct pg_stmt cache[STMT_CACHE];
	unsigned long tick;
	unsigned long serial;  /* names prepared statements */
	int in_tx;             /* store.c began a transaction */
	int begun;             /* ...and the server has it (BEGIN is sent lazily) */
	int tx_lost;           /* the connection died inside the transaction */
	int64_t xid;           /* txid_current() of the open transaction */
	int listening;
	int pending;           /* wake-ups not drained yet */
};

static void notice(void *arg, const char *msg)
{
	size_t n = strlen(msg);

	(void)arg;
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		n--;
	LOG_DEBUG("postgresql: %.*s", (int)n, msg);
}

/* Copies url into out without a password or query string (which may carry
 * one), for messages. */
static void redact_url(const char *url, char *out, size_t size)
{
	const char *scheme = strstr(url, "://");
	const char *auth, *at, *colon, *end;
	struct buf b;
	char *s;

	buf_init(&b, 1024);
	if (scheme == NULL) {
		util_strlcpy(out, "(conninfo)", size);
		return;
	}
	auth = scheme + 3;
	end = auth + strcspn(auth, "?");
	at = memchr(auth, '@', (size_t)(end - auth));
	if (at != NULL && (colon = memchr(auth, ':', (size_t)(at - auth))) != NULL) {
		buf_append(&b, url, (size_t)(colon - url));
		buf_puts(&b, ":***");
		buf_append(&b, at, (size_t)(end - at));
	} else {
		buf_append(&b, url, (size_t)(end - url));
	}
	s = buf_detach(&b, NULL);
	util_strlcpy(out, s != NULL ? s : "(url)", size);
	free(s);
	buf_cleanup(&b);
}

static size_t trim_len(const char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		n--;
	return n;
}

static void forget_statements(struct pg_conn *c)
{
	for (int i = 0; i < STMT_CACHE; i++) {
		free(c->cache[i].key);
		memset(&c->cache[i], 0, sizeof(c->cache[i]));
	}
}

static void mark_lost(struct pg_conn *c)
{
	if (c->in_tx && c->begun)
		c->tx_lost = 1;
}

/* Maps a failed result (or a NULL one) to an iotp_rc. Only the primary
 * message is kept: DETAIL lines can quote row values. */
static iotp_rc fail(struct pg_conn *c, const PGresult *res, const char *what,
                    struct iotp_err *err)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	iotp_rc code = IOTP_ERR_DB;

	if (msg == NULL)
		msg = PQerrorMessage(c->pg);
	if (PQstatus(c->pg) != CONNECTION_OK) {
		mark_lost(c);
		return iotp_err_set(err, IOTP_ERR_BUSY,
		                    "postgresql: connection lost (%.*s): retry", (int)trim_len(msg),
		                    msg);
	}
	if (state != NULL) {
		if (strcmp(state, "23505") == 0)
			code = IOTP_ERR_EXISTS;
		else if (strcmp(state, "23503") == 0)
			code = IOTP_ERR_CONFLICT;
		else if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
		         strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0 ||
		         strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
		         strncmp(state, "57P", 3) == 0)
			code = IOTP_ERR_BUSY;
	}
	return iotp_err_set(err, code, "postgresql: %s: %.*s%s%s%s", what, (int)trim_len(msg), msg,
	                    state != NULL ? " (" : "", state != NULL ? state : "",
	                    state != NULL ? ")" : "");
}

/* Runs a parameterless command expected to succeed without rows. */
static iotp_rc command(struct pg_conn *c, const char *sql, struct iotp_err *err)
{
	PGresult *res = PQexec(c->pg, sql);
	iotp_rc rc = IOTP_OK;

	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
	                    PQresultStatus(res) != PGRES_TUPLES_OK))
		rc = fail(c, res, sql, err);
	PQclear(res);
	return rc;
}

static iotp_rc session_setup(struct pg_conn *c, struct iotp_err *err)
{
	iotp_rc rc = command(c, "SET lock_timeout = '10s'", err);

	if (rc == IOTP_OK && c->listening)
		rc = command(c, "LISTEN " CHANNEL, err);
	return rc;
}

/* Re-opens a lost connection (only outside a transaction). */
static iotp_rc reconnect(struct pg_conn *c, struct iotp_err *err)
{
	iotp_rc rc;

	forget_statements(c);
	PQreset(c->pg);
	if (PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF)
		PQexitPipelineMode(c->pg); /* left over from a pipeline the loss cut short */
	if (PQstatus(c->pg) != CONNECTION_OK) {
		const char *m = PQerrorMessage(c->pg);

		return iotp_err_set(err, IOTP_ERR_BUSY, "postgresql: reconnect failed: %.*s",
		                    (int)trim_len(m), m);
	}
	if ((rc = session_setup(c, err)) != IOTP_OK)
		return rc;
	if (c->listening)
		c->pending++; /* notifications sent while away are lost: look again */
	LOG_WARN("store: reconnected to PostgreSQL");
	return IOTP_OK;
}

/* A server that closed this connection while it sat idle (a restart, an
 * idle-session timeout, pg_terminate_backend) has left its goodbye and an
 * end of file on the socket. Reading them now, without blocking, marks the
 * connection bad, so that the next statement goes to a fresh connection
 * instead of failing: a broker that was idle through a restart
 * authenticates the next device as usual. One poll() when nothing waits;
 * notifications read here stay queued in libpq for pg_notify_drain. Only
 * between transactions: inside one the loss must surface. */
static void notice_idle_close(struct pg_conn *c)
{
	for (int i = 0; i < 8 && PQstatus(c->pg) == CONNECTION_OK; i++) {
		struct pollfd p = {PQsocket(c->pg), POLLIN, 0};

		if (p.fd < 0 || poll(&p, 1, 0) <= 0 || PQisBusy(c->pg))
			return;
		if (!PQconsumeInput(c->pg))
			return; /* end of file: PQstatus says CONNECTION_BAD now */
	}
}

static iotp_rc ensure_connected(struct pg_conn *c, struct iotp_err *err)
{
	if (!(c->in_tx && c->begun))
		notice_idle_close(c);
	if (c->tx_lost)
		return iotp_err_set(err, IOTP_ERR_BUSY,
		                    "postgresql: the transaction was lost with the connection: "
		                    "roll back and retry");
	if (PQstatus(c->pg) == CONNECTION_OK)
		return IOTP_OK;
	if (c->in_tx && c->begun) {
		c->tx_lost = 1;
		return iotp_err_set(err, IOTP_ERR_BUSY,
		                    "postgresql: the transaction was lost with the connection: "
		                    "roll back and retry");
	}
	return reconnect(c, err);
}

static iotp_rc pg_open(const char *target, void **conn, struct iotp_err *err)
{
	/* Defaults the URL may override: a name in pg_stat_activity, a bounded
	 * connect, and keepalives so that a server that vanished without a
	 * word is noticed in about a minute rather than hours. */
	static const char *const keys[] = {"fallback_application_name", "connect_timeout",
	                                   "keepalives_idle", "keepalives_interval",
	                                   "keepalives_count", "dbname", NULL};
	const char *vals[] = {"iotprov", "10", "30", "10", "3", target, NULL};
	struct pg_conn *c;
	char shown[256];
	iotp_rc rc;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "postgresql: out of memory");
	/* dbname last: what the URL says wins over the defaults before it. */
	c->pg = PQconnectdbParams(keys, vals, 1);
	if (c->pg == NULL) {
		free(c);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "postgresql: out of memory");
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		const char *m = PQerrorMessage(c->pg);

		redact_url(target, shown, sizeof(shown));
		rc = iotp_err_set(err, IOTP_ERR_DB, "postgresql: connect to %s: %.*s", shown,
		                  (int)trim_len(m), m);
		goto fail;
	}
	PQsetNoticeProcessor(c->pg, notice, NULL);
	if ((rc = session_setup(c, err)) != IOTP_OK)
		goto fail;
	*conn = c;
	return IOTP_OK;
fail:
	PQfinish(c->pg);
	free(c);
	return rc;
}

static void pg_close(void *conn)
{
	struct pg_conn *c = conn;

	if (c == NULL)
		return;
	forget_statements(c);
	PQfinish(c->pg); /* the server rolls back an open transaction */
	free(c);
}

static int ident_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '$';
}

/* Case-insensitive match of word at p, as a whole word. */
static int word_at(const char *sql, const char *p, const char *word)
{
	size_t n = strlen(word);

	if (p > sql && ident_char(p[-1]))
		return 0;
	if (strncasecmp(p, word, n) != 0)
		return 0;
	return !ident_char(p[n]);
}

static int is_ddl(const char *sql)
{
	const char *p = sql + strspn(sql, " \t\r\n(");

	return word_at(sql, p, "CREATE") || word_at(sql, p, "ALTER");
}

static int is_write(const char *sql)
{
	const char *p = sql + strspn(sql, " \t\r\n(");

	return word_at(sql, p, "INSERT") || word_at(sql, p, "UPDATE") ||
	       word_at(sql, p, "DELETE") || word_at(sql, p, "WITH") || word_at(sql, p, "MERGE");
}

/* Rewrites portable SQL for PostgreSQL (see the file comment). *out is
 * malloc'ed; *nq receives the number of placeholders. */
static iotp_rc translate(const char *sql, char **out, int *nq)
{
	int ddl = is_ddl(sql), n = 0;
	const char *p = sql;
	struct buf b;
	iotp_rc rc = IOTP_OK;
	char num[16];

	buf_init(&b, 0);
	while (*p != '\0' && rc == IOTP_OK) {
		if (*p == '\'' || *p == '"') {
			const char *q = strchr(p + 1, *p); /* '' and "" re-enter here */

			q = q != NULL ? q + 1 : p + strlen(p);
			rc = buf_append(&b, p, (size_t)(q - p));
			p = q;
		} else if (p[0] == '-' && p[1] == '-') {
			size_t len = strcspn(p, "\n");

			rc = buf_append(&b, p, len);
			p += len;
		} else if (p[0] == '/' && p[1] == '*') {
			const char *q = strstr(p + 2, "*/");

			q = q != NULL ? q + 2 : p + strlen(p);
			rc = buf_append(&b, p, (size_t)(q - p));
			p = q;
		} else if (*p == '?') {
			snprintf(num, sizeof(num), "$%d", ++n);
			rc = buf_puts(&b, num);
			p++;
		} else if (ddl && word_at(sql, p, "INTEGER")) {
			rc = buf_puts(&b, "BIGINT");
			p += 7;
		} else if (ddl && word_at(sql, p, "BLOB")) {
			rc = buf_puts(&b, "BYTEA");
			p += 4;
		} else {
			rc = buf_append(&b, p, 1);
			p++;
		}
	}
	if (rc == IOTP_OK && b.data == NULL)
		rc = buf_puts(&b, "");
	if (rc == IOTP_OK) {
		*out = buf_detach(&b, NULL);
		*nq = n;
	}
	buf_cleanup(&b);
	return rc;
}

static char type_letter(enum store_type t)
{
	return t == STORE_INT ? 'i' : t == STORE_BLOB ? 'b' : '-';
}

/* Finds or prepares the statement for sql with these parameter types. */
static iotp_rc get_stmt(struct pg_conn *c, const char *sql, const struct store_val *params,
                        int nparams, const char **name, struct iotp_err *err)
{
	size_t sqllen = strlen(sql), keylen = sqllen + 1 + (size_t)nparams;
	struct pg_stmt *victim = &c->cache[0];
	char *key = NULL, *tsql = NULL;
	Oid inline_types[INLINE_PARAMS], *types = inline_types;
	PGresult *res = NULL;
	iotp_rc rc = IOTP_OK;
	int nq;

	c->tick++;
	for (int i = 0; i < STMT_CACHE; i++) {
		struct pg_stmt *e = &c->cache[i];

		if (e->key != NULL && e->keylen == keylen && memcmp(e->key, sql, sqllen + 1) == 0) {
			int same = 1;

			for (int j = 0; j < nparams && same; j++)
				same = e->key[sqllen + 1 + j] == type_letter(params[j].type);
			if (same) {
				e->used = c->tick;
				*name = e->name;
				return IOTP_OK;
			}
		}
		if (e->used < victim->used)
			victim = e;
	}
	key = malloc(keylen);
	if (nparams > INLINE_PARAMS)
		types = malloc(sizeof(*types) * (size_t)nparams);
	if (key == NULL || types == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "postgresql: out of memory");
		goto out;
	}
	memcpy(key, sql, sqllen + 1);
	for (int j = 0; j < nparams; j++) {
		key[sqllen + 1 + j] = type_letter(params[j].type);
		types[j] = params[j].type == STORE_INT ? OID_INT8
		           : params[j].type == STORE_BLOB ? OID_BYTEA : 0;
	}
	if ((rc = translate(sql, &tsql, &nq)) != IOTP_OK) {
		rc = iotp_err_set(err, rc, "postgresql: out of memory");
		goto out;
	}
	if (victim->key != NULL) {
		char dealloc[48];

		/* Best effort: a leftover prepared statement only costs memory. */
		snprintf(dealloc, sizeof(dealloc), "DEALLOCATE %s", victim->name);
		PQclear(PQexec(c->pg, dealloc));
		free(victim->key);
		memset(victim, 0, sizeof(*victim));
	}
	snprintf(victim->name, sizeof(victim->name), "iotp%lu", ++c->serial);
	res = PQprepare(c->pg, victim->name, tsql, nparams, types);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		rc = fail(c, res, sql, err);
		victim->name[0] = '\0';
		goto out;
	}
	victim->key = key;
	victim->keylen = keylen;
	victim->used = c->tick;
	key = NULL;
	*name = victim->name;
out:
	PQclear(res);
	free(key);
	free(tsql);
	if (types != inline_types)
		free(types);
	return rc;
}

static void evict(struct pg_conn *c, const char *name)
{
	for (int i = 0; i < STMT_CACHE; i++) {
		if (c->cache[i].key != NULL && strcmp(c->cache[i].name, name) == 0) {
			free(c->cache[i].key);
			memset(&c->cache[i], 0, sizeof(c->cache[i]));
		}
	}
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Turns one text-format column into a store_val; *heap receives memory the
 * caller frees after the row callback (bytea only). */
static iotp_rc column(const PGresult *res, int row, int col, struct store_val *v,
                      char **heap)
{
	const char *s = PQgetvalue(res, row, col);
	size_t len = (size_t)PQgetlength(res, row, col);
	Oid type = PQftype(res, col);
	int64_t i;

	*heap = NULL;
	if (PQgetisnull(res, row, col)) {
		*v = SV_NULL;
		return IOTP_OK;
	}
	switch (type) {
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
	case OID_OID:
		if (util_parse_int64(s, INT64_MIN, INT64_MAX, &i) != IOTP_OK)
			return IOTP_ERR_DB;
		*v = SV_INT(i);
		return IOTP_OK;
	case OID_BOOL:
		*v = SV_INT(s[0] == 't');
		return IOTP_OK;
	case OID_NUMERIC:
		/* SUM() of integers is numeric in PostgreSQL, an integer in SQLite. */
		if (util_parse_int64(s, INT64_MIN, INT64_MAX, &i) == IOTP_OK) {
			*v = SV_INT(i);
			return IOTP_OK;
		}
		break;
	case OID_BYTEA: {
		unsigned char *bytes;
		size_t n;

		if (len < 2 || s[0] != '\\' || s[1] != 'x' || len % 2 != 0)
			return IOTP_ERR_DB; /* bytea_output = escape is not supported */
		n = (len - 2) / 2;
		bytes = malloc(n + 1);
		if (bytes == NULL)
			return IOTP_ERR_NOMEM;
		for (size_t k = 0; k < n; k++) {
			int hi = hexval(s[2 + 2 * k]), lo = hexval(s[3 + 2 * k]);

			if (hi < 0 || lo < 0) {
				free(bytes);
				return IOTP_ERR_DB;
			}
			bytes[k] = (unsigned char)(hi << 4 | lo);
		}
		bytes[n] = 0;
		*heap = (char *)bytes;
		*v = SV_BLOB(bytes, n);
		return IOTP_OK;
	}
	default:
		break;
	}
	v->type = STORE_TEXT;
	v->i = 0;
	v->s = s;
	v->len = len;
	return IOTP_OK;
}

static iotp_rc deliver(const PGresult *res, store_row_fn fn, void *ud, struct iotp_err *err)
{
	int nrows = PQntuples(res), ncols = PQnfields(res);
	struct store_val inline_cols[INLINE_COLS], *cols = inline_cols;
	char *inline_heap[INLINE_COLS], **heap = inline_heap;
	iotp_rc rc = IOTP_OK;

	if (ncols > INLINE_COLS) {
		cols = calloc((size_t)ncols, sizeof(*cols));
		heap = calloc((size_t)ncols, sizeof(*heap));
		if (cols == NULL || heap == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "postgresql: out of memory");
			goto out;
		}
	}
	for (int r = 0; r < nrows; r++) {
		struct store_row row = {ncols, cols};
		int stop, filled = 0;

		for (int k = 0; k < ncols && rc == IOTP_OK; k++, filled++)
			rc = column(res, r, k, &cols[k], &heap[k]);
		if (rc != IOTP_OK) {
			for (int k = 0; k < filled - 1; k++)
				free(heap[k]);
			rc = iotp_err_set(err, rc, "postgresql: cannot read column of type %u",
			                  (unsigned)PQftype(res, filled - 1));
			goto out;
		}
		stop = fn(ud, &row);
		for (int k = 0; k < ncols; k++)
			free(heap[k]);
		if (stop != 0)
			break;
	}
out:
	if (cols != inline_cols)
		free(cols);
	if (heap != inline_heap)
		free(heap);
	return rc;
}

#define LOCK_SQL "SELECT pg_advisory_xact_lock(" LOCK_WRITER "), txid_current()"

/* Records the transaction id from the lock query's result; 0 when it failed. */
static int took_lock(struct pg_conn *c, const PGresult *res)
{
	int64_t xid;

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    util_parse_int64(PQgetvalue(res, 0, 1), 0, INT64_MAX, &xid) != IOTP_OK)
		return 0;
	c->xid = xid;
	return 1;
}

/* The first statement of a transaction: BEGIN, the writer lock (which also
 * yields the transaction id) and the statement go out in one round trip in
 * libpq's pipeline mode. Returns the statement's result (NULL if it never
 * came), or NULL with *rc set when BEGIN or the lock failed. */
static PGresult *exec_first(struct pg_conn *c, const char *name, const char *tsql,
                            int nparams, const char *const *vals, const int *lens,
                            const int *fmts, iotp_rc *rc, struct iotp_err *err)
{
	PGresult *res[3] = {NULL, NULL, NULL}, *r;
	int q = 0;

	*rc = IOTP_OK;
	if (PQenterPipelineMode(c->pg)) {
		if (PQsendQueryParams(c->pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
		    PQsendQueryParams(c->pg, LOCK_SQL, 0, NULL, NULL, NULL, NULL, 0))
			(void)(name != NULL
			           ? PQsendQueryPrepared(c->pg, name, nparams, vals, lens, fmts, 0)
			           : PQsendQueryParams(c->pg, tsql, 0, NULL, NULL, NULL, NULL, 0));
		if (PQpipelineSync(c->pg)) {
			/* Each query's results end with a NULL; the sync comes last. */
			while (q <= 3) {
				r = PQgetResult(c->pg);
				if (r == NULL) {
					if (PQstatus(c->pg) != CONNECTION_OK)
						break;
					q++;
					continue;
				}
				if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
					PQclear(r);
					break;
				}
				if (q < 3 && res[q] == NULL)
					res[q] = r;
				else
					PQclear(r);
			}
		}
		PQexitPipelineMode(c->pg);
	}
	if (res[0] != NULL && PQresultStatus(res[0]) == PGRES_COMMAND_OK)
		c->begun = 1; /* the server has a transaction now, failed or not */
	if (!c->begun)
		*rc = fail(c, res[0], "BEGIN", err);
	else if (!took_lock(c, res[1]))
		*rc = fail(c, res[1], "BEGIN", err);
	PQclear(res[0]);
	PQclear(res[1]);
	if (*rc != IOTP_OK) {
		PQclear(res[2]);
		return NULL;
	}
	return res[2];
}

/* One statement on the current connection, no implicit transaction. */
static iotp_rc exec_one(struct pg_conn *c, const char *sql, const struct store_val *params,
                        int nparams, store_row_fn fn, void *ud, int64_t *changes,
                        int *retry_plan, struct iotp_err *err)
{
	const char *inline_vals[INLINE_PARAMS], **vals = inline_vals;
	int inline_lens[INLINE_PARAMS], *lens = inline_lens;
	int inline_fmts[INLINE_PARAMS], *fmts = inline_fmts;
	const char *name = NULL;
	char *arena = NULL, *tsql = NULL;
	PGresult *res = NULL;
	ExecStatusType st;
	iotp_rc rc = IOTP_OK;
	int nq;

	if (nparams == 0 && fn == NULL && changes == NULL) {
		/* Savepoints, DDL, parameterless writes: one round trip, no cache. */
		if ((rc = translate(sql, &tsql, &nq)) != IOTP_OK) {
			rc = iotp_err_set(err, rc, "postgresql: out of memory");
			goto out;
		}
		if (c->in_tx && !c->begun) {
			res = exec_first(c, NULL, tsql, 0, NULL, NULL, NULL, &rc, err);
			if (rc != IOTP_OK)
				goto out;
		} else {
			res = PQexec(c->pg, tsql);
		}
	} else {
		size_t need = 0, at = 0;

		if (nparams > INLINE_PARAMS) {
			vals = malloc(sizeof(*vals) * (size_t)nparams);
			lens = malloc(sizeof(*lens) * (size_t)nparams);
			fmts = malloc(sizeof(*fmts) * (size_t)nparams);
			if (vals == NULL || lens == NULL || fmts == NULL) {
				rc = iotp_err_set(err, IOTP_ERR_NOMEM, "postgresql: out of memory");
				goto out;
			}
		}
		for (int i = 0; i < nparams; i++)
			need += params[i].type == STORE_INT ? 24 : params[i].type == STORE_TEXT
			                                               ? params[i].len + 1 : 0;
		if (need > 0 && (arena = malloc(need)) == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "postgresql: out of memory");
			goto out;
		}
		for (int i = 0; i < nparams; i++) {
			const struct store_val *v = &params[i];

			vals[i] = NULL;
			lens[i] = 0;
			fmts[i] = 0;
			switch (v->type) {
			case STORE_INT:
				vals[i] = arena + at;
				at += (size_t)snprintf(arena + at, 24, "%lld", (long long)v->i) + 1;
				break;
			case STORE_TEXT:
				/* Text goes in text format, which is NUL-terminated. */
				if (v->len > 0 && memchr(v->s, '\0', v->len) != NULL) {
					rc = iotp_err_set(err, IOTP_ERR_INVALID,
					                  "postgresql: text parameter %d contains NUL", i + 1);
					goto out;
				}
				if (v->len > 0)
					memcpy(arena + at, v->s, v->len);
				arena[at + v->len] = '\0';
				vals[i] = arena + at;
				at += v->len + 1;
				break;
			case STORE_BLOB:
				if (v->len > (size_t)INT32_MAX) {
					rc = iotp_err_set(err, IOTP_ERR_TOO_BIG, "postgresql: blob too big");
					goto out;
				}
				vals[i] = v->len > 0 ? v->s : "";
				lens[i] = (int)v->len;
				fmts[i] = 1;
				break;
			default:
				break;
			}
		}
		if ((rc = get_stmt(c, sql, params, nparams, &name, err)) != IOTP_OK)
			goto out;
		if (c->in_tx && !c->begun) {
			res = exec_first(c, name, NULL, nparams, vals, lens, fmts, &rc, err);
			if (rc != IOTP_OK)
				goto out;
		} else {
			res = PQexecPrepared(c->pg, name, nparams, vals, lens, fmts, 0);
		}
	}
	st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		if (fn != NULL && st == PGRES_TUPLES_OK && (rc = deliver(res, fn, ud, err)) != IOTP_OK)
			goto out;
		if (changes != NULL) {
			int64_t n = 0;

			if (util_parse_int64(PQcmdTuples(res), 0, INT64_MAX, &n) != IOTP_OK)
				n = 0;
			*changes = n;
		}
		goto out;
	}
	if (name != NULL && res != NULL) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		/* A cached plan whose tables changed shape (a migration by
		 * another process): prepare afresh. */
		if (state != NULL && strcmp(state, "0A000") == 0) {
			evict(c, name);
			*retry_plan = 1;
		}
	}
	rc = fail(c, res, sql, err);
out:
	PQclear(res);
	free(tsql);
	free(arena);
	if (vals != inline_vals)
		free(vals);
	if (lens != inline_lens)
		free(lens);
	if (fmts != inline_fmts)
		free(fmts);
	return rc;
}

static iotp_rc pg_begin(void *conn, struct iotp_err *err);
static iotp_rc pg_commit(void *conn, struct iotp_err *err);
static iotp_rc pg_rollback(void *conn, struct iotp_err *err);

static iotp_rc pg_exec(void *conn, const char *sql, const struct store_val *params,
                       int nparams, store_row_fn fn, void *ud, int64_t *changes,
                       struct iotp_err *err)
{
	struct pg_conn *c = conn;
	int implicit = 0, retry = 0;
	iotp_rc rc;

	if ((rc = ensure_connected(c, err)) != IOTP_OK)
		return rc;
	if (!c->in_tx && is_write(sql)) {
		/* A lone write is serialized against transactions too. */
		if ((rc = pg_begin(c, err)) != IOTP_OK)
			return rc;
		implicit = 1;
	}
	rc = exec_one(c, sql, params, nparams, fn, ud, changes, &retry, err);
	if (rc == IOTP_ERR_BUSY && !c->in_tx && PQstatus(c->pg) != CONNECTION_OK) {
		/* A read outside a transaction lost its connection (the server went
		 * away after the idle check): it changed nothing, so it runs once
		 * more on a fresh connection. Writes never get here (implicit). */
		if (reconnect(c, NULL) == IOTP_OK) {
			retry = 0;
			rc = exec_one(c, sql, params, nparams, fn, ud, changes, &retry, err);
		}
	}
	if (rc != IOTP_OK && retry) {
		if (c->in_tx && !implicit)
			rc = iotp_err_set(err, IOTP_ERR_BUSY,
			                  "postgresql: a table changed shape under this transaction: "
			                  "retry");
		else {
			if (implicit) {
				pg_rollback(c, NULL);
				if ((rc = pg_begin(c, err)) != IOTP_OK)
					return rc;
			}
			retry = 0;
			rc = exec_one(c, sql, params, nparams, fn, ud, changes, &retry, err);
		}
	}
	if (implicit) {
		if (rc == IOTP_OK)
			rc = pg_commit(c, err);
		else
			pg_rollback(c, NULL);
	}
	return rc;
}

/* Starts the server side of the transaction now (for a savepoint before
 * any statement): BEGIN and the writer lock in one round trip. */
static iotp_rc start_tx(struct pg_conn *c, struct iotp_err *err)
{
	PGresult *res = PQexec(c->pg, "BEGIN; " LOCK_SQL);
	iotp_rc rc = IOTP_OK;

	if (!took_lock(c, res)) {
		rc = fail(c, res, "BEGIN", err);
		if (PQstatus(c->pg) == CONNECTION_OK)
			PQclear(PQexec(c->pg, "ROLLBACK"));
	} else {
		c->begun = 1;
	}
	PQclear(res);
	return rc;
}

static iotp_rc pg_begin(void *conn, struct iotp_err *err)
{
	struct pg_conn *c = conn;
	iotp_rc rc;

	if ((rc = ensure_connected(c, err)) != IOTP_OK)
		return rc;
	/* Nothing is sent yet: BEGIN and the writer lock travel with the first
	 * statement (exec_first), saving a round trip per transaction. */
	c->in_tx = 1;
	c->begun = 0;
	c->tx_lost = 0;
	return IOTP_OK;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* The COMMIT's answer was lost with the connection: reconnect and ask the
 * server what became of the transaction. */
static iotp_rc resolve_commit(struct pg_conn *c, struct iotp_err *err)
{
	int64_t deadline = util_mono_ms() + RESOLVE_MS;
	char xid[24];
	const char *vals[1] = {xid};
	struct iotp_err e;

	c->in_tx = 0;
	c->begun = 0;
	c->tx_lost = 0;
	snprintf(xid, sizeof(xid), "%lld", (long long)c->xid);
	while (util_mono_ms() < deadline) {
		PGresult *res;
		const char *status;

		if (PQstatus(c->pg) != CONNECTION_OK && reconnect(c, &e) != IOTP_OK) {
			sleep_ms(200);
			continue;
		}
		res = PQexecParams(c->pg, "SELECT txid_status($1::bigint)", 1, NULL, vals, NULL,
		                   NULL, 0);
		if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
			PQclear(res);
			sleep_ms(200);
			continue;
		}
		status = PQgetisnull(res, 0, 0) ? "aborted" : PQgetvalue(res, 0, 0);
		if (strcmp(status, "committed") == 0) {
			PQclear(res);
			LOG_WARN("store: transaction %s committed; its answer was lost with the "
			         "connection", xid);
			return IOTP_OK;
		}
		if (strcmp(status, "aborted") == 0) {
			PQclear(res);
			return iotp_err_set(err, IOTP_ERR_BUSY,
			                    "postgresql: connection lost during COMMIT; transaction "
			                    "%s rolled back: retry", xid);
		}
		PQclear(res); /* in progress: the old backend has not noticed yet */
		sleep_ms(100);
	}
	return iotp_err_set(err, IOTP_ERR_DB,
	                    "postgresql: connection lost during COMMIT of transaction %s and "
	                    "the server stayed unreachable: outcome unknown", xid);
}

static iotp_rc pg_commit(void *conn, struct iotp_err *err)
{
	struct pg_conn *c = conn;
	PGresult *res;
	iotp_rc rc = IOTP_OK;

	if (!c->begun) {
		c->in_tx = 0; /* no statement ran: nothing to commit */
		return IOTP_OK;
	}
	if (c->tx_lost || PQstatus(c->pg) != CONNECTION_OK) {
		c->tx_lost = 1;
		return iotp_err_set(err, IOTP_ERR_BUSY,
		                    "postgresql: the transaction was lost with the connection: retry");
	}
	res = PQexec(c->pg, "COMMIT");
	if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
		/* COMMIT of a failed transaction answers ROLLBACK, not an error. */
		if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
			rc = iotp_err_set(err, IOTP_ERR_DB,
			                  "postgresql: the server rolled the transaction back");
		c->in_tx = 0;
		c->begun = 0;
	} else if (PQstatus(c->pg) != CONNECTION_OK) {
		rc = resolve_commit(c, err);
	} else {
		rc = fail(c, res, "COMMIT", err);
		c->in_tx = 0;
		c->begun = 0;
	}
	PQclear(res);
	return rc;
}

static iotp_rc pg_rollback(void *conn, struct iotp_err *err)
{
	struct pg_conn *c = conn;
	iotp_rc rc = IOTP_OK;

	if (!c->in_tx)
		return IOTP_OK;
	if (c->begun && !c->tx_lost && PQstatus(c->pg) == CONNECTION_OK) {
		rc = command(c, "ROLLBACK", err);
		if (PQstatus(c->pg) != CONNECTION_OK)
			rc = IOTP_OK; /* the server rolls back a transaction whose client left */
	}
	c->in_tx = 0;
	c->begun = 0;
	c->tx_lost = 0;
	return rc;
}

static iotp_rc pg_savepoint(void *conn, enum store_sp op, int level, struct iotp_err *err)
{
	struct pg_conn *c = conn;
	char sql[96];

	if (c->tx_lost || PQstatus(c->pg) != CONNECTION_OK) {
		c->tx_lost = 1;
		if (op == STORE_SP_ROLLBACK)
			return IOTP_OK; /* nothing left to undo; the outer level fails */
		return iotp_err_set(err, IOTP_ERR_BUSY,
		                    "postgresql: the transaction was lost with the connection: "
		                    "roll back and retry");
	}
	if (!c->begun) {
		iotp_rc rc;

		if (op != STORE_SP_BEGIN)
			return IOTP_OK; /* nothing ran inside it: nothing to release or undo */
		if ((rc = start_tx(c, err)) != IOTP_OK)
			return rc;
	}
	if (op == STORE_SP_BEGIN)
		snprintf(sql, sizeof(sql), "SAVEPOINT sp%d", level);
	else if (op == STORE_SP_RELEASE)
		snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT sp%d", level);
	else
		snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT sp%d; RELEASE SAVEPOINT sp%d", level,
		         level);
	return command(c, sql, err);
}

static iotp_rc pg_migrate_lock(void *conn, int lock, struct iotp_err *err)
{
	struct pg_conn *c = conn;
	iotp_rc rc;

	if ((rc = ensure_connected(c, err)) != IOTP_OK)
		return rc;
	if (!lock)
		return command(c, "SELECT pg_advisory_unlock(" LOCK_MIGRATE ")", err);
	/* Another process may be migrating a large table: wait as long as it
	 * takes rather than the usual lock timeout. */
	if ((rc = command(c, "SET lock_timeout = 0", err)) != IOTP_OK)
		return rc;
	rc = command(c, "SELECT pg_advisory_lock(" LOCK_MIGRATE ")", err);
	if (PQstatus(c->pg) == CONNECTION_OK) {
		iotp_rc rc2 = command(c, "SET lock_timeout = '10s'", rc == IOTP_OK ? err : NULL);

		if (rc == IOTP_OK)
			rc = rc2;
	}
	return rc;
}

static iotp_rc pg_listen(void *conn, struct iotp_err *err)
{
	struct pg_conn *c = conn;
	iotp_rc rc;

	if (c->listening)
		return IOTP_OK;
	if ((rc = ensure_connected(c, err)) != IOTP_OK)
		return rc;
	if ((rc = command(c, "LISTEN " CHANNEL, err)) != IOTP_OK)
		return rc;
	c->listening = 1;
	return IOTP_OK;
}

static int pg_notify_fd(void *conn)
{
	struct pg_conn *c = conn;

	if (!c->listening || PQstatus(c->pg) != CONNECTION_OK)
		return -1;
	return PQsocket(c->pg);
}

static int pg_notify_drain(void *conn)
{
	struct pg_conn *c = conn;
	PGnotify *n;
	int count = c->pending;

	c->pending = 0;
	if (!c->listening || PQstatus(c->pg) != CONNECTION_OK)
		return count;
	if (!PQconsumeInput(c->pg))
		return count + 1; /* lost: the next query reconnects; look again then */
	while ((n = PQnotifies(c->pg)) != NULL) {
		count++;
		PQfreemem(n);
	}
	return count;
}

const struct store_backend store_backend_pg = {
	.name = "postgresql",
	.serial_pk = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
	.open = pg_open,
	.close = pg_close,
	.exec = pg_exec,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.savepoint = pg_savepoint,
	.migrate_lock = pg_migrate_lock,
	.event_insert_sql =
		"WITH e AS (INSERT INTO events (ts, actor, action, object, detail) "
		"VALUES (?, ?, ?, ?, ?) RETURNING id) "
		"SELECT id, pg_notify('" CHANNEL "', '') FROM e",
	.listen = pg_listen,
	.notify_fd = pg_notify_fd,
	.notify_drain = pg_notify_drain,
};
