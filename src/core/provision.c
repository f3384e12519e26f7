/*
 * Applying a provisioning template to the registry: the one function every
 * registration path calls (prov_apply, see provision.h), RegisterThing with
 * an inline body, the interpretation of a pre-provisioning hook's answer and
 * the MQTT error shape.
 *
 * prov_apply evaluates the template into a plan (template.h), then walks
 * the plan in one store transaction through the registry's own functions
 * (registry.h), so the business rules are the registry's: certificate
 * first (its id is needed by the attachments), then the thing with its
 * OverrideSettings, the policy, and the attachments. Each registry call is
 * idempotent on its own (attaching twice, adding to a group twice), and
 * updates are made only when a value differs, so a repeated application
 * changes nothing and appends no event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"
#include "core/provision_internal.h"
#include "core/registry_internal.h"

void prov_result_cleanup(struct prov_result *r)
{
	if (r == NULL)
		return;
	free(r->cert_pem);
	json_decref(r->device_configuration);
	json_decref(r->resource_arns);
	memset(r, 0, sizeof(*r));
}

/* ---- errors ---- */

/* Registry refusals while applying a template are failures of the
 * template with these inputs; store and system failures keep their code. */
static int is_business(iotp_rc rc)
{
	switch (rc) {
	case IOTP_ERR_INVALID:
	case IOTP_ERR_NOT_FOUND:
	case IOTP_ERR_EXISTS:
	case IOTP_ERR_CONFLICT:
	case IOTP_ERR_VERSION:
	case IOTP_ERR_STATE:
	case IOTP_ERR_CERT:
	case IOTP_ERR_POLICY:
	case IOTP_ERR_LIMIT:
	case IOTP_ERR_REGCODE:
	case IOTP_ERR_TEMPLATE:
		return 1;
	default:
		return 0;
	}
}

/* Re-labels a registry failure (message in lerr) for logical id lid. */
static iotp_rc res_fail(struct iotp_err *err, iotp_rc rc, const char *lid,
                        const struct iotp_err *lerr)
{
	if (is_business(rc))
		return iotp_err_set(err, IOTP_ERR_TEMPLATE, "Resources.%s: %s", lid, lerr->msg);
	return iotp_err_set(err, rc, "Resources.%s: %s", lid, lerr->msg);
}

void prov_error_shape(iotp_rc rc, int *status, const char **code)
{
	switch (rc) {
	case IOTP_ERR_TOKEN:
	case IOTP_ERR_EXPIRED:
		*status = 400;
		*code = "InvalidCertificateOwnershipToken";
		break;
	case IOTP_ERR_INVALID:
	case IOTP_ERR_TOO_BIG:
		*status = 400;
		*code = "InvalidParameters";
		break;
	case IOTP_ERR_CERT:
		*status = 400;
		*code = "InvalidCertificateSigningRequest";
		break;
	case IOTP_ERR_TEMPLATE:
		*status = 400;
		*code = "ResourceRegistrationFailure";
		break;
	case IOTP_ERR_DENIED:
	case IOTP_ERR_AUTH:
		*status = 403;
		*code = "AccessDenied";
		break;
	case IOTP_ERR_NOT_FOUND:
		*status = 404;
		*code = "ResourceNotFound";
		break;
	case IOTP_ERR_THROTTLED:
		*status = 429;
		*code = "Throttled";
		break;
	case IOTP_ERR_BUSY:
	case IOTP_ERR_TIMEOUT:
		*status = 503;
		*code = "ServiceUnavailable";
		break;
	default:
		*status = 500;
		*code = "InternalError";
		break;
	}
}

/* ---- hooks ---- */

iotp_rc prov_hook_answer(const json_t *answer, const json_t *params, json_t **merged,
                         struct iotp_err *err)
{
	const json_t *allow, *over, *v;
	const char *k;
	json_t *m;

	if (!json_is_object(answer))
		return iotp_err_set(err, IOTP_ERR_DENIED,
		                    "the pre-provisioning hook did not answer a JSON object");
	allow = json_object_get(answer, "allowProvisioning");
	if (!json_is_true(allow))
		return iotp_err_set(err, IOTP_ERR_DENIED,
		                    "the pre-provisioning hook refused the provisioning%s",
		                    allow == NULL ? " (no allowProvisioning in its answer)" : "");
	over = json_object_get(answer, "parameterOverrides");
	if (over != NULL && !json_is_null(over)) {
		if (!json_is_object(over))
			return iotp_err_set(err, IOTP_ERR_DENIED,
			                    "the pre-provisioning hook's parameterOverrides is not an "
			                    "object");
		json_object_foreach((json_t *)over, k, v) {
			if (!json_is_string(v))
				return iotp_err_set(err, IOTP_ERR_DENIED,
				                    "the pre-provisioning hook's parameterOverrides.%.60s is "
				                    "not a string",
				                    k);
		}
	}
	if (params != NULL && !json_is_object(params))
		return iotp_err_set(err, IOTP_ERR_INVALID, "parameters must be an object");
	m = params != NULL ? json_deep_copy(params) : json_object();
	if (m == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "hook answer: out of memory");
	if (over != NULL && json_is_object(over) && json_object_update(m, (json_t *)over) != 0) {
		json_decref(m);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "hook answer: out of memory");
	}
	*merged = m;
	return IOTP_OK;
}

static int is_loopback(const char *host, size_t n)
{
	return (n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
	       (n == 9 && strncmp(host, "127.0.0.1", 9) == 0) ||
	       (n == 5 && strncmp(host, "[::1]", 5) == 0);
}

int prov_hook_url_ok(const char *url)
{
	const char *host, *end;
	size_t n;
	int https;

	if (url == NULL || strlen(url) > 2048)
		return 0;
	for (const unsigned char *p = (const unsigned char *)url; *p != '\0'; p++) {
		if (*p <= 0x20 || *p >= 0x7f)
			return 0;
	}
	if (strncasecmp(url, "https://", 8) == 0) {
		https = 1;
		host = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		https = 0;
		host = url + 7;
	} else {
		return 0;
	}
	if (strchr(host, '@') != NULL && strchr(host, '@') < host + strcspn(host, "/?#"))
		return 0; /* no credentials in the URL: the signature authenticates */
	if (host[0] == '[') {
		end = strchr(host, ']');
		if (end == NULL)
			return 0;
		end++;
	} else {
		end = host + strcspn(host, ":/?#");
	}
	n = (size_t)(end - host);
	if (n == 0)
		return 0;
	return https || is_loopback(host, n);
}

/* ---- applying ---- */

/* Subject fields of the certificate being provisioned. */
struct pseudo_vals {
	char id[PKI_CERT_ID_LEN + 1];
	char f[7][256];
	struct template_pseudo p;
};

static const char *const pseudo_fields[7] = {
	"CommonName", "Country", "Organization", "OrganizationalUnit",
	"DistinguishedNameQualifier", "StateName", "SerialNumber",
};

static iotp_rc pseudo_fill(struct iotp_core *core, const struct prov_subject_cert *c,
                           struct pseudo_vals *pv, struct iotp_err *err)
{
	const char **slots[7] = {&pv->p.common_name, &pv->p.country, &pv->p.organization,
	                         &pv->p.organizational_unit, &pv->p.dn_qualifier,
	                         &pv->p.state_name, &pv->p.serial_number};
	X509 *x = c->x509, *loaded = NULL;
	iotp_rc rc = IOTP_OK;

	memset(pv, 0, sizeof(*pv));
	if (c->id != NULL) {
		if (strlen(c->id) != PKI_CERT_ID_LEN ||
		    strspn(c->id, "0123456789abcdefABCDEF") != PKI_CERT_ID_LEN)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "certificate id must be 64 hexadecimal digits");
		for (size_t i = 0; i < PKI_CERT_ID_LEN; i++)
			pv->id[i] = (char)((c->id[i] >= 'A' && c->id[i] <= 'F') ? c->id[i] + 32 : c->id[i]);
		pv->p.certificate_id = pv->id;
	}
	if (x == NULL && c->id != NULL) {
		struct store_val p[] = {SV_TEXT(pv->id)};
		char *pem = NULL;

		rc = store_query_text(core->store, "SELECT pem FROM certificates WHERE id = ?", p, 1,
		                      &pem, err);
		if (rc == IOTP_OK && pem != NULL)
			rc = pki_cert_parse(pem, strlen(pem), &loaded, err);
		free(pem);
		if (rc == IOTP_ERR_NOT_FOUND)
			rc = IOTP_OK; /* the plan's CertificateId will say it is missing */
		if (rc != IOTP_OK)
			return rc;
		x = loaded;
	}
	if (x != NULL) {
		if (c->id == NULL) {
			if ((rc = pki_cert_id(x, pv->id, err)) != IOTP_OK)
				goto out;
			pv->p.certificate_id = pv->id;
		}
		for (int i = 0; i < 7; i++) {
			struct iotp_err ferr;

			if (pki_cert_name_field(x, 0, pseudo_fields[i], pv->f[i], sizeof(pv->f[i]),
			                        &ferr) == IOTP_OK)
				*slots[i] = pv->f[i];
		}
	}
out:
	X509_free(loaded);
	return rc;
}

struct apply {
	struct iotp_core *core;
	const char *actor;
	const struct template_plan *plan;
	struct prov_result *r;
	struct iotp_err *err;
	const struct prov_apply_in *in;
	char cert_id[PKI_CERT_ID_LEN + 1];
	X509 *issued;        /* BY_CSR: issued before the transaction */
	char *issued_pem;
};

static iotp_rc put_arn(struct apply *a, const char *lid, const char *arn)
{
	if (json_object_set_new(a->r->resource_arns, lid, json_string(arn)) != 0)
		return iotp_err_set(a->err, IOTP_ERR_NOMEM, "result: out of memory");
	return IOTP_OK;
}

/* The status an existing certificate ends with (see provision.h). */
static iotp_rc cert_status_existing(struct apply *a, const struct registry_cert *c)
{
	const struct template_plan_cert *pc = &a->plan->certificate;
	enum registry_cert_status want;
	struct iotp_err lerr;
	iotp_rc rc;

	if ((rc = registry_cert_status_parse(pc->status, &want, &lerr)) != IOTP_OK)
		return res_fail(a->err, IOTP_ERR_TEMPLATE, pc->logical_id, &lerr);
	if (c->status == REGISTRY_CERT_REVOKED || c->status == REGISTRY_CERT_PENDING_TRANSFER)
		return iotp_err_set(a->err, IOTP_ERR_TEMPLATE,
		                    "Resources.%s: certificate %s is %s: it cannot be provisioned",
		                    pc->logical_id, c->id, registry_cert_status_name(c->status));
	if (c->status == want)
		return IOTP_OK;
	if (c->status == REGISTRY_CERT_ACTIVE || c->status == REGISTRY_CERT_INACTIVE) {
		if (pc->status_override == TEMPLATE_OVERRIDE_DO_NOTHING)
			return IOTP_OK;
		if (pc->status_override == TEMPLATE_OVERRIDE_FAIL)
			return iotp_err_set(a->err, IOTP_ERR_TEMPLATE,
			                    "Resources.%s: certificate %s is %s, the template says %s and "
			                    "OverrideSettings Status is FAIL",
			                    pc->logical_id, c->id, registry_cert_status_name(c->status),
			                    pc->status);
	}
	if ((rc = registry_cert_update_status(a->core, a->actor, c->id, want, &lerr)) != IOTP_OK)
		return res_fail(a->err, rc, pc->logical_id, &lerr);
	return IOTP_OK;
}

static iotp_rc cert_existing(struct apply *a, const char *id)
{
	struct registry_cert c = {0};
	struct iotp_err lerr;
	iotp_rc rc;

	rc = registry_cert_describe(a->core, id, &c, &lerr);
	if (rc == IOTP_OK)
		rc = cert_status_existing(a, &c);
	else
		rc = res_fail(a->err, rc, a->plan->certificate.logical_id, &lerr);
	registry_cert_cleanup(&c);
	if (rc == IOTP_OK)
		util_strlcpy(a->cert_id, id, sizeof(a->cert_id));
	return rc;
}

/* Is the certificate id in the store? */
static iotp_rc cert_known(struct apply *a, const char *id, int *known)
{
	struct store_val p[] = {SV_TEXT(id)};
	int64_t one = 0;
	iotp_rc rc = store_query_int(a->core->store, "SELECT 1 FROM certificates WHERE id = ?", p,
	                             1, &one, a->err);

	*known = rc == IOTP_OK;
	return rc == IOTP_ERR_NOT_FOUND ? IOTP_OK : rc;
}

/* The certificate read the fast way (pki_lite.c): the runner's read-ahead
 * parse when it is of this very PEM, else one made here (*own, the
 * caller frees). *lc stays NULL when the lite path does not take it. */
static iotp_rc cert_lite(struct apply *a, struct pki_cert_lite **own,
                         const struct pki_cert_lite **lc)
{
	const char *pem = a->plan->certificate.pem;

	if (a->in->cert_hint != NULL && a->in->cert_hint_pem != NULL &&
	    strcmp(a->in->cert_hint_pem, pem) == 0) {
		*lc = a->in->cert_hint;
		return IOTP_OK;
	}
	switch (pki_lite_parse(pem, strlen(pem), own)) {
	case 1: *lc = *own; return IOTP_OK;
	case 0: return IOTP_OK;
	default: return iotp_err_set(a->err, IOTP_ERR_NOMEM, "certificate: out of memory");
	}
}

/* The full parse (pki_cert_parse), for what the lite path does not take
 * or decide: its checks and messages are the reference. */
static iotp_rc cert_full(struct apply *a, X509 **x, char id[PKI_CERT_ID_LEN + 1])
{
	const struct template_plan_cert *pc = &a->plan->certificate;
	struct iotp_err lerr;
	iotp_rc rc;

	if ((rc = pki_cert_parse(pc->pem, strlen(pc->pem), x, &lerr)) != IOTP_OK ||
	    (rc = pki_cert_id(*x, id, &lerr)) != IOTP_OK)
		return res_fail(a->err, rc, pc->logical_id, &lerr);
	return IOTP_OK;
}

static iotp_rc cert_by_pem(struct apply *a)
{
	const struct template_plan_cert *pc = &a->plan->certificate;
	struct registry_cert_register reg = {0};
	struct registry_ref ref = {0};
	struct pki_cert_lite *own = NULL;
	const struct pki_cert_lite *lc = NULL;
	struct iotp_err lerr;
	char id[PKI_CERT_ID_LEN + 1];
	X509 *x = NULL;
	int known = 0, declined = 1;
	iotp_rc rc;

	/* One parse serves the id and the registration: the lite one when it
	 * takes the certificate (OpenSSL 3.0's key decoder makes a full
	 * parse cost more than the signature check). */
	if ((rc = cert_lite(a, &own, &lc)) != IOTP_OK)
		return rc;
	if (lc != NULL)
		util_strlcpy(id, pki_lite_id(lc), sizeof(id));
	else if ((rc = cert_full(a, &x, id)) != IOTP_OK)
		goto out;
	if ((rc = cert_known(a, id, &known)) != IOTP_OK)
		goto out;
	if (known) {
		rc = cert_existing(a, id);
		goto result;
	}
	reg.cert_pem = pc->pem;
	reg.ca_pem = pc->ca_pem;
	reg.status = pc->status;
	iotp_err_clear(&lerr);
	if (lc != NULL)
		rc = registry_cert_register_lite(a->core, a->actor, &reg, lc, &declined, &ref, &lerr);
	if (rc == IOTP_OK && declined) {
		if (x == NULL && (rc = cert_full(a, &x, id)) != IOTP_OK)
			goto out;
		rc = registry_cert_register_x509(a->core, a->actor, &reg, x, &ref, &lerr);
	}
	if (rc != IOTP_OK) {
		rc = res_fail(a->err, rc, pc->logical_id, &lerr);
		goto out;
	}
	util_strlcpy(a->cert_id, ref.id, sizeof(a->cert_id));
result:
	if (rc == IOTP_OK && (a->r->cert_pem = strdup(pc->pem)) == NULL)
		rc = iotp_err_set(a->err, IOTP_ERR_NOMEM, "result: out of memory");
out:
	X509_free(x);
	pki_lite_free(own);
	return rc;
}

/* Signs the CSR before the store transaction starts: the crypto needs no
 * lock, and a write transaction held during it would serialise every
 * other writer behind the signature. */
static iotp_rc cert_issue(struct apply *a)
{
	const struct template_plan_cert *pc = &a->plan->certificate;
	struct pki_issue_opts opts = {0};
	struct iotp_err lerr;
	iotp_rc rc;

	if ((rc = prov_issuer_ready(a->core, a->err)) != IOTP_OK)
		return rc;
	opts.days = (int)a->core->conf->pki_device_cert_days;
	opts.not_before_skew = PROV_ISSUE_SKEW;
	if ((rc = pki_csr_issue(&a->core->issuing, pc->csr, strlen(pc->csr), &opts, &a->issued,
	                        &lerr)) != IOTP_OK)
		return res_fail(a->err, rc, pc->logical_id, &lerr);
	return pki_cert_to_pem(a->issued, &a->issued_pem, a->err);
}

static iotp_rc cert_by_csr(struct apply *a)
{
	const struct template_plan_cert *pc = &a->plan->certificate;
	enum registry_cert_status st;
	struct iotp_err lerr;
	iotp_rc rc;

	if ((rc = registry_cert_status_parse(pc->status, &st, &lerr)) != IOTP_OK)
		return res_fail(a->err, IOTP_ERR_TEMPLATE, pc->logical_id, &lerr);
	if ((rc = prov_cert_store(a->core, a->actor, a->issued, a->issued_pem, st, "DEVICE", NULL,
	                          a->cert_id, a->err)) != IOTP_OK)
		return rc;
	a->r->cert_pem = a->issued_pem;
	a->issued_pem = NULL;
	return IOTP_OK;
}

static iotp_rc apply_cert(struct apply *a)
{
	const struct template_plan_cert *pc = &a->plan->certificate;
	char res[PKI_CERT_ID_LEN + 6];
	iotp_rc rc;

	if (!pc->present)
		return IOTP_OK;
	switch (pc->source) {
	case TEMPLATE_CERT_BY_ID: rc = cert_existing(a, pc->id); break;
	case TEMPLATE_CERT_BY_PEM: rc = cert_by_pem(a); break;
	case TEMPLATE_CERT_BY_CSR: rc = cert_by_csr(a); break;
	default:
		rc = iotp_err_set(a->err, IOTP_ERR_INTERNAL, "plan without a certificate source");
		break;
	}
	if (rc != IOTP_OK)
		return rc;
	util_strlcpy(a->r->cert_id, a->cert_id, sizeof(a->r->cert_id));
	snprintf(res, sizeof(res), "cert/%s", a->cert_id);
	if ((rc = core_arn(a->core, res, a->r->cert_arn, sizeof(a->r->cert_arn), a->err)) !=
	    IOTP_OK)
		return rc;
	return put_arn(a, pc->logical_id, a->r->cert_arn);
}

/* Attributes as stored: without the empty values ("no such attribute"). */
static json_t *attrs_effective(const json_t *base, const json_t *plan, int merge)
{
	json_t *o = merge && base != NULL ? json_deep_copy(base) : json_object();
	const char *k;
	const json_t *v;

	if (o == NULL)
		return NULL;
	json_object_foreach((json_t *)plan, k, v) {
		const char *s = json_string_value(v);

		if (s == NULL || *s == '\0')
			json_object_del(o, k);
		else if (json_object_set_new(o, k, json_string(s)) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* Current direct groups of a thing (at most REGISTRY_THING_MAX_GROUPS). */
static iotp_rc thing_groups(struct apply *a, const char *lid, const char *name,
                            struct registry_ref_list *out)
{
	struct registry_page page = {NULL, REGISTRY_PAGE_MAX};
	struct iotp_err lerr;
	iotp_rc rc = registry_thing_list_groups(a->core, name, &page, out, &lerr);

	return rc == IOTP_OK ? IOTP_OK : res_fail(a->err, rc, lid, &lerr);
}

static int ref_has(const struct registry_ref_list *l, const char *name)
{
	for (size_t i = 0; i < l->count; i++) {
		if (strcmp(l->items[i].name, name) == 0)
			return 1;
	}
	return 0;
}

static int plan_has_group(const struct template_plan_thing *th, const char *name)
{
	for (size_t i = 0; i < th->group_count; i++) {
		if (strcmp(th->groups[i], name) == 0)
			return 1;
	}
	return 0;
}

static iotp_rc apply_groups(struct apply *a, int created)
{
	const struct template_plan_thing *th = &a->plan->thing;
	struct registry_ref_list cur = {0};
	struct iotp_err lerr;
	enum template_override o = created ? TEMPLATE_OVERRIDE_MERGE : th->groups_override;
	iotp_rc rc = IOTP_OK;

	if (!th->groups_declared || o == TEMPLATE_OVERRIDE_DO_NOTHING)
		return IOTP_OK;
	if (!created && (rc = thing_groups(a, th->logical_id, th->name, &cur)) != IOTP_OK)
		return rc;
	if (o == TEMPLATE_OVERRIDE_FAIL) {
		int same = cur.count == th->group_count;

		for (size_t i = 0; same && i < th->group_count; i++)
			same = ref_has(&cur, th->groups[i]);
		if (!same)
			rc = iotp_err_set(a->err, IOTP_ERR_TEMPLATE,
			                  "Resources.%s: thing %s is in other groups than the template "
			                  "says and OverrideSettings ThingGroups is FAIL",
			                  th->logical_id, th->name);
		goto out;
	}
	if (o == TEMPLATE_OVERRIDE_REPLACE) {
		for (size_t i = 0; rc == IOTP_OK && i < cur.count; i++) {
			if (plan_has_group(th, cur.items[i].name))
				continue;
			rc = registry_thing_group_remove_thing(a->core, a->actor, cur.items[i].name,
			                                       th->name, &lerr);
			if (rc != IOTP_OK)
				rc = res_fail(a->err, rc, th->logical_id, &lerr);
		}
	}
	for (size_t i = 0; rc == IOTP_OK && i < th->group_count; i++) {
		if (ref_has(&cur, th->groups[i]))
			continue;
		rc = registry_thing_group_add_thing(a->core, a->actor, th->groups[i], th->name, &lerr);
		if (rc != IOTP_OK)
			rc = res_fail(a->err, rc, th->logical_id, &lerr);
	}
out:
	registry_ref_list_cleanup(&cur);
	return rc;
}

/* Type and attributes of an existing thing, per OverrideSettings. */
static iotp_rc thing_update(struct apply *a, const struct registry_thing *cur)
{
	const struct template_plan_thing *th = &a->plan->thing;
	struct registry_thing_update up = {.name = th->name,
	                                   .expected_version = REGISTRY_NO_VERSION};
	struct iotp_err lerr;
	json_t *target = NULL;
	int change = 0;
	iotp_rc rc = IOTP_OK;

	if (th->type_name != NULL && strcmp(th->type_name, cur->type_name) != 0) {
		if (th->type_override == TEMPLATE_OVERRIDE_FAIL)
			return iotp_err_set(a->err, IOTP_ERR_TEMPLATE,
			                    "Resources.%s: thing %s has type '%s', the template says '%s' "
			                    "and OverrideSettings ThingTypeName is FAIL",
			                    th->logical_id, th->name, cur->type_name, th->type_name);
		if (th->type_override == TEMPLATE_OVERRIDE_REPLACE) {
			up.type_name = th->type_name;
			change = 1;
		}
	}
	if (th->attributes != NULL && th->attributes_override != TEMPLATE_OVERRIDE_DO_NOTHING) {
		int merge = th->attributes_override == TEMPLATE_OVERRIDE_MERGE;

		target = attrs_effective(cur->attributes, th->attributes, merge);
		if (target == NULL)
			return iotp_err_set(a->err, IOTP_ERR_NOMEM, "attributes: out of memory");
		if (!json_equal(target, cur->attributes)) {
			if (th->attributes_override == TEMPLATE_OVERRIDE_FAIL) {
				rc = iotp_err_set(a->err, IOTP_ERR_TEMPLATE,
				                  "Resources.%s: thing %s has other attributes than the "
				                  "template says and OverrideSettings AttributePayload is FAIL",
				                  th->logical_id, th->name);
				goto out;
			}
			up.attributes = target;
			up.merge = 0;
			change = 1;
		}
	}
	if (change && (rc = registry_thing_update(a->core, a->actor, &up, &lerr)) != IOTP_OK)
		rc = res_fail(a->err, rc, th->logical_id, &lerr);
out:
	json_decref(target);
	return rc;
}

static iotp_rc apply_thing(struct apply *a)
{
	const struct template_plan_thing *th = &a->plan->thing;
	struct registry_thing cur = {0};
	struct iotp_err lerr;
	char res[REGISTRY_NAME_MAX + 8];
	int created = 0;
	iotp_rc rc;

	if (!th->present)
		return IOTP_OK;
	if (th->billing_group != NULL)
		LOG_DEBUG("provision: thing %s: BillingGroup '%s' ignored (no billing groups)",
		          th->name, th->billing_group);
	rc = registry_thing_describe(a->core, th->name, &cur, &lerr);
	if (rc == IOTP_ERR_NOT_FOUND) {
		struct registry_thing_spec spec = {th->name, th->type_name, NULL};
		struct registry_ref ref;
		json_t *attrs = NULL;

		if (th->attributes != NULL &&
		    (attrs = attrs_effective(NULL, th->attributes, 0)) == NULL) {
			rc = iotp_err_set(a->err, IOTP_ERR_NOMEM, "attributes: out of memory");
			goto out;
		}
		spec.attributes = attrs;
		rc = registry_thing_create(a->core, a->actor, &spec, &ref, &lerr);
		json_decref(attrs);
		if (rc != IOTP_OK) {
			rc = res_fail(a->err, rc, th->logical_id, &lerr);
			goto out;
		}
		created = 1;
	} else if (rc != IOTP_OK) {
		rc = res_fail(a->err, rc, th->logical_id, &lerr);
		goto out;
	} else if ((rc = thing_update(a, &cur)) != IOTP_OK) {
		goto out;
	}
	if ((rc = apply_groups(a, created)) != IOTP_OK)
		goto out;
	a->r->thing_created = created;
	util_strlcpy(a->r->thing_name, th->name, sizeof(a->r->thing_name));
	snprintf(res, sizeof(res), "thing/%s", th->name);
	if ((rc = core_arn(a->core, res, a->r->thing_arn, sizeof(a->r->thing_arn), a->err)) ==
	    IOTP_OK)
		rc = put_arn(a, th->logical_id, a->r->thing_arn);
out:
	registry_thing_cleanup(&cur);
	return rc;
}

static iotp_rc apply_policy(struct apply *a)
{
	const struct template_plan_policy *pp = &a->plan->policy;
	struct registry_policy pol = {0};
	struct iotp_err lerr;
	char res[REGISTRY_NAME_MAX + 8], arn[REGISTRY_ARN_MAX];
	iotp_rc rc;

	if (!pp->present)
		return IOTP_OK;
	rc = registry_policy_get(a->core, pp->name, &pol, &lerr);
	if (rc == IOTP_ERR_NOT_FOUND && pp->document != NULL) {
		registry_policy_cleanup(&pol);
		rc = registry_policy_create(a->core, a->actor, pp->name, pp->document, &pol, &lerr);
	}
	registry_policy_cleanup(&pol);
	if (rc != IOTP_OK)
		return res_fail(a->err, rc, pp->logical_id, &lerr);
	if (a->cert_id[0] != '\0') {
		snprintf(res, sizeof(res), "cert/%s", a->cert_id);
		if ((rc = registry_policy_attach(a->core, a->actor, pp->name, res, &lerr)) != IOTP_OK)
			return res_fail(a->err, rc, pp->logical_id, &lerr);
	}
	util_strlcpy(a->r->policy_name, pp->name, sizeof(a->r->policy_name));
	snprintf(res, sizeof(res), "policy/%s", pp->name);
	if ((rc = core_arn(a->core, res, arn, sizeof(arn), a->err)) != IOTP_OK)
		return rc;
	return put_arn(a, pp->logical_id, arn);
}

static iotp_rc apply_attach(struct apply *a)
{
	const struct template_plan_thing *th = &a->plan->thing;
	struct iotp_err lerr;
	char res[PKI_CERT_ID_LEN + 6];
	iotp_rc rc;

	if (!th->present || a->cert_id[0] == '\0')
		return IOTP_OK;
	snprintf(res, sizeof(res), "cert/%s", a->cert_id);
	rc = registry_thing_attach_principal(a->core, a->actor, th->name, res, &lerr);
	return rc == IOTP_OK ? IOTP_OK : res_fail(a->err, rc, th->logical_id, &lerr);
}

static iotp_rc summary_event(struct apply *a, const char *template_name)
{
	char obj[REGISTRY_NAME_MAX + PKI_CERT_ID_LEN + 8];

	if (a->r->thing_name[0] != '\0')
		snprintf(obj, sizeof(obj), "thing/%s", a->r->thing_name);
	else if (a->r->cert_id[0] != '\0')
		snprintf(obj, sizeof(obj), "cert/%s", a->r->cert_id);
	else
		snprintf(obj, sizeof(obj), "policy/%s", a->r->policy_name);
	return prov_event(a->core, a->actor, "provision.apply", obj,
	                  json_pack("{s:s?, s:s?, s:s?, s:s?, s:b}", "templateName", template_name,
	                            "thingName", a->r->thing_name[0] ? a->r->thing_name : NULL,
	                            "certificateId", a->r->cert_id[0] ? a->r->cert_id : NULL,
	                            "policyName", a->r->policy_name[0] ? a->r->policy_name : NULL,
	                            "thingCreated", a->r->thing_created != 0),
	                  a->err);
}

iotp_rc prov_apply(struct iotp_core *core, const char *actor, const struct prov_apply_in *in,
                   struct prov_result *out, struct iotp_err *err)
{
	struct pseudo_vals pv;
	struct template_plan *plan = NULL;
	struct prov_result r;
	struct apply a;
	struct registry_flat flat;
	int64_t ev0 = 0, ev1 = 0;
	int depth0;
	iotp_rc rc;

	memset(&r, 0, sizeof(r));
	memset(&a, 0, sizeof(a));
	if (core == NULL || actor == NULL || in == NULL || in->tmpl == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "prov_apply: missing argument");
	if ((rc = pseudo_fill(core, &in->cert, &pv, err)) != IOTP_OK ||
	    (rc = template_evaluate(in->tmpl, in->parameters, &pv.p, &plan, err)) != IOTP_OK)
		return rc;
	r.resource_arns = json_object();
	r.device_configuration = json_deep_copy(plan->device_configuration);
	if (r.resource_arns == NULL || r.device_configuration == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "result: out of memory");
		goto done;
	}
	a.core = core;
	a.actor = actor;
	a.plan = plan;
	a.r = &r;
	a.err = err;
	a.in = in;
	if (plan->certificate.present && plan->certificate.source == TEMPLATE_CERT_BY_CSR &&
	    (rc = cert_issue(&a)) != IOTP_OK)
		goto done;
	if ((rc = prov_tx_begin(core, &depth0, err)) != IOTP_OK)
		goto done;
	/* Every failure below rolls this whole level back, so the registry
	 * calls join it instead of each opening a savepoint of its own. */
	registry_tx_flat_begin(core, &flat);
	if ((rc = store_events_last_id(core->store, &ev0, err)) == IOTP_OK &&
	    (rc = apply_cert(&a)) == IOTP_OK && (rc = apply_thing(&a)) == IOTP_OK &&
	    (rc = apply_policy(&a)) == IOTP_OK && (rc = apply_attach(&a)) == IOTP_OK &&
	    (rc = store_events_last_id(core->store, &ev1, err)) == IOTP_OK && ev1 != ev0)
		rc = summary_event(&a, in->template_name);
	registry_tx_flat_end(&flat);
	rc = prov_tx_end(core, depth0, rc, err);
	if (rc == IOTP_OK) {
		*out = r;
		memset(&r, 0, sizeof(r));
	}
done:
	prov_result_cleanup(&r);
	template_plan_free(plan);
	X509_free(a.issued);
	free(a.issued_pem);
	return rc;
}

iotp_rc prov_register_thing_body(struct iotp_core *core, const char *actor, const char *body,
                                 size_t len, const json_t *parameters, struct prov_result *out,
                                 struct iotp_err *err)
{
	struct template *t = NULL;
	struct prov_apply_in in;
	iotp_rc rc;

	if (body == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "templateBody is required");
	if ((rc = template_parse(body, len, TEMPLATE_KIND_ANY, &t, err)) != IOTP_OK)
		return rc;
	memset(&in, 0, sizeof(in));
	in.tmpl = t;
	in.parameters = parameters;
	rc = prov_apply(core, actor, &in, out, err);
	template_free(t);
	return rc;
}
