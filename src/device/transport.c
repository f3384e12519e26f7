/*
 * The transport seam: the provisioning logic talks MQTT only through
 * struct iotp_transport_ops (connect / subscribe / publish / poll), so it
 * can run over libmosquitto here (transport_mosq.c) and over another stack
 * (coreMQTT on a microcontroller, a test double in the unit tests)
 * elsewhere. Also "does this identity work": connect, publish, PUBACK.
 */
#include <stdlib.h>

#include "device/dev.h"

iotp_rc iotp_transport_new(const struct iotp_transport_ops *ops, void *impl,
                           iotp_transport **out, struct iotp_err *err)
{
	iotp_transport *t;

	if (ops == NULL || ops->connect == NULL || ops->subscribe == NULL ||
	    ops->publish == NULL || ops->poll == NULL || ops->disconnect == NULL)
		return iotp_err_set(err, IOTP_ERR_INVALID, "transport ops incomplete");
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	t->ops = ops;
	t->impl = impl;
	*out = t;
	return IOTP_OK;
}

void iotp_transport_free(iotp_transport *t)
{
	if (t == NULL)
		return;
	t->ops->disconnect(t->impl);
	if (t->ops->destroy != NULL)
		t->ops->destroy(t->impl);
	free(t);
}

static void ignore_message(void *ud, const char *topic, const void *payload, size_t len)
{
	(void)ud;
	(void)topic;
	(void)payload;
	(void)len;
}

iotp_rc iotp_mqtt_check(iotp_transport *t, const struct iotp_mqtt_params *p, const char *topic,
                        const void *payload, size_t len, struct iotp_failure *why,
                        struct iotp_err *err)
{
	iotp_transport *own = NULL;
	int timeout = p->timeout_ms > 0 ? p->timeout_ms : 10000;
	iotp_rc rc;

	if (t == NULL) {
		if ((rc = iotp_transport_mosquitto(&own, err)) != IOTP_OK)
			return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "%s",
			                err != NULL ? err->msg : "transport");
		t = own;
	}
	rc = t->ops->connect(t->impl, p, ignore_message, NULL, why, err);
	if (rc == IOTP_OK && topic != NULL)
		rc = t->ops->publish(t->impl, topic, payload, len, timeout, why, err);
	t->ops->disconnect(t->impl);
	iotp_transport_free(own);
	return rc;
}
