/*
 * predictor.h - the predictor context: what the daemon links against.
 *
 * Feed it every access (file, chunk range, op, time); it keeps the GRU
 * placement model (placement.h), the GRU prefetch model (prefetch.h), a
 * shadow copy of the fast tier under the learned policy and under classical
 * policies (to tell which is better on the live stream), and anomaly
 * detectors on the models' losses.  Ask it for prefetch candidates, region
 * rankings and tier moves; let it train in a background thread within a CPU
 * budget, or call predictor_train() yourself; save and load its models as
 * bytes (the daemon keeps them in RocksDB).
 *
 * All calls are thread safe (one mutex; the daemon's recorder thread is the
 * intended single writer, siltctl-style readers may call the getters).
 * Errors are negative errno values.
 */
#ifndef SILTFS_PREDICTOR_PREDICTOR_H
#define SILTFS_PREDICTOR_PREDICTOR_H

#include <stddef.h>
#include <stdint.h>

#include "predictor/placement.h"
#include "predictor/policy.h"

typedef struct predictor predictor_t;

struct predictor_config {
	uint64_t fast_capacity;    /* chunks the fast tier holds */
	uint32_t region_shift;     /* chunks per region = 2^shift (<= 6) */
	uint32_t window;           /* accesses per window; 0: 2 * capacity / horizon */
	uint32_t horizon;          /* windows ahead that count as "reused soon" */
	uint32_t hidden;           /* placement GRU hidden size */
	float lr;
	float margin;              /* see placer_config.margin */
	uint32_t max_regions;      /* see placer_config.max_regions */
	uint32_t train_interval;   /* accesses per training step (of each model) */
	double cpu_budget;         /* share of one core predictor_start()'s
				    * training thread may use */
	int prefetch;              /* run the prefetch model */
	float prefetch_threshold;
	uint32_t prefetch_hidden;
	uint32_t prefetch_depth;
	uint32_t shadow_mask;      /* 1 << policy_kind for each shadow policy */
	uint64_t seed;
};

struct predictor_access {
	uint64_t file;     /* < 2^28 */
	uint64_t chunk;    /* first chunk, < 2^36 */
	uint32_t nchunks;  /* >= 1 */
	uint8_t op;        /* 0 read, 1 write */
	uint64_t time_us;
	uint8_t *hits;     /* optional: per chunk, 1 if on the learned fast tier */
};

struct predictor_run {
	uint64_t file, chunk;
	uint32_t nchunks;
	float confidence;
};

enum predictor_event_type {
	PRED_EVENT_PLACEMENT_ANOMALY = 1, /* placement loss far above normal */
	PRED_EVENT_PREFETCH_ANOMALY,      /* prefetch loss far above normal */
	PRED_EVENT_WINNER_CHANGED,        /* GRU vs best classical flipped */
};

struct predictor_event {
	enum predictor_event_type type;
	uint64_t window;
	double value, baseline;
};

struct predictor_stats {
	uint64_t accesses, windows, regions;
	/* Shadow comparison, rolling over recent windows. */
	double shadow_gru_hit_ratio;
	double shadow_best_hit_ratio;
	enum policy_kind shadow_best;
	int gru_better;            /* 1 GRU, 0 classical, -1 no shadows */
	double placement_loss, placement_baseline;
	double placement_mean_loss;  /* over all labels so far */
	double placement_base_rate;  /* share of labels that were "reused" */
	double prefetch_loss, prefetch_baseline;
	double prefetch_gru_accuracy, prefetch_heuristic_accuracy;
	int prefetch_using_gru;
	uint64_t anomalies, train_steps, fast_evictions;
	double train_cpu_ms;
	uint64_t model_bytes;      /* placement + prefetch models, serialised */
};

void predictor_config_default(struct predictor_config *c);
int predictor_create(const struct predictor_config *c, predictor_t **out);
/* Stops the training thread if it runs. */
void predictor_destroy(predictor_t *p);

/* Record one request.  Returns how many of its chunks were on the learned
 * fast tier (the shadow placement), or -errno. */
int predictor_record(predictor_t *p, const struct predictor_access *a);

/* Prefetch candidates produced since the last call, not already on the
 * learned fast tier.  Returns the count. */
long predictor_prefetch(predictor_t *p, struct predictor_run *out, size_t max);

/* Regions by reuse probability, and tier moves for one epoch. */
long predictor_rank(predictor_t *p, struct placer_region_info *out, size_t max);
long predictor_plan(predictor_t *p, enum placer_mode mode, const uint64_t *caps,
		    unsigned ntiers, float hysteresis, struct placer_move *out,
		    size_t max);
int predictor_set_tier(predictor_t *p, uint64_t file, uint64_t chunk, uint8_t tier);

/* Run 'steps' training steps now, in the caller's thread. */
int predictor_train(predictor_t *p, unsigned steps);
/* Background training thread ("silt-predict"); -EALREADY if running. */
int predictor_start(predictor_t *p);
void predictor_stop(predictor_t *p);

/* 1 and an event, or 0 when none is queued. */
int predictor_poll_event(predictor_t *p, struct predictor_event *ev);
void predictor_stats(predictor_t *p, struct predictor_stats *s);

/* Models as bytes: *buf is malloc'ed, the caller frees it.  Loading
 * refuses another format version or model shape, with a reason in err. */
int predictor_save(predictor_t *p, void **buf, size_t *len);
int predictor_load(predictor_t *p, const void *buf, size_t len, char *err,
		   size_t errlen);

#endif
