/* Bounded I/O for net tiers: the calls that may block on a network
 * filesystem whose server is gone (a read, a write, an open or an fdatasync
 * of a tier file) run on the tier's own worker threads ("silt-net"), and the caller
 * waits for them only up to the tier's timeout, tries again up to its
 * retries, and then gives up with -ETIMEDOUT (which marks the tier failed,
 * and reaches the guest as EIO). A call still stuck in the kernel keeps
 * its own copy of the data, so nothing of the caller's is touched when it
 * completes at last. */
#ifndef SILT_NETIO_H
#define SILT_NETIO_H

#include <stdatomic.h>
#include <stdint.h>

struct tier_io;
struct silt_netio;

/* failed: the tier's failed flag; a tier that failed already gets one try. */
int netio_new(const char *name, uint32_t timeout_ms, unsigned retries, const _Atomic int *failed,
	      struct silt_netio **out);
/* Waits a little for the workers; one stuck in the kernel is left behind
 * (with the little it needs), since nothing can stop it. NULL is fine. */
void netio_free(struct silt_netio *n);
uint32_t netio_timeout_ms(const struct silt_netio *n);
/* op->fd at op->off, as tier_io_one() would, within the bounds: 0 or
 * -errno (-ETIMEDOUT: no answer in time). op->buf gets a read's bytes. */
int netio_rw(struct silt_netio *n, struct tier_io *op);
/* openat(dirfd, name, flags, 0600) within the bounds: an fd or -errno. */
int netio_open(struct silt_netio *n, int dirfd, const char *name, int flags);
/* fdatasync(fd) within the bounds: 0 or -errno. */
int netio_sync(struct silt_netio *n, int fd);

#endif
