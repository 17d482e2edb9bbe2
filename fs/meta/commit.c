/* The commit point (see commit.h).
 *
 * Subscribers are a fixed array, only appended to, so the hot path takes
 * no lock. The count is published with release order after the entry is
 * written: a subscriber that registers while background threads (the
 * migration engine) already commit is seen whole or not yet at all. The read-only latch is one
 * atomic: once set it stays set until the volume is mounted again, because
 * after a failed write RocksDB itself refuses further writes (its
 * background error) and retrying would only repeat the failure. */
#include "fs/meta/commit.h"
#include "utils/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct silt_commit {
	struct silt_meta *meta;
	struct commit_sub subs[COMMIT_MAX_SUBS];
	_Atomic unsigned nsubs;
	_Atomic int failed; /* 0, or the errno of the first failed write */
};

int commit_open(struct silt_meta *m, struct silt_commit **out)
{
	struct silt_commit *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->meta = m;
	*out = c;
	return 0;
}

void commit_close(struct silt_commit *c)
{
	free(c);
}

int commit_subscribe(struct silt_commit *c, const struct commit_sub *s)
{
	unsigned n = atomic_load_explicit(&c->nsubs, memory_order_relaxed);

	if (n == COMMIT_MAX_SUBS)
		return -ENOSPC;
	c->subs[n] = *s;
	atomic_store_explicit(&c->nsubs, n + 1, memory_order_release);
	return 0;
}

int commit_state(const struct silt_commit *c)
{
	return atomic_load(&c->failed) ? -EROFS : 0;
}

static int note_failure(struct silt_commit *c, int r, const char *what)
{
	int expected = 0;

	if (atomic_compare_exchange_strong(&c->failed, &expected, -r))
		log_err("metadata store: %s failed (%s): the volume's metadata is read-only "
			"from now on; check the metadata filesystem (failing disk? read-only?), "
			"then unmount and mount again", what, strerror(-r));
	return -EROFS;
}

int commit_apply(struct silt_commit *c, struct meta_batch *b, int sync,
		 const struct change *ch, unsigned n)
{
	int r;

	unsigned nsubs = atomic_load_explicit(&c->nsubs, memory_order_acquire);

	if (atomic_load(&c->failed))
		return -EROFS;
	for (unsigned i = 0; i < nsubs; i++)
		if (c->subs[i].stage)
			c->subs[i].stage(c->subs[i].arg, ch, n, b);
	r = meta_commit(c->meta, b, sync);
	if (r && r != -ENOSPC) /* ENOSPC: refused before the store saw it */
		r = note_failure(c, r, "a write");
	for (unsigned i = 0; i < nsubs; i++) /* the same ones: done() pairs with stage() */
		if (c->subs[i].done)
			c->subs[i].done(c->subs[i].arg, ch, n, r);
	return r;
}

void commit_note(struct silt_commit *c, const struct change *ch)
{
	unsigned nsubs = atomic_load_explicit(&c->nsubs, memory_order_acquire);

	for (unsigned i = 0; i < nsubs; i++)
		if (c->subs[i].note)
			c->subs[i].note(c->subs[i].arg, ch);
}

int commit_sync(struct silt_commit *c)
{
	unsigned nsubs = atomic_load_explicit(&c->nsubs, memory_order_acquire);
	int r;

	if (atomic_load(&c->failed))
		return -EROFS;
	for (unsigned i = 0; i < nsubs; i++)
		if (c->subs[i].flush)
			c->subs[i].flush(c->subs[i].arg);
	r = meta_sync(c->meta);
	return r ? note_failure(c, r, "a WAL sync") : 0;
}
