/* quiet.c - forecasting quiet periods (quiet.h).
 *
 * Data: a ring of busy bits, one per tick, and the period found last.
 * Finding the period is autocorrelation on bits: for each shift L the share
 * of ticks t with b[t] == b[t - L]; the best shift wins, the smallest of
 * those within a whisker of it (a period's multiples agree as well as the
 * period itself), and only if it explains the series better than the
 * previous tick does (persistence, the forecast with no period). It is
 * searched again every SEARCH_EVERY ticks, over at most the whole ring:
 * about QUIET_HISTORY^2 / 3 bit compares, a few hundred microseconds every
 * couple of seconds at the sender's tick. */
#include "predictor/quiet.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SEARCH_EVERY 8
#define MIN_TICKS 24        /* before this, persistence only */
#define MIN_AGREEMENT 0.85  /* a period must explain this share of ticks */
#define WHISKER 0.05
#define MIN_SHARE 0.05      /* both states must make up this share */

struct quiet {
	double busy_ops;
	uint8_t bit[QUIET_HISTORY];
	uint64_t n;              /* ticks seen; the last is bit[(n - 1) % H] */
	uint32_t period;
	double agreement;
	int predicted;           /* the forecast of the tick to come, -1: none */
	uint64_t busy, scored, correct;
};

int quiet_create(double busy_ops, quiet_t **out)
{
	if (!(busy_ops > 0))
		return -EINVAL;
	quiet_t *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->busy_ops = busy_ops;
	q->predicted = -1;
	*out = q;
	return 0;
}

void quiet_destroy(quiet_t *q)
{
	free(q);
}

int quiet_is_busy(const quiet_t *q, uint64_t ops, double s)
{
	return s > 0 && (double)ops / s > q->busy_ops;
}

/* The bit of absolute tick t (n - QUIET_HISTORY <= t < n). */
static int bit_at(const quiet_t *q, uint64_t t)
{
	return q->bit[t % QUIET_HISTORY];
}

/* Share of ticks in the last w that agree with the tick lag before them. */
static double agreement(const quiet_t *q, uint64_t w, uint32_t lag)
{
	uint64_t same = 0;

	for (uint64_t t = q->n - w + lag; t < q->n; t++)
		same += bit_at(q, t) == bit_at(q, t - lag);
	return (double)same / (double)(w - lag);
}

static void find_period(quiet_t *q)
{
	uint64_t w = q->n < QUIET_HISTORY ? q->n : QUIET_HISTORY, busy = 0;

	q->period = 0;
	q->agreement = 0;
	for (uint64_t t = q->n - w; t < q->n; t++)
		busy += bit_at(q, t);
	if (busy < MIN_SHARE * w || w - busy < MIN_SHARE * w)
		return; /* all one state: persistence says it all */
	double score[QUIET_HISTORY / 3 + 1], best = 0;
	uint32_t maxlag = (uint32_t)(w / 3);
	for (uint32_t l = 2; l <= maxlag; l++)
		if ((score[l] = agreement(q, w, l)) > best)
			best = score[l];
	if (best < MIN_AGREEMENT || best <= agreement(q, w, 1))
		return;
	for (uint32_t l = 2; l <= maxlag; l++)
		if (score[l] >= best - WHISKER) {
			q->period = l;
			q->agreement = score[l];
			return;
		}
}

/* The forecast of absolute tick t >= n: the same phase of the last period,
 * or the last tick. */
static int forecast_at(const quiet_t *q, uint64_t t)
{
	if (!q->period)
		return bit_at(q, q->n - 1);
	uint64_t back = (t - q->n) / q->period + 1;
	return bit_at(q, t - back * q->period);
}

void quiet_tick(quiet_t *q, uint64_t ops, double tick_s)
{
	int b = quiet_is_busy(q, ops, tick_s);

	if (q->predicted >= 0) {
		q->scored++;
		q->correct += q->predicted == b;
	}
	q->bit[q->n % QUIET_HISTORY] = (uint8_t)b;
	q->n++;
	q->busy += b;
	if (q->n >= MIN_TICKS && q->n % SEARCH_EVERY == 0)
		find_period(q);
	q->predicted = forecast_at(q, q->n);
}

void quiet_forecast(const quiet_t *q, uint32_t horizon, struct quiet_forecast *f)
{
	memset(f, 0, sizeof(*f));
	f->start = QUIET_NONE;
	f->period = q->period;
	if (!q->n) {
		f->start = 1; /* nothing seen: nothing runs */
		f->len = horizon;
		return;
	}
	if (horizon > QUIET_HISTORY)
		horizon = QUIET_HISTORY;
	f->next_busy = forecast_at(q, q->n);
	for (uint32_t k = 1; k <= horizon; k++) {
		int b = forecast_at(q, q->n - 1 + k);
		if (f->start == QUIET_NONE && !b)
			f->start = k;
		else if (f->start != QUIET_NONE && b)
			break;
		if (f->start != QUIET_NONE)
			f->len++;
	}
}

void quiet_get_stats(const quiet_t *q, struct quiet_stats *st)
{
	st->ticks = q->n;
	st->busy_ticks = q->busy;
	st->scored = q->scored;
	st->correct = q->correct;
	st->period = q->period;
	st->period_agreement = q->agreement;
}
