/*
 * libFuzzer target for the iotprov.conf reader (src/common/conf.c, over
 * libinih): any bytes given to conf_load_string must give IOTP_OK or a
 * config error with a message, never a crash or a leak. When the text
 * loads, the configuration it produced must survive a round trip through
 * conf_format (the file `iotprov init` writes) unchanged: the writer and
 * the reader agree on quoting, comments and sections. The listen parser
 * and the path helpers run on what was loaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/conf.h"
#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct iotp_conf *a, *b;
	struct iotp_err err;
	char *text, host[256], out[CONF_STR_MAX * 2 + 16];
	int port;
	struct buf f;

	if (size > 64 * 1024)
		return 0;
	iotp_log_set_level(IOTP_LOG_NONE);
	text = malloc(size + 1);
	a = malloc(sizeof(*a));
	b = malloc(sizeof(*b));
	if (text == NULL || a == NULL || b == NULL)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	conf_init(a, "/var/lib/iotprov");
	conf_init(b, "/var/lib/iotprov");

	if (conf_load_string(a, text, &err) != IOTP_OK) {
		if (err.rc != IOTP_ERR_CONFIG || err.msg[0] == '\0')
			abort(); /* every refusal is a config error that says why */
		goto done;
	}
	(void)conf_validate(a, &err);
	(void)conf_parse_listen(a->api_listen, host, sizeof(host), &port, &err);
	(void)conf_parse_listen(a->mqtt_listen, host, sizeof(host), &port, &err);
	(void)conf_path(a, a->api_tls_cert, out, sizeof(out), &err);
	(void)conf_store_url(a, out, sizeof(out), &err);

	buf_init(&f, 0);
	if (conf_format(a, &f) != IOTP_OK)
		abort();
	if (conf_load_string(b, f.data, &err) == IOTP_OK) {
		if (memcmp(a, b, sizeof(*a)) != 0)
			abort(); /* what was written is not what is read back */
	} else if (strstr(err.msg, "line longer than") == NULL) {
		/* "key=value" of 198 characters becomes "key = value": the only
		 * way a loaded value may not fit a line of the written file. */
		abort();
	}
	buf_cleanup(&f);
done:
	free(text);
	free(a);
	free(b);
	return 0;
}
