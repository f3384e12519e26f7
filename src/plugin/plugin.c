/*
 * iotprov_mosquitto.so: the Mosquitto 2.0 plugin (plugin API v5) entry
 * points. mosquitto.conf loads it with
 *
 *   plugin /path/to/iotprov_mosquitto.so
 *   plugin_opt_config /path/to/iotprov-data/iotprov.conf   (required)
 *   plugin_opt_capath /path/to/capath        (optional: kept up to date)
 *   plugin_opt_workers 2                     (optional: provisioning threads)
 *   plugin_opt_hook_workers 4                (optional: threads for requests
 *                                             whose template calls a hook)
 *   plugin_opt_hook_queue_max 64             (optional: pending hooked requests)
 *   plugin_opt_queue_max 4096                (optional: pending jobs)
 *   plugin_opt_feed_interval_ms 200          (optional: change-feed poll)
 *
 * Init reads iotprov.conf, opens the broker thread's core (the same store
 * iotprovd uses), starts the workers and the change-feed thread, and
 * registers the callbacks. Everything lives in one struct plugin passed as
 * the callbacks' user data. The tick drains the results queue: replies and
 * events to publish, clients to kick, policy caches to invalidate -- the
 * only place where work done on other threads touches the broker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "common/log.h"
#include "common/util.h"
#include "net/webhook.h"
#include "plugin/plugin.h"

#define DEFAULT_WORKERS 2
#define DEFAULT_HOOK_WORKERS 4
#define DEFAULT_HOOK_QUEUE_MAX 64
#define DEFAULT_QUEUE_MAX 4096
#define DEFAULT_FEED_MS 200
#define CONN_BUCKETS 4096

/* Log lines from the broker thread go through mosquitto's log; the other
 * threads write to stderr themselves, since mosquitto's logger is not
 * meant to be called from threads it does not know. */
static void log_sink(void *ud, enum iotp_log_level level, const char *line)
{
	struct plugin *pl = ud;

	if (pthread_equal(pthread_self(), pl->broker_thread)) {
		int ml = level == IOTP_LOG_DEBUG  ? MOSQ_LOG_DEBUG
		         : level == IOTP_LOG_INFO ? MOSQ_LOG_INFO
		         : level == IOTP_LOG_WARN ? MOSQ_LOG_WARNING
		                                  : MOSQ_LOG_ERR;

		mosquitto_log_printf(ml, "%s", line);
	} else {
		char ts[32];
		struct timespec now;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s: %s\n", ts, line);
	}
}

void plugin_audit(struct plugin *pl, const char *action, const char *cert_id,
                  const char *client_id, const char *reason)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j == NULL || (j->action = strdup(action)) == NULL ||
	    (reason != NULL && (j->reason = strdup(reason)) == NULL) ||
	    (client_id != NULL && (j->client_id = strdup(client_id)) == NULL)) {
		job_free(j);
		return;
	}
	j->kind = JOB_AUDIT;
	util_strlcpy(j->cert_id, cert_id != NULL ? cert_id : "", sizeof(j->cert_id));
	if (work_submit(&pl->work, j) != IOTP_OK)
		job_free(j); /* the log line stands alone when the queue is full */
}

/* ---- callbacks ---- */

static int on_basic_auth(int event, void *event_data, void *ud)
{
	struct mosquitto_evt_basic_auth *ev = event_data;

	(void)event;
	return auth_basic(ud, ev->client);
}

static int on_acl_check(int event, void *event_data, void *ud)
{
	struct mosquitto_evt_acl_check *ev = event_data;

	(void)event;
	return acl_check(ud, ev->client, ev->access, ev->topic, ev->retain);
}

static int on_message(int event, void *event_data, void *ud)
{
	struct mosquitto_evt_message *ev = event_data;

	(void)event;
	return fleet_on_message(ud, ev->client, ev->topic, ev->payload, ev->payloadlen);
}

static int on_disconnect(int event, void *event_data, void *ud)
{
	struct mosquitto_evt_disconnect *ev = event_data;
	struct plugin *pl = ud;

	(void)event;
	conn_map_remove(&pl->conns, ev->client);
	return MOSQ_ERR_SUCCESS;
}

/* A set of ids or names gathered during one tick, searched once per
 * connection: a bulk revocation costs one walk of the table, not one per
 * certificate. */
struct idset {
	char **v;
	size_t n, cap;
};

static void idset_add(struct idset *s, const char *x)
{
	if (x == NULL || *x == '\0')
		return;
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 16;
		char **grown = realloc(s->v, ncap * sizeof(*grown));

		if (grown == NULL)
			return;
		s->v = grown;
		s->cap = ncap;
	}
	if ((s->v[s->n] = strdup(x)) != NULL)
		s->n++;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void idset_sort(struct idset *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), cmp_str);
}

static int idset_has(const struct idset *s, const char *x)
{
	return s->n > 0 && x != NULL && x[0] != '\0' &&
	       bsearch(&x, s->v, s->n, sizeof(*s->v), cmp_str) != NULL;
}

static void idset_free(struct idset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

struct tick_sets {
	struct idset kick_cert, kick_ca, stale_cert, stale_thing;
};

/* One walk of the connections: marks the stale ones, then disconnects the
 * revoked ones. Client ids are collected first: a kick may call
 * on_disconnect, which edits the table being walked. */
static void apply_sets(struct plugin *pl, struct tick_sets *t)
{
	struct idset kick = {0};

	if (t->kick_cert.n + t->kick_ca.n + t->stale_cert.n + t->stale_thing.n == 0)
		return;
	idset_sort(&t->kick_cert);
	idset_sort(&t->kick_ca);
	idset_sort(&t->stale_cert);
	idset_sort(&t->stale_thing);
	for (size_t b = 0; b < pl->conns.nbuckets; b++) {
		for (struct conn *c = pl->conns.buckets[b]; c != NULL; c = c->next) {
			int by_cert = idset_has(&t->kick_cert, c->cert_id);

			if (by_cert || idset_has(&t->kick_ca, c->ca_id)) {
				LOG_INFO("broker: disconnecting client %s: %s %s is no longer ACTIVE",
				         c->client_id, by_cert ? "certificate" : "CA certificate",
				         by_cert ? c->cert_id : c->ca_id);
				c->kicked = 1;
				idset_add(&kick, c->client_id);
				continue;
			}
			if (idset_has(&t->stale_cert, c->cert_id))
				c->stale = 1;
			for (size_t i = 0; i < c->n_things && !c->stale; i++)
				if (idset_has(&t->stale_thing, c->things[i]))
					c->stale = 1;
		}
	}
	for (size_t i = 0; i < kick.n; i++)
		mosquitto_kick_client_by_clientid(kick.v[i], false);
	idset_free(&kick);
}

static void deliver(struct plugin *pl, struct result *r)
{
	if (r->client_id != NULL) {
		struct conn *c = conn_map_get(&pl->conns, r->client_id);

		if (c == NULL || (r->conn_serial != 0 && c->serial != r->conn_serial)) {
			LOG_INFO("broker: reply on %s dropped: client %s has gone", r->topic,
			         r->client_id);
			return;
		}
	}
	if (mosquitto_broker_publish_copy(r->client_id, r->topic, (int)r->len, r->payload, 0,
	                                  false, NULL) != MOSQ_ERR_SUCCESS)
		LOG_ERROR("broker: publishing on %s failed", r->topic);
}

static int on_tick(int event, void *event_data, void *ud)
{
	struct plugin *pl = ud;
	struct tick_sets t = {0};
	struct qnode *list;

	(void)event;
	(void)event_data;
	pthread_mutex_lock(&pl->results.lock);
	list = pl->results.head;
	pl->results.head = pl->results.tail = NULL;
	pl->results.count = 0;
	pthread_mutex_unlock(&pl->results.lock);
	while (list != NULL) {
		struct result *r = (struct result *)list;

		list = list->next;
		switch (r->kind) {
		case RESULT_PUBLISH:
			deliver(pl, r);
			break;
		case RESULT_KICK_CERT:
			idset_add(&t.kick_cert, r->id);
			break;
		case RESULT_KICK_CA:
			idset_add(&t.kick_ca, r->id);
			break;
		case RESULT_INVALIDATE:
			pl->policy_gen++;
			break;
		case RESULT_INVALIDATE_CERT:
			idset_add(&t.stale_cert, r->id);
			break;
		case RESULT_INVALIDATE_THING:
			idset_add(&t.stale_thing, r->topic);
			break;
		}
		result_free(r);
	}
	apply_sets(pl, &t);
	idset_free(&t.kick_cert);
	idset_free(&t.kick_ca);
	idset_free(&t.stale_cert);
	idset_free(&t.stale_thing);
	return MOSQ_ERR_SUCCESS;
}

/* ---- life cycle ---- */

static const struct {
	int event;
	MOSQ_FUNC_generic_callback cb;
} callbacks[] = {
	{MOSQ_EVT_BASIC_AUTH, on_basic_auth}, {MOSQ_EVT_ACL_CHECK, on_acl_check},
	{MOSQ_EVT_MESSAGE, on_message},       {MOSQ_EVT_DISCONNECT, on_disconnect},
	{MOSQ_EVT_TICK, on_tick},
};

static iotp_rc option_int(const char *key, const char *value, int64_t min, int64_t max,
                          int64_t *out, struct iotp_err *err)
{
	if (util_parse_int64(value, min, max, out) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "plugin_opt_%s must be %lld..%lld", key,
		                    (long long)min, (long long)max);
	return IOTP_OK;
}

static iotp_rc options_read(struct plugin *pl, const struct mosquitto_opt *opts, int n,
                            struct iotp_err *err)
{
	int64_t v;
	iotp_rc rc;

	pl->nworkers = DEFAULT_WORKERS;
	pl->nhook_workers = DEFAULT_HOOK_WORKERS;
	pl->hook_queue_max = DEFAULT_HOOK_QUEUE_MAX;
	pl->queue_max = DEFAULT_QUEUE_MAX;
	pl->feed_interval_ms = DEFAULT_FEED_MS;
	for (int i = 0; i < n; i++) {
		const char *k = opts[i].key, *val = opts[i].value != NULL ? opts[i].value : "";

		if (strcmp(k, "config") == 0) {
			if (util_strlcpy(pl->conf_path, val, sizeof(pl->conf_path)) >= sizeof(pl->conf_path))
				return iotp_err_set(err, IOTP_ERR_CONFIG, "plugin_opt_config too long");
		} else if (strcmp(k, "capath") == 0) {
			if (util_strlcpy(pl->capath, val, sizeof(pl->capath)) >= sizeof(pl->capath))
				return iotp_err_set(err, IOTP_ERR_CONFIG, "plugin_opt_capath too long");
		} else if (strcmp(k, "workers") == 0) {
			if ((rc = option_int(k, val, 1, 64, &v, err)) != IOTP_OK)
				return rc;
			pl->nworkers = (size_t)v;
		} else if (strcmp(k, "hook_workers") == 0) {
			if ((rc = option_int(k, val, 0, 64, &v, err)) != IOTP_OK)
				return rc;
			pl->nhook_workers = (size_t)v;
		} else if (strcmp(k, "hook_queue_max") == 0) {
			if ((rc = option_int(k, val, 1, 1000000, &v, err)) != IOTP_OK)
				return rc;
			pl->hook_queue_max = (size_t)v;
		} else if (strcmp(k, "queue_max") == 0) {
			if ((rc = option_int(k, val, 1, 1000000, &v, err)) != IOTP_OK)
				return rc;
			pl->queue_max = (size_t)v;
		} else if (strcmp(k, "feed_interval_ms") == 0) {
			if ((rc = option_int(k, val, 10, 10000, &v, err)) != IOTP_OK)
				return rc;
			pl->feed_interval_ms = (int)v;
		} else {
			return iotp_err_set(err, IOTP_ERR_CONFIG, "unknown option plugin_opt_%s", k);
		}
	}
	if (pl->conf_path[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "plugin_opt_config (the path of iotprov.conf) is required");
	return IOTP_OK;
}

static iotp_rc conf_read(struct plugin *pl, struct iotp_err *err)
{
	char dir[CONF_STR_MAX];
	char *slash;
	enum iotp_log_level level;
	iotp_rc rc;

	util_strlcpy(dir, pl->conf_path, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash == NULL)
		util_strlcpy(dir, ".", sizeof(dir));
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	conf_init(&pl->conf, dir);
	if ((rc = conf_load(&pl->conf, pl->conf_path, err)) != IOTP_OK ||
	    (rc = conf_validate(&pl->conf, err)) != IOTP_OK ||
	    (rc = conf_store_url(&pl->conf, pl->store_url, sizeof(pl->store_url), err)) != IOTP_OK)
		return rc;
	if (iotp_log_level_parse(pl->conf.log_level, &level) == IOTP_OK)
		iotp_log_set_level(level);
	return IOTP_OK;
}

static void plugin_free(struct plugin *pl)
{
	struct qnode *n;

	if (pl == NULL)
		return;
	for (size_t i = 0; pl->pid != NULL && i < IOTP_ARRAY_LEN(callbacks); i++)
		mosquitto_callback_unregister(pl->pid, callbacks[i].event, callbacks[i].cb, NULL);
	feed_stop(&pl->feed);
	work_stop(&pl->work); /* first: its workers hand jobs to hook_work */
	work_stop(&pl->hook_work);
	while ((n = pl->results.head) != NULL) {
		pl->results.head = n->next;
		result_free((struct result *)n);
	}
	pthread_mutex_destroy(&pl->results.lock);
	pthread_cond_destroy(&pl->results.cond);
	conn_map_cleanup(&pl->conns);
	core_close(&pl->core);
	webhook_free(pl->webhook);
	iotp_log_set_sink(NULL, NULL);
	free(pl);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == 5)
			return 5;
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count)
{
	struct plugin *pl = calloc(1, sizeof(*pl));
	struct iotp_err err;
	iotp_rc rc;

	if (pl == NULL)
		return MOSQ_ERR_NOMEM;
	iotp_err_clear(&err);
	pl->broker_thread = pthread_self();
	pthread_mutex_init(&pl->results.lock, NULL);
	pthread_cond_init(&pl->results.cond, NULL);
	iotp_log_set_sink(log_sink, pl);
	if ((rc = options_read(pl, options, option_count, &err)) != IOTP_OK ||
	    (rc = conf_read(pl, &err)) != IOTP_OK ||
	    (rc = core_open(&pl->core, &pl->conf, &err)) != IOTP_OK)
		goto fail;
	/* without a hook caller, templates that have a hook refuse (fail closed) */
	if (webhook_new(&pl->conf, &pl->webhook, &err) == IOTP_OK) {
		webhook_prov_hook(pl->webhook, &pl->hook_storage);
		pl->hook = &pl->hook_storage;
	} else {
		LOG_WARN("iotprov plugin: pre-provisioning hooks disabled: %s", err.msg);
		if (pl->conf.mqtt_jitr_webhook[0] != '\0')
			LOG_WARN("iotprov plugin: [mqtt] jitr_webhook disabled: %s", err.msg);
	}
	if (pl->conf.mqtt_jitr_webhook[0] != '\0' && !prov_hook_url_ok(pl->conf.mqtt_jitr_webhook)) {
		rc = iotp_err_set(&err, IOTP_ERR_CONFIG,
		                  "[mqtt] jitr_webhook %s: https:// (or http:// to a loopback host) "
		                  "only", pl->conf.mqtt_jitr_webhook);
		goto fail;
	}
	if ((rc = conn_map_init(&pl->conns, CONN_BUCKETS, &err)) != IOTP_OK ||
	    (rc = work_start(&pl->work, pl, pl->nworkers, pl->queue_max, &err)) != IOTP_OK ||
	    (pl->nhook_workers > 0 &&
	     (rc = work_start(&pl->hook_work, pl, pl->nhook_workers, pl->hook_queue_max,
	                      &err)) != IOTP_OK) ||
	    (rc = feed_start(&pl->feed, pl, &err)) != IOTP_OK)
		goto fail;
	for (size_t i = 0; i < IOTP_ARRAY_LEN(callbacks); i++) {
		if (mosquitto_callback_register(identifier, callbacks[i].event, callbacks[i].cb, NULL,
		                                pl) != MOSQ_ERR_SUCCESS) {
			rc = iotp_err_set(&err, IOTP_ERR_INTERNAL, "callback %d not registered",
			                  callbacks[i].event);
			goto fail;
		}
		pl->pid = identifier; /* from now on cleanup unregisters */
	}
	LOG_INFO("iotprov plugin ready: store %s, %zu workers, %zu hook workers, capath %s",
	         store_backend_name(pl->core.store), pl->nworkers, pl->nhook_workers,
	         pl->capath[0] != '\0' ? pl->capath : "(none)");
	*userdata = pl;
	return MOSQ_ERR_SUCCESS;
fail:
	mosquitto_log_printf(MOSQ_LOG_ERR, "iotprov plugin: %s", err.msg);
	plugin_free(pl);
	return MOSQ_ERR_UNKNOWN;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)options;
	(void)option_count;
	plugin_free(userdata);
	return MOSQ_ERR_SUCCESS;
}
