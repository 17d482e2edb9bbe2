/*
 * pfengine.c - classical prefetchers and the GRU prefetcher behind one
 * interface (see pfengine.h).
 *
 * Data structures first:
 *   struct pfe_stream  per file: where its last request started and ended,
 *                      the readahead window (start, size; its first chunk is
 *                      the async marker), and Leap's ring of recent deltas,
 *                      used-prefetch count and last window size.
 *   pending[]          runs produced by the last request.
 * The GRU engine keeps no streams of its own: prefetch.c has them.
 *
 * Both classical engines are deliberately the textbook versions, so that the
 * GRU's gain over them is measured against what a system would ship.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "predictor/pfengine.h"
#include "predictor/pred_util.h"

#define LEAP_HIST 32
#define ACC_ALPHA 0.01
#define PFE_PENDING 32

struct pfe_stream {
	uint64_t file;
	uint64_t next;           /* chunk after the last request */
	uint64_t last_start;
	uint64_t win_start;      /* readahead window; size 0 = none */
	uint32_t win_size;
	int64_t delta[LEAP_HIST];
	uint32_t ndelta, dpos;
	uint32_t used;           /* Leap: prefetches used since the last window */
	uint32_t last_pw;
	int64_t next_gru, next_leap; /* GRU engine: each one's predicted next start */
	uint8_t started;
};

struct pf_engine {
	struct pfe_config c;
	struct pu_map map;
	struct pfe_stream *st;
	size_t nst, capst;
	struct prefetch_run pending[PFE_PENDING];
	size_t npending;
	prefetcher_t *gru;
	prefetch_trainer_t *trainer;
	uint64_t since_train;
	double acc_gru, acc_leap;    /* GRU engine: rolling next-start accuracy */
	struct pfe_stats stats;
};

static const char *const kind_names[PFE__COUNT] = {
	[PFE_NONE] = "none", [PFE_READAHEAD] = "ra", [PFE_LEAP] = "leap",
	[PFE_GRU] = "gru",
};

int pfe_kind_parse(const char *name, enum pfe_kind *out)
{
	for (int k = 0; k < PFE__COUNT; k++)
		if (strcmp(name, kind_names[k]) == 0) {
			*out = (enum pfe_kind)k;
			return 0;
		}
	return -EINVAL;
}

const char *pfe_kind_name(enum pfe_kind kind)
{
	return (unsigned)kind < PFE__COUNT ? kind_names[kind] : "?";
}

void pfe_config_default(struct pfe_config *c, enum pfe_kind kind)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	/* Linux's default read_ahead_kb is 128: 32 chunks of 4 KiB; Leap's
	 * paper caps its window at 8 pages. */
	c->max_window = kind == PFE_LEAP ? 8 : 32;
	c->train_interval = 1024;
	prefetch_config_default(&c->gru);
	/* The GRU engine sizes its depth like Leap, up to the same 8: a
	 * prediction one request ahead arrives too late on a 5 ms disk. */
	c->gru.adaptive = 1;
	c->gru.from_start = 1;
	/* Chosen on the first 80% of the traces among 0.5 to 0.9: only
	 * confident GRU predictions, Leap's trend for the rest. */
	c->gru.threshold = 0.9f;
	c->gru.deep_threshold = 0.9f;
	c->gru.depth = 8;
}

int pfe_create(const struct pfe_config *c, pf_engine_t **out)
{
	if ((unsigned)c->kind >= PFE__COUNT || c->max_window == 0 || c->max_window > 4096)
		return -EINVAL;
	pf_engine_t *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->c = *c;
	int rc = pu_map_init(&e->map, 16);
	if (!rc && c->kind == PFE_GRU) {
		rc = prefetcher_create(&c->gru, &e->gru);
		if (!rc)
			rc = prefetch_trainer_create(e->gru, &e->trainer);
		if (!rc) {
			struct prefetch_stats ps;
			prefetcher_stats(e->gru, &ps);
			e->stats.model_bytes = ps.model_bytes;
		}
	}
	if (rc) {
		pfe_destroy(e);
		return rc;
	}
	*out = e;
	return 0;
}

void pfe_destroy(pf_engine_t *e)
{
	if (!e)
		return;
	if (e->map.keys)
		pu_map_free(&e->map);
	free(e->st);
	prefetch_trainer_destroy(e->trainer);
	prefetcher_destroy(e->gru);
	free(e);
}

static struct pfe_stream *stream_get(pf_engine_t *e, uint64_t file)
{
	uint32_t i = pu_map_get(&e->map, file);

	if (i != PU_NIL)
		return &e->st[i];
	if (e->nst == e->capst) {
		size_t nc = e->capst ? 2 * e->capst : 16;
		struct pfe_stream *n = realloc(e->st, nc * sizeof(*n));
		if (!n)
			return NULL;
		e->st = n;
		e->capst = nc;
	}
	i = (uint32_t)e->nst++;
	memset(&e->st[i], 0, sizeof(e->st[i]));
	e->st[i].file = file;
	if (pu_map_put(&e->map, file, i))
		return NULL;
	return &e->st[i];
}

static void add_run(pf_engine_t *e, uint64_t file, int64_t start, uint64_t n)
{
	if (start < 0 || n == 0 || e->npending == PFE_PENDING)
		return;
	e->pending[e->npending++] = (struct prefetch_run){
		file, (uint64_t)start, (uint32_t)n, 1.0f };
}

/* Linux-style readahead (mm/readahead.c, simplified to whole chunks). */
static void readahead(pf_engine_t *e, struct pfe_stream *s, uint64_t c, uint32_t n,
		      int is_write)
{
	uint64_t max = e->c.max_window;
	int in_win = s->win_size && c >= s->win_start && c < s->win_start + s->win_size;
	int seq = s->started && (c == s->next || in_win);

	if (is_write)
		return;
	if (!seq) {
		s->win_size = 0;
		return;
	}
	if (!s->win_size) {
		uint64_t size = 4 * (uint64_t)n < max ? 4 * (uint64_t)n : max;
		s->win_start = c + n;
		s->win_size = (uint32_t)size;
		add_run(e, s->file, (int64_t)s->win_start, size);
	} else if (c + n > s->win_start) {
		/* The async marker (the window's first chunk) was reached: the
		 * next window follows this one, twice as large. */
		uint64_t size = 2 * (uint64_t)s->win_size < max ? 2 * (uint64_t)s->win_size : max;
		s->win_start += s->win_size;
		if (s->win_start < c + n)
			s->win_start = c + n;
		s->win_size = (uint32_t)size;
		add_run(e, s->file, (int64_t)s->win_start, size);
	}
}

/* Boyer-Moore majority of the newest w deltas; 1 and *out if one holds more
 * than half of them. */
static int majority(const struct pfe_stream *s, uint32_t w, int64_t *out)
{
	int64_t cand = 0;
	uint32_t cnt = 0, hits = 0;

	for (uint32_t k = 0; k < w; k++) {
		int64_t d = s->delta[(s->dpos + LEAP_HIST - 1 - k) % LEAP_HIST];
		if (cnt == 0) {
			cand = d;
			cnt = 1;
		} else if (d == cand) {
			cnt++;
		} else {
			cnt--;
		}
	}
	for (uint32_t k = 0; k < w; k++)
		hits += s->delta[(s->dpos + LEAP_HIST - 1 - k) % LEAP_HIST] == cand;
	if (2 * hits <= w)
		return 0;
	*out = cand;
	return 1;
}

static void leap(pf_engine_t *e, struct pfe_stream *s, uint64_t c, uint32_t n)
{
	int64_t stride = 0;
	int found = 0;

	if (s->started) {
		s->delta[s->dpos] = (int64_t)(c - s->last_start);
		s->dpos = (s->dpos + 1) % LEAP_HIST;
		if (s->ndelta < LEAP_HIST)
			s->ndelta++;
	}
	for (uint32_t w = 4; w <= LEAP_HIST && w <= s->ndelta && !found; w *= 2)
		found = majority(s, w, &stride);
	if (!found || stride == 0)
		return;
	uint32_t pw;
	if (s->used) {
		pw = 1;
		while (pw < s->used + 1)
			pw <<= 1;
	} else {
		pw = s->last_pw / 2 ? s->last_pw / 2 : 1;
	}
	if (pw > e->c.max_window)
		pw = e->c.max_window;
	s->last_pw = pw;
	s->used = 0;
	for (uint32_t k = 1; k <= pw; k++)
		add_run(e, s->file, (int64_t)c + stride * (int64_t)k, n);
}

static double cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/*
 * The GRU engine: the GRU prefetcher (with its own majority fallback) and
 * Leap's trend detector both predict; each is scored on whether its first
 * run starts where the next request of the stream does, and the better
 * scorer's runs are issued.  Leap finds a stride within 4 requests, which
 * the GRU's vocabulary (a delta needs 4 sightings to get a class) cannot
 * match on streams that change stride often; the GRU wins where the
 * pattern is not one stride (alternating deltas).
 */
static int gru_observe(pf_engine_t *e, struct pfe_stream *s, uint64_t file,
		       uint64_t c, uint32_t n, int is_write, uint64_t time_us)
{
	if (s->started) {
		e->acc_gru += ACC_ALPHA * ((s->next_gru == (int64_t)c) - e->acc_gru);
		e->acc_leap += ACC_ALPHA * ((s->next_leap == (int64_t)c) - e->acc_leap);
	}
	int rc = prefetcher_observe(e->gru, file, c, n, is_write, time_us);
	if (rc < 0)
		return rc;
	struct prefetch_run g[PFE_PENDING];
	size_t ng = prefetcher_take(e->gru, g, PFE_PENDING);
	leap(e, s, c, n);
	s->next_gru = ng ? (int64_t)g[0].chunk : -1;
	s->next_leap = e->npending ? (int64_t)e->pending[0].chunk : -1;
	if (e->acc_gru >= e->acc_leap) {
		memcpy(e->pending, g, ng * sizeof(*g));
		e->npending = ng;
	}
	if (!e->c.train_interval || ++e->since_train < e->c.train_interval)
		return 0;
	e->since_train = 0;
	double t0 = cpu_ns();
	rc = prefetch_take_batch(e->gru, e->trainer);
	if (rc > 0) {
		double l = prefetch_train_batch(e->trainer);
		rc = l < 0 ? (int)l : prefetch_publish(e->gru, e->trainer);
		e->stats.train_steps++;
	}
	e->stats.train_cpu_ns += cpu_ns() - t0;
	return rc < 0 ? rc : 0;
}

int pfe_observe(pf_engine_t *e, uint64_t file, uint64_t chunk, uint32_t nchunks,
		int is_write, uint64_t time_us)
{
	e->npending = 0;
	e->stats.requests++;
	if (nchunks == 0)
		nchunks = 1;
	if (e->c.kind == PFE_NONE)
		return 0;
	struct pfe_stream *s = stream_get(e, file);
	if (!s)
		return -ENOMEM;
	if (e->c.kind == PFE_GRU) {
		int rc = gru_observe(e, s, file, chunk, nchunks, is_write, time_us);
		if (rc < 0)
			return rc;
	} else if (e->c.kind == PFE_READAHEAD) {
		readahead(e, s, chunk, nchunks, is_write);
	} else {
		leap(e, s, chunk, nchunks);
	}
	s->next = chunk + nchunks;
	s->last_start = chunk;
	s->started = 1;
	e->stats.runs += e->npending;
	return (int)e->npending;
}

size_t pfe_take(pf_engine_t *e, struct prefetch_run *out, size_t max)
{
	size_t n = e->npending < max ? e->npending : max;

	memcpy(out, e->pending, n * sizeof(*out));
	e->npending = 0;
	return n;
}

void pfe_used(pf_engine_t *e, uint64_t file)
{
	if (e->c.kind == PFE_GRU)
		prefetcher_used(e->gru, file);
	if (e->c.kind != PFE_LEAP && e->c.kind != PFE_GRU)
		return;
	uint32_t i = pu_map_get(&e->map, file);
	if (i != PU_NIL)
		e->st[i].used++;
}

void pfe_stats(const pf_engine_t *e, struct pfe_stats *s)
{
	*s = e->stats;
}
