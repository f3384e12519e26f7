/*
 * Thing types (see registry.h): create, describe, list, deprecate and
 * delete. A type is only a label with searchable attribute names here; what
 * it changes for things (the attribute limit, no new things on a deprecated
 * type) is enforced in registry_thing.c.
 */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/registry_internal.h"

#define TYPE_COLS "name, id, description, searchable_attributes, deprecated, deprecated_at, created"
#define SEARCHABLE_MAX 3

struct type_rows {
	struct iotp_core *core;
	struct registry_thing_type *items;
	size_t count;
	iotp_rc rc;
	struct iotp_err err;
};

static int type_row(void *ud, const struct store_row *row)
{
	struct type_rows *r = ud;
	struct registry_thing_type *t;
	int failed = 0;

	if (reg_grow((void **)&r->items, &r->count, sizeof(*r->items)) != IOTP_OK) {
		r->rc = iotp_err_set(&r->err, IOTP_ERR_NOMEM, "thing types: out of memory");
		return 1;
	}
	t = &r->items[r->count - 1];
	reg_col_copy(row, 0, t->name, sizeof(t->name));
	reg_col_copy(row, 1, t->id, sizeof(t->id));
	t->description = reg_col_dup(row, 2, &failed);
	t->deprecated = reg_col_int(row, 4) != 0;
	t->deprecation_date = reg_col_int(row, 5);
	t->created = reg_col_int(row, 6);
	if (failed) {
		r->rc = iotp_err_set(&r->err, IOTP_ERR_NOMEM, "thing types: out of memory");
		return 1;
	}
	if (reg_col_str(row, 3) == NULL)
		t->searchable_attributes = json_array();
	else if ((r->rc = reg_json_parse(reg_col_str(row, 3), &t->searchable_attributes,
	                                 &r->err)) != IOTP_OK)
		return 1;
	if (!json_is_array(t->searchable_attributes)) {
		r->rc = iotp_err_set(&r->err, IOTP_ERR_DB, "thing type %s: bad searchable attributes",
		                     t->name);
		return 1;
	}
	r->rc = reg_arn(r->core, "thingtype", t->name, t->arn, &r->err);
	return r->rc != IOTP_OK;
}

void registry_thing_type_cleanup(struct registry_thing_type *t)
{
	if (t == NULL)
		return;
	free(t->description);
	json_decref(t->searchable_attributes);
	memset(t, 0, sizeof(*t));
}

void registry_thing_type_list_cleanup(struct registry_thing_type_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->count; i++)
		registry_thing_type_cleanup(&l->items[i]);
	free(l->items);
	free(l->next_token);
	memset(l, 0, sizeof(*l));
}

static void type_rows_free(struct type_rows *r)
{
	for (size_t i = 0; i < r->count; i++)
		registry_thing_type_cleanup(&r->items[i]);
	free(r->items);
	r->items = NULL;
	r->count = 0;
}

static iotp_rc check_name(const char *name, struct iotp_err *err)
{
	if (!reg_name_ok(name))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing type name must match [a-zA-Z0-9:_-]{1,128}");
	return IOTP_OK;
}

static iotp_rc check_searchable(const json_t *a, struct iotp_err *err)
{
	size_t i;
	json_t *v;

	if (a == NULL)
		return IOTP_OK;
	if (!json_is_array(a))
		return iotp_err_set(err, IOTP_ERR_INVALID, "searchableAttributes must be a list");
	if (json_array_size(a) > SEARCHABLE_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "at most %d searchable attributes are allowed", SEARCHABLE_MAX);
	json_array_foreach(a, i, v) {
		const char *s = json_string_value(v);
		size_t n;

		if (s == NULL || (n = strlen(s)) == 0 || n > 128 ||
		    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		              "_.,@/:#-") != n)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "searchable attribute names must match "
			                    "[a-zA-Z0-9_.,@/:#-]{1,128}");
	}
	return IOTP_OK;
}

iotp_rc registry_thing_type_create(struct iotp_core *core, const char *actor,
                                   const struct registry_thing_type_spec *in,
                                   struct registry_ref *out, struct iotp_err *err)
{
	struct registry_ref ref = {0};
	char *sa = NULL, obj[REGISTRY_ARN_MAX];
	int depth0;
	iotp_rc rc;

	if ((rc = check_name(in->name, err)) != IOTP_OK ||
	    (rc = check_searchable(in->searchable_attributes, err)) != IOTP_OK)
		return rc;
	if (in->description != NULL && !reg_desc_ok(in->description))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing type description: at most 2028 printable characters");
	if (in->searchable_attributes != NULL &&
	    (rc = reg_json_text(in->searchable_attributes, &sa, err)) != IOTP_OK)
		return rc;
	util_strlcpy(ref.name, in->name, sizeof(ref.name));
	if ((rc = util_uuid(ref.id, err)) != IOTP_OK ||
	    (rc = reg_arn(core, "thingtype", in->name, ref.arn, err)) != IOTP_OK) {
		free(sa);
		return rc;
	}
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK) {
		free(sa);
		return rc;
	}
	{
		struct store_val p[] = {SV_TEXT(in->name), SV_TEXT(ref.id), SV_TEXT(in->description),
		                        SV_TEXT(sa), SV_INT(util_now())};

		rc = store_exec(core->store,
		                "INSERT INTO thing_types (name, id, description, searchable_attributes, "
		                "deprecated, created) VALUES (?, ?, ?, ?, 0, ?)",
		                p, 5, NULL, NULL, err);
		if (rc == IOTP_ERR_EXISTS)
			rc = iotp_err_set(err, IOTP_ERR_EXISTS, "thing type %s already exists", in->name);
		if (rc != IOTP_OK)
			goto out;
	}
	reg_object("thingtype", in->name, obj);
	rc = reg_event(core, actor, "thingtype.create", obj,
	               json_pack("{s:s}", "thingTypeName", in->name), err);
out:
	rc = reg_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK)
		*out = ref;
	free(sa);
	return rc;
}

iotp_rc registry_thing_type_describe(struct iotp_core *core, const char *name,
                                     struct registry_thing_type *out, struct iotp_err *err)
{
	struct type_rows r = {.core = core};
	struct store_val p[] = {SV_TEXT(name)};
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	rc = store_exec(core->store, "SELECT " TYPE_COLS " FROM thing_types WHERE name = ?", p, 1,
	                type_row, &r, err);
	if (rc == IOTP_OK && r.rc != IOTP_OK)
		rc = iotp_err_set(err, r.rc, "%s", r.err.msg);
	if (rc == IOTP_OK && r.count == 0)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "thing type %s not found", name);
	if (rc == IOTP_OK) {
		*out = r.items[0];
		r.count = 0;
	}
	type_rows_free(&r);
	return rc;
}

iotp_rc registry_thing_type_list(struct iotp_core *core, const char *name_filter,
                                 const struct registry_page *page,
                                 struct registry_thing_type_list *out, struct iotp_err *err)
{
	struct type_rows r = {.core = core};
	char *key = NULL, *token = NULL;
	int max;
	iotp_rc rc;

	if (name_filter != NULL && (rc = check_name(name_filter, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_page_open(page, 'y', REGISTRY_PAGE_DEFAULT, &max, &key, err)) != IOTP_OK)
		return rc;
	if (name_filter != NULL) {
		struct store_val p[] = {SV_TEXT(key != NULL ? key : ""), SV_TEXT(name_filter),
		                        SV_INT(max + 1)};

		rc = store_exec(core->store,
		                "SELECT " TYPE_COLS " FROM thing_types WHERE name > ? AND name = ? "
		                "ORDER BY name LIMIT ?",
		                p, 3, type_row, &r, err);
	} else {
		struct store_val p[] = {SV_TEXT(key != NULL ? key : ""), SV_INT(max + 1)};

		rc = store_exec(core->store,
		                "SELECT " TYPE_COLS " FROM thing_types WHERE name > ? "
		                "ORDER BY name LIMIT ?",
		                p, 2, type_row, &r, err);
	}
	if (rc == IOTP_OK && r.rc != IOTP_OK)
		rc = iotp_err_set(err, r.rc, "%s", r.err.msg);
	if (rc != IOTP_OK)
		goto out;
	if (r.count > (size_t)max) {
		if ((rc = reg_page_token('y', r.items[max - 1].name, &token, err)) != IOTP_OK)
			goto out;
		while (r.count > (size_t)max)
			registry_thing_type_cleanup(&r.items[--r.count]);
	}
	out->items = r.items;
	out->count = r.count;
	out->next_token = token;
	r.items = NULL;
	r.count = 0;
out:
	type_rows_free(&r);
	free(key);
	return rc;
}

iotp_rc registry_thing_type_deprecate(struct iotp_core *core, const char *actor,
                                      const char *name, int undo, struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	char obj[REGISTRY_ARN_MAX];
	int64_t dep = 0, n = 0;
	int depth0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	rc = store_query_int(core->store, "SELECT deprecated FROM thing_types WHERE name = ?", p, 1,
	                     &dep, err);
	if (rc == IOTP_ERR_NOT_FOUND)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "thing type %s not found", name);
	if (rc != IOTP_OK || (dep != 0) == !undo)
		goto out; /* error, or already in the wanted state */
	if (undo) {
		rc = store_exec_changes(core->store,
		                        "UPDATE thing_types SET deprecated = 0, deprecated_at = NULL "
		                        "WHERE name = ?",
		                        p, 1, &n, err);
	} else {
		struct store_val q[] = {SV_INT(util_now()), SV_TEXT(name)};

		rc = store_exec_changes(core->store,
		                        "UPDATE thing_types SET deprecated = 1, deprecated_at = ? "
		                        "WHERE name = ?",
		                        q, 2, &n, err);
	}
	if (rc != IOTP_OK)
		goto out;
	reg_object("thingtype", name, obj);
	rc = reg_event(core, actor, undo ? "thingtype.undeprecate" : "thingtype.deprecate", obj,
	               json_pack("{s:s}", "thingTypeName", name), err);
out:
	return reg_tx_end(core, depth0, rc, err);
}

iotp_rc registry_thing_type_delete(struct iotp_core *core, const char *actor,
                                   const char *name, struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	char obj[REGISTRY_ARN_MAX];
	int64_t dep = 0;
	int used = 0, depth0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	rc = store_query_int(core->store, "SELECT deprecated FROM thing_types WHERE name = ?", p, 1,
	                     &dep, err);
	if (rc == IOTP_ERR_NOT_FOUND)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "thing type %s not found", name);
	if (rc != IOTP_OK)
		goto out;
	if (!dep) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID,
		                  "thing type %s must be deprecated before it is deleted", name);
		goto out;
	}
	rc = reg_exists(core, "SELECT 1 FROM things WHERE type_name = ? LIMIT 1", p, 1, &used, err);
	if (rc != IOTP_OK)
		goto out;
	if (used) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID,
		                  "thing type %s still has things: change their type first", name);
		goto out;
	}
	if ((rc = store_exec(core->store, "DELETE FROM thing_types WHERE name = ?", p, 1, NULL,
	                     NULL, err)) != IOTP_OK)
		goto out;
	reg_object("thingtype", name, obj);
	rc = reg_event(core, actor, "thingtype.delete", obj,
	               json_pack("{s:s}", "thingTypeName", name), err);
out:
	return reg_tx_end(core, depth0, rc, err);
}
