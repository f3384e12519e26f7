/*
 * The runner of bulk registration tasks (see bulk.h): reads records from
 * the input file with the task's manifest format and applies the task's
 * template to each with prov_apply, a batch per store transaction that
 * also moves the task's cursor and counters and writes the report lines.
 *
 * Reading ahead: while the store writes one batch, a worker thread reads
 * the next batch of records and makes the part of each record's work that
 * needs no store: the lite parse of a device certificate among its
 * parameters (pki_lite_parse) and its signature checked against the CAs
 * registered when the run started (pki_lite_note_ca). The template engine
 * then takes that parse (prov_apply_in.cert_hint) and still reads the CA
 * rows in its own transaction, so a CA deleted or deactivated meanwhile
 * counts; a signature verdict depends on the two certificates alone. On
 * two cores this puts the signature checks beside the store's writes.
 * On SQLite a third thread checkpoints the WAL on a connection of its own
 * after every few commits (a PASSIVE checkpoint never waits for the
 * writer), work that a commit of the writer would otherwise do: with a
 * million things each batch dirties thousands of index pages.
 *
 * The reader runs ahead of the cursor stored in the task. When a batch
 * fails to commit, the records read ahead are dropped and the reader is
 * reopened at the stored cursor before the next batch, so what the store
 * says has been applied and what will be read next never disagree.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "core/bulk.h"
#include "core/bulk_internal.h"
#include "core/ca_cache.h"
#include "core/manifest.h"
#include "core/pki.h"
#include "core/provision.h"
#include "core/template.h"

#define AHEAD_CAS_MAX 256
/* The checkpointer runs after every this many commits of the writer, whose
 * own checkpoints move to this many times the usual WAL size meanwhile
 * (1 GiB). The WAL starts over only once a checkpoint has copied all of
 * it, which the checkpointer alone seldom achieves while the writer
 * appends, so the writer's own checkpoint still comes, copying what the
 * checkpointer has not: the further out, the fewer. Measured, bench_bulk
 * --lines 1000000: slack 4 188.6 s, 16 164.4 s, 32 179.2 s; checkpointer
 * after every commit instead of 4: 169.9 s. */
#define CKPT_COMMITS 4
#define CKPT_SLACK 16

/* A record read ahead, with the lite parse of its certificate (or NULL). */
struct ahead_rec {
	struct manifest_record rec;
	struct pki_cert_lite *hint;
	const char *hint_pem; /* inside rec.params */
};

/* Records read ahead, in input order; [head, len) not applied yet. */
struct ahead_batch {
	struct ahead_rec *recs;
	size_t head, len;
	int eof;           /* the reader reached the end after these */
	iotp_rc rc;        /* the reader failed after these */
	struct iotp_err err;
};

/* A registered CA as the run started (for the signature checks ahead). */
struct ahead_ca {
	char id[PKI_CERT_ID_LEN + 1];
	char *subject;
	X509 *x509;
};

struct bulk_run {
	struct iotp_core *core;
	char id[BULK_TASK_ID_MAX + 1];
	char actor[160];
	struct template *tmpl;
	const struct manifest_format *fmt;
	char path[CONF_STR_MAX * 3];
	struct manifest_file *mf;   /* NULL until (re)opened */
	int64_t offset;             /* the task's cursor: after the last applied record */
	int64_t line;
	int64_t applied;
	int batch;                  /* records read ahead at a time */
	struct ahead_batch ready;   /* read, prepared: applied next */
	struct ahead_batch next;    /* being read and prepared by the worker */
	struct ahead_batch spent;   /* applied: the worker frees it before reading */
	pthread_t worker;
	int worker_on;
	struct ahead_ca *cas;
	size_t ncas;
	struct ckpt *ckpt;          /* NULL: the writer checkpoints alone */
};

/* ---- checkpoints beside the writer (SQLite) ---- */

struct ckpt {
	struct store *twin;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int commits;   /* since the last checkpoint */
	int stop;
	char task[BULK_TASK_ID_MAX + 1];
};

static void *ckpt_main(void *arg)
{
	struct ckpt *ck = arg;
	struct iotp_err err;

	pthread_mutex_lock(&ck->mu);
	while (!ck->stop) {
		if (ck->commits < CKPT_COMMITS) {
			pthread_cond_wait(&ck->cv, &ck->mu);
			continue;
		}
		ck->commits = 0;
		pthread_mutex_unlock(&ck->mu);
		if (store_checkpoint(ck->twin, &err) != IOTP_OK)
			LOG_WARN("task %s: checkpoint: %s", ck->task, err.msg);
		pthread_mutex_lock(&ck->mu);
	}
	pthread_mutex_unlock(&ck->mu);
	return NULL;
}

/* A thread with its own connection that checkpoints the WAL (PASSIVE: it
 * never waits for the writer) after every few commits of the runner, so
 * that the writer's commits do not: NULL where the store has no WAL of
 * its own to checkpoint (PostgreSQL, an in-memory database). */
static struct ckpt *ckpt_start(struct iotp_core *core, const char *task)
{
	struct ckpt *ck = calloc(1, sizeof(*ck));

	if (ck == NULL)
		return NULL;
	util_strlcpy(ck->task, task, sizeof(ck->task));
	pthread_mutex_init(&ck->mu, NULL);
	pthread_cond_init(&ck->cv, NULL);
	if (store_open_twin(core->store, &ck->twin, NULL) != IOTP_OK ||
	    pthread_create(&ck->thread, NULL, ckpt_main, ck) != 0) {
		store_close(ck->twin);
		pthread_cond_destroy(&ck->cv);
		pthread_mutex_destroy(&ck->mu);
		free(ck);
		return NULL;
	}
	store_autocheckpoint(core->store, STORE_AUTOCHECKPOINT_PAGES * CKPT_SLACK);
	return ck;
}

static void ckpt_committed(struct ckpt *ck)
{
	if (ck == NULL)
		return;
	pthread_mutex_lock(&ck->mu);
	if (++ck->commits >= CKPT_COMMITS)
		pthread_cond_signal(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
}

static void ckpt_stop(struct iotp_core *core, struct ckpt *ck)
{
	if (ck == NULL)
		return;
	pthread_mutex_lock(&ck->mu);
	ck->stop = 1;
	pthread_cond_signal(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
	pthread_join(ck->thread, NULL);
	store_autocheckpoint(core->store, STORE_AUTOCHECKPOINT_PAGES);
	store_close(ck->twin);
	pthread_cond_destroy(&ck->cv);
	pthread_mutex_destroy(&ck->mu);
	free(ck);
}

/* ---- reading ahead ---- */

/* Frees b's records, applied or not. */
static void batch_drop(struct ahead_batch *b)
{
	for (size_t i = 0; i < b->len; i++) {
		json_decref(b->recs[i].rec.params);
		pki_lite_free(b->recs[i].hint);
	}
	free(b->recs);
	memset(b, 0, sizeof(*b));
}

/* The first parameter that holds a PEM certificate: what a certificate
 * resource of the template most likely refers to. A wrong guess only
 * means the template engine parses for itself. */
static const char *cert_param(const json_t *params)
{
	const char *k;
	const json_t *v;

	json_object_foreach((json_t *)params, k, v) {
		const char *s = json_string_value(v);

		if (s != NULL && strncmp(s, "-----BEGIN CERTIFICATE-----", 27) == 0)
			return s;
	}
	return NULL;
}

static void prepare(const struct bulk_run *run, struct ahead_rec *ar)
{
	char *issuer = NULL;
	int n = 0;

	if (ar->rec.step != MANIFEST_RECORD || (ar->hint_pem = cert_param(ar->rec.params)) == NULL)
		return;
	if (pki_lite_parse(ar->hint_pem, strlen(ar->hint_pem), &ar->hint) != 1 ||
	    pki_lite_name_string(ar->hint, 1, &issuer, NULL) != IOTP_OK)
		return;
	for (size_t i = 0; i < run->ncas && n < 4; i++) {
		if (strcmp(run->cas[i].subject, issuer) != 0)
			continue;
		pki_lite_note_ca(ar->hint, run->cas[i].id,
		                 pki_lite_signed_by(ar->hint, run->cas[i].x509));
		n++;
	}
	free(issuer);
}

/* Reads up to run->batch records into b and prepares them. Touches only
 * run->mf and b: the worker thread runs this while the store thread
 * applies run->ready. */
static void read_batch(struct bulk_run *run, struct ahead_batch *b)
{
	memset(b, 0, sizeof(*b));
	if ((b->recs = calloc((size_t)run->batch, sizeof(*b->recs))) == NULL) {
		b->rc = iotp_err_set(&b->err, IOTP_ERR_NOMEM, "task runner: out of memory");
		return;
	}
	while (b->len < (size_t)run->batch) {
		struct ahead_rec *ar = &b->recs[b->len];

		b->rc = manifest_file_next(run->mf, &ar->rec, &b->eof, &b->err);
		if (b->rc != IOTP_OK || b->eof)
			return;
		prepare(run, ar);
		b->len++;
	}
}

static void *worker_main(void *arg)
{
	struct bulk_run *run = arg;

	batch_drop(&run->spent);
	read_batch(run, &run->next);
	return NULL;
}

static void worker_join(struct bulk_run *run)
{
	if (run->worker_on) {
		pthread_join(run->worker, NULL);
		run->worker_on = 0;
	}
}

/* Drops everything read ahead (the reader is then past the cursor: the
 * caller closes it so that the next step reopens at the cursor). */
static void ahead_drop(struct bulk_run *run)
{
	worker_join(run);
	batch_drop(&run->spent);
	batch_drop(&run->ready);
	batch_drop(&run->next);
}

/* run->ready holds records to apply unless the input is exhausted; the
 * worker reads the batch after it. */
static iotp_rc ahead_fill(struct bulk_run *run, struct iotp_err *err)
{
	if (run->ready.head == run->ready.len && !run->ready.eof && run->ready.rc == IOTP_OK) {
		if (run->worker_on) {
			/* The applied batch goes to the worker to free: its
			 * certificates' parses and parameters are a few percent
			 * of the store thread's time otherwise. */
			worker_join(run);
			batch_drop(&run->spent);
			run->spent = run->ready;
			run->ready = run->next;
			memset(&run->next, 0, sizeof(run->next));
		} else {
			batch_drop(&run->ready);
			read_batch(run, &run->ready);
		}
	}
	if (run->ready.head == run->ready.len && run->ready.rc != IOTP_OK)
		return iotp_err_set(err, run->ready.rc, "%s", run->ready.err.msg);
	if (!run->worker_on && !run->ready.eof && run->ready.rc == IOTP_OK &&
	    run->ready.len == (size_t)run->batch) {
		run->worker_on = pthread_create(&run->worker, NULL, worker_main, run) == 0;
		if (!run->worker_on)
			memset(&run->next, 0, sizeof(run->next)); /* read it when needed */
	}
	if (!run->worker_on)
		batch_drop(&run->spent);
	return IOTP_OK;
}

/* The registered CAs, for the signature checks ahead; none when there are
 * too many to try each (the template engine then checks alone). */
static int ca_row_snap(void *ud, const struct store_row *row)
{
	struct bulk_run *run = ud;
	struct ahead_ca *ca;

	if (run->ncas >= AHEAD_CAS_MAX)
		return 1;
	if (row->cols[0].s == NULL || row->cols[1].s == NULL || row->cols[2].s == NULL)
		return 0;
	ca = &run->cas[run->ncas];
	util_strlcpy(ca->id, row->cols[0].s, sizeof(ca->id));
	if ((ca->subject = strdup(row->cols[1].s)) == NULL)
		return 1;
	if (ca_cache_get(ca->id, row->cols[2].s, row->cols[2].len, &ca->x509, NULL) != IOTP_OK) {
		free(ca->subject);
		return 0;
	}
	run->ncas++;
	return 0;
}

static void cas_snapshot(struct bulk_run *run)
{
	struct iotp_err err;

	if ((run->cas = calloc(AHEAD_CAS_MAX + 1, sizeof(*run->cas))) == NULL)
		return;
	if (store_exec(run->core->store,
	               "SELECT id, subject, pem FROM cas ORDER BY created, id LIMIT 257", NULL, 0,
	               ca_row_snap, run, &err) != IOTP_OK ||
	    run->ncas >= AHEAD_CAS_MAX) {
		for (size_t i = 0; i < run->ncas; i++) {
			free(run->cas[i].subject);
			X509_free(run->cas[i].x509);
		}
		run->ncas = 0;
	}
}

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
	ahead_drop(run);
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
	cas_snapshot(run);
	run->ckpt = ckpt_start(core, run->id);
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
	ahead_drop(run);
	ckpt_stop(run->core, run->ckpt);
	manifest_file_close(run->mf);
	template_free(run->tmpl);
	for (size_t i = 0; i < run->ncas; i++) {
		free(run->cas[i].subject);
		X509_free(run->cas[i].x509);
	}
	free(run->cas);
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
	if (run->batch == 0)
		run->batch = batch;
	if (run->mf == NULL && (rc = reopen(run, err)) != IOTP_OK)
		return rc;
	/* Before the transaction: waiting for the worker holds no lock. */
	if ((rc = ahead_fill(run, err)) != IOTP_OK)
		goto out;
	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		goto out;
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
		struct ahead_rec *ar;
		struct manifest_record *rec;

		if (run->ready.head == run->ready.len) {
			/* The worker's batch is not waited for inside the
			 * transaction: this one ends here, unless the input has. */
			done = run->ready.eof && !run->worker_on;
			break;
		}
		ar = &run->ready.recs[run->ready.head];
		rec = &ar->rec;
		if (rec->step == MANIFEST_RECORD) {
			struct prov_apply_in in;
			struct prov_result res;
			struct iotp_err lerr;
			iotp_rc lrc;

			memset(&in, 0, sizeof(in));
			memset(&res, 0, sizeof(res));
			iotp_err_clear(&lerr);
			in.tmpl = run->tmpl;
			in.parameters = rec->params;
			in.cert_hint = ar->hint;
			in.cert_hint_pem = ar->hint_pem;
			lrc = prov_apply(core, run->actor, &in, &res, &lerr);
			if (lrc == IOTP_OK) {
				rc = add_report(run, "RESULTS", rec->line, result_line(rec->line, &res),
				                err);
				ok++;
			} else if (infrastructure_error(lrc)) {
				prov_result_cleanup(&res);
				rc = iotp_err_set(err, lrc, "line %lld: %s", (long long)rec->line,
				                  lerr.msg);
				goto out;
			} else {
				rc = add_report(run, "ERRORS", rec->line,
				                error_line(rec->line, lrc, lerr.msg), err);
				failed++;
			}
			prov_result_cleanup(&res);
		} else {
			rc = add_report(run, "ERRORS", rec->line,
			                error_line(rec->line, IOTP_ERR_INVALID, rec->reason), err);
			failed++;
		}
		if (rc != IOTP_OK)
			goto out;
		new_offset = rec->end_offset;
		new_line = rec->end_line;
		/* Applied (in this transaction): the record leaves the queue
		 * (freed with its batch, by the worker). */
		run->ready.head++;
		if (util_mono_ms() - started >= BULK_BATCH_MS)
			break;
	}
	if (!done && run->ready.head == run->ready.len && run->ready.eof && !run->worker_on)
		done = 1;
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
	ckpt_committed(run->ckpt);
	run->offset = new_offset;
	run->line = new_line;
	run->applied += ok + failed;
	*finished = done;
	return IOTP_OK;
out:
	if (in_tx)
		store_rollback(core->store);
	/* The reader went past what the store holds: rewind on the next step. */
	ahead_drop(run);
	manifest_file_close(run->mf);
	run->mf = NULL;
	return rc;
}
