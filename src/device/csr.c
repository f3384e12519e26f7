/*
 * PKCS#10 requests built on the device and signed by its key in place (for
 * a PKCS#11 key the signature is computed inside the token). The subject
 * and requested extensions are what iotprov's issuing paths read: the CN
 * (JITP parameters, EST), serialNumber, and a clientAuth request.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "device/dev.h"

static iotp_rc add_entry(X509_NAME *name, const char *field, const char *value, size_t max,
                         struct iotp_err *err)
{
	if (value == NULL || value[0] == '\0')
		return IOTP_OK;
	if (strlen(value) > max)
		return iotp_err_set(err, IOTP_ERR_INVALID, "subject %s longer than %zu characters",
		                    field, max);
	if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, (const unsigned char *)value,
	                               -1, -1, 0) != 1)
		return iotp_err_ssl(err, IOTP_ERR_INVALID, "subject %s '%s'", field, value);
	return IOTP_OK;
}

static iotp_rc push_ext(STACK_OF(X509_EXTENSION) *exts, int nid, const char *value,
                        struct iotp_err *err)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, nid, value);

	if (ext == NULL || !sk_X509_EXTENSION_push(exts, ext)) {
		X509_EXTENSION_free(ext);
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "CSR extension %s", OBJ_nid2sn(nid));
	}
	return IOTP_OK;
}

iotp_rc iotp_csr_create(iotp_keystore *ks, const struct iotp_csr_subject *subj, char **pem,
                        size_t *len, struct iotp_err *err)
{
	X509_REQ *req = NULL;
	X509_NAME *name = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	BIO *bio = NULL;
	EVP_PKEY *key;
	char *data = NULL, *copy = NULL;
	long n;
	iotp_rc rc = IOTP_OK;

	if (ks == NULL || subj == NULL || subj->common_name == NULL || subj->common_name[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID, "a CSR needs a key and a common name");
	if (subj->country != NULL && subj->country[0] != '\0' && strlen(subj->country) != 2)
		return iotp_err_set(err, IOTP_ERR_INVALID, "country must be 2 letters");
	key = iotp_keystore_pkey(ks);
	req = X509_REQ_new();
	name = X509_NAME_new();
	exts = sk_X509_EXTENSION_new_null();
	if (req == NULL || name == NULL || exts == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = add_entry(name, "C", subj->country, 2, err)) != IOTP_OK ||
	    (rc = add_entry(name, "O", subj->organization, 64, err)) != IOTP_OK ||
	    (rc = add_entry(name, "OU", subj->organizational_unit, 64, err)) != IOTP_OK ||
	    (rc = add_entry(name, "serialNumber", subj->serial_number, 64, err)) != IOTP_OK ||
	    (rc = add_entry(name, "CN", subj->common_name, 64, err)) != IOTP_OK)
		goto out;
	if (X509_REQ_set_version(req, 0) != 1 || X509_REQ_set_subject_name(req, name) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "build the CSR");
		goto out;
	}
	if ((rc = push_ext(exts, NID_key_usage, "critical,digitalSignature", err)) != IOTP_OK ||
	    (rc = push_ext(exts, NID_ext_key_usage, "clientAuth", err)) != IOTP_OK)
		goto out;
	if (X509_REQ_add_extensions(req, exts) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "add the CSR extensions");
		goto out;
	}
	if (X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "sign the CSR with the device key");
		goto out;
	}
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509_REQ(bio, req) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "encode the CSR");
		goto out;
	}
	n = BIO_get_mem_data(bio, &data);
	copy = malloc((size_t)n + 1);
	if (copy == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(copy, data, (size_t)n);
	copy[n] = '\0';
	*pem = copy;
	if (len != NULL)
		*len = (size_t)n;
	copy = NULL;
out:
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(name);
	X509_REQ_free(req);
	BIO_free(bio);
	free(copy);
	return rc;
}
