/* The siltfs engine: one mounted volume.
 *
 * The FUSE layer (fs/fuse_ops.c) is a thin mapping of kernel requests onto
 * these calls; nothing below knows about FUSE. Every call returns 0 (or a
 * byte count) or a negative errno. Inodes handed to the kernel are counted
 * (vol_lookup adds a reference, vol_forget drops them), open files are
 * handles (struct silt_file *) so that the data path never searches a table.
 */
#ifndef SILT_VOL_H
#define SILT_VOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "utils/config.h"

#define SILT_ROOT_INO 1

struct silt_vol;
struct silt_file;

/* setattr mask */
enum {
	SILT_SET_MODE = 1 << 0, SILT_SET_UID = 1 << 1, SILT_SET_GID = 1 << 2,
	SILT_SET_SIZE = 1 << 3, SILT_SET_ATIME = 1 << 4, SILT_SET_MTIME = 1 << 5,
	SILT_SET_ATIME_NOW = 1 << 6, SILT_SET_MTIME_NOW = 1 << 7, SILT_SET_CTIME = 1 << 8,
};

/* Open (or, when every tier folder is empty, create) the volume described by
 * cfg. Checks identity and format before writing anything; on refusal err
 * says why. created is set when a new volume was made. */
int vol_open(const struct silt_config *cfg, struct silt_vol **out, int *created,
	     char *err, size_t errlen);
/* Recovery for a volume made by an earlier siltfs with two tiers in one folder:
 * move the chunks of tier out of the folder of tier from into tier's own
 * (empty) folder, then mark it (fs/split.c). Run before vol_open; report
 * says what was done. Nothing is changed when a check fails. */
int vol_split_tier(const struct silt_config *cfg, const char *tier, const char *from,
		   char *report, size_t rlen, char *err, size_t errlen);
/* Flush everything and close. */
void vol_close(struct silt_vol *v);
const char *vol_uuid(const struct silt_vol *v);
void vol_set_mountpoint(struct silt_vol *v, const char *mnt);
/* How the kernel caches writes to it ("writeback" or "writethrough", a
 * static string), for siltctl status; set by the FUSE layer at init. */
void vol_set_cache_mode(struct silt_vol *v, const char *mode);
/* Writes (requests) through the volume since it opened: the foreground
 * load that replication times itself around (sync/schedule.h). */
uint64_t vol_write_count(struct silt_vol *v);

/* namespace */
int vol_lookup(struct silt_vol *v, uint64_t parent, const char *name, struct stat *st);
void vol_forget(struct silt_vol *v, uint64_t ino, uint64_t nlookup);
int vol_getattr(struct silt_vol *v, uint64_t ino, struct stat *st);
int vol_setattr(struct silt_vol *v, uint64_t ino, const struct stat *in, int mask, struct stat *out);
int vol_mknod(struct silt_vol *v, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
	      uid_t uid, gid_t gid, struct stat *st);
int vol_mkdir(struct silt_vol *v, uint64_t parent, const char *name, mode_t mode,
	      uid_t uid, gid_t gid, struct stat *st);
int vol_symlink(struct silt_vol *v, uint64_t parent, const char *name, const char *target,
		uid_t uid, gid_t gid, struct stat *st);
int vol_readlink(struct silt_vol *v, uint64_t ino, char *buf, size_t len);
int vol_link(struct silt_vol *v, uint64_t ino, uint64_t newparent, const char *newname,
	     struct stat *st);
int vol_unlink(struct silt_vol *v, uint64_t parent, const char *name);
int vol_rmdir(struct silt_vol *v, uint64_t parent, const char *name);
int vol_rename(struct silt_vol *v, uint64_t parent, const char *name, uint64_t newparent,
	       const char *newname, unsigned flags);

/* Directory listing. opendir takes a snapshot of the entries so that
 * offsets stay stable while the directory changes underneath; readdir calls
 * fill for entries from position off on and stops when fill returns
 * non-zero. */
struct silt_dir;
typedef int (*vol_dir_fill)(void *ctx, const char *name, uint64_t ino, mode_t type, uint64_t next_off);
int vol_opendir(struct silt_vol *v, uint64_t ino, struct silt_dir **d);
int vol_readdir(struct silt_vol *v, struct silt_dir *d, uint64_t off, vol_dir_fill fill, void *ctx);
void vol_releasedir(struct silt_vol *v, struct silt_dir *d);
/* fsync of a directory: every namespace change committed so far is durable
 * when it returns (they all live in the store's WAL). */
int vol_fsyncdir(struct silt_vol *v);

int vol_statfs(struct silt_vol *v, struct statvfs *sv);

/* xattrs */
int vol_setxattr(struct silt_vol *v, uint64_t ino, const char *name, const void *val,
		 size_t len, int flags);
/* Returns the value length; copies when len is large enough (-ERANGE if not). */
int vol_getxattr(struct silt_vol *v, uint64_t ino, const char *name, void *buf, size_t len);
int vol_listxattr(struct silt_vol *v, uint64_t ino, char *buf, size_t len);
int vol_removexattr(struct silt_vol *v, uint64_t ino, const char *name);
/* What a write, a truncate, an O_TRUNC open or a chown takes from a regular
 * file when siltfs rather than the kernel kills privileges (the FUSE
 * session negotiated FUSE_HANDLE_KILLPRIV_V2): its file capabilities
 * (security.capability) always, and with suidgid (the kernel says the
 * caller lacks CAP_FSETID, or it is a chown) its setuid bit and, if the
 * group may execute it, its setgid bit. As the kernel does for every other
 * filesystem. 1 when the mode changed (the kernel's cached one is stale
 * then), 0 when it did not or for anything but a regular file. */
int vol_kill_priv(struct silt_vol *v, uint64_t ino, int suidgid);

/* files */
int vol_open_file(struct silt_vol *v, uint64_t ino, int flags, struct silt_file **f);
int vol_create(struct silt_vol *v, uint64_t parent, const char *name, mode_t mode,
	       uid_t uid, gid_t gid, int flags, struct stat *st, struct silt_file **f);
void vol_release(struct silt_vol *v, struct silt_file *f);
/* Reads into the calling thread's I/O buffer; *data points at the bytes. */
ssize_t vol_read(struct silt_vol *v, struct silt_file *f, size_t size, off_t off, const void **data);
/* len bytes at off into buf, zeros past the end of the file: 0 or -errno
 * (for readers inside the daemon: replication, verify). */
int vol_read_full(struct silt_vol *v, struct silt_file *f, void *buf, size_t len, off_t off);
ssize_t vol_write(struct silt_vol *v, struct silt_file *f, const void *buf, size_t size, off_t off);
/* The asynchronous path for aligned I/O of up to 1 MiB on chunks that
 * already have a home on one plain tier: the call returns at once and
 * done() runs on the completion thread with the data (reads: iov[0..iovcnt)
 * holding res bytes) or the byte count (writes: iov NULL) in res, or
 * -errno. -EAGAIN means "not a case for it": use vol_read/vol_write. */
typedef void (*vol_io_done)(void *arg, const struct iovec *iov, int iovcnt, ssize_t res);
/* Batching, for a thread that takes requests in bursts: while it holds,
 * its asynchronous I/O is queued and goes to the disk at vol_io_flush()
 * (one system call and one device doorbell for the burst). Every engine
 * call that may wait flushes first, so held I/O never waits behind the
 * thread that holds it; the caller flushes before it sleeps itself. */
void vol_io_hold(struct silt_vol *v, int hold);
/* For a daemon that locked its memory (swap): allocate and touch, now, all
 * the data path will ever use (the asynchronous path's buffers, the RAM
 * tier), so that under a tight memory limit it never faults in a page it
 * cannot get: locked pages cannot be reclaimed to make room. */
int vol_prefault(struct silt_vol *v);
void vol_io_flush(struct silt_vol *v);
/* How many asynchronous requests the engine keeps in flight at most (its
 * ring and buffer pool); more wait for a slot in the synchronous path. */
#define SILT_VOL_ASYNC_DEPTH 256
int vol_read_async(struct silt_vol *v, struct silt_file *f, size_t size, off_t off,
		   vol_io_done done, void *arg);
int vol_write_async(struct silt_vol *v, struct silt_file *f, const void *buf, size_t size,
		    off_t off, vol_io_done done, void *arg);
int vol_flush(struct silt_vol *v, struct silt_file *f);
int vol_fsync(struct silt_vol *v, struct silt_file *f, int datasync);
int vol_fallocate(struct silt_vol *v, struct silt_file *f, int mode, off_t off, off_t len);
off_t vol_lseek(struct silt_vol *v, struct silt_file *f, off_t off, int whence);

/* For the replication journal (sync/journal.h), which records every change
 * through the commit point and keeps its records in the volume's own store
 * (CF_JOURNAL): subscribe before the volume takes user I/O. */
struct silt_meta;
struct silt_commit;
struct silt_meta *vol_meta(struct silt_vol *v);
struct silt_commit *vol_commit_point(struct silt_vol *v);

/* Replicas (sync/receiver.c): a volume that another volume ships to keeps
 * that volume's inode numbers, so that a change can name its inode. */
struct vol_rxattr {
	const char *name;
	const void *value;
	uint32_t len;
};
struct vol_rnode {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink, rdev;
	uint64_t size;
	int64_t atime, mtime, ctime; /* ns since the epoch */
	const char *symlink;         /* target of a symlink, else "" */
	uint32_t nxattr;
	const struct vol_rxattr *xattr;
};
struct vol_rdent {
	uint64_t parent, ino;
	uint32_t type;               /* S_IFMT bits */
	const char *name;
};
/* Make the whole namespace of v what nodes and dents say, in one commit:
 * inodes not among nodes go (freed once nothing holds them), the others
 * take the given attributes (a smaller size truncates), new ones are made
 * with the given numbers; directory entries and xattrs are replaced whole.
 * Refused with -EINVAL (nothing changed) unless it is a tree: the root
 * among the nodes, every entry naming known inodes under a directory, no
 * directory under two names. */
int vol_replica_namespace(struct silt_vol *v, const struct vol_rnode *nodes, size_t nn,
			  const struct vol_rdent *dents, size_t nd);
/* One inode's attributes and size; -ENOENT if it is not there. */
int vol_replica_attr(struct silt_vol *v, const struct vol_rnode *n);

/* Facts (fs/facts.c): the operator's records of a volume that a replica
 * takes from its primary: pins (id: the inode, name: the tier), live
 * placement rules (name, text: "key=value ..."), events (id: the number,
 * time_ns, sub: the kind, text). */
enum { VOL_FACT_PIN = 1, VOL_FACT_RULE, VOL_FACT_EVENT };
struct vol_fact {
	uint32_t kind;
	uint64_t id;
	int64_t time_ns;
	uint32_t sub;
	const char *name, *text;     /* never NULL ("" when unused) */
};
/* Every fact of v to cb, pins, then rules, then events oldest first; a
 * non-zero return of cb stops and is returned. */
int vol_facts_list(struct silt_vol *v, int (*cb)(void *ctx, const struct vol_fact *f), void *ctx);
/* Make v's facts these, in one commit, and follow them at once (bounds,
 * rules, the event log); a pin to a tier v lacks is left out (logged). */
int vol_replica_facts(struct silt_vol *v, const struct vol_fact *f, size_t n);

/* Operator queries (control socket): text lines of key=value records. */
int vol_ctl(struct silt_vol *v, const char *request, char **reply, size_t *replylen);

#endif
