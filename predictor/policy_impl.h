/*
 * policy_impl.h - what every policy implementation shares (private).
 *
 * Each implementation embeds 'struct policy' as its first member and supplies
 * an ops table; policy.c dispatches through it and does the bookkeeping that
 * is the same for all (capacity, observer).
 */
#ifndef SILTFS_PREDICTOR_POLICY_IMPL_H
#define SILTFS_PREDICTOR_POLICY_IMPL_H

#include "predictor/policy.h"

struct policy_ops {
	int (*access)(policy_t *p, uint64_t key, uint64_t next_use);
	int (*contains)(const policy_t *p, uint64_t key);
	size_t (*victims)(const policy_t *p, uint64_t *out, size_t max);
	void (*destroy)(policy_t *p);
};

struct policy {
	const struct policy_ops *ops;
	enum policy_kind kind;
	uint64_t capacity;
	uint64_t size;        /* resident keys */
	uint64_t clock;       /* accesses seen */
	policy_observer_fn observer;
	void *observer_ctx;
};

static inline void policy_notify(policy_t *p, uint64_t key, int resident)
{
	if (p->observer)
		p->observer(p->observer_ctx, key, resident);
}

int policy_lru_create(uint64_t capacity, policy_t **out);
int policy_arc_create(uint64_t capacity, policy_t **out);
int policy_s3fifo_create(uint64_t capacity, policy_t **out);
int policy_lirs_create(uint64_t capacity, policy_t **out);
int policy_lfu_create(uint64_t capacity, policy_t **out);
int policy_belady_create(uint64_t capacity, policy_t **out);
int policy_sieve_create(uint64_t capacity, policy_t **out);
int policy_s3fifo1_create(uint64_t capacity, policy_t **out);
int policy_tinylfu_create(uint64_t capacity, policy_t **out);
int policy_mix_create_default(uint64_t capacity, policy_t **out);

#endif
