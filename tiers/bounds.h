/* Placement bounds of files: which tiers a file's chunks may live on.
 *
 * A bound comes from an operator's pin (siltctl pin, fs/pins.h) or from a
 * placement rule of the config the file's path matches (fs/rules.h); the
 * pin wins. New chunks are
 * allocated inside it (tiers/alloc.h), write-promote and the placer keep
 * chunks inside it, and the placer moves chunks that are outside it (a pin
 * just set, a spill while the allowed tiers were full) back in
 * (tiers/migrate.c). Files without a bound have no entry: the table holds
 * pinned files, one small entry each.
 *
 * Any thread; one mutex (looked up when a chunk is placed or planned, not
 * on every I/O). */
#ifndef SILT_BOUNDS_H
#define SILT_BOUNDS_H

#include <stddef.h>
#include <stdint.h>

#define BOUND_ALL 0xffu   /* every tier id allowed */

struct file_bound {
	uint8_t allowed;     /* bit per tier id: the pin's tier, else the rule's */
	int8_t pin;          /* the pinned tier id, -1 none */
	int8_t rule;         /* the placement rule it follows (fs/rules.h), -1 none */
};

struct silt_bounds;

int bounds_open(struct silt_bounds **out);
void bounds_close(struct silt_bounds *b);
/* 0 and the file's bound, or -ENOENT (no bound: anything goes). */
int bounds_get(struct silt_bounds *b, uint64_t ino, struct file_bound *out);
/* The tiers a file's chunks may live on: BOUND_ALL without a bound. */
uint8_t bounds_allowed(struct silt_bounds *b, uint64_t ino);
/* Set (or, with pin and rule -1, drop) a file's bound; the file is marked
 * unsettled. -ENOMEM. */
int bounds_set(struct silt_bounds *b, uint64_t ino, const struct file_bound *fb);
void bounds_del(struct silt_bounds *b, uint64_t ino);
/* The placer: files that may have chunks outside their bound (at most max
 * of them, from where the last call stopped); and marking one settled
 * (every chunk inside) or not (a chunk was placed outside). */
size_t bounds_unsettled(struct silt_bounds *b, uint64_t *inos, size_t max);
void bounds_settle(struct silt_bounds *b, uint64_t ino, int settled);
/* Every file unsettled again (a tier became usable again). */
void bounds_unsettle_all(struct silt_bounds *b);
size_t bounds_count(struct silt_bounds *b);

#endif
