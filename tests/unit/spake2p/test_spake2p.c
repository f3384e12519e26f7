/*
 * Unit tests of SPAKE2+ (src/core/spake2p.c) against the test vector that
 * RFC 9383 publishes in its appendix for P256-SHA256-HKDF-SHA256-HMAC-SHA256
 * (context "SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors",
 * idProver "client", idVerifier "server"): every intermediate value the RFC
 * prints is checked from both roles. Registration (PBKDF2, which the RFC
 * leaves to the application) is checked against Python's hashlib computed
 * independently. Then the properties a user relies on: the same setup code
 * gives the same key on both sides, a wrong one fails on both sides and
 * yields no key, and malformed or degenerate shares are refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>

#include "core/spake2p.h"

/* ---- RFC 9383, Appendix C, P256-SHA256-HKDF-SHA256-HMAC-SHA256 ---------- */

static const char *ctx_str = "SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors";
static const char *v_w0 = "bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3";
static const char *v_w1 = "7e945f34d78785b8a3ef44d0df5a1a97d6b3b460409a345ca7830387a74b1dba";
static const char *v_L =
	"04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc00f"
	"00bfedcbd09b2400142d40a14f2064ef31dfaa903b91d1faea7093d835966efd";
static const char *v_x = "d1232c8e8693d02368976c174e2088851b8365d0d79a9eee709c6a05a2fad539";
static const char *v_shareP =
	"04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1"
	"de127727f418b5966afadfdd95a6e4591d171056b333dab97a79c7193e341727";
static const char *v_y = "717a72348a182085109c8d3917d6c43d59b224dc6a7fc4f0483232fa6516d8b3";
static const char *v_shareV =
	"04c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810fb"
	"5cc1ca7494db39e82ff2f50665255d76173e09986ab46742c798a9a68437b048";
static const char *v_Z =
	"04bbfce7dd7f277819c8da21544afb7964705569bdf12fb92aa388059408d50091"
	"a0c5f1d3127f56813b5337f9e4e67e2ca633117a4fbd559946ab474356c41839";
static const char *v_V =
	"0458bf27c6bca011c9ce1930e8984a797a3419797b936629a5a937cf2f11c8b951"
	"4b82b993da8a46e664f23db7c01edc87faa530db01c2ee405230b18997f16b68";
static const char *v_TT =
	"38000000000000005350414b45322b2d503235362d5348413235362d484b4446"
	"2d5348413235362d484d41432d534841323536205465737420566563746f7273"
	"0600000000000000636c69656e740600000000000000736572766572410000000000"
	"000004886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa1"
	"2f5ff355163e43ce224e0b0e65ff02ac8e5c7be09419c785e0ca547d55a12e2d2041"
	"0000000000000004d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f"
	"98baa1292b4907d60aa6bfade45008a636337f5168c64d9bd36034808cd564490b1e"
	"656edbe7410000000000000004ef3bd051bf78a2234ec0df197f7828060fe9856503"
	"579bb1733009042c15c0c1de127727f418b5966afadfdd95a6e4591d171056b333da"
	"b97a79c7193e341727410000000000000004c0f65da0d11927bdf5d560c69e1d7d93"
	"9a05b0e88291887d679fcadea75810fb5cc1ca7494db39e82ff2f50665255d76173e"
	"09986ab46742c798a9a68437b048410000000000000004bbfce7dd7f277819c8da21"
	"544afb7964705569bdf12fb92aa388059408d50091a0c5f1d3127f56813b5337f9e4"
	"e67e2ca633117a4fbd559946ab474356c41839410000000000000004"
	"58bf27c6bca011c9ce1930e8984a797a3419797b936629a5a937cf2f11c8b9514b82"
	"b993da8a46e664f23db7c01edc87faa530db01c2ee405230b18997f16b682000000000"
	"000000bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3";
static const char *v_Kmain = "4c59e1ccf2cfb961aa31bd9434478a1089b56cd11542f53d3576fb6c2a438a29";
static const char *v_KcP = "871ae3f7b78445e34438fb284504240239031c39d80ac23eb5ab9be5ad6db58a";
static const char *v_KcV = "ccd53c7c1fa37b64a462b40db8be101cedcf838950162902054e644b400f1680";
static const char *v_cP = "926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527";
static const char *v_cV = "9747bcc4f8fe9f63defee53ac9b07876d907d55047e6ff2def2e7529089d3e68";
static const char *v_Kshared = "0c5f8ccd1413423a54f6c1fb26ff01534a87f893779c6e68666d772bfd91f3e7";

/* ---- helpers ------------------------------------------------------------- */

/* Decodes hex into out (capacity cap); returns the byte count. */
static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
	size_t n = strlen(h) / 2;

	assert_int_equal(strlen(h) % 2, 0);
	assert_true(n <= cap);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

static void assert_hex(const uint8_t *got, size_t len, const char *want_hex)
{
	uint8_t want[1024];
	size_t n = unhex(want_hex, want, sizeof(want));

	assert_int_equal(len, n);
	if (memcmp(got, want, n) != 0) {
		char buf[2100];

		for (size_t i = 0; i < len && i < 1024; i++)
			snprintf(buf + 2 * i, 3, "%02x", got[i]);
		fail_msg("got  %s\nwant %s", buf, want_hex);
	}
}

static const struct spake2p_ids rfc_ids = {
	NULL, 0, "client", 6, "server", 6,
};

static struct spake2p_ids ids_rfc(void)
{
	struct spake2p_ids ids = rfc_ids;

	ids.context = ctx_str;
	ids.context_len = strlen(ctx_str);
	return ids;
}

static void check_trace(struct spake2p *s)
{
	struct spake2p_trace tr;
	struct iotp_err err;

	assert_int_equal(spake2p_trace_get(s, &tr, &err), IOTP_OK);
	assert_hex(tr.Z, sizeof(tr.Z), v_Z);
	assert_hex(tr.V, sizeof(tr.V), v_V);
	assert_hex(tr.tt, tr.tt_len, v_TT);
	assert_hex(tr.k_main, sizeof(tr.k_main), v_Kmain);
	assert_hex(tr.k_confirm_p, sizeof(tr.k_confirm_p), v_KcP);
	assert_hex(tr.k_confirm_v, sizeof(tr.k_confirm_v), v_KcV);
	assert_hex(tr.confirm_p, sizeof(tr.confirm_p), v_cP);
	assert_hex(tr.confirm_v, sizeof(tr.confirm_v), v_cV);
	assert_hex(tr.k_shared, sizeof(tr.k_shared), v_Kshared);
}

/* ---- the RFC vector ------------------------------------------------------ */

static void test_rfc_registration_L(void **state)
{
	uint8_t w1[32], L[65];
	struct iotp_err err;

	(void)state;
	unhex(v_w1, w1, sizeof(w1));
	assert_int_equal(spake2p_compute_L(w1, L, &err), IOTP_OK);
	assert_hex(L, sizeof(L), v_L);
}

static void test_rfc_prover(void **state)
{
	uint8_t w0[32], w1[32], x[32], share[65], peer[65], confirm[32], cv[32], key[32];
	struct spake2p_ids ids = ids_rfc();
	struct spake2p *s = NULL;
	struct iotp_err err;

	(void)state;
	unhex(v_w0, w0, sizeof(w0));
	unhex(v_w1, w1, sizeof(w1));
	unhex(v_x, x, sizeof(x));
	unhex(v_shareV, peer, sizeof(peer));
	unhex(v_cV, cv, sizeof(cv));
	assert_int_equal(spake2p_prover_new(w0, w1, &ids, &s, &err), IOTP_OK);
	assert_int_equal(spake2p_set_ephemeral(s, x, &err), IOTP_OK);
	assert_int_equal(spake2p_share(s, share, &err), IOTP_OK);
	assert_hex(share, sizeof(share), v_shareP);
	/* No key before the exchange is confirmed. */
	assert_int_equal(spake2p_shared_key(s, key, &err), IOTP_ERR_STATE);
	assert_int_equal(spake2p_finish(s, peer, sizeof(peer), confirm, &err), IOTP_OK);
	assert_hex(confirm, sizeof(confirm), v_cP);
	check_trace(s);
	assert_int_equal(spake2p_shared_key(s, key, &err), IOTP_ERR_STATE);
	assert_int_equal(spake2p_confirm_check(s, cv, sizeof(cv), &err), IOTP_OK);
	assert_int_equal(spake2p_shared_key(s, key, &err), IOTP_OK);
	assert_hex(key, sizeof(key), v_Kshared);
	/* A second finish is a state error, not a new key. */
	assert_int_equal(spake2p_finish(s, peer, sizeof(peer), confirm, &err), IOTP_ERR_STATE);
	spake2p_free(s);
}

static void test_rfc_verifier(void **state)
{
	uint8_t w0[32], L[65], y[32], share[65], peer[65], confirm[32], cp[32], key[32];
	struct spake2p_ids ids = ids_rfc();
	struct spake2p *s = NULL;
	struct iotp_err err;

	(void)state;
	unhex(v_w0, w0, sizeof(w0));
	unhex(v_L, L, sizeof(L));
	unhex(v_y, y, sizeof(y));
	unhex(v_shareP, peer, sizeof(peer));
	unhex(v_cP, cp, sizeof(cp));
	assert_int_equal(spake2p_verifier_new(w0, L, &ids, &s, &err), IOTP_OK);
	assert_int_equal(spake2p_set_ephemeral(s, y, &err), IOTP_OK);
	assert_int_equal(spake2p_share(s, share, &err), IOTP_OK);
	assert_hex(share, sizeof(share), v_shareV);
	assert_int_equal(spake2p_finish(s, peer, sizeof(peer), confirm, &err), IOTP_OK);
	assert_hex(confirm, sizeof(confirm), v_cV);
	check_trace(s);
	/* A confirmation with one bit flipped is refused and gives no key. */
	cp[31] ^= 1;
	assert_int_equal(spake2p_confirm_check(s, cp, sizeof(cp), &err), IOTP_ERR_AUTH);
	assert_int_equal(spake2p_shared_key(s, key, &err), IOTP_ERR_STATE);
	cp[31] ^= 1;
	assert_int_equal(spake2p_confirm_check(s, cp, 31, &err), IOTP_ERR_AUTH);
	assert_int_equal(spake2p_confirm_check(s, cp, sizeof(cp), &err), IOTP_OK);
	assert_int_equal(spake2p_shared_key(s, key, &err), IOTP_OK);
	assert_hex(key, sizeof(key), v_Kshared);
	spake2p_free(s);
}

/* ---- registration -------------------------------------------------------- */

static void test_reduce(void **state)
{
	uint8_t in[80], w0[32], w1[32];
	struct iotp_err err;

	(void)state;
	/* The RFC's w0/w1 with 8 zero bytes in front reduce to themselves. */
	memset(in, 0, sizeof(in));
	unhex(v_w0, in + 8, 32);
	unhex(v_w1, in + 48, 32);
	assert_int_equal(spake2p_reduce(in, w0, w1, &err), IOTP_OK);
	assert_hex(w0, 32, v_w0);
	assert_hex(w1, 32, v_w1);
	/* 2^320 - 1 mod n, computed with Python integers. */
	memset(in, 0xff, sizeof(in));
	assert_int_equal(spake2p_reduce(in, w0, w1, &err), IOTP_OK);
	assert_hex(w0, 32, "fffffffe00000001431905529c0166cd22159165b6faae70f756a571fc632550");
	assert_hex(w1, 32, "fffffffe00000001431905529c0166cd22159165b6faae70f756a571fc632550");
	/* A half that is a multiple of n gives a zero scalar: refused. */
	memset(in, 0, sizeof(in));
	in[79] = 1;
	assert_int_equal(spake2p_reduce(in, w0, w1, &err), IOTP_ERR_CRYPTO);
}

static void test_register_pbkdf2(void **state)
{
	struct spake2p_ids ids = {"", 0, "installer", 9, "device-0001", 11};
	uint8_t salt[16], w0[32], w1[32];
	struct iotp_err err;

	(void)state;
	for (int i = 0; i < 16; i++)
		salt[i] = (uint8_t)i;
	/* Expected: hashlib.pbkdf2_hmac('sha256', len(pw)||pw||len(idP)||idP||
	 * len(idV)||idV, salt, 1000, 80), each half mod n. */
	assert_int_equal(spake2p_register("20202021", 8, &ids, salt, sizeof(salt), 1000, w0, w1,
	                                  &err),
	                 IOTP_OK);
	assert_hex(w0, 32, "804934b31ae84f8ac4a37924db2d7bfce364b5e4574cbf3f344a5ea1d21dae5f");
	assert_hex(w1, 32, "20d8cb9fc6cb3fdf7cddadacb1f728cba99ba18c34858e1cd3f3927f8f1d775c");
	assert_int_equal(spake2p_register("20202021", 8, &ids, salt, sizeof(salt), 999, w0, w1,
	                                  &err),
	                 IOTP_ERR_INVALID);
}

/* ---- both roles with random scalars -------------------------------------- */

struct run_result {
	iotp_rc prover_check, verifier_check;
	iotp_rc prover_key, verifier_key;
	uint8_t kp[32], kv[32];
};

static void run(const char *code_prover, const char *code_verifier, struct run_result *r)
{
	struct spake2p_ids ids = {"iotprov test", 12, "installer", 9, "dev", 3};
	uint8_t salt[16] = {1, 2, 3};
	uint8_t pw0[32], pw1[32], vw0[32], vw1[32], L[65];
	uint8_t X[65], Y[65], cP[32], cV[32];
	struct spake2p *p = NULL, *v = NULL;
	struct iotp_err err;

	assert_int_equal(spake2p_register(code_prover, strlen(code_prover), &ids, salt, 16, 1000,
	                                  pw0, pw1, &err),
	                 IOTP_OK);
	assert_int_equal(spake2p_register(code_verifier, strlen(code_verifier), &ids, salt, 16,
	                                  1000, vw0, vw1, &err),
	                 IOTP_OK);
	assert_int_equal(spake2p_compute_L(vw1, L, &err), IOTP_OK);
	assert_int_equal(spake2p_prover_new(pw0, pw1, &ids, &p, &err), IOTP_OK);
	assert_int_equal(spake2p_verifier_new(vw0, L, &ids, &v, &err), IOTP_OK);
	/* The verifier's share first, as the removable-media transport does. */
	assert_int_equal(spake2p_share(v, Y, &err), IOTP_OK);
	assert_int_equal(spake2p_share(p, X, &err), IOTP_OK);
	assert_int_equal(spake2p_finish(v, X, 65, cV, &err), IOTP_OK);
	assert_int_equal(spake2p_finish(p, Y, 65, cP, &err), IOTP_OK);
	r->prover_check = spake2p_confirm_check(p, cV, 32, &err);
	r->verifier_check = spake2p_confirm_check(v, cP, 32, &err);
	r->prover_key = spake2p_shared_key(p, r->kp, &err);
	r->verifier_key = spake2p_shared_key(v, r->kv, &err);
	spake2p_free(p);
	spake2p_free(v);
}

static void test_same_code_same_key(void **state)
{
	struct run_result a, b;

	(void)state;
	run("31415926", "31415926", &a);
	assert_int_equal(a.prover_check, IOTP_OK);
	assert_int_equal(a.verifier_check, IOTP_OK);
	assert_int_equal(a.prover_key, IOTP_OK);
	assert_int_equal(a.verifier_key, IOTP_OK);
	assert_memory_equal(a.kp, a.kv, 32);
	/* Fresh ephemerals: a second run gives another key. */
	run("31415926", "31415926", &b);
	assert_int_equal(b.prover_key, IOTP_OK);
	assert_memory_not_equal(a.kp, b.kp, 32);
}

static void test_wrong_code_fails_both_sides(void **state)
{
	struct run_result r;

	(void)state;
	run("31415926", "31415927", &r);
	assert_int_equal(r.prover_check, IOTP_ERR_AUTH);
	assert_int_equal(r.verifier_check, IOTP_ERR_AUTH);
	assert_int_equal(r.prover_key, IOTP_ERR_STATE);
	assert_int_equal(r.verifier_key, IOTP_ERR_STATE);
}

/* ---- malformed shares ---------------------------------------------------- */

static void test_bad_shares(void **state)
{
	struct spake2p_ids ids = ids_rfc();
	uint8_t w0[32], L[65], X[65], cV[32], bad[65];
	struct spake2p *v = NULL;
	struct iotp_err err;
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_POINT *m = EC_POINT_new(g);
	BIGNUM *k = BN_new();
	BN_CTX *bn = BN_CTX_new();
	uint8_t mc[33];

	(void)state;
	unhex(v_w0, w0, sizeof(w0));
	unhex(v_L, L, sizeof(L));
	unhex(v_shareP, X, sizeof(X));

	assert_int_equal(spake2p_verifier_new(w0, L, &ids, &v, &err), IOTP_OK);
	/* Too short, compressed form, off the curve. */
	assert_int_equal(spake2p_finish(v, X, 64, cV, &err), IOTP_ERR_INVALID);
	memcpy(bad, X, 65);
	bad[0] = 0x02;
	assert_int_equal(spake2p_finish(v, bad, 33, cV, &err), IOTP_ERR_INVALID);
	memcpy(bad, X, 65);
	bad[64] ^= 0x01;
	assert_int_equal(spake2p_finish(v, bad, 65, cV, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "shareP"));
	/* shareP = w0*M unmasks to the identity: refused. */
	unhex("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f", mc, 33);
	assert_int_equal(EC_POINT_oct2point(g, m, mc, 33, bn), 1);
	assert_non_null(BN_bin2bn(w0, 32, k));
	assert_int_equal(EC_POINT_mul(g, m, NULL, m, k, bn), 1);
	assert_int_equal(EC_POINT_point2oct(g, m, POINT_CONVERSION_UNCOMPRESSED, bad, 65, bn), 65);
	assert_int_equal(spake2p_finish(v, bad, 65, cV, &err), IOTP_ERR_INVALID);
	/* After refusals the exchange still completes with a good share. */
	assert_int_equal(spake2p_finish(v, X, 65, cV, &err), IOTP_OK);
	spake2p_free(v);

	/* A record whose L is not a point is refused. */
	L[10] ^= 0x40;
	assert_int_equal(spake2p_verifier_new(w0, L, &ids, &v, &err), IOTP_ERR_INVALID);
	/* A zero w0 is not a scalar. */
	memset(w0, 0, sizeof(w0));
	unhex(v_L, L, sizeof(L));
	assert_int_equal(spake2p_verifier_new(w0, L, &ids, &v, &err), IOTP_ERR_INVALID);

	BN_CTX_free(bn);
	BN_free(k);
	EC_POINT_free(m);
	EC_GROUP_free(g);
}

static void test_hkdf_rfc5869(void **state)
{
	/* RFC 5869 test case 1 (SHA-256). */
	uint8_t ikm[22], salt[13], info[10], okm[42];
	struct iotp_err err;

	(void)state;
	memset(ikm, 0x0b, sizeof(ikm));
	for (int i = 0; i < 13; i++)
		salt[i] = (uint8_t)i;
	for (int i = 0; i < 10; i++)
		info[i] = (uint8_t)(0xf0 + i);
	assert_int_equal(spake2p_hkdf(salt, sizeof(salt), ikm, sizeof(ikm), info, sizeof(info), okm,
	                              sizeof(okm), &err),
	                 IOTP_OK);
	assert_hex(okm, sizeof(okm),
	           "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
	           "34007208d5b887185865");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_registration_L),
		cmocka_unit_test(test_rfc_prover),
		cmocka_unit_test(test_rfc_verifier),
		cmocka_unit_test(test_reduce),
		cmocka_unit_test(test_register_pbkdf2),
		cmocka_unit_test(test_same_code_same_key),
		cmocka_unit_test(test_wrong_code_fails_both_sides),
		cmocka_unit_test(test_bad_shares),
		cmocka_unit_test(test_hkdf_rfc5869),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
