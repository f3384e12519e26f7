/*
 * The Linux transport: libmosquitto driven by mosquitto_loop() on the
 * caller's thread, with the caller's prebuilt SSL_CTX (MOSQ_OPT_SSL_CTX
 * without libmosquitto's defaults, so the context decides trust and
 * identity and is not rebuilt per connection) and TCP_NODELAY (without it
 * each short-lived connection stalls on Nagle + delayed ACK).
 *
 * MQTT 5 by default: refusals come back with reason codes (CONNACK,
 * SUBACK, PUBACK) that say why, where 3.1.1 drops a denied publish
 * silently. Every wait is bounded by the timeout it was given.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/util.h"
#include "device/dev.h"

struct mosq_impl {
	struct mosquitto *mosq;
	iotp_mqtt_message_cb on_message;
	void *ud;
	char where[300];          /* "host:port" for messages */
	int connack;              /* -1 until the CONNACK, then its code */
	int connack_seen;
	int lost;                 /* the connection ended */
	int lost_rc;
	int sub_mid, sub_done, sub_refused, sub_code;
	int pub_mid, pub_done, pub_code;
	unsigned long delivered;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void)
{
	mosquitto_lib_init();
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
	struct mosq_impl *im = obj;

	(void)m;
	(void)flags;
	(void)props;
	im->connack = rc;
	im->connack_seen = 1;
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *props)
{
	struct mosq_impl *im = obj;

	(void)m;
	(void)props;
	im->lost = 1;
	im->lost_rc = rc;
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int count, const int *granted,
                         const mosquitto_property *props)
{
	struct mosq_impl *im = obj;
	int i;

	(void)m;
	(void)props;
	if (mid != im->sub_mid)
		return;
	im->sub_done = 1;
	for (i = 0; i < count; i++)
		if (granted[i] >= 0x80) {
			im->sub_refused = i + 1;
			im->sub_code = granted[i];
			break;
		}
}

static void on_publish(struct mosquitto *m, void *obj, int mid, int reason,
                       const mosquitto_property *props)
{
	struct mosq_impl *im = obj;

	(void)m;
	(void)props;
	if (mid != im->pub_mid)
		return;
	im->pub_done = 1;
	im->pub_code = reason;
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	struct mosq_impl *im = obj;

	(void)m;
	(void)props;
	im->delivered++;
	if (im->on_message != NULL)
		im->on_message(im->ud, msg->topic, msg->payload, (size_t)msg->payloadlen);
}

/* Why the connection failed, from libmosquitto's code and what OpenSSL
 * knows about the handshake. */
static iotp_rc net_fail(struct mosq_impl *im, int mrc, int saved_errno, const char *doing,
                        struct iotp_failure *why, struct iotp_err *err)
{
	SSL *ssl = im->mosq != NULL ? mosquitto_ssl_get(im->mosq) : NULL;
	unsigned long e = ERR_peek_last_error();
	char detail[256] = "";

	if (ssl != NULL && SSL_get_verify_result(ssl) != X509_V_OK) {
		long v = SSL_get_verify_result(ssl);

		ERR_clear_error();
		return dev_fail(why, IOTP_CAUSE_TLS, 0, NULL, err, IOTP_ERR_CERT,
		                "%s %s: the server certificate is not trusted: %s", doing, im->where,
		                X509_verify_cert_error_string(v));
	}
	if (e != 0)
		ERR_error_string_n(e, detail, sizeof(detail));
	ERR_clear_error();
	if (mrc == MOSQ_ERR_TLS || mrc == MOSQ_ERR_TLS_HANDSHAKE ||
	    (ssl != NULL && !SSL_is_init_finished(ssl)) || (e != 0 && im->connack < 0))
		return dev_fail(why, IOTP_CAUSE_TLS, 0, NULL, err, IOTP_ERR_CRYPTO,
		                "%s %s: TLS handshake failed%s%s", doing, im->where,
		                detail[0] ? ": " : " (the server closed it: certificate refused?)",
		                detail);
	if (mrc == MOSQ_ERR_ERRNO)
		return dev_fail(why, IOTP_CAUSE_NETWORK, 0, NULL, err, IOTP_ERR_IO, "%s %s: %s",
		                doing, im->where, strerror(saved_errno));
	if (mrc == MOSQ_ERR_EAI || mrc == MOSQ_ERR_LOOKUP)
		return dev_fail(why, IOTP_CAUSE_NETWORK, 0, NULL, err, IOTP_ERR_IO,
		                "%s %s: cannot resolve the host", doing, im->where);
	if (im->connack < 0 && ssl != NULL && SSL_is_init_finished(ssl))
		return dev_fail(why, IOTP_CAUSE_REFUSED, 0, NULL, err, IOTP_ERR_AUTH,
		                "%s %s: the broker closed the connection before CONNACK "
		                "(identity refused)",
		                doing, im->where);
	return dev_fail(why, IOTP_CAUSE_NETWORK, 0, NULL, err, IOTP_ERR_IO, "%s %s: %s", doing,
	                im->where, mosquitto_strerror(mrc));
}

/* Runs the loop until *flag is set, the connection ends or the deadline. */
static iotp_rc run_until(struct mosq_impl *im, const int *flag, int64_t deadline,
                         const char *doing, struct iotp_failure *why, struct iotp_err *err)
{
	for (;;) {
		int64_t left = deadline - util_mono_ms();
		int mrc;

		if (*flag)
			return IOTP_OK;
		if (left <= 0)
			return dev_fail(why, IOTP_CAUSE_TIMEOUT, 0, NULL, err, IOTP_ERR_TIMEOUT,
			                "%s %s: no answer in time", doing, im->where);
		errno = 0;
		mrc = mosquitto_loop(im->mosq, (int)(left < 100 ? left : 100), 1);
		if (*flag)
			return IOTP_OK;
		if (mrc != MOSQ_ERR_SUCCESS || im->lost)
			return net_fail(im, mrc != MOSQ_ERR_SUCCESS ? mrc : MOSQ_ERR_CONN_LOST, errno,
			                doing, why, err);
	}
}

static void drop(struct mosq_impl *im)
{
	if (im->mosq == NULL)
		return;
	if (im->connack == 0 && !im->lost)
		mosquitto_disconnect(im->mosq);
	mosquitto_destroy(im->mosq);
	im->mosq = NULL;
	ERR_clear_error();
}

static iotp_rc tconnect(void *impl, const struct iotp_mqtt_params *p,
                        iotp_mqtt_message_cb cb, void *ud, struct iotp_failure *why,
                        struct iotp_err *err)
{
	struct mosq_impl *im = impl;
	int timeout = p->timeout_ms > 0 ? p->timeout_ms : 10000;
	int64_t deadline = util_mono_ms() + timeout;
	int version = p->mqtt_version == 4 ? MQTT_PROTOCOL_V311 : MQTT_PROTOCOL_V5;
	int mrc, saved;
	iotp_rc rc;

	drop(im);
	memset(im, 0, sizeof(*im));
	im->connack = -1;
	im->on_message = cb;
	im->ud = ud;
	snprintf(im->where, sizeof(im->where), "%s:%d", p->host != NULL ? p->host : "?", p->port);
	if (p->host == NULL || p->client_id == NULL || p->client_id[0] == '\0' ||
	    p->ssl_ctx == NULL)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_INVALID,
		                "connect needs a host, a client id and a TLS context");
	pthread_once(&lib_once, lib_init);
	im->mosq = mosquitto_new(p->client_id, true, im);
	if (im->mosq == NULL)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_NOMEM,
		                "mosquitto_new: %s", strerror(errno));
	mosquitto_int_option(im->mosq, MOSQ_OPT_PROTOCOL_VERSION, version);
	mosquitto_int_option(im->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_int_option(im->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
	if (mosquitto_void_option(im->mosq, MOSQ_OPT_SSL_CTX, p->ssl_ctx) != MOSQ_ERR_SUCCESS) {
		rc = dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_INTERNAL,
		              "libmosquitto refused the TLS context");
		goto fail;
	}
	mosquitto_connect_v5_callback_set(im->mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(im->mosq, on_disconnect);
	mosquitto_subscribe_v5_callback_set(im->mosq, on_subscribe);
	mosquitto_publish_v5_callback_set(im->mosq, on_publish);
	mosquitto_message_v5_callback_set(im->mosq, on_message);
	/* The TCP connect blocks (immediate on a LAN); libmosquitto then makes
	 * the socket non-blocking and the TLS handshake runs in the loop, under
	 * our deadline. */
	errno = 0;
	mrc = mosquitto_connect(im->mosq, p->host, p->port, p->keepalive_s > 0 ? p->keepalive_s : 60);
	saved = errno;
	if (mrc != MOSQ_ERR_SUCCESS) {
		rc = net_fail(im, mrc, saved, "connect to", why, err);
		goto fail;
	}
	rc = run_until(im, &im->connack_seen, deadline, "connect to", why, err);
	if (!im->connack_seen)
		goto fail;
	if (im->connack != 0) {
		rc = dev_fail(why, IOTP_CAUSE_REFUSED, im->connack, NULL, err, IOTP_ERR_AUTH,
		              "%s refused the connection: %s (reason code %d)", im->where,
		              version == MQTT_PROTOCOL_V5 ? mosquitto_reason_string(im->connack)
		                                          : mosquitto_connack_string(im->connack),
		              im->connack);
		goto fail;
	}
	return IOTP_OK;
fail:
	drop(im);
	return rc;
}

static iotp_rc tsubscribe(void *impl, const char *const *filters, size_t count, int timeout_ms,
                          struct iotp_failure *why, struct iotp_err *err)
{
	struct mosq_impl *im = impl;
	int mrc;
	iotp_rc rc;

	if (im->mosq == NULL || im->connack != 0)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_STATE, "not connected");
	im->sub_done = im->sub_refused = 0;
	mrc = mosquitto_subscribe_multiple(im->mosq, &im->sub_mid, (int)count,
	                                   (char *const *)filters, 1, 0, NULL);
	if (mrc != MOSQ_ERR_SUCCESS)
		return net_fail(im, mrc, errno, "subscribe at", why, err);
	rc = run_until(im, &im->sub_done, util_mono_ms() + (timeout_ms > 0 ? timeout_ms : 10000),
	               "subscribe at", why, err);
	if (rc != IOTP_OK)
		return rc;
	if (im->sub_refused)
		return dev_fail(why, IOTP_CAUSE_REFUSED, im->sub_code, NULL, err, IOTP_ERR_DENIED,
		                "%s refused the subscription to %s (reason code 0x%02x)", im->where,
		                filters[im->sub_refused - 1], im->sub_code);
	return IOTP_OK;
}

static iotp_rc tpublish(void *impl, const char *topic, const void *payload, size_t len,
                        int wait_ack_ms, struct iotp_failure *why, struct iotp_err *err)
{
	struct mosq_impl *im = impl;
	int mrc;
	iotp_rc rc;

	if (im->mosq == NULL || im->connack != 0)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_STATE, "not connected");
	if (len > (size_t)MQTT_MAX_PAYLOAD)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_TOO_BIG,
		                "payload too big");
	im->pub_done = 0;
	im->pub_code = 0;
	mrc = mosquitto_publish_v5(im->mosq, &im->pub_mid, topic, (int)len, payload, 1, false, NULL);
	if (mrc != MOSQ_ERR_SUCCESS)
		return net_fail(im, mrc, errno, "publish to", why, err);
	if (wait_ack_ms <= 0)
		return IOTP_OK;
	rc = run_until(im, &im->pub_done, util_mono_ms() + wait_ack_ms, "publish to", why, err);
	if (rc != IOTP_OK)
		return rc;
	if (im->pub_code >= 0x80)
		return dev_fail(why, IOTP_CAUSE_REFUSED, im->pub_code, NULL, err, IOTP_ERR_DENIED,
		                "%s refused the publish to %s: %s (reason code 0x%02x)", im->where,
		                topic, mosquitto_reason_string(im->pub_code), im->pub_code);
	return IOTP_OK;
}

static iotp_rc tpoll(void *impl, int timeout_ms, struct iotp_failure *why, struct iotp_err *err)
{
	struct mosq_impl *im = impl;
	unsigned long before = im->delivered;
	int64_t deadline = util_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	if (im->mosq == NULL || im->connack != 0)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_STATE, "not connected");
	for (;;) {
		int64_t left = deadline - util_mono_ms();
		int mrc;

		errno = 0;
		mrc = mosquitto_loop(im->mosq, (int)(left <= 0 ? 0 : left < 100 ? left : 100), 1);
		if (mrc != MOSQ_ERR_SUCCESS || im->lost)
			return net_fail(im, mrc != MOSQ_ERR_SUCCESS ? mrc : MOSQ_ERR_CONN_LOST, errno,
			                "connection to", why, err);
		if (im->delivered != before || util_mono_ms() >= deadline)
			return IOTP_OK;
	}
}

static void tdisconnect(void *impl)
{
	drop(impl);
}

static void tdestroy(void *impl)
{
	drop(impl);
	free(impl);
}

static const struct iotp_transport_ops mosq_ops = {
	tconnect, tsubscribe, tpublish, tpoll, tdisconnect, tdestroy,
};

iotp_rc iotp_transport_mosquitto(iotp_transport **out, struct iotp_err *err)
{
	struct mosq_impl *im = calloc(1, sizeof(*im));
	iotp_rc rc;

	if (im == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	im->connack = -1;
	if ((rc = iotp_transport_new(&mosq_ops, im, out, err)) != IOTP_OK)
		free(im);
	return rc;
}
