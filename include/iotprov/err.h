/*
 * The error-report struct shared by the service and the device SDK: every
 * fallible function returns an iotp_rc and takes a last `struct iotp_err *`
 * (may be NULL) that receives a human-readable message. The message buffer
 * is fixed so that reporting an error never allocates. Public because the
 * device SDK (iotprov/device.h) takes it; the service's helpers that fill it
 * are in src/common/err.h.
 */
#ifndef IOTPROV_ERR_H
#define IOTPROV_ERR_H

#include "iotprov/rc.h"

#define IOTP_ERR_MSG_MAX 512

struct iotp_err {
	iotp_rc rc;
	char msg[IOTP_ERR_MSG_MAX];
};

/* Static English name of a code, e.g. "not found". Never NULL. */
const char *iotp_strerror(iotp_rc rc);

#endif
