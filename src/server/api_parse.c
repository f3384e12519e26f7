/*
 * Request-body parsers of the control-plane API (see api_parse.h). Member
 * names and the length caps come from the botocore IoT model
 * (service-2.json); each parser lists the members its operation accepts
 * and refuses any other, so a misspelt member is an error rather than a
 * setting silently ignored.
 */
#include <string.h>

#include "common/util.h"
#include "server/api_json.h"
#include "server/api_parse.h"

#define PEM_MAX 65536       /* certificatePem, caCertificate... in the model */
#define CSR_MAX 4096        /* certificateSigningRequest */
#define POLICY_MAX 404600   /* policyDocument */
#define NAME_MAX_LEN 128    /* thing, type, group names */
#define DESCRIPTION_MAX 2028

#define ONLY(obj, what, names, err) \
	api_json_only((obj), (what), (names), IOTP_ARRAY_LEN(names), (err))

/* attributePayload {attributes, merge}: *attrs and *merge left unchanged
 * for what is absent. */
static iotp_rc attribute_payload(const json_t *obj, const json_t **attrs, int *merge,
                                 struct iotp_err *err)
{
	static const char *const names[] = {"attributes", "merge"};
	const json_t *payload = NULL;
	iotp_rc rc;

	if ((rc = api_json_obj(obj, "attributePayload", 0, &payload, err)) != IOTP_OK ||
	    payload == NULL)
		return rc;
	if ((rc = ONLY(payload, "attributePayload", names, err)) != IOTP_OK ||
	    (rc = api_json_obj(payload, "attributes", 0, attrs, err)) != IOTP_OK ||
	    (rc = api_json_bool(payload, "merge", merge, err)) != IOTP_OK)
		return rc;
	if (*attrs != NULL)
		return api_json_string_map(*attrs, "attributePayload.attributes", err);
	return IOTP_OK;
}

iotp_rc api_parse_create_thing(const json_t *body, struct registry_thing_spec *out,
                               struct iotp_err *err)
{
	static const char *const names[] = {"thingTypeName", "attributePayload",
	                                    "billingGroupName"};
	const char *billing = NULL;
	int merge = 0;
	iotp_rc rc;

	if ((rc = ONLY(body, "the request body", names, err)) != IOTP_OK ||
	    (rc = api_json_str(body, "thingTypeName", 0, NAME_MAX_LEN, &out->type_name, err)) !=
	        IOTP_OK ||
	    (rc = attribute_payload(body, &out->attributes, &merge, err)) != IOTP_OK ||
	    (rc = api_json_str(body, "billingGroupName", 0, NAME_MAX_LEN, &billing, err)) !=
	        IOTP_OK)
		return rc;
	if (billing != NULL)
		return iotp_err_set(err, IOTP_ERR_UNSUPPORTED,
		                    "billing groups are not supported by iotprov: leave "
		                    "billingGroupName out");
	return IOTP_OK;
}

iotp_rc api_parse_update_thing(const json_t *body, struct registry_thing_update *out,
                               struct iotp_err *err)
{
	static const char *const names[] = {"thingTypeName", "attributePayload",
	                                    "expectedVersion", "removeThingType"};
	iotp_rc rc;

	if ((rc = ONLY(body, "the request body", names, err)) != IOTP_OK ||
	    (rc = api_json_str(body, "thingTypeName", 0, NAME_MAX_LEN, &out->type_name, err)) !=
	        IOTP_OK ||
	    (rc = attribute_payload(body, &out->attributes, &out->merge, err)) != IOTP_OK ||
	    (rc = api_json_int(body, "expectedVersion", 0, INT64_MAX, &out->expected_version,
	                       err)) != IOTP_OK ||
	    (rc = api_json_bool(body, "removeThingType", &out->remove_type, err)) != IOTP_OK)
		return rc;
	return IOTP_OK;
}

iotp_rc api_parse_create_thing_type(const json_t *body, struct registry_thing_type_spec *out,
                                    struct iotp_err *err)
{
	static const char *const names[] = {"thingTypeProperties", "tags"};
	static const char *const props_names[] = {"thingTypeDescription",
	                                          "searchableAttributes"};
	const json_t *props = NULL, *searchable;
	iotp_rc rc;

	if ((rc = ONLY(body, "the request body", names, err)) != IOTP_OK ||
	    (rc = api_json_no_tags(body, err)) != IOTP_OK ||
	    (rc = api_json_obj(body, "thingTypeProperties", 0, &props, err)) != IOTP_OK ||
	    props == NULL)
		return rc;
	if ((rc = ONLY(props, "thingTypeProperties", props_names, err)) != IOTP_OK ||
	    (rc = api_json_str(props, "thingTypeDescription", 0, DESCRIPTION_MAX, &out->description,
	                       err)) != IOTP_OK)
		return rc;
	searchable = json_object_get(props, "searchableAttributes");
	if (searchable == NULL || json_is_null(searchable))
		return IOTP_OK;
	if (!json_is_array(searchable))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "thingTypeProperties.searchableAttributes must be a list");
	for (size_t i = 0; i < json_array_size(searchable); i++) {
		if (!json_is_string(json_array_get(searchable, i)))
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "thingTypeProperties.searchableAttributes must be a list "
			                    "of strings");
	}
	out->searchable_attributes = searchable;
	return IOTP_OK;
}

iotp_rc api_parse_deprecate_thing_type(const json_t *body, int *undo, struct iotp_err *err)
{
	static const char *const names[] = {"undoDeprecate"};
	iotp_rc rc;

	if ((rc = ONLY(body, "the request body", names, err)) != IOTP_OK)
		return rc;
	return api_json_bool(body, "undoDeprecate", undo, err);
}

/* thingGroupProperties {thingGroupDescription, attributePayload}. */
static iotp_rc group_properties(const json_t *props, const char **description,
                                const json_t **attrs, int *merge, struct iotp_err *err)
{
	static const char *const names[] = {"thingGroupDescription", "attributePayload"};
	iotp_rc rc;

	if ((rc = ONLY(props, "thingGroupProperties", names, err)) != IOTP_OK ||
	    (rc = api_json_str(props, "thingGroupDescription", 0, DESCRIPTION_MAX, description,
	                       err)) != IOTP_OK)
		return rc;
	return attribute_payload(props, attrs, merge, err);
}

iotp_rc api_parse_create_thing_group(const json_t *body, struct registry_thing_group_spec *out,
                                     struct iotp_err *err)
{
	static const char *const names[] = {"parentGroupName", "thingGroupProperties", "tags"};
	const json_t *props = NULL;
	int merge = 0;
	iotp_rc rc;

	if ((rc = ONLY(body, "the request body", names, err)) != IOTP_OK ||
	    (rc = api_json_no_tags(body, err)) != IOTP_OK ||
	    (rc = api_json_str(body, "parentGroupName", 0, NAME_MAX_LEN, &out->parent_name,
	                       err)) != IOTP_OK ||
	    (rc = api_json_obj(body, "thingGroupProperties", 0, &props, err)) != IOTP_OK ||
	    props == NULL)
		return rc;
	return group_properties(props, &out->description, &out->attributes, &merge, err);
}

iotp_rc api_parse_update_thing_group(const json_t *body,
                                     struct registry_thing_group_update *out,
                                     struct iotp_err *err)
{
	static const char *const names[] = {"thingGroupProperties", "expectedVersion"};
	const json_t *props = NULL;
	iotp_rc rc;

	if ((rc = ONLY(body, "the request body", names, err)) != IOTP_OK ||
	    (rc = api_json_obj(body, "thingGroupProperties", 1, &props, err)) != IOTP_OK ||
	    (rc = api_json_int(body, "expectedVersion", 0, INT64_MAX, &out->expected_version,
	                       err)) != IOTP_OK)
		return rc;
	return group_properties(props, &out->description, &out->attributes, &out->merge, err);
}

/* The name of an object given by name and/or ARN: kind is the ARN resource
 * type ("thing", "thinggroup"). */
static iotp_rc name_or_arn(const json_t *body, const char *name_member, const char *arn_member,
                           const char *kind, const char **out, struct iotp_err *err)
{
	const char *name = NULL, *arn = NULL, *res, *from_arn = NULL;
	size_t klen = strlen(kind);
	iotp_rc rc;

	if ((rc = api_json_str(body, name_member, 0, NAME_MAX_LEN, &name, err)) != IOTP_OK ||
	    (rc = api_json_str(body, arn_member, 0, 2048, &arn, err)) != IOTP_OK)
		return rc;
	if (arn != NULL) {
		res = core_arn_resource(arn);
		if (res == NULL)
			res = arn;
		if (strncmp(res, kind, klen) != 0 || res[klen] != '/' || res[klen + 1] == '\0')
			return iotp_err_set(err, IOTP_ERR_INVALID, "%s is not a %s ARN", arn_member,
			                    kind);
		from_arn = res + klen + 1;
	}
	if (name == NULL && from_arn == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s or %s is required", name_member,
		                    arn_member);
	if (name != NULL && from_arn != NULL && strcmp(name, from_arn) != 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s and %s name different objects",
		                    name_member, arn_member);
	*out = name != NULL ? name : from_arn;
	return IOTP_OK;
}

iotp_rc api_parse_group_membership(const json_t *body, int add,
                                   struct api_group_membership *out, struct iotp_err *err)
{
	static const char *const add_names[] = {"thingGroupName", "thingGroupArn", "thingName",
	                                        "thingArn", "overrideDynamicGroups"};
	static const char *const remove_names[] = {"thingGroupName", "thingGroupArn", "thingName",
	                                           "thingArn"};
	int override = 0;
	iotp_rc rc;

	rc = add ? ONLY(body, "the request body", add_names, err)
	         : ONLY(body, "the request body", remove_names, err);
	if (rc != IOTP_OK ||
	    (rc = name_or_arn(body, "thingGroupName", "thingGroupArn", "thinggroup",
	                      &out->group_name, err)) != IOTP_OK ||
	    (rc = name_or_arn(body, "thingName", "thingArn", "thing", &out->thing_name, err)) !=
	        IOTP_OK)
		return rc;
	if (add)
		rc = api_json_bool(body, "overrideDynamicGroups", &override, err);
	return rc;
}

iotp_rc api_parse_policy_document(const json_t *body, int with_tags, const char **document,
                                  struct iotp_err *err)
{
	static const char *const create_names[] = {"policyDocument", "tags"};
	static const char *const version_names[] = {"policyDocument"};
	iotp_rc rc;

	rc = with_tags ? ONLY(body, "the request body", create_names, err)
	               : ONLY(body, "the request body", version_names, err);
	if (rc != IOTP_OK || (with_tags && (rc = api_json_no_tags(body, err)) != IOTP_OK))
		return rc;
	return api_json_str(body, "policyDocument", 1, POLICY_MAX, document, err);
}

iotp_rc api_parse_policy_target(const json_t *body, const char **target, struct iotp_err *err)
{
	static const char *const names[] = {"target"};
	iotp_rc rc;

	if ((rc = ONLY(body, "the request body", names, err)) != IOTP_OK)
		return rc;
	return api_json_str(body, "target", 1, 2048, target, err);
}

iotp_rc api_parse_create_cert_from_csr(const json_t *body, const char **csr,
                                       struct iotp_err *err)
{
	static const char *const names[] = {"certificateSigningRequest"};
	iotp_rc rc;

	if ((rc = ONLY(body, "the request body", names, err)) != IOTP_OK)
		return rc;
	return api_json_str(body, "certificateSigningRequest", 1, CSR_MAX, csr, err);
}

iotp_rc api_parse_register_cert(const json_t *body, int with_ca,
                                struct registry_cert_register *out, struct iotp_err *err)
{
	static const char *const ca_names[] = {"certificatePem", "caCertificatePem", "status"};
	static const char *const no_ca_names[] = {"certificatePem", "status"};
	iotp_rc rc;

	rc = with_ca ? ONLY(body, "the request body", ca_names, err)
	             : ONLY(body, "the request body", no_ca_names, err);
	if (rc != IOTP_OK ||
	    (rc = api_json_str(body, "certificatePem", 1, PEM_MAX, &out->cert_pem, err)) !=
	        IOTP_OK ||
	    (with_ca && (rc = api_json_str(body, "caCertificatePem", 0, PEM_MAX, &out->ca_pem,
	                                   err)) != IOTP_OK))
		return rc;
	return api_json_str(body, "status", 0, 32, &out->status, err);
}

iotp_rc api_parse_register_ca(const json_t *body, struct registry_ca_register *out,
                              struct iotp_err *err)
{
	static const char *const names[] = {"caCertificate", "verificationCertificate",
	                                    "registrationConfig", "certificateMode", "tags"};
	iotp_rc rc;

	if ((rc = ONLY(body, "the request body", names, err)) != IOTP_OK ||
	    (rc = api_json_no_tags(body, err)) != IOTP_OK ||
	    (rc = api_json_str(body, "caCertificate", 1, PEM_MAX, &out->ca_pem, err)) != IOTP_OK ||
	    (rc = api_json_str(body, "verificationCertificate", 0, PEM_MAX, &out->verification_pem,
	                       err)) != IOTP_OK ||
	    (rc = api_json_str(body, "certificateMode", 0, 16, &out->mode, err)) != IOTP_OK)
		return rc;
	return api_json_obj(body, "registrationConfig", 0, &out->registration_config, err);
}

iotp_rc api_parse_update_ca(const json_t *body, struct registry_ca_update *out,
                            struct iotp_err *err)
{
	static const char *const names[] = {"registrationConfig", "removeAutoRegistration"};
	iotp_rc rc;

	if ((rc = ONLY(body, "the request body", names, err)) != IOTP_OK ||
	    (rc = api_json_obj(body, "registrationConfig", 0, &out->registration_config, err)) !=
	        IOTP_OK)
		return rc;
	return api_json_bool(body, "removeAutoRegistration", &out->remove_auto_registration, err);
}
