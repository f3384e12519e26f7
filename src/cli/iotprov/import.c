/*
 * `iotprov import FILE|DIR --template T`: bulk registration from the
 * command line. Puts the input where iotprovd reads it (straight into the
 * import directory with --data-dir, else uploaded in chunks with
 * PutImportFile), starts a thing registration task with the template's
 * body, and follows it: a live progress bar with rate and ETA on a
 * terminal, then a summary. --wait follows the task without a terminal
 * too (scripts); --json prints the final DescribeThingRegistrationTask
 * answer. Exit status 0 when every record registered, 1 when the task
 * failed, was stopped or reported bad records.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/iotprov/cli.h"
#include "cli/iotprov/client.h"
#include "cli/iotprov/datadir.h"
#include "common/buf.h"
#include "common/util.h"
#include "core/bulk.h"
#include "core/manifest.h"

#define IMPORT_BUCKET "iotprov-import"
#define UPLOAD_CHUNK (60 * 1024)        /* under the default [api] max_body */
#define LOCAL_CHUNK (4 * 1024 * 1024)
#define POLL_MS 250

static const char *const command = "import";

struct import_opts {
	const char *template_name;
	const char *format;
	const char *data_dir;
	const char *endpoint_url;
	int wait;
	int json;
};

/* The input: a file, read a chunk at a time as it is placed (a million
 * certificates make half a gigabyte), or every *.pem / *.crt file of a
 * directory in name order (certs-pem), joined in memory. */
struct input {
	const char *path;
	FILE *fp;        /* a file */
	struct buf mem;  /* a directory's files */
	size_t off;      /* of mem, placed so far */
	int64_t size;
};

/* Up to cap bytes of in into dst (*n: 0 at the end). */
static iotp_rc input_next(struct input *in, char *dst, size_t cap, size_t *n,
                          struct iotp_err *err)
{
	if (in->fp != NULL) {
		*n = fread(dst, 1, cap, in->fp);
		if (*n < cap && ferror(in->fp))
			return iotp_err_set(err, IOTP_ERR_IO, "cannot read %s: %s", in->path,
			                    strerror(errno));
		return IOTP_OK;
	}
	*n = in->mem.len - in->off < cap ? in->mem.len - in->off : cap;
	memcpy(dst, in->mem.data + in->off, *n);
	in->off += *n;
	return IOTP_OK;
}

static void input_close(struct input *in)
{
	if (in->fp != NULL)
		fclose(in->fp);
	buf_cleanup(&in->mem);
	memset(in, 0, sizeof(*in));
}

/* Refuses an input holding a NUL byte (not a text manifest) before any of
 * it is placed, then starts over at its beginning. */
static iotp_rc input_check_text(struct input *in, char *scratch, size_t cap,
                                struct iotp_err *err)
{
	size_t n;
	iotp_rc rc;

	do {
		if ((rc = input_next(in, scratch, cap, &n, err)) != IOTP_OK)
			return rc;
		if (memchr(scratch, '\0', n) != NULL)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "the input holds a NUL byte: not a text manifest");
	} while (n > 0);
	in->off = 0;
	if (in->fp != NULL)
		rewind(in->fp);
	return IOTP_OK;
}

static iotp_rc read_input(const char *path, const char *format, struct input *in,
                          struct iotp_err *err)
{
	struct buf *out = &in->mem;
	struct stat sb;
	struct dirent **names = NULL;
	int n;
	iotp_rc rc = IOTP_OK;

	in->path = path;
	if (stat(path, &sb) != 0)
		return iotp_err_set(err, IOTP_ERR_NOT_FOUND, "cannot read %s: %s", path,
		                    strerror(errno));
	if (!S_ISDIR(sb.st_mode)) {
		if ((in->fp = fopen(path, "rb")) == NULL)
			return iotp_err_set(err, IOTP_ERR_NOT_FOUND, "cannot read %s: %s", path,
			                    strerror(errno));
		in->size = (int64_t)sb.st_size;
		return IOTP_OK;
	}
	if (strcmp(format, "certs-pem") != 0)
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "%s is a directory: only --format certs-pem reads a directory of "
		                    "certificates",
		                    path);
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0)
		return iotp_err_set(err, IOTP_ERR_IO, "cannot list %s: %s", path, strerror(errno));
	for (int i = 0; i < n; i++) {
		const char *nm = names[i]->d_name;
		size_t l = strlen(nm);
		char file[PATH_MAX];
		char *data = NULL;
		size_t len = 0;

		if (rc == IOTP_OK && l > 4 &&
		    (strcmp(nm + l - 4, ".pem") == 0 || strcmp(nm + l - 4, ".crt") == 0) &&
		    (size_t)snprintf(file, sizeof(file), "%s/%s", path, nm) < sizeof(file)) {
			rc = util_read_file(file, 1 << 20, &data, &len, err);
			if (rc == IOTP_OK)
				rc = buf_append(out, data, len);
			if (rc == IOTP_OK && len > 0 && data[len - 1] != '\n')
				rc = buf_append(out, "\n", 1);
			free(data);
		}
		free(names[i]);
	}
	free(names);
	if (rc == IOTP_OK && out->len == 0)
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "no *.pem or *.crt file in %s", path);
	in->size = (int64_t)out->len;
	return rc;
}

/* The template's body: "@FILE" reads a file, anything else names a
 * provisioning template on the server. *out malloc'ed. */
static iotp_rc template_body(struct api_client *c, const char *t, char **out,
                             struct iotp_err *err)
{
	json_t *ans = NULL;
	const char *body;
	char path[512];
	iotp_rc rc;

	if (t[0] == '@') {
		size_t len = 0;

		return util_read_file(t + 1, 10240 + 1, out, &len, err);
	}
	if (strlen(t) > 36 || strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                "0123456789_-") != strlen(t))
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "--template must name a provisioning template ([0-9A-Za-z_-], at "
		                    "most 36) or be @FILE");
	snprintf(path, sizeof(path), "/provisioning-templates/%s", t);
	if ((rc = client_call(c, "GET", path, NULL, 0, "DescribeProvisioningTemplate", NULL, &ans,
	                      err)) != IOTP_OK)
		return rc;
	body = json_string_value(json_object_get(ans, "templateBody"));
	if (body == NULL)
		rc = iotp_err_set(err, IOTP_ERR_INVALID, "template %s has no templateBody", t);
	else if ((*out = strdup(body)) == NULL)
		rc = iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	json_decref(ans);
	return rc;
}

/* Puts the input in the import directory as IMPORT_BUCKET/key: written
 * there with --data-dir (same machine as the daemon), uploaded in chunks
 * with --endpoint-url. One chunk in memory at a time. */
static iotp_rc place_input(struct api_client *c, const struct import_opts *o,
                           struct input *in, const char *key, struct iotp_err *err)
{
	int local = o->data_dir != NULL && o->endpoint_url == NULL;
	size_t cap = local ? LOCAL_CHUNK : UPLOAD_CHUNK, n = 0;
	int progress = !local && isatty(STDERR_FILENO) && in->size > UPLOAD_CHUNK * 4;
	char *chunk = malloc(cap + 1);
	struct datadir d;
	int64_t off = 0, size = 0;
	iotp_rc rc;

	memset(&d, 0, sizeof(d));
	if (chunk == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	if ((rc = input_check_text(in, chunk, cap, err)) != IOTP_OK ||
	    (local && (rc = datadir_open(&d, o->data_dir, err)) != IOTP_OK)) {
		free(chunk);
		return rc;
	}
	/* At least one write, so that an empty input is an empty file. */
	do {
		if ((rc = input_next(in, chunk, cap, &n, err)) != IOTP_OK)
			break;
		if (n == 0 && off > 0)
			break;
		if (local) {
			rc = bulk_input_write(d.conf, IMPORT_BUCKET, key, off, chunk, n, &size, err);
		} else {
			struct client_param params[3];
			json_t *ans = NULL;
			char offs[32];

			chunk[n] = '\0';
			snprintf(offs, sizeof(offs), "%lld", (long long)off);
			params[0] = (struct client_param){"bucket", IMPORT_BUCKET};
			params[1] = (struct client_param){"key", key};
			params[2] = (struct client_param){"offset", offs};
			rc = client_call(c, "PUT", "/iotprov/import-files", params, 3, "PutImportFile",
			                 chunk, &ans, err);
			json_decref(ans);
		}
		off += (int64_t)n;
		if (progress && rc == IOTP_OK)
			fprintf(stderr, "\ruploading %3d%%", (int)(off * 100 / in->size));
	} while (rc == IOTP_OK && n > 0);
	if (progress)
		fprintf(stderr, "\r              \r");
	if (local)
		datadir_close(&d);
	free(chunk);
	return rc;
}

static void fmt_count(int64_t v, char *out, size_t size)
{
	char digits[32];
	size_t n = (size_t)snprintf(digits, sizeof(digits), "%lld", (long long)v), o = 0;

	for (size_t i = 0; i < n && o + 2 < size; i++) {
		if (i > 0 && (n - i) % 3 == 0 && digits[0] != '-')
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = '\0';
}

static void fmt_duration(double s, char *out, size_t size)
{
	long t = (long)(s + 0.5);

	if (t >= 3600)
		snprintf(out, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(out, size, "%ld:%02ld", t / 60, t % 60);
}

/* One redraw of the progress bar on stderr. */
static void draw_bar(int pct, int64_t done, double rate, double eta)
{
	char bar[41], n[32], r[32], e[32];
	int fill = pct * 40 / 100;

	for (int i = 0; i < 40; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[40] = '\0';
	fmt_count(done, n, sizeof(n));
	fmt_count((int64_t)rate, r, sizeof(r));
	if (eta >= 0)
		fmt_duration(eta, e, sizeof(e));
	else
		snprintf(e, sizeof(e), "--:--");
	fprintf(stderr, "\r[%s] %3d%%  %s records  %s/s  ETA %s   ", bar, pct, n, r, e);
	fflush(stderr);
}

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Follows the task until it ends; *last receives the final Describe. */
static iotp_rc follow(struct api_client *c, const char *id, int bar, json_t **last,
                      double *elapsed, struct iotp_err *err)
{
	char path[128];
	int64_t t0 = util_mono_ms(), prev_ms = t0, prev_done = 0;
	double rate = 0;
	iotp_rc rc;

	snprintf(path, sizeof(path), "/thing-registration-tasks/%s", id);
	for (;;) {
		json_t *d = NULL;
		const char *status;
		int64_t done, now;
		int pct;

		if ((rc = client_call(c, "GET", path, NULL, 0, "DescribeThingRegistrationTask", NULL, &d,
		                      err)) != IOTP_OK)
			return rc;
		status = json_string_value(json_object_get(d, "status"));
		done = json_integer_value(json_object_get(d, "successCount")) +
		       json_integer_value(json_object_get(d, "failureCount"));
		pct = (int)json_integer_value(json_object_get(d, "percentageProgress"));
		now = util_mono_ms();
		if (now > prev_ms && done >= prev_done) {
			/* A smoothed rate: recent batches count more than old ones. */
			double inst = (double)(done - prev_done) * 1000.0 / (double)(now - prev_ms);

			rate = rate == 0 ? inst : 0.7 * rate + 0.3 * inst;
		}
		prev_ms = now;
		prev_done = done;
		if (bar) {
			double secs = (double)(now - t0) / 1000.0;

			draw_bar(pct, done, rate, pct > 0 && pct < 100 ? secs * (100 - pct) / pct
			                                               : (pct >= 100 ? 0 : -1));
		}
		if (status == NULL || strcmp(status, "InProgress") != 0) {
			if (bar)
				fputc('\n', stderr);
			*elapsed = (double)(util_mono_ms() - t0) / 1000.0;
			*last = d;
			return IOTP_OK;
		}
		json_decref(d);
		nap_ms(POLL_MS);
	}
}

static void summary(struct api_client *c, const char *id, const json_t *d, double secs)
{
	int64_t ok = json_integer_value(json_object_get(d, "successCount"));
	int64_t bad = json_integer_value(json_object_get(d, "failureCount"));
	const char *status = json_string_value(json_object_get(d, "status"));
	const char *msg = json_string_value(json_object_get(d, "message"));
	char a[32], b[32], r[32], t[32];

	fmt_count(ok, a, sizeof(a));
	fmt_count(bad, b, sizeof(b));
	fmt_count(secs > 0 ? (int64_t)((double)(ok + bad) / secs) : 0, r, sizeof(r));
	fmt_duration(secs, t, sizeof(t));
	printf("task %s %s: %s registered, %s failed in %s (%s records/s)\n", id,
	       status != NULL ? status : "?", a, b, t, r);
	if (msg != NULL)
		printf("reason: %s\n", msg);
	if (bad > 0) {
		struct client_param p[] = {{"reportType", "ERRORS"}};
		char path[128];
		json_t *ans = NULL;
		struct iotp_err err;

		snprintf(path, sizeof(path), "/thing-registration-tasks/%s/reports", id);
		if (client_call(c, "GET", path, p, 1, "ListThingRegistrationTaskReports", NULL, &ans,
		                &err) == IOTP_OK) {
			json_t *links = json_object_get(ans, "resourceLinks");

			printf("the ERRORS report (one JSON line per failed record, with its line "
			       "number and reason):\n");
			for (size_t i = 0; i < json_array_size(links) && i < 5; i++)
				printf("  %s\n", json_string_value(json_array_get(links, i)));
		}
		json_decref(ans);
	}
}

int cmd_import(int argc, char **argv)
{
	struct import_opts o;
	const struct cli_opt opts[] = {
		{"template", 't', "NAME|@FILE", "provisioning template to apply (required)",
		 &o.template_name, NULL},
		{"format", 'f', "FORMAT", "jsonl (default), certs-pem or csv", &o.format, NULL},
		{"wait", 'w', NULL, "wait for the task to end even without a terminal", NULL, &o.wait},
		{"json", 0, NULL, "print the final task description as JSON", NULL, &o.json},
		{"data-dir", 0, "DIR", "data directory to reach (default " CLI_DEFAULT_DATA_DIR ")",
		 &o.data_dir, NULL},
		{"endpoint-url", 0, "URL", "API endpoint; credentials from AWS_* variables",
		 &o.endpoint_url, NULL},
	};
	const struct cli_spec spec = {
		"import", "FILE|DIR --template NAME|@FILE [--format jsonl|certs-pem|csv] [--wait] "
		"[--json]",
		"Registers every record of FILE with a provisioning template, as a thing\n"
		"registration task run by iotprovd (StartThingRegistrationTask). Formats:\n"
		"  jsonl      one JSON object of template parameters per line (default)\n"
		"  certs-pem  PEM certificates (a file, or a DIR of *.pem/*.crt); each gives\n"
		"             CertificatePem, CertificateId, CommonName, SerialNumber...\n"
		"  csv        a header row naming the parameters, one row per device\n"
		"On a terminal a progress bar shows the rate and the time left; then a\n"
		"summary. Without a terminal the task id is printed and the command returns\n"
		"unless --wait is given. The task goes on in iotprovd if the command is\n"
		"interrupted (follow it with `aws iot describe-thing-registration-task`).\n"
		"\nWith --data-dir the file is written into the daemon's import directory;\n"
		"with --endpoint-url it is uploaded (PutImportFile) first.\n"
		"Exit status: 0 every record registered, 1 a failure or bad records\n"
		"(explained), 2 bad usage.",
		opts, sizeof(opts) / sizeof(opts[0]), 1, 1,
	};
	const char *args[CLI_MAX_ARGS];
	struct api_client c;
	struct iotp_err err;
	struct input data;
	char key[200], *body = NULL, *req = NULL, id[BULK_TASK_ID_MAX + 1] = "";
	json_t *ans = NULL, *last = NULL;
	const char *base;
	double secs = 0;
	int nargs = 0, rc, status = CLI_FAIL, bar;

	memset(&o, 0, sizeof(o));
	memset(&c, 0, sizeof(c));
	rc = cli_parse(&spec, argc, argv, args, &nargs);
	if (rc != CLI_OK)
		return CLI_PARSE_EXIT(rc);
	if (o.template_name == NULL)
		return cli_usage_error(&spec, "--template is required");
	if (o.format == NULL)
		o.format = "jsonl";
	if (manifest_format_find(o.format) == NULL)
		return cli_usage_error(&spec, "unknown --format %s (known: %s)", o.format,
		                       manifest_format_names());
	if (o.data_dir == NULL && o.endpoint_url == NULL)
		o.data_dir = CLI_DEFAULT_DATA_DIR;
	memset(&data, 0, sizeof(data));
	buf_init(&data.mem, 0);
	if (read_input(args[0], o.format, &data, &err) != IOTP_OK) {
		cli_fail(command, "%s", err.msg);
		goto out;
	}
	if (client_open(&c, o.data_dir, o.endpoint_url, &err) != IOTP_OK) {
		cli_fail(command, "%s", err.msg);
		goto out;
	}
	if (template_body(&c, o.template_name, &body, &err) != IOTP_OK) {
		cli_fail(command, "template %s: %s", o.template_name, err.msg);
		goto out;
	}
	base = strrchr(args[0], '/') != NULL && strrchr(args[0], '/')[1] != '\0'
	           ? strrchr(args[0], '/') + 1
	           : args[0];
	{
		char uuid[37], clean[64];
		size_t j = 0;

		/* The key: the input's name (made safe) and a unique suffix. */
		for (size_t i = 0; base[i] != '\0' && j < sizeof(clean) - 1; i++)
			if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
			           base[i]) != NULL)
				clean[j++] = base[i];
		clean[j] = '\0';
		if (util_uuid(uuid, &err) != IOTP_OK) {
			cli_fail(command, "%s", err.msg);
			goto out;
		}
		snprintf(key, sizeof(key), "%s-%s", j > 0 && strspn(clean, ".") != j ? clean : "input",
		         uuid);
	}
	if (place_input(&c, &o, &data, key, &err) != IOTP_OK) {
		cli_fail(command, "cannot place the input for iotprovd: %s", err.msg);
		goto out;
	}
	ans = json_pack("{s:s, s:s, s:s, s:s}", "templateBody", body, "inputFileBucket",
	                IMPORT_BUCKET, "inputFileKey", key, "inputFormat", o.format);
	req = ans != NULL ? json_dumps(ans, JSON_COMPACT) : NULL;
	json_decref(ans);
	ans = NULL;
	if (req == NULL) {
		cli_fail(command, "out of memory");
		goto out;
	}
	if (client_call(&c, "POST", "/thing-registration-tasks", NULL, 0,
	                "StartThingRegistrationTask", req, &ans, &err) != IOTP_OK) {
		cli_fail(command, "%s", err.msg);
		goto out;
	}
	util_strlcpy(id, json_string_value(json_object_get(ans, "taskId")) != NULL
	                     ? json_string_value(json_object_get(ans, "taskId"))
	                     : "",
	             sizeof(id));
	bar = isatty(STDERR_FILENO) && !o.json;
	if (!bar && !o.wait) {
		if (o.json)
			printf("{\"taskId\": \"%s\"}\n", id);
		else
			printf("%s\n", id);
		status = CLI_OK;
		goto out;
	}
	if (follow(&c, id, bar, &last, &secs, &err) != IOTP_OK) {
		cli_fail(command, "following task %s: %s", id, err.msg);
		goto out;
	}
	if (o.json) {
		json_dumpf(last, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		summary(&c, id, last, secs);
	}
	status = strcmp(json_string_value(json_object_get(last, "status")) != NULL
	                    ? json_string_value(json_object_get(last, "status"))
	                    : "",
	                "Completed") == 0 &&
	                 json_integer_value(json_object_get(last, "failureCount")) == 0
	             ? CLI_OK
	             : CLI_FAIL;
out:
	json_decref(ans);
	json_decref(last);
	free(req);
	free(body);
	input_close(&data);
	client_close(&c);
	return status;
}
