/*
 * Things and their principals (see registry.h). A thing's attributes live
 * twice: as the JSON document in things.attributes, which describe and list
 * return without further queries, and as rows of thing_attributes, which
 * ListThings filters through an index. Both are written in one transaction.
 */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/registry_internal.h"

#define THING_COLS "t.name, t.id, t.type_name, t.attributes, t.version, t.created, t.updated"
#define ATTRS_UNTYPED 3
#define ATTRS_TYPED 50

struct thing_rows {
	struct iotp_core *core;
	struct registry_thing *items;
	size_t count;
	iotp_rc rc;
	struct iotp_err err;
};

static int thing_row(void *ud, const struct store_row *row)
{
	struct thing_rows *r = ud;
	struct registry_thing *t;

	if (reg_grow((void **)&r->items, &r->count, sizeof(*r->items)) != IOTP_OK) {
		r->rc = iotp_err_set(&r->err, IOTP_ERR_NOMEM, "things: out of memory");
		return 1;
	}
	t = &r->items[r->count - 1];
	reg_col_copy(row, 0, t->name, sizeof(t->name));
	reg_col_copy(row, 1, t->id, sizeof(t->id));
	reg_col_copy(row, 2, t->type_name, sizeof(t->type_name));
	t->version = reg_col_int(row, 4);
	t->created = reg_col_int(row, 5);
	t->updated = reg_col_int(row, 6);
	if ((r->rc = reg_json_parse(reg_col_str(row, 3), &t->attributes, &r->err)) != IOTP_OK)
		return 1;
	if (!json_is_object(t->attributes)) {
		r->rc = iotp_err_set(&r->err, IOTP_ERR_DB, "thing %s: stored attributes are not an object",
		                     t->name);
		return 1;
	}
	r->rc = reg_arn(r->core, "thing", t->name, t->arn, &r->err);
	return r->rc != IOTP_OK;
}

static void thing_rows_free(struct thing_rows *r)
{
	for (size_t i = 0; i < r->count; i++)
		registry_thing_cleanup(&r->items[i]);
	free(r->items);
	r->items = NULL;
	r->count = 0;
}

void registry_thing_cleanup(struct registry_thing *t)
{
	if (t == NULL)
		return;
	json_decref(t->attributes);
	memset(t, 0, sizeof(*t));
}

void registry_thing_list_cleanup(struct registry_thing_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->count; i++)
		registry_thing_cleanup(&l->items[i]);
	free(l->items);
	free(l->next_token);
	memset(l, 0, sizeof(*l));
}

/* Loads one thing into *out (NOT_FOUND when absent). */
static iotp_rc thing_load(struct iotp_core *core, const char *name, struct registry_thing *out,
                          struct iotp_err *err)
{
	struct thing_rows r = {.core = core};
	struct store_val p[] = {SV_TEXT(name)};
	iotp_rc rc;

	rc = store_exec(core->store, "SELECT " THING_COLS " FROM things t WHERE t.name = ?", p, 1,
	                thing_row, &r, err);
	if (rc == IOTP_OK && r.rc != IOTP_OK)
		rc = iotp_err_set(err, r.rc, "%s", r.err.msg);
	if (rc == IOTP_OK && r.count == 0)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "thing %s not found", name);
	if (rc == IOTP_OK) {
		*out = r.items[0];
		r.count = 0;
	}
	thing_rows_free(&r);
	return rc;
}

/* The type may be given to a thing: exists and, unless it is already the
 * thing's type, is not deprecated. */
static iotp_rc type_usable(struct iotp_core *core, const char *type, const char *current,
                           struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(type)};
	int64_t dep = 0;
	iotp_rc rc;

	if (!reg_name_ok(type))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing type name must match [a-zA-Z0-9:_-]{1,128}");
	rc = store_query_int(core->store, "SELECT deprecated FROM thing_types WHERE name = ?", p, 1,
	                     &dep, err);
	if (rc == IOTP_ERR_NOT_FOUND)
		return iotp_err_set(err, IOTP_ERR_NOT_FOUND, "thing type %s not found", type);
	if (rc != IOTP_OK)
		return rc;
	if (dep && (current == NULL || strcmp(current, type) != 0))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing type %s is deprecated: no thing can be given it", type);
	return IOTP_OK;
}

/* Rewrites the attribute rows of a thing from its attribute object. */
static iotp_rc attrs_rows_write(struct iotp_core *core, const char *thing, const json_t *attrs,
                                int had_rows, struct iotp_err *err)
{
	const char *k;
	json_t *v;
	iotp_rc rc;

	if (had_rows) {
		struct store_val p[] = {SV_TEXT(thing)};

		rc = store_exec(core->store, "DELETE FROM thing_attributes WHERE thing_name = ?", p, 1,
		                NULL, NULL, err);
		if (rc != IOTP_OK)
			return rc;
	}
	json_object_foreach((json_t *)attrs, k, v) {
		struct store_val p[] = {SV_TEXT(thing), SV_TEXT(k), SV_TEXT(json_string_value(v))};

		rc = store_exec(core->store,
		                "INSERT INTO thing_attributes (thing_name, name, value) VALUES (?, ?, ?)",
		                p, 3, NULL, NULL, err);
		if (rc != IOTP_OK)
			return rc;
	}
	return IOTP_OK;
}

iotp_rc registry_thing_create(struct iotp_core *core, const char *actor,
                              const struct registry_thing_spec *in, struct registry_ref *out,
                              struct iotp_err *err)
{
	const char *type = in->type_name != NULL && *in->type_name != '\0' ? in->type_name : NULL;
	struct registry_thing cur = {0};
	struct registry_ref ref = {0};
	json_t *attrs = NULL;
	char *text = NULL;
	int64_t now = util_now();
	int depth0;
	iotp_rc rc;

	if (!reg_name_ok(in->name))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing name must match [a-zA-Z0-9:_-]{1,128}");
	rc = reg_attrs_apply(NULL, in->attributes, 0, type != NULL ? ATTRS_TYPED : ATTRS_UNTYPED,
	                     in->name, &attrs, err);
	if (rc != IOTP_OK)
		return rc;
	if ((rc = reg_json_text(attrs, &text, err)) != IOTP_OK)
		goto done;
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		goto done;
	rc = thing_load(core, in->name, &cur, err);
	if (rc == IOTP_OK) {
		/* Same configuration: AWS answers success with the existing thing. */
		if (strcmp(cur.type_name, type != NULL ? type : "") == 0 &&
		    json_equal(cur.attributes, attrs)) {
			util_strlcpy(ref.name, cur.name, sizeof(ref.name));
			util_strlcpy(ref.id, cur.id, sizeof(ref.id));
			util_strlcpy(ref.arn, cur.arn, sizeof(ref.arn));
		} else {
			rc = iotp_err_set(err, IOTP_ERR_EXISTS,
			                  "thing %s already exists with a different configuration",
			                  in->name);
		}
		goto out;
	}
	if (rc != IOTP_ERR_NOT_FOUND)
		goto out;
	if (type != NULL && (rc = type_usable(core, type, NULL, err)) != IOTP_OK)
		goto out;
	util_strlcpy(ref.name, in->name, sizeof(ref.name));
	if ((rc = util_uuid(ref.id, err)) != IOTP_OK ||
	    (rc = reg_arn(core, "thing", in->name, ref.arn, err)) != IOTP_OK)
		goto out;
	{
		struct store_val p[] = {SV_TEXT(in->name), SV_TEXT(ref.id), SV_TEXT(type),
		                        SV_TEXT(text), SV_INT(now), SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO things (name, id, type_name, attributes, version, created, "
		                "updated) VALUES (?, ?, ?, ?, 1, ?, ?)",
		                p, 6, NULL, NULL, err);
		if (rc == IOTP_ERR_EXISTS)
			rc = iotp_err_set(err, IOTP_ERR_EXISTS, "thing %s already exists", in->name);
		if (rc != IOTP_OK)
			goto out;
	}
	if ((rc = attrs_rows_write(core, in->name, attrs, 0, err)) != IOTP_OK)
		goto out;
	{
		char obj[REGISTRY_NAME_MAX + 8];

		snprintf(obj, sizeof(obj), "thing/%s", in->name);
		rc = reg_event(core, actor, "thing.create", obj,
		               json_pack("{s:s, s:s?, s:i}", "thingName", in->name, "thingTypeName",
		                         type, "attributeCount", (int)json_object_size(attrs)),
		               err);
	}
out:
	rc = reg_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK)
		*out = ref;
done:
	registry_thing_cleanup(&cur);
	json_decref(attrs);
	free(text);
	return rc;
}

iotp_rc registry_thing_describe(struct iotp_core *core, const char *name,
                                struct registry_thing *out, struct iotp_err *err)
{
	if (!reg_name_ok(name))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing name must match [a-zA-Z0-9:_-]{1,128}");
	return thing_load(core, name, out, err);
}

iotp_rc registry_thing_update(struct iotp_core *core, const char *actor,
                              const struct registry_thing_update *in, struct iotp_err *err)
{
	struct registry_thing cur = {0};
	json_t *attrs = NULL;
	char *text = NULL;
	const char *type;
	int depth0;
	iotp_rc rc;

	if (!reg_name_ok(in->name))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing name must match [a-zA-Z0-9:_-]{1,128}");
	if (in->remove_type && in->type_name != NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing %s: removeThingType and thingTypeName are exclusive",
		                    in->name);
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = thing_load(core, in->name, &cur, err)) != IOTP_OK)
		goto out;
	if (in->expected_version != REGISTRY_NO_VERSION && in->expected_version != cur.version) {
		rc = iotp_err_set(err, IOTP_ERR_VERSION,
		                  "thing %s: expected version %lld, current version is %lld", in->name,
		                  (long long)in->expected_version, (long long)cur.version);
		goto out;
	}
	if (in->remove_type)
		type = NULL;
	else if (in->type_name != NULL)
		type = in->type_name;
	else
		type = cur.type_name[0] != '\0' ? cur.type_name : NULL;
	if (type != NULL && in->type_name != NULL &&
	    (rc = type_usable(core, type, cur.type_name, err)) != IOTP_OK)
		goto out;
	rc = reg_attrs_apply(cur.attributes, in->attributes, in->merge,
	                     type != NULL ? ATTRS_TYPED : ATTRS_UNTYPED, in->name, &attrs, err);
	if (rc != IOTP_OK || (rc = reg_json_text(attrs, &text, err)) != IOTP_OK)
		goto out;
	{
		struct store_val p[] = {SV_TEXT(type), SV_TEXT(text), SV_INT(util_now()),
		                        SV_TEXT(in->name), SV_INT(cur.version)};
		int64_t n = 0;

		rc = store_exec_changes(core->store,
		                        "UPDATE things SET type_name = ?, attributes = ?, "
		                        "version = version + 1, updated = ? "
		                        "WHERE name = ? AND version = ?",
		                        p, 5, &n, err);
		if (rc == IOTP_OK && n != 1)
			rc = iotp_err_set(err, IOTP_ERR_VERSION, "thing %s changed meanwhile", in->name);
		if (rc != IOTP_OK)
			goto out;
	}
	if (!json_equal(attrs, cur.attributes) &&
	    (rc = attrs_rows_write(core, in->name, attrs, 1, err)) != IOTP_OK)
		goto out;
	{
		char obj[REGISTRY_NAME_MAX + 8];

		snprintf(obj, sizeof(obj), "thing/%s", in->name);
		rc = reg_event(core, actor, "thing.update", obj,
		               json_pack("{s:s, s:I, s:s?, s:b}", "thingName", in->name, "version",
		                         (json_int_t)(cur.version + 1), "thingTypeName", type,
		                         "attributesChanged", !json_equal(attrs, cur.attributes)),
		               err);
	}
out:
	rc = reg_tx_end(core, depth0, rc, err);
	registry_thing_cleanup(&cur);
	json_decref(attrs);
	free(text);
	return rc;
}

iotp_rc registry_thing_delete(struct iotp_core *core, const char *actor, const char *name,
                              int64_t expected_version, struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	int64_t version = 0;
	int found = 0, depth0;
	iotp_rc rc;

	if (!reg_name_ok(name))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing name must match [a-zA-Z0-9:_-]{1,128}");
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	rc = store_query_int(core->store, "SELECT version FROM things WHERE name = ?", p, 1,
	                     &version, err);
	if (rc == IOTP_ERR_NOT_FOUND) {
		rc = IOTP_OK; /* AWS: deleting an absent thing succeeds */
		goto out;
	}
	if (rc != IOTP_OK)
		goto out;
	if (expected_version != REGISTRY_NO_VERSION && expected_version != version) {
		rc = iotp_err_set(err, IOTP_ERR_VERSION,
		                  "thing %s: expected version %lld, current version is %lld", name,
		                  (long long)expected_version, (long long)version);
		goto out;
	}
	rc = reg_exists(core, "SELECT 1 FROM thing_principals WHERE thing_name = ? LIMIT 1", p, 1,
	                &found, err);
	if (rc != IOTP_OK)
		goto out;
	if (found) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID,
		                  "Cannot delete. Thing %s is still attached to one or more "
		                  "principals",
		                  name);
		goto out;
	}
	if ((rc = store_exec(core->store, "DELETE FROM thing_attributes WHERE thing_name = ?", p, 1,
	                     NULL, NULL, err)) != IOTP_OK ||
	    (rc = store_exec(core->store, "DELETE FROM thing_group_members WHERE thing_name = ?", p,
	                     1, NULL, NULL, err)) != IOTP_OK ||
	    (rc = store_exec(core->store, "DELETE FROM things WHERE name = ?", p, 1, NULL, NULL,
	                     err)) != IOTP_OK)
		goto out;
	{
		char obj[REGISTRY_NAME_MAX + 8];

		snprintf(obj, sizeof(obj), "thing/%s", name);
		rc = reg_event(core, actor, "thing.delete", obj,
		               json_pack("{s:s, s:I}", "thingName", name, "version",
		                         (json_int_t)version),
		               err);
	}
out:
	return reg_tx_end(core, depth0, rc, err);
}

static int attr_filter_ok(const char *s, size_t min, size_t max)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
		      (s[n] >= '0' && s[n] <= '9') || strchr("_.,@/:#-", s[n]) != NULL) ||
		    n >= max)
			return 0;
	return n >= min;
}

iotp_rc registry_thing_list(struct iotp_core *core, const struct registry_thing_filter *filter,
                            const struct registry_page *page, struct registry_thing_list *out,
                            struct iotp_err *err)
{
	static const struct registry_thing_filter none = {0};
	const struct registry_thing_filter *f = filter != NULL ? filter : &none;
	struct thing_rows r = {.core = core};
	struct store_val p[8];
	char sql[640], *key = NULL, *upper = NULL, *token = NULL;
	int np = 0, max;
	size_t n;
	iotp_rc rc;

	if (f->attribute_value != NULL && f->attribute_name == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "attributeValue needs attributeName");
	if (f->attribute_name != NULL && !attr_filter_ok(f->attribute_name, 1, 128))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "attributeName must match [a-zA-Z0-9_.,@/:#-]{1,128}");
	if (f->attribute_value != NULL && !attr_filter_ok(f->attribute_value, 0, 800))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "attributeValue must match [a-zA-Z0-9_.,@/:#-]{0,800}");
	if (f->type_name != NULL && !reg_name_ok(f->type_name))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thingTypeName must match [a-zA-Z0-9:_-]{1,128}");
	if ((rc = reg_page_open(page, 't', REGISTRY_PAGE_DEFAULT, &max, &key, err)) != IOTP_OK)
		return rc;

	n = (size_t)snprintf(sql, sizeof(sql), "SELECT " THING_COLS " FROM things t");
	if (f->attribute_name != NULL) {
		n += (size_t)snprintf(sql + n, sizeof(sql) - n,
		                      " JOIN thing_attributes a ON a.thing_name = t.name AND a.name = ?");
		p[np++] = SV_TEXT(f->attribute_name);
		if (f->attribute_value != NULL && !f->use_prefix) {
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND a.value = ?");
			p[np++] = SV_TEXT(f->attribute_value);
		} else if (f->attribute_value != NULL && *f->attribute_value != '\0') {
			/* Values use ASCII below 0x7f only, so [v, v + 0x7f) is the
			 * set of values starting with v: an index range. */
			size_t vl = strlen(f->attribute_value);

			upper = malloc(vl + 2);
			if (upper == NULL) {
				rc = iotp_err_set(err, IOTP_ERR_NOMEM, "list things: out of memory");
				goto out;
			}
			memcpy(upper, f->attribute_value, vl);
			upper[vl] = 0x7f;
			upper[vl + 1] = '\0';
			n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND a.value >= ? AND a.value < ?");
			p[np++] = SV_TEXT(f->attribute_value);
			p[np++] = SV_TEXT(upper);
		}
	}
	/* With an attribute filter, key and order on the attribute row's copy
	 * of the name, so that its index also gives the order. */
	n += (size_t)snprintf(sql + n, sizeof(sql) - n, " WHERE %s > ?",
	                      f->attribute_name != NULL ? "a.thing_name" : "t.name");
	p[np++] = SV_TEXT(key != NULL ? key : "");
	if (f->type_name != NULL) {
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND t.type_name = ?");
		p[np++] = SV_TEXT(f->type_name);
	}
	snprintf(sql + n, sizeof(sql) - n, " ORDER BY %s LIMIT ?",
	         f->attribute_name != NULL ? "a.thing_name" : "t.name");
	p[np++] = SV_INT(max + 1);

	rc = store_exec(core->store, sql, p, np, thing_row, &r, err);
	if (rc == IOTP_OK && r.rc != IOTP_OK)
		rc = iotp_err_set(err, r.rc, "%s", r.err.msg);
	if (rc != IOTP_OK)
		goto out;
	if (r.count > (size_t)max) {
		if ((rc = reg_page_token('t', r.items[max - 1].name, &token, err)) != IOTP_OK)
			goto out;
		while (r.count > (size_t)max)
			registry_thing_cleanup(&r.items[--r.count]);
	}
	out->items = r.items;
	out->count = r.count;
	out->next_token = token;
	r.items = NULL;
	r.count = 0;
out:
	thing_rows_free(&r);
	free(key);
	free(upper);
	return rc;
}

/* ---- principals ---- */

/* "cert/<lowercase id>" from a certificate ARN or resource part. */
static iotp_rc principal_resource(const char *principal, char out[PKI_CERT_ID_LEN + 6],
                                  struct iotp_err *err)
{
	const char *res = reg_resource(principal);
	char id[PKI_CERT_ID_LEN + 1];

	if (res == NULL || strncmp(res, "cert/", 5) != 0)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "principal must be a certificate ARN (arn:aws:iot:...:cert/<id>)");
	if (reg_cert_id_norm(res + 5, id, "certificate", err) != IOTP_OK)
		return IOTP_ERR_INVALID;
	snprintf(out, PKI_CERT_ID_LEN + 6, "cert/%s", id);
	return IOTP_OK;
}

static iotp_rc thing_must_exist(struct iotp_core *core, const char *name, struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	int found = 0;
	iotp_rc rc;

	if (!reg_name_ok(name))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing name must match [a-zA-Z0-9:_-]{1,128}");
	rc = reg_exists(core, "SELECT 1 FROM things WHERE name = ?", p, 1, &found, err);
	if (rc == IOTP_OK && !found)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "thing %s not found", name);
	return rc;
}

static iotp_rc cert_must_exist(struct iotp_core *core, const char *res, struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(res + 5)};
	int found = 0;
	iotp_rc rc;

	rc = reg_exists(core, "SELECT 1 FROM certificates WHERE id = ?", p, 1, &found, err);
	if (rc == IOTP_OK && !found)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "certificate %s not found", res + 5);
	return rc;
}

static iotp_rc principal_change(struct iotp_core *core, const char *actor, const char *thing,
                                const char *principal, int attach, struct iotp_err *err)
{
	char res[PKI_CERT_ID_LEN + 6];
	int64_t n = 0;
	int depth0;
	iotp_rc rc;

	if ((rc = principal_resource(principal, res, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = thing_must_exist(core, thing, err)) != IOTP_OK)
		goto out;
	if (attach && (rc = cert_must_exist(core, res, err)) != IOTP_OK)
		goto out;
	{
		struct store_val p[] = {SV_TEXT(thing), SV_TEXT(res)};

		rc = store_exec_changes(core->store,
		                        attach ? "INSERT INTO thing_principals (thing_name, principal) "
		                                 "VALUES (?, ?) ON CONFLICT DO NOTHING"
		                               : "DELETE FROM thing_principals "
		                                 "WHERE thing_name = ? AND principal = ?",
		                        p, 2, &n, err);
		if (rc != IOTP_OK || n == 0)
			goto out;
	}
	{
		char obj[REGISTRY_NAME_MAX + 8];

		snprintf(obj, sizeof(obj), "thing/%s", thing);
		rc = reg_event(core, actor, attach ? "thing.attach_principal" : "thing.detach_principal",
		               obj, json_pack("{s:s, s:s}", "thingName", thing, "principal", res), err);
	}
out:
	return reg_tx_end(core, depth0, rc, err);
}

iotp_rc registry_thing_attach_principal(struct iotp_core *core, const char *actor,
                                        const char *thing_name, const char *principal,
                                        struct iotp_err *err)
{
	return principal_change(core, actor, thing_name, principal, 1, err);
}

iotp_rc registry_thing_detach_principal(struct iotp_core *core, const char *actor,
                                        const char *thing_name, const char *principal,
                                        struct iotp_err *err)
{
	return principal_change(core, actor, thing_name, principal, 0, err);
}

iotp_rc registry_thing_list_principals(struct iotp_core *core, const char *thing_name,
                                       const struct registry_page *page,
                                       struct registry_str_list *out, struct iotp_err *err)
{
	struct reg_strs s = {0};
	char *key = NULL;
	int max;
	iotp_rc rc;

	if ((rc = thing_must_exist(core, thing_name, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_page_open(page, 'p', REGISTRY_PAGE_DEFAULT, &max, &key, err)) != IOTP_OK)
		return rc;
	{
		struct store_val p[] = {SV_TEXT(thing_name), SV_TEXT(key != NULL ? key : ""),
		                        SV_INT(max + 1)};

		rc = store_exec(core->store,
		                "SELECT principal FROM thing_principals WHERE thing_name = ? "
		                "AND principal > ? ORDER BY principal LIMIT ?",
		                p, 3, reg_strs_row, &s, err);
	}
	if (rc == IOTP_OK)
		rc = reg_strs_finish(core, &s, 'p', max, 1, out, err);
	reg_strs_free(&s);
	free(key);
	return rc;
}

iotp_rc registry_principal_list_things(struct iotp_core *core, const char *principal,
                                       const struct registry_page *page,
                                       struct registry_str_list *out, struct iotp_err *err)
{
	char res[PKI_CERT_ID_LEN + 6];
	struct reg_strs s = {0};
	char *key = NULL;
	int max;
	iotp_rc rc;

	if ((rc = principal_resource(principal, res, err)) != IOTP_OK ||
	    (rc = cert_must_exist(core, res, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_page_open(page, 'h', REGISTRY_PAGE_DEFAULT, &max, &key, err)) != IOTP_OK)
		return rc;
	{
		struct store_val p[] = {SV_TEXT(res), SV_TEXT(key != NULL ? key : ""), SV_INT(max + 1)};

		rc = store_exec(core->store,
		                "SELECT thing_name FROM thing_principals WHERE principal = ? "
		                "AND thing_name > ? ORDER BY thing_name LIMIT ?",
		                p, 3, reg_strs_row, &s, err);
	}
	if (rc == IOTP_OK)
		rc = reg_strs_finish(core, &s, 'h', max, 0, out, err);
	reg_strs_free(&s);
	free(key);
	return rc;
}
