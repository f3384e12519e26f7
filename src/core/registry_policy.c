/*
 * Policies, their versions and attachments (see registry.h). What a policy
 * document means is the policy engine's business (src/core/policy.*); here
 * a document only has to have the right shape, and the registry keeps which
 * version is in force and what it is attached to. The broker asks
 * registry_policies_for_principal() for the documents that apply to a
 * connecting certificate: one query walking certificate -> things -> groups
 * -> ancestor groups.
 */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/policy.h"
#include "core/registry_internal.h"

/* Groups of every thing a certificate is attached to, with their ancestors:
 * one parameter, the principal ("cert/<id>"). */
#define CERT_GROUPS_CTE \
	"WITH RECURSIVE g(name, lvl) AS (" \
	" SELECT m.group_name, 0 FROM thing_principals tp" \
	" JOIN thing_group_members m ON m.thing_name = tp.thing_name WHERE tp.principal = ?" \
	" UNION ALL" \
	" SELECT tg.parent_name, g.lvl + 1 FROM thing_groups tg JOIN g ON tg.name = g.name" \
	" WHERE tg.parent_name IS NOT NULL AND g.lvl < 32) "

/* A group and its ancestors: one parameter, the group name. */
#define GROUP_UP_CTE \
	"WITH RECURSIVE g(name, lvl) AS (" \
	" SELECT name, 0 FROM thing_groups WHERE name = ?" \
	" UNION ALL" \
	" SELECT tg.parent_name, g.lvl + 1 FROM thing_groups tg JOIN g ON tg.name = g.name" \
	" WHERE tg.parent_name IS NOT NULL AND g.lvl < 32) "

static iotp_rc check_name(const char *name, struct iotp_err *err)
{
	if (!registry_policy_name_valid(name))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "policy name must match [\\w+=,.@-]{1,128}");
	return IOTP_OK;
}

/* A document is accepted exactly when the policy engine can compile it, so
 * that what the registry stores the broker can always enforce. */
static iotp_rc check_document(const char *doc, struct iotp_err *err)
{
	if (doc == NULL || *doc == '\0')
		return iotp_err_set(err, IOTP_ERR_POLICY, "policy document is empty");
	return policy_validate(doc, strlen(doc), err);
}

void registry_policy_cleanup(struct registry_policy *p)
{
	if (p == NULL)
		return;
	free(p->document);
	memset(p, 0, sizeof(*p));
}

void registry_policy_version_cleanup(struct registry_policy_version *v)
{
	if (v == NULL)
		return;
	free(v->document);
	memset(v, 0, sizeof(*v));
}

void registry_policy_version_list_cleanup(struct registry_policy_version_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->count; i++)
		registry_policy_version_cleanup(&l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

void registry_policy_docs_cleanup(struct registry_policy_docs *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->count; i++)
		free(d->items[i].document);
	free(d->items);
	memset(d, 0, sizeof(*d));
}

static iotp_rc policy_exists(struct iotp_core *core, const char *name, struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	int found = 0;
	iotp_rc rc = reg_exists(core, "SELECT 1 FROM policies WHERE name = ?", p, 1, &found, err);

	if (rc == IOTP_OK && !found)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "policy %s not found", name);
	return rc;
}

iotp_rc registry_policy_create(struct iotp_core *core, const char *actor, const char *name,
                               const char *document, struct registry_policy *out,
                               struct iotp_err *err)
{
	struct registry_policy pol = {0};
	char obj[REGISTRY_ARN_MAX];
	int64_t now = util_now();
	int depth0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK || (rc = check_document(document, err)) != IOTP_OK)
		return rc;
	util_strlcpy(pol.name, name, sizeof(pol.name));
	if ((rc = reg_arn(core, "policy", name, pol.arn, err)) != IOTP_OK)
		return rc;
	if ((pol.document = strdup(document)) == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "policy %s: out of memory", name);
	pol.default_version = 1;
	pol.created = pol.updated = now;
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		goto done;
	{
		struct store_val p[] = {SV_TEXT(name), SV_INT(now), SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO policies (name, default_version, next_version, created, "
		                "updated) VALUES (?, 1, 2, ?, ?)",
		                p, 3, NULL, NULL, err);
		if (rc == IOTP_ERR_EXISTS)
			rc = iotp_err_set(err, IOTP_ERR_EXISTS, "policy %s already exists", name);
		if (rc != IOTP_OK)
			goto out;
	}
	{
		struct store_val p[] = {SV_TEXT(name), SV_TEXT(document), SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO policy_versions (policy_name, version, document, created) "
		                "VALUES (?, 1, ?, ?)",
		                p, 3, NULL, NULL, err);
		if (rc != IOTP_OK)
			goto out;
	}
	reg_object("policy", name, obj);
	rc = reg_event(core, actor, "policy.create", obj,
	               json_pack("{s:s, s:i}", "policyName", name, "policyVersionId", 1), err);
out:
	rc = reg_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK) {
		*out = pol;
		memset(&pol, 0, sizeof(pol));
	}
done:
	registry_policy_cleanup(&pol);
	return rc;
}

struct policy_row {
	struct registry_policy p;
	int found;
	int failed;
};

static int policy_row_fn(void *ud, const struct store_row *row)
{
	struct policy_row *r = ud;

	r->found = 1;
	reg_col_copy(row, 0, r->p.name, sizeof(r->p.name));
	r->p.default_version = reg_col_int(row, 1);
	r->p.created = reg_col_int(row, 2);
	r->p.updated = reg_col_int(row, 3);
	r->p.document = reg_col_dup(row, 4, &r->failed);
	return 1;
}

iotp_rc registry_policy_get(struct iotp_core *core, const char *name,
                            struct registry_policy *out, struct iotp_err *err)
{
	struct policy_row r = {0};
	struct store_val p[] = {SV_TEXT(name)};
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	rc = store_exec(core->store,
	                "SELECT p.name, p.default_version, p.created, p.updated, v.document "
	                "FROM policies p JOIN policy_versions v ON v.policy_name = p.name "
	                "AND v.version = p.default_version WHERE p.name = ?",
	                p, 1, policy_row_fn, &r, err);
	if (rc == IOTP_OK && r.failed)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "policy %s: out of memory", name);
	if (rc == IOTP_OK && !r.found)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "policy %s not found", name);
	if (rc == IOTP_OK)
		rc = reg_arn(core, "policy", r.p.name, r.p.arn, err);
	if (rc == IOTP_OK) {
		*out = r.p;
		memset(&r.p, 0, sizeof(r.p));
	}
	registry_policy_cleanup(&r.p);
	return rc;
}

iotp_rc registry_policy_delete(struct iotp_core *core, const char *actor, const char *name,
                               struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	char obj[REGISTRY_ARN_MAX];
	int64_t versions = 0;
	int attached = 0, depth0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = policy_exists(core, name, err)) != IOTP_OK)
		goto out;
	rc = reg_exists(core, "SELECT 1 FROM policy_targets WHERE policy_name = ? LIMIT 1", p, 1,
	                &attached, err);
	if (rc != IOTP_OK)
		goto out;
	if (attached) {
		rc = iotp_err_set(err, IOTP_ERR_CONFLICT,
		                  "The policy cannot be deleted as the policy is attached to one or "
		                  "more principals (name=%s)",
		                  name);
		goto out;
	}
	rc = store_query_int(core->store,
	                     "SELECT COUNT(*) FROM policy_versions WHERE policy_name = ?", p, 1,
	                     &versions, err);
	if (rc != IOTP_OK)
		goto out;
	if (versions > 1) {
		rc = iotp_err_set(err, IOTP_ERR_CONFLICT,
		                  "policy %s has versions other than the default: delete them first",
		                  name);
		goto out;
	}
	if ((rc = store_exec(core->store, "DELETE FROM policy_versions WHERE policy_name = ?", p, 1,
	                     NULL, NULL, err)) != IOTP_OK ||
	    (rc = store_exec(core->store, "DELETE FROM policies WHERE name = ?", p, 1, NULL, NULL,
	                     err)) != IOTP_OK)
		goto out;
	reg_object("policy", name, obj);
	rc = reg_event(core, actor, "policy.delete", obj, json_pack("{s:s}", "policyName", name),
	               err);
out:
	return reg_tx_end(core, depth0, rc, err);
}

iotp_rc registry_policy_list(struct iotp_core *core, int ascending,
                             const struct registry_page *page,
                             struct registry_ref_list *out, struct iotp_err *err)
{
	struct reg_refs r = {.core = core, .kind = "policy"};
	char tag = ascending ? 'P' : 'Q', *key = NULL;
	int max;
	iotp_rc rc;

	if ((rc = reg_page_open(page, tag, REGISTRY_MARKER_DEFAULT, &max, &key, err)) != IOTP_OK)
		return rc;
	if (ascending) {
		struct store_val p[] = {SV_TEXT(key != NULL ? key : ""), SV_INT(max + 1)};

		rc = store_exec(core->store,
		                "SELECT name FROM policies WHERE name > ? ORDER BY name LIMIT ?", p, 2,
		                reg_refs_row, &r, err);
	} else if (key != NULL) {
		struct store_val p[] = {SV_TEXT(key), SV_INT(max + 1)};

		rc = store_exec(core->store,
		                "SELECT name FROM policies WHERE name < ? ORDER BY name DESC LIMIT ?", p,
		                2, reg_refs_row, &r, err);
	} else {
		struct store_val p[] = {SV_INT(max + 1)};

		rc = store_exec(core->store, "SELECT name FROM policies ORDER BY name DESC LIMIT ?", p,
		                1, reg_refs_row, &r, err);
	}
	if (rc == IOTP_OK)
		rc = reg_refs_finish(&r, tag, max, out, err);
	free(r.items);
	free(key);
	return rc;
}

/* ---- versions ---- */

iotp_rc registry_policy_version_create(struct iotp_core *core, const char *actor,
                                       const char *name, const char *document,
                                       int set_default, struct registry_policy_version *out,
                                       struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	struct registry_policy_version v = {0};
	char obj[REGISTRY_ARN_MAX];
	int64_t next = 0, count = 0, now = util_now();
	int depth0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK || (rc = check_document(document, err)) != IOTP_OK)
		return rc;
	if ((v.document = strdup(document)) == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "policy %s: out of memory", name);
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		goto done;
	rc = store_query_int(core->store, "SELECT next_version FROM policies WHERE name = ?", p, 1,
	                     &next, err);
	if (rc == IOTP_ERR_NOT_FOUND)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "policy %s not found", name);
	if (rc != IOTP_OK)
		goto out;
	rc = store_query_int(core->store,
	                     "SELECT COUNT(*) FROM policy_versions WHERE policy_name = ?", p, 1,
	                     &count, err);
	if (rc != IOTP_OK)
		goto out;
	if (count >= REGISTRY_POLICY_MAX_VERSIONS) {
		rc = iotp_err_set(err, IOTP_ERR_LIMIT,
		                  "policy %s already has the maximum number of versions (%d): delete "
		                  "one first",
		                  name, REGISTRY_POLICY_MAX_VERSIONS);
		goto out;
	}
	{
		struct store_val q[] = {SV_TEXT(name), SV_INT(next), SV_TEXT(document), SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO policy_versions (policy_name, version, document, created) "
		                "VALUES (?, ?, ?, ?)",
		                q, 4, NULL, NULL, err);
		if (rc != IOTP_OK)
			goto out;
	}
	{
		struct store_val q[] = {SV_INT(set_default ? 1 : 0), SV_INT(next), SV_INT(now),
		                        SV_TEXT(name)};

		rc = store_exec(core->store,
		                "UPDATE policies SET next_version = next_version + 1, "
		                "default_version = CASE WHEN ? = 1 THEN ? ELSE default_version END, "
		                "updated = ? WHERE name = ?",
		                q, 4, NULL, NULL, err);
		if (rc != IOTP_OK)
			goto out;
	}
	reg_object("policy", name, obj);
	rc = reg_event(core, actor, "policy.version_create", obj,
	               json_pack("{s:s, s:I, s:b}", "policyName", name, "policyVersionId",
	                         (json_int_t)next, "isDefaultVersion", set_default != 0),
	               err);
out:
	rc = reg_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK) {
		v.version = next;
		v.is_default = set_default != 0;
		v.created = now;
		*out = v;
		memset(&v, 0, sizeof(v));
	}
done:
	registry_policy_version_cleanup(&v);
	return rc;
}

struct version_rows {
	struct registry_policy_version *items;
	size_t count;
	int failed;
};

/* Columns: version, created, is_default, document (optional). */
static int version_row(void *ud, const struct store_row *row)
{
	struct version_rows *r = ud;
	struct registry_policy_version *v;

	if (reg_grow((void **)&r->items, &r->count, sizeof(*r->items)) != IOTP_OK) {
		r->failed = 1;
		return 1;
	}
	v = &r->items[r->count - 1];
	v->version = reg_col_int(row, 0);
	v->created = reg_col_int(row, 1);
	v->is_default = reg_col_int(row, 2) != 0;
	if (row->ncols > 3)
		v->document = reg_col_dup(row, 3, &r->failed);
	return r->failed;
}

static void version_rows_free(struct version_rows *r)
{
	for (size_t i = 0; i < r->count; i++)
		registry_policy_version_cleanup(&r->items[i]);
	free(r->items);
}

iotp_rc registry_policy_version_get(struct iotp_core *core, const char *name,
                                    int64_t version, struct registry_policy_version *out,
                                    struct iotp_err *err)
{
	struct version_rows r = {0};
	struct store_val p[] = {SV_TEXT(name), SV_INT(version)};
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	rc = store_exec(core->store,
	                "SELECT v.version, v.created, "
	                "CASE WHEN v.version = p.default_version THEN 1 ELSE 0 END, v.document "
	                "FROM policy_versions v JOIN policies p ON p.name = v.policy_name "
	                "WHERE v.policy_name = ? AND v.version = ?",
	                p, 2, version_row, &r, err);
	if (rc == IOTP_OK && r.failed)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "policy %s: out of memory", name);
	if (rc == IOTP_OK && r.count == 0) {
		rc = policy_exists(core, name, err);
		if (rc == IOTP_OK)
			rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "policy %s has no version %lld", name,
			                  (long long)version);
	}
	if (rc == IOTP_OK) {
		*out = r.items[0];
		r.count = 0;
	}
	version_rows_free(&r);
	return rc;
}

iotp_rc registry_policy_version_list(struct iotp_core *core, const char *name,
                                     struct registry_policy_version_list *out,
                                     struct iotp_err *err)
{
	struct version_rows r = {0};
	struct store_val p[] = {SV_TEXT(name)};
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK || (rc = policy_exists(core, name, err)) != IOTP_OK)
		return rc;
	rc = store_exec(core->store,
	                "SELECT v.version, v.created, "
	                "CASE WHEN v.version = p.default_version THEN 1 ELSE 0 END "
	                "FROM policy_versions v JOIN policies p ON p.name = v.policy_name "
	                "WHERE v.policy_name = ? ORDER BY v.version DESC",
	                p, 1, version_row, &r, err);
	if (rc == IOTP_OK && r.failed)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "policy %s: out of memory", name);
	if (rc == IOTP_OK) {
		out->items = r.items;
		out->count = r.count;
		r.items = NULL;
		r.count = 0;
	}
	version_rows_free(&r);
	return rc;
}

/* Reads the default version and checks that version exists. */
static iotp_rc version_lookup(struct iotp_core *core, const char *name, int64_t version,
                              int64_t *def, struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name), SV_INT(version)};
	iotp_rc rc;

	rc = store_query_int(core->store,
	                     "SELECT p.default_version FROM policies p JOIN policy_versions v "
	                     "ON v.policy_name = p.name WHERE p.name = ? AND v.version = ?",
	                     p, 2, def, err);
	if (rc == IOTP_ERR_NOT_FOUND) {
		rc = policy_exists(core, name, err);
		if (rc == IOTP_OK)
			rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "policy %s has no version %lld", name,
			                  (long long)version);
	}
	return rc;
}

iotp_rc registry_policy_version_set_default(struct iotp_core *core, const char *actor,
                                            const char *name, int64_t version,
                                            struct iotp_err *err)
{
	char obj[REGISTRY_ARN_MAX];
	int64_t def = 0;
	int depth0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = version_lookup(core, name, version, &def, err)) != IOTP_OK || def == version)
		goto out;
	{
		struct store_val p[] = {SV_INT(version), SV_INT(util_now()), SV_TEXT(name)};

		rc = store_exec(core->store,
		                "UPDATE policies SET default_version = ?, updated = ? WHERE name = ?", p,
		                3, NULL, NULL, err);
		if (rc != IOTP_OK)
			goto out;
	}
	reg_object("policy", name, obj);
	rc = reg_event(core, actor, "policy.set_default", obj,
	               json_pack("{s:s, s:I, s:I}", "policyName", name, "policyVersionId",
	                         (json_int_t)version, "previousVersionId", (json_int_t)def),
	               err);
out:
	return reg_tx_end(core, depth0, rc, err);
}

iotp_rc registry_policy_version_delete(struct iotp_core *core, const char *actor,
                                       const char *name, int64_t version,
                                       struct iotp_err *err)
{
	char obj[REGISTRY_ARN_MAX];
	int64_t def = 0;
	int depth0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = version_lookup(core, name, version, &def, err)) != IOTP_OK)
		goto out;
	if (def == version) {
		rc = iotp_err_set(err, IOTP_ERR_CONFLICT,
		                  "version %lld is the default version of policy %s: it goes only "
		                  "with the policy (DeletePolicy)",
		                  (long long)version, name);
		goto out;
	}
	{
		struct store_val p[] = {SV_TEXT(name), SV_INT(version)};

		rc = store_exec(core->store,
		                "DELETE FROM policy_versions WHERE policy_name = ? AND version = ?", p,
		                2, NULL, NULL, err);
		if (rc != IOTP_OK)
			goto out;
	}
	reg_object("policy", name, obj);
	rc = reg_event(core, actor, "policy.version_delete", obj,
	               json_pack("{s:s, s:I}", "policyName", name, "policyVersionId",
	                         (json_int_t)version),
	               err);
out:
	return reg_tx_end(core, depth0, rc, err);
}

/* ---- attachments ---- */

enum target_kind { TARGET_CERT, TARGET_GROUP };

/* Normalises a policy target to its resource part in out; *kind says which. */
static iotp_rc target_parse(const char *target, char *out, enum target_kind *kind,
                            struct iotp_err *err)
{
	const char *res = reg_resource(target);

	if (res != NULL && strncmp(res, "cert/", 5) == 0) {
		char id[PKI_CERT_ID_LEN + 1];

		if (reg_cert_id_norm(res + 5, id, "certificate", err) != IOTP_OK)
			return IOTP_ERR_INVALID;
		snprintf(out, REGISTRY_ARN_MAX, "cert/%s", id);
		*kind = TARGET_CERT;
		return IOTP_OK;
	}
	if (res != NULL && strncmp(res, "thinggroup/", 11) == 0 && reg_name_ok(res + 11)) {
		snprintf(out, REGISTRY_ARN_MAX, "%s", res);
		*kind = TARGET_GROUP;
		return IOTP_OK;
	}
	return iotp_err_set(err, IOTP_ERR_INVALID,
	                    "policy target must be a certificate or thing group ARN");
}

static iotp_rc target_exists(struct iotp_core *core, const char *res, enum target_kind kind,
                             struct iotp_err *err)
{
	int cert = kind == TARGET_CERT;
	struct store_val p[] = {SV_TEXT(cert ? res + 5 : res + 11)};
	int found = 0;
	iotp_rc rc;

	rc = reg_exists(core,
	                cert ? "SELECT 1 FROM certificates WHERE id = ?"
	                     : "SELECT 1 FROM thing_groups WHERE name = ?",
	                p, 1, &found, err);
	if (rc == IOTP_OK && !found)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "%s %s not found",
		                  cert ? "certificate" : "thing group", cert ? res + 5 : res + 11);
	return rc;
}

static iotp_rc attachment(struct iotp_core *core, const char *actor, const char *name,
                          const char *target, int attach, struct iotp_err *err)
{
	char res[REGISTRY_ARN_MAX], obj[REGISTRY_ARN_MAX];
	enum target_kind kind;
	int64_t n = 0;
	int depth0, attached = 0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK ||
	    (rc = target_parse(target, res, &kind, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = policy_exists(core, name, err)) != IOTP_OK)
		goto out;
	{
		struct store_val p[] = {SV_TEXT(name), SV_TEXT(res)};

		rc = reg_exists(core,
		                "SELECT 1 FROM policy_targets WHERE policy_name = ? AND target = ?", p,
		                2, &attached, err);
		if (rc != IOTP_OK || attached == attach)
			goto out; /* error, or nothing to change */
	}
	if (attach) {
		struct store_val p[] = {SV_TEXT(res)};
		int64_t count = 0;

		if ((rc = target_exists(core, res, kind, err)) != IOTP_OK)
			goto out;
		rc = store_query_int(core->store, "SELECT COUNT(*) FROM policy_targets WHERE target = ?",
		                     p, 1, &count, err);
		if (rc != IOTP_OK)
			goto out;
		if (count >= REGISTRY_TARGET_MAX_POLICIES) {
			rc = iotp_err_set(err, IOTP_ERR_LIMIT,
			                  "%s already has %d policies attached, the most allowed", res,
			                  REGISTRY_TARGET_MAX_POLICIES);
			goto out;
		}
	}
	{
		struct store_val p[] = {SV_TEXT(name), SV_TEXT(res)};

		rc = store_exec_changes(core->store,
		                        attach ? "INSERT INTO policy_targets (policy_name, target) "
		                                 "VALUES (?, ?)"
		                               : "DELETE FROM policy_targets WHERE policy_name = ? "
		                                 "AND target = ?",
		                        p, 2, &n, err);
		if (rc != IOTP_OK)
			goto out;
	}
	reg_object("policy", name, obj);
	rc = reg_event(core, actor, attach ? "policy.attach" : "policy.detach", obj,
	               json_pack("{s:s, s:s}", "policyName", name, "target", res), err);
out:
	return reg_tx_end(core, depth0, rc, err);
}

iotp_rc registry_policy_attach(struct iotp_core *core, const char *actor, const char *name,
                               const char *target, struct iotp_err *err)
{
	return attachment(core, actor, name, target, 1, err);
}

iotp_rc registry_policy_detach(struct iotp_core *core, const char *actor, const char *name,
                               const char *target, struct iotp_err *err)
{
	return attachment(core, actor, name, target, 0, err);
}

iotp_rc registry_policy_list_attached(struct iotp_core *core, const char *target,
                                      int recursive, const struct registry_page *page,
                                      struct registry_ref_list *out, struct iotp_err *err)
{
	struct reg_refs r = {.core = core, .kind = "policy"};
	char res[REGISTRY_ARN_MAX], *key = NULL;
	enum target_kind kind;
	int max;
	iotp_rc rc;

	if ((rc = target_parse(target, res, &kind, err)) != IOTP_OK ||
	    (rc = target_exists(core, res, kind, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_page_open(page, recursive ? 'R' : 'A', REGISTRY_MARKER_DEFAULT, &max, &key,
	                        err)) != IOTP_OK)
		return rc;
	if (!recursive) {
		struct store_val p[] = {SV_TEXT(res), SV_TEXT(key != NULL ? key : ""), SV_INT(max + 1)};

		rc = store_exec(core->store,
		                "SELECT policy_name FROM policy_targets WHERE target = ? "
		                "AND policy_name > ? ORDER BY policy_name LIMIT ?",
		                p, 3, reg_refs_row, &r, err);
	} else if (kind == TARGET_CERT) {
		struct store_val p[] = {SV_TEXT(res), SV_TEXT(res), SV_TEXT(key != NULL ? key : ""),
		                        SV_INT(max + 1)};

		rc = store_exec(core->store,
		                CERT_GROUPS_CTE
		                "SELECT DISTINCT policy_name FROM policy_targets "
		                "WHERE (target = ? OR target IN (SELECT 'thinggroup/' || name FROM g)) "
		                "AND policy_name > ? ORDER BY policy_name LIMIT ?",
		                p, 4, reg_refs_row, &r, err);
	} else {
		struct store_val p[] = {SV_TEXT(res + 11), SV_TEXT(key != NULL ? key : ""),
		                        SV_INT(max + 1)};

		rc = store_exec(core->store,
		                GROUP_UP_CTE
		                "SELECT DISTINCT policy_name FROM policy_targets "
		                "WHERE target IN (SELECT 'thinggroup/' || name FROM g) "
		                "AND policy_name > ? ORDER BY policy_name LIMIT ?",
		                p, 3, reg_refs_row, &r, err);
	}
	if (rc == IOTP_OK)
		rc = reg_refs_finish(&r, recursive ? 'R' : 'A', max, out, err);
	free(r.items);
	free(key);
	return rc;
}

/* A policy's targets come in the order they were attached (schema.c,
 * migration 5): the paging key is the attachment's id. */
struct target_rows {
	struct reg_strs s;
	int max;
};

static int target_row(void *ud, const struct store_row *row)
{
	struct target_rows *t = ud;

	if (reg_strs_row(&t->s, row) != 0)
		return 1;
	if (t->s.count == (size_t)t->max)
		snprintf(t->s.page_key, sizeof(t->s.page_key), "%lld", (long long)row->cols[1].i);
	return 0;
}

iotp_rc registry_policy_list_targets(struct iotp_core *core, const char *name,
                                     const struct registry_page *page,
                                     struct registry_str_list *out, struct iotp_err *err)
{
	struct target_rows t = {0};
	char *key = NULL;
	int64_t after = 0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK || (rc = policy_exists(core, name, err)) != IOTP_OK)
		return rc;
	if ((rc = reg_page_open(page, 'T', REGISTRY_MARKER_DEFAULT, &t.max, &key, err)) != IOTP_OK)
		return rc;
	if (key != NULL && util_parse_int64(key, 0, INT64_MAX, &after) != IOTP_OK) {
		free(key);
		return iotp_err_set(err, IOTP_ERR_INVALID, "invalid pagination token");
	}
	free(key);
	{
		struct store_val p[] = {SV_TEXT(name), SV_INT(after), SV_INT(t.max + 1)};

		rc = store_exec(core->store,
		                "SELECT target, id FROM policy_targets WHERE policy_name = ? "
		                "AND id > ? ORDER BY id LIMIT ?",
		                p, 3, target_row, &t, err);
	}
	if (rc == IOTP_OK)
		rc = reg_strs_finish(core, &t.s, 'T', t.max, 1, out, err);
	reg_strs_free(&t.s);
	return rc;
}

struct docs_rows {
	struct registry_policy_docs d;
	int failed;
};

static int doc_row(void *ud, const struct store_row *row)
{
	struct docs_rows *r = ud;
	struct registry_policy_doc *doc;

	if (reg_grow((void **)&r->d.items, &r->d.count, sizeof(*r->d.items)) != IOTP_OK) {
		r->failed = 1;
		return 1;
	}
	doc = &r->d.items[r->d.count - 1];
	reg_col_copy(row, 0, doc->name, sizeof(doc->name));
	doc->document = reg_col_dup(row, 1, &r->failed);
	return r->failed;
}

iotp_rc registry_policies_for_principal(struct iotp_core *core, const char *cert_id,
                                        struct registry_policy_docs *out,
                                        struct iotp_err *err)
{
	struct docs_rows r = {0};
	char id[PKI_CERT_ID_LEN + 1], res[PKI_CERT_ID_LEN + 6];
	iotp_rc rc;

	if ((rc = reg_cert_id_norm(cert_id, id, "certificate", err)) != IOTP_OK)
		return rc;
	snprintf(res, sizeof(res), "cert/%s", id);
	{
		struct store_val p[] = {SV_TEXT(res), SV_TEXT(res)};

		rc = store_exec(core->store,
		                CERT_GROUPS_CTE
		                "SELECT p.name, v.document FROM policies p "
		                "JOIN policy_versions v ON v.policy_name = p.name "
		                "AND v.version = p.default_version "
		                "WHERE p.name IN (SELECT policy_name FROM policy_targets WHERE target = ? "
		                "OR target IN (SELECT 'thinggroup/' || name FROM g)) ORDER BY p.name",
		                p, 2, doc_row, &r, err);
	}
	if (rc == IOTP_OK && r.failed)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "policies for %s: out of memory", id);
	if (rc == IOTP_OK) {
		*out = r.d;
		memset(&r.d, 0, sizeof(r.d));
	}
	registry_policy_docs_cleanup(&r.d);
	return rc;
}
