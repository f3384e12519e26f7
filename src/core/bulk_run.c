/*
 * The runner of bulk registration tasks (see bulk.h): reads records from
 * the input file with the task's manifest format and applies the task's
 * template to each with prov_apply, a batch per store transaction that
 * also moves the task's cursor and counters and writes the report lines.
 *
 * The reader is always positioned at the cursor stored in the task. When a
 * batch fails to commit, the reader is ahead of the store; it is reopened
 * at the stored cursor before the next batch, so what the store says has
 * been applied and what will be read next never disagree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "core/bulk.h"
#include "core/bulk_internal.h"
#include "core/manifest.h"
#include "core/provision.h"
#include "core/template.h"

struct bulk_run {
	struct iotp_core *core;
	char id[BULK_TASK_ID_MAX + 1];
	char actor[160];
	struct template *tmpl;
	const struct manifest_format *fmt;
	char path[CONF_STR_MAX * 3];
	struct manifest_file *mf;   /* NULL until (re)opened */
	int64_t offset;             /* the cursor the reader is at */
	int64_t line;
	int64_t applied;
};

/* Marks the task Failed (only while InProgress) with message, in its own
 * transaction. Errors are logged: the caller is already failing. */
static void mark_failed(struct iotp_core *core, const char *id, const char *message)
{
	struct store_val p[] = {SV_TEXT(message), SV_INT(util_now()), SV_TEXT(id)};
	struct iotp_err e;
	int64_t changes = 0;
	iotp_rc rc;

	if ((rc = store_begin(core->store, &e)) == IOTP_OK) {
		rc = store_exec_changes(core->store,
		                        "UPDATE bulk_tasks SET status = 'Failed', message = ?, "
		                        "updated = ? WHERE id = ? AND status = 'InProgress'",
		                        p, 3, &changes, &e);
		if (rc == IOTP_OK && changes > 0)
			rc = bulk_event(core, "system", "task.fail", id,
			                json_pack("{s:s}", "message", message), &e);
		if (rc == IOTP_OK)
			rc = store_commit(core->store, &e);
		else
			store_rollback(core->store);
	}
	if (rc != IOTP_OK)
		LOG_ERROR("task %s: cannot record its failure (%s): %s", id, message, e.msg);
	else
		LOG_WARN("task %s failed: %s", id, message);
}

static iotp_rc reopen(struct bulk_run *run, struct iotp_err *err)
{
	struct bulk_task t;
	iotp_rc rc;

	memset(&t, 0, sizeof(t));
	manifest_file_close(run->mf);
	run->mf = NULL;
	if ((rc = bulk_task_describe(run->core, run->id, &t, err)) != IOTP_OK)
		return rc;
	rc = manifest_file_open(run->path, run->fmt, t.cursor_offset, t.cursor_line, &run->mf,
	                        err);
	if (rc == IOTP_OK) {
		run->offset = t.cursor_offset;
		run->line = t.cursor_line;
	} else if (rc != IOTP_ERR_NOMEM && strcmp(t.status, "InProgress") == 0) {
		/* The input went away or changed under the task. */
		mark_failed(run->core, run->id, err != NULL ? err->msg : iotp_strerror(rc));
	}
	bulk_task_cleanup(&t);
	return rc;
}

iotp_rc bulk_run_open(struct iotp_core *core, const char *id, struct bulk_run **out,
                      struct iotp_err *err)
{
	struct bulk_run *run = calloc(1, sizeof(*run));
	struct bulk_task t;
	char *actor = NULL;
	struct store_val p[] = {SV_TEXT(id)};
	iotp_rc rc;

	memset(&t, 0, sizeof(t));
	if (run == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "task runner: out of memory");
	run->core = core;
	if ((rc = bulk_task_describe(core, id, &t, err)) != IOTP_OK)
		goto out;
	if (strcmp(t.status, "InProgress") != 0) {
		rc = iotp_err_set(err, IOTP_ERR_STATE, "task %s is %s", id, t.status);
		goto out;
	}
	util_strlcpy(run->id, t.id, sizeof(run->id));
	if ((rc = store_query_text(core->store, "SELECT actor FROM bulk_tasks WHERE id = ?", p, 1,
	                           &actor, err)) != IOTP_OK)
		goto out;
	util_strlcpy(run->actor, actor != NULL ? actor : "system", sizeof(run->actor));
	run->fmt = manifest_format_find(t.format);
	if (run->fmt == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "unknown input format '%s'", t.format);
		goto fail_task;
	}
	if ((rc = template_parse(t.template_body, strlen(t.template_body), TEMPLATE_KIND_ANY,
	                         &run->tmpl, err)) != IOTP_OK)
		goto fail_task;
	if ((rc = bulk_input_path(core->conf, t.bucket, t.key, run->path, sizeof(run->path),
	                          err)) != IOTP_OK)
		goto fail_task;
	if ((rc = manifest_file_open(run->path, run->fmt, t.cursor_offset, t.cursor_line,
	                             &run->mf, err)) != IOTP_OK) {
		if (rc == IOTP_ERR_NOMEM)
			goto out;
		goto fail_task;
	}
	run->offset = t.cursor_offset;
	run->line = t.cursor_line;
	*out = run;
	run = NULL;
	goto out;
fail_task:
	mark_failed(core, id, err != NULL ? err->msg : iotp_strerror(rc));
out:
	free(actor);
	bulk_task_cleanup(&t);
	bulk_run_close(run);
	return rc;
}

void bulk_run_close(struct bulk_run *run)
{
	if (run == NULL)
		return;
	manifest_file_close(run->mf);
	template_free(run->tmpl);
	free(run);
}

int64_t bulk_run_applied(const struct bulk_run *run)
{
	return run->applied;
}

/* Failures that are the store's or the process's, not the record's: the
 * batch is retried rather than reporting the record as failed. */
static int infrastructure_error(iotp_rc rc)
{
	return rc == IOTP_ERR_DB || rc == IOTP_ERR_BUSY || rc == IOTP_ERR_NOMEM ||
	       rc == IOTP_ERR_INTERNAL || rc == IOTP_ERR_IO;
}

static iotp_rc add_report(struct bulk_run *run, const char *kind, int64_t line, json_t *body,
                          struct iotp_err *err)
{
	char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
	iotp_rc rc;

	json_decref(body);
	if (text == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "report line: out of memory");
	{
		struct store_val p[] = {SV_TEXT(run->id), SV_TEXT(kind), SV_INT(line),
		                        SV_TEXT(text)};

		rc = store_exec(run->core->store,
		                "INSERT INTO bulk_reports (task_id, kind, line, body) "
		                "VALUES (?, ?, ?, ?)",
		                p, 4, NULL, NULL, err);
	}
	free(text);
	return rc;
}

static json_t *result_line(int64_t line, const struct prov_result *r)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:b}", "lineNumber", (json_int_t)line, "thingName",
	                      r->thing_name, "thingArn", r->thing_arn, "thingCreated",
	                      r->thing_created);

	if (o == NULL)
		return NULL;
	if ((r->cert_id[0] != '\0' &&
	     json_object_set_new(o, "certificateId", json_string(r->cert_id)) != 0) ||
	    (r->policy_name[0] != '\0' &&
	     json_object_set_new(o, "policyName", json_string(r->policy_name)) != 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *error_line(int64_t line, iotp_rc rc, const char *reason)
{
	return json_pack("{s:I, s:s, s:s?}", "lineNumber", (json_int_t)line, "error",
	                 iotp_strerror(rc), "reason", reason);
}

/* What the batch transaction reads first: is the task still ours? */
struct cursor_row {
	int found;
	char status[BULK_STATUS_MAX];
	int64_t offset;
};

static int cursor_row(void *ud, const struct store_row *row)
{
	struct cursor_row *c = ud;

	c->found = 1;
	util_strlcpy(c->status, row->cols[0].s, sizeof(c->status));
	c->offset = row->cols[1].i;
	return 1;
}

iotp_rc bulk_run_step(struct bulk_run *run, int batch, int *finished, struct iotp_err *err)
{
	struct iotp_core *core = run->core;
	struct cursor_row cur;
	int64_t ok = 0, failed = 0, new_offset = run->offset, new_line = run->line, changes = 0;
	int done = 0, in_tx = 0;
	int64_t started = util_mono_ms();
	iotp_rc rc;

	memset(&cur, 0, sizeof(cur));
	if (batch <= 0)
		batch = BULK_BATCH_DEFAULT;
	if (run->mf == NULL && (rc = reopen(run, err)) != IOTP_OK)
		return rc;
	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		return rc;
	in_tx = 1;
	{
		struct store_val p[] = {SV_TEXT(run->id)};

		if ((rc = store_exec(core->store,
		                     "SELECT status, cursor_offset FROM bulk_tasks WHERE id = ?", p, 1,
		                     cursor_row, &cur, err)) != IOTP_OK)
			goto out;
	}
	if (!cur.found || strcmp(cur.status, "InProgress") != 0 || cur.offset != run->offset) {
		/* Stopped, deleted, or another runner went on with it. */
		store_rollback(core->store);
		in_tx = 0;
		*finished = 1;
		return IOTP_OK;
	}
	for (int n = 0; n < batch; n++) {
		struct manifest_record rec;
		int eof = 0;

		memset(&rec, 0, sizeof(rec));
		if ((rc = manifest_file_next(run->mf, &rec, &eof, err)) != IOTP_OK)
			goto out;
		if (eof) {
			done = 1;
			break;
		}
		if (rec.step == MANIFEST_RECORD) {
			struct prov_apply_in in;
			struct prov_result res;
			struct iotp_err lerr;
			iotp_rc lrc;

			memset(&in, 0, sizeof(in));
			memset(&res, 0, sizeof(res));
			iotp_err_clear(&lerr);
			in.tmpl = run->tmpl;
			in.parameters = rec.params;
			lrc = prov_apply(core, run->actor, &in, &res, &lerr);
			json_decref(rec.params);
			if (lrc == IOTP_OK) {
				rc = add_report(run, "RESULTS", rec.line, result_line(rec.line, &res), err);
				ok++;
			} else if (infrastructure_error(lrc)) {
				prov_result_cleanup(&res);
				rc = iotp_err_set(err, lrc, "line %lld: %s", (long long)rec.line,
				                  lerr.msg);
				goto out;
			} else {
				rc = add_report(run, "ERRORS", rec.line,
				                error_line(rec.line, lrc, lerr.msg), err);
				failed++;
			}
			prov_result_cleanup(&res);
		} else {
			rc = add_report(run, "ERRORS", rec.line,
			                error_line(rec.line, IOTP_ERR_INVALID, rec.reason), err);
			failed++;
		}
		if (rc != IOTP_OK)
			goto out;
		new_offset = rec.end_offset;
		new_line = rec.end_line;
		if (util_mono_ms() - started >= BULK_BATCH_MS)
			break;
	}
	{
		struct store_val p[] = {
			SV_INT(new_offset), SV_INT(new_line), SV_INT(ok), SV_INT(failed),
			SV_INT(util_now()), SV_TEXT(done ? "Completed" : "InProgress"),
			SV_TEXT(run->id), SV_INT(run->offset),
		};

		rc = store_exec_changes(core->store,
		                        "UPDATE bulk_tasks SET cursor_offset = ?, cursor_line = ?, "
		                        "success_count = success_count + ?, "
		                        "failure_count = failure_count + ?, updated = ?, status = ? "
		                        "WHERE id = ? AND status = 'InProgress' AND cursor_offset = ?",
		                        p, (int)IOTP_ARRAY_LEN(p), &changes, err);
	}
	if (rc == IOTP_OK && changes != 1)
		rc = iotp_err_set(err, IOTP_ERR_INTERNAL, "task %s changed under its runner", run->id);
	if (rc == IOTP_OK && done)
		rc = bulk_event(core, "system", "task.complete", run->id, NULL, err);
	if (rc != IOTP_OK)
		goto out;
	in_tx = 0;
	if ((rc = store_commit(core->store, err)) != IOTP_OK)
		goto out;
	run->offset = new_offset;
	run->line = new_line;
	run->applied += ok + failed;
	*finished = done;
	return IOTP_OK;
out:
	if (in_tx)
		store_rollback(core->store);
	/* The reader went past what the store holds: rewind on the next step. */
	manifest_file_close(run->mf);
	run->mf = NULL;
	return rc;
}
