/*
 * Argument parsing and the small formatting helpers every iotprov command
 * uses (see cli.h). A command describes its options once, in a table, and
 * gets both the parser and its --help from it, so the two cannot disagree.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/iotprov/cli.h"

static void print_help(const struct cli_spec *spec)
{
	printf("usage: iotprov %s%s%s\n\n%s\n", spec->command, spec->synopsis[0] ? " " : "",
	       spec->synopsis, spec->about);
	printf("\noptions:\n");
	for (size_t i = 0; i < spec->nopts; i++) {
		const struct cli_opt *o = &spec->opts[i];
		char left[64];

		if (o->short_name)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->name,
			         o->metavar ? " " : "", o->metavar ? o->metavar : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->name, o->metavar ? " " : "",
			         o->metavar ? o->metavar : "");
		printf("  %-26s %s\n", left, o->help);
	}
	printf("  %-26s %s\n", "-h, --help", "show this help and exit");
}

int cli_usage_error(const struct cli_spec *spec, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "iotprov %s: ", spec->command);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: iotprov %s%s%s\n(see `iotprov %s --help`)\n", spec->command,
	        spec->synopsis[0] ? " " : "", spec->synopsis, spec->command);
	return CLI_USAGE;
}

int cli_fail(const char *command, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "iotprov %s: ", command);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_FAIL;
}

static const struct cli_opt *find_long(const struct cli_spec *spec, const char *name,
                                       size_t len)
{
	for (size_t i = 0; i < spec->nopts; i++)
		if (strlen(spec->opts[i].name) == len && strncmp(spec->opts[i].name, name, len) == 0)
			return &spec->opts[i];
	return NULL;
}

static const struct cli_opt *find_short(const struct cli_spec *spec, char c)
{
	for (size_t i = 0; i < spec->nopts; i++)
		if (spec->opts[i].short_name == c)
			return &spec->opts[i];
	return NULL;
}

int cli_parse(const struct cli_spec *spec, int argc, char **argv,
              const char *args[CLI_MAX_ARGS], int *nargs)
{
	int n = 0, only_args = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *inline_value = NULL;
		const struct cli_opt *o = NULL;

		if (only_args || a[0] != '-' || a[1] == '\0') {
			if (n >= spec->max_args || n >= CLI_MAX_ARGS)
				return cli_usage_error(spec, "unexpected argument '%s'", a);
			args[n++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = 1;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			print_help(spec);
			return CLI_HELP_SHOWN;
		}
		if (a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq != NULL ? (size_t)(eq - (a + 2)) : strlen(a + 2);

			o = find_long(spec, a + 2, len);
			if (o == NULL)
				return cli_usage_error(spec, "unknown option --%.*s", (int)len, a + 2);
			if (eq != NULL)
				inline_value = eq + 1;
		} else {
			if (a[2] != '\0' || (o = find_short(spec, a[1])) == NULL)
				return cli_usage_error(spec, "unknown option %s", a);
		}
		if (o->flag != NULL) {
			if (inline_value != NULL)
				return cli_usage_error(spec, "--%s takes no value", o->name);
			*o->flag = 1;
			continue;
		}
		if (inline_value == NULL) {
			if (i + 1 >= argc)
				return cli_usage_error(spec, "--%s needs a value (%s)", o->name, o->metavar);
			inline_value = argv[++i];
		}
		*o->value = inline_value;
	}
	if (n < spec->min_args)
		return cli_usage_error(spec, "missing argument");
	*nargs = n;
	return CLI_OK;
}

int cli_shell_quote(const char *s, char *out, size_t size)
{
	size_t o = 0;
	int plain = s[0] != '\0';

	for (const char *p = s; *p != '\0'; p++)
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:,=@%",
		           *p) == NULL)
			plain = 0;
	if (plain) {
		if (strlen(s) >= size)
			return -1;
		memcpy(out, s, strlen(s) + 1);
		return 0;
	}
	/* 'it'\''s': close the quote, an escaped quote, reopen. */
	if (o + 1 >= size)
		return -1;
	out[o++] = '\'';
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '\'') {
			if (o + 4 >= size)
				return -1;
			memcpy(out + o, "'\\''", 4);
			o += 4;
		} else {
			if (o + 1 >= size)
				return -1;
			out[o++] = *p;
		}
	}
	if (o + 2 > size)
		return -1;
	out[o++] = '\'';
	out[o] = '\0';
	return 0;
}

void cli_time_format(double epoch_seconds, char *out, size_t size)
{
	time_t t = (time_t)epoch_seconds;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, size, "%.0f", epoch_seconds);
}
