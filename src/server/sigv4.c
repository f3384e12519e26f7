/*
 * AWS SigV4: Authorization header parser, canonical request builder,
 * signature check and signer (see sigv4.h). The rules follow botocore's
 * SigV4Auth byte for byte, because botocore (the aws CLI and boto3) is the
 * client that must interoperate; the unit tests hold vectors produced by
 * botocore itself.
 *
 * Everything read from the request is length-checked and written into
 * fixed arrays or capped buffers, so a hostile header is an error, never an
 * overflow. The parser and the builder are fuzzed (tests/fuzz/fuzz_sigv4.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "common/util.h"
#include "server/sigv4.h"

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

enum charset { CS_ALNUM, CS_DIGIT, CS_SCOPE, CS_HEX, CS_TOKEN };

static int in_set(unsigned char c, enum charset set)
{
	int lower = c >= 'a' && c <= 'z', digit = c >= '0' && c <= '9';

	switch (set) {
	case CS_ALNUM: return lower || digit || (c >= 'A' && c <= 'Z');
	case CS_DIGIT: return digit;
	case CS_SCOPE: return lower || digit || c == '-';
	case CS_HEX: return digit || (c >= 'a' && c <= 'f');
	case CS_TOKEN: /* an HTTP token, lowercase only */
		return lower || digit || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
	}
	return 0;
}

/* Copies [s, s+n) into dst of size dstsize when it fits, has at least
 * minlen bytes and every byte is in set. */
static int take(char *dst, size_t dstsize, const char *s, size_t n, size_t minlen,
                enum charset set)
{
	if (n < minlen || n >= dstsize)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!in_set((unsigned char)s[i], set))
			return 0;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 1;
}

static iotp_rc parse_credential(const char *v, size_t n, struct sigv4_auth *a,
                                struct iotp_err *err)
{
	const char *parts[5];
	size_t lens[5];
	size_t np = 0, start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i == n || v[i] == '/') {
			if (np == 5)
				return iotp_err_set(err, IOTP_ERR_AUTH,
				                    "Credential has more than 5 '/'-separated parts");
			parts[np] = v + start;
			lens[np] = i - start;
			np++;
			start = i + 1;
		}
	}
	if (np != 5)
		return iotp_err_set(err, IOTP_ERR_AUTH,
		                    "Credential must be KEYID/YYYYMMDD/REGION/SERVICE/aws4_request");
	if (!take(a->key_id, sizeof(a->key_id), parts[0], lens[0], 1, CS_ALNUM))
		return iotp_err_set(err, IOTP_ERR_AUTH, "Credential: malformed access key id");
	if (lens[1] != 8 || !take(a->date, sizeof(a->date), parts[1], lens[1], 8, CS_DIGIT))
		return iotp_err_set(err, IOTP_ERR_AUTH, "Credential: date must be YYYYMMDD");
	if (!take(a->region, sizeof(a->region), parts[2], lens[2], 1, CS_SCOPE))
		return iotp_err_set(err, IOTP_ERR_AUTH, "Credential: malformed region");
	if (!take(a->service, sizeof(a->service), parts[3], lens[3], 1, CS_SCOPE))
		return iotp_err_set(err, IOTP_ERR_AUTH, "Credential: malformed service name");
	if (lens[4] != 12 || memcmp(parts[4], "aws4_request", 12) != 0)
		return iotp_err_set(err, IOTP_ERR_AUTH,
		                    "Credential: scope must end with aws4_request");
	return IOTP_OK;
}

static iotp_rc parse_signed_headers(const char *v, size_t n, struct sigv4_auth *a,
                                    struct iotp_err *err)
{
	size_t start = 0;
	int has_host = 0;

	a->nsigned = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && v[i] != ';')
			continue;
		if (a->nsigned == SIGV4_MAX_SIGNED_HEADERS)
			return iotp_err_set(err, IOTP_ERR_AUTH, "SignedHeaders: more than %d headers",
			                    SIGV4_MAX_SIGNED_HEADERS);
		if (!take(a->signed_headers[a->nsigned], sizeof(a->signed_headers[0]), v + start,
		          i - start, 1, CS_TOKEN))
			return iotp_err_set(err, IOTP_ERR_AUTH,
			                    "SignedHeaders: header names must be lowercase tokens "
			                    "separated by ';'");
		if (a->nsigned > 0 &&
		    strcmp(a->signed_headers[a->nsigned - 1], a->signed_headers[a->nsigned]) >= 0)
			return iotp_err_set(err, IOTP_ERR_AUTH,
			                    "SignedHeaders: names must be sorted and unique");
		if (strcmp(a->signed_headers[a->nsigned], "host") == 0)
			has_host = 1;
		a->nsigned++;
		start = i + 1;
	}
	if (!has_host)
		return iotp_err_set(err, IOTP_ERR_AUTH, "SignedHeaders: the host header must be signed");
	return IOTP_OK;
}

iotp_rc sigv4_parse_authorization(const char *value, struct sigv4_auth *out,
                                  struct iotp_err *err)
{
	struct sigv4_auth a;
	const size_t alg_len = sizeof(SIGV4_ALGORITHM) - 1;
	int seen_cred = 0, seen_sh = 0, seen_sig = 0;
	const char *p;
	size_t len;
	iotp_rc rc;

	if (value == NULL)
		return iotp_err_set(err, IOTP_ERR_AUTH, "missing Authorization header");
	len = strlen(value);
	if (len > SIGV4_AUTH_HEADER_MAX)
		return iotp_err_set(err, IOTP_ERR_AUTH, "Authorization header longer than %d bytes",
		                    SIGV4_AUTH_HEADER_MAX);
	if (len < alg_len || memcmp(value, SIGV4_ALGORITHM, alg_len) != 0 ||
	    !is_blank(value[alg_len]))
		return iotp_err_set(err, IOTP_ERR_AUTH,
		                    "Authorization header must start with " SIGV4_ALGORITHM);
	memset(&a, 0, sizeof(a));
	p = value + alg_len;
	for (;;) {
		const char *name, *val, *eq;
		size_t nlen, vlen;

		while (is_blank(*p))
			p++;
		if (*p == '\0')
			break;
		name = p;
		eq = NULL;
		while (*p != '\0' && *p != ',' && !is_blank(*p)) {
			if (*p == '=' && eq == NULL)
				eq = p;
			p++;
		}
		if (eq == NULL)
			return iotp_err_set(err, IOTP_ERR_AUTH,
			                    "Authorization header: expected NAME=VALUE parameters");
		nlen = (size_t)(eq - name);
		val = eq + 1;
		vlen = (size_t)(p - val);
		if (nlen == 10 && memcmp(name, "Credential", 10) == 0) {
			if (seen_cred++)
				return iotp_err_set(err, IOTP_ERR_AUTH, "Credential given twice");
			if ((rc = parse_credential(val, vlen, &a, err)) != IOTP_OK)
				return rc;
		} else if (nlen == 13 && memcmp(name, "SignedHeaders", 13) == 0) {
			if (seen_sh++)
				return iotp_err_set(err, IOTP_ERR_AUTH, "SignedHeaders given twice");
			if ((rc = parse_signed_headers(val, vlen, &a, err)) != IOTP_OK)
				return rc;
		} else if (nlen == 9 && memcmp(name, "Signature", 9) == 0) {
			if (seen_sig++)
				return iotp_err_set(err, IOTP_ERR_AUTH, "Signature given twice");
			if (vlen != 64 || !take(a.signature, sizeof(a.signature), val, vlen, 64, CS_HEX))
				return iotp_err_set(err, IOTP_ERR_AUTH,
				                    "Signature must be 64 lowercase hex digits");
		} else {
			return iotp_err_set(err, IOTP_ERR_AUTH,
			                    "Authorization header: unknown parameter '%.*s'",
			                    (int)(nlen > 32 ? 32 : nlen), name);
		}
		while (is_blank(*p))
			p++;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p != '\0')
			return iotp_err_set(err, IOTP_ERR_AUTH,
			                    "Authorization header: parameters must be separated by ','");
	}
	if (!seen_cred || !seen_sh || !seen_sig)
		return iotp_err_set(err, IOTP_ERR_AUTH,
		                    "Authorization header needs Credential, SignedHeaders and "
		                    "Signature");
	*out = a;
	return IOTP_OK;
}

const char *sigv4_header_get(const struct sigv4_request *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++) {
		if (req->headers[i].name != NULL && strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	}
	return NULL;
}

void sigv4_format_amzdate(int64_t t, char out[17])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
		util_strlcpy(out, "19700101T000000Z", 17);
}

static int num(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 1;
}

/* Converts broken-down UTC fields to epoch seconds, refusing impossible
 * dates (timegm normalises 31 February; the round trip catches it). */
static int fields_to_epoch(int year, int mon, int day, int hour, int min, int sec,
                           int64_t *out)
{
	struct tm tm, back;
	time_t t;

	if (year < 1970 || year > 9999 || mon < 1 || mon > 12 || day < 1 || day > 31 ||
	    hour > 23 || min > 59 || sec > 60)
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1 || gmtime_r(&t, &back) == NULL || back.tm_mday != day ||
	    back.tm_mon != mon - 1)
		return 0;
	*out = (int64_t)t;
	return 1;
}

static int parse_amzdate(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, se;

	if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z' || !num(s, 4, &y) ||
	    !num(s + 4, 2, &mo) || !num(s + 6, 2, &d) || !num(s + 9, 2, &h) ||
	    !num(s + 11, 2, &mi) || !num(s + 13, 2, &se))
		return 0;
	return fields_to_epoch(y, mo, d, h, mi, se, out);
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 7231), or with "+0000" / "-0000"
 * for GMT as Python's email.utils.formatdate writes it (botocore does). */
static int parse_http_date(const char *s, int64_t *out)
{
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	static const char *const days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
	size_t len = strlen(s);
	int y, mo = 0, d, h, mi, se, okday = 0;

	if (len < 26 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
	    s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25] != ' ')
		return 0;
	if (!(len == 29 && memcmp(s + 26, "GMT", 3) == 0) &&
	    !(len == 31 && (memcmp(s + 26, "+0000", 5) == 0 || memcmp(s + 26, "-0000", 5) == 0)))
		return 0;
	for (int i = 0; i < 7; i++)
		okday |= memcmp(s, days[i], 3) == 0;
	for (int i = 0; i < 12; i++) {
		if (memcmp(s + 8, months[i], 3) == 0)
			mo = i + 1;
	}
	if (!okday || mo == 0 || !num(s + 5, 2, &d) || !num(s + 12, 4, &y) ||
	    !num(s + 17, 2, &h) || !num(s + 20, 2, &mi) || !num(s + 23, 2, &se))
		return 0;
	return fields_to_epoch(y, mo, d, h, mi, se, out);
}

iotp_rc sigv4_request_time(const struct sigv4_request *req, char amzdate[17], int64_t *epoch,
                           struct iotp_err *err)
{
	const char *v = sigv4_header_get(req, "x-amz-date");
	int64_t t;

	if (v != NULL) {
		if (!parse_amzdate(v, &t))
			return iotp_err_set(err, IOTP_ERR_AUTH,
			                    "X-Amz-Date must be YYYYMMDD'T'HHMMSS'Z'");
	} else if ((v = sigv4_header_get(req, "date")) != NULL) {
		if (!parse_http_date(v, &t))
			return iotp_err_set(err, IOTP_ERR_AUTH,
			                    "Date must be like 'Sun, 06 Nov 1994 08:49:37 GMT'");
	} else {
		return iotp_err_set(err, IOTP_ERR_AUTH,
		                    "the request needs an X-Amz-Date or Date header");
	}
	sigv4_format_amzdate(t, amzdate);
	*epoch = t;
	return IOTP_OK;
}

static iotp_rc put_encoded(struct buf *out, const unsigned char *s, size_t n, int keep_slash)
{
	static const char hexdig[] = "0123456789ABCDEF";
	iotp_rc rc = IOTP_OK;
	size_t run = 0;

	for (size_t i = 0; i < n && rc == IOTP_OK; i++) {
		if (is_unreserved(s[i]) || (keep_slash && s[i] == '/')) {
			run++;
			continue;
		}
		if (run > 0)
			rc = buf_append(out, s + i - run, run);
		run = 0;
		if (rc == IOTP_OK) {
			char e[3] = {'%', hexdig[s[i] >> 4], hexdig[s[i] & 15]};

			rc = buf_append(out, e, 3);
		}
	}
	if (rc == IOTP_OK && run > 0)
		rc = buf_append(out, s + n - run, run);
	return rc;
}

iotp_rc sigv4_canonical_uri(const char *path, size_t len, struct buf *out)
{
	struct buf tmp;
	size_t i = 0;
	iotp_rc rc = IOTP_OK;

	if (len == 0)
		return buf_puts(out, "/");
	/* botocore's remove_dot_segments: drop empty and "." segments, ".."
	 * removes the previous one; the result is "/"-prefixed when the path
	 * was and keeps a trailing "/" when something remains. tmp holds the
	 * kept segments as "/seg/seg". */
	buf_init(&tmp, len + 2);
	while (i <= len && rc == IOTP_OK) {
		size_t start = i;

		while (i < len && path[i] != '/')
			i++;
		{
			size_t n = i - start;

			if (n == 0 || (n == 1 && path[start] == '.')) {
				/* skipped */
			} else if (n == 2 && path[start] == '.' && path[start + 1] == '.') {
				if (tmp.len > 0) {
					char *slash = strrchr(tmp.data, '/');

					tmp.len = (size_t)(slash - tmp.data);
					tmp.data[tmp.len] = '\0';
				}
			} else if ((rc = buf_append(&tmp, "/", 1)) == IOTP_OK) {
				rc = buf_append(&tmp, path + start, n);
			}
		}
		i++;
	}
	if (rc == IOTP_OK) {
		const char *s = tmp.len > 0 ? tmp.data : "";
		size_t n = tmp.len;

		if (path[0] != '/' && n > 0) {
			s++;
			n--;
		}
		if (tmp.len == 0 && path[0] == '/')
			rc = buf_puts(out, "/");
		else
			rc = put_encoded(out, (const unsigned char *)s, n, 1);
		if (rc == IOTP_OK && tmp.len > 0 && path[len - 1] == '/')
			rc = buf_puts(out, "/");
	}
	buf_cleanup(&tmp);
	return rc;
}

/* Lenient percent-decoding: a '%' not followed by two hex digits stays as
 * it is; '+' is a plus sign (RFC 3986, not form encoding). The decoded bytes
 * are RFC 3986 encoded again into out. */
static iotp_rc put_decoded_encoded(struct buf *out, const char *s, size_t n)
{
	unsigned char tmp[256];
	size_t t = 0;
	iotp_rc rc = IOTP_OK;

	for (size_t i = 0; i < n && rc == IOTP_OK; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%' && n - i > 2 && util_hexval(s[i + 1]) >= 0 &&
		    util_hexval(s[i + 2]) >= 0) {
			c = (unsigned char)(util_hexval(s[i + 1]) * 16 + util_hexval(s[i + 2]));
			i += 2;
		}
		tmp[t++] = c;
		if (t == sizeof(tmp)) {
			rc = put_encoded(out, tmp, t, 0);
			t = 0;
		}
	}
	if (rc == IOTP_OK && t > 0)
		rc = put_encoded(out, tmp, t, 0);
	return rc;
}

/* One query parameter, encoded. Offsets while the buffer grows, then
 * pointers for sorting. */
struct qpair {
	size_t koff, klen, voff, vlen;
	const char *k, *v;
};

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c == 0 && alen != blen)
		c = alen < blen ? -1 : 1;
	return c;
}

static int cmp_pair(const void *a, const void *b)
{
	const struct qpair *x = a, *y = b;
	int c = cmp_bytes(x->k, x->klen, y->k, y->klen);

	return c != 0 ? c : cmp_bytes(x->v, x->vlen, y->v, y->vlen);
}

iotp_rc sigv4_canonical_query(const char *query, size_t len, struct buf *out)
{
	struct qpair *pairs = NULL;
	struct buf enc;
	size_t npairs = 1, k = 0, start = 0;
	iotp_rc rc = IOTP_OK;

	if (len == 0)
		return IOTP_OK;
	for (size_t i = 0; i < len; i++)
		npairs += query[i] == '&';
	pairs = calloc(npairs, sizeof(*pairs));
	if (pairs == NULL)
		return IOTP_ERR_NOMEM;
	/* Encoded output is at most 3 times the input. */
	buf_init(&enc, len * 3 + 16);
	rc = buf_append(&enc, "", 0);
	for (size_t i = 0; i <= len && rc == IOTP_OK; i++) {
		const char *eq;
		size_t n;

		if (i < len && query[i] != '&')
			continue;
		n = i - start;
		eq = memchr(query + start, '=', n);
		pairs[k].koff = enc.len;
		rc = put_decoded_encoded(&enc, query + start,
		                         eq != NULL ? (size_t)(eq - (query + start)) : n);
		pairs[k].klen = enc.len - pairs[k].koff;
		pairs[k].voff = enc.len;
		if (rc == IOTP_OK && eq != NULL)
			rc = put_decoded_encoded(&enc, eq + 1, (size_t)(query + i - (eq + 1)));
		pairs[k].vlen = enc.len - pairs[k].voff;
		k++;
		start = i + 1;
	}
	if (rc == IOTP_OK) {
		for (size_t i = 0; i < k; i++) {
			pairs[i].k = enc.data + pairs[i].koff;
			pairs[i].v = enc.data + pairs[i].voff;
		}
		qsort(pairs, k, sizeof(*pairs), cmp_pair);
		for (size_t i = 0; i < k && rc == IOTP_OK; i++) {
			if (i > 0)
				rc = buf_append(out, "&", 1);
			if (rc == IOTP_OK)
				rc = buf_append(out, pairs[i].k, pairs[i].klen);
			if (rc == IOTP_OK)
				rc = buf_append(out, "=", 1);
			if (rc == IOTP_OK)
				rc = buf_append(out, pairs[i].v, pairs[i].vlen);
		}
	}
	buf_cleanup(&enc);
	free(pairs);
	return rc;
}

/* Appends a header value trimmed, with inner whitespace runs collapsed to
 * one space (botocore: ' '.join(value.split())). */
static iotp_rc put_trimmed(struct buf *out, const char *v)
{
	int pending_space = 0, any = 0;
	iotp_rc rc = IOTP_OK;

	for (; *v != '\0' && rc == IOTP_OK; v++) {
		if (is_space(*v)) {
			pending_space = any;
			continue;
		}
		if (pending_space)
			rc = buf_append(out, " ", 1);
		if (rc == IOTP_OK)
			rc = buf_append(out, v, 1);
		pending_space = 0;
		any = 1;
	}
	return rc;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(data, len, md);
	util_hex(md, sizeof(md), out);
}

iotp_rc sigv4_canonical_request(const struct sigv4_request *req, const struct sigv4_auth *auth,
                                struct buf *out, struct iotp_err *err)
{
	const char *target = req->target, *q;
	size_t pathlen;
	char body_hash[65];
	const char *declared;
	iotp_rc rc;

	q = strchr(target, '?');
	pathlen = q != NULL ? (size_t)(q - target) : strlen(target);
	if ((rc = buf_puts(out, req->method)) != IOTP_OK || (rc = buf_puts(out, "\n")) != IOTP_OK ||
	    (rc = sigv4_canonical_uri(target, pathlen, out)) != IOTP_OK ||
	    (rc = buf_puts(out, "\n")) != IOTP_OK)
		goto out;
	if (q != NULL && (rc = sigv4_canonical_query(q + 1, strlen(q + 1), out)) != IOTP_OK)
		goto out;
	if ((rc = buf_puts(out, "\n")) != IOTP_OK)
		goto out;
	for (int h = 0; h < auth->nsigned; h++) {
		const char *name = auth->signed_headers[h];
		int found = 0;

		if ((rc = buf_puts(out, name)) != IOTP_OK || (rc = buf_puts(out, ":")) != IOTP_OK)
			goto out;
		for (size_t i = 0; i < req->nheaders; i++) {
			if (req->headers[i].name == NULL || req->headers[i].value == NULL ||
			    strcasecmp(req->headers[i].name, name) != 0)
				continue;
			if (found++ > 0 && (rc = buf_puts(out, ",")) != IOTP_OK)
				goto out;
			if ((rc = put_trimmed(out, req->headers[i].value)) != IOTP_OK)
				goto out;
		}
		if (!found)
			return iotp_err_set(err, IOTP_ERR_SIGNATURE,
			                    "signed header '%s' is missing from the request", name);
		if ((rc = buf_puts(out, "\n")) != IOTP_OK)
			goto out;
	}
	if ((rc = buf_puts(out, "\n")) != IOTP_OK)
		goto out;
	for (int h = 0; h < auth->nsigned; h++) {
		if ((h > 0 && (rc = buf_puts(out, ";")) != IOTP_OK) ||
		    (rc = buf_puts(out, auth->signed_headers[h])) != IOTP_OK)
			goto out;
	}
	sha256_hex(req->body != NULL ? req->body : "", req->body_len, body_hash);
	declared = sigv4_header_get(req, "x-amz-content-sha256");
	if (declared != NULL && strcasecmp(declared, body_hash) != 0)
		return iotp_err_set(err, IOTP_ERR_SIGNATURE,
		                    "x-amz-content-sha256 does not match the request body");
	if ((rc = buf_puts(out, "\n")) != IOTP_OK || (rc = buf_puts(out, body_hash)) != IOTP_OK)
		goto out;
	return IOTP_OK;
out:
	if (rc == IOTP_ERR_TOO_BIG)
		return iotp_err_set(err, rc, "request too large to sign (over %d bytes canonical)",
		                    SIGV4_CANONICAL_MAX);
	return iotp_err_set(err, rc, "canonical request: %s", iotp_strerror(rc));
}

static int hmac256(const void *key, size_t keylen, const void *data, size_t len,
                   unsigned char out[32])
{
	unsigned int n = 0;

	return HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &n) != NULL && n == 32;
}

iotp_rc sigv4_compute(const struct sigv4_request *req, const struct sigv4_auth *auth,
                      const char *amzdate, const char *secret, char out[65],
                      struct iotp_err *err)
{
	struct buf cr, sts;
	char cr_hash[65];
	unsigned char k[32], k2[32];
	char *kstart = NULL;
	size_t slen = strlen(secret);
	iotp_rc rc;

	buf_init(&cr, SIGV4_CANONICAL_MAX);
	buf_init(&sts, 1024);
	if ((rc = sigv4_canonical_request(req, auth, &cr, err)) != IOTP_OK)
		goto out;
	sha256_hex(cr.data, cr.len, cr_hash);
	rc = buf_printf(&sts, SIGV4_ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s", amzdate,
	                auth->date, auth->region, auth->service, cr_hash);
	if (rc != IOTP_OK) {
		rc = iotp_err_set(err, rc, "string to sign: %s", iotp_strerror(rc));
		goto out;
	}
	kstart = malloc(slen + 5);
	if (kstart == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "signing key: out of memory");
		goto out;
	}
	memcpy(kstart, "AWS4", 4);
	memcpy(kstart + 4, secret, slen + 1);
	if (!hmac256(kstart, slen + 4, auth->date, strlen(auth->date), k) ||
	    !hmac256(k, 32, auth->region, strlen(auth->region), k2) ||
	    !hmac256(k2, 32, auth->service, strlen(auth->service), k) ||
	    !hmac256(k, 32, "aws4_request", 12, k2) || !hmac256(k2, 32, sts.data, sts.len, k)) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "HMAC-SHA256");
		goto out;
	}
	util_hex(k, 32, out);
out:
	if (kstart != NULL) {
		OPENSSL_cleanse(kstart, slen + 4);
		free(kstart);
	}
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(k2, sizeof(k2));
	buf_cleanup(&cr);
	buf_cleanup(&sts);
	return rc;
}

iotp_rc sigv4_check_scope(const struct sigv4_auth *auth, const char *amzdate,
                          int64_t request_time, const char *region, int64_t now,
                          int64_t max_skew, struct iotp_err *err)
{
	char nowstr[17], limit[17];

	if (strcmp(auth->region, region) != 0)
		return iotp_err_set(err, IOTP_ERR_SIGNATURE,
		                    "Credential should be scoped to a valid region, not '%s'. "
		                    "This server serves '%s'.",
		                    auth->region, region);
	if (strcmp(auth->service, "iot") != 0 && strcmp(auth->service, "execute-api") != 0)
		return iotp_err_set(err, IOTP_ERR_SIGNATURE,
		                    "Credential should be scoped to correct service: 'iot' "
		                    "(or 'execute-api'), not '%s'.",
		                    auth->service);
	if (memcmp(auth->date, amzdate, 8) != 0)
		return iotp_err_set(err, IOTP_ERR_SIGNATURE,
		                    "Date in Credential scope does not match YYYYMMDD from the "
		                    "request date: '%s' != '%.8s'",
		                    auth->date, amzdate);
	sigv4_format_amzdate(now, nowstr);
	if (request_time < now - max_skew) {
		sigv4_format_amzdate(now - max_skew, limit);
		return iotp_err_set(err, IOTP_ERR_SIGNATURE,
		                    "Signature expired: %s is now earlier than %s (%s - %lld s). "
		                    "Check the client clock.",
		                    amzdate, limit, nowstr, (long long)max_skew);
	}
	if (request_time > now + max_skew) {
		sigv4_format_amzdate(now + max_skew, limit);
		return iotp_err_set(err, IOTP_ERR_SIGNATURE,
		                    "Signature not yet current: %s is still later than %s "
		                    "(%s + %lld s). Check the client clock.",
		                    amzdate, limit, nowstr, (long long)max_skew);
	}
	return IOTP_OK;
}

iotp_rc sigv4_verify(const struct sigv4_request *req, const struct sigv4_auth *auth,
                     const char *amzdate, const char *secret, struct iotp_err *err)
{
	char expect[65];
	iotp_rc rc = sigv4_compute(req, auth, amzdate, secret, expect, err);

	if (rc != IOTP_OK)
		return rc;
	if (CRYPTO_memcmp(expect, auth->signature, 64) != 0)
		rc = iotp_err_set(err, IOTP_ERR_SIGNATURE,
		                  "The request signature we calculated does not match the "
		                  "signature you provided. Check your AWS Secret Access Key and "
		                  "signing method.");
	OPENSSL_cleanse(expect, sizeof(expect));
	return rc;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

iotp_rc sigv4_sign(const struct sigv4_request *req, const char *key_id, const char *secret,
                   const char *region, const char *service, const char *amzdate,
                   char *out, size_t outsize, struct iotp_err *err)
{
	struct sigv4_auth a;
	char sig[65];
	struct buf b;
	int n = 0, has_host = 0;
	iotp_rc rc;

	memset(&a, 0, sizeof(a));
	if (strlen(amzdate) != 16 ||
	    util_strlcpy(a.key_id, key_id, sizeof(a.key_id)) >= sizeof(a.key_id) ||
	    util_strlcpy(a.region, region, sizeof(a.region)) >= sizeof(a.region) ||
	    util_strlcpy(a.service, service, sizeof(a.service)) >= sizeof(a.service))
		return iotp_err_set(err, IOTP_ERR_INVALID, "sign: key id, region, service or date "
		                                           "malformed");
	memcpy(a.date, amzdate, 8);
	for (size_t i = 0; i < req->nheaders; i++) {
		char lower[SIGV4_HEADER_NAME_MAX + 1];
		size_t len = strlen(req->headers[i].name);
		int dup = 0;

		if (len == 0 || len > SIGV4_HEADER_NAME_MAX)
			return iotp_err_set(err, IOTP_ERR_INVALID, "sign: bad header name");
		for (size_t j = 0; j <= len; j++) {
			char c = req->headers[i].name[j];

			lower[j] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		for (int j = 0; j < n; j++)
			dup |= strcmp(a.signed_headers[j], lower) == 0;
		if (dup)
			continue;
		if (n == SIGV4_MAX_SIGNED_HEADERS)
			return iotp_err_set(err, IOTP_ERR_INVALID, "sign: more than %d headers",
			                    SIGV4_MAX_SIGNED_HEADERS);
		memcpy(a.signed_headers[n++], lower, len + 1);
		has_host |= strcmp(lower, "host") == 0;
	}
	if (!has_host)
		return iotp_err_set(err, IOTP_ERR_INVALID, "sign: the request needs a Host header");
	qsort(a.signed_headers, (size_t)n, sizeof(a.signed_headers[0]), cmp_name);
	a.nsigned = n;
	if ((rc = sigv4_compute(req, &a, amzdate, secret, sig, err)) != IOTP_OK)
		return rc;
	buf_init(&b, outsize > 0 ? outsize - 1 : 1);
	rc = buf_printf(&b, SIGV4_ALGORITHM " Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=",
	                a.key_id, a.date, a.region, a.service);
	for (int i = 0; i < n && rc == IOTP_OK; i++)
		rc = buf_printf(&b, "%s%s", i > 0 ? ";" : "", a.signed_headers[i]);
	if (rc == IOTP_OK)
		rc = buf_printf(&b, ", Signature=%s", sig);
	if (rc == IOTP_OK)
		memcpy(out, b.data, b.len + 1);
	else
		rc = iotp_err_set(err, rc, "sign: Authorization value does not fit");
	buf_cleanup(&b);
	return rc;
}
