/*
 * policy_lfu.c - decayed LFU (and the Belady oracle, which shares its heap).
 *
 * Decayed LFU: each key's count halves every 'half_life' accesses,
 * LFU_HALF_LIFE times the capacity (chosen on the first 80% of the traces
 * among 1, 4, 8 and 16: shorter lets a scan flush frequent keys, longer
 * keeps yesterday's hot set).  Decay would change every key at every tick, so instead each
 * key stores the time-independent score  log2(count at t) + t / half_life,
 * which orders keys exactly as their decayed counts do at any common time.
 * Eviction pops the minimum from an indexed heap: O(log n) per access.
 * Ties go to the least recent key (its score is smaller).
 *
 * Belady (MIN): the key whose next use is furthest away leaves first.  The
 * simulator passes each access's next use; a key never used again is the
 * first to go.  The new key itself is always admitted, as libCacheSim does,
 * so the figures can be compared with it.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "predictor/policy_impl.h"
#include "predictor/pred_util.h"

#define LFU_HALF_LIFE 8.0

struct heap_policy {
	struct policy base;
	struct pu_map map;
	struct pu_heap heap;
	uint64_t *key;
	double half_life;
	int belady;
};

static void hp_evict(struct heap_policy *c)
{
	uint32_t id = pu_heap_pop(&c->heap);

	pu_map_del(&c->map, c->key[id]);
	c->base.size--;
	policy_notify(&c->base, c->key[id], 0);
	/* Keep ids dense in [0, size): move the last node into the hole. */
	uint32_t last = (uint32_t)c->base.size;
	if (id != last) {
		double k = c->heap.key[last];
		uint32_t pos = c->heap.pos[last];
		c->key[id] = c->key[last];
		c->heap.key[id] = k;
		c->heap.pos[id] = pos;
		c->heap.ids[pos] = id;
		c->heap.pos[last] = PU_NIL;
		pu_map_put(&c->map, c->key[id], id); /* overwrite: cannot grow */
	}
}

static double hp_score(struct heap_policy *c, uint32_t id, int hit,
		       uint64_t next_use)
{
	if (c->belady) /* min-heap: furthest next use must be smallest */
		return next_use == POLICY_NEVER ? -1e300 : -(double)next_use;
	double t = (double)c->base.clock / c->half_life;
	double count = 1.0;
	if (hit)
		count += exp2(c->heap.key[id] - t);
	return log2(count) + t;
}

static int hp_access(policy_t *p, uint64_t k, uint64_t next_use)
{
	struct heap_policy *c = (struct heap_policy *)p;
	uint32_t id = pu_map_get(&c->map, k);

	if (id != PU_NIL) {
		pu_heap_set(&c->heap, id, hp_score(c, id, 1, next_use));
		return 1;
	}
	if (p->size == p->capacity)
		hp_evict(c);
	id = (uint32_t)p->size++;
	c->key[id] = k;
	int rc = pu_map_put(&c->map, k, id);
	if (rc)
		return rc;
	pu_heap_set(&c->heap, id, hp_score(c, id, 0, next_use));
	policy_notify(p, k, 1);
	return 0;
}

static int hp_contains(const policy_t *p, uint64_t k)
{
	return pu_map_get(&((const struct heap_policy *)p)->map, k) != PU_NIL;
}

static int cmp_by_key(const void *a, const void *b, void *arg)
{
	const double *key = arg;
	double x = key[*(const uint32_t *)a], y = key[*(const uint32_t *)b];

	return x < y ? -1 : x > y;
}

static size_t hp_victims(const policy_t *p, uint64_t *out, size_t max)
{
	const struct heap_policy *c = (const struct heap_policy *)p;
	uint32_t n = c->heap.n;
	uint32_t *ids = malloc((size_t)n * sizeof(*ids) + 1);

	if (!ids)
		return 0;
	for (uint32_t i = 0; i < n; i++)
		ids[i] = c->heap.ids[i];
	qsort_r(ids, n, sizeof(*ids), cmp_by_key, c->heap.key);
	size_t m = n < max ? n : max;
	for (size_t i = 0; i < m; i++)
		out[i] = c->key[ids[i]];
	free(ids);
	return m;
}

static void hp_destroy(policy_t *p)
{
	struct heap_policy *c = (struct heap_policy *)p;

	pu_map_free(&c->map);
	pu_heap_free(&c->heap);
	free(c->key);
	free(c);
}

static const struct policy_ops hp_ops = {
	hp_access, hp_contains, hp_victims, hp_destroy,
};

static int hp_create(uint64_t capacity, int belady, policy_t **out)
{
	struct heap_policy *c = calloc(1, sizeof(*c));
	size_t n = (size_t)capacity + 1;

	if (!c)
		return -ENOMEM;
	c->base.ops = &hp_ops;
	c->base.kind = belady ? POLICY_BELADY : POLICY_LFU;
	c->base.capacity = capacity;
	c->belady = belady;
	c->half_life = capacity ? LFU_HALF_LIFE * (double)capacity : 1.0;
	c->key = malloc(n * sizeof(*c->key));
	if (!c->key || pu_heap_init(&c->heap, (uint32_t)n)) {
		free(c->key);
		free(c);
		return -ENOMEM;
	}
	if (pu_map_init(&c->map, n)) {
		pu_heap_free(&c->heap);
		free(c->key);
		free(c);
		return -ENOMEM;
	}
	*out = &c->base;
	return 0;
}

int policy_lfu_create(uint64_t capacity, policy_t **out)
{
	return hp_create(capacity, 0, out);
}

int policy_belady_create(uint64_t capacity, policy_t **out)
{
	return hp_create(capacity, 1, out);
}
