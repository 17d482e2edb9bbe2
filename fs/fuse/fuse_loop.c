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
#include <sys/uio.h>
#include <unistd.h>

#define BURST 4                      /* requests between flushes, at most */
#define WORKER_STACK (1u << 20)

/* The head of every request (stable kernel ABI, <linux/fuse.h>), of which
 * the opcode and unique are looked at; the numbers are FUSE_READ,
 * FUSE_WRITE and FUSE_INIT. */
struct in_header {
	uint32_t len, opcode;
	uint64_t unique, nodeid;
	uint32_t uid, gid, pid;
	uint16_t total_extlen, padding;
};
enum { OP_SETATTR = 4, OP_OPEN = 14, OP_READ = 15, OP_WRITE = 16, OP_INIT = 26 };

/* INIT's request and reply open with these (<linux/fuse.h>: fuse_init_in,
 * fuse_out_header, fuse_init_out) */
struct init_head {
	uint32_t major, minor, max_readahead, flags;
};
struct out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};
#define INIT_HANDLE_KILLPRIV_V2 (1u << 28) /* protocol 7.33 */

/* With it, the kernel leaves killing privileges to us and says when the
 * caller lacks CAP_FSETID (or it is a chown) in flags libfuse 3.14 drops:
 * fuse_setattr_in.valid, fuse_open_in.open_flags, fuse_write_in.write_flags. */
#define FATTR_SIZE_ (1u << 3)
#define FATTR_UID_ (1u << 1)
#define FATTR_GID_ (1u << 2)
#define FATTR_FH_ (1u << 6)
#define FATTR_KILL_SUIDGID_ (1u << 11)
#define OPEN_KILL_SUIDGID_ (1u << 0)
#define WRITE_KILL_SUIDGID_ (1u << 2)

struct loop {
	struct fuse_session *se;
	struct silt_fs *fs;
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

/* The INIT request: what the kernel offers that libfuse does not know. */
static void note_init(struct silt_fs *fs, const struct in_header *h)
{
	const struct init_head *in = (const void *)(h + 1);

	fs->init_offered = in->major == 7 && in->minor >= 33 && (in->flags & INIT_HANDLE_KILLPRIV_V2);
	atomic_store(&fs->init_unique, h->unique);
}

static uint32_t arg_u32(const struct in_header *h, size_t len, size_t off)
{
	uint32_t x = 0;

	if (len >= sizeof(*h) + off + 4)
		memcpy(&x, (const char *)(h + 1) + off, 4);
	return x;
}

/* What the request (len bytes) takes from its file, before libfuse hands
 * it on: the engine decides (vol_kill_priv). */
static void kill_priv(struct loop *lp, const struct in_header *h, size_t len)
{
	uint32_t x;
	int r = 0;

	switch (h->opcode) {
	case OP_WRITE: /* fuse_write_in: fh, offset, size, write_flags */
		r = vol_kill_priv(lp->vol, h->nodeid, !!(arg_u32(h, len, 20) & WRITE_KILL_SUIDGID_));
		break;
	case OP_SETATTR: /* fuse_setattr_in: valid, ... */
		/* A setattr that sets nothing is the kernel's file_remove_privs()
		 * before a buffered write by a caller without CAP_FSETID into a
		 * setuid or setgid file (what the kernel would have cleared, it
		 * leaves to us): killed here, its reply carries the new mode,
		 * which the WRITE's own flag would not bring to the kernel's
		 * attribute cache. */
		x = arg_u32(h, len, 0);
		if ((x & ~FATTR_FH_) == 0)
			r = vol_kill_priv(lp->vol, h->nodeid, 1);
		else if (x & (FATTR_SIZE_ | FATTR_UID_ | FATTR_GID_ | FATTR_KILL_SUIDGID_))
			r = vol_kill_priv(lp->vol, h->nodeid, !!(x & FATTR_KILL_SUIDGID_));
		break;
	case OP_OPEN: /* fuse_open_in: flags, open_flags */
		x = arg_u32(h, len, 4);
		if ((x & OPEN_KILL_SUIDGID_) || (arg_u32(h, len, 0) & O_TRUNC))
			r = vol_kill_priv(lp->vol, h->nodeid, !!(x & OPEN_KILL_SUIDGID_));
		break;
	}
	if (r > 0) /* the kernel's cached mode is stale: attributes only, no lock taken */
		fuse_lowlevel_notify_inval_inode(lp->se, h->nodeid, -1, 0);
	else if (r && r != -ENOENT)
		log_warn("inode %llu: cannot take its privileges away (opcode %u): %s",
			 (unsigned long long)h->nodeid, h->opcode, strerror(-r));
}

/* Every reply goes out here (libfuse's custom I/O); INIT's gets the flags
 * that init wanted and libfuse could not say. */
static ssize_t reply_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct silt_fs *fs = userdata;
	uint64_t init = atomic_load_explicit(&fs->init_unique, memory_order_relaxed);

	if (init && count >= 2 && iov[0].iov_len >= sizeof(struct out_header) &&
	    iov[1].iov_len >= sizeof(struct init_head)) {
		const struct out_header *oh = iov[0].iov_base;
		if (oh->unique == init) {
			struct init_head *out = iov[1].iov_base;
			if (oh->error == 0 && fs->killpriv && fs->init_offered)
				out->flags |= INIT_HANDLE_KILLPRIV_V2;
			else
				fs->killpriv = 0;
			atomic_store(&fs->init_unique, 0);
		}
	}
	return writev(fd, iov, count);
}

static ssize_t request_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	return read(fd, buf, len);
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
		if ((size_t)r >= sizeof(*h) + sizeof(struct init_head) && h->opcode == OP_INIT)
			note_init(lp->fs, h);
		else if (lp->fs->killpriv && (size_t)r >= sizeof(*h))
			kill_priv(lp, h, (size_t)r);
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

int silt_fuse_loop(struct fuse_session *se, struct silt_fs *fs, unsigned threads)
{
	struct loop lp = { .se = se, .fs = fs, .vol = fs->vol, .fd = fuse_session_fd(se),
			   .stop_efd = -1, .done_efd = -1 };
	static const struct fuse_custom_io io = { .read = request_read, .writev = reply_writev };
	struct worker *w = calloc(threads, sizeof(*w));
	pthread_attr_t attr;
	unsigned started = 0;
	int r = 0;

	if (!w)
		return -ENOMEM;
	if ((r = fuse_session_custom_io(se, &io, lp.fd))) {
		log_err("libfuse refused our reply path: %s", strerror(-r));
		goto out;
	}
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
