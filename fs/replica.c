/* Replica side of replication: applying another volume's namespace and
 * attributes by inode number (vol.h, "Replicas").
 *
 * The receiver (sync/receiver.c) gets a whole namespace as a list of
 * inodes and a list of directory entries and hands it here; chunk data it
 * writes through the ordinary data path. A namespace is applied in one
 * commit, so a reader of the replica (mounted read-only) sees the old tree
 * or the new one, never a mixture: every directory entry and xattr record
 * is deleted and written again in the same batch, every inode record is
 * rewritten, inodes that went are unlinked like the last name of a file
 * (an orphan record in the batch, freed when nothing holds them any more).
 * Shrinking a file is its own commit before it (data_truncate), which the
 * receiver's redo after a crash repeats harmlessly. */
#include "fs/vol_int.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int cmp_ino(const void *a, const void *b)
{
	const struct vol_rnode *x = *(const struct vol_rnode *const *)a, *y = *(const struct vol_rnode *const *)b;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* Index of ino in sorted, or -1. */
static ssize_t find(const struct vol_rnode **sorted, size_t n, uint64_t ino)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (sorted[mid]->ino == ino)
			return (ssize_t)mid;
		if (sorted[mid]->ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Is it a tree we can apply? Sorted gets the nodes by number. */
static int check_tree(const struct vol_rnode *nodes, size_t nn, const struct vol_rdent *dents, size_t nd,
		      const struct vol_rnode **sorted)
{
	for (size_t i = 0; i < nn; i++)
		sorted[i] = &nodes[i];
	qsort(sorted, nn, sizeof(*sorted), cmp_ino);
	for (size_t i = 1; i < nn; i++)
		if (sorted[i]->ino == sorted[i - 1]->ino)
			return -EINVAL;
	ssize_t root = find(sorted, nn, SILT_ROOT_INO);
	if (root < 0 || !S_ISDIR(sorted[root]->mode))
		return -EINVAL;
	uint8_t *named = calloc(nn, 1); /* directories seen under a name */
	if (!named)
		return -ENOMEM;
	int r = 0;
	for (size_t i = 0; i < nd && !r; i++) {
		ssize_t p = find(sorted, nn, dents[i].parent), c = find(sorted, nn, dents[i].ino);
		if (p < 0 || c < 0 || !S_ISDIR(sorted[p]->mode) || (sorted[c]->mode & S_IFMT) != dents[i].type ||
		    c == root || !dents[i].name[0] || strchr(dents[i].name, '/') || strlen(dents[i].name) > 255)
			r = -EINVAL;
		else if (S_ISDIR(sorted[c]->mode) && named[c]++)
			r = -EINVAL;
	}
	free(named);
	return r;
}

static void set_rec(struct inode *in, const struct vol_rnode *n)
{
	in->rec.version = INODE_REC_V1;
	in->rec.mode = n->mode;
	in->rec.uid = n->uid;
	in->rec.gid = n->gid;
	in->rec.nlink = n->nlink;
	in->rec.rdev = n->rdev;
	in->rec.size = n->size;
	in->rec.atime = n->atime;
	in->rec.mtime = n->mtime;
	in->rec.ctime = n->ctime;
}

static int set_link(struct inode *in, const struct vol_rnode *n)
{
	if (!S_ISLNK(n->mode))
		return 0;
	char *t = strdup(n->symlink ? n->symlink : "");
	if (!t)
		return -ENOMEM;
	free(in->symlink);
	in->symlink = t;
	in->rec.size = strlen(t);
	return 0;
}

/* Inodes of the store that the namespace no longer has. */
static int gone_inodes(struct silt_vol *v, const struct vol_rnode **sorted, size_t nn, uint64_t **out,
		       size_t *n)
{
	struct meta_iter *it = meta_iter_new(v->meta, CF_INODES, NULL, 0);
	const char *k, *val;
	size_t kl, vl, cap = 0;
	int r;

	*out = NULL;
	*n = 0;
	if (!it)
		return -ENOMEM;
	while ((r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1) {
		if (kl != 8)
			continue;
		uint64_t ino = silt_get_be64((const uint8_t *)k);
		if (ino == SILT_ROOT_INO || find(sorted, nn, ino) >= 0)
			continue;
		if (vl >= sizeof(struct inode_rec) && ((const struct inode_rec *)val)->nlink == 0)
			continue; /* already an orphan */
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			uint64_t *na = realloc(*out, cap * sizeof(*na));
			if (!na) {
				r = -ENOMEM;
				break;
			}
			*out = na;
		}
		(*out)[(*n)++] = ino;
	}
	meta_iter_free(it);
	return r < 0 ? r : 0;
}

/* Attributes of an inode that exists: shrink first, then the record. */
static int update_inode(struct silt_vol *v, struct inode *in, const struct vol_rnode *n, struct meta_batch *b)
{
	int r = 0;

	if ((in->rec.mode & S_IFMT) != (n->mode & S_IFMT))
		return -ESTALE; /* numbers are never reused: the replica went astray */
	if (S_ISREG(n->mode) && n->size < in->rec.size && (r = data_truncate(v, in, n->size)))
		return r;
	pthread_mutex_lock(&in->lock);
	set_rec(in, n);
	r = set_link(in, n);
	if (!r)
		inode_stage(v, b, in);
	pthread_mutex_unlock(&in->lock);
	return r;
}

static int stage_nodes(struct silt_vol *v, const struct vol_rnode *nodes, size_t nn, struct meta_batch *b,
		       uint64_t *max_ino)
{
	for (size_t i = 0; i < nn; i++) {
		const struct vol_rnode *n = &nodes[i];
		struct inode *in;
		int r = inode_get(v, n->ino, &in);
		*max_ino = MAX(*max_ino, n->ino);
		if (r == 0) {
			r = update_inode(v, in, n, b);
			inode_put(v, in);
		} else if (r == -ENOENT) {
			if (!(in = inode_new(v, n->ino)))
				return -ENOMEM;
			set_rec(in, n);
			if (!(r = set_link(in, n)))
				inode_stage(v, b, in);
			inode_discard(in); /* loaded from the store when used */
		}
		if (r)
			return r;
		for (uint32_t x = 0; x < n->nxattr; x++)
			ns_stage_xattr(v, b, n->ino, n->xattr[x].name, n->xattr[x].value, n->xattr[x].len);
	}
	return 0;
}

int vol_replica_namespace(struct silt_vol *v, const struct vol_rnode *nodes, size_t nn,
			  const struct vol_rdent *dents, size_t nd)
{
	const struct vol_rnode **sorted = malloc((nn ? nn : 1) * sizeof(*sorted));
	struct inode **gone_in = NULL;
	uint64_t *gone = NULL, max_ino = 0;
	size_t ngone = 0, got = 0;
	struct meta_batch *b = NULL;
	int r;

	if (!sorted)
		return -ENOMEM;
	if ((r = check_tree(nodes, nn, dents, nd, sorted)))
		goto out;
	pthread_mutex_lock(&v->ns_lock);
	if ((r = gone_inodes(v, sorted, nn, &gone, &ngone)))
		goto unlock;
	if (!(b = meta_batch_new()) || (ngone && !(gone_in = calloc(ngone, sizeof(*gone_in))))) {
		r = -ENOMEM;
		goto unlock;
	}
	uint8_t lo[8], hi[8];
	silt_put_be64(lo, 0);
	memset(hi, 0xff, 8);
	meta_del_range(b, v->meta, CF_DENTRIES, lo, 8, hi, 8);
	meta_del_range(b, v->meta, CF_XATTRS, lo, 8, hi, 8);
	if ((r = stage_nodes(v, nodes, nn, b, &max_ino)))
		goto unlock;
	for (size_t i = 0; i < nd; i++)
		ns_stage_dentry(v, b, dents[i].parent, dents[i].name, dents[i].ino, dents[i].type);
	for (; got < ngone; got++) {
		struct inode *in;
		if ((r = inode_get(v, gone[got], &in)))
			goto unlock;
		pthread_mutex_lock(&in->lock);
		in->rec.nlink = 0;
		inode_stage(v, b, in);
		pthread_mutex_unlock(&in->lock);
		inode_stage_orphan(v, b, in->ino, 1);
		gone_in[got] = in;
	}
	while (v->next_ino <= max_ino)
		vol_alloc_ino(v, b);
	r = vol_commit_ns(v, b, 1, SILT_ROOT_INO);
	if (r)
		for (size_t i = 0; i < got; i++)
			inode_reload(v, gone_in[i]);
unlock:
	pthread_mutex_unlock(&v->ns_lock);
	/* the last reference of a removed inode frees it (after the unlock:
	 * freeing commits on its own) */
	for (size_t i = 0; i < got; i++)
		inode_put(v, gone_in[i]);
out:
	if (r)
		log_err("replica: cannot apply a namespace of %zu inodes and %zu entries: %s", nn, nd,
			strerror(-r));
	meta_batch_free(b);
	free(gone_in);
	free(gone);
	free(sorted);
	return r;
}

int vol_replica_attr(struct silt_vol *v, const struct vol_rnode *n)
{
	struct meta_batch *b = meta_batch_new();
	struct inode *in;
	int r = b ? inode_get(v, n->ino, &in) : -ENOMEM;

	if (r) {
		meta_batch_free(b);
		return r;
	}
	struct vol_rnode keep = *n;
	keep.symlink = in->symlink; /* attributes only: the target stays */
	if (!(r = update_inode(v, in, &keep, b)))
		r = vol_commit(v, b, 0, CHANGE_ATTR, n->ino, 0, 0);
	meta_batch_free(b);
	inode_put(v, in);
	return r;
}
