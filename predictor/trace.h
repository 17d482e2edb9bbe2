/*
 * trace.h - block I/O traces for the simulator, the tests and the benchmark.
 *
 * Reads the CSV form used by ../shared/traces (gzip or plain):
 *     timestamp_us,op,offset_bytes,length_bytes,volume_id
 * and expands requests into the fixed-size blocks they touch, in trace order,
 * with each block access's next use (for Belady) computed in one backward
 * pass.  A trace is plain data, so its struct is public.
 */
#ifndef SILTFS_PREDICTOR_TRACE_H
#define SILTFS_PREDICTOR_TRACE_H

#include <stddef.h>
#include <stdint.h>

enum trace_op { TRACE_READ = 0, TRACE_WRITE = 1 };

struct trace_req {
	uint64_t ts_us;
	uint64_t offset;
	uint32_t len;
	uint32_t vol;
	uint8_t op;
};

struct trace {
	struct trace_req *req;
	size_t nreq;
	/* Filled by trace_expand(): */
	uint32_t block_size;
	uint64_t *bkey;     /* per block access: (vol << 36) | block number */
	uint32_t *bnext;    /* index of the next access to the same block, or UINT32_MAX */
	size_t *req_first;  /* req i covers bkey[req_first[i] .. req_first[i+1]) */
	size_t nblk;
	uint64_t distinct;  /* distinct blocks in the whole trace */
};

#define TRACE_NO_NEXT UINT32_MAX
#define TRACE_KEY(vol, blk) (((uint64_t)(vol) << 36) | (uint64_t)(blk))

/* Load a trace; 'max_req' > 0 stops after that many requests.
 * Returns 0, -errno from open/read, -EBADMSG on a malformed line. */
int trace_load(const char *path, size_t max_req, struct trace **out);

/* Build the block arrays for 'block_size' (a power of two). */
int trace_expand(struct trace *t, uint32_t block_size);

/* Index of the first request whose time is >= ts_first + frac * span. */
size_t trace_split(const struct trace *t, double frac);

void trace_free(struct trace *t);

#endif
