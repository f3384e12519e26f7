/*
 * Policy engine: the AWS IoT policy language, as the MQTT broker uses it to
 * authorize Connect, Publish, Receive, Subscribe and RetainPublish.
 *
 * Pure functions: nothing here touches the store, the network or any global
 * state. The caller gathers the policy documents that apply to a connection
 * (the certificate's and those inherited through thing groups), compiles each
 * once with policy_compile(), fills a struct policy_ctx once per connection
 * and calls policy_eval() per request. docs/policies.md is the user-facing
 * description of the supported subset; this header is the contract.
 *
 * Decisions in one place:
 * - Default deny; an applicable Deny statement in any document beats every
 *   Allow.
 * - In Resource and StringLike values `*` matches any run of characters
 *   (including '/' and the empty run) and `?` exactly one UTF-8 character.
 *   MQTT's `+` and `#` are ordinary characters. Resources compare
 *   case-sensitively, action names case-insensitively.
 * - Text substituted for a policy variable is always compared literally: a
 *   client id "*", "+", "#" or "a?b" never acts as a wildcard.
 * - An unresolvable variable never widens access: in an Allow statement the
 *   resource string (or condition) holding it matches nothing, in a Deny
 *   statement the variable stands for "any value" so the Deny covers every
 *   value it could have had. Hence a decision made with a variable unknown is
 *   never more permissive than the decision for any value of it.
 * - `${*}`, `${?}` and `${$}` stand for a literal '*', '?' and '$'.
 * - Version "2008-10-17" has no variables: `${...}` is literal text there.
 */
#ifndef IOTP_POLICY_H
#define IOTP_POLICY_H

#include <stddef.h>

#include "common/err.h"

/* Limits on a policy document. AWS counts 2048 characters excluding
 * whitespace; iotprov counts UTF-8 characters as written (escapes included)
 * outside JSON whitespace between tokens, and also caps the raw byte length so
 * that padding with whitespace cannot make parsing expensive. */
#define POLICY_MAX_CHARS 2048
#define POLICY_MAX_BYTES 65536
#define POLICY_MAX_DEPTH 16      /* JSON nesting; a valid policy needs 6 */
#define POLICY_MAX_VARS 8        /* policy variables in one resource or value */

/* The broker actions. The order is part of the ABI of policy_eval callers'
 * caches: append only. */
enum policy_action {
	POLICY_ACTION_CONNECT = 0,        /* resource client/<clientId> */
	POLICY_ACTION_PUBLISH = 1,        /* resource topic/<topic> */
	POLICY_ACTION_RECEIVE = 2,        /* resource topic/<topic> */
	POLICY_ACTION_SUBSCRIBE = 3,      /* resource topicfilter/<filter> */
	POLICY_ACTION_RETAIN_PUBLISH = 4, /* resource topic/<topic>; a retained
	                                   * publish needs Publish as well */
	POLICY_ACTION_COUNT
};

enum policy_decision {
	POLICY_DENY = 0,
	POLICY_ALLOW = 1
};

/* Distinguished-name fields usable as ${iot:Certificate.Subject.<Field>} and
 * ${iot:Certificate.Issuer.<Field>}. */
enum policy_cert_field {
	POLICY_CERT_COMMON_NAME = 0,
	POLICY_CERT_COUNTRY,
	POLICY_CERT_ORGANIZATION,
	POLICY_CERT_ORGANIZATIONAL_UNIT,
	POLICY_CERT_DN_QUALIFIER,
	POLICY_CERT_STATE,
	POLICY_CERT_LOCALITY,
	POLICY_CERT_SERIAL_NUMBER,
	POLICY_CERT_TITLE,
	POLICY_CERT_SURNAME,
	POLICY_CERT_GIVEN_NAME,
	POLICY_CERT_INITIALS,
	POLICY_CERT_PSEUDONYM,
	POLICY_CERT_GENERATION_QUALIFIER,
	POLICY_CERT_FIELD_COUNT
};

/* The scalar policy variables, indexes into policy_ctx.var. Thing attributes
 * (${iot:Connection.Thing.Attributes[name]}) come from policy_ctx.attrs. */
enum policy_var {
	POLICY_VAR_CLIENT_ID = 0,        /* iot:ClientId */
	POLICY_VAR_THING_NAME,           /* iot:Connection.Thing.ThingName */
	POLICY_VAR_THING_TYPE_NAME,      /* iot:Connection.Thing.ThingTypeName */
	POLICY_VAR_THING_IS_ATTACHED,    /* iot:Connection.Thing.IsAttached */
	POLICY_VAR_CERT_SERIAL_NUMBER,   /* iot:Certificate.SerialNumber */
	POLICY_VAR_SUBJECT_FIRST,        /* + enum policy_cert_field */
	POLICY_VAR_ISSUER_FIRST = POLICY_VAR_SUBJECT_FIRST + POLICY_CERT_FIELD_COUNT,
	POLICY_VAR_COUNT = POLICY_VAR_ISSUER_FIRST + POLICY_CERT_FIELD_COUNT
};
#define POLICY_VAR_SUBJECT(field) (POLICY_VAR_SUBJECT_FIRST + (field))
#define POLICY_VAR_ISSUER(field) (POLICY_VAR_ISSUER_FIRST + (field))

struct policy_attr {
	const char *name;  /* case-sensitive, as stored on the thing */
	const char *value;
};

/* What the variables resolve to for one connection. Every pointer is
 * borrowed for the duration of policy_eval() and must point to a
 * NUL-terminated UTF-8 string; NULL (or text that is not valid UTF-8) means
 * "unresolvable". An empty string is a resolved, empty value.
 *
 * Filling it is the caller's job, once per connection, following AWS:
 * thing variables only when the client id names a thing attached to the
 * certificate (IsAttached is "true" or "false"); a DN field that occurs more
 * than once is best left NULL; SerialNumber as the caller's canonical text
 * form. policy_ctx_init() makes everything unresolvable. */
struct policy_ctx {
	const char *var[POLICY_VAR_COUNT];
	const struct policy_attr *attrs; /* thing attributes, n_attrs of them */
	size_t n_attrs;
};

/* A compiled, immutable policy document. Opaque. */
struct policy;

/* Sets every variable of ctx to unresolvable. */
void policy_ctx_init(struct policy_ctx *ctx);

/*
 * Checks a policy document (len bytes, need not be NUL-terminated).
 * Returns IOTP_OK, or IOTP_ERR_POLICY with err->msg naming the reason and
 * the JSON path, e.g. "Statement[1].Effect: must be Allow or Deny".
 * Accepts exactly what policy_compile() accepts. Thread-safe.
 */
iotp_rc policy_validate(const char *doc, size_t len, struct iotp_err *err);

/*
 * Validates and compiles a document into the form policy_eval() uses.
 * On success *out is a new policy the caller releases with policy_free();
 * it does not reference doc. On failure *out is untouched and the return is
 * IOTP_ERR_POLICY (as policy_validate) or IOTP_ERR_NOMEM. Thread-safe.
 */
iotp_rc policy_compile(const char *doc, size_t len, struct policy **out,
                       struct iotp_err *err);

/* Releases a compiled policy; NULL is a no-op. */
void policy_free(struct policy *p);

/*
 * Decides whether the principal holding `policies` (n of them, NULL entries
 * skipped) may perform `action` on `resource`, the full ARN
 * ("arn:aws:iot:<region>:<account>:topic/<topic>", ".../topicfilter/<filter>"
 * or ".../client/<clientId>", NUL-terminated). ctx may be NULL (no variable
 * resolves).
 *
 * POLICY_ALLOW only when some Allow statement applies and no Deny statement
 * does. A resource that is not valid UTF-8 or an out-of-range action is
 * POLICY_DENY. Never allocates; reentrant and thread-safe on shared compiled
 * policies. Cost is linear in the statements and, per resource pattern,
 * at worst O(pattern length x resource length).
 */
enum policy_decision policy_eval(const struct policy *const *policies, size_t n,
                                 enum policy_action action, const char *resource,
                                 const struct policy_ctx *ctx);

/* "iot:Publish" -> POLICY_ACTION_PUBLISH, case-insensitively. IOTP_ERR_INVALID
 * for anything that is not one of the five broker actions. */
iotp_rc policy_action_parse(const char *name, enum policy_action *out,
                            struct iotp_err *err);

/* Canonical name ("iot:Publish"), or "" for an out-of-range value. Static. */
const char *policy_action_name(enum policy_action action);

/* Name of a variable as written in a policy, without "${}", e.g.
 * "iot:Certificate.Subject.CommonName"; "" for an out-of-range value. Static. */
const char *policy_var_name(enum policy_var var);

/* The OpenSSL NID of a DN field (NID_commonName, ...), so the broker can fill
 * policy_ctx from X509_get_subject_name() in a loop; NID_undef when out of
 * range. */
int policy_cert_field_nid(enum policy_cert_field field);

#endif
