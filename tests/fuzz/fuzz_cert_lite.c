/*
 * fuzz_cert_lite: the lite certificate path (pki_lite_parse, the bulk
 * registration hot path) against the full one on arbitrary bytes. Beyond
 * "no crash, no leak": whatever the lite path takes, the full path takes
 * with the same id, validity, serial and names, and a signature the lite
 * check accepts (here with the certificate's own key) X509_verify accepts
 * too (tests/common/lite_diff.h).
 */
#include <stdint.h>
#include <stdlib.h>

#include <openssl/err.h>

#include "../common/lite_diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[160];

	if (lite_diff(data, size, NULL, why) < 0)
		abort();
	if (ERR_peek_error() != 0)
		abort(); /* every path drains the OpenSSL error queue */
	return 0;
}
