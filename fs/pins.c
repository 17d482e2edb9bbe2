/* Pins (pins.h): records in the store, bounds in memory.
 *
 * The record is written first (through the commit point, synchronously:
 * an operator who was told "pinned" finds it pinned after a crash), the
 * bound set after; a pin to a tier replaces any earlier one. The bound
 * allows only the pinned tier, so new chunks go there while it has room
 * and spill elsewhere when it has none (tiers/alloc.h); the migration
 * engine brings spilled and older chunks to it (tiers/migrate.c,
 * plan_bounds). */
#include "fs/pins.h"
#include "fs/ctl.h"
#include "fs/rules.h"
#include "fs/vol_int.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PIN_KEY_LEN (sizeof(K_PIN_PREFIX) - 1 + 8)

/* Inode ino pinned to tier id tid (-1: unpinned, back to its rule). */
static int set_bound(struct silt_vol *v, uint64_t ino, int tid)
{
	struct file_bound fb = { .allowed = BOUND_ALL, .pin = -1, .rule = -1 };

	bounds_get(v->bounds, ino, &fb);
	fb.pin = (int8_t)tid;
	fb.allowed = tid >= 0 ? (uint8_t)(1u << tid) : rules_allowed(v, fb.rule);
	return bounds_set(v->bounds, ino, &fb);
}

int pins_load(struct silt_vol *v)
{
	struct meta_iter *it = meta_iter_new(v->meta, CF_FACTS, K_PIN_PREFIX, sizeof(K_PIN_PREFIX) - 1);
	const char *k, *val;
	size_t kl, vl;
	int r, n = 0;

	if (!it)
		return -ENOMEM;
	while ((r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1) {
		if (kl != PIN_KEY_LEN || vl != sizeof(struct pin_rec))
			continue;
		uint64_t ino = silt_get_be64((const uint8_t *)k + kl - 8);
		uint8_t tid = ((const struct pin_rec *)val)->tier;
		if (tid >= SILT_MAX_TIERS || !v->tier_by_id[tid]) {
			log_warn("inode %llu is pinned to tier id %u, which this volume no longer has: not pinned",
				 (unsigned long long)ino, tid);
			continue;
		}
		if ((r = set_bound(v, ino, tid)))
			break;
		n++;
	}
	meta_iter_free(it);
	if (n)
		log_info("%d pinned files", n);
	return r < 0 ? r : 0;
}

int pins_set(struct silt_vol *v, uint64_t ino, int tid, FILE *o, char *why, size_t len)
{
	uint8_t key[PIN_KEY_LEN];
	struct pin_rec rec = { .tier = (uint8_t)(tid < 0 ? 0 : tid) };
	struct inode *in;
	int r = inode_get(v, ino, &in);

	if (r) {
		snprintf(why, len, "no file with inode %llu", (unsigned long long)ino);
		return r;
	}
	int reg = S_ISREG(in->rec.mode);
	inode_put(v, in);
	if (!reg) {
		snprintf(why, len, "inode %llu is not a regular file: only files' chunks are placed",
			 (unsigned long long)ino);
		return -EISDIR;
	}
	if (tid >= 0 && !tier_usable(v->tier_by_id[tid])) {
		struct tier_stats st;
		tier_get_stats(v->tier_by_id[tid], &st);
		snprintf(why, len, "tier %s is %s: it takes no chunks", st.name, st.state_name);
		return -EINVAL;
	}
	struct meta_batch *b = meta_batch_new();
	if (!b)
		return -ENOMEM;
	key_prefixed_ino(key, K_PIN_PREFIX, ino);
	if (tid >= 0)
		meta_put(b, v->meta, CF_FACTS, key, sizeof(key), &rec, sizeof(rec));
	else
		meta_del(b, v->meta, CF_FACTS, key, sizeof(key));
	r = vol_commit(v, b, 1, CHANGE_PLACEMENT, ino, 0, 0);
	meta_batch_free(b);
	if (r)
		return r;
	pthread_mutex_lock(&v->ns_lock); /* rules change bounds under it too (rules.h) */
	r = set_bound(v, ino, tid);
	pthread_mutex_unlock(&v->ns_lock);
	if (r)
		return r;
	const char *tier = tid >= 0 ? tier_name(v->tier_by_id[tid]) : "-";
	log_info("inode %llu %s%s", (unsigned long long)ino, tid >= 0 ? "pinned to tier " : "unpinned",
		 tid >= 0 ? tier : "");
	vol_event(v, EVENT_POLICY, "inode %llu %s%s", (unsigned long long)ino,
		  tid >= 0 ? "pinned to tier " : "unpinned", tid >= 0 ? tier : "");
	fprintf(o, "pin ino=%llu tier=", (unsigned long long)ino);
	ctl_put_value(o, tier);
	fputc('\n', o);
	return 0;
}

void pins_report(struct silt_vol *v, FILE *o)
{
	struct meta_iter *it = meta_iter_new(v->meta, CF_FACTS, K_PIN_PREFIX, sizeof(K_PIN_PREFIX) - 1);
	const char *k, *val;
	size_t kl, vl;

	if (!it)
		return;
	while (meta_iter_next(it, &k, &kl, &val, &vl) == 1) {
		uint8_t tid = vl == sizeof(struct pin_rec) ? ((const struct pin_rec *)val)->tier : SILT_MAX_TIERS;
		if (kl != PIN_KEY_LEN || tid >= SILT_MAX_TIERS || !v->tier_by_id[tid])
			continue;
		fprintf(o, "pin ino=%llu tier=", (unsigned long long)silt_get_be64((const uint8_t *)k + kl - 8));
		ctl_put_value(o, tier_name(v->tier_by_id[tid]));
		fputc('\n', o);
	}
	meta_iter_free(it);
}

void pins_stage_forget(struct silt_vol *v, struct meta_batch *b, uint64_t ino)
{
	uint8_t key[PIN_KEY_LEN];
	struct file_bound fb;

	if (bounds_get(v->bounds, ino, &fb) || fb.pin < 0)
		return; /* not pinned */
	key_prefixed_ino(key, K_PIN_PREFIX, ino);
	meta_del(b, v->meta, CF_FACTS, key, sizeof(key));
}

void pins_forget_done(struct silt_vol *v, uint64_t ino)
{
	bounds_del(v->bounds, ino);
	heat_set_weight(v->heat, ino, 1); /* (a rule's: the number may come back) */
}

int pins_refresh(struct silt_vol *v, const uint64_t *was, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n && !r; i++)
		r = set_bound(v, was[i], -1);
	return r ? r : pins_load(v);
}
