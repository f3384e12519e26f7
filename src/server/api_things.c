/*
 * Routes for things, thing principals and thing types: CreateThing,
 * DescribeThing, UpdateThing, DeleteThing, ListThings,
 * Attach/DetachThingPrincipal, ListThingPrincipals, ListPrincipalThings,
 * Create/Describe/List/Deprecate/DeleteThingType.
 *
 * Each handler reads the path, query and body (api_parse.h), calls one
 * registry function and formats the botocore output shape; the rules are
 * the registry's.
 */
#include <string.h>

#include "core/registry.h"
#include "server/api.h"
#include "server/api_json.h"
#include "server/api_parse.h"

/* ------------------------------------------------------------------ */
/* Things                                                              */

/* ThingAttribute (ListThings) or, with full, DescribeThing's output. */
static json_t *thing_json(const struct registry_thing *t, int full)
{
	json_t *o = json_pack("{s:s, s:s, s:O, s:I}", "thingName", t->name, "thingArn", t->arn,
	                      "attributes", t->attributes, "version", (json_int_t)t->version);

	if (o == NULL)
		return NULL;
	if (api_json_set_opt(o, "thingTypeName", t->type_name) != 0 ||
	    (full && (api_json_set_opt(o, "thingId", t->id) != 0 ||
	              api_json_set_opt(o, "defaultClientId", t->name) != 0))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static iotp_rc create_thing(struct api_request *rq, struct api_response *resp,
                            struct iotp_err *err)
{
	struct registry_thing_spec spec;
	struct registry_ref ref;
	iotp_rc rc;

	memset(&spec, 0, sizeof(spec));
	spec.name = api_param(rq, "thingName");
	if ((rc = api_parse_create_thing(rq->json, &spec, err)) != IOTP_OK)
		return rc;
	rc = registry_thing_create(rq->core, rq->actor, &spec, &ref, err);
	if (rc == IOTP_ERR_EXISTS) {
		struct registry_thing t = {0};
		struct iotp_err derr;

		if (registry_thing_describe(rq->core, spec.name, &t, &derr) == IOTP_OK)
			api_exists_extra(resp, t.id, t.arn);
		registry_thing_cleanup(&t);
	}
	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp, json_pack("{s:s, s:s, s:s}", "thingName", ref.name, "thingArn",
	                                 ref.arn, "thingId", ref.id),
	                 err);
}

static iotp_rc describe_thing(struct api_request *rq, struct api_response *resp,
                              struct iotp_err *err)
{
	struct registry_thing t = {0};
	iotp_rc rc = registry_thing_describe(rq->core, api_param(rq, "thingName"), &t, err);

	if (rc == IOTP_OK)
		rc = api_reply(resp, thing_json(&t, 1), err);
	registry_thing_cleanup(&t);
	return rc;
}

static iotp_rc update_thing(struct api_request *rq, struct api_response *resp,
                            struct iotp_err *err)
{
	struct registry_thing_update up;
	iotp_rc rc;

	memset(&up, 0, sizeof(up));
	up.name = api_param(rq, "thingName");
	up.expected_version = REGISTRY_NO_VERSION;
	if ((rc = api_parse_update_thing(rq->json, &up, err)) != IOTP_OK ||
	    (rc = registry_thing_update(rq->core, rq->actor, &up, err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc delete_thing(struct api_request *rq, struct api_response *resp,
                            struct iotp_err *err)
{
	int64_t expected = REGISTRY_NO_VERSION;
	iotp_rc rc;

	if ((rc = api_query_int(rq, "expectedVersion", 0, INT64_MAX, &expected, err)) != IOTP_OK ||
	    (rc = registry_thing_delete(rq->core, rq->actor, api_param(rq, "thingName"), expected,
	                                err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc list_things(struct api_request *rq, struct api_response *resp,
                           struct iotp_err *err)
{
	struct registry_thing_filter filter;
	struct registry_page page = {NULL, 0};
	struct registry_thing_list list = {0};
	json_t *items = NULL;
	iotp_rc rc;

	memset(&filter, 0, sizeof(filter));
	filter.attribute_name = api_query(rq, "attributeName");
	filter.attribute_value = api_query(rq, "attributeValue");
	filter.type_name = api_query(rq, "thingTypeName");
	if ((rc = api_query_bool(rq, "usePrefixAttributeValue", &filter.use_prefix, err)) !=
	        IOTP_OK ||
	    (rc = api_page_from_query(rq, "nextToken", "maxResults", &page, err)) != IOTP_OK ||
	    (rc = registry_thing_list(rq->core, &filter, &page, &list, err)) != IOTP_OK)
		goto out;
	items = json_array();
	for (size_t i = 0; i < list.count; i++)
		api_json_push(&items, thing_json(&list.items[i], 0));
	rc = api_reply(resp, api_page_json("things", items, "nextToken", list.next_token), err);
out:
	registry_thing_list_cleanup(&list);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Thing principals                                                     */

static iotp_rc principal_header(const struct api_request *rq, const char **out,
                                struct iotp_err *err)
{
	const char *p = api_header(rq, "x-amzn-principal");

	if (p == NULL || p[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "the principal (header x-amzn-principal) is required");
	*out = p;
	return IOTP_OK;
}

static iotp_rc attach_thing_principal(struct api_request *rq, struct api_response *resp,
                                      struct iotp_err *err)
{
	const char *principal = NULL;
	iotp_rc rc;

	if ((rc = principal_header(rq, &principal, err)) != IOTP_OK ||
	    (rc = registry_thing_attach_principal(rq->core, rq->actor, api_param(rq, "thingName"),
	                                          principal, err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc detach_thing_principal(struct api_request *rq, struct api_response *resp,
                                      struct iotp_err *err)
{
	const char *principal = NULL;
	iotp_rc rc;

	if ((rc = principal_header(rq, &principal, err)) != IOTP_OK ||
	    (rc = registry_thing_detach_principal(rq->core, rq->actor, api_param(rq, "thingName"),
	                                          principal, err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc list_thing_principals(struct api_request *rq, struct api_response *resp,
                                     struct iotp_err *err)
{
	struct registry_page page = {NULL, 0};
	struct registry_str_list list = {0};
	iotp_rc rc;

	if ((rc = api_page_from_query(rq, "nextToken", "maxResults", &page, err)) == IOTP_OK &&
	    (rc = registry_thing_list_principals(rq->core, api_param(rq, "thingName"), &page, &list,
	                                         err)) == IOTP_OK)
		rc = api_reply(resp,
		               api_page_json("principals", api_json_str_array(list.items, list.count),
		                         "nextToken", list.next_token),
		               err);
	registry_str_list_cleanup(&list);
	return rc;
}

static iotp_rc list_principal_things(struct api_request *rq, struct api_response *resp,
                                     struct iotp_err *err)
{
	struct registry_page page = {NULL, 0};
	struct registry_str_list list = {0};
	const char *principal = NULL;
	iotp_rc rc;

	if ((rc = principal_header(rq, &principal, err)) == IOTP_OK &&
	    (rc = api_page_from_query(rq, "nextToken", "maxResults", &page, err)) == IOTP_OK &&
	    (rc = registry_principal_list_things(rq->core, principal, &page, &list, err)) ==
	        IOTP_OK)
		rc = api_reply(resp,
		               api_page_json("things", api_json_str_array(list.items, list.count),
		                         "nextToken", list.next_token),
		               err);
	registry_str_list_cleanup(&list);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Thing types                                                          */

/* ThingTypeDefinition; with full, DescribeThingType's output (+ id). */
static json_t *thing_type_json(const struct registry_thing_type *t, int full)
{
	json_t *o = json_pack("{s:s, s:s}", "thingTypeName", t->name, "thingTypeArn", t->arn);
	json_t *props = json_pack("{s:O}", "searchableAttributes", t->searchable_attributes);
	json_t *meta = json_pack("{s:b, s:I}", "deprecated", t->deprecated, "creationDate",
	                         (json_int_t)t->created);

	if (o == NULL || props == NULL || meta == NULL ||
	    api_json_set_opt(props, "thingTypeDescription", t->description) != 0 ||
	    (t->deprecated && json_object_set_new(meta, "deprecationDate",
	                                          json_integer(t->deprecation_date)) != 0) ||
	    (full && api_json_set_opt(o, "thingTypeId", t->id) != 0))
		goto fail;
	/* json_object_set_new takes the reference even when it fails. */
	if (json_object_set_new(o, "thingTypeProperties", props) != 0) {
		props = NULL;
		goto fail;
	}
	props = NULL;
	if (json_object_set_new(o, "thingTypeMetadata", meta) != 0) {
		meta = NULL;
		goto fail;
	}
	return o;
fail:
	json_decref(props);
	json_decref(meta);
	json_decref(o);
	return NULL;
}

static iotp_rc create_thing_type(struct api_request *rq, struct api_response *resp,
                                 struct iotp_err *err)
{
	struct registry_thing_type_spec spec;
	struct registry_ref ref;
	iotp_rc rc;

	memset(&spec, 0, sizeof(spec));
	spec.name = api_param(rq, "thingTypeName");
	if ((rc = api_parse_create_thing_type(rq->json, &spec, err)) != IOTP_OK)
		return rc;
	rc = registry_thing_type_create(rq->core, rq->actor, &spec, &ref, err);
	if (rc == IOTP_ERR_EXISTS) {
		struct registry_thing_type t = {0};
		struct iotp_err derr;

		if (registry_thing_type_describe(rq->core, spec.name, &t, &derr) == IOTP_OK)
			api_exists_extra(resp, t.id, t.arn);
		registry_thing_type_cleanup(&t);
	}
	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp, json_pack("{s:s, s:s, s:s}", "thingTypeName", ref.name,
	                                 "thingTypeArn", ref.arn, "thingTypeId", ref.id),
	                 err);
}

static iotp_rc describe_thing_type(struct api_request *rq, struct api_response *resp,
                                   struct iotp_err *err)
{
	struct registry_thing_type t = {0};
	iotp_rc rc = registry_thing_type_describe(rq->core, api_param(rq, "thingTypeName"), &t,
	                                          err);

	if (rc == IOTP_OK)
		rc = api_reply(resp, thing_type_json(&t, 1), err);
	registry_thing_type_cleanup(&t);
	return rc;
}

static iotp_rc list_thing_types(struct api_request *rq, struct api_response *resp,
                                struct iotp_err *err)
{
	struct registry_page page = {NULL, 0};
	struct registry_thing_type_list list = {0};
	json_t *items = NULL;
	iotp_rc rc;

	if ((rc = api_page_from_query(rq, "nextToken", "maxResults", &page, err)) != IOTP_OK ||
	    (rc = registry_thing_type_list(rq->core, api_query(rq, "thingTypeName"), &page, &list,
	                                   err)) != IOTP_OK)
		goto out;
	items = json_array();
	for (size_t i = 0; i < list.count; i++)
		api_json_push(&items, thing_type_json(&list.items[i], 0));
	rc = api_reply(resp, api_page_json("thingTypes", items, "nextToken", list.next_token), err);
out:
	registry_thing_type_list_cleanup(&list);
	return rc;
}

static iotp_rc deprecate_thing_type(struct api_request *rq, struct api_response *resp,
                                    struct iotp_err *err)
{
	int undo = 0;
	iotp_rc rc;

	if ((rc = api_parse_deprecate_thing_type(rq->json, &undo, err)) != IOTP_OK ||
	    (rc = registry_thing_type_deprecate(rq->core, rq->actor,
	                                        api_param(rq, "thingTypeName"), undo, err)) !=
	        IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc delete_thing_type(struct api_request *rq, struct api_response *resp,
                                 struct iotp_err *err)
{
	iotp_rc rc = registry_thing_type_delete(rq->core, rq->actor,
	                                        api_param(rq, "thingTypeName"), err);

	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static const struct route routes[] = {
	{"POST", "/things/{thingName}", "CreateThing", ROUTE_JSON, NULL, create_thing},
	{"GET", "/things/{thingName}", "DescribeThing", 0, NULL, describe_thing},
	{"PATCH", "/things/{thingName}", "UpdateThing", ROUTE_JSON, NULL, update_thing},
	{"DELETE", "/things/{thingName}", "DeleteThing", 0, NULL, delete_thing},
	{"GET", "/things", "ListThings", 0, NULL, list_things},
	{"PUT", "/things/{thingName}/principals", "AttachThingPrincipal", 0, NULL,
	 attach_thing_principal},
	{"DELETE", "/things/{thingName}/principals", "DetachThingPrincipal", 0, NULL,
	 detach_thing_principal},
	{"GET", "/things/{thingName}/principals", "ListThingPrincipals", 0, NULL,
	 list_thing_principals},
	{"GET", "/principals/things", "ListPrincipalThings", 0, NULL, list_principal_things},
	{"POST", "/thing-types/{thingTypeName}", "CreateThingType", ROUTE_JSON, NULL,
	 create_thing_type},
	{"GET", "/thing-types/{thingTypeName}", "DescribeThingType", 0, NULL, describe_thing_type},
	{"GET", "/thing-types", "ListThingTypes", 0, NULL, list_thing_types},
	{"POST", "/thing-types/{thingTypeName}/deprecate", "DeprecateThingType", ROUTE_JSON, NULL,
	 deprecate_thing_type},
	{"DELETE", "/thing-types/{thingTypeName}", "DeleteThingType", 0, NULL, delete_thing_type},
};

const struct route_table api_thing_routes = {routes, sizeof(routes) / sizeof(routes[0])};
