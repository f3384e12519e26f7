/*
 * Thing groups: hierarchy, depth, deletion rules and memberships
 * (registry_group.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static iotp_rc group(struct fx *f, const char *name, const char *parent)
{
	struct registry_thing_group_spec s = {.name = name, .parent_name = parent};
	struct registry_ref ref;

	return registry_thing_group_create(&f->core, ACTOR, &s, &ref, &f->err);
}

static void thing(struct fx *f, const char *name)
{
	struct registry_thing_spec s = {.name = name};
	struct registry_ref ref;

	assert_int_equal(registry_thing_create(&f->core, ACTOR, &s, &ref, &f->err), IOTP_OK);
}

static void group_hierarchy(void **state)
{
	struct fx *f = *state;
	struct registry_thing_group g = {0};
	char *before, *after;

	assert_int_equal(group(f, "site", NULL), IOTP_OK);
	assert_int_equal(group(f, "floor1", "site"), IOTP_OK);
	assert_int_equal(group(f, "room101", "floor1"), IOTP_OK);
	assert_int_equal(group(f, "site", NULL), IOTP_ERR_EXISTS);
	assert_int_equal(group(f, "orphan", "nowhere"), IOTP_ERR_NOT_FOUND);
	assert_non_null(strstr(f->err.msg, "nowhere"));
	/* A group cannot be its own parent: the parent must exist first, and
	 * parents never change afterwards, so no cycle can form. */
	assert_int_equal(group(f, "selfish", "selfish"), IOTP_ERR_NOT_FOUND);

	assert_int_equal(registry_thing_group_describe(&f->core, "room101", &g, &f->err), IOTP_OK);
	assert_string_equal(g.parent_name, "floor1");
	assert_int_equal(g.root_to_parent_count, 2);
	assert_string_equal(g.root_to_parent[0].name, "site");
	assert_string_equal(g.root_to_parent[0].arn,
	                    "arn:aws:iot:us-east-1:123456789012:thinggroup/site");
	assert_string_equal(g.root_to_parent[1].name, "floor1");
	assert_int_equal(g.version, 1);
	registry_thing_group_cleanup(&g);
	assert_int_equal(registry_thing_group_describe(&f->core, "site", &g, &f->err), IOTP_OK);
	assert_int_equal(g.root_to_parent_count, 0);
	assert_string_equal(g.parent_name, "");
	registry_thing_group_cleanup(&g);

	/* Depth: site > floor1 > room101 > l4 > l5 > l6 > l7 is 7 levels. */
	assert_int_equal(group(f, "l4", "room101"), IOTP_OK);
	assert_int_equal(group(f, "l5", "l4"), IOTP_OK);
	assert_int_equal(group(f, "l6", "l5"), IOTP_OK);
	assert_int_equal(group(f, "l7", "l6"), IOTP_OK);
	assert_int_equal(group(f, "l8", "l7"), IOTP_ERR_LIMIT);

	/* A group with children cannot go; nothing changes. */
	before = fx_dump(f);
	assert_int_equal(registry_thing_group_delete(&f->core, ACTOR, "floor1", REGISTRY_NO_VERSION,
	                                             &f->err),
	                 IOTP_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "floor1"));
	after = fx_dump(f);
	assert_string_equal(before, after);
	free(before);
	free(after);
	assert_int_equal(registry_thing_group_delete(&f->core, ACTOR, "l7", 2, &f->err),
	                 IOTP_ERR_VERSION);
	assert_int_equal(registry_thing_group_delete(&f->core, ACTOR, "l7", 1, &f->err), IOTP_OK);
	assert_int_equal(registry_thing_group_delete(&f->core, ACTOR, "l7", REGISTRY_NO_VERSION,
	                                             &f->err),
	                 IOTP_OK);
	assert_int_equal(fx_events(f, "thinggroup.delete", "thinggroup/l7"), 1);
	assert_int_equal(fx_events(f, "thinggroup.create", NULL), 7);

	/* Update: attributes merge, description, version. */
	{
		json_t *a = json_pack("{s:s}", "zone", "north");
		struct registry_thing_group_update up = {.name = "site", .description = "HQ",
		                                         .attributes = a, .merge = 1,
		                                         .expected_version = 1};
		int64_t v = 0;

		assert_int_equal(registry_thing_group_update(&f->core, ACTOR, &up, &v, &f->err),
		                 IOTP_OK);
		assert_int_equal(v, 2);
		assert_int_equal(registry_thing_group_update(&f->core, ACTOR, &up, &v, &f->err),
		                 IOTP_ERR_VERSION);
		json_decref(a);
	}
	assert_int_equal(registry_thing_group_describe(&f->core, "site", &g, &f->err), IOTP_OK);
	assert_string_equal(g.description, "HQ");
	assert_string_equal(json_string_value(json_object_get(g.attributes, "zone")), "north");
	registry_thing_group_cleanup(&g);

	/* Listing with filters. */
	{
		struct registry_ref_list l = {0};
		struct registry_thing_group_filter flt = {.parent_name = "site", .recursive = -1};

		assert_int_equal(registry_thing_group_list(&f->core, &flt, NULL, &l, &f->err), IOTP_OK);
		assert_int_equal(l.count, 1);
		assert_string_equal(l.items[0].name, "floor1");
		registry_ref_list_cleanup(&l);
		flt.recursive = 1;
		assert_int_equal(registry_thing_group_list(&f->core, &flt, NULL, &l, &f->err), IOTP_OK);
		assert_int_equal(l.count, 5); /* floor1 room101 l4 l5 l6 */
		registry_ref_list_cleanup(&l);
		flt.name_prefix = "l";
		assert_int_equal(registry_thing_group_list(&f->core, &flt, NULL, &l, &f->err), IOTP_OK);
		assert_int_equal(l.count, 3);
		assert_string_equal(l.items[0].name, "l4");
		registry_ref_list_cleanup(&l);
		flt.parent_name = NULL;
		flt.name_prefix = NULL;
		flt.recursive = 0;
		assert_int_equal(registry_thing_group_list(&f->core, &flt, NULL, &l, &f->err), IOTP_OK);
		assert_int_equal(l.count, 1);
		registry_ref_list_cleanup(&l);
		{
			struct registry_page page = {.max = 2};
			size_t total = 0;
			char *tok = NULL;

			do {
				page.token = tok;
				assert_int_equal(registry_thing_group_list(&f->core, NULL, &page, &l, &f->err),
				                 IOTP_OK);
				total += l.count;
				free(tok);
				tok = l.next_token != NULL ? strdup(l.next_token) : NULL;
				registry_ref_list_cleanup(&l);
			} while (tok != NULL);
			assert_int_equal(total, 6);
		}
		flt.parent_name = "ghost";
		assert_int_equal(registry_thing_group_list(&f->core, &flt, NULL, &l, &f->err),
		                 IOTP_ERR_NOT_FOUND);
	}
	assert_int_equal(fx_foreign_events(f), 0);
}

static void group_members(void **state)
{
	struct fx *f = *state;
	struct registry_str_list sl = {0};
	struct registry_ref_list rl = {0};
	char name[32];

	assert_int_equal(group(f, "top", NULL), IOTP_OK);
	assert_int_equal(group(f, "mid", "top"), IOTP_OK);
	thing(f, "a");
	thing(f, "b");
	thing(f, "c");
	assert_int_equal(registry_thing_group_add_thing(&f->core, ACTOR, "top", "a", &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_group_add_thing(&f->core, ACTOR, "mid", "b", &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_group_add_thing(&f->core, ACTOR, "mid", "a", &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_group_add_thing(&f->core, ACTOR, "mid", "a", &f->err),
	                 IOTP_OK);
	assert_int_equal(fx_events(f, "thinggroup.add_thing", NULL), 3);
	assert_int_equal(registry_thing_group_add_thing(&f->core, ACTOR, "mid", "zz", &f->err),
	                 IOTP_ERR_NOT_FOUND);
	assert_int_equal(registry_thing_group_add_thing(&f->core, ACTOR, "zz", "a", &f->err),
	                 IOTP_ERR_NOT_FOUND);

	assert_int_equal(registry_thing_group_list_things(&f->core, "top", 0, NULL, &sl, &f->err),
	                 IOTP_OK);
	assert_int_equal(sl.count, 1);
	registry_str_list_cleanup(&sl);
	assert_int_equal(registry_thing_group_list_things(&f->core, "top", 1, NULL, &sl, &f->err),
	                 IOTP_OK);
	assert_int_equal(sl.count, 2); /* a once, b */
	assert_string_equal(sl.items[0], "a");
	assert_string_equal(sl.items[1], "b");
	registry_str_list_cleanup(&sl);
	assert_int_equal(registry_thing_list_groups(&f->core, "a", NULL, &rl, &f->err), IOTP_OK);
	assert_int_equal(rl.count, 2);
	assert_string_equal(rl.items[0].name, "mid");
	assert_string_equal(rl.items[1].arn, "arn:aws:iot:us-east-1:123456789012:thinggroup/top");
	registry_ref_list_cleanup(&rl);

	/* Ten groups per thing at most. */
	for (int i = 0; i < 9; i++) {
		snprintf(name, sizeof(name), "g%d", i);
		assert_int_equal(group(f, name, NULL), IOTP_OK);
		assert_int_equal(registry_thing_group_add_thing(&f->core, ACTOR, name, "c", &f->err),
		                 IOTP_OK);
	}
	assert_int_equal(registry_thing_group_add_thing(&f->core, ACTOR, "top", "c", &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_group_add_thing(&f->core, ACTOR, "mid", "c", &f->err),
	                 IOTP_ERR_LIMIT);

	assert_int_equal(registry_thing_group_remove_thing(&f->core, ACTOR, "top", "a", &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_group_remove_thing(&f->core, ACTOR, "top", "a", &f->err),
	                 IOTP_OK);
	assert_int_equal(fx_events(f, "thinggroup.remove_thing", "thinggroup/top"), 1);
	/* Deleting a thing takes its memberships; deleting a group too. */
	assert_int_equal(registry_thing_delete(&f->core, ACTOR, "b", REGISTRY_NO_VERSION, &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_group_delete(&f->core, ACTOR, "g0", REGISTRY_NO_VERSION,
	                                             &f->err),
	                 IOTP_OK);
	assert_int_equal(registry_thing_list_groups(&f->core, "c", NULL, &rl, &f->err), IOTP_OK);
	assert_int_equal(rl.count, 9);
	registry_ref_list_cleanup(&rl);
	assert_int_equal(registry_thing_group_list_things(&f->core, "mid", 0, NULL, &sl, &f->err),
	                 IOTP_OK);
	assert_int_equal(sl.count, 1);
	assert_string_equal(sl.items[0], "a");
	registry_str_list_cleanup(&sl);
	assert_int_equal(fx_foreign_events(f), 0);
}

int suite_group(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(group_hierarchy, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(group_members, fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests_name("registry.group", tests, NULL, NULL);
}
