/*
 * Conformance: the event log (ids, paging, last id, transactions) and the
 * change notifications that wake tailers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "helpers.h"

struct seen {
	int n;
	int64_t id[16];
	int64_t ts[16];
	char action[16][32];
	char object[16][32];
	char detail[16][64];
	int detail_null[16];
};

static int seen_ev(void *ud, const struct store_event *ev)
{
	struct seen *s = ud;

	assert_true(s->n < 16);
	s->id[s->n] = ev->id;
	s->ts[s->n] = ev->ts_ms;
	util_strlcpy(s->action[s->n], ev->action, sizeof(s->action[0]));
	util_strlcpy(s->object[s->n], ev->object, sizeof(s->object[0]));
	s->detail_null[s->n] = ev->detail == NULL;
	util_strlcpy(s->detail[s->n], ev->detail != NULL ? ev->detail : "", sizeof(s->detail[0]));
	s->n++;
	return 0;
}

static void append_ids_grow_and_page(void **state)
{
	struct sfx *f = *state;
	int64_t ids[5], last = -1, before = util_now() * 1000;
	struct seen s = {0};
	char obj[32];

	assert_int_equal(store_events_last_id(f->st, &last, &f->err), IOTP_OK);
	assert_int_equal(last, 0);
	for (int i = 0; i < 5; i++) {
		snprintf(obj, sizeof(obj), "thing/t%d", i);
		assert_int_equal(store_event_append(f->st, "system", "thing.create", obj,
		                                    i == 2 ? NULL : "{\"n\":1}", &ids[i], &f->err),
		                 IOTP_OK);
		if (i > 0)
			assert_true(ids[i] > ids[i - 1]);
	}
	assert_int_equal(store_events_last_id(f->st, &last, &f->err), IOTP_OK);
	assert_int_equal(last, ids[4]);

	/* Pages of two, oldest first, each starting after the last id seen. */
	assert_int_equal(store_events_since(f->st, 0, 2, seen_ev, &s, &f->err), IOTP_OK);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.id[0], ids[0]);
	assert_int_equal(s.id[1], ids[1]);
	assert_string_equal(s.action[0], "thing.create");
	assert_string_equal(s.object[1], "thing/t1");
	assert_string_equal(s.detail[0], "{\"n\":1}");
	assert_true(s.ts[0] >= before - 2000 && s.ts[0] <= util_now() * 1000 + 2000);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_events_since(f->st, ids[1], 2, seen_ev, &s, &f->err), IOTP_OK);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.id[0], ids[2]);
	assert_true(s.detail_null[0]);
	assert_int_equal(s.id[1], ids[3]);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_events_since(f->st, ids[3], 10, seen_ev, &s, &f->err), IOTP_OK);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.id[0], ids[4]);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_events_since(f->st, ids[4], 10, seen_ev, &s, &f->err), IOTP_OK);
	assert_int_equal(s.n, 0);
}

static void rolled_back_events_vanish(void **state)
{
	struct sfx *f = *state;
	int64_t last0 = -1, gone = 0, kept = 0, inner = 0, last = -1, next = 0;
	struct seen s = {0};

	assert_int_equal(store_event_append(f->st, "system", "a.first", "x/1", NULL, &last0,
	                                    &f->err),
	                 IOTP_OK);
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_event_append(f->st, "system", "a.gone", "x/2", NULL, &gone, &f->err),
	                 IOTP_OK);
	store_rollback(f->st);
	assert_int_equal(store_events_last_id(f->st, &last, &f->err), IOTP_OK);
	assert_int_equal(last, last0);
	assert_int_equal(store_events_since(f->st, last0, 10, seen_ev, &s, &f->err), IOTP_OK);
	assert_int_equal(s.n, 0);

	/* Nested: the inner level's event goes with it, the outer one stays. */
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_event_append(f->st, "system", "a.kept", "x/3", NULL, &kept, &f->err),
	                 IOTP_OK);
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_event_append(f->st, "system", "a.inner", "x/4", NULL, &inner,
	                                    &f->err),
	                 IOTP_OK);
	store_rollback(f->st);
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_events_since(f->st, last0, 10, seen_ev, &s, &f->err), IOTP_OK);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.id[0], kept);
	assert_string_equal(s.action[0], "a.kept");
	/* Ids keep growing past the ones that vanished (gaps are allowed). */
	assert_int_equal(store_event_append(f->st, "system", "a.next", "x/5", NULL, &next, &f->err),
	                 IOTP_OK);
	assert_true(next > kept);
	assert_true(kept > last0);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM events", NULL), 3);
}

static void notifications_wake_on_commit_only(void **state)
{
	struct sfx *f = *state;
	struct store *writer = sfx_open(f);
	int woken = -1;
	int64_t t0, id = 0;
	struct seen s = {0};

	assert_int_equal(store_events_listen(f->st, &f->err), IOTP_OK);
	if (!sfx_is_pg()) {
		/* SQLite: no descriptor; waiting is a plain sleep, and tailers read
		 * the feed each time. */
		assert_int_equal(store_events_fd(f->st), -1);
		assert_int_equal(store_events_drain(f->st), 0);
		t0 = util_mono_ms();
		assert_int_equal(store_events_wait(f->st, 60, &woken, &f->err), IOTP_OK);
		assert_int_equal(woken, 0);
		assert_true(util_mono_ms() - t0 >= 50);
		store_close(writer);
		return;
	}
	assert_true(store_events_fd(f->st) >= 0);
	(void)store_events_drain(f->st);

	/* Appended but not committed: nobody wakes. */
	assert_int_equal(store_begin(writer, &f->err), IOTP_OK);
	assert_int_equal(store_event_append(writer, "system", "n.one", "x/1", NULL, &id, &f->err),
	                 IOTP_OK);
	assert_int_equal(store_events_wait(f->st, 200, &woken, &f->err), IOTP_OK);
	assert_int_equal(woken, 0);
	/* Committed: the listener wakes at once and the feed has it. */
	assert_int_equal(store_commit(writer, &f->err), IOTP_OK);
	t0 = util_mono_ms();
	assert_int_equal(store_events_wait(f->st, 5000, &woken, &f->err), IOTP_OK);
	assert_int_equal(woken, 1);
	assert_true(util_mono_ms() - t0 < 1000);
	assert_int_equal(store_events_since(f->st, 0, 10, seen_ev, &s, &f->err), IOTP_OK);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.id[0], id);

	/* Rolled back: nobody wakes. */
	assert_int_equal(store_begin(writer, &f->err), IOTP_OK);
	assert_int_equal(store_event_append(writer, "system", "n.two", "x/2", NULL, NULL, &f->err),
	                 IOTP_OK);
	store_rollback(writer);
	assert_int_equal(store_events_wait(f->st, 200, &woken, &f->err), IOTP_OK);
	assert_int_equal(woken, 0);

	/* A notification that arrives while the listener runs a query is kept
	 * for the next drain, not lost. */
	assert_int_equal(store_event_append(writer, "system", "n.three", "x/3", NULL, NULL,
	                                    &f->err),
	                 IOTP_OK);
	{
		struct timespec ts = {0, 100 * 1000000L};

		nanosleep(&ts, NULL);
	}
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM events", NULL), 2);
	assert_true(store_events_drain(f->st) > 0);
	assert_int_equal(store_events_drain(f->st), 0);
	store_close(writer);
}

int suite_events(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(append_ids_grow_and_page, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(rolled_back_events_vanish, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(notifications_wake_on_commit_only, sfx_setup,
		                                sfx_teardown),
	};

	return cmocka_run_group_tests_name("store.events", tests, NULL, NULL);
}
