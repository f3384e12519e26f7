/*
 * Authorized public-key lists: upload, describe, list, delete (see
 * authlist.h). Enrolment by CSR is in authlist_enroll.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/util.h"
#include "core/authlist.h"
#include "core/authlist_internal.h"
#include "core/provision.h"

int authlist_name_ok(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > AUTHLIST_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != ':' && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

iotp_rc authlist_key_fingerprint(const char *public_key, char out[65], struct iotp_err *err)
{
	EVP_PKEY *key = NULL;
	unsigned char *der = NULL;
	size_t n = public_key != NULL ? strlen(public_key) : 0, dlen = 0;
	iotp_rc rc = IOTP_OK;

	if (n == 0 || n > AUTHLIST_PUBKEY_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "publicKey must be 1 to %d characters of PEM or hex",
		                    AUTHLIST_PUBKEY_MAX);
	if (strstr(public_key, "-----BEGIN") != NULL) {
		BIO *bio = BIO_new_mem_buf(public_key, (int)n);

		if (bio != NULL)
			key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
		BIO_free(bio);
		if (key == NULL) {
			rc = iotp_err_ssl(err, IOTP_ERR_INVALID,
			                  "publicKey is not a PEM public key (BEGIN PUBLIC KEY)");
			goto out;
		}
	} else {
		const unsigned char *p;
		int hi = -1;

		der = malloc(n / 2 + 1);
		if (der == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			int v;

			if (isspace((unsigned char)public_key[i]) || public_key[i] == ':')
				continue;
			if ((v = util_hexval((unsigned char)public_key[i])) < 0) {
				rc = iotp_err_set(err, IOTP_ERR_INVALID,
				                  "publicKey is neither PEM nor hex (character %zu)", i + 1);
				goto out;
			}
			if (hi < 0) {
				hi = v;
			} else {
				der[dlen++] = (unsigned char)(hi << 4 | v);
				hi = -1;
			}
		}
		p = der;
		if (hi >= 0 || dlen == 0 || (key = d2i_PUBKEY(NULL, &p, (long)dlen)) == NULL ||
		    p != der + dlen) {
			rc = iotp_err_ssl(err, IOTP_ERR_INVALID,
			                  "publicKey hex is not a DER SubjectPublicKeyInfo");
			goto out;
		}
	}
	if ((rc = pki_key_check(key, err)) != IOTP_OK) {
		rc = IOTP_ERR_INVALID;
		goto out;
	}
	rc = pki_pubkey_fingerprint(key, out, err);
out:
	EVP_PKEY_free(key);
	free(der);
	return rc;
}

iotp_rc authlist_create(struct iotp_core *core, const char *actor, const char *name,
                        const char *template_name, const char *description,
                        struct iotp_err *err)
{
	struct prov_template t;
	char object[AUTHLIST_NAME_MAX + 16];
	int64_t now = util_now();
	iotp_rc rc;

	memset(&t, 0, sizeof(t));
	if (!authlist_name_ok(name))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "list name must be 1 to 128 characters of [a-zA-Z0-9:_-]");
	if (description != NULL && strlen(description) > 2028)
		return iotp_err_set(err, IOTP_ERR_INVALID, "description is over 2028 characters");
	if (template_name == NULL || template_name[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID, "templateName is required");
	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		return rc;
	if ((rc = prov_template_describe(core, template_name, &t, err)) != IOTP_OK)
		goto out;
	{
		struct store_val p[] = {SV_TEXT(name), SV_TEXT(template_name), SV_TEXT(description),
		                        SV_INT(now), SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO authlists (name, template_name, description, created, "
		                "updated) VALUES (?, ?, ?, ?, ?)",
		                p, 5, NULL, NULL, err);
		if (rc == IOTP_ERR_EXISTS)
			rc = iotp_err_set(err, IOTP_ERR_EXISTS, "authorized key list %s already exists",
			                  name);
	}
	snprintf(object, sizeof(object), "authlist/%s", name);
	if (rc == IOTP_OK)
		rc = core_event(core, actor, "authlist.create", object,
		                    json_pack("{s:s}", "templateName", template_name), err);
out:
	prov_template_cleanup(&t);
	if (rc == IOTP_OK)
		return store_commit(core->store, err);
	store_rollback(core->store);
	return rc;
}

/* One entry of an upload, checked. */
static iotp_rc add_one(struct iotp_core *core, const char *name, size_t idx, const json_t *e,
                       int64_t now, struct iotp_err *err)
{
	const json_t *pk = json_object_get(e, "publicKey"), *dev = json_object_get(e, "deviceId");
	const json_t *attrs = json_object_get(e, "attributes");
	char fp[65], *attr_text = NULL;
	struct iotp_err kerr;
	const char *k;
	json_t *v;
	iotp_rc rc;

	if (!json_is_object(e))
		return iotp_err_set(err, IOTP_ERR_INVALID, "keys[%zu] must be an object", idx);
	json_object_foreach((json_t *)e, k, v) {
		if (strcmp(k, "publicKey") != 0 && strcmp(k, "deviceId") != 0 &&
		    strcmp(k, "attributes") != 0)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "keys[%zu]: unknown member '%.64s' (publicKey, deviceId, "
			                    "attributes)",
			                    idx, k);
	}
	if (!json_is_string(pk))
		return iotp_err_set(err, IOTP_ERR_INVALID, "keys[%zu]: publicKey must be a string",
		                    idx);
	if (!json_is_string(dev) || !registry_thing_name_valid(json_string_value(dev)))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "keys[%zu]: deviceId must be 1 to 128 characters of "
		                    "[a-zA-Z0-9:_-]",
		                    idx);
	if (attrs != NULL && !json_is_null(attrs)) {
		if (!json_is_object(attrs))
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "keys[%zu]: attributes must be an object of strings", idx);
		json_object_foreach((json_t *)attrs, k, v) {
			if (!json_is_string(v) || strcmp(k, "DeviceId") == 0 ||
			    strncmp(k, "AWS::", 5) == 0 || strlen(k) > 128 ||
			    strlen(json_string_value(v)) > 800)
				return iotp_err_set(err, IOTP_ERR_INVALID,
				                    "keys[%zu]: attribute '%.64s' must be a string of at "
				                    "most 800 characters with a name of at most 128 "
				                    "(not DeviceId or AWS::...)",
				                    idx, k);
		}
		attr_text = json_dumps(attrs, JSON_COMPACT | JSON_SORT_KEYS);
	} else {
		attr_text = strdup("{}");
	}
	if (attr_text == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	if (authlist_key_fingerprint(json_string_value(pk), fp, &kerr) != IOTP_OK) {
		free(attr_text);
		return iotp_err_set(err, kerr.rc, "keys[%zu]: %s", idx, kerr.msg);
	}
	{
		struct store_val p[] = {SV_TEXT(fp), SV_TEXT(name), SV_TEXT(json_string_value(dev)),
		                        SV_TEXT(attr_text), SV_INT(now)};

		rc = store_exec(core->store,
		                "INSERT INTO authlist_keys (fingerprint, list_name, device_id, "
		                "attributes, created) VALUES (?, ?, ?, ?, ?)",
		                p, 5, NULL, NULL, err);
	}
	if (rc == IOTP_ERR_EXISTS)
		rc = iotp_err_set(err, IOTP_ERR_EXISTS,
		                  "keys[%zu]: public key %s is already on an authorized list", idx, fp);
	free(attr_text);
	return rc;
}

iotp_rc authlist_add_keys(struct iotp_core *core, const char *actor, const char *name,
                          const json_t *keys, int64_t *added, struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	char object[AUTHLIST_NAME_MAX + 16];
	int64_t now = util_now(), exists = 0;
	size_t n = json_array_size(keys);
	iotp_rc rc;

	if (!json_is_array(keys))
		return iotp_err_set(err, IOTP_ERR_INVALID, "keys must be an array");
	if (n > AUTHLIST_KEYS_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "at most %d keys per upload (got %zu): upload in parts",
		                    AUTHLIST_KEYS_MAX, n);
	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		return rc;
	rc = store_query_int(core->store, "SELECT COUNT(*) FROM authlists WHERE name = ?", p, 1,
	                     &exists, err);
	if (rc == IOTP_OK && exists == 0)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "authorized key list %.128s not found",
		                  name);
	for (size_t i = 0; rc == IOTP_OK && i < n; i++)
		rc = add_one(core, name, i, json_array_get(keys, i), now, err);
	if (rc == IOTP_OK && n > 0) {
		struct store_val q[] = {SV_INT(now), SV_TEXT(name)};

		rc = store_exec(core->store, "UPDATE authlists SET updated = ? WHERE name = ?", q, 2,
		                NULL, NULL, err);
		snprintf(object, sizeof(object), "authlist/%s", name);
		if (rc == IOTP_OK)
			rc = core_event(core, actor, "authlist.add_keys", object,
			                    json_pack("{s:I}", "keys", (json_int_t)n), err);
	}
	if (rc != IOTP_OK) {
		store_rollback(core->store);
		return rc;
	}
	if ((rc = store_commit(core->store, err)) == IOTP_OK)
		*added = (int64_t)n;
	return rc;
}

void authlist_info_cleanup(struct authlist_info *i)
{
	if (i == NULL)
		return;
	free(i->description);
	memset(i, 0, sizeof(*i));
}

struct info_row {
	struct authlist_info *i;
	int found;
	int failed;
};

static int info_row(void *ud, const struct store_row *row)
{
	struct info_row *r = ud;

	r->found = 1;
	util_strlcpy(r->i->name, row->cols[0].s, sizeof(r->i->name));
	util_strlcpy(r->i->template_name, row->cols[1].s, sizeof(r->i->template_name));
	if (row->cols[2].type == STORE_TEXT && (r->i->description = strdup(row->cols[2].s)) == NULL)
		r->failed = 1;
	r->i->created = row->cols[3].i;
	r->i->updated = row->cols[4].i;
	return 1;
}

iotp_rc authlist_describe(struct iotp_core *core, const char *name, struct authlist_info *out,
                          struct iotp_err *err)
{
	struct authlist_info i;
	struct info_row r = {&i, 0, 0};
	struct store_val p[] = {SV_TEXT(name)};
	iotp_rc rc;

	memset(&i, 0, sizeof(i));
	rc = store_exec(core->store,
	                "SELECT name, template_name, description, created, updated FROM authlists "
	                "WHERE name = ?",
	                p, 1, info_row, &r, err);
	if (rc == IOTP_OK && r.failed)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	else if (rc == IOTP_OK && !r.found)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "authorized key list %.128s not found",
		                  name != NULL ? name : "");
	if (rc == IOTP_OK)
		rc = store_query_int(core->store,
		                     "SELECT COUNT(*) FROM authlist_keys WHERE list_name = ?", p, 1,
		                     &i.keys, err);
	if (rc == IOTP_OK)
		rc = store_query_int(core->store,
		                     "SELECT COUNT(*) FROM authlist_keys WHERE list_name = ? AND "
		                     "consumed IS NOT NULL",
		                     p, 1, &i.consumed, err);
	if (rc != IOTP_OK) {
		authlist_info_cleanup(&i);
		return rc;
	}
	*out = i;
	return IOTP_OK;
}

struct name_rows {
	char **items;
	size_t count;
	int failed;
};

static int name_row(void *ud, const struct store_row *row)
{
	struct name_rows *r = ud;
	char **grown = realloc(r->items, (r->count + 1) * sizeof(*grown));

	if (grown == NULL) {
		r->failed = 1;
		return 1;
	}
	r->items = grown;
	if ((grown[r->count] = strdup(row->cols[0].s)) == NULL) {
		r->failed = 1;
		return 1;
	}
	r->count++;
	return 0;
}

iotp_rc authlist_list(struct iotp_core *core, const struct registry_page *page,
                      struct registry_str_list *out, struct iotp_err *err)
{
	struct name_rows r = {NULL, 0, 0};
	const char *after = page != NULL && page->token != NULL ? page->token : "";
	int max = page != NULL && page->max != 0 ? page->max : REGISTRY_PAGE_DEFAULT;
	iotp_rc rc;

	if (max < 1 || max > REGISTRY_PAGE_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "maxResults must be 1 to %d",
		                    REGISTRY_PAGE_MAX);
	if (after[0] != '\0' && !authlist_name_ok(after))
		return iotp_err_set(err, IOTP_ERR_INVALID, "invalid nextToken");
	{
		struct store_val p[] = {SV_TEXT(after), SV_INT(max + 1)};

		rc = store_exec(core->store,
		                "SELECT name FROM authlists WHERE name > ? ORDER BY name LIMIT ?", p, 2,
		                name_row, &r, err);
	}
	if (rc == IOTP_OK && r.failed)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	memset(out, 0, sizeof(*out));
	if (rc == IOTP_OK && r.count > (size_t)max) {
		free(r.items[max]);
		r.count = (size_t)max;
		if ((out->next_token = strdup(r.items[max - 1])) == NULL)
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	}
	if (rc != IOTP_OK) {
		for (size_t i = 0; i < r.count; i++)
			free(r.items[i]);
		free(r.items);
		free(out->next_token);
		out->next_token = NULL;
		return rc;
	}
	out->items = r.items;
	out->count = r.count;
	return IOTP_OK;
}

iotp_rc authlist_delete(struct iotp_core *core, const char *actor, const char *name,
                        struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(name)};
	char object[AUTHLIST_NAME_MAX + 16];
	int64_t changes = 0, keys = 0;
	iotp_rc rc;

	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		return rc;
	rc = store_exec_changes(core->store, "DELETE FROM authlist_keys WHERE list_name = ?", p, 1,
	                        &keys, err);
	if (rc == IOTP_OK)
		rc = store_exec_changes(core->store, "DELETE FROM authlists WHERE name = ?", p, 1,
		                        &changes, err);
	if (rc == IOTP_OK && changes == 0)
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "authorized key list %.128s not found",
		                  name != NULL ? name : "");
	snprintf(object, sizeof(object), "authlist/%.128s", name != NULL ? name : "");
	if (rc == IOTP_OK)
		rc = core_event(core, actor, "authlist.delete", object,
		                    json_pack("{s:I}", "keys", (json_int_t)keys), err);
	if (rc != IOTP_OK) {
		store_rollback(core->store);
		return rc;
	}
	return store_commit(core->store, err);
}
