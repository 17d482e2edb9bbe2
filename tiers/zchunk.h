/* Compressed chunks on a compressed tier.
 *
 * A chunk on a tier with compression = zstd:N is always read and written
 * whole. When compression saves at least a block, the slot starts with a
 * header, the zstd frame follows, and the rest of the slot is punched, so
 * the space is really saved:
 *
 *   magic "SLTZ" | version | codec | pad | raw_len | stored_len |
 *   xxh3(raw) | xxh3(stored bytes) | zstd frame | zeros to the block end
 *
 * When it does not, the raw chunk fills the slot and the chunk map flags it
 * as plain (a header would not fit; the record's XXH3 covers it). A slot
 * whose first block is all zeros was never written and reads as zeros. The
 * checksums are verified on every read: a flip in any stored byte, header
 * or frame or padding, is reported (-EIO), never returned. */
#ifndef SILT_ZCHUNK_H
#define SILT_ZCHUNK_H

#include <stdint.h>

struct silt_ioctx;
struct silt_netio;

struct zchunk_info {
	int plain;            /* stored raw, no header */
	uint32_t stored_len;  /* bytes used in the slot */
	uint64_t csum;        /* XXH3-64 of the raw chunk */
};

/* net: the tier's bounded I/O (tiers/netio.h) for a net tier, else NULL.
 * Read the chunk at slot into raw (chunk_size bytes). plain and csum come
 * from its record (csum 0: allocated, never written: a slot that reads as
 * zeros is right then, and only then). 0, or -EIO on a bad header or a
 * checksum that does not match. */
int zchunk_read(struct silt_ioctx *c, int fd, struct silt_netio *net, uint64_t slot, uint32_t chunk_size,
		int plain, uint64_t csum, void *raw);
/* Compress raw (chunk_size bytes) and store it at slot. */
int zchunk_write(struct silt_ioctx *c, int fd, struct silt_netio *net, uint64_t slot, uint32_t chunk_size,
		 int level, const void *raw, struct zchunk_info *info);

#endif
