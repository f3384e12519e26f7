/*
 * iotprovd's periodic sweep of expired provisioning state (see sweep.h).
 * A failed run is logged and retried at the next tick: nothing it deletes
 * is needed by anyone, so a late sweep only keeps dead rows longer.
 */
#include <stdlib.h>

#include "common/log.h"
#include "common/util.h"
#include "core/provision.h"
#include "server/sweep.h"

struct sweep {
	struct iotp_core *core;
	struct event *ev;
};

iotp_rc sweep_run(struct sweep *s, int *deleted, struct iotp_err *err)
{
	return prov_sweep_expired(s->core, util_now(), deleted, err);
}

static void on_tick(evutil_socket_t fd, short what, void *ud)
{
	struct sweep *s = ud;
	struct iotp_err err;
	int deleted = 0;

	(void)fd;
	(void)what;
	if (sweep_run(s, &deleted, &err) != IOTP_OK)
		LOG_WARN("sweep: %s (retried in %d s)", err.msg, SWEEP_INTERVAL);
	else if (deleted > 0)
		LOG_INFO("sweep: %d expired certificate(s) deleted", deleted);
}

iotp_rc sweep_start(struct event_base *base, struct iotp_core *core, int interval_s,
                    struct sweep **out, struct iotp_err *err)
{
	struct timeval tv = {interval_s > 0 ? interval_s : SWEEP_INTERVAL, 0};
	struct sweep *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "sweep: out of memory");
	s->core = core;
	s->ev = event_new(base, -1, EV_PERSIST, on_tick, s);
	if (s->ev == NULL || event_add(s->ev, &tv) != 0) {
		sweep_free(s);
		return iotp_err_set(err, IOTP_ERR_INTERNAL, "sweep: cannot arm the timer");
	}
	*out = s;
	return IOTP_OK;
}

void sweep_free(struct sweep *s)
{
	if (s == NULL)
		return;
	if (s->ev != NULL)
		event_free(s->ev);
	free(s);
}
