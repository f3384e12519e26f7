/*
 * The routes that need no registry: health check, Prometheus metrics and
 * DescribeEndpoint. They are also the smallest examples of route handlers.
 */
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "server/api.h"
#include "server/metrics.h"

/* GET /healthz: 200 {"status":"ok"} when the store answers, else 503. Not
 * an AWS operation, so it answers its own shape rather than an error. */
static iotp_rc get_health(struct api_request *rq, struct api_response *resp,
                          struct iotp_err *err)
{
	struct iotp_err serr;
	int64_t one = 0;

	iotp_err_clear(&serr);
	if (rq->draining)
		return api_response_json(resp, 503, json_pack("{s:s}", "status", "stopping"));
	if (store_query_int(rq->core->store, "SELECT 1", NULL, 0, &one, &serr) != IOTP_OK ||
	    one != 1) {
		LOG_ERROR("health: request %s: the store does not answer: %s", rq->request_id,
		          serr.msg);
		return api_response_json(resp, 503, json_pack("{s:s}", "status", "unavailable"));
	}
	return api_response_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

/* GET /metrics: the Prometheus text exposition. */
static iotp_rc get_metrics(struct api_request *rq, struct api_response *resp,
                           struct iotp_err *err)
{
	struct buf b;
	iotp_rc rc;

	buf_init(&b, 4 * 1024 * 1024);
	rc = metrics_format(rq->metrics, &b);
	if (rc == IOTP_OK)
		rc = api_response_text(resp, 200, "text/plain; version=0.0.4; charset=utf-8",
		                       b.data != NULL ? b.data : "", b.len);
	if (rc != IOTP_OK)
		rc = iotp_err_set(err, rc, "metrics: %s", iotp_strerror(rc));
	buf_cleanup(&b);
	return rc;
}

static int is_wildcard(const char *host)
{
	return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || strcmp(host, "*") == 0;
}

iotp_rc api_mqtt_endpoint(const struct iotp_conf *conf, char *out, size_t size,
                          struct iotp_err *err)
{
	char host[256], result[512];
	int port, n;
	iotp_rc rc;

	if (conf->mqtt_endpoint[0] != '\0') {
		if (strlen(conf->mqtt_endpoint) >= size)
			return iotp_err_set(err, IOTP_ERR_CONFIG, "[mqtt] endpoint too long");
		util_strlcpy(out, conf->mqtt_endpoint, size);
		return IOTP_OK;
	}
	if ((rc = conf_parse_listen(conf->mqtt_listen, host, sizeof(host), &port, err)) != IOTP_OK)
		return rc;
	if (is_wildcard(host)) {
		size_t len = strcspn(conf->pki_server_names, ",");

		if (len == 0 || len >= sizeof(host))
			return iotp_err_set(err, IOTP_ERR_CONFIG,
			                    "[mqtt] listen is a wildcard address and [pki] "
			                    "server_names is empty: set [mqtt] endpoint");
		memcpy(host, conf->pki_server_names, len);
		host[len] = '\0';
	}
	if (port == 8883)
		n = snprintf(result, sizeof(result), "%s", host);
	else if (strchr(host, ':') != NULL)
		n = snprintf(result, sizeof(result), "[%s]:%d", host, port);
	else
		n = snprintf(result, sizeof(result), "%s:%d", host, port);
	if (n < 0 || (size_t)n >= sizeof(result) || (size_t)n >= size)
		return iotp_err_set(err, IOTP_ERR_CONFIG, "MQTT endpoint too long");
	memcpy(out, result, (size_t)n + 1);
	return IOTP_OK;
}

/* GET /endpoint?endpointType=...: DescribeEndpoint. iotprov serves the
 * data (MQTT) endpoint only; types AWS serves elsewhere are refused. */
static iotp_rc describe_endpoint(struct api_request *rq, struct api_response *resp,
                                 struct iotp_err *err)
{
	const char *type = api_query(rq, "endpointType");
	char endpoint[512];
	iotp_rc rc;

	if (type != NULL && strcmp(type, "iot:Data") != 0 && strcmp(type, "iot:Data-ATS") != 0) {
		if (strcmp(type, "iot:CredentialProvider") == 0 || strcmp(type, "iot:Jobs") == 0)
			return iotp_err_set(err, IOTP_ERR_INVALID,
			                    "endpointType %s is not served by iotprov: only iot:Data "
			                    "and iot:Data-ATS (the MQTT broker)",
			                    type);
		return iotp_err_set(err, IOTP_ERR_INVALID,
		                    "endpointType must be iot:Data, iot:Data-ATS, "
		                    "iot:CredentialProvider or iot:Jobs");
	}
	if ((rc = api_mqtt_endpoint(rq->core->conf, endpoint, sizeof(endpoint), err)) != IOTP_OK)
		return rc;
	return api_response_json(resp, 200, json_pack("{s:s}", "endpointAddress", endpoint));
}

static const struct route routes[] = {
	{"GET", "/healthz", "GetHealth", ROUTE_PUBLIC, NULL, get_health},
	{"GET", "/metrics", "GetMetrics", ROUTE_PUBLIC, NULL, get_metrics},
	{"GET", "/endpoint", "DescribeEndpoint", 0, NULL, describe_endpoint},
};

const struct route_table api_base_routes = {routes, sizeof(routes) / sizeof(routes[0])};
