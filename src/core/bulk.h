/*
 * Bulk registration tasks (StartThingRegistrationTask and friends): a
 * provisioning template applied to every record of an input file, in the
 * background, resumable, stoppable, with a report line per input record.
 *
 * Model (tables bulk_tasks and bulk_reports, migration 4):
 * - A task names its input file by bucket and key under the configured
 *   import directory ([provisioning] import_dir, default DATA_DIR/import:
 *   the file is IMPORT_DIR/<bucket>/<key>) and its format (manifest.h:
 *   jsonl by default).
 * - A runner applies records in batches. Each batch is ONE store
 *   transaction holding every line's prov_apply (each nested, so a failing
 *   line rolls back only itself), a report row per record, and the task's
 *   cursor (byte offset and line count of the input consumed) and
 *   counters. So a process killed at any moment resumes exactly after the
 *   last committed batch: no record is applied twice or skipped. Applying a
 *   template is idempotent as well (provision.h), so even a record repeated
 *   in the input creates nothing twice.
 * - Stopping sets the status to Cancelled at once; a runner that finds the
 *   task no longer InProgress at the start of its next batch transaction
 *   rolls that batch back, so the counters of a stopped task never move.
 *   The same check (status and cursor) makes two runners on one store (two
 *   iotprovd on one PostgreSQL) safe: only one of them commits a batch.
 * - Failures of the store itself (busy, I/O) are not a record's fault: the
 *   batch is rolled back and retried later, never reported as an error line.
 *
 * Statuses (AWS Status enum): InProgress, Completed, Failed (the input or
 * the template cannot be used at all; message says why), Cancelled.
 * Cancelling is never stored (stop is immediate).
 *
 * Report lines (one JSON object per input record, by line number):
 *   RESULTS {"lineNumber": N, "thingName", "thingArn", "certificateId"?,
 *            "policyName"?, "thingCreated": bool}
 *   ERRORS  {"lineNumber": N, "error": "<iotp_strerror>", "reason": "..."}
 *
 * Conventions are those of registry.h (core, actor, err, events, codes).
 * Events: task.start, task.stop, task.complete, task.fail, object
 * "thingregistrationtask/<id>".
 */
#ifndef IOTP_BULK_H
#define IOTP_BULK_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "core/core.h"
#include "core/registry.h"

#define BULK_TASK_ID_MAX 40
#define BULK_BUCKET_MAX 256
#define BULK_KEY_MAX 1024
#define BULK_STATUS_MAX 16
#define BULK_FORMAT_MAX 16
#define BULK_BATCH_DEFAULT 500        /* records per transaction, at most */
#define BULK_BATCH_MS 250             /* and at most this long: the batch holds
                                       * the store's write lock */
#define BULK_REPORT_PART_LINES 10000  /* report lines per resource link */

struct bulk_task {
	char id[BULK_TASK_ID_MAX + 1];
	char status[BULK_STATUS_MAX];      /* "InProgress", "Completed", ... */
	char *template_body;               /* owned; NULL in list results */
	char bucket[BULK_BUCKET_MAX + 1];
	char key[BULK_KEY_MAX + 1];
	char format[BULK_FORMAT_MAX];
	char *role_arn;                    /* owned, NULL when none */
	char *message;                     /* owned, NULL when none */
	int64_t success_count;
	int64_t failure_count;
	int64_t input_size;                /* bytes, when the task started */
	int64_t cursor_offset;             /* bytes applied */
	int64_t cursor_line;               /* lines applied */
	int percentage;                    /* 0..100 */
	int64_t created;
	int64_t updated;
};
void bulk_task_cleanup(struct bulk_task *t);

struct bulk_start {
	const char *template_body;  /* required, <= 10240 characters */
	const char *bucket;         /* required, [a-zA-Z0-9._-]{3,256} */
	const char *key;            /* required, 1..1024, no "." or ".." segment */
	const char *format;         /* NULL: "jsonl" */
	const char *role_arn;       /* optional, stored as given */
};
/* StartThingRegistrationTask: checks the template (template_parse, kind
 * ANY: INVALID with its problems), the format (INVALID naming the known
 * ones) and that the input file exists and is readable (INVALID naming the
 * bucket and key: AWS reports a missing S3 object the same way), then
 * records the task InProgress. id receives the new task id. */
iotp_rc bulk_task_start(struct iotp_core *core, const char *actor, const struct bulk_start *in,
                        char id[BULK_TASK_ID_MAX + 1], struct iotp_err *err);

/* DescribeThingRegistrationTask. NOT_FOUND when absent. */
iotp_rc bulk_task_describe(struct iotp_core *core, const char *id, struct bulk_task *out,
                           struct iotp_err *err);

/* ListThingRegistrationTasks: task ids, oldest first, optionally only of
 * one status (an unknown status is INVALID). Default page
 * REGISTRY_PAGE_DEFAULT. */
iotp_rc bulk_task_list(struct iotp_core *core, const char *status,
                       const struct registry_page *page, struct registry_str_list *out,
                       struct iotp_err *err);

/* StopThingRegistrationTask: an InProgress task becomes Cancelled (no more
 * batch commits from then on). Stopping a task that has already ended is
 * success without change. NOT_FOUND when absent. */
iotp_rc bulk_task_stop(struct iotp_core *core, const char *actor, const char *id,
                       struct iotp_err *err);

/* Report lines of a task of one kind ("RESULTS" or "ERRORS"; INVALID
 * otherwise): *count is how many there are (NOT_FOUND for an unknown
 * task). */
iotp_rc bulk_report_count(struct iotp_core *core, const char *id, const char *kind,
                          int64_t *count, struct iotp_err *err);
/* Appends part `part` (0-based, BULK_REPORT_PART_LINES lines each, by line
 * number) of a report to out as JSON lines. A part past the end appends
 * nothing. */
iotp_rc bulk_report_part(struct iotp_core *core, const char *id, const char *kind,
                         int64_t part, struct buf *out, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Input files                                                         */

/* IMPORT_DIR/<bucket>/<key> into out after checking bucket and key (the
 * model's patterns, no empty, "." or ".." segment, no leading '/'), so
 * that a task can read nothing outside the import directory. INVALID
 * otherwise. */
iotp_rc bulk_input_path(const struct iotp_conf *conf, const char *bucket, const char *key,
                        char *out, size_t size, struct iotp_err *err);

/* Writes len bytes at offset of the input file bucket/key, creating
 * directories under the import directory as needed, for uploads in
 * chunks: offset 0 starts the file afresh; any other offset must equal the
 * file's current size (else IOTP_ERR_CONFLICT with the size in the
 * message), so a retried chunk cannot corrupt the file. *size_after
 * receives the new size. */
iotp_rc bulk_input_write(const struct iotp_conf *conf, const char *bucket, const char *key,
                         int64_t offset, const void *data, size_t len, int64_t *size_after,
                         struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Running tasks                                                       */

/* The oldest InProgress task into id. NOT_FOUND when there is none. */
iotp_rc bulk_task_next_runnable(struct iotp_core *core, char id[BULK_TASK_ID_MAX + 1],
                                struct iotp_err *err);

/* One task being applied by one thread (its own core). */
struct bulk_run;

/* Opens the task's input at its cursor and parses its template. When the
 * input or the template cannot be used (file gone, malformed csv header,
 * file shorter than the cursor) the task is marked Failed with the reason
 * and that error is returned. IOTP_ERR_STATE when the task is not
 * InProgress. Free with bulk_run_close(). */
iotp_rc bulk_run_open(struct iotp_core *core, const char *id, struct bulk_run **out,
                      struct iotp_err *err);

/* Applies up to batch records (0: BULK_BATCH_DEFAULT) in one transaction,
 * ending the batch early once it has run BULK_BATCH_MS, so that other
 * writers of the store (API requests) never wait long for the lock.
 * *finished becomes 1 when the task has ended: input exhausted (now
 * Completed), or stopped or taken over meanwhile (nothing of this batch was
 * committed). On an error the batch is rolled back and the run stays
 * usable: call again later (the reader rewinds to the stored cursor). */
iotp_rc bulk_run_step(struct bulk_run *run, int batch, int *finished, struct iotp_err *err);

/* Records applied by this run so far (successes + failures). */
int64_t bulk_run_applied(const struct bulk_run *run);

void bulk_run_close(struct bulk_run *run);

#endif
