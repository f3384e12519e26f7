/*
 * fuzz_policy: the policy engine on arbitrary documents and requests.
 *
 * Input: a policy document, optionally followed by a NUL byte and a request
 * tail "<resource>\n<client id>" that is evaluated besides a few fixed
 * requests. Checked beyond "no crash, no leak":
 * - policy_validate() and policy_compile() agree on every input (same rc and
 *   message), and a failed compile leaves the out-parameter alone;
 * - evaluation is monotonic in what is known: a request allowed with no
 *   variable resolved stays allowed under every context, including client
 *   ids made of wildcard characters.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/policy.h"

#define ARN "arn:aws:iot:us-east-1:123456789012:"

static const struct policy_attr attrs[] = {{"site", "paris"}, {"a", "*"}, {"b", "#"}};

static const char *const client_ids[] = {"dev1", "*", "+", "#", "?", "", "a/b", "dev1*"};

static void fill_ctx(struct policy_ctx *ctx, const char *client_id, int thing)
{
	policy_ctx_init(ctx);
	ctx->var[POLICY_VAR_CLIENT_ID] = client_id;
	if (thing) {
		ctx->var[POLICY_VAR_THING_NAME] = client_id;
		ctx->var[POLICY_VAR_THING_TYPE_NAME] = "sensor";
		ctx->var[POLICY_VAR_THING_IS_ATTACHED] = "true";
		ctx->var[POLICY_VAR_CERT_SERIAL_NUMBER] = "0A";
		ctx->var[POLICY_VAR_SUBJECT(POLICY_CERT_COMMON_NAME)] = client_id;
		ctx->var[POLICY_VAR_ISSUER(POLICY_CERT_ORGANIZATION)] = "Acme";
		ctx->attrs = attrs;
		ctx->n_attrs = sizeof(attrs) / sizeof(attrs[0]);
	}
}

static void check_request(const struct policy *p, enum policy_action act, const char *res,
                          const char *extra_id)
{
	const struct policy *list[2] = {p, NULL};
	enum policy_decision none = policy_eval(list, 2, act, res, NULL);
	struct policy_ctx ctx;

	if (none != POLICY_ALLOW)
		return;
	for (size_t i = 0; i <= sizeof(client_ids) / sizeof(client_ids[0]); i++) {
		const char *id = i < sizeof(client_ids) / sizeof(client_ids[0]) ? client_ids[i]
		                                                                : extra_id;

		if (id == NULL)
			continue;
		for (int thing = 0; thing < 2; thing++) {
			fill_ctx(&ctx, id, thing);
			if (policy_eval(list, 2, act, res, &ctx) != POLICY_ALLOW)
				abort(); /* knowing more must never deny what less allowed */
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct {
		enum policy_action act;
		const char *res;
	} fixed[] = {
		{POLICY_ACTION_CONNECT, ARN "client/dev1"},
		{POLICY_ACTION_PUBLISH, ARN "topic/dev1/telemetry"},
		{POLICY_ACTION_RECEIVE, ARN "topic/$aws/things/dev1/shadow/update/accepted"},
		{POLICY_ACTION_SUBSCRIBE, ARN "topicfilter/dev/+/#"},
		{POLICY_ACTION_RETAIN_PUBLISH, ARN "topic/*"},
	};
	const uint8_t *nul = memchr(data, 0, size);
	size_t doc_len = nul != NULL ? (size_t)(nul - data) : size;
	struct iotp_err e1, e2;
	struct policy *sentinel = (struct policy *)&e1;
	struct policy *p = sentinel;
	iotp_rc r1, r2;
	char *tail = NULL, *extra_id = NULL;

	iotp_err_clear(&e1);
	iotp_err_clear(&e2);
	r1 = policy_validate((const char *)data, doc_len, &e1);
	r2 = policy_compile((const char *)data, doc_len, &p, &e2);
	if (r1 != r2 && r2 != IOTP_ERR_NOMEM)
		abort();
	if (r2 != IOTP_OK) {
		if (p != sentinel || strcmp(e1.msg, e2.msg) != 0)
			abort();
		return 0;
	}
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		check_request(p, fixed[i].act, fixed[i].res, NULL);
	if (nul != NULL && size - doc_len - 1 < 4096) {
		size_t n = size - doc_len - 1;
		char *nl;

		tail = malloc(n + 1);
		if (tail != NULL) {
			memcpy(tail, nul + 1, n);
			tail[n] = '\0';
			nl = strchr(tail, '\n');
			if (nl != NULL) {
				*nl = '\0';
				extra_id = nl + 1;
			}
			for (int a = 0; a < POLICY_ACTION_COUNT; a++)
				check_request(p, (enum policy_action)a, tail, extra_id);
		}
	}
	free(tail);
	policy_free(p);
	return 0;
}
