/*
 * fuzz_est: the EST request decoders on arbitrary bytes: the base64 body
 * decoder (then the CSR parser on whatever it yields, as simpleenroll
 * does) and the HTTP Basic parser. Checked beyond "no crash, no leak":
 * decoding never yields more than 3/4 of the input; base64 written by
 * OpenSSL for any bytes (with line breaks) decodes back to those bytes;
 * refusals carry a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "core/pki.h"
#include "server/est.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *der = NULL;
	size_t len = 0;
	struct iotp_err err;
	iotp_rc rc;

	err.msg[0] = '\0';
	rc = est_decode_body((const char *)data, size, &der, &len, &err);
	if (rc == IOTP_OK) {
		X509_REQ *req = NULL;

		if (len == 0 || len > size / 4 * 3 + 3)
			abort();
		if (pki_csr_parse(der, len, &req, &err) == IOTP_OK)
			X509_REQ_free(req);
		ERR_clear_error();
		free(der);
	} else if (err.msg[0] == '\0') {
		abort();
	}

	/* Round trip: OpenSSL's base64 of the input, 64-character lines. */
	if (size > 0 && size <= 3 * 1024) {
		unsigned char *b64 = malloc(size / 48 * 66 + 70);
		size_t pos = 0;

		if (b64 == NULL)
			abort();
		for (size_t i = 0; i < size; i += 48) {
			int n = (int)(size - i < 48 ? size - i : 48);

			pos += (size_t)EVP_EncodeBlock(b64 + pos, data + i, n);
			b64[pos++] = '\n';
		}
		if (est_decode_body((const char *)b64, pos, &der, &len, &err) != IOTP_OK ||
		    len != size || memcmp(der, data, size) != 0)
			abort();
		free(der);
		free(b64);
	}

	/* The Basic parser on the input as a header value. */
	{
		char *hdr = malloc(size + 1);
		char user[EST_USER_MAX + 1], pass[EST_PASS_MAX + 1];

		if (hdr == NULL)
			abort();
		memcpy(hdr, data, size);
		hdr[size] = '\0';
		if (est_parse_basic(hdr, user, pass, &err) == IOTP_OK &&
		    (strlen(user) > EST_USER_MAX || strlen(pass) > EST_PASS_MAX))
			abort();
		free(hdr);
	}
	return 0;
}
