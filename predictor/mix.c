/*
 * mix.c - the GRU-weighted mixture of classical experts (see mix.h).
 *
 * Data structures first:
 *   ex[K]        the experts: ordinary policies of the full capacity, with an
 *                observer each, so that the mixture hears whenever a key
 *                enters or leaves an expert.
 *   real set     nodes in flat arrays (key, mask, prev/next) found through a
 *                hash map; mask bit e says expert e holds the key too.  A node
 *                sits in bucket[mask], a FIFO list: the bucket's tail is the
 *                key that has been in that state longest.
 *   order[]      the buckets sorted by weight (sum of the weights of the
 *                experts in the mask, plus a little per expert as a tie
 *                break), recomputed once per window; eviction takes the tail
 *                of the first non-empty bucket in this order.
 *   ring         per window: the GRU's input, its hidden state after the
 *                step, the experts' hits, both predictors' choices and, once
 *                the horizon has passed, the label (the best expert over the
 *                next 'horizon' windows).  Training sequences are cut from it.
 *
 * Sampled mode (mix.h): the experts see only the keys under the sampling
 * threshold and hold capacity x rate keys; the real set, its masks and
 * buckets are not built, and the real tier is 'real', a policy of the
 * leader's kind.
 *
 * Why buckets and not a score per key: weights change once per window, keys
 * change state on every expert eviction.  A bucket move is O(1) and the
 * eviction walks at most 2^K bucket heads, so the cost per access is the
 * experts' own cost plus a few list operations.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "predictor/gru.h"
#include "predictor/mix.h"
#include "predictor/policy_impl.h"
#include "predictor/pred_util.h"

#define MIX_RING 1024     /* default windows kept for training */

/* A rebuilt real tier takes each key this many times, worst first: with
 * one, S3-FIFO and W-TinyLFU take every key as new and the first misses
 * flush the old tier; three gave the fewest misses on the first 80% of
 * cloudphysics (0.8148 against 0.8388 at 10%). */
#define WARM_PASSES 3
/* Sampled hits the leader must be ahead by before the real tier changes
 * rule, on top of the margin. */
#define MIX_FOLLOW_MIN 16
#define MIX_SAMPLE_BITS 24
#define MIX_SAMPLE_SALT 0x5348415244530001ULL
#define MIX_WARMUP 4      /* resolved windows before the scores decide */
#define MIX_SCORE_ALPHA 0.05
#define MIX_TIE 1e-3f
#define MIX_MAX_HORIZON 200
#define MIX_SCORE_WINDOWS 2

struct mix;

struct mix_obs {
	struct mix *m;
	uint32_t bit;
};

struct mix {
	struct policy base;
	struct mix_config c;
	uint32_t K, nb;             /* experts, buckets (2^K) */
	policy_t *ex[MIX_MAX_EXPERTS];
	enum policy_kind kind[MIX_MAX_EXPERTS];
	struct mix_obs obs[MIX_MAX_EXPERTS];

	struct pu_map map;
	uint64_t *key;
	uint32_t *prev, *next;
	uint8_t *mask;
	uint32_t *free_ids;
	uint32_t nfree;
	uint64_t *rank;             /* scratch: the leader's keys, worst first */
	struct pu_list *bucket;
	uint16_t *order;
	float w[MIX_MAX_EXPERTS];

	uint64_t cur_key;           /* the access under way, and which experts */
	uint8_t cur_mask;           /* hold it once they have seen it */
	uint32_t in_win;
	uint64_t win_hits[MIX_MAX_EXPERTS], real_win_hits;
	double ema[MIX_MAX_EXPERTS];

	gru_t *g;
	gru_work_t *work;
	uint32_t F, H;
	float *h, *y;
	float *rx, *rh, *ry;        /* ring: inputs, hidden states, labels */
	uint32_t *rhits;            /* ring: experts' hits per window */
	uint8_t *rcg, *rch, *rcc;   /* ring: GRU's, recent and all-time leaders */
	double ema_score, cum_score; /* rolling scores of the two heuristics */
	float *xbuf, *ybuf;
	uint64_t t;                 /* windows closed */
	uint64_t credit;
	uint32_t sync_every;        /* windows between background promotions */
	uint64_t rng;
	uint64_t resolved;
	uint32_t ring;              /* windows in the ring */

	/* Sampled mode. */
	int sampled;
	double rate;
	uint64_t thr;               /* sampled iff hash < thr (MIX_SAMPLE_BITS) */
	uint64_t ecap;              /* each expert's capacity */
	uint32_t win_sampled;       /* sampled accesses in the window */
	uint64_t raw_hits[MIX_MAX_EXPERTS];
	policy_t *real;             /* the real tier: the leader's rule */
	uint32_t re;                /* the expert whose rule it runs */
	double since[MIX_MAX_EXPERTS]; /* sampled hits, decayed per window */
	struct mix_stats st;
};

void mix_config_default(struct mix_config *c)
{
	memset(c, 0, sizeof(*c));
	/* The classical policies that were the best one at some point of the
	 * first 80% of the traces.  LRU, ARC, decayed LFU and the 1-bit
	 * S3-FIFO never were; with LRU and ARC among the experts the figures
	 * were the same within 0.001 and the cost per access 40% higher. */
	c->experts = (1u << POLICY_S3FIFO) | (1u << POLICY_LIRS) | (1u << POLICY_SIEVE) |
		     (1u << POLICY_TINYLFU);
	/* 256, 512, 1024, 2048 and capacity / 4 were tried on the first 80%
	 * of the traces: the shortest won (9 of 9 points below the best
	 * classical policy, against 8 for 512), at some 10% more CPU. */
	c->window = 256;
	c->horizon = 0;
	c->hidden = 16;
	c->bptt = 16;
	c->batch = 8;
	c->train_interval = 4096;
	c->lr = 0.003f;
	c->temperature = 0.25f;
	c->smoothing = 0;
	c->sync = 1.0f;
	c->sync_on_switch = 1;
	c->sample = 1.0f;
	/* Sampled mode, chosen on the first 80%: the rule with the most hits
	 * so far, changed as soon as another has more (margins of 0.2 and 1
	 * and decays of 0.001 and 0.01 per window did worse). */
	c->follow_margin = 0;
	c->follow_decay = 0;
	c->seed = 1;
}

static double cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ---- the real set and its buckets ------------------------------------------ */

static void set_mask(struct mix *m, uint32_t id, uint8_t mask)
{
	if (m->mask[id] == mask)
		return;
	pu_list_unlink(&m->bucket[m->mask[id]], m->prev, m->next, id);
	m->mask[id] = mask;
	pu_list_push_head(&m->bucket[mask], m->prev, m->next, id);
}

/* An expert took a key in or let it go: move the real copy between buckets. */
static void on_expert_change(void *ctx, uint64_t key, int resident)
{
	struct mix_obs *o = ctx;
	struct mix *m = o->m;

	if (key == m->cur_key) {
		m->cur_mask = resident ? (uint8_t)(m->cur_mask | o->bit) :
					 (uint8_t)(m->cur_mask & ~o->bit);
		return;
	}
	uint32_t id = pu_map_get(&m->map, key);

	if (id == PU_NIL)
		return;
	set_mask(m, id, resident ? (uint8_t)(m->mask[id] | o->bit) :
				   (uint8_t)(m->mask[id] & ~o->bit));
}

static void evict_real(struct mix *m)
{
	for (uint32_t i = 0; i < m->nb; i++) {
		struct pu_list *b = &m->bucket[m->order[i]];
		if (!b->len)
			continue;
		uint32_t id = b->tail;
		pu_list_unlink(b, m->prev, m->next, id);
		pu_map_del(&m->map, m->key[id]);
		m->free_ids[m->nfree++] = id;
		m->base.size--;
		policy_notify(&m->base, m->key[id], 0);
		return;
	}
}

static float bucket_score(const struct mix *m, uint32_t b)
{
	float s = 0;

	for (uint32_t e = 0; e < m->K; e++)
		if (b & (1u << e))
			s += m->w[e] + MIX_TIE;
	return s;
}

static void sort_buckets(struct mix *m)
{
	float s[256];

	for (uint32_t b = 0; b < m->nb; b++) {
		s[b] = bucket_score(m, b);
		m->order[b] = (uint16_t)b;
	}
	/* Insertion sort: at most 256 entries, once per window. */
	for (uint32_t i = 1; i < m->nb; i++) {
		uint16_t v = m->order[i];
		uint32_t j = i;
		while (j > 0 && s[m->order[j - 1]] > s[v]) {
			m->order[j] = m->order[j - 1];
			j--;
		}
		m->order[j] = v;
	}
}

/* ---- windows: features, prediction, labels, scores ------------------------- */

/* Index of the largest of n values (the first on ties). */
static uint32_t argmax(const double *v, uint32_t n)
{
	uint32_t best = 0;

	for (uint32_t i = 1; i < n; i++)
		if (v[i] > v[best])
			best = i;
	return best;
}

static uint32_t argmax_u64(const uint64_t *v, uint32_t n)
{
	double d[MIX_MAX_EXPERTS];

	for (uint32_t i = 0; i < n; i++)
		d[i] = (double)v[i];
	return argmax(d, n);
}

static uint32_t argmax_f(const float *v, uint32_t n)
{
	double d[MIX_MAX_EXPERTS];

	for (uint32_t i = 0; i < n; i++)
		d[i] = v[i];
	return argmax(d, n);
}

/* Hits of every expert over the n windows after window u. */
static uint32_t future_hits(const struct mix *m, uint64_t u, uint64_t n, uint64_t *sum)
{
	memset(sum, 0, MIX_MAX_EXPERTS * sizeof(*sum));
	for (uint64_t j = u + 1; j <= u + n; j++)
		for (uint32_t e = 0; e < m->K; e++)
			sum[e] += m->rhits[(j % m->ring) * m->K + e];
	return argmax_u64(sum, m->K);
}

/*
 * Window u's label is known once 'horizon' more windows have closed: the
 * expert with the most hits over them.  The predictors are scored sooner,
 * on the next MIX_SCORE_WINDOWS windows: a score that lags by the whole
 * horizon let a GRU that had been right for a long time keep the weights
 * through a change of phase (msn: LIRS's burst of long-distance reuse)
 * that it did not follow.
 */
static void resolve(struct mix *m)
{
	uint64_t H = m->c.horizon, S = H < MIX_SCORE_WINDOWS ? H : MIX_SCORE_WINDOWS;
	uint64_t sum[MIX_MAX_EXPERTS];

	if (m->t >= H + 1) {
		uint64_t u = m->t - 1 - H;
		m->ry[u % m->ring] = (float)future_hits(m, u, H, sum);
	}
	if (m->t < S + 1)
		return;
	uint64_t u = m->t - 1 - S;
	uint32_t best = future_hits(m, u, S, sum);
	if (!sum[best])
		return;
	double g = (double)sum[m->rcg[u % m->ring]] / (double)sum[best];
	double h = (double)sum[m->rch[u % m->ring]] / (double)sum[best];
	double c = (double)sum[m->rcc[u % m->ring]] / (double)sum[best];
	double a = m->resolved < MIX_WARMUP ? 1.0 / (double)(m->resolved + 1) : MIX_SCORE_ALPHA;
	m->st.gru_score += a * (g - m->st.gru_score);
	m->ema_score += a * (h - m->ema_score);
	m->cum_score += a * (c - m->cum_score);
	m->st.heuristic_score = fmax(m->ema_score, m->cum_score);
	m->resolved++;
}

static void set_weights(struct mix *m, uint32_t heur_choice)
{
	uint32_t K = m->K;
	int prev = m->st.leader;

	m->st.using_gru = m->resolved >= MIX_WARMUP &&
			  m->st.gru_score > m->st.heuristic_score;
	if (m->st.using_gru) {
		float mx = m->y[0], sum = 0;
		for (uint32_t e = 1; e < K; e++)
			mx = fmaxf(mx, m->y[e]);
		for (uint32_t e = 0; e < K; e++) {
			m->w[e] = expf((m->y[e] - mx) / m->c.temperature);
			sum += m->w[e];
		}
		for (uint32_t e = 0; e < K; e++)
			m->w[e] /= sum;
	} else {
		for (uint32_t e = 0; e < K; e++)
			m->w[e] = e == heur_choice ? 1.0f : 0.0f;
	}
	m->st.gru_windows += (uint64_t)m->st.using_gru;
	m->st.leader = (int)argmax_f(m->w, K);
	m->st.leader_kind = m->kind[m->st.leader];
	if (m->st.leader != prev)
		m->st.switches++;
	if (!m->sampled)
		sort_buckets(m);
}

static int train_step(struct mix *m)
{
	uint64_t T = m->c.bptt, H = m->c.horizon, last, lo;
	uint32_t F = m->F, Hd = m->H, count = 0;

	if (m->t < H + T + 1)
		return 0;
	last = m->t - 1 - H;                      /* newest labelled window */
	lo = m->t > m->ring ? m->t - m->ring + T : T - 1;
	if (lo > last)
		return 0;
	for (uint32_t b = 0; b < m->c.batch; b++) {
		uint64_t u = lo + pu_rng_next(&m->rng) % (last - lo + 1);
		uint64_t s = u + 1 - T;
		const float *h0 = s >= 1 && s - 1 + m->ring >= m->t ?
			m->rh + ((s - 1) % m->ring) * Hd : NULL;
		for (uint64_t k = 0; k < T; k++) {
			memcpy(m->xbuf + k * F, m->rx + ((s + k) % m->ring) * F, F * sizeof(float));
			m->ybuf[k] = m->ry[(s + k) % m->ring];
		}
		uint32_t c = 0;
		int rc = gru_accumulate(m->g, m->work, h0, m->xbuf, m->ybuf, (uint32_t)T,
					NULL, &c);
		if (rc)
			return rc;
		count += c;
	}
	gru_adam_step(m->g, m->work, m->c.lr, count);
	m->st.train_steps++;
	return 0;
}

static int sync_leader(struct mix *m, int switched);

static int close_window(struct mix *m)
{
	uint32_t K = m->K, F = m->F;
	double W = (double)m->in_win, mean = 0;
	/* Sampled: the experts' hit ratios are over the accesses they saw. */
	double Ws = m->sampled ? fmax(1.0, (double)m->win_sampled) : W;
	uint64_t slot = m->t % m->ring;
	float *x = m->rx + slot * F;

	for (uint32_t e = 0; e < K; e++) {
		double r = (double)m->win_hits[e] / Ws;
		mean += r / K;
		m->ema[e] = m->t == 0 ? r : m->ema[e] + m->c.smoothing * (r - m->ema[e]);
		m->rhits[slot * K + e] = (uint32_t)m->win_hits[e];
		m->raw_hits[e] += m->win_hits[e];
		m->since[e] = m->since[e] * (1 - m->c.follow_decay) + (double)m->win_hits[e];
		m->st.expert_hits[e] = (uint64_t)llround((double)m->raw_hits[e] / m->rate);
	}
	for (uint32_t e = 0; e < K; e++)
		x[e] = (float)(((double)m->win_hits[e] / Ws - mean) * 10.0);
	x[K] = (float)mean;
	x[K + 1] = (float)((double)m->real_win_hits / W);
	gru_step(m->g, x, m->h, m->h, m->y);
	memcpy(m->rh + slot * m->H, m->h, m->H * sizeof(float));
	m->ry[slot] = -1.0f;
	/* Two heuristics: the recent leader (smoothed hit ratio) and the
	 * all-time leader (most hits so far, which is what a policy that
	 * wins on long reuse, like LIRS on msn, looks like between its
	 * bursts).  The better scoring of the two speaks for both. */
	uint32_t hc = 0, cc = argmax_u64(m->raw_hits, K);
	for (uint32_t e = 1; e < K; e++)
		if (m->ema[e] > m->ema[hc])
			hc = e;
	m->rcg[slot] = (uint8_t)argmax_f(m->y, K);
	m->rch[slot] = (uint8_t)hc;
	m->rcc[slot] = (uint8_t)cc;
	if (m->cum_score > m->ema_score)
		hc = cc;
	m->t++;
	m->st.windows = m->t;
	resolve(m);
	uint64_t switches = m->st.switches;
	set_weights(m, hc);
	int rc = sync_leader(m, m->st.switches != switches);
	if (rc)
		return rc;

	memset(m->win_hits, 0, sizeof(m->win_hits));
	m->real_win_hits = 0;
	m->in_win = 0;
	m->win_sampled = 0;
	if (!m->c.train_interval)
		return 0;
	m->credit += (uint64_t)W;
	double t0 = m->credit >= m->c.train_interval ? cpu_ns() : 0;
	while (!rc && m->credit >= m->c.train_interval) {
		m->credit -= m->c.train_interval;
		rc = train_step(m);
	}
	if (t0)
		m->st.train_cpu_ns += cpu_ns() - t0;
	return rc;
}

/* ---- the policy interface ---------------------------------------------------- */

/* Put k on the real fast tier (a demand miss or a background promotion);
 * mask says which experts hold it. */
static int admit_real(struct mix *m, uint64_t k, uint8_t mask)
{
	if (m->base.size >= m->base.capacity)
		evict_real(m);
	uint32_t id = m->free_ids[--m->nfree];
	m->key[id] = k;
	m->mask[id] = mask;
	int rc = pu_map_put(&m->map, k, id);
	if (rc)
		return rc;
	pu_list_push_head(&m->bucket[mask], m->prev, m->next, id);
	m->base.size++;
	policy_notify(&m->base, k, 1);
	return 0;
}

/*
 * Background promotion: the leader's most valuable keys that the real tier
 * lacks are copied up, at most sync x window of them per window.  Without
 * it the real tier only converges on the leader at the leader's hits, which
 * for LIRS's long-reuse keys takes a whole reuse cycle, longer than the
 * leader lasts.  In the daemon these are ordinary migrations, planned once
 * per epoch; the simulator counts them as migration traffic.
 */
static int sync_sampled(struct mix *m, int switched);

static int sync_leader(struct mix *m, int switched)
{
	if (m->sampled)
		return sync_sampled(m, switched);
	uint64_t budget = (uint64_t)(m->c.sync * (float)m->c.window) * m->sync_every;
	policy_t *L = m->ex[m->st.leader];

	/* Ranking the leader's keys is O(capacity): do it once per quarter
	 * turnover, with the budget of the windows since, or at once with
	 * budget for all of them when the leader has just changed. */
	if (!budget)
		return 0;
	if (switched && m->c.sync_on_switch)
		budget = m->base.capacity;
	else if (m->t % m->sync_every)
		return 0;
	size_t n = policy_victims(L, m->rank, (size_t)m->base.capacity);
	for (size_t i = n; i-- > 0 && budget;) {
		if (pu_map_get(&m->map, m->rank[i]) != PU_NIL)
			continue;
		/* Only the leader is known to hold it: asking every expert was a
		 * third of the cost per access on msn at 10%.  The other bits
		 * only break ties, and their observers set them from now on. */
		int rc = admit_real(m, m->rank[i], (uint8_t)(1u << m->st.leader));
		if (rc)
			return rc;
		m->st.promotions++;
		budget--;
	}
	return 0;
}

/* ---- sampled mode: the real tier runs the leader's rule ---------------------- */

static void on_real_change(void *ctx, uint64_t key, int resident)
{
	policy_notify(&((struct mix *)ctx)->base, key, resident);
}

/*
 * The leader changed: the real tier keeps its keys and takes the new
 * leader's rule.  A fresh policy of that kind is filled with the old one's
 * keys, worst first (so that its best are its newest); none is evicted,
 * since they fit, but a key it drops anyway is reported as gone.
 */
static int rebuild_real(struct mix *m, uint32_t L)
{
	enum policy_kind k = m->kind[L];
	size_t n = (size_t)policy_size(m->real);
	uint64_t *keys = malloc((n + 1) * sizeof(*keys));
	policy_t *p = NULL;
	int rc = keys ? policy_create(k, m->base.capacity, &p) : -ENOMEM;

	if (!rc)
		n = policy_victims(m->real, keys, n);
	for (int pass = 0; pass < WARM_PASSES; pass++)
		for (size_t i = 0; i < n && !rc; i++)
			rc = policy_access(p, keys[i], POLICY_NEVER) < 0 ? -EIO : 0;
	for (size_t i = 0; i < n && !rc; i++)
		if (!policy_contains(p, keys[i]))
			policy_notify(&m->base, keys[i], 0);
	free(keys);
	if (rc) {
		policy_destroy(p);
		return rc;
	}
	policy_destroy(m->real);
	m->real = p;
	policy_set_observer(p, on_real_change, m);
	m->base.size = policy_size(p);
	m->re = L;
	m->st.real_kind = k;
	m->st.rebuilds++;
	return 0;
}

/* Promotion from the sampled leader: its keys that the real tier lacks, at
 * most sync x window x rate of them per window (they stand for 1 / rate
 * keys each), every key at a switch if sync_on_switch. */
static int sync_sampled(struct mix *m, int switched)
{
	/* A rebuilt policy forgets what it knew of the keys' history (LIRS's
	 * reuse distances, most of all), so the real tier changes rule only
	 * when the leader has had more hits than the rule it runs, by the
	 * margin, since the last change. */
	uint32_t L = 0;
	for (uint32_t e = 1; e < m->K; e++)
		if (m->since[e] > m->since[L])
			L = e;
	switched = L != m->re && m->since[L] >= m->since[m->re] *
		(1 + m->c.follow_margin) + MIX_FOLLOW_MIN;
	int rc = switched ? rebuild_real(m, L) : 0;
	double per = m->c.sync * (double)m->c.window * m->rate * m->sync_every;
	uint64_t budget = (uint64_t)ceil(per);

	if (rc || !(m->c.sync > 0))
		return rc;
	if (switched && m->c.sync_on_switch)
		budget = m->ecap;
	else if (m->t % m->sync_every)
		return 0;
	size_t n = policy_victims(m->ex[m->st.leader], m->rank, (size_t)m->ecap);
	for (size_t i = n; i-- > 0 && budget;) {
		if (policy_contains(m->real, m->rank[i]))
			continue;
		rc = policy_access(m->real, m->rank[i], POLICY_NEVER);
		if (rc < 0)
			return rc;
		m->st.promotions++;
		budget--;
	}
	m->base.size = policy_size(m->real);
	return 0;
}

static int sampled_key(const struct mix *m, uint64_t k)
{
	return (pu_mix64(k ^ MIX_SAMPLE_SALT) >> (64 - MIX_SAMPLE_BITS)) < m->thr;
}

static int access_sampled(struct mix *m, uint64_t k)
{
	if (sampled_key(m, k)) {
		m->win_sampled++;
		for (uint32_t e = 0; e < m->K; e++) {
			int h = policy_access(m->ex[e], k, POLICY_NEVER);
			if (h < 0)
				return h;
			m->win_hits[e] += (uint64_t)h;
		}
	}
	int hit = policy_access(m->real, k, POLICY_NEVER);
	if (hit < 0)
		return hit;
	m->base.size = policy_size(m->real);
	return hit;
}

static int access_full(struct mix *m, uint64_t k)
{
	/* Which experts hold k afterwards: those that hit, plus those whose
	 * observer saw k come in (and not leave again, as a W-TinyLFU
	 * candidate may): no lookups needed. */
	m->cur_key = k;
	m->cur_mask = 0;
	for (uint32_t e = 0; e < m->K; e++) {
		int h = policy_access(m->ex[e], k, POLICY_NEVER);
		if (h < 0)
			return h;
		m->win_hits[e] += (uint64_t)h;
		if (h)
			m->cur_mask |= (uint8_t)(1u << e);
	}
	m->cur_key = UINT64_MAX;
	uint32_t id = pu_map_get(&m->map, k);
	int hit = id != PU_NIL;
	if (hit) {
		set_mask(m, id, m->cur_mask);
	} else {
		int rc = admit_real(m, k, m->cur_mask);
		if (rc)
			return rc;
	}
	return hit;
}

static int mix_access(policy_t *p, uint64_t k, uint64_t next_use)
{
	struct mix *m = (struct mix *)p;

	(void)next_use;
	int hit = m->sampled ? access_sampled(m, k) : access_full(m, k);
	if (hit < 0)
		return hit;
	m->real_win_hits += (uint64_t)hit;
	if (++m->in_win >= m->c.window) {
		int rc = close_window(m);
		if (rc)
			return rc;
	}
	return hit;
}

static int mix_contains(const policy_t *p, uint64_t k)
{
	const struct mix *m = (const struct mix *)p;

	if (m->sampled)
		return policy_contains(m->real, k);
	return pu_map_get(&m->map, k) != PU_NIL;
}

static size_t mix_victims(const policy_t *p, uint64_t *out, size_t max)
{
	const struct mix *m = (const struct mix *)p;
	size_t n = 0;

	if (m->sampled)
		return policy_victims(m->real, out, max);
	for (uint32_t i = 0; i < m->nb; i++)
		for (uint32_t id = m->bucket[m->order[i]].tail; id != PU_NIL && n < max;
		     id = m->prev[id])
			out[n++] = m->key[id];
	return n;
}

static void mix_destroy(policy_t *p)
{
	struct mix *m = (struct mix *)p;

	for (uint32_t e = 0; e < m->K; e++)
		policy_destroy(m->ex[e]);
	policy_destroy(m->real);
	if (m->map.keys)
		pu_map_free(&m->map);
	free(m->key);
	free(m->prev);
	free(m->next);
	free(m->mask);
	free(m->free_ids);
	free(m->rank);
	free(m->bucket);
	free(m->order);
	gru_destroy(m->g);
	gru_work_destroy(m->work);
	free(m->h);
	free(m->y);
	free(m->rx);
	free(m->rh);
	free(m->ry);
	free(m->rhits);
	free(m->rcg);
	free(m->rch);
	free(m->rcc);
	free(m->xbuf);
	free(m->ybuf);
	free(m);
}

static const struct policy_ops mix_ops = {
	mix_access, mix_contains, mix_victims, mix_destroy,
};

uint64_t mix_fixed_bytes(const struct mix_config *c)
{
	uint64_t K = (uint64_t)__builtin_popcount(c->experts), F = K + 2, H = c->hidden;
	uint64_t R = c->ring ? c->ring : MIX_RING;
	uint64_t params = 3 * H * (F + H + 1) + K * (H + 1);

	/* The ring (inputs, hidden states, labels, hits, three choices); the
	 * GRU's weights, gradients and Adam's two moments; its BPTT buffers. */
	return R * (F + H + 1 + K) * 4 + 3 * R + params * 4 * 4 +
	       (uint64_t)c->bptt * (F + 6 * H + K) * 4;
}

double mix_sample_rate(const struct mix_config *c, uint64_t capacity)
{
	uint32_t K = (uint32_t)__builtin_popcount(c->experts);
	double full = (double)K * (double)capacity * MIX_SHADOW_KEY_BYTES;
	double left = (double)c->state_budget - (double)mix_fixed_bytes(c);

	if (!c->state_budget)
		return c->sample;
	if (left <= 0)
		return 0;
	return full > 0 ? fmin(1.0, left / full) : 1.0;
}

static const char *mix_sample_error(const struct mix_config *c, uint64_t capacity)
{
	if (!(c->sample > 0 && c->sample <= 1))
		return "sample: the share of keys the experts see must be in (0, 1]";
	if (c->state_budget && c->sample != 1)
		return "sample and state_budget: give one of them, not both";
	if (c->state_budget && c->state_budget <= mix_fixed_bytes(c))
		return "state_budget: not more than the GRU and its training ring need "
		       "(mix_fixed_bytes(); a smaller ring or hidden size needs less)";
	double r = mix_sample_rate(c, capacity);
	if (r < 1 && (double)capacity * r < MIX_MIN_SHADOW)
		return c->state_budget ?
			"state_budget: too small, the experts' shadows would hold fewer "
			"than 64 keys (MIX_MIN_SHADOW)" :
			"sample: too small for this capacity, the experts' shadows would "
			"hold fewer than 64 keys (MIX_MIN_SHADOW)";
	return NULL;
}

const char *mix_config_error(const struct mix_config *c, uint64_t capacity)
{
	uint32_t bad = (1u << POLICY_BELADY) | (1u << POLICY_LEARNED) | (1u << POLICY_MIX);
	uint32_t ring = c->ring ? c->ring : MIX_RING;

	if (!c->experts || (c->experts & bad) || c->experts >= (1u << POLICY__COUNT) ||
	    __builtin_popcount(c->experts) > MIX_MAX_EXPERTS)
		return "experts: 1 to 8 classical kinds (not belady, gru or mix)";
	if (capacity >= (UINT32_MAX >> 2))
		return "capacity: too large";
	if (c->horizon > MIX_MAX_HORIZON || !c->hidden || c->hidden > 64 || !c->bptt ||
	    !c->batch || !(c->lr > 0) || !(c->temperature > 0))
		return "horizon, hidden, bptt, batch, lr or temperature out of range";
	if (c->bptt >= ring / 4 || ring > (1u << 20))
		return "ring: at least 4 x bptt windows, at most 2^20";
	if (!(c->smoothing >= 0 && c->smoothing <= 1) || !(c->sync >= 0 && c->sync <= 4))
		return "smoothing in [0, 1], sync in [0, 4]";
	if (!(c->follow_margin >= 0 && c->follow_margin <= 10))
		return "follow_margin: in [0, 10]";
	if (!(c->follow_decay >= 0 && c->follow_decay < 1))
		return "follow_decay: in [0, 1)";
	return mix_sample_error(c, capacity);
}

static int mix_alloc_ring(struct mix *m)
{
	size_t F = m->F, Hd = m->H, K = m->K, R = m->ring;

	m->h = calloc(Hd, sizeof(float));
	m->y = calloc(K, sizeof(float));
	m->rx = calloc(R * F, sizeof(float));
	m->rh = calloc(R * Hd, sizeof(float));
	m->ry = calloc(R, sizeof(float));
	m->rhits = calloc(R * K, sizeof(uint32_t));
	m->rcg = calloc(R, 1);
	m->rch = calloc(R, 1);
	m->rcc = calloc(R, 1);
	m->xbuf = malloc(m->c.bptt * F * sizeof(float));
	m->ybuf = malloc(m->c.bptt * sizeof(float));
	if (!m->h || !m->y || !m->rx || !m->rh || !m->ry || !m->rhits || !m->rcg || !m->rch ||
	    !m->rcc || !m->xbuf || !m->ybuf)
		return -ENOMEM;
	return 0;
}

/* The real set of the unsampled mode: nodes, buckets, map. */
static int mix_alloc_real(struct mix *m, uint64_t capacity)
{
	size_t n = (size_t)capacity + 2;

	m->key = malloc(n * sizeof(*m->key));
	m->prev = malloc(n * sizeof(*m->prev));
	m->next = malloc(n * sizeof(*m->next));
	m->mask = malloc(n);
	m->free_ids = malloc(n * sizeof(*m->free_ids));
	m->rank = malloc(n * sizeof(*m->rank));
	m->bucket = malloc(m->nb * sizeof(*m->bucket));
	m->order = malloc(m->nb * sizeof(*m->order));
	if (!m->key || !m->prev || !m->next || !m->mask || !m->free_ids || !m->bucket ||
	    !m->rank || !m->order || pu_map_init(&m->map, n))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		m->free_ids[m->nfree++] = (uint32_t)(n - 1 - i);
	for (uint32_t b = 0; b < m->nb; b++)
		pu_list_init(&m->bucket[b]);
	return 0;
}

static int mix_alloc(struct mix *m, uint64_t capacity)
{
	struct gru_shape s = { m->F, m->H, m->K, GRU_LOSS_SOFTMAX };
	int rc = gru_create(&s, m->c.seed + 7, &m->g);

	if (!rc)
		rc = gru_work_create(m->g, m->c.bptt, &m->work);
	if (!rc)
		rc = mix_alloc_ring(m);
	if (rc)
		return rc;
	if (m->sampled) {
		/* The real tier starts under the first expert's rule. */
		m->rank = malloc((m->ecap + 2) * sizeof(*m->rank));
		rc = m->rank ? policy_create(m->kind[0], capacity, &m->real) : -ENOMEM;
		if (rc)
			return rc;
		policy_set_observer(m->real, on_real_change, m);
	} else {
		rc = mix_alloc_real(m, capacity);
		if (rc)
			return rc;
	}
	size_t glen = 0;
	gru_save(m->g, NULL, 0, &glen);
	m->st.model_bytes = glen;
	return 0;
}

static void mix_set_scales(struct mix *m, uint64_t capacity)
{
	/* The time scales follow the capacity: an expert's edge shows over
	 * about one turnover of the fast tier. */
	if (!m->c.window)
		m->c.window = 256;
	double turnover = (double)(capacity ? capacity : 1) / m->c.window;
	if (!m->c.horizon)
		m->c.horizon = (uint32_t)fmin(MIX_MAX_HORIZON, fmax(4, 2 * turnover));
	if (!(m->c.smoothing > 0))
		m->c.smoothing = (float)fmin(0.5, fmax(0.005, 1 / turnover));
	m->sync_every = (uint32_t)fmax(1, turnover / 4);
	m->ring = m->c.ring ? m->c.ring : MIX_RING;
	m->rate = mix_sample_rate(&m->c, capacity);
	m->sampled = m->rate < 1;
	m->thr = (uint64_t)ceil(m->rate * (double)(1ULL << MIX_SAMPLE_BITS));
	m->ecap = m->sampled ? (uint64_t)llround((double)capacity * m->rate) : capacity;
	m->st.sample_rate = m->rate;
	m->st.shadow_capacity = m->ecap;
}

static int mix_add_experts(struct mix *m)
{
	int rc = 0;

	for (int k = 0; k < POLICY__COUNT && !rc; k++) {
		if (!(m->c.experts & (1u << k)))
			continue;
		uint32_t e = m->K++;
		m->kind[e] = (enum policy_kind)k;
		m->st.expert[e] = (enum policy_kind)k;
		rc = policy_create((enum policy_kind)k, m->ecap, &m->ex[e]);
		if (rc) {
			m->K--;
			break;
		}
		/* Sampled shadows need no observer: no real key has a mask. */
		m->obs[e] = (struct mix_obs){ m, 1u << e };
		if (!m->sampled)
			policy_set_observer(m->ex[e], on_expert_change, &m->obs[e]);
	}
	return rc;
}

int mix_create(const struct mix_config *c, uint64_t capacity, policy_t **out)
{
	if (mix_config_error(c, capacity))
		return -EINVAL;
	struct mix *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->base.ops = &mix_ops;
	m->base.kind = POLICY_MIX;
	m->base.capacity = capacity;
	m->c = *c;
	mix_set_scales(m, capacity);
	m->rng = c->seed * 0x9e3779b97f4a7c15ULL + 5;
	m->cur_key = UINT64_MAX;
	int rc = mix_add_experts(m);
	m->st.nexperts = m->K;
	m->nb = 1u << m->K;
	m->F = m->K + 2;
	m->H = c->hidden;
	if (!rc)
		rc = mix_alloc(m, capacity);
	if (rc) {
		mix_destroy(&m->base);
		return rc;
	}
	/* Until the first window closes: the first expert leads. */
	m->w[0] = 1.0f;
	m->st.leader_kind = m->kind[0];
	m->st.real_kind = m->sampled ? m->kind[0] : POLICY_MIX;
	if (!m->sampled)
		sort_buckets(m);
	*out = &m->base;
	return 0;
}

int policy_mix_create_default(uint64_t capacity, policy_t **out)
{
	struct mix_config c;

	mix_config_default(&c);
	return mix_create(&c, capacity, out);
}

void mix_get_stats(const policy_t *p, struct mix_stats *s)
{
	*s = ((const struct mix *)p)->st;
}
