/*
 * iotprov-device, the device agent: shared declarations of its commands.
 * Each command parses its own options, calls libiotprov-device and prints;
 * exit status 0 on success, 1 on a failure it explains, 2 on bad usage.
 */
#ifndef IOTP_CLI_DEVICE_H
#define IOTP_CLI_DEVICE_H

#include <stdio.h>

#include "common/err.h"
#include "iotprov/device.h"

#define EXIT_USAGE 2

#define DEFAULT_STATE_DIR "./device-state"

/* Prints "iotprov-device <verb>: <message>" and a hint to stderr; returns
 * EXIT_USAGE. */
int cli_usage(const char *verb, const char *fmt, ...) IOTP_PRINTF(2, 3);
/* Reports a failure (text to stderr, or a JSON object to stdout with
 * --json); returns 1. why may be NULL. */
int cli_fail(const char *verb, int json, const struct iotp_err *err,
             const struct iotp_failure *why);
/* The state directory: the option, else $IOTP_DEVICE_STATE_DIR, else
 * DEFAULT_STATE_DIR. */
const char *cli_state_dir(const char *opt);
/* Strict integer option. */
int cli_int(const char *verb, const char *name, const char *s, long min, long max, long *out);
/* Writes s as a JSON string (with quotes) to f. */
void cli_json_string(FILE *f, const char *s);

int cmd_keygen(int argc, char **argv);
int cmd_csr(int argc, char **argv);
int cmd_provision(int argc, char **argv);
int cmd_rotate(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_reset(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_commission(int argc, char **argv);

#endif
