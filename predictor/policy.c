/*
 * policy.c - dispatch for the policy interface, and the parts every policy
 * shares: name lookup, argument checks, tier filling from the eviction order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "predictor/policy_impl.h"

static const char *const kind_names[POLICY__COUNT] = {
	[POLICY_LRU] = "lru",       [POLICY_ARC] = "arc",
	[POLICY_S3FIFO] = "s3fifo", [POLICY_LIRS] = "lirs",
	[POLICY_LFU] = "lfu",       [POLICY_BELADY] = "belady",
	[POLICY_LEARNED] = "gru",   [POLICY_SIEVE] = "sieve",
	[POLICY_S3FIFO1] = "s3fifo1", [POLICY_TINYLFU] = "tinylfu",
	[POLICY_MIX] = "mix",
};

int policy_kind_parse(const char *name, enum policy_kind *out)
{
	for (int k = 0; k < POLICY__COUNT; k++) {
		if (strcmp(name, kind_names[k]) == 0) {
			*out = (enum policy_kind)k;
			return 0;
		}
	}
	return -EINVAL;
}

const char *policy_kind_name(enum policy_kind kind)
{
	if ((unsigned)kind >= POLICY__COUNT)
		return "?";
	return kind_names[kind];
}

int policy_create(enum policy_kind kind, uint64_t capacity, policy_t **out)
{
	/* Node ids are u32 and ghosts can double the count: keep well below. */
	if (capacity >= (UINT32_MAX >> 2))
		return -EINVAL;
	switch (kind) {
	case POLICY_LRU: return policy_lru_create(capacity, out);
	case POLICY_ARC: return policy_arc_create(capacity, out);
	case POLICY_S3FIFO: return policy_s3fifo_create(capacity, out);
	case POLICY_LIRS: return policy_lirs_create(capacity, out);
	case POLICY_LFU: return policy_lfu_create(capacity, out);
	case POLICY_BELADY: return policy_belady_create(capacity, out);
	case POLICY_SIEVE: return policy_sieve_create(capacity, out);
	case POLICY_S3FIFO1: return policy_s3fifo1_create(capacity, out);
	case POLICY_TINYLFU: return policy_tinylfu_create(capacity, out);
	case POLICY_MIX: return policy_mix_create_default(capacity, out);
	default: return -EINVAL;
	}
}

void policy_destroy(policy_t *p)
{
	if (p)
		p->ops->destroy(p);
}

int policy_access(policy_t *p, uint64_t key, uint64_t next_use)
{
	if (key == UINT64_MAX)
		return -EINVAL;
	p->clock++;
	if (p->capacity == 0)
		return 0;
	return p->ops->access(p, key, next_use);
}

int policy_contains(const policy_t *p, uint64_t key)
{
	if (key == UINT64_MAX || p->capacity == 0)
		return 0;
	return p->ops->contains(p, key);
}

uint64_t policy_size(const policy_t *p) { return p->size; }
uint64_t policy_capacity(const policy_t *p) { return p->capacity; }
enum policy_kind policy_kind_of(const policy_t *p) { return p->kind; }

size_t policy_victims(const policy_t *p, uint64_t *out, size_t max)
{
	return p->ops->victims(p, out, max);
}

long policy_place(const policy_t *p, const uint64_t *caps, unsigned ntiers,
		  uint64_t *keys, uint8_t *tiers, size_t max)
{
	if (ntiers == 0 || ntiers > 255)
		return -EINVAL;
	size_t n = p->size < max ? (size_t)p->size : max;
	uint64_t *order = malloc((size_t)p->size * sizeof(*order) + 1);
	if (!order)
		return -ENOMEM;
	size_t all = p->ops->victims(p, order, (size_t)p->size);
	/* Best first = reverse eviction order; tier t takes caps[t] keys, the
	 * last tier takes whatever is left. */
	unsigned t = 0;
	uint64_t used = 0;
	if (n > all)
		n = all;
	for (size_t i = 0; i < n; i++) {
		while (t + 1 < ntiers && used >= caps[t]) {
			t++;
			used = 0;
		}
		keys[i] = order[all - 1 - i];
		tiers[i] = (uint8_t)t;
		used++;
	}
	free(order);
	return (long)n;
}

void policy_set_observer(policy_t *p, policy_observer_fn fn, void *ctx)
{
	p->observer = fn;
	p->observer_ctx = ctx;
}
