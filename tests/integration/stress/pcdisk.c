/*
 * pcdisk: a test "disk" with a volatile write cache that can lose power.
 *
 *   pcdisk BACKING MOUNTPOINT [CACHE_MIB]     (runs in the foreground)
 *
 * It serves MOUNTPOINT/disk, a file as large as BACKING, to be attached to a
 * loop device, and MOUNTPOINT/ctl. A write goes to an overlay in memory (the
 * disk's write cache) and is acknowledged at once; only a FUSE fsync, which
 * is what the loop driver sends for a cache flush (REQ_OP_FLUSH, and so for
 * REQ_PREFLUSH and, the loop device offering no FUA, for FUA writes; with
 * and without direct I/O), moves the overlay into BACKING, the platter.
 * Reads see the overlay over BACKING. A close (FUSE flush, release) is not a
 * cache flush: a disk never hears of it. Discard and write-zeroes (the loop
 * device's fallocate) are cached writes of zeros like any other.
 *
 * The power cut is a write to ctl:
 *   "cut"              drops the whole overlay: everything written since the
 *                      last flush vanishes (a disk's cache may lose all of it;
 *                      the harshest fair model);
 *   "cut PERCENT SEED" first lets each cached 4 KiB block reach the platter
 *                      with probability PERCENT/100 (a seeded choice), in no
 *                      order: a disk writes its cache back when and in what
 *                      order it likes, and any subset of unflushed writes may
 *                      survive. A block keeps only its latest cached version,
 *                      so an older unflushed version never resurfaces: a subset
 *                      of what a real disk may do, never more.
 * After a cut the disk is dead: every read, write and flush of the image fails
 * with EIO until the process is restarted (a fresh pcdisk over BACKING is the
 * disk after the power came back). If the cache holds more than CACHE_MIB
 * (default 128) MiB, the disk writes it all back by itself, as a real one
 * does when its cache is full (allowed: unflushed data may survive).
 * Reading ctl gives counters, one "name value" per line.
 *
 * A test tool, not part of siltfs: one thread, the FUSE low-level API.
 * BACKING is a file on the machine's own disk: "durable" means it reaches
 * BACKING (the machine itself never loses power), so it is not fsynced.
 */
#include <errno.h>
#include <fcntl.h>
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define BLK 4096u
#define INO_DISK 2
#define INO_CTL 3

struct counters {
	uint64_t writes, written_bytes, flushes, flushed_blocks, writebacks;
	uint64_t cut_dropped, cut_kept;
	uint64_t refused_writes, refused_bytes; /* written after the cut */
};

struct disk {
	int fd;                /* BACKING */
	uint64_t size;         /* bytes, a multiple of BLK */
	uint64_t nblocks;
	uint8_t **cache;       /* per block: NULL = BACKING is current,
	                          zero_block = zeros, else a BLK buffer */
	uint64_t *dirty;       /* the blocks with a cache entry */
	uint64_t ndirty;
	uint64_t nalloc;       /* cache entries holding a buffer */
	uint64_t cache_limit;  /* blocks */
	bool dead;             /* power was cut */
	struct counters c;
};

static const uint8_t zero_block[BLK];

/* ---- the cache -------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void forget_block(struct disk *d, uint64_t b)
{
	if (d->cache[b] != zero_block) {
		free(d->cache[b]);
		d->nalloc--;
	}
	d->cache[b] = NULL;
}

/* Write the cached blocks list[0..n) (sorted) to BACKING and forget them:
 * runs of data blocks with one pwritev, runs of zero blocks punched. */
static int persist(struct disk *d, uint64_t *list, uint64_t n)
{
	struct iovec iov[IOV_MAX];
	uint64_t i = 0;
	int r = 0;

	while (i < n && !r) {
		uint64_t first = list[i], k = 0;
		bool zero = d->cache[first] == zero_block;
		while (i + k < n && k < IOV_MAX && list[i + k] == first + k &&
		       (d->cache[list[i + k]] == zero_block) == zero) {
			if (!zero)
				iov[k] = (struct iovec){d->cache[list[i + k]], BLK};
			k++;
		}
		off_t off = (off_t)(first * BLK);
		size_t len = (size_t)k * BLK;
		if (zero) {
			if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)len) != 0)
				r = -errno;
		} else {
			ssize_t w = pwritev(d->fd, iov, (int)k, off);
			if (w != (ssize_t)len)
				r = w < 0 ? -errno : -EIO;
		}
		if (r)
			fprintf(stderr, "pcdisk: writing blocks %" PRIu64 "+%" PRIu64 " to the backing file: %s\n",
				first, k, strerror(-r));
		i += k;
	}
	for (uint64_t j = 0; j < n; j++)
		forget_block(d, list[j]);
	return r;
}

/* A cache flush: everything cached reaches BACKING. */
static int flush_all(struct disk *d)
{
	qsort(d->dirty, d->ndirty, sizeof(*d->dirty), cmp_u64);
	d->c.flushed_blocks += d->ndirty;
	int r = persist(d, d->dirty, d->ndirty);
	d->ndirty = 0;
	return r;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t x = (*s += 0x9e3779b97f4a7c15ull);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The power cut: a seeded PERCENT of the cached blocks reach BACKING, the
 * rest vanish, and the disk is dead from now on. */
static void cut(struct disk *d, unsigned percent, uint64_t seed)
{
	uint64_t nkeep = 0;
	for (uint64_t i = 0; i < d->ndirty; i++) {
		uint64_t b = d->dirty[i];
		if (splitmix(&seed) % 100 < percent)
			d->dirty[nkeep++] = b;      /* reuse the array: i >= nkeep */
		else
			forget_block(d, b);
	}
	d->c.cut_dropped += d->ndirty - nkeep;
	d->c.cut_kept += nkeep;
	qsort(d->dirty, nkeep, sizeof(*d->dirty), cmp_u64);
	persist(d, d->dirty, nkeep);
	d->ndirty = 0;
	d->dead = true;
}

/* The cache entry of block b, filled from BACKING if it has none; with
 * whole set the caller overwrites all of it, so nothing is read. */
static uint8_t *cache_block(struct disk *d, uint64_t b, bool whole, int *err)
{
	uint8_t *p = d->cache[b];
	if (p && p != zero_block)
		return p;
	if (!(p = malloc(BLK))) {
		*err = -ENOMEM;
		return NULL;
	}
	if (d->cache[b] == zero_block) {
		memset(p, 0, BLK);
	} else {
		if (!whole) {
			ssize_t n = pread(d->fd, p, BLK, (off_t)(b * BLK));
			if (n < 0) {
				*err = -errno;
				free(p);
				return NULL;
			}
			memset(p + n, 0, BLK - (size_t)n);
		}
		d->dirty[d->ndirty++] = b;
	}
	d->cache[b] = p;
	d->nalloc++;
	return p;
}

/* Cache a write of len bytes at off; buf NULL writes zeros. */
static int cache_write(struct disk *d, const uint8_t *buf, uint64_t off, uint64_t len)
{
	int err = 0;
	while (len > 0) {
		uint64_t b = off / BLK, in = off % BLK, n = BLK - in < len ? BLK - in : len;
		if (!buf && n == BLK) {
			if (d->cache[b] && d->cache[b] != zero_block)
				forget_block(d, b);
			else if (!d->cache[b])
				d->dirty[d->ndirty++] = b;
			d->cache[b] = (uint8_t *)zero_block;
		} else {
			uint8_t *p = cache_block(d, b, n == BLK, &err);
			if (!p)
				return err;
			if (buf)
				memcpy(p + in, buf, n);
			else
				memset(p + in, 0, n);
		}
		if (buf)
			buf += n;
		off += n;
		len -= n;
	}
	if (d->nalloc > d->cache_limit) {
		d->c.writebacks++;
		return flush_all(d);
	}
	return 0;
}

/* Read from BACKING, then lay the cached blocks over it. */
static ssize_t cache_read(struct disk *d, uint8_t *buf, uint64_t off, uint64_t len)
{
	ssize_t n = pread(d->fd, buf, len, (off_t)off);
	if (n < 0)
		return -errno;
	memset(buf + n, 0, len - (uint64_t)n);
	for (uint64_t pos = off; pos < off + len;) {
		uint64_t b = pos / BLK, in = pos % BLK, k = BLK - in < off + len - pos ? BLK - in : off + len - pos;
		if (d->cache[b])
			memcpy(buf + (pos - off), d->cache[b] + in, k);
		pos += k;
	}
	return (ssize_t)len;
}

/* ---- FUSE operations ---------------------------------------------------- */

#define DISK(req) ((struct disk *)fuse_req_userdata(req))

static int fill_attr(struct disk *d, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_nlink = 1;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (ino == INO_DISK) {
		st->st_mode = S_IFREG | 0600;
		st->st_size = (off_t)d->size;
		st->st_blocks = (blkcnt_t)(d->size / 512);
	} else if (ino == INO_CTL) {
		st->st_mode = S_IFREG | 0600;
	} else {
		return -ENOENT;
	}
	st->st_blksize = BLK;
	return 0;
}

static void pc_init(void *data, struct fuse_conn_info *conn)
{
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE; /* every write reaches us at once */
}

static void pc_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = {.attr_timeout = 1, .entry_timeout = 1};
	fuse_ino_t ino = !strcmp(name, "disk") ? INO_DISK : !strcmp(name, "ctl") ? INO_CTL : 0;
	if (parent != FUSE_ROOT_ID || !ino) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.ino = ino;
	fill_attr(DISK(req), ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void pc_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int r = fill_attr(DISK(req), ino, &st);
	if (r)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, 1);
}

static void pc_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	static const char *const names[] = {".", "..", "disk", "ctl"};
	static const fuse_ino_t inos[] = {FUSE_ROOT_ID, FUSE_ROOT_ID, INO_DISK, INO_CTL};
	char buf[1024];
	size_t used = 0;
	for (off_t i = off; i < 4; i++) {
		struct stat st = {.st_ino = inos[i], .st_mode = i < 2 ? S_IFDIR : S_IFREG};
		size_t n = fuse_add_direntry(req, buf + used, MIN(size, sizeof(buf)) - used, names[i], &st, i + 1);
		if (n > MIN(size, sizeof(buf)) - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

static void pc_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != INO_DISK && ino != INO_CTL) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	fi->direct_io = 1;  /* no page cache of ours in the kernel: the cache is here */
	fi->keep_cache = 0;
	fuse_reply_open(req, fi);
}

static void reply_ctl(fuse_req_t req, struct disk *d, size_t size, off_t off)
{
	char text[512];
	int n = snprintf(text, sizeof(text),
			 "state %s\nwrites %" PRIu64 "\nwritten_bytes %" PRIu64 "\nflushes %" PRIu64
			 "\nflushed_blocks %" PRIu64 "\nwritebacks %" PRIu64 "\ncached_blocks %" PRIu64
			 "\ncut_dropped %" PRIu64 "\ncut_kept %" PRIu64 "\nrefused_writes %" PRIu64
			 "\nrefused_bytes %" PRIu64 "\n",
			 d->dead ? "cut" : "live", d->c.writes, d->c.written_bytes, d->c.flushes,
			 d->c.flushed_blocks, d->c.writebacks, d->ndirty, d->c.cut_dropped, d->c.cut_kept,
			 d->c.refused_writes, d->c.refused_bytes);
	if (off >= n)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, text + off, MIN((size_t)(n - off), size));
}

static void pc_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct disk *d = DISK(req);
	if (ino == INO_CTL) {
		reply_ctl(req, d, size, off);
		return;
	}
	if (d->dead) {
		fuse_reply_err(req, EIO);
		return;
	}
	if ((uint64_t)off >= d->size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size = MIN(size, d->size - (uint64_t)off);
	uint8_t *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = cache_read(d, buf, (uint64_t)off, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, (char *)buf, (size_t)n);
	free(buf);
}

/* ctl: "cut" or "cut PERCENT SEED". */
static void ctl_command(fuse_req_t req, struct disk *d, const char *buf, size_t size)
{
	char cmd[64];
	unsigned percent = 0;
	uint64_t seed = 0;
	int n = 0;
	snprintf(cmd, sizeof(cmd), "%.*s", (int)MIN(size, sizeof(cmd) - 1), buf);
	if (!strncmp(cmd, "cut", 3))
		n = sscanf(cmd + 3, "%u %" SCNu64, &percent, &seed);
	if (strncmp(cmd, "cut", 3) || n == 1 || percent > 100) {
		fprintf(stderr, "pcdisk: bad command '%s' (cut | cut PERCENT SEED)\n", cmd);
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!d->dead)
		cut(d, n == 2 ? percent : 0, seed);
	fuse_reply_write(req, size);
}

static void pc_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct disk *d = DISK(req);
	if (ino == INO_CTL) {
		ctl_command(req, d, buf, size);
		return;
	}
	if (d->dead) {
		d->c.refused_writes++;
		d->c.refused_bytes += size;
		fuse_reply_err(req, EIO);
		return;
	}
	if ((uint64_t)off + size > d->size) {
		fuse_reply_err(req, ENOSPC);
		return;
	}
	int r = cache_write(d, (const uint8_t *)buf, (uint64_t)off, size);
	d->c.writes++;
	d->c.written_bytes += size;
	if (r)
		fuse_reply_err(req, -r == ENOMEM ? ENOMEM : EIO);
	else
		fuse_reply_write(req, size);
}

static void pc_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct disk *d = DISK(req);
	if (ino != INO_DISK) {
		fuse_reply_err(req, 0);
		return;
	}
	if (d->dead) {
		fuse_reply_err(req, EIO);
		return;
	}
	d->c.flushes++;
	fuse_reply_err(req, flush_all(d) ? EIO : 0);
}

/* Discard (punch) and write-zeroes: cached zeros; allocation: nothing to do. */
static void pc_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct disk *d = DISK(req);
	int zero = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE);
	if (ino != INO_DISK || (mode & ~(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (d->dead) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (off < 0 || len <= 0 || (uint64_t)off + (uint64_t)len > d->size) {
		fuse_reply_err(req, zero ? EINVAL : ENOSPC);
		return;
	}
	int r = zero ? cache_write(d, NULL, (uint64_t)off, (uint64_t)len) : 0;
	fuse_reply_err(req, r ? EIO : 0);
}

static void pc_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st = {.f_bsize = BLK, .f_frsize = BLK, .f_namemax = 255};
	st.f_blocks = DISK(req)->nblocks;
	fuse_reply_statfs(req, &st);
}

static const struct fuse_lowlevel_ops pc_ops = {
	.init = pc_init,
	.lookup = pc_lookup,
	.getattr = pc_getattr,
	.readdir = pc_readdir,
	.open = pc_open,
	.read = pc_read,
	.write = pc_write,
	.fsync = pc_fsync,
	.fallocate = pc_fallocate,
	.statfs = pc_statfs,
};

/* ---- start-up ------------------------------------------------------------ */

static int disk_open(struct disk *d, const char *path, uint64_t cache_mib)
{
	struct stat st;
	memset(d, 0, sizeof(*d));
	if ((d->fd = open(path, O_RDWR)) < 0 || fstat(d->fd, &st) != 0) {
		fprintf(stderr, "pcdisk: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size % BLK) {
		fprintf(stderr, "pcdisk: %s: not a regular file of a whole number of %u-byte blocks\n", path, BLK);
		return -1;
	}
	d->size = (uint64_t)st.st_size;
	d->nblocks = d->size / BLK;
	d->cache_limit = cache_mib * (1u << 20) / BLK;
	d->cache = calloc(d->nblocks, sizeof(*d->cache));
	d->dirty = malloc(d->nblocks * sizeof(*d->dirty));
	if (!d->cache || !d->dirty) {
		fprintf(stderr, "pcdisk: out of memory for %" PRIu64 " blocks\n", d->nblocks);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct disk d;
	char *end = NULL;
	uint64_t cache_mib = argc == 4 ? strtoull(argv[3], &end, 10) : 128;
	int rc = 1;

	if (argc < 3 || argc > 4 || (end && (*end || !cache_mib))) {
		fprintf(stderr, "usage: pcdisk BACKING MOUNTPOINT [CACHE_MIB]\n");
		return 2;
	}
	if (disk_open(&d, argv[1], cache_mib))
		return 1;
	if (fuse_opt_add_arg(&args, argv[0]) || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, "fsname=pcdisk,subtype=pcdisk,default_permissions"))
		return 1;
	struct fuse_session *se = fuse_session_new(&args, &pc_ops, sizeof(pc_ops), &d);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, argv[2]) == 0) {
			rc = fuse_session_loop(se) ? 1 : 0;
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	for (uint64_t b = 0; b < d.nblocks; b++)
		if (d.cache[b])
			forget_block(&d, b);
	free(d.cache);
	free(d.dirty);
	close(d.fd);
	return rc;
}
