/*
 * The wire side of the fleet-provisioning MQTT API: which topics are
 * requests, how their JSON or CBOR payloads decode, and how replies encode.
 * Pure functions over bytes (no store, no broker), so that the fuzz target
 * tests/fuzz/fuzz_mqtt_payload.c exercises exactly what the plugin runs on
 * untrusted input.
 *
 * Topics (COMPAT.md):
 *   $aws/certificates/create/{json,cbor}
 *   $aws/certificates/create-from-csr/{json,cbor}
 *   $aws/provisioning-templates/<name>/provision/{json,cbor}
 * Replies go to the request topic + "/accepted" or "/rejected".
 */
#ifndef IOTP_FLEET_PAYLOAD_H
#define IOTP_FLEET_PAYLOAD_H

#include <stddef.h>

#include <jansson.h>

#include "common/err.h"

#define FLEET_PAYLOAD_MAX 16384   /* request payloads larger are rejected */
#define FLEET_TEMPLATE_MAX 36     /* provisioning template names */
#define FLEET_MAX_PARAMETERS 64   /* entries of "parameters" */
#define FLEET_MAX_DEPTH 8         /* nesting accepted in a CBOR payload */

enum fleet_op {
	FLEET_CREATE = 0,     /* $aws/certificates/create */
	FLEET_CREATE_CSR,     /* $aws/certificates/create-from-csr */
	FLEET_PROVISION       /* $aws/provisioning-templates/<name>/provision */
};

enum fleet_fmt {
	FLEET_JSON = 0,
	FLEET_CBOR
};

struct fleet_topic {
	enum fleet_op op;
	enum fleet_fmt fmt;
	char template_name[FLEET_TEMPLATE_MAX + 1]; /* FLEET_PROVISION only */
	char base[160];   /* the request topic, to which replies append */
};

/* 1 when topic is one of the request topics (out filled), 0 otherwise.
 * A provision topic with a template name that is not [0-9A-Za-z_-]{1,36}
 * is not a request topic. */
int fleet_topic_parse(const char *topic, struct fleet_topic *out);

/* A decoded request. Owned strings; parameters an object of strings. */
struct fleet_request {
	char *csr;          /* certificateSigningRequest (FLEET_CREATE_CSR) */
	char *token;        /* certificateOwnershipToken (FLEET_PROVISION) */
	json_t *parameters; /* FLEET_PROVISION: never NULL on success */
};
void fleet_request_cleanup(struct fleet_request *r);

/*
 * Decodes and checks a request payload for topic t. An empty payload is a
 * request without members (valid for create; a missing required member for
 * the others). IOTP_ERR_INVALID with a message fit for the client
 * ("payload is not valid CBOR", "certificateOwnershipToken is required"...),
 * IOTP_ERR_TOO_BIG over FLEET_PAYLOAD_MAX. Unknown members are ignored, as
 * AWS does. *out written only on success.
 */
iotp_rc fleet_request_decode(const struct fleet_topic *t, const void *data, size_t len,
                             struct fleet_request *out, struct iotp_err *err);

/* Converts a CBOR item (a whole payload) into JSON: maps with text keys,
 * arrays, text strings, integers, booleans and null; anything else (byte
 * strings, tags, floats, non-text keys, nesting over FLEET_MAX_DEPTH) is
 * IOTP_ERR_INVALID. *out is a new reference. */
iotp_rc fleet_cbor_to_json(const void *data, size_t len, json_t **out, struct iotp_err *err);

/* Encodes obj (objects, arrays, strings, integers, booleans, null) as
 * compact JSON or as CBOR (definite lengths, text-string keys). *out is
 * malloc'ed (free()). */
iotp_rc fleet_encode(enum fleet_fmt fmt, const json_t *obj, void **out, size_t *len,
                     struct iotp_err *err);

/* Encodes a flat object of string members (kv: n names and values
 * alternating) as fmt wants, written by hand (common/enc.h) so that no
 * unwiped copy is left behind: the create reply carries a private key.
 * *out is malloc'ed; the caller wipes and frees it. */
iotp_rc fleet_encode_strings(enum fleet_fmt fmt, const char *const *kv, size_t n, void **out,
                             size_t *len, struct iotp_err *err);

/* The rejected reply object {statusCode, errorCode, errorMessage} (new
 * reference, NULL on allocation failure). */
json_t *fleet_rejected(int status, const char *code, const char *message);

#endif
