/* The chunk map: where every chunk of every file lives, and the only code
 * that changes it.
 *
 * For each file in memory it keeps a table of one byte per chunk (the tier,
 * a flag), read without a lock on every I/O, and its open tier files. A
 * chunk's home changes only through a transaction (cmap_txn_*): the new map
 * records are staged into the caller's metadata batch, and once the caller
 * has committed that batch (through the commit point, with the inode record
 * that goes with it) cmap_txn_publish() makes the change visible, returns
 * the space of the old homes to their tiers and punches their slots.
 *
 * I/O pins the chunks it touches (cmap_pin): READ and WRITE pins are
 * shared, an EXCL pin waits until the chunk has no other pin and keeps new
 * ones out, for exactly that chunk (a read-modify-write, an allocation, a
 * move's switch). Every WRITE or EXCL pin bumps the chunk's generation, so
 * that a move that copied a chunk without pinning it out knows whether a
 * write came in between. Truncate, punch and fallocate drain a whole file
 * instead (cmap_file_quiesce).
 *
 * Waiting: a thread about to wait for a pin first submits whatever
 * asynchronous I/O it holds (silt_aio_flush): the pins in its way may belong
 * to exactly that I/O. So no thread ever waits for work that a waiting
 * thread holds. Waits are on condition variables, never sleep loops. */
#ifndef SILT_CHUNKMAP_H
#define SILT_CHUNKMAP_H

#include <stdint.h>

#include "fs/meta/meta.h"
#include "fs/meta/records.h"
#include "tiers/aio.h"
#include "tiers/layout.h"
#include "tiers/tier.h"

struct silt_cmap;
struct cmap_file;
struct latch;

/* Table entries: 0 = hole, else tier id + 1 in the low nibble, flags above. */
#define CM_TIER_MASK 0x0f
#define CM_PLAIN 0x10 /* on a compressed tier, stored without header */
#define CM_SUMS 0x20  /* its record carries per-block checksums: verify reads */
#define CM_PACKED 0x40 /* compressed in its slot: takes less than a slot (tier used bytes) */
static inline int cm_tier(uint8_t e) { return (e & CM_TIER_MASK) - 1; }
static inline uint8_t cm_entry(int tid, unsigned flags) { return (uint8_t)((tid + 1) | flags); }

struct cmap_conf {
	struct silt_meta *meta;
	struct silt_aio *aio;                        /* whose held I/O is flushed before a wait */
	const struct layout *layout;
	struct silt_tier *const *tier_by_id;         /* [SILT_MAX_TIERS], NULL = no such tier */
};

int cmap_open(const struct cmap_conf *conf, struct silt_cmap **out);
void cmap_close(struct silt_cmap *cm);

/* ---- files ---- */

struct cmap_file *cmap_file_new(struct silt_cmap *cm, uint64_t ino);
/* Closes the tier files and frees the table; nothing may use the file. */
void cmap_file_free(struct silt_cmap *cm, struct cmap_file *cf);
/* Read the file's map from the store, once. Callers serialise it. */
int cmap_file_load(struct silt_cmap *cm, struct cmap_file *cf);
int cmap_file_loaded(const struct cmap_file *cf);
/* A file just created: it has no chunks, there is nothing to load. */
void cmap_file_set_empty(struct cmap_file *cf);
struct tier_files *cmap_files(struct cmap_file *cf);
uint64_t cmap_file_ino(const struct cmap_file *cf);

/* Lock-free reads of the table. */
uint8_t cmap_get(const struct cmap_file *cf, uint64_t k);
/* next mapped chunk >= k, or UINT64_MAX; the last mapped one, or UINT64_MAX */
uint64_t cmap_next_mapped(const struct cmap_file *cf, uint64_t k);
uint64_t cmap_last_mapped(const struct cmap_file *cf);
/* Chunks per tier id (for accounting and reports). */
void cmap_count(const struct cmap_file *cf, uint64_t counts[SILT_MAX_TIERS]);
/* The same over the whole volume's map in the store (at mount): 0, -EIO,
 * or -EUCLEAN with *bad set to a tier id that does not exist. */
int cmap_count_all(struct silt_cmap *cm, uint64_t counts[SILT_MAX_TIERS], uint64_t saved[SILT_MAX_TIERS],
		   int *bad);

/* How a background engine (mover, scrubber) reaches a file's chunk map by
 * inode number: get takes a reference (and loads the map), put drops it;
 * get returns -ENOENT for a file that is gone. The engine above provides
 * it (the inode table is not the chunk map's). */
struct cmap_source {
	int (*get)(void *ctx, uint64_t ino, struct cmap_file **cf, void **ref);
	void (*put)(void *ctx, void *ref);
	void *ctx;
};

/* ---- pins ---- */

enum cmap_pin_mode {
	CMAP_READ,   /* shared: reads */
	CMAP_WRITE,  /* shared: overwrites in place; bumps the generation */
	CMAP_EXCL,   /* exclusive: read-modify-write, allocation; bumps it */
	CMAP_SWITCH, /* exclusive, without a bump: a move checking its copy */
};
/* A request of up to 1 MiB, widened to 4 KiB, spans at most 17 latch
 * groups of 64 KiB. */
#define CMAP_PIN_MAX 17

struct cmap_pin {
	struct cmap_file *cf;
	enum cmap_pin_mode mode;
	unsigned n;
	struct latch *l[CMAP_PIN_MAX];
};

/* Pin chunks k0..k1 of cf (waiting as described above). 0, or -E2BIG when
 * the range has more latch groups than a pin holds. */
int cmap_pin(struct silt_cmap *cm, struct cmap_file *cf, uint64_t k0, uint64_t k1,
	     enum cmap_pin_mode mode, struct cmap_pin *p);
/* The same for a thread that already holds pins (of this file or any): it
 * must not wait at the gate of a file being quiesced, whose quiescer waits
 * for every pin of the file to go (the mover's batch did, and hung with a
 * fallocate). -EAGAIN instead while the file is quiesced; latch waits are
 * safe (ascending order). */
int cmap_pin_more(struct silt_cmap *cm, struct cmap_file *cf, uint64_t k0, uint64_t k1,
		  enum cmap_pin_mode mode, struct cmap_pin *p);
void cmap_unpin(struct silt_cmap *cm, struct cmap_pin *p);

/* A watch keeps chunk k's generation counted without pinning it: a move
 * copies under a watch, then checks under a SWITCH pin that no write and no
 * other home change came in between. */
struct cmap_watch {
	struct latch *l;
};
void cmap_watch(struct silt_cmap *cm, struct cmap_file *cf, uint64_t k, struct cmap_watch *w);
/* The generation now, or -EBUSY while a write to the chunk is in flight
 * (a copy made now could be torn). */
int cmap_watch_gen(struct silt_cmap *cm, const struct cmap_watch *w, uint64_t *gen);
void cmap_unwatch(struct silt_cmap *cm, struct cmap_watch *w);
/* Whether no WRITE pin shares the chunks of this (READ) pin: nothing is
 * being written there right now. */
int cmap_pin_quiet(struct silt_cmap *cm, const struct cmap_pin *p);
/* The generation of the chunk a single-chunk exclusive pin holds (under
 * it, nothing can change it). */
uint64_t cmap_pin_gen(struct silt_cmap *cm, const struct cmap_pin *p);

/* Chunk k's bytes changed in place without a pin (the file is quiesced: a
 * punch of part of it): a move that copied it before must not switch. */
void cmap_touch(struct silt_cmap *cm, struct cmap_file *cf, uint64_t k);

/* Drain every pin of the file and keep new ones out until resume. */
void cmap_file_quiesce(struct silt_cmap *cm, struct cmap_file *cf);
void cmap_file_resume(struct silt_cmap *cm, struct cmap_file *cf);

/* ---- home changes ---- */

struct cmap_op {
	uint64_t k0, k1;          /* chunks [k0, k1) */
	uint8_t val;              /* their new entry, 0 = hole */
	uint8_t drop;             /* the whole file goes: remove its tier files */
	uint8_t defer;            /* a move: punch the old slot only later */
	uint32_t saved;           /* a set's: what compression spares of the new slot */
};
#define CMAP_TXN_INLINE 20
struct cmap_txn {
	struct silt_cmap *cm;
	struct cmap_file *cf;
	struct meta_batch *b;
	int64_t mapped;           /* change in the file's mapped chunks */
	int64_t saved[SILT_MAX_TIERS]; /* change in each tier's compression savings */
	unsigned n, cap;
	struct cmap_op *ops;
	struct cmap_op inl[CMAP_TXN_INLINE]; /* the first ops, without an allocation */
};

void cmap_txn_begin(struct silt_cmap *cm, struct cmap_txn *t, struct cmap_file *cf,
		    struct meta_batch *b);
/* Chunk k's new home (its record says how it is stored). The space on the
 * new tier was reserved by the caller (tiers/alloc.h); the old home's is
 * returned at publish. The caller holds an EXCL pin on k or has the file
 * quiesced. */
int cmap_txn_set(struct cmap_txn *t, uint64_t k, const struct chunk_rec *rec);
/* The same with a block checksum for each SUM_BLOCK of the chunk (sums NULL:
 * none, as cmap_txn_set). */
int cmap_txn_set_sums(struct cmap_txn *t, uint64_t k, const struct chunk_rec *rec,
		      const struct block_sum *sums);
/* Chunk k's record from the store and, when it has them and sums is not
 * NULL, its block sums (bsum_blocks(chunk_size) of them): 0, -ENOENT (a
 * hole), -EIO. */
int cmap_get_record(struct silt_cmap *cm, const struct cmap_file *cf, uint64_t k, struct chunk_rec *rec,
		    struct block_sum *sums);
/* A move of chunk k to a new home: like cmap_txn_set, but the old slot is
 * not punched at publish; it waits in the deferred list until the switch is
 * durable (cmap_take_deferred). Any later home change of the chunk takes it
 * off that list, so that a slot is never punched after it was reused.
 * -ENOSPC when the deferred list is full (the caller then leaves the chunk
 * where it is). */
int cmap_txn_move(struct cmap_txn *t, uint64_t k, const struct chunk_rec *rec,
		  const struct block_sum *sums);
/* Chunks [k0, k1) become holes. */
int cmap_txn_clear(struct cmap_txn *t, uint64_t k0, uint64_t k1);
/* The file is deleted: every chunk goes, and with them its tier files. */
int cmap_txn_drop(struct cmap_txn *t);
/* After the caller's successful commit of t->b: make it visible, release
 * and punch the old homes. Returns the first punch error (the map is right
 * either way; a slot that could not be punched only wastes space). */
int cmap_txn_publish(struct cmap_txn *t);
/* Old slots of moves, to punch once the switch is durable. */
struct cmap_deferred {
	uint64_t ino, k;
	int tier;
};
long cmap_take_deferred(struct silt_cmap *cm, struct cmap_deferred *out, size_t max);
/* Punch a deferred old slot, unless the chunk lives there again (the
 * caller's own pin on it is not held; this takes a SWITCH pin). */
int cmap_punch_deferred(struct silt_cmap *cm, struct cmap_file *cf, const struct cmap_deferred *d);
/* Forget the transaction (after publish, or instead of it when the commit
 * failed: nothing in memory changed then). */
void cmap_txn_end(struct cmap_txn *t);

#endif
