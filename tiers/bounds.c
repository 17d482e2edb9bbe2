/* Placement bounds of files (see bounds.h).
 *
 *   struct entry   one file's bound and whether the placer found all its
 *                  chunks inside it
 *
 * Open addressing on the inode number with backward-shift deletion, grown
 * by doubling at 50% load: lookups are a probe or two, and a volume has as
 * many entries as files that pins or rules speak about. */
#include "tiers/bounds.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	uint64_t ino;        /* 0 = free (inode 0 does not exist) */
	struct file_bound fb;
	int settled;
};

struct silt_bounds {
	pthread_mutex_t lock;
	struct entry *tab;
	size_t cap, n;
	size_t cursor;       /* where bounds_unsettled goes on */
};

static size_t slot_of(const struct silt_bounds *b, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 7) & (b->cap - 1);
}

static struct entry *find(struct silt_bounds *b, uint64_t ino)
{
	for (size_t i = slot_of(b, ino);; i = (i + 1) & (b->cap - 1)) {
		if (b->tab[i].ino == ino)
			return &b->tab[i];
		if (!b->tab[i].ino)
			return NULL;
	}
}

static int grow(struct silt_bounds *b)
{
	struct entry *old = b->tab;
	size_t ocap = b->cap;

	if (!(b->tab = calloc(ocap * 2, sizeof(*b->tab)))) {
		b->tab = old;
		return -ENOMEM;
	}
	b->cap = ocap * 2;
	for (size_t i = 0; i < ocap; i++) {
		if (!old[i].ino)
			continue;
		size_t j = slot_of(b, old[i].ino);
		while (b->tab[j].ino)
			j = (j + 1) & (b->cap - 1);
		b->tab[j] = old[i];
	}
	free(old);
	return 0;
}

int bounds_open(struct silt_bounds **out)
{
	struct silt_bounds *b = calloc(1, sizeof(*b));

	if (!b || !(b->tab = calloc(64, sizeof(*b->tab)))) {
		free(b);
		return -ENOMEM;
	}
	b->cap = 64;
	pthread_mutex_init(&b->lock, NULL);
	*out = b;
	return 0;
}

void bounds_close(struct silt_bounds *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b->tab);
	free(b);
}

int bounds_get(struct silt_bounds *b, uint64_t ino, struct file_bound *out)
{
	pthread_mutex_lock(&b->lock);
	struct entry *e = b->n ? find(b, ino) : NULL;
	if (e)
		*out = e->fb;
	pthread_mutex_unlock(&b->lock);
	return e ? 0 : -ENOENT;
}

uint8_t bounds_allowed(struct silt_bounds *b, uint64_t ino)
{
	struct file_bound fb;

	/* the common case, a volume without pins or rules, takes no lock */
	if (!__atomic_load_n(&b->n, __ATOMIC_RELAXED))
		return BOUND_ALL;
	return bounds_get(b, ino, &fb) ? BOUND_ALL : fb.allowed;
}

/* Remove the entry at i, shifting back the ones that probed past it. */
static void remove_at(struct silt_bounds *b, size_t i)
{
	size_t j = i;

	for (;;) {
		j = (j + 1) & (b->cap - 1);
		if (!b->tab[j].ino)
			break;
		size_t home = slot_of(b, b->tab[j].ino);
		/* j's entry may move to i when its home is not in (i, j] */
		if ((i < j) ? (home <= i || home > j) : (home <= i && home > j)) {
			b->tab[i] = b->tab[j];
			i = j;
		}
	}
	b->tab[i].ino = 0;
	__atomic_store_n(&b->n, b->n - 1, __ATOMIC_RELAXED);
}

void bounds_del(struct silt_bounds *b, uint64_t ino)
{
	pthread_mutex_lock(&b->lock);
	struct entry *e = b->n ? find(b, ino) : NULL;
	if (e)
		remove_at(b, (size_t)(e - b->tab));
	pthread_mutex_unlock(&b->lock);
}

int bounds_set(struct silt_bounds *b, uint64_t ino, const struct file_bound *fb)
{
	int r = 0;

	if (fb->pin < 0 && fb->rule < 0) {
		bounds_del(b, ino);
		return 0;
	}
	pthread_mutex_lock(&b->lock);
	struct entry *e = find(b, ino);
	if (!e && 2 * (b->n + 1) > b->cap && (r = grow(b)))
		goto out;
	if (!e) {
		size_t i = slot_of(b, ino);
		while (b->tab[i].ino)
			i = (i + 1) & (b->cap - 1);
		e = &b->tab[i];
		e->ino = ino;
		__atomic_store_n(&b->n, b->n + 1, __ATOMIC_RELAXED);
	}
	e->fb = *fb;
	e->settled = 0;
out:
	pthread_mutex_unlock(&b->lock);
	return r;
}

size_t bounds_unsettled(struct silt_bounds *b, uint64_t *inos, size_t max)
{
	size_t got = 0;

	pthread_mutex_lock(&b->lock);
	for (size_t seen = 0; seen < b->cap && got < max; seen++) {
		struct entry *e = &b->tab[b->cursor];
		b->cursor = (b->cursor + 1) & (b->cap - 1);
		if (e->ino && !e->settled)
			inos[got++] = e->ino;
	}
	pthread_mutex_unlock(&b->lock);
	return got;
}

void bounds_settle(struct silt_bounds *b, uint64_t ino, int settled)
{
	pthread_mutex_lock(&b->lock);
	struct entry *e = b->n ? find(b, ino) : NULL;
	if (e)
		e->settled = settled;
	pthread_mutex_unlock(&b->lock);
}

void bounds_unsettle_all(struct silt_bounds *b)
{
	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < b->cap; i++)
		b->tab[i].settled = 0;
	pthread_mutex_unlock(&b->lock);
}

size_t bounds_count(struct silt_bounds *b)
{
	pthread_mutex_lock(&b->lock);
	size_t n = b->n;
	pthread_mutex_unlock(&b->lock);
	return n;
}
