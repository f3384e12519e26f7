/*
 * Prometheus counters for iotprovd (see metrics.h). Storage is a few small
 * arrays searched linearly: there are a few dozen operations and a handful of
 * statuses each, and a request costs one pass over them.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "server/metrics.h"

#define MAX_OPS 256
#define MAX_STATUSES 16
#define MAX_LABELS 64
#define NAME_MAX_LEN 64

/* Upper bounds of the latency buckets, in microseconds. */
static const int64_t bucket_us[] = {1000,   2500,   5000,    10000,   25000,   50000, 100000,
                                    250000, 500000, 1000000, 2500000, 5000000, 10000000};
#define NBUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]))

struct op_stats {
	char name[NAME_MAX_LEN];
	struct {
		int status;
		uint64_t n;
	} statuses[MAX_STATUSES];
	int nstatuses;
	uint64_t buckets[NBUCKETS]; /* not cumulative; summed when formatted */
	uint64_t count;
	int64_t sum_us;
};

struct label_count {
	char name[NAME_MAX_LEN];
	uint64_t n;
};

struct metrics {
	struct op_stats *ops;
	int nops;
	struct label_count auth[MAX_LABELS];
	int nauth;
	struct label_count errors[MAX_LABELS];
	int nerrors;
	_Atomic uint64_t certs_issued;
	int64_t connections;
	uint64_t refused;
	int64_t start_time;
};

iotp_rc metrics_new(struct metrics **out, struct iotp_err *err)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m == NULL || (m->ops = calloc(MAX_OPS, sizeof(*m->ops))) == NULL) {
		free(m);
		return iotp_err_set(err, IOTP_ERR_NOMEM, "metrics: out of memory");
	}
	atomic_init(&m->certs_issued, 0);
	m->start_time = util_now();
	*out = m;
	return IOTP_OK;
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	free(m->ops);
	free(m);
}

static struct op_stats *find_op(const struct metrics *m, const char *name)
{
	for (int i = 0; i < m->nops; i++) {
		if (strcmp(m->ops[i].name, name) == 0)
			return &m->ops[i];
	}
	return NULL;
}

static struct op_stats *get_op(struct metrics *m, const char *name)
{
	struct op_stats *op = find_op(m, name);

	if (op != NULL)
		return op;
	/* The last slot is kept for "other". */
	if (m->nops >= MAX_OPS - 1 && strcmp(name, "other") != 0)
		return get_op(m, "other");
	if (m->nops >= MAX_OPS)
		return &m->ops[MAX_OPS - 1];
	op = &m->ops[m->nops++];
	util_strlcpy(op->name, name, sizeof(op->name));
	return op;
}

void metrics_request(struct metrics *m, const char *operation, int status,
                     int64_t duration_us)
{
	struct op_stats *op = get_op(m, operation != NULL ? operation : "unknown");
	size_t b = 0;
	int i;

	for (i = 0; i < op->nstatuses; i++) {
		if (op->statuses[i].status == status)
			break;
	}
	if (i == op->nstatuses) {
		if (op->nstatuses == MAX_STATUSES)
			i = MAX_STATUSES - 1; /* pathological: fold into the last slot */
		else
			op->statuses[op->nstatuses++].status = status;
	}
	op->statuses[i].n++;
	if (duration_us < 0)
		duration_us = 0;
	while (b < NBUCKETS && duration_us > bucket_us[b])
		b++;
	if (b < NBUCKETS)
		op->buckets[b]++;
	op->count++;
	op->sum_us += duration_us;
}

static void count_label(struct label_count *arr, int *n, const char *name)
{
	for (int i = 0; i < *n; i++) {
		if (strcmp(arr[i].name, name) == 0) {
			arr[i].n++;
			return;
		}
	}
	if (*n == MAX_LABELS) {
		/* Labels come from fixed sets (reasons, AWS types); should that
		 * ever change, the last one absorbs the excess. */
		arr[MAX_LABELS - 1].n++;
		return;
	}
	util_strlcpy(arr[*n].name, name, sizeof(arr[*n].name));
	arr[*n].n = 1;
	(*n)++;
}

void metrics_auth_failure(struct metrics *m, const char *reason)
{
	count_label(m->auth, &m->nauth, reason);
}

void metrics_error(struct metrics *m, const char *type)
{
	count_label(m->errors, &m->nerrors, type);
}

void metrics_cert_issued(struct metrics *m, uint64_t n)
{
	atomic_fetch_add(&m->certs_issued, n);
}

void metrics_set_connections(struct metrics *m, int64_t open)
{
	m->connections = open;
}

void metrics_connection_refused(struct metrics *m)
{
	m->refused++;
}

/* Label values are escaped as the text format requires. */
static iotp_rc put_label(struct buf *out, const char *v)
{
	iotp_rc rc = IOTP_OK;

	for (; *v != '\0' && rc == IOTP_OK; v++) {
		if (*v == '\\')
			rc = buf_puts(out, "\\\\");
		else if (*v == '"')
			rc = buf_puts(out, "\\\"");
		else if (*v == '\n')
			rc = buf_puts(out, "\\n");
		else
			rc = buf_append(out, v, 1);
	}
	return rc;
}

static iotp_rc put_labelled(struct buf *out, const char *metric, const char *label,
                            const char *value, uint64_t n)
{
	iotp_rc rc = buf_printf(out, "%s{%s=\"", metric, label);

	if (rc == IOTP_OK)
		rc = put_label(out, value);
	if (rc == IOTP_OK)
		rc = buf_printf(out, "\"} %llu\n", (unsigned long long)n);
	return rc;
}

static iotp_rc format_ops(struct metrics *m, struct buf *out)
{
	iotp_rc rc;

	rc = buf_puts(out, "# HELP iotprov_api_requests_total API requests answered, by "
	                   "operation and HTTP status.\n"
	                   "# TYPE iotprov_api_requests_total counter\n");
	for (int i = 0; i < m->nops && rc == IOTP_OK; i++) {
		for (int s = 0; s < m->ops[i].nstatuses && rc == IOTP_OK; s++) {
			rc = buf_puts(out, "iotprov_api_requests_total{operation=\"");
			if (rc == IOTP_OK)
				rc = put_label(out, m->ops[i].name);
			if (rc == IOTP_OK)
				rc = buf_printf(out, "\",status=\"%d\"} %llu\n", m->ops[i].statuses[s].status,
				                (unsigned long long)m->ops[i].statuses[s].n);
		}
	}
	if (rc == IOTP_OK)
		rc = buf_puts(out, "# HELP iotprov_api_request_duration_seconds Time from a "
		                   "complete request to its response, by operation.\n"
		                   "# TYPE iotprov_api_request_duration_seconds histogram\n");
	for (int i = 0; i < m->nops && rc == IOTP_OK; i++) {
		const struct op_stats *op = &m->ops[i];
		uint64_t cum = 0;

		for (size_t b = 0; b <= NBUCKETS && rc == IOTP_OK; b++) {
			char le[32];

			if (b < NBUCKETS) {
				cum += op->buckets[b];
				snprintf(le, sizeof(le), "%g", (double)bucket_us[b] / 1e6);
			} else {
				cum = op->count;
				snprintf(le, sizeof(le), "+Inf");
			}
			rc = buf_puts(out, "iotprov_api_request_duration_seconds_bucket{operation=\"");
			if (rc == IOTP_OK)
				rc = put_label(out, op->name);
			if (rc == IOTP_OK)
				rc = buf_printf(out, "\",le=\"%s\"} %llu\n", le, (unsigned long long)cum);
		}
		if (rc == IOTP_OK)
			rc = buf_puts(out, "iotprov_api_request_duration_seconds_sum{operation=\"");
		if (rc == IOTP_OK)
			rc = put_label(out, op->name);
		if (rc == IOTP_OK)
			rc = buf_printf(out, "\"} %.6f\n", (double)op->sum_us / 1e6);
		if (rc == IOTP_OK)
			rc = buf_puts(out, "iotprov_api_request_duration_seconds_count{operation=\"");
		if (rc == IOTP_OK)
			rc = put_label(out, op->name);
		if (rc == IOTP_OK)
			rc = buf_printf(out, "\"} %llu\n", (unsigned long long)op->count);
	}
	return rc;
}

iotp_rc metrics_format(struct metrics *m, struct buf *out)
{
	iotp_rc rc = format_ops(m, out);

	if (rc == IOTP_OK)
		rc = buf_puts(out, "# HELP iotprov_api_auth_failures_total Requests refused by "
		                   "SigV4 authentication, by reason.\n"
		                   "# TYPE iotprov_api_auth_failures_total counter\n");
	for (int i = 0; i < m->nauth && rc == IOTP_OK; i++)
		rc = put_labelled(out, "iotprov_api_auth_failures_total", "reason", m->auth[i].name,
		                  m->auth[i].n);
	if (rc == IOTP_OK)
		rc = buf_puts(out, "# HELP iotprov_api_errors_total Error responses, by AWS error "
		                   "type.\n"
		                   "# TYPE iotprov_api_errors_total counter\n");
	for (int i = 0; i < m->nerrors && rc == IOTP_OK; i++)
		rc = put_labelled(out, "iotprov_api_errors_total", "type", m->errors[i].name,
		                  m->errors[i].n);
	if (rc == IOTP_OK)
		rc = buf_printf(out,
		                "# HELP iotprov_certificates_issued_total Certificates issued by this "
		                "process.\n"
		                "# TYPE iotprov_certificates_issued_total counter\n"
		                "iotprov_certificates_issued_total %llu\n"
		                "# HELP iotprov_api_connections Open API connections.\n"
		                "# TYPE iotprov_api_connections gauge\n"
		                "iotprov_api_connections %lld\n"
		                "# HELP iotprov_api_connections_refused_total Connections closed "
		                "at once because max_connections were open.\n"
		                "# TYPE iotprov_api_connections_refused_total counter\n"
		                "iotprov_api_connections_refused_total %llu\n"
		                "# HELP iotprov_start_time_seconds When this process started.\n"
		                "# TYPE iotprov_start_time_seconds gauge\n"
		                "iotprov_start_time_seconds %lld\n",
		                (unsigned long long)atomic_load(&m->certs_issued),
		                (long long)m->connections, (unsigned long long)m->refused,
		                (long long)m->start_time);
	return rc;
}

uint64_t metrics_requests_total(const struct metrics *m, const char *operation, int status)
{
	const struct op_stats *op = find_op(m, operation);

	if (op == NULL)
		return 0;
	for (int i = 0; i < op->nstatuses; i++) {
		if (op->statuses[i].status == status)
			return op->statuses[i].n;
	}
	return 0;
}

uint64_t metrics_auth_failures_total(const struct metrics *m, const char *reason)
{
	for (int i = 0; i < m->nauth; i++) {
		if (strcmp(m->auth[i].name, reason) == 0)
			return m->auth[i].n;
	}
	return 0;
}

uint64_t metrics_certs_issued_total(const struct metrics *m)
{
	return atomic_load(&((struct metrics *)m)->certs_issued);
}
