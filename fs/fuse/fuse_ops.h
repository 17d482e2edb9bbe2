/* The FUSE low-level operations of siltfs: a thin mapping onto fs/vol.h. */
#ifndef SILT_FUSE_OPS_H
#define SILT_FUSE_OPS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdint.h>

struct silt_vol;

struct silt_fs {
	struct silt_vol *vol;
	double timeout;     /* attribute and entry cache validity, seconds */
	int lock_memory;    /* mlockall in init: required to serve swap */
	int writeback;      /* the kernel's writeback cache (-o cache=writeback; 0 after
			     * init if the kernel does not offer it) */
	/* FUSE_HANDLE_KILLPRIV_V2, which libfuse 3.14 cannot negotiate: the
	 * session loop sees what the kernel offers in INIT (init_offered) and
	 * adds it to the reply when init wants it (killpriv) */
	int init_offered, killpriv;
	_Atomic uint64_t init_unique; /* the INIT request, until it is answered */
};

extern const struct fuse_lowlevel_ops silt_fuse_ops;

/* Serve the session with this many worker threads (fs/fuse_loop.c) until
 * it is unmounted or a signal ends it. 0 or -errno. */
int silt_fuse_loop(struct fuse_session *se, struct silt_fs *fs, unsigned threads);

#endif
