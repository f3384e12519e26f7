/*
 * Outbound webhooks over libcurl: the process side of struct prov_hook
 * (core/provision.h), i.e. the pre-provisioning hook of fleet provisioning,
 * and notifications such as the broker's JITR registered event.
 *
 * A call is an HTTPS POST of a JSON body with three headers:
 *   Content-Type: application/json
 *   X-Iotprov-Timestamp: <epoch seconds>
 *   X-Iotprov-Signature: v1=<lowercase hex HMAC-SHA256(key, "<timestamp>.<body>")>
 * where key is the configured hook secret ([provisioning] hook_secret_file:
 * the file's bytes, trailing newline removed). The receiver recomputes the
 * HMAC, compares in constant time and refuses timestamps more than a few
 * minutes old (docs/fleet-provisioning.md). The answer must be a 2xx with a
 * JSON object of at most WEBHOOK_ANSWER_MAX bytes; anything else is an
 * error, which the provisioning engine turns into a refusal (fail closed).
 *
 * Each call uses its own curl handle on the caller's thread, with
 * CURLOPT_NOSIGNAL and a total timeout, so a slow hook blocks only the
 * thread that called it. No redirects, no proxy, http:// only to a
 * loopback host (prov_hook_url_ok), TLS peers verified against
 * [provisioning] hook_ca_file or the system trust store.
 */
#ifndef IOTP_WEBHOOK_H
#define IOTP_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/conf.h"
#include "common/err.h"
#include "core/provision.h"

#define WEBHOOK_ANSWER_MAX 65536     /* bytes of a hook's answer */
#define WEBHOOK_SECRET_MIN 16        /* bytes of a usable secret */
#define WEBHOOK_SECRET_MAX 1024
#define WEBHOOK_SIG_PREFIX "v1="

/* A configured webhook caller. Immutable once created: share it between
 * threads freely. */
struct webhook;

/* Reads the secret from conf's hook_secret_file (relative to the data
 * dir); when the file does not exist it is created (mode 0600) with 32
 * random bytes as 64 hex digits, atomically, so that two processes
 * starting together agree on one secret. A file readable by group or
 * others, or shorter than WEBHOOK_SECRET_MIN bytes, is IOTP_ERR_CONFIG.
 * Also initialises libcurl. *out is freed with webhook_free(). */
iotp_rc webhook_new(const struct iotp_conf *conf, struct webhook **out, struct iotp_err *err);
/* The same with the secret given (len bytes, copied) and an optional CA
 * bundle path (NULL: the system store): for tests and tools. */
iotp_rc webhook_new_secret(const void *secret, size_t len, const char *ca_file,
                           struct webhook **out, struct iotp_err *err);
/* Wipes the secret and frees; NULL is a no-op. */
void webhook_free(struct webhook *w);

/* Fills hook so the provisioning engine calls through w (borrowed: w must
 * outlive every use of hook). */
void webhook_prov_hook(struct webhook *w, struct prov_hook *hook);

/* One call (the prov_hook.call contract): POSTs body to url and returns
 * the parsed answer (new reference). Errors: INVALID for a URL
 * prov_hook_url_ok refuses; TIMEOUT when no complete answer came within
 * timeout_ms; IO for connection or TLS failures and for a non-2xx status
 * (the message names it); TOO_BIG for an answer over WEBHOOK_ANSWER_MAX;
 * INVALID for an answer that is not a JSON object. Thread-safe. */
iotp_rc webhook_call(struct webhook *w, const char *url, const char *body, int timeout_ms,
                     json_t **answer, struct iotp_err *err);

/* A notification: the same signed POST, delivered when the receiver
 * answers any 2xx (its body, at most WEBHOOK_ANSWER_MAX bytes, is read and
 * ignored). Errors as webhook_call. Thread-safe. */
iotp_rc webhook_notify(struct webhook *w, const char *url, const char *body, int timeout_ms,
                       struct iotp_err *err);

/* The signature header value ("v1=" + 64 hex digits + NUL) for body sent at
 * timestamp, with the given secret: what a receiver must recompute. */
iotp_rc webhook_sign(const void *secret, size_t secret_len, int64_t timestamp,
                     const char *body, size_t body_len, char out[68], struct iotp_err *err);

/* Parses an answer body (len bytes): a JSON object, no duplicate keys, at
 * most WEBHOOK_ANSWER_MAX bytes. *out is a new reference. */
iotp_rc webhook_answer_parse(const char *body, size_t len, json_t **out, struct iotp_err *err);

#endif
