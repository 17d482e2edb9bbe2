/*
 * pred_util.h - private building blocks shared by the predictor's .c files.
 *
 * Not installed, not part of the library's interface.  Everything here is
 * static inline so that each policy gets code specialised for its own arrays:
 *
 *   - pu_map:   open-addressing hash map u64 key -> u32 value (linear probing,
 *               backward-shift deletion, so no tombstones pile up over a
 *               multi-million access replay).
 *   - pu_list:  doubly linked lists threaded through caller-owned prev/next
 *               arrays of u32 node ids.  Policies keep their nodes in flat
 *               arrays (one allocation, cache friendly, no per-node malloc).
 *   - pu_heap:  binary heap of node ids ordered by a double key, with a
 *               position index so that a node's key can be changed in place.
 *   - pu_rng:   xorshift64* PRNG: every random choice in the library is
 *               seeded, so runs are reproducible.
 */
#ifndef SILTFS_PRED_UTIL_H
#define SILTFS_PRED_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PU_NIL UINT32_MAX
#define PU_EMPTY_KEY UINT64_MAX

static inline uint64_t pu_mix64(uint64_t x)
{
	/* splitmix64 finaliser: cheap and good enough to spread block numbers,
	 * which are dense and would cluster under an identity hash. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* ---- hash map ---------------------------------------------------------- */

struct pu_map {
	uint64_t *keys;
	uint32_t *vals;
	uint64_t mask;  /* capacity - 1, capacity a power of two */
	uint64_t count;
};

static inline int pu_map_init(struct pu_map *m, uint64_t expected)
{
	uint64_t cap = 16;

	while (cap < expected * 2)
		cap <<= 1;
	m->keys = malloc(cap * sizeof(*m->keys));
	m->vals = malloc(cap * sizeof(*m->vals));
	if (!m->keys || !m->vals) {
		free(m->keys);
		free(m->vals);
		m->keys = NULL;
		m->vals = NULL;
		return -ENOMEM;
	}
	memset(m->keys, 0xff, cap * sizeof(*m->keys));
	m->mask = cap - 1;
	m->count = 0;
	return 0;
}

static inline void pu_map_free(struct pu_map *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
}

static inline uint32_t pu_map_get(const struct pu_map *m, uint64_t key)
{
	uint64_t i = pu_mix64(key) & m->mask;

	for (;;) {
		uint64_t k = m->keys[i];

		if (k == key)
			return m->vals[i];
		if (k == PU_EMPTY_KEY)
			return PU_NIL;
		i = (i + 1) & m->mask;
	}
}

static inline int pu_map_grow(struct pu_map *m)
{
	struct pu_map n;
	int rc = pu_map_init(&n, (m->mask + 1));

	if (rc)
		return rc;
	for (uint64_t i = 0; i <= m->mask; i++) {
		if (m->keys[i] == PU_EMPTY_KEY)
			continue;
		uint64_t j = pu_mix64(m->keys[i]) & n.mask;
		while (n.keys[j] != PU_EMPTY_KEY)
			j = (j + 1) & n.mask;
		n.keys[j] = m->keys[i];
		n.vals[j] = m->vals[i];
		n.count++;
	}
	pu_map_free(m);
	*m = n;
	return 0;
}

/* Insert or overwrite.  key must not be PU_EMPTY_KEY. */
static inline int pu_map_put(struct pu_map *m, uint64_t key, uint32_t val)
{
	if (key == PU_EMPTY_KEY)
		return -EINVAL;
	if ((m->count + 1) * 10 > (m->mask + 1) * 7) {
		int rc = pu_map_grow(m);
		if (rc)
			return rc;
	}
	uint64_t i = pu_mix64(key) & m->mask;
	while (m->keys[i] != PU_EMPTY_KEY && m->keys[i] != key)
		i = (i + 1) & m->mask;
	if (m->keys[i] == PU_EMPTY_KEY)
		m->count++;
	m->keys[i] = key;
	m->vals[i] = val;
	return 0;
}

static inline void pu_map_del(struct pu_map *m, uint64_t key)
{
	uint64_t i = pu_mix64(key) & m->mask;

	while (m->keys[i] != key) {
		if (m->keys[i] == PU_EMPTY_KEY)
			return;
		i = (i + 1) & m->mask;
	}
	/* Backward-shift deletion keeps every probe chain contiguous. */
	uint64_t j = i;
	for (;;) {
		j = (j + 1) & m->mask;
		if (m->keys[j] == PU_EMPTY_KEY)
			break;
		uint64_t home = pu_mix64(m->keys[j]) & m->mask;
		/* Move j back into the hole at i unless its home lies in (i, j]. */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			i = j;
		}
	}
	m->keys[i] = PU_EMPTY_KEY;
	m->count--;
}

/* ---- intrusive lists over node arrays ----------------------------------- */

struct pu_list {
	uint32_t head; /* most recent end */
	uint32_t tail; /* eviction end */
	uint64_t len;
};

static inline void pu_list_init(struct pu_list *l)
{
	l->head = l->tail = PU_NIL;
	l->len = 0;
}

static inline void pu_list_push_head(struct pu_list *l, uint32_t *prev,
				     uint32_t *next, uint32_t n)
{
	prev[n] = PU_NIL;
	next[n] = l->head;
	if (l->head != PU_NIL)
		prev[l->head] = n;
	else
		l->tail = n;
	l->head = n;
	l->len++;
}

static inline void pu_list_unlink(struct pu_list *l, uint32_t *prev,
				  uint32_t *next, uint32_t n)
{
	if (prev[n] != PU_NIL)
		next[prev[n]] = next[n];
	else
		l->head = next[n];
	if (next[n] != PU_NIL)
		prev[next[n]] = prev[n];
	else
		l->tail = prev[n];
	prev[n] = next[n] = PU_NIL;
	l->len--;
}

/* ---- indexed binary heap (min-heap on key) ------------------------------ */

struct pu_heap {
	uint32_t *ids;  /* heap array of node ids */
	uint32_t *pos;  /* pos[node] = index in ids, PU_NIL when absent */
	double *key;    /* key[node] */
	uint32_t n;
	uint32_t cap;   /* capacity in nodes (ids and pos are sized for it) */
};

static inline int pu_heap_init(struct pu_heap *h, uint32_t cap)
{
	h->ids = malloc((size_t)cap * sizeof(*h->ids));
	h->pos = malloc((size_t)cap * sizeof(*h->pos));
	h->key = malloc((size_t)cap * sizeof(*h->key));
	if (!h->ids || !h->pos || !h->key) {
		free(h->ids);
		free(h->pos);
		free(h->key);
		return -ENOMEM;
	}
	memset(h->pos, 0xff, (size_t)cap * sizeof(*h->pos));
	h->n = 0;
	h->cap = cap;
	return 0;
}

static inline void pu_heap_free(struct pu_heap *h)
{
	free(h->ids);
	free(h->pos);
	free(h->key);
}

static inline void pu_heap_swap(struct pu_heap *h, uint32_t a, uint32_t b)
{
	uint32_t t = h->ids[a];

	h->ids[a] = h->ids[b];
	h->ids[b] = t;
	h->pos[h->ids[a]] = a;
	h->pos[h->ids[b]] = b;
}

static inline void pu_heap_up(struct pu_heap *h, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (h->key[h->ids[p]] <= h->key[h->ids[i]])
			break;
		pu_heap_swap(h, i, p);
		i = p;
	}
}

static inline void pu_heap_down(struct pu_heap *h, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && h->key[h->ids[l]] < h->key[h->ids[m]])
			m = l;
		if (r < h->n && h->key[h->ids[r]] < h->key[h->ids[m]])
			m = r;
		if (m == i)
			break;
		pu_heap_swap(h, i, m);
		i = m;
	}
}

/* Insert node id (id < cap) or update its key if present. */
static inline void pu_heap_set(struct pu_heap *h, uint32_t id, double key)
{
	if (h->pos[id] == PU_NIL) {
		h->key[id] = key;
		h->ids[h->n] = id;
		h->pos[id] = h->n;
		h->n++;
		pu_heap_up(h, h->n - 1);
		return;
	}
	double old = h->key[id];
	h->key[id] = key;
	if (key < old)
		pu_heap_up(h, h->pos[id]);
	else
		pu_heap_down(h, h->pos[id]);
}

static inline uint32_t pu_heap_pop(struct pu_heap *h)
{
	if (h->n == 0)
		return PU_NIL;
	uint32_t top = h->ids[0];
	h->n--;
	if (h->n > 0) {
		h->ids[0] = h->ids[h->n];
		h->pos[h->ids[0]] = 0;
		pu_heap_down(h, 0);
	}
	h->pos[top] = PU_NIL;
	return top;
}

/* ---- PRNG --------------------------------------------------------------- */

static inline uint64_t pu_rng_next(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform float in [0, 1). */
static inline float pu_rng_float(uint64_t *s)
{
	return (float)(pu_rng_next(s) >> 40) * (1.0f / 16777216.0f);
}

#endif
