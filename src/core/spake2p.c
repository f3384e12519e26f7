/*
 * SPAKE2+ over P-256 with SHA-256, HKDF-SHA256 and HMAC-SHA256 (RFC 9383),
 * on OpenSSL 3's EC and BN. See spake2p.h for the call sequence.
 *
 * Secret scalars live in BN_secure_new() numbers flagged constant-time and
 * are cleared on free; the transcript and keys are wiped with
 * OPENSSL_cleanse. The cofactor h of P-256 is 1, so Z and V need no extra
 * multiplication.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>

#include "core/spake2p.h"

/* RFC 9383 section 4: the P-256 points M and N, SEC1 compressed. */
static const uint8_t p256_M[33] = {
	0x02, 0x88, 0x6e, 0x2f, 0x97, 0xac, 0xe4, 0x6e, 0x55, 0xba, 0x9d, 0xd7, 0x24, 0x25, 0x79,
	0xf2, 0x99, 0x3b, 0x64, 0xe1, 0x6e, 0xf3, 0xdc, 0xab, 0x95, 0xaf, 0xd4, 0x97, 0x33, 0x3d,
	0x8f, 0xa1, 0x2f};
static const uint8_t p256_N[33] = {
	0x03, 0xd8, 0xbb, 0xd6, 0xc6, 0x39, 0xc6, 0x29, 0x37, 0xb0, 0x4d, 0x99, 0x7f, 0x38, 0xc3,
	0x77, 0x07, 0x19, 0xc6, 0x29, 0xd7, 0x01, 0x4d, 0x49, 0xa2, 0x4b, 0x4f, 0x98, 0xba, 0xa1,
	0x29, 0x2b, 0x49};

enum sp_state { SP_NEW = 0, SP_FINISHED = 1, SP_CONFIRMED = 2 };

struct spake2p {
	enum spake2p_role role;
	enum sp_state state;
	EC_GROUP *group;
	BN_CTX *bn;
	EC_POINT *M, *N;
	BIGNUM *w0, *w1;      /* w1 only for a prover */
	EC_POINT *L;          /* only for a verifier */
	BIGNUM *eph;          /* x or y; NULL until set or drawn */
	int share_done;
	uint8_t share[SPAKE2P_POINT_LEN];
	uint8_t *context, *id_prover, *id_verifier;
	size_t context_len, id_prover_len, id_verifier_len;
	uint8_t *tt;
	size_t tt_len;
	struct spake2p_trace trace;
};

/* ---- small helpers -------------------------------------------------------- */

static uint8_t *dup_bytes(const void *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);

	if (d && n)
		memcpy(d, p, n);
	return d;
}

static BIGNUM *secret_bn(void)
{
	BIGNUM *b = BN_secure_new();

	if (b)
		BN_set_flags(b, BN_FLG_CONSTTIME);
	return b;
}

/* Loads a 32-byte big-endian scalar in [1, n-1] into dst. */
static iotp_rc load_scalar(const struct spake2p *s, const uint8_t in[SPAKE2P_SCALAR_LEN],
                           BIGNUM *dst, const char *what, struct iotp_err *err)
{
	if (!BN_bin2bn(in, SPAKE2P_SCALAR_LEN, dst))
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "load %s", what);
	if (BN_is_zero(dst) || BN_cmp(dst, EC_GROUP_get0_order(s->group)) >= 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s is not a scalar in [1, n-1]", what);
	return IOTP_OK;
}

static iotp_rc encode_point(const EC_GROUP *g, const EC_POINT *p, uint8_t out[SPAKE2P_POINT_LEN],
                            BN_CTX *bn, struct iotp_err *err)
{
	if (EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, out, SPAKE2P_POINT_LEN, bn) !=
	    SPAKE2P_POINT_LEN)
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "encode point");
	return IOTP_OK;
}

/* Decodes an uncompressed point on the curve, not the identity. */
static iotp_rc decode_point(const EC_GROUP *g, const uint8_t *in, size_t len, EC_POINT *out,
                            BN_CTX *bn, const char *what, struct iotp_err *err)
{
	if (len != SPAKE2P_POINT_LEN || in[0] != 0x04)
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s is not an uncompressed P-256 point",
		                    what);
	if (EC_POINT_oct2point(g, out, in, len, bn) != 1 || EC_POINT_is_on_curve(g, out, bn) != 1 ||
	    EC_POINT_is_at_infinity(g, out)) {
		ERR_clear_error();
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s is not a valid P-256 point", what);
	}
	return IOTP_OK;
}

/* ---- registration --------------------------------------------------------- */

static void put_len(uint8_t out[8], size_t n)
{
	uint64_t v = (uint64_t)n;

	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

iotp_rc spake2p_reduce(const uint8_t pbkdf_out[2 * SPAKE2P_PBKDF_HALF],
                       uint8_t w0[SPAKE2P_SCALAR_LEN], uint8_t w1[SPAKE2P_SCALAR_LEN],
                       struct iotp_err *err)
{
	BN_CTX *bn = BN_CTX_new();
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	BIGNUM *a = secret_bn(), *b = secret_bn();
	uint8_t o0[SPAKE2P_SCALAR_LEN], o1[SPAKE2P_SCALAR_LEN];
	iotp_rc rc = IOTP_OK;

	if (!bn || !g || !a || !b) {
		rc = iotp_err_ssl(err, IOTP_ERR_NOMEM, "spake2p reduce");
		goto out;
	}
	if (!BN_bin2bn(pbkdf_out, SPAKE2P_PBKDF_HALF, a) ||
	    !BN_nnmod(a, a, EC_GROUP_get0_order(g), bn) ||
	    !BN_bin2bn(pbkdf_out + SPAKE2P_PBKDF_HALF, SPAKE2P_PBKDF_HALF, b) ||
	    !BN_nnmod(b, b, EC_GROUP_get0_order(g), bn) ||
	    BN_bn2binpad(a, o0, sizeof(o0)) != (int)sizeof(o0) ||
	    BN_bn2binpad(b, o1, sizeof(o1)) != (int)sizeof(o1)) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "spake2p reduce");
		goto out;
	}
	if (BN_is_zero(a) || BN_is_zero(b)) {
		rc = iotp_err_set(err, IOTP_ERR_CRYPTO, "spake2p: zero scalar from the PBKDF");
		goto out;
	}
	memcpy(w0, o0, sizeof(o0));
	memcpy(w1, o1, sizeof(o1));
out:
	OPENSSL_cleanse(o0, sizeof(o0));
	OPENSSL_cleanse(o1, sizeof(o1));
	BN_clear_free(a);
	BN_clear_free(b);
	EC_GROUP_free(g);
	BN_CTX_free(bn);
	return rc;
}

iotp_rc spake2p_register(const void *pw, size_t pw_len, const struct spake2p_ids *ids,
                         const uint8_t *salt, size_t salt_len, uint32_t iterations,
                         uint8_t w0[SPAKE2P_SCALAR_LEN], uint8_t w1[SPAKE2P_SCALAR_LEN],
                         struct iotp_err *err)
{
	uint8_t *in = NULL;
	uint8_t okm[2 * SPAKE2P_PBKDF_HALF];
	size_t n, off = 0;
	iotp_rc rc;

	if (iterations < SPAKE2P_ITER_MIN || iterations > SPAKE2P_ITER_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "PBKDF2 iterations %u out of range",
		                    (unsigned)iterations);
	if (pw_len > 4096 || ids->prover_len > 4096 || ids->verifier_len > 4096 || salt_len > 1024)
		return iotp_err_set(err, IOTP_ERR_INVALID, "spake2p registration input too long");
	n = 24 + pw_len + ids->prover_len + ids->verifier_len;
	in = OPENSSL_secure_malloc(n);
	if (!in)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "spake2p registration");
	put_len(in + off, pw_len);
	off += 8;
	if (pw_len)
		memcpy(in + off, pw, pw_len);
	off += pw_len;
	put_len(in + off, ids->prover_len);
	off += 8;
	if (ids->prover_len)
		memcpy(in + off, ids->prover, ids->prover_len);
	off += ids->prover_len;
	put_len(in + off, ids->verifier_len);
	off += 8;
	if (ids->verifier_len)
		memcpy(in + off, ids->verifier, ids->verifier_len);
	if (PKCS5_PBKDF2_HMAC((const char *)in, (int)n, salt, (int)salt_len, (int)iterations,
	                      EVP_sha256(), (int)sizeof(okm), okm) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "PBKDF2");
		goto out;
	}
	rc = spake2p_reduce(okm, w0, w1, err);
out:
	OPENSSL_cleanse(okm, sizeof(okm));
	OPENSSL_secure_clear_free(in, n);
	return rc;
}

iotp_rc spake2p_compute_L(const uint8_t w1[SPAKE2P_SCALAR_LEN], uint8_t L[SPAKE2P_POINT_LEN],
                          struct iotp_err *err)
{
	BN_CTX *bn = BN_CTX_new();
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	BIGNUM *k = secret_bn();
	EC_POINT *p = NULL;
	uint8_t out[SPAKE2P_POINT_LEN];
	iotp_rc rc = IOTP_OK;

	if (!bn || !g || !k || !(p = EC_POINT_new(g))) {
		rc = iotp_err_ssl(err, IOTP_ERR_NOMEM, "spake2p L");
		goto out;
	}
	if (!BN_bin2bn(w1, SPAKE2P_SCALAR_LEN, k)) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "spake2p L");
		goto out;
	}
	if (BN_is_zero(k) || BN_cmp(k, EC_GROUP_get0_order(g)) >= 0) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "w1 is not a scalar in [1, n-1]");
		goto out;
	}
	if (!EC_POINT_mul(g, p, k, NULL, NULL, bn)) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "w1*P");
		goto out;
	}
	rc = encode_point(g, p, out, bn, err);
	if (rc == IOTP_OK)
		memcpy(L, out, sizeof(out));
out:
	EC_POINT_free(p);
	BN_clear_free(k);
	EC_GROUP_free(g);
	BN_CTX_free(bn);
	return rc;
}

/* ---- the exchange --------------------------------------------------------- */

void spake2p_free(struct spake2p *s)
{
	if (!s)
		return;
	EC_POINT_free(s->M);
	EC_POINT_free(s->N);
	EC_POINT_clear_free(s->L);
	BN_clear_free(s->w0);
	BN_clear_free(s->w1);
	BN_clear_free(s->eph);
	EC_GROUP_free(s->group);
	BN_CTX_free(s->bn);
	free(s->context);
	free(s->id_prover);
	free(s->id_verifier);
	if (s->tt)
		OPENSSL_clear_free(s->tt, s->tt_len);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

static iotp_rc sp_new(enum spake2p_role role, const uint8_t w0[SPAKE2P_SCALAR_LEN],
                      const struct spake2p_ids *ids, struct spake2p **out, struct iotp_err *err)
{
	struct spake2p *s = calloc(1, sizeof(*s));
	iotp_rc rc;

	if (!s)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "spake2p");
	s->role = role;
	s->group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	s->bn = BN_CTX_new();
	s->w0 = secret_bn();
	s->context = dup_bytes(ids->context, ids->context_len);
	s->id_prover = dup_bytes(ids->prover, ids->prover_len);
	s->id_verifier = dup_bytes(ids->verifier, ids->verifier_len);
	s->context_len = ids->context_len;
	s->id_prover_len = ids->prover_len;
	s->id_verifier_len = ids->verifier_len;
	if (!s->group || !s->bn || !s->w0 || !s->context || !s->id_prover || !s->id_verifier ||
	    !(s->M = EC_POINT_new(s->group)) || !(s->N = EC_POINT_new(s->group))) {
		rc = iotp_err_ssl(err, IOTP_ERR_NOMEM, "spake2p");
		goto fail;
	}
	if (EC_POINT_oct2point(s->group, s->M, p256_M, sizeof(p256_M), s->bn) != 1 ||
	    EC_POINT_oct2point(s->group, s->N, p256_N, sizeof(p256_N), s->bn) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "spake2p M/N");
		goto fail;
	}
	rc = load_scalar(s, w0, s->w0, "w0", err);
	if (rc != IOTP_OK)
		goto fail;
	*out = s;
	return IOTP_OK;
fail:
	spake2p_free(s);
	return rc;
}

iotp_rc spake2p_prover_new(const uint8_t w0[SPAKE2P_SCALAR_LEN],
                           const uint8_t w1[SPAKE2P_SCALAR_LEN], const struct spake2p_ids *ids,
                           struct spake2p **out, struct iotp_err *err)
{
	struct spake2p *s = NULL;
	iotp_rc rc;

	rc = sp_new(SPAKE2P_PROVER, w0, ids, &s, err);
	if (rc != IOTP_OK)
		return rc;
	if (!(s->w1 = secret_bn())) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "spake2p");
		goto fail;
	}
	rc = load_scalar(s, w1, s->w1, "w1", err);
	if (rc != IOTP_OK)
		goto fail;
	*out = s;
	return IOTP_OK;
fail:
	spake2p_free(s);
	return rc;
}

iotp_rc spake2p_verifier_new(const uint8_t w0[SPAKE2P_SCALAR_LEN],
                             const uint8_t L[SPAKE2P_POINT_LEN], const struct spake2p_ids *ids,
                             struct spake2p **out, struct iotp_err *err)
{
	struct spake2p *s = NULL;
	iotp_rc rc;

	rc = sp_new(SPAKE2P_VERIFIER, w0, ids, &s, err);
	if (rc != IOTP_OK)
		return rc;
	if (!(s->L = EC_POINT_new(s->group))) {
		rc = iotp_err_ssl(err, IOTP_ERR_NOMEM, "spake2p");
		goto fail;
	}
	rc = decode_point(s->group, L, SPAKE2P_POINT_LEN, s->L, s->bn, "L", err);
	if (rc != IOTP_OK)
		goto fail;
	*out = s;
	return IOTP_OK;
fail:
	spake2p_free(s);
	return rc;
}

iotp_rc spake2p_set_ephemeral(struct spake2p *s, const uint8_t scalar[SPAKE2P_SCALAR_LEN],
                              struct iotp_err *err)
{
	BIGNUM *e;
	iotp_rc rc;

	if (s->share_done || s->state != SP_NEW)
		return iotp_err_set(err, IOTP_ERR_STATE, "spake2p: share already computed");
	if (!(e = secret_bn()))
		return iotp_err_set(err, IOTP_ERR_NOMEM, "spake2p");
	rc = load_scalar(s, scalar, e, "ephemeral scalar", err);
	if (rc != IOTP_OK) {
		BN_clear_free(e);
		return rc;
	}
	BN_clear_free(s->eph);
	s->eph = e;
	return IOTP_OK;
}

iotp_rc spake2p_share(struct spake2p *s, uint8_t share[SPAKE2P_POINT_LEN], struct iotp_err *err)
{
	EC_POINT *p = NULL;
	iotp_rc rc = IOTP_OK;

	if (s->share_done) {
		memcpy(share, s->share, SPAKE2P_POINT_LEN);
		return IOTP_OK;
	}
	if (!s->eph) {
		if (!(s->eph = secret_bn())) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "spake2p");
			goto out;
		}
		do {
			if (!BN_priv_rand_range(s->eph, EC_GROUP_get0_order(s->group))) {
				rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "spake2p random scalar");
				goto out;
			}
		} while (BN_is_zero(s->eph));
	}
	if (!(p = EC_POINT_new(s->group))) {
		rc = iotp_err_ssl(err, IOTP_ERR_NOMEM, "spake2p");
		goto out;
	}
	/* eph*P + w0*M (prover) or eph*P + w0*N (verifier) in one call. */
	if (!EC_POINT_mul(s->group, p, s->eph, s->role == SPAKE2P_PROVER ? s->M : s->N, s->w0,
	                  s->bn)) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "spake2p share");
		goto out;
	}
	rc = encode_point(s->group, p, s->share, s->bn, err);
	if (rc != IOTP_OK)
		goto out;
	s->share_done = 1;
	memcpy(share, s->share, SPAKE2P_POINT_LEN);
out:
	EC_POINT_free(p);
	return rc;
}

/* Appends len(d) || d to the transcript buffer at *off. */
static void tt_put(uint8_t *tt, size_t *off, const void *d, size_t n)
{
	put_len(tt + *off, n);
	*off += 8;
	if (n)
		memcpy(tt + *off, d, n);
	*off += n;
}

static iotp_rc hmac256(const uint8_t key[SPAKE2P_HASH_LEN], const uint8_t *d, size_t n,
                       uint8_t out[SPAKE2P_HASH_LEN], struct iotp_err *err)
{
	unsigned int len = 0;

	if (!HMAC(EVP_sha256(), key, SPAKE2P_HASH_LEN, d, n, out, &len) || len != SPAKE2P_HASH_LEN)
		return iotp_err_ssl(err, IOTP_ERR_CRYPTO, "HMAC-SHA256");
	return IOTP_OK;
}

iotp_rc spake2p_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                     const void *info, size_t info_len, uint8_t *out, size_t out_len,
                     struct iotp_err *err)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5];
	size_t np = 0;
	iotp_rc rc = IOTP_OK;

	if (!kdf || !(kctx = EVP_KDF_CTX_new(kdf))) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "HKDF");
		goto out;
	}
	params[np++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[np++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	if (salt_len)
		params[np++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt,
		                                                 salt_len);
	params[np++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info,
	                                                 info_len);
	params[np] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, out_len, params) != 1)
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "HKDF derive");
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

iotp_rc spake2p_finish(struct spake2p *s, const uint8_t *peer_share, size_t peer_len,
                       uint8_t confirm[SPAKE2P_HASH_LEN], struct iotp_err *err)
{
	uint8_t own[SPAKE2P_POINT_LEN], mn[2][SPAKE2P_POINT_LEN], w0b[SPAKE2P_SCALAR_LEN];
	uint8_t kc[2 * SPAKE2P_HASH_LEN];
	EC_POINT *peer = NULL, *t = NULL, *z = NULL, *v = NULL;
	const uint8_t *X, *Y;
	size_t off = 0;
	iotp_rc rc;
	struct spake2p_trace *tr = &s->trace;

	if (s->state != SP_NEW)
		return iotp_err_set(err, IOTP_ERR_STATE, "spake2p: exchange already finished");
	rc = spake2p_share(s, own, err);
	if (rc != IOTP_OK)
		return rc;
	if (!(peer = EC_POINT_new(s->group)) || !(t = EC_POINT_new(s->group)) ||
	    !(z = EC_POINT_new(s->group)) || !(v = EC_POINT_new(s->group))) {
		rc = iotp_err_ssl(err, IOTP_ERR_NOMEM, "spake2p");
		goto out;
	}
	rc = decode_point(s->group, peer_share, peer_len, peer, s->bn,
	                  s->role == SPAKE2P_PROVER ? "shareV" : "shareP", err);
	if (rc != IOTP_OK)
		goto out;
	/* t = peer - w0*N (prover) or peer - w0*M (verifier). */
	if (!EC_POINT_mul(s->group, t, NULL, s->role == SPAKE2P_PROVER ? s->N : s->M, s->w0,
	                  s->bn) ||
	    !EC_POINT_invert(s->group, t, s->bn) || !EC_POINT_add(s->group, t, peer, t, s->bn)) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "spake2p unmask");
		goto out;
	}
	if (EC_POINT_is_at_infinity(s->group, t)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "spake2p: degenerate peer share");
		goto out;
	}
	if (!EC_POINT_mul(s->group, z, NULL, t, s->eph, s->bn) ||
	    !EC_POINT_mul(s->group, v, NULL, s->role == SPAKE2P_PROVER ? t : s->L,
	                  s->role == SPAKE2P_PROVER ? s->w1 : s->eph, s->bn)) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "spake2p Z, V");
		goto out;
	}
	if (EC_POINT_is_at_infinity(s->group, z) || EC_POINT_is_at_infinity(s->group, v)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "spake2p: degenerate Z or V");
		goto out;
	}
	if ((rc = encode_point(s->group, z, tr->Z, s->bn, err)) != IOTP_OK ||
	    (rc = encode_point(s->group, v, tr->V, s->bn, err)) != IOTP_OK ||
	    (rc = encode_point(s->group, s->M, mn[0], s->bn, err)) != IOTP_OK ||
	    (rc = encode_point(s->group, s->N, mn[1], s->bn, err)) != IOTP_OK)
		goto out;
	if (BN_bn2binpad(s->w0, w0b, sizeof(w0b)) != (int)sizeof(w0b)) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "spake2p w0");
		goto out;
	}
	X = s->role == SPAKE2P_PROVER ? own : peer_share;
	Y = s->role == SPAKE2P_PROVER ? peer_share : own;

	/* TT (RFC 9383 section 3.3): ten length-prefixed fields. */
	s->tt_len = 10 * 8 + s->context_len + s->id_prover_len + s->id_verifier_len +
	            6 * SPAKE2P_POINT_LEN + SPAKE2P_SCALAR_LEN;
	if (!(s->tt = OPENSSL_malloc(s->tt_len))) {
		s->tt_len = 0;
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "spake2p transcript");
		goto out;
	}
	tt_put(s->tt, &off, s->context, s->context_len);
	tt_put(s->tt, &off, s->id_prover, s->id_prover_len);
	tt_put(s->tt, &off, s->id_verifier, s->id_verifier_len);
	tt_put(s->tt, &off, mn[0], SPAKE2P_POINT_LEN);
	tt_put(s->tt, &off, mn[1], SPAKE2P_POINT_LEN);
	tt_put(s->tt, &off, X, SPAKE2P_POINT_LEN);
	tt_put(s->tt, &off, Y, SPAKE2P_POINT_LEN);
	tt_put(s->tt, &off, tr->Z, SPAKE2P_POINT_LEN);
	tt_put(s->tt, &off, tr->V, SPAKE2P_POINT_LEN);
	tt_put(s->tt, &off, w0b, SPAKE2P_SCALAR_LEN);

	/* Key schedule (section 3.4). */
	if (EVP_Digest(s->tt, s->tt_len, tr->k_main, NULL, EVP_sha256(), NULL) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "SHA-256");
		goto out;
	}
	rc = spake2p_hkdf(NULL, 0, tr->k_main, SPAKE2P_HASH_LEN, "ConfirmationKeys", 16, kc,
	                  sizeof(kc), err);
	if (rc != IOTP_OK)
		goto out;
	memcpy(tr->k_confirm_p, kc, SPAKE2P_HASH_LEN);
	memcpy(tr->k_confirm_v, kc + SPAKE2P_HASH_LEN, SPAKE2P_HASH_LEN);
	rc = spake2p_hkdf(NULL, 0, tr->k_main, SPAKE2P_HASH_LEN, "SharedKey", 9, tr->k_shared,
	                  SPAKE2P_HASH_LEN, err);
	if (rc != IOTP_OK)
		goto out;
	if ((rc = hmac256(tr->k_confirm_p, Y, SPAKE2P_POINT_LEN, tr->confirm_p, err)) != IOTP_OK ||
	    (rc = hmac256(tr->k_confirm_v, X, SPAKE2P_POINT_LEN, tr->confirm_v, err)) != IOTP_OK)
		goto out;
	s->state = SP_FINISHED;
	memcpy(confirm, s->role == SPAKE2P_PROVER ? tr->confirm_p : tr->confirm_v,
	       SPAKE2P_HASH_LEN);
out:
	if (rc != IOTP_OK && s->tt) {
		OPENSSL_clear_free(s->tt, s->tt_len);
		s->tt = NULL;
		s->tt_len = 0;
	}
	OPENSSL_cleanse(w0b, sizeof(w0b));
	OPENSSL_cleanse(kc, sizeof(kc));
	EC_POINT_free(peer);
	EC_POINT_clear_free(t);
	EC_POINT_clear_free(z);
	EC_POINT_clear_free(v);
	return rc;
}

iotp_rc spake2p_confirm_check(struct spake2p *s, const uint8_t *peer_confirm, size_t len,
                              struct iotp_err *err)
{
	const uint8_t *want;

	if (s->state == SP_NEW)
		return iotp_err_set(err, IOTP_ERR_STATE, "spake2p: exchange not finished");
	want = s->role == SPAKE2P_PROVER ? s->trace.confirm_v : s->trace.confirm_p;
	if (len != SPAKE2P_HASH_LEN || CRYPTO_memcmp(want, peer_confirm, SPAKE2P_HASH_LEN) != 0)
		return iotp_err_set(err, IOTP_ERR_AUTH, "key confirmation failed");
	s->state = SP_CONFIRMED;
	return IOTP_OK;
}

iotp_rc spake2p_shared_key(const struct spake2p *s, uint8_t key[SPAKE2P_HASH_LEN],
                           struct iotp_err *err)
{
	if (s->state != SP_CONFIRMED)
		return iotp_err_set(err, IOTP_ERR_STATE, "spake2p: peer not confirmed");
	memcpy(key, s->trace.k_shared, SPAKE2P_HASH_LEN);
	return IOTP_OK;
}

iotp_rc spake2p_shared_key_early(const struct spake2p *s, uint8_t key[SPAKE2P_HASH_LEN],
                                 struct iotp_err *err)
{
	if (s->state == SP_NEW)
		return iotp_err_set(err, IOTP_ERR_STATE, "spake2p: exchange not finished");
	memcpy(key, s->trace.k_shared, SPAKE2P_HASH_LEN);
	return IOTP_OK;
}

iotp_rc spake2p_trace_get(const struct spake2p *s, struct spake2p_trace *out,
                          struct iotp_err *err)
{
	if (s->state == SP_NEW)
		return iotp_err_set(err, IOTP_ERR_STATE, "spake2p: exchange not finished");
	*out = s->trace;
	out->tt = s->tt;
	out->tt_len = s->tt_len;
	return IOTP_OK;
}
