/*
 * fuzz_device_reply: the device's decoders of fleet-provisioning replies
 * (accepted of create / create-from-csr, accepted of provision, rejected)
 * in JSON and CBOR on arbitrary bytes. The first byte chooses the encoding
 * and the decoder; the rest is the reply. Beyond "no crash, no leak, no
 * allocation sized by the input's lies": a success yields well-formed
 * results (a 64-hex certificate id, a token, a JSON object for the device
 * configuration), a failure carries a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>

#include "device/dev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum iotp_fp_format f;
	struct iotp_err err;
	iotp_rc rc;

	if (size < 1)
		return 0;
	f = (data[0] & 1) ? IOTP_FP_CBOR : IOTP_FP_JSON;
	err.msg[0] = '\0';
	switch ((data[0] >> 1) & 3) {
	case 0:
	case 1: {
		struct iotp_fleet_cert c;
		int want_key = (data[0] >> 1) & 1;

		rc = fp_decode_cert_accepted(f, data + 1, size - 1, want_key, &c, &err);
		if (rc == IOTP_OK) {
			if (strlen(c.cert_id) != IOTP_CERT_ID_LEN || c.token == NULL ||
			    c.token[0] == '\0' || c.cert_pem == NULL ||
			    (want_key && c.private_key_pem == NULL) ||
			    (!want_key && c.private_key_pem != NULL))
				abort();
			iotp_fleet_cert_cleanup(&c);
		}
		break;
	}
	case 2: {
		struct iotp_fleet_thing t;

		rc = fp_decode_register_accepted(f, data + 1, size - 1, &t, &err);
		if (rc == IOTP_OK) {
			json_t *j = json_loads(t.device_configuration, 0, NULL);

			if (!json_is_object(j) || strlen(t.thing_name) > IOTP_THING_NAME_MAX)
				abort();
			json_decref(j);
			iotp_fleet_thing_cleanup(&t);
		}
		break;
	}
	default: {
		int status = -1;
		char code[IOTP_ERROR_CODE_MAX], msg[128];

		rc = fp_decode_rejected(f, data + 1, size - 1, &status, code, msg, sizeof(msg), &err);
		if (rc == IOTP_OK && (status < 0 || status > 999 || strlen(code) >= sizeof(code)))
			abort();
		break;
	}
	}
	if (rc != IOTP_OK && err.msg[0] == '\0')
		abort();
	ERR_clear_error();
	return 0;
}
