/*
 * The change-feed tailer: a thread with its own store connection that
 * follows the events table (store_events_since) and turns what matters to
 * a running broker into results for the broker thread:
 *
 *   cert.status to anything but ACTIVE, cert.delete  -> kick that cert's clients
 *   cacert.update leaving the CA not ACTIVE          -> kick every client under it
 *   cacert.*                                         -> rewrite the capath (here,
 *                                                       off the broker thread)
 *   policy.attach/detach, thing.attach/detach_principal on a certificate
 *                                                    -> that cert's connections reload
 *   thing.update/delete, thinggroup.add/remove_thing -> connections of certs
 *                                                       attached to that thing reload
 *   other policy.* (new default version...), policy
 *   attachments to groups, thinggroup.delete         -> every connection reloads
 *
 * It wakes on the store's notifications where the backend has them
 * (PostgreSQL) and otherwise polls every interval_ms, so a revocation made
 * by any process reaches the broker within about interval_ms plus one tick.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "core/broker_conf.h"
#include "plugin/plugin.h"

#define FEED_BATCH 500

struct batch {
	struct plugin *pl;
	struct store *st;
	int64_t last_id;
	int invalidate;
	int capath;
	int n;
};

/* Queues a result naming a certificate or CA id (id) or a thing (name). */
static void push(struct plugin *pl, enum result_kind kind, const char *id, const char *name)
{
	struct result *r = calloc(1, sizeof(*r));

	if (r == NULL || (name != NULL && (r->topic = strdup(name)) == NULL)) {
		LOG_ERROR("broker: feed: out of memory, change to %s not applied",
		          id != NULL ? id : name);
		result_free(r);
		return;
	}
	r->kind = kind;
	if (id != NULL)
		util_strlcpy(r->id, id, sizeof(r->id));
	results_push(pl, r);
}

static int starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int is(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/* A certificate resource ("cert/<id>") makes only that certificate's
 * connections stale; anything else (a thing group) all of them. */
static void invalidate_target(struct batch *b, const char *target)
{
	if (target != NULL && starts(target, "cert/"))
		push(b->pl, RESULT_INVALIDATE_CERT, target + 5, NULL);
	else
		b->invalidate = 1;
}

static int on_event(void *ud, const struct store_event *ev)
{
	struct batch *b = ud;
	const char *a = ev->action, *obj = ev->object != NULL ? ev->object : "";
	json_t *d = ev->detail != NULL ? json_loads(ev->detail, 0, NULL) : NULL;

	b->last_id = ev->id;
	b->n++;
	if (is(a, "cert.status") && starts(obj, "cert/")) {
		const char *st = json_string_value(json_object_get(d, "status"));

		/* without a readable status, kick: the device reconnects if it may */
		if (st == NULL || strcmp(st, "ACTIVE") != 0)
			push(b->pl, RESULT_KICK_CERT, obj + 5, NULL);
	} else if (is(a, "cert.delete") && starts(obj, "cert/")) {
		push(b->pl, RESULT_KICK_CERT, obj + 5, NULL);
	} else if (starts(a, "cacert.") && starts(obj, "cacert/")) {
		struct store_val p[] = {SV_TEXT(obj + 7)};
		char *status = NULL;
		iotp_rc rc = store_query_text(b->st, "SELECT status FROM cas WHERE id = ?", p, 1,
		                              &status, NULL);

		if ((rc == IOTP_OK && (status == NULL || strcmp(status, "ACTIVE") != 0)) ||
		    rc == IOTP_ERR_NOT_FOUND)
			push(b->pl, RESULT_KICK_CA, obj + 7, NULL);
		free(status);
		b->capath = 1;
	} else if (is(a, "policy.attach") || is(a, "policy.detach")) {
		invalidate_target(b, json_string_value(json_object_get(d, "target")));
	} else if (is(a, "thing.attach_principal") || is(a, "thing.detach_principal")) {
		invalidate_target(b, json_string_value(json_object_get(d, "principal")));
	} else if ((is(a, "thing.update") || is(a, "thing.delete")) && starts(obj, "thing/")) {
		push(b->pl, RESULT_INVALIDATE_THING, NULL, obj + 6);
	} else if (is(a, "thinggroup.add_thing") || is(a, "thinggroup.remove_thing")) {
		const char *thing = json_string_value(json_object_get(d, "thingName"));

		if (thing != NULL)
			push(b->pl, RESULT_INVALIDATE_THING, NULL, thing);
		else
			b->invalidate = 1;
	} else if (is(a, "thinggroup.delete") ||
	           (starts(a, "policy.") && !is(a, "policy.create"))) {
		/* a policy's default document or a group hierarchy changed */
		b->invalidate = 1;
	}
	json_decref(d);
	return 0;
}

static void capath_sync(struct plugin *pl, struct store *st)
{
	struct iotp_err err;
	int n = 0;

	if (pl->capath[0] == '\0')
		return;
	if (broker_capath_sync(st, &pl->conf, pl->capath, &n, &err) != IOTP_OK)
		LOG_ERROR("broker: capath %s not updated: %s", pl->capath, err.msg);
	else
		LOG_INFO("broker: capath %s holds %d CA certificates", pl->capath, n);
}

static int stopping(struct feed *f)
{
	int s;

	pthread_mutex_lock(&f->lock);
	s = f->stop;
	pthread_mutex_unlock(&f->lock);
	return s;
}

static void *feed_main(void *arg)
{
	struct feed *f = arg;
	struct plugin *pl = f->pl;
	struct store *st = NULL;
	struct iotp_err err;

	while (!stopping(f)) {
		struct batch b = {.pl = pl, .last_id = f->last_id};
		int woken = 0;

		if (st == NULL) {
			if (store_open(pl->store_url, &st, &err) != IOTP_OK ||
			    store_events_listen(st, &err) != IOTP_OK) {
				LOG_ERROR("broker: change feed: %s", err.msg);
				store_close(st);
				st = NULL;
				usleep((useconds_t)f->interval_ms * 1000);
				continue;
			}
		}
		b.st = st;
		if (store_events_since(st, f->last_id, FEED_BATCH, on_event, &b, &err) != IOTP_OK) {
			LOG_ERROR("broker: change feed: %s", err.msg);
			store_close(st);
			st = NULL;
			usleep((useconds_t)f->interval_ms * 1000);
			continue;
		}
		f->last_id = b.last_id;
		if (b.invalidate) {
			struct result *r = calloc(1, sizeof(*r));

			if (r != NULL) {
				r->kind = RESULT_INVALIDATE;
				results_push(pl, r);
			}
		}
		if (b.capath)
			capath_sync(pl, st);
		if (b.n == FEED_BATCH)
			continue; /* more waiting */
		if (store_events_wait(st, f->interval_ms, &woken, &err) != IOTP_OK) {
			store_close(st);
			st = NULL;
		}
	}
	store_close(st);
	return NULL;
}

iotp_rc feed_start(struct feed *f, struct plugin *pl, struct iotp_err *err)
{
	memset(f, 0, sizeof(*f));
	f->pl = pl;
	f->interval_ms = pl->feed_interval_ms;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	/* start from now: what happened before is already in the store the
	 * broker reads at connect; the capath is brought up to date once */
	if (store_events_last_id(pl->core.store, &f->last_id, err) != IOTP_OK)
		return err != NULL ? err->rc : IOTP_ERR_DB;
	capath_sync(pl, pl->core.store);
	if (pthread_create(&f->thread, NULL, feed_main, f) != 0)
		return iotp_err_set(err, IOTP_ERR_INTERNAL, "cannot start the change-feed thread");
	f->started = 1;
	return IOTP_OK;
}

void feed_stop(struct feed *f)
{
	if (!f->started)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = 1;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	f->started = 0;
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
}
