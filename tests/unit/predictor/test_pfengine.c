/*
 * test_pfengine.c - the prefetch engines: readahead's growing window,
 * Leap's majority stride and its window fed by used prefetches, the GRU
 * engine's training, and the names.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "predictor/pfengine.h"

static pf_engine_t *make(enum pfe_kind k)
{
	struct pfe_config c;
	pf_engine_t *e;

	pfe_config_default(&c, k);
	assert_int_equal(pfe_create(&c, &e), 0);
	return e;
}

/* Sequential reads of 2 chunks: the first continuation opens a window of
 * 8 right after it; each time the reads reach a window, the next one
 * follows it, twice as large, until 32 (Linux's 128 KiB of 4 KiB). */
static void test_readahead_window_grows(void **state)
{
	(void)state;
	pf_engine_t *e = make(PFE_READAHEAD);
	struct prefetch_run r[4];
	uint32_t sizes[16];
	uint64_t starts[16];
	int n = 0;

	assert_int_equal(pfe_observe(e, 1, 100, 2, 0, 0), 0); /* first: no history */
	for (uint64_t c = 102; c < 400 && n < 16; c += 2) {
		int k = pfe_observe(e, 1, c, 2, 0, 0);
		assert_true(k >= 0 && k <= 1);
		if (k) {
			assert_int_equal(pfe_take(e, r, 4), 1);
			sizes[n] = r[0].nchunks;
			starts[n++] = r[0].chunk;
		}
	}
	assert_true(n >= 4);
	assert_int_equal(sizes[0], 8);
	assert_int_equal(starts[0], 104);
	assert_int_equal(sizes[1], 16);
	assert_int_equal(starts[1], 112);
	assert_int_equal(sizes[2], 32);
	assert_int_equal(starts[2], 128);
	assert_int_equal(sizes[3], 32);
	assert_int_equal(starts[3], 160);
	/* a jump elsewhere closes the window; writes never read ahead */
	assert_int_equal(pfe_observe(e, 1, 9000, 2, 0, 0), 0);
	assert_int_equal(pfe_observe(e, 1, 9002, 2, 1, 0), 0);
	pfe_destroy(e);
}

/* Stride +5 requests of 1 chunk: after 4 deltas Leap finds the trend and
 * prefetches along it; the window doubles with the prefetches used and
 * halves when they are not. */
static void test_leap_majority_stride(void **state)
{
	(void)state;
	pf_engine_t *e = make(PFE_LEAP);
	struct prefetch_run r[16];
	uint64_t c = 1000;

	for (int i = 0; i < 4; i++, c += 5)
		assert_int_equal(pfe_observe(e, 7, c, 1, 0, 0), 0);
	/* 4 deltas of +5: trend, window 1 (nothing used yet) */
	assert_int_equal(pfe_observe(e, 7, c, 1, 0, 0), 1);
	assert_int_equal(pfe_take(e, r, 16), 1);
	assert_int_equal(r[0].chunk, c + 5);
	/* 3 prefetches used: window 2^ceil(log2(4)) = 4 */
	for (int i = 0; i < 3; i++)
		pfe_used(e, 7);
	c += 5;
	assert_int_equal(pfe_observe(e, 7, c, 1, 0, 0), 4);
	assert_int_equal(pfe_take(e, r, 16), 4);
	for (int k = 0; k < 4; k++)
		assert_int_equal(r[k].chunk, c + 5 * (uint64_t)(k + 1));
	/* none used: halves to 2 */
	c += 5;
	assert_int_equal(pfe_observe(e, 7, c, 1, 0, 0), 2);
	pfe_take(e, r, 16);
	/* the window never exceeds 8 */
	for (int i = 0; i < 100; i++)
		pfe_used(e, 7);
	c += 5;
	assert_int_equal(pfe_observe(e, 7, c, 1, 0, 0), 8);
	pfe_take(e, r, 16);
	/* random deltas: no majority, no prefetch */
	uint64_t rng = 3;
	int any = 0;
	for (int i = 0; i < 64; i++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		any += pfe_observe(e, 8, (rng >> 33) % 1000000, 1, 0, 0);
	}
	assert_true(any <= 2);
	pfe_destroy(e);
}

/* The GRU engine predicts the alternating +50/0 pattern (its majority
 * fallback cannot) after training inline. */
static void test_gru_engine_trains(void **state)
{
	(void)state;
	struct pfe_config c;
	pf_engine_t *e;
	struct prefetch_run r[8];
	struct pfe_stats st;
	uint64_t chunk = 0;
	int right = 0;

	pfe_config_default(&c, PFE_GRU);
	c.train_interval = 4;
	assert_int_equal(pfe_create(&c, &e), 0);
	for (int i = 0; i < 12000; i++) {
		uint64_t d = (i % 2) ? 50 : 0;
		chunk += d;
		int n = pfe_observe(e, 1, chunk, 1, 0, (uint64_t)i * 100);
		assert_true(n >= 0);
		size_t k = pfe_take(e, r, 8);
		uint64_t next = chunk + 1 + ((i + 1) % 2 ? 50 : 0);
		if (i >= 11000 && k && r[0].chunk == next)
			right++;
		chunk += 1;
	}
	pfe_stats(e, &st);
	assert_true(st.train_steps > 1000);
	assert_true(st.train_cpu_ns > 0);
	assert_true(right > 900);
	pfe_destroy(e);
}

static void test_names_and_errors(void **state)
{
	(void)state;
	enum pfe_kind k;
	struct pfe_config c;
	pf_engine_t *e;

	assert_int_equal(pfe_kind_parse("leap", &k), 0);
	assert_int_equal(k, PFE_LEAP);
	assert_int_equal(pfe_kind_parse("ra", &k), 0);
	assert_int_equal(k, PFE_READAHEAD);
	assert_int_equal(pfe_kind_parse("sideways", &k), -EINVAL);
	assert_string_equal(pfe_kind_name(PFE_GRU), "gru");
	pfe_config_default(&c, PFE_READAHEAD);
	c.max_window = 0;
	assert_int_equal(pfe_create(&c, &e), -EINVAL);
	pfe_config_default(&c, PFE_NONE);
	assert_int_equal(pfe_create(&c, &e), 0);
	assert_int_equal(pfe_observe(e, 1, 1, 1, 0, 0), 0);
	pfe_destroy(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readahead_window_grows),
		cmocka_unit_test(test_leap_majority_stride),
		cmocka_unit_test(test_gru_engine_trains),
		cmocka_unit_test(test_names_and_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
