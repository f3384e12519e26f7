/*
 * PKI, part 3: certificate signing requests (see pki.h). pki_csr_parse
 * returns a complete X509_REQ; pki_csr_issue goes from CSR bytes to a
 * certificate in one call and is what servers should use on the hot path.
 *
 * Why two paths: on OpenSSL 3.0, d2i_X509_REQ decodes the public key through
 * the generic OSSL_DECODER machinery, which builds a decoder context for each
 * key by enumerating every key manager and decoder of every provider, then
 * builds the curve group from scratch: together more than the ECDSA
 * verification itself. An X509_REQ offers no way to attach a key decoded
 * otherwise. So pki_csr_issue reads the CSR through a local ASN.1 template
 * that is PKCS#10 exactly as OpenSSL's X509_REQ template has it, except that
 * the SubjectPublicKeyInfo stays raw; it builds the EC key from the curve
 * and point (copying the curve from the CA key when they are the same, which
 * also saves building the group), verifies the signature over the very
 * bytes received, and copies the key bits into the certificate. Anything but
 * an EC key on P-256/P-384/P-521 signed with ECDSA, and anything the fast
 * path cannot handle, takes the pki_csr_parse + pki_cert_issue path, so both
 * accept and refuse the same CSRs with the same codes (fuzz_csr checks it).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "core/pki.h"
#include "core/pki_int.h"

#define CSR_MAX (64 * 1024)

static const char *const csr_labels[] = {"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST",
                                         NULL};

static const char bad_signature[] = "the CSR's signature does not verify with its public "
                                    "key (altered, or not signed by the key it carries)";

/* ---- the complete path --------------------------------------------------- */

static iotp_rc check_size(const void *data, size_t len, struct iotp_err *err)
{
	if (data == NULL || len == 0)
		return iotp_err_set(err, IOTP_ERR_CERT, "the CSR is empty");
	if (len > CSR_MAX)
		return iotp_err_set(err, IOTP_ERR_CERT, "the CSR is larger than %d bytes", CSR_MAX);
	return IOTP_OK;
}

iotp_rc pki_csr_parse(const void *data, size_t len, X509_REQ **out, struct iotp_err *err)
{
	unsigned char *alloc = NULL;
	const unsigned char *der = NULL, *p;
	size_t der_len = 0;
	X509_REQ *req = NULL;
	EVP_PKEY *pub;
	iotp_rc rc;

	if ((rc = check_size(data, len, err)) != IOTP_OK ||
	    (rc = pki_input_der(data, len, csr_labels, "CSR", &alloc, &der, &der_len, err)) !=
	            IOTP_OK)
		goto out;
	p = der;
	req = d2i_X509_REQ(NULL, &p, (long)der_len);
	if (req == NULL || (size_t)(p - der) != der_len) {
		ERR_clear_error();
		rc = iotp_err_set(err, IOTP_ERR_CERT,
		                  req == NULL ? "the CSR is not a valid PKCS#10 request"
		                              : "the CSR has trailing data");
		goto out;
	}
	if (X509_REQ_get_version(req) != X509_REQ_VERSION_1) {
		rc = iotp_err_set(err, IOTP_ERR_CERT, "the CSR has version %ld: only 1 exists",
		                  X509_REQ_get_version(req) + 1);
		goto out;
	}
	pub = X509_REQ_get0_pubkey(req);
	if (pub == NULL) {
		ASN1_OBJECT *alg = NULL;
		char name[80] = "unknown";

		ERR_clear_error();
		X509_PUBKEY_get0_param(&alg, NULL, NULL, NULL, X509_REQ_get_X509_PUBKEY(req));
		if (alg != NULL)
			OBJ_obj2txt(name, sizeof(name), alg, 0);
		rc = iotp_err_set(err, IOTP_ERR_CERT,
		                  "the CSR's public key (%s) is malformed or of an unsupported "
		                  "type: use EC P-256 or RSA >= 2048", name);
		goto out;
	}
	/* The key first: a DSA CSR is refused for being DSA, not for its
	 * signature. */
	if ((rc = pki_key_check(pub, err)) != IOTP_OK)
		goto out;
	if (X509_REQ_verify(req, pub) != 1) {
		ERR_clear_error();
		rc = iotp_err_set(err, IOTP_ERR_CERT, "%s", bad_signature);
		goto out;
	}
	*out = req;
	req = NULL;
out:
	X509_REQ_free(req);
	free(alloc);
	return rc;
}

/* ---- the fast path ------------------------------------------------------- */

typedef struct {
	ASN1_ENCODING enc; /* the bytes received: what the signature covers */
	ASN1_INTEGER *version;
	X509_NAME *subject;
	PKI_RAW_SPKI *spki;
	STACK_OF(X509_ATTRIBUTE) *attributes;
} CSR_INFO;

typedef struct {
	CSR_INFO *info;
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *signature;
} CSR_RAW;

/* As OpenSSL's X509_REQ_INFO: attributes are [0] and, to accept the
 * encoders that omit them, optional. */
ASN1_SEQUENCE_enc(CSR_INFO, enc, NULL) = {
	ASN1_SIMPLE(CSR_INFO, version, ASN1_INTEGER),
	ASN1_SIMPLE(CSR_INFO, subject, X509_NAME),
	ASN1_SIMPLE(CSR_INFO, spki, PKI_RAW_SPKI),
	ASN1_IMP_SET_OF_OPT(CSR_INFO, attributes, X509_ATTRIBUTE, 0),
} static_ASN1_SEQUENCE_END_ref(CSR_INFO, CSR_INFO)

ASN1_SEQUENCE(CSR_RAW) = {
	ASN1_SIMPLE(CSR_RAW, info, CSR_INFO),
	ASN1_SIMPLE(CSR_RAW, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(CSR_RAW, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(CSR_RAW)

/* 1 when the fast path handles this CSR: version 1, an EC key on an
 * accepted named curve, an ECDSA signature, no stray bits. */
static int fast_path_applies(const CSR_RAW *raw, int *curve, int *md)
{
	const ASN1_OBJECT *obj = NULL;
	int mdnid = NID_undef, pknid = NID_undef;

	if (ASN1_INTEGER_get(raw->info->version) != 0)
		return 0;
	if ((*curve = pki_raw_spki_curve(raw->info->spki)) == NID_undef ||
	    (raw->signature->flags & 0x07) != 0)
		return 0;
	X509_ALGOR_get0(&obj, NULL, NULL, raw->sig_alg);
	if (OBJ_find_sigid_algs(OBJ_obj2nid(obj), &mdnid, &pknid) != 1 ||
	    pknid != NID_X9_62_id_ecPublicKey || mdnid == NID_undef)
		return 0;
	*md = mdnid;
	return 1;
}

/* The EC public key for point on curve (a NID), or NULL. */
static EVP_PKEY *ec_key(const struct pki_ca *ca, int curve, const unsigned char *point,
                        size_t n)
{
	EVP_PKEY *key = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	char ca_group[64];
	OSSL_PARAM params[3];

	/* Same curve as the CA: copy its group instead of building one. */
	if (ca->key != NULL && EVP_PKEY_is_a(ca->key, "EC") &&
	    EVP_PKEY_get_group_name(ca->key, ca_group, sizeof(ca_group), NULL) == 1 &&
	    OBJ_txt2nid(ca_group) == curve) {
		key = EVP_PKEY_new();
		if (key != NULL && EVP_PKEY_copy_parameters(key, ca->key) == 1 &&
		    EVP_PKEY_set1_encoded_public_key(key, point, n) == 1)
			return key;
		EVP_PKEY_free(key);
		return NULL;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
	                                             (char *)OBJ_nid2sn(curve), 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, n);
	params[2] = OSSL_PARAM_construct_end();
	pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1 ||
	    EVP_PKEY_fromdata(pctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
		key = NULL;
	EVP_PKEY_CTX_free(pctx);
	return key;
}

/* 1 when signature verifies over the CertificationRequestInfo as received. */
static int verify_raw(const CSR_RAW *raw, EVP_PKEY *key, int md)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	ok = ctx != NULL && raw->info->enc.enc != NULL && raw->info->enc.len > 0 &&
	     EVP_DigestVerifyInit_ex(ctx, NULL, OBJ_nid2sn(md), NULL, NULL, key, NULL) == 1 &&
	     EVP_DigestVerify(ctx, ASN1_STRING_get0_data(raw->signature),
	                      (size_t)ASN1_STRING_length(raw->signature), raw->info->enc.enc,
	                      (size_t)raw->info->enc.len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

iotp_rc pki_csr_issue(const struct pki_ca *ca, const void *data, size_t len,
                      const struct pki_issue_opts *opts, X509 **out, struct iotp_err *err)
{
	unsigned char *alloc = NULL;
	const unsigned char *der = NULL, *p;
	size_t der_len = 0;
	CSR_RAW *raw = NULL;
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	int curve = NID_undef, md = NID_undef;
	iotp_rc rc;

	if (ca == NULL || ca->cert == NULL || ca->key == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "no CA to sign with");
		goto out;
	}
	if ((rc = check_size(data, len, err)) != IOTP_OK ||
	    (rc = pki_input_der(data, len, csr_labels, "CSR", &alloc, &der, &der_len, err)) !=
	            IOTP_OK)
		goto out;
	p = der;
	raw = (CSR_RAW *)ASN1_item_d2i(NULL, &p, (long)der_len, ASN1_ITEM_rptr(CSR_RAW));
	if (raw != NULL && (size_t)(p - der) == der_len && fast_path_applies(raw, &curve, &md))
		key = ec_key(ca, curve, ASN1_STRING_get0_data(raw->info->spki->key),
		             (size_t)ASN1_STRING_length(raw->info->spki->key));
	if (key == NULL) {
		/* Not for the fast path: the complete one decides, with its
		 * messages. */
		ERR_clear_error();
		if ((rc = pki_csr_parse(data, len, &req, err)) == IOTP_OK)
			rc = pki_cert_issue(ca, req, opts, out, err);
		goto out;
	}
	if (!verify_raw(raw, key, md)) {
		ERR_clear_error();
		rc = iotp_err_set(err, IOTP_ERR_CERT, "%s", bad_signature);
		goto out;
	}
	rc = pki_issue_spki(ca, raw->info->subject, raw->info->spki->algor,
	                    ASN1_STRING_get0_data(raw->info->spki->key),
	                    ASN1_STRING_length(raw->info->spki->key), opts, out, err);
out:
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	ASN1_item_free((ASN1_VALUE *)raw, ASN1_ITEM_rptr(CSR_RAW));
	free(alloc);
	return rc;
}
