/*
 * pfengine.h - one interface for every prefetcher: what should be read into
 * the RAM tier ahead of demand.
 *
 *   PFE_READAHEAD  Linux-style sequential readahead: per stream, a read that
 *                  continues the previous one opens a window of 4 x its size
 *                  ahead of it; reaching the window's async marker (its
 *                  second half) issues the next window, twice as large, up to
 *                  'max_window' chunks.  A read elsewhere closes the window.
 *   PFE_LEAP       Leap's majority-trend prefetcher (Maruf and Chowdhury,
 *                  ATC'20): the Boyer-Moore majority of the stream's recent
 *                  deltas (the last 4, 8, 16, then 32, first found wins) is
 *                  the stride; the prefetch window is 2^ceil(log2(hits + 1))
 *                  requests along it, where hits is how many of this stream's
 *                  prefetches were used since its last prefetch, at most
 *                  'max_window' requests; no trend, no prefetch.
 *   PFE_GRU        the GRU delta prefetcher of prefetch.h (with its own
 *                  majority fallback), trained inline every 'train_interval'
 *                  requests.
 *
 * The caller tells the engine about every request (pfe_observe), takes the
 * candidate runs (pfe_take), and reports each prefetched chunk that was used
 * (pfe_used, Leap's feedback).  Not thread safe.
 */
#ifndef SILTFS_PREDICTOR_PFENGINE_H
#define SILTFS_PREDICTOR_PFENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "predictor/prefetch.h"

enum pfe_kind { PFE_NONE, PFE_READAHEAD, PFE_LEAP, PFE_GRU, PFE__COUNT };

struct pfe_config {
	enum pfe_kind kind;
	uint32_t max_window;          /* readahead: chunks; Leap: requests */
	uint32_t train_interval;      /* GRU: requests per training step, 0: never */
	struct prefetch_config gru;   /* GRU settings */
};

struct pfe_stats {
	uint64_t requests, runs, train_steps;
	double train_cpu_ns;
	uint64_t model_bytes;
};

typedef struct pf_engine pf_engine_t;

/* "none", "ra", "leap", "gru" */
int pfe_kind_parse(const char *name, enum pfe_kind *out);
const char *pfe_kind_name(enum pfe_kind kind);

void pfe_config_default(struct pfe_config *c, enum pfe_kind kind);
/* -EINVAL (bad kind or settings), -ENOMEM. */
int pfe_create(const struct pfe_config *c, pf_engine_t **out);
void pfe_destroy(pf_engine_t *e);

/* One request; returns the number of runs now waiting, or -errno. */
int pfe_observe(pf_engine_t *e, uint64_t file, uint64_t chunk, uint32_t nchunks,
		int is_write, uint64_t time_us);
size_t pfe_take(pf_engine_t *e, struct prefetch_run *out, size_t max);
/* A chunk this engine prefetched for 'file' was used by a demand access. */
void pfe_used(pf_engine_t *e, uint64_t file);
void pfe_stats(const pf_engine_t *e, struct pfe_stats *s);

#endif
