/* The data path: reads, writes, truncate, fallocate, SEEK_DATA/HOLE, fsync.
 *
 * A request is cut at chunk boundaries; each piece goes to the tier that
 * holds its chunk (or reads as zeros for a hole), contiguous pieces on the
 * same tier file are merged, and all of them are submitted together through
 * the thread's io_uring. Tier files are O_DIRECT, so the request is widened
 * to 4 KiB alignment in a per-thread bounce buffer; a write whose edges are
 * unaligned reads those edge blocks first (read-modify-write).
 *
 * Ordering, so that a crash never exposes wrong data:
 *  - a chunk slot that is newly allocated and only partly written is punched
 *    first, so its unwritten bytes read as zeros whatever was there before;
 *  - new map entries and a size extension are committed (to the WAL, not
 *    synced) before the data is written, so the map never misses data that
 *    write() acknowledged; if the data write fails they are rolled back;
 *  - freeing commits the map change first and punches the slots after.
 * Overwriting a mapped chunk writes no metadata at all (times stay in memory
 * until fsync, close or eviction).
 *
 * Locks: in->io is shared by reads and writes and exclusive for truncate,
 * punch and fallocate; writes also hold the stripe locks of their chunks,
 * which serialises read-modify-write against other writes to those chunks.
 */
#include "fs/vol_int.h"
#include "tiers/zchunk.h"
#include "utils/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_OPS ((SILT_IOBUF / SILT_ALIGN) + 4)

/* ---- chunk table ---- */

uint8_t ct_get(const struct chunk_table *ct, uint64_t k)
{
	struct ct_top *t = atomic_load_explicit(&((struct chunk_table *)ct)->top, memory_order_acquire);
	uint64_t p = k >> CT_PAGE_SHIFT;
	uint8_t *pg;

	if (!t || p >= t->n)
		return 0;
	pg = atomic_load_explicit(&t->pages[p], memory_order_acquire);
	return pg ? __atomic_load_n(&pg[k & (CT_PAGE - 1)], __ATOMIC_RELAXED) : 0;
}

int ct_set(struct chunk_table *ct, uint64_t k, uint8_t val)
{
	struct ct_top *t = atomic_load_explicit(&ct->top, memory_order_relaxed);
	uint64_t p = k >> CT_PAGE_SHIFT;
	uint8_t *pg;

	if (!t || p >= t->n) {
		if (!val)
			return 0;
		uint64_t n = t ? t->n : 16;
		while (n <= p)
			n *= 2;
		struct ct_top *nt = calloc(1, sizeof(*nt) + n * sizeof(nt->pages[0]));
		if (!nt)
			return -ENOMEM;
		nt->n = n;
		if (t)
			for (uint64_t i = 0; i < t->n; i++)
				atomic_store_explicit(&nt->pages[i], atomic_load(&t->pages[i]),
						      memory_order_relaxed);
		nt->retired = t;
		atomic_store_explicit(&ct->top, nt, memory_order_release);
		t = nt;
	}
	pg = atomic_load_explicit(&t->pages[p], memory_order_relaxed);
	if (!pg) {
		if (!val)
			return 0;
		pg = calloc(1, CT_PAGE);
		if (!pg)
			return -ENOMEM;
		atomic_store_explicit(&t->pages[p], pg, memory_order_release);
	}
	__atomic_store_n(&pg[k & (CT_PAGE - 1)], val, __ATOMIC_RELAXED);
	return 0;
}

void ct_free(struct chunk_table *ct)
{
	struct ct_top *t = atomic_load(&ct->top);
	if (!t)
		return;
	for (uint64_t i = 0; i < t->n; i++)
		free(atomic_load(&t->pages[i]));
	while (t) {
		struct ct_top *r = t->retired;
		free(t);
		t = r;
	}
	atomic_store(&ct->top, NULL);
}

uint64_t ct_next_mapped(const struct chunk_table *ct, uint64_t k)
{
	struct ct_top *t = atomic_load_explicit(&((struct chunk_table *)ct)->top, memory_order_acquire);
	if (!t)
		return UINT64_MAX;
	for (uint64_t p = k >> CT_PAGE_SHIFT; p < t->n; p++) {
		uint8_t *pg = atomic_load_explicit(&t->pages[p], memory_order_acquire);
		if (!pg)
			continue;
		uint64_t i = (p == k >> CT_PAGE_SHIFT) ? (k & (CT_PAGE - 1)) : 0;
		for (; i < CT_PAGE; i++)
			if (__atomic_load_n(&pg[i], __ATOMIC_RELAXED))
				return (p << CT_PAGE_SHIFT) + i;
	}
	return UINT64_MAX;
}

uint64_t ct_last_mapped(const struct chunk_table *ct)
{
	struct ct_top *t = atomic_load_explicit(&((struct chunk_table *)ct)->top, memory_order_acquire);
	if (!t)
		return UINT64_MAX;
	for (uint64_t p = t->n; p-- > 0;) {
		uint8_t *pg = atomic_load_explicit(&t->pages[p], memory_order_acquire);
		if (!pg)
			continue;
		for (uint64_t i = CT_PAGE; i-- > 0;)
			if (__atomic_load_n(&pg[i], __ATOMIC_RELAXED))
				return (p << CT_PAGE_SHIFT) + i;
	}
	return UINT64_MAX;
}

/* ---- tier files ---- */

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

static uint64_t slot_off(const struct silt_vol *v, uint64_t k)
{
	return (k % v->chunks_per_seg) << v->chunk_shift;
}

/* fd of the tier file that holds chunk k on tier id tid. */
static int chunk_fd(struct silt_vol *v, struct inode *in, int tid, uint64_t k, int create)
{
	unsigned seg = (unsigned)(k / v->chunks_per_seg);
	_Atomic int (*fds)[SILT_SEG_MAX] = atomic_load(&in->fds);
	int fd;

	if (seg >= SILT_SEG_MAX)
		return -EFBIG;
	if (fds && (fd = atomic_load(&fds[tid][seg])) >= 0)
		return fd;
	pthread_mutex_lock(&in->fd_lock);
	fds = atomic_load(&in->fds);
	if (!fds) {
		fds = malloc(sizeof(*fds) * SILT_MAX_TIERS);
		if (!fds) {
			pthread_mutex_unlock(&in->fd_lock);
			return -ENOMEM;
		}
		for (int t = 0; t < SILT_MAX_TIERS; t++)
			for (int s = 0; s < SILT_SEG_MAX; s++)
				atomic_init(&fds[t][s], -1);
		atomic_store(&in->fds, fds);
	}
	fd = atomic_load(&fds[tid][seg]);
	if (fd < 0) {
		fd = tier_open_file(v->tier_by_id[tid], in->ino, seg, create);
		if (fd >= 0)
			atomic_store(&fds[tid][seg], fd);
	}
	pthread_mutex_unlock(&in->fd_lock);
	return fd;
}

void data_quiesce(struct inode *in)
{
	while (atomic_load(&in->aio_inflight))
		usleep(20);
}

void data_close_fds(struct silt_vol *v, struct inode *in)
{
	data_quiesce(in);
	_Atomic int (*fds)[SILT_SEG_MAX] = atomic_exchange(&in->fds, NULL);
	if (!fds)
		return;
	for (int t = 0; t < SILT_MAX_TIERS; t++)
		for (int s = 0; s < SILT_SEG_MAX; s++)
			if (atomic_load(&fds[t][s]) >= 0)
				close(atomic_load(&fds[t][s]));
	free((void *)fds);
}

/* Queue an I/O on chunk k's slot, merging with the previous op when it
 * continues it on the same file. */
static int queue_io(struct silt_vol *v, struct inode *in, struct tier_io *ops, unsigned *n,
		    int tid, uint64_t k, uint32_t in_chunk, void *buf, uint32_t len, int write)
{
	int fd = chunk_fd(v, in, tid, k, write);
	uint64_t off = slot_off(v, k) + in_chunk;

	if (fd < 0)
		return fd;
	if (*n) {
		struct tier_io *p = &ops[*n - 1];
		if (p->fd == fd && p->off + p->len == off && (char *)p->buf + p->len == (char *)buf) {
			p->len += len;
			return 0;
		}
	}
	if (*n == MAX_OPS)
		return -E2BIG;
	ops[(*n)++] = (struct tier_io){ .fd = fd, .write = write, .off = off, .buf = buf, .len = len };
	return 0;
}

static int punch(int fd, uint64_t off, uint64_t len)
{
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
		return -errno;
	return 0;
}

/* Punch chunk k's slot [from, from+len) on tier tid; a missing file is fine. */
static int punch_chunk(struct silt_vol *v, struct inode *in, int tid, uint64_t k,
		       uint64_t from, uint64_t len)
{
	int fd = chunk_fd(v, in, tid, k, 0);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	return punch(fd, slot_off(v, k) + from, len);
}

/* Operator-visible access counters; the predictor's recorder hooks in here
 * (inode, first and last chunk, op). */
static void note_access(struct silt_vol *v, struct inode *in, uint64_t k0, uint64_t k1,
			int write, size_t bytes)
{
	(void)in; (void)k0; (void)k1;
	if (write) {
		atomic_fetch_add_explicit(&v->writes, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&v->write_bytes, bytes, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&v->reads, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&v->read_bytes, bytes, memory_order_relaxed);
	}
}

/* ---- compressed chunks: always read and rewritten whole ---- */

static int read_zc(struct silt_vol *v, struct inode *in, struct silt_ioctx *ctx, uint64_t k,
		   uint8_t e, uint64_t from, char *dst, uint64_t len)
{
	char *raw = silt_ioctx_scratch(ctx, 1, v->chunk_size);
	int fd = chunk_fd(v, in, ct_tier(e), k, 0);
	int r;

	if (!raw)
		return -ENOMEM;
	if (fd < 0)
		return fd;
	r = zchunk_read(ctx, fd, slot_off(v, k), v->chunk_size, !!(e & CT_PLAIN), raw);
	if (r == -EIO)
		log_err("inode %llu chunk %llu on tier %s is corrupt", (unsigned long long)in->ino,
			(unsigned long long)k, tier_name(v->tier_by_id[ct_tier(e)]));
	if (!r)
		memcpy(dst, raw + from, len);
	return r;
}

/* Store raw as chunk k's new content and record how it was stored.
 * locked: the caller already holds in->lock. */
static int store_zc(struct silt_vol *v, struct inode *in, struct silt_ioctx *ctx, uint64_t k,
		    int tid, const char *raw, int locked)
{
	struct zchunk_info zi;
	struct chunk_rec cr = { .tier = (uint8_t)tid };
	uint8_t key[16];
	int fd = chunk_fd(v, in, tid, k, 1), r;

	if (fd < 0)
		return fd;
	r = zchunk_write(ctx, fd, slot_off(v, k), v->chunk_size, v->zlevel[tid], raw, &zi);
	if (r)
		return r;
	cr.flags = zi.plain ? CHUNK_PLAIN : 0;
	cr.stored_len = zi.stored_len;
	cr.csum = zi.csum;
	struct meta_batch *b = meta_batch_new();
	if (!b)
		return -ENOMEM;
	key_chunk(key, in->ino, k);
	meta_put(b, v->meta, CF_CHUNKS, key, 16, &cr, sizeof(cr));
	r = meta_commit(v->meta, b, 0);
	meta_batch_free(b);
	if (!r) {
		if (!locked)
			pthread_mutex_lock(&in->lock);
		ct_set(&in->ct, k, (uint8_t)((tid + 1) | (zi.plain ? CT_PLAIN : 0)));
		if (!locked)
			pthread_mutex_unlock(&in->lock);
	}
	return r;
}

/* Load chunk k whole into the thread's raw buffer (zeros for a new one). */
static char *load_zc(struct silt_vol *v, struct inode *in, struct silt_ioctx *ctx, uint64_t k,
		     int fresh, int *err)
{
	char *raw = silt_ioctx_scratch(ctx, 1, v->chunk_size);
	uint8_t e = ct_get(&in->ct, k);

	*err = 0;
	if (!raw) {
		*err = -ENOMEM;
		return NULL;
	}
	if (fresh) {
		memset(raw, 0, v->chunk_size);
		return raw;
	}
	int fd = chunk_fd(v, in, ct_tier(e), k, 0);
	*err = fd < 0 ? fd : zchunk_read(ctx, fd, slot_off(v, k), v->chunk_size, !!(e & CT_PLAIN), raw);
	return *err ? NULL : raw;
}

static int write_zc(struct silt_vol *v, struct inode *in, struct silt_ioctx *ctx, uint64_t k,
		    int fresh, const char *data, uint64_t off, uint64_t end)
{
	uint64_t cs = k << v->chunk_shift, ce = cs + v->chunk_size;
	uint64_t from = MAX(off, cs), to = MIN(end, ce);
	int r;
	char *raw = load_zc(v, in, ctx, k, fresh, &r);

	if (!raw)
		return r;
	memcpy(raw + (from - cs), data + (from - off), to - from);
	return store_zc(v, in, ctx, k, ct_tier(ct_get(&in->ct, k)), raw, 0);
}

/* Make [from, from+len) of chunk k read as zeros: a punch on a plain tier,
 * a rewrite on a compressed one. */
static int zero_in_chunk(struct silt_vol *v, struct inode *in, uint64_t k, uint64_t from, uint64_t len)
{
	uint8_t e = ct_get(&in->ct, k);
	int tid = ct_tier(e), r;

	if (!v->zlevel[tid] || (from == 0 && len == v->chunk_size))
		return punch_chunk(v, in, tid, k, from, len);
	struct silt_ioctx *ctx = vol_ioctx(v);
	if (!ctx)
		return -ENOMEM;
	char *raw = load_zc(v, in, ctx, k, 0, &r);
	if (!raw)
		return r;
	memset(raw + from, 0, len);
	return store_zc(v, in, ctx, k, tid, raw, 1);
}

/* ---- read ---- */

ssize_t vol_read(struct silt_vol *v, struct silt_file *f, size_t size, off_t off, const void **data)
{
	struct inode *in = f->ino;
	struct silt_ioctx *ctx = vol_ioctx(v);
	struct tier_io ops[MAX_OPS];
	unsigned nops = 0;
	size_t buflen;
	char *buf;
	uint64_t fsize, len, a0, a1;
	int r = 0;

	vol_io_flush(v); /* about to wait: let held asynchronous I/O go first */
	if (!ctx)
		return -ENOMEM;
	if (off < 0)
		return -EINVAL;
	buf = silt_ioctx_buf(ctx, &buflen);
	size = MIN(size, (size_t)SILT_IOBUF);

	pthread_rwlock_rdlock(&in->io);
	pthread_mutex_lock(&in->lock);
	fsize = in->rec.size;
	pthread_mutex_unlock(&in->lock);
	if ((uint64_t)off >= fsize) {
		pthread_rwlock_unlock(&in->io);
		return 0;
	}
	len = MIN((uint64_t)size, fsize - (uint64_t)off);
	a0 = (uint64_t)off & ~(uint64_t)(SILT_ALIGN - 1);
	a1 = ((uint64_t)off + len + SILT_ALIGN - 1) & ~(uint64_t)(SILT_ALIGN - 1);

	for (uint64_t pos = a0; pos < a1 && !r;) {
		uint64_t k = pos >> v->chunk_shift;
		uint64_t cend = MIN((k + 1) << v->chunk_shift, a1);
		uint8_t e = ct_get(&in->ct, k);
		if (!e)
			memset(buf + (pos - a0), 0, cend - pos);
		else if (v->zlevel[ct_tier(e)])
			r = read_zc(v, in, ctx, k, e, pos - (k << v->chunk_shift), buf + (pos - a0), cend - pos);
		else
			r = queue_io(v, in, ops, &nops, ct_tier(e), k, (uint32_t)(pos - (k << v->chunk_shift)),
				     buf + (pos - a0), (uint32_t)(cend - pos), 0);
		pos = cend;
	}
	if (!r && nops)
		r = tier_io_run(ctx, ops, nops);
	pthread_rwlock_unlock(&in->io);
	if (r) {
		log_err("inode %llu: read %llu+%zu failed: %s", (unsigned long long)in->ino,
			(unsigned long long)off, size, strerror(-r));
		return r == -ENOENT ? -EIO : r;
	}
	note_access(v, in, a0 >> v->chunk_shift, (a1 - 1) >> v->chunk_shift, 0, len);
	*data = buf + ((uint64_t)off - a0);
	return (ssize_t)len;
}

/* ---- write ---- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static uint32_t stripe_of(uint64_t ino, uint64_t k)
{
	return (uint32_t)(((ino * 0x9E3779B97F4A7C15ull) ^ k) % SILT_STRIPES);
}

static unsigned lock_stripes(struct silt_vol *v, uint64_t ino, uint64_t k0, uint64_t k1, uint32_t *idx)
{
	unsigned n = 0;
	for (uint64_t k = k0; k <= k1; k++)
		idx[n++] = stripe_of(ino, k);
	qsort(idx, n, sizeof(*idx), cmp_u32);
	unsigned u = 0;
	for (unsigned i = 0; i < n; i++)
		if (!u || idx[u - 1] != idx[i])
			idx[u++] = idx[i];
	for (unsigned i = 0; i < u; i++)
		pthread_mutex_lock(&v->stripes[idx[i]]);
	return u;
}

static void unlock_stripes(struct silt_vol *v, const uint32_t *idx, unsigned n)
{
	while (n--)
		pthread_mutex_unlock(&v->stripes[idx[n]]);
}

/* Choose a tier for a new chunk: the fastest under its high watermark, else
 * the fastest with any room at all. Returns the tier id or -ENOSPC. */
static int place_new_chunk(struct silt_vol *v)
{
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < v->ntiers; i++)
			if (tier_reserve(v->tiers[i], pass) == 0)
				return tier_id(v->tiers[i]);
	return -ENOSPC;
}

static void stage_chunk(struct silt_vol *v, struct meta_batch *b, uint64_t ino, uint64_t k, int tid)
{
	uint8_t key[16];
	struct chunk_rec cr = { .tier = (uint8_t)tid };
	key_chunk(key, ino, k);
	meta_put(b, v->meta, CF_CHUNKS, key, 16, &cr, sizeof(cr));
}

static void unstage_chunk(struct silt_vol *v, struct meta_batch *b, uint64_t ino, uint64_t k)
{
	uint8_t key[16];
	key_chunk(key, ino, k);
	meta_del(b, v->meta, CF_CHUNKS, key, 16);
}

/* Fill one edge block of the bounce buffer with what the file holds there. */
static int read_edge(struct silt_vol *v, struct inode *in, struct silt_ioctx *ctx,
		     uint64_t blk, char *dst, const uint8_t *newtier, uint64_t k0)
{
	uint64_t k = blk >> v->chunk_shift;
	uint8_t e = ct_get(&in->ct, k);
	struct tier_io op;
	unsigned n = 0;
	int r;

	if (!e || newtier[k - k0] || v->zlevel[ct_tier(e)]) {
		/* nothing there yet, or a compressed chunk, which is rewritten
		 * whole from its own copy and never from the bounce buffer */
		memset(dst, 0, SILT_ALIGN);
		return 0;
	}
	r = queue_io(v, in, &op, &n, ct_tier(e), k, (uint32_t)(blk - (k << v->chunk_shift)), dst, SILT_ALIGN, 0);
	return r ? r : tier_io_run(ctx, &op, 1);
}

static ssize_t write_piece(struct silt_vol *v, struct inode *in, const char *data, size_t size,
			   uint64_t off, int *retry)
{
	struct silt_ioctx *ctx = vol_ioctx(v);
	uint64_t a0, a1, k0, k1, end = off + size, old_size = 0;
	uint8_t newtier[MAX_OPS];
	uint32_t stripes[MAX_OPS];
	struct tier_io ops[MAX_OPS];
	unsigned nstripes, nops = 0, nnew = 0;
	uint32_t dirty_mask = 0;
	int extended = 0, r = 0;
	size_t buflen;
	char *buf;

	if (!ctx)
		return -ENOMEM;
	buf = silt_ioctx_buf(ctx, &buflen);
	a0 = off & ~(uint64_t)(SILT_ALIGN - 1);
	a1 = (end + SILT_ALIGN - 1) & ~(uint64_t)(SILT_ALIGN - 1);
	k0 = a0 >> v->chunk_shift;
	k1 = (a1 - 1) >> v->chunk_shift;

	pthread_rwlock_rdlock(&in->io);
	nstripes = lock_stripes(v, in->ino, k0, k1, stripes);
	/* an asynchronous overwrite of these chunks may still be in flight:
	 * a read-modify-write must not read under it */
	for (unsigned i = 0; i < nstripes; i++)
		while (atomic_load(&v->stripe_aio[stripes[i]]))
			usleep(20);

	/* 1. place every chunk of the range that has no home yet */
	for (uint64_t k = k0; k <= k1; k++) {
		newtier[k - k0] = 0;
		if (ct_get(&in->ct, k))
			continue;
		int tid = place_new_chunk(v);
		if (tid < 0) {
			r = tid;
			goto undo_reserve;
		}
		newtier[k - k0] = (uint8_t)(tid + 1);
		nnew++;
	}

	/* 2. bounce buffer: unaligned edges first, then the caller's bytes */
	if (off != a0)
		r = read_edge(v, in, ctx, a0, buf, newtier, k0);
	if (!r && end != a1 && (a1 - SILT_ALIGN != a0 || off == a0))
		r = read_edge(v, in, ctx, a1 - SILT_ALIGN, buf + (a1 - SILT_ALIGN - a0), newtier, k0);
	if (r)
		goto undo_reserve;
	memcpy(buf + (off - a0), data, size);

	/* 3. a new chunk that this write does not cover whole must read zeros
	 *    outside the write: punch whatever an interrupted past left there */
	for (uint64_t k = k0; k <= k1; k++) {
		uint64_t cs = k << v->chunk_shift, ce = cs + v->chunk_size;
		if (newtier[k - k0] && (a0 > cs || a1 < ce)) {
			r = punch_chunk(v, in, newtier[k - k0] - 1, k, 0, v->chunk_size);
			if (r)
				goto undo_reserve;
		}
	}

	/* 4. metadata: new chunks and a size extension, before the data */
	pthread_mutex_lock(&in->lock);
	int64_t now = silt_now_wall();
	in->rec.mtime = in->rec.ctime = now;
	if (nnew || end > in->rec.size) {
		struct meta_batch *b = meta_batch_new();
		if (!b) {
			pthread_mutex_unlock(&in->lock);
			r = -ENOMEM;
			goto undo_reserve;
		}
		for (uint64_t k = k0; k <= k1; k++)
			if (newtier[k - k0])
				stage_chunk(v, b, in->ino, k, newtier[k - k0] - 1);
		old_size = in->rec.size;
		if (end > in->rec.size) {
			in->rec.size = end;
			extended = 1;
		}
		in->rec.nchunks += nnew;
		inode_stage(v, b, in);
		r = meta_commit(v->meta, b, 0);
		meta_batch_free(b);
		if (r) {
			in->rec.nchunks -= nnew;
			if (extended)
				in->rec.size = old_size;
			in->dirty = 1;
			pthread_mutex_unlock(&in->lock);
			goto undo_reserve;
		}
		for (uint64_t k = k0; k <= k1 && !r; k++)
			if (newtier[k - k0])
				r = ct_set(&in->ct, k, newtier[k - k0]);
	} else {
		in->dirty = 1;
	}
	pthread_mutex_unlock(&in->lock);
	if (r)
		goto undo_map;

	/* 5. the data, all chunks at once */
	for (uint64_t pos = a0; pos < a1 && !r;) {
		uint64_t k = pos >> v->chunk_shift;
		uint64_t cend = MIN((k + 1) << v->chunk_shift, a1);
		int tid = ct_tier(ct_get(&in->ct, k));
		dirty_mask |= 1u << tid;
		if (v->zlevel[tid])
			r = write_zc(v, in, ctx, k, !!newtier[k - k0], data, off, end);
		else
			r = queue_io(v, in, ops, &nops, tid, k, (uint32_t)(pos - (k << v->chunk_shift)),
				     buf + (pos - a0), (uint32_t)(cend - pos), 1);
		pos = cend;
	}
	if (!r)
		r = tier_io_run(ctx, ops, nops);
	if (r)
		goto undo_map;
	atomic_fetch_or(&in->dirty_tiers, dirty_mask);
	unlock_stripes(v, stripes, nstripes);
	pthread_rwlock_unlock(&in->io);
	note_access(v, in, k0, k1, 1, size);
	return (ssize_t)size;

undo_map:
	/* The data did not make it: forget the chunks we mapped for it and the
	 * size we promised, so that nothing points at a half-written slot. */
	if (nnew) {
		struct meta_batch *b = meta_batch_new();
		pthread_mutex_lock(&in->lock);
		for (uint64_t k = k0; k <= k1; k++) {
			if (!newtier[k - k0])
				continue;
			ct_set(&in->ct, k, 0);
			if (b)
				unstage_chunk(v, b, in->ino, k);
			punch_chunk(v, in, newtier[k - k0] - 1, k, 0, v->chunk_size);
			if (r == -ENOSPC || r == -EDQUOT) {
				tier_mark_full(v->tier_by_id[newtier[k - k0] - 1]);
				*retry = 1;
			}
		}
		in->rec.nchunks -= nnew;
		if (extended && in->rec.size == end)
			in->rec.size = old_size;
		if (b) {
			inode_stage(v, b, in);
			meta_commit(v->meta, b, 0);
			meta_batch_free(b);
		}
		pthread_mutex_unlock(&in->lock);
	}
undo_reserve:
	for (uint64_t k = k0; k <= k1; k++)
		if (newtier[k - k0])
			tier_release(v->tier_by_id[newtier[k - k0] - 1], 1);
	unlock_stripes(v, stripes, nstripes);
	pthread_rwlock_unlock(&in->io);
	if (r != -ENOSPC)
		log_err("inode %llu: write %llu+%zu failed: %s", (unsigned long long)in->ino,
			(unsigned long long)off, size, strerror(-r));
	return r;
}

ssize_t vol_write(struct silt_vol *v, struct silt_file *f, const void *buf, size_t size, off_t off)
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
		if (r < 0 && retry) /* a tier's filesystem filled up under us: try the others */
			r = write_piece(v, f->ino, (const char *)buf + done, n, (uint64_t)off + done, &retry);
		if (r < 0)
			return done ? (ssize_t)done : r;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* ---- asynchronous path ----
 *
 * For I/O of at most AIO_MAX bytes, 4 KiB aligned (reads are widened), on
 * chunks that already live on one uncompressed tier, in one tier file run:
 * a pooled request carries its own aligned buffer, the FUSE worker submits
 * and returns, and the completion thread replies. That is the whole
 * random-I/O workload of a VM image, and it spares a worker two sleeps per
 * request. The inode's aio_inflight keeps truncate and friends out (they
 * drain it under the exclusive lock); per-stripe counters keep a
 * read-modify-write from reading under an overwrite in flight. */

void vol_io_hold(struct silt_vol *v, int hold)
{
	silt_aio_hold(v->aio, hold);
}

void vol_io_flush(struct silt_vol *v)
{
	silt_aio_flush(v->aio);
}

/* Two pools: many small requests (random I/O of a VM) and a few large
 * ones (sequential streams); all memory is allocated once and reused. */
#define AIO_SMALL (64u << 10)
#define AIO_MAX SILT_IOBUF
static const uint32_t aio_bufsize[2] = { AIO_SMALL, AIO_MAX };
static const unsigned aio_poolsize[2] = { SILT_VOL_ASYNC_DEPTH, 16 };

struct aio_req {
	struct silt_aio_op op;
	struct silt_vol *v;
	struct inode *in;
	char *buf;               /* aio_bufsize[cls] + SILT_ALIGN, aligned */
	int cls;                 /* which pool */
	uint32_t skew, len;      /* caller's bytes within buf */
	int write;
	uint64_t k0, k1;
	vol_io_done done;
	void *arg;
	struct aio_req *next;
};

/* A request whose buffer holds len bytes (plus alignment slack). */
static struct aio_req *aio_get(struct silt_vol *v, uint64_t len)
{
	int cls = len > AIO_SMALL;
	struct aio_req *rq;

	pthread_mutex_lock(&v->aio_lock);
	rq = v->aio_free[cls];
	if (rq) {
		v->aio_free[cls] = rq->next;
	} else if (v->aio_count[cls] < aio_poolsize[cls] && (rq = calloc(1, sizeof(*rq)))) {
		if ((rq->buf = silt_aligned_alloc(aio_bufsize[cls] + SILT_ALIGN))) {
			v->aio_count[cls]++;
			rq->cls = cls;
		} else {
			free(rq);
			rq = NULL;
		}
	}
	pthread_mutex_unlock(&v->aio_lock);
	return rq;
}

static void aio_put(struct silt_vol *v, struct aio_req *rq)
{
	pthread_mutex_lock(&v->aio_lock);
	rq->next = v->aio_free[rq->cls];
	v->aio_free[rq->cls] = rq;
	pthread_mutex_unlock(&v->aio_lock);
}

void data_aio_pool_free(struct silt_vol *v)
{
	for (int cls = 0; cls < 2; cls++) {
		while (v->aio_free[cls]) {
			struct aio_req *rq = v->aio_free[cls];
			v->aio_free[cls] = rq->next;
			free(rq->buf);
			free(rq);
		}
	}
}

/* The one tier file run that holds chunks k0..k1, or -EAGAIN. */
static int single_run(struct silt_vol *v, struct inode *in, uint64_t k0, uint64_t k1, int *tid)
{
	uint8_t e0 = ct_get(&in->ct, k0);

	if (!e0 || v->zlevel[ct_tier(e0)] || k0 / v->chunks_per_seg != k1 / v->chunks_per_seg)
		return -EAGAIN;
	for (uint64_t k = k0 + 1; k <= k1; k++)
		if (ct_tier(ct_get(&in->ct, k)) != ct_tier(e0))
			return -EAGAIN;
	*tid = ct_tier(e0);
	return 0;
}

static void aio_complete(void *arg, int res)
{
	struct aio_req *rq = arg;
	struct silt_vol *v = rq->v;

	if (res)
		log_err("inode %llu: asynchronous %s failed: %s", (unsigned long long)rq->in->ino,
			rq->write ? "write" : "read", strerror(-res));
	rq->done(rq->arg, rq->write ? NULL : rq->buf + rq->skew, res ? res : (ssize_t)rq->len);
	if (rq->write)
		for (uint64_t k = rq->k0; k <= rq->k1; k++)
			atomic_fetch_sub(&v->stripe_aio[stripe_of(rq->in->ino, k)], 1);
	atomic_fetch_sub(&rq->in->aio_inflight, 1);
	aio_put(v, rq);
}

static int start_aio(struct silt_vol *v, struct inode *in, struct aio_req *rq, int tid,
		     uint64_t a0, uint64_t a1)
{
	int fd = chunk_fd(v, in, tid, rq->k0, 0);

	if (fd < 0)
		return fd;
	uint64_t off = slot_off(v, rq->k0) + (a0 - (rq->k0 << v->chunk_shift));
	return silt_aio_submit(v->aio, &rq->op, fd, rq->write, off, rq->buf, (uint32_t)(a1 - a0),
			       aio_complete, rq);
}

int vol_read_async(struct silt_vol *v, struct silt_file *f, size_t size, off_t off,
		   vol_io_done done, void *arg)
{
	struct inode *in = f->ino;
	struct aio_req *rq;
	uint64_t a0, a1, len;
	int tid, r = -EAGAIN;

	if (off < 0 || size == 0 || size > AIO_MAX)
		return -EAGAIN;
	pthread_rwlock_rdlock(&in->io);
	pthread_mutex_lock(&in->lock);
	uint64_t fsize = in->rec.size;
	pthread_mutex_unlock(&in->lock);
	if ((uint64_t)off >= fsize)
		goto out;
	len = MIN((uint64_t)size, fsize - (uint64_t)off);
	a0 = (uint64_t)off & ~(uint64_t)(SILT_ALIGN - 1);
	a1 = ((uint64_t)off + len + SILT_ALIGN - 1) & ~(uint64_t)(SILT_ALIGN - 1);
	if (single_run(v, in, a0 >> v->chunk_shift, (a1 - 1) >> v->chunk_shift, &tid))
		goto out;
	if (!(rq = aio_get(v, a1 - a0)))
		goto out;
	*rq = (struct aio_req){ .v = v, .in = in, .buf = rq->buf, .cls = rq->cls,
				.skew = (uint32_t)((uint64_t)off - a0),
				.len = (uint32_t)len, .k0 = a0 >> v->chunk_shift,
				.k1 = (a1 - 1) >> v->chunk_shift, .done = done, .arg = arg };
	atomic_fetch_add(&in->aio_inflight, 1);
	r = start_aio(v, in, rq, tid, a0, a1);
	if (r) {
		atomic_fetch_sub(&in->aio_inflight, 1);
		aio_put(v, rq);
		r = -EAGAIN;
	} else {
		note_access(v, in, rq->k0, rq->k1, 0, len);
	}
out:
	pthread_rwlock_unlock(&in->io);
	return r;
}

int vol_write_async(struct silt_vol *v, struct silt_file *f, const void *buf, size_t size,
		    off_t off, vol_io_done done, void *arg)
{
	struct inode *in = f->ino;
	struct aio_req *rq;
	uint64_t k0, k1;
	int tid, r = -EAGAIN;

	/* whole blocks inside the file on chunks that have a home: no
	 * read-modify-write, no allocation, no size change, no metadata */
	if (off < 0 || size == 0 || size > AIO_MAX || ((uint64_t)off | size) & (SILT_ALIGN - 1))
		return -EAGAIN;
	k0 = (uint64_t)off >> v->chunk_shift;
	k1 = ((uint64_t)off + size - 1) >> v->chunk_shift;
	pthread_rwlock_rdlock(&in->io);
	pthread_mutex_lock(&in->lock);
	if ((uint64_t)off + size > in->rec.size || single_run(v, in, k0, k1, &tid)) {
		pthread_mutex_unlock(&in->lock);
		goto out;
	}
	in->rec.mtime = in->rec.ctime = silt_now_wall();
	in->dirty = 1;
	pthread_mutex_unlock(&in->lock);
	if (!(rq = aio_get(v, size)))
		goto out;
	*rq = (struct aio_req){ .v = v, .in = in, .buf = rq->buf, .cls = rq->cls, .len = (uint32_t)size, .write = 1,
				.k0 = k0, .k1 = k1, .done = done, .arg = arg };
	memcpy(rq->buf, buf, size);
	/* announce the write on its stripes; a writer holding a stripe lock
	 * is mid read-modify-write and must finish first */
	for (uint64_t k = k0; k <= k1; k++) {
		uint32_t s = stripe_of(in->ino, k);
		pthread_mutex_lock(&v->stripes[s]);
		atomic_fetch_add(&v->stripe_aio[s], 1);
		pthread_mutex_unlock(&v->stripes[s]);
	}
	atomic_fetch_or(&in->dirty_tiers, 1u << tid);
	atomic_fetch_add(&in->aio_inflight, 1);
	r = start_aio(v, in, rq, tid, (uint64_t)off, (uint64_t)off + size);
	if (r) {
		for (uint64_t k = k0; k <= k1; k++)
			atomic_fetch_sub(&v->stripe_aio[stripe_of(in->ino, k)], 1);
		atomic_fetch_sub(&in->aio_inflight, 1);
		aio_put(v, rq);
		r = -EAGAIN;
	} else {
		note_access(v, in, k0, k1, 1, size);
	}
out:
	pthread_rwlock_unlock(&in->io);
	return r;
}

/* ---- freeing ---- */

/* Free chunks [from, to): map entries into b, tier space released, slots
 * punched (after the caller's commit would be nicer, but a punched slot
 * behind a still-mapped entry only reads zeros for data being deleted). */
int data_free_range(struct silt_vol *v, struct inode *in, struct meta_batch *b,
		    uint64_t from, uint64_t to)
{
	uint8_t ks[16], ke[16];
	uint64_t freed = 0;
	int r = 0;

	if (from >= to)
		return 0;
	for (uint64_t k = ct_next_mapped(&in->ct, from); k < to; k = ct_next_mapped(&in->ct, k)) {
		int tid = ct_tier(ct_get(&in->ct, k));
		uint64_t run = k;
		/* one punch per run of chunks on the same tier file */
		while (run + 1 < to && ct_tier(ct_get(&in->ct, run + 1)) == tid &&
		       (run + 1) % v->chunks_per_seg != 0)
			run++;
		int pr = punch_chunk(v, in, tid, k, 0, (run - k + 1) << v->chunk_shift);
		if (pr && !r)
			r = pr;
		for (uint64_t c = k; c <= run; c++)
			ct_set(&in->ct, c, 0);
		tier_release(v->tier_by_id[tid], run - k + 1);
		freed += run - k + 1;
		k = run + 1;
	}
	key_chunk(ks, in->ino, from);
	key_chunk(ke, in->ino, to);
	meta_del_range(b, v->meta, CF_CHUNKS, ks, 16, ke, 16);
	in->rec.nchunks -= MIN(freed, in->rec.nchunks);
	return r;
}

int data_destroy(struct silt_vol *v, struct inode *in, struct meta_batch *b)
{
	uint64_t counts[SILT_MAX_TIERS] = { 0 }, last;
	uint8_t ks[16], ke[16];
	int r = inode_load_chunks(v, in);

	if (r)
		return r;
	for (uint64_t k = ct_next_mapped(&in->ct, 0); k != UINT64_MAX; k = ct_next_mapped(&in->ct, k + 1))
		counts[ct_tier(ct_get(&in->ct, k))]++;
	last = ct_last_mapped(&in->ct);
	data_close_fds(v, in);
	for (int t = 0; t < SILT_MAX_TIERS; t++) {
		if (!v->tier_by_id[t])
			continue;
		tier_release(v->tier_by_id[t], counts[t]);
		int rr = tier_remove_inode(v->tier_by_id[t], in->ino,
					   last == UINT64_MAX ? 0 : (unsigned)(last / v->chunks_per_seg));
		if (rr && !r)
			r = rr;
	}
	ct_free(&in->ct);
	key_chunk(ks, in->ino, 0);
	key_chunk(ke, in->ino + 1, 0);
	meta_del_range(b, v->meta, CF_CHUNKS, ks, 16, ke, 16);
	in->rec.nchunks = 0;
	return r;
}

int data_truncate(struct silt_vol *v, struct inode *in, uint64_t size)
{
	struct meta_batch *b;
	uint64_t old;
	int r;

	if (size > SILT_MAX_FILE_SIZE)
		return -EFBIG;
	if (!(b = meta_batch_new()))
		return -ENOMEM;
	pthread_rwlock_wrlock(&in->io);
	data_quiesce(in);
	pthread_mutex_lock(&in->lock);
	r = inode_load_chunks(v, in);
	if (r)
		goto out;
	old = in->rec.size;
	if (size < old) {
		uint64_t first = (size + v->chunk_size - 1) >> v->chunk_shift;
		uint64_t last = ct_last_mapped(&in->ct);
		if (last != UINT64_MAX && last >= first)
			r = data_free_range(v, in, b, first, last + 1);
		/* bytes past the new end inside the last chunk must read as
		 * zeros if the file grows again */
		uint64_t tail = size & (v->chunk_size - 1);
		uint8_t e = tail ? ct_get(&in->ct, size >> v->chunk_shift) : 0;
		if (!r && e)
			r = zero_in_chunk(v, in, size >> v->chunk_shift, tail, v->chunk_size - tail);
		if (r)
			goto out;
	}
	in->rec.size = size;
	in->rec.mtime = in->rec.ctime = silt_now_wall();
	inode_stage(v, b, in);
	r = meta_commit(v->meta, b, 0);
out:
	pthread_mutex_unlock(&in->lock);
	pthread_rwlock_unlock(&in->io);
	meta_batch_free(b);
	return r;
}

/* ---- fallocate ---- */

/* Allocate the holes of [off, off+len). Works in windows of FALLOC_WINDOW
 * chunks, each one committed on its own: an ENOSPC keeps what earlier
 * windows got (as ext4 does) and rolls back only the current window. */
#define FALLOC_WINDOW 4096
static int falloc_range(struct silt_vol *v, struct inode *in, uint64_t off, uint64_t len, int keep)
{
	uint64_t k0 = off >> v->chunk_shift, k1 = (off + len - 1) >> v->chunk_shift;
	uint8_t placed[FALLOC_WINDOW];
	int r = 0;

	for (uint64_t w = k0; w <= k1 && !r; w += FALLOC_WINDOW) {
		uint64_t we = MIN(k1 + 1, w + FALLOC_WINDOW), nnew = 0;
		struct meta_batch *b = meta_batch_new();
		if (!b)
			return -ENOMEM;
		memset(placed, 0, sizeof(placed));
		for (uint64_t k = w; k < we && !r; k++) {
			if (ct_get(&in->ct, k))
				continue;
			int tid = place_new_chunk(v);
			if (tid < 0) {
				r = tid;
				break;
			}
			placed[k - w] = (uint8_t)(tid + 1);
			int fd = chunk_fd(v, in, tid, k, 1);
			/* a fresh slot must be zeros; then really reserve it */
			r = fd < 0 ? fd : punch(fd, slot_off(v, k), v->chunk_size);
			if (!r && fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)slot_off(v, k), v->chunk_size) < 0)
				r = -errno;
			if (r == -ENOSPC)
				tier_mark_full(v->tier_by_id[tid]);
			stage_chunk(v, b, in->ino, k, tid);
			nnew++;
		}
		if (!r) {
			uint64_t old_n = in->rec.nchunks, old_size = in->rec.size;
			in->rec.nchunks += nnew;
			if (!keep && we == k1 + 1 && off + len > in->rec.size)
				in->rec.size = off + len;
			in->rec.ctime = silt_now_wall();
			inode_stage(v, b, in);
			r = meta_commit(v->meta, b, 0);
			if (r) {
				in->rec.nchunks = old_n;
				in->rec.size = old_size;
			}
		}
		for (uint64_t k = w; k < we; k++) {
			if (!placed[k - w])
				continue;
			if (!r) {
				ct_set(&in->ct, k, placed[k - w]);
				continue;
			}
			punch_chunk(v, in, placed[k - w] - 1, k, 0, v->chunk_size);
			tier_release(v->tier_by_id[placed[k - w] - 1], 1);
		}
		meta_batch_free(b);
	}
	return r;
}

static int punch_range(struct silt_vol *v, struct inode *in, uint64_t off, uint64_t len)
{
	uint64_t end = off + len, cs = v->chunk_size;
	uint64_t first_whole = (off + cs - 1) >> v->chunk_shift, end_whole = end >> v->chunk_shift;
	struct meta_batch *b = meta_batch_new();
	int r = 0;

	if (!b)
		return -ENOMEM;
	/* partial chunks at either edge: zero the bytes inside their slots */
	for (uint64_t pos = off; pos < end && !r;) {
		uint64_t k = pos >> v->chunk_shift;
		uint64_t cstart = k << v->chunk_shift, cend = MIN(cstart + cs, end);
		if (k >= first_whole && k < end_whole) {
			pos = end_whole << v->chunk_shift;
			continue;
		}
		if (ct_get(&in->ct, k))
			r = zero_in_chunk(v, in, k, pos - cstart, cend - pos);
		pos = cend;
	}
	if (!r && first_whole < end_whole)
		r = data_free_range(v, in, b, first_whole, end_whole);
	in->rec.mtime = in->rec.ctime = silt_now_wall();
	inode_stage(v, b, in);
	if (!r)
		r = meta_commit(v->meta, b, 0);
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
	pthread_rwlock_wrlock(&in->io);
	data_quiesce(in);
	pthread_mutex_lock(&in->lock);
	if (mode & FALLOC_FL_PUNCH_HOLE)
		r = punch_range(v, in, (uint64_t)off, (uint64_t)len);
	else
		r = falloc_range(v, in, (uint64_t)off, (uint64_t)len, mode & FALLOC_FL_KEEP_SIZE);
	pthread_mutex_unlock(&in->lock);
	pthread_rwlock_unlock(&in->io);
	return r;
}

/* ---- seek, fsync ---- */

off_t vol_lseek(struct silt_vol *v, struct silt_file *f, off_t off, int whence)
{
	struct inode *in = f->ino;
	uint64_t size, k, pos;
	off_t res;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (off < 0)
		return -ENXIO;
	pthread_rwlock_rdlock(&in->io);
	pthread_mutex_lock(&in->lock);
	size = in->rec.size;
	pthread_mutex_unlock(&in->lock);
	if ((uint64_t)off >= size) {
		res = -ENXIO;
	} else if (whence == SEEK_DATA) {
		k = ct_next_mapped(&in->ct, (uint64_t)off >> v->chunk_shift);
		pos = k == UINT64_MAX ? UINT64_MAX : k << v->chunk_shift;
		res = pos >= size ? -ENXIO : (off_t)MAX(pos, (uint64_t)off);
	} else {
		k = (uint64_t)off >> v->chunk_shift;
		while ((k << v->chunk_shift) < size && ct_get(&in->ct, k))
			k++;
		pos = k << v->chunk_shift;
		res = (off_t)MIN(MAX(pos, (uint64_t)off), size);
	}
	pthread_rwlock_unlock(&in->io);
	return res;
}

int vol_fsync(struct silt_vol *v, struct silt_file *f, int datasync)
{
	struct inode *in = f->ino;
	uint32_t mask = atomic_exchange(&in->dirty_tiers, 0);
	_Atomic int (*fds)[SILT_SEG_MAX] = atomic_load(&in->fds);
	int r = 0;

	/* data first, then the metadata that points at it */
	for (int t = 0; t < SILT_MAX_TIERS && fds; t++) {
		if (!(mask & (1u << t)))
			continue;
		for (int s = 0; s < SILT_SEG_MAX; s++) {
			int fd = atomic_load(&fds[t][s]);
			if (fd >= 0 && fdatasync(fd) < 0 && !r)
				r = -errno;
		}
	}
	if (r) {
		atomic_fetch_or(&in->dirty_tiers, mask);
		return r;
	}
	pthread_mutex_lock(&in->lock);
	int dirty = in->dirty;
	pthread_mutex_unlock(&in->lock);
	if (dirty && !datasync)
		return inode_persist(v, in, 1);
	return meta_sync(v->meta);
}
