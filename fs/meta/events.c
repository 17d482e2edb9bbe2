/* The event log (see events.h).
 *
 * Record: key "event/" | seq (big-endian, so the store keeps them in
 * order), value struct ev_rec followed by the text. The next sequence
 * number is found at open by seeking to the last key. One mutex orders the
 * adds: an event is one small commit, and events are rare. */
#include "fs/meta/events.h"
#include "utils/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K_EVENT "event/"
#define K_EVENT_LEN (sizeof(K_EVENT) - 1 + 8)

struct ev_rec {
	int64_t time_ns;
	uint8_t kind;
} __attribute__((packed));

struct silt_events {
	struct silt_meta *meta;
	struct silt_commit *commit;
	pthread_mutex_t lock;
	uint64_t next;      /* sequence number of the next event */
	_Atomic uint64_t added[EVENT__COUNT]; /* since open, by kind */
};

static const char *const kind_names[EVENT__COUNT] = {
	"checksum", "tier", "policy", "evacuate", "scrub", "migration", "volume",
};

const char *event_kind_name(enum event_kind kind)
{
	return (unsigned)kind < EVENT__COUNT ? kind_names[kind] : "?";
}

static void event_key(uint8_t k[K_EVENT_LEN], uint64_t seq)
{
	memcpy(k, K_EVENT, sizeof(K_EVENT) - 1);
	silt_put_be64(k + sizeof(K_EVENT) - 1, seq);
}

/* The next number, from the last event in the store (caller holds the
 * lock, or is alone); they are few (EVENTS_KEEP). */
static int find_next(struct silt_events *e)
{
	struct meta_iter *it = meta_iter_new(e->meta, CF_FACTS, K_EVENT, sizeof(K_EVENT) - 1);
	const char *k, *v;
	size_t kl, vl;

	if (!it)
		return -ENOMEM;
	e->next = 0;
	while (meta_iter_next(it, &k, &kl, &v, &vl) == 1)
		if (kl == K_EVENT_LEN)
			e->next = silt_get_be64((const uint8_t *)k + sizeof(K_EVENT) - 1) + 1;
	meta_iter_free(it);
	return 0;
}

int events_open(struct silt_meta *m, struct silt_commit *c, struct silt_events **out)
{
	struct silt_events *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	e->meta = m;
	e->commit = c;
	pthread_mutex_init(&e->lock, NULL);
	if (find_next(e)) {
		events_close(e);
		return -ENOMEM;
	}
	*out = e;
	return 0;
}

void events_stage_clear(struct silt_events *e, struct meta_batch *b)
{
	uint8_t lo[K_EVENT_LEN], hi[K_EVENT_LEN];

	event_key(lo, 0);
	event_key(hi, UINT64_MAX);
	meta_del_range(b, e->meta, CF_FACTS, lo, sizeof(lo), hi, sizeof(hi));
	meta_del(b, e->meta, CF_FACTS, hi, sizeof(hi)); /* (the range ends before hi) */
}

void events_stage_put(struct silt_events *e, struct meta_batch *b, const struct silt_event *ev)
{
	char val[sizeof(struct ev_rec) + EVENT_TEXT_MAX];
	struct ev_rec rec = { .time_ns = ev->time_ns, .kind = (uint8_t)ev->kind };
	uint8_t key[K_EVENT_LEN];
	size_t n = strnlen(ev->text, EVENT_TEXT_MAX - 1);

	memcpy(val, &rec, sizeof(rec));
	memcpy(val + sizeof(rec), ev->text, n);
	event_key(key, ev->seq);
	meta_put(b, e->meta, CF_FACTS, key, sizeof(key), val, sizeof(rec) + n);
}

void events_reload(struct silt_events *e)
{
	pthread_mutex_lock(&e->lock);
	find_next(e); /* (out of memory: the number stays, events may overwrite) */
	pthread_mutex_unlock(&e->lock);
}

void events_close(struct silt_events *e)
{
	if (!e)
		return;
	pthread_mutex_destroy(&e->lock);
	free(e);
}

void events_add(struct silt_events *e, enum event_kind kind, const char *fmt, ...)
{
	char val[sizeof(struct ev_rec) + EVENT_TEXT_MAX];
	struct ev_rec rec = { .time_ns = (int64_t)silt_wall_ns(), .kind = (uint8_t)kind };
	uint8_t key[K_EVENT_LEN];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(val + sizeof(rec), EVENT_TEXT_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n = MIN(n, EVENT_TEXT_MAX - 1);
	if (!e)
		return;
	memcpy(val, &rec, sizeof(rec));
	struct meta_batch *b = meta_batch_new();
	if (!b)
		return;
	pthread_mutex_lock(&e->lock);
	event_key(key, e->next);
	meta_put(b, e->meta, CF_FACTS, key, sizeof(key), val, sizeof(rec) + (size_t)n);
	if (e->next >= EVENTS_KEEP) { /* the oldest goes */
		event_key(key, e->next - EVENTS_KEEP);
		meta_del(b, e->meta, CF_FACTS, key, sizeof(key));
	}
	struct change ch = { .kind = CHANGE_EVENT };
	if (commit_apply(e->commit, b, 0, &ch, 1) == 0) {
		e->next++;
		atomic_fetch_add(&e->added[kind < EVENT__COUNT ? kind : EVENT_VOLUME], 1);
	}
	pthread_mutex_unlock(&e->lock);
	meta_batch_free(b);
}

void events_counts(struct silt_events *e, uint64_t out[EVENT__COUNT])
{
	for (int i = 0; i < EVENT__COUNT; i++)
		out[i] = atomic_load(&e->added[i]);
}

long events_last(struct silt_events *e, struct silt_event *out, size_t n)
{
	uint8_t key[K_EVENT_LEN];
	const char *k, *v;
	size_t kl, vl;
	long got = 0;

	pthread_mutex_lock(&e->lock);
	uint64_t from = e->next > n ? e->next - n : 0;
	pthread_mutex_unlock(&e->lock);
	struct meta_iter *it = meta_iter_new(e->meta, CF_FACTS, K_EVENT, sizeof(K_EVENT) - 1);
	if (!it)
		return -ENOMEM;
	event_key(key, from);
	meta_iter_start_at(it, key, sizeof(key));
	while ((size_t)got < n && meta_iter_next(it, &k, &kl, &v, &vl) == 1) {
		if (kl != K_EVENT_LEN || vl < sizeof(struct ev_rec))
			continue;
		struct ev_rec rec;
		memcpy(&rec, v, sizeof(rec));
		struct silt_event *ev = &out[got++];
		ev->seq = silt_get_be64((const uint8_t *)k + sizeof(K_EVENT) - 1);
		ev->time_ns = rec.time_ns;
		ev->kind = rec.kind < EVENT__COUNT ? (enum event_kind)rec.kind : EVENT_VOLUME;
		snprintf(ev->text, sizeof(ev->text), "%.*s", (int)MIN(vl - sizeof(rec), EVENT_TEXT_MAX - 1),
			 v + sizeof(rec));
	}
	meta_iter_free(it);
	return got;
}
