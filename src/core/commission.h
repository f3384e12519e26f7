/*
 * Network commissioning: the session an installer runs with a factory-fresh
 * device to give it a network and, optionally, a trusted-user claim with
 * which it provisions itself. Transport-free: the device transports
 * (src/device/commission*.c: local web page, serial console, removable
 * media, later BLE) and the installer's CLI move the lines; everything that
 * decides lives here, so every transport behaves the same.
 *
 * Wire format (docs/commissioning.md has the full grammar): one JSON object
 * per line, at most COMMISSION_LINE_MAX bytes, binary fields in base64
 * (RFC 4648, padded). The installer asks, the device answers each message
 * with exactly one message:
 *   hello                      -> params {sid, device, salt, iter}
 *   pake1 {sid, X}             -> pake2 {sid, Y, cV}          (SPAKE2+)
 *   pake3 {sid, cP}            -> ok {sid}
 *   sealed {sid, seq, ct}      -> sealed {sid, seq, ct}        (AES-128-GCM)
 *   anything wrong             -> error {code, message[, retry_ms]}
 * Sealed payloads (inner messages): network -> network_result, provision ->
 * provision_result, done -> bye. A network that did not join may be sent
 * again, corrected, in the same session.
 *
 * The removable-media transport cannot answer at once: the device publishes
 * a device-hello {sid, device, salt, iter}; the installer writes
 * commission-1 (a pake1 {sid, X}), the device answers device-reply (a pake2
 * {sid, Y, cV}); only once cV checks does the installer write the
 * commission file {sid, cP, msgs[]}, answered by one commission-result
 * {sid, cV, msgs[]} (see commission_device_file_*).
 *
 * Security (RFC 9383 SPAKE2+, P-256): the setup code never travels; the
 * device holds only the verifier record (w0, L). An eavesdropper learns
 * nothing; each pake1 is one online guess, counted before the answer is
 * sent and forgiven only when the installer's confirmation checks, with an
 * exponential delay after each failure and a lockout after max_attempts.
 * Sealed messages use per-direction keys from K_shared and strictly
 * increasing sequence numbers: a replayed, reordered or altered message is
 * refused without being acted on.
 *
 * Conventions: iotp_rc + struct iotp_err; out-parameters written only on
 * success; objects released with their _free (NULL is a no-op) or structs
 * with their _cleanup (safe on a zeroed struct). No function here is
 * thread-safe on a shared object.
 */
#ifndef IOTP_COMMISSION_H
#define IOTP_COMMISSION_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/err.h"
#include "core/spake2p.h"

#define COMMISSION_VERSION 1
#define COMMISSION_LINE_MAX (64 * 1024)    /* one message, newline excluded */
#define COMMISSION_FILE_MAX (256 * 1024)   /* a commission file */
#define COMMISSION_CONTEXT "iotprov-commission-v1"
#define COMMISSION_PROVER_ID "installer"
#define COMMISSION_SID_LEN 16              /* bytes; 32 hex on the wire */
#define COMMISSION_SALT_MIN 16
#define COMMISSION_SALT_MAX 32
#define COMMISSION_ITER_DEFAULT 20000
#define COMMISSION_DEVICE_ID_MAX 64
#define COMMISSION_SSID_MAX 32             /* bytes (IEEE 802.11) */
#define COMMISSION_PSK_MIN 8               /* WPA passphrase, printable ASCII */
#define COMMISSION_PSK_MAX 64              /* 63 chars, or 64 hex digits */
#define COMMISSION_REASON_MAX 256
#define COMMISSION_THING_MAX 128
#define COMMISSION_FILE_MSGS_MAX 8         /* inner messages in one file */
#define COMMISSION_SETUP_CODE_MIN 8
#define COMMISSION_SETUP_CODE_MAX 64

/* ------------------------------------------------------------------ */
/* Outer messages (commission_msg.c)                                   */

enum commission_type {
	CM_HELLO = 1,
	CM_PARAMS,
	CM_PAKE1,
	CM_PAKE2,
	CM_PAKE3,
	CM_OK,
	CM_SEALED,
	CM_ERROR,
	CM_DEVICE_HELLO,   /* removable media: the device's share first */
	CM_FILE,           /* removable media: the installer's whole session */
	CM_FILE_RESULT     /* removable media: the device's answers */
};

struct commission_sealed {
	uint64_t seq;
	uint8_t *ct;       /* owned: ciphertext || 16-byte tag */
	size_t ct_len;
};

/* A decoded outer message. Which fields are set depends on type; the rest
 * stay zero. */
struct commission_msg {
	enum commission_type type;
	int version;
	char sid[2 * COMMISSION_SID_LEN + 1];         /* lowercase hex */
	char device[COMMISSION_DEVICE_ID_MAX + 1];    /* params, device-hello */
	uint8_t salt[COMMISSION_SALT_MAX];
	size_t salt_len;
	uint32_t iterations;
	uint8_t share[SPAKE2P_POINT_LEN];             /* X or Y */
	int has_share;
	uint8_t confirm[SPAKE2P_HASH_LEN];            /* cP or cV */
	int has_confirm;
	struct commission_sealed sealed;              /* CM_SEALED */
	struct commission_sealed *msgs;               /* owned: CM_FILE(_RESULT) */
	size_t n_msgs;
	char code[32];                                /* CM_ERROR */
	char message[COMMISSION_REASON_MAX];
	int64_t retry_ms;                             /* CM_ERROR, -1 when absent */
};

/* Parses one line (len bytes, no NUL needed, a trailing newline allowed).
 * Unknown types, missing or mistyped fields, bad base64, wrong lengths,
 * duplicate keys, over COMMISSION_LINE_MAX (COMMISSION_FILE_MAX for
 * commission files): IOTP_ERR_INVALID (TOO_BIG for size) with a message
 * naming the field. */
iotp_rc commission_msg_parse(const char *line, size_t len, struct commission_msg *out,
                             struct iotp_err *err);
/* Appends the message as one JSON line without the newline. */
iotp_rc commission_msg_format(const struct commission_msg *m, struct buf *out,
                              struct iotp_err *err);
void commission_msg_cleanup(struct commission_msg *m);
/* An error message line: code is one of the COMMISSION_E_* strings. */
iotp_rc commission_error_format(const char *code, const char *message, int64_t retry_ms,
                                struct buf *out, struct iotp_err *err);

/* Error codes on the wire (stable: the web page and scripts match them). */
#define COMMISSION_E_BAD_REQUEST "bad_request"  /* malformed or unexpected */
#define COMMISSION_E_AUTH "auth"                /* wrong setup code */
#define COMMISSION_E_THROTTLED "throttled"      /* wait retry_ms */
#define COMMISSION_E_LOCKED "locked"            /* too many wrong codes */
#define COMMISSION_E_BUSY "busy"                /* another session is open */
#define COMMISSION_E_SESSION "session"          /* unknown or expired sid */
#define COMMISSION_E_REPLAY "replay"            /* sequence number reused */
#define COMMISSION_E_INTEGRITY "integrity"      /* authentication tag wrong */
#define COMMISSION_E_STALE "stale"              /* file for another device-hello */
#define COMMISSION_E_INTERNAL "internal"

/* Base64 (RFC 4648 section 4, padded), exposed for the transports. */
iotp_rc commission_b64_encode(const uint8_t *p, size_t n, struct buf *out, struct iotp_err *err);
/* Strict: no whitespace, canonical padding. *out is malloc'ed (free()). */
iotp_rc commission_b64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len,
                              struct iotp_err *err);

/* Sets key in o to the base64 of p as a JSON string (the encoder's
 * scratch buffer is wiped: p may be a secret, the verifier's w0). */
iotp_rc commission_json_set_b64(json_t *o, const char *key, const uint8_t *p, size_t n,
                                struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Inner (sealed) messages                                             */

enum commission_inner_type {
	CMI_NETWORK = 1,
	CMI_NETWORK_RESULT,
	CMI_PROVISION,
	CMI_PROVISION_RESULT,
	CMI_DONE,
	CMI_BYE,
	CMI_ERROR
};

/* Network credentials. ssid: 1..32 bytes of UTF-8 without control
 * characters; psk: empty (open network), 8..63 printable ASCII, or 64 hex
 * digits. wired: neither is used. */
struct commission_network {
	int wired;
	char ssid[COMMISSION_SSID_MAX + 1];
	char psk[COMMISSION_PSK_MAX + 1];   /* secret: wiped on cleanup */
};

/* A trusted-user claim and what provisioning with it needs. All owned. */
struct commission_claim {
	char *cert_pem;
	char *key_pem;                      /* secret: wiped on cleanup */
	char *ca_pem;                       /* may be NULL: the device's own */
	char *endpoint;                     /* "host:port", may be NULL */
	char template_name[37];
	json_t *parameters;                 /* object of strings, may be NULL */
};

struct commission_inner {
	enum commission_inner_type type;
	struct commission_network net;      /* CMI_NETWORK */
	struct commission_claim claim;      /* CMI_PROVISION */
	int ok;                             /* joined / provisioned */
	char reason[COMMISSION_REASON_MAX]; /* results and CMI_ERROR */
	char thing[COMMISSION_THING_MAX + 1];
	char cert_id[65];
};

/* Validates as documented on each struct. *out owns what it holds. */
iotp_rc commission_inner_parse(const uint8_t *p, size_t len, struct commission_inner *out,
                               struct iotp_err *err);
iotp_rc commission_inner_format(const struct commission_inner *in, struct buf *out,
                                struct iotp_err *err);
void commission_inner_cleanup(struct commission_inner *in);
/* Checks a network as commission_inner_parse would. */
iotp_rc commission_network_validate(const struct commission_network *net, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* The sealed channel (commission_seal.c)                              */

struct commission_channel {
	uint8_t sid[COMMISSION_SID_LEN];
	uint8_t key_tx[16], key_rx[16];    /* AES-128-GCM */
	uint64_t seq_tx, seq_rx;           /* next to send / expected */
	int ready;
};

/* Keys: HKDF-SHA256(salt = sid, ikm = K_shared, info = COMMISSION_CONTEXT
 * " installer->device" or " device->installer"), 16 bytes each. */
iotp_rc commission_channel_init(struct commission_channel *ch, int is_device,
                                const uint8_t k_shared[SPAKE2P_HASH_LEN],
                                const uint8_t sid[COMMISSION_SID_LEN], struct iotp_err *err);
/* Encrypts pt with the next sequence number into out (ct owned by out). */
iotp_rc commission_channel_seal(struct commission_channel *ch, const void *pt, size_t len,
                                struct commission_sealed *out, struct iotp_err *err);
/* Decrypts in: IOTP_ERR_STATE when in->seq is not the expected one
 * (replayed or reordered), IOTP_ERR_AUTH when the tag does not verify;
 * either way nothing changes. On success *pt (malloc'ed, NUL-terminated;
 * the caller wipes and frees) and the expected sequence advances. */
iotp_rc commission_channel_open(struct commission_channel *ch, const struct commission_sealed *in,
                                uint8_t **pt, size_t *len, struct iotp_err *err);
void commission_channel_cleanup(struct commission_channel *ch);
void commission_sealed_cleanup(struct commission_sealed *s);

/* ------------------------------------------------------------------ */
/* Network apply (commission_net.c)                                    */

enum commission_net_format {
	COMMISSION_NET_WPA_SUPPLICANT = 0,  /* a network={...} block */
	COMMISSION_NET_NETWORKMANAGER = 1   /* a .nmconnection keyfile */
};

struct commission_net_conf {
	enum commission_net_format format;
	const char *config_path;  /* written 0600; NULL: nothing written */
	const char *apply_cmd;    /* run with /bin/sh -c; NULL: assume joined */
	int timeout_s;            /* for apply_cmd; <= 0: 30 */
};

iotp_rc commission_net_format_parse(const char *s, enum commission_net_format *out,
                                    struct iotp_err *err);
/* The configuration text for net (validated first). */
iotp_rc commission_net_render(enum commission_net_format format,
                              const struct commission_network *net, struct buf *out,
                              struct iotp_err *err);
/* Writes the configuration to conf->config_path (mode 0600, atomically),
 * then runs conf->apply_cmd with IOTP_NET_CONFIG (the path), IOTP_NET_MODE
 * (wifi, open or wired) and IOTP_NET_SSID in its environment. Exit 0:
 * *joined = 1. Any other exit or the timeout: *joined = 0 and reason holds
 * the first line the command printed (or why it failed). IOTP_OK unless
 * the file could not be written or the command not started. */
iotp_rc commission_net_apply(const struct commission_net_conf *conf,
                             const struct commission_network *net, int *joined, char *reason,
                             size_t reason_size, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Device side (commission_device.c)                                   */

/* Outcome of provisioning with a claim. */
struct commission_prov_outcome {
	int ok;
	char thing[COMMISSION_THING_MAX + 1];
	char cert_id[65];
	char reason[COMMISSION_REASON_MAX];
};

/* What the device does with the installer's requests; provided by the
 * process (src/device). Each call may block (joining a network takes
 * seconds). A non-OK return is reported to the installer as "internal". */
struct commission_device_ops {
	iotp_rc (*apply_network)(void *ud, const struct commission_network *net, int *joined,
	                         char *reason, size_t reason_size, struct iotp_err *err);
	/* NULL: provisioning is refused with "not supported by this device". */
	iotp_rc (*provision)(void *ud, const struct commission_claim *claim,
	                     struct commission_prov_outcome *out, struct iotp_err *err);
	void *ud;
};

/* Rate limiting of setup-code guesses. After the f-th consecutive failure
 * the next guess waits base_delay_ms * 2^(f-1) (at most max_delay_ms); at
 * max_attempts failures guesses are refused for lockout_ms. */
struct commission_limits {
	int max_attempts;          /* default 10 */
	int64_t base_delay_ms;     /* default 1000 */
	int64_t max_delay_ms;      /* default 60000 */
	int64_t lockout_ms;        /* default 3600000 */
	int64_t idle_timeout_ms;   /* a session unused this long ends: 300000 */
};
void commission_limits_init(struct commission_limits *l);

/* The verifier record the device keeps instead of its setup code. */
struct commission_record {
	char device_id[COMMISSION_DEVICE_ID_MAX + 1];
	uint8_t salt[COMMISSION_SALT_MAX];
	size_t salt_len;
	uint32_t iterations;
	uint8_t w0[SPAKE2P_SCALAR_LEN];
	uint8_t L[SPAKE2P_POINT_LEN];
};
/* Derives the record from a setup code (random salt when salt is NULL).
 * device_id: [A-Za-z0-9._:-]{1,64}; setup code: 8..64 characters. */
iotp_rc commission_record_make(const char *device_id, const char *setup_code,
                               const uint8_t *salt, size_t salt_len, uint32_t iterations,
                               struct commission_record *out, struct iotp_err *err);
/* The record as JSON {device, salt, iter, w0, L} and back (w0 is secret:
 * store the file 0600). */
iotp_rc commission_record_format(const struct commission_record *r, struct buf *out,
                                 struct iotp_err *err);
iotp_rc commission_record_parse(const char *text, size_t len, struct commission_record *out,
                                struct iotp_err *err);
void commission_record_cleanup(struct commission_record *r);

struct commission_device_conf {
	const struct commission_record *record;  /* copied */
	struct commission_limits limits;
	const char *state_path;   /* failure count persisted here; NULL: memory */
	struct commission_device_ops ops;        /* copied */
	/* Clock in milliseconds (monotonic); NULL: util_mono_ms. For tests. */
	int64_t (*clock_ms)(void *ud);
	void *clock_ud;
};

struct commission_device;

/* *out is the caller's: commission_device_free(). Reads state_path when it
 * exists (a device that was locked out stays locked out after a restart). */
iotp_rc commission_device_new(const struct commission_device_conf *conf,
                              struct commission_device **out, struct iotp_err *err);
void commission_device_free(struct commission_device *dev);

/* Handles one request line and appends exactly one reply line (no newline)
 * to reply: errors the installer should see are replies, not return codes.
 * Returns IOTP_OK when a reply was written; another code only when not even
 * an error reply could be produced (out of memory). */
iotp_rc commission_device_handle(struct commission_device *dev, const char *line, size_t len,
                                 struct buf *reply, struct iotp_err *err);

/* Removable media. _file_hello appends the device-hello line (parameters
 * only, no share) for the current file session, drawing a new one when
 * there is none (or the last one waited for its commission file longer
 * than idle_timeout_ms); the same bytes until that session ends.
 * _file_apply processes a file from the installer: a commission-1 (pake1,
 * counted as a guess) gets the device-reply (pake2 {sid, Y, cV}) in result
 * and keeps the session; a commission file {sid, cP, msgs} is applied once
 * cP checks and gets the commission-result; anything else an error line.
 * *consumed is 1 when the file must not be applied again (always, except
 * for a commission-1 throttled before being looked at). */
iotp_rc commission_device_file_hello(struct commission_device *dev, struct buf *out,
                                     struct iotp_err *err);
iotp_rc commission_device_file_apply(struct commission_device *dev, const char *text,
                                     size_t len, struct buf *result, int *consumed,
                                     struct iotp_err *err);

struct commission_device_status {
	int session_open;        /* an authenticated session is in progress */
	int joined;              /* the last network applied joined */
	int provisioned;
	char thing[COMMISSION_THING_MAX + 1];
	int failures;            /* consecutive wrong setup codes */
	int64_t retry_in_ms;     /* 0 when a guess is allowed now */
	int locked;
	int sessions_done;       /* sessions the installer ended with done */
};
void commission_device_status(struct commission_device *dev, struct commission_device_status *out);

/* ------------------------------------------------------------------ */
/* Installer side (commission_installer.c)                             */

struct commission_installer;

/* *out: commission_installer_free(). The code is copied and wiped on free. */
iotp_rc commission_installer_new(const char *setup_code, struct commission_installer **out,
                                 struct iotp_err *err);
void commission_installer_free(struct commission_installer *in);

/* The first line to send (hello). */
iotp_rc commission_installer_start(struct commission_installer *in, struct buf *out,
                                   struct iotp_err *err);
/* Handles the device's reply to the previous handshake line and appends
 * the next line to out (nothing after the final "ok": the session is then
 * ready). Errors: IOTP_ERR_AUTH (wrong setup code, or a device that does not
 * know it), IOTP_ERR_THROTTLED (retry_ms set), IOTP_ERR_LIMIT (locked out),
 * IOTP_ERR_BUSY, IOTP_ERR_INVALID (a reply that makes no sense); the
 * message says what the device said. */
iotp_rc commission_installer_handle(struct commission_installer *in, const char *line,
                                    size_t len, struct buf *out, struct iotp_err *err);
int commission_installer_ready(const struct commission_installer *in);
/* The device's name as it gave it (valid after params), or "". */
const char *commission_installer_device(const struct commission_installer *in);
/* After IOTP_ERR_THROTTLED or IOTP_ERR_LIMIT: milliseconds to wait. */
int64_t commission_installer_retry_ms(const struct commission_installer *in);

/* Once ready: an inner message as a sealed line, and a sealed reply back
 * (an error reply from the device: IOTP_ERR_STATE/AUTH/INVALID with its
 * message). */
iotp_rc commission_installer_seal(struct commission_installer *in,
                                  const struct commission_inner *msg, struct buf *out,
                                  struct iotp_err *err);
iotp_rc commission_installer_open(struct commission_installer *in, const char *line, size_t len,
                                  struct commission_inner *out, struct iotp_err *err);

/* Removable media, two rounds (the installer never writes its confirmation
 * or sealed data before the device proved it knows the verifier):
 * _file_start: from the device-hello found on the media, the commission-1
 * line (a pake1: the installer's share only). _file_build: from the
 * device's device-reply (a pake2), checks cV (IOTP_ERR_AUTH on a mismatch,
 * out untouched), then the commission line {sid, cP, msgs} carrying msgs
 * (sealed in order). An error line from the device: as for _handle
 * ("stale": IOTP_ERR_STATE). */
iotp_rc commission_installer_file_start(struct commission_installer *in, const char *hello,
                                        size_t hello_len, struct buf *out, struct iotp_err *err);
iotp_rc commission_installer_file_build(struct commission_installer *in, const char *reply,
                                        size_t reply_len, const struct commission_inner *msgs,
                                        size_t n_msgs, struct buf *out, struct iotp_err *err);
/* The device's commission-result for that file: checks cV, opens every
 * answer into outs (at most max; *n set). An error line from the device
 * (wrong code, stale file): the matching code as for _handle. */
iotp_rc commission_installer_file_result(struct commission_installer *in, const char *text,
                                         size_t len, struct commission_inner *outs, size_t max,
                                         size_t *n, struct iotp_err *err);

#endif
