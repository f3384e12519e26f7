/*
 * The core context: what every core function needs to do its work, passed
 * explicitly (no process-wide state). One context per thread: it owns one
 * store connection.
 */
#ifndef IOTP_CORE_H
#define IOTP_CORE_H

#include <stddef.h>

#include <jansson.h>

#include "common/conf.h"
#include "common/err.h"
#include "core/pki.h"
#include "core/store/store.h"

struct iotp_core {
	const struct iotp_conf *conf; /* borrowed; outlives the core */
	struct store *store;          /* owned */
	struct pki_ca issuing;        /* owned: signs device certificates */
	X509 *root;                   /* owned: the root above the issuing CA */
};

/* Opens the store named by conf and loads the issuing CA and root. On
 * failure nothing is left open. Release with core_close(). */
iotp_rc core_open(struct iotp_core *core, const struct iotp_conf *conf,
                  struct iotp_err *err);
/* As core_open with an already-open store (ownership passes to the core) and
 * no CA: for tests and tools that need only the registry. */
void core_init_with_store(struct iotp_core *core, const struct iotp_conf *conf,
                          struct store *store);
void core_close(struct iotp_core *core);

/* Writes "arn:aws:iot:<region>:<account>:<resource>" into out. */
iotp_rc core_arn(const struct iotp_core *core, const char *resource, char *out,
                 size_t size, struct iotp_err *err);
/* Resource part of an iotprov ARN ("thing/x" from "arn:aws:iot:r:a:thing/x").
 * Accepts ARNs of any region and account so that records survive a change of
 * either; returns a pointer into arn, or NULL when arn is not an IoT ARN. */
const char *core_arn_resource(const char *arn);

/* Appends an audit event (store_event_append) whose detail is a JSON object
 * (keys sorted, compact), or NULL for none. Takes the reference to detail,
 * also on failure; a NULL detail from a failed json_pack is simply no
 * detail. Call it inside the transaction that makes the change. */
iotp_rc core_event(struct iotp_core *core, const char *actor, const char *action,
                   const char *object, json_t *detail, struct iotp_err *err);

#endif
