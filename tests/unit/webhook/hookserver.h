/*
 * A pre-provisioning hook server for the tests, on 127.0.0.1 (plain HTTP
 * or HTTPS with a certificate from the test's own CA), one thread per
 * connection so that a slow answer never holds up another. The path
 * chooses the behaviour:
 *   /allow      200 {"allowProvisioning": true}
 *   /deny       200 {"allowProvisioning": false}
 *   /override   200 allow + parameterOverrides {"SerialNumber": "HOOK"}
 *   /sleep/MS   waits MS milliseconds, then allows
 *   /500        500 with an allowing body (must still refuse)
 *   /garbage    200 with a body that is not JSON
 *   /big        200 with 100 KiB of JSON
 *   /redirect   302 to /allow (must not be followed)
 *   /verify     401 unless X-Iotprov-Signature is right for the server's
 *               secret and X-Iotprov-Timestamp is within 300 s; else allows
 * The last request seen is kept for the test to inspect.
 */
#ifndef IOTP_TEST_HOOKSERVER_H
#define IOTP_TEST_HOOKSERVER_H

#include <pthread.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct hookserver {
	int fd;
	int port;
	SSL_CTX *tls;               /* NULL: plain HTTP */
	const char *secret;         /* for /verify */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int active;                 /* connection threads running */
	int stopping;
	int requests;
	char last_path[128];
	char last_sig[128];
	char last_ts[32];
	char last_ctype[64];
	char *last_body;            /* malloc'ed */
};

/* Starts a server; tls_cert_pem/tls_key (may be NULL for HTTP) are used for
 * HTTPS. Returns 0 on success. */
int hookserver_start(struct hookserver *s, const char *secret, X509 *tls_cert,
                     EVP_PKEY *tls_key);
/* Stops accepting, waits for every connection thread, frees. */
void hookserver_stop(struct hookserver *s);

#endif
