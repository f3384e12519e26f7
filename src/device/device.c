/*
 * The device agent: a state directory and the operations on it (provision,
 * rotate, connect, reset, status), written so that a power cut at any
 * instant leaves an identity that works.
 *
 * Files (all replaced durably: temp, fsync, rename, fsync dir):
 *   device.json   settings (endpoint, template, parameters, factory key URI)
 *   ca.pem        the roots the device trusts
 *   claim.crt/.key  the factory claim (fleet provisioning by claim)
 *   factory.key   the factory key, unless it lives in a token
 *   state.json    {"current": C, "pending": P}: identity numbers, 0 = none
 *   id-N.json     one identity: method, stage, key URI, certificate id,
 *                 thing name, client id, and while stage is "created" the
 *                 ownership token needed to finish it
 *   id-N.crt      its certificate (+ chain)
 *   key-N.pem     a key made for identity N (new key, server-made key)
 *
 * The protocol. A new identity N is announced first (id-N.json stage "new",
 * then state.json pending=N), then filled in (key, certificate, stage
 * "created" with the token, stage "registered"), then tried: only once a
 * connection with it succeeded does state.json make it current, and only
 * then are the old identity's files released. Until that rename the old
 * identity (or the factory claim) is untouched, so whichever step a crash
 * interrupts, what state.json names still works. On open, whatever no
 * longer belongs to current or a usable pending identity is removed, and a
 * pending identity resumes where it stopped (the token is kept until it is
 * consumed).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "common/util.h"
#include "core/pki.h"
#include "device/dev.h"

#define STATE_FILE_MAX 65536
#define DEFAULT_RETRIES 5
#define DEFAULT_BACKOFF_BASE 500
#define DEFAULT_BACKOFF_CAP 30000

struct iotp_device {
	char dir[2048];
	int lock_fd;
	json_t *conf;      /* device.json */
	int current;       /* identity numbers, 0: none */
	int pending;
};

/* One identity as stored. */
struct ident {
	int n;
	json_t *meta;      /* id-N.json */
	char *cert;        /* id-N.crt, NULL before the certificate exists */
	size_t cert_len;
};

/* Settings of one operation: opts over device.json. */
struct settings {
	char host[256];
	int port;
	char ca[2300];
	char tmpl[64];
	enum iotp_fp_format fmt;
	int mqtt_version;
	int timeout_ms;
	int retries;
	uint32_t base_ms, cap_ms;
	char est_host[256];
	int est_port;
	json_t *params;    /* owned object name -> string */
	char cn[65];
};

static void say(const struct iotp_device_opts *o, const char *fmt, ...) IOTP_PRINTF(2, 3);

static void say(const struct iotp_device_opts *o, const char *fmt, ...)
{
	char line[768];
	va_list ap;

	if (o == NULL || o->progress == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	o->progress(o->progress_ud, line);
}

/* ------------------------------------------------------------------ */
/* Files */

static iotp_rc load_json(const struct iotp_device *d, const char *name, json_t **out,
                         struct iotp_err *err)
{
	char path[4096], *text = NULL;
	size_t len = 0;
	json_error_t jerr;
	json_t *v;
	iotp_rc rc;

	if ((rc = dev_path(d->dir, name, path, sizeof(path), err)) != IOTP_OK)
		return rc;
	if ((rc = util_read_file(path, STATE_FILE_MAX, &text, &len, err)) != IOTP_OK)
		return rc;
	v = json_loadb(text, len, 0, &jerr);
	OPENSSL_cleanse(text, len);
	free(text);
	if (!json_is_object(v)) {
		json_decref(v);
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s is not a JSON object", path);
	}
	*out = v;
	return IOTP_OK;
}

static iotp_rc save_json(const struct iotp_device *d, const char *name, const char *label,
                         const json_t *v, struct iotp_err *err)
{
	char *text = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);
	iotp_rc rc;

	if (text == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	rc = dev_write_durable(d->dir, name, label, text, strlen(text), 0600, err);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	return rc;
}

static iotp_rc save_state(const struct iotp_device *d, struct iotp_err *err)
{
	json_t *v = json_pack("{s:i, s:i}", "current", d->current, "pending", d->pending);
	iotp_rc rc;

	if (v == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	rc = save_json(d, "state.json", "state", v, err);
	json_decref(v);
	return rc;
}

static int file_exists(const struct iotp_device *d, const char *name)
{
	char path[4096];
	struct stat st;

	return dev_path(d->dir, name, path, sizeof(path), NULL) == IOTP_OK && stat(path, &st) == 0;
}

static void unlink_in(const struct iotp_device *d, const char *name)
{
	char path[4096];

	if (dev_path(d->dir, name, path, sizeof(path), NULL) == IOTP_OK)
		unlink(path);
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

static int jint(const json_t *o, const char *key, int def)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

/* A key URI with a relative file path resolved against the state dir. */
static iotp_rc resolve_uri(const struct iotp_device *d, const char *uri, char *out, size_t size,
                           struct iotp_err *err)
{
	const char *path = strncmp(uri, "file:", 5) == 0 ? uri + 5 : uri;
	int n;

	if (strncasecmp(uri, "pkcs11:", 7) == 0 || path[0] == '/')
		n = snprintf(out, size, "%s", uri);
	else
		n = snprintf(out, size, "file:%s/%s", d->dir, path);
	if (n < 0 || (size_t)n >= size)
		return iotp_err_set(err, IOTP_ERR_INVALID, "key URI too long");
	return IOTP_OK;
}

/* ------------------------------------------------------------------ */
/* Identities */

static void ident_cleanup(struct ident *id)
{
	json_decref(id->meta);
	free(id->cert);
	memset(id, 0, sizeof(*id));
}

static iotp_rc ident_load(const struct iotp_device *d, int n, struct ident *out,
                          struct iotp_err *err)
{
	char name[64], path[4096];
	struct ident id;
	iotp_rc rc;

	memset(&id, 0, sizeof(id));
	id.n = n;
	snprintf(name, sizeof(name), "id-%d.json", n);
	if ((rc = load_json(d, name, &id.meta, err)) != IOTP_OK)
		goto out;
	snprintf(name, sizeof(name), "id-%d.crt", n);
	if ((rc = dev_path(d->dir, name, path, sizeof(path), err)) != IOTP_OK)
		goto out;
	rc = util_read_file(path, DEV_PEM_MAX, &id.cert, &id.cert_len, err);
	if (rc == IOTP_ERR_NOT_FOUND) {
		rc = IOTP_OK; /* not yet issued */
		if (err != NULL)
			iotp_err_clear(err);
	}
	if (rc != IOTP_OK)
		goto out;
	*out = id;
	memset(&id, 0, sizeof(id));
out:
	ident_cleanup(&id);
	return rc;
}

static const char *factory_uri(const struct iotp_device *d)
{
	return jstr(d->conf, "keyUri");
}

/* The key URI an identity uses ("factory" means the factory key). */
static const char *ident_key_uri(const struct iotp_device *d, const json_t *meta)
{
	const char *u = jstr(meta, "keyUri");

	return strcmp(u, "factory") == 0 || u[0] == '\0' ? factory_uri(d) : u;
}

/* Whether any identity other than skip still uses key uri. */
static int key_in_use(const struct iotp_device *d, const char *uri, int skip)
{
	int nums[2] = { d->current, d->pending }, i;

	if (strcmp(uri, factory_uri(d)) == 0)
		return 1;
	for (i = 0; i < 2; i++) {
		struct ident id;
		int used;

		if (nums[i] == 0 || nums[i] == skip || ident_load(d, nums[i], &id, NULL) != IOTP_OK)
			continue;
		used = strcmp(ident_key_uri(d, id.meta), uri) == 0;
		ident_cleanup(&id);
		if (used)
			return 1;
	}
	return 0;
}

/* Removes identity n: its key when nobody else uses it, then the
 * certificate, then the description last (so a crash in between leaves a
 * description that still says which key to remove). */
static iotp_rc ident_remove(const struct iotp_device *d, int n, struct iotp_err *err)
{
	char name[64], uri[4096];
	struct ident id;
	iotp_rc rc;

	memset(&id, 0, sizeof(id));
	if (ident_load(d, n, &id, NULL) == IOTP_OK) {
		const char *ku = ident_key_uri(d, id.meta);

		if (ku[0] != '\0' && !key_in_use(d, ku, n) &&
		    resolve_uri(d, ku, uri, sizeof(uri), NULL) == IOTP_OK) {
			rc = iotp_keystore_remove(uri, err);
			if (rc != IOTP_OK && rc != IOTP_ERR_NOT_FOUND) {
				ident_cleanup(&id);
				return rc;
			}
		}
	}
	ident_cleanup(&id);
	dev_crash_point("release");
	snprintf(name, sizeof(name), "id-%d.crt", n);
	unlink_in(d, name);
	snprintf(name, sizeof(name), "id-%d.json", n);
	unlink_in(d, name);
	if (err != NULL)
		iotp_err_clear(err);
	return dev_fsync_dir(d->dir, err);
}

/* ------------------------------------------------------------------ */
/* Opening and recovery */

static int ident_number(const char *name, const char *prefix, const char *suffix)
{
	size_t pl = strlen(prefix), sl = strlen(suffix), nl = strlen(name);
	char num[16];
	int64_t n;

	if (nl <= pl + sl || strncmp(name, prefix, pl) != 0 || strcmp(name + nl - sl, suffix) != 0 ||
	    nl - pl - sl >= sizeof(num))
		return 0;
	memcpy(num, name + pl, nl - pl - sl);
	num[nl - pl - sl] = '\0';
	if (util_parse_int64(num, 1, 1000000000, &n) != IOTP_OK)
		return 0;
	return (int)n;
}

/* Brings the directory back to "current + at most one usable pending". */
static iotp_rc recover(struct iotp_device *d, struct iotp_err *err)
{
	DIR *dir = NULL;
	struct dirent *e;
	json_t *st = NULL;
	int changed = 0;
	iotp_rc rc;

	rc = load_json(d, "state.json", &st, err);
	if (rc == IOTP_OK) {
		d->current = jint(st, "current", 0);
		d->pending = jint(st, "pending", 0);
	} else if (rc != IOTP_ERR_NOT_FOUND) {
		return rc;
	}
	rc = IOTP_OK;
	iotp_err_clear(err);
	json_decref(st);
	if (d->current < 0 || d->pending < 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "%s/state.json is damaged", d->dir);
	if (d->pending != 0) {
		struct ident id;
		int usable = 0;

		if (ident_load(d, d->pending, &id, NULL) == IOTP_OK) {
			const char *stage = jstr(id.meta, "stage");

			usable = id.cert != NULL &&
			         (strcmp(stage, "registered") == 0 ||
			          (strcmp(stage, "created") == 0 && jstr(id.meta, "token")[0] != '\0'));
			ident_cleanup(&id);
		}
		if (!usable) {
			int p = d->pending;

			d->pending = 0;
			if ((rc = save_state(d, err)) != IOTP_OK ||
			    (rc = ident_remove(d, p, err)) != IOTP_OK)
				return rc;
		}
	}
	/* Files of identities that never became current or pending, of a
	 * released one, and temp files of interrupted writes. */
	dir = opendir(d->dir);
	if (dir == NULL)
		return iotp_err_set(err, IOTP_ERR_IO, "open %s: %s", d->dir, strerror(errno));
	while ((e = readdir(dir)) != NULL) {
		int n;

		if (e->d_name[0] == '.' && strstr(e->d_name, ".tmp") != NULL) {
			unlink_in(d, e->d_name);
			changed = 1;
			continue;
		}
		n = ident_number(e->d_name, "id-", ".json");
		if (n != 0 && n != d->current && n != d->pending) {
			if ((rc = ident_remove(d, n, err)) != IOTP_OK)
				goto out;
			changed = 1;
			continue;
		}
		n = ident_number(e->d_name, "id-", ".crt");
		if (n == 0)
			n = ident_number(e->d_name, "key-", ".pem");
		if (n != 0 && n != d->current && n != d->pending) {
			char uri[64];

			snprintf(uri, sizeof(uri), "file:key-%d.pem", n);
			if (strncmp(e->d_name, "key-", 4) == 0 && key_in_use(d, uri, -1))
				continue;
			unlink_in(d, e->d_name);
			changed = 1;
		}
	}
	if (changed)
		rc = dev_fsync_dir(d->dir, err);
out:
	closedir(dir);
	return rc;
}

iotp_rc iotp_device_open(const char *state_dir, iotp_device **out, struct iotp_err *err)
{
	struct iotp_device *d;
	char path[4096];
	iotp_rc rc;

	if (state_dir == NULL || state_dir[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_INVALID, "no state directory");
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	d->lock_fd = -1;
	if (util_strlcpy(d->dir, state_dir, sizeof(d->dir)) >= sizeof(d->dir)) {
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "state directory path too long");
		goto fail;
	}
	if ((rc = util_mkdir(d->dir, 0700, err)) != IOTP_OK)
		goto fail;
	if ((rc = dev_path(d->dir, ".lock", path, sizeof(path), err)) != IOTP_OK)
		goto fail;
	d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (d->lock_fd < 0) {
		rc = iotp_err_set(err, IOTP_ERR_IO, "open %s: %s", path, strerror(errno));
		goto fail;
	}
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rc = iotp_err_set(err, IOTP_ERR_BUSY, "%s is in use by another iotprov-device",
		                  d->dir);
		goto fail;
	}
	rc = load_json(d, "device.json", &d->conf, err);
	if (rc == IOTP_ERR_NOT_FOUND) {
		iotp_err_clear(err);
		d->conf = json_object();
		rc = d->conf != NULL ? IOTP_OK : iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	}
	if (rc != IOTP_OK)
		goto fail;
	if ((rc = recover(d, err)) != IOTP_OK)
		goto fail;
	*out = d;
	return IOTP_OK;
fail:
	iotp_device_close(d);
	return rc;
}

void iotp_device_close(iotp_device *d)
{
	if (d == NULL)
		return;
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	json_decref(d->conf);
	free(d);
}

/* ------------------------------------------------------------------ */
/* Keys */

iotp_rc iotp_device_keygen(iotp_device *d, const char *key_uri, enum iotp_key_alg alg,
                           struct iotp_err *err)
{
	const char *uri = key_uri != NULL ? key_uri : "file:factory.key";
	char full[4096];
	iotp_rc rc;

	if (factory_uri(d)[0] != '\0')
		return iotp_err_set(err, IOTP_ERR_EXISTS,
		                    "a factory key is recorded already (%s); reset keeps it",
		                    factory_uri(d));
	if ((rc = resolve_uri(d, uri, full, sizeof(full), err)) != IOTP_OK ||
	    (rc = iotp_keystore_generate(full, alg, err)) != IOTP_OK)
		return rc;
	/* Record the URI without a PIN: the PIN has to come from pin-source
	 * or the environment later. */
	if (strncasecmp(uri, "pkcs11:", 7) == 0) {
		struct p11_uri u;

		if ((rc = p11_uri_parse(uri, &u, err)) != IOTP_OK)
			return rc;
		rc = p11_uri_public(&u, full, sizeof(full), err);
		p11_uri_cleanup(&u);
		if (rc != IOTP_OK)
			return rc;
		uri = full;
	}
	if (json_object_set_new(d->conf, "keyUri", json_string(uri)) != 0)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	return save_json(d, "device.json", "config", d->conf, err);
}

iotp_rc iotp_device_factory_key(iotp_device *d, iotp_keystore **out, struct iotp_err *err)
{
	char full[4096];
	iotp_rc rc;

	if (factory_uri(d)[0] == '\0')
		return iotp_err_set(err, IOTP_ERR_NOT_FOUND,
		                    "no factory key: run iotprov-device keygen first");
	if ((rc = resolve_uri(d, factory_uri(d), full, sizeof(full), err)) != IOTP_OK)
		return rc;
	return iotp_keystore_open(full, out, err);
}

static iotp_rc open_uri(const struct iotp_device *d, const char *uri, iotp_keystore **out,
                        struct iotp_err *err)
{
	char full[4096];
	iotp_rc rc;

	if ((rc = resolve_uri(d, uri, full, sizeof(full), err)) != IOTP_OK)
		return rc;
	return iotp_keystore_open(full, out, err);
}

/* ------------------------------------------------------------------ */
/* Settings */

static iotp_rc set_conf_str(struct iotp_device *d, const char *key, const char *v)
{
	if (v == NULL)
		return IOTP_OK;
	return json_object_set_new(d->conf, key, json_string(v)) == 0 ? IOTP_OK : IOTP_ERR_INVALID;
}

static iotp_rc copy_file_in(struct iotp_device *d, const char *src, const char *name,
                            mode_t mode, size_t max, struct iotp_err *err)
{
	char path[4096], *data = NULL;
	size_t len = 0;
	iotp_rc rc;

	if ((rc = dev_path(d->dir, name, path, sizeof(path), err)) != IOTP_OK)
		return rc;
	if (strcmp(path, src) == 0)
		return IOTP_OK;
	if ((rc = util_read_file(src, max, &data, &len, err)) != IOTP_OK)
		return rc;
	rc = dev_write_durable(d->dir, name, "config", data, len, mode, err);
	OPENSSL_cleanse(data, len);
	free(data);
	return rc;
}

static iotp_rc build_settings(struct iotp_device *d, const struct iotp_device_opts *o,
                              struct settings *s, struct iotp_err *err)
{
	const char *v;
	json_t *params;
	size_t i;
	iotp_rc rc = IOTP_OK;

	memset(s, 0, sizeof(*s));
	if (set_conf_str(d, "endpoint", o->endpoint) != IOTP_OK ||
	    set_conf_str(d, "estEndpoint", o->est_endpoint) != IOTP_OK ||
	    set_conf_str(d, "template", o->template_name) != IOTP_OK ||
	    set_conf_str(d, "format", o->format) != IOTP_OK ||
	    set_conf_str(d, "commonName", o->common_name) != IOTP_OK ||
	    set_conf_str(d, "estUser", o->est_user) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_INVALID, "settings are not UTF-8 text");
	if (o->mqtt_version != 0)
		json_object_set_new(d->conf, "mqttVersion", json_integer(o->mqtt_version));
	if (o->timeout_ms > 0)
		json_object_set_new(d->conf, "timeoutMs", json_integer(o->timeout_ms));
	if (o->retries != 0)
		json_object_set_new(d->conf, "retries", json_integer(o->retries < 0 ? 0 : o->retries));
	if (o->nparams > 0) {
		params = json_object_get(d->conf, "parameters");
		if (!json_is_object(params)) {
			params = json_object();
			json_object_set_new(d->conf, "parameters", params);
		}
		for (i = 0; i < o->nparams; i++)
			if (o->params[i].name == NULL || o->params[i].value == NULL ||
			    json_object_set_new(params, o->params[i].name,
			                        json_string(o->params[i].value)) != 0)
				return iotp_err_set(err, IOTP_ERR_INVALID, "bad parameter %zu", i);
	}
	if (o->ca_file != NULL &&
	    (rc = copy_file_in(d, o->ca_file, "ca.pem", 0644, DEV_CA_MAX, err)) != IOTP_OK)
		return rc;
	if ((rc = save_json(d, "device.json", "config", d->conf, err)) != IOTP_OK)
		return rc;

	v = jstr(d->conf, "endpoint");
	if (v[0] != '\0' &&
	    (rc = iotp_endpoint_parse(v, s->host, sizeof(s->host), &s->port, err)) != IOTP_OK)
		return rc;
	v = jstr(d->conf, "estEndpoint");
	if (v[0] != '\0' && (rc = iotp_endpoint_parse(v, s->est_host, sizeof(s->est_host),
	                                             &s->est_port, err)) != IOTP_OK)
		return rc;
	if ((rc = dev_path(d->dir, "ca.pem", s->ca, sizeof(s->ca), err)) != IOTP_OK)
		return rc;
	util_strlcpy(s->tmpl, jstr(d->conf, "template"), sizeof(s->tmpl));
	v = jstr(d->conf, "format");
	if (v[0] != '\0' && strcmp(v, "json") != 0 && strcmp(v, "cbor") != 0)
		return iotp_err_set(err, IOTP_ERR_INVALID, "format must be json or cbor");
	s->fmt = strcmp(v, "cbor") == 0 ? IOTP_FP_CBOR : IOTP_FP_JSON;
	s->mqtt_version = jint(d->conf, "mqttVersion", 5);
	if (s->mqtt_version != 4 && s->mqtt_version != 5)
		return iotp_err_set(err, IOTP_ERR_INVALID, "MQTT version must be 4 (3.1.1) or 5");
	s->timeout_ms = jint(d->conf, "timeoutMs", 10000);
	s->retries = jint(d->conf, "retries", DEFAULT_RETRIES);
	s->base_ms = o->backoff_base_ms > 0 ? o->backoff_base_ms : DEFAULT_BACKOFF_BASE;
	s->cap_ms = o->backoff_cap_ms > 0 ? o->backoff_cap_ms : DEFAULT_BACKOFF_CAP;
	params = json_object_get(d->conf, "parameters");
	s->params = json_is_object(params) ? json_deep_copy(params) : json_object();
	if (s->params == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	v = jstr(d->conf, "commonName");
	if (v[0] == '\0')
		v = jstr(s->params, "SerialNumber");
	if (v[0] == '\0')
		v = o->client_id != NULL ? o->client_id : "iotprov-device";
	util_strlcpy(s->cn, v, sizeof(s->cn));
	return IOTP_OK;
}

static void settings_cleanup(struct settings *s)
{
	json_decref(s->params);
	s->params = NULL;
}

static iotp_rc need_endpoint(const struct settings *s, struct iotp_failure *why,
                             struct iotp_err *err)
{
	struct stat st;

	if (s->host[0] == '\0')
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_CONFIG,
		                "no MQTT endpoint: give --endpoint HOST:PORT");
	if (stat(s->ca, &st) != 0)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_CONFIG,
		                "no trusted roots: give --ca FILE (the service's ca-bundle.pem)");
	return IOTP_OK;
}

/* ------------------------------------------------------------------ */
/* Connecting with an identity */

static iotp_rc cert_cn(const char *pem, size_t len, char *out, size_t size)
{
	X509 *x = NULL;
	iotp_rc rc = pki_cert_parse(pem, len, &x, NULL);

	if (rc == IOTP_OK)
		rc = pki_cert_name_field(x, 0, "CommonName", out, size, NULL);
	X509_free(x);
	return rc;
}

/* A failure worth another provisioning attempt later: the service was
 * unreachable, slow, throttling or failing, not refusing. */
static int transient(const struct iotp_failure *w)
{
	return w->cause == IOTP_CAUSE_NETWORK || w->cause == IOTP_CAUSE_TIMEOUT ||
	       (w->cause == IOTP_CAUSE_REJECTED && (w->status == 429 || w->status >= 500));
}

static int retryable(enum iotp_cause c)
{
	return c == IOTP_CAUSE_NETWORK || c == IOTP_CAUSE_TIMEOUT || c == IOTP_CAUSE_TLS ||
	       c == IOTP_CAUSE_REFUSED;
}

/* Connects with identity id (publishing the test message), retrying with
 * backoff up to retries times. */
static iotp_rc connect_ident(const struct iotp_device *d, const struct settings *s,
                             const struct ident *id, const struct iotp_device_opts *o,
                             int retries, struct iotp_failure *why, struct iotp_err *err)
{
	iotp_keystore *ks = NULL;
	SSL_CTX *ctx = NULL;
	struct iotp_mqtt_params p;
	struct iotp_backoff b;
	char topic[512], payload[512];
	const char *cid = jstr(id->meta, "clientId");
	struct iotp_failure w;
	uint32_t delay;
	int attempt = 1;
	iotp_rc rc;

	iotp_failure_clear(&w);
	if ((rc = open_uri(d, ident_key_uri(d, id->meta), &ks, err)) != IOTP_OK ||
	    (rc = iotp_tls_ctx_new(s->ca, s->host, id->cert, id->cert_len, ks, &ctx, err)) !=
	            IOTP_OK) {
		dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "identity");
		goto out;
	}
	memset(&p, 0, sizeof(p));
	p.host = s->host;
	p.port = s->port;
	p.client_id = cid;
	p.ssl_ctx = ctx;
	p.timeout_ms = s->timeout_ms;
	p.mqtt_version = s->mqtt_version;
	if (o->topic != NULL)
		util_strlcpy(topic, o->topic, sizeof(topic));
	else
		snprintf(topic, sizeof(topic), "things/%s/hello", cid);
	if (o->message != NULL) {
		util_strlcpy(payload, o->message, sizeof(payload));
	} else {
		json_t *hello = json_pack("{s:s, s:s, s:I}", "hello", "iotprov-device", "clientId",
		                          cid, "time", (json_int_t)util_now());
		char *text = hello != NULL ? json_dumps(hello, JSON_COMPACT) : NULL;

		util_strlcpy(payload, text != NULL ? text : "{}", sizeof(payload));
		free(text);
		json_decref(hello);
	}
	iotp_backoff_init(&b, s->base_ms, s->cap_ms, (uint32_t)retries, 0);
	for (;;) {
		say(o, "connecting to %s:%d as %s (identity %d)", s->host, s->port, cid, id->n);
		rc = iotp_mqtt_check(NULL, &p, topic, payload, strlen(payload), &w, err);
		if (rc == IOTP_OK) {
			say(o, "connected and published to %s", topic);
			break;
		}
		if (!retryable(w.cause) || attempt > retries || !iotp_backoff_next(&b, &delay))
			break;
		say(o, "attempt %d failed (%s): %s; retrying in %u ms", attempt,
		    iotp_cause_name(w.cause), err != NULL ? err->msg : "", delay);
		dev_sleep_ms(delay);
		attempt++;
	}
	if (rc != IOTP_OK && why != NULL)
		*why = w;
out:
	SSL_CTX_free(ctx);
	iotp_keystore_free(ks);
	return rc;
}

/* Makes the pending identity current after it has connected, then
 * releases the previous one. */
static iotp_rc activate_pending(struct iotp_device *d, const struct settings *s,
                                const struct iotp_device_opts *o, int retries,
                                struct iotp_failure *why, struct iotp_err *err)
{
	struct ident id;
	int old = d->current;
	iotp_rc rc;

	if ((rc = ident_load(d, d->pending, &id, err)) != IOTP_OK)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "identity");
	rc = connect_ident(d, s, &id, o, retries, why, err);
	ident_cleanup(&id);
	if (rc != IOTP_OK)
		return rc;
	dev_crash_point("connected");
	d->current = d->pending;
	d->pending = 0;
	if ((rc = save_state(d, err)) != IOTP_OK) {
		d->pending = d->current;
		d->current = old;
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "state");
	}
	dev_crash_point("committed");
	say(o, "identity %d is now current", d->current);
	if (old != 0 && (rc = ident_remove(d, old, err)) != IOTP_OK)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "release");
	return IOTP_OK;
}

/* ------------------------------------------------------------------ */
/* Building a new identity */

/* Announces identity n: id-n.json (stage "new", key URI) then pending=n. */
static iotp_rc announce(struct iotp_device *d, int n, const char *method, const char *key_uri,
                        json_t **meta_out, struct iotp_err *err)
{
	char name[64];
	json_t *meta = json_pack("{s:i, s:s, s:s, s:s, s:I}", "n", n, "method", method, "stage",
	                         "new", "keyUri", key_uri, "created", (json_int_t)util_now());
	iotp_rc rc;

	if (meta == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	snprintf(name, sizeof(name), "id-%d.json", n);
	if ((rc = save_json(d, name, "meta", meta, err)) != IOTP_OK)
		goto out;
	d->pending = n;
	if ((rc = save_state(d, err)) != IOTP_OK) {
		d->pending = 0;
		goto out;
	}
	*meta_out = meta;
	meta = NULL;
out:
	json_decref(meta);
	return rc;
}

static iotp_rc save_meta(const struct iotp_device *d, int n, const json_t *meta,
                         struct iotp_err *err)
{
	char name[64];

	snprintf(name, sizeof(name), "id-%d.json", n);
	return save_json(d, name, "meta", meta, err);
}

static iotp_rc save_cert(const struct iotp_device *d, int n, const char *pem, size_t len,
                         struct iotp_err *err)
{
	char name[64];

	snprintf(name, sizeof(name), "id-%d.crt", n);
	return dev_write_durable(d->dir, name, "cert", pem, len, 0644, err);
}

/* The key of a new identity n: a new one (file key-n.pem, or object
 * "<object>-n" in the factory key's token), else the given one. */
static iotp_rc new_key_uri(const struct iotp_device *d, int n, char *out, size_t size,
                           struct iotp_err *err)
{
	const char *f = factory_uri(d);

	if (strncasecmp(f, "pkcs11:", 7) == 0) {
		struct p11_uri u;
		char obj[P11_LABEL_MAX + 1];
		iotp_rc rc;

		if ((rc = p11_uri_parse(f, &u, err)) != IOTP_OK)
			return rc;
		snprintf(obj, sizeof(obj), "%.100s-%d", u.object, n);
		util_strlcpy(u.object, obj, sizeof(u.object));
		u.id_len = 0;
		rc = p11_uri_public(&u, out, size, err);
		p11_uri_cleanup(&u);
		return rc;
	}
	if ((size_t)snprintf(out, size, "file:key-%d.pem", n) >= size)
		return iotp_err_set(err, IOTP_ERR_INVALID, "key URI too long");
	return IOTP_OK;
}

/* Makes sure a factory key exists (a file key by default). */
static iotp_rc ensure_factory_key(iotp_device *d, const struct iotp_device_opts *o,
                                  struct iotp_err *err)
{
	if (factory_uri(d)[0] != '\0')
		return IOTP_OK;
	say(o, "no factory key yet: generating %s/factory.key (ec-p256)", d->dir);
	return iotp_device_keygen(d, NULL, IOTP_KEY_EC_P256, err);
}

/* Opens the claim: opts files for trusted-user, the stored factory claim
 * (saved from opts the first time) for claim. */
static iotp_rc claim_ctx(iotp_device *d, const struct settings *s, enum iotp_method m,
                         const struct iotp_device_opts *o, SSL_CTX **out,
                         iotp_keystore **key_out, struct iotp_failure *why,
                         struct iotp_err *err)
{
	char cpath[4096], kpath[4096], *cert = NULL;
	size_t clen = 0;
	iotp_keystore *ks = NULL;
	iotp_rc rc;

	if (m == IOTP_METHOD_CLAIM) {
		if (o->claim_cert != NULL && o->claim_key != NULL) {
			/* Read the key through the keystore first: a claim key
			 * readable by others is refused before it is copied. */
			if ((rc = iotp_keystore_open(o->claim_key, &ks, err)) != IOTP_OK)
				goto out;
			iotp_keystore_free(ks);
			ks = NULL;
			if ((rc = copy_file_in(d, o->claim_cert, "claim.crt", 0644, DEV_PEM_MAX,
			                       err)) != IOTP_OK ||
			    (rc = copy_file_in(d, o->claim_key, "claim.key", 0600, DEV_PEM_MAX,
			                       err)) != IOTP_OK)
				goto out;
		}
		if ((rc = dev_path(d->dir, "claim.crt", cpath, sizeof(cpath), err)) != IOTP_OK ||
		    (rc = dev_path(d->dir, "claim.key", kpath, sizeof(kpath), err)) != IOTP_OK)
			goto out;
		if (!file_exists(d, "claim.crt")) {
			rc = iotp_err_set(err, IOTP_ERR_CONFIG,
			                  "no factory claim: give --claim-cert and --claim-key once");
			goto out;
		}
	} else {
		if (o->claim_cert == NULL || o->claim_key == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_CONFIG,
			                  "trusted-user provisioning needs the installer's claim: "
			                  "--claim-cert and --claim-key");
			goto out;
		}
		util_strlcpy(cpath, o->claim_cert, sizeof(cpath));
		util_strlcpy(kpath, o->claim_key, sizeof(kpath));
	}
	if ((rc = util_read_file(cpath, DEV_PEM_MAX, &cert, &clen, err)) != IOTP_OK ||
	    (rc = iotp_keystore_open(kpath, &ks, err)) != IOTP_OK ||
	    (rc = iotp_tls_ctx_new(s->ca, s->host, cert, clen, ks, out, err)) != IOTP_OK)
		goto out;
	/* The keystore outlives the context (a token key's EVP_PKEY needs it). */
	*key_out = ks;
	ks = NULL;
out:
	if (rc != IOTP_OK)
		dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "claim");
	free(cert);
	iotp_keystore_free(ks);
	return rc;
}

static iotp_rc params_array(const json_t *params, struct iotp_param **out, size_t *n,
                            struct iotp_err *err)
{
	const char *k;
	json_t *v;
	size_t i = 0;
	struct iotp_param *a = calloc(json_object_size(params) + 1, sizeof(*a));

	if (a == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	json_object_foreach((json_t *)params, k, v) {
		if (!json_is_string(v)) {
			free(a);
			return iotp_err_set(err, IOTP_ERR_INVALID, "parameter %s is not a string", k);
		}
		a[i].name = k;
		a[i].value = json_string_value(v);
		i++;
	}
	*out = a;
	*n = i;
	return IOTP_OK;
}

/* Fleet provisioning for pending identity id (stage new or created). */
static iotp_rc fleet_steps(iotp_device *d, const struct settings *s, enum iotp_method m,
                           const struct iotp_device_opts *o, struct ident *id,
                           struct iotp_failure *why, struct iotp_err *err)
{
	struct iotp_fleet_opts fo;
	iotp_fleet *f = NULL;
	SSL_CTX *ctx = NULL;
	iotp_keystore *ks = NULL, *claim_key = NULL;
	struct iotp_fleet_cert fc;
	struct iotp_fleet_thing ft;
	struct iotp_param *params = NULL;
	size_t nparams = 0;
	char *csr = NULL, cid[200];
	size_t csr_len = 0;
	int server_key = strcmp(jstr(id->meta, "stage"), "new") == 0 && o->server_key;
	iotp_rc rc;

	memset(&fc, 0, sizeof(fc));
	memset(&ft, 0, sizeof(ft));
	if (s->tmpl[0] == '\0') {
		rc = dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_CONFIG,
		              "no provisioning template: give --template NAME");
		goto out;
	}
	if ((rc = claim_ctx(d, s, m, o, &ctx, &claim_key, why, err)) != IOTP_OK)
		goto out;
	if ((rc = params_array(s->params, &params, &nparams, err)) != IOTP_OK) {
		dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "parameters");
		goto out;
	}
	snprintf(cid, sizeof(cid), "%s", o->client_id != NULL ? o->client_id : s->cn);
	memset(&fo, 0, sizeof(fo));
	fo.host = s->host;
	fo.port = s->port;
	fo.claim_ctx = ctx;
	fo.client_id = cid;
	fo.template_name = s->tmpl;
	fo.format = s->fmt;
	fo.timeout_ms = s->timeout_ms;
	fo.mqtt_version = s->mqtt_version;
	fo.ops = IOTP_FLEET_OP_REGISTER;
	if (strcmp(jstr(id->meta, "stage"), "new") == 0) {
		fo.ops |= server_key ? IOTP_FLEET_OP_CREATE : IOTP_FLEET_OP_CREATE_FROM_CSR;
		if (!server_key) {
			struct iotp_csr_subject subj = { s->cn, jstr(s->params, "SerialNumber"), NULL,
			                                 NULL, NULL };

			if (subj.serial_number[0] == '\0')
				subj.serial_number = NULL;
			if ((rc = open_uri(d, ident_key_uri(d, id->meta), &ks, err)) != IOTP_OK ||
			    (rc = iotp_csr_create(ks, &subj, &csr, &csr_len, err)) != IOTP_OK) {
				dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "CSR");
				goto out;
			}
		}
	}
	say(o, "connecting to %s:%d as %s with the %s claim (%s)", s->host, s->port, cid,
	    m == IOTP_METHOD_CLAIM ? "factory" : "installer's", s->fmt == IOTP_FP_CBOR ? "CBOR"
	                                                                            : "JSON");
	if ((rc = iotp_fleet_open(&fo, &f, why, err)) != IOTP_OK)
		goto out;
	if (strcmp(jstr(id->meta, "stage"), "new") == 0) {
		rc = server_key ? iotp_fleet_create(f, &fc, why, err)
		                : iotp_fleet_create_from_csr(f, csr, csr_len, &fc, why, err);
		if (rc != IOTP_OK)
			goto out;
		dev_crash_point("created");
		say(o, "certificate %.12s... issued (PENDING_ACTIVATION)", fc.cert_id);
		if (server_key) {
			char uri[64];
			iotp_keystore *sk = NULL;

			snprintf(uri, sizeof(uri), "file:key-%d.pem", id->n);
			if ((rc = iotp_keystore_from_pem(fc.private_key_pem,
			                                 strlen(fc.private_key_pem), &sk, err)) ==
			    IOTP_OK) {
				char full[4096];

				rc = resolve_uri(d, uri, full, sizeof(full), err);
				if (rc == IOTP_OK)
					rc = iotp_keystore_save(sk, full, err);
			}
			iotp_keystore_free(sk);
			if (rc != IOTP_OK) {
				dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "key");
				goto out;
			}
			json_object_set_new(id->meta, "keyUri", json_string(uri));
		}
		if ((rc = save_cert(d, id->n, fc.cert_pem, strlen(fc.cert_pem), err)) != IOTP_OK) {
			dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "certificate");
			goto out;
		}
		json_object_set_new(id->meta, "stage", json_string("created"));
		json_object_set_new(id->meta, "certId", json_string(fc.cert_id));
		json_object_set_new(id->meta, "token", json_string(fc.token));
		if ((rc = save_meta(d, id->n, id->meta, err)) != IOTP_OK) {
			dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "identity");
			goto out;
		}
	} else {
		say(o, "resuming: registering certificate %.12s... issued earlier",
		    jstr(id->meta, "certId"));
	}
	rc = iotp_fleet_register(f, jstr(id->meta, "token"), params, nparams, &ft, why, err);
	if (rc != IOTP_OK)
		goto out;
	dev_crash_point("registered");
	say(o, "thing %s registered by template %s", ft.thing_name[0] ? ft.thing_name : "(none)",
	    s->tmpl);
	json_object_set_new(id->meta, "stage", json_string("registered"));
	json_object_del(id->meta, "token");
	json_object_set_new(id->meta, "thingName", json_string(ft.thing_name));
	json_object_set_new(id->meta, "clientId",
	                    json_string(o->client_id != NULL ? o->client_id
	                                : ft.thing_name[0] ? ft.thing_name : s->cn));
	json_object_set_new(id->meta, "deviceConfiguration",
	                    json_loads(ft.device_configuration, 0, NULL));
	if ((rc = save_meta(d, id->n, id->meta, err)) != IOTP_OK)
		dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "identity");
out:
	iotp_fleet_close(f);
	SSL_CTX_free(ctx);
	iotp_keystore_free(claim_key);
	iotp_keystore_free(ks);
	iotp_fleet_cert_cleanup(&fc);
	iotp_fleet_thing_cleanup(&ft);
	free(params);
	free(csr);
	return rc;
}

/* EST enrolment (or re-enrolment with the current identity) for id. */
static iotp_rc est_steps(iotp_device *d, const struct settings *s,
                         const struct iotp_device_opts *o, struct ident *id, int reenroll,
                         struct iotp_failure *why, struct iotp_err *err)
{
	struct iotp_est_opts eo;
	struct ident cur;
	iotp_keystore *ks = NULL, *tls_key = NULL;
	char url[300], *csr = NULL, *cert = NULL, *claim = NULL, kpath[4096], cn[128];
	size_t csr_len = 0, cert_len = 0, claim_len = 0;
	struct iotp_csr_subject subj = { s->cn, NULL, NULL, NULL, NULL };
	iotp_rc rc;

	memset(&cur, 0, sizeof(cur));
	memset(&eo, 0, sizeof(eo));
	if (s->est_host[0] == '\0') {
		rc = dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_CONFIG,
		              "no EST endpoint: give --est-endpoint HOST:PORT");
		goto out;
	}
	snprintf(url, sizeof(url), strchr(s->est_host, ':') ? "https://[%s]:%d" : "https://%s:%d",
	         s->est_host, s->est_port);
	eo.base_url = url;
	eo.label = s->tmpl[0] != '\0' ? s->tmpl : NULL; /* the label names the template */
	eo.ca_file = s->ca;
	eo.timeout_ms = s->timeout_ms * 3;
	eo.username = jstr(d->conf, "estUser")[0] ? jstr(d->conf, "estUser") : NULL;
	eo.password = o->est_password;
	if (reenroll) {
		/* Authenticated by the certificate being replaced. */
		if ((rc = ident_load(d, d->current, &cur, err)) != IOTP_OK ||
		    (rc = open_uri(d, ident_key_uri(d, cur.meta), &tls_key, err)) != IOTP_OK)
			goto local;
		eo.cert_pem = cur.cert;
		eo.cert_len = cur.cert_len;
		eo.key = tls_key;
	} else if (file_exists(d, "claim.crt") || o->claim_cert != NULL) {
		/* A manufacturer / claim certificate, when the device has one,
		 * authenticates the first enrolment. */
		const char *cp = o->claim_cert, *kp = o->claim_key;
		char cpath[4096];

		if (cp == NULL) {
			dev_path(d->dir, "claim.crt", cpath, sizeof(cpath), NULL);
			dev_path(d->dir, "claim.key", kpath, sizeof(kpath), NULL);
			cp = cpath;
			kp = kpath;
		}
		if (kp == NULL) {
			rc = iotp_err_set(err, IOTP_ERR_CONFIG, "--claim-cert needs --claim-key");
			goto local;
		}
		if ((rc = util_read_file(cp, DEV_PEM_MAX, &claim, &claim_len, err)) != IOTP_OK ||
		    (rc = iotp_keystore_open(kp, &tls_key, err)) != IOTP_OK)
			goto local;
		eo.cert_pem = claim;
		eo.cert_len = claim_len;
		eo.key = tls_key;
	}
	if ((rc = open_uri(d, ident_key_uri(d, id->meta), &ks, err)) != IOTP_OK ||
	    (rc = iotp_csr_create(ks, &subj, &csr, &csr_len, err)) != IOTP_OK)
		goto local;
	say(o, "%s at %s", reenroll ? "simplereenroll" : "simpleenroll", url);
	if ((rc = iotp_est_enroll(&eo, reenroll, csr, csr_len, &cert, &cert_len, why, err)) !=
	    IOTP_OK)
		goto out;
	dev_crash_point("created");
	if ((rc = save_cert(d, id->n, cert, cert_len, err)) != IOTP_OK)
		goto local;
	if (cert_cn(cert, cert_len, cn, sizeof(cn)) != IOTP_OK)
		util_strlcpy(cn, s->cn, sizeof(cn));
	{
		X509 *x = NULL;
		char cid[PKI_CERT_ID_LEN + 1] = "";

		if (pki_cert_parse(cert, cert_len, &x, NULL) == IOTP_OK)
			pki_cert_id(x, cid, NULL);
		X509_free(x);
		json_object_set_new(id->meta, "certId", json_string(cid));
	}
	say(o, "certificate issued for %s", cn);
	json_object_set_new(id->meta, "stage", json_string("registered"));
	json_object_set_new(id->meta, "thingName",
	                    json_string(reenroll ? jstr(cur.meta, "thingName") : ""));
	json_object_set_new(id->meta, "clientId",
	                    json_string(o->client_id != NULL ? o->client_id
	                                : reenroll ? jstr(cur.meta, "clientId") : cn));
	if ((rc = save_meta(d, id->n, id->meta, err)) != IOTP_OK)
		goto local;
	goto out;
local:
	dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "local");
out:
	ident_cleanup(&cur);
	iotp_keystore_free(ks);
	iotp_keystore_free(tls_key);
	free(csr);
	free(cert);
	free(claim);
	return rc;
}

/* JITP / JITR: install the CA-signed certificate for id. */
static iotp_rc jitp_steps(iotp_device *d, const struct iotp_device_opts *o, struct ident *id,
                          struct iotp_failure *why, struct iotp_err *err)
{
	char *cert = NULL, cn[128];
	size_t len = 0;
	iotp_keystore *ks = NULL;
	X509 *x = NULL;
	char cid[PKI_CERT_ID_LEN + 1] = "";
	iotp_rc rc;

	if (o->cert_file == NULL) {
		rc = iotp_err_set(err, IOTP_ERR_CONFIG,
		                  "jitp needs --cert FILE: the device certificate signed by a CA "
		                  "registered with iotprov (chain may follow)");
		goto out;
	}
	if ((rc = util_read_file(o->cert_file, DEV_PEM_MAX, &cert, &len, err)) != IOTP_OK ||
	    (rc = open_uri(d, ident_key_uri(d, id->meta), &ks, err)) != IOTP_OK)
		goto out;
	if ((rc = pki_cert_parse(cert, len, &x, err)) != IOTP_OK)
		goto out;
	if (EVP_PKEY_eq(X509_get0_pubkey(x), iotp_keystore_pkey(ks)) != 1) {
		ERR_clear_error();
		rc = iotp_err_set(err, IOTP_ERR_CERT, "%s is not a certificate for the device key",
		                  o->cert_file);
		goto out;
	}
	pki_cert_id(x, cid, NULL);
	if (cert_cn(cert, len, cn, sizeof(cn)) != IOTP_OK)
		cn[0] = '\0';
	if ((rc = save_cert(d, id->n, cert, len, err)) != IOTP_OK)
		goto out;
	json_object_set_new(id->meta, "stage", json_string("registered"));
	json_object_set_new(id->meta, "certId", json_string(cid));
	json_object_set_new(id->meta, "thingName", json_string(""));
	json_object_set_new(id->meta, "clientId",
	                    json_string(o->client_id != NULL ? o->client_id
	                                : cn[0] ? cn : "iotprov-device"));
	rc = save_meta(d, id->n, id->meta, err);
out:
	if (rc != IOTP_OK)
		dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "jitp");
	X509_free(x);
	iotp_keystore_free(ks);
	free(cert);
	return rc;
}

/* Forgets the pending identity (state first, files after). */
static iotp_rc drop_pending(iotp_device *d, struct iotp_err *err)
{
	int p = d->pending;
	iotp_rc rc;

	d->pending = 0;
	if ((rc = save_state(d, err)) != IOTP_OK) {
		d->pending = p;
		return rc;
	}
	return ident_remove(d, p, err);
}

/* Announces a new pending identity for method m (and makes its new key
 * when asked), filling id. */
static iotp_rc start_identity(iotp_device *d, enum iotp_method m,
                              const struct iotp_device_opts *o, int rotate, struct ident *id,
                              struct iotp_err *err)
{
	int n = d->current + 1;
	char key_uri[2048];
	const char *base_key = "factory";
	iotp_rc rc;

	if (rotate) {
		/* Same key as the current identity unless a new one is asked. */
		struct ident cur;

		if ((rc = ident_load(d, d->current, &cur, err)) != IOTP_OK)
			return rc;
		util_strlcpy(key_uri, jstr(cur.meta, "keyUri"), sizeof(key_uri));
		ident_cleanup(&cur);
		base_key = key_uri;
	}
	if (o->new_key) {
		if ((rc = new_key_uri(d, n, key_uri, sizeof(key_uri), err)) != IOTP_OK)
			return rc;
		base_key = key_uri;
	}
	if ((rc = announce(d, n, iotp_method_name(m), base_key, &id->meta, err)) != IOTP_OK)
		return rc;
	id->n = n;
	/* A server-made key arrives with the certificate. */
	if (o->new_key && !(o->server_key && (m == IOTP_METHOD_CLAIM ||
	                                      m == IOTP_METHOD_TRUSTED_USER))) {
		char full[4096];

		say(o, "generating a new key %s", key_uri);
		if ((rc = resolve_uri(d, key_uri, full, sizeof(full), err)) != IOTP_OK ||
		    (rc = iotp_keystore_generate(full, IOTP_KEY_EC_P256, err)) != IOTP_OK)
			return rc;
	}
	return IOTP_OK;
}

static iotp_rc method_steps(iotp_device *d, const struct settings *s, enum iotp_method m,
                            const struct iotp_device_opts *o, struct ident *id, int rotate,
                            struct iotp_failure *why, struct iotp_err *err)
{
	switch (m) {
	case IOTP_METHOD_CLAIM:
	case IOTP_METHOD_TRUSTED_USER:
		return fleet_steps(d, s, m, o, id, why, err);
	case IOTP_METHOD_EST:
		return est_steps(d, s, o, id, rotate, why, err);
	case IOTP_METHOD_JITP:
		break;
	}
	if (rotate)
		return dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_UNSUPPORTED,
		                "a JITP certificate comes from its manufacturer: rotate with "
		                "--method claim or est");
	return jitp_steps(d, o, id, why, err);
}

/* Provision and rotate: build (or resume) the pending identity, then make
 * it current by connecting with it. */
static iotp_rc obtain(iotp_device *d, enum iotp_method m, const struct iotp_device_opts *o,
                      int rotate, struct iotp_failure *why, struct iotp_err *err)
{
	struct settings s;
	struct ident id;
	struct iotp_backoff b;
	int retries, resumed = 0, was_registered = 0, attempt = 1;
	iotp_rc rc;

	memset(&id, 0, sizeof(id));
	iotp_failure_clear(why);
	if ((rc = build_settings(d, o, &s, err)) != IOTP_OK)
		goto local;
	if ((rc = need_endpoint(&s, why, err)) != IOTP_OK)
		goto out;
	if ((rc = ensure_factory_key(d, o, err)) != IOTP_OK)
		goto local;
	if (!rotate && d->current != 0) {
		rc = dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_STATE,
		              "already provisioned (identity %d): use rotate, or reset first",
		              d->current);
		goto out;
	}
	if (rotate && d->current == 0) {
		rc = dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_STATE,
		              "not provisioned: nothing to rotate");
		goto out;
	}
	/* A pending identity of the same method is resumed (its token is
	 * still good for an hour); one of another method is dropped. */
	if (d->pending != 0) {
		if ((rc = ident_load(d, d->pending, &id, err)) != IOTP_OK)
			goto local;
		if (strcmp(jstr(id.meta, "method"), iotp_method_name(m)) == 0) {
			say(o, "resuming identity %d (stage %s)", id.n, jstr(id.meta, "stage"));
			resumed = 1;
			was_registered = strcmp(jstr(id.meta, "stage"), "registered") == 0;
		} else {
			ident_cleanup(&id);
			if ((rc = drop_pending(d, err)) != IOTP_OK)
				goto local;
		}
	}
	if (d->pending == 0 && (rc = start_identity(d, m, o, rotate, &id, err)) != IOTP_OK)
		goto local;
	iotp_backoff_init(&b, s.base_ms, s.cap_ms, (uint32_t)s.retries, 0);
	while (strcmp(jstr(id.meta, "stage"), "registered") != 0) {
		struct iotp_failure w;
		uint32_t delay;

		iotp_failure_clear(&w);
		rc = method_steps(d, &s, m, o, &id, rotate, &w, err);
		/* A saved token the service no longer takes (used by a run that
		 * was cut before it could record the answer, or expired): start
		 * over with a new certificate. */
		if (rc == IOTP_ERR_TOKEN && resumed) {
			say(o, "the saved ownership token was refused: starting over");
			resumed = 0;
			ident_cleanup(&id);
			if ((rc = drop_pending(d, err)) != IOTP_OK ||
			    (rc = start_identity(d, m, o, rotate, &id, err)) != IOTP_OK)
				goto local;
			continue;
		}
		if (rc == IOTP_OK)
			break;
		if (why != NULL)
			*why = w;
		/* Transient failures are retried with backoff and jitter, so a
		 * fleet that powers on at once spreads out; the pending identity
		 * keeps what was already done. */
		if (!transient(&w) || attempt > s.retries || !iotp_backoff_next(&b, &delay))
			goto out;
		say(o, "attempt %d failed (%s): %s; retrying in %u ms", attempt,
		    iotp_cause_name(w.cause), err != NULL ? err->msg : "", delay);
		dev_sleep_ms(delay);
		attempt++;
		ident_cleanup(&id);
		if ((rc = ident_load(d, d->pending, &id, err)) != IOTP_OK)
			goto local;
		resumed = 1;
	}
	iotp_failure_clear(why);
	/* JITP and JITR need retries: the first connection registers the
	 * certificate, and JITR refuses it until someone activates it. */
	retries = m == IOTP_METHOD_JITP || o->retries != 0 ? s.retries : 2;
	rc = activate_pending(d, &s, o, retries, why, err);
	/* An identity the service issued, that was refused before and is
	 * refused again, will not get better: drop it so that the next run
	 * starts over instead of resuming it forever. (A JITR certificate is
	 * refused until someone activates it: that one is kept.) */
	if (rc != IOTP_OK && was_registered && m != IOTP_METHOD_JITP && why != NULL &&
	    (why->cause == IOTP_CAUSE_REFUSED || why->cause == IOTP_CAUSE_TLS)) {
		say(o, "identity %d was refused again: dropped, the next run starts over", d->pending);
		drop_pending(d, NULL);
	}
	goto out;
local:
	dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "local");
out:
	ident_cleanup(&id);
	settings_cleanup(&s);
	return rc;
}

iotp_rc iotp_device_provision(iotp_device *d, enum iotp_method method,
                              const struct iotp_device_opts *opts, struct iotp_failure *why,
                              struct iotp_err *err)
{
	return obtain(d, method, opts, 0, why, err);
}

iotp_rc iotp_device_rotate(iotp_device *d, enum iotp_method method,
                           const struct iotp_device_opts *opts, struct iotp_failure *why,
                           struct iotp_err *err)
{
	return obtain(d, method, opts, 1, why, err);
}

iotp_rc iotp_device_connect(iotp_device *d, const struct iotp_device_opts *o,
                            struct iotp_failure *why, struct iotp_err *err)
{
	struct settings s;
	struct ident id;
	iotp_rc rc;

	memset(&id, 0, sizeof(id));
	iotp_failure_clear(why);
	if ((rc = build_settings(d, o, &s, err)) != IOTP_OK) {
		dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "settings");
		goto out;
	}
	if ((rc = need_endpoint(&s, why, err)) != IOTP_OK)
		goto out;
	if (d->pending != 0 && ident_load(d, d->pending, &id, NULL) == IOTP_OK &&
	    strcmp(jstr(id.meta, "stage"), "registered") == 0) {
		say(o, "trying identity %d, provisioned but not yet connected", d->pending);
		rc = activate_pending(d, &s, o, d->current != 0 ? 0 : s.retries, why, err);
		if (rc == IOTP_OK || d->current == 0)
			goto out;
		say(o, "identity %d did not connect (%s); keeping identity %d", d->pending,
		    err != NULL ? err->msg : "", d->current);
	}
	ident_cleanup(&id);
	if (d->current == 0) {
		rc = dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, err, IOTP_ERR_STATE,
		              "not provisioned: run iotprov-device provision first");
		goto out;
	}
	if ((rc = ident_load(d, d->current, &id, err)) != IOTP_OK) {
		dev_fail(why, IOTP_CAUSE_LOCAL, 0, NULL, NULL, rc, "identity");
		goto out;
	}
	rc = connect_ident(d, &s, &id, o, s.retries, why, err);
out:
	ident_cleanup(&id);
	settings_cleanup(&s);
	return rc;
}

iotp_rc iotp_device_reset(iotp_device *d, struct iotp_err *err)
{
	int cur = d->current, pend = d->pending;
	iotp_rc rc;

	/* Forget first, remove after: a crash in between leaves files that
	 * the next open removes as orphans. */
	d->current = d->pending = 0;
	if ((rc = save_state(d, err)) != IOTP_OK) {
		d->current = cur;
		d->pending = pend;
		return rc;
	}
	if (pend != 0 && (rc = ident_remove(d, pend, err)) != IOTP_OK)
		return rc;
	if (cur != 0 && (rc = ident_remove(d, cur, err)) != IOTP_OK)
		return rc;
	return recover(d, err);
}

iotp_rc iotp_device_status(iotp_device *d, struct iotp_device_status *out,
                           struct iotp_err *err)
{
	struct iotp_device_status st;
	struct ident id;
	iotp_keystore *ks = NULL;
	const char *uri;
	iotp_rc rc = IOTP_OK;

	memset(&st, 0, sizeof(st));
	memset(&id, 0, sizeof(id));
	st.provisioned = d->current != 0;
	st.pending = d->pending != 0;
	st.has_claim = file_exists(d, "claim.crt");
	util_strlcpy(st.endpoint, jstr(d->conf, "endpoint"), sizeof(st.endpoint));
	util_strlcpy(st.template_name, jstr(d->conf, "template"), sizeof(st.template_name));
	uri = factory_uri(d);
	if (d->current != 0) {
		X509 *x = NULL;

		if ((rc = ident_load(d, d->current, &id, err)) != IOTP_OK)
			goto out;
		util_strlcpy(st.method, jstr(id.meta, "method"), sizeof(st.method));
		util_strlcpy(st.thing_name, jstr(id.meta, "thingName"), sizeof(st.thing_name));
		util_strlcpy(st.client_id, jstr(id.meta, "clientId"), sizeof(st.client_id));
		util_strlcpy(st.cert_id, jstr(id.meta, "certId"), sizeof(st.cert_id));
		if (id.cert != NULL && pki_cert_parse(id.cert, id.cert_len, &x, NULL) == IOTP_OK)
			pki_cert_validity(x, &st.not_before, &st.not_after, NULL);
		X509_free(x);
		uri = ident_key_uri(d, id.meta);
	}
	util_strlcpy(st.key_uri, uri, sizeof(st.key_uri));
	if (factory_uri(d)[0] != '\0') {
		st.key_present = 1;
		if (open_uri(d, uri, &ks, NULL) == IOTP_OK)
			iotp_keystore_info(ks, &st.key, NULL);
		else
			st.key_present = 0;
	}
	*out = st;
out:
	iotp_keystore_free(ks);
	ident_cleanup(&id);
	return rc;
}

iotp_rc iotp_method_parse(const char *s, enum iotp_method *out, struct iotp_err *err)
{
	if (s != NULL && strcmp(s, "claim") == 0)
		*out = IOTP_METHOD_CLAIM;
	else if (s != NULL && strcmp(s, "trusted-user") == 0)
		*out = IOTP_METHOD_TRUSTED_USER;
	else if (s != NULL && strcmp(s, "est") == 0)
		*out = IOTP_METHOD_EST;
	else if (s != NULL && (strcmp(s, "jitp") == 0 || strcmp(s, "jitr") == 0))
		*out = IOTP_METHOD_JITP;
	else
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "unknown method '%s': use claim, trusted-user, est or jitp",
		                    s != NULL ? s : "");
	return IOTP_OK;
}

const char *iotp_method_name(enum iotp_method m)
{
	switch (m) {
	case IOTP_METHOD_CLAIM: return "claim";
	case IOTP_METHOD_TRUSTED_USER: return "trusted-user";
	case IOTP_METHOD_EST: return "est";
	case IOTP_METHOD_JITP: return "jitp";
	}
	return "unknown";
}
