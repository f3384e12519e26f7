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
};

/* Fills every option with its default; data_dir as given (may be NULL for
 * "."). */
void conf_init(struct iotp_conf *conf, const char *data_dir);
/* Reads path over the current values. Unknown sections or keys, bad numbers
 * and out-of-range values are errors naming the line. */
iotp_rc conf_load(struct iotp_conf *conf, const char *path, struct iotp_err *err);
/* As conf_load, from a string (for tests and fuzzing). */
iotp_rc conf_load_string(struct iotp_conf *conf, const char *text, struct iotp_err *err);
/* Cross-option checks (listen addresses parse, key type known...). */
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

/* Iterates the option table: for docs checks. Returns NULL past the end. */
struct conf_option_info {
	const char *section;
	const char *name;
	const char *def;
	const char *doc;
};
const struct conf_option_info *conf_option_at(size_t i);

#endif
