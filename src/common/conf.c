/*
 * The option table and the INI reader (see conf.h).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"

enum opt_type { OPT_STR, OPT_INT };

struct option {
	struct conf_option_info info;
	enum opt_type type;
	size_t offset;
	size_t size;     /* OPT_STR: buffer size */
	int64_t min, max; /* OPT_INT */
};

#define STR(sec, key, field, def, doc) \
	{{sec, key, def, doc}, OPT_STR, offsetof(struct iotp_conf, field), \
	 sizeof(((struct iotp_conf *)0)->field), 0, 0}
#define INT(sec, key, field, def, lo, hi, doc) \
	{{sec, key, def, doc}, OPT_INT, offsetof(struct iotp_conf, field), 0, lo, hi}

static const struct option options[] = {
	STR("service", "region", region, "us-east-1",
	    "AWS region name used in ARNs and accepted in SigV4 signatures."),
	STR("service", "account_id", account_id, "123456789012",
	    "12-digit account id used in ARNs."),
	STR("service", "log_level", log_level, "info",
	    "Minimum level logged: debug, info, warn, error or none."),
	STR("api", "listen", api_listen, "127.0.0.1:8443",
	    "HOST:PORT of the HTTPS control-plane API and EST endpoints."),
	STR("api", "tls_cert", api_tls_cert, "server.crt",
	    "Server certificate chain (PEM) for the API and the broker."),
	STR("api", "tls_key", api_tls_key, "server.key",
	    "Private key (PEM, mode 0600) of the server certificate."),
	INT("api", "max_body", api_max_body, "65536", 1024, 64 * 1024 * 1024,
	    "Largest request body accepted, in bytes; larger gets 413."),
	INT("api", "max_headers", api_max_headers, "16384", 1024, 1024 * 1024,
	    "Largest request header block accepted, in bytes."),
	INT("api", "timeout", api_timeout, "30", 1, 3600,
	    "Seconds a connection may take to send a request or stay idle."),
	INT("api", "max_connections", api_max_connections, "1024", 1, 1000000,
	    "Concurrent API connections; more are refused until one closes."),
	INT("api", "clock_skew", api_clock_skew, "900", 1, 86400,
	    "Seconds a SigV4 request date may differ from the server clock."),
	STR("mqtt", "listen", mqtt_listen, "127.0.0.1:8883",
	    "HOST:PORT of the MQTT over TLS listener of the broker."),
	STR("mqtt", "endpoint", mqtt_endpoint, "",
	    "Host name devices use to reach the broker (DescribeEndpoint); "
	    "empty means the listen host."),
	STR("store", "url", store_url, "sqlite:iotprov.db",
	    "Where the registry lives: sqlite:PATH (default, relative to the data dir)."),
	STR("pki", "key_type", pki_key_type, "ec-p256",
	    "Key type of the CAs and server key that init creates: ec-p256, ec-p384 or rsa-2048."),
	STR("pki", "root_cert", pki_root_cert, "root-ca.crt", "Root CA certificate (PEM)."),
	STR("pki", "root_key", pki_root_key, "root-ca.key", "Root CA private key (PEM, 0600)."),
	STR("pki", "issuing_cert", pki_issuing_cert, "issuing-ca.crt",
	    "Issuing CA certificate (PEM) that signs device certificates."),
	STR("pki", "issuing_key", pki_issuing_key, "issuing-ca.key",
	    "Issuing CA private key (PEM, 0600)."),
	INT("pki", "device_cert_days", pki_device_cert_days, "365", 1, 36500,
	    "Validity in days of device certificates iotprov issues."),
	INT("pki", "ca_days", pki_ca_days, "3650", 1, 36500,
	    "Validity in days of the CAs and server certificate init creates."),
	STR("pki", "server_names", pki_server_names, "localhost,127.0.0.1,::1",
	    "Comma-separated DNS names and IP addresses put in the server certificate."),
	INT("provisioning", "token_ttl", prov_token_ttl, "3600", 60, 86400,
	    "Seconds a certificate ownership token stays valid."),
	INT("provisioning", "claim_ttl", prov_claim_ttl, "300", 30, 86400,
	    "Seconds a trusted-user provisioning claim certificate stays valid."),
	INT("provisioning", "hook_timeout_ms", prov_hook_timeout_ms, "5000", 100, 60000,
	    "Milliseconds to wait for a pre-provisioning hook before refusing."),
	STR("provisioning", "import_dir", prov_import_dir, "import",
	    "Directory that bulk registration reads input files from (bucket/key under it)."),
};

const struct conf_option_info *conf_option_at(size_t i)
{
	return i < IOTP_ARRAY_LEN(options) ? &options[i].info : NULL;
}

static iotp_rc set_option(struct iotp_conf *conf, const struct option *o, const char *value,
                          struct iotp_err *err)
{
	char *field = (char *)conf + o->offset;

	if (o->type == OPT_STR) {
		if (util_strlcpy(field, value, o->size) >= o->size)
			return iotp_err_set(err, IOTP_ERR_CONFIG, "[%s] %s: value longer than %zu bytes",
			                    o->info.section, o->info.name, o->size - 1);
		return IOTP_OK;
	}
	{
		int64_t v;

		if (util_parse_int64(value, o->min, o->max, &v) != IOTP_OK)
			return iotp_err_set(err, IOTP_ERR_CONFIG,
			                    "[%s] %s: '%s' is not a whole number from %lld to %lld",
			                    o->info.section, o->info.name, value, (long long)o->min,
			                    (long long)o->max);
		memcpy(field, &v, sizeof(v));
	}
	return IOTP_OK;
}

void conf_init(struct iotp_conf *conf, const char *data_dir)
{
	memset(conf, 0, sizeof(*conf));
	util_strlcpy(conf->data_dir, data_dir ? data_dir : ".", sizeof(conf->data_dir));
	for (size_t i = 0; i < IOTP_ARRAY_LEN(options); i++) {
		iotp_rc rc = set_option(conf, &options[i], options[i].info.def, NULL);

		(void)rc; /* defaults are valid by construction (unit-tested) */
	}
}

struct load_ctx {
	struct iotp_conf *conf;
	struct iotp_err *err;
	iotp_rc rc;
};

static int on_value(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *c = user;

	if (c->rc != IOTP_OK)
		return 0;
	for (size_t i = 0; i < IOTP_ARRAY_LEN(options); i++) {
		if (strcmp(options[i].info.section, section) == 0 &&
		    strcmp(options[i].info.name, name) == 0) {
			c->rc = set_option(c->conf, &options[i], value, c->err);
			return c->rc == IOTP_OK;
		}
	}
	c->rc = iotp_err_set(c->err, IOTP_ERR_CONFIG,
	                     "unknown option [%s] %s (see docs/config.md)", section, name);
	return 0;
}

static iotp_rc finish_load(struct load_ctx *c, int line, const char *where)
{
	if (line == -1)
		return iotp_err_set(c->err, IOTP_ERR_IO, "cannot open %s", where);
	if (line == -2)
		return iotp_err_set(c->err, IOTP_ERR_NOMEM, "out of memory reading %s", where);
	if (c->rc != IOTP_OK) {
		if (c->err != NULL) {
			char msg[IOTP_ERR_MSG_MAX];

			util_strlcpy(msg, c->err->msg, sizeof(msg));
			iotp_err_set(c->err, c->rc, "%s:%d: %s", where, line, msg);
		}
		return c->rc;
	}
	if (line > 0)
		return iotp_err_set(c->err, IOTP_ERR_CONFIG, "%s:%d: syntax error", where, line);
	return IOTP_OK;
}

iotp_rc conf_load(struct iotp_conf *conf, const char *path, struct iotp_err *err)
{
	struct load_ctx c = {conf, err, IOTP_OK};
	int line = ini_parse(path, on_value, &c);

	return finish_load(&c, line, path);
}

iotp_rc conf_load_string(struct iotp_conf *conf, const char *text, struct iotp_err *err)
{
	struct load_ctx c = {conf, err, IOTP_OK};
	int line = ini_parse_string(text, on_value, &c);

	return finish_load(&c, line, "config");
}

iotp_rc conf_parse_listen(const char *s, char *host, size_t hostsize, int *port,
                          struct iotp_err *err)
{
	const char *colon, *h = s;
	size_t hlen;
	int64_t p;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return iotp_err_set(err, IOTP_ERR_CONFIG, "'%s' is not [ADDRESS]:PORT", s);
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return iotp_err_set(err, IOTP_ERR_CONFIG, "'%s' is not HOST:PORT", s);
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= hostsize)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "'%s': bad host", s);
	if (util_parse_int64(colon + 1, 0, 65535, &p) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "'%s': port must be 0 to 65535", s);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (int)p;
	return IOTP_OK;
}

iotp_rc conf_validate(const struct iotp_conf *conf, struct iotp_err *err)
{
	char host[256];
	int port;
	enum iotp_log_level lvl;
	iotp_rc rc;

	if ((rc = conf_parse_listen(conf->api_listen, host, sizeof(host), &port, err)) != IOTP_OK)
		return iotp_err_set(err, rc, "[api] listen: %s", err ? err->msg : "");
	if ((rc = conf_parse_listen(conf->mqtt_listen, host, sizeof(host), &port, err)) != IOTP_OK)
		return iotp_err_set(err, rc, "[mqtt] listen: %s", err ? err->msg : "");
	if (iotp_log_level_parse(conf->log_level, &lvl) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "[service] log_level: '%s' is not debug, info, warn, error or none",
		                    conf->log_level);
	if (strlen(conf->account_id) != 12 ||
	    strspn(conf->account_id, "0123456789") != 12)
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "[service] account_id: '%s' is not 12 digits", conf->account_id);
	if (conf->region[0] == '\0' || strspn(conf->region, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
	                                   strlen(conf->region))
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "[service] region: '%s' is not a region name like us-east-1",
		                    conf->region);
	if (strcmp(conf->pki_key_type, "ec-p256") != 0 && strcmp(conf->pki_key_type, "ec-p384") != 0 &&
	    strcmp(conf->pki_key_type, "rsa-2048") != 0)
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "[pki] key_type: '%s' is not ec-p256, ec-p384 or rsa-2048",
		                    conf->pki_key_type);
	if (strncmp(conf->store_url, "sqlite:", 7) != 0 &&
	    strncmp(conf->store_url, "postgresql://", 13) != 0 &&
	    strncmp(conf->store_url, "postgres://", 11) != 0)
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "[store] url: '%s' must start with sqlite: or postgresql://",
		                    conf->store_url);
	return IOTP_OK;
}

void conf_cleanup(struct iotp_conf *conf)
{
	(void)conf;
}

iotp_rc conf_path(const struct iotp_conf *conf, const char *value, char *out, size_t size,
                  struct iotp_err *err)
{
	int n;

	if (value[0] == '/')
		n = snprintf(out, size, "%s", value);
	else
		n = snprintf(out, size, "%s/%s", conf->data_dir, value);
	if (n < 0 || (size_t)n >= size)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "path too long: %s", value);
	return IOTP_OK;
}

iotp_rc conf_store_url(const struct iotp_conf *conf, char *out, size_t size,
                       struct iotp_err *err)
{
	char path[CONF_STR_MAX * 2];
	iotp_rc rc;
	int n;

	if (strncmp(conf->store_url, "sqlite:", 7) != 0) {
		if (util_strlcpy(out, conf->store_url, size) >= size)
			return iotp_err_set(err, IOTP_ERR_CONFIG, "store url too long");
		return IOTP_OK;
	}
	if ((rc = conf_path(conf, conf->store_url + 7, path, sizeof(path), err)) != IOTP_OK)
		return rc;
	n = snprintf(out, size, "sqlite:%s", path);
	if (n < 0 || (size_t)n >= size)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "store path too long");
	return IOTP_OK;
}

iotp_rc conf_format_defaults(struct buf *out)
{
	const char *section = "";
	iotp_rc rc;

	rc = buf_puts(out, "# iotprov configuration. Every option is listed with its default;\n"
	                   "# uncomment a line to change it. Relative paths are relative to the\n"
	                   "# directory of this file. Reference: docs/config.md\n");
	for (size_t i = 0; rc == IOTP_OK && i < IOTP_ARRAY_LEN(options); i++) {
		const struct conf_option_info *o = &options[i].info;

		if (strcmp(section, o->section) != 0) {
			rc = buf_printf(out, "\n[%s]\n", o->section);
			section = o->section;
		}
		if (rc == IOTP_OK)
			rc = buf_printf(out, "# %s\n;%s = %s\n", o->doc, o->name, o->def);
	}
	return rc;
}
