/* Namespace: lookup, create, link, unlink, rename, directories, xattrs.
 *
 * Each change is exactly one RocksDB WriteBatch (vol_commit_ns), so a crash
 * leaves either the old namespace or the new one. Changes are serialised by
 * the volume's ns_lock: VM image directories see few namespace operations,
 * and one lock makes check-then-write sequences (does the target exist? is
 * the directory empty?) trivially right.
 *
 * An inode whose last name goes away while the kernel or an open file still
 * holds it gets an orphan record in the same batch; its data is freed when
 * the last reference goes (volume.c), or at the next mount after a crash.
 *
 * Directory entry: key parent(be64)|name, value ino(le64)|mode(le32).
 */
#include "fs/rules.h"
#include "fs/vol_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#define NAME_MAX_LEN 255
#define XATTR_MAX_VALUE 65536

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#endif

struct silt_dir {
	uint64_t ino;
	size_t n;
	struct dir_ent {
		uint64_t ino;
		uint32_t mode;
		char *name;
	} *e;
};

static size_t dkey(uint8_t *k, uint64_t parent, const char *name)
{
	size_t n = strlen(name);
	silt_put_be64(k, parent);
	memcpy(k + 8, name, n);
	return 8 + n;
}

static int dentry_get(struct silt_vol *v, uint64_t parent, const char *name, struct dent_val *out)
{
	uint8_t k[8 + NAME_MAX_LEN + 1];
	char *val;
	size_t vl;
	int r;

	if (strlen(name) > NAME_MAX_LEN)
		return -ENAMETOOLONG;
	r = meta_get(v->meta, CF_DENTRIES, k, dkey(k, parent, name), &val, &vl);
	if (r)
		return r;
	if (vl != sizeof(*out)) {
		free(val);
		return -EUCLEAN;
	}
	memcpy(out, val, sizeof(*out));
	free(val);
	return 0;
}

void ns_stage_dentry(struct silt_vol *v, struct meta_batch *b, uint64_t parent, const char *name,
		     uint64_t ino, uint32_t mode)
{
	uint8_t k[8 + NAME_MAX_LEN + 1];
	struct dent_val dv = { .ino = ino, .mode = mode };
	meta_put(b, v->meta, CF_DENTRIES, k, dkey(k, parent, name), &dv, sizeof(dv));
}

static void dentry_del(struct silt_vol *v, struct meta_batch *b, uint64_t parent, const char *name)
{
	uint8_t k[8 + NAME_MAX_LEN + 1];
	meta_del(b, v->meta, CF_DENTRIES, k, dkey(k, parent, name));
}

static int dir_empty(struct silt_vol *v, uint64_t ino)
{
	uint8_t p[8];
	const char *k, *val;
	size_t kl, vl;
	struct meta_iter *it;
	int r;

	key_ino(p, ino);
	it = meta_iter_new(v->meta, CF_DENTRIES, p, 8);
	if (!it)
		return -ENOMEM;
	r = meta_iter_next(it, &k, &kl, &val, &vl);
	meta_iter_free(it);
	return r < 0 ? r : !r;
}

int vol_lookup(struct silt_vol *v, uint64_t parent, const char *name, struct stat *st)
{
	struct dent_val dv;
	struct inode *in;
	int r = dentry_get(v, parent, name, &dv);

	if (r)
		return r;
	if ((r = inode_get(v, dv.ino, &in)))
		return r == -ENOENT ? -EUCLEAN : r;
	inode_ref_kernel(v, in, 1);
	pthread_mutex_lock(&in->lock);
	inode_to_stat(v, in, st);
	pthread_mutex_unlock(&in->lock);
	inode_put(v, in);
	return 0;
}

int vol_getattr(struct silt_vol *v, uint64_t ino, struct stat *st)
{
	struct inode *in;
	int r = inode_get(v, ino, &in);

	if (r)
		return r;
	pthread_mutex_lock(&in->lock);
	inode_to_stat(v, in, st);
	pthread_mutex_unlock(&in->lock);
	inode_put(v, in);
	return 0;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

int vol_setattr(struct silt_vol *v, uint64_t ino, const struct stat *a, int mask, struct stat *out)
{
	struct inode *in;
	struct meta_batch *b;
	int r = inode_get(v, ino, &in);

	if (r)
		return r;
	if (mask & SILT_SET_SIZE) {
		if (S_ISDIR(in->rec.mode))
			r = -EISDIR;
		else if (!S_ISREG(in->rec.mode))
			r = -EINVAL;
		else
			r = data_truncate(v, in, (uint64_t)a->st_size);
		if (r)
			goto out;
	}
	if (mask & ~SILT_SET_SIZE) {
		int64_t now = silt_now_wall();
		pthread_mutex_lock(&in->lock);
		if (mask & SILT_SET_MODE)
			in->rec.mode = (in->rec.mode & S_IFMT) | (a->st_mode & 07777);
		if (mask & SILT_SET_UID)
			in->rec.uid = a->st_uid;
		if (mask & SILT_SET_GID)
			in->rec.gid = a->st_gid;
		if (mask & SILT_SET_ATIME_NOW)
			in->rec.atime = now;
		else if (mask & SILT_SET_ATIME)
			in->rec.atime = ts_ns(&a->st_atim);
		if (mask & SILT_SET_MTIME_NOW)
			in->rec.mtime = now;
		else if (mask & SILT_SET_MTIME)
			in->rec.mtime = ts_ns(&a->st_mtim);
		in->rec.ctime = (mask & SILT_SET_CTIME) ? ts_ns(&a->st_ctim) : now;
		if (!(b = meta_batch_new())) {
			pthread_mutex_unlock(&in->lock);
			r = -ENOMEM;
			goto out;
		}
		inode_stage(v, b, in);
		r = vol_commit(v, b, 0, CHANGE_ATTR, in->ino, 0, 0);
		meta_batch_free(b);
		pthread_mutex_unlock(&in->lock);
	}
out:
	if (!r) {
		pthread_mutex_lock(&in->lock);
		inode_to_stat(v, in, out);
		pthread_mutex_unlock(&in->lock);
	}
	inode_put(v, in);
	return r;
}

/* Parent must be a live directory. Returns it referenced. */
static int get_dir(struct silt_vol *v, uint64_t ino, struct inode **out)
{
	int r = inode_get(v, ino, out);
	if (r)
		return r;
	if (!S_ISDIR((*out)->rec.mode) || (*out)->rec.nlink == 0) {
		inode_put(v, *out);
		return S_ISDIR((*out)->rec.mode) ? -ENOENT : -ENOTDIR;
	}
	return 0;
}

static void touch_dir(struct silt_vol *v, struct meta_batch *b, struct inode *dir, int nlink_delta)
{
	pthread_mutex_lock(&dir->lock);
	dir->rec.mtime = dir->rec.ctime = silt_now_wall();
	dir->rec.nlink = (uint32_t)((int)dir->rec.nlink + nlink_delta);
	inode_stage(v, b, dir);
	pthread_mutex_unlock(&dir->lock);
}

/* Create any kind of inode under parent/name and hand it to the kernel. */
static int make_node(struct silt_vol *v, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
		     uid_t uid, gid_t gid, const char *target, struct stat *st, struct inode **keep)
{
	struct inode *dir, *in;
	struct dent_val dv;
	struct meta_batch *b;
	int r;

	if (strlen(name) > NAME_MAX_LEN)
		return -ENAMETOOLONG;
	if (target && strlen(target) >= 4096)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&v->ns_lock);
	if ((r = get_dir(v, parent, &dir)))
		goto unlock;
	r = dentry_get(v, parent, name, &dv);
	if (r != -ENOENT) {
		r = r ? r : -EEXIST;
		goto put_dir;
	}
	if (!(b = meta_batch_new())) {
		r = -ENOMEM;
		goto put_dir;
	}
	if (!(in = inode_new(v, vol_alloc_ino(v, b)))) {
		meta_batch_free(b);
		r = -ENOMEM;
		goto put_dir;
	}
	int64_t now = silt_now_wall();
	in->rec = (struct inode_rec){ .mode = mode, .uid = uid, .gid = gid,
				      .nlink = S_ISDIR(mode) ? 2 : 1, .rdev = (uint32_t)rdev,
				      .atime = now, .mtime = now, .ctime = now };
	if (dir->rec.mode & S_ISGID) { /* BSD group semantics on setgid dirs */
		in->rec.gid = dir->rec.gid;
		if (S_ISDIR(mode))
			in->rec.mode |= S_ISGID;
	}
	if (target && !(in->symlink = strdup(target))) {
		r = -ENOMEM;
		goto free_new;
	}
	if (S_ISLNK(mode))
		in->rec.size = strlen(target);
	inode_stage(v, b, in);
	ns_stage_dentry(v, b, parent, name, in->ino, mode & S_IFMT);
	touch_dir(v, b, dir, S_ISDIR(mode) ? 1 : 0);
	r = vol_commit_ns(v, b, 0, in->ino);
	if (r) {
		touch_dir(v, b, dir, S_ISDIR(mode) ? -1 : 0); /* undo the in-memory count */
		goto free_new;
	}
	meta_batch_free(b);
	inode_insert_new(v, in);
	inode_ref_kernel(v, in, 1);
	inode_to_stat(v, in, st);
	rules_named(v, parent, name, in->ino, mode);
	if (keep)
		*keep = in;
	else
		inode_put(v, in);
	inode_put(v, dir);
	pthread_mutex_unlock(&v->ns_lock);
	return 0;
free_new:
	meta_batch_free(b);
	inode_discard(in);
put_dir:
	inode_put(v, dir);
unlock:
	pthread_mutex_unlock(&v->ns_lock);
	return r;
}

int vol_mknod(struct silt_vol *v, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
	      uid_t uid, gid_t gid, struct stat *st)
{
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISCHR(mode) && !S_ISBLK(mode))
		return -EINVAL;
	return make_node(v, parent, name, mode, rdev, uid, gid, NULL, st, NULL);
}

int vol_mkdir(struct silt_vol *v, uint64_t parent, const char *name, mode_t mode,
	      uid_t uid, gid_t gid, struct stat *st)
{
	return make_node(v, parent, name, S_IFDIR | (mode & 07777), 0, uid, gid, NULL, st, NULL);
}

int vol_symlink(struct silt_vol *v, uint64_t parent, const char *name, const char *target,
		uid_t uid, gid_t gid, struct stat *st)
{
	return make_node(v, parent, name, S_IFLNK | 0777, 0, uid, gid, target, st, NULL);
}

int vol_create(struct silt_vol *v, uint64_t parent, const char *name, mode_t mode,
	       uid_t uid, gid_t gid, int flags, struct stat *st, struct silt_file **f)
{
	struct inode *in;
	struct silt_file *fh = malloc(sizeof(*fh));
	int r;

	if (!fh)
		return -ENOMEM;
	r = make_node(v, parent, name, S_IFREG | (mode & 07777), 0, uid, gid, NULL, st, &in);
	if (r) {
		free(fh);
		return r;
	}
	inode_attach_file(v, in, fh, flags);
	*f = fh;
	return 0; /* the make_node reference now belongs to the handle */
}

int vol_readlink(struct silt_vol *v, uint64_t ino, char *buf, size_t len)
{
	struct inode *in;
	int r = inode_get(v, ino, &in);

	if (r)
		return r;
	if (!S_ISLNK(in->rec.mode) || !in->symlink)
		r = -EINVAL;
	else
		snprintf(buf, len, "%s", in->symlink);
	inode_put(v, in);
	return r;
}

int vol_link(struct silt_vol *v, uint64_t ino, uint64_t newparent, const char *newname, struct stat *st)
{
	struct inode *dir, *in;
	struct dent_val dv;
	struct meta_batch *b;
	int r;

	pthread_mutex_lock(&v->ns_lock);
	if ((r = get_dir(v, newparent, &dir)))
		goto unlock;
	if ((r = inode_get(v, ino, &in)))
		goto put_dir;
	if (S_ISDIR(in->rec.mode)) {
		r = -EPERM;
		goto put;
	}
	if (in->rec.nlink == 0) {
		r = -ENOENT;
		goto put;
	}
	r = dentry_get(v, newparent, newname, &dv);
	if (r != -ENOENT) {
		r = r ? r : -EEXIST;
		goto put;
	}
	if (!(b = meta_batch_new())) {
		r = -ENOMEM;
		goto put;
	}
	pthread_mutex_lock(&in->lock);
	in->rec.nlink++;
	in->rec.ctime = silt_now_wall();
	inode_stage(v, b, in);
	pthread_mutex_unlock(&in->lock);
	ns_stage_dentry(v, b, newparent, newname, ino, in->rec.mode & S_IFMT);
	touch_dir(v, b, dir, 0);
	r = vol_commit_ns(v, b, 0, ino);
	meta_batch_free(b);
	pthread_mutex_lock(&in->lock);
	if (r)
		in->rec.nlink--;
	else
		inode_to_stat(v, in, st);
	pthread_mutex_unlock(&in->lock);
	if (!r) {
		inode_ref_kernel(v, in, 1);
		rules_named(v, newparent, newname, ino, in->rec.mode);
	}
put:
	inode_put(v, in);
put_dir:
	inode_put(v, dir);
unlock:
	pthread_mutex_unlock(&v->ns_lock);
	return r;
}

/* Drop one name of victim into b: nlink, ctime, orphan record at zero. */
static void stage_drop_link(struct silt_vol *v, struct meta_batch *b, struct inode *victim)
{
	pthread_mutex_lock(&victim->lock);
	if (S_ISDIR(victim->rec.mode))
		victim->rec.nlink = 0;
	else if (victim->rec.nlink > 0)
		victim->rec.nlink--;
	victim->rec.ctime = silt_now_wall();
	inode_stage(v, b, victim);
	if (victim->rec.nlink == 0)
		inode_stage_orphan(v, b, victim->ino, 1);
	pthread_mutex_unlock(&victim->lock);
}

static int remove_name(struct silt_vol *v, uint64_t parent, const char *name, int want_dir)
{
	struct inode *dir, *in;
	struct dent_val dv;
	struct meta_batch *b;
	struct inode_rec saved;
	int r;

	pthread_mutex_lock(&v->ns_lock);
	if ((r = get_dir(v, parent, &dir)))
		goto unlock;
	if ((r = dentry_get(v, parent, name, &dv)))
		goto put_dir;
	if ((r = inode_get(v, dv.ino, &in)))
		goto put_dir;
	if (want_dir && !S_ISDIR(in->rec.mode)) {
		r = -ENOTDIR;
		goto put;
	}
	if (!want_dir && S_ISDIR(in->rec.mode)) {
		r = -EISDIR;
		goto put;
	}
	if (want_dir && (r = dir_empty(v, in->ino)) != 1) {
		r = r < 0 ? r : -ENOTEMPTY;
		goto put;
	}
	if (!(b = meta_batch_new())) {
		r = -ENOMEM;
		goto put;
	}
	saved = in->rec;
	dentry_del(v, b, parent, name);
	stage_drop_link(v, b, in);
	touch_dir(v, b, dir, want_dir ? -1 : 0);
	r = vol_commit_ns(v, b, 0, in->ino);
	meta_batch_free(b);
	if (r) {
		pthread_mutex_lock(&in->lock);
		in->rec = saved;
		pthread_mutex_unlock(&in->lock);
		pthread_mutex_lock(&dir->lock);
		dir->rec.nlink += want_dir ? 1 : 0;
		pthread_mutex_unlock(&dir->lock);
	} else if (want_dir) {
		rules_dir_gone(v, in->ino);
	}
put:
	inode_put(v, in); /* frees the data now if nobody else holds it */
put_dir:
	inode_put(v, dir);
unlock:
	pthread_mutex_unlock(&v->ns_lock);
	return r;
}

int vol_unlink(struct silt_vol *v, uint64_t parent, const char *name)
{
	return remove_name(v, parent, name, 0);
}

int vol_rmdir(struct silt_vol *v, uint64_t parent, const char *name)
{
	return remove_name(v, parent, name, 1);
}

int vol_rename(struct silt_vol *v, uint64_t parent, const char *name, uint64_t newparent,
	       const char *newname, unsigned flags)
{
	struct inode *pd = NULL, *npd = NULL, *src = NULL, *dst = NULL;
	struct dent_val sv, dv;
	struct meta_batch *b = NULL;
	int have_dst, r;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	if (strlen(newname) > NAME_MAX_LEN)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&v->ns_lock);
	if ((r = get_dir(v, parent, &pd)) || (r = get_dir(v, newparent, &npd)))
		goto out;
	if ((r = dentry_get(v, parent, name, &sv)))
		goto out;
	r = dentry_get(v, newparent, newname, &dv);
	if (r && r != -ENOENT)
		goto out;
	have_dst = r == 0;
	r = 0;
	if ((flags & RENAME_NOREPLACE) && have_dst) {
		r = -EEXIST;
		goto out;
	}
	if ((flags & RENAME_EXCHANGE) && !have_dst) {
		r = -ENOENT;
		goto out;
	}
	if (have_dst && dv.ino == sv.ino)
		goto out; /* two names of one inode: nothing to do */
	if ((r = inode_get(v, sv.ino, &src)))
		goto out;
	if (have_dst && (r = inode_get(v, dv.ino, &dst)))
		goto out;
	int sdir = S_ISDIR(src->rec.mode), ddir = dst && S_ISDIR(dst->rec.mode);
	if (!(flags & RENAME_EXCHANGE) && dst) {
		if (sdir && !ddir) { r = -ENOTDIR; goto out; }
		if (!sdir && ddir) { r = -EISDIR; goto out; }
		if (ddir && (r = dir_empty(v, dst->ino)) != 1) {
			r = r < 0 ? r : -ENOTEMPTY;
			goto out;
		}
		r = 0;
	}
	if (!(b = meta_batch_new())) {
		r = -ENOMEM;
		goto out;
	}
	int64_t now = silt_now_wall();
	if (flags & RENAME_EXCHANGE) {
		ns_stage_dentry(v, b, parent, name, dst->ino, dst->rec.mode & S_IFMT);
		ns_stage_dentry(v, b, newparent, newname, src->ino, src->rec.mode & S_IFMT);
		int delta = sdir - ddir; /* subdirectories moving from parent to newparent */
		if (pd != npd && delta) {
			touch_dir(v, b, pd, -delta);
			touch_dir(v, b, npd, delta);
		} else {
			touch_dir(v, b, pd, 0);
			if (npd != pd)
				touch_dir(v, b, npd, 0);
		}
		pthread_mutex_lock(&dst->lock);
		dst->rec.ctime = now;
		inode_stage(v, b, dst);
		pthread_mutex_unlock(&dst->lock);
	} else {
		dentry_del(v, b, parent, name);
		ns_stage_dentry(v, b, newparent, newname, src->ino, src->rec.mode & S_IFMT);
		if (dst)
			stage_drop_link(v, b, dst);
		/* parent link counts: a moved directory leaves pd for npd; a
		 * replaced directory in npd goes away */
		int pd_delta = sdir && pd != npd ? -1 : 0;
		int npd_delta = (sdir && pd != npd ? 1 : 0) - (ddir ? 1 : 0);
		touch_dir(v, b, pd, pd_delta);
		if (npd != pd)
			touch_dir(v, b, npd, npd_delta);
		else if (npd_delta)
			touch_dir(v, b, pd, npd_delta);
	}
	pthread_mutex_lock(&src->lock);
	src->rec.ctime = now;
	inode_stage(v, b, src);
	pthread_mutex_unlock(&src->lock);
	r = vol_commit_ns(v, b, 0, src->ino);
	if (r) { /* memory is ahead of the store: take the store's word */
		struct inode *vs[] = { pd, npd, src, dst };
		for (int i = 0; i < 4; i++)
			if (vs[i])
				inode_reload(v, vs[i]);
	} else {
		rules_named(v, newparent, newname, src->ino, src->rec.mode);
		if (flags & RENAME_EXCHANGE)
			rules_named(v, parent, name, dst->ino, dst->rec.mode);
		else if (ddir)
			rules_dir_gone(v, dst->ino);
	}
out:
	meta_batch_free(b);
	if (dst)
		inode_put(v, dst);
	if (src)
		inode_put(v, src);
	if (npd)
		inode_put(v, npd);
	if (pd)
		inode_put(v, pd);
	pthread_mutex_unlock(&v->ns_lock);
	return r;
}

/* ---- directories ---- */

int vol_opendir(struct silt_vol *v, uint64_t ino, struct silt_dir **out)
{
	struct silt_dir *d;
	struct inode *in;
	uint8_t p[8];
	const char *k, *val;
	size_t kl, vl, cap = 16;
	int r;

	if ((r = get_dir(v, ino, &in)))
		return r;
	inode_put(v, in);
	d = calloc(1, sizeof(*d));
	if (!d || !(d->e = malloc(cap * sizeof(*d->e)))) {
		free(d);
		return -ENOMEM;
	}
	d->ino = ino;
	key_ino(p, ino);
	pthread_mutex_lock(&v->ns_lock);
	struct meta_iter *it = meta_iter_new(v->meta, CF_DENTRIES, p, 8);
	while (it && (r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1) {
		struct dent_val dv;
		if (vl != sizeof(dv))
			continue;
		if (d->n == cap) {
			void *n = realloc(d->e, (cap *= 2) * sizeof(*d->e));
			if (!n) {
				r = -ENOMEM;
				break;
			}
			d->e = n;
		}
		memcpy(&dv, val, sizeof(dv));
		d->e[d->n].ino = dv.ino;
		d->e[d->n].mode = dv.mode;
		d->e[d->n].name = strndup(k + 8, kl - 8);
		if (!d->e[d->n].name) {
			r = -ENOMEM;
			break;
		}
		d->n++;
	}
	pthread_mutex_unlock(&v->ns_lock);
	meta_iter_free(it);
	if (!it || r < 0) {
		vol_releasedir(v, d);
		return it ? r : -ENOMEM;
	}
	*out = d;
	return 0;
}

int vol_readdir(struct silt_vol *v, struct silt_dir *d, uint64_t off, vol_dir_fill fill, void *ctx)
{
	/* positions: 0 start, 1 after ".", 2 after "..", 2+i after entry i */
	for (uint64_t pos = off; pos < d->n + 2; pos++) {
		int full;
		if (pos == 0)
			full = fill(ctx, ".", d->ino, S_IFDIR, 1);
		else if (pos == 1)
			full = fill(ctx, "..", d->ino, S_IFDIR, 2); /* the kernel fixes up ".." itself */
		else
			full = fill(ctx, d->e[pos - 2].name, d->e[pos - 2].ino, d->e[pos - 2].mode, pos + 1);
		if (full)
			break;
	}
	return 0;
}

void vol_releasedir(struct silt_vol *v, struct silt_dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i].name);
	free(d->e);
	free(d);
}

int vol_fsyncdir(struct silt_vol *v)
{
	return commit_sync(v->commit);
}

int vol_statfs(struct silt_vol *v, struct statvfs *sv)
{
	uint64_t cap = 0, used = 0;

	for (int i = 0; i < v->ntiers; i++) {
		struct tier_stats ts;
		tier_get_stats(v->tiers[i], &ts);
		cap += ts.capacity;
		used += MIN(ts.used, ts.capacity);
	}
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = 4096;
	sv->f_frsize = 4096;
	sv->f_blocks = cap / 4096;
	sv->f_bfree = sv->f_bavail = (cap - used) / 4096;
	sv->f_files = 1ull << 32;
	sv->f_ffree = sv->f_favail = (1ull << 32) - MIN(v->next_ino, 1ull << 31);
	sv->f_namemax = NAME_MAX_LEN;
	return 0;
}

/* ---- xattrs ---- */

#define XATTR_CAPS "security.capability"

static size_t xkey(uint8_t *k, uint64_t ino, const char *name)
{
	return dkey(k, ino, name);
}

void ns_stage_xattr(struct silt_vol *v, struct meta_batch *b, uint64_t ino, const char *name,
		    const void *val, size_t len)
{
	uint8_t k[8 + NAME_MAX_LEN + 1];
	meta_put(b, v->meta, CF_XATTRS, k, xkey(k, ino, name), val, len);
}

int vol_setxattr(struct silt_vol *v, uint64_t ino, const char *name, const void *val,
		 size_t len, int flags)
{
	uint8_t k[8 + NAME_MAX_LEN + 1];
	struct meta_batch *b;
	struct inode *in;
	char *old;
	size_t ol;
	int r;

	if (strlen(name) > NAME_MAX_LEN || !*name)
		return -ERANGE;
	if (len > XATTR_MAX_VALUE)
		return -E2BIG;
	if ((r = inode_get(v, ino, &in)))
		return r;
	pthread_mutex_lock(&v->ns_lock);
	size_t kl = xkey(k, ino, name);
	r = meta_get(v->meta, CF_XATTRS, k, kl, &old, &ol);
	if (r == 0)
		free(old);
	if (r == 0 && (flags & XATTR_CREATE))
		r = -EEXIST;
	else if (r == -ENOENT && (flags & XATTR_REPLACE))
		r = -ENODATA;
	else if (r == 0 || r == -ENOENT)
		r = 0;
	if (!r && !(b = meta_batch_new()))
		r = -ENOMEM;
	if (!r) {
		meta_put(b, v->meta, CF_XATTRS, k, kl, val, len);
		pthread_mutex_lock(&in->lock);
		in->rec.ctime = silt_now_wall();
		inode_stage(v, b, in);
		pthread_mutex_unlock(&in->lock);
		r = vol_commit_ns(v, b, 0, in->ino);
		meta_batch_free(b);
	}
	if (!r && !strcmp(name, XATTR_CAPS))
		atomic_store(&in->caps, CAPS_SET);
	pthread_mutex_unlock(&v->ns_lock);
	inode_put(v, in);
	return r;
}

int vol_getxattr(struct silt_vol *v, uint64_t ino, const char *name, void *buf, size_t len)
{
	uint8_t k[8 + NAME_MAX_LEN + 1];
	char *val;
	size_t vl;
	int r;

	if (strlen(name) > NAME_MAX_LEN)
		return -ERANGE;
	r = meta_get(v->meta, CF_XATTRS, k, xkey(k, ino, name), &val, &vl);
	if (r)
		return r == -ENOENT ? -ENODATA : r;
	if (len && len < vl)
		r = -ERANGE;
	else if (len)
		memcpy(buf, val, vl);
	free(val);
	return r ? r : (int)vl;
}

int vol_listxattr(struct silt_vol *v, uint64_t ino, char *buf, size_t len)
{
	uint8_t p[8];
	const char *k, *val;
	size_t kl, vl, total = 0;
	int r;
	struct meta_iter *it;

	key_ino(p, ino);
	it = meta_iter_new(v->meta, CF_XATTRS, p, 8);
	if (!it)
		return -ENOMEM;
	while ((r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1) {
		size_t nl = kl - 8;
		if (len && total + nl + 1 > len) {
			meta_iter_free(it);
			return -ERANGE;
		}
		if (len) {
			memcpy(buf + total, k + 8, nl);
			buf[total + nl] = '\0';
		}
		total += nl + 1;
	}
	meta_iter_free(it);
	return r < 0 ? r : (int)total;
}

int vol_removexattr(struct silt_vol *v, uint64_t ino, const char *name)
{
	uint8_t k[8 + NAME_MAX_LEN + 1];
	struct meta_batch *b;
	struct inode *in;
	char *val;
	size_t vl;
	int r;

	if (strlen(name) > NAME_MAX_LEN)
		return -ERANGE;
	if (!strcmp(name, XATTR_CAPS)) { /* (before the store: never SET over a removed one) */
		if ((r = inode_get(v, ino, &in)))
			return r;
		atomic_store(&in->caps, CAPS_UNKNOWN);
		inode_put(v, in);
	}
	pthread_mutex_lock(&v->ns_lock);
	size_t kl = xkey(k, ino, name);
	r = meta_get(v->meta, CF_XATTRS, k, kl, &val, &vl);
	if (r == 0) {
		free(val);
		if (!(b = meta_batch_new())) {
			r = -ENOMEM;
		} else {
			meta_del(b, v->meta, CF_XATTRS, k, kl);
			r = vol_commit_ns(v, b, 0, ino);
			meta_batch_free(b);
		}
	} else if (r == -ENOENT) {
		r = -ENODATA;
	}
	pthread_mutex_unlock(&v->ns_lock);
	return r;
}

/* ---- open files ---- */

int vol_open_file(struct silt_vol *v, uint64_t ino, int flags, struct silt_file **f)
{
	struct silt_file *fh = malloc(sizeof(*fh));
	struct inode *in;
	int r;

	if (!fh)
		return -ENOMEM;
	if ((r = inode_get(v, ino, &in))) {
		free(fh);
		return r;
	}
	if (S_ISDIR(in->rec.mode)) {
		r = -EISDIR;
		goto fail;
	}
	pthread_mutex_lock(&in->lock);
	r = inode_load_chunks(v, in);
	pthread_mutex_unlock(&in->lock);
	if (r)
		goto fail;
	if ((flags & O_TRUNC) && in->rec.size && (r = data_truncate(v, in, 0)))
		goto fail;
	inode_attach_file(v, in, fh, flags);
	*f = fh;
	return 0; /* the inode_get reference belongs to the handle */
fail:
	inode_put(v, in);
	free(fh);
	return r;
}

int vol_flush(struct silt_vol *v, struct silt_file *f)
{
	/* close(2): times reach the WAL; durability is fsync's business */
	return inode_persist(v, f->ino, 0);
}

void vol_release(struct silt_vol *v, struct silt_file *f)
{
	struct inode *in = f->ino;

	inode_persist(v, in, 0);
	inode_detach_file(v, f);
	inode_put(v, in);
	free(f);
}

/* ---- killing privileges (vol.h) ---- */

/* The setuid bit, and the setgid bit of a group-executable file: 1 if
 * the mode changed. */
static int kill_suidgid(struct silt_vol *v, struct inode *in)
{
	struct meta_batch *b;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	mode_t kill = S_ISUID | ((in->rec.mode & S_IXGRP) ? S_ISGID : 0);
	if (in->rec.mode & kill) {
		if (!(b = meta_batch_new())) {
			r = -ENOMEM;
		} else {
			mode_t old = in->rec.mode;
			in->rec.mode &= ~kill;
			in->rec.ctime = silt_now_wall();
			inode_stage(v, b, in);
			if ((r = vol_commit(v, b, 0, CHANGE_ATTR, in->ino, 0, 0)))
				in->rec.mode = old;
			else
				r = 1;
			meta_batch_free(b);
		}
	}
	pthread_mutex_unlock(&in->lock);
	return r;
}

/* security.capability, if the file has it; whether it has is remembered
 * (set and removed through the xattr calls above), so that a write, which
 * comes here every time, looks in the store once per inode. */
static int kill_caps(struct silt_vol *v, struct inode *in)
{
	int state = atomic_load(&in->caps), r;

	if (state == CAPS_UNKNOWN) {
		r = vol_getxattr(v, in->ino, XATTR_CAPS, NULL, 0);
		if (r < 0 && r != -ENODATA)
			return r;
		state = r >= 0 ? CAPS_SET : CAPS_NONE;
		int unknown = CAPS_UNKNOWN; /* a setxattr meanwhile wins */
		atomic_compare_exchange_strong(&in->caps, &unknown, state);
	}
	if (state != CAPS_SET)
		return 0;
	r = vol_removexattr(v, in->ino, XATTR_CAPS);
	if (r == 0 || r == -ENODATA)
		atomic_store(&in->caps, CAPS_NONE);
	return r == -ENODATA ? 0 : r;
}

int vol_kill_priv(struct silt_vol *v, uint64_t ino, int suidgid)
{
	struct inode *in;
	int r = inode_get(v, ino, &in);

	if (r)
		return r;
	if (S_ISREG(in->rec.mode)) {
		int changed = suidgid ? kill_suidgid(v, in) : 0;
		r = changed < 0 ? changed : kill_caps(v, in);
		if (!r)
			r = changed;
	}
	inode_put(v, in);
	return r;
}
