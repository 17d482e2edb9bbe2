/* The scrubber (see scrub.h).
 *
 * A pass walks the chunk map in the store twice: once to count what is
 * guarded (so that progress means something), once to check it. Each chunk
 * is read under a READ pin, so a move or a write cannot change it halfway;
 * the file reference of the last inode is kept while its chunks come in a
 * row (the map is sorted by inode). The thread lives for one pass; a pass
 * can be cancelled between chunks. */
#include "tiers/scrub.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct silt_scrub {
	struct scrub_conf c;
	struct silt_ioctx *ctx;
	char *buf;
	pthread_mutex_t lock;    /* the fields below but the counters */
	pthread_t thread;
	int thread_live;
	_Atomic int running, cancel;
	_Atomic uint64_t passes, total, checked, damaged, unreadable;
	_Atomic uint64_t found[SILT_MAX_TIERS]; /* damaged chunks since mount, by tier id */
	_Atomic int cancelled;
	_Atomic int64_t started_ns, finished_ns;
};

/* Whether the record says the chunk's integrity is guarded. */
static int guarded(const struct scrub_conf *c, const char *val, size_t vl)
{
	if (vl < sizeof(struct chunk_rec))
		return 0;
	uint8_t tid = (uint8_t)val[0], flags = (uint8_t)val[1];
	return tid < SILT_MAX_TIERS && c->io.by_id[tid] && ((flags & CHUNK_SUMS) || c->io.zlevel[tid]);
}

static uint64_t count_guarded(struct silt_scrub *s)
{
	struct meta_iter *it = meta_iter_new(s->c.meta, CF_CHUNKS, "", 0);
	const char *k, *v;
	size_t kl, vl;
	uint64_t n = 0;

	while (it && meta_iter_next(it, &k, &kl, &v, &vl) == 1 && !atomic_load(&s->cancel))
		n += kl == 16 && guarded(&s->c, v, vl);
	meta_iter_free(it);
	return n;
}

/* Check one chunk; the file is cf. */
static void check_chunk(struct silt_scrub *s, struct cmap_file *cf, uint64_t ino, uint64_t k)
{
	struct cmap_pin pin;
	int bad, r;

	if (cmap_pin(s->c.io.cm, cf, k, k, CMAP_READ, &pin))
		return;
	uint8_t e = cmap_get(cf, k);
	if (e && ((e & CM_SUMS) || s->c.io.zlevel[cm_tier(e)])) {
		const char *tier = tier_name(s->c.io.by_id[cm_tier(e)]);
		r = chunk_read_whole(&s->c.io, s->ctx, cf, k, e, s->buf, &bad);
		if (r == -EIO && !tier_failed(s->c.io.by_id[cm_tier(e)])) {
			char blk[24] = "";
			if (bad >= 0)
				snprintf(blk, sizeof(blk), " block %d", bad);
			atomic_fetch_add(&s->damaged, 1);
			atomic_fetch_add(&s->found[cm_tier(e)], 1);
			log_err("scrub: inode %llu chunk %llu%s on tier %s is damaged",
				(unsigned long long)ino, (unsigned long long)k, blk, tier);
			events_add(s->c.events, EVENT_CHECKSUM, "scrub: inode %llu chunk %llu%s on tier %s: "
				   "checksum mismatch", (unsigned long long)ino, (unsigned long long)k, blk, tier);
		} else if (r && r != -ESTALE) {
			atomic_fetch_add(&s->unreadable, 1);
			log_err("scrub: inode %llu chunk %llu on tier %s cannot be read: %s",
				(unsigned long long)ino, (unsigned long long)k, tier, strerror(-r));
		}
	}
	cmap_unpin(s->c.io.cm, &pin);
	atomic_fetch_add(&s->checked, 1);
}

static void pass(struct silt_scrub *s)
{
	struct meta_iter *it = meta_iter_new(s->c.meta, CF_CHUNKS, "", 0);
	const char *k, *v;
	size_t kl, vl;
	uint64_t cur_ino = UINT64_MAX;
	struct cmap_file *cf = NULL;
	void *ref = NULL;

	while (it && !atomic_load(&s->cancel) && meta_iter_next(it, &k, &kl, &v, &vl) == 1) {
		if (kl != 16 || !guarded(&s->c, v, vl))
			continue;
		uint64_t ino = silt_get_be64((const uint8_t *)k), chunk = silt_get_be64((const uint8_t *)k + 8);
		if (ino != cur_ino) {
			if (ref)
				s->c.files.put(s->c.files.ctx, ref);
			ref = NULL;
			cur_ino = ino;
			if (s->c.files.get(s->c.files.ctx, ino, &cf, &ref))
				ref = NULL;
		}
		if (ref)
			check_chunk(s, cf, ino, chunk);
	}
	if (ref)
		s->c.files.put(s->c.files.ctx, ref);
	meta_iter_free(it);
}

static void *scrubber(void *arg)
{
	struct silt_scrub *s = arg;

	pthread_setname_np(pthread_self(), "silt-scrub");
	atomic_store(&s->total, count_guarded(s));
	events_add(s->c.events, EVENT_SCRUB, "scrub started: %llu guarded chunks",
		   (unsigned long long)atomic_load(&s->total));
	pass(s);
	atomic_store(&s->cancelled, atomic_load(&s->cancel));
	atomic_store(&s->finished_ns, (int64_t)silt_wall_ns());
	events_add(s->c.events, EVENT_SCRUB, "scrub %s: %llu of %llu chunks checked, %llu damaged, %llu unreadable",
		   atomic_load(&s->cancel) ? "cancelled" : "finished", (unsigned long long)atomic_load(&s->checked),
		   (unsigned long long)atomic_load(&s->total), (unsigned long long)atomic_load(&s->damaged),
		   (unsigned long long)atomic_load(&s->unreadable));
	log_info("scrub %s: %llu chunks checked, %llu damaged", atomic_load(&s->cancel) ? "cancelled" : "finished",
		 (unsigned long long)atomic_load(&s->checked), (unsigned long long)atomic_load(&s->damaged));
	atomic_fetch_add(&s->passes, 1);
	atomic_store(&s->running, 0);
	return NULL;
}

int scrub_open(const struct scrub_conf *c, struct silt_scrub **out)
{
	struct silt_scrub *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->c = *c;
	pthread_mutex_init(&s->lock, NULL);
	if ((r = silt_ioctx_new(4, SILT_ALIGN, &s->ctx)) || !(s->buf = silt_aligned_alloc(c->io.layout->chunk_size))) {
		scrub_close(s);
		return r ? r : -ENOMEM;
	}
	*out = s;
	return 0;
}

/* Join a finished pass's thread (lock held). */
static void reap(struct silt_scrub *s)
{
	if (s->thread_live && !atomic_load(&s->running)) {
		pthread_join(s->thread, NULL);
		s->thread_live = 0;
	}
}

int scrub_begin(struct silt_scrub *s)
{
	int r = 0;

	pthread_mutex_lock(&s->lock);
	reap(s);
	if (s->thread_live) {
		r = -EBUSY;
	} else {
		atomic_store(&s->cancel, 0);
		atomic_store(&s->cancelled, 0);
		atomic_store(&s->total, 0);
		atomic_store(&s->checked, 0);
		atomic_store(&s->damaged, 0);
		atomic_store(&s->unreadable, 0);
		atomic_store(&s->started_ns, (int64_t)silt_wall_ns());
		atomic_store(&s->finished_ns, 0);
		atomic_store(&s->running, 1);
		if ((r = -pthread_create(&s->thread, NULL, scrubber, s)))
			atomic_store(&s->running, 0);
		else
			s->thread_live = 1;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

void scrub_cancel(struct silt_scrub *s)
{
	atomic_store(&s->cancel, 1);
}

void scrub_close(struct silt_scrub *s)
{
	if (!s)
		return;
	scrub_cancel(s);
	pthread_mutex_lock(&s->lock);
	if (s->thread_live)
		pthread_join(s->thread, NULL);
	s->thread_live = 0;
	pthread_mutex_unlock(&s->lock);
	silt_ioctx_free(s->ctx);
	free(s->buf);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void scrub_stats(struct silt_scrub *s, struct scrub_stats *st)
{
	st->running = atomic_load(&s->running);
	st->passes = atomic_load(&s->passes);
	st->total = atomic_load(&s->total);
	st->checked = atomic_load(&s->checked);
	st->damaged = atomic_load(&s->damaged);
	st->unreadable = atomic_load(&s->unreadable);
	st->cancelled = atomic_load(&s->cancelled);
	st->started_ns = atomic_load(&s->started_ns);
	st->finished_ns = atomic_load(&s->finished_ns);
	for (int i = 0; i < SILT_MAX_TIERS; i++)
		st->found[i] = atomic_load(&s->found[i]);
}
