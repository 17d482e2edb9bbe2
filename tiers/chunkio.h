/* A chunk read or written whole, with whatever guards its integrity: the
 * header checksum of a compressed chunk, the block sums of a chunk on a
 * checksumming tier. The one place that knows how a whole chunk is stored;
 * the data path (rewrites), the mover and the scrubber use it. */
#ifndef SILT_CHUNKIO_H
#define SILT_CHUNKIO_H

#include <stdint.h>

#include "fs/meta/records.h"
#include "tiers/chunkmap.h"
#include "tiers/io.h"
#include "tiers/layout.h"
#include "tiers/tier.h"

#define CHUNK_SUMS_MAX ((4u << 20) / SUM_BLOCK) /* block sums of the largest chunk */

struct chunkio {
	struct silt_cmap *cm;
	const struct layout *layout;
	struct silt_tier *const *by_id;   /* [SILT_MAX_TIERS] */
	const int *zlevel;                /* [SILT_MAX_TIERS]: zstd level, 0 = none */
};

/* Whether the chunk of entry e is a plain slot, read and checked block by
 * block: every chunk of an uncompressed tier, and on a compressed tier one
 * stored raw with block sums (incompressible on a checksumming tier, or
 * salvaged: see fs/rw.c). Else it is read whole, through zchunk. */
static inline int chunk_in_blocks(const struct chunkio *io, uint8_t e)
{
	return !io->zlevel[cm_tier(e)] || ((e & CM_PLAIN) && (e & CM_SUMS));
}

/* Chunk k of cf (entry e) whole into buf (chunk_size, aligned). 0; -EIO
 * for a damaged chunk (*bad: the first damaged block, or -1 when it is the
 * chunk as a whole) or a broken tier (marked failed); another -errno. */
int chunk_read_whole(const struct chunkio *io, struct silt_ioctx *ctx, struct cmap_file *cf,
		     uint64_t k, uint8_t e, char *buf, int *bad);
/* buf as chunk k's whole content on tier id `to`: compressed there, or
 * plain with block sums when that tier keeps them (*with_sums), sparse when
 * it is all zeros. Fills rec for the caller's commit. The caller holds k
 * (an exclusive pin, or a READ pin while the chunk lives elsewhere). */
int chunk_write_whole(const struct chunkio *io, struct silt_ioctx *ctx, struct cmap_file *cf,
		      uint64_t k, int to, const char *buf, struct chunk_rec *rec, struct block_sum *sums,
		      int *with_sums);

/* A plain slot (chunk_in_blocks) as it is stored, unverified: what a
 * salvage keeps of a damaged chunk's good blocks. -EINVAL for a chunk
 * stored through zchunk. */
int chunk_read_raw(const struct chunkio *io, struct silt_ioctx *ctx, struct cmap_file *cf, uint64_t k,
		   uint8_t e, char *buf);
/* buf as chunk k's slot on tier `to`, raw (never compressed); the caller
 * records it with CHUNK_PLAIN and block sums. */
int chunk_write_raw(const struct chunkio *io, struct silt_ioctx *ctx, struct cmap_file *cf, uint64_t k,
		    int to, const char *buf);

#endif
