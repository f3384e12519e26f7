/*
 * iotprov-device: the device agent on libiotprov-device. This file
 * dispatches to the commands and holds the helpers they share (usage and
 * failure reporting, option parsing).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli/iotprov-device/cli.h"
#include "common/util.h"

static const char usage_text[] =
	"usage: iotprov-device <command> [options]\n"
	"\n"
	"The device side of iotprov: keys, provisioning by every method, rotation,\n"
	"factory reset, and a simulator of many devices.\n"
	"\n"
	"commands:\n"
	"  keygen     create the factory key (a 0600 file or inside a PKCS#11 token)\n"
	"  csr        print a CSR signed by the device key\n"
	"  provision  get an identity: --method claim|trusted-user|est|jitp\n"
	"  status     identity, certificate expiry, thing name, key protection\n"
	"  connect    connect with the identity and publish a test message\n"
	"  rotate     new certificate (same or new key); the old one is kept until\n"
	"             the new one has connected\n"
	"  reset      back to the factory state (factory key and claim kept)\n"
	"  simulate   provision N virtual devices concurrently and report\n"
	"  commission wait for an installer: network and trusted-user claim over\n"
	"             the local web page, a serial console or removable media\n"
	"\n"
	"Every command takes --help. Device state lives in --state-dir DIR\n"
	"(default $IOTP_DEVICE_STATE_DIR, else " DEFAULT_STATE_DIR ").\n"
	"Exit status: 0 success, 1 failure (explained), 2 bad usage.\n";

int cli_usage(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "iotprov-device %s: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'iotprov-device %s --help'.\n", verb);
	return EXIT_USAGE;
}

void cli_json_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");

	fputc('"', f);
	for (; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

int cli_fail(const char *verb, int json, const struct iotp_err *err,
             const struct iotp_failure *why)
{
	const char *msg = err != NULL && err->msg[0] ? err->msg : iotp_strerror(err->rc);

	if (json) {
		printf("{\"ok\":false,\"error\":");
		cli_json_string(stdout, msg);
		printf(",\"rc\":");
		cli_json_string(stdout, iotp_strerror(err->rc));
		if (why != NULL && why->cause != IOTP_CAUSE_NONE) {
			printf(",\"cause\":");
			cli_json_string(stdout, iotp_cause_name(why->cause));
			printf(",\"status\":%d,\"errorCode\":", why->status);
			cli_json_string(stdout, why->code);
		}
		printf("}\n");
		return 1;
	}
	fprintf(stderr, "iotprov-device %s: %s", verb, msg);
	if (why != NULL && why->cause != IOTP_CAUSE_NONE && why->cause != IOTP_CAUSE_LOCAL)
		fprintf(stderr, " [cause: %s%s%s]", iotp_cause_name(why->cause),
		        why->code[0] ? " " : "", why->code);
	fputc('\n', stderr);
	return 1;
}

const char *cli_state_dir(const char *opt)
{
	const char *env;

	if (opt != NULL)
		return opt;
	env = getenv("IOTP_DEVICE_STATE_DIR");
	return env != NULL && env[0] != '\0' ? env : DEFAULT_STATE_DIR;
}

int cli_int(const char *verb, const char *name, const char *s, long min, long max, long *out)
{
	int64_t v;

	if (util_parse_int64(s, min, max, &v) != IOTP_OK) {
		cli_usage(verb, "%s must be an integer from %ld to %ld, not '%s'", name, min, max, s);
		return -1;
	}
	*out = (long)v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "keygen", cmd_keygen },   { "csr", cmd_csr },         { "provision", cmd_provision },
		{ "status", cmd_status },   { "connect", cmd_connect }, { "rotate", cmd_rotate },
		{ "reset", cmd_reset },     { "simulate", cmd_simulate },
		{ "commission", cmd_commission },
	};
	size_t i;

	if (argc < 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	for (i = 0; i < IOTP_ARRAY_LEN(cmds); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "iotprov-device: unknown command '%s'\n\n%s", argv[1], usage_text);
	return EXIT_USAGE;
}
