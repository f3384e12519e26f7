/*
 * PKCS#11 URIs (RFC 7512) naming the device key inside a token:
 *   pkcs11:token=dev;object=device-key;id=%01?module-path=/x.so&pin-source=file:/p
 * Path attributes are separated by ';', query attributes by '&', values are
 * percent-encoded. Only what the keystore needs is kept; other standard
 * attributes (manufacturer, model, serial, slot-*, library-*) are accepted
 * and ignored. The PIN may come from the URI, a pin-source or the
 * environment; it is wiped by p11_uri_cleanup and never written back out.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "common/util.h"
#include "device/dev.h"

#define SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes [s, s+n) into out (at most size bytes); *outlen the
 * decoded length. text: refuse NULs and leave room for one. */
static iotp_rc pct_decode(const char *what, const char *s, size_t n, unsigned char *out,
                          size_t size, size_t *outlen, int text, struct iotp_err *err)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return iotp_err_set(err, IOTP_ERR_INVALID,
				                    "pkcs11 URI: truncated %%-escape in %s", what);
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return iotp_err_set(err, IOTP_ERR_INVALID,
				                    "pkcs11 URI: bad %%-escape in %s", what);
			c = hi * 16 + lo;
			i += 2;
		}
		if (text && c == 0)
			return iotp_err_set(err, IOTP_ERR_INVALID, "pkcs11 URI: NUL in %s", what);
		if (o + (text ? 1 : 0) >= size)
			return iotp_err_set(err, IOTP_ERR_INVALID, "pkcs11 URI: %s too long", what);
		out[o++] = (unsigned char)c;
	}
	if (text)
		out[o] = '\0';
	*outlen = o;
	return IOTP_OK;
}

static iotp_rc text_attr(const char *what, const char *v, size_t n, char *out, size_t size,
                         struct iotp_err *err)
{
	size_t len;

	return pct_decode(what, v, n, (unsigned char *)out, size, &len, 1, err);
}

static int name_is(const char *a, size_t alen, const char *name)
{
	return alen == strlen(name) && strncasecmp(a, name, alen) == 0;
}

/* One "name=value" attribute, path (query=0) or query (query=1). */
static iotp_rc attr(struct p11_uri *u, const char *a, size_t n, int query, struct iotp_err *err)
{
	const char *eq = memchr(a, '=', n);
	size_t nlen, vlen;
	const char *v;

	if (n == 0)
		return IOTP_OK; /* "pkcs11:;token=x" and trailing separators */
	if (eq == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "pkcs11 URI: attribute without '=': %.*s",
		                    (int)(n > 64 ? 64 : n), a);
	nlen = (size_t)(eq - a);
	v = eq + 1;
	vlen = n - nlen - 1;
	if (name_is(a, nlen, "pin-value")) {
		u->has_pin = 1;
		return text_attr("pin-value", v, vlen, u->pin, sizeof(u->pin), err);
	}
	if (!query) {
		if (name_is(a, nlen, "token"))
			return text_attr("token", v, vlen, u->token, sizeof(u->token), err);
		if (name_is(a, nlen, "object"))
			return text_attr("object", v, vlen, u->object, sizeof(u->object), err);
		if (name_is(a, nlen, "id"))
			return pct_decode("id", v, vlen, u->id, sizeof(u->id), &u->id_len, 0, err);
		if (name_is(a, nlen, "type")) {
			if (!(vlen == 7 && strncasecmp(v, "private", 7) == 0) &&
			    !(vlen == 6 && strncasecmp(v, "public", 6) == 0))
				return iotp_err_set(err, IOTP_ERR_INVALID,
				                    "pkcs11 URI: type must be private (a key)");
			return IOTP_OK;
		}
		return IOTP_OK;
	}
	if (name_is(a, nlen, "module-path"))
		return text_attr("module-path", v, vlen, u->module_path, sizeof(u->module_path), err);
	if (name_is(a, nlen, "pin-source"))
		return text_attr("pin-source", v, vlen, u->pin_source, sizeof(u->pin_source), err);
	return IOTP_OK;
}

iotp_rc p11_uri_parse(const char *uri, struct p11_uri *out, struct iotp_err *err)
{
	struct p11_uri u;
	const char *p, *q, *end;
	iotp_rc rc = IOTP_OK;

	memset(&u, 0, sizeof(u));
	if (uri == NULL || strncasecmp(uri, "pkcs11:", 7) != 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "not a pkcs11: URI");
	p = uri + 7;
	q = strchr(p, '?');
	end = q != NULL ? q : p + strlen(p);
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *stop = semi != NULL ? semi : end;

		if ((rc = attr(&u, p, (size_t)(stop - p), 0, err)) != IOTP_OK)
			goto out;
		p = stop + (semi != NULL ? 1 : 0);
	}
	if (q != NULL) {
		p = q + 1;
		end = p + strlen(p);
		while (p < end) {
			const char *amp = memchr(p, '&', (size_t)(end - p));
			const char *stop = amp != NULL ? amp : end;

			if ((rc = attr(&u, p, (size_t)(stop - p), 1, err)) != IOTP_OK)
				goto out;
			p = stop + (amp != NULL ? 1 : 0);
		}
	}
	if (u.token[0] == '\0') {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "pkcs11 URI needs token=<label>");
		goto out;
	}
	if (u.object[0] == '\0' && u.id_len == 0) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "pkcs11 URI needs object=<label> or id=");
		goto out;
	}
	*out = u;
out:
	OPENSSL_cleanse(&u, sizeof(u));
	return rc;
}

void p11_uri_cleanup(struct p11_uri *u)
{
	if (u != NULL)
		OPENSSL_cleanse(u, sizeof(*u));
}

const char *p11_uri_module(const struct p11_uri *u)
{
	const char *env;

	if (u->module_path[0] != '\0')
		return u->module_path;
	env = getenv("IOTP_PKCS11_MODULE");
	if (env != NULL && env[0] != '\0')
		return env;
	return SOFTHSM_MODULE;
}

iotp_rc p11_uri_pin(const struct p11_uri *u, char *out, size_t size, struct iotp_err *err)
{
	const char *src = u->pin_source;
	char *data = NULL;
	size_t n = 0;
	iotp_rc rc;

	if (u->has_pin) {
		if (util_strlcpy(out, u->pin, size) >= size)
			return iotp_err_set(err, IOTP_ERR_INVALID, "PIN too long");
		return IOTP_OK;
	}
	if (src[0] != '\0') {
		if (strncmp(src, "env:", 4) == 0) {
			const char *v = getenv(src + 4);

			if (v == NULL)
				return iotp_err_set(err, IOTP_ERR_CONFIG,
				                    "pin-source names the unset variable %s", src + 4);
			if (util_strlcpy(out, v, size) >= size)
				return iotp_err_set(err, IOTP_ERR_INVALID, "PIN too long");
			return IOTP_OK;
		}
		if (strncmp(src, "file:", 5) == 0)
			src += 5;
		if ((rc = util_read_file(src, 4096, &data, &n, err)) != IOTP_OK)
			return rc;
		/* A PIN file ends with a newline more often than not. */
		while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
			data[--n] = '\0';
		rc = IOTP_OK;
		if (n + 1 > size || memchr(data, '\0', n) != NULL)
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "bad PIN in %s", src);
		else
			memcpy(out, data, n + 1);
		OPENSSL_cleanse(data, n);
		free(data);
		return rc;
	}
	src = getenv("IOTP_PKCS11_PIN");
	if (util_strlcpy(out, src != NULL ? src : "", size) >= size)
		return iotp_err_set(err, IOTP_ERR_INVALID, "PIN too long");
	return IOTP_OK;
}

static void pct_append(char *out, size_t size, size_t *o, const unsigned char *s, size_t n,
                       int query, int *overflow)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = s[i];
		int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~' ||
		            (query && (c == '/' || c == ':'));
		size_t need = plain ? 1 : 3;

		if (*o + need >= size) {
			*overflow = 1;
			return;
		}
		if (plain) {
			out[(*o)++] = (char)c;
		} else {
			out[(*o)++] = '%';
			out[(*o)++] = hex[c >> 4];
			out[(*o)++] = hex[c & 15];
		}
	}
	out[*o] = '\0';
}

static void lit(char *out, size_t size, size_t *o, const char *s, int *overflow)
{
	size_t n = strlen(s);

	if (*o + n >= size) {
		*overflow = 1;
		return;
	}
	memcpy(out + *o, s, n + 1);
	*o += n;
}

iotp_rc p11_uri_public(const struct p11_uri *u, char *out, size_t size, struct iotp_err *err)
{
	size_t o = 0;
	int overflow = 0;
	char sep = '?';

	if (size == 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "no room for the URI");
	out[0] = '\0';
	lit(out, size, &o, "pkcs11:token=", &overflow);
	pct_append(out, size, &o, (const unsigned char *)u->token, strlen(u->token), 0, &overflow);
	if (u->object[0] != '\0') {
		lit(out, size, &o, ";object=", &overflow);
		pct_append(out, size, &o, (const unsigned char *)u->object, strlen(u->object), 0,
		           &overflow);
	}
	if (u->id_len > 0) {
		size_t i;

		lit(out, size, &o, ";id=", &overflow);
		for (i = 0; i < u->id_len; i++) {
			char h[4];

			snprintf(h, sizeof(h), "%%%02X", u->id[i]);
			lit(out, size, &o, h, &overflow);
		}
	}
	if (u->module_path[0] != '\0') {
		lit(out, size, &o, "?module-path=", &overflow);
		pct_append(out, size, &o, (const unsigned char *)u->module_path,
		           strlen(u->module_path), 1, &overflow);
		sep = '&';
	}
	if (u->pin_source[0] != '\0') {
		lit(out, size, &o, sep == '?' ? "?pin-source=" : "&pin-source=", &overflow);
		pct_append(out, size, &o, (const unsigned char *)u->pin_source, strlen(u->pin_source),
		           1, &overflow);
	}
	if (overflow)
		return iotp_err_set(err, IOTP_ERR_INVALID, "pkcs11 URI too long");
	return IOTP_OK;
}
