/*
 * Running the openssl CLI (and other shell commands) from a unit test, in
 * the test's temporary directory, the way an operator would check its
 * output.
 */
#ifndef IOTP_TEST_SHELL_H
#define IOTP_TEST_SHELL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "common/util.h"

/* Runs a shell command in dir, its output discarded; returns its exit
 * status (-1 when it did not exit). */
static int test_sh(const char *dir, const char *fmt, ...) IOTP_PRINTF(2, 3);
static int test_sh(const char *dir, const char *fmt, ...)
{
	char cmd[4096];
	int n, st;
	va_list ap;

	n = snprintf(cmd, sizeof(cmd), "cd '%s' && (", dir);
	va_start(ap, fmt);
	n += vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
	va_end(ap);
	snprintf(cmd + n, sizeof(cmd) - (size_t)n, ") >/dev/null 2>&1");
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif
