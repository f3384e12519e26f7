/*
 * Shared fixtures of the device unit tests: a private temporary directory,
 * a test CA that issues certificates for any key, and a SoftHSM2 token
 * ("dev", user PIN 1234) configured through SOFTHSM2_CONF in that
 * directory.
 */
#ifndef IOTP_TEST_DEVICE_HELPERS_H
#define IOTP_TEST_DEVICE_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/pki.h"
#include "iotprov/device.h"

#define TH_PIN "1234"
#define TH_TOKEN "dev"

extern struct pki_ca th_ca;

/* Creates the temp dir, the CA and the token; returns 0 on success. */
int th_setup(void);
void th_teardown(void);
/* dir/name in a rotating static buffer. */
const char *th_path(const char *name);
/* A certificate for key's public half with the given CN, as malloc'ed PEM. */
char *th_issue(EVP_PKEY *key, const char *cn);
/* A TLS server certificate for 127.0.0.1 with its key, as malloc'ed PEMs. */
void th_server_cert(char **cert_pem, char **key_pem);
/* Writes text to dir/name with mode. */
void th_write(const char *name, const char *text, int mode);
/* "pkcs11:token=dev;object=<object>;pin-value=1234" in a static buffer. */
const char *th_p11(const char *object);

/* Test lists of each file (main.c runs them). */
extern const struct CMUnitTest th_backoff_tests[];
extern const size_t th_backoff_count;
extern const struct CMUnitTest th_codec_tests[];
extern const size_t th_codec_count;
extern const struct CMUnitTest th_keystore_tests[];
extern const size_t th_keystore_count;
extern const struct CMUnitTest th_fleet_tests[];
extern const size_t th_fleet_count;
extern const struct CMUnitTest th_est_tests[];
extern const size_t th_est_count;
extern const struct CMUnitTest th_store_tests[];
extern const size_t th_store_count;

#endif
