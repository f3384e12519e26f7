/*
 * A process-wide cache of parsed registered CA certificates.
 *
 * Every certificate registered under a CA, and every unknown device at the
 * broker, is checked against the registered CAs of its issuer name, whose
 * PEM is in the store. Parsing that PEM (OpenSSL 3.0's key decoder) costs
 * about twice the signature check itself, so the parsed certificate is kept
 * here, keyed by the CA id and the exact PEM text.
 *
 * Only the parse is cached, never a CA's state: callers still read the CA
 * row (status, generation, mode, registration config) from the store on
 * every check, so a CA made INACTIVE or deleted by another process is seen
 * at once. A cached entry is used only when the PEM the caller just read is
 * byte for byte the one that was parsed, so an entry can never answer for
 * other content; the id (SHA-256 of the DER) already makes that so for rows
 * the registry wrote.
 */
#ifndef IOTP_CA_CACHE_H
#define IOTP_CA_CACHE_H

#include <stddef.h>

#include <openssl/x509.h>

#include "common/err.h"

#define CA_CACHE_SLOTS 32 /* parsed CAs kept; least recently used goes first */

/* The parsed certificate of CA `id` whose stored PEM is pem (pem_len
 * bytes): from the cache when that exact text was parsed before, else
 * parsed with pki_cert_parse and remembered. id may be NULL when the
 * caller has only the text (a caCertificatePem given with a request): the
 * text alone is then the key. *out receives a new reference (X509_free
 * it); written only on success. Errors are pki_cert_parse's
 * (IOTP_ERR_CERT for an unparsable PEM, which is not cached).
 * Thread-safe. */
iotp_rc ca_cache_get(const char *id, const char *pem, size_t pem_len, X509 **out,
                     struct iotp_err *err);

/* Drops every entry (tests; nothing else needs it, entries never go stale). */
void ca_cache_clear(void);

#endif
