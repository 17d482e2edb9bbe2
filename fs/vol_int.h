/* Engine internals shared by volume.c (inodes, open/close), ns.c
 * (namespace), data.c (data path) and ctl.c (operator queries). */
#ifndef SILT_VOL_INT_H
#define SILT_VOL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "fs/meta/commit.h"
#include "fs/meta/events.h"
#include "fs/meta/meta.h"
#include "fs/meta/records.h"
#include "fs/vol.h"
#include "tiers/aio.h"
#include "tiers/alloc.h"
#include "tiers/bounds.h"
#include "tiers/chunkio.h"
#include "tiers/chunkmap.h"
#include "tiers/io.h"
#include "tiers/layout.h"
#include "tiers/migrate.h"
#include "tiers/ramcache.h"
#include "tiers/scrub.h"
#include "predictor/heat.h"
#include "tiers/tier.h"
#include "utils/histo.h"
#include "utils/util.h"

#define SILT_IOBUF (1u << 20)    /* largest FUSE request we accept (max_write/max_read) */
#define SILT_TIER_CHECK_MS 1000  /* how often failed and missing tiers are looked at */

struct inode {
	uint64_t ino;
	struct inode *hnext;
	uint64_t nlookup;          /* kernel references          (vol->itab_lock) */
	uint32_t nopen;            /* open handles               (vol->itab_lock) */
	uint32_t refs;             /* engine calls in progress   (vol->itab_lock) */
	pthread_mutex_t lock;      /* rec, dirty, loading the chunk map */
	struct inode_rec rec;
	char *symlink;
	int dirty;                 /* rec changed in memory only (times) */
	struct cmap_file *cf;      /* where its chunks live, its tier files, its pins */
	struct silt_file *files;   /* open handles: freed at unmount if never released */
	_Atomic int caps;          /* has security.capability: CAPS_* (vol_kill_priv) */
};

enum { CAPS_UNKNOWN, CAPS_NONE, CAPS_SET };

struct silt_file {
	struct inode *ino;
	int flags;
	struct silt_file *next, *prev; /* the inode's open handles (in->lock) */
};

struct async_pool;

struct silt_vol {
	struct silt_config cfg;
	char uuid[37];
	char meta_dir[4096 + 64];   /* a tier path is < 3968 bytes (config.c) */
	char mountpoint[4096];
	const char *_Atomic cache_mode; /* vol_set_cache_mode: "writeback", "writethrough" */
	struct layout layout;       /* chunk size, slots, segments */
	struct silt_meta *meta;
	struct silt_commit *commit; /* every metadata change goes through it */
	struct silt_events *events; /* what an operator should know happened */
	struct silt_cmap *cmap;     /* where chunks live */
	struct silt_alloc *alloc;   /* where new chunks go */
	struct silt_bounds *bounds; /* tiers each file may use (fs/pins.h, fs/rules.h) */
	struct silt_rules *rules;   /* the config's placement rules, NULL without */
	struct chunkio cio;         /* whole chunks read and written, guarded */
	struct heat *heat;          /* how chunks are used; the placement policy */
	struct silt_migrate *mig;   /* moves chunks between tiers */
	struct silt_ram *ram;       /* the RAM tier: a cache of hot chunks */
	struct silt_scrub *scrub;   /* verifies every guarded chunk, on demand */
	struct silt_health *health; /* "silt-tiers": failed and missing tiers taken back */
	int ntiers;
	struct silt_tier *tiers[SILT_MAX_TIERS];      /* placement order: fastest first */
	struct silt_tier *tier_by_id[SILT_MAX_TIERS]; /* persistent id -> tier */
	int rank_of_id[SILT_MAX_TIERS];                /* persistent id -> placement order */
	int zlevel[SILT_MAX_TIERS];                    /* by id: zstd level, 0 = none */
	uint32_t zero_sum;                             /* the block sum of 4 KiB of zeros */
	pthread_key_t io_key;                          /* per-thread struct silt_ioctx */

	pthread_mutex_t itab_lock;
	struct inode **itab;
	size_t itab_size, icount;

	pthread_mutex_t ns_lock;   /* serialises namespace changes */
	uint64_t next_ino;
	uint64_t ns_seq;           /* namespace operations committed (journal point) */

	struct silt_aio *aio;          /* per-thread rings + "silt-aio" completion thread */
	struct async_pool *apool;      /* requests and buffers of the asynchronous path */

	_Atomic uint64_t reads, writes, read_bytes, write_bytes;
	/* for siltctl metrics: requests that failed and how long requests took
	 * ([0] reads, [1] writes: data_note_done), checksum mismatches that
	 * reads found (by tier id) */
	_Atomic uint64_t io_errors[2];
	struct histo latency[2];
	_Atomic uint64_t csum_errors[SILT_MAX_TIERS];
};

/* inode.c: the inode table */
int inode_get(struct silt_vol *v, uint64_t ino, struct inode **out);
void inode_put(struct silt_vol *v, struct inode *in);
void inode_to_stat(struct silt_vol *v, const struct inode *in, struct stat *st);
/* A new inode, not yet in the table; inode_discard() if it never gets there. */
struct inode *inode_new(struct silt_vol *v, uint64_t ino);
void inode_discard(struct inode *in);
int inode_insert_new(struct silt_vol *v, struct inode *in); /* with one ref */
void inode_ref_kernel(struct silt_vol *v, struct inode *in, uint64_t n);
void inode_ref_open(struct silt_vol *v, struct inode *in, int delta);
/* A handle on the inode opens (its reference is the caller's) or closes. */
void inode_attach_file(struct silt_vol *v, struct inode *in, struct silt_file *f, int flags);
void inode_detach_file(struct silt_vol *v, struct silt_file *f);
int inode_persist(struct silt_vol *v, struct inode *in, int sync);
int inode_reload(struct silt_vol *v, struct inode *in);
void inode_stage_orphan(struct silt_vol *v, struct meta_batch *b, uint64_t ino, int add);
/* Queue the inode record (and symlink target) into b. Caller holds in->lock. */
void inode_stage(struct silt_vol *v, struct meta_batch *b, struct inode *in);
/* Load the chunk map of an inode (once). Caller holds in->lock. */
int inode_load_chunks(struct silt_vol *v, struct inode *in);
/* At unmount: write back, free and forget every inode still in the table. */
void inode_table_drain(struct silt_vol *v);
/* Every inode in memory lets go of its files on tier t (tfiles_release). */
void inode_table_release_tier(struct silt_vol *v, struct silt_tier *t);
/* Inodes unlinked while open when the daemon last stopped. */
int inode_reap_orphans(struct silt_vol *v);

/* volume.c */
uint64_t vol_alloc_ino(struct silt_vol *v, struct meta_batch *b); /* under ns_lock */
/* Namespace changes: one batch each, numbered, through the commit point. */
int vol_commit_ns(struct silt_vol *v, struct meta_batch *b, int sync, uint64_t ino);
/* Any other metadata change of one inode (attributes, size, chunk map). */
int vol_commit(struct silt_vol *v, struct meta_batch *b, int sync, enum change_kind kind,
	       uint64_t ino, uint64_t first, uint64_t last);
int64_t silt_now_wall(void);
#define vol_event(v, kind, ...) events_add((v)->events, kind, __VA_ARGS__)
/* Chunks the tiers above the slowest hold under their high watermarks. */
uint64_t vol_fast_capacity(struct silt_vol *v);
/* volume.c: identity checks, shared with the split_tier recovery (split.c) */
void meta_dir_of(const struct silt_config *cfg, const char *uuid, char *out, size_t len);
int check_facts(const struct silt_config *cfg, const char *uuid, const char *mdir,
		int ids[SILT_MAX_TIERS], char *err, size_t errlen);

/* ns.c: records of a directory entry and an xattr, for replica.c */
void ns_stage_dentry(struct silt_vol *v, struct meta_batch *b, uint64_t parent, const char *name,
		     uint64_t ino, uint32_t mode);
void ns_stage_xattr(struct silt_vol *v, struct meta_batch *b, uint64_t ino, const char *name,
		    const void *val, size_t len);

/* rw.c: the synchronous data path */
struct silt_ioctx *vol_ioctx(struct silt_vol *v);
/* Operator-visible counters, and where the access recorder hooks in. */
void data_note_access(struct silt_vol *v, struct inode *in, uint64_t k0, uint64_t k1,
		      int write, size_t bytes);
/* A read (write = 0) or write request that began at start_ns (silt_now_ns)
 * ended with res (bytes or -errno): its latency and errors counted, without
 * a lock (utils/histo.h). */
void data_note_done(struct silt_vol *v, int write, uint64_t start_ns, ssize_t res);
/* Write-promote: a write into a chunk of ino on tier id tid should first
 * move it to this tier id (the write target, faster, inside the file's
 * placement bound); -1 if not. */
int data_promote_target(struct silt_vol *v, uint64_t ino, int tid);
/* Make [from, from+len) of chunk k read as zeros (punch, or rewrite of a
 * compressed chunk). Caller has the file quiesced. */
int data_zero_in_chunk(struct silt_vol *v, struct inode *in, uint64_t k, uint64_t from,
		       uint64_t len);

/* space.c */
/* Stage into t (begun on the caller's batch) that every byte of a deleted
 * inode goes; the caller commits and publishes. File quiesced. */
int data_destroy(struct silt_vol *v, struct inode *in, struct cmap_txn *t);
int data_truncate(struct silt_vol *v, struct inode *in, uint64_t size);

/* async.c */
int async_pool_new(struct async_pool **out);
void async_pool_free(struct async_pool *p);
/* Allocate every request and buffer up to the pool's bound, touched. */
int async_pool_fill(struct async_pool *p);

#endif
