/*
 * `iotprov-device commission`: puts a factory-fresh device in commissioning
 * mode. It loads (or derives from the setup code) the verifier record,
 * starts the transports asked for (--http, --serial, --media), and answers
 * installers: the network goes through the configured file and apply
 * command (core/commission_net.c), the trusted-user claim through
 * libiotprov-device's provisioning (iotp_device_provision, method
 * trusted-user) in --state-dir. With --once it exits when an installer has
 * finished a session; `commission verifier` writes the record a factory
 * stores instead of the setup code.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "common/util.h"
#include "device/commission.h"
#include "iotprov/device.h"

struct agent {
	const char *state_dir;
	const char *endpoint;
	const char *ca_file;
	struct commission_net_conf net;
	struct commission_device *dev;
	int once;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: iotprov-device commission [--http HOST:PORT] [--serial TTY] [--media DIR]\n"
	        "         (--setup-code CODE | --setup-code-file FILE | --verifier FILE)\n"
	        "         [--device-id ID] [--state-dir DIR] [--page FILE]\n"
	        "         [--net-format wpa_supplicant|networkmanager] [--net-config PATH]\n"
	        "         [--net-apply CMD] [--net-timeout S] [--endpoint HOST:PORT] [--ca FILE]\n"
	        "         [--max-attempts N] [--delay-ms N] [--max-delay-ms N] [--lockout-s N]\n"
	        "         [--idle-timeout-s N] [--attempts-file PATH] [--once] [--timeout S]\n"
	        "       iotprov-device commission verifier --device-id ID\n"
	        "         (--setup-code CODE | --setup-code-file FILE) [--iter N] [--out FILE]\n"
	        "\n"
	        "Waits for an installer (the web page, `iotprov commission`) on each transport\n"
	        "given. The installer proves it knows the setup code with SPAKE2+; wrong codes\n"
	        "are delayed, then locked out. The network it sends is written to --net-config\n"
	        "(0600) and --net-apply runs (exit 0 = joined; its first output line is the\n"
	        "reason otherwise). A trusted-user claim is used to provision the device in\n"
	        "--state-dir, and the thing name goes back to the installer.\n"
	        "  --once        exit once an installer has ended a session: 0 when the device\n"
	        "                is on a network, 1 when it is not\n"
	        "  --timeout S   give up after S seconds (exit 1)\n"
	        "  verifier      write the verifier record (device id, salt, w0, L) that a\n"
	        "                factory stores instead of the setup code (--verifier FILE)\n");
}

/* Reads a one-line secret from a file (trailing newline removed). */
static int read_secret(const char *path, char *out, size_t size)
{
	char *text = NULL;
	size_t len = 0;
	struct iotp_err err;

	if (util_read_file(path, 4096, &text, &len, &err) != IOTP_OK) {
		fprintf(stderr, "iotprov-device commission: %s\n", err.msg);
		return -1;
	}
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	if (len >= size) {
		fprintf(stderr, "iotprov-device commission: %s: too long\n", path);
		OPENSSL_cleanse(text, len);
		free(text);
		return -1;
	}
	memcpy(out, text, len + 1);
	OPENSSL_cleanse(text, len);
	free(text);
	return 0;
}

static iotp_rc apply_network(void *ud, const struct commission_network *net, int *joined,
                             char *reason, size_t reason_size, struct iotp_err *err)
{
	struct agent *a = ud;

	return commission_net_apply(&a->net, net, joined, reason, reason_size, err);
}

static void progress(void *ud, const char *line)
{
	(void)ud;
	LOG_INFO("commission: provisioning: %s", line);
}

/* Writes text to dir/name (0600); path receives the full path. */
static iotp_rc put_file(const char *dir, const char *name, const char *text, char *path,
                        size_t size, struct iotp_err *err)
{
	if ((size_t)snprintf(path, size, "%s/%s", dir, name) >= size)
		return iotp_err_set(err, IOTP_ERR_INVALID, "state directory path too long");
	return util_write_file(path, text, strlen(text), 0600, err);
}

static void wipe_file(const char *path)
{
	FILE *f = fopen(path, "r+");

	if (f) {
		long n;

		if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0) {
			rewind(f);
			for (long i = 0; i < n; i++)
				fputc(0, f);
		}
		fclose(f);
	}
	unlink(path);
}

static iotp_rc provision(void *ud, const struct commission_claim *claim,
                         struct commission_prov_outcome *out, struct iotp_err *err)
{
	struct agent *a = ud;
	char cert_path[4096], key_path[4096], ca_path[4096];
	struct iotp_device_opts opts;
	struct iotp_param *params = NULL;
	struct iotp_device_status st;
	struct iotp_failure why;
	iotp_device *d = NULL;
	size_t np = 0;
	iotp_rc rc;

	cert_path[0] = key_path[0] = '\0';
	if (!a->state_dir)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "no --state-dir to keep an identity in");
	if ((rc = util_mkdir(a->state_dir, 0700, err)) != IOTP_OK)
		return rc;
	memset(&opts, 0, sizeof(opts));
	opts.endpoint = claim->endpoint ? claim->endpoint : a->endpoint;
	opts.ca_file = a->ca_file;
	if (claim->ca_pem) {
		if ((rc = put_file(a->state_dir, "commission-ca.pem", claim->ca_pem, ca_path,
		                   sizeof(ca_path), err)) != IOTP_OK)
			goto out;
		opts.ca_file = ca_path;
	}
	if ((rc = put_file(a->state_dir, "commission-claim.crt", claim->cert_pem, cert_path,
	                   sizeof(cert_path), err)) != IOTP_OK ||
	    (rc = put_file(a->state_dir, "commission-claim.key", claim->key_pem, key_path,
	                   sizeof(key_path), err)) != IOTP_OK)
		goto out;
	opts.claim_cert = cert_path;
	opts.claim_key = key_path;
	opts.template_name = claim->template_name;
	opts.progress = progress;
	if (claim->parameters && json_object_size(claim->parameters)) {
		const char *k;
		json_t *v;

		params = calloc(json_object_size(claim->parameters), sizeof(*params));
		if (!params) {
			rc = iotp_err_set(err, IOTP_ERR_NOMEM, "parameters");
			goto out;
		}
		json_object_foreach(claim->parameters, k, v) {
			params[np].name = k;
			params[np].value = json_string_value(v);
			np++;
		}
		opts.params = params;
		opts.nparams = np;
	}
	if ((rc = iotp_device_open(a->state_dir, &d, err)) != IOTP_OK)
		goto out;
	iotp_failure_clear(&why);
	memset(out, 0, sizeof(*out));
	if (iotp_device_provision(d, IOTP_METHOD_TRUSTED_USER, &opts, &why, err) != IOTP_OK) {
		out->ok = 0;
		snprintf(out->reason, sizeof(out->reason), "%s%s%.60s: %.120s",
		         iotp_cause_name(why.cause), why.code[0] ? " " : "", why.code,
		         err ? err->msg : "");
		rc = IOTP_OK;
		goto out;
	}
	if ((rc = iotp_device_status(d, &st, err)) != IOTP_OK)
		goto out;
	out->ok = 1;
	util_strlcpy(out->thing, st.thing_name, sizeof(out->thing));
	util_strlcpy(out->cert_id, st.cert_id, sizeof(out->cert_id));
out:
	iotp_device_close(d);
	free(params);
	if (key_path[0])
		wipe_file(key_path);
	if (cert_path[0])
		unlink(cert_path);
	return rc;
}

static int is_done(void *ud)
{
	struct agent *a = ud;
	struct commission_device_status st;

	if (!a->once)
		return 0;
	commission_device_status(a->dev, &st);
	return st.sessions_done > 0;
}

static int parse_num(const char *opt, const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (util_parse_int64(s, min, max, out) != IOTP_OK) {
		fprintf(stderr, "iotprov-device commission: %s: expected a number in [%lld, %lld]\n",
		        opt, (long long)min, (long long)max);
		return -1;
	}
	return 0;
}

static int verifier_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"device-id", required_argument, NULL, 'd'},
		{"setup-code", required_argument, NULL, 'c'},
		{"setup-code-file", required_argument, NULL, 'C'},
		{"iter", required_argument, NULL, 'i'},
		{"out", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *device_id = NULL, *outp = NULL;
	char code[COMMISSION_SETUP_CODE_MAX + 2] = "";
	int64_t iter = COMMISSION_ITER_DEFAULT;
	struct commission_record rec;
	struct buf text;
	struct iotp_err err;
	int c, rc = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': device_id = optarg; break;
		case 'c': util_strlcpy(code, optarg, sizeof(code)); break;
		case 'C':
			if (read_secret(optarg, code, sizeof(code)) != 0)
				return 1;
			break;
		case 'i':
			if (parse_num("--iter", optarg, SPAKE2P_ITER_MIN, SPAKE2P_ITER_MAX, &iter))
				return 2;
			break;
		case 'o': outp = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!device_id || !code[0]) {
		fprintf(stderr, "iotprov-device commission verifier: --device-id and a setup code "
		                "are required\n");
		return 2;
	}
	buf_init(&text, 0);
	if (commission_record_make(device_id, code, NULL, 0, (uint32_t)iter, &rec, &err) !=
	        IOTP_OK ||
	    commission_record_format(&rec, &text, &err) != IOTP_OK) {
		fprintf(stderr, "iotprov-device commission verifier: %s\n", err.msg);
		goto out;
	}
	if (outp) {
		if (util_write_file(outp, text.data, text.len, 0600, &err) != IOTP_OK) {
			fprintf(stderr, "iotprov-device commission verifier: %s\n", err.msg);
			goto out;
		}
	} else {
		fputs(text.data, stdout);
	}
	rc = 0;
out:
	OPENSSL_cleanse(code, sizeof(code));
	commission_record_cleanup(&rec);
	buf_cleanup_secure(&text);
	return rc;
}

int commission_agent_main(int argc, char **argv)
{
	enum {
		O_HTTP = 256, O_SERIAL, O_MEDIA, O_CODE, O_CODE_FILE, O_VERIFIER, O_DEVICE_ID,
		O_STATE, O_PAGE, O_NET_FORMAT, O_NET_CONFIG, O_NET_APPLY, O_NET_TIMEOUT,
		O_ENDPOINT, O_CA, O_MAX_ATTEMPTS, O_DELAY, O_MAX_DELAY, O_LOCKOUT, O_IDLE,
		O_ATTEMPTS_FILE, O_ONCE, O_TIMEOUT
	};
	static const struct option longopts[] = {
		{"http", required_argument, NULL, O_HTTP},
		{"serial", required_argument, NULL, O_SERIAL},
		{"media", required_argument, NULL, O_MEDIA},
		{"setup-code", required_argument, NULL, O_CODE},
		{"setup-code-file", required_argument, NULL, O_CODE_FILE},
		{"verifier", required_argument, NULL, O_VERIFIER},
		{"device-id", required_argument, NULL, O_DEVICE_ID},
		{"state-dir", required_argument, NULL, O_STATE},
		{"page", required_argument, NULL, O_PAGE},
		{"net-format", required_argument, NULL, O_NET_FORMAT},
		{"net-config", required_argument, NULL, O_NET_CONFIG},
		{"net-apply", required_argument, NULL, O_NET_APPLY},
		{"net-timeout", required_argument, NULL, O_NET_TIMEOUT},
		{"endpoint", required_argument, NULL, O_ENDPOINT},
		{"ca", required_argument, NULL, O_CA},
		{"max-attempts", required_argument, NULL, O_MAX_ATTEMPTS},
		{"delay-ms", required_argument, NULL, O_DELAY},
		{"max-delay-ms", required_argument, NULL, O_MAX_DELAY},
		{"lockout-s", required_argument, NULL, O_LOCKOUT},
		{"idle-timeout-s", required_argument, NULL, O_IDLE},
		{"attempts-file", required_argument, NULL, O_ATTEMPTS_FILE},
		{"once", no_argument, NULL, O_ONCE},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct agent a;
	struct commission_device_conf conf;
	struct commission_record rec;
	struct cm_transport *ts[3] = {NULL, NULL, NULL};
	const char *http = NULL, *serial = NULL, *media = NULL, *verifier = NULL;
	const char *device_id = NULL, *page = NULL, *attempts_file = NULL;
	char code[COMMISSION_SETUP_CODE_MAX + 2] = "", host[256], attempts_path[4096];
	int64_t v, timeout_s = 0;
	size_t nt = 0;
	struct iotp_err err;
	int c, rc = 1;
	iotp_rc r;

	if (argc > 1 && strcmp(argv[1], "verifier") == 0)
		return verifier_main(argc - 1, argv + 1);
	memset(&a, 0, sizeof(a));
	memset(&conf, 0, sizeof(conf));
	memset(&rec, 0, sizeof(rec));
	commission_limits_init(&conf.limits);
	a.net.format = COMMISSION_NET_WPA_SUPPLICANT;
	a.net.timeout_s = 30;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_HTTP: http = optarg; break;
		case O_SERIAL: serial = optarg; break;
		case O_MEDIA: media = optarg; break;
		case O_CODE: util_strlcpy(code, optarg, sizeof(code)); break;
		case O_CODE_FILE:
			if (read_secret(optarg, code, sizeof(code)) != 0)
				return 1;
			break;
		case O_VERIFIER: verifier = optarg; break;
		case O_DEVICE_ID: device_id = optarg; break;
		case O_STATE: a.state_dir = optarg; break;
		case O_PAGE: page = optarg; break;
		case O_NET_FORMAT:
			if (commission_net_format_parse(optarg, &a.net.format, &err) != IOTP_OK) {
				fprintf(stderr, "iotprov-device commission: %s\n", err.msg);
				return 2;
			}
			break;
		case O_NET_CONFIG: a.net.config_path = optarg; break;
		case O_NET_APPLY: a.net.apply_cmd = optarg; break;
		case O_NET_TIMEOUT:
			if (parse_num("--net-timeout", optarg, 1, 600, &v))
				return 2;
			a.net.timeout_s = (int)v;
			break;
		case O_ENDPOINT: a.endpoint = optarg; break;
		case O_CA: a.ca_file = optarg; break;
		case O_MAX_ATTEMPTS:
			if (parse_num("--max-attempts", optarg, 1, 1000, &v))
				return 2;
			conf.limits.max_attempts = (int)v;
			break;
		case O_DELAY:
			if (parse_num("--delay-ms", optarg, 0, 3600000, &v))
				return 2;
			conf.limits.base_delay_ms = v;
			break;
		case O_MAX_DELAY:
			if (parse_num("--max-delay-ms", optarg, 0, 86400000, &v))
				return 2;
			conf.limits.max_delay_ms = v;
			break;
		case O_LOCKOUT:
			if (parse_num("--lockout-s", optarg, 0, 30 * 86400, &v))
				return 2;
			conf.limits.lockout_ms = v * 1000;
			break;
		case O_IDLE:
			if (parse_num("--idle-timeout-s", optarg, 1, 86400, &v))
				return 2;
			conf.limits.idle_timeout_ms = v * 1000;
			break;
		case O_ATTEMPTS_FILE: attempts_file = optarg; break;
		case O_ONCE: a.once = 1; break;
		case O_TIMEOUT:
			if (parse_num("--timeout", optarg, 1, 86400 * 365, &timeout_s))
				return 2;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || (!http && !serial && !media) || (!code[0] && !verifier) ||
	    (code[0] && verifier)) {
		fprintf(stderr, "iotprov-device commission: give at least one of --http, --serial, "
		                "--media, and exactly one of a setup code or --verifier\n");
		usage(stderr);
		return 2;
	}
	if (conf.limits.max_delay_ms < conf.limits.base_delay_ms)
		conf.limits.max_delay_ms = conf.limits.base_delay_ms;

	/* The verifier record: from the factory's file, or derived now. */
	if (verifier) {
		char *text = NULL;
		size_t len = 0;

		r = util_read_file(verifier, 65536, &text, &len, &err);
		if (r == IOTP_OK)
			r = commission_record_parse(text, len, &rec, &err);
		if (text) {
			OPENSSL_cleanse(text, len);
			free(text);
		}
		if (r == IOTP_OK && device_id && strcmp(device_id, rec.device_id) != 0)
			r = iotp_err_set(&err, IOTP_ERR_CONFIG, "--device-id %s but the verifier is for %s",
			                 device_id, rec.device_id);
	} else {
		if (!device_id) {
			if (gethostname(host, sizeof(host)) != 0)
				util_strlcpy(host, "iotprov-device", sizeof(host));
			host[sizeof(host) - 1] = '\0';
			device_id = host;
		}
		r = commission_record_make(device_id, code, NULL, 0, 0, &rec, &err);
		OPENSSL_cleanse(code, sizeof(code));
	}
	if (r != IOTP_OK) {
		fprintf(stderr, "iotprov-device commission: %s\n", err.msg);
		goto out;
	}

	if (!attempts_file && a.state_dir) {
		if (util_mkdir(a.state_dir, 0700, &err) != IOTP_OK) {
			fprintf(stderr, "iotprov-device commission: %s\n", err.msg);
			goto out;
		}
		snprintf(attempts_path, sizeof(attempts_path), "%s/commission-attempts", a.state_dir);
		attempts_file = attempts_path;
	}
	conf.record = &rec;
	conf.state_path = attempts_file;
	conf.ops.apply_network = apply_network;
	conf.ops.provision = provision;
	conf.ops.ud = &a;
	if (commission_device_new(&conf, &a.dev, &err) != IOTP_OK) {
		fprintf(stderr, "iotprov-device commission: %s\n", err.msg);
		goto out;
	}
	if (!page)
		page = getenv("IOTP_COMMISSION_PAGE");
	if ((http && cm_http_new(http, page, &ts[nt++], &err) != IOTP_OK) ||
	    (serial && cm_serial_new(serial, &ts[nt++], &err) != IOTP_OK) ||
	    (media && cm_media_new(media, &ts[nt++], &err) != IOTP_OK)) {
		ts[--nt] = NULL;
		fprintf(stderr, "iotprov-device commission: %s\n", err.msg);
		goto out;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	printf("commissioning %s:", rec.device_id);
	for (size_t i = 0; i < nt; i++) {
		if (ts[i]->name[0] == 'h')
			printf(" http %s (port %d)", http, cm_http_port(ts[i]));
		else
			printf(" %s %s", ts[i]->name, ts[i]->name[0] == 's' ? serial : media);
	}
	printf("\n");
	fflush(stdout);
	r = commission_serve(ts, nt, a.dev, &stop_flag, is_done, &a, (int)timeout_s * 1000, &err);
	{
		struct commission_device_status st;

		commission_device_status(a.dev, &st);
		if (r != IOTP_OK) {
			fprintf(stderr, "iotprov-device commission: %s\n", err.msg);
		} else if (a.once) {
			printf("commissioned: network %s%s%s\n", st.joined ? "joined" : "not joined",
			       st.provisioned ? ", thing " : "", st.provisioned ? st.thing : "");
			rc = st.joined ? 0 : 1;
		} else {
			rc = 0;
		}
	}
out:
	for (size_t i = 0; i < nt; i++)
		ts[i]->free(ts[i]);
	commission_device_free(a.dev);
	commission_record_cleanup(&rec);
	OPENSSL_cleanse(code, sizeof(code));
	return rc;
}
