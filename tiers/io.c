/* io_uring submission for tier I/O.
 *
 * A ring per I/O thread, so submission needs no lock. Short transfers are
 * resubmitted for the remainder; a read that hits end-of-file zero-fills the
 * rest, because a tier file is only as long as the last byte ever written to
 * it and a chunk slot's unwritten tail is a hole. */
#include "tiers/io.h"
#include "tiers/netio.h"
#include "utils/util.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

struct silt_ioctx {
	struct io_uring ring;
	unsigned depth;
	void *buf;
	size_t buflen;
	void *scratch[2];       /* lazily, for compressed chunks */
	size_t scratch_len[2];
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
};

int silt_ioctx_new(unsigned depth, size_t buflen, struct silt_ioctx **out)
{
	struct silt_ioctx *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	r = io_uring_queue_init(depth, &c->ring, 0);
	if (r < 0) {
		free(c);
		return r;
	}
	/* ops that must block go to kernel workers: bound them (swap safety) */
	unsigned workers[2] = { 1, 1 };
	io_uring_register_iowq_max_workers(&c->ring, workers);
	c->depth = depth;
	c->buflen = buflen;
	c->buf = silt_aligned_alloc(buflen);
	if (!c->buf) {
		io_uring_queue_exit(&c->ring);
		free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void silt_ioctx_free(struct silt_ioctx *c)
{
	if (!c)
		return;
	io_uring_queue_exit(&c->ring);
	free(c->buf);
	free(c->scratch[0]);
	free(c->scratch[1]);
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeDCtx(c->dctx);
	free(c);
}

void *silt_ioctx_buf(struct silt_ioctx *c, size_t *len)
{
	*len = c->buflen;
	return c->buf;
}

void *silt_ioctx_scratch(struct silt_ioctx *c, int idx, size_t len)
{
	if (c->scratch_len[idx] < len) {
		free(c->scratch[idx]);
		c->scratch[idx] = silt_aligned_alloc(len);
		c->scratch_len[idx] = c->scratch[idx] ? len : 0;
	}
	return c->scratch[idx];
}

ZSTD_CCtx *silt_ioctx_cctx(struct silt_ioctx *c)
{
	if (!c->cctx)
		c->cctx = ZSTD_createCCtx();
	return c->cctx;
}

ZSTD_DCtx *silt_ioctx_dctx(struct silt_ioctx *c)
{
	if (!c->dctx)
		c->dctx = ZSTD_createDCtx();
	return c->dctx;
}

/* Per-op progress lives in the caller's array: done bytes are tracked by
 * advancing off/buf/len in place, so a resubmission is just another SQE. */
/* One op needs no ring: a plain pread/pwrite is one syscall either way and
 * skips the submission and completion bookkeeping. */
int tier_io_one(struct tier_io *op)
{
	while (op->len) {
		ssize_t r = op->write ? pwrite(op->fd, op->buf, op->len, (off_t)op->off)
				      : pread(op->fd, op->buf, op->len, (off_t)op->off);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return op->res = -errno;
		}
		if (r == 0 && !op->write) {
			memset(op->buf, 0, op->len); /* EOF: hole */
			break;
		}
		if (r == 0)
			return op->res = -EIO;
		op->off += (uint64_t)r;
		op->buf = (char *)op->buf + r;
		op->len -= (uint32_t)r;
	}
	return op->res = 0;
}

/* The ops that are not a net tier's, together on the ring. */
static int ring_run(struct silt_ioctx *c, struct tier_io *ops, unsigned n)
{
	unsigned next = 0, inflight = 0;
	int first_err = 0;

	for (unsigned i = 0; i < n; i++)
		if (!ops[i].net)
			ops[i].res = 0;
	while (next < n || inflight) {
		while (next < n && inflight < c->depth) {
			struct tier_io *op = &ops[next];
			if (op->len == 0 || op->net) { /* (before taking an SQE: one taken is sent) */
				next++;
				continue;
			}
			struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
			if (!sqe)
				break;
			if (op->write)
				io_uring_prep_write(sqe, op->fd, op->buf, op->len, op->off);
			else
				io_uring_prep_read(sqe, op->fd, op->buf, op->len, op->off);
			io_uring_sqe_set_data(sqe, op);
			next++;
			inflight++;
		}
		if (!inflight)
			break;
		int r = io_uring_submit_and_wait(&c->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			return r; /* ring broken: nothing sensible left to do */
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&c->ring, head, cqe) {
			struct tier_io *op = io_uring_cqe_get_data(cqe);
			int res = cqe->res;
			seen++;
			inflight--;
			if (res == -EINTR || res == -EAGAIN) {
				res = 0; /* retry whole remainder below */
			} else if (res < 0) {
				op->res = res;
				if (!first_err)
					first_err = res;
				continue;
			} else if (res == 0 && !op->write) {
				memset(op->buf, 0, op->len); /* EOF: hole */
				op->len = 0;
				continue;
			}
			op->off += (uint64_t)res;
			op->buf = (char *)op->buf + res;
			op->len -= (uint32_t)res;
			if (op->len) {
				/* short transfer: requeue the rest (at the end) */
				struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
				if (!sqe) {
					op->res = -EAGAIN;
					if (!first_err)
						first_err = -EIO;
					continue;
				}
				if (op->write)
					io_uring_prep_write(sqe, op->fd, op->buf, op->len, op->off);
				else
					io_uring_prep_read(sqe, op->fd, op->buf, op->len, op->off);
				io_uring_sqe_set_data(sqe, op);
				inflight++;
			}
		}
		io_uring_cq_advance(&c->ring, seen);
	}
	return first_err;
}

int tier_io_run(struct silt_ioctx *c, struct tier_io *ops, unsigned n)
{
	unsigned direct = 0;
	int first_err = 0, r = 0;

	for (unsigned i = 0; i < n; i++) {
		if (!ops[i].net) {
			direct++;
			continue;
		}
		if ((ops[i].res = netio_rw(ops[i].net, &ops[i])) && !first_err)
			first_err = ops[i].res;
	}
	if (direct == n && n == 1)
		return tier_io_one(ops);
	if (direct)
		r = ring_run(c, ops, n);
	return first_err ? first_err : r;
}
