/*
 * The provisioning engine: provisioning templates as registry objects, the
 * one function that applies a template to the registry, and the transport-
 * free fleet-provisioning operations (certificate + ownership token,
 * register-thing, trusted-user claims, JITP).
 *
 * Every registration path calls these functions: RegisterThing over HTTP,
 * the MQTT fleet-provisioning handlers of the broker plugin, JITP at first
 * connect, bulk registration tasks, authorized-list and EST enrolment. So
 * the same template with the same inputs produces the same thing whatever
 * the path.
 *
 * Conventions are those of registry.h (core/actor/err, results owned with a
 * _cleanup accepting a zeroed struct, out-parameters written only on
 * success, one event per state change, return codes). In addition:
 *   IOTP_ERR_TEMPLATE  the template fails with these inputs (the message
 *                      names the JSON path);
 *   IOTP_ERR_TOKEN     certificate ownership token unknown, expired, used,
 *                      or bound to another certificate;
 *   IOTP_ERR_DENIED    the pre-provisioning hook refused, timed out or
 *                      failed (fail closed), or a claim is used outside its
 *                      template.
 * (If these codes do not exist yet in include/iotprov/rc.h, append them;
 * never renumber.)
 *
 * Nothing here does network I/O: the pre-provisioning hook is called
 * through struct prov_hook, which the process provides (src/net/webhook.c:
 * libcurl). A call that runs a hook blocks its thread for at most the hook
 * timeout: the broker calls these from worker threads, never from its own.
 */
#ifndef IOTP_PROVISION_H
#define IOTP_PROVISION_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "common/err.h"
#include "core/core.h"
#include "core/registry.h"
#include "core/template.h"

#define PROV_TEMPLATE_NAME_MAX 36   /* [0-9A-Za-z_-]+ */
#define PROV_TOKEN_MAX 512          /* an ownership token, as text */
#define PROV_TOKEN_TTL 3600         /* seconds (AWS: 1 hour) */
#define PROV_CLAIM_TTL_DEFAULT 300  /* seconds (trusted-user claims) */
#define PROV_HOOK_TIMEOUT_DEFAULT 5 /* seconds */

/* ------------------------------------------------------------------ */
/* Provisioning templates (CreateProvisioningTemplate and friends)     */

struct prov_template {
	char name[PROV_TEMPLATE_NAME_MAX + 1];
	char id[REGISTRY_ID_MAX + 1];       /* UUID */
	char arn[REGISTRY_ARN_MAX];         /* ...:provisioningtemplate/<name> */
	char *description;                  /* owned, "" when none */
	char type[24];                      /* "FLEET_PROVISIONING" | "JITP" */
	int enabled;
	char *body;                         /* owned: the default version's body */
	int default_version;
	char *role_arn;                     /* owned, "" when none */
	json_t *hook;                       /* owned, NULL when none:
	                                     * {"targetArn", "payloadVersion"} */
	int64_t created;
	int64_t updated;
};
void prov_template_cleanup(struct prov_template *t);

/* CreateProvisioningTemplate: the body is validated for its type
 * (template_parse with TEMPLATE_KIND_FLEET or _JITP); every problem is in
 * the IOTP_ERR_INVALID message. Version 1 is the default. */
iotp_rc prov_template_create(struct iotp_core *core, const char *actor,
                             const struct prov_template *in, struct registry_ref *out,
                             struct iotp_err *err);
iotp_rc prov_template_describe(struct iotp_core *core, const char *name,
                               struct prov_template *out, struct iotp_err *err);
/* UpdateProvisioningTemplate: description, enabled, default version, role,
 * hook (remove_hook to drop it). Fields NULL / -1: keep. */
struct prov_template_update {
	const char *name;
	const char *description;
	int enabled;                /* -1 keep, 0, 1 */
	int default_version;        /* 0 keep */
	const char *role_arn;
	const json_t *hook;
	int remove_hook;
};
iotp_rc prov_template_update(struct iotp_core *core, const char *actor,
                             const struct prov_template_update *in, struct iotp_err *err);
/* DeleteProvisioningTemplate: refused (CONFLICT) while a CA names it in its
 * registrationConfig. */
iotp_rc prov_template_delete(struct iotp_core *core, const char *actor, const char *name,
                             struct iotp_err *err);
/* ListProvisioningTemplates (items carry no body). */
struct prov_template_list {
	struct prov_template *items;
	size_t count;
	char *next_token;
};
void prov_template_list_cleanup(struct prov_template_list *l);
iotp_rc prov_template_list(struct iotp_core *core, const struct registry_page *page,
                           struct prov_template_list *out, struct iotp_err *err);
/* Template versions: create (optionally set as default), list, describe,
 * delete (not the default). At most 5 versions (LIMIT). */
iotp_rc prov_template_version_create(struct iotp_core *core, const char *actor,
                                     const char *name, const char *body, int set_default,
                                     int *version_out, struct iotp_err *err);
struct prov_template_version {
	int version;
	int is_default;
	char *body;                 /* owned; NULL in lists */
	int64_t created;
};
struct prov_template_version_list {
	struct prov_template_version *items;
	size_t count;
	char *next_token;
};
void prov_template_version_list_cleanup(struct prov_template_version_list *l);
iotp_rc prov_template_version_list(struct iotp_core *core, const char *name,
                                   const struct registry_page *page,
                                   struct prov_template_version_list *out, struct iotp_err *err);
iotp_rc prov_template_version_describe(struct iotp_core *core, const char *name, int version,
                                       struct prov_template_version *out, struct iotp_err *err);
void prov_template_version_cleanup(struct prov_template_version *v);
iotp_rc prov_template_version_delete(struct iotp_core *core, const char *actor,
                                     const char *name, int version, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Applying a template: the one function every registration path calls */

/* The certificate being provisioned, when the path has one. */
struct prov_subject_cert {
	const char *id;             /* an existing certificate's id, or NULL */
	X509 *x509;                 /* borrowed, or NULL: gives the pseudo
	                             * parameters (CommonName...) when set */
};

struct prov_apply_in {
	const struct template *tmpl;    /* parsed template (borrowed) */
	const char *template_name;      /* recorded in events; NULL for a
	                                 * templateBody given inline */
	const json_t *parameters;       /* the caller's parameters, or NULL */
	struct prov_subject_cert cert;  /* fleet: the certificate of the token;
	                                 * JITP: the connecting certificate */
	/* Bulk: a certificate PEM among the parameters already read by
	 * pki_lite_parse (borrowed), used when the template's certificate
	 * is that very PEM (cert_hint_pem compares equal). */
	const struct pki_cert_lite *cert_hint;
	const char *cert_hint_pem;
};

struct prov_result {
	char thing_name[REGISTRY_NAME_MAX + 1];  /* "" when the template has no thing */
	char thing_arn[REGISTRY_ARN_MAX];
	char cert_id[REGISTRY_ID_MAX + 1];       /* "" when no certificate */
	char cert_arn[REGISTRY_ARN_MAX];
	char *cert_pem;                          /* owned: set when the template
	                                          * issued or registered one */
	char policy_name[REGISTRY_NAME_MAX + 1]; /* "" when none */
	json_t *device_configuration;            /* owned object, never NULL on success */
	int thing_created;                       /* 0: an existing thing was reused */
	json_t *resource_arns;                   /* owned object, never NULL on success:
	                                          * logical id -> ARN of each resource
	                                          * (RegisterThing's resourceArns) */
};
void prov_result_cleanup(struct prov_result *r);

/*
 * Applies a template in ONE store transaction: thing (create or update per
 * OverrideSettings: type, groups, attributes), certificate (by id, by PEM,
 * by CSR: issued by the issuing CA), status, policy (create or reuse),
 * attach policy to certificate and certificate to thing. Any failure rolls
 * everything back: the store is byte-for-byte as before. Re-running with the
 * same inputs changes nothing and succeeds (idempotent); the one exception
 * is a template that issues a certificate from a CSR, which (as at AWS)
 * issues a new certificate each time. Nests inside a caller's transaction
 * (bulk tasks batch lines).
 *
 * Rules (docs/fleet-provisioning.md, "Applying a template"):
 * - Pseudo parameters come from in->cert: the id (computed from x509 when
 *   id is NULL) and the subject fields of x509, or of the stored
 *   certificate when only the id is given.
 * - Thing groups, thing types and policies named by PolicyName must exist;
 *   a PolicyDocument policy is created when missing and reused (as it is)
 *   when a policy of that name exists. BillingGroup is ignored (iotprov has
 *   no billing groups).
 * - Certificate status: a PENDING_ACTIVATION certificate always takes the
 *   template's Status; an ACTIVE or INACTIVE one follows OverrideSettings
 *   Status (DO_NOTHING by default); a REVOKED or PENDING_TRANSFER one
 *   cannot be provisioned.
 * Errors: template_evaluate()'s (INVALID for a missing or bad parameter,
 * TOO_BIG, TEMPLATE); IOTP_ERR_TEMPLATE with "Resources.<id>: <reason>" for
 * anything the registry refuses (missing type, group, policy or
 * certificate, OverrideSettings FAIL, a limit...); CONFIG when a CSR must
 * be signed by a core without its CA; DB, BUSY, NOMEM, CRYPTO.
 * One event "provision.apply" (object "thing/<name>", else "cert/<id>",
 * else "policy/<name>") joins the registry's own events when anything
 * changed.
 */
iotp_rc prov_apply(struct iotp_core *core, const char *actor, const struct prov_apply_in *in,
                   struct prov_result *out, struct iotp_err *err);

/* RegisterThing (POST /things): parse templateBody (TEMPLATE_KIND_ANY) and
 * apply it with parameters. */
iotp_rc prov_register_thing_body(struct iotp_core *core, const char *actor, const char *body,
                                 size_t len, const json_t *parameters, struct prov_result *out,
                                 struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Fleet provisioning (the MQTT topics of COMPAT.md, transport-free)   */

/* Who is asking: the claim certificate of the MQTT connection. It must be
 * a known ACTIVE certificate (a trusted-user claim also unexpired), else
 * IOTP_ERR_DENIED. */
struct prov_claimant {
	const char *cert_id;        /* the claim certificate's id */
	const char *client_id;      /* MQTT client id (for the hook), may be NULL */
};

struct prov_new_cert {
	char cert_id[REGISTRY_ID_MAX + 1];
	char *cert_pem;             /* owned */
	char *private_key_pem;      /* owned; NULL for create-from-csr. Wipe
	                             * (OPENSSL_clear_free) on cleanup */
	char token[PROV_TOKEN_MAX]; /* certificateOwnershipToken */
};
void prov_new_cert_cleanup(struct prov_new_cert *c);

/* $aws/certificates/create: a new key pair (the conf key type) and a
 * certificate issued PENDING_ACTIVATION, plus an ownership token bound to
 * it (single use, [provisioning] token_ttl, default PROV_TOKEN_TTL). The
 * token is 64 hex digits from 32 CSPRNG bytes; the store keeps only its
 * SHA-256. Certificate and token land in one transaction. */
iotp_rc prov_create_keys_and_certificate(struct iotp_core *core, const struct prov_claimant *who,
                                         struct prov_new_cert *out, struct iotp_err *err);
/* $aws/certificates/create-from-csr: the same for a CSR (PEM, len bytes). */
iotp_rc prov_create_certificate_from_csr(struct iotp_core *core,
                                         const struct prov_claimant *who, const char *csr,
                                         size_t len, struct prov_new_cert *out,
                                         struct iotp_err *err);

/* The pre-provisioning hook, provided by the process (src/net/webhook.h).
 * call() POSTs body to url (the template's hook targetArn) signed as
 * docs/fleet-provisioning.md describes and returns the parsed answer object
 * (new reference) or an error; it must return within timeout_ms
 * milliseconds ([provisioning] hook_timeout_ms). It runs on the caller's
 * thread and must be callable from several threads at once. */
struct prov_hook {
	iotp_rc (*call)(void *ctx, const char *url, const char *body, int timeout_ms,
	                json_t **answer, struct iotp_err *err);
	void *ctx;
};

/* Interprets a hook's answer: IOTP_OK only when answer is an object whose
 * allowProvisioning is JSON true and whose parameterOverrides (optional)
 * is an object of strings; *merged (new reference) is then params (NULL:
 * none) with the overrides applied. Anything else is IOTP_ERR_DENIED
 * (fail closed) naming the reason. Pure; thread-safe. */
iotp_rc prov_hook_answer(const json_t *answer, const json_t *params, json_t **merged,
                         struct iotp_err *err);

/* 1 when url is acceptable as a hook targetArn: https://HOST[...], or
 * http:// to a loopback host (127.0.0.1, [::1], localhost) for tests and
 * local sidecars; at most 2048 characters. */
int prov_hook_url_ok(const char *url);

/* $aws/provisioning-templates/<name>/provision: verifies and consumes the
 * token (exactly once, also under concurrency), checks the template is
 * enabled and of type FLEET_PROVISIONING and that a trusted-user claim is
 * used only for its own template, runs the hook when the template has one
 * (hook may be NULL only when no template has a hook: else DENIED), applies
 * the template with the token's certificate, and returns thingName and
 * deviceConfiguration.
 * The token is consumed in the transaction that applies the template, so
 * any failure leaves it usable; the hook runs before that transaction
 * (no store lock is held while it runs). Errors: NOT_FOUND (template),
 * INVALID (parameters, a JITP template), TOKEN, DENIED (claimant,
 * disabled template, claim of another template, the hook), and
 * prov_apply()'s. */
iotp_rc prov_register_thing(struct iotp_core *core, const struct prov_claimant *who,
                            const char *template_name, const char *token,
                            const json_t *parameters, const struct prov_hook *hook,
                            struct prov_result *out, struct iotp_err *err);

/* The MQTT rejected reply for a failure: statusCode, errorCode (stable
 * names documented in docs/fleet-provisioning.md): TOKEN 400
 * "InvalidCertificateOwnershipToken"; INVALID, TOO_BIG 400
 * "InvalidParameters"; CERT 400 "InvalidCertificateSigningRequest";
 * TEMPLATE 400 "ResourceRegistrationFailure"; DENIED, AUTH 403
 * "AccessDenied"; NOT_FOUND 404 "ResourceNotFound"; THROTTLED 429
 * "Throttled"; BUSY, TIMEOUT 503 "ServiceUnavailable"; anything else 500
 * "InternalError". Static strings. */
void prov_error_shape(iotp_rc rc, int *status, const char **code);

/* Deletes certificates still PENDING_ACTIVATION whose token expired unused
 * (and their tokens), and trusted-user claim certificates past their
 * expiration; returns how many certificates in *deleted. Drops expired
 * tokens. Works in batches, each in its own transaction. Run periodically
 * by iotprovd (src/server/sweep.c). */
iotp_rc prov_sweep_expired(struct iotp_core *core, int64_t now, int *deleted,
                           struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Trusted user: CreateProvisioningClaim                               */

struct prov_claim {
	char cert_id[REGISTRY_ID_MAX + 1];
	char *cert_pem;             /* owned */
	char *private_key_pem;      /* owned, wiped on cleanup */
	char *public_key_pem;       /* owned */
	int64_t expiration;         /* epoch seconds */
};
void prov_claim_cleanup(struct prov_claim *c);

/* A temporary claim certificate (purpose CLAIM, bound to template_name,
 * valid conf claim TTL, default PROV_CLAIM_TTL_DEFAULT) and its key. The
 * template must exist, be enabled and be FLEET_PROVISIONING. */
iotp_rc prov_claim_create(struct iotp_core *core, const char *actor, const char *template_name,
                          struct prov_claim *out, struct iotp_err *err);

/* The policy document (JSON text, malloc'ed) that governs a claim
 * certificate bound to template_name: Connect, and Publish / Receive /
 * Subscribe only on $aws/certificates/create[-from-csr]/... and
 * $aws/provisioning-templates/<template_name>/provision/... The broker uses
 * it for certificates of purpose CLAIM. */
iotp_rc prov_claim_policy_document(const char *template_name, char **out, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* JITP                                                                */

/* A certificate signed by a registered CA whose registrationConfig names a
 * template (or holds a body): registers the certificate under the CA if it
 * is not yet known and applies the template with its subject fields, in one
 * transaction. out->thing_name is the thing. */
iotp_rc prov_jitp(struct iotp_core *core, const char *actor, X509 *cert, const char *ca_id,
                  struct prov_result *out, struct iotp_err *err);

#endif
