/* The RAM tier (see ramcache.h).
 *
 *   mem        nslots whole chunks, allocated once
 *   slots[]    what each holds (inode, chunk), a CLOCK reference bit, and
 *              the next slot in its hash chain
 *   buckets[]  hash of (inode, chunk) -> first slot of the chain
 *   versions[] per shard of chunks: bumped by every invalidation, checked
 *              by a fill before it keeps its copy
 *
 * One mutex guards it all, held for a lookup and one copy: a hit costs a
 * hash walk and a memcpy of what was asked for. CLOCK rather than LRU: a
 * hit only sets a bit, and eviction sweeps. */
#include "tiers/ramcache.h"
#include "utils/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define SHARDS 1024

struct slot {
	uint64_t ino, k;
	uint32_t next;
	uint8_t valid, ref;
};

struct silt_ram {
	uint32_t chunk_size, nslots, nbuckets, hand, used;
	char *mem;
	struct slot *slots;
	uint32_t *buckets;
	pthread_mutex_t lock;
	uint64_t versions[SHARDS];
	uint64_t seen[1024];          /* chunks missed recently (a bit each, hashed) */
	uint32_t seen_count;
	uint64_t hits, misses, fills, evictions, invalidations;
};

static uint64_t hash(uint64_t ino, uint64_t k)
{
	return (ino * 0x9E3779B97F4A7C15ull) ^ (k * 0xC2B2AE3D27D4EB4Full);
}

int ram_open(uint64_t size, uint32_t chunk_size, struct silt_ram **out)
{
	struct silt_ram *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->chunk_size = chunk_size;
	r->nslots = (uint32_t)MIN(size / chunk_size, (uint64_t)UINT32_MAX - 1);
	pthread_mutex_init(&r->lock, NULL);
	if (r->nslots) {
		r->nbuckets = 1;
		while (r->nbuckets < r->nslots)
			r->nbuckets <<= 1;
		r->mem = silt_aligned_alloc((size_t)r->nslots * chunk_size);
		r->slots = calloc(r->nslots, sizeof(*r->slots));
		r->buckets = malloc(r->nbuckets * sizeof(*r->buckets));
		if (!r->mem || !r->slots || !r->buckets) {
			ram_close(r);
			return -ENOMEM;
		}
		memset(r->buckets, 0xff, r->nbuckets * sizeof(*r->buckets));
	}
	*out = r;
	return 0;
}

void ram_prefault(struct silt_ram *r)
{
	if (r && r->nslots)
		memset(r->mem, 0, (size_t)r->nslots * r->chunk_size);
}

void ram_close(struct silt_ram *r)
{
	if (!r)
		return;
	free(r->mem);
	free(r->slots);
	free(r->buckets);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int ram_enabled(const struct silt_ram *r)
{
	return r && r->nslots;
}

/* lock held */
static uint32_t find(struct silt_ram *r, uint64_t ino, uint64_t k)
{
	for (uint32_t s = r->buckets[hash(ino, k) & (r->nbuckets - 1)]; s != NONE; s = r->slots[s].next)
		if (r->slots[s].ino == ino && r->slots[s].k == k)
			return s;
	return NONE;
}

static void unlink_slot(struct silt_ram *r, uint32_t s)
{
	uint32_t *pp = &r->buckets[hash(r->slots[s].ino, r->slots[s].k) & (r->nbuckets - 1)];

	while (*pp != s)
		pp = &r->slots[*pp].next;
	*pp = r->slots[s].next;
	r->slots[s].valid = 0;
	r->used--;
}

static char *slot_mem(struct silt_ram *r, uint32_t s)
{
	return r->mem + (size_t)s * r->chunk_size;
}

/* A slot to fill: a free one, or the first without its reference bit. */
static uint32_t take_slot(struct silt_ram *r)
{
	for (;;) {
		uint32_t s = r->hand;
		r->hand = (r->hand + 1) % r->nslots;
		if (!r->slots[s].valid)
			return s;
		if (r->slots[s].ref) {
			r->slots[s].ref = 0;
			continue;
		}
		unlink_slot(r, s);
		r->evictions++;
		return s;
	}
}

int ram_read(struct silt_ram *r, uint64_t ino, uint64_t k, uint32_t off, uint32_t len, void *dst,
	     int count_miss)
{
	struct iovec iov = { .iov_base = dst, .iov_len = len };
	if (!ram_enabled(r))
		return 0;
	int hit = ram_readv(r, ino, k, off, &iov, 1, len);
	if (!hit && count_miss) {
		pthread_mutex_lock(&r->lock);
		r->misses++;
		pthread_mutex_unlock(&r->lock);
	}
	return hit;
}

int ram_readv(struct silt_ram *r, uint64_t ino, uint64_t k, uint32_t off, const struct iovec *iov,
	      int iovcnt, uint32_t len)
{
	uint32_t s;

	if (!ram_enabled(r) || off + len > r->chunk_size)
		return 0;
	pthread_mutex_lock(&r->lock);
	if ((s = find(r, ino, k)) == NONE) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	const char *src = slot_mem(r, s) + off;
	for (int i = 0; i < iovcnt && len; i++) {
		size_t n = MIN(iov[i].iov_len, len);
		memcpy(iov[i].iov_base, src, n);
		src += n;
		len -= (uint32_t)n;
	}
	r->slots[s].ref = 1;
	r->hits++;
	pthread_mutex_unlock(&r->lock);
	return 1;
}

void ram_invalidate(struct silt_ram *r, uint64_t ino, uint64_t k0, uint64_t k1)
{
	if (!ram_enabled(r))
		return;
	pthread_mutex_lock(&r->lock);
	if (k1 - k0 >= r->nslots) { /* a big range: look at what is held instead */
		for (int i = 0; i < SHARDS; i++)
			r->versions[i]++;
		for (uint32_t s = 0; s < r->nslots; s++)
			if (r->slots[s].valid && r->slots[s].ino == ino && r->slots[s].k >= k0 &&
			    r->slots[s].k <= k1) {
				unlink_slot(r, s);
				r->invalidations++;
			}
		pthread_mutex_unlock(&r->lock);
		return;
	}
	for (uint64_t k = k0; k <= k1; k++) {
		r->versions[hash(ino, k) % SHARDS]++;
		uint32_t s = find(r, ino, k);
		if (s != NONE) {
			unlink_slot(r, s);
			r->invalidations++;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

uint64_t ram_fill_begin(struct silt_ram *r, uint64_t ino, uint64_t k)
{
	if (!ram_enabled(r))
		return 0;
	pthread_mutex_lock(&r->lock);
	uint64_t v = r->versions[hash(ino, k) % SHARDS];
	pthread_mutex_unlock(&r->lock);
	return v;
}

int ram_admit(struct silt_ram *r, uint64_t ino, uint64_t k)
{
	if (!ram_enabled(r))
		return 0;
	uint64_t h = hash(ino, k) % (sizeof(r->seen) * 8);
	pthread_mutex_lock(&r->lock);
	int again = (r->seen[h / 64] >> (h % 64)) & 1;
	r->seen[h / 64] |= 1ull << (h % 64);
	/* forget what was seen once the filter has taken as many chunks as
	 * the cache holds: "recently" is on the cache's own scale */
	if (++r->seen_count >= MAX(r->nslots, 64u)) {
		memset(r->seen, 0, sizeof(r->seen));
		r->seen_count = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return again;
}

void ram_fill_end(struct silt_ram *r, uint64_t ino, uint64_t k, uint64_t version,
		  const struct iovec *iov, int iovcnt)
{
	if (!ram_enabled(r))
		return;
	pthread_mutex_lock(&r->lock);
	if (r->versions[hash(ino, k) % SHARDS] == version && find(r, ino, k) == NONE) {
		uint32_t s = take_slot(r);
		char *dst = slot_mem(r, s);
		uint32_t left = r->chunk_size;
		for (int i = 0; i < iovcnt && left; i++) {
			size_t n = MIN(iov[i].iov_len, left);
			memcpy(dst, iov[i].iov_base, n);
			dst += n;
			left -= (uint32_t)n;
		}
		r->slots[s] = (struct slot){ .ino = ino, .k = k, .valid = 1, .ref = 1,
					     .next = r->buckets[hash(ino, k) & (r->nbuckets - 1)] };
		r->buckets[hash(ino, k) & (r->nbuckets - 1)] = s;
		r->used++;
		r->fills++;
	}
	pthread_mutex_unlock(&r->lock);
}

void ram_stats(struct silt_ram *r, struct ram_stats *s)
{
	memset(s, 0, sizeof(*s));
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	s->size = (uint64_t)r->nslots * r->chunk_size;
	s->used = (uint64_t)r->used * r->chunk_size;
	s->hits = r->hits;
	s->misses = r->misses;
	s->fills = r->fills;
	s->evictions = r->evictions;
	s->invalidations = r->invalidations;
	pthread_mutex_unlock(&r->lock);
}
