/* The FUSE low-level operations of siltfs: a thin mapping onto fs/vol.h. */
#ifndef SILT_FUSE_OPS_H
#define SILT_FUSE_OPS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

struct silt_vol;

struct silt_fs {
	struct silt_vol *vol;
	double timeout;     /* attribute and entry cache validity, seconds */
	int lock_memory;    /* mlockall in init: required to serve swap */
	int writeback;      /* the kernel's writeback cache (-o cache=writeback; 0 after
			     * init if the kernel does not offer it) */
};

extern const struct fuse_lowlevel_ops silt_fuse_ops;

/* Serve the session with this many worker threads (fs/fuse_loop.c) until
 * it is unmounted or a signal ends it. 0 or -errno. */
int silt_fuse_loop(struct fuse_session *se, struct silt_vol *vol, unsigned threads);

#endif
