/* Recovery of two tiers that shared one folder: -o split_tier=TIER:FROM.
 *
 * An earlier siltfs accepted two tier paths that were one directory (a
 * symlink, a bind mount) and created the volume. Both tiers' chunks then
 * live in that folder: chunk k of inode i sits in slot k of chunks/<i>
 * whichever of the two the chunk map names, so their slots never collide;
 * the folder's tier.id names the tier listed first. Once the admin has
 * given TIER an empty directory of its own, this copies the slots that the
 * chunk map gives to TIER out of FROM's folder into it. The chunk map is
 * not touched: it already says TIER.
 *
 * Crash safety, marker last (as at volume creation):
 *   1. copy: TIER's folder has no marker yet, so a plain mount refuses it;
 *      FROM's files are only read. The copies are made durable. After a
 *      crash, running it again copies again.
 *   2. TIER's marker is written: from here on reads find the copies.
 *   3. clean-up: TIER's slots are punched out of FROM's files and, if
 *      FROM's folder carried TIER's marker, it gets FROM's. A crash here
 *      leaves slots that nothing reads (and, maybe, two folders that say
 *      TIER, which a plain mount refuses); running again finishes it.
 * It holds the metadata store's lock throughout, so no daemon can mount
 * the volume meanwhile. */
#include "fs/inuse.h"
#include "fs/vol_int.h"
#include "tiers/layout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct split {
	const struct silt_config *cfg;
	const struct silt_tier_conf *to, *from; /* TIER (moves out), FROM (keeps the folder) */
	char uuid[37], from_marks[SILT_NAME_MAX];
	int to_id;
	struct silt_meta *m;
	struct silt_tier *tt, *ft;
	struct layout l;
	char *buf;
	uint64_t moved, bytes, nodata; /* chunks with data, bytes copied, chunks without */
};

enum pass { SURVEY, COPY, PUNCH };

static int find_tier(const struct silt_config *cfg, const char *name)
{
	for (int i = 0; i < cfg->ntiers; i++)
		if (!strcmp(cfg->tiers[i].name, name))
			return i;
	return -1;
}

/* TIER's folder: empty, or what an interrupted run left (only <uuid>):
 * 0; already carrying TIER's marker: 1; anything else: refuse. */
static int to_folder_state(struct split *s, char *err, size_t errlen)
{
	char u[37], tname[SILT_NAME_MAX];
	int r = tier_probe(s->to->path, u, tname, sizeof(tname));
	DIR *d;
	struct dirent *e;

	if (r == 0 && !strcmp(u, s->uuid) && !strcmp(tname, s->to->name))
		return 1;
	if (r != -ENOENT) {
		snprintf(err, errlen, "split_tier: %s already carries a tier.id (%s): it must be an empty "
			 "directory", s->to->path, r ? strerror(-r) : tname);
		return -EEXIST;
	}
	if (!(d = opendir(s->to->path)))
		return -errno;
	while ((e = readdir(d)) && r == -ENOENT)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "lost+found") &&
		    strcmp(e->d_name, s->uuid))
			r = -ENOTEMPTY;
	closedir(d);
	if (r == -ENOTEMPTY) {
		snprintf(err, errlen, "split_tier: %s (the new folder of tier %s) is not empty: refusing to "
			 "move chunks among other files", s->to->path, s->to->name);
		return r;
	}
	return 0;
}

/* Everything that can be checked before a byte moves. */
static int check_split(struct split *s, char *err, size_t errlen)
{
	const struct silt_config *cfg = s->cfg;
	struct stat ts, fs;
	char tname[SILT_NAME_MAX];
	int r;

	if (stat(s->to->path, &ts) < 0 || stat(s->from->path, &fs) < 0) {
		snprintf(err, errlen, "split_tier: %s or %s: %s", s->to->path, s->from->path, strerror(errno));
		return -ENOENT;
	}
	if ((ts.st_dev == fs.st_dev && ts.st_ino == fs.st_ino) || silt_path_within(s->to->path, &fs) > 0 ||
	    silt_path_within(s->from->path, &ts) > 0) {
		snprintf(err, errlen, "split_tier: %s (tier %s) is still the folder of tier %s (%s) or inside "
			 "or around it: give tier %s an empty directory of its own first", s->to->path,
			 s->to->name, s->from->name, s->from->path, s->to->name);
		return -EINVAL;
	}
	r = tier_probe(s->from->path, s->uuid, tname, sizeof(tname));
	if (r || (strcmp(tname, s->to->name) && strcmp(tname, s->from->name))) {
		snprintf(err, errlen, "split_tier: %s (tier %s) does not carry the marker of tier %s or %s: "
			 "it is not the folder the two tiers shared", s->from->path, s->from->name,
			 s->from->name, s->to->name);
		return -EINVAL;
	}
	snprintf(s->from_marks, sizeof(s->from_marks), "%s", tname);
	if (s->to == &cfg->tiers[0] && !cfg->meta_dir[0]) {
		snprintf(err, errlen, "split_tier: tier %s is the first tier and so holds the metadata "
			 "(%s/%s/meta): set metadata = %s/%s/meta in [volume] first, or split the other way "
			 "(-o split_tier=%s:%s)", s->to->name, s->from->path, s->uuid, s->from->path, s->uuid,
			 s->from->name, s->to->name);
		return -EINVAL;
	}
	return 0;
}

static int open_buffered(struct silt_tier *t, uint64_t ino, unsigned seg, int create)
{
	/* tier files are O_DIRECT; here data extents of any alignment are
	 * copied, so go through the page cache (made durable by fdatasync) */
	int fd = tier_open_file(t, ino, seg, create);
	if (fd >= 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* Copy [at, end) of src to dst. */
static int copy_range(struct split *s, int src, int dst, off_t at, off_t end)
{
	while (at < end) {
		ssize_t n = pread(src, s->buf, (size_t)MIN(end - at, (off_t)s->cfg->chunk_size), at);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file is shorter than its own extent map */
		ssize_t w = pwrite(dst, s->buf, (size_t)n, at);
		if (w < 0)
			return -errno;
		if (w != n)
			return -EIO;
		at += n;
		s->bytes += (uint64_t)n;
	}
	return 0;
}

/* One slot of TIER in FROM's file src: see whether it holds data, copy its
 * data extents to dst (holes stay holes), or punch it. */
static int do_slot(struct split *s, enum pass p, int src, int dst, off_t off)
{
	off_t end = off + (off_t)s->cfg->chunk_size, pos = off;
	int data = 0, r;

	if (p == PUNCH)
		return fallocate(src, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, end - off) < 0 ? -errno : 0;
	while (pos < end) {
		off_t d = lseek(src, pos, SEEK_DATA);
		if (d < 0 && errno == ENXIO) /* no data after pos */
			break;
		if (d < 0)
			return -errno;
		if (d >= end)
			break;
		off_t h = lseek(src, d, SEEK_HOLE);
		if (h < 0)
			return -errno;
		h = MIN(h, end);
		data = 1;
		if (p == COPY && (r = copy_range(s, src, dst, d, h)))
			return r;
		pos = h;
	}
	if (data)
		s->moved++;
	else
		s->nodata++;
	return 0;
}

static int close_files(int *src, int *dst)
{
	int r = 0;
	if (*dst >= 0 && fdatasync(*dst) < 0)
		r = -errno;
	if (*src >= 0 && fdatasync(*src) < 0 && !r)
		r = -errno;
	if (*dst >= 0)
		close(*dst);
	if (*src >= 0)
		close(*src);
	*src = *dst = -1;
	return r;
}

/* Walk the chunk map in key order (inode, chunk), TIER's chunks only. */
static int run_pass(struct split *s, enum pass p)
{
	struct meta_iter *it = meta_iter_new(s->m, CF_CHUNKS, "", 0);
	uint64_t cur_ino = UINT64_MAX;
	unsigned cur_seg = 0;
	int src = -1, dst = -1, r;
	const char *k, *val;
	size_t kl, vl;

	if (!it)
		return -ENOMEM;
	s->moved = s->bytes = s->nodata = 0;
	while ((r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1) {
		if (kl != 16 || vl < 1 || (uint8_t)val[0] != s->to_id) /* chunk_rec.tier first */
			continue;
		uint64_t ino = silt_get_be64((const uint8_t *)k), chunk = silt_get_be64((const uint8_t *)k + 8);
		unsigned seg = layout_seg(&s->l, chunk);
		if (ino != cur_ino || seg != cur_seg) {
			if ((r = close_files(&src, &dst)))
				break;
			cur_ino = ino;
			cur_seg = seg;
			src = open_buffered(s->ft, ino, seg, 0);
			if (src == -ENOENT)
				src = -1;
			else if (src < 0 && (r = src))
				break;
			if (p == COPY && src >= 0 && (dst = open_buffered(s->tt, ino, seg, 1)) < 0 && (r = dst))
				break;
		}
		if (src < 0)
			s->nodata++;
		else if ((r = do_slot(s, p, src, dst, (off_t)layout_slot(&s->l, chunk))))
			break;
	}
	meta_iter_free(it);
	int rc = close_files(&src, &dst);
	return r < 0 ? r : rc;
}

/* Before anything is written (the store opened read-only): are TIER's
 * chunks really in FROM's folder? If none of them has data there, FROM is
 * the wrong folder, and copying its holes would lose TIER's data. */
static int survey(struct split *s, const char *mdir, char *err, size_t errlen)
{
	int r = meta_open(mdir, META_READONLY, &s->m, err, errlen);

	if (r == 0)
		r = run_pass(s, SURVEY);
	meta_close(s->m);
	s->m = NULL;
	if (r == 0 && s->nodata && !s->moved) {
		snprintf(err, errlen, "split_tier: none of the %llu chunks of tier %s has data in %s: is "
			 "tier %s the one whose folder tier %s shared? Nothing was written",
			 (unsigned long long)s->nodata, s->to->name, s->from->path, s->from->name, s->to->name);
		r = -ENOENT;
	}
	return r;
}

static int split_run(struct split *s, int committed, char *err, size_t errlen)
{
	char chunks[4200];
	int r;

	snprintf(chunks, sizeof(chunks), "%s/%s/chunks", s->to->path, s->uuid);
	if (!committed && (r = silt_mkdir_p(chunks, 0700)))
		return r;
	if ((r = tier_open(s->to, s->to_id, s->uuid, s->cfg->chunk_size, 0, &s->tt, err, errlen)))
		return r;
	if (!committed && ((r = run_pass(s, COPY)) || (r = silt_fsync_dir(chunks)) ||
			   (r = tier_format(s->to, s->uuid, s->cfg->name))))
		return r;
	uint64_t moved = s->moved, bytes = s->bytes, nodata = s->nodata;
	if ((r = run_pass(s, PUNCH)))
		return r;
	if (!strcmp(s->from_marks, s->to->name) && (r = tier_format(s->from, s->uuid, s->cfg->name)))
		return r;
	s->moved = moved, s->bytes = bytes, s->nodata = nodata;
	return 0;
}

int vol_split_tier(const struct silt_config *cfg, const char *tier, const char *from,
		   char *report, size_t rlen, char *err, size_t errlen)
{
	struct split s = { .cfg = cfg };
	int it = find_tier(cfg, tier), ifrom = find_tier(cfg, from), ids[SILT_MAX_TIERS];
	char mdir[4200], who[SILT_NAME_MAX + 64], size[32];
	int committed, r;

	err[0] = '\0';
	layout_init(&s.l, cfg->chunk_size);
	if (it < 0 || ifrom < 0 || it == ifrom) {
		snprintf(err, errlen, "split_tier=%s:%s: needs two different tiers of %s", tier, from, cfg->file);
		return -EINVAL;
	}
	s.to = &cfg->tiers[it];
	s.from = &cfg->tiers[ifrom];
	if ((r = check_split(&s, err, errlen)))
		return r;
	if ((committed = to_folder_state(&s, err, errlen)) < 0)
		return committed;
	meta_dir_of(cfg, s.uuid, mdir, sizeof(mdir));
	snprintf(who, sizeof(who), "volume %s (uuid %s)", cfg->name, s.uuid);
	if ((r = vol_store_wait(mdir, who, err, errlen)) || (r = check_facts(cfg, s.uuid, mdir, ids, err, errlen)))
		return r;
	s.to_id = ids[it];
	s.buf = malloc(cfg->chunk_size);
	if (!s.buf)
		r = -ENOMEM;
	else if (!(r = tier_open(s.from, ids[ifrom], s.uuid, cfg->chunk_size, 0, &s.ft, err, errlen)) &&
		 !(r = committed ? 0 : survey(&s, mdir, err, errlen)) &&
		 !(r = vol_store_open(mdir, who, &s.m, err, errlen)))
		r = split_run(&s, committed, err, errlen);
	if (r && !err[0])
		snprintf(err, errlen, "split_tier=%s:%s: %s", tier, from, strerror(-r));
	else if (!r && committed)
		snprintf(report, rlen, "split_tier: tier %s already has its own folder %s (an earlier "
			 "split_tier); tier %s's folder is cleaned up: this option can go", tier, s.to->path, from);
	else if (!r)
		snprintf(report, rlen, "split tier %s out of the folder of tier %s: %llu chunks (%s) now in %s",
			 tier, from, (unsigned long long)s.moved, silt_fmt_size(s.bytes, size, sizeof(size)),
			 s.to->path);
	tier_close(s.tt);
	tier_close(s.ft);
	free(s.buf);
	meta_close(s.m);
	return r;
}
