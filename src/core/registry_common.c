/*
 * Registry plumbing shared by the per-object files: transactions that nest,
 * the event helper, opaque paging tokens (base64 of "<tag>:<last key>"),
 * name/attribute validation and result list cleanup (see
 * registry_internal.h and registry.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/util.h"
#include "core/registry_internal.h"

#define ATTR_NAME_MAX 128
#define ATTR_VALUE_MAX 800
#define TOKEN_KEY_MAX 600

/* The caller's level that registry calls join instead of opening their own
 * savepoint (see registry_tx_flat_begin). Per thread, because a store
 * connection belongs to one thread; keyed by the store so that another
 * connection on the same thread is never affected. */
static _Thread_local struct registry_flat flat_now;

#define FLAT_DEPTH (-1) /* *depth0 of a call that joined the caller's level */

void registry_tx_flat_begin(struct iotp_core *core, struct registry_flat *saved)
{
	*saved = flat_now;
	flat_now.store = core->store;
	flat_now.depth = store_tx_depth(core->store);
}

void registry_tx_flat_end(const struct registry_flat *saved)
{
	flat_now = *saved;
}

iotp_rc reg_tx_begin(struct iotp_core *core, int *depth0, struct iotp_err *err)
{
	if (flat_now.store == core->store && flat_now.depth > 0 &&
	    store_tx_depth(core->store) == flat_now.depth) {
		*depth0 = FLAT_DEPTH;
		return IOTP_OK;
	}
	*depth0 = store_tx_depth(core->store);
	return store_begin(core->store, err);
}

iotp_rc reg_tx_end(struct iotp_core *core, int depth0, iotp_rc rc, struct iotp_err *err)
{
	if (depth0 == FLAT_DEPTH)
		return rc; /* the caller's level commits or rolls back as a unit */
	if (rc == IOTP_OK) {
		rc = store_commit(core->store, err);
		if (rc == IOTP_OK)
			return IOTP_OK;
	}
	while (store_tx_depth(core->store) > depth0)
		store_rollback(core->store);
	return rc;
}

iotp_rc reg_event(struct iotp_core *core, const char *actor, const char *action,
                  const char *object, json_t *detail, struct iotp_err *err)
{
	char *text = NULL;
	iotp_rc rc;

	if (detail != NULL) {
		text = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(detail);
		if (text == NULL)
			return iotp_err_set(err, IOTP_ERR_NOMEM, "event %s %s: out of memory", action,
			                    object);
	}
	rc = store_event_append(core->store, actor, action, object, text, NULL, err);
	free(text);
	return rc;
}

iotp_rc reg_arn(struct iotp_core *core, const char *kind, const char *name, char *out,
                struct iotp_err *err)
{
	char res[REGISTRY_ARN_MAX];
	int n = snprintf(res, sizeof(res), "%s/%s", kind, name);

	if (n < 0 || (size_t)n >= sizeof(res))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s name too long", kind);
	return core_arn(core, res, out, REGISTRY_ARN_MAX, err);
}

/* ---- paging tokens ---- */

iotp_rc reg_page_token(char tag, const char *key, char **out, struct iotp_err *err)
{
	size_t klen = strlen(key), rawlen = klen + 2;
	unsigned char *raw = NULL;
	char *enc = NULL;

	if (klen > TOKEN_KEY_MAX)
		return iotp_err_set(err, IOTP_ERR_INTERNAL, "paging key too long");
	raw = malloc(rawlen);
	enc = malloc(4 * ((rawlen + 2) / 3) + 1);
	if (raw == NULL || enc == NULL) {
		free(raw);
		free(enc);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "paging token: out of memory");
	}
	raw[0] = (unsigned char)tag;
	raw[1] = ':';
	memcpy(raw + 2, key, klen);
	EVP_EncodeBlock((unsigned char *)enc, raw, (int)rawlen);
	free(raw);
	*out = enc;
	return IOTP_OK;
}

iotp_rc reg_page_token_ts(char tag, int64_t ts, const char *id, char **out,
                          struct iotp_err *err)
{
	char key[REGISTRY_ID_MAX + 32];
	int n = snprintf(key, sizeof(key), "%lld:%s", (long long)ts, id);

	if (n < 0 || (size_t)n >= sizeof(key))
		return iotp_err_set(err, IOTP_ERR_INTERNAL, "paging key too long");
	return reg_page_token(tag, key, out, err);
}

iotp_rc reg_page_key_ts(const char *key, int64_t *ts, const char **id, struct iotp_err *err)
{
	const char *colon = strchr(key, ':');
	char num[24];
	size_t n;

	if (colon == NULL || (n = (size_t)(colon - key)) == 0 || n >= sizeof(num))
		return iotp_err_set(err, IOTP_ERR_INVALID, "invalid pagination token");
	memcpy(num, key, n);
	num[n] = '\0';
	if (util_parse_int64(num, INT64_MIN, INT64_MAX, ts) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_INVALID, "invalid pagination token");
	*id = colon + 1;
	return IOTP_OK;
}

size_t reg_page_sql_ts(char *sql, size_t size, size_t n, int ascending, int64_t ts,
                       const char *id, int max, struct store_val *p, int *np)
{
	const char *dir = ascending ? "ASC" : "DESC";

	if (id != NULL) {
		n += (size_t)snprintf(sql + n, size - n, " AND (created, id) %s (?, ?)",
		                      ascending ? ">" : "<");
		p[(*np)++] = SV_INT(ts);
		p[(*np)++] = SV_TEXT(id);
	}
	n += (size_t)snprintf(sql + n, size - n, " ORDER BY created %s, id %s LIMIT ?", dir, dir);
	p[(*np)++] = SV_INT(max + 1);
	return n;
}

static int b64_char(unsigned char c)
{
	return isalnum(c) || c == '+' || c == '/';
}

iotp_rc reg_page_open(const struct registry_page *page, char tag, int def, int *max,
                      char **key, struct iotp_err *err)
{
	const char *tok = page != NULL ? page->token : NULL;
	size_t len, pad = 0;
	unsigned char *raw = NULL;
	int n;

	if (page == NULL || page->max == 0)
		*max = def;
	else if (page->max < 0 || page->max > REGISTRY_PAGE_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "maxResults/pageSize %d out of range 1..%d", page->max,
		                    REGISTRY_PAGE_MAX);
	else
		*max = page->max;
	if (tok == NULL || *tok == '\0') {
		*key = NULL;
		return IOTP_OK;
	}
	len = strlen(tok);
	if (len % 4 != 0 || len > 4 * (TOKEN_KEY_MAX + 2) / 3 + 8)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)tok[i];

		if (c == '=' && i >= len - 2) {
			pad++;
			continue;
		}
		if (pad > 0 || !b64_char(c))
			goto bad;
	}
	raw = malloc(len / 4 * 3 + 1);
	if (raw == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "paging token: out of memory");
	n = EVP_DecodeBlock(raw, (const unsigned char *)tok, (int)len);
	if (n < 0 || (size_t)n < pad + 2)
		goto bad;
	n -= (int)pad;
	raw[n] = '\0';
	if (raw[0] != (unsigned char)tag || raw[1] != ':' || memchr(raw, '\0', (size_t)n) != NULL)
		goto bad;
	memmove(raw, raw + 2, (size_t)n - 1);
	*key = (char *)raw;
	return IOTP_OK;
bad:
	free(raw);
	return iotp_err_set(err, IOTP_ERR_INVALID, "invalid pagination token");
}

/* ---- names ---- */

int reg_name_ok(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		if (!(isalnum(c) || c == ':' || c == '_' || c == '-') || n >= REGISTRY_NAME_MAX)
			return 0;
	}
	return n > 0;
}

int registry_thing_name_valid(const char *name)
{
	return reg_name_ok(name);
}

int registry_policy_name_valid(const char *name)
{
	size_t n = 0;

	if (name == NULL)
		return 0;
	for (; name[n] != '\0'; n++) {
		unsigned char c = (unsigned char)name[n];

		if (!(isalnum(c) || strchr("_+=,.@-", c) != NULL) || n >= REGISTRY_NAME_MAX)
			return 0;
	}
	return n > 0;
}

int reg_cert_id_ok(const char *s)
{
	size_t n;

	if (s == NULL)
		return 0;
	for (n = 0; s[n] != '\0'; n++)
		if (!isxdigit((unsigned char)s[n]) || n >= PKI_CERT_ID_LEN)
			return 0;
	return n == PKI_CERT_ID_LEN;
}

iotp_rc reg_cert_id_norm(const char *in, char out[PKI_CERT_ID_LEN + 1], const char *what,
                         struct iotp_err *err)
{
	if (!reg_cert_id_ok(in))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s id must be 64 hex digits", what);
	for (size_t i = 0; i < PKI_CERT_ID_LEN; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[PKI_CERT_ID_LEN] = '\0';
	return IOTP_OK;
}

int reg_desc_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		if (c < 0x20 || c == 0x7f || n >= 2028)
			return 0;
	}
	return 1;
}

void reg_object(const char *kind, const char *name, char *out)
{
	snprintf(out, REGISTRY_ARN_MAX, "%s/%s", kind, name);
}

const char *reg_resource(const char *s)
{
	const char *r;

	if (s == NULL)
		return NULL;
	r = core_arn_resource(s);
	return r != NULL ? r : s;
}

/* ---- attributes ---- */

static int attr_chars_ok(const char *s, size_t min, size_t max)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		if (!(isalnum(c) || strchr("_.,@/:#-", c) != NULL) || n >= max)
			return 0;
	}
	return n >= min;
}

iotp_rc reg_attrs_apply(const json_t *current, const json_t *request, int merge, size_t max,
                        const char *what, json_t **out, struct iotp_err *err)
{
	json_t *res = NULL;
	const char *k;
	json_t *v;
	iotp_rc rc = IOTP_OK;

	if (request != NULL && !json_is_object(request))
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s: attributes must be an object", what);
	if (request == NULL || merge)
		res = current != NULL ? json_deep_copy(current) : json_object();
	else
		res = json_object();
	if (res == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "%s: out of memory", what);
	if (request != NULL) {
		json_object_foreach((json_t *)request, k, v) {
			const char *val;

			if (!attr_chars_ok(k, 1, ATTR_NAME_MAX)) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID,
				                  "%s: attribute name '%.128s' must match "
				                  "[a-zA-Z0-9_.,@/:#-]{1,128}", what, k);
				goto out;
			}
			if (!json_is_string(v)) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID,
				                  "%s: attribute %s must be a string", what, k);
				goto out;
			}
			val = json_string_value(v);
			if (!attr_chars_ok(val, 0, ATTR_VALUE_MAX)) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID,
				                  "%s: value of attribute %s must match "
				                  "[a-zA-Z0-9_.,@/:#-]{0,800}", what, k);
				goto out;
			}
			if (*val == '\0')
				json_object_del(res, k);
			else if (json_object_set(res, k, v) != 0) {
				rc = iotp_err_set(err, IOTP_ERR_NOMEM, "%s: out of memory", what);
				goto out;
			}
		}
	}
	if (json_object_size(res) > max) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID,
		                  "%s: %zu attributes, at most %zu allowed%s", what,
		                  json_object_size(res), max,
		                  max == 3 ? " without a thing type" : "");
		goto out;
	}
	*out = res;
	res = NULL;
out:
	json_decref(res);
	return rc;
}

iotp_rc reg_json_text(const json_t *v, char **out, struct iotp_err *err)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	if (s == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "JSON: out of memory");
	*out = s;
	return IOTP_OK;
}

iotp_rc reg_json_parse(const char *text, json_t **out, struct iotp_err *err)
{
	json_error_t je;
	json_t *v = json_loads(text != NULL ? text : "null", JSON_DECODE_ANY, &je);

	if (v == NULL)
		return iotp_err_set(err, IOTP_ERR_DB, "stored JSON unreadable: %s", je.text);
	*out = v;
	return IOTP_OK;
}

/* ---- rows ---- */

const char *reg_col_str(const struct store_row *row, int i)
{
	if (i >= row->ncols || row->cols[i].type == STORE_NULL)
		return NULL;
	return row->cols[i].s;
}

int64_t reg_col_int(const struct store_row *row, int i)
{
	int64_t v = 0;

	if (i >= row->ncols)
		return 0;
	if (row->cols[i].type == STORE_INT)
		return row->cols[i].i;
	if (row->cols[i].type == STORE_TEXT &&
	    util_parse_int64(row->cols[i].s, INT64_MIN, INT64_MAX, &v) == IOTP_OK)
		return v;
	return 0;
}

void reg_col_copy(const struct store_row *row, int i, char *out, size_t size)
{
	const char *s = reg_col_str(row, i);

	util_strlcpy(out, s != NULL ? s : "", size);
}

char *reg_col_dup(const struct store_row *row, int i, int *failed)
{
	const char *s = reg_col_str(row, i);
	char *d;

	if (s == NULL)
		return NULL;
	d = strndup(s, row->cols[i].len);
	if (d == NULL)
		*failed = 1;
	return d;
}

static int found_row(void *ud, const struct store_row *row)
{
	(void)row;
	*(int *)ud = 1;
	return 1;
}

iotp_rc reg_exists(struct iotp_core *core, const char *sql, const struct store_val *p,
                   int np, int *found, struct iotp_err *err)
{
	int f = 0;
	iotp_rc rc = store_exec(core->store, sql, p, np, found_row, &f, err);

	if (rc == IOTP_OK)
		*found = f;
	return rc;
}

iotp_rc reg_grow(void **items, size_t *count, size_t elem)
{
	char *p = realloc(*items, (*count + 1) * elem);

	if (p == NULL)
		return IOTP_ERR_NOMEM;
	memset(p + *count * elem, 0, elem);
	*items = p;
	(*count)++;
	return IOTP_OK;
}

int reg_strs_row(void *ud, const struct store_row *row)
{
	struct reg_strs *s = ud;
	int failed = 0;
	char *d = reg_col_dup(row, 0, &failed);

	if (d == NULL || reg_grow((void **)&s->items, &s->count, sizeof(char *)) != IOTP_OK) {
		free(d);
		s->rc = IOTP_ERR_NOMEM;
		return 1;
	}
	s->items[s->count - 1] = d;
	return 0;
}

void reg_strs_free(struct reg_strs *s)
{
	for (size_t i = 0; i < s->count; i++)
		free(s->items[i]);
	free(s->items);
	s->items = NULL;
	s->count = 0;
}

/* ---- public cleanups of the generic lists ---- */

void registry_ref_list_cleanup(struct registry_ref_list *l)
{
	if (l == NULL)
		return;
	free(l->items);
	free(l->next_token);
	memset(l, 0, sizeof(*l));
}

void registry_str_list_cleanup(struct registry_str_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
	free(l->next_token);
	memset(l, 0, sizeof(*l));
}

iotp_rc reg_strs_finish(struct iotp_core *core, struct reg_strs *s, char tag, int max,
                        int as_arn, struct registry_str_list *out, struct iotp_err *err)
{
	char *token = NULL;
	iotp_rc rc = IOTP_OK;

	if (s->rc != IOTP_OK) {
		rc = iotp_err_set(err, s->rc, "list: out of memory");
		goto out;
	}
	if (s->count > (size_t)max) {
		rc = reg_page_token(tag, s->page_key[0] != '\0' ? s->page_key : s->items[max - 1],
		                    &token, err);
		if (rc != IOTP_OK)
			goto out;
		while (s->count > (size_t)max)
			free(s->items[--s->count]);
	}
	if (as_arn) {
		for (size_t i = 0; i < s->count; i++) {
			char arn[REGISTRY_ARN_MAX];
			char *d;

			if ((rc = core_arn(core, s->items[i], arn, sizeof(arn), err)) != IOTP_OK)
				goto out;
			if ((d = strdup(arn)) == NULL) {
				rc = iotp_err_set(err, IOTP_ERR_NOMEM, "list: out of memory");
				goto out;
			}
			free(s->items[i]);
			s->items[i] = d;
		}
	}
	out->items = s->items;
	out->count = s->count;
	out->next_token = token;
	s->items = NULL;
	s->count = 0;
	token = NULL;
out:
	free(token);
	reg_strs_free(s);
	return rc;
}

int reg_refs_row(void *ud, const struct store_row *row)
{
	struct reg_refs *r = ud;
	struct registry_ref *ref;

	if (reg_grow((void **)&r->items, &r->count, sizeof(*r->items)) != IOTP_OK) {
		r->rc = iotp_err_set(&r->err, IOTP_ERR_NOMEM, "list: out of memory");
		return 1;
	}
	ref = &r->items[r->count - 1];
	reg_col_copy(row, 0, ref->name, sizeof(ref->name));
	r->rc = reg_arn(r->core, r->kind, ref->name, ref->arn, &r->err);
	return r->rc != IOTP_OK;
}

iotp_rc reg_refs_finish(struct reg_refs *r, char tag, int max, struct registry_ref_list *out,
                        struct iotp_err *err)
{
	char *token = NULL;
	iotp_rc rc = IOTP_OK;

	if (r->rc != IOTP_OK) {
		rc = iotp_err_set(err, r->rc, "%s", r->err.msg);
		goto out;
	}
	if (r->count > (size_t)max) {
		if ((rc = reg_page_token(tag, r->items[max - 1].name, &token, err)) != IOTP_OK)
			goto out;
		r->count = (size_t)max;
	}
	out->items = r->items;
	out->count = r->count;
	out->next_token = token;
	r->items = NULL;
	r->count = 0;
out:
	free(r->items);
	r->items = NULL;
	r->count = 0;
	return rc;
}
