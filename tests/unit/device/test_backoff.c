/*
 * Backoff: every delay lies in [0, min(cap, base * 2^n)], the windows grow
 * and stop growing at the cap, the attempts run out when bounded, and the
 * jitter is full (the whole window is used, around its middle on average)
 * so a fleet that retries together spreads out.
 */
#include <stdint.h>
#include <string.h>

#include "helpers.h"

static void test_windows_and_bound(void **state)
{
	struct iotp_backoff b;
	uint32_t d, n, seed;

	(void)state;
	for (seed = 1; seed <= 200; seed++) {
		iotp_backoff_init(&b, 100, 5000, 12, seed);
		for (n = 0; n < 12; n++) {
			uint64_t window = (uint64_t)100 << n;

			assert_int_equal(iotp_backoff_next(&b, &d), 1);
			assert_true(d <= (window < 5000 ? window : 5000));
		}
		/* Bounded: the 13th retry is refused. */
		assert_int_equal(iotp_backoff_next(&b, &d), 0);
		assert_int_equal(iotp_backoff_next(&b, &d), 0);
		iotp_backoff_reset(&b);
		assert_int_equal(iotp_backoff_next(&b, &d), 1);
		assert_true(d <= 100);
	}
}

static void test_full_jitter(void **state)
{
	struct iotp_backoff b;
	uint64_t sum = 0;
	uint32_t d, lo = UINT32_MAX, hi = 0, i, buckets[10];

	(void)state;
	memset(buckets, 0, sizeof(buckets));
	/* The fourth retry of a 125 ms base has a 1000 ms window. */
	iotp_backoff_init(&b, 125, 60000, 0, 42);
	for (i = 0; i < 20000; i++) {
		b.attempt = 3;
		assert_int_equal(iotp_backoff_next(&b, &d), 1);
		assert_true(d <= 1000);
		sum += d;
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
		buckets[d == 1000 ? 9 : d / 100]++;
	}
	assert_true(lo < 10);
	assert_true(hi > 990);
	assert_true(sum / 20000 > 480 && sum / 20000 < 520);
	/* Uniform: each tenth of the window gets about a tenth of the draws. */
	for (i = 0; i < 10; i++)
		assert_true(buckets[i] > 1700 && buckets[i] < 2300);
}

static void test_cap_no_overflow(void **state)
{
	struct iotp_backoff b;
	uint32_t d, i;

	(void)state;
	/* Far past 2^32: the window saturates at the cap, never wraps to 0. */
	iotp_backoff_init(&b, 1000, 30000, 0, 7);
	for (i = 0; i < 100; i++)
		assert_int_equal(iotp_backoff_next(&b, &d), 1);
	{
		uint32_t hi = 0;

		for (i = 0; i < 2000; i++) {
			assert_int_equal(iotp_backoff_next(&b, &d), 1);
			assert_true(d <= 30000);
			hi = d > hi ? d : hi;
		}
		assert_true(hi > 25000);
	}
	/* Unbounded means unbounded. */
	assert_int_equal(b.max_attempts, 0);
}

static void test_devices_differ(void **state)
{
	struct iotp_backoff a, b;
	uint32_t da, db, i, same = 0;

	(void)state;
	/* Seeded from the CSPRNG: two devices do not retry in lockstep. */
	iotp_backoff_init(&a, 1000, 1000, 0, 0);
	iotp_backoff_init(&b, 1000, 1000, 0, 0);
	for (i = 0; i < 50; i++) {
		iotp_backoff_next(&a, &da);
		iotp_backoff_next(&b, &db);
		same += da == db;
	}
	assert_true(same < 5);
}

const struct CMUnitTest th_backoff_tests[] = {
	cmocka_unit_test(test_windows_and_bound),
	cmocka_unit_test(test_full_jitter),
	cmocka_unit_test(test_cap_no_overflow),
	cmocka_unit_test(test_devices_differ),
};
const size_t th_backoff_count = sizeof(th_backoff_tests) / sizeof(th_backoff_tests[0]);
