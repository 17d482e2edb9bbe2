/* The tier checker thread (see health.h): it sleeps on a condition with a
 * timeout, so it costs one wake-up an interval and stops at once.
 *
 * A net tier is looked at by a thread of its own ("silt-tiers-net"),
 * because a look at a network filesystem whose server is gone (statvfs,
 * stat) sleeps in the kernel until it answers: that must not stop the
 * looks at the other tiers. The main thread watches it instead: a look
 * that has not come back within the tier's timeout fails the tier. */
#include "tiers/health.h"
#include "tiers/netio.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct silt_health;

/* The thread of one net tier. */
struct net_watch {
	struct silt_health *h;
	struct silt_tier *t;
	_Atomic uint64_t busy_since; /* when its look began (ns), 0 between looks */
	_Atomic int started;
	pthread_t thread;
};

struct silt_health {
	struct health_conf c;
	struct silt_tier *tiers[SILT_MAX_TIERS];
	struct net_watch net[SILT_MAX_TIERS];
	pthread_mutex_t lock;
	pthread_cond_t cv;
	int stopping;
	pthread_t thread;
};

static void check_one(struct silt_health *h, struct silt_tier *t)
{
	enum tier_change ch = tier_check(t);
	if (ch == TIER_LOST && h->c.lost)
		h->c.lost(h->c.ctx, t);
	else if (ch == TIER_BACK && h->c.back)
		h->c.back(h->c.ctx, t);
}

static void check_all(struct silt_health *h)
{
	for (int i = 0; i < h->c.ntiers; i++) {
		struct net_watch *w = &h->net[i];
		uint64_t since = atomic_load(&w->busy_since);
		if (!atomic_load(&w->started))
			check_one(h, h->tiers[i]);
		else if (since && silt_now_ns() - since > netio_timeout_ms(tier_netio(w->t)) * 1000000ull)
			tier_fail(w->t, -ETIMEDOUT, "checking its filesystem (no answer)");
	}
}

/* Sleep an interval (h->lock held): whether to go on. */
static int pause_interval(struct silt_health *h)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)h->c.interval_ms * 1000000ull;
	ts.tv_sec += (time_t)(ns / 1000000000ull);
	ts.tv_nsec = (long)(ns % 1000000000ull);
	pthread_cond_timedwait(&h->cv, &h->lock, &ts);
	return !h->stopping;
}

static void *net_checker(void *arg)
{
	struct net_watch *w = arg;
	struct silt_health *h = w->h;

	pthread_setname_np(pthread_self(), "silt-tiers-net");
	pthread_mutex_lock(&h->lock);
	while (pause_interval(h)) {
		pthread_mutex_unlock(&h->lock);
		atomic_store(&w->busy_since, silt_now_ns());
		check_one(h, w->t);
		atomic_store(&w->busy_since, 0);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static void *checker(void *arg)
{
	struct silt_health *h = arg;

	pthread_setname_np(pthread_self(), "silt-tiers");
	pthread_mutex_lock(&h->lock);
	while (pause_interval(h)) {
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
	for (int i = 0; i < c->ntiers; i++)
		h->net[i] = (struct net_watch){ .h = h, .t = c->tiers[i] };
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
	for (int i = 0; i < c->ntiers; i++)
		if (tier_netio(c->tiers[i]) && !pthread_create(&h->net[i].thread, NULL, net_checker, &h->net[i]))
			atomic_store(&h->net[i].started, 1);
	*out = h;
	return 0;
}

/* Join the net tiers' threads, each within a while: 0, or -EBUSY when one
 * is stuck in a look at its filesystem (it is left, and so is h). */
static int stop_net(struct silt_health *h)
{
	int stuck = 0;

	for (int i = 0; i < h->c.ntiers; i++) {
		if (!h->net[i].started)
			continue;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 2;
		if (pthread_timedjoin_np(h->net[i].thread, NULL, &ts)) {
			log_warn("tier %s: its checker is stuck in its filesystem: leaving it", tier_name(h->net[i].t));
			pthread_detach(h->net[i].thread);
			stuck = 1;
		}
	}
	return stuck ? -EBUSY : 0;
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
	if (stop_net(h))
		return;
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
