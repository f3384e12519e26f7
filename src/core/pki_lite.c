/*
 * Device certificates decoded for registration without an X509 object.
 *
 * d2i_X509() on OpenSSL 3.0 decodes the certificate's public key through
 * the provider decoder framework, which builds a decoder chain on every
 * call: about 95 us of a 100 us parse, more than the chain check's
 * signature verification. Bulk registration parses one certificate per
 * line, so that cost alone capped it near 4k lines per CPU second.
 *
 * Here OpenSSL's own DER decoder reads the same structure with the public
 * key left as bytes (ASN.1 templates below mirror X509 and X509_CINF
 * field for field, the key as AlgorithmIdentifier + BIT STRING like
 * X509_PUBKEY's inner form). The key is then checked the way registration
 * checks keys, on the common case only: a named-curve EC key on P-256,
 * P-384 or P-521, as an uncompressed point that is on the curve.
 *
 * The lite path only ever accepts. Anything it is not sure the full path
 * (pki_cert_parse + pki_cert_check_decoded + pki_key_check) would accept
 * with the same results - another key type, compressed points, a CA
 * certificate, an extension outside a short list, a signature algorithm
 * other than ECDSA, an encoding that is not DER - makes pki_lite_parse say
 * "not lite" and the caller takes the full path, whose checks and error
 * messages stay the reference. tests/unit/pki checks both paths agree.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/util.h"
#include "core/pki.h"
#include "core/pki_int.h"

#define LITE_DER_MAX (64 * 1024)
#define LITE_MAX_EXTS 16

typedef struct {
	ASN1_INTEGER *version;
	ASN1_INTEGER *serial;
	X509_ALGOR *signature;
	X509_NAME *issuer;
	X509_VAL *validity;
	X509_NAME *subject;
	PKI_RAW_SPKI *spki;
	ASN1_BIT_STRING *issuer_uid;
	ASN1_BIT_STRING *subject_uid;
	STACK_OF(X509_EXTENSION) *extensions;
	ASN1_ENCODING enc; /* the TBS bytes as read: what the signature covers */
} LITE_TBS;

typedef struct {
	LITE_TBS *tbs;
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *signature;
} LITE_CERT;

ASN1_SEQUENCE(PKI_RAW_SPKI) = {
	ASN1_SIMPLE(PKI_RAW_SPKI, algor, X509_ALGOR),
	ASN1_SIMPLE(PKI_RAW_SPKI, key, ASN1_BIT_STRING),
} ASN1_SEQUENCE_END(PKI_RAW_SPKI)

ASN1_SEQUENCE_enc(LITE_TBS, enc, 0) = {
	ASN1_EXP_OPT(LITE_TBS, version, ASN1_INTEGER, 0),
	ASN1_SIMPLE(LITE_TBS, serial, ASN1_INTEGER),
	ASN1_SIMPLE(LITE_TBS, signature, X509_ALGOR),
	ASN1_SIMPLE(LITE_TBS, issuer, X509_NAME),
	ASN1_SIMPLE(LITE_TBS, validity, X509_VAL),
	ASN1_SIMPLE(LITE_TBS, subject, X509_NAME),
	ASN1_SIMPLE(LITE_TBS, spki, PKI_RAW_SPKI),
	ASN1_IMP_OPT(LITE_TBS, issuer_uid, ASN1_BIT_STRING, 1),
	ASN1_IMP_OPT(LITE_TBS, subject_uid, ASN1_BIT_STRING, 2),
	ASN1_EXP_SEQUENCE_OF_OPT(LITE_TBS, extensions, X509_EXTENSION, 3),
} static_ASN1_SEQUENCE_END_ref(LITE_TBS, LITE_TBS)

ASN1_SEQUENCE(LITE_CERT) = {
	ASN1_SIMPLE(LITE_CERT, tbs, LITE_TBS),
	ASN1_SIMPLE(LITE_CERT, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(LITE_CERT, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(LITE_CERT)

#define LITE_NOTES 4

struct pki_cert_lite {
	LITE_CERT *c;
	int md_nid;      /* the signature's digest */
	int64_t not_before, not_after;
	char id[PKI_CERT_ID_LEN + 1];
	/* Signature checks made ahead (pki_lite_note_ca): CA id -> verdict. */
	struct {
		char ca_id[PKI_CERT_ID_LEN + 1];
		int signed_ok;
	} notes[LITE_NOTES];
	int nnotes;
};

/* ---- the curves, made once ---- */

static const int curve_nids[] = {NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1};
static EC_GROUP *curves[IOTP_ARRAY_LEN(curve_nids)];
static pthread_once_t curves_once = PTHREAD_ONCE_INIT;

static void curves_init(void)
{
	for (size_t i = 0; i < IOTP_ARRAY_LEN(curve_nids); i++)
		curves[i] = EC_GROUP_new_by_curve_name(curve_nids[i]);
}

/* The group of a named curve registration accepts, or NULL. EC_GROUPs are
 * only read after creation, so threads share them. */
static const EC_GROUP *curve(int nid)
{
	pthread_once(&curves_once, curves_init);
	for (size_t i = 0; i < IOTP_ARRAY_LEN(curve_nids); i++)
		if (curve_nids[i] == nid)
			return curves[i];
	return NULL;
}

/* ---- the checks ---- */

/* An unused-bits count of 0: what a key or a signature must have. */
static int whole_bytes(const ASN1_BIT_STRING *b)
{
	return b != NULL && (b->flags & ASN1_STRING_FLAG_BITS_LEFT ? (b->flags & 0x07) == 0 : 1);
}

/* ECDSA with SHA-2, no parameters, the same in the TBS and outside. */
static int sig_alg_ok(const LITE_CERT *c, int *md_nid)
{
	const ASN1_OBJECT *obj = NULL;
	int ptype = 0;

	if (X509_ALGOR_cmp(c->sig_alg, c->tbs->signature) != 0)
		return 0;
	X509_ALGOR_get0(&obj, &ptype, NULL, c->sig_alg);
	if (ptype != V_ASN1_UNDEF)
		return 0;
	switch (OBJ_obj2nid(obj)) {
	case NID_ecdsa_with_SHA256: *md_nid = NID_sha256; break;
	case NID_ecdsa_with_SHA384: *md_nid = NID_sha384; break;
	case NID_ecdsa_with_SHA512: *md_nid = NID_sha512; break;
	default: return 0;
	}
	return whole_bytes(c->signature);
}

int pki_raw_spki_curve(const PKI_RAW_SPKI *spki)
{
	const ASN1_OBJECT *obj = NULL;
	const void *param = NULL;
	int ptype = 0;

	X509_ALGOR_get0(&obj, &ptype, &param, spki->algor);
	if (OBJ_obj2nid(obj) != NID_X9_62_id_ecPublicKey || ptype != V_ASN1_OBJECT ||
	    curve(OBJ_obj2nid(param)) == NULL || !whole_bytes(spki->key))
		return NID_undef;
	return OBJ_obj2nid(param);
}

/* A named-curve EC key on an accepted curve, an uncompressed point on it. */
static int key_ok(const PKI_RAW_SPKI *k)
{
	const EC_GROUP *g = curve(pki_raw_spki_curve(k));
	EC_POINT *pt;
	size_t field;
	int ok;

	if (g == NULL)
		return 0;
	field = ((size_t)EC_GROUP_get_degree(g) + 7) / 8;
	if ((size_t)k->key->length != 1 + 2 * field || k->key->data[0] != 0x04)
		return 0;
	if ((pt = EC_POINT_new(g)) == NULL)
		return 0;
	ok = EC_POINT_oct2point(g, pt, k->key->data, (size_t)k->key->length, NULL) == 1;
	EC_POINT_free(pt);
	return ok;
}

/* Extensions the full path's cache (EXFLAG_INVALID) judges the same way:
 * a short list, none twice, each decoding, no CA, a non-empty key usage. */
static int extensions_ok(const STACK_OF(X509_EXTENSION) *exts)
{
	static const int allowed[] = {
		NID_basic_constraints,       NID_key_usage,
		NID_ext_key_usage,           NID_subject_key_identifier,
		NID_authority_key_identifier, NID_subject_alt_name,
	};
	int n = sk_X509_EXTENSION_num(exts), nids[LITE_MAX_EXTS];

	if (n < 0)
		return 1;
	if (n > LITE_MAX_EXTS)
		return 0;
	for (int i = 0; i < n; i++) {
		int nid = OBJ_obj2nid(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, i)));
		int crit = 0, found = 0;
		void *v;

		for (size_t a = 0; a < IOTP_ARRAY_LEN(allowed); a++)
			found |= allowed[a] == nid;
		for (int j = 0; j < i; j++)
			found &= nids[j] != nid;
		if (!found)
			return 0;
		nids[i] = nid;
		if ((v = X509V3_get_d2i(exts, nid, &crit, NULL)) == NULL)
			return 0;
		if (nid == NID_basic_constraints) {
			BASIC_CONSTRAINTS *bc = v;

			found = !bc->ca && bc->pathlen == NULL;
			BASIC_CONSTRAINTS_free(bc);
		} else if (nid == NID_key_usage) {
			ASN1_BIT_STRING *ku = v;

			found = 0;
			for (int b = 0; b < ku->length && b < 2; b++)
				found |= ku->data[b] != 0;
			ASN1_BIT_STRING_free(ku);
		} else {
			X509V3_EXT_METHOD const *m = X509V3_EXT_get_nid(nid);

			if (m != NULL && m->it != NULL)
				ASN1_item_free(v, ASN1_ITEM_ptr(m->it));
			else
				found = 0; /* cannot happen for the list above; do not guess */
		}
		if (!found)
			return 0;
	}
	return 1;
}

/* The re-encoding is the input: what the full path hashes for the id
 * (i2d_X509) is then these bytes. Rules out BER the decoder tolerates. */
static int reencodes(const LITE_CERT *c, const unsigned char *der, size_t len)
{
	unsigned char *out = NULL;
	int n = ASN1_item_i2d((const ASN1_VALUE *)c, &out, ASN1_ITEM_rptr(LITE_CERT));
	int same = n > 0 && (size_t)n == len && memcmp(out, der, len) == 0;

	OPENSSL_free(out);
	return same;
}

static int version_ok(const LITE_TBS *t)
{
	long v;

	if (t->issuer_uid != NULL || t->subject_uid != NULL)
		return 0;
	if (t->version == NULL) /* v1: no extensions */
		return t->extensions == NULL;
	v = ASN1_INTEGER_get(t->version);
	return v == 2;
}

int pki_lite_parse(const void *data, size_t len, struct pki_cert_lite **out)
{
	static const char *const labels[] = {"CERTIFICATE", NULL};
	struct pki_cert_lite *lc = NULL;
	unsigned char *alloc = NULL;
	const unsigned char *der = NULL, *p;
	size_t der_len = 0;
	int ok = 0;

	*out = NULL;
	if (data == NULL || len == 0 || len > LITE_DER_MAX * 2)
		return 0;
	if (pki_input_der(data, len, labels, "certificate", &alloc, &der, &der_len, NULL) !=
	        IOTP_OK ||
	    der_len > LITE_DER_MAX)
		goto out;
	if ((lc = calloc(1, sizeof(*lc))) == NULL) {
		ok = -1;
		goto out;
	}
	p = der;
	lc->c = (LITE_CERT *)ASN1_item_d2i(NULL, &p, (long)der_len, ASN1_ITEM_rptr(LITE_CERT));
	if (lc->c == NULL || (size_t)(p - der) != der_len)
		goto out;
	if (!version_ok(lc->c->tbs) || !sig_alg_ok(lc->c, &lc->md_nid) ||
	    !key_ok(lc->c->tbs->spki) || !extensions_ok(lc->c->tbs->extensions) ||
	    !reencodes(lc->c, der, der_len))
		goto out;
	if (pki_time_epoch(lc->c->tbs->validity->notBefore, &lc->not_before, NULL) !=
	        IOTP_OK ||
	    pki_time_epoch(lc->c->tbs->validity->notAfter, &lc->not_after, NULL) !=
	        IOTP_OK ||
	    pki_sha256_hex(der, der_len, lc->id, NULL) != IOTP_OK)
		goto out;
	ok = 1;
	*out = lc;
	lc = NULL;
out:
	ERR_clear_error();
	pki_lite_free(lc);
	free(alloc);
	return ok;
}

void pki_lite_free(struct pki_cert_lite *lc)
{
	if (lc == NULL)
		return;
	ASN1_item_free((ASN1_VALUE *)lc->c, ASN1_ITEM_rptr(LITE_CERT));
	free(lc);
}

const char *pki_lite_id(const struct pki_cert_lite *lc)
{
	return lc->id;
}

void pki_lite_validity(const struct pki_cert_lite *lc, int64_t *not_before, int64_t *not_after)
{
	*not_before = lc->not_before;
	*not_after = lc->not_after;
}

iotp_rc pki_lite_serial_hex(const struct pki_cert_lite *lc, char **out, struct iotp_err *err)
{
	return pki_serial_hex(lc->c->tbs->serial, out, err);
}

iotp_rc pki_lite_name_string(const struct pki_cert_lite *lc, int issuer, char **out,
                             struct iotp_err *err)
{
	return pki_name_string(issuer ? lc->c->tbs->issuer : lc->c->tbs->subject, out, err);
}

int pki_lite_signed_by(const struct pki_cert_lite *lc, X509 *ca)
{
	EVP_PKEY *key = ca != NULL ? X509_get0_pubkey(ca) : NULL;
	EVP_PKEY_CTX *ctx = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const ASN1_ENCODING *tbs = &lc->c->tbs->enc;
	int ok = 0;

	/* X509_verify of an ECDSA signature with a non-EC key fails; say
	 * "not shown" and let the caller's full path give its answer. */
	if (key == NULL || !EVP_PKEY_is_a(key, "EC") || tbs->enc == NULL || tbs->modified)
		goto out;
	if (EVP_Digest(tbs->enc, (size_t)tbs->len, md, &mdlen, EVP_get_digestbynid(lc->md_nid),
	               NULL) != 1)
		goto out;
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL ||
	    EVP_PKEY_verify_init(ctx) != 1)
		goto out;
	ok = EVP_PKEY_verify(ctx, lc->c->signature->data, (size_t)lc->c->signature->length, md,
	                     mdlen) == 1;
out:
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

void pki_lite_note_ca(struct pki_cert_lite *lc, const char *ca_id, int signed_ok)
{
	if (lc->nnotes >= LITE_NOTES || strlen(ca_id) != PKI_CERT_ID_LEN)
		return;
	memcpy(lc->notes[lc->nnotes].ca_id, ca_id, PKI_CERT_ID_LEN + 1);
	lc->notes[lc->nnotes].signed_ok = signed_ok != 0;
	lc->nnotes++;
}

int pki_lite_signed_by_id(const struct pki_cert_lite *lc, const char *ca_id, X509 *ca)
{
	for (int i = 0; i < lc->nnotes; i++)
		if (strcmp(lc->notes[i].ca_id, ca_id) == 0)
			return lc->notes[i].signed_ok;
	return pki_lite_signed_by(lc, ca);
}
