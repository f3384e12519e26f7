/*
 * The child-process supervisor of `iotprov up` (see supervise.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/iotprov/supervise.h"
#include "common/conf.h"
#include "common/util.h"

static int64_t now_ms(void)
{
	return util_mono_ms();
}

void sup_describe_status(int st, char *out, size_t size)
{
	if (WIFEXITED(st))
		snprintf(out, size, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(out, size, "was killed by signal %d (%s)", WTERMSIG(st),
		         strsignal(WTERMSIG(st)));
	else
		snprintf(out, size, "stopped (wait status %d)", st);
}

iotp_rc sup_init(struct supervisor *s, struct child *children, size_t count,
                 struct iotp_err *err)
{
	sigset_t set;

	memset(s, 0, sizeof(*s));
	s->children = children;
	s->count = count;
	s->sigfd = -1;
	for (size_t i = 0; i < count; i++) {
		children[i].pid = 0;
		children[i].out_fd = -1;
		children[i].exited = 0;
		children[i].line_len = 0;
		children[i].ready_rest[0] = '\0';
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, &s->old_mask) != 0)
		return iotp_err_set(err, IOTP_ERR_INTERNAL, "sigprocmask: %s", strerror(errno));
	s->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sigfd < 0) {
		sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
		return iotp_err_set(err, IOTP_ERR_INTERNAL, "signalfd: %s", strerror(errno));
	}
	return IOTP_OK;
}

void sup_cleanup(struct supervisor *s)
{
	for (size_t i = 0; i < s->count; i++) {
		if (s->children[i].out_fd >= 0)
			close(s->children[i].out_fd);
		s->children[i].out_fd = -1;
	}
	if (s->sigfd >= 0) {
		close(s->sigfd);
		sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
	}
	s->sigfd = -1;
}

static iotp_rc check_port(const struct child *c, struct iotp_err *err)
{
	char host[256], port_s[16];
	struct addrinfo hints, *res = NULL;
	int port, gai, taken = 0, bound = 0, last_errno = 0;
	struct iotp_err perr;

	if (c->listen == NULL || c->listen[0] == '\0')
		return IOTP_OK;
	if (conf_parse_listen(c->listen, host, sizeof(host), &port, &perr) != IOTP_OK)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "%s address: %s", c->listen_what, perr.msg);
	if (port == 0)
		return IOTP_OK;
	snprintf(port_s, sizeof(port_s), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	gai = getaddrinfo(host, port_s, &hints, &res);
	if (gai != 0)
		return iotp_err_set(err, IOTP_ERR_IO,
		                    "the %s address %s cannot be used: %s. Choose another with %s "
		                    "HOST:PORT",
		                    c->listen_what, c->listen, gai_strerror(gai), c->listen_option);
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		int one = 1;

		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		/* As the daemons do, so that a port in TIME_WAIT is not "taken". */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			bound = 1;
		} else {
			last_errno = errno;
			if (errno == EADDRINUSE)
				taken = 1;
		}
		close(fd);
		if (bound || taken)
			break;
	}
	freeaddrinfo(res);
	if (taken)
		return iotp_err_set(err, IOTP_ERR_IO,
		                    "cannot start: the %s address %s is already in use by another "
		                    "program (another `iotprov up`?). Stop it, or choose another port "
		                    "with %s HOST:PORT",
		                    c->listen_what, c->listen, c->listen_option);
	if (!bound)
		return iotp_err_set(err, IOTP_ERR_IO,
		                    "cannot start: the %s address %s cannot be bound: %s. Choose "
		                    "another with %s HOST:PORT",
		                    c->listen_what, c->listen, strerror(last_errno), c->listen_option);
	return IOTP_OK;
}

iotp_rc sup_check_ports(const struct supervisor *s, struct iotp_err *err)
{
	for (size_t i = 0; i < s->count; i++) {
		iotp_rc rc = check_port(&s->children[i], err);

		if (rc != IOTP_OK)
			return rc;
	}
	return IOTP_OK;
}

/* Reaps every started child that has exited; returns the first one reaped
 * by this call, or NULL. */
static struct child *reap(struct supervisor *s)
{
	struct child *first = NULL;

	for (size_t i = 0; i < s->started; i++) {
		struct child *c = &s->children[i];
		int st;
		pid_t r;

		if (c->pid <= 0 || c->exited)
			continue;
		r = waitpid(c->pid, &st, WNOHANG);
		if (r == c->pid) {
			c->exited = 1;
			c->wait_status = st;
			if (first == NULL)
				first = c;
		}
	}
	return first;
}

/* Reads the pending signals: returns a stop signal (SIGINT/SIGTERM) if one
 * came, passes SIGHUP on, ignores SIGCHLD (the caller reaps). */
static int drain_signals(struct supervisor *s)
{
	struct signalfd_siginfo si;
	int stop = 0;

	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
			stop = (int)si.ssi_signo;
		} else if (si.ssi_signo == SIGHUP) {
			for (size_t i = 0; i < s->started; i++)
				if (s->children[i].pid > 0 && !s->children[i].exited)
					kill(s->children[i].pid, SIGHUP);
		}
	}
	return stop;
}

/* Reads what a child wrote on stdout. Complete lines are passed through to
 * our stdout, except the ready line, which sets *ready. Returns 1 when it
 * read something, -1 when nothing is there now, 0 at EOF (the descriptor is
 * then closed). */
static int read_output(struct child *c, int *ready)
{
	char chunk[4096];
	ssize_t n;

	if (c->out_fd < 0)
		return 0;
	n = read(c->out_fd, chunk, sizeof(chunk));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	if (n <= 0) {
		if (c->line_len > 0) {
			fwrite(c->line, 1, c->line_len, stdout);
			fputc('\n', stdout);
			c->line_len = 0;
		}
		fflush(stdout);
		close(c->out_fd);
		c->out_fd = -1;
		return 0;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (chunk[i] != '\n' && c->line_len + 1 < sizeof(c->line)) {
			c->line[c->line_len++] = chunk[i];
			continue;
		}
		c->line[c->line_len] = '\0';
		if (ready != NULL && !*ready && c->ready == CHILD_READY_LINE &&
		    strncmp(c->line, c->ready_prefix, strlen(c->ready_prefix)) == 0) {
			util_strlcpy(c->ready_rest, c->line + strlen(c->ready_prefix),
			             sizeof(c->ready_rest));
			*ready = 1;
		} else {
			fprintf(stdout, "%s\n", c->line);
		}
		c->line_len = 0;
		if (chunk[i] != '\n') /* an over-long line: keep this byte */
			c->line[c->line_len++] = chunk[i];
	}
	fflush(stdout);
	return 1;
}

/* 1 when /proc/net/FILE shows a socket listening on port. */
static int proc_listening(const char *file, int port)
{
	char line[512];
	FILE *f = fopen(file, "r");
	int found = 0;

	if (f == NULL)
		return 0;
	/* "  sl  local_address rem_address   st ...": local "HEXADDR:HEXPORT",
	 * st 0A is LISTEN. */
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char local[80], remote[80];
		unsigned st = 0, lport = 0;
		const char *colon;

		if (sscanf(line, " %*s %79s %79s %x", local, remote, &st) != 3)
			continue;
		colon = strrchr(local, ':');
		if (colon != NULL && sscanf(colon + 1, "%x", &lport) == 1 && (int)lport == port &&
		    st == 0x0A)
			found = 1;
	}
	fclose(f);
	return found;
}

/* Whether something listens on the port of `listen` now. Read from
 * /proc/net rather than probed with a connection, which the child would
 * log as a failed client (the port was checked free before the start). */
static int is_listening(const char *listen)
{
	char host[256];
	int port;

	if (listen == NULL || conf_parse_listen(listen, host, sizeof(host), &port, NULL) != IOTP_OK)
		return 0;
	return proc_listening("/proc/net/tcp", port) || proc_listening("/proc/net/tcp6", port);
}

/* In the child after fork: never returns. */
static void exec_child(const struct supervisor *s, const struct child *c, int out_w,
                       int status_w, pid_t parent)
{
	int devnull = open("/dev/null", O_RDONLY);
	int e;

	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
		_exit(127);
	setpgid(0, 0);
	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		close(devnull);
	}
	if (dup2(out_w, STDOUT_FILENO) < 0)
		_exit(127);
	close(out_w);
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
	for (size_t i = 0; i < CHILD_ENV_MAX && c->env[i] != NULL; i++)
		putenv((char *)c->env[i]); /* the child's own copy of the parent's string */
	execv(c->argv[0], (char *const *)c->argv);
	e = errno;
	if (write(status_w, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

/* pipe2(O_CLOEXEC) is a GNU extension: the portable way (single-threaded
 * here, so nothing can fork in between). */
static int pipe_cloexec(int fds[2])
{
	if (pipe(fds) != 0)
		return -1;
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	return 0;
}

static iotp_rc start_one(struct supervisor *s, struct child *c, struct iotp_err *err)
{
	int out[2] = {-1, -1}, status[2] = {-1, -1}, e = 0, ready = 0;
	pid_t parent = getpid(), pid;
	int64_t deadline;
	ssize_t n;

	if (pipe_cloexec(out) != 0 || pipe_cloexec(status) != 0) {
		e = errno;
		if (out[0] >= 0) {
			close(out[0]);
			close(out[1]);
		}
		return iotp_err_set(err, IOTP_ERR_IO, "pipe: %s", strerror(e));
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		e = errno;
		close(out[0]);
		close(out[1]);
		close(status[0]);
		close(status[1]);
		return iotp_err_set(err, IOTP_ERR_IO, "cannot start %s: fork: %s", c->name,
		                    strerror(e));
	}
	if (pid == 0)
		exec_child(s, c, out[1], status[1], parent);
	/* Also in the parent, against the race with the child's own call. */
	setpgid(pid, pid);
	c->pid = pid;
	c->exited = 0;
	s->started++;
	close(out[1]);
	close(status[1]);
	c->out_fd = out[0];
	fcntl(c->out_fd, F_SETFL, fcntl(c->out_fd, F_GETFL) | O_NONBLOCK);
	do
		n = read(status[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(status[0]);
	if (n == (ssize_t)sizeof(e))
		return iotp_err_set(err, IOTP_ERR_IO, "cannot run %s (%s): %s", c->name, c->argv[0],
		                    strerror(e));

	deadline = now_ms() + (int64_t)c->ready_timeout_s * 1000;
	while (!ready) {
		struct pollfd p[2] = {{s->sigfd, POLLIN, 0}, {c->out_fd, POLLIN, 0}};
		int64_t left = deadline - now_ms();
		struct child *gone;
		int stop;

		if (left <= 0)
			return iotp_err_set(err, IOTP_ERR_TIMEOUT,
			                    "%s did not become ready within %d s (see its messages above)",
			                    c->name, c->ready_timeout_s);
		if (c->ready == CHILD_READY_CONNECT && left > 100)
			left = 100;
		if (poll(p, c->out_fd >= 0 ? 2 : 1, (int)left) < 0 && errno != EINTR)
			return iotp_err_set(err, IOTP_ERR_IO, "poll: %s", strerror(errno));
		if (p[0].revents & POLLIN) {
			stop = drain_signals(s);
			if (stop) {
				s->stop_signal = stop;
				return iotp_err_set(err, IOTP_ERR_TIMEOUT, "interrupted by %s while starting %s",
				                    strsignal(stop), c->name);
			}
		}
		if (c->out_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			read_output(c, &ready);
		if (!ready && c->ready == CHILD_READY_CONNECT)
			ready = is_listening(c->listen);
		if (ready)
			break;
		gone = reap(s);
		if (gone != NULL || (c->exited)) {
			char how[96];
			struct child *g = gone != NULL ? gone : c;

			/* Pass on what it still had to say. */
			while (read_output(g, NULL) > 0)
				;
			sup_describe_status(g->wait_status, how, sizeof(how));
			return iotp_err_set(err, IOTP_ERR_IO, "%s %s before it was ready (see its message "
			                                      "above)",
			                    g->name, how);
		}
	}
	return IOTP_OK;
}

iotp_rc sup_start_all(struct supervisor *s, struct iotp_err *err)
{
	for (size_t i = 0; i < s->count; i++) {
		iotp_rc rc = start_one(s, &s->children[i], err);

		if (rc != IOTP_OK) {
			sup_stop_all(s, 5000);
			return rc;
		}
	}
	return IOTP_OK;
}

static int any_running(const struct supervisor *s)
{
	for (size_t i = 0; i < s->started; i++)
		if (s->children[i].pid > 0 && !s->children[i].exited)
			return 1;
	return 0;
}

int sup_stop_all(struct supervisor *s, int grace_ms)
{
	int64_t deadline = now_ms() + grace_ms;
	int killed = 0, clean = 1;

	for (size_t i = s->started; i-- > 0;)
		if (s->children[i].pid > 0 && !s->children[i].exited)
			kill(s->children[i].pid, SIGTERM);
	while (any_running(s)) {
		struct pollfd p[1 + 8];
		nfds_t np = 1;
		int64_t left = deadline - now_ms();

		if (left <= 0 && !killed) {
			for (size_t i = 0; i < s->started; i++)
				if (s->children[i].pid > 0 && !s->children[i].exited) {
					fprintf(stderr, "iotprov up: %s (pid %d) did not stop in time: killing it\n",
					        s->children[i].name, (int)s->children[i].pid);
					kill(s->children[i].pid, SIGKILL);
				}
			killed = 1;
		}
		p[0] = (struct pollfd){s->sigfd, POLLIN, 0};
		for (size_t i = 0; i < s->started && np < IOTP_ARRAY_LEN(p); i++)
			if (s->children[i].out_fd >= 0)
				p[np++] = (struct pollfd){s->children[i].out_fd, POLLIN, 0};
		poll(p, np, left > 0 ? (int)(left < 200 ? left : 200) : 200);
		if ((p[0].revents & POLLIN) && drain_signals(s) && !killed)
			deadline = now_ms(); /* a second stop signal: no more grace */
		for (size_t i = 0; i < s->started; i++)
			if (s->children[i].out_fd >= 0)
				read_output(&s->children[i], NULL);
		reap(s);
	}
	for (size_t i = 0; i < s->started; i++) {
		struct child *c = &s->children[i];

		while (read_output(c, NULL) > 0)
			;
		if (c->pid > 0 && c->exited) {
			int st = c->wait_status;

			/* Dying of the SIGTERM it was sent (before installing a
			 * handler, e.g. still starting) is stopping as asked. */
			if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
			    !(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM)) {
				char how[96];

				sup_describe_status(st, how, sizeof(how));
				fprintf(stderr, "iotprov up: %s (pid %d) %s while stopping\n", c->name,
				        (int)c->pid, how);
				clean = 0;
			}
			c->pid = 0;
		}
	}
	return clean;
}

iotp_rc sup_run(struct supervisor *s, struct iotp_err *err)
{
	for (;;) {
		struct pollfd p[1 + 8];
		nfds_t np = 1;
		struct child *gone;
		int stop = 0;

		p[0] = (struct pollfd){s->sigfd, POLLIN, 0};
		for (size_t i = 0; i < s->started && np < IOTP_ARRAY_LEN(p); i++)
			if (s->children[i].out_fd >= 0)
				p[np++] = (struct pollfd){s->children[i].out_fd, POLLIN, 0};
		if (poll(p, np, 1000) < 0 && errno != EINTR)
			return iotp_err_set(err, IOTP_ERR_IO, "poll: %s", strerror(errno));
		if (p[0].revents & POLLIN)
			stop = drain_signals(s);
		for (size_t i = 0; i < s->started; i++)
			if (s->children[i].out_fd >= 0)
				read_output(&s->children[i], NULL);
		if (stop) {
			s->stop_signal = stop;
			if (!sup_stop_all(s, 10000))
				return iotp_err_set(err, IOTP_ERR_IO,
				                    "a service did not stop cleanly (see its messages above)");
			return IOTP_OK;
		}
		gone = reap(s);
		if (gone != NULL) {
			char how[96];

			sup_describe_status(gone->wait_status, how, sizeof(how));
			/* Build the message before the others are stopped and reaped. */
			iotp_err_set(err, IOTP_ERR_INTERNAL, "%s (pid %d) %s unexpectedly; stopped the rest",
			             gone->name, (int)gone->pid, how);
			sup_stop_all(s, 10000);
			return IOTP_ERR_INTERNAL;
		}
	}
}
