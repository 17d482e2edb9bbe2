/* The FUSE session's worker threads ("silt-fuse-N").
 *
 *   struct loop     the session, its /dev/fuse descriptor (non-blocking),
 *                   and two eventfds: stop (main -> workers) and done
 *                   (a worker -> main: the session ended)
 *   struct worker   one thread and its own epoll set
 *
 * Why not libfuse's fuse_session_loop_mt(): its workers block in read(2)
 * on /dev/fuse, take one request per wake-up, and every asynchronous read
 * or write is sent to the disk on its own, with its own block-layer plug
 * and device doorbell. Here a woken worker drains the queue with
 * non-blocking reads and holds its I/O lane (vol_io_hold), so the tier I/O
 * of a burst of requests goes to the kernel in one io_uring_enter(). It
 * flushes before it sleeps, before any request other than READ and WRITE
 * (they may sleep: metadata, fsync), and every BURST requests, so held I/O
 * never waits behind anything slow; the engine's synchronous paths flush
 * for themselves.
 *
 * Waking: each worker's epoll set holds the /dev/fuse descriptor with
 * EPOLLEXCLUSIVE, so a new request wakes one idle worker rather than all
 * of them (the kernel skips epoll sets with nobody waiting in them), and a
 * worker that is busy is not counted on. Stopping: a signal (libfuse's
 * handlers) or the end of the connection marks the session exited; the
 * main thread notices (its wait is interrupted, or times out once a
 * second), writes the stop eventfd, which wakes every worker for good,
 * and joins them. Requests still in flight on the disk are answered by the
 * engine's completion thread, which vol_close() drains. */
#include "fs/fuse/fuse_ops.h"
#include "fs/vol.h"
#include "utils/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define BURST 4                      /* requests between flushes, at most */
#define WORKER_STACK (1u << 20)

/* The head of every request (stable kernel ABI, <linux/fuse.h>), of which
 * only the opcode is looked at; the numbers are FUSE_READ and FUSE_WRITE. */
struct in_header {
	uint32_t len, opcode;
	uint64_t unique, nodeid;
};
enum { OP_READ = 15, OP_WRITE = 16 };

struct loop {
	struct fuse_session *se;
	struct silt_vol *vol;
	int fd, stop_efd, done_efd;
	_Atomic int err;
};

struct worker {
	struct loop *lp;
	pthread_t thread;
	unsigned id;
};

static void efd_signal(int efd)
{
	uint64_t one = 1;
	while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* Sleep until the queue may hold a request (1) or the loop stops (0). */
static int wait_request(struct loop *lp, int ep)
{
	struct epoll_event ev;
	int n = epoll_wait(ep, &ev, 1, -1);

	if (n < 0 && errno != EINTR) {
		atomic_store(&lp->err, -errno);
		return 0;
	}
	return !(n == 1 && ev.data.u32 == 1);
}

static void serve(struct loop *lp, int ep)
{
	struct fuse_buf buf = { .mem = NULL };
	unsigned burst = 0;

	vol_io_hold(lp->vol, 1);
	while (!fuse_session_exited(lp->se)) {
		int r = fuse_session_receive_buf(lp->se, &buf);
		if (r == -EAGAIN) { /* drained: send the burst, then sleep */
			vol_io_flush(lp->vol);
			burst = 0;
			if (!wait_request(lp, ep))
				break;
			continue;
		}
		if (r == -EINTR) /* an interrupted request: nothing to do */
			continue;
		if (r <= 0) { /* 0: unmounted; libfuse has marked the session exited */
			if (r < 0) {
				log_err("reading /dev/fuse: %s", strerror(-r));
				atomic_store(&lp->err, r);
				fuse_session_exit(lp->se);
			}
			break;
		}
		const struct in_header *h = buf.mem;
		if ((size_t)r < sizeof(*h) || (h->opcode != OP_READ && h->opcode != OP_WRITE) ||
		    ++burst > BURST) {
			vol_io_flush(lp->vol);
			burst = 1;
		}
		fuse_session_process_buf(lp->se, &buf);
	}
	vol_io_hold(lp->vol, 0); /* sends anything still held */
	free(buf.mem);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct loop *lp = w->lp;
	char name[16];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event req = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.u32 = 0 };
	struct epoll_event stop = { .events = EPOLLIN, .data.u32 = 1 };

	snprintf(name, sizeof(name), "silt-fuse-%u", w->id);
	pthread_setname_np(pthread_self(), name);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lp->fd, &req) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, lp->stop_efd, &stop) < 0) {
		log_err("%s: epoll: %s", name, strerror(errno));
		atomic_store(&lp->err, -errno);
		fuse_session_exit(lp->se);
	} else {
		serve(lp, ep);
	}
	if (ep >= 0)
		close(ep);
	efd_signal(lp->done_efd);
	return NULL;
}

int silt_fuse_loop(struct fuse_session *se, struct silt_vol *vol, unsigned threads)
{
	struct loop lp = { .se = se, .vol = vol, .fd = fuse_session_fd(se), .stop_efd = -1, .done_efd = -1 };
	struct worker *w = calloc(threads, sizeof(*w));
	pthread_attr_t attr;
	unsigned started = 0;
	int r = 0;

	if (!w)
		return -ENOMEM;
	int fl = fcntl(lp.fd, F_GETFL);
	if (fl < 0 || fcntl(lp.fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    (lp.stop_efd = eventfd(0, EFD_CLOEXEC)) < 0 ||
	    (lp.done_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = -errno;
		goto out;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, WORKER_STACK);
	for (; started < threads; started++) {
		w[started] = (struct worker){ .lp = &lp, .id = started };
		if ((r = -pthread_create(&w[started].thread, &attr, worker_main, &w[started]))) {
			log_err("cannot start FUSE worker %u: %s", started, strerror(-r));
			break;
		}
	}
	pthread_attr_destroy(&attr);

	/* Until the session ends; a signal's handler only sets a flag, so
	 * look at it at least once a second. */
	while (started && !r && !fuse_session_exited(se)) {
		struct pollfd p = { .fd = lp.done_efd, .events = POLLIN };
		if (poll(&p, 1, 1000) > 0)
			break;
	}
	fuse_session_exit(se);
	efd_signal(lp.stop_efd);
	for (unsigned i = 0; i < started; i++)
		pthread_join(w[i].thread, NULL);
	if (!r)
		r = atomic_load(&lp.err);
out:
	if (lp.stop_efd >= 0)
		close(lp.stop_efd);
	if (lp.done_efd >= 0)
		close(lp.done_efd);
	free(w);
	return r;
}
