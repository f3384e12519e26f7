/*
 * SPAKE2+ (RFC 9383), ciphersuite P256-SHA256-HKDF-SHA256-HMAC-SHA256: the
 * augmented password-authenticated key exchange that network commissioning
 * runs between an installer (the prover, who knows the setup code) and a
 * device (the verifier, which needs only w0 and L = w1*P).
 *
 * Pure crypto on OpenSSL 3 (EC, BN, SHA-256, HKDF, HMAC): no I/O, no
 * globals, one handle per exchange. Shares travel as uncompressed SEC1
 * points (65 bytes), confirmations are 32-byte HMACs, the shared key
 * K_shared is 32 bytes.
 *
 * The exchange, for either order of the two shares (Y does not depend on X,
 * so a verifier may publish its share first: the removable-media transport
 * does):
 *   prover:   spake2p_prover_new -> spake2p_share (X) -> spake2p_finish(Y)
 *             -> confirmP; spake2p_confirm_check(confirmV)
 *   verifier: spake2p_verifier_new -> spake2p_share (Y) -> spake2p_finish(X)
 *             -> confirmV; spake2p_confirm_check(confirmP)
 *   both:     spake2p_shared_key once the peer's confirmation checked.
 *
 * A handle is not thread-safe; distinct handles are independent.
 */
#ifndef IOTP_SPAKE2P_H
#define IOTP_SPAKE2P_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define SPAKE2P_SCALAR_LEN 32   /* w0, w1, x, y: big-endian, mod the order */
#define SPAKE2P_POINT_LEN 65    /* uncompressed SEC1: 0x04 || X || Y */
#define SPAKE2P_HASH_LEN 32     /* confirmations, K_main, K_shared */
#define SPAKE2P_PBKDF_HALF 40   /* bytes of PBKDF output per scalar */
#define SPAKE2P_ITER_MIN 1000   /* PBKDF2 iterations accepted */
#define SPAKE2P_ITER_MAX 10000000

enum spake2p_role { SPAKE2P_PROVER = 0, SPAKE2P_VERIFIER = 1 };

struct spake2p;

/* The bytes both sides bind into the transcript (RFC 9383 section 3.3).
 * Borrowed for the duration of the call that takes them. */
struct spake2p_ids {
	const void *context;
	size_t context_len;
	const void *prover;
	size_t prover_len;
	const void *verifier;
	size_t verifier_len;
};

/* Registration (RFC 9383 section 3.2) with PBKDF2-HMAC-SHA256:
 * w0s || w1s = PBKDF2(len(pw) || pw || len(idProver) || idProver ||
 * len(idVerifier) || idVerifier, salt, iterations), 40 bytes each, then
 * w0 = w0s mod n, w1 = w1s mod n. A zero scalar (probability 2^-256) is
 * IOTP_ERR_CRYPTO. iterations outside [SPAKE2P_ITER_MIN, _MAX]: INVALID. */
iotp_rc spake2p_register(const void *pw, size_t pw_len, const struct spake2p_ids *ids,
                         const uint8_t *salt, size_t salt_len, uint32_t iterations,
                         uint8_t w0[SPAKE2P_SCALAR_LEN], uint8_t w1[SPAKE2P_SCALAR_LEN],
                         struct iotp_err *err);

/* Reduces 80 bytes of PBKDF output (w0s || w1s) to w0 and w1. */
iotp_rc spake2p_reduce(const uint8_t pbkdf_out[2 * SPAKE2P_PBKDF_HALF],
                       uint8_t w0[SPAKE2P_SCALAR_LEN], uint8_t w1[SPAKE2P_SCALAR_LEN],
                       struct iotp_err *err);

/* L = w1*P, the verifier's half of the registration record. */
iotp_rc spake2p_compute_L(const uint8_t w1[SPAKE2P_SCALAR_LEN], uint8_t L[SPAKE2P_POINT_LEN],
                          struct iotp_err *err);

/* A prover holding w0 and w1. ids are copied. *out is the caller's: release
 * with spake2p_free(). */
iotp_rc spake2p_prover_new(const uint8_t w0[SPAKE2P_SCALAR_LEN],
                           const uint8_t w1[SPAKE2P_SCALAR_LEN], const struct spake2p_ids *ids,
                           struct spake2p **out, struct iotp_err *err);
/* A verifier holding the record (w0, L). L must be a valid point other than
 * the identity (INVALID otherwise). */
iotp_rc spake2p_verifier_new(const uint8_t w0[SPAKE2P_SCALAR_LEN],
                             const uint8_t L[SPAKE2P_POINT_LEN], const struct spake2p_ids *ids,
                             struct spake2p **out, struct iotp_err *err);
/* Wipes every secret and frees; NULL is a no-op. */
void spake2p_free(struct spake2p *s);

/* Fixes the ephemeral scalar (x for a prover, y for a verifier) instead of
 * drawing it at random: for the RFC test vectors only. Call before
 * spake2p_share. A zero or out-of-range scalar is INVALID. */
iotp_rc spake2p_set_ephemeral(struct spake2p *s, const uint8_t scalar[SPAKE2P_SCALAR_LEN],
                              struct iotp_err *err);

/* This side's share: shareP = X = x*P + w0*M for a prover, shareV = Y =
 * y*P + w0*N for a verifier. The same bytes on every call. */
iotp_rc spake2p_share(struct spake2p *s, uint8_t share[SPAKE2P_POINT_LEN], struct iotp_err *err);

/* Takes the peer's share, computes Z, V and the key schedule, and writes this
 * side's confirmation (confirmP = MAC(K_confirmP, shareV) for a prover,
 * confirmV = MAC(K_confirmV, shareP) for a verifier). A share that is not a
 * valid uncompressed P-256 point, is the identity, or makes Z or V the
 * identity: INVALID. Called twice: STATE. */
iotp_rc spake2p_finish(struct spake2p *s, const uint8_t *peer_share, size_t peer_len,
                       uint8_t confirm[SPAKE2P_HASH_LEN], struct iotp_err *err);

/* Checks the peer's confirmation in constant time: IOTP_OK or IOTP_ERR_AUTH
 * (nothing else is said). Before spake2p_finish: STATE. */
iotp_rc spake2p_confirm_check(struct spake2p *s, const uint8_t *peer_confirm, size_t len,
                              struct iotp_err *err);

/* K_shared, once the peer's confirmation has checked (STATE before). */
iotp_rc spake2p_shared_key(const struct spake2p *s, uint8_t key[SPAKE2P_HASH_LEN],
                           struct iotp_err *err);

/* K_shared right after spake2p_finish, before the peer confirmed: for a
 * side that must send sealed data in its first flight (the installer's
 * commission file on removable media). Only a peer that knows the password
 * derives the same key, but this side cannot yet know it did: nothing
 * sealed with it may be trusted back until spake2p_confirm_check passed.
 * STATE before spake2p_finish. */
iotp_rc spake2p_shared_key_early(const struct spake2p *s, uint8_t key[SPAKE2P_HASH_LEN],
                                 struct iotp_err *err);

/* Every intermediate value of a finished exchange, for checking against the
 * RFC 9383 test vectors. Pointers borrow from s and die with it. These are
 * secrets: never log them. STATE before spake2p_finish. */
struct spake2p_trace {
	uint8_t Z[SPAKE2P_POINT_LEN];
	uint8_t V[SPAKE2P_POINT_LEN];
	const uint8_t *tt;
	size_t tt_len;
	uint8_t k_main[SPAKE2P_HASH_LEN];
	uint8_t k_confirm_p[SPAKE2P_HASH_LEN];
	uint8_t k_confirm_v[SPAKE2P_HASH_LEN];
	uint8_t k_shared[SPAKE2P_HASH_LEN];
	uint8_t confirm_p[SPAKE2P_HASH_LEN];
	uint8_t confirm_v[SPAKE2P_HASH_LEN];
};
iotp_rc spake2p_trace_get(const struct spake2p *s, struct spake2p_trace *out,
                          struct iotp_err *err);

/* HKDF-SHA256 (RFC 5869) with an empty salt when salt_len is 0. Exposed for
 * the commissioning session's key derivation. */
iotp_rc spake2p_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                     const void *info, size_t info_len, uint8_t *out, size_t out_len,
                     struct iotp_err *err);

#endif
