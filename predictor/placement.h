/*
 * placement.h - the GRU placement model.
 *
 * Chunks are grouped into regions of 2^region_shift consecutive chunks of one
 * file.  Time is cut into windows of 'window' accesses.  At the end of each
 * window every region that was touched (and, every 'horizon' windows, every
 * idle region that still has chunks on the fast tier) advances its own GRU
 * hidden state by one step over that window's features (reads, writes,
 * recency, sequentiality, reuse, share on the fast tier, long-term
 * frequency, footprint) and the read-out gives p = P(region is accessed again
 * within 'horizon' windows).  The GRU weights are shared by all regions of a
 * volume; each file (VM disk) fine-tunes a bias on top; a region only keeps
 * its hidden state and a short history for training.
 *
 * Labels come from the stream itself (was the region touched within the
 * horizon or not), so training is online and never looks ahead.
 *
 * The learned cache policy (placer_policy_create) runs S3-FIFO's queues and
 * lets the region's p decide what S3-FIFO decides on one bit of history:
 * which new chunks earn a place in the main queue, and which main-queue
 * chunks get one more round before eviction.  placer_plan() turns p into tier moves for the
 * daemon: rank and fill tiers top down by capacity (with hysteresis and a cap
 * on moves), or the spec's fixed thresholds.
 *
 * Not thread safe; the predictor context serialises calls.  Training can be
 * split so that the heavy part runs without the caller's lock:
 * placer_take_batch() (locked) -> placer_train_batch() (unlocked, on the
 * trainer's own copy of the weights) -> placer_publish() (locked).
 */
#ifndef SILTFS_PREDICTOR_PLACEMENT_H
#define SILTFS_PREDICTOR_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "predictor/policy.h"

/* A chunk's key: file (< 2^28) in the high bits, chunk (< 2^36) below. */
#define PRED_KEY(file, chunk) (((uint64_t)(file) << 36) | (uint64_t)(chunk))
#define PRED_KEY_FILE(key) ((key) >> 36)
#define PRED_KEY_CHUNK(key) ((key) & ((1ULL << 36) - 1))
#define PRED_MAX_FILE ((1ULL << 28) - 1)
#define PRED_MAX_CHUNK ((1ULL << 36) - 1)

typedef struct placer placer_t;
typedef struct placer_trainer placer_trainer_t;
typedef struct placer_batch placer_batch_t;

struct placer_config {
	uint32_t region_shift; /* chunks per region = 2^shift, 0..6 */
	uint32_t window;       /* accesses per window */
	uint32_t horizon;      /* windows ahead a reuse counts as "soon" */
	uint32_t hidden;       /* GRU hidden size */
	uint32_t bptt;         /* steps kept per region for training */
	uint32_t batch;        /* sequences per training step */
	float lr;
	float margin;          /* learned policy: keep/promote a chunk when its
				* region's p exceeds margin x the base rate */
	uint32_t max_regions;  /* forget cold regions beyond this many (0: never) */
	uint64_t seed;
};

struct placer_stats {
	uint64_t windows, regions, steps, samples, train_steps;
	uint64_t forgotten;       /* regions dropped to bound memory */
	double last_window_loss;  /* mean BCE of labels resolved in the last window */
	double rolling_loss;      /* exponential average over windows */
	double mean_loss;         /* over every label resolved so far */
	uint64_t positives;       /* labels that resolved to "reused" */
	uint64_t model_bytes;     /* serialised size of the shared weights */
};

enum placer_mode { PLACER_RANK, PLACER_THRESHOLDS };

struct placer_move {
	uint64_t file, chunk;  /* first chunk of the region */
	uint32_t nchunks;
	uint8_t from, to;      /* tier indexes, 0 = fastest */
	float p;
};

/* Tier value meaning "the slowest tier, or not known".  Only regions there
 * (and with nothing on the learned fast tier) are ever forgotten: a region
 * on a faster tier must stay known so that the planner can demote it. */
#define PLACER_TIER_BOTTOM 255

struct placer_region_info {
	uint64_t file, chunk;
	uint32_t nchunks;
	uint8_t tier;
	float p;
};

void placer_config_default(struct placer_config *c);
int placer_create(const struct placer_config *c, placer_t **out);
void placer_destroy(placer_t *pl);

/* Record one access.  Returns 1 if this access closed a window (the caller
 * may then read placer_window_loss), 0 otherwise, or -errno. */
int placer_observe(placer_t *pl, uint64_t file, uint64_t chunk, int is_write);

/* Mean loss of the labels resolved in the window that just closed, and how
 * many there were. */
double placer_window_loss(const placer_t *pl, uint64_t *count);

/* Current reuse probability of the region holding (file, chunk); the
 * model's prior for a region never seen. */
float placer_probability(placer_t *pl, uint64_t file, uint64_t chunk);

/* The learned policy over this placer (at most one per placer). */
int placer_policy_create(placer_t *pl, uint64_t capacity, policy_t **out);

/* Tell the placer which tier a region's chunks are on (for the features and
 * for planning); the learned policy does this itself for its fast tier. */
int placer_set_tier(placer_t *pl, uint64_t file, uint64_t chunk, uint8_t tier);

/* Ranking: up to max regions, most likely reused first. */
long placer_rank(placer_t *pl, struct placer_region_info *out, size_t max);

/*
 * Plan moves for one epoch.  caps[t] is tier t's capacity in chunks (tier 0
 * fastest).  PLACER_RANK fills tiers top down by p; a region only changes
 * tier when its p is beyond the tier boundary's p by 'hysteresis', and at
 * most max moves are returned (largest benefit first).  PLACER_THRESHOLDS
 * uses the spec's fixed thresholds (p >= 0.8 tier 0, >= 0.5 tier 1,
 * >= 0.2 tier 2, else tier 3), spilling down when a tier is full.
 */
long placer_plan(placer_t *pl, enum placer_mode mode, const uint64_t *caps,
		 unsigned ntiers, float hysteresis, struct placer_move *out,
		 size_t max);

/* Training, see above.  A batch and a trainer belong to one placer shape. */
int placer_trainer_create(placer_t *pl, placer_trainer_t **out);
void placer_trainer_destroy(placer_trainer_t *t);
/* Returns the number of sequences taken (0 = not enough samples yet). */
int placer_take_batch(placer_t *pl, placer_trainer_t *t);
/* Returns the batch's mean loss (>= 0) or -errno. */
double placer_train_batch(placer_trainer_t *t);
int placer_publish(placer_t *pl, placer_trainer_t *t);

void placer_stats(const placer_t *pl, struct placer_stats *s);

/* Shared weights as bytes (gru.h format) and back; see gru_load for errors. */
int placer_save(const placer_t *pl, void *buf, size_t cap, size_t *len);
int placer_load(placer_t *pl, placer_trainer_t *t, const void *buf, size_t len,
		char *err, size_t errlen);

#endif
