/* The tier checker thread (see health.h): it sleeps on a condition with a
 * timeout, so it costs one wake-up an interval and stops at once. */
#include "tiers/health.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct silt_health {
	struct health_conf c;
	struct silt_tier *tiers[SILT_MAX_TIERS];
	pthread_mutex_t lock;
	pthread_cond_t cv;
	int stopping;
	pthread_t thread;
};

static void check_all(struct silt_health *h)
{
	for (int i = 0; i < h->c.ntiers; i++) {
		enum tier_change ch = tier_check(h->tiers[i]);
		if (ch == TIER_LOST && h->c.lost)
			h->c.lost(h->c.ctx, h->tiers[i]);
		else if (ch == TIER_BACK && h->c.back)
			h->c.back(h->c.ctx, h->tiers[i]);
	}
}

static void *checker(void *arg)
{
	struct silt_health *h = arg;

	pthread_setname_np(pthread_self(), "silt-tiers");
	pthread_mutex_lock(&h->lock);
	while (!h->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)h->c.interval_ms * 1000000ull;
		ts.tv_sec += (time_t)(ns / 1000000000ull);
		ts.tv_nsec = (long)(ns % 1000000000ull);
		pthread_cond_timedwait(&h->cv, &h->lock, &ts);
		if (h->stopping)
			break;
		pthread_mutex_unlock(&h->lock);
		check_all(h);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

int health_start(const struct health_conf *c, struct silt_health **out)
{
	struct silt_health *h = calloc(1, sizeof(*h));
	pthread_condattr_t ca;
	int r;

	if (!h)
		return -ENOMEM;
	if (c->ntiers > SILT_MAX_TIERS || !c->interval_ms) {
		free(h);
		return -EINVAL;
	}
	h->c = *c;
	for (int i = 0; i < c->ntiers; i++)
		h->tiers[i] = c->tiers[i];
	h->c.tiers = h->tiers;
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((r = -pthread_create(&h->thread, NULL, checker, h))) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return r;
	}
	*out = h;
	return 0;
}

void health_stop(struct silt_health *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stopping = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
