/*
 * The CBOR subset that fleet-provisioning payloads use (RFC 8949): maps
 * with text keys whose values are text strings, integers or maps of text.
 * A small decoder of our own rather than a generic library: it works on the
 * received bytes in place, never allocates from a length read off the wire
 * (every declared length is checked against the bytes that remain), and
 * bounds nesting, so a hostile reply costs at most its own size.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "device/dev.h"

#define CBOR_MAX_DEPTH 16
#define CBOR_INDEFINITE UINT64_MAX

static size_t left(const struct cbor_cur *c)
{
	return (size_t)(c->end - c->p);
}

iotp_rc cbor_head(struct cbor_cur *c, enum cbor_kind *kind, uint64_t *arg,
                  struct iotp_err *err)
{
	uint8_t ib;
	unsigned major, ai, n, i;
	uint64_t v = 0;

	if (left(c) < 1)
		return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: truncated item");
	ib = *c->p++;
	major = ib >> 5;
	ai = ib & 0x1f;
	if (ai < 24) {
		v = ai;
	} else if (ai <= 27) {
		n = 1u << (ai - 24);
		if (left(c) < n)
			return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: truncated argument");
		for (i = 0; i < n; i++)
			v = (v << 8) | *c->p++;
	} else if (ai == 31) {
		if (major == 0 || major == 1 || major == 6)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "CBOR: indefinite length on major type %u", major);
		if (major == 7)
			return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: unexpected break");
		v = CBOR_INDEFINITE;
	} else {
		return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: reserved additional info %u", ai);
	}
	*kind = (enum cbor_kind)major;
	*arg = v;
	return IOTP_OK;
}

static int at_break(const struct cbor_cur *c)
{
	return left(c) >= 1 && *c->p == 0xff;
}

/* Walks the chunks of a (possibly indefinite) byte or text string of the
 * given major type whose head was just read; calls back with each piece. */
static iotp_rc string_chunks(struct cbor_cur *c, enum cbor_kind kind, uint64_t arg,
                             struct buf *collect, struct iotp_err *err)
{
	iotp_rc rc;

	if (arg != CBOR_INDEFINITE) {
		if (arg > left(c))
			return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: string longer than input");
		if (collect != NULL && (rc = buf_append(collect, c->p, (size_t)arg)) != IOTP_OK)
			return iotp_err_set(err, rc, "CBOR: string too big");
		c->p += arg;
		return IOTP_OK;
	}
	for (;;) {
		enum cbor_kind ck;
		uint64_t carg;

		if (left(c) < 1)
			return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: unterminated string");
		if (at_break(c)) {
			c->p++;
			return IOTP_OK;
		}
		if ((rc = cbor_head(c, &ck, &carg, err)) != IOTP_OK)
			return rc;
		if (ck != kind || carg == CBOR_INDEFINITE)
			return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: bad string chunk");
		if ((rc = string_chunks(c, kind, carg, collect, err)) != IOTP_OK)
			return rc;
	}
}

static iotp_rc skip_body(struct cbor_cur *c, enum cbor_kind kind, uint64_t arg,
                         struct iotp_err *err);

iotp_rc cbor_skip(struct cbor_cur *c, struct iotp_err *err)
{
	enum cbor_kind kind;
	uint64_t arg;
	iotp_rc rc;

	if ((rc = cbor_head(c, &kind, &arg, err)) != IOTP_OK)
		return rc;
	return skip_body(c, kind, arg, err);
}

static iotp_rc skip_body(struct cbor_cur *c, enum cbor_kind kind, uint64_t arg,
                         struct iotp_err *err)
{
	uint64_t i, n;
	iotp_rc rc = IOTP_OK;

	switch (kind) {
	case CBOR_UINT:
	case CBOR_NEGINT:
	case CBOR_SIMPLE:
		return IOTP_OK; /* the head carried the whole item */
	case CBOR_BYTES:
	case CBOR_TEXT:
		return string_chunks(c, kind, arg, NULL, err);
	case CBOR_ARRAY:
	case CBOR_MAP:
	case CBOR_TAG:
		break;
	}
	if (++c->depth > CBOR_MAX_DEPTH) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: nested too deeply");
		goto out;
	}
	if (kind == CBOR_TAG) {
		rc = cbor_skip(c, err);
		goto out;
	}
	if (arg == CBOR_INDEFINITE) {
		for (;;) {
			if (left(c) < 1) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: unterminated container");
				goto out;
			}
			if (at_break(c)) {
				c->p++;
				goto out;
			}
			if ((rc = cbor_skip(c, err)) != IOTP_OK)
				goto out;
			if (kind == CBOR_MAP && (rc = cbor_skip(c, err)) != IOTP_OK)
				goto out;
		}
	}
	/* Each item takes at least one byte: a count beyond the input is a lie. */
	if (arg > left(c) || (kind == CBOR_MAP && arg > left(c) / 2)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: container longer than input");
		goto out;
	}
	n = kind == CBOR_MAP ? arg * 2 : arg;
	for (i = 0; i < n; i++)
		if ((rc = cbor_skip(c, err)) != IOTP_OK)
			goto out;
out:
	c->depth--;
	return rc;
}

iotp_rc cbor_text(struct cbor_cur *c, char **out, size_t *len, struct iotp_err *err)
{
	struct buf b;
	enum cbor_kind kind;
	uint64_t arg;
	char *s;
	size_t n = 0;
	iotp_rc rc;

	buf_init(&b, (size_t)(c->end - c->p) + 1);
	if ((rc = cbor_head(c, &kind, &arg, err)) != IOTP_OK)
		goto out;
	if (kind != CBOR_TEXT) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: expected a text string");
		goto out;
	}
	if ((rc = string_chunks(c, kind, arg, &b, err)) != IOTP_OK)
		goto out;
	if ((rc = buf_append(&b, "", 0)) != IOTP_OK) { /* a NUL even when empty */
		rc = iotp_err_set(err, rc, "out of memory");
		goto out;
	}
	if (memchr(b.data, '\0', b.len) != NULL) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: NUL inside a text string");
		goto out;
	}
	s = buf_detach(&b, &n);
	*out = s;
	if (len != NULL)
		*len = n;
out:
	buf_cleanup(&b);
	return rc;
}

iotp_rc cbor_put_head(struct buf *b, unsigned major, uint64_t arg)
{
	uint8_t h[9];
	size_t n, i;

	if (arg < 24) {
		h[0] = (uint8_t)((major << 5) | arg);
		return buf_append(b, h, 1);
	}
	if (arg <= 0xff)
		n = 1;
	else if (arg <= 0xffff)
		n = 2;
	else if (arg <= 0xffffffffu)
		n = 4;
	else
		n = 8;
	h[0] = (uint8_t)((major << 5) | (n == 1 ? 24 : n == 2 ? 25 : n == 4 ? 26 : 27));
	for (i = 0; i < n; i++)
		h[1 + i] = (uint8_t)(arg >> (8 * (n - 1 - i)));
	return buf_append(b, h, 1 + n);
}

iotp_rc cbor_put_text(struct buf *b, const char *s, size_t len)
{
	iotp_rc rc = cbor_put_head(b, 3, len);

	return rc != IOTP_OK ? rc : buf_append(b, s, len);
}
