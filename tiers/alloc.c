/* New-chunk allocation (see alloc.h). */
#include "tiers/alloc.h"

#include <errno.h>
#include <stdlib.h>

struct silt_alloc {
	int n;
	struct silt_tier *order[SILT_MAX_TIERS];   /* fastest first */
	struct silt_tier *by_id[SILT_MAX_TIERS];
};

int alloc_open(struct silt_tier *const *order, int n, struct silt_alloc **out)
{
	struct silt_alloc *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->n = n;
	for (int i = 0; i < n; i++) {
		a->order[i] = order[i];
		a->by_id[tier_id(order[i])] = order[i];
	}
	*out = a;
	return 0;
}

void alloc_close(struct silt_alloc *a)
{
	free(a);
}

/* The first tier, fastest first, of the mask under its high watermark,
 * else with any room; reserving it when asked. */
static int pick(struct silt_alloc *a, uint8_t mask, int reserve)
{
	for (int over_wm = 0; over_wm < 2; over_wm++)
		for (int i = 0; i < a->n; i++) {
			struct silt_tier *t = a->order[i];
			if (!(mask & (1u << tier_id(t))))
				continue;
			if (reserve ? tier_reserve(t, over_wm) == 0 : tier_has_room(t, over_wm))
				return tier_id(t);
		}
	return -ENOSPC;
}

int alloc_chunk(struct silt_alloc *a, uint8_t allowed, int *outside)
{
	int tid = pick(a, allowed, 1);

	if (tid == -ENOSPC && allowed != BOUND_ALL && (tid = pick(a, (uint8_t)~allowed, 1)) >= 0 && outside)
		*outside = 1;
	return tid;
}

int alloc_target(struct silt_alloc *a, uint8_t allowed)
{
	int tid = pick(a, allowed, 0);
	return tid == -ENOSPC && allowed != BOUND_ALL ? pick(a, (uint8_t)~allowed, 0) : tid;
}

void alloc_unreserve(struct silt_alloc *a, int tid, uint64_t n)
{
	if (n)
		tier_release(a->by_id[tid], n);
}

void alloc_tier_full(struct silt_alloc *a, int tid)
{
	tier_mark_full(a->by_id[tid]);
}
