/*
 * The installer side of commissioning: SPAKE2+ as the prover from the
 * setup code, then the sealed channel. Used by `iotprov commission` over
 * every transport; the web page carries its own JavaScript twin
 * (web/commission/src/session.js), checked against this one by the e2e
 * tests.
 *
 * The installer checks the device's confirmation before it answers with
 * its own: a device (or impostor) that does not know the setup code learns
 * nothing from an installer that stops there.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/util.h"
#include "core/commission.h"

enum inst_state { I_NEW = 0, I_HELLO, I_PAKE1, I_PAKE3, I_READY, I_FAILED };

struct commission_installer {
	enum inst_state state;
	char *code;
	size_t code_len;
	char device[COMMISSION_DEVICE_ID_MAX + 1];
	char sid_hex[2 * COMMISSION_SID_LEN + 1];
	uint8_t sid[COMMISSION_SID_LEN];
	struct spake2p *sp;
	struct commission_channel ch;
	int64_t retry_ms;
};

iotp_rc commission_installer_new(const char *setup_code, struct commission_installer **out,
                                 struct iotp_err *err)
{
	struct commission_installer *in;
	size_t n = strlen(setup_code);

	if (n < COMMISSION_SETUP_CODE_MIN || n > COMMISSION_SETUP_CODE_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "setup code must be %d to %d characters",
		                    COMMISSION_SETUP_CODE_MIN, COMMISSION_SETUP_CODE_MAX);
	if (!(in = calloc(1, sizeof(*in))) || !(in->code = malloc(n + 1))) {
		free(in);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "installer");
	}
	memcpy(in->code, setup_code, n + 1);
	in->code_len = n;
	*out = in;
	return IOTP_OK;
}

void commission_installer_free(struct commission_installer *in)
{
	if (!in)
		return;
	if (in->code) {
		OPENSSL_cleanse(in->code, in->code_len);
		free(in->code);
	}
	spake2p_free(in->sp);
	commission_channel_cleanup(&in->ch);
	OPENSSL_cleanse(in, sizeof(*in));
	free(in);
}

int commission_installer_ready(const struct commission_installer *in)
{
	return in->state == I_READY;
}

const char *commission_installer_device(const struct commission_installer *in)
{
	return in->device;
}

int64_t commission_installer_retry_ms(const struct commission_installer *in)
{
	return in->retry_ms;
}

iotp_rc commission_installer_start(struct commission_installer *in, struct buf *out,
                                   struct iotp_err *err)
{
	struct commission_msg m;

	spake2p_free(in->sp);
	in->sp = NULL;
	commission_channel_cleanup(&in->ch);
	memset(&m, 0, sizeof(m));
	m.type = CM_HELLO;
	in->state = I_HELLO;
	in->retry_ms = 0;
	return commission_msg_format(&m, out, err);
}

/* Maps a device error reply to a return code with its message. */
static iotp_rc device_error(struct commission_installer *in, const struct commission_msg *m,
                            struct iotp_err *err)
{
	in->state = I_FAILED;
	in->retry_ms = m->retry_ms > 0 ? m->retry_ms : 0;
	if (strcmp(m->code, COMMISSION_E_AUTH) == 0)
		return iotp_err_set(err, IOTP_ERR_AUTH, "the device refused the setup code");
	if (strcmp(m->code, COMMISSION_E_THROTTLED) == 0)
		return iotp_err_set(err, IOTP_ERR_THROTTLED, "device: %s", m->message);
	if (strcmp(m->code, COMMISSION_E_LOCKED) == 0)
		return iotp_err_set(err, IOTP_ERR_LIMIT, "device: %s", m->message);
	if (strcmp(m->code, COMMISSION_E_BUSY) == 0)
		return iotp_err_set(err, IOTP_ERR_BUSY, "device: %s", m->message);
	if (strcmp(m->code, COMMISSION_E_REPLAY) == 0 || strcmp(m->code, COMMISSION_E_SESSION) == 0 ||
	    strcmp(m->code, COMMISSION_E_STALE) == 0)
		return iotp_err_set(err, IOTP_ERR_STATE, "device: %s: %s", m->code, m->message);
	if (strcmp(m->code, COMMISSION_E_INTEGRITY) == 0)
		return iotp_err_set(err, IOTP_ERR_AUTH, "device: %s", m->message);
	return iotp_err_set(err, IOTP_ERR_INVALID, "device: %s: %s", m->code, m->message);
}

/* Sets up the prover from params (device id, salt, iterations). */
static iotp_rc prover_from_params(struct commission_installer *in, const struct commission_msg *m,
                                  struct iotp_err *err)
{
	struct spake2p_ids ids;
	uint8_t w0[SPAKE2P_SCALAR_LEN], w1[SPAKE2P_SCALAR_LEN];
	iotp_rc rc;

	util_strlcpy(in->device, m->device, sizeof(in->device));
	util_strlcpy(in->sid_hex, m->sid, sizeof(in->sid_hex));
	for (size_t i = 0; i < COMMISSION_SID_LEN; i++) {
		unsigned hi = (unsigned)(m->sid[2 * i] <= '9' ? m->sid[2 * i] - '0' : m->sid[2 * i] - 'a' + 10);
		unsigned lo = (unsigned)(m->sid[2 * i + 1] <= '9' ? m->sid[2 * i + 1] - '0'
		                                                  : m->sid[2 * i + 1] - 'a' + 10);

		in->sid[i] = (uint8_t)(hi << 4 | lo);
	}
	ids.context = COMMISSION_CONTEXT;
	ids.context_len = strlen(COMMISSION_CONTEXT);
	ids.prover = COMMISSION_PROVER_ID;
	ids.prover_len = strlen(COMMISSION_PROVER_ID);
	ids.verifier = in->device;
	ids.verifier_len = strlen(in->device);
	rc = spake2p_register(in->code, in->code_len, &ids, m->salt, m->salt_len, m->iterations, w0,
	                      w1, err);
	if (rc == IOTP_OK) {
		spake2p_free(in->sp);
		in->sp = NULL;
		rc = spake2p_prover_new(w0, w1, &ids, &in->sp, err);
	}
	OPENSSL_cleanse(w0, sizeof(w0));
	OPENSSL_cleanse(w1, sizeof(w1));
	return rc;
}

static iotp_rc open_channel(struct commission_installer *in, struct iotp_err *err)
{
	uint8_t key[SPAKE2P_HASH_LEN];
	iotp_rc rc = spake2p_shared_key(in->sp, key, err);

	if (rc == IOTP_OK)
		rc = commission_channel_init(&in->ch, 0, key, in->sid, err);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

iotp_rc commission_installer_handle(struct commission_installer *in, const char *line,
                                    size_t len, struct buf *out, struct iotp_err *err)
{
	struct commission_msg m, r;
	iotp_rc rc;

	memset(&m, 0, sizeof(m));
	memset(&r, 0, sizeof(r));
	rc = commission_msg_parse(line, len, &m, err);
	if (rc != IOTP_OK) {
		in->state = I_FAILED;
		return iotp_err_prefix(err, IOTP_ERR_INVALID, "unreadable reply from the device");
	}
	if (m.type == CM_ERROR) {
		rc = device_error(in, &m, err);
		goto out;
	}
	if (in->state == I_HELLO && m.type == CM_PARAMS) {
		if ((rc = prover_from_params(in, &m, err)) != IOTP_OK)
			goto fail;
		r.type = CM_PAKE1;
		util_strlcpy(r.sid, in->sid_hex, sizeof(r.sid));
		if ((rc = spake2p_share(in->sp, r.share, err)) != IOTP_OK)
			goto fail;
		r.has_share = 1;
		in->state = I_PAKE1;
		rc = commission_msg_format(&r, out, err);
	} else if (in->state == I_PAKE1 && m.type == CM_PAKE2 && strcmp(m.sid, in->sid_hex) == 0) {
		r.type = CM_PAKE3;
		util_strlcpy(r.sid, in->sid_hex, sizeof(r.sid));
		if ((rc = spake2p_finish(in->sp, m.share, SPAKE2P_POINT_LEN, r.confirm, err)) != IOTP_OK)
			goto fail;
		if (spake2p_confirm_check(in->sp, m.confirm, SPAKE2P_HASH_LEN, NULL) != IOTP_OK) {
			rc = iotp_err_set(err, IOTP_ERR_AUTH,
			                  "wrong setup code (the device could not prove it knows it)");
			goto fail;
		}
		r.has_confirm = 1;
		if ((rc = open_channel(in, err)) != IOTP_OK)
			goto fail;
		in->state = I_PAKE3;
		rc = commission_msg_format(&r, out, err);
	} else if (in->state == I_PAKE3 && m.type == CM_OK && strcmp(m.sid, in->sid_hex) == 0) {
		in->state = I_READY;
	} else {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "unexpected reply from the device");
		goto fail;
	}
	goto out;
fail:
	in->state = I_FAILED;
out:
	commission_msg_cleanup(&m);
	return rc;
}

iotp_rc commission_installer_seal(struct commission_installer *in,
                                  const struct commission_inner *msg, struct buf *out,
                                  struct iotp_err *err)
{
	struct commission_msg m;
	struct buf pt;
	iotp_rc rc;

	if (in->state != I_READY)
		return iotp_err_set(err, IOTP_ERR_STATE, "session not established");
	memset(&m, 0, sizeof(m));
	buf_init(&pt, COMMISSION_LINE_MAX);
	m.type = CM_SEALED;
	util_strlcpy(m.sid, in->sid_hex, sizeof(m.sid));
	rc = commission_inner_format(msg, &pt, err);
	if (rc == IOTP_OK)
		rc = commission_channel_seal(&in->ch, pt.data, pt.len, &m.sealed, err);
	if (rc == IOTP_OK)
		rc = commission_msg_format(&m, out, err);
	buf_cleanup_secure(&pt);
	commission_msg_cleanup(&m);
	return rc;
}

static iotp_rc open_inner(struct commission_channel *ch, const struct commission_sealed *s,
                          struct commission_inner *out, struct iotp_err *err)
{
	uint8_t *pt = NULL;
	size_t len = 0;
	iotp_rc rc = commission_channel_open(ch, s, &pt, &len, err);

	if (rc != IOTP_OK)
		return iotp_err_prefix(err, rc, "reply from the device refused");
	rc = commission_inner_parse(pt, len, out, err);
	OPENSSL_cleanse(pt, len);
	free(pt);
	return rc;
}

iotp_rc commission_installer_open(struct commission_installer *in, const char *line, size_t len,
                                  struct commission_inner *out, struct iotp_err *err)
{
	struct commission_msg m;
	iotp_rc rc;

	memset(&m, 0, sizeof(m));
	if ((rc = commission_msg_parse(line, len, &m, err)) != IOTP_OK)
		return iotp_err_prefix(err, IOTP_ERR_INVALID, "unreadable reply from the device");
	if (m.type == CM_ERROR) {
		int64_t keep = in->retry_ms;

		rc = device_error(in, &m, err);
		/* An error about one message does not end our side. */
		in->state = I_READY;
		in->retry_ms = keep;
	} else if (m.type != CM_SEALED || strcmp(m.sid, in->sid_hex) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "unexpected reply from the device");
	} else {
		rc = open_inner(&in->ch, &m.sealed, out, err);
	}
	commission_msg_cleanup(&m);
	return rc;
}

iotp_rc commission_installer_file_start(struct commission_installer *in, const char *hello,
                                        size_t hello_len, struct buf *out, struct iotp_err *err)
{
	struct commission_msg h, f;
	iotp_rc rc;

	memset(&h, 0, sizeof(h));
	memset(&f, 0, sizeof(f));
	if ((rc = commission_msg_parse(hello, hello_len, &h, err)) != IOTP_OK)
		goto out;
	if (h.type != CM_DEVICE_HELLO) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "not a device-hello");
		goto out;
	}
	if ((rc = prover_from_params(in, &h, err)) != IOTP_OK)
		goto out;
	/* Only X: a share reveals nothing about the setup code on its own. */
	f.type = CM_PAKE1;
	util_strlcpy(f.sid, in->sid_hex, sizeof(f.sid));
	if ((rc = spake2p_share(in->sp, f.share, err)) != IOTP_OK)
		goto out;
	f.has_share = 1;
	if ((rc = commission_msg_format(&f, out, err)) != IOTP_OK)
		goto out;
	in->state = I_PAKE1;
out:
	if (rc != IOTP_OK)
		in->state = I_FAILED;
	commission_msg_cleanup(&h);
	return rc;
}

iotp_rc commission_installer_file_build(struct commission_installer *in, const char *reply,
                                        size_t reply_len, const struct commission_inner *msgs,
                                        size_t n_msgs, struct buf *out, struct iotp_err *err)
{
	struct commission_msg m, f;
	struct buf pt;
	iotp_rc rc;

	memset(&m, 0, sizeof(m));
	memset(&f, 0, sizeof(f));
	buf_init(&pt, COMMISSION_LINE_MAX);
	if (in->state != I_PAKE1) {
		rc = iotp_err_set(err, IOTP_ERR_STATE, "no commission-1 file was written");
		goto out;
	}
	if (n_msgs == 0 || n_msgs > COMMISSION_FILE_MSGS_MAX) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "a commission file holds 1 to %d messages",
		                  COMMISSION_FILE_MSGS_MAX);
		goto out;
	}
	if ((rc = commission_msg_parse(reply, reply_len, &m, err)) != IOTP_OK) {
		rc = iotp_err_prefix(err, IOTP_ERR_INVALID, "unreadable device-reply");
		goto fail;
	}
	if (m.type == CM_ERROR) {
		rc = device_error(in, &m, err);
		goto out;
	}
	if (m.type != CM_PAKE2 || strcmp(m.sid, in->sid_hex) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "device-reply for another commission-1 file");
		goto fail;
	}
	f.type = CM_FILE;
	util_strlcpy(f.sid, in->sid_hex, sizeof(f.sid));
	if ((rc = spake2p_finish(in->sp, m.share, SPAKE2P_POINT_LEN, f.confirm, err)) != IOTP_OK)
		goto fail;
	/* The device proves it knows the verifier before anything that
	 * depends on the setup code (cP, the sealed requests) is written. */
	if (spake2p_confirm_check(in->sp, m.confirm, SPAKE2P_HASH_LEN, NULL) != IOTP_OK) {
		rc = iotp_err_set(err, IOTP_ERR_AUTH,
		                  "wrong setup code (the device could not prove it knows it): "
		                  "nothing was written for it");
		goto fail;
	}
	f.has_confirm = 1;
	if ((rc = open_channel(in, err)) != IOTP_OK)
		goto fail;
	if (!(f.msgs = calloc(n_msgs, sizeof(*f.msgs)))) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "commission file");
		goto fail;
	}
	for (size_t i = 0; i < n_msgs; i++) {
		pt.len = 0;
		if ((rc = commission_inner_format(&msgs[i], &pt, err)) != IOTP_OK ||
		    (rc = commission_channel_seal(&in->ch, pt.data, pt.len, &f.msgs[i], err)) !=
		            IOTP_OK)
			goto fail;
		OPENSSL_cleanse(pt.data, pt.len);
		f.n_msgs = i + 1;
	}
	if ((rc = commission_msg_format(&f, out, err)) != IOTP_OK)
		goto fail;
	in->state = I_PAKE3;
	goto out;
fail:
	in->state = I_FAILED;
out:
	buf_cleanup_secure(&pt);
	commission_msg_cleanup(&m);
	commission_msg_cleanup(&f);
	return rc;
}

iotp_rc commission_installer_file_result(struct commission_installer *in, const char *text,
                                         size_t len, struct commission_inner *outs, size_t max,
                                         size_t *n, struct iotp_err *err)
{
	struct commission_msg m;
	size_t done = 0;
	iotp_rc rc;

	memset(&m, 0, sizeof(m));
	if (in->state != I_PAKE3)
		return iotp_err_set(err, IOTP_ERR_STATE, "no commission file was built");
	if ((rc = commission_msg_parse(text, len, &m, err)) != IOTP_OK)
		return iotp_err_prefix(err, IOTP_ERR_INVALID, "unreadable result");
	if (m.type == CM_ERROR) {
		rc = device_error(in, &m, err);
		goto out;
	}
	if (m.type != CM_FILE_RESULT || strcmp(m.sid, in->sid_hex) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "result for another commission file");
		goto out;
	}
	if (spake2p_confirm_check(in->sp, m.confirm, SPAKE2P_HASH_LEN, NULL) != IOTP_OK) {
		rc = iotp_err_set(err, IOTP_ERR_AUTH,
		                  "the result does not come from a device that knows the setup code");
		goto out;
	}
	if (m.n_msgs > max) {
		rc = iotp_err_set(err, IOTP_ERR_TOO_BIG, "more answers than expected");
		goto out;
	}
	for (; done < m.n_msgs; done++) {
		if ((rc = open_inner(&in->ch, &m.msgs[done], &outs[done], err)) != IOTP_OK) {
			for (size_t i = 0; i < done; i++)
				commission_inner_cleanup(&outs[i]);
			goto out;
		}
	}
	in->state = I_READY;
	*n = done;
out:
	commission_msg_cleanup(&m);
	return rc;
}
