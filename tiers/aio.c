/* Asynchronous tier I/O: an io_uring "lane" per submitting thread, and one
 * thread ("silt-aio") that reaps every lane.
 *
 *   struct silt_aio      the set: lanes, the in-flight count, the reaper
 *   struct lane          one thread's ring and the eventfd its CQEs signal
 *
 * Why lanes: with one shared ring the FUSE workers queued on its submission
 * lock, and io_uring_enter() does the whole block-layer submission (tens of
 * microseconds on a virtio disk) while holding it; at queue depth 32 that
 * lock was a fifth of the daemon's time. A lane is submitted to only by the
 * thread that made it (found through a thread key), so submission takes no
 * lock at all. Completions of a lane's I/O are posted by the kernel in its
 * owner's context (task work, which interrupts the owner's blocking read of
 * /dev/fuse), signal the lane's eventfd and wake the reaper, which drains
 * the CQ without a system call: only the reaper touches CQs.
 *
 * The in-flight count is global and never exceeds the depth, and each
 * lane's CQ holds twice that, so no CQ can overflow. A short transfer is
 * finished synchronously by the reaper (rare: end of a sparse tier file),
 * so callers only ever see whole results. Lanes live until silt_aio_stop()
 * (a thread that exits leaves its lane idle); their number is bounded.
 * Stopping: the stop eventfd tells the reaper to leave once nothing is in
 * flight.
 *
 * Holding: a thread that takes requests in bursts (a FUSE worker draining
 * its queue) can hold its lane, so that the I/O of several requests goes to
 * the kernel in one io_uring_enter(): one block-layer plug, one doorbell to
 * the device, instead of one each. It must flush before it sleeps. */
#include "tiers/aio.h"
#include "utils/util.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_LANES 64

struct lane {
	struct io_uring ring;
	int efd;
	int held;                   /* queue, do not submit (owner only) */
	unsigned queued;            /* SQEs not yet submitted */
	struct lane *next;
};

struct silt_aio {
	unsigned depth;
	_Atomic unsigned inflight;
	_Atomic int stopping;
	int epfd, stop_efd;
	pthread_key_t key;          /* this thread's lane */
	pthread_mutex_t lanes_lock; /* making a lane (once per thread) */
	struct lane *lanes;
	unsigned nlanes;
	pthread_t thread;
};

/* A short transfer (rare: the end of a sparse tier file) is finished here,
 * synchronously, from where the kernel stopped. */
static void finish_sync(struct silt_aio_op *op, uint32_t done_bytes)
{
	struct iovec iov[SILT_AIO_IOV_MAX];
	int n = 0, res = 0;
	uint32_t skip = done_bytes;

	for (int i = 0; i < op->iovcnt; i++) {
		if (skip >= op->iov[i].iov_len) {
			skip -= (uint32_t)op->iov[i].iov_len;
			continue;
		}
		iov[n].iov_base = (char *)op->iov[i].iov_base + skip;
		iov[n++].iov_len = op->iov[i].iov_len - skip;
		skip = 0;
	}
	for (int i = 0; i < n && done_bytes < op->len;) {
		ssize_t r = op->write ? pwritev(op->fd, iov + i, n - i, (off_t)(op->off + done_bytes))
				      : preadv(op->fd, iov + i, n - i, (off_t)(op->off + done_bytes));
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0) {
			res = -errno;
			break;
		}
		if (r == 0) {
			if (op->write) {
				res = -EIO;
				break;
			}
			for (; i < n; i++) /* end of the tier file: the rest is a hole */
				memset(iov[i].iov_base, 0, iov[i].iov_len);
			break;
		}
		done_bytes += (uint32_t)r;
		while (i < n && (size_t)r >= iov[i].iov_len)
			r -= (ssize_t)iov[i++].iov_len;
		if (i < n) {
			iov[i].iov_base = (char *)iov[i].iov_base + r;
			iov[i].iov_len -= (size_t)r;
		}
	}
	op->done(op->arg, res);
}

/* Everything the lane's CQ holds. */
static void reap_lane(struct silt_aio *a, struct lane *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;

	io_uring_for_each_cqe(&l->ring, head, cqe) {
		struct silt_aio_op *op = io_uring_cqe_get_data(cqe);
		seen++;
		if (!op) /* an SQE that was turned into a NOP (see submit) */
			continue;
		int res = cqe->res;
		if (res < 0 && res != -EINTR && res != -EAGAIN)
			op->done(op->arg, res);
		else
			finish_sync(op, res < 0 ? 0 : (uint32_t)res);
		atomic_fetch_sub(&a->inflight, 1);
	}
	io_uring_cq_advance(&l->ring, seen);
}

static void *reaper(void *arg)
{
	struct silt_aio *a = arg;
	struct epoll_event ev[16];

	pthread_setname_np(pthread_self(), "silt-aio");
	for (;;) {
		int n = epoll_wait(a->epfd, ev, 16, -1);
		if (n < 0 && errno != EINTR)
			break; /* EBADF/EINVAL: a programming error, not a runtime one */
		for (int i = 0; i < n; i++) {
			struct lane *l = ev[i].data.ptr;
			uint64_t cnt;
			if (!l)
				continue; /* the stop eventfd: checked below */
			/* read first: a CQE posted after the drain signals again */
			if (read(l->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
				continue;
			reap_lane(a, l);
		}
		if (atomic_load(&a->stopping) && atomic_load(&a->inflight) == 0)
			break;
	}
	return NULL;
}

static void lane_free(struct lane *l)
{
	io_uring_queue_exit(&l->ring);
	close(l->efd);
	free(l);
}

/* This thread's lane, made on first use; NULL when none can be made. */
static struct lane *my_lane(struct silt_aio *a)
{
	struct lane *l = pthread_getspecific(a->key);
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE, .cq_entries = 2 * a->depth };

	if (l)
		return l;
	if (!(l = calloc(1, sizeof(*l))))
		return NULL;
	if ((l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		free(l);
		return NULL;
	}
	if (io_uring_queue_init_params(a->depth, &l->ring, &p) < 0) {
		close(l->efd);
		free(l);
		return NULL;
	}
	/* ops that must block go to kernel workers: bound them (swap safety) */
	unsigned workers[2] = { 1, 1 };
	io_uring_register_iowq_max_workers(&l->ring, workers);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = l };
	if (io_uring_register_eventfd(&l->ring, l->efd) < 0 ||
	    epoll_ctl(a->epfd, EPOLL_CTL_ADD, l->efd, &ev) < 0) {
		lane_free(l);
		return NULL;
	}
	pthread_mutex_lock(&a->lanes_lock);
	if (a->nlanes >= MAX_LANES) {
		pthread_mutex_unlock(&a->lanes_lock);
		epoll_ctl(a->epfd, EPOLL_CTL_DEL, l->efd, NULL);
		lane_free(l);
		return NULL;
	}
	l->next = a->lanes;
	a->lanes = l;
	a->nlanes++;
	pthread_mutex_unlock(&a->lanes_lock);
	pthread_setspecific(a->key, l);
	return l;
}

int silt_aio_start(unsigned depth, struct silt_aio **out)
{
	struct silt_aio *a = calloc(1, sizeof(*a));
	int r;

	if (!a)
		return -ENOMEM;
	a->depth = depth;
	a->epfd = a->stop_efd = -1;
	if ((r = -pthread_key_create(&a->key, NULL))) {
		free(a);
		return r;
	}
	pthread_mutex_init(&a->lanes_lock, NULL);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if ((a->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (a->stop_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	    epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->stop_efd, &ev) < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = -pthread_create(&a->thread, NULL, reaper, a)))
		goto fail;
	*out = a;
	return 0;
fail:
	if (a->stop_efd >= 0)
		close(a->stop_efd);
	if (a->epfd >= 0)
		close(a->epfd);
	pthread_mutex_destroy(&a->lanes_lock);
	pthread_key_delete(a->key);
	free(a);
	return r;
}

void silt_aio_stop(struct silt_aio *a)
{
	uint64_t one = 1;

	if (!a)
		return;
	atomic_store(&a->stopping, 1);
	while (write(a->stop_efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(a->thread, NULL);
	while (a->lanes) {
		struct lane *l = a->lanes;
		a->lanes = l->next;
		lane_free(l);
	}
	close(a->stop_efd);
	close(a->epfd);
	pthread_mutex_destroy(&a->lanes_lock);
	pthread_key_delete(a->key);
	free(a);
}

/* Send the lane's queued SQEs. Should the kernel refuse them (it cannot
 * while the in-flight bound holds, but memory can run out), they are failed
 * here with the error and turned into NOPs, so that no caller waits for an
 * I/O that never started and no later submit sends a stale one. */
static void lane_submit(struct silt_aio *a, struct lane *l)
{
	int r = 0;

	for (int tries = 0; l->queued && tries < 100; tries++) {
		r = io_uring_submit(&l->ring);
		if (r > 0) {
			l->queued -= MIN((unsigned)r, l->queued);
			continue;
		}
		if (r != -EINTR && r != -EAGAIN && r != -EBUSY && r != 0)
			break;
		sched_yield();
	}
	if (!l->queued)
		return;
	/* liburing has published them (ktail); the kernel has not consumed
	 * them (khead), and only our own io_uring_enter() would */
	struct io_uring_sq *sq = &l->ring.sq;
	for (unsigned i = io_uring_smp_load_acquire(sq->khead); i != sq->sqe_tail; i++) {
		struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
		struct silt_aio_op *op = (struct silt_aio_op *)(uintptr_t)sqe->user_data;
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data(sqe, NULL);
		if (op) {
			op->done(op->arg, r < 0 ? r : -EIO);
			atomic_fetch_sub(&a->inflight, 1);
		}
	}
	l->queued = 0;
}

int silt_aio_submit(struct silt_aio *a, struct silt_aio_op *op, int fd, int write, uint64_t off,
		    const struct iovec *iov, int iovcnt, silt_aio_done done, void *arg)
{
	struct io_uring_sqe *sqe;
	struct lane *l;
	uint32_t len = 0;

	if (iovcnt < 1 || iovcnt > SILT_AIO_IOV_MAX)
		return -EINVAL;
	/* keep room in every CQ: never more in flight than the depth */
	if (atomic_fetch_add(&a->inflight, 1) >= a->depth || atomic_load(&a->stopping) ||
	    !(l = my_lane(a)) || !(sqe = io_uring_get_sqe(&l->ring))) {
		atomic_fetch_sub(&a->inflight, 1);
		return -EAGAIN;
	}
	for (int i = 0; i < iovcnt; i++)
		len += (uint32_t)iov[i].iov_len;
	*op = (struct silt_aio_op){ .fd = fd, .write = write, .off = off, .iov = iov, .iovcnt = iovcnt,
				    .len = len, .done = done, .arg = arg };
	if (iovcnt == 1 && write)
		io_uring_prep_write(sqe, fd, iov[0].iov_base, (unsigned)iov[0].iov_len, off);
	else if (iovcnt == 1)
		io_uring_prep_read(sqe, fd, iov[0].iov_base, (unsigned)iov[0].iov_len, off);
	else if (write)
		io_uring_prep_writev(sqe, fd, iov, (unsigned)iovcnt, off);
	else
		io_uring_prep_readv(sqe, fd, iov, (unsigned)iovcnt, off);
	io_uring_sqe_set_data(sqe, op);
	l->queued++;
	if (!l->held)
		lane_submit(a, l);
	return 0;
}

void silt_aio_hold(struct silt_aio *a, int hold)
{
	struct lane *l = my_lane(a);

	if (!l)
		return; /* no lane: every submit is refused anyway */
	l->held = hold;
	if (!hold)
		lane_submit(a, l);
}

void silt_aio_flush(struct silt_aio *a)
{
	struct lane *l = pthread_getspecific(a->key);

	if (l && l->queued)
		lane_submit(a, l);
}
