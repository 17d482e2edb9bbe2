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
	uint64_t seed;
};

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
	uint64_t expert_hits[MIX_MAX_EXPERTS]; /* since creation */
};

void mix_config_default(struct mix_config *c);
/* -EINVAL on a bad config (no expert, more than 8, Belady or a learned kind
 * among them), -ENOMEM. */
int mix_create(const struct mix_config *c, uint64_t capacity, policy_t **out);
/* p must come from mix_create() or policy_create(POLICY_MIX, ...). */
void mix_get_stats(const policy_t *p, struct mix_stats *s);

#endif
