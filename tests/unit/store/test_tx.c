/*
 * Conformance: nested transactions (savepoints), what another connection
 * sees, and a failed statement poisoning only its own level.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static void insert_k(struct sfx *f, const char *k)
{
	struct store_val p[] = {SV_TEXT(k)};

	assert_int_equal(store_exec(f->st, "INSERT INTO t (k) VALUES (?)", p, 1, NULL, NULL, &f->err),
	                 IOTP_OK);
}

static int64_t has_k(struct store *st, const char *k)
{
	return sfx_int(st, "SELECT COUNT(*) FROM t WHERE k = ?", k);
}

static void nested_commit_and_rollback(void **state)
{
	struct sfx *f = *state;
	struct store *other;

	sfx_table_t(f->st);
	other = sfx_open(f);

	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	insert_k(f, "a");
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	insert_k(f, "b");
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	insert_k(f, "c");
	assert_int_equal(store_tx_depth(f->st), 3);
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK); /* c into level 2 */
	assert_int_equal(store_tx_depth(f->st), 2);
	store_rollback(f->st); /* level 2 with b and c */
	assert_int_equal(store_tx_depth(f->st), 1);
	assert_int_equal(has_k(f->st, "a"), 1);
	assert_int_equal(has_k(f->st, "b"), 0);
	assert_int_equal(has_k(f->st, "c"), 0);
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	insert_k(f, "d");
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
	/* Not visible elsewhere before the outermost commit. */
	assert_int_equal(sfx_int(other, "SELECT COUNT(*) FROM t", NULL), 0);
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_tx_depth(f->st), 0);
	assert_int_equal(sfx_int(other, "SELECT COUNT(*) FROM t", NULL), 2);
	assert_int_equal(has_k(other, "a"), 1);
	assert_int_equal(has_k(other, "d"), 1);

	/* Rolling back the outermost level undoes committed inner levels. */
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	insert_k(f, "e");
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	insert_k(f, "f");
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
	store_rollback(f->st);
	assert_int_equal(store_tx_depth(f->st), 0);
	assert_int_equal(has_k(other, "e") + has_k(other, "f"), 0);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM t", NULL), 2);

	/* Misuse: commit without begin; rollback without begin is a no-op. */
	assert_int_equal(store_commit(f->st, &f->err), IOTP_ERR_INTERNAL);
	store_rollback(f->st);
	assert_int_equal(store_tx_depth(f->st), 0);
	store_close(other);
}

static void failure_in_nested_level_keeps_outer_usable(void **state)
{
	struct sfx *f = *state;
	struct store_val dup[] = {SV_TEXT("a")};

	sfx_table_t(f->st);
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	insert_k(f, "a");
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	insert_k(f, "b");
	assert_int_equal(store_exec(f->st, "INSERT INTO t (k) VALUES (?)", dup, 1, NULL, NULL,
	                            &f->err),
	                 IOTP_ERR_EXISTS);
	/* The failed level refuses everything but a rollback, on every
	 * backend alike. */
	assert_int_not_equal(store_exec(f->st, "SELECT COUNT(*) FROM t", NULL, 0, NULL, NULL,
	                                &f->err),
	                     IOTP_OK);
	assert_int_not_equal(store_begin(f->st, &f->err), IOTP_OK);
	assert_int_not_equal(store_commit(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_tx_depth(f->st), 2);
	store_rollback(f->st);
	assert_int_equal(store_tx_depth(f->st), 1);
	/* The outer level goes on: a is there, b went with the inner level. */
	assert_int_equal(has_k(f->st, "a"), 1);
	assert_int_equal(has_k(f->st, "b"), 0);
	insert_k(f, "c");
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM t", NULL), 2);
	assert_int_equal(has_k(f->st, "c"), 1);
}

static void failure_at_top_level_rolls_back_on_commit(void **state)
{
	struct sfx *f = *state;
	struct store_val dup[] = {SV_TEXT("x")};

	sfx_table_t(f->st);
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	insert_k(f, "x");
	assert_int_equal(store_exec(f->st, "INSERT INTO t (k) VALUES (?)", dup, 1, NULL, NULL,
	                            &f->err),
	                 IOTP_ERR_EXISTS);
	assert_int_not_equal(store_exec(f->st, "INSERT INTO t (k) VALUES ('y')", NULL, 0, NULL,
	                                NULL, &f->err),
	                     IOTP_OK);
	/* Commit refuses and leaves nothing open; nothing landed. */
	assert_int_not_equal(store_commit(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_tx_depth(f->st), 0);
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM t", NULL), 0);
	/* The connection is usable again. */
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	insert_k(f, "x");
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
	assert_int_equal(has_k(f->st, "x"), 1);
}

static void statement_failure_outside_tx_is_isolated(void **state)
{
	struct sfx *f = *state;

	sfx_table_t(f->st);
	insert_k(f, "a");
	assert_int_equal(store_exec(f->st, "INSERT INTO t (k) VALUES ('a')", NULL, 0, NULL, NULL,
	                            &f->err),
	                 IOTP_ERR_EXISTS);
	/* Outside a transaction nothing is poisoned. */
	insert_k(f, "b");
	assert_int_equal(sfx_int(f->st, "SELECT COUNT(*) FROM t", NULL), 2);
}

static void empty_levels_and_savepoint_first(void **state)
{
	struct sfx *f = *state;

	sfx_table_t(f->st);
	/* Empty transactions commit and roll back. */
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	store_rollback(f->st);
	/* A savepoint before the transaction's first statement. */
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	insert_k(f, "inner");
	store_rollback(f->st);
	assert_int_equal(store_begin(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
	insert_k(f, "outer");
	assert_int_equal(store_commit(f->st, &f->err), IOTP_OK);
	assert_int_equal(store_tx_depth(f->st), 0);
	assert_int_equal(has_k(f->st, "inner"), 0);
	assert_int_equal(has_k(f->st, "outer"), 1);
}

int suite_tx(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(nested_commit_and_rollback, sfx_setup, sfx_teardown),
		cmocka_unit_test_setup_teardown(failure_in_nested_level_keeps_outer_usable, sfx_setup,
		                                sfx_teardown),
		cmocka_unit_test_setup_teardown(failure_at_top_level_rolls_back_on_commit, sfx_setup,
		                                sfx_teardown),
		cmocka_unit_test_setup_teardown(statement_failure_outside_tx_is_isolated, sfx_setup,
		                                sfx_teardown),
		cmocka_unit_test_setup_teardown(empty_levels_and_savepoint_first, sfx_setup,
		                                sfx_teardown),
	};

	return cmocka_run_group_tests_name("store.tx", tests, NULL, NULL);
}
