/*
 * iotp_rc -> HTTP status and AWS error type (see api_errors.h). The types
 * and statuses follow the botocore IoT model (COMPAT.md); where iotprov has
 * a failure AWS does not name, the closest AWS type is used and the choice
 * is written down in docs/api.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api_errors.h"

static const struct api_error internal = {500, "InternalFailureException"};

static const struct {
	iotp_rc rc;
	struct api_error e;
} table[] = {
	{IOTP_ERR_INVALID, {400, "InvalidRequestException"}},
	{IOTP_ERR_NOMEM, {500, "InternalFailureException"}},
	{IOTP_ERR_NOT_FOUND, {404, "ResourceNotFoundException"}},
	{IOTP_ERR_EXISTS, {409, "ResourceAlreadyExistsException"}},
	{IOTP_ERR_CONFLICT, {409, "DeleteConflictException"}},
	{IOTP_ERR_VERSION, {409, "VersionConflictException"}},
	{IOTP_ERR_STATE, {406, "CertificateStateException"}},
	{IOTP_ERR_CERT, {400, "CertificateValidationException"}},
	{IOTP_ERR_POLICY, {400, "MalformedPolicyException"}},
	{IOTP_ERR_AUTH, {403, "UnrecognizedClientException"}},
	{IOTP_ERR_DENIED, {403, "AccessDeniedException"}},
	{IOTP_ERR_DB, {500, "InternalFailureException"}},
	{IOTP_ERR_CRYPTO, {500, "InternalFailureException"}},
	{IOTP_ERR_IO, {500, "InternalFailureException"}},
	{IOTP_ERR_TOO_BIG, {413, "RequestEntityTooLargeException"}},
	{IOTP_ERR_LIMIT, {410, "LimitExceededException"}},
	{IOTP_ERR_REGCODE, {400, "RegistrationCodeValidationException"}},
	{IOTP_ERR_THROTTLED, {400, "ThrottlingException"}},
	{IOTP_ERR_CONFIG, {500, "InternalFailureException"}},
	{IOTP_ERR_INTERNAL, {500, "InternalFailureException"}},
	{IOTP_ERR_BUSY, {503, "ServiceUnavailableException"}},
	{IOTP_ERR_TEMPLATE, {400, "ResourceRegistrationFailureException"}},
	{IOTP_ERR_TOKEN, {400, "InvalidRequestException"}},
	{IOTP_ERR_EXPIRED, {400, "InvalidRequestException"}},
	{IOTP_ERR_SIGNATURE, {403, "InvalidSignatureException"}},
	{IOTP_ERR_TIMEOUT, {503, "ServiceUnavailableException"}},
	{IOTP_ERR_UNSUPPORTED, {400, "InvalidRequestException"}},
};

const struct api_error api_error_unknown_operation = {404, "UnknownOperationException"};
const struct api_error api_error_method_not_allowed = {405, "MethodNotAllowedException"};
const struct api_error api_error_missing_auth = {403, "MissingAuthenticationTokenException"};
const struct api_error api_error_too_large = {413, "RequestEntityTooLargeException"};
const struct api_error api_error_unavailable = {503, "ServiceUnavailableException"};

const struct api_error *api_error_for(iotp_rc rc)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (table[i].rc == rc)
			return &table[i].e;
	}
	return &internal;
}

int api_error_is_internal(int status)
{
	return status >= 500;
}

void api_error_client_message(int status, const char *detail, const char *request_id,
                              char *out, size_t size)
{
	if (api_error_is_internal(status) && status != 503)
		snprintf(out, size, "internal error, see server log (request id %s)",
		         request_id != NULL ? request_id : "-");
	else if (api_error_is_internal(status))
		snprintf(out, size, "service unavailable, retry later (request id %s)",
		         request_id != NULL ? request_id : "-");
	else
		snprintf(out, size, "%s", detail != NULL && detail[0] != '\0' ? detail : "error");
}

/* A JSON string of message; bytes that are not valid UTF-8 (a name
 * decoded from %FF, say) become '?' so that the error can still be sent. */
static json_t *safe_string(const char *message)
{
	json_t *j = json_string(message);
	char *copy;

	if (j != NULL)
		return j;
	copy = strdup(message);
	if (copy == NULL)
		return NULL;
	for (char *p = copy; *p != '\0'; p++) {
		if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
			*p = '?';
	}
	j = json_string(copy);
	free(copy);
	return j;
}

iotp_rc api_error_body(const char *message, const json_t *extra, char **out, size_t *len)
{
	json_t *o = json_object();
	char *s = NULL;
	iotp_rc rc = IOTP_ERR_NOMEM;

	if (o == NULL)
		goto out;
	if (extra != NULL && json_is_object(extra) &&
	    json_object_update(o, (json_t *)extra) != 0)
		goto out;
	if (json_object_set_new(o, "message", safe_string(message)) != 0)
		goto out;
	s = json_dumps(o, JSON_COMPACT);
	if (s == NULL)
		goto out;
	*len = strlen(s);
	*out = s;
	rc = IOTP_OK;
out:
	json_decref(o);
	return rc;
}

void api_error_type_header(const char *type, char *out, size_t size)
{
	snprintf(out, size, "%s:", type);
}
