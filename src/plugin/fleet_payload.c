/*
 * Fleet-provisioning payload codec (see fleet_payload.h). CBOR payloads are
 * first turned into the same JSON value a JSON payload decodes to, so that
 * the member checks below are written once and both encodings can never
 * accept different requests.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <openssl/crypto.h>

#include "common/buf.h"
#include "common/enc.h"
#include "plugin/fleet_payload.h"

#define PARAM_VALUE_MAX 2048

static int template_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > FLEET_TEMPLATE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Matches "json" or "cbor" exactly. */
static int format_parse(const char *s, enum fleet_fmt *out)
{
	if (strcmp(s, "json") == 0) {
		*out = FLEET_JSON;
		return 1;
	}
	if (strcmp(s, "cbor") == 0) {
		*out = FLEET_CBOR;
		return 1;
	}
	return 0;
}

int fleet_topic_parse(const char *topic, struct fleet_topic *out)
{
	static const char certs[] = "$aws/certificates/";
	static const char tmpls[] = "$aws/provisioning-templates/";
	static const char prov[] = "/provision/";
	struct fleet_topic t;
	size_t n;

	memset(&t, 0, sizeof(t));
	if (topic == NULL || strlen(topic) >= sizeof(t.base))
		return 0;
	if (strncmp(topic, certs, sizeof(certs) - 1) == 0) {
		const char *rest = topic + sizeof(certs) - 1;

		if (strncmp(rest, "create/", 7) == 0 && format_parse(rest + 7, &t.fmt))
			t.op = FLEET_CREATE;
		else if (strncmp(rest, "create-from-csr/", 16) == 0 && format_parse(rest + 16, &t.fmt))
			t.op = FLEET_CREATE_CSR;
		else
			return 0;
	} else if (strncmp(topic, tmpls, sizeof(tmpls) - 1) == 0) {
		const char *name = topic + sizeof(tmpls) - 1;
		const char *slash = strchr(name, '/');

		if (slash == NULL)
			return 0;
		n = (size_t)(slash - name);
		if (!template_name_ok(name, n) || strncmp(slash, prov, sizeof(prov) - 1) != 0 ||
		    !format_parse(slash + sizeof(prov) - 1, &t.fmt))
			return 0;
		memcpy(t.template_name, name, n);
		t.template_name[n] = '\0';
		t.op = FLEET_PROVISION;
	} else {
		return 0;
	}
	memcpy(t.base, topic, strlen(topic) + 1);
	*out = t;
	return 1;
}

void fleet_request_cleanup(struct fleet_request *r)
{
	if (r == NULL)
		return;
	free(r->csr);
	if (r->token != NULL) {
		/* OPENSSL_cleanse: a memset before free() may be optimised away */
		OPENSSL_cleanse(r->token, strlen(r->token));
		free(r->token);
	}
	json_decref(r->parameters);
	memset(r, 0, sizeof(*r));
}

/* ---- CBOR -> JSON ---- */

static iotp_rc cbor_text(const cbor_item_t *it, json_t **out, struct iotp_err *err)
{
	json_t *s = NULL;

	if (cbor_string_is_definite(it)) {
		s = json_stringn((const char *)cbor_string_handle(it), cbor_string_length(it));
	} else {
		size_t n = cbor_string_chunk_count(it), total = 0;
		cbor_item_t **chunks = cbor_string_chunks_handle(it);
		char *buf;

		for (size_t i = 0; i < n; i++)
			total += cbor_string_length(chunks[i]);
		if (total > FLEET_PAYLOAD_MAX)
			return iotp_err_set(err, IOTP_ERR_INVALID, "a CBOR text string is too long");
		if ((buf = malloc(total + 1)) == NULL)
			return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		total = 0;
		for (size_t i = 0; i < n; i++) {
			size_t l = cbor_string_length(chunks[i]);

			if (l > 0)
				memcpy(buf + total, cbor_string_handle(chunks[i]), l);
			total += l;
		}
		s = json_stringn(buf, total);
		free(buf);
	}
	if (s == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "a CBOR text string is not valid UTF-8");
	*out = s;
	return IOTP_OK;
}

static iotp_rc cbor_value(const cbor_item_t *it, int depth, json_t **out, struct iotp_err *err)
{
	json_t *v = NULL;
	iotp_rc rc = IOTP_OK;

	if (depth > FLEET_MAX_DEPTH)
		return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR payload nested too deeply");
	switch (cbor_typeof(it)) {
	case CBOR_TYPE_UINT:
		if (cbor_get_int(it) > (uint64_t)INT64_MAX)
			return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR integer out of range");
		v = json_integer((json_int_t)cbor_get_int(it));
		break;
	case CBOR_TYPE_NEGINT:
		if (cbor_get_int(it) > (uint64_t)INT64_MAX)
			return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR integer out of range");
		v = json_integer(-1 - (json_int_t)cbor_get_int(it));
		break;
	case CBOR_TYPE_STRING:
		return cbor_text(it, out, err);
	case CBOR_TYPE_ARRAY: {
		size_t n = cbor_array_size(it);
		cbor_item_t **items = cbor_array_handle(it);

		if ((v = json_array()) == NULL)
			break;
		for (size_t i = 0; i < n && rc == IOTP_OK; i++) {
			json_t *e = NULL;

			if ((rc = cbor_value(items[i], depth + 1, &e, err)) == IOTP_OK &&
			    json_array_append_new(v, e) != 0)
				rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		}
		break;
	}
	case CBOR_TYPE_MAP: {
		size_t n = cbor_map_size(it);
		struct cbor_pair *pairs = cbor_map_handle(it);

		if ((v = json_object()) == NULL)
			break;
		for (size_t i = 0; i < n && rc == IOTP_OK; i++) {
			json_t *k = NULL, *e = NULL;

			if (cbor_typeof(pairs[i].key) != CBOR_TYPE_STRING) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID,
				                  "CBOR map keys must be text strings");
				break;
			}
			if ((rc = cbor_text(pairs[i].key, &k, err)) != IOTP_OK)
				break;
			if (strlen(json_string_value(k)) != json_string_length(k))
				rc = iotp_err_set(err, IOTP_ERR_INVALID, "a CBOR map key holds a NUL");
			else if (json_object_get(v, json_string_value(k)) != NULL)
				/* as JSON_REJECT_DUPLICATES does for a JSON payload */
				rc = iotp_err_set(err, IOTP_ERR_INVALID, "duplicate CBOR map key '%.64s'",
				                  json_string_value(k));
			if (rc == IOTP_OK)
				rc = cbor_value(pairs[i].value, depth + 1, &e, err);
			if (rc == IOTP_OK && json_object_set_new(v, json_string_value(k), e) != 0)
				rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
			json_decref(k);
		}
		break;
	}
	case CBOR_TYPE_FLOAT_CTRL:
		/* libcbor asserts when asked whether a float is null: check first */
		if (!cbor_float_ctrl_is_ctrl(it))
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "CBOR floats and simple values are not accepted here");
		if (cbor_is_null(it))
			v = json_null();
		else if (cbor_is_bool(it))
			v = json_boolean(cbor_get_bool(it));
		else
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "CBOR floats and simple values are not accepted here");
		break;
	default:
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "CBOR byte strings and tags are not accepted here");
	}
	if (rc == IOTP_OK && v == NULL)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	if (rc != IOTP_OK) {
		json_decref(v);
		return rc;
	}
	*out = v;
	return IOTP_OK;
}

/* Walks one CBOR item at p without building it: 1 and *next set when it is
 * well-formed, every declared length fits in what is left of the input and
 * nesting stays within FLEET_MAX_DEPTH. libcbor allocates a definite array,
 * map or string at its declared size before reading it, so a 5-byte payload
 * could otherwise ask for gigabytes; after this check allocations are
 * bounded by the payload's size. Tags are refused here already. */
static int cbor_scan(const unsigned char *p, const unsigned char *end, int depth,
                     const unsigned char **next)
{
	unsigned major, ai;
	uint64_t val = 0;
	size_t left;

	if (p >= end || depth > FLEET_MAX_DEPTH + 1)
		return 0;
	major = *p >> 5;
	ai = *p & 31u;
	p++;
	if (ai >= 24 && ai <= 27) {
		size_t n = (size_t)1 << (ai - 24);

		if ((size_t)(end - p) < n)
			return 0;
		for (size_t i = 0; i < n; i++)
			val = (val << 8) | p[i];
		p += n;
	} else if (ai < 24) {
		val = ai;
	} else if (ai != 31) {
		return 0; /* 28..30 are reserved */
	}
	left = (size_t)(end - p);
	switch (major) {
	case 0:
	case 1:
		break;
	case 2:
	case 3:
		if (ai == 31) {
			for (;;) {
				const unsigned char *q;

				if (p >= end)
					return 0;
				if (*p == 0xff) {
					p++;
					break;
				}
				if ((*p >> 5) != major || (*p & 31u) == 31 || !cbor_scan(p, end, depth + 1, &q))
					return 0;
				p = q;
			}
		} else {
			if (val > left)
				return 0;
			p += val;
		}
		break;
	case 4:
	case 5:
		if (ai == 31) {
			for (uint64_t k = 0;; k++) {
				if (p >= end)
					return 0;
				if (*p == 0xff) {
					if (major == 5 && k % 2 != 0)
						return 0;
					p++;
					break;
				}
				if (!cbor_scan(p, end, depth + 1, &p))
					return 0;
			}
		} else {
			uint64_t items = major == 5 ? val * 2 : val;

			if (val > left || items > left)
				return 0;
			for (uint64_t k = 0; k < items; k++)
				if (!cbor_scan(p, end, depth + 1, &p))
					return 0;
		}
		break;
	case 6:
		return 0;
	case 7:
		if (ai == 31)
			return 0; /* a break outside an indefinite item */
		break;
	}
	*next = p;
	return 1;
}

iotp_rc fleet_cbor_to_json(const void *data, size_t len, json_t **out, struct iotp_err *err)
{
	struct cbor_load_result res;
	cbor_item_t *item;
	iotp_rc rc;

	if (len > FLEET_PAYLOAD_MAX)
		return iotp_err_set(err, IOTP_ERR_TOO_BIG, "payload over %d bytes", FLEET_PAYLOAD_MAX);
	{
		const unsigned char *next = NULL;

		if (len == 0 || !cbor_scan(data, (const unsigned char *)data + len, 0, &next))
			return iotp_err_set(err, IOTP_ERR_INVALID, "payload is not valid CBOR");
		if (next != (const unsigned char *)data + len)
			return iotp_err_set(err, IOTP_ERR_INVALID, "payload has bytes after the CBOR item");
	}
	item = cbor_load(data, len, &res);
	if (item == NULL || res.error.code != CBOR_ERR_NONE)
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "payload is not valid CBOR");
	else if (res.read != len)
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "payload has bytes after the CBOR item");
	else
		rc = cbor_value(item, 0, out, err);
	if (item != NULL)
		cbor_decref(&item);
	return rc;
}

/* ---- request checks ---- */

/* A required or optional string member without NUL bytes. */
static iotp_rc member_string(const json_t *obj, const char *name, int required, size_t max,
                             char **out, struct iotp_err *err)
{
	const json_t *v = json_object_get(obj, name);

	if (v == NULL || json_is_null(v)) {
		if (required)
			return iotp_err_set(err, IOTP_ERR_INVALID, "%s is required", name);
		return IOTP_OK;
	}
	if (!json_is_string(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must be a string", name);
	if (json_string_length(v) == 0 || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must be 1 to %zu characters", name, max);
	if ((*out = strdup(json_string_value(v))) == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	return IOTP_OK;
}

static iotp_rc parameters_copy(const json_t *obj, json_t **out, struct iotp_err *err)
{
	const json_t *p = json_object_get(obj, "parameters");
	const char *k;
	json_t *v, *copy;

	if (p == NULL || json_is_null(p)) {
		if ((*out = json_object()) == NULL)
			return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		return IOTP_OK;
	}
	if (!json_is_object(p))
		return iotp_err_set(err, IOTP_ERR_INVALID, "parameters must be an object");
	if (json_object_size(p) > FLEET_MAX_PARAMETERS)
		return iotp_err_set(err, IOTP_ERR_INVALID, "parameters: at most %d entries",
		                    FLEET_MAX_PARAMETERS);
	json_object_foreach((json_t *)p, k, v) {
		if (!json_is_string(v))
			return iotp_err_set(err, IOTP_ERR_INVALID, "parameters.%s must be a string", k);
		if (json_string_length(v) > PARAM_VALUE_MAX)
			return iotp_err_set(err, IOTP_ERR_INVALID, "parameters.%s is too long", k);
	}
	if ((copy = json_deep_copy(p)) == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	*out = copy;
	return IOTP_OK;
}

iotp_rc fleet_request_decode(const struct fleet_topic *t, const void *data, size_t len,
                             struct fleet_request *out, struct iotp_err *err)
{
	struct fleet_request r = {0};
	json_t *obj = NULL;
	iotp_rc rc = IOTP_OK;

	if (len > FLEET_PAYLOAD_MAX)
		return iotp_err_set(err, IOTP_ERR_TOO_BIG, "payload over %d bytes", FLEET_PAYLOAD_MAX);
	if (len == 0) {
		obj = json_object();
		if (obj == NULL)
			return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	} else if (t->fmt == FLEET_CBOR) {
		if ((rc = fleet_cbor_to_json(data, len, &obj, err)) != IOTP_OK)
			return rc;
	} else {
		json_error_t jerr;

		obj = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
		if (obj == NULL)
			return iotp_err_set(err, IOTP_ERR_INVALID, "payload is not valid JSON: %s",
			                    jerr.text);
	}
	if (!json_is_object(obj)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "payload must be an object");
		goto out;
	}
	switch (t->op) {
	case FLEET_CREATE:
		break;
	case FLEET_CREATE_CSR:
		rc = member_string(obj, "certificateSigningRequest", 1, 8192, &r.csr, err);
		break;
	case FLEET_PROVISION:
		rc = member_string(obj, "certificateOwnershipToken", 1, 2048, &r.token, err);
		if (rc == IOTP_OK)
			rc = parameters_copy(obj, &r.parameters, err);
		break;
	}
out:
	json_decref(obj);
	if (rc != IOTP_OK) {
		fleet_request_cleanup(&r);
		return rc;
	}
	*out = r;
	return IOTP_OK;
}

/* ---- encoding ---- */

/* An integer in the fewest bytes CBOR allows (its preferred
 * serialization): libcbor writes a 64-bit item in 9 bytes whatever its
 * value, so a reply of small numbers would grow ninefold, past what the
 * decoder takes back (FLEET_PAYLOAD_MAX). neg: the item is -1 - v. */
static cbor_item_t *cbor_uint_min(uint64_t v, int neg)
{
	if (v <= UINT8_MAX)
		return neg ? cbor_build_negint8((uint8_t)v) : cbor_build_uint8((uint8_t)v);
	if (v <= UINT16_MAX)
		return neg ? cbor_build_negint16((uint16_t)v) : cbor_build_uint16((uint16_t)v);
	if (v <= UINT32_MAX)
		return neg ? cbor_build_negint32((uint32_t)v) : cbor_build_uint32((uint32_t)v);
	return neg ? cbor_build_negint64(v) : cbor_build_uint64(v);
}

static cbor_item_t *json_to_cbor(const json_t *v, int depth)
{
	cbor_item_t *it = NULL;

	if (depth > FLEET_MAX_DEPTH)
		return NULL;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *e;

		if ((it = cbor_new_definite_map(json_object_size(v))) == NULL)
			return NULL;
		json_object_foreach((json_t *)v, k, e) {
			cbor_item_t *ck = cbor_build_stringn(k, strlen(k));
			cbor_item_t *cv = json_to_cbor(e, depth + 1);
			int ok = ck != NULL && cv != NULL &&
			         cbor_map_add(it, (struct cbor_pair){.key = ck, .value = cv});

			if (ck != NULL)
				cbor_decref(&ck);
			if (cv != NULL)
				cbor_decref(&cv);
			if (!ok) {
				cbor_decref(&it);
				return NULL;
			}
		}
		return it;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *e;

		if ((it = cbor_new_definite_array(json_array_size(v))) == NULL)
			return NULL;
		json_array_foreach(v, i, e) {
			cbor_item_t *ce = json_to_cbor(e, depth + 1);
			int ok = ce != NULL && cbor_array_push(it, ce);

			if (ce != NULL)
				cbor_decref(&ce);
			if (!ok) {
				cbor_decref(&it);
				return NULL;
			}
		}
		return it;
	}
	case JSON_STRING:
		return cbor_build_stringn(json_string_value(v), json_string_length(v));
	case JSON_INTEGER: {
		json_int_t n = json_integer_value(v);

		return n >= 0 ? cbor_uint_min((uint64_t)n, 0) : cbor_uint_min((uint64_t)(-1 - n), 1);
	}
	case JSON_TRUE:
		return cbor_build_bool(true);
	case JSON_FALSE:
		return cbor_build_bool(false);
	case JSON_NULL:
		return cbor_new_null();
	default:
		return NULL;
	}
}

iotp_rc fleet_encode(enum fleet_fmt fmt, const json_t *obj, void **out, size_t *len,
                     struct iotp_err *err)
{
	if (fmt == FLEET_JSON) {
		char *s = json_dumps(obj, JSON_COMPACT);

		if (s == NULL)
			return iotp_err_set(err, IOTP_ERR_NOMEM, "cannot encode the reply");
		*len = strlen(s);
		*out = s;
		return IOTP_OK;
	}
	{
		cbor_item_t *it = json_to_cbor(obj, 0);
		unsigned char *buf = NULL;
		size_t bufsize = 0, n;

		if (it == NULL)
			return iotp_err_set(err, IOTP_ERR_NOMEM, "cannot encode the reply as CBOR");
		n = cbor_serialize_alloc(it, &buf, &bufsize);
		cbor_decref(&it);
		if (n == 0) {
			free(buf);
			return iotp_err_set(err, IOTP_ERR_NOMEM, "cannot serialize the CBOR reply");
		}
		*out = buf;
		*len = n;
		return IOTP_OK;
	}
}

iotp_rc fleet_encode_strings(enum fleet_fmt fmt, const char *const *kv, size_t n, void **out,
                             size_t *len, struct iotp_err *err)
{
	struct buf b;
	iotp_rc rc;

	buf_init(&b, 0);
	if ((rc = enc_string_map(&b, fmt == FLEET_CBOR, kv, n)) != IOTP_OK) {
		buf_cleanup_secure(&b);
		return iotp_err_set(err, rc, "cannot encode the reply");
	}
	*out = buf_detach(&b, len);
	return IOTP_OK;
}

json_t *fleet_rejected(int status, const char *code, const char *message)
{
	return json_pack("{s:i, s:s, s:s}", "statusCode", status, "errorCode", code,
	                 "errorMessage", message);
}
