/*
 * test_anomaly.c - the loss detector fires once on a sustained jump, not on
 * noise, not on a single spike.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "predictor/anomaly.h"

static double noise(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (double)(*s >> 11) / 9007199254740992.0 - 0.5;
}

static void test_detects_change_once(void **state)
{
	(void)state;
	struct anomaly_config c;
	anomaly_t *a;
	uint64_t s = 3;
	int first = -1, events = 0;

	anomaly_config_default(&c);
	assert_int_equal(anomaly_create(&c, &a), 0);
	for (int w = 0; w < 400; w++) {
		double loss = w < 200 ? 0.3 + 0.05 * noise(&s) : 1.2 + 0.05 * noise(&s);
		if (anomaly_update(a, loss)) {
			events++;
			if (first < 0)
				first = w;
		}
	}
	assert_int_equal(events, 1);
	assert_true(first >= 200 && first < 200 + (int)c.windows + 1);
	assert_int_equal(anomaly_events(a), 1);
	assert_true(anomaly_baseline(a) > 1.0); /* relearned the new level */
	anomaly_destroy(a);
}

static void test_quiet_on_noise_and_spikes(void **state)
{
	(void)state;
	struct anomaly_config c;
	anomaly_t *a;
	uint64_t s = 9;

	anomaly_config_default(&c);
	assert_int_equal(anomaly_create(&c, &a), 0);
	for (int w = 0; w < 2000; w++) {
		double loss = 0.5 + 0.1 * noise(&s);
		if (w % 100 == 50)
			loss = 5.0; /* one bad window is not a pattern change */
		assert_int_equal(anomaly_update(a, loss), 0);
	}
	assert_int_equal(anomaly_events(a), 0);
	c.ratio = 0.5;
	assert_int_equal(anomaly_create(&c, &a), -EINVAL);
	anomaly_destroy(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detects_change_once),
		cmocka_unit_test(test_quiet_on_noise_and_spikes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
