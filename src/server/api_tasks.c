/*
 * Thing registration tasks over HTTP and the task runner thread (see
 * api_tasks.h and core/bulk.h).
 *
 * Reports: AWS answers ListThingRegistrationTaskReports with links to S3
 * objects; iotprovd serves the reports itself, so each link points back to
 * it: GET /thing-registration-tasks/{taskId}/reports/{reportType}/{part},
 * signed like any other call, BULK_REPORT_PART_LINES JSON lines per part.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "core/bulk.h"
#include "core/core.h"
#include "core/store/store.h"
#include "server/api_json.h"
#include "server/api_tasks.h"

static json_t *task_json(const struct bulk_task *t)
{
	json_t *o = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:s}", "taskId",
	                      t->id, "creationDate", (json_int_t)t->created, "lastModifiedDate",
	                      (json_int_t)t->updated, "templateBody", t->template_body,
	                      "inputFileBucket", t->bucket, "inputFileKey", t->key, "status",
	                      t->status, "successCount", (json_int_t)t->success_count,
	                      "failureCount", (json_int_t)t->failure_count, "percentageProgress",
	                      t->percentage, "inputFormat", t->format);

	if (o == NULL || api_json_set_opt(o, "roleArn", t->role_arn) != 0 ||
	    api_json_set_opt(o, "message", t->message) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* POST /thing-registration-tasks */
static iotp_rc start_task(struct api_request *rq, struct api_response *resp,
                          struct iotp_err *err)
{
	static const char *const members[] = {"templateBody", "inputFileBucket", "inputFileKey",
	                                      "roleArn", "inputFormat"};
	struct bulk_start in;
	char id[BULK_TASK_ID_MAX + 1];
	iotp_rc rc;

	memset(&in, 0, sizeof(in));
	if ((rc = api_json_only(rq->json, "the request body", members,
	                        sizeof(members) / sizeof(members[0]), err)) != IOTP_OK ||
	    (rc = api_json_str(rq->json, "templateBody", 1, 10240, &in.template_body, err)) !=
	        IOTP_OK ||
	    (rc = api_json_str(rq->json, "inputFileBucket", 1, BULK_BUCKET_MAX, &in.bucket, err)) !=
	        IOTP_OK ||
	    (rc = api_json_str(rq->json, "inputFileKey", 1, BULK_KEY_MAX, &in.key, err)) !=
	        IOTP_OK ||
	    (rc = api_json_str(rq->json, "roleArn", 0, 2048, &in.role_arn, err)) != IOTP_OK ||
	    (rc = api_json_str(rq->json, "inputFormat", 0, BULK_FORMAT_MAX, &in.format, err)) !=
	        IOTP_OK)
		return rc;
	if ((rc = bulk_task_start(rq->core, rq->actor, &in, id, err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_pack("{s:s}", "taskId", id), err);
}

/* GET /thing-registration-tasks/{taskId} */
static iotp_rc describe_task(struct api_request *rq, struct api_response *resp,
                             struct iotp_err *err)
{
	struct bulk_task t;
	iotp_rc rc;

	memset(&t, 0, sizeof(t));
	rc = bulk_task_describe(rq->core, api_param(rq, "taskId"), &t, err);
	if (rc == IOTP_OK)
		rc = api_reply(resp, task_json(&t), err);
	bulk_task_cleanup(&t);
	return rc;
}

/* PUT /thing-registration-tasks/{taskId}/cancel */
static iotp_rc stop_task(struct api_request *rq, struct api_response *resp,
                         struct iotp_err *err)
{
	iotp_rc rc = bulk_task_stop(rq->core, rq->actor, api_param(rq, "taskId"), err);

	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

/* GET /thing-registration-tasks?status&nextToken&maxResults */
static iotp_rc list_tasks(struct api_request *rq, struct api_response *resp,
                          struct iotp_err *err)
{
	struct registry_page page = {NULL, 0};
	struct registry_str_list l = {0};
	json_t *body = NULL;
	iotp_rc rc;

	if ((rc = api_page_from_query(rq, "nextToken", "maxResults", &page, err)) != IOTP_OK)
		return rc;
	if ((rc = bulk_task_list(rq->core, api_query(rq, "status"), &page, &l, err)) != IOTP_OK)
		return rc;
	body = json_pack("{s:o}", "taskIds", api_json_str_array(l.items, l.count));
	if (body != NULL && api_json_set_opt(body, "nextToken", l.next_token) != 0) {
		json_decref(body);
		body = NULL;
	}
	registry_str_list_cleanup(&l);
	return api_reply(resp, body, err);
}

/* GET /thing-registration-tasks/{taskId}/reports?reportType&nextToken&maxResults */
static iotp_rc list_reports(struct api_request *rq, struct api_response *resp,
                            struct iotp_err *err)
{
	const char *id = api_param(rq, "taskId"), *kind = api_query(rq, "reportType");
	const char *host = api_header(rq, "Host"), *token = api_query(rq, "nextToken");
	int64_t count = 0, parts, first = 0, max = REGISTRY_PAGE_MAX;
	json_t *links = NULL, *body = NULL;
	iotp_rc rc;

	if (kind == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "reportType is required (ERRORS or RESULTS)");
	if ((rc = api_query_int(rq, "maxResults", 1, REGISTRY_PAGE_MAX, &max, err)) != IOTP_OK)
		return rc;
	if (token != NULL && util_parse_int64(token, 0, INT64_MAX / 2, &first) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_INVALID, "invalid nextToken");
	if (host == NULL || host[0] == '\0' || strpbrk(host, "/?#@ ") != NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "a Host header is required");
	if ((rc = bulk_report_count(rq->core, id, kind, &count, err)) != IOTP_OK)
		return rc;
	parts = (count + BULK_REPORT_PART_LINES - 1) / BULK_REPORT_PART_LINES;
	links = json_array();
	if (links == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	for (int64_t p = first; p < parts && p < first + max; p++) {
		char url[512];

		snprintf(url, sizeof(url), "https://%s/thing-registration-tasks/%s/reports/%s/%lld",
		         host, id, kind, (long long)p);
		if (json_array_append_new(links, json_string(url)) != 0) {
			json_decref(links);
			return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		}
	}
	body = json_pack("{s:o, s:s}", "resourceLinks", links, "reportType", kind);
	if (body != NULL && first + max < parts) {
		char next[32];

		snprintf(next, sizeof(next), "%lld", (long long)(first + max));
		if (api_json_set_opt(body, "nextToken", next) != 0) {
			json_decref(body);
			body = NULL;
		}
	}
	return api_reply(resp, body, err);
}

/* GET /thing-registration-tasks/{taskId}/reports/{reportType}/{part} */
static iotp_rc get_report(struct api_request *rq, struct api_response *resp,
                          struct iotp_err *err)
{
	const char *id = api_param(rq, "taskId"), *kind = api_param(rq, "reportType");
	int64_t part = 0, count = 0;
	struct buf b;
	iotp_rc rc;

	if (util_parse_int64(api_param(rq, "part"), 0, INT64_MAX / 2, &part) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_INVALID, "the report part must be a number");
	if ((rc = bulk_report_count(rq->core, id, kind, &count, err)) != IOTP_OK)
		return rc;
	/* parts = ceil(count / lines), compared without part * lines (part
	 * may be as large as INT64_MAX / 2) */
	if (part >= (count + BULK_REPORT_PART_LINES - 1) / BULK_REPORT_PART_LINES &&
	    !(part == 0 && count == 0))
		return iotp_err_set(err, IOTP_ERR_NOT_FOUND, "report part %lld of task %s not found",
		                    (long long)part, id);
	buf_init(&b, 0);
	rc = bulk_report_part(rq->core, id, kind, part, &b, err);
	if (rc == IOTP_OK)
		rc = api_response_text(resp, 200, "application/x-ndjson", b.data != NULL ? b.data : "",
		                       b.len);
	buf_cleanup(&b);
	return rc;
}

/* PUT /iotprov/import-files?bucket&key&offset: raw body appended at offset.
 * Each chunk is audited once written (the file system and the store share
 * no transaction: a failed audit is logged, the chunk stays). */
static iotp_rc put_import_file(struct api_request *rq, struct api_response *resp,
                               struct iotp_err *err)
{
	const char *bucket = api_query(rq, "bucket"), *key = api_query(rq, "key");
	char object[BULK_BUCKET_MAX + BULK_KEY_MAX + 16], detail[96];
	struct iotp_err aerr;
	int64_t offset = 0, size = 0;
	iotp_rc rc;

	if ((rc = api_query_int(rq, "offset", 0, INT64_MAX / 2, &offset, err)) != IOTP_OK)
		return rc;
	if ((rc = bulk_input_write(rq->core->conf, bucket, key, offset, rq->body, rq->body_len,
	                           &size, err)) != IOTP_OK)
		return rc;
	/* bucket and key passed bulk_input_write's character checks */
	snprintf(object, sizeof(object), "importfile/%s/%s", bucket, key);
	snprintf(detail, sizeof(detail), "{\"offset\":%lld,\"bytes\":%zu,\"size\":%lld}",
	         (long long)offset, rq->body_len, (long long)size);
	if (store_event_append(rq->core->store, rq->actor, "importfile.write", object, detail, NULL,
	                       &aerr) != IOTP_OK)
		LOG_ERROR("tasks: %s: upload of %s not audited: %s", rq->request_id, object, aerr.msg);
	return api_reply(resp, json_pack("{s:I}", "size", (json_int_t)size), err);
}

static const struct route routes[] = {
	{"POST", "/thing-registration-tasks", "StartThingRegistrationTask", ROUTE_JSON, NULL,
	 start_task},
	{"GET", "/thing-registration-tasks", "ListThingRegistrationTasks", 0, NULL, list_tasks},
	{"GET", "/thing-registration-tasks/{taskId}", "DescribeThingRegistrationTask", 0, NULL,
	 describe_task},
	{"PUT", "/thing-registration-tasks/{taskId}/cancel", "StopThingRegistrationTask", 0, NULL,
	 stop_task},
	{"GET", "/thing-registration-tasks/{taskId}/reports", "ListThingRegistrationTaskReports",
	 0, NULL, list_reports},
	{"GET", "/thing-registration-tasks/{taskId}/reports/{reportType}/{part}",
	 "GetThingRegistrationTaskReport", 0, NULL, get_report},
	{"PUT", "/iotprov/import-files", "PutImportFile", 0, NULL, put_import_file},
};

const struct route_table api_task_routes = {routes, sizeof(routes) / sizeof(routes[0])};

/* ------------------------------------------------------------------ */
/* The runner                                                          */

struct tasks_runner {
	struct iotp_conf conf;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
};

/* Sleeps up to ms, or until asked to stop. Returns 1 when stopping. */
static int nap(struct tasks_runner *r, int ms)
{
	struct timespec ts;
	int stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mu);
	if (!r->stop)
		pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	stop = r->stop;
	pthread_mutex_unlock(&r->mu);
	return stop;
}

static int stopping(struct tasks_runner *r)
{
	int stop;

	pthread_mutex_lock(&r->mu);
	stop = r->stop;
	pthread_mutex_unlock(&r->mu);
	return stop;
}

static void run_task(struct tasks_runner *r, struct iotp_core *core, const char *id)
{
	struct bulk_run *run = NULL;
	struct iotp_err err;
	int64_t t0 = util_mono_ms();
	int finished = 0;
	iotp_rc rc;

	if ((rc = bulk_run_open(core, id, &run, &err)) != IOTP_OK) {
		LOG_WARN("tasks: cannot run task %s: %s", id, err.msg);
		if (rc == IOTP_ERR_DB || rc == IOTP_ERR_BUSY || rc == IOTP_ERR_NOMEM)
			nap(r, 1000);
		return;
	}
	LOG_INFO("tasks: running task %s", id);
	while (!finished && !stopping(r)) {
		if ((rc = bulk_run_step(run, 0, &finished, &err)) != IOTP_OK) {
			LOG_WARN("tasks: task %s: batch rolled back, retrying: %s", id, err.msg);
			if (nap(r, 1000))
				break;
		}
	}
	LOG_INFO("tasks: task %s: %s after %lld records in %lld ms", id,
	         finished ? "ended" : "paused", (long long)bulk_run_applied(run),
	         (long long)(util_mono_ms() - t0));
	bulk_run_close(run);
}

static void *runner_main(void *arg)
{
	struct tasks_runner *r = arg;
	struct iotp_core core;
	struct iotp_err err;

	if (core_open(&core, &r->conf, &err) != IOTP_OK) {
		LOG_ERROR("tasks: the task runner cannot open the core: %s", err.msg);
		return NULL;
	}
	while (!stopping(r)) {
		char id[BULK_TASK_ID_MAX + 1];
		iotp_rc rc = bulk_task_next_runnable(&core, id, &err);

		if (rc == IOTP_ERR_NOT_FOUND) {
			nap(r, 250);
			continue;
		}
		if (rc != IOTP_OK) {
			LOG_WARN("tasks: cannot look for tasks: %s", err.msg);
			nap(r, 1000);
			continue;
		}
		run_task(r, &core, id);
	}
	core_close(&core);
	return NULL;
}

iotp_rc tasks_runner_start(const struct iotp_conf *conf, struct tasks_runner **out,
                           struct iotp_err *err)
{
	struct tasks_runner *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "task runner: out of memory");
	r->conf = *conf;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (pthread_create(&r->thread, NULL, runner_main, r) != 0) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		free(r);
		return iotp_err_set(err, IOTP_ERR_INTERNAL, "cannot start the task runner thread");
	}
	*out = r;
	return IOTP_OK;
}

void tasks_runner_stop(struct tasks_runner *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
