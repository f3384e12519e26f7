/*
 * Setting up a data directory's store: what `iotprov init` records about
 * iotprov's own PKI, so that the registry knows its own CAs the way it
 * knows registered ones (ListCACertificates shows them, origin ROOT and
 * ISSUING, and the registry refuses to change or delete them).
 */
#ifndef IOTP_SETUP_H
#define IOTP_SETUP_H

#include <openssl/x509.h>

#include "common/err.h"
#include "core/core.h"

/* Records ca (borrowed) in the cas table as one of iotprov's own CAs:
 * origin "ROOT" or "ISSUING" (anything else is IOTP_ERR_INVALID), status
 * ACTIVE, auto-registration DISABLE, mode DEFAULT, and appends a
 * "cacert.create" event by actor, both in one transaction. ca must be a CA
 * certificate (IOTP_ERR_CERT otherwise). IOTP_ERR_EXISTS when a CA with
 * that id is recorded already (nothing changes). Needs only core->store. */
iotp_rc setup_own_ca_record(struct iotp_core *core, const char *actor, X509 *ca,
                            const char *origin, struct iotp_err *err);

#endif
