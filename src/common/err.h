/*
 * Error reporting: every fallible function returns an iotp_rc and takes a
 * last `struct iotp_err *err` (may be NULL) that receives a human-readable
 * message. The message buffer is fixed so reporting never allocates.
 */
#ifndef IOTP_ERR_H
#define IOTP_ERR_H

#include <stddef.h>
#include "iotprov/err.h" /* struct iotp_err, IOTP_ERR_MSG_MAX, iotp_strerror */

#if defined(__GNUC__)
#define IOTP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define IOTP_PRINTF(a, b)
#endif

/* Sets err (when not NULL) to rc and the formatted message; returns rc. */
iotp_rc iotp_err_set(struct iotp_err *err, iotp_rc rc, const char *fmt, ...)
	IOTP_PRINTF(3, 4);

/* Like iotp_err_set, then appends ": " and the drained OpenSSL error queue
 * (the queue is emptied even when err is NULL). */
iotp_rc iotp_err_ssl(struct iotp_err *err, iotp_rc rc, const char *fmt, ...)
	IOTP_PRINTF(3, 4);

/* Re-labels the error a callee wrote into err: sets rc and makes the
 * message "<formatted text>: <previous message>". The previous message may
 * not be passed as an argument of iotp_err_set on the same err (its buffer
 * is the destination), hence this helper. */
iotp_rc iotp_err_prefix(struct iotp_err *err, iotp_rc rc, const char *fmt, ...)
	IOTP_PRINTF(3, 4);

/* Resets err to IOTP_OK with an empty message. */
void iotp_err_clear(struct iotp_err *err);

#endif
