/*
 * GET /iotprov/audit?after=<id>&limit=<n>: the event log (store.h: the
 * audit trail and change feed in one) for the operator's CLI (`iotprov
 * audit tail`). An iotprov extension, not an AWS operation: its operation
 * name ListAuditEvents is in no role table, so only admin keys may call it.
 *
 * Answer: {"events":[{"id","time","actor","action","object","detail"}...],
 * "lastId":N}, oldest first, events with id > after, at most limit of them.
 * time is epoch seconds with millisecond precision; detail is the event's
 * JSON object (null when it has none). lastId is the id of the last event
 * returned, or `after` itself when none is newer, so that a client follows
 * the log by passing lastId back as after.
 */
#include <string.h>

#include "core/store/store.h"
#include "server/api.h"
#include "server/api_json.h"

#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX 1000

struct collect {
	json_t *events;  /* NULL once a failure happened */
	int64_t last_id;
};

static int on_event(void *ud, const struct store_event *ev)
{
	struct collect *c = ud;
	json_t *detail = NULL, *o;

	if (ev->detail != NULL) {
		detail = json_loads(ev->detail, JSON_DECODE_ANY, NULL);
		/* Details are written as JSON by the core; should one not be,
		 * it is passed on as the string it is. */
		if (detail == NULL)
			detail = json_string(ev->detail);
	} else {
		detail = json_null();
	}
	o = json_pack("{s:I, s:f, s:s, s:s, s:s}", "id", (json_int_t)ev->id, "time",
	              (double)ev->ts_ms / 1000.0, "actor", ev->actor != NULL ? ev->actor : "",
	              "action", ev->action != NULL ? ev->action : "", "object",
	              ev->object != NULL ? ev->object : "");
	if (o != NULL && json_object_set_new(o, "detail", detail) != 0) {
		json_decref(o);
		o = NULL;
	} else if (o == NULL) {
		json_decref(detail);
	}
	api_json_push(&c->events, o);
	c->last_id = ev->id;
	return c->events == NULL;
}

static iotp_rc list_audit_events(struct api_request *rq, struct api_response *resp,
                                 struct iotp_err *err)
{
	struct collect c;
	int64_t after = 0, limit = AUDIT_LIMIT_DEFAULT;
	json_t *o = NULL;
	iotp_rc rc;

	c.events = NULL;
	if ((rc = api_query_int(rq, "after", 0, INT64_MAX, &after, err)) != IOTP_OK ||
	    (rc = api_query_int(rq, "limit", 1, AUDIT_LIMIT_MAX, &limit, err)) != IOTP_OK)
		goto out;
	c.events = json_array();
	c.last_id = after;
	if (c.events == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = store_events_since(rq->core->store, after, (int)limit, on_event, &c, err)) !=
	    IOTP_OK)
		goto out;
	o = api_page_json("events", c.events, "lastId", NULL);
	c.events = NULL;
	if (o != NULL && json_object_set_new(o, "lastId", json_integer(c.last_id)) != 0) {
		json_decref(o);
		o = NULL;
	}
	rc = api_reply(resp, o, err);
out:
	json_decref(c.events);
	return rc;
}

static const struct route routes[] = {
	{"GET", "/iotprov/audit", "ListAuditEvents", 0, NULL, list_audit_events},
};

const struct route_table api_audit_routes = {routes, sizeof(routes) / sizeof(routes[0])};
