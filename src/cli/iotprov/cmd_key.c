/*
 * `iotprov key create|list|disable`: access keys managed directly in the
 * data directory's store (core/accesskey.h), the local administrator's way
 * in that needs no running server and no existing key. The secret of a new
 * key is printed once, on stdout, so that `eval "$(iotprov key create ...)"`
 * works; the reminder that it is shown only once goes to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli/iotprov/cli.h"
#include "cli/iotprov/datadir.h"
#include "cli/iotprov/table.h"
#include "core/accesskey.h"

#define ACTOR "cli"

#define KEY_ABOUT_TAIL \
	"\n\nActs on the store of --data-dir DIR (default " CLI_DEFAULT_DATA_DIR ") directly;\n" \
	"iotprovd need not run. Exit status: 0 ok, 1 failure (explained), 2 bad usage."

/* Opens the data dir and a core on its store; explains failures. */
static int open_store(const char *command, const char *dir, struct datadir *d,
                      struct iotp_core *core)
{
	struct iotp_err err;

	if (datadir_open(d, dir != NULL ? dir : CLI_DEFAULT_DATA_DIR, &err) != IOTP_OK)
		return cli_fail(command, "%s", err.msg);
	if (datadir_core_open(d, core, &err) != IOTP_OK) {
		datadir_close(d);
		return cli_fail(command, "cannot open the store of %s: %s", d->path, err.msg);
	}
	return CLI_OK;
}

int cmd_key_create(int argc, char **argv)
{
	const char *dir = NULL, *role_s = NULL, *templates = NULL, *description = NULL;
	const char *format = "env";
	const struct cli_opt opts[] = {
		{"data-dir", 0, "DIR", "data directory (default " CLI_DEFAULT_DATA_DIR ")", &dir, NULL},
		{"role", 0, "ROLE", "admin, operator or installer (required)", &role_s, NULL},
		{"templates", 0, "T,...", "provisioning templates an installer key may use", &templates,
		 NULL},
		{"description", 0, "TEXT", "a note kept with the key", &description, NULL},
		{"format", 0, "FMT", "env (default: AWS_* lines) or json", &format, NULL},
	};
	const struct cli_spec spec = {
		"key create",
		"--role admin|operator|installer [--templates T,...] [--description D] "
		"[--format env|json] [--data-dir DIR]",
		"Creates an access key for the API and prints it. The secret is shown\n"
		"this once: store it now. Roles: admin (everything), operator (registry,\n"
		"certificates, CAs, policies, templates; not access keys), installer (only\n"
		"CreateProvisioningClaim for the --templates it lists).\n"
		"\n"
		"  eval \"$(iotprov key create --role operator)\"   # sets AWS_ACCESS_KEY_ID/...\n" KEY_ABOUT_TAIL,
		opts, sizeof(opts) / sizeof(opts[0]), 0, 0};
	const char *args[CLI_MAX_ARGS];
	enum accesskey_role role;
	struct accesskey key;
	struct datadir d;
	struct iotp_core core;
	struct iotp_err err;
	int nargs, rc, status = CLI_FAIL;

	if ((rc = cli_parse(&spec, argc, argv, args, &nargs)) != CLI_OK)
		return CLI_PARSE_EXIT(rc);
	if (role_s == NULL)
		return cli_usage_error(&spec, "--role is required (admin, operator or installer)");
	if (accesskey_role_parse(role_s, &role, &err) != IOTP_OK)
		return cli_usage_error(&spec, "--role: %s", err.msg);
	if (strcmp(format, "env") != 0 && strcmp(format, "json") != 0)
		return cli_usage_error(&spec, "--format must be env or json, not '%s'", format);
	if (role == ACCESSKEY_ROLE_INSTALLER && (templates == NULL || *templates == '\0'))
		return cli_usage_error(&spec, "an installer key needs --templates NAME,... (the "
		                              "provisioning templates it may use)");
	if (role != ACCESSKEY_ROLE_INSTALLER && templates != NULL)
		return cli_usage_error(&spec, "--templates applies to installer keys only");
	if ((rc = open_store(spec.command, dir, &d, &core)) != CLI_OK)
		return rc;
	if (accesskey_create(&core, ACTOR, role, templates, description, &key, &err) != IOTP_OK) {
		cli_fail(spec.command, "%s", err.msg);
		goto out;
	}
	if (strcmp(format, "json") == 0) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "accessKeyId", key.id,
		                      "secretAccessKey", key.secret, "role",
		                      accesskey_role_name(key.role), "templates",
		                      key.templates[0] ? key.templates : NULL, "description",
		                      key.description[0] ? key.description : NULL);
		char *text = j != NULL ? json_dumps(j, JSON_INDENT(2)) : NULL;

		if (text != NULL)
			printf("%s\n", text);
		if (text != NULL) {
			OPENSSL_cleanse(text, strlen(text));
			free(text);
		}
		json_decref(j);
		if (text == NULL) {
			accesskey_cleanup(&key);
			cli_fail(spec.command, "out of memory");
			goto out;
		}
	} else {
		printf("AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n", key.id, key.secret);
	}
	fflush(stdout);
	fprintf(stderr,
	        "iotprov key create: %s key %s created. Its secret is shown only this once.\n",
	        accesskey_role_name(key.role), key.id);
	accesskey_cleanup(&key);
	status = CLI_OK;
out:
	core_close(&core);
	datadir_close(&d);
	return status;
}

struct list_ctx {
	struct table *t;
	json_t *arr;
	int oom;
};

static int list_one(void *ud, const struct accesskey *k)
{
	struct list_ctx *x = ud;

	if (x->arr != NULL) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:I, s:o}", "accessKeyId", k->id,
		                      "role", accesskey_role_name(k->role), "status",
		                      k->active ? "ACTIVE" : "DISABLED", "templates",
		                      k->templates[0] ? k->templates : NULL, "description",
		                      k->description[0] ? k->description : NULL, "created",
		                      (json_int_t)k->created, "lastUsed",
		                      k->last_used ? json_integer(k->last_used) : json_null());

		if (o == NULL || json_array_append_new(x->arr, o) != 0)
			x->oom = 1;
	} else {
		char created[32], used[32] = "never";
		const char *cells[7];

		cli_time_format((double)k->created, created, sizeof(created));
		if (k->last_used)
			cli_time_format((double)k->last_used, used, sizeof(used));
		cells[0] = k->id;
		cells[1] = accesskey_role_name(k->role);
		cells[2] = k->active ? "ACTIVE" : "DISABLED";
		cells[3] = k->templates[0] ? k->templates : "-";
		cells[4] = created;
		cells[5] = used;
		cells[6] = k->description[0] ? k->description : "-";
		if (table_add(x->t, cells) != 0)
			x->oom = 1;
	}
	return x->oom;
}

int cmd_key_list(int argc, char **argv)
{
	const char *dir = NULL;
	int json = 0;
	const struct cli_opt opts[] = {
		{"data-dir", 0, "DIR", "data directory (default " CLI_DEFAULT_DATA_DIR ")", &dir, NULL},
		{"json", 0, NULL, "print JSON instead of a table", NULL, &json},
	};
	const struct cli_spec spec = {
		"key list", "[--data-dir DIR] [--json]",
		"Lists the access keys, oldest first, without their secrets: id, role,\n"
		"status, templates (installer keys), creation, last use, description." KEY_ABOUT_TAIL,
		opts, sizeof(opts) / sizeof(opts[0]), 0, 0};
	static const char *const headers[] = {"ID",      "ROLE",      "STATUS",     "TEMPLATES",
	                                      "CREATED", "LAST USED", "DESCRIPTION"};
	const char *args[CLI_MAX_ARGS];
	struct list_ctx x = {0};
	struct datadir d;
	struct iotp_core core;
	struct iotp_err err;
	int nargs, rc, status = CLI_FAIL;

	if ((rc = cli_parse(&spec, argc, argv, args, &nargs)) != CLI_OK)
		return CLI_PARSE_EXIT(rc);
	if ((rc = open_store(spec.command, dir, &d, &core)) != CLI_OK)
		return rc;
	if (json)
		x.arr = json_array();
	else
		x.t = table_new(7, headers);
	if (x.arr == NULL && x.t == NULL) {
		cli_fail(spec.command, "out of memory");
		goto out;
	}
	if (accesskey_list(&core, list_one, &x, &err) != IOTP_OK) {
		cli_fail(spec.command, "%s", err.msg);
		goto out;
	}
	if (x.oom) {
		cli_fail(spec.command, "out of memory");
		goto out;
	}
	if (json) {
		json_t *doc = json_pack("{s:O}", "accessKeys", x.arr);

		if (doc == NULL || json_dumpf(doc, stdout, JSON_INDENT(2)) != 0) {
			json_decref(doc);
			cli_fail(spec.command, "cannot write the JSON output");
			goto out;
		}
		json_decref(doc);
		putchar('\n');
	} else if (table_rows(x.t) == 0) {
		printf("no access keys\n");
	} else {
		table_print(x.t, stdout);
	}
	status = fflush(stdout) == 0 ? CLI_OK : cli_fail(spec.command, "cannot write the output");
out:
	json_decref(x.arr);
	table_free(x.t);
	core_close(&core);
	datadir_close(&d);
	return status;
}

int cmd_key_disable(int argc, char **argv)
{
	const char *dir = NULL;
	const struct cli_opt opts[] = {
		{"data-dir", 0, "DIR", "data directory (default " CLI_DEFAULT_DATA_DIR ")", &dir, NULL},
	};
	const struct cli_spec spec = {
		"key disable", "ACCESS_KEY_ID [--data-dir DIR]",
		"Disables an access key: requests signed with it are refused from now on.\n"
		"Disabling cannot be undone; create a new key instead." KEY_ABOUT_TAIL,
		opts, sizeof(opts) / sizeof(opts[0]), 1, 1};
	const char *args[CLI_MAX_ARGS];
	struct datadir d;
	struct iotp_core core;
	struct iotp_err err;
	int nargs, rc, status = CLI_FAIL;

	if ((rc = cli_parse(&spec, argc, argv, args, &nargs)) != CLI_OK)
		return CLI_PARSE_EXIT(rc);
	if (!accesskey_id_valid(args[0]))
		return cli_usage_error(&spec,
		                       "'%s' is not an access key id (AKIA and 16 more letters or "
		                       "digits; see `iotprov key list`)",
		                       args[0]);
	if ((rc = open_store(spec.command, dir, &d, &core)) != CLI_OK)
		return rc;
	if (accesskey_disable(&core, ACTOR, args[0], &err) != IOTP_OK) {
		if (err.rc == IOTP_ERR_NOT_FOUND)
			cli_fail(spec.command, "no access key %s in %s (see `iotprov key list`)", args[0],
			         d.path);
		else
			cli_fail(spec.command, "%s", err.msg);
		goto out;
	}
	printf("access key %s disabled\n", args[0]);
	status = CLI_OK;
out:
	core_close(&core);
	datadir_close(&d);
	return status;
}
