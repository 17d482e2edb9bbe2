/* quiet.h - a forecaster of a volume's quiet periods, for predictive sync
 * timing: the replication sender ships in the periods it forecasts quiet,
 * as long as the lag allows (sync/schedule.c).
 *
 * Time is cut into ticks; a tick is busy when the foreground ran more than
 * a threshold of operations a second in it. The forecaster remembers the
 * last QUIET_HISTORY ticks as bits, looks for the period of their pattern
 * (the shift that makes the series agree best with itself, as a VM's
 * backups, cron jobs and batch loads repeat) and forecasts the next ticks
 * as the same phase of the last period; with no period found, as the last
 * tick (persistence). It scores its own one-tick forecasts as ticks come
 * in, so that status can say how good they are. Not thread-safe: one
 * owner (the sender) calls it. */
#ifndef SILTFS_PREDICTOR_QUIET_H
#define SILTFS_PREDICTOR_QUIET_H

#include <stdint.h>

#define QUIET_HISTORY 1024 /* ticks remembered */
#define QUIET_NONE UINT32_MAX

typedef struct quiet quiet_t;

/* busy_ops: operations a second above which a tick is busy (> 0). */
int quiet_create(double busy_ops, quiet_t **out);
void quiet_destroy(quiet_t *q);

/* One tick ended with ops operations in tick_s seconds. */
void quiet_tick(quiet_t *q, uint64_t ops, double tick_s);
/* Whether ops in s seconds is busy, by the same measure. */
int quiet_is_busy(const quiet_t *q, uint64_t ops, double s);

struct quiet_forecast {
	int next_busy;      /* the forecast for the next tick */
	uint32_t start;     /* ticks from now to the first forecast quiet tick
			     * (1 = the next), QUIET_NONE: none within the horizon */
	uint32_t len;       /* how many quiet ticks follow from start (within it) */
	uint32_t period;    /* ticks, 0: none found */
};
/* Forecast the next horizon ticks (at most QUIET_HISTORY). */
void quiet_forecast(const quiet_t *q, uint32_t horizon, struct quiet_forecast *f);

struct quiet_stats {
	uint64_t ticks, busy_ticks;
	uint64_t scored, correct;   /* one-tick forecasts checked, and right */
	uint32_t period;
	double period_agreement;    /* share of ticks the period explains */
};
void quiet_get_stats(const quiet_t *q, struct quiet_stats *st);

#endif
