/*
 * Access keys and per-operation authorization (see accesskey.h).
 *
 * Keys live in the access_keys table of the store. Ids are drawn from the
 * CSPRNG (10 bytes as 16 base32 characters after "AKIA"), secrets too (40
 * characters of [A-Za-z0-9] by rejection sampling, about 238 bits). The
 * authorization table below is the one place that says which role may call
 * which operation; transports look operations up here and never decide
 * themselves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/buf.h"
#include "common/util.h"
#include "core/accesskey.h"
#include "core/store/store.h"

/* Operations an operator may call (installer ones included). Anything else
 * needs admin: access-key management, CA keys (registering, changing or
 * deleting a CA certificate, which decides which device certificates are
 * trusted, and the registration code that proves a CA key), the audit log,
 * and every operation added later until it is listed here. Sorted for
 * bsearch. */
static const char *const operator_ops[] = {
	"AddAuthorizedKeys",
	"AddThingToThingGroup",
	"AttachPolicy",
	"AttachThingPrincipal",
	"CreateAuthorizedKeyList",
	"CreateCertificateFromCsr",
	"CreateKeysAndCertificate",
	"CreatePolicy",
	"CreatePolicyVersion",
	"CreateProvisioningClaim",
	"CreateProvisioningTemplate",
	"CreateProvisioningTemplateVersion",
	"CreateThing",
	"CreateThingGroup",
	"CreateThingType",
	"DeleteAuthorizedKeyList",
	"DeleteCertificate",
	"DeletePolicy",
	"DeletePolicyVersion",
	"DeleteProvisioningTemplate",
	"DeleteProvisioningTemplateVersion",
	"DeleteThing",
	"DeleteThingGroup",
	"DeleteThingType",
	"DeprecateThingType",
	"DescribeAuthorizedKeyList",
	"DescribeCACertificate",
	"DescribeCertificate",
	"DescribeEndpoint",
	"DescribeProvisioningTemplate",
	"DescribeProvisioningTemplateVersion",
	"DescribeThing",
	"DescribeThingGroup",
	"DescribeThingRegistrationTask",
	"DescribeThingType",
	"DetachPolicy",
	"DetachThingPrincipal",
	"GetPolicy",
	"GetPolicyVersion",
	"GetThingRegistrationTaskReport",
	"ListAttachedPolicies",
	"ListAuthorizedKeyLists",
	"ListCACertificates",
	"ListCertificates",
	"ListCertificatesByCA",
	"ListPolicies",
	"ListPolicyVersions",
	"ListPrincipalThings",
	"ListProvisioningTemplateVersions",
	"ListProvisioningTemplates",
	"ListTargetsForPolicy",
	"ListThingGroups",
	"ListThingGroupsForThing",
	"ListThingPrincipals",
	"ListThingRegistrationTaskReports",
	"ListThingRegistrationTasks",
	"ListThingTypes",
	"ListThings",
	"ListThingsInThingGroup",
	"PutImportFile",
	"RegisterCertificate",
	"RegisterCertificateWithoutCA",
	"RegisterThing",
	"RemoveThingFromThingGroup",
	"SetDefaultPolicyVersion",
	"StartThingRegistrationTask",
	"StopThingRegistrationTask",
	"UpdateCertificate",
	"UpdateProvisioningTemplate",
	"UpdateThing",
	"UpdateThingGroup",
	"UpdateThingGroupsForThing",
};

/* Operations an installer may call, each limited to its templates. */
static const char *const installer_ops[] = {
	"CreateProvisioningClaim",
};

static const char base32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
static const char secret_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

void accesskey_cleanup(struct accesskey *key)
{
	if (key == NULL)
		return;
	OPENSSL_cleanse(key->secret, sizeof(key->secret));
}

iotp_rc accesskey_role_parse(const char *s, enum accesskey_role *out, struct iotp_err *err)
{
	if (s != NULL && strcmp(s, "admin") == 0)
		*out = ACCESSKEY_ROLE_ADMIN;
	else if (s != NULL && strcmp(s, "operator") == 0)
		*out = ACCESSKEY_ROLE_OPERATOR;
	else if (s != NULL && strcmp(s, "installer") == 0)
		*out = ACCESSKEY_ROLE_INSTALLER;
	else
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "role '%s' is not admin, operator or installer",
		                    s != NULL ? s : "");
	return IOTP_OK;
}

const char *accesskey_role_name(enum accesskey_role role)
{
	switch (role) {
	case ACCESSKEY_ROLE_ADMIN: return "admin";
	case ACCESSKEY_ROLE_OPERATOR: return "operator";
	case ACCESSKEY_ROLE_INSTALLER: return "installer";
	}
	return "unknown";
}

int accesskey_id_valid(const char *id)
{
	if (id == NULL || strlen(id) != ACCESSKEY_ID_LEN || strncmp(id, "AKIA", 4) != 0)
		return 0;
	for (size_t i = 4; i < ACCESSKEY_ID_LEN; i++) {
		if (strchr(base32_alphabet, id[i]) == NULL || id[i] == '\0')
			return 0;
	}
	return 1;
}

static int template_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* Checks a comma-separated list of template names. */
static iotp_rc check_templates(const char *list, struct iotp_err *err)
{
	const char *p = list;

	if (strlen(list) > ACCESSKEY_TEMPLATES_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "template list longer than %d characters",
		                    ACCESSKEY_TEMPLATES_MAX);
	for (;;) {
		size_t n = 0;

		while (p[n] != '\0' && p[n] != ',') {
			if (!template_name_char(p[n]))
				return iotp_err_set(err, IOTP_ERR_INVALID,
				                    "template names may hold only letters, digits, "
				                    "'_' and '-' (in '%s')", list);
			n++;
		}
		if (n == 0 || n > ACCESSKEY_TEMPLATE_NAME_MAX)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "template names must be 1 to %d characters (in '%s')",
			                    ACCESSKEY_TEMPLATE_NAME_MAX, list);
		if (p[n] == '\0')
			return IOTP_OK;
		p += n + 1;
	}
}

/* 1 when name is one of the comma-separated names in list. */
static int list_has(const char *list, const char *name)
{
	size_t len = strlen(name);
	const char *p = list;

	if (len == 0)
		return 0;
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);

		if (n == len && memcmp(p, name, len) == 0)
			return 1;
		if (end == NULL)
			break;
		p = end + 1;
	}
	return 0;
}

static iotp_rc random_string(char *out, size_t n, const char *alphabet, size_t alen,
                             struct iotp_err *err)
{
	/* Rejection sampling keeps every character equally likely. */
	unsigned limit = 256 - (256 % (unsigned)alen);
	size_t filled = 0;
	iotp_rc rc = IOTP_OK;

	while (filled < n) {
		unsigned char b[64];

		if ((rc = util_random(b, sizeof(b), err)) != IOTP_OK)
			break;
		for (size_t i = 0; i < sizeof(b) && filled < n; i++) {
			if (b[i] < limit)
				out[filled++] = alphabet[b[i] % alen];
		}
		OPENSSL_cleanse(b, sizeof(b));
	}
	out[n] = '\0';
	return rc;
}

static iotp_rc new_id(char out[ACCESSKEY_ID_LEN + 1], struct iotp_err *err)
{
	unsigned char b[10];
	iotp_rc rc;

	if ((rc = util_random(b, sizeof(b), err)) != IOTP_OK)
		return rc;
	memcpy(out, "AKIA", 4);
	/* 80 bits as 16 groups of 5. */
	for (int i = 0; i < 16; i++) {
		int bit = i * 5;
		unsigned v = ((unsigned)b[bit / 8] << 8) | (bit / 8 + 1 < 10 ? b[bit / 8 + 1] : 0);

		v = (v >> (11 - bit % 8)) & 31;
		out[4 + i] = base32_alphabet[v];
	}
	out[ACCESSKEY_ID_LEN] = '\0';
	return IOTP_OK;
}

iotp_rc accesskey_create(struct iotp_core *core, const char *actor, enum accesskey_role role,
                         const char *templates, const char *description,
                         struct accesskey *out, struct iotp_err *err)
{
	struct accesskey key;
	char detail[ACCESSKEY_TEMPLATES_MAX + 128];
	char object[64];
	int began = 0;
	iotp_rc rc;

	memset(&key, 0, sizeof(key));
	if (templates == NULL)
		templates = "";
	if (description == NULL)
		description = "";
	if (role != ACCESSKEY_ROLE_ADMIN && role != ACCESSKEY_ROLE_OPERATOR &&
	    role != ACCESSKEY_ROLE_INSTALLER)
		return iotp_err_set(err, IOTP_ERR_INVALID, "unknown role %d", (int)role);
	if (role == ACCESSKEY_ROLE_INSTALLER && templates[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "an installer key needs the provisioning templates it may "
		                    "use (--templates NAME,...)");
	if (role != ACCESSKEY_ROLE_INSTALLER && templates[0] != '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "only installer keys are limited to templates; a %s key "
		                    "may use every template", accesskey_role_name(role));
	if (templates[0] != '\0' && (rc = check_templates(templates, err)) != IOTP_OK)
		return rc;
	if (strlen(description) > ACCESSKEY_DESCRIPTION_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "description longer than %d characters",
		                    ACCESSKEY_DESCRIPTION_MAX);

	key.role = role;
	key.active = 1;
	key.created = util_now();
	util_strlcpy(key.templates, templates, sizeof(key.templates));
	util_strlcpy(key.description, description, sizeof(key.description));
	if ((rc = new_id(key.id, err)) != IOTP_OK ||
	    (rc = random_string(key.secret, ACCESSKEY_SECRET_LEN, secret_alphabet,
	                        sizeof(secret_alphabet) - 1, err)) != IOTP_OK)
		goto out;

	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		goto out;
	began = 1;
	{
		struct store_val p[] = {
			SV_TEXT(key.id), SV_TEXT(key.secret), SV_TEXT(accesskey_role_name(role)),
			templates[0] != '\0' ? SV_TEXT(templates) : SV_NULL,
			description[0] != '\0' ? SV_TEXT(description) : SV_NULL, SV_INT(key.created),
		};

		rc = store_exec(core->store,
		                "INSERT INTO access_keys (id, secret, role, templates, status, "
		                "description, created) VALUES (?, ?, ?, ?, 'ACTIVE', ?, ?)",
		                p, (int)IOTP_ARRAY_LEN(p), NULL, NULL, err);
		if (rc == IOTP_ERR_EXISTS)
			rc = iotp_err_set(err, IOTP_ERR_INTERNAL, "access key id collision: retry");
		if (rc != IOTP_OK)
			goto out;
	}
	/* Template names are restricted to [0-9A-Za-z_-,], so they need no JSON
	 * escaping. */
	snprintf(detail, sizeof(detail), "{\"role\":\"%s\",\"templates\":\"%s\"}",
	         accesskey_role_name(role), templates);
	snprintf(object, sizeof(object), "accesskey/%s", key.id);
	if ((rc = store_event_append(core->store, actor, "accesskey.create", object, detail, NULL,
	                             err)) != IOTP_OK)
		goto out;
	rc = store_commit(core->store, err);
	began = 0;
	if (rc != IOTP_OK)
		goto out;
	*out = key;
out:
	if (began)
		store_rollback(core->store);
	accesskey_cleanup(&key);
	return rc;
}

/* Columns: id, secret, role, templates, status, description, created,
 * last_used. */
#define KEY_COLUMNS "id, secret, role, templates, status, description, created, last_used"

struct row_ctx {
	struct accesskey *key;
	int with_secret;
	int found;
	iotp_rc rc;
	accesskey_list_fn fn;
	void *ud;
};

static const char *col_text(const struct store_row *row, int i)
{
	return row->cols[i].type == STORE_TEXT ? row->cols[i].s : "";
}

static int64_t col_int(const struct store_row *row, int i)
{
	return row->cols[i].type == STORE_INT ? row->cols[i].i : 0;
}

/* Fills key from a row; IOTP_ERR_DB when the row is not what we wrote. */
static iotp_rc key_from_row(const struct store_row *row, int with_secret,
                            struct accesskey *key)
{
	memset(key, 0, sizeof(*key));
	if (row->ncols != 8 ||
	    util_strlcpy(key->id, col_text(row, 0), sizeof(key->id)) >= sizeof(key->id) ||
	    accesskey_role_parse(col_text(row, 2), &key->role, NULL) != IOTP_OK)
		return IOTP_ERR_DB;
	if (with_secret &&
	    util_strlcpy(key->secret, col_text(row, 1), sizeof(key->secret)) >= sizeof(key->secret))
		return IOTP_ERR_DB;
	util_strlcpy(key->templates, col_text(row, 3), sizeof(key->templates));
	key->active = strcmp(col_text(row, 4), "ACTIVE") == 0;
	util_strlcpy(key->description, col_text(row, 5), sizeof(key->description));
	key->created = col_int(row, 6);
	key->last_used = col_int(row, 7);
	return IOTP_OK;
}

static int on_lookup_row(void *ud, const struct store_row *row)
{
	struct row_ctx *c = ud;

	c->rc = key_from_row(row, c->with_secret, c->key);
	c->found = 1;
	return 1;
}

iotp_rc accesskey_lookup(struct iotp_core *core, const char *id, struct accesskey *out,
                         struct iotp_err *err)
{
	struct accesskey key;
	struct row_ctx c = {&key, 1, 0, IOTP_OK, NULL, NULL};
	struct store_val p[] = {SV_TEXT(id)};
	iotp_rc rc;

	memset(&key, 0, sizeof(key));
	rc = store_exec(core->store, "SELECT " KEY_COLUMNS " FROM access_keys WHERE id = ?", p, 1,
	                on_lookup_row, &c, err);
	if (rc != IOTP_OK)
		goto out;
	if (!c.found) {
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "access key %s not found", id);
		goto out;
	}
	if (c.rc != IOTP_OK) {
		rc = iotp_err_set(err, IOTP_ERR_DB, "access key %s: malformed row in the store", id);
		goto out;
	}
	*out = key;
out:
	accesskey_cleanup(&key);
	return rc;
}

static int on_list_row(void *ud, const struct store_row *row)
{
	struct row_ctx *c = ud;
	struct accesskey key;

	if (key_from_row(row, 0, &key) != IOTP_OK) {
		c->rc = IOTP_ERR_DB;
		return 1;
	}
	return c->fn(c->ud, &key);
}

iotp_rc accesskey_list(struct iotp_core *core, accesskey_list_fn fn, void *ud,
                       struct iotp_err *err)
{
	struct row_ctx c = {NULL, 0, 0, IOTP_OK, fn, ud};
	iotp_rc rc;

	rc = store_exec(core->store,
	                "SELECT " KEY_COLUMNS " FROM access_keys ORDER BY created, id", NULL, 0,
	                on_list_row, &c, err);
	if (rc == IOTP_OK && c.rc != IOTP_OK)
		rc = iotp_err_set(err, c.rc, "access keys: malformed row in the store");
	return rc;
}

iotp_rc accesskey_disable(struct iotp_core *core, const char *actor, const char *id,
                          struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(id)};
	char object[64];
	int64_t changes = 0, exists = 0;
	int began = 0;
	iotp_rc rc;

	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		goto out;
	began = 1;
	rc = store_query_int(core->store, "SELECT COUNT(*) FROM access_keys WHERE id = ?", p, 1,
	                     &exists, err);
	if (rc != IOTP_OK)
		goto out;
	if (exists == 0) {
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "access key %s not found", id);
		goto out;
	}
	rc = store_exec_changes(core->store,
	                        "UPDATE access_keys SET status = 'DISABLED' "
	                        "WHERE id = ? AND status <> 'DISABLED'",
	                        p, 1, &changes, err);
	if (rc != IOTP_OK)
		goto out;
	if (changes > 0) {
		snprintf(object, sizeof(object), "accesskey/%.40s", id);
		rc = store_event_append(core->store, actor, "accesskey.disable", object, NULL, NULL,
		                        err);
		if (rc != IOTP_OK)
			goto out;
	}
	rc = store_commit(core->store, err);
	began = 0;
out:
	if (began)
		store_rollback(core->store);
	return rc;
}

iotp_rc accesskey_touch(struct iotp_core *core, const struct accesskey *key, int64_t now,
                        struct iotp_err *err)
{
	struct store_val p[] = {SV_INT(now), SV_TEXT(key->id)};

	if (key->last_used != 0 && now - key->last_used < ACCESSKEY_TOUCH_INTERVAL &&
	    now >= key->last_used)
		return IOTP_OK;
	return store_exec(core->store, "UPDATE access_keys SET last_used = ? WHERE id = ?", p, 2,
	                  NULL, NULL, err);
}

static int cmp_op(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int in_table(const char *const *table, size_t n, const char *op)
{
	return bsearch(&op, table, n, sizeof(*table), cmp_op) != NULL;
}

enum accesskey_role accesskey_min_role(const char *operation)
{
	if (operation == NULL)
		return ACCESSKEY_ROLE_ADMIN;
	if (in_table(installer_ops, IOTP_ARRAY_LEN(installer_ops), operation))
		return ACCESSKEY_ROLE_INSTALLER;
	if (in_table(operator_ops, IOTP_ARRAY_LEN(operator_ops), operation))
		return ACCESSKEY_ROLE_OPERATOR;
	return ACCESSKEY_ROLE_ADMIN;
}

iotp_rc accesskey_authorize(const struct accesskey *key, const char *operation,
                            const char *template_name, struct iotp_err *err)
{
	enum accesskey_role need = accesskey_min_role(operation);

	if (!key->active)
		return iotp_err_set(err, IOTP_ERR_DENIED, "access key %s is disabled", key->id);
	if (key->role < need)
		return iotp_err_set(err, IOTP_ERR_DENIED,
		                    "access key %s (role %s) may not call %s: it needs the %s role",
		                    key->id, accesskey_role_name(key->role),
		                    operation != NULL ? operation : "this operation",
		                    accesskey_role_name(need));
	if (key->role == ACCESSKEY_ROLE_INSTALLER &&
	    (template_name == NULL || !list_has(key->templates, template_name)))
		return iotp_err_set(err, IOTP_ERR_DENIED,
		                    "access key %s (role installer) may not use provisioning "
		                    "template '%s'",
		                    key->id, template_name != NULL ? template_name : "");
	return IOTP_OK;
}
