/*
 * Commissioning messages: strict decoders and encoders for the outer lines
 * (handshake, sealed envelopes, errors, removable-media files) and for the
 * inner messages carried sealed (network, provision and their results).
 * Everything the device reads from a transport passes through
 * commission_msg_parse and, once decrypted, commission_inner_parse: both are
 * fuzzed (tests/fuzz/fuzz_commission_msg.c).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/util.h"
#include "core/commission.h"

/* ---- base64 --------------------------------------------------------------- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

iotp_rc commission_b64_encode(const uint8_t *p, size_t n, struct buf *out, struct iotp_err *err)
{
	char q[4];
	iotp_rc rc;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		q[0] = b64_alphabet[(v >> 18) & 63];
		q[1] = b64_alphabet[(v >> 12) & 63];
		q[2] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		q[3] = i + 2 < n ? b64_alphabet[v & 63] : '=';
		if ((rc = buf_append(out, q, 4)) != IOTP_OK)
			return iotp_err_set(err, rc, "base64: %s", iotp_strerror(rc));
	}
	if (n == 0 && (rc = buf_append(out, "", 0)) != IOTP_OK)
		return iotp_err_set(err, rc, "base64: %s", iotp_strerror(rc));
	return IOTP_OK;
}

iotp_rc commission_b64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len,
                              struct iotp_err *err)
{
	uint8_t *d;
	size_t o = 0, pad = 0;

	if (n % 4 != 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "base64 length not a multiple of 4");
	if (n >= 1 && s[n - 1] == '=')
		pad++;
	if (n >= 2 && s[n - 2] == '=')
		pad++;
	if (!(d = malloc(n / 4 * 3 + 1)))
		return iotp_err_set(err, IOTP_ERR_NOMEM, "base64");
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int last = i + 4 == n;

		for (int k = 0; k < 4; k++) {
			int is_pad = last && k >= 4 - (int)pad;

			v[k] = is_pad ? 0 : util_b64val(s[i + (size_t)k]);
			if (v[k] < 0) {
				free(d);
				return iotp_err_set(err, IOTP_ERR_INVALID, "bad base64 character");
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		             (uint32_t)v[3];
		d[o++] = (uint8_t)(w >> 16);
		if (!(last && pad == 2))
			d[o++] = (uint8_t)(w >> 8);
		if (!(last && pad >= 1))
			d[o++] = (uint8_t)w;
		/* Canonical form only: the bits under the padding are zero. */
		if (last && ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15)))) {
			free(d);
			return iotp_err_set(err, IOTP_ERR_INVALID, "non-canonical base64");
		}
	}
	*out = d;
	*out_len = o;
	return IOTP_OK;
}

/* ---- JSON field helpers --------------------------------------------------- */

static const struct {
	enum commission_type type;
	const char *name;
} type_names[] = {
	{CM_HELLO, "hello"},         {CM_PARAMS, "params"},
	{CM_PAKE1, "pake1"},         {CM_PAKE2, "pake2"},
	{CM_PAKE3, "pake3"},         {CM_OK, "ok"},
	{CM_SEALED, "sealed"},       {CM_ERROR, "error"},
	{CM_DEVICE_HELLO, "device-hello"}, {CM_FILE, "commission"},
	{CM_FILE_RESULT, "commission-result"},
};

static const char *type_name(enum commission_type t)
{
	for (size_t i = 0; i < IOTP_ARRAY_LEN(type_names); i++)
		if (type_names[i].type == t)
			return type_names[i].name;
	return NULL;
}

/* Required (or optional when opt) string field; *s borrowed from o. */
static iotp_rc get_str(json_t *o, const char *key, int opt, size_t max, const char **s,
                       struct iotp_err *err)
{
	json_t *v = json_object_get(o, key);

	if (!v) {
		if (opt) {
			*s = NULL;
			return IOTP_OK;
		}
		return iotp_err_set(err, IOTP_ERR_INVALID, "missing field \"%s\"", key);
	}
	if (!json_is_string(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "field \"%s\" must be a string", key);
	if (json_string_length(v) > max)
		return iotp_err_set(err, IOTP_ERR_INVALID, "field \"%s\" longer than %zu bytes", key,
		                    max);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "field \"%s\" contains a NUL", key);
	*s = json_string_value(v);
	return IOTP_OK;
}

/* Base64 field of exactly want bytes (want_min..want_max when want == 0). */
static iotp_rc get_b64(json_t *o, const char *key, size_t min, size_t max, uint8_t **out,
                       size_t *out_len, struct iotp_err *err)
{
	const char *s;
	uint8_t *d = NULL;
	size_t n = 0;
	iotp_rc rc;

	rc = get_str(o, key, 0, (max + 2) / 3 * 4, &s, err);
	if (rc != IOTP_OK)
		return rc;
	rc = commission_b64_decode(s, strlen(s), &d, &n, err);
	if (rc != IOTP_OK)
		return iotp_err_prefix(err, rc, "field \"%s\"", key);
	if (n < min || n > max) {
		free(d);
		return iotp_err_set(err, IOTP_ERR_INVALID, "field \"%s\" has %zu bytes, expected %zu..%zu",
		                    key, n, min, max);
	}
	*out = d;
	*out_len = n;
	return IOTP_OK;
}

static iotp_rc get_b64_fixed(json_t *o, const char *key, uint8_t *dst, size_t want,
                             struct iotp_err *err)
{
	uint8_t *d = NULL;
	size_t n = 0;
	iotp_rc rc = get_b64(o, key, want, want, &d, &n, err);

	if (rc == IOTP_OK) {
		memcpy(dst, d, want);
		OPENSSL_cleanse(d, n);
		free(d);
	}
	return rc;
}

static iotp_rc get_int(json_t *o, const char *key, int opt, int64_t min, int64_t max,
                       int64_t *out, struct iotp_err *err)
{
	json_t *v = json_object_get(o, key);

	if (!v) {
		if (opt)
			return IOTP_OK;
		return iotp_err_set(err, IOTP_ERR_INVALID, "missing field \"%s\"", key);
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return iotp_err_set(err, IOTP_ERR_INVALID, "field \"%s\" must be an integer in "
		                    "[%lld, %lld]", key, (long long)min, (long long)max);
	*out = json_integer_value(v);
	return IOTP_OK;
}

static iotp_rc get_bool(json_t *o, const char *key, int opt, int *out, struct iotp_err *err)
{
	json_t *v = json_object_get(o, key);

	if (!v) {
		if (opt)
			return IOTP_OK;
		return iotp_err_set(err, IOTP_ERR_INVALID, "missing field \"%s\"", key);
	}
	if (!json_is_boolean(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "field \"%s\" must be true or false", key);
	*out = json_is_true(v);
	return IOTP_OK;
}

static int is_sid(const char *s)
{
	if (strlen(s) != 2 * COMMISSION_SID_LEN)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

static int is_device_id(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > COMMISSION_DEVICE_ID_MAX)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._:-", *s))
			return 0;
	return 1;
}

/* Copies a printable single-line text (reasons, messages), replacing
 * control characters so a device cannot inject lines into a terminal. */
static void copy_text(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	for (; src && *src && i + 1 < size; src++, i++)
		dst[i] = ((unsigned char)*src < 0x20 || *src == 0x7f) ? ' ' : *src;
	dst[i] = '\0';
}

static iotp_rc parse_sealed(json_t *o, struct commission_sealed *out, struct iotp_err *err)
{
	int64_t seq = -1;
	iotp_rc rc;

	if ((rc = get_int(o, "seq", 0, 0, (int64_t)1 << 53, &seq, err)) != IOTP_OK)
		return rc;
	rc = get_b64(o, "ct", 16, COMMISSION_LINE_MAX, &out->ct, &out->ct_len, err);
	if (rc != IOTP_OK)
		return rc;
	out->seq = (uint64_t)seq;
	return IOTP_OK;
}

static iotp_rc parse_msgs(json_t *o, size_t min, struct commission_msg *m, struct iotp_err *err)
{
	json_t *a = json_object_get(o, "msgs");
	size_t n;
	iotp_rc rc;

	if (!json_is_array(a))
		return iotp_err_set(err, IOTP_ERR_INVALID, "field \"msgs\" must be an array");
	n = json_array_size(a);
	if (n < min || n > COMMISSION_FILE_MSGS_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "field \"msgs\" must hold %zu..%d messages",
		                    min, COMMISSION_FILE_MSGS_MAX);
	if (n && !(m->msgs = calloc(n, sizeof(*m->msgs))))
		return iotp_err_set(err, IOTP_ERR_NOMEM, "msgs");
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(a, i);

		if (!json_is_object(e))
			return iotp_err_set(err, IOTP_ERR_INVALID, "msgs[%zu] must be an object", i);
		m->n_msgs = i + 1;
		if ((rc = parse_sealed(e, &m->msgs[i], err)) != IOTP_OK)
			return iotp_err_prefix(err, rc, "msgs[%zu]", i);
	}
	return IOTP_OK;
}

static iotp_rc parse_params(json_t *o, struct commission_msg *m, struct iotp_err *err)
{
	const char *dev;
	uint8_t *salt = NULL;
	size_t salt_len = 0;
	int64_t iter = 0;
	iotp_rc rc;

	if ((rc = get_str(o, "device", 0, COMMISSION_DEVICE_ID_MAX, &dev, err)) != IOTP_OK)
		return rc;
	if (!is_device_id(dev))
		return iotp_err_set(err, IOTP_ERR_INVALID, "field \"device\" is not a device id");
	util_strlcpy(m->device, dev, sizeof(m->device));
	if ((rc = get_int(o, "iter", 0, SPAKE2P_ITER_MIN, SPAKE2P_ITER_MAX, &iter, err)) != IOTP_OK)
		return rc;
	m->iterations = (uint32_t)iter;
	rc = get_b64(o, "salt", COMMISSION_SALT_MIN, COMMISSION_SALT_MAX, &salt, &salt_len, err);
	if (rc != IOTP_OK)
		return rc;
	memcpy(m->salt, salt, salt_len);
	m->salt_len = salt_len;
	free(salt);
	return IOTP_OK;
}

iotp_rc commission_msg_parse(const char *line, size_t len, struct commission_msg *out,
                             struct iotp_err *err)
{
	struct commission_msg m;
	json_error_t jerr;
	json_t *o = NULL;
	const char *t = NULL, *s = NULL;
	int64_t v = COMMISSION_VERSION;
	iotp_rc rc = IOTP_OK;

	memset(&m, 0, sizeof(m));
	m.retry_ms = -1;
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len > COMMISSION_FILE_MAX) {
		rc = iotp_err_set(err, IOTP_ERR_TOO_BIG, "message over %d bytes", COMMISSION_FILE_MAX);
		goto out;
	}
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o || !json_is_object(o)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "not a JSON object: %s",
		                  o ? "wrong type" : jerr.text);
		goto out;
	}
	if ((rc = get_str(o, "t", 0, 32, &t, err)) != IOTP_OK)
		goto out;
	m.type = 0;
	for (size_t i = 0; i < IOTP_ARRAY_LEN(type_names); i++)
		if (strcmp(type_names[i].name, t) == 0)
			m.type = type_names[i].type;
	if (!m.type) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "unknown message type");
		goto out;
	}
	if (m.type != CM_FILE && m.type != CM_FILE_RESULT && len > COMMISSION_LINE_MAX) {
		rc = iotp_err_set(err, IOTP_ERR_TOO_BIG, "message over %d bytes", COMMISSION_LINE_MAX);
		goto out;
	}
	if ((rc = get_int(o, "v", 1, 0, 1000, &v, err)) != IOTP_OK)
		goto out;
	if (v != COMMISSION_VERSION) {
		rc = iotp_err_set(err, IOTP_ERR_UNSUPPORTED, "protocol version %lld not supported",
		                  (long long)v);
		goto out;
	}
	m.version = (int)v;
	if (m.type != CM_HELLO && m.type != CM_ERROR) {
		if ((rc = get_str(o, "sid", 0, 2 * COMMISSION_SID_LEN, &s, err)) != IOTP_OK)
			goto out;
		if (!is_sid(s)) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "field \"sid\" is not a session id");
			goto out;
		}
		util_strlcpy(m.sid, s, sizeof(m.sid));
	}
	switch (m.type) {
	case CM_HELLO:
	case CM_OK:
		break;
	case CM_PARAMS:
		rc = parse_params(o, &m, err);
		break;
	case CM_DEVICE_HELLO:
		/* Parameters only: the device's share follows the installer's
		 * (device-reply), never before it. */
		rc = parse_params(o, &m, err);
		break;
	case CM_PAKE1:
		rc = get_b64_fixed(o, "X", m.share, SPAKE2P_POINT_LEN, err);
		m.has_share = rc == IOTP_OK;
		break;
	case CM_PAKE2:
		if ((rc = get_b64_fixed(o, "Y", m.share, SPAKE2P_POINT_LEN, err)) != IOTP_OK)
			break;
		m.has_share = 1;
		rc = get_b64_fixed(o, "cV", m.confirm, SPAKE2P_HASH_LEN, err);
		m.has_confirm = rc == IOTP_OK;
		break;
	case CM_PAKE3:
		rc = get_b64_fixed(o, "cP", m.confirm, SPAKE2P_HASH_LEN, err);
		m.has_confirm = rc == IOTP_OK;
		break;
	case CM_SEALED:
		rc = parse_sealed(o, &m.sealed, err);
		break;
	case CM_FILE:
		/* X travelled earlier (commission-1, a pake1). */
		if ((rc = get_b64_fixed(o, "cP", m.confirm, SPAKE2P_HASH_LEN, err)) != IOTP_OK)
			break;
		m.has_confirm = 1;
		rc = parse_msgs(o, 1, &m, err);
		break;
	case CM_FILE_RESULT:
		if ((rc = get_b64_fixed(o, "cV", m.confirm, SPAKE2P_HASH_LEN, err)) != IOTP_OK)
			break;
		m.has_confirm = 1;
		rc = parse_msgs(o, 0, &m, err);
		break;
	case CM_ERROR:
		if ((rc = get_str(o, "code", 0, sizeof(m.code) - 1, &s, err)) != IOTP_OK)
			break;
		for (const char *c = s; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || *c == '_')) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID, "field \"code\" is not a code");
				goto out;
			}
		util_strlcpy(m.code, s, sizeof(m.code));
		if ((rc = get_str(o, "message", 1, 4096, &s, err)) != IOTP_OK)
			break;
		copy_text(m.message, sizeof(m.message), s);
		rc = get_int(o, "retry_ms", 1, 0, (int64_t)1 << 40, &m.retry_ms, err);
		break;
	}
	if (rc == IOTP_OK) {
		*out = m;
		memset(&m, 0, sizeof(m));
	}
out:
	commission_msg_cleanup(&m);
	json_decref(o);
	return rc;
}

void commission_sealed_cleanup(struct commission_sealed *s)
{
	free(s->ct);
	s->ct = NULL;
	s->ct_len = 0;
}

void commission_msg_cleanup(struct commission_msg *m)
{
	commission_sealed_cleanup(&m->sealed);
	for (size_t i = 0; i < m->n_msgs; i++)
		commission_sealed_cleanup(&m->msgs[i]);
	free(m->msgs);
	m->msgs = NULL;
	m->n_msgs = 0;
}

/* ---- encoders ------------------------------------------------------------- */

iotp_rc commission_json_set_b64(json_t *o, const char *key, const uint8_t *p, size_t n,
                                struct iotp_err *err)
{
	struct buf b;
	iotp_rc rc;

	buf_init(&b, 0);
	rc = commission_b64_encode(p, n, &b, err);
	if (rc == IOTP_OK && json_object_set_new(o, key, json_string(b.data)) != 0)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "json");
	buf_cleanup_secure(&b);
	return rc;
}

static json_t *sealed_json(const struct commission_sealed *s, struct iotp_err *err)
{
	json_t *o = json_object();

	if (!o || json_object_set_new(o, "seq", json_integer((json_int_t)s->seq)) != 0 ||
	    commission_json_set_b64(o, "ct", s->ct, s->ct_len, err) != IOTP_OK) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Serialises o compactly onto out and releases o. */
static iotp_rc dump(json_t *o, struct buf *out, struct iotp_err *err)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	iotp_rc rc;

	json_decref(o);
	if (!s)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "json encode");
	rc = buf_puts(out, s);
	/* Inner messages carry passphrases and claim keys. */
	OPENSSL_cleanse(s, strlen(s));
	free(s);
	if (rc != IOTP_OK)
		return iotp_err_set(err, rc, "message: %s", iotp_strerror(rc));
	return IOTP_OK;
}

iotp_rc commission_msg_format(const struct commission_msg *m, struct buf *out,
                              struct iotp_err *err)
{
	const char *t = type_name(m->type);
	json_t *o = json_object();
	iotp_rc rc = IOTP_OK;
	int bad = 0;

	if (!t || !o) {
		json_decref(o);
		return iotp_err_set(err, t ? IOTP_ERR_NOMEM : IOTP_ERR_INTERNAL, "message format");
	}
	bad |= json_object_set_new(o, "t", json_string(t));
	if (m->type == CM_HELLO || m->type == CM_PARAMS || m->type == CM_DEVICE_HELLO ||
	    m->type == CM_FILE)
		bad |= json_object_set_new(o, "v", json_integer(COMMISSION_VERSION));
	if (m->type != CM_HELLO && m->type != CM_ERROR)
		bad |= json_object_set_new(o, "sid", json_string(m->sid));
	if (m->type == CM_PARAMS || m->type == CM_DEVICE_HELLO) {
		bad |= json_object_set_new(o, "device", json_string(m->device));
		bad |= json_object_set_new(o, "iter", json_integer(m->iterations));
		rc = commission_json_set_b64(o, "salt", m->salt, m->salt_len, err);
	}
	if (rc == IOTP_OK && m->has_share)
		rc = commission_json_set_b64(o, (m->type == CM_PAKE1 || m->type == CM_FILE) ? "X" : "Y",
		                             m->share, SPAKE2P_POINT_LEN, err);
	if (rc == IOTP_OK && m->has_confirm)
		rc = commission_json_set_b64(o,
		                             (m->type == CM_PAKE3 || m->type == CM_FILE) ? "cP" : "cV",
		                             m->confirm, SPAKE2P_HASH_LEN, err);
	if (rc == IOTP_OK && m->type == CM_SEALED) {
		bad |= json_object_set_new(o, "seq", json_integer((json_int_t)m->sealed.seq));
		rc = commission_json_set_b64(o, "ct", m->sealed.ct, m->sealed.ct_len, err);
	}
	if (rc == IOTP_OK && (m->type == CM_FILE || m->type == CM_FILE_RESULT)) {
		json_t *a = json_array();

		bad |= json_object_set_new(o, "msgs", a);
		for (size_t i = 0; a && i < m->n_msgs; i++)
			bad |= json_array_append_new(a, sealed_json(&m->msgs[i], err));
	}
	if (rc == IOTP_OK && m->type == CM_ERROR) {
		bad |= json_object_set_new(o, "code", json_string(m->code));
		if (m->message[0])
			bad |= json_object_set_new(o, "message", json_string(m->message));
		if (m->retry_ms >= 0)
			bad |= json_object_set_new(o, "retry_ms", json_integer(m->retry_ms));
	}
	if (rc != IOTP_OK) {
		json_decref(o);
		return rc;
	}
	if (bad) {
		json_decref(o);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "message format");
	}
	return dump(o, out, err);
}

iotp_rc commission_error_format(const char *code, const char *message, int64_t retry_ms,
                                struct buf *out, struct iotp_err *err)
{
	struct commission_msg m;

	memset(&m, 0, sizeof(m));
	m.type = CM_ERROR;
	util_strlcpy(m.code, code, sizeof(m.code));
	copy_text(m.message, sizeof(m.message), message ? message : "");
	m.retry_ms = retry_ms;
	return commission_msg_format(&m, out, err);
}

/* ---- inner messages ------------------------------------------------------- */

static const struct {
	enum commission_inner_type type;
	const char *name;
} inner_names[] = {
	{CMI_NETWORK, "network"},
	{CMI_NETWORK_RESULT, "network_result"},
	{CMI_PROVISION, "provision"},
	{CMI_PROVISION_RESULT, "provision_result"},
	{CMI_DONE, "done"},
	{CMI_BYE, "bye"},
	{CMI_ERROR, "error"},
};

iotp_rc commission_network_validate(const struct commission_network *net, struct iotp_err *err)
{
	size_t n, p;

	if (net->wired)
		return IOTP_OK;
	n = strnlen(net->ssid, sizeof(net->ssid));
	if (n == 0 || n > COMMISSION_SSID_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "SSID must be 1 to %d bytes",
		                    COMMISSION_SSID_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)net->ssid[i] < 0x20 || net->ssid[i] == 0x7f)
			return iotp_err_set(err, IOTP_ERR_INVALID, "SSID contains a control character");
	p = strnlen(net->psk, sizeof(net->psk));
	if (p == 0)
		return IOTP_OK;
	if (p == 64) {
		for (size_t i = 0; i < p; i++)
			if (!isxdigit((unsigned char)net->psk[i]))
				return iotp_err_set(err, IOTP_ERR_INVALID,
				                    "a 64-character passphrase must be hex (a raw PSK)");
		return IOTP_OK;
	}
	if (p < COMMISSION_PSK_MIN || p > 63)
		return iotp_err_set(err, IOTP_ERR_INVALID, "passphrase must be 8 to 63 characters");
	for (size_t i = 0; i < p; i++)
		if (net->psk[i] < 0x20 || net->psk[i] > 0x7e)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "passphrase must be printable ASCII");
	return IOTP_OK;
}

static int is_template_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 36)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return 0;
	return 1;
}

static iotp_rc dup_field(json_t *o, const char *key, int opt, size_t max, char **out,
                         struct iotp_err *err)
{
	const char *s = NULL;
	iotp_rc rc = get_str(o, key, opt, max, &s, err);

	if (rc != IOTP_OK || !s)
		return rc;
	if (!(*out = strdup(s)))
		return iotp_err_set(err, IOTP_ERR_NOMEM, "%s", key);
	return IOTP_OK;
}

static iotp_rc parse_provision(json_t *o, struct commission_inner *in, struct iotp_err *err)
{
	const char *s;
	json_t *params;
	iotp_rc rc;

	if ((rc = get_str(o, "template", 0, 36, &s, err)) != IOTP_OK)
		return rc;
	if (!is_template_name(s))
		return iotp_err_set(err, IOTP_ERR_INVALID, "field \"template\" is not a template name");
	util_strlcpy(in->claim.template_name, s, sizeof(in->claim.template_name));
	if ((rc = dup_field(o, "claim_cert", 0, 16384, &in->claim.cert_pem, err)) != IOTP_OK ||
	    (rc = dup_field(o, "claim_key", 0, 16384, &in->claim.key_pem, err)) != IOTP_OK ||
	    (rc = dup_field(o, "ca", 1, 32768, &in->claim.ca_pem, err)) != IOTP_OK ||
	    (rc = dup_field(o, "endpoint", 1, 255, &in->claim.endpoint, err)) != IOTP_OK)
		return rc;
	params = json_object_get(o, "parameters");
	if (params) {
		const char *k;
		json_t *v;

		if (!json_is_object(params) || json_object_size(params) > 64)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "field \"parameters\" must be an object of at most 64 strings");
		json_object_foreach(params, k, v) {
			if (!json_is_string(v) || json_string_length(v) > 2048 || strlen(k) > 128)
				return iotp_err_set(err, IOTP_ERR_INVALID,
				                    "parameter values must be strings");
		}
		in->claim.parameters = json_incref(params);
	}
	return IOTP_OK;
}

iotp_rc commission_inner_parse(const uint8_t *p, size_t len, struct commission_inner *out,
                               struct iotp_err *err)
{
	struct commission_inner in;
	json_error_t jerr;
	json_t *o = NULL;
	const char *t, *s;
	iotp_rc rc = IOTP_OK;

	memset(&in, 0, sizeof(in));
	if (len > COMMISSION_LINE_MAX) {
		rc = iotp_err_set(err, IOTP_ERR_TOO_BIG, "inner message too big");
		goto out;
	}
	o = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o || !json_is_object(o)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "inner message is not a JSON object");
		goto out;
	}
	if ((rc = get_str(o, "t", 0, 32, &t, err)) != IOTP_OK)
		goto out;
	for (size_t i = 0; i < IOTP_ARRAY_LEN(inner_names); i++)
		if (strcmp(inner_names[i].name, t) == 0)
			in.type = inner_names[i].type;
	switch (in.type) {
	case CMI_NETWORK:
		if ((rc = get_bool(o, "wired", 1, &in.net.wired, err)) != IOTP_OK)
			break;
		if (in.net.wired)
			break;
		if ((rc = get_str(o, "ssid", 0, COMMISSION_SSID_MAX, &s, err)) != IOTP_OK)
			break;
		util_strlcpy(in.net.ssid, s, sizeof(in.net.ssid));
		if ((rc = get_str(o, "psk", 1, COMMISSION_PSK_MAX, &s, err)) != IOTP_OK)
			break;
		if (s)
			util_strlcpy(in.net.psk, s, sizeof(in.net.psk));
		rc = commission_network_validate(&in.net, err);
		break;
	case CMI_NETWORK_RESULT:
	case CMI_PROVISION_RESULT:
		if ((rc = get_bool(o, in.type == CMI_NETWORK_RESULT ? "joined" : "ok", 0, &in.ok,
		                   err)) != IOTP_OK)
			break;
		if ((rc = get_str(o, "reason", 1, 4096, &s, err)) != IOTP_OK)
			break;
		copy_text(in.reason, sizeof(in.reason), s);
		if ((rc = get_str(o, "thing", 1, COMMISSION_THING_MAX, &s, err)) != IOTP_OK)
			break;
		copy_text(in.thing, sizeof(in.thing), s);
		if ((rc = get_str(o, "cert_id", 1, 64, &s, err)) != IOTP_OK)
			break;
		copy_text(in.cert_id, sizeof(in.cert_id), s);
		break;
	case CMI_PROVISION:
		rc = parse_provision(o, &in, err);
		break;
	case CMI_DONE:
	case CMI_BYE:
		break;
	case CMI_ERROR:
		if ((rc = get_str(o, "message", 1, 4096, &s, err)) != IOTP_OK)
			break;
		copy_text(in.reason, sizeof(in.reason), s);
		break;
	default:
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "unknown inner message type");
		break;
	}
	if (rc == IOTP_OK) {
		*out = in;
		memset(&in, 0, sizeof(in));
	}
out:
	commission_inner_cleanup(&in);
	json_decref(o);
	return rc;
}

void commission_inner_cleanup(struct commission_inner *in)
{
	OPENSSL_cleanse(in->net.psk, sizeof(in->net.psk));
	free(in->claim.cert_pem);
	if (in->claim.key_pem)
		OPENSSL_cleanse(in->claim.key_pem, strlen(in->claim.key_pem));
	free(in->claim.key_pem);
	free(in->claim.ca_pem);
	free(in->claim.endpoint);
	json_decref(in->claim.parameters);
	memset(&in->claim, 0, sizeof(in->claim));
}

iotp_rc commission_inner_format(const struct commission_inner *in, struct buf *out,
                                struct iotp_err *err)
{
	const char *t = NULL;
	json_t *o;
	int bad = 0;

	for (size_t i = 0; i < IOTP_ARRAY_LEN(inner_names); i++)
		if (inner_names[i].type == in->type)
			t = inner_names[i].name;
	if (!t)
		return iotp_err_set(err, IOTP_ERR_INTERNAL, "unknown inner type");
	if (!(o = json_object()))
		return iotp_err_set(err, IOTP_ERR_NOMEM, "json");
	bad |= json_object_set_new(o, "t", json_string(t));
	switch (in->type) {
	case CMI_NETWORK:
		if (in->net.wired) {
			bad |= json_object_set_new(o, "wired", json_true());
			break;
		}
		bad |= json_object_set_new(o, "ssid", json_string(in->net.ssid));
		bad |= json_object_set_new(o, "psk", json_string(in->net.psk));
		break;
	case CMI_NETWORK_RESULT:
	case CMI_PROVISION_RESULT:
		bad |= json_object_set_new(o, in->type == CMI_NETWORK_RESULT ? "joined" : "ok",
		                           json_boolean(in->ok));
		if (in->reason[0])
			bad |= json_object_set_new(o, "reason", json_string(in->reason));
		if (in->thing[0])
			bad |= json_object_set_new(o, "thing", json_string(in->thing));
		if (in->cert_id[0])
			bad |= json_object_set_new(o, "cert_id", json_string(in->cert_id));
		break;
	case CMI_PROVISION:
		bad |= json_object_set_new(o, "template", json_string(in->claim.template_name));
		bad |= json_object_set_new(o, "claim_cert", json_string(in->claim.cert_pem));
		bad |= json_object_set_new(o, "claim_key", json_string(in->claim.key_pem));
		if (in->claim.ca_pem)
			bad |= json_object_set_new(o, "ca", json_string(in->claim.ca_pem));
		if (in->claim.endpoint)
			bad |= json_object_set_new(o, "endpoint", json_string(in->claim.endpoint));
		if (in->claim.parameters)
			bad |= json_object_set(o, "parameters", in->claim.parameters);
		break;
	case CMI_ERROR:
		bad |= json_object_set_new(o, "message", json_string(in->reason));
		break;
	default:
		break;
	}
	if (bad) {
		json_decref(o);
		return iotp_err_set(err, IOTP_ERR_INVALID, "inner message has invalid strings");
	}
	return dump(o, out, err);
}
