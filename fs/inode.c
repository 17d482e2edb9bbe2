/* The in-memory inode table.
 *
 * Inodes live in a hash table while the kernel or an engine call holds them;
 * each carries its record and, once opened, its chunk map (tiers/chunkmap.h:
 * where its chunks are, its tier files, its pins). The last reference out
 * persists dirty times and, for an unlinked inode, frees its data. */
#include "fs/pins.h"
#include "fs/vol_int.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define K_ORPHAN_PREFIX "orphan/"

/* ---- inode table ---- */

static size_t ihash(const struct silt_vol *v, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (v->itab_size - 1);
}

static void itab_grow(struct silt_vol *v)
{
	size_t nsize = v->itab_size * 2;
	struct inode **n = calloc(nsize, sizeof(*n));
	if (!n)
		return; /* chains get longer; still correct */
	size_t old = v->itab_size;
	struct inode **o = v->itab;
	v->itab = n;
	v->itab_size = nsize;
	for (size_t i = 0; i < old; i++) {
		for (struct inode *in = o[i], *next; in; in = next) {
			next = in->hnext;
			size_t h = ihash(v, in->ino);
			in->hnext = n[h];
			n[h] = in;
		}
	}
	free(o);
}

/* The caller makes sure nothing uses the inode (or its tier files) any more. */
static void inode_free_mem(struct silt_vol *v, struct inode *in)
{
	cmap_file_free(v->cmap, in->cf);
	free(in->symlink);
	pthread_mutex_destroy(&in->lock);
	free(in);
}

void inode_discard(struct inode *in)
{
	/* never in the table, never did I/O: nothing else can hold it */
	cmap_file_free(NULL, in->cf);
	free(in->symlink);
	pthread_mutex_destroy(&in->lock);
	free(in);
}

static int inode_read(struct silt_vol *v, uint64_t ino, struct inode *in)
{
	uint8_t k[8];
	char *val;
	size_t len;
	int r;

	key_ino(k, ino);
	r = meta_get(v->meta, CF_INODES, k, 8, &val, &len);
	if (r)
		return r;
	if (len < sizeof(struct inode_rec) || ((struct inode_rec *)val)->version != INODE_REC_V1) {
		log_err("inode %llu: corrupt record (%zu bytes)", (unsigned long long)ino, len);
		free(val);
		return -EUCLEAN;
	}
	memcpy(&in->rec, val, sizeof(in->rec));
	if (S_ISLNK(in->rec.mode)) {
		size_t tl = len - sizeof(in->rec);
		in->symlink = malloc(tl + 1);
		if (!in->symlink) {
			free(val);
			return -ENOMEM;
		}
		memcpy(in->symlink, val + sizeof(in->rec), tl);
		in->symlink[tl] = '\0';
	}
	free(val);
	return 0;
}

/* After a failed commit, memory may be ahead of the store: re-read. */
int inode_reload(struct silt_vol *v, struct inode *in)
{
	struct inode tmp = { 0 };
	int r = inode_read(v, in->ino, &tmp);

	if (r)
		return r;
	pthread_mutex_lock(&in->lock);
	in->rec = tmp.rec;
	in->dirty = 0;
	pthread_mutex_unlock(&in->lock);
	free(tmp.symlink);
	return 0;
}

static struct inode *inode_alloc(struct silt_vol *v, uint64_t ino)
{
	struct inode *in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	if (!(in->cf = cmap_file_new(v->cmap, ino))) {
		free(in);
		return NULL;
	}
	in->ino = ino;
	pthread_mutex_init(&in->lock, NULL);
	return in;
}

int inode_get(struct silt_vol *v, uint64_t ino, struct inode **out)
{
	struct inode *in, *fresh;
	int r;

	pthread_mutex_lock(&v->itab_lock);
	for (in = v->itab[ihash(v, ino)]; in; in = in->hnext) {
		if (in->ino == ino) {
			in->refs++;
			pthread_mutex_unlock(&v->itab_lock);
			*out = in;
			return 0;
		}
	}
	pthread_mutex_unlock(&v->itab_lock);

	/* Load outside the table lock; another thread may race us, in which
	 * case its copy wins and ours is dropped. */
	fresh = inode_alloc(v, ino);
	if (!fresh)
		return -ENOMEM;
	r = inode_read(v, ino, fresh);
	if (r) {
		inode_discard(fresh);
		return r;
	}
	pthread_mutex_lock(&v->itab_lock);
	for (in = v->itab[ihash(v, ino)]; in; in = in->hnext)
		if (in->ino == ino)
			break;
	if (!in) {
		in = fresh;
		fresh = NULL;
		size_t h = ihash(v, ino);
		in->hnext = v->itab[h];
		v->itab[h] = in;
		if (++v->icount > v->itab_size)
			itab_grow(v);
	}
	in->refs++;
	pthread_mutex_unlock(&v->itab_lock);
	if (fresh)
		inode_discard(fresh);
	*out = in;
	return 0;
}

/* Insert a just-created inode (not yet visible to anyone) with one ref. */
int inode_insert_new(struct silt_vol *v, struct inode *in)
{
	pthread_mutex_lock(&v->itab_lock);
	size_t h = ihash(v, in->ino);
	in->hnext = v->itab[h];
	v->itab[h] = in;
	in->refs = 1;
	if (++v->icount > v->itab_size)
		itab_grow(v);
	pthread_mutex_unlock(&v->itab_lock);
	return 0;
}

struct inode *inode_new(struct silt_vol *v, uint64_t ino)
{
	struct inode *in = inode_alloc(v, ino);
	if (in)
		cmap_file_set_empty(in->cf); /* a new inode has no chunks to load */
	return in;
}

void inode_stage(struct silt_vol *v, struct meta_batch *b, struct inode *in)
{
	uint8_t k[8];
	size_t tl = in->symlink ? strlen(in->symlink) : 0;
	char buf[sizeof(struct inode_rec) + 4096];

	key_ino(k, in->ino);
	in->rec.version = INODE_REC_V1;
	memcpy(buf, &in->rec, sizeof(in->rec));
	if (tl)
		memcpy(buf + sizeof(in->rec), in->symlink, MIN(tl, 4096));
	meta_put(b, v->meta, CF_INODES, k, 8, buf, sizeof(in->rec) + MIN(tl, 4096));
	in->dirty = 0;
}

static void orphan_key(uint8_t k[sizeof(K_ORPHAN_PREFIX) - 1 + 8], uint64_t ino)
{
	memcpy(k, K_ORPHAN_PREFIX, sizeof(K_ORPHAN_PREFIX) - 1);
	silt_put_be64(k + sizeof(K_ORPHAN_PREFIX) - 1, ino);
}

void inode_stage_orphan(struct silt_vol *v, struct meta_batch *b, uint64_t ino, int add)
{
	uint8_t k[sizeof(K_ORPHAN_PREFIX) - 1 + 8];
	orphan_key(k, ino);
	if (add)
		meta_put(b, v->meta, CF_FACTS, k, sizeof(k), "", 0);
	else
		meta_del(b, v->meta, CF_FACTS, k, sizeof(k));
}

/* The inode is gone from the namespace and from the kernel: free it all in
 * one batch (records, xattrs, chunk map), then its tier files. The batch is
 * synced first when there are chunks to lose: the files' removal may reach
 * the disk before an unsynced batch does, and a power cut in between would
 * bring the inode back (its unlink was not durable, as ext4 may lose one)
 * mapped onto missing files. The sync also covers the unlink or rename
 * that dropped the last link, which went to the WAL before it. */
static int inode_destroy(struct silt_vol *v, struct inode *in)
{
	struct meta_batch *b = meta_batch_new();
	struct cmap_txn t;
	uint8_t k[8], kend[8];
	int r, sync;

	if (!b)
		return -ENOMEM;
	cmap_file_quiesce(v->cmap, in->cf);
	pthread_mutex_lock(&in->lock);
	cmap_txn_begin(v->cmap, &t, in->cf, b);
	sync = inode_load_chunks(v, in) || cmap_last_mapped(in->cf) != UINT64_MAX;
	r = data_destroy(v, in, &t);
	key_ino(k, in->ino);
	key_ino(kend, in->ino + 1);
	meta_del(b, v->meta, CF_INODES, k, 8);
	meta_del_range(b, v->meta, CF_XATTRS, k, 8, kend, 8);
	inode_stage_orphan(v, b, in->ino, 0);
	pins_stage_forget(v, b, in->ino);
	if (!r && !(r = vol_commit(v, b, sync, CHANGE_NS, in->ino, 0, 0))) {
		pins_forget_done(v, in->ino);
		r = cmap_txn_publish(&t); /* then the tier files go */
	}
	cmap_txn_end(&t);
	pthread_mutex_unlock(&in->lock);
	cmap_file_resume(v->cmap, in->cf);
	meta_batch_free(b);
	if (r)
		log_err("inode %llu: freeing its data failed: %s (fsck will reclaim it)",
			(unsigned long long)in->ino, strerror(-r));
	return r;
}

static int inode_flush(struct silt_vol *v, struct inode *in, int sync)
{
	struct meta_batch *b;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	if (in->dirty && in->rec.nlink > 0) {
		b = meta_batch_new();
		if (!b) {
			pthread_mutex_unlock(&in->lock);
			return -ENOMEM;
		}
		inode_stage(v, b, in);
		r = vol_commit(v, b, sync, CHANGE_ATTR, in->ino, 0, 0);
		meta_batch_free(b);
	}
	pthread_mutex_unlock(&in->lock);
	return r;
}

int inode_persist(struct silt_vol *v, struct inode *in, int sync)
{
	return inode_flush(v, in, sync);
}

static int evictable(const struct inode *in)
{
	return in->nlookup == 0 && in->nopen == 0;
}

void inode_put(struct silt_vol *v, struct inode *in)
{
	pthread_mutex_lock(&v->itab_lock);
	if (in->refs > 1 || !evictable(in)) {
		in->refs--;
		pthread_mutex_unlock(&v->itab_lock);
		return;
	}
	pthread_mutex_unlock(&v->itab_lock);

	/* Last reference: write back while still findable, so that a racing
	 * lookup sees our state, then unhook if nobody came back meanwhile. */
	if (in->rec.nlink == 0)
		inode_destroy(v, in);
	else
		inode_flush(v, in, 0);

	pthread_mutex_lock(&v->itab_lock);
	if (in->refs > 1 || !evictable(in)) {
		in->refs--;
		pthread_mutex_unlock(&v->itab_lock);
		return;
	}
	struct inode **pp = &v->itab[ihash(v, in->ino)];
	while (*pp != in)
		pp = &(*pp)->hnext;
	*pp = in->hnext;
	v->icount--;
	pthread_mutex_unlock(&v->itab_lock);
	cmap_file_quiesce(v->cmap, in->cf); /* no handle is open: at once */
	inode_free_mem(v, in);
}

void inode_ref_kernel(struct silt_vol *v, struct inode *in, uint64_t n)
{
	pthread_mutex_lock(&v->itab_lock);
	in->nlookup += n;
	pthread_mutex_unlock(&v->itab_lock);
}

void inode_ref_open(struct silt_vol *v, struct inode *in, int delta)
{
	pthread_mutex_lock(&v->itab_lock);
	in->nopen += delta;
	pthread_mutex_unlock(&v->itab_lock);
}

void inode_attach_file(struct silt_vol *v, struct inode *in, struct silt_file *f, int flags)
{
	inode_ref_open(v, in, 1);
	f->ino = in;
	f->flags = flags;
	f->prev = NULL;
	pthread_mutex_lock(&in->lock);
	f->next = in->files;
	if (f->next)
		f->next->prev = f;
	in->files = f;
	pthread_mutex_unlock(&in->lock);
}

void inode_detach_file(struct silt_vol *v, struct silt_file *f)
{
	struct inode *in = f->ino;

	pthread_mutex_lock(&in->lock);
	if (f->prev)
		f->prev->next = f->next;
	else
		in->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	pthread_mutex_unlock(&in->lock);
	inode_ref_open(v, in, -1);
}

void vol_forget(struct silt_vol *v, uint64_t ino, uint64_t n)
{
	struct inode *in;

	pthread_mutex_lock(&v->itab_lock);
	for (in = v->itab[ihash(v, ino)]; in; in = in->hnext)
		if (in->ino == ino)
			break;
	if (!in) {
		pthread_mutex_unlock(&v->itab_lock);
		return;
	}
	in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
	in->refs++;
	pthread_mutex_unlock(&v->itab_lock);
	inode_put(v, in);
}

void inode_to_stat(struct silt_vol *v, const struct inode *in, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = in->ino;
	st->st_mode = in->rec.mode;
	st->st_nlink = in->rec.nlink;
	st->st_uid = in->rec.uid;
	st->st_gid = in->rec.gid;
	st->st_rdev = in->rec.rdev;
	st->st_size = (off_t)in->rec.size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)(in->rec.nchunks * (v->layout.chunk_size / 512));
	st->st_atim.tv_sec = in->rec.atime / 1000000000;
	st->st_atim.tv_nsec = in->rec.atime % 1000000000;
	st->st_mtim.tv_sec = in->rec.mtime / 1000000000;
	st->st_mtim.tv_nsec = in->rec.mtime % 1000000000;
	st->st_ctim.tv_sec = in->rec.ctime / 1000000000;
	st->st_ctim.tv_nsec = in->rec.ctime % 1000000000;
}

int inode_load_chunks(struct silt_vol *v, struct inode *in)
{
	return cmap_file_load(v->cmap, in->cf);
}

void inode_table_drain(struct silt_vol *v)
{
	for (size_t i = 0; i < v->itab_size; i++) {
		for (struct inode *in = v->itab[i], *next; in; in = next) {
			next = in->hnext;
			if (in->rec.nlink == 0)
				inode_destroy(v, in);
			else
				inode_flush(v, in, 0);
			cmap_file_quiesce(v->cmap, in->cf); /* nothing in flight any more */
			while (in->files) { /* handles the kernel never released */
				struct silt_file *f = in->files;
				in->files = f->next;
				free(f);
			}
			inode_free_mem(v, in);
		}
		v->itab[i] = NULL;
	}
	v->icount = 0;
}

void inode_table_release_tier(struct silt_vol *v, struct silt_tier *t)
{
	pthread_mutex_lock(&v->itab_lock);
	for (size_t i = 0; i < v->itab_size; i++)
		for (struct inode *in = v->itab[i]; in; in = in->hnext)
			tfiles_release(cmap_files(in->cf), t);
	pthread_mutex_unlock(&v->itab_lock);
}

/* ---- orphans ---- */

int inode_reap_orphans(struct silt_vol *v)
{
	uint64_t inos[256];
	int n, r;

	do {
		const char *k, *val;
		size_t kl, vl;
		struct meta_iter *it = meta_iter_new(v->meta, CF_FACTS, K_ORPHAN_PREFIX,
						     sizeof(K_ORPHAN_PREFIX) - 1);
		if (!it)
			return -ENOMEM;
		n = 0;
		while (n < 256 && (r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1)
			if (kl == sizeof(K_ORPHAN_PREFIX) - 1 + 8)
				inos[n++] = silt_get_be64((const uint8_t *)k + kl - 8);
		meta_iter_free(it);
		for (int i = 0; i < n; i++) {
			struct inode *in;
			r = inode_get(v, inos[i], &in);
			if (r == -ENOENT) { /* record already gone: drop the marker */
				struct meta_batch *b = meta_batch_new();
				inode_stage_orphan(v, b, inos[i], 0);
				vol_commit(v, b, 0, CHANGE_NS, inos[i], 0, 0);
				meta_batch_free(b);
				continue;
			}
			if (r)
				return r;
			log_info("freeing inode %llu, unlinked while open before the last stop",
				 (unsigned long long)inos[i]);
			in->rec.nlink = 0;
			inode_put(v, in);
		}
	} while (n == 256);
	return 0;
}
