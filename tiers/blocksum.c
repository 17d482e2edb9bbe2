/* Per-block checksums (see blocksum.h).
 *
 * 32 bits per 4 KiB block, like btrfs's crc32c: enough to tell a damaged
 * block from a good one (a random corruption passes with odds of 2^-32),
 * and small enough that a chunk's record stays a few hundred bytes. XXH3
 * rather than CRC: it is what the project already uses and faster. */
#include "tiers/blocksum.h"

#include <xxhash.h>

uint32_t bsum_of(const void *block)
{
	uint64_t h = XXH3_64bits(block, SUM_BLOCK);
	uint32_t s = (uint32_t)(h ^ (h >> 32));
	return s ? s : 1;
}

void bsum_chunk(struct block_sum *sums, const void *chunk, uint32_t chunk_size)
{
	for (unsigned b = 0; b < bsum_blocks(chunk_size); b++)
		sums[b].cur = sums[b].prev = bsum_of((const char *)chunk + (size_t)b * SUM_BLOCK);
}

void bsum_update(struct block_sum *sums, unsigned b0, const void *buf, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		sums[b0 + i].prev = sums[b0 + i].cur;
		sums[b0 + i].cur = bsum_of((const char *)buf + (size_t)i * SUM_BLOCK);
	}
}

int bsum_verify(struct block_sum *sums, unsigned b0, const void *buf, unsigned n, unsigned *healed)
{
	*healed = 0;
	for (unsigned i = 0; i < n; i++) {
		struct block_sum *s = &sums[b0 + i];
		uint32_t got = bsum_of((const char *)buf + (size_t)i * SUM_BLOCK);
		if (got == s->cur)
			continue;
		if (got != s->prev)
			return (int)(b0 + i);
		s->cur = s->prev;
		(*healed)++;
	}
	return -1;
}
