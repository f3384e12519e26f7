/*
 * Authorized public-key lists and enrolment by CSR.
 *
 * Lazy registration by list: an operator uploads the public keys of devices
 * it expects (PEM SubjectPublicKeyInfo or its DER in hex, each with a
 * device id and optional attributes) as a named list tied to a provisioning
 * template. Only fingerprints are kept (lowercase hex SHA-256 of the DER
 * SPKI, pki_pubkey_fingerprint). A device later sends a CSR for its key
 * (EST simpleenroll or POST /provisioning/csr); when the key's fingerprint
 * is on a list and unused, a certificate is issued, the list's template is
 * applied with the parameters DeviceId + the entry's attributes, and the
 * entry is consumed -- all in one transaction, so each entry allows exactly
 * one enrolment even under concurrency. An unknown key and a replayed
 * (consumed) key are refused with IOTP_ERR_DENIED and leave an audit event
 * (authlist.unknown_key, authlist.replay); a consumption is audited as
 * authlist.consume.
 *
 * The same enrolment function serves the two other ways EST authorizes a
 * CSR -- a claim certificate presented over mutual TLS, or an access key
 * (HTTP Basic) allowed to provision the template -- and re-enrolment with a
 * current ACTIVE certificate. Business rules stay here; est.c and the HTTP
 * routes only decode and encode.
 *
 * Conventions are those of registry.h. Events: authlist.create,
 * authlist.add_keys, authlist.delete (object "authlist/<name>"),
 * authlist.unknown_key, authlist.replay, authlist.consume (object
 * "authlist/<name>" or "authlist" when no list matched), enroll.claim,
 * enroll.key, enroll.reenroll, enroll.retire (object "cert/<id>").
 */
#ifndef IOTP_AUTHLIST_H
#define IOTP_AUTHLIST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "core/accesskey.h"
#include "core/core.h"
#include "core/pki.h"
#include "core/registry.h"

#define AUTHLIST_NAME_MAX 128          /* [a-zA-Z0-9:_-]{1,128} */
#define AUTHLIST_DEVICE_ID_MAX 128     /* [a-zA-Z0-9:_-]{1,128}: a thing name */
#define AUTHLIST_KEYS_MAX 10000        /* keys in one upload */
#define AUTHLIST_PUBKEY_MAX 8192       /* characters of one public key */

/* ------------------------------------------------------------------ */
/* Lists                                                               */

/* The fingerprint of a public key given as PEM ("-----BEGIN PUBLIC
 * KEY-----") or as the hex of its DER SubjectPublicKeyInfo (whitespace and
 * ':' ignored). The key must pass pki_key_check. IOTP_ERR_INVALID with the
 * reason otherwise. */
iotp_rc authlist_key_fingerprint(const char *public_key, char out[65], struct iotp_err *err);

/* Creates an empty list bound to an existing provisioning template
 * (NOT_FOUND otherwise). description may be NULL. EXISTS when the name is
 * taken. */
iotp_rc authlist_create(struct iotp_core *core, const char *actor, const char *name,
                        const char *template_name, const char *description,
                        struct iotp_err *err);

/* Adds keys to a list, all or none: keys is a JSON array (at most
 * AUTHLIST_KEYS_MAX) of {"publicKey": string, "deviceId": string,
 * "attributes": {string: string}?}. Errors name the entry ("keys[3]: ...");
 * a key already on any list is EXISTS. *added receives the count. */
iotp_rc authlist_add_keys(struct iotp_core *core, const char *actor, const char *name,
                          const json_t *keys, int64_t *added, struct iotp_err *err);

struct authlist_info {
	char name[AUTHLIST_NAME_MAX + 1];
	char template_name[REGISTRY_NAME_MAX + 1];
	char *description;           /* owned, NULL when none */
	int64_t keys;                /* entries */
	int64_t consumed;            /* entries already used */
	int64_t created;
	int64_t updated;
};
void authlist_info_cleanup(struct authlist_info *i);

iotp_rc authlist_describe(struct iotp_core *core, const char *name, struct authlist_info *out,
                          struct iotp_err *err);
/* List names in order, default page REGISTRY_PAGE_DEFAULT. */
iotp_rc authlist_list(struct iotp_core *core, const struct registry_page *page,
                      struct registry_str_list *out, struct iotp_err *err);
/* Deletes a list and its entries (consumed or not; the events stay).
 * NOT_FOUND when absent. */
iotp_rc authlist_delete(struct iotp_core *core, const char *actor, const char *name,
                        struct iotp_err *err);

/* ------------------------------------------------------------------ */
/* Enrolment by CSR                                                    */

enum enroll_via {
	ENROLL_AUTHLIST = 1, /* the CSR's key is on an authorized list */
	ENROLL_CLAIM,        /* a claim certificate (purpose CLAIM) over mTLS */
	ENROLL_KEY           /* an access key allowed CreateProvisioningClaim
	                      * for the template (installer, operator, admin) */
};

struct enroll_in {
	enum enroll_via via;
	const void *csr;              /* PEM or DER PKCS#10 */
	size_t csr_len;
	const char *template_name;    /* the EST label; NULL: the credential's
	                               * (the list's, the claim's, or an
	                               * installer key's only template) */
	const char *claim_cert_id;    /* ENROLL_CLAIM: id of the TLS client
	                               * certificate */
	const struct accesskey *key;  /* ENROLL_KEY: the authenticated key */
};

struct enroll_out {
	char cert_id[PKI_CERT_ID_LEN + 1];
	char *cert_pem;                          /* owned */
	char thing_name[REGISTRY_NAME_MAX + 1];  /* "" when the template has none */
};
void enroll_out_cleanup(struct enroll_out *o);

/* Issues a certificate for the CSR (issuing CA, [pki] device_cert_days)
 * and applies the template, in one transaction; the certificate is ACTIVE
 * unless the template sets another status. Errors: CERT (bad CSR), DENIED
 * (unknown or consumed key, claim not usable, key not allowed, template
 * disabled or not the credential's), INVALID (no template can be chosen),
 * TEMPLATE (the template fails), NOT_FOUND (the template does not exist). */
iotp_rc authlist_enroll(struct iotp_core *core, const char *actor, const struct enroll_in *in,
                        struct enroll_out *out, struct iotp_err *err);

/* 1 in *known when the CSR's public key is on a list (consumed or not).
 * CERT for a CSR that does not parse. Lets EST choose between enrolling by
 * list and asking for credentials (401) before anything is recorded. */
iotp_rc authlist_csr_known(struct iotp_core *core, const void *csr, size_t len, int *known,
                           struct iotp_err *err);

/* 1 in *is_claim when cert_id is a registered certificate of purpose CLAIM
 * (a provisioning claim), whatever its status: EST then enrols by claim and
 * reports the claim's own problems. */
iotp_rc authlist_cert_is_claim(struct iotp_core *core, const char *cert_id, int *is_claim,
                               struct iotp_err *err);

/* EST simplereenroll: current_cert_id is the TLS client certificate, which
 * must be a registered ACTIVE certificate (DENIED naming its status
 * otherwise, NOT_FOUND when unknown). The CSR's subject must equal the
 * current certificate's (RFC 7030 4.2.2; CERT otherwise); its key may be
 * new. The new certificate is ACTIVE, attached to the same things and
 * policies, and recorded so that the current one becomes INACTIVE once the
 * new one is first used (authlist_retire_on_use). */
iotp_rc authlist_reenroll(struct iotp_core *core, const char *actor, const char *current_cert_id,
                          const void *csr, size_t len, struct enroll_out *out,
                          struct iotp_err *err);

/* First use of cert_id (a TLS handshake with it, an EST call): when it
 * replaced a certificate by re-enrolment, that one becomes INACTIVE now
 * (unless already REVOKED or INACTIVE) and *retired (may be NULL) receives
 * 1. No-op for any other certificate. For the broker's connect path too. */
iotp_rc authlist_retire_on_use(struct iotp_core *core, const char *actor, const char *cert_id,
                               int *retired, struct iotp_err *err);

#endif
