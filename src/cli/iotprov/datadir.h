/*
 * The data directory as the CLI sees it: its fixed file names (the
 * "Command-line and file contract" of ARCHITECTURE.md), loading its
 * iotprov.conf with messages that say what to do, opening its store for
 * local administration, and the AWS shared-credentials file that holds the
 * first admin key.
 */
#ifndef IOTP_CLI_DATADIR_H
#define IOTP_CLI_DATADIR_H

#include <limits.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/conf.h"
#include "common/err.h"
#include "core/core.h"

#define DATADIR_CONF "iotprov.conf"
#define DATADIR_CA_BUNDLE "ca-bundle.pem"
#define DATADIR_CREDENTIALS "admin-credentials"
#define DATADIR_PROFILE "iotprov"

struct datadir {
	char path[PATH_MAX];      /* absolute */
	char conf_file[PATH_MAX]; /* absolute path of iotprov.conf */
	struct iotp_conf *conf;   /* owned: loaded and validated */
};

/* Opens the data directory dir (relative or absolute): resolves it, loads
 * and validates its iotprov.conf. A directory that does not exist or holds
 * no iotprov.conf is IOTP_ERR_NOT_FOUND with a message telling to run
 * `iotprov init`; a bad file is IOTP_ERR_CONFIG naming file, line and key.
 * Release with datadir_close(). */
iotp_rc datadir_open(struct datadir *d, const char *dir, struct iotp_err *err);
/* NULL-safe; frees the configuration. */
void datadir_close(struct datadir *d);

/* Absolute path of a file in the data directory into out. */
iotp_rc datadir_file(const struct datadir *d, const char *name, char *out, size_t size,
                     struct iotp_err *err);

/* Opens the data directory's store into core (no CA loaded): for managing
 * access keys directly. Release with core_close(). */
iotp_rc datadir_core_open(const struct datadir *d, struct iotp_core *core,
                          struct iotp_err *err);

/* The URL a local client uses for the API configured as [api] listen:
 * "https://HOST:PORT", with a wildcard address replaced by the loopback
 * one (0.0.0.0 -> 127.0.0.1, :: -> [::1]) and IPv6 hosts in brackets. */
iotp_rc datadir_api_url(const char *listen, char *out, size_t size, struct iotp_err *err);

/* Credentials of one profile of an AWS shared-credentials file. */
struct creds {
	char key_id[128];
	char secret[128]; /* wipe with creds_cleanup */
	char region[64];  /* "" when the profile sets none */
};
/* Reads profile from path. IOTP_ERR_NOT_FOUND (message naming the file)
 * when the file or the profile is missing, IOTP_ERR_CONFIG when the
 * profile lacks aws_access_key_id or aws_secret_access_key. */
iotp_rc creds_read(const char *path, const char *profile, struct creds *out,
                   struct iotp_err *err);
/* Appends a shared-credentials file holding one profile (with a comment
 * header saying what it is and how to use it). */
iotp_rc creds_format(struct buf *out, const char *profile, const char *key_id,
                     const char *secret, const char *region);
/* Wipes the secret. */
void creds_cleanup(struct creds *c);

#endif
