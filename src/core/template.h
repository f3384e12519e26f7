/*
 * Provisioning templates: the AWS IoT template language (Parameters,
 * Mappings, Resources, DeviceConfiguration and the intrinsic functions Ref,
 * Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap, Fn::Sub) as a pure module:
 * parse and validate a template body once, then evaluate it with one
 * device's parameters into a resolved plan.
 *
 * Nothing here touches the store, the network or any global state. Applying
 * a plan to the registry (create the thing, activate the certificate, attach
 * the policy...) is the applier's job; the plan carries everything it needs,
 * already checked against the AWS name patterns, so a plan that evaluates is
 * one the registry should accept unless the registry's current state says
 * otherwise (an existing thing with OverrideSettings FAIL, a missing thing
 * type, a certificate that does not exist).
 *
 * docs/templates.md is the user-facing description; this header is the
 * contract. Decisions in one place:
 * - Only what the AWS IoT documentation describes is accepted; any other key
 *   (top-level section, resource member, property, parameter member) is a
 *   problem naming what is allowed. "Conditions" and Fn::If, Fn::GetAtt and
 *   other CloudFormation functions are not part of the IoT template language.
 * - Parameters are of Type "String" only, with an optional string Default.
 * - At most one resource of each type (AWS::IoT::Thing,
 *   AWS::IoT::Certificate, AWS::IoT::Policy).
 * - Ref names a declared parameter, one of the eight pseudo parameters
 *   AWS::IoT::Certificate::{Id,CommonName,Country,Organization,
 *   OrganizationalUnit,DistinguishedNameQualifier,StateName,SerialNumber}
 *   (declared or not), or a resource's logical id: a thing gives its
 *   ThingName, a policy its PolicyName (or generated name), a certificate its
 *   CertificateId (only when declared by CertificateId). A reference cycle
 *   between resources is a problem. Fn::Sub's ${Name} resolves the same way,
 *   after the variables of its own map; ${!Text} is the literal "${Text}".
 * - Every problem found at parse time is reported with its JSON path
 *   ("Resources.thing.Properties.ThingName: Ref to unknown parameter 'X'");
 *   evaluation stops at the first failure and names its path too.
 * - Parameter values come from two places kept apart on purpose: the
 *   caller's parameters (a device, an operator) and the pseudo parameters
 *   that iotprov itself derives from the certificate. A caller's parameter
 *   named "AWS::..." is refused, so a device cannot claim another
 *   certificate's id.
 *
 * A parsed template is immutable: template_evaluate() may run concurrently
 * on one template from several threads (it never takes a reference on the
 * template's JSON).
 */
#ifndef IOTP_TEMPLATE_H
#define IOTP_TEMPLATE_H

#include <stddef.h>

#include <jansson.h>

#include "common/err.h"

#define TEMPLATE_BODY_MAX 10240        /* characters (CreateProvisioningTemplate) */
#define TEMPLATE_PARAM_NAME_MAX 2048   /* characters of a parameter name (RegisterThing) */
#define TEMPLATE_PARAM_VALUE_MAX 4096  /* characters of a parameter value (RegisterThing) */
#define TEMPLATE_VALUE_MAX 65536       /* bytes of any string built while evaluating */
#define TEMPLATE_MAX_DEPTH 32          /* nesting of intrinsics and policy objects in a value */
#define TEMPLATE_PROBLEMS_MAX 100      /* problems kept by one validation */
#define TEMPLATE_LOGICAL_ID_MAX 255    /* [A-Za-z0-9_-]{1,255} */

/* Where a template will be used; selects the checks that depend on it. */
enum template_kind {
	TEMPLATE_KIND_ANY = 0, /* RegisterThing, bulk registration: no extra check */
	TEMPLATE_KIND_FLEET,   /* FLEET_PROVISIONING: a certificate only by CertificateId */
	TEMPLATE_KIND_JITP     /* JITP: a certificate only by CertificateId, no
	                        * DeviceConfiguration */
};

/* A parsed, validated template. Opaque. */
struct template;

/* Every problem one validation found. */
struct template_problems {
	char **items;    /* owned: count strings "path: message" (or "message"),
	                  * section by section (Parameters, Mappings, Resources:
	                  * ids and types, then thing, certificate, policy;
	                  * DeviceConfiguration; reference cycles last) */
	size_t count;
	size_t omitted;  /* problems found beyond TEMPLATE_PROBLEMS_MAX */
};
/* Frees the strings; accepts a zeroed struct. */
void template_problems_cleanup(struct template_problems *p);

/*
 * Parses and validates a template body (len bytes, need not be
 * NUL-terminated) for use as `kind`.
 * On success *out is a new template the caller releases with
 * template_free(); it does not reference body.
 * Errors (*out untouched):
 *   IOTP_ERR_TOO_BIG  body over TEMPLATE_BODY_MAX characters;
 *   IOTP_ERR_INVALID  anything else wrong: err->msg joins the problems with
 *                     "; " in the order of template_validate(), as many as fit, then
 *                     "(and N more)"; template_validate() gives them all;
 *   IOTP_ERR_NOMEM.
 * Thread-safe.
 */
iotp_rc template_parse(const char *body, size_t len, enum template_kind kind,
                       struct template **out, struct iotp_err *err);

/*
 * The same checks as template_parse(), for tools that want every problem:
 * returns IOTP_OK with *out holding the problems (count 0: the template is
 * valid, template_parse() accepts it). An oversized body is one problem.
 * IOTP_ERR_NOMEM is the only failure (*out untouched). Release *out with
 * template_problems_cleanup().
 */
iotp_rc template_validate(const char *body, size_t len, enum template_kind kind,
                          struct template_problems *out, struct iotp_err *err);

/* Releases a template; NULL is a no-op. */
void template_free(struct template *t);

/* The kind the template was parsed for. */
enum template_kind template_kind_of(const struct template *t);

/*
 * Values of the pseudo parameters, known to iotprov from the certificate
 * being provisioned. Borrowed for the duration of template_evaluate(). NULL
 * means unknown: a template that needs it (and declares no Default for it)
 * fails to evaluate.
 */
struct template_pseudo {
	const char *certificate_id;       /* AWS::IoT::Certificate::Id */
	const char *common_name;          /* ...::CommonName */
	const char *country;              /* ...::Country */
	const char *organization;         /* ...::Organization */
	const char *organizational_unit;  /* ...::OrganizationalUnit */
	const char *dn_qualifier;         /* ...::DistinguishedNameQualifier */
	const char *state_name;           /* ...::StateName */
	const char *serial_number;        /* ...::SerialNumber */
};

/* What to do when a property of an existing resource differs. */
enum template_override {
	TEMPLATE_OVERRIDE_DO_NOTHING = 0, /* keep the existing value (the default) */
	TEMPLATE_OVERRIDE_REPLACE,        /* overwrite with the template's value */
	TEMPLATE_OVERRIDE_FAIL,           /* fail the provisioning */
	TEMPLATE_OVERRIDE_MERGE           /* ThingGroups, AttributePayload only:
	                                   * union with the existing value */
};
/* "DO_NOTHING", "REPLACE", "FAIL", "MERGE"; "" when out of range. Static. */
const char *template_override_name(enum template_override o);

enum template_cert_source {
	TEMPLATE_CERT_BY_ID = 1,  /* an existing certificate: id */
	TEMPLATE_CERT_BY_PEM,     /* register pem (optionally under ca_pem) */
	TEMPLATE_CERT_BY_CSR      /* issue a certificate for csr */
};

struct template_plan_thing {
	int present;                 /* 0: the template declares no thing */
	char *logical_id;            /* the key under Resources */
	char *name;                  /* [a-zA-Z0-9:_-]{1,128} */
	char *type_name;             /* NULL: not declared */
	int groups_declared;         /* ThingGroups present (possibly empty) */
	char **groups;               /* group_count names, duplicates removed,
	                              * template order; NULL when none */
	size_t group_count;
	json_t *attributes;          /* NULL: not declared; else an object of
	                              * string values, names and values matching
	                              * the AWS attribute patterns */
	char *billing_group;         /* NULL: not declared (iotprov has no
	                              * billing groups: the applier decides) */
	enum template_override type_override;
	enum template_override groups_override;
	enum template_override attributes_override;
};

struct template_plan_cert {
	int present;
	char *logical_id;
	enum template_cert_source source;
	char *id;                    /* BY_ID: 64 lowercase hex digits */
	char *pem;                   /* BY_PEM */
	char *ca_pem;                /* BY_PEM: NULL when not given */
	char *csr;                   /* BY_CSR */
	char status[16];             /* "ACTIVE" or "INACTIVE" (upper case) */
	int status_declared;         /* 0: "ACTIVE" is the AWS default */
	enum template_override status_override;
};

struct template_plan_policy {
	int present;
	char *logical_id;
	char *name;                  /* PolicyName, or the generated name */
	int name_generated;          /* 1: name is the lowercase hex SHA-256 of
	                              * document (AWS: "a hash of the document") */
	char *document;              /* NULL: an existing policy named name;
	                              * else the document, checked with
	                              * policy_validate() */
};

/* The resolved template. Every member is owned by the plan. */
struct template_plan {
	struct template_plan_thing thing;
	struct template_plan_cert certificate;
	struct template_plan_policy policy;
	json_t *device_configuration; /* object of strings, never NULL (empty
	                               * when the template has none) */
};

/*
 * Evaluates t with the caller's parameters (a JSON object of string values,
 * or NULL for none; members the template does not declare are ignored) and
 * the pseudo parameters (NULL: none known). A declared parameter missing
 * from params takes its Default.
 * On success *out is a new plan released with template_plan_free().
 * Errors (*out untouched), err->msg naming the path or the parameter:
 *   IOTP_ERR_INVALID  params is not an object; a needed parameter has no
 *                     value ("missing parameter 'SerialNumber'"); a value
 *                     is not a string; a parameter named "AWS::..." is
 *                     given by the caller;
 *   IOTP_ERR_TOO_BIG  a parameter value over TEMPLATE_PARAM_VALUE_MAX
 *                     characters, or a built string over TEMPLATE_VALUE_MAX;
 *   IOTP_ERR_TEMPLATE the template fails with these values: Fn::Select index
 *                     out of range, Fn::FindInMap key missing, a value not
 *                     valid where it lands (thing name, attribute, status,
 *                     certificate id, policy document...);
 *   IOTP_ERR_NOMEM.
 * Thread-safe, also on one shared template.
 */
iotp_rc template_evaluate(const struct template *t, const json_t *params,
                          const struct template_pseudo *pseudo, struct template_plan **out,
                          struct iotp_err *err);

/* Releases a plan; NULL is a no-op. */
void template_plan_free(struct template_plan *p);

/*
 * The plan as JSON, for tests, logs and `iotprov template eval`:
 *   {"thing": {"logicalId", "thingName", "thingTypeName"?, "thingGroups"?,
 *              "attributes"?, "billingGroup"?,
 *              "overrideSettings": {"ThingTypeName", "ThingGroups",
 *                                   "AttributePayload"}},
 *    "certificate": {"logicalId", "certificateId" | "certificatePem"
 *                    (+ "caCertificatePem") | "certificateSigningRequest",
 *                    "status", "overrideSettings": {"Status"}},
 *    "policy": {"logicalId", "policyName", "policyDocument"?},
 *    "deviceConfiguration": {...}}
 * Absent resources and undeclared properties are left out. *out is a new
 * reference (json_decref). IOTP_ERR_NOMEM only.
 */
iotp_rc template_plan_json(const struct template_plan *p, json_t **out, struct iotp_err *err);

#endif
