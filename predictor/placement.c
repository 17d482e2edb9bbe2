/*
 * placement.c - GRU placement model, the learned policy and the planner.
 *
 * Data structures first:
 *
 *   struct pl_region  one per region ever touched (hot fields only); its GRU
 *                     hidden state and training history live in parallel
 *                     float arrays indexed by the region's index (h, ring_x,
 *                     ring_y, ring_h0), so the struct stays small.
 *                     Cold regions are forgotten beyond max_regions
 *                     (forget_cold_regions) and their index reused.
 *   struct pl_file    per file: the fine-tuned output bias and the last chunk
 *                     accessed (for the sequentiality feature).
 *   expq              K+1 lists of region indexes: a region stepped at window
 *                     W sits in list (W + K) mod (K+1) and is looked at again
 *                     at the end of window W + K, when its label expires.
 *   replay            a ring of training sequences (h0, x[1..n], label of the
 *                     last step), filled as labels resolve.
 *   struct lpol       the learned cache policy: S3-FIFO's queues with the
 *                     region's p in its promotion and eviction decisions.
 *
 * Why regions and windows: a per-chunk, per-access model would cost far more
 * than the 1 us per access budget.  One GRU step per active region per
 * window is a few hundred multiply-adds shared by all the accesses the
 * region got in that window.
 *
 * Why the label is "touched again within K windows": that is the question
 * the fast tier asks (will this still be useful before it would be pushed
 * out), and the stream answers it by itself after K windows, so the model
 * trains online without any look-ahead.  K * window is set to about twice
 * the fast tier's capacity in accesses by the predictor.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "predictor/gru.h"
#include "predictor/placement.h"
#include "predictor/policy_impl.h"
#include "predictor/pred_util.h"

#define PL_F 9          /* features per window */
#define PL_REPLAY 16384 /* training sequences kept */
#define PL_NONE UINT32_MAX
#define PL_BIAS_LR 0.0002f

struct pl_region {
	uint64_t rkey;        /* PRED_KEY(file, first chunk) >> shift */
	uint64_t touched;     /* chunks ever accessed */
	uint64_t resident;    /* chunks on the fast tier (learned policy) */
	float p;              /* current reuse probability */
	uint32_t last_active; /* window of the last access, PL_NONE if never */
	uint32_t last_step;   /* window of the last GRU step, PL_NONE if never */
	uint32_t total;       /* accesses ever (saturating) */
	uint32_t file_idx;
	uint16_t reads, writes, seq, reuse; /* this window, saturating */
	uint8_t active, pending, tier, ring_n, idle_steps;
};

struct pl_file {
	uint64_t file;
	uint64_t last_chunk;
	float bias;
};

struct u32vec {
	uint32_t *v;
	size_t n, cap;
};

struct lpol;

struct placer {
	struct placer_config c;
	uint32_t nchunks;     /* per region */
	gru_t *model;
	uint32_t H, T;

	struct pu_map region_map;
	struct u32vec free_reg; /* indexes of forgotten regions, for reuse */
	uint32_t last_sweep;    /* window of the last forgetting sweep */
	struct pl_region *reg;
	float *h, *ring_x, *ring_y, *ring_h0;
	size_t nreg, capreg;

	struct pu_map file_map;
	struct pl_file *files;
	size_t nfiles, capfiles;

	struct u32vec active;
	struct u32vec *expq;  /* horizon + 1 lists */

	uint32_t win;         /* current window number */
	uint32_t in_win;      /* accesses in the current window */

	/* replay buffer */
	float *rp_data;       /* PL_REPLAY slots of rp_stride floats */
	uint32_t *rp_len;
	uint32_t *rp_step;    /* window of the prediction each sequence ends in */
	size_t rp_stride, rp_next, rp_count;

	double win_loss_sum, last_win_loss, rolling_loss, total_loss;
	uint64_t win_loss_n, last_win_n;
	float prior;          /* p of a never-stepped region */
	struct placer_stats st;
	struct lpol *pol;     /* attached learned policy, if any */
};

struct placer_trainer {
	gru_t *master;
	gru_work_t *work;
	float *batch;
	uint32_t *len;
	uint32_t n, B;
	size_t stride;
	uint32_t F, H, T;
	float lr;
	uint64_t rng;
};


/* ---- small helpers ---------------------------------------------------------- */

static int vec_push(struct u32vec *v, uint32_t x)
{
	if (v->n == v->cap) {
		size_t nc = v->cap ? v->cap * 2 : 64;
		uint32_t *n = realloc(v->v, nc * sizeof(*n));
		if (!n)
			return -ENOMEM;
		v->v = n;
		v->cap = nc;
	}
	v->v[v->n++] = x;
	return 0;
}

static inline float sigmf(float x) { return 1.0f / (1.0f + expf(-x)); }

void placer_config_default(struct placer_config *c)
{
	c->region_shift = 6;
	c->window = 2048;
	c->horizon = 16;
	c->hidden = 12;
	c->bptt = 6;
	c->batch = 32;
	c->lr = 0.001f;
	c->margin = 2.0f;
	c->max_regions = 0;
	c->seed = 1;
}

int placer_create(const struct placer_config *c, placer_t **out)
{
	if (c->region_shift > 6 || c->window == 0 || c->horizon == 0 ||
	    c->horizon > 4096 || c->hidden == 0 || c->hidden > 64 ||
	    c->bptt == 0 || c->bptt > 64 || c->batch == 0 || !(c->lr > 0) ||
	    !(c->margin > 0))
		return -EINVAL;
	placer_t *pl = calloc(1, sizeof(*pl));
	if (!pl)
		return -ENOMEM;
	pl->c = *c;
	pl->nchunks = 1u << c->region_shift;
	pl->H = c->hidden;
	pl->T = c->bptt;
	struct gru_shape s = { PL_F, c->hidden, 1, GRU_LOSS_BCE };
	int rc = gru_create(&s, c->seed, &pl->model);
	if (rc)
		goto fail;
	rc = -ENOMEM;
	pl->expq = calloc(c->horizon + 1, sizeof(*pl->expq));
	pl->rp_stride = (size_t)pl->H + (size_t)pl->T * (PL_F + 1);
	pl->rp_data = malloc(PL_REPLAY * pl->rp_stride * sizeof(float));
	pl->rp_len = calloc(PL_REPLAY, sizeof(*pl->rp_len));
	pl->rp_step = calloc(PL_REPLAY, sizeof(*pl->rp_step));
	if (!pl->expq || !pl->rp_data || !pl->rp_len || !pl->rp_step)
		goto fail;
	if (pu_map_init(&pl->region_map, 4096) || pu_map_init(&pl->file_map, 16))
		goto fail;
	float y, h0[64] = { 0 };
	gru_head(pl->model, h0, &y);
	pl->prior = sigmf(y);
	{
		size_t len = 0;
		gru_save(pl->model, NULL, 0, &len);
		pl->st.model_bytes = len;
	}
	*out = pl;
	return 0;
fail:
	placer_destroy(pl);
	return rc;
}

void placer_destroy(placer_t *pl)
{
	if (!pl)
		return;
	gru_destroy(pl->model);
	if (pl->region_map.keys)
		pu_map_free(&pl->region_map);
	if (pl->file_map.keys)
		pu_map_free(&pl->file_map);
	free(pl->reg);
	free(pl->h);
	free(pl->ring_x);
	free(pl->ring_y);
	free(pl->ring_h0);
	free(pl->files);
	free(pl->active.v);
	free(pl->free_reg.v);
	if (pl->expq)
		for (uint32_t i = 0; i <= pl->c.horizon; i++)
			free(pl->expq[i].v);
	free(pl->expq);
	free(pl->rp_data);
	free(pl->rp_len);
	free(pl->rp_step);
	free(pl);
}

static int grow(void **p, size_t elem, size_t cap)
{
	void *n = realloc(*p, elem * cap);

	if (!n)
		return -ENOMEM;
	*p = n;
	return 0;
}

static long file_get(placer_t *pl, uint64_t file)
{
	uint32_t i = pu_map_get(&pl->file_map, file);

	if (i != PU_NIL)
		return i;
	if (pl->nfiles == pl->capfiles) {
		size_t nc = pl->capfiles ? pl->capfiles * 2 : 16;
		if (grow((void **)&pl->files, sizeof(*pl->files), nc))
			return -ENOMEM;
		pl->capfiles = nc;
	}
	i = (uint32_t)pl->nfiles++;
	pl->files[i] = (struct pl_file){ .file = file, .last_chunk = UINT64_MAX };
	int rc = pu_map_put(&pl->file_map, file, i);
	return rc ? rc : (long)i;
}

static long region_get(placer_t *pl, uint64_t key, int create)
{
	uint64_t rkey = key >> pl->c.region_shift;
	uint32_t i = pu_map_get(&pl->region_map, rkey);

	if (i != PU_NIL || !create)
		return i == PU_NIL ? -ENOENT : (long)i;
	long fi = file_get(pl, PRED_KEY_FILE(key));
	if (fi < 0)
		return fi;
	if (pl->free_reg.n) {
		i = pl->free_reg.v[--pl->free_reg.n];
		goto init;
	}
	if (pl->nreg >= PU_NIL - 1)
		return -ENOSPC;
	if (pl->nreg == pl->capreg) {
		size_t nc = pl->capreg ? pl->capreg * 2 : 1024;
		size_t H = pl->H, T = pl->T;
		if (grow((void **)&pl->reg, sizeof(*pl->reg), nc) ||
		    grow((void **)&pl->h, H * sizeof(float), nc) ||
		    grow((void **)&pl->ring_h0, H * sizeof(float), nc) ||
		    grow((void **)&pl->ring_x, T * PL_F * sizeof(float), nc) ||
		    grow((void **)&pl->ring_y, T * sizeof(float), nc))
			return -ENOMEM;
		pl->capreg = nc;
	}
	i = (uint32_t)pl->nreg++;
init:
	pl->reg[i] = (struct pl_region){
		.rkey = rkey,
		.p = sigmf(logf(pl->prior / (1 - pl->prior)) + pl->files[fi].bias),
		.last_active = PL_NONE,
		.last_step = PL_NONE,
		.file_idx = (uint32_t)fi,
		.tier = PLACER_TIER_BOTTOM,
	};
	memset(pl->h + (size_t)i * pl->H, 0, pl->H * sizeof(float));
	memset(pl->ring_h0 + (size_t)i * pl->H, 0, pl->H * sizeof(float));
	int rc = pu_map_put(&pl->region_map, rkey, i);
	pl->st.regions = pl->nreg - pl->free_reg.n;
	return rc ? rc : (long)i;
}

/*
 * Bounded memory: when more than max_regions are known, forget regions that
 * have been idle for over 2 horizons, hold nothing on the fast tier and sit
 * on the bottom tier, until a quarter of the limit is free again.  Their
 * index goes to a free list.  Safe because nothing else refers to such a
 * region: its expiry entries were consumed K windows after its last step,
 * the learned policy has no chunk of it, and it is not on the active list.
 * The cost is a scan of the regions, at most once every 16 windows.
 */
static int forget_cold_regions(placer_t *pl)
{
	uint32_t K = pl->c.horizon;
	size_t live = pl->nreg - pl->free_reg.n;
	size_t target = pl->c.max_regions - pl->c.max_regions / 4;

	if (!pl->c.max_regions || live <= pl->c.max_regions ||
	    pl->win - pl->last_sweep < 16)
		return 0;
	pl->last_sweep = pl->win;
	for (size_t i = 0; i < pl->nreg && live > target; i++) {
		struct pl_region *r = &pl->reg[i];
		if (!r->touched || r->resident || r->active || r->pending ||
		    r->tier != PLACER_TIER_BOTTOM || r->last_active == PL_NONE ||
		    pl->win - r->last_active <= 2 * K)
			continue;
		pu_map_del(&pl->region_map, r->rkey);
		r->touched = 0;
		int rc = vec_push(&pl->free_reg, (uint32_t)i);
		if (rc)
			return rc;
		live--;
		pl->st.forgotten++;
	}
	pl->st.regions = live;
	return 0;
}

/* ---- window processing -------------------------------------------------------- */

static void features(const placer_t *pl, const struct pl_region *r, int active,
		     float *x)
{
	float acc = (float)r->reads + (float)r->writes;
	float n = (float)pl->nchunks;
	uint32_t gap = r->last_active == PL_NONE ? 64 : pl->win - r->last_active;

	x[0] = active ? log1pf((float)r->reads) / 5.0f : 0;
	x[1] = active ? log1pf((float)r->writes) / 5.0f : 0;
	x[2] = fminf(1.0f, log1pf((float)gap) / log1pf(64.0f));
	x[3] = active && acc > 0 ? (float)r->seq / acc : 0;
	x[4] = active && acc > 0 ? (float)r->reuse / acc : 0;
	x[5] = (float)__builtin_popcountll(r->resident) / n;
	x[6] = log1pf((float)r->total) / 10.0f;
	x[7] = (float)__builtin_popcountll(r->touched) / n;
	x[8] = active ? 1.0f : 0.0f;
}

/* The pending label of region i resolved to y: score the prediction, adjust
 * the file's bias, and store a training sequence ending at that step. */
static void resolve(placer_t *pl, uint32_t i, float y)
{
	struct pl_region *r = &pl->reg[i];
	float p = fminf(fmaxf(r->p, 1e-6f), 1 - 1e-6f);
	size_t T = pl->T, H = pl->H;

	r->pending = 0;
	double l = -(y * logf(p) + (1 - y) * logf(1 - p));
	pl->win_loss_sum += l;
	pl->win_loss_n++;
	pl->total_loss += l;
	pl->st.positives += y > 0.5f;
	pl->st.mean_loss = pl->total_loss / (double)(pl->st.samples + 1);
	struct pl_file *f = &pl->files[r->file_idx];
	f->bias -= PL_BIAS_LR * (p - y);
	f->bias = fminf(fmaxf(f->bias, -4.0f), 4.0f);

	uint32_t n = r->ring_n;
	pl->ring_y[(size_t)i * T + n - 1] = y;
	float *slot = pl->rp_data + pl->rp_next * pl->rp_stride;
	memcpy(slot, pl->ring_h0 + (size_t)i * H, H * sizeof(float));
	memcpy(slot + H, pl->ring_x + (size_t)i * T * PL_F, n * PL_F * sizeof(float));
	float *ys = slot + H + T * PL_F;
	for (uint32_t k = 0; k + 1 < n; k++)
		ys[k] = -1.0f; /* earlier steps already trained on */
	ys[n - 1] = y;
	pl->rp_len[pl->rp_next] = n;
	pl->rp_step[pl->rp_next] = r->last_step;
	pl->rp_next = (pl->rp_next + 1) % PL_REPLAY;
	if (pl->rp_count < PL_REPLAY)
		pl->rp_count++;
	pl->st.samples++;
	/* A full history restarts from the current hidden state. */
	if (n == T) {
		memcpy(pl->ring_h0 + (size_t)i * H, pl->h + (size_t)i * H, H * sizeof(float));
		r->ring_n = 0;
	}
}

static int step_region(placer_t *pl, uint32_t i, int active)
{
	struct pl_region *r = &pl->reg[i];
	size_t T = pl->T, H = pl->H;
	float *x = pl->ring_x + ((size_t)i * T + r->ring_n) * PL_F;
	float *h = pl->h + (size_t)i * H;
	float y;

	features(pl, r, active, x);
	gru_step(pl->model, x, h, h, &y);
	r->p = sigmf(y + pl->files[r->file_idx].bias);
	r->ring_n++;
	r->pending = 1;
	r->last_step = pl->win;
	pl->st.steps++;
	return vec_push(&pl->expq[(pl->win + pl->c.horizon) % (pl->c.horizon + 1)], i);
}

static int close_window(placer_t *pl)
{
	uint32_t K = pl->c.horizon;
	int rc = 0;

	pl->win_loss_sum = 0;
	pl->win_loss_n = 0;
	for (size_t k = 0; k < pl->active.n; k++) {
		uint32_t i = pl->active.v[k];
		struct pl_region *r = &pl->reg[i];
		if (r->pending)
			resolve(pl, i, 1.0f);
		rc = step_region(pl, i, 1);
		if (rc)
			return rc;
		r = &pl->reg[i];
		r->active = 0;
		r->idle_steps = 0;
		r->last_active = pl->win;
		r->reads = r->writes = r->seq = r->reuse = 0;
	}
	pl->active.n = 0;

	/* Labels that expired: stepped K windows ago and not touched since.
	 * Idle regions with chunks on the fast tier are stepped again so their
	 * p keeps falling (or not) as they stay idle. */
	struct u32vec *q = &pl->expq[pl->win % (K + 1)];
	for (size_t k = 0; k < q->n; k++) {
		uint32_t i = q->v[k];
		struct pl_region *r = &pl->reg[i];
		if (r->last_step + K != pl->win)
			continue; /* stepped again since */
		if (r->pending)
			resolve(pl, i, 0.0f);
		if (r->resident || r->idle_steps < 1) {
			r->idle_steps++;
			rc = step_region(pl, i, 0);
			if (rc)
				return rc;
		}
	}
	q->n = 0;

	pl->last_win_n = pl->win_loss_n;
	pl->last_win_loss = pl->win_loss_n ? pl->win_loss_sum / (double)pl->win_loss_n : 0;
	if (pl->win_loss_n)
		pl->rolling_loss = pl->st.windows < 1 ? pl->last_win_loss :
			0.95 * pl->rolling_loss + 0.05 * pl->last_win_loss;
	pl->win++;
	pl->in_win = 0;
	pl->st.windows++;
	rc = forget_cold_regions(pl);
	if (rc)
		return rc;
	pl->st.last_window_loss = pl->last_win_loss;
	pl->st.rolling_loss = pl->rolling_loss;
	return 0;
}

int placer_observe(placer_t *pl, uint64_t file, uint64_t chunk, int is_write)
{
	if (file > PRED_MAX_FILE || chunk > PRED_MAX_CHUNK)
		return -ERANGE;
	uint64_t key = PRED_KEY(file, chunk);
	long ri = region_get(pl, key, 1);
	if (ri < 0)
		return (int)ri;
	struct pl_region *r = &pl->reg[ri];
	struct pl_file *f = &pl->files[r->file_idx];
	uint64_t bit = 1ULL << (chunk & (pl->nchunks - 1));

	if (f->last_chunk + 1 == chunk && r->seq < UINT16_MAX)
		r->seq++;
	f->last_chunk = chunk;
	if ((r->touched & bit) && r->reuse < UINT16_MAX)
		r->reuse++;
	r->touched |= bit;
	if (is_write) {
		if (r->writes < UINT16_MAX)
			r->writes++;
	} else if (r->reads < UINT16_MAX) {
		r->reads++;
	}
	if (r->total < UINT32_MAX)
		r->total++;
	if (!r->active) {
		r->active = 1;
		int rc = vec_push(&pl->active, (uint32_t)ri);
		if (rc)
			return rc;
	}
	if (++pl->in_win < pl->c.window)
		return 0;
	int rc = close_window(pl);
	return rc ? rc : 1;
}

double placer_window_loss(const placer_t *pl, uint64_t *count)
{
	if (count)
		*count = pl->last_win_n;
	return pl->last_win_loss;
}

float placer_probability(placer_t *pl, uint64_t file, uint64_t chunk)
{
	long ri = region_get(pl, PRED_KEY(file, chunk), 0);

	return ri < 0 ? pl->prior : pl->reg[ri].p;
}

int placer_set_tier(placer_t *pl, uint64_t file, uint64_t chunk, uint8_t tier)
{
	if (file > PRED_MAX_FILE || chunk > PRED_MAX_CHUNK)
		return -ERANGE;
	long ri = region_get(pl, PRED_KEY(file, chunk), 1);
	if (ri < 0)
		return (int)ri;
	pl->reg[ri].tier = tier;
	return 0;
}

void placer_stats(const placer_t *pl, struct placer_stats *s)
{
	*s = pl->st;
}

/* ---- ranking and planning ----------------------------------------------------- */

struct rank_ent {
	float p;
	uint32_t idx;
};

static int cmp_rank(const void *a, const void *b)
{
	const struct rank_ent *x = a, *y = b;

	if (x->p != y->p)
		return x->p > y->p ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static struct rank_ent *ranked(const placer_t *pl, size_t *n)
{
	struct rank_ent *e = malloc((pl->nreg + 1) * sizeof(*e));

	if (!e)
		return NULL;
	*n = 0;
	for (size_t i = 0; i < pl->nreg; i++)
		if (pl->reg[i].touched)
			e[(*n)++] = (struct rank_ent){ pl->reg[i].p, (uint32_t)i };
	qsort(e, *n, sizeof(*e), cmp_rank);
	return e;
}

static void region_info(const placer_t *pl, uint32_t i, struct placer_region_info *o)
{
	uint64_t key = pl->reg[i].rkey << pl->c.region_shift;

	o->file = PRED_KEY_FILE(key);
	o->chunk = PRED_KEY_CHUNK(key);
	o->nchunks = pl->nchunks;
	o->tier = pl->reg[i].tier;
	o->p = pl->reg[i].p;
}

long placer_rank(placer_t *pl, struct placer_region_info *out, size_t max)
{
	size_t n = 0;
	struct rank_ent *e = ranked(pl, &n);

	if (!e)
		return -ENOMEM;
	if (n > max)
		n = max;
	for (size_t k = 0; k < n; k++)
		region_info(pl, e[k].idx, &out[k]);
	free(e);
	return (long)n;
}

static int cmp_move(const void *a, const void *b)
{
	const struct placer_move *x = a, *y = b;
	float bx = x->p, by = y->p; /* benefit stored in p temporarily */

	return bx > by ? -1 : bx < by;
}

long placer_plan(placer_t *pl, enum placer_mode mode, const uint64_t *caps,
		 unsigned ntiers, float hyst, struct placer_move *out, size_t max)
{
	static const float thr[3] = { 0.8f, 0.5f, 0.2f };
	size_t n = 0;

	if (ntiers == 0 || ntiers > 254 || (mode != PLACER_RANK && mode != PLACER_THRESHOLDS))
		return -EINVAL;
	struct rank_ent *e = ranked(pl, &n);
	uint8_t *target = malloc(n + 1);
	struct placer_move *mv = malloc((n + 1) * sizeof(*mv));
	float boundary[256];
	uint64_t used[256] = { 0 };
	if (!e || !target || !mv) {
		free(e);
		free(target);
		free(mv);
		return -ENOMEM;
	}
	for (unsigned t = 0; t < ntiers; t++)
		boundary[t] = 1.0f;
	/* Targets, best region first. */
	for (size_t k = 0; k < n; k++) {
		unsigned t = 0;
		if (mode == PLACER_THRESHOLDS) {
			float p = e[k].p;
			t = p >= thr[0] ? 0 : p >= thr[1] ? 1 : p >= thr[2] ? 2 : 3;
			if (t >= ntiers)
				t = ntiers - 1;
		}
		while (t + 1 < ntiers && used[t] + pl->nchunks > caps[t])
			t++;
		used[t] += pl->nchunks;
		target[k] = (uint8_t)t;
		boundary[t] = e[k].p; /* ends as the lowest p placed in t */
	}
	size_t m = 0;
	for (size_t k = 0; k < n; k++) {
		const struct pl_region *r = &pl->reg[e[k].idx];
		unsigned cur = r->tier >= ntiers ? ntiers - 1 : r->tier;
		unsigned to = target[k];
		float p = e[k].p, benefit;
		if (to == cur)
			continue;
		/* Hysteresis: move only regions clearly on the other side of the
		 * boundary of the tier they are in (demotion) or go to (promotion). */
		benefit = to < cur ? p - boundary[to] : boundary[cur] - p;
		if (mode == PLACER_RANK && benefit < hyst)
			continue;
		struct placer_region_info ri;
		region_info(pl, e[k].idx, &ri);
		mv[m++] = (struct placer_move){ ri.file, ri.chunk, ri.nchunks,
						(uint8_t)cur, (uint8_t)to, fabsf(benefit) };
	}
	qsort(mv, m, sizeof(*mv), cmp_move);
	if (m > max)
		m = max;
	for (size_t k = 0; k < m; k++) {
		out[k] = mv[k];
		out[k].p = placer_probability(pl, mv[k].file, mv[k].chunk);
	}
	free(e);
	free(target);
	free(mv);
	return (long)m;
}

/* ---- training ---------------------------------------------------------------- */

int placer_trainer_create(placer_t *pl, placer_trainer_t **out)
{
	placer_trainer_t *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->B = pl->c.batch;
	t->F = PL_F;
	t->H = pl->H;
	t->T = pl->T;
	t->lr = pl->c.lr;
	t->rng = pl->c.seed * 0x9e3779b97f4a7c15ULL + 17;
	t->stride = pl->rp_stride;
	int rc = gru_clone(pl->model, &t->master);
	if (!rc)
		rc = gru_work_create(t->master, t->T, &t->work);
	t->batch = malloc(t->B * t->stride * sizeof(float));
	t->len = malloc(t->B * sizeof(*t->len));
	if (!rc && (!t->batch || !t->len))
		rc = -ENOMEM;
	if (rc) {
		placer_trainer_destroy(t);
		return rc;
	}
	*out = t;
	return 0;
}

void placer_trainer_destroy(placer_trainer_t *t)
{
	if (!t)
		return;
	gru_destroy(t->master);
	gru_work_destroy(t->work);
	free(t->batch);
	free(t->len);
	free(t);
}

int placer_take_batch(placer_t *pl, placer_trainer_t *t)
{
	t->n = 0;
	if (pl->rp_count < t->B)
		return 0;
	/*
	 * Uniform over the sequences whose prediction is at least K windows
	 * old.  A positive label resolves as soon as the region comes back, a
	 * negative only after K windows; training on fresh positives next to
	 * K-window-old negatives would teach the model "whatever looks like
	 * now is reused", which it then predicts for everything (we measured
	 * exactly that: confident and wrong).  Waiting until both kinds are
	 * equally old removes the bias.  Not "newest first" either: labels
	 * resolve in one-sided bursts.
	 */
	uint32_t tries = 16 * t->B;
	t->n = 0;
	while (t->n < t->B && tries--) {
		size_t s = pu_rng_next(&t->rng) % pl->rp_count;
		if (pl->rp_step[s] + pl->c.horizon > pl->win)
			continue;
		memcpy(t->batch + t->n * t->stride, pl->rp_data + s * pl->rp_stride,
		       t->stride * sizeof(float));
		t->len[t->n++] = pl->rp_len[s];
	}
	return (int)t->n;
}

double placer_train_batch(placer_trainer_t *t)
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
					s + t->H + t->T * t->F, t->len[b], &l, &c);
		if (rc)
			return rc;
		sum += l;
		count += c;
	}
	gru_adam_step(t->master, t->work, t->lr, count);
	t->n = 0;
	return count ? sum / count : 0;
}

int placer_publish(placer_t *pl, placer_trainer_t *t)
{
	int rc = gru_copy_weights(pl->model, t->master);

	if (!rc) {
		float y, h0[64] = { 0 };
		gru_head(pl->model, h0, &y);
		pl->prior = sigmf(y);
		pl->st.train_steps++;
	}
	return rc;
}

int placer_save(const placer_t *pl, void *buf, size_t cap, size_t *len)
{
	return gru_save(pl->model, buf, cap, len);
}

int placer_load(placer_t *pl, placer_trainer_t *t, const void *buf, size_t len,
		char *err, size_t errlen)
{
	int rc = gru_load(pl->model, buf, len, err, errlen);

	if (!rc && t)
		rc = gru_copy_weights(t->master, pl->model);
	return rc;
}

/* ---- the learned policy ------------------------------------------------------- */

/*
 * S3-FIFO's structure with the model in its two decisions.  A small FIFO S
 * (10%) takes new chunks, a main FIFO M (90%) keeps what proved useful, a
 * ghost FIFO G remembers chunks evicted from S.  S3-FIFO decides on one bit
 * of evidence per chunk (was it hit again while in S / since M last looked
 * at it); the model adds what the chunk's region is likely to do next:
 *   - leaving S: to M if hit twice (as S3-FIFO), or if the region's p is
 *     above 'promote'; else to G;
 *   - leaving M: reinserted if hit since (as S3-FIFO); else, of the next
 *     LPOL_SAMPLE unreferenced chunks from the tail, the one whose region
 *     is least likely to come back is evicted.
 * The promotion threshold follows the rolling share of positive labels
 * (times 'margin'), so "above" means "more likely than an average region".
 */
enum { LQ_S, LQ_M, LQ_G };

/* Unreferenced main-queue chunks compared at each eviction (chosen on the
 * first 80% of the traces among 2, 8 and 32). */
#define LPOL_SAMPLE 32

struct lpol {
	struct policy base;
	placer_t *pl;
	struct pu_map map;
	struct pu_list q[3];
	uint64_t s_cap, m_cap, g_cap;
	uint64_t *key;
	uint32_t *prev, *next, *region;
	uint8_t *where, *freq;
	uint32_t *free_ids;
	uint32_t nfree;
};

static float lpol_threshold(const struct lpol *lp, float scale)
{
	const placer_t *pl = lp->pl;
	float base = pl->st.samples > 100 ?
		(float)pl->st.positives / (float)pl->st.samples : 0.5f;

	return fminf(0.99f, base * scale);
}

static void lpol_free_node(struct lpol *lp, uint32_t id)
{
	pu_map_del(&lp->map, lp->key[id]);
	lp->free_ids[lp->nfree++] = id;
}

static void lpol_push(struct lpol *lp, uint32_t id, int q)
{
	pu_list_push_head(&lp->q[q], lp->prev, lp->next, id);
	lp->where[id] = (uint8_t)q;
}

static void lpol_gone(struct lpol *lp, uint32_t id)
{
	placer_t *pl = lp->pl;

	pl->reg[lp->region[id]].resident &= ~(1ULL << (lp->key[id] & (pl->nchunks - 1)));
	lp->base.size--;
	policy_notify(&lp->base, lp->key[id], 0);
}

static void lpol_evict_m(struct lpol *lp)
{
	const placer_t *pl = lp->pl;

	while (lp->q[LQ_M].len) {
		uint32_t id = lp->q[LQ_M].tail;
		if (lp->freq[id] > 0) {
			pu_list_unlink(&lp->q[LQ_M], lp->prev, lp->next, id);
			lp->freq[id]--;
			lpol_push(lp, id, LQ_M);
			continue;
		}
		/* S3-FIFO would evict the tail now.  Look at the next few
		 * unreferenced chunks too and evict the one whose region the
		 * model finds least likely to come back. */
		uint32_t victim = id;
		float best = pl->reg[lp->region[id]].p;
		int seen = 1;
		int walked = 0;
		for (uint32_t c = lp->prev[id]; c != PU_NIL && seen < LPOL_SAMPLE &&
		     walked++ < 2 * LPOL_SAMPLE; c = lp->prev[c]) {
			if (lp->freq[c] > 0)
				continue;
			seen++;
			if (pl->reg[lp->region[c]].p < best) {
				best = pl->reg[lp->region[c]].p;
				victim = c;
			}
		}
		pu_list_unlink(&lp->q[LQ_M], lp->prev, lp->next, victim);
		lpol_gone(lp, victim);
		lpol_free_node(lp, victim);
		return;
	}
}

static void lpol_evict_s(struct lpol *lp)
{
	float promote = lpol_threshold(lp, lp->pl->c.margin);

	while (lp->q[LQ_S].len) {
		uint32_t id = lp->q[LQ_S].tail;
		pu_list_unlink(&lp->q[LQ_S], lp->prev, lp->next, id);
		if (lp->freq[id] > 1 || lp->pl->reg[lp->region[id]].p > promote) {
			lpol_push(lp, id, LQ_M);
			if (lp->q[LQ_M].len > lp->m_cap) {
				lpol_evict_m(lp);
				return;
			}
			continue;
		}
		lpol_gone(lp, id);
		if (lp->g_cap && lp->q[LQ_G].len >= lp->g_cap) {
			uint32_t old = lp->q[LQ_G].tail;
			pu_list_unlink(&lp->q[LQ_G], lp->prev, lp->next, old);
			lpol_free_node(lp, old);
		}
		lpol_push(lp, id, LQ_G);
		return;
	}
}

static int lpol_access(policy_t *p, uint64_t key, uint64_t next_use)
{
	struct lpol *lp = (struct lpol *)p;
	placer_t *pl = lp->pl;
	uint32_t id = pu_map_get(&lp->map, key);
	int to = LQ_S;

	(void)next_use;
	if (id != PU_NIL && lp->where[id] != LQ_G) {
		if (lp->freq[id] < 3)
			lp->freq[id]++;
		return 1;
	}
	if (id != PU_NIL) {
		pu_list_unlink(&lp->q[LQ_G], lp->prev, lp->next, id);
		lpol_free_node(lp, id);
		to = LQ_M;
	}
	long ri = region_get(pl, key, 1);
	if (ri < 0)
		return (int)ri;
	while (p->size >= p->capacity) {
		if (lp->q[LQ_S].len >= lp->s_cap || lp->q[LQ_M].len == 0)
			lpol_evict_s(lp);
		else
			lpol_evict_m(lp);
	}
	id = lp->free_ids[--lp->nfree];
	lp->key[id] = key;
	lp->region[id] = (uint32_t)ri;
	lp->freq[id] = 0;
	int rc = pu_map_put(&lp->map, key, id);
	if (rc)
		return rc;
	lpol_push(lp, id, to);
	pl->reg[ri].resident |= 1ULL << (key & (pl->nchunks - 1));
	p->size++;
	policy_notify(p, key, 1);
	return 0;
}

static int lpol_contains(const policy_t *p, uint64_t key)
{
	const struct lpol *lp = (const struct lpol *)p;
	uint32_t id = pu_map_get(&lp->map, key);

	return id != PU_NIL && lp->where[id] != LQ_G;
}

/* Eviction order: by region p, lowest first (what the model would drop). */
struct vic {
	float p;
	uint64_t key;
};

static int cmp_vic(const void *a, const void *b)
{
	const struct vic *x = a, *y = b;

	return x->p < y->p ? -1 : x->p > y->p;
}

static size_t lpol_victims(const policy_t *p, uint64_t *out, size_t max)
{
	const struct lpol *lp = (const struct lpol *)p;
	struct vic *v = malloc((size_t)p->size * sizeof(*v) + 1);
	size_t n = 0;

	if (!v)
		return 0;
	for (int q = LQ_S; q <= LQ_M; q++)
		for (uint32_t id = lp->q[q].tail; id != PU_NIL; id = lp->prev[id])
			v[n++] = (struct vic){ lp->pl->reg[lp->region[id]].p +
					       0.1f * lp->freq[id], lp->key[id] };
	qsort(v, n, sizeof(*v), cmp_vic);
	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++)
		out[i] = v[i].key;
	free(v);
	return n;
}

static void lpol_destroy(policy_t *p)
{
	struct lpol *lp = (struct lpol *)p;

	if (lp->pl && lp->pl->pol == lp)
		lp->pl->pol = NULL;
	if (lp->map.keys)
		pu_map_free(&lp->map);
	free(lp->key);
	free(lp->prev);
	free(lp->next);
	free(lp->region);
	free(lp->where);
	free(lp->freq);
	free(lp->free_ids);
	free(lp);
}

static const struct policy_ops lpol_ops = {
	lpol_access, lpol_contains, lpol_victims, lpol_destroy,
};

int placer_policy_create(placer_t *pl, uint64_t capacity, policy_t **out)
{
	if (pl->pol)
		return -EBUSY;
	if (capacity >= (UINT32_MAX >> 2))
		return -EINVAL;
	struct lpol *lp = calloc(1, sizeof(*lp));
	if (!lp)
		return -ENOMEM;
	lp->base.ops = &lpol_ops;
	lp->base.kind = POLICY_LEARNED;
	lp->base.capacity = capacity;
	lp->s_cap = capacity / 10 ? capacity / 10 : 1;
	lp->m_cap = capacity > lp->s_cap ? capacity - lp->s_cap : 1;
	lp->g_cap = lp->m_cap;
	size_t n = (size_t)(capacity + lp->g_cap) + 4;
	lp->key = malloc(n * sizeof(*lp->key));
	lp->prev = malloc(n * sizeof(uint32_t));
	lp->next = malloc(n * sizeof(uint32_t));
	lp->region = malloc(n * sizeof(uint32_t));
	lp->where = malloc(n);
	lp->freq = malloc(n);
	lp->free_ids = malloc(n * sizeof(uint32_t));
	if (!lp->key || !lp->prev || !lp->next || !lp->region || !lp->where ||
	    !lp->freq || !lp->free_ids || pu_map_init(&lp->map, n)) {
		lpol_destroy(&lp->base);
		return -ENOMEM;
	}
	for (int q = 0; q < 3; q++)
		pu_list_init(&lp->q[q]);
	for (size_t i = 0; i < n; i++)
		lp->free_ids[lp->nfree++] = (uint32_t)(n - 1 - i);
	lp->pl = pl;
	pl->pol = lp;
	*out = &lp->base;
	return 0;
}
