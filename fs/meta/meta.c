/* RocksDB wrapper.
 *
 * Everything siltfs knows about a volume besides the chunk bytes lives in
 * one RocksDB: a column family per record kind (see meta.h). Namespace
 * changes are single WriteBatches, so a rename or an unlink is atomic. Writes
 * go to the WAL without fsync (they survive a daemon crash, which is what
 * kill -9 tests) and fsync() of a file turns into one synced commit, which
 * RocksDB group-commits across threads.
 *
 * Memory is bounded because the daemon locks it (mlockall) to serve swap:
 * a small LRU block cache and small memtables.
 *
 * RocksDB must never find its filesystem full: its recovery from a failed
 * write (which the C API cannot turn off) reuses the failed WAL writer and
 * aborts the daemon on an assertion, at that time or at the next open. So
 * disk use is bounded (memtables of 4 MiB, a WAL of at most 8 MiB: any
 * flush or recovery needs less than META_MIN_FREE), the tiers keep room
 * free on the store's filesystem (tiers/tier.h), and a commit that finds
 * less than META_MIN_FREE free there is refused with ENOSPC before RocksDB
 * sees it; writes resume when space comes back. Should a write fail anyway
 * (a failing disk), RocksDB is never asked to write or sync again, not even
 * at close. */
#include "fs/meta/meta.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <fcntl.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const char *cf_names[CF_COUNT] = {
	"default", "inodes", "dentries", "xattrs", "chunks", "history", "models", "journal",
};

struct silt_meta {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_block_based_table_options_t *bbt;
	rocksdb_cache_t *cache;
	rocksdb_filterpolicy_t *bloom;
	rocksdb_writeoptions_t *wo, *wo_sync;
	rocksdb_readoptions_t *ro;
	rocksdb_column_family_handle_t *cf[CF_COUNT];
	_Atomic int failed;      /* a write failed: never ask RocksDB to write again */
	char dir[4200];
	_Atomic int warned;
};

struct meta_batch {
	rocksdb_writebatch_t *wb;
};

struct meta_iter {
	rocksdb_iterator_t *it;
	char prefix[512];
	size_t plen;
	int started;
	char start[512];  /* where to begin, within the prefix */
	size_t slen;
};

static int fail(char *err, size_t errlen, const char *what, char *rerr)
{
	snprintf(err, errlen, "%s: %s", what, rerr ? rerr : "unknown error");
	free(rerr);
	return -EIO;
}

/* Free bytes of dir's filesystem (for root, who runs the daemon), or
 * UINT64_MAX when it cannot be told. */
static uint64_t free_bytes(const char *dir)
{
	struct statvfs sv;
	return statvfs(dir, &sv) < 0 ? UINT64_MAX : (uint64_t)sv.f_bfree * sv.f_frsize;
}

/* Opening replays the WAL into new table files: with the filesystem full
 * that fails half way and leaves files behind at every attempt. Refuse
 * before RocksDB writes anything, and say what to do. */
static int enough_room(const char *dir, char *err, size_t errlen)
{
	uint64_t f = free_bytes(dir);

	if (f >= META_MIN_FREE)
		return 1;
	snprintf(err, errlen, "metadata store %s: its filesystem has %llu KiB free, less than the "
		 "%u MiB it needs: free space there, then mount again", dir,
		 (unsigned long long)f >> 10, META_MIN_FREE >> 20);
	return 0;
}

/* Whether a commit may go to RocksDB: the filesystem is looked at before
 * every commit. (A look every 100 ms left a window: another writer filling
 * the filesystem, a VM image copied next to the store, takes the margin in
 * a few milliseconds, and RocksDB then meets the full disk itself. A
 * statvfs is a microsecond; a commit is a WAL write.) */
static int room_to_write(struct silt_meta *m)
{
	uint64_t f = free_bytes(m->dir);

	if (f >= META_MIN_FREE) {
		atomic_store(&m->warned, 0);
		return 1;
	}
	if (!atomic_exchange(&m->warned, 1))
		log_err("metadata store %s: only %llu KiB free on its filesystem (it keeps %u MiB): "
			"refusing metadata changes (ENOSPC) until space is freed there",
			m->dir, (unsigned long long)f >> 10, META_MIN_FREE >> 20);
	return 0;
}

int meta_open(const char *dir, int mode, struct silt_meta **out, char *err, size_t errlen)
{
	struct silt_meta *m = calloc(1, sizeof(*m));
	const rocksdb_options_t *cfopts[CF_COUNT];
	char *rerr = NULL;

	if (!m)
		return -ENOMEM;
	if (mode != META_READONLY && !enough_room(dir, err, errlen)) {
		free(m);
		return -ENOSPC;
	}
	snprintf(m->dir, sizeof(m->dir), "%s", dir);
	m->opts = rocksdb_options_create();
	m->cache = rocksdb_cache_create_lru(8u << 20);
	m->bbt = rocksdb_block_based_options_create();
	m->bloom = rocksdb_filterpolicy_create_bloom(10);
	rocksdb_block_based_options_set_block_cache(m->bbt, m->cache);
	rocksdb_block_based_options_set_filter_policy(m->bbt, m->bloom);
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(m->bbt, 1);
	rocksdb_options_set_block_based_table_factory(m->opts, m->bbt);
	rocksdb_options_set_create_if_missing(m->opts, mode == META_CREATE);
	rocksdb_options_set_create_missing_column_families(m->opts, mode == META_CREATE);
	rocksdb_options_set_error_if_exists(m->opts, mode == META_CREATE);
	rocksdb_options_set_write_buffer_size(m->opts, 4u << 20);
	rocksdb_options_set_max_write_buffer_number(m->opts, 2);
	rocksdb_options_set_max_total_wal_size(m->opts, 8u << 20);
	rocksdb_options_set_max_background_jobs(m->opts, 2);
	rocksdb_options_set_keep_log_file_num(m->opts, 2);
	rocksdb_options_set_max_log_file_size(m->opts, 1u << 20);
	rocksdb_options_set_info_log_level(m->opts, 2 /* WARN */);
	rocksdb_options_set_compression(m->opts, rocksdb_no_compression);
	for (int i = 0; i < CF_COUNT; i++)
		cfopts[i] = m->opts;

	/* No waiting here for a store another process holds: whether to wait
	 * (a daemon still closing after umount) or not (one serving a mount)
	 * is the caller's call (fs/inuse.c); it gets -EBUSY. */
	if (mode == META_READONLY)
		m->db = rocksdb_open_for_read_only_column_families(m->opts, dir, CF_COUNT, cf_names,
								   cfopts, m->cf, 0, &rerr);
	else
		m->db = rocksdb_open_column_families(m->opts, dir, CF_COUNT, cf_names, cfopts,
						     m->cf, &rerr);
	if (!m->db) {
		char what[4200];
		snprintf(what, sizeof(what), "metadata store %s", dir);
		int r = fail(err, errlen, what, rerr);
		if (mode != META_READONLY && meta_lock_holder(dir) > 0)
			r = -EBUSY;
		m->db = NULL;
		meta_close(m);
		return r;
	}
	m->wo = rocksdb_writeoptions_create();
	m->wo_sync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(m->wo_sync, 1);
	m->ro = rocksdb_readoptions_create();
	*out = m;
	return 0;
}

pid_t meta_lock_holder(const char *dir)
{
	/* RocksDB holds <dir>/LOCK with a POSIX write lock (fcntl F_SETLK)
	 * while the store is open; the kernel tells who. Closing our fd drops
	 * no lock of ours: this process has the store closed when it asks. */
	char p[4200];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd;

	snprintf(p, sizeof(p), "%s/LOCK", dir);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	int r = fcntl(fd, F_GETLK, &fl);
	int e = errno;
	close(fd);
	if (r < 0)
		return -e;
	return fl.l_type == F_UNLCK ? 0 : fl.l_pid;
}

void meta_close(struct silt_meta *m)
{
	if (!m)
		return;
	if (m->db && atomic_load(&m->failed)) {
		/* Closing would write the failed WAL writer again, and RocksDB
		 * asserts on that: the database itself (its memory, its
		 * threads, its lock) is left to the exit of the process, which
		 * comes next. What is ours goes; the database keeps its own
		 * references to its options and cache. */
		log_warn("metadata store %s: not closed after a failed write", m->dir);
	} else if (m->db) {
		char *rerr = NULL;
		rocksdb_flush_wal(m->db, 1, &rerr);
		free(rerr);
		for (int i = 0; i < CF_COUNT; i++)
			if (m->cf[i])
				rocksdb_column_family_handle_destroy(m->cf[i]);
		rocksdb_close(m->db);
	}
	if (m->wo)
		rocksdb_writeoptions_destroy(m->wo);
	if (m->wo_sync)
		rocksdb_writeoptions_destroy(m->wo_sync);
	if (m->ro)
		rocksdb_readoptions_destroy(m->ro);
	rocksdb_options_destroy(m->opts);
	rocksdb_block_based_options_destroy(m->bbt); /* owns the bloom policy */
	rocksdb_cache_destroy(m->cache);
	free(m);
}

int meta_get(struct silt_meta *m, enum meta_cf cf, const void *key, size_t klen,
	     char **val, size_t *vlen)
{
	char *rerr = NULL;
	char *v = rocksdb_get_cf(m->db, m->ro, m->cf[cf], key, klen, vlen, &rerr);

	if (rerr) {
		free(rerr);
		return -EIO;
	}
	if (!v)
		return -ENOENT;
	*val = v;
	return 0;
}

struct meta_batch *meta_batch_new(void)
{
	struct meta_batch *b = malloc(sizeof(*b));
	if (!b)
		return NULL;
	b->wb = rocksdb_writebatch_create();
	return b;
}

void meta_batch_free(struct meta_batch *b)
{
	if (!b)
		return;
	rocksdb_writebatch_destroy(b->wb);
	free(b);
}

void meta_put(struct meta_batch *b, struct silt_meta *m, enum meta_cf cf,
	      const void *k, size_t kl, const void *v, size_t vl)
{
	rocksdb_writebatch_put_cf(b->wb, m->cf[cf], k, kl, v, vl);
}

void meta_del(struct meta_batch *b, struct silt_meta *m, enum meta_cf cf,
	      const void *k, size_t kl)
{
	rocksdb_writebatch_delete_cf(b->wb, m->cf[cf], k, kl);
}

void meta_del_range(struct meta_batch *b, struct silt_meta *m, enum meta_cf cf,
		    const void *start, size_t sl, const void *end, size_t el)
{
	rocksdb_writebatch_delete_range_cf(b->wb, m->cf[cf], start, sl, end, el);
}

int meta_commit(struct silt_meta *m, struct meta_batch *b, int sync)
{
	char *rerr = NULL;

	if (atomic_load(&m->failed))
		return -EIO;
	if (!room_to_write(m))
		return -ENOSPC;
	rocksdb_write(m->db, sync ? m->wo_sync : m->wo, b->wb, &rerr);
	if (rerr) {
		atomic_store(&m->failed, 1);
		log_err("metadata store: write failed: %s", rerr);
		free(rerr);
		return -EIO;
	}
	return 0;
}

int meta_sync(struct silt_meta *m)
{
	char *rerr = NULL;

	if (atomic_load(&m->failed))
		return -EIO;
	rocksdb_flush_wal(m->db, 1, &rerr);
	if (rerr) {
		atomic_store(&m->failed, 1);
		log_err("metadata store: WAL sync failed: %s", rerr);
		free(rerr);
		return -EIO;
	}
	return 0;
}

struct meta_iter *meta_iter_new(struct silt_meta *m, enum meta_cf cf,
				const void *prefix, size_t plen)
{
	struct meta_iter *it = calloc(1, sizeof(*it));

	if (!it || plen > sizeof(it->prefix)) {
		free(it);
		return NULL;
	}
	it->it = rocksdb_create_iterator_cf(m->db, m->ro, m->cf[cf]);
	if (plen) /* (no prefix may be NULL: memcpy's arguments may not) */
		memcpy(it->prefix, prefix, plen);
	it->plen = plen;
	return it;
}

int meta_iter_next(struct meta_iter *it, const char **k, size_t *kl,
		   const char **v, size_t *vl)
{
	char *rerr = NULL;

	if (!it->started) {
		if (it->slen)
			rocksdb_iter_seek(it->it, it->start, it->slen);
		else
			rocksdb_iter_seek(it->it, it->prefix, it->plen);
		it->started = 1;
	} else {
		rocksdb_iter_next(it->it);
	}
	if (!rocksdb_iter_valid(it->it)) {
		rocksdb_iter_get_error(it->it, &rerr);
		if (rerr) {
			free(rerr);
			return -EIO;
		}
		return 0;
	}
	*k = rocksdb_iter_key(it->it, kl);
	if (*kl < it->plen || memcmp(*k, it->prefix, it->plen))
		return 0;
	*v = rocksdb_iter_value(it->it, vl);
	return 1;
}

int meta_iter_start_at(struct meta_iter *it, const void *key, size_t klen)
{
	if (klen > sizeof(it->start) || it->started)
		return -EINVAL;
	memcpy(it->start, key, klen);
	it->slen = klen;
	return 0;
}

void meta_iter_free(struct meta_iter *it)
{
	if (!it)
		return;
	rocksdb_iter_destroy(it->it);
	free(it);
}
