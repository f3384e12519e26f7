/*
 * Provisioning templates as registry objects: create (every problem of a
 * bad body reported), describe, list with paging, update, delete (refused
 * while a CA names the template) and versions (limit, default, delete).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/store/store.h"
#include "helpers.h"

static iotp_rc create(struct fx *f, const char *name, const char *type, const char *body,
                      const json_t *hook)
{
	struct prov_template in;
	struct registry_ref ref;

	memset(&in, 0, sizeof(in));
	assert_true(strlen(name) < sizeof(in.name));
	memcpy(in.name, name, strlen(name) + 1);
	snprintf(in.type, sizeof(in.type), "%s", type);
	in.body = (char *)body;
	in.hook = (json_t *)hook;
	in.description = (char *)"a template";
	in.role_arn = (char *)"arn:aws:iam::123456789012:role/Provision";
	return prov_template_create(&f->core, ACTOR, &in, &ref, &f->err);
}

static void create_describe(void **state)
{
	struct fx *f = *state;
	struct prov_template t = {0};
	struct prov_template in;
	struct registry_ref ref;
	json_t *hook = json_pack("{s:s}", "targetArn", "https://hooks.example/check");

	memset(&in, 0, sizeof(in));
	snprintf(in.name, sizeof(in.name), "fleet-1");
	in.body = (char *)FX_FLEET_BODY;
	in.enabled = 1;
	in.hook = hook;
	assert_int_equal(prov_template_create(&f->core, ACTOR, &in, &ref, &f->err), IOTP_OK);
	assert_string_equal(ref.name, "fleet-1");
	assert_string_equal(ref.arn,
	                    "arn:aws:iot:us-east-1:123456789012:provisioningtemplate/fleet-1");
	assert_int_equal(strlen(ref.id), 36);

	assert_int_equal(prov_template_describe(&f->core, "fleet-1", &t, &f->err), IOTP_OK);
	assert_string_equal(t.type, "FLEET_PROVISIONING"); /* the default type */
	assert_true(t.enabled);
	assert_int_equal(t.default_version, 1);
	assert_string_equal(t.body, FX_FLEET_BODY);
	assert_string_equal(t.description, "");
	assert_string_equal(t.role_arn, "");
	assert_string_equal(json_string_value(json_object_get(t.hook, "targetArn")),
	                    "https://hooks.example/check");
	assert_string_equal(json_string_value(json_object_get(t.hook, "payloadVersion")),
	                    "2020-04-01");
	assert_true(t.created > 0 && t.updated == t.created);
	prov_template_cleanup(&t);

	assert_int_equal(create(f, "fleet-1", "FLEET_PROVISIONING", FX_FLEET_BODY, NULL),
	                 IOTP_ERR_EXISTS);
	assert_int_equal(prov_template_describe(&f->core, "nope", &t, &f->err), IOTP_ERR_NOT_FOUND);
	assert_int_equal(prov_template_describe(&f->core, "bad name!", &t, &f->err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM events WHERE action = 'template.create'"),
	                 1);
	json_decref(hook);
}

static void create_refusals(void **state)
{
	struct fx *f = *state;
	char *before = fx_dump(f), *after, big[TEMPLATE_BODY_MAX + 64];
	static const char csr_body[] =
		"{\"Parameters\": {\"Csr\": {\"Type\": \"String\"}}, \"Resources\": {\"c\": {"
		"\"Type\": \"AWS::IoT::Certificate\", \"Properties\": {"
		"\"CertificateSigningRequest\": {\"Ref\": \"Csr\"}}}}}";
	static const char bad_body[] =
		"{\"Resources\": {\"x\": {\"Type\": \"AWS::IoT::Foo\"}, \"thing\": {\"Type\": "
		"\"AWS::IoT::Thing\", \"Properties\": {\"ThingName\": {\"Ref\": \"Serial\"}}}},"
		" \"Outputs\": {}}";
	json_t *hook;

	/* Every problem of a bad body, not just the first. */
	assert_int_equal(create(f, "t", "FLEET_PROVISIONING", bad_body, NULL), IOTP_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "Outputs"));
	assert_non_null(strstr(f->err.msg, "AWS::IoT::Foo"));
	assert_non_null(strstr(f->err.msg, "Serial"));
	/* Fleet and JITP templates take the certificate by id only. */
	assert_int_equal(create(f, "t", "FLEET_PROVISIONING", csr_body, NULL), IOTP_ERR_INVALID);
	assert_int_equal(create(f, "t", "JITP", csr_body, NULL), IOTP_ERR_INVALID);
	assert_int_equal(create(f, "t", "BULK", FX_FLEET_BODY, NULL), IOTP_ERR_INVALID);
	assert_int_equal(create(f, "", "JITP", FX_JITP_BODY, NULL), IOTP_ERR_INVALID);
	assert_int_equal(create(f, "bad/name", "JITP", FX_JITP_BODY, NULL), IOTP_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "templateName"));
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, FX_FLEET_BODY, strlen(FX_FLEET_BODY));
	assert_int_equal(create(f, "t", "FLEET_PROVISIONING", big, NULL), IOTP_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "10240"));
	/* Hooks: fleet templates only, a URL, loopback for plain http. */
	hook = json_pack("{s:s}", "targetArn", "http://hooks.example/check");
	assert_int_equal(create(f, "t", "FLEET_PROVISIONING", FX_FLEET_BODY, hook),
	                 IOTP_ERR_INVALID);
	json_decref(hook);
	hook = json_pack("{s:s}", "targetArn", "arn:aws:lambda:us-east-1:1:function:f");
	assert_int_equal(create(f, "t", "FLEET_PROVISIONING", FX_FLEET_BODY, hook),
	                 IOTP_ERR_INVALID);
	json_decref(hook);
	hook = json_pack("{s:s, s:s}", "targetArn", "https://h.example/", "extra", "x");
	assert_int_equal(create(f, "t", "FLEET_PROVISIONING", FX_FLEET_BODY, hook),
	                 IOTP_ERR_INVALID);
	json_decref(hook);
	hook = json_pack("{s:s, s:s}", "targetArn", "https://h.example/", "payloadVersion", "v1");
	assert_int_equal(create(f, "t", "FLEET_PROVISIONING", FX_FLEET_BODY, hook),
	                 IOTP_ERR_INVALID);
	json_decref(hook);
	hook = json_pack("{s:s}", "targetArn", "http://127.0.0.1:9/hook");
	assert_int_equal(create(f, "t", "JITP", FX_JITP_BODY, hook), IOTP_ERR_INVALID);
	after = fx_dump(f);
	assert_string_equal(before, after);
	/* ...and a loopback http hook on a fleet template is fine. */
	assert_int_equal(create(f, "t", "FLEET_PROVISIONING", FX_FLEET_BODY, hook), IOTP_OK);
	json_decref(hook);
	free(before);
	free(after);
}

static void list_paging(void **state)
{
	struct fx *f = *state;
	struct prov_template_list l = {0};
	struct registry_page page = {NULL, 2};
	char seen[8][64];
	size_t n = 0;

	for (int i = 4; i >= 0; i--) {
		char name[16];

		snprintf(name, sizeof(name), "tpl-%d", i);
		assert_int_equal(create(f, name, i % 2 ? "JITP" : "FLEET_PROVISIONING",
		                        i % 2 ? FX_JITP_BODY : FX_FLEET_BODY, NULL),
		                 IOTP_OK);
	}
	do {
		assert_int_equal(prov_template_list(&f->core, &page, &l, &f->err), IOTP_OK);
		assert_true(l.count <= 2);
		for (size_t i = 0; i < l.count; i++) {
			assert_null(l.items[i].body);
			assert_string_equal(l.items[i].description, "a template");
			snprintf(seen[n++], sizeof(seen[0]), "%s/%s", l.items[i].name, l.items[i].type);
		}
		free((char *)page.token);
		page.token = l.next_token;
		l.next_token = NULL;
		prov_template_list_cleanup(&l);
	} while (page.token != NULL && n < 8);
	assert_int_equal(n, 5);
	assert_string_equal(seen[0], "tpl-0/FLEET_PROVISIONING");
	assert_string_equal(seen[1], "tpl-1/JITP");
	assert_string_equal(seen[4], "tpl-4/FLEET_PROVISIONING");
	page.token = "zzz";
	assert_int_equal(prov_template_list(&f->core, &page, &l, &f->err), IOTP_ERR_INVALID);
	page.token = NULL;
	page.max = 251;
	assert_int_equal(prov_template_list(&f->core, &page, &l, &f->err), IOTP_ERR_INVALID);
}

static void update(void **state)
{
	struct fx *f = *state;
	struct prov_template t = {0};
	struct prov_template_update up = {.name = "u", .enabled = -1};
	json_t *hook = json_pack("{s:s}", "targetArn", "https://h.example/a");
	int64_t events;

	assert_int_equal(create(f, "u", "FLEET_PROVISIONING", FX_FLEET_BODY, NULL), IOTP_OK);
	events = fx_int(f, "SELECT COUNT(*) FROM events");
	/* Nothing to change: no event. */
	assert_int_equal(prov_template_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM events"), events);

	up.enabled = 1;
	up.description = "new words";
	up.hook = hook;
	assert_int_equal(prov_template_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
	assert_int_equal(prov_template_describe(&f->core, "u", &t, &f->err), IOTP_OK);
	assert_true(t.enabled);
	assert_string_equal(t.description, "new words");
	assert_string_equal(t.role_arn, "arn:aws:iam::123456789012:role/Provision");
	assert_non_null(t.hook);
	prov_template_cleanup(&t);

	up = (struct prov_template_update){.name = "u", .enabled = -1, .remove_hook = 1};
	assert_int_equal(prov_template_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
	assert_int_equal(prov_template_describe(&f->core, "u", &t, &f->err), IOTP_OK);
	assert_null(t.hook);
	assert_true(t.enabled);
	prov_template_cleanup(&t);

	up.hook = hook;
	assert_int_equal(prov_template_update(&f->core, ACTOR, &up, &f->err), IOTP_ERR_INVALID);
	up = (struct prov_template_update){.name = "u", .enabled = -1, .default_version = 7};
	assert_int_equal(prov_template_update(&f->core, ACTOR, &up, &f->err), IOTP_ERR_NOT_FOUND);
	up = (struct prov_template_update){.name = "u", .enabled = -1, .role_arn = "short"};
	assert_int_equal(prov_template_update(&f->core, ACTOR, &up, &f->err), IOTP_ERR_INVALID);
	up = (struct prov_template_update){.name = "nope", .enabled = 0};
	assert_int_equal(prov_template_update(&f->core, ACTOR, &up, &f->err), IOTP_ERR_NOT_FOUND);
	json_decref(hook);
}

static void versions(void **state)
{
	struct fx *f = *state;
	struct prov_template t = {0};
	struct prov_template_version v = {0};
	struct prov_template_version_list l = {0};
	struct prov_template_update up = {.name = "v", .enabled = -1};
	static const char body2[] =
		"{\"Resources\": {\"thing\": {\"Type\": \"AWS::IoT::Thing\", \"Properties\": "
		"{\"ThingName\": \"fixed\"}}}}";
	int ver = 0;

	assert_int_equal(create(f, "v", "FLEET_PROVISIONING", FX_FLEET_BODY, NULL), IOTP_OK);
	assert_int_equal(prov_template_version_create(&f->core, ACTOR, "v", body2, 0, &ver, &f->err),
	                 IOTP_OK);
	assert_int_equal(ver, 2);
	assert_int_equal(prov_template_describe(&f->core, "v", &t, &f->err), IOTP_OK);
	assert_int_equal(t.default_version, 1);
	assert_string_equal(t.body, FX_FLEET_BODY);
	prov_template_cleanup(&t);
	assert_int_equal(prov_template_version_create(&f->core, ACTOR, "v", body2, 1, &ver, &f->err),
	                 IOTP_OK);
	assert_int_equal(ver, 3);
	assert_int_equal(prov_template_describe(&f->core, "v", &t, &f->err), IOTP_OK);
	assert_int_equal(t.default_version, 3);
	assert_string_equal(t.body, body2);
	prov_template_cleanup(&t);
	/* A body wrong for the type is refused as at create time. */
	assert_int_equal(prov_template_version_create(&f->core, ACTOR, "v", "{}", 0, &ver, &f->err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(prov_template_version_create(&f->core, ACTOR, "x", body2, 0, &ver, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	/* At most five. */
	assert_int_equal(prov_template_version_create(&f->core, ACTOR, "v", body2, 0, &ver, &f->err),
	                 IOTP_OK);
	assert_int_equal(prov_template_version_create(&f->core, ACTOR, "v", body2, 0, &ver, &f->err),
	                 IOTP_OK);
	assert_int_equal(ver, 5);
	assert_int_equal(prov_template_version_create(&f->core, ACTOR, "v", body2, 0, &ver, &f->err),
	                 IOTP_ERR_LIMIT);

	assert_int_equal(prov_template_version_list(&f->core, "v", NULL, &l, &f->err), IOTP_OK);
	assert_int_equal(l.count, 5);
	for (size_t i = 0; i < l.count; i++) {
		assert_int_equal(l.items[i].version, (int)i + 1);
		assert_int_equal(l.items[i].is_default, i == 2);
		assert_null(l.items[i].body);
	}
	prov_template_version_list_cleanup(&l);
	{
		struct registry_page page = {NULL, 3};

		assert_int_equal(prov_template_version_list(&f->core, "v", &page, &l, &f->err),
		                 IOTP_OK);
		assert_int_equal(l.count, 3);
		assert_non_null(l.next_token);
		page.token = l.next_token;
		l.next_token = NULL;
		prov_template_version_list_cleanup(&l);
		assert_int_equal(prov_template_version_list(&f->core, "v", &page, &l, &f->err),
		                 IOTP_OK);
		assert_int_equal(l.count, 2);
		assert_int_equal(l.items[0].version, 4);
		assert_null(l.next_token);
		free((char *)page.token);
		prov_template_version_list_cleanup(&l);
	}

	assert_int_equal(prov_template_version_describe(&f->core, "v", 1, &v, &f->err), IOTP_OK);
	assert_string_equal(v.body, FX_FLEET_BODY);
	assert_false(v.is_default);
	prov_template_version_cleanup(&v);
	assert_int_equal(prov_template_version_describe(&f->core, "v", 9, &v, &f->err),
	                 IOTP_ERR_NOT_FOUND);

	/* The default version cannot go; another can, and frees a slot. */
	assert_int_equal(prov_template_version_delete(&f->core, ACTOR, "v", 3, &f->err),
	                 IOTP_ERR_CONFLICT);
	assert_int_equal(prov_template_version_delete(&f->core, ACTOR, "v", 1, &f->err), IOTP_OK);
	assert_int_equal(prov_template_version_delete(&f->core, ACTOR, "v", 1, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(prov_template_version_create(&f->core, ACTOR, "v", body2, 0, &ver, &f->err),
	                 IOTP_OK);
	assert_int_equal(ver, 6); /* numbers are never reused */
	/* UpdateProvisioningTemplate moves the default. */
	up.default_version = 6;
	assert_int_equal(prov_template_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
	assert_int_equal(prov_template_version_describe(&f->core, "v", 6, &v, &f->err), IOTP_OK);
	assert_true(v.is_default);
	prov_template_version_cleanup(&v);
	up.default_version = 1;
	assert_int_equal(prov_template_update(&f->core, ACTOR, &up, &f->err), IOTP_ERR_NOT_FOUND);
}

static void delete(void **state)
{
	struct fx *f = *state;
	struct prov_template t = {0};
	struct registry_ca_register ca = {0};
	struct registry_ca_update cu = {0};
	struct registry_ref ref;
	struct pki_ca vendor;
	char code[65], *ca_pem, *verif;
	json_t *cfg;

	assert_int_equal(create(f, "gone", "FLEET_PROVISIONING", FX_FLEET_BODY, NULL), IOTP_OK);
	assert_int_equal(prov_template_version_create(&f->core, ACTOR, "gone", FX_FLEET_BODY, 0,
	                                              NULL, &f->err),
	                 IOTP_OK);
	assert_int_equal(prov_template_delete(&f->core, ACTOR, "gone", &f->err), IOTP_OK);
	assert_int_equal(prov_template_describe(&f->core, "gone", &t, &f->err), IOTP_ERR_NOT_FOUND);
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM template_versions"), 0);
	assert_int_equal(prov_template_delete(&f->core, ACTOR, "gone", &f->err),
	                 IOTP_ERR_NOT_FOUND);

	/* A CA whose registrationConfig names the template keeps it alive. */
	assert_int_equal(create(f, "jitp", "JITP", FX_FLEET_BODY, NULL), IOTP_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "DeviceConfiguration"));
	assert_int_equal(create(f, "jitp", "JITP", FX_JITP_BODY, NULL), IOTP_OK);
	fx_make_root("Vendor CA", &vendor);
	ca_pem = fx_cert_pem(vendor.cert);
	assert_int_equal(registry_regcode_get(&f->core, ACTOR, code, &f->err), IOTP_OK);
	verif = fx_issue_pem(&vendor, code, NULL, 1);
	cfg = json_pack("{s:s}", "templateName", "jitp");
	ca.ca_pem = ca_pem;
	ca.verification_pem = verif;
	ca.registration_config = cfg;
	assert_int_equal(registry_ca_register(&f->core, ACTOR, &ca, &ref, &f->err), IOTP_OK);
	assert_int_equal(prov_template_delete(&f->core, ACTOR, "jitp", &f->err), IOTP_ERR_CONFLICT);
	assert_non_null(strstr(f->err.msg, ref.id));
	cu.id = ref.id;
	cu.remove_auto_registration = 1;
	assert_int_equal(registry_ca_update(&f->core, ACTOR, &cu, &f->err), IOTP_OK);
	assert_int_equal(prov_template_delete(&f->core, ACTOR, "jitp", &f->err), IOTP_OK);
	json_decref(cfg);
	free(ca_pem);
	free(verif);
	pki_ca_cleanup(&vendor);
}

int suite_template(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(create_describe, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(create_refusals, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(list_paging, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(update, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(versions, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(delete, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("template", tests, NULL, NULL);
}
