/*
 * Helpers shared by bulk.c, bulk_run.c and bulk_input.c only.
 */
#ifndef IOTP_BULK_INTERNAL_H
#define IOTP_BULK_INTERNAL_H

#include <jansson.h>

#include "core/bulk.h"

/* Appends a task event (object "thingregistrationtask/<id>"); detail (may
 * be NULL) is a JSON object whose reference is stolen. */
iotp_rc bulk_event(struct iotp_core *core, const char *actor, const char *action,
                   const char *id, json_t *detail, struct iotp_err *err);

#endif
