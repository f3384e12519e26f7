/*
 * Authentication of one API request: SigV4 (sigv4.h) against an access key
 * of the store (core/accesskey.h), with every failure written to the audit
 * log. The HTTP server calls this before any route that is not public; the
 * answer is a key or a reason, never anything in between.
 */
#ifndef IOTP_AUTH_H
#define IOTP_AUTH_H

#include <stdint.h>

#include "common/err.h"
#include "core/accesskey.h"
#include "core/core.h"
#include "server/sigv4.h"

/* Why authentication failed, as a short token for metrics
 * (iotprov_api_auth_failures_total{reason=...}) and the audit log. */
#define AUTH_REASON_MISSING "missing"        /* no Authorization header */
#define AUTH_REASON_MALFORMED "malformed"    /* unparsable header or date */
#define AUTH_REASON_TOKEN "session_token"    /* x-amz-security-token sent */
#define AUTH_REASON_SCOPE "scope"            /* wrong region or service */
#define AUTH_REASON_EXPIRED "expired"        /* date outside the clock skew */
#define AUTH_REASON_UNKNOWN_KEY "unknown_key"
#define AUTH_REASON_DISABLED "disabled_key"
#define AUTH_REASON_SIGNATURE "signature"    /* signature does not match */
#define AUTH_REASON_INTERNAL "internal"      /* the store failed */

/* Where the request came from, for the audit record. */
struct auth_context {
	const char *request_id;
	const char *operation;
	const char *remote;      /* peer address, may be NULL */
	const char *region;      /* accepted SigV4 region */
	int64_t now;             /* epoch seconds */
	int64_t max_skew;        /* seconds */
};

/* Authenticates req. On success *key is the access key (secret wiped) and
 * its last_used is brought up to date. On failure returns:
 *   IOTP_ERR_AUTH      (UnrecognizedClientException, or
 *                       MissingAuthenticationTokenException when *reason is
 *                       AUTH_REASON_MISSING): no, malformed or unknown
 *                       credentials, disabled key, session token;
 *   IOTP_ERR_SIGNATURE (InvalidSignatureException): bad scope, expired
 *                       date, signature mismatch;
 *   IOTP_ERR_DB etc.   the store failed;
 * with err holding the message for the client (it never contains the
 * secret or the expected signature) and *reason the token. Every failure
 * appends an auth.fail event (actor "key:<id>" when the request named a
 * well-formed key id, else "anonymous"); a failure to append is logged. */
iotp_rc auth_verify(struct iotp_core *core, const struct sigv4_request *req,
                    const struct auth_context *ctx, struct accesskey *key,
                    const char **reason, struct iotp_err *err);

#endif
