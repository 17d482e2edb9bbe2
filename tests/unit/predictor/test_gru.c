/*
 * test_gru.c - the GRU layer: gradients against finite differences, learning
 * small known sequences, Adam, and the serialised format's refusals.
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

#include "predictor/gru.h"

/* Central differences in double precision of the summed loss, against the
 * analytic gradient, for every parameter. */
static double grad_error(enum gru_loss loss, int corrupt)
{
	struct gru_shape s = { .n_in = 3, .n_hidden = 5, .n_out = 4, .loss = loss };
	gru_t *g;
	gru_work_t *w;
	const uint32_t T = 6;
	float x[6 * 3], tgt[6 * 4], h0[5];
	uint64_t seed = 7;

	assert_int_equal(gru_create(&s, 42, &g), 0);
	assert_int_equal(gru_work_create(g, T, &w), 0);
	for (size_t i = 0; i < sizeof(x) / sizeof(*x); i++)
		x[i] = (float)((seed = seed * 6364136223846793005ULL + 1) >> 40) / 16777216.0f - 0.5f;
	for (int i = 0; i < 5; i++)
		h0[i] = 0.1f * (float)(i - 2);
	for (uint32_t t = 0; t < T; t++) {
		if (loss == GRU_LOSS_BCE) {
			for (int o = 0; o < 4; o++)
				tgt[t * 4 + o] = (t + o) % 3 == 0 ? -1.0f : (float)((t * o) & 1);
		} else {
			tgt[t] = t == 2 ? -1.0f : (float)(t % 4);
		}
	}
	double l0;
	uint32_t cnt;
	assert_int_equal(gru_accumulate(g, w, h0, x, tgt, T, &l0, &cnt), 0);
	assert_true(cnt > 0);
	size_t np = gru_param_count(g);
	float *grad = malloc(np * sizeof(float));
	memcpy(grad, gru_work_grad(w), np * sizeof(float));
	if (corrupt) /* a deliberately wrong gradient must be caught */
		grad[np / 2] += 0.05f + 0.5f * fabsf(grad[np / 2]);
	float *p = gru_params(g);
	double worst = 0;
	for (size_t i = 0; i < np; i++) {
		const float eps = 1e-2f;
		float keep = p[i];
		double lp, lm;
		p[i] = keep + eps;
		gru_work_zero(w);
		gru_accumulate(g, w, h0, x, tgt, T, &lp, NULL);
		p[i] = keep - eps;
		gru_work_zero(w);
		gru_accumulate(g, w, h0, x, tgt, T, &lm, NULL);
		p[i] = keep;
		double num = (lp - lm) / (2.0 * eps);
		double err = fabs(num - grad[i]) / fmax(1e-2, fabs(num) + fabs(grad[i]));
		if (err > worst)
			worst = err;
	}
	free(grad);
	gru_work_destroy(w);
	gru_destroy(g);
	return worst;
}

/* float forward passes: a few per cent relative error at most; a wrong
 * gradient entry shows up as a much larger one. */
static void test_gradcheck_bce(void **state)
{
	(void)state;
	assert_true(grad_error(GRU_LOSS_BCE, 0) < 0.02);
	assert_true(grad_error(GRU_LOSS_BCE, 1) > 0.1);
}

static void test_gradcheck_softmax(void **state)
{
	(void)state;
	assert_true(grad_error(GRU_LOSS_SOFTMAX, 0) < 0.02);
	assert_true(grad_error(GRU_LOSS_SOFTMAX, 1) > 0.1);
}

/* A gradient that is wrong must be caught by the check: corrupt one weight's
 * effect (by reading a different sequence) and see the mismatch. */
static void test_gradcheck_detects_error(void **state)
{
	(void)state;
	struct gru_shape s = { .n_in = 2, .n_hidden = 3, .n_out = 1, .loss = GRU_LOSS_BCE };
	gru_t *g;
	gru_work_t *w;
	float x[4] = { 1, 0, 0, 1 }, x2[4] = { 0, 1, 1, 0 }, tgt[2] = { 1, 0 };

	assert_int_equal(gru_create(&s, 3, &g), 0);
	assert_int_equal(gru_work_create(g, 2, &w), 0);
	gru_accumulate(g, w, NULL, x, tgt, 2, NULL, NULL);
	float g0 = gru_work_grad(w)[0];
	gru_work_zero(w);
	gru_accumulate(g, w, NULL, x2, tgt, 2, NULL, NULL);
	/* The first input weight sees x[0] = 1 vs x2[0] = 0 at step 0. */
	assert_true(fabsf(g0 - gru_work_grad(w)[0]) > 1e-6f);
	gru_work_destroy(w);
	gru_destroy(g);
}

/* Learn to predict the next symbol of a repeating sequence 0 1 2 3 2 1 ...:
 * needs memory (after 2 comes 3 or 1 depending on the direction). */
static void test_learns_sequence(void **state)
{
	(void)state;
	static const int seq[] = { 0, 1, 2, 3, 2, 1 };
	const uint32_t T = 24;
	struct gru_shape s = { .n_in = 4, .n_hidden = 12, .n_out = 4, .loss = GRU_LOSS_SOFTMAX };
	gru_t *g;
	gru_work_t *w;
	float x[24 * 4], tgt[24];
	double first = 0, last = 0;

	assert_int_equal(gru_create(&s, 1, &g), 0);
	assert_int_equal(gru_work_create(g, T, &w), 0);
	for (int it = 0; it < 400; it++) {
		int off = it % 6;
		memset(x, 0, sizeof(x));
		for (uint32_t t = 0; t < T; t++) {
			x[t * 4 + seq[(off + t) % 6]] = 1;
			tgt[t] = (float)seq[(off + t + 1) % 6];
		}
		double l;
		uint32_t c;
		assert_int_equal(gru_accumulate(g, w, NULL, x, tgt, T, &l, &c), 0);
		gru_adam_step(g, w, 0.02f, c);
		if (it < 6)
			first += l / c;
		if (it >= 394)
			last += l / c;
	}
	/* Chance level is ln 4 = 1.39 per step. */
	assert_true(first / 6 > 0.9);
	assert_true(last / 6 < 0.15);

	/* And inference with gru_step agrees: feed the sequence, check argmax
	 * after a warm-up of one period. */
	float h[12] = { 0 }, y[4], in[4];
	int right = 0;
	for (int t = 0; t < 30; t++) {
		memset(in, 0, sizeof(in));
		in[seq[t % 6]] = 1;
		gru_step(g, in, h, h, y);
		int best = 0;
		for (int o = 1; o < 4; o++)
			if (y[o] > y[best])
				best = o;
		if (t >= 6 && best == seq[(t + 1) % 6])
			right++;
	}
	assert_true(right >= 23); /* of 24 */
	gru_work_destroy(w);
	gru_destroy(g);
}

/* BCE: learn "was the input 1 two steps ago" (a delay line). */
static void test_learns_delay(void **state)
{
	(void)state;
	const uint32_t T = 20;
	struct gru_shape s = { .n_in = 1, .n_hidden = 8, .n_out = 1, .loss = GRU_LOSS_BCE };
	gru_t *g;
	gru_work_t *w;
	float x[20], tgt[20];
	uint64_t rng = 99;
	double last = 0;

	assert_int_equal(gru_create(&s, 5, &g), 0);
	assert_int_equal(gru_work_create(g, T, &w), 0);
	for (int it = 0; it < 600; it++) {
		for (uint32_t t = 0; t < T; t++) {
			rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
			x[t] = (float)((rng >> 33) & 1);
			tgt[t] = t >= 2 ? x[t - 2] : -1.0f;
		}
		double l;
		uint32_t c;
		gru_accumulate(g, w, NULL, x, tgt, T, &l, &c);
		gru_adam_step(g, w, 0.03f, c);
		if (it >= 580)
			last += l / c;
	}
	assert_true(last / 20 < 0.1); /* chance: ln 2 = 0.69 */
	gru_work_destroy(w);
	gru_destroy(g);
}

static void test_serialise(void **state)
{
	(void)state;
	struct gru_shape s = { .n_in = 3, .n_hidden = 4, .n_out = 2, .loss = GRU_LOSS_BCE };
	gru_t *a, *b, *c;
	size_t len;
	char err[160];

	assert_int_equal(gru_create(&s, 1, &a), 0);
	assert_int_equal(gru_create(&s, 2, &b), 0);
	assert_int_equal(gru_save(a, NULL, 0, &len), -ENOSPC);
	uint8_t *buf = malloc(len);
	assert_int_equal(gru_save(a, buf, len, &len), 0);
	assert_memory_not_equal(gru_params(a), gru_params(b), gru_param_count(a) * 4);
	assert_int_equal(gru_load(b, buf, len, err, sizeof(err)), 0);
	assert_memory_equal(gru_params(a), gru_params(b), gru_param_count(a) * 4);

	/* Another shape is refused, and b is left alone. */
	struct gru_shape s2 = s;
	s2.n_hidden = 5;
	assert_int_equal(gru_create(&s2, 1, &c), 0);
	assert_int_equal(gru_load(c, buf, len, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "shape"));

	/* Another version is refused. */
	buf[4] = 2;
	assert_int_equal(gru_load(b, buf, len, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "version 2"));
	buf[4] = 1;
	/* A flipped bit is caught by the checksum. */
	buf[30] ^= 1;
	assert_int_equal(gru_load(b, buf, len, err, sizeof(err)), -EBADMSG);
	buf[30] ^= 1;
	/* Truncated. */
	assert_int_equal(gru_load(b, buf, len - 1, err, sizeof(err)), -EBADMSG);
	assert_int_equal(gru_load(b, buf, 3, NULL, 0), -EBADMSG);
	free(buf);
	gru_destroy(a);
	gru_destroy(b);
	gru_destroy(c);
}

static void test_bad_shapes(void **state)
{
	(void)state;
	gru_t *g;
	gru_work_t *w;
	struct gru_shape s = { .n_in = 0, .n_hidden = 4, .n_out = 1, .loss = GRU_LOSS_BCE };

	assert_int_equal(gru_create(&s, 1, &g), -EINVAL);
	s.n_in = 2;
	s.loss = 0;
	assert_int_equal(gru_create(&s, 1, &g), -EINVAL);
	s.loss = GRU_LOSS_BCE;
	assert_int_equal(gru_create(&s, 1, &g), 0);
	assert_int_equal(gru_work_create(g, 0, &w), -EINVAL);
	assert_int_equal(gru_work_create(g, 4, &w), 0);
	float x[10] = { 0 }, t[5] = { 0 };
	assert_int_equal(gru_accumulate(g, w, NULL, x, t, 5, NULL, NULL), -EINVAL);
	gru_work_destroy(w);
	gru_destroy(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gradcheck_bce),
		cmocka_unit_test(test_gradcheck_softmax),
		cmocka_unit_test(test_gradcheck_detects_error),
		cmocka_unit_test(test_learns_sequence),
		cmocka_unit_test(test_learns_delay),
		cmocka_unit_test(test_serialise),
		cmocka_unit_test(test_bad_shapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
