/*
 * `iotprov init`: creates a data directory, complete or not at all.
 *
 * Everything is built in a fresh hidden sibling directory (mkdtemp, mode
 * 0700) and renamed into place at the end, so a failure or an interrupt
 * leaves either no data directory or a whole one, never half of one. An
 * existing data directory is never touched: init says so and succeeds.
 * SIGINT, SIGTERM and SIGHUP are held while building and delivered after
 * the directory is complete or removed.
 *
 * Files (the "Command-line and file contract" of ARCHITECTURE.md):
 *   iotprov.conf          every option, commented, with its default
 *   root-ca.crt/.key      root CA (key 0600)
 *   issuing-ca.crt/.key   issuing CA that signs device certificates (0600)
 *   server.crt/.key       TLS certificate of the API and the broker (chain:
 *                         server + issuing CA), key 0600
 *   ca-bundle.pem         the root: what API and MQTT clients trust
 *   iotprov.db            the registry, with both CAs recorded (origin ROOT
 *                         and ISSUING); with --store postgresql://... these
 *                         records go to that database instead, which must
 *                         not hold another data directory's registry
 *   admin-credentials     the first admin access key, an AWS shared-
 *                         credentials file, profile iotprov, mode 0600
 *   import/               where bulk registration input files go
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <openssl/crypto.h>

#include "cli/iotprov/cli.h"
#include "cli/iotprov/datadir.h"
#include "common/log.h"
#include "common/util.h"
#include "core/accesskey.h"
#include "core/pki.h"
#include "core/setup.h"

#define ACTOR "cli:init"
#define DEFAULT_SERVER_NAMES "localhost,127.0.0.1,::1"

/* What init builds, for the one exit path. */
struct build {
	struct iotp_conf conf;
	char dir[PATH_MAX];      /* the temporary directory */
	struct pki_ca root, issuing;
	EVP_PKEY *server_key;
	X509 *server_cert;
	struct iotp_core core;
	int core_open;
	struct accesskey key;
	int in_tx;               /* the records' transaction is open */
	char suffix[9];          /* random, tells this install's CAs apart */
};

/* Removes the entries of the open directory dfd (closed here), depth
 * first, without following symbolic links. */
static void remove_entries(int dfd)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;

	if (d == NULL) {
		close(dfd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		int sub;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			continue;
		sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			remove_entries(sub);
			unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
		}
	}
	closedir(d);
}

/* Removes the temporary directory this run created, and only that. */
static void remove_tree(const char *dir)
{
	int dfd;

	if (dir[0] == '\0')
		return;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd >= 0)
		remove_entries(dfd);
	rmdir(dir);
}

/* 1 when dir has entries besides . and .., 0 when empty, -1 on error. */
static int dir_has_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			found = 1;
			break;
		}
	closedir(d);
	return found;
}

static iotp_rc path_in(const struct build *b, const char *name, char *out, size_t size,
                       struct iotp_err *err)
{
	return conf_path(&b->conf, name, out, size, err);
}

static iotp_rc write_pem(const struct build *b, const char *name, X509 *const *certs, size_t n,
                         struct iotp_err *err)
{
	char path[PATH_MAX];
	struct buf out;
	iotp_rc rc;

	if ((rc = path_in(b, name, path, sizeof(path), err)) != IOTP_OK)
		return rc;
	buf_init(&out, 0);
	for (size_t i = 0; i < n && rc == IOTP_OK; i++) {
		char *pem = NULL;

		if ((rc = pki_cert_to_pem(certs[i], &pem, err)) == IOTP_OK)
			rc = buf_puts(&out, pem);
		free(pem);
	}
	if (rc == IOTP_OK)
		rc = util_write_file(path, out.data, out.len, 0644, err);
	buf_cleanup(&out);
	return rc;
}

static iotp_rc write_key(const struct build *b, const char *name, EVP_PKEY *key,
                         struct iotp_err *err)
{
	char path[PATH_MAX];
	iotp_rc rc;

	if ((rc = path_in(b, name, path, sizeof(path), err)) != IOTP_OK)
		return rc;
	return pki_key_write_file(key, path, err);
}

/* The server names: the defaults, then the extra ones, without repeats. */
static iotp_rc server_names(const char *extra, char *out, size_t size, struct iotp_err *err)
{
	struct buf b;
	const char *p = extra;
	iotp_rc rc;

	buf_init(&b, size - 1);
	rc = buf_puts(&b, DEFAULT_SERVER_NAMES);
	while (rc == IOTP_OK && p != NULL && *p != '\0') {
		const char *end = strchr(p, ',');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		char name[256];

		if (n == 0 || n >= sizeof(name) ||
		    strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:*") < n) {
			rc = iotp_err_set(err, IOTP_ERR_INVALID,
			                  "--server-names: '%.*s' is not a DNS name or IP address", (int)n,
			                  p);
			break;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		{
			/* Already present as a whole item? */
			size_t len = b.len;
			const char *q = b.data;
			int dup = 0;

			while (q != NULL && q < b.data + len) {
				const char *qe = strchr(q, ',');
				size_t qn = qe != NULL ? (size_t)(qe - q) : strlen(q);

				if (qn == n && strncmp(q, name, n) == 0)
					dup = 1;
				q = qe != NULL ? qe + 1 : NULL;
			}
			if (!dup)
				rc = buf_printf(&b, ",%s", name);
		}
		p = end != NULL ? end + 1 : NULL;
	}
	if (rc == IOTP_ERR_TOO_BIG)
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "--server-names: too many names");
	if (rc == IOTP_OK)
		util_strlcpy(out, b.data, size);
	buf_cleanup(&b);
	return rc;
}

/* The configuration file: written from conf and read back, so that init
 * never leaves a file iotprovd would refuse. */
static iotp_rc write_conf(const struct build *b, struct iotp_err *err)
{
	struct iotp_conf *check = malloc(sizeof(*check));
	char path[PATH_MAX];
	struct buf out;
	iotp_rc rc;

	if (check == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	buf_init(&out, 0);
	conf_init(check, b->dir);
	if ((rc = conf_format(&b->conf, &out)) != IOTP_OK ||
	    (rc = conf_load_string(check, out.data, err)) != IOTP_OK ||
	    (rc = conf_validate(check, err)) != IOTP_OK)
		goto out;
	if ((rc = path_in(b, DATADIR_CONF, path, sizeof(path), err)) != IOTP_OK)
		goto out;
	rc = util_write_file(path, out.data, out.len, 0644, err);
out:
	buf_cleanup(&out);
	free(check);
	return rc;
}

static iotp_rc make_pki(struct build *b, struct iotp_err *err)
{
	enum pki_key_type type;
	char cn[64];
	unsigned char rnd[4];
	int days = (int)b->conf.pki_ca_days;
	iotp_rc rc;

	if ((rc = pki_key_type_parse(b->conf.pki_key_type, &type, err)) != IOTP_OK ||
	    (rc = util_random(rnd, sizeof(rnd), err)) != IOTP_OK)
		return rc;
	util_hex(rnd, sizeof(rnd), b->suffix);
	snprintf(cn, sizeof(cn), "iotprov Root CA %s", b->suffix);
	if ((rc = pki_key_generate(type, &b->root.key, err)) != IOTP_OK ||
	    (rc = pki_ca_create_root(b->root.key, cn, days, &b->root.cert, err)) != IOTP_OK)
		return rc;
	snprintf(cn, sizeof(cn), "iotprov Issuing CA %s", b->suffix);
	if ((rc = pki_key_generate(type, &b->issuing.key, err)) != IOTP_OK ||
	    (rc = pki_ca_create_issuing(&b->root, b->issuing.key, cn, days, &b->issuing.cert,
	                                err)) != IOTP_OK)
		return rc;
	if ((rc = pki_key_generate(type, &b->server_key, err)) != IOTP_OK ||
	    (rc = pki_server_cert_create(&b->issuing, b->server_key, b->conf.pki_server_names, days,
	                                 &b->server_cert, err)) != IOTP_OK)
		return rc;
	{
		X509 *chain[] = {b->server_cert, b->issuing.cert};

		if ((rc = write_key(b, b->conf.pki_root_key, b->root.key, err)) != IOTP_OK ||
		    (rc = write_pem(b, b->conf.pki_root_cert, &b->root.cert, 1, err)) != IOTP_OK ||
		    (rc = write_key(b, b->conf.pki_issuing_key, b->issuing.key, err)) != IOTP_OK ||
		    (rc = write_pem(b, b->conf.pki_issuing_cert, &b->issuing.cert, 1, err)) !=
		            IOTP_OK ||
		    (rc = write_key(b, b->conf.api_tls_key, b->server_key, err)) != IOTP_OK ||
		    (rc = write_pem(b, b->conf.api_tls_cert, chain, 2, err)) != IOTP_OK ||
		    (rc = write_pem(b, DATADIR_CA_BUNDLE, &b->root.cert, 1, err)) != IOTP_OK)
			return rc;
	}
	return IOTP_OK;
}

/* The store's records, in one transaction that build_all commits once the
 * configuration is written: a failed init leaves no records in a shared
 * PostgreSQL database either. A database that already holds a registry
 * (its own CAs) belongs to another data directory: copying that directory
 * is the way to add a host (docs/scale-out.md), a second set of CAs is not. */
static iotp_rc make_store(struct build *b, struct iotp_err *err)
{
	char url[CONF_STR_MAX * 2], path[PATH_MAX];
	struct store *st = NULL;
	struct buf creds;
	int64_t own = 0;
	iotp_rc rc;

	if ((rc = conf_store_url(&b->conf, url, sizeof(url), err)) != IOTP_OK ||
	    (rc = store_open(url, &st, err)) != IOTP_OK)
		return rc;
	core_init_with_store(&b->core, &b->conf, st);
	b->core_open = 1;
	if ((rc = store_begin(st, err)) != IOTP_OK)
		return rc;
	b->in_tx = 1;
	if ((rc = store_query_int(st, "SELECT COUNT(*) FROM cas WHERE origin IN ('ROOT', 'ISSUING')",
	                          NULL, 0, &own, err)) != IOTP_OK)
		return rc;
	if (own > 0)
		return iotp_err_set(err, IOTP_ERR_EXISTS,
		                    "the %s store already holds the registry of another data directory "
		                    "(its CAs): to add a host, copy that data directory "
		                    "(docs/scale-out.md); for a new deployment use an empty database",
		                    store_backend_name(st));
	if ((rc = setup_own_ca_record(&b->core, ACTOR, b->root.cert, "ROOT", err)) != IOTP_OK ||
	    (rc = setup_own_ca_record(&b->core, ACTOR, b->issuing.cert, "ISSUING", err)) !=
	            IOTP_OK ||
	    (rc = accesskey_create(&b->core, ACTOR, ACCESSKEY_ROLE_ADMIN, NULL,
	                           "first admin key (iotprov init)", &b->key, err)) != IOTP_OK)
		return rc;
	if ((rc = path_in(b, DATADIR_CREDENTIALS, path, sizeof(path), err)) != IOTP_OK)
		return rc;
	buf_init(&creds, 0);
	rc = creds_format(&creds, DATADIR_PROFILE, b->key.id, b->key.secret, b->conf.region);
	if (rc == IOTP_OK)
		rc = util_write_file(path, creds.data, creds.len, 0600, err);
	buf_cleanup_secure(&creds);
	if (rc != IOTP_OK)
		return rc;
	/* The store holds the access keys' secrets (SigV4 needs them): as
	 * private as the CA keys. SQLite gives its -wal and -shm files the
	 * database file's mode. */
	if (strncmp(url, "sqlite:", 7) == 0 && chmod(url + 7, 0600) != 0)
		return iotp_err_set(err, IOTP_ERR_IO, "chmod %s: %s", url + 7, strerror(errno));
	return IOTP_OK;
}

static iotp_rc build_all(struct build *b, struct iotp_err *err)
{
	char path[PATH_MAX];
	iotp_rc rc;

	if ((rc = conf_validate(&b->conf, err)) != IOTP_OK || (rc = make_pki(b, err)) != IOTP_OK ||
	    (rc = make_store(b, err)) != IOTP_OK ||
	    (rc = path_in(b, b->conf.prov_import_dir, path, sizeof(path), err)) != IOTP_OK ||
	    (rc = util_mkdir(path, 0700, err)) != IOTP_OK)
		return rc;
	/* Last, so that a directory with iotprov.conf is always complete. */
	if ((rc = write_conf(b, err)) != IOTP_OK)
		return rc;
	b->in_tx = 0;
	rc = store_commit(b->core.store, err);
	core_close(&b->core);
	b->core_open = 0;
	return rc;
}

static void build_cleanup(struct build *b)
{
	if (b->in_tx)
		store_rollback(b->core.store);
	if (b->core_open)
		core_close(&b->core);
	accesskey_cleanup(&b->key);
	pki_ca_cleanup(&b->root);
	pki_ca_cleanup(&b->issuing);
	EVP_PKEY_free(b->server_key);
	X509_free(b->server_cert);
}

static void print_summary(const char *path, const struct build *b)
{
	int sqlite = strncmp(b->conf.store_url, "sqlite:", 7) == 0;

	printf("iotprov init: created %s\n"
	       "  %-22s configuration: every option with its default (docs/config.md)\n"
	       "  %-22s the root CA certificate: what API and MQTT clients trust\n"
	       "  %-22s root CA \"iotprov Root CA %s\" (key mode 0600)\n"
	       "  %-22s issuing CA that signs device certificates (key mode 0600)\n"
	       "  %-22s TLS certificate of the API and broker for %s\n"
	       "  %-22s the registry (%s)\n"
	       "  %-22s first admin access key %s (profile %s, mode 0600)\n"
	       "Next: iotprov up --data-dir %s\n",
	       path, DATADIR_CONF, DATADIR_CA_BUNDLE, "root-ca.crt, .key", b->suffix,
	       "issuing-ca.crt, .key", "server.crt, .key", b->conf.pki_server_names,
	       sqlite ? "iotprov.db" : "[store] url",
	       sqlite ? "SQLite" : "PostgreSQL, holding the CA records and the key",
	       DATADIR_CREDENTIALS, b->key.id, DATADIR_PROFILE, path);
}

int cmd_init(int argc, char **argv)
{
	const char *dir = CLI_DEFAULT_DATA_DIR, *key_type = NULL, *names = NULL, *store = NULL;
	const struct cli_opt opts[] = {
		{"data-dir", 0, "DIR", "where to create it (default " CLI_DEFAULT_DATA_DIR ")", &dir,
		 NULL},
		{"key-type", 0, "TYPE", "key type of the CAs and server key: ec-p256 (default), "
		 "ec-p384, rsa-2048", &key_type, NULL},
		{"server-names", 0, "NAMES", "extra DNS names and IPs for the server certificate, "
		 "comma-separated", &names, NULL},
		{"store", 0, "URL", "where the registry lives: postgresql://... for scale-out "
		 "(default sqlite:iotprov.db in the data directory)", &store, NULL},
	};
	const struct cli_spec spec = {
		"init", "[--data-dir DIR] [--key-type TYPE] [--server-names NAMES] [--store URL]",
		"Creates a data directory (mode 0700): a root CA and an issuing CA, the\n"
		"server certificate of the API and broker (for localhost, 127.0.0.1, ::1 and\n"
		"--server-names), ca-bundle.pem for clients, iotprov.conf with every option\n"
		"and its default, the registry (SQLite) and a first admin access key in\n"
		"admin-credentials (an AWS shared-credentials file, profile iotprov).\n"
		"Private keys and credentials are mode 0600.\n"
		"\n"
		"With --store postgresql://... the registry is that PostgreSQL database\n"
		"(written to [store] url): init creates its schema and records the CAs and\n"
		"the first key there. The database must not hold another data directory's\n"
		"registry; to add a host to a deployment, copy its data directory instead\n"
		"(docs/scale-out.md).\n"
		"\n"
		"An existing data directory is never changed: init says so and exits 0.\n"
		"A failed init leaves nothing behind.\n"
		"\n"
		"Exit status: 0 created or already there, 1 failure (explained), 2 bad usage.",
		opts, sizeof(opts) / sizeof(opts[0]), 0, 0};
	const char *args[CLI_MAX_ARGS];
	char copy1[PATH_MAX], copy2[PATH_MAX], parent[PATH_MAX], base[NAME_MAX + 1];
	char tmpl[PATH_MAX], final[PATH_MAX];
	struct build *b = NULL;
	struct stat st;
	struct iotp_err err;
	sigset_t hold, old;
	int nargs, rc, status = CLI_FAIL, held = 0;

	if ((rc = cli_parse(&spec, argc, argv, args, &nargs)) != CLI_OK)
		return CLI_PARSE_EXIT(rc);
	if (dir[0] == '\0')
		return cli_usage_error(&spec, "--data-dir must not be empty");
	if (util_strlcpy(copy1, dir, sizeof(copy1)) >= sizeof(copy1))
		return cli_usage_error(&spec, "--data-dir path too long");
	util_strlcpy(copy2, dir, sizeof(copy2));
	util_strlcpy(parent, dirname(copy1), sizeof(parent));
	util_strlcpy(base, basename(copy2), sizeof(base));
	if (strcmp(base, "/") == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return cli_usage_error(&spec, "--data-dir %s: name a new directory, e.g. %s", dir,
		                       CLI_DEFAULT_DATA_DIR);

	/* An existing directory: complete (leave it), empty (fill it) or
	 * something else (refuse). */
	if (stat(dir, &st) == 0) {
		char conf[PATH_MAX];
		int has;

		if (!S_ISDIR(st.st_mode))
			return cli_fail(spec.command, "%s exists and is not a directory: choose another "
			                              "--data-dir",
			                dir);
		snprintf(conf, sizeof(conf), "%s/%s", dir, DATADIR_CONF);
		if (access(conf, F_OK) == 0) {
			printf("iotprov init: %s is already a data directory (it has %s); nothing was "
			       "changed.\nStart it with: iotprov up --data-dir %s\n",
			       dir, DATADIR_CONF, dir);
			return CLI_OK;
		}
		has = dir_has_entries(dir);
		if (has != 0)
			return cli_fail(spec.command,
			                "%s exists and is not empty, but it is not an iotprov data "
			                "directory (no %s): choose another --data-dir, or empty it",
			                dir, DATADIR_CONF);
	} else if (errno != ENOENT) {
		return cli_fail(spec.command, "cannot use %s: %s", dir, strerror(errno));
	}
	if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode))
		return cli_fail(spec.command, "the parent directory %s does not exist: create it first",
		                parent);

	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return cli_fail(spec.command, "out of memory");
	if ((size_t)snprintf(tmpl, sizeof(tmpl), "%s/.%s.tmp-XXXXXX", parent, base) >=
	    sizeof(tmpl)) {
		cli_fail(spec.command, "--data-dir path too long");
		goto out;
	}
	sigemptyset(&hold);
	sigaddset(&hold, SIGINT);
	sigaddset(&hold, SIGTERM);
	sigaddset(&hold, SIGHUP);
	sigprocmask(SIG_BLOCK, &hold, &old);
	held = 1;
	if (mkdtemp(tmpl) == NULL) {
		cli_fail(spec.command, "cannot create a directory next to %s: %s", dir,
		         strerror(errno));
		goto out;
	}
	util_strlcpy(b->dir, tmpl, sizeof(b->dir));
	conf_init(&b->conf, b->dir);
	if (key_type != NULL &&
	    (util_strlcpy(b->conf.pki_key_type, key_type, sizeof(b->conf.pki_key_type)) >=
	             sizeof(b->conf.pki_key_type) ||
	     conf_validate(&b->conf, &err) != IOTP_OK)) {
		status = cli_usage_error(&spec, "--key-type: '%s' is not ec-p256, ec-p384 or rsa-2048",
		                         key_type);
		goto out;
	}
	if (store != NULL &&
	    (util_strlcpy(b->conf.store_url, store, sizeof(b->conf.store_url)) >=
	             sizeof(b->conf.store_url) ||
	     conf_validate(&b->conf, &err) != IOTP_OK)) {
		/* not echoed: a URL may carry a password */
		status = cli_usage_error(&spec, "--store: give sqlite:PATH or a postgresql:// URL "
		                                "(at most %d characters)",
		                         CONF_STR_MAX - 1);
		goto out;
	}
	if (server_names(names, b->conf.pki_server_names, sizeof(b->conf.pki_server_names),
	                 &err) != IOTP_OK) {
		status = cli_usage_error(&spec, "%s", err.msg);
		goto out;
	}
	if (build_all(b, &err) != IOTP_OK) {
		cli_fail(spec.command, "cannot create %s: %s (nothing was left behind)", dir, err.msg);
		goto out;
	}
	if (rename(b->dir, dir) != 0) {
		cli_fail(spec.command, "cannot create %s: %s (nothing was left behind)", dir,
		         errno == ENOTEMPTY || errno == EEXIST
		                 ? "another program created it meanwhile"
		                 : strerror(errno));
		goto out;
	}
	b->dir[0] = '\0'; /* it is the data directory now: keep it */
	if (realpath(dir, final) == NULL)
		util_strlcpy(final, dir, sizeof(final));
	print_summary(final, b);
	status = CLI_OK;
out:
	if (b != NULL) {
		build_cleanup(b);
		remove_tree(b->dir);
		OPENSSL_cleanse(b, sizeof(*b));
		free(b);
	}
	fflush(stdout);
	if (held)
		sigprocmask(SIG_SETMASK, &old, NULL);
	return status;
}
