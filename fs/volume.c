/* Volume life cycle: identity, open, close, and the commit wrappers.
 *
 * Opening a volume is careful before it is fast: every tier folder is probed
 * for its tier.id marker and the metadata store is opened read-only to check
 * identity, format version, chunk size and tier list. Only when all of that
 * agrees is anything opened for writing; a blank set of folders becomes a new
 * volume. Then the chunk map is scanned once to count each tier's chunks and
 * inodes orphaned by a crash (unlinked while open) are freed.
 *
 * A tier folder that does not exist (a removable or network disk not
 * mounted yet) does not stop an existing volume: that tier opens missing
 * and the tier checker (tiers/health.h) takes it when it appears. One
 * that holds another volume's or tier's identity is refused, as is a
 * volume with no folder there at all, or without its metadata. */
#include "fs/inuse.h"
#include "fs/pins.h"
#include "fs/rules.h"
#include "fs/vol_int.h"
#include "tiers/blocksum.h"
#include "tiers/health.h"
#include "utils/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static const char K_UUID[] = "uuid", K_FORMAT[] = "format", K_CHUNK[] = "chunk_size",
		  K_NAME[] = "name", K_NEXT_INO[] = "next_ino", K_NS_SEQ[] = "ns_seq";
#define K_TIER_PREFIX "tier/"

int64_t silt_now_wall(void)
{
	return (int64_t)silt_wall_ns();
}

const char *vol_uuid(const struct silt_vol *v) { return v->uuid; }
struct silt_meta *vol_meta(struct silt_vol *v) { return v->meta; }
struct silt_commit *vol_commit_point(struct silt_vol *v) { return v->commit; }

void vol_set_mountpoint(struct silt_vol *v, const char *mnt)
{
	snprintf(v->mountpoint, sizeof(v->mountpoint), "%s", mnt);
}

void vol_set_cache_mode(struct silt_vol *v, const char *mode)
{
	atomic_store(&v->cache_mode, mode);
}

uint64_t vol_write_count(struct silt_vol *v)
{
	return atomic_load_explicit(&v->writes, memory_order_relaxed);
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

int vol_commit_ns(struct silt_vol *v, struct meta_batch *b, int sync, uint64_t ino)
{
	/* One namespace operation = one batch, numbered (ns_lock serialises
	 * them, so the number on disk only grows). */
	struct change ch = { .kind = CHANGE_NS, .ino = ino };
	fact_put_u64(b, v->meta, K_NS_SEQ, v->ns_seq + 1);
	int r = commit_apply(v->commit, b, sync, &ch, 1);
	if (r == 0)
		v->ns_seq++;
	return r;
}

int vol_commit(struct silt_vol *v, struct meta_batch *b, int sync, enum change_kind kind,
	       uint64_t ino, uint64_t first, uint64_t last)
{
	struct change ch = { .kind = kind, .ino = ino, .first = first, .last = last };
	return commit_apply(v->commit, b, sync, &ch, 1);
}

static int count_tier_chunks(struct silt_vol *v, char *err, size_t errlen)
{
	uint64_t counts[SILT_MAX_TIERS], saved[SILT_MAX_TIERS];
	int bad = -1, r = cmap_count_all(v->cmap, counts, saved, &bad);

	if (r == -EUCLEAN)
		snprintf(err, errlen, "metadata %s: chunk map entry names unknown tier id %d",
			 v->meta_dir, bad);
	else if (r)
		snprintf(err, errlen, "metadata %s: cannot scan the chunk map", v->meta_dir);
	if (r)
		return r;
	for (int i = 0; i < SILT_MAX_TIERS; i++)
		if (v->tier_by_id[i]) {
			tier_saved_add(v->tier_by_id[i], (int64_t)saved[i]);
			tier_account(v->tier_by_id[i], counts[i]);
		}
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

/* Two configured tiers are one directory. An earlier siltfs accepted that
 * and created the volume: both tiers' chunks then sit in that one folder
 * (in disjoint slots of the same files) under the marker of the tier listed
 * first. Say how to get out of it (-o split_tier, fs/split.c). */
static int alias_error(const struct silt_config *cfg, int a, int b, char *err, size_t errlen)
{
	const struct silt_tier_conf *ta = &cfg->tiers[a], *tb = &cfg->tiers[b];
	char u[37], tname[SILT_NAME_MAX];
	int n = snprintf(err, errlen,
			 "%s:%d: [tier %s] path = %s and [tier %s] path = %s (line %d) are the same directory "
			 "(a symlink or a bind mount): every tier needs a folder of its own",
			 cfg->file, tb->path_line, tb->name, tb->path, ta->name, ta->path, ta->path_line);

	if (n < 0 || (size_t)n >= errlen)
		return -EINVAL;
	if (tier_probe(ta->path, u, tname, sizeof(tname)) == 0 &&
	    (!strcmp(tname, ta->name) || !strcmp(tname, tb->name))) {
		const struct silt_tier_conf *keep = strcmp(tname, ta->name) ? tb : ta;
		const struct silt_tier_conf *move = keep == ta ? tb : ta;
		snprintf(err + n, errlen - (size_t)n,
			 ". If volume %s was created like this (an earlier siltfs let it be), the chunks of "
			 "tier %s are kept in that folder, whose tier.id names tier %s, and nothing is lost: "
			 "give tier %s an empty directory of its own (in place of the symlink or bind mount, "
			 "or through its path = line), then mount once with -o split_tier=%s:%s, which moves "
			 "its chunks there (docs/usage.md, \"Tiers that share a folder\"). Nothing was written",
			 u, move->name, keep->name, move->name, move->name, keep->name);
	} else {
		snprintf(err + n, errlen - (size_t)n, "; nothing was written");
	}
	return -EINVAL;
}

/* Tier folders must be distinct and must not nest, compared by device and
 * inode so that symlinks, bind mounts and ".." do not hide it: a folder
 * inside another would show up as a stray file in the outer one (and in
 * its chunk area, as chunk data), and one folder serving two tiers locks
 * the volume (see alias_error). st[] holds each tier folder's stat. */
static int check_tier_folders(const struct silt_config *cfg, const struct stat st[], const int missing[],
			      char *err, size_t errlen)
{
	for (int i = 0; i < cfg->ntiers; i++)
		for (int j = 0; j < i; j++)
			if (!missing[i] && !missing[j] && st[i].st_dev == st[j].st_dev && st[i].st_ino == st[j].st_ino)
				return alias_error(cfg, j, i, err, errlen);
	for (int i = 0; i < cfg->ntiers; i++) {
		const struct silt_tier_conf *t = &cfg->tiers[i];
		for (int j = 0; j < cfg->ntiers && !missing[i]; j++) {
			const struct silt_tier_conf *o = &cfg->tiers[j];
			int r = j == i || missing[j] ? 0 : silt_path_within(t->path, &st[j]);
			if (r < 0) {
				snprintf(err, errlen, "%s:%d: tier %s: %s: %s", cfg->file, t->path_line, t->name,
					 t->path, strerror(-r));
				return r;
			}
			if (r) {
				snprintf(err, errlen,
					 "%s:%d: [tier %s] path = %s is inside the folder of [tier %s] (%s, line %d): "
					 "tier folders must not be nested; nothing was written",
					 cfg->file, t->path_line, t->name, t->path, o->name, o->path, o->path_line);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* A tier folder that does not exist: an error when no other tier says
 * which volume this is (nothing to create a volume on, nothing to serve). */
static int absent_error(const struct silt_config *cfg, int i, int nmissing, char *err, size_t errlen)
{
	const struct silt_tier_conf *t = &cfg->tiers[i];

	snprintf(err, errlen, "%s:%d: tier %s: %s does not exist or is not a directory%s", cfg->file, t->line,
		 t->name, t->path,
		 nmissing == cfg->ntiers ? " (no tier folder of the config is there: nothing to mount)"
					 : " (and no other tier holds a volume yet: a new volume needs every folder)");
	return -ENOENT;
}

/* Look at every tier folder; decide between "create", "open uuid", or refuse.
 * A folder that does not exist (a disk not mounted yet) is missing[i] when
 * another tier names the volume: the volume opens without it. */
static int probe_tiers(const struct silt_config *cfg, char uuid[37], int *create, int missing[],
		       char *err, size_t errlen)
{
	struct stat sts[SILT_MAX_TIERS];
	int marked = -1, unmarked = -1, nmissing = 0, r;

	uuid[0] = '\0';
	for (int i = 0; i < cfg->ntiers; i++) {
		const struct silt_tier_conf *t = &cfg->tiers[i];
		struct stat *st = &sts[i];

		int bad = stat(t->path, st) < 0 ? errno : S_ISDIR(st->st_mode) ? 0 : ENOTDIR;
		nmissing += missing[i] = bad == ENOENT;
		if (bad && bad != ENOENT) {
			snprintf(err, errlen, "%s:%d: tier %s: %s %s", cfg->file, t->line, t->name, t->path,
				 bad == ENOTDIR ? "does not exist or is not a directory" : strerror(bad));
			return -ENOENT;
		}
	}
	if ((r = check_tier_folders(cfg, sts, missing, err, errlen)))
		return r;
	for (int i = 0; i < cfg->ntiers; i++) {
		const struct silt_tier_conf *t = &cfg->tiers[i];
		char u[37], tname[SILT_NAME_MAX];

		if (missing[i])
			continue;
		r = tier_probe(t->path, u, tname, sizeof(tname));
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
	for (int i = 0; i < cfg->ntiers; i++)
		if (missing[i] && marked < 0)
			return absent_error(cfg, i, nmissing, err, errlen);
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
			 "wrong or blank disk mounted there? (adding tiers is not supported; if tier %s "
			 "shared another tier's folder until now, see -o split_tier)",
			 cfg->tiers[unmarked].name, cfg->tiers[unmarked].path, uuid,
			 cfg->tiers[marked].name, cfg->tiers[marked].path, cfg->tiers[unmarked].name);
		return -ENOENT;
	}
	*create = 0;
	return 0;
}

void meta_dir_of(const struct silt_config *cfg, const char *uuid, char *out, size_t len)
{
	if (cfg->meta_dir[0])
		snprintf(out, len, "%s", cfg->meta_dir);
	else
		snprintf(out, len, "%s/%s/meta", cfg->tiers[0].path, uuid);
}

/* metadata = inside a tier's chunk area: every file there is taken for an
 * inode's chunks (a stray one for fsck to reclaim), so refuse it. */
static int check_meta_place(const struct silt_config *cfg, const char *uuid, const char *mdir,
			    char *err, size_t errlen)
{
	for (int i = 0; i < cfg->ntiers; i++) {
		char chunks[4200];
		struct stat st;
		snprintf(chunks, sizeof(chunks), "%s/%s/chunks", cfg->tiers[i].path, uuid);
		if (stat(chunks, &st) == 0 && silt_path_within(mdir, &st) > 0) {
			snprintf(err, errlen,
				 "%s:%d: metadata = %s is inside the chunk folder of tier %s (%s), where every "
				 "file is taken for chunk data: move it out and set metadata = to its new place",
				 cfg->file, cfg->meta_line, mdir, cfg->tiers[i].name, chunks);
			return -EINVAL;
		}
	}
	return 0;
}

/* capacity = more than the tier filesystem holds. Not refused: a thin or
 * growable disk may be sized ahead (docs/usage.md); when the filesystem
 * says ENOSPC the tier counts as full and new chunks go to the next one. */
static void warn_capacity(const struct silt_config *cfg)
{
	for (int i = 0; i < cfg->ntiers; i++) {
		const struct silt_tier_conf *t = &cfg->tiers[i];
		struct statvfs sv;
		char a[32], b[32];
		if (!t->capacity || statvfs(t->path, &sv) < 0 ||
		    t->capacity <= (uint64_t)sv.f_blocks * sv.f_frsize)
			continue;
		log_warn("%s:%d: [tier %s] capacity = %s is more than its filesystem holds (%s in all at %s): "
			 "that filesystem will fill up before the watermarks, and new chunks then go to the next tier",
			 cfg->file, t->capacity_line, t->name, silt_fmt_size(t->capacity, a, sizeof(a)),
			 silt_fmt_size((uint64_t)sv.f_blocks * sv.f_frsize, b, sizeof(b)), t->path);
	}
}

/* Read-only look at an existing volume's facts: nothing is written. Fills
 * the persistent tier id of each configured tier into ids[]. */
int check_facts(const struct silt_config *cfg, const char *uuid, const char *mdir,
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
	if (cfg->meta_dir[0] && dir_is_empty(v->meta_dir) == 0) {
		snprintf(err, errlen, "%s:%d: metadata = %s is not empty: refusing to create the volume's "
			 "metadata store among other files", cfg->file, cfg->meta_line, v->meta_dir);
		return -ENOTEMPTY;
	}
	if ((r = silt_mkdir_p(v->meta_dir, 0700))) {
		snprintf(err, errlen, "metadata %s: cannot create: %s", v->meta_dir, strerror(-r));
		return r;
	}
	if ((r = meta_open(v->meta_dir, META_CREATE, &v->meta, err, errlen)))
		return r;
	if ((r = commit_open(v->meta, &v->commit)))
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
	r = vol_commit(v, b, 1, CHANGE_NS, SILT_ROOT_INO, 0, 0);
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

/* Room kept free for the metadata store on a tier filesystem that holds it:
 * 5% of that filesystem, at least twice what the store itself insists on
 * (META_MIN_FREE), at most 1 GiB. New chunks stop there; metadata goes on. */
static uint64_t meta_reserve(const char *meta_dir)
{
	struct statvfs sv;
	uint64_t r = 2 * (uint64_t)META_MIN_FREE;

	if (statvfs(meta_dir, &sv) == 0)
		r = MAX(r, (uint64_t)sv.f_blocks * sv.f_frsize / 20);
	return MIN(r, 1ull << 30);
}

static void reserve_for_meta(struct silt_vol *v)
{
	uint64_t r = meta_reserve(v->meta_dir);

	for (int i = 0; i < v->ntiers; i++)
		if (tier_same_fs(v->tiers[i], v->meta_dir)) {
			tier_set_reserve(v->tiers[i], r);
			log_debug("tier %s shares its filesystem with the metadata store: keeping %llu MiB free there",
				 tier_name(v->tiers[i]), (unsigned long long)(r >> 20));
		}
}

/* ---- placement: heat and the migration engine ---- */

static int mig_file_get(void *ctx, uint64_t ino, struct cmap_file **cf, void **ref)
{
	struct silt_vol *v = ctx;
	struct inode *in;
	int r = inode_get(v, ino, &in);

	if (r)
		return r;
	if (!S_ISREG(in->rec.mode)) {
		inode_put(v, in);
		return -ENOENT;
	}
	pthread_mutex_lock(&in->lock);
	r = inode_load_chunks(v, in);
	pthread_mutex_unlock(&in->lock);
	if (r) {
		inode_put(v, in);
		return r;
	}
	*cf = in->cf;
	*ref = in;
	return 0;
}

static void mig_file_put(void *ctx, void *ref)
{
	inode_put(ctx, ref);
}

/* Chunks the tiers above the slowest hold under their high watermarks:
 * the size of the placement policy's fast set. */
uint64_t vol_fast_capacity(struct silt_vol *v)
{
	uint64_t n = 0;

	for (int i = 0; i + 1 < v->ntiers; i++) {
		struct tier_stats st;
		tier_get_stats(v->tiers[i], &st);
		n += st.capacity / 100 * st.high_wm / v->layout.chunk_size;
	}
	return n;
}

static int start_placement(struct silt_vol *v, char *err, size_t errlen)
{
	const struct silt_placement_conf *pc = &v->cfg.placement;
	enum policy_kind pk;
	enum migrate_mode mode;
	uint64_t settled;
	int r;

	if (policy_kind_parse(pc->policy, &pk) || !heat_policy_ok(pk)) {
		char names[256];
		heat_policy_names(names, sizeof(names));
		snprintf(err, errlen, "%s:%d: policy = %s: not a placement policy (expected one of %s)",
			 v->cfg.file, pc->policy_line, pc->policy, names);
		return -EINVAL;
	}
	if (migrate_mode_parse(pc->migration, &mode)) {
		snprintf(err, errlen, "%s:%d: migration = %s: must be policy, churn or off", v->cfg.file,
			 pc->migration_line, pc->migration);
		return -EINVAL;
	}
	struct heat_conf hc = { .policy = pk, .capacity = vol_fast_capacity(v), .half_life_s = pc->half_life_s };
	if ((r = heat_start(&hc, &v->heat))) {
		snprintf(err, errlen, "cannot start the access recorder: %s", strerror(-r));
		return r;
	}
	struct migrate_conf mc = {
		.meta = v->meta, .commit = v->commit, .cmap = v->cmap, .alloc = v->alloc,
		.layout = &v->layout, .order = v->tiers, .ntiers = v->ntiers, .by_id = v->tier_by_id,
		.zlevel = v->zlevel, .heat = v->heat, .bounds = v->bounds, .events = v->events,
		.files = { .get = mig_file_get, .put = mig_file_put, .ctx = v },
		.fg_ops = { &v->reads, &v->writes },
		.epoch_ms = pc->epoch_ms, .rate = pc->rate, .busy_rate = pc->busy_rate, .mode = mode,
	};
	if ((r = migrate_recover(&mc, &settled))) {
		snprintf(err, errlen, "metadata %s: cannot settle interrupted chunk moves: %s", v->meta_dir,
			 strerror(-r));
		return r;
	}
	if ((r = rules_open(v, err, errlen)))
		return r;
	if ((r = pins_load(v))) {
		snprintf(err, errlen, "metadata %s: cannot read the pins: %s", v->meta_dir, strerror(-r));
		return r;
	}
	if ((r = migrate_start(&mc, &v->mig))) {
		snprintf(err, errlen, "cannot start the migration engine: %s", strerror(-r));
		return r;
	}
	struct scrub_conf sc = { .meta = v->meta, .io = v->cio, .files = mc.files, .events = v->events };
	if ((r = scrub_open(&sc, &v->scrub))) {
		snprintf(err, errlen, "cannot set up the scrubber: %s", strerror(-r));
		return r;
	}
	return 0;
}

/* The tier checker let go of a tier whose folder left: so do the inodes. */
static void tier_lost(void *ctx, struct silt_tier *t)
{
	inode_table_release_tier(ctx, t);
}

/* A tier that failed or was missing is back. */
static void tier_back(void *ctx, struct silt_tier *t)
{
	struct silt_vol *v = ctx;

	(void)t;
	bounds_unsettle_all(v->bounds); /* pins and rules to it can be honoured again */
}

static int start_health(struct silt_vol *v)
{
	struct health_conf hc = { .tiers = v->tiers, .ntiers = v->ntiers, .interval_ms = SILT_TIER_CHECK_MS,
				  .lost = tier_lost, .back = tier_back, .ctx = v };
	return health_start(&hc, &v->health);
}

/* The engine over an open metadata store and tiers: chunk map, allocator,
 * asynchronous I/O. */
static int start_engine(struct silt_vol *v, char *err, size_t errlen)
{
	int r;

	if ((r = events_open(v->meta, v->commit, &v->events))) {
		snprintf(err, errlen, "metadata %s: cannot read the event log: %s", v->meta_dir, strerror(-r));
		return r;
	}
	for (int i = 0; i < v->ntiers; i++)
		tier_set_events(v->tiers[i], v->events);
	if ((r = silt_aio_start(SILT_VOL_ASYNC_DEPTH, &v->aio))) {
		snprintf(err, errlen, "cannot start the I/O completion thread: %s", strerror(-r));
		return r;
	}
	struct cmap_conf cc = { .meta = v->meta, .aio = v->aio, .layout = &v->layout,
				.tier_by_id = v->tier_by_id };
	if ((r = cmap_open(&cc, &v->cmap)) || (r = alloc_open(v->tiers, v->ntiers, &v->alloc)) ||
	    (r = bounds_open(&v->bounds)) ||
	    (r = async_pool_new(&v->apool)) || (r = ram_open(v->cfg.ram_size, v->layout.chunk_size, &v->ram))) {
		snprintf(err, errlen, "cannot set up the data path: %s", strerror(-r));
		return r;
	}
	v->cio = (struct chunkio){ .cm = v->cmap, .layout = &v->layout, .by_id = v->tier_by_id,
				   .zlevel = v->zlevel };
	return 0;
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
	layout_init(&v->layout, cfg->chunk_size);
	static const char zeros[SUM_BLOCK];
	v->zero_sum = bsum_of(zeros);
	v->ntiers = cfg->ntiers;
	pthread_mutex_init(&v->itab_lock, NULL);
	pthread_mutex_init(&v->ns_lock, NULL);
	v->itab_size = 1024;
	v->itab = calloc(v->itab_size, sizeof(*v->itab));
	if (!v->itab || pthread_key_create(&v->io_key, io_key_free)) {
		free(v->itab);
		free(v);
		return -ENOMEM;
	}

	int missing[SILT_MAX_TIERS] = { 0 };
	r = probe_tiers(cfg, v->uuid, &create, missing, err, errlen);
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
			snprintf(err, errlen, "metadata %s for volume %s is missing (%s)%s", v->meta_dir,
				 v->uuid, strerror(errno),
				 !cfg->meta_dir[0] && missing[0] ? ": it lives in the folder of the first tier, which is "
								  "not there, and the volume cannot mount without it" : "");
			r = -ENOENT;
			goto fail;
		}
		if (cfg->meta_dir[0] && (r = check_meta_place(cfg, v->uuid, v->meta_dir, err, errlen)))
			goto fail;
		char who[SILT_NAME_MAX + 64];
		snprintf(who, sizeof(who), "volume %s (uuid %s)", cfg->name, v->uuid);
		/* mounted already? say so before anything else */
		if ((r = vol_store_wait(v->meta_dir, who, err, errlen)))
			goto fail;
		r = check_facts(cfg, v->uuid, v->meta_dir, ids, err, errlen);
		if (r)
			goto fail;
		r = vol_store_open(v->meta_dir, who, &v->meta, err, errlen);
		if (r)
			goto fail;
		if ((r = commit_open(v->meta, &v->commit)))
			goto fail;
	}
	for (int i = 0; i < cfg->ntiers; i++) {
		r = tier_open(&cfg->tiers[i], ids[i], v->uuid, cfg->chunk_size, missing[i], &v->tiers[i], err,
			      errlen);
		if (r)
			goto fail;
		v->tier_by_id[ids[i]] = v->tiers[i];
		v->rank_of_id[ids[i]] = i;
		v->zlevel[ids[i]] = cfg->tiers[i].zstd_level;
	}
	warn_capacity(cfg);
	if ((r = fact_get_u64(v->meta, K_NEXT_INO, &v->next_ino))) {
		snprintf(err, errlen, "metadata %s: next inode number missing", v->meta_dir);
		goto fail;
	}
	if (fact_get_u64(v->meta, K_NS_SEQ, &v->ns_seq))
		v->ns_seq = 0;
	if ((r = start_engine(v, err, errlen)) || (r = count_tier_chunks(v, err, errlen)))
		goto fail;
	reserve_for_meta(v);
	if ((r = start_placement(v, err, errlen)))
		goto fail;
	if ((r = start_health(v))) {
		snprintf(err, errlen, "cannot start the tier checker: %s", strerror(-r));
		goto fail;
	}
	if ((r = inode_reap_orphans(v))) {
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
	/* the background engines first: they hold inode references */
	health_stop(v->health);
	scrub_close(v->scrub);
	migrate_stop(v->mig);
	/* Whatever the kernel still held is ours to write back now; each inode
	 * is drained of its asynchronous I/O before it goes. */
	if (v->meta && v->cmap) {
		inode_table_drain(v);
		commit_sync(v->commit);
	}
	silt_aio_stop(v->aio);
	async_pool_free(v->apool);
	heat_stop(v->heat);
	ram_close(v->ram);
	alloc_close(v->alloc);
	rules_close(v);
	bounds_close(v->bounds);
	cmap_close(v->cmap);
	events_close(v->events);
	commit_close(v->commit);
	meta_close(v->meta);
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
