/* The commit point: every metadata change of a volume goes through
 * commit_apply() as one batch, with a description of what it changes.
 *
 * Subscribers (the replication journal, the predictor) register before the
 * volume takes I/O and are called for every change: stage() may add its
 * own records to the same batch, so that they share the change's
 * atomicity; done() runs once the batch is in the WAL (or failed). Data
 * overwritten in place needs no metadata at all; it is announced with
 * commit_note() so that subscribers still see every change.
 *
 * A commit refused because the store's filesystem is nearly full fails
 * with -ENOSPC and changes nothing (meta.h). A write that failed inside the
 * store (a failing metadata disk) turns the volume read-only for metadata:
 * that commit and every later one fail with -EROFS and one log line says
 * why, rather than RocksDB being driven on into an abort. */
#ifndef SILT_COMMIT_H
#define SILT_COMMIT_H

#include <stdint.h>

#include "fs/meta/meta.h"

enum change_kind {
	CHANGE_NS,   /* a namespace operation; ino = the inode it created/removed/moved */
	CHANGE_ATTR, /* an inode's attributes or size */
	CHANGE_MAP,  /* homes of chunks first..last of ino (allocated, moved, freed) */
	CHANGE_DATA, /* chunks first..last of ino overwritten in place (commit_note) */
	CHANGE_INTERNAL, /* the engine's own bookkeeping (migration intents): no
			  * change a user or a replica can see */
	CHANGE_EVENT,    /* an entry of the event log (fs/meta/events.h) */
	CHANGE_PLACEMENT, /* a file's pin (ino): fs/pins.c; a live rule (ino 0): fs/rules.c */
};

struct change {
	enum change_kind kind;
	uint64_t ino, first, last;
};

struct commit_sub {
	const char *name;
	/* before the write; b is the batch being committed */
	void (*stage)(void *arg, const struct change *ch, unsigned n, struct meta_batch *b);
	/* after it: r is 0 or the negative errno of the commit */
	void (*done)(void *arg, const struct change *ch, unsigned n, int r);
	/* a change without metadata (commit_note) */
	void (*note)(void *arg, const struct change *ch);
	/* before commit_sync's WAL sync: commit what the subscriber holds in
	 * memory from notes, so that the sync makes it durable too */
	void (*flush)(void *arg);
	void *arg;
};

struct silt_commit;

int commit_open(struct silt_meta *m, struct silt_commit **out);
void commit_close(struct silt_commit *c);
/* Before the volume takes user I/O (the engine's own background commits
 * may already run); at most COMMIT_MAX_SUBS. */
#define COMMIT_MAX_SUBS 4
int commit_subscribe(struct silt_commit *c, const struct commit_sub *s);

/* Apply b atomically; sync = 1 waits for the WAL to reach the disk. */
int commit_apply(struct silt_commit *c, struct meta_batch *b, int sync,
		 const struct change *ch, unsigned n);
void commit_note(struct silt_commit *c, const struct change *ch);
/* Make every earlier commit (and every subscriber's flush) durable. */
int commit_sync(struct silt_commit *c);
/* 0, or -EROFS once a write to the store has failed. */
int commit_state(const struct silt_commit *c);

#endif
