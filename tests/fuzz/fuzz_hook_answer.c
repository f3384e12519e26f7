/*
 * fuzz_hook_answer: what a pre-provisioning hook answers, on arbitrary
 * bytes. The body goes through webhook_answer_parse() (size cap, JSON
 * object, no duplicate keys) and, when it parses, prov_hook_answer() with
 * a fixed set of device parameters, then the merged parameters are used to
 * evaluate the fleet template of the tests, as prov_register_thing does.
 * Checked beyond "no crash, no leak, no hang":
 * - the answer is allowed exactly when allowProvisioning is JSON true and
 *   parameterOverrides is absent, null or an object of strings (fail
 *   closed: every other shape is IOTP_ERR_DENIED);
 * - a refusal leaves the out-parameter alone;
 * - allowed parameters are an object of strings holding every override and
 *   every device parameter not overridden; the device's own object is not
 *   modified.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/provision.h"
#include "core/template.h"
#include "net/webhook.h"

static const char body[] =
	"{\"Parameters\": {\"SerialNumber\": {\"Type\": \"String\"},"
	" \"Site\": {\"Type\": \"String\", \"Default\": \"lyon\"}},"
	" \"Resources\": {\"thing\": {\"Type\": \"AWS::IoT::Thing\", \"Properties\": {"
	"  \"ThingName\": {\"Fn::Join\": [\"-\", [{\"Ref\": \"Site\"}, {\"Ref\": \"SerialNumber\"}]]}}}},"
	" \"DeviceConfiguration\": {\"s\": {\"Ref\": \"SerialNumber\"}}}";

static struct template *tmpl;

static int expected_allow(const json_t *a)
{
	const json_t *o, *v;
	const char *k;

	if (!json_is_true(json_object_get(a, "allowProvisioning")))
		return 0;
	o = json_object_get(a, "parameterOverrides");
	if (o == NULL || json_is_null(o))
		return 1;
	if (!json_is_object(o))
		return 0;
	json_object_foreach((json_t *)o, k, v) {
		if (!json_is_string(v))
			return 0;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *answer = NULL, *params, *copy, *merged = (json_t *)&merged;
	struct iotp_err err;
	iotp_rc rc;

	if (tmpl == NULL &&
	    template_parse(body, strlen(body), TEMPLATE_KIND_FLEET, &tmpl, &err) != IOTP_OK)
		abort();
	if (webhook_answer_parse((const char *)data, size, &answer, &err) != IOTP_OK)
		return 0;
	if (!json_is_object(answer))
		abort();
	params = json_pack("{s:s, s:s}", "SerialNumber", "SN1", "Other", "x");
	copy = json_deep_copy(params);
	rc = prov_hook_answer(answer, params, &merged, &err);
	if ((rc == IOTP_OK) != expected_allow(answer))
		abort();
	if (rc != IOTP_OK) {
		if (rc != IOTP_ERR_DENIED || merged != (json_t *)&merged)
			abort();
	} else {
		const json_t *o = json_object_get(answer, "parameterOverrides"), *v;
		const char *k;
		struct template_plan *plan = NULL;

		if (!json_is_object(merged))
			abort();
		json_object_foreach(merged, k, v) {
			if (!json_is_string(v))
				abort();
		}
		json_object_foreach(params, k, v) {
			const json_t *ov = json_is_object(o) ? json_object_get(o, k) : NULL;

			if (!json_equal(json_object_get(merged, k), ov != NULL ? ov : v))
				abort();
		}
		if (json_is_object(o)) {
			json_object_foreach((json_t *)o, k, v) {
				if (!json_equal(json_object_get(merged, k), v))
					abort();
			}
		}
		if (template_evaluate(tmpl, merged, NULL, &plan, &err) == IOTP_OK)
			template_plan_free(plan);
		json_decref(merged);
	}
	if (!json_equal(params, copy))
		abort();
	json_decref(copy);
	json_decref(params);
	json_decref(answer);
	return 0;
}
