/* The tier checker: a thread ("silt-tiers") that looks at every tier once
 * an interval (tier_check, tiers/tier.h), so that a tier that failed or was
 * missing at mount comes back by itself when its folder does, and one whose
 * filesystem went read-only fails before a write finds out. What the
 * volume must do besides (let go of its inodes' files of a tier that left,
 * let pinned files move to a tier that came back) it does in the callbacks,
 * called from that thread. */
#ifndef SILT_HEALTH_H
#define SILT_HEALTH_H

#include "tiers/tier.h"

struct health_conf {
	struct silt_tier *const *tiers;
	int ntiers;
	unsigned interval_ms;
	void (*lost)(void *ctx, struct silt_tier *t); /* TIER_LOST */
	void (*back)(void *ctx, struct silt_tier *t); /* TIER_BACK */
	void *ctx;
};

struct silt_health;

int health_start(const struct health_conf *c, struct silt_health **out);
/* Stops and joins the thread; NULL is fine. */
void health_stop(struct silt_health *h);

#endif
