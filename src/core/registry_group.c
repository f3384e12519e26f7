/*
 * Static thing groups (see registry.h): a forest whose parent links are set
 * once at creation, so no update can make a cycle; hierarchy walks are
 * recursive CTEs (portable to SQLite and PostgreSQL), bounded by the depth
 * limit. Memberships link things to groups; policies attached to a group
 * apply to the things of the group and of every group below it.
 */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/registry_internal.h"

#define GROUP_COLS "name, id, parent_name, description, attributes, version, created"
#define GROUP_ATTRS_MAX 50

/* Ancestors of a group, root first, the group itself last. */
#define ANCESTORS_SQL \
	"WITH RECURSIVE anc(name, parent_name, lvl) AS (" \
	" SELECT name, parent_name, 0 FROM thing_groups WHERE name = ?" \
	" UNION ALL" \
	" SELECT g.name, g.parent_name, anc.lvl + 1 FROM thing_groups g" \
	" JOIN anc ON g.name = anc.parent_name WHERE anc.lvl < 32" \
	") SELECT name FROM anc ORDER BY lvl DESC"

/* Descendants of a group (not the group itself). */
#define DESCENDANTS_CTE \
	"WITH RECURSIVE d(name, lvl) AS (" \
	" SELECT name, 1 FROM thing_groups WHERE parent_name = ?" \
	" UNION ALL" \
	" SELECT g.name, d.lvl + 1 FROM thing_groups g JOIN d ON g.parent_name = d.name" \
	" WHERE d.lvl < 32) "

static iotp_rc check_name(const char *name, struct iotp_err *err)
{
	if (!reg_name_ok(name))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing group name must match [a-zA-Z0-9:_-]{1,128}");
	return IOTP_OK;
}

static iotp_rc group_must_exist(struct iotp_core *core, const char *name, struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	int found = 0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	rc = reg_exists(core, "SELECT 1 FROM thing_groups WHERE name = ?", p, 1, &found, err);
	if (rc == IOTP_OK && !found)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "thing group %s not found", name);
	return rc;
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

/* Ancestors as refs, root first, the named group last. */
static iotp_rc ancestors(struct iotp_core *core, const char *name, struct reg_refs *r,
                         struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	iotp_rc rc;

	r->core = core;
	r->kind = "thinggroup";
	rc = store_exec(core->store, ANCESTORS_SQL, p, 1, reg_refs_row, r, err);
	if (rc == IOTP_OK && r->rc != IOTP_OK)
		rc = iotp_err_set(err, r->rc, "%s", r->err.msg);
	return rc;
}

void registry_thing_group_cleanup(struct registry_thing_group *g)
{
	if (g == NULL)
		return;
	free(g->description);
	json_decref(g->attributes);
	free(g->root_to_parent);
	memset(g, 0, sizeof(*g));
}

iotp_rc registry_thing_group_create(struct iotp_core *core, const char *actor,
                                    const struct registry_thing_group_spec *in,
                                    struct registry_ref *out, struct iotp_err *err)
{
	const char *parent = in->parent_name != NULL && *in->parent_name != '\0' ? in->parent_name
	                                                                         : NULL;
	struct reg_refs anc = {0};
	struct registry_ref ref = {0};
	json_t *attrs = NULL;
	char *text = NULL, obj[REGISTRY_ARN_MAX];
	int64_t now = util_now();
	int depth0;
	iotp_rc rc;

	if ((rc = check_name(in->name, err)) != IOTP_OK)
		return rc;
	if (in->description != NULL && !reg_desc_ok(in->description))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing group description: at most 2028 printable characters");
	if ((rc = reg_attrs_apply(NULL, in->attributes, 0, GROUP_ATTRS_MAX, in->name, &attrs,
	                          err)) != IOTP_OK)
		return rc;
	if ((rc = reg_json_text(attrs, &text, err)) != IOTP_OK)
		goto done;
	util_strlcpy(ref.name, in->name, sizeof(ref.name));
	if ((rc = util_uuid(ref.id, err)) != IOTP_OK ||
	    (rc = reg_arn(core, "thinggroup", in->name, ref.arn, err)) != IOTP_OK)
		goto done;
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		goto done;
	if (parent != NULL) {
		if ((rc = group_must_exist(core, parent, err)) != IOTP_OK ||
		    (rc = ancestors(core, parent, &anc, err)) != IOTP_OK)
			goto out;
		if (anc.count + 1 > REGISTRY_GROUP_MAX_DEPTH) {
			rc = iotp_err_set(err, IOTP_ERR_LIMIT,
			                  "thing group %s: a hierarchy is at most %d levels deep",
			                  in->name, REGISTRY_GROUP_MAX_DEPTH);
			goto out;
		}
	}
	{
		struct store_val p[] = {SV_TEXT(in->name), SV_TEXT(ref.id), SV_TEXT(parent),
		                        SV_TEXT(in->description), SV_TEXT(text), SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO thing_groups (name, id, parent_name, description, "
		                "attributes, version, created) VALUES (?, ?, ?, ?, ?, 1, ?)",
		                p, 6, NULL, NULL, err);
		if (rc == IOTP_ERR_EXISTS)
			rc = iotp_err_set(err, IOTP_ERR_EXISTS, "thing group %s already exists", in->name);
		if (rc != IOTP_OK)
			goto out;
	}
	reg_object("thinggroup", in->name, obj);
	rc = reg_event(core, actor, "thinggroup.create", obj,
	               json_pack("{s:s, s:s?}", "thingGroupName", in->name, "parentGroupName",
	                         parent),
	               err);
out:
	rc = reg_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK)
		*out = ref;
done:
	free(anc.items);
	json_decref(attrs);
	free(text);
	return rc;
}

struct group_row {
	struct registry_thing_group g;
	int found;
	iotp_rc rc;
	struct iotp_err err;
};

static int group_row_fn(void *ud, const struct store_row *row)
{
	struct group_row *r = ud;
	int failed = 0;

	r->found = 1;
	reg_col_copy(row, 0, r->g.name, sizeof(r->g.name));
	reg_col_copy(row, 1, r->g.id, sizeof(r->g.id));
	reg_col_copy(row, 2, r->g.parent_name, sizeof(r->g.parent_name));
	r->g.description = reg_col_dup(row, 3, &failed);
	r->g.version = reg_col_int(row, 5);
	r->g.created = reg_col_int(row, 6);
	if (failed)
		r->rc = iotp_err_set(&r->err, IOTP_ERR_NOMEM, "thing group: out of memory");
	else
		r->rc = reg_json_parse(reg_col_str(row, 4), &r->g.attributes, &r->err);
	if (r->rc == IOTP_OK && !json_is_object(r->g.attributes))
		r->rc = iotp_err_set(&r->err, IOTP_ERR_DB, "thing group %s: bad attributes", r->g.name);
	return 1;
}

static iotp_rc group_load(struct iotp_core *core, const char *name, struct group_row *r,
                          struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	iotp_rc rc;

	rc = store_exec(core->store, "SELECT " GROUP_COLS " FROM thing_groups WHERE name = ?", p, 1,
	                group_row_fn, r, err);
	if (rc == IOTP_OK && r->rc != IOTP_OK)
		rc = iotp_err_set(err, r->rc, "%s", r->err.msg);
	if (rc == IOTP_OK && !r->found)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "thing group %s not found", name);
	return rc;
}

iotp_rc registry_thing_group_describe(struct iotp_core *core, const char *name,
                                      struct registry_thing_group *out, struct iotp_err *err)
{
	struct group_row r = {0};
	struct reg_refs anc = {0};
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	if ((rc = group_load(core, name, &r, err)) != IOTP_OK)
		goto out;
	if ((rc = reg_arn(core, "thinggroup", r.g.name, r.g.arn, err)) != IOTP_OK)
		goto out;
	if (r.g.parent_name[0] != '\0') {
		if ((rc = ancestors(core, r.g.parent_name, &anc, err)) != IOTP_OK)
			goto out;
		r.g.root_to_parent = anc.items;
		r.g.root_to_parent_count = anc.count;
		anc.items = NULL;
	}
	*out = r.g;
	memset(&r.g, 0, sizeof(r.g));
out:
	free(anc.items);
	registry_thing_group_cleanup(&r.g);
	return rc;
}

iotp_rc registry_thing_group_update(struct iotp_core *core, const char *actor,
                                    const struct registry_thing_group_update *in,
                                    int64_t *new_version, struct iotp_err *err)
{
	struct group_row r = {0};
	json_t *attrs = NULL;
	char *text = NULL, obj[REGISTRY_ARN_MAX];
	const char *desc;
	int depth0;
	iotp_rc rc;

	if ((rc = check_name(in->name, err)) != IOTP_OK)
		return rc;
	if (in->description != NULL && !reg_desc_ok(in->description))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thing group description: at most 2028 printable characters");
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = group_load(core, in->name, &r, err)) != IOTP_OK)
		goto out;
	if (in->expected_version != REGISTRY_NO_VERSION && in->expected_version != r.g.version) {
		rc = iotp_err_set(err, IOTP_ERR_VERSION,
		                  "thing group %s: expected version %lld, current version is %lld",
		                  in->name, (long long)in->expected_version, (long long)r.g.version);
		goto out;
	}
	rc = reg_attrs_apply(r.g.attributes, in->attributes, in->merge, GROUP_ATTRS_MAX, in->name,
	                     &attrs, err);
	if (rc != IOTP_OK || (rc = reg_json_text(attrs, &text, err)) != IOTP_OK)
		goto out;
	if (in->description == NULL)
		desc = r.g.description;
	else
		desc = *in->description != '\0' ? in->description : NULL;
	{
		struct store_val p[] = {SV_TEXT(desc), SV_TEXT(text), SV_TEXT(in->name),
		                        SV_INT(r.g.version)};
		int64_t n = 0;

		rc = store_exec_changes(core->store,
		                        "UPDATE thing_groups SET description = ?, attributes = ?, "
		                        "version = version + 1 WHERE name = ? AND version = ?",
		                        p, 4, &n, err);
		if (rc == IOTP_OK && n != 1)
			rc = iotp_err_set(err, IOTP_ERR_VERSION, "thing group %s changed meanwhile",
			                  in->name);
		if (rc != IOTP_OK)
			goto out;
	}
	reg_object("thinggroup", in->name, obj);
	rc = reg_event(core, actor, "thinggroup.update", obj,
	               json_pack("{s:s, s:I}", "thingGroupName", in->name, "version",
	                         (json_int_t)(r.g.version + 1)),
	               err);
out:
	rc = reg_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK && new_version != NULL)
		*new_version = r.g.version + 1;
	registry_thing_group_cleanup(&r.g);
	json_decref(attrs);
	free(text);
	return rc;
}

iotp_rc registry_thing_group_delete(struct iotp_core *core, const char *actor,
                                    const char *name, int64_t expected_version,
                                    struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	char target[REGISTRY_ARN_MAX];
	int64_t version = 0, members = 0, policies = 0;
	int children = 0, depth0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	reg_object("thinggroup", name, target);
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	rc = store_query_int(core->store, "SELECT version FROM thing_groups WHERE name = ?", p, 1,
	                     &version, err);
	if (rc == IOTP_ERR_NOT_FOUND) {
		rc = IOTP_OK; /* absent: nothing to do, as AWS */
		goto out;
	}
	if (rc != IOTP_OK)
		goto out;
	if (expected_version != REGISTRY_NO_VERSION && expected_version != version) {
		rc = iotp_err_set(err, IOTP_ERR_VERSION,
		                  "thing group %s: expected version %lld, current version is %lld",
		                  name, (long long)expected_version, (long long)version);
		goto out;
	}
	rc = reg_exists(core, "SELECT 1 FROM thing_groups WHERE parent_name = ? LIMIT 1", p, 1,
	                &children, err);
	if (rc != IOTP_OK)
		goto out;
	if (children) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID,
		                  "Cannot delete thing group %s: it has child groups", name);
		goto out;
	}
	{
		struct store_val t[] = {SV_TEXT(target)};

		if ((rc = store_exec_changes(core->store,
		                             "DELETE FROM thing_group_members WHERE group_name = ?", p, 1,
		                             &members, err)) != IOTP_OK ||
		    (rc = store_exec_changes(core->store, "DELETE FROM policy_targets WHERE target = ?",
		                             t, 1, &policies, err)) != IOTP_OK ||
		    (rc = store_exec(core->store, "DELETE FROM thing_groups WHERE name = ?", p, 1, NULL,
		                     NULL, err)) != IOTP_OK)
			goto out;
	}
	rc = reg_event(core, actor, "thinggroup.delete", target,
	               json_pack("{s:s, s:I, s:I}", "thingGroupName", name, "removedThings",
	                         (json_int_t)members, "detachedPolicies", (json_int_t)policies),
	               err);
out:
	return reg_tx_end(core, depth0, rc, err);
}

iotp_rc registry_thing_group_list(struct iotp_core *core,
                                  const struct registry_thing_group_filter *filter,
                                  const struct registry_page *page,
                                  struct registry_ref_list *out, struct iotp_err *err)
{
	static const struct registry_thing_group_filter none = {NULL, NULL, -1};
	const struct registry_thing_group_filter *f = filter != NULL ? filter : &none;
	struct reg_refs r = {.core = core, .kind = "thinggroup"};
	struct store_val p[6];
	char sql[768], *key = NULL, *upper = NULL;
	int np = 0, max;
	size_t n = 0;
	iotp_rc rc;

	if (f->parent_name != NULL && (rc = group_must_exist(core, f->parent_name, err)) != IOTP_OK)
		return rc;
	if (f->name_prefix != NULL && (rc = check_name(f->name_prefix, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_page_open(page, 'g', REGISTRY_PAGE_DEFAULT, &max, &key, err)) != IOTP_OK)
		return rc;
	if (f->parent_name != NULL && f->recursive == 1) {
		n = (size_t)snprintf(sql, sizeof(sql), DESCENDANTS_CTE "SELECT name FROM d WHERE name > ?");
		p[np++] = SV_TEXT(f->parent_name);
	} else if (f->parent_name != NULL) {
		n = (size_t)snprintf(sql, sizeof(sql),
		                     "SELECT name FROM thing_groups WHERE parent_name = ? AND name > ?");
		p[np++] = SV_TEXT(f->parent_name);
	} else if (f->recursive == 0) {
		n = (size_t)snprintf(sql, sizeof(sql),
		                     "SELECT name FROM thing_groups WHERE parent_name IS NULL "
		                     "AND name > ?");
	} else {
		n = (size_t)snprintf(sql, sizeof(sql), "SELECT name FROM thing_groups WHERE name > ?");
	}
	p[np++] = SV_TEXT(key != NULL ? key : "");
	if (f->name_prefix != NULL) {
		/* Names are ASCII below 0x7f: [prefix, prefix + 0x7f) is the range. */
		size_t pl = strlen(f->name_prefix);

		if ((upper = malloc(pl + 2)) == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "list thing groups: out of memory");
			goto out;
		}
		memcpy(upper, f->name_prefix, pl);
		upper[pl] = 0x7f;
		upper[pl + 1] = '\0';
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, " AND name >= ? AND name < ?");
		p[np++] = SV_TEXT(f->name_prefix);
		p[np++] = SV_TEXT(upper);
	}
	snprintf(sql + n, sizeof(sql) - n, " ORDER BY name LIMIT ?");
	p[np++] = SV_INT(max + 1);
	if ((rc = store_exec(core->store, sql, p, np, reg_refs_row, &r, err)) != IOTP_OK)
		goto out;
	rc = reg_refs_finish(&r, 'g', max, out, err);
out:
	free(r.items);
	free(key);
	free(upper);
	return rc;
}

static iotp_rc membership(struct iotp_core *core, const char *actor, const char *group,
                          const char *thing, int add, struct iotp_err *err)
{
	char obj[REGISTRY_ARN_MAX];
	int64_t n = 0;
	int depth0, member = 0;
	iotp_rc rc;

	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = group_must_exist(core, group, err)) != IOTP_OK ||
	    (rc = thing_must_exist(core, thing, err)) != IOTP_OK)
		goto out;
	{
		struct store_val p[] = {SV_TEXT(group), SV_TEXT(thing)};

		rc = reg_exists(core,
		                "SELECT 1 FROM thing_group_members WHERE group_name = ? AND "
		                "thing_name = ?",
		                p, 2, &member, err);
		if (rc != IOTP_OK || member == add)
			goto out; /* error, or nothing to change */
	}
	if (add) {
		struct store_val q[] = {SV_TEXT(thing)};
		int64_t count = 0;

		rc = store_query_int(core->store,
		                     "SELECT COUNT(*) FROM thing_group_members WHERE thing_name = ?", q, 1,
		                     &count, err);
		if (rc != IOTP_OK)
			goto out;
		if (count >= REGISTRY_THING_MAX_GROUPS) {
			rc = iotp_err_set(err, IOTP_ERR_LIMIT,
			                  "thing %s is already in %d thing groups, the most allowed", thing,
			                  REGISTRY_THING_MAX_GROUPS);
			goto out;
		}
	}
	{
		struct store_val p[] = {SV_TEXT(group), SV_TEXT(thing)};

		rc = store_exec_changes(core->store,
		                        add ? "INSERT INTO thing_group_members (group_name, thing_name) "
		                              "VALUES (?, ?)"
		                            : "DELETE FROM thing_group_members WHERE group_name = ? "
		                              "AND thing_name = ?",
		                        p, 2, &n, err);
		if (rc != IOTP_OK)
			goto out;
	}
	reg_object("thinggroup", group, obj);
	rc = reg_event(core, actor, add ? "thinggroup.add_thing" : "thinggroup.remove_thing", obj,
	               json_pack("{s:s, s:s}", "thingGroupName", group, "thingName", thing), err);
out:
	return reg_tx_end(core, depth0, rc, err);
}

iotp_rc registry_thing_group_add_thing(struct iotp_core *core, const char *actor,
                                       const char *group_name, const char *thing_name,
                                       struct iotp_err *err)
{
	return membership(core, actor, group_name, thing_name, 1, err);
}

iotp_rc registry_thing_group_remove_thing(struct iotp_core *core, const char *actor,
                                          const char *group_name, const char *thing_name,
                                          struct iotp_err *err)
{
	return membership(core, actor, group_name, thing_name, 0, err);
}

iotp_rc registry_thing_group_list_things(struct iotp_core *core, const char *group_name,
                                         int recursive, const struct registry_page *page,
                                         struct registry_str_list *out, struct iotp_err *err)
{
	struct reg_strs s = {0};
	char *key = NULL;
	int max;
	iotp_rc rc;

	if ((rc = group_must_exist(core, group_name, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_page_open(page, 'n', REGISTRY_PAGE_DEFAULT, &max, &key, err)) != IOTP_OK)
		return rc;
	if (recursive) {
		struct store_val p[] = {SV_TEXT(group_name), SV_TEXT(group_name),
		                        SV_TEXT(key != NULL ? key : ""), SV_INT(max + 1)};

		rc = store_exec(core->store,
		                DESCENDANTS_CTE
		                "SELECT DISTINCT thing_name FROM thing_group_members "
		                "WHERE (group_name IN (SELECT name FROM d) OR group_name = ?) "
		                "AND thing_name > ? ORDER BY thing_name LIMIT ?",
		                p, 4, reg_strs_row, &s, err);
	} else {
		struct store_val p[] = {SV_TEXT(group_name), SV_TEXT(key != NULL ? key : ""),
		                        SV_INT(max + 1)};

		rc = store_exec(core->store,
		                "SELECT thing_name FROM thing_group_members WHERE group_name = ? "
		                "AND thing_name > ? ORDER BY thing_name LIMIT ?",
		                p, 3, reg_strs_row, &s, err);
	}
	if (rc == IOTP_OK)
		rc = reg_strs_finish(core, &s, 'n', max, 0, out, err);
	reg_strs_free(&s);
	free(key);
	return rc;
}

iotp_rc registry_thing_list_groups(struct iotp_core *core, const char *thing_name,
                                   const struct registry_page *page,
                                   struct registry_ref_list *out, struct iotp_err *err)
{
	struct reg_refs r = {.core = core, .kind = "thinggroup"};
	char *key = NULL;
	int max;
	iotp_rc rc;

	if ((rc = thing_must_exist(core, thing_name, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_page_open(page, 'm', REGISTRY_PAGE_DEFAULT, &max, &key, err)) != IOTP_OK)
		return rc;
	{
		struct store_val p[] = {SV_TEXT(thing_name), SV_TEXT(key != NULL ? key : ""),
		                        SV_INT(max + 1)};

		rc = store_exec(core->store,
		                "SELECT group_name FROM thing_group_members WHERE thing_name = ? "
		                "AND group_name > ? ORDER BY group_name LIMIT ?",
		                p, 3, reg_refs_row, &r, err);
	}
	if (rc == IOTP_OK)
		rc = reg_refs_finish(&r, 'm', max, out, err);
	free(r.items);
	free(key);
	return rc;
}
