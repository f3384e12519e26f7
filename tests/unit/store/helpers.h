/*
 * Shared fixture of the store conformance suite: a fresh store per test on
 * the backend IOTP_STORE_URL names (see tests/common/test_store.h), and small
 * assertion helpers. The suite calls only store.h, so the same binary checks
 * SQLite (default) and PostgreSQL (ctest label pg).
 */
#ifndef IOTP_TEST_STORE_HELPERS_H
#define IOTP_TEST_STORE_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../common/test_store.h"
#include "core/store/store.h"

struct sfx {
	struct test_store ts;
	struct store *st;
	struct iotp_err err;
};

int sfx_setup(void **state);
int sfx_teardown(void **state);

/* 1 when the suite runs against PostgreSQL. */
int sfx_is_pg(void);
/* Opens another connection to the fixture's store (caller closes). */
struct store *sfx_open(struct sfx *f);
/* Runs sql without parameters and asserts success. */
void sfx_exec(struct store *st, const char *sql);
/* A scalar integer query with up to one text parameter (NULL: none). */
int64_t sfx_int(struct store *st, const char *sql, const char *param);
/* Creates table t (k TEXT PRIMARY KEY, i INTEGER, s TEXT, b BLOB). */
void sfx_table_t(struct store *st);

int suite_basic(void);
int suite_tx(void);
int suite_events(void);
int suite_concurrency(void);
int suite_connection(void);

#endif
