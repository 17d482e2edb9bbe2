/*
 * anomaly.h - "the model is suddenly much worse than it usually is".
 *
 * Fed one loss value per window, it keeps a slow exponential mean and
 * variance of the loss (its normal level) and raises an event when the loss
 * stays above mean + k * stddev, and above ratio * mean, for 'windows'
 * windows in a row: a changed access pattern (or something suspicious), on
 * which the predictor asks for retraining.  After an event the baseline is
 * relearned from the new level, so one change gives one event, not a storm.
 */
#ifndef SILTFS_PREDICTOR_ANOMALY_H
#define SILTFS_PREDICTOR_ANOMALY_H

#include <stdint.h>

struct anomaly_config {
	double alpha;     /* weight of a new window in the baseline */
	double k;         /* standard deviations above the mean */
	double ratio;     /* and at least this multiple of the mean */
	uint32_t windows; /* consecutive windows needed */
	uint32_t warmup;  /* windows before any event */
};

typedef struct anomaly anomaly_t;

void anomaly_config_default(struct anomaly_config *c);
int anomaly_create(const struct anomaly_config *c, anomaly_t **out);
void anomaly_destroy(anomaly_t *a);
/* Returns 1 when this window completes an anomaly, 0 otherwise. */
int anomaly_update(anomaly_t *a, double loss);
double anomaly_baseline(const anomaly_t *a);
uint64_t anomaly_events(const anomaly_t *a);

#endif
