/*
 * Capped growable buffer (see buf.h).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/buf.h"

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->max = max ? max : SIZE_MAX / 2;
}

void buf_cleanup(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

void buf_cleanup_secure(struct buf *b)
{
	if (b->data != NULL)
		OPENSSL_cleanse(b->data, b->alloc);
	buf_cleanup(b);
}

static iotp_rc reserve(struct buf *b, size_t n)
{
	size_t need, alloc;
	char *p;

	if (n > b->max || b->len > b->max - n)
		return IOTP_ERR_TOO_BIG;
	need = b->len + n + 1;
	if (need <= b->alloc)
		return IOTP_OK;
	alloc = b->alloc ? b->alloc : 256;
	while (alloc < need)
		alloc *= 2;
	/* Not realloc(): it would free the old block with its content, and a
	 * buffer may hold a secret (buf_cleanup_secure wipes only the last
	 * block). Growth doubles, so the copies cost O(len) in all. */
	p = malloc(alloc);
	if (p == NULL)
		return IOTP_ERR_NOMEM;
	if (b->data != NULL) {
		memcpy(p, b->data, b->len + 1);
		OPENSSL_cleanse(b->data, b->alloc);
		free(b->data);
	}
	b->data = p;
	b->alloc = alloc;
	return IOTP_OK;
}

iotp_rc buf_append(struct buf *b, const void *p, size_t n)
{
	iotp_rc rc = reserve(b, n);

	if (rc != IOTP_OK)
		return rc;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return IOTP_OK;
}

iotp_rc buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

iotp_rc buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	iotp_rc rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return IOTP_ERR_INVALID;
	if ((rc = reserve(b, (size_t)n)) != IOTP_OK)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return IOTP_OK;
}

char *buf_detach(struct buf *b, size_t *len)
{
	char *p = b->data;

	if (len != NULL)
		*len = b->len;
	b->data = NULL;
	b->len = b->alloc = 0;
	return p;
}
