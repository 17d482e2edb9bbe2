/* When a sender cuts and ships the next journal batch (internal to sync/).
 *
 * "interval": every interval, or sooner when the oldest change would
 * otherwise pass max_lag. "quiet" (predictive sync timing): in the quiet
 * periods that the forecaster (predictor/quiet.h) sees coming in the
 * foreground's writes, as long as the lag stays under max_lag; at once
 * when it would not; on the interval when no quiet period is forecast
 * before the lag runs out. The sender's thread calls it; sched_status may
 * come from any thread. */
#ifndef SILT_SYNC_SCHEDULE_H
#define SILT_SYNC_SCHEDULE_H

#include <stdint.h>
#include <stdio.h>

enum { SCHED_INTERVAL = 0, SCHED_QUIET = 1 };

struct sched_conf {
	int mode;
	uint64_t interval_ms, max_lag_ms;
	uint64_t tick_ms;      /* the forecaster's tick */
	double busy_ops;       /* foreground writes a second above which a tick is busy */
};

struct sync_sched;

int sched_create(const struct sched_conf *c, struct sync_sched **out);
void sched_free(struct sync_sched *s);
/* The foreground's writes so far (a counter) at now_ms: call often. */
void sched_look(struct sync_sched *s, uint64_t now_ms, uint64_t fg_writes);
/* Whether to cut now, the oldest change not cut being age_ms old (0: none). */
int sched_due(struct sync_sched *s, uint64_t age_ms);
/* A batch took ms to ship (the margin kept before max_lag follows it). */
void sched_shipped(struct sync_sched *s, uint64_t ms);
/* " schedule=... " fields of the peer's status record. */
void sched_status(struct sync_sched *s, FILE *o);

#endif
