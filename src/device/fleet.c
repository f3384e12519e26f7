/*
 * Fleet provisioning, device side (the MQTT API of COMPAT.md):
 *   $aws/certificates/create-from-csr/<fmt>  -> certificate + ownership token
 *   $aws/certificates/create/<fmt>           -> the same + a server-made key
 *   $aws/provisioning-templates/<name>/provision/<fmt> -> thingName, config
 * over any transport (the seam of device.h). The session subscribes to the
 * accepted and rejected topics before it publishes anything (a reply to a
 * request published first could arrive before the subscription exists and
 * be lost), keeps one request in flight (replies carry no correlation id),
 * bounds every wait and every reply, and turns a rejection into
 * IOTP_CAUSE_REJECTED with the service's statusCode and errorCode.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/util.h"
#include "device/dev.h"

#define TOPIC_MAX 256
#define TOPIC_BASE_MAX (TOPIC_MAX - 16) /* room for "/accepted" */
#define TEMPLATE_NAME_MAX 36

enum op { OP_CSR = 0, OP_CREATE = 1, OP_REGISTER = 2 };

struct iotp_fleet {
	iotp_transport *t;
	iotp_transport *own;           /* set when the session made t */
	enum iotp_fp_format fmt;
	int timeout_ms;
	char template_name[TEMPLATE_NAME_MAX + 1];
	unsigned subscribed;           /* IOTP_FLEET_OP_* bits */
	/* The request in flight. */
	char accepted[TOPIC_MAX], rejected[TOPIC_MAX];
	int got;                       /* 0 waiting, 1 accepted, 2 rejected */
	int too_big;
	uint8_t reply[DEV_REPLY_MAX];
	size_t reply_len;
};

static const char *fmt_name(enum iotp_fp_format f)
{
	return f == IOTP_FP_CBOR ? "cbor" : "json";
}

static unsigned op_bit(enum op op)
{
	return op == OP_CSR ? IOTP_FLEET_OP_CREATE_FROM_CSR
	       : op == OP_CREATE ? IOTP_FLEET_OP_CREATE : IOTP_FLEET_OP_REGISTER;
}

/* Request topic of op; the replies are it + "/accepted" and "/rejected". */
static iotp_rc op_topic(const struct iotp_fleet *f, enum op op, char *out, size_t size,
                        struct iotp_err *err)
{
	int n;

	switch (op) {
	case OP_CSR:
		n = snprintf(out, size, "$aws/certificates/create-from-csr/%s", fmt_name(f->fmt));
		break;
	case OP_CREATE:
		n = snprintf(out, size, "$aws/certificates/create/%s", fmt_name(f->fmt));
		break;
	default:
		if (f->template_name[0] == '\0')
			return iotp_err_set(err, IOTP_ERR_INVALID, "no provisioning template named");
		n = snprintf(out, size, "$aws/provisioning-templates/%s/provision/%s",
		             f->template_name, fmt_name(f->fmt));
		break;
	}
	if (n < 0 || (size_t)n >= size)
		return iotp_err_set(err, IOTP_ERR_INVALID, "topic too long");
	return IOTP_OK;
}

static int template_name_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' || s[i] == '-'))
			return 0;
	return i > 0 && i <= TEMPLATE_NAME_MAX;
}

static void on_message(void *ud, const char *topic, const void *payload, size_t len)
{
	struct iotp_fleet *f = ud;
	int which = strcmp(topic, f->accepted) == 0   ? 1
	            : strcmp(topic, f->rejected) == 0 ? 2
	                                              : 0;

	/* Only the first reply to the request in flight counts. */
	if (which == 0 || f->got != 0)
		return;
	f->got = which;
	f->too_big = len > sizeof(f->reply);
	f->reply_len = f->too_big ? 0 : len;
	if (!f->too_big && len > 0)
		memcpy(f->reply, payload, len);
}

static iotp_rc subscribe_ops(struct iotp_fleet *f, unsigned ops, struct iotp_failure *why,
                             struct iotp_err *err)
{
	char topics[6][TOPIC_MAX];
	const char *filters[6];
	size_t n = 0;
	enum op op;
	iotp_rc rc;

	for (op = OP_CSR; op <= OP_REGISTER; op++) {
		char base[TOPIC_BASE_MAX];

		if (!(ops & op_bit(op)) || (f->subscribed & op_bit(op)))
			continue;
		if ((rc = op_topic(f, op, base, sizeof(base), err)) != IOTP_OK)
			return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "%s",
			                err != NULL ? err->msg : "topic");
		snprintf(topics[n], TOPIC_MAX, "%s/accepted", base);
		filters[n] = topics[n];
		n++;
		snprintf(topics[n], TOPIC_MAX, "%s/rejected", base);
		filters[n] = topics[n];
		n++;
	}
	if (n == 0)
		return IOTP_OK;
	if ((rc = f->t->ops->subscribe(f->t->impl, filters, n, f->timeout_ms, why, err)) != IOTP_OK)
		return rc;
	f->subscribed |= ops;
	return IOTP_OK;
}

iotp_rc iotp_fleet_open(const struct iotp_fleet_opts *opts, iotp_fleet **out,
                        struct iotp_failure *why, struct iotp_err *err)
{
	struct iotp_fleet *f = NULL;
	struct iotp_mqtt_params p;
	iotp_rc rc;

	iotp_failure_clear(why);
	if (opts == NULL || opts->client_id == NULL || opts->host == NULL ||
	    opts->claim_ctx == NULL)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_INVALID,
		                "fleet provisioning needs an endpoint, a client id and a claim");
	if (opts->template_name != NULL && !template_name_ok(opts->template_name))
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_INVALID,
		                "template name '%s' is not 1-36 of [0-9A-Za-z_-]",
		                opts->template_name);
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_NOMEM, "out of memory");
	f->fmt = opts->format;
	f->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 10000;
	if (opts->template_name != NULL)
		util_strlcpy(f->template_name, opts->template_name, sizeof(f->template_name));
	f->t = opts->transport;
	if (f->t == NULL) {
		if ((rc = iotp_transport_mosquitto(&f->own, err)) != IOTP_OK) {
			dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "transport");
			goto fail;
		}
		f->t = f->own;
	}
	memset(&p, 0, sizeof(p));
	p.host = opts->host;
	p.port = opts->port;
	p.client_id = opts->client_id;
	p.ssl_ctx = opts->claim_ctx;
	p.timeout_ms = f->timeout_ms;
	p.mqtt_version = opts->mqtt_version;
	if ((rc = f->t->ops->connect(f->t->impl, &p, on_message, f, why, err)) != IOTP_OK)
		goto fail;
	if ((rc = subscribe_ops(f, opts->ops, why, err)) != IOTP_OK)
		goto fail;
	*out = f;
	return IOTP_OK;
fail:
	iotp_fleet_close(f);
	return rc;
}

void iotp_fleet_close(iotp_fleet *f)
{
	if (f == NULL)
		return;
	f->t->ops->disconnect(f->t->impl);
	iotp_transport_free(f->own);
	OPENSSL_cleanse(f->reply, sizeof(f->reply));
	free(f);
}

/* The iotp_rc that a rejection means, from its statusCode / errorCode. */
static iotp_rc rejected_rc(int status, const char *code)
{
	if (strcmp(code, "InvalidCertificateOwnershipToken") == 0)
		return IOTP_ERR_TOKEN;
	if (strcmp(code, "ThrottlingException") == 0 || status == 429)
		return IOTP_ERR_THROTTLED;
	if (status == 401 || status == 403)
		return IOTP_ERR_DENIED;
	if (status == 404)
		return IOTP_ERR_NOT_FOUND;
	if (status >= 500)
		return IOTP_ERR_INTERNAL;
	return IOTP_ERR_INVALID;
}

/* Publishes payload as op and waits for its reply; on success the reply is
 * in f->reply. */
static iotp_rc request(struct iotp_fleet *f, enum op op, const void *payload, size_t len,
                       struct iotp_failure *why, struct iotp_err *err)
{
	char topic[TOPIC_BASE_MAX];
	int64_t deadline;
	iotp_rc rc;

	if ((rc = op_topic(f, op, topic, sizeof(topic), err)) != IOTP_OK)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "topic");
	if ((rc = subscribe_ops(f, op_bit(op), why, err)) != IOTP_OK)
		return rc;
	snprintf(f->accepted, sizeof(f->accepted), "%s/accepted", topic);
	snprintf(f->rejected, sizeof(f->rejected), "%s/rejected", topic);
	f->got = 0;
	f->reply_len = 0;
	if ((rc = f->t->ops->publish(f->t->impl, topic, payload, len, 0, why, err)) != IOTP_OK)
		return rc;
	deadline = util_mono_ms() + f->timeout_ms;
	while (f->got == 0) {
		int64_t left = deadline - util_mono_ms();

		if (left <= 0)
			return dev_fail(why, IOTP_CAUSE_TIMEOUT, 0, NULL, err, IOTP_ERR_TIMEOUT,
			                "no reply on %s/{accepted,rejected} within %d ms", topic,
			                f->timeout_ms);
		if ((rc = f->t->ops->poll(f->t->impl, (int)left, why, err)) != IOTP_OK)
			return rc;
	}
	if (f->too_big)
		return dev_fail(why, IOTP_CAUSE_PROTOCOL, 0, NULL, err, IOTP_ERR_TOO_BIG,
		                "reply on %s over %d bytes", f->got == 1 ? f->accepted : f->rejected,
		                DEV_REPLY_MAX);
	if (f->got == 2) {
		int status = 0;
		char code[IOTP_ERROR_CODE_MAX], msg[256];
		struct iotp_err derr;

		if (fp_decode_rejected(f->fmt, f->reply, f->reply_len, &status, code, msg, sizeof(msg),
		                       &derr) != IOTP_OK)
			return dev_fail(why, IOTP_CAUSE_REJECTED, 0, NULL, err, IOTP_ERR_DENIED,
			                "rejected on %s (unreadable reply: %s)", f->rejected, derr.msg);
		return dev_fail(why, IOTP_CAUSE_REJECTED, status, code, err, rejected_rc(status, code),
		                "rejected: %s (%d): %s", code[0] ? code : "no errorCode", status, msg);
	}
	return IOTP_OK;
}

static iotp_rc create_common(iotp_fleet *f, enum op op, const char *csr, size_t csr_len,
                             struct iotp_fleet_cert *out, struct iotp_failure *why,
                             struct iotp_err *err)
{
	uint8_t *payload = NULL;
	size_t len = 0;
	iotp_rc rc;

	iotp_failure_clear(why);
	if (op == OP_CSR) {
		if (csr == NULL || csr_len == 0)
			return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_INVALID, "no CSR");
		if ((rc = fp_encode_csr_request(f->fmt, csr, csr_len, &payload, &len, err)) != IOTP_OK)
			return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "encode");
	}
	rc = request(f, op, payload, len, why, err);
	free(payload);
	if (rc != IOTP_OK)
		goto out;
	if ((rc = fp_decode_cert_accepted(f->fmt, f->reply, f->reply_len, op == OP_CREATE, out,
	                                  err)) != IOTP_OK)
		dev_fail(why, IOTP_CAUSE_PROTOCOL, 0, NULL, NULL, rc, "bad accepted reply");
out:
	OPENSSL_cleanse(f->reply, f->reply_len);
	return rc;
}

iotp_rc iotp_fleet_create_from_csr(iotp_fleet *f, const char *csr_pem, size_t csr_len,
                                   struct iotp_fleet_cert *out, struct iotp_failure *why,
                                   struct iotp_err *err)
{
	return create_common(f, OP_CSR, csr_pem, csr_len, out, why, err);
}

iotp_rc iotp_fleet_create(iotp_fleet *f, struct iotp_fleet_cert *out, struct iotp_failure *why,
                          struct iotp_err *err)
{
	return create_common(f, OP_CREATE, NULL, 0, out, why, err);
}

iotp_rc iotp_fleet_register(iotp_fleet *f, const char *token, const struct iotp_param *params,
                            size_t nparams, struct iotp_fleet_thing *out,
                            struct iotp_failure *why, struct iotp_err *err)
{
	uint8_t *payload = NULL;
	size_t len = 0;
	iotp_rc rc;

	iotp_failure_clear(why);
	if (token == NULL || token[0] == '\0')
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_INVALID,
		                "no ownership token");
	if ((rc = fp_encode_register_request(f->fmt, token, params, nparams, &payload, &len,
	                                     err)) != IOTP_OK)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "encode");
	rc = request(f, OP_REGISTER, payload, len, why, err);
	OPENSSL_cleanse(payload, len);
	free(payload);
	if (rc != IOTP_OK)
		return rc;
	if ((rc = fp_decode_register_accepted(f->fmt, f->reply, f->reply_len, out, err)) != IOTP_OK)
		dev_fail(why, IOTP_CAUSE_PROTOCOL, 0, NULL, NULL, rc, "bad accepted reply");
	return rc;
}
