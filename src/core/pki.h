/*
 * PKI: keys, CAs, CSRs and certificates with OpenSSL 3.
 *
 * Everything iotprov knows about X.509 is here, so the registry, the
 * provisioning engine, EST and the broker plugin share one set of rules:
 * which keys are acceptable, how a device certificate looks, what a
 * certificate id is. No function here touches the store or the network.
 *
 * Objects are plain OpenSSL types (EVP_PKEY, X509, X509_REQ); functions that
 * return one through an out-parameter transfer a reference the caller frees
 * with the matching OpenSSL _free. Functions are thread-safe (they keep no
 * state of their own).
 */
#ifndef IOTP_PKI_H
#define IOTP_PKI_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/err.h"

#define PKI_CERT_ID_LEN 64 /* lowercase hex SHA-256 of the DER */

enum pki_key_type {
	PKI_KEY_EC_P256 = 0,
	PKI_KEY_EC_P384,
	PKI_KEY_RSA_2048
};

/* "ec-p256", "ec-p384", "rsa-2048". */
iotp_rc pki_key_type_parse(const char *s, enum pki_key_type *out, struct iotp_err *err);

/* Generates a new private key. */
iotp_rc pki_key_generate(enum pki_key_type type, EVP_PKEY **out, struct iotp_err *err);

/* Checks that a public key is one iotprov accepts for devices and CAs:
 * RSA of at least 2048 bits, or EC on P-256, P-384 or P-521. Anything else is
 * IOTP_ERR_CERT with a message naming the key ("DSA keys are not accepted",
 * "RSA key of 1024 bits is too small: use at least 2048"). */
iotp_rc pki_key_check(EVP_PKEY *key, struct iotp_err *err);

/* PEM private key file I/O. Writing creates the file with mode 0600
 * atomically. Reading refuses a key file readable by group or others. */
iotp_rc pki_key_write_file(EVP_PKEY *key, const char *path, struct iotp_err *err);
iotp_rc pki_key_read_file(const char *path, EVP_PKEY **out, struct iotp_err *err);
/* PEM (PKCS#8) text of a private key; *out malloc'ed, wipe and free it
 * (OPENSSL_cleanse + free) when done. */
iotp_rc pki_key_to_pem(EVP_PKEY *key, char **out, struct iotp_err *err);
/* PEM SubjectPublicKeyInfo of the key's public half; *out malloc'ed. */
iotp_rc pki_pubkey_to_pem(EVP_PKEY *key, char **out, struct iotp_err *err);

/* A CA able to sign: its certificate and private key (both referenced). */
struct pki_ca {
	X509 *cert;
	EVP_PKEY *key;
};
void pki_ca_cleanup(struct pki_ca *ca);
/* Loads a CA from PEM files (the key file must be 0600). */
iotp_rc pki_ca_load(const char *cert_path, const char *key_path, struct pki_ca *out,
                    struct iotp_err *err);

/* Creates a self-signed root CA (basicConstraints CA:TRUE critical,
 * keyUsage keyCertSign+cRLSign, SKI) with the given CN. */
iotp_rc pki_ca_create_root(EVP_PKEY *key, const char *common_name, int days,
                           X509 **out, struct iotp_err *err);
/* Creates an intermediate (issuing) CA signed by parent, pathlen 0, SKI+AKI. */
iotp_rc pki_ca_create_issuing(const struct pki_ca *parent, EVP_PKEY *key,
                              const char *common_name, int days, X509 **out,
                              struct iotp_err *err);
/* Creates a TLS server certificate signed by ca for key, with
 * extendedKeyUsage serverAuth and a SAN entry per comma-separated name
 * (IP addresses become iPAddress entries, the rest dNSName). */
iotp_rc pki_server_cert_create(const struct pki_ca *ca, EVP_PKEY *key, const char *names,
                               int days, X509 **out, struct iotp_err *err);

/* Parses a CSR from PEM (or DER when the input does not start with
 * "-----BEGIN"), verifies its self-signature and checks its key with
 * pki_key_check. Errors are IOTP_ERR_CERT with a clear message. */
iotp_rc pki_csr_parse(const void *data, size_t len, X509_REQ **out, struct iotp_err *err);

struct pki_issue_opts {
	int days;                /* validity; required, > 0 */
	const char *subject_cn;  /* overrides the CSR subject with CN=this when set */
	int not_before_skew;     /* seconds to backdate notBefore (clock skew), >= 0 */
	int validity_seconds;    /* > 0: notAfter is now + this many seconds and days
	                          * is ignored (short-lived claim certificates); 0:
	                          * days applies */
};
/* Issues an end-entity certificate for the CSR's (already verified) public
 * key: v3, 16 random serial bytes (positive), subject from the CSR unless
 * overridden, basicConstraints CA:FALSE, keyUsage digitalSignature (+
 * keyEncipherment for RSA), extendedKeyUsage clientAuth, SKI and AKI.
 * notAfter is capped at the CA's own notAfter. The key is copied into the
 * certificate as encoded bytes and not decoded again, so X509_get0_pubkey()
 * on *out returns NULL: use the CSR's key, or parse the certificate's PEM.
 * An empty CSR subject without opts->subject_cn is IOTP_ERR_CERT. */
iotp_rc pki_cert_issue(const struct pki_ca *ca, X509_REQ *csr,
                       const struct pki_issue_opts *opts, X509 **out, struct iotp_err *err);
/* pki_csr_parse + pki_cert_issue in one call, with the same checks, results
 * and error codes, for servers that do not need the X509_REQ itself
 * (CreateCertificateFromCsr, fleet provisioning, EST). For EC P-256/P-384/
 * P-521 CSRs it bypasses OpenSSL 3.0's generic key decoder, about half the
 * cost of the two calls; other CSRs take the two-call path. *out as for
 * pki_cert_issue. */
iotp_rc pki_csr_issue(const struct pki_ca *ca, const void *data, size_t len,
                      const struct pki_issue_opts *opts, X509 **out, struct iotp_err *err);
/* As pki_cert_issue for a bare public key (CreateKeysAndCertificate, claims). */
iotp_rc pki_cert_issue_for_key(const struct pki_ca *ca, EVP_PKEY *pub, const char *subject_cn,
                               const struct pki_issue_opts *opts, X509 **out,
                               struct iotp_err *err);

/* The fast way to read a device certificate to register (bulk
 * registration parses one per line; see pki_lite.c). Returns 1 and *out
 * (free with pki_lite_free) when data holds a certificate that
 * pki_cert_parse, pki_cert_check_decoded and pki_key_check all accept, with
 * the same id, serial, names and validity; 0 when the lite path does not
 * take it (malformed, or merely unusual: the caller then takes the full
 * path, which names what is wrong); -1 out of memory. */
struct pki_cert_lite;
int pki_lite_parse(const void *data, size_t len, struct pki_cert_lite **out);
void pki_lite_free(struct pki_cert_lite *lc);
/* Its id (as pki_cert_id), validity, serial and names (as pki_cert_*). */
const char *pki_lite_id(const struct pki_cert_lite *lc);
void pki_lite_validity(const struct pki_cert_lite *lc, int64_t *not_before, int64_t *not_after);
iotp_rc pki_lite_serial_hex(const struct pki_cert_lite *lc, char **out, struct iotp_err *err);
iotp_rc pki_lite_name_string(const struct pki_cert_lite *lc, int issuer, char **out,
                             struct iotp_err *err);
/* 1 when ca's key verifies the certificate's signature, as X509_verify
 * would; 0 when not shown (a wrong key, or a case the lite path leaves to
 * X509_verify). */
int pki_lite_signed_by(const struct pki_cert_lite *lc, X509 *ca);
/* Remembers the answer of pki_lite_signed_by for the CA whose id (its
 * pki_cert_id) is ca_id, computed ahead of time, maybe on another thread
 * (bulk registration checks signatures while the store writes the lines
 * before). The answer depends on the two certificates only, and an id
 * names one certificate, so it stays true. A few are kept. */
void pki_lite_note_ca(struct pki_cert_lite *lc, const char *ca_id, int signed_ok);
/* pki_lite_signed_by(lc, ca) for the CA ca_id, from a note when there is one. */
int pki_lite_signed_by_id(const struct pki_cert_lite *lc, const char *ca_id, X509 *ca);

/* Parses one certificate from PEM (or DER). IOTP_ERR_CERT when malformed. */
iotp_rc pki_cert_parse(const void *data, size_t len, X509 **out, struct iotp_err *err);
/* The checks pki_cert_parse makes after decoding (the public key decodes,
 * no malformed or duplicate extensions), for a certificate decoded
 * elsewhere (the broker's TLS handshake): IOTP_OK exactly when
 * pki_cert_parse of its encoding would succeed, else its IOTP_ERR_CERT. */
iotp_rc pki_cert_check_decoded(X509 *cert, struct iotp_err *err);
/* Parses every certificate of a PEM bundle; *out is a new stack the caller
 * frees with sk_X509_pop_free(*out, X509_free). At least one is required. */
iotp_rc pki_cert_parse_bundle(const void *data, size_t len, STACK_OF(X509) **out,
                              struct iotp_err *err);
/* PEM text of a certificate; *out malloc'ed. */
iotp_rc pki_cert_to_pem(X509 *cert, char **out, struct iotp_err *err);
/* Certificate id: lowercase hex SHA-256 of the DER encoding + NUL. */
iotp_rc pki_cert_id(X509 *cert, char out[PKI_CERT_ID_LEN + 1], struct iotp_err *err);
/* Validity as epoch seconds. */
iotp_rc pki_cert_validity(X509 *cert, int64_t *not_before, int64_t *not_after,
                          struct iotp_err *err);
/* Serial number as lowercase hex (no leading zeros beyond one byte). *out
 * malloc'ed. */
iotp_rc pki_cert_serial_hex(X509 *cert, char **out, struct iotp_err *err);
/* One-line RFC 2253 subject (or issuer) string. *out malloc'ed. */
iotp_rc pki_cert_subject_string(X509 *cert, int issuer, char **out, struct iotp_err *err);

/* Reads one subject (issuer when issuer != 0) field by its AWS policy name:
 * "CommonName", "Country", "Organization", "OrganizationalUnit",
 * "DistinguishedNameQualifier", "StateName" (also "State"), "Locality",
 * "SerialNumber", "Title", "Surname", "GivenName", "Initials", "Pseudonym",
 * "GenerationQualifier". IOTP_ERR_NOT_FOUND when the certificate has no such
 * field, IOTP_ERR_INVALID for an unknown name; the first value is returned,
 * NUL-terminated UTF-8, truncated to size. */
iotp_rc pki_cert_name_field(X509 *cert, int issuer, const char *field, char *out,
                            size_t size, struct iotp_err *err);

/* Checks that cert is signed by ca's key and issued under ca's subject
 * (signature, issuer name, validity of both now, ca is a CA).
 * IOTP_ERR_CERT with the reason otherwise. A direct check of this one link
 * (X509_check_issued + X509_verify + times), not X509_verify_cert: no trust
 * store and no purpose check, so any device certificate can be registered. */
iotp_rc pki_cert_chains_to(X509 *cert, X509 *ca, struct iotp_err *err);
/* 1 when cert is a CA certificate (basicConstraints CA:TRUE). */
int pki_cert_is_ca(X509 *cert);

/* RegisterCACertificate proof of possession: verif must be signed by ca's
 * key and have CN equal (case-insensitively) to registration_code.
 * IOTP_ERR_REGCODE otherwise, naming which check failed. */
iotp_rc pki_verification_cert_check(X509 *verif, X509 *ca, const char *registration_code,
                                    struct iotp_err *err);

/* Public key of a certificate or CSR: borrowed (do not free). NULL when
 * there is none, including for a certificate fresh from pki_cert_issue or
 * pki_csr_issue (see there). */
EVP_PKEY *pki_cert_pubkey(X509 *cert);
/* SHA-256 of the DER SubjectPublicKeyInfo as lowercase hex (64 chars + NUL):
 * the fingerprint used by authorized public-key lists. */
iotp_rc pki_pubkey_fingerprint(EVP_PKEY *key, char out[65], struct iotp_err *err);

#endif
