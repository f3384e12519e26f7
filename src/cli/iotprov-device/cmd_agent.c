/*
 * The commands that act on one device's state directory: keygen, csr,
 * provision, rotate, connect, reset, status. They share one option table;
 * each command accepts the options that make sense for it.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cli/iotprov-device/cli.h"
#include "common/util.h"

#define MAX_PARAMS 32

/* Options of the agent commands, as parsed. */
struct args {
	const char *verb;
	const char *state_dir;
	int json, verbose, quiet;
	const char *method;
	const char *key;
	const char *type;
	const char *out;
	const char *cn, *serial, *org, *ou, *country;
	const char *claim_json;
	struct iotp_device_opts o;
	struct iotp_param params[MAX_PARAMS];
	char *param_buf[MAX_PARAMS];
	size_t nparams;
	char tmpdir[256];     /* extracted --claim JSON; removed at exit */
};

enum {
	O_STATE = 256, O_JSON, O_METHOD, O_KEY, O_TYPE, O_OUT, O_CN, O_SERIAL, O_ORG, O_OU,
	O_COUNTRY, O_ENDPOINT, O_CA, O_TEMPLATE, O_PARAM, O_FORMAT, O_CLIENT_ID, O_TIMEOUT,
	O_RETRIES, O_BASE, O_CAP, O_MQTT, O_CLAIM_CERT, O_CLAIM_KEY, O_CLAIM, O_CERT,
	O_EST_ENDPOINT, O_EST_USER, O_NEW_KEY, O_SERVER_KEY, O_TOPIC, O_MESSAGE, O_HELP,
	O_VERBOSE, O_QUIET
};

static const struct option long_opts[] = {
	{ "state-dir", required_argument, NULL, O_STATE },
	{ "json", no_argument, NULL, O_JSON },
	{ "method", required_argument, NULL, O_METHOD },
	{ "key", required_argument, NULL, O_KEY },
	{ "type", required_argument, NULL, O_TYPE },
	{ "out", required_argument, NULL, O_OUT },
	{ "cn", required_argument, NULL, O_CN },
	{ "serial", required_argument, NULL, O_SERIAL },
	{ "org", required_argument, NULL, O_ORG },
	{ "ou", required_argument, NULL, O_OU },
	{ "country", required_argument, NULL, O_COUNTRY },
	{ "endpoint", required_argument, NULL, O_ENDPOINT },
	{ "ca", required_argument, NULL, O_CA },
	{ "template", required_argument, NULL, O_TEMPLATE },
	{ "param", required_argument, NULL, O_PARAM },
	{ "format", required_argument, NULL, O_FORMAT },
	{ "client-id", required_argument, NULL, O_CLIENT_ID },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "retries", required_argument, NULL, O_RETRIES },
	{ "backoff-base", required_argument, NULL, O_BASE },
	{ "backoff-cap", required_argument, NULL, O_CAP },
	{ "mqtt-version", required_argument, NULL, O_MQTT },
	{ "claim-cert", required_argument, NULL, O_CLAIM_CERT },
	{ "claim-key", required_argument, NULL, O_CLAIM_KEY },
	{ "claim", required_argument, NULL, O_CLAIM },
	{ "cert", required_argument, NULL, O_CERT },
	{ "est-endpoint", required_argument, NULL, O_EST_ENDPOINT },
	{ "est-user", required_argument, NULL, O_EST_USER },
	{ "new-key", no_argument, NULL, O_NEW_KEY },
	{ "server-key", no_argument, NULL, O_SERVER_KEY },
	{ "topic", required_argument, NULL, O_TOPIC },
	{ "message", required_argument, NULL, O_MESSAGE },
	{ "help", no_argument, NULL, O_HELP },
	{ "verbose", no_argument, NULL, O_VERBOSE },
	{ "quiet", no_argument, NULL, O_QUIET },
	{ NULL, 0, NULL, 0 },
};

/* Which options each command takes. */
struct verb_spec {
	const char *name;
	const char *usage;
	const int *allowed;
};

static const char settings_help[] =
	"  --endpoint HOST:PORT   MQTT endpoint (saved in the state dir)\n"
	"  --ca FILE              trusted roots, e.g. the service's ca-bundle.pem (copied)\n"
	"  --template NAME        fleet provisioning template (saved)\n"
	"  --param NAME=VALUE     template parameter, repeatable (saved)\n"
	"  --format json|cbor     fleet provisioning payloads (default json)\n"
	"  --client-id ID         MQTT client id (default: thing name, else CN)\n"
	"  --cn CN                CSR common name (default: SerialNumber parameter)\n"
	"  --timeout SECONDS      per connection / reply (default 10)\n"
	"  --retries N            connection attempts after the first (default 5)\n"
	"  --backoff-base MS      first retry window (default 500)\n"
	"  --backoff-cap MS       largest retry window (default 30000)\n"
	"  --mqtt-version 4|5     MQTT 3.1.1 or 5 (default 5)\n"
	"  --state-dir DIR        device state (default $IOTP_DEVICE_STATE_DIR, else "
	DEFAULT_STATE_DIR ")\n"
	"  --json                 print the result as JSON\n"
	"  -v, --verbose / -q, --quiet   more / no progress lines on stderr\n";

static void print_help(const char *verb)
{
	if (strcmp(verb, "keygen") == 0)
		printf("usage: iotprov-device keygen [--key URI] [--type ec-p256|ec-p384|rsa-2048]\n"
		       "                             [--state-dir DIR] [--json]\n\n"
		       "Creates the factory key and records it in the state dir. URI:\n"
		       "  file:PATH (default file:factory.key in the state dir; mode 0600), or\n"
		       "  pkcs11:token=LABEL;object=LABEL[?module-path=LIB][&pin-source=file:PATH]\n"
		       "  (the key is generated inside the token, sensitive and non-extractable;\n"
		       "  PIN from pin-value=, pin-source= or $IOTP_PKCS11_PIN; module from\n"
		       "  module-path=, $IOTP_PKCS11_MODULE, else SoftHSM2).\n");
	else if (strcmp(verb, "csr") == 0)
		printf("usage: iotprov-device csr [--key URI | --state-dir DIR] --cn CN\n"
		       "                          [--serial S] [--org O] [--ou OU] [--country CC]\n"
		       "                          [--out FILE]\n\n"
		       "Prints a PEM CSR signed by the device key (inside the token for PKCS#11),\n"
		       "asking for clientAuth. Default key: the state dir's factory key.\n");
	else if (strcmp(verb, "provision") == 0)
		printf("usage: iotprov-device provision --method claim|trusted-user|est|jitp [options]\n\n"
		       "Gets an identity and connects with it; it becomes current only once that\n"
		       "connection worked. Run again after a failure or a power cut: it resumes.\n"
		       "  claim         fleet provisioning with the factory claim\n"
		       "                (--claim-cert FILE --claim-key FILE the first time: kept)\n"
		       "  trusted-user  the same with the installer's temporary claim:\n"
		       "                --claim-cert/--claim-key, or --claim FILE (the JSON of\n"
		       "                aws iot create-provisioning-claim); not kept\n"
		       "  est           EST simpleenroll at --est-endpoint HOST:PORT\n"
		       "                (--est-user U, password in $IOTP_EST_PASSWORD)\n"
		       "  jitp          install --cert FILE (signed by a CA registered with iotprov)\n"
		       "                and connect, retrying while JITP/JITR activates it\n"
		       "  --new-key     a new key for this identity (default: the factory key)\n"
		       "  --server-key  claim: let the service make the key ($aws/certificates/create)\n"
		       "%s", settings_help);
	else if (strcmp(verb, "rotate") == 0)
		printf("usage: iotprov-device rotate [--method claim|trusted-user|est] [--new-key]\n"
		       "                             [options]\n\n"
		       "A new certificate through the service (fleet provisioning again, or EST\n"
		       "simplereenroll authenticated by the current certificate); the current\n"
		       "identity is released only after the new one has connected.\n"
		       "Default method: the one that provisioned the device.\n%s",
		       settings_help);
	else if (strcmp(verb, "connect") == 0)
		printf("usage: iotprov-device connect [--topic T] [--message TEXT] [options]\n\n"
		       "Connects with the identity (first one provisioned but not yet connected,\n"
		       "if any), publishes one QoS 1 message (default topic things/<client id>/hello)\n"
		       "and waits for its PUBACK, retrying with exponential backoff and jitter.\n%s",
		       settings_help);
	else if (strcmp(verb, "reset") == 0)
		printf("usage: iotprov-device reset [--state-dir DIR] [--json]\n\n"
		       "Back to the factory state: operational certificates and the keys made for\n"
		       "them are removed; the factory key, the factory claim and settings stay.\n");
	else
		printf("usage: iotprov-device status [--state-dir DIR] [--json]\n\n"
		       "Identity, thing name, certificate id and expiry, key protection.\n");
}

static void progress(void *ud, const char *line)
{
	(void)ud;
	fprintf(stderr, "  %s\n", line);
}

static void args_cleanup(struct args *a)
{
	size_t i;

	for (i = 0; i < a->nparams; i++)
		free(a->param_buf[i]);
	if (a->tmpdir[0] != '\0') {
		char p[300];

		snprintf(p, sizeof(p), "%s/claim.key", a->tmpdir);
		unlink(p);
		snprintf(p, sizeof(p), "%s/claim.crt", a->tmpdir);
		unlink(p);
		rmdir(a->tmpdir);
	}
}

/* --claim FILE: the JSON of CreateProvisioningClaim, written as two files
 * in a private temp dir for the duration of the command. */
static int extract_claim(struct args *a)
{
	json_t *j = json_load_file(a->claim_json, 0, NULL), *kp;
	const char *cert, *key;
	struct iotp_err err;
	static char cpath[300], kpath[300];
	const char *tmp = getenv("TMPDIR");
	int rc = 1;

	cert = json_string_value(json_object_get(j, "certificatePem"));
	kp = json_object_get(j, "keyPair");
	key = json_string_value(json_object_get(kp, "PrivateKey"));
	if (cert == NULL || key == NULL) {
		fprintf(stderr,
		        "iotprov-device %s: %s is not a provisioning claim (certificatePem and "
		        "keyPair.PrivateKey)\n",
		        a->verb, a->claim_json);
		goto out;
	}
	snprintf(a->tmpdir, sizeof(a->tmpdir), "%s/iotprov-claim-XXXXXX",
	         tmp != NULL && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(a->tmpdir) == NULL) {
		a->tmpdir[0] = '\0';
		perror("iotprov-device: mkdtemp");
		goto out;
	}
	snprintf(cpath, sizeof(cpath), "%s/claim.crt", a->tmpdir);
	snprintf(kpath, sizeof(kpath), "%s/claim.key", a->tmpdir);
	if (util_write_file(cpath, cert, strlen(cert), 0600, &err) != IOTP_OK ||
	    util_write_file(kpath, key, strlen(key), 0600, &err) != IOTP_OK) {
		fprintf(stderr, "iotprov-device %s: %s\n", a->verb, err.msg);
		goto out;
	}
	a->o.claim_cert = cpath;
	a->o.claim_key = kpath;
	rc = 0;
out:
	json_decref(j);
	return rc;
}

/* Parses argv for verb; returns -1 to continue, else an exit status. */
static int parse(struct args *a, const char *verb, int argc, char **argv)
{
	long v;
	int c;

	memset(a, 0, sizeof(*a));
	a->verb = verb;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hvq", long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
		case O_HELP:
			print_help(verb);
			return 0;
		case 'v':
		case O_VERBOSE: a->verbose = 1; break;
		case 'q':
		case O_QUIET: a->quiet = 1; break;
		case O_STATE: a->state_dir = optarg; break;
		case O_JSON: a->json = 1; break;
		case O_METHOD: a->method = optarg; break;
		case O_KEY: a->key = optarg; break;
		case O_TYPE: a->type = optarg; break;
		case O_OUT: a->out = optarg; break;
		case O_CN: a->cn = optarg; a->o.common_name = optarg; break;
		case O_SERIAL: a->serial = optarg; break;
		case O_ORG: a->org = optarg; break;
		case O_OU: a->ou = optarg; break;
		case O_COUNTRY: a->country = optarg; break;
		case O_ENDPOINT: a->o.endpoint = optarg; break;
		case O_CA: a->o.ca_file = optarg; break;
		case O_TEMPLATE: a->o.template_name = optarg; break;
		case O_PARAM: {
			char *eq = strchr(optarg, '=');

			if (eq == NULL || eq == optarg)
				return cli_usage(verb, "--param takes NAME=VALUE, not '%s'", optarg);
			if (a->nparams == MAX_PARAMS)
				return cli_usage(verb, "at most %d parameters", MAX_PARAMS);
			a->param_buf[a->nparams] = strdup(optarg);
			if (a->param_buf[a->nparams] == NULL)
				return 1;
			a->param_buf[a->nparams][eq - optarg] = '\0';
			a->params[a->nparams].name = a->param_buf[a->nparams];
			a->params[a->nparams].value = a->param_buf[a->nparams] + (eq - optarg) + 1;
			a->nparams++;
			break;
		}
		case O_FORMAT:
			if (strcmp(optarg, "json") != 0 && strcmp(optarg, "cbor") != 0)
				return cli_usage(verb, "--format is json or cbor");
			a->o.format = optarg;
			break;
		case O_CLIENT_ID: a->o.client_id = optarg; break;
		case O_TIMEOUT:
			if (cli_int(verb, "--timeout", optarg, 1, 3600, &v) != 0)
				return EXIT_USAGE;
			a->o.timeout_ms = (int)v * 1000;
			break;
		case O_RETRIES:
			if (cli_int(verb, "--retries", optarg, 0, 1000, &v) != 0)
				return EXIT_USAGE;
			a->o.retries = v == 0 ? -1 : (int)v; /* -1: none (0 means "saved") */
			break;
		case O_BASE:
			if (cli_int(verb, "--backoff-base", optarg, 1, 3600000, &v) != 0)
				return EXIT_USAGE;
			a->o.backoff_base_ms = (uint32_t)v;
			break;
		case O_CAP:
			if (cli_int(verb, "--backoff-cap", optarg, 1, 3600000, &v) != 0)
				return EXIT_USAGE;
			a->o.backoff_cap_ms = (uint32_t)v;
			break;
		case O_MQTT:
			if (cli_int(verb, "--mqtt-version", optarg, 4, 5, &v) != 0)
				return EXIT_USAGE;
			a->o.mqtt_version = (int)v;
			break;
		case O_CLAIM_CERT: a->o.claim_cert = optarg; break;
		case O_CLAIM_KEY: a->o.claim_key = optarg; break;
		case O_CLAIM: a->claim_json = optarg; break;
		case O_CERT: a->o.cert_file = optarg; break;
		case O_EST_ENDPOINT: a->o.est_endpoint = optarg; break;
		case O_EST_USER: a->o.est_user = optarg; break;
		case O_NEW_KEY: a->o.new_key = 1; break;
		case O_SERVER_KEY: a->o.server_key = 1; break;
		case O_TOPIC: a->o.topic = optarg; break;
		case O_MESSAGE: a->o.message = optarg; break;
		case ':':
			return cli_usage(verb, "option %s needs a value", argv[optind - 1]);
		default:
			return cli_usage(verb, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage(verb, "unexpected argument '%s'", argv[optind]);
	if ((a->o.claim_cert == NULL) != (a->o.claim_key == NULL))
		return cli_usage(verb, "--claim-cert and --claim-key go together");
	if (a->claim_json != NULL && a->o.claim_cert != NULL)
		return cli_usage(verb, "give --claim or --claim-cert/--claim-key, not both");
	a->o.params = a->params;
	a->o.nparams = a->nparams;
	a->o.est_password = getenv("IOTP_EST_PASSWORD");
	if (!a->quiet && (!a->json || a->verbose))
		a->o.progress = progress;
	return -1;
}

static const char *backend_name(enum iotp_key_backend b)
{
	return b == IOTP_KEYSTORE_PKCS11 ? "pkcs11" : b == IOTP_KEYSTORE_FILE ? "file" : "memory";
}

static const char *alg_name(enum iotp_key_alg a)
{
	return a == IOTP_KEY_EC_P384 ? "ec-p384" : a == IOTP_KEY_RSA_2048 ? "rsa-2048" : "ec-p256";
}

static void print_key_json(const struct iotp_key_info *k)
{
	printf("{\"backend\":\"%s\",\"type\":\"%s\",\"sensitive\":%s,\"extractable\":%s,"
	       "\"alwaysSensitive\":%s,\"neverExtractable\":%s,\"local\":%s,\"fingerprint\":\"%s\"}",
	       backend_name(k->backend), alg_name(k->alg), k->sensitive ? "true" : "false",
	       k->extractable ? "true" : "false", k->always_sensitive ? "true" : "false",
	       k->never_extractable ? "true" : "false", k->local ? "true" : "false",
	       k->fingerprint);
}

static void print_key_text(const struct iotp_key_info *k)
{
	printf("%s, %s", alg_name(k->alg), backend_name(k->backend));
	if (k->backend == IOTP_KEYSTORE_PKCS11)
		printf(" (%s, %s%s)", k->sensitive ? "sensitive" : "NOT sensitive",
		       k->extractable ? "EXTRACTABLE" : "non-extractable",
		       k->local && k->never_extractable ? ", generated in the token" : "");
	printf(", SHA-256 of the public key %s", k->fingerprint);
}

int cmd_keygen(int argc, char **argv)
{
	struct args a;
	struct iotp_err err = { IOTP_OK, "" };
	enum iotp_key_alg alg = IOTP_KEY_EC_P256;
	iotp_device *d = NULL;
	iotp_keystore *ks = NULL;
	struct iotp_key_info info;
	int rc = parse(&a, "keygen", argc, argv);

	if (rc >= 0)
		goto done;
	if (a.type != NULL && iotp_key_alg_parse(a.type, &alg, &err) != IOTP_OK) {
		rc = cli_usage("keygen", "%s", err.msg);
		goto done;
	}
	if (iotp_device_open(cli_state_dir(a.state_dir), &d, &err) != IOTP_OK ||
	    iotp_device_keygen(d, a.key, alg, &err) != IOTP_OK ||
	    iotp_device_factory_key(d, &ks, &err) != IOTP_OK ||
	    iotp_keystore_info(ks, &info, &err) != IOTP_OK) {
		rc = cli_fail("keygen", a.json, &err, NULL);
		goto done;
	}
	if (a.json) {
		printf("{\"ok\":true,\"key\":");
		print_key_json(&info);
		printf("}\n");
	} else {
		printf("factory key created: ");
		print_key_text(&info);
		printf("\n");
	}
	rc = 0;
done:
	iotp_keystore_free(ks);
	iotp_device_close(d);
	args_cleanup(&a);
	return rc;
}

int cmd_csr(int argc, char **argv)
{
	struct args a;
	struct iotp_err err = { IOTP_OK, "" };
	iotp_device *d = NULL;
	iotp_keystore *ks = NULL;
	char *pem = NULL;
	size_t len = 0;
	int rc = parse(&a, "csr", argc, argv);

	if (rc >= 0)
		goto done;
	if (a.cn == NULL) {
		rc = cli_usage("csr", "--cn is required");
		goto done;
	}
	{
		struct iotp_csr_subject s = { a.cn, a.serial, a.org, a.ou, a.country };

		if (a.key != NULL)
			rc = iotp_keystore_open(a.key, &ks, &err) != IOTP_OK;
		else
			rc = iotp_device_open(cli_state_dir(a.state_dir), &d, &err) != IOTP_OK ||
			     iotp_device_factory_key(d, &ks, &err) != IOTP_OK;
		if (rc != 0 || iotp_csr_create(ks, &s, &pem, &len, &err) != IOTP_OK) {
			rc = cli_fail("csr", a.json, &err, NULL);
			goto done;
		}
	}
	if (a.out != NULL) {
		if (util_write_file(a.out, pem, len, 0644, &err) != IOTP_OK) {
			rc = cli_fail("csr", a.json, &err, NULL);
			goto done;
		}
	} else if (a.json) {
		printf("{\"ok\":true,\"csr\":");
		cli_json_string(stdout, pem);
		printf("}\n");
	} else {
		fputs(pem, stdout);
	}
	rc = 0;
done:
	free(pem);
	iotp_keystore_free(ks);
	iotp_device_close(d);
	args_cleanup(&a);
	return rc;
}

static void print_time(int64_t t)
{
	char buf[64];
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fputs(buf, stdout);
}

static int print_status(iotp_device *d, int json, const char *verb)
{
	struct iotp_device_status st;
	struct iotp_err err = { IOTP_OK, "" };

	if (iotp_device_status(d, &st, &err) != IOTP_OK)
		return cli_fail(verb, json, &err, NULL);
	if (json) {
		printf("{\"ok\":true,\"provisioned\":%s,\"pending\":%s,\"method\":",
		       st.provisioned ? "true" : "false", st.pending ? "true" : "false");
		cli_json_string(stdout, st.method);
		printf(",\"thingName\":");
		cli_json_string(stdout, st.thing_name);
		printf(",\"clientId\":");
		cli_json_string(stdout, st.client_id);
		printf(",\"certificateId\":");
		cli_json_string(stdout, st.cert_id);
		printf(",\"notBefore\":%lld,\"notAfter\":%lld,\"keyUri\":", (long long)st.not_before,
		       (long long)st.not_after);
		cli_json_string(stdout, st.key_uri);
		printf(",\"key\":");
		if (st.key_present)
			print_key_json(&st.key);
		else
			printf("null");
		printf(",\"hasClaim\":%s,\"endpoint\":", st.has_claim ? "true" : "false");
		cli_json_string(stdout, st.endpoint);
		printf(",\"template\":");
		cli_json_string(stdout, st.template_name);
		printf("}\n");
		return 0;
	}
	if (st.provisioned) {
		int64_t days = (st.not_after - (int64_t)time(NULL)) / 86400;

		printf("state:        provisioned (%s)%s\n", st.method,
		       st.pending ? ", a new identity awaits its first connection" : "");
		printf("thing:        %s\n", st.thing_name[0] ? st.thing_name : "(none)");
		printf("client id:    %s\n", st.client_id);
		printf("certificate:  %s\n", st.cert_id);
		printf("expires:      ");
		print_time(st.not_after);
		printf(days >= 0 ? " (in %lld days)\n" : " (EXPIRED %lld days ago)\n",
		       (long long)(days >= 0 ? days : -days));
	} else {
		printf("state:        factory%s\n",
		       st.pending ? " (a provisioning is under way: run provision or connect)" : "");
	}
	printf("key:          %s", st.key_uri[0] ? st.key_uri : "(none: run keygen)");
	if (st.key_present) {
		printf("\n              ");
		print_key_text(&st.key);
	}
	printf("\nclaim:        %s\n", st.has_claim ? "stored" : "none");
	if (st.endpoint[0])
		printf("endpoint:     %s\n", st.endpoint);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	struct args a;
	struct iotp_err err = { IOTP_OK, "" };
	iotp_device *d = NULL;
	int rc = parse(&a, "status", argc, argv);

	if (rc >= 0)
		goto done;
	if (iotp_device_open(cli_state_dir(a.state_dir), &d, &err) != IOTP_OK) {
		rc = cli_fail("status", a.json, &err, NULL);
		goto done;
	}
	rc = print_status(d, a.json, "status");
done:
	iotp_device_close(d);
	args_cleanup(&a);
	return rc;
}

/* provision, rotate and connect: open, run, report. */
static int run_agent(int argc, char **argv, const char *verb)
{
	struct args a;
	struct iotp_err err = { IOTP_OK, "" };
	struct iotp_failure why;
	enum iotp_method m = IOTP_METHOD_CLAIM;
	iotp_device *d = NULL;
	iotp_rc r;
	int rc = parse(&a, verb, argc, argv);

	iotp_failure_clear(&why);
	if (rc >= 0)
		goto done;
	if (strcmp(verb, "provision") == 0 && a.method == NULL) {
		rc = cli_usage(verb, "--method claim|trusted-user|est|jitp is required");
		goto done;
	}
	if (a.method != NULL && iotp_method_parse(a.method, &m, &err) != IOTP_OK) {
		rc = cli_usage(verb, "%s", err.msg);
		goto done;
	}
	if (a.claim_json != NULL && extract_claim(&a) != 0) {
		rc = 1;
		goto done;
	}
	if (iotp_device_open(cli_state_dir(a.state_dir), &d, &err) != IOTP_OK) {
		rc = cli_fail(verb, a.json, &err, NULL);
		goto done;
	}
	if (strcmp(verb, "rotate") == 0 && a.method == NULL) {
		/* The method that provisioned the device; a trusted-user device
		 * without a new claim from the installer uses its factory claim. */
		struct iotp_device_status st;

		if (iotp_device_status(d, &st, &err) == IOTP_OK &&
		    iotp_method_parse(st.method, &m, NULL) != IOTP_OK)
			m = IOTP_METHOD_CLAIM;
		if (m == IOTP_METHOD_TRUSTED_USER && a.o.claim_cert == NULL)
			m = IOTP_METHOD_CLAIM;
	}
	if (strcmp(verb, "provision") == 0)
		r = iotp_device_provision(d, m, &a.o, &why, &err);
	else if (strcmp(verb, "rotate") == 0)
		r = iotp_device_rotate(d, m, &a.o, &why, &err);
	else
		r = iotp_device_connect(d, &a.o, &why, &err);
	if (r != IOTP_OK) {
		rc = cli_fail(verb, a.json, &err, &why);
		goto done;
	}
	if (!a.json)
		printf("%s: ok\n", verb);
	rc = print_status(d, a.json, verb);
done:
	iotp_device_close(d);
	args_cleanup(&a);
	return rc;
}

int cmd_provision(int argc, char **argv)
{
	return run_agent(argc, argv, "provision");
}

int cmd_rotate(int argc, char **argv)
{
	return run_agent(argc, argv, "rotate");
}

int cmd_connect(int argc, char **argv)
{
	return run_agent(argc, argv, "connect");
}

int cmd_reset(int argc, char **argv)
{
	struct args a;
	struct iotp_err err = { IOTP_OK, "" };
	iotp_device *d = NULL;
	int rc = parse(&a, "reset", argc, argv);

	if (rc >= 0)
		goto done;
	if (iotp_device_open(cli_state_dir(a.state_dir), &d, &err) != IOTP_OK ||
	    iotp_device_reset(d, &err) != IOTP_OK) {
		rc = cli_fail("reset", a.json, &err, NULL);
		goto done;
	}
	if (!a.json)
		printf("reset: back to the factory state\n");
	rc = print_status(d, a.json, "reset");
done:
	iotp_device_close(d);
	args_cleanup(&a);
	return rc;
}
