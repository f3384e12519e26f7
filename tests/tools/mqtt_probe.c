/*
 * mqtt_probe: a small libmosquitto client for the broker e2e tests. One
 * connection (MQTT v5 over mutual TLS) that subscribes, then publishes,
 * then waits for messages, and optionally stays connected to see whether
 * and when the broker closes it. Every step is printed as one JSON line,
 * so a test can assert what a device would see:
 *
 *   {"event":"connack","rc":0}         (rc: the v5 reason code; 135 = refused)
 *   {"event":"connect_error","error":"..."}  (TCP or TLS failure)
 *   {"event":"suback","granted":[1]}   (128 = subscription refused)
 *   {"event":"puback","rc":0}          (135 = publish not authorized)
 *   {"event":"message","topic":"...","payload":<JSON value or string>,"bytes":N}
 *   {"event":"disconnect","rc":N,"after_ms":M}  (M: ms since --stay began)
 *   {"event":"done"}
 *
 * usage: mqtt_probe --port P --cafile F --cert F --key F --id ID
 *        [--host H] [--sub FILTER]... [--pub TOPIC] [--msg TEXT | --msg-file F]
 *        [--cbor] [--count N] [--timeout S] [--stay S] [--retain]
 * --cbor sends --msg (JSON text) encoded as CBOR and prints CBOR payloads
 * as JSON; --count waits for N messages after the publish.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "common/util.h"
#include "plugin/fleet_payload.c" /* the plugin's codec, for CBOR in and out */

#define MAX_SUBS 8

struct probe {
	const char *subs[MAX_SUBS];
	int nsubs;
	const char *pub_topic;
	char *msg;
	size_t msg_len;
	int cbor;
	int retain;
	int count;
	int received;
	int connected;
	int refused;
	int suback_done;
	int published;
	int puback_done;
	int disconnected;
	int64_t stay_start;
};

static void print_obj(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	if (s != NULL)
		printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(o);
}

static void on_connect(struct mosquitto *m, void *ud, int rc, int flags,
                       const mosquitto_property *props)
{
	struct probe *p = ud;

	(void)m;
	(void)flags;
	(void)props;
	print_obj(json_pack("{s:s, s:i}", "event", "connack", "rc", rc));
	if (rc != 0) {
		p->refused = 1;
		return;
	}
	p->connected = 1;
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
	struct probe *p = ud;
	json_t *arr = json_array();

	(void)m;
	(void)mid;
	(void)props;
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, json_integer(granted[i]));
	print_obj(json_pack("{s:s, s:o}", "event", "suback", "granted", arr));
	p->suback_done = 1;
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int rc,
                       const mosquitto_property *props)
{
	struct probe *p = ud;

	(void)m;
	(void)mid;
	(void)props;
	print_obj(json_pack("{s:s, s:i}", "event", "puback", "rc", rc));
	p->puback_done = 1;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	struct probe *p = ud;
	json_t *payload = NULL;

	(void)m;
	(void)props;
	if (msg->payloadlen > 0) {
		if (p->cbor)
			fleet_cbor_to_json(msg->payload, (size_t)msg->payloadlen, &payload, NULL);
		else
			payload = json_loadb(msg->payload, (size_t)msg->payloadlen, 0, NULL);
		if (payload == NULL)
			payload = json_stringn(msg->payload, (size_t)msg->payloadlen);
	}
	if (payload == NULL)
		payload = json_string("");
	print_obj(json_pack("{s:s, s:s, s:o, s:i}", "event", "message", "topic", msg->topic,
	                    "payload", payload, "bytes", msg->payloadlen));
	p->received++;
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc,
                          const mosquitto_property *props)
{
	struct probe *p = ud;

	(void)m;
	(void)props;
	print_obj(json_pack("{s:s, s:i, s:I}", "event", "disconnect", "rc", rc, "after_ms",
	                    (json_int_t)(p->stay_start ? util_mono_ms() - p->stay_start : -1)));
	p->disconnected = 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: mqtt_probe --port P --cafile F --cert F --key F --id ID "
	                "[--host H] [--sub F]... [--pub T] [--msg S|--msg-file F] [--cbor] "
	                "[--count N] [--timeout S] [--stay S] [--retain]\n");
	return 2;
}

/* Runs the network loop until done() or the deadline; 0 on deadline. */
static int loop_until(struct mosquitto *m, struct probe *p, int64_t deadline,
                      int (*done)(const struct probe *))
{
	while (!done(p)) {
		int rc;

		if (util_mono_ms() > deadline)
			return 0;
		rc = mosquitto_loop(m, 50, 1);
		if (rc != MOSQ_ERR_SUCCESS && !p->disconnected) {
			if (p->refused)
				return 1;
			print_obj(json_pack("{s:s, s:i, s:s, s:I}", "event", "disconnect", "rc", rc,
			                    "error", mosquitto_strerror(rc), "after_ms",
			                    (json_int_t)(p->stay_start ? util_mono_ms() - p->stay_start
			                                               : -1)));
			p->disconnected = 1;
		}
		if (p->disconnected || p->refused)
			return done(p);
	}
	return 1;
}

static int d_connack(const struct probe *p) { return p->connected || p->refused; }
static int d_suback(const struct probe *p) { return p->suback_done; }
static int d_puback(const struct probe *p) { return p->puback_done; }
static int d_count(const struct probe *p) { return p->received >= p->count; }
static int d_never(const struct probe *p) { return p->disconnected; }

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *cafile = NULL, *cert = NULL, *key = NULL, *id = NULL;
	const char *msg_file = NULL, *msg_text = NULL;
	int port = 0, timeout = 10, stay = 0, rc;
	struct probe p = {0};
	struct mosquitto *m;
	int64_t deadline;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int64_t n;

		if (strcmp(a, "--cbor") == 0) {
			p.cbor = 1;
			continue;
		}
		if (strcmp(a, "--retain") == 0) {
			p.retain = 1;
			continue;
		}
		if (v == NULL)
			return usage();
		i++;
		if (strcmp(a, "--host") == 0)
			host = v;
		else if (strcmp(a, "--cafile") == 0)
			cafile = v;
		else if (strcmp(a, "--cert") == 0)
			cert = v;
		else if (strcmp(a, "--key") == 0)
			key = v;
		else if (strcmp(a, "--id") == 0)
			id = v;
		else if (strcmp(a, "--sub") == 0 && p.nsubs < MAX_SUBS)
			p.subs[p.nsubs++] = v;
		else if (strcmp(a, "--pub") == 0)
			p.pub_topic = v;
		else if (strcmp(a, "--msg") == 0)
			msg_text = v;
		else if (strcmp(a, "--msg-file") == 0)
			msg_file = v;
		else if ((strcmp(a, "--port") == 0 || strcmp(a, "--count") == 0 ||
		          strcmp(a, "--timeout") == 0 || strcmp(a, "--stay") == 0) &&
		         util_parse_int64(v, 0, 65535, &n) == IOTP_OK) {
			if (a[2] == 'p')
				port = (int)n;
			else if (a[2] == 'c')
				p.count = (int)n;
			else if (a[2] == 't')
				timeout = (int)n;
			else
				stay = (int)n;
		} else
			return usage();
	}
	if (port == 0 || cafile == NULL || cert == NULL || key == NULL || id == NULL)
		return usage();
	if (msg_file != NULL) {
		if (util_read_file(msg_file, 1 << 20, &p.msg, &p.msg_len, NULL) != IOTP_OK) {
			fprintf(stderr, "mqtt_probe: cannot read %s\n", msg_file);
			return 1;
		}
	} else if (msg_text != NULL) {
		p.msg = strdup(msg_text);
		p.msg_len = strlen(msg_text);
	}
	if (p.cbor && p.msg != NULL && p.msg_len > 0) {
		json_t *j = json_loadb(p.msg, p.msg_len, 0, NULL);
		void *enc = NULL;
		size_t len = 0;

		if (j == NULL || fleet_encode(FLEET_CBOR, j, &enc, &len, NULL) != IOTP_OK) {
			/* not JSON: send the bytes as they are (malformed CBOR tests) */
			json_decref(j);
		} else {
			json_decref(j);
			free(p.msg);
			p.msg = enc;
			p.msg_len = len;
		}
	}

	mosquitto_lib_init();
	m = mosquitto_new(id, true, &p);
	if (m == NULL)
		return 1;
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_connect_v5_callback_set(m, on_connect);
	mosquitto_subscribe_v5_callback_set(m, on_subscribe);
	mosquitto_publish_v5_callback_set(m, on_publish);
	mosquitto_message_v5_callback_set(m, on_message);
	mosquitto_disconnect_v5_callback_set(m, on_disconnect);
	if ((rc = mosquitto_tls_set(m, cafile, NULL, cert, key, NULL)) != MOSQ_ERR_SUCCESS) {
		print_obj(json_pack("{s:s, s:s}", "event", "connect_error", "error",
		                    mosquitto_strerror(rc)));
		goto out;
	}
	deadline = util_mono_ms() + (int64_t)timeout * 1000;
	if ((rc = mosquitto_connect(m, host, port, 30)) != MOSQ_ERR_SUCCESS) {
		print_obj(json_pack("{s:s, s:s}", "event", "connect_error", "error",
		                    mosquitto_strerror(rc)));
		goto out;
	}
	if (!loop_until(m, &p, deadline, d_connack)) {
		print_obj(json_pack("{s:s, s:s}", "event", "timeout", "waiting", "connack"));
		goto out;
	}
	if (!p.connected || p.disconnected)
		goto out;
	if (p.nsubs > 0) {
		mosquitto_subscribe_multiple(m, NULL, p.nsubs, (char *const *)p.subs, 1, 0, NULL);
		if (!loop_until(m, &p, deadline, d_suback)) {
			print_obj(json_pack("{s:s, s:s}", "event", "timeout", "waiting", "suback"));
			goto out;
		}
	}
	if (p.pub_topic != NULL && !p.disconnected) {
		mosquitto_publish(m, NULL, p.pub_topic, (int)p.msg_len, p.msg, 1, p.retain);
		if (!loop_until(m, &p, deadline, d_puback)) {
			print_obj(json_pack("{s:s, s:s}", "event", "timeout", "waiting", "puback"));
			goto out;
		}
	}
	if (p.count > 0 && !p.disconnected && !loop_until(m, &p, deadline, d_count)) {
		print_obj(json_pack("{s:s, s:s, s:i}", "event", "timeout", "waiting", "messages",
		                    "received", p.received));
		goto out;
	}
	if (stay > 0 && !p.disconnected) {
		p.stay_start = util_mono_ms();
		printf("{\"event\":\"staying\"}\n");
		fflush(stdout);
		loop_until(m, &p, p.stay_start + (int64_t)stay * 1000, d_never);
	}
	if (!p.disconnected)
		mosquitto_disconnect(m);
out:
	printf("{\"event\":\"done\"}\n");
	mosquitto_destroy(m);
	mosquitto_lib_cleanup();
	free(p.msg);
	return 0;
}
