/* New-chunk allocation: the tier a chunk without a home goes to.
 *
 * The write target is the fastest tier under its high watermark; when every
 * tier is above it, the fastest with any room at all; ENOSPC only when every
 * tier is full. A file with a placement bound (a pin) looks at the
 * tiers it allows first, in the same way, and only then at the others. Space is reserved here (tier_reserve) and handed back by
 * the chunk map when a chunk leaves a tier, or by alloc_unreserve() when an
 * allocation is abandoned before it was published. */
#ifndef SILT_ALLOC_H
#define SILT_ALLOC_H

#include <stdint.h>

#include "tiers/bounds.h"
#include "tiers/tier.h"

struct silt_alloc;

/* order: the tiers fastest first (the config's order). */
int alloc_open(struct silt_tier *const *order, int n, struct silt_alloc **out);
void alloc_close(struct silt_alloc *a);
/* Reserve room for one new chunk of a file whose chunks may live on the
 * tier ids of `allowed` (a bit per id, BOUND_ALL: any; tiers/bounds.h):
 * its tier id, or -ENOSPC. When none of those tiers has room the chunk
 * goes to any tier that has (a spill, which the placer undoes later) and
 * *outside is set (outside may be NULL). */
int alloc_chunk(struct silt_alloc *a, uint8_t allowed, int *outside);
/* The write target of such a file: the tier id a new chunk would go to
 * now, -ENOSPC if none (nothing is reserved). */
int alloc_target(struct silt_alloc *a, uint8_t allowed);
/* Give back n reservations on tier id tid that were never published. */
void alloc_unreserve(struct silt_alloc *a, int tid, uint64_t n);
/* The tier id tid could not take a write (its filesystem is full): skip
 * it until its free space is next looked at. */
void alloc_tier_full(struct silt_alloc *a, int tid);

#endif
