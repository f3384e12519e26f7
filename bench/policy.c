/*
 * bench_policy: evaluation rate of the policy engine for a typical device
 * policy (3 statements: Connect on its client id, Publish/Receive under its
 * thing name, Subscribe under its thing name), the case the broker hits on
 * every publish. Also times building the resource ARN with snprintf, the
 * least work a caller does per check, and reports the ratio, so the figure
 * means something on a noisy machine.
 *
 * Usage: bench_policy [seconds-per-measure]   (default 1)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/policy.h"

#define ARN "arn:aws:iot:us-east-1:123456789012:"

static const char doc[] =
	"{\"Version\":\"2012-10-17\",\"Statement\":["
	"{\"Effect\":\"Allow\",\"Action\":\"iot:Connect\","
	"\"Resource\":\"" ARN "client/${iot:ClientId}\"},"
	"{\"Effect\":\"Allow\",\"Action\":[\"iot:Publish\",\"iot:Receive\"],"
	"\"Resource\":[\"" ARN "topic/things/${iot:Connection.Thing.ThingName}/*\","
	"\"" ARN "topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*\"]},"
	"{\"Effect\":\"Allow\",\"Action\":\"iot:Subscribe\","
	"\"Resource\":[\"" ARN "topicfilter/things/${iot:Connection.Thing.ThingName}/*\","
	"\"" ARN "topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*\"]}]}";

struct req {
	enum policy_action act;
	const char *res;
	enum policy_decision want;
};

static const struct req reqs[] = {
	{POLICY_ACTION_PUBLISH, ARN "topic/things/sensor-000042/telemetry", POLICY_ALLOW},
	{POLICY_ACTION_PUBLISH, ARN "topic/$aws/things/sensor-000042/shadow/update", POLICY_ALLOW},
	{POLICY_ACTION_PUBLISH, ARN "topic/things/sensor-000043/telemetry", POLICY_DENY},
	{POLICY_ACTION_RECEIVE, ARN "topic/things/sensor-000042/cmd", POLICY_ALLOW},
	{POLICY_ACTION_SUBSCRIBE, ARN "topicfilter/things/sensor-000042/#", POLICY_ALLOW},
	{POLICY_ACTION_SUBSCRIBE, ARN "topicfilter/#", POLICY_DENY},
	{POLICY_ACTION_CONNECT, ARN "client/sensor-000042", POLICY_ALLOW},
	{POLICY_ACTION_PUBLISH, ARN "topic/things/sensor-000042", POLICY_DENY},
};
#define NREQ (sizeof(reqs) / sizeof(reqs[0]))

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? strtod(argv[1], NULL) : 1.0;
	struct iotp_err err = {0};
	struct policy *p = NULL;
	const struct policy *list[1];
	struct policy_ctx ctx;
	uint64_t t0, budget, n = 0, evals = 0, fmts = 0, sink = 0;
	double eval_ns, fmt_ns, compile_us;
	char buf[256];

	if (seconds <= 0)
		seconds = 1.0;
	budget = (uint64_t)(seconds * 1e9);

	t0 = util_mono_ns();
	for (int i = 0; i < 1000; i++) {
		if (policy_compile(doc, sizeof(doc) - 1, &p, &err) != IOTP_OK) {
			fprintf(stderr, "bench_policy: %s\n", err.msg);
			return 1;
		}
		if (i < 999)
			policy_free(p);
	}
	compile_us = (double)(util_mono_ns() - t0) / 1000.0 / 1000.0;
	list[0] = p;
	policy_ctx_init(&ctx);
	ctx.var[POLICY_VAR_CLIENT_ID] = "sensor-000042";
	ctx.var[POLICY_VAR_THING_NAME] = "sensor-000042";

	for (size_t i = 0; i < NREQ; i++) {
		if (policy_eval(list, 1, reqs[i].act, reqs[i].res, &ctx) != reqs[i].want) {
			fprintf(stderr, "bench_policy: wrong decision for %s\n", reqs[i].res);
			return 1;
		}
	}

	t0 = util_mono_ns();
	do {
		for (int k = 0; k < 4096; k++, n++) {
			const struct req *r = &reqs[n % NREQ];

			sink += (uint64_t)policy_eval(list, 1, r->act, r->res, &ctx);
		}
		evals += 4096;
	} while (util_mono_ns() - t0 < budget);
	eval_ns = (double)(util_mono_ns() - t0) / (double)evals;

	t0 = util_mono_ns();
	do {
		for (int k = 0; k < 4096; k++, n++)
			sink += (uint64_t)snprintf(buf, sizeof(buf), "arn:aws:iot:%s:%s:topic/%s/%s",
			                           "us-east-1", "123456789012", "things/sensor-000042",
			                           (n & 1) ? "telemetry" : "cmd");
		fmts += 4096;
	} while (util_mono_ns() - t0 < budget);
	fmt_ns = (double)(util_mono_ns() - t0) / (double)fmts;

	printf("policy compile (3 statements, %zu bytes): %.1f us\n", sizeof(doc) - 1, compile_us);
	printf("policy_eval (3 statements, %zu-request mix, 2 variables): %.0f evals/s, %.0f ns/eval\n",
	       NREQ, 1e9 / eval_ns, eval_ns);
	printf("bound: snprintf of the resource ARN: %.0f ns; eval/snprintf ratio %.2f\n", fmt_ns,
	       eval_ns / fmt_ns);
	printf("RESULT name=policy_eval value=%.0f unit=evals/s bound=%.0f bound_name=\"snprintf of "
	       "the resource ARN\" ratio=%.4f\n", 1e9 / eval_ns, 1e9 / fmt_ns, fmt_ns / eval_ns);
	policy_free(p);
	return sink == 0 ? 1 : 0;
}
