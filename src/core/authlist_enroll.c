/*
 * Enrolment by CSR (see authlist.h): the credential decides the template
 * and the parameters, then one transaction issues the certificate, applies
 * the template (prov_apply, the function every registration path uses),
 * activates the certificate and consumes the authorized-list entry. Refusals
 * that an operator must be able to see later (unknown key, replay) are
 * written to the audit log in a transaction of their own, after the
 * enrolment's has been rolled back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "common/log.h"
#include "common/util.h"
#include "core/authlist.h"
#include "core/authlist_internal.h"
#include "core/provision.h"
#include "core/template.h"

void enroll_out_cleanup(struct enroll_out *o)
{
	if (o == NULL)
		return;
	free(o->cert_pem);
	memset(o, 0, sizeof(*o));
}

/* The fingerprint of the CSR's public key (the CSR is verified). */
static iotp_rc csr_fingerprint(const void *csr, size_t len, char fp[65], struct iotp_err *err)
{
	X509_REQ *req = NULL;
	EVP_PKEY *key;
	iotp_rc rc;

	if ((rc = pki_csr_parse(csr, len, &req, err)) != IOTP_OK)
		return rc;
	key = X509_REQ_get0_pubkey(req);
	if (key == NULL)
		rc = iotp_err_ssl(err, IOTP_ERR_CERT, "the CSR has no usable public key");
	else
		rc = pki_pubkey_fingerprint(key, fp, err);
	X509_REQ_free(req);
	return rc;
}

iotp_rc authlist_csr_known(struct iotp_core *core, const void *csr, size_t len, int *known,
                           struct iotp_err *err)
{
	char fp[65];
	int64_t n = 0;
	iotp_rc rc;

	if ((rc = csr_fingerprint(csr, len, fp, err)) != IOTP_OK)
		return rc;
	{
		struct store_val p[] = {SV_TEXT(fp)};

		rc = store_query_int(core->store,
		                     "SELECT COUNT(*) FROM authlist_keys WHERE fingerprint = ?", p, 1,
		                     &n, err);
	}
	if (rc == IOTP_OK)
		*known = n > 0;
	return rc;
}

iotp_rc authlist_cert_is_claim(struct iotp_core *core, const char *cert_id, int *is_claim,
                               struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(cert_id)};
	int64_t n = 0;
	iotp_rc rc;

	rc = store_query_int(core->store,
	                     "SELECT COUNT(*) FROM certificates WHERE id = ? AND purpose = 'CLAIM'",
	                     p, 1, &n, err);
	if (rc == IOTP_OK)
		*is_claim = n > 0;
	return rc;
}

/* An audit event in its own transaction (the enrolment's was rolled back). */
static void audit_refusal(struct iotp_core *core, const char *actor, const char *action,
                          const char *object, json_t *detail)
{
	struct iotp_err e;
	iotp_rc rc;

	if ((rc = store_begin(core->store, &e)) != IOTP_OK) {
		json_decref(detail);
	} else if ((rc = core_event(core, actor, action, object, detail, &e)) == IOTP_OK) {
		rc = store_commit(core->store, &e);
	} else {
		store_rollback(core->store);
	}
	if (rc != IOTP_OK)
		LOG_ERROR("enrol: cannot audit %s on %s: %s", action, object, e.msg);
}

/* The authorized-list entry of a key. */
struct entry_row {
	int found;
	char list[AUTHLIST_NAME_MAX + 1];
	char device_id[AUTHLIST_DEVICE_ID_MAX + 1];
	char *attributes;
	int consumed;
	char cert_id[PKI_CERT_ID_LEN + 1];
	char template_name[REGISTRY_NAME_MAX + 1];
};

static int entry_row(void *ud, const struct store_row *row)
{
	struct entry_row *e = ud;

	e->found = 1;
	util_strlcpy(e->list, row->cols[0].s, sizeof(e->list));
	util_strlcpy(e->device_id, row->cols[1].s, sizeof(e->device_id));
	e->attributes = strdup(row->cols[2].s);
	e->consumed = row->cols[3].type != STORE_NULL;
	if (row->cols[4].type == STORE_TEXT)
		util_strlcpy(e->cert_id, row->cols[4].s, sizeof(e->cert_id));
	util_strlcpy(e->template_name, row->cols[5].s, sizeof(e->template_name));
	return 1;
}

/* The claim certificate's record. */
struct claim_row {
	int found;
	char purpose[16];
	char status[32];
	char template_name[REGISTRY_NAME_MAX + 1];
	int64_t not_after;
};

static int claim_row(void *ud, const struct store_row *row)
{
	struct claim_row *c = ud;

	c->found = 1;
	util_strlcpy(c->purpose, row->cols[0].s, sizeof(c->purpose));
	util_strlcpy(c->status, row->cols[1].s, sizeof(c->status));
	if (row->cols[2].type == STORE_TEXT)
		util_strlcpy(c->template_name, row->cols[2].s, sizeof(c->template_name));
	c->not_after = row->cols[3].i;
	return 1;
}

/* An installer key's only template, when it has exactly one. */
static int single_template(const struct accesskey *key, char *out, size_t size)
{
	if (key->templates[0] == '\0' || strchr(key->templates, ',') != NULL)
		return 0;
	return util_strlcpy(out, key->templates, size) < size;
}

/* Issues the certificate and applies the template; inside the caller's
 * transaction. */
static iotp_rc issue_and_apply(struct iotp_core *core, const char *actor,
                               const char *template_name, const json_t *params,
                               const void *csr, size_t csr_len, struct enroll_out *out,
                               struct iotp_err *err)
{
	struct prov_template t;
	struct template *tmpl = NULL;
	struct registry_cert_created created;
	struct registry_cert cur;
	struct prov_apply_in in;
	struct prov_result res;
	X509 *x = NULL;
	iotp_rc rc;

	memset(&t, 0, sizeof(t));
	memset(&created, 0, sizeof(created));
	memset(&cur, 0, sizeof(cur));
	memset(&in, 0, sizeof(in));
	memset(&res, 0, sizeof(res));
	if ((rc = prov_template_describe(core, template_name, &t, err)) != IOTP_OK)
		goto out;
	if (!t.enabled) {
		rc = iotp_err_set(err, IOTP_ERR_DENIED, "provisioning template %s is disabled",
		                  template_name);
		goto out;
	}
	if ((rc = template_parse(t.body, strlen(t.body), TEMPLATE_KIND_ANY, &tmpl, err)) !=
	    IOTP_OK)
		goto out;
	if ((rc = registry_cert_create_from_csr(core, actor, csr, csr_len,
	                                        REGISTRY_CERT_PENDING_ACTIVATION, &created, err)) !=
	    IOTP_OK)
		goto out;
	if ((rc = pki_cert_parse(created.pem, strlen(created.pem), &x, err)) != IOTP_OK)
		goto out;
	in.tmpl = tmpl;
	in.template_name = template_name;
	in.parameters = params;
	in.cert.id = created.id;
	in.cert.x509 = x;
	if ((rc = prov_apply(core, actor, &in, &res, err)) != IOTP_OK)
		goto out;
	/* A template without a certificate resource leaves the status to us. */
	if ((rc = registry_cert_describe(core, created.id, &cur, err)) != IOTP_OK)
		goto out;
	if (cur.status == REGISTRY_CERT_PENDING_ACTIVATION &&
	    (rc = registry_cert_update_status(core, actor, created.id, REGISTRY_CERT_ACTIVE,
	                                      err)) != IOTP_OK)
		goto out;
	util_strlcpy(out->cert_id, created.id, sizeof(out->cert_id));
	util_strlcpy(out->thing_name, res.thing_name, sizeof(out->thing_name));
	out->cert_pem = created.pem;
	created.pem = NULL;
out:
	X509_free(x);
	prov_result_cleanup(&res);
	registry_cert_cleanup(&cur);
	registry_cert_created_cleanup(&created);
	template_free(tmpl);
	prov_template_cleanup(&t);
	return rc;
}

static iotp_rc enroll_by_list(struct iotp_core *core, const char *actor,
                              const struct enroll_in *in, struct enroll_out *out,
                              struct iotp_err *err)
{
	struct entry_row e;
	char fp[65], object[AUTHLIST_NAME_MAX + 16];
	json_t *params = NULL;
	int64_t changes = 0;
	iotp_rc rc;

	memset(&e, 0, sizeof(e));
	if ((rc = csr_fingerprint(in->csr, in->csr_len, fp, err)) != IOTP_OK)
		return rc;
	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		return rc;
	{
		struct store_val p[] = {SV_TEXT(fp)};

		rc = store_exec(core->store,
		                "SELECT k.list_name, k.device_id, k.attributes, k.consumed, k.cert_id, "
		                "l.template_name FROM authlist_keys k JOIN authlists l "
		                "ON l.name = k.list_name WHERE k.fingerprint = ?",
		                p, 1, entry_row, &e, err);
	}
	if (rc != IOTP_OK)
		goto fail;
	if (!e.found) {
		store_rollback(core->store);
		audit_refusal(core, actor, "authlist.unknown_key", "authlist",
		              json_pack("{s:s}", "fingerprint", fp));
		rc = iotp_err_set(err, IOTP_ERR_DENIED,
		                  "public key %s is not on any authorized key list", fp);
		goto out;
	}
	snprintf(object, sizeof(object), "authlist/%s", e.list);
	if (e.consumed) {
		store_rollback(core->store);
		audit_refusal(core, actor, "authlist.replay", object,
		              json_pack("{s:s, s:s, s:s}", "fingerprint", fp, "deviceId", e.device_id,
		                        "certificateId", e.cert_id));
		rc = iotp_err_set(err, IOTP_ERR_DENIED,
		                  "public key %s of device %s has already been used to enrol", fp,
		                  e.device_id);
		goto out;
	}
	if (in->template_name != NULL && strcmp(in->template_name, e.template_name) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_DENIED,
		                  "public key %s is authorized for template %s, not %s", fp,
		                  e.template_name, in->template_name);
		goto fail;
	}
	if (e.attributes == NULL || (params = json_loads(e.attributes, 0, NULL)) == NULL ||
	    !json_is_object(params) ||
	    json_object_set_new(params, "DeviceId", json_string(e.device_id)) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_DB, "authorized key %s: unreadable attributes", fp);
		goto fail;
	}
	{
		struct store_val p[] = {SV_INT(util_now()), SV_TEXT(fp)};

		rc = store_exec_changes(core->store,
		                        "UPDATE authlist_keys SET consumed = ? WHERE fingerprint = ? "
		                        "AND consumed IS NULL",
		                        p, 2, &changes, err);
	}
	if (rc == IOTP_OK && changes != 1)
		rc = iotp_err_set(err, IOTP_ERR_DENIED,
		                  "public key %s has already been used to enrol", fp);
	if (rc == IOTP_OK)
		rc = issue_and_apply(core, actor, e.template_name, params, in->csr, in->csr_len, out,
		                     err);
	if (rc == IOTP_OK) {
		struct store_val p[] = {SV_TEXT(out->cert_id), SV_TEXT(fp)};

		rc = store_exec(core->store,
		                "UPDATE authlist_keys SET cert_id = ? WHERE fingerprint = ?", p, 2,
		                NULL, NULL, err);
	}
	if (rc == IOTP_OK)
		rc = core_event(core, actor, "authlist.consume", object,
		                    json_pack("{s:s, s:s, s:s, s:s}", "fingerprint", fp, "deviceId",
		                              e.device_id, "certificateId", out->cert_id,
		                              "thingName", out->thing_name),
		                    err);
	if (rc == IOTP_OK)
		rc = store_commit(core->store, err);
	else
		store_rollback(core->store);
	goto out;
fail:
	store_rollback(core->store);
out:
	if (rc != IOTP_OK)
		enroll_out_cleanup(out);
	json_decref(params);
	free(e.attributes);
	return rc;
}

static iotp_rc enroll_by_credential(struct iotp_core *core, const char *actor,
                                    const struct enroll_in *in, struct enroll_out *out,
                                    struct iotp_err *err)
{
	char tmpl[REGISTRY_NAME_MAX + 1] = "", object[PKI_CERT_ID_LEN + 8];
	const char *action;
	iotp_rc rc;

	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		return rc;
	if (in->via == ENROLL_CLAIM) {
		struct claim_row c;
		struct store_val p[] = {SV_TEXT(in->claim_cert_id)};

		memset(&c, 0, sizeof(c));
		action = "enroll.claim";
		rc = store_exec(core->store,
		                "SELECT purpose, status, template_name, not_after FROM certificates "
		                "WHERE id = ?",
		                p, 1, claim_row, &c, err);
		if (rc == IOTP_OK && (!c.found || strcmp(c.purpose, "CLAIM") != 0))
			rc = iotp_err_set(err, IOTP_ERR_DENIED,
			                  "the TLS client certificate is not a provisioning claim");
		else if (rc == IOTP_OK &&
		         (strcmp(c.status, "ACTIVE") != 0 || c.not_after <= util_now()))
			rc = iotp_err_set(err, IOTP_ERR_DENIED,
			                  "the provisioning claim is %s", c.not_after <= util_now()
			                                                    ? "expired"
			                                                    : c.status);
		else if (rc == IOTP_OK && c.template_name[0] == '\0')
			rc = iotp_err_set(err, IOTP_ERR_DENIED,
			                  "the provisioning claim is bound to no template");
		else if (rc == IOTP_OK && in->template_name != NULL &&
		         strcmp(in->template_name, c.template_name) != 0)
			rc = iotp_err_set(err, IOTP_ERR_DENIED,
			                  "the provisioning claim is for template %s, not %s",
			                  c.template_name, in->template_name);
		if (rc == IOTP_OK)
			util_strlcpy(tmpl, c.template_name, sizeof(tmpl));
		snprintf(object, sizeof(object), "cert/%s", in->claim_cert_id);
	} else {
		action = "enroll.key";
		if (in->key == NULL)
			rc = iotp_err_set(err, IOTP_ERR_INTERNAL, "enrol by key without a key");
		else if (in->template_name != NULL)
			util_strlcpy(tmpl, in->template_name, sizeof(tmpl));
		else if (!single_template(in->key, tmpl, sizeof(tmpl)))
			rc = iotp_err_set(err, IOTP_ERR_INVALID,
			                  "name the provisioning template in the URL "
			                  "(/.well-known/est/<template>/simpleenroll)");
		if (rc == IOTP_OK)
			rc = accesskey_authorize(in->key, "CreateProvisioningClaim", tmpl, err);
		snprintf(object, sizeof(object), "cert/");
	}
	if (rc == IOTP_OK)
		rc = issue_and_apply(core, actor, tmpl, NULL, in->csr, in->csr_len, out, err);
	if (rc == IOTP_OK) {
		char obj[PKI_CERT_ID_LEN + 8];

		snprintf(obj, sizeof(obj), "cert/%s", out->cert_id);
		rc = core_event(core, actor, action, obj,
		                    in->via == ENROLL_CLAIM
		                        ? json_pack("{s:s, s:s, s:s}", "templateName", tmpl, "claim",
		                                    object, "thingName", out->thing_name)
		                        : json_pack("{s:s, s:s}", "templateName", tmpl, "thingName",
		                                    out->thing_name),
		                    err);
	}
	if (rc == IOTP_OK)
		rc = store_commit(core->store, err);
	else
		store_rollback(core->store);
	if (rc != IOTP_OK)
		enroll_out_cleanup(out);
	return rc;
}

iotp_rc authlist_enroll(struct iotp_core *core, const char *actor, const struct enroll_in *in,
                        struct enroll_out *out, struct iotp_err *err)
{
	struct enroll_out o;
	iotp_rc rc;

	memset(&o, 0, sizeof(o));
	if (in->csr == NULL || in->csr_len == 0)
		return iotp_err_set(err, IOTP_ERR_CERT, "the CSR is empty");
	switch (in->via) {
	case ENROLL_AUTHLIST:
		rc = enroll_by_list(core, actor, in, &o, err);
		break;
	case ENROLL_CLAIM:
	case ENROLL_KEY:
		rc = enroll_by_credential(core, actor, in, &o, err);
		break;
	default:
		return iotp_err_set(err, IOTP_ERR_INVALID, "unknown enrolment kind");
	}
	if (rc == IOTP_OK)
		*out = o;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Re-enrolment                                                        */

iotp_rc authlist_retire_on_use(struct iotp_core *core, const char *actor, const char *cert_id,
                               int *retired, struct iotp_err *err)
{
	struct store_val p[] = {SV_TEXT(cert_id)};
	struct registry_cert old;
	char *old_id = NULL;
	int done = 0;
	iotp_rc rc;

	memset(&old, 0, sizeof(old));
	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		return rc;
	rc = store_query_text(core->store,
	                      "SELECT old_cert_id FROM cert_retirements WHERE new_cert_id = ?", p, 1,
	                      &old_id, err);
	if (rc == IOTP_ERR_NOT_FOUND || (rc == IOTP_OK && old_id == NULL)) {
		rc = IOTP_OK;
		goto out;
	}
	if (rc != IOTP_OK)
		goto out;
	rc = registry_cert_describe(core, old_id, &old, err);
	if (rc == IOTP_OK && old.status == REGISTRY_CERT_ACTIVE) {
		rc = registry_cert_update_status(core, actor, old_id, REGISTRY_CERT_INACTIVE, err);
		done = rc == IOTP_OK;
	} else if (rc == IOTP_ERR_NOT_FOUND) {
		rc = IOTP_OK; /* deleted meanwhile: nothing left to retire */
	}
	if (rc == IOTP_OK)
		rc = store_exec(core->store, "DELETE FROM cert_retirements WHERE new_cert_id = ?", p,
		                1, NULL, NULL, err);
	if (rc == IOTP_OK && done) {
		char object[PKI_CERT_ID_LEN + 8];

		snprintf(object, sizeof(object), "cert/%s", old_id);
		rc = core_event(core, actor, "enroll.retire", object,
		                    json_pack("{s:s}", "replacedBy", cert_id), err);
	}
out:
	registry_cert_cleanup(&old);
	free(old_id);
	if (rc != IOTP_OK) {
		store_rollback(core->store);
		return rc;
	}
	if ((rc = store_commit(core->store, err)) == IOTP_OK && retired != NULL)
		*retired = done;
	return rc;
}

/* Copies the current certificate's things and policies to the new one. */
static iotp_rc copy_attachments(struct iotp_core *core, const char *actor, const char *old_id,
                                const char *new_id, struct iotp_err *err)
{
	char principal[PKI_CERT_ID_LEN + 8], target[PKI_CERT_ID_LEN + 8];
	struct registry_page page = {NULL, REGISTRY_PAGE_MAX};
	char *token = NULL;
	iotp_rc rc = IOTP_OK;

	snprintf(principal, sizeof(principal), "cert/%s", old_id);
	snprintf(target, sizeof(target), "cert/%s", new_id);
	do {
		struct registry_str_list things = {0};

		page.token = token;
		rc = registry_principal_list_things(core, principal, &page, &things, err);
		for (size_t i = 0; rc == IOTP_OK && i < things.count; i++)
			rc = registry_thing_attach_principal(core, actor, things.items[i], target, err);
		free(token);
		token = things.next_token;
		things.next_token = NULL;
		registry_str_list_cleanup(&things);
	} while (rc == IOTP_OK && token != NULL);
	do {
		struct registry_ref_list pols = {0};

		page.token = token;
		if (rc != IOTP_OK)
			break;
		rc = registry_policy_list_attached(core, principal, 0, &page, &pols, err);
		for (size_t i = 0; rc == IOTP_OK && i < pols.count; i++)
			rc = registry_policy_attach(core, actor, pols.items[i].name, target, err);
		free(token);
		token = pols.next_token;
		pols.next_token = NULL;
		registry_ref_list_cleanup(&pols);
	} while (rc == IOTP_OK && token != NULL);
	free(token);
	return rc;
}

iotp_rc authlist_reenroll(struct iotp_core *core, const char *actor, const char *current_cert_id,
                          const void *csr, size_t len, struct enroll_out *out,
                          struct iotp_err *err)
{
	struct registry_cert cur;
	struct registry_cert_created created;
	struct enroll_out o;
	X509_REQ *req = NULL;
	X509 *cx = NULL;
	iotp_rc rc;

	memset(&cur, 0, sizeof(cur));
	memset(&created, 0, sizeof(created));
	memset(&o, 0, sizeof(o));
	if ((rc = authlist_retire_on_use(core, actor, current_cert_id, NULL, err)) != IOTP_OK)
		return rc;
	if ((rc = registry_cert_describe(core, current_cert_id, &cur, err)) != IOTP_OK) {
		if (rc == IOTP_ERR_NOT_FOUND)
			rc = iotp_err_set(err, IOTP_ERR_DENIED,
			                  "the TLS client certificate is not registered");
		goto out;
	}
	if (cur.status != REGISTRY_CERT_ACTIVE) {
		rc = iotp_err_set(err, IOTP_ERR_DENIED,
		                  "certificate %s is %s: only an ACTIVE certificate can re-enrol",
		                  current_cert_id, registry_cert_status_name(cur.status));
		goto out;
	}
	/* The TLS layer accepts any client certificate (possession only):
	 * validity is judged here. An expired certificate enrols afresh. */
	if (cur.not_after <= util_now()) {
		rc = iotp_err_set(err, IOTP_ERR_DENIED,
		                  "certificate %s has expired: only a valid certificate can re-enrol",
		                  current_cert_id);
		goto out;
	}
	if ((rc = pki_csr_parse(csr, len, &req, err)) != IOTP_OK ||
	    (rc = pki_cert_parse(cur.pem, strlen(cur.pem), &cx, err)) != IOTP_OK)
		goto out;
	if (X509_NAME_cmp(X509_REQ_get_subject_name(req), X509_get_subject_name(cx)) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_CERT,
		                  "the CSR's subject must be the current certificate's subject");
		goto out;
	}
	if ((rc = store_begin(core->store, err)) != IOTP_OK)
		goto out;
	rc = registry_cert_create_from_csr(core, actor, csr, len, REGISTRY_CERT_ACTIVE, &created,
	                                   err);
	if (rc == IOTP_OK)
		rc = copy_attachments(core, actor, current_cert_id, created.id, err);
	if (rc == IOTP_OK) {
		struct store_val p[] = {SV_TEXT(created.id), SV_TEXT(current_cert_id),
		                        SV_INT(util_now())};

		rc = store_exec(core->store,
		                "INSERT INTO cert_retirements (new_cert_id, old_cert_id, created) "
		                "VALUES (?, ?, ?)",
		                p, 3, NULL, NULL, err);
	}
	if (rc == IOTP_OK) {
		char object[PKI_CERT_ID_LEN + 8];

		snprintf(object, sizeof(object), "cert/%s", created.id);
		rc = core_event(core, actor, "enroll.reenroll", object,
		                    json_pack("{s:s}", "replaces", current_cert_id), err);
	}
	if (rc == IOTP_OK)
		rc = store_commit(core->store, err);
	else
		store_rollback(core->store);
	if (rc != IOTP_OK)
		goto out;
	util_strlcpy(o.cert_id, created.id, sizeof(o.cert_id));
	o.cert_pem = created.pem;
	created.pem = NULL;
	*out = o;
out:
	X509_REQ_free(req);
	X509_free(cx);
	registry_cert_created_cleanup(&created);
	registry_cert_cleanup(&cur);
	return rc;
}
