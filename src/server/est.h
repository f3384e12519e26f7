/*
 * EST (RFC 7030) in iotprovd, under /.well-known/est/ and
 * /.well-known/est/<label>/ (the label names the provisioning template):
 *
 *   GET  cacerts         the issuing CA and the root, PKCS#7 certs-only, base64
 *   POST simpleenroll    body: base64 DER PKCS#10, Content-Type application/pkcs10;
 *                        answer: the new certificate, PKCS#7 certs-only, base64
 *   POST simplereenroll  the same, authenticated by the current certificate (mTLS)
 *   GET  csrattrs        204: iotprov asks for no particular attributes
 *
 * simpleenroll is authorized, in this order, by ([est] auth says which are
 * on): a provisioning claim certificate sent as TLS client certificate;
 * HTTP Basic credentials (access key id and secret of a key allowed to
 * provision the template); the CSR's own public key when it is on an
 * authorized key list. A request with none of these whose key is not on a
 * list gets 401 with WWW-Authenticate (RFC 7030 3.2.3) when basic is on,
 * else 403. Errors are text/plain. The rules live in core/authlist.h; this
 * file only decodes and encodes, and the decoders below are exported for
 * the unit tests and fuzz targets.
 */
#ifndef IOTP_EST_H
#define IOTP_EST_H

#include <stddef.h>

#include <openssl/x509.h>

#include "common/err.h"
#include "server/router.h"

#define EST_BODY_MAX 16384  /* characters of a base64 CSR body */
#define EST_USER_MAX 128
#define EST_PASS_MAX 128

extern const struct route_table api_est_routes;

/* Decodes a base64 body (line breaks and spaces allowed anywhere, padding
 * only at the end) into *der (malloc'ed, caller frees). IOTP_ERR_TOO_BIG
 * beyond EST_BODY_MAX characters, IOTP_ERR_INVALID for anything that is
 * not base64 or decodes to nothing. */
iotp_rc est_decode_body(const char *body, size_t len, unsigned char **der, size_t *der_len,
                        struct iotp_err *err);

/* base64 (64-character lines) of a degenerate PKCS#7 SignedData holding
 * the n certificates (RFC 7030 4.1.3 / 4.2.3). *out malloc'ed and
 * NUL-terminated, *len its length. */
iotp_rc est_encode_certs(X509 *const *certs, size_t n, char **out, size_t *len,
                         struct iotp_err *err);

/* Splits an "Authorization: Basic <base64(user:pass)>" value. The scheme
 * is case-insensitive. IOTP_ERR_AUTH for anything else (not Basic, bad
 * base64, no ':', too long). pass is a secret: the caller wipes it. */
iotp_rc est_parse_basic(const char *header, char user[EST_USER_MAX + 1],
                        char pass[EST_PASS_MAX + 1], struct iotp_err *err);

#endif
