/* The synchronous data path: reads and writes, and fsync.
 *
 * Everything the asynchronous path (async.c) does not take comes here: new
 * chunks, unaligned edges, compressed chunks, holes, requests that span
 * tiers. A request is cut at chunk boundaries; each piece goes to the tier
 * that holds its chunk (or reads as zeros for a hole); contiguous pieces on
 * one tier file merge and all go to the thread's io_uring together. Tier
 * files are O_DIRECT, so the request is widened to 4 KiB alignment in a
 * per-thread bounce buffer; a write with unaligned edges reads those edge
 * blocks first (read-modify-write).
 *
 * Pins (tiers/chunkmap.h): a read pins its chunks shared, a write pins them
 * exclusively, which orders a read-modify-write or an allocation against
 * every other I/O on those chunks, and only those.
 *
 * Ordering, so that a crash never exposes wrong data:
 *  - a chunk slot that is newly allocated and only partly written is punched
 *    first, so its unwritten bytes read as zeros whatever was there before;
 *  - new map entries and a size extension are committed (to the WAL, not
 *    synced) before the data is written, so the map never misses data that
 *    write() acknowledged; if the data write fails they are rolled back.
 * Overwriting a mapped chunk writes no metadata at all (times stay in memory
 * until fsync, close or eviction). */
#include "fs/vol_int.h"
#include "tiers/blocksum.h"
#include "tiers/chunkio.h"
#include "utils/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_OPS ((SILT_IOBUF / SILT_ALIGN) + 4)

struct silt_ioctx *vol_ioctx(struct silt_vol *v)
{
	struct silt_ioctx *c = pthread_getspecific(v->io_key);
	if (c)
		return c;
	if (silt_ioctx_new(64, SILT_IOBUF + 2 * SILT_ALIGN, &c))
		return NULL;
	pthread_setspecific(v->io_key, c);
	return c;
}

/* fd of the tier file that holds chunk k on tier id tid. */
static int chunk_fd(struct silt_vol *v, struct inode *in, int tid, uint64_t k, int create)
{
	return tfiles_fd(cmap_files(in->cf), &v->layout, v->tier_by_id[tid], k, create);
}

static uint64_t chunk_start(const struct silt_vol *v, uint64_t k)
{
	return layout_chunk_start(&v->layout, k);
}

/* Tier I/O failed: a tier whose file failed for a reason other than being
 * full or busy is broken (its folder gone, its disk failing) and is marked
 * so; the caller sees EIO, never an errno that would say something else
 * about its own file. */
static int tier_errors(struct silt_vol *v, const struct tier_io *ops, unsigned n, int r)
{
	for (unsigned i = 0; i < n; i++)
		if (ops[i].res && tier_io_error(ops[i].res))
			tier_fail(v->tier_by_id[ops[i].tier], ops[i].res,
				  ops[i].write ? "writing a chunk" : "reading a chunk");
	return r && tier_io_error(r) ? -EIO : r;
}

static int run_io(struct silt_vol *v, struct silt_ioctx *ctx, struct tier_io *ops, unsigned n)
{
	int r = n ? tier_io_run(ctx, ops, n) : 0;
	return r ? tier_errors(v, ops, n, r) : 0;
}

/* Queue an I/O on chunk k's slot, merging with the previous op when it
 * continues it on the same file. */
static int queue_io(struct silt_vol *v, struct inode *in, struct tier_io *ops, unsigned *n,
		    int tid, uint64_t k, uint32_t in_chunk, void *buf, uint32_t len, int write)
{
	int fd = chunk_fd(v, in, tid, k, write);
	uint64_t off = layout_slot(&v->layout, k) + in_chunk;

	if (fd < 0) {
		/* a mapped chunk whose file is gone: the tier lost it */
		if (!write && tier_io_error(fd))
			tier_fail(v->tier_by_id[tid], fd, "opening a chunk's file");
		return tier_io_error(fd) ? -EIO : fd;
	}
	if (*n) {
		struct tier_io *p = &ops[*n - 1];
		if (p->fd == fd && p->off + p->len == off && (char *)p->buf + p->len == (char *)buf) {
			p->len += len;
			return 0;
		}
	}
	if (*n == MAX_OPS)
		return -E2BIG;
	ops[(*n)++] = (struct tier_io){ .fd = fd, .write = write, .off = off, .buf = buf, .len = len,
					.tier = tid, .net = tier_netio(v->tier_by_id[tid]) };
	return 0;
}

void data_note_access(struct silt_vol *v, struct inode *in, uint64_t k0, uint64_t k1,
		      int write, size_t bytes)
{
	heat_record(v->heat, in->ino, k0, k1, write);
	if (write) {
		/* subscribers (the replication journal) see every change, also
		 * the ones that need no metadata */
		struct change ch = { .kind = CHANGE_DATA, .ino = in->ino, .first = k0, .last = k1 };
		commit_note(v->commit, &ch);
		atomic_fetch_add_explicit(&v->writes, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&v->write_bytes, bytes, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&v->reads, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&v->read_bytes, bytes, memory_order_relaxed);
	}
}

/* ---- integrity: block sums, and chunks read and rewritten whole ----
 *
 * A compressed chunk is covered by the checksum in its header and record; a
 * chunk on a checksumming tier (hdd, net) by one sum per 4 KiB block in its
 * record (fs/meta/records.h). Both are always read through here, and a
 * mismatch is reported and returned as EIO, never as data. */

#define MAX_SUMS CHUNK_SUMS_MAX

/* A damaged chunk: said once per read, in the log and the event log (which
 * name the inode, the chunk, the block when it is one, and the tier), and
 * counted per tier (siltctl metrics). */
static int corrupt(struct silt_vol *v, struct inode *in, uint64_t k, int tid, int block)
{
	char blk[24] = "";

	if (block >= 0)
		snprintf(blk, sizeof(blk), " block %d", block);
	atomic_fetch_add_explicit(&v->csum_errors[tid], 1, memory_order_relaxed);
	log_err("inode %llu chunk %llu%s on tier %s: checksum mismatch, returning EIO",
		(unsigned long long)in->ino, (unsigned long long)k, blk, tier_name(v->tier_by_id[tid]));
	vol_event(v, EVENT_CHECKSUM, "inode %llu chunk %llu%s on tier %s: checksum mismatch",
		  (unsigned long long)in->ino, (unsigned long long)k, blk, tier_name(v->tier_by_id[tid]));
	return -EIO;
}

/* n blocks read into buf, block b0 of chunk k first, against its sums. */
static int check_blocks(struct silt_vol *v, struct inode *in, uint64_t k, int tid, unsigned b0,
			const char *buf, unsigned n)
{
	struct block_sum sums[MAX_SUMS];
	struct chunk_rec rec;
	unsigned healed;
	int r = cmap_get_record(v->cmap, in->cf, k, &rec, sums);

	if (r)
		return r == -ENOENT ? -EIO : r;
	if (!(rec.flags & CHUNK_SUMS))
		return 0;
	int bad = bsum_verify(sums, b0, buf, n, &healed);
	return bad < 0 ? 0 : corrupt(v, in, k, tid, bad);
}

/* Chunk k (entry e, 0 for a hole) whole into the thread's raw buffer,
 * verified by whatever covers it. */
static char *load_whole(struct silt_vol *v, struct inode *in, struct silt_ioctx *ctx, uint64_t k,
			uint8_t e, int *err)
{
	char *raw = silt_ioctx_scratch(ctx, 1, v->layout.chunk_size);
	int bad;

	*err = 0;
	if (!raw) {
		*err = -ENOMEM;
		return NULL;
	}
	if (!e) {
		memset(raw, 0, v->layout.chunk_size);
		return raw;
	}
	if ((*err = chunk_read_whole(&v->cio, ctx, in->cf, k, e, raw, &bad)) == -EIO &&
	    !tier_failed(v->tier_by_id[cm_tier(e)]))
		corrupt(v, in, k, cm_tier(e), bad);
	return *err ? NULL : raw;
}

static int read_zc(struct silt_vol *v, struct inode *in, struct silt_ioctx *ctx, uint64_t k,
		   uint8_t e, uint64_t from, char *dst, uint64_t len)
{
	int r;
	char *raw = load_whole(v, in, ctx, k, e, &r);

	if (raw)
		memcpy(dst, raw + from, len);
	return r;
}

/* Record chunk k as cr (with block sums when sums is set) in one commit.
 * The caller holds k exclusively, and in->lock when locked is set. */
static int record_chunk(struct silt_vol *v, struct inode *in, uint64_t k, const struct chunk_rec *cr,
			const struct block_sum *sums, int locked)
{
	struct cmap_txn t;
	int r;
	struct meta_batch *b = meta_batch_new();

	if (!b)
		return -ENOMEM;
	if (!locked)
		pthread_mutex_lock(&in->lock);
	cmap_txn_begin(v->cmap, &t, in->cf, b);
	if (!(r = cmap_txn_set_sums(&t, k, cr, sums)) && !(r = vol_commit(v, b, 0, CHANGE_MAP, in->ino, k, k)))
		cmap_txn_publish(&t);
	cmap_txn_end(&t);
	if (!locked)
		pthread_mutex_unlock(&in->lock);
	meta_batch_free(b);
	return r;
}

/* Store raw as chunk k's whole content on tier tid, compressed there or
 * plain with fresh block sums, and record how. The caller holds k
 * exclusively (or the file quiesced), and in->lock when locked is set. */
static int store_whole(struct silt_vol *v, struct inode *in, struct silt_ioctx *ctx, uint64_t k,
		       int tid, const char *raw, int locked)
{
	struct block_sum sums[MAX_SUMS];
	struct chunk_rec cr;
	int with_sums, r = chunk_write_whole(&v->cio, ctx, in->cf, k, tid, raw, &cr, sums, &with_sums);

	return r ? r : record_chunk(v, in, k, &cr, with_sums ? sums : NULL, locked);
}

/* A write of whole blocks [at, at + len) of chunk k (entry e) on a
 * compressed tier, whose stored copy is damaged (EIO: its frame, header or
 * raw copy fails its checksum). What the write brings is good; what it
 * does not cannot be recovered. The chunk is stored raw with block sums:
 * the written blocks with theirs, every other block with sum 0, which no
 * block matches (bsum_of is never 0), so those keep reading as EIO until
 * they are written too, while the written ones read back. A chunk salvaged
 * before keeps its good blocks and their sums. Once no damaged block is
 * left, its next write stores it compressed again (load_whole succeeds). */
static int salvage(struct silt_vol *v, struct inode *in, struct silt_ioctx *ctx, uint64_t k, uint8_t e,
		   const char *data, uint64_t at, uint64_t len)
{
	struct block_sum sums[MAX_SUMS];
	struct chunk_rec cr = { .tier = (uint8_t)cm_tier(e), .flags = CHUNK_PLAIN };
	unsigned nb = bsum_blocks(v->layout.chunk_size), damaged = 0;
	char *raw = silt_ioctx_scratch(ctx, 1, v->layout.chunk_size);
	int r;

	if (!raw)
		return -ENOMEM;
	memset(raw, 0, v->layout.chunk_size);
	memset(sums, 0, nb * sizeof(*sums));
	if (chunk_in_blocks(&v->cio, e) && (e & CM_SUMS) &&
	    ((r = cmap_get_record(v->cmap, in->cf, k, &cr, sums)) ||
	     (r = chunk_read_raw(&v->cio, ctx, in->cf, k, e, raw))))
		return r;
	memcpy(raw + at, data, len);
	for (unsigned b = (unsigned)(at / SUM_BLOCK); b < (at + len) / SUM_BLOCK; b++)
		sums[b].cur = sums[b].prev = bsum_of(raw + (size_t)b * SUM_BLOCK);
	for (unsigned b = 0; b < nb; b++)
		damaged += sums[b].cur != bsum_of(raw + (size_t)b * SUM_BLOCK) &&
			   sums[b].prev != bsum_of(raw + (size_t)b * SUM_BLOCK);
	cr.flags = CHUNK_PLAIN;
	cr.stored_len = 0;
	cr.csum = 0;
	if ((r = chunk_write_raw(&v->cio, ctx, in->cf, k, cm_tier(e), raw)) ||
	    (r = record_chunk(v, in, k, &cr, sums, 0)))
		return r;
	vol_event(v, EVENT_CHECKSUM, "inode %llu chunk %llu on tier %s: a write salvaged it, %u damaged blocks left",
		  (unsigned long long)in->ino, (unsigned long long)k, tier_name(v->tier_by_id[cm_tier(e)]), damaged);
	log_warn("inode %llu chunk %llu on tier %s: damaged, rewritten in part: %u of its blocks still read as EIO",
		 (unsigned long long)in->ino, (unsigned long long)k, tier_name(v->tier_by_id[cm_tier(e)]), damaged);
	return 0;
}

static int write_zc(struct silt_vol *v, struct inode *in, struct silt_ioctx *ctx, uint64_t k,
		    int fresh, const char *data, uint64_t off, uint64_t end)
{
	uint64_t cs = chunk_start(v, k), ce = cs + v->layout.chunk_size;
	uint64_t from = MAX(off, cs), to = MIN(end, ce);
	uint8_t e = cmap_get(in->cf, k);
	int r;
	/* a write of the whole chunk needs nothing of what was there: also
	 * not when that is damaged */
	int whole = from == cs && to == ce;
	char *raw = load_whole(v, in, ctx, k, fresh || whole ? 0 : e, &r);

	if (!raw && r == -EIO && !tier_failed(v->tier_by_id[cm_tier(e)]) && from % SUM_BLOCK == 0 &&
	    to % SUM_BLOCK == 0)
		return salvage(v, in, ctx, k, e, data + (from - off), from - cs, to - from);
	if (!raw)
		return r;
	memcpy(raw + (from - cs), data + (from - off), to - from);
	return store_whole(v, in, ctx, k, cm_tier(e), raw, 0);
}

int data_zero_in_chunk(struct silt_vol *v, struct inode *in, uint64_t k, uint64_t from,
		       uint64_t len)
{
	uint8_t e = cmap_get(in->cf, k);
	int tid = cm_tier(e), r;

	ram_invalidate(v->ram, in->ino, k, k);
	cmap_touch(v->cmap, in->cf, k);
	/* a plain chunk without sums: punch; anything verified: rewrite whole */
	if (!v->zlevel[tid] && !(e & CM_SUMS))
		return tfiles_punch(cmap_files(in->cf), &v->layout, v->tier_by_id[tid], k, from, len);
	struct silt_ioctx *ctx = vol_ioctx(v);
	if (!ctx)
		return -ENOMEM;
	char *raw = load_whole(v, in, ctx, k, from == 0 && len == v->layout.chunk_size ? 0 : e, &r);
	if (!raw)
		return r;
	memset(raw + from, 0, len);
	return store_whole(v, in, ctx, k, tid, raw, 1);
}

/* ---- read ---- */

static uint64_t file_size(struct inode *in)
{
	pthread_mutex_lock(&in->lock);
	uint64_t size = in->rec.size;
	pthread_mutex_unlock(&in->lock);
	return size;
}

/* Fill buf with [a0, a1) of the file (pinned by the caller). */
static int read_range(struct silt_vol *v, struct inode *in, struct silt_ioctx *ctx, char *buf,
		      uint64_t a0, uint64_t a1)
{
	struct tier_io ops[MAX_OPS];
	unsigned nops = 0;
	int r = 0;

	for (uint64_t pos = a0; pos < a1 && !r;) {
		uint64_t k = pos >> v->layout.shift;
		uint64_t cend = MIN(chunk_start(v, k + 1), a1);
		uint8_t e = cmap_get(in->cf, k);
		if (!e)
			memset(buf + (pos - a0), 0, cend - pos);
		else if (ram_read(v->ram, in->ino, k, (uint32_t)(pos - chunk_start(v, k)), (uint32_t)(cend - pos),
				  buf + (pos - a0), 1))
			; /* the RAM tier had it */
		else if (!chunk_in_blocks(&v->cio, e))
			r = read_zc(v, in, ctx, k, e, pos - chunk_start(v, k), buf + (pos - a0), cend - pos);
		else
			r = queue_io(v, in, ops, &nops, cm_tier(e), k, (uint32_t)(pos - chunk_start(v, k)),
				     buf + (pos - a0), (uint32_t)(cend - pos), 0);
		pos = cend;
	}
	if (r || (r = run_io(v, ctx, ops, nops)))
		return r;
	/* pieces of checksummed chunks (whole blocks: [a0, a1) is aligned) */
	for (uint64_t pos = a0; pos < a1 && !r;) {
		uint64_t k = pos >> v->layout.shift;
		uint64_t cend = MIN(chunk_start(v, k + 1), a1);
		uint8_t e = cmap_get(in->cf, k);
		if ((e & CM_SUMS) && chunk_in_blocks(&v->cio, e))
			r = check_blocks(v, in, k, cm_tier(e), (unsigned)((pos - chunk_start(v, k)) / SUM_BLOCK),
					 buf + (pos - a0), (unsigned)((cend - pos) / SUM_BLOCK));
		pos = cend;
	}
	return r;
}

void data_note_done(struct silt_vol *v, int write, uint64_t start_ns, ssize_t res)
{
	histo_add(&v->latency[write], silt_now_ns() - start_ns);
	if (res < 0)
		atomic_fetch_add_explicit(&v->io_errors[write], 1, memory_order_relaxed);
}

static ssize_t read_request(struct silt_vol *v, struct silt_file *f, size_t size, off_t off, const void **data)
{
	struct inode *in = f->ino;
	struct silt_ioctx *ctx = vol_ioctx(v);
	struct cmap_pin pin;
	uint64_t fsize, len, a0, a1;
	size_t buflen;
	int r;

	vol_io_flush(v); /* about to wait: let held asynchronous I/O go first */
	if (!ctx)
		return -ENOMEM;
	if (off < 0)
		return -EINVAL;
	size = MIN(size, (size_t)SILT_IOBUF);
	if (size == 0)
		return 0;
	a0 = (uint64_t)off & ~(uint64_t)(SILT_ALIGN - 1);
	a1 = ((uint64_t)off + size + SILT_ALIGN - 1) & ~(uint64_t)(SILT_ALIGN - 1);
	if ((r = cmap_pin(v->cmap, in->cf, a0 >> v->layout.shift, (a1 - 1) >> v->layout.shift,
			  CMAP_READ, &pin)))
		return r;
	fsize = file_size(in); /* under the pin: truncate waits for it */
	if ((uint64_t)off >= fsize) {
		cmap_unpin(v->cmap, &pin);
		return 0;
	}
	len = MIN((uint64_t)size, fsize - (uint64_t)off);
	a1 = ((uint64_t)off + len + SILT_ALIGN - 1) & ~(uint64_t)(SILT_ALIGN - 1);
	char *buf = silt_ioctx_buf(ctx, &buflen);
	r = read_range(v, in, ctx, buf, a0, a1);
	cmap_unpin(v->cmap, &pin);
	if (r) {
		log_err("inode %llu: read %llu+%zu failed: %s", (unsigned long long)in->ino,
			(unsigned long long)off, size, strerror(-r));
		return r;
	}
	data_note_access(v, in, a0 >> v->layout.shift, (a1 - 1) >> v->layout.shift, 0, len);
	*data = buf + ((uint64_t)off - a0);
	return (ssize_t)len;
}

int vol_read_full(struct silt_vol *v, struct silt_file *f, void *buf, size_t len, off_t off)
{
	for (size_t got = 0; got < len;) {
		const void *p;
		ssize_t n = vol_read(v, f, len - got, off + (off_t)got, &p);
		if (n < 0)
			return (int)n;
		if (n == 0) { /* the end of the file */
			memset((char *)buf + got, 0, len - got);
			break;
		}
		memcpy((char *)buf + got, p, (size_t)n);
		got += (size_t)n;
	}
	return 0;
}

ssize_t vol_read(struct silt_vol *v, struct silt_file *f, size_t size, off_t off, const void **data)
{
	uint64_t t0 = silt_now_ns();
	ssize_t r = read_request(v, f, size, off, data);

	data_note_done(v, 0, t0, r);
	return r;
}

/* ---- write ---- */

/* One write of at most SILT_IOBUF bytes, its chunks pinned exclusively. */
struct wr {
	struct silt_vol *v;
	struct inode *in;
	struct silt_ioctx *ctx;
	const char *data;
	uint64_t off, end, a0, a1, k0, k1;
	char *buf;                  /* bounce buffer: [a0, a1) */
	uint8_t newtier[CMAP_PIN_MAX * 16 + 1]; /* tier id + 1 of chunks placed now */
	unsigned nnew;
	unsigned nsums;             /* chunks of the range whose block sums change */
};

/* Fill one edge block of the bounce buffer with what the file holds there. */
static int read_edge(struct wr *w, uint64_t blk, char *dst)
{
	struct silt_vol *v = w->v;
	uint64_t k = blk >> v->layout.shift;
	uint8_t e = cmap_get(w->in->cf, k);
	struct tier_io op;
	unsigned n = 0;
	int r;

	if (!e || w->newtier[k - w->k0] || v->zlevel[cm_tier(e)]) {
		/* nothing there yet, or a compressed chunk, which is rewritten
		 * whole from its own copy and never from the bounce buffer */
		memset(dst, 0, SILT_ALIGN);
		return 0;
	}
	r = queue_io(v, w->in, &op, &n, cm_tier(e), k, (uint32_t)(blk - chunk_start(v, k)), dst,
		     SILT_ALIGN, 0);
	if (!r && !(r = run_io(v, w->ctx, &op, 1)) && (e & CM_SUMS))
		r = check_blocks(v, w->in, k, cm_tier(e), (unsigned)((blk - chunk_start(v, k)) / SUM_BLOCK), dst, 1);
	return r;
}

int data_promote_target(struct silt_vol *v, uint64_t ino, int tid)
{
	if (!tier_write_promotes(v->tier_by_id[tid]) || v->rank_of_id[tid] == 0)
		return -1;
	uint8_t allowed = bounds_allowed(v->bounds, ino); /* never out of the file's bound */
	int t = alloc_target(v->alloc, allowed);
	return t >= 0 && (allowed & (1u << t)) && v->rank_of_id[t] < v->rank_of_id[tid] ? t : -1;
}

/* Write-promote: chunks of the range on a slower tier move to the write
 * target first (we hold them exclusively); one that cannot is written
 * where it is. */
static void promote_range(struct wr *w)
{
	for (uint64_t k = w->k0; k <= w->k1; k++) {
		uint8_t e = cmap_get(w->in->cf, k);
		int to = e ? data_promote_target(w->v, w->in->ino, cm_tier(e)) : -1;
		if (to >= 0)
			migrate_promote(w->v->mig, w->ctx, w->in->cf, k, to);
	}
}

/* Reserve a home for every chunk of the range that has none, inside the
 * file's placement bound when there is room there. */
static int place_new(struct wr *w)
{
	uint8_t allowed = bounds_allowed(w->v->bounds, w->in->ino);
	int outside = 0;

	for (uint64_t k = w->k0; k <= w->k1; k++) {
		w->newtier[k - w->k0] = 0;
		if (cmap_get(w->in->cf, k))
			continue;
		int tid = alloc_chunk(w->v->alloc, allowed, &outside);
		if (outside) /* spilled: the placer brings it back */
			bounds_settle(w->v->bounds, w->in->ino, 0);
		if (tid < 0)
			return tid;
		w->newtier[k - w->k0] = (uint8_t)(tid + 1);
		w->nnew++;
	}
	return 0;
}

static void unplace_new(struct wr *w)
{
	for (uint64_t k = w->k0; k <= w->k1; k++)
		if (w->newtier[k - w->k0])
			alloc_unreserve(w->v->alloc, w->newtier[k - w->k0] - 1, 1);
}

/* Bounce buffer: unaligned edges first, then the caller's bytes; a new
 * chunk the write does not cover whole gets its slot punched. */
static int fill_buffer(struct wr *w)
{
	struct silt_vol *v = w->v;
	int r = 0;

	if (w->off != w->a0)
		r = read_edge(w, w->a0, w->buf);
	if (!r && w->end != w->a1 && (w->a1 - SILT_ALIGN != w->a0 || w->off == w->a0))
		r = read_edge(w, w->a1 - SILT_ALIGN, w->buf + (w->a1 - SILT_ALIGN - w->a0));
	if (r)
		return r;
	memcpy(w->buf + (w->off - w->a0), w->data, w->end - w->off);
	for (uint64_t k = w->k0; k <= w->k1 && !r; k++) {
		uint64_t cs = chunk_start(v, k), ce = cs + v->layout.chunk_size;
		struct silt_tier *t = w->newtier[k - w->k0] ? v->tier_by_id[w->newtier[k - w->k0] - 1] : NULL;
		if (t && (w->a0 > cs || w->a1 < ce) &&
		    (r = tfiles_punch(cmap_files(w->in->cf), &v->layout, t, k, 0, v->layout.chunk_size)) &&
		    tier_io_error(r)) {
			tier_fail(t, r, "punching a new chunk's slot");
			r = -EIO;
		}
	}
	return r;
}

/* Whether chunk k of the write keeps block sums: it has them, or it is
 * placed now on a tier that keeps them. */
static int sums_of(const struct wr *w, uint64_t k)
{
	uint8_t nt = w->newtier[k - w->k0];
	if (nt)
		return tier_checksums(w->v->tier_by_id[nt - 1]) && !w->v->zlevel[nt - 1];
	return (cmap_get(w->in->cf, k) & CM_SUMS) != 0;
}

static void count_sums(struct wr *w)
{
	w->nsums = 0;
	for (uint64_t k = w->k0; k <= w->k1; k++)
		w->nsums += (unsigned)sums_of(w, k);
}

/* Chunk k's record with the sums of the blocks this write covers renewed
 * (the old ones kept as prev): staged before the data goes out. */
static int stage_sums(struct wr *w, struct cmap_txn *t, uint64_t k)
{
	struct silt_vol *v = w->v;
	struct block_sum sums[MAX_SUMS];
	uint64_t cs = chunk_start(v, k), ce = cs + v->layout.chunk_size;
	uint64_t from = MAX(w->a0, cs), to = MIN(w->a1, ce);
	struct chunk_rec cr = { 0 };
	int r;

	if (w->newtier[k - w->k0]) { /* a new chunk: what the write leaves is zeros */
		cr.tier = (uint8_t)(w->newtier[k - w->k0] - 1);
		for (unsigned b = 0; b < bsum_blocks(v->layout.chunk_size); b++)
			sums[b].cur = sums[b].prev = v->zero_sum;
	} else if ((r = cmap_get_record(v->cmap, w->in->cf, k, &cr, sums))) {
		return r == -ENOENT ? -EIO : r;
	}
	bsum_update(sums, (unsigned)((from - cs) / SUM_BLOCK), w->buf + (from - w->a0),
		    (unsigned)((to - from) / SUM_BLOCK));
	return cmap_txn_set_sums(t, k, &cr, sums);
}

/* New chunks, a size extension and new block sums reach the map before the
 * data. */
static int commit_new(struct wr *w)
{
	struct silt_vol *v = w->v;
	struct inode *in = w->in;
	struct cmap_txn t;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	in->rec.mtime = in->rec.ctime = silt_now_wall();
	if (!w->nnew && w->end <= in->rec.size && !w->nsums) {
		in->dirty = 1;
		pthread_mutex_unlock(&in->lock);
		return 0;
	}
	struct meta_batch *b = meta_batch_new();
	if (!b) {
		pthread_mutex_unlock(&in->lock);
		return -ENOMEM;
	}
	struct inode_rec old = in->rec;
	cmap_txn_begin(v->cmap, &t, in->cf, b);
	for (uint64_t k = w->k0; k <= w->k1 && !r; k++) {
		struct chunk_rec cr = { .tier = (uint8_t)(w->newtier[k - w->k0] - 1) };
		if (sums_of(w, k))
			r = stage_sums(w, &t, k);
		else if (w->newtier[k - w->k0])
			r = cmap_txn_set(&t, k, &cr);
	}
	if (!r) {
		in->rec.size = MAX(in->rec.size, w->end);
		in->rec.nchunks += (uint64_t)t.mapped;
		inode_stage(v, b, in);
		r = vol_commit(v, b, 0, w->nnew || w->nsums ? CHANGE_MAP : CHANGE_ATTR, in->ino, w->k0, w->k1);
	}
	if (r) {
		in->rec = old;
		in->dirty = 1;
	} else {
		cmap_txn_publish(&t);
	}
	cmap_txn_end(&t);
	pthread_mutex_unlock(&in->lock);
	meta_batch_free(b);
	return r;
}

/* The data did not make it: forget the chunks mapped for it and the size
 * promised, so that nothing points at a half-written slot. */
static void undo_new(struct wr *w, uint64_t old_size)
{
	struct silt_vol *v = w->v;
	struct inode *in = w->in;
	struct meta_batch *b = meta_batch_new();
	struct cmap_txn t;
	int r = b ? 0 : -ENOMEM;

	pthread_mutex_lock(&in->lock);
	if (b) {
		cmap_txn_begin(v->cmap, &t, in->cf, b);
		for (uint64_t k = w->k0; k <= w->k1 && !r; k++)
			if (w->newtier[k - w->k0])
				r = cmap_txn_clear(&t, k, k + 1);
		if (in->rec.size == w->end) /* nobody wrote further meanwhile */
			in->rec.size = old_size;
		in->rec.nchunks += (uint64_t)t.mapped;
		inode_stage(v, b, in);
		if (!r && !(r = vol_commit(v, b, 0, CHANGE_MAP, in->ino, w->k0, w->k1)))
			cmap_txn_publish(&t);
		cmap_txn_end(&t);
		meta_batch_free(b);
	}
	pthread_mutex_unlock(&in->lock);
	if (r)
		log_err("inode %llu: cannot roll back chunks of a failed write: %s",
			(unsigned long long)in->ino, strerror(-r));
}

static int write_data(struct wr *w, uint32_t *dirty)
{
	struct silt_vol *v = w->v;
	struct tier_io ops[MAX_OPS];
	unsigned nops = 0;
	int r = 0;

	for (uint64_t pos = w->a0; pos < w->a1 && !r;) {
		uint64_t k = pos >> v->layout.shift;
		uint64_t cend = MIN(chunk_start(v, k + 1), w->a1);
		int tid = cm_tier(cmap_get(w->in->cf, k));
		*dirty |= 1u << tid;
		if (v->zlevel[tid])
			r = write_zc(v, w->in, w->ctx, k, !!w->newtier[k - w->k0], w->data, w->off, w->end);
		else
			r = queue_io(v, w->in, ops, &nops, tid, k, (uint32_t)(pos - chunk_start(v, k)),
				     w->buf + (pos - w->a0), (uint32_t)(cend - pos), 1);
		pos = cend;
	}
	return r ? r : run_io(v, w->ctx, ops, nops);
}

static ssize_t write_piece(struct silt_vol *v, struct inode *in, const char *data, size_t size,
			   uint64_t off, int *retry)
{
	struct wr w = { .v = v, .in = in, .ctx = vol_ioctx(v), .data = data, .off = off,
			.end = off + size };
	struct cmap_pin pin;
	uint32_t dirty = 0;
	size_t buflen;
	int r;

	if (!w.ctx)
		return -ENOMEM;
	w.buf = silt_ioctx_buf(w.ctx, &buflen);
	w.a0 = off & ~(uint64_t)(SILT_ALIGN - 1);
	w.a1 = (w.end + SILT_ALIGN - 1) & ~(uint64_t)(SILT_ALIGN - 1);
	w.k0 = w.a0 >> v->layout.shift;
	w.k1 = (w.a1 - 1) >> v->layout.shift;
	if ((r = cmap_pin(v->cmap, in->cf, w.k0, w.k1, CMAP_EXCL, &pin)))
		return r;
	ram_invalidate(v->ram, in->ino, w.k0, w.k1);
	uint64_t old_size = file_size(in);
	promote_range(&w);
	if (!(r = place_new(&w)) && !(r = fill_buffer(&w))) {
		count_sums(&w);
		r = commit_new(&w);
	}
	if (r) {
		unplace_new(&w);
		*retry = w.nnew > 0 && r == -EIO; /* a new chunk's tier broke */
		goto out;
	}
	if ((r = write_data(&w, &dirty))) {
		if (r == -ENOSPC || r == -EDQUOT) /* the tier's filesystem filled up under us */
			for (uint64_t k = w.k0; k <= w.k1; k++)
				if (w.newtier[k - w.k0])
					alloc_tier_full(v->alloc, w.newtier[k - w.k0] - 1);
		/* new chunks on a tier that filled up or failed: try the others */
		*retry = w.nnew > 0 && (r == -ENOSPC || r == -EDQUOT || r == -EIO);
		if (w.nnew || w.end > old_size)
			undo_new(&w, old_size);
		goto out;
	}
	for (int t = 0; t < SILT_MAX_TIERS; t++)
		if (dirty & (1u << t))
			tfiles_mark_dirty(cmap_files(in->cf), t);
out:
	cmap_unpin(v->cmap, &pin);
	if (r) {
		if (r != -ENOSPC)
			log_err("inode %llu: write %llu+%zu failed: %s", (unsigned long long)in->ino,
				(unsigned long long)off, size, strerror(-r));
		return r;
	}
	data_note_access(v, in, w.k0, w.k1, 1, size);
	return (ssize_t)size;
}

static ssize_t write_request(struct silt_vol *v, struct silt_file *f, const void *buf, size_t size, off_t off)
{
	size_t done = 0;

	vol_io_flush(v); /* about to wait: let held asynchronous I/O go first */
	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off + size > SILT_MAX_FILE_SIZE)
		return -EFBIG;
	while (done < size) {
		size_t n = MIN(size - done, (size_t)SILT_IOBUF);
		int retry = 0;
		ssize_t r = write_piece(v, f->ino, (const char *)buf + done, n, (uint64_t)off + done, &retry);
		if (r < 0 && retry)
			r = write_piece(v, f->ino, (const char *)buf + done, n, (uint64_t)off + done, &retry);
		if (r < 0)
			return done ? (ssize_t)done : r;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

ssize_t vol_write(struct silt_vol *v, struct silt_file *f, const void *buf, size_t size, off_t off)
{
	uint64_t t0 = silt_now_ns();
	ssize_t r = write_request(v, f, buf, size, off);

	data_note_done(v, 1, t0, r);
	return r;
}

/* ---- fsync ---- */

int vol_fsync(struct silt_vol *v, struct silt_file *f, int datasync)
{
	struct inode *in = f->ino;
	struct tier_files *tf = cmap_files(in->cf);
	uint32_t mask = atomic_exchange(&tf->dirty, 0);
	int r;

	/* data first, then the metadata that points at it */
	if ((r = tfiles_sync(tf, mask, v->tier_by_id))) {
		atomic_fetch_or(&tf->dirty, mask);
		return tier_io_error(r) ? -EIO : r;
	}
	pthread_mutex_lock(&in->lock);
	int dirty = in->dirty;
	pthread_mutex_unlock(&in->lock);
	if (dirty && !datasync)
		return inode_persist(v, in, 1);
	return commit_sync(v->commit);
}
