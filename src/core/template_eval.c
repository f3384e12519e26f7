/*
 * Provisioning templates: evaluation of a parsed template with one set of
 * parameters into a plan, and the plan's release and JSON form (see
 * template.h).
 *
 * The caller's parameters are checked once up front (reserved names, types,
 * lengths); then each resource is resolved in a fixed order (thing,
 * certificate, policy, device configuration) by the walker of
 * template_expr.c, which stops at the first failure and names its path.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/util.h"
#include "core/template_internal.h"

void template_plan_free(struct template_plan *p)
{
	if (p == NULL)
		return;
	free(p->thing.logical_id);
	free(p->thing.name);
	free(p->thing.type_name);
	for (size_t i = 0; i < p->thing.group_count; i++)
		free(p->thing.groups[i]);
	free(p->thing.groups);
	json_decref(p->thing.attributes);
	free(p->thing.billing_group);
	free(p->certificate.logical_id);
	free(p->certificate.id);
	free(p->certificate.pem);
	free(p->certificate.ca_pem);
	free(p->certificate.csr);
	free(p->policy.logical_id);
	free(p->policy.name);
	free(p->policy.document);
	json_decref(p->device_configuration);
	free(p);
}

static int nomem(struct tpl_ev *ev)
{
	iotp_err_set(ev->err, IOTP_ERR_NOMEM, "out of memory evaluating the template");
	return -1;
}

/* Sets the path to Resources.<id>.Properties.<key>. */
static void prop_path(struct tpl_ev *ev, enum tpl_res r, const char *key)
{
	ev->plen = 0;
	ev->path[0] = '\0';
	tpl_path_key(ev, "Resources");
	tpl_path_key(ev, ev->t->res_id[r]);
	tpl_path_key(ev, "Properties");
	if (key != NULL)
		tpl_path_key(ev, key);
}

/* Evaluates an optional string property of resource r into *out. */
static int prop_string(struct tpl_ev *ev, enum tpl_res r, const char *key, tpl_check_fn check,
                       char **out)
{
	const json_t *node = json_object_get(ev->t->props[r], key);

	if (node == NULL)
		return 0;
	prop_path(ev, r, key);
	return tpl_string(ev, node, check, out);
}

static int dup_into(struct tpl_ev *ev, const char *s, char **out)
{
	*out = strdup(s);
	return *out != NULL ? 0 : nomem(ev);
}

static int plan_groups(struct tpl_ev *ev, struct template_plan_thing *th)
{
	const json_t *node = json_object_get(ev->t->props[TPL_THING], "ThingGroups");
	json_t *list = NULL;
	size_t n;
	int rc = 0;

	if (node == NULL)
		return 0;
	th->groups_declared = 1;
	prop_path(ev, TPL_THING, "ThingGroups");
	if (tpl_list(ev, node, tpl_check_group_name, &list) != 0)
		return -1;
	n = json_array_size(list);
	if (n > 0 && (th->groups = calloc(n, sizeof(*th->groups))) == NULL) {
		json_decref(list);
		return nomem(ev);
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *g = json_string_value(json_array_get(list, i));
		size_t j;

		for (j = 0; j < th->group_count; j++)
			if (strcmp(th->groups[j], g) == 0)
				break;
		if (j < th->group_count)
			continue; /* listed twice: one membership */
		rc = dup_into(ev, g, &th->groups[th->group_count]);
		if (rc == 0)
			th->group_count++;
	}
	json_decref(list);
	return rc;
}

static int plan_attributes(struct tpl_ev *ev, struct template_plan_thing *th)
{
	const json_t *map = ev->t->attrs;
	const char *name;
	json_t *v;

	if (map == NULL)
		return 0;
	th->attributes = json_object();
	if (th->attributes == NULL)
		return nomem(ev);
	json_object_foreach((json_t *)map, name, v) {
		char *s = NULL;

		prop_path(ev, TPL_THING, "AttributePayload");
		if (map != json_object_get(ev->t->props[TPL_THING], "AttributePayload"))
			tpl_path_key(ev, "Attributes");
		tpl_path_key(ev, name);
		if (tpl_string(ev, v, tpl_check_attr_value, &s) != 0)
			return -1;
		if (json_object_set_new(th->attributes, name, json_string(s)) != 0) {
			free(s);
			return nomem(ev);
		}
		free(s);
	}
	return 0;
}

static int plan_thing(struct tpl_ev *ev, struct template_plan_thing *th)
{
	const struct template *t = ev->t;
	const char *name;

	if (t->res_id[TPL_THING] == NULL)
		return 0;
	th->present = 1;
	th->type_override = t->thing_over[0];
	th->groups_override = t->thing_over[1];
	th->attributes_override = t->thing_over[2];
	if (dup_into(ev, t->res_id[TPL_THING], &th->logical_id) != 0 ||
	    tpl_ident(ev, TPL_THING, &name) != 0 || dup_into(ev, name, &th->name) != 0)
		return -1;
	if (prop_string(ev, TPL_THING, "ThingTypeName", tpl_check_type_name, &th->type_name) != 0 ||
	    plan_groups(ev, th) != 0 || plan_attributes(ev, th) != 0 ||
	    prop_string(ev, TPL_THING, "BillingGroup", tpl_check_billing_group,
	                &th->billing_group) != 0)
		return -1;
	return 0;
}

static int plan_cert(struct tpl_ev *ev, struct template_plan_cert *c)
{
	const struct template *t = ev->t;
	const char *id;
	char *status = NULL;

	if (t->res_id[TPL_CERT] == NULL)
		return 0;
	c->present = 1;
	c->source = t->cert_source;
	c->status_override = t->cert_over;
	if (dup_into(ev, t->res_id[TPL_CERT], &c->logical_id) != 0)
		return -1;
	switch (c->source) {
	case TEMPLATE_CERT_BY_ID:
		if (tpl_ident(ev, TPL_CERT, &id) != 0 || dup_into(ev, id, &c->id) != 0)
			return -1;
		break;
	case TEMPLATE_CERT_BY_PEM:
		if (prop_string(ev, TPL_CERT, "CertificatePem", tpl_check_nonempty, &c->pem) != 0 ||
		    prop_string(ev, TPL_CERT, "CACertificatePem", tpl_check_nonempty, &c->ca_pem) != 0)
			return -1;
		break;
	case TEMPLATE_CERT_BY_CSR:
		if (prop_string(ev, TPL_CERT, "CertificateSigningRequest", tpl_check_nonempty,
		                &c->csr) != 0)
			return -1;
		break;
	default:
		return tpl_fail(ev, IOTP_ERR_INTERNAL, "certificate source unknown");
	}
	if (prop_string(ev, TPL_CERT, "Status", tpl_check_status, &status) != 0)
		return -1;
	/* AWS: "Defaults to ACTIVE"; the value is compared case-insensitively. */
	util_strlcpy(c->status,
	             status != NULL && strcasecmp(status, "INACTIVE") == 0 ? "INACTIVE" : "ACTIVE",
	             sizeof(c->status));
	c->status_declared = status != NULL;
	free(status);
	return 0;
}

static int plan_policy(struct tpl_ev *ev, struct template_plan_policy *p)
{
	const struct template *t = ev->t;
	const char *name, *doc;

	if (t->res_id[TPL_POLICY] == NULL)
		return 0;
	p->present = 1;
	if (dup_into(ev, t->res_id[TPL_POLICY], &p->logical_id) != 0)
		return -1;
	if (json_object_get(t->props[TPL_POLICY], "PolicyName") == NULL) {
		if (tpl_policy_document(ev, &doc) != 0 || dup_into(ev, doc, &p->document) != 0)
			return -1;
		p->name_generated = 1;
	}
	if (tpl_ident(ev, TPL_POLICY, &name) != 0 || dup_into(ev, name, &p->name) != 0)
		return -1;
	return 0;
}

static int plan_devcfg(struct tpl_ev *ev, struct template_plan *plan)
{
	const char *key;
	json_t *v;

	plan->device_configuration = json_object();
	if (plan->device_configuration == NULL)
		return nomem(ev);
	if (ev->t->devcfg == NULL)
		return 0;
	json_object_foreach((json_t *)ev->t->devcfg, key, v) {
		char *s = NULL;

		ev->plen = 0;
		ev->path[0] = '\0';
		tpl_path_key(ev, "DeviceConfiguration");
		tpl_path_key(ev, key);
		if (tpl_string(ev, v, NULL, &s) != 0)
			return -1;
		if (json_object_set_new(plan->device_configuration, key, json_string(s)) != 0) {
			free(s);
			return nomem(ev);
		}
		free(s);
	}
	return 0;
}

int tpl_build_plan(struct tpl_ev *ev, struct template_plan *plan)
{
	if (plan_thing(ev, &plan->thing) != 0 || plan_cert(ev, &plan->certificate) != 0 ||
	    plan_policy(ev, &plan->policy) != 0 || plan_devcfg(ev, plan) != 0)
		return -1;
	return 0;
}

/* The caller's parameters: an object; no reserved name; declared ones are
 * strings within the length cap. */
static iotp_rc check_params(const struct template *t, const json_t *params,
                            struct iotp_err *err)
{
	const char *name;
	json_t *v;
	char c[80];

	if (params == NULL)
		return IOTP_OK;
	if (!json_is_object(params))
		return iotp_err_set(err, IOTP_ERR_INVALID, "parameters must be a JSON object");
	json_object_foreach((json_t *)params, name, v) {
		if (strncmp(name, "AWS::", 5) == 0)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "parameter '%s' is reserved: iotprov sets it from the certificate",
			                    tpl_clean(name, c, sizeof(c)));
		if (t->params == NULL || json_object_get(t->params, name) == NULL)
			continue; /* not declared: ignored */
		if (!json_is_string(v))
			return iotp_err_set(err, IOTP_ERR_INVALID, "parameter '%s' must be a string",
			                    tpl_clean(name, c, sizeof(c)));
		if (tpl_utf8_chars(json_string_value(v), json_string_length(v)) >
		    TEMPLATE_PARAM_VALUE_MAX)
			return iotp_err_set(err, IOTP_ERR_TOO_BIG,
			                    "parameter '%s' is longer than %d characters",
			                    tpl_clean(name, c, sizeof(c)), TEMPLATE_PARAM_VALUE_MAX);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return iotp_err_set(err, IOTP_ERR_INVALID, "parameter '%s' holds a NUL character",
			                    tpl_clean(name, c, sizeof(c)));
	}
	return IOTP_OK;
}

iotp_rc template_evaluate(const struct template *t, const json_t *params,
                          const struct template_pseudo *pseudo, struct template_plan **out,
                          struct iotp_err *err)
{
	struct tpl_ev ev;
	struct template_plan *plan = NULL;
	struct iotp_err local;
	iotp_rc rc;

	rc = check_params(t, params, err);
	if (rc != IOTP_OK)
		return rc;
	memset(&ev, 0, sizeof(ev));
	iotp_err_clear(&local);
	ev.t = t;
	ev.params = params;
	ev.pseudo = pseudo;
	ev.err = &local;
	ev.cur_res = -1;
	plan = calloc(1, sizeof(*plan));
	if (plan == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory evaluating the template");
		goto out;
	}
	if (tpl_build_plan(&ev, plan) != 0) {
		rc = local.rc != IOTP_OK ? local.rc : IOTP_ERR_INTERNAL;
		iotp_err_set(err, rc, "%s", local.msg);
		goto out;
	}
	*out = plan;
	plan = NULL;
out:
	for (int r = 0; r < TPL_NRES; r++)
		json_decref(ev.ident[r]);
	free(ev.policy_doc);
	template_plan_free(plan);
	return rc;
}

/* ------------------------------------------------------------------ */
/* JSON form                                                           */

/* json_object_set_new that remembers a failure. */
static void put(json_t *obj, const char *key, json_t *v, int *bad)
{
	if (v == NULL || json_object_set_new(obj, key, v) != 0)
		*bad = 1;
}

static json_t *thing_json(const struct template_plan_thing *th, int *bad)
{
	json_t *o = json_object(), *over = json_object(), *groups;

	if (o == NULL || over == NULL) {
		json_decref(o);
		json_decref(over);
		*bad = 1;
		return NULL;
	}
	put(o, "logicalId", json_string(th->logical_id), bad);
	put(o, "thingName", json_string(th->name), bad);
	if (th->type_name != NULL)
		put(o, "thingTypeName", json_string(th->type_name), bad);
	if (th->groups_declared) {
		groups = json_array();
		for (size_t i = 0; groups != NULL && i < th->group_count; i++)
			if (json_array_append_new(groups, json_string(th->groups[i])) != 0)
				*bad = 1;
		put(o, "thingGroups", groups, bad);
	}
	if (th->attributes != NULL)
		put(o, "attributes", json_deep_copy(th->attributes), bad);
	if (th->billing_group != NULL)
		put(o, "billingGroup", json_string(th->billing_group), bad);
	put(over, "ThingTypeName", json_string(template_override_name(th->type_override)), bad);
	put(over, "ThingGroups", json_string(template_override_name(th->groups_override)), bad);
	put(over, "AttributePayload", json_string(template_override_name(th->attributes_override)),
	    bad);
	put(o, "overrideSettings", over, bad);
	return o;
}

static json_t *cert_json(const struct template_plan_cert *c, int *bad)
{
	json_t *o = json_object(), *over = json_object();

	if (o == NULL || over == NULL) {
		json_decref(o);
		json_decref(over);
		*bad = 1;
		return NULL;
	}
	put(o, "logicalId", json_string(c->logical_id), bad);
	if (c->id != NULL)
		put(o, "certificateId", json_string(c->id), bad);
	if (c->pem != NULL)
		put(o, "certificatePem", json_string(c->pem), bad);
	if (c->ca_pem != NULL)
		put(o, "caCertificatePem", json_string(c->ca_pem), bad);
	if (c->csr != NULL)
		put(o, "certificateSigningRequest", json_string(c->csr), bad);
	put(o, "status", json_string(c->status), bad);
	put(over, "Status", json_string(template_override_name(c->status_override)), bad);
	put(o, "overrideSettings", over, bad);
	return o;
}

static json_t *policy_json(const struct template_plan_policy *p, int *bad)
{
	json_t *o = json_object();

	if (o == NULL) {
		*bad = 1;
		return NULL;
	}
	put(o, "logicalId", json_string(p->logical_id), bad);
	put(o, "policyName", json_string(p->name), bad);
	if (p->document != NULL)
		put(o, "policyDocument", json_string(p->document), bad);
	return o;
}

iotp_rc template_plan_json(const struct template_plan *p, json_t **out, struct iotp_err *err)
{
	json_t *o = json_object();
	int bad = o == NULL;

	if (!bad && p->thing.present)
		put(o, "thing", thing_json(&p->thing, &bad), &bad);
	if (!bad && p->certificate.present)
		put(o, "certificate", cert_json(&p->certificate, &bad), &bad);
	if (!bad && p->policy.present)
		put(o, "policy", policy_json(&p->policy, &bad), &bad);
	if (!bad)
		put(o, "deviceConfiguration",
		    p->device_configuration != NULL ? json_deep_copy(p->device_configuration)
		                                    : json_object(),
		    &bad);
	if (bad) {
		json_decref(o);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory formatting the plan");
	}
	*out = o;
	return IOTP_OK;
}
