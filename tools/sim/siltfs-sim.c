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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

#define MAX_POLICIES 16
#define MAX_FRACS 8

enum sim_policy { SP_CLASSIC, SP_GRU, SP_GRU_PREFETCH };

struct sim_spec {
	const char *name;
	enum sim_policy type;
	enum policy_kind kind;
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
	struct predictor_config pcfg;
};

struct result {
	const char *policy;
	double frac;
	uint64_t cache_blocks;
	uint64_t reqs, blocks, misses, ram_hits, fast_hits;
	double lat_sum, lat_p99;
	uint64_t migr_bytes;
	uint64_t pf_issued, pf_used, pf_timely;
	double ns_per_access;
	double train_ns_per_access; /* part of ns_per_access spent training */
	uint64_t model_bytes;
	int gru_better;          /* predictor's own shadow verdict, -1 if n/a */
	double shadow_gru, shadow_best;
	double pl_loss, pl_base;  /* placement model: mean BCE, positive share */
	uint64_t anomalies;
};

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
	struct pf_buffer pf;
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

static int replay(struct run *r, const struct sim_spec *sp, double frac,
		  struct result *res)
{
	const struct options *o = r->o;
	const struct trace *t = r->t;
	const struct tier_model *ft = &o->tiers[o->fast_tier];
	const struct tier_model *st = &o->tiers[o->slow_tier];
	const struct tier_model *rt = &o->tiers[0];
	uint64_t cap = (uint64_t)floor(frac * (double)t->distinct);
	uint64_t pf_cap = 0;
	size_t from = trace_split(t, o->eval_from), to = trace_split(t, o->eval_to);
	uint8_t *hits = NULL;
	float *lat = NULL;
	int rc = 0;

	if (o->eval_to >= 1)
		to = t->nreq;
	memset(res, 0, sizeof(*res));
	res->policy = sp->name;
	res->frac = frac;
	res->cache_blocks = cap;
	res->gru_better = -1;
	lat = malloc((to > from ? to - from : 1) * sizeof(*lat));
	if (!lat)
		return -ENOMEM;

	if (sp->type == SP_GRU_PREFETCH)
		pf_cap = (uint64_t)(o->prefetch_share * (double)cap);
	rc = pf_init(&r->pf, (uint32_t)pf_cap);
	if (rc)
		goto out;
	if (sp->type == SP_CLASSIC) {
		rc = policy_create(sp->kind, cap, &r->pol);
		if (rc)
			goto out;
		policy_set_observer(r->pol, on_residency, r);
	} else {
		struct predictor_config c = o->pcfg;
		c.fast_capacity = cap - pf_cap;
		c.prefetch = sp->type == SP_GRU_PREFETCH;
		rc = predictor_create(&c, &r->pred);
		if (rc)
			goto out;
		size_t maxn = 0;
		for (size_t i = 0; i < t->nreq; i++)
			if (t->req_first[i + 1] - t->req_first[i] > maxn)
				maxn = t->req_first[i + 1] - t->req_first[i];
		hits = malloc(maxn + 1);
		if (!hits) {
			rc = -ENOMEM;
			goto out;
		}
	}

	int shift = __builtin_ctz(t->block_size);
	double bs = t->block_size;
	double t0 = thread_ns();
	uint64_t evict_mark = 0;
	for (size_t i = 0; i < t->nreq; i++) {
		const struct trace_req *q = &t->req[i];
		size_t b0 = t->req_first[i], b1 = t->req_first[i + 1];
		int in_eval = i >= from && i < to;
		uint64_t nfast = 0, nmiss = 0, nram = 0;
		double now = (double)q->ts_us, ram_wait = 0;

		if (i == from) {
			evict_mark = r->evictions;
			if (r->pred) {
				struct predictor_stats ps;
				predictor_stats(r->pred, &ps);
				evict_mark = ps.fast_evictions;
			}
		}
		if (r->pol) {
			for (size_t b = b0; b < b1; b++) {
				uint32_t nx = t->bnext[b];
				rc = policy_access(r->pol, t->bkey[b],
						   nx == TRACE_NO_NEXT ? POLICY_NEVER : nx);
				if (rc < 0)
					goto out;
				if (rc)
					nfast++;
				else
					nmiss++;
			}
		} else {
			struct predictor_access a = {
				.file = q->vol,
				.chunk = q->offset >> shift,
				.nchunks = (uint32_t)(b1 - b0),
				.op = q->op,
				.time_us = q->ts_us,
				.hits = hits,
			};
			rc = predictor_record(r->pred, &a);
			if (rc < 0)
				goto out;
			for (size_t b = b0; b < b1; b++) {
				if (hits[b - b0]) {
					nfast++;
					continue;
				}
				uint32_t s = r->pf.cap ? pu_map_get(&r->pf.map, t->bkey[b]) : PU_NIL;
				if (s == PU_NIL) {
					nmiss++;
					continue;
				}
				nram++;
				if (!r->pf.used[s] && in_eval) {
					res->pf_used++;
					if (r->pf.ready[s] <= now)
						res->pf_timely++;
				}
				r->pf.used[s] = 1;
				if (r->pf.ready[s] - now > ram_wait)
					ram_wait = r->pf.ready[s] - now;
			}
			if (r->pf.cap) {
				struct predictor_run runs[8];
				long n = predictor_prefetch(r->pred, runs, 8);
				if (n < 0) {
					rc = (int)n;
					goto out;
				}
				/* Prefetch reads are issued now, one slow-tier I/O each. */
				for (long k = 0; k < n; k++) {
					double ready = now + st->lat_us +
						runs[k].nchunks * bs / st->bw_mbs;
					for (uint32_t c = 0; c < runs[k].nchunks; c++) {
						uint64_t key = TRACE_KEY(runs[k].file, runs[k].chunk + c);
						rc = pf_insert(&r->pf, key, ready);
						if (rc < 0)
							goto out;
						if (rc && in_eval) {
							res->pf_issued++;
							res->migr_bytes += t->block_size;
						}
					}
				}
			}
		}
		if (!in_eval)
			continue;
		res->reqs++;
		res->blocks += b1 - b0;
		res->misses += nmiss;
		res->fast_hits += nfast;
		res->ram_hits += nram;
		res->migr_bytes += nmiss * t->block_size;
		double lf = nfast ? ft->lat_us + nfast * bs / ft->bw_mbs : 0;
		double ls = nmiss ? st->lat_us + nmiss * bs / st->bw_mbs : 0;
		double lr = nram ? rt->lat_us + nram * bs / rt->bw_mbs + ram_wait : 0;
		double l = lf > ls ? lf : ls;
		l = l > lr ? l : lr;
		lat[res->reqs - 1] = (float)l;
		res->lat_sum += l;
	}
	res->ns_per_access = (thread_ns() - t0) / (double)(t->nblk ? t->nblk : 1);
	if (r->pol) {
		res->migr_bytes += (r->evictions - evict_mark) * t->block_size;
	} else {
		struct predictor_stats ps;
		predictor_stats(r->pred, &ps);
		res->migr_bytes += (ps.fast_evictions - evict_mark) * t->block_size;
		res->model_bytes = ps.model_bytes;
		res->train_ns_per_access = ps.train_cpu_ms * 1e6 / (double)(t->nblk ? t->nblk : 1);
		res->gru_better = ps.gru_better;
		res->shadow_gru = ps.shadow_gru_hit_ratio;
		res->shadow_best = ps.shadow_best_hit_ratio;
		res->anomalies = ps.anomalies;
		res->pl_loss = ps.placement_mean_loss;
		res->pl_base = ps.placement_base_rate;
	}
	if (res->reqs) {
		qsort(lat, res->reqs, sizeof(*lat), cmp_float);
		res->lat_p99 = lat[(size_t)(0.99 * (double)(res->reqs - 1))];
	}
	rc = 0;
out:
	free(lat);
	free(hits);
	pf_free(&r->pf);
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
	printf("%-13s %6s %9s %8s %8s %8s %8s %10s %10s %12s %7s %7s %7s %8s\n",
	       "policy", "fast", "blocks", "miss", "hit_ram", "hit_fast",
	       "hit_slow", "mean_us", "p99_us", "migr_MiB", "pf_acc", "pf_cov",
	       "pf_tml", "ns/acc");
}

static void print_row(const struct result *r)
{
	uint64_t would_miss = r->misses + r->pf_used;

	printf("%-13s %5.1f%% %9llu %8.4f %8.4f %8.4f %8.4f %10.1f %10.1f %12.1f %7.3f %7.3f %7.3f %8.1f\n",
	       r->policy, r->frac * 100, (unsigned long long)r->cache_blocks,
	       ratio(r->misses, r->blocks), ratio(r->ram_hits, r->blocks),
	       ratio(r->fast_hits, r->blocks), ratio(r->misses, r->blocks),
	       r->reqs ? r->lat_sum / (double)r->reqs : 0, r->lat_p99,
	       (double)r->migr_bytes / 1048576.0, ratio(r->pf_used, r->pf_issued),
	       ratio(r->pf_used, would_miss), ratio(r->pf_timely, r->pf_used),
	       r->ns_per_access);
}

static void print_json(const struct result *r, const char *trace, int first)
{
	uint64_t would_miss = r->misses + r->pf_used;

	printf("%s\n  {\"trace\": \"%s\", \"policy\": \"%s\", \"fast_fraction\": %.4f, "
	       "\"cache_blocks\": %llu, \"requests\": %llu, \"block_accesses\": %llu, "
	       "\"miss_ratio\": %.6f, \"hit_ratio_ram\": %.6f, \"hit_ratio_fast\": %.6f, "
	       "\"hit_ratio_slow\": %.6f, \"mean_latency_us\": %.3f, \"p99_latency_us\": %.3f, "
	       "\"migration_bytes\": %llu, \"prefetch_issued\": %llu, \"prefetch_accuracy\": %.6f, "
	       "\"prefetch_coverage\": %.6f, \"prefetch_timeliness\": %.6f, "
	       "\"ns_per_access\": %.1f, \"train_ns_per_access\": %.1f, "
	       "\"model_bytes\": %llu, \"gru_better\": %d, "
	       "\"shadow_gru_hit_ratio\": %.6f, \"shadow_best_hit_ratio\": %.6f, "
	       "\"anomalies\": %llu, \"placement_loss\": %.4f, "
	       "\"placement_base_rate\": %.4f}",
	       first ? "" : ",", trace, r->policy, r->frac,
	       (unsigned long long)r->cache_blocks, (unsigned long long)r->reqs,
	       (unsigned long long)r->blocks, ratio(r->misses, r->blocks),
	       ratio(r->ram_hits, r->blocks), ratio(r->fast_hits, r->blocks),
	       ratio(r->misses, r->blocks),
	       r->reqs ? r->lat_sum / (double)r->reqs : 0, r->lat_p99,
	       (unsigned long long)r->migr_bytes, (unsigned long long)r->pf_issued,
	       ratio(r->pf_used, r->pf_issued), ratio(r->pf_used, would_miss),
	       ratio(r->pf_timely, r->pf_used), r->ns_per_access,
	       r->train_ns_per_access,
	       (unsigned long long)r->model_bytes, r->gru_better, r->shadow_gru,
	       r->shadow_best, (unsigned long long)r->anomalies, r->pl_loss,
	       r->pl_base);
}

/* ---- option parsing ---------------------------------------------------------- */

static const char *const all_policies[] = {
	"lru", "arc", "s3fifo", "lirs", "lfu", "gru", "gru+prefetch", "belady",
};

static int add_policy(struct options *o, const char *name)
{
	struct sim_spec s = { .name = NULL };

	if (strcmp(name, "all") == 0) {
		for (size_t i = 0; i < sizeof(all_policies) / sizeof(*all_policies); i++)
			if (add_policy(o, all_policies[i]))
				return -EINVAL;
		return 0;
	}
	if (o->npol == MAX_POLICIES)
		return -E2BIG;
	if (strcmp(name, "gru+prefetch") == 0) {
		s.name = "gru+prefetch";
		s.type = SP_GRU_PREFETCH;
		s.kind = POLICY_LEARNED;
	} else if (policy_kind_parse(name, &s.kind) == 0) {
		s.name = policy_kind_name(s.kind);
		s.type = s.kind == POLICY_LEARNED ? SP_GRU : SP_CLASSIC;
	} else {
		return -EINVAL;
	}
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
"  --policy LIST      lru,arc,s3fifo,lirs,lfu,gru,gru+prefetch,belady or all\n"
"                     (default all)\n"
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
"  --seed N --hidden N --region-shift N --window N --horizon N --lr F\n"
"  --margin F --train-interval N (0: no training) --prefetch-threshold F\n"
"  --prefetch-hidden N --prefetch-depth N\n"
"  --shadows LIST|none  classical policies run beside the GRU (lru,arc,s3fifo)\n"
"                     predictor settings (see docs/predictor.md)\n");
}

enum {
	OPT_EVAL_FROM = 256, OPT_EVAL_TO, OPT_MAX_REQ, OPT_FAST_TIER,
	OPT_SLOW_TIER, OPT_TIER, OPT_PF_SHARE, OPT_SEED, OPT_HIDDEN,
	OPT_REGION, OPT_WINDOW, OPT_HORIZON, OPT_LR, OPT_PF_THR, OPT_TRAIN,
	OPT_MARGIN, OPT_PF_HIDDEN, OPT_PF_DEPTH, OPT_SHADOWS,
};

/* --shadows lru,arc,... or none: the classical policies the predictor runs
 * beside the GRU to judge it (they cost CPU per access too). */
static int parse_shadows(struct options *o, char *arg)
{
	char *save = NULL;

	o->pcfg.shadow_mask = 0;
	if (strcmp(arg, "none") == 0)
		return 0;
	for (char *tok = strtok_r(arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		enum policy_kind k;
		if (policy_kind_parse(tok, &k) || k == POLICY_BELADY || k == POLICY_LEARNED ||
		    k == POLICY_MIX)
			return -EINVAL;
		o->pcfg.shadow_mask |= 1u << k;
	}
	return 0;
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
		{ "shadows", required_argument, NULL, OPT_SHADOWS },
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
		case OPT_PF_THR: o->pcfg.prefetch_threshold = (float)atof(optarg); break;
		case OPT_TRAIN: o->pcfg.train_interval = (uint32_t)atoi(optarg); break;
		case OPT_MARGIN: o->pcfg.margin = (float)atof(optarg); break;
		case OPT_PF_HIDDEN: o->pcfg.prefetch_hidden = (uint32_t)atoi(optarg); break;
		case OPT_PF_DEPTH: o->pcfg.prefetch_depth = (uint32_t)atoi(optarg); break;
		case OPT_SHADOWS: bad = parse_shadows(o, optarg); break;
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
				print_json(&res, base, first);
			else
				print_row(&res);
			first = 0;
			fflush(stdout);
		}
	}
	if (o.json)
		printf("\n]\n");
	trace_free(t);
	return 0;
}
