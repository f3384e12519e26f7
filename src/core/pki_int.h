/*
 * Internals shared by the PKI source files (pki.c: keys, CAs, issuance;
 * pki_cert.c: reading certificates; pki_csr.c: CSRs). Not an API: the rest
 * of iotprov uses pki.h only.
 */
#ifndef IOTP_PKI_INT_H
#define IOTP_PKI_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/asn1.h>
#include <openssl/x509.h>

#include "common/err.h"
#include "core/pki.h"

/* The DER held by an input: the input itself when it starts like DER (a
 * SEQUENCE tag), otherwise the first PEM block labelled with one of labels
 * (a NULL-terminated list), which may follow other text. *der points into
 * data or into *alloc, a malloc'ed buffer the caller frees (NULL when
 * nothing was allocated). what names the input in messages. Malformed PEM is
 * IOTP_ERR_CERT. */
iotp_rc pki_input_der(const void *data, size_t len, const char *const *labels,
                      const char *what, unsigned char **alloc, const unsigned char **der,
                      size_t *der_len, struct iotp_err *err);

/* Issues an end-entity certificate (see pki_cert_issue) for a public key
 * that was already verified, given as the algorithm and key bits of its
 * SubjectPublicKeyInfo: both are copied into the certificate as they are,
 * never decoded. subject is the CSR's subject, replaced by CN=opts->subject_cn
 * when that is set. All pointers are borrowed. */
iotp_rc pki_issue_spki(const struct pki_ca *ca, const X509_NAME *subject,
                       const X509_ALGOR *alg, const unsigned char *bits, int nbits,
                       const struct pki_issue_opts *opts, X509 **out, struct iotp_err *err);

/* A SubjectPublicKeyInfo read without decoding the key: its algorithm and
 * key bits. The fast paths for CSRs (pki_csr.c) and device certificates
 * (pki_lite.c) read keys this way to skip OpenSSL 3.0's per-call key
 * decoder. Defined in pki_lite.c. */
typedef struct {
	X509_ALGOR *algor;
	ASN1_BIT_STRING *key;
} PKI_RAW_SPKI;
DECLARE_ASN1_ITEM(PKI_RAW_SPKI)

/* The curve (a NID) of a raw key that is a named-curve EC key on P-256,
 * P-384 or P-521 with whole bytes; NID_undef for anything else. */
int pki_raw_spki_curve(const PKI_RAW_SPKI *spki);

/* Lowercase hex SHA-256 of p. */
iotp_rc pki_sha256_hex(const unsigned char *p, size_t n, char out[65], struct iotp_err *err);

/* Epoch seconds of an ASN.1 time (UTC, no time zone involved); an invalid
 * time is IOTP_ERR_CERT. */
iotp_rc pki_time_epoch(const ASN1_TIME *t, int64_t *out, struct iotp_err *err);

/* A serial number as registries show it: hex without leading zero bytes, a
 * '-' before a negative one. Malloc'ed. */
iotp_rc pki_serial_hex(const ASN1_INTEGER *serial, char **out, struct iotp_err *err);

/* A distinguished name in RFC 2253 form with UTF-8 left as is. Malloc'ed. */
iotp_rc pki_name_string(const X509_NAME *name, char **out, struct iotp_err *err);

#endif
