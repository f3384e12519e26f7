/*
 * Bulk registration tasks: starting, describing, listing and stopping them,
 * and reading their reports (see bulk.h). The runner that applies the
 * records is in bulk_run.c, the import directory in bulk_input.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "core/bulk.h"
#include "core/bulk_internal.h"
#include "core/manifest.h"
#include "core/template.h"

static const char *const statuses[] = {"InProgress", "Completed", "Failed", "Cancelled",
                                       "Cancelling"};

void bulk_task_cleanup(struct bulk_task *t)
{
	if (t == NULL)
		return;
	free(t->template_body);
	free(t->role_arn);
	free(t->message);
	memset(t, 0, sizeof(*t));
}

iotp_rc bulk_event(struct iotp_core *core, const char *actor, const char *action,
                   const char *id, json_t *detail, struct iotp_err *err)
{
	char object[BULK_TASK_ID_MAX + 32];

	snprintf(object, sizeof(object), "thingregistrationtask/%s", id);
	return core_event(core, actor, action, object, detail, err);
}

iotp_rc bulk_task_start(struct iotp_core *core, const char *actor, const struct bulk_start *in,
                        char id[BULK_TASK_ID_MAX + 1], struct iotp_err *err)
{
	const char *format = in->format != NULL && in->format[0] != '\0' ? in->format : "jsonl";
	struct template *tmpl = NULL;
	char path[CONF_STR_MAX * 3], newid[BULK_TASK_ID_MAX + 1];
	int64_t now = util_now(), size = 0;
	FILE *f = NULL;
	iotp_rc rc;

	if (in->template_body == NULL || in->bucket == NULL || in->key == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "templateBody, inputFileBucket and inputFileKey are required");
	if (manifest_format_find(format) == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "unknown input format '%.32s' (known: %s)",
		                    format, manifest_format_names());
	if (in->role_arn != NULL && strlen(in->role_arn) > 2048)
		return iotp_err_set(err, IOTP_ERR_INVALID, "roleArn is longer than 2048 characters");
	if ((rc = template_parse(in->template_body, strlen(in->template_body), TEMPLATE_KIND_ANY,
	                         &tmpl, err)) != IOTP_OK) {
		if (rc == IOTP_ERR_TOO_BIG)
			rc = IOTP_ERR_INVALID;
		return rc;
	}
	template_free(tmpl);
	if ((rc = bulk_input_path(core->conf, in->bucket, in->key, path, sizeof(path), err)) !=
	    IOTP_OK)
		return rc;
	f = fopen(path, "rb");
	if (f == NULL || fseeko(f, 0, SEEK_END) != 0 || (size = (int64_t)ftello(f)) < 0) {
		if (f != NULL)
			fclose(f);
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "input file %.256s/%.512s not found in the import directory",
		                    in->bucket, in->key);
	}
	fclose(f);
	if ((rc = util_uuid(newid, err)) != IOTP_OK)
		return rc;
	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		return rc;
	{
		struct store_val p[] = {
			SV_TEXT(newid), SV_TEXT(in->template_body), SV_TEXT(in->bucket),
			SV_TEXT(in->key), SV_TEXT(format), SV_TEXT(in->role_arn), SV_TEXT(actor),
			SV_INT(size), SV_INT(now), SV_INT(now),
		};

		rc = store_exec(core->store,
		                "INSERT INTO bulk_tasks (id, status, template_body, input_bucket, "
		                "input_key, input_format, role_arn, actor, input_size, created, "
		                "updated) VALUES (?, 'InProgress', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		                p, (int)IOTP_ARRAY_LEN(p), NULL, NULL, err);
	}
	if (rc == IOTP_OK)
		rc = bulk_event(core, actor, "task.start", newid,
		                json_pack("{s:s, s:s, s:s, s:I}", "inputFileBucket", in->bucket,
		                          "inputFileKey", in->key, "format", format, "size",
		                          (json_int_t)size),
		                err);
	if (rc == IOTP_OK)
		rc = store_commit(core->store, err);
	else
		store_rollback(core->store);
	if (rc == IOTP_OK)
		memcpy(id, newid, sizeof(newid));
	return rc;
}

struct task_rows {
	struct bulk_task *t;
	int found;
	int failed;
};

static int task_row(void *ud, const struct store_row *row)
{
	struct task_rows *r = ud;
	struct bulk_task *t = r->t;
	const struct store_val *c = row->cols;

	r->found = 1;
	util_strlcpy(t->id, c[0].s, sizeof(t->id));
	util_strlcpy(t->status, c[1].s, sizeof(t->status));
	if ((t->template_body = strdup(c[2].s)) == NULL)
		r->failed = 1;
	util_strlcpy(t->bucket, c[3].s, sizeof(t->bucket));
	util_strlcpy(t->key, c[4].s, sizeof(t->key));
	util_strlcpy(t->format, c[5].s, sizeof(t->format));
	if (c[6].type == STORE_TEXT && (t->role_arn = strdup(c[6].s)) == NULL)
		r->failed = 1;
	if (c[7].type == STORE_TEXT && (t->message = strdup(c[7].s)) == NULL)
		r->failed = 1;
	t->input_size = c[8].i;
	t->cursor_offset = c[9].i;
	t->cursor_line = c[10].i;
	t->success_count = c[11].i;
	t->failure_count = c[12].i;
	t->created = c[13].i;
	t->updated = c[14].i;
	if (strcmp(t->status, "Completed") == 0)
		t->percentage = 100;
	else if (t->input_size > 0)
		t->percentage = (int)(t->cursor_offset * 100 / t->input_size);
	if (t->percentage > 100)
		t->percentage = 100;
	return 1;
}

iotp_rc bulk_task_describe(struct iotp_core *core, const char *id, struct bulk_task *out,
                           struct iotp_err *err)
{
	struct bulk_task t;
	struct task_rows r = {&t, 0, 0};
	struct store_val p[] = {SV_TEXT(id)};
	iotp_rc rc;

	memset(&t, 0, sizeof(t));
	if (id == NULL || id[0] == '\0' || strlen(id) > BULK_TASK_ID_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "taskId must be 1 to 40 characters");
	rc = store_exec(core->store,
	                "SELECT id, status, template_body, input_bucket, input_key, input_format, "
	                "role_arn, message, input_size, cursor_offset, cursor_line, "
	                "success_count, failure_count, created, updated FROM bulk_tasks "
	                "WHERE id = ?",
	                p, 1, task_row, &r, err);
	if (rc == IOTP_OK && r.failed)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "describe task: out of memory");
	else if (rc == IOTP_OK && !r.found)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "thing registration task %.40s not found",
		                  id);
	if (rc != IOTP_OK) {
		bulk_task_cleanup(&t);
		return rc;
	}
	*out = t;
	return IOTP_OK;
}

struct id_rows {
	char **items;
	size_t count;
	int64_t last_created;
	int failed;
};

static int id_row(void *ud, const struct store_row *row)
{
	struct id_rows *r = ud;
	char **grown = realloc(r->items, (r->count + 1) * sizeof(*grown));

	if (grown == NULL || (grown[r->count] = strdup(row->cols[0].s)) == NULL) {
		if (grown != NULL)
			r->items = grown;
		r->failed = 1;
		return 1;
	}
	r->items = grown;
	r->count++;
	r->last_created = row->cols[1].i;
	return 0;
}

iotp_rc bulk_task_list(struct iotp_core *core, const char *status,
                       const struct registry_page *page, struct registry_str_list *out,
                       struct iotp_err *err)
{
	struct id_rows r = {NULL, 0, 0, 0};
	const char *token = page != NULL ? page->token : NULL;
	int max = page != NULL && page->max != 0 ? page->max : REGISTRY_PAGE_DEFAULT;
	int64_t after_created = -1;
	const char *after_id = "";
	char sql[512], *next = NULL;
	struct store_val p[5];
	int np = 0;
	iotp_rc rc;

	if (max < 1 || max > REGISTRY_PAGE_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "maxResults must be 1 to %d",
		                    REGISTRY_PAGE_MAX);
	if (status != NULL) {
		size_t i;

		for (i = 0; i < IOTP_ARRAY_LEN(statuses); i++)
			if (strcmp(status, statuses[i]) == 0)
				break;
		if (i == IOTP_ARRAY_LEN(statuses))
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "status must be InProgress, Completed, Failed, Cancelled "
			                    "or Cancelling");
	}
	if (token != NULL && token[0] != '\0') {
		/* "<created>_<id>" of the last task of the previous page. */
		const char *us = strchr(token, '_');
		char num[24];

		if (us == NULL || (size_t)(us - token) >= sizeof(num) || strlen(us + 1) == 0 ||
		    strlen(us + 1) > BULK_TASK_ID_MAX)
			return iotp_err_set(err, IOTP_ERR_INVALID, "invalid nextToken");
		memcpy(num, token, (size_t)(us - token));
		num[us - token] = '\0';
		if (util_parse_int64(num, 0, INT64_MAX, &after_created) != IOTP_OK)
			return iotp_err_set(err, IOTP_ERR_INVALID, "invalid nextToken");
		after_id = us + 1;
	}
	snprintf(sql, sizeof(sql),
	         "SELECT id, created FROM bulk_tasks WHERE %s (created > ? OR (created = ? AND "
	         "id > ?)) ORDER BY created, id LIMIT ?",
	         status != NULL ? "status = ? AND" : "");
	if (status != NULL)
		p[np++] = SV_TEXT(status);
	p[np++] = SV_INT(after_created);
	p[np++] = SV_INT(after_created);
	p[np++] = SV_TEXT(after_id);
	p[np++] = SV_INT(max + 1);
	rc = store_exec(core->store, sql, p, np, id_row, &r, err);
	if (rc == IOTP_OK && r.failed)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "list tasks: out of memory");
	if (rc != IOTP_OK)
		goto fail;
	if (r.count > (size_t)max) {
		char tok[64 + BULK_TASK_ID_MAX];
		int64_t created = 0;
		struct store_val q[] = {SV_TEXT(r.items[max - 1])};

		free(r.items[max]);
		r.count = (size_t)max;
		if ((rc = store_query_int(core->store, "SELECT created FROM bulk_tasks WHERE id = ?",
		                          q, 1, &created, err)) != IOTP_OK)
			goto fail;
		snprintf(tok, sizeof(tok), "%" PRId64 "_%s", created, r.items[max - 1]);
		if ((next = strdup(tok)) == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "list tasks: out of memory");
			goto fail;
		}
	}
	memset(out, 0, sizeof(*out));
	out->items = r.items;
	out->count = r.count;
	out->next_token = next;
	return IOTP_OK;
fail:
	for (size_t i = 0; i < r.count; i++)
		free(r.items[i]);
	free(r.items);
	return rc;
}

iotp_rc bulk_task_stop(struct iotp_core *core, const char *actor, const char *id,
                       struct iotp_err *err)
{
	struct bulk_task t;
	int64_t changes = 0;
	iotp_rc rc;

	memset(&t, 0, sizeof(t));
	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		return rc;
	if ((rc = bulk_task_describe(core, id, &t, err)) != IOTP_OK)
		goto out;
	if (strcmp(t.status, "InProgress") != 0)
		goto out;
	{
		struct store_val p[] = {SV_INT(util_now()), SV_TEXT(id)};

		rc = store_exec_changes(core->store,
		                        "UPDATE bulk_tasks SET status = 'Cancelled', updated = ? "
		                        "WHERE id = ? AND status = 'InProgress'",
		                        p, 2, &changes, err);
	}
	if (rc == IOTP_OK && changes > 0)
		rc = bulk_event(core, actor, "task.stop", id,
		                json_pack("{s:I, s:I}", "successCount",
		                          (json_int_t)t.success_count, "failureCount",
		                          (json_int_t)t.failure_count),
		                err);
out:
	bulk_task_cleanup(&t);
	if (rc == IOTP_OK)
		return store_commit(core->store, err);
	store_rollback(core->store);
	return rc;
}

static iotp_rc check_kind(const char *kind, struct iotp_err *err)
{
	if (kind == NULL || (strcmp(kind, "RESULTS") != 0 && strcmp(kind, "ERRORS") != 0))
		return iotp_err_set(err, IOTP_ERR_INVALID, "reportType must be ERRORS or RESULTS");
	return IOTP_OK;
}

iotp_rc bulk_report_count(struct iotp_core *core, const char *id, const char *kind,
                          int64_t *count, struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(id), SV_TEXT(kind)};
	int64_t n = 0, exists = 0;
	iotp_rc rc;

	if ((rc = check_kind(kind, err)) != IOTP_OK)
		return rc;
	rc = store_query_int(core->store, "SELECT COUNT(*) FROM bulk_tasks WHERE id = ?", p, 1,
	                     &exists, err);
	if (rc == IOTP_OK && exists == 0)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "thing registration task %.40s not found",
		                  id);
	if (rc == IOTP_OK)
		rc = store_query_int(core->store,
		                     "SELECT COUNT(*) FROM bulk_reports WHERE task_id = ? AND kind = ?",
		                     p, 2, &n, err);
	if (rc == IOTP_OK)
		*count = n;
	return rc;
}

struct part_ctx {
	struct buf *out;
	iotp_rc rc;
};

static int part_row(void *ud, const struct store_row *row)
{
	struct part_ctx *c = ud;

	if ((c->rc = buf_append(c->out, row->cols[0].s, row->cols[0].len)) != IOTP_OK ||
	    (c->rc = buf_append(c->out, "\n", 1)) != IOTP_OK)
		return 1;
	return 0;
}

iotp_rc bulk_report_part(struct iotp_core *core, const char *id, const char *kind,
                         int64_t part, struct buf *out, struct iotp_err *err)
{
	struct part_ctx c = {out, IOTP_OK};
	struct store_val p[4];
	iotp_rc rc;

	if ((rc = check_kind(kind, err)) != IOTP_OK)
		return rc;
	/* checked before the offset is computed: part * lines must not overflow */
	if (part < 0 || part > INT64_MAX / BULK_REPORT_PART_LINES)
		return iotp_err_set(err, IOTP_ERR_INVALID, "report part out of range");
	p[0] = SV_TEXT(id);
	p[1] = SV_TEXT(kind);
	p[2] = SV_INT(BULK_REPORT_PART_LINES);
	p[3] = SV_INT(part * BULK_REPORT_PART_LINES);
	rc = store_exec(core->store,
	                "SELECT body FROM bulk_reports WHERE task_id = ? AND kind = ? "
	                "ORDER BY line LIMIT ? OFFSET ?",
	                p, 4, part_row, &c, err);
	if (rc == IOTP_OK && c.rc != IOTP_OK)
		rc = iotp_err_set(err, c.rc, "report: %s", iotp_strerror(c.rc));
	return rc;
}

iotp_rc bulk_task_next_runnable(struct iotp_core *core, char id[BULK_TASK_ID_MAX + 1],
                                struct iotp_err *err)
{
	char *found = NULL;
	iotp_rc rc;

	rc = store_query_text(core->store,
	                      "SELECT id FROM bulk_tasks WHERE status = 'InProgress' "
	                      "ORDER BY created, id LIMIT 1",
	                      NULL, 0, &found, err);
	if (rc == IOTP_OK && found == NULL)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "no runnable task");
	if (rc == IOTP_OK)
		util_strlcpy(id, found, BULK_TASK_ID_MAX + 1);
	free(found);
	return rc;
}
