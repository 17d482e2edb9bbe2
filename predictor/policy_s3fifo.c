/*
 * policy_s3fifo.c - S3-FIFO (Yang et al., "FIFO queues are all you need for
 * cache eviction", SOSP'23).
 *
 * A small FIFO S (10% of the capacity) filters one-hit wonders, a main FIFO
 * M keeps what was reused, and a ghost FIFO G remembers keys evicted from S
 * so that a quick return goes straight to M.  Each resident key has a 2-bit
 * frequency; M does lazy promotion (CLOCK-like reinsertion) instead of moving
 * keys on every hit, which is why it needs no lock in the real cache.
 * Follows Algorithm 1 of the paper (move to M when freq > 1).
 *
 * The 1-bit variant (POLICY_S3FIFO1) keeps one bit per key instead of two:
 * a key hit even once while in S moves to M, and M is a plain CLOCK.  This
 * is libCacheSim's S3-FIFO with move-to-main-threshold=1, which the authors
 * suggest for block workloads, whose reuse comes sooner and less often than
 * a web cache's.
 */
#include <errno.h>
#include <stdlib.h>

#include "predictor/policy_impl.h"
#include "predictor/pred_util.h"

enum { QS, QM, QG };

struct s3fifo {
	struct policy base;
	struct pu_map map;
	struct pu_list q[3];
	uint64_t s_cap, m_cap, g_cap;
	uint8_t to_main, max_freq; /* S -> M when freq >= to_main; freq <= max_freq */
	uint64_t *key;
	uint32_t *prev, *next;
	uint8_t *where, *freq;
	uint32_t *free_ids;
	uint32_t nfree;
};

static void s3_free_node(struct s3fifo *c, uint32_t id)
{
	pu_map_del(&c->map, c->key[id]);
	c->free_ids[c->nfree++] = id;
}

static void s3_push(struct s3fifo *c, uint32_t id, int q)
{
	pu_list_push_head(&c->q[q], c->prev, c->next, id);
	c->where[id] = (uint8_t)q;
}

static void s3_to_ghost(struct s3fifo *c, uint32_t id)
{
	if (c->g_cap == 0) {
		s3_free_node(c, id);
		return;
	}
	if (c->q[QG].len >= c->g_cap) {
		uint32_t old = c->q[QG].tail;
		pu_list_unlink(&c->q[QG], c->prev, c->next, old);
		s3_free_node(c, old);
	}
	s3_push(c, id, QG);
}

/* Evict one key from M (reinserting the ones used since they were last
 * considered, with their frequency decremented). */
static void s3_evict_m(struct s3fifo *c)
{
	while (c->q[QM].len) {
		uint32_t id = c->q[QM].tail;
		pu_list_unlink(&c->q[QM], c->prev, c->next, id);
		if (c->freq[id] > 0) {
			c->freq[id]--;
			s3_push(c, id, QM);
			continue;
		}
		c->base.size--;
		policy_notify(&c->base, c->key[id], 0);
		s3_free_node(c, id);
		return;
	}
}

static void s3_evict_s(struct s3fifo *c)
{
	while (c->q[QS].len) {
		uint32_t id = c->q[QS].tail;
		pu_list_unlink(&c->q[QS], c->prev, c->next, id);
		if (c->freq[id] >= c->to_main) {
			s3_push(c, id, QM);
			if (c->q[QM].len > c->m_cap) {
				s3_evict_m(c);
				return;
			}
			continue;
		}
		c->base.size--;
		policy_notify(&c->base, c->key[id], 0);
		s3_to_ghost(c, id);
		return;
	}
}

static int s3_access(policy_t *p, uint64_t k, uint64_t next_use)
{
	struct s3fifo *c = (struct s3fifo *)p;
	uint32_t id = pu_map_get(&c->map, k);
	int to = QS;

	(void)next_use;
	if (id != PU_NIL && c->where[id] != QG) {
		if (c->freq[id] < c->max_freq)
			c->freq[id]++;
		return 1;
	}
	if (id != PU_NIL) { /* ghost hit: straight to M */
		pu_list_unlink(&c->q[QG], c->prev, c->next, id);
		s3_free_node(c, id);
		to = QM;
	}
	while (p->size >= p->capacity) {
		if (c->q[QS].len >= c->s_cap || c->q[QM].len == 0)
			s3_evict_s(c);
		else
			s3_evict_m(c);
	}
	id = c->free_ids[--c->nfree];
	c->key[id] = k;
	c->freq[id] = 0;
	int rc = pu_map_put(&c->map, k, id);
	if (rc)
		return rc;
	s3_push(c, id, to);
	p->size++;
	policy_notify(p, k, 1);
	return 0;
}

static int s3_contains(const policy_t *p, uint64_t k)
{
	const struct s3fifo *c = (const struct s3fifo *)p;
	uint32_t id = pu_map_get(&c->map, k);

	return id != PU_NIL && c->where[id] != QG;
}

/* Eviction order: S's tail end of keys with freq <= 1, then M by freq
 * (0 first) in FIFO order, then the rest.  An approximation of what the
 * FIFOs would do, good enough for ranking. */
static size_t s3_victims(const policy_t *p, uint64_t *out, size_t max)
{
	const struct s3fifo *c = (const struct s3fifo *)p;
	size_t n = 0;

	for (int f = 0; f <= 3; f++) {
		for (int q = QS; q <= QM; q++) {
			for (uint32_t id = c->q[q].tail; id != PU_NIL && n < max;
			     id = c->prev[id]) {
				int fr = c->freq[id];
				if (q == QS)
					fr = fr >= c->to_main ? fr : 0;
				if (fr == f)
					out[n++] = c->key[id];
			}
		}
	}
	return n;
}

static void s3_destroy(policy_t *p)
{
	struct s3fifo *c = (struct s3fifo *)p;

	pu_map_free(&c->map);
	free(c->key);
	free(c->prev);
	free(c->next);
	free(c->where);
	free(c->freq);
	free(c->free_ids);
	free(c);
}

static const struct policy_ops s3_ops = {
	s3_access, s3_contains, s3_victims, s3_destroy,
};

static int s3_create(uint64_t capacity, int one_bit, policy_t **out)
{
	struct s3fifo *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->base.ops = &s3_ops;
	c->base.kind = one_bit ? POLICY_S3FIFO1 : POLICY_S3FIFO;
	c->to_main = one_bit ? 1 : 2;
	c->max_freq = one_bit ? 1 : 3;
	c->base.capacity = capacity;
	c->s_cap = capacity / 10 ? capacity / 10 : 1;
	c->m_cap = capacity > c->s_cap ? capacity - c->s_cap : 1;
	c->g_cap = c->m_cap;
	size_t n = (size_t)(capacity + c->g_cap) + 4;
	c->key = malloc(n * sizeof(*c->key));
	c->prev = malloc(n * sizeof(*c->prev));
	c->next = malloc(n * sizeof(*c->next));
	c->where = malloc(n);
	c->freq = malloc(n);
	c->free_ids = malloc(n * sizeof(*c->free_ids));
	if (!c->key || !c->prev || !c->next || !c->where || !c->freq ||
	    !c->free_ids || pu_map_init(&c->map, n)) {
		s3_destroy(&c->base);
		return -ENOMEM;
	}
	for (int i = 0; i < 3; i++)
		pu_list_init(&c->q[i]);
	for (size_t i = 0; i < n; i++)
		c->free_ids[c->nfree++] = (uint32_t)(n - 1 - i);
	*out = &c->base;
	return 0;
}

int policy_s3fifo_create(uint64_t capacity, policy_t **out)
{
	return s3_create(capacity, 0, out);
}

int policy_s3fifo1_create(uint64_t capacity, policy_t **out)
{
	return s3_create(capacity, 1, out);
}
