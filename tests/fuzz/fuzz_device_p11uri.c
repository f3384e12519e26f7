/*
 * fuzz_device_p11uri: the PKCS#11 URI parser (RFC 7512) on arbitrary text.
 * A URI that parses is written back without its PIN and must parse again
 * to the same token, object, id and module: what the agent stores is what
 * it will open.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "device/dev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p11_uri u, v;
	char *s, out[4096];
	struct iotp_err err;

	if (size > 4096)
		return 0;
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	err.msg[0] = '\0';
	if (p11_uri_parse(s, &u, &err) == IOTP_OK) {
		if (p11_uri_public(&u, out, sizeof(out), &err) == IOTP_OK) {
			if (p11_uri_parse(out, &v, &err) != IOTP_OK ||
			    strcmp(u.token, v.token) != 0 || strcmp(u.object, v.object) != 0 ||
			    u.id_len != v.id_len || memcmp(u.id, v.id, u.id_len) != 0 ||
			    strcmp(u.module_path, v.module_path) != 0 ||
			    strcmp(u.pin_source, v.pin_source) != 0 || v.has_pin)
				abort();
			p11_uri_cleanup(&v);
		}
		p11_uri_cleanup(&u);
	} else if (err.msg[0] == '\0') {
		abort();
	}
	free(s);
	return 0;
}
