/*
 * policy_lirs.c - Low Inter-reference Recency Set (Jiang and Zhang,
 * SIGMETRICS'02).
 *
 * Keys with a short reuse distance (LIR) own 99% of the capacity; the other
 * 1% holds HIR keys, which are evicted first, in queue Q order.  Stack S
 * orders keys by recency and also keeps non-resident HIR keys so that a
 * returning key whose reuse distance beats the oldest LIR key's can take its
 * place.  S's bottom is always LIR ("stack pruning").
 *
 * The paper leaves S unbounded; here at most 'capacity' non-resident entries
 * are kept (oldest dropped first, tracked on list NR) so memory stays within
 * 2x the resident set on a scan.
 */
#include <errno.h>
#include <stdlib.h>

#include "predictor/policy_impl.h"
#include "predictor/pred_util.h"

enum { LIR, HIR_RES, HIR_NONRES };

struct lirs {
	struct policy base;
	struct pu_map map;
	struct pu_list s, q, nr;  /* q and nr share the q links */
	uint64_t lir_cap, lir_count, nr_cap;
	uint64_t *key;
	uint32_t *sprev, *snext, *qprev, *qnext;
	uint8_t *state, *in_s;
	uint32_t *free_ids;
	uint32_t nfree;
};

static void lirs_free_node(struct lirs *c, uint32_t id)
{
	pu_map_del(&c->map, c->key[id]);
	c->free_ids[c->nfree++] = id;
}

static void lirs_s_remove(struct lirs *c, uint32_t id)
{
	pu_list_unlink(&c->s, c->sprev, c->snext, id);
	c->in_s[id] = 0;
}

static void lirs_s_top(struct lirs *c, uint32_t id)
{
	if (c->in_s[id])
		pu_list_unlink(&c->s, c->sprev, c->snext, id);
	pu_list_push_head(&c->s, c->sprev, c->snext, id);
	c->in_s[id] = 1;
}

/* Remove HIR entries from S's bottom until it is LIR. */
static void lirs_prune(struct lirs *c)
{
	while (c->s.tail != PU_NIL && c->state[c->s.tail] != LIR) {
		uint32_t id = c->s.tail;
		lirs_s_remove(c, id);
		if (c->state[id] == HIR_NONRES) {
			pu_list_unlink(&c->nr, c->qprev, c->qnext, id);
			lirs_free_node(c, id);
		}
	}
}

/* The LIR key at S's bottom becomes resident HIR at Q's end. */
static void lirs_demote_bottom(struct lirs *c)
{
	uint32_t id = c->s.tail;

	if (id == PU_NIL || c->state[id] != LIR)
		return;
	lirs_s_remove(c, id);
	c->state[id] = HIR_RES;
	c->lir_count--;
	pu_list_push_head(&c->q, c->qprev, c->qnext, id);
	lirs_prune(c);
}

static void lirs_evict(struct lirs *c)
{
	uint32_t id = c->q.tail;

	if (id == PU_NIL)
		return;
	pu_list_unlink(&c->q, c->qprev, c->qnext, id);
	c->base.size--;
	policy_notify(&c->base, c->key[id], 0);
	if (!c->in_s[id]) {
		lirs_free_node(c, id);
		return;
	}
	c->state[id] = HIR_NONRES;
	pu_list_push_head(&c->nr, c->qprev, c->qnext, id);
	if (c->nr.len > c->nr_cap) {
		uint32_t old = c->nr.tail;
		pu_list_unlink(&c->nr, c->qprev, c->qnext, old);
		lirs_s_remove(c, old);
		lirs_free_node(c, old);
	}
}

static int lirs_access(policy_t *p, uint64_t k, uint64_t next_use)
{
	struct lirs *c = (struct lirs *)p;
	uint32_t id = pu_map_get(&c->map, k);

	(void)next_use;
	if (id != PU_NIL && c->state[id] == LIR) {
		int bottom = c->s.tail == id;
		lirs_s_top(c, id);
		if (bottom)
			lirs_prune(c);
		return 1;
	}
	if (id != PU_NIL && c->state[id] == HIR_RES) {
		pu_list_unlink(&c->q, c->qprev, c->qnext, id);
		if (c->in_s[id]) {
			c->state[id] = LIR;
			c->lir_count++;
			lirs_s_top(c, id);
			lirs_demote_bottom(c);
		} else {
			lirs_s_top(c, id);
			pu_list_push_head(&c->q, c->qprev, c->qnext, id);
		}
		return 1;
	}
	/* Miss. */
	if (p->size >= p->capacity)
		lirs_evict(c);
	/* The eviction may have dropped k's own non-resident entry. */
	if (id != PU_NIL && pu_map_get(&c->map, k) == PU_NIL)
		id = PU_NIL;
	if (id != PU_NIL) { /* non-resident HIR still in S */
		pu_list_unlink(&c->nr, c->qprev, c->qnext, id);
		c->state[id] = LIR;
		c->lir_count++;
		lirs_s_top(c, id);
		if (c->lir_count > c->lir_cap)
			lirs_demote_bottom(c);
	} else {
		id = c->free_ids[--c->nfree];
		c->key[id] = k;
		c->in_s[id] = 0;
		int rc = pu_map_put(&c->map, k, id);
		if (rc)
			return rc;
		lirs_s_top(c, id);
		if (c->lir_count < c->lir_cap) {
			c->state[id] = LIR;
			c->lir_count++;
		} else {
			c->state[id] = HIR_RES;
			pu_list_push_head(&c->q, c->qprev, c->qnext, id);
		}
	}
	p->size++;
	policy_notify(p, k, 1);
	return 0;
}

static int lirs_contains(const policy_t *p, uint64_t k)
{
	const struct lirs *c = (const struct lirs *)p;
	uint32_t id = pu_map_get(&c->map, k);

	return id != PU_NIL && c->state[id] != HIR_NONRES;
}

static size_t lirs_victims(const policy_t *p, uint64_t *out, size_t max)
{
	const struct lirs *c = (const struct lirs *)p;
	size_t n = 0;

	for (uint32_t id = c->q.tail; id != PU_NIL && n < max; id = c->qprev[id])
		out[n++] = c->key[id];
	for (uint32_t id = c->s.tail; id != PU_NIL && n < max; id = c->sprev[id])
		if (c->state[id] == LIR)
			out[n++] = c->key[id];
	return n;
}

static void lirs_destroy(policy_t *p)
{
	struct lirs *c = (struct lirs *)p;

	pu_map_free(&c->map);
	free(c->key);
	free(c->sprev);
	free(c->snext);
	free(c->qprev);
	free(c->qnext);
	free(c->state);
	free(c->in_s);
	free(c->free_ids);
	free(c);
}

static const struct policy_ops lirs_ops = {
	lirs_access, lirs_contains, lirs_victims, lirs_destroy,
};

int policy_lirs_create(uint64_t capacity, policy_t **out)
{
	struct lirs *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->base.ops = &lirs_ops;
	c->base.kind = POLICY_LIRS;
	c->base.capacity = capacity;
	uint64_t hir = capacity / 100 ? capacity / 100 : 1;
	c->lir_cap = capacity > hir ? capacity - hir : 0;
	c->nr_cap = capacity;
	size_t n = 2 * (size_t)capacity + 4;
	c->key = malloc(n * sizeof(*c->key));
	c->sprev = malloc(n * sizeof(uint32_t));
	c->snext = malloc(n * sizeof(uint32_t));
	c->qprev = malloc(n * sizeof(uint32_t));
	c->qnext = malloc(n * sizeof(uint32_t));
	c->state = malloc(n);
	c->in_s = malloc(n);
	c->free_ids = malloc(n * sizeof(*c->free_ids));
	if (!c->key || !c->sprev || !c->snext || !c->qprev || !c->qnext ||
	    !c->state || !c->in_s || !c->free_ids || pu_map_init(&c->map, n)) {
		lirs_destroy(&c->base);
		return -ENOMEM;
	}
	pu_list_init(&c->s);
	pu_list_init(&c->q);
	pu_list_init(&c->nr);
	for (size_t i = 0; i < n; i++)
		c->free_ids[c->nfree++] = (uint32_t)(n - 1 - i);
	*out = &c->base;
	return 0;
}
