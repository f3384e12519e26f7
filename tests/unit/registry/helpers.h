/*
 * Shared fixtures of the registry unit tests: a core over a fresh SQLite
 * store in a temporary directory, an issuing CA built with pki.h, a dump of
 * every table (to prove a refused call changed nothing) and event counting.
 */
#ifndef IOTP_TEST_REGISTRY_HELPERS_H
#define IOTP_TEST_REGISTRY_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../common/test_store.h"
#include "common/conf.h"
#include "core/core.h"
#include "core/registry.h"

#define ACTOR "key:AKIATEST"

struct fx {
	char dir[256];
	struct test_store ts; /* the store: SQLite in a temp dir, or IOTP_STORE_URL's */
	struct iotp_conf conf;
	struct iotp_core core;
	struct iotp_err err;
};

/* cmocka setup/teardown: a new store each test (with an issuing CA). */
int fx_setup(void **state);
int fx_teardown(void **state);

/* Every row of every table, as text; malloc'ed. */
char *fx_dump(struct fx *f);
/* Rows of events matching action (and object when not NULL). */
int64_t fx_events(struct fx *f, const char *action, const char *object);
/* Events whose actor is not ACTOR. */
int64_t fx_foreign_events(struct fx *f);
int64_t fx_event_total(struct fx *f);
/* A scalar query. */
int64_t fx_int(struct fx *f, const char *sql);

/* Test CAs and certificates. */
struct pki_ca;
void fx_make_root(const char *cn, struct pki_ca *out);
/* An end-entity certificate for a new P-256 key, signed by ca; PEM malloc'ed. */
char *fx_issue_pem(const struct pki_ca *ca, const char *cn, int days);
/* A PEM CSR for a new P-256 key; malloc'ed. */
char *fx_csr_pem(const char *cn);
char *fx_cert_pem(X509 *x);

/* Groups of tests, one per file. */
int suite_thing(void);
int suite_group(void);
int suite_policy(void);
int suite_cert(void);
int suite_ca(void);

#endif
