/*
 * `iotprov up`: runs the services of a data directory in the foreground
 * (supervise.h) and tells the operator how to use them: the API endpoint,
 * the CA bundle to trust and a ready-to-paste `aws iot` example with
 * absolute paths, which works as printed.
 *
 * The services are the entries of the child table: iotprovd (found next
 * to this program), then mosquitto with the iotprov plugin (found next to
 * this program too) on a mosquitto.conf written at every start
 * (core/broker_conf.h), with mqtt_listen as its address.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/iotprov/cli.h"
#include "cli/iotprov/datadir.h"
#include "cli/iotprov/supervise.h"
#include "common/log.h"
#include "common/util.h"
#include "core/broker_conf.h"

#define READY_TIMEOUT_S 60
#define IOTPROVD_READY "iotprovd: listening on "
#define MOSQUITTO_PATH "/usr/sbin/mosquitto"

struct up_opts {
	const char *data_dir;
	const char *api_listen;  /* NULL: [api] listen */
	const char *mqtt_listen; /* NULL: [mqtt] listen */
};

/* The directory of this executable, to find its sibling programs. */
static iotp_rc self_dir(char *out, size_t size, struct iotp_err *err)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return iotp_err_set(err, IOTP_ERR_IO, "cannot find this program's path: %s",
		                    strerror(errno));
	exe[n] = '\0';
	if (util_strlcpy(out, dirname(exe), size) >= size)
		return iotp_err_set(err, IOTP_ERR_INVALID, "program path too long");
	return IOTP_OK;
}

/* The path of program `name` installed next to iotprov. */
static iotp_rc sibling(const char *name, char *out, size_t size, struct iotp_err *err)
{
	char dir[PATH_MAX];
	iotp_rc rc;
	int n;

	if ((rc = self_dir(dir, sizeof(dir), err)) != IOTP_OK)
		return rc;
	n = snprintf(out, size, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= size)
		return iotp_err_set(err, IOTP_ERR_INVALID, "program path too long");
	if (access(out, X_OK) != 0)
		return iotp_err_set(err, IOTP_ERR_NOT_FOUND,
		                    "cannot find %s next to iotprov (looked for %s): build both with "
		                    "`make build`, or install them side by side",
		                    name, out);
	return IOTP_OK;
}

/* "https://0.0.0.0:8443" -> "https://127.0.0.1:8443" (what a local client
 * reaches and the server certificate names). */
static void local_url(const char *url, char *out, size_t size)
{
	static const struct {
		const char *from, *to;
	} map[] = {{"https://0.0.0.0:", "https://127.0.0.1:"}, {"https://[::]:", "https://[::1]:"}};

	for (size_t i = 0; i < IOTP_ARRAY_LEN(map); i++) {
		size_t k = strlen(map[i].from);

		if (strncmp(url, map[i].from, k) == 0) {
			snprintf(out, size, "%s%s", map[i].to, url + k);
			return;
		}
	}
	util_strlcpy(out, url, size);
}

static void print_banner(const struct datadir *d, const char *api_url, const char *mqtt)
{
	char creds[PATH_MAX], bundle[PATH_MAX], q_creds[PATH_MAX * 4 + 8], q_bundle[PATH_MAX * 4 + 8];
	char q_dir[PATH_MAX * 4 + 8], conf_url[512], prefix[PATH_MAX * 10];
	struct iotp_err err;

	if (datadir_file(d, DATADIR_CREDENTIALS, creds, sizeof(creds), &err) != IOTP_OK ||
	    datadir_file(d, DATADIR_CA_BUNDLE, bundle, sizeof(bundle), &err) != IOTP_OK ||
	    cli_shell_quote(creds, q_creds, sizeof(q_creds)) != 0 ||
	    cli_shell_quote(bundle, q_bundle, sizeof(q_bundle)) != 0 ||
	    cli_shell_quote(d->path, q_dir, sizeof(q_dir)) != 0) {
		printf("iotprov is up: API %s, MQTT mqtts://%s\n", api_url, mqtt);
		fflush(stdout);
		return;
	}
	snprintf(prefix, sizeof(prefix),
	         "AWS_SHARED_CREDENTIALS_FILE=%s AWS_CA_BUNDLE=%s aws --profile %s --region %s "
	         "--endpoint-url %s iot",
	         q_creds, q_bundle, DATADIR_PROFILE, d->conf->region, api_url);
	printf("\n"
	       "iotprov is up. Data directory: %s\n"
	       "\n"
	       "  API (AWS IoT compatible, HTTPS + SigV4)  %s\n"
	       "  MQTT (devices, mutual TLS)               mqtts://%s\n"
	       "  CA bundle (what clients trust)           %s\n"
	       "  Admin credentials (profile %s)      %s\n"
	       "\n"
	       "Try it from another terminal (paste as is):\n"
	       "\n"
	       "  %s create-thing --thing-name my-first-thing\n"
	       "  %s describe-thing --thing-name my-first-thing\n"
	       "\n",
	       d->path, api_url, mqtt, bundle, DATADIR_PROFILE, creds, prefix, prefix);
	if (datadir_api_url(d->conf->api_listen, conf_url, sizeof(conf_url), &err) == IOTP_OK &&
	    strcmp(conf_url, api_url) == 0)
		printf("List what is there with:  iotprov things ls --data-dir %s\n", q_dir);
	else
		printf("List what is there with:  iotprov things ls --data-dir %s --endpoint-url %s\n",
		       q_dir, api_url);
	printf("Stop with Ctrl-C.\n\n");
	fflush(stdout);
}

/* Writes DIR/broker/mosquitto.conf for the broker child (a TLS listener on
 * mqtt_listen, the plugin next to iotprov, the capath the plugin keeps) and
 * returns its path; docs/broker.md describes the file. */
static iotp_rc broker_prepare(const struct datadir *d, const char *mqtt_listen, char *conf,
                              size_t conf_size, struct iotp_err *err)
{
	char plugin[PATH_MAX], capath[PATH_MAX], dir[PATH_MAX], user[256];
	struct broker_conf_opts o = {0};
	iotp_rc rc;

	if ((rc = sibling("iotprov_mosquitto.so", plugin, sizeof(plugin), err)) != IOTP_OK ||
	    (rc = broker_conf_paths(d->conf, conf, conf_size, capath, sizeof(capath), err)) !=
	        IOTP_OK)
		return rc;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/broker", d->path) >= sizeof(dir))
		return iotp_err_set(err, IOTP_ERR_INVALID, "data dir path too long");
	if ((rc = util_mkdir(dir, 0700, err)) != IOTP_OK ||
	    (rc = util_mkdir(capath, 0755, err)) != IOTP_OK)
		return rc;
	broker_conf_default_user(d->conf, user, sizeof(user));
	o.plugin_path = plugin;
	o.conf_path = d->conf_file;
	o.capath = capath;
	o.listen = mqtt_listen;
	o.user = user;
	return broker_conf_write(d->conf, &o, conf, err);
}

int cmd_up(int argc, char **argv)
{
	struct up_opts o = {0};
	const struct cli_opt opts[] = {
		{"data-dir", 0, "DIR", "data directory from `iotprov init` (default " CLI_DEFAULT_DATA_DIR
		 ")", &o.data_dir, NULL},
		{"api-listen", 0, "HOST:PORT", "API address (default: [api] listen, 127.0.0.1:8443)",
		 &o.api_listen, NULL},
		{"mqtt-listen", 0, "HOST:PORT", "MQTT/TLS address (default: [mqtt] listen, "
		 "127.0.0.1:8883)", &o.mqtt_listen, NULL},
	};
	const struct cli_spec spec = {
		"up", "[--data-dir DIR] [--api-listen HOST:PORT] [--mqtt-listen HOST:PORT]",
		"Runs iotprov in the foreground: iotprovd, the HTTPS control-plane API\n"
		"(AWS IoT compatible) and EST endpoints, and mosquitto with the iotprov\n"
		"plugin (MQTT over mutual TLS), on the data directory's configuration.\n"
		"Prints the endpoints, the CA bundle and an `aws iot` example once it is\n"
		"ready; stops cleanly on Ctrl-C (SIGINT) or SIGTERM; passes\n"
		"SIGHUP on (iotprovd reloads iotprov.conf).\n"
		"\n"
		"Exit status: 0 after a clean stop, 1 when a service cannot start (a port\n"
		"in use, a bad configuration: explained) or stops on its own, 2 bad usage.\n"
		"\n"
		"For sanitizer builds: IOTP_BROKER_PRELOAD=LIB preloads LIB (the sanitizer\n"
		"runtime) into mosquitto, which then loads the instrumented plugin.",
		opts, sizeof(opts) / sizeof(opts[0]), 0, 0};
	const char *args[CLI_MAX_ARGS];
	char iotprovd[PATH_MAX], api_listen[256], mqtt_listen[256], url[512];
	char broker_conf[PATH_MAX], preload_env[PATH_MAX + 16];
	struct child children[2];
	struct supervisor sup;
	struct datadir d;
	struct iotp_err err;
	int nargs, rc, sup_ok = 0, status = CLI_FAIL;

	if ((rc = cli_parse(&spec, argc, argv, args, &nargs)) != CLI_OK)
		return CLI_PARSE_EXIT(rc);
	{
		char host[256];
		int port;

		if (o.api_listen != NULL &&
		    conf_parse_listen(o.api_listen, host, sizeof(host), &port, &err) != IOTP_OK)
			return cli_usage_error(&spec, "--api-listen: %s", err.msg);
		if (o.mqtt_listen != NULL &&
		    conf_parse_listen(o.mqtt_listen, host, sizeof(host), &port, &err) != IOTP_OK)
			return cli_usage_error(&spec, "--mqtt-listen: %s", err.msg);
	}
	if (datadir_open(&d, o.data_dir != NULL ? o.data_dir : CLI_DEFAULT_DATA_DIR, &err) !=
	    IOTP_OK)
		return cli_fail(spec.command, "%s", err.msg);
	util_strlcpy(api_listen, o.api_listen != NULL ? o.api_listen : d.conf->api_listen,
	             sizeof(api_listen));
	/* Kept for the broker's entry. */
	util_strlcpy(mqtt_listen, o.mqtt_listen != NULL ? o.mqtt_listen : d.conf->mqtt_listen,
	             sizeof(mqtt_listen));
	if (sibling("iotprovd", iotprovd, sizeof(iotprovd), &err) != IOTP_OK) {
		cli_fail(spec.command, "%s", err.msg);
		goto out;
	}

	memset(children, 0, sizeof(children));
	children[0] = (struct child){
		.name = "iotprovd",
		.argv = {iotprovd, "--data-dir", d.path, "--api-listen", api_listen, NULL},
		.listen = api_listen,
		.listen_what = "API (HTTPS)",
		.listen_option = "--api-listen",
		.ready = CHILD_READY_LINE,
		.ready_prefix = IOTPROVD_READY,
		.ready_timeout_s = READY_TIMEOUT_S,
	};
	if (broker_prepare(&d, mqtt_listen, broker_conf, sizeof(broker_conf), &err) != IOTP_OK) {
		cli_fail(spec.command, "broker: %s", err.msg);
		goto out;
	}
	children[1] = (struct child){
		.name = "mosquitto",
		.argv = {MOSQUITTO_PATH, "-c", broker_conf, NULL},
		.listen = mqtt_listen,
		.listen_what = "MQTT (TLS)",
		.listen_option = "--mqtt-listen",
		.ready = CHILD_READY_CONNECT,
		.ready_timeout_s = READY_TIMEOUT_S,
	};
	/* Sanitizer builds: the plugin is instrumented and mosquitto is not, so
	 * the sanitizer runtime must be preloaded into mosquitto alone (tests set
	 * IOTP_BROKER_PRELOAD); mosquitto's own leaks are not ours to report. */
	if (getenv("IOTP_BROKER_PRELOAD") != NULL && *getenv("IOTP_BROKER_PRELOAD") != '\0') {
		snprintf(preload_env, sizeof(preload_env), "LD_PRELOAD=%s",
		         getenv("IOTP_BROKER_PRELOAD"));
		children[1].env[0] = preload_env;
		children[1].env[1] = "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1";
	}

	if (sup_init(&sup, children, IOTP_ARRAY_LEN(children), &err) != IOTP_OK) {
		cli_fail(spec.command, "%s", err.msg);
		goto out;
	}
	sup_ok = 1;
	if (sup_check_ports(&sup, &err) != IOTP_OK) {
		cli_fail(spec.command, "%s", err.msg);
		goto out;
	}
	if (sup_start_all(&sup, &err) != IOTP_OK) {
		if (sup.stop_signal != 0) {
			fprintf(stderr, "iotprov up: stopped before it was ready\n");
			status = CLI_OK;
		} else {
			cli_fail(spec.command, "%s", err.msg);
		}
		goto out;
	}
	local_url(children[0].ready_rest, url, sizeof(url));
	print_banner(&d, url, mqtt_listen);
	if (sup_run(&sup, &err) != IOTP_OK) {
		cli_fail(spec.command, "%s", err.msg);
		goto out;
	}
	printf("iotprov up: stopped (%s)\n", strsignal(sup.stop_signal));
	status = CLI_OK;
out:
	if (sup_ok) {
		sup_stop_all(&sup, 5000);
		sup_cleanup(&sup);
	}
	datadir_close(&d);
	fflush(stdout);
	return status;
}
