/*
 * libiotprov-device: the half of iotprov provisioning that runs on a device.
 *
 * It holds the device's one private key (a 0600 file, or an object inside a
 * PKCS#11 token that never leaves it), builds CSRs, runs every provisioning
 * method iotprov serves (fleet provisioning by claim certificate or by a
 * trusted user's temporary claim over MQTT, EST enrolment over HTTPS, JITP /
 * JITR by connecting with a CA-signed certificate) and keeps the resulting
 * identity on disk so that a power cut at any moment leaves the device with
 * an identity that still works.
 *
 * Layers, from the bottom:
 *   keystore   one private key behind a URI (file or pkcs11:)
 *   csr        PKCS#10 request signed by the keystore's key
 *   tls        an OpenSSL SSL_CTX presenting a certificate + keystore key
 *   transport  a callback seam (connect/subscribe/publish/poll) with a
 *              libmosquitto implementation; another MQTT stack plugs in here
 *   fleet      the fleet-provisioning protocol over a transport (JSON/CBOR)
 *   est        RFC 7030 simpleenroll / simplereenroll over libcurl
 *   device     the agent: a state directory, provision / rotate / connect /
 *              reset / status with crash-safe storage
 *
 * Conventions (those of the whole project):
 *   - Fallible functions return an iotp_rc (iotprov/rc.h) and take a last
 *     `struct iotp_err *err` (may be NULL) that receives a message.
 *     Functions that talk to a server also take `struct iotp_failure *why`
 *     (may be NULL): on failure it says why in a form a program can count
 *     (TLS, refused, rejected with the server's errorCode, timeout...).
 *   - Out-parameters are written only on success.
 *   - Handles are opaque; _free(NULL) is a no-op.
 *   - Strings returned through `char **` are malloc'ed and NUL-terminated;
 *     the caller frees them with free() (iotp_free_secret() for keys).
 *   - Pointer arguments are borrowed for the duration of the call only.
 *   - Threads: different handles may be used from different threads at
 *     once; one handle is used by one thread at a time.
 *   - Secrets (PINs, private keys, ownership tokens) are never logged and
 *     are wiped from memory when freed.
 */
#ifndef IOTPROV_DEVICE_H
#define IOTPROV_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "iotprov/err.h"

#if defined(__GNUC__)
#define IOTP_DEVICE_API __attribute__((visibility("default")))
#else
#define IOTP_DEVICE_API
#endif

#define IOTP_CERT_ID_LEN 64      /* lowercase hex SHA-256 of the DER */
#define IOTP_THING_NAME_MAX 128
#define IOTP_ERROR_CODE_MAX 64

/* ------------------------------------------------------------------ */
/* Failure causes                                                      */

enum iotp_cause {
	IOTP_CAUSE_NONE = 0,
	IOTP_CAUSE_NETWORK = 1,  /* TCP: refused, unreachable, reset, closed */
	IOTP_CAUSE_TLS = 2,      /* TLS handshake failed (either side's cert) */
	IOTP_CAUSE_REFUSED = 3,  /* MQTT CONNACK/SUBACK/PUBACK refusal, HTTP 401/403 */
	IOTP_CAUSE_REJECTED = 4, /* the service answered with an error: code */
	IOTP_CAUSE_TIMEOUT = 5,  /* no answer in time */
	IOTP_CAUSE_PROTOCOL = 6, /* an answer that does not parse or is too big */
	IOTP_CAUSE_LOCAL = 7     /* on the device: keystore, files, memory */
};

struct iotp_failure {
	enum iotp_cause cause;
	int status;                          /* rejected statusCode, HTTP status or
	                                      * MQTT reason code; 0 when none */
	char code[IOTP_ERROR_CODE_MAX];      /* rejected errorCode, "" when none */
};

/* "none", "network", "tls", "refused", "rejected", "timeout", "protocol",
 * "local". Static, never NULL. */
IOTP_DEVICE_API const char *iotp_cause_name(enum iotp_cause cause);
/* Resets f to IOTP_CAUSE_NONE (f may be NULL). */
IOTP_DEVICE_API void iotp_failure_clear(struct iotp_failure *f);

/* Splits "host:port" or "[v6addr]:port" into host (hostsize bytes) and
 * port (1-65535). */
IOTP_DEVICE_API iotp_rc iotp_endpoint_parse(const char *s, char *host, size_t hostsize,
                                            int *port, struct iotp_err *err);

/* Wipes then frees a secret returned by this library (private key PEM). */
IOTP_DEVICE_API void iotp_free_secret(char *s);

/* ------------------------------------------------------------------ */
/* Keystore                                                            */

typedef struct iotp_keystore iotp_keystore;

enum iotp_key_alg {
	IOTP_KEY_EC_P256 = 0,
	IOTP_KEY_EC_P384 = 1,
	IOTP_KEY_RSA_2048 = 2
};

enum iotp_key_backend {
	IOTP_KEYSTORE_FILE = 0,     /* PEM file, mode 0600 */
	IOTP_KEYSTORE_PKCS11 = 1,   /* object inside a PKCS#11 token */
	IOTP_KEYSTORE_MEMORY = 2    /* in memory only (simulator, server keys) */
};

/* "ec-p256", "ec-p384", "rsa-2048". */
IOTP_DEVICE_API iotp_rc iotp_key_alg_parse(const char *s, enum iotp_key_alg *out,
                                           struct iotp_err *err);

/*
 * Key URIs:
 *   file:/path/key.pem or a plain path   a PEM private key, 0600
 *   pkcs11:token=T;object=O[;id=%01%02][;pin-value=P]
 *          [?module-path=/lib.so][&pin-source=file:/path|env:VAR][&pin-value=P]
 * (RFC 7512; attributes percent-encoded). The PIN comes from pin-value,
 * else pin-source, else the environment variable IOTP_PKCS11_PIN. The
 * module is module-path, else IOTP_PKCS11_MODULE, else SoftHSM2's
 * /usr/lib/softhsm/libsofthsm2.so.
 *
 * iotp_keystore_generate creates a new key at uri: for a file, written
 * durably with mode 0600; for PKCS#11, generated INSIDE the token with
 * CKA_SENSITIVE true and CKA_EXTRACTABLE false (the private half never
 * exists outside the token), public and private objects sharing a random
 * CKA_ID. IOTP_ERR_EXISTS when the file or an object with that label exists.
 */
IOTP_DEVICE_API iotp_rc iotp_keystore_generate(const char *uri, enum iotp_key_alg alg,
                                               struct iotp_err *err);

/* Opens the key at uri. A key file readable or writable by group or others
 * is refused (IOTP_ERR_CONFIG, the message says how to fix it). A PKCS#11
 * key is used in place: signatures are computed by the token. Release with
 * iotp_keystore_free. */
IOTP_DEVICE_API iotp_rc iotp_keystore_open(const char *uri, iotp_keystore **out,
                                           struct iotp_err *err);
/* A new key held in memory only. */
IOTP_DEVICE_API iotp_rc iotp_keystore_generate_memory(enum iotp_key_alg alg, iotp_keystore **out,
                                                      struct iotp_err *err);
/* A key from PEM text (a server-generated key); len bytes of pem. */
IOTP_DEVICE_API iotp_rc iotp_keystore_from_pem(const char *pem, size_t len, iotp_keystore **out,
                                               struct iotp_err *err);
/* Writes a memory or file key to path (0600, durably). Refused for a
 * PKCS#11 key (IOTP_ERR_STATE): it cannot leave its token. */
IOTP_DEVICE_API iotp_rc iotp_keystore_save(iotp_keystore *ks, const char *path,
                                           struct iotp_err *err);
/* Deletes the key at uri: the file, or the token's private and public
 * objects. IOTP_ERR_NOT_FOUND when there is none. */
IOTP_DEVICE_API iotp_rc iotp_keystore_remove(const char *uri, struct iotp_err *err);
IOTP_DEVICE_API void iotp_keystore_free(iotp_keystore *ks);

struct iotp_key_info {
	enum iotp_key_backend backend;
	enum iotp_key_alg alg;
	/* PKCS#11 object attributes (CK_BBOOL as 0/1); for file and memory
	 * keys sensitive=0, extractable=1 and the rest 0. */
	int sensitive, extractable, always_sensitive, never_extractable, local;
	char fingerprint[65];    /* SHA-256 of the DER SubjectPublicKeyInfo */
};
IOTP_DEVICE_API iotp_rc iotp_keystore_info(iotp_keystore *ks, struct iotp_key_info *out,
                                           struct iotp_err *err);
/* The key as an OpenSSL EVP_PKEY, borrowed: valid until iotp_keystore_free.
 * For PKCS#11 it signs inside the token, so it can be handed to
 * SSL_CTX_use_PrivateKey or X509_REQ_sign. Never NULL for an open keystore. */
IOTP_DEVICE_API EVP_PKEY *iotp_keystore_pkey(iotp_keystore *ks);
/* PEM SubjectPublicKeyInfo of the key. */
IOTP_DEVICE_API iotp_rc iotp_keystore_public_pem(iotp_keystore *ks, char **out, size_t *len,
                                                 struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* CSR                                                                 */

struct iotp_csr_subject {
	const char *common_name;          /* required */
	const char *serial_number;        /* subject serialNumber, optional */
	const char *organization;         /* O, optional */
	const char *organizational_unit;  /* OU, optional */
	const char *country;              /* C (2 letters), optional */
};
/* A PEM PKCS#10 request for the keystore's key, signed with it (SHA-256),
 * carrying the subject and an extensionRequest for keyUsage
 * digitalSignature and extendedKeyUsage clientAuth. */
IOTP_DEVICE_API iotp_rc iotp_csr_create(iotp_keystore *ks, const struct iotp_csr_subject *subj,
                                        char **pem, size_t *len, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* TLS                                                                 */

/* A client SSL_CTX that trusts ca_file only, checks that the server
 * certificate names host (DNS name or IP address), and presents cert_pem
 * (leaf then optional chain; cert_len bytes) with the keystore's key, which
 * must match. cert_pem NULL: no client certificate. The context keeps its
 * own reference to the key: the keystore must outlive it. Free with
 * SSL_CTX_free. Thread-safe to share once built. */
IOTP_DEVICE_API iotp_rc iotp_tls_ctx_new(const char *ca_file, const char *host,
                                         const char *cert_pem, size_t cert_len,
                                         iotp_keystore *key, SSL_CTX **out,
                                         struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Transport seam                                                      */

struct iotp_mqtt_params {
	const char *host;
	int port;
	const char *client_id;
	SSL_CTX *ssl_ctx;         /* borrowed: trust + client identity */
	int keepalive_s;          /* 0: 60 */
	int timeout_ms;           /* TCP + TLS + CONNACK; 0: 10000 */
	int mqtt_version;         /* 4 (3.1.1) or 5; 0: 5 */
};

/* Delivers one incoming PUBLISH. topic is NUL-terminated; payload holds len
 * bytes. Both are borrowed for the call. */
typedef void (*iotp_mqtt_message_cb)(void *ud, const char *topic, const void *payload,
                                     size_t len);

/*
 * What a transport implements. Every call blocks its thread at most the
 * timeout it is given; each reports failures through why/err like the rest
 * of the API. Between connect and disconnect, incoming messages reach
 * on_message from inside subscribe, publish or poll only (never from another
 * thread).
 *   connect    open the connection, wait for a successful CONNACK
 *   subscribe  subscribe to count filters at QoS 1, wait for the SUBACK;
 *              any refused filter is IOTP_CAUSE_REFUSED
 *   publish    QoS 1 publish; with wait_ack_ms > 0, wait for a successful
 *              PUBACK, else return once queued
 *   poll       run the connection for up to timeout_ms (returns early once
 *              a message was delivered)
 *   disconnect close cleanly (no-op when not connected)
 *   destroy    free impl
 */
struct iotp_transport_ops {
	iotp_rc (*connect)(void *impl, const struct iotp_mqtt_params *p,
	                   iotp_mqtt_message_cb on_message, void *ud, struct iotp_failure *why,
	                   struct iotp_err *err);
	iotp_rc (*subscribe)(void *impl, const char *const *filters, size_t count, int timeout_ms,
	                     struct iotp_failure *why, struct iotp_err *err);
	iotp_rc (*publish)(void *impl, const char *topic, const void *payload, size_t len,
	                   int wait_ack_ms, struct iotp_failure *why, struct iotp_err *err);
	iotp_rc (*poll)(void *impl, int timeout_ms, struct iotp_failure *why,
	                struct iotp_err *err);
	void (*disconnect)(void *impl);
	void (*destroy)(void *impl);
};

typedef struct iotp_transport iotp_transport;

/* Wraps an implementation: ops must stay valid while the handle lives;
 * impl is owned by the handle (ops->destroy on iotp_transport_free). */
IOTP_DEVICE_API iotp_rc iotp_transport_new(const struct iotp_transport_ops *ops, void *impl,
                                           iotp_transport **out, struct iotp_err *err);
/* The Linux port: libmosquitto with the caller's prebuilt SSL_CTX
 * (MOSQ_OPT_SSL_CTX, so reconnects do not rebuild it) and TCP_NODELAY. */
IOTP_DEVICE_API iotp_rc iotp_transport_mosquitto(iotp_transport **out, struct iotp_err *err);
IOTP_DEVICE_API void iotp_transport_free(iotp_transport *t);

/* Connects with p, optionally publishes one QoS 1 message (topic NULL: none)
 * and waits for its PUBACK, then disconnects: "does this identity work".
 * t NULL: a libmosquitto transport for this call. */
IOTP_DEVICE_API iotp_rc iotp_mqtt_check(iotp_transport *t, const struct iotp_mqtt_params *p,
                                        const char *topic, const void *payload, size_t len,
                                        struct iotp_failure *why, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Retry with exponential backoff and full jitter                      */

/* A value type: attempt n (from 0) waits a uniformly random time in
 * [0, min(cap_ms, base_ms * 2^n)], so a fleet that powers on at once
 * spreads out instead of retrying in lockstep. Up to max_attempts delays
 * are handed out (0: unbounded). Fields are private. */
struct iotp_backoff {
	uint32_t base_ms, cap_ms, max_attempts, attempt;
	uint64_t rng;
};
/* seed 0: seeded from the CSPRNG. */
IOTP_DEVICE_API void iotp_backoff_init(struct iotp_backoff *b, uint32_t base_ms, uint32_t cap_ms,
                                       uint32_t max_attempts, uint64_t seed);
/* Writes the next delay and returns 1, or returns 0 when the attempts are
 * used up. */
IOTP_DEVICE_API int iotp_backoff_next(struct iotp_backoff *b, uint32_t *delay_ms);
IOTP_DEVICE_API void iotp_backoff_reset(struct iotp_backoff *b);

/* ------------------------------------------------------------------ */
/* Fleet provisioning (MQTT, $aws/certificates/..., $aws/provisioning-templates/...) */

enum iotp_fp_format { IOTP_FP_JSON = 0, IOTP_FP_CBOR = 1 };

#define IOTP_FLEET_OP_CREATE_FROM_CSR 0x1
#define IOTP_FLEET_OP_CREATE 0x2
#define IOTP_FLEET_OP_REGISTER 0x4

struct iotp_fleet_opts {
	const char *host;
	int port;
	SSL_CTX *claim_ctx;           /* borrowed: trust + claim certificate and key */
	const char *client_id;        /* required */
	const char *template_name;    /* required for register */
	enum iotp_fp_format format;
	int timeout_ms;               /* connect and each reply; 0: 10000 */
	int mqtt_version;             /* 0: 5 */
	unsigned ops;                 /* IOTP_FLEET_OP_*: subscribed to at open in
	                               * one SUBSCRIBE; other ops subscribe lazily */
	iotp_transport *transport;    /* borrowed; NULL: libmosquitto, owned */
};

typedef struct iotp_fleet iotp_fleet;

/* Connects with the claim identity and subscribes to the accepted and
 * rejected topics of opts->ops. */
IOTP_DEVICE_API iotp_rc iotp_fleet_open(const struct iotp_fleet_opts *opts, iotp_fleet **out,
                                        struct iotp_failure *why, struct iotp_err *err);
IOTP_DEVICE_API void iotp_fleet_close(iotp_fleet *f);

struct iotp_fleet_cert {
	char cert_id[IOTP_CERT_ID_LEN + 1];
	char *cert_pem;           /* owned */
	char *private_key_pem;    /* owned, create only (NULL for a CSR); secret */
	char *token;              /* owned: certificateOwnershipToken; secret */
};
IOTP_DEVICE_API void iotp_fleet_cert_cleanup(struct iotp_fleet_cert *c);

/* create-from-csr: csr_len bytes of PEM CSR. The certificate comes back
 * PENDING_ACTIVATION with a single-use ownership token. A rejection is
 * IOTP_CAUSE_REJECTED with statusCode/errorCode in why. */
IOTP_DEVICE_API iotp_rc iotp_fleet_create_from_csr(iotp_fleet *f, const char *csr_pem,
                                                   size_t csr_len, struct iotp_fleet_cert *out,
                                                   struct iotp_failure *why,
                                                   struct iotp_err *err);
/* create: the server generates the key pair (private_key_pem set). */
IOTP_DEVICE_API iotp_rc iotp_fleet_create(iotp_fleet *f, struct iotp_fleet_cert *out,
                                          struct iotp_failure *why, struct iotp_err *err);

struct iotp_param {
	const char *name;
	const char *value;
};
struct iotp_fleet_thing {
	char thing_name[IOTP_THING_NAME_MAX + 1];   /* "" when the template has no thing */
	char *device_configuration;                 /* owned JSON object text */
};
IOTP_DEVICE_API void iotp_fleet_thing_cleanup(struct iotp_fleet_thing *t);
/* provision: consumes the ownership token with the template's parameters. */
IOTP_DEVICE_API iotp_rc iotp_fleet_register(iotp_fleet *f, const char *token,
                                            const struct iotp_param *params, size_t nparams,
                                            struct iotp_fleet_thing *out,
                                            struct iotp_failure *why, struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* EST (RFC 7030)                                                      */

struct iotp_est_opts {
	const char *base_url;          /* "https://host:port"; required */
	const char *label;             /* optional CA label: /.well-known/est/<label>/ */
	const char *ca_file;           /* trusted roots; required */
	const char *cert_pem;          /* TLS client certificate (re-enrolment: the
	                                * current one), cert_len bytes; optional */
	size_t cert_len;
	iotp_keystore *key;            /* its key (signs the handshake in place) */
	const char *username;          /* HTTP Basic, sent only after a 401 */
	const char *password;
	int timeout_ms;                /* whole exchange; 0: 30000 */
};
/* POSTs the CSR (csr_len bytes of PEM, sent as base64 DER) to simpleenroll,
 * or simplereenroll when reenroll is set, and returns the issued
 * certificate as PEM (the one whose key matches the CSR's, then the other
 * certificates of the reply). A 202 is retried after its Retry-After (at
 * most 60 s in all). */
IOTP_DEVICE_API iotp_rc iotp_est_enroll(const struct iotp_est_opts *opts, int reenroll,
                                        const char *csr_pem, size_t csr_len, char **cert_pem,
                                        size_t *cert_len, struct iotp_failure *why,
                                        struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* The device agent: a state directory                                 */

typedef struct iotp_device iotp_device;

enum iotp_method {
	IOTP_METHOD_CLAIM = 0,
	IOTP_METHOD_TRUSTED_USER = 1,
	IOTP_METHOD_EST = 2,
	IOTP_METHOD_JITP = 3
};
/* "claim", "trusted-user", "est", "jitp" (also "jitr"). */
IOTP_DEVICE_API iotp_rc iotp_method_parse(const char *s, enum iotp_method *out,
                                          struct iotp_err *err);
IOTP_DEVICE_API const char *iotp_method_name(enum iotp_method m);

/*
 * Opens (creating, mode 0700) a state directory and brings it back to a
 * consistent state after a crash: half-written files and identities that
 * never became current are removed. The directory holds device.json
 * (settings), the factory key (unless in a token), the factory claim,
 * state.json (which identity is current, which one is being tried) and one
 * id-<n>.json / .crt / .key set per identity. Every file is replaced by
 * writing a temp file, fsync, rename, fsync of the directory, so each is
 * either the old or the new version. One process at a time: the directory
 * is locked (IOTP_ERR_BUSY when another process holds it).
 */
IOTP_DEVICE_API iotp_rc iotp_device_open(const char *state_dir, iotp_device **out,
                                         struct iotp_err *err);
IOTP_DEVICE_API void iotp_device_close(iotp_device *d);

/* Settings for the operations below. Every field is optional: NULL / 0
 * means the value saved in the state directory by an earlier call (given
 * values are saved for later). */
struct iotp_device_opts {
	const char *endpoint;          /* MQTT "host:port" */
	const char *est_endpoint;      /* EST "host:port" (https) */
	const char *ca_file;           /* trusted roots, copied into the state dir */
	const char *template_name;     /* fleet provisioning template */
	const char *client_id;         /* MQTT client id (default: the thing name,
	                                * else the certificate's CN) */
	const char *common_name;       /* CSR CN (default: SerialNumber param,
	                                * else client id, else "iotprov-device") */
	const char *format;            /* "json" | "cbor" */
	int mqtt_version;              /* 4 | 5 */
	int timeout_ms;
	const struct iotp_param *params;   /* template parameters */
	size_t nparams;
	const char *claim_cert;        /* claim: the factory claim (saved);
	                                * trusted-user: the installer's (not saved) */
	const char *claim_key;
	const char *cert_file;         /* jitp: the CA-signed certificate (+chain) */
	const char *est_user;
	const char *est_password;      /* never saved */
	int new_key;                   /* generate a new key for this identity */
	int server_key;                /* fleet "create": the server makes the key */
	int retries;                   /* connection attempts after the first (jitp,
	                                * connect); 0: the saved value, else 5;
	                                * -1: none */
	uint32_t backoff_base_ms;      /* 0: 500 */
	uint32_t backoff_cap_ms;       /* 0: 30000 */
	const char *topic;             /* connect: test message topic (default
	                                * things/<client id>/hello) */
	const char *message;           /* connect: payload (default a JSON hello) */
	/* One line per step or retry, for a human; may be NULL. */
	void (*progress)(void *ud, const char *line);
	void *progress_ud;
};

/* Generates the factory key at key_uri (NULL: file factory.key in the state
 * dir) and records it. IOTP_ERR_EXISTS when one is recorded already. */
IOTP_DEVICE_API iotp_rc iotp_device_keygen(iotp_device *d, const char *key_uri,
                                           enum iotp_key_alg alg, struct iotp_err *err);
/* Opens the recorded factory key. */
IOTP_DEVICE_API iotp_rc iotp_device_factory_key(iotp_device *d, iotp_keystore **out,
                                                struct iotp_err *err);

/*
 * Provisions the device by method and connects with the new identity; it
 * becomes current only once that connection succeeded (until then the
 * previous identity, or the factory state, stays in use). An interrupted
 * provisioning resumes where it stopped when run again (the ownership
 * token is kept until it is consumed).
 *   claim         fleet provisioning with the factory claim
 *   trusted-user  the same with opts->claim_cert/claim_key from the
 *                 installer (not kept)
 *   est           simpleenroll of a CSR for the device key
 *   jitp          install opts->cert_file (signed by a CA registered with
 *                 iotprov) and connect, retrying with backoff while the
 *                 service registers and activates it (JITP, JITR)
 */
IOTP_DEVICE_API iotp_rc iotp_device_provision(iotp_device *d, enum iotp_method method,
                                              const struct iotp_device_opts *opts,
                                              struct iotp_failure *why, struct iotp_err *err);
/* A new certificate (for the same key, or a new one with opts->new_key)
 * through the server: fleet provisioning again (claim, trusted-user) or EST
 * simplereenroll authenticated by the current certificate. The old identity
 * is released only after the new one has connected. IOTP_ERR_STATE when
 * not provisioned; IOTP_ERR_UNSUPPORTED for jitp. */
IOTP_DEVICE_API iotp_rc iotp_device_rotate(iotp_device *d, enum iotp_method method,
                                           const struct iotp_device_opts *opts,
                                           struct iotp_failure *why, struct iotp_err *err);
/* Connects with the current identity (first trying a provisioned identity
 * that has not connected yet, which becomes current on success), publishes
 * the test message and waits for its PUBACK; retries with backoff. */
IOTP_DEVICE_API iotp_rc iotp_device_connect(iotp_device *d, const struct iotp_device_opts *opts,
                                            struct iotp_failure *why, struct iotp_err *err);
/* Back to the factory state: every operational identity (certificates and
 * the keys made for them) removed; factory key, claim and settings kept. */
IOTP_DEVICE_API iotp_rc iotp_device_reset(iotp_device *d, struct iotp_err *err);

struct iotp_device_status {
	int provisioned;                       /* a current identity exists */
	char method[16];                       /* how it was provisioned */
	char thing_name[IOTP_THING_NAME_MAX + 1];
	char client_id[IOTP_THING_NAME_MAX + 1];
	char cert_id[IOTP_CERT_ID_LEN + 1];
	int64_t not_before, not_after;         /* epoch seconds */
	char key_uri[1024];                    /* without any PIN */
	int key_present;                       /* the factory key exists */
	struct iotp_key_info key;              /* of the current identity's key,
	                                        * else the factory key */
	int has_claim;                         /* a factory claim is stored */
	int pending;                           /* an identity awaits its first
	                                        * connection */
	char endpoint[256];
	char template_name[64];
};
IOTP_DEVICE_API iotp_rc iotp_device_status(iotp_device *d, struct iotp_device_status *out,
                                           struct iotp_err *err);

#endif
