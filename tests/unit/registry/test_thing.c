/*
 * Things, thing types, thing principals and paging (registry_thing.c,
 * registry_type.c, registry_common.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "helpers.h"

static json_t *attrs(const char *json)
{
	json_t *v = json_loads(json, 0, NULL);

	assert_non_null(v);
	return v;
}

static void make_type(struct fx *f, const char *name)
{
	struct registry_thing_type_spec ts = {.name = name, .description = "a sensor"};
	struct registry_ref ref;

	assert_int_equal(registry_thing_type_create(&f->core, ACTOR, &ts, &ref, &f->err), IOTP_OK);
}

static void make_thing(struct fx *f, const char *name, const char *type, const char *attrs_json)
{
	json_t *a = attrs_json != NULL ? attrs(attrs_json) : NULL;
	struct registry_thing_spec ts = {.name = name, .type_name = type, .attributes = a};
	struct registry_ref ref;

	assert_int_equal(registry_thing_create(&f->core, ACTOR, &ts, &ref, &f->err), IOTP_OK);
	json_decref(a);
}

static void thing_life(void **state)
{
	struct fx *f = *state;
	json_t *a = attrs("{\"color\":\"red\",\"serial\":\"A-1\"}");
	struct registry_thing_spec spec = {.name = "pump-1", .type_name = "sensor", .attributes = a};
	struct registry_ref ref, ref2;
	struct registry_thing t = {0};
	char *before, *after;

	make_type(f, "sensor");
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &spec, &ref, &f->err), IOTP_OK);
	assert_string_equal(ref.name, "pump-1");
	assert_string_equal(ref.arn, "arn:aws:iot:us-east-1:123456789012:thing/pump-1");
	assert_int_equal(strlen(ref.id), 36);

	/* Same configuration again: success, same thing, no new event. */
	assert_int_equal(fx_events(f, "thing.create", "thing/pump-1"), 1);
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &spec, &ref2, &f->err), IOTP_OK);
	assert_string_equal(ref2.id, ref.id);
	assert_int_equal(fx_events(f, "thing.create", "thing/pump-1"), 1);
	/* A different configuration: EXISTS, nothing changed. */
	spec.type_name = NULL;
	before = fx_dump(f);
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &spec, &ref2, &f->err),
	                 IOTP_ERR_EXISTS);
	assert_non_null(strstr(f->err.msg, "pump-1"));
	after = fx_dump(f);
	assert_string_equal(before, after);
	free(before);
	free(after);

	assert_int_equal(registry_thing_describe(&f->core, "pump-1", &t, &f->err), IOTP_OK);
	assert_string_equal(t.type_name, "sensor");
	assert_int_equal(t.version, 1);
	assert_true(json_equal(t.attributes, a));
	registry_thing_cleanup(&t);
	json_decref(a);

	/* Merge: add one, remove one with "", keep the rest. */
	{
		json_t *m = attrs("{\"location\":\"hall\",\"serial\":\"\"}");
		struct registry_thing_update up = {.name = "pump-1", .attributes = m, .merge = 1,
		                                   .expected_version = 1};

		assert_int_equal(registry_thing_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
		/* The same expected version again is now stale. */
		before = fx_dump(f);
		assert_int_equal(registry_thing_update(&f->core, ACTOR, &up, &f->err),
		                 IOTP_ERR_VERSION);
		after = fx_dump(f);
		assert_string_equal(before, after);
		free(before);
		free(after);
		json_decref(m);
	}
	assert_int_equal(registry_thing_describe(&f->core, "pump-1", &t, &f->err), IOTP_OK);
	assert_int_equal(t.version, 2);
	{
		json_t *want = attrs("{\"color\":\"red\",\"location\":\"hall\"}");

		assert_true(json_equal(t.attributes, want));
		json_decref(want);
	}
	registry_thing_cleanup(&t);

	/* Replace (merge false) and remove the type. */
	{
		json_t *r = attrs("{\"a\":\"1\"}");
		struct registry_thing_update up = {.name = "pump-1", .attributes = r, .remove_type = 1,
		                                   .expected_version = REGISTRY_NO_VERSION};

		assert_int_equal(registry_thing_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
		json_decref(r);
	}
	assert_int_equal(registry_thing_describe(&f->core, "pump-1", &t, &f->err), IOTP_OK);
	assert_string_equal(t.type_name, "");
	assert_int_equal(json_object_size(t.attributes), 1);
	assert_int_equal(t.version, 3);
	registry_thing_cleanup(&t);
	/* Without a type, at most three attributes. */
	{
		json_t *r = attrs("{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\"}");
		struct registry_thing_update up = {.name = "pump-1", .attributes = r,
		                                   .expected_version = REGISTRY_NO_VERSION};

		assert_int_equal(registry_thing_update(&f->core, ACTOR, &up, &f->err),
		                 IOTP_ERR_INVALID);
		json_decref(r);
	}

	assert_int_equal(registry_thing_delete(&f->core, ACTOR, "pump-1", 2, &f->err),
	                 IOTP_ERR_VERSION);
	assert_int_equal(registry_thing_delete(&f->core, ACTOR, "pump-1", 3, &f->err), IOTP_OK);
	assert_int_equal(registry_thing_describe(&f->core, "pump-1", &t, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_non_null(strstr(f->err.msg, "pump-1"));
	/* Deleting an absent thing succeeds, without an event. */
	assert_int_equal(registry_thing_delete(&f->core, ACTOR, "pump-1", REGISTRY_NO_VERSION,
	                                       &f->err),
	                 IOTP_OK);
	assert_int_equal(fx_events(f, "thing.delete", "thing/pump-1"), 1);
	assert_int_equal(fx_events(f, "thing.update", "thing/pump-1"), 2);
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM thing_attributes"), 0);
	assert_int_equal(fx_foreign_events(f), 0);
}

static void thing_validation(void **state)
{
	struct fx *f = *state;
	char longname[130];
	struct registry_thing_spec spec = {0};
	struct registry_ref ref;

	memset(longname, 'x', 129);
	longname[129] = '\0';
	spec.name = longname;
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &spec, &ref, &f->err),
	                 IOTP_ERR_INVALID);
	longname[128] = '\0';
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &spec, &ref, &f->err), IOTP_OK);
	spec.name = "bad name";
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &spec, &ref, &f->err),
	                 IOTP_ERR_INVALID);
	spec.name = "";
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &spec, &ref, &f->err),
	                 IOTP_ERR_INVALID);
	spec.name = "ok:name_1-2";
	spec.type_name = "missing";
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &spec, &ref, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_non_null(strstr(f->err.msg, "missing"));
	spec.type_name = NULL;
	{
		json_t *bad = attrs("{\"k\":\"sp ace\"}");

		spec.attributes = bad;
		assert_int_equal(registry_thing_create(&f->core, ACTOR, &spec, &ref, &f->err),
		                 IOTP_ERR_INVALID);
		json_decref(bad);
		bad = attrs("{\"k\":1}");
		spec.attributes = bad;
		assert_int_equal(registry_thing_create(&f->core, ACTOR, &spec, &ref, &f->err),
		                 IOTP_ERR_INVALID);
		json_decref(bad);
	}
	assert_int_equal(fx_int(f, "SELECT COUNT(*) FROM things"), 1);
}

static void thing_types(void **state)
{
	struct fx *f = *state;
	struct registry_thing_type tt = {0};
	struct registry_thing_type_list tl = {0};
	json_t *sa = attrs("[\"model\",\"serial\"]");
	struct registry_thing_type_spec spec = {.name = "meter", .description = "Power meter",
	                                        .searchable_attributes = sa};
	struct registry_ref ref;

	assert_int_equal(registry_thing_type_create(&f->core, ACTOR, &spec, &ref, &f->err), IOTP_OK);
	assert_string_equal(ref.arn, "arn:aws:iot:us-east-1:123456789012:thingtype/meter");
	assert_int_equal(registry_thing_type_create(&f->core, ACTOR, &spec, &ref, &f->err),
	                 IOTP_ERR_EXISTS);
	json_decref(sa);
	assert_int_equal(registry_thing_type_describe(&f->core, "meter", &tt, &f->err), IOTP_OK);
	assert_string_equal(tt.description, "Power meter");
	assert_int_equal(json_array_size(tt.searchable_attributes), 2);
	assert_false(tt.deprecated);
	registry_thing_type_cleanup(&tt);
	make_type(f, "other");
	assert_int_equal(registry_thing_type_list(&f->core, NULL, NULL, &tl, &f->err), IOTP_OK);
	assert_int_equal(tl.count, 2);
	assert_string_equal(tl.items[0].name, "meter");
	assert_null(tl.next_token);
	registry_thing_type_list_cleanup(&tl);

	make_thing(f, "m1", "meter", "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\"}");
	/* Delete needs deprecation first, then no things of the type. */
	assert_int_equal(registry_thing_type_delete(&f->core, ACTOR, "meter", &f->err),
	                 IOTP_ERR_INVALID);
	assert_int_equal(registry_thing_type_deprecate(&f->core, ACTOR, "meter", 0, &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_type_deprecate(&f->core, ACTOR, "meter", 0, &f->err),
	                 IOTP_OK);
	assert_int_equal(fx_events(f, "thingtype.deprecate", "thingtype/meter"), 1);
	assert_int_equal(registry_thing_type_describe(&f->core, "meter", &tt, &f->err), IOTP_OK);
	assert_true(tt.deprecated);
	assert_true(tt.deprecation_date > 0);
	registry_thing_type_cleanup(&tt);
	{
		struct registry_thing_spec ts = {.name = "m2", .type_name = "meter"};

		assert_int_equal(registry_thing_create(&f->core, ACTOR, &ts, &ref, &f->err),
		                 IOTP_ERR_INVALID);
	}
	assert_int_equal(registry_thing_type_delete(&f->core, ACTOR, "meter", &f->err),
	                 IOTP_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "meter"));
	{
		/* m1 keeps its deprecated type on update, but 4 attributes need a
		 * type: moving it to "other" works. */
		struct registry_thing_update up = {.name = "m1", .type_name = "other",
		                                   .expected_version = REGISTRY_NO_VERSION};

		assert_int_equal(registry_thing_update(&f->core, ACTOR, &up, &f->err), IOTP_OK);
	}
	assert_int_equal(registry_thing_type_delete(&f->core, ACTOR, "meter", &f->err), IOTP_OK);
	assert_int_equal(registry_thing_type_describe(&f->core, "meter", &tt, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(registry_thing_type_deprecate(&f->core, ACTOR, "other", 1, &f->err),
	                 IOTP_OK);
	assert_int_equal(fx_events(f, "thingtype.undeprecate", NULL), 0);
	assert_int_equal(fx_events(f, "thingtype.delete", "thingtype/meter"), 1);
	assert_int_equal(fx_foreign_events(f), 0);
}

/* Walks a whole list page by page; checks every name comes once, in order. */
static size_t walk_things(struct fx *f, const struct registry_thing_filter *flt, int size,
                          char seen[][16], size_t seen_max)
{
	struct registry_page page = {.max = size};
	char *token = NULL;
	size_t n = 0;
	int pages = 0;

	do {
		struct registry_thing_list l = {0};

		page.token = token;
		assert_int_equal(registry_thing_list(&f->core, flt, &page, &l, &f->err), IOTP_OK);
		assert_true(l.count <= (size_t)size);
		for (size_t i = 0; i < l.count; i++) {
			assert_true(n < seen_max);
			if (n > 0)
				assert_true(strcmp(seen[n - 1], l.items[i].name) < 0);
			util_strlcpy(seen[n++], l.items[i].name, 16);
		}
		free(token);
		token = l.next_token != NULL ? strdup(l.next_token) : NULL;
		if (l.next_token != NULL)
			assert_int_equal(l.count, size);
		registry_thing_list_cleanup(&l);
		pages++;
	} while (token != NULL);
	assert_true(pages >= 1);
	return n;
}

static void thing_paging(void **state)
{
	struct fx *f = *state;
	static char seen[400][16];
	struct registry_thing_filter flt = {0};
	size_t n;

	make_type(f, "sensor");
	/* One outer transaction for speed: the calls nest inside it. */
	assert_int_equal(store_begin(f->core.store, &f->err), IOTP_OK);
	for (int i = 0; i < 250; i++) {
		char name[16], a[64];

		snprintf(name, sizeof(name), "dev-%04d", (i * 7919) % 250);
		snprintf(a, sizeof(a), "{\"color\":\"%s\",\"lot\":\"L%d\"}",
		         i % 2 == 0 ? "red" : "blue", i % 10);
		make_thing(f, name, i % 5 == 0 ? "sensor" : NULL, a);
	}
	assert_int_equal(store_commit(f->core.store, &f->err), IOTP_OK);

	n = walk_things(f, NULL, 17, seen, 400);
	assert_int_equal(n, 250);
	for (size_t i = 0; i < n; i++) {
		char want[32];

		snprintf(want, sizeof(want), "dev-%04d", (int)i);
		assert_string_equal(seen[i], want);
	}
	assert_int_equal(walk_things(f, NULL, 250, seen, 400), 250);
	assert_int_equal(walk_things(f, NULL, 1, seen, 400), 250);

	flt.attribute_name = "color";
	flt.attribute_value = "red";
	assert_int_equal(walk_things(f, &flt, 17, seen, 400), 125);
	flt.attribute_value = NULL;
	assert_int_equal(walk_things(f, &flt, 17, seen, 400), 250);
	flt.attribute_name = "lot";
	flt.attribute_value = "L";
	flt.use_prefix = 1;
	assert_int_equal(walk_things(f, &flt, 17, seen, 400), 250);
	flt.attribute_value = "L3";
	assert_int_equal(walk_things(f, &flt, 17, seen, 400), 25);
	flt.use_prefix = 0;
	flt.attribute_value = "L";
	assert_int_equal(walk_things(f, &flt, 17, seen, 400), 0);
	memset(&flt, 0, sizeof(flt));
	flt.type_name = "sensor";
	assert_int_equal(walk_things(f, &flt, 17, seen, 400), 50);
	flt.attribute_name = "color";
	flt.attribute_value = "red";
	assert_int_equal(walk_things(f, &flt, 7, seen, 400), 25);

	/* Items added and removed while paging: the others come exactly once. */
	{
		struct registry_page page = {.max = 17};
		struct registry_thing_list l = {0};
		size_t total = 0;
		char *token = NULL;
		int round = 0;

		do {
			page.token = token;
			assert_int_equal(registry_thing_list(&f->core, NULL, &page, &l, &f->err), IOTP_OK);
			for (size_t i = 0; i < l.count; i++)
				if (strncmp(l.items[i].name, "dev-", 4) == 0)
					total++;
			free(token);
			token = l.next_token != NULL ? strdup(l.next_token) : NULL;
			registry_thing_list_cleanup(&l);
			if (round++ == 3) {
				make_thing(f, "aaa-before", NULL, NULL);
				make_thing(f, "zzz-after", NULL, NULL);
			}
		} while (token != NULL);
		assert_int_equal(total, 250);
	}

	/* Bad paging input. */
	{
		struct registry_page page = {.max = 251};
		struct registry_thing_list l = {0};
		struct registry_ref_list rl = {0};

		assert_int_equal(registry_thing_list(&f->core, NULL, &page, &l, &f->err),
		                 IOTP_ERR_INVALID);
		page.max = 0;
		page.token = "not a token!";
		assert_int_equal(registry_thing_list(&f->core, NULL, &page, &l, &f->err),
		                 IOTP_ERR_INVALID);
		page.token = "eDpkZXYtMDAwMQ=="; /* "x:dev-0001": another list's tag */
		assert_int_equal(registry_thing_list(&f->core, NULL, &page, &l, &f->err),
		                 IOTP_ERR_INVALID);
		page.token = "dDpkZXYtMDI0Ng=="; /* "t:dev-0246" */
		assert_int_equal(registry_thing_list(&f->core, NULL, &page, &l, &f->err), IOTP_OK);
		assert_int_equal(l.count, 4);
		assert_string_equal(l.items[0].name, "dev-0247");
		assert_null(l.next_token);
		registry_thing_list_cleanup(&l);
		/* The same token given to the policy list is refused. */
		assert_int_equal(registry_policy_list(&f->core, 1, &page, &rl, &f->err),
		                 IOTP_ERR_INVALID);
	}
}

static void thing_principals(void **state)
{
	struct fx *f = *state;
	struct registry_cert_created c = {0};
	struct registry_str_list sl = {0};
	char arn[REGISTRY_ARN_MAX], *before, *after;

	make_thing(f, "t1", NULL, NULL);
	make_thing(f, "t2", NULL, NULL);
	assert_int_equal(registry_cert_create_with_keys(&f->core, ACTOR, REGISTRY_CERT_ACTIVE, &c,
	                                                &f->err),
	                 IOTP_OK);
	snprintf(arn, sizeof(arn), "%s", c.arn);
	assert_int_equal(registry_thing_attach_principal(&f->core, ACTOR, "t1", arn, &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_attach_principal(&f->core, ACTOR, "t1", arn, &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_attach_principal(&f->core, ACTOR, "t2", arn, &f->err),
	                 IOTP_OK);
	assert_int_equal(fx_events(f, "thing.attach_principal", NULL), 2);
	assert_int_equal(registry_thing_attach_principal(&f->core, ACTOR, "nope", arn, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(registry_thing_attach_principal(
	                     &f->core, ACTOR, "t1",
	                     "arn:aws:iot:us-east-1:123456789012:cert/"
	                     "0000000000000000000000000000000000000000000000000000000000000000",
	                     &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(registry_thing_attach_principal(&f->core, ACTOR, "t1",
	                                                 "arn:aws:iam::123456789012:user/x", &f->err),
	                 IOTP_ERR_INVALID);

	assert_int_equal(registry_thing_list_principals(&f->core, "t1", NULL, &sl, &f->err),
	                 IOTP_OK);
	assert_int_equal(sl.count, 1);
	assert_string_equal(sl.items[0], arn);
	registry_str_list_cleanup(&sl);
	assert_int_equal(registry_principal_list_things(&f->core, arn, NULL, &sl, &f->err), IOTP_OK);
	assert_int_equal(sl.count, 2);
	assert_string_equal(sl.items[0], "t1");
	assert_string_equal(sl.items[1], "t2");
	registry_str_list_cleanup(&sl);

	/* A thing with a principal cannot be deleted; nothing changes. */
	before = fx_dump(f);
	assert_int_equal(registry_thing_delete(&f->core, ACTOR, "t1", REGISTRY_NO_VERSION, &f->err),
	                 IOTP_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "principals"));
	after = fx_dump(f);
	assert_string_equal(before, after);
	free(before);
	free(after);

	assert_int_equal(registry_thing_detach_principal(&f->core, ACTOR, "t1", arn, &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_detach_principal(&f->core, ACTOR, "t1", arn, &f->err),
	                 IOTP_OK);
	assert_int_equal(fx_events(f, "thing.detach_principal", NULL), 1);
	assert_int_equal(registry_thing_delete(&f->core, ACTOR, "t1", REGISTRY_NO_VERSION, &f->err),
	                 IOTP_OK);
	registry_cert_created_cleanup(&c);
	assert_int_equal(fx_foreign_events(f), 0);
}

/* The caller's outer transaction: a failing inner call undoes only itself. */
static void nested_transactions(void **state)
{
	struct fx *f = *state;
	struct registry_thing t = {0};
	struct registry_ref ref;
	struct registry_thing_spec a = {.name = "a"}, bad = {.name = "b", .type_name = "none"};
	int64_t events;

	assert_int_equal(store_begin(f->core.store, &f->err), IOTP_OK);
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &a, &ref, &f->err), IOTP_OK);
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &bad, &ref, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(store_tx_depth(f->core.store), 1);
	store_rollback(f->core.store);
	assert_int_equal(registry_thing_describe(&f->core, "a", &t, &f->err), IOTP_ERR_NOT_FOUND);
	assert_int_equal(fx_event_total(f), 0);

	assert_int_equal(store_begin(f->core.store, &f->err), IOTP_OK);
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &a, &ref, &f->err), IOTP_OK);
	assert_int_equal(registry_thing_create(&f->core, ACTOR, &bad, &ref, &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(store_commit(f->core.store, &f->err), IOTP_OK);
	assert_int_equal(registry_thing_describe(&f->core, "a", &t, &f->err), IOTP_OK);
	registry_thing_cleanup(&t);
	events = fx_event_total(f);
	assert_int_equal(events, 1);
}

int suite_thing(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(thing_life, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(thing_validation, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(thing_types, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(thing_paging, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(thing_principals, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(nested_transactions, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("registry.thing", tests, NULL, NULL);
}
