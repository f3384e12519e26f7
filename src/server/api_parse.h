/*
 * The JSON request bodies of the control-plane API, one parser per
 * operation that takes a body, turning the botocore shape (member names and
 * types of service-2.json) into the input structs of the registry
 * (core/registry.h). The route handlers call these and nothing else to read
 * a body, and the fuzz target tests/fuzz/fuzz_api_body.c calls the same
 * functions, so what is fuzzed is what is served.
 *
 * Every parser takes the body object (`body`, borrowed) and fills *out with
 * pointers borrowed from it: keep the body alive while *out is used. Fields
 * that come from the path or the query (names, setAsActive...) are left as
 * the caller initialised them; call with a zeroed (or otherwise initialised)
 * *out. A parser checks the JSON shape only -- member names, types, the
 * model's length caps -- and leaves the business rules (name patterns,
 * attribute limits, certificate checks) to the registry. Errors:
 * IOTP_ERR_INVALID naming the member, IOTP_ERR_UNSUPPORTED for what iotprov
 * does not do (tags, billing groups). *out may be partly written on error.
 * Pure functions: thread-safe, no I/O.
 */
#ifndef IOTP_API_PARSE_H
#define IOTP_API_PARSE_H

#include <jansson.h>

#include "common/err.h"
#include "core/registry.h"

/* CreateThing: thingTypeName, attributePayload{attributes, merge},
 * billingGroupName (unsupported). out->name is not touched. */
iotp_rc api_parse_create_thing(const json_t *body, struct registry_thing_spec *out,
                               struct iotp_err *err);
/* UpdateThing: thingTypeName, attributePayload{attributes, merge},
 * expectedVersion, removeThingType. Set out->expected_version to
 * REGISTRY_NO_VERSION before the call. */
iotp_rc api_parse_update_thing(const json_t *body, struct registry_thing_update *out,
                               struct iotp_err *err);

/* CreateThingType: thingTypeProperties{thingTypeDescription,
 * searchableAttributes}, tags. */
iotp_rc api_parse_create_thing_type(const json_t *body, struct registry_thing_type_spec *out,
                                    struct iotp_err *err);
/* DeprecateThingType: undoDeprecate. */
iotp_rc api_parse_deprecate_thing_type(const json_t *body, int *undo, struct iotp_err *err);

/* CreateThingGroup: parentGroupName, thingGroupProperties{
 * thingGroupDescription, attributePayload{attributes, merge}}, tags. */
iotp_rc api_parse_create_thing_group(const json_t *body, struct registry_thing_group_spec *out,
                                     struct iotp_err *err);
/* UpdateThingGroup: thingGroupProperties (required), expectedVersion. Set
 * out->expected_version to REGISTRY_NO_VERSION before the call. */
iotp_rc api_parse_update_thing_group(const json_t *body,
                                     struct registry_thing_group_update *out,
                                     struct iotp_err *err);

/* AddThingToThingGroup / RemoveThingFromThingGroup: the group by
 * thingGroupName or thingGroupArn, the thing by thingName or thingArn (when
 * both are given they must name the same object), and for add
 * overrideDynamicGroups (accepted: iotprov has no dynamic groups, so it
 * changes nothing). */
struct api_group_membership {
	const char *group_name;
	const char *thing_name;
};
iotp_rc api_parse_group_membership(const json_t *body, int add,
                                   struct api_group_membership *out, struct iotp_err *err);

/* CreatePolicy (with_tags 1: policyDocument, tags) and CreatePolicyVersion
 * (with_tags 0: policyDocument). */
iotp_rc api_parse_policy_document(const json_t *body, int with_tags, const char **document,
                                  struct iotp_err *err);
/* AttachPolicy / DetachPolicy: target. */
iotp_rc api_parse_policy_target(const json_t *body, const char **target, struct iotp_err *err);

/* CreateCertificateFromCsr: certificateSigningRequest (<= 4096). */
iotp_rc api_parse_create_cert_from_csr(const json_t *body, const char **csr,
                                       struct iotp_err *err);
/* RegisterCertificate (with_ca 1: certificatePem, caCertificatePem, status)
 * and RegisterCertificateWithoutCA (with_ca 0: certificatePem, status).
 * out->set_active is left to the caller (query setAsActive). */
iotp_rc api_parse_register_cert(const json_t *body, int with_ca,
                                struct registry_cert_register *out, struct iotp_err *err);

/* RegisterCACertificate: caCertificate, verificationCertificate,
 * registrationConfig, certificateMode, tags. set_active and
 * allow_auto_registration are left to the caller (query). */
iotp_rc api_parse_register_ca(const json_t *body, struct registry_ca_register *out,
                              struct iotp_err *err);
/* UpdateCACertificate: registrationConfig, removeAutoRegistration. id and
 * the statuses (query) are left to the caller. */
iotp_rc api_parse_update_ca(const json_t *body, struct registry_ca_update *out,
                            struct iotp_err *err);

#endif
