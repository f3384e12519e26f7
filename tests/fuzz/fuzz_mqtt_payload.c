/*
 * Fuzz target for the broker plugin's fleet-provisioning payload decoders:
 * the JSON and CBOR request payloads of the three request topics, as the
 * plugin decodes them on the broker's thread (src/plugin/fleet_payload.c,
 * compiled in here since the plugin is a module, not a library).
 *
 * The first input byte picks the topic (operation x encoding), the rest is
 * the payload. Every accepted request must re-encode, and every CBOR input
 * the converter accepts must encode back to CBOR that decodes to the same
 * JSON value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/fleet_payload.c"

static const char *const topics[] = {
	"$aws/certificates/create/json",
	"$aws/certificates/create/cbor",
	"$aws/certificates/create-from-csr/json",
	"$aws/certificates/create-from-csr/cbor",
	"$aws/provisioning-templates/fleet-1/provision/json",
	"$aws/provisioning-templates/fleet-1/provision/cbor",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fleet_topic t;
	struct fleet_request r;
	json_t *j = NULL;

	if (size < 1)
		return 0;
	if (!fleet_topic_parse(topics[data[0] % (sizeof(topics) / sizeof(topics[0]))], &t))
		abort();
	data++;
	size--;
	if (fleet_request_decode(&t, data, size, &r, NULL) == IOTP_OK) {
		json_t *obj = json_object();
		void *out = NULL;
		size_t len = 0;

		if (r.csr != NULL)
			json_object_set_new(obj, "certificateSigningRequest", json_string(r.csr));
		if (r.token != NULL)
			json_object_set_new(obj, "certificateOwnershipToken", json_string(r.token));
		if (r.parameters != NULL)
			json_object_set(obj, "parameters", r.parameters);
		if (fleet_encode(t.fmt, obj, &out, &len, NULL) == IOTP_OK) {
			struct fleet_request again;

			if (fleet_request_decode(&t, out, len, &again, NULL) != IOTP_OK)
				abort(); /* what we encode we must accept */
			fleet_request_cleanup(&again);
			free(out);
		}
		json_decref(obj);
		fleet_request_cleanup(&r);
	}
	if (fleet_cbor_to_json(data, size, &j, NULL) == IOTP_OK) {
		void *out = NULL;
		size_t len = 0;
		json_t *back = NULL;

		if (fleet_encode(FLEET_CBOR, j, &out, &len, NULL) == IOTP_OK) {
			if (fleet_cbor_to_json(out, len, &back, NULL) != IOTP_OK || !json_equal(j, back))
				abort();
			json_decref(back);
			free(out);
		}
		json_decref(j);
	}
	{
		/* topic parsing on arbitrary text */
		char topic[200];
		size_t n = size < sizeof(topic) - 1 ? size : sizeof(topic) - 1;

		memcpy(topic, data, n);
		topic[n] = '\0';
		fleet_topic_parse(topic, &t);
	}
	return 0;
}
