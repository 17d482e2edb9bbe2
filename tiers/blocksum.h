/* Per-block checksums of chunks on checksummed tiers (see struct block_sum
 * in fs/meta/records.h): computing, refreshing after a write, verifying. */
#ifndef SILT_BLOCKSUM_H
#define SILT_BLOCKSUM_H

#include <stdint.h>

#include "fs/meta/records.h"

/* The sum of one SUM_BLOCK bytes (never 0, so 0 can mean "none"). */
uint32_t bsum_of(const void *block);
static inline unsigned bsum_blocks(uint32_t chunk_size) { return chunk_size / SUM_BLOCK; }
/* All blocks of a whole chunk (no history: cur = prev). */
void bsum_chunk(struct block_sum *sums, const void *chunk, uint32_t chunk_size);
/* Blocks b0..b0+n-1 were written with the data at buf: new cur, old cur
 * becomes prev. */
void bsum_update(struct block_sum *sums, unsigned b0, const void *buf, unsigned n);
/* Check n blocks read into buf (block b0 of the chunk first). -1 when every
 * block matches its cur or its prev (*healed counts those that matched prev
 * only, and makes cur = prev for them: the write a crash cut never landed),
 * else the index of the first block that matches neither. */
int bsum_verify(struct block_sum *sums, unsigned b0, const void *buf, unsigned n, unsigned *healed);

#endif
