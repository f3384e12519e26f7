/*
 * The registry: the business rules of the AWS IoT registry subset iotprov
 * serves -- things, thing types, thing groups, policies and their versions,
 * certificates, CA certificates and the attachments between them.
 *
 * Every transport (HTTP API routes, the MQTT fleet-provisioning handlers, bulk
 * tasks, JITP/JITR in the broker plugin) calls these functions, so the rules
 * live in one place. Nothing here does network I/O.
 *
 * Conventions shared by every function below:
 * - Member names and semantics follow the botocore IoT model
 *   (service-2.json); COMPAT.md lists the HTTP side.
 * - `core` is the caller's context (one per thread: it owns one store
 *   connection); `actor` names who acts ("key:AKIA..", "device:<cert id>",
 *   "system") and is recorded in the event log. Neither may be NULL.
 * - Every state change runs in store_begin()/store_commit() and appends one
 *   event (store_event_append) in that same transaction. Transactions nest,
 *   so a caller may wrap several calls in its own outer transaction; a
 *   failing call rolls back only its own part (a savepoint) and leaves the
 *   outer transaction usable. A call that changes nothing (idempotent repeat)
 *   appends no event.
 * - Event actions are "<object>.<verb>": thing.create, thing.update,
 *   thing.delete, thing.attach_principal, thing.detach_principal,
 *   thingtype.create, thingtype.deprecate, thingtype.undeprecate,
 *   thingtype.delete, thinggroup.create, thinggroup.update,
 *   thinggroup.delete, thinggroup.add_thing, thinggroup.remove_thing,
 *   policy.create, policy.delete, policy.version_create,
 *   policy.version_delete, policy.set_default, policy.attach, policy.detach,
 *   cert.create, cert.register, cert.status, cert.delete, cacert.register,
 *   cacert.update, cacert.delete, regcode.create. The event object is the
 *   ARN resource part ("thing/pump-1", "cert/<id>", "cacert/<id>",
 *   "policy/<name>", "thinggroup/<name>", "thingtype/<name>";
 *   "registrationcode" for regcode.create); the detail is
 *   a small JSON object (never a private key or a registration code).
 * - Records keep ARN resource parts ("cert/<id>", "thinggroup/<name>");
 *   results carry full ARNs built with core_arn() for the configured region
 *   and account. Where a function takes an ARN it accepts any region and
 *   account (core_arn_resource) and also the bare resource part.
 * - Return codes and the AWS exceptions they stand for (COMPAT.md):
 *   IOTP_ERR_INVALID  InvalidRequestException (bad name, bad value, rule)
 *   IOTP_ERR_NOT_FOUND ResourceNotFoundException
 *   IOTP_ERR_EXISTS   ResourceAlreadyExistsException (the caller may fetch
 *                     resourceId/resourceArn with the matching describe)
 *   IOTP_ERR_CONFLICT DeleteConflictException (still attached / in use)
 *   IOTP_ERR_VERSION  VersionConflictException
 *   IOTP_ERR_STATE    CertificateStateException
 *   IOTP_ERR_CERT     CertificateValidationException
 *   IOTP_ERR_REGCODE  RegistrationCodeValidationException
 *   IOTP_ERR_POLICY   MalformedPolicyException
 *   IOTP_ERR_LIMIT    LimitExceededException (VersionsLimitExceeded for
 *                     policy versions)
 *   IOTP_ERR_DB / IOTP_ERR_BUSY / IOTP_ERR_NOMEM / IOTP_ERR_CRYPTO: internal.
 *   The message in err names the object ("thing pump-1 not found").
 * - Out-parameters are written only on success. Result structs own what
 *   they point to; release them with the matching _cleanup, which also
 *   accepts a zeroed struct (so `= {0}` then _cleanup on every path is safe).
 * - Timestamps are epoch seconds.
 *
 * Pagination: list functions take a `struct registry_page` and return at
 * most page->max items plus an opaque `next_token` (malloc'ed, NULL on the
 * last page), usable as AWS nextToken and as AWS marker (it matches the
 * marker pattern [A-Za-z0-9+/]+={0,2}). Paging is by key, not offset: every
 * item that exists for the whole walk is returned exactly once, whatever is
 * inserted or deleted meanwhile. A token from another list or a corrupted
 * token is IOTP_ERR_INVALID.
 */
#ifndef IOTP_REGISTRY_H
#define IOTP_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "common/err.h"
#include "core/core.h"
#include "core/pki.h"

#define REGISTRY_NAME_MAX 128      /* things, types, groups, policies */
#define REGISTRY_ID_MAX 64         /* UUIDs (36) and certificate ids (64) */
#define REGISTRY_ARN_MAX 320
#define REGISTRY_MODE_MAX 16       /* "DEFAULT", "SNI_ONLY" */

#define REGISTRY_PAGE_MAX 250      /* AWS RegistryMaxResults / PageSize */
#define REGISTRY_PAGE_DEFAULT 50   /* nextToken lists (things, groups...) */
#define REGISTRY_MARKER_DEFAULT 25 /* marker lists (certificates, policies) */

#define REGISTRY_NO_VERSION (-1)   /* expectedVersion not given */

#define REGISTRY_THING_MAX_GROUPS 10      /* groups a thing belongs to */
#define REGISTRY_GROUP_MAX_DEPTH 7        /* levels of a group hierarchy */
#define REGISTRY_POLICY_MAX_VERSIONS 5
#define REGISTRY_TARGET_MAX_POLICIES 10   /* policies on one cert or group */
#define REGISTRY_CA_MAX_SAME_SUBJECT 10   /* CAs registered with one subject */

/* Request side of every paged list. token: NULL or "" for the first page,
 * else a next_token from the previous page of the same list (borrowed).
 * max: 0 for the list's default, else 1..REGISTRY_PAGE_MAX (INVALID
 * otherwise). A NULL page pointer means first page, default size. */
struct registry_page {
	const char *token;
	int max;
};

/* Name (or id) and ARN of a created or listed object. Fields not meaningful
 * for the object are "". */
struct registry_ref {
	char name[REGISTRY_NAME_MAX + 1];
	char id[REGISTRY_ID_MAX + 1];
	char arn[REGISTRY_ARN_MAX];
};

/* A page of refs (groups of a thing, policies of a target...). */
struct registry_ref_list {
	struct registry_ref *items; /* owned, count entries */
	size_t count;
	char *next_token;           /* owned, NULL on the last page */
};
void registry_ref_list_cleanup(struct registry_ref_list *l);

/* A page of strings (thing names, principal ARNs, target ARNs). */
struct registry_str_list {
	char **items;               /* owned, count malloc'ed strings */
	size_t count;
	char *next_token;           /* owned, NULL on the last page */
};
void registry_str_list_cleanup(struct registry_str_list *l);

/* Name checks shared with the transports: 1 when valid. Things, thing types
 * and thing groups: [a-zA-Z0-9:_-]{1,128}. Policies: [A-Za-z0-9_+=,.@-]{1,128}. */
int registry_thing_name_valid(const char *name);
int registry_policy_name_valid(const char *name);

/* ------------------------------------------------------------------ */
/* Things                                                              */

/* Attributes (things and groups): a JSON object whose names match
 * [a-zA-Z0-9_.,@/:#-]{1,128} and whose values are strings matching
 * [a-zA-Z0-9_.,@/:#-]{0,800}. An empty value means "no such attribute": it
 * is never stored (and with merge it removes the name). A thing without a
 * type may hold at most 3 attributes, one with a type at most 50 (AWS
 * limits; more is IOTP_ERR_INVALID). */

struct registry_thing {
	char name[REGISTRY_NAME_MAX + 1];
	char id[REGISTRY_ID_MAX + 1];          /* UUID */
	char arn[REGISTRY_ARN_MAX];
	char type_name[REGISTRY_NAME_MAX + 1]; /* "" when none */
	json_t *attributes;                    /* owned object, never NULL */
	int64_t version;                       /* starts at 1, +1 per update */
	int64_t created;
	int64_t updated;
};
void registry_thing_cleanup(struct registry_thing *t);

struct registry_thing_spec {
	const char *name;
	const char *type_name;     /* NULL or "": none */
	const json_t *attributes;  /* NULL: none */
};
/* CreateThing. The type must exist and not be deprecated (else INVALID; a
 * missing type is NOT_FOUND). Creating a thing that exists with the same
 * type and attributes succeeds without change (AWS idempotency) and fills
 * out with the existing thing; any difference is IOTP_ERR_EXISTS. out gets
 * name, id and ARN. */
iotp_rc registry_thing_create(struct iotp_core *core, const char *actor,
                              const struct registry_thing_spec *in, struct registry_ref *out,
                              struct iotp_err *err);

/* DescribeThing. NOT_FOUND when absent. */
iotp_rc registry_thing_describe(struct iotp_core *core, const char *name,
                                struct registry_thing *out, struct iotp_err *err);

struct registry_thing_update {
	const char *name;
	const char *type_name;     /* NULL: keep; else must exist, not deprecated */
	int remove_type;           /* removeThingType; with type_name: INVALID */
	const json_t *attributes;  /* NULL: keep */
	int merge;                 /* 1: merge into the stored attributes ("" removes
	                            * a name); 0: replace them all */
	int64_t expected_version;  /* REGISTRY_NO_VERSION, or VERSION on mismatch */
};
/* UpdateThing: bumps the version by one. NOT_FOUND, VERSION, INVALID. */
iotp_rc registry_thing_update(struct iotp_core *core, const char *actor,
                              const struct registry_thing_update *in, struct iotp_err *err);

/* DeleteThing. An absent thing is success (AWS returns 200), whatever
 * expected_version says. A thing with attached principals is refused with
 * IOTP_ERR_INVALID ("still attached to one or more principals"), as AWS
 * does: detach them first. Group memberships go with the thing. */
iotp_rc registry_thing_delete(struct iotp_core *core, const char *actor, const char *name,
                              int64_t expected_version, struct iotp_err *err);

struct registry_thing_filter {
	const char *attribute_name;   /* NULL: no attribute filter */
	const char *attribute_value;  /* NULL: any value of attribute_name;
	                               * without attribute_name: INVALID */
	int use_prefix;               /* usePrefixAttributeValue */
	const char *type_name;        /* NULL: any */
};
struct registry_thing_list {
	struct registry_thing *items;  /* owned, count entries */
	size_t count;
	char *next_token;
};
void registry_thing_list_cleanup(struct registry_thing_list *l);
/* ListThings, ordered by name, default page REGISTRY_PAGE_DEFAULT. Filters
 * combine with AND. filter may be NULL. */
iotp_rc registry_thing_list(struct iotp_core *core, const struct registry_thing_filter *filter,
                            const struct registry_page *page, struct registry_thing_list *out,
                            struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Thing principals (X.509 certificates only)                          */

/* AttachThingPrincipal: principal is a certificate ARN (or "cert/<id>").
 * Thing and certificate must exist (NOT_FOUND); anything but a certificate
 * is INVALID. Attaching twice is success without change. */
iotp_rc registry_thing_attach_principal(struct iotp_core *core, const char *actor,
                                        const char *thing_name, const char *principal,
                                        struct iotp_err *err);
/* DetachThingPrincipal: NOT_FOUND when the thing does not exist; detaching
 * what is not attached is success without change. */
iotp_rc registry_thing_detach_principal(struct iotp_core *core, const char *actor,
                                        const char *thing_name, const char *principal,
                                        struct iotp_err *err);
/* ListThingPrincipals: certificate ARNs, ordered, default page
 * REGISTRY_PAGE_DEFAULT. NOT_FOUND when the thing does not exist. */
iotp_rc registry_thing_list_principals(struct iotp_core *core, const char *thing_name,
                                       const struct registry_page *page,
                                       struct registry_str_list *out, struct iotp_err *err);
/* ListPrincipalThings: thing names, ordered. NOT_FOUND when the certificate
 * does not exist. */
iotp_rc registry_principal_list_things(struct iotp_core *core, const char *principal,
                                       const struct registry_page *page,
                                       struct registry_str_list *out, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Thing types                                                         */

struct registry_thing_type {
	char name[REGISTRY_NAME_MAX + 1];
	char id[REGISTRY_ID_MAX + 1];
	char arn[REGISTRY_ARN_MAX];
	char *description;              /* owned, NULL when none */
	json_t *searchable_attributes;  /* owned array of strings, never NULL */
	int deprecated;
	int64_t deprecation_date;       /* 0 when not deprecated */
	int64_t created;
};
void registry_thing_type_cleanup(struct registry_thing_type *t);

struct registry_thing_type_spec {
	const char *name;
	const char *description;               /* NULL: none; <= 2028 chars */
	const json_t *searchable_attributes;   /* NULL or array of <= 3 names */
};
/* CreateThingType. EXISTS when the name is taken. out: name, id, ARN. */
iotp_rc registry_thing_type_create(struct iotp_core *core, const char *actor,
                                   const struct registry_thing_type_spec *in,
                                   struct registry_ref *out, struct iotp_err *err);
iotp_rc registry_thing_type_describe(struct iotp_core *core, const char *name,
                                     struct registry_thing_type *out, struct iotp_err *err);

struct registry_thing_type_list {
	struct registry_thing_type *items; /* owned */
	size_t count;
	char *next_token;
};
void registry_thing_type_list_cleanup(struct registry_thing_type_list *l);
/* ListThingTypes by name; name_filter (thingTypeName) NULL for all. */
iotp_rc registry_thing_type_list(struct iotp_core *core, const char *name_filter,
                                 const struct registry_page *page,
                                 struct registry_thing_type_list *out, struct iotp_err *err);

/* DeprecateThingType (undo = undoDeprecate). Repeating is success without
 * change. No new thing may take a deprecated type; things that have it keep
 * it. */
iotp_rc registry_thing_type_deprecate(struct iotp_core *core, const char *actor,
                                      const char *name, int undo, struct iotp_err *err);
/* DeleteThingType: NOT_FOUND; INVALID unless deprecated first; INVALID while
 * any thing still has the type (the model lists no DeleteConflict here).
 * iotprov does not impose AWS's five-minute wait after deprecation. */
iotp_rc registry_thing_type_delete(struct iotp_core *core, const char *actor,
                                   const char *name, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Thing groups (static)                                               */

struct registry_thing_group {
	char name[REGISTRY_NAME_MAX + 1];
	char id[REGISTRY_ID_MAX + 1];
	char arn[REGISTRY_ARN_MAX];
	char *description;                      /* owned, NULL when none */
	json_t *attributes;                     /* owned object, never NULL */
	int64_t version;
	char parent_name[REGISTRY_NAME_MAX + 1]; /* "" for a root group */
	struct registry_ref *root_to_parent;    /* owned: rootToParentThingGroups,
	                                         * root first, parent last (name,
	                                         * arn set); NULL when root */
	size_t root_to_parent_count;
	int64_t created;
};
void registry_thing_group_cleanup(struct registry_thing_group *g);

struct registry_thing_group_spec {
	const char *name;
	const char *parent_name;   /* NULL: root; must exist (NOT_FOUND) */
	const char *description;   /* NULL: none */
	const json_t *attributes;  /* NULL: none; at most 50 */
};
/* CreateThingGroup. The parent is fixed at creation, so a cycle cannot
 * form; a hierarchy deeper than REGISTRY_GROUP_MAX_DEPTH is IOTP_ERR_LIMIT.
 * EXISTS when the name is taken. out: name, id, ARN. */
iotp_rc registry_thing_group_create(struct iotp_core *core, const char *actor,
                                    const struct registry_thing_group_spec *in,
                                    struct registry_ref *out, struct iotp_err *err);
/* DescribeThingGroup, with rootToParentThingGroups. */
iotp_rc registry_thing_group_describe(struct iotp_core *core, const char *name,
                                      struct registry_thing_group *out, struct iotp_err *err);

struct registry_thing_group_update {
	const char *name;
	const char *description;   /* NULL: keep; "" clears */
	const json_t *attributes;  /* NULL: keep */
	int merge;                 /* as registry_thing_update */
	int64_t expected_version;  /* REGISTRY_NO_VERSION or VERSION on mismatch */
};
/* UpdateThingGroup; *new_version (may be NULL) receives the new version. */
iotp_rc registry_thing_group_update(struct iotp_core *core, const char *actor,
                                    const struct registry_thing_group_update *in,
                                    int64_t *new_version, struct iotp_err *err);
/* DeleteThingGroup. An absent group is success (the model lists no
 * ResourceNotFound). INVALID while the group has child groups (delete them
 * first); VERSION on mismatch. Memberships and policy attachments of the
 * group are removed with it (recorded in the event detail). */
iotp_rc registry_thing_group_delete(struct iotp_core *core, const char *actor,
                                    const char *name, int64_t expected_version,
                                    struct iotp_err *err);

struct registry_thing_group_filter {
	const char *parent_name;   /* parentGroup: NULL for no parent filter */
	const char *name_prefix;   /* namePrefixFilter: NULL for none */
	int recursive;             /* -1 not given; with parent_name: 1 = all
	                            * descendants, else direct children; without:
	                            * 0 = root groups only, else all groups */
};
/* ListThingGroups by name: refs with name and ARN. filter may be NULL. */
iotp_rc registry_thing_group_list(struct iotp_core *core,
                                  const struct registry_thing_group_filter *filter,
                                  const struct registry_page *page,
                                  struct registry_ref_list *out, struct iotp_err *err);

/* AddThingToThingGroup / RemoveThingFromThingGroup by names (the transport
 * turns thingArn/thingGroupArn into names with core_arn_resource). Both must
 * exist (NOT_FOUND). Adding twice or removing a non-member is success
 * without change. A thing in REGISTRY_THING_MAX_GROUPS groups already is
 * IOTP_ERR_LIMIT. */
iotp_rc registry_thing_group_add_thing(struct iotp_core *core, const char *actor,
                                       const char *group_name, const char *thing_name,
                                       struct iotp_err *err);
iotp_rc registry_thing_group_remove_thing(struct iotp_core *core, const char *actor,
                                          const char *group_name, const char *thing_name,
                                          struct iotp_err *err);
/* ListThingsInThingGroup: thing names by name; recursive includes things of
 * every descendant group (each thing once). NOT_FOUND for a missing group. */
iotp_rc registry_thing_group_list_things(struct iotp_core *core, const char *group_name,
                                         int recursive, const struct registry_page *page,
                                         struct registry_str_list *out, struct iotp_err *err);
/* ListThingGroupsForThing: the groups the thing is directly in, by name
 * (refs with name and ARN). NOT_FOUND for a missing thing. */
iotp_rc registry_thing_list_groups(struct iotp_core *core, const char *thing_name,
                                   const struct registry_page *page,
                                   struct registry_ref_list *out, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Policies                                                            */

/* A policy document is accepted exactly when the policy engine accepts it
 * (policy_validate in core/policy.h: JSON with Version and Statement, at
 * most 2048 characters without whitespace...); else IOTP_ERR_POLICY with
 * its message. Documents are stored as given. */

struct registry_policy {
	char name[REGISTRY_NAME_MAX + 1];
	char arn[REGISTRY_ARN_MAX];
	char *document;            /* owned: the default version's document */
	int64_t default_version;   /* AWS defaultVersionId / policyVersionId */
	int64_t created;
	int64_t updated;           /* lastModifiedDate */
};
void registry_policy_cleanup(struct registry_policy *p);

/* CreatePolicy: version 1 is the default. EXISTS, INVALID (name), POLICY.
 * out gets name, ARN, document and default_version = 1. */
iotp_rc registry_policy_create(struct iotp_core *core, const char *actor, const char *name,
                               const char *document, struct registry_policy *out,
                               struct iotp_err *err);
/* GetPolicy. */
iotp_rc registry_policy_get(struct iotp_core *core, const char *name,
                            struct registry_policy *out, struct iotp_err *err);
/* DeletePolicy: NOT_FOUND; CONFLICT while attached to any target or while it
 * has versions other than the default (as AWS). */
iotp_rc registry_policy_delete(struct iotp_core *core, const char *actor, const char *name,
                               struct iotp_err *err);
/* ListPolicies ordered by name (ascending unless ascending == 0 reverses
 * it), default page REGISTRY_MARKER_DEFAULT: refs with name and ARN. */
iotp_rc registry_policy_list(struct iotp_core *core, int ascending,
                             const struct registry_page *page,
                             struct registry_ref_list *out, struct iotp_err *err);

struct registry_policy_version {
	int64_t version;
	int is_default;
	int64_t created;
	char *document;            /* owned; NULL in list results */
};
void registry_policy_version_cleanup(struct registry_policy_version *v);
struct registry_policy_version_list {
	struct registry_policy_version *items; /* owned, newest first */
	size_t count;
};
void registry_policy_version_list_cleanup(struct registry_policy_version_list *l);

/* CreatePolicyVersion: ids grow and are never reused. More than
 * REGISTRY_POLICY_MAX_VERSIONS versions is IOTP_ERR_LIMIT
 * (VersionsLimitExceededException). set_default makes it the default. */
iotp_rc registry_policy_version_create(struct iotp_core *core, const char *actor,
                                       const char *name, const char *document,
                                       int set_default, struct registry_policy_version *out,
                                       struct iotp_err *err);
/* GetPolicyVersion: NOT_FOUND for a missing policy or version. */
iotp_rc registry_policy_version_get(struct iotp_core *core, const char *name,
                                    int64_t version, struct registry_policy_version *out,
                                    struct iotp_err *err);
/* ListPolicyVersions. */
iotp_rc registry_policy_version_list(struct iotp_core *core, const char *name,
                                     struct registry_policy_version_list *out,
                                     struct iotp_err *err);
/* SetDefaultPolicyVersion. Setting the current default again is success
 * without change. */
iotp_rc registry_policy_version_set_default(struct iotp_core *core, const char *actor,
                                            const char *name, int64_t version,
                                            struct iotp_err *err);
/* DeletePolicyVersion: CONFLICT for the default version (DeleteConflict, as
 * the model says; delete the policy instead). */
iotp_rc registry_policy_version_delete(struct iotp_core *core, const char *actor,
                                       const char *name, int64_t version,
                                       struct iotp_err *err);

/* AttachPolicy: target is a certificate or thing group ARN (or its resource
 * part); anything else is INVALID. Policy and target must exist
 * (NOT_FOUND). More than REGISTRY_TARGET_MAX_POLICIES on one target is
 * IOTP_ERR_LIMIT. Attaching twice is success without change. */
iotp_rc registry_policy_attach(struct iotp_core *core, const char *actor, const char *name,
                               const char *target, struct iotp_err *err);
/* DetachPolicy: NOT_FOUND for a missing policy; detaching what is not
 * attached is success without change. */
iotp_rc registry_policy_detach(struct iotp_core *core, const char *actor, const char *name,
                               const char *target, struct iotp_err *err);
/* ListAttachedPolicies: refs (name, ARN) by name, default page
 * REGISTRY_MARKER_DEFAULT. NOT_FOUND for a missing target. recursive: for a
 * group, also the policies of its ancestors; for a certificate, also those
 * of every group (and ancestors) of every thing the certificate is attached
 * to -- the same set registry_policies_for_principal() evaluates. */
iotp_rc registry_policy_list_attached(struct iotp_core *core, const char *target,
                                      int recursive, const struct registry_page *page,
                                      struct registry_ref_list *out, struct iotp_err *err);
/* ListTargetsForPolicy: target ARNs, ordered, default REGISTRY_MARKER_DEFAULT. */
iotp_rc registry_policy_list_targets(struct iotp_core *core, const char *name,
                                     const struct registry_page *page,
                                     struct registry_str_list *out, struct iotp_err *err);

/* One effective policy for the broker. */
struct registry_policy_doc {
	char name[REGISTRY_NAME_MAX + 1];
	char *document;            /* owned: the default version */
};
struct registry_policy_docs {
	struct registry_policy_doc *items; /* owned, by name, each policy once */
	size_t count;
};
void registry_policy_docs_cleanup(struct registry_policy_docs *d);
/* Every policy in force for a certificate: attached to the certificate, or
 * to any group (or ancestor of a group) of any thing the certificate is
 * attached to. One query. An unknown certificate yields an empty set (the
 * broker denies); status is not checked here. cert_id is the 64-hex id. */
iotp_rc registry_policies_for_principal(struct iotp_core *core, const char *cert_id,
                                        struct registry_policy_docs *out,
                                        struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Certificates                                                        */

enum registry_cert_status {
	REGISTRY_CERT_ACTIVE = 0,
	REGISTRY_CERT_INACTIVE,
	REGISTRY_CERT_REVOKED,
	REGISTRY_CERT_PENDING_TRANSFER,
	REGISTRY_CERT_REGISTER_INACTIVE,   /* deprecated by AWS, never set */
	REGISTRY_CERT_PENDING_ACTIVATION
};
/* AWS spelling ("ACTIVE"...); never NULL. */
const char *registry_cert_status_name(enum registry_cert_status s);
/* Exact AWS spelling; INVALID otherwise. */
iotp_rc registry_cert_status_parse(const char *s, enum registry_cert_status *out,
                                   struct iotp_err *err);

struct registry_cert {
	char id[PKI_CERT_ID_LEN + 1];
	char arn[REGISTRY_ARN_MAX];
	char ca_id[PKI_CERT_ID_LEN + 1];   /* "" when issued by iotprov or
	                                    * registered without a CA */
	enum registry_cert_status status;
	char mode[REGISTRY_MODE_MAX];      /* "DEFAULT" or "SNI_ONLY" */
	char *pem;                         /* owned; NULL in list results */
	int64_t not_before;
	int64_t not_after;
	int64_t customer_version;
	int64_t generation;                /* generationId */
	int64_t created;
	int64_t updated;
};
void registry_cert_cleanup(struct registry_cert *c);

/* A newly issued certificate. */
struct registry_cert_created {
	char id[PKI_CERT_ID_LEN + 1];
	char arn[REGISTRY_ARN_MAX];
	char *pem;                 /* owned */
	char *public_key_pem;      /* owned; only from create_with_keys */
	char *private_key_pem;     /* owned secret; only from create_with_keys;
	                            * never stored; wiped by the cleanup */
};
void registry_cert_created_cleanup(struct registry_cert_created *c);

/* Status a new certificate starts in: ACTIVE, INACTIVE or PENDING_ACTIVATION
 * (fleet provisioning, JITR); anything else is INVALID. The HTTP API passes
 * setAsActive ? ACTIVE : INACTIVE. */

/* CreateCertificateFromCsr: the CSR (PEM or DER; over 4096 bytes, the
 * model's limit, is INVALID) is verified (pki_csr_parse: CERT on a bad
 * signature or weak key) and signed by core->issuing for
 * conf->pki_device_cert_days days. Needs a core opened with its CA
 * (core_open); a core without one gets IOTP_ERR_CONFIG. */
iotp_rc registry_cert_create_from_csr(struct iotp_core *core, const char *actor,
                                      const char *csr, size_t csr_len,
                                      enum registry_cert_status status,
                                      struct registry_cert_created *out,
                                      struct iotp_err *err);
/* CreateKeysAndCertificate: a new P-256 key, a certificate for it (CN "AWS
 * IoT Certificate"), both PEMs returned; the private key is never stored. */
iotp_rc registry_cert_create_with_keys(struct iotp_core *core, const char *actor,
                                       enum registry_cert_status status,
                                       struct registry_cert_created *out,
                                       struct iotp_err *err);

/* RegisterCertificate / RegisterCertificateWithoutCA input. */
struct registry_cert_register {
	const char *cert_pem;      /* required */
	const char *ca_pem;        /* caCertificatePem: NULL to find the CA */
	const char *status;        /* NULL: set_active ? ACTIVE : INACTIVE; else
	                            * ACTIVE, INACTIVE, REVOKED or (for JITR)
	                            * PENDING_ACTIVATION; PENDING_TRANSFER and
	                            * REGISTER_INACTIVE are INVALID */
	int set_active;
};
/* RegisterCertificate: the certificate must be currently valid with an
 * acceptable key (CERT). With ca_pem, that CA must be registered (CERT if
 * not) and the certificate must chain to it (CERT). Without, the registered
 * CA is found by issuer name and signature (registry_ca_find_issuer; CERT
 * when none). The certificate takes the CA's mode. Registering ACTIVE under
 * an INACTIVE CA is IOTP_ERR_STATE. A known certificate is EXISTS. out: id
 * and ARN. */
iotp_rc registry_cert_register(struct iotp_core *core, const char *actor,
                               const struct registry_cert_register *in,
                               struct registry_ref *out, struct iotp_err *err);
/* As registry_cert_register for a caller that has already decoded
 * in->cert_pem into cert (borrowed; pki_cert_parse of that PEM, or the
 * decoding of the same DER by the TLS layer): the same checks, in the same
 * order, and the same results, without a second parse. For the bulk,
 * provisioning and JITP paths. */
iotp_rc registry_cert_register_x509(struct iotp_core *core, const char *actor,
                                    const struct registry_cert_register *in, X509 *cert,
                                    struct registry_ref *out, struct iotp_err *err);
/* The same for a certificate read by pki_lite_parse from in->cert_pem,
 * without a CA PEM (in->ca_pem NULL): the bulk registration hot path. When
 * the lite path cannot decide (no registered CA shown to sign it, a CA
 * PEM given), nothing is written, *declined is set and the caller goes
 * the full way (pki_cert_parse + registry_cert_register_x509), which gives
 * the reference answer and message. */
iotp_rc registry_cert_register_lite(struct iotp_core *core, const char *actor,
                                    const struct registry_cert_register *in,
                                    const struct pki_cert_lite *cert, int *declined,
                                    struct registry_ref *out, struct iotp_err *err);
/* RegisterCertificateWithoutCA: no CA involved (ca_pem must be NULL), mode
 * SNI_ONLY. Same validity, key and status rules. */
iotp_rc registry_cert_register_no_ca(struct iotp_core *core, const char *actor,
                                     const struct registry_cert_register *in,
                                     struct registry_ref *out, struct iotp_err *err);

/* DescribeCertificate (id is 64 hex; INVALID otherwise, NOT_FOUND absent). */
iotp_rc registry_cert_describe(struct iotp_core *core, const char *id,
                               struct registry_cert *out, struct iotp_err *err);

struct registry_cert_list {
	struct registry_cert *items; /* owned; pem NULL */
	size_t count;
	char *next_token;            /* nextMarker */
};
void registry_cert_list_cleanup(struct registry_cert_list *l);
/* ListCertificates (ca_id NULL) / ListCertificatesByCA (NOT_FOUND for an
 * unknown CA), ordered by creation date then id: newest first unless
 * ascending. Default page REGISTRY_MARKER_DEFAULT. */
iotp_rc registry_cert_list(struct iotp_core *core, const char *ca_id, int ascending,
                           const struct registry_page *page, struct registry_cert_list *out,
                           struct iotp_err *err);

/* UpdateCertificate. newStatus PENDING_TRANSFER, PENDING_ACTIVATION and
 * REGISTER_INACTIVE are INVALID (AWS: internal statuses). Transitions
 * (same status: success without change, no event):
 *
 *   from \ to            ACTIVE   INACTIVE  REVOKED
 *   ACTIVE                 -        ok        ok
 *   INACTIVE               ok*      -         ok
 *   PENDING_ACTIVATION     ok*      ok        ok
 *   REGISTER_INACTIVE      ok*      ok        ok
 *   REVOKED                STATE    STATE     -
 *   PENDING_TRANSFER       STATE    STATE     ok
 *
 *   * STATE when the certificate's CA is registered but INACTIVE.
 * Revocation is final. A transfer cannot be accepted in iotprov, so a
 * PENDING_TRANSFER certificate can only be revoked or deleted. */
iotp_rc registry_cert_update_status(struct iotp_core *core, const char *actor,
                                    const char *id, enum registry_cert_status new_status,
                                    struct iotp_err *err);
/* DeleteCertificate: NOT_FOUND; STATE when ACTIVE or PENDING_TRANSFER;
 * CONFLICT while attached to a thing (even with force: the model says force
 * applies to a certificate "not attached to an IoT thing"); CONFLICT while
 * policies are attached unless force, which detaches them in the same
 * transaction. A refused delete changes nothing. */
iotp_rc registry_cert_delete(struct iotp_core *core, const char *actor, const char *id,
                             int force, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* CA certificates and the registration code                           */

/* GetRegistrationCode: 64 lowercase hex, generated from the CSPRNG on first
 * use and kept in store meta "registration_code"; stable afterwards. out
 * receives it NUL-terminated. */
iotp_rc registry_regcode_get(struct iotp_core *core, const char *actor, char out[65],
                             struct iotp_err *err);

struct registry_ca {
	char id[PKI_CERT_ID_LEN + 1];
	char arn[REGISTRY_ARN_MAX];        /* cacert/<id> */
	char *pem;                         /* owned; NULL in list results */
	int active;                        /* status ACTIVE (1) / INACTIVE (0) */
	int auto_registration;             /* ENABLE (1) / DISABLE (0) */
	char mode[REGISTRY_MODE_MAX];      /* "DEFAULT" or "SNI_ONLY" */
	char origin[16];                   /* "EXTERNAL" (registered) or iotprov's
	                                    * own "ROOT"/"ISSUING" */
	json_t *registration_config;       /* owned object with templateBody /
	                                    * templateName / roleArn; NULL none */
	int64_t not_before;
	int64_t not_after;
	int64_t customer_version;
	int64_t generation;
	int64_t created;
	int64_t updated;
};
void registry_ca_cleanup(struct registry_ca *ca);

/* registrationConfig, borrowed from the request: a JSON object with at most
 * templateBody (string <= 10240, the template is not checked here),
 * templateName ([0-9A-Za-z_-]{1,36}, must name an existing provisioning
 * template: NOT_FOUND) and roleArn (20..2048 chars); templateBody together
 * with templateName is INVALID; other members are INVALID. */

struct registry_ca_register {
	const char *ca_pem;            /* required, must be a CA certificate */
	const char *verification_pem;  /* DEFAULT mode: required; SNI_ONLY: must
	                                * be NULL (INVALID otherwise) */
	const char *mode;              /* NULL or "DEFAULT", or "SNI_ONLY" */
	int set_active;
	int allow_auto_registration;
	const json_t *registration_config; /* NULL: none */
};
/* RegisterCACertificate: CERT for a malformed, expired or non-CA
 * certificate or a weak key; REGCODE unless the verification certificate is
 * signed by the CA's key with CN = the registration code (which must have
 * been created: GetRegistrationCode first); EXISTS when registered already;
 * LIMIT when REGISTRY_CA_MAX_SAME_SUBJECT CAs share its subject. out: id
 * and ARN. */
iotp_rc registry_ca_register(struct iotp_core *core, const char *actor,
                             const struct registry_ca_register *in, struct registry_ref *out,
                             struct iotp_err *err);
/* DescribeCACertificate. */
iotp_rc registry_ca_describe(struct iotp_core *core, const char *id, struct registry_ca *out,
                             struct iotp_err *err);

struct registry_ca_list {
	struct registry_ca *items;   /* owned; pem and registration_config NULL */
	size_t count;
	char *next_token;            /* nextMarker */
};
void registry_ca_list_cleanup(struct registry_ca_list *l);
/* ListCACertificates by creation date then id (newest first unless
 * ascending); template_name (NULL: all) keeps CAs whose registrationConfig
 * names that template. Default page REGISTRY_MARKER_DEFAULT. */
iotp_rc registry_ca_list(struct iotp_core *core, int ascending, const char *template_name,
                         const struct registry_page *page, struct registry_ca_list *out,
                         struct iotp_err *err);

struct registry_ca_update {
	const char *id;
	const char *new_status;            /* NULL, "ACTIVE" or "INACTIVE" */
	const char *new_auto_registration; /* NULL, "ENABLE" or "DISABLE" */
	const json_t *registration_config; /* NULL: keep; replaces it otherwise */
	int remove_auto_registration;      /* removeAutoRegistration: sets
	                                    * DISABLE and drops the
	                                    * registrationConfig; with
	                                    * registration_config or ENABLE:
	                                    * INVALID */
};
/* UpdateCACertificate. iotprov's own CAs (origin ROOT/ISSUING) cannot be
 * changed: INVALID. Nothing to change is success without an event. */
iotp_rc registry_ca_update(struct iotp_core *core, const char *actor,
                           const struct registry_ca_update *in, struct iotp_err *err);
/* DeleteCACertificate: NOT_FOUND; INVALID for iotprov's own CAs; STATE
 * unless INACTIVE (AWS: deactivate first); CONFLICT while device
 * certificates registered under it remain (delete them first: their records
 * name the CA). */
iotp_rc registry_ca_delete(struct iotp_core *core, const char *actor, const char *id,
                           struct iotp_err *err);

/* The registered CA that issued cert (issuer name = CA subject and the
 * signature verifies with the CA key), whatever its status or
 * auto-registration (the caller, JITP/JITR, checks those). NOT_FOUND when
 * none. cert is borrowed. */
iotp_rc registry_ca_find_issuer(struct iotp_core *core, X509 *cert, struct registry_ca *out,
                                struct iotp_err *err);
/* The same for a certificate read by pki_lite_parse. */
iotp_rc registry_ca_find_issuer_lite(struct iotp_core *core, const struct pki_cert_lite *cert,
                                     struct registry_ca *out, struct iotp_err *err);

#endif
