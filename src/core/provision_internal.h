/*
 * Helpers shared by the provision*.c files and nobody else: transactions
 * that unwind exactly their own level, events, paging tokens, row access
 * and the insertion of a certificate iotprov has just issued. Not part of
 * the provisioning contract (provision.h).
 */
#ifndef IOTP_PROVISION_INTERNAL_H
#define IOTP_PROVISION_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "core/provision.h"
#include "core/store/store.h"

/* Starts a (possibly nested) transaction and remembers the depth. */
iotp_rc prov_tx_begin(struct iotp_core *core, int *depth0, struct iotp_err *err);
/* Commits when rc is IOTP_OK, else rolls back every level above depth0;
 * returns the final code (a failed commit's when the commit fails). */
iotp_rc prov_tx_end(struct iotp_core *core, int depth0, iotp_rc rc, struct iotp_err *err);

/* Appends an event; detail (may be NULL) is stolen. */
iotp_rc prov_event(struct iotp_core *core, const char *actor, const char *action,
                   const char *object, json_t *detail, struct iotp_err *err);

/* Template names: [0-9A-Za-z_-]{1,36}. */
int prov_template_name_ok(const char *name);

/* Paging tokens of the template lists: tag + hex of the last key. *out
 * malloc'ed. prov_page_open checks the request (INVALID on a bad size or
 * a token of another list) and gives the page size and the key (malloc'ed,
 * NULL on the first page). */
iotp_rc prov_page_token(char tag, const char *key, char **out, struct iotp_err *err);
iotp_rc prov_page_open(const struct registry_page *page, char tag, int def, int *max,
                       char **key, struct iotp_err *err);

/* Row access: NULL for SQL NULL. */
const char *prov_col_str(const struct store_row *row, int i);
int64_t prov_col_int(const struct store_row *row, int i);

/* Stores a certificate issued by core->issuing (x, its PEM) with status,
 * purpose ("DEVICE", "CLAIM") and template_name (NULL: none) and appends
 * the cert.create event, in one (nested) transaction. id_out receives the
 * certificate id. */
iotp_rc prov_cert_store(struct iotp_core *core, const char *actor, X509 *x, const char *pem,
                        enum registry_cert_status status, const char *purpose,
                        const char *template_name, char id_out[PKI_CERT_ID_LEN + 1],
                        struct iotp_err *err);

/* Validity of issued device certificates from the conf; CONFIG when the
 * core has no issuing CA or no validity. */
iotp_rc prov_issuer_ready(struct iotp_core *core, struct iotp_err *err);
#define PROV_ISSUE_SKEW 300 /* seconds notBefore is backdated */

#endif
