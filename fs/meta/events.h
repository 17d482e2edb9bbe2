/* The event log: what an operator should know happened to a volume
 * (checksum errors, tier failures, policy changes, evacuations, scrubs).
 *
 * Kept in the metadata store (CF_FACTS, "event/" | sequence), written
 * through the commit point like any other metadata (so that replication
 * carries it), and bounded: the oldest go once there are EVENTS_KEEP.
 * Any thread may add one; the caller says it in the log as well, at the
 * level it deserves. */
#ifndef SILT_EVENTS_H
#define SILT_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "fs/meta/commit.h"
#include "fs/meta/meta.h"

#define EVENTS_KEEP 1000
#define EVENT_TEXT_MAX 400

enum event_kind {
	EVENT_CHECKSUM,   /* a chunk failed its checksum */
	EVENT_TIER,       /* a tier failed, or came back */
	EVENT_POLICY,     /* placement policy or rules changed */
	EVENT_EVACUATE,   /* an evacuation started, finished, was cancelled */
	EVENT_SCRUB,      /* a scrub started or finished */
	EVENT_MIGRATION,  /* a chunk could not be moved */
	EVENT_VOLUME,     /* mounted, unmounted */
	EVENT__COUNT
};

struct silt_event {
	uint64_t seq;
	int64_t time_ns;         /* wall clock */
	enum event_kind kind;
	char text[EVENT_TEXT_MAX];
};

struct silt_events;

int events_open(struct silt_meta *m, struct silt_commit *c, struct silt_events **out);
void events_close(struct silt_events *e);
void events_add(struct silt_events *e, enum event_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The last n events, oldest first, into out (at most n); the count. */
long events_last(struct silt_events *e, struct silt_event *out, size_t n);
/* Events added since the log was opened (this mount), by kind. */
void events_counts(struct silt_events *e, uint64_t out[EVENT__COUNT]);
const char *event_kind_name(enum event_kind kind);

/* A replica takes its primary's log (fs/facts.c): into b, the removal of
 * every event, then ev as it was on the primary; once b is committed,
 * events_reload() finds the next number again. */
void events_stage_clear(struct silt_events *e, struct meta_batch *b);
void events_stage_put(struct silt_events *e, struct meta_batch *b, const struct silt_event *ev);
void events_reload(struct silt_events *e);

#endif
