/*
 * predictor.c - the predictor context (see predictor.h).
 *
 * Data structures first:
 *   struct predictor   the models (placer with its learned policy,
 *                      prefetcher), their trainers, the shadow classical
 *                      policies with per-window hit counters, the anomaly
 *                      detectors, a small event ring, and the training
 *                      thread's state.  One mutex guards all of it.
 *
 * Training split: the recorder path (predictor_record) only runs inference
 * and bookkeeping.  Each closed window credits one training step per
 * train_interval accesses (so the cost per access does not depend on the
 * window, which shrinks with the fast tier).  The steps run either inline
 * when no thread was started (deterministic: what siltfs-sim and the tests
 * use) or in the "silt-predict" thread, which copies a batch under the
 * lock, computes gradients and Adam on its private copy of the weights
 * without it, and publishes the new weights under the lock again.  The
 * thread sleeps after each step long enough to stay within cpu_budget of a
 * core, and waits on a condition variable when there is nothing to do;
 * predictor_stop() wakes and joins it.
 *
 * After an anomaly event the next RETRAIN_WINDOWS windows get
 * RETRAIN_FACTOR times the training steps: the model catches up with the new
 * pattern faster than steady-state training would let it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "predictor/anomaly.h"
#include "predictor/predictor.h"
#include "predictor/prefetch.h"

#define MAX_SHADOWS POLICY__COUNT
#define EVENT_RING 64
#define PENDING_RUNS 64
#define MAX_BACKLOG 256
#define RETRAIN_WINDOWS 20
#define RETRAIN_FACTOR 4
#define SHADOW_ALPHA 0.05
#define SAVE_VERSION 1
#define ANOMALY_SPAN 2048

struct shadow {
	policy_t *pol;
	enum policy_kind kind;
	uint64_t win_hits;
	double rolling;
};

struct predictor {
	struct predictor_config c;
	pthread_mutex_t lock;
	pthread_cond_t cond;

	placer_t *placer;
	placer_trainer_t *ptrain;
	policy_t *learned;
	uint64_t learned_win_hits;
	double learned_rolling;
	uint64_t win_accesses;

	prefetcher_t *pf;
	prefetch_trainer_t *pftrain;
	struct predictor_run runs[PENDING_RUNS];
	size_t nruns;

	struct shadow sh[MAX_SHADOWS];
	int nsh;
	int last_winner;

	anomaly_t *an_place, *an_pref;
	struct predictor_event ev[EVENT_RING];
	size_t ev_head, ev_n;
	uint32_t retrain_left;
	double an_loss;     /* loss summed over the current anomaly span */
	uint64_t an_n, an_span;

	uint64_t accesses, evictions, windows, train_steps;
	double train_cpu_ns;

	pthread_t thread;
	int running, stop;
	int busy;           /* the thread is computing on the trainers unlocked */
	uint64_t backlog;   /* training steps credited, not yet run */
	uint64_t credit;    /* accesses not yet turned into training steps */
};

void predictor_config_default(struct predictor_config *c)
{
	struct placer_config pc;

	placer_config_default(&pc);
	memset(c, 0, sizeof(*c));
	c->fast_capacity = 16384;
	c->region_shift = pc.region_shift;
	c->window = 0;
	c->horizon = pc.horizon;
	c->hidden = pc.hidden;
	c->lr = pc.lr;
	c->margin = pc.margin;
	c->max_regions = 1u << 20; /* ~400 MB of region state at most */
	c->train_interval = 1024;
	c->cpu_budget = 0.25;
	c->prefetch = 1;
	c->prefetch_threshold = 0.5f;
	c->prefetch_hidden = 8;
	c->prefetch_depth = 1;
	c->shadow_mask = (1u << POLICY_LRU) | (1u << POLICY_ARC) | (1u << POLICY_S3FIFO);
	c->seed = 1;
}

static double thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void on_learned_change(void *ctx, uint64_t key, int resident)
{
	predictor_t *p = ctx;

	(void)key;
	if (!resident)
		p->evictions++;
}

int predictor_create(const struct predictor_config *c, predictor_t **out)
{
	if (c->fast_capacity == 0 || c->horizon == 0 || !(c->cpu_budget > 0) ||
	    c->cpu_budget > 1 || (c->shadow_mask & (1u << POLICY_BELADY)) ||
	    (c->shadow_mask & (1u << POLICY_LEARNED)) ||
	    (c->shadow_mask & (1u << POLICY_MIX)))
		return -EINVAL;
	predictor_t *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->c = *c;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->last_winner = -1;

	struct placer_config pc;
	placer_config_default(&pc);
	pc.region_shift = c->region_shift;
	pc.horizon = c->horizon;
	pc.hidden = c->hidden;
	pc.lr = c->lr;
	pc.margin = c->margin;
	pc.max_regions = c->max_regions;
	pc.seed = c->seed;
	pc.window = c->window;
	if (pc.window == 0) {
		uint64_t w = 2 * c->fast_capacity / c->horizon;
		pc.window = (uint32_t)(w < 256 ? 256 : w > (1u << 24) ? (1u << 24) : w);
	}
	p->c.window = pc.window;
	int rc = placer_create(&pc, &p->placer);
	if (!rc)
		rc = placer_trainer_create(p->placer, &p->ptrain);
	if (!rc)
		rc = placer_policy_create(p->placer, c->fast_capacity, &p->learned);
	if (rc)
		goto fail;
	policy_set_observer(p->learned, on_learned_change, p);
	if (c->prefetch) {
		struct prefetch_config fc;
		prefetch_config_default(&fc);
		fc.threshold = c->prefetch_threshold;
		fc.hidden = c->prefetch_hidden;
		fc.depth = c->prefetch_depth;
		fc.seed = c->seed;
		rc = prefetcher_create(&fc, &p->pf);
		if (!rc)
			rc = prefetch_trainer_create(p->pf, &p->pftrain);
		if (rc)
			goto fail;
	}
	for (int k = 0; k < POLICY__COUNT; k++) {
		if (!(c->shadow_mask & (1u << k)))
			continue;
		rc = policy_create((enum policy_kind)k, c->fast_capacity, &p->sh[p->nsh].pol);
		if (rc)
			goto fail;
		p->sh[p->nsh++].kind = (enum policy_kind)k;
	}
	struct anomaly_config ac;
	anomaly_config_default(&ac);
	rc = anomaly_create(&ac, &p->an_place);
	if (!rc)
		rc = anomaly_create(&ac, &p->an_pref);
	if (rc)
		goto fail;
	*out = p;
	return 0;
fail:
	predictor_destroy(p);
	return rc;
}

void predictor_destroy(predictor_t *p)
{
	if (!p)
		return;
	predictor_stop(p);
	policy_destroy(p->learned);
	placer_trainer_destroy(p->ptrain);
	placer_destroy(p->placer);
	prefetch_trainer_destroy(p->pftrain);
	prefetcher_destroy(p->pf);
	for (int i = 0; i < p->nsh; i++)
		policy_destroy(p->sh[i].pol);
	anomaly_destroy(p->an_place);
	anomaly_destroy(p->an_pref);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static void push_event(predictor_t *p, enum predictor_event_type type,
		       double value, double baseline)
{
	size_t slot = (p->ev_head + p->ev_n) % EVENT_RING;

	if (p->ev_n == EVENT_RING) { /* drop the oldest */
		p->ev_head = (p->ev_head + 1) % EVENT_RING;
		p->ev_n--;
	}
	p->ev[slot] = (struct predictor_event){ type, p->windows, value, baseline };
	p->ev_n++;
}

/* One training step of each model; lock held on entry and exit.  With
 * 'unlock_compute' the gradient work runs without the lock. */
static int train_step_locked(predictor_t *p, int unlock_compute)
{
	int have_p = placer_take_batch(p->placer, p->ptrain);
	int have_f = p->pf ? prefetch_take_batch(p->pf, p->pftrain) : 0;
	double rc_p = 0, rc_f = 0;

	if (have_p < 0 || have_f < 0)
		return have_p < 0 ? have_p : have_f;
	if (!have_p && !have_f)
		return 0;
	if (unlock_compute) {
		p->busy = 1;
		pthread_mutex_unlock(&p->lock);
	}
	double t0 = thread_cpu_ns();
	if (have_p)
		rc_p = placer_train_batch(p->ptrain);
	if (have_f)
		rc_f = prefetch_train_batch(p->pftrain);
	double spent = thread_cpu_ns() - t0;
	if (unlock_compute) {
		pthread_mutex_lock(&p->lock);
		p->busy = 0;
		pthread_cond_broadcast(&p->cond);
	}
	p->train_cpu_ns += spent;
	if (rc_p < 0 || rc_f < 0)
		return (int)(rc_p < 0 ? rc_p : rc_f);
	int rc = have_p ? placer_publish(p->placer, p->ptrain) : 0;
	if (!rc && have_f)
		rc = prefetch_publish(p->pf, p->pftrain);
	if (!rc)
		p->train_steps++;
	return rc ? rc : 1;
}

/* Lock held: wait until the training thread is not using the trainers
 * (their weights are about to be read or replaced). */
static void wait_not_busy(predictor_t *p)
{
	while (p->busy)
		pthread_cond_wait(&p->cond, &p->lock);
}

static int end_of_window(predictor_t *p)
{
	uint64_t n;
	double loss = placer_window_loss(p->placer, &n);

	p->windows++;
	/* The detectors see one value per ANOMALY_SPAN accesses at least: a
	 * small fast tier means short windows, whose loss is too noisy to
	 * judge one by one (at 344 accesses per window the detector fired
	 * every few hundred windows on w106). */
	p->an_loss += loss * (double)n;
	p->an_n += n;
	p->an_span += p->c.window;
	if (p->an_span < ANOMALY_SPAN)
		goto shadows;
	loss = p->an_n ? p->an_loss / (double)p->an_n : 0;
	n = p->an_n;
	p->an_loss = 0;
	p->an_n = 0;
	p->an_span = 0;
	if (n && anomaly_update(p->an_place, loss)) {
		push_event(p, PRED_EVENT_PLACEMENT_ANOMALY, loss,
			   anomaly_baseline(p->an_place));
		p->retrain_left = RETRAIN_WINDOWS;
	}
	if (p->pf) {
		struct prefetch_stats ps;
		prefetcher_stats(p->pf, &ps);
		if (ps.requests && anomaly_update(p->an_pref, ps.rolling_loss)) {
			push_event(p, PRED_EVENT_PREFETCH_ANOMALY, ps.rolling_loss,
				   anomaly_baseline(p->an_pref));
			p->retrain_left = RETRAIN_WINDOWS;
		}
	}
shadows:
	/* Shadow scores: hit ratio of this window, smoothed. */
	if (p->win_accesses) {
		double a = SHADOW_ALPHA, wa = (double)p->win_accesses;
		int first = p->windows == 1;
		double best = -1;
		int best_i = -1;
		p->learned_rolling = first ? p->learned_win_hits / wa :
			p->learned_rolling + a * (p->learned_win_hits / wa - p->learned_rolling);
		for (int i = 0; i < p->nsh; i++) {
			double r = p->sh[i].win_hits / wa;
			p->sh[i].rolling = first ? r : p->sh[i].rolling + a * (r - p->sh[i].rolling);
			p->sh[i].win_hits = 0;
			if (p->sh[i].rolling > best) {
				best = p->sh[i].rolling;
				best_i = i;
			}
		}
		if (best_i >= 0) {
			int winner = p->learned_rolling >= best;
			if (p->last_winner >= 0 && winner != p->last_winner)
				push_event(p, PRED_EVENT_WINNER_CHANGED, p->learned_rolling, best);
			p->last_winner = winner;
		}
		p->learned_win_hits = 0;
		p->win_accesses = 0;
	}
	/* Training credit for this window. */
	p->credit += p->c.window;
	uint64_t steps = p->c.train_interval ? p->credit / p->c.train_interval : 0;
	if (p->c.train_interval)
		p->credit %= p->c.train_interval;
	if (p->retrain_left) {
		steps *= RETRAIN_FACTOR;
		p->retrain_left--;
	}
	if (!p->running) {
		for (uint64_t s = 0; s < steps; s++) {
			int rc = train_step_locked(p, 0);
			if (rc <= 0)
				return rc;
		}
		return 0;
	}
	p->backlog += steps;
	if (p->backlog > MAX_BACKLOG)
		p->backlog = MAX_BACKLOG; /* over budget: skip, do not queue forever */
	pthread_cond_broadcast(&p->cond);
	return 0;
}

static void add_runs(predictor_t *p, const struct prefetch_run *r, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		/* Split the run around chunks already on the learned fast tier. */
		uint64_t start = r[k].chunk, end = r[k].chunk + r[k].nchunks;
		for (uint64_t c = start; c <= end; c++) {
			int stop = c == end ||
				policy_contains(p->learned, PRED_KEY(r[k].file, c));
			if (!stop)
				continue;
			if (c > start && p->nruns < PENDING_RUNS)
				p->runs[p->nruns++] = (struct predictor_run){
					r[k].file, start, (uint32_t)(c - start), r[k].confidence };
			start = c + 1;
		}
	}
}

int predictor_record(predictor_t *p, const struct predictor_access *a)
{
	if (a->file > PRED_MAX_FILE || a->nchunks == 0 ||
	    a->chunk > PRED_MAX_CHUNK - a->nchunks)
		return -ERANGE;
	pthread_mutex_lock(&p->lock);
	int hits = 0, rc = 0;
	for (uint32_t k = 0; k < a->nchunks; k++) {
		uint64_t chunk = a->chunk + k, key = PRED_KEY(a->file, chunk);
		int w = placer_observe(p->placer, a->file, chunk, a->op);
		if (w < 0) {
			rc = w;
			goto out;
		}
		int h = policy_access(p->learned, key, POLICY_NEVER);
		if (h < 0) {
			rc = h;
			goto out;
		}
		hits += h;
		p->learned_win_hits += h;
		if (a->hits)
			a->hits[k] = (uint8_t)h;
		for (int i = 0; i < p->nsh; i++) {
			int sh = policy_access(p->sh[i].pol, key, POLICY_NEVER);
			if (sh < 0) {
				rc = sh;
				goto out;
			}
			p->sh[i].win_hits += sh;
		}
		p->win_accesses++;
		p->accesses++;
		if (w == 1) {
			rc = end_of_window(p);
			if (rc)
				goto out;
		}
	}
	if (p->pf) {
		rc = prefetcher_observe(p->pf, a->file, a->chunk, a->nchunks, a->op,
					a->time_us);
		if (rc < 0)
			goto out;
		struct prefetch_run r[16];
		size_t n = prefetcher_take(p->pf, r, 16);
		add_runs(p, r, n);
	}
	rc = hits;
out:
	pthread_mutex_unlock(&p->lock);
	return rc;
}

long predictor_prefetch(predictor_t *p, struct predictor_run *out, size_t max)
{
	pthread_mutex_lock(&p->lock);
	size_t n = p->nruns < max ? p->nruns : max;
	memcpy(out, p->runs, n * sizeof(*out));
	memmove(p->runs, p->runs + n, (p->nruns - n) * sizeof(*out));
	p->nruns -= n;
	pthread_mutex_unlock(&p->lock);
	return (long)n;
}

long predictor_rank(predictor_t *p, struct placer_region_info *out, size_t max)
{
	pthread_mutex_lock(&p->lock);
	long n = placer_rank(p->placer, out, max);
	pthread_mutex_unlock(&p->lock);
	return n;
}

long predictor_plan(predictor_t *p, enum placer_mode mode, const uint64_t *caps,
		    unsigned ntiers, float hysteresis, struct placer_move *out,
		    size_t max)
{
	pthread_mutex_lock(&p->lock);
	long n = placer_plan(p->placer, mode, caps, ntiers, hysteresis, out, max);
	pthread_mutex_unlock(&p->lock);
	return n;
}

int predictor_set_tier(predictor_t *p, uint64_t file, uint64_t chunk, uint8_t tier)
{
	pthread_mutex_lock(&p->lock);
	int rc = placer_set_tier(p->placer, file, chunk, tier);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int predictor_train(predictor_t *p, unsigned steps)
{
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	wait_not_busy(p);
	for (unsigned s = 0; s < steps && rc >= 0; s++)
		rc = train_step_locked(p, 0);
	pthread_mutex_unlock(&p->lock);
	return rc < 0 ? rc : 0;
}

/* ---- training thread ------------------------------------------------------ */

static void *train_main(void *arg)
{
	predictor_t *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		if (p->backlog == 0) {
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		p->backlog--;
		double before = p->train_cpu_ns;
		int rc = train_step_locked(p, 1);
		if (rc < 0)
			break; /* out of memory mid-step: stop training, keep serving */
		/* Stay within the budget: sleep spent * (1 / budget - 1). */
		double spent = p->train_cpu_ns - before;
		double sleep_ns = spent * (1.0 / p->c.cpu_budget - 1.0);
		if (sleep_ns > 0) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)sleep_ns;
			until.tv_sec += (time_t)(ns / 1000000000ULL);
			until.tv_nsec = (long)(ns % 1000000000ULL);
			while (!p->stop &&
			       pthread_cond_timedwait(&p->cond, &p->lock, &until) != ETIMEDOUT)
				;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int predictor_start(predictor_t *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->running) {
		pthread_mutex_unlock(&p->lock);
		return -EALREADY;
	}
	p->stop = 0;
	int rc = pthread_create(&p->thread, NULL, train_main, p);
	if (rc == 0) {
		pthread_setname_np(p->thread, "silt-predict");
		p->running = 1;
	}
	pthread_mutex_unlock(&p->lock);
	return -rc;
}

void predictor_stop(predictor_t *p)
{
	pthread_mutex_lock(&p->lock);
	if (!p->running) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	p->stop = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_mutex_lock(&p->lock);
	p->running = 0;
	p->backlog = 0;
	pthread_mutex_unlock(&p->lock);
}

/* ---- reporting -------------------------------------------------------------- */

int predictor_poll_event(predictor_t *p, struct predictor_event *ev)
{
	int got = 0;

	pthread_mutex_lock(&p->lock);
	if (p->ev_n) {
		*ev = p->ev[p->ev_head];
		p->ev_head = (p->ev_head + 1) % EVENT_RING;
		p->ev_n--;
		got = 1;
	}
	pthread_mutex_unlock(&p->lock);
	return got;
}

void predictor_stats(predictor_t *p, struct predictor_stats *s)
{
	struct placer_stats ps;

	pthread_mutex_lock(&p->lock);
	placer_stats(p->placer, &ps);
	memset(s, 0, sizeof(*s));
	s->accesses = p->accesses;
	s->windows = p->windows;
	s->regions = ps.regions;
	s->shadow_gru_hit_ratio = p->learned_rolling;
	s->gru_better = -1;
	for (int i = 0; i < p->nsh; i++) {
		if (i == 0 || p->sh[i].rolling > s->shadow_best_hit_ratio) {
			s->shadow_best_hit_ratio = p->sh[i].rolling;
			s->shadow_best = p->sh[i].kind;
		}
	}
	if (p->nsh)
		s->gru_better = p->learned_rolling >= s->shadow_best_hit_ratio;
	s->placement_loss = ps.rolling_loss;
	s->placement_baseline = anomaly_baseline(p->an_place);
	s->placement_mean_loss = ps.mean_loss;
	s->placement_base_rate = ps.samples ? (double)ps.positives / (double)ps.samples : 0;
	s->model_bytes = ps.model_bytes;
	if (p->pf) {
		struct prefetch_stats fs;
		prefetcher_stats(p->pf, &fs);
		s->prefetch_loss = fs.rolling_loss;
		s->prefetch_baseline = anomaly_baseline(p->an_pref);
		s->prefetch_gru_accuracy = fs.gru_accuracy;
		s->prefetch_heuristic_accuracy = fs.heuristic_accuracy;
		s->prefetch_using_gru = fs.using_gru;
		s->model_bytes += fs.model_bytes;
	}
	s->anomalies = anomaly_events(p->an_place) + anomaly_events(p->an_pref);
	s->train_steps = p->train_steps;
	s->train_cpu_ms = p->train_cpu_ns / 1e6;
	s->fast_evictions = p->evictions;
	pthread_mutex_unlock(&p->lock);
}

/* ---- persistence --------------------------------------------------------------
 * "SPRD" u16 version u16 has_prefetch u32 placer_len u32 prefetch_len
 * placer bytes, prefetch bytes, u32 crc32 of everything before it. */

int predictor_save(predictor_t *p, void **buf, size_t *len)
{
	size_t pl_len = 0, pf_len = 0;

	pthread_mutex_lock(&p->lock);
	placer_save(p->placer, NULL, 0, &pl_len);
	if (p->pf)
		prefetcher_save(p->pf, NULL, 0, &pf_len);
	size_t total = 16 + pl_len + pf_len + 4;
	uint8_t *b = malloc(total);
	int rc = -ENOMEM;
	if (b) {
		uint16_t ver = SAVE_VERSION, hp = p->pf != NULL;
		uint32_t l1 = (uint32_t)pl_len, l2 = (uint32_t)pf_len;
		memcpy(b, "SPRD", 4);
		memcpy(b + 4, &ver, 2);
		memcpy(b + 6, &hp, 2);
		memcpy(b + 8, &l1, 4);
		memcpy(b + 12, &l2, 4);
		rc = placer_save(p->placer, b + 16, pl_len, &pl_len);
		if (!rc && p->pf)
			rc = prefetcher_save(p->pf, b + 16 + pl_len, pf_len, &pf_len);
		uint32_t crc = (uint32_t)crc32(0, b, (uInt)(total - 4));
		memcpy(b + total - 4, &crc, 4);
	}
	pthread_mutex_unlock(&p->lock);
	if (rc) {
		free(b);
		return rc;
	}
	*buf = b;
	*len = total;
	return 0;
}

int predictor_load(predictor_t *p, const void *buf, size_t len, char *err,
		   size_t errlen)
{
	const uint8_t *b = buf;
	uint16_t ver, hp;
	uint32_t l1, l2, crc;

	if (!err)
		errlen = 0;
	if (len < 20 || memcmp(b, "SPRD", 4) != 0) {
		if (errlen)
			snprintf(err, errlen, "not a siltfs predictor state");
		return -EBADMSG;
	}
	memcpy(&ver, b + 4, 2);
	if (ver != SAVE_VERSION) {
		if (errlen)
			snprintf(err, errlen, "predictor state version %u, this build reads %u",
				 ver, SAVE_VERSION);
		return -EPROTO;
	}
	memcpy(&hp, b + 6, 2);
	memcpy(&l1, b + 8, 4);
	memcpy(&l2, b + 12, 4);
	if ((size_t)16 + l1 + l2 + 4 != len) {
		if (errlen)
			snprintf(err, errlen, "predictor state is truncated");
		return -EBADMSG;
	}
	memcpy(&crc, b + len - 4, 4);
	if (crc != (uint32_t)crc32(0, b, (uInt)(len - 4))) {
		if (errlen)
			snprintf(err, errlen, "predictor state checksum mismatch");
		return -EBADMSG;
	}
	if ((hp != 0) != (p->pf != NULL)) {
		if (errlen)
			snprintf(err, errlen, "predictor state %s a prefetch model, this predictor %s",
				 hp ? "has" : "lacks", p->pf ? "uses one" : "does not");
		return -EINVAL;
	}
	pthread_mutex_lock(&p->lock);
	wait_not_busy(p);
	/* Keep the current placement weights so a refused prefetch model
	 * leaves everything as it was. */
	size_t cur_len = 0;
	placer_save(p->placer, NULL, 0, &cur_len);
	void *cur = malloc(cur_len);
	int rc = cur ? placer_save(p->placer, cur, cur_len, &cur_len) : -ENOMEM;
	if (!rc)
		rc = placer_load(p->placer, p->ptrain, b + 16, l1, err, errlen);
	if (!rc && p->pf) {
		rc = prefetcher_load(p->pf, p->pftrain, b + 16 + l1, l2, err, errlen);
		if (rc)
			placer_load(p->placer, p->ptrain, cur, cur_len, NULL, 0);
	}
	free(cur);
	pthread_mutex_unlock(&p->lock);
	return rc;
}
