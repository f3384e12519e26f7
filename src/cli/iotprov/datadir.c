/*
 * The data directory and the credentials file (see datadir.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>
#include <openssl/crypto.h>

#include "cli/iotprov/datadir.h"
#include "common/util.h"

iotp_rc datadir_open(struct datadir *d, const char *dir, struct iotp_err *err)
{
	struct stat st;
	iotp_rc rc;

	memset(d, 0, sizeof(*d));
	if (realpath(dir, d->path) == NULL)
		return iotp_err_set(err, IOTP_ERR_NOT_FOUND,
		                    "no data directory at %s (%s): create one with `iotprov init "
		                    "--data-dir %s`",
		                    dir, strerror(errno), dir);
	if ((size_t)snprintf(d->conf_file, sizeof(d->conf_file), "%s/%s", d->path, DATADIR_CONF) >=
	    sizeof(d->conf_file))
		return iotp_err_set(err, IOTP_ERR_INVALID, "data directory path too long: %s", dir);
	if (stat(d->conf_file, &st) != 0)
		return iotp_err_set(err, IOTP_ERR_NOT_FOUND,
		                    "%s is not an iotprov data directory (it has no %s): create one "
		                    "with `iotprov init --data-dir %s`",
		                    d->path, DATADIR_CONF, dir);
	d->conf = malloc(sizeof(*d->conf));
	if (d->conf == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	conf_init(d->conf, d->path);
	if ((rc = conf_load(d->conf, d->conf_file, err)) != IOTP_OK ||
	    (rc = conf_validate(d->conf, err)) != IOTP_OK) {
		if (rc == IOTP_ERR_CONFIG && err != NULL && strstr(err->msg, d->conf_file) == NULL) {
			char msg[IOTP_ERR_MSG_MAX];

			util_strlcpy(msg, err->msg, sizeof(msg));
			iotp_err_set(err, rc, "%s: %s", d->conf_file, msg);
		}
		datadir_close(d);
		return rc;
	}
	return IOTP_OK;
}

void datadir_close(struct datadir *d)
{
	if (d == NULL)
		return;
	if (d->conf != NULL)
		conf_cleanup(d->conf);
	free(d->conf);
	d->conf = NULL;
}

iotp_rc datadir_file(const struct datadir *d, const char *name, char *out, size_t size,
                     struct iotp_err *err)
{
	int n = snprintf(out, size, "%s/%s", d->path, name);

	if (n < 0 || (size_t)n >= size)
		return iotp_err_set(err, IOTP_ERR_INVALID, "path too long: %s/%s", d->path, name);
	return IOTP_OK;
}

iotp_rc datadir_core_open(const struct datadir *d, struct iotp_core *core,
                          struct iotp_err *err)
{
	char url[CONF_STR_MAX * 2];
	struct store *st = NULL;
	iotp_rc rc;

	if ((rc = conf_store_url(d->conf, url, sizeof(url), err)) != IOTP_OK ||
	    (rc = store_open(url, &st, err)) != IOTP_OK)
		return rc;
	core_init_with_store(core, d->conf, st);
	return IOTP_OK;
}

iotp_rc datadir_api_url(const char *listen, char *out, size_t size, struct iotp_err *err)
{
	char host[256];
	int port, n;
	iotp_rc rc;

	if ((rc = conf_parse_listen(listen, host, sizeof(host), &port, err)) != IOTP_OK)
		return rc;
	if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
		util_strlcpy(host, "127.0.0.1", sizeof(host));
	else if (strcmp(host, "::") == 0)
		util_strlcpy(host, "::1", sizeof(host));
	if (strchr(host, ':') != NULL)
		n = snprintf(out, size, "https://[%s]:%d", host, port);
	else
		n = snprintf(out, size, "https://%s:%d", host, port);
	if (n < 0 || (size_t)n >= size)
		return iotp_err_set(err, IOTP_ERR_INVALID, "endpoint URL too long");
	return IOTP_OK;
}

struct creds_ctx {
	const char *profile;
	struct creds *c;
	int found;
};

static int creds_value(void *user, const char *section, const char *name, const char *value)
{
	struct creds_ctx *x = user;

	if (strcmp(section, x->profile) != 0)
		return 1;
	x->found = 1;
	if (strcmp(name, "aws_access_key_id") == 0)
		util_strlcpy(x->c->key_id, value, sizeof(x->c->key_id));
	else if (strcmp(name, "aws_secret_access_key") == 0)
		util_strlcpy(x->c->secret, value, sizeof(x->c->secret));
	else if (strcmp(name, "region") == 0)
		util_strlcpy(x->c->region, value, sizeof(x->c->region));
	return 1;
}

iotp_rc creds_read(const char *path, const char *profile, struct creds *out,
                   struct iotp_err *err)
{
	struct creds c;
	struct creds_ctx x = {profile, &c, 0};
	char *text = NULL;
	size_t len = 0;
	iotp_rc rc;
	int line;

	memset(&c, 0, sizeof(c));
	rc = util_read_file(path, 64 * 1024, &text, &len, err);
	if (rc == IOTP_ERR_NOT_FOUND)
		return iotp_err_set(err, IOTP_ERR_NOT_FOUND, "no credentials file %s", path);
	if (rc != IOTP_OK)
		return rc;
	line = ini_parse_string(text, creds_value, &x);
	OPENSSL_cleanse(text, len);
	free(text);
	if (line != 0) {
		rc = iotp_err_set(err, IOTP_ERR_CONFIG, "%s:%d: syntax error", path, line);
	} else if (!x.found) {
		rc = iotp_err_set(err, IOTP_ERR_NOT_FOUND, "%s has no [%s] profile", path, profile);
	} else if (c.key_id[0] == '\0' || c.secret[0] == '\0') {
		rc = iotp_err_set(err, IOTP_ERR_CONFIG,
		                  "%s: profile [%s] lacks aws_access_key_id or aws_secret_access_key",
		                  path, profile);
	} else {
		*out = c;
	}
	creds_cleanup(&c);
	return rc;
}

iotp_rc creds_format(struct buf *out, const char *profile, const char *key_id,
                     const char *secret, const char *region)
{
	return buf_printf(out,
	                  "# iotprov admin access key (an AWS shared-credentials file).\n"
	                  "# Keep it secret: whoever reads it administers iotprov. Use it with\n"
	                  "#   AWS_SHARED_CREDENTIALS_FILE=<this file> aws --profile %s ...\n"
	                  "# Disable it with `iotprov key disable %s` once you have other keys.\n"
	                  "[%s]\n"
	                  "aws_access_key_id = %s\n"
	                  "aws_secret_access_key = %s\n"
	                  "region = %s\n",
	                  profile, key_id, profile, key_id, secret, region);
}

void creds_cleanup(struct creds *c)
{
	if (c != NULL)
		OPENSSL_cleanse(c->secret, sizeof(c->secret));
}
