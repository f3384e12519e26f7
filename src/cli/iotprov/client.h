/*
 * The iotprov API client: signed HTTPS requests to iotprovd with libcurl
 * (SigV4 by libcurl's CURLOPT_AWS_SIGV4, service "iot"; the server's
 * certificate verified against the data directory's ca-bundle.pem or
 * AWS_CA_BUNDLE), JSON answers parsed with jansson, every page of a list
 * followed. Commands that call the API take the same two ways in:
 *
 *   --data-dir DIR     endpoint from DIR/iotprov.conf ([api] listen),
 *                      credentials from DIR/admin-credentials (profile
 *                      iotprov), trust from DIR/ca-bundle.pem;
 *   --endpoint-url URL credentials from AWS_ACCESS_KEY_ID and
 *                      AWS_SECRET_ACCESS_KEY, trust from AWS_CA_BUNDLE (else
 *                      the system's), region from AWS_REGION or
 *                      AWS_DEFAULT_REGION (else us-east-1). With --data-dir
 *                      too, only the endpoint comes from the URL.
 *
 * Neither given: --data-dir ./iotprov-data. Not thread-safe: one client per
 * thread.
 */
#ifndef IOTP_CLI_CLIENT_H
#define IOTP_CLI_CLIENT_H

#include <limits.h>
#include <stddef.h>

#include <jansson.h>

#include "common/err.h"

#define CLIENT_MAX_RESPONSE (16 * 1024 * 1024)

struct api_client {
	char endpoint[512];      /* "https://host:port", no trailing slash */
	char endpoint_from[PATH_MAX + 64]; /* for messages: where it came from */
	char ca_file[PATH_MAX];  /* "" = the system's trust store */
	char creds_from[PATH_MAX + 64];
	char key_id[128];
	char secret[128];        /* wiped by client_close */
	char region[64];
	void *curl;              /* CURL *, owned */
};

/* Resolves endpoint, credentials and trust as the header describes.
 * data_dir and endpoint_url may be NULL. Errors say what is missing and how
 * to provide it. Release with client_close(). */
iotp_rc client_open(struct api_client *c, const char *data_dir, const char *endpoint_url,
                    struct iotp_err *err);
/* NULL-safe; wipes the secret. */
void client_close(struct api_client *c);

/* One query parameter; lists of them are sorted by name and encoded
 * (RFC 3986) by the client, as SigV4's canonical query wants. */
struct client_param {
	const char *name;
	const char *value; /* NULL: left out */
};

/* Calls operation (its AWS name, for messages) with method on path
 * (already percent-encoded) and the query params; body (may be NULL) is
 * sent as application/json. On a 2xx answer *out receives the parsed JSON
 * object (an empty object for an empty body; the caller json_decref()s
 * it). Failures are explained in err: cannot connect (is `iotprov up`
 * running?), TLS verification, the server's AWS error type and message.
 * Codes: IOTP_ERR_IO (transport), IOTP_ERR_AUTH (401, 403 signature),
 * IOTP_ERR_DENIED (403 access), IOTP_ERR_NOT_FOUND (404), IOTP_ERR_INVALID
 * (other 4xx, or an answer that is not JSON), IOTP_ERR_INTERNAL (5xx). */
iotp_rc client_call(struct api_client *c, const char *method, const char *path,
                    const struct client_param *params, size_t nparams, const char *operation,
                    const char *body, json_t **out, struct iotp_err *err);

/* A list operation's paging: the query parameter of the page size and of
 * the token, and the answer's members of the items and of the next token. */
struct client_pager {
	const char *operation;     /* "ListThings" */
	const char *path;          /* "/things" */
	const char *size_param;    /* "maxResults" */
	const char *size_value;    /* "250" */
	const char *token_param;   /* "nextToken" */
	const char *items_member;  /* "things" */
	const char *next_member;   /* "nextToken" */
};
/* Calls the list operation page after page until the answer has no next
 * token; *items receives every item of every page in order (a new JSON
 * array; json_decref it). extra (may be NULL) are filters sent with every
 * page. A server that repeats a token is an error, not a loop. */
iotp_rc client_list_all(struct api_client *c, const struct client_pager *pager,
                        const struct client_param *extra, size_t nextra, json_t **items,
                        struct iotp_err *err);

#endif
