/*
 * Hand-written JSON and CBOR encoding into a struct buf, for the few
 * replies that carry a private key (CreateKeysAndCertificate,
 * CreateProvisioningClaim, the MQTT create reply). A general encoder
 * (jansson, libcbor) copies every string into allocations it frees without
 * wiping; writing the bytes straight into one buf leaves a single copy that
 * the caller wipes (buf_cleanup_secure, which also covers growth).
 *
 * Strings must be UTF-8: they are copied as they are, with the JSON escapes
 * for '"', '\\' and control characters. Nothing here logs or keeps data.
 */
#ifndef IOTP_ENC_H
#define IOTP_ENC_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Appends s as a JSON string literal, quotes included. IOTP_ERR_TOO_BIG past
 * the buffer's cap, IOTP_ERR_NOMEM. */
iotp_rc enc_json_string(struct buf *b, const char *s);

/* Appends the head of a CBOR data item: major type (0..7) and its argument
 * n in the shortest form (RFC 8949 section 3). */
iotp_rc enc_cbor_head(struct buf *b, unsigned major, uint64_t n);

/* Appends s as a CBOR text string (major type 3, definite length). */
iotp_rc enc_cbor_text(struct buf *b, const char *s);

/* Appends a flat map of string members: n names and values alternating in
 * kv (kv[2i] the name, kv[2i+1] the value), as a compact JSON object when
 * cbor is 0, as a definite-length CBOR map with text keys otherwise. */
iotp_rc enc_string_map(struct buf *b, int cbor, const char *const *kv, size_t n);

#endif
