/* The RAM tier: a size-bounded cache of whole chunks in the daemon's memory.
 *
 * Never the only copy of anything: chunks get here when a read of a hot
 * chunk misses (the read is widened to the whole chunk and the copy kept),
 * and later from the predictor's prefetches; writes drop what they touch.
 * It serves every reader, O_DIRECT ones too (qemu cache=none), since the
 * FUSE layer answers from it before any disk I/O.
 *
 * Its memory is one region allocated when the volume opens, so the daemon
 * (which locks its memory to serve swap) allocates nothing for it on the
 * I/O path.
 *
 * Coherence with writes: a writer calls ram_invalidate() once it holds its
 * pin and before its I/O goes out, which drops the chunks and bumps their
 * shard's version. A fill notes the version (ram_fill_begin), then checks
 * under its read pin that no write is in flight on the chunk (in that
 * order: a write pinned in between is seen by the check, a later one moves
 * the version), and ram_fill_end() keeps the copy only if the version did
 * not move: a write that started meanwhile may not have been read. */
#ifndef SILT_RAMCACHE_H
#define SILT_RAMCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct silt_ram;

struct ram_stats {
	uint64_t size, used;          /* bytes */
	uint64_t hits, misses, fills, evictions, invalidations;
};

/* size bytes of whole chunks (0: no RAM tier; ram_* calls then do nothing). */
int ram_open(uint64_t size, uint32_t chunk_size, struct silt_ram **out);
void ram_close(struct silt_ram *r);
/* Touch every page of the tier's memory (for a daemon with locked memory). */
void ram_prefault(struct silt_ram *r);

/* Copy len bytes at off within chunk (ino, k) into dst if the chunk is
 * here: 1 (a hit), else 0 (a miss, counted when count_miss is set). */
int ram_read(struct silt_ram *r, uint64_t ino, uint64_t k, uint32_t off, uint32_t len, void *dst,
	     int count_miss);
/* The same into an iovec (the asynchronous path's segments). */
int ram_readv(struct silt_ram *r, uint64_t ino, uint64_t k, uint32_t off, const struct iovec *iov,
	      int iovcnt, uint32_t len);

/* Chunks k0..k1 of ino are about to be written (or moved, or freed). */
void ram_invalidate(struct silt_ram *r, uint64_t ino, uint64_t k0, uint64_t k1);

/* After a miss: whether the chunk is worth a fill (it was missed before,
 * recently: a one-off scan does not push the hot chunks out). */
int ram_admit(struct silt_ram *r, uint64_t ino, uint64_t k);
/* A fill of chunk (ino, k): the version to hand to ram_fill_end. */
uint64_t ram_fill_begin(struct silt_ram *r, uint64_t ino, uint64_t k);
/* Keep the chunk's whole content (chunk_size bytes in iov) unless a write
 * came in since ram_fill_begin. */
void ram_fill_end(struct silt_ram *r, uint64_t ino, uint64_t k, uint64_t version,
		  const struct iovec *iov, int iovcnt);
int ram_enabled(const struct silt_ram *r);

void ram_stats(struct silt_ram *r, struct ram_stats *s);

#endif
