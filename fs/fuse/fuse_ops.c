/* FUSE low-level callbacks.
 *
 * Like libfuse's passthrough_hp, this layer only translates: unpack the
 * request, call the engine (fs/vol.h), pack the reply. No storage decision
 * is made here. The one piece of process set-up that must happen here is in
 * init: once the daemon has detached and the kernel connection is up, lock
 * all memory and mark the process as an I/O flusher, because a daemon that
 * serves swap and gets paged out itself deadlocks. */
#include "fs/fuse/fuse_ops.h"
#include "fs/vol.h"
#include "utils/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

#define IOBUF_MAX (1u << 20)

static struct silt_fs *FS(fuse_req_t req) { return fuse_req_userdata(req); }
static struct silt_vol *VOL(fuse_req_t req) { return FS(req)->vol; }

static void silt_init(void *userdata, struct fuse_conn_info *conn)
{
	struct silt_fs *fs = userdata;

	conn->max_write = IOBUF_MAX;
	conn->max_readahead = IOBUF_MAX;
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Writeback: buffered writes stay in the page cache and reach us
	 * coalesced (a page or more, any writable handle, also of files opened
	 * write-only: reads of such handles must work), with the kernel
	 * keeping size and mtime and sending them as setattr; fsync writes the
	 * pages back before FSYNC comes, so its meaning holds. O_DIRECT opens
	 * then take the kernel's generic direct path (see silt_open), which
	 * writes dirty pages back first. Write-through: every write() is a
	 * request, answered once it is on the tier. */
	fs->writeback = fs->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE);
	if (fs->writeback)
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	vol_set_cache_mode(fs->vol, (conn->want & FUSE_CAP_WRITEBACK_CACHE) ? "writeback" : "writethrough");
	/* Privileges (setuid, setgid, file capabilities) killed here, not by
	 * the kernel, which otherwise asks for security.capability before
	 * every write() (file_remove_privs): with the writeback cache that
	 * round trip was nine tenths of a buffered write's cost. The session
	 * loop negotiates it (libfuse 3.14 cannot) and calls vol_kill_priv. */
	fs->killpriv = 1;
	/* Asynchronous direct I/O (qemu's aio, fio's io_uring) reaches us as
	 * background requests, of which the kernel by default lets only 12
	 * out to the daemon: a guest's queue depth of 32 would wait in the
	 * kernel while the disk idles. Let out as many as the engine can keep
	 * in flight; the kernel starts to throttle writers at 3/4 of that. */
	conn->max_background = SILT_VOL_ASYNC_DEPTH;
	conn->congestion_threshold = SILT_VOL_ASYNC_DEPTH * 3 / 4;

	if (fs->lock_memory) {
		/* ONFAULT: lock what we touch, do not populate every thread's
		 * full stack reservation up front. */
		if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0 &&
		    mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
			log_warn("mlockall failed (%s): do not put swap on this volume", strerror(errno));
		else if (vol_prefault(fs->vol) < 0)
			log_warn("cannot allocate the data path's buffers up front: under memory "
				 "pressure the daemon may be killed; do not put swap on this volume");
		/* needs CAP_SYS_RESOURCE, which some containers withhold */
		if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0)
			log_warn("PR_SET_IO_FLUSHER failed (%s): memory reclaim may wait on this daemon",
				 strerror(errno));
	}
}

static void reply_entry(fuse_req_t req, int r, const struct stat *st)
{
	struct fuse_entry_param e;

	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = st->st_ino;
	e.attr = *st;
	e.attr_timeout = FS(req)->timeout;
	e.entry_timeout = FS(req)->timeout;
	fuse_reply_entry(req, &e);
}

static void silt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct stat st;
	reply_entry(req, vol_lookup(VOL(req), parent, name, &st), &st);
}

static void silt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	vol_forget(VOL(req), ino, nlookup);
	fuse_reply_none(req);
}

static void silt_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		vol_forget(VOL(req), f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void silt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int r = vol_getattr(VOL(req), ino, &st);
	if (r)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, FS(req)->timeout);
}

static void silt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			 struct fuse_file_info *fi)
{
	static const struct { int fuse, silt; } map[] = {
		{ FUSE_SET_ATTR_MODE, SILT_SET_MODE }, { FUSE_SET_ATTR_UID, SILT_SET_UID },
		{ FUSE_SET_ATTR_GID, SILT_SET_GID }, { FUSE_SET_ATTR_SIZE, SILT_SET_SIZE },
		{ FUSE_SET_ATTR_ATIME, SILT_SET_ATIME }, { FUSE_SET_ATTR_MTIME, SILT_SET_MTIME },
		{ FUSE_SET_ATTR_ATIME_NOW, SILT_SET_ATIME_NOW }, { FUSE_SET_ATTR_MTIME_NOW, SILT_SET_MTIME_NOW },
		{ FUSE_SET_ATTR_CTIME, SILT_SET_CTIME },
	};
	struct stat st;
	int mask = 0;

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (to_set & map[i].fuse)
			mask |= map[i].silt;
	int r = vol_setattr(VOL(req), ino, attr, mask, &st);
	if (r)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, FS(req)->timeout);
}

static void silt_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[4096];
	int r = vol_readlink(VOL(req), ino, buf, sizeof(buf));
	if (r)
		fuse_reply_err(req, -r);
	else
		fuse_reply_readlink(req, buf);
}

static void silt_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	reply_entry(req, vol_mknod(VOL(req), parent, name, mode, rdev, c->uid, c->gid, &st), &st);
}

static void silt_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	reply_entry(req, vol_mkdir(VOL(req), parent, name, mode, c->uid, c->gid, &st), &st);
}

static void silt_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	reply_entry(req, vol_symlink(VOL(req), parent, name, link, c->uid, c->gid, &st), &st);
}

static void silt_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct stat st;
	reply_entry(req, vol_link(VOL(req), ino, newparent, newname, &st), &st);
}

static void silt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -vol_unlink(VOL(req), parent, name));
}

static void silt_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -vol_rmdir(VOL(req), parent, name));
}

static void silt_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
			const char *newname, unsigned int flags)
{
	fuse_reply_err(req, -vol_rename(VOL(req), parent, name, newparent, newname, flags));
}

/* The kernel serialises O_DIRECT writes to one file unless the open reply
 * carries FOPEN_PARALLEL_DIRECT_WRITES; the engine is built for concurrent
 * writers (chunk stripe locks), and qemu with cache=none or fio at depth 32
 * needs them. libfuse only learnt to set the flag in 3.15; with an older
 * one we send the open reply ourselves: struct fuse_open_out is part of
 * the stable kernel ABI (fh, open_flags, padding). */
#define SILT_FOPEN_DIRECT_IO (1u << 0)
#define SILT_FOPEN_PARALLEL_DIRECT_WRITES (1u << 6)
static int reply_open_parallel(fuse_req_t req, struct fuse_file_info *fi)
{
#if FUSE_VERSION >= FUSE_MAKE_VERSION(3, 15)
	fi->parallel_direct_writes = 1;
	return fuse_reply_open(req, fi);
#else
	struct { uint64_t fh; uint32_t open_flags, padding; } out = {
		.fh = fi->fh,
		.open_flags = SILT_FOPEN_PARALLEL_DIRECT_WRITES | (fi->direct_io ? SILT_FOPEN_DIRECT_IO : 0),
	};
	struct iovec iov = { .iov_base = &out, .iov_len = sizeof(out) };
	return fuse_reply_iov(req, &iov, 1);
#endif
}

static void silt_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct silt_file *f;
	int r = vol_open_file(VOL(req), ino, fi->flags, &f);
	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uintptr_t)f;
	/* O_DIRECT opens (qemu cache=none) take the kernel's direct path: no
	 * page cache, writes in parallel, and no security.capability lookup
	 * before every write as the cached path does. Not with the writeback
	 * cache: that path never writes back another handle's dirty pages, so
	 * a direct read after a buffered write would read what the disk had
	 * (and stop at the size we know, short of the kernel's); the generic
	 * O_DIRECT path writes them back first, as on any filesystem. */
	fi->direct_io = (fi->flags & O_DIRECT) && !FS(req)->writeback;
	if (reply_open_parallel(req, fi) == -ENOENT) /* interrupted: the kernel never saw it */
		vol_release(VOL(req), f);
}

static void silt_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			struct fuse_file_info *fi)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct fuse_entry_param e;
	struct silt_file *f;
	struct stat st;
	int r = vol_create(VOL(req), parent, name, mode, c->uid, c->gid, fi->flags, &st, &f);

	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = st.st_ino;
	e.attr = st;
	e.attr_timeout = e.entry_timeout = FS(req)->timeout;
	fi->fh = (uintptr_t)f;
	if (fuse_reply_create(req, &e, fi) == -ENOENT)
		vol_release(VOL(req), f);
}

static struct silt_file *FH(struct fuse_file_info *fi) { return (struct silt_file *)(uintptr_t)fi->fh; }

/* Completion of an asynchronous read or write (on the engine's thread). */
static void reply_io(void *arg, const struct iovec *iov, int iovcnt, ssize_t res)
{
	fuse_req_t req = arg;
	if (res < 0)
		fuse_reply_err(req, (int)-res);
	else if (iov)
		fuse_reply_iov(req, iov, iovcnt);
	else
		fuse_reply_write(req, (size_t)res);
}

static void silt_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	const void *data;

	if (vol_read_async(VOL(req), FH(fi), size, off, reply_io, req) == 0)
		return;
	ssize_t n = vol_read(VOL(req), FH(fi), size, off, &data);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, n ? data : NULL, (size_t)n);
}

static void silt_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	if (vol_write_async(VOL(req), FH(fi), buf, size, off, reply_io, req) == 0)
		return;
	ssize_t n = vol_write(VOL(req), FH(fi), buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void silt_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -vol_flush(VOL(req), FH(fi)));
}

static void silt_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	vol_release(VOL(req), FH(fi));
	fuse_reply_err(req, 0);
}

static void silt_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -vol_fsync(VOL(req), FH(fi), datasync));
}

/* Without it the kernel makes fsync(dir) a no-op, and a rename that an
 * application made durable the POSIX way would not be. */
static void silt_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -vol_fsyncdir(VOL(req)));
}

static void silt_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct silt_dir *d;
	int r = vol_opendir(VOL(req), ino, &d);
	if (r) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) == -ENOENT)
		vol_releasedir(VOL(req), d);
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
};

static int dir_fill(void *ctx, const char *name, uint64_t ino, mode_t type, uint64_t next)
{
	struct dirbuf *db = ctx;
	struct stat st = { .st_ino = ino, .st_mode = type };
	size_t need = fuse_add_direntry(db->req, NULL, 0, name, NULL, 0);

	if (db->used + need > db->size)
		return 1;
	fuse_add_direntry(db->req, db->buf + db->used, db->size - db->used, name, &st, (off_t)next);
	db->used += need;
	return 0;
}

static void silt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct dirbuf db = { .req = req, .size = size };
	int r;

	if (!(db.buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = vol_readdir(VOL(req), (struct silt_dir *)(uintptr_t)fi->fh, (uint64_t)off, dir_fill, &db);
	if (r)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, db.buf, db.used);
	free(db.buf);
}

static void silt_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	vol_releasedir(VOL(req), (struct silt_dir *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void silt_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int r = vol_statfs(VOL(req), &sv);
	if (r)
		fuse_reply_err(req, -r);
	else
		fuse_reply_statfs(req, &sv);
}

static void silt_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			  size_t size, int flags)
{
	fuse_reply_err(req, -vol_setxattr(VOL(req), ino, name, value, size, flags));
}

/* getxattr and listxattr share the size-probe protocol: size 0 asks for the
 * length, otherwise the value is returned if it fits. */
static void reply_xattr(fuse_req_t req, size_t size, int (*get)(struct silt_vol *, uint64_t, const char *, char *, size_t),
			fuse_ino_t ino, const char *name)
{
	char *buf = size ? malloc(size) : NULL;
	int r;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = get(VOL(req), ino, name, buf, size);
	if (r < 0)
		fuse_reply_err(req, -r);
	else if (!size)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static int get_one(struct silt_vol *v, uint64_t ino, const char *name, char *buf, size_t size)
{
	return vol_getxattr(v, ino, name, buf, size);
}

static int get_list(struct silt_vol *v, uint64_t ino, const char *name, char *buf, size_t size)
{
	return vol_listxattr(v, ino, buf, size);
}

static void silt_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	reply_xattr(req, size, get_one, ino, name);
}

static void silt_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	reply_xattr(req, size, get_list, ino, NULL);
}

static void silt_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, -vol_removexattr(VOL(req), ino, name));
}

static void silt_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			   struct fuse_file_info *fi)
{
	fuse_reply_err(req, -vol_fallocate(VOL(req), FH(fi), mode, off, len));
}

static void silt_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	off_t r = vol_lseek(VOL(req), FH(fi), off, whence);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, r);
}

const struct fuse_lowlevel_ops silt_fuse_ops = {
	.init = silt_init,
	.lookup = silt_lookup,
	.forget = silt_forget,
	.forget_multi = silt_forget_multi,
	.getattr = silt_getattr,
	.setattr = silt_setattr,
	.readlink = silt_readlink,
	.mknod = silt_mknod,
	.mkdir = silt_mkdir,
	.symlink = silt_symlink,
	.link = silt_link,
	.unlink = silt_unlink,
	.rmdir = silt_rmdir,
	.rename = silt_rename,
	.open = silt_open,
	.create = silt_create,
	.read = silt_read,
	.write = silt_write,
	.flush = silt_flush,
	.release = silt_release,
	.fsync = silt_fsync,
	.opendir = silt_opendir,
	.readdir = silt_readdir,
	.releasedir = silt_releasedir,
	.fsyncdir = silt_fsyncdir,
	.statfs = silt_statfs,
	.setxattr = silt_setxattr,
	.getxattr = silt_getxattr,
	.listxattr = silt_listxattr,
	.removexattr = silt_removexattr,
	.fallocate = silt_fallocate,
	.lseek = silt_lseek,
};
