/*
 * Routes for static thing groups: Create/Describe/Update/Delete/
 * ListThingGroups, Add/RemoveThingFromThingGroup, ListThingsInThingGroup and
 * ListThingGroupsForThing. The hierarchy rules (parents, depth, children
 * before parents) are the registry's.
 */
#include <string.h>

#include "core/registry.h"
#include "server/api.h"
#include "server/api_json.h"
#include "server/api_parse.h"

/* [{groupName, groupArn}...] of refs. */
static json_t *group_refs_json(const struct registry_ref *refs, size_t count)
{
	json_t *a = json_array();

	for (size_t i = 0; i < count; i++)
		api_json_push(&a, json_pack("{s:s, s:s}", "groupName", refs[i].name, "groupArn",
		                            refs[i].arn));
	return a;
}

static json_t *group_json(const struct registry_thing_group *g)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:I}", "thingGroupName", g->name, "thingGroupId",
	                      g->id, "thingGroupArn", g->arn, "version", (json_int_t)g->version);
	json_t *props = json_pack("{s:{s:O}}", "attributePayload", "attributes", g->attributes);
	json_t *meta = json_pack("{s:I}", "creationDate", (json_int_t)g->created);
	json_t *chain = NULL;

	if (o == NULL || props == NULL || meta == NULL ||
	    api_json_set_opt(props, "thingGroupDescription", g->description) != 0 ||
	    api_json_set_opt(meta, "parentGroupName", g->parent_name) != 0)
		goto fail;
	if (g->root_to_parent_count > 0) {
		chain = group_refs_json(g->root_to_parent, g->root_to_parent_count);
		/* set_new takes chain's reference, also when it fails */
		if (chain == NULL || json_object_set_new(meta, "rootToParentThingGroups", chain) != 0)
			goto fail;
	}
	if (json_object_set_new(o, "thingGroupProperties", props) != 0) {
		props = NULL;
		goto fail;
	}
	props = NULL;
	if (json_object_set_new(o, "thingGroupMetadata", meta) != 0) {
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

static iotp_rc create_thing_group(struct api_request *rq, struct api_response *resp,
                                  struct iotp_err *err)
{
	struct registry_thing_group_spec spec;
	struct registry_ref ref;
	iotp_rc rc;

	memset(&spec, 0, sizeof(spec));
	spec.name = api_param(rq, "thingGroupName");
	if ((rc = api_parse_create_thing_group(rq->json, &spec, err)) != IOTP_OK)
		return rc;
	rc = registry_thing_group_create(rq->core, rq->actor, &spec, &ref, err);
	if (rc == IOTP_ERR_EXISTS) {
		struct registry_thing_group g = {0};
		struct iotp_err derr;

		if (registry_thing_group_describe(rq->core, spec.name, &g, &derr) == IOTP_OK)
			api_exists_extra(resp, g.id, g.arn);
		registry_thing_group_cleanup(&g);
	}
	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp, json_pack("{s:s, s:s, s:s}", "thingGroupName", ref.name,
	                                 "thingGroupArn", ref.arn, "thingGroupId", ref.id),
	                 err);
}

static iotp_rc describe_thing_group(struct api_request *rq, struct api_response *resp,
                                    struct iotp_err *err)
{
	struct registry_thing_group g = {0};
	iotp_rc rc = registry_thing_group_describe(rq->core, api_param(rq, "thingGroupName"), &g,
	                                           err);

	if (rc == IOTP_OK)
		rc = api_reply(resp, group_json(&g), err);
	registry_thing_group_cleanup(&g);
	return rc;
}

static iotp_rc update_thing_group(struct api_request *rq, struct api_response *resp,
                                  struct iotp_err *err)
{
	struct registry_thing_group_update up;
	int64_t version = 0;
	iotp_rc rc;

	memset(&up, 0, sizeof(up));
	up.name = api_param(rq, "thingGroupName");
	up.expected_version = REGISTRY_NO_VERSION;
	if ((rc = api_parse_update_thing_group(rq->json, &up, err)) != IOTP_OK ||
	    (rc = registry_thing_group_update(rq->core, rq->actor, &up, &version, err)) != IOTP_OK)
		return rc;
	return api_reply(resp, json_pack("{s:I}", "version", (json_int_t)version), err);
}

static iotp_rc delete_thing_group(struct api_request *rq, struct api_response *resp,
                                  struct iotp_err *err)
{
	int64_t expected = REGISTRY_NO_VERSION;
	iotp_rc rc;

	if ((rc = api_query_int(rq, "expectedVersion", 0, INT64_MAX, &expected, err)) != IOTP_OK ||
	    (rc = registry_thing_group_delete(rq->core, rq->actor,
	                                      api_param(rq, "thingGroupName"), expected, err)) !=
	        IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc reply_group_refs(struct api_response *resp, const struct registry_ref_list *l,
                                struct iotp_err *err)
{
	return api_reply(resp,
	                 api_page_json("thingGroups", group_refs_json(l->items, l->count),
	                               "nextToken", l->next_token),
	                 err);
}

static iotp_rc list_thing_groups(struct api_request *rq, struct api_response *resp,
                                 struct iotp_err *err)
{
	struct registry_thing_group_filter filter;
	struct registry_page page = {NULL, 0};
	struct registry_ref_list list = {0};
	iotp_rc rc;

	memset(&filter, 0, sizeof(filter));
	filter.parent_name = api_query(rq, "parentGroup");
	filter.name_prefix = api_query(rq, "namePrefixFilter");
	filter.recursive = -1;
	if ((rc = api_query_bool(rq, "recursive", &filter.recursive, err)) == IOTP_OK &&
	    (rc = api_page_from_query(rq, "nextToken", "maxResults", &page, err)) == IOTP_OK &&
	    (rc = registry_thing_group_list(rq->core, &filter, &page, &list, err)) == IOTP_OK)
		rc = reply_group_refs(resp, &list, err);
	registry_ref_list_cleanup(&list);
	return rc;
}

static iotp_rc membership(struct api_request *rq, struct api_response *resp, int add,
                          struct iotp_err *err)
{
	struct api_group_membership m = {NULL, NULL};
	iotp_rc rc;

	if ((rc = api_parse_group_membership(rq->json, add, &m, err)) != IOTP_OK)
		return rc;
	if (add)
		rc = registry_thing_group_add_thing(rq->core, rq->actor, m.group_name, m.thing_name,
		                                    err);
	else
		rc = registry_thing_group_remove_thing(rq->core, rq->actor, m.group_name,
		                                       m.thing_name, err);
	if (rc != IOTP_OK)
		return rc;
	return api_reply(resp, json_object(), err);
}

static iotp_rc add_thing_to_group(struct api_request *rq, struct api_response *resp,
                                  struct iotp_err *err)
{
	return membership(rq, resp, 1, err);
}

static iotp_rc remove_thing_from_group(struct api_request *rq, struct api_response *resp,
                                       struct iotp_err *err)
{
	return membership(rq, resp, 0, err);
}

static iotp_rc list_things_in_group(struct api_request *rq, struct api_response *resp,
                                    struct iotp_err *err)
{
	struct registry_page page = {NULL, 0};
	struct registry_str_list list = {0};
	int recursive = 0;
	iotp_rc rc;

	if ((rc = api_query_bool(rq, "recursive", &recursive, err)) == IOTP_OK &&
	    (rc = api_page_from_query(rq, "nextToken", "maxResults", &page, err)) == IOTP_OK &&
	    (rc = registry_thing_group_list_things(rq->core, api_param(rq, "thingGroupName"),
	                                           recursive, &page, &list, err)) == IOTP_OK)
		rc = api_reply(resp,
		               api_page_json("things", api_json_str_array(list.items, list.count),
		                             "nextToken", list.next_token),
		               err);
	registry_str_list_cleanup(&list);
	return rc;
}

static iotp_rc list_groups_for_thing(struct api_request *rq, struct api_response *resp,
                                     struct iotp_err *err)
{
	struct registry_page page = {NULL, 0};
	struct registry_ref_list list = {0};
	iotp_rc rc;

	if ((rc = api_page_from_query(rq, "nextToken", "maxResults", &page, err)) == IOTP_OK &&
	    (rc = registry_thing_list_groups(rq->core, api_param(rq, "thingName"), &page, &list,
	                                     err)) == IOTP_OK)
		rc = reply_group_refs(resp, &list, err);
	registry_ref_list_cleanup(&list);
	return rc;
}

static const struct route routes[] = {
	{"POST", "/thing-groups/{thingGroupName}", "CreateThingGroup", ROUTE_JSON, NULL,
	 create_thing_group},
	{"GET", "/thing-groups/{thingGroupName}", "DescribeThingGroup", 0, NULL,
	 describe_thing_group},
	{"PATCH", "/thing-groups/{thingGroupName}", "UpdateThingGroup", ROUTE_JSON, NULL,
	 update_thing_group},
	{"DELETE", "/thing-groups/{thingGroupName}", "DeleteThingGroup", 0, NULL,
	 delete_thing_group},
	{"GET", "/thing-groups", "ListThingGroups", 0, NULL, list_thing_groups},
	{"PUT", "/thing-groups/addThingToThingGroup", "AddThingToThingGroup", ROUTE_JSON, NULL,
	 add_thing_to_group},
	{"PUT", "/thing-groups/removeThingFromThingGroup", "RemoveThingFromThingGroup", ROUTE_JSON,
	 NULL, remove_thing_from_group},
	{"GET", "/thing-groups/{thingGroupName}/things", "ListThingsInThingGroup", 0, NULL,
	 list_things_in_group},
	{"GET", "/things/{thingName}/thing-groups", "ListThingGroupsForThing", 0, NULL,
	 list_groups_for_thing},
};

const struct route_table api_group_routes = {routes, sizeof(routes) / sizeof(routes[0])};
