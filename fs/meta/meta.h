/* Metadata store: one RocksDB per volume, one column family per kind of
 * record. Keys are big-endian so that a prefix scan walks one inode's
 * directory entries or chunks in order. */
#ifndef SILT_META_H
#define SILT_META_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum meta_cf {
	CF_FACTS,     /* volume facts: uuid, format, tier ids, counters, orphans */
	CF_INODES,    /* ino -> struct inode_rec (+ symlink target) */
	CF_DENTRIES,  /* parent ino | name -> child ino, type */
	CF_XATTRS,    /* ino | name -> value */
	CF_CHUNKS,    /* ino | chunk index -> struct chunk_rec */
	CF_HISTORY,   /* access history (predictor) */
	CF_MODELS,    /* predictor model state */
	CF_JOURNAL,   /* replication journal */
	CF_COUNT
};

struct silt_meta;
struct meta_batch;
struct meta_iter;

/* mode: 0 = open existing read-write, 1 = create, 2 = read-only probe.
 * -EBUSY when another process has the store open (see meta_lock_holder). */
enum { META_OPEN, META_CREATE, META_READONLY };
int meta_open(const char *dir, int mode, struct silt_meta **out, char *err, size_t errlen);
/* pid of the process that has the store at dir open read-write, 0 if none. */
pid_t meta_lock_holder(const char *dir);
void meta_close(struct silt_meta *m);

/* 0 with *val malloc'd (caller frees), -ENOENT, or -EIO. */
int meta_get(struct silt_meta *m, enum meta_cf cf, const void *key, size_t klen,
	     char **val, size_t *vlen);

struct meta_batch *meta_batch_new(void);
void meta_batch_free(struct meta_batch *b);
void meta_put(struct meta_batch *b, struct silt_meta *m, enum meta_cf cf,
	      const void *k, size_t kl, const void *v, size_t vl);
void meta_del(struct meta_batch *b, struct silt_meta *m, enum meta_cf cf,
	      const void *k, size_t kl);
void meta_del_range(struct meta_batch *b, struct silt_meta *m, enum meta_cf cf,
		    const void *start, size_t sl, const void *end, size_t el);
/* Free space RocksDB needs on its filesystem to flush, compact and recover
 * (see meta.c): commits are refused with -ENOSPC below it. */
#define META_MIN_FREE (16u << 20)

/* Apply atomically; sync = 1 waits for the WAL to reach the disk (group
 * committed by RocksDB across threads). 0, -ENOSPC (the store's filesystem
 * is nearly full: nothing was written) or -EIO. */
int meta_commit(struct silt_meta *m, struct meta_batch *b, int sync);
/* Make every earlier commit durable. */
int meta_sync(struct silt_meta *m);

struct meta_iter *meta_iter_new(struct silt_meta *m, enum meta_cf cf,
				const void *prefix, size_t plen);
/* 1 with k/v pointing into the iterator (valid until the next call), 0 at
 * the end of the prefix, -EIO on error. */
int meta_iter_next(struct meta_iter *it, const char **k, size_t *kl,
		   const char **v, size_t *vl);
/* Before the first meta_iter_next: begin at key (which has the prefix)
 * rather than at the prefix itself. */
int meta_iter_start_at(struct meta_iter *it, const void *key, size_t klen);
void meta_iter_free(struct meta_iter *it);

#endif
