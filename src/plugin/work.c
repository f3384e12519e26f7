/*
 * Worker threads: everything the broker must not wait for. Each worker owns
 * an iotp_core (its own store connection and the issuing CA) and takes jobs
 * from one bounded FIFO: audit events, JITR registrations and fleet-
 * provisioning requests (which may call a webhook). What a job produces for
 * the broker -- a reply to publish, an event -- goes to the results queue,
 * which the broker thread drains on its tick (plugin.c), because the
 * mosquitto API may only be called from the broker's thread.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "common/util.h"
#include "core/registry.h"
#include "net/webhook.h"
#include "plugin/plugin.h"

void job_free(struct job *j)
{
	if (j == NULL)
		return;
	free(j->client_id);
	free(j->action);
	free(j->reason);
	free(j->cert_pem);
	free(j->body);
	fleet_request_cleanup(&j->req);
	free(j);
}

void result_free(struct result *r)
{
	if (r == NULL)
		return;
	free(r->client_id);
	free(r->topic);
	if (r->payload != NULL)
		OPENSSL_cleanse(r->payload, r->len); /* may hold a private key */
	free(r->payload);
	free(r);
}

/* ---- queue ---- */

static void queue_push_locked(struct queue *q, struct qnode *n)
{
	n->next = NULL;
	if (q->tail != NULL)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
	q->count++;
}

static struct qnode *queue_pop_locked(struct queue *q)
{
	struct qnode *n = q->head;

	if (n != NULL) {
		q->head = n->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->count--;
		n->next = NULL;
	}
	return n;
}

void results_push(struct plugin *pl, struct result *r)
{
	pthread_mutex_lock(&pl->results.lock);
	queue_push_locked(&pl->results, &r->node);
	pthread_mutex_unlock(&pl->results.lock);
}

iotp_rc work_submit(struct work *w, struct job *j)
{
	iotp_rc rc = IOTP_OK;

	pthread_mutex_lock(&w->jobs.lock);
	if (w->jobs.closed || w->jobs.count >= w->jobs.max)
		rc = IOTP_ERR_THROTTLED;
	else
		queue_push_locked(&w->jobs, &j->node);
	pthread_cond_signal(&w->jobs.cond);
	pthread_mutex_unlock(&w->jobs.lock);
	return rc;
}

/* ---- jobs ---- */

static void run_audit(struct iotp_core *core, struct job *j)
{
	char object[PKI_CERT_ID_LEN + 8], actor[PKI_CERT_ID_LEN + 8];
	struct iotp_err err;
	json_t *detail;
	char *text = NULL;
	iotp_rc rc;

	snprintf(object, sizeof(object), "cert/%s", j->cert_id[0] != '\0' ? j->cert_id : "-");
	snprintf(actor, sizeof(actor), "device:%s", j->cert_id[0] != '\0' ? j->cert_id : "-");
	detail = json_pack("{s:s, s:s?}", "reason", j->reason != NULL ? j->reason : "",
	                   "clientId", j->client_id);
	if (detail != NULL)
		text = json_dumps(detail, JSON_COMPACT);
	json_decref(detail);
	rc = store_begin(core->store, &err);
	if (rc == IOTP_OK) {
		rc = store_event_append(core->store, actor, j->action, object, text, NULL, &err);
		if (rc == IOTP_OK)
			rc = store_commit(core->store, &err);
		else
			store_rollback(core->store);
	}
	if (rc != IOTP_OK)
		LOG_ERROR("broker: audit event %s for %s not written: %s", j->action, object,
		          err.msg);
	free(text);
}

/* Sends a JITR registered event to [mqtt] jitr_webhook: one attempt of at
 * most [provisioning] hook_timeout_ms; a failure is logged and audited
 * (when the store is there), the event itself stays in the events table
 * and on the MQTT topic. */
static void run_notify(struct plugin *pl, struct iotp_core *core, struct job *j)
{
	struct iotp_err err;

	if (webhook_notify(pl->webhook, pl->conf.mqtt_jitr_webhook, j->body,
	                   (int)pl->conf.prov_hook_timeout_ms, &err) == IOTP_OK) {
		LOG_INFO("broker: JITR event for cert %s sent to the webhook", j->cert_id);
		return;
	}
	LOG_WARN("broker: JITR event for cert %s not delivered: %s", j->cert_id, err.msg);
	if (core != NULL) {
		free(j->action);
		free(j->reason);
		j->action = strdup("broker.jitr_webhook_failed");
		j->reason = strdup(err.msg);
		if (j->action != NULL && j->reason != NULL)
			run_audit(core, j);
	}
}

/* Queues the notification of ev for cert_id, on the hook workers when
 * there are some (a receiver that hangs never holds up the others). */
static void notify_queue(struct plugin *pl, struct iotp_core *core, const char *cert_id,
                         const char *ev)
{
	struct job *n = calloc(1, sizeof(*n));

	if (n == NULL || (n->body = strdup(ev)) == NULL) {
		LOG_ERROR("broker: JITR event for %s not sent to the webhook: out of memory",
		          cert_id);
		job_free(n);
		return;
	}
	n->kind = JOB_NOTIFY;
	util_strlcpy(n->cert_id, cert_id, sizeof(n->cert_id));
	if (pl->hook_work.nthreads == 0) {
		run_notify(pl, core, n);
		job_free(n);
	} else if (work_submit(&pl->hook_work, n) != IOTP_OK) {
		LOG_WARN("broker: JITR event for %s not sent to the webhook: hook queue full",
		         cert_id);
		job_free(n);
	}
}

static void run_jitr(struct plugin *pl, struct iotp_core *core, struct job *j)
{
	struct registry_cert_register in = {.cert_pem = j->cert_pem,
	                                    .status = "PENDING_ACTIVATION"};
	struct registry_ref ref = {0};
	struct registry_cert cert = {0};
	char actor[PKI_CERT_ID_LEN + 8], topic[128];
	struct iotp_err err;
	struct result *r = NULL;
	json_t *ev = NULL;
	iotp_rc rc;

	snprintf(actor, sizeof(actor), "device:%s", j->cert_id);
	rc = registry_cert_register(core, actor, &in, &ref, &err);
	if (rc == IOTP_ERR_EXISTS)
		return; /* a concurrent attempt registered it and told the world */
	if (rc != IOTP_OK) {
		LOG_WARN("broker: JITR of cert %s failed: %s", j->cert_id, err.msg);
		return;
	}
	if (registry_cert_describe(core, ref.id, &cert, &err) != IOTP_OK)
		cert.created = util_now();
	LOG_INFO("broker: JITR registered cert %s under CA %s as PENDING_ACTIVATION", ref.id,
	         j->ca_id);
	/* timestamps in milliseconds, as the AWS registered event carries them */
	ev = json_pack("{s:s, s:s, s:I, s:s, s:s, s:I}", "certificateId", ref.id,
	               "caCertificateId", j->ca_id, "timestamp", (json_int_t)util_now() * 1000,
	               "certificateStatus", "PENDING_ACTIVATION", "awsAccountId",
	               pl->conf.account_id, "certificateRegistrationTimestamp",
	               (json_int_t)cert.created * 1000);
	snprintf(topic, sizeof(topic), "$aws/events/certificates/registered/%s", j->ca_id);
	if (ev == NULL || (r = calloc(1, sizeof(*r))) == NULL ||
	    (r->topic = strdup(topic)) == NULL ||
	    (r->payload = json_dumps(ev, JSON_COMPACT)) == NULL) {
		LOG_ERROR("broker: JITR event for %s not published: out of memory", ref.id);
		result_free(r);
		r = NULL;
	}
	if (r != NULL) {
		r->kind = RESULT_PUBLISH;
		r->len = strlen(r->payload);
		if (pl->conf.mqtt_jitr_webhook[0] != '\0' && pl->webhook != NULL)
			notify_queue(pl, core, ref.id, r->payload);
		results_push(pl, r);
	}
	json_decref(ev);
	registry_cert_cleanup(&cert);
}

static void *worker_main(void *arg)
{
	struct work *w = arg;
	struct plugin *pl = w->pl;
	struct iotp_core core;
	struct iotp_err err;
	int have_core;

	/* Hook workers open theirs with their first job: a fleet without
	 * hooks costs no store connection for them. */
	have_core = 0;
	if (!w->for_hooks && !(have_core = core_open(&core, &pl->conf, &err) == IOTP_OK))
		LOG_ERROR("broker: worker cannot open the core: %s", err.msg);
	for (;;) {
		struct job *j;

		pthread_mutex_lock(&w->jobs.lock);
		while (w->jobs.head == NULL && !w->jobs.closed)
			pthread_cond_wait(&w->jobs.cond, &w->jobs.lock);
		if (w->jobs.closed) {
			pthread_mutex_unlock(&w->jobs.lock);
			break;
		}
		j = (struct job *)queue_pop_locked(&w->jobs);
		pthread_mutex_unlock(&w->jobs.lock);
		if (!have_core) {
			/* retry once per job so a store that comes back is used */
			have_core = core_open(&core, &pl->conf, &err) == IOTP_OK;
		}
		if (have_core) {
			switch (j->kind) {
			case JOB_AUDIT:
				run_audit(&core, j);
				break;
			case JOB_JITR:
				run_jitr(pl, &core, j);
				break;
			case JOB_FLEET: {
				struct result *r;

				if (!w->for_hooks && pl->hook_work.nthreads > 0 &&
				    fleet_calls_hook(&core, j)) {
					if (work_submit(&pl->hook_work, j) == IOTP_OK)
						continue; /* the hook pool owns it now */
					LOG_WARN("broker: client %s: %s refused, hook queue full",
					         j->client_id, j->topic.base);
					r = fleet_refusal(j, IOTP_ERR_THROTTLED, "Too many requests");
				} else {
					r = fleet_run(pl, &core, j);
				}
				if (r != NULL)
					results_push(pl, r);
				break;
			}
			case JOB_NOTIFY:
				run_notify(pl, &core, j);
				break;
			}
		} else if (j->kind == JOB_NOTIFY) {
			run_notify(pl, NULL, j);
		} else if (j->kind == JOB_FLEET) {
			struct result *r = fleet_run(pl, NULL, j);

			if (r != NULL)
				results_push(pl, r);
		}
		job_free(j);
	}
	if (have_core)
		core_close(&core);
	return NULL;
}

iotp_rc work_start(struct work *w, struct plugin *pl, size_t n, size_t queue_max,
                   struct iotp_err *err)
{
	memset(w, 0, sizeof(*w));
	w->pl = pl;
	w->for_hooks = w == &pl->hook_work;
	w->jobs.max = queue_max;
	pthread_mutex_init(&w->jobs.lock, NULL);
	pthread_cond_init(&w->jobs.cond, NULL);
	if ((w->threads = calloc(n, sizeof(*w->threads))) == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "workers: out of memory");
	w->nthreads = n;
	for (size_t i = 0; i < n; i++) {
		if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0) {
			work_stop(w);
			return iotp_err_set(err, IOTP_ERR_INTERNAL, "cannot start worker thread %zu", i);
		}
		w->started++;
	}
	return IOTP_OK;
}

void work_stop(struct work *w)
{
	struct qnode *n;

	if (w->threads == NULL)
		return;
	pthread_mutex_lock(&w->jobs.lock);
	w->jobs.closed = 1;
	pthread_cond_broadcast(&w->jobs.cond);
	pthread_mutex_unlock(&w->jobs.lock);
	for (size_t i = 0; i < w->started; i++)
		pthread_join(w->threads[i], NULL);
	while ((n = queue_pop_locked(&w->jobs)) != NULL)
		job_free((struct job *)n);
	free(w->threads);
	w->threads = NULL;
	pthread_cond_destroy(&w->jobs.cond);
	pthread_mutex_destroy(&w->jobs.lock);
}
