/*
 * Helpers shared by authlist.c and authlist_enroll.c only.
 */
#ifndef IOTP_AUTHLIST_INTERNAL_H
#define IOTP_AUTHLIST_INTERNAL_H

#include <jansson.h>

#include "core/authlist.h"

/* [a-zA-Z0-9:_-]{1,128} */
int authlist_name_ok(const char *s);

/* Appends an event; detail (may be NULL) is a JSON object whose reference
 * is stolen. */
iotp_rc authlist_event(struct iotp_core *core, const char *actor, const char *action,
                       const char *object, json_t *detail, struct iotp_err *err);

#endif
