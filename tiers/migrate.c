/* The migration engine (see migrate.h).
 *
 *   struct move        one planned move, and while it is carried out its
 *                      file reference, watch, buffer and new record
 *   struct fref        a file the epoch holds a reference on (the plan's
 *                      moves point into these; released at the epoch's end)
 *   struct victims     cold chunks found on one tier by walking the chunk
 *                      map in the store from a cursor, coldest first
 *   struct tier_room   what each tier may still take, as an epoch plans
 *   struct silt_migrate the plan of the current epoch, the buffers and the
 *                      io_uring of the engine, the pace, the statistics
 *
 * One epoch at a time (run_lock): the engine's thread runs them every
 * epoch_ms, siltctl can run one at once (migrate_run_epoch). An epoch
 * plans, in this order: moves into files' placement bounds (plan_bounds),
 * the evacuation of a tier (plan_evacuation), then the policy's. The
 * evacuation's state changes under evac_lock, never held across I/O.
 *
 * Why moves are checked by generation rather than by holding the chunk
 * exclusively: a copy from a slow tier takes milliseconds, and a VM's
 * writes must not wait for it. While its copy is made the chunk is pinned
 * READ: overwrites in place go on (and make the move moot: the SWITCH pin
 * at the end finds the generation moved), but nothing can free the chunk
 * and place it anew, on the destination tier say, while the copy is being
 * written there. The pins of a batch are taken in (inode, chunk) order, as
 * a writer takes its own, so they cannot wait in a cycle.
 */
#include "tiers/migrate.h"
#include "predictor/placement.h"
#include "tiers/blocksum.h"
#include "tiers/chunkio.h"
#include "tiers/io.h"
#include "tiers/zchunk.h"
#include "utils/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 16                  /* moves in flight together */
#define BATCH_BYTES (8u << 20)    /* and at most this much buffer */
#define PLAN_MAX 8192             /* moves per epoch */
#define HOT_MAX 65536             /* ranked chunks looked at per epoch */
#define VICTIM_MAX 512            /* cold candidates gathered per scan */
#define SCAN_MAX 200000           /* map entries looked at per scan */
#define FREF_MAX 256              /* files referenced per epoch */
#define BUSY_OPS_PER_S 200        /* foreground I/O above this: busy */
#define MAX_SUMS CHUNK_SUMS_MAX
/* A promotion pays only if the chunk is used again: it costs a whole chunk
 * read from the slow tier (and, when the fast tier is full, a chunk written
 * back there), where a miss costs a block. So a chunk goes up only once it
 * has been accessed PROMOTE_MIN_HEAT times lately (its decayed count), and
 * only in place of a colder one. Without this the placer mirrors the
 * policy's cache, which admits every miss: on an HDD-like tier the moves
 * of chunks touched once took the IOPS that the guests were waiting for
 * (bench/tiering: 0.43 of all-fast with the engine never settling). */
#define PROMOTE_MIN_HEAT 2

struct fref {
	uint64_t ino;
	struct cmap_file *cf;
	void *ref;
};

struct move {
	uint64_t ino, k;
	int from, to;                 /* tier ids */
	int promote;
	int over_wm;                  /* may fill the new tier past its high watermark */
	int evac;                     /* part of an evacuation (dropped if it is cancelled) */
	struct cmap_file *cf;
	struct cmap_pin pin;          /* READ, while the copy is made */
	struct cmap_watch w;
	uint64_t gen;
	uint8_t entry;
	char *buf;
	int zero, ok, with_sums;
	struct chunk_rec rec;
	struct block_sum *sums;       /* while carried out: MAX_SUMS of the batch's */
};

struct victim {
	uint64_t ino, k;
	unsigned heat;
	uint8_t allowed;              /* the tier ids its file may use */
};

struct victims {
	uint8_t cursor[16];           /* where the next scan starts */
	int wrapped;
	unsigned n, next;
	struct victim v[VICTIM_MAX];
};

struct silt_migrate {
	struct migrate_conf c;
	pthread_t thread;
	pthread_mutex_t lock;         /* stop and wake requests */
	pthread_cond_t cv;
	int stopping, started;
	pthread_mutex_t run_lock;     /* one epoch at a time */
	struct chunkio io;            /* how whole chunks are read and written */
	struct silt_ioctx *ctx;
	char *bufs;
	struct block_sum *sums;       /* a batch's new block sums */
	unsigned batch;
	struct move plan[PLAN_MAX];
	unsigned nplan;
	struct move promos[PLAN_MAX]; /* planned apart, carried out after the demotions */
	unsigned npromos;
	uint64_t planned_keys[2 * PLAN_MAX]; /* open addressing, 0 = empty */
	struct fref frefs[FREF_MAX];
	unsigned nfrefs;
	struct victims vict[SILT_MAX_TIERS];
	uint64_t hot_keys[HOT_MAX];   /* the policy's ranking, this epoch */
	uint8_t hot_tiers[HOT_MAX];
	uint8_t churn_cursor[16];
	int idx_of_id[SILT_MAX_TIERS];
	uint64_t bound_inos[64];      /* files planned into their bounds, this epoch */
	/* evacuation */
	pthread_mutex_t evac_lock;    /* the states below and the tiers' */
	_Atomic int evac_tid;         /* the tier being evacuated, -1 none */
	uint64_t evac_total[SILT_MAX_TIERS];
	uint8_t evac_cursor[16];
	/* pace */
	uint64_t last_ns, last_ops;
	double tokens;
	_Atomic int busy;
	/* statistics */
	_Atomic int mode;
	_Atomic uint64_t epochs, pending, moved, moved_bytes, promoted, demoted, raced, failed;
	uint64_t rate_t0, rate_bytes0;
	_Atomic uint64_t rate;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *const mode_names[] = { "policy", "churn", "off" };

const char *migrate_mode_name(enum migrate_mode mode)
{
	return (unsigned)mode < 3 ? mode_names[mode] : "?";
}

int migrate_mode_parse(const char *s, enum migrate_mode *out)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(s, mode_names[i])) {
			*out = (enum migrate_mode)i;
			return 0;
		}
	return -EINVAL;
}

/* ---- intents ---- */

static void stage_intent(struct silt_migrate *m, struct meta_batch *b, const struct move *mv, int add)
{
	uint8_t key[K_MOVE_LEN];
	struct move_rec rec = { .from = (uint8_t)mv->from, .to = (uint8_t)mv->to };

	key_move(key, mv->ino, mv->k);
	if (add)
		meta_put(b, m->c.meta, CF_FACTS, key, sizeof(key), &rec, sizeof(rec));
	else
		meta_del(b, m->c.meta, CF_FACTS, key, sizeof(key));
}

static int commit_internal(struct silt_commit *commit, struct meta_batch *b, int sync)
{
	struct change ch = { .kind = CHANGE_INTERNAL };
	return commit_apply(commit, b, sync, &ch, 1);
}

/* Punch chunk k's slot of ino on tier t by opening the tier file itself
 * (at mount, no inode is in memory). A file that is not there is fine. */
static int punch_slot(const struct layout *l, struct silt_tier *t, uint64_t ino, uint64_t k)
{
	int fd = tier_open_file(t, ino, layout_seg(l, k), 0), r = 0;

	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	r = layout_punch_fd(fd, layout_slot(l, k), l->chunk_size);
	close(fd);
	return r;
}

/* The tier id chunk (ino, k) maps to in the store, or -1 for a hole. */
static int stored_home(struct silt_meta *meta, uint64_t ino, uint64_t k)
{
	uint8_t key[16];
	char *val;
	size_t len;
	int tid = -1;

	key_chunk(key, ino, k);
	if (meta_get(meta, CF_CHUNKS, key, 16, &val, &len) == 0) {
		if (len >= 1)
			tid = (uint8_t)val[0];
		free(val);
	}
	return tid;
}

int migrate_recover(const struct migrate_conf *c, uint64_t *settled)
{
	struct meta_batch *b = meta_batch_new();
	struct meta_iter *it = meta_iter_new(c->meta, CF_FACTS, K_MOVE_PREFIX, sizeof(K_MOVE_PREFIX) - 1);
	const char *k, *v;
	size_t kl, vl;
	int r;

	*settled = 0;
	if (!b || !it) {
		meta_batch_free(b);
		meta_iter_free(it);
		return -ENOMEM;
	}
	while ((r = meta_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		if (kl != K_MOVE_LEN || vl != sizeof(struct move_rec))
			continue;
		uint64_t ino = silt_get_be64((const uint8_t *)k + kl - 16);
		uint64_t chunk = silt_get_be64((const uint8_t *)k + kl - 8);
		const struct move_rec *mr = (const void *)v;
		int home = stored_home(c->meta, ino, chunk);
		/* the copy the map names stays; the other one goes */
		if (home != mr->from && mr->from < SILT_MAX_TIERS && c->by_id[mr->from])
			punch_slot(c->layout, c->by_id[mr->from], ino, chunk);
		if (home != mr->to && mr->to < SILT_MAX_TIERS && c->by_id[mr->to])
			punch_slot(c->layout, c->by_id[mr->to], ino, chunk);
		meta_del(b, c->meta, CF_FACTS, k, kl);
		(*settled)++;
	}
	meta_iter_free(it);
	if (r == 0 && *settled)
		r = commit_internal(c->commit, b, 1);
	meta_batch_free(b);
	if (*settled)
		log_info("settled %llu chunk moves that the last stop interrupted",
			 (unsigned long long)*settled);
	return r < 0 ? r : 0;
}

/* ---- files an epoch holds ---- */

static struct cmap_file *file_ref(struct silt_migrate *m, uint64_t ino)
{
	for (unsigned i = 0; i < m->nfrefs; i++)
		if (m->frefs[i].ino == ino)
			return m->frefs[i].cf;
	if (m->nfrefs == FREF_MAX)
		return NULL;
	struct fref *f = &m->frefs[m->nfrefs];
	if (m->c.files.get(m->c.files.ctx, ino, &f->cf, &f->ref))
		return NULL;
	f->ino = ino;
	m->nfrefs++;
	return f->cf;
}

static void files_release(struct silt_migrate *m)
{
	for (unsigned i = 0; i < m->nfrefs; i++)
		m->c.files.put(m->c.files.ctx, m->frefs[i].ref);
	m->nfrefs = 0;
}

/* ---- the plan ---- */

static uint64_t plan_key(uint64_t ino, uint64_t k)
{
	return ((ino * 0x9E3779B97F4A7C15ull) ^ (k * 0xC2B2AE3D27D4EB4Full)) | 1;
}

/* 1 if (ino, k) is newly in the plan's key set, 0 if it was there. */
static int plan_claim(struct silt_migrate *m, uint64_t ino, uint64_t k)
{
	uint64_t key = plan_key(ino, k);
	size_t n = 2 * PLAN_MAX, i = key % n;

	while (m->planned_keys[i]) {
		if (m->planned_keys[i] == key)
			return 0;
		i = (i + 1) % n;
	}
	m->planned_keys[i] = key;
	return 1;
}

static int plan_full(const struct silt_migrate *m)
{
	return m->nplan + m->npromos >= PLAN_MAX;
}

/* over_wm: the move may fill its tier to capacity (demotions always may) */
static int add_move(struct silt_migrate *m, uint64_t ino, uint64_t k, int from, int to, int promote,
		    int over_wm, int evac)
{
	if (plan_full(m) || !plan_claim(m, ino, k))
		return 0;
	struct move mv = { .ino = ino, .k = k, .from = from, .to = to, .promote = promote,
			   .over_wm = over_wm || !promote, .evac = evac };
	/* promotions go after every demotion: those make their room */
	if (promote)
		m->promos[m->npromos++] = mv;
	else
		m->plan[m->nplan++] = mv;
	return 1;
}

/* Walk the map in the store from the tier's cursor for chunks on it that
 * the policy does not want on a fast tier; keep the coldest. */
static int cmp_heat(const void *a, const void *b)
{
	unsigned x = ((const struct victim *)a)->heat, y = ((const struct victim *)b)->heat;
	return x < y ? -1 : x > y;
}

static void scan_victims(struct silt_migrate *m, int tid)
{
	struct victims *vs = &m->vict[tid];
	struct meta_iter *it = meta_iter_new(m->c.meta, CF_CHUNKS, "", 0);
	const char *k, *v;
	size_t kl, vl, seen = 0;
	int r;

	vs->n = vs->next = 0;
	if (!it)
		return;
	if (!vs->wrapped)
		meta_iter_start_at(it, vs->cursor, 16);
	vs->wrapped = 0;
	while (seen++ < SCAN_MAX && vs->n < VICTIM_MAX && (r = meta_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		if (kl != 16 || vl < 1 || (uint8_t)v[0] != tid)
			continue;
		uint64_t ino = silt_get_be64((const uint8_t *)k), ck = silt_get_be64((const uint8_t *)k + 8);
		memcpy(vs->cursor, k, 16);
		if (heat_contains(m->c.heat, ino, ck))
			continue;
		struct file_bound fb = { .allowed = BOUND_ALL };
		bounds_get(m->c.bounds, ino, &fb);
		vs->v[vs->n].ino = ino;
		vs->v[vs->n].k = ck;
		vs->v[vs->n].allowed = fb.allowed;
		vs->v[vs->n++].heat = heat_of(m->c.heat, ino, ck);
	}
	if (vs->n < VICTIM_MAX) /* reached the end: start over next time */
		vs->wrapped = 1;
	meta_iter_free(it);
	qsort(vs->v, vs->n, sizeof(vs->v[0]), cmp_heat);
}

/* Whether a victim found by an earlier scan is still as cold: not in the
 * policy's fast set, no hotter than it was. A scan's list lasts across
 * epochs; a file that became hot since (its accesses, or a rule's weight)
 * must not be sent down on the strength of what it was. */
static int still_cold(struct silt_migrate *m, const struct victim *vi)
{
	return !heat_contains(m->c.heat, vi->ino, vi->k) && heat_of(m->c.heat, vi->ino, vi->k) <= vi->heat;
}

/* The next cold chunk of tier tid whose file may go to tier id `to`, not
 * planned yet; 0 if none. */
static int next_victim(struct silt_migrate *m, int tid, int to, uint64_t *ino, uint64_t *k)
{
	struct victims *vs = &m->vict[tid];

	for (int scans = 0; scans < 2; scans++) {
		while (vs->next < vs->n) {
			const struct victim *vi = &vs->v[vs->next++];
			*ino = vi->ino;
			*k = vi->k;
			if (!(vi->allowed & (1u << to)) || !still_cold(m, vi))
				continue; /* its file must stay above, or it is hot since the scan */
			if (plan_claim(m, *ino, *k))
				return 1;
		}
		scan_victims(m, tid);
	}
	return 0;
}

/* The heat of tier tid's coldest chunk not planned yet (UINT_MAX: none). */
static unsigned victim_heat(struct silt_migrate *m, int tid)
{
	struct victims *vs = &m->vict[tid];

	while (vs->next < vs->n && !still_cold(m, &vs->v[vs->next]))
		vs->next++; /* (found again by a later scan if it cools) */
	if (vs->next >= vs->n)
		scan_victims(m, tid);
	return vs->next < vs->n ? vs->v[vs->next].heat : UINT_MAX;
}

struct tier_room {
	int64_t room[SILT_MAX_TIERS];  /* chunks each tier (by order) may still take under its high wm */
	int64_t spare[SILT_MAX_TIERS]; /* ... and up to its capacity */
	int64_t over[SILT_MAX_TIERS];  /* chunks above its low wm once the high wm is crossed */
	uint64_t caps[SILT_MAX_TIERS];
	int usable[SILT_MAX_TIERS];    /* takes chunks: active, not failed */
};

static void measure(struct silt_migrate *m, struct tier_room *tr)
{
	uint32_t cs = m->c.layout->chunk_size;

	for (int i = 0; i < m->c.ntiers; i++) {
		struct tier_stats st;
		tier_get_stats(m->c.order[i], &st);
		uint64_t hw = st.capacity / 100 * st.high_wm / cs, lw = st.capacity / 100 * st.low_wm / cs;
		int ok = tr->usable[i] = tier_usable(m->c.order[i]);
		tr->caps[i] = ok ? hw : 0;
		uint64_t held = st.used / cs; /* in slots: compressed chunks take less */
		tr->room[i] = ok ? (int64_t)hw - (int64_t)held : 0;
		tr->spare[i] = ok ? (int64_t)(st.capacity / cs) - (int64_t)held : 0;
		tr->over[i] = ok && held > hw ? (int64_t)(held - lw) : 0;
	}
}

/* A demotion of a cold chunk of tier index t to the next tier with room. */
static int plan_demotion(struct silt_migrate *m, struct tier_room *tr, int t)
{
	uint64_t ino, k;

	for (int d = t + 1; d < m->c.ntiers; d++) {
		if (!tr->usable[d] || (tr->room[d] <= 0 && d != m->c.ntiers - 1))
			continue;
		if (!next_victim(m, tier_id(m->c.order[t]), tier_id(m->c.order[d]), &ino, &k))
			continue; /* none that may go there: the next tier down */
		if (plan_full(m))
			return 0;
		m->plan[m->nplan++] = (struct move){ .ino = ino, .k = k, .from = tier_id(m->c.order[t]),
						     .to = tier_id(m->c.order[d]), .over_wm = 1 };
		tr->room[t]++;
		tr->room[d]--;
		tr->spare[t]++;
		tr->spare[d]--;
		return 1;
	}
	return 0;
}

/* The tier index nearest to d (slower first) that the bound allows and
 * that takes chunks; -1 if none. */
static int clamp_to_bound(struct silt_migrate *m, uint8_t allowed, int d)
{
	int n = m->c.ntiers;

	for (int dist = 0; dist < n; dist++)
		for (int s = 1; s >= -1; s -= 2) {
			int i = d + s * dist;
			if (i >= 0 && i < n && (allowed & (1u << tier_id(m->c.order[i]))) && tier_usable(m->c.order[i]))
				return i;
			if (!dist)
				break;
		}
	return -1;
}

static void plan_policy(struct silt_migrate *m, struct tier_room *tr)
{
	uint64_t *keys = m->hot_keys;
	int n = m->c.ntiers, full[SILT_MAX_TIERS] = { 0 };

	long nhot = heat_place(m->c.heat, tr->caps, (unsigned)(n - 1), keys, m->hot_tiers, HOT_MAX);
	for (long i = 0; i < nhot && !plan_full(m); i++) {
		uint64_t ino = PRED_KEY_FILE(keys[i]), k = PRED_KEY_CHUNK(keys[i]);
		int d = clamp_to_bound(m, bounds_allowed(m->c.bounds, ino), m->hot_tiers[i]);
		struct cmap_file *cf;
		uint8_t e;
		if (d < 0 || d >= n - 1 || full[d] || !(cf = file_ref(m, ino)) || !(e = cmap_get(cf, k)))
			continue;
		int c = m->idx_of_id[cm_tier(e)];
		if (c <= d)
			continue; /* where it belongs, or faster */
		unsigned h = heat_of(m->c.heat, ino, k);
		if (h < PROMOTE_MIN_HEAT ||
		    (tr->room[d] <= 0 && victim_heat(m, tier_id(m->c.order[d])) >= h))
			continue; /* not worth its move (yet) */
		if (tr->room[d] <= 0 && !plan_demotion(m, tr, d)) {
			full[d] = 1; /* nothing colder to make room with */
			continue;
		}
		if (add_move(m, ino, k, cm_tier(e), tier_id(m->c.order[d]), 1, 0, 0)) {
			tr->room[d]--;
			tr->room[c]++;
		}
	}
	/* tiers above their high watermark drain to the low one, coldest first */
	for (int t = 0; t < n - 1; t++)
		for (int64_t i = 0; i < tr->over[t] && !plan_full(m); i++)
			if (!plan_demotion(m, tr, t))
				break;
}

/* The tier index for a chunk leaving tier index `from` that takes it now:
 * inside the file's bound when any tier there has room, nearest in speed
 * (slower first), under the high watermark before up to capacity; -1 if
 * none. Counts the chunk in. */
static int dest_for(struct silt_migrate *m, struct tier_room *tr, uint8_t allowed, int from)
{
	int n = m->c.ntiers;

	for (int pass = 0; pass < 4; pass++) {
		uint8_t mask = pass < 2 ? allowed : (uint8_t)~allowed;
		int64_t *room = pass % 2 ? tr->spare : tr->room;
		if (pass >= 2 && allowed == BOUND_ALL)
			break;
		for (int dist = 1; dist < n; dist++)
			for (int s = 1; s >= -1; s -= 2) {
				int i = from + s * dist;
				if (i < 0 || i >= n || !tr->usable[i] || room[i] <= 0 ||
				    !(mask & (1u << tier_id(m->c.order[i]))))
					continue;
				tr->room[i]--;
				tr->spare[i]--;
				return i;
			}
	}
	return -1;
}

/* Chunks outside their file's bound (a pin just set, a spill while the
 * allowed tiers were full) go inside it. A file whose chunks are all
 * inside is settled and not looked at again until its bound changes or a
 * chunk spills; one whose allowed tiers all refuse chunks (evacuated,
 * failed) is left where it is. */
static void plan_bounds(struct silt_migrate *m, struct tier_room *tr)
{
	size_t n = bounds_unsettled(m->c.bounds, m->bound_inos, 64);

	for (size_t i = 0; i < n && !plan_full(m); i++) {
		uint64_t ino = m->bound_inos[i];
		struct file_bound fb;
		struct cmap_file *cf;
		int outside = 0, stuck = 0;
		if (bounds_get(m->c.bounds, ino, &fb) || !(cf = file_ref(m, ino)))
			continue;
		for (uint64_t k = cmap_next_mapped(cf, 0); k != UINT64_MAX && !plan_full(m);
		     k = cmap_next_mapped(cf, k + 1)) {
			int tid = cm_tier(cmap_get(cf, k));
			if (tid >= SILT_MAX_TIERS || (fb.allowed & (1u << tid)))
				continue;
			outside++;
			int c = m->idx_of_id[tid], d = clamp_to_bound(m, fb.allowed, c);
			if (d < 0 || d == c) {
				stuck = 1; /* no allowed tier takes chunks now */
				break;
			}
			if (tr->spare[d] <= 0)
				break; /* no room there yet: the next epoch */
			if (add_move(m, ino, k, tid, tier_id(m->c.order[d]), d < c, 1, 0)) {
				tr->room[d]--;
				tr->spare[d]--;
				tr->room[c]++;
				tr->spare[c]++;
			}
		}
		if (!outside || stuck)
			bounds_settle(m->c.bounds, ino, 1);
	}
}

static int evac_left(struct silt_migrate *m, int tid)
{
	struct tier_stats st;
	tier_get_stats(m->c.by_id[tid], &st);
	return st.chunks > 0;
}

/* The chunks of the tier being evacuated, from a cursor in the store's
 * chunk map, each to the nearest tier that takes it. */
static void plan_evacuation(struct silt_migrate *m, struct tier_room *tr)
{
	int tid = atomic_load(&m->evac_tid);
	struct meta_iter *it;
	const char *k, *v;
	size_t kl, vl, seen = 0;
	int r = 1;

	if (tid < 0 || !(it = meta_iter_new(m->c.meta, CF_CHUNKS, "", 0)))
		return;
	meta_iter_start_at(it, m->evac_cursor, 16);
	while (!plan_full(m) && seen++ < SCAN_MAX && (r = meta_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		if (kl != 16 || vl < 1 || (uint8_t)v[0] != tid)
			continue;
		uint64_t ino = silt_get_be64((const uint8_t *)k), ck = silt_get_be64((const uint8_t *)k + 8);
		int from = m->idx_of_id[tid], d = dest_for(m, tr, bounds_allowed(m->c.bounds, ino), from);
		if (d < 0)
			break; /* the others are full: the next epoch finds room, or cancel */
		memcpy(m->evac_cursor, k, 16);
		if (!add_move(m, ino, ck, tid, tier_id(m->c.order[d]), d < from, 1, 1)) {
			tr->room[d]++;
			tr->spare[d]++;
		}
	}
	if (r == 0) /* the end: start over (moves that raced are found again) */
		memset(m->evac_cursor, 0, sizeof(m->evac_cursor));
	meta_iter_free(it);
}

/* Tests: every chunk to the next tier (round robin), as far as room allows. */
static void plan_churn(struct silt_migrate *m)
{
	struct meta_iter *it = meta_iter_new(m->c.meta, CF_CHUNKS, "", 0);
	const char *k, *v;
	size_t kl, vl;
	int r;

	if (!it)
		return;
	meta_iter_start_at(it, m->churn_cursor, 16);
	while (!plan_full(m) && (r = meta_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		if (kl != 16 || vl < 1 || (uint8_t)v[0] >= SILT_MAX_TIERS || !m->c.by_id[(uint8_t)v[0]])
			continue;
		int from = (uint8_t)v[0], to = tier_id(m->c.order[(m->idx_of_id[from] + 1) % m->c.ntiers]);
		memcpy(m->churn_cursor, k, 16);
		add_move(m, silt_get_be64((const uint8_t *)k), silt_get_be64((const uint8_t *)k + 8), from, to,
			 m->idx_of_id[to] < m->idx_of_id[from], 0, 0);
	}
	if (r == 0) /* the end: start over */
		memset(m->churn_cursor, 0, sizeof(m->churn_cursor));
	meta_iter_free(it);
}

/* ---- carrying moves out ---- */

/* Can the move start: the chunk still where the plan saw it, room on the
 * new tier, no write in flight on it. Takes the reservation and the watch. */
static int move_begin(struct silt_migrate *m, struct move *mv)
{
	int r;

	mv->ok = 0;
	if (!(mv->cf = file_ref(m, mv->ino)))
		return -ENOENT;
	mv->entry = cmap_get(mv->cf, mv->k);
	if (!mv->entry || cm_tier(mv->entry) != mv->from || tier_failed(m->c.by_id[mv->from]))
		return -ESTALE;
	if (mv->evac && atomic_load(&m->evac_tid) != mv->from)
		return -ECANCELED;
	if ((r = tier_reserve(m->c.by_id[mv->to], mv->over_wm)))
		return r;
	/* the batch's earlier moves hold their pins: never wait at a gate */
	if ((r = cmap_pin_more(m->c.cmap, mv->cf, mv->k, mv->k, CMAP_READ, &mv->pin))) {
		tier_release(m->c.by_id[mv->to], 1);
		return r;
	}
	cmap_watch(m->c.cmap, mv->cf, mv->k, &mv->w);
	if (cmap_get(mv->cf, mv->k) != mv->entry) {
		r = -ESTALE;
	} else if (!(r = cmap_watch_gen(m->c.cmap, &mv->w, &mv->gen))) {
		mv->ok = 1;
		return 0;
	}
	cmap_unpin(m->c.cmap, &mv->pin);
	cmap_unwatch(m->c.cmap, &mv->w);
	tier_release(m->c.by_id[mv->to], 1);
	return r;
}

/* A move that could not finish: its copy goes, its reservation too. The
 * caller holds a pin on the chunk; should the chunk live on the
 * destination tier again (freed and placed anew since), the slot is its. */
static void move_abandon(struct silt_migrate *m, struct move *mv)
{
	if (cm_tier(cmap_get(mv->cf, mv->k)) != mv->to)
		tfiles_punch(cmap_files(mv->cf), m->c.layout, m->c.by_id[mv->to], mv->k, 0,
			     m->c.layout->chunk_size);
	tier_release(m->c.by_id[mv->to], 1);
	mv->ok = 0;
}

/* Under a SWITCH pin: no write, no other home change since the copy began
 * (else the move is dropped: the plan will find the chunk again). */
static int move_switch(struct silt_migrate *m, struct move *mv)
{
	struct cmap_pin pin;
	struct cmap_txn t;
	int r = cmap_pin(m->c.cmap, mv->cf, mv->k, mv->k, CMAP_SWITCH, &pin);

	if (r)
		return r;
	if (cmap_pin_gen(m->c.cmap, &pin) != mv->gen || cmap_get(mv->cf, mv->k) != mv->entry) {
		r = -EAGAIN;
		move_abandon(m, mv);
	} else {
		struct meta_batch *b = meta_batch_new();
		struct change ch = { .kind = CHANGE_MAP, .ino = mv->ino, .first = mv->k, .last = mv->k };
		if (!b)
			r = -ENOMEM;
		cmap_txn_begin(m->c.cmap, &t, mv->cf, b);
		if (!r && !(r = cmap_txn_move(&t, mv->k, &mv->rec, mv->with_sums ? mv->sums : NULL)) &&
		    !(r = commit_apply(m->c.commit, b, 0, &ch, 1)))
			cmap_txn_publish(&t);
		cmap_txn_end(&t);
		meta_batch_free(b);
		if (r)
			move_abandon(m, mv);
	}
	cmap_unpin(m->c.cmap, &pin);
	return r;
}

/* Old slots of switched moves (ours and write-promote's), once the switch
 * is durable: punch them, and forget their intents. */
static void settle_deferred(struct silt_migrate *m)
{
	struct cmap_deferred d[256];
	long n;

	while ((n = cmap_take_deferred(m->c.cmap, d, 256)) > 0) {
		struct meta_batch *b = meta_batch_new();
		if (!b || commit_sync(m->c.commit)) { /* not durable: leave the slots be */
			meta_batch_free(b);
			return;
		}
		for (long i = 0; i < n; i++) {
			struct cmap_file *cf = file_ref(m, d[i].ino);
			struct move mv = { .ino = d[i].ino, .k = d[i].k };
			if (cf)
				cmap_punch_deferred(m->c.cmap, cf, &d[i]);
			stage_intent(m, b, &mv, 0);
		}
		commit_internal(m->c.commit, b, 0);
		meta_batch_free(b);
	}
}

static void count_done(struct silt_migrate *m, const struct move *mv)
{
	atomic_fetch_add(&m->moved, 1);
	atomic_fetch_add(&m->moved_bytes, m->c.layout->chunk_size);
	atomic_fetch_add(mv->promote ? &m->promoted : &m->demoted, 1);
}

static int cmp_move(const void *a, const void *b)
{
	const struct move *x = a, *y = b;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->k < y->k ? -1 : x->k > y->k;
}

/* Drop the moves that began, after their intents could not be written. */
static void unbegin(struct silt_migrate *m, struct move *mv, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (mv[i].ok) {
			cmap_unpin(m->c.cmap, &mv[i].pin);
			cmap_unwatch(m->c.cmap, &mv[i].w);
			tier_release(m->c.by_id[mv[i].to], 1);
			mv[i].ok = 0;
		}
}

/* The copy of a begun move, under its READ pin: read, write, make durable. */
static void copy_one(struct silt_migrate *m, struct move *mv)
{
	int r, bad;

	if ((r = chunk_read_whole(&m->io, m->ctx, mv->cf, mv->k, mv->entry, mv->buf, &bad)) ||
	    (r = chunk_write_whole(&m->io, m->ctx, mv->cf, mv->k, mv->to, mv->buf, &mv->rec, mv->sums,
				   &mv->with_sums)) ||
	    (r = tfiles_sync(cmap_files(mv->cf), 1u << mv->to, m->c.by_id))) {
		if (tier_io_error(r))
			log_warn("inode %llu chunk %llu: moving it from %s to %s failed: %s",
				 (unsigned long long)mv->ino, (unsigned long long)mv->k,
				 tier_name(m->c.by_id[mv->from]), tier_name(m->c.by_id[mv->to]), strerror(-r));
		atomic_fetch_add(&m->failed, 1);
		move_abandon(m, mv);
	}
	cmap_unpin(m->c.cmap, &mv->pin);
}

/* One batch: intents, copies, switches, then the WAL sync that lets the
 * sources go (settle_deferred). */
static void run_batch(struct silt_migrate *m, struct move *mv, unsigned n)
{
	struct meta_batch *b = meta_batch_new();
	int r;

	if (!b)
		return;
	qsort(mv, n, sizeof(*mv), cmp_move); /* the order pins are taken in */
	for (unsigned i = 0; i < n; i++) {
		mv[i].buf = m->bufs + (size_t)i * m->c.layout->chunk_size;
		mv[i].sums = m->sums + (size_t)i * MAX_SUMS;
		if ((r = move_begin(m, &mv[i])) == 0)
			stage_intent(m, b, &mv[i], 1);
		else if (r == -EBUSY || r == -EAGAIN)
			atomic_fetch_add(&m->raced, 1);
	}
	r = commit_internal(m->c.commit, b, 0);
	meta_batch_free(b);
	if (r) {
		unbegin(m, mv, n);
		return;
	}
	for (unsigned i = 0; i < n; i++)
		if (mv[i].ok)
			copy_one(m, &mv[i]);
	for (unsigned i = 0; i < n; i++) {
		if (!mv[i].ok)
			continue;
		if ((r = move_switch(m, &mv[i]))) /* it abandoned the move */
			atomic_fetch_add(r == -EAGAIN ? &m->raced : &m->failed, 1);
		else
			count_done(m, &mv[i]);
	}
	/* abandoned moves' intents go now; switched ones' once their sources
	 * are punched (settle_deferred, after the WAL sync) */
	if ((b = meta_batch_new())) {
		for (unsigned i = 0; i < n; i++)
			if (mv[i].w.l && !mv[i].ok)
				stage_intent(m, b, &mv[i], 0);
		commit_internal(m->c.commit, b, 0);
		meta_batch_free(b);
	}
	for (unsigned i = 0; i < n; i++)
		if (mv[i].w.l)
			cmap_unwatch(m->c.cmap, &mv[i].w);
	settle_deferred(m);
}

/* ---- pace ---- */

/* Foreground I/O per second since the last look, and whether that is busy. */
static void look_at_foreground(struct silt_migrate *m, uint64_t now)
{
	uint64_t ops = atomic_load(m->c.fg_ops[0]) + atomic_load(m->c.fg_ops[1]);
	double dt = (double)(now - m->last_ns) / 1e9;

	if (dt < 0.05)
		return;
	atomic_store(&m->busy, (double)(ops - m->last_ops) / dt > BUSY_OPS_PER_S);
	m->tokens += dt * (double)(atomic_load(&m->busy) ? m->c.busy_rate : m->c.rate);
	double cap = (double)m->c.rate / 4 + (double)m->batch * m->c.layout->chunk_size;
	if (m->tokens > cap)
		m->tokens = cap;
	m->last_ns = now;
	m->last_ops = ops;
}

/* Wait until the pace allows `bytes` more; 0, or 1 when stopping. */
static int pace(struct silt_migrate *m, uint64_t bytes)
{
	for (;;) {
		look_at_foreground(m, now_ns());
		if (m->tokens >= (double)bytes) {
			m->tokens -= (double)bytes;
			return 0;
		}
		pthread_mutex_lock(&m->lock);
		int stop = m->stopping;
		if (!stop) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 20 * 1000000l;
			if (ts.tv_nsec >= 1000000000l) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000l;
			}
			pthread_cond_timedwait(&m->cv, &m->lock, &ts);
			stop = m->stopping;
		}
		pthread_mutex_unlock(&m->lock);
		if (stop)
			return 1;
	}
}

static void note_rate(struct silt_migrate *m)
{
	uint64_t now = now_ns(), bytes = atomic_load(&m->moved_bytes);

	if (now - m->rate_t0 >= 2000000000ull) {
		atomic_store(&m->rate, (uint64_t)((double)(bytes - m->rate_bytes0) * 1e9 / (double)(now - m->rate_t0)));
		m->rate_t0 = now;
		m->rate_bytes0 = bytes;
	}
}

/* ---- evacuation ---- */

/* Record tier tid's state in the store, durably: an evacuation resumes at
 * the next mount, an evacuated tier stays empty. Caller holds evac_lock. */
static int save_state(struct silt_migrate *m, int tid, enum tier_state st)
{
	struct meta_batch *b = meta_batch_new();
	uint8_t key[K_TIERSTATE_LEN];
	struct tier_state_rec rec = { .state = (uint8_t)st, .total = m->evac_total[tid] };
	int r;

	if (!b)
		return -ENOMEM;
	memcpy(key, K_TIERSTATE_PREFIX, sizeof(K_TIERSTATE_PREFIX) - 1);
	key[K_TIERSTATE_LEN - 1] = (uint8_t)tid;
	if (st == TIER_ACTIVE)
		meta_del(b, m->c.meta, CF_FACTS, key, sizeof(key));
	else
		meta_put(b, m->c.meta, CF_FACTS, key, sizeof(key), &rec, sizeof(rec));
	r = commit_internal(m->c.commit, b, 1);
	meta_batch_free(b);
	if (!r)
		tier_set_state(m->c.by_id[tid], st);
	return r;
}

/* At start: the states the last mount left. */
static void load_states(struct silt_migrate *m)
{
	for (int i = 0; i < m->c.ntiers; i++) {
		int tid = tier_id(m->c.order[i]);
		uint8_t key[K_TIERSTATE_LEN];
		char *val;
		size_t len;
		memcpy(key, K_TIERSTATE_PREFIX, sizeof(K_TIERSTATE_PREFIX) - 1);
		key[K_TIERSTATE_LEN - 1] = (uint8_t)tid;
		if (meta_get(m->c.meta, CF_FACTS, key, sizeof(key), &val, &len))
			continue;
		struct tier_state_rec rec = { 0 };
		memcpy(&rec, val, MIN(len, sizeof(rec)));
		free(val);
		if (rec.state != TIER_EVACUATING && rec.state != TIER_EVACUATED)
			continue;
		tier_set_state(m->c.order[i], (enum tier_state)rec.state);
		m->evac_total[tid] = rec.total;
		if (rec.state == TIER_EVACUATING && atomic_load(&m->evac_tid) < 0) {
			atomic_store(&m->evac_tid, tid);
			log_info("tier %s: resuming its evacuation", tier_name(m->c.order[i]));
		}
	}
}

/* After an epoch: the tier being evacuated holds nothing any more. */
static void evac_check_done(struct silt_migrate *m)
{
	pthread_mutex_lock(&m->evac_lock);
	int tid = atomic_load(&m->evac_tid);
	if (tid >= 0 && !evac_left(m, tid) && save_state(m, tid, TIER_EVACUATED) == 0) {
		atomic_store(&m->evac_tid, -1);
		log_info("tier %s is evacuated: its %llu chunks are on the other tiers", tier_name(m->c.by_id[tid]),
			 (unsigned long long)m->evac_total[tid]);
		events_add(m->c.events, EVENT_EVACUATE, "tier %s evacuated: %llu chunks moved off it",
			   tier_name(m->c.by_id[tid]), (unsigned long long)m->evac_total[tid]);
	}
	pthread_mutex_unlock(&m->evac_lock);
}

/* Whether the other usable tiers can take every chunk of tid, up to their
 * capacity; else why not. */
static int evac_fits(struct silt_migrate *m, int tid, char *why, size_t len)
{
	uint32_t cs = m->c.layout->chunk_size;
	struct tier_stats st;
	uint64_t room = 0, need;
	char a[32], b[32];

	tier_get_stats(m->c.by_id[tid], &st);
	need = st.chunks;
	for (int i = 0; i < m->c.ntiers; i++) {
		struct tier_stats o;
		if (tier_id(m->c.order[i]) == tid || !tier_usable(m->c.order[i]))
			continue;
		tier_get_stats(m->c.order[i], &o);
		uint64_t cap = o.capacity / cs, held = (o.used + cs - 1) / cs;
		room += cap > held ? cap - held : 0;
	}
	if (room >= need)
		return 0;
	snprintf(why, len, "tier %s holds %llu chunks (%s) but the other tiers have room for %llu (%s): "
		 "free or add space there first; nothing was moved", st.name, (unsigned long long)need,
		 silt_fmt_size(need * cs, a, sizeof(a)), (unsigned long long)room, silt_fmt_size(room * cs, b, sizeof(b)));
	return -ENOSPC;
}

int migrate_evacuate(struct silt_migrate *m, int tid, char *why, size_t len)
{
	struct silt_tier *t = m->c.by_id[tid];
	int r = 0, cur;

	pthread_mutex_lock(&m->evac_lock);
	cur = atomic_load(&m->evac_tid);
	if (cur == tid || tier_state(t) == TIER_EVACUATED)
		goto out; /* under way, or done: nothing to start */
	if (cur >= 0) {
		snprintf(why, len, "tier %s is being evacuated: let it finish, or cancel it, first",
			 tier_name(m->c.by_id[cur]));
		r = -EBUSY;
	} else if (tier_failed(t)) {
		snprintf(why, len, "tier %s is %s: its chunks cannot be read to move them", tier_name(t),
			 tier_state(t) == TIER_ACTIVE ? "failed or missing" : "failed");
		r = -EIO;
	} else if (!(r = evac_fits(m, tid, why, len))) {
		struct tier_stats st;
		tier_get_stats(t, &st);
		m->evac_total[tid] = st.chunks;
		memset(m->evac_cursor, 0, sizeof(m->evac_cursor));
		if (!(r = save_state(m, tid, TIER_EVACUATING))) {
			atomic_store(&m->evac_tid, tid);
			log_info("tier %s: evacuating its %llu chunks", tier_name(t), (unsigned long long)st.chunks);
			events_add(m->c.events, EVENT_EVACUATE, "evacuation of tier %s started: %llu chunks to move",
				   tier_name(t), (unsigned long long)st.chunks);
		}
	}
out:
	pthread_mutex_unlock(&m->evac_lock);
	if (!r) { /* wake the engine: the evacuation starts now */
		pthread_mutex_lock(&m->lock);
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->lock);
	}
	return r;
}

int migrate_evacuate_cancel(struct silt_migrate *m, int tid, char *why, size_t len)
{
	struct silt_tier *t = m->c.by_id[tid];
	enum tier_state was;
	int r = 0;

	pthread_mutex_lock(&m->evac_lock);
	was = tier_state(t);
	if (was == TIER_ACTIVE) {
		snprintf(why, len, "tier %s is not being evacuated", tier_name(t));
		r = -EINVAL;
	} else if (!(r = save_state(m, tid, TIER_ACTIVE))) {
		if (atomic_load(&m->evac_tid) == tid)
			atomic_store(&m->evac_tid, -1);
		struct tier_stats st;
		tier_get_stats(t, &st);
		log_info("tier %s: evacuation cancelled, %llu chunks left on it; it takes chunks again", tier_name(t),
			 (unsigned long long)st.chunks);
		events_add(m->c.events, EVENT_EVACUATE, "evacuation of tier %s cancelled%s: %llu chunks on it, "
			   "it takes chunks again", tier_name(t), was == TIER_EVACUATED ? " after it ended" : "",
			   (unsigned long long)st.chunks);
		bounds_unsettle_all(m->c.bounds); /* pins to it can be honoured again */
	}
	pthread_mutex_unlock(&m->evac_lock);
	return r;
}

void migrate_evac_stats(struct silt_migrate *m, int tid, struct evac_stats *s)
{
	struct tier_stats st;

	pthread_mutex_lock(&m->evac_lock);
	tier_get_stats(m->c.by_id[tid], &st);
	s->state = tier_state(m->c.by_id[tid]);
	s->running = atomic_load(&m->evac_tid) == tid;
	s->left = st.chunks;
	s->total = MAX(m->evac_total[tid], st.chunks);
	pthread_mutex_unlock(&m->evac_lock);
}

/* ---- epochs ---- */

static long epoch(struct silt_migrate *m, int paced)
{
	enum migrate_mode mode = (enum migrate_mode)atomic_load(&m->mode);
	uint64_t before = atomic_load(&m->moved);

	m->nplan = m->npromos = 0;
	memset(m->planned_keys, 0, sizeof(m->planned_keys));
	if (m->c.ntiers > 1) {
		struct tier_room tr;
		measure(m, &tr);
		/* what the operator asked for goes first, in every mode */
		plan_bounds(m, &tr);
		plan_evacuation(m, &tr);
		heat_sync(m->c.heat);
		if (mode == MIGRATE_CHURN)
			plan_churn(m);
		else if (mode == MIGRATE_POLICY)
			plan_policy(m, &tr);
		memcpy(&m->plan[m->nplan], m->promos, m->npromos * sizeof(m->promos[0]));
		m->nplan += m->npromos;
	}
	atomic_store(&m->pending, m->nplan);
	for (unsigned i = 0; i < m->nplan; i += m->batch) {
		unsigned n = MIN(m->batch, m->nplan - i);
		if (paced && pace(m, (uint64_t)n * m->c.layout->chunk_size))
			break;
		run_batch(m, &m->plan[i], n);
		atomic_store(&m->pending, m->nplan - i - n);
		note_rate(m);
	}
	atomic_store(&m->pending, 0);
	settle_deferred(m); /* write-promote's old slots, even without moves */
	files_release(m);
	evac_check_done(m);
	atomic_fetch_add(&m->epochs, 1);
	return (long)(atomic_load(&m->moved) - before);
}

long migrate_run_epoch(struct silt_migrate *m)
{
	pthread_mutex_lock(&m->run_lock);
	long r = epoch(m, 0);
	pthread_mutex_unlock(&m->run_lock);
	return r;
}

static void *engine(void *arg)
{
	struct silt_migrate *m = arg;

	pthread_setname_np(pthread_self(), "silt-migrate");
	pthread_mutex_lock(&m->lock);
	while (!m->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		/* an evacuation goes on epoch after epoch (its moves are paced) */
		uint32_t ms = atomic_load(&m->evac_tid) >= 0 ? MIN(m->c.epoch_ms, 50u) : m->c.epoch_ms;
		uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)ms * 1000000ull;
		ts.tv_sec += (time_t)(ns / 1000000000ull);
		ts.tv_nsec = (long)(ns % 1000000000ull);
		pthread_cond_timedwait(&m->cv, &m->lock, &ts);
		if (m->stopping)
			break;
		pthread_mutex_unlock(&m->lock);
		pthread_mutex_lock(&m->run_lock);
		epoch(m, 1);
		pthread_mutex_unlock(&m->run_lock);
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int migrate_start(const struct migrate_conf *c, struct silt_migrate **out)
{
	struct silt_migrate *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	m->c = *c;
	m->io = (struct chunkio){ .cm = c->cmap, .layout = c->layout, .by_id = c->by_id, .zlevel = c->zlevel };
	m->batch = MIN(BATCH, MAX(1u, BATCH_BYTES / c->layout->chunk_size));
	for (int i = 0; i < c->ntiers; i++)
		m->idx_of_id[tier_id(c->order[i])] = i;
	atomic_init(&m->mode, c->mode);
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cv, NULL);
	pthread_mutex_init(&m->run_lock, NULL);
	pthread_mutex_init(&m->evac_lock, NULL);
	atomic_init(&m->evac_tid, -1);
	load_states(m);
	m->last_ns = m->rate_t0 = now_ns();
	if ((r = silt_ioctx_new(2 * BATCH, SILT_ALIGN, &m->ctx)) ||
	    !(m->bufs = silt_aligned_alloc((size_t)m->batch * c->layout->chunk_size)) ||
	    !(m->sums = calloc((size_t)m->batch * MAX_SUMS, sizeof(*m->sums)))) {
		migrate_stop(m);
		return r ? r : -ENOMEM;
	}
	if (c->epoch_ms && (r = -pthread_create(&m->thread, NULL, engine, m))) {
		migrate_stop(m);
		return r;
	}
	m->started = c->epoch_ms != 0;
	*out = m;
	return 0;
}

void migrate_stop(struct silt_migrate *m)
{
	if (!m)
		return;
	if (m->started) {
		pthread_mutex_lock(&m->lock);
		m->stopping = 1;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
	}
	/* write-promote's last old slots */
	pthread_mutex_lock(&m->run_lock);
	settle_deferred(m);
	files_release(m);
	pthread_mutex_unlock(&m->run_lock);
	silt_ioctx_free(m->ctx);
	free(m->bufs);
	free(m->sums);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->run_lock);
	pthread_mutex_destroy(&m->evac_lock);
	free(m);
}

void migrate_set_mode(struct silt_migrate *m, enum migrate_mode mode)
{
	atomic_store(&m->mode, mode);
}

void migrate_stats(struct silt_migrate *m, struct migrate_stats *s)
{
	s->mode = (enum migrate_mode)atomic_load(&m->mode);
	s->epochs = atomic_load(&m->epochs);
	s->pending = atomic_load(&m->pending);
	s->pending_bytes = s->pending * m->c.layout->chunk_size;
	s->moved = atomic_load(&m->moved);
	s->moved_bytes = atomic_load(&m->moved_bytes);
	s->promoted = atomic_load(&m->promoted);
	s->demoted = atomic_load(&m->demoted);
	s->raced = atomic_load(&m->raced);
	s->failed = atomic_load(&m->failed);
	s->rate = atomic_load(&m->rate);
	s->busy = atomic_load(&m->busy);
}

/* ---- write-promote ---- */

int migrate_promote(struct silt_migrate *m, struct silt_ioctx *ctx, struct cmap_file *cf, uint64_t k, int to)
{
	const struct layout *l = m->c.layout;
	uint8_t e = cmap_get(cf, k);
	char *buf = silt_ioctx_scratch(ctx, 1, l->chunk_size);
	struct block_sum sums[MAX_SUMS];
	struct move mv = { .k = k, .from = cm_tier(e), .to = to, .promote = 1, .cf = cf, .sums = sums };
	struct cmap_txn t;
	int r;

	if (!e || mv.from == to)
		return 0;
	if (!buf)
		return -ENOMEM;
	if ((r = tier_reserve(m->c.by_id[to], 0)))
		return r;
	int bad;
	if ((r = chunk_read_whole(&m->io, ctx, cf, k, e, buf, &bad)) ||
	    (r = chunk_write_whole(&m->io, ctx, cf, k, to, buf, &mv.rec, mv.sums, &mv.with_sums))) {
		move_abandon(m, &mv);
		return r;
	}
	struct meta_batch *b = meta_batch_new();
	struct change ch = { .kind = CHANGE_MAP, .ino = cmap_file_ino(cf), .first = k, .last = k };
	mv.ino = ch.ino;
	if (!b) {
		move_abandon(m, &mv);
		return -ENOMEM;
	}
	cmap_txn_begin(m->c.cmap, &t, cf, b);
	stage_intent(m, b, &mv, 1); /* the old copy goes once this is durable */
	if (!(r = cmap_txn_move(&t, k, &mv.rec, mv.with_sums ? mv.sums : NULL)) &&
	    !(r = commit_apply(m->c.commit, b, 0, &ch, 1))) {
		cmap_txn_publish(&t);
		tfiles_mark_dirty(cmap_files(cf), to);
		count_done(m, &mv);
	} else {
		move_abandon(m, &mv);
	}
	cmap_txn_end(&t);
	meta_batch_free(b);
	return r;
}
