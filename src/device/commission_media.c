/*
 * Commissioning from removable media (a USB stick, an SD card): the one
 * transport that cannot answer while the installer waits, so the exchange
 * takes two round trips of the medium. While the medium is mounted at dir:
 *   - the device keeps dir/device-hello.json current: its parameters for
 *     one session (sid, device, salt, iterations; no share);
 *   - when dir/commission-1.json appears (the installer's share only), the
 *     device answers dir/device-reply.json (its share and confirmation);
 *   - when dir/commission.json appears (the installer's confirmation and
 *     sealed requests, written by `iotprov commission --device DIR` only
 *     after it checked the device's confirmation), the device checks and
 *     applies it once and writes dir/commission-result.json (its sealed
 *     answers).
 * Each file is renamed NAME.done once answered, or NAME.rejected when it
 * was refused. A new device-hello follows a commission file, so an old
 * file copied back is stale and refused without being applied.
 * The medium is polled on each tick; a medium that is absent is not an
 * error (it may be plugged in later).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "device/commission.h"

#define POLL_MS 300

struct media_t {
	struct cm_transport base;
	char *dir;
	int64_t next_ms;
	char *hello;             /* what we last wrote as device-hello.json */
};

static int media_pollfds(struct cm_transport *t, struct pollfd *fds, int max)
{
	(void)t;
	(void)fds;
	(void)max;
	return 0;
}

static void media_dispatch(struct cm_transport *t, const struct pollfd *fds, int n,
                           struct commission_device *dev)
{
	(void)t;
	(void)fds;
	(void)n;
	(void)dev;
}

static void path_of(const struct media_t *m, const char *name, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", m->dir, name);
}

/* Rewrites device-hello.json when it is missing or not ours. */
static void keep_hello(struct media_t *m, struct commission_device *dev)
{
	char path[4096], *cur = NULL;
	size_t len = 0;
	struct buf hello;
	struct iotp_err err;

	buf_init(&hello, COMMISSION_LINE_MAX);
	if (commission_device_file_hello(dev, &hello, &err) != IOTP_OK ||
	    buf_append(&hello, "\n", 1) != IOTP_OK) {
		LOG_WARN("commission media: %s", err.msg);
		goto out;
	}
	path_of(m, CM_MEDIA_HELLO, path, sizeof(path));
	if (util_read_file(path, COMMISSION_LINE_MAX, &cur, &len, NULL) == IOTP_OK &&
	    len == hello.len && memcmp(cur, hello.data, len) == 0)
		goto out;
	if (util_write_file(path, hello.data, hello.len, 0644, &err) != IOTP_OK) {
		LOG_WARN("commission media: %s", err.msg);
		goto out;
	}
	free(m->hello);
	m->hello = buf_detach(&hello, NULL);
	LOG_INFO("commission media: wrote %s", path);
out:
	free(cur);
	buf_cleanup(&hello);
}

static void apply_file(struct media_t *m, struct commission_device *dev, const char *name,
                       const char *answer)
{
	char path[4096], res[4096], done[4200];
	char *text = NULL;
	size_t len = 0;
	struct buf result;
	struct commission_msg rm;
	struct iotp_err err;
	int consumed = 0, refused;
	iotp_rc rc;

	path_of(m, name, path, sizeof(path));
	path_of(m, answer, res, sizeof(res));
	buf_init(&result, 0);
	rc = util_read_file(path, COMMISSION_FILE_MAX, &text, &len, &err);
	if (rc == IOTP_ERR_NOT_FOUND)
		goto out;
	if (rc != IOTP_OK) {
		commission_error_format(COMMISSION_E_BAD_REQUEST, err.msg, -1, &result, &err);
		consumed = 1;
	} else if (commission_device_file_apply(dev, text, len, &result, &consumed, &err) !=
	           IOTP_OK) {
		LOG_WARN("commission media: %s", err.msg);
		goto out;
	}
	if (!consumed)
		goto out; /* throttled: the same file is tried again later */
	buf_append(&result, "\n", 1);
	if (util_write_file(res, result.data, result.len, 0644, &err) != IOTP_OK)
		LOG_WARN("commission media: %s", err.msg);
	memset(&rm, 0, sizeof(rm));
	refused = commission_msg_parse(result.data, result.len, &rm, NULL) != IOTP_OK ||
	          rm.type == CM_ERROR;
	commission_msg_cleanup(&rm);
	snprintf(done, sizeof(done), "%s.%s", path, refused ? "rejected" : "done");
	if (rename(path, done) != 0) {
		/* A read-only medium: remove is not possible either, so the
		 * stale device-hello is what stops a second application. */
		LOG_WARN("commission media: cannot rename %s: %s", path, strerror(errno));
	}
	LOG_INFO("commission media: %s %s", path, refused ? "refused" : "applied");
out:
	free(text);
	buf_cleanup(&result);
}

static void media_tick(struct cm_transport *t, struct commission_device *dev)
{
	struct media_t *m = (struct media_t *)t;
	struct stat st;
	int64_t now = util_mono_ms();

	if (now < m->next_ms)
		return;
	m->next_ms = now + POLL_MS;
	if (stat(m->dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return; /* no medium */
	/* the second round first: a commission file waiting for the session
	 * in progress is applied before any other commission-1 is looked at */
	apply_file(m, dev, CM_MEDIA_FILE, CM_MEDIA_RESULT);
	apply_file(m, dev, CM_MEDIA_FILE1, CM_MEDIA_REPLY);
	keep_hello(m, dev);
}

static void media_free(struct cm_transport *t)
{
	struct media_t *m = (struct media_t *)t;

	if (!m)
		return;
	free(m->dir);
	free(m->hello);
	free(m);
}

iotp_rc cm_media_new(const char *dir, struct cm_transport **out, struct iotp_err *err)
{
	struct media_t *m = calloc(1, sizeof(*m));

	if (!m || !(m->dir = strdup(dir))) {
		free(m);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "media transport");
	}
	m->base.name = "media";
	m->base.pollfds = media_pollfds;
	m->base.dispatch = media_dispatch;
	m->base.tick = media_tick;
	m->base.free = media_free;
	*out = &m->base;
	return IOTP_OK;
}
