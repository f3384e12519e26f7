/*
 * Internal interfaces of libiotprov-device, shared between its files (the
 * public API is include/iotprov/device.h). Nothing here is exported.
 */
#ifndef IOTP_DEVICE_DEV_H
#define IOTP_DEVICE_DEV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/err.h"
#include "iotprov/device.h"

/* Incoming payload caps. The service keeps replies under 4 KiB; anything
 * over these is a protocol failure, never an unbounded allocation. */
#define DEV_REPLY_MAX 16384
#define DEV_EST_REPLY_MAX 65536
#define DEV_PEM_MAX 65536
#define DEV_CA_MAX (1024 * 1024)   /* a system CA bundle is a few hundred KiB */

/* ------------------------------------------------------------------ */
/* Fault injection: IOTP_DEVICE_CRASH_AT=<step>[#<n>] makes the process
 * _exit(DEV_CRASH_EXIT) the n-th time (default the first) it reaches the
 * named step, to prove that a power cut there leaves a usable identity.
 * A test seam only: without the variable it costs one getenv per process. */
#define DEV_CRASH_EXIT 86
void dev_crash_point(const char *step);
/* Re-reads IOTP_DEVICE_CRASH_AT and resets the hit count (tests that set
 * the variable after the first crash point ran). */
void dev_crash_reload(void);

/* ------------------------------------------------------------------ */
/* Durable files */

/* Replaces dir/name with data: temp file in dir, write, fsync, rename over
 * name, fsync dir. A reader sees the old or the new content, never a mix,
 * also across a power cut. Crash points "<label>.tmp" (temp written and
 * synced, not renamed) and "<label>.renamed" (renamed, directory not yet
 * synced). */
iotp_rc dev_write_durable(const char *dir, const char *name, const char *label,
                          const void *data, size_t len, mode_t mode, struct iotp_err *err);
/* fsync of a directory, so renames and unlinks in it are durable. */
iotp_rc dev_fsync_dir(const char *dir, struct iotp_err *err);
/* dir + "/" + name into out. */
iotp_rc dev_path(const char *dir, const char *name, char *out, size_t size,
                 struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Failures */

/* Fills why (when not NULL) and err; returns rc. */
iotp_rc dev_fail(struct iotp_failure *why, enum iotp_cause cause, int status, const char *code,
                 struct iotp_err *err, iotp_rc rc, const char *fmt, ...) IOTP_PRINTF(7, 8);

/* ------------------------------------------------------------------ */
/* Fleet-provisioning payloads (fpcodec.c), JSON or CBOR. Encoders return a
 * malloc'ed buffer in *out (free it); decoders take len bytes of untrusted
 * input (at most DEV_REPLY_MAX) and fill owned results. */

iotp_rc fp_encode_csr_request(enum iotp_fp_format f, const char *csr, size_t csr_len,
                              uint8_t **out, size_t *len, struct iotp_err *err);
iotp_rc fp_encode_register_request(enum iotp_fp_format f, const char *token,
                                   const struct iotp_param *params, size_t nparams,
                                   uint8_t **out, size_t *len, struct iotp_err *err);
/* accepted of create / create-from-csr: certificateId (64 hex),
 * certificatePem, certificateOwnershipToken required, privateKey when
 * want_key (and refused when not: a CSR reply carrying a key is wrong). */
iotp_rc fp_decode_cert_accepted(enum iotp_fp_format f, const void *data, size_t len,
                                int want_key, struct iotp_fleet_cert *out,
                                struct iotp_err *err);
/* accepted of provision: thingName (may be absent), deviceConfiguration
 * (flat map of strings, may be absent: "{}"). */
iotp_rc fp_decode_register_accepted(enum iotp_fp_format f, const void *data, size_t len,
                                    struct iotp_fleet_thing *out, struct iotp_err *err);
/* rejected: statusCode, errorCode, errorMessage (all optional; missing
 * ones read 0 / ""). msg gets the errorMessage, truncated to msg_size. */
iotp_rc fp_decode_rejected(enum iotp_fp_format f, const void *data, size_t len, int *status,
                           char code[IOTP_ERROR_CODE_MAX], char *msg, size_t msg_size,
                           struct iotp_err *err);

/* A tiny CBOR subset used by the codec (cbor.c): maps with text keys whose
 * values are text, integers or maps of text. Decoding is bounded by the
 * input length and nesting depth; it never allocates. */
struct cbor_cur {
	const uint8_t *p;
	const uint8_t *end;
	int depth;
};
enum cbor_kind { CBOR_UINT, CBOR_NEGINT, CBOR_BYTES, CBOR_TEXT, CBOR_ARRAY, CBOR_MAP,
	         CBOR_TAG, CBOR_SIMPLE };
/* Reads one item head: kind, argument (length/value; UINT64_MAX for an
 * indefinite length) and leaves the cursor after the head. */
iotp_rc cbor_head(struct cbor_cur *c, enum cbor_kind *kind, uint64_t *arg,
                  struct iotp_err *err);
/* Skips one complete item (with its children). */
iotp_rc cbor_skip(struct cbor_cur *c, struct iotp_err *err);
/* Reads a text string (definite or indefinite) into a malloc'ed,
 * NUL-terminated copy; embedded NULs are refused. */
iotp_rc cbor_text(struct cbor_cur *c, char **out, size_t *len, struct iotp_err *err);
/* Encoding into a struct buf. */
struct buf;
iotp_rc cbor_put_head(struct buf *b, unsigned major, uint64_t arg);
iotp_rc cbor_put_text(struct buf *b, const char *s, size_t len);

/* ------------------------------------------------------------------ */
/* EST replies (est.c): base64 of a certs-only PKCS#7 (whitespace allowed).
 * Returns the certificate whose public key equals match (when not NULL;
 * else the first) as PEM, followed by the other certificates. */
iotp_rc est_parse_certs(const void *body, size_t len, EVP_PKEY *match, char **pem,
                        size_t *pem_len, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* PKCS#11 (p11.c, p11uri.c) */

#define P11_LABEL_MAX 128
#define P11_ID_MAX 64

struct p11_uri {
	char token[33];                 /* CK_TOKEN_INFO label: 32 chars */
	char object[P11_LABEL_MAX + 1];
	unsigned char id[P11_ID_MAX];
	size_t id_len;                  /* 0: no id given */
	char module_path[1024];         /* "" when not given */
	char pin[256];                  /* secret; "" when none */
	int has_pin;
	char pin_source[1024];          /* "" when not given */
};
/* Parses an RFC 7512 pkcs11: URI (token and object required). The result
 * holds the PIN: wipe it with p11_uri_cleanup. */
iotp_rc p11_uri_parse(const char *uri, struct p11_uri *out, struct iotp_err *err);
void p11_uri_cleanup(struct p11_uri *u);
/* The module to load: module-path, else $IOTP_PKCS11_MODULE, else SoftHSM2. */
const char *p11_uri_module(const struct p11_uri *u);
/* The PIN: pin-value, else pin-source (file:PATH or env:VAR), else
 * $IOTP_PKCS11_PIN; "" with IOTP_OK when there is none. */
iotp_rc p11_uri_pin(const struct p11_uri *u, char *out, size_t size, struct iotp_err *err);
/* The URI without its PIN (pin-value removed), for display and storage of
 * what was used. */
iotp_rc p11_uri_public(const struct p11_uri *u, char *out, size_t size, struct iotp_err *err);

struct p11_key;
iotp_rc p11_generate(const struct p11_uri *u, enum iotp_key_alg alg, struct iotp_err *err);
iotp_rc p11_open(const struct p11_uri *u, struct p11_key **out, EVP_PKEY **pkey,
                 struct iotp_err *err);
iotp_rc p11_attributes(struct p11_key *k, struct iotp_key_info *info, struct iotp_err *err);
iotp_rc p11_remove(const struct p11_uri *u, struct iotp_err *err);
void p11_close(struct p11_key *k);

/* ------------------------------------------------------------------ */
/* Keystore internals */

/* The URI the keystore was opened with, PIN removed ("" for memory). */
const char *keystore_uri(const iotp_keystore *ks);
enum iotp_key_backend keystore_backend(const iotp_keystore *ks);

/* ------------------------------------------------------------------ */
/* Transport handle (transport.c) */

struct iotp_transport {
	const struct iotp_transport_ops *ops;
	void *impl;
};

/* ------------------------------------------------------------------ */
/* Small helpers */

/* JSON object text of a jansson value (compact, sorted keys); malloc'ed. */
char *dev_json_text(const json_t *v);
/* Sleeps ms milliseconds (EINTR-safe). */
void dev_sleep_ms(uint32_t ms);

#endif
