/* Batched tier I/O through io_uring: one request from the FUSE layer turns
 * into several reads or writes on tier files (one per chunk run), which go
 * to the kernel together and are waited for together. */
#ifndef SILT_IO_H
#define SILT_IO_H

#include <stddef.h>
#include <stdint.h>

struct tier_io {
	int fd;
	int write;
	uint64_t off;
	void *buf;
	uint32_t len;
	int tier;       /* the caller's: which tier the file is on */
	struct silt_netio *net; /* a net tier's (tier_netio): bounded, off the ring */
	int res;        /* 0 or -errno after tier_io_run */
};

struct silt_ioctx;
struct silt_netio;

/* Each I/O thread owns one context (ring + bounce buffer). */
int silt_ioctx_new(unsigned depth, size_t buflen, struct silt_ioctx **out);
void silt_ioctx_free(struct silt_ioctx *c);
void *silt_ioctx_buf(struct silt_ioctx *c, size_t *len);
/* Extra aligned buffers (idx 0 or 1) of at least len bytes, kept for the
 * thread's lifetime (compressed chunks); and the thread's zstd contexts. */
void *silt_ioctx_scratch(struct silt_ioctx *c, int idx, size_t len);
struct ZSTD_CCtx_s *silt_ioctx_cctx(struct silt_ioctx *c);
struct ZSTD_DCtx_s *silt_ioctx_dctx(struct silt_ioctx *c);

/* Run all ops (those of net tiers through tiers/netio.h, each within its
 * tier's timeout, the rest on the ring); reads past the end of a tier file are zero-filled (a chunk
 * slot that was never fully written reads as zeros). Returns 0 or the first
 * negative errno; each op's own result is in op->res. */
int tier_io_run(struct silt_ioctx *c, struct tier_io *ops, unsigned n);
/* One op by plain pread/pwrite (the same rules), op->net ignored. */
int tier_io_one(struct tier_io *op);

#endif
