/*
 * mix.h - the learned placement policy: classical experts, weighted by a GRU.
 *
 * Several classical policies (the experts) run beside each other on the same
 * stream, each with the full capacity, as shadows: they only hold keys.  The
 * real fast tier is one more set of keys of the same capacity.  Every real
 * key belongs to a bucket given by which experts also hold it (a bit mask);
 * when the real tier must evict, the key goes whose experts carry the least
 * weight, oldest first within a bucket.  With all the weight on one expert
 * the real tier converges on that expert's contents (it evicts what that
 * expert has already evicted); with the weight spread, it evicts what most
 * of the weighted experts agree on.
 *
 * The weights come from a GRU that, at the end of each window of accesses,
 * reads the experts' hit ratios in that window and predicts (softmax) which
 * expert will have the most hits over the next 'horizon' windows; it is
 * trained online on exactly that label once the horizon has passed, so it
 * never looks ahead.  Beside it, a follow-the-leader heuristic (the expert
 * with the best smoothed hit ratio) makes the same prediction; both are
 * scored on every resolved window (hits of the chosen expert over the next
 * horizon against the best expert's) and the better scorer sets the weights.
 * Where one expert is best throughout, the policy follows it; where the best
 * expert changes with the workload's phases and the phases repeat, the GRU
 * learns to switch ahead of the heuristic.
 *
 * The real tier follows the weights on demand misses (the eviction order)
 * and, once per window, by background promotion of the leading expert's
 * best keys that it lacks, within a migration budget ('sync').
 *
 * Sampled mode ('sample' < 1, or a 'state_budget' that sets it): the
 * experts are SHARDS-style spatially sampled shadows.  An expert only sees
 * the keys whose hash falls under sample x 2^24, its capacity is the
 * fast tier's times the same rate, and its hits are scaled back by it, so
 * that scoring the experts costs about 'sample' of the memory and CPU.
 * Without full shadows there is no mask per real key; instead the real
 * tier is one ordinary policy of one expert's kind: the expert with the
 * most sampled hits (decayed by 'follow_decay' per window), rebuilt (same
 * keys, the new rule) when another expert gets ahead of it by
 * 'follow_margin'.  The GRU and the heuristics still pick a leader per
 * window, but in this mode it only chooses whose sampled keys 'sync'
 * promotes.  Measured in docs/predictor.md: this loses most of what the
 * mixture gains over the best classical policy.
 *
 * Not thread safe (the caller serialises, like every policy).
 */
#ifndef SILTFS_PREDICTOR_MIX_H
#define SILTFS_PREDICTOR_MIX_H

#include <stddef.h>
#include <stdint.h>

#include "predictor/policy.h"

#define MIX_MAX_EXPERTS 8

struct mix_config {
	uint32_t experts;        /* mask of 1 << policy_kind, at most 8 kinds */
	uint32_t window;         /* accesses per window; 0: capacity / 4, >= 256 */
	uint32_t horizon;        /* windows the label looks ahead */
	uint32_t hidden;         /* GRU hidden size */
	uint32_t bptt;           /* steps per training sequence */
	uint32_t batch;          /* sequences per training step */
	uint32_t train_interval; /* accesses per training step; 0: never */
	float lr;
	float temperature;       /* softmax temperature of the weights */
	float smoothing;         /* heuristic: weight of the newest window */
	float sync;              /* background promotions of the leader's keys,
				  * per window, as a share of the window */
	int sync_on_switch;      /* promote all the new leader's keys at a switch */
	float sample;            /* share of the keys the experts see, (0, 1];
				  * 1: full shadows (the unsampled mode) */
	uint64_t state_budget;   /* bytes for the mixture's own state: the
				  * experts' shadows, the GRU and its ring (not
				  * the real tier, an index any policy needs);
				  * 0: use 'sample', else it sets the rate */
	uint32_t ring;           /* windows kept for training; 0: 1024 */
	float follow_margin;     /* sampled: the real tier takes the leader's
				  * rule when its smoothed hit ratio is this
				  * share above the rule's in use */
	float follow_decay;      /* sampled: per window decay of the hit counts
				  * that choose the real tier's rule; 0: all */
	uint64_t seed;
};

/* What one shadow key costs, the mean of the four default experts measured
 * in siltfs-sim (S3-FIFO 100, LIRS 118, SIEVE 46, W-TinyLFU 55 bytes per
 * key of capacity), rounded up: a budget sets the rate with it. */
#define MIX_SHADOW_KEY_BYTES 96
/* A sampled shadow smaller than this is refused: the policies' own small
 * queues (S3-FIFO's 10%, LIRS's 1%) would round to nothing. */
#define MIX_MIN_SHADOW 64

struct mix_stats {
	uint64_t windows, train_steps, switches;
	uint64_t promotions;          /* background promotions (migrations up) */
	int leader;                   /* index of the expert with most weight */
	enum policy_kind leader_kind;
	int using_gru;                /* 1 when the GRU sets the weights */
	uint64_t gru_windows;         /* windows in which it did */
	double gru_score, heuristic_score; /* rolling, 1 = always the best */
	double train_cpu_ns;          /* spent in training steps */
	uint64_t model_bytes;         /* the GRU, serialised */
	uint32_t nexperts;
	enum policy_kind expert[MIX_MAX_EXPERTS];
	uint64_t expert_hits[MIX_MAX_EXPERTS]; /* since creation; sampled:
						* scaled back by 1 / rate */
	double sample_rate;           /* 1 when unsampled */
	uint64_t shadow_capacity;     /* keys per expert shadow */
	uint64_t rebuilds;            /* sampled: real tier re-made at a switch */
	enum policy_kind real_kind;   /* sampled: the rule the real tier runs;
				       * POLICY_MIX when unsampled */
};

void mix_config_default(struct mix_config *c);
/* NULL if c can run a fast tier of 'capacity' keys, else what is wrong
 * (a constant string naming the setting). */
const char *mix_config_error(const struct mix_config *c, uint64_t capacity);
/* What the GRU, its training state and the ring take (an estimate from the
 * shapes; the budget's share left for the shadows is the rest). */
uint64_t mix_fixed_bytes(const struct mix_config *c);
/* The rate c gives at that capacity (the budget's, or 'sample'). */
double mix_sample_rate(const struct mix_config *c, uint64_t capacity);
/* -EINVAL on a bad config (mix_config_error() says why), -ENOMEM. */
int mix_create(const struct mix_config *c, uint64_t capacity, policy_t **out);
/* p must come from mix_create() or policy_create(POLICY_MIX, ...). */
void mix_get_stats(const policy_t *p, struct mix_stats *s);

#endif
