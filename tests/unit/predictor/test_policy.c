/*
 * test_policy.c - the classical policies and Belady on sequences whose
 * right answers are known by hand, plus invariants every policy must keep.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "predictor/policy.h"

static const enum policy_kind online[] = {
	POLICY_LRU, POLICY_ARC, POLICY_S3FIFO, POLICY_LIRS, POLICY_LFU,
	POLICY_SIEVE, POLICY_S3FIFO1, POLICY_TINYLFU, POLICY_MIX,
};
#define NONLINE (sizeof(online) / sizeof(online[0]))

/* Next-use array for Belady, computed by brute force. */
static void next_uses(const uint64_t *seq, size_t n, uint64_t *next)
{
	for (size_t i = 0; i < n; i++) {
		next[i] = POLICY_NEVER;
		for (size_t j = i + 1; j < n; j++)
			if (seq[j] == seq[i]) {
				next[i] = j;
				break;
			}
	}
}

static int misses(enum policy_kind k, uint64_t cap, const uint64_t *seq, size_t n)
{
	policy_t *p;
	uint64_t *next = malloc(n * sizeof(*next));
	int m = 0;

	next_uses(seq, n, next);
	assert_int_equal(policy_create(k, cap, &p), 0);
	for (size_t i = 0; i < n; i++) {
		int h = policy_access(p, seq[i], next[i]);
		assert_true(h == 0 || h == 1);
		m += !h;
		assert_true(policy_size(p) <= cap);
	}
	policy_destroy(p);
	free(next);
	return m;
}

/* The textbook reference string: 1 2 3 4 1 2 5 1 2 3 4 5 with 3 frames:
 * LRU misses 10, OPT misses 7. */
static void test_reference_string(void **state)
{
	(void)state;
	static const uint64_t s[] = { 1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5 };
	assert_int_equal(misses(POLICY_LRU, 3, s, 12), 10);
	assert_int_equal(misses(POLICY_BELADY, 3, s, 12), 7);
	/* and with 4 frames: LRU 8, OPT 6 */
	assert_int_equal(misses(POLICY_LRU, 4, s, 12), 8);
	assert_int_equal(misses(POLICY_BELADY, 4, s, 12), 6);
}

/* Belady is optimal: no online policy may beat it on any sequence. */
static void test_belady_is_a_bound(void **state)
{
	(void)state;
	uint64_t seq[4000], rng = 12345;

	for (size_t i = 0; i < 4000; i++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		/* skewed: small keys much more often */
		uint64_t r = rng >> 33;
		seq[i] = (r % 7 == 0) ? r % 500 : r % 40;
	}
	int opt = misses(POLICY_BELADY, 32, seq, 4000);
	for (size_t k = 0; k < NONLINE; k++)
		assert_true(misses(online[k], 32, seq, 4000) >= opt);
}

/* A hot set accessed in a loop, interrupted by a long one-time scan: the
 * scan-resistant policies keep the hot set, LRU loses it. */
static void test_scan_resistance(void **state)
{
	(void)state;
	size_t n = 0;
	uint64_t *seq = malloc(20000 * sizeof(*seq));

	for (int round = 0; round < 10; round++) {
		for (int rep = 0; rep < 3; rep++)
			for (uint64_t k = 0; k < 50; k++)
				seq[n++] = k;
		for (uint64_t k = 0; k < 500; k++)
			seq[n++] = 100000 + round * 1000 + k;
	}
	int lru = misses(POLICY_LRU, 100, seq, n);
	int arc = misses(POLICY_ARC, 100, seq, n);
	int s3 = misses(POLICY_S3FIFO, 100, seq, n);
	int lirs = misses(POLICY_LIRS, 100, seq, n);
	/* LRU: the hot set's first pass misses every round (10 * 50). */
	assert_true(lru >= 10 * 50 + 5000);
	assert_true(arc < lru);
	assert_true(s3 < lru);
	assert_true(lirs < lru);
	assert_true(misses(POLICY_SIEVE, 100, seq, n) < lru);
	assert_true(misses(POLICY_S3FIFO1, 100, seq, n) < lru);
	assert_true(misses(POLICY_TINYLFU, 100, seq, n) < lru);
	assert_true(misses(POLICY_MIX, 100, seq, n) < lru);
	free(seq);
}

/* Invariants: hit <=> contains() before the access; victims() lists every
 * resident key once; size never exceeds capacity. */
static void test_invariants(void **state)
{
	(void)state;
	uint64_t rng = 77;
	uint64_t *v = malloc(64 * sizeof(*v));

	for (size_t k = 0; k < NONLINE; k++) {
		policy_t *p;
		assert_int_equal(policy_create(online[k], 64, &p), 0);
		for (int i = 0; i < 20000; i++) {
			rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
			uint64_t key = (rng >> 40) % 300;
			int before = policy_contains(p, key);
			int h = policy_access(p, key, POLICY_NEVER);
			assert_int_equal(h, before);
			assert_true(policy_contains(p, key) || online[k] == POLICY_LEARNED);
			assert_true(policy_size(p) <= 64);
		}
		size_t n = policy_victims(p, v, 64);
		assert_int_equal(n, policy_size(p));
		for (size_t i = 0; i < n; i++) {
			assert_true(policy_contains(p, v[i]));
			for (size_t j = i + 1; j < n; j++)
				assert_true(v[i] != v[j]);
		}
		policy_destroy(p);
	}
	free(v);
}

static void test_lru_order_and_place(void **state)
{
	(void)state;
	policy_t *p;
	uint64_t v[8], keys[8], caps[2] = { 2, 10 };
	uint8_t tiers[8];

	assert_int_equal(policy_create(POLICY_LRU, 4, &p), 0);
	for (uint64_t k = 1; k <= 4; k++)
		assert_int_equal(policy_access(p, k, POLICY_NEVER), 0);
	assert_int_equal(policy_access(p, 1, POLICY_NEVER), 1);
	/* recency now: 1 4 3 2 -> victims 2 3 4 1 */
	assert_int_equal(policy_victims(p, v, 8), 4);
	assert_true(v[0] == 2 && v[1] == 3 && v[2] == 4 && v[3] == 1);
	assert_int_equal(policy_place(p, caps, 2, keys, tiers, 8), 4);
	assert_true(keys[0] == 1 && tiers[0] == 0);
	assert_true(keys[1] == 4 && tiers[1] == 0);
	assert_true(keys[2] == 3 && tiers[2] == 1);
	assert_true(keys[3] == 2 && tiers[3] == 1);
	/* 5 evicts 2 */
	assert_int_equal(policy_access(p, 5, POLICY_NEVER), 0);
	assert_false(policy_contains(p, 2));
	policy_destroy(p);
}

static void test_errors_and_names(void **state)
{
	(void)state;
	policy_t *p;
	enum policy_kind k;

	assert_int_equal(policy_create(POLICY_LEARNED, 10, &p), -EINVAL);
	assert_int_equal(policy_create((enum policy_kind)99, 10, &p), -EINVAL);
	assert_int_equal(policy_kind_parse("s3fifo", &k), 0);
	assert_int_equal(k, POLICY_S3FIFO);
	assert_int_equal(policy_kind_parse("nope", &k), -EINVAL);
	assert_string_equal(policy_kind_name(POLICY_LIRS), "lirs");
	assert_int_equal(policy_create(POLICY_ARC, 0, &p), 0);
	assert_int_equal(policy_access(p, 1, POLICY_NEVER), 0);
	assert_int_equal(policy_access(p, 1, POLICY_NEVER), 0);
	assert_int_equal(policy_access(p, UINT64_MAX, POLICY_NEVER), -EINVAL);
	policy_destroy(p);
}

/* Decayed LFU forgets: a key hot long ago loses to a key hot recently. */
static void test_lfu_decay(void **state)
{
	(void)state;
	policy_t *p;

	assert_int_equal(policy_create(POLICY_LFU, 2, &p), 0);
	for (int i = 0; i < 20; i++)
		policy_access(p, 1, POLICY_NEVER);
	/* 400 accesses later (25 half-lives of 8 * 2) key 1's count is ~0 */
	for (int i = 0; i < 400; i++)
		policy_access(p, 2, POLICY_NEVER);
	policy_access(p, 3, POLICY_NEVER); /* must evict 1, not 2 */
	assert_false(policy_contains(p, 1));
	assert_true(policy_contains(p, 2));
	policy_destroy(p);
}

/* SIEVE as the NSDI'24 paper's pseudocode states it, on a plain array
 * (index 0 = tail, oldest): the reference the policy must agree with on
 * every access of a random skewed sequence. */
static int sieve_reference(const uint64_t *seq, size_t n, size_t cap)
{
	uint64_t q[64];
	uint8_t vis[64];
	size_t len = 0, hand = 0; /* hand: index into q, 'len' = start at tail */
	int m = 0, have_hand = 0;

	for (size_t i = 0; i < n; i++) {
		size_t j = 0;
		while (j < len && q[j] != seq[i])
			j++;
		if (j < len) {
			vis[j] = 1;
			continue;
		}
		m++;
		if (len == cap) {
			size_t h = have_hand ? hand : 0;
			while (vis[h]) {
				vis[h] = 0;
				h = h + 1 < len ? h + 1 : 0;
			}
			/* evict q[h]; the hand moves to its newer neighbour, which
			 * shifts down into slot h */
			memmove(q + h, q + h + 1, (len - h - 1) * sizeof(*q));
			memmove(vis + h, vis + h + 1, len - h - 1);
			len--;
			have_hand = h < len;
			hand = h;
		}
		q[len] = seq[i];
		vis[len++] = 0;
	}
	return m;
}

static void test_sieve_matches_reference(void **state)
{
	(void)state;
	uint64_t seq[6000], rng = 99;

	for (size_t i = 0; i < 6000; i++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		uint64_t r = rng >> 33;
		seq[i] = (r % 5 == 0) ? r % 300 : r % 30;
	}
	for (size_t cap = 1; cap <= 48; cap += 7)
		assert_int_equal(misses(POLICY_SIEVE, cap, seq, 6000),
				 sieve_reference(seq, 6000, cap));
	/* By hand, capacity 3: 1 2 3, hit 1, then 4 evicts 2 (1 is visited and
	 * spared, and stays at the tail, unlike CLOCK), then 5 evicts 3. */
	policy_t *p;
	static const uint64_t s[] = { 1, 2, 3, 1, 4, 5 };
	assert_int_equal(policy_create(POLICY_SIEVE, 3, &p), 0);
	for (size_t i = 0; i < 6; i++)
		policy_access(p, s[i], POLICY_NEVER);
	assert_true(policy_contains(p, 1) && policy_contains(p, 4) && policy_contains(p, 5));
	uint64_t v[3];
	assert_int_equal(policy_victims(p, v, 3), 3);
	/* the hand sits at 4 (the newer neighbour of 3): 4, 5, then 1 whose bit
	 * was cleared when 4 came in */
	assert_true(v[0] == 4 && v[1] == 5 && v[2] == 1);
	policy_destroy(p);
}

/* 1-bit S3-FIFO promotes a key hit once in the small queue; the 2-bit one
 * needs two hits. */
static void test_s3fifo_one_bit(void **state)
{
	(void)state;
	policy_t *one, *two;

	assert_int_equal(policy_create(POLICY_S3FIFO1, 20, &one), 0);
	assert_int_equal(policy_create(POLICY_S3FIFO, 20, &two), 0);
	/* fill the cache */
	for (uint64_t k = 100; k < 140; k++) {
		policy_access(one, k, POLICY_NEVER);
		policy_access(two, k, POLICY_NEVER);
	}
	/* key 1 enters the small queue and is hit once, then a scan of new keys
	 * pushes it to the small queue's end: to main, or to the ghost */
	policy_access(one, 1, POLICY_NEVER);
	policy_access(two, 1, POLICY_NEVER);
	policy_access(one, 1, POLICY_NEVER);
	policy_access(two, 1, POLICY_NEVER);
	for (uint64_t k = 1000; k < 1030; k++) {
		policy_access(one, k, POLICY_NEVER);
		policy_access(two, k, POLICY_NEVER);
	}
	assert_true(policy_contains(one, 1));
	assert_false(policy_contains(two, 1));
	policy_destroy(one);
	policy_destroy(two);
}

/* W-TinyLFU's admission: hot keys in main (more than protected holds, so
 * some sit in probation) are not displaced by a stream of one-time keys,
 * which only churn through the window; and a key that became frequent gets
 * in. */
static void test_tinylfu_admission(void **state)
{
	(void)state;
	policy_t *p;

	assert_int_equal(policy_create(POLICY_TINYLFU, 200, &p), 0);
	for (int r = 0; r < 20; r++)
		for (uint64_t k = 0; k < 190; k++)
			policy_access(p, k, POLICY_NEVER);
	for (uint64_t k = 10000; k < 10400; k++)
		policy_access(p, k, POLICY_NEVER);
	int kept = 0;
	for (uint64_t k = 0; k < 190; k++)
		kept += policy_contains(p, k);
	assert_true(kept >= 175); /* always admitting keeps at most 158 */
	/* one-timers live in the 2-key window, or got in while main had room
	 * or by sketch collisions */
	int scan = 0;
	for (uint64_t k = 10000; k < 10400; k++)
		scan += policy_contains(p, k);
	assert_true(scan <= 40);
	/* key 5000, accessed often between scans, wins a place in main */
	for (int r = 0; r < 30; r++) {
		policy_access(p, 5000, POLICY_NEVER);
		for (uint64_t k = 0; k < 3; k++)
			policy_access(p, 20000 + r * 3 + k, POLICY_NEVER);
	}
	for (uint64_t k = 30000; k < 30010; k++)
		policy_access(p, k, POLICY_NEVER);
	assert_true(policy_contains(p, 5000));
	policy_destroy(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_string),
		cmocka_unit_test(test_belady_is_a_bound),
		cmocka_unit_test(test_scan_resistance),
		cmocka_unit_test(test_invariants),
		cmocka_unit_test(test_lru_order_and_place),
		cmocka_unit_test(test_errors_and_names),
		cmocka_unit_test(test_lfu_decay),
		cmocka_unit_test(test_sieve_matches_reference),
		cmocka_unit_test(test_s3fifo_one_bit),
		cmocka_unit_test(test_tinylfu_admission),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
