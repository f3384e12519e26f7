/*
 * The sealed channel of a commissioning session: AES-128-GCM with one key
 * per direction derived from the SPAKE2+ shared key, a 96-bit nonce made of
 * a direction tag and the 64-bit sequence number, and the session id,
 * direction and sequence number as additional data. A receiver accepts
 * only the next sequence number, so a replayed, dropped-and-replayed or
 * reordered message never reaches the state machine.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "core/commission.h"

#define TAG_LEN 16
#define DIR_I2D 0x69 /* 'i': installer -> device */
#define DIR_D2I 0x64 /* 'd': device -> installer */

static const char info_i2d[] = COMMISSION_CONTEXT " installer->device";
static const char info_d2i[] = COMMISSION_CONTEXT " device->installer";

iotp_rc commission_channel_init(struct commission_channel *ch, int is_device,
                                const uint8_t k_shared[SPAKE2P_HASH_LEN],
                                const uint8_t sid[COMMISSION_SID_LEN], struct iotp_err *err)
{
	uint8_t i2d[16], d2i[16];
	iotp_rc rc;

	memset(ch, 0, sizeof(*ch));
	rc = spake2p_hkdf(sid, COMMISSION_SID_LEN, k_shared, SPAKE2P_HASH_LEN, info_i2d,
	                  sizeof(info_i2d) - 1, i2d, sizeof(i2d), err);
	if (rc == IOTP_OK)
		rc = spake2p_hkdf(sid, COMMISSION_SID_LEN, k_shared, SPAKE2P_HASH_LEN, info_d2i,
		                  sizeof(info_d2i) - 1, d2i, sizeof(d2i), err);
	if (rc == IOTP_OK) {
		memcpy(ch->sid, sid, COMMISSION_SID_LEN);
		memcpy(ch->key_tx, is_device ? d2i : i2d, 16);
		memcpy(ch->key_rx, is_device ? i2d : d2i, 16);
		/* The direction of what this side sends, kept in the nonce's
		 * first byte so a message can never be reflected back. */
		ch->ready = is_device ? 2 : 1;
	}
	OPENSSL_cleanse(i2d, sizeof(i2d));
	OPENSSL_cleanse(d2i, sizeof(d2i));
	return rc;
}

void commission_channel_cleanup(struct commission_channel *ch)
{
	OPENSSL_cleanse(ch, sizeof(*ch));
}

static uint8_t dir_of(const struct commission_channel *ch, int tx)
{
	int device = ch->ready == 2;

	return (uint8_t)((device == tx) ? DIR_D2I : DIR_I2D);
}

static void nonce_aad(const struct commission_channel *ch, uint8_t d, uint64_t seq,
                      uint8_t nonce[12], uint8_t aad[COMMISSION_SID_LEN + 9])
{
	memset(nonce, 0, 12);
	nonce[0] = d;
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(seq >> (56 - 8 * i));
	memcpy(aad, ch->sid, COMMISSION_SID_LEN);
	aad[COMMISSION_SID_LEN] = d;
	memcpy(aad + COMMISSION_SID_LEN + 1, nonce + 4, 8);
}

iotp_rc commission_channel_seal(struct commission_channel *ch, const void *pt, size_t len,
                                struct commission_sealed *out, struct iotp_err *err)
{
	EVP_CIPHER_CTX *c = NULL;
	uint8_t nonce[12], aad[COMMISSION_SID_LEN + 9], *ct = NULL;
	int n = 0, f = 0;
	iotp_rc rc = IOTP_OK;

	if (!ch->ready)
		return iotp_err_set(err, IOTP_ERR_STATE, "channel not established");
	if (len > COMMISSION_LINE_MAX)
		return iotp_err_set(err, IOTP_ERR_TOO_BIG, "message too big to seal");
	nonce_aad(ch, dir_of(ch, 1), ch->seq_tx, nonce, aad);
	if (!(ct = malloc(len + TAG_LEN)) || !(c = EVP_CIPHER_CTX_new())) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "seal");
		goto out;
	}
	if (EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, ch->key_tx, nonce) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &n, aad, (int)sizeof(aad)) != 1 ||
	    EVP_EncryptUpdate(c, ct, &n, pt, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(c, ct + n, &f) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, ct + len) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "AES-GCM seal");
		goto out;
	}
	out->seq = ch->seq_tx++;
	out->ct = ct;
	out->ct_len = len + TAG_LEN;
	ct = NULL;
out:
	free(ct);
	EVP_CIPHER_CTX_free(c);
	return rc;
}

iotp_rc commission_channel_open(struct commission_channel *ch, const struct commission_sealed *in,
                                uint8_t **pt, size_t *len, struct iotp_err *err)
{
	EVP_CIPHER_CTX *c = NULL;
	uint8_t nonce[12], aad[COMMISSION_SID_LEN + 9], *p = NULL;
	size_t plen;
	int n = 0, f = 0;
	iotp_rc rc = IOTP_OK;

	if (!ch->ready)
		return iotp_err_set(err, IOTP_ERR_STATE, "channel not established");
	if (in->seq != ch->seq_rx)
		return iotp_err_set(err, IOTP_ERR_STATE,
		                    "sequence number %llu where %llu was expected (replayed or "
		                    "reordered message)",
		                    (unsigned long long)in->seq, (unsigned long long)ch->seq_rx);
	if (in->ct_len < TAG_LEN || in->ct_len - TAG_LEN > COMMISSION_LINE_MAX)
		return iotp_err_set(err, IOTP_ERR_AUTH, "message authentication failed");
	plen = in->ct_len - TAG_LEN;
	nonce_aad(ch, dir_of(ch, 0), in->seq, nonce, aad);
	if (!(p = malloc(plen + 1)) || !(c = EVP_CIPHER_CTX_new())) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "open");
		goto out;
	}
	if (EVP_DecryptInit_ex(c, EVP_aes_128_gcm(), NULL, ch->key_rx, nonce) != 1 ||
	    EVP_DecryptUpdate(c, NULL, &n, aad, (int)sizeof(aad)) != 1 ||
	    EVP_DecryptUpdate(c, p, &n, in->ct, (int)plen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, in->ct + plen) != 1) {
		rc = iotp_err_ssl(err, IOTP_ERR_CRYPTO, "AES-GCM open");
		goto out;
	}
	if (EVP_DecryptFinal_ex(c, p + n, &f) != 1) {
		ERR_clear_error();
		rc = iotp_err_set(err, IOTP_ERR_AUTH, "message authentication failed");
		goto out;
	}
	p[plen] = '\0';
	ch->seq_rx++;
	*pt = p;
	*len = plen;
	p = NULL;
out:
	if (p) {
		OPENSSL_cleanse(p, plen);
		free(p);
	}
	EVP_CIPHER_CTX_free(c);
	return rc;
}
