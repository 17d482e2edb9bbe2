/* Volume life cycle and the in-memory inode table.
 *
 * Opening a volume is careful before it is fast: every tier folder is probed
 * for its tier.id marker and the metadata store is opened read-only to check
 * identity, format version, chunk size and tier list. Only when all of that
 * agrees is anything opened for writing; a blank set of folders becomes a new
 * volume. Then the chunk map is scanned once to count each tier's chunks and
 * inodes orphaned by a crash (unlinked while open) are freed.
 *
 * Inodes live in a hash table while the kernel or an engine call holds them;
 * each carries its record, its chunk table (once opened) and its tier file
 * descriptors. The last reference out persists dirty times and, for an
 * unlinked inode, frees its data. */
#include "fs/vol_int.h"
#include "utils/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char K_UUID[] = "uuid", K_FORMAT[] = "format", K_CHUNK[] = "chunk_size",
		  K_NAME[] = "name", K_NEXT_INO[] = "next_ino", K_NS_SEQ[] = "ns_seq";
#define K_TIER_PREFIX "tier/"
#define K_ORPHAN_PREFIX "orphan/"

int64_t silt_now_wall(void)
{
	return (int64_t)silt_wall_ns();
}

const char *vol_uuid(const struct silt_vol *v) { return v->uuid; }

void vol_set_mountpoint(struct silt_vol *v, const char *mnt)
{
	snprintf(v->mountpoint, sizeof(v->mountpoint), "%s", mnt);
}

/* ---- facts ---- */

static int fact_get_u64(struct silt_meta *m, const char *key, uint64_t *out)
{
	char *val;
	size_t len;
	int r = meta_get(m, CF_FACTS, key, strlen(key), &val, &len);
	if (r)
		return r;
	if (len != 8) {
		free(val);
		return -EUCLEAN;
	}
	memcpy(out, val, 8);
	free(val);
	return 0;
}

static void fact_put_u64(struct meta_batch *b, struct silt_meta *m, const char *key, uint64_t v)
{
	meta_put(b, m, CF_FACTS, key, strlen(key), &v, 8);
}

int vol_commit_ns(struct silt_vol *v, struct meta_batch *b, int sync)
{
	/* One namespace operation = one batch, numbered. The number is the
	 * replication journal's anchor: a journal record added here shares the
	 * batch and so the atomicity of the change it describes. */
	fact_put_u64(b, v->meta, K_NS_SEQ, v->ns_seq + 1);
	int r = meta_commit(v->meta, b, sync);
	if (r == 0)
		v->ns_seq++;
	return r;
}

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

static void inode_free_mem(struct inode *in)
{
	ct_free(&in->ct);
	free((void *)in->fds);
	free(in->symlink);
	pthread_mutex_destroy(&in->lock);
	pthread_mutex_destroy(&in->fd_lock);
	pthread_rwlock_destroy(&in->io);
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

static struct inode *inode_alloc(uint64_t ino)
{
	struct inode *in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->ino = ino;
	pthread_mutex_init(&in->lock, NULL);
	pthread_mutex_init(&in->fd_lock, NULL);
	pthread_rwlock_init(&in->io, NULL);
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
	fresh = inode_alloc(ino);
	if (!fresh)
		return -ENOMEM;
	r = inode_read(v, ino, fresh);
	if (r) {
		inode_free_mem(fresh);
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
		inode_free_mem(fresh);
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

struct inode *inode_new(uint64_t ino)
{
	return inode_alloc(ino);
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
 * one batch (records, xattrs, chunk map) after unlinking its tier files. */
static int inode_destroy(struct silt_vol *v, struct inode *in)
{
	struct meta_batch *b = meta_batch_new();
	uint8_t k[8], kend[8];
	int r;

	if (!b)
		return -ENOMEM;
	pthread_rwlock_wrlock(&in->io);
	data_quiesce(in);
	pthread_mutex_lock(&in->lock);
	r = data_destroy(v, in, b);
	key_ino(k, in->ino);
	key_ino(kend, in->ino + 1);
	meta_del(b, v->meta, CF_INODES, k, 8);
	meta_del_range(b, v->meta, CF_XATTRS, k, 8, kend, 8);
	inode_stage_orphan(v, b, in->ino, 0);
	if (r == 0)
		r = meta_commit(v->meta, b, 0);
	pthread_mutex_unlock(&in->lock);
	pthread_rwlock_unlock(&in->io);
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
		r = meta_commit(v->meta, b, sync);
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
	data_close_fds(v, in);
	inode_free_mem(in);
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
	st->st_blocks = (blkcnt_t)(in->rec.nchunks * (v->chunk_size / 512));
	st->st_atim.tv_sec = in->rec.atime / 1000000000;
	st->st_atim.tv_nsec = in->rec.atime % 1000000000;
	st->st_mtim.tv_sec = in->rec.mtime / 1000000000;
	st->st_mtim.tv_nsec = in->rec.mtime % 1000000000;
	st->st_ctim.tv_sec = in->rec.ctime / 1000000000;
	st->st_ctim.tv_nsec = in->rec.ctime % 1000000000;
}

/* ---- chunk map loading and accounting ---- */

int inode_load_chunks(struct silt_vol *v, struct inode *in)
{
	uint8_t prefix[8];
	const char *k, *val;
	size_t kl, vl;
	int r;

	if (in->ct_loaded)
		return 0;
	key_ino(prefix, in->ino);
	struct meta_iter *it = meta_iter_new(v->meta, CF_CHUNKS, prefix, 8);
	if (!it)
		return -ENOMEM;
	while ((r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1) {
		if (kl != 16 || vl < 1)
			continue;
		uint64_t chunk = silt_get_be64((const uint8_t *)k + 8);
		uint8_t tid = (uint8_t)val[0];
		if (tid >= SILT_MAX_TIERS || !v->tier_by_id[tid]) {
			log_err("inode %llu chunk %llu: map names unknown tier id %u",
				(unsigned long long)in->ino, (unsigned long long)chunk, tid);
			r = -EUCLEAN;
			break;
		}
		uint8_t flags = vl >= 2 ? (uint8_t)val[1] : 0;
		r = ct_set(&in->ct, chunk, (uint8_t)((tid + 1) | ((flags & CHUNK_PLAIN) ? CT_PLAIN : 0)));
		if (r)
			break;
	}
	meta_iter_free(it);
	if (r < 0) {
		ct_free(&in->ct);
		return r;
	}
	in->ct_loaded = 1;
	return 0;
}

static int count_tier_chunks(struct silt_vol *v, char *err, size_t errlen)
{
	uint64_t counts[SILT_MAX_TIERS] = { 0 };
	const char *k, *val;
	size_t kl, vl;
	int r;
	struct meta_iter *it = meta_iter_new(v->meta, CF_CHUNKS, "", 0);

	if (!it)
		return -ENOMEM;
	while ((r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1) {
		uint8_t tid = vl ? (uint8_t)val[0] : 0xff;
		if (tid >= SILT_MAX_TIERS || !v->tier_by_id[tid]) {
			snprintf(err, errlen, "metadata %s: chunk map entry names unknown tier id %u",
				 v->meta_dir, tid);
			meta_iter_free(it);
			return -EUCLEAN;
		}
		counts[tid]++;
	}
	meta_iter_free(it);
	if (r < 0) {
		snprintf(err, errlen, "metadata %s: cannot scan the chunk map", v->meta_dir);
		return r;
	}
	for (int i = 0; i < SILT_MAX_TIERS; i++)
		if (v->tier_by_id[i])
			tier_account(v->tier_by_id[i], counts[i]);
	return 0;
}

/* Inodes unlinked while open when the daemon last stopped. */
static int reap_orphans(struct silt_vol *v)
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
				meta_commit(v->meta, b, 0);
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

/* ---- opening ---- */

static void make_uuid(char out[37])
{
	uint8_t b[16];
	if (getrandom(b, sizeof(b), 0) != sizeof(b)) {
		uint64_t t = silt_now_ns() ^ (uint64_t)getpid();
		memcpy(b, &t, 8);
		memcpy(b + 8, &t, 8);
	}
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
		 b[12], b[13], b[14], b[15]);
}

static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int empty = 1;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    !strcmp(e->d_name, "lost+found"))
			continue;
		empty = 0;
		break;
	}
	closedir(d);
	return empty;
}

/* Look at every tier folder; decide between "create", "open uuid", or refuse. */
static int probe_tiers(const struct silt_config *cfg, char uuid[37], int *create,
		       char *err, size_t errlen)
{
	int marked = -1, unmarked = -1;

	uuid[0] = '\0';
	for (int i = 0; i < cfg->ntiers; i++) {
		const struct silt_tier_conf *t = &cfg->tiers[i];
		struct stat st;
		char u[37], tname[SILT_NAME_MAX];

		if (stat(t->path, &st) < 0 || !S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "%s:%d: tier %s: %s %s", cfg->file, t->line, t->name, t->path,
				 errno == ENOENT || !S_ISDIR(st.st_mode) ? "does not exist or is not a directory"
									 : strerror(errno));
			return -ENOENT;
		}
		int r = tier_probe(t->path, u, tname, sizeof(tname));
		if (r == -ENOENT) {
			unmarked = i;
			continue;
		}
		if (r) {
			snprintf(err, errlen, "tier %s: %s/tier.id is unreadable or not a siltfs marker (%s)",
				 t->name, t->path, strerror(-r));
			return -EUCLEAN;
		}
		/* the right volume but another tier's folder (paths swapped in
		 * the config, disks mounted at each other's places): reading
		 * through it would return another tier's bytes */
		if (tname[0] && strcmp(tname, t->name)) {
			snprintf(err, errlen,
				 "%s:%d: tier %s: %s holds tier '%s' of volume %s, not tier '%s': "
				 "paths swapped or disks mounted in the wrong places?",
				 cfg->file, t->line, t->name, t->path, tname, u, t->name);
			return -EEXIST;
		}
		if (marked >= 0 && strcmp(u, uuid)) {
			snprintf(err, errlen,
				 "tier %s: %s belongs to volume %s, but tier %s (%s) belongs to volume %s: "
				 "refusing to mix volumes",
				 t->name, t->path, u, cfg->tiers[marked].name, cfg->tiers[marked].path, uuid);
			return -EEXIST;
		}
		memcpy(uuid, u, 37);
		marked = i;
	}
	if (marked < 0) {
		for (int i = 0; i < cfg->ntiers; i++) {
			int e = dir_is_empty(cfg->tiers[i].path);
			if (e <= 0) {
				snprintf(err, errlen,
					 "tier %s: %s has no tier.id marker and is not empty: refusing to "
					 "create a volume over existing files",
					 cfg->tiers[i].name, cfg->tiers[i].path);
				return -ENOTEMPTY;
			}
		}
		*create = 1;
		return 0;
	}
	if (unmarked >= 0) {
		snprintf(err, errlen,
			 "tier %s: %s has no tier.id marker, but volume %s exists on tier %s (%s): "
			 "wrong or blank disk mounted there? (adding tiers is not supported)",
			 cfg->tiers[unmarked].name, cfg->tiers[unmarked].path, uuid,
			 cfg->tiers[marked].name, cfg->tiers[marked].path);
		return -ENOENT;
	}
	*create = 0;
	return 0;
}

static void meta_dir_of(const struct silt_config *cfg, const char *uuid, char *out, size_t len)
{
	if (cfg->meta_dir[0])
		snprintf(out, len, "%s", cfg->meta_dir);
	else
		snprintf(out, len, "%s/%s/meta", cfg->tiers[0].path, uuid);
}

/* Read-only look at an existing volume's facts: nothing is written. Fills
 * the persistent tier id of each configured tier into ids[]. */
static int check_facts(const struct silt_config *cfg, const char *uuid, const char *mdir,
		       int ids[SILT_MAX_TIERS], char *err, size_t errlen)
{
	struct silt_meta *m;
	char *val;
	size_t len;
	uint64_t fmt, cs;
	int r;

	r = meta_open(mdir, META_READONLY, &m, err, errlen);
	if (r)
		return r;
	r = meta_get(m, CF_FACTS, K_UUID, strlen(K_UUID), &val, &len);
	if (r) {
		snprintf(err, errlen, "metadata %s: no volume uuid recorded (%s)", mdir, strerror(-r));
		goto out;
	}
	if (len != 36 || memcmp(val, uuid, 36)) {
		snprintf(err, errlen, "metadata %s belongs to volume %.*s, but the tiers belong to %s",
			 mdir, (int)MIN(len, 36), val, uuid);
		free(val);
		r = -EEXIST;
		goto out;
	}
	free(val);
	if ((r = fact_get_u64(m, K_FORMAT, &fmt))) {
		snprintf(err, errlen, "metadata %s: format version missing or corrupt", mdir);
		goto out;
	}
	if (fmt > SILT_FORMAT_VERSION) {
		snprintf(err, errlen,
			 "metadata %s has format version %llu, newer than this siltfs supports (%d): "
			 "refusing to open it",
			 mdir, (unsigned long long)fmt, SILT_FORMAT_VERSION);
		r = -EPROTONOSUPPORT;
		goto out;
	}
	if ((r = fact_get_u64(m, K_CHUNK, &cs)))
		goto out;
	if (cs != cfg->chunk_size) {
		snprintf(err, errlen,
			 "%s: chunk_size is %u, but volume %s was created with chunk_size %llu",
			 cfg->file, cfg->chunk_size, uuid, (unsigned long long)cs);
		r = -EINVAL;
		goto out;
	}
	/* Map tier names to persistent ids, both ways. */
	char known[SILT_MAX_TIERS][SILT_NAME_MAX] = { { 0 } };
	for (int id = 0; id < SILT_MAX_TIERS; id++) {
		char key[16];
		snprintf(key, sizeof(key), K_TIER_PREFIX "%d", id);
		if (meta_get(m, CF_FACTS, key, strlen(key), &val, &len) == 0) {
			snprintf(known[id], SILT_NAME_MAX, "%.*s", (int)len, val);
			free(val);
		}
	}
	for (int i = 0; i < cfg->ntiers; i++) {
		ids[i] = -1;
		for (int id = 0; id < SILT_MAX_TIERS; id++)
			if (!strcmp(known[id], cfg->tiers[i].name))
				ids[i] = id;
		if (ids[i] < 0) {
			snprintf(err, errlen, "%s:%d: tier %s is not part of volume %s (adding tiers is not supported)",
				 cfg->file, cfg->tiers[i].line, cfg->tiers[i].name, uuid);
			r = -EINVAL;
			goto out;
		}
	}
	for (int id = 0; id < SILT_MAX_TIERS; id++) {
		int found = !known[id][0];
		for (int i = 0; i < cfg->ntiers && !found; i++)
			found = ids[i] == id;
		if (!found) {
			snprintf(err, errlen, "%s: tier %s holds data of volume %s but is missing from the config",
				 cfg->file, known[id], uuid);
			r = -EINVAL;
			goto out;
		}
	}
	r = 0;
out:
	meta_close(m);
	return r;
}

static int create_volume(struct silt_vol *v, char *err, size_t errlen)
{
	const struct silt_config *cfg = &v->cfg;
	struct meta_batch *b;
	int r;

	make_uuid(v->uuid);
	meta_dir_of(cfg, v->uuid, v->meta_dir, sizeof(v->meta_dir));
	if ((r = silt_mkdir_p(v->meta_dir, 0700))) {
		snprintf(err, errlen, "metadata %s: cannot create: %s", v->meta_dir, strerror(-r));
		return r;
	}
	if ((r = meta_open(v->meta_dir, META_CREATE, &v->meta, err, errlen)))
		return r;
	b = meta_batch_new();
	meta_put(b, v->meta, CF_FACTS, K_UUID, strlen(K_UUID), v->uuid, 36);
	meta_put(b, v->meta, CF_FACTS, K_NAME, strlen(K_NAME), cfg->name, strlen(cfg->name));
	fact_put_u64(b, v->meta, K_FORMAT, SILT_FORMAT_VERSION);
	fact_put_u64(b, v->meta, K_CHUNK, cfg->chunk_size);
	fact_put_u64(b, v->meta, K_NEXT_INO, SILT_ROOT_INO + 1);
	for (int i = 0; i < cfg->ntiers; i++) {
		char key[16];
		snprintf(key, sizeof(key), K_TIER_PREFIX "%d", i);
		meta_put(b, v->meta, CF_FACTS, key, strlen(key), cfg->tiers[i].name,
			 strlen(cfg->tiers[i].name));
	}
	struct inode root = { .ino = SILT_ROOT_INO };
	int64_t now = silt_now_wall();
	root.rec = (struct inode_rec){ .mode = S_IFDIR | 0755, .nlink = 2,
				       .atime = now, .mtime = now, .ctime = now };
	inode_stage(v, b, &root);
	r = meta_commit(v->meta, b, 1);
	meta_batch_free(b);
	if (r) {
		snprintf(err, errlen, "metadata %s: cannot write volume facts", v->meta_dir);
		return r;
	}
	/* Markers last, first tier last of all: until it exists, a crash here
	 * leaves folders that the next start refuses rather than misreads. */
	for (int i = cfg->ntiers - 1; i >= 0; i--) {
		if ((r = tier_format(&cfg->tiers[i], v->uuid, cfg->name))) {
			snprintf(err, errlen, "tier %s: cannot initialise %s: %s", cfg->tiers[i].name,
				 cfg->tiers[i].path, strerror(-r));
			return r;
		}
	}
	return 0;
}

static void io_key_free(void *p)
{
	silt_ioctx_free(p);
}

int vol_open(const struct silt_config *cfg, struct silt_vol **out, int *created,
	     char *err, size_t errlen)
{
	struct silt_vol *v = calloc(1, sizeof(*v));
	int ids[SILT_MAX_TIERS];
	int create = 0, r;

	if (!v)
		return -ENOMEM;
	v->cfg = *cfg;
	v->chunk_size = cfg->chunk_size;
	v->chunk_shift = (unsigned)__builtin_ctz(cfg->chunk_size);
	v->chunks_per_seg = SILT_SEG_BYTES >> v->chunk_shift;
	v->ntiers = cfg->ntiers;
	pthread_mutex_init(&v->itab_lock, NULL);
	pthread_mutex_init(&v->ns_lock, NULL);
	pthread_mutex_init(&v->aio_lock, NULL);
	for (int i = 0; i < SILT_STRIPES; i++)
		pthread_mutex_init(&v->stripes[i], NULL);
	v->itab_size = 1024;
	v->itab = calloc(v->itab_size, sizeof(*v->itab));
	if (!v->itab || pthread_key_create(&v->io_key, io_key_free)) {
		free(v->itab);
		free(v);
		return -ENOMEM;
	}

	r = probe_tiers(cfg, v->uuid, &create, err, errlen);
	if (r)
		goto fail;
	if (create) {
		r = create_volume(v, err, errlen);
		if (r)
			goto fail;
		for (int i = 0; i < cfg->ntiers; i++)
			ids[i] = i;
	} else {
		meta_dir_of(cfg, v->uuid, v->meta_dir, sizeof(v->meta_dir));
		struct stat st;
		if (stat(v->meta_dir, &st) < 0) {
			snprintf(err, errlen, "metadata %s for volume %s is missing (%s)", v->meta_dir,
				 v->uuid, strerror(errno));
			r = -ENOENT;
			goto fail;
		}
		r = check_facts(cfg, v->uuid, v->meta_dir, ids, err, errlen);
		if (r)
			goto fail;
		r = meta_open(v->meta_dir, META_OPEN, &v->meta, err, errlen);
		if (r)
			goto fail;
	}
	for (int i = 0; i < cfg->ntiers; i++) {
		r = tier_open(&cfg->tiers[i], ids[i], v->uuid, v->chunk_size, &v->tiers[i], err, errlen);
		if (r)
			goto fail;
		v->tier_by_id[ids[i]] = v->tiers[i];
		v->zlevel[ids[i]] = cfg->tiers[i].zstd_level;
	}
	if ((r = fact_get_u64(v->meta, K_NEXT_INO, &v->next_ino))) {
		snprintf(err, errlen, "metadata %s: next inode number missing", v->meta_dir);
		goto fail;
	}
	if (fact_get_u64(v->meta, K_NS_SEQ, &v->ns_seq))
		v->ns_seq = 0;
	if ((r = count_tier_chunks(v, err, errlen)))
		goto fail;
	if ((r = silt_aio_start(SILT_VOL_ASYNC_DEPTH, &v->aio))) {
		snprintf(err, errlen, "cannot start the I/O completion thread: %s", strerror(-r));
		goto fail;
	}
	if ((r = reap_orphans(v))) {
		snprintf(err, errlen, "metadata %s: cannot free orphaned inodes: %s", v->meta_dir,
			 strerror(-r));
		goto fail;
	}
	*created = create;
	*out = v;
	return 0;
fail:
	vol_close(v);
	return r;
}

void vol_close(struct silt_vol *v)
{
	if (!v)
		return;
	silt_aio_stop(v->aio); /* waits for every asynchronous I/O */
	data_aio_pool_free(v);
	/* Whatever the kernel still held is ours to write back now. */
	if (v->meta) {
		for (size_t i = 0; i < v->itab_size; i++) {
			for (struct inode *in = v->itab[i], *next; in; in = next) {
				next = in->hnext;
				if (in->rec.nlink == 0)
					inode_destroy(v, in);
				else
					inode_flush(v, in, 0);
				data_close_fds(v, in);
				inode_free_mem(in);
			}
			v->itab[i] = NULL;
		}
		meta_sync(v->meta);
		meta_close(v->meta);
	}
	for (int i = 0; i < v->ntiers; i++)
		tier_close(v->tiers[i]);
	void *ctx = pthread_getspecific(v->io_key);
	if (ctx) {
		silt_ioctx_free(ctx);
		pthread_setspecific(v->io_key, NULL);
	}
	pthread_key_delete(v->io_key);
	free(v->itab);
	free(v);
}

/* Allocate the next inode number into the batch. Caller holds ns_lock. */
uint64_t vol_alloc_ino(struct silt_vol *v, struct meta_batch *b)
{
	uint64_t ino = v->next_ino++;
	fact_put_u64(b, v->meta, K_NEXT_INO, v->next_ino);
	return ino;
}
