/*
 * Unit tests of the API request-body parsers (server/api_parse.h) and the
 * JSON helpers they share (server/api_json.h): what a client sending a
 * body gets -- the fields the registry will see, or the 400 naming the
 * member that is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "server/api_json.h"
#include "server/api_parse.h"

static json_t *body(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

	assert_non_null(j);
	return j;
}

static void test_create_thing(void **state)
{
	struct registry_thing_spec spec;
	struct iotp_err err;
	json_t *b;

	(void)state;
	memset(&spec, 0, sizeof(spec));
	spec.name = "pump-1";
	b = body("{\"thingTypeName\":\"sensor\",\"attributePayload\":{\"attributes\":"
	         "{\"site\":\"north\"},\"merge\":true}}");
	assert_int_equal(api_parse_create_thing(b, &spec, &err), IOTP_OK);
	assert_string_equal(spec.name, "pump-1"); /* the path's part is left alone */
	assert_string_equal(spec.type_name, "sensor");
	assert_string_equal(json_string_value(json_object_get(spec.attributes, "site")), "north");
	json_decref(b);

	memset(&spec, 0, sizeof(spec));
	b = body("{}");
	assert_int_equal(api_parse_create_thing(b, &spec, &err), IOTP_OK);
	assert_null(spec.type_name);
	assert_null(spec.attributes);
	json_decref(b);

	b = body("{\"thingTypename\":\"sensor\"}");
	assert_int_equal(api_parse_create_thing(b, &spec, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "thingTypename"));
	json_decref(b);

	b = body("{\"attributePayload\":{\"attributes\":{\"a\":1}}}");
	assert_int_equal(api_parse_create_thing(b, &spec, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "'a'"));
	json_decref(b);

	b = body("{\"billingGroupName\":\"b\"}");
	assert_int_equal(api_parse_create_thing(b, &spec, &err), IOTP_ERR_UNSUPPORTED);
	assert_non_null(strstr(err.msg, "billing"));
	json_decref(b);

	/* JSON null is "absent" */
	memset(&spec, 0, sizeof(spec));
	b = body("{\"thingTypeName\":null}");
	assert_int_equal(api_parse_create_thing(b, &spec, &err), IOTP_OK);
	assert_null(spec.type_name);
	json_decref(b);
}

static void test_update_thing(void **state)
{
	struct registry_thing_update up;
	struct iotp_err err;
	json_t *b;

	(void)state;
	memset(&up, 0, sizeof(up));
	up.expected_version = REGISTRY_NO_VERSION;
	b = body("{\"removeThingType\":true}");
	assert_int_equal(api_parse_update_thing(b, &up, &err), IOTP_OK);
	assert_int_equal(up.expected_version, REGISTRY_NO_VERSION);
	assert_int_equal(up.remove_type, 1);
	assert_null(up.attributes);
	json_decref(b);

	b = body("{\"expectedVersion\":7,\"attributePayload\":{\"attributes\":{},\"merge\":true}}");
	assert_int_equal(api_parse_update_thing(b, &up, &err), IOTP_OK);
	assert_int_equal(up.expected_version, 7);
	assert_int_equal(up.merge, 1);
	assert_int_equal(json_object_size(up.attributes), 0);
	json_decref(b);

	b = body("{\"expectedVersion\":\"7\"}");
	assert_int_equal(api_parse_update_thing(b, &up, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "expectedVersion"));
	json_decref(b);
	b = body("{\"expectedVersion\":-1}");
	assert_int_equal(api_parse_update_thing(b, &up, &err), IOTP_ERR_INVALID);
	json_decref(b);
}

static void test_types_and_groups(void **state)
{
	struct registry_thing_type_spec t;
	struct registry_thing_group_spec g;
	struct registry_thing_group_update gu;
	struct iotp_err err;
	int undo = 0;
	json_t *b;

	(void)state;
	memset(&t, 0, sizeof(t));
	b = body("{\"thingTypeProperties\":{\"thingTypeDescription\":\"d\","
	         "\"searchableAttributes\":[\"a\",\"b\"]},\"tags\":[]}");
	assert_int_equal(api_parse_create_thing_type(b, &t, &err), IOTP_OK);
	assert_string_equal(t.description, "d");
	assert_int_equal(json_array_size(t.searchable_attributes), 2);
	json_decref(b);
	b = body("{\"thingTypeProperties\":{\"searchableAttributes\":[1]}}");
	assert_int_equal(api_parse_create_thing_type(b, &t, &err), IOTP_ERR_INVALID);
	json_decref(b);
	b = body("{\"tags\":[{\"Key\":\"k\",\"Value\":\"v\"}]}");
	assert_int_equal(api_parse_create_thing_type(b, &t, &err), IOTP_ERR_UNSUPPORTED);
	assert_non_null(strstr(err.msg, "tags"));
	json_decref(b);

	b = body("{\"undoDeprecate\":true}");
	assert_int_equal(api_parse_deprecate_thing_type(b, &undo, &err), IOTP_OK);
	assert_int_equal(undo, 1);
	json_decref(b);

	memset(&g, 0, sizeof(g));
	b = body("{\"parentGroupName\":\"plant\",\"thingGroupProperties\":{"
	         "\"thingGroupDescription\":\"line\",\"attributePayload\":{\"attributes\":"
	         "{\"k\":\"v\"}}}}");
	assert_int_equal(api_parse_create_thing_group(b, &g, &err), IOTP_OK);
	assert_string_equal(g.parent_name, "plant");
	assert_string_equal(g.description, "line");
	assert_int_equal(json_object_size(g.attributes), 1);
	json_decref(b);

	memset(&gu, 0, sizeof(gu));
	gu.expected_version = REGISTRY_NO_VERSION;
	b = body("{\"expectedVersion\":2}");
	assert_int_equal(api_parse_update_thing_group(b, &gu, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "thingGroupProperties is required"));
	json_decref(b);
	b = body("{\"expectedVersion\":2,\"thingGroupProperties\":{\"thingGroupDescription\":\"\"}}");
	assert_int_equal(api_parse_update_thing_group(b, &gu, &err), IOTP_OK);
	assert_int_equal(gu.expected_version, 2);
	assert_string_equal(gu.description, "");
	json_decref(b);
}

static void test_membership(void **state)
{
	struct api_group_membership m = {NULL, NULL};
	struct iotp_err err;
	json_t *b;

	(void)state;
	b = body("{\"thingGroupArn\":\"arn:aws:iot:eu-west-1:123456789012:thinggroup/line-a\","
	         "\"thingName\":\"pump-1\",\"overrideDynamicGroups\":false}");
	assert_int_equal(api_parse_group_membership(b, 1, &m, &err), IOTP_OK);
	assert_string_equal(m.group_name, "line-a");
	assert_string_equal(m.thing_name, "pump-1");
	/* overrideDynamicGroups belongs to add only */
	assert_int_equal(api_parse_group_membership(b, 0, &m, &err), IOTP_ERR_INVALID);
	json_decref(b);

	b = body("{\"thingGroupName\":\"g\",\"thingArn\":\"arn:aws:iot:us-east-1:1:thinggroup/x\"}");
	assert_int_equal(api_parse_group_membership(b, 0, &m, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "thingArn"));
	json_decref(b);

	b = body("{\"thingGroupName\":\"g\",\"thingGroupArn\":\"arn:aws:iot:us-east-1:1:"
	         "thinggroup/h\",\"thingName\":\"t\"}");
	assert_int_equal(api_parse_group_membership(b, 0, &m, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "different"));
	json_decref(b);

	b = body("{\"thingGroupName\":\"g\"}");
	assert_int_equal(api_parse_group_membership(b, 0, &m, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "thingName or thingArn"));
	json_decref(b);
}

static void test_policies_and_certs(void **state)
{
	struct registry_cert_register r;
	struct registry_ca_register ca;
	struct registry_ca_update cu;
	const char *s = NULL;
	struct iotp_err err;
	json_t *b;

	(void)state;
	b = body("{\"policyDocument\":\"{}\",\"tags\":[]}");
	assert_int_equal(api_parse_policy_document(b, 1, &s, &err), IOTP_OK);
	assert_string_equal(s, "{}");
	/* CreatePolicyVersion takes no tags at all */
	assert_int_equal(api_parse_policy_document(b, 0, &s, &err), IOTP_ERR_INVALID);
	json_decref(b);
	b = body("{\"policyDocument\":{\"Version\":\"2012-10-17\"}}");
	assert_int_equal(api_parse_policy_document(b, 1, &s, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "policyDocument must be a string"));
	json_decref(b);
	b = body("{}");
	assert_int_equal(api_parse_policy_target(b, &s, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "target is required"));
	assert_int_equal(api_parse_create_cert_from_csr(b, &s, &err), IOTP_ERR_INVALID);
	json_decref(b);

	memset(&r, 0, sizeof(r));
	r.set_active = 1;
	b = body("{\"certificatePem\":\"P\",\"caCertificatePem\":\"C\",\"status\":\"INACTIVE\"}");
	assert_int_equal(api_parse_register_cert(b, 1, &r, &err), IOTP_OK);
	assert_string_equal(r.cert_pem, "P");
	assert_string_equal(r.ca_pem, "C");
	assert_string_equal(r.status, "INACTIVE");
	assert_int_equal(r.set_active, 1); /* the query's part is left alone */
	/* RegisterCertificateWithoutCA has no caCertificatePem */
	assert_int_equal(api_parse_register_cert(b, 0, &r, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "caCertificatePem"));
	json_decref(b);

	memset(&ca, 0, sizeof(ca));
	b = body("{\"caCertificate\":\"C\",\"verificationCertificate\":\"V\","
	         "\"certificateMode\":\"DEFAULT\",\"registrationConfig\":{\"templateName\":\"t\"}}");
	assert_int_equal(api_parse_register_ca(b, &ca, &err), IOTP_OK);
	assert_string_equal(ca.ca_pem, "C");
	assert_string_equal(ca.verification_pem, "V");
	assert_string_equal(ca.mode, "DEFAULT");
	assert_string_equal(json_string_value(json_object_get(ca.registration_config,
	                                                      "templateName")),
	                    "t");
	json_decref(b);

	memset(&cu, 0, sizeof(cu));
	b = body("{\"removeAutoRegistration\":true}");
	assert_int_equal(api_parse_update_ca(b, &cu, &err), IOTP_OK);
	assert_int_equal(cu.remove_auto_registration, 1);
	assert_null(cu.registration_config);
	json_decref(b);
}

static void test_json_helpers(void **state)
{
	static const char *const names[] = {"a"};
	const char *s = NULL;
	struct iotp_err err;
	json_t *o = json_object(), *page;

	(void)state;
	/* a string with a NUL inside, as a client could not send it but a
	 * JSON value built otherwise could hold */
	json_object_set_new(o, "a", json_stringn("x\0y", 3));
	assert_int_equal(api_json_str(o, "a", 1, 0, &s, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "NUL"));
	json_object_set_new(o, "a", json_string("abcd"));
	assert_int_equal(api_json_str(o, "a", 1, 3, &s, &err), IOTP_ERR_INVALID);
	assert_int_equal(api_json_str(o, "a", 1, 4, &s, &err), IOTP_OK);
	assert_string_equal(s, "abcd");
	assert_int_equal(api_json_only(o, "the body", names, 1, &err), IOTP_OK);
	json_object_set_new(o, "b", json_true());
	assert_int_equal(api_json_only(o, "the body", names, 1, &err), IOTP_ERR_INVALID);
	assert_non_null(strstr(err.msg, "'b'"));
	json_decref(o);

	page = api_page_json("things", json_array(), "nextToken", NULL);
	assert_non_null(page);
	assert_null(json_object_get(page, "nextToken"));
	json_decref(page);
	page = api_page_json("things", json_array(), "nextToken", "abc=");
	assert_string_equal(json_string_value(json_object_get(page, "nextToken")), "abc=");
	json_decref(page);
	assert_null(api_page_json("things", NULL, "nextToken", "x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_thing),
		cmocka_unit_test(test_update_thing),
		cmocka_unit_test(test_types_and_groups),
		cmocka_unit_test(test_membership),
		cmocka_unit_test(test_policies_and_certs),
		cmocka_unit_test(test_json_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
