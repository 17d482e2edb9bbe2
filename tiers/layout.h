/* On-tier layout: where chunk k of an inode sits on a tier, and the open
 * tier files of one inode.
 *
 * Chunk k lives in segment k / chunks_per_seg (a tier file per segment, see
 * tier.h) at byte (k % chunks_per_seg) * chunk_size: its slot. An inode's
 * tier files are opened on first use and kept open until the inode leaves
 * memory; the table of descriptors is allocated at the first open, so an
 * inode that is only looked up costs nothing here. A tier taken back after
 * it failed has its files opened again at their next use. */
#ifndef SILT_LAYOUT_H
#define SILT_LAYOUT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "tiers/tier.h"

struct layout {
	uint32_t chunk_size;
	unsigned shift;
	uint64_t chunks_per_seg;
};

void layout_init(struct layout *l, uint32_t chunk_size);
static inline unsigned layout_seg(const struct layout *l, uint64_t k)
{
	return (unsigned)(k / l->chunks_per_seg);
}
static inline uint64_t layout_slot(const struct layout *l, uint64_t k)
{
	return (k % l->chunks_per_seg) << l->shift;
}
static inline uint64_t layout_chunk_start(const struct layout *l, uint64_t k)
{
	return k << l->shift;
}

struct fd_table;

/* One inode's tier files. */
struct tier_files {
	uint64_t ino;
	pthread_mutex_t lock;           /* opening (never held across I/O) */
	_Atomic(struct fd_table *) tab; /* NULL until the first open */
	_Atomic uint32_t dirty;         /* tier ids written since the last sync */
};

void tfiles_init(struct tier_files *tf, uint64_t ino);
/* Close every file. The caller makes sure nothing uses them any more. */
void tfiles_close(struct tier_files *tf);
/* The file of chunk k on tier t, opened (and with create, created) on first
 * use: an fd, -ENOENT when it does not exist and create is 0, -EFBIG past
 * the last segment, or another -errno. */
int tfiles_fd(struct tier_files *tf, const struct layout *l, struct silt_tier *t,
	      uint64_t k, int create);
/* The tier's folder left (tier_check said TIER_LOST): every file of it
 * this inode holds is let go of; its numbers stay taken and their I/O
 * fails until the tier is back (then tfiles_fd opens them again). */
void tfiles_release(struct tier_files *tf, struct silt_tier *t);
/* Make chunk k's slot [from, from+len) a hole on tier t; a file that does
 * not exist holds nothing and is fine. */
int tfiles_punch(struct tier_files *tf, const struct layout *l, struct silt_tier *t,
		 uint64_t k, uint64_t from, uint64_t len);
/* [off, off+len) of fd a hole, or zeros written where the filesystem
 * cannot punch (sshfs, NFS before 4.2): it reads as zeros either way. */
int layout_punch_fd(int fd, uint64_t off, uint64_t len);
/* fdatasync every open file of the tiers in mask (bit = tier id; by_id:
 * the tiers, so that a net tier's syncs are bounded: tiers/netio.h). */
int tfiles_sync(struct tier_files *tf, uint32_t mask, struct silt_tier *const *by_id);
static inline void tfiles_mark_dirty(struct tier_files *tf, int tid)
{
	atomic_fetch_or(&tf->dirty, 1u << tid);
}

#endif
