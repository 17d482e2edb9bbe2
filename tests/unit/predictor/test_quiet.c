/*
 * test_quiet.c - the quiet-period forecaster finds the period of a bursty
 * load and forecasts the next quiet run where it really starts; with no
 * period (steady or random load) it falls back to persistence; a noisy tick
 * now and then does not lose the period.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "predictor/quiet.h"

#define BUSY 1000 /* ops in a busy tick, of 1 s */

/* Bursts of on ticks every period ticks, from phase 0. */
static int burst(uint64_t t, uint32_t period, uint32_t on)
{
	return t % period < on;
}

static void feed(quiet_t *q, uint64_t from, uint64_t to, uint32_t period, uint32_t on)
{
	for (uint64_t t = from; t < to; t++)
		quiet_tick(q, burst(t, period, on) ? BUSY : 3, 1.0);
}

static void test_finds_period_and_next_quiet_run(void **state)
{
	(void)state;
	quiet_t *q;
	struct quiet_forecast f;
	struct quiet_stats st;

	assert_int_equal(quiet_create(200, &q), 0);
	feed(q, 0, 203, 20, 8); /* the last tick, 202, is busy (202 % 20 = 2) */
	quiet_get_stats(q, &st);
	assert_int_equal(st.period, 20);
	quiet_forecast(q, 40, &f);
	assert_int_equal(f.period, 20);
	assert_int_equal(f.next_busy, 1);
	/* ticks 203..207 busy, 208..219 quiet: 6 ticks from now, 12 long */
	assert_int_equal(f.start, 6);
	assert_int_equal(f.len, 12);
	/* one-tick forecasts were right nearly always once the period was known */
	assert_true(st.correct >= st.scored - 30);
	quiet_destroy(q);
}

static void test_noise_keeps_period(void **state)
{
	(void)state;
	quiet_t *q;
	struct quiet_stats st;
	uint64_t s = 7;

	assert_int_equal(quiet_create(200, &q), 0);
	for (uint64_t t = 0; t < 400; t++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		int b = burst(t, 15, 5) ^ ((s >> 33) % 50 == 0); /* 2% of ticks flipped */
		quiet_tick(q, b ? BUSY : 0, 1.0);
	}
	quiet_get_stats(q, &st);
	assert_int_equal(st.period, 15);
	assert_true(st.period_agreement > 0.9);
	quiet_destroy(q);
}

static void test_no_period(void **state)
{
	(void)state;
	quiet_t *q;
	struct quiet_forecast f;
	struct quiet_stats st;
	uint64_t s = 11;

	/* steady load: always busy, no quiet run forecast */
	assert_int_equal(quiet_create(200, &q), 0);
	feed(q, 0, 100, 10, 10);
	quiet_forecast(q, 50, &f);
	assert_int_equal(f.period, 0);
	assert_int_equal(f.next_busy, 1);
	assert_int_equal(f.start, QUIET_NONE);
	quiet_destroy(q);

	/* random load: no period; persistence from the last tick */
	assert_int_equal(quiet_create(200, &q), 0);
	int last = 0;
	for (int t = 0; t < 300; t++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		last = (int)((s >> 40) & 1);
		quiet_tick(q, last ? BUSY : 0, 1.0);
	}
	quiet_get_stats(q, &st);
	assert_int_equal(st.period, 0);
	quiet_forecast(q, 10, &f);
	assert_int_equal(f.next_busy, last);
	assert_int_equal(f.start, last ? QUIET_NONE : 1);
	quiet_destroy(q);

	/* nothing seen: quiet */
	assert_int_equal(quiet_create(200, &q), 0);
	quiet_forecast(q, 10, &f);
	assert_int_equal(f.start, 1);
	quiet_destroy(q);
	assert_int_equal(quiet_create(0, &q), -EINVAL);
}

static void test_busy_measure(void **state)
{
	(void)state;
	quiet_t *q;

	assert_int_equal(quiet_create(200, &q), 0);
	assert_false(quiet_is_busy(q, 40, 0.2));  /* 200/s: not above */
	assert_true(quiet_is_busy(q, 41, 0.2));
	assert_false(quiet_is_busy(q, 41, 0));
	quiet_destroy(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_finds_period_and_next_quiet_run),
		cmocka_unit_test(test_noise_keeps_period),
		cmocka_unit_test(test_no_period),
		cmocka_unit_test(test_busy_measure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
