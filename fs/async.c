/* The asynchronous data path.
 *
 * For reads and overwrites of at most 1 MiB, 4 KiB aligned (reads are
 * widened), on chunks that already live on one uncompressed tier, in one
 * tier file run: the whole I/O of a running VM image, random and
 * sequential. The FUSE worker pins the chunks, copies a write into pooled
 * buffers, submits to its io_uring lane and returns at once; the completion
 * thread ("silt-aio") unpins and replies. A worker never sleeps on the disk.
 *
 *   struct aio_req     one request: its pin, its buffers as an iovec (the
 *                      disk's view) and the caller's view of them (a read
 *                      starts `skew` bytes into the first buffer)
 *   struct async_pool  requests (SILT_VOL_ASYNC_DEPTH) and 64 KiB
 *                      segments, up to a bound and reused: no allocation on
 *                      the steady I/O path, a fixed memory cost. A daemon
 *                      that locks its memory (for swap) allocates them all
 *                      at mount (vol_prefault); otherwise on first use.
 *
 * A request that finds no free request or not enough segments goes to the
 * synchronous path instead, which is always safe: pins order it against
 * everything in flight, and a worker flushes its held I/O before any wait. */
#include "fs/vol_int.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SEG_SIZE (64u << 10)
#define SEG_MAX 512                  /* 32 MiB of buffers at most */

struct aio_req {
	struct silt_aio_op op;
	struct silt_vol *v;
	struct inode *in;
	struct cmap_pin pin;
	int write, tid;
	int fill;                        /* a whole-chunk read for the RAM tier */
	uint64_t fill_version;
	uint32_t len;                    /* the caller's bytes */
	int nseg, nout;
	uint64_t start_ns;               /* when the request came (its latency) */
	char *seg[SILT_AIO_IOV_MAX];
	struct iovec iov[SILT_AIO_IOV_MAX];  /* what the disk reads or writes */
	struct iovec out[SILT_AIO_IOV_MAX];  /* a read's reply */
	uint64_t k0, k1;
	vol_io_done done;
	void *arg;
	struct aio_req *next;
};

struct async_pool {
	pthread_mutex_t lock;
	struct aio_req *free_req;
	unsigned nreq;
	char *free_seg[SEG_MAX];
	unsigned nfree, nseg;
};

int async_pool_new(struct async_pool **out)
{
	struct async_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

int async_pool_fill(struct async_pool *p)
{
	int r = 0;

	pthread_mutex_lock(&p->lock);
	while (p->nseg < SEG_MAX) {
		char *s = silt_aligned_alloc(SEG_SIZE);
		if (!s) {
			r = -ENOMEM;
			break;
		}
		memset(s, 0, SEG_SIZE);
		p->free_seg[p->nfree++] = s;
		p->nseg++;
	}
	while (!r && p->nreq < SILT_VOL_ASYNC_DEPTH) {
		struct aio_req *rq = calloc(1, sizeof(*rq));
		if (!rq) {
			r = -ENOMEM;
			break;
		}
		rq->next = p->free_req;
		p->free_req = rq;
		p->nreq++;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

void async_pool_free(struct async_pool *p)
{
	if (!p)
		return;
	while (p->free_req) {
		struct aio_req *rq = p->free_req;
		p->free_req = rq->next;
		free(rq);
	}
	for (unsigned i = 0; i < p->nfree; i++)
		free(p->free_seg[i]);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* A request with nseg segments, or NULL. */
static struct aio_req *req_get(struct async_pool *p, int nseg)
{
	struct aio_req *rq = NULL;

	if (nseg > SILT_AIO_IOV_MAX)
		return NULL;
	pthread_mutex_lock(&p->lock);
	while (p->nfree < (unsigned)nseg && p->nseg < SEG_MAX) {
		char *s = silt_aligned_alloc(SEG_SIZE);
		if (!s)
			break;
		p->free_seg[p->nfree++] = s;
		p->nseg++;
	}
	if (p->nfree < (unsigned)nseg)
		goto out;
	if ((rq = p->free_req)) {
		p->free_req = rq->next;
	} else if (p->nreq < SILT_VOL_ASYNC_DEPTH && (rq = malloc(sizeof(*rq)))) {
		p->nreq++;
	} else {
		goto out;
	}
	rq->nseg = nseg;
	for (int i = 0; i < nseg; i++)
		rq->seg[i] = p->free_seg[--p->nfree];
out:
	pthread_mutex_unlock(&p->lock);
	return rq;
}

static void req_put(struct async_pool *p, struct aio_req *rq)
{
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < rq->nseg; i++)
		p->free_seg[p->nfree++] = rq->seg[i];
	rq->next = p->free_req;
	p->free_req = rq;
	pthread_mutex_unlock(&p->lock);
}

int vol_prefault(struct silt_vol *v)
{
	ram_prefault(v->ram);
	return async_pool_fill(v->apool);
}

void vol_io_hold(struct silt_vol *v, int hold)
{
	silt_aio_hold(v->aio, hold);
}

void vol_io_flush(struct silt_vol *v)
{
	silt_aio_flush(v->aio);
}

/* The one tier that holds chunks k0..k1 in one tier file, uncompressed;
 * or -EAGAIN. */
static int single_run(struct silt_vol *v, struct inode *in, uint64_t k0, uint64_t k1)
{
	uint8_t e0 = cmap_get(in->cf, k0);

	/* checksummed chunks are verified (reads) and their sums renewed
	 * (writes) on the synchronous path; a net tier's I/O is bounded there
	 * (tiers/netio.h), which the ring cannot do */
	if (!e0 || (e0 & CM_SUMS) || v->zlevel[cm_tier(e0)] || tier_failed(v->tier_by_id[cm_tier(e0)]) ||
	    tier_netio(v->tier_by_id[cm_tier(e0)]) ||
	    layout_seg(&v->layout, k0) != layout_seg(&v->layout, k1))
		return -EAGAIN;
	for (uint64_t k = k0 + 1; k <= k1; k++)
		if (cmap_get(in->cf, k) != e0)
			return -EAGAIN;
	return cm_tier(e0);
}

/* Lay the request's segments over [0, len) of the disk's view. */
static void map_segments(struct aio_req *rq, uint32_t len)
{
	for (int i = 0; i < rq->nseg; i++) {
		rq->iov[i].iov_base = rq->seg[i];
		rq->iov[i].iov_len = MIN(SEG_SIZE, len - (uint32_t)i * SEG_SIZE);
	}
}

/* A read's reply: len bytes from skew on. */
static void map_reply(struct aio_req *rq, uint32_t skew, uint32_t len)
{
	rq->nout = 0;
	for (int i = 0; i < rq->nseg && len; i++) {
		uint32_t seglen = (uint32_t)rq->iov[i].iov_len;
		if (skew >= seglen) {
			skew -= seglen;
			continue;
		}
		uint32_t n = MIN(seglen - skew, len);
		rq->out[rq->nout].iov_base = rq->seg[i] + skew;
		rq->out[rq->nout++].iov_len = n;
		len -= n;
		skew = 0;
	}
}

static void aio_complete(void *arg, int res)
{
	struct aio_req *rq = arg;
	struct silt_vol *v = rq->v;

	if (res) {
		log_err("inode %llu: asynchronous %s failed: %s", (unsigned long long)rq->in->ino,
			rq->write ? "write" : "read", strerror(-res));
		if (tier_io_error(res)) { /* see rw.c: the tier is broken, the caller gets EIO */
			tier_fail(v->tier_by_id[rq->tid], res, rq->write ? "writing a chunk" : "reading a chunk");
			res = -EIO;
		}
	}
	if (rq->fill && !res)
		ram_fill_end(v->ram, rq->in->ino, rq->k0, rq->fill_version, rq->iov, rq->nseg);
	/* a write is a change once it is on the tier, not when it is sent: the
	 * replication journal's sender reads the chunk after this note (and
	 * reads do not wait for writes in flight) */
	if (rq->write && !res)
		data_note_access(v, rq->in, rq->k0, rq->k1, 1, rq->len);
	cmap_unpin(v->cmap, &rq->pin);
	data_note_done(v, rq->write, rq->start_ns, res ? res : (ssize_t)rq->len);
	if (res)
		rq->done(rq->arg, NULL, 0, res);
	else if (rq->write)
		rq->done(rq->arg, NULL, 0, (ssize_t)rq->len);
	else
		rq->done(rq->arg, rq->out, rq->nout, (ssize_t)rq->len);
	req_put(v->apool, rq);
}

static int submit(struct silt_vol *v, struct aio_req *rq, int tid, uint64_t a0)
{
	int fd = tfiles_fd(cmap_files(rq->in->cf), &v->layout, v->tier_by_id[tid], rq->k0, 0);

	rq->tid = tid;
	uint64_t off = layout_slot(&v->layout, rq->k0) + (a0 - layout_chunk_start(&v->layout, rq->k0));

	if (fd < 0)
		return fd;
	return silt_aio_submit(v->aio, &rq->op, fd, rq->write, off, rq->iov, rq->nseg, aio_complete, rq);
}

static int nsegs(uint64_t bytes)
{
	return (int)((bytes + SEG_SIZE - 1) / SEG_SIZE);
}

/* Every byte of [a0, a1) from the RAM tier into the request's segments:
 * 1, or 0 at the first chunk it does not hold. */
static int ram_serve(struct silt_vol *v, struct aio_req *rq, uint64_t a0, uint64_t a1)
{
	for (uint64_t pos = a0; pos < a1;) {
		uint64_t k = pos >> v->layout.shift;
		uint64_t end = MIN(a1, layout_chunk_start(&v->layout, k + 1));
		/* the piece of this chunk, cut at segment boundaries */
		while (pos < end) {
			uint64_t rel = pos - a0, seg_end = (rel / SEG_SIZE + 1) * SEG_SIZE;
			uint32_t n = (uint32_t)MIN(end - pos, seg_end - rel);
			if (!ram_read(v->ram, rq->in->ino, k, (uint32_t)(pos - layout_chunk_start(&v->layout, k)), n,
				      rq->seg[rel / SEG_SIZE] + rel % SEG_SIZE, 1))
				return 0;
			pos += n;
		}
	}
	return 1;
}

/* A miss on one chunk that keeps being read: read it whole, keep a copy.
 * The version first, then "no write in flight": a write that pins after
 * the check bumps the version after we took it, one that pinned before is
 * seen by the check (ramcache.h). */
static int want_fill(struct silt_vol *v, struct inode *in, const struct cmap_pin *pin, uint64_t k0,
		     uint64_t k1, uint64_t *version)
{
	/* a chunk of more than one request's buffers is not filled from here */
	if (k0 != k1 || !ram_enabled(v->ram) || nsegs(v->layout.chunk_size) > SILT_AIO_IOV_MAX ||
	    !ram_admit(v->ram, in->ino, k0))
		return 0;
	*version = ram_fill_begin(v->ram, in->ino, k0);
	return cmap_pin_quiet(v->cmap, pin);
}

/* Every field of a pooled request, for an I/O of [r0, r1) of the file
 * (len of the caller's bytes): nothing of its last use may survive. */
static void setup_req(struct silt_vol *v, struct aio_req *rq, struct inode *in, const struct cmap_pin *pin,
		      int write, uint64_t k0, uint64_t k1, uint64_t r0, uint64_t r1, uint64_t len,
		      uint64_t start_ns, vol_io_done done, void *arg)
{
	rq->v = v;
	rq->start_ns = start_ns;
	rq->in = in;
	rq->pin = *pin;
	rq->write = write;
	rq->fill = 0;
	rq->fill_version = 0;
	rq->len = (uint32_t)len;
	rq->k0 = k0;
	rq->k1 = k1;
	rq->done = done;
	rq->arg = arg;
	map_segments(rq, (uint32_t)(r1 - r0));
}

static void setup_read(struct silt_vol *v, struct aio_req *rq, struct inode *in, const struct cmap_pin *pin,
		       uint64_t k0, uint64_t k1, uint64_t r0, uint64_t r1, off_t off, uint64_t len,
		       uint64_t start_ns, vol_io_done done, void *arg)
{
	setup_req(v, rq, in, pin, 0, k0, k1, r0, r1, len, start_ns, done, arg);
	map_reply(rq, (uint32_t)((uint64_t)off - r0), (uint32_t)len);
}

int vol_read_async(struct silt_vol *v, struct silt_file *f, size_t size, off_t off,
		   vol_io_done done, void *arg)
{
	struct inode *in = f->ino;
	struct cmap_pin pin;
	struct aio_req *rq;
	uint64_t a0, a1, len, fsize, t0 = silt_now_ns();
	int tid;

	if (off < 0 || size == 0 || size > SILT_IOBUF)
		return -EAGAIN;
	a0 = (uint64_t)off & ~(uint64_t)(SILT_ALIGN - 1);
	a1 = ((uint64_t)off + size + SILT_ALIGN - 1) & ~(uint64_t)(SILT_ALIGN - 1);
	if (cmap_pin(v->cmap, in->cf, a0 >> v->layout.shift, (a1 - 1) >> v->layout.shift, CMAP_READ, &pin))
		return -EAGAIN;
	pthread_mutex_lock(&in->lock);
	fsize = in->rec.size;
	pthread_mutex_unlock(&in->lock);
	if ((uint64_t)off >= fsize)
		goto again;
	len = MIN((uint64_t)size, fsize - (uint64_t)off);
	a1 = ((uint64_t)off + len + SILT_ALIGN - 1) & ~(uint64_t)(SILT_ALIGN - 1);
	uint64_t k0 = a0 >> v->layout.shift, k1 = (a1 - 1) >> v->layout.shift;
	if ((tid = single_run(v, in, k0, k1)) < 0)
		goto again;

	/* the RAM tier first: a hit is answered at once, from this thread */
	if (ram_enabled(v->ram)) {
		if (!(rq = req_get(v->apool, nsegs(a1 - a0))))
			goto again;
		setup_read(v, rq, in, &pin, k0, k1, a0, a1, off, len, t0, done, arg);
		if (ram_serve(v, rq, a0, a1)) {
			cmap_unpin(v->cmap, &pin);
			data_note_access(v, in, k0, k1, 0, len);
			data_note_done(v, 0, t0, (ssize_t)len);
			done(arg, rq->out, rq->nout, (ssize_t)len);
			req_put(v->apool, rq);
			return 0;
		}
		req_put(v->apool, rq);
	}
	/* from the disk; widened to the whole chunk when the RAM tier keeps it */
	uint64_t version = 0;
	int fill = want_fill(v, in, &pin, k0, k1, &version);
	uint64_t r0 = fill ? layout_chunk_start(&v->layout, k0) : a0;
	uint64_t r1 = fill ? r0 + v->layout.chunk_size : a1;
	if (!(rq = req_get(v->apool, nsegs(r1 - r0))))
		goto again;
	setup_read(v, rq, in, &pin, k0, k1, r0, r1, off, len, t0, done, arg);
	rq->fill = fill;
	rq->fill_version = version;
	if (submit(v, rq, tid, r0)) {
		req_put(v->apool, rq);
		goto again;
	}
	data_note_access(v, in, k0, k1, 0, len);
	return 0;
again:
	cmap_unpin(v->cmap, &pin);
	return -EAGAIN;
}

int vol_write_async(struct silt_vol *v, struct silt_file *f, const void *buf, size_t size,
		    off_t off, vol_io_done done, void *arg)
{
	struct inode *in = f->ino;
	struct cmap_pin pin;
	struct aio_req *rq;
	uint64_t k0, k1, t0 = silt_now_ns();
	int tid;

	/* whole blocks inside the file on chunks that have a home: no
	 * read-modify-write, no allocation, no size change, no metadata */
	if (off < 0 || size == 0 || size > SILT_IOBUF || ((uint64_t)off | size) & (SILT_ALIGN - 1))
		return -EAGAIN;
	k0 = (uint64_t)off >> v->layout.shift;
	k1 = ((uint64_t)off + size - 1) >> v->layout.shift;
	if (cmap_pin(v->cmap, in->cf, k0, k1, CMAP_WRITE, &pin))
		return -EAGAIN;
	ram_invalidate(v->ram, in->ino, k0, k1);
	pthread_mutex_lock(&in->lock);
	/* a write that should promote its chunks first goes the synchronous way */
	if ((uint64_t)off + size > in->rec.size || (tid = single_run(v, in, k0, k1)) < 0 ||
	    data_promote_target(v, in->ino, tid) >= 0) {
		pthread_mutex_unlock(&in->lock);
		goto again;
	}
	in->rec.mtime = in->rec.ctime = silt_now_wall();
	in->dirty = 1;
	pthread_mutex_unlock(&in->lock);
	if (!(rq = req_get(v->apool, nsegs(size))))
		goto again;
	setup_req(v, rq, in, &pin, 1, k0, k1, (uint64_t)off, (uint64_t)off + size, size, t0, done, arg);
	for (int i = 0; i < rq->nseg; i++)
		memcpy(rq->seg[i], (const char *)buf + (size_t)i * SEG_SIZE, rq->iov[i].iov_len);
	tfiles_mark_dirty(cmap_files(in->cf), tid);
	if (submit(v, rq, tid, (uint64_t)off)) {
		req_put(v->apool, rq);
		goto again;
	}
	return 0;
again:
	cmap_unpin(v->cmap, &pin);
	return -EAGAIN;
}
