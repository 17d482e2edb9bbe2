/* Space of a file: truncate, fallocate (preallocate, punch hole),
 * SEEK_DATA/SEEK_HOLE, and freeing a deleted file.
 *
 * These change many chunks' homes at once and are rare, so they drain the
 * whole file of I/O first (cmap_file_quiesce) rather than pinning chunk by
 * chunk. Freeing commits the map change first; the chunk map punches the
 * old slots after (cmap_txn_publish), so a crash in between only leaves
 * space that fsck reclaims, never a map entry over a punched slot. */
#include "fs/vol_int.h"
#include "tiers/blocksum.h"
#include "utils/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int data_destroy(struct silt_vol *v, struct inode *in, struct cmap_txn *t)
{
	int r = inode_load_chunks(v, in);

	if (!r)
		r = cmap_txn_drop(t);
	ram_invalidate(v->ram, in->ino, 0, UINT64_MAX - 1);
	in->rec.nchunks = 0;
	return r;
}

/* Commit b with the inode record, then make t visible. */
static int commit_publish(struct silt_vol *v, struct inode *in, struct cmap_txn *t,
			  struct meta_batch *b, uint64_t first, uint64_t last)
{
	in->rec.nchunks += (uint64_t)t->mapped;
	inode_stage(v, b, in);
	int r = vol_commit(v, b, 0, t->n ? CHANGE_MAP : CHANGE_ATTR, in->ino, first, last);
	if (r)
		in->rec.nchunks -= (uint64_t)t->mapped;
	else
		cmap_txn_publish(t);
	return r;
}

static int shrink(struct silt_vol *v, struct inode *in, struct cmap_txn *t, uint64_t size)
{
	uint64_t first = (size + v->layout.chunk_size - 1) >> v->layout.shift;
	uint64_t last = cmap_last_mapped(in->cf);
	uint64_t tail = size & (v->layout.chunk_size - 1);
	int r = 0;

	/* bytes past the new end inside the last chunk must read as zeros if
	 * the file grows again */
	if (tail && cmap_get(in->cf, size >> v->layout.shift))
		r = data_zero_in_chunk(v, in, size >> v->layout.shift, tail, v->layout.chunk_size - tail);
	if (!r && last != UINT64_MAX && last >= first) {
		ram_invalidate(v->ram, in->ino, first, last);
		r = cmap_txn_clear(t, first, last + 1);
	}
	return r;
}

int data_truncate(struct silt_vol *v, struct inode *in, uint64_t size)
{
	struct cmap_txn t;
	struct meta_batch *b;
	int r;

	if (size > SILT_MAX_FILE_SIZE)
		return -EFBIG;
	if (!(b = meta_batch_new()))
		return -ENOMEM;
	cmap_file_quiesce(v->cmap, in->cf);
	pthread_mutex_lock(&in->lock);
	cmap_txn_begin(v->cmap, &t, in->cf, b);
	if (!(r = inode_load_chunks(v, in)) && size < in->rec.size)
		r = shrink(v, in, &t, size);
	if (!r) {
		uint64_t old = in->rec.size;
		in->rec.size = size;
		in->rec.mtime = in->rec.ctime = silt_now_wall();
		if ((r = commit_publish(v, in, &t, b, size >> v->layout.shift, UINT64_MAX)))
			in->rec.size = old;
	}
	cmap_txn_end(&t);
	pthread_mutex_unlock(&in->lock);
	cmap_file_resume(v->cmap, in->cf);
	meta_batch_free(b);
	return r;
}

/* ---- fallocate ---- */

/* A fresh slot for chunk k on tier tid: zeros, and really allocated. */
static int prepare_slot(struct silt_vol *v, struct inode *in, int tid, uint64_t k)
{
	struct tier_files *tf = cmap_files(in->cf);
	struct silt_tier *t = v->tier_by_id[tid];
	int fd = tfiles_fd(tf, &v->layout, t, k, 1), r;

	if (fd < 0)
		return fd;
	if ((r = tfiles_punch(tf, &v->layout, t, k, 0, v->layout.chunk_size)))
		return r;
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)layout_slot(&v->layout, k), v->layout.chunk_size) < 0)
		return -errno;
	return 0;
}

/* Allocate the holes of [w, we) into t; placed[] says where they went. */
static int falloc_window(struct silt_vol *v, struct inode *in, struct cmap_txn *t,
			 uint64_t w, uint64_t we, uint8_t *placed, const struct block_sum *zero_sums)
{
	uint8_t allowed = bounds_allowed(v->bounds, in->ino);
	int r = 0, outside = 0;

	for (uint64_t k = w; k < we && !r; k++) {
		if (cmap_get(in->cf, k))
			continue;
		int tid = alloc_chunk(v->alloc, allowed, &outside);
		if (outside) /* spilled: the placer brings it back */
			bounds_settle(v->bounds, in->ino, 0);
		if (tid < 0)
			return tid;
		placed[k - w] = (uint8_t)(tid + 1);
		struct chunk_rec cr = { .tier = (uint8_t)tid };
		if ((r = prepare_slot(v, in, tid, k)) == -ENOSPC)
			alloc_tier_full(v->alloc, tid);
		if (!r)
			r = cmap_txn_set_sums(t, k, &cr, tier_checksums(v->tier_by_id[tid]) ? zero_sums : NULL);
	}
	return r;
}

/* Allocate the holes of [off, off+len). Works in windows of FALLOC_WINDOW
 * chunks, each one committed on its own: an ENOSPC keeps what earlier
 * windows got (as ext4 does) and rolls back only the current window. */
#define FALLOC_WINDOW 4096
static int falloc_range(struct silt_vol *v, struct inode *in, uint64_t off, uint64_t len, int keep)
{
	uint64_t k0 = off >> v->layout.shift, k1 = (off + len - 1) >> v->layout.shift;
	struct block_sum zero_sums[(4u << 20) / SUM_BLOCK];
	uint8_t placed[FALLOC_WINDOW];
	int r = 0;

	/* a preallocated chunk on a checksumming tier holds zeros, and says so */
	for (unsigned b = 0; b < bsum_blocks(v->layout.chunk_size); b++)
		zero_sums[b].cur = zero_sums[b].prev = v->zero_sum;
	for (uint64_t w = k0; w <= k1 && !r; w += FALLOC_WINDOW) {
		uint64_t we = MIN(k1 + 1, w + FALLOC_WINDOW);
		struct meta_batch *b = meta_batch_new();
		struct cmap_txn t;
		if (!b)
			return -ENOMEM;
		memset(placed, 0, sizeof(placed));
		cmap_txn_begin(v->cmap, &t, in->cf, b);
		r = falloc_window(v, in, &t, w, we, placed, zero_sums);
		if (!r) {
			uint64_t old_size = in->rec.size;
			if (!keep && we == k1 + 1 && off + len > in->rec.size)
				in->rec.size = off + len;
			in->rec.ctime = silt_now_wall();
			if ((r = commit_publish(v, in, &t, b, w, we - 1)))
				in->rec.size = old_size;
		}
		for (uint64_t k = w; r && k < we; k++) {
			if (!placed[k - w])
				continue;
			tfiles_punch(cmap_files(in->cf), &v->layout, v->tier_by_id[placed[k - w] - 1], k, 0,
				     v->layout.chunk_size);
			alloc_unreserve(v->alloc, placed[k - w] - 1, 1);
		}
		cmap_txn_end(&t);
		meta_batch_free(b);
	}
	return r;
}

static int punch_range(struct silt_vol *v, struct inode *in, uint64_t off, uint64_t len)
{
	uint64_t end = off + len, cs = v->layout.chunk_size;
	uint64_t first_whole = (off + cs - 1) >> v->layout.shift, end_whole = end >> v->layout.shift;
	struct meta_batch *b = meta_batch_new();
	struct cmap_txn t;
	int r = 0;

	if (!b)
		return -ENOMEM;
	/* partial chunks at either edge: zero the bytes inside their slots */
	for (uint64_t pos = off; pos < end && !r;) {
		uint64_t k = pos >> v->layout.shift;
		uint64_t cstart = layout_chunk_start(&v->layout, k), cend = MIN(cstart + cs, end);
		if (k >= first_whole && k < end_whole) {
			pos = layout_chunk_start(&v->layout, end_whole);
			continue;
		}
		if (cmap_get(in->cf, k))
			r = data_zero_in_chunk(v, in, k, pos - cstart, cend - pos);
		pos = cend;
	}
	cmap_txn_begin(v->cmap, &t, in->cf, b);
	if (!r && first_whole < end_whole) {
		ram_invalidate(v->ram, in->ino, first_whole, end_whole - 1);
		r = cmap_txn_clear(&t, first_whole, end_whole);
	}
	in->rec.mtime = in->rec.ctime = silt_now_wall();
	if (!r)
		r = commit_publish(v, in, &t, b, off >> v->layout.shift, (end - 1) >> v->layout.shift);
	cmap_txn_end(&t);
	meta_batch_free(b);
	return r;
}

int vol_fallocate(struct silt_vol *v, struct silt_file *f, int mode, off_t off, off_t len)
{
	struct inode *in = f->ino;
	int r;

	if (off < 0 || len <= 0)
		return -EINVAL;
	if ((uint64_t)off + (uint64_t)len > SILT_MAX_FILE_SIZE)
		return -EFBIG;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
		return -EINVAL;
	vol_io_flush(v);
	cmap_file_quiesce(v->cmap, in->cf);
	pthread_mutex_lock(&in->lock);
	if (mode & FALLOC_FL_PUNCH_HOLE)
		r = punch_range(v, in, (uint64_t)off, (uint64_t)len);
	else
		r = falloc_range(v, in, (uint64_t)off, (uint64_t)len, mode & FALLOC_FL_KEEP_SIZE);
	pthread_mutex_unlock(&in->lock);
	cmap_file_resume(v->cmap, in->cf);
	return r;
}

/* ---- seek ---- */

off_t vol_lseek(struct silt_vol *v, struct silt_file *f, off_t off, int whence)
{
	struct inode *in = f->ino;
	uint64_t size, k, pos;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (off < 0)
		return -ENXIO;
	pthread_mutex_lock(&in->lock);
	size = in->rec.size;
	pthread_mutex_unlock(&in->lock);
	if ((uint64_t)off >= size)
		return -ENXIO;
	/* the table is read without a pin: a racing change is seen or not,
	 * as with any filesystem's lseek against a concurrent write */
	if (whence == SEEK_DATA) {
		k = cmap_next_mapped(in->cf, (uint64_t)off >> v->layout.shift);
		pos = k == UINT64_MAX ? UINT64_MAX : layout_chunk_start(&v->layout, k);
		return pos >= size ? -ENXIO : (off_t)MAX(pos, (uint64_t)off);
	}
	k = (uint64_t)off >> v->layout.shift;
	while (layout_chunk_start(&v->layout, k) < size && cmap_get(in->cf, k))
		k++;
	pos = layout_chunk_start(&v->layout, k);
	return (off_t)MIN(MAX(pos, (uint64_t)off), size);
}
