/*
 * policy_arc.c - Adaptive Replacement Cache (Megiddo and Modha, FAST'03).
 *
 * Four lists: T1 (seen once recently) and T2 (seen at least twice) hold the
 * resident keys, B1 and B2 remember keys recently evicted from each.  A hit
 * in a ghost list moves the target size 'p' of T1 towards the list that
 * would have kept it, so the cache balances recency against frequency by
 * itself.  This follows the paper's pseudocode line by line; ghost entries
 * share the hash map with resident ones and carry the list they are on.
 */
#include <errno.h>
#include <stdlib.h>

#include "predictor/policy_impl.h"
#include "predictor/pred_util.h"

enum { T1, T2, B1, B2 };

struct arc {
	struct policy base;
	struct pu_map map;
	struct pu_list l[4];
	double p;           /* target size of T1 */
	uint64_t *key;
	uint32_t *prev, *next;
	uint8_t *where;
	uint32_t *free_ids; /* stack of unused node ids */
	uint32_t nfree;
};

static void arc_move(struct arc *c, uint32_t id, int to)
{
	pu_list_unlink(&c->l[c->where[id]], c->prev, c->next, id);
	pu_list_push_head(&c->l[to], c->prev, c->next, id);
	c->where[id] = (uint8_t)to;
}

static void arc_drop_lru(struct arc *c, int list)
{
	uint32_t id = c->l[list].tail;

	pu_list_unlink(&c->l[list], c->prev, c->next, id);
	pu_map_del(&c->map, c->key[id]);
	c->free_ids[c->nfree++] = id;
	if (list == T1 || list == T2) {
		c->base.size--;
		policy_notify(&c->base, c->key[id], 0);
	}
}

/* REPLACE(x, p): demote the LRU of T1 or T2 into its ghost list. */
static void arc_replace(struct arc *c, int x_in_b2)
{
	uint64_t t1 = c->l[T1].len;

	if (t1 >= 1 && ((x_in_b2 && (double)t1 == c->p) || (double)t1 > c->p)) {
		uint32_t id = c->l[T1].tail;
		arc_move(c, id, B1);
		c->base.size--;
		policy_notify(&c->base, c->key[id], 0);
	} else if (c->l[T2].len) {
		uint32_t id = c->l[T2].tail;
		arc_move(c, id, B2);
		c->base.size--;
		policy_notify(&c->base, c->key[id], 0);
	}
}

static int arc_access(policy_t *p, uint64_t k, uint64_t next_use)
{
	struct arc *c = (struct arc *)p;
	double cap = (double)p->capacity;
	uint32_t id = pu_map_get(&c->map, k);

	(void)next_use;
	if (id != PU_NIL) {
		int w = c->where[id];
		if (w == T1 || w == T2) {
			arc_move(c, id, T2);
			return 1;
		}
		if (w == B1) {
			double d = (double)c->l[B2].len / (double)c->l[B1].len;
			c->p += d > 1 ? d : 1;
			if (c->p > cap)
				c->p = cap;
			arc_replace(c, 0);
		} else {
			double d = (double)c->l[B1].len / (double)c->l[B2].len;
			c->p -= d > 1 ? d : 1;
			if (c->p < 0)
				c->p = 0;
			arc_replace(c, 1);
		}
		arc_move(c, id, T2);
		p->size++;
		policy_notify(p, k, 1);
		return 0;
	}
	uint64_t l1 = c->l[T1].len + c->l[B1].len;
	uint64_t total = l1 + c->l[T2].len + c->l[B2].len;
	if (l1 == p->capacity) {
		if (c->l[T1].len < p->capacity) {
			arc_drop_lru(c, B1);
			arc_replace(c, 0);
		} else {
			arc_drop_lru(c, T1);
		}
	} else if (total >= p->capacity) {
		if (total == 2 * p->capacity)
			arc_drop_lru(c, B2);
		arc_replace(c, 0);
	}
	id = c->free_ids[--c->nfree];
	c->key[id] = k;
	int rc = pu_map_put(&c->map, k, id);
	if (rc)
		return rc;
	pu_list_push_head(&c->l[T1], c->prev, c->next, id);
	c->where[id] = T1;
	p->size++;
	policy_notify(p, k, 1);
	return 0;
}

static int arc_contains(const policy_t *p, uint64_t k)
{
	const struct arc *c = (const struct arc *)p;
	uint32_t id = pu_map_get(&c->map, k);

	return id != PU_NIL && (c->where[id] == T1 || c->where[id] == T2);
}

/* Eviction order: what REPLACE would pick with p as it is now, i.e. T1's
 * excess over p first, then T2, then the rest of T1. */
static size_t arc_victims(const policy_t *p, uint64_t *out, size_t max)
{
	const struct arc *c = (const struct arc *)p;
	size_t n = 0;
	uint64_t excess = c->l[T1].len > c->p ? c->l[T1].len - (uint64_t)c->p : 0;
	uint32_t id = c->l[T1].tail;

	for (; id != PU_NIL && n < max && excess; id = c->prev[id], excess--)
		out[n++] = c->key[id];
	for (uint32_t j = c->l[T2].tail; j != PU_NIL && n < max; j = c->prev[j])
		out[n++] = c->key[j];
	for (; id != PU_NIL && n < max; id = c->prev[id])
		out[n++] = c->key[id];
	return n;
}

static void arc_destroy(policy_t *p)
{
	struct arc *c = (struct arc *)p;

	pu_map_free(&c->map);
	free(c->key);
	free(c->prev);
	free(c->next);
	free(c->where);
	free(c->free_ids);
	free(c);
}

static const struct policy_ops arc_ops = {
	arc_access, arc_contains, arc_victims, arc_destroy,
};

int policy_arc_create(uint64_t capacity, policy_t **out)
{
	struct arc *c = calloc(1, sizeof(*c));
	size_t n = 2 * (size_t)capacity + 2;

	if (!c)
		return -ENOMEM;
	c->base.ops = &arc_ops;
	c->base.kind = POLICY_ARC;
	c->base.capacity = capacity;
	c->key = malloc(n * sizeof(*c->key));
	c->prev = malloc(n * sizeof(*c->prev));
	c->next = malloc(n * sizeof(*c->next));
	c->where = malloc(n);
	c->free_ids = malloc(n * sizeof(*c->free_ids));
	if (!c->key || !c->prev || !c->next || !c->where || !c->free_ids ||
	    pu_map_init(&c->map, n)) {
		arc_destroy(&c->base);
		return -ENOMEM;
	}
	for (int i = 0; i < 4; i++)
		pu_list_init(&c->l[i]);
	for (size_t i = 0; i < n; i++)
		c->free_ids[c->nfree++] = (uint32_t)(n - 1 - i);
	*out = &c->base;
	return 0;
}
