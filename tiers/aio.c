/* One io_uring shared by all FUSE workers for asynchronous tier I/O, and
 * the thread ("silt-aio") that reaps it.
 *
 * Submission takes a mutex (get SQE, fill, submit); completions need no
 * lock because only the reaper touches the CQ. A short transfer is finished
 * synchronously by the reaper (rare: end of a sparse tier file), so callers
 * only ever see whole results. Stopping: a NOP whose user data is the
 * context itself tells the reaper to leave once nothing else is in flight. */
#include "tiers/aio.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct silt_aio {
	struct io_uring ring;
	pthread_mutex_t sq_lock;
	pthread_t thread;
	unsigned depth;
	_Atomic unsigned inflight;
	int stopping;
};

static void finish_sync(struct silt_aio_op *op, uint32_t done_bytes)
{
	int res = 0;
	while (done_bytes < op->len) {
		ssize_t r = op->write ? pwrite(op->fd, op->buf + done_bytes, op->len - done_bytes,
					       (off_t)(op->off + done_bytes))
				      : pread(op->fd, op->buf + done_bytes, op->len - done_bytes,
					      (off_t)(op->off + done_bytes));
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0) {
			res = -errno;
			break;
		}
		if (r == 0) {
			if (op->write) {
				res = -EIO;
			} else { /* end of the tier file: the rest is a hole */
				memset(op->buf + done_bytes, 0, op->len - done_bytes);
			}
			break;
		}
		done_bytes += (uint32_t)r;
	}
	op->done(op->arg, res);
}

static void *reaper(void *arg)
{
	struct silt_aio *a = arg;
	int leaving = 0;

	pthread_setname_np(pthread_self(), "silt-aio");
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int r = io_uring_wait_cqe(&a->ring, &cqe);
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r < 0)
			break;
		io_uring_for_each_cqe(&a->ring, head, cqe) {
			void *data = io_uring_cqe_get_data(cqe);
			seen++;
			if (data == a) {
				leaving = 1;
				continue;
			}
			struct silt_aio_op *op = data;
			int res = cqe->res;
			if (res < 0 && res != -EINTR && res != -EAGAIN)
				op->done(op->arg, res);
			else
				finish_sync(op, res < 0 ? 0 : (uint32_t)res);
			atomic_fetch_sub(&a->inflight, 1);
		}
		io_uring_cq_advance(&a->ring, seen);
		if (leaving && atomic_load(&a->inflight) == 0)
			break;
	}
	return NULL;
}

int silt_aio_start(unsigned depth, struct silt_aio **out)
{
	struct silt_aio *a = calloc(1, sizeof(*a));
	int r;

	if (!a)
		return -ENOMEM;
	if ((r = io_uring_queue_init(depth, &a->ring, 0)) < 0) {
		free(a);
		return r;
	}
	a->depth = depth;
	/* ops that must block go to kernel workers: bound them (swap safety) */
	unsigned workers[2] = { 2, 2 };
	io_uring_register_iowq_max_workers(&a->ring, workers);
	pthread_mutex_init(&a->sq_lock, NULL);
	if ((r = -pthread_create(&a->thread, NULL, reaper, a))) {
		io_uring_queue_exit(&a->ring);
		free(a);
		return r;
	}
	*out = a;
	return 0;
}

void silt_aio_stop(struct silt_aio *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->sq_lock);
	a->stopping = 1;
	struct io_uring_sqe *sqe;
	while (!(sqe = io_uring_get_sqe(&a->ring))) {
		io_uring_submit(&a->ring);
		pthread_mutex_unlock(&a->sq_lock);
		usleep(1000);
		pthread_mutex_lock(&a->sq_lock);
	}
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data(sqe, a);
	io_uring_submit(&a->ring);
	pthread_mutex_unlock(&a->sq_lock);
	pthread_join(a->thread, NULL);
	io_uring_queue_exit(&a->ring);
	pthread_mutex_destroy(&a->sq_lock);
	free(a);
}

int silt_aio_submit(struct silt_aio *a, struct silt_aio_op *op, int fd, int write, uint64_t off,
		    void *buf, uint32_t len, silt_aio_done done, void *arg)
{
	struct io_uring_sqe *sqe;

	/* keep room in the CQ: never more in flight than the ring is deep */
	if (atomic_fetch_add(&a->inflight, 1) >= a->depth) {
		atomic_fetch_sub(&a->inflight, 1);
		return -EAGAIN;
	}
	*op = (struct silt_aio_op){ .fd = fd, .write = write, .off = off, .buf = buf, .len = len,
			       .done = done, .arg = arg };
	pthread_mutex_lock(&a->sq_lock);
	if (a->stopping || !(sqe = io_uring_get_sqe(&a->ring))) {
		pthread_mutex_unlock(&a->sq_lock);
		atomic_fetch_sub(&a->inflight, 1);
		return -EAGAIN;
	}
	if (write)
		io_uring_prep_write(sqe, fd, buf, len, off);
	else
		io_uring_prep_read(sqe, fd, buf, len, off);
	io_uring_sqe_set_data(sqe, op);
	/* a failed submit leaves the SQE queued; the next submit sends it */
	io_uring_submit(&a->ring);
	pthread_mutex_unlock(&a->sq_lock);
	return 0;
}
