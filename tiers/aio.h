/* Asynchronous tier I/O: submit now, get a callback from the completion
 * thread later. Used for the data path's common case (a small aligned read
 * or overwrite of one run of chunks) so that a FUSE worker never sleeps on
 * the disk and can take the next request at once. */
#ifndef SILT_AIO_H
#define SILT_AIO_H

#include <stdint.h>
#include <sys/uio.h>

struct silt_aio;

#define SILT_AIO_IOV_MAX 32 /* segments of one operation */

/* res: 0 or -errno; called on the completion thread. */
typedef void (*silt_aio_done)(void *arg, int res);

/* Storage for one operation, owned by the caller until done() runs (so the
 * I/O path allocates nothing). Fields are private to aio.c. */
struct silt_aio_op {
	int fd, write;
	uint64_t off;
	const struct iovec *iov;
	int iovcnt;
	uint32_t len;
	silt_aio_done done;
	void *arg;
};

int silt_aio_start(unsigned depth, struct silt_aio **out);
/* Wait for everything in flight, then stop the completion thread. */
void silt_aio_stop(struct silt_aio *a);
/* One read or write of the buffers iov[0..iovcnt) (at most
 * SILT_AIO_IOV_MAX; the array stays the caller's until done() runs) at off.
 * -EAGAIN when the queue is full (do it synchronously instead). */
int silt_aio_submit(struct silt_aio *a, struct silt_aio_op *op, int fd, int write, uint64_t off,
		    const struct iovec *iov, int iovcnt, silt_aio_done done, void *arg);
/* For the calling thread: while held, submissions are queued and sent by
 * silt_aio_flush() (or by releasing the hold), so that a burst of requests
 * costs one system call and one device doorbell. A holding thread must
 * flush before anything that may sleep. */
void silt_aio_hold(struct silt_aio *a, int hold);
void silt_aio_flush(struct silt_aio *a);

#endif
