/*
 * Fleet-provisioning payloads, both encodings: requests the device sends
 * ($aws/certificates/create-from-csr, $aws/provisioning-templates/<name>/
 * provision) and the accepted / rejected replies it receives. CBOR replies
 * are turned into the same jansson tree as JSON ones (text, integers, maps,
 * arrays, booleans) so that one set of checks reads both: whatever the
 * encoding, the device accepts and refuses the same replies.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/buf.h"
#include "common/util.h"
#include "core/pki.h"
#include "device/dev.h"

#define TOKEN_MAX 4096

/* ------------------------------------------------------------------ */
/* Requests */

static iotp_rc dump_json(json_t *o, uint8_t **out, size_t *len, struct iotp_err *err)
{
	char *s = json_dumps(o, JSON_COMPACT);

	if (s == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory encoding a request");
	*out = (uint8_t *)s;
	*len = strlen(s);
	return IOTP_OK;
}

iotp_rc fp_encode_csr_request(enum iotp_fp_format f, const char *csr, size_t csr_len,
                              uint8_t **out, size_t *len, struct iotp_err *err)
{
	static const char key[] = "certificateSigningRequest";
	json_t *o = NULL;
	struct buf b;
	iotp_rc rc = IOTP_OK;

	buf_init(&b, 0);
	if (f == IOTP_FP_JSON) {
		o = json_object();
		if (o == NULL || json_object_set_new(o, key, json_stringn(csr, csr_len)) != 0) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "the CSR is not UTF-8 text");
			goto out;
		}
		rc = dump_json(o, out, len, err);
		goto out;
	}
	if (cbor_put_head(&b, 5, 1) != IOTP_OK || cbor_put_text(&b, key, sizeof(key) - 1) != IOTP_OK ||
	    cbor_put_text(&b, csr, csr_len) != IOTP_OK) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory encoding a request");
		goto out;
	}
	*out = (uint8_t *)buf_detach(&b, len);
out:
	json_decref(o);
	buf_cleanup(&b);
	return rc;
}

iotp_rc fp_encode_register_request(enum iotp_fp_format f, const char *token,
                                   const struct iotp_param *params, size_t nparams,
                                   uint8_t **out, size_t *len, struct iotp_err *err)
{
	static const char ktok[] = "certificateOwnershipToken", kpar[] = "parameters";
	json_t *o = NULL, *p = NULL;
	struct buf b;
	size_t i;
	iotp_rc rc = IOTP_OK;

	buf_init(&b, 0);
	for (i = 0; i < nparams; i++)
		if (params[i].name == NULL || params[i].value == NULL || params[i].name[0] == '\0')
			return iotp_err_set(err, IOTP_ERR_INVALID, "parameter %zu has no name or value",
			                    i);
	if (f == IOTP_FP_JSON) {
		o = json_object();
		p = json_object();
		if (o == NULL || p == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
			goto out;
		}
		for (i = 0; i < nparams; i++) {
			if (json_object_get(p, params[i].name) != NULL) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID, "parameter %s given twice",
				                  params[i].name);
				goto out;
			}
			if (json_object_set_new(p, params[i].name, json_string(params[i].value)) != 0) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID,
				                  "parameter %s is not UTF-8 text", params[i].name);
				goto out;
			}
		}
		if (json_object_set_new(o, ktok, json_string(token)) != 0 ||
		    json_object_set(o, kpar, p) != 0) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "bad ownership token");
			goto out;
		}
		rc = dump_json(o, out, len, err);
		goto out;
	}
	for (i = 0; i < nparams; i++) {
		size_t j;

		for (j = 0; j < i; j++)
			if (strcmp(params[i].name, params[j].name) == 0) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID, "parameter %s given twice",
				                  params[i].name);
				goto out;
			}
	}
	if (cbor_put_head(&b, 5, 2) != IOTP_OK ||
	    cbor_put_text(&b, ktok, sizeof(ktok) - 1) != IOTP_OK ||
	    cbor_put_text(&b, token, strlen(token)) != IOTP_OK ||
	    cbor_put_text(&b, kpar, sizeof(kpar) - 1) != IOTP_OK ||
	    cbor_put_head(&b, 5, nparams) != IOTP_OK) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory encoding a request");
		goto out;
	}
	for (i = 0; i < nparams; i++)
		if (cbor_put_text(&b, params[i].name, strlen(params[i].name)) != IOTP_OK ||
		    cbor_put_text(&b, params[i].value, strlen(params[i].value)) != IOTP_OK) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory encoding a request");
			goto out;
		}
	*out = (uint8_t *)buf_detach(&b, len);
out:
	json_decref(o);
	json_decref(p);
	buf_cleanup(&b);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Replies: CBOR to a jansson tree */

static iotp_rc cbor_item_json(struct cbor_cur *c, json_t **out, struct iotp_err *err);

static iotp_rc cbor_container_json(struct cbor_cur *c, enum cbor_kind kind, uint64_t arg,
                                   json_t **out, struct iotp_err *err)
{
	json_t *v = kind == CBOR_MAP ? json_object() : json_array();
	uint64_t i;
	iotp_rc rc = IOTP_OK;

	if (v == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	if (++c->depth > 16) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: nested too deeply");
		goto out;
	}
	if (arg != UINT64_MAX && arg > (uint64_t)(c->end - c->p)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: container longer than input");
		goto out;
	}
	for (i = 0; arg == UINT64_MAX || i < arg; i++) {
		json_t *item = NULL;
		char *key = NULL;

		if (arg == UINT64_MAX) {
			if (c->p >= c->end) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: unterminated container");
				goto out;
			}
			if (*c->p == 0xff) {
				c->p++;
				break;
			}
		}
		if (kind == CBOR_MAP && (rc = cbor_text(c, &key, NULL, err)) != IOTP_OK) {
			if (err != NULL && rc == IOTP_ERR_INVALID)
				iotp_err_set(err, rc, "CBOR: map keys must be text strings");
			goto out;
		}
		rc = cbor_item_json(c, &item, err);
		if (rc == IOTP_OK && item != NULL) {
			if (kind == CBOR_MAP) {
				if (json_object_get(v, key) != NULL) {
					rc = iotp_err_set(err, IOTP_ERR_INVALID,
					                  "CBOR: duplicate key \"%s\"", key);
					json_decref(item);
				} else if (json_object_set_new(v, key, item) != 0) {
					rc = iotp_err_set(err, IOTP_ERR_INVALID,
					                  "CBOR: key is not UTF-8");
				}
			} else if (json_array_append_new(v, item) != 0) {
				rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
			}
		}
		free(key);
		if (rc != IOTP_OK)
			goto out;
	}
	*out = v;
	v = NULL;
out:
	c->depth--;
	json_decref(v);
	return rc;
}

/* One item to JSON; *out stays NULL for items JSON has no use for here
 * (byte strings, floats, tags, undefined), which are skipped. */
static iotp_rc cbor_item_json(struct cbor_cur *c, json_t **out, struct iotp_err *err)
{
	const uint8_t *start = c->p;
	enum cbor_kind kind;
	uint64_t arg;
	char *s = NULL;
	size_t n = 0;
	iotp_rc rc;

	*out = NULL;
	if ((rc = cbor_head(c, &kind, &arg, err)) != IOTP_OK)
		return rc;
	switch (kind) {
	case CBOR_UINT:
		if (arg > INT64_MAX)
			return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: integer out of range");
		*out = json_integer((json_int_t)arg);
		break;
	case CBOR_NEGINT:
		if (arg > INT64_MAX)
			return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: integer out of range");
		*out = json_integer(-1 - (json_int_t)arg);
		break;
	case CBOR_TEXT:
		c->p = start;
		if ((rc = cbor_text(c, &s, &n, err)) != IOTP_OK)
			return rc;
		*out = json_stringn(s, n);
		free(s);
		if (*out == NULL)
			return iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: text is not UTF-8");
		return IOTP_OK;
	case CBOR_MAP:
	case CBOR_ARRAY:
		return cbor_container_json(c, kind, arg, out, err);
	case CBOR_SIMPLE:
		if (arg == 20 || arg == 21)
			*out = json_boolean(arg == 21);
		else if (arg == 22)
			*out = json_null();
		else if (arg >= 25 && arg <= 27)
			return IOTP_OK; /* float: the head read its bytes */
		else
			return IOTP_OK;
		break;
	case CBOR_BYTES:
	case CBOR_TAG:
		c->p = start;
		return cbor_skip(c, err);
	}
	if (*out == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	return IOTP_OK;
}

static iotp_rc decode_object(enum iotp_fp_format f, const void *data, size_t len, json_t **out,
                             struct iotp_err *err)
{
	json_t *v = NULL;
	json_error_t jerr;
	iotp_rc rc = IOTP_OK;

	if (len > DEV_REPLY_MAX)
		return iotp_err_set(err, IOTP_ERR_TOO_BIG, "reply of %zu bytes is over the %d-byte cap",
		                    len, DEV_REPLY_MAX);
	if (f == IOTP_FP_JSON) {
		v = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
		if (v == NULL)
			return iotp_err_set(err, IOTP_ERR_INVALID, "reply is not JSON: %s", jerr.text);
	} else {
		struct cbor_cur c = { data, (const uint8_t *)data + len, 0 };

		if ((rc = cbor_item_json(&c, &v, err)) != IOTP_OK)
			goto out;
		if (c.p != c.end) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "CBOR: %zu bytes after the reply",
			                  (size_t)(c.end - c.p));
			goto out;
		}
	}
	if (!json_is_object(v)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "reply is not a %s map",
		                  f == IOTP_FP_JSON ? "JSON" : "CBOR");
		goto out;
	}
	*out = v;
	v = NULL;
out:
	json_decref(v);
	return rc;
}

/* A required (or optional) string member of at most max bytes. */
static iotp_rc get_str(json_t *o, const char *name, int required, size_t max, const char **out,
                       struct iotp_err *err)
{
	json_t *v = json_object_get(o, name);

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return iotp_err_set(err, IOTP_ERR_INVALID, "reply has no %s", name);
		return IOTP_OK;
	}
	if (!json_is_string(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s in the reply is not a string", name);
	if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s in the reply is too long or has NUL",
		                    name);
	*out = json_string_value(v);
	return IOTP_OK;
}

static int is_cert_id(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == IOTP_CERT_ID_LEN;
}

static char *dup_secret(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

iotp_rc fp_decode_cert_accepted(enum iotp_fp_format f, const void *data, size_t len,
                                int want_key, struct iotp_fleet_cert *out,
                                struct iotp_err *err)
{
	json_t *o = NULL;
	const char *id, *pem, *token, *key;
	X509 *x = NULL;
	char real_id[PKI_CERT_ID_LEN + 1];
	struct iotp_fleet_cert c;
	iotp_rc rc;

	memset(&c, 0, sizeof(c));
	if ((rc = decode_object(f, data, len, &o, err)) != IOTP_OK)
		goto out;
	if ((rc = get_str(o, "certificateId", 1, 128, &id, err)) != IOTP_OK ||
	    (rc = get_str(o, "certificatePem", 1, DEV_REPLY_MAX, &pem, err)) != IOTP_OK ||
	    (rc = get_str(o, "certificateOwnershipToken", 1, TOKEN_MAX, &token, err)) != IOTP_OK ||
	    (rc = get_str(o, "privateKey", want_key, DEV_REPLY_MAX, &key, err)) != IOTP_OK)
		goto out;
	if (!is_cert_id(id)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID,
		                  "certificateId is not 64 lowercase hex digits");
		goto out;
	}
	if (token[0] == '\0') {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "empty certificateOwnershipToken");
		goto out;
	}
	if (!want_key && key != NULL) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID,
		                  "the reply to a CSR carries a private key: refused");
		goto out;
	}
	/* The id must be the certificate's: a device that stored a mismatched
	 * pair would report the wrong identity forever. */
	if ((rc = pki_cert_parse(pem, strlen(pem), &x, err)) != IOTP_OK)
		goto out;
	if ((rc = pki_cert_id(x, real_id, err)) != IOTP_OK)
		goto out;
	if (strcmp(real_id, id) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID,
		                  "certificateId %s does not match the certificate (%s)", id, real_id);
		goto out;
	}
	memcpy(c.cert_id, id, IOTP_CERT_ID_LEN + 1);
	c.cert_pem = strdup(pem);
	c.token = dup_secret(token);
	c.private_key_pem = dup_secret(key);
	if (c.cert_pem == NULL || c.token == NULL || (key != NULL && c.private_key_pem == NULL)) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	*out = c;
	memset(&c, 0, sizeof(c));
out:
	iotp_fleet_cert_cleanup(&c);
	X509_free(x);
	json_decref(o);
	return rc;
}

iotp_rc fp_decode_register_accepted(enum iotp_fp_format f, const void *data, size_t len,
                                    struct iotp_fleet_thing *out, struct iotp_err *err)
{
	json_t *o = NULL, *dc;
	const char *thing;
	struct iotp_fleet_thing t;
	const char *k;
	json_t *v;
	iotp_rc rc;

	memset(&t, 0, sizeof(t));
	if ((rc = decode_object(f, data, len, &o, err)) != IOTP_OK)
		goto out;
	if ((rc = get_str(o, "thingName", 0, IOTP_THING_NAME_MAX, &thing, err)) != IOTP_OK)
		goto out;
	dc = json_object_get(o, "deviceConfiguration");
	if (dc != NULL && !json_is_null(dc)) {
		if (!json_is_object(dc)) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "deviceConfiguration is not a map");
			goto out;
		}
		json_object_foreach(dc, k, v) {
			if (!json_is_string(v)) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID,
				                  "deviceConfiguration.%s is not a string", k);
				goto out;
			}
		}
		t.device_configuration = dev_json_text(dc);
	} else {
		t.device_configuration = strdup("{}");
	}
	if (t.device_configuration == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	util_strlcpy(t.thing_name, thing != NULL ? thing : "", sizeof(t.thing_name));
	*out = t;
	memset(&t, 0, sizeof(t));
out:
	iotp_fleet_thing_cleanup(&t);
	json_decref(o);
	return rc;
}

iotp_rc fp_decode_rejected(enum iotp_fp_format f, const void *data, size_t len, int *status,
                           char code[IOTP_ERROR_CODE_MAX], char *msg, size_t msg_size,
                           struct iotp_err *err)
{
	json_t *o = NULL, *sc;
	const char *c, *m;
	json_int_t st = 0;
	iotp_rc rc;

	if ((rc = decode_object(f, data, len, &o, err)) != IOTP_OK)
		goto out;
	sc = json_object_get(o, "statusCode");
	if (json_is_integer(sc))
		st = json_integer_value(sc);
	else if (sc != NULL && !json_is_null(sc)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "statusCode is not an integer");
		goto out;
	}
	if (st < 0 || st > 999) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "statusCode %lld out of range",
		                  (long long)st);
		goto out;
	}
	if ((rc = get_str(o, "errorCode", 0, DEV_REPLY_MAX, &c, err)) != IOTP_OK ||
	    (rc = get_str(o, "errorMessage", 0, DEV_REPLY_MAX, &m, err)) != IOTP_OK)
		goto out;
	*status = (int)st;
	util_strlcpy(code, c != NULL ? c : "", IOTP_ERROR_CODE_MAX);
	if (msg != NULL && msg_size > 0)
		util_strlcpy(msg, m != NULL ? m : "", msg_size);
out:
	json_decref(o);
	return rc;
}

void iotp_fleet_cert_cleanup(struct iotp_fleet_cert *c)
{
	if (c == NULL)
		return;
	free(c->cert_pem);
	iotp_free_secret(c->private_key_pem);
	iotp_free_secret(c->token);
	memset(c, 0, sizeof(*c));
}

void iotp_fleet_thing_cleanup(struct iotp_fleet_thing *t)
{
	if (t == NULL)
		return;
	free(t->device_configuration);
	memset(t, 0, sizeof(*t));
}
