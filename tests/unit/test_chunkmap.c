/* The chunk map on its own (tiers/chunkmap.h): the table through
 * transactions, what each pin mode waits for and what it does not, the
 * file gate, generations, and the rule that a thread about to wait first
 * sends the asynchronous I/O it holds (the QD32 deadlock of issue 7). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs/meta/meta.h"
#include "tiers/aio.h"
#include "tiers/chunkmap.h"
#include "tiers/layout.h"
#include "tiers/tier.h"
#include "utils/util.h"

#define UUID "00000000-0000-4000-8000-000000000001"

struct fixture {
	char dir[64];
	struct silt_meta *meta;
	struct silt_aio *aio;
	struct silt_tier *tier;
	struct silt_tier *by_id[SILT_MAX_TIERS];
	struct layout layout;
	struct silt_cmap *cm;
	struct cmap_file *cf;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct silt_tier_conf tc = { .name = "t0", .cls = SILT_CLASS_NVME, .capacity = 64u << 20,
				     .high_wm = 100, .low_wm = 100 };
	char err[512], mdir[128];

	strcpy(f->dir, "/tmp/silt-cmap-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(tc.path, sizeof(tc.path), "%s/t0", f->dir);
	snprintf(mdir, sizeof(mdir), "%s/meta", f->dir);
	assert_int_equal(mkdir(tc.path, 0700), 0);
	assert_int_equal(tier_format(&tc, UUID, "unit"), 0);
	assert_int_equal(tier_open(&tc, 0, UUID, 65536, 0, &f->tier, err, sizeof(err)), 0);
	assert_int_equal(meta_open(mdir, META_CREATE, &f->meta, err, sizeof(err)), 0);
	assert_int_equal(silt_aio_start(64, &f->aio), 0);
	f->by_id[0] = f->tier;
	layout_init(&f->layout, 65536);
	struct cmap_conf cc = { .meta = f->meta, .aio = f->aio, .layout = &f->layout,
				.tier_by_id = f->by_id };
	assert_int_equal(cmap_open(&cc, &f->cm), 0);
	assert_non_null(f->cf = cmap_file_new(f->cm, 42));
	cmap_file_set_empty(f->cf);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	cmap_file_free(f->cm, f->cf);
	cmap_close(f->cm);
	silt_aio_stop(f->aio);
	meta_close(f->meta);
	tier_close(f->tier);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Commit a transaction on its own batch and publish it. */
static void set_home(struct fixture *f, uint64_t k, int tid)
{
	struct meta_batch *b = meta_batch_new();
	struct cmap_txn t;
	struct chunk_rec cr = { .tier = (uint8_t)tid };

	cmap_txn_begin(f->cm, &t, f->cf, b);
	assert_int_equal(cmap_txn_set(&t, k, &cr), 0);
	assert_int_equal(meta_commit(f->meta, b, 0), 0);
	cmap_txn_publish(&t);
	cmap_txn_end(&t);
	meta_batch_free(b);
}

static void test_table_through_txns(void **state)
{
	struct fixture *f = *state;
	struct meta_batch *b;
	struct cmap_txn t;

	assert_int_equal(cmap_get(f->cf, 5), 0);
	assert_int_equal(cmap_next_mapped(f->cf, 0), UINT64_MAX);
	assert_int_equal(tier_reserve(f->tier, 0), 0);
	set_home(f, 5, 0);
	assert_int_equal(tier_reserve(f->tier, 0), 0);
	set_home(f, 1ull << 30, 0); /* forces the top array to grow */
	assert_int_equal(cm_tier(cmap_get(f->cf, 5)), 0);
	assert_int_equal(cmap_get(f->cf, 6), 0);
	assert_int_equal(cmap_next_mapped(f->cf, 0), 5);
	assert_int_equal(cmap_next_mapped(f->cf, 6), 1ull << 30);
	assert_int_equal(cmap_last_mapped(f->cf), 1ull << 30);

	/* a clear counts the mapped chunks it drops and gives their space back */
	struct tier_stats st;
	tier_get_stats(f->tier, &st);
	assert_int_equal(st.chunks, 2);
	b = meta_batch_new();
	cmap_txn_begin(f->cm, &t, f->cf, b);
	assert_int_equal(cmap_txn_clear(&t, 6, UINT64_MAX), 0);
	assert_int_equal(t.mapped, -1);
	/* nothing is visible before publish */
	assert_int_equal(cmap_last_mapped(f->cf), 1ull << 30);
	assert_int_equal(meta_commit(f->meta, b, 0), 0);
	cmap_txn_publish(&t);
	cmap_txn_end(&t);
	meta_batch_free(b);
	assert_int_equal(cmap_last_mapped(f->cf), 5);
	tier_get_stats(f->tier, &st);
	assert_int_equal(st.chunks, 1);

	/* and the store agrees: a fresh file loads what was published */
	struct cmap_file *cf2 = cmap_file_new(f->cm, 42);
	assert_int_equal(cmap_file_load(f->cm, cf2), 0);
	assert_int_equal(cm_tier(cmap_get(cf2, 5)), 0);
	assert_int_equal(cmap_next_mapped(cf2, 6), UINT64_MAX);
	cmap_file_free(f->cm, cf2);
}

/* ---- a second thread that pins, and reports when it got it ---- */

struct pinner {
	struct fixture *f;
	uint64_t k0, k1;
	enum cmap_pin_mode mode;
	struct cmap_pin pin;
	atomic_int got;
	pthread_t th;
};

static void *pin_thread(void *arg)
{
	struct pinner *p = arg;
	assert_int_equal(cmap_pin(p->f->cm, p->f->cf, p->k0, p->k1, p->mode, &p->pin), 0);
	atomic_store(&p->got, 1);
	return NULL;
}

static void start_pinner(struct pinner *p, struct fixture *f, uint64_t k0, uint64_t k1,
			 enum cmap_pin_mode mode)
{
	*p = (struct pinner){ .f = f, .k0 = k0, .k1 = k1, .mode = mode };
	assert_int_equal(pthread_create(&p->th, NULL, pin_thread, p), 0);
}

/* Whether the pinner got its pin within ms milliseconds. */
static int got_within(struct pinner *p, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (atomic_load(&p->got))
			return 1;
		usleep(1000);
	}
	return atomic_load(&p->got);
}

static void finish_pinner(struct pinner *p)
{
	pthread_join(p->th, NULL);
	cmap_unpin(p->f->cm, &p->pin);
}

static void test_pin_modes(void **state)
{
	struct fixture *f = *state;
	struct cmap_pin a;
	struct pinner p;

	/* shared pins share */
	assert_int_equal(cmap_pin(f->cm, f->cf, 0, 0, CMAP_READ, &a), 0);
	start_pinner(&p, f, 0, 0, CMAP_WRITE);
	assert_true(got_within(&p, 2000));
	finish_pinner(&p);

	/* an exclusive pin waits for the shared one, of that chunk only */
	start_pinner(&p, f, 0, 0, CMAP_EXCL);
	assert_false(got_within(&p, 100));
	struct pinner other;
	start_pinner(&other, f, 1, 3, CMAP_EXCL);
	assert_true(got_within(&other, 2000));
	finish_pinner(&other);
	cmap_unpin(f->cm, &a);
	assert_true(got_within(&p, 2000));

	/* and keeps new shared ones out until it goes */
	struct pinner reader;
	start_pinner(&reader, f, 0, 0, CMAP_READ);
	assert_false(got_within(&reader, 100));
	finish_pinner(&p);
	assert_true(got_within(&reader, 2000));
	finish_pinner(&reader);

	/* ranges beyond what a pin holds are refused, not truncated */
	assert_int_equal(cmap_pin(f->cm, f->cf, 0, CMAP_PIN_MAX, CMAP_READ, &a), -E2BIG);
}

static void test_generations(void **state)
{
	struct fixture *f = *state;
	struct cmap_watch w;
	struct cmap_pin p;
	uint64_t g0, g;

	cmap_watch(f->cm, f->cf, 7, &w);
	assert_int_equal(cmap_watch_gen(f->cm, &w, &g0), 0);
	/* reads and a move's own switch leave it alone */
	assert_int_equal(cmap_pin(f->cm, f->cf, 7, 7, CMAP_READ, &p), 0);
	cmap_unpin(f->cm, &p);
	assert_int_equal(cmap_pin(f->cm, f->cf, 7, 7, CMAP_SWITCH, &p), 0);
	cmap_unpin(f->cm, &p);
	assert_int_equal(cmap_watch_gen(f->cm, &w, &g), 0);
	assert_int_equal(g, g0);
	/* a write in flight makes a copy untrustworthy, and bumps it */
	assert_int_equal(cmap_pin(f->cm, f->cf, 7, 7, CMAP_WRITE, &p), 0);
	assert_int_equal(cmap_watch_gen(f->cm, &w, &g), -EBUSY);
	cmap_unpin(f->cm, &p);
	assert_int_equal(cmap_watch_gen(f->cm, &w, &g), 0);
	assert_true(g != g0);
	/* so does a home change of the chunk */
	g0 = g;
	assert_int_equal(tier_reserve(f->tier, 0), 0);
	set_home(f, 7, 0);
	assert_int_equal(cmap_watch_gen(f->cm, &w, &g), 0);
	assert_true(g != g0);
	cmap_unwatch(f->cm, &w);
}

struct quiescer {
	struct fixture *f;
	atomic_int done;
	pthread_t th;
};

static void *quiesce_thread(void *arg)
{
	struct quiescer *q = arg;
	cmap_file_quiesce(q->f->cm, q->f->cf);
	atomic_store(&q->done, 1);
	return NULL;
}

static void test_quiesce(void **state)
{
	struct fixture *f = *state;
	struct quiescer q = { .f = f };
	struct cmap_pin a;
	struct pinner p;

	assert_int_equal(cmap_pin(f->cm, f->cf, 3, 3, CMAP_READ, &a), 0);
	/* quiesce waits for the pin... */
	assert_int_equal(pthread_create(&q.th, NULL, quiesce_thread, &q), 0);
	usleep(100 * 1000);
	assert_int_equal(atomic_load(&q.done), 0);
	/* ...and a new pin, on any chunk of the file, waits for the quiescer */
	start_pinner(&p, f, 100, 100, CMAP_READ);
	cmap_unpin(f->cm, &a);
	pthread_join(q.th, NULL);
	assert_int_equal(atomic_load(&q.done), 1);
	assert_false(got_within(&p, 100));
	cmap_file_resume(f->cm, f->cf);
	assert_true(got_within(&p, 2000));
	finish_pinner(&p);
}

/* The mover's batch in miniature: this thread holds a pin of the file
 * while a quiescer (fallocate, truncate) waits for every pin to go; a
 * further pin must not wait at the closed gate (the quiescer waits for this
 * thread: both forever, as fsx under churn found), it is refused. */
static void *watchdog(void *arg);

static void test_pin_more_while_quiescing(void **state)
{
	struct fixture *f = *state;
	struct quiescer q = { .f = f };
	struct cmap_pin a, b;
	pthread_t wd;

	assert_int_equal(pthread_create(&wd, NULL, watchdog, NULL), 0);

	assert_int_equal(cmap_pin(f->cm, f->cf, 3, 3, CMAP_READ, &a), 0);
	assert_int_equal(cmap_pin_more(f->cm, f->cf, 9, 9, CMAP_READ, &b), 0); /* gate open: fine */
	cmap_unpin(f->cm, &b);
	assert_int_equal(pthread_create(&q.th, NULL, quiesce_thread, &q), 0);
	/* (until the quiescer has closed the gate: it does so at once) */
	int r = 0;
	for (int i = 0; i < 200 && (r = cmap_pin_more(f->cm, f->cf, 9, 9, CMAP_READ, &b)) == 0; i++) {
		cmap_unpin(f->cm, &b);
		usleep(10 * 1000);
	}
	assert_int_equal(r, -EAGAIN);
	assert_int_equal(atomic_load(&q.done), 0);
	cmap_unpin(f->cm, &a);
	pthread_join(q.th, NULL);
	assert_int_equal(atomic_load(&q.done), 1);
	cmap_file_resume(f->cm, f->cf);
	pthread_cancel(wd);
	pthread_join(wd, NULL);
}

/* ---- flush before wait ---- */

struct io_done {
	struct fixture *f;
	struct cmap_pin pin;
	atomic_int done;
	atomic_int res;
};

/* On the completion thread: no cmocka assertion here (it would end the
 * process from the wrong thread); the test checks res. */
static void unpin_on_completion(void *arg, int res)
{
	struct io_done *d = arg;
	atomic_store(&d->res, res);
	cmap_unpin(d->f->cm, &d->pin);
	atomic_store(&d->done, 1);
}

static void *watchdog(void *arg)
{
	(void)arg;
	sleep(20);
	fprintf(stderr, "test_chunkmap: hung for 20 s: a pin waited for what its own thread held\n");
	abort();
}

/* The QD32 deadlock in miniature: this thread holds its I/O lane, pins a
 * chunk for an asynchronous write that sits unsubmitted in the lane, then
 * needs that chunk exclusively. The pin must send the held write before it
 * waits (the write's completion releases the first pin); before the fix a
 * worker slept forever here. */
static void test_wait_sends_held_io(void **state)
{
	struct fixture *f = *state;
	struct io_done d = { .f = f };
	struct silt_aio_op op;
	struct cmap_pin ex;
	pthread_t wd;
	char *buf = silt_aligned_alloc(4096);
	struct iovec iov = { .iov_base = buf, .iov_len = 4096 };
	int fd = tfiles_fd(cmap_files(f->cf), &f->layout, f->tier, 0, 1);

	assert_true(fd >= 0);
	assert_int_equal(pthread_create(&wd, NULL, watchdog, NULL), 0);
	silt_aio_hold(f->aio, 1);
	assert_int_equal(cmap_pin(f->cm, f->cf, 0, 0, CMAP_WRITE, &d.pin), 0);
	assert_int_equal(silt_aio_submit(f->aio, &op, fd, 1, 0, &iov, 1, unpin_on_completion, &d), 0);
	usleep(50 * 1000);
	assert_int_equal(atomic_load(&d.done), 0); /* held: not even submitted */
	assert_int_equal(cmap_pin(f->cm, f->cf, 0, 0, CMAP_EXCL, &ex), 0);
	/* The pin is granted inside the callback's cmap_unpin, a moment
	 * before it marks itself done: wait for that mark (bounded), so the
	 * stack frame the callback writes outlives it. */
	for (int i = 0; i < 5000 && !atomic_load(&d.done); i++)
		usleep(1000);
	assert_int_equal(atomic_load(&d.done), 1);
	assert_int_equal(atomic_load(&d.res), 0);
	cmap_unpin(f->cm, &ex);
	silt_aio_hold(f->aio, 0);
	pthread_cancel(wd);
	pthread_join(wd, NULL);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_table_through_txns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quiesce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin_more_while_quiescing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_sends_held_io, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
