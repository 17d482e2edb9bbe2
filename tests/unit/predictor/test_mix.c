/*
 * test_mix.c - the GRU-weighted mixture of experts: it follows the best
 * expert on a stream where one expert is clearly best, switches between
 * experts when phases change, refuses bad configurations, and is
 * deterministic.  Its sampled shadows (SHARDS-style): a sampled expert's
 * hits, scaled back by the rate, are close to the full expert's on a skewed
 * synthetic stream; sampled, the mixture still finds and follows the best
 * expert (the real tier takes its rule); a budget sets the rate, and bad
 * rates and budgets are refused with a reason.
 */
#include <errno.h>
#include <math.h>
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

/* ---- sampled expert shadows (SHARDS-style, mix.h) -------------------------- */

/* A skewed stream over 'keys' keys: key ~ keys * u^3 (a few hot keys, a
 * long tail), with a scan of new keys every so often. */
static uint64_t *skewed(size_t n, uint64_t keys, uint64_t seed)
{
	uint64_t *seq = malloc(n * sizeof(*seq));

	assert_non_null(seq);
	for (size_t i = 0; i < n; i++) {
		double u = (double)(lcg(&seed) % 1000000) / 1e6;
		seq[i] = lcg(&seed) % 10 ? (uint64_t)((double)keys * u * u * u) :
					   1000000 + i;
	}
	return seq;
}

/* Every default expert, sampled at 10%: its hits scaled back are within
 * 0.02 of the full expert's hit ratio. */
static void test_scaled_hits_match_full(void **state)
{
	(void)state;
	size_t n = 4000 * 256;
	uint64_t cap = 5000, *seq = skewed(n, 50000, 3);
	struct mix_config c;
	struct mix_stats st;
	policy_t *p;

	mix_config_default(&c);
	c.sample = 0.1f;
	assert_int_equal(mix_create(&c, cap, &p), 0);
	misses_of(p, seq, n);
	mix_get_stats(p, &st);
	policy_destroy(p);
	assert_int_equal(st.shadow_capacity, 500);
	assert_true(fabs(st.sample_rate - 0.1) < 1e-6);
	for (uint32_t e = 0; e < st.nexperts; e++) {
		assert_int_equal(policy_create(st.expert[e], cap, &p), 0);
		double full = (double)(n - misses_of(p, seq, n)) / (double)n;
		double est = (double)st.expert_hits[e] / (double)n;
		policy_destroy(p);
		print_message("%s: full %.4f sampled %.4f\n", policy_kind_name(st.expert[e]),
			      full, est);
		assert_true(fabs(full - est) < 0.02);
	}
	free(seq);
}

/* The loop of test_mix.c, scaled up so that a 10% shadow has 1000 keys: a
 * loop of 15000 keys through 10000 slots.  LRU never hits, LIRS keeps
 * most; the sampled mixture must find LIRS and run its rule. */
static void test_sampled_follows_best_expert(void **state)
{
	(void)state;
	size_t n = 15000 * 20;
	uint64_t *seq = malloc(n * sizeof(*seq)), cap = 10000;
	struct mix_config c;
	struct mix_stats st;
	policy_t *p;

	for (size_t i = 0; i < n; i++)
		seq[i] = i % 15000;
	assert_int_equal(policy_create(POLICY_LIRS, cap, &p), 0);
	uint64_t lirs = n - misses_of(p, seq, n);
	policy_destroy(p);
	mix_config_default(&c);
	c.experts = (1u << POLICY_LRU) | (1u << POLICY_LIRS);
	c.sample = 0.1f;
	assert_int_equal(mix_create(&c, cap, &p), 0);
	uint64_t mix = n - misses_of(p, seq, n);
	assert_true(policy_size(p) <= cap);
	mix_get_stats(p, &st);
	policy_destroy(p);
	print_message("lirs %llu mix %llu rebuilds %llu\n", (unsigned long long)lirs,
		      (unsigned long long)mix, (unsigned long long)st.rebuilds);
	assert_true(lirs > n / 2);
	assert_int_equal(st.leader_kind, POLICY_LIRS);
	assert_true(st.rebuilds >= 1);
	assert_true(mix + n / 10 >= lirs);
	free(seq);
}

static void test_budget_sets_rate(void **state)
{
	(void)state;
	struct mix_config c;
	struct mix_stats st;
	policy_t *p;
	uint64_t cap = 10000;

	mix_config_default(&c);
	/* The GRU and its ring first, then shadows at 5% of full size. */
	uint64_t fixed = mix_fixed_bytes(&c);
	assert_true(fixed > 10000 && fixed < 200000);
	c.state_budget = fixed + (uint64_t)(4 * cap * MIX_SHADOW_KEY_BYTES / 20);
	assert_null(mix_config_error(&c, cap));
	assert_true(fabs(mix_sample_rate(&c, cap) - 0.05) < 1e-9);
	assert_int_equal(mix_create(&c, cap, &p), 0);
	mix_get_stats(p, &st);
	assert_int_equal(st.shadow_capacity, 500);
	policy_destroy(p);
	/* A budget above the full shadows' cost: the unsampled mode. */
	c.state_budget = fixed + 4 * cap * MIX_SHADOW_KEY_BYTES * 2;
	assert_int_equal(mix_create(&c, cap, &p), 0);
	mix_get_stats(p, &st);
	assert_true(st.sample_rate == 1.0);
	assert_int_equal(st.shadow_capacity, cap);
	policy_destroy(p);
}

static void test_bad_rate_and_budget_refused(void **state)
{
	(void)state;
	struct mix_config c;
	policy_t *p;
	const float bad[] = { 0.0f, -0.1f, 1.5f, NAN };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mix_config_default(&c);
		c.sample = bad[i];
		assert_non_null(strstr(mix_config_error(&c, 10000), "sample"));
		assert_int_equal(mix_create(&c, 10000, &p), -EINVAL);
	}
	/* Shadows of fewer than MIX_MIN_SHADOW keys. */
	mix_config_default(&c);
	c.sample = 0.005f;
	assert_non_null(mix_config_error(&c, 10000));
	assert_int_equal(mix_create(&c, 10000, &p), -EINVAL);
	/* Below what the GRU and its ring need, or leaving shadows too small. */
	mix_config_default(&c);
	c.state_budget = 1000;
	assert_non_null(strstr(mix_config_error(&c, 10000), "state_budget: not more"));
	assert_int_equal(mix_create(&c, 10000, &p), -EINVAL);
	c.state_budget = mix_fixed_bytes(&c) + 1000;
	assert_non_null(strstr(mix_config_error(&c, 10000), "state_budget: too small"));
	assert_int_equal(mix_create(&c, 10000, &p), -EINVAL);
	/* Both given. */
	c.state_budget = 1000000;
	c.sample = 0.5f;
	assert_non_null(strstr(mix_config_error(&c, 10000), "not both"));
	assert_int_equal(mix_create(&c, 10000, &p), -EINVAL);
}

/* Same seed, same stream: same misses in the sampled mode too. */
static void test_sampled_deterministic(void **state)
{
	(void)state;
	size_t n = 200000;
	uint64_t *seq = skewed(n, 20000, 11);
	struct mix_config c;
	policy_t *p;
	uint64_t h[2];

	mix_config_default(&c);
	c.sample = 0.2f;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(mix_create(&c, 2000, &p), 0);
		h[i] = misses_of(p, seq, n);
		policy_destroy(p);
	}
	assert_int_equal(h[0], h[1]);
	free(seq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_follows_best_expert),
		cmocka_unit_test(test_switches_between_phases),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_deterministic_and_trains),
		cmocka_unit_test(test_scaled_hits_match_full),
		cmocka_unit_test(test_sampled_follows_best_expert),
		cmocka_unit_test(test_budget_sets_rate),
		cmocka_unit_test(test_bad_rate_and_budget_refused),
		cmocka_unit_test(test_sampled_deterministic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
