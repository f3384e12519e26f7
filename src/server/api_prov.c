/*
 * API routes of the provisioning engine: provisioning templates and their
 * versions, RegisterThing (POST /things) and CreateProvisioningClaim. Each
 * handler parses the botocore members, calls one function of
 * core/provision.h and formats its result; the rules live in the core.
 *
 * CreateProvisioningClaim is the one operation an installer key may call,
 * and only for the templates its key lists: the route names the path
 * parameter "templateName" as its scope, which the server checks with
 * accesskey_authorize() before the handler runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/util.h"
#include "core/provision.h"
#include "server/api.h"
#include "server/api_json.h"

static iotp_rc version_param(const struct api_request *rq, int *out, struct iotp_err *err)
{
	int64_t v;

	if (util_parse_int64(api_param(rq, "versionId"), 1, INT32_MAX, &v) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_INVALID, "versionId must be a positive integer");
	*out = (int)v;
	return IOTP_OK;
}

/* ---- templates ---- */

static iotp_rc create_template(struct api_request *rq, struct api_response *resp,
                               struct iotp_err *err)
{
	static const char *const names[] = {"templateName", "description", "templateBody",
	                                    "enabled", "provisioningRoleArn", "preProvisioningHook",
	                                    "tags", "type"};
	struct prov_template in;
	struct registry_ref ref;
	const char *name = NULL, *type = NULL, *desc = NULL, *body = NULL, *role = NULL;
	const json_t *hook = NULL;
	iotp_rc rc;

	memset(&in, 0, sizeof(in));
	memset(&ref, 0, sizeof(ref));
	if ((rc = api_json_only(rq->json, "the request body", names,
	                        sizeof(names) / sizeof(names[0]), err)) != IOTP_OK ||
	    (rc = api_json_no_tags(rq->json, err)) != IOTP_OK ||
	    (rc = api_body_string(rq, "templateName", 1, &name, err)) != IOTP_OK ||
	    (rc = api_body_string(rq, "description", 0, &desc, err)) != IOTP_OK ||
	    (rc = api_body_string(rq, "templateBody", 1, &body, err)) != IOTP_OK ||
	    (rc = api_body_bool(rq, "enabled", 0, &in.enabled, err)) != IOTP_OK ||
	    (rc = api_body_string(rq, "provisioningRoleArn", 0, &role, err)) != IOTP_OK ||
	    (rc = api_body_object(rq, "preProvisioningHook", 0, &hook, err)) != IOTP_OK ||
	    (rc = api_body_string(rq, "type", 0, &type, err)) != IOTP_OK)
		return rc;
	if (strlen(name) > PROV_TEMPLATE_NAME_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "templateName is over %d characters",
		                    PROV_TEMPLATE_NAME_MAX);
	util_strlcpy(in.name, name, sizeof(in.name));
	if (type != NULL && util_strlcpy(in.type, type, sizeof(in.type)) >= sizeof(in.type))
		return iotp_err_set(err, IOTP_ERR_INVALID, "type must be FLEET_PROVISIONING or JITP");
	/* Borrowed for the call: prov_template_create only reads its input. */
	in.description = (char *)desc;
	in.body = (char *)body;
	in.role_arn = (char *)role;
	in.hook = (json_t *)hook;
	rc = prov_template_create(rq->core, rq->actor, &in, &ref, err);
	if (rc == IOTP_ERR_EXISTS) {
		struct prov_template cur = {0};
		struct iotp_err derr;

		if (prov_template_describe(rq->core, name, &cur, &derr) == IOTP_OK)
			resp->error_extra = json_pack("{s:s, s:s}", "resourceId", cur.id, "resourceArn",
			                              cur.arn);
		prov_template_cleanup(&cur);
		return rc;
	}
	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp,
	             json_pack("{s:s, s:s, s:i}", "templateArn", ref.arn, "templateName", ref.name,
	                       "defaultVersionId", 1),
	             err);
}

static json_t *template_json(const struct prov_template *t, int full)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:s}", "templateArn", t->arn,
	                      "templateName", t->name, "description",
	                      t->description != NULL ? t->description : "", "creationDate",
	                      (json_int_t)t->created, "lastModifiedDate", (json_int_t)t->updated,
	                      "enabled", t->enabled, "type", t->type);

	if (o == NULL || !full)
		return o;
	if (json_object_set_new(o, "defaultVersionId", json_integer(t->default_version)) != 0 ||
	    json_object_set_new(o, "templateBody", json_string(t->body != NULL ? t->body : "")) !=
	        0 ||
	    (t->role_arn != NULL && t->role_arn[0] != '\0' &&
	     json_object_set_new(o, "provisioningRoleArn", json_string(t->role_arn)) != 0) ||
	    (t->hook != NULL && json_object_set(o, "preProvisioningHook", t->hook) != 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static iotp_rc describe_template(struct api_request *rq, struct api_response *resp,
                                 struct iotp_err *err)
{
	struct prov_template t = {0};
	iotp_rc rc = prov_template_describe(rq->core, api_param(rq, "templateName"), &t, err);

	if (rc == IOTP_OK)
		rc = api_reply(resp, template_json(&t, 1), err);
	prov_template_cleanup(&t);
	return rc;
}

static iotp_rc list_templates(struct api_request *rq, struct api_response *resp,
                              struct iotp_err *err)
{
	struct prov_template_list l = {0};
	struct registry_page page;
	json_t *items = NULL, *body = NULL;
	iotp_rc rc;

	if ((rc = api_page_from_query(rq, "nextToken", "maxResults", &page, err)) != IOTP_OK ||
	    (rc = prov_template_list(rq->core, &page, &l, err)) != IOTP_OK)
		return rc;
	items = json_array();
	for (size_t i = 0; items != NULL && i < l.count; i++) {
		if (json_array_append_new(items, template_json(&l.items[i], 0)) != 0) {
			json_decref(items);
			items = NULL;
		}
	}
	if (items != NULL)
		body = json_pack("{s:o, s:s?}", "templates", items, "nextToken", l.next_token);
	prov_template_list_cleanup(&l);
	return api_reply(resp, body, err);
}

static iotp_rc update_template(struct api_request *rq, struct api_response *resp,
                               struct iotp_err *err)
{
	static const char *const names[] = {"description", "enabled", "defaultVersionId",
	                                    "provisioningRoleArn", "preProvisioningHook",
	                                    "removePreProvisioningHook"};
	struct prov_template_update up = {.enabled = -1};
	const json_t *hook = NULL;
	int64_t dv = 0;
	iotp_rc rc;

	up.name = api_param(rq, "templateName");
	if ((rc = api_json_only(rq->json, "the request body", names,
	                        sizeof(names) / sizeof(names[0]), err)) != IOTP_OK ||
	    (rc = api_body_string(rq, "description", 0, &up.description, err)) != IOTP_OK ||
	    (rc = api_body_bool(rq, "enabled", 0, &up.enabled, err)) != IOTP_OK ||
	    (rc = api_body_int(rq, "defaultVersionId", 0, 1, INT32_MAX, &dv, err)) != IOTP_OK ||
	    (rc = api_body_string(rq, "provisioningRoleArn", 0, &up.role_arn, err)) != IOTP_OK ||
	    (rc = api_body_object(rq, "preProvisioningHook", 0, &hook, err)) != IOTP_OK ||
	    (rc = api_body_bool(rq, "removePreProvisioningHook", 0, &up.remove_hook, err)) != IOTP_OK)
		return rc;
	up.default_version = (int)dv;
	up.hook = hook;
	if ((rc = prov_template_update(rq->core, rq->actor, &up, err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc delete_template(struct api_request *rq, struct api_response *resp,
                               struct iotp_err *err)
{
	iotp_rc rc = prov_template_delete(rq->core, rq->actor, api_param(rq, "templateName"), err);

	return rc != IOTP_OK ? rc : api_reply(resp, json_object(), err);
}

/* ---- versions ---- */

static iotp_rc create_version(struct api_request *rq, struct api_response *resp,
                              struct iotp_err *err)
{
	static const char *const names[] = {"templateBody"};
	const char *name = api_param(rq, "templateName"), *body = NULL;
	struct prov_template t = {0};
	int set_default = 0, version = 0;
	json_t *out;
	iotp_rc rc;

	if ((rc = api_json_only(rq->json, "the request body", names, 1, err)) != IOTP_OK ||
	    (rc = api_body_string(rq, "templateBody", 1, &body, err)) != IOTP_OK ||
	    (rc = api_query_bool(rq, "setAsDefault", &set_default, err)) != IOTP_OK ||
	    (rc = prov_template_version_create(rq->core, rq->actor, name, body, set_default,
	                                       &version, err)) != IOTP_OK ||
	    (rc = prov_template_describe(rq->core, name, &t, err)) != IOTP_OK)
		return rc;
	out = json_pack("{s:s, s:s, s:i, s:b}", "templateArn", t.arn, "templateName", t.name,
	                "versionId", version, "isDefaultVersion", t.default_version == version);
	prov_template_cleanup(&t);
	return api_reply(resp, out, err);
}

static iotp_rc list_versions(struct api_request *rq, struct api_response *resp,
                             struct iotp_err *err)
{
	struct prov_template_version_list l = {0};
	struct registry_page page;
	json_t *items = NULL, *body = NULL;
	iotp_rc rc;

	if ((rc = api_page_from_query(rq, "nextToken", "maxResults", &page, err)) != IOTP_OK ||
	    (rc = prov_template_version_list(rq->core, api_param(rq, "templateName"), &page, &l,
	                                     err)) != IOTP_OK)
		return rc;
	items = json_array();
	for (size_t i = 0; items != NULL && i < l.count; i++) {
		json_t *v = json_pack("{s:i, s:I, s:b}", "versionId", l.items[i].version,
		                      "creationDate", (json_int_t)l.items[i].created,
		                      "isDefaultVersion", l.items[i].is_default);

		if (json_array_append_new(items, v) != 0) {
			json_decref(items);
			items = NULL;
		}
	}
	if (items != NULL)
		body = json_pack("{s:o, s:s?}", "versions", items, "nextToken", l.next_token);
	prov_template_version_list_cleanup(&l);
	return api_reply(resp, body, err);
}

static iotp_rc describe_version(struct api_request *rq, struct api_response *resp,
                                struct iotp_err *err)
{
	struct prov_template_version v = {0};
	int version = 0;
	iotp_rc rc;

	if ((rc = version_param(rq, &version, err)) != IOTP_OK ||
	    (rc = prov_template_version_describe(rq->core, api_param(rq, "templateName"), version,
	                                         &v, err)) != IOTP_OK)
		return rc;
	rc = api_reply(resp,
	           json_pack("{s:i, s:I, s:s, s:b}", "versionId", v.version, "creationDate",
	                     (json_int_t)v.created, "templateBody", v.body, "isDefaultVersion",
	                     v.is_default),
	           err);
	prov_template_version_cleanup(&v);
	return rc;
}

static iotp_rc delete_version(struct api_request *rq, struct api_response *resp,
                              struct iotp_err *err)
{
	int version = 0;
	iotp_rc rc;

	if ((rc = version_param(rq, &version, err)) != IOTP_OK ||
	    (rc = prov_template_version_delete(rq->core, rq->actor, api_param(rq, "templateName"),
	                                       version, err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

/* ---- RegisterThing and claims ---- */

static iotp_rc register_thing(struct api_request *rq, struct api_response *resp,
                              struct iotp_err *err)
{
	static const char *const names[] = {"templateBody", "parameters"};
	struct prov_result r = {0};
	const json_t *params = NULL;
	const char *body = NULL;
	json_t *out;
	iotp_rc rc;

	if ((rc = api_json_only(rq->json, "the request body", names, 2, err)) != IOTP_OK ||
	    (rc = api_body_string(rq, "templateBody", 1, &body, err)) != IOTP_OK ||
	    (rc = api_body_object(rq, "parameters", 0, &params, err)) != IOTP_OK ||
	    (rc = prov_register_thing_body(rq->core, rq->actor, body, strlen(body), params, &r,
	                                   err)) != IOTP_OK)
		return rc;
	out = json_pack("{s:O}", "resourceArns", r.resource_arns);
	if (out != NULL && r.cert_pem != NULL &&
	    json_object_set_new(out, "certificatePem", json_string(r.cert_pem)) != 0) {
		json_decref(out);
		out = NULL;
	}
	prov_result_cleanup(&r);
	return api_reply(resp, out, err);
}

static iotp_rc create_claim(struct api_request *rq, struct api_response *resp,
                            struct iotp_err *err)
{
	struct prov_claim c = {0};
	iotp_rc rc = prov_claim_create(rq->core, rq->actor, api_param(rq, "templateName"), &c, err);

	if (rc == IOTP_OK) {
		/* Written by hand so that the claim's private key can be wiped. */
		const char *members[] = {"certificateId", c.cert_id, "certificatePem", c.cert_pem};

		rc = api_reply_with_key(resp, members, 2, c.public_key_pem, c.private_key_pem,
		                        "expiration", c.expiration, err);
	}
	prov_claim_cleanup(&c);
	return rc;
}

static const struct route routes[] = {
	{"POST", "/provisioning-templates", "CreateProvisioningTemplate", ROUTE_JSON, NULL,
	 create_template},
	{"GET", "/provisioning-templates", "ListProvisioningTemplates", 0, NULL, list_templates},
	{"GET", "/provisioning-templates/{templateName}", "DescribeProvisioningTemplate", 0, NULL,
	 describe_template},
	{"PATCH", "/provisioning-templates/{templateName}", "UpdateProvisioningTemplate",
	 ROUTE_JSON, NULL, update_template},
	{"DELETE", "/provisioning-templates/{templateName}", "DeleteProvisioningTemplate", 0, NULL,
	 delete_template},
	{"POST", "/provisioning-templates/{templateName}/versions",
	 "CreateProvisioningTemplateVersion", ROUTE_JSON, NULL, create_version},
	{"GET", "/provisioning-templates/{templateName}/versions",
	 "ListProvisioningTemplateVersions", 0, NULL, list_versions},
	{"GET", "/provisioning-templates/{templateName}/versions/{versionId}",
	 "DescribeProvisioningTemplateVersion", 0, NULL, describe_version},
	{"DELETE", "/provisioning-templates/{templateName}/versions/{versionId}",
	 "DeleteProvisioningTemplateVersion", 0, NULL, delete_version},
	{"POST", "/provisioning-templates/{templateName}/provisioning-claim",
	 "CreateProvisioningClaim", 0, "templateName", create_claim},
	{"POST", "/things", "RegisterThing", ROUTE_JSON, NULL, register_thing},
};

const struct route_table api_prov_routes = {routes, sizeof(routes) / sizeof(routes[0])};
