/*
 * iotprovd: the control-plane daemon. Loads DATA_DIR/iotprov.conf, opens
 * the core (store + issuing CA), serves the HTTPS API until SIGTERM or
 * SIGINT, reloads the configuration on SIGHUP.
 *
 *   iotprovd --data-dir DIR [--api-listen HOST:PORT]
 *   iotprovd --data-dir DIR --create-key ROLE [--templates T,...] [--description TEXT]
 *   iotprovd --data-dir DIR --disable-key ID
 *
 * Once it accepts connections it prints exactly one line on stdout,
 * "iotprovd: listening on https://HOST:PORT" (scripts wait for it; with
 * port 0 the line carries the port chosen). Exit status: 0 after a clean
 * stop, 1 on a failure it explains on stderr, 2 on bad usage.
 *
 * --create-key and --disable-key manage access keys directly in the store
 * (core/accesskey.h, the same API as `iotprov key`), for scripts and tests
 * that run before any key exists; --create-key prints the
 * AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines once.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"
#include "core/accesskey.h"
#include "core/core.h"
#include "server/api_tasks.h"
#include "server/http.h"
#include "server/sweep.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: iotprovd --data-dir DIR [--api-listen HOST:PORT]\n"
	        "       iotprovd --data-dir DIR --create-key admin|operator|installer\n"
	        "                [--templates NAME,...] [--description TEXT]\n"
	        "       iotprovd --data-dir DIR --disable-key ACCESS_KEY_ID\n"
	        "\n"
	        "Serves the iotprov control-plane API (AWS IoT compatible, HTTPS + SigV4)\n"
	        "with the configuration DIR/iotprov.conf that `iotprov init` creates.\n"
	        "\n"
	        "  --data-dir DIR          data directory (required)\n"
	        "  --api-listen HOST:PORT  listen here instead of [api] listen (port 0: any)\n"
	        "  --create-key ROLE       create an access key, print it once, exit\n"
	        "  --templates LIST        provisioning templates of an installer key\n"
	        "  --description TEXT      note stored with a new key\n"
	        "  --disable-key ID        disable an access key, exit\n"
	        "  --help                  this text\n");
}

/* libevent's own warnings go to our log. */
static void event_log(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_ERR)
		LOG_ERROR("libevent: %s", msg);
	else if (severity == EVENT_LOG_WARN)
		LOG_WARN("libevent: %s", msg);
	else
		LOG_DEBUG("libevent: %s", msg);
}

/* max_connections sockets need as many descriptors: raise the soft limit
 * to the hard one (best effort). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int manage_keys(const struct iotp_conf *conf, const char *create_role,
                       const char *templates, const char *description, const char *disable_id)
{
	struct iotp_core core;
	struct store *st = NULL;
	struct iotp_err err;
	char url[CONF_STR_MAX * 2];
	int status = 1;

	memset(&core, 0, sizeof(core));
	if (conf_store_url(conf, url, sizeof(url), &err) != IOTP_OK ||
	    store_open(url, &st, &err) != IOTP_OK) {
		fprintf(stderr, "iotprovd: cannot open the store: %s\n", err.msg);
		return 1;
	}
	core_init_with_store(&core, conf, st);
	if (create_role != NULL) {
		enum accesskey_role role;
		struct accesskey key;

		if (accesskey_role_parse(create_role, &role, &err) != IOTP_OK) {
			fprintf(stderr, "iotprovd: --create-key: %s\n", err.msg);
			status = 2;
			goto out;
		}
		if (accesskey_create(&core, "cli", role, templates, description, &key, &err) !=
		    IOTP_OK) {
			fprintf(stderr, "iotprovd: cannot create the key: %s\n", err.msg);
			goto out;
		}
		printf("AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n", key.id, key.secret);
		fflush(stdout);
		accesskey_cleanup(&key);
	} else {
		if (accesskey_disable(&core, "cli", disable_id, &err) != IOTP_OK) {
			fprintf(stderr, "iotprovd: cannot disable %s: %s\n", disable_id, err.msg);
			goto out;
		}
		printf("access key %s disabled\n", disable_id);
	}
	status = 0;
out:
	core_close(&core);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"data-dir", required_argument, NULL, 'd'},
		{"api-listen", required_argument, NULL, 'l'},
		{"create-key", required_argument, NULL, 'c'},
		{"templates", required_argument, NULL, 't'},
		{"description", required_argument, NULL, 'D'},
		{"disable-key", required_argument, NULL, 'x'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *data_dir = NULL, *listen = NULL, *create_role = NULL, *templates = NULL;
	const char *description = NULL, *disable_id = NULL;
	char conf_file[CONF_STR_MAX * 2];
	struct iotp_conf *conf = NULL;
	struct iotp_core core;
	struct event_base *base = NULL;
	struct http_server *srv = NULL;
	struct sweep *sweep = NULL;
	struct tasks_runner *tasks = NULL;
	struct iotp_err err;
	enum iotp_log_level level;
	struct sigaction sa;
	int opt, status = 1, core_open_ok = 0;

	/* The store, its WAL and everything else the daemon writes are for the
	 * operator alone. */
	umask(077);
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd': data_dir = optarg; break;
		case 'l': listen = optarg; break;
		case 'c': create_role = optarg; break;
		case 't': templates = optarg; break;
		case 'D': description = optarg; break;
		case 'x': disable_id = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || data_dir == NULL || (create_role != NULL && disable_id != NULL) ||
	    ((templates != NULL || description != NULL) && create_role == NULL)) {
		usage(stderr);
		return 2;
	}

	/* A client that hangs up mid-response must not kill the daemon. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	conf = malloc(sizeof(*conf));
	if (conf == NULL) {
		fprintf(stderr, "iotprovd: out of memory\n");
		return 1;
	}
	conf_init(conf, data_dir);
	if ((size_t)snprintf(conf_file, sizeof(conf_file), "%s/iotprov.conf", data_dir) >=
	    sizeof(conf_file)) {
		fprintf(stderr, "iotprovd: --data-dir path too long\n");
		goto out;
	}
	if (conf_load(conf, conf_file, &err) != IOTP_OK) {
		if (err.rc == IOTP_ERR_IO)
			fprintf(stderr,
			        "iotprovd: cannot read %s: create a data directory with `iotprov init "
			        "--data-dir %s` first\n",
			        conf_file, data_dir);
		else
			fprintf(stderr, "iotprovd: %s\n", err.msg);
		goto out;
	}
	if (listen != NULL) {
		char host[256];
		int port;

		if (conf_parse_listen(listen, host, sizeof(host), &port, &err) != IOTP_OK) {
			fprintf(stderr, "iotprovd: --api-listen: %s\n", err.msg);
			status = 2;
			goto out;
		}
		util_strlcpy(conf->api_listen, listen, sizeof(conf->api_listen));
	}
	if (conf_validate(conf, &err) != IOTP_OK) {
		fprintf(stderr, "iotprovd: %s: %s\n", conf_file, err.msg);
		goto out;
	}
	if (iotp_log_level_parse(conf->log_level, &level) == IOTP_OK)
		iotp_log_set_level(level);

	if (create_role != NULL || disable_id != NULL) {
		status = manage_keys(conf, create_role, templates, description, disable_id);
		goto out;
	}

	if (core_open(&core, conf, &err) != IOTP_OK) {
		fprintf(stderr, "iotprovd: cannot start: %s\n", err.msg);
		goto out;
	}
	core_open_ok = 1;
	raise_fd_limit();
	event_set_log_callback(event_log);
	base = event_base_new();
	if (base == NULL) {
		fprintf(stderr, "iotprovd: cannot create the event loop\n");
		goto out;
	}
	if (http_server_new(base, conf, conf_file, &core, &srv, &err) != IOTP_OK ||
	    http_server_handle_signals(srv, &err) != IOTP_OK ||
	    sweep_start(base, &core, SWEEP_INTERVAL, &sweep, &err) != IOTP_OK ||
	    tasks_runner_start(conf, &tasks, &err) != IOTP_OK) {
		fprintf(stderr, "iotprovd: %s\n", err.msg);
		goto out;
	}
	printf("iotprovd: listening on %s\n", http_server_url(srv));
	fflush(stdout);
	LOG_INFO("iotprovd: serving %s (region %s, store %s)", http_server_url(srv), conf->region,
	         store_backend_name(core.store));
	if (event_base_dispatch(base) < 0) {
		fprintf(stderr, "iotprovd: event loop failed\n");
		goto out;
	}
	LOG_INFO("iotprovd: stopped");
	status = 0;
out:
	tasks_runner_stop(tasks);
	sweep_free(sweep);
	http_server_free(srv);
	if (base != NULL)
		event_base_free(base);
	if (core_open_ok)
		core_close(&core);
	if (conf != NULL)
		conf_cleanup(conf);
	free(conf);
	return status;
}
