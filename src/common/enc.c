/*
 * JSON string literals and CBOR items written straight into a buf (see
 * enc.h).
 */
#include <string.h>

#include "common/enc.h"

iotp_rc enc_json_string(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	iotp_rc rc = buf_append(b, "\"", 1);
	size_t run = 0;

	for (size_t i = 0; rc == IOTP_OK; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];
		size_t n = 0;

		if (c >= 0x20 && c != '"' && c != '\\' && c != '\0') {
			run++;
			continue;
		}
		if (run > 0 && (rc = buf_append(b, s + i - run, run)) != IOTP_OK)
			break;
		run = 0;
		if (c == '\0')
			break;
		esc[n++] = '\\';
		switch (c) {
		case '"': esc[n++] = '"'; break;
		case '\\': esc[n++] = '\\'; break;
		case '\n': esc[n++] = 'n'; break;
		case '\r': esc[n++] = 'r'; break;
		case '\t': esc[n++] = 't'; break;
		default:
			esc[n++] = 'u';
			esc[n++] = '0';
			esc[n++] = '0';
			esc[n++] = hex[c >> 4];
			esc[n++] = hex[c & 15];
			break;
		}
		rc = buf_append(b, esc, n);
	}
	if (rc == IOTP_OK)
		rc = buf_append(b, "\"", 1);
	return rc;
}

iotp_rc enc_cbor_head(struct buf *b, unsigned major, uint64_t n)
{
	unsigned char h[9];
	size_t len, bytes;

	if (major > 7)
		return IOTP_ERR_INVALID;
	if (n < 24) {
		h[0] = (unsigned char)(major << 5 | (unsigned)n);
		return buf_append(b, h, 1);
	}
	if (n <= 0xff)
		bytes = 1;
	else if (n <= 0xffff)
		bytes = 2;
	else if (n <= 0xffffffffu)
		bytes = 4;
	else
		bytes = 8;
	/* additional information 24..27: 1, 2, 4 or 8 bytes follow */
	h[0] = (unsigned char)(major << 5 |
	                       (bytes == 1 ? 24u : bytes == 2 ? 25u : bytes == 4 ? 26u : 27u));
	len = 1;
	for (size_t i = bytes; i > 0; i--)
		h[len++] = (unsigned char)(n >> (8 * (i - 1)));
	return buf_append(b, h, len);
}

iotp_rc enc_cbor_text(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	iotp_rc rc = enc_cbor_head(b, 3, n);

	if (rc == IOTP_OK)
		rc = buf_append(b, s, n);
	return rc;
}

iotp_rc enc_string_map(struct buf *b, int cbor, const char *const *kv, size_t n)
{
	iotp_rc rc = cbor ? enc_cbor_head(b, 5, n) : buf_append(b, "{", 1);

	for (size_t i = 0; i < n && rc == IOTP_OK; i++) {
		if (cbor) {
			if ((rc = enc_cbor_text(b, kv[2 * i])) == IOTP_OK)
				rc = enc_cbor_text(b, kv[2 * i + 1]);
			continue;
		}
		if (i > 0)
			rc = buf_append(b, ",", 1);
		if (rc == IOTP_OK)
			rc = enc_json_string(b, kv[2 * i]);
		if (rc == IOTP_OK)
			rc = buf_append(b, ":", 1);
		if (rc == IOTP_OK)
			rc = enc_json_string(b, kv[2 * i + 1]);
	}
	if (rc == IOTP_OK && !cbor)
		rc = buf_append(b, "}", 1);
	return rc;
}
