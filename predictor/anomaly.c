/*
 * anomaly.c - rolling-loss anomaly detector (see anomaly.h).
 *
 * The baseline only learns from windows that look normal: a sustained
 * change must not become "normal" before it has been reported.  Once it has
 * been reported, the detector restarts its warm-up on the new level.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "predictor/anomaly.h"

struct anomaly {
	struct anomaly_config c;
	double mean, var;
	uint64_t seen;    /* windows since (re)start */
	uint32_t run;     /* consecutive high windows */
	uint64_t events;
};

void anomaly_config_default(struct anomaly_config *c)
{
	/* Chosen on cloudphysics_vm_io's first 60000 requests (placement loss
	 * per window): quiet on noise, fires on its two visible changes. */
	c->alpha = 0.1;
	c->k = 2.0;
	c->ratio = 1.3;
	c->windows = 2;
	c->warmup = 20;
}

int anomaly_create(const struct anomaly_config *c, anomaly_t **out)
{
	if (!(c->alpha > 0 && c->alpha <= 1) || c->k < 0 || c->ratio < 1 ||
	    c->windows == 0)
		return -EINVAL;
	anomaly_t *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->c = *c;
	*out = a;
	return 0;
}

void anomaly_destroy(anomaly_t *a)
{
	free(a);
}

int anomaly_update(anomaly_t *a, double loss)
{
	if (!isfinite(loss))
		return 0;
	if (a->seen == 0) {
		a->mean = loss;
		a->var = 0;
	}
	a->seen++;
	double sd = sqrt(a->var);
	int high = a->seen > a->c.warmup && loss > a->mean + a->c.k * sd &&
		   loss > a->c.ratio * a->mean;
	if (!high) {
		/* Learn the normal level (Welford-style exponential update). */
		double d = loss - a->mean;
		a->mean += a->c.alpha * d;
		a->var = (1 - a->c.alpha) * (a->var + a->c.alpha * d * d);
		a->run = 0;
		return 0;
	}
	if (++a->run < a->c.windows)
		return 0;
	a->events++;
	a->run = 0;
	a->seen = 0; /* relearn the baseline from the new level */
	return 1;
}

double anomaly_baseline(const anomaly_t *a) { return a->mean; }
uint64_t anomaly_events(const anomaly_t *a) { return a->events; }
