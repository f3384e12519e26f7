/*
 * Exponential backoff with full jitter: retry n waits a uniformly random
 * time in [0, min(cap, base * 2^n)]. Full jitter (rather than "base * 2^n
 * plus a little noise") is what keeps a fleet that lost power together from
 * reconnecting in waves: the retries spread over the whole window.
 * The generator is a splitmix64 stream seeded from the CSPRNG, so each
 * device (and each simulated device) draws its own sequence.
 */
#include <stdint.h>

#include "common/util.h"
#include "device/dev.h"

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

void iotp_backoff_init(struct iotp_backoff *b, uint32_t base_ms, uint32_t cap_ms,
                       uint32_t max_attempts, uint64_t seed)
{
	b->base_ms = base_ms == 0 ? 1 : base_ms;
	b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
	b->max_attempts = max_attempts;
	b->attempt = 0;
	if (seed == 0 && util_random(&seed, sizeof(seed), NULL) != IOTP_OK)
		seed = (uint64_t)util_mono_ns();
	b->rng = seed;
}

void iotp_backoff_reset(struct iotp_backoff *b)
{
	b->attempt = 0;
}

int iotp_backoff_next(struct iotp_backoff *b, uint32_t *delay_ms)
{
	uint64_t ceiling = b->base_ms;
	uint32_t i;

	if (b->max_attempts != 0 && b->attempt >= b->max_attempts)
		return 0;
	/* base * 2^attempt, saturating at the cap without overflowing. */
	for (i = 0; i < b->attempt && ceiling < b->cap_ms; i++)
		ceiling <<= 1;
	if (ceiling > b->cap_ms)
		ceiling = b->cap_ms;
	if (b->attempt < UINT32_MAX)
		b->attempt++;
	/* The modulo bias over a 64-bit draw and a <= 32-bit range is < 2^-32. */
	*delay_ms = (uint32_t)(splitmix64(&b->rng) % (ceiling + 1));
	return 1;
}
