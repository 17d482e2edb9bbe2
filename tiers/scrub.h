/* The scrubber: one pass over every chunk whose integrity is guarded (block
 * sums on checksumming tiers, the header checksum of compressed chunks),
 * reading each whole and verifying it, in a background thread
 * ("silt-scrub") while the volume is in use. What it finds is counted, logged
 * and raised as events naming inode, chunk and tier; nothing is changed
 * (a damaged block keeps failing reads with EIO until it is rewritten). */
#ifndef SILT_SCRUB_H
#define SILT_SCRUB_H

#include <stdint.h>

#include "fs/meta/events.h"
#include "fs/meta/meta.h"
#include "tiers/chunkio.h"
#include "tiers/chunkmap.h"

struct silt_scrub;

struct scrub_conf {
	struct silt_meta *meta;
	struct chunkio io;
	struct cmap_source files;
	struct silt_events *events;
};

struct scrub_stats {
	int running;
	uint64_t passes;               /* finished since mount */
	uint64_t total, checked;       /* this (or the last) pass */
	uint64_t damaged, unreadable;  /* checksum mismatches; I/O errors */
	int cancelled;
	int64_t started_ns, finished_ns; /* wall clock; 0 = not yet */
	uint64_t found[SILT_MAX_TIERS];  /* damaged chunks found since mount, by tier id */
};

int scrub_open(const struct scrub_conf *c, struct silt_scrub **out);
/* Cancels a pass in progress and waits for it. */
void scrub_close(struct silt_scrub *s);
/* Start a pass: 0, or -EBUSY while one runs. */
int scrub_begin(struct silt_scrub *s);
void scrub_cancel(struct silt_scrub *s);
void scrub_stats(struct silt_scrub *s, struct scrub_stats *st);

#endif
