/* The replication journal: every change of a volume, recorded for each
 * peer through the engine's commit point (fs/meta/commit.h), in RocksDB
 * (CF_JOURNAL), so that it survives kill -9.
 *
 * The journal records *what* changed (a chunk range of an inode, an
 * inode's attributes, the namespace, the operator's facts: pins, live
 * rules, events), never the bytes: the sender reads
 * the current state when it ships. Changes fall into numbered batches; a
 * chunk changed a thousand times in one batch is one entry, recorded by
 * the first write only (an in-memory set per open batch). The sender cuts
 * the open batch (journal_cut) and ships everything up to the cut that the
 * peer has not acknowledged (journal_read), coalesced again across batches.
 *
 * Bounded: when the entries exceed journal_max, the peer furthest behind is
 * folded into its dirty set (one key per chunk range, unordered, never more
 * keys than the volume has chunks) and resyncs from it (journal_dirty_*).
 * Writers never wait for the sender: the only lock they share with it is
 * held by the cut for the time it takes to switch batch numbers. */
#ifndef SILT_SYNC_JOURNAL_H
#define SILT_SYNC_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sync/proto.h"

struct silt_meta;
struct silt_commit;
struct sync_journal;

/* What an entry says changed. */
enum {
	JE_DATA = 1,  /* chunks first..last of ino: content (or hole) */
	JE_ATTR = 2,  /* ino's attributes (size, mode, owner, times) */
	JE_NS = 4,    /* the namespace (names, links, xattrs): ship a snapshot */
	JE_FACTS = 8, /* the operator's facts (pins, live rules, events): ship them */
};
#define JE_INODE UINT64_MAX /* first of an attribute or namespace entry */
#define JE_FACTS_KEY (JE_INODE - 1) /* first (and last) of the facts entry, of ino 0 */

struct journal_entry {
	uint64_t ino, first, last;
	unsigned flags;
	uint64_t stamp;         /* a dirty key's: which fold wrote it last */
};

struct journal_conf {
	struct silt_meta *meta;
	struct silt_commit *commit;
	const char *peers[8];   /* peers we ship to */
	int npeers;
	uint64_t max_entries;
};

/* Open (counting what a previous run left) and subscribe to the commit
 * point. Free with journal_free() only after the volume is closed: the
 * engine's last commits (at unmount) still reach the journal. */
int journal_open(const struct journal_conf *c, struct sync_journal **out);
void journal_free(struct sync_journal *j);

/* Close the open batch; returns its number (every entry <= it is in the
 * store). Cheap when nothing changed since the last cut: returns the same. */
uint64_t journal_cut(struct sync_journal *j);
/* The last cut, without cutting. */
uint64_t journal_last_cut(struct sync_journal *j);
/* The peer's last acknowledged batch, and recording a new one (which frees
 * journal entries no peer still needs). */
uint64_t journal_acked(struct sync_journal *j, int peer);
int journal_ack(struct sync_journal *j, int peer, uint64_t seq);
/* Entries of batches (from, to], merged (sorted by inode and chunk, ranges
 * joined, flags or'ed) into a malloc'd array; at most max entries, and the
 * batch number actually covered in *covered (< to when max was reached at
 * a batch boundary). */
int journal_read(struct sync_journal *j, uint64_t from, uint64_t to, size_t max,
		 struct journal_entry **out, size_t *n, uint64_t *covered);

/* The bound: fold the peer furthest behind into its dirty set while the
 * journal holds more than max entries. Returns how many peers were folded. */
int journal_maintain(struct sync_journal *j);
/* The peer's position before the first fold its replica has not caught up
 * with since (UINT64_MAX: none): a replica that applied up to at least
 * this is whole once the dirty set ships. Cleared once a journal batch at
 * the position was acknowledged after the resync. */
uint64_t journal_fold_floor(struct sync_journal *j, int peer);
int journal_fold_floor_clear(struct sync_journal *j, int peer);
/* The peer's dirty set: up to max entries from (ino, first) on, in order. */
int journal_dirty_read(struct sync_journal *j, int peer, uint64_t ino, uint64_t first, size_t max,
		       struct journal_entry **out, size_t *n);
/* Entries shipped and acknowledged: remove them from the dirty set, but
 * not those a fold rewrote since they were read (their stamp). */
int journal_dirty_drop(struct sync_journal *j, int peer, const struct journal_entry *e, size_t n);
/* Empty the peer's dirty set (a full sync covers it). */
int journal_dirty_clear(struct sync_journal *j, int peer);
/* Put every chunk of the volume in the peer's dirty set, in effect: a full
 * sync (initial, or after a replica was lost). Stored as a flag with the
 * position reached (inode, chunk), so that it resumes there. */
int journal_set_full(struct sync_journal *j, int peer, int on, uint64_t ino, uint64_t chunk);
/* 1 (with the position, if ino/chunk are not NULL), 0, or -errno. */
int journal_full(struct sync_journal *j, int peer, uint64_t *ino, uint64_t *chunk);
/* Age of the oldest change not yet cut, in ms (0: none). */
uint64_t journal_open_age_ms(struct sync_journal *j);

/* Generations (epochs) of a volume, kept in its own store (CF_JOURNAL
 * "g") whatever its role: the epochs of its lineage, oldest first, each
 * with the batch it had reached when the next began (UINT64_MAX: still
 * going). A primary's first start begins one; a replica takes its
 * primary's; a promotion closes the last at the batch applied and opens a
 * new one. Two volumes whose lineages fork, each with changes after the
 * fork, are a split brain. */
int gens_load(struct silt_meta *m, struct proto_gen *g, uint32_t *n);
int gens_store(struct silt_meta *m, const struct proto_gen *g, uint32_t n);
int gens_begin(struct silt_meta *m);
/* Make the next journal batch follow seq (a promoted replica goes on with
 * the numbering it applied). */
int journal_set_next(struct silt_meta *m, uint64_t next);
/* How far this volume's own changes go: the last batch it cut as a
 * primary, or the open one if it holds changes (0: never a primary). */
uint64_t journal_local_pos(struct silt_meta *m);
/* Can a volume with lineage mine, changed up to pos, follow lineage
 * theirs? 0, or -EEXIST with why filled (split brain). */
int gens_follow(const struct proto_gen *mine, uint32_t nm, uint64_t pos, const struct proto_gen *theirs,
		uint32_t nt, char *why, size_t len);
/* Forget this volume was ever a primary (journal, positions, lineage). */
int journal_forget(struct silt_meta *m);

struct journal_stats {
	uint64_t open_seq, entries, dirty, folds, noted, recorded;
};
void journal_stats(struct sync_journal *j, int peer, struct journal_stats *st);

#endif
