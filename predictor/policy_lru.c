/*
 * policy_lru.c - least recently used.
 *
 * The baseline every other policy is measured against.  Nodes live in flat
 * arrays indexed by a u32 id (capacity is known up front, so ids never need
 * to be reallocated); a hash map finds a key's node, a list keeps recency.
 */
#include <errno.h>
#include <stdlib.h>

#include "predictor/policy_impl.h"
#include "predictor/pred_util.h"

struct lru {
	struct policy base;
	struct pu_map map;
	struct pu_list list;
	uint64_t *key;
	uint32_t *prev, *next;
};

static int lru_access(policy_t *p, uint64_t k, uint64_t next_use)
{
	struct lru *c = (struct lru *)p;
	uint32_t id = pu_map_get(&c->map, k);
	int rc;

	(void)next_use;
	if (id != PU_NIL) {
		pu_list_unlink(&c->list, c->prev, c->next, id);
		pu_list_push_head(&c->list, c->prev, c->next, id);
		return 1;
	}
	if (p->size == p->capacity) {
		id = c->list.tail;
		pu_list_unlink(&c->list, c->prev, c->next, id);
		pu_map_del(&c->map, c->key[id]);
		policy_notify(p, c->key[id], 0);
	} else {
		id = (uint32_t)p->size++;
	}
	c->key[id] = k;
	rc = pu_map_put(&c->map, k, id);
	if (rc)
		return rc;
	pu_list_push_head(&c->list, c->prev, c->next, id);
	policy_notify(p, k, 1);
	return 0;
}

static int lru_contains(const policy_t *p, uint64_t k)
{
	return pu_map_get(&((const struct lru *)p)->map, k) != PU_NIL;
}

static size_t lru_victims(const policy_t *p, uint64_t *out, size_t max)
{
	const struct lru *c = (const struct lru *)p;
	size_t n = 0;

	for (uint32_t id = c->list.tail; id != PU_NIL && n < max; id = c->prev[id])
		out[n++] = c->key[id];
	return n;
}

static void lru_destroy(policy_t *p)
{
	struct lru *c = (struct lru *)p;

	pu_map_free(&c->map);
	free(c->key);
	free(c->prev);
	free(c->next);
	free(c);
}

static const struct policy_ops lru_ops = {
	lru_access, lru_contains, lru_victims, lru_destroy,
};

int policy_lru_create(uint64_t capacity, policy_t **out)
{
	struct lru *c = calloc(1, sizeof(*c));
	size_t n = (size_t)capacity + 1;

	if (!c)
		return -ENOMEM;
	c->base.ops = &lru_ops;
	c->base.kind = POLICY_LRU;
	c->base.capacity = capacity;
	c->key = malloc(n * sizeof(*c->key));
	c->prev = malloc(n * sizeof(*c->prev));
	c->next = malloc(n * sizeof(*c->next));
	pu_list_init(&c->list);
	if (!c->key || !c->prev || !c->next || pu_map_init(&c->map, n)) {
		free(c->key);
		free(c->prev);
		free(c->next);
		free(c);
		return -ENOMEM;
	}
	*out = &c->base;
	return 0;
}
