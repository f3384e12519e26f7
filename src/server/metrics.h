/*
 * Counters for GET /metrics (Prometheus text format 0.0.4): API requests by
 * operation and status with a latency histogram per operation, SigV4
 * failures by reason, errors by AWS type, certificates issued, connections.
 *
 * Threading: metrics_request, metrics_auth_failure, metrics_error and the
 * connection functions are called from the event-loop thread only;
 * metrics_cert_issued may be called from any thread (it is atomic), so
 * workers that issue certificates can count them. metrics_format runs on the
 * event-loop thread.
 */
#ifndef IOTP_METRICS_H
#define IOTP_METRICS_H

#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

struct metrics;

/* Free with metrics_free(). */
iotp_rc metrics_new(struct metrics **out, struct iotp_err *err);
void metrics_free(struct metrics *m);

/* One finished API request. operation is the botocore name or "unknown";
 * copied, so it need not outlive the call. Beyond 256 distinct operations
 * the rest are counted under "other". */
void metrics_request(struct metrics *m, const char *operation, int status,
                     int64_t duration_us);
/* One failed SigV4 authentication; reason is a short token such as
 * "signature", "unknown_key", "expired". */
void metrics_auth_failure(struct metrics *m, const char *reason);
/* One error answered to a client, by AWS error type. */
void metrics_error(struct metrics *m, const char *type);
/* Certificates issued by this process (thread-safe). */
void metrics_cert_issued(struct metrics *m, uint64_t n);
/* Connection gauge and refusals over the connection limit. */
void metrics_set_connections(struct metrics *m, int64_t open);
void metrics_connection_refused(struct metrics *m);

/* Appends the exposition text. */
iotp_rc metrics_format(struct metrics *m, struct buf *out);

/* Read back for tests and health output. */
uint64_t metrics_requests_total(const struct metrics *m, const char *operation, int status);
uint64_t metrics_auth_failures_total(const struct metrics *m, const char *reason);
uint64_t metrics_certs_issued_total(const struct metrics *m);

#endif
