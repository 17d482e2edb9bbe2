/*
 * policy_sieve.c - SIEVE (Zhang et al., "SIEVE is simpler than LRU: an
 * efficient turn-key eviction algorithm for web caches", NSDI'24).
 *
 * One FIFO queue of resident keys, newest at the head, each with a visited
 * bit that a hit sets (nothing moves on a hit).  A hand walks from the tail
 * towards the head: a visited key has its bit cleared and stays where it
 * is, the first unvisited key is evicted, and the hand stays at the evicted
 * key's newer neighbour for the next eviction, wrapping to the tail at the
 * head.  Unlike CLOCK, survivors are not moved to the head, so new keys that
 * are never hit again pass out quickly ("quick demotion") while old, useful
 * keys keep their place.  Follows the paper's Figure 2 pseudocode, which is
 * also what libCacheSim's Sieve does.
 */
#include <errno.h>
#include <stdlib.h>

#include "predictor/policy_impl.h"
#include "predictor/pred_util.h"

struct sieve {
	struct policy base;
	struct pu_map map;
	struct pu_list q;     /* head = newest */
	uint32_t hand;        /* next key to examine, PU_NIL = start at the tail */
	uint64_t *key;
	uint32_t *prev, *next;
	uint8_t *visited;
};

static uint32_t sieve_evict(struct sieve *c)
{
	uint32_t id = c->hand != PU_NIL ? c->hand : c->q.tail;

	while (c->visited[id]) {
		c->visited[id] = 0;
		id = c->prev[id] != PU_NIL ? c->prev[id] : c->q.tail;
	}
	c->hand = c->prev[id];
	pu_list_unlink(&c->q, c->prev, c->next, id);
	pu_map_del(&c->map, c->key[id]);
	policy_notify(&c->base, c->key[id], 0);
	return id;
}

static int sieve_access(policy_t *p, uint64_t k, uint64_t next_use)
{
	struct sieve *c = (struct sieve *)p;
	uint32_t id = pu_map_get(&c->map, k);

	(void)next_use;
	if (id != PU_NIL) {
		c->visited[id] = 1;
		return 1;
	}
	if (p->size == p->capacity)
		id = sieve_evict(c);
	else
		id = (uint32_t)p->size++;
	c->key[id] = k;
	c->visited[id] = 0;
	int rc = pu_map_put(&c->map, k, id);
	if (rc)
		return rc;
	pu_list_push_head(&c->q, c->prev, c->next, id);
	policy_notify(p, k, 1);
	return 0;
}

static int sieve_contains(const policy_t *p, uint64_t k)
{
	return pu_map_get(&((const struct sieve *)p)->map, k) != PU_NIL;
}

/* Eviction order: what the hand would do from here, i.e. the unvisited keys
 * from the hand towards the head, then (wrapping) from the tail, then the
 * visited ones in the same order (their bits would be cleared on the first
 * pass). */
static size_t sieve_victims(const policy_t *p, uint64_t *out, size_t max)
{
	const struct sieve *c = (const struct sieve *)p;
	uint32_t start = c->hand != PU_NIL ? c->hand : c->q.tail;
	size_t n = 0;

	for (int pass = 0; pass < 2; pass++) {
		uint32_t id = start;
		for (uint64_t k = 0; k < c->q.len && n < max; k++) {
			if (c->visited[id] == pass)
				out[n++] = c->key[id];
			id = c->prev[id] != PU_NIL ? c->prev[id] : c->q.tail;
		}
	}
	return n;
}

static void sieve_destroy(policy_t *p)
{
	struct sieve *c = (struct sieve *)p;

	if (c->map.keys)
		pu_map_free(&c->map);
	free(c->key);
	free(c->prev);
	free(c->next);
	free(c->visited);
	free(c);
}

static const struct policy_ops sieve_ops = {
	sieve_access, sieve_contains, sieve_victims, sieve_destroy,
};

int policy_sieve_create(uint64_t capacity, policy_t **out)
{
	struct sieve *c = calloc(1, sizeof(*c));
	size_t n = (size_t)capacity + 1;

	if (!c)
		return -ENOMEM;
	c->base.ops = &sieve_ops;
	c->base.kind = POLICY_SIEVE;
	c->base.capacity = capacity;
	c->hand = PU_NIL;
	pu_list_init(&c->q);
	c->key = malloc(n * sizeof(*c->key));
	c->prev = malloc(n * sizeof(*c->prev));
	c->next = malloc(n * sizeof(*c->next));
	c->visited = malloc(n);
	if (!c->key || !c->prev || !c->next || !c->visited || pu_map_init(&c->map, n)) {
		sieve_destroy(&c->base);
		return -ENOMEM;
	}
	*out = &c->base;
	return 0;
}
