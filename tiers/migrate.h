/* The migration engine: chunks move between tiers while the volume runs.
 *
 * Each epoch the placer compares where chunks are with where the placement
 * policy (predictor/heat.h) wants them, within each tier's capacity and
 * watermarks: hot chunks on slow tiers rise, making room by sending the
 * coldest chunks of the tier they rise to one tier down; a tier above its
 * high watermark is drained to its low watermark, coldest first. The moves
 * are carried out by the engine's thread ("silt-migrate"), a batch at a time
 * with the batch's reads and writes in flight together on its own io_uring:
 *
 *   intent (which chunk, from, to: in the store)  ->  copy  ->  fdatasync
 *   ->  SWITCH pin: no write or other home change since the copy began
 *       (the chunk's generation), else the move is dropped and redone later
 *   ->  switch the map entry  ->  sync the WAL  ->  punch the source
 *   ->  forget the intent
 *
 * A crash anywhere leaves the map pointing at one whole copy; the next
 * mount (migrate_recover) punches whichever copy the map does not name.
 * Readers never see a punched source: the SWITCH pin waited for every read
 * in flight, later reads go to the new home, and the source is punched only
 * once the switch is durable.
 *
 * Pace: at most `rate` bytes a second, and `busy_rate` while foreground I/O
 * is busy (quiet periods get the full rate).
 *
 * Before the policy's moves, each epoch plans two kinds the operator asked
 * for: chunks outside their file's placement bound (tiers/bounds.h: a pin
 * just set, a spill while the pinned tier was full) go inside it, and,
 * while a tier is being evacuated, its
 * chunks go to the others (nearest in speed first, inside their file's
 * bound when there is room there), epoch after epoch without waiting,
 * until it holds none: it is then "evacuated" and takes no chunks until
 * the evacuation is cancelled. The state is in the store
 * (fs/meta/records.h), so an evacuation resumes at the next mount.
 */
#ifndef SILT_MIGRATE_H
#define SILT_MIGRATE_H

#include <stdint.h>

#include "fs/meta/commit.h"
#include "fs/meta/meta.h"
#include "predictor/heat.h"
#include "fs/meta/events.h"
#include "tiers/alloc.h"
#include "tiers/bounds.h"
#include "tiers/chunkmap.h"
#include "tiers/io.h"
#include "tiers/layout.h"
#include "tiers/tier.h"

struct silt_migrate;

enum migrate_mode {
	MIGRATE_POLICY, /* follow the placement policy (the default) */
	MIGRATE_CHURN,  /* tests: move every chunk every epoch */
	MIGRATE_OFF,    /* place new chunks, move nothing */
};

struct migrate_conf {
	struct silt_meta *meta;
	struct silt_commit *commit;
	struct silt_cmap *cmap;
	struct silt_alloc *alloc;
	const struct layout *layout;
	struct silt_tier *const *order;      /* fastest first */
	int ntiers;
	struct silt_tier *const *by_id;      /* [SILT_MAX_TIERS] */
	const int *zlevel;                   /* [SILT_MAX_TIERS] by id: zstd level, 0 = none */
	struct heat *heat;
	struct silt_bounds *bounds;          /* files' placement bounds */
	struct silt_events *events;          /* evacuations are recorded there */
	struct cmap_source files;
	const _Atomic uint64_t *fg_ops[2];   /* foreground reads and writes so far */
	uint32_t epoch_ms;                   /* 0 = plan only when asked */
	uint64_t rate, busy_rate;            /* bytes per second */
	enum migrate_mode mode;
};

struct migrate_stats {
	enum migrate_mode mode;
	uint64_t epochs;
	uint64_t pending, pending_bytes;     /* planned, not yet carried out */
	uint64_t moved, moved_bytes;         /* carried out since mount */
	uint64_t promoted, demoted;
	uint64_t raced;                      /* dropped: a write came in between */
	uint64_t failed;
	uint64_t rate;                       /* bytes per second over the last seconds */
	int busy;                            /* foreground I/O is busy: busy_rate applies */
};

/* At mount, before any I/O: settle the moves a crash interrupted. */
int migrate_recover(const struct migrate_conf *c, uint64_t *settled);

int migrate_start(const struct migrate_conf *c, struct silt_migrate **out);
/* Finishes the batch in flight, then stops. */
void migrate_stop(struct silt_migrate *m);

/* Plan and carry out one epoch now, in the caller's thread, at full speed
 * (siltctl migrate). Returns the moves carried out or -errno. */
long migrate_run_epoch(struct silt_migrate *m);
void migrate_set_mode(struct silt_migrate *m, enum migrate_mode mode);
const char *migrate_mode_name(enum migrate_mode mode);
int migrate_mode_parse(const char *s, enum migrate_mode *out);
void migrate_stats(struct silt_migrate *m, struct migrate_stats *s);

/* Evacuation of tier id tid. begin: refused (-EBUSY, -ENOSPC, -EIO, with
 * why) before anything moves when another tier is being evacuated, when
 * the tier is failed or missing, or when the other usable tiers cannot
 * hold its chunks; resumes one that was cancelled or interrupted. cancel:
 * the tier is active again (a running evacuation stops after its batch in
 * flight; an evacuated tier takes chunks again). */
int migrate_evacuate(struct silt_migrate *m, int tid, char *why, size_t len);
int migrate_evacuate_cancel(struct silt_migrate *m, int tid, char *why, size_t len);
struct evac_stats {
	enum tier_state state;
	int running;                         /* evacuating now */
	uint64_t total;                      /* chunks on it when the evacuation began */
	uint64_t left;                       /* chunks still on it */
};
void migrate_evac_stats(struct silt_migrate *m, int tid, struct evac_stats *s);

/* Write-promote: move chunk k of cf to tier id `to` now, for a writer that
 * holds k exclusively (an EXCL pin), with the caller's I/O context. The
 * old copy is punched once the switch is durable (the engine's next WAL
 * sync). 0, or -errno (nothing changed then). */
int migrate_promote(struct silt_migrate *m, struct silt_ioctx *ctx, struct cmap_file *cf,
		    uint64_t k, int to);

#endif
