/*
 * iotprov: the operator's command-line tool. This file only dispatches:
 * `iotprov <command> [<subcommand>] ...` to the cmd_* function of the
 * table below; each command parses its own options (cli.h).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "cli/iotprov/cli.h"
#include "common/log.h"

struct command {
	const char *group; /* "key", or NULL for a one-word command */
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{NULL, "init", cmd_init, "create a data directory: CAs, server certificate, config, "
	                         "first admin key"},
	{NULL, "up", cmd_up, "run iotprov in the foreground and print how to use it"},
	{"key", "create", cmd_key_create, "create an API access key (the secret is shown once)"},
	{"key", "list", cmd_key_list, "list the access keys"},
	{"key", "disable", cmd_key_disable, "disable an access key"},
	{"things", "ls", cmd_things_ls, "list the things in the registry"},
	{"certs", "ls", cmd_certs_ls, "list the device certificates"},
	{"cas", "ls", cmd_cas_ls, "list the CA certificates"},
	{"audit", "tail", cmd_audit_tail, "show (and follow) the audit log"},
	{NULL, "import", cmd_import, "register devices in bulk from a file (a thing registration task)"},
	{NULL, "commission", cmd_commission, "put a new device on the network and into the fleet"},
	{NULL, "check", cmd_check, "check the integrity of the store (references, chains, events)"},
};

static void usage(FILE *f, const char *group)
{
	fprintf(f, "usage: iotprov <command> [options]   (iotprov <command> --help for more)\n\n"
	           "iotprov provisions IoT devices: identities (keys and X.509 certificates),\n"
	           "a fleet registry and an AWS IoT compatible API, self-hosted.\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *c = &commands[i];
		char name[32];

		if (group != NULL && (c->group == NULL || strcmp(c->group, group) != 0))
			continue;
		snprintf(name, sizeof(name), "%s%s%s", c->group ? c->group : "", c->group ? " " : "",
		         c->name);
		fprintf(f, "  %-14s %s\n", name, c->summary);
	}
	fprintf(f, "\nExit status: 0 ok, 1 failure (explained on stderr), 2 bad usage.\n");
}

static int dispatch(int argc, char **argv)
{
	const char *first = argv[1];
	int group_known = 0;

	if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0 ||
	    strcmp(first, "help") == 0) {
		usage(stdout, NULL);
		return CLI_OK;
	}
	if (strcmp(first, "--version") == 0) {
		printf("iotprov 0.1.0\n");
		return CLI_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct command *c = &commands[i];

		if (c->group == NULL) {
			if (strcmp(first, c->name) == 0)
				return c->run(argc - 1, argv + 1);
			continue;
		}
		if (strcmp(first, c->group) != 0)
			continue;
		group_known = 1;
		if (argc > 2 && strcmp(argv[2], c->name) == 0)
			return c->run(argc - 2, argv + 2);
	}
	if (group_known) {
		if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
			usage(stdout, first);
			return CLI_OK;
		}
		fprintf(stderr, "iotprov %s: %s\n\n", first,
		        argc > 2 ? "unknown subcommand" : "missing subcommand");
		usage(stderr, first);
		return CLI_USAGE;
	}
	fprintf(stderr, "iotprov: unknown command '%s'\n\n", first);
	usage(stderr, NULL);
	return CLI_USAGE;
}

int main(int argc, char **argv)
{
	int status;

	if (argc < 2) {
		usage(stderr, NULL);
		return CLI_USAGE;
	}
	/* Everything iotprov writes (keys, the store and its WAL, credentials)
	 * is for the operator alone. */
	umask(077);
	/* The store and core log at info level (migrations...): a command's
	 * own output is what the operator should see. */
	iotp_log_set_level(IOTP_LOG_WARN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "iotprov: cannot initialise libcurl\n");
		return CLI_FAIL;
	}
	status = dispatch(argc, argv);
	curl_global_cleanup();
	return status;
}
