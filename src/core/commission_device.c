/*
 * The device side of commissioning: a state machine that answers each
 * installer message with one message, whatever transport carried it (web
 * page, serial console, removable media, later BLE). It holds the verifier
 * record, runs SPAKE2+ as the verifier, rate-limits setup-code guesses,
 * opens the sealed channel and acts on its requests through the process's
 * ops (apply the network, provision with the claim).
 *
 * Guess accounting: a guess is counted when pake1 arrives, before the
 * device answers with its confirmation, and forgiven only when the
 * installer's confirmation checks. An attacker who walks away after pake2
 * has still spent a guess. The count survives restarts when state_path is
 * set; delays restart from the boot, as a device's clock cannot be trusted
 * before it is on a network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "common/util.h"
#include "core/commission.h"

#define BAD_MSGS_MAX 5 /* sealed messages refused before a session ends */

enum sess_state { S_NONE = 0, S_PARAMS, S_PAKE2, S_READY };

struct session {
	enum sess_state state;
	uint8_t sid[COMMISSION_SID_LEN];
	char sid_hex[2 * COMMISSION_SID_LEN + 1];
	struct spake2p *sp;
	struct commission_channel ch;
	int64_t last_ms;
	int bad_msgs;
	uint8_t cv[SPAKE2P_HASH_LEN];  /* removable media: sent again with the result */
};

struct commission_device {
	struct commission_record rec;
	struct commission_limits lim;
	char *state_path;
	struct commission_device_ops ops;
	int64_t (*clock_ms)(void *ud);
	void *clock_ud;
	int failures;
	int64_t next_allowed_ms;
	struct session s;      /* interactive transports */
	struct session file;   /* removable media */
	int joined;
	int provisioned;
	char thing[COMMISSION_THING_MAX + 1];
	int sessions_done;
};

/* ---- the verifier record -------------------------------------------------- */

static int valid_device_id(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > COMMISSION_DEVICE_ID_MAX)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("._:-", *s)))
			return 0;
	return 1;
}

static struct spake2p_ids make_ids(const char *device_id)
{
	struct spake2p_ids ids;

	ids.context = COMMISSION_CONTEXT;
	ids.context_len = strlen(COMMISSION_CONTEXT);
	ids.prover = COMMISSION_PROVER_ID;
	ids.prover_len = strlen(COMMISSION_PROVER_ID);
	ids.verifier = device_id;
	ids.verifier_len = strlen(device_id);
	return ids;
}

iotp_rc commission_record_make(const char *device_id, const char *setup_code,
                               const uint8_t *salt, size_t salt_len, uint32_t iterations,
                               struct commission_record *out, struct iotp_err *err)
{
	struct commission_record r;
	struct spake2p_ids ids;
	uint8_t w1[SPAKE2P_SCALAR_LEN];
	size_t code_len = strlen(setup_code);
	iotp_rc rc;

	memset(&r, 0, sizeof(r));
	if (!valid_device_id(device_id))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "device id must be 1 to %d of [A-Za-z0-9._:-]",
		                    COMMISSION_DEVICE_ID_MAX);
	if (code_len < COMMISSION_SETUP_CODE_MIN || code_len > COMMISSION_SETUP_CODE_MAX)
		return iotp_err_set(err, IOTP_ERR_INVALID, "setup code must be %d to %d characters",
		                    COMMISSION_SETUP_CODE_MIN, COMMISSION_SETUP_CODE_MAX);
	util_strlcpy(r.device_id, device_id, sizeof(r.device_id));
	if (salt) {
		if (salt_len < COMMISSION_SALT_MIN || salt_len > COMMISSION_SALT_MAX)
			return iotp_err_set(err, IOTP_ERR_INVALID, "salt must be %d to %d bytes",
			                    COMMISSION_SALT_MIN, COMMISSION_SALT_MAX);
		memcpy(r.salt, salt, salt_len);
		r.salt_len = salt_len;
	} else {
		r.salt_len = COMMISSION_SALT_MIN;
		if ((rc = util_random(r.salt, r.salt_len, err)) != IOTP_OK)
			return rc;
	}
	r.iterations = iterations ? iterations : COMMISSION_ITER_DEFAULT;
	ids = make_ids(r.device_id);
	rc = spake2p_register(setup_code, code_len, &ids, r.salt, r.salt_len, r.iterations, r.w0,
	                      w1, err);
	if (rc == IOTP_OK)
		rc = spake2p_compute_L(w1, r.L, err);
	OPENSSL_cleanse(w1, sizeof(w1));
	if (rc == IOTP_OK)
		*out = r;
	OPENSSL_cleanse(&r, sizeof(r));
	return rc;
}

void commission_record_cleanup(struct commission_record *r)
{
	OPENSSL_cleanse(r, sizeof(*r));
}

iotp_rc commission_record_format(const struct commission_record *r, struct buf *out,
                                 struct iotp_err *err)
{
	json_t *o = json_object();
	char *s = NULL;
	iotp_rc rc = IOTP_OK;

	if (!o || json_object_set_new(o, "device", json_string(r->device_id)) != 0 ||
	    json_object_set_new(o, "iter", json_integer(r->iterations)) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "record");
		goto out;
	}
	if ((rc = commission_json_set_b64(o, "salt", r->salt, r->salt_len, err)) != IOTP_OK ||
	    (rc = commission_json_set_b64(o, "w0", r->w0, sizeof(r->w0), err)) != IOTP_OK ||
	    (rc = commission_json_set_b64(o, "L", r->L, sizeof(r->L), err)) != IOTP_OK)
		goto out;
	if (!(s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER))) {
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "record");
		goto out;
	}
	if ((rc = buf_puts(out, s)) == IOTP_OK)
		rc = buf_puts(out, "\n");
	if (rc != IOTP_OK)
		iotp_err_set(err, rc, "record: %s", iotp_strerror(rc));
out:
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
	json_decref(o);
	return rc;
}

iotp_rc commission_record_parse(const char *text, size_t len, struct commission_record *out,
                                struct iotp_err *err)
{
	struct commission_record r;
	json_error_t jerr;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *dev, *iter;
	const char *keys[3] = {"salt", "w0", "L"};
	uint8_t *d[3] = {NULL, NULL, NULL};
	size_t n[3] = {0, 0, 0};
	iotp_rc rc = IOTP_OK;

	memset(&r, 0, sizeof(r));
	if (!json_is_object(o)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "verifier record is not a JSON object");
		goto out;
	}
	dev = json_object_get(o, "device");
	iter = json_object_get(o, "iter");
	if (!json_is_string(dev) || !valid_device_id(json_string_value(dev)) ||
	    !json_is_integer(iter) || json_integer_value(iter) < SPAKE2P_ITER_MIN ||
	    json_integer_value(iter) > SPAKE2P_ITER_MAX) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "verifier record: bad device or iter");
		goto out;
	}
	util_strlcpy(r.device_id, json_string_value(dev), sizeof(r.device_id));
	r.iterations = (uint32_t)json_integer_value(iter);
	for (int i = 0; i < 3; i++) {
		json_t *v = json_object_get(o, keys[i]);

		if (!json_is_string(v)) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID, "verifier record: missing %s",
			                  keys[i]);
			goto out;
		}
		rc = commission_b64_decode(json_string_value(v), json_string_length(v), &d[i], &n[i],
		                           err);
		if (rc != IOTP_OK)
			goto out;
	}
	if (n[0] < COMMISSION_SALT_MIN || n[0] > COMMISSION_SALT_MAX ||
	    n[1] != SPAKE2P_SCALAR_LEN || n[2] != SPAKE2P_POINT_LEN) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "verifier record: wrong field sizes");
		goto out;
	}
	memcpy(r.salt, d[0], n[0]);
	r.salt_len = n[0];
	memcpy(r.w0, d[1], n[1]);
	memcpy(r.L, d[2], n[2]);
	*out = r;
out:
	for (int i = 0; i < 3; i++) {
		if (d[i])
			OPENSSL_cleanse(d[i], n[i]);
		free(d[i]);
	}
	OPENSSL_cleanse(&r, sizeof(r));
	json_decref(o);
	return rc;
}

/* ---- limits and state ----------------------------------------------------- */

void commission_limits_init(struct commission_limits *l)
{
	l->max_attempts = 10;
	l->base_delay_ms = 1000;
	l->max_delay_ms = 60000;
	l->lockout_ms = 3600000;
	l->idle_timeout_ms = 300000;
}

static int64_t now_ms(const struct commission_device *dev)
{
	return dev->clock_ms ? dev->clock_ms(dev->clock_ud) : util_mono_ms();
}

/* Delay before the next guess after f consecutive failures. */
static int64_t delay_after(const struct commission_device *dev, int f)
{
	int64_t d = dev->lim.base_delay_ms;

	if (f <= 0)
		return 0;
	if (f >= dev->lim.max_attempts)
		return dev->lim.lockout_ms;
	for (int i = 1; i < f && d < dev->lim.max_delay_ms; i++)
		d *= 2;
	return d < dev->lim.max_delay_ms ? d : dev->lim.max_delay_ms;
}

static void save_state(struct commission_device *dev)
{
	char text[64];
	struct iotp_err err;
	int n;

	if (!dev->state_path)
		return;
	n = snprintf(text, sizeof(text), "failures %d\n", dev->failures);
	if (util_write_file(dev->state_path, text, (size_t)n, 0600, &err) != IOTP_OK)
		LOG_WARN("commission: cannot save %s: %s", dev->state_path, err.msg);
}

static void load_state(struct commission_device *dev)
{
	char *text = NULL;
	size_t len = 0;
	int64_t f = 0;
	struct iotp_err err;

	if (!dev->state_path || util_read_file(dev->state_path, 256, &text, &len, &err) != IOTP_OK)
		return;
	if (strncmp(text, "failures ", 9) == 0) {
		char *nl = strchr(text, '\n');

		if (nl)
			*nl = '\0';
		if (util_parse_int64(text + 9, 0, 1000000, &f) == IOTP_OK) {
			dev->failures = (int)f;
			dev->next_allowed_ms = now_ms(dev) + delay_after(dev, dev->failures);
		}
	}
	free(text);
}

/* 0 when a guess may be made now; else the milliseconds to wait. */
static int64_t guess_wait(const struct commission_device *dev, int64_t now)
{
	return now < dev->next_allowed_ms ? dev->next_allowed_ms - now : 0;
}

static void guess_counted(struct commission_device *dev, int64_t now)
{
	dev->failures++;
	dev->next_allowed_ms = now + delay_after(dev, dev->failures);
	save_state(dev);
	/* Counted before the answer: a guess is forgiven only once confirmed. */
	if (dev->failures >= dev->lim.max_attempts)
		LOG_WARN("commission: setup-code guess %d without success: locked for %lld s",
		         dev->failures, (long long)(dev->lim.lockout_ms / 1000));
	else if (dev->failures > 1)
		LOG_WARN("commission: setup-code guess %d without success", dev->failures);
}

static void guess_forgiven(struct commission_device *dev)
{
	dev->failures = 0;
	dev->next_allowed_ms = 0;
	save_state(dev);
}

/* ---- sessions ------------------------------------------------------------- */

static void session_end(struct session *s)
{
	spake2p_free(s->sp);
	commission_channel_cleanup(&s->ch);
	memset(s, 0, sizeof(*s));
}

static iotp_rc session_start(struct commission_device *dev, struct session *s, int64_t now,
                             struct iotp_err *err)
{
	struct spake2p_ids ids = make_ids(dev->rec.device_id);
	iotp_rc rc;

	session_end(s);
	if ((rc = util_random(s->sid, sizeof(s->sid), err)) != IOTP_OK)
		return rc;
	util_hex(s->sid, sizeof(s->sid), s->sid_hex);
	rc = spake2p_verifier_new(dev->rec.w0, dev->rec.L, &ids, &s->sp, err);
	if (rc != IOTP_OK) {
		session_end(s);
		return rc;
	}
	s->state = S_PARAMS;
	s->last_ms = now;
	return IOTP_OK;
}

iotp_rc commission_device_new(const struct commission_device_conf *conf,
                              struct commission_device **out, struct iotp_err *err)
{
	struct commission_device *dev;

	if (!conf->record || !valid_device_id(conf->record->device_id))
		return iotp_err_set(err, IOTP_ERR_CONFIG, "commissioning needs a verifier record");
	if (conf->limits.max_attempts < 1 || conf->limits.base_delay_ms < 0 ||
	    conf->limits.max_delay_ms < conf->limits.base_delay_ms || conf->limits.lockout_ms < 0 ||
	    conf->limits.idle_timeout_ms < 1000)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "commissioning limits out of range");
	if (!conf->ops.apply_network)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "commissioning needs a network apply");
	if (!(dev = calloc(1, sizeof(*dev))))
		return iotp_err_set(err, IOTP_ERR_NOMEM, "commission device");
	dev->rec = *conf->record;
	dev->lim = conf->limits;
	dev->ops = conf->ops;
	dev->clock_ms = conf->clock_ms;
	dev->clock_ud = conf->clock_ud;
	if (conf->state_path && !(dev->state_path = strdup(conf->state_path))) {
		commission_device_free(dev);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "commission device");
	}
	load_state(dev);
	*out = dev;
	return IOTP_OK;
}

void commission_device_free(struct commission_device *dev)
{
	if (!dev)
		return;
	session_end(&dev->s);
	session_end(&dev->file);
	free(dev->state_path);
	OPENSSL_cleanse(dev, sizeof(*dev));
	free(dev);
}

void commission_device_status(struct commission_device *dev, struct commission_device_status *out)
{
	int64_t now = now_ms(dev);

	memset(out, 0, sizeof(*out));
	out->session_open = dev->s.state == S_READY &&
	                    now - dev->s.last_ms <= dev->lim.idle_timeout_ms;
	out->joined = dev->joined;
	out->provisioned = dev->provisioned;
	util_strlcpy(out->thing, dev->thing, sizeof(out->thing));
	out->failures = dev->failures;
	out->retry_in_ms = guess_wait(dev, now);
	out->locked = dev->failures >= dev->lim.max_attempts && out->retry_in_ms > 0;
	out->sessions_done = dev->sessions_done;
}

/* ---- replies -------------------------------------------------------------- */

static iotp_rc reply_error(struct buf *reply, const char *code, const char *message,
                           int64_t retry_ms, struct iotp_err *err)
{
	return commission_error_format(code, message, retry_ms, reply, err);
}

static iotp_rc reply_throttled(const struct commission_device *dev, int64_t wait,
                               struct buf *reply, struct iotp_err *err)
{
	char msg[128];
	int locked = dev->failures >= dev->lim.max_attempts;

	snprintf(msg, sizeof(msg), locked ? "too many wrong setup codes: locked for %lld s"
	                                  : "wrong setup code recently: wait %lld ms",
	         locked ? (long long)((wait + 999) / 1000) : (long long)wait);
	return reply_error(reply, locked ? COMMISSION_E_LOCKED : COMMISSION_E_THROTTLED, msg, wait,
	                   err);
}

/* Appends m as the reply and returns its rc. */
static iotp_rc reply_msg(struct commission_msg *m, struct buf *reply, struct iotp_err *err)
{
	return commission_msg_format(m, reply, err);
}

/* Seals the inner reply on s's channel into out (an outer sealed msg). */
static iotp_rc seal_inner(struct session *s, const struct commission_inner *resp,
                          struct commission_sealed *out, struct iotp_err *err)
{
	struct buf pt;
	iotp_rc rc;

	buf_init(&pt, COMMISSION_LINE_MAX);
	rc = commission_inner_format(resp, &pt, err);
	if (rc == IOTP_OK)
		rc = commission_channel_seal(&s->ch, pt.data, pt.len, out, err);
	buf_cleanup_secure(&pt);
	return rc;
}

/* ---- requests inside the channel ------------------------------------------ */

/* 1 when the PEM certificate's notAfter is in the past (or unreadable). */
static int claim_expired(const char *pem, char *when, size_t size)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	int expired = 1;

	when[0] = '\0';
	if (x) {
		const ASN1_TIME *na = X509_get0_notAfter(x);
		BIO *m = BIO_new(BIO_s_mem());

		expired = X509_cmp_current_time(na) <= 0;
		if (m && ASN1_TIME_print(m, na) == 1) {
			int n = BIO_read(m, when, (int)size - 1);

			when[n > 0 ? n : 0] = '\0';
		}
		BIO_free(m);
	} else {
		util_strlcpy(when, "unreadable claim certificate", size);
	}
	ERR_clear_error();
	X509_free(x);
	BIO_free(b);
	return expired;
}

static void do_provision(struct commission_device *dev, const struct commission_claim *claim,
                         struct commission_inner *resp)
{
	struct commission_prov_outcome o;
	struct iotp_err e;
	char when[64];

	resp->type = CMI_PROVISION_RESULT;
	resp->ok = 0;
	if (!dev->joined) {
		util_strlcpy(resp->reason, "the device is not on a network yet", sizeof(resp->reason));
		return;
	}
	if (!dev->ops.provision) {
		util_strlcpy(resp->reason, "provisioning is not supported by this device",
		             sizeof(resp->reason));
		return;
	}
	if (claim_expired(claim->cert_pem, when, sizeof(when))) {
		snprintf(resp->reason, sizeof(resp->reason), "claim expired (%s): get a new one",
		         when);
		LOG_INFO("commission: claim refused: expired %s", when);
		return;
	}
	memset(&o, 0, sizeof(o));
	iotp_err_clear(&e);
	if (dev->ops.provision(dev->ops.ud, claim, &o, &e) != IOTP_OK) {
		snprintf(resp->reason, sizeof(resp->reason), "provisioning failed: %.200s", e.msg);
		LOG_WARN("commission: provisioning failed: %s", e.msg);
		return;
	}
	resp->ok = o.ok;
	util_strlcpy(resp->reason, o.reason, sizeof(resp->reason));
	util_strlcpy(resp->thing, o.thing, sizeof(resp->thing));
	util_strlcpy(resp->cert_id, o.cert_id, sizeof(resp->cert_id));
	if (o.ok) {
		dev->provisioned = 1;
		util_strlcpy(dev->thing, o.thing, sizeof(dev->thing));
		LOG_INFO("commission: provisioned as thing %s", o.thing);
	} else {
		LOG_INFO("commission: provisioning rejected: %s", o.reason);
	}
}

/* Acts on one opened request; fills resp. *end set when the session ends. */
static void dispatch(struct commission_device *dev, const uint8_t *pt, size_t len,
                     struct commission_inner *resp, int *end)
{
	struct commission_inner req;
	struct iotp_err e;

	memset(&req, 0, sizeof(req));
	memset(resp, 0, sizeof(*resp));
	if (commission_inner_parse(pt, len, &req, &e) != IOTP_OK) {
		resp->type = CMI_ERROR;
		util_strlcpy(resp->reason, e.msg, sizeof(resp->reason));
		return;
	}
	switch (req.type) {
	case CMI_NETWORK: {
		int joined = 0;

		resp->type = CMI_NETWORK_RESULT;
		iotp_err_clear(&e);
		if (dev->ops.apply_network(dev->ops.ud, &req.net, &joined, resp->reason,
		                           sizeof(resp->reason), &e) != IOTP_OK) {
			joined = 0;
			snprintf(resp->reason, sizeof(resp->reason), "could not apply: %.200s", e.msg);
		}
		resp->ok = joined;
		dev->joined = joined;
		LOG_INFO("commission: network %s %s%s%s", req.net.wired ? "(wired)" : req.net.ssid,
		         joined ? "joined" : "not joined", resp->reason[0] ? ": " : "",
		         resp->reason);
		break;
	}
	case CMI_PROVISION:
		do_provision(dev, &req.claim, resp);
		break;
	case CMI_DONE:
		resp->type = CMI_BYE;
		*end = 1;
		break;
	default:
		resp->type = CMI_ERROR;
		util_strlcpy(resp->reason, "unexpected message", sizeof(resp->reason));
		break;
	}
	commission_inner_cleanup(&req);
}

/* ---- interactive transports ----------------------------------------------- */

static int sid_matches(const struct session *s, const struct commission_msg *m)
{
	return s->state != S_NONE && CRYPTO_memcmp(s->sid_hex, m->sid, sizeof(s->sid_hex)) == 0;
}

static iotp_rc on_hello(struct commission_device *dev, int64_t now, struct buf *reply,
                        struct iotp_err *err)
{
	struct commission_msg m;
	int64_t wait;
	iotp_rc rc;

	if (dev->s.state == S_READY)
		return reply_error(reply, COMMISSION_E_BUSY,
		                   "another installer is commissioning this device", -1, err);
	if ((wait = guess_wait(dev, now)) > 0)
		return reply_throttled(dev, wait, reply, err);
	if ((rc = session_start(dev, &dev->s, now, err)) != IOTP_OK)
		return reply_error(reply, COMMISSION_E_INTERNAL, "cannot start a session", -1, err);
	memset(&m, 0, sizeof(m));
	m.type = CM_PARAMS;
	util_strlcpy(m.sid, dev->s.sid_hex, sizeof(m.sid));
	util_strlcpy(m.device, dev->rec.device_id, sizeof(m.device));
	memcpy(m.salt, dev->rec.salt, dev->rec.salt_len);
	m.salt_len = dev->rec.salt_len;
	m.iterations = dev->rec.iterations;
	return reply_msg(&m, reply, err);
}

static iotp_rc on_pake1(struct commission_device *dev, const struct commission_msg *in,
                        int64_t now, struct buf *reply, struct iotp_err *err)
{
	struct commission_msg m;
	struct iotp_err e;
	int64_t wait;

	if (!sid_matches(&dev->s, in) || dev->s.state != S_PARAMS)
		return reply_error(reply, COMMISSION_E_SESSION, "no such session: send hello", -1,
		                   err);
	if ((wait = guess_wait(dev, now)) > 0) {
		session_end(&dev->s);
		return reply_throttled(dev, wait, reply, err);
	}
	/* The guess counts from here, whatever follows. */
	guess_counted(dev, now);
	memset(&m, 0, sizeof(m));
	m.type = CM_PAKE2;
	util_strlcpy(m.sid, dev->s.sid_hex, sizeof(m.sid));
	if (spake2p_share(dev->s.sp, m.share, &e) != IOTP_OK ||
	    spake2p_finish(dev->s.sp, in->share, SPAKE2P_POINT_LEN, m.confirm, &e) != IOTP_OK) {
		session_end(&dev->s);
		return reply_error(reply, COMMISSION_E_BAD_REQUEST, e.msg, -1, err);
	}
	m.has_share = m.has_confirm = 1;
	dev->s.state = S_PAKE2;
	dev->s.last_ms = now;
	return reply_msg(&m, reply, err);
}

static iotp_rc on_pake3(struct commission_device *dev, const struct commission_msg *in,
                        int64_t now, struct buf *reply, struct iotp_err *err)
{
	struct commission_msg m;
	uint8_t key[SPAKE2P_HASH_LEN];
	struct iotp_err e;
	iotp_rc rc;

	if (!sid_matches(&dev->s, in) || dev->s.state != S_PAKE2)
		return reply_error(reply, COMMISSION_E_SESSION, "no such session: send hello", -1,
		                   err);
	if (spake2p_confirm_check(dev->s.sp, in->confirm, SPAKE2P_HASH_LEN, &e) != IOTP_OK) {
		session_end(&dev->s);
		LOG_WARN("commission: wrong setup code (%d in a row)", dev->failures);
		return reply_error(reply, COMMISSION_E_AUTH, "wrong setup code",
		                   delay_after(dev, dev->failures), err);
	}
	guess_forgiven(dev);
	rc = spake2p_shared_key(dev->s.sp, key, &e);
	if (rc == IOTP_OK)
		rc = commission_channel_init(&dev->s.ch, 1, key, dev->s.sid, &e);
	OPENSSL_cleanse(key, sizeof(key));
	spake2p_free(dev->s.sp);
	dev->s.sp = NULL;
	if (rc != IOTP_OK) {
		session_end(&dev->s);
		return reply_error(reply, COMMISSION_E_INTERNAL, "key schedule failed", -1, err);
	}
	dev->s.state = S_READY;
	dev->s.last_ms = now;
	LOG_INFO("commission: session %.8s authenticated", dev->s.sid_hex);
	memset(&m, 0, sizeof(m));
	m.type = CM_OK;
	util_strlcpy(m.sid, dev->s.sid_hex, sizeof(m.sid));
	return reply_msg(&m, reply, err);
}

static iotp_rc on_sealed(struct commission_device *dev, const struct commission_msg *in,
                         int64_t now, struct buf *reply, struct iotp_err *err)
{
	struct commission_msg m;
	struct commission_inner resp;
	uint8_t *pt = NULL;
	size_t len = 0;
	struct iotp_err e;
	int end = 0;
	iotp_rc rc;

	if (!sid_matches(&dev->s, in) || dev->s.state != S_READY)
		return reply_error(reply, COMMISSION_E_SESSION,
		                   "no such session (ended or expired): start again", -1, err);
	rc = commission_channel_open(&dev->s.ch, &in->sealed, &pt, &len, &e);
	if (rc != IOTP_OK) {
		const char *code = rc == IOTP_ERR_STATE ? COMMISSION_E_REPLAY : COMMISSION_E_INTEGRITY;

		LOG_WARN("commission: refused a sealed message: %s", e.msg);
		if (++dev->s.bad_msgs >= BAD_MSGS_MAX)
			session_end(&dev->s);
		return reply_error(reply, code, rc == IOTP_ERR_STATE ? "replayed or reordered message"
		                                                     : "message authentication failed",
		                   -1, err);
	}
	dev->s.last_ms = now;
	dispatch(dev, pt, len, &resp, &end);
	OPENSSL_cleanse(pt, len);
	free(pt);
	memset(&m, 0, sizeof(m));
	m.type = CM_SEALED;
	util_strlcpy(m.sid, dev->s.sid_hex, sizeof(m.sid));
	rc = seal_inner(&dev->s, &resp, &m.sealed, &e);
	commission_inner_cleanup(&resp);
	if (rc != IOTP_OK) {
		session_end(&dev->s);
		return reply_error(reply, COMMISSION_E_INTERNAL, "cannot seal the reply", -1, err);
	}
	/* After the action, which may have taken seconds. */
	dev->s.last_ms = now_ms(dev);
	if (end) {
		dev->sessions_done++;
		LOG_INFO("commission: session %.8s ended by the installer", dev->s.sid_hex);
		session_end(&dev->s);
	}
	rc = reply_msg(&m, reply, err);
	commission_msg_cleanup(&m);
	return rc;
}

iotp_rc commission_device_handle(struct commission_device *dev, const char *line, size_t len,
                                 struct buf *reply, struct iotp_err *err)
{
	struct commission_msg in;
	struct iotp_err e;
	int64_t now = now_ms(dev);
	iotp_rc rc;

	if (dev->s.state != S_NONE && now - dev->s.last_ms > dev->lim.idle_timeout_ms) {
		LOG_INFO("commission: session %.8s expired", dev->s.sid_hex);
		session_end(&dev->s);
	}
	memset(&in, 0, sizeof(in));
	if (commission_msg_parse(line, len, &in, &e) != IOTP_OK)
		return reply_error(reply, COMMISSION_E_BAD_REQUEST, e.msg, -1, err);
	switch (in.type) {
	case CM_HELLO:
		rc = on_hello(dev, now, reply, err);
		break;
	case CM_PAKE1:
		rc = on_pake1(dev, &in, now, reply, err);
		break;
	case CM_PAKE3:
		rc = on_pake3(dev, &in, now, reply, err);
		break;
	case CM_SEALED:
		rc = on_sealed(dev, &in, now, reply, err);
		break;
	default:
		rc = reply_error(reply, COMMISSION_E_BAD_REQUEST, "unexpected message type", -1, err);
		break;
	}
	commission_msg_cleanup(&in);
	return rc;
}

/* ---- removable media ------------------------------------------------------ */

/* Two rounds of files, so that nothing the device or the installer writes
 * lets a reader test setup-code guesses offline:
 *   device-hello {sid, device, salt, iter}       parameters only
 *   commission-1 (pake1) {sid, X}                -> device-reply (pake2) {sid, Y, cV}
 *   commission {sid, cP, msgs[]}                 -> commission-result {sid, cV, msgs[]}
 * The installer writes cP and the sealed requests only after checking cV,
 * exactly as over the interactive transports. */

/* A share answered but never confirmed is given up after the idle time,
 * whether or not the media went away meanwhile (checked by _file_hello and
 * before any file is looked at). */
static void file_expire(struct commission_device *dev, int64_t now)
{
	if (dev->file.state == S_PAKE2 && now - dev->file.last_ms > dev->lim.idle_timeout_ms) {
		LOG_INFO("commission: media session %.8s expired", dev->file.sid_hex);
		session_end(&dev->file);
	}
}

iotp_rc commission_device_file_hello(struct commission_device *dev, struct buf *out,
                                     struct iotp_err *err)
{
	struct commission_msg m;
	int64_t now = now_ms(dev);
	iotp_rc rc;

	file_expire(dev, now);
	if (dev->file.state == S_NONE) {
		if ((rc = session_start(dev, &dev->file, now, err)) != IOTP_OK)
			return rc;
	}
	memset(&m, 0, sizeof(m));
	m.type = CM_DEVICE_HELLO;
	util_strlcpy(m.sid, dev->file.sid_hex, sizeof(m.sid));
	util_strlcpy(m.device, dev->rec.device_id, sizeof(m.device));
	memcpy(m.salt, dev->rec.salt, dev->rec.salt_len);
	m.salt_len = dev->rec.salt_len;
	m.iterations = dev->rec.iterations;
	return commission_msg_format(&m, out, err);
}

/* commission-1: the installer's share. Counted as a guess before the
 * answer (Y and cV), as on_pake1. *keep: the session goes on. */
static iotp_rc file_pake1(struct commission_device *dev, const struct commission_msg *in,
                          int64_t now, struct buf *result, int *consumed, int *keep,
                          struct iotp_err *err)
{
	struct session *s = &dev->file;
	struct commission_msg m;
	struct iotp_err e;
	int64_t wait;

	/* A leftover of another session leaves the current one alone; one for
	 * this session that comes again (an installer run anew) ends it. */
	*keep = !sid_matches(s, in);
	if (*keep || s->state != S_PARAMS)
		return reply_error(result, COMMISSION_E_STALE,
		                   "this file answers another device-hello: write it again", -1, err);
	if ((wait = guess_wait(dev, now)) > 0) {
		*consumed = 0;
		*keep = 1;
		return reply_throttled(dev, wait, result, err);
	}
	guess_counted(dev, now);
	memset(&m, 0, sizeof(m));
	m.type = CM_PAKE2;
	util_strlcpy(m.sid, s->sid_hex, sizeof(m.sid));
	if (spake2p_share(s->sp, m.share, &e) != IOTP_OK ||
	    spake2p_finish(s->sp, in->share, SPAKE2P_POINT_LEN, m.confirm, &e) != IOTP_OK)
		return reply_error(result, COMMISSION_E_BAD_REQUEST, e.msg, -1, err);
	m.has_share = m.has_confirm = 1;
	memcpy(s->cv, m.confirm, sizeof(s->cv));
	s->state = S_PAKE2;
	s->last_ms = now;
	*keep = 1;
	return reply_msg(&m, result, err);
}

/* commission: the installer's confirmation and sealed requests, applied
 * once cP checks. */
static iotp_rc file_apply(struct commission_device *dev, const struct commission_msg *in,
                          struct buf *result, int *keep, struct iotp_err *err)
{
	struct session *s = &dev->file;
	struct commission_msg m;
	uint8_t key[SPAKE2P_HASH_LEN];
	struct iotp_err e;
	int end = 0;
	iotp_rc rc;

	*keep = !sid_matches(s, in); /* another session's file: this one goes on */
	if (*keep || s->state != S_PAKE2)
		return reply_error(result, COMMISSION_E_STALE,
		                   "this file answers another device-reply: write it again", -1, err);
	if (spake2p_confirm_check(s->sp, in->confirm, SPAKE2P_HASH_LEN, &e) != IOTP_OK) {
		LOG_WARN("commission: wrong setup code in a commission file (%d in a row)",
		         dev->failures);
		return reply_error(result, COMMISSION_E_AUTH, "wrong setup code",
		                   delay_after(dev, dev->failures), err);
	}
	guess_forgiven(dev);
	memset(&m, 0, sizeof(m));
	m.type = CM_FILE_RESULT;
	util_strlcpy(m.sid, s->sid_hex, sizeof(m.sid));
	memcpy(m.confirm, s->cv, sizeof(m.confirm));
	m.has_confirm = 1;
	rc = spake2p_shared_key(s->sp, key, &e);
	if (rc == IOTP_OK)
		rc = commission_channel_init(&s->ch, 1, key, s->sid, &e);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc != IOTP_OK || !(m.msgs = calloc(in->n_msgs, sizeof(*m.msgs)))) {
		rc = reply_error(result, COMMISSION_E_INTERNAL, "key schedule failed", -1, err);
		goto out;
	}
	for (size_t i = 0; i < in->n_msgs && !end; i++) {
		struct commission_inner resp;
		uint8_t *pt = NULL;
		size_t plen = 0;

		memset(&resp, 0, sizeof(resp));
		if (commission_channel_open(&s->ch, &in->msgs[i], &pt, &plen, &e) != IOTP_OK) {
			resp.type = CMI_ERROR;
			snprintf(resp.reason, sizeof(resp.reason), "message %zu refused: %.200s", i, e.msg);
			end = 1;
		} else {
			dispatch(dev, pt, plen, &resp, &end);
			OPENSSL_cleanse(pt, plen);
			free(pt);
		}
		rc = seal_inner(s, &resp, &m.msgs[m.n_msgs], &e);
		commission_inner_cleanup(&resp);
		if (rc != IOTP_OK)
			break;
		m.n_msgs++;
	}
	if (rc == IOTP_OK) {
		dev->sessions_done++;
		rc = commission_msg_format(&m, result, err);
	} else {
		rc = reply_error(result, COMMISSION_E_INTERNAL, "cannot seal the answers", -1, err);
	}
out:
	commission_msg_cleanup(&m);
	return rc;
}

iotp_rc commission_device_file_apply(struct commission_device *dev, const char *text,
                                     size_t len, struct buf *result, int *consumed,
                                     struct iotp_err *err)
{
	struct commission_msg in;
	struct iotp_err e;
	int64_t now = now_ms(dev);
	int keep = 0;
	iotp_rc rc;

	memset(&in, 0, sizeof(in));
	*consumed = 1;
	file_expire(dev, now);
	rc = commission_msg_parse(text, len, &in, &e);
	if (rc == IOTP_OK && in.type == CM_PAKE1)
		rc = file_pake1(dev, &in, now, result, consumed, &keep, err);
	else if (rc == IOTP_OK && in.type == CM_FILE)
		rc = file_apply(dev, &in, result, &keep, err);
	else
		rc = reply_error(result, COMMISSION_E_BAD_REQUEST,
		                 rc == IOTP_OK ? "not a commission file" : e.msg, -1, err);
	/* Unless answered with the device's share, never looked at, or meant
	 * for another session, this session is spent: the next attempt needs a
	 * new device-hello. */
	if (!keep)
		session_end(&dev->file);
	commission_msg_cleanup(&in);
	return rc;
}
