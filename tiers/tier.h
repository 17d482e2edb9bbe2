/* Storage tiers: a directory on some mounted filesystem that holds, for each
 * inode, sparse files in which chunk k sits at offset k * chunk_size.
 *
 *   <path>/tier.id                           marker: which volume owns this tier
 *   <path>/<uuid>/chunks/<ino>               segment 0 of an inode
 *   <path>/<uuid>/chunks/<ino>.<seg>         segment seg (seg >= 1)
 *
 * A segment covers SILT_SEG_BYTES of the file, so a 64 TiB image never needs
 * a tier file larger than ext4's 16 TiB limit. */
#ifndef SILT_TIER_H
#define SILT_TIER_H

#include <stddef.h>
#include <stdint.h>

#include "utils/config.h"

#define SILT_SEG_SHIFT 40 /* 1 TiB per tier file */
#define SILT_SEG_BYTES (1ull << SILT_SEG_SHIFT)
#define SILT_SEG_MAX 64   /* files up to 64 TiB */
#define SILT_MAX_FILE_SIZE ((uint64_t)SILT_SEG_MAX << SILT_SEG_SHIFT)

struct silt_tier;

/* What the operator made of a tier (persistent: the evacuation, fs/ctl.c
 * and tiers/migrate.c). A tier that is not active takes no new chunks. */
enum tier_state { TIER_ACTIVE, TIER_EVACUATING, TIER_EVACUATED };

struct tier_stats {
	const char *name, *path;
	enum silt_tier_class cls;
	uint64_t capacity, chunks;
	uint64_t used;            /* bytes its chunks really take (compressed ones less) */
	unsigned high_wm, low_wm;
	int zstd_level;
	int id;
	int failed;
	enum tier_state state;
	const char *state_name;   /* active, evacuating, evacuated, failed or missing */
	char why[160];            /* what failed, when failed or missing */
};

/* Read <path>/tier.id. 0 and the owning volume's uuid (37 bytes) on
 * success, -ENOENT when there is no marker, -EINVAL when it is not ours. */
int tier_probe(const char *path, char uuid[37], char *tiername, size_t tnlen);
/* Claim an empty directory for a volume: chunk directory, then marker. */
int tier_format(const struct silt_tier_conf *c, const char *uuid, const char *volname);

/* missing: its folder is not there (vol_open looked); the tier starts
 * missing (failed, state "missing") and tier_check takes it when it comes. */
int tier_open(const struct silt_tier_conf *c, int id, const char *uuid, uint32_t chunk_size, int missing,
	      struct silt_tier **out, char *err, size_t errlen);
void tier_close(struct silt_tier *t);

int tier_id(const struct silt_tier *t);
const char *tier_name(const struct silt_tier *t);

/* Open (creating if asked) the O_DIRECT tier file of one inode segment;
 * on a read-only tier filesystem, an existing one read-only. */
int tier_open_file(struct silt_tier *t, uint64_t ino, unsigned seg, int create);
/* A net tier's bounded calls (tiers/netio.h) for its tier_io ops; NULL
 * for other tiers (their I/O goes straight to the ring). */
struct silt_netio;
struct silt_netio *tier_netio(const struct silt_tier *t);
/* Remove every segment of an inode up to max_seg. */
int tier_remove_inode(struct silt_tier *t, uint64_t ino, unsigned max_seg);

/* Space accounting, in chunks. reserve fails with -ENOSPC above the high
 * watermark (or above capacity when over_wm is set). */
int tier_reserve(struct silt_tier *t, int over_wm);
/* Whether tier_reserve would succeed now (nothing is reserved). */
int tier_has_room(struct silt_tier *t, int over_wm);
/* Whether a write into a chunk here first copies it to the write target. */
int tier_write_promotes(const struct silt_tier *t);
/* Whether its uncompressed chunks carry per-block checksums. */
int tier_checksums(const struct silt_tier *t);
void tier_release(struct silt_tier *t, uint64_t nchunks);
void tier_account(struct silt_tier *t, uint64_t nchunks); /* at mount */
/* Compressed chunks came (+) or went (-): the bytes they spare. */
void tier_saved_add(struct silt_tier *t, int64_t bytes);
/* The tier filesystem said ENOSPC although we had room: trust it until the
 * next capacity refresh. */
void tier_mark_full(struct silt_tier *t);
/* Whether an error from a tier's file says the tier itself is broken (its
 * folder gone, its disk failing), rather than full or busy. */
int tier_io_error(int err);
/* The tier cannot be used (err, doing what): logged once; it takes no new
 * chunks, and I/O to the chunks it holds fails with EIO (reads work while
 * its filesystem still reads them), until tier_check takes it back. */
void tier_fail(struct silt_tier *t, int err, const char *what);
int tier_failed(const struct silt_tier *t);
void tier_set_state(struct silt_tier *t, enum tier_state s);
enum tier_state tier_state(const struct silt_tier *t);
/* Whether it may take chunks: active (not evacuated nor being evacuated) and not failed. */
int tier_usable(const struct silt_tier *t);
/* Looked at once a second (tiers/health.c). An active tier whose
 * filesystem turned read-only or whose folder was removed fails. A failed
 * or missing one: TIER_LOST when its folder has left its path (dirfd now
 * points at nothing: the caller lets go of the files its inodes hold,
 * tfiles_release); TIER_BACK when a folder with this volume's and tier's
 * tier.id that takes writes is there: it is active again, its generation
 * went up (cached tier files are opened again, tfiles_fd). */
enum tier_change { TIER_SAME, TIER_LOST, TIER_BACK };
enum tier_change tier_check(struct silt_tier *t);
/* Bumped at each TIER_BACK. */
unsigned tier_gen(const struct silt_tier *t);
/* An O_PATH descriptor of /dev/null: a released file is dup3'ed onto it,
 * so its number stays taken and any I/O through it fails (EBADF). */
int tier_dead_fd(const struct silt_tier *t);
/* Where tier_fail() reports, besides the log. */
struct silt_events;
void tier_set_events(struct silt_tier *t, struct silt_events *ev);
/* Keep bytes of the tier's filesystem free: no new chunk goes there when
 * less would remain (the metadata store lives on the same filesystem). */
void tier_set_reserve(struct silt_tier *t, uint64_t bytes);
/* Whether path is on the tier's filesystem. */
int tier_same_fs(const struct silt_tier *t, const char *path);
void tier_get_stats(struct silt_tier *t, struct tier_stats *st);

#endif
