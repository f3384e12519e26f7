/*
 * The background sweep of iotprovd: every SWEEP_INTERVAL seconds, on the
 * event-loop thread, prov_sweep_expired() deletes the certificates whose
 * ownership token expired unused and the trusted-user claims past their
 * expiration (core/provision.h). Each run is a few short store
 * transactions, like any API call on that thread.
 */
#ifndef IOTP_SWEEP_H
#define IOTP_SWEEP_H

#include <event2/event.h>

#include "common/err.h"
#include "core/core.h"

#define SWEEP_INTERVAL 60 /* seconds */

struct sweep;

/* Arms a persistent timer on base that sweeps with core every interval_s
 * seconds (first run after one interval). core and base are borrowed and
 * must outlive the sweep. Free with sweep_free() before the base. */
iotp_rc sweep_start(struct event_base *base, struct iotp_core *core, int interval_s,
                    struct sweep **out, struct iotp_err *err);
/* Stops the timer; NULL is a no-op. */
void sweep_free(struct sweep *s);
/* Runs one sweep now (what the timer does); returns the certificates
 * deleted in *deleted. */
iotp_rc sweep_run(struct sweep *s, int *deleted, struct iotp_err *err);

#endif
