/*
 * test_mix.c - the GRU-weighted mixture of experts: it follows the best
 * expert on a stream where one expert is clearly best, switches between
 * experts when phases change, refuses bad configurations, and is
 * deterministic.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "predictor/mix.h"
#include "predictor/policy.h"

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

static uint64_t misses_of(policy_t *p, const uint64_t *seq, size_t n)
{
	uint64_t m = 0;

	for (size_t i = 0; i < n; i++) {
		int h = policy_access(p, seq[i], POLICY_NEVER);
		assert_true(h == 0 || h == 1);
		m += !h;
	}
	return m;
}

static uint64_t misses_kind(enum policy_kind k, uint64_t cap, const uint64_t *seq, size_t n)
{
	policy_t *p;

	assert_int_equal(policy_create(k, cap, &p), 0);
	uint64_t m = misses_of(p, seq, n);
	policy_destroy(p);
	return m;
}

static uint64_t misses_mix(const struct mix_config *c, uint64_t cap, const uint64_t *seq,
			   size_t n, struct mix_stats *st)
{
	policy_t *p;

	assert_int_equal(mix_create(c, cap, &p), 0);
	uint64_t m = misses_of(p, seq, n);
	assert_true(policy_size(p) <= cap);
	if (st)
		mix_get_stats(p, st);
	policy_destroy(p);
	return m;
}

/* A loop of 150 keys through 100 slots: LRU never hits, LIRS keeps 99 of
 * them.  The mixture of LRU and LIRS must do (almost) as well as LIRS. */
static void test_follows_best_expert(void **state)
{
	(void)state;
	size_t n = 60000;
	uint64_t *seq = malloc(n * sizeof(*seq));
	struct mix_config c;
	struct mix_stats st;

	for (size_t i = 0; i < n; i++)
		seq[i] = i % 150;
	mix_config_default(&c);
	c.experts = (1u << POLICY_LRU) | (1u << POLICY_LIRS);
	c.window = 256;
	uint64_t lru = misses_kind(POLICY_LRU, 100, seq, n);
	uint64_t lirs = misses_kind(POLICY_LIRS, 100, seq, n);
	uint64_t mix = misses_mix(&c, 100, seq, n, &st);
	assert_int_equal(lru, n);
	assert_true(lirs < n / 2);
	assert_true(mix <= lirs + n / 50);
	assert_int_equal(st.leader_kind, POLICY_LIRS);
	assert_true(st.promotions > 0);
	free(seq);
}

/* Phases that favour different experts.  Even phases: a hot set of 150
 * keys gets half the accesses, the rest are one-time keys (decayed LFU
 * keeps the hot set, LRU lets the one-timers flush it).  Odd phases: a new
 * working set of 190 keys, cycled (LRU holds it at once; LFU still
 * holds the last hot set, whose counts take many half-lives to fade).
 * Over the whole stream the mixture must beat both experts. */
static void test_switches_between_phases(void **state)
{
	(void)state;
	size_t n = 0, cap = 200;
	uint64_t *seq = malloc(400000 * sizeof(*seq)), rng = 5;
	struct mix_config c;
	struct mix_stats st;

	for (int phase = 0; phase < 8; phase++) {
		uint64_t base = (uint64_t)phase * 1000000;
		for (int k = 0; k < 40000; k++) {
			if (phase % 2 == 1)
				seq[n++] = base + (uint64_t)(k % 190);
			else if (lcg(&rng) % 2)
				seq[n++] = base + lcg(&rng) % 150;
			else
				seq[n++] = base + 500000 + (uint64_t)k;
		}
	}
	mix_config_default(&c);
	c.experts = (1u << POLICY_LRU) | (1u << POLICY_LFU);
	c.window = 512;
	uint64_t lru = misses_kind(POLICY_LRU, cap, seq, n);
	uint64_t lfu = misses_kind(POLICY_LFU, cap, seq, n);
	uint64_t mix = misses_mix(&c, cap, seq, n, &st);
	print_message("lru %llu lfu %llu mix %llu switches %llu\n", (unsigned long long)lru,
		      (unsigned long long)lfu, (unsigned long long)mix,
		      (unsigned long long)st.switches);
	assert_true(mix < lru);
	assert_true(mix < lfu);
	assert_true(st.switches >= 4);
	free(seq);
}

static void test_config_errors(void **state)
{
	(void)state;
	struct mix_config c;
	policy_t *p;

	mix_config_default(&c);
	c.experts = 0;
	assert_int_equal(mix_create(&c, 100, &p), -EINVAL);
	c.experts = (1u << POLICY_LRU) | (1u << POLICY_BELADY);
	assert_int_equal(mix_create(&c, 100, &p), -EINVAL);
	c.experts = (1u << POLICY_LRU) | (1u << POLICY_MIX);
	assert_int_equal(mix_create(&c, 100, &p), -EINVAL);
	mix_config_default(&c);
	c.horizon = 100000;
	assert_int_equal(mix_create(&c, 100, &p), -EINVAL);
	mix_config_default(&c);
	c.temperature = 0;
	assert_int_equal(mix_create(&c, 100, &p), -EINVAL);
	/* the default build through policy_create */
	assert_int_equal(policy_create(POLICY_MIX, 100, &p), 0);
	assert_int_equal(policy_kind_of(p), POLICY_MIX);
	struct mix_stats st;
	mix_get_stats(p, &st);
	assert_int_equal(st.nexperts, 4);
	assert_true(st.model_bytes > 0);
	policy_destroy(p);
}

/* Same seed, same stream: same misses, same training (the GRU trains). */
static void test_deterministic_and_trains(void **state)
{
	(void)state;
	size_t n = 50000;
	uint64_t *seq = malloc(n * sizeof(*seq)), rng = 9;
	struct mix_config c;
	struct mix_stats a, b;

	for (size_t i = 0; i < n; i++)
		seq[i] = lcg(&rng) % 7 ? lcg(&rng) % 300 : lcg(&rng) % 5000;
	mix_config_default(&c);
	c.window = 256;
	c.train_interval = 1024;
	uint64_t m1 = misses_mix(&c, 150, seq, n, &a);
	uint64_t m2 = misses_mix(&c, 150, seq, n, &b);
	assert_int_equal(m1, m2);
	assert_int_equal(a.switches, b.switches);
	assert_true(a.train_steps > 10);
	assert_true(a.windows == n / 256);
	free(seq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_follows_best_expert),
		cmocka_unit_test(test_switches_between_phases),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_deterministic_and_trains),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
