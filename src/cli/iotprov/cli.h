/*
 * iotprov, the operator's command-line tool: what every command file
 * shares. A command is one file (cmd_<name>.c) exporting a `cmd_*` entry
 * point listed in main.c's table; it parses its arguments with cli_parse()
 * against a `struct cli_spec` (which also writes its --help), reaches the
 * data directory through datadir.h or the API through client.h, and prints
 * with table.h.
 *
 * Exit status, everywhere: CLI_OK (0) success, CLI_FAIL (1) a failure the
 * command explained on stderr, CLI_USAGE (2) bad usage.
 */
#ifndef IOTP_CLI_H
#define IOTP_CLI_H

#include <stddef.h>
#include <stdio.h>

#define CLI_OK 0
#define CLI_FAIL 1
#define CLI_USAGE 2

#define CLI_DEFAULT_DATA_DIR "./iotprov-data"

/* One option of a command. Exactly one of value/flag is set: a value
 * option stores its argument (borrowed from argv) in *value, a flag
 * option sets *flag to 1. */
struct cli_opt {
	const char *name;     /* long name without "--" */
	char short_name;      /* 0 for none */
	const char *metavar;  /* value options: shown in help, e.g. "DIR" */
	const char *help;
	const char **value;
	int *flag;
};

struct cli_spec {
	const char *command;  /* "key create" */
	const char *synopsis; /* after "iotprov <command> " in the usage line */
	const char *about;    /* paragraph(s) for --help */
	const struct cli_opt *opts;
	size_t nopts;
	int min_args, max_args; /* positional arguments, max <= CLI_MAX_ARGS */
};

#define CLI_MAX_ARGS 8
#define CLI_HELP_SHOWN (-1)

/* Parses argv[1..argc-1] (argv[0] is the command name) against spec.
 * Options may come before, between or after positional arguments, as
 * "--name VALUE", "--name=VALUE" or "-x VALUE"; "--" ends the options.
 * Returns CLI_OK with the positional arguments in args[0..*nargs-1]
 * (borrowed from argv), CLI_HELP_SHOWN after printing --help to stdout (the
 * caller exits 0), or CLI_USAGE after printing what is wrong and the usage
 * line to stderr. */
int cli_parse(const struct cli_spec *spec, int argc, char **argv,
              const char *args[CLI_MAX_ARGS], int *nargs);
/* cli_parse's result as an exit status (CLI_HELP_SHOWN becomes CLI_OK). */
#define CLI_PARSE_EXIT(rc) ((rc) == CLI_HELP_SHOWN ? CLI_OK : (rc))
/* Prints "iotprov <command>: <message>" and a pointer to --help on stderr;
 * returns CLI_USAGE. */
int cli_usage_error(const struct cli_spec *spec, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prints "iotprov <command>: <message>" on stderr; returns CLI_FAIL. */
int cli_fail(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Shell-quotes s for a POSIX shell into out (single quotes when needed,
 * nothing added to plain words). Returns 0, or -1 when out is too small. */
int cli_shell_quote(const char *s, char *out, size_t size);

/* Formats epoch seconds as "2026-01-31T12:00:00Z" (UTC). */
void cli_time_format(double epoch_seconds, char *out, size_t size);

/* Commands (one file each). argv[0] is the command's name. */
int cmd_init(int argc, char **argv);
int cmd_up(int argc, char **argv);
int cmd_key_create(int argc, char **argv);
int cmd_key_list(int argc, char **argv);
int cmd_key_disable(int argc, char **argv);
int cmd_things_ls(int argc, char **argv);
int cmd_certs_ls(int argc, char **argv);
int cmd_cas_ls(int argc, char **argv);
int cmd_audit_tail(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_commission(int argc, char **argv);
int cmd_check(int argc, char **argv);

#endif
