/*
 * SigV4 authentication against the access-key table, with auditing (see
 * auth.h). The order of checks follows AWS: header syntax, session token,
 * scope and clock, key, then the signature, so the expensive HMAC only runs
 * for a well-formed request from a known key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/util.h"
#include "core/store/store.h"
#include "server/auth.h"

static void audit_failure(struct iotp_core *core, const struct auth_context *ctx,
                          const char *key_id, const char *reason, const char *message)
{
	struct iotp_err aerr;
	char actor[SIGV4_KEY_ID_MAX + 8], object[SIGV4_KEY_ID_MAX + 16];
	json_t *detail = json_object();
	char *text = NULL;

	if (key_id != NULL && key_id[0] != '\0') {
		snprintf(actor, sizeof(actor), "key:%s", key_id);
		snprintf(object, sizeof(object), "accesskey/%s", key_id);
	} else {
		util_strlcpy(actor, "anonymous", sizeof(actor));
		util_strlcpy(object, "api", sizeof(object));
	}
	if (detail != NULL) {
		json_object_set_new(detail, "reason", json_string(reason));
		if (ctx->operation != NULL)
			json_object_set_new(detail, "operation", json_string(ctx->operation));
		if (ctx->request_id != NULL)
			json_object_set_new(detail, "requestId", json_string(ctx->request_id));
		if (ctx->remote != NULL)
			json_object_set_new(detail, "remote", json_string(ctx->remote));
		if (message != NULL)
			json_object_set_new(detail, "message", json_string(message));
		text = json_dumps(detail, JSON_COMPACT);
	}
	if (store_event_append(core->store, actor, "auth.fail", object, text, NULL, &aerr) !=
	    IOTP_OK)
		LOG_ERROR("auth: request %s: cannot write the audit record: %s",
		          ctx->request_id != NULL ? ctx->request_id : "-", aerr.msg);
	free(text);
	json_decref(detail);
}

iotp_rc auth_verify(struct iotp_core *core, const struct sigv4_request *req,
                    const struct auth_context *ctx, struct accesskey *key,
                    const char **reason, struct iotp_err *err)
{
	struct sigv4_auth a;
	struct accesskey k;
	struct iotp_err lerr;
	char amzdate[17];
	int64_t t;
	const char *why = NULL, *key_id = NULL;
	const char *header = sigv4_header_get(req, "authorization");
	int internal = 0;
	iotp_rc rc;

	memset(&k, 0, sizeof(k));
	iotp_err_clear(&lerr);
	if (header == NULL) {
		why = AUTH_REASON_MISSING;
		rc = iotp_err_set(&lerr, IOTP_ERR_AUTH,
		                  "Missing Authentication Token: sign the request with AWS SigV4");
		goto out;
	}
	if ((rc = sigv4_parse_authorization(header, &a, &lerr)) != IOTP_OK) {
		why = AUTH_REASON_MALFORMED;
		goto out;
	}
	key_id = a.key_id;
	if (sigv4_header_get(req, "x-amz-security-token") != NULL) {
		why = AUTH_REASON_TOKEN;
		rc = iotp_err_set(&lerr, IOTP_ERR_AUTH,
		                  "session tokens (x-amz-security-token) are not supported: sign "
		                  "with an iotprov access key and unset AWS_SESSION_TOKEN");
		goto out;
	}
	if ((rc = sigv4_request_time(req, amzdate, &t, &lerr)) != IOTP_OK) {
		why = AUTH_REASON_MALFORMED;
		goto out;
	}
	if ((rc = sigv4_check_scope(&a, amzdate, t, ctx->region, ctx->now, ctx->max_skew,
	                            &lerr)) != IOTP_OK) {
		why = (t < ctx->now - ctx->max_skew || t > ctx->now + ctx->max_skew)
		          ? AUTH_REASON_EXPIRED
		          : AUTH_REASON_SCOPE;
		goto out;
	}
	rc = accesskey_lookup(core, a.key_id, &k, &lerr);
	if (rc == IOTP_ERR_NOT_FOUND || (rc == IOTP_OK && !k.active)) {
		why = rc == IOTP_OK ? AUTH_REASON_DISABLED : AUTH_REASON_UNKNOWN_KEY;
		/* Unknown and disabled keys get the same answer. */
		rc = iotp_err_set(&lerr, IOTP_ERR_AUTH,
		                  "The security token included in the request is invalid.");
		goto out;
	}
	if (rc != IOTP_OK) {
		why = AUTH_REASON_INTERNAL;
		internal = 1;
		goto out;
	}
	if ((rc = sigv4_verify(req, &a, amzdate, k.secret, &lerr)) != IOTP_OK) {
		/* A request too large to canonicalise is refused like a bad
		 * signature; anything else is ours. */
		internal = rc != IOTP_ERR_SIGNATURE && rc != IOTP_ERR_TOO_BIG;
		why = internal ? AUTH_REASON_INTERNAL : AUTH_REASON_SIGNATURE;
		if (rc == IOTP_ERR_TOO_BIG)
			rc = IOTP_ERR_SIGNATURE;
		goto out;
	}
	accesskey_cleanup(&k);
	{
		struct iotp_err terr;

		if (accesskey_touch(core, &k, ctx->now, &terr) != IOTP_OK)
			LOG_WARN("auth: request %s: cannot record last use of %s: %s",
			         ctx->request_id != NULL ? ctx->request_id : "-", k.id, terr.msg);
	}
	*key = k;
	return IOTP_OK;
out:
	accesskey_cleanup(&k);
	if (internal)
		LOG_ERROR("auth: request %s: %s", ctx->request_id != NULL ? ctx->request_id : "-",
		          lerr.msg);
	audit_failure(core, ctx, key_id, why, internal ? NULL : lerr.msg);
	*reason = why;
	iotp_err_set(err, rc, "%s", lerr.msg);
	return rc;
}
