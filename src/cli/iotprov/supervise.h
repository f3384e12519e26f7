/*
 * The supervisor behind `iotprov up`: a table of child processes (iotprovd
 * today, mosquitto with the iotprov plugin next) started in order, each
 * waited for until it is ready, then watched in the foreground. Adding a
 * service is one more `struct child` entry in cmd_up.c.
 *
 * Rules: before anything starts, every child's listen address is checked
 * free, so a taken port is a clear message and nothing is left running.
 * Children run in their own process group (a terminal's Ctrl-C reaches
 * only `iotprov up`, which then stops them in order) and get SIGTERM if
 * iotprov itself dies (PR_SET_PDEATHSIG). Their stdout is read by the
 * supervisor (the ready line is consumed, other lines are passed through);
 * their stderr is the terminal's. SIGINT or SIGTERM stops every child by
 * its PID, newest first, with SIGTERM, then SIGKILL after a grace period; a
 * second signal skips the grace period. SIGHUP is passed on (iotprovd
 * reloads its configuration). A child that exits on its own stops the
 * others and makes `up` fail.
 *
 * Signals are taken through a signalfd, so the supervisor is single-threaded
 * and owns SIGINT, SIGTERM, SIGHUP and SIGCHLD between sup_init and
 * sup_cleanup.
 */
#ifndef IOTP_CLI_SUPERVISE_H
#define IOTP_CLI_SUPERVISE_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

enum child_ready {
	CHILD_READY_LINE,    /* prints a line starting with ready_prefix on stdout */
	CHILD_READY_CONNECT  /* listens on the port of `listen` (seen in /proc/net/tcp*,
	                      * not probed: a probe would show in the child's log) */
};

#define CHILD_ARGV_MAX 24
#define CHILD_ENV_MAX 4

struct child {
	/* Set by the caller; borrowed, must outlive the supervisor. */
	const char *name;          /* "iotprovd", for messages */
	const char *argv[CHILD_ARGV_MAX]; /* argv[0] is the program path; NULL-terminated */
	const char *listen;        /* HOST:PORT the child binds, or NULL */
	const char *listen_what;   /* "API (HTTPS)", for messages */
	const char *listen_option; /* "--api-listen", for messages */
	enum child_ready ready;
	const char *ready_prefix;  /* CHILD_READY_LINE */
	int ready_timeout_s;
	const char *env[CHILD_ENV_MAX]; /* extra "NAME=VALUE" for this child only,
	                                 * NULL-terminated (the rest is inherited) */

	/* Filled in by the supervisor. */
	pid_t pid;                 /* 0 until started, and again once reaped */
	int out_fd;                /* read end of the child's stdout, or -1 */
	char ready_rest[512];      /* CHILD_READY_LINE: the ready line after the prefix */
	int exited;                /* reaped */
	int wait_status;           /* waitpid status once exited */
	char line[1024];           /* partial output line */
	size_t line_len;
};

struct supervisor {
	struct child *children;    /* borrowed */
	size_t count;
	size_t started;            /* children[0..started-1] have been started */
	int sigfd;
	sigset_t old_mask;
	int stop_signal;           /* the signal that asked to stop, 0 none */
};

/* Takes over SIGINT, SIGTERM, SIGHUP and SIGCHLD (blocked, read through a
 * signalfd). Release with sup_cleanup. */
iotp_rc sup_init(struct supervisor *s, struct child *children, size_t count,
                 struct iotp_err *err);

/* Checks that every child's listen address can be bound now (port 0 and
 * NULL listen skipped). IOTP_ERR_IO naming the address, what it is for and
 * the option that changes it. */
iotp_rc sup_check_ports(const struct supervisor *s, struct iotp_err *err);

/* Starts the children in order, waiting for each to be ready before the
 * next. On failure (exec error, early exit, timeout, or SIGINT/SIGTERM while
 * waiting: IOTP_ERR_TIMEOUT for the last two with s->stop_signal set on a
 * signal) the children already started are stopped. */
iotp_rc sup_start_all(struct supervisor *s, struct iotp_err *err);

/* Watches the running children until a stop signal (then stops them:
 * IOTP_OK when each exited with status 0) or until one exits on its own
 * (then stops the others: IOTP_ERR_INTERNAL naming it and its status). */
iotp_rc sup_run(struct supervisor *s, struct iotp_err *err);

/* Stops every running child (SIGTERM, newest first; SIGKILL after
 * grace_ms, or at once on a second stop signal) and reaps it. Returns 1 when
 * every child exited with status 0 or of the SIGTERM, else 0 (after saying
 * which child did what on stderr). */
int sup_stop_all(struct supervisor *s, int grace_ms);

/* Restores the signal mask and closes descriptors. Children must have been
 * stopped (sup_stop_all). */
void sup_cleanup(struct supervisor *s);

/* "exited with status 1", "was killed by signal 9": into out. */
void sup_describe_status(int wait_status, char *out, size_t size);

#endif
