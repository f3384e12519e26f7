/*
 * Routes for policies: Create/Get/Delete/ListPolicies, the policy version
 * operations, Attach/DetachPolicy (certificates and thing groups),
 * ListAttachedPolicies and ListTargetsForPolicy. Documents are checked by
 * the policy engine inside the registry; version ids travel as strings, as
 * in the model.
 */
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "core/registry.h"
#include "server/api.h"
#include "server/api_json.h"
#include "server/api_parse.h"

static iotp_rc version_param(const struct api_request *rq, int64_t *out, struct iotp_err *err)
{
	const char *v = api_param(rq, "policyVersionId");

	if (v == NULL || util_parse_int64(v, 1, INT64_MAX, out) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "policyVersionId must be a positive whole number");
	return IOTP_OK;
}

static iotp_rc create_policy(struct api_request *rq, struct api_response *resp,
                             struct iotp_err *err)
{
	struct registry_policy p = {0};
	const char *name = api_param(rq, "policyName"), *doc = NULL;
	json_t *o = NULL;
	iotp_rc rc;

	if ((rc = api_parse_policy_document(rq->json, 1, &doc, err)) != IOTP_OK)
		goto out;
	rc = registry_policy_create(rq->core, rq->actor, name, doc, &p, err);
	if (rc == IOTP_ERR_EXISTS) {
		char arn[REGISTRY_ARN_MAX], res[REGISTRY_NAME_MAX + 8];
		struct iotp_err aerr;

		snprintf(res, sizeof(res), "policy/%s", name);
		if (api_arn(rq, res, arn, sizeof(arn), &aerr) == IOTP_OK)
			api_exists_extra(resp, name, arn);
	}
	if (rc != IOTP_OK)
		goto out;
	o = json_pack("{s:s, s:s, s:s}", "policyName", p.name, "policyArn", p.arn,
	              "policyDocument", p.document);
	if (o != NULL && api_json_set_num_str(o, "policyVersionId", p.default_version) != 0) {
		json_decref(o);
		o = NULL;
	}
	rc = api_reply(resp, o, err);
out:
	registry_policy_cleanup(&p);
	return rc;
}

static iotp_rc get_policy(struct api_request *rq, struct api_response *resp,
                          struct iotp_err *err)
{
	struct registry_policy p = {0};
	json_t *o = NULL;
	iotp_rc rc = registry_policy_get(rq->core, api_param(rq, "policyName"), &p, err);

	if (rc != IOTP_OK)
		goto out;
	o = json_pack("{s:s, s:s, s:s, s:I, s:I}", "policyName", p.name, "policyArn", p.arn,
	              "policyDocument", p.document, "creationDate", (json_int_t)p.created,
	              "lastModifiedDate", (json_int_t)p.updated);
	if (o != NULL && api_json_set_num_str(o, "defaultVersionId", p.default_version) != 0) {
		json_decref(o);
		o = NULL;
	}
	rc = api_reply(resp, o, err);
out:
	registry_policy_cleanup(&p);
	return rc;
}

static iotp_rc delete_policy(struct api_request *rq, struct api_response *resp,
                             struct iotp_err *err)
{
	iotp_rc rc = registry_policy_delete(rq->core, rq->actor, api_param(rq, "policyName"), err);

	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

/* {"policies": [{policyName, policyArn}...], "nextMarker": ...} */
static iotp_rc reply_policy_refs(struct api_response *resp, const struct registry_ref_list *l,
                                 struct iotp_err *err)
{
	json_t *items = json_array();

	for (size_t i = 0; i < l->count; i++)
		api_json_push(&items, json_pack("{s:s, s:s}", "policyName", l->items[i].name,
		                                "policyArn", l->items[i].arn));
	return api_reply(resp, api_page_json("policies", items, "nextMarker", l->next_token), err);
}

static iotp_rc list_policies(struct api_request *rq, struct api_response *resp,
                             struct iotp_err *err)
{
	struct registry_page page = {NULL, 0};
	struct registry_ref_list list = {0};
	int ascending = 1;
	iotp_rc rc;

	if ((rc = api_query_bool(rq, "isAscendingOrder", &ascending, err)) == IOTP_OK &&
	    (rc = api_page_from_query(rq, "marker", "pageSize", &page, err)) == IOTP_OK &&
	    (rc = registry_policy_list(rq->core, ascending, &page, &list, err)) == IOTP_OK)
		rc = reply_policy_refs(resp, &list, err);
	registry_ref_list_cleanup(&list);
	return rc;
}

static iotp_rc create_policy_version(struct api_request *rq, struct api_response *resp,
                                     struct iotp_err *err)
{
	struct registry_policy_version v = {0};
	const char *name = api_param(rq, "policyName"), *doc = NULL;
	char arn[REGISTRY_ARN_MAX], res[REGISTRY_NAME_MAX + 8];
	int set_default = 0;
	json_t *o = NULL;
	iotp_rc rc;

	snprintf(res, sizeof(res), "policy/%s", name);
	if ((rc = api_query_bool(rq, "setAsDefault", &set_default, err)) != IOTP_OK ||
	    (rc = api_parse_policy_document(rq->json, 0, &doc, err)) != IOTP_OK ||
	    (rc = registry_policy_version_create(rq->core, rq->actor, name, doc, set_default, &v,
	                                         err)) != IOTP_OK ||
	    (rc = api_arn(rq, res, arn, sizeof(arn), err)) != IOTP_OK)
		goto out;
	o = json_pack("{s:s, s:s, s:b}", "policyArn", arn, "policyDocument",
	              v.document != NULL ? v.document : doc, "isDefaultVersion", v.is_default);
	if (o != NULL && api_json_set_num_str(o, "policyVersionId", v.version) != 0) {
		json_decref(o);
		o = NULL;
	}
	rc = api_reply(resp, o, err);
out:
	registry_policy_version_cleanup(&v);
	return rc;
}

static iotp_rc get_policy_version(struct api_request *rq, struct api_response *resp,
                                  struct iotp_err *err)
{
	struct registry_policy_version v = {0};
	const char *name = api_param(rq, "policyName");
	char arn[REGISTRY_ARN_MAX], res[REGISTRY_NAME_MAX + 8];
	int64_t version = 0;
	json_t *o = NULL;
	iotp_rc rc;

	snprintf(res, sizeof(res), "policy/%s", name);
	if ((rc = version_param(rq, &version, err)) != IOTP_OK ||
	    (rc = registry_policy_version_get(rq->core, name, version, &v, err)) != IOTP_OK ||
	    (rc = api_arn(rq, res, arn, sizeof(arn), err)) != IOTP_OK)
		goto out;
	o = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I}", "policyArn", arn, "policyName", name,
	              "policyDocument", v.document != NULL ? v.document : "", "isDefaultVersion",
	              v.is_default, "creationDate", (json_int_t)v.created, "lastModifiedDate",
	              (json_int_t)v.created);
	if (o != NULL && api_json_set_num_str(o, "policyVersionId", v.version) != 0) {
		json_decref(o);
		o = NULL;
	}
	rc = api_reply(resp, o, err);
out:
	registry_policy_version_cleanup(&v);
	return rc;
}

static iotp_rc list_policy_versions(struct api_request *rq, struct api_response *resp,
                                    struct iotp_err *err)
{
	struct registry_policy_version_list list = {0};
	json_t *items, *o;
	iotp_rc rc;

	if ((rc = registry_policy_version_list(rq->core, api_param(rq, "policyName"), &list, err)) !=
	    IOTP_OK)
		goto out;
	items = json_array();
	for (size_t i = 0; i < list.count; i++) {
		o = json_pack("{s:b, s:I}", "isDefaultVersion", list.items[i].is_default,
		              "createDate", (json_int_t)list.items[i].created);
		if (o != NULL && api_json_set_num_str(o, "versionId", list.items[i].version) != 0) {
			json_decref(o);
			o = NULL;
		}
		api_json_push(&items, o);
	}
	/* no paging here: the list has at most REGISTRY_POLICY_MAX_VERSIONS */
	rc = api_reply(resp, api_page_json("policyVersions", items, "nextMarker", NULL), err);
out:
	registry_policy_version_list_cleanup(&list);
	return rc;
}

static iotp_rc set_default_policy_version(struct api_request *rq, struct api_response *resp,
                                          struct iotp_err *err)
{
	int64_t version = 0;
	iotp_rc rc;

	if ((rc = version_param(rq, &version, err)) != IOTP_OK ||
	    (rc = registry_policy_version_set_default(rq->core, rq->actor,
	                                              api_param(rq, "policyName"), version, err)) !=
	        IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc delete_policy_version(struct api_request *rq, struct api_response *resp,
                                     struct iotp_err *err)
{
	int64_t version = 0;
	iotp_rc rc;

	if ((rc = version_param(rq, &version, err)) != IOTP_OK ||
	    (rc = registry_policy_version_delete(rq->core, rq->actor, api_param(rq, "policyName"),
	                                         version, err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc attach_policy(struct api_request *rq, struct api_response *resp,
                             struct iotp_err *err)
{
	const char *target = NULL;
	iotp_rc rc;

	if ((rc = api_parse_policy_target(rq->json, &target, err)) != IOTP_OK ||
	    (rc = registry_policy_attach(rq->core, rq->actor, api_param(rq, "policyName"), target,
	                                 err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc detach_policy(struct api_request *rq, struct api_response *resp,
                             struct iotp_err *err)
{
	const char *target = NULL;
	iotp_rc rc;

	if ((rc = api_parse_policy_target(rq->json, &target, err)) != IOTP_OK ||
	    (rc = registry_policy_detach(rq->core, rq->actor, api_param(rq, "policyName"), target,
	                                 err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc list_attached_policies(struct api_request *rq, struct api_response *resp,
                                      struct iotp_err *err)
{
	struct registry_page page = {NULL, 0};
	struct registry_ref_list list = {0};
	int recursive = 0;
	iotp_rc rc;

	if ((rc = api_query_bool(rq, "recursive", &recursive, err)) == IOTP_OK &&
	    (rc = api_page_from_query(rq, "marker", "pageSize", &page, err)) == IOTP_OK &&
	    (rc = registry_policy_list_attached(rq->core, api_param(rq, "target"), recursive, &page,
	                                        &list, err)) == IOTP_OK)
		rc = reply_policy_refs(resp, &list, err);
	registry_ref_list_cleanup(&list);
	return rc;
}

static iotp_rc list_targets_for_policy(struct api_request *rq, struct api_response *resp,
                                       struct iotp_err *err)
{
	struct registry_page page = {NULL, 0};
	struct registry_str_list list = {0};
	iotp_rc rc;

	if ((rc = api_page_from_query(rq, "marker", "pageSize", &page, err)) == IOTP_OK &&
	    (rc = registry_policy_list_targets(rq->core, api_param(rq, "policyName"), &page, &list,
	                                       err)) == IOTP_OK)
		rc = api_reply(resp,
		               api_page_json("targets", api_json_str_array(list.items, list.count),
		                             "nextMarker", list.next_token),
		               err);
	registry_str_list_cleanup(&list);
	return rc;
}

static const struct route routes[] = {
	{"POST", "/policies/{policyName}", "CreatePolicy", ROUTE_JSON, NULL, create_policy},
	{"GET", "/policies/{policyName}", "GetPolicy", 0, NULL, get_policy},
	{"DELETE", "/policies/{policyName}", "DeletePolicy", 0, NULL, delete_policy},
	{"GET", "/policies", "ListPolicies", 0, NULL, list_policies},
	{"POST", "/policies/{policyName}/version", "CreatePolicyVersion", ROUTE_JSON, NULL,
	 create_policy_version},
	{"GET", "/policies/{policyName}/version", "ListPolicyVersions", 0, NULL,
	 list_policy_versions},
	{"GET", "/policies/{policyName}/version/{policyVersionId}", "GetPolicyVersion", 0, NULL,
	 get_policy_version},
	{"PATCH", "/policies/{policyName}/version/{policyVersionId}", "SetDefaultPolicyVersion", 0,
	 NULL, set_default_policy_version},
	{"DELETE", "/policies/{policyName}/version/{policyVersionId}", "DeletePolicyVersion", 0,
	 NULL, delete_policy_version},
	{"PUT", "/target-policies/{policyName}", "AttachPolicy", ROUTE_JSON, NULL, attach_policy},
	{"POST", "/target-policies/{policyName}", "DetachPolicy", ROUTE_JSON, NULL, detach_policy},
	{"POST", "/attached-policies/{target}", "ListAttachedPolicies", 0, NULL,
	 list_attached_policies},
	{"POST", "/policy-targets/{policyName}", "ListTargetsForPolicy", 0, NULL,
	 list_targets_for_policy},
};

const struct route_table api_policy_routes = {routes, sizeof(routes) / sizeof(routes[0])};
