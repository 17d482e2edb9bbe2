/* Storage tier backend: identity marker, tier files, space accounting.
 *
 * Space is counted in chunks we placed there, not in what the tier
 * filesystem reports, so that a tier on a shared disk is not confused by its
 * neighbours. The capacity is what we hold plus what the tier filesystem
 * still has free (beyond a reserve kept for the metadata store), re-read at
 * most once a second, and at most the configured capacity: so neither our
 * own chunks nor foreign files can fill the filesystem under the metadata,
 * and a tier whose filesystem fills up takes no new chunks. */
#include "tiers/tier.h"
#include "fs/meta/events.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct silt_tier {
	struct silt_tier_conf conf;
	int id;
	int dirfd;                  /* <path>/<uuid>/chunks */
	uint32_t chunk_size;
	_Atomic uint64_t chunks;    /* chunks placed here */
	_Atomic int64_t saved;      /* bytes compression spared them (CM_PACKED chunks) */
	_Atomic uint64_t capacity;  /* bytes */
	_Atomic uint64_t refreshed; /* monotonic ns of the last statvfs (auto) */
	_Atomic int full;           /* tier fs said ENOSPC */
	_Atomic uint64_t reserve;   /* bytes of its filesystem kept free (metadata) */
	_Atomic int failed;         /* 0, or the errno that made it fail */
	_Atomic int state;          /* enum tier_state */
	pthread_mutex_t fail_lock;  /* the reason below */
	char why[160];
	struct silt_events *events;
	pthread_mutex_t refresh_lock;
};

#define TIER_ID_MAGIC "siltfs-tier 1"

int tier_probe(const char *path, char uuid[37], char *tiername, size_t tnlen)
{
	char p[4200], buf[512];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "%s/tier.id", path);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (strncmp(buf, TIER_ID_MAGIC "\n", strlen(TIER_ID_MAGIC) + 1))
		return -EINVAL;
	char *u = strstr(buf, "\nvolume=");
	char *t = strstr(buf, "\ntier=");
	if (!u || strlen(u + 8) < 36)
		return -EINVAL;
	memcpy(uuid, u + 8, 36);
	uuid[36] = '\0';
	if (tiername && tnlen) {
		tiername[0] = '\0';
		if (t) {
			snprintf(tiername, tnlen, "%s", t + 6);
			tiername[strcspn(tiername, "\n")] = '\0';
		}
	}
	return 0;
}

int tier_format(const struct silt_tier_conf *c, const char *uuid, const char *volname)
{
	char p[4200], marker[512];
	int r;

	snprintf(p, sizeof(p), "%s/%s/chunks", c->path, uuid);
	r = silt_mkdir_p(p, 0700);
	if (r)
		return r;
	snprintf(p, sizeof(p), "%s/%s", c->path, uuid);
	if ((r = silt_fsync_dir(p)) || (r = silt_fsync_dir(c->path)))
		return r;
	int n = snprintf(marker, sizeof(marker), TIER_ID_MAGIC "\nvolume=%s\nname=%s\ntier=%s\n",
			 uuid, volname, c->name);
	snprintf(p, sizeof(p), "%s/tier.id", c->path);
	return silt_write_file_atomic(p, marker, (size_t)n);
}

/* What the chunks placed here really take: compressed ones less than a slot. */
static uint64_t used_bytes(struct silt_tier *t)
{
	uint64_t full = atomic_load(&t->chunks) * t->chunk_size;
	int64_t saved = atomic_load(&t->saved);
	if (saved <= 0)
		return full;
	return (uint64_t)saved < full ? full - (uint64_t)saved : 0;
}

/* What the tier can hold: what we placed there plus what its filesystem
 * still has free beyond the reserve (room kept for the metadata store when
 * it shares the filesystem), and never more than a configured capacity.
 * Foreign files filling the filesystem shrink it too, so new chunks go
 * elsewhere before the filesystem runs out. Re-read at most once a second. */
static void refresh_capacity(struct silt_tier *t, int force)
{
	struct statvfs sv;
	uint64_t now = silt_now_ns();

	if (!force && now - atomic_load(&t->refreshed) < 1000000000ull)
		return;
	if (pthread_mutex_trylock(&t->refresh_lock))
		return;
	if (fstatvfs(t->dirfd, &sv) == 0) {
		uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
		uint64_t reserve = atomic_load(&t->reserve);
		uint64_t cap = used_bytes(t) + (avail > reserve ? avail - reserve : 0);
		if (t->conf.capacity && t->conf.capacity < cap)
			cap = t->conf.capacity;
		atomic_store(&t->capacity, cap);
		atomic_store(&t->full, 0);
	} else if (t->conf.capacity) {
		atomic_store(&t->capacity, t->conf.capacity);
	}
	atomic_store(&t->refreshed, now);
	pthread_mutex_unlock(&t->refresh_lock);
}

void tier_set_reserve(struct silt_tier *t, uint64_t bytes)
{
	atomic_store(&t->reserve, bytes);
	refresh_capacity(t, 1);
}

int tier_same_fs(const struct silt_tier *t, const char *path)
{
	struct stat a, b;
	return fstat(t->dirfd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev;
}

int tier_open(const struct silt_tier_conf *c, int id, const char *uuid, uint32_t chunk_size,
	      struct silt_tier **out, char *err, size_t errlen)
{
	struct silt_tier *t = calloc(1, sizeof(*t));
	char p[4200];

	if (!t)
		return -ENOMEM;
	t->conf = *c;
	t->id = id;
	t->chunk_size = chunk_size;
	pthread_mutex_init(&t->refresh_lock, NULL);
	pthread_mutex_init(&t->fail_lock, NULL);
	snprintf(p, sizeof(p), "%s/%s/chunks", c->path, uuid);
	t->dirfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dirfd < 0) {
		int r = -errno;
		snprintf(err, errlen, "tier %s: cannot open %s: %s", c->name, p, strerror(-r));
		free(t);
		return r;
	}
	refresh_capacity(t, 1);
	*out = t;
	return 0;
}

void tier_close(struct silt_tier *t)
{
	if (!t)
		return;
	close(t->dirfd);
	pthread_mutex_destroy(&t->refresh_lock);
	pthread_mutex_destroy(&t->fail_lock);
	free(t);
}

int tier_id(const struct silt_tier *t) { return t->id; }
const char *tier_name(const struct silt_tier *t) { return t->conf.name; }

static void seg_name(char *buf, size_t len, uint64_t ino, unsigned seg)
{
	if (seg == 0)
		snprintf(buf, len, "%llu", (unsigned long long)ino);
	else
		snprintf(buf, len, "%llu.%u", (unsigned long long)ino, seg);
}

int tier_open_file(struct silt_tier *t, uint64_t ino, unsigned seg, int create)
{
	char name[48];
	int fd;

	seg_name(name, sizeof(name), ino, seg);
	fd = openat(t->dirfd, name, O_RDWR | O_DIRECT | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	return fd < 0 ? -errno : fd;
}

int tier_remove_inode(struct silt_tier *t, uint64_t ino, unsigned max_seg)
{
	char name[48];
	int r = 0;

	for (unsigned s = 0; s <= max_seg && s < SILT_SEG_MAX; s++) {
		seg_name(name, sizeof(name), ino, s);
		if (unlinkat(t->dirfd, name, 0) < 0 && errno != ENOENT && !r)
			r = -errno;
	}
	return r;
}

int tier_reserve(struct silt_tier *t, int over_wm)
{
	uint64_t cap, limit, cur;

	refresh_capacity(t, 0);
	if (!tier_usable(t) || atomic_load(&t->full))
		return -ENOSPC;
	cap = atomic_load(&t->capacity);
	limit = over_wm ? cap : (uint64_t)((unsigned __int128)cap * t->conf.high_wm / 100);
	cur = atomic_load(&t->chunks);
	do {
		if (used_bytes(t) + t->chunk_size > limit)
			return -ENOSPC;
	} while (!atomic_compare_exchange_weak(&t->chunks, &cur, cur + 1));
	return 0;
}

int tier_has_room(struct silt_tier *t, int over_wm)
{
	refresh_capacity(t, 0);
	if (!tier_usable(t) || atomic_load(&t->full))
		return 0;
	uint64_t cap = atomic_load(&t->capacity);
	uint64_t limit = over_wm ? cap : (uint64_t)((unsigned __int128)cap * t->conf.high_wm / 100);
	return used_bytes(t) + t->chunk_size <= limit;
}

int tier_write_promotes(const struct silt_tier *t)
{
	return t->conf.write_promote;
}

int tier_checksums(const struct silt_tier *t)
{
	int on = t->conf.checksum < 0 ? t->conf.cls == SILT_CLASS_HDD || t->conf.cls == SILT_CLASS_NET
				      : t->conf.checksum > 0;
	return on && !t->conf.zstd_level; /* compressed chunks have their own */
}

void tier_release(struct silt_tier *t, uint64_t nchunks)
{
	atomic_fetch_sub(&t->chunks, nchunks);
}

void tier_saved_add(struct silt_tier *t, int64_t bytes)
{
	atomic_fetch_add(&t->saved, bytes);
}

void tier_account(struct silt_tier *t, uint64_t nchunks)
{
	atomic_fetch_add(&t->chunks, nchunks);
	refresh_capacity(t, 1);
}

int tier_io_error(int err)
{
	return err != -ENOSPC && err != -EDQUOT && err != -EFBIG && err != -ENOMEM &&
	       err != -EAGAIN && err != -EINTR && err != -E2BIG;
}

void tier_fail(struct silt_tier *t, int err, const char *what)
{
	int expected = 0;

	if (!atomic_compare_exchange_strong(&t->failed, &expected, err ? -err : EIO))
		return;
	pthread_mutex_lock(&t->fail_lock);
	snprintf(t->why, sizeof(t->why), "%s: %s", what, strerror(err ? -err : EIO));
	pthread_mutex_unlock(&t->fail_lock);
	log_err("tier %s (%s) failed: %s: %s; no new chunks go there, its chunks read as I/O errors "
		"until it is back and the volume is mounted again",
		t->conf.name, t->conf.path, what, strerror(err ? -err : EIO));
	if (t->events)
		events_add(t->events, EVENT_TIER, "tier %s failed: %s: %s", t->conf.name, what,
			   strerror(err ? -err : EIO));
}

void tier_set_events(struct silt_tier *t, struct silt_events *ev)
{
	t->events = ev;
}

int tier_failed(const struct silt_tier *t)
{
	return atomic_load(&t->failed);
}

void tier_set_state(struct silt_tier *t, enum tier_state s)
{
	atomic_store(&t->state, s);
}

enum tier_state tier_state(const struct silt_tier *t)
{
	return (enum tier_state)atomic_load(&t->state);
}

int tier_usable(const struct silt_tier *t)
{
	return atomic_load(&t->state) == TIER_ACTIVE && !atomic_load(&t->failed);
}

void tier_mark_full(struct silt_tier *t)
{
	atomic_store(&t->full, 1);
}

void tier_get_stats(struct silt_tier *t, struct tier_stats *st)
{
	refresh_capacity(t, 0);
	st->name = t->conf.name;
	st->path = t->conf.path;
	st->cls = t->conf.cls;
	st->capacity = atomic_load(&t->capacity);
	st->chunks = atomic_load(&t->chunks);
	st->used = used_bytes(t);
	st->high_wm = t->conf.high_wm;
	st->low_wm = t->conf.low_wm;
	st->zstd_level = t->conf.zstd_level;
	st->id = t->id;
	st->failed = atomic_load(&t->failed) != 0;
	st->state = tier_state(t);
	static const char *const names[] = { "active", "evacuating", "evacuated" };
	st->state_name = st->failed ? "failed" : names[st->state];
	pthread_mutex_lock(&t->fail_lock);
	snprintf(st->why, sizeof(st->why), "%s", st->failed ? t->why : "");
	pthread_mutex_unlock(&t->fail_lock);
}
