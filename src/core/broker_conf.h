/*
 * The broker's files: the mosquitto.conf that `iotprov up` starts Mosquitto
 * with, and the capath directory of CA certificates the broker's TLS
 * listener trusts (iotprov's own CAs and every ACTIVE registered CA).
 *
 * The capath is a c_rehash-style directory: one PEM file per CA named
 * <certificate id>.pem and, for each, a symbolic link <subject hash>.<n>
 * that OpenSSL's hashed-directory lookup finds. OpenSSL reads that
 * directory when a handshake needs an issuer it has not loaded yet, so a
 * CA written here is trusted by a running broker without a restart. A CA
 * removed from here may stay in the broker's memory until it restarts; the
 * plugin refuses devices of an INACTIVE CA at connect anyway.
 *
 * The plugin rewrites the capath itself when the change feed reports a CA
 * registered, updated or deleted; `iotprov up` writes it once at start.
 */
#ifndef IOTP_BROKER_CONF_H
#define IOTP_BROKER_CONF_H

#include <stddef.h>

#include "common/buf.h"
#include "common/conf.h"
#include "common/err.h"
#include "core/store/store.h"

/* What broker_conf_format needs besides iotprov.conf. Paths absolute. */
struct broker_conf_opts {
	const char *plugin_path;  /* iotprov_mosquitto.so */
	const char *conf_path;    /* the iotprov.conf the plugin reads */
	const char *capath;       /* the capath directory */
	const char *listen;       /* "HOST:PORT" or "[V6]:PORT"; NULL: conf->mqtt_listen */
	const char *user;         /* `user` line (for a broker started as root); NULL or
	                           * "": none */
	int workers;              /* plugin worker threads; 0: the plugin's default */
};

/* Default locations under the data dir: DIR/broker/mosquitto.conf and
 * DIR/broker/capath (absolute when the data dir is). */
iotp_rc broker_conf_paths(const struct iotp_conf *conf, char *conf_out, size_t conf_size,
                          char *capath_out, size_t capath_size, struct iotp_err *err);

/* The user the broker should run as when started by root: the owner of the
 * data dir when that is not root, else $SUDO_USER when set, else "root".
 * "" when the caller is not root (no `user` line is needed). */
void broker_conf_default_user(const struct iotp_conf *conf, char *out, size_t size);

/* Appends the mosquitto.conf text: one TLS listener (require_certificate,
 * use_identity_as_username false, TLS 1.2 minimum, the server certificate
 * of the conf, the capath), set_tcp_nodelay, no anonymous access, no
 * persistence, log to stderr, and the plugin with its options
 * (plugin_opt_config, plugin_opt_capath, plugin_opt_workers).
 * IOTP_ERR_CONFIG for a bad listen address or a path holding a newline. */
iotp_rc broker_conf_format(const struct iotp_conf *conf, const struct broker_conf_opts *o,
                           struct buf *out, struct iotp_err *err);

/* broker_conf_format written to path (mode 0600, atomically). */
iotp_rc broker_conf_write(const struct iotp_conf *conf, const struct broker_conf_opts *o,
                          const char *path, struct iotp_err *err);

/* Makes dir hold exactly: the CA certificates of the cas table whose status
 * is ACTIVE, plus the root and issuing CA files of conf (when readable),
 * each as <id>.pem with its <hash>.<n> link; other *.pem files and hash
 * links in dir are removed. Creates dir (0755) when missing. Files are
 * replaced atomically, so a handshake never reads half a file. *count (may
 * be NULL) receives the number of CAs written. Uses only st (any thread
 * with its own connection may call it). */
iotp_rc broker_capath_sync(struct store *st, const struct iotp_conf *conf, const char *dir,
                           int *count, struct iotp_err *err);

#endif
