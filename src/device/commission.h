/*
 * Device-side commissioning: the transports that carry installer messages
 * to the session state machine (core/commission.h) and the agent behind
 * `iotprov-device commission`.
 *
 * The seam: a transport is a set of file descriptors to poll plus what to do
 * when one is ready, plus a tick for transports that poll the file system.
 * Each request it receives goes to commission_device_handle() and the one
 * reply goes back the way the request came. So one single-threaded loop
 * (commission_serve) runs the local web page, the serial console and the
 * removable-media watcher at once, and a BLE GATT transport (a write
 * characteristic for requests, a notify characteristic for replies, BlueZ's
 * D-Bus fd to poll) is one more implementation of struct cm_transport.
 */
#ifndef IOTP_DEVICE_COMMISSION_H
#define IOTP_DEVICE_COMMISSION_H

#include <poll.h>
#include <signal.h>
#include <stddef.h>

#include "common/err.h"
#include "core/commission.h"

#define CM_POLLFDS_MAX 32

struct cm_transport {
	const char *name;
	/* Fills up to max pollfds (fd, events); returns how many. */
	int (*pollfds)(struct cm_transport *t, struct pollfd *fds, int max);
	/* Acts on the n pollfds this transport filled (revents set). */
	void (*dispatch)(struct cm_transport *t, const struct pollfd *fds, int n,
	                 struct commission_device *dev);
	/* Called on every loop turn (at least every 250 ms); may be NULL. */
	void (*tick)(struct cm_transport *t, struct commission_device *dev);
	void (*free)(struct cm_transport *t);
};

/* The local web page and its message endpoint on listen ("127.0.0.1:8080"
 * or "[::1]:8080"): GET / serves page_path (the one-file bundle), POST
 * /api/commission takes one message and answers with one. Requests from
 * another origin are refused (403). */
iotp_rc cm_http_new(const char *listen, const char *page_path, struct cm_transport **out,
                    struct iotp_err *err);
/* The bound port (listen may ask for port 0). */
int cm_http_port(const struct cm_transport *t);

/* Line-delimited JSON over the tty at path (put in raw mode, 8N1). */
iotp_rc cm_serial_new(const char *path, struct cm_transport **out, struct iotp_err *err);

/* Removable media mounted at dir: keeps dir/device-hello.json current,
 * answers dir/commission-1.json with dir/device-reply.json, applies
 * dir/commission.json once and writes dir/commission-result.json; each
 * answered file is renamed NAME.done (or NAME.rejected). */
iotp_rc cm_media_new(const char *dir, struct cm_transport **out, struct iotp_err *err);

#define CM_MEDIA_HELLO "device-hello.json"
#define CM_MEDIA_FILE1 "commission-1.json"
#define CM_MEDIA_REPLY "device-reply.json"
#define CM_MEDIA_FILE "commission.json"
#define CM_MEDIA_RESULT "commission-result.json"

/* Runs the transports until *stop becomes non-zero, until done(ud) returns
 * non-zero (checked after every turn), or until timeout_ms (<= 0: none)
 * passes: IOTP_OK, or IOTP_ERR_TIMEOUT for the timeout. */
iotp_rc commission_serve(struct cm_transport **ts, size_t n, struct commission_device *dev,
                         volatile sig_atomic_t *stop, int (*done)(void *ud), void *ud,
                         int timeout_ms, struct iotp_err *err);

/* `iotprov-device commission ...`: see its --help. Returns the exit status
 * (0 success, 1 failure explained on stderr, 2 usage). */
int commission_agent_main(int argc, char **argv);

#endif
