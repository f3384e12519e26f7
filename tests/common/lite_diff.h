/*
 * The rule of the lite certificate path (src/core/pki_lite.c), checked on
 * one input by the unit test and the fuzz target alike: when
 * pki_lite_parse takes a certificate, the full path (pki_cert_parse,
 * pki_cert_check_decoded, pki_key_check) takes it too and reads the same
 * id, validity, serial, subject and issuer; and whenever the lite
 * signature check says a key signed it, X509_verify says so too.
 *
 * lite_diff() returns the lite verdict (1 taken, 0 not) or -1 with a line
 * in why[] when the rule is broken. ca may be NULL (then the certificate's
 * own key is tried, which a fuzzer's self-signed inputs exercise).
 */
#ifndef IOTP_TEST_LITE_DIFF_H
#define IOTP_TEST_LITE_DIFF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "core/pki.h"

static int lite_diff_strings(iotp_rc (*lite_fn)(const struct pki_cert_lite *, int, char **,
                                                struct iotp_err *),
                             const struct pki_cert_lite *lc, X509 *x, int issuer)
{
	struct iotp_err err;
	char *a = NULL, *b = NULL;
	int same;

	if (lite_fn(lc, issuer, &a, &err) != IOTP_OK ||
	    pki_cert_subject_string(x, issuer, &b, &err) != IOTP_OK) {
		free(a);
		free(b);
		return 0;
	}
	same = strcmp(a, b) == 0;
	free(a);
	free(b);
	return same;
}

static int lite_diff(const void *data, size_t len, X509 *ca, char why[160])
{
	struct pki_cert_lite *lc = NULL;
	struct iotp_err err;
	X509 *x = NULL;
	char id[PKI_CERT_ID_LEN + 1], *s1 = NULL, *s2 = NULL;
	int64_t nb1 = 0, na1 = 0, nb2 = 0, na2 = 0;
	int lite = pki_lite_parse(data, len, &lc), verdict = -1;

	why[0] = '\0';
	if (lite != 1) {
		verdict = lite == 0 ? 0 : -1;
		if (lite != 0)
			snprintf(why, 160, "pki_lite_parse: out of memory");
		goto out;
	}
	if (pki_cert_parse(data, len, &x, &err) != IOTP_OK) {
		snprintf(why, 160, "lite took it, pki_cert_parse refused: %.100s", err.msg);
		goto out;
	}
	if (pki_cert_check_decoded(x, &err) != IOTP_OK ||
	    pki_key_check(pki_cert_pubkey(x), &err) != IOTP_OK) {
		snprintf(why, 160, "lite took it, the full checks refused: %.100s", err.msg);
		goto out;
	}
	if (pki_cert_id(x, id, &err) != IOTP_OK || strcmp(id, pki_lite_id(lc)) != 0) {
		snprintf(why, 160, "ids differ");
		goto out;
	}
	pki_lite_validity(lc, &nb1, &na1);
	if (pki_cert_validity(x, &nb2, &na2, &err) != IOTP_OK || nb1 != nb2 || na1 != na2) {
		snprintf(why, 160, "validity differs");
		goto out;
	}
	if (pki_lite_serial_hex(lc, &s1, &err) != IOTP_OK ||
	    pki_cert_serial_hex(x, &s2, &err) != IOTP_OK || strcmp(s1, s2) != 0) {
		snprintf(why, 160, "serials differ");
		goto out;
	}
	for (int issuer = 0; issuer < 2; issuer++) {
		if (!lite_diff_strings(pki_lite_name_string, lc, x, issuer)) {
			snprintf(why, 160, "%s strings differ", issuer ? "issuer" : "subject");
			goto out;
		}
	}
	if (pki_lite_signed_by(lc, ca != NULL ? ca : x) &&
	    X509_verify(x, X509_get0_pubkey(ca != NULL ? ca : x)) != 1) {
		snprintf(why, 160, "lite says signed, X509_verify does not");
		goto out;
	}
	verdict = 1;
out:
	ERR_clear_error();
	free(s1);
	free(s2);
	X509_free(x);
	pki_lite_free(lc);
	return verdict;
}

#endif
