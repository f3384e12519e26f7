/*
 * Commissioning over a serial console: line-delimited JSON on a tty (the
 * device's debug UART, a USB gadget serial port; a pty pair in the tests).
 * Each line the installer writes is one message; the device writes one
 * reply line back. The tty is put in raw mode so that nothing echoes,
 * translates newlines or eats control characters. A line longer than a
 * message may be is answered with an error and skipped up to its newline.
 * When the other end goes away (EIO or hang-up on a pty, a USB unplug) the
 * tty is closed and opened again on a later tick.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "device/commission.h"

#define REOPEN_MS 500
#define OUT_MAX (4 * COMMISSION_LINE_MAX)

struct serial_t {
	struct cm_transport base;
	char *path;
	int fd;
	int64_t reopen_at;
	struct buf line;
	int skipping;            /* discarding an over-long line */
	struct buf out;          /* replies not yet written */
	size_t out_off;
};

static iotp_rc serial_open(struct serial_t *s, struct iotp_err *err)
{
	struct termios tio;

	s->fd = open(s->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (s->fd < 0)
		return iotp_err_set(err, IOTP_ERR_IO, "open %s: %s", s->path, strerror(errno));
	if (isatty(s->fd) && tcgetattr(s->fd, &tio) == 0) {
		cfmakeraw(&tio);
		cfsetispeed(&tio, B115200);
		cfsetospeed(&tio, B115200);
		tio.c_cflag |= CLOCAL | CREAD;
		tcsetattr(s->fd, TCSANOW, &tio);
	}
	s->line.len = 0;
	s->skipping = 0;
	return IOTP_OK;
}

static void serial_close_fd(struct serial_t *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->reopen_at = util_mono_ms() + REOPEN_MS;
	s->out.len = 0;
	s->out_off = 0;
}

static int serial_pollfds(struct cm_transport *t, struct pollfd *fds, int max)
{
	struct serial_t *s = (struct serial_t *)t;

	if (s->fd < 0 || max < 1)
		return 0;
	fds[0].fd = s->fd;
	fds[0].events = POLLIN | (s->out.len > s->out_off ? POLLOUT : 0);
	return 1;
}

static void handle_line(struct serial_t *s, struct commission_device *dev)
{
	struct iotp_err err;
	size_t before = s->out.len;

	if (commission_device_handle(dev, s->line.data ? s->line.data : "", s->line.len, &s->out,
	                             &err) != IOTP_OK ||
	    buf_append(&s->out, "\n", 1) != IOTP_OK) {
		/* Out of room for replies: the reader is not reading. Drop. */
		s->out.len = before;
		LOG_WARN("commission serial: reply dropped: %s", err.msg);
	}
	s->line.len = 0;
}

static void serial_dispatch(struct cm_transport *t, const struct pollfd *fds, int n,
                            struct commission_device *dev)
{
	struct serial_t *s = (struct serial_t *)t;
	char tmp[4096];
	ssize_t r;

	if (n < 1 || s->fd < 0)
		return;
	if (fds[0].revents & POLLOUT && s->out.len > s->out_off) {
		ssize_t w = write(s->fd, s->out.data + s->out_off, s->out.len - s->out_off);

		if (w > 0 && (s->out_off += (size_t)w) == s->out.len) {
			s->out.len = 0;
			s->out_off = 0;
		}
	}
	if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	r = read(s->fd, tmp, sizeof(tmp));
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		LOG_INFO("commission serial: %s closed by the other end", s->path);
		serial_close_fd(s);
		return;
	}
	for (ssize_t i = 0; i < r; i++) {
		if (tmp[i] == '\n') {
			if (s->skipping) {
				struct iotp_err err;

				s->skipping = 0;
				s->line.len = 0;
				commission_error_format(COMMISSION_E_BAD_REQUEST, "line too long", -1,
				                        &s->out, &err);
				buf_append(&s->out, "\n", 1);
			} else if (s->line.len > 0) {
				handle_line(s, dev);
			}
			continue;
		}
		if (s->skipping)
			continue;
		if (buf_append(&s->line, &tmp[i], 1) != IOTP_OK) {
			s->skipping = 1;
			s->line.len = 0;
		}
	}
}

static void serial_tick(struct cm_transport *t, struct commission_device *dev)
{
	struct serial_t *s = (struct serial_t *)t;
	struct iotp_err err;

	(void)dev;
	if (s->fd < 0 && util_mono_ms() >= s->reopen_at) {
		if (serial_open(s, &err) != IOTP_OK)
			s->reopen_at = util_mono_ms() + REOPEN_MS;
	}
}

static void serial_free(struct cm_transport *t)
{
	struct serial_t *s = (struct serial_t *)t;

	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	buf_cleanup(&s->line);
	buf_cleanup(&s->out);
	free(s->path);
	free(s);
}

iotp_rc cm_serial_new(const char *path, struct cm_transport **out, struct iotp_err *err)
{
	struct serial_t *s = calloc(1, sizeof(*s));
	iotp_rc rc;

	if (!s || !(s->path = strdup(path))) {
		free(s);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "serial transport");
	}
	s->base.name = "serial";
	s->base.pollfds = serial_pollfds;
	s->base.dispatch = serial_dispatch;
	s->base.tick = serial_tick;
	s->base.free = serial_free;
	s->fd = -1;
	buf_init(&s->line, COMMISSION_LINE_MAX);
	buf_init(&s->out, OUT_MAX);
	if ((rc = serial_open(s, err)) != IOTP_OK) {
		serial_free(&s->base);
		return rc;
	}
	*out = &s->base;
	return IOTP_OK;
}
