/*
 * siltfs-sim - replay a block trace through the predictor library.
 *
 * Every request of the trace expands, in trace order, into the fixed-size
 * blocks it touches (reads and writes alike), and each block access goes
 * through the policy under test: the same policy and predictor code the
 * daemon runs, fully online.  Only Belady sees the future (each access's
 * next use, computed by trace_expand()); it is the offline bound.
 *
 * Model: two storage tiers plus RAM.  The fast tier holds --fast of the
 * trace's distinct blocks and is what the policy manages; every other block
 * lives on the slow tier.  A request's modelled latency is the slower of its
 * parts served in parallel: hits from the fast tier, misses from the slow
 * tier, prefetched blocks from RAM (or the rest of their transfer, when the
 * prefetch is still in flight).  Each miss promotes its block (a migration
 * of one block up), each eviction demotes one (one block down).
 *
 * With gru+prefetch, prefetched blocks land in a RAM buffer carved out of
 * the same budget (--prefetch-share of the fast capacity), so the comparison
 * with demand-only policies holds the total memory fixed.
 *
 * Statistics cover requests in [--eval-from, --eval-to) of the trace's time
 * span (everything by default); the policies run through the whole trace, so
 * a policy tuned on the first 80% is reported on the last 20% with warm state.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "predictor/mix.h"
#include "predictor/pfengine.h"
#include "predictor/policy.h"
#include "predictor/predictor.h"
#include "predictor/pred_util.h"
#include "predictor/trace.h"

/* ---- tier model ----------------------------------------------------------- */

struct tier_model {
	const char *name;
	double lat_us;  /* access latency */
	double bw_mbs;  /* bandwidth, MB/s (1e6 bytes) */
};

/* Defaults are typical datasheet figures for 4 KiB random access. */
static const struct tier_model default_tiers[] = {
	{ "ram", 0.1, 10000 },
	{ "nvme", 20, 3000 },
	{ "ssd", 100, 500 },
	{ "hdd", 5000, 150 },
	{ "net", 1000, 100 },
};
#define NTIERS (sizeof(default_tiers) / sizeof(default_tiers[0]))

/* ---- options and results -------------------------------------------------- */

#define MAX_POLICIES 64
#define MAX_FRACS 8

/* SP_CLASSIC: any policy_t (classical, Belady, the expert mixture);
 * SP_GRU: the region GRU through the predictor context. */
enum sim_policy { SP_CLASSIC, SP_GRU };

struct sim_spec {
	char name[32];          /* "policy" or "policy+prefetcher" */
	enum sim_policy type;
	enum policy_kind kind;
	enum pfe_kind pf;
};

struct options {
	const char *trace;
	struct sim_spec pol[MAX_POLICIES];
	int npol;
	double frac[MAX_FRACS];
	int nfrac;
	uint32_t block;
	int json;
	double eval_from, eval_to;
	size_t max_req;
	struct tier_model tiers[NTIERS];
	int fast_tier, slow_tier;
	double prefetch_share;
	uint32_t pf_window[PFE__COUNT]; /* 0: the engine's default */
	int pf_depth_set;               /* --prefetch-depth given */
	int pf_thr_set;                 /* --prefetch-threshold given */
	float pf_deep;                  /* --prefetch-deep-threshold, 0: default */
	struct predictor_config pcfg;
	struct mix_config mcfg;
	double mix_budget;              /* --mix-budget, bytes per MiB tracked */
};

struct result {
	const struct sim_spec *spec;
	double frac;
	uint64_t cache_blocks;
	uint64_t reqs, blocks, misses, ram_hits, fast_hits;
	double lat_sum, lat_p99;
	uint64_t migr_bytes;
	uint64_t pf_issued, pf_used, pf_timely, pf_late;
	double ns_per_access;
	double train_ns;            /* part of the CPU time spent training */
	double train_ns_per_access;
	uint64_t model_bytes;
	uint64_t state_bytes;       /* heap held by the policy and prefetcher */
	uint64_t mix_switches;
	double mix_sample;          /* the mixture's sampling rate, 1: full */
	const char *mix_real;       /* the rule its real tier runs */
	int mix_using_gru;
	double mix_gru_share;       /* share of windows the GRU set the weights */
	const char *mix_leader;
	int gru_better;          /* predictor's own shadow verdict, -1 if n/a */
	double shadow_gru, shadow_best;
	double pl_loss, pl_base;  /* placement model: mean BCE, positive share */
	uint64_t anomalies;
};

static double tracked_mib(const struct trace *t);

/* ---- per-run state --------------------------------------------------------- */

/* The prefetch buffer: a FIFO in RAM of blocks read ahead, each with the
 * time its read completes (so late prefetches are seen as such). */
struct pf_buffer {
	struct pu_map map;
	uint64_t *key;
	double *ready;
	uint8_t *used;
	uint32_t cap, head, n;
};

struct run {
	const struct options *o;
	const struct trace *t;
	policy_t *pol;
	predictor_t *pred;
	pf_engine_t *pfe;
	struct pf_buffer pf;
	uint64_t promo_mark;     /* mixture's promotions before the measured part */
	uint64_t evictions;
};

static void on_residency(void *ctx, uint64_t key, int resident)
{
	struct run *r = ctx;

	(void)key;
	if (!resident)
		r->evictions++;
}

static int pf_init(struct pf_buffer *b, uint32_t cap)
{
	memset(b, 0, sizeof(*b));
	if (cap == 0)
		return 0;
	b->cap = cap;
	b->key = calloc(cap, sizeof(*b->key));
	b->ready = calloc(cap, sizeof(*b->ready));
	b->used = calloc(cap, 1);
	if (!b->key || !b->ready || !b->used)
		return -ENOMEM;
	return pu_map_init(&b->map, cap);
}

static void pf_free(struct pf_buffer *b)
{
	if (b->cap)
		pu_map_free(&b->map);
	free(b->key);
	free(b->ready);
	free(b->used);
}

/* Insert a block; the oldest leaves when full. */
static int pf_insert(struct pf_buffer *b, uint64_t key, double ready)
{
	if (!b->cap || pu_map_get(&b->map, key) != PU_NIL)
		return 0;
	uint32_t slot;
	if (b->n == b->cap) {
		slot = b->head;
		pu_map_del(&b->map, b->key[slot]);
		b->head = (b->head + 1) % b->cap;
		b->n--;
	} else {
		slot = (b->head + b->n) % b->cap;
	}
	b->key[slot] = key;
	b->ready[slot] = ready;
	b->used[slot] = 0;
	b->n++;
	int rc = pu_map_put(&b->map, key, slot);
	return rc ? rc : 1;
}

/* ---- replay ------------------------------------------------------------------ */

static double thread_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return x < y ? -1 : x > y;
}

/* Issue the engine's runs as slow-tier reads into the prefetch buffer,
 * skipping chunks already on the fast tier or in the buffer. */
static int issue_prefetches(struct run *r, double now, int in_eval, struct result *res)
{
	const struct tier_model *st = &r->o->tiers[r->o->slow_tier];
	double bs = r->t->block_size;
	struct prefetch_run runs[32];
	size_t n = pfe_take(r->pfe, runs, 32);
	/* One request may not fill more than an eighth of the buffer: with a
	 * small buffer, a deep prediction would push out its own blocks (the
	 * same limit for every engine). */
	uint64_t left = r->pf.cap / 8 ? r->pf.cap / 8 : 1;

	for (size_t k = 0; k < n && left; k++) {
		double ready = now + st->lat_us + runs[k].nchunks * bs / st->bw_mbs;
		for (uint32_t c = 0; c < runs[k].nchunks && left; c++) {
			uint64_t key = TRACE_KEY(runs[k].file, runs[k].chunk + c);
			if (r->pol && policy_contains(r->pol, key))
				continue;
			int rc = pf_insert(&r->pf, key, ready);
			if (rc < 0)
				return rc;
			if (rc)
				left--;
			if (rc && in_eval) {
				res->pf_issued++;
				res->migr_bytes += r->t->block_size;
			}
		}
	}
	return 0;
}

/* The blocks of request i: through the policy (or the predictor), then the
 * prefetch buffer for the ones the fast tier missed.  A prefetched block
 * still in flight at its demand is a miss (a late prefetch). */
static int serve_request(struct run *r, size_t i, uint8_t *hits, int in_eval,
			 struct result *res, uint64_t *nfast, uint64_t *nmiss,
			 uint64_t *nram)
{
	const struct trace *t = r->t;
	const struct trace_req *q = &t->req[i];
	size_t b0 = t->req_first[i], b1 = t->req_first[i + 1];
	double now = (double)q->ts_us;
	int rc;

	if (r->pol) {
		for (size_t b = b0; b < b1; b++) {
			uint32_t nx = t->bnext[b];
			rc = policy_access(r->pol, t->bkey[b],
					   nx == TRACE_NO_NEXT ? POLICY_NEVER : nx);
			if (rc < 0)
				return rc;
			hits[b - b0] = (uint8_t)rc;
		}
	} else {
		struct predictor_access a = {
			.file = q->vol,
			.chunk = q->offset >> __builtin_ctz(t->block_size),
			.nchunks = (uint32_t)(b1 - b0),
			.op = q->op,
			.time_us = q->ts_us,
			.hits = hits,
		};
		rc = predictor_record(r->pred, &a);
		if (rc < 0)
			return rc;
	}
	for (size_t b = b0; b < b1; b++) {
		if (hits[b - b0]) {
			(*nfast)++;
			continue;
		}
		uint32_t s = r->pf.cap ? pu_map_get(&r->pf.map, t->bkey[b]) : PU_NIL;
		if (s == PU_NIL) {
			(*nmiss)++;
			continue;
		}
		int timely = r->pf.ready[s] <= now;
		if (!r->pf.used[s]) {
			pfe_used(r->pfe, q->vol);
			if (in_eval) {
				res->pf_used++;
				res->pf_timely += (uint64_t)timely;
				res->pf_late += (uint64_t)!timely;
			}
		}
		r->pf.used[s] = 1;
		if (timely)
			(*nram)++;
		else
			(*nmiss)++;
	}
	if (!r->pfe)
		return 0;
	rc = pfe_observe(r->pfe, q->vol, q->offset >> __builtin_ctz(t->block_size),
			 (uint32_t)(b1 - b0), q->op, q->ts_us);
	if (rc < 0)
		return rc;
	return rc ? issue_prefetches(r, now, in_eval, res) : 0;
}

static int setup_run(struct run *r, const struct sim_spec *sp, uint64_t cap,
		     uint64_t pf_cap)
{
	const struct options *o = r->o;
	int rc = pf_init(&r->pf, (uint32_t)pf_cap);

	if (rc)
		return rc;
	if (sp->pf != PFE_NONE) {
		struct pfe_config fc;
		pfe_config_default(&fc, sp->pf);
		if (sp->pf == PFE_GRU) {
			if (o->pf_thr_set)
				fc.gru.threshold = o->pcfg.prefetch_threshold;
			fc.gru.hidden = o->pcfg.prefetch_hidden;
			if (o->pf_deep > 0)
				fc.gru.deep_threshold = o->pf_deep;
			if (o->pf_depth_set)
				fc.gru.depth = o->pcfg.prefetch_depth;
			fc.gru.seed = o->pcfg.seed;
		} else if (o->pf_window[sp->pf]) {
			fc.max_window = o->pf_window[sp->pf];
		}
		rc = pfe_create(&fc, &r->pfe);
		if (rc)
			return rc;
	}
	if (sp->type == SP_CLASSIC) {
		if (sp->kind == POLICY_MIX) {
			struct mix_config mc = o->mcfg;
			mc.seed = o->pcfg.seed;
			mc.state_budget = (uint64_t)(o->mix_budget * tracked_mib(r->t));
			const char *why = mix_config_error(&mc, cap - pf_cap);
			if (why) {
				fprintf(stderr, "siltfs-sim: mix at %llu blocks: %s\n",
					(unsigned long long)(cap - pf_cap), why);
				return -EINVAL;
			}
			rc = mix_create(&mc, cap - pf_cap, &r->pol);
		} else {
			rc = policy_create(sp->kind, cap - pf_cap, &r->pol);
		}
		if (!rc)
			policy_set_observer(r->pol, on_residency, r);
		return rc;
	}
	struct predictor_config c = o->pcfg;
	c.fast_capacity = cap - pf_cap;
	c.prefetch = 0; /* the engine above prefetches, for every policy alike */
	return predictor_create(&c, &r->pred);
}

/* Background promotions so far (the mixture's), 0 for other policies. */
static uint64_t promotions_now(const struct run *r)
{
	struct mix_stats ms;

	if (!r->pol || policy_kind_of(r->pol) != POLICY_MIX)
		return 0;
	mix_get_stats(r->pol, &ms);
	return ms.promotions;
}

static uint64_t evictions_now(const struct run *r)
{
	struct predictor_stats ps;

	if (r->pol)
		return r->evictions;
	predictor_stats(r->pred, &ps);
	return ps.fast_evictions;
}

static void collect_stats(const struct run *r, struct result *res)
{
	struct pfe_stats es = { 0 };

	if (r->pfe) {
		pfe_stats(r->pfe, &es);
		res->train_ns += es.train_cpu_ns;
		res->model_bytes += es.model_bytes;
	}
	if (r->pol && policy_kind_of(r->pol) == POLICY_MIX) {
		struct mix_stats ms;
		mix_get_stats(r->pol, &ms);
		res->train_ns += ms.train_cpu_ns;
		res->model_bytes += ms.model_bytes;
		res->mix_switches = ms.switches;
		res->mix_sample = ms.sample_rate;
		res->mix_real = policy_kind_name(ms.real_kind);
		res->migr_bytes += (ms.promotions - r->promo_mark) * r->t->block_size;
		res->mix_using_gru = ms.using_gru;
		res->mix_gru_share = ms.windows ? (double)ms.gru_windows / (double)ms.windows : 0;
		res->mix_leader = policy_kind_name(ms.leader_kind);
		res->gru_better = ms.gru_score > ms.heuristic_score;
		res->shadow_gru = ms.gru_score;
		res->shadow_best = ms.heuristic_score;
	}
	if (r->pred) {
		struct predictor_stats ps;
		predictor_stats(r->pred, &ps);
		res->model_bytes += ps.model_bytes;
		res->train_ns += ps.train_cpu_ms * 1e6;
		res->gru_better = ps.gru_better;
		res->shadow_gru = ps.shadow_gru_hit_ratio;
		res->shadow_best = ps.shadow_best_hit_ratio;
		res->anomalies = ps.anomalies;
		res->pl_loss = ps.placement_mean_loss;
		res->pl_base = ps.placement_base_rate;
	}
}

static int replay(struct run *r, const struct sim_spec *sp, double frac,
		  struct result *res)
{
	const struct options *o = r->o;
	const struct trace *t = r->t;
	const struct tier_model *ft = &o->tiers[o->fast_tier];
	const struct tier_model *st = &o->tiers[o->slow_tier];
	const struct tier_model *rt = &o->tiers[0];
	uint64_t cap = (uint64_t)floor(frac * (double)t->distinct);
	uint64_t pf_cap = sp->pf != PFE_NONE ? (uint64_t)(o->prefetch_share * (double)cap) : 0;
	size_t from = trace_split(t, o->eval_from), to = trace_split(t, o->eval_to);
	size_t maxn = 0;
	uint8_t *hits = NULL;
	float *lat = NULL;
	int rc = 0;

	if (o->eval_to >= 1)
		to = t->nreq;
	memset(res, 0, sizeof(*res));
	res->spec = sp;
	res->frac = frac;
	res->cache_blocks = cap;
	res->gru_better = -1;
	res->mix_leader = "";
	res->mix_real = "";
	for (size_t i = 0; i < t->nreq; i++)
		if (t->req_first[i + 1] - t->req_first[i] > maxn)
			maxn = t->req_first[i + 1] - t->req_first[i];
	lat = malloc((to > from ? to - from : 1) * sizeof(*lat));
	hits = malloc(maxn + 1);
	if (!lat || !hits) {
		rc = -ENOMEM;
		goto out;
	}
	size_t heap0 = mallinfo2().uordblks;
	rc = setup_run(r, sp, cap, pf_cap);
	if (rc)
		goto out;

	double bs = t->block_size;
	double t0 = thread_ns();
	uint64_t evict_mark = 0;
	for (size_t i = 0; i < t->nreq; i++) {
		size_t nblk = t->req_first[i + 1] - t->req_first[i];
		int in_eval = i >= from && i < to;
		uint64_t nfast = 0, nmiss = 0, nram = 0;

		if (i == from) {
			evict_mark = evictions_now(r);
			r->promo_mark = promotions_now(r);
		}
		rc = serve_request(r, i, hits, in_eval, res, &nfast, &nmiss, &nram);
		if (rc < 0)
			goto out;
		if (!in_eval)
			continue;
		res->reqs++;
		res->blocks += nblk;
		res->misses += nmiss;
		res->fast_hits += nfast;
		res->ram_hits += nram;
		res->migr_bytes += nmiss * t->block_size;
		double lf = nfast ? ft->lat_us + nfast * bs / ft->bw_mbs : 0;
		double ls = nmiss ? st->lat_us + nmiss * bs / st->bw_mbs : 0;
		double lr = nram ? rt->lat_us + nram * bs / rt->bw_mbs : 0;
		double l = lf > ls ? lf : ls;
		l = l > lr ? l : lr;
		lat[res->reqs - 1] = (float)l;
		res->lat_sum += l;
	}
	res->ns_per_access = (thread_ns() - t0) / (double)(t->nblk ? t->nblk : 1);
	res->state_bytes = mallinfo2().uordblks - heap0;
	res->migr_bytes += (evictions_now(r) - evict_mark) * t->block_size;
	collect_stats(r, res);
	res->train_ns_per_access = res->train_ns / (double)(t->nblk ? t->nblk : 1);
	if (res->reqs) {
		qsort(lat, res->reqs, sizeof(*lat), cmp_float);
		res->lat_p99 = lat[(size_t)(0.99 * (double)(res->reqs - 1))];
	}
	rc = 0;
out:
	free(lat);
	free(hits);
	pf_free(&r->pf);
	pfe_destroy(r->pfe);
	r->pfe = NULL;
	policy_destroy(r->pol);
	r->pol = NULL;
	predictor_destroy(r->pred);
	r->pred = NULL;
	return rc;
}

/* ---- output -------------------------------------------------------------- */

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0;
}

static void print_table_header(void)
{
	printf("%-18s %6s %9s %8s %8s %8s %8s %10s %10s %12s %7s %7s %7s %8s %8s\n",
	       "policy", "fast", "blocks", "miss", "hit_ram", "hit_fast",
	       "hit_slow", "mean_us", "p99_us", "migr_MiB", "pf_acc", "pf_cov",
	       "pf_tml", "ns/acc", "B/MiB");
}

/* Tracked data: the trace's footprint, in MiB. */
static double tracked_mib(const struct trace *t)
{
	return (double)t->distinct * t->block_size / 1048576.0;
}

/* Accuracy = used / issued (late ones included: they were right, only
 * slow); coverage = timely prefetch hits / (those + misses), late ones being
 * misses; timeliness = timely / used. */
static void print_row(const struct result *r, const struct trace *t)
{
	printf("%-18s %5.1f%% %9llu %8.4f %8.4f %8.4f %8.4f %10.1f %10.1f %12.1f %7.3f %7.3f %7.3f %8.1f %8.0f\n",
	       r->spec->name, r->frac * 100, (unsigned long long)r->cache_blocks,
	       ratio(r->misses, r->blocks), ratio(r->ram_hits, r->blocks),
	       ratio(r->fast_hits, r->blocks), ratio(r->misses, r->blocks),
	       r->reqs ? r->lat_sum / (double)r->reqs : 0, r->lat_p99,
	       (double)r->migr_bytes / 1048576.0, ratio(r->pf_used, r->pf_issued),
	       ratio(r->pf_timely, r->pf_timely + r->misses),
	       ratio(r->pf_timely, r->pf_used), r->ns_per_access,
	       (double)r->state_bytes / tracked_mib(t));
}

static void print_json(const struct result *r, const char *trace,
		       const struct trace *t, int first)
{
	printf("%s\n  {\"trace\": \"%s\", \"policy\": \"%s\", \"base_policy\": \"%s\", "
	       "\"prefetcher\": \"%s\", \"fast_fraction\": %.4f, "
	       "\"cache_blocks\": %llu, \"requests\": %llu, \"block_accesses\": %llu, "
	       "\"miss_ratio\": %.6f, \"hit_ratio_ram\": %.6f, \"hit_ratio_fast\": %.6f, "
	       "\"hit_ratio_slow\": %.6f, \"mean_latency_us\": %.3f, \"p99_latency_us\": %.3f, "
	       "\"migration_bytes\": %llu, \"prefetch_issued\": %llu, \"prefetch_used\": %llu, "
	       "\"prefetch_late\": %llu, \"prefetch_accuracy\": %.6f, "
	       "\"prefetch_coverage\": %.6f, \"prefetch_timeliness\": %.6f, "
	       "\"ns_per_access\": %.1f, \"train_ns_per_access\": %.1f, "
	       "\"model_bytes\": %llu, \"state_bytes\": %llu, \"state_bytes_per_mib\": %.1f, "
	       "\"gru_better\": %d, "
	       "\"shadow_gru_hit_ratio\": %.6f, \"shadow_best_hit_ratio\": %.6f, "
	       "\"mix_leader\": \"%s\", \"mix_switches\": %llu, \"mix_using_gru\": %d, "
	       "\"mix_gru_share\": %.4f, \"mix_sample\": %.5f, \"mix_real\": \"%s\", "
	       "\"anomalies\": %llu, \"placement_loss\": %.4f, "
	       "\"placement_base_rate\": %.4f}",
	       first ? "" : ",", trace, r->spec->name,
	       r->spec->type == SP_GRU ? "gru" : policy_kind_name(r->spec->kind),
	       pfe_kind_name(r->spec->pf), r->frac,
	       (unsigned long long)r->cache_blocks, (unsigned long long)r->reqs,
	       (unsigned long long)r->blocks, ratio(r->misses, r->blocks),
	       ratio(r->ram_hits, r->blocks), ratio(r->fast_hits, r->blocks),
	       ratio(r->misses, r->blocks),
	       r->reqs ? r->lat_sum / (double)r->reqs : 0, r->lat_p99,
	       (unsigned long long)r->migr_bytes, (unsigned long long)r->pf_issued,
	       (unsigned long long)r->pf_used, (unsigned long long)r->pf_late,
	       ratio(r->pf_used, r->pf_issued),
	       ratio(r->pf_timely, r->pf_timely + r->misses),
	       ratio(r->pf_timely, r->pf_used), r->ns_per_access,
	       r->train_ns_per_access, (unsigned long long)r->model_bytes,
	       (unsigned long long)r->state_bytes,
	       (double)r->state_bytes / tracked_mib(t), r->gru_better,
	       r->shadow_gru, r->shadow_best, r->mix_leader,
	       (unsigned long long)r->mix_switches, r->mix_using_gru, r->mix_gru_share, r->mix_sample, r->mix_real,
	       (unsigned long long)r->anomalies, r->pl_loss, r->pl_base);
}

/* ---- option parsing ---------------------------------------------------------- */

static const char *const all_policies[] = {
	"lru", "arc", "s3fifo", "s3fifo1", "lirs", "lfu", "sieve", "tinylfu",
	"gru", "mix", "belady",
};

/* One spec: POLICY or POLICY+PREFETCHER (prefetcher none, ra, leap, gru);
 * "gru+prefetch" is the old name of gru+gru.  "all" is every policy with
 * every prefetcher. */
static int add_policy(struct options *o, const char *name)
{
	struct sim_spec s;
	char pol[32];
	const char *plus = strchr(name, '+');

	memset(&s, 0, sizeof(s));
	if (strcmp(name, "all") == 0) {
		for (size_t i = 0; i < sizeof(all_policies) / sizeof(*all_policies); i++)
			for (int f = 0; f < PFE__COUNT; f++) {
				char n[32];
				snprintf(n, sizeof(n), "%s+%s", all_policies[i],
					 pfe_kind_name((enum pfe_kind)f));
				if (add_policy(o, n))
					return -EINVAL;
			}
		return 0;
	}
	if (strcmp(name, "gru+prefetch") == 0)
		name = "gru+gru";
	plus = strchr(name, '+');
	if (o->npol == MAX_POLICIES)
		return -E2BIG;
	if (strlen(name) >= sizeof(pol))
		return -EINVAL;
	snprintf(pol, sizeof(pol), "%.*s", (int)(plus ? plus - name : (long)strlen(name)), name);
	if (plus && pfe_kind_parse(plus + 1, &s.pf))
		return -EINVAL;
	if (policy_kind_parse(pol, &s.kind))
		return -EINVAL;
	s.type = s.kind == POLICY_LEARNED ? SP_GRU : SP_CLASSIC;
	int w = s.pf == PFE_NONE ? snprintf(s.name, sizeof(s.name), "%s", pol) :
		snprintf(s.name, sizeof(s.name), "%s+%s", pol, pfe_kind_name(s.pf));
	if (w < 0 || (size_t)w >= sizeof(s.name))
		return -EINVAL;
	o->pol[o->npol++] = s;
	return 0;
}

static int parse_list(char *arg, int (*fn)(struct options *, char *),
		      struct options *o)
{
	char *save = NULL;

	for (char *tok = strtok_r(arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (fn(o, tok))
			return -EINVAL;
	return 0;
}

static int add_policy_tok(struct options *o, char *tok)
{
	return add_policy(o, tok);
}

static int add_frac(struct options *o, char *tok)
{
	char *e;
	double v = strtod(tok, &e);

	if (e == tok || o->nfrac == MAX_FRACS)
		return -EINVAL;
	if (*e == '%') {
		v /= 100;
		e++;
	}
	if (*e || v <= 0 || v > 1)
		return -EINVAL;
	o->frac[o->nfrac++] = v;
	return 0;
}

static int parse_size(const char *s, uint32_t *out)
{
	char *e;
	unsigned long long v = strtoull(s, &e, 10);

	if (e == s)
		return -EINVAL;
	if (*e == 'K' || *e == 'k')
		v <<= 10, e++;
	else if (*e == 'M' || *e == 'm')
		v <<= 20, e++;
	if (*e == 'i' || *e == 'B')
		e++;
	if (*e == 'B')
		e++;
	if (*e || v == 0 || (v & (v - 1)) || v > (1u << 30))
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int find_tier(const struct options *o, const char *name)
{
	for (size_t i = 0; i < NTIERS; i++)
		if (strcmp(o->tiers[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* --tier NAME=LAT_US:BW_MBS */
static int parse_tier(struct options *o, const char *arg)
{
	char name[16];
	double lat, bw;

	if (sscanf(arg, "%15[^=]=%lf:%lf", name, &lat, &bw) != 3 || lat < 0 || bw <= 0)
		return -EINVAL;
	int i = find_tier(o, name);
	if (i < 0)
		return -EINVAL;
	o->tiers[i].lat_us = lat;
	o->tiers[i].bw_mbs = bw;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: siltfs-sim --trace FILE [options]\n"
"  --policy LIST      POLICY[+PREFETCHER],... or all (the default: every\n"
"                     policy with every prefetcher); policies lru arc s3fifo\n"
"                     s3fifo1 lirs lfu sieve tinylfu gru mix belady;\n"
"                     prefetchers none ra (readahead) leap gru\n"
"  --fast LIST        fast tier size(s) as a share of distinct blocks (10%%)\n"
"  --block SIZE       block size, power of two (4K)\n"
"  --json             JSON array instead of a table\n"
"  --eval-from F      report only requests from this share of the time span (0)\n"
"  --eval-to F        ... up to this share (1)\n"
"  --max-requests N   replay only the first N requests\n"
"  --fast-tier NAME   class of the fast tier (nvme)\n"
"  --slow-tier NAME   class of the slow tier (hdd)\n"
"  --tier N=LAT:BW    override a tier's latency (us) and bandwidth (MB/s);\n"
"                     tiers: ram nvme ssd hdd net\n"
"  --prefetch-share F share of the fast budget used as prefetch buffer (0.1)\n"
"  --ra-window N      readahead's largest window, chunks (32)\n"
"  --leap-window N    Leap's largest window, requests (8)\n"
"  --mix-window N --mix-horizon N --mix-temperature F --mix-smoothing F\n"
"  --mix-train-interval N --mix-hidden N --mix-sync F --mix-sync-on-switch 0|1\n"
"  --mix-experts LIST --mix-ring N (windows kept for training, 1024)\n"
"  --mix-sample F     share of keys the experts' sampled shadows see (1: full)\n"
"  --mix-budget B     bytes of the mixture's own state (shadows, GRU, ring)\n"
"                     per MiB of tracked data; sets\n"
"                     the sampling rate (not with --mix-sample)\n"
"                     (mix.h)\n"
"  --seed N --hidden N --region-shift N --window N --horizon N --lr F\n"
"  --margin F --train-interval N (0: no training) --prefetch-threshold F\n"
"  --prefetch-hidden N --prefetch-depth N --prefetch-deep-threshold F\n"
"  --shadows LIST|none  classical policies run beside the GRU (lru,arc,s3fifo)\n"
"                     predictor settings (see docs/predictor.md)\n");
}

enum {
	OPT_EVAL_FROM = 256, OPT_EVAL_TO, OPT_MAX_REQ, OPT_FAST_TIER,
	OPT_SLOW_TIER, OPT_TIER, OPT_PF_SHARE, OPT_SEED, OPT_HIDDEN,
	OPT_REGION, OPT_WINDOW, OPT_HORIZON, OPT_LR, OPT_PF_THR, OPT_TRAIN,
	OPT_MARGIN, OPT_PF_HIDDEN, OPT_PF_DEPTH, OPT_SHADOWS, OPT_MIX_WINDOW,
	OPT_MIX_HORIZON, OPT_MIX_TEMP, OPT_MIX_SMOOTH, OPT_MIX_TRAIN, OPT_MIX_EXPERTS,
	OPT_MIX_HIDDEN, OPT_RA_WINDOW, OPT_LEAP_WINDOW, OPT_MIX_SYNC, OPT_MIX_SWITCH,
	OPT_PF_DEEP, OPT_MIX_SAMPLE, OPT_MIX_BUDGET, OPT_MIX_RING,
	OPT_MIX_FOLLOW, OPT_MIX_DECAY,
};

/* A number with nothing after it (strtod alone takes "0.1x" as 0.1). */
static int parse_num(const char *arg, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(arg, &end);
	return end == arg || *end || errno ? -EINVAL : 0;
}

/* --mix-sample F: the share of keys the experts see, (0, 1]. */
static int parse_mix_sample(struct options *o, const char *arg)
{
	double v;

	if (parse_num(arg, &v) || !(v > 0 && v <= 1)) {
		fprintf(stderr, "siltfs-sim: --mix-sample %s: a share in (0, 1]\n", arg);
		return -EINVAL;
	}
	o->mcfg.sample = (float)v;
	return 0;
}

/* --mix-budget B: bytes of the mixture's own state per MiB of tracked data. */
static int parse_mix_budget(struct options *o, const char *arg)
{
	double v;

	if (parse_num(arg, &v) || !(v > 0) || v > 1e9) {
		fprintf(stderr, "siltfs-sim: --mix-budget %s: bytes per MiB of tracked "
			"data, more than 0\n", arg);
		return -EINVAL;
	}
	o->mix_budget = v;
	return 0;
}

/* A comma list of classical policies as a mask of 1 << kind ("none": 0);
 * Belady and the learned policies are refused. */
static int parse_classical_mask(char *arg, uint32_t *mask)
{
	char *save = NULL;

	*mask = 0;
	if (strcmp(arg, "none") == 0)
		return 0;
	for (char *tok = strtok_r(arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		enum policy_kind k;
		if (policy_kind_parse(tok, &k) || k == POLICY_BELADY || k == POLICY_LEARNED ||
		    k == POLICY_MIX)
			return -EINVAL;
		*mask |= 1u << k;
	}
	return 0;
}

/* --mix-experts lru,arc,...: the classical policies the mixture weighs. */
static int parse_experts(struct options *o, char *arg)
{
	int rc = parse_classical_mask(arg, &o->mcfg.experts);

	if (rc)
		return rc;
	return !o->mcfg.experts || __builtin_popcount(o->mcfg.experts) > MIX_MAX_EXPERTS ?
		-EINVAL : 0;
}

/* --shadows lru,arc,... or none: the classical policies the predictor runs
 * beside the GRU to judge it (they cost CPU per access too). */
static int parse_shadows(struct options *o, char *arg)
{
	return parse_classical_mask(arg, &o->pcfg.shadow_mask);
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option lo[] = {
		{ "trace", required_argument, NULL, 't' },
		{ "policy", required_argument, NULL, 'p' },
		{ "fast", required_argument, NULL, 'f' },
		{ "block", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "eval-from", required_argument, NULL, OPT_EVAL_FROM },
		{ "eval-to", required_argument, NULL, OPT_EVAL_TO },
		{ "max-requests", required_argument, NULL, OPT_MAX_REQ },
		{ "fast-tier", required_argument, NULL, OPT_FAST_TIER },
		{ "slow-tier", required_argument, NULL, OPT_SLOW_TIER },
		{ "tier", required_argument, NULL, OPT_TIER },
		{ "prefetch-share", required_argument, NULL, OPT_PF_SHARE },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "hidden", required_argument, NULL, OPT_HIDDEN },
		{ "region-shift", required_argument, NULL, OPT_REGION },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "horizon", required_argument, NULL, OPT_HORIZON },
		{ "lr", required_argument, NULL, OPT_LR },
		{ "prefetch-threshold", required_argument, NULL, OPT_PF_THR },
		{ "train-interval", required_argument, NULL, OPT_TRAIN },
		{ "margin", required_argument, NULL, OPT_MARGIN },
		{ "prefetch-hidden", required_argument, NULL, OPT_PF_HIDDEN },
		{ "prefetch-depth", required_argument, NULL, OPT_PF_DEPTH },
		{ "prefetch-deep-threshold", required_argument, NULL, OPT_PF_DEEP },
		{ "shadows", required_argument, NULL, OPT_SHADOWS },
		{ "mix-window", required_argument, NULL, OPT_MIX_WINDOW },
		{ "mix-horizon", required_argument, NULL, OPT_MIX_HORIZON },
		{ "mix-temperature", required_argument, NULL, OPT_MIX_TEMP },
		{ "mix-smoothing", required_argument, NULL, OPT_MIX_SMOOTH },
		{ "mix-train-interval", required_argument, NULL, OPT_MIX_TRAIN },
		{ "mix-experts", required_argument, NULL, OPT_MIX_EXPERTS },
		{ "mix-hidden", required_argument, NULL, OPT_MIX_HIDDEN },
		{ "mix-sync", required_argument, NULL, OPT_MIX_SYNC },
		{ "mix-sync-on-switch", required_argument, NULL, OPT_MIX_SWITCH },
		{ "mix-sample", required_argument, NULL, OPT_MIX_SAMPLE },
		{ "mix-budget", required_argument, NULL, OPT_MIX_BUDGET },
		{ "mix-ring", required_argument, NULL, OPT_MIX_RING },
		{ "mix-follow-margin", required_argument, NULL, OPT_MIX_FOLLOW },
		{ "mix-follow-decay", required_argument, NULL, OPT_MIX_DECAY },
		{ "ra-window", required_argument, NULL, OPT_RA_WINDOW },
		{ "leap-window", required_argument, NULL, OPT_LEAP_WINDOW },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memcpy(o->tiers, default_tiers, sizeof(default_tiers));
	o->block = 4096;
	o->eval_to = 1;
	o->fast_tier = 1;
	o->slow_tier = 3;
	o->prefetch_share = 0.1;
	predictor_config_default(&o->pcfg);
	mix_config_default(&o->mcfg);
	while ((c = getopt_long(argc, argv, "t:p:f:b:jh", lo, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case 't': o->trace = optarg; break;
		case 'p': bad = parse_list(optarg, add_policy_tok, o); break;
		case 'f': bad = parse_list(optarg, add_frac, o); break;
		case 'b': bad = parse_size(optarg, &o->block); break;
		case 'j': o->json = 1; break;
		case 'h': usage(stdout); exit(0);
		case OPT_EVAL_FROM: o->eval_from = atof(optarg); break;
		case OPT_EVAL_TO: o->eval_to = atof(optarg); break;
		case OPT_MAX_REQ: o->max_req = strtoull(optarg, NULL, 10); break;
		case OPT_FAST_TIER: bad = (o->fast_tier = find_tier(o, optarg)) < 0; break;
		case OPT_SLOW_TIER: bad = (o->slow_tier = find_tier(o, optarg)) < 0; break;
		case OPT_TIER: bad = parse_tier(o, optarg); break;
		case OPT_PF_SHARE: o->prefetch_share = atof(optarg); break;
		case OPT_SEED: o->pcfg.seed = strtoull(optarg, NULL, 10); break;
		case OPT_HIDDEN: o->pcfg.hidden = (uint32_t)atoi(optarg); break;
		case OPT_REGION: o->pcfg.region_shift = (uint32_t)atoi(optarg); break;
		case OPT_WINDOW: o->pcfg.window = (uint32_t)atoi(optarg); break;
		case OPT_HORIZON: o->pcfg.horizon = (uint32_t)atoi(optarg); break;
		case OPT_LR: o->pcfg.lr = (float)atof(optarg); break;
		case OPT_PF_THR:
			o->pcfg.prefetch_threshold = (float)atof(optarg);
			o->pf_thr_set = 1;
			break;
		case OPT_PF_DEEP: o->pf_deep = (float)atof(optarg); break;
		case OPT_TRAIN: o->pcfg.train_interval = (uint32_t)atoi(optarg); break;
		case OPT_MARGIN: o->pcfg.margin = (float)atof(optarg); break;
		case OPT_PF_HIDDEN: o->pcfg.prefetch_hidden = (uint32_t)atoi(optarg); break;
		case OPT_PF_DEPTH:
			o->pcfg.prefetch_depth = (uint32_t)atoi(optarg);
			o->pf_depth_set = 1;
			break;
		case OPT_SHADOWS: bad = parse_shadows(o, optarg); break;
		case OPT_MIX_WINDOW: o->mcfg.window = (uint32_t)atoi(optarg); break;
		case OPT_MIX_HORIZON: o->mcfg.horizon = (uint32_t)atoi(optarg); break;
		case OPT_MIX_TEMP: o->mcfg.temperature = (float)atof(optarg); break;
		case OPT_MIX_SMOOTH: o->mcfg.smoothing = (float)atof(optarg); break;
		case OPT_MIX_TRAIN: o->mcfg.train_interval = (uint32_t)atoi(optarg); break;
		case OPT_MIX_EXPERTS: bad = parse_experts(o, optarg); break;
		case OPT_MIX_HIDDEN: o->mcfg.hidden = (uint32_t)atoi(optarg); break;
		case OPT_MIX_SYNC: o->mcfg.sync = (float)atof(optarg); break;
		case OPT_MIX_SWITCH: o->mcfg.sync_on_switch = atoi(optarg); break;
		case OPT_MIX_SAMPLE: bad = parse_mix_sample(o, optarg); break;
		case OPT_MIX_BUDGET: bad = parse_mix_budget(o, optarg); break;
		case OPT_MIX_RING: o->mcfg.ring = (uint32_t)atoi(optarg); break;
		case OPT_MIX_FOLLOW: o->mcfg.follow_margin = (float)atof(optarg); break;
		case OPT_MIX_DECAY: o->mcfg.follow_decay = (float)atof(optarg); break;
		case OPT_RA_WINDOW: o->pf_window[PFE_READAHEAD] = (uint32_t)atoi(optarg); break;
		case OPT_LEAP_WINDOW: o->pf_window[PFE_LEAP] = (uint32_t)atoi(optarg); break;
		default: bad = 1;
		}
		if (bad) {
			if (c != '?')
				fprintf(stderr, "siltfs-sim: bad value for option: %s\n",
					optarg ? optarg : "");
			usage(stderr);
			return -EINVAL;
		}
	}
	if (!o->trace || optind != argc || o->eval_from < 0 || o->eval_to > 1 ||
	    o->eval_from >= o->eval_to || o->prefetch_share < 0 ||
	    o->prefetch_share >= 1) {
		usage(stderr);
		return -EINVAL;
	}
	if (o->npol == 0)
		add_policy(o, "all");
	if (o->nfrac == 0)
		o->frac[o->nfrac++] = 0.10;
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	struct trace *t = NULL;
	int rc;

	memset(&o, 0, sizeof(o));
	if (parse_args(argc, argv, &o))
		return 2;
	rc = trace_load(o.trace, o.max_req, &t);
	if (rc) {
		fprintf(stderr, "siltfs-sim: %s: %s\n", o.trace, strerror(-rc));
		return 1;
	}
	rc = trace_expand(t, o.block);
	if (rc) {
		fprintf(stderr, "siltfs-sim: expanding %s: %s\n", o.trace, strerror(-rc));
		trace_free(t);
		return 1;
	}
	const char *base = strrchr(o.trace, '/');
	base = base ? base + 1 : o.trace;
	if (o.json)
		printf("[");
	else
		printf("# %s: %zu requests, %zu block accesses, %llu distinct %u-byte blocks\n",
		       base, t->nreq, t->nblk, (unsigned long long)t->distinct, o.block);
	int first = 1;
	for (int f = 0; f < o.nfrac; f++) {
		if (!o.json)
			print_table_header();
		for (int p = 0; p < o.npol; p++) {
			struct run r = { .o = &o, .t = t };
			struct result res;
			rc = replay(&r, &o.pol[p], o.frac[f], &res);
			if (rc) {
				fprintf(stderr, "siltfs-sim: %s: %s\n", o.pol[p].name,
					strerror(-rc));
				trace_free(t);
				return 1;
			}
			if (o.json)
				print_json(&res, base, t, first);
			else
				print_row(&res, t);
			first = 0;
			fflush(stdout);
		}
	}
	if (o.json)
		printf("\n]\n");
	trace_free(t);
	return 0;
}
