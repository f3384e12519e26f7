/*
 * The commissioning loop: polls every transport's descriptors, hands ready
 * ones back to their transport, ticks the transports that watch the file
 * system, and stops on a signal, on the caller's done() or on a timeout.
 * Single-threaded on purpose: the session state machine is not shared
 * between threads, and a device has one installer at a time.
 */
#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "device/commission.h"

#define TICK_MS 250

iotp_rc commission_serve(struct cm_transport **ts, size_t n, struct commission_device *dev,
                         volatile sig_atomic_t *stop, int (*done)(void *ud), void *ud,
                         int timeout_ms, struct iotp_err *err)
{
	int64_t deadline = timeout_ms > 0 ? util_mono_ms() + timeout_ms : 0;
	int64_t drain_until = 0;

	while (!stop || !*stop) {
		struct pollfd fds[CM_POLLFDS_MAX];
		int first[16], count[16], total = 0, writing = 0;

		if (n > 16)
			return iotp_err_set(err, IOTP_ERR_INVALID, "too many transports");
		for (size_t i = 0; i < n; i++) {
			first[i] = total;
			count[i] = ts[i]->pollfds(ts[i], fds + total, CM_POLLFDS_MAX - total);
			total += count[i];
		}
		for (int i = 0; i < total; i++)
			writing |= (fds[i].events & POLLOUT) != 0;
		/* Done: the last replies still go out (for at most a second). */
		if (drain_until && (!writing || util_mono_ms() >= drain_until))
			return IOTP_OK;
		if (poll(fds, (nfds_t)total, TICK_MS) < 0 && errno != EINTR)
			return iotp_err_set(err, IOTP_ERR_IO, "poll: %s", strerror(errno));
		for (size_t i = 0; i < n; i++) {
			if (count[i])
				ts[i]->dispatch(ts[i], fds + first[i], count[i], dev);
			if (ts[i]->tick)
				ts[i]->tick(ts[i], dev);
		}
		if (!drain_until && done && done(ud))
			drain_until = util_mono_ms() + 1000;
		if (deadline && util_mono_ms() >= deadline)
			return iotp_err_set(err, IOTP_ERR_TIMEOUT, "no installer finished in time");
	}
	return IOTP_OK;
}
