/* Storage tier backend: identity marker, tier files, space accounting.
 *
 * Space is counted in chunks we placed there, not in what the tier
 * filesystem reports, so that a tier on a shared disk is not confused by its
 * neighbours. The capacity is what we hold plus what the tier filesystem
 * still has free (beyond a reserve kept for the metadata store), re-read at
 * most once a second, and at most the configured capacity: so neither our
 * own chunks nor foreign files can fill the filesystem under the metadata,
 * and a tier whose filesystem fills up takes no new chunks.
 *
 * A tier that breaks (tier_fail) or is missing at mount is looked at again
 * by tier_check, once a second from the volume's "silt-tiers" thread
 * (tiers/health.c): once its folder is gone from where it was, the files
 * held open in it are let go (so that the disk can be unmounted, checked
 * and mounted again); once a folder with the volume's and the tier's
 * identity is there and takes writes, it is opened in place of the old one
 * (the same descriptor number, dup3), the generation goes up so that every
 * inode's cached tier files are opened again from it (tiers/layout.c), and
 * the tier is active again. */
#include "tiers/tier.h"
#include "tiers/netio.h"
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
	int dirfd;                  /* <path>/<uuid>/chunks; a number that stays (dup3) */
	int deadfd;                 /* O_PATH /dev/null: what a released file points at */
	char uuid[37];
	dev_t dir_dev;              /* the folder dirfd is (the checker's: tier_check) */
	ino_t dir_ino;
	_Atomic unsigned gen;       /* bumped each time the folder is opened again */
	_Atomic int missing;        /* its folder was not there at mount, and has not come */
	_Atomic int released;       /* dirfd and its files point at deadfd */
	int probe_err;              /* what the last look at a failed tier's folder found */
	uint64_t back_ns, hold_ns;  /* when it last came back; not again before (flapping) */
	unsigned wait_s;
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
	struct silt_netio *net;     /* class net: its calls bounded (tiers/netio.h) */
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

	if (!force && (t->net || now - atomic_load(&t->refreshed) < 1000000000ull))
		return; /* a net tier's statvfs may hang: its checker does it (tier_check) */
	if (atomic_load(&t->released) || pthread_mutex_trylock(&t->refresh_lock))
		return; /* a tier whose folder is gone keeps what it last knew */
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

/* Where chunks_dir() of a tier is: <path>/<uuid>/chunks. */
static void chunks_dir(const struct silt_tier *t, char *p, size_t len)
{
	snprintf(p, len, "%s/%s/chunks", t->conf.path, t->uuid);
}

/* Remember which folder dirfd is (tier_check compares the path's). */
static void note_folder(struct silt_tier *t)
{
	struct stat st;

	if (fstat(t->dirfd, &st) == 0) {
		t->dir_dev = st.st_dev;
		t->dir_ino = st.st_ino;
	}
}

/* A tier whose folder is not there at mount: missing, it takes nothing and
 * its chunks read as I/O errors until tier_check finds it. */
static int open_missing(struct silt_tier *t)
{
	if ((t->dirfd = fcntl(t->deadfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -errno;
	atomic_store(&t->missing, 1);
	atomic_store(&t->released, 1);
	atomic_store(&t->failed, ENOENT);
	atomic_store(&t->capacity, t->conf.capacity);
	t->probe_err = -ENOENT;
	snprintf(t->why, sizeof(t->why), "%.100s is not there (not mounted?)", t->conf.path);
	log_warn("tier %s: %s is not there (a disk not mounted yet?): mounting without it; its chunks read "
		 "as I/O errors and new chunks go to the other tiers until it appears", t->conf.name, t->conf.path);
	return 0;
}

int tier_open(const struct silt_tier_conf *c, int id, const char *uuid, uint32_t chunk_size, int missing,
	      struct silt_tier **out, char *err, size_t errlen)
{
	struct silt_tier *t = calloc(1, sizeof(*t));
	char p[4200];
	int r = 0;

	if (!t)
		return -ENOMEM;
	t->conf = *c;
	t->id = id;
	t->chunk_size = chunk_size;
	snprintf(t->uuid, sizeof(t->uuid), "%s", uuid);
	pthread_mutex_init(&t->refresh_lock, NULL);
	pthread_mutex_init(&t->fail_lock, NULL);
	t->dirfd = t->deadfd = -1;
	if (c->cls == SILT_CLASS_NET && (r = netio_new(c->name, c->timeout_ms, c->retries, &t->failed, &t->net))) {
		snprintf(err, errlen, "tier %s: %s", c->name, strerror(-r));
	} else if ((t->deadfd = open("/dev/null", O_PATH | O_CLOEXEC)) < 0) {
		r = -errno;
		snprintf(err, errlen, "tier %s: cannot open /dev/null: %s", c->name, strerror(-r));
	} else if (missing) {
		r = open_missing(t);
	} else {
		chunks_dir(t, p, sizeof(p));
		t->dirfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (t->dirfd < 0)
			snprintf(err, errlen, "tier %s: cannot open %s: %s", c->name, p, strerror(errno));
		r = t->dirfd < 0 ? -errno : 0;
	}
	if (r) {
		tier_close(t);
		return r;
	}
	note_folder(t);
	refresh_capacity(t, 1);
	*out = t;
	return 0;
}

void tier_close(struct silt_tier *t)
{
	if (!t)
		return;
	netio_free(t->net);
	if (t->dirfd >= 0)
		close(t->dirfd);
	if (t->deadfd >= 0)
		close(t->deadfd);
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
	if (t->net) /* a server that is gone must not hold the caller (sshfs takes O_DIRECT) */
		return netio_open(t->net, t->dirfd, name, O_RDWR | O_DIRECT | (create ? O_CREAT : 0));
	fd = openat(t->dirfd, name, O_RDWR | O_DIRECT | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (fd < 0 && errno == EROFS && !create) /* a read-only tier still reads */
		fd = openat(t->dirfd, name, O_RDONLY | O_DIRECT | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

struct silt_netio *tier_netio(const struct silt_tier *t) { return t->net; }

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
	log_err("tier %s (%s) failed: %s: %s; no new chunks go there, and its chunks read as I/O errors "
		"unless its filesystem still reads, until it is back",
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
	if (!atomic_exchange(&t->full, 1))
		log_info("tier %s: its filesystem said ENOSPC: new chunks go to the next tier until it has room",
			 t->conf.name);
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
	st->state_name = atomic_load(&t->missing) ? "missing" : st->failed ? "failed" : names[st->state];
	pthread_mutex_lock(&t->fail_lock);
	snprintf(st->why, sizeof(st->why), "%s", st->failed ? t->why : "");
	pthread_mutex_unlock(&t->fail_lock);
}

/* ---- the checker: a broken tier let go of, and taken back (tier_check) ---- */

unsigned tier_gen(const struct silt_tier *t) { return atomic_load(&t->gen); }
int tier_dead_fd(const struct silt_tier *t) { return t->deadfd; }

/* Whether the tier's path still leads to the folder dirfd holds. */
static int same_folder(const struct silt_tier *t)
{
	char p[4200];
	struct stat st;

	chunks_dir(t, p, sizeof(p));
	return stat(p, &st) == 0 && st.st_dev == t->dir_dev && st.st_ino == t->dir_ino;
}

/* An active tier whose filesystem went read-only, or whose folder was
 * removed or left its path (its disk unmounted), fails now rather than at
 * the next I/O that finds out. */
static void check_active(struct silt_tier *t)
{
	struct statvfs sv;
	struct stat st;

	if (t->net)
		refresh_capacity(t, 1);
	if (fstatvfs(t->dirfd, &sv) == 0 && (sv.f_flag & ST_RDONLY))
		tier_fail(t, -EROFS, "checking its filesystem");
	else if (fstat(t->dirfd, &st) == 0 && st.st_nlink == 0)
		tier_fail(t, -ENOENT, "checking its chunk folder");
	else if (!same_folder(t))
		tier_fail(t, -ENOENT, "looking for its chunk folder at its path");
}

/* Whether the folder now at the tier's path is this tier of this volume and
 * takes writes: 0 and its chunk folder opened into *dfd, or -errno and why. */
static int probe_back(struct silt_tier *t, int *dfd, char *why, size_t len)
{
	char p[4200], u[37], tname[SILT_NAME_MAX];
	struct statvfs sv;
	int r = tier_probe(t->conf.path, u, tname, sizeof(tname)), fd;

	if (r) {
		snprintf(why, len, "%s/tier.id: %s", t->conf.path, strerror(-r));
		return r;
	}
	if (strcmp(u, t->uuid) || (tname[0] && strcmp(tname, t->conf.name))) {
		snprintf(why, len, "%s holds tier '%s' of volume %s, not tier '%s' of volume %s: not taking it",
			 t->conf.path, tname, u, t->conf.name, t->uuid);
		return -EEXIST;
	}
	chunks_dir(t, p, sizeof(p));
	if ((*dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		snprintf(why, len, "%s: %s", p, strerror(-r));
		return r;
	}
	snprintf(p, sizeof(p), "%s/%s/.probe", t->conf.path, t->uuid);
	if (fstatvfs(*dfd, &sv) < 0 || (sv.f_flag & ST_RDONLY))
		r = -EROFS;
	else if ((fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		r = -errno;
	else if ((r = write(fd, "ok\n", 3) == 3 && fsync(fd) == 0 ? 0 : -EIO), close(fd) < 0 && !r)
		r = -EIO; /* synced: a disk that errs says so here, not in the page cache */
	unlink(p);
	if (r) {
		snprintf(why, len, "%s: %s", p, strerror(-r));
		close(*dfd);
	}
	return r;
}

/* A tier that fails again soon after it came back (a disk that errs now
 * and then) is taken back later each time, up to a minute, rather than
 * every second. */
static int flapping(struct silt_tier *t)
{
	uint64_t now = silt_now_ns();

	if (t->hold_ns) {
		if (now < t->hold_ns)
			return 1;
		t->hold_ns = 0;
		return 0;
	}
	if (!t->back_ns || now - t->back_ns > 10 * 1000000000ull) {
		t->wait_s = 1;
		return 0;
	}
	t->wait_s = MIN(t->wait_s * 2, 64u);
	t->hold_ns = now + t->wait_s * 1000000000ull;
	log_warn("tier %s failed again %llu s after it came back: taking it back in %u s", t->conf.name,
		 (unsigned long long)((now - t->back_ns) / 1000000000ull), t->wait_s);
	return 1;
}

/* The folder is back: in place of the old one (same number), a new
 * generation for the cached files, and active again. */
static void take_back(struct silt_tier *t, int dfd)
{
	if (dup3(dfd, t->dirfd, O_CLOEXEC) < 0) {
		log_err("tier %s: cannot take its folder back: %s", t->conf.name, strerror(errno));
		close(dfd);
		return;
	}
	close(dfd);
	note_folder(t);
	atomic_fetch_add(&t->gen, 1);
	int was_missing = atomic_exchange(&t->missing, 0);
	atomic_store(&t->released, 0);
	atomic_store(&t->full, 0);
	t->probe_err = 0;
	t->back_ns = silt_now_ns();
	refresh_capacity(t, 1);
	atomic_store(&t->failed, 0);
	log_info("tier %s (%s) is back: it takes chunks again", t->conf.name, t->conf.path);
	if (t->events)
		events_add(t->events, EVENT_TIER, "tier %s is back after it %s", t->conf.name,
			   was_missing ? "was missing at mount" : "failed");
}

enum tier_change tier_check(struct silt_tier *t)
{
	char why[4400];
	int dfd = -1, r;

	if (!atomic_load(&t->failed)) {
		check_active(t);
		return TIER_SAME;
	}
	if (!atomic_load(&t->released) && !same_folder(t)) {
		/* gone from where it was: let go of it (dirfd first, then the
		 * caller's inodes: tiers/layout.c tfiles_release) */
		if (dup3(t->deadfd, t->dirfd, O_CLOEXEC) >= 0) {
			atomic_store(&t->released, 1);
			log_warn("tier %s: its folder %s left: letting go of its files", t->conf.name, t->conf.path);
			return TIER_LOST;
		}
		log_err("tier %s: cannot let go of its folder: %s", t->conf.name, strerror(errno));
	}
	if (!(r = probe_back(t, &dfd, why, sizeof(why)))) {
		if (flapping(t)) {
			close(dfd);
			return TIER_SAME;
		}
		take_back(t, dfd);
		return TIER_BACK;
	}
	if (r != t->probe_err && r != -ENOENT) /* said once per new reason */
		log_warn("tier %s is still %s: %s", t->conf.name, atomic_load(&t->missing) ? "missing" : "failed", why);
	t->probe_err = r;
	return TIER_SAME;
}
