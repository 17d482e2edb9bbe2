/* The operator's facts of a volume, for replication (vol.h, "Facts"):
 * its pins (CF_FACTS "pin/", fs/pins.c), its live placement rules
 * ("rule/", fs/rules.c) and its event log ("event/", fs/meta/events.h).
 *
 * The primary's sender lists them (vol_facts_list); a replica takes the
 * whole set in place of its own (vol_replica_facts) in one commit through
 * the commit point, then brings what it holds in memory (bounds, compiled
 * rules, the event log's next number) in line with the store, so that
 * siltctl pins, policy and events on the replica show the primary's, and
 * a promoted replica mounts with them. Pins travel by tier name, not by
 * the volume's tier ids, which each volume numbers for itself: a pin to a
 * tier the replica does not have is left out, with a warning. */
#include "fs/pins.h"
#include "fs/rules.h"
#include "fs/vol_int.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PIN_KEY_LEN (sizeof(K_PIN_PREFIX) - 1 + 8)

/* Every record of a prefix of CF_FACTS, to cb(key after the prefix, value). */
static int each(struct silt_vol *v, const char *prefix,
		int (*cb)(struct silt_vol *v, const char *k, size_t kl, const char *val, size_t vl, void *ctx),
		void *ctx)
{
	size_t pl = strlen(prefix);
	struct meta_iter *it = meta_iter_new(v->meta, CF_FACTS, prefix, pl);
	const char *k, *val;
	size_t kl, vl;
	int r;

	if (!it)
		return -ENOMEM;
	while ((r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1)
		if ((r = cb(v, k + pl, kl - pl, val, vl, ctx)))
			break;
	meta_iter_free(it);
	return r < 0 ? r : 0;
}

struct lister {
	int (*cb)(void *ctx, const struct vol_fact *f);
	void *ctx;
};

static int list_pin(struct silt_vol *v, const char *k, size_t kl, const char *val, size_t vl, void *ctx)
{
	struct lister *l = ctx;
	uint8_t tid = vl == sizeof(struct pin_rec) ? ((const struct pin_rec *)val)->tier : SILT_MAX_TIERS;

	if (kl != 8 || tid >= SILT_MAX_TIERS || !v->tier_by_id[tid])
		return 0; /* (pins_report leaves it out too) */
	struct vol_fact f = { .kind = VOL_FACT_PIN, .id = silt_get_be64((const uint8_t *)k),
			      .name = tier_name(v->tier_by_id[tid]), .text = "" };
	return l->cb(l->ctx, &f);
}

static int list_rule(struct silt_vol *v, const char *k, size_t kl, const char *val, size_t vl, void *ctx)
{
	struct lister *l = ctx;
	char name[SILT_NAME_MAX], text[1024];

	(void)v;
	if (kl == 0 || kl >= sizeof(name) || vl == 0 || vl >= sizeof(text))
		return 0; /* (rules.c does not load it either) */
	snprintf(name, sizeof(name), "%.*s", (int)kl, k);
	snprintf(text, sizeof(text), "%.*s", (int)vl, val);
	struct vol_fact f = { .kind = VOL_FACT_RULE, .name = name, .text = text };
	return l->cb(l->ctx, &f);
}

int vol_facts_list(struct silt_vol *v, int (*cb)(void *ctx, const struct vol_fact *f), void *ctx)
{
	struct lister l = { cb, ctx };
	struct silt_event *ev = calloc(EVENTS_KEEP, sizeof(*ev));
	int r;

	if (!ev)
		return -ENOMEM;
	if (!(r = each(v, K_PIN_PREFIX, list_pin, &l)) && !(r = each(v, K_RULE_PREFIX, list_rule, &l))) {
		long n = events_last(v->events, ev, EVENTS_KEEP);
		r = n < 0 ? (int)n : 0;
		for (long i = 0; i < n && !r; i++) {
			struct vol_fact f = { .kind = VOL_FACT_EVENT, .id = ev[i].seq, .time_ns = ev[i].time_ns,
					      .sub = (uint32_t)ev[i].kind, .name = "", .text = ev[i].text };
			r = cb(ctx, &f);
		}
	}
	free(ev);
	return r;
}

struct inos {
	uint64_t *v;
	size_t n, cap;
};

/* A pinned inode into the list (the pins before a new set). */
static int was_pinned(struct silt_vol *v, const char *k, size_t kl, const char *val, size_t vl, void *ctx)
{
	struct inos *l = ctx;

	(void)v, (void)val, (void)vl;
	if (kl != 8)
		return 0;
	if (l->n == l->cap) {
		uint64_t *na = realloc(l->v, (l->cap = l->cap ? l->cap * 2 : 64) * sizeof(*na));
		if (!na)
			return -ENOMEM;
		l->v = na;
	}
	l->v[l->n++] = silt_get_be64((const uint8_t *)k);
	return 0;
}

/* Tier id of the tier called name, or -1. */
static int tier_named(struct silt_vol *v, const char *name)
{
	for (int i = 0; i < SILT_MAX_TIERS; i++)
		if (v->tier_by_id[i] && !strcmp(tier_name(v->tier_by_id[i]), name))
			return i;
	return -1;
}

/* The removal of every record of prefix into b. */
static void stage_clear(struct silt_vol *v, struct meta_batch *b, const char *prefix)
{
	char hi[32];
	size_t pl = strlen(prefix);

	memcpy(hi, prefix, pl);
	hi[pl - 1]++; /* "pin/" .. "pin0": every key of the prefix */
	meta_del_range(b, v->meta, CF_FACTS, prefix, pl, hi, pl);
}

static void stage_fact(struct silt_vol *v, struct meta_batch *b, const struct vol_fact *f)
{
	uint8_t key[sizeof(K_RULE_PREFIX) - 1 + SILT_NAME_MAX];
	size_t pl = sizeof(K_RULE_PREFIX) - 1, nl = strlen(f->name);

	if (f->kind == VOL_FACT_PIN) {
		int tid = tier_named(v, f->name);
		struct pin_rec rec = { .tier = (uint8_t)tid };
		if (tid < 0) {
			log_warn("replica: inode %llu is pinned to tier %s on the primary, which this volume does not "
				 "have: not pinned here", (unsigned long long)f->id, f->name);
			return;
		}
		key_prefixed_ino(key, K_PIN_PREFIX, f->id);
		meta_put(b, v->meta, CF_FACTS, key, PIN_KEY_LEN, &rec, sizeof(rec));
	} else if (f->kind == VOL_FACT_RULE && nl < SILT_NAME_MAX) {
		memcpy(key, K_RULE_PREFIX, pl);
		memcpy(key + pl, f->name, nl);
		meta_put(b, v->meta, CF_FACTS, key, pl + nl, f->text, strlen(f->text));
	} else if (f->kind == VOL_FACT_EVENT) {
		struct silt_event ev = { .seq = f->id, .time_ns = f->time_ns,
					 .kind = f->sub < EVENT__COUNT ? (enum event_kind)f->sub : EVENT_VOLUME };
		snprintf(ev.text, sizeof(ev.text), "%s", f->text);
		events_stage_put(v->events, b, &ev);
	}
}

int vol_replica_facts(struct silt_vol *v, const struct vol_fact *f, size_t n)
{
	struct meta_batch *b = meta_batch_new();
	struct inos was = { 0 };
	int r;

	if (!b)
		return -ENOMEM;
	if ((r = each(v, K_PIN_PREFIX, was_pinned, &was))) {
		meta_batch_free(b);
		free(was.v);
		return r;
	}
	stage_clear(v, b, K_PIN_PREFIX);
	stage_clear(v, b, K_RULE_PREFIX);
	events_stage_clear(v->events, b);
	for (size_t i = 0; i < n; i++)
		stage_fact(v, b, &f[i]);
	r = vol_commit(v, b, 1, CHANGE_PLACEMENT, 0, 0, 0);
	meta_batch_free(b);
	if (!r) {
		events_reload(v->events);
		r = rules_reload(v); /* before the pins: an unpinned file falls back to its rule */
		pthread_mutex_lock(&v->ns_lock);
		int p = pins_refresh(v, was.v, was.n);
		pthread_mutex_unlock(&v->ns_lock);
		r = r ? r : p;
	}
	free(was.v);
	return r;
}
