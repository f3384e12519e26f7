/*
 * fuzz_commission_msg: every decoder of network commissioning on arbitrary
 * bytes. The first input byte picks the target, the rest is the input:
 *   0  commission_msg_parse (outer lines); a decoded message formats and
 *      decodes again to the same type and session id
 *   1  commission_inner_parse (sealed payloads); same round trip
 *   2  commission_record_parse (the verifier record file); round trip
 *   3  commission_device_handle: a fresh device fed the input line by line
 *   4  a real session (SPAKE2+ handshake done by this harness), then the
 *      input sealed with the session key: the device's inner decoder and
 *      dispatch (fake network and provisioning) behind a valid channel;
 *      the device's sealed answer must open and decode
 *   5  commission_device_file_apply (the removable-media file)
 *   6  commission_installer_handle / _open / _file_result on device replies
 * Beyond "no crash, no leak": a reply is always produced and is itself a
 * message commission_msg_parse accepts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/commission.h"

#define CODE "24681357"

static struct commission_record record;
static int ready;

static iotp_rc fake_apply(void *ud, const struct commission_network *net, int *joined,
                          char *reason, size_t size, struct iotp_err *err)
{
	(void)ud;
	(void)err;
	*joined = net->wired || strlen(net->psk) % 2 == 0;
	snprintf(reason, size, "%s", *joined ? "" : "odd");
	return IOTP_OK;
}

static iotp_rc fake_provision(void *ud, const struct commission_claim *claim,
                              struct commission_prov_outcome *out, struct iotp_err *err)
{
	(void)ud;
	(void)err;
	out->ok = claim->template_name[0] == 'T';
	snprintf(out->thing, sizeof(out->thing), "%s", claim->template_name);
	return IOTP_OK;
}

static struct commission_device *new_device(void)
{
	struct commission_device_conf conf;
	struct commission_device *dev = NULL;

	memset(&conf, 0, sizeof(conf));
	conf.record = &record;
	commission_limits_init(&conf.limits);
	conf.limits.base_delay_ms = 0;
	conf.limits.max_delay_ms = 0;
	conf.ops.apply_network = fake_apply;
	conf.ops.provision = fake_provision;
	if (commission_device_new(&conf, &dev, NULL) != IOTP_OK)
		abort();
	return dev;
}

/* Every reply must itself be a well-formed message. */
static void check_reply(const struct buf *reply)
{
	struct commission_msg m;

	if (!reply->data || commission_msg_parse(reply->data, reply->len, &m, NULL) != IOTP_OK)
		abort();
	commission_msg_cleanup(&m);
}

static void handle(struct commission_device *dev, const char *line, size_t len, struct buf *reply)
{
	reply->len = 0;
	if (commission_device_handle(dev, line, len, reply, NULL) != IOTP_OK)
		abort();
	check_reply(reply);
}

static void fuzz_outer(const char *p, size_t n)
{
	struct commission_msg m, again;
	struct buf b;

	memset(&m, 0, sizeof(m));
	if (commission_msg_parse(p, n, &m, NULL) != IOTP_OK)
		return;
	buf_init(&b, 0);
	if (commission_msg_format(&m, &b, NULL) != IOTP_OK ||
	    commission_msg_parse(b.data, b.len, &again, NULL) != IOTP_OK)
		abort();
	if (again.type != m.type || strcmp(again.sid, m.sid) != 0 || again.n_msgs != m.n_msgs)
		abort();
	commission_msg_cleanup(&again);
	commission_msg_cleanup(&m);
	buf_cleanup(&b);
}

static void fuzz_inner(const uint8_t *p, size_t n)
{
	struct commission_inner in, again;
	struct buf b;

	memset(&in, 0, sizeof(in));
	if (commission_inner_parse(p, n, &in, NULL) != IOTP_OK)
		return;
	buf_init(&b, 0);
	/* Formatting may refuse strings jansson would not build (it never
	 * should for what it parsed); what it formats must parse back. */
	if (commission_inner_format(&in, &b, NULL) == IOTP_OK) {
		if (commission_inner_parse((const uint8_t *)b.data, b.len, &again, NULL) != IOTP_OK ||
		    again.type != in.type)
			abort();
		commission_inner_cleanup(&again);
	}
	commission_inner_cleanup(&in);
	buf_cleanup(&b);
}

static void fuzz_record(const char *p, size_t n)
{
	struct commission_record r, again;
	struct buf b;

	if (commission_record_parse(p, n, &r, NULL) != IOTP_OK)
		return;
	buf_init(&b, 0);
	if (commission_record_format(&r, &b, NULL) != IOTP_OK ||
	    commission_record_parse(b.data, b.len, &again, NULL) != IOTP_OK ||
	    memcmp(&again, &r, sizeof(r)) != 0)
		abort();
	buf_cleanup(&b);
}

static void fuzz_lines(const char *p, size_t n)
{
	struct commission_device *dev = new_device();
	struct buf reply;
	size_t start = 0;

	buf_init(&reply, 0);
	for (size_t i = 0; i <= n; i++) {
		if (i == n || p[i] == '\n') {
			handle(dev, p + start, i - start, &reply);
			start = i + 1;
		}
	}
	buf_cleanup(&reply);
	commission_device_free(dev);
}

/* Sends m to dev and parses the reply into r. */
static void exchange(struct commission_device *dev, struct commission_msg *m, struct buf *out,
                     struct buf *reply, struct commission_msg *r, enum commission_type want)
{
	out->len = 0;
	if (commission_msg_format(m, out, NULL) != IOTP_OK)
		abort();
	handle(dev, out->data, out->len, reply);
	memset(r, 0, sizeof(*r));
	if (commission_msg_parse(reply->data, reply->len, r, NULL) != IOTP_OK || r->type != want)
		abort(); /* the right code must always get through */
}

/* The installer's side of the handshake done here, from the core's public
 * pieces (spake2p, channel), so that the fuzz bytes can be sealed as they
 * are and reach the device's inner decoder and dispatch. */
static void fuzz_sealed(const uint8_t *p, size_t n)
{
	struct commission_device *dev = new_device();
	struct commission_msg m, r;
	struct commission_channel ch;
	struct spake2p *sp = NULL;
	struct spake2p_ids ids;
	struct buf out, reply;
	uint8_t w0[32], w1[32], key[32], sid[COMMISSION_SID_LEN], *pt = NULL;
	size_t ptlen = 0;

	buf_init(&out, 0);
	buf_init(&reply, 0);
	memset(&m, 0, sizeof(m));
	m.type = CM_HELLO;
	exchange(dev, &m, &out, &reply, &r, CM_PARAMS);
	ids.context = COMMISSION_CONTEXT;
	ids.context_len = strlen(COMMISSION_CONTEXT);
	ids.prover = COMMISSION_PROVER_ID;
	ids.prover_len = strlen(COMMISSION_PROVER_ID);
	ids.verifier = r.device;
	ids.verifier_len = strlen(r.device);
	if (spake2p_register(CODE, strlen(CODE), &ids, r.salt, r.salt_len, r.iterations, w0, w1,
	                     NULL) != IOTP_OK ||
	    spake2p_prover_new(w0, w1, &ids, &sp, NULL) != IOTP_OK)
		abort();
	memset(&m, 0, sizeof(m));
	m.type = CM_PAKE1;
	memcpy(m.sid, r.sid, sizeof(m.sid));
	for (size_t i = 0; i < COMMISSION_SID_LEN; i++) {
		unsigned v = 0;

		sscanf(r.sid + 2 * i, "%2x", &v);
		sid[i] = (uint8_t)v;
	}
	commission_msg_cleanup(&r);
	if (spake2p_share(sp, m.share, NULL) != IOTP_OK)
		abort();
	m.has_share = 1;
	exchange(dev, &m, &out, &reply, &r, CM_PAKE2);
	memset(&m.share, 0, sizeof(m.share));
	m.has_share = 0;
	m.type = CM_PAKE3;
	if (spake2p_finish(sp, r.share, sizeof(r.share), m.confirm, NULL) != IOTP_OK ||
	    spake2p_confirm_check(sp, r.confirm, sizeof(r.confirm), NULL) != IOTP_OK ||
	    spake2p_shared_key(sp, key, NULL) != IOTP_OK ||
	    commission_channel_init(&ch, 0, key, sid, NULL) != IOTP_OK)
		abort();
	commission_msg_cleanup(&r);
	m.has_confirm = 1;
	exchange(dev, &m, &out, &reply, &r, CM_OK);
	commission_msg_cleanup(&r);
	/* The fuzz bytes, sealed as they are. */
	memset(&m, 0, sizeof(m));
	m.type = CM_SEALED;
	memcpy(m.sid, r.sid, sizeof(m.sid));
	if (commission_channel_seal(&ch, p, n, &m.sealed, NULL) != IOTP_OK)
		abort();
	exchange(dev, &m, &out, &reply, &r, CM_SEALED);
	if (commission_channel_open(&ch, &r.sealed, &pt, &ptlen, NULL) != IOTP_OK)
		abort(); /* the device's answer is always sealed for us */
	fuzz_inner(pt, ptlen);
	free(pt);
	commission_msg_cleanup(&r);
	commission_msg_cleanup(&m);
	commission_channel_cleanup(&ch);
	spake2p_free(sp);
	buf_cleanup(&out);
	buf_cleanup(&reply);
	commission_device_free(dev);
}

static void fuzz_file(const char *p, size_t n)
{
	struct commission_device *dev = new_device();
	struct buf hello, result;
	int consumed = 0;

	buf_init(&hello, 0);
	buf_init(&result, 0);
	if (commission_device_file_hello(dev, &hello, NULL) != IOTP_OK)
		abort();
	if (commission_device_file_apply(dev, p, n, &result, &consumed, NULL) != IOTP_OK)
		abort();
	check_reply(&result);
	buf_cleanup(&hello);
	buf_cleanup(&result);
	commission_device_free(dev);
}

static void fuzz_installer(const char *p, size_t n)
{
	struct commission_installer *in = NULL;
	struct commission_inner outs[COMMISSION_FILE_MSGS_MAX], one;
	struct buf out;
	size_t k = 0;

	buf_init(&out, 0);
	if (commission_installer_new(CODE, &in, NULL) != IOTP_OK ||
	    commission_installer_start(in, &out, NULL) != IOTP_OK)
		abort();
	out.len = 0;
	(void)commission_installer_handle(in, p, n, &out, NULL);
	memset(&one, 0, sizeof(one));
	if (commission_installer_open(in, p, n, &one, NULL) == IOTP_OK)
		commission_inner_cleanup(&one);
	if (commission_installer_file_result(in, p, n, outs, COMMISSION_FILE_MSGS_MAX, &k, NULL) ==
	    IOTP_OK) {
		for (size_t i = 0; i < k; i++)
			commission_inner_cleanup(&outs[i]);
	}
	commission_installer_free(in);
	buf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t salt[16] = {1, 2, 3, 4};

	if (!ready) {
		iotp_log_set_level(IOTP_LOG_NONE);
		if (commission_record_make("fuzz-device", CODE, salt, sizeof(salt), 1000, &record,
		                           NULL) != IOTP_OK)
			abort();
		ready = 1;
	}
	if (size < 1)
		return 0;
	switch (data[0] % 7) {
	case 0: fuzz_outer((const char *)data + 1, size - 1); break;
	case 1: fuzz_inner(data + 1, size - 1); break;
	case 2: fuzz_record((const char *)data + 1, size - 1); break;
	case 3: fuzz_lines((const char *)data + 1, size - 1); break;
	case 4: fuzz_sealed(data + 1, size - 1); break;
	case 5: fuzz_file((const char *)data + 1, size - 1); break;
	case 6: fuzz_installer((const char *)data + 1, size - 1); break;
	}
	return 0;
}
