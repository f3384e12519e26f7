/*
 * fuzz_device_est: the device's reader of EST replies (base64, optionally
 * PEM-armoured, certs-only PKCS#7) on arbitrary bytes, with and without a
 * key the issued certificate must match. A success is PEM that parses back
 * as at least one certificate, the first one for the key when one is
 * given; a failure carries a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "core/pki.h"
#include "device/dev.h"

static EVP_PKEY *key;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct iotp_err err;
	char *pem = NULL;
	size_t len = 0;
	int i;

	if (key == NULL && pki_key_generate(PKI_KEY_EC_P256, &key, NULL) != IOTP_OK)
		abort();
	for (i = 0; i < 2; i++) {
		EVP_PKEY *match = i ? key : NULL;

		err.msg[0] = '\0';
		if (est_parse_certs(data, size, match, &pem, &len, &err) == IOTP_OK) {
			STACK_OF(X509) *certs = NULL;

			if (pki_cert_parse_bundle(pem, len, &certs, NULL) != IOTP_OK ||
			    sk_X509_num(certs) < 1)
				abort();
			if (match != NULL &&
			    EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(certs, 0)), match) != 1)
				abort();
			sk_X509_pop_free(certs, X509_free);
			free(pem);
			pem = NULL;
		} else if (err.msg[0] == '\0') {
			abort();
		}
		ERR_clear_error();
	}
	return 0;
}
