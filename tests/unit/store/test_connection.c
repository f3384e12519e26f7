/*
 * Conformance for client/server backends (PostgreSQL; skipped on SQLite,
 * which has no connection to lose): a connection the server closed while it
 * was idle is replaced before the next statement, a read whose connection
 * dies under it runs again on a fresh one, a write or transaction that
 * loses its connection fails with a retryable IOTP_ERR_BUSY and is never
 * half-applied nor silently repeated, listeners are re-subscribed,
 * and a server restart in the middle of a stream of transactions loses and
 * duplicates nothing (needs IOTP_PG_RESTART, a command that restarts the
 * server, which tests/pg/pg_cluster.py provides).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "helpers.h"

static int64_t backend_pid(struct store *st)
{
	return sfx_int(st, "SELECT pg_backend_pid()", NULL);
}

/* Has the server end st's session, waiting until it is gone. */
static void kill_session(struct store *killer, struct store *victim)
{
	struct store_val p[] = {SV_INT(backend_pid(victim))};
	int64_t ok = 0;
	struct iotp_err err;

	if (store_query_int(killer, "SELECT pg_terminate_backend(CAST(? AS INTEGER), 5000)", p, 1,
	                    &ok, &err) != IOTP_OK)
		fail_msg("pg_terminate_backend: %s", err.msg);
	assert_int_equal(ok, 1);
}

static void lost_connection_outside_tx(void **state)
{
	struct sfx *f = *state;
	struct store *killer;
	int64_t pid0, pid1, v = 0;

	if (!sfx_is_pg())
		skip();
	killer = sfx_open(f);
	pid0 = backend_pid(f->st);
	kill_session(killer, f->st);
	/* Closed while idle (a restart, an idle timeout): noticed before the
	 * next statement, which runs on a new connection with a working
	 * statement cache. */
	assert_int_equal(store_query_int(f->st, "SELECT 1", NULL, 0, &v, &f->err), IOTP_OK);
	assert_int_equal(v, 1);
	pid1 = backend_pid(f->st);
	assert_int_not_equal(pid1, pid0);
	/* A lone write too. */
	kill_session(killer, f->st);
	assert_int_equal(store_meta_set(f->st, "after", "reconnect", &f->err), IOTP_OK);
	assert_int_not_equal(backend_pid(f->st), pid1);
	assert_int_equal(sfx_int(killer, "SELECT COUNT(*) FROM meta WHERE key = 'after'", NULL), 1);
	store_close(killer);
}

/* Kills the session of pid after delay_ms through st, a connection opened
 * beforehand (opening one migrates, which would wait for a writer). */
struct killer_arg {
	struct store *st;
	int64_t pid;
	int delay_ms;
	iotp_rc rc;
};

static void *kill_later(void *arg)
{
	struct killer_arg *k = arg;
	struct timespec ts = {k->delay_ms / 1000, (long)(k->delay_ms % 1000) * 1000000L};
	struct store_val p[] = {SV_INT(k->pid)};
	int64_t ok = 0;

	nanosleep(&ts, NULL);
	k->rc = store_query_int(k->st, "SELECT pg_terminate_backend(CAST(? AS INTEGER), 5000)", p,
	                        1, &ok, NULL);
	if (k->rc == IOTP_OK && ok != 1)
		k->rc = IOTP_ERR_INTERNAL;
	return NULL;
}

static void read_survives_connection_loss(void **state)
{
	struct sfx *f = *state;
	struct killer_arg k = {.delay_ms = 300};
	pthread_t th;
	int64_t v = 0;

	if (!sfx_is_pg())
		skip();
	k.st = sfx_open(f);
	k.pid = backend_pid(f->st);
	assert_int_equal(pthread_create(&th, NULL, kill_later, &k), 0);
	/* Killed in the middle: it changed nothing, so it runs again. */
	assert_int_equal(store_query_int(f->st, "SELECT 7 FROM pg_sleep(1.5)", NULL, 0, &v,
	                                 &f->err),
	                 IOTP_OK);
	pthread_join(th, NULL);
	assert_int_equal(k.rc, IOTP_OK);
	assert_int_equal(v, 7);
	assert_int_not_equal(backend_pid(f->st), k.pid);
	store_close(k.st);
}

static void write_is_not_repeated_after_loss(void **state)
{
	struct sfx *f = *state;
	struct killer_arg k = {.delay_ms = 300};
	pthread_t th;

	if (!sfx_is_pg())
		skip();
	sfx_table_t(f->st);
	k.st = sfx_open(f);
	k.pid = backend_pid(f->st);
	assert_int_equal(pthread_create(&th, NULL, kill_later, &k), 0);
	/* A lone write that loses its connection fails, retryable, and is not
	 * run again behind the caller's back. */
	assert_int_equal(store_exec(f->st, "INSERT INTO t (k) SELECT 'w' FROM pg_sleep(1.5)", NULL,
	                            0, NULL, NULL, &f->err),
	                 IOTP_ERR_BUSY);
	pthread_join(th, NULL);
	assert_int_equal(k.rc, IOTP_OK);
	assert_int_equal(sfx_int(k.st, "SELECT COUNT(*) FROM t", NULL), 0);
	/* The caller's retry goes through once. */
	sfx_exec(f->st, "INSERT INTO t (k) VALUES ('w')");
	assert_int_equal(sfx_int(k.st, "SELECT COUNT(*) FROM t", NULL), 1);
	store_close(k.st);
}

static void lost_connection_inside_tx(void **state)
{
	struct sfx *f = *state;
	struct store *killer;
	struct store_val p[] = {SV_TEXT("b")};

	if (!sfx_is_pg())
		skip();
	sfx_table_t(f->st);
	killer = sfx_open(f);
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	sfx_exec(f->st, "INSERT INTO t (k) VALUES ('a')");
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	kill_session(killer, f->st);
	assert_int_equal(store_exec(f->st, "INSERT INTO t (k) VALUES (?)", p, 1, NULL, NULL,
	                            &f->err),
	                 IOTP_ERR_BUSY);
	/* Nothing in the lost transaction may run on the new connection. */
	assert_int_not_equal(store_exec(f->st, "INSERT INTO t (k) VALUES ('c')", NULL, 0, NULL,
	                                NULL, &f->err),
	                     IOTP_OK);
	store_rollback(f->st);
	assert_int_equal(store_tx_depth(f->st), 1);
	assert_int_equal(store_exec(f->st, "INSERT INTO t (k) VALUES ('d')", NULL, 0, NULL, NULL,
	                            &f->err),
	                 IOTP_ERR_BUSY);
	assert_int_equal(store_commit(f->st, &f->err), IOTP_ERR_BUSY);
	assert_int_equal(store_tx_depth(f->st), 0);
	assert_int_equal(sfx_int(killer, "SELECT COUNT(*) FROM t", NULL), 0);
	/* The retry goes through on a fresh connection. */
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	sfx_exec(f->st, "INSERT INTO t (k) VALUES ('a')");
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
	assert_int_equal(sfx_int(killer, "SELECT COUNT(*) FROM t", NULL), 1);
	store_close(killer);
}

static void listener_resubscribes_after_reconnect(void **state)
{
	struct sfx *f = *state;
	struct store *other;
	int woken = 0;
	int64_t v;

	if (!sfx_is_pg())
		skip();
	other = sfx_open(f);
	assert_int_equal(store_events_listen(f->st, &f->err), IOTP_OK);
	kill_session(other, f->st);
	/* The tailer's next read reconnects... */
	assert_int_equal(store_query_int(f->st, "SELECT 1", NULL, 0, &v, &f->err), IOTP_OK);
	/* ...and the reconnect itself counts as a wake-up (something may have
	 * been missed meanwhile). */
	assert_true(store_events_drain(f->st) > 0);
	assert_int_equal(store_events_drain(f->st), 0);
	/* New commits wake it again. */
	assert_int_equal(store_event_append(other, "system", "r.one", "x/1", NULL, NULL, &f->err),
	                 IOTP_OK);
	assert_int_equal(store_events_wait(f->st, 5000, &woken, &f->err), IOTP_OK);
	assert_int_equal(woken, 1);
	store_close(other);
}

/* ---- a server restart in the middle of a stream of transactions ---- */

#define REGS 3000
#define RESTART_AT 100

struct loader {
	const char *url;
	int done;
	int busy;
	iotp_rc rc;
	char msg[IOTP_ERR_MSG_MAX];
};

static void *load_worker(void *arg)
{
	struct loader *l = arg;
	struct store *st = NULL;
	struct iotp_err err;
	int64_t deadline = util_mono_ms() + 120000;

	if ((l->rc = store_open(l->url, &st, &err)) != IOTP_OK)
		goto out;
	while (l->done < REGS) {
		char name[32];
		struct store_val p[2];

		snprintf(name, sizeof(name), "dev-%04d", l->done);
		p[0] = SV_INT(l->done);
		p[1] = SV_TEXT(name);
		l->rc = store_begin(st, &err);
		if (l->rc == IOTP_OK)
			l->rc = store_exec(st, "INSERT INTO regs (seq, name) VALUES (?, ?)", p, 2, NULL,
			                   NULL, &err);
		if (l->rc == IOTP_OK)
			l->rc = store_event_append(st, "system", "reg.create", name, NULL, NULL, &err);
		if (l->rc == IOTP_OK)
			l->rc = store_commit(st, &err);
		else if (store_tx_depth(st) > 0)
			store_rollback(st);
		if (l->rc == IOTP_OK) {
			l->done++;
			continue;
		}
		/* BUSY means "not done, do it again"; anything else is a failure. */
		if (l->rc != IOTP_ERR_BUSY || util_mono_ms() > deadline)
			goto out;
		l->busy++;
		{
			struct timespec ts = {0, 50 * 1000000L};

			nanosleep(&ts, NULL);
		}
	}
	l->rc = IOTP_OK;
out:
	if (l->rc != IOTP_OK)
		util_strlcpy(l->msg, err.msg, sizeof(l->msg));
	store_close(st);
	return NULL;
}

static void restart_mid_load_loses_nothing(void **state)
{
	struct sfx *f = *state;
	const char *restart = getenv("IOTP_PG_RESTART");
	struct loader l = {.url = f->ts.url};
	pthread_t th;
	int64_t deadline;

	if (!sfx_is_pg() || restart == NULL || *restart == '\0')
		skip();
	/* seq is not unique on purpose: a duplicate would show, not fail. */
	sfx_exec(f->st, "CREATE TABLE regs (seq INTEGER NOT NULL, name TEXT NOT NULL)");
	assert_int_equal(pthread_create(&th, NULL, load_worker, &l), 0);
	deadline = util_mono_ms() + 60000;
	while (l.done < RESTART_AT && l.rc == IOTP_OK && util_mono_ms() < deadline) {
		struct timespec ts = {0, 2 * 1000000L};

		nanosleep(&ts, NULL);
	}
	assert_int_equal(system(restart), 0);
	pthread_join(th, NULL);
	if (l.rc != IOTP_OK)
		fail_msg("loader after %d rows: %s", l.done, l.msg);
	{
		int64_t v;

		/* This connection died in the restart too, while idle: the next
		 * call reconnects first. */
		assert_int_equal(store_query_int(f->st, "SELECT 1", NULL, 0, &v, &f->err), IOTP_OK);
	}
	/* The writer saw the restart as retryable errors... */
	assert_true(l.busy > 0);
	/* ...and every row is there exactly once, with its event. */
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM regs", NULL), REGS);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(DISTINCT seq) FROM regs", NULL), REGS);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM events WHERE action = 'reg.create'",
	                         NULL),
	                 REGS);
}

int suite_connection(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(lost_connection_outside_tx, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(read_survives_connection_loss, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(write_is_not_repeated_after_loss, sfx_setup,
		                                sfx_teardown),
		cmocka_unit_test_setup_teardown(lost_connection_inside_tx, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(listener_resubscribes_after_reconnect, sfx_setup,
		                                sfx_teardown),
		cmocka_unit_test_setup_teardown(restart_mid_load_loses_nothing, sfx_setup, sfx_teardown),
	};

	return cmocka_run_group_tests_name("store.connection", tests, NULL, NULL);
}
