/*
 * Unit tests of the commissioning session (src/core/commission*.c): the C
 * installer against the C device in one process, with a fake clock and a
 * fake network that joins only with the right passphrase. Checks what an
 * installer would see: the happy path ends provisioned, a wrong passphrase
 * is corrected in the same session, a wrong setup code is refused, delayed
 * and then locked out (also across a restart), a replayed or altered
 * message is refused without being acted on, a second installer is turned
 * away while a session is open, an expired claim is refused with a reason,
 * a commission file works once and only once, and the network files look
 * like what wpa_supplicant and NetworkManager read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/util.h"
#include "core/commission.h"

#define CODE "24681357"
#define GOOD_PSK "correct horse battery"

static char dir[64];

/* ---- fakes --------------------------------------------------------------- */

struct fake {
	int64_t now;
	int applies;
	int provisions;
	char last_ssid[64];
};

static int64_t fake_clock(void *ud)
{
	return ((struct fake *)ud)->now;
}

static iotp_rc fake_apply(void *ud, const struct commission_network *net, int *joined,
                          char *reason, size_t size, struct iotp_err *err)
{
	struct fake *f = ud;

	(void)err;
	f->applies++;
	snprintf(f->last_ssid, sizeof(f->last_ssid), "%s", net->ssid);
	*joined = net->wired || strcmp(net->psk, GOOD_PSK) == 0;
	snprintf(reason, size, "%s", *joined ? "" : "wrong passphrase");
	return IOTP_OK;
}

static iotp_rc fake_provision(void *ud, const struct commission_claim *claim,
                              struct commission_prov_outcome *out, struct iotp_err *err)
{
	struct fake *f = ud;

	(void)err;
	f->provisions++;
	out->ok = strcmp(claim->template_name, "Plant") == 0;
	snprintf(out->thing, sizeof(out->thing), "%s", out->ok ? "plant-0001" : "");
	snprintf(out->cert_id, sizeof(out->cert_id), "%064d", 7);
	snprintf(out->reason, sizeof(out->reason), "%s", out->ok ? "" : "template refused");
	return IOTP_OK;
}

static struct commission_record record;

static struct commission_device *make_device(struct fake *f, const char *state_path,
                                             int max_attempts)
{
	struct commission_device_conf conf;
	struct commission_device *dev = NULL;
	struct iotp_err err;

	memset(&conf, 0, sizeof(conf));
	conf.record = &record;
	commission_limits_init(&conf.limits);
	conf.limits.max_attempts = max_attempts;
	conf.limits.base_delay_ms = 1000;
	conf.limits.max_delay_ms = 8000;
	conf.limits.lockout_ms = 600000;
	conf.limits.idle_timeout_ms = 60000;
	conf.state_path = state_path;
	conf.ops.apply_network = fake_apply;
	conf.ops.provision = fake_provision;
	conf.ops.ud = f;
	conf.clock_ms = fake_clock;
	conf.clock_ud = f;
	assert_int_equal(commission_device_new(&conf, &dev, &err), IOTP_OK);
	return dev;
}

/* Sends line to dev and returns the reply (static buffer). */
static const char *xfer(struct commission_device *dev, const char *line)
{
	static struct buf reply;
	struct iotp_err err;

	buf_cleanup(&reply);
	buf_init(&reply, 0);
	assert_int_equal(commission_device_handle(dev, line, strlen(line), &reply, &err), IOTP_OK);
	assert_non_null(reply.data);
	return reply.data;
}

/* Runs the handshake with code; returns the rc of the installer. */
static iotp_rc handshake(struct commission_device *dev, const char *code,
                         struct commission_installer **inst_out)
{
	struct commission_installer *in = NULL;
	struct buf out;
	struct iotp_err err;
	iotp_rc rc;

	buf_init(&out, 0);
	assert_int_equal(commission_installer_new(code, &in, &err), IOTP_OK);
	assert_int_equal(commission_installer_start(in, &out, &err), IOTP_OK);
	for (;;) {
		char *line = buf_detach(&out, NULL);
		const char *reply = xfer(dev, line);

		free(line);
		rc = commission_installer_handle(in, reply, strlen(reply), &out, &err);
		if (rc != IOTP_OK || commission_installer_ready(in))
			break;
	}
	buf_cleanup(&out);
	if (inst_out && rc == IOTP_OK)
		*inst_out = in;
	else
		commission_installer_free(in);
	return rc;
}

/* Seals msg, sends it, opens the reply into resp; returns the open rc. */
static iotp_rc request(struct commission_device *dev, struct commission_installer *in,
                       const struct commission_inner *msg, struct commission_inner *resp,
                       char **sent)
{
	struct buf out;
	struct iotp_err err;
	const char *reply;
	iotp_rc rc;

	buf_init(&out, 0);
	assert_int_equal(commission_installer_seal(in, msg, &out, &err), IOTP_OK);
	reply = xfer(dev, out.data);
	memset(resp, 0, sizeof(*resp));
	rc = commission_installer_open(in, reply, strlen(reply), resp, &err);
	if (sent)
		*sent = buf_detach(&out, NULL);
	buf_cleanup(&out);
	return rc;
}

static struct commission_inner network(const char *ssid, const char *psk)
{
	struct commission_inner m;

	memset(&m, 0, sizeof(m));
	m.type = CMI_NETWORK;
	snprintf(m.net.ssid, sizeof(m.net.ssid), "%s", ssid);
	snprintf(m.net.psk, sizeof(m.net.psk), "%s", psk);
	return m;
}

/* A self-signed certificate valid from now+from_s to now+to_s, as PEM. */
static char *make_cert(long from_s, long to_s, char **key_pem)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	BIO *b = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), from_s);
	X509_gmtime_adj(X509_getm_notAfter(x), to_s);
	X509_set_pubkey(x, k);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"claim", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &p);
	out = strndup(p, (size_t)n);
	PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(kb, &p);
	*key_pem = strndup(p, (size_t)n);
	BIO_free(b);
	BIO_free(kb);
	X509_free(x);
	EVP_PKEY_free(k);
	return out;
}

static struct commission_inner provision(const char *tmpl, long from_s, long to_s)
{
	struct commission_inner m;

	memset(&m, 0, sizeof(m));
	m.type = CMI_PROVISION;
	snprintf(m.claim.template_name, sizeof(m.claim.template_name), "%s", tmpl);
	m.claim.cert_pem = make_cert(from_s, to_s, &m.claim.key_pem);
	m.claim.endpoint = strdup("127.0.0.1:8883");
	m.claim.parameters = json_pack("{s:s}", "SerialNumber", "0001");
	return m;
}

static int setup(void **state)
{
	struct iotp_err err;
	uint8_t salt[16] = {9, 8, 7};

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/iotp-commission-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(commission_record_make("plant-sensor-7", CODE, salt, sizeof(salt), 1000,
	                                        &record, &err),
	                 IOTP_OK);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests --------------------------------------------------------------- */

static void test_happy_path_with_correction(void **state)
{
	struct fake f = {.now = 1000};
	struct commission_device *dev = make_device(&f, NULL, 5);
	struct commission_installer *in = NULL;
	struct commission_inner msg, resp;
	struct commission_device_status st;

	(void)state;
	assert_int_equal(handshake(dev, CODE, &in), IOTP_OK);
	assert_string_equal(commission_installer_device(in), "plant-sensor-7");

	/* Provisioning before a network: refused with a reason. */
	msg = provision("Plant", -60, 300);
	assert_int_equal(request(dev, in, &msg, &resp, NULL), IOTP_OK);
	assert_int_equal(resp.type, CMI_PROVISION_RESULT);
	assert_false(resp.ok);
	assert_non_null(strstr(resp.reason, "not on a network"));
	commission_inner_cleanup(&resp);

	/* Wrong passphrase, then corrected in the same session. */
	struct commission_inner bad = network("Greenhouse", "wrong passphrase");
	assert_int_equal(request(dev, in, &bad, &resp, NULL), IOTP_OK);
	assert_int_equal(resp.type, CMI_NETWORK_RESULT);
	assert_false(resp.ok);
	assert_string_equal(resp.reason, "wrong passphrase");
	commission_inner_cleanup(&resp);
	struct commission_inner good = network("Greenhouse", GOOD_PSK);
	assert_int_equal(request(dev, in, &good, &resp, NULL), IOTP_OK);
	assert_true(resp.ok);
	commission_inner_cleanup(&resp);
	assert_int_equal(f.applies, 2);
	assert_string_equal(f.last_ssid, "Greenhouse");

	assert_int_equal(request(dev, in, &msg, &resp, NULL), IOTP_OK);
	assert_true(resp.ok);
	assert_string_equal(resp.thing, "plant-0001");
	assert_int_equal(strlen(resp.cert_id), 64);
	commission_inner_cleanup(&resp);
	commission_inner_cleanup(&msg);

	memset(&msg, 0, sizeof(msg));
	msg.type = CMI_DONE;
	assert_int_equal(request(dev, in, &msg, &resp, NULL), IOTP_OK);
	assert_int_equal(resp.type, CMI_BYE);
	commission_device_status(dev, &st);
	assert_true(st.provisioned);
	assert_true(st.joined);
	assert_string_equal(st.thing, "plant-0001");
	assert_false(st.session_open);
	assert_int_equal(st.sessions_done, 1);
	assert_int_equal(st.failures, 0);
	commission_installer_free(in);
	commission_device_free(dev);
}

static void test_wrong_code_delay_and_lockout(void **state)
{
	char path[128];
	struct fake f = {.now = 1000};
	struct commission_device *dev;
	struct commission_device_status st;
	const char *r;
	struct iotp_err err;

	(void)state;
	snprintf(path, sizeof(path), "%s/state", dir);
	dev = make_device(&f, path, 3);
	/* First wrong code: refused, nothing applied, a 1 s delay. */
	assert_int_equal(handshake(dev, "11111111", NULL), IOTP_ERR_AUTH);
	commission_device_status(dev, &st);
	assert_int_equal(st.failures, 1);
	assert_int_equal(st.retry_in_ms, 1000);
	r = xfer(dev, "{\"t\":\"hello\",\"v\":1}");
	assert_non_null(strstr(r, "\"code\":\"throttled\""));
	assert_non_null(strstr(r, "\"retry_ms\":1000"));
	/* The right code is also refused while the delay runs. */
	assert_int_equal(handshake(dev, CODE, NULL), IOTP_ERR_THROTTLED);
	f.now += 1000;
	assert_int_equal(handshake(dev, "22222222", NULL), IOTP_ERR_AUTH);
	commission_device_status(dev, &st);
	assert_int_equal(st.retry_in_ms, 2000); /* doubled */
	f.now += 2000;
	assert_int_equal(handshake(dev, "33333333", NULL), IOTP_ERR_AUTH);
	commission_device_status(dev, &st);
	assert_true(st.locked);
	assert_int_equal(st.retry_in_ms, 600000);
	f.now += 100000;
	assert_int_equal(handshake(dev, CODE, NULL), IOTP_ERR_LIMIT);
	assert_int_equal(f.applies, 0);

	/* A restart does not lift the lockout (the count is in the state file). */
	commission_device_free(dev);
	dev = make_device(&f, path, 3);
	assert_int_equal(handshake(dev, CODE, NULL), IOTP_ERR_LIMIT);
	f.now += 600000;
	assert_int_equal(handshake(dev, CODE, NULL), IOTP_OK);
	commission_device_status(dev, &st);
	assert_int_equal(st.failures, 0);
	commission_device_free(dev);
	(void)err;
}

static void test_abandoned_guess_counts(void **state)
{
	struct fake f = {.now = 5000};
	struct commission_device *dev = make_device(&f, NULL, 5);
	struct commission_installer *in = NULL;
	struct commission_device_status st;
	struct buf out;
	struct iotp_err err;
	const char *r;
	char *line;

	(void)state;
	/* An attacker who stops after seeing pake2 has spent a guess. */
	buf_init(&out, 0);
	assert_int_equal(commission_installer_new("99999999", &in, &err), IOTP_OK);
	assert_int_equal(commission_installer_start(in, &out, &err), IOTP_OK);
	line = buf_detach(&out, NULL);
	r = xfer(dev, line);
	free(line);
	assert_int_equal(commission_installer_handle(in, r, strlen(r), &out, &err), IOTP_OK);
	line = buf_detach(&out, NULL);
	r = xfer(dev, line);
	free(line);
	assert_non_null(strstr(r, "\"t\":\"pake2\""));
	commission_installer_free(in);
	buf_cleanup(&out);
	commission_device_status(dev, &st);
	assert_int_equal(st.failures, 1);
	assert_true(st.retry_in_ms > 0);
	commission_device_free(dev);
}

static void test_replay_and_tamper(void **state)
{
	struct fake f = {.now = 1000};
	struct commission_device *dev = make_device(&f, NULL, 5);
	struct commission_installer *in = NULL;
	struct commission_inner msg = network("Greenhouse", GOOD_PSK), resp;
	char *sent = NULL, *copy, *ct;
	const char *r;

	(void)state;
	assert_int_equal(handshake(dev, CODE, &in), IOTP_OK);
	assert_int_equal(request(dev, in, &msg, &resp, &sent), IOTP_OK);
	commission_inner_cleanup(&resp);
	assert_int_equal(f.applies, 1);
	/* The same bytes again: refused, not applied twice. */
	r = xfer(dev, sent);
	assert_non_null(strstr(r, "\"code\":\"replay\""));
	assert_int_equal(f.applies, 1);
	/* The next sequence number with a flipped ciphertext byte. */
	copy = strdup(sent);
	{
		char *seq = strstr(copy, "\"seq\":0");

		assert_non_null(seq);
		seq[6] = '1';
	}
	ct = strstr(copy, "\"ct\":\"") + 6;
	ct[3] = ct[3] == 'A' ? 'B' : 'A';
	r = xfer(dev, copy);
	assert_non_null(strstr(r, "\"code\":\"integrity\""));
	assert_int_equal(f.applies, 1);
	/* The session survives both: the installer carries on. */
	assert_int_equal(request(dev, in, &msg, &resp, NULL), IOTP_OK);
	assert_true(resp.ok);
	assert_int_equal(f.applies, 2);
	commission_inner_cleanup(&resp);
	free(copy);
	free(sent);
	commission_installer_free(in);
	commission_device_free(dev);
}

static void test_busy_and_idle_timeout(void **state)
{
	struct fake f = {.now = 1000};
	struct commission_device *dev = make_device(&f, NULL, 5);
	struct commission_installer *in = NULL;
	struct commission_inner msg = network("Greenhouse", GOOD_PSK), resp;

	(void)state;
	assert_int_equal(handshake(dev, CODE, &in), IOTP_OK);
	assert_int_equal(handshake(dev, CODE, NULL), IOTP_ERR_BUSY);
	f.now += 61000;
	/* The first installer's session expired: its messages are refused. */
	assert_int_equal(request(dev, in, &msg, &resp, NULL), IOTP_ERR_STATE);
	assert_int_equal(f.applies, 0);
	commission_installer_free(in);
	in = NULL;
	assert_int_equal(handshake(dev, CODE, &in), IOTP_OK);
	commission_installer_free(in);
	commission_device_free(dev);
}

static void test_expired_claim(void **state)
{
	struct fake f = {.now = 1000};
	struct commission_device *dev = make_device(&f, NULL, 5);
	struct commission_installer *in = NULL;
	struct commission_inner net = network("Greenhouse", GOOD_PSK), msg, resp;

	(void)state;
	assert_int_equal(handshake(dev, CODE, &in), IOTP_OK);
	assert_int_equal(request(dev, in, &net, &resp, NULL), IOTP_OK);
	commission_inner_cleanup(&resp);
	msg = provision("Plant", -600, -300);
	assert_int_equal(request(dev, in, &msg, &resp, NULL), IOTP_OK);
	assert_false(resp.ok);
	assert_non_null(strstr(resp.reason, "claim expired"));
	assert_int_equal(f.provisions, 0);
	commission_inner_cleanup(&resp);
	commission_inner_cleanup(&msg);
	commission_installer_free(in);
	commission_device_free(dev);
}

/* The media rounds: commission-1 -> device-reply -> commission -> result. */
static iotp_rc file_rounds(struct commission_device *dev, struct commission_installer *in,
                           const struct commission_inner *msgs, size_t n_msgs, struct buf *file,
                           struct buf *result)
{
	struct buf hello, one, reply;
	struct iotp_err err;
	int consumed = 0;
	iotp_rc rc;

	buf_init(&hello, 0);
	buf_init(&one, 0);
	buf_init(&reply, 0);
	assert_int_equal(commission_device_file_hello(dev, &hello, &err), IOTP_OK);
	/* The device publishes no share before the installer's. */
	assert_null(strstr(hello.data, "\"Y\""));
	assert_int_equal(commission_installer_file_start(in, hello.data, hello.len, &one, &err),
	                 IOTP_OK);
	assert_null(strstr(one.data, "\"cP\""));
	assert_null(strstr(one.data, "\"ct\""));
	assert_int_equal(commission_device_file_apply(dev, one.data, one.len, &reply, &consumed,
	                                              &err),
	                 IOTP_OK);
	assert_true(consumed);
	rc = commission_installer_file_build(in, reply.data, reply.len, msgs, n_msgs, file, &err);
	if (rc == IOTP_OK) {
		assert_int_equal(commission_device_file_apply(dev, file->data, file->len, result,
		                                              &consumed, &err),
		                 IOTP_OK);
		assert_true(consumed);
	}
	buf_cleanup(&hello);
	buf_cleanup(&one);
	buf_cleanup(&reply);
	return rc;
}

static void test_file_once(void **state)
{
	struct fake f = {.now = 1000};
	struct commission_device *dev = make_device(&f, NULL, 5);
	struct commission_installer *in = NULL;
	struct commission_inner msgs[2], outs[4];
	struct buf file, result, hello, one, reply;
	struct iotp_err err;
	size_t n = 0;
	int consumed = 0;

	(void)state;
	buf_init(&file, 0);
	buf_init(&result, 0);
	buf_init(&hello, 0);
	buf_init(&one, 0);
	buf_init(&reply, 0);
	msgs[0] = network("Greenhouse", GOOD_PSK);
	msgs[1] = provision("Plant", -60, 300);
	assert_int_equal(commission_installer_new(CODE, &in, &err), IOTP_OK);
	assert_int_equal(file_rounds(dev, in, msgs, 2, &file, &result), IOTP_OK);
	/* The passphrase is not in the file in the clear. */
	assert_null(strstr(file.data, "horse"));
	assert_int_equal(commission_installer_file_result(in, result.data, result.len, outs, 4, &n,
	                                                  &err),
	                 IOTP_OK);
	assert_int_equal(n, 2);
	assert_true(outs[0].ok);
	assert_true(outs[1].ok);
	assert_string_equal(outs[1].thing, "plant-0001");
	commission_inner_cleanup(&outs[0]);
	commission_inner_cleanup(&outs[1]);
	/* The same file again: stale, nothing applied twice. */
	result.len = 0;
	assert_int_equal(commission_device_file_apply(dev, file.data, file.len, &result, &consumed,
	                                              &err),
	                 IOTP_OK);
	assert_non_null(strstr(result.data, "\"code\":\"stale\""));
	assert_int_equal(f.applies, 1);
	assert_int_equal(f.provisions, 1);
	commission_installer_free(in);

	/* A wrong code: the installer stops at the device's confirmation and
	 * writes nothing more; the device counted the guess. */
	in = NULL;
	file.len = result.len = 0;
	assert_int_equal(commission_installer_new("13572468", &in, &err), IOTP_OK);
	assert_int_equal(file_rounds(dev, in, msgs, 1, &file, &result), IOTP_ERR_AUTH);
	assert_int_equal(file.len, 0);
	assert_int_equal(f.applies, 1);
	commission_installer_free(in);
	{
		struct commission_device_status st;

		commission_device_status(dev, &st);
		assert_int_equal(st.failures, 1);
		assert_true(st.retry_in_ms > 0);
	}

	/* The device still waits for that session's commission file: a new
	 * commission-1 for it is stale and ends it (a new device-hello). */
	assert_int_equal(commission_device_file_hello(dev, &hello, &err), IOTP_OK);
	assert_int_equal(commission_installer_new(CODE, &in, &err), IOTP_OK);
	assert_int_equal(commission_installer_file_start(in, hello.data, hello.len, &one, &err),
	                 IOTP_OK);
	assert_int_equal(commission_device_file_apply(dev, one.data, one.len, &reply, &consumed,
	                                              &err),
	                 IOTP_OK);
	assert_non_null(strstr(reply.data, "\"code\":\"stale\""));
	assert_int_equal(commission_installer_file_build(in, reply.data, reply.len, msgs, 1, &file,
	                                                 &err),
	                 IOTP_ERR_STATE);
	commission_installer_free(in);

	/* Throttled: the next commission-1 is left for later, then answered. */
	in = NULL;
	file.len = result.len = 0;
	assert_int_equal(commission_installer_new(CODE, &in, &err), IOTP_OK);
	hello.len = one.len = reply.len = 0;
	assert_int_equal(commission_device_file_hello(dev, &hello, &err), IOTP_OK);
	assert_int_equal(commission_installer_file_start(in, hello.data, hello.len, &one, &err),
	                 IOTP_OK);
	assert_int_equal(commission_device_file_apply(dev, one.data, one.len, &reply, &consumed,
	                                              &err),
	                 IOTP_OK);
	assert_false(consumed);
	assert_non_null(strstr(reply.data, "\"code\":\"throttled\""));
	f.now += 1000;
	reply.len = 0;
	assert_int_equal(commission_device_file_apply(dev, one.data, one.len, &reply, &consumed,
	                                              &err),
	                 IOTP_OK);
	assert_true(consumed);
	assert_int_equal(commission_installer_file_build(in, reply.data, reply.len, msgs, 1, &file,
	                                                 &err),
	                 IOTP_OK);
	assert_int_equal(commission_device_file_apply(dev, file.data, file.len, &result, &consumed,
	                                              &err),
	                 IOTP_OK);
	assert_int_equal(commission_installer_file_result(in, result.data, result.len, outs, 4, &n,
	                                                  &err),
	                 IOTP_OK);
	assert_int_equal(n, 1);
	assert_true(outs[0].ok);
	commission_inner_cleanup(&outs[0]);
	assert_int_equal(f.applies, 2);
	commission_installer_free(in);
	commission_inner_cleanup(&msgs[0]);
	commission_inner_cleanup(&msgs[1]);
	buf_cleanup(&file);
	buf_cleanup(&result);
	buf_cleanup(&hello);
	buf_cleanup(&one);
	buf_cleanup(&reply);
	commission_device_free(dev);
}

/* Whoever plants a device-hello and answers with a device-reply of their
 * own (a verifier for another code: they know their ephemeral scalar) gets
 * the installer's share and nothing else: no confirmation, no sealed data
 * to test setup-code guesses against offline. */
static void test_file_planted_device(void **state)
{
	static const uint8_t salt[16] = {7, 7, 7};
	struct fake f = {.now = 1000};
	struct commission_record real = record, fake;
	struct commission_device *impostor;
	struct commission_installer *in = NULL;
	struct commission_inner msgs[1];
	struct buf hello, one, reply, file;
	struct iotp_err err;
	int consumed = 0;

	(void)state;
	assert_int_equal(commission_record_make("plant-sensor-7", "00000000", salt, sizeof(salt),
	                                        1000, &fake, &err),
	                 IOTP_OK);
	record = fake;
	impostor = make_device(&f, NULL, 5);
	record = real;
	buf_init(&hello, 0);
	buf_init(&one, 0);
	buf_init(&reply, 0);
	buf_init(&file, 0);
	msgs[0] = network("Greenhouse", GOOD_PSK);
	assert_int_equal(commission_device_file_hello(impostor, &hello, &err), IOTP_OK);
	assert_int_equal(commission_installer_new(CODE, &in, &err), IOTP_OK);
	assert_int_equal(commission_installer_file_start(in, hello.data, hello.len, &one, &err),
	                 IOTP_OK);
	assert_null(strstr(one.data, "\"cP\""));
	assert_null(strstr(one.data, "\"ct\""));
	assert_null(strstr(one.data, "\"msgs\""));
	assert_int_equal(commission_device_file_apply(impostor, one.data, one.len, &reply,
	                                              &consumed, &err),
	                 IOTP_OK);
	assert_non_null(strstr(reply.data, "\"cV\""));
	assert_int_equal(commission_installer_file_build(in, reply.data, reply.len, msgs, 1, &file,
	                                                 &err),
	                 IOTP_ERR_AUTH);
	assert_non_null(strstr(err.msg, "wrong setup code"));
	assert_int_equal(file.len, 0);
	/* And the installer is done: a second try with the same reply fails. */
	assert_int_equal(commission_installer_file_build(in, reply.data, reply.len, msgs, 1, &file,
	                                                 &err),
	                 IOTP_ERR_STATE);
	assert_int_equal(file.len, 0);
	commission_installer_free(in);
	commission_inner_cleanup(&msgs[0]);
	commission_record_cleanup(&fake);
	buf_cleanup(&hello);
	buf_cleanup(&one);
	buf_cleanup(&reply);
	buf_cleanup(&file);
	commission_device_free(impostor);
}

/* A media session is given up after the idle time even when the device
 * never published a new device-hello meanwhile (the stick was away), and a
 * leftover commission-1 of another session does not end the live one. */
static void test_file_idle_and_leftovers(void **state)
{
	struct fake f = {.now = 1000};
	struct commission_device *dev = make_device(&f, NULL, 5);
	struct commission_device *other = make_device(&f, NULL, 5);
	struct commission_installer *in = NULL, *in_other = NULL;
	struct commission_inner msgs[1];
	struct buf hello, one, reply, hello2, one2, stale, file, result;
	struct iotp_err err;
	int consumed = 0;

	(void)state;
	buf_init(&hello, 0);
	buf_init(&one, 0);
	buf_init(&reply, 0);
	buf_init(&hello2, 0);
	buf_init(&one2, 0);
	buf_init(&stale, 0);
	buf_init(&file, 0);
	buf_init(&result, 0);
	msgs[0] = network("Greenhouse", GOOD_PSK);
	/* first round of dev's session */
	assert_int_equal(commission_device_file_hello(dev, &hello, &err), IOTP_OK);
	assert_int_equal(commission_installer_new(CODE, &in, &err), IOTP_OK);
	assert_int_equal(commission_installer_file_start(in, hello.data, hello.len, &one, &err),
	                 IOTP_OK);
	assert_int_equal(commission_device_file_apply(dev, one.data, one.len, &reply, &consumed,
	                                              &err),
	                 IOTP_OK);
	assert_non_null(strstr(reply.data, "\"cV\""));
	/* a commission-1 written for another device-hello lands on dev's media */
	assert_int_equal(commission_device_file_hello(other, &hello2, &err), IOTP_OK);
	assert_int_equal(commission_installer_new(CODE, &in_other, &err), IOTP_OK);
	assert_int_equal(commission_installer_file_start(in_other, hello2.data, hello2.len, &one2,
	                                                 &err),
	                 IOTP_OK);
	assert_int_equal(commission_device_file_apply(dev, one2.data, one2.len, &stale, &consumed,
	                                              &err),
	                 IOTP_OK);
	assert_true(consumed);
	assert_non_null(strstr(stale.data, "\"code\":\"stale\""));
	/* dev's session goes on: its commission file is applied */
	assert_int_equal(commission_installer_file_build(in, reply.data, reply.len, msgs, 1, &file,
	                                                 &err),
	                 IOTP_OK);
	assert_int_equal(commission_device_file_apply(dev, file.data, file.len, &result, &consumed,
	                                              &err),
	                 IOTP_OK);
	assert_non_null(strstr(result.data, "\"commission-result\""));
	assert_int_equal(f.applies, 1);
	commission_installer_free(in);
	in = NULL;

	/* A new session answered, then the stick stays away past the idle time:
	 * its commission file is stale when it comes, nothing applied. */
	hello.len = one.len = reply.len = file.len = result.len = 0;
	assert_int_equal(commission_device_file_hello(dev, &hello, &err), IOTP_OK);
	assert_int_equal(commission_installer_new(CODE, &in, &err), IOTP_OK);
	assert_int_equal(commission_installer_file_start(in, hello.data, hello.len, &one, &err),
	                 IOTP_OK);
	assert_int_equal(commission_device_file_apply(dev, one.data, one.len, &reply, &consumed,
	                                              &err),
	                 IOTP_OK);
	assert_int_equal(commission_installer_file_build(in, reply.data, reply.len, msgs, 1, &file,
	                                                 &err),
	                 IOTP_OK);
	f.now += 60001;
	assert_int_equal(commission_device_file_apply(dev, file.data, file.len, &result, &consumed,
	                                              &err),
	                 IOTP_OK);
	assert_true(consumed);
	assert_non_null(strstr(result.data, "\"code\":\"stale\""));
	assert_int_equal(f.applies, 1);
	commission_installer_free(in);
	commission_installer_free(in_other);
	commission_inner_cleanup(&msgs[0]);
	buf_cleanup(&hello);
	buf_cleanup(&one);
	buf_cleanup(&reply);
	buf_cleanup(&hello2);
	buf_cleanup(&one2);
	buf_cleanup(&stale);
	buf_cleanup(&file);
	buf_cleanup(&result);
	commission_device_free(dev);
	commission_device_free(other);
}

static void test_bad_messages(void **state)
{
	struct fake f = {.now = 1000};
	struct commission_device *dev = make_device(&f, NULL, 5);
	struct commission_msg m;
	struct iotp_err err;
	const char *bad[] = {
		"", "[]", "{\"t\":\"hello\",\"t\":\"hello\"}", "{\"t\":\"nope\"}",
		"{\"t\":\"hello\",\"v\":2}",
		"{\"t\":\"pake1\",\"sid\":\"00\",\"X\":\"AA==\"}",
		"{\"t\":\"pake1\",\"sid\":\"0123456789abcdef0123456789abcdef\",\"X\":\"AA==\"}",
		"{\"t\":\"sealed\",\"sid\":\"0123456789abcdef0123456789abcdef\",\"seq\":-1,"
		"\"ct\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}",
		"{\"t\":\"params\",\"sid\":\"0123456789abcdef0123456789abcdef\",\"device\":\"a b\","
		"\"iter\":1000,\"salt\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}",
		"{\"t\":\"error\",\"code\":\"Bad-Code\"}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&m, 0, sizeof(m));
		assert_int_not_equal(commission_msg_parse(bad[i], strlen(bad[i]), &m, &err), IOTP_OK);
		assert_non_null(strstr(xfer(dev, bad[i]), "\"t\":\"error\""));
	}
	/* The message names the field and keeps the decoder's reason intact
	 * (it was once formatted from and into the same buffer). */
	{
		static const char line[] = "{\"t\":\"pake1\",\"sid\":"
		                           "\"0123456789abcdef0123456789abcdef\",\"X\":\"!!!!\"}";

		memset(&m, 0, sizeof(m));
		assert_int_equal(commission_msg_parse(line, strlen(line), &m, &err), IOTP_ERR_INVALID);
		assert_string_equal(err.msg, "field \"X\": bad base64 character");
	}
	/* Non-canonical base64 is refused; canonical round-trips. */
	{
		uint8_t *d = NULL;
		size_t n = 0;
		struct buf b;

		assert_int_equal(commission_b64_decode("AB==", 4, &d, &n, &err), IOTP_ERR_INVALID);
		assert_int_equal(commission_b64_decode("AA=A", 4, &d, &n, &err), IOTP_ERR_INVALID);
		assert_int_equal(commission_b64_decode("aGVsbG8=", 8, &d, &n, &err), IOTP_OK);
		assert_int_equal(n, 5);
		assert_memory_equal(d, "hello", 5);
		buf_init(&b, 0);
		assert_int_equal(commission_b64_encode(d, n, &b, &err), IOTP_OK);
		assert_string_equal(b.data, "aGVsbG8=");
		buf_cleanup(&b);
		free(d);
	}
	/* A message over the cap. */
	{
		size_t big = COMMISSION_LINE_MAX + 100;
		char *s = malloc(big + 1);

		memset(s, ' ', big);
		memcpy(s, "{\"t\":\"hello\",\"x\":\"", 18);
		s[big - 2] = '"';
		s[big - 1] = '}';
		s[big] = '\0';
		assert_int_equal(commission_msg_parse(s, big, &m, &err), IOTP_ERR_TOO_BIG);
		free(s);
	}
	assert_int_equal(f.applies, 0);
	commission_device_free(dev);
}

static void test_network_render(void **state)
{
	struct commission_network net;
	struct buf b;
	struct iotp_err err;

	(void)state;
	memset(&net, 0, sizeof(net));
	snprintf(net.ssid, sizeof(net.ssid), "Green \"house\"");
	snprintf(net.psk, sizeof(net.psk), "pa\\ss word");
	buf_init(&b, 0);
	assert_int_equal(commission_net_render(COMMISSION_NET_WPA_SUPPLICANT, &net, &b, &err),
	                 IOTP_OK);
	assert_non_null(strstr(b.data, "network={\n\tssid=477265656e2022686f75736522\n"));
	assert_non_null(strstr(b.data, "\tkey_mgmt=WPA-PSK\n\tpsk=\"pa\\ss word\"\n}\n"));
	b.len = 0;
	assert_int_equal(commission_net_render(COMMISSION_NET_NETWORKMANAGER, &net, &b, &err),
	                 IOTP_OK);
	assert_non_null(strstr(b.data, "[wifi]\nmode=infrastructure\nssid=Green \"house\"\n"));
	assert_non_null(strstr(b.data, "[wifi-security]\nkey-mgmt=wpa-psk\npsk=pa\\\\ss word\n"));
	assert_non_null(strstr(b.data, "type=wifi\n"));
	/* Open network: no security section. */
	net.psk[0] = '\0';
	b.len = 0;
	assert_int_equal(commission_net_render(COMMISSION_NET_WPA_SUPPLICANT, &net, &b, &err),
	                 IOTP_OK);
	assert_non_null(strstr(b.data, "key_mgmt=NONE"));
	/* Refused: short passphrase, control character, empty SSID. */
	snprintf(net.psk, sizeof(net.psk), "short");
	assert_int_equal(commission_net_render(COMMISSION_NET_WPA_SUPPLICANT, &net, &b, &err),
	                 IOTP_ERR_INVALID);
	snprintf(net.psk, sizeof(net.psk), "line\nbreak!");
	assert_int_equal(commission_net_render(COMMISSION_NET_NETWORKMANAGER, &net, &b, &err),
	                 IOTP_ERR_INVALID);
	net.ssid[0] = '\0';
	net.psk[0] = '\0';
	assert_int_equal(commission_network_validate(&net, &err), IOTP_ERR_INVALID);
	buf_cleanup(&b);
}

static void test_network_apply_command(void **state)
{
	char cfg[128], script[128], cmd[256], reason[256];
	struct commission_net_conf conf;
	struct commission_network net;
	struct stat st;
	struct iotp_err err;
	int joined = -1;
	FILE *fp;

	(void)state;
	snprintf(cfg, sizeof(cfg), "%s/wpa.conf", dir);
	snprintf(script, sizeof(script), "%s/apply.sh", dir);
	fp = fopen(script, "w");
	assert_non_null(fp);
	fprintf(fp, "grep -q 'psk=\"%s\"' \"$IOTP_NET_CONFIG\" && { echo joined $IOTP_NET_SSID; "
	            "exit 0; }\necho 'association failed: wrong passphrase' >&2\nexit 3\n",
	        GOOD_PSK);
	fclose(fp);
	snprintf(cmd, sizeof(cmd), "sh %s", script);
	memset(&conf, 0, sizeof(conf));
	conf.format = COMMISSION_NET_WPA_SUPPLICANT;
	conf.config_path = cfg;
	conf.apply_cmd = cmd;
	conf.timeout_s = 5;
	memset(&net, 0, sizeof(net));
	snprintf(net.ssid, sizeof(net.ssid), "Greenhouse");
	snprintf(net.psk, sizeof(net.psk), "not the passphrase");
	assert_int_equal(commission_net_apply(&conf, &net, &joined, reason, sizeof(reason), &err),
	                 IOTP_OK);
	assert_int_equal(joined, 0);
	assert_string_equal(reason, "association failed: wrong passphrase");
	assert_int_equal(stat(cfg, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(net.psk, sizeof(net.psk), GOOD_PSK);
	assert_int_equal(commission_net_apply(&conf, &net, &joined, reason, sizeof(reason), &err),
	                 IOTP_OK);
	assert_int_equal(joined, 1);
	assert_string_equal(reason, "joined Greenhouse");
	/* A command that hangs is cut off. */
	conf.apply_cmd = "sleep 30";
	conf.timeout_s = 1;
	assert_int_equal(commission_net_apply(&conf, &net, &joined, reason, sizeof(reason), &err),
	                 IOTP_OK);
	assert_int_equal(joined, 0);
	assert_non_null(strstr(reason, "no connection after 1 s"));
	/* ... also when it closes its output first and then hangs. */
	{
		int64_t t0 = util_mono_ms();

		conf.apply_cmd = "exec >/dev/null 2>&1; sleep 30";
		joined = -1;
		assert_int_equal(commission_net_apply(&conf, &net, &joined, reason, sizeof(reason),
		                                      &err),
		                 IOTP_OK);
		assert_int_equal(joined, 0);
		assert_non_null(strstr(reason, "no connection after 1 s"));
		assert_true(util_mono_ms() - t0 < 10000);
	}
}

static void test_record_roundtrip(void **state)
{
	struct commission_record r;
	struct buf b;
	struct iotp_err err;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(commission_record_format(&record, &b, &err), IOTP_OK);
	/* The setup code itself is nowhere in the record. */
	assert_null(strstr(b.data, CODE));
	assert_int_equal(commission_record_parse(b.data, b.len, &r, &err), IOTP_OK);
	assert_memory_equal(&r, &record, sizeof(r));
	buf_cleanup_secure(&b);
	assert_int_equal(commission_record_make("bad id", CODE, NULL, 0, 1000, &r, &err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(commission_record_make("ok", "short", NULL, 0, 1000, &r, &err),
	                 IOTP_ERR_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_happy_path_with_correction),
		cmocka_unit_test(test_wrong_code_delay_and_lockout),
		cmocka_unit_test(test_abandoned_guess_counts),
		cmocka_unit_test(test_replay_and_tamper),
		cmocka_unit_test(test_busy_and_idle_timeout),
		cmocka_unit_test(test_expired_claim),
		cmocka_unit_test(test_file_once),
		cmocka_unit_test(test_file_planted_device),
		cmocka_unit_test(test_file_idle_and_leftovers),
		cmocka_unit_test(test_bad_messages),
		cmocka_unit_test(test_network_render),
		cmocka_unit_test(test_network_apply_command),
		cmocka_unit_test(test_record_roundtrip),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
