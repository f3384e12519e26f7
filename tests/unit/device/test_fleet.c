/*
 * The fleet-provisioning client over the transport seam, against a
 * scripted broker double: the full create-from-csr + provision exchange in
 * JSON and CBOR, subscription before any publish, a rejection reported
 * with the service's statusCode and errorCode, a silent service reported
 * as a timeout within the bound, a refused subscription, an oversized
 * reply, a template name that would change the topic, and the server-key
 * variant.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cbor.h>
#include <jansson.h>

#include "common/util.h"
#include "device/dev.h"
#include "helpers.h"

#define FAKE_MAX 8

/* The broker double: answers a request topic with a scripted reply, on
 * its accepted or rejected topic, only if the client subscribed to it. */
struct fake {
	iotp_mqtt_message_cb cb;
	void *ud;
	char subs[16][256];
	int nsubs;
	int refuse_subscribe;
	char log[4096];
	struct {
		char req[256];
		int rejected;
		unsigned char *payload;
		size_t len;
	} script[FAKE_MAX];
	int nscript;
	struct {
		char topic[300];
		unsigned char *payload;
		size_t len;
	} q[FAKE_MAX];
	int nq;
	unsigned char last[8192];
	size_t last_len;
	char last_topic[256];
	int connects, disconnects;
};

static void logf_(struct fake *f, const char *what, const char *topic)
{
	size_t n = strlen(f->log);

	snprintf(f->log + n, sizeof(f->log) - n, "%s %s\n", what, topic);
}

static iotp_rc f_connect(void *impl, const struct iotp_mqtt_params *p, iotp_mqtt_message_cb cb,
                         void *ud, struct iotp_failure *why, struct iotp_err *err)
{
	struct fake *f = impl;

	(void)why;
	(void)err;
	assert_non_null(p->client_id);
	f->cb = cb;
	f->ud = ud;
	f->connects++;
	logf_(f, "connect", p->client_id);
	return IOTP_OK;
}

static iotp_rc f_subscribe(void *impl, const char *const *filters, size_t count, int timeout_ms,
                           struct iotp_failure *why, struct iotp_err *err)
{
	struct fake *f = impl;
	size_t i;

	(void)timeout_ms;
	for (i = 0; i < count; i++) {
		logf_(f, "subscribe", filters[i]);
		if (f->refuse_subscribe)
			return dev_fail(why, IOTP_CAUSE_REFUSED, 0x87, NULL, err, IOTP_ERR_DENIED,
			                "refused %s", filters[i]);
		util_strlcpy(f->subs[f->nsubs++], filters[i], sizeof(f->subs[0]));
	}
	return IOTP_OK;
}

static int subscribed(const struct fake *f, const char *topic)
{
	int i;

	for (i = 0; i < f->nsubs; i++)
		if (strcmp(f->subs[i], topic) == 0)
			return 1;
	return 0;
}

static iotp_rc f_publish(void *impl, const char *topic, const void *payload, size_t len,
                         int wait_ack_ms, struct iotp_failure *why, struct iotp_err *err)
{
	struct fake *f = impl;
	int i;

	(void)wait_ack_ms;
	(void)why;
	(void)err;
	logf_(f, "publish", topic);
	util_strlcpy(f->last_topic, topic, sizeof(f->last_topic));
	assert_true(len <= sizeof(f->last));
	if (len > 0)
		memcpy(f->last, payload, len);
	f->last_len = len;
	for (i = 0; i < f->nscript; i++) {
		char reply[300];

		if (strcmp(f->script[i].req, topic) != 0)
			continue;
		snprintf(reply, sizeof(reply), "%s/%s", topic,
		         f->script[i].rejected ? "rejected" : "accepted");
		if (!subscribed(f, reply))
			break; /* a broker delivers only to subscribers */
		util_strlcpy(f->q[f->nq].topic, reply, sizeof(f->q[0].topic));
		f->q[f->nq].payload = f->script[i].payload;
		f->q[f->nq].len = f->script[i].len;
		f->nq++;
		break;
	}
	return IOTP_OK;
}

static iotp_rc f_poll(void *impl, int timeout_ms, struct iotp_failure *why, struct iotp_err *err)
{
	struct fake *f = impl;
	int i;

	(void)why;
	(void)err;
	if (f->nq == 0) {
		struct timespec ts = { 0, (long)(timeout_ms < 20 ? timeout_ms : 20) * 1000000L };

		nanosleep(&ts, NULL);
		return IOTP_OK;
	}
	/* Noise first: a message on an unrelated topic must be ignored. */
	f->cb(f->ud, "$aws/things/other/shadow/update", "{}", 2);
	for (i = 0; i < f->nq; i++)
		f->cb(f->ud, f->q[i].topic, f->q[i].payload, f->q[i].len);
	f->nq = 0;
	return IOTP_OK;
}

static void f_disconnect(void *impl)
{
	((struct fake *)impl)->disconnects++;
}

static const struct iotp_transport_ops fake_ops = { f_connect, f_subscribe, f_publish,
	                                            f_poll, f_disconnect, NULL };

static struct fake *fk;
static iotp_transport *tp;
static SSL_CTX *dummy_ctx;
static char *cert_pem, *csr_pem;
static char cert_id[65];
static iotp_keystore *dev_key;

static int setup(void **state)
{
	X509 *x = NULL;
	struct iotp_csr_subject subj = { "fleet-device", NULL, NULL, NULL, NULL };
	size_t len;

	(void)state;
	fk = calloc(1, sizeof(*fk));
	if (fk == NULL || iotp_transport_new(&fake_ops, fk, &tp, NULL) != IOTP_OK)
		return -1;
	dummy_ctx = SSL_CTX_new(TLS_client_method());
	if (iotp_keystore_generate_memory(IOTP_KEY_EC_P256, &dev_key, NULL) != IOTP_OK ||
	    iotp_csr_create(dev_key, &subj, &csr_pem, &len, NULL) != IOTP_OK)
		return -1;
	cert_pem = th_issue(iotp_keystore_pkey(dev_key), "fleet-device");
	if (pki_cert_parse(cert_pem, strlen(cert_pem), &x, NULL) != IOTP_OK ||
	    pki_cert_id(x, cert_id, NULL) != IOTP_OK)
		return -1;
	X509_free(x);
	return 0;
}

static int teardown(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < fk->nscript; i++)
		free(fk->script[i].payload);
	iotp_transport_free(tp);
	free(fk);
	SSL_CTX_free(dummy_ctx);
	free(cert_pem);
	free(csr_pem);
	iotp_keystore_free(dev_key);
	return 0;
}

static void script(const char *req, int rejected, const void *payload, size_t len)
{
	int i = fk->nscript++;

	util_strlcpy(fk->script[i].req, req, sizeof(fk->script[i].req));
	fk->script[i].rejected = rejected;
	fk->script[i].payload = malloc(len + 1);
	memcpy(fk->script[i].payload, payload, len);
	fk->script[i].len = len;
}

static void script_json(const char *req, int rejected, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	script(req, rejected, s, strlen(s));
	free(s);
	json_decref(o);
}

static void opts(struct iotp_fleet_opts *o, enum iotp_fp_format fmt, unsigned ops)
{
	memset(o, 0, sizeof(*o));
	o->host = "127.0.0.1";
	o->port = 8883;
	o->claim_ctx = dummy_ctx;
	o->client_id = "claim-client";
	o->template_name = "FleetTpl";
	o->format = fmt;
	o->timeout_ms = 300;
	o->ops = ops;
	o->transport = tp;
}

static void test_json_flow(void **state)
{
	struct iotp_fleet_opts o;
	iotp_fleet *f = NULL;
	struct iotp_fleet_cert c;
	struct iotp_fleet_thing t;
	struct iotp_failure why;
	struct iotp_err err;
	struct iotp_param params[] = { { "SerialNumber", "SN-7" } };
	json_t *req;

	(void)state;
	script_json("$aws/certificates/create-from-csr/json", 0,
	            json_pack("{s:s,s:s,s:s}", "certificateId", cert_id, "certificatePem", cert_pem,
	                      "certificateOwnershipToken", "tok-1"));
	script_json("$aws/provisioning-templates/FleetTpl/provision/json", 0,
	            json_pack("{s:s,s:{s:s}}", "thingName", "thing-SN-7", "deviceConfiguration",
	                      "fw", "2.0"));
	opts(&o, IOTP_FP_JSON, IOTP_FLEET_OP_CREATE_FROM_CSR | IOTP_FLEET_OP_REGISTER);
	assert_int_equal(iotp_fleet_open(&o, &f, &why, &err), IOTP_OK);
	assert_int_equal(iotp_fleet_create_from_csr(f, csr_pem, strlen(csr_pem), &c, &why, &err),
	                 IOTP_OK);
	assert_string_equal(c.cert_id, cert_id);
	assert_string_equal(c.token, "tok-1");
	/* The request carried the CSR. */
	req = json_loadb((char *)fk->last, fk->last_len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(req, "certificateSigningRequest")),
	                    csr_pem);
	json_decref(req);
	assert_int_equal(iotp_fleet_register(f, c.token, params, 1, &t, &why, &err), IOTP_OK);
	assert_string_equal(t.thing_name, "thing-SN-7");
	assert_string_equal(t.device_configuration, "{\"fw\":\"2.0\"}");
	req = json_loadb((char *)fk->last, fk->last_len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(req, "certificateOwnershipToken")),
	                    "tok-1");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(req, "parameters"), "SerialNumber")),
		"SN-7");
	json_decref(req);
	iotp_fleet_close(f);
	/* All four reply topics subscribed in one go, before the first publish. */
	assert_non_null(strstr(fk->log,
	                       "connect claim-client\n"
	                       "subscribe $aws/certificates/create-from-csr/json/accepted\n"
	                       "subscribe $aws/certificates/create-from-csr/json/rejected\n"
	                       "subscribe $aws/provisioning-templates/FleetTpl/provision/json/accepted\n"
	                       "subscribe $aws/provisioning-templates/FleetTpl/provision/json/rejected\n"
	                       "publish $aws/certificates/create-from-csr/json\n"
	                       "publish $aws/provisioning-templates/FleetTpl/provision/json\n"));
	assert_int_equal(fk->disconnects, 1);
	iotp_fleet_cert_cleanup(&c);
	iotp_fleet_thing_cleanup(&t);
}

static unsigned char *cbor_reply(size_t *len, const char *const *kv)
{
	size_t n = 0, i, size = 0;
	unsigned char *out = NULL;
	cbor_item_t *m;

	while (kv[n] != NULL)
		n += 2;
	m = cbor_new_definite_map(n / 2);
	for (i = 0; i < n; i += 2)
		cbor_map_add(m, (struct cbor_pair){ cbor_move(cbor_build_string(kv[i])),
		                                    cbor_move(cbor_build_string(kv[i + 1])) });
	*len = cbor_serialize_alloc(m, &out, &size);
	cbor_decref(&m);
	return out;
}

static void test_cbor_flow_lazy_subscribe(void **state)
{
	const char *acc[] = { "certificateId", cert_id, "certificatePem", cert_pem,
	                      "certificateOwnershipToken", "tok-cbor", NULL };
	const char *reg[] = { "thingName", "cbor-thing", NULL };
	struct iotp_fleet_opts o;
	iotp_fleet *f = NULL;
	struct iotp_fleet_cert c;
	struct iotp_fleet_thing t;
	struct iotp_err err;
	unsigned char *p;
	size_t len;

	(void)state;
	p = cbor_reply(&len, acc);
	script("$aws/certificates/create-from-csr/cbor", 0, p, len);
	free(p);
	p = cbor_reply(&len, reg);
	script("$aws/provisioning-templates/FleetTpl/provision/cbor", 0, p, len);
	free(p);
	/* Nothing subscribed at open: each operation subscribes before it
	 * publishes. */
	opts(&o, IOTP_FP_CBOR, 0);
	assert_int_equal(iotp_fleet_open(&o, &f, NULL, &err), IOTP_OK);
	assert_int_equal(iotp_fleet_create_from_csr(f, csr_pem, strlen(csr_pem), &c, NULL, &err),
	                 IOTP_OK);
	assert_string_equal(c.token, "tok-cbor");
	assert_int_equal(iotp_fleet_register(f, c.token, NULL, 0, &t, NULL, &err), IOTP_OK);
	assert_string_equal(t.thing_name, "cbor-thing");
	assert_string_equal(t.device_configuration, "{}");
	iotp_fleet_close(f);
	assert_non_null(strstr(fk->log,
	                       "subscribe $aws/certificates/create-from-csr/cbor/rejected\n"
	                       "publish $aws/certificates/create-from-csr/cbor\n"
	                       "subscribe $aws/provisioning-templates/FleetTpl/provision/cbor/accepted\n"
	                       "subscribe $aws/provisioning-templates/FleetTpl/provision/cbor/rejected\n"
	                       "publish $aws/provisioning-templates/FleetTpl/provision/cbor\n"));
	iotp_fleet_cert_cleanup(&c);
	iotp_fleet_thing_cleanup(&t);
}

static void test_rejected(void **state)
{
	struct iotp_fleet_opts o;
	iotp_fleet *f = NULL;
	struct iotp_fleet_thing t;
	struct iotp_failure why;
	struct iotp_err err;

	(void)state;
	script_json("$aws/provisioning-templates/FleetTpl/provision/json", 1,
	            json_pack("{s:i,s:s,s:s}", "statusCode", 400, "errorCode",
	                      "InvalidCertificateOwnershipToken", "errorMessage",
	                      "the token is not valid"));
	opts(&o, IOTP_FP_JSON, IOTP_FLEET_OP_REGISTER);
	assert_int_equal(iotp_fleet_open(&o, &f, &why, &err), IOTP_OK);
	assert_int_equal(iotp_fleet_register(f, "stale", NULL, 0, &t, &why, &err), IOTP_ERR_TOKEN);
	assert_int_equal(why.cause, IOTP_CAUSE_REJECTED);
	assert_int_equal(why.status, 400);
	assert_string_equal(why.code, "InvalidCertificateOwnershipToken");
	assert_non_null(strstr(err.msg, "the token is not valid"));
	iotp_fleet_close(f);
}

static void test_timeout(void **state)
{
	struct iotp_fleet_opts o;
	iotp_fleet *f = NULL;
	struct iotp_fleet_cert c;
	struct iotp_failure why;
	struct iotp_err err;
	int64_t t0;

	(void)state;
	/* No script: the service never answers. */
	opts(&o, IOTP_FP_JSON, IOTP_FLEET_OP_CREATE_FROM_CSR);
	assert_int_equal(iotp_fleet_open(&o, &f, &why, &err), IOTP_OK);
	t0 = util_mono_ms();
	assert_int_equal(iotp_fleet_create_from_csr(f, csr_pem, strlen(csr_pem), &c, &why, &err),
	                 IOTP_ERR_TIMEOUT);
	assert_int_equal(why.cause, IOTP_CAUSE_TIMEOUT);
	assert_true(util_mono_ms() - t0 >= 300);
	assert_true(util_mono_ms() - t0 < 1500);
	iotp_fleet_close(f);
}

static void test_subscribe_refused(void **state)
{
	struct iotp_fleet_opts o;
	iotp_fleet *f = NULL;
	struct iotp_failure why;
	struct iotp_err err;

	(void)state;
	fk->refuse_subscribe = 1;
	opts(&o, IOTP_FP_JSON, IOTP_FLEET_OP_CREATE_FROM_CSR);
	assert_int_equal(iotp_fleet_open(&o, &f, &why, &err), IOTP_ERR_DENIED);
	assert_null(f);
	assert_int_equal(why.cause, IOTP_CAUSE_REFUSED);
	assert_int_equal(why.status, 0x87);
	/* Nothing was published to a topic whose reply could not arrive. */
	assert_null(strstr(fk->log, "publish"));
}

static void test_bad_replies_and_names(void **state)
{
	struct iotp_fleet_opts o;
	iotp_fleet *f = NULL;
	struct iotp_fleet_cert c;
	struct iotp_failure why;
	struct iotp_err err;
	unsigned char *big = calloc(1, DEV_REPLY_MAX + 10);
	static const char *const bad_names[] = { "a/b", "+", "#", "x y", "",
	                                         "0123456789012345678901234567890123456" };
	size_t i;

	(void)state;
	memset(big, ' ', DEV_REPLY_MAX + 10);
	script("$aws/certificates/create-from-csr/json", 0, big, DEV_REPLY_MAX + 10);
	free(big);
	opts(&o, IOTP_FP_JSON, IOTP_FLEET_OP_CREATE_FROM_CSR);
	assert_int_equal(iotp_fleet_open(&o, &f, &why, &err), IOTP_OK);
	assert_int_equal(iotp_fleet_create_from_csr(f, csr_pem, strlen(csr_pem), &c, &why, &err),
	                 IOTP_ERR_TOO_BIG);
	assert_int_equal(why.cause, IOTP_CAUSE_PROTOCOL);
	iotp_fleet_close(f);
	/* A template name that would change the topic never reaches it. */
	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		opts(&o, IOTP_FP_JSON, IOTP_FLEET_OP_REGISTER);
		o.template_name = bad_names[i];
		assert_int_equal(iotp_fleet_open(&o, &f, &why, &err), IOTP_ERR_INVALID);
		assert_int_equal(why.cause, IOTP_CAUSE_LOCAL);
	}
}

static void test_server_key(void **state)
{
	struct iotp_fleet_opts o;
	iotp_fleet *f = NULL;
	struct iotp_fleet_cert c;
	struct iotp_err err;
	char *key_pem = NULL;
	iotp_keystore *back = NULL;

	(void)state;
	assert_int_equal(pki_key_to_pem(iotp_keystore_pkey(dev_key), &key_pem, NULL), IOTP_OK);
	script_json("$aws/certificates/create/json", 0,
	            json_pack("{s:s,s:s,s:s,s:s}", "certificateId", cert_id, "certificatePem",
	                      cert_pem, "certificateOwnershipToken", "tok-k", "privateKey", key_pem));
	opts(&o, IOTP_FP_JSON, IOTP_FLEET_OP_CREATE);
	assert_int_equal(iotp_fleet_open(&o, &f, NULL, &err), IOTP_OK);
	assert_int_equal(iotp_fleet_create(f, &c, NULL, &err), IOTP_OK);
	/* An empty request payload, as the API defines it. */
	assert_int_equal(fk->last_len, 0);
	assert_string_equal(fk->last_topic, "$aws/certificates/create/json");
	assert_non_null(c.private_key_pem);
	assert_int_equal(iotp_keystore_from_pem(c.private_key_pem, strlen(c.private_key_pem), &back,
	                                        &err),
	                 IOTP_OK);
	assert_int_equal(EVP_PKEY_eq(iotp_keystore_pkey(back), iotp_keystore_pkey(dev_key)), 1);
	iotp_keystore_free(back);
	iotp_fleet_cert_cleanup(&c);
	iotp_fleet_close(f);
	iotp_free_secret(key_pem);
}

const struct CMUnitTest th_fleet_tests[] = {
	cmocka_unit_test_setup_teardown(test_json_flow, setup, teardown),
	cmocka_unit_test_setup_teardown(test_cbor_flow_lazy_subscribe, setup, teardown),
	cmocka_unit_test_setup_teardown(test_rejected, setup, teardown),
	cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	cmocka_unit_test_setup_teardown(test_subscribe_refused, setup, teardown),
	cmocka_unit_test_setup_teardown(test_bad_replies_and_names, setup, teardown),
	cmocka_unit_test_setup_teardown(test_server_key, setup, teardown),
};
const size_t th_fleet_count = sizeof(th_fleet_tests) / sizeof(th_fleet_tests[0]);
