/*
 * AWS Signature Version 4 for the control-plane API: parsing the
 * Authorization header, building the canonical request exactly as botocore
 * does for rest-json services (COMPAT.md), and checking or producing a
 * signature.
 *
 * Nothing here touches the network, the store or the clock: callers pass the
 * request as received, the time and the secret. So the same code verifies in
 * iotprovd, signs in the iotprov CLI and load tools, and runs under the
 * fuzzer. Memory use is bounded by the size of the request (the canonical
 * request goes into a capped struct buf).
 *
 * Canonical request, as botocore builds it:
 *   METHOD \n
 *   path with dot segments and repeated slashes removed, then every byte
 *     except A-Z a-z 0-9 - . _ ~ / percent-encoded once more
 *     ("/things/a%3Ab" becomes "/things/a%253Ab"); "" becomes "/" \n
 *   query: each name=value decoded, then RFC 3986 encoded, sorted by name
 *     then value, joined with & \n
 *   one "name:value\n" per signed header, values trimmed with inner runs of
 *     blanks collapsed, repeated headers joined with "," \n
 *   the signed header names joined with ; \n
 *   lowercase hex SHA-256 of the body (computed here, never trusted from
 *     x-amz-content-sha256, which must match when present)
 */
#ifndef IOTP_SIGV4_H
#define IOTP_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_KEY_ID_MAX 128
#define SIGV4_REGION_MAX 63
#define SIGV4_SERVICE_MAX 63
#define SIGV4_MAX_SIGNED_HEADERS 32
#define SIGV4_HEADER_NAME_MAX 64
#define SIGV4_AUTH_HEADER_MAX 4096 /* longest Authorization value accepted */
#define SIGV4_CANONICAL_MAX (256 * 1024) /* cap on a canonical request */

/* The parsed Authorization header. Every string is NUL-terminated and
 * validated: the key id is [A-Za-z0-9]{1,128}, the date 8 digits, region and
 * service [a-z0-9-]{1,63}, the signature 64 lowercase hex digits, and the
 * signed header names lowercase, strictly ascending (so unique), with "host"
 * among them. */
struct sigv4_auth {
	char key_id[SIGV4_KEY_ID_MAX + 1];
	char date[9];                          /* YYYYMMDD of the scope */
	char region[SIGV4_REGION_MAX + 1];
	char service[SIGV4_SERVICE_MAX + 1];
	char signature[65];
	int nsigned;
	char signed_headers[SIGV4_MAX_SIGNED_HEADERS][SIGV4_HEADER_NAME_MAX + 1];
};

/* One request header as received (name in any case; value as received). */
struct sigv4_header {
	const char *name;
	const char *value;
};

/* A request as received or about to be sent. target is the raw
 * request-target: path, then optionally '?' and the query, exactly as on the
 * wire. All pointers are borrowed. */
struct sigv4_request {
	const char *method;
	const char *target;
	const struct sigv4_header *headers;
	size_t nheaders;
	const void *body;
	size_t body_len;
};

/* Parses an Authorization header value:
 *   AWS4-HMAC-SHA256 Credential=ID/DATE/REGION/SERVICE/aws4_request,
 *     SignedHeaders=a;b;c, Signature=HEX
 * (parameters in any order, each exactly once, separated by commas and
 * optional blanks). IOTP_ERR_AUTH with a message that says what is wrong
 * (never echoing the signature) otherwise. *out written only on success. */
iotp_rc sigv4_parse_authorization(const char *value, struct sigv4_auth *out,
                                  struct iotp_err *err);

/* First header of that name (case-insensitive), or NULL. */
const char *sigv4_header_get(const struct sigv4_request *req, const char *name);

/* The request time from x-amz-date (YYYYMMDD'T'HHMMSS'Z') or, without it,
 * from Date (RFC 7231 IMF-fixdate, GMT also written "+0000" or "-0000" as
 * botocore does). amzdate receives the time in the first
 * form, which is what the string to sign carries; *epoch the same time in
 * seconds. IOTP_ERR_AUTH when neither header is present or parses. */
iotp_rc sigv4_request_time(const struct sigv4_request *req, char amzdate[17], int64_t *epoch,
                           struct iotp_err *err);

/* The canonical URI of a raw path (no query) into out (appended). */
iotp_rc sigv4_canonical_uri(const char *path, size_t len, struct buf *out);
/* The canonical query of a raw query string (no '?') into out (appended). */
iotp_rc sigv4_canonical_query(const char *query, size_t len, struct buf *out);

/* The whole canonical request for the headers named in auth, appended to
 * out (give it a cap, e.g. SIGV4_CANONICAL_MAX). IOTP_ERR_SIGNATURE when a
 * signed header is missing from the request or x-amz-content-sha256 does not
 * match the body; IOTP_ERR_TOO_BIG over the cap. */
iotp_rc sigv4_canonical_request(const struct sigv4_request *req, const struct sigv4_auth *auth,
                                struct buf *out, struct iotp_err *err);

/* HMAC signature (64 lowercase hex + NUL) of the request for the scope in
 * auth and the time amzdate, computed with secret. auth->signature is
 * ignored. */
iotp_rc sigv4_compute(const struct sigv4_request *req, const struct sigv4_auth *auth,
                      const char *amzdate, const char *secret, char out[65],
                      struct iotp_err *err);

/* Checks the scope against what this server accepts: the terminator is
 * aws4_request (checked by the parser), region equals `region`, service is
 * "iot" or "execute-api", the scope date equals the request date, and the
 * request time is within max_skew seconds of now. IOTP_ERR_SIGNATURE with an
 * AWS-like message otherwise ("Signature expired: ..."). */
iotp_rc sigv4_check_scope(const struct sigv4_auth *auth, const char *amzdate,
                          int64_t request_time, const char *region, int64_t now,
                          int64_t max_skew, struct iotp_err *err);

/* Verifies auth->signature for req with secret in constant time:
 * IOTP_OK or IOTP_ERR_SIGNATURE. */
iotp_rc sigv4_verify(const struct sigv4_request *req, const struct sigv4_auth *auth,
                     const char *amzdate, const char *secret, struct iotp_err *err);

/* Signs a request as a client would: every header in req->headers is
 * signed (so pass exactly those you send, including host and x-amz-date,
 * which must hold amzdate), and the Authorization value is written to out.
 * For the iotprov CLI, load generators and tests. */
iotp_rc sigv4_sign(const struct sigv4_request *req, const char *key_id, const char *secret,
                   const char *region, const char *service, const char *amzdate,
                   char *out, size_t outsize, struct iotp_err *err);

/* Formats an epoch time as YYYYMMDD'T'HHMMSS'Z'. */
void sigv4_format_amzdate(int64_t t, char out[17]);

#endif
