/*
 * `iotprov audit tail [-n N] [--follow]`: the last events of the audit log
 * (the store's events table) through iotprovd's extension
 * GET /iotprov/audit?after=ID&limit=N, which answers
 * {"events":[{id,time,actor,action,object,detail}...], "lastId":N}.
 *
 * The API reads forward only (lastId is a cursor: the id of the last event
 * returned), so the end of the log is found by bisection on `after` (the
 * newest id N is the least `after` with nothing after it: about 2 log2(N)
 * one-event requests). Ids grow but may have gaps, so "the last N" is read
 * forward from N - n, keeping the last n; when that yields fewer than n and
 * events may exist before, the start moves back and the read repeats. With
 * --follow the log is then polled every second from the last id seen until
 * SIGINT or SIGTERM.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/iotprov/cli.h"
#include "cli/iotprov/client.h"
#include "cli/iotprov/table.h"
#include "common/util.h"

#define PAGE 1000 /* the server's largest page */
#define NCOLS 6

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* One page of events after `after`; *events is a new reference. */
static iotp_rc fetch(struct api_client *c, int64_t after, int limit, json_t **events,
                     struct iotp_err *err)
{
	char a[32], l[32];
	struct client_param p[] = {{"after", a}, {"limit", l}};
	json_t *ans = NULL, *ev;
	iotp_rc rc;

	snprintf(a, sizeof(a), "%lld", (long long)after);
	snprintf(l, sizeof(l), "%d", limit);
	if ((rc = client_call(c, "GET", "/iotprov/audit", p, 2, "audit (GET /iotprov/audit)", NULL,
	                      &ans, err)) != IOTP_OK)
		return rc;
	ev = json_object_get(ans, "events");
	if (!json_is_array(ev)) {
		json_decref(ans);
		return iotp_err_set(err, IOTP_ERR_INVALID, "the audit answer has no \"events\" list");
	}
	for (size_t i = 0; i < json_array_size(ev); i++)
		if (!json_is_integer(json_object_get(json_array_get(ev, i), "id"))) {
			json_decref(ans);
			return iotp_err_set(err, IOTP_ERR_INVALID, "an audit event has no integer \"id\"");
		}
	*events = json_incref(ev);
	json_decref(ans);
	return IOTP_OK;
}

static int64_t event_id(json_t *e)
{
	return (int64_t)json_integer_value(json_object_get(e, "id"));
}

/* *found: whether an event with id > after exists. */
static iotp_rc any_after(struct api_client *c, int64_t after, int *found, struct iotp_err *err)
{
	json_t *page = NULL;
	iotp_rc rc = fetch(c, after, 1, &page, err);

	if (rc != IOTP_OK)
		return rc;
	*found = json_array_size(page) > 0;
	json_decref(page);
	return IOTP_OK;
}

/* The id of the newest event (0 when the log is empty). */
static iotp_rc newest_id(struct api_client *c, int64_t *out, struct iotp_err *err)
{
	int64_t lo = 0, hi = 1; /* bisection invariant: found after lo, none after hi */
	int found = 0;
	iotp_rc rc;

	if ((rc = any_after(c, 0, &found, err)) != IOTP_OK)
		return rc;
	if (!found) {
		*out = 0;
		return IOTP_OK;
	}
	for (;;) {
		if ((rc = any_after(c, hi, &found, err)) != IOTP_OK)
			return rc;
		if (!found)
			break;
		lo = hi;
		if (hi > INT64_MAX / 2)
			return iotp_err_set(err, IOTP_ERR_INVALID, "audit event ids out of range");
		hi *= 2;
	}
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;

		if ((rc = any_after(c, mid, &found, err)) != IOTP_OK)
			return rc;
		if (found)
			lo = mid;
		else
			hi = mid;
	}
	*out = hi;
	return IOTP_OK;
}

/* Reads every event after `start` to the end, keeping the last n in *tail
 * (a new array) and the id of the very last one read in *end_id (start
 * when none). */
static iotp_rc read_to_end(struct api_client *c, int64_t start, size_t n, json_t **tail,
                           int64_t *end_id, struct iotp_err *err)
{
	json_t *keep = json_array();
	int64_t after = start;
	iotp_rc rc = IOTP_OK;

	if (keep == NULL)
		return iotp_err_set(err, IOTP_ERR_NOMEM, "out of memory");
	for (;;) {
		json_t *page = NULL;
		size_t count;

		if ((rc = fetch(c, after, PAGE, &page, err)) != IOTP_OK)
			break;
		count = json_array_size(page);
		if (count == 0) {
			json_decref(page);
			break;
		}
		if (event_id(json_array_get(page, count - 1)) <= after) {
			json_decref(page);
			rc = iotp_err_set(err, IOTP_ERR_INVALID,
			                  "the server returned events that are not after id %lld",
			                  (long long)after);
			break;
		}
		after = event_id(json_array_get(page, count - 1));
		json_array_extend(keep, page);
		json_decref(page);
		while (json_array_size(keep) > n)
			json_array_remove(keep, 0);
	}
	if (rc != IOTP_OK) {
		json_decref(keep);
		return rc;
	}
	*tail = keep;
	*end_id = after;
	return IOTP_OK;
}

static void event_cells(json_t *e, char id[32], char when[40], char **detail,
                        const char *cells[NCOLS])
{
	json_t *t = json_object_get(e, "time"), *d = json_object_get(e, "detail");
	const char *actor = json_string_value(json_object_get(e, "actor"));
	const char *action = json_string_value(json_object_get(e, "action"));
	const char *object = json_string_value(json_object_get(e, "object"));

	snprintf(id, 32, "%lld", (long long)event_id(e));
	if (json_is_number(t)) {
		double v = json_number_value(t);

		/* Milliseconds or seconds since the epoch, both are seen. */
		cli_time_format(v > 1e11 ? v / 1000.0 : v, when, 40);
	} else if (json_is_string(t)) {
		util_strlcpy(when, json_string_value(t), 40);
	} else {
		util_strlcpy(when, "-", 40);
	}
	*detail = NULL;
	if (json_is_string(d))
		*detail = strdup(json_string_value(d));
	else if (d != NULL && !json_is_null(d))
		*detail = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
	cells[0] = id;
	cells[1] = when;
	cells[2] = actor;
	cells[3] = action;
	cells[4] = object;
	cells[5] = *detail != NULL ? *detail : "-";
}

/* Prints events: JSON lines, or rows (a table with header when widths is
 * NULL, else rows padded to widths, which a table print fills in). */
static int print_events(json_t *events, int json, size_t widths[NCOLS], int header)
{
	static const char *const headers[NCOLS] = {"ID",     "TIME",   "ACTOR",
	                                           "ACTION", "OBJECT", "DETAIL"};
	struct table *t = NULL;

	if (json) {
		for (size_t i = 0; i < json_array_size(events); i++) {
			if (json_dumpf(json_array_get(events, i), stdout, JSON_COMPACT) != 0)
				return -1;
			putchar('\n');
		}
		return fflush(stdout) == 0 ? 0 : -1;
	}
	if (header) {
		t = table_new(NCOLS, headers);
		if (t == NULL)
			return -1;
	}
	for (size_t i = 0; i < json_array_size(events); i++) {
		char id[32], when[40], *detail;
		const char *cells[NCOLS];
		int rc = 0;

		event_cells(json_array_get(events, i), id, when, &detail, cells);
		if (t != NULL)
			rc = table_add(t, cells);
		else
			table_print_row(stdout, NCOLS, cells, widths);
		free(detail);
		if (rc != 0) {
			table_free(t);
			return -1;
		}
	}
	if (t != NULL) {
		table_print(t, stdout);
		for (size_t c = 0; c < NCOLS; c++)
			widths[c] = table_width(t, c);
		table_free(t);
	}
	return fflush(stdout) == 0 ? 0 : -1;
}

int cmd_audit_tail(int argc, char **argv)
{
	const char *data_dir = NULL, *endpoint = NULL, *lines = "20";
	int json = 0, follow = 0;
	const struct cli_opt opts[] = {
		{"data-dir", 0, "DIR", "data directory to reach (default " CLI_DEFAULT_DATA_DIR ")",
		 &data_dir, NULL},
		{"endpoint-url", 0, "URL", "API endpoint; credentials from AWS_* variables", &endpoint,
		 NULL},
		{"lines", 'n', "N", "how many of the last events to show (default 20)", &lines, NULL},
		{"follow", 'f', NULL, "keep printing new events until Ctrl-C", NULL, &follow},
		{"json", 0, NULL, "print one JSON object per event and line", NULL, &json},
	};
	const struct cli_spec spec = {
		"audit tail", "[-n N] [--follow] [--json] [--data-dir DIR | --endpoint-url URL]",
		"Shows the last events of the audit log: every change to the registry,\n"
		"every access key created or disabled, every refused request. Needs an\n"
		"admin key. With --follow, new events are printed as they happen.\n"
		"\n"
		"The API is reached with --data-dir DIR (endpoint from DIR/iotprov.conf,\n"
		"credentials from DIR/admin-credentials) or with --endpoint-url URL and\n"
		"AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_CA_BUNDLE.\n"
		"Exit status: 0 ok, 1 failure (explained), 2 bad usage.",
		opts, sizeof(opts) / sizeof(opts[0]), 0, 0};
	const char *args[CLI_MAX_ARGS];
	struct api_client c;
	struct iotp_err err;
	size_t widths[NCOLS] = {0};
	json_t *tail = NULL;
	int64_t n, newest = 0, start, end_id = 0;
	int nargs, rc, status = CLI_FAIL;

	if ((rc = cli_parse(&spec, argc, argv, args, &nargs)) != CLI_OK)
		return CLI_PARSE_EXIT(rc);
	if (util_parse_int64(lines, 0, 1000000, &n) != IOTP_OK)
		return cli_usage_error(&spec, "-n takes a number from 0 to 1000000, not '%s'", lines);
	if (client_open(&c, data_dir, endpoint, &err) != IOTP_OK)
		return cli_fail(spec.command, "%s", err.msg);

	if (newest_id(&c, &newest, &err) != IOTP_OK) {
		cli_fail(spec.command, "%s", err.msg);
		goto out;
	}
	start = newest > n ? newest - n : 0;
	for (int64_t back = n > 0 ? n : 1;;) {
		json_decref(tail);
		tail = NULL;
		if (read_to_end(&c, start, (size_t)n, &tail, &end_id, &err) != IOTP_OK) {
			cli_fail(spec.command, "%s", err.msg);
			goto out;
		}
		if ((int64_t)json_array_size(tail) >= n || start == 0)
			break;
		start = start > back ? start - back : 0;
		back *= 2;
	}
	if (print_events(tail, json, widths, 1) != 0) {
		cli_fail(spec.command, "cannot write the output");
		goto out;
	}
	if (!follow) {
		status = CLI_OK;
		goto out;
	}
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_stop;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	if (!json && json_array_size(tail) == 0) {
		/* Header for the rows to come. */
		static const char *const headers[NCOLS] = {"ID",     "TIME",   "ACTOR",
		                                           "ACTION", "OBJECT", "DETAIL"};
		static const size_t min_widths[NCOLS] = {6, 20, 26, 18, 24, 0};

		memcpy(widths, min_widths, sizeof(widths));
		table_print_row(stdout, NCOLS, headers, widths);
		fflush(stdout);
	}
	while (!stop_requested) {
		struct timespec ts = {1, 0};
		json_t *page = NULL;

		nanosleep(&ts, NULL);
		if (stop_requested)
			break;
		if (fetch(&c, end_id, PAGE, &page, &err) != IOTP_OK) {
			cli_fail(spec.command, "%s", err.msg);
			goto out;
		}
		if (json_array_size(page) > 0) {
			end_id = event_id(json_array_get(page, json_array_size(page) - 1));
			if (print_events(page, json, widths, 0) != 0) {
				json_decref(page);
				cli_fail(spec.command, "cannot write the output");
				goto out;
			}
		}
		json_decref(page);
	}
	status = CLI_OK;
out:
	json_decref(tail);
	client_close(&c);
	return status;
}
