/*
 * Helpers shared by authlist.c and authlist_enroll.c only.
 */
#ifndef IOTP_AUTHLIST_INTERNAL_H
#define IOTP_AUTHLIST_INTERNAL_H

#include <jansson.h>

#include "core/authlist.h"

/* [a-zA-Z0-9:_-]{1,128} */
int authlist_name_ok(const char *s);

#endif
