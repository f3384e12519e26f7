/*
 * fuzz_csr: the CSR parsers on arbitrary bytes (PEM or DER): pki_csr_parse
 * (+ pki_cert_issue) and the one-call pki_csr_issue, which sees every CSR a
 * device sends (CreateCertificateFromCsr, fleet provisioning, EST) through
 * its own ASN.1 template and key construction. Checked beyond "no crash, no
 * leak":
 * - a refused CSR is IOTP_ERR_CERT (or NOMEM) with a message, the
 *   out-parameter is left alone and the OpenSSL error queue is drained;
 * - the two paths agree: same code, same message on refusal, and on success
 *   certificates with the same subject and SubjectPublicKeyInfo, both
 *   chaining to the CA.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "core/pki.h"

static struct pki_ca ca;

static void make_ca(void)
{
	if (ca.cert != NULL)
		return;
	/* P-256 like most device keys, so pki_csr_issue's shortcut of copying
	 * the curve from the CA key is exercised. */
	if (pki_key_generate(PKI_KEY_EC_P256, &ca.key, NULL) != IOTP_OK ||
	    pki_ca_create_root(ca.key, "Fuzz CA", 30, &ca.cert, NULL) != IOTP_OK)
		abort();
}

/* DER of the certificate's SubjectPublicKeyInfo; *out OPENSSL_malloc'ed. */
static int spki_der(X509 *x, unsigned char **out)
{
	return i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), out);
}

static void same_cert(X509 *a, X509 *b)
{
	unsigned char *da = NULL, *db = NULL;
	int na = spki_der(a, &da), nb = spki_der(b, &db);

	if (na <= 0 || na != nb || memcmp(da, db, (size_t)na) != 0 ||
	    X509_NAME_cmp(X509_get_subject_name(a), X509_get_subject_name(b)) != 0)
		abort();
	OPENSSL_free(da);
	OPENSSL_free(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	X509_REQ *const untouched = (X509_REQ *)(uintptr_t)1;
	X509_REQ *req = untouched;
	struct iotp_err e1 = {0}, e2 = {0};
	struct pki_issue_opts opts = {.days = 1, .not_before_skew = 60};
	X509 *c1 = NULL, *c2 = NULL;
	char id[PKI_CERT_ID_LEN + 1];
	iotp_rc rc1, rc2;

	make_ca();
	rc1 = pki_csr_issue(&ca, data, size, &opts, &c1, &e1);
	if (ERR_peek_error() != 0)
		abort(); /* the error queue must be drained */
	rc2 = pki_csr_parse(data, size, &req, &e2);
	if (rc2 != IOTP_OK) {
		if ((rc2 != IOTP_ERR_CERT && rc2 != IOTP_ERR_NOMEM) || e2.msg[0] == '\0' ||
		    req != untouched || ERR_peek_error() != 0)
			abort();
		req = NULL;
	} else {
		if (pki_key_check(X509_REQ_get0_pubkey(req), NULL) != IOTP_OK)
			abort();
		rc2 = pki_cert_issue(&ca, req, &opts, &c2, &e2);
		/* e.g. an empty subject or an over-long CN are refused cleanly */
		if (rc2 != IOTP_OK && rc2 != IOTP_ERR_CERT && rc2 != IOTP_ERR_INVALID)
			abort();
	}
	if (rc1 != rc2 || (rc1 != IOTP_OK && strcmp(e1.msg, e2.msg) != 0))
		abort();
	if (rc1 == IOTP_OK) {
		same_cert(c1, c2);
		if (pki_cert_chains_to(c1, ca.cert, &e1) != IOTP_OK ||
		    pki_cert_chains_to(c2, ca.cert, &e1) != IOTP_OK ||
		    pki_cert_id(c1, id, &e1) != IOTP_OK || strlen(id) != PKI_CERT_ID_LEN)
			abort();
	} else if (c1 != NULL || c2 != NULL) {
		abort();
	}
	X509_free(c1);
	X509_free(c2);
	X509_REQ_free(req);
	ERR_clear_error();
	return 0;
}
