/*
 * JSON request and response helpers shared by the API route files (see
 * api_json.h). Nothing here knows an operation: the parsers of api_parse.c
 * and the handlers of api_*.c say which members an operation takes.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/x509.h>

#include "common/enc.h"
#include "common/util.h"
#include "core/pki.h"
#include "server/api_json.h"

/* The member, NULL when absent or JSON null. */
static const json_t *member(const json_t *obj, const char *name)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, name) : NULL;

	return json_is_null(v) ? NULL : v;
}

static iotp_rc missing(const char *name, int required, struct iotp_err *err)
{
	if (required)
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s is required", name);
	return IOTP_OK;
}

iotp_rc api_json_only(const json_t *obj, const char *what, const char *const *names, size_t n,
                      struct iotp_err *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must be an object", what);
	json_object_foreach((json_t *)obj, key, v) {
		size_t i;

		(void)v;
		for (i = 0; i < n; i++) {
			if (strcmp(key, names[i]) == 0)
				break;
		}
		if (i == n)
			return iotp_err_set(err, IOTP_ERR_INVALID, "unknown member '%.128s' in %s", key,
			                    what);
	}
	return IOTP_OK;
}

iotp_rc api_json_str(const json_t *obj, const char *name, int required, size_t max,
                     const char **out, struct iotp_err *err)
{
	const json_t *v = member(obj, name);
	const char *s;

	if (v == NULL)
		return missing(name, required, err);
	if (!json_is_string(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must be a string", name);
	s = json_string_value(v);
	if (strlen(s) != json_string_length(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must not contain a NUL character",
		                    name);
	if (max > 0 && json_string_length(v) > max)
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s is longer than %zu characters", name,
		                    max);
	*out = s;
	return IOTP_OK;
}

iotp_rc api_json_bool(const json_t *obj, const char *name, int *out, struct iotp_err *err)
{
	const json_t *v = member(obj, name);

	if (v == NULL)
		return IOTP_OK;
	if (!json_is_boolean(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must be true or false", name);
	*out = json_is_true(v);
	return IOTP_OK;
}

iotp_rc api_json_int(const json_t *obj, const char *name, int64_t min, int64_t max,
                     int64_t *out, struct iotp_err *err)
{
	const json_t *v = member(obj, name);

	if (v == NULL)
		return IOTP_OK;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must be a whole number from %lld to %lld",
		                    name, (long long)min, (long long)max);
	*out = (int64_t)json_integer_value(v);
	return IOTP_OK;
}

iotp_rc api_json_obj(const json_t *obj, const char *name, int required, const json_t **out,
                     struct iotp_err *err)
{
	const json_t *v = member(obj, name);

	if (v == NULL)
		return missing(name, required, err);
	if (!json_is_object(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must be an object", name);
	*out = v;
	return IOTP_OK;
}

iotp_rc api_json_string_map(const json_t *map, const char *name, struct iotp_err *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(map))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s must be an object", name);
	json_object_foreach((json_t *)map, key, v) {
		if (!json_is_string(v))
			return iotp_err_set(err, IOTP_ERR_INVALID, "%s: the value of '%.128s' must be a "
			                    "string", name, key);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "%s must not contain a NUL character", name);
	}
	return IOTP_OK;
}

iotp_rc api_json_no_tags(const json_t *obj, struct iotp_err *err)
{
	const json_t *v = member(obj, "tags");

	if (v == NULL)
		return IOTP_OK;
	if (!json_is_array(v))
		return iotp_err_set(err, IOTP_ERR_INVALID, "tags must be a list");
	if (json_array_size(v) > 0)
		return iotp_err_set(err, IOTP_ERR_UNSUPPORTED,
		                    "tags are not supported by iotprov: leave them out");
	return IOTP_OK;
}

iotp_rc api_page_from_query(const struct api_request *rq, const char *token_name,
                            const char *size_name, struct registry_page *out,
                            struct iotp_err *err)
{
	int64_t size = 0;
	iotp_rc rc;

	if ((rc = api_query_int(rq, size_name, 1, REGISTRY_PAGE_MAX, &size, err)) != IOTP_OK)
		return rc;
	out->token = api_query(rq, token_name);
	out->max = (int)size;
	return IOTP_OK;
}

iotp_rc api_reply(struct api_response *resp, json_t *body, struct iotp_err *err)
{
	if (body == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "cannot build the response");
	return api_response_json(resp, 200, body);
}

iotp_rc api_reply_with_key(struct api_response *resp, const char *const *members, size_t n,
                           const char *public_pem, const char *private_pem,
                           const char *num_name, int64_t num, struct iotp_err *err)
{
	struct buf b;
	iotp_rc rc;

	buf_init(&b, 0);
	/* {members..., "keyPair": {"PublicKey": ..., "PrivateKey": ...}[, num]} */
	rc = enc_string_map(&b, 0, members, n);
	if (rc == IOTP_OK) {
		const char *kp[] = {"PublicKey", public_pem, "PrivateKey", private_pem};

		b.len--; /* reopen the object: drop its '}' */
		if ((rc = buf_puts(&b, n > 0 ? ",\"keyPair\":" : "\"keyPair\":")) == IOTP_OK)
			rc = enc_string_map(&b, 0, kp, 2);
	}
	if (rc == IOTP_OK && num_name != NULL) {
		if ((rc = buf_puts(&b, ",")) == IOTP_OK && (rc = enc_json_string(&b, num_name)) == IOTP_OK)
			rc = buf_printf(&b, ":%lld", (long long)num);
	}
	if (rc == IOTP_OK)
		rc = buf_puts(&b, "}");
	if (rc == IOTP_OK)
		rc = api_response_secret_json(resp, 200, &b);
	buf_cleanup_secure(&b);
	if (rc != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "cannot build the response");
	return IOTP_OK;
}

int api_json_set_opt(json_t *obj, const char *name, const char *value)
{
	json_t *s;

	if (value == NULL || value[0] == '\0')
		return 0;
	s = json_string(value);
	if (s == NULL)
		return -1;
	return json_object_set_new(obj, name, s);
}

int api_json_set_num_str(json_t *obj, const char *name, int64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%lld", (long long)v);
	return json_object_set_new(obj, name, json_string(s));
}

void api_json_push(json_t **arr, json_t *item)
{
	if (*arr == NULL || item == NULL) {
		json_decref(item);
		json_decref(*arr);
		*arr = NULL;
		return;
	}
	if (json_array_append_new(*arr, item) != 0) {
		json_decref(*arr);
		*arr = NULL;
	}
}

json_t *api_page_json(const char *key, json_t *items, const char *token_key, const char *next)
{
	json_t *o;

	if (items == NULL)
		return NULL;
	o = json_object();
	if (o == NULL) {
		json_decref(items);
		return NULL;
	}
	/* json_object_set_new releases items even when it fails. */
	if (json_object_set_new(o, key, items) != 0 || api_json_set_opt(o, token_key, next) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *api_json_str_array(char *const *items, size_t count)
{
	json_t *a = json_array();

	if (a == NULL)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		if (json_array_append_new(a, json_string(items[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

void api_exists_extra(struct api_response *resp, const char *id, const char *arn)
{
	json_t *o = json_object();

	if (o == NULL)
		return;
	if (api_json_set_opt(o, "resourceId", id) != 0 ||
	    api_json_set_opt(o, "resourceArn", arn) != 0) {
		json_decref(o);
		return;
	}
	json_decref(resp->error_extra);
	resp->error_extra = o;
}

void api_exists_extra_pem(const struct api_request *rq, struct api_response *resp,
                          const char *pem, const char *resource)
{
	X509 *x = NULL;
	char id[PKI_CERT_ID_LEN + 1], res[PKI_CERT_ID_LEN + 16], arn[REGISTRY_ARN_MAX];
	struct iotp_err lerr;

	if (pem == NULL || pki_cert_parse(pem, strlen(pem), &x, &lerr) != IOTP_OK)
		return;
	if (pki_cert_id(x, id, &lerr) == IOTP_OK) {
		snprintf(res, sizeof(res), "%s/%s", resource, id);
		if (api_arn(rq, res, arn, sizeof(arn), &lerr) == IOTP_OK)
			api_exists_extra(resp, id, arn);
	}
	X509_free(x);
}

json_t *api_json_wrap(const char *key, json_t *value)
{
	json_t *o;

	if (value == NULL)
		return NULL;
	o = json_object();
	if (o == NULL) {
		json_decref(value);
		return NULL;
	}
	if (json_object_set_new(o, key, value) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

iotp_rc api_arn(const struct api_request *rq, const char *resource, char *out, size_t size,
                struct iotp_err *err)
{
	return core_arn(rq->core, resource, out, size, err);
}
