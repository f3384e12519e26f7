/*
 * Provisioning templates as registry objects (see provision.h):
 * CreateProvisioningTemplate, Describe, List, Update, Delete and the
 * template versions. A template is a row of provisioning_templates plus one
 * row of template_versions per version; the default version's body is what
 * fleet provisioning, claims and JITP apply. Every body is checked with
 * template_parse() for the template's type before it is stored, so a stored
 * body always parses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/provision_internal.h"

#define DESC_MAX_CHARS 500
#define ROLE_ARN_MIN 20
#define ROLE_ARN_MAX 2048
#define PAYLOAD_VERSION_DEFAULT "2020-04-01"
#define TEMPLATE_VERSIONS_MAX 5
#define LIST_DEFAULT 50

#define TEMPLATE_COLS \
	"t.name, t.id, t.description, t.type, t.enabled, t.role_arn, " \
	"t.pre_provisioning_hook, t.default_version, t.created, t.updated"

void prov_template_cleanup(struct prov_template *t)
{
	if (t == NULL)
		return;
	free(t->description);
	free(t->body);
	free(t->role_arn);
	json_decref(t->hook);
	memset(t, 0, sizeof(*t));
}

void prov_template_list_cleanup(struct prov_template_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->count; i++)
		prov_template_cleanup(&l->items[i]);
	free(l->items);
	free(l->next_token);
	memset(l, 0, sizeof(*l));
}

void prov_template_version_cleanup(struct prov_template_version *v)
{
	if (v == NULL)
		return;
	free(v->body);
	memset(v, 0, sizeof(*v));
}

void prov_template_version_list_cleanup(struct prov_template_version_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->count; i++)
		prov_template_version_cleanup(&l->items[i]);
	free(l->items);
	free(l->next_token);
	memset(l, 0, sizeof(*l));
}

/* ---- checks ---- */

static iotp_rc check_name(const char *name, struct iotp_err *err)
{
	if (!prov_template_name_ok(name))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "templateName must be 1 to %d of 0-9 A-Z a-z _ -",
		                    PROV_TEMPLATE_NAME_MAX);
	return IOTP_OK;
}

/* At most 500 characters, valid UTF-8, no control characters. */
static iotp_rc check_description(const char *s, struct iotp_err *err)
{
	size_t chars = 0;
	json_t *probe;

	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "description must not contain control characters");
		if ((*p & 0xc0) != 0x80)
			chars++;
	}
	if (chars > DESC_MAX_CHARS)
		return iotp_err_set(err, IOTP_ERR_INVALID, "description is over %d characters",
		                    DESC_MAX_CHARS);
	probe = json_string(s);
	if (probe == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "description is not valid UTF-8");
	json_decref(probe);
	return IOTP_OK;
}

static iotp_rc check_role(const char *s, struct iotp_err *err)
{
	size_t n = strlen(s);

	if (n < ROLE_ARN_MIN || n > ROLE_ARN_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "provisioningRoleArn must be %d to %d characters (iotprov records "
		                    "it and does not use it)",
		                    ROLE_ARN_MIN, ROLE_ARN_MAX);
	return IOTP_OK;
}

static int payload_version_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 10 && n <= 32 && strspn(s, "0123456789-") == n;
}

/* Checks a preProvisioningHook object and returns the form to store
 * (payloadVersion filled in) as a new reference. */
static iotp_rc check_hook(const json_t *hook, json_t **out, struct iotp_err *err)
{
	const char *key, *url, *pv = PAYLOAD_VERSION_DEFAULT;
	const json_t *v;

	if (!json_is_object(hook))
		return iotp_err_set(err, IOTP_ERR_INVALID, "preProvisioningHook must be an object");
	json_object_foreach((json_t *)hook, key, v) {
		if (strcmp(key, "targetArn") != 0 && strcmp(key, "payloadVersion") != 0)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "preProvisioningHook: unknown member '%.40s' (allowed: "
			                    "targetArn, payloadVersion)",
			                    key);
	}
	url = json_string_value(json_object_get(hook, "targetArn"));
	if (url == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "preProvisioningHook.targetArn is required (a string)");
	if (!prov_hook_url_ok(url))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "preProvisioningHook.targetArn must be the hook's URL: https://HOST/"
		                    "PATH (http:// only to 127.0.0.1, [::1] or localhost), at most "
		                    "2048 characters; iotprov calls webhooks, not Lambda functions");
	v = json_object_get(hook, "payloadVersion");
	if (v != NULL && !json_is_null(v)) {
		pv = json_string_value(v);
		if (pv == NULL || !payload_version_ok(pv))
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "preProvisioningHook.payloadVersion must be 10 to 32 of 0-9 "
			                    "and - (e.g. " PAYLOAD_VERSION_DEFAULT ")");
	}
	*out = json_pack("{s:s, s:s}", "targetArn", url, "payloadVersion", pv);
	if (*out == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "hook: out of memory");
	return IOTP_OK;
}

static iotp_rc type_kind(const char *type, enum template_kind *kind, struct iotp_err *err)
{
	if (strcmp(type, "FLEET_PROVISIONING") == 0)
		*kind = TEMPLATE_KIND_FLEET;
	else if (strcmp(type, "JITP") == 0)
		*kind = TEMPLATE_KIND_JITP;
	else
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "type must be FLEET_PROVISIONING or JITP, not '%.40s'", type);
	return IOTP_OK;
}

/* Validates a body for its type; the message lists every problem. An
 * oversized body is INVALID too (the model's limit on templateBody). */
static iotp_rc check_body(const char *body, enum template_kind kind, struct iotp_err *err)
{
	struct template *t = NULL;
	iotp_rc rc;

	if (body == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "templateBody is required");
	rc = template_parse(body, strlen(body), kind, &t, err);
	template_free(t);
	if (rc == IOTP_ERR_TOO_BIG)
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "templateBody is over %d characters",
		                  TEMPLATE_BODY_MAX);
	return rc;
}

static void object_of(const char *name, char *out, size_t size)
{
	snprintf(out, size, "provisioningtemplate/%s", name);
}

/* ---- rows ---- */

struct tpl_rows {
	struct iotp_core *core;
	struct prov_template *items;
	size_t count;
	int with_body;
	iotp_rc rc;
	struct iotp_err err;
};

static char *dup_or_empty(const char *s, int *failed)
{
	char *d = strdup(s != NULL ? s : "");

	if (d == NULL)
		*failed = 1;
	return d;
}

static int tpl_row(void *ud, const struct store_row *row)
{
	struct tpl_rows *r = ud;
	struct prov_template *t, *grown;
	const char *hook;
	char res[REGISTRY_ARN_MAX];
	int failed = 0;

	grown = realloc(r->items, (r->count + 1) * sizeof(*grown));
	if (grown == NULL) {
		r->rc = iotp_err_set(&r->err, IOTP_ERR_NOMEM, "templates: out of memory");
		return 1;
	}
	r->items = grown;
	t = &r->items[r->count++];
	memset(t, 0, sizeof(*t));
	util_strlcpy(t->name, prov_col_str(row, 0) != NULL ? prov_col_str(row, 0) : "",
	             sizeof(t->name));
	util_strlcpy(t->id, prov_col_str(row, 1) != NULL ? prov_col_str(row, 1) : "",
	             sizeof(t->id));
	t->description = dup_or_empty(prov_col_str(row, 2), &failed);
	util_strlcpy(t->type, prov_col_str(row, 3) != NULL ? prov_col_str(row, 3) : "",
	             sizeof(t->type));
	t->enabled = prov_col_int(row, 4) != 0;
	t->role_arn = dup_or_empty(prov_col_str(row, 5), &failed);
	hook = prov_col_str(row, 6);
	if (hook != NULL) {
		t->hook = json_loads(hook, 0, NULL);
		if (t->hook == NULL) {
			r->rc = iotp_err_set(&r->err, IOTP_ERR_DB, "template %s: stored hook unreadable",
			                     t->name);
			return 1;
		}
	}
	t->default_version = (int)prov_col_int(row, 7);
	t->created = prov_col_int(row, 8);
	t->updated = prov_col_int(row, 9);
	if (r->with_body)
		t->body = dup_or_empty(prov_col_str(row, 10), &failed);
	if (failed) {
		r->rc = iotp_err_set(&r->err, IOTP_ERR_NOMEM, "templates: out of memory");
		return 1;
	}
	object_of(t->name, res, sizeof(res));
	if (core_arn(r->core, res, t->arn, sizeof(t->arn), &r->err) != IOTP_OK) {
		r->rc = r->err.rc;
		return 1;
	}
	return 0;
}

static void tpl_rows_free(struct tpl_rows *r)
{
	for (size_t i = 0; i < r->count; i++)
		prov_template_cleanup(&r->items[i]);
	free(r->items);
	r->items = NULL;
	r->count = 0;
}

iotp_rc prov_template_describe(struct iotp_core *core, const char *name,
                               struct prov_template *out, struct iotp_err *err)
{
	struct tpl_rows r = {.core = core, .with_body = 1};
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	{
		struct store_val p[] = {SV_TEXT(name)};

		rc = store_exec(core->store,
		                "SELECT " TEMPLATE_COLS ", v.body FROM provisioning_templates t "
		                "JOIN template_versions v ON v.template_name = t.name "
		                "AND v.version = t.default_version WHERE t.name = ?",
		                p, 1, tpl_row, &r, err);
	}
	if (rc == IOTP_OK && r.rc != IOTP_OK)
		rc = iotp_err_set(err, r.rc, "%s", r.err.msg);
	if (rc == IOTP_OK && r.count == 0)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "provisioning template %s not found", name);
	if (rc == IOTP_OK) {
		*out = r.items[0];
		memset(&r.items[0], 0, sizeof(r.items[0]));
	}
	tpl_rows_free(&r);
	return rc;
}

static iotp_rc template_exists(struct iotp_core *core, const char *name, char type[24],
                               int *default_version, struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	char *t = NULL;
	int64_t dv = 0;
	iotp_rc rc;

	rc = store_query_text(core->store, "SELECT type FROM provisioning_templates WHERE name = ?",
	                      p, 1, &t, err);
	if (rc == IOTP_OK)
		rc = store_query_int(core->store,
		                     "SELECT default_version FROM provisioning_templates WHERE name = ?",
		                     p, 1, &dv, err);
	if (rc == IOTP_ERR_NOT_FOUND)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "provisioning template %s not found", name);
	if (rc == IOTP_OK) {
		if (type != NULL)
			util_strlcpy(type, t != NULL ? t : "", 24);
		if (default_version != NULL)
			*default_version = (int)dv;
	}
	free(t);
	return rc;
}

/* ---- create ---- */

iotp_rc prov_template_create(struct iotp_core *core, const char *actor,
                             const struct prov_template *in, struct registry_ref *out,
                             struct iotp_err *err)
{
	enum template_kind kind = TEMPLATE_KIND_FLEET;
	const char *type = in->type[0] != '\0' ? in->type : "FLEET_PROVISIONING";
	const char *desc = in->description != NULL ? in->description : "";
	const char *role = in->role_arn != NULL ? in->role_arn : "";
	json_t *hook = NULL;
	char *hook_text = NULL, id[37], obj[REGISTRY_ARN_MAX];
	struct registry_ref ref;
	int64_t now = util_now();
	int depth0;
	iotp_rc rc;

	memset(&ref, 0, sizeof(ref));
	if ((rc = check_name(in->name, err)) != IOTP_OK ||
	    (rc = type_kind(type, &kind, err)) != IOTP_OK ||
	    (rc = check_description(desc, err)) != IOTP_OK ||
	    (role[0] != '\0' && (rc = check_role(role, err)) != IOTP_OK))
		return rc;
	if (in->hook != NULL && !json_is_null(in->hook)) {
		if (kind == TEMPLATE_KIND_JITP)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "preProvisioningHook is for FLEET_PROVISIONING templates only");
		if ((rc = check_hook(in->hook, &hook, err)) != IOTP_OK)
			return rc;
		hook_text = json_dumps(hook, JSON_COMPACT | JSON_SORT_KEYS);
		if (hook_text == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "hook: out of memory");
			goto done;
		}
	}
	if ((rc = check_body(in->body, kind, err)) != IOTP_OK ||
	    (rc = util_uuid(id, err)) != IOTP_OK)
		goto done;
	object_of(in->name, obj, sizeof(obj));
	if ((rc = prov_tx_begin(core, &depth0, err)) != IOTP_OK)
		goto done;
	{
		struct store_val p[] = {SV_TEXT(in->name), SV_TEXT(id),        SV_TEXT(desc),
		                        SV_TEXT(type),     SV_INT(in->enabled != 0), SV_TEXT(role),
		                        SV_TEXT(hook_text), SV_INT(now),       SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO provisioning_templates (name, id, description, type, "
		                "enabled, role_arn, pre_provisioning_hook, default_version, "
		                "next_version, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, 1, 2, ?, ?)",
		                p, 9, NULL, NULL, err);
		if (rc == IOTP_ERR_EXISTS)
			rc = iotp_err_set(err, IOTP_ERR_EXISTS, "provisioning template %s already exists",
			                  in->name);
	}
	if (rc == IOTP_OK) {
		struct store_val p[] = {SV_TEXT(in->name), SV_TEXT(in->body), SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO template_versions (template_name, version, body, created) "
		                "VALUES (?, 1, ?, ?)",
		                p, 3, NULL, NULL, err);
	}
	if (rc == IOTP_OK)
		rc = prov_event(core, actor, "template.create", obj,
		                json_pack("{s:s, s:s, s:b, s:b}", "templateName", in->name, "type", type,
		                          "enabled", in->enabled != 0, "preProvisioningHook",
		                          hook != NULL),
		                err);
	rc = prov_tx_end(core, depth0, rc, err);
	if (rc != IOTP_OK)
		goto done;
	util_strlcpy(ref.name, in->name, sizeof(ref.name));
	util_strlcpy(ref.id, id, sizeof(ref.id));
	if ((rc = core_arn(core, obj, ref.arn, sizeof(ref.arn), err)) != IOTP_OK)
		goto done;
	*out = ref;
done:
	free(hook_text);
	json_decref(hook);
	return rc;
}

/* ---- update ---- */

iotp_rc prov_template_update(struct iotp_core *core, const char *actor,
                             const struct prov_template_update *in, struct iotp_err *err)
{
	struct prov_template cur = {0};
	enum template_kind kind = TEMPLATE_KIND_FLEET;
	json_t *hook = NULL, *detail = NULL;
	char *hook_text = NULL, *cur_hook_text = NULL, obj[REGISTRY_ARN_MAX];
	const char *desc, *role, *new_hook;
	int enabled, dv, changed = 0, depth0;
	iotp_rc rc;

	if ((rc = check_name(in->name, err)) != IOTP_OK)
		return rc;
	if (in->hook != NULL && in->remove_hook)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "give preProvisioningHook or removePreProvisioningHook, not both");
	if (in->enabled < -1 || in->enabled > 1 || in->default_version < 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "enabled or defaultVersionId out of range");
	if ((in->description != NULL && (rc = check_description(in->description, err)) != IOTP_OK) ||
	    (in->role_arn != NULL && (rc = check_role(in->role_arn, err)) != IOTP_OK))
		return rc;
	if ((rc = prov_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = prov_template_describe(core, in->name, &cur, err)) != IOTP_OK ||
	    (rc = type_kind(cur.type, &kind, err)) != IOTP_OK)
		goto out;
	if (in->hook != NULL && !json_is_null(in->hook)) {
		if (kind == TEMPLATE_KIND_JITP) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID,
			                  "preProvisioningHook is for FLEET_PROVISIONING templates only");
			goto out;
		}
		if ((rc = check_hook(in->hook, &hook, err)) != IOTP_OK)
			goto out;
		hook_text = json_dumps(hook, JSON_COMPACT | JSON_SORT_KEYS);
		if (hook_text == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "hook: out of memory");
			goto out;
		}
	}
	if (cur.hook != NULL &&
	    (cur_hook_text = json_dumps(cur.hook, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "hook: out of memory");
		goto out;
	}
	desc = in->description != NULL ? in->description : cur.description;
	role = in->role_arn != NULL ? in->role_arn : cur.role_arn;
	enabled = in->enabled >= 0 ? in->enabled : cur.enabled;
	dv = in->default_version > 0 ? in->default_version : cur.default_version;
	new_hook = in->remove_hook ? NULL : hook_text != NULL ? hook_text : cur_hook_text;
	if (dv != cur.default_version) {
		struct store_val p[] = {SV_TEXT(in->name), SV_INT(dv)};
		int64_t one = 0;

		rc = store_query_int(core->store,
		                     "SELECT 1 FROM template_versions WHERE template_name = ? AND "
		                     "version = ?",
		                     p, 2, &one, err);
		if (rc == IOTP_ERR_NOT_FOUND)
			rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND,
			                  "provisioning template %s has no version %d", in->name, dv);
		if (rc != IOTP_OK)
			goto out;
	}
	changed = strcmp(desc, cur.description) != 0 || strcmp(role, cur.role_arn) != 0 ||
	          enabled != cur.enabled || dv != cur.default_version ||
	          (new_hook == NULL) != (cur_hook_text == NULL) ||
	          (new_hook != NULL && strcmp(new_hook, cur_hook_text) != 0);
	if (!changed)
		goto out;
	{
		struct store_val p[] = {SV_TEXT(desc),     SV_TEXT(role),
		                        SV_INT(enabled),   SV_INT(dv),
		                        SV_TEXT(new_hook), SV_INT(util_now()),
		                        SV_TEXT(in->name)};

		rc = store_exec(core->store,
		                "UPDATE provisioning_templates SET description = ?, role_arn = ?, "
		                "enabled = ?, default_version = ?, pre_provisioning_hook = ?, "
		                "updated = ? WHERE name = ?",
		                p, 7, NULL, NULL, err);
	}
	if (rc != IOTP_OK)
		goto out;
	detail = json_pack("{s:s, s:b, s:i, s:b}", "templateName", in->name, "enabled", enabled,
	                   "defaultVersionId", dv, "preProvisioningHook", new_hook != NULL);
	object_of(in->name, obj, sizeof(obj));
	rc = prov_event(core, actor, "template.update", obj, detail, err);
out:
	rc = prov_tx_end(core, depth0, rc, err);
	free(hook_text);
	free(cur_hook_text);
	json_decref(hook);
	prov_template_cleanup(&cur);
	return rc;
}

/* ---- delete ---- */

iotp_rc prov_template_delete(struct iotp_core *core, const char *actor, const char *name,
                             struct iotp_err *err)
{
	struct registry_ca_list cas = {0};
	struct registry_page one = {NULL, 1};
	char obj[REGISTRY_ARN_MAX];
	int depth0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	if ((rc = prov_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = template_exists(core, name, NULL, NULL, err)) != IOTP_OK ||
	    (rc = registry_ca_list(core, 1, name, &one, &cas, err)) != IOTP_OK)
		goto out;
	if (cas.count > 0) {
		rc = iotp_err_set(err, IOTP_ERR_CONFLICT,
		                  "provisioning template %s is the registrationConfig of CA "
		                  "certificate %s: update the CA first",
		                  name, cas.items[0].id);
		goto out;
	}
	{
		struct store_val p[] = {SV_TEXT(name)};

		rc = store_exec(core->store, "DELETE FROM template_versions WHERE template_name = ?", p,
		                1, NULL, NULL, err);
		if (rc == IOTP_OK)
			rc = store_exec(core->store, "DELETE FROM provisioning_templates WHERE name = ?",
			                p, 1, NULL, NULL, err);
	}
	object_of(name, obj, sizeof(obj));
	if (rc == IOTP_OK)
		rc = prov_event(core, actor, "template.delete", obj,
		                json_pack("{s:s}", "templateName", name), err);
out:
	rc = prov_tx_end(core, depth0, rc, err);
	registry_ca_list_cleanup(&cas);
	return rc;
}

/* ---- list ---- */

iotp_rc prov_template_list(struct iotp_core *core, const struct registry_page *page,
                           struct prov_template_list *out, struct iotp_err *err)
{
	struct tpl_rows r = {.core = core};
	char *key = NULL, *token = NULL;
	int max;
	iotp_rc rc;

	if ((rc = prov_page_open(page, 'P', LIST_DEFAULT, &max, &key, err)) != IOTP_OK)
		return rc;
	{
		struct store_val p[] = {SV_TEXT(key != NULL ? key : ""), SV_INT(max + 1)};

		rc = store_exec(core->store,
		                "SELECT " TEMPLATE_COLS " FROM provisioning_templates t "
		                "WHERE t.name > ? ORDER BY t.name LIMIT ?",
		                p, 2, tpl_row, &r, err);
	}
	if (rc == IOTP_OK && r.rc != IOTP_OK)
		rc = iotp_err_set(err, r.rc, "%s", r.err.msg);
	if (rc == IOTP_OK && r.count > (size_t)max) {
		rc = prov_page_token('P', r.items[max - 1].name, &token, err);
		prov_template_cleanup(&r.items[max]);
		r.count = (size_t)max;
	}
	if (rc == IOTP_OK) {
		out->items = r.items;
		out->count = r.count;
		out->next_token = token;
		r.items = NULL;
		r.count = 0;
	}
	tpl_rows_free(&r);
	free(key);
	return rc;
}

/* ---- versions ---- */

iotp_rc prov_template_version_create(struct iotp_core *core, const char *actor,
                                     const char *name, const char *body, int set_default,
                                     int *version_out, struct iotp_err *err)
{
	char type[24], obj[REGISTRY_ARN_MAX];
	enum template_kind kind = TEMPLATE_KIND_FLEET;
	int64_t count = 0, next = 0;
	int depth0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	if ((rc = prov_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = template_exists(core, name, type, NULL, err)) != IOTP_OK ||
	    (rc = type_kind(type, &kind, err)) != IOTP_OK ||
	    (rc = check_body(body, kind, err)) != IOTP_OK)
		goto out;
	{
		struct store_val p[] = {SV_TEXT(name)};

		rc = store_query_int(core->store,
		                     "SELECT COUNT(*) FROM template_versions WHERE template_name = ?", p,
		                     1, &count, err);
		if (rc == IOTP_OK)
			rc = store_query_int(core->store,
			                     "SELECT next_version FROM provisioning_templates WHERE name = ?",
			                     p, 1, &next, err);
	}
	if (rc != IOTP_OK)
		goto out;
	if (count >= TEMPLATE_VERSIONS_MAX) {
		rc = iotp_err_set(err, IOTP_ERR_LIMIT,
		                  "provisioning template %s has %d versions already: delete one first",
		                  name, TEMPLATE_VERSIONS_MAX);
		goto out;
	}
	{
		int64_t now = util_now();
		struct store_val pv[] = {SV_TEXT(name), SV_INT(next), SV_TEXT(body), SV_INT(now)};
		struct store_val pt[] = {SV_INT(next + 1), SV_INT(set_default != 0), SV_INT(next),
		                         SV_INT(now), SV_TEXT(name)};

		rc = store_exec(core->store,
		                "INSERT INTO template_versions (template_name, version, body, created) "
		                "VALUES (?, ?, ?, ?)",
		                pv, 4, NULL, NULL, err);
		if (rc == IOTP_OK)
			rc = store_exec(core->store,
			                "UPDATE provisioning_templates SET next_version = ?, "
			                "default_version = CASE WHEN ? = 1 THEN ? ELSE default_version END, "
			                "updated = ? WHERE name = ?",
			                pt, 5, NULL, NULL, err);
	}
	object_of(name, obj, sizeof(obj));
	if (rc == IOTP_OK)
		rc = prov_event(core, actor, "template.version_create", obj,
		                json_pack("{s:s, s:I, s:b}", "templateName", name, "versionId",
		                          (json_int_t)next, "isDefaultVersion", set_default != 0),
		                err);
out:
	rc = prov_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK && version_out != NULL)
		*version_out = (int)next;
	return rc;
}

struct ver_rows {
	struct prov_template_version *items;
	size_t count;
	int with_body;
	int default_version;
	int failed;
};

static int ver_row(void *ud, const struct store_row *row)
{
	struct ver_rows *r = ud;
	struct prov_template_version *v, *grown;

	grown = realloc(r->items, (r->count + 1) * sizeof(*grown));
	if (grown == NULL) {
		r->failed = 1;
		return 1;
	}
	r->items = grown;
	v = &r->items[r->count++];
	memset(v, 0, sizeof(*v));
	v->version = (int)prov_col_int(row, 0);
	v->created = prov_col_int(row, 1);
	v->is_default = v->version == r->default_version;
	if (r->with_body) {
		v->body = strdup(prov_col_str(row, 2) != NULL ? prov_col_str(row, 2) : "");
		if (v->body == NULL) {
			r->failed = 1;
			return 1;
		}
	}
	return 0;
}

static void ver_rows_free(struct ver_rows *r)
{
	for (size_t i = 0; i < r->count; i++)
		prov_template_version_cleanup(&r->items[i]);
	free(r->items);
}

iotp_rc prov_template_version_list(struct iotp_core *core, const char *name,
                                   const struct registry_page *page,
                                   struct prov_template_version_list *out, struct iotp_err *err)
{
	struct ver_rows r = {0};
	char *key = NULL, *token = NULL, keybuf[24];
	int max;
	int64_t after = 0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK ||
	    (rc = template_exists(core, name, NULL, &r.default_version, err)) != IOTP_OK ||
	    (rc = prov_page_open(page, 'V', LIST_DEFAULT, &max, &key, err)) != IOTP_OK)
		return rc;
	if (key != NULL && util_parse_int64(key, 0, INT32_MAX, &after) != IOTP_OK) {
		free(key);
		return iotp_err_set(err, IOTP_ERR_INVALID, "invalid nextToken");
	}
	free(key);
	{
		struct store_val p[] = {SV_TEXT(name), SV_INT(after), SV_INT(max + 1)};

		rc = store_exec(core->store,
		                "SELECT version, created FROM template_versions WHERE template_name = ? "
		                "AND version > ? ORDER BY version LIMIT ?",
		                p, 3, ver_row, &r, err);
	}
	if (rc == IOTP_OK && r.failed)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "versions: out of memory");
	if (rc == IOTP_OK && r.count > (size_t)max) {
		snprintf(keybuf, sizeof(keybuf), "%d", r.items[max - 1].version);
		rc = prov_page_token('V', keybuf, &token, err);
		r.count = (size_t)max;
	}
	if (rc == IOTP_OK) {
		out->items = r.items;
		out->count = r.count;
		out->next_token = token;
		r.items = NULL;
		r.count = 0;
	}
	ver_rows_free(&r);
	return rc;
}

iotp_rc prov_template_version_describe(struct iotp_core *core, const char *name, int version,
                                       struct prov_template_version *out, struct iotp_err *err)
{
	struct ver_rows r = {.with_body = 1};
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK ||
	    (rc = template_exists(core, name, NULL, &r.default_version, err)) != IOTP_OK)
		return rc;
	{
		struct store_val p[] = {SV_TEXT(name), SV_INT(version)};

		rc = store_exec(core->store,
		                "SELECT version, created, body FROM template_versions "
		                "WHERE template_name = ? AND version = ?",
		                p, 2, ver_row, &r, err);
	}
	if (rc == IOTP_OK && r.failed)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "version: out of memory");
	if (rc == IOTP_OK && r.count == 0)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "provisioning template %s has no version %d",
		                  name, version);
	if (rc == IOTP_OK) {
		*out = r.items[0];
		memset(&r.items[0], 0, sizeof(r.items[0]));
	}
	ver_rows_free(&r);
	return rc;
}

iotp_rc prov_template_version_delete(struct iotp_core *core, const char *actor,
                                     const char *name, int version, struct iotp_err *err)
{
	char obj[REGISTRY_ARN_MAX];
	int dv = 0, depth0;
	int64_t changes = 0;
	iotp_rc rc;

	if ((rc = check_name(name, err)) != IOTP_OK)
		return rc;
	if ((rc = prov_tx_begin(core, &depth0, err)) != IOTP_OK)
		return rc;
	if ((rc = template_exists(core, name, NULL, &dv, err)) != IOTP_OK)
		goto out;
	if (version == dv) {
		rc = iotp_err_set(err, IOTP_ERR_CONFLICT,
		                  "version %d is the default version of provisioning template %s: set "
		                  "another default first",
		                  version, name);
		goto out;
	}
	{
		struct store_val p[] = {SV_TEXT(name), SV_INT(version)};

		rc = store_exec_changes(core->store,
		                        "DELETE FROM template_versions WHERE template_name = ? AND "
		                        "version = ?",
		                        p, 2, &changes, err);
	}
	if (rc == IOTP_OK && changes == 0)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "provisioning template %s has no version %d",
		                  name, version);
	object_of(name, obj, sizeof(obj));
	if (rc == IOTP_OK)
		rc = prov_event(core, actor, "template.version_delete", obj,
		                json_pack("{s:s, s:i}", "templateName", name, "versionId", version), err);
out:
	return prov_tx_end(core, depth0, rc, err);
}
