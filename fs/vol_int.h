/* Engine internals shared by volume.c (inodes, open/close), ns.c
 * (namespace), data.c (data path) and ctl.c (operator queries). */
#ifndef SILT_VOL_INT_H
#define SILT_VOL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "fs/meta/meta.h"
#include "fs/vol.h"
#include "tiers/aio.h"
#include "tiers/io.h"
#include "tiers/tier.h"
#include "utils/util.h"

#define SILT_FORMAT_VERSION 1
#define INODE_REC_V1 1
#define SILT_STRIPES 1024        /* chunk write locks, hashed */
#define SILT_IOBUF (1u << 20)    /* largest FUSE request we accept (max_write/max_read) */

/* On-disk inode record (CF_INODES value), little-endian, followed by the
 * target for symlinks. */
struct inode_rec {
	uint8_t version;
	uint8_t pad[3];
	uint32_t mode, uid, gid, nlink, rdev;
	uint64_t size;
	uint64_t nchunks;        /* mapped chunks: st_blocks without loading the map */
	int64_t atime, mtime, ctime; /* ns since the epoch */
} __attribute__((packed));

/* On-disk chunk map record (CF_CHUNKS value). */
struct chunk_rec {
	uint8_t tier;            /* persistent tier id */
	uint8_t flags;
	uint32_t stored_len;     /* bytes in the slot (compressed tiers) */
	uint64_t csum;           /* XXH3 of the raw chunk when written whole */
} __attribute__((packed));

/* Chunk map record flags */
#define CHUNK_PLAIN 1   /* on a compressed tier, stored without header */

/* In-memory chunk table of a loaded inode: one byte per chunk (0 = hole,
 * else tier id + 1 in the low nibble, CT_PLAIN above it) in 4096-entry pages under a top array that grows by
 * doubling. Readers are lock-free; writers hold the inode mutex. A grown
 * top array replaces the old one, which is kept (retired) until the inode
 * is evicted because a reader may still be looking at it. */
#define CT_PAGE_SHIFT 12
#define CT_PAGE (1u << CT_PAGE_SHIFT)
#define CT_TIER_MASK 0x0f
#define CT_PLAIN 0x10
static inline int ct_tier(uint8_t e) { return (e & CT_TIER_MASK) - 1; }
struct ct_top {
	uint64_t n;                 /* page slots */
	struct ct_top *retired;
	_Atomic(uint8_t *) pages[];
};
struct chunk_table {
	_Atomic(struct ct_top *) top;
};

struct inode {
	uint64_t ino;
	struct inode *hnext;
	uint64_t nlookup;          /* kernel references          (vol->itab_lock) */
	uint32_t nopen;            /* open handles               (vol->itab_lock) */
	uint32_t refs;             /* engine calls in progress   (vol->itab_lock) */
	pthread_mutex_t lock;      /* rec, dirty, ct growth */
	pthread_mutex_t fd_lock;   /* opening tier files (taken with or without lock) */
	pthread_rwlock_t io;       /* shared: read/write; exclusive: truncate, punch, close */
	struct inode_rec rec;
	char *symlink;
	int dirty;                 /* rec changed in memory only (times) */
	int ct_loaded;
	struct chunk_table ct;
	_Atomic int (*fds)[SILT_SEG_MAX]; /* [tier id][segment], -1 = closed */
	_Atomic uint32_t dirty_tiers;     /* tiers written since the last fsync */
	_Atomic uint32_t aio_inflight;    /* asynchronous I/Os not yet completed */
};

struct silt_file {
	struct inode *ino;
	int flags;
};

struct silt_vol {
	struct silt_config cfg;
	char uuid[37];
	char meta_dir[4096 + 64];   /* a tier path is < 3968 bytes (config.c) */
	char mountpoint[4096];
	uint32_t chunk_size;
	unsigned chunk_shift;
	uint64_t chunks_per_seg;
	struct silt_meta *meta;
	int ntiers;
	struct silt_tier *tiers[SILT_MAX_TIERS];      /* placement order: fastest first */
	struct silt_tier *tier_by_id[SILT_MAX_TIERS]; /* persistent id -> tier */
	int zlevel[SILT_MAX_TIERS];                    /* by id: zstd level, 0 = none */
	pthread_key_t io_key;                          /* per-thread struct silt_ioctx */

	pthread_mutex_t itab_lock;
	struct inode **itab;
	size_t itab_size, icount;

	pthread_mutex_t ns_lock;   /* serialises namespace changes */
	uint64_t next_ino;
	uint64_t ns_seq;           /* namespace operations committed (journal point) */

	pthread_mutex_t stripes[SILT_STRIPES];
	_Atomic uint32_t stripe_aio[SILT_STRIPES]; /* async writes in flight per stripe */

	struct silt_aio *aio;          /* shared ring + "silt-aio" completion thread */
	pthread_mutex_t aio_lock;      /* request pools: small and large buffers */
	struct aio_req *aio_free[2];
	unsigned aio_count[2];

	_Atomic uint64_t reads, writes, read_bytes, write_bytes;
};

/* volume.c: inode table */
int inode_get(struct silt_vol *v, uint64_t ino, struct inode **out);
void inode_put(struct silt_vol *v, struct inode *in);
void inode_to_stat(struct silt_vol *v, const struct inode *in, struct stat *st);
struct inode *inode_new(uint64_t ino);                 /* not yet in the table */
int inode_insert_new(struct silt_vol *v, struct inode *in); /* with one ref */
void inode_ref_kernel(struct silt_vol *v, struct inode *in, uint64_t n);
void inode_ref_open(struct silt_vol *v, struct inode *in, int delta);
int inode_persist(struct silt_vol *v, struct inode *in, int sync);
int inode_reload(struct silt_vol *v, struct inode *in);
void inode_stage_orphan(struct silt_vol *v, struct meta_batch *b, uint64_t ino, int add);
uint64_t vol_alloc_ino(struct silt_vol *v, struct meta_batch *b); /* under ns_lock */
/* Queue the inode record (and symlink target) into b. Caller holds in->lock. */
void inode_stage(struct silt_vol *v, struct meta_batch *b, struct inode *in);
int inode_load_chunks(struct silt_vol *v, struct inode *in);
/* Namespace commit point: every namespace change goes through here, one
 * batch each. This is where the replication journal will append its record
 * to the same batch. */
int vol_commit_ns(struct silt_vol *v, struct meta_batch *b, int sync);
int64_t silt_now_wall(void);

/* keys */
static inline void key_ino(uint8_t k[8], uint64_t ino) { silt_put_be64(k, ino); }
static inline void key_chunk(uint8_t k[16], uint64_t ino, uint64_t chunk)
{
	silt_put_be64(k, ino);
	silt_put_be64(k + 8, chunk);
}

/* chunk table (data.c) */
uint8_t ct_get(const struct chunk_table *ct, uint64_t k);
int ct_set(struct chunk_table *ct, uint64_t k, uint8_t val);
void ct_free(struct chunk_table *ct);
/* Next mapped chunk >= k, or UINT64_MAX. */
uint64_t ct_next_mapped(const struct chunk_table *ct, uint64_t k);
uint64_t ct_last_mapped(const struct chunk_table *ct); /* UINT64_MAX if none */

/* data.c */
struct silt_ioctx *vol_ioctx(struct silt_vol *v);
/* Free chunks [from, to) of an inode: punch slots, drop map entries into b,
 * release tier space. Caller holds in->io exclusively and in->lock. */
int data_free_range(struct silt_vol *v, struct inode *in, struct meta_batch *b,
		    uint64_t from, uint64_t to);
/* Drop every byte of a deleted inode. */
int data_destroy(struct silt_vol *v, struct inode *in, struct meta_batch *b);
int data_truncate(struct silt_vol *v, struct inode *in, uint64_t size);
void data_close_fds(struct silt_vol *v, struct inode *in);
/* Wait until no asynchronous I/O of the inode is in flight. Callers hold
 * in->io exclusively, so no new one can start. */
void data_quiesce(struct inode *in);
void data_aio_pool_free(struct silt_vol *v);

#endif
