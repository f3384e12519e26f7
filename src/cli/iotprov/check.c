/*
 * `iotprov check [--data-dir DIR] [--json] [--pending-grace S]`: the
 * store's integrity check (core/check.h) over the data directory's store,
 * read directly: iotprovd may be running (the check takes no lock and
 * blocks no writer) or not. Prints every problem found and a summary; exits
 * 1 when there is an error-severity problem, 0 when there are none (warnings
 * alone do not fail), 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/iotprov/cli.h"
#include "cli/iotprov/datadir.h"
#include "cli/iotprov/table.h"
#include "common/util.h"
#include "core/check.h"

#define CMD "check"

static int print_json(const struct datadir *d, const struct iotp_core *core,
                      const struct check_report *r)
{
	json_t *root, *list;
	char *text;

	root = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}}",
	                 "dataDir", d->path, "backend", store_backend_name(core->store), "ok",
	                 r->errors == 0, "errors", (json_int_t)r->errors, "warnings",
	                 (json_int_t)r->warnings, "problemsNotShown",
	                 (json_int_t)(r->errors + r->warnings - r->count), "checked", "rules",
	                 (json_int_t)r->rules, "certificates", (json_int_t)r->certificates, "cas",
	                 (json_int_t)r->cas, "things", (json_int_t)r->things, "events",
	                 (json_int_t)r->events);
	list = json_array();
	if (root == NULL || list == NULL || json_object_set_new(root, "problems", list) != 0) {
		json_decref(root);
		return cli_fail(CMD, "out of memory");
	}
	for (size_t i = 0; i < r->count; i++) {
		const struct check_problem *p = &r->problems[i];

		if (json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "severity",
		                                          check_severity_name(p->severity), "kind",
		                                          p->kind, "object", p->object, "detail",
		                                          p->detail)) != 0) {
			json_decref(root);
			return cli_fail(CMD, "out of memory");
		}
	}
	text = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	json_decref(root);
	if (text == NULL)
		return cli_fail(CMD, "out of memory");
	printf("%s\n", text);
	free(text);
	return CLI_OK;
}

static int print_text(const struct datadir *d, const struct iotp_core *core,
                      const struct check_report *r)
{
	static const char *const headers[] = {"SEVERITY", "KIND", "OBJECT", "DETAIL"};
	struct table *t;

	printf("checked the %s store of %s: %lld rules over %lld certificates, %lld CAs, "
	       "%lld things, %lld events\n",
	       store_backend_name(core->store), d->path, (long long)r->rules,
	       (long long)r->certificates, (long long)r->cas, (long long)r->things,
	       (long long)r->events);
	if (r->count > 0) {
		if ((t = table_new(4, headers)) == NULL)
			return cli_fail(CMD, "out of memory");
		for (size_t i = 0; i < r->count; i++) {
			const struct check_problem *p = &r->problems[i];
			const char *cells[] = {check_severity_name(p->severity), p->kind, p->object,
			                       p->detail};

			if (table_add(t, cells) != 0) {
				table_free(t);
				return cli_fail(CMD, "out of memory");
			}
		}
		table_print(t, stdout);
		table_free(t);
		if (r->errors + r->warnings > r->count)
			printf("(%zu more not shown)\n", r->errors + r->warnings - r->count);
	}
	if (r->errors == 0 && r->warnings == 0)
		printf("no problem found\n");
	else
		printf("%zu error(s), %zu warning(s)\n", r->errors, r->warnings);
	return CLI_OK;
}

int cmd_check(int argc, char **argv)
{
	const char *dir = NULL, *grace_s = NULL;
	int json = 0;
	const struct cli_opt opts[] = {
		{"data-dir", 0, "DIR", "data directory (default " CLI_DEFAULT_DATA_DIR ")", &dir, NULL},
		{"json", 0, NULL, "print the report as JSON", NULL, &json},
		{"pending-grace", 0, "S",
		 "seconds an expired ownership token may wait for the sweep (default 180)", &grace_s,
		 NULL},
	};
	const struct cli_spec spec = {
		CMD, "[--data-dir DIR] [--json] [--pending-grace S]",
		"Checks the integrity of the store: every reference points to an existing\n"
		"row, every policy target and thing principal exists, every ACTIVE\n"
		"certificate is signed by an ACTIVE CA (or was registered without one),\n"
		"no fleet-provisioned certificate waits PENDING_ACTIVATION past its token,\n"
		"and event ids only grow. Reads the store of --data-dir directly; iotprovd\n"
		"may be running.\n"
		"\n"
		"Exit status: 0 no error found (warnings may be printed), 1 errors found or\n"
		"the store could not be read (explained), 2 bad usage.",
		opts, sizeof(opts) / sizeof(opts[0]), 0, 0};
	const char *args[CLI_MAX_ARGS];
	struct check_opts copts = {0, -1};
	struct check_report rep = {0};
	struct datadir d;
	struct iotp_core core;
	struct iotp_err err;
	int nargs, rc, status = CLI_FAIL;

	if ((rc = cli_parse(&spec, argc, argv, args, &nargs)) != CLI_OK)
		return CLI_PARSE_EXIT(rc);
	if (grace_s != NULL &&
	    util_parse_int64(grace_s, 0, INT64_C(100000000), &copts.pending_grace) != IOTP_OK)
		return cli_usage_error(&spec, "--pending-grace takes seconds (0 or more), not '%s'",
		                       grace_s);
	if (datadir_open(&d, dir != NULL ? dir : CLI_DEFAULT_DATA_DIR, &err) != IOTP_OK)
		return cli_fail(CMD, "%s", err.msg);
	if (datadir_core_open(&d, &core, &err) != IOTP_OK) {
		rc = cli_fail(CMD, "cannot open the store of %s: %s", d.path, err.msg);
		datadir_close(&d);
		return rc;
	}
	if (check_run(core.store, &copts, &rep, &err) != IOTP_OK) {
		status = cli_fail(CMD, "the check could not read the store: %s", err.msg);
		goto out;
	}
	status = json ? print_json(&d, &core, &rep) : print_text(&d, &core, &rep);
	if (status == CLI_OK && rep.errors > 0) {
		fprintf(stderr, "iotprov %s: the store has %zu integrity error(s)\n", CMD, rep.errors);
		status = CLI_FAIL;
	}
out:
	check_report_cleanup(&rep);
	core_close(&core);
	datadir_close(&d);
	return status;
}
