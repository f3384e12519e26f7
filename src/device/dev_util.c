/*
 * Helpers shared by the device library: durable file replacement (the
 * basis of storage that cannot brick the device), the crash-injection seam
 * that proves it, failure reporting with a countable cause, and small
 * parsing helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/util.h"
#include "device/dev.h"

/* ------------------------------------------------------------------ */
/* Crash injection */

static pthread_once_t crash_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t crash_lock = PTHREAD_MUTEX_INITIALIZER;
static char crash_step[128];
static long crash_nth;
static long crash_hits;

static void crash_init(void)
{
	const char *v = getenv("IOTP_DEVICE_CRASH_AT");
	const char *hash;
	int64_t n = 1;

	if (v == NULL || *v == '\0')
		return;
	hash = strchr(v, '#');
	if (hash != NULL) {
		if (util_parse_int64(hash + 1, 1, 1000000, &n) != IOTP_OK)
			n = 1;
		if ((size_t)(hash - v) >= sizeof(crash_step))
			return;
		memcpy(crash_step, v, (size_t)(hash - v));
		crash_step[hash - v] = '\0';
	} else if (util_strlcpy(crash_step, v, sizeof(crash_step)) >= sizeof(crash_step)) {
		crash_step[0] = '\0';
		return;
	}
	crash_nth = (long)n;
}

void dev_crash_reload(void)
{
	pthread_once(&crash_once, crash_init);
	pthread_mutex_lock(&crash_lock);
	crash_step[0] = '\0';
	crash_hits = 0;
	crash_init();
	pthread_mutex_unlock(&crash_lock);
}

void dev_crash_point(const char *step)
{
	int hit = 0;

	pthread_once(&crash_once, crash_init);
	if (crash_step[0] == '\0' || strcmp(step, crash_step) != 0)
		return;
	pthread_mutex_lock(&crash_lock);
	hit = ++crash_hits == crash_nth;
	pthread_mutex_unlock(&crash_lock);
	if (hit) {
		/* As abrupt as a power cut: no atexit handlers, no stdio flush. */
		static const char msg[] = "iotprov-device: IOTP_DEVICE_CRASH_AT reached\n";
		ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);

		(void)ignored;
		_exit(DEV_CRASH_EXIT);
	}
}

/* ------------------------------------------------------------------ */
/* Durable files */

iotp_rc dev_path(const char *dir, const char *name, char *out, size_t size,
                 struct iotp_err *err)
{
	int n = snprintf(out, size, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= size)
		return iotp_err_set(err, IOTP_ERR_INVALID, "path too long: %s/%s", dir, name);
	return IOTP_OK;
}

iotp_rc dev_fsync_dir(const char *dir, struct iotp_err *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	iotp_rc rc = IOTP_OK;

	if (fd < 0)
		return iotp_err_set(err, IOTP_ERR_IO, "open directory %s: %s", dir, strerror(errno));
	if (fsync(fd) != 0 && errno != EINVAL)
		rc = iotp_err_set(err, IOTP_ERR_IO, "fsync directory %s: %s", dir, strerror(errno));
	close(fd);
	return rc;
}

iotp_rc dev_write_durable(const char *dir, const char *name, const char *label,
                          const void *data, size_t len, mode_t mode, struct iotp_err *err)
{
	char path[4096], tmp[4096], step[160];
	const unsigned char *p = data;
	int fd = -1;
	iotp_rc rc;

	if ((rc = dev_path(dir, name, path, sizeof(path), err)) != IOTP_OK)
		return rc;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmpXXXXXX", dir, name) >= sizeof(tmp))
		return iotp_err_set(err, IOTP_ERR_INVALID, "path too long: %s", path);
	fd = mkstemp(tmp);
	if (fd < 0)
		return iotp_err_set(err, IOTP_ERR_IO, "create %s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "chmod %s: %s", tmp, strerror(errno));
		goto out;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = iotp_err_set(err, IOTP_ERR_IO, "write %s: %s", tmp, strerror(errno));
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	snprintf(step, sizeof(step), "%s.tmp", label);
	dev_crash_point(step);
	if (rename(tmp, path) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "rename %s to %s: %s", tmp, path,
		                  strerror(errno));
		goto out;
	}
	snprintf(step, sizeof(step), "%s.renamed", label);
	dev_crash_point(step);
	rc = dev_fsync_dir(dir, err);
out:
	if (fd >= 0)
		close(fd);
	if (rc != IOTP_OK)
		unlink(tmp);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Failures */

iotp_rc dev_fail(struct iotp_failure *why, enum iotp_cause cause, int status, const char *code,
                 struct iotp_err *err, iotp_rc rc, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL) {
		why->cause = cause;
		why->status = status;
		util_strlcpy(why->code, code != NULL ? code : "", sizeof(why->code));
	}
	if (err != NULL) {
		err->rc = rc;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return rc;
}

const char *iotp_cause_name(enum iotp_cause cause)
{
	switch (cause) {
	case IOTP_CAUSE_NONE: return "none";
	case IOTP_CAUSE_NETWORK: return "network";
	case IOTP_CAUSE_TLS: return "tls";
	case IOTP_CAUSE_REFUSED: return "refused";
	case IOTP_CAUSE_REJECTED: return "rejected";
	case IOTP_CAUSE_TIMEOUT: return "timeout";
	case IOTP_CAUSE_PROTOCOL: return "protocol";
	case IOTP_CAUSE_LOCAL: return "local";
	}
	return "unknown";
}

void iotp_failure_clear(struct iotp_failure *f)
{
	if (f == NULL)
		return;
	f->cause = IOTP_CAUSE_NONE;
	f->status = 0;
	f->code[0] = '\0';
}

void iotp_free_secret(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* ------------------------------------------------------------------ */
/* Small helpers */

iotp_rc iotp_endpoint_parse(const char *s, char *host, size_t hostsize, int *port,
                           struct iotp_err *err)
{
	const char *colon;
	size_t hlen;
	int64_t p;

	if (s == NULL || *s == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID, "empty endpoint: expected HOST:PORT");
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "bad endpoint '%s': expected [V6ADDR]:PORT", s);
		hlen = (size_t)(close - s - 1);
		colon = close + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "bad endpoint '%s': expected HOST:PORT", s);
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= hostsize)
		return iotp_err_set(err, IOTP_ERR_INVALID, "bad host in endpoint '%s'", s);
	if (util_parse_int64(colon + 1, 1, 65535, &p) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_INVALID, "bad port in endpoint '%s'", s);
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	*port = (int)p;
	return IOTP_OK;
}

char *dev_json_text(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

void dev_sleep_ms(uint32_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}
