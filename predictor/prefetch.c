/*
 * prefetch.c - delta-sequence GRU prefetcher with a majority-delta fallback.
 *
 * Data structures first:
 *   struct pf_stream   per file: where the last request ended, when, the
 *                      GRU hidden state, the last prediction of each model
 *                      (to score them), the last 8 raw deltas (heuristic),
 *                      and a short history of inputs for training.
 *   vocab              class -> delta for classes 1..nv-1 (0 = "other"),
 *                      assigned once a delta has been seen VOCAB_MIN times;
 *                      'seen' counts candidate deltas (reset when it grows
 *                      past SEEN_MAX, so random streams cannot bloat it).
 *   replay             training sequences (h0, x[T], class[T]).
 *
 * The GRU is small (hidden 8 by default) because it runs once per request
 * on the I/O path's recorder thread; accuracy comes from the vocabulary
 * (most VM streams are sequential or strided), not from model size.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predictor/gru.h"
#include "predictor/prefetch.h"
#include "predictor/pred_util.h"

#define PF_HIST 8
#define PF_REPLAY 4096
#define VOCAB_MIN 4
#define SEEN_MAX 65536
#define ACC_ALPHA 0.01

struct pf_stream {
	uint64_t file;
	uint64_t next_chunk;   /* chunk after the last request */
	uint64_t last_start;   /* first chunk of the last request */
	uint64_t last_time;
	int64_t hist[PF_HIST];
	int64_t heur_delta;
	int32_t gru_class;     /* last GRU prediction, -1 none */
	uint32_t used, last_depth; /* adaptive depth: prefetches used since the
				    * last prediction, depth of that one */
	uint8_t hist_n, hist_pos, heur_valid, ring_n, started;
};

struct prefetcher {
	struct prefetch_config c;
	uint32_t F, H, T, V;
	gru_t *model;

	int64_t vocab[64];
	uint32_t nv;
	struct pu_map seen;

	struct pu_map stream_map;
	struct pf_stream *st;
	float *h, *ring_x, *ring_y, *ring_h0, *probs;
	size_t nst, capst;

	float *rp;
	size_t rp_stride, rp_next, rp_count;

	struct prefetch_run pending[16];
	size_t npending;
	float *y;              /* scratch: logits */
	struct prefetch_stats stats;
};

struct prefetch_trainer {
	gru_t *master;
	gru_work_t *work;
	float *batch;
	uint32_t n, B, F, H, T;
	size_t stride;
	float lr;
	uint64_t rng;
};

void prefetch_config_default(struct prefetch_config *c)
{
	c->vocab = 16;
	c->hidden = 8;
	c->bptt = 16;
	c->batch = 16;
	c->lr = 0.003f;
	c->threshold = 0.5f;
	c->max_run = 64;
	c->depth = 1;
	c->seed = 1;
}

void prefetcher_destroy(prefetcher_t *pf)
{
	if (!pf)
		return;
	gru_destroy(pf->model);
	if (pf->seen.keys)
		pu_map_free(&pf->seen);
	if (pf->stream_map.keys)
		pu_map_free(&pf->stream_map);
	free(pf->st);
	free(pf->h);
	free(pf->ring_x);
	free(pf->ring_y);
	free(pf->ring_h0);
	free(pf->probs);
	free(pf->rp);
	free(pf->y);
	free(pf);
}

int prefetcher_create(const struct prefetch_config *c, prefetcher_t **out)
{
	if (c->vocab < 2 || c->vocab > 64 || c->hidden == 0 || c->hidden > 64 ||
	    c->bptt == 0 || c->bptt > 256 || c->batch == 0 || !(c->lr > 0) ||
	    c->max_run == 0 || c->depth == 0 || c->depth > 16)
		return -EINVAL;
	prefetcher_t *pf = calloc(1, sizeof(*pf));
	if (!pf)
		return -ENOMEM;
	pf->c = *c;
	pf->V = c->vocab;
	pf->F = c->vocab + 3;
	pf->H = c->hidden;
	pf->T = c->bptt;
	pf->nv = 1;
	struct gru_shape s = { pf->F, pf->H, pf->V, GRU_LOSS_SOFTMAX };
	int rc = gru_create(&s, c->seed + 101, &pf->model);
	if (rc)
		goto fail;
	rc = -ENOMEM;
	pf->rp_stride = pf->H + (size_t)pf->T * (pf->F + 1);
	pf->rp = malloc(PF_REPLAY * pf->rp_stride * sizeof(float));
	pf->y = malloc(pf->V * sizeof(float));
	if (!pf->rp || !pf->y || pu_map_init(&pf->seen, 1024) ||
	    pu_map_init(&pf->stream_map, 16))
		goto fail;
	size_t len;
	gru_save(pf->model, NULL, 0, &len);
	pf->stats.model_bytes = len + 8 * 64;
	pf->stats.heuristic_accuracy = 0;
	pf->stats.gru_accuracy = 0;
	*out = pf;
	return 0;
fail:
	prefetcher_destroy(pf);
	return rc;
}

static int grow(void **p, size_t elem, size_t cap)
{
	void *n = realloc(*p, elem * cap);

	if (!n)
		return -ENOMEM;
	*p = n;
	return 0;
}

static long stream_get(prefetcher_t *pf, uint64_t file)
{
	uint32_t i = pu_map_get(&pf->stream_map, file);

	if (i != PU_NIL)
		return i;
	if (pf->nst == pf->capst) {
		size_t nc = pf->capst ? pf->capst * 2 : 8;
		if (grow((void **)&pf->st, sizeof(*pf->st), nc) ||
		    grow((void **)&pf->h, pf->H * sizeof(float), nc) ||
		    grow((void **)&pf->ring_h0, pf->H * sizeof(float), nc) ||
		    grow((void **)&pf->ring_x, (size_t)pf->T * pf->F * sizeof(float), nc) ||
		    grow((void **)&pf->ring_y, (size_t)pf->T * sizeof(float), nc) ||
		    grow((void **)&pf->probs, pf->V * sizeof(float), nc))
			return -ENOMEM;
		pf->capst = nc;
	}
	i = (uint32_t)pf->nst++;
	memset(&pf->st[i], 0, sizeof(pf->st[i]));
	pf->st[i].file = file;
	pf->st[i].gru_class = -1;
	memset(pf->h + (size_t)i * pf->H, 0, pf->H * sizeof(float));
	memset(pf->ring_h0 + (size_t)i * pf->H, 0, pf->H * sizeof(float));
	memset(pf->probs + (size_t)i * pf->V, 0, pf->V * sizeof(float));
	pf->stats.streams = pf->nst;
	int rc = pu_map_put(&pf->stream_map, file, i);
	return rc ? rc : (long)i;
}

/* Class of a delta, assigning a vocabulary slot to frequent ones. */
static int class_of(prefetcher_t *pf, int64_t d)
{
	for (uint32_t k = 1; k < pf->nv; k++)
		if (pf->vocab[k] == d)
			return (int)k;
	if (pf->nv == pf->V)
		return 0;
	uint64_t key = (uint64_t)d ^ (1ULL << 62); /* never UINT64_MAX */
	uint32_t n = pu_map_get(&pf->seen, key);
	n = n == PU_NIL ? 1 : n + 1;
	if (n >= VOCAB_MIN) {
		pf->vocab[pf->nv] = d;
		pu_map_del(&pf->seen, key);
		return (int)pf->nv++;
	}
	if (pf->seen.count >= SEEN_MAX) {
		pu_map_free(&pf->seen);
		if (pu_map_init(&pf->seen, 1024))
			return -ENOMEM;
	}
	return pu_map_put(&pf->seen, key, n) ? -ENOMEM : 0;
}

static void emit_sequence(prefetcher_t *pf, uint32_t i)
{
	size_t H = pf->H, T = pf->T, F = pf->F;
	float *slot = pf->rp + pf->rp_next * pf->rp_stride;

	memcpy(slot, pf->ring_h0 + i * H, H * sizeof(float));
	memcpy(slot + H, pf->ring_x + i * T * F, T * F * sizeof(float));
	memcpy(slot + H + T * F, pf->ring_y + i * T, T * sizeof(float));
	pf->rp_next = (pf->rp_next + 1) % PF_REPLAY;
	if (pf->rp_count < PF_REPLAY)
		pf->rp_count++;
	memcpy(pf->ring_h0 + i * H, pf->h + i * H, H * sizeof(float));
	pf->st[i].ring_n = 0;
}

static void add_run(prefetcher_t *pf, uint64_t file, int64_t start, uint32_t n,
		    float conf)
{
	if (start < 0 || pf->npending >= sizeof(pf->pending) / sizeof(*pf->pending))
		return;
	pf->pending[pf->npending++] = (struct prefetch_run){
		file, (uint64_t)start, n, conf };
}

int prefetcher_observe(prefetcher_t *pf, uint64_t file, uint64_t chunk,
		       uint32_t nchunks, int is_write, uint64_t time_us)
{
	long si = stream_get(pf, file);
	size_t H = pf->H, T = pf->T, F = pf->F, V = pf->V;

	if (si < 0)
		return (int)si;
	if (nchunks == 0)
		nchunks = 1;
	struct pf_stream *s = &pf->st[si];
	int cls = 0;
	uint64_t gap = 0;
	int first = !s->started;

	pf->npending = 0;
	pf->stats.requests++;
	if (!first) {
		int64_t d = (int64_t)(chunk - (pf->c.from_start ? s->last_start : s->next_chunk));
		cls = class_of(pf, d);
		if (cls < 0)
			return cls;
		gap = time_us > s->last_time ? time_us - s->last_time : 0;
		/* Score both models on this request. */
		if (s->gru_class >= 0) {
			double ok = s->gru_class == cls && cls != 0;
			pf->stats.gru_accuracy += ACC_ALPHA * (ok - pf->stats.gru_accuracy);
			float pa = pf->probs[si * V + cls];
			double l = -log(pa > 1e-7f ? pa : 1e-7f);
			pf->stats.last_loss = l;
			pf->stats.rolling_loss += ACC_ALPHA * (l - pf->stats.rolling_loss);
		}
		double hok = s->heur_valid && s->heur_delta == d;
		pf->stats.heuristic_accuracy +=
			ACC_ALPHA * (hok - pf->stats.heuristic_accuracy);
		/* The previous step's target is now known. */
		if (s->ring_n > 0) {
			pf->ring_y[si * T + s->ring_n - 1] = (float)cls;
			if (s->ring_n == T)
				emit_sequence(pf, (uint32_t)si);
		}
		s->hist[s->hist_pos] = d;
		s->hist_pos = (s->hist_pos + 1) % PF_HIST;
		if (s->hist_n < PF_HIST)
			s->hist_n++;
	}

	/* GRU step over this request. */
	float *x = pf->ring_x + ((size_t)si * T + s->ring_n) * F;
	memset(x, 0, F * sizeof(float));
	x[cls] = 1.0f;
	x[V] = log1pf((float)gap) / 20.0f;
	x[V + 1] = is_write ? 1.0f : 0.0f;
	x[V + 2] = log1pf((float)nchunks) / 6.0f;
	float *h = pf->h + (size_t)si * H, *y = pf->y, *pr = pf->probs + (size_t)si * V;
	gru_step(pf->model, x, h, h, y);
	pf->ring_y[si * T + s->ring_n] = -1.0f;
	s->ring_n++;
	float mx = y[0], sum = 0;
	for (size_t k = 1; k < V; k++)
		mx = fmaxf(mx, y[k]);
	int best = 0;
	for (size_t k = 0; k < V; k++) {
		pr[k] = expf(y[k] - mx);
		sum += pr[k];
	}
	for (size_t k = 0; k < V; k++) {
		pr[k] /= sum;
		if (pr[k] > pr[best])
			best = (int)k;
	}
	s->gru_class = best;

	/* Majority of the recent deltas. */
	int hbest = 0;
	s->heur_valid = 0;
	for (int a = 0; a < s->hist_n; a++) {
		int cnt = 0;
		for (int b = 0; b < s->hist_n; b++)
			cnt += s->hist[b] == s->hist[a];
		if (cnt > hbest) {
			hbest = cnt;
			s->heur_delta = s->hist[a];
			s->heur_valid = 1;
		}
	}
	s->next_chunk = chunk + nchunks;
	s->last_start = chunk;
	s->started = 1;
	s->last_time = time_us;

	/* The better-scoring model predicts. */
	int64_t d;
	float conf;
	pf->stats.using_gru = pf->stats.gru_accuracy > pf->stats.heuristic_accuracy;
	if (pf->stats.using_gru) {
		if (best == 0 || (uint32_t)best >= pf->nv)
			return 0;
		d = pf->vocab[best];
		conf = pr[best];
	} else {
		if (!s->heur_valid)
			return 0;
		d = s->heur_delta;
		conf = (float)hbest / PF_HIST;
	}
	if (conf < pf->c.threshold)
		return 0;
	uint32_t n = nchunks < pf->c.max_run ? nchunks : pf->c.max_run;
	int64_t start = (int64_t)(pf->c.from_start ? chunk : s->next_chunk) + d;
	int64_t step = pf->c.from_start ? d : (int64_t)nchunks + d;
	uint32_t depth = pf->c.depth;
	if (pf->c.adaptive) {
		uint32_t want = 1;
		if (s->used)
			while (want < s->used + 1)
				want <<= 1;
		else
			want = s->last_depth / 2 ? s->last_depth / 2 : 1;
		depth = want < depth ? want : depth;
		if (conf < pf->c.deep_threshold)
			depth = 1;
		s->last_depth = depth;
		s->used = 0;
	}
	for (uint32_t k = 0; k < depth; k++) {
		add_run(pf, file, start, n, conf);
		start += step;
	}
	pf->stats.predictions++;
	return (int)pf->npending;
}

void prefetcher_used(prefetcher_t *pf, uint64_t file)
{
	uint32_t i = pu_map_get(&pf->stream_map, file);

	if (i != PU_NIL)
		pf->st[i].used++;
}

size_t prefetcher_take(prefetcher_t *pf, struct prefetch_run *out, size_t max)
{
	size_t n = pf->npending < max ? pf->npending : max;

	memcpy(out, pf->pending, n * sizeof(*out));
	pf->npending = 0;
	return n;
}

void prefetcher_stats(const prefetcher_t *pf, struct prefetch_stats *s)
{
	*s = pf->stats;
}

/* ---- training ------------------------------------------------------------- */

int prefetch_trainer_create(prefetcher_t *pf, prefetch_trainer_t **out)
{
	prefetch_trainer_t *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->B = pf->c.batch;
	t->F = pf->F;
	t->H = pf->H;
	t->T = pf->T;
	t->lr = pf->c.lr;
	t->stride = pf->rp_stride;
	t->rng = pf->c.seed * 0x2545f4914f6cdd1dULL + 3;
	int rc = gru_clone(pf->model, &t->master);
	if (!rc)
		rc = gru_work_create(t->master, t->T, &t->work);
	t->batch = malloc(t->B * t->stride * sizeof(float));
	if (!rc && !t->batch)
		rc = -ENOMEM;
	if (rc) {
		prefetch_trainer_destroy(t);
		return rc;
	}
	*out = t;
	return 0;
}

void prefetch_trainer_destroy(prefetch_trainer_t *t)
{
	if (!t)
		return;
	gru_destroy(t->master);
	gru_work_destroy(t->work);
	free(t->batch);
	free(t);
}

int prefetch_take_batch(prefetcher_t *pf, prefetch_trainer_t *t)
{
	t->n = 0;
	if (pf->rp_count == 0)
		return 0;
	for (uint32_t b = 0; b < t->B; b++) {
		size_t s = pu_rng_next(&t->rng) % pf->rp_count;
		memcpy(t->batch + b * t->stride, pf->rp + s * pf->rp_stride,
		       t->stride * sizeof(float));
	}
	t->n = t->B;
	return (int)t->n;
}

double prefetch_train_batch(prefetch_trainer_t *t)
{
	double sum = 0;
	uint32_t count = 0;

	if (t->n == 0)
		return 0;
	for (uint32_t b = 0; b < t->n; b++) {
		const float *s = t->batch + b * t->stride;
		double l;
		uint32_t c;
		int rc = gru_accumulate(t->master, t->work, s, s + t->H,
					s + t->H + (size_t)t->T * t->F, t->T, &l, &c);
		if (rc)
			return rc;
		sum += l;
		count += c;
	}
	gru_adam_step(t->master, t->work, t->lr, count);
	t->n = 0;
	return count ? sum / count : 0;
}

int prefetch_publish(prefetcher_t *pf, prefetch_trainer_t *t)
{
	int rc = gru_copy_weights(pf->model, t->master);

	if (!rc)
		pf->stats.train_steps++;
	return rc;
}

/* Saved form: "SPFV" u32 nv, u32 V, i64 vocab[V], then the GRU's bytes.
 * The vocabulary must travel with the weights: class k means vocab[k]. */
int prefetcher_save(const prefetcher_t *pf, void *buf, size_t cap, size_t *len)
{
	size_t head = 12 + 8 * (size_t)pf->V, glen;
	uint8_t *b = buf;

	gru_save(pf->model, NULL, 0, &glen);
	*len = head + glen;
	if (cap < *len)
		return -ENOSPC;
	memcpy(b, "SPFV", 4);
	memcpy(b + 4, &pf->nv, 4);
	memcpy(b + 8, &pf->V, 4);
	memcpy(b + 12, pf->vocab, 8 * (size_t)pf->V);
	return gru_save(pf->model, b + head, glen, &glen);
}

int prefetcher_load(prefetcher_t *pf, prefetch_trainer_t *t, const void *buf,
		    size_t len, char *err, size_t errlen)
{
	const uint8_t *b = buf;
	uint32_t nv, V;

	if (len < 12 || memcmp(b, "SPFV", 4) != 0) {
		if (err && errlen)
			snprintf(err, errlen, "not a prefetch model");
		return -EBADMSG;
	}
	memcpy(&nv, b + 4, 4);
	memcpy(&V, b + 8, 4);
	if (V != pf->V || nv > V || nv == 0) {
		if (err && errlen)
			snprintf(err, errlen, "prefetch vocabulary of %u classes, expected %u", V, pf->V);
		return -EINVAL;
	}
	size_t head = 12 + 8 * (size_t)V;
	if (len < head)
		return -EBADMSG;
	int rc = gru_load(pf->model, b + head, len - head, err, errlen);
	if (rc)
		return rc;
	memcpy(pf->vocab, b + 12, 8 * (size_t)V);
	pf->nv = nv;
	if (t)
		rc = gru_copy_weights(t->master, pf->model);
	return rc;
}
