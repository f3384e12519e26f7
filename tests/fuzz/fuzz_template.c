/*
 * fuzz_template: provisioning templates on arbitrary bodies.
 *
 * Input: a template body. It is validated and parsed (as a fleet template
 * when the first byte is odd, else for any use), and when accepted,
 * evaluated twice with a fixed set of device parameters and pseudo
 * parameters. Checked beyond "no crash, no leak, no hang":
 * - template_validate() and template_parse() agree (no problem <=> parsed),
 *   and a refused parse leaves the out-parameter alone;
 * - evaluation is deterministic (both plans have the same JSON form) and a
 *   failed one leaves the out-parameter alone;
 * - a plan holds what the applier relies on: a valid thing name, a 64-digit
 *   lowercase certificate id, status ACTIVE or INACTIVE, a policy document
 *   that policy_validate() accepts, device configuration values that are
 *   strings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/policy.h"
#include "core/template.h"

static int name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 128)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == ':' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static void check_plan(const struct template_plan *p)
{
	const char *key;
	json_t *v;

	if (p->thing.present) {
		if (!name_ok(p->thing.name))
			abort();
		for (size_t i = 0; i < p->thing.group_count; i++)
			if (!name_ok(p->thing.groups[i]))
				abort();
		if (p->thing.attributes != NULL && !json_is_object(p->thing.attributes))
			abort();
	}
	if (p->certificate.present) {
		if (strcmp(p->certificate.status, "ACTIVE") != 0 &&
		    strcmp(p->certificate.status, "INACTIVE") != 0)
			abort();
		if (p->certificate.source == TEMPLATE_CERT_BY_ID) {
			if (strlen(p->certificate.id) != 64 ||
			    strspn(p->certificate.id, "0123456789abcdef") != 64)
				abort();
		}
	}
	if (p->policy.present) {
		if (p->policy.name == NULL || p->policy.name[0] == '\0')
			abort();
		if (p->policy.document != NULL &&
		    policy_validate(p->policy.document, strlen(p->policy.document), NULL) != IOTP_OK)
			abort();
	}
	json_object_foreach(p->device_configuration, key, v)
		if (!json_is_string(v))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char params_text[] =
		"{\"ThingName\":\"pump-0042\",\"SerialNumber\":\"SN42\",\"DeviceLocation\":\"Lyon\","
		"\"P\":\"x\",\"Path\":\"a/b/c\",\"Idx\":\"1\",\"Name\":\"dev-1\",\"CSR\":\"csr\","
		"\"List\":\"a,b,c\",\"Site\":\"Lyon\",\"Location\":\"WA\"}";
	const struct template_pseudo pseudo = {
		.certificate_id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		.common_name = "pump-0042",
		.country = "FR",
		.organization = "Acme",
		.serial_number = "0A1B",
	};
	enum template_kind kind = size > 0 && (data[0] & 1) ? TEMPLATE_KIND_FLEET
	                                                    : TEMPLATE_KIND_ANY;
	struct template_problems pr = {NULL, 0, 0};
	struct template *sentinel = (struct template *)&pr;
	struct template *t = sentinel;
	struct template_plan *p1 = (struct template_plan *)&pr, *p2 = NULL;
	json_t *params, *j1 = NULL, *j2 = NULL;
	iotp_rc r1, r2;

	if (template_validate((const char *)data, size, kind, &pr, NULL) != IOTP_OK)
		return 0; /* out of memory */
	if (template_parse((const char *)data, size, kind, &t, NULL) == IOTP_OK) {
		if (pr.count != 0 || pr.omitted != 0 || t == sentinel)
			abort();
	} else if (pr.count == 0 || t != sentinel) {
		abort();
	}
	template_problems_cleanup(&pr);
	if (t == sentinel)
		return 0;
	params = json_loads(params_text, 0, NULL);
	r1 = template_evaluate(t, params, &pseudo, &p1, NULL);
	r2 = template_evaluate(t, params, &pseudo, &p2, NULL);
	if (r1 != r2)
		abort();
	if (r1 == IOTP_OK) {
		check_plan(p1);
		if (template_plan_json(p1, &j1, NULL) == IOTP_OK &&
		    template_plan_json(p2, &j2, NULL) == IOTP_OK && !json_equal(j1, j2))
			abort();
		json_decref(j1);
		json_decref(j2);
		template_plan_free(p1);
		template_plan_free(p2);
	} else if (p1 != (struct template_plan *)&pr || p2 != NULL) {
		abort();
	}
	json_decref(params);
	template_free(t);
	return 0;
}
