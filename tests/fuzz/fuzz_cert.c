/*
 * fuzz_cert: pki_cert_parse and pki_cert_parse_bundle on arbitrary bytes,
 * then every reader of a parsed certificate (id, PEM, validity, serial,
 * subject/issuer strings, each AWS name field, CA checks). These see
 * certificates registered by operators and presented by devices.
 * Checked beyond "no crash, no leak": a refusal is IOTP_ERR_CERT with a
 * message and no output; a parsed certificate round-trips through
 * pki_cert_to_pem to the same id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "core/pki.h"

static const char *const fields[] = {
	"CommonName", "Country", "Organization", "OrganizationalUnit",
	"DistinguishedNameQualifier", "StateName", "State", "Locality", "SerialNumber",
	"Title", "Surname", "GivenName", "Initials", "Pseudonym", "GenerationQualifier",
};

static void read_all(X509 *x)
{
	struct iotp_err err;
	char id[PKI_CERT_ID_LEN + 1], id2[PKI_CERT_ID_LEN + 1], buf[65], *s = NULL;
	int64_t nb, na;
	X509 *back = NULL;

	if (pki_cert_id(x, id, &err) != IOTP_OK || strlen(id) != PKI_CERT_ID_LEN)
		abort();
	if (pki_cert_to_pem(x, &s, &err) != IOTP_OK)
		abort();
	/* What we print, we read back as the same certificate. */
	if (pki_cert_parse(s, strlen(s), &back, &err) != IOTP_OK ||
	    pki_cert_id(back, id2, &err) != IOTP_OK || strcmp(id, id2) != 0)
		abort();
	X509_free(back);
	free(s);
	(void)pki_cert_validity(x, &nb, &na, &err);
	if (pki_cert_serial_hex(x, &s, &err) == IOTP_OK)
		free(s);
	for (int issuer = 0; issuer < 2; issuer++) {
		if (pki_cert_subject_string(x, issuer, &s, &err) == IOTP_OK)
			free(s);
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			iotp_rc rc = pki_cert_name_field(x, issuer, fields[i], buf, sizeof(buf), &err);

			if (rc == IOTP_OK && strlen(buf) >= sizeof(buf))
				abort();
		}
	}
	(void)pki_cert_is_ca(x);
	(void)pki_key_check(pki_cert_pubkey(x), &err);
	(void)pki_cert_chains_to(x, x, &err);
	(void)pki_verification_cert_check(x, x, "0123456789abcdef", &err);
	ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct iotp_err err = {0};
	X509 *x = NULL;
	STACK_OF(X509) *sk = NULL;
	iotp_rc rc;

	rc = pki_cert_parse(data, size, &x, &err);
	if (rc == IOTP_OK) {
		read_all(x);
		X509_free(x);
	} else if ((rc != IOTP_ERR_CERT && rc != IOTP_ERR_NOMEM) || err.msg[0] == '\0' ||
	           x != NULL) {
		abort();
	}
	rc = pki_cert_parse_bundle(data, size, &sk, &err);
	if (rc == IOTP_OK) {
		if (sk_X509_num(sk) < 1)
			abort();
		for (int i = 0; i < sk_X509_num(sk) && i < 4; i++)
			read_all(sk_X509_value(sk, i));
		sk_X509_pop_free(sk, X509_free);
	} else if ((rc != IOTP_ERR_CERT && rc != IOTP_ERR_NOMEM) || sk != NULL) {
		abort();
	}
	if (ERR_peek_error() != 0)
		abort(); /* every path drains the OpenSSL error queue */
	return 0;
}
