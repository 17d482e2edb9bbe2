/* The replication journal (journal.h).
 *
 * Records in CF_JOURNAL (keys big-endian, so that a scan walks them in
 * order):
 *
 *   "e" seq ino first        -> last, flags      an entry of batch seq
 *   "n"                      -> next open seq    written at every cut
 *   "a" peer                 -> acked seq        per peer
 *   "d" len peer ino first   -> last, flags, stamp  a peer's dirty set
 *   "f" peer                 -> ino, chunk       a peer owes a full sync (from there)
 *   "r" peer                 -> seq              the peer's position at its first fold
 *   "g"                      -> (epoch, upto)*   the volume's generations
 *   "l" ino extent           -> ""               the activity log (below)
 *
 * Entries of metadata changes go into the change's own batch (stage()), so
 * they are exactly as durable as the change. Data overwritten in place has
 * no batch: the first note of a chunk in an open batch is remembered in
 * memory (the pending list) and later notes of it only look it up there.
 * A store commit per note would be one WAL write per guest write, on the
 * I/O completion path (a 4 KiB random write load lost a quarter of its
 * IOPS to it), so pending notes reach the store in bulk: at the cut, in
 * the commit that opens the next batch; when the list fills; and before
 * every WAL sync (the commit point's flush hook: an fsync covers them).
 *
 * What a kill -9 loses of the pending list the activity log brings back,
 * as DRBD's does: before the first pending note of an extent (AL_CHUNKS
 * chunks of an inode) the extent's "l" key goes to the store, and the
 * bulk write of the notes deletes the keys again. A journal that opens
 * with "l" keys left turns each into an entry for the whole extent, so the
 * peers get at most AL_CHUNKS - 1 chunks too many, never one too few. That
 * is one store write per extent and bulk write instead of one per chunk,
 * and under the same guarantee as before: unsynced, like every other WAL
 * write of the volume, which survives kill -9. The cut takes the
 * write side of a reader-writer lock that every stage()..done() and note
 * holds for reading: once it has it, no entry of the closing batch is still
 * on its way to the store. The lock prefers the writer, so a stream of
 * commits cannot starve the cut; no thread takes it twice. */
#include "sync/journal.h"
#include "fs/meta/commit.h"
#include "fs/meta/meta.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define SHARDS 16
#define SLOTS 4096 /* per shard: entries remembered per open batch */
#define EKEY_LEN 25
#define MAXPEER 8
#define PEND_MAX 8192   /* pending notes before they go to the store in bulk */
#define AL_CHUNKS 64    /* chunks of an activity log extent */
#define AL_SLOTS 4096   /* extents logged between bulk writes (half of them) */
#define LKEY_LEN 17

struct slot {
	uint64_t ino, first;
	unsigned flags;      /* 0: an empty slot */
};

struct shard {
	pthread_mutex_t lock;
	unsigned used;
	struct slot s[SLOTS];
};

struct sync_journal {
	struct journal_conf c;
	pthread_rwlock_t cut_lock;       /* read: adding entries; write: the cut */
	_Atomic uint64_t open_seq;       /* entries go into this batch */
	_Atomic uint64_t changed;        /* entries added to the open batch */
	_Atomic uint64_t first_change_ns; /* when the open batch got its first entry */
	_Atomic uint64_t entries;        /* "e" keys in the store (approximately: stage duplicates) */
	_Atomic uint64_t noted, recorded, folds;
	uint64_t acked[MAXPEER];
	_Atomic uint64_t dirty[MAXPEER]; /* keys in each dirty set */
	/* A fold stamps every dirty key it writes, so that a resync that read
	 * a key drops it only if no fold rewrote it since (another peer's
	 * sender may fold this peer while it resyncs) */
	uint64_t stamp;
	pthread_mutex_t peer_lock;       /* acked[], dirty set changes, stamp */
	struct shard *shards;
	/* notes of the open batch not in the store yet, and the activity log
	 * extents that stand for them there (ino 0: an empty slot) */
	pthread_mutex_t pend_lock;
	struct journal_entry *pend;
	_Atomic size_t npend;            /* written under pend_lock; counted by the bound */
	struct { uint64_t ino, ext; } *al;
	size_t nal;
};

/* ---- keys ---- */

static void ekey(uint8_t k[EKEY_LEN], uint64_t seq, uint64_t ino, uint64_t first)
{
	k[0] = 'e';
	silt_put_be64(k + 1, seq);
	silt_put_be64(k + 9, ino);
	silt_put_be64(k + 17, first);
}

static size_t pkey(uint8_t *k, char tag, const char *peer)
{
	size_t n = strlen(peer);
	k[0] = (uint8_t)tag;
	k[1] = (uint8_t)n;
	memcpy(k + 2, peer, n);
	return 2 + n;
}

static size_t dkey(uint8_t *k, const char *peer, uint64_t ino, uint64_t first)
{
	size_t n = pkey(k, 'd', peer);
	silt_put_be64(k + n, ino);
	silt_put_be64(k + n + 8, first);
	return n + 16;
}

static void eval(uint8_t v[9], uint64_t last, unsigned flags)
{
	silt_put_be64(v, last);
	v[8] = (uint8_t)flags;
}

#define DVAL_LEN 17 /* a dirty key's value: an entry's, and the fold's stamp */

static int get_u64(struct silt_meta *m, const void *k, size_t kl, uint64_t *out)
{
	char *v;
	size_t vl;
	int r = meta_get(m, CF_JOURNAL, k, kl, &v, &vl);
	if (r)
		return r;
	if (vl != 8) {
		free(v);
		return -EUCLEAN;
	}
	*out = silt_get_be64((uint8_t *)v);
	free(v);
	return 0;
}

static void put_u64(struct meta_batch *b, struct silt_meta *m, const void *k, size_t kl, uint64_t v)
{
	uint8_t buf[8];
	silt_put_be64(buf, v);
	meta_put(b, m, CF_JOURNAL, k, kl, buf, 8);
}

static void lkey(uint8_t k[LKEY_LEN], uint64_t ino, uint64_t ext)
{
	k[0] = 'l';
	silt_put_be64(k + 1, ino);
	silt_put_be64(k + 9, ext);
}

/* ---- the set of the open batch ---- */

static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull);
	h ^= h >> 31;
	h *= 0xBF58476D1CE4E5B9ull;
	return h ^ (h >> 29);
}

/* Flags the open batch already has for (ino, first), adding want to them.
 * Returns the flags that were missing (0: nothing to record). A full shard
 * remembers nothing more: the entry is then written again, which is only
 * redundant. Caller holds the shard lock. */
static unsigned set_add(struct shard *sh, uint64_t h, uint64_t ino, uint64_t first, unsigned want)
{
	for (unsigned i = 0; i < 64; i++) {
		struct slot *s = &sh->s[(h + i) & (SLOTS - 1)];
		if (!s->flags) { /* every slot in use has a flag */
			if (sh->used >= SLOTS / 2)
				return want;
			*s = (struct slot){ .ino = ino, .first = first, .flags = want };
			sh->used++;
			return want;
		}
		if (s->ino == ino && s->first == first) {
			unsigned missing = want & ~s->flags;
			s->flags |= want;
			return missing;
		}
	}
	return want;
}

/* Flags the open batch has for (ino, first). Caller holds the shard lock. */
static unsigned set_has(struct shard *sh, uint64_t h, uint64_t ino, uint64_t first)
{
	for (unsigned i = 0; i < 64; i++) {
		struct slot *s = &sh->s[(h + i) & (SLOTS - 1)];
		if (!s->flags)
			return 0;
		if (s->ino == ino && s->first == first)
			return s->flags;
	}
	return 0;
}

static void set_clear(struct sync_journal *j)
{
	for (int i = 0; i < SHARDS; i++) {
		struct shard *sh = &j->shards[i];
		if (sh->used) {
			memset(sh->s, 0, sizeof(sh->s));
			sh->used = 0;
		}
	}
}

/* ---- recording (commit point callbacks) ---- */

static void mark_changed(struct sync_journal *j)
{
	if (atomic_fetch_add_explicit(&j->changed, 1, memory_order_relaxed) == 0)
		atomic_store_explicit(&j->first_change_ns, silt_now_ns(), memory_order_relaxed);
}

static void put_entry(struct sync_journal *j, struct meta_batch *b, uint64_t seq, uint64_t ino,
		      uint64_t first, uint64_t last, unsigned flags)
{
	uint8_t k[EKEY_LEN], v[9];
	ekey(k, seq, ino, first);
	eval(v, last, flags);
	meta_put(b, j->c.meta, CF_JOURNAL, k, sizeof(k), v, sizeof(v));
	atomic_fetch_add_explicit(&j->entries, 1, memory_order_relaxed);
	mark_changed(j);
}

/* Entries a change stands for: (ino, first, last, flags). Ranges of a
 * single write are at most a few chunks; a truncate of a huge file is one
 * range. */
static unsigned change_entries(const struct change *ch, struct journal_entry out[2])
{
	switch (ch->kind) {
	case CHANGE_NS:
		out[0] = (struct journal_entry){ 0, JE_INODE, JE_INODE, JE_NS };
		out[1] = (struct journal_entry){ ch->ino, JE_INODE, JE_INODE, JE_ATTR };
		return 2;
	case CHANGE_ATTR:
		out[0] = (struct journal_entry){ ch->ino, JE_INODE, JE_INODE, JE_ATTR };
		return 1;
	case CHANGE_MAP:
	case CHANGE_DATA:
		out[0] = (struct journal_entry){ ch->ino, ch->first, MAX(ch->first, ch->last), JE_DATA };
		out[1] = (struct journal_entry){ ch->ino, JE_INODE, JE_INODE, JE_ATTR };
		return ch->kind == CHANGE_MAP ? 2 : 1;
	case CHANGE_EVENT:
	case CHANGE_PLACEMENT:
		/* its own key: an entry of the same batch on the namespace's
		 * would overwrite that one's flags */
		out[0] = (struct journal_entry){ 0, JE_FACTS_KEY, JE_FACTS_KEY, JE_FACTS };
		return 1;
	default:
		return 0; /* the engine's own bookkeeping: nothing a replica sees */
	}
}

/* The shard of (ino, first) and the hash within it. */
static struct shard *shard_of(struct sync_journal *j, uint64_t ino, uint64_t first, uint64_t *h)
{
	uint64_t x = mix(ino, first);
	*h = x / SHARDS;
	return &j->shards[x % SHARDS];
}

/* Entries of a metadata change go into its own batch, unless the open
 * batch already has them: a file that grows by a thousand writes has one
 * attribute entry per batch, not a thousand. They are remembered only once
 * the commit is in (j_done), so a failed commit leaves nothing behind. */
static void j_stage(void *arg, const struct change *ch, unsigned n, struct meta_batch *b)
{
	struct sync_journal *j = arg;
	uint64_t seq;

	pthread_rwlock_rdlock(&j->cut_lock); /* released in j_done */
	seq = atomic_load(&j->open_seq);
	for (unsigned i = 0; i < n; i++) {
		struct journal_entry e[2];
		unsigned ne = change_entries(&ch[i], e);
		for (unsigned x = 0; x < ne; x++) {
			uint64_t h;
			struct shard *sh = shard_of(j, e[x].ino, e[x].first, &h);
			pthread_mutex_lock(&sh->lock);
			unsigned have = set_has(sh, h, e[x].ino, e[x].first);
			pthread_mutex_unlock(&sh->lock);
			/* a range is only known covered if it is the same single chunk */
			if ((have & e[x].flags) == e[x].flags && e[x].first == e[x].last)
				continue;
			put_entry(j, b, seq, e[x].ino, e[x].first, e[x].last, e[x].flags);
		}
	}
}

static void j_done(void *arg, const struct change *ch, unsigned n, int r)
{
	struct sync_journal *j = arg;

	for (unsigned i = 0; i < n && r == 0; i++) {
		struct journal_entry e[2];
		unsigned ne = change_entries(&ch[i], e);
		for (unsigned x = 0; x < ne; x++) {
			uint64_t h;
			if (e[x].first != e[x].last)
				continue; /* ranges: not remembered */
			struct shard *sh = shard_of(j, e[x].ino, e[x].first, &h);
			pthread_mutex_lock(&sh->lock);
			set_add(sh, h, e[x].ino, e[x].first, e[x].flags);
			pthread_mutex_unlock(&sh->lock);
		}
	}
	pthread_rwlock_unlock(&j->cut_lock);
}

/* Forget that the open batch has chunk k of ino, so that the next write
 * of it records it again. */
static void set_forget(struct sync_journal *j, uint64_t ino, uint64_t k)
{
	uint64_t h;
	struct shard *sh = shard_of(j, ino, k, &h);

	pthread_mutex_lock(&sh->lock);
	for (unsigned i = 0; i < 64; i++) {
		struct slot *s = &sh->s[(h + i) & (SLOTS - 1)];
		if (s->ino == ino && s->first == k) {
			s->flags &= ~(unsigned)JE_DATA;
			break;
		}
	}
	pthread_mutex_unlock(&sh->lock);
}

/* ---- pending notes and the activity log (see the top) ---- */

/* Chunk k of ino's extent has its "l" key in the store, or gets it now.
 * The set is never more than half full (note_one writes it out first), so
 * the probe ends on an empty slot. Caller holds pend_lock. */
static int al_cover(struct sync_journal *j, uint64_t ino, uint64_t k)
{
	uint64_t ext = k / AL_CHUNKS, h = mix(ino, ext);
	size_t x = h & (AL_SLOTS - 1);
	uint8_t key[LKEY_LEN];

	for (; j->al[x].ino; x = (x + 1) & (AL_SLOTS - 1))
		if (j->al[x].ino == ino && j->al[x].ext == ext)
			return 0;
	struct meta_batch *b = meta_batch_new();
	if (!b)
		return -ENOMEM;
	lkey(key, ino, ext);
	meta_put(b, j->c.meta, CF_JOURNAL, key, sizeof(key), "", 0);
	int r = meta_commit(j->c.meta, b, 0);
	meta_batch_free(b);
	if (r)
		return r;
	j->al[x].ino = ino; /* inode numbers start at 1: 0 is an empty slot */
	j->al[x].ext = ext;
	j->nal++;
	return 0;
}

/* The pending notes into b as entries of batch seq, the activity log's
 * keys out of it. Caller holds pend_lock; pend_done() follows the commit. */
static void pend_stage(struct sync_journal *j, struct meta_batch *b, uint64_t seq)
{
	uint8_t key[LKEY_LEN];

	for (size_t i = 0; i < j->npend; i++)
		put_entry(j, b, seq, j->pend[i].ino, j->pend[i].first, j->pend[i].first, JE_DATA);
	for (size_t x = 0; x < AL_SLOTS && j->nal; x++)
		if (j->al[x].ino) {
			lkey(key, j->al[x].ino, j->al[x].ext);
			meta_del(b, j->c.meta, CF_JOURNAL, key, sizeof(key));
		}
}

/* After the commit (r) of pend_stage's batch: the list and the log start
 * over. A failed write forgets its notes, so that the next write of those
 * chunks records them again; their "l" keys stay and bring the extents
 * back at the next start. */
static void pend_done(struct sync_journal *j, int r)
{
	if (r) {
		log_warn("replication journal: cannot record %zu chunk writes: %s", j->npend, strerror(-r));
		for (size_t i = 0; i < j->npend; i++)
			set_forget(j, j->pend[i].ino, j->pend[i].first);
	}
	j->npend = 0;
	if (j->nal) {
		memset(j->al, 0, AL_SLOTS * sizeof(j->al[0]));
		j->nal = 0;
	}
}

/* The pending notes into the store now, in batch seq. Caller holds
 * pend_lock and cut_lock (for reading: seq is the open batch). */
static int pend_flush(struct sync_journal *j, uint64_t seq)
{
	if (!j->npend && !j->nal)
		return 0;
	struct meta_batch *b = meta_batch_new();
	if (!b)
		return -ENOMEM;
	pend_stage(j, b, seq);
	int r = meta_commit(j->c.meta, b, 0);
	meta_batch_free(b);
	pend_done(j, r);
	return r;
}

/* A write into chunks that needed no metadata: remembered once per batch,
 * written to the store in bulk. */
static void note_one(struct sync_journal *j, uint64_t seq, uint64_t ino, uint64_t k)
{
	uint64_t h;
	struct shard *sh = shard_of(j, ino, k, &h);
	int r = 0;

	pthread_mutex_lock(&sh->lock);
	unsigned missing = set_add(sh, h, ino, k, JE_DATA);
	pthread_mutex_unlock(&sh->lock);
	if (!missing)
		return;
	pthread_mutex_lock(&j->pend_lock);
	if (j->npend == PEND_MAX || j->nal >= AL_SLOTS / 2)
		r = pend_flush(j, seq);
	if (!r && !(r = al_cover(j, ino, k)))
		j->pend[j->npend++] = (struct journal_entry){ .ino = ino, .first = k, .last = k, .flags = JE_DATA };
	pthread_mutex_unlock(&j->pend_lock);
	atomic_fetch_add_explicit(&j->recorded, 1, memory_order_relaxed);
	if (!r) {
		mark_changed(j);
		return;
	}
	set_forget(j, ino, k);
	log_warn("replication journal: cannot record inode %llu chunk %llu: %s",
		 (unsigned long long)ino, (unsigned long long)k, strerror(-r));
}

/* Before a WAL sync (an fsync, the unmount): the pending notes too. */
static void j_flush(void *arg)
{
	struct sync_journal *j = arg;

	pthread_rwlock_rdlock(&j->cut_lock);
	pthread_mutex_lock(&j->pend_lock);
	pend_flush(j, atomic_load(&j->open_seq)); /* a failure is logged and retried */
	pthread_mutex_unlock(&j->pend_lock);
	pthread_rwlock_unlock(&j->cut_lock);
}

static void j_note(void *arg, const struct change *ch)
{
	struct sync_journal *j = arg;

	if (ch->kind != CHANGE_DATA)
		return;
	atomic_fetch_add_explicit(&j->noted, 1, memory_order_relaxed);
	pthread_rwlock_rdlock(&j->cut_lock);
	uint64_t seq = atomic_load(&j->open_seq);
	for (uint64_t k = ch->first; k <= ch->last; k++)
		note_one(j, seq, ch->ino, k);
	pthread_rwlock_unlock(&j->cut_lock);
}

/* ---- opening ---- */

static int count_prefix(struct silt_meta *m, const void *p, size_t pl, uint64_t *n)
{
	struct meta_iter *it = meta_iter_new(m, CF_JOURNAL, p, pl);
	const char *k, *v;
	size_t kl, vl;
	int r;

	if (!it)
		return -ENOMEM;
	*n = 0;
	while ((r = meta_iter_next(it, &k, &kl, &v, &vl)) == 1)
		(*n)++;
	meta_iter_free(it);
	return r;
}

/* "l" keys a previous run left (it was killed with notes pending): an
 * entry for each whole extent, in the open batch seq. */
static int al_recover(struct sync_journal *j, uint64_t seq)
{
	struct meta_iter *it = meta_iter_new(j->c.meta, CF_JOURNAL, "l", 1);
	struct meta_batch *b = meta_batch_new();
	const char *k, *v;
	size_t kl, vl, n = 0;
	int r = -ENOMEM;

	while (it && b && (r = meta_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		if (kl != LKEY_LEN) {
			log_err("replication journal: an activity log key of %zu bytes (not %d): "
				"the metadata store is damaged", kl, LKEY_LEN);
			r = -EUCLEAN;
			break;
		}
		uint64_t ino = silt_get_be64((const uint8_t *)k + 1), ext = silt_get_be64((const uint8_t *)k + 9);
		put_entry(j, b, seq, ino, ext * AL_CHUNKS, ext * AL_CHUNKS + AL_CHUNKS - 1, JE_DATA);
		meta_del(b, j->c.meta, CF_JOURNAL, k, kl);
		n++;
	}
	meta_iter_free(it);
	if (!r && n && !(r = meta_commit(j->c.meta, b, 0)))
		log_info("replication journal: %zu extents of %d chunks were written before a crash: "
			 "they ship again", n, AL_CHUNKS);
	meta_batch_free(b);
	return r;
}

static int load_state(struct sync_journal *j)
{
	uint64_t next = 1, n;
	int r = get_u64(j->c.meta, "n", 1, &next);

	if (r && r != -ENOENT)
		return r;
	if (r == -ENOENT)
		next = 1;
	for (int p = 0; p < j->c.npeers; p++) {
		uint8_t k[80];
		size_t kl = pkey(k, 'a', j->c.peers[p]);
		r = get_u64(j->c.meta, k, kl, &j->acked[p]);
		if (r == -ENOENT) {
			/* a new peer: it has nothing, it gets everything */
			j->acked[p] = next - 1;
			if ((r = journal_set_full(j, p, 1, 0, 0)) || (r = journal_ack(j, p, next - 1)))
				return r;
		} else if (r) {
			return r;
		}
		next = MAX(next, j->acked[p] + 1);
		kl = pkey(k, 'd', j->c.peers[p]);
		if ((r = count_prefix(j->c.meta, k, kl, &n)))
			return r;
		j->dirty[p] = n;
	}
	atomic_store(&j->open_seq, next);
	/* the open batch may hold entries from before a crash: cut it first */
	atomic_store(&j->changed, 1);
	atomic_store(&j->first_change_ns, silt_now_ns());
	if ((r = count_prefix(j->c.meta, "e", 1, &n)))
		return r;
	atomic_store(&j->entries, n);
	return al_recover(j, next);
}

int journal_open(const struct journal_conf *c, struct sync_journal **out)
{
	struct sync_journal *j = calloc(1, sizeof(*j));
	pthread_rwlockattr_t ra;
	int r;

	if (!j || c->npeers > MAXPEER || !(j->shards = calloc(SHARDS, sizeof(*j->shards))) ||
	    !(j->pend = calloc(PEND_MAX, sizeof(*j->pend))) || !(j->al = calloc(AL_SLOTS, sizeof(*j->al)))) {
		if (j) {
			free(j->shards);
			free(j->pend);
		}
		free(j);
		return c->npeers > MAXPEER ? -E2BIG : -ENOMEM;
	}
	j->c = *c;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&j->cut_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&j->peer_lock, NULL);
	pthread_mutex_init(&j->pend_lock, NULL);
	j->stamp = silt_wall_ns(); /* above any stamp a previous run wrote */
	for (int i = 0; i < SHARDS; i++)
		pthread_mutex_init(&j->shards[i].lock, NULL);
	if ((r = load_state(j))) {
		journal_free(j);
		return r;
	}
	struct commit_sub sub = { .name = "sync-journal", .stage = j_stage, .done = j_done,
				  .note = j_note, .flush = j_flush, .arg = j };
	if ((r = commit_subscribe(c->commit, &sub))) {
		journal_free(j);
		return r;
	}
	*out = j;
	return 0;
}

void journal_free(struct sync_journal *j)
{
	if (!j)
		return;
	free(j->shards);
	free(j->pend);
	free(j->al);
	free(j);
}

/* ---- the sender's side ---- */

uint64_t journal_cut(struct sync_journal *j)
{
	pthread_rwlock_wrlock(&j->cut_lock);
	uint64_t seq = atomic_load(&j->open_seq);
	struct meta_batch *b = atomic_load(&j->changed) ? meta_batch_new() : NULL;
	int r = -ENOMEM;

	if (b) {
		/* the next number is in the WAL before any entry that carries it,
		 * and the closing batch's pending notes with it */
		put_u64(b, j->c.meta, "n", 1, seq + 1);
		pthread_mutex_lock(&j->pend_lock);
		pend_stage(j, b, seq);
		r = meta_commit(j->c.meta, b, 0);
		pend_done(j, r);
		pthread_mutex_unlock(&j->pend_lock);
		meta_batch_free(b);
	}
	if (!r) {
		atomic_store(&j->open_seq, seq + 1);
		atomic_store(&j->changed, 0);
		set_clear(j);
	}
	pthread_rwlock_unlock(&j->cut_lock);
	return r ? seq - 1 : seq; /* nothing changed (or cannot cut): the last cut */
}

uint64_t journal_last_cut(struct sync_journal *j)
{
	return atomic_load(&j->open_seq) - 1;
}

uint64_t journal_acked(struct sync_journal *j, int peer)
{
	pthread_mutex_lock(&j->peer_lock);
	uint64_t a = j->acked[peer];
	pthread_mutex_unlock(&j->peer_lock);
	return a;
}

/* Delete entries of batches every peer has (caller holds peer_lock). */
static int trim(struct sync_journal *j, struct meta_batch *b)
{
	uint64_t min = UINT64_MAX, n = 0;
	uint8_t from[EKEY_LEN], to[EKEY_LEN];

	for (int p = 0; p < j->c.npeers; p++)
		min = MIN(min, j->acked[p]);
	if (min == UINT64_MAX || min == 0)
		return 0;
	/* count what goes, for the bound */
	struct meta_iter *it = meta_iter_new(j->c.meta, CF_JOURNAL, "e", 1);
	const char *k, *v;
	size_t kl, vl;
	int r;
	if (!it)
		return -ENOMEM;
	while ((r = meta_iter_next(it, &k, &kl, &v, &vl)) == 1 && kl == EKEY_LEN &&
	       silt_get_be64((const uint8_t *)k + 1) <= min)
		n++;
	meta_iter_free(it);
	if (r < 0)
		return r;
	ekey(from, 0, 0, 0);
	ekey(to, min + 1, 0, 0);
	meta_del_range(b, j->c.meta, CF_JOURNAL, from, sizeof(from), to, sizeof(to));
	uint64_t cur = atomic_load(&j->entries);
	atomic_store(&j->entries, cur > n ? cur - n : 0);
	return 0;
}

int journal_ack(struct sync_journal *j, int peer, uint64_t seq)
{
	struct meta_batch *b = meta_batch_new();
	uint8_t k[80];
	int r;

	if (!b)
		return -ENOMEM;
	pthread_mutex_lock(&j->peer_lock);
	j->acked[peer] = MAX(j->acked[peer], seq);
	put_u64(b, j->c.meta, k, pkey(k, 'a', j->c.peers[peer]), j->acked[peer]);
	r = trim(j, b);
	if (!r)
		r = meta_commit(j->c.meta, b, 1);
	pthread_mutex_unlock(&j->peer_lock);
	meta_batch_free(b);
	return r;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct journal_entry *x = a, *y = b;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return 0;
}

/* Sort and join: overlapping or adjacent data ranges of one inode become
 * one, attribute entries of one inode one. */
static size_t merge(struct journal_entry *e, size_t n)
{
	size_t o = 0;

	if (!n)
		return 0; /* (e may be NULL: qsort's arguments may not) */
	qsort(e, n, sizeof(*e), cmp_entry);
	for (size_t i = 0; i < n; i++) {
		struct journal_entry *p = o ? &e[o - 1] : NULL;
		if (p && p->ino == e[i].ino &&
		    ((p->first == JE_INODE && e[i].first == JE_INODE) ||
		     (p->first != JE_INODE && e[i].first != JE_INODE && e[i].first <= p->last + 1))) {
			p->last = MAX(p->last, e[i].last);
			p->flags |= e[i].flags;
		} else {
			e[o++] = e[i];
		}
	}
	return o;
}

static int push(struct journal_entry **a, size_t *n, size_t *cap, const struct journal_entry *e)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		struct journal_entry *na = realloc(*a, nc * sizeof(*na));
		if (!na)
			return -ENOMEM;
		*a = na;
		*cap = nc;
	}
	(*a)[(*n)++] = *e;
	return 0;
}

/* An entry (value: last, flags) or a dirty key (and its stamp). */
static int decode_entry(const char *k, size_t kl, const char *v, size_t vl, size_t off,
			struct journal_entry *e)
{
	if (kl != off + 16 || (vl != 9 && vl != DVAL_LEN))
		return -EUCLEAN;
	e->ino = silt_get_be64((const uint8_t *)k + off);
	e->first = silt_get_be64((const uint8_t *)k + off + 8);
	e->last = silt_get_be64((const uint8_t *)v);
	e->flags = (uint8_t)v[8];
	e->stamp = vl == DVAL_LEN ? silt_get_be64((const uint8_t *)v + 9) : 0;
	return 0;
}

int journal_read(struct sync_journal *j, uint64_t from, uint64_t to, size_t max,
		 struct journal_entry **out, size_t *n, uint64_t *covered)
{
	struct meta_iter *it = meta_iter_new(j->c.meta, CF_JOURNAL, "e", 1);
	uint8_t start[EKEY_LEN];
	const char *k, *v;
	size_t kl, vl, cap = 0;
	uint64_t cur = from;
	int r, early = 0;

	*out = NULL;
	*n = 0;
	if (!it)
		return -ENOMEM;
	ekey(start, from + 1, 0, 0);
	meta_iter_start_at(it, start, sizeof(start));
	while ((r = meta_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		struct journal_entry e;
		uint64_t seq = kl == EKEY_LEN ? silt_get_be64((const uint8_t *)k + 1) : 0;
		if (seq > to)
			break;
		if (seq != cur && *n >= max) {
			early = 1; /* stop at a batch boundary: batch cur was taken whole */
			break;
		}
		cur = seq;
		if ((r = decode_entry(k, kl, v, vl, 9, &e)) || (r = push(out, n, &cap, &e)))
			break;
	}
	meta_iter_free(it);
	if (r < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
		return r;
	}
	*covered = early ? cur : to;
	*n = merge(*out, *n);
	return 0;
}

/* ---- the bound and the dirty sets ---- */

/* Fold batches (acked, cut] of peer into its dirty set and move its ack
 * to the cut. Idempotent: a crash in the middle only folds again. */
static int fold(struct sync_journal *j, int peer, uint64_t cut)
{
	uint64_t from = journal_acked(j, peer), covered;
	struct journal_entry *e;
	size_t n;
	int r;

	if (journal_fold_floor(j, peer) == UINT64_MAX) {
		uint8_t k[80];
		struct meta_batch *b = meta_batch_new();
		if (!b)
			return -ENOMEM;
		put_u64(b, j->c.meta, k, pkey(k, 'r', j->c.peers[peer]), from);
		r = meta_commit(j->c.meta, b, 1);
		meta_batch_free(b);
		if (r)
			return r;
	}

	do {
		if ((r = journal_read(j, from, cut, 65536, &e, &n, &covered)))
			return r;
		struct meta_batch *b = meta_batch_new();
		if (!b) {
			free(e);
			return -ENOMEM;
		}
		uint64_t added = 0;
		pthread_mutex_lock(&j->peer_lock);
		uint64_t stamp = ++j->stamp;
		for (size_t i = 0; i < n; i++) {
			uint8_t k[96], val[DVAL_LEN];
			size_t kl = dkey(k, j->c.peers[peer], e[i].ino, e[i].first);
			char *old;
			size_t ol;
			unsigned flags = e[i].flags;
			uint64_t last = e[i].last;
			if (meta_get(j->c.meta, CF_JOURNAL, k, kl, &old, &ol) == 0) {
				if (ol == 9 || ol == DVAL_LEN) {
					last = MAX(last, silt_get_be64((uint8_t *)old));
					flags |= (uint8_t)old[8];
				}
				free(old);
			} else {
				added++;
			}
			eval(val, last, flags);
			silt_put_be64(val + 9, stamp);
			meta_put(b, j->c.meta, CF_JOURNAL, k, kl, val, DVAL_LEN);
		}
		r = meta_commit(j->c.meta, b, 0);
		pthread_mutex_unlock(&j->peer_lock);
		meta_batch_free(b);
		free(e);
		if (r)
			return r;
		atomic_fetch_add(&j->dirty[peer], added);
		if ((r = journal_ack(j, peer, covered)))
			return r;
		from = covered;
	} while (covered < cut);
	atomic_fetch_add(&j->folds, 1);
	log_warn("replication: peer %s fell %llu journal entries behind: falling back to a resync "
		 "of its %llu dirty chunk ranges", j->c.peers[peer], (unsigned long long)j->c.max_entries,
		 (unsigned long long)atomic_load(&j->dirty[peer]));
	return 0;
}

int journal_maintain(struct sync_journal *j)
{
	int folded = 0;

	/* the pending notes count: the cut below writes them */
	while (atomic_load(&j->entries) + atomic_load(&j->npend) > j->c.max_entries && folded < j->c.npeers) {
		uint64_t cut = journal_cut(j), min = UINT64_MAX;
		int worst = -1;
		for (int p = 0; p < j->c.npeers; p++) {
			uint64_t a = journal_acked(j, p);
			if (a < cut && a < min) {
				min = a;
				worst = p;
			}
		}
		if (worst < 0)
			break;
		int r = fold(j, worst, cut);
		if (r)
			return r;
		folded++;
	}
	return folded;
}

int journal_dirty_read(struct sync_journal *j, int peer, uint64_t ino, uint64_t first, size_t max,
		       struct journal_entry **out, size_t *n)
{
	uint8_t p[80], start[96];
	size_t pl = pkey(p, 'd', j->c.peers[peer]), cap = 0;
	struct meta_iter *it = meta_iter_new(j->c.meta, CF_JOURNAL, p, pl);
	const char *k, *v;
	size_t kl, vl;
	int r;

	*out = NULL;
	*n = 0;
	if (!it)
		return -ENOMEM;
	meta_iter_start_at(it, start, dkey(start, j->c.peers[peer], ino, first));
	while (*n < max && (r = meta_iter_next(it, &k, &kl, &v, &vl)) == 1) {
		struct journal_entry e;
		if ((r = decode_entry(k, kl, v, vl, pl, &e)) || (r = push(out, n, &cap, &e)))
			break;
	}
	meta_iter_free(it);
	if (r < 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return r < 0 ? r : 0;
}

/* Keys a fold rewrote since they were read stay: the change it folded
 * may have come after what the resync sent. */
int journal_dirty_drop(struct sync_journal *j, int peer, const struct journal_entry *e, size_t n)
{
	struct meta_batch *b = meta_batch_new();
	size_t dropped = 0;
	int r = 0;

	if (!b)
		return -ENOMEM;
	pthread_mutex_lock(&j->peer_lock);
	for (size_t i = 0; i < n && !r; i++) {
		uint8_t k[96];
		size_t kl = dkey(k, j->c.peers[peer], e[i].ino, e[i].first), vl;
		char *v;
		struct journal_entry now;
		if ((r = meta_get(j->c.meta, CF_JOURNAL, k, kl, &v, &vl))) {
			r = r == -ENOENT ? 0 : r;
			continue;
		}
		r = decode_entry((const char *)k, kl, v, vl, kl - 16, &now);
		free(v);
		if (!r && now.stamp == e[i].stamp) {
			meta_del(b, j->c.meta, CF_JOURNAL, k, kl);
			dropped++;
		}
	}
	if (!r)
		r = meta_commit(j->c.meta, b, 1);
	pthread_mutex_unlock(&j->peer_lock);
	meta_batch_free(b);
	if (!r) {
		uint64_t cur = atomic_load(&j->dirty[peer]);
		atomic_store(&j->dirty[peer], cur > dropped ? cur - dropped : 0);
	}
	return r;
}

uint64_t journal_fold_floor(struct sync_journal *j, int peer)
{
	uint8_t k[80];
	uint64_t v;
	return get_u64(j->c.meta, k, pkey(k, 'r', j->c.peers[peer]), &v) ? UINT64_MAX : v;
}

int journal_fold_floor_clear(struct sync_journal *j, int peer)
{
	uint8_t k[80];
	struct meta_batch *b;
	int r;

	if (journal_fold_floor(j, peer) == UINT64_MAX)
		return 0;
	if (!(b = meta_batch_new()))
		return -ENOMEM;
	meta_del(b, j->c.meta, CF_JOURNAL, k, pkey(k, 'r', j->c.peers[peer]));
	r = meta_commit(j->c.meta, b, 1);
	meta_batch_free(b);
	return r;
}

int journal_dirty_clear(struct sync_journal *j, int peer)
{
	uint8_t lo[80], hi[80];
	size_t n = pkey(lo, 'd', j->c.peers[peer]);
	struct meta_batch *b = meta_batch_new();
	int r;

	if (!b)
		return -ENOMEM;
	/* the peer's keys are the prefix and 16 bytes: all sort below the
	 * prefix and 17 0xff bytes, and nothing else does (not the next tag's
	 * keys: the journal's own entries, "e...", once went with the dirty set) */
	memcpy(hi, lo, n);
	memset(hi + n, 0xff, 17);
	meta_del_range(b, j->c.meta, CF_JOURNAL, lo, n, hi, n + 17);
	r = meta_commit(j->c.meta, b, 1);
	meta_batch_free(b);
	if (!r)
		atomic_store(&j->dirty[peer], 0);
	return r;
}

int journal_set_full(struct sync_journal *j, int peer, int on, uint64_t ino, uint64_t chunk)
{
	struct meta_batch *b = meta_batch_new();
	uint8_t k[80], v[16];
	size_t kl = pkey(k, 'f', j->c.peers[peer]);
	int r;

	if (!b)
		return -ENOMEM;
	silt_put_be64(v, ino);
	silt_put_be64(v + 8, chunk);
	if (on)
		meta_put(b, j->c.meta, CF_JOURNAL, k, kl, v, sizeof(v));
	else
		meta_del(b, j->c.meta, CF_JOURNAL, k, kl);
	r = meta_commit(j->c.meta, b, 1);
	meta_batch_free(b);
	return r;
}

int journal_full(struct sync_journal *j, int peer, uint64_t *ino, uint64_t *chunk)
{
	uint8_t k[80];
	char *v;
	size_t vl;
	int r = meta_get(j->c.meta, CF_JOURNAL, k, pkey(k, 'f', j->c.peers[peer]), &v, &vl);

	if (r)
		return r == -ENOENT ? 0 : r;
	if (ino)
		*ino = vl == 16 ? silt_get_be64((uint8_t *)v) : 0;
	if (chunk)
		*chunk = vl == 16 ? silt_get_be64((uint8_t *)v + 8) : 0;
	free(v);
	return 1;
}

uint64_t journal_open_age_ms(struct sync_journal *j)
{
	uint64_t t = atomic_load(&j->first_change_ns);
	if (!atomic_load(&j->changed) || !t)
		return 0;
	uint64_t now = silt_now_ns();
	return now > t ? (now - t) / 1000000 : 0;
}

void journal_stats(struct sync_journal *j, int peer, struct journal_stats *st)
{
	st->open_seq = atomic_load(&j->open_seq);
	st->entries = atomic_load(&j->entries) + atomic_load(&j->npend);
	st->dirty = peer >= 0 ? atomic_load(&j->dirty[peer]) : 0;
	st->folds = atomic_load(&j->folds);
	st->noted = atomic_load(&j->noted);
	st->recorded = atomic_load(&j->recorded);
}

/* ---- generations ---- */

int gens_load(struct silt_meta *m, struct proto_gen *g, uint32_t *n)
{
	char *v;
	size_t vl;
	int r = meta_get(m, CF_JOURNAL, "g", 1, &v, &vl);

	*n = 0;
	if (r == -ENOENT)
		return 0;
	if (r)
		return r;
	if (vl % 16 || vl / 16 > PROTO_MAX_GENS) {
		free(v);
		return -EUCLEAN;
	}
	for (size_t i = 0; i < vl / 16; i++) {
		g[i].epoch = silt_get_be64((uint8_t *)v + 16 * i);
		g[i].upto = silt_get_be64((uint8_t *)v + 16 * i + 8);
	}
	*n = (uint32_t)(vl / 16);
	free(v);
	return 0;
}

int gens_store(struct silt_meta *m, const struct proto_gen *g, uint32_t n)
{
	uint8_t v[16 * PROTO_MAX_GENS];
	struct meta_batch *b = meta_batch_new();
	int r;

	if (!b)
		return -ENOMEM;
	/* the oldest go first when the list is full: the fork is near the end */
	uint32_t skip = n > PROTO_MAX_GENS ? n - PROTO_MAX_GENS : 0;
	for (uint32_t i = skip; i < n; i++) {
		silt_put_be64(v + 16 * (i - skip), g[i].epoch);
		silt_put_be64(v + 16 * (i - skip) + 8, g[i].upto);
	}
	meta_put(b, m, CF_JOURNAL, "g", 1, v, 16 * (n - skip));
	r = meta_commit(m, b, 1);
	meta_batch_free(b);
	return r;
}

int gens_begin(struct silt_meta *m)
{
	struct proto_gen g[PROTO_MAX_GENS + 1];
	uint32_t n;
	int r = gens_load(m, g, &n);

	if (r || n)
		return r;
	if (getrandom(&g[0].epoch, sizeof(g[0].epoch), 0) != sizeof(g[0].epoch))
		return -EIO;
	g[0].upto = UINT64_MAX;
	return gens_store(m, g, 1);
}

int journal_set_next(struct silt_meta *m, uint64_t next)
{
	struct meta_batch *b = meta_batch_new();
	int r;

	if (!b)
		return -ENOMEM;
	put_u64(b, m, "n", 1, next);
	r = meta_commit(m, b, 1);
	meta_batch_free(b);
	return r;
}

uint64_t journal_local_pos(struct silt_meta *m)
{
	uint64_t next = 0;
	uint8_t k[EKEY_LEN];
	const char *key, *v;
	size_t kl, vl;

	if (get_u64(m, "n", 1, &next) || next == 0)
		return 0;
	struct meta_iter *it = meta_iter_new(m, CF_JOURNAL, "e", 1);
	if (!it)
		return next - 1;
	ekey(k, next, 0, 0);
	meta_iter_start_at(it, k, sizeof(k));
	int open = meta_iter_next(it, &key, &kl, &v, &vl) == 1; /* changes not cut yet */
	meta_iter_free(it);
	return next - 1 + (uint64_t)open;
}

int gens_follow(const struct proto_gen *mine, uint32_t nm, uint64_t pos, const struct proto_gen *theirs,
		uint32_t nt, char *why, size_t len)
{
	if (nm == 0)
		return 0; /* no lineage: nothing of ours to lose */
	const struct proto_gen *last = &mine[nm - 1];
	for (uint32_t i = 0; i < nt; i++) {
		if (theirs[i].epoch != last->epoch)
			continue;
		if (theirs[i].upto != UINT64_MAX && pos > theirs[i].upto) {
			snprintf(why, len, "split brain: both sides changed after batch %llu of epoch %016llx "
				 "(this side reached %llu, the other went on in epoch %016llx)",
				 (unsigned long long)theirs[i].upto, (unsigned long long)last->epoch,
				 (unsigned long long)pos,
				 (unsigned long long)(i + 1 < nt ? theirs[i + 1].epoch : 0));
			return -EEXIST;
		}
		return 0;
	}
	snprintf(why, len, "split brain: this side is in epoch %016llx, which the other side's history does "
		 "not have (promoted here, or the other side was)", (unsigned long long)last->epoch);
	return -EEXIST;
}

int journal_forget(struct silt_meta *m)
{
	struct meta_batch *b = meta_batch_new();
	uint8_t lo[1] = { 0 }, hi[1] = { 0xff };
	int r;

	if (!b)
		return -ENOMEM;
	meta_del_range(b, m, CF_JOURNAL, lo, 1, hi, 1);
	r = meta_commit(m, b, 1);
	meta_batch_free(b);
	return r;
}
