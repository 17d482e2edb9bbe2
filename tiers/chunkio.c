/* Whole chunks, guarded (see chunkio.h). */
#include "tiers/chunkio.h"
#include "tiers/blocksum.h"
#include "tiers/zchunk.h"

#include <errno.h>

/* An error from a tier's file that says the tier is broken marks it so;
 * the caller sees EIO. */
static int tier_error(const struct chunkio *io, int tid, int r, const char *what)
{
	if (!r || !tier_io_error(r))
		return r;
	tier_fail(io->by_id[tid], r, what);
	return -EIO;
}

static int is_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 8)
		if (*(const uint64_t *)(p + i))
			return 0;
	return 1;
}

/* Chunk k's slot on tier tid, as stored, read or written whole. */
static int slot_io(const struct chunkio *io, struct silt_ioctx *ctx, struct cmap_file *cf, uint64_t k,
		   int tid, int write, char *buf)
{
	const struct layout *l = io->layout;
	int fd = tfiles_fd(cmap_files(cf), l, io->by_id[tid], k, write);

	if (fd < 0)
		return tier_error(io, tid, fd, write ? "creating a chunk file" : "opening a chunk's file");
	struct tier_io op = { .fd = fd, .write = write, .off = layout_slot(l, k), .buf = buf,
			      .len = l->chunk_size, .tier = tid,
			      .net = tier_netio(io->by_id[tid]) };
	return tier_error(io, tid, tier_io_run(ctx, &op, 1), write ? "writing a chunk" : "reading a chunk");
}

int chunk_read_whole(const struct chunkio *io, struct silt_ioctx *ctx, struct cmap_file *cf,
		     uint64_t k, uint8_t e, char *buf, int *bad)
{
	const struct layout *l = io->layout;
	struct block_sum sums[CHUNK_SUMS_MAX];
	struct chunk_rec rec = { 0 };
	unsigned healed;
	int tid = cm_tier(e), r;

	*bad = -1;
	if ((io->zlevel[tid] || (e & CM_SUMS)) &&
	    (r = cmap_get_record(io->cm, cf, k, &rec, (e & CM_SUMS) ? sums : NULL)))
		return r == -ENOENT ? -ESTALE : r;
	if (!chunk_in_blocks(io, e)) {
		int fd = tfiles_fd(cmap_files(cf), l, io->by_id[tid], k, 0);
		if (fd < 0)
			return tier_error(io, tid, fd, "opening a chunk's file");
		r = zchunk_read(ctx, fd, tier_netio(io->by_id[tid]), layout_slot(l, k), l->chunk_size,
				!!(e & CM_PLAIN), rec.csum, buf);
		return r == -EIO ? -EIO : tier_error(io, tid, r, "reading a chunk");
	}
	if ((r = slot_io(io, ctx, cf, k, tid, 0, buf)))
		return r;
	if ((rec.flags & CHUNK_SUMS) && (*bad = bsum_verify(sums, 0, buf, bsum_blocks(l->chunk_size), &healed)) >= 0)
		return -EIO;
	return 0;
}

int chunk_read_raw(const struct chunkio *io, struct silt_ioctx *ctx, struct cmap_file *cf, uint64_t k,
		   uint8_t e, char *buf)
{
	return chunk_in_blocks(io, e) ? slot_io(io, ctx, cf, k, cm_tier(e), 0, buf) : -EINVAL;
}

int chunk_write_raw(const struct chunkio *io, struct silt_ioctx *ctx, struct cmap_file *cf, uint64_t k,
		    int to, const char *buf)
{
	return slot_io(io, ctx, cf, k, to, 1, (char *)buf);
}

int chunk_write_whole(const struct chunkio *io, struct silt_ioctx *ctx, struct cmap_file *cf,
		      uint64_t k, int to, const char *buf, struct chunk_rec *rec, struct block_sum *sums,
		      int *with_sums)
{
	const struct layout *l = io->layout;
	struct silt_tier *t = io->by_id[to];
	int fd = tfiles_fd(cmap_files(cf), l, t, k, 1), r;

	*rec = (struct chunk_rec){ .tier = (uint8_t)to };
	*with_sums = tier_checksums(t);
	if (fd < 0)
		return tier_error(io, to, fd, "creating a chunk file");
	if (*with_sums)
		bsum_chunk(sums, buf, l->chunk_size);
	if (io->zlevel[to]) {
		struct zchunk_info zi;
		if ((r = zchunk_write(ctx, fd, tier_netio(t), layout_slot(l, k), l->chunk_size, io->zlevel[to], buf,
				      &zi)))
			return tier_error(io, to, r, "writing a chunk");
		rec->flags = zi.plain ? CHUNK_PLAIN : 0;
		rec->stored_len = zi.stored_len;
		rec->csum = zi.csum;
		return 0;
	}
	if (is_zero(buf, l->chunk_size)) /* a preallocated chunk: keep it sparse */
		return tier_error(io, to, tfiles_punch(cmap_files(cf), l, t, k, 0, l->chunk_size),
				  "punching a chunk");
	return slot_io(io, ctx, cf, k, to, 1, (char *)buf);
}
