/*
 * The one table that turns an iotp_rc into what an AWS client expects: the
 * HTTP status and the error type sent as `x-amzn-ErrorType: <Type>:` with a
 * body {"message": "..."} (rest-json, as botocore parses it). Every route
 * and the server itself answer errors through this table, so a given
 * failure looks the same whichever operation hits it.
 *
 * Internal failures (5xx) never show their detail to the client: the
 * message becomes "internal error, see server log (request id X)" and the
 * detail goes to the log with that request id.
 */
#ifndef IOTP_API_ERRORS_H
#define IOTP_API_ERRORS_H

#include <stddef.h>

#include <jansson.h>

#include "common/err.h"

struct api_error {
	int status;       /* HTTP status */
	const char *type; /* AWS error type, e.g. "ResourceNotFoundException" */
};

/* Status and type for rc (IOTP_OK included, as 500: it is a bug to send an
 * error for success). Never NULL; static storage. */
const struct api_error *api_error_for(iotp_rc rc);

/* Errors the server raises before any route runs. */
extern const struct api_error api_error_unknown_operation; /* 404 */
extern const struct api_error api_error_method_not_allowed; /* 405 */
extern const struct api_error api_error_missing_auth;      /* 403 */
extern const struct api_error api_error_too_large;         /* 413 */
extern const struct api_error api_error_unavailable;       /* 503 */

/* 1 when a status is an internal failure whose detail must stay in the log
 * (status >= 500). */
int api_error_is_internal(int status);

/* The message a client may see for an error with that status: detail as
 * given for 4xx, the generic text with the request id for 5xx. Written to
 * out (truncated to size). */
void api_error_client_message(int status, const char *detail, const char *request_id,
                              char *out, size_t size);

/* The JSON error body: {"message": message} plus every member of extra
 * (may be NULL; e.g. resourceId and resourceArn for
 * ResourceAlreadyExistsException). *out is malloc'ed (caller frees), *len
 * its length. */
iotp_rc api_error_body(const char *message, const json_t *extra, char **out, size_t *len);

/* The x-amzn-ErrorType header value for a type: "<Type>:" into out. */
void api_error_type_header(const char *type, char *out, size_t size);

#endif
