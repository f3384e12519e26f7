/*
 * iotprov.conf: an INI file read with libinih. Every option lives in one
 * table in conf.c with its default, bounds and one line of documentation;
 * conf_init() applies the defaults, conf_load() reads a file over them,
 * conf_validate() checks cross-option rules, conf_format_defaults() writes
 * the commented file that `iotprov init` creates, and docs/config.md is
 * checked against the same table by a unit test.
 *
 * Relative paths in the file are relative to the data directory, which is
 * the directory holding iotprov.conf.
 */
#ifndef IOTP_CONF_H
#define IOTP_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define CONF_STR_MAX 1024
#define CONF_FILE_MAX (256 * 1024) /* larger iotprov.conf files are refused */

struct iotp_conf {
	char data_dir[CONF_STR_MAX];

	/* [service] */
	char region[64];
	char account_id[16];
	char log_level[16];

	/* [api] */
	char api_listen[256];
	char api_tls_cert[CONF_STR_MAX];
	char api_tls_key[CONF_STR_MAX];
	int64_t api_max_body;
	int64_t api_max_headers;
	int64_t api_timeout;
	int64_t api_max_connections;
	int64_t api_clock_skew;

	/* [mqtt] */
	char mqtt_listen[256];
	char mqtt_endpoint[256];
	char mqtt_jitr_webhook[CONF_STR_MAX];

	/* [store] */
	char store_url[CONF_STR_MAX];

	/* [pki] */
	char pki_key_type[16];
	char pki_root_cert[CONF_STR_MAX];
	char pki_root_key[CONF_STR_MAX];
	char pki_issuing_cert[CONF_STR_MAX];
	char pki_issuing_key[CONF_STR_MAX];
	int64_t pki_device_cert_days;
	int64_t pki_ca_days;
	char pki_server_names[CONF_STR_MAX];

	/* [provisioning] */
	int64_t prov_token_ttl;
	int64_t prov_claim_ttl;
	int64_t prov_hook_timeout_ms;
	char prov_import_dir[CONF_STR_MAX];
	char prov_hook_secret_file[CONF_STR_MAX];
	char prov_hook_ca_file[CONF_STR_MAX];

	/* [est] */
	char est_auth[64];
};

/* Fills every option with its default; data_dir as given (may be NULL for
 * "."). */
void conf_init(struct iotp_conf *conf, const char *data_dir);
/* Reads path over the current values. Every error names the file and line
 * ("PATH:LINE: [section] key: why"): unknown sections or keys, bad numbers,
 * out-of-range or malformed values (listen addresses, key type, region...),
 * a key set twice (libinih reads an indented line as the continuation of
 * the value above), lines over 198 characters (libinih would cut them) and
 * syntax errors. A missing or unreadable file is IOTP_ERR_IO; everything
 * else IOTP_ERR_CONFIG. */
iotp_rc conf_load(struct iotp_conf *conf, const char *path, struct iotp_err *err);
/* As conf_load, from a string (for tests and fuzzing). */
iotp_rc conf_load_string(struct iotp_conf *conf, const char *text, struct iotp_err *err);
/* Checks every value again (for values set without conf_load, e.g. from
 * the command line): listen addresses parse, key type known... The message
 * names "[section] key". */
iotp_rc conf_validate(const struct iotp_conf *conf, struct iotp_err *err);
/* Nothing is heap-allocated today; kept so callers need not change later. */
void conf_cleanup(struct iotp_conf *conf);

/* Resolves a configured path against the data dir into out. */
iotp_rc conf_path(const struct iotp_conf *conf, const char *value, char *out, size_t size,
                  struct iotp_err *err);
/* The store URL with a relative SQLite path resolved against the data dir. */
iotp_rc conf_store_url(const struct iotp_conf *conf, char *out, size_t size,
                       struct iotp_err *err);

/* Splits "host:port" or "[v6]:port". */
iotp_rc conf_parse_listen(const char *s, char *host, size_t hostsize, int *port,
                          struct iotp_err *err);

/* Appends the commented default iotprov.conf. */
iotp_rc conf_format_defaults(struct buf *out);
/* As conf_format_defaults, but every option whose value in conf differs
 * from its default is written as an active "key = value" line (after a
 * "# default: ..." comment), so that conf_load of the result gives conf
 * back. Values longer than a line conf_load accepts make a file it refuses:
 * callers writing a file check it with conf_load_string first. */
iotp_rc conf_format(const struct iotp_conf *conf, struct buf *out);

/* Iterates the option table: for docs checks. Returns NULL past the end. */
struct conf_option_info {
	const char *section;
	const char *name;
	const char *def;
	const char *doc;
};
const struct conf_option_info *conf_option_at(size_t i);

#endif
