/*
 * Error messages and the OpenSSL error-queue drain (see err.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "common/err.h"

__attribute__((format(printf, 3, 0)))
static void vset(struct iotp_err *err, iotp_rc rc, const char *fmt, va_list ap)
{
	err->rc = rc;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

iotp_rc iotp_err_set(struct iotp_err *err, iotp_rc rc, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return rc;
	va_start(ap, fmt);
	vset(err, rc, fmt, ap);
	va_end(ap);
	return rc;
}

iotp_rc iotp_err_ssl(struct iotp_err *err, iotp_rc rc, const char *fmt, ...)
{
	va_list ap;
	unsigned long e;
	size_t used;
	int first = 1;

	if (err == NULL) {
		ERR_clear_error();
		return rc;
	}
	va_start(ap, fmt);
	vset(err, rc, fmt, ap);
	va_end(ap);
	used = strlen(err->msg);
	while ((e = ERR_get_error()) != 0) {
		char buf[256];

		if (used + 3 >= sizeof(err->msg))
			continue; /* keep draining so the queue is empty */
		ERR_error_string_n(e, buf, sizeof(buf));
		used += (size_t)snprintf(err->msg + used, sizeof(err->msg) - used,
		                         "%s%s", first ? ": " : "; ", buf);
		if (used >= sizeof(err->msg))
			used = sizeof(err->msg) - 1;
		first = 0;
	}
	return rc;
}

iotp_rc iotp_err_prefix(struct iotp_err *err, iotp_rc rc, const char *fmt, ...)
{
	char prev[sizeof(err->msg)];
	va_list ap;
	size_t used;

	if (err == NULL)
		return rc;
	memcpy(prev, err->msg, sizeof(prev));
	prev[sizeof(prev) - 1] = '\0';
	va_start(ap, fmt);
	vset(err, rc, fmt, ap);
	va_end(ap);
	used = strlen(err->msg);
	if (prev[0] != '\0' && used + 2 < sizeof(err->msg))
		snprintf(err->msg + used, sizeof(err->msg) - used, ": %s", prev);
	return rc;
}

void iotp_err_clear(struct iotp_err *err)
{
	if (err == NULL)
		return;
	err->rc = IOTP_OK;
	err->msg[0] = '\0';
}

const char *iotp_strerror(iotp_rc rc)
{
	switch (rc) {
	case IOTP_OK: return "ok";
	case IOTP_ERR_INVALID: return "invalid input";
	case IOTP_ERR_NOMEM: return "out of memory";
	case IOTP_ERR_NOT_FOUND: return "not found";
	case IOTP_ERR_EXISTS: return "already exists";
	case IOTP_ERR_CONFLICT: return "in use";
	case IOTP_ERR_VERSION: return "version conflict";
	case IOTP_ERR_STATE: return "wrong state";
	case IOTP_ERR_CERT: return "certificate invalid";
	case IOTP_ERR_POLICY: return "malformed policy";
	case IOTP_ERR_AUTH: return "authentication failed";
	case IOTP_ERR_DENIED: return "access denied";
	case IOTP_ERR_DB: return "store error";
	case IOTP_ERR_CRYPTO: return "cryptographic error";
	case IOTP_ERR_IO: return "I/O error";
	case IOTP_ERR_TOO_BIG: return "too large";
	case IOTP_ERR_LIMIT: return "limit exceeded";
	case IOTP_ERR_REGCODE: return "registration code invalid";
	case IOTP_ERR_THROTTLED: return "throttled";
	case IOTP_ERR_CONFIG: return "configuration invalid";
	case IOTP_ERR_INTERNAL: return "internal error";
	case IOTP_ERR_BUSY: return "busy";
	case IOTP_ERR_TEMPLATE: return "template failed";
	case IOTP_ERR_TOKEN: return "ownership token invalid";
	case IOTP_ERR_EXPIRED: return "expired";
	case IOTP_ERR_SIGNATURE: return "signature mismatch";
	case IOTP_ERR_TIMEOUT: return "timed out";
	case IOTP_ERR_UNSUPPORTED: return "unsupported";
	}
	return "unknown error";
}
