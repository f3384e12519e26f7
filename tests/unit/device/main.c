/*
 * Unit tests of libiotprov-device (src/device): everything that does not
 * need a running service. The SoftHSM2 token stands in for a secure
 * element; protocol exchanges run against test doubles (a scripted
 * transport, a small HTTPS server in a thread).
 */
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"

static int group_setup(void **state)
{
	(void)state;
	return th_setup();
}

static int group_teardown(void **state)
{
	(void)state;
	th_teardown();
	return 0;
}

int main(void)
{
	int failed = 0;

	if (th_setup() != 0) {
		fprintf(stderr, "device tests: setup failed (softhsm2-util on PATH?)\n");
		return 1;
	}
	th_teardown();
	failed += _cmocka_run_group_tests("backoff", th_backoff_tests, th_backoff_count,
	                                  group_setup, group_teardown);
	failed += _cmocka_run_group_tests("codec", th_codec_tests, th_codec_count, group_setup,
	                                  group_teardown);
	failed += _cmocka_run_group_tests("keystore", th_keystore_tests, th_keystore_count,
	                                  group_setup, group_teardown);
	failed += _cmocka_run_group_tests("fleet", th_fleet_tests, th_fleet_count, group_setup,
	                                  group_teardown);
	failed += _cmocka_run_group_tests("est", th_est_tests, th_est_count, group_setup,
	                                  group_teardown);
	failed += _cmocka_run_group_tests("store", th_store_tests, th_store_count, group_setup,
	                                  group_teardown);
	return failed == 0 ? 0 : 1;
}
