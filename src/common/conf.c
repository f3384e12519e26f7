/*
 * The option table and the INI reader (see conf.h).
 *
 * Values are checked as they are read, so a bad value is reported with the
 * file and line it came from; conf_validate() repeats the checks for values
 * set by other means (command-line overrides) and adds the cross-option
 * rules. libinih, as Debian builds it, silently cuts lines at 199 bytes and
 * treats an indented line as the continuation of the previous value: both
 * are turned into errors here rather than surprises.
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"

/* Longest line libinih reads whole (its INI_MAX_LINE of 200 bytes holds the
 * line, a '\r' and the NUL). */
#define CONF_LINE_MAX 198

enum opt_type { OPT_STR, OPT_INT };

/* Checks one string value; the message names neither section nor key (the
 * caller adds them). */
typedef iotp_rc (*opt_check_fn)(const char *value, struct iotp_err *err);

struct option {
	struct conf_option_info info;
	enum opt_type type;
	size_t offset;
	size_t size;     /* OPT_STR: buffer size */
	int64_t min, max; /* OPT_INT */
	opt_check_fn check; /* OPT_STR: NULL when any text goes */
};

#define STRC(sec, key, field, def, check, doc) \
	{{sec, key, def, doc}, OPT_STR, offsetof(struct iotp_conf, field), \
	 sizeof(((struct iotp_conf *)0)->field), 0, 0, check}
#define STR(sec, key, field, def, doc) STRC(sec, key, field, def, NULL, doc)
#define INT(sec, key, field, def, lo, hi, doc) \
	{{sec, key, def, doc}, OPT_INT, offsetof(struct iotp_conf, field), 0, lo, hi, NULL}

static iotp_rc check_region(const char *v, struct iotp_err *err)
{
	if (v[0] == '\0' || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v))
		return iotp_err_set(err, IOTP_ERR_CONFIG, "'%s' is not a region name like us-east-1",
		                    v);
	return IOTP_OK;
}

static iotp_rc check_account(const char *v, struct iotp_err *err)
{
	if (strlen(v) != 12 || strspn(v, "0123456789") != 12)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "'%s' is not 12 digits", v);
	return IOTP_OK;
}

static iotp_rc check_log_level(const char *v, struct iotp_err *err)
{
	enum iotp_log_level lvl;

	if (iotp_log_level_parse(v, &lvl) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "'%s' is not debug, info, warn, error or none", v);
	return IOTP_OK;
}

static iotp_rc check_listen(const char *v, struct iotp_err *err)
{
	char host[256];
	int port;

	return conf_parse_listen(v, host, sizeof(host), &port, err);
}

static iotp_rc check_key_type(const char *v, struct iotp_err *err)
{
	if (strcmp(v, "ec-p256") != 0 && strcmp(v, "ec-p384") != 0 && strcmp(v, "rsa-2048") != 0)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "'%s' is not ec-p256, ec-p384 or rsa-2048",
		                    v);
	return IOTP_OK;
}

/* [est] auth: a comma-separated subset of list, claim, basic. */
static iotp_rc check_est_auth(const char *v, struct iotp_err *err)
{
	const char *p = v;

	while (*p != '\0') {
		size_t n = strcspn(p, ",");

		if (!((n == 4 && strncmp(p, "list", 4) == 0) || (n == 5 && strncmp(p, "claim", 5) == 0) ||
		      (n == 5 && strncmp(p, "basic", 5) == 0)))
			return iotp_err_set(err, IOTP_ERR_CONFIG,
			                    "must be a comma-separated list of list, claim and basic");
		p += n;
		if (*p == ',')
			p++;
	}
	return IOTP_OK;
}

/* The scheme only: the broker also refuses http:// to a host that is not
 * loopback (prov_hook_url_ok), as for pre-provisioning hooks. */
static iotp_rc check_webhook_url(const char *v, struct iotp_err *err)
{
	if (v[0] != '\0' && strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0)
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "'%s' must start with https:// (or http:// to a loopback host)", v);
	return IOTP_OK;
}

static iotp_rc check_store_url(const char *v, struct iotp_err *err)
{
	if (strncmp(v, "sqlite:", 7) != 0 && strncmp(v, "postgresql://", 13) != 0 &&
	    strncmp(v, "postgres://", 11) != 0)
		return iotp_err_set(err, IOTP_ERR_CONFIG,
		                    "'%s' must start with sqlite: or postgresql://", v);
	if (strcmp(v, "sqlite:") == 0)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "'sqlite:' needs a file name after it");
	return IOTP_OK;
}

static const struct option options[] = {
	STRC("service", "region", region, "us-east-1", check_region,
	    "AWS region name used in ARNs and accepted in SigV4 signatures."),
	STRC("service", "account_id", account_id, "123456789012", check_account,
	    "12-digit account id used in ARNs."),
	STRC("service", "log_level", log_level, "info", check_log_level,
	    "Minimum level logged: debug, info, warn, error or none."),
	STRC("api", "listen", api_listen, "127.0.0.1:8443", check_listen,
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
	STRC("mqtt", "listen", mqtt_listen, "127.0.0.1:8883", check_listen,
	    "HOST:PORT of the MQTT over TLS listener of the broker."),
	STR("mqtt", "endpoint", mqtt_endpoint, "",
	    "Host name devices use to reach the broker (DescribeEndpoint); "
	    "empty means the listen host."),
	STRC("mqtt", "jitr_webhook", mqtt_jitr_webhook, "", check_webhook_url,
	     "URL the broker POSTs each JITR registered event to (signed like the "
	     "pre-provisioning hook); empty means none."),
	STRC("store", "url", store_url, "sqlite:iotprov.db", check_store_url,
	    "Where the registry lives: sqlite:PATH (default, relative to the data dir)."),
	STRC("pki", "key_type", pki_key_type, "ec-p256", check_key_type,
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
	STR("provisioning", "hook_secret_file", prov_hook_secret_file, "hook-secret",
	    "File (mode 0600) holding the key that signs pre-provisioning hook requests "
	    "(HMAC-SHA256); created with a random key on first use when missing."),
	STR("provisioning", "hook_ca_file", prov_hook_ca_file, "",
	    "PEM CA bundle that verifies https:// pre-provisioning hooks; empty means the "
	    "system trust store."),
	STRC("est", "auth", est_auth, "list,claim,basic", check_est_auth,
	     "How EST simpleenroll may be authorized: list (the CSR's key is on an authorized "
	     "key list), claim (a provisioning claim certificate over mutual TLS), basic (HTTP "
	     "Basic with an access key allowed to provision the template); comma-separated."),
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
		if (strlen(value) >= o->size)
			return iotp_err_set(err, IOTP_ERR_CONFIG, "[%s] %s: value longer than %zu bytes",
			                    o->info.section, o->info.name, o->size - 1);
		/* "key =;x" reads as ";x", but "key = ;x" as "" (an inline
		 * comment): such a value could not be written back. */
		if (value[0] == ';')
			return iotp_err_set(err, IOTP_ERR_CONFIG,
			                    "[%s] %s: a value cannot start with ';' (it starts a comment)",
			                    o->info.section, o->info.name);
		if (o->check != NULL) {
			struct iotp_err cerr;

			if (o->check(value, &cerr) != IOTP_OK)
				return iotp_err_set(err, IOTP_ERR_CONFIG, "[%s] %s: %s", o->info.section,
				                    o->info.name, cerr.msg);
		}
		util_strlcpy(field, value, o->size);
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
	unsigned char seen[IOTP_ARRAY_LEN(options)];
};

static int on_value(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *c = user;

	if (c->rc != IOTP_OK)
		return 0;
	for (size_t i = 0; i < IOTP_ARRAY_LEN(options); i++) {
		if (strcmp(options[i].info.section, section) == 0 &&
		    strcmp(options[i].info.name, name) == 0) {
			if (c->seen[i]) {
				c->rc = iotp_err_set(c->err, IOTP_ERR_CONFIG,
				                     "[%s] %s is set a second time (an indented line "
				                     "continues the value above it)",
				                     section, name);
				return 0;
			}
			c->seen[i] = 1;
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
	if (line == -2)
		return iotp_err_set(c->err, IOTP_ERR_NOMEM, "out of memory reading %s", where);
	if (c->rc != IOTP_OK)
		return iotp_err_prefix(c->err, c->rc, "%s:%d", where, line);
	if (line != 0)
		return iotp_err_set(c->err, IOTP_ERR_CONFIG,
		                    "%s:%d: syntax error (expected [section], key = value or a "
		                    "comment)",
		                    where, line);
	return IOTP_OK;
}

/* Refuses what libinih would misread (a NUL byte, a line it would cut) and
 * finds syntax errors first, with libinih's own rules, so that every error
 * is reported at its line: libinih goes on after a syntax error and only
 * returns the first line that had one, while a handler error on a later
 * line would be reported at that earlier line. */
static iotp_rc check_text(const char *text, size_t len, const char *where,
                          struct iotp_err *err)
{
	const char *p = text, *end = text + len;
	int line = 1, after_key = 0;

	if (memchr(text, '\0', len) != NULL) {
		for (const char *q = text; *q != '\0'; q++)
			line += *q == '\n';
		return iotp_err_set(err, IOTP_ERR_CONFIG, "%s:%d: NUL byte in the file", where, line);
	}
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) /* a UTF-8 BOM */
		p += 3;
	for (; p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl != NULL ? nl : end, *s = p;

		if (eol - p > CONF_LINE_MAX)
			return iotp_err_set(err, IOTP_ERR_CONFIG, "%s:%d: line longer than %d characters",
			                    where, line, CONF_LINE_MAX);
		while (s < eol && isspace((unsigned char)*s))
			s++;
		if (s == eol || *s == ';' || *s == '#') {
			/* blank or comment */
		} else if (after_key && s > p) {
			/* an indented line continues the value above (on_value
			 * refuses it as a second setting, naming the option) */
		} else if (*s == '[') {
			const char *close = memchr(s, ']', (size_t)(eol - s));

			if (close == NULL)
				return iotp_err_set(err, IOTP_ERR_CONFIG,
				                    "%s:%d: syntax error: section header without ']'", where,
				                    line);
			after_key = 0;
		} else if (memchr(s, '=', (size_t)(eol - s)) == NULL &&
		           memchr(s, ':', (size_t)(eol - s)) == NULL) {
			return iotp_err_set(err, IOTP_ERR_CONFIG,
			                    "%s:%d: syntax error (expected [section], key = value or a "
			                    "comment)",
			                    where, line);
		} else {
			after_key = 1;
		}
		p = nl != NULL ? nl + 1 : end;
	}
	return IOTP_OK;
}

static iotp_rc load_text(struct iotp_conf *conf, const char *text, size_t len,
                         const char *where, struct iotp_err *err)
{
	struct load_ctx *c;
	iotp_rc rc;
	int line;

	if ((rc = check_text(text, len, where, err)) != IOTP_OK)
		return rc;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory reading %s", where);
	c->conf = conf;
	c->err = err;
	c->rc = IOTP_OK;
	line = ini_parse_string(text, on_value, c);
	rc = finish_load(c, line, where);
	free(c);
	return rc;
}

iotp_rc conf_load(struct iotp_conf *conf, const char *path, struct iotp_err *err)
{
	char *text = NULL;
	size_t len = 0;
	iotp_rc rc;

	rc = util_read_file(path, CONF_FILE_MAX, &text, &len, err);
	if (rc == IOTP_ERR_NOT_FOUND)
		return iotp_err_set(err, IOTP_ERR_IO, "cannot open %s: no such file", path);
	if (rc == IOTP_ERR_TOO_BIG)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "%s is larger than %d bytes", path,
		                    CONF_FILE_MAX);
	if (rc != IOTP_OK)
		return rc; /* util_read_file named the file and the reason */
	rc = load_text(conf, text, len, path, err);
	free(text);
	return rc;
}

iotp_rc conf_load_string(struct iotp_conf *conf, const char *text, struct iotp_err *err)
{
	return load_text(conf, text, strlen(text), "config", err);
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
	/* Every checked option again: values may have been set without
	 * conf_load (command-line overrides). */
	for (size_t i = 0; i < IOTP_ARRAY_LEN(options); i++) {
		const struct option *o = &options[i];
		struct iotp_err cerr;

		if (o->type != OPT_STR || o->check == NULL)
			continue;
		if (o->check((const char *)conf + o->offset, &cerr) != IOTP_OK)
			return iotp_err_set(err, IOTP_ERR_CONFIG, "[%s] %s: %s", o->info.section,
			                    o->info.name, cerr.msg);
	}
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

/* The current value of option o as text into out. */
static void option_text(const struct iotp_conf *conf, const struct option *o, char *out,
                        size_t size)
{
	const char *field = (const char *)conf + o->offset;

	if (o->type == OPT_STR) {
		util_strlcpy(out, field, size);
	} else {
		int64_t v;

		memcpy(&v, field, sizeof(v));
		snprintf(out, size, "%lld", (long long)v);
	}
}

/* Appends doc as "# " comment lines of at most 78 characters. */
static iotp_rc format_doc(struct buf *out, const char *doc)
{
	const char *p = doc;
	iotp_rc rc = IOTP_OK;

	while (rc == IOTP_OK && *p != '\0') {
		size_t n = strlen(p), cut = n;

		if (n > 76) {
			cut = 76;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (cut == 0) /* one long word: leave it whole */
				cut = strcspn(p, " ");
		}
		rc = buf_printf(out, "# %.*s\n", (int)cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
	return rc;
}

/* The commented file; with conf, options that differ from their default are
 * written as active lines. */
static iotp_rc format_file(const struct iotp_conf *conf, struct buf *out)
{
	const char *section = "";
	char value[CONF_STR_MAX];
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
			rc = format_doc(out, o->doc);
		if (rc != IOTP_OK)
			break;
		if (conf != NULL) {
			option_text(conf, &options[i], value, sizeof(value));
			if (strcmp(value, o->def) != 0) {
				rc = buf_printf(out, "# default: %s\n%s = %s\n", o->def, o->name, value);
				continue;
			}
		}
		rc = buf_printf(out, ";%s = %s\n", o->name, o->def);
	}
	return rc;
}

iotp_rc conf_format_defaults(struct buf *out)
{
	return format_file(NULL, out);
}

iotp_rc conf_format(const struct iotp_conf *conf, struct buf *out)
{
	return format_file(conf, out);
}
