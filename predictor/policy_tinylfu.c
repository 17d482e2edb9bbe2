/*
 * policy_tinylfu.c - W-TinyLFU (Einziger, Friedman and Manes, "TinyLFU: a
 * highly efficient cache admission policy", ACM ToS 2017), laid out as in
 * Caffeine and libCacheSim's WTinyLFU.
 *
 * A window LRU (1% of the capacity) takes every new key.  The key the
 * window pushes out is a candidate for the main cache, a segmented LRU
 * (probation + protected, protected at most 80% of it).  When the main
 * cache is full the candidate is admitted only if a count-min sketch says it
 * was accessed more often than the main cache's victim (probation's LRU end);
 * otherwise the candidate itself leaves.  A hit in probation moves the key
 * to protected; protected's overflow goes back to probation.
 *
 * The sketch: 4 rows of 8-bit counters (saturating at 15, as Caffeine's
 * 4-bit ones), width the next power of two >= capacity, every access
 * counted, and all counters halved after 10 x capacity accesses, so that
 * the frequencies it compares are recent ones.  The window is fixed at 1%:
 * Caffeine's hill climber that resizes it is not modelled (libCacheSim does
 * not model it either).
 */
#include <errno.h>
#include <stdlib.h>

#include "predictor/policy_impl.h"
#include "predictor/pred_util.h"

enum { TW, TPROB, TPROT };

#define CMS_ROWS 4
#define CMS_MAX 15

struct tinylfu {
	struct policy base;
	struct pu_map map;
	struct pu_list q[3];
	uint64_t w_cap, m_cap, prot_cap;
	uint64_t *key;
	uint32_t *prev, *next;
	uint8_t *where;
	uint32_t *free_ids;
	uint32_t nfree;
	uint8_t *cms;           /* CMS_ROWS x width counters */
	uint64_t width_mask;
	uint64_t additions, sample;
};

static uint64_t cms_index(const struct tinylfu *c, uint64_t h, int row)
{
	/* One 64-bit hash, re-mixed per row: four independent-enough indexes. */
	return pu_mix64(h + 0x9e3779b97f4a7c15ULL * (uint64_t)(row + 1)) & c->width_mask;
}

static unsigned cms_estimate(const struct tinylfu *c, uint64_t k)
{
	uint64_t h = pu_mix64(k);
	unsigned m = CMS_MAX;

	for (int r = 0; r < CMS_ROWS; r++) {
		unsigned v = c->cms[(uint64_t)r * (c->width_mask + 1) + cms_index(c, h, r)];
		if (v < m)
			m = v;
	}
	return m;
}

static void cms_add(struct tinylfu *c, uint64_t k)
{
	uint64_t h = pu_mix64(k), w = c->width_mask + 1;

	for (int r = 0; r < CMS_ROWS; r++) {
		uint8_t *v = &c->cms[(uint64_t)r * w + cms_index(c, h, r)];
		if (*v < CMS_MAX)
			(*v)++;
	}
	if (++c->additions >= c->sample) {
		for (uint64_t i = 0; i < CMS_ROWS * w; i++)
			c->cms[i] >>= 1;
		c->additions /= 2;
	}
}

static void tl_move(struct tinylfu *c, uint32_t id, int to)
{
	pu_list_unlink(&c->q[c->where[id]], c->prev, c->next, id);
	pu_list_push_head(&c->q[to], c->prev, c->next, id);
	c->where[id] = (uint8_t)to;
}

static void tl_drop(struct tinylfu *c, uint32_t id)
{
	pu_list_unlink(&c->q[c->where[id]], c->prev, c->next, id);
	pu_map_del(&c->map, c->key[id]);
	c->free_ids[c->nfree++] = id;
	c->base.size--;
	policy_notify(&c->base, c->key[id], 0);
}

/* The window overflowed: its LRU key competes for a place in main. */
static void tl_admit_candidate(struct tinylfu *c)
{
	uint32_t cand = c->q[TW].tail;

	if (c->m_cap == 0) {
		tl_drop(c, cand);
		return;
	}
	if (c->q[TPROB].len + c->q[TPROT].len < c->m_cap) {
		tl_move(c, cand, TPROB);
		return;
	}
	uint32_t victim = c->q[TPROB].len ? c->q[TPROB].tail : c->q[TPROT].tail;
	if (cms_estimate(c, c->key[cand]) > cms_estimate(c, c->key[victim])) {
		tl_drop(c, victim);
		tl_move(c, cand, TPROB);
	} else {
		tl_drop(c, cand);
	}
}

static int tl_access(policy_t *p, uint64_t k, uint64_t next_use)
{
	struct tinylfu *c = (struct tinylfu *)p;
	uint32_t id = pu_map_get(&c->map, k);

	(void)next_use;
	cms_add(c, k);
	if (id != PU_NIL) {
		int w = c->where[id];
		tl_move(c, id, w == TW ? TW : TPROT);
		if (w == TPROB && c->q[TPROT].len > c->prot_cap)
			tl_move(c, c->q[TPROT].tail, TPROB);
		return 1;
	}
	id = c->free_ids[--c->nfree];
	c->key[id] = k;
	int rc = pu_map_put(&c->map, k, id);
	if (rc)
		return rc;
	pu_list_push_head(&c->q[TW], c->prev, c->next, id);
	c->where[id] = TW;
	p->size++;
	policy_notify(p, k, 1);
	if (c->q[TW].len > c->w_cap)
		tl_admit_candidate(c);
	return 0;
}

static int tl_contains(const policy_t *p, uint64_t k)
{
	return pu_map_get(&((const struct tinylfu *)p)->map, k) != PU_NIL;
}

/* Eviction order: probation from its LRU end, then the window, then
 * protected: roughly who loses first when new keys keep coming. */
static size_t tl_victims(const policy_t *p, uint64_t *out, size_t max)
{
	const struct tinylfu *c = (const struct tinylfu *)p;
	static const int order[3] = { TPROB, TW, TPROT };
	size_t n = 0;

	for (int i = 0; i < 3; i++)
		for (uint32_t id = c->q[order[i]].tail; id != PU_NIL && n < max;
		     id = c->prev[id])
			out[n++] = c->key[id];
	return n;
}

static void tl_destroy(policy_t *p)
{
	struct tinylfu *c = (struct tinylfu *)p;

	if (c->map.keys)
		pu_map_free(&c->map);
	free(c->key);
	free(c->prev);
	free(c->next);
	free(c->where);
	free(c->free_ids);
	free(c->cms);
	free(c);
}

static const struct policy_ops tl_ops = {
	tl_access, tl_contains, tl_victims, tl_destroy,
};

int policy_tinylfu_create(uint64_t capacity, policy_t **out)
{
	struct tinylfu *c = calloc(1, sizeof(*c));
	size_t n = (size_t)capacity + 2;
	uint64_t width = 16;

	if (!c)
		return -ENOMEM;
	c->base.ops = &tl_ops;
	c->base.kind = POLICY_TINYLFU;
	c->base.capacity = capacity;
	c->w_cap = capacity / 100 ? capacity / 100 : 1;
	c->m_cap = capacity > c->w_cap ? capacity - c->w_cap : 0;
	c->prot_cap = c->m_cap * 8 / 10;
	while (width < capacity)
		width <<= 1;
	c->width_mask = width - 1;
	c->sample = 10 * (capacity ? capacity : 1);
	for (int i = 0; i < 3; i++)
		pu_list_init(&c->q[i]);
	c->key = malloc(n * sizeof(*c->key));
	c->prev = malloc(n * sizeof(*c->prev));
	c->next = malloc(n * sizeof(*c->next));
	c->where = malloc(n);
	c->free_ids = malloc(n * sizeof(*c->free_ids));
	c->cms = calloc(CMS_ROWS * width, 1);
	if (!c->key || !c->prev || !c->next || !c->where || !c->free_ids ||
	    !c->cms || pu_map_init(&c->map, n)) {
		tl_destroy(&c->base);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		c->free_ids[c->nfree++] = (uint32_t)(n - 1 - i);
	*out = &c->base;
	return 0;
}
