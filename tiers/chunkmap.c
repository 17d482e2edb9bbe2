/* The chunk map (see chunkmap.h).
 *
 *   struct ct_top     a file's table: page pointers under a top array that
 *                     grows by doubling; a page holds 4096 one-byte entries
 *   struct latch      the state of one latch group (64 KiB of a file, or one
 *                     chunk when chunks are larger) while anyone pins or
 *                     watches it: pin counts, exclusive flag, generation
 *   struct bucket     a hash chain of latches with the mutex and condition
 *                     variable that every wait on them uses
 *   struct cmap_file  one file: its table, its tier files, its gate
 *
 * Table readers never lock: a page or a top array, once published, stays
 * valid until the file leaves memory (a grown top array keeps its
 * predecessor on a retired list, since a reader may still be looking at
 * it). Writers are serialised by the pins: a home changes only under an
 * EXCL or SWITCH pin on the chunk, or with the whole file quiesced.
 *
 * Latches live only while used, taken from a pool allocated once: no
 * allocation on the I/O path (the daemon locks its memory to serve swap)
 * and a fixed memory cost. The pool is sized for the worst case the engine
 * allows: every asynchronous request and every worker pinning its largest
 * range at once, plus the migration engine's watches.
 *
 * Generations exist only in latches: a move watches its chunk, which keeps
 * the latch (and its count) alive; a chunk nobody watches needs none. */
#include "tiers/chunkmap.h"
#include "utils/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CT_PAGE_SHIFT 12
#define CT_PAGE (1u << CT_PAGE_SHIFT)

#define NBUCKETS 1024
#define LATCH_GROUP_SHIFT 16 /* 64 KiB */
/* 256 asynchronous requests and 64 workers of 17 groups each, the
 * migration engine's watches, and room to spare */
#define LATCH_POOL 8192
#define DEFERRED_MAX 4096      /* old slots of moves waiting for a WAL sync */

struct ct_top {
	uint64_t n;                 /* page slots */
	struct ct_top *retired;
	_Atomic(uint8_t *) pages[];
};

struct latch {
	struct latch *next;         /* bucket chain, or the free list */
	uint64_t ino, grp;
	uint32_t refs;              /* pins and watches */
	uint32_t shared;            /* READ and WRITE pins */
	uint32_t writers;           /* WRITE pins */
	uint32_t excl_waiting;      /* exclusive pins waiting: shared ones queue behind */
	uint8_t excl;
	uint64_t gen;
};

struct bucket {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	uint32_t waiters;
	struct latch *head;
};

struct cmap_file {
	uint64_t ino;
	_Atomic(struct ct_top *) top;
	int loaded;
	struct tier_files tf;
	/* the gate: pins held, and whether the file is being quiesced */
	_Atomic uint32_t inflight;
	_Atomic int quiesced;
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cv;
};

struct silt_cmap {
	struct cmap_conf conf;
	unsigned gshift;            /* chunk index -> latch group */
	struct bucket buckets[NBUCKETS];
	pthread_mutex_t free_lock;
	pthread_cond_t free_cv;
	struct latch *free;
	struct latch *pool;
	/* deferred punches: an unordered array, small and rarely searched */
	pthread_mutex_t deferred_lock;
	unsigned ndeferred;
	struct cmap_deferred deferred[DEFERRED_MAX];
};

/* ---- the table ---- */

uint8_t cmap_get(const struct cmap_file *cf, uint64_t k)
{
	struct ct_top *t = atomic_load_explicit(&((struct cmap_file *)cf)->top, memory_order_acquire);
	uint64_t p = k >> CT_PAGE_SHIFT;
	uint8_t *pg;

	if (!t || p >= t->n)
		return 0;
	pg = atomic_load_explicit(&t->pages[p], memory_order_acquire);
	return pg ? __atomic_load_n(&pg[k & (CT_PAGE - 1)], __ATOMIC_RELAXED) : 0;
}

/* Make sure chunk k has a page, so that a later ct_put cannot fail. */
static int ct_reserve(struct cmap_file *cf, uint64_t k)
{
	struct ct_top *t = atomic_load_explicit(&cf->top, memory_order_relaxed);
	uint64_t p = k >> CT_PAGE_SHIFT;

	if (!t || p >= t->n) {
		uint64_t n = t ? t->n : 16;
		while (n <= p)
			n *= 2;
		struct ct_top *nt = calloc(1, sizeof(*nt) + n * sizeof(nt->pages[0]));
		if (!nt)
			return -ENOMEM;
		nt->n = n;
		for (uint64_t i = 0; t && i < t->n; i++)
			atomic_store_explicit(&nt->pages[i], atomic_load(&t->pages[i]), memory_order_relaxed);
		nt->retired = t;
		atomic_store_explicit(&cf->top, nt, memory_order_release);
		t = nt;
	}
	if (!atomic_load_explicit(&t->pages[p], memory_order_relaxed)) {
		uint8_t *pg = calloc(1, CT_PAGE);
		if (!pg)
			return -ENOMEM;
		atomic_store_explicit(&t->pages[p], pg, memory_order_release);
	}
	return 0;
}

/* Set an entry whose page exists (ct_reserve), or clear one. */
static void ct_put(struct cmap_file *cf, uint64_t k, uint8_t val)
{
	struct ct_top *t = atomic_load_explicit(&cf->top, memory_order_relaxed);
	uint64_t p = k >> CT_PAGE_SHIFT;
	uint8_t *pg = t && p < t->n ? atomic_load_explicit(&t->pages[p], memory_order_relaxed) : NULL;

	if (pg)
		__atomic_store_n(&pg[k & (CT_PAGE - 1)], val, __ATOMIC_RELAXED);
}

static void ct_free(struct cmap_file *cf)
{
	struct ct_top *t = atomic_exchange(&cf->top, NULL);

	if (!t)
		return;
	for (uint64_t i = 0; i < t->n; i++)
		free(atomic_load(&t->pages[i]));
	while (t) {
		struct ct_top *r = t->retired;
		free(t);
		t = r;
	}
}

uint64_t cmap_next_mapped(const struct cmap_file *cf, uint64_t k)
{
	struct ct_top *t = atomic_load_explicit(&((struct cmap_file *)cf)->top, memory_order_acquire);

	if (!t)
		return UINT64_MAX;
	for (uint64_t p = k >> CT_PAGE_SHIFT; p < t->n; p++) {
		uint8_t *pg = atomic_load_explicit(&t->pages[p], memory_order_acquire);
		if (!pg)
			continue;
		uint64_t i = (p == k >> CT_PAGE_SHIFT) ? (k & (CT_PAGE - 1)) : 0;
		for (; i < CT_PAGE; i++)
			if (__atomic_load_n(&pg[i], __ATOMIC_RELAXED))
				return (p << CT_PAGE_SHIFT) + i;
	}
	return UINT64_MAX;
}

uint64_t cmap_last_mapped(const struct cmap_file *cf)
{
	struct ct_top *t = atomic_load_explicit(&((struct cmap_file *)cf)->top, memory_order_acquire);

	if (!t)
		return UINT64_MAX;
	for (uint64_t p = t->n; p-- > 0;) {
		uint8_t *pg = atomic_load_explicit(&t->pages[p], memory_order_acquire);
		if (!pg)
			continue;
		for (uint64_t i = CT_PAGE; i-- > 0;)
			if (__atomic_load_n(&pg[i], __ATOMIC_RELAXED))
				return (p << CT_PAGE_SHIFT) + i;
	}
	return UINT64_MAX;
}

void cmap_count(const struct cmap_file *cf, uint64_t counts[SILT_MAX_TIERS])
{
	memset(counts, 0, sizeof(counts[0]) * SILT_MAX_TIERS);
	for (uint64_t k = cmap_next_mapped(cf, 0); k != UINT64_MAX; k = cmap_next_mapped(cf, k + 1))
		counts[cm_tier(cmap_get(cf, k))]++;
}

/* A stored value's record; 0 when it is too short to hold one. */
static int rec_of(const char *val, size_t vl, struct chunk_rec *rec)
{
	if (vl < sizeof(*rec))
		return 0;
	memcpy(rec, val, sizeof(*rec));
	return 1;
}

int cmap_count_all(struct silt_cmap *cm, uint64_t counts[SILT_MAX_TIERS], uint64_t saved[SILT_MAX_TIERS],
		   int *bad)
{
	const char *k, *val;
	size_t kl, vl;
	int r;
	struct meta_iter *it = meta_iter_new(cm->conf.meta, CF_CHUNKS, "", 0);

	memset(counts, 0, sizeof(counts[0]) * SILT_MAX_TIERS);
	memset(saved, 0, sizeof(saved[0]) * SILT_MAX_TIERS);
	if (!it)
		return -ENOMEM;
	while ((r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1) {
		struct chunk_rec rec;
		uint8_t tid = vl ? (uint8_t)val[0] : 0xff;
		if (tid >= SILT_MAX_TIERS || !cm->conf.tier_by_id[tid]) {
			*bad = tid;
			r = -EUCLEAN;
			break;
		}
		counts[tid]++;
		if (rec_of(val, vl, &rec))
			saved[tid] += chunk_rec_saved(&rec, cm->conf.layout->chunk_size);
	}
	meta_iter_free(it);
	return r < 0 ? r : 0;
}

/* ---- files ---- */

static unsigned entry_flags(const struct chunk_rec *rec, uint32_t chunk_size)
{
	return ((rec->flags & CHUNK_PLAIN) ? CM_PLAIN : 0) | ((rec->flags & CHUNK_SUMS) ? CM_SUMS : 0) |
	       (chunk_rec_saved(rec, chunk_size) ? CM_PACKED : 0);
}

struct cmap_file *cmap_file_new(struct silt_cmap *cm, uint64_t ino)
{
	struct cmap_file *cf = calloc(1, sizeof(*cf));

	if (!cf)
		return NULL;
	cf->ino = ino;
	tfiles_init(&cf->tf, ino);
	pthread_mutex_init(&cf->gate_lock, NULL);
	pthread_cond_init(&cf->gate_cv, NULL);
	return cf;
}

void cmap_file_free(struct silt_cmap *cm, struct cmap_file *cf)
{
	if (!cf)
		return;
	tfiles_close(&cf->tf);
	pthread_mutex_destroy(&cf->tf.lock);
	ct_free(cf);
	pthread_mutex_destroy(&cf->gate_lock);
	pthread_cond_destroy(&cf->gate_cv);
	free(cf);
}

struct tier_files *cmap_files(struct cmap_file *cf) { return &cf->tf; }
uint64_t cmap_file_ino(const struct cmap_file *cf) { return cf->ino; }
int cmap_file_loaded(const struct cmap_file *cf) { return cf->loaded; }
void cmap_file_set_empty(struct cmap_file *cf) { cf->loaded = 1; }

int cmap_file_load(struct silt_cmap *cm, struct cmap_file *cf)
{
	uint8_t prefix[8];
	const char *k, *val;
	size_t kl, vl;
	int r;

	if (cf->loaded)
		return 0;
	key_ino(prefix, cf->ino);
	struct meta_iter *it = meta_iter_new(cm->conf.meta, CF_CHUNKS, prefix, 8);
	if (!it)
		return -ENOMEM;
	while ((r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1) {
		if (kl != 16 || vl < 1)
			continue;
		uint64_t chunk = silt_get_be64((const uint8_t *)k + 8);
		struct chunk_rec rec = { .tier = (uint8_t)val[0], .flags = vl >= 2 ? (uint8_t)val[1] : 0 };
		uint8_t tid = rec.tier;
		rec_of(val, vl, &rec);
		if (tid >= SILT_MAX_TIERS || !cm->conf.tier_by_id[tid]) {
			log_err("inode %llu chunk %llu: map names unknown tier id %u",
				(unsigned long long)cf->ino, (unsigned long long)chunk, tid);
			r = -EUCLEAN;
			break;
		}
		if ((r = ct_reserve(cf, chunk)))
			break;
		ct_put(cf, chunk, cm_entry(tid, entry_flags(&rec, cm->conf.layout->chunk_size)));
	}
	meta_iter_free(it);
	if (r < 0) {
		ct_free(cf);
		return r;
	}
	cf->loaded = 1;
	return 0;
}

/* ---- latches ---- */

int cmap_open(const struct cmap_conf *conf, struct silt_cmap **out)
{
	struct silt_cmap *cm = calloc(1, sizeof(*cm));
	unsigned cshift = (unsigned)__builtin_ctz(conf->layout->chunk_size);

	if (!cm || !(cm->pool = calloc(LATCH_POOL, sizeof(struct latch)))) {
		free(cm);
		return -ENOMEM;
	}
	cm->conf = *conf;
	cm->gshift = cshift >= LATCH_GROUP_SHIFT ? 0 : LATCH_GROUP_SHIFT - cshift;
	for (int i = 0; i < NBUCKETS; i++) {
		pthread_mutex_init(&cm->buckets[i].lock, NULL);
		pthread_cond_init(&cm->buckets[i].cv, NULL);
	}
	pthread_mutex_init(&cm->free_lock, NULL);
	pthread_cond_init(&cm->free_cv, NULL);
	pthread_mutex_init(&cm->deferred_lock, NULL);
	for (int i = LATCH_POOL - 1; i >= 0; i--) {
		cm->pool[i].next = cm->free;
		cm->free = &cm->pool[i];
	}
	*out = cm;
	return 0;
}

void cmap_close(struct silt_cmap *cm)
{
	if (!cm)
		return;
	for (int i = 0; i < NBUCKETS; i++) {
		pthread_mutex_destroy(&cm->buckets[i].lock);
		pthread_cond_destroy(&cm->buckets[i].cv);
	}
	pthread_mutex_destroy(&cm->free_lock);
	pthread_cond_destroy(&cm->free_cv);
	pthread_mutex_destroy(&cm->deferred_lock);
	free(cm->pool);
	free(cm);
}

static struct bucket *bucket_of(struct silt_cmap *cm, uint64_t ino, uint64_t grp)
{
	uint64_t h = (ino * 0x9E3779B97F4A7C15ull) ^ (grp * 0xC2B2AE3D27D4EB4Full);
	return &cm->buckets[(h >> 32) % NBUCKETS];
}

static struct latch *latch_find(struct bucket *b, uint64_t ino, uint64_t grp)
{
	for (struct latch *l = b->head; l; l = l->next)
		if (l->ino == ino && l->grp == grp)
			return l;
	return NULL;
}

/* Wait on b (held) for something to change. The first time, send the I/O
 * this thread holds instead (what we wait for may be exactly that) and
 * return, so that the caller looks again: the lock was dropped meanwhile,
 * and a release in that window woke nobody. */
static void bucket_wait(struct silt_cmap *cm, struct bucket *b, int *flushed)
{
	if (!*flushed) {
		*flushed = 1;
		pthread_mutex_unlock(&b->lock);
		silt_aio_flush(cm->conf.aio);
		pthread_mutex_lock(&b->lock);
		return;
	}
	b->waiters++;
	pthread_cond_wait(&b->cv, &b->lock);
	b->waiters--;
}

/* The latch of (ino, grp) with a reference, made from the pool if need
 * be. Called and returns with b held; may wait for the pool. */
static struct latch *latch_get(struct silt_cmap *cm, struct bucket *b, uint64_t ino, uint64_t grp)
{
	struct latch *l;

	while (!(l = latch_find(b, ino, grp))) {
		pthread_mutex_lock(&cm->free_lock);
		l = cm->free;
		if (l) {
			cm->free = l->next;
			pthread_mutex_unlock(&cm->free_lock);
			memset(l, 0, sizeof(*l));
			l->ino = ino;
			l->grp = grp;
			l->next = b->head;
			b->head = l;
			break;
		}
		/* Cannot happen within the engine's bounds; if it does, wait
		 * for a latch to come back rather than fail the I/O. */
		log_warn("chunk map: all %d latches in use, waiting", LATCH_POOL);
		pthread_mutex_unlock(&cm->free_lock);
		pthread_mutex_unlock(&b->lock);
		silt_aio_flush(cm->conf.aio);
		pthread_mutex_lock(&cm->free_lock);
		while (!cm->free)
			pthread_cond_wait(&cm->free_cv, &cm->free_lock);
		pthread_mutex_unlock(&cm->free_lock);
		pthread_mutex_lock(&b->lock);
	}
	l->refs++;
	return l;
}

/* Drop a reference; b held. */
static void latch_put(struct silt_cmap *cm, struct bucket *b, struct latch *l)
{
	if (--l->refs)
		return;
	struct latch **pp = &b->head;
	while (*pp != l)
		pp = &(*pp)->next;
	*pp = l->next;
	pthread_mutex_lock(&cm->free_lock);
	l->next = cm->free;
	cm->free = l;
	pthread_cond_signal(&cm->free_cv);
	pthread_mutex_unlock(&cm->free_lock);
}

static void bucket_wake(struct bucket *b)
{
	if (b->waiters)
		pthread_cond_broadcast(&b->cv);
}

/* ---- the file gate ---- */

static void gate_leave(struct cmap_file *cf)
{
	if (atomic_fetch_sub(&cf->inflight, 1) == 1 && atomic_load(&cf->quiesced)) {
		pthread_mutex_lock(&cf->gate_lock);
		pthread_cond_broadcast(&cf->gate_cv);
		pthread_mutex_unlock(&cf->gate_lock);
	}
}

/* Counted in unless the file is quiesced: 1, or 0 (not counted). */
static int gate_try(struct cmap_file *cf)
{
	atomic_fetch_add(&cf->inflight, 1);
	if (!atomic_load(&cf->quiesced))
		return 1;
	gate_leave(cf);
	return 0;
}

static void gate_enter(struct silt_cmap *cm, struct cmap_file *cf)
{
	for (;;) {
		if (gate_try(cf))
			return;
		silt_aio_flush(cm->conf.aio);
		pthread_mutex_lock(&cf->gate_lock);
		while (atomic_load(&cf->quiesced))
			pthread_cond_wait(&cf->gate_cv, &cf->gate_lock);
		pthread_mutex_unlock(&cf->gate_lock);
	}
}

void cmap_file_quiesce(struct silt_cmap *cm, struct cmap_file *cf)
{
	pthread_mutex_lock(&cf->gate_lock);
	while (atomic_load(&cf->quiesced)) /* another quiescer first */
		pthread_cond_wait(&cf->gate_cv, &cf->gate_lock);
	atomic_store(&cf->quiesced, 1);
	pthread_mutex_unlock(&cf->gate_lock);
	silt_aio_flush(cm->conf.aio);
	pthread_mutex_lock(&cf->gate_lock);
	while (atomic_load(&cf->inflight))
		pthread_cond_wait(&cf->gate_cv, &cf->gate_lock);
	pthread_mutex_unlock(&cf->gate_lock);
}

void cmap_file_resume(struct silt_cmap *cm, struct cmap_file *cf)
{
	pthread_mutex_lock(&cf->gate_lock);
	atomic_store(&cf->quiesced, 0);
	pthread_cond_broadcast(&cf->gate_cv);
	pthread_mutex_unlock(&cf->gate_lock);
}

/* ---- pins ---- */

static int may_take(const struct latch *l, enum cmap_pin_mode mode)
{
	if (mode == CMAP_EXCL || mode == CMAP_SWITCH)
		return !l->excl && !l->shared;
	return !l->excl && !l->excl_waiting;
}

static void latch_take(struct latch *l, enum cmap_pin_mode mode)
{
	switch (mode) {
	case CMAP_READ:
		l->shared++;
		break;
	case CMAP_WRITE:
		l->shared++;
		l->writers++;
		l->gen++;
		break;
	case CMAP_EXCL:
		l->excl = 1;
		l->gen++;
		break;
	case CMAP_SWITCH:
		l->excl = 1;
		break;
	}
}

static int pin(struct silt_cmap *cm, struct cmap_file *cf, uint64_t k0, uint64_t k1,
	       enum cmap_pin_mode mode, struct cmap_pin *p, int held)
{
	uint64_t g0 = k0 >> cm->gshift, g1 = k1 >> cm->gshift;
	int excl = mode == CMAP_EXCL || mode == CMAP_SWITCH;

	p->cf = cf;
	p->mode = mode;
	p->n = 0;
	if (g1 - g0 >= CMAP_PIN_MAX)
		return -E2BIG;
	if (!held)
		gate_enter(cm, cf);
	else if (!gate_try(cf))
		return -EAGAIN;
	/* ascending order: pins never wait in a cycle */
	for (uint64_t g = g0; g <= g1; g++) {
		struct bucket *b = bucket_of(cm, cf->ino, g);
		pthread_mutex_lock(&b->lock);
		struct latch *l = latch_get(cm, b, cf->ino, g);
		if (excl)
			l->excl_waiting++;
		int flushed = 0;
		while (!may_take(l, mode))
			bucket_wait(cm, b, &flushed);
		if (excl)
			l->excl_waiting--;
		latch_take(l, mode);
		pthread_mutex_unlock(&b->lock);
		p->l[p->n++] = l;
	}
	return 0;
}

int cmap_pin(struct silt_cmap *cm, struct cmap_file *cf, uint64_t k0, uint64_t k1,
	     enum cmap_pin_mode mode, struct cmap_pin *p)
{
	return pin(cm, cf, k0, k1, mode, p, 0);
}

int cmap_pin_more(struct silt_cmap *cm, struct cmap_file *cf, uint64_t k0, uint64_t k1,
		  enum cmap_pin_mode mode, struct cmap_pin *p)
{
	return pin(cm, cf, k0, k1, mode, p, 1);
}

void cmap_unpin(struct silt_cmap *cm, struct cmap_pin *p)
{
	for (unsigned i = 0; i < p->n; i++) {
		struct latch *l = p->l[i];
		struct bucket *b = bucket_of(cm, l->ino, l->grp);
		pthread_mutex_lock(&b->lock);
		if (p->mode == CMAP_EXCL || p->mode == CMAP_SWITCH) {
			l->excl = 0;
		} else {
			l->shared--;
			if (p->mode == CMAP_WRITE)
				l->writers--;
		}
		bucket_wake(b);
		latch_put(cm, b, l);
		pthread_mutex_unlock(&b->lock);
	}
	if (p->n)
		gate_leave(p->cf);
	p->n = 0;
}

void cmap_watch(struct silt_cmap *cm, struct cmap_file *cf, uint64_t k, struct cmap_watch *w)
{
	uint64_t g = k >> cm->gshift;
	struct bucket *b = bucket_of(cm, cf->ino, g);

	pthread_mutex_lock(&b->lock);
	w->l = latch_get(cm, b, cf->ino, g);
	pthread_mutex_unlock(&b->lock);
}

int cmap_watch_gen(struct silt_cmap *cm, const struct cmap_watch *w, uint64_t *gen)
{
	struct bucket *b = bucket_of(cm, w->l->ino, w->l->grp);
	int r = 0;

	pthread_mutex_lock(&b->lock);
	if (w->l->writers || w->l->excl)
		r = -EBUSY;
	*gen = w->l->gen;
	pthread_mutex_unlock(&b->lock);
	return r;
}

int cmap_pin_quiet(struct silt_cmap *cm, const struct cmap_pin *p)
{
	int quiet = 1;

	for (unsigned i = 0; i < p->n && quiet; i++) {
		struct bucket *b = bucket_of(cm, p->l[i]->ino, p->l[i]->grp);
		pthread_mutex_lock(&b->lock);
		quiet = !p->l[i]->writers;
		pthread_mutex_unlock(&b->lock);
	}
	return quiet;
}

uint64_t cmap_pin_gen(struct silt_cmap *cm, const struct cmap_pin *p)
{
	struct bucket *b = bucket_of(cm, p->l[0]->ino, p->l[0]->grp);

	pthread_mutex_lock(&b->lock);
	uint64_t gen = p->l[0]->gen;
	pthread_mutex_unlock(&b->lock);
	return gen;
}

void cmap_unwatch(struct silt_cmap *cm, struct cmap_watch *w)
{
	struct bucket *b = bucket_of(cm, w->l->ino, w->l->grp);

	pthread_mutex_lock(&b->lock);
	latch_put(cm, b, w->l);
	pthread_mutex_unlock(&b->lock);
	w->l = NULL;
}

/* A home changed: a watcher's copy of it is stale now. */
static void bump_gen(struct silt_cmap *cm, uint64_t ino, uint64_t k)
{
	uint64_t g = k >> cm->gshift;
	struct bucket *b = bucket_of(cm, ino, g);

	pthread_mutex_lock(&b->lock);
	struct latch *l = latch_find(b, ino, g);
	if (l)
		l->gen++;
	pthread_mutex_unlock(&b->lock);
}

void cmap_touch(struct silt_cmap *cm, struct cmap_file *cf, uint64_t k)
{
	bump_gen(cm, cf->ino, k);
}

/* ---- transactions ---- */

void cmap_txn_begin(struct silt_cmap *cm, struct cmap_txn *t, struct cmap_file *cf,
		    struct meta_batch *b)
{
	t->cm = cm;
	t->cf = cf;
	t->b = b;
	t->mapped = 0;
	memset(t->saved, 0, sizeof(t->saved));
	t->n = 0;
	t->cap = CMAP_TXN_INLINE;
	t->ops = t->inl;
}

void cmap_txn_end(struct cmap_txn *t)
{
	if (t->ops != t->inl)
		free(t->ops);
	t->ops = t->inl;
	t->n = 0;
}

static int txn_add(struct cmap_txn *t, uint64_t k0, uint64_t k1, uint8_t val)
{
	if (t->n == t->cap) {
		unsigned cap = t->cap * 2;
		struct cmap_op *ops = malloc(cap * sizeof(*ops));
		if (!ops)
			return -ENOMEM;
		memcpy(ops, t->ops, t->n * sizeof(*ops));
		if (t->ops != t->inl)
			free(t->ops);
		t->ops = ops;
		t->cap = cap;
	}
	t->ops[t->n++] = (struct cmap_op){ .k0 = k0, .k1 = k1, .val = val, .drop = 0 };
	return 0;
}

/* The latest op of this transaction that covers chunk k, or NULL. */
static const struct cmap_op *txn_cover(const struct cmap_txn *t, uint64_t k)
{
	for (unsigned i = t->n; i-- > 0;)
		if (t->ops[i].k0 <= k && k < t->ops[i].k1)
			return &t->ops[i];
	return NULL;
}

/* Chunk k leaves its current home in this transaction: what compression
 * spared it there no longer counts. Its home is the table's, or an earlier
 * op's of the same transaction. The store still has the old record (the
 * batch is not committed yet), and only compressed chunks need it. */
static int txn_unsave(struct cmap_txn *t, uint64_t k)
{
	const struct cmap_op *op = txn_cover(t, k);
	struct chunk_rec rec;
	int r;

	if (op) {
		if (op->val)
			t->saved[cm_tier(op->val)] -= op->saved;
		return 0;
	}
	uint8_t e = cmap_get(t->cf, k);
	if (!(e & CM_PACKED))
		return 0;
	if ((r = cmap_get_record(t->cm, t->cf, k, &rec, NULL)))
		return r == -ENOENT ? 0 : r;
	t->saved[cm_tier(e)] -= chunk_rec_saved(&rec, t->cm->conf.layout->chunk_size);
	return 0;
}

int cmap_txn_set_sums(struct cmap_txn *t, uint64_t k, const struct chunk_rec *rec,
		      const struct block_sum *sums)
{
	size_t nsums = sums ? t->cm->conf.layout->chunk_size / SUM_BLOCK : 0;
	char val[sizeof(*rec) + (4u << 20) / SUM_BLOCK * sizeof(*sums)];
	struct chunk_rec cr = *rec;
	uint8_t key[16];
	int r;

	uint32_t cs = t->cm->conf.layout->chunk_size;
	cr.flags = (uint8_t)((cr.flags & ~CHUNK_SUMS) | (sums ? CHUNK_SUMS : 0));
	if ((r = ct_reserve(t->cf, k)) || (r = txn_unsave(t, k)) ||
	    (r = txn_add(t, k, k + 1, cm_entry(cr.tier, entry_flags(&cr, cs)))))
		return r;
	t->ops[t->n - 1].saved = chunk_rec_saved(&cr, cs);
	t->saved[cr.tier] += t->ops[t->n - 1].saved;
	memcpy(val, &cr, sizeof(cr));
	if (nsums)
		memcpy(val + sizeof(cr), sums, nsums * sizeof(*sums));
	key_chunk(key, t->cf->ino, k);
	meta_put(t->b, t->cm->conf.meta, CF_CHUNKS, key, 16, val, sizeof(cr) + nsums * sizeof(*sums));
	if (!cmap_get(t->cf, k))
		t->mapped++;
	return 0;
}

int cmap_txn_set(struct cmap_txn *t, uint64_t k, const struct chunk_rec *rec)
{
	return cmap_txn_set_sums(t, k, rec, NULL);
}

int cmap_get_record(struct silt_cmap *cm, const struct cmap_file *cf, uint64_t k, struct chunk_rec *rec,
		    struct block_sum *sums)
{
	size_t nsums = cm->conf.layout->chunk_size / SUM_BLOCK, len;
	uint8_t key[16];
	char *val;
	int r;

	key_chunk(key, cf->ino, k);
	if ((r = meta_get(cm->conf.meta, CF_CHUNKS, key, 16, &val, &len)))
		return r;
	if (len < sizeof(*rec)) {
		free(val);
		return -EIO;
	}
	memcpy(rec, val, sizeof(*rec));
	if ((rec->flags & CHUNK_SUMS) && len != sizeof(*rec) + nsums * sizeof(*sums))
		r = -EIO;
	else if ((rec->flags & CHUNK_SUMS) && sums)
		memcpy(sums, val + sizeof(*rec), nsums * sizeof(*sums));
	free(val);
	return r;
}

int cmap_txn_move(struct cmap_txn *t, uint64_t k, const struct chunk_rec *rec,
		  const struct block_sum *sums)
{
	struct silt_cmap *cm = t->cm;
	int r, full;

	pthread_mutex_lock(&cm->deferred_lock);
	full = cm->ndeferred + t->n >= DEFERRED_MAX; /* room for this one at publish */
	pthread_mutex_unlock(&cm->deferred_lock);
	if (full)
		return -ENOSPC;
	if ((r = cmap_txn_set_sums(t, k, rec, sums)))
		return r;
	t->ops[t->n - 1].defer = 1;
	return 0;
}

/* Chunks [k0, k1) of ino change home again: their waiting punches, if any,
 * would now hit a slot that may be reused. */
static void cancel_deferred(struct silt_cmap *cm, uint64_t ino, uint64_t k0, uint64_t k1)
{
	pthread_mutex_lock(&cm->deferred_lock);
	for (unsigned i = 0; i < cm->ndeferred;) {
		struct cmap_deferred *d = &cm->deferred[i];
		if (d->ino == ino && d->k >= k0 && d->k < k1)
			*d = cm->deferred[--cm->ndeferred];
		else
			i++;
	}
	pthread_mutex_unlock(&cm->deferred_lock);
}

static void add_deferred(struct silt_cmap *cm, uint64_t ino, uint64_t k, int tid)
{
	pthread_mutex_lock(&cm->deferred_lock);
	if (cm->ndeferred < DEFERRED_MAX) /* reserved in cmap_txn_move */
		cm->deferred[cm->ndeferred++] = (struct cmap_deferred){ .ino = ino, .k = k, .tier = tid };
	pthread_mutex_unlock(&cm->deferred_lock);
}

long cmap_take_deferred(struct silt_cmap *cm, struct cmap_deferred *out, size_t max)
{
	long n = 0;

	pthread_mutex_lock(&cm->deferred_lock);
	while (cm->ndeferred && (size_t)n < max)
		out[n++] = cm->deferred[--cm->ndeferred];
	pthread_mutex_unlock(&cm->deferred_lock);
	return n;
}

int cmap_punch_deferred(struct silt_cmap *cm, struct cmap_file *cf, const struct cmap_deferred *d)
{
	struct cmap_pin p;
	int r = cmap_pin(cm, cf, d->k, d->k, CMAP_SWITCH, &p);

	if (r)
		return r;
	if (cm_tier(cmap_get(cf, d->k)) != d->tier)
		r = tfiles_punch(&cf->tf, cm->conf.layout, cm->conf.tier_by_id[d->tier], d->k, 0,
				 cm->conf.layout->chunk_size);
	cmap_unpin(cm, &p);
	return r;
}

int cmap_txn_clear(struct cmap_txn *t, uint64_t k0, uint64_t k1)
{
	uint8_t ks[16], ke[16];
	int r;

	if (k0 >= k1)
		return 0;
	/* earlier ops' chunks in the range, then the table's (txn_unsave
	 * counts each chunk once: by the latest op covering it, else the table) */
	for (unsigned i = 0; i < t->n; i++)
		if (t->ops[i].saved && t->ops[i].k0 >= k0 && t->ops[i].k0 < k1 &&
		    txn_cover(t, t->ops[i].k0) == &t->ops[i])
			t->saved[cm_tier(t->ops[i].val)] -= t->ops[i].saved;
	for (uint64_t k = cmap_next_mapped(t->cf, k0); k < k1; k = cmap_next_mapped(t->cf, k + 1))
		if ((cmap_get(t->cf, k) & CM_PACKED) && !txn_cover(t, k) && (r = txn_unsave(t, k)))
			return r;
	if ((r = txn_add(t, k0, k1, 0)))
		return r;
	key_chunk(ks, t->cf->ino, k0);
	key_chunk(ke, t->cf->ino, k1);
	meta_del_range(t->b, t->cm->conf.meta, CF_CHUNKS, ks, 16, ke, 16);
	for (uint64_t k = cmap_next_mapped(t->cf, k0); k < k1; k = cmap_next_mapped(t->cf, k + 1))
		t->mapped--;
	return 0;
}

int cmap_txn_drop(struct cmap_txn *t)
{
	int r = cmap_txn_clear(t, 0, UINT64_MAX);
	if (!r)
		t->ops[t->n - 1].drop = 1;
	return r;
}

/* The file is gone: give back its space, close and remove its tier files
 * (faster than punching each slot), forget its table. */
static int publish_drop(struct cmap_txn *t)
{
	struct cmap_file *cf = t->cf;
	uint64_t counts[SILT_MAX_TIERS], last = cmap_last_mapped(cf);
	const struct layout *l = t->cm->conf.layout;
	int r = 0;

	cmap_count(cf, counts);
	tfiles_close(&cf->tf);
	for (int tid = 0; tid < SILT_MAX_TIERS; tid++) {
		struct silt_tier *tier = t->cm->conf.tier_by_id[tid];
		if (!tier)
			continue;
		tier_release(tier, counts[tid]);
		int rr = tier_remove_inode(tier, cf->ino, last == UINT64_MAX ? 0 : layout_seg(l, last));
		if (rr && !r)
			r = rr;
	}
	for (uint64_t k = cmap_next_mapped(cf, 0); k != UINT64_MAX; k = cmap_next_mapped(cf, k + 1))
		bump_gen(t->cm, cf->ino, k);
	ct_free(cf);
	return r;
}

/* Chunks [k0, k1) leave tier tid: return the space, punch the slots (one
 * punch per run within a tier file). */
static int release_run(struct cmap_txn *t, int tid, uint64_t k0, uint64_t k1)
{
	struct silt_tier *tier = t->cm->conf.tier_by_id[tid];
	const struct layout *l = t->cm->conf.layout;
	int r = 0;

	tier_release(tier, k1 - k0);
	for (uint64_t k = k0; k < k1;) {
		uint64_t end = MIN(k1, (layout_seg(l, k) + 1) * l->chunks_per_seg);
		int pr = tfiles_punch(&t->cf->tf, l, tier, k, 0, (end - k) << l->shift);
		if (pr && !r)
			r = pr;
		k = end;
	}
	return r;
}

static int publish_op(struct cmap_txn *t, const struct cmap_op *op)
{
	struct cmap_file *cf = t->cf;
	int r = 0;

	for (uint64_t k = cmap_next_mapped(cf, op->k0); k < op->k1;) {
		int tid = cm_tier(cmap_get(cf, k));
		uint64_t run = k + 1;
		while (run < op->k1 && cm_tier(cmap_get(cf, run)) == tid)
			run++;
		/* rewritten in place on the same tier: nothing to give back; a
		 * move gives the space back now and punches the slot later */
		if (op->defer && cm_tier(op->val) != tid) {
			tier_release(t->cm->conf.tier_by_id[tid], run - k);
			for (uint64_t c = k; c < run; c++)
				add_deferred(t->cm, cf->ino, c, tid);
		} else if (!op->val || cm_tier(op->val) != tid) {
			int pr = release_run(t, tid, k, run);
			if (pr && !r)
				r = pr;
		}
		for (uint64_t c = k; c < run; c++) {
			ct_put(cf, c, op->val);
			bump_gen(t->cm, cf->ino, c);
		}
		k = run < op->k1 ? cmap_next_mapped(cf, run) : op->k1;
	}
	if (op->val) /* a hole before: set it (the loop only saw mapped chunks) */
		for (uint64_t k = op->k0; k < op->k1; k++)
			if (cmap_get(cf, k) != op->val) {
				ct_put(cf, k, op->val);
				bump_gen(t->cm, cf->ino, k);
			}
	return r;
}

int cmap_txn_publish(struct cmap_txn *t)
{
	int r = 0;

	for (unsigned i = 0; i < t->n; i++)
		cancel_deferred(t->cm, t->cf->ino, t->ops[i].k0, t->ops[i].k1);
	/* savings before the chunk counts: a reader in between sees the tier
	 * fuller than it is, never emptier */
	for (int tid = 0; tid < SILT_MAX_TIERS; tid++)
		if (t->saved[tid] && t->cm->conf.tier_by_id[tid])
			tier_saved_add(t->cm->conf.tier_by_id[tid], t->saved[tid]);
	for (unsigned i = 0; i < t->n; i++) {
		int pr = t->ops[i].drop ? publish_drop(t) : publish_op(t, &t->ops[i]);
		if (pr && !r)
			r = pr;
	}
	if (r)
		log_warn("inode %llu: punching an old chunk slot failed (%s): space is wasted until fsck",
			 (unsigned long long)t->cf->ino, strerror(-r));
	return r;
}
