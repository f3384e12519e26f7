/*
 * iotprov result codes, shared by the service and the device SDK.
 *
 * The list is append-only: a code keeps its number forever, because numbers
 * reach logs, metrics and device firmware. Add new codes at the end.
 */
#ifndef IOTPROV_RC_H
#define IOTPROV_RC_H

typedef enum iotp_rc {
	IOTP_OK = 0,
	IOTP_ERR_INVALID = 1,       /* malformed or out-of-range input */
	IOTP_ERR_NOMEM = 2,         /* allocation failed */
	IOTP_ERR_NOT_FOUND = 3,     /* the named object does not exist */
	IOTP_ERR_EXISTS = 4,        /* an object with that name or id exists */
	IOTP_ERR_CONFLICT = 5,      /* still in use (attached, has children) */
	IOTP_ERR_VERSION = 6,       /* expectedVersion does not match */
	IOTP_ERR_STATE = 7,         /* not allowed in the object's current status */
	IOTP_ERR_CERT = 8,          /* certificate or CSR fails validation */
	IOTP_ERR_POLICY = 9,        /* malformed policy document */
	IOTP_ERR_AUTH = 10,         /* authentication failed (no detail given) */
	IOTP_ERR_DENIED = 11,       /* authenticated but not allowed */
	IOTP_ERR_DB = 12,           /* the store failed */
	IOTP_ERR_CRYPTO = 13,       /* a cryptographic operation failed */
	IOTP_ERR_IO = 14,           /* file or network I/O failed */
	IOTP_ERR_TOO_BIG = 15,      /* input over its size cap */
	IOTP_ERR_LIMIT = 16,        /* a configured limit is reached */
	IOTP_ERR_REGCODE = 17,      /* registration code / verification cert wrong */
	IOTP_ERR_THROTTLED = 18,    /* rate limited, try later */
	IOTP_ERR_CONFIG = 19,       /* configuration invalid */
	IOTP_ERR_INTERNAL = 20,     /* a bug or an impossible state */
	IOTP_ERR_BUSY = 21,         /* transient store contention, retry */
	IOTP_ERR_TEMPLATE = 22,     /* provisioning template failed to apply */
	IOTP_ERR_TOKEN = 23,        /* certificate ownership token invalid */
	IOTP_ERR_EXPIRED = 24,      /* a credential or token has expired */
	IOTP_ERR_SIGNATURE = 25,    /* a request signature does not match */
	IOTP_ERR_TIMEOUT = 26,      /* an operation did not finish in time */
	IOTP_ERR_UNSUPPORTED = 27   /* a valid request iotprov does not support */
} iotp_rc;

#endif
