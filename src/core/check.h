/*
 * The store's integrity check (`iotprov check`): what must hold in a store
 * that only iotprov has written, after any crash, disk-full or restore.
 *
 * Every rule is one portable SQL query (or one ordered scan) run on the
 * store of either backend, so a check needs no transaction and does not
 * block writers: each rule sees one consistent snapshot of the rows it
 * reads. The rules, with the stable `kind` each problem carries:
 *
 *   foreign_key        a declared reference points at no row (the schema's
 *                      REFERENCES clauses, checked with joins; on SQLite
 *                      also PRAGMA foreign_key_check for any other)
 *   dangling_target    a policy attached to "cert/<id>" or
 *                      "thinggroup/<name>" that does not exist, or to a
 *                      target of another form
 *   dangling_principal a thing principal "cert/<id>" that does not exist
 *   missing_version    a policy or template whose default version is gone
 *   group_cycle        a thing group whose parent chain loops or runs
 *                      deeper than any hierarchy the registry allows
 *   bad_status         a certificate or CA status outside the known set
 *   cert_id            a certificate or CA row whose id is not the SHA-256
 *                      of its own DER, or whose PEM does not parse
 *   cert_chain         an ACTIVE certificate not signed by its CA (ca_id),
 *                      or, with no ca_id in mode DEFAULT (issued by
 *                      iotprov), by none of the ACTIVE CAs; SNI_ONLY
 *                      certificates registered without a CA are exempt
 *   cert_ca_inactive   an ACTIVE certificate under a CA that is not ACTIVE
 *                      (a warning: deactivating a CA leaves its
 *                      certificates' own status alone, as at AWS)
 *   pending_not_swept  a PENDING_ACTIVATION certificate issued by fleet
 *                      provisioning whose ownership tokens all expired
 *                      unused more than pending_grace seconds ago: the
 *                      sweep should have deleted it
 *   event_order        event ids not strictly increasing, or the id
 *                      sequence behind the largest id (the next event
 *                      would reuse or precede an old id)
 *   event_time         an event's time more than CHECK_EVENT_SLACK_MS
 *                      before its predecessor's (a warning: the wall
 *                      clock stepped back, or ids were handed out of order)
 *
 * Thread-safety: as the store (one connection per thread).
 */
#ifndef IOTP_CHECK_H
#define IOTP_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "core/store/store.h"

#define CHECK_MAX_PROBLEMS 1000     /* problems kept; the rest only counted */
#define CHECK_PENDING_GRACE 180     /* seconds: three sweep intervals */
#define CHECK_EVENT_SLACK_MS 2000   /* tolerated step back of event times */
#define CHECK_OBJECT_MAX 200
#define CHECK_DETAIL_MAX 256

enum check_severity { CHECK_ERROR = 0, CHECK_WARNING = 1 };

struct check_problem {
	enum check_severity severity;
	const char *kind;               /* static: one of the names above */
	char object[CHECK_OBJECT_MAX];  /* "cert/<id>", "thing/<name>", "table row" */
	char detail[CHECK_DETAIL_MAX];  /* what is wrong, for a person */
};

struct check_opts {
	int64_t now;            /* epoch seconds; 0: the current time */
	int64_t pending_grace;  /* seconds; < 0: CHECK_PENDING_GRACE */
};

/* What a check found. Owned by the caller: release with
 * check_report_cleanup(). */
struct check_report {
	struct check_problem *problems; /* the first CHECK_MAX_PROBLEMS found */
	size_t count;                   /* kept in problems[] */
	size_t errors, warnings;        /* all found, kept or not */
	/* What was looked at, for the summary line. */
	int64_t certificates, cas, things, events, rules;
};

/* Runs every rule over st. Problems found are not errors: the call returns
 * IOTP_OK with them in *out (written only on success). IOTP_ERR_DB (or
 * BUSY, NOMEM) when a query itself fails. opts may be NULL (defaults). */
iotp_rc check_run(struct store *st, const struct check_opts *opts, struct check_report *out,
                  struct iotp_err *err);

/* Frees what check_run put in r and zeroes it. NULL-safe. */
void check_report_cleanup(struct check_report *r);

/* "error" or "warning". */
const char *check_severity_name(enum check_severity s);

/* The declared references check_run verifies with joins, for tests that
 * compare them with the schema: child table and column, parent table and
 * column. Returns NULL past the end. */
struct check_fk {
	const char *table, *column, *parent, *parent_column;
};
const struct check_fk *check_fk_at(size_t i);

#endif
