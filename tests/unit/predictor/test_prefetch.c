/*
 * test_prefetch.c - the prefetcher on streams with known futures: plain
 * sequential (the heuristic suffices) and an alternating stride (the
 * majority heuristic is right half the time, the GRU learns it fully).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "predictor/prefetch.h"

static prefetcher_t *make(prefetch_trainer_t **t)
{
	struct prefetch_config c;
	prefetcher_t *pf;

	prefetch_config_default(&c);
	c.lr = 0.01f;
	assert_int_equal(prefetcher_create(&c, &pf), 0);
	if (t)
		assert_int_equal(prefetch_trainer_create(pf, t), 0);
	return pf;
}

static void test_sequential(void **state)
{
	(void)state;
	prefetcher_t *pf = make(NULL);
	struct prefetch_run r[4];
	uint64_t c = 1000;

	for (int i = 0; i < 20; i++, c += 4)
		assert_true(prefetcher_observe(pf, 7, c, 4, 0, i * 100) >= 0);
	/* after the request at c - 4: the next one starts at c, 4 chunks */
	assert_int_equal(prefetcher_take(pf, r, 4), 1);
	assert_int_equal(r[0].file, 7);
	assert_int_equal(r[0].chunk, c);
	assert_int_equal(r[0].nchunks, 4);
	assert_true(r[0].confidence >= 0.5f);
	assert_int_equal(prefetcher_take(pf, r, 4), 0); /* taken */
	struct prefetch_stats s;
	prefetcher_stats(pf, &s);
	assert_int_equal(s.streams, 1);
	assert_true(s.heuristic_accuracy > 0.1);
	prefetcher_destroy(pf);
}

/* Deltas alternate +50, +0 (skip a gap, then read on): the majority of the
 * last 8 deltas is a tie, right half the time at best; the GRU sees the
 * previous delta and gets it right every time once trained. */
static void test_alternating_stride_needs_gru(void **state)
{
	(void)state;
	prefetch_trainer_t *t;
	prefetcher_t *pf = make(&t);
	uint64_t c = 0;
	struct prefetch_stats s;

	for (int i = 0; i < 6000; i++) {
		assert_true(prefetcher_observe(pf, 1, c, 2, 0, (uint64_t)i * 50) >= 0);
		c += 2 + ((i & 1) ? 0 : 50);
		if (i % 16 == 15 && prefetch_take_batch(pf, t) > 0) {
			assert_true(prefetch_train_batch(t) >= 0);
			assert_int_equal(prefetch_publish(pf, t), 0);
		}
	}
	prefetcher_stats(pf, &s);
	assert_true(s.gru_accuracy > 0.9);
	assert_true(s.heuristic_accuracy < 0.6);
	assert_int_equal(s.using_gru, 1);
	assert_true(s.train_steps > 100);
	/* and the prediction is the right run: the last request was i = 5999
	 * (odd, so the next delta is +50 minus nothing: c already advanced) */
	struct prefetch_run r[2];
	assert_int_equal(prefetcher_take(pf, r, 2), 1);
	assert_int_equal(r[0].chunk, c);
	prefetch_trainer_destroy(t);
	prefetcher_destroy(pf);
}

static void test_save_load(void **state)
{
	(void)state;
	prefetcher_t *a = make(NULL), *b = make(NULL);
	struct prefetch_config c;
	prefetcher_t *d;
	size_t len;
	char err[128];

	for (int i = 0; i < 50; i++)
		prefetcher_observe(a, 1, (uint64_t)i * 3, 1, 0, 0); /* delta +2 */
	prefetcher_save(a, NULL, 0, &len);
	void *buf = malloc(len);
	assert_int_equal(prefetcher_save(a, buf, len, &len), 0);
	assert_int_equal(prefetcher_load(b, NULL, buf, len, err, sizeof(err)), 0);
	prefetch_config_default(&c);
	c.vocab = 8;
	assert_int_equal(prefetcher_create(&c, &d), 0);
	assert_int_equal(prefetcher_load(d, NULL, buf, len, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "vocabulary"));
	((char *)buf)[0] = 'X';
	assert_int_equal(prefetcher_load(b, NULL, buf, len, err, sizeof(err)), -EBADMSG);
	free(buf);
	prefetcher_destroy(a);
	prefetcher_destroy(b);
	prefetcher_destroy(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sequential),
		cmocka_unit_test(test_alternating_stride_needs_gru),
		cmocka_unit_test(test_save_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
