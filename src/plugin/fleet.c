/*
 * Fleet provisioning over MQTT (MOSQ_EVT_MESSAGE). On the broker thread a
 * request is recognised by its topic, decoded (fleet_payload.c) and queued
 * as a job together with who asked (client id, connection serial and the
 * claim certificate the connection authenticated with). A worker runs the
 * provisioning engine (prov_*) with its own core and formats the reply in
 * the request's encoding; the broker thread publishes it on the next tick
 * to that client only (mosquitto_broker_publish with the client id), and
 * only if the same connection is still there. A malformed request is
 * answered at once from the broker thread without touching the store.
 *
 * The request itself reaches no subscriber: it can carry an ownership token,
 * which is as good as a credential until it is used, so acl.c refuses every
 * delivery (iot:Receive) on a request topic. The MESSAGE callback still
 * lets the publish through, so that the device gets a plain PUBACK.
 */
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "common/util.h"
#include "core/provision.h"
#include "plugin/plugin.h"

/* Builds the reply result for topic t (accepted when ok) around an encoded
 * payload, which it takes (result_free wipes it, even on failure). */
static struct result *reply_payload(const struct fleet_topic *t, int ok, void *payload,
                                    size_t len, const char *client_id, uint64_t serial)
{
	struct result *r = NULL;
	char topic[sizeof(t->base) + 16];

	snprintf(topic, sizeof(topic), "%s/%s", t->base, ok ? "accepted" : "rejected");
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		OPENSSL_clear_free(payload, len);
		return NULL;
	}
	r->payload = payload;
	r->len = len;
	if ((r->topic = strdup(topic)) == NULL || (r->client_id = strdup(client_id)) == NULL) {
		result_free(r);
		return NULL;
	}
	r->kind = RESULT_PUBLISH;
	r->conn_serial = serial;
	return r;
}

/* Builds the reply result for topic t (accepted when ok). Takes obj. */
static struct result *reply_new(const struct fleet_topic *t, int ok, json_t *obj,
                                const char *client_id, uint64_t serial)
{
	struct iotp_err err;
	void *payload = NULL;
	size_t len = 0;

	if (obj == NULL)
		return NULL;
	if (fleet_encode(t->fmt, obj, &payload, &len, &err) != IOTP_OK) {
		LOG_ERROR("broker: reply on %s not encoded: %s", t->base, err.msg);
		json_decref(obj);
		return NULL;
	}
	json_decref(obj);
	return reply_payload(t, ok, payload, len, client_id, serial);
}

/* The rejected reply for a failure of the engine or of decoding. Client
 * errors carry the engine's message; internal ones a generic text (the
 * detail goes to the log only). */
static json_t *rejected_for(iotp_rc rc, const char *msg)
{
	const char *code = "InternalError";
	int status = 500;

	prov_error_shape(rc, &status, &code); /* decoding errors map as the engine's do */
	return fleet_rejected(status, code, status < 500 ? msg : "Internal error");
}

static void publish_now(struct result *r)
{
	if (r == NULL)
		return;
	mosquitto_broker_publish_copy(r->client_id, r->topic, (int)r->len, r->payload, 0, false,
	                              NULL);
	result_free(r);
}

int fleet_on_message(struct plugin *pl, struct mosquitto *client, const char *topic,
                     const void *payload, uint32_t len)
{
	struct fleet_topic t;
	struct conn *c;
	struct job *j = NULL;
	struct iotp_err err;
	iotp_rc rc;

	if (!fleet_topic_parse(topic, &t))
		return MOSQ_ERR_SUCCESS; /* an ordinary message */
	if ((c = conn_map_find(&pl->conns, client)) == NULL)
		return MOSQ_ERR_SUCCESS; /* not ours: no reply, and acl.c stops delivery */
	if ((j = calloc(1, sizeof(*j))) == NULL || (j->client_id = strdup(c->client_id)) == NULL) {
		LOG_ERROR("broker: %s from %s dropped: out of memory", topic, c->client_id);
		job_free(j);
		return MOSQ_ERR_SUCCESS;
	}
	j->kind = JOB_FLEET;
	j->conn_serial = c->serial;
	j->topic = t;
	j->t_start_ms = util_mono_ms();
	util_strlcpy(j->cert_id, c->cert_id, sizeof(j->cert_id));
	rc = fleet_request_decode(&t, payload, len, &j->req, &err);
	if (rc != IOTP_OK) {
		LOG_INFO("broker: client %s: malformed request on %s: %s", c->client_id, topic,
		         err.msg);
		publish_now(reply_new(&t, 0, rejected_for(rc, err.msg), c->client_id, c->serial));
		job_free(j);
		return MOSQ_ERR_SUCCESS;
	}
	if (work_submit(&pl->work, j) != IOTP_OK) {
		LOG_WARN("broker: client %s: %s refused, provisioning queue full", c->client_id,
		         topic);
		publish_now(reply_new(&t, 0, rejected_for(IOTP_ERR_THROTTLED, "Too many requests"),
		                      c->client_id, c->serial));
		job_free(j);
	}
	return MOSQ_ERR_SUCCESS;
}

int fleet_calls_hook(struct iotp_core *core, const struct job *j)
{
	struct prov_template t = {0};
	struct iotp_err err;
	int hooked;

	if (core == NULL || j->kind != JOB_FLEET || j->topic.op != FLEET_PROVISION)
		return 0;
	if (prov_template_describe(core, j->topic.template_name, &t, &err) != IOTP_OK)
		return 0;
	hooked = t.hook != NULL;
	prov_template_cleanup(&t);
	return hooked;
}

struct result *fleet_refusal(const struct job *j, iotp_rc rc, const char *msg)
{
	struct result *r = reply_new(&j->topic, 0, rejected_for(rc, msg), j->client_id,
	                             j->conn_serial);

	if (r != NULL)
		r->t_start_ms = j->t_start_ms;
	return r;
}

struct result *fleet_run(struct plugin *pl, struct iotp_core *core, struct job *j)
{
	struct prov_claimant who = {.cert_id = j->cert_id, .client_id = j->client_id};
	struct prov_new_cert nc = {0};
	struct prov_result res = {0};
	struct iotp_err err;
	struct result *r;
	json_t *obj = NULL;
	void *payload = NULL; /* create replies, encoded without jansson */
	size_t len = 0;
	iotp_rc rc;
	int ok = 0;

	iotp_err_clear(&err);
	if (core == NULL) {
		rc = iotp_err_set(&err, IOTP_ERR_DB, "the store is not available");
		goto out;
	}
	switch (j->topic.op) {
	case FLEET_CREATE:
		rc = prov_create_keys_and_certificate(core, &who, &nc, &err);
		if (rc == IOTP_OK) {
			/* The private key goes straight into the one payload buffer,
			 * which result_free wipes: no jansson or libcbor copies. */
			const char *kv[] = {"certificateId", nc.cert_id, "certificatePem", nc.cert_pem,
			                    "privateKey", nc.private_key_pem,
			                    "certificateOwnershipToken", nc.token};

			rc = fleet_encode_strings(j->topic.fmt, kv, 4, &payload, &len, &err);
		}
		break;
	case FLEET_CREATE_CSR:
		rc = prov_create_certificate_from_csr(core, &who, j->req.csr, strlen(j->req.csr), &nc,
		                                      &err);
		if (rc == IOTP_OK) {
			/* the ownership token is a credential until used: wiped too */
			const char *kv[] = {"certificateId", nc.cert_id, "certificatePem", nc.cert_pem,
			                    "certificateOwnershipToken", nc.token};

			rc = fleet_encode_strings(j->topic.fmt, kv, 3, &payload, &len, &err);
		}
		break;
	case FLEET_PROVISION:
		rc = prov_register_thing(core, &who, j->topic.template_name, j->req.token,
		                         j->req.parameters, pl->hook, &res, &err);
		if (rc == IOTP_OK)
			obj = json_pack("{s:O, s:s}", "deviceConfiguration", res.device_configuration,
			                "thingName", res.thing_name);
		break;
	default:
		rc = iotp_err_set(&err, IOTP_ERR_INTERNAL, "unknown request");
	}
	if (rc == IOTP_OK && obj == NULL && payload == NULL)
		rc = iotp_err_set(&err, IOTP_ERR_NOMEM, "out of memory building the reply");
	ok = rc == IOTP_OK;
out:
	if (ok) {
		LOG_INFO("broker: client %s: %s accepted in %lld ms%s%s", j->client_id, j->topic.base,
		         (long long)(util_mono_ms() - j->t_start_ms),
		         res.thing_name[0] != '\0' ? ", thing " : "", res.thing_name);
	} else {
		LOG_INFO("broker: client %s: %s rejected: %s", j->client_id, j->topic.base, err.msg);
		obj = rejected_for(rc, err.msg);
	}
	if (payload != NULL)
		r = reply_payload(&j->topic, ok, payload, len, j->client_id, j->conn_serial);
	else
		r = reply_new(&j->topic, ok, obj, j->client_id, j->conn_serial);
	if (r != NULL)
		r->t_start_ms = j->t_start_ms;
	prov_new_cert_cleanup(&nc);
	prov_result_cleanup(&res);
	return r;
}
