/* The sender's timing (schedule.h).
 *
 * The forecaster sees the foreground's writes in ticks; the decision each
 * time the sender looks is, in this order:
 *   - nothing to ship: wait;
 *   - the oldest change would pass max_lag before a batch cut now is
 *     through (a margin of twice the recent ship time, at least
 *     MIN_MARGIN_MS): ship ("lag");
 *   - quiet now and forecast quiet long enough for a batch to go through
 *     (its recent ship time, and a tick for the forecast's edges): ship
 *     ("quiet"), once the changes are a tick old (so that a quiet
 *     period's trickle goes as one batch);
 *   - a quiet tick forecast before the lag runs out: wait for it;
 *   - none: ship on the interval ("interval"), as the interval mode does.
 * Writes are what is measured because they are what the sender competes
 * with for the tiers and what it has to ship; its own reads do not count,
 * so shipping cannot make a period look busy. */
#include "sync/schedule.h"
#include "predictor/quiet.h"
#include "utils/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define MIN_MARGIN_MS 300

struct sync_sched {
	struct sched_conf c;
	quiet_t *q;
	uint64_t tick_start, tick_writes, last_writes, last_now;
	double ship_ms;           /* smoothed time a batch takes */
	pthread_mutex_t lock;     /* the counters below, for status */
	uint64_t ships_quiet, ships_lag, ships_interval;
	struct quiet_stats qs;
};

int sched_create(const struct sched_conf *c, struct sync_sched **out)
{
	struct sync_sched *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->c = *c;
	if (!s->c.tick_ms)
		s->c.tick_ms = 200;
	if ((r = quiet_create(c->busy_ops > 0 ? c->busy_ops : 200, &s->q))) {
		free(s);
		return r;
	}
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
}

void sched_free(struct sync_sched *s)
{
	if (!s)
		return;
	quiet_destroy(s->q);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void sched_look(struct sync_sched *s, uint64_t now_ms, uint64_t fg_writes)
{
	if (!s->tick_start) {
		s->tick_start = now_ms;
		s->tick_writes = fg_writes;
	}
	s->last_now = now_ms;
	s->last_writes = fg_writes;
	uint64_t k = (now_ms - s->tick_start) / s->c.tick_ms;
	if (!k)
		return;
	/* ticks the sender slept through (a long ship) share what they saw */
	uint64_t per = (fg_writes - s->tick_writes) / k;
	for (uint64_t i = 0; i < MIN(k, QUIET_HISTORY); i++)
		quiet_tick(s->q, per, (double)s->c.tick_ms / 1000.0);
	s->tick_start += k * s->c.tick_ms;
	s->tick_writes = fg_writes;
	pthread_mutex_lock(&s->lock);
	quiet_get_stats(s->q, &s->qs);
	pthread_mutex_unlock(&s->lock);
}

static int ship(struct sync_sched *s, uint64_t *counter)
{
	pthread_mutex_lock(&s->lock);
	(*counter)++;
	pthread_mutex_unlock(&s->lock);
	return 1;
}

/* Busy in the tick under way (once it is long enough to tell). */
static int busy_now(struct sync_sched *s)
{
	uint64_t ms = s->last_now - s->tick_start;
	if (ms < 50)
		return -1;
	return quiet_is_busy(s->q, s->last_writes - s->tick_writes, (double)ms / 1000.0);
}

int sched_due(struct sync_sched *s, uint64_t age_ms)
{
	if (!age_ms)
		return 0;
	if (s->c.mode == SCHED_INTERVAL) {
		if (age_ms + 100 >= s->c.max_lag_ms)
			return ship(s, &s->ships_lag);
		return age_ms >= MIN(s->c.interval_ms, s->c.max_lag_ms / 2) ? ship(s, &s->ships_interval) : 0;
	}
	uint64_t margin = MAX((uint64_t)(2 * s->ship_ms), MIN_MARGIN_MS);
	if (age_ms + margin >= s->c.max_lag_ms)
		return ship(s, &s->ships_lag);
	struct quiet_forecast f;
	uint64_t left = s->c.max_lag_ms - margin - age_ms;
	quiet_forecast(s->q, (uint32_t)MIN(left / s->c.tick_ms, QUIET_HISTORY), &f);
	int now = busy_now(s);
	if (now < 0)
		now = f.next_busy; /* a tick just began: what was forecast for it */
	/* quiet long enough for a batch to go through, with a tick to spare
	 * for the forecast's edges */
	uint32_t need = 2 + (uint32_t)(s->ship_ms / (double)s->c.tick_ms);
	if (!now && f.start == 1 && f.len >= need)
		return age_ms >= s->c.tick_ms ? ship(s, &s->ships_quiet) : 0;
	if (f.start != QUIET_NONE)
		return 0; /* a quiet period comes in time: wait for it */
	return age_ms >= s->c.interval_ms ? ship(s, &s->ships_interval) : 0;
}

void sched_shipped(struct sync_sched *s, uint64_t ms)
{
	s->ship_ms = s->ship_ms ? 0.8 * s->ship_ms + 0.2 * (double)ms : (double)ms;
}

void sched_status(struct sync_sched *s, FILE *o)
{
	pthread_mutex_lock(&s->lock);
	fprintf(o, " schedule=%s period_ms=%llu forecasts=%llu forecasts_right=%llu ships_quiet=%llu "
		"ships_lag=%llu ships_interval=%llu",
		s->c.mode == SCHED_QUIET ? "quiet" : "interval",
		(unsigned long long)(s->qs.period * s->c.tick_ms), (unsigned long long)s->qs.scored,
		(unsigned long long)s->qs.correct, (unsigned long long)s->ships_quiet,
		(unsigned long long)s->ships_lag, (unsigned long long)s->ships_interval);
	pthread_mutex_unlock(&s->lock);
}
