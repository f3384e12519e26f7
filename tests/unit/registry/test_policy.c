/*
 * Policies: versions and their limit, attachments, delete conflicts and the
 * set of documents the broker evaluates for a certificate
 * (registry_policy.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "helpers.h"

#define DOC(res) \
	"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\"," \
	"\"Action\":\"iot:Connect\",\"Resource\":\"arn:aws:iot:us-east-1:123456789012:" res \
	"\"}]}"

static void policy(struct fx *f, const char *name, const char *doc)
{
	struct registry_policy p = {0};

	assert_int_equal(registry_policy_create(&f->core, ACTOR, name, doc, &p, &f->err), IOTP_OK);
	registry_policy_cleanup(&p);
}

static void cert(struct fx *f, struct registry_cert_created *c)
{
	assert_int_equal(registry_cert_create_with_keys(&f->core, ACTOR, REGISTRY_CERT_ACTIVE, c,
	                                                &f->err),
	                 IOTP_OK);
}

static void policy_life(void **state)
{
	struct fx *f = *state;
	struct registry_policy p = {0};
	struct registry_policy_version v = {0};
	struct registry_policy_version_list vl = {0};
	char *before, *after;

	assert_int_equal(registry_policy_create(&f->core, ACTOR, "dev", DOC("*"), &p, &f->err),
	                 IOTP_OK);
	assert_string_equal(p.arn, "arn:aws:iot:us-east-1:123456789012:policy/dev");
	assert_int_equal(p.default_version, 1);
	assert_string_equal(p.document, DOC("*"));
	registry_policy_cleanup(&p);
	assert_int_equal(registry_policy_create(&f->core, ACTOR, "dev", DOC("*"), &p, &f->err),
	                 IOTP_ERR_EXISTS);
	assert_int_equal(registry_policy_create(&f->core, ACTOR, "bad", "{\"Version\":1", &p,
	                                        &f->err),
	                 IOTP_ERR_POLICY);
	assert_int_equal(registry_policy_create(&f->core, ACTOR, "bad", "{\"Statement\":[]}", &p,
	                                        &f->err),
	                 IOTP_ERR_POLICY);
	assert_int_equal(registry_policy_create(&f->core, ACTOR, "bad name", DOC("*"), &p, &f->err),
	                 IOTP_ERR_INVALID);

	/* Versions 2..5, then the limit. */
	for (int i = 2; i <= 5; i++) {
		assert_int_equal(registry_policy_version_create(&f->core, ACTOR, "dev", DOC("client/a"),
		                                                i == 3, &v, &f->err),
		                 IOTP_OK);
		assert_int_equal(v.version, i);
		assert_int_equal(v.is_default, i == 3);
		registry_policy_version_cleanup(&v);
	}
	before = fx_dump(f);
	assert_int_equal(registry_policy_version_create(&f->core, ACTOR, "dev", DOC("client/b"), 1,
	                                                &v, &f->err),
	                 IOTP_ERR_LIMIT);
	assert_non_null(strstr(f->err.msg, "dev"));
	after = fx_dump(f);
	assert_string_equal(before, after);
	free(before);
	free(after);

	assert_int_equal(registry_policy_get(&f->core, "dev", &p, &f->err), IOTP_OK);
	assert_int_equal(p.default_version, 3);
	assert_string_equal(p.document, DOC("client/a"));
	registry_policy_cleanup(&p);
	assert_int_equal(registry_policy_version_list(&f->core, "dev", &vl, &f->err), IOTP_OK);
	assert_int_equal(vl.count, 5);
	assert_int_equal(vl.items[0].version, 5);
	assert_true(vl.items[2].is_default);
	assert_false(vl.items[0].is_default);
	registry_policy_version_list_cleanup(&vl);

	assert_int_equal(registry_policy_version_delete(&f->core, ACTOR, "dev", 3, &f->err),
	                 IOTP_ERR_CONFLICT);
	assert_int_equal(registry_policy_version_set_default(&f->core, ACTOR, "dev", 1, &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_policy_version_set_default(&f->core, ACTOR, "dev", 9, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(registry_policy_version_get(&f->core, "dev", 1, &v, &f->err), IOTP_OK);
	assert_true(v.is_default);
	assert_string_equal(v.document, DOC("*"));
	registry_policy_version_cleanup(&v);
	/* Delete needs the non-default versions gone first. */
	assert_int_equal(registry_policy_delete(&f->core, ACTOR, "dev", &f->err), IOTP_ERR_CONFLICT);
	for (int i = 2; i <= 5; i++)
		assert_int_equal(registry_policy_version_delete(&f->core, ACTOR, "dev", i, &f->err),
		                 IOTP_OK);
	assert_int_equal(registry_policy_version_delete(&f->core, ACTOR, "dev", 2, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	/* Version ids are never reused. */
	assert_int_equal(registry_policy_version_create(&f->core, ACTOR, "dev", DOC("x"), 0, &v,
	                                                &f->err),
	                 IOTP_OK);
	assert_int_equal(v.version, 6);
	registry_policy_version_cleanup(&v);
	assert_int_equal(registry_policy_version_delete(&f->core, ACTOR, "dev", 6, &f->err), IOTP_OK);
	assert_int_equal(registry_policy_delete(&f->core, ACTOR, "dev", &f->err), IOTP_OK);
	assert_int_equal(registry_policy_get(&f->core, "dev", &p, &f->err), IOTP_ERR_NOT_FOUND);
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM policy_versions"), 0);
	assert_int_equal(fx_events(f, "policy.version_create", "policy/dev"), 5);
	assert_int_equal(fx_events(f, "policy.version_delete", "policy/dev"), 5);
	assert_int_equal(fx_events(f, "policy.set_default", "policy/dev"), 1);
	assert_int_equal(fx_events(f, "policy.delete", "policy/dev"), 1);
	assert_int_equal(fx_foreign_events(f), 0);
}

static void policy_list(void **state)
{
	struct fx *f = *state;
	char name[32];
	size_t total = 0;
	char *tok = NULL, last[32] = "zzzz";

	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof(name), "p%02d", i);
		policy(f, name, DOC("*"));
	}
	do {
		struct registry_page page = {.token = tok};
		struct registry_ref_list l = {0};

		assert_int_equal(registry_policy_list(&f->core, 0, &page, &l, &f->err), IOTP_OK);
		for (size_t i = 0; i < l.count; i++) {
			assert_true(strcmp(l.items[i].name, last) < 0);
			util_strlcpy(last, l.items[i].name, sizeof(last));
		}
		total += l.count;
		free(tok);
		tok = l.next_token != NULL ? strdup(l.next_token) : NULL;
		if (tok != NULL)
			assert_int_equal(l.count, REGISTRY_MARKER_DEFAULT);
		registry_ref_list_cleanup(&l);
	} while (tok != NULL);
	assert_int_equal(total, 30);
	assert_string_equal(last, "p00");
}

static void policy_attach(void **state)
{
	struct fx *f = *state;
	struct registry_cert_created c = {0};
	struct registry_ref_list rl = {0};
	struct registry_str_list sl = {0};
	struct registry_thing_group_spec gs = {.name = "fleet"};
	struct registry_ref ref;
	char *before, *after;

	policy(f, "p", DOC("*"));
	cert(f, &c);
	assert_int_equal(registry_thing_group_create(&f->core, ACTOR, &gs, &ref, &f->err), IOTP_OK);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "p", c.arn, &f->err), IOTP_OK);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "p", c.arn, &f->err), IOTP_OK);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "p", ref.arn, &f->err), IOTP_OK);
	assert_int_equal(fx_events(f, "policy.attach", "policy/p"), 2);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "p",
	                                        "arn:aws:iot:us-east-1:123456789012:thinggroup/none",
	                                        &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "p",
	                                        "arn:aws:iot:us-east-1:123456789012:thing/x", &f->err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "nope", c.arn, &f->err),
	                 IOTP_ERR_NOT_FOUND);

	assert_int_equal(registry_policy_list_targets(&f->core, "p", NULL, &sl, &f->err), IOTP_OK);
	assert_int_equal(sl.count, 2);
	assert_string_equal(sl.items[0], c.arn);
	assert_string_equal(sl.items[1], ref.arn);
	registry_str_list_cleanup(&sl);
	/* Pages follow the order of attachment, not of the ARNs. */
	{
		struct registry_page pg = {.max = 1};
		struct registry_ref zref, aref;
		struct registry_thing_group_spec zs = {.name = "zeta"}, as = {.name = "alpha"};

		policy(f, "o", DOC("*"));
		assert_int_equal(registry_thing_group_create(&f->core, ACTOR, &zs, &zref, &f->err),
		                 IOTP_OK);
		assert_int_equal(registry_thing_group_create(&f->core, ACTOR, &as, &aref, &f->err),
		                 IOTP_OK);
		assert_int_equal(registry_policy_attach(&f->core, ACTOR, "o", zref.arn, &f->err),
		                 IOTP_OK);
		assert_int_equal(registry_policy_attach(&f->core, ACTOR, "o", aref.arn, &f->err),
		                 IOTP_OK);
		assert_int_equal(registry_policy_list_targets(&f->core, "o", &pg, &sl, &f->err),
		                 IOTP_OK);
		assert_int_equal(sl.count, 1);
		assert_string_equal(sl.items[0], zref.arn);
		assert_non_null(sl.next_token);
		pg.token = strdup(sl.next_token);
		registry_str_list_cleanup(&sl);
		assert_int_equal(registry_policy_list_targets(&f->core, "o", &pg, &sl, &f->err),
		                 IOTP_OK);
		assert_int_equal(sl.count, 1);
		assert_string_equal(sl.items[0], aref.arn);
		assert_null(sl.next_token);
		registry_str_list_cleanup(&sl);
		free((char *)pg.token);
		pg.token = "VDp4eXo="; /* "T:xyz": this list's tag, not one of its keys */
		assert_int_equal(registry_policy_list_targets(&f->core, "o", &pg, &sl, &f->err),
		                 IOTP_ERR_INVALID);
	}
	assert_int_equal(registry_policy_list_attached(&f->core, c.arn, 0, NULL, &rl, &f->err),
	                 IOTP_OK);
	assert_int_equal(rl.count, 1);
	assert_string_equal(rl.items[0].name, "p");
	registry_ref_list_cleanup(&rl);

	before = fx_dump(f);
	assert_int_equal(registry_policy_delete(&f->core, ACTOR, "p", &f->err), IOTP_ERR_CONFLICT);
	after = fx_dump(f);
	assert_string_equal(before, after);
	free(before);
	free(after);

	/* Ten policies per target at most. */
	for (int i = 0; i < 9; i++) {
		char name[16];

		snprintf(name, sizeof(name), "q%d", i);
		policy(f, name, DOC("*"));
		assert_int_equal(registry_policy_attach(&f->core, ACTOR, name, c.arn, &f->err), IOTP_OK);
	}
	policy(f, "q9", DOC("*"));
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "q9", c.arn, &f->err),
	                 IOTP_ERR_LIMIT);

	assert_int_equal(registry_policy_detach(&f->core, ACTOR, "p", c.arn, &f->err), IOTP_OK);
	assert_int_equal(registry_policy_detach(&f->core, ACTOR, "p", c.arn, &f->err), IOTP_OK);
	assert_int_equal(registry_policy_detach(&f->core, ACTOR, "p", "thinggroup/fleet", &f->err),
	                 IOTP_OK);
	assert_int_equal(fx_events(f, "policy.detach", "policy/p"), 2);
	assert_int_equal(registry_policy_delete(&f->core, ACTOR, "p", &f->err), IOTP_OK);
	registry_cert_created_cleanup(&c);
	assert_int_equal(fx_foreign_events(f), 0);
}

static void policies_for_principal(void **state)
{
	struct fx *f = *state;
	struct registry_cert_created c = {0}, other = {0};
	struct registry_policy_docs d = {0};
	struct registry_ref_list rl = {0};
	struct registry_thing_spec ts = {.name = "dev1"};
	struct registry_ref ref;
	const char *groups[][2] = {{"root", NULL}, {"mid", "root"}, {"leaf", "mid"}, {"aside", NULL}};

	cert(f, &c);
	cert(f, &other);
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &ts, &ref, &f->err), IOTP_OK);
	for (size_t i = 0; i < 4; i++) {
		struct registry_thing_group_spec gs = {.name = groups[i][0],
		                                       .parent_name = groups[i][1]};

		assert_int_equal(registry_thing_group_create(&f->core, ACTOR, &gs, &ref, &f->err),
		                 IOTP_OK);
	}
	policy(f, "on-cert", DOC("client/cert"));
	policy(f, "on-root", DOC("client/root"));
	policy(f, "on-leaf", DOC("client/leaf"));
	policy(f, "on-aside", DOC("client/aside"));
	policy(f, "on-other", DOC("client/other"));
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "on-cert", c.arn, &f->err), IOTP_OK);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "on-root", "thinggroup/root",
	                                        &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "on-leaf", "thinggroup/leaf",
	                                        &f->err),
	                 IOTP_OK);
	/* The same policy through two paths is returned once. */
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "on-root", "thinggroup/leaf",
	                                        &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "on-aside", "thinggroup/aside",
	                                        &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_policy_attach(&f->core, ACTOR, "on-other", other.arn, &f->err),
	                 IOTP_OK);

	/* Before the thing is attached: only the certificate's own policy. */
	assert_int_equal(registry_policies_for_principal(&f->core, c.id, &d, &f->err), IOTP_OK);
	assert_int_equal(d.count, 1);
	assert_string_equal(d.items[0].name, "on-cert");
	registry_policy_docs_cleanup(&d);

	assert_int_equal(registry_thing_attach_principal(&f->core, ACTOR, "dev1", c.arn, &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_group_add_thing(&f->core, ACTOR, "leaf", "dev1", &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_policies_for_principal(&f->core, c.id, &d, &f->err), IOTP_OK);
	assert_int_equal(d.count, 3);
	assert_string_equal(d.items[0].name, "on-cert");
	assert_string_equal(d.items[1].name, "on-leaf");
	assert_string_equal(d.items[2].name, "on-root");
	assert_string_equal(d.items[2].document, DOC("client/root"));
	registry_policy_docs_cleanup(&d);

	/* The default version is what counts. */
	{
		struct registry_policy_version v = {0};

		assert_int_equal(registry_policy_version_create(&f->core, ACTOR, "on-root",
		                                                DOC("client/root2"), 1, &v, &f->err),
		                 IOTP_OK);
		registry_policy_version_cleanup(&v);
	}
	assert_int_equal(registry_policies_for_principal(&f->core, c.id, &d, &f->err), IOTP_OK);
	assert_int_equal(d.count, 3);
	assert_string_equal(d.items[2].document, DOC("client/root2"));
	registry_policy_docs_cleanup(&d);

	assert_int_equal(registry_policy_list_attached(&f->core, c.arn, 1, NULL, &rl, &f->err),
	                 IOTP_OK);
	assert_int_equal(rl.count, 3);
	registry_ref_list_cleanup(&rl);
	assert_int_equal(registry_policy_list_attached(&f->core, "thinggroup/mid", 1, NULL, &rl,
	                                               &f->err),
	                 IOTP_OK);
	assert_int_equal(rl.count, 1);
	assert_string_equal(rl.items[0].name, "on-root");
	registry_ref_list_cleanup(&rl);

	/* Unknown certificate: nothing applies. */
	assert_int_equal(registry_policies_for_principal(
	                     &f->core,
	                     "00000000000000000000000000000000000000000000000000000000000000AA", &d,
	                     &f->err),
	                 IOTP_OK);
	assert_int_equal(d.count, 0);
	registry_policy_docs_cleanup(&d);
	assert_int_equal(registry_policies_for_principal(&f->core, "short", &d, &f->err),
	                 IOTP_ERR_INVALID);
	registry_cert_created_cleanup(&c);
	registry_cert_created_cleanup(&other);
}

int suite_policy(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(policy_life, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(policy_list, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(policy_attach, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(policies_for_principal, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("registry.policy", tests, NULL, NULL);
}
