/*
 * policy.h - one interface for every cache/tiering policy in siltfs.
 *
 * A policy tracks a set of keys (a chunk of a file, or a 4 KiB block in the
 * simulator) that fit in a fast tier of 'capacity' keys.  It is told about
 * every access and answers the two questions the placer asks: is this key on
 * the fast tier (hit or miss), and which keys should leave it next (the
 * eviction order, whose reverse is the ranking used to fill tiers top down).
 *
 * Classical policies (LRU, ARC, S3-FIFO and its 1-bit variant, LIRS,
 * decayed LFU, SIEVE, W-TinyLFU) and Belady's offline optimum live behind
 * it; the learned policies implement it too: the region GRU's S3-FIFO
 * (placement.c, POLICY_LEARNED) and the GRU-weighted mixture of classical
 * experts (mix.c, POLICY_MIX, which policy_create() builds with default
 * settings).  Policies are not thread safe:
 * the caller serialises access (the predictor context holds a lock).
 */
#ifndef SILTFS_PREDICTOR_POLICY_H
#define SILTFS_PREDICTOR_POLICY_H

#include <stddef.h>
#include <stdint.h>

enum policy_kind {
	POLICY_LRU,
	POLICY_ARC,
	POLICY_S3FIFO,
	POLICY_LIRS,
	POLICY_LFU,     /* decayed LFU: counts halve every 'capacity' accesses */
	POLICY_BELADY,  /* offline optimum: needs the next use of every access */
	POLICY_LEARNED, /* GRU placement; created by placer_policy_create() */
	POLICY_SIEVE,   /* SIEVE (NSDI'24) */
	POLICY_S3FIFO1, /* S3-FIFO with 1-bit frequencies (block I/O variant) */
	POLICY_TINYLFU, /* W-TinyLFU: count-min admission before windowed SLRU */
	POLICY_MIX,     /* GRU-weighted mixture of classical experts (mix.h) */
	POLICY__COUNT
};

/* next_use value for "this key is never accessed again". */
#define POLICY_NEVER UINT64_MAX

typedef struct policy policy_t;

/* Called when a key enters (resident = 1) or leaves (0) the fast tier. */
typedef void (*policy_observer_fn)(void *ctx, uint64_t key, int resident);

/* Name <-> kind ("lru", "arc", "s3fifo", "lirs", "lfu", "belady", "gru",
 * "sieve", "s3fifo1", "tinylfu", "mix"). */
int policy_kind_parse(const char *name, enum policy_kind *out);
const char *policy_kind_name(enum policy_kind kind);

/* Create a policy holding at most 'capacity' keys.
 * Returns 0, -EINVAL (bad kind, POLICY_LEARNED) or -ENOMEM. */
int policy_create(enum policy_kind kind, uint64_t capacity, policy_t **out);
void policy_destroy(policy_t *p);

/*
 * Record one access to 'key' (any value but UINT64_MAX).  'next_use' is the
 * logical time (access count) of the next access to the same key, or
 * POLICY_NEVER; only Belady reads it, online policies ignore it.
 * Returns 1 on a hit, 0 on a miss (the key is then admitted unless the
 * policy chose to bypass it), or a negative errno.
 */
int policy_access(policy_t *p, uint64_t key, uint64_t next_use);

/* 1 if key is resident, 0 otherwise. */
int policy_contains(const policy_t *p, uint64_t key);

uint64_t policy_size(const policy_t *p);
uint64_t policy_capacity(const policy_t *p);
enum policy_kind policy_kind_of(const policy_t *p);

/* Write up to 'max' resident keys in eviction order (out[0] leaves first).
 * Returns how many were written. */
size_t policy_victims(const policy_t *p, uint64_t *out, size_t max);

/*
 * Which keys belong on which tier: ranks the resident keys (the reverse of
 * the eviction order) and fills tiers top down, tier t taking caps[t] keys.
 * Writes up to 'max' (key, tier) pairs, best first; returns the count or a
 * negative errno.
 */
long policy_place(const policy_t *p, const uint64_t *caps, unsigned ntiers,
		  uint64_t *keys, uint8_t *tiers, size_t max);

void policy_set_observer(policy_t *p, policy_observer_fn fn, void *ctx);

#endif
