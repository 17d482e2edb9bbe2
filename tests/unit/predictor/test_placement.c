/*
 * test_placement.c - the placement model learns which regions come back,
 * its policy uses that, and the planner turns it into tier moves.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "predictor/placement.h"
#include "predictor/policy.h"

/* Workload: file 1 has 8 hot regions (64 chunks each) read every window,
 * and a scan that reads each chunk of fresh regions once. */
struct wl {
	uint64_t scan_next;
	uint64_t rng;
};

static uint64_t wl_next(struct wl *w, int *is_hot)
{
	w->rng = w->rng * 6364136223846793005ULL + 1442695040888963407ULL;
	if ((w->rng >> 60) < 8) { /* half hot */
		*is_hot = 1;
		return (w->rng >> 20) % (8 * 64);
	}
	*is_hot = 0;
	return 100000 + w->scan_next++;
}

static placer_t *make(uint32_t hidden)
{
	struct placer_config c;
	placer_t *pl;

	placer_config_default(&c);
	c.window = 256;
	c.horizon = 4;
	c.hidden = hidden;
	c.lr = 0.01f;
	assert_int_equal(placer_create(&c, &pl), 0);
	return pl;
}

static void train(placer_t *pl, placer_trainer_t *t, int steps)
{
	for (int s = 0; s < steps; s++)
		if (placer_take_batch(pl, t) > 0) {
			assert_true(placer_train_batch(t) >= 0);
			assert_int_equal(placer_publish(pl, t), 0);
		}
}

static void test_learns_hot_vs_scan(void **state)
{
	(void)state;
	placer_t *pl = make(8);
	placer_trainer_t *t;
	struct wl w = { 0, 5 };
	int hot;

	assert_int_equal(placer_trainer_create(pl, &t), 0);
	for (int i = 0; i < 256 * 300; i++) {
		uint64_t c = wl_next(&w, &hot);
		int rc = placer_observe(pl, 1, c, 0);
		assert_true(rc >= 0);
		if (rc == 1)
			train(pl, t, 4);
	}
	float ph = placer_probability(pl, 1, 3 * 64 + 5);
	/* the region the scan touched a few windows ago */
	float ps = placer_probability(pl, 1, 100000 + w.scan_next - 3 * 128);
	assert_true(ph > 0.9f);
	assert_true(ps < 0.3f);
	struct placer_stats st;
	placer_stats(pl, &st);
	assert_true(st.train_steps > 100);
	assert_true(st.rolling_loss < 0.3); /* chance would be ~0.69 */

	/* Ranking puts the 8 hot regions first. */
	struct placer_region_info ri[8];
	assert_int_equal(placer_rank(pl, ri, 8), 8);
	for (int i = 0; i < 8; i++) {
		assert_true(ri[i].chunk < 8 * 64);
		assert_int_equal(ri[i].file, 1);
		assert_int_equal(ri[i].nchunks, 64);
	}
	placer_trainer_destroy(t);
	placer_destroy(pl);
}

/* The learned policy against LRU on the same stream: the scan flushes LRU,
 * the model keeps the hot regions. */
static void test_policy_beats_lru(void **state)
{
	(void)state;
	placer_t *pl = make(8);
	placer_trainer_t *t;
	policy_t *gru, *lru;
	struct wl w = { 0, 9 };
	int hot;
	uint64_t mg = 0, ml = 0;

	assert_int_equal(placer_trainer_create(pl, &t), 0);
	assert_int_equal(placer_policy_create(pl, 600, &gru), 0);
	assert_int_equal(placer_policy_create(pl, 600, &lru), -EBUSY);
	assert_int_equal(policy_create(POLICY_LRU, 600, &lru), 0);
	for (int i = 0; i < 256 * 300; i++) {
		uint64_t c = wl_next(&w, &hot);
		uint64_t key = PRED_KEY(1, c);
		int rc = placer_observe(pl, 1, c, 0);
		if (rc == 1)
			train(pl, t, 2);
		int a = policy_access(gru, key, POLICY_NEVER);
		int b = policy_access(lru, key, POLICY_NEVER);
		assert_true(a >= 0 && b >= 0);
		if (i > 256 * 100) {
			mg += !a;
			ml += !b;
		}
		assert_true(policy_size(gru) <= 600);
	}
	/* Scan chunks always miss (half the stream); LRU also loses hot ones. */
	assert_true(mg < ml);
	assert_true((double)mg < 0.55 * (double)(256 * 200));
	policy_destroy(gru);
	policy_destroy(lru);
	placer_trainer_destroy(t);
	placer_destroy(pl);
}

static void test_plan(void **state)
{
	(void)state;
	placer_t *pl = make(4);
	placer_trainer_t *t;
	struct wl w = { 0, 11 };
	int hot;
	struct placer_move mv[64];

	assert_int_equal(placer_trainer_create(pl, &t), 0);
	for (int i = 0; i < 256 * 200; i++) {
		int rc = placer_observe(pl, 1, wl_next(&w, &hot), 0);
		if (rc == 1)
			train(pl, t, 4);
	}
	/* Tier 0 holds 4 regions, tier 1 holds 4, tier 2 the rest. */
	uint64_t caps[3] = { 4 * 64, 4 * 64, 1ULL << 40 };
	long n = placer_plan(pl, PLACER_RANK, caps, 3, 0.0f, mv, 64);
	assert_true(n >= 8);
	int to0 = 0, to1 = 0;
	for (long i = 0; i < n; i++) {
		if (mv[i].to == 0)
			to0++;
		if (mv[i].to == 1)
			to1++;
		if (mv[i].to < 2)
			assert_true(mv[i].chunk < 8 * 64); /* only hot regions go up */
		assert_int_equal(mv[i].from, 2);
	}
	assert_int_equal(to0, 4);
	assert_int_equal(to1, 4);
	/* Apply, then plan again: with hysteresis nothing moves. */
	for (long i = 0; i < n; i++)
		assert_int_equal(placer_set_tier(pl, mv[i].file, mv[i].chunk, mv[i].to), 0);
	assert_int_equal(placer_plan(pl, PLACER_RANK, caps, 3, 0.05f, mv, 64), 0);
	/* The move cap holds. */
	uint64_t small[3] = { 0, 0, 1ULL << 40 };
	n = placer_plan(pl, PLACER_RANK, small, 3, 0.0f, mv, 3);
	assert_int_equal(n, 3);
	for (long i = 0; i < n; i++)
		assert_int_equal(mv[i].to, 2);
	/* Threshold mode: hot regions have p >= 0.8, so they belong in tier 0
	 * when it has room; cold ones go to tier 3 (here the last, tier 2). */
	uint64_t big[3] = { 1ULL << 30, 1ULL << 30, 1ULL << 40 };
	n = placer_plan(pl, PLACER_THRESHOLDS, big, 3, 0.0f, mv, 64);
	assert_true(n > 0);
	for (long i = 0; i < n; i++) {
		if (mv[i].chunk < 8 * 64)
			assert_true(mv[i].to == 0 || mv[i].from == 0);
		if (mv[i].to == 0)
			assert_true(mv[i].p >= 0.8f);
	}
	assert_int_equal(placer_plan(pl, PLACER_RANK, caps, 0, 0.0f, mv, 64), -EINVAL);
	placer_trainer_destroy(t);
	placer_destroy(pl);
}

static void test_save_load(void **state)
{
	(void)state;
	placer_t *a = make(8), *b = make(8), *c = make(6);
	size_t len;
	char err[128];

	placer_save(a, NULL, 0, &len);
	void *buf = malloc(len);
	assert_int_equal(placer_save(a, buf, len, &len), 0);
	assert_int_equal(placer_load(b, NULL, buf, len, err, sizeof(err)), 0);
	assert_int_equal(placer_load(c, NULL, buf, len, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "shape"));
	free(buf);
	placer_destroy(a);
	placer_destroy(b);
	placer_destroy(c);
}

/* With max_regions, a long scan does not grow region state without bound,
 * and the hot regions (on the fast tier) are kept. */
static void test_forgets_cold_regions(void **state)
{
	(void)state;
	struct placer_config c;
	placer_t *pl;
	policy_t *pol;
	struct wl w = { 0, 21 };
	int hot;

	placer_config_default(&c);
	c.window = 256;
	c.horizon = 4;
	c.hidden = 4;
	c.max_regions = 200;
	assert_int_equal(placer_create(&c, &pl), 0);
	assert_int_equal(placer_policy_create(pl, 600, &pol), 0);
	for (int i = 0; i < 256 * 400; i++) {
		uint64_t ch = wl_next(&w, &hot);
		assert_true(placer_observe(pl, 1, ch, 0) >= 0);
		assert_true(policy_access(pol, PRED_KEY(1, ch), POLICY_NEVER) >= 0);
	}
	struct placer_stats st;
	placer_stats(pl, &st);
	/* The scan touched ~800 regions; at most the limit plus what arrives
	 * between sweeps (16 windows x 2 new regions) is kept. */
	assert_true(w.scan_next / 64 > 700);
	assert_true(st.forgotten > 400);
	assert_true(st.regions <= 200 + 16 * 4 + 8);
	/* the 8 hot regions (touched every window) are all still known */
	struct placer_region_info *ri = calloc(1000, sizeof(*ri));
	long n = placer_rank(pl, ri, 1000);
	assert_int_equal(n, (long)st.regions);
	int hot_kept = 0;
	for (long i = 0; i < n; i++)
		hot_kept += ri[i].chunk < 8 * 64;
	assert_int_equal(hot_kept, 8);
	free(ri);
	policy_destroy(pol);
	placer_destroy(pl);
}

static void test_bad_args(void **state)
{
	(void)state;
	struct placer_config c;
	placer_t *pl;

	placer_config_default(&c);
	c.region_shift = 7;
	assert_int_equal(placer_create(&c, &pl), -EINVAL);
	placer_config_default(&c);
	c.window = 0;
	assert_int_equal(placer_create(&c, &pl), -EINVAL);
	pl = make(4);
	assert_int_equal(placer_observe(pl, 1ULL << 28, 0, 0), -ERANGE);
	assert_int_equal(placer_observe(pl, 1, 1ULL << 36, 0), -ERANGE);
	placer_destroy(pl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_learns_hot_vs_scan),
		cmocka_unit_test(test_policy_beats_lru),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_forgets_cold_regions),
		cmocka_unit_test(test_bad_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
