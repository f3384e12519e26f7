/*
 * Small helpers used everywhere: time, randomness, hex, checked number
 * parsing, bounded string copy and files written atomically with a mode.
 */
#ifndef IOTP_UTIL_H
#define IOTP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

#define IOTP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Seconds since the epoch (wall clock). */
int64_t util_now(void);
/* Monotonic milliseconds, for timeouts and latency. */
int64_t util_mono_ms(void);
/* Monotonic nanoseconds, for benchmarks. */
uint64_t util_mono_ns(void);

/* Fills p with n bytes from the CSPRNG. */
iotp_rc util_random(void *p, size_t n, struct iotp_err *err);
/* Writes 2n lowercase hex digits and a NUL to out (size >= 2n+1). */
void util_hex(const void *p, size_t n, char *out);
/* A version-7 UUID (time-ordered, 74 random bits), lowercase, 36 chars + NUL. */
iotp_rc util_uuid(char out[37], struct iotp_err *err);

/* The value of a hex digit of either case (0..15), -1 for anything else. */
int util_hexval(int c);
/* The value of a character of the base64 alphabet of RFC 4648 section 4
 * (0..63), -1 for anything else ('=' included). */
int util_b64val(int c);

/* Copies at most size-1 bytes and NUL-terminates; returns strlen(src), so a
 * result >= size means truncation (the BSD strlcpy contract). */
size_t util_strlcpy(char *dst, const char *src, size_t size);

/* Strict base-10 parse of the whole string into [min, max]. */
iotp_rc util_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Constant-time equality of two byte strings of possibly different lengths
 * (the length difference itself is not hidden). Returns 1 when equal. */
int util_secure_eq(const void *a, size_t alen, const void *b, size_t blen);

/* Writes data to path atomically (temp file in the same directory, fsync,
 * rename) with the given mode. */
iotp_rc util_write_file(const char *path, const void *data, size_t len, mode_t mode,
                        struct iotp_err *err);
/* Reads a whole file of at most max bytes. *out is NUL-terminated and
 * malloc'ed: the caller frees it. */
iotp_rc util_read_file(const char *path, size_t max, char **out, size_t *len,
                       struct iotp_err *err);
/* Creates a directory with mode (0700 for data dirs); an existing directory is
 * fine. */
iotp_rc util_mkdir(const char *path, mode_t mode, struct iotp_err *err);

#endif
