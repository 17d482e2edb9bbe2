/*
 * prefetch.h - the prefetch model: what will this stream read next.
 *
 * Per stream (a file, or a VM disk), the sequence of request start offsets
 * is turned into deltas in chunks relative to the end of the previous
 * request (0 = sequential).  A vocabulary of the most frequent deltas (class
 * 1..V-1, assigned online once a delta has been seen often enough, and kept
 * so that the model's outputs stay stable) plus "other" (class 0) is what a
 * GRU over (delta class, arrival gap, op, size) predicts, one step ahead.
 * Candidates whose probability passes the threshold become a run of chunks
 * to read into the RAM tier.
 *
 * A majority-delta heuristic (the most common delta of the last 8 requests)
 * runs beside it; both are scored on every request (rolling top-1 accuracy)
 * and the one with the better score makes the prediction, so a cold or
 * confused GRU costs nothing.
 *
 * Training uses the same split as the placer: take (locked), train
 * (unlocked, private weights), publish (locked).
 */
#ifndef SILTFS_PREDICTOR_PREFETCH_H
#define SILTFS_PREDICTOR_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

typedef struct prefetcher prefetcher_t;
typedef struct prefetch_trainer prefetch_trainer_t;

struct prefetch_config {
	uint32_t vocab;     /* classes including "other", 2..64 */
	uint32_t hidden;
	uint32_t bptt;      /* steps per training sequence */
	uint32_t batch;
	float lr;
	float threshold;    /* minimum confidence to prefetch */
	uint32_t max_run;   /* chunks per candidate, at most */
	uint32_t depth;     /* requests predicted ahead (repeating the delta);
			     * with 'adaptive', the most of them */
	int from_start;     /* deltas between request starts (a stride, as Leap
			     * takes it), not from the end of the last one:
			     * a strided stream of varying request sizes has
			     * one start delta but many end deltas */
	float deep_threshold; /* adaptive: confidence needed to look further
			       * ahead than one request */
	int adaptive;       /* size the depth per stream as Leap does: 2^ceil(
			     * log2(used + 1)) after 'used' prefetches were
			     * used since the last prediction, half the last
			     * depth after none (see prefetcher_used) */
	uint64_t seed;
};

struct prefetch_run {
	uint64_t file, chunk;
	uint32_t nchunks;
	float confidence;
};

struct prefetch_stats {
	uint64_t requests, predictions, streams;
	double gru_accuracy, heuristic_accuracy; /* rolling top-1 */
	int using_gru;
	double last_loss, rolling_loss;          /* GRU cross-entropy */
	uint64_t train_steps;
	uint64_t model_bytes;
};

void prefetch_config_default(struct prefetch_config *c);
int prefetcher_create(const struct prefetch_config *c, prefetcher_t **out);
void prefetcher_destroy(prefetcher_t *pf);

/* One request of 'nchunks' chunks from 'chunk' at time_us.  Returns the
 * number of candidate runs now waiting (0..depth) or -errno. */
int prefetcher_observe(prefetcher_t *pf, uint64_t file, uint64_t chunk,
		       uint32_t nchunks, int is_write, uint64_t time_us);

/* A chunk prefetched for 'file' was used by a demand access (feeds the
 * adaptive depth). */
void prefetcher_used(prefetcher_t *pf, uint64_t file);

/* Take the candidates produced by the last observe (and forget them). */
size_t prefetcher_take(prefetcher_t *pf, struct prefetch_run *out, size_t max);

void prefetcher_stats(const prefetcher_t *pf, struct prefetch_stats *s);

int prefetch_trainer_create(prefetcher_t *pf, prefetch_trainer_t **out);
void prefetch_trainer_destroy(prefetch_trainer_t *t);
int prefetch_take_batch(prefetcher_t *pf, prefetch_trainer_t *t);
double prefetch_train_batch(prefetch_trainer_t *t);
int prefetch_publish(prefetcher_t *pf, prefetch_trainer_t *t);

int prefetcher_save(const prefetcher_t *pf, void *buf, size_t cap, size_t *len);
int prefetcher_load(prefetcher_t *pf, prefetch_trainer_t *t, const void *buf,
		    size_t len, char *err, size_t errlen);

#endif
