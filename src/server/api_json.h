/*
 * Shared helpers of the API route files: reading members of a JSON request
 * body (the parsers of api_parse.h are built on them, so routes and fuzz
 * targets go through the same checks), reading the paging parameters of a
 * list operation, and writing responses.
 *
 * Conventions: "absent" means the member is missing or JSON null (botocore
 * never sends null, other clients may). A present member of the wrong type
 * or shape is IOTP_ERR_INVALID with a message naming it, in the words a
 * client can act on ("thingTypeName must be a string"). Strings are
 * borrowed from the JSON value and must outlive the use; a string holding a
 * NUL character is refused, since the core works on C strings.
 */
#ifndef IOTP_API_JSON_H
#define IOTP_API_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "core/registry.h"
#include "server/router.h"

/* IOTP_ERR_INVALID naming the first member of obj that is not in names (n
 * entries): "unknown member 'x' in the request body" (what: "the request
 * body", "thingTypeProperties"...). Refusing unknown members turns a typo
 * into an error instead of a silently ignored setting. */
iotp_rc api_json_only(const json_t *obj, const char *what, const char *const *names, size_t n,
                      struct iotp_err *err);

/* A string member of at most max bytes (0: no cap). Absent: *out unchanged,
 * IOTP_OK unless required. */
iotp_rc api_json_str(const json_t *obj, const char *name, int required, size_t max,
                     const char **out, struct iotp_err *err);
/* A boolean member. Absent: *out unchanged. */
iotp_rc api_json_bool(const json_t *obj, const char *name, int *out, struct iotp_err *err);
/* An integer member in [min, max]. Absent: *out unchanged. */
iotp_rc api_json_int(const json_t *obj, const char *name, int64_t min, int64_t max,
                     int64_t *out, struct iotp_err *err);
/* An object member. Absent: *out unchanged, IOTP_OK unless required. */
iotp_rc api_json_obj(const json_t *obj, const char *name, int required, const json_t **out,
                     struct iotp_err *err);
/* An object of string values (attributes): checks the JSON shape only; the
 * registry checks names and values. */
iotp_rc api_json_string_map(const json_t *map, const char *name, struct iotp_err *err);
/* tags: absent or an empty list is accepted; tags themselves are not
 * supported (IOTP_ERR_UNSUPPORTED), rather than silently dropped. */
iotp_rc api_json_no_tags(const json_t *obj, struct iotp_err *err);

/* The paging parameters of a list operation from the query: token_name
 * ("nextToken" or "marker") and size_name ("maxResults" or "pageSize",
 * 1..REGISTRY_PAGE_MAX). The token is borrowed from rq. */
iotp_rc api_page_from_query(const struct api_request *rq, const char *token_name,
                            const char *size_name, struct registry_page *out,
                            struct iotp_err *err);

/* Sets a 200 JSON response. body may be NULL when building it failed (a
 * jansson allocation or a string that is not UTF-8): that is
 * IOTP_ERR_NOMEM with err set, never an empty {} answer. Takes the
 * reference to body. */
iotp_rc api_reply(struct api_response *resp, json_t *body, struct iotp_err *err);

/* Sets a 200 JSON response that carries a private key, written by hand so
 * that the key is never copied into jansson or an unwiped buffer:
 *   {<members>, "keyPair": {"PublicKey": public_pem, "PrivateKey": private_pem}
 *    [, <num_name>: num]}
 * members: n name/value pairs of strings alternating (enc_string_map);
 * num_name NULL leaves the number out. IOTP_ERR_NOMEM with err set. */
iotp_rc api_reply_with_key(struct api_response *resp, const char *const *members, size_t n,
                           const char *public_pem, const char *private_pem,
                           const char *num_name, int64_t num, struct iotp_err *err);

/* Adds name: value to obj when value is neither NULL nor "". Returns 0, or
 * -1 when jansson failed (out of memory, not UTF-8). */
int api_json_set_opt(json_t *obj, const char *name, const char *value);

/* Adds name: "<v in decimal>" (ids the model types as strings: policy
 * versions, generationId). Returns 0 or -1. */
int api_json_set_num_str(json_t *obj, const char *name, int64_t v);

/* Appends item (reference taken) to *arr. On any failure (item NULL, *arr
 * NULL, out of memory) both are released and *arr becomes NULL, so a loop
 * can push blindly and check *arr once at the end. */
void api_json_push(json_t **arr, json_t *item);

/* {key: items, token_key: next} (next left out when NULL): the shape of
 * every paged list answer. Takes the reference to items; NULL on failure
 * (items NULL included). */
json_t *api_page_json(const char *key, json_t *items, const char *token_key, const char *next);

/* A JSON array of the strings (copied); NULL on failure. */
json_t *api_json_str_array(char *const *items, size_t count);

/* For IOTP_ERR_EXISTS: records resourceId and resourceArn (either may be
 * NULL or "") as extra members of the error body the server sends. Failure
 * to record is ignored: the error still goes out, without them. */
void api_exists_extra(struct api_response *resp, const char *id, const char *arn);

/* As api_exists_extra for a certificate registration: the id and ARN of
 * the certificate in pem (resource "cert" or "cacert"). Nothing is added
 * when pem does not parse. */
void api_exists_extra_pem(const struct api_request *rq, struct api_response *resp,
                          const char *pem, const char *resource);

/* {key: value}. Takes the reference to value; NULL on failure (value NULL
 * included). */
json_t *api_json_wrap(const char *key, json_t *value);

/* A full ARN for a resource part ("cert/<id>") into out. */
iotp_rc api_arn(const struct api_request *rq, const char *resource, char *out, size_t size,
                struct iotp_err *err);

#endif
