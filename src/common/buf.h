/*
 * A growable byte buffer with a hard cap: whatever comes from outside is read
 * into one of these so that too much input is a clean IOTP_ERR_TOO_BIG,
 * never an unbounded allocation. The content is always NUL-terminated.
 */
#ifndef IOTP_BUF_H
#define IOTP_BUF_H

#include <stddef.h>

#include "common/err.h"

struct buf {
	char *data;   /* NUL-terminated; NULL until the first append */
	size_t len;
	size_t alloc;
	size_t max;   /* cap on len; 0 means no cap beyond SIZE_MAX/2 */
};

void buf_init(struct buf *b, size_t max);
/* Frees the content; b stays usable. The _secure form wipes it first; a
 * buffer never leaves an unwiped copy behind when it grows, so that is
 * enough for a buffer that held a secret. */
void buf_cleanup(struct buf *b);
void buf_cleanup_secure(struct buf *b);
iotp_rc buf_append(struct buf *b, const void *p, size_t n);
iotp_rc buf_puts(struct buf *b, const char *s);
iotp_rc buf_printf(struct buf *b, const char *fmt, ...) IOTP_PRINTF(2, 3);
/* Hands the content to the caller (free() it) and resets b. May return NULL
 * when nothing was appended. */
char *buf_detach(struct buf *b, size_t *len);

#endif
