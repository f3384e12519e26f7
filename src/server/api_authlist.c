/*
 * Authorized public-key lists over HTTP (iotprov extension routes under
 * /iotprov/authorized-key-lists, docs/api.md) and POST /provisioning/csr,
 * the enrolment of a device whose public key is on a list, without EST.
 * The rules are in core/authlist.h; these handlers decode and encode.
 */
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "core/authlist.h"
#include "server/api.h"
#include "server/api_json.h"

/* POST /iotprov/authorized-key-lists/{listName}
 * {templateName, description?, keys?: [{publicKey, deviceId, attributes?}]} */
static iotp_rc create_list(struct api_request *rq, struct api_response *resp,
                           struct iotp_err *err)
{
	static const char *const members[] = {"templateName", "description", "keys"};
	const char *name = api_param(rq, "listName"), *tmpl = NULL, *desc = NULL;
	const json_t *keys = json_object_get(rq->json, "keys");
	int64_t added = 0;
	iotp_rc rc;

	if ((rc = api_json_only(rq->json, "the request body", members, 3, err)) != IOTP_OK ||
	    (rc = api_json_str(rq->json, "templateName", 1, 128, &tmpl, err)) != IOTP_OK ||
	    (rc = api_json_str(rq->json, "description", 0, 2028, &desc, err)) != IOTP_OK)
		return rc;
	if (keys != NULL && !json_is_null(keys) && !json_is_array(keys))
		return iotp_err_set(err, IOTP_ERR_INVALID, "keys must be an array");
	if ((rc = store_begin(rq->core->store, err)) != IOTP_OK)
		return rc;
	rc = authlist_create(rq->core, rq->actor, name, tmpl, desc, err);
	if (rc == IOTP_OK && json_array_size(keys) > 0)
		rc = authlist_add_keys(rq->core, rq->actor, name, keys, &added, err);
	if (rc != IOTP_OK) {
		store_rollback(rq->core->store);
		return rc;
	}
	if ((rc = store_commit(rq->core->store, err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_pack("{s:s, s:I}", "listName", name, "keysAdded",
	                                 (json_int_t)added),
	                 err);
}

/* POST /iotprov/authorized-key-lists/{listName}/keys {keys: [...]} */
static iotp_rc add_keys(struct api_request *rq, struct api_response *resp,
                        struct iotp_err *err)
{
	static const char *const members[] = {"keys"};
	const json_t *keys = json_object_get(rq->json, "keys");
	int64_t added = 0;
	iotp_rc rc;

	if ((rc = api_json_only(rq->json, "the request body", members, 1, err)) != IOTP_OK)
		return rc;
	if (!json_is_array(keys))
		return iotp_err_set(err, IOTP_ERR_INVALID, "keys (an array) is required");
	if ((rc = authlist_add_keys(rq->core, rq->actor, api_param(rq, "listName"), keys, &added,
	                            err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_pack("{s:I}", "keysAdded", (json_int_t)added), err);
}

/* GET /iotprov/authorized-key-lists/{listName} */
static iotp_rc describe_list(struct api_request *rq, struct api_response *resp,
                             struct iotp_err *err)
{
	struct authlist_info i;
	json_t *body;
	iotp_rc rc;

	memset(&i, 0, sizeof(i));
	if ((rc = authlist_describe(rq->core, api_param(rq, "listName"), &i, err)) != IOTP_OK)
		return rc;
	body = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "listName", i.name, "templateName",
	                 i.template_name, "keyCount", (json_int_t)i.keys, "consumedCount",
	                 (json_int_t)i.consumed, "creationDate", (json_int_t)i.created,
	                 "lastModifiedDate", (json_int_t)i.updated);
	if (body != NULL && api_json_set_opt(body, "description", i.description) != 0) {
		json_decref(body);
		body = NULL;
	}
	authlist_info_cleanup(&i);
	return api_reply(resp, body, err);
}

/* GET /iotprov/authorized-key-lists?nextToken&maxResults */
static iotp_rc list_lists(struct api_request *rq, struct api_response *resp,
                          struct iotp_err *err)
{
	struct registry_page page = {NULL, 0};
	struct registry_str_list l = {0};
	json_t *body;
	iotp_rc rc;

	if ((rc = api_page_from_query(rq, "nextToken", "maxResults", &page, err)) != IOTP_OK ||
	    (rc = authlist_list(rq->core, &page, &l, err)) != IOTP_OK)
		return rc;
	body = json_pack("{s:o}", "listNames", api_json_str_array(l.items, l.count));
	if (body != NULL && api_json_set_opt(body, "nextToken", l.next_token) != 0) {
		json_decref(body);
		body = NULL;
	}
	registry_str_list_cleanup(&l);
	return api_reply(resp, body, err);
}

/* DELETE /iotprov/authorized-key-lists/{listName} */
static iotp_rc delete_list(struct api_request *rq, struct api_response *resp,
                          struct iotp_err *err)
{
	iotp_rc rc = authlist_delete(rq->core, rq->actor, api_param(rq, "listName"), err);

	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

/* POST /provisioning/csr {certificateSigningRequest, templateName?}: no
 * SigV4; the CSR's key, being on an authorized list, is the credential. */
static iotp_rc provision_csr(struct api_request *rq, struct api_response *resp,
                             struct iotp_err *err)
{
	static const char *const members[] = {"certificateSigningRequest", "templateName"};
	struct enroll_in in;
	struct enroll_out out;
	const char *csr = NULL, *tmpl = NULL;
	json_t *body;
	iotp_rc rc;

	memset(&in, 0, sizeof(in));
	memset(&out, 0, sizeof(out));
	if ((rc = api_json_only(rq->json, "the request body", members, 2, err)) != IOTP_OK ||
	    (rc = api_json_str(rq->json, "certificateSigningRequest", 1, 4096, &csr, err)) !=
	        IOTP_OK ||
	    (rc = api_json_str(rq->json, "templateName", 0, 128, &tmpl, err)) != IOTP_OK)
		return rc;
	in.via = ENROLL_AUTHLIST;
	in.csr = csr;
	in.csr_len = strlen(csr);
	in.template_name = tmpl;
	if ((rc = authlist_enroll(rq->core, "device:authlist", &in, &out, err)) != IOTP_OK)
		return rc;
	body = json_pack("{s:s, s:s}", "certificateId", out.cert_id, "certificatePem",
	                 out.cert_pem);
	if (body != NULL && api_json_set_opt(body, "thingName", out.thing_name) != 0) {
		json_decref(body);
		body = NULL;
	}
	enroll_out_cleanup(&out);
	return api_reply(resp, body, err);
}

static const struct route routes[] = {
	{"GET", "/iotprov/authorized-key-lists", "ListAuthorizedKeyLists", 0, NULL, list_lists},
	{"POST", "/iotprov/authorized-key-lists/{listName}", "CreateAuthorizedKeyList",
	 ROUTE_JSON, NULL, create_list},
	{"GET", "/iotprov/authorized-key-lists/{listName}", "DescribeAuthorizedKeyList", 0, NULL,
	 describe_list},
	{"DELETE", "/iotprov/authorized-key-lists/{listName}", "DeleteAuthorizedKeyList", 0, NULL,
	 delete_list},
	{"POST", "/iotprov/authorized-key-lists/{listName}/keys", "AddAuthorizedKeys", ROUTE_JSON,
	 NULL, add_keys},
	{"POST", "/provisioning/csr", "ProvisionByCsr", ROUTE_PUBLIC | ROUTE_JSON, NULL,
	 provision_csr},
};

const struct route_table api_authlist_routes = {routes, sizeof(routes) / sizeof(routes[0])};
