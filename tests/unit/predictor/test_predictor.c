/*
 * test_predictor.c - the context the daemon uses: recording, shadow
 * comparison, prefetch candidates, the training thread, persistence, and
 * the anomaly event on a real trace with an injected pattern change.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "predictor/predictor.h"
#include "predictor/trace.h"

static predictor_t *make(uint32_t hidden, int prefetch)
{
	struct predictor_config c;
	predictor_t *p;

	predictor_config_default(&c);
	c.fast_capacity = 1000;
	c.hidden = hidden;
	c.prefetch = prefetch;
	assert_int_equal(predictor_create(&c, &p), 0);
	return p;
}

static void test_record_prefetch_and_shadows(void **state)
{
	(void)state;
	predictor_t *p = make(8, 1);
	struct predictor_run r[8];
	uint8_t hits[8];
	long n = 0;

	/* A sequential reader of 8-chunk requests: after a few requests the
	 * prefetcher proposes the next 8 chunks. */
	for (uint64_t i = 0; i < 100; i++) {
		struct predictor_access a = { 3, 5000 + 8 * i, 8, 0, i * 100, hits };
		assert_true(predictor_record(p, &a) >= 0);
		n = predictor_prefetch(p, r, 8);
	}
	assert_int_equal(n, 1);
	assert_int_equal(r[0].file, 3);
	assert_int_equal(r[0].chunk, 5000 + 8 * 100);
	assert_int_equal(r[0].nchunks, 8);
	/* A loop over 400 chunks fits the fast tier: everything hits. */
	int h = 0;
	for (int round = 0; round < 30; round++)
		for (uint64_t c = 0; c < 400; c += 4) {
			struct predictor_access a = { 4, c, 4, 1, 0, hits };
			h = predictor_record(p, &a);
			assert_true(h >= 0);
		}
	assert_int_equal(h, 4);
	assert_int_equal(hits[0] + hits[1] + hits[2] + hits[3], 4);
	struct predictor_stats s;
	predictor_stats(p, &s);
	assert_true(s.windows > 0);
	assert_true(s.gru_better == 0 || s.gru_better == 1);
	assert_true(s.shadow_best_hit_ratio > 0.5);
	assert_true(s.model_bytes > 0);
	struct predictor_access bad = { 1ULL << 28, 0, 1, 0, 0, NULL };
	assert_int_equal(predictor_record(p, &bad), -ERANGE);
	predictor_destroy(p);
}

static void test_save_load(void **state)
{
	(void)state;
	predictor_t *a = make(8, 1), *b = make(8, 1), *c = make(6, 1), *d = make(8, 0);
	void *buf;
	size_t len;
	char err[200];

	for (uint64_t i = 0; i < 5000; i++) {
		struct predictor_access x = { 1, (i * 7) % 3000, 1, 0, i, NULL };
		assert_true(predictor_record(a, &x) >= 0);
	}
	assert_int_equal(predictor_save(a, &buf, &len), 0);
	assert_int_equal(predictor_load(b, buf, len, err, sizeof(err)), 0);
	void *buf2;
	size_t len2;
	assert_int_equal(predictor_save(b, &buf2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	free(buf2);
	/* another hidden size: refused, with the reason */
	assert_int_equal(predictor_load(c, buf, len, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "shape"));
	/* no prefetch model on this side */
	assert_int_equal(predictor_load(d, buf, len, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "prefetch"));
	/* another version */
	((uint8_t *)buf)[4] = 9;
	assert_int_equal(predictor_load(b, buf, len, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "version 9"));
	((uint8_t *)buf)[4] = 1;
	((uint8_t *)buf)[len / 2] ^= 0x40;
	assert_int_equal(predictor_load(b, buf, len, err, sizeof(err)), -EBADMSG);
	free(buf);
	predictor_destroy(a);
	predictor_destroy(b);
	predictor_destroy(c);
	predictor_destroy(d);
}

static int thread_named(const char *name)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int found = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], comm[64] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && strncmp(comm, name, strlen(name)) == 0)
			found = 1;
		fclose(f);
	}
	closedir(d);
	return found;
}

/* After pthread_join the kernel may list the thread for a moment longer
 * (its task is released after the join's wake-up): 0 once it has gone,
 * within 2 s. */
static int thread_gone(const char *name)
{
	for (int i = 0; i < 200 && thread_named(name) == 1; i++)
		usleep(10000);
	return thread_named(name);
}

static void test_training_thread(void **state)
{
	(void)state;
	struct predictor_config c;
	predictor_t *p;
	struct predictor_stats s;

	predictor_config_default(&c);
	c.fast_capacity = 1000;
	c.cpu_budget = 0.5;
	assert_int_equal(predictor_create(&c, &p), 0);
	assert_int_equal(predictor_start(p), 0);
	assert_int_equal(predictor_start(p), -EALREADY);
	assert_int_equal(thread_named("silt-predict"), 1);
	uint64_t rng = 1;
	for (int round = 0; round < 200; round++) {
		for (int i = 0; i < 1000; i++) {
			rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
			struct predictor_access a = { 1, (rng >> 33) % 5000, 1, 0, 0, NULL };
			assert_true(predictor_record(p, &a) >= 0);
		}
		predictor_stats(p, &s);
		if (s.train_steps > 20)
			break;
		usleep(2000);
	}
	predictor_stats(p, &s);
	assert_true(s.train_steps > 20);
	assert_true(s.train_cpu_ms > 0);
	/* Save, load and synchronous training while the thread trains. */
	for (int i = 0; i < 20; i++) {
		void *buf;
		size_t len;
		char err[128];
		assert_int_equal(predictor_save(p, &buf, &len), 0);
		assert_int_equal(predictor_load(p, buf, len, err, sizeof(err)), 0);
		free(buf);
		assert_int_equal(predictor_train(p, 1), 0);
		for (int k = 0; k < 500; k++) {
			rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
			struct predictor_access a = { 1, (rng >> 33) % 5000, 1, 0, 0, NULL };
			assert_true(predictor_record(p, &a) >= 0);
		}
	}
	predictor_stop(p);
	assert_int_equal(thread_gone("silt-predict"), 0);
	predictor_stop(p); /* idempotent */
	assert_int_equal(predictor_start(p), 0);
	predictor_destroy(p); /* stops it */
	assert_int_equal(thread_gone("silt-predict"), 0);
}

/* Inline training is deterministic: two runs agree bit for bit. */
static void test_deterministic(void **state)
{
	(void)state;
	void *b1, *b2;
	size_t l1, l2;

	for (int run = 0; run < 2; run++) {
		predictor_t *p = make(8, 1);
		for (uint64_t i = 0; i < 20000; i++) {
			struct predictor_access a = { 2, (i * i) % 7001, 2, i & 1, i, NULL };
			assert_true(predictor_record(p, &a) >= 0);
		}
		assert_int_equal(predictor_save(p, run ? &b2 : &b1, run ? &l2 : &l1), 0);
		predictor_destroy(p);
	}
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	free(b1);
	free(b2);
}

/*
 * A real trace (cloudphysics_vm_io) with a pattern change injected after
 * request CUT: the VM starts looping over 48000 blocks it never touched, a
 * scan in appearance that comes back within the horizon.  The placement
 * model is confidently wrong about it, so an anomaly must follow within
 * WITHIN requests; the same trace without the change stays quiet over the
 * same stretch (its own earlier pattern changes do raise events, which is
 * right, and are not counted).
 */
#define CUT 60000
#define WITHIN 6000

static long first_event_after(const struct trace *t, int inject)
{
	struct predictor_config c;
	predictor_t *p;
	long first = -1;

	predictor_config_default(&c);
	c.fast_capacity = 26921; /* 10% of the trace's footprint */
	assert_int_equal(predictor_create(&c, &p), 0);
	for (size_t i = 0; i < CUT + WITHIN && i < t->nreq; i++) {
		struct trace_req q = t->req[i];
		if (inject && i >= CUT) {
			q.offset = (1ULL << 40) + ((i % 3000) * 16) * 4096ULL;
			q.len = 65536;
		}
		uint64_t b0 = q.offset >> 12, b1 = (q.offset + q.len - 1) >> 12;
		struct predictor_access a = { q.vol, b0, (uint32_t)(b1 - b0 + 1), q.op,
					      q.ts_us, NULL };
		assert_true(predictor_record(p, &a) >= 0);
		struct predictor_run r[8];
		predictor_prefetch(p, r, 8);
		struct predictor_event ev;
		while (predictor_poll_event(p, &ev))
			if (ev.type == PRED_EVENT_PLACEMENT_ANOMALY && i >= CUT && first < 0)
				first = (long)i;
	}
	predictor_destroy(p);
	return first;
}

static void test_anomaly_on_real_trace(void **state)
{
	(void)state;
	const char *dir = getenv("SILTFS_TRACE_DIR");
	char path[4096];
	struct trace *t;

	snprintf(path, sizeof(path), "%s/cloudphysics_vm_io.csv.gz", dir ? dir : "../shared/traces");
	if (access(path, R_OK) != 0)
		skip();
	assert_int_equal(trace_load(path, CUT + WITHIN, &t), 0);
	assert_int_equal(first_event_after(t, 0), -1);
	long at = first_event_after(t, 1);
	assert_true(at >= CUT && at < CUT + WITHIN);
	trace_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_prefetch_and_shadows),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_training_thread),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_anomaly_on_real_trace),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
