/*
 * heat.c - the access recorder, per-chunk heat and the live policy.
 *
 *   struct ring    one per recording thread: a single-producer,
 *                  single-consumer queue of accesses (the thread writes the
 *                  head, the recorder the tail; no lock on either side)
 *   struct hpage   4096 chunks' heat bytes and the decay epoch they are at
 *   struct hfile   a touched (or weighted) file's heat pages and weight,
 *                  in a hash by inode
 *   struct heat    the rings, the policy, the files, the recorder thread
 *
 * Why rings: the I/O path must not take a lock that the recorder (or a
 * planner reading the policy) holds for long; a full ring drops the access
 * rather than wait, and says so in the stats. Why decay by epochs: halving
 * every chunk's heat each half-life would touch every page; instead a page
 * remembers the epoch its bytes are at and is brought up to date (shifted
 * right by the epochs it missed) when it is next read or written.
 *
 * The policy and the files are guarded by one mutex, held by the recorder
 * while it applies a drained batch and by readers (planner, siltctl) while
 * they look. Rings live until heat_stop(): a thread that exits leaves its
 * ring idle, and their number is bounded.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "predictor/heat.h"
#include "predictor/placement.h"

#define RING_SIZE 4096u
#define MAX_RINGS 128
#define PAGE_SHIFT 12
#define PAGE_CHUNKS (1u << PAGE_SHIFT)
#define DRAIN_MS 10
#define REC_CHUNKS_MAX 4096 /* a record covers at most this many chunks */

struct rec {
	uint64_t ino, k0;
	uint32_t n;
	uint32_t write;
};

struct ring {
	_Atomic uint32_t head, tail;
	struct rec e[RING_SIZE];
};

struct hpage {
	uint32_t epoch;
	uint8_t h[PAGE_CHUNKS];
};

struct hfile {
	uint64_t ino;
	struct hfile *next;
	uint64_t npages;
	struct hpage **pages;
	unsigned weight;   /* 0 or 1: none (heat.h, heat_set_weight) */
};

struct heat {
	struct heat_conf conf;
	pthread_key_t key;                   /* this thread's ring */
	pthread_mutex_t rings_lock;          /* adding a ring */
	struct ring *rings[MAX_RINGS];
	_Atomic unsigned nrings;
	_Atomic uint64_t dropped;

	pthread_mutex_t lock;                /* everything below */
	policy_t *pol;
	struct hfile **ftab;
	size_t fsize, fcount;
	uint64_t t0_ns, window_start_ns;
	uint64_t recorded, windows, win_acc, win_chunks, last_acc, last_chunks;

	pthread_t thread;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cv;
	int stopping;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint32_t epoch_now(const struct heat *h)
{
	return (uint32_t)((now_ns() - h->t0_ns) / (h->conf.half_life_s * 1000000000ull));
}

/* ---- files and their heat pages (h->lock held) ---- */

static size_t fhash(const struct heat *h, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 24) & (h->fsize - 1);
}

static struct hfile *file_find(struct heat *h, uint64_t ino)
{
	for (struct hfile *f = h->ftab[fhash(h, ino)]; f; f = f->next)
		if (f->ino == ino)
			return f;
	return NULL;
}

static void ftab_grow(struct heat *h)
{
	size_t old = h->fsize, nsize = old * 2;
	struct hfile **n = calloc(nsize, sizeof(*n)), **o = h->ftab;

	if (!n)
		return; /* longer chains; still right */
	h->ftab = n;
	h->fsize = nsize;
	for (size_t i = 0; i < old; i++)
		for (struct hfile *f = o[i], *next; f; f = next) {
			next = f->next;
			f->next = n[fhash(h, f->ino)];
			n[fhash(h, f->ino)] = f;
		}
	free(o);
}

static struct hfile *file_get(struct heat *h, uint64_t ino)
{
	struct hfile *f = file_find(h, ino);

	if (f || !(f = calloc(1, sizeof(*f))))
		return f;
	f->ino = ino;
	f->next = h->ftab[fhash(h, ino)];
	h->ftab[fhash(h, ino)] = f;
	if (++h->fcount > h->fsize)
		ftab_grow(h);
	return f;
}

static void file_free(struct hfile *f)
{
	for (uint64_t i = 0; i < f->npages; i++)
		free(f->pages[i]);
	free(f->pages);
	free(f);
}

/* The page of chunk k, brought up to epoch e; created when create is set. */
static struct hpage *page_get(struct hfile *f, uint64_t k, uint32_t e, int create)
{
	uint64_t p = k >> PAGE_SHIFT;
	struct hpage *pg;

	if (p >= f->npages) {
		if (!create)
			return NULL;
		uint64_t n = f->npages ? f->npages : 4;
		while (n <= p)
			n *= 2;
		struct hpage **np = realloc(f->pages, n * sizeof(*np));
		if (!np)
			return NULL;
		memset(np + f->npages, 0, (n - f->npages) * sizeof(*np));
		f->pages = np;
		f->npages = n;
	}
	if (!(pg = f->pages[p])) {
		if (!create || !(pg = calloc(1, sizeof(*pg))))
			return NULL;
		pg->epoch = e;
		f->pages[p] = pg;
	}
	if (pg->epoch < e) {
		uint32_t shift = e - pg->epoch;
		for (unsigned i = 0; i < PAGE_CHUNKS; i++)
			pg->h[i] = shift >= 8 ? 0 : (uint8_t)(pg->h[i] >> shift);
		pg->epoch = e;
	}
	return pg;
}

/* ---- recording ---- */

static struct ring *my_ring(struct heat *h)
{
	struct ring *r = pthread_getspecific(h->key);

	if (r)
		return r;
	pthread_mutex_lock(&h->rings_lock);
	unsigned n = atomic_load(&h->nrings);
	if (n < MAX_RINGS && (r = calloc(1, sizeof(*r)))) {
		h->rings[n] = r;
		atomic_store(&h->nrings, n + 1);
	}
	pthread_mutex_unlock(&h->rings_lock);
	if (r)
		pthread_setspecific(h->key, r);
	return r;
}

void heat_record(struct heat *h, uint64_t ino, uint64_t k0, uint64_t k1, int write)
{
	struct ring *r = my_ring(h);
	uint32_t head, tail;

	if (!r) {
		atomic_fetch_add_explicit(&h->dropped, 1, memory_order_relaxed);
		return;
	}
	head = atomic_load_explicit(&r->head, memory_order_relaxed);
	tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (head - tail >= RING_SIZE) {
		atomic_fetch_add_explicit(&h->dropped, 1, memory_order_relaxed);
		return;
	}
	r->e[head & (RING_SIZE - 1)] = (struct rec){ .ino = ino, .k0 = k0,
		.n = (uint32_t)(k1 - k0 + 1 > REC_CHUNKS_MAX ? REC_CHUNKS_MAX : k1 - k0 + 1), .write = !!write };
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
}

/* One access: heat and policy (h->lock held). */
static void apply(struct heat *h, const struct rec *rc, uint32_t e)
{
	struct hfile *f = file_get(h, rc->ino);
	unsigned w = f && f->weight > 1 ? f->weight : 1, reps = w < HEAT_POLICY_REPEAT ? w : HEAT_POLICY_REPEAT;

	for (uint32_t i = 0; i < rc->n; i++) {
		uint64_t k = rc->k0 + i;
		struct hpage *pg = f ? page_get(f, k, e, 1) : NULL;
		if (pg) {
			uint8_t *b = &pg->h[k & (PAGE_CHUNKS - 1)];
			*b = (uint8_t)(*b + w > 255 ? 255 : *b + w);
		}
		if (h->pol && rc->ino <= PRED_MAX_FILE && k <= PRED_MAX_CHUNK)
			for (unsigned j = 0; j < reps; j++)
				policy_access(h->pol, PRED_KEY(rc->ino, k), POLICY_NEVER);
	}
	h->recorded++;
	h->win_acc++;
	h->win_chunks += rc->n;
}

static void close_windows(struct heat *h, uint64_t now)
{
	uint64_t len = (uint64_t)h->conf.window_ms * 1000000ull;

	while (now - h->window_start_ns >= len) {
		h->last_acc = h->win_acc;
		h->last_chunks = h->win_chunks;
		h->win_acc = h->win_chunks = 0;
		h->windows++;
		h->window_start_ns += len;
	}
}

static void drain(struct heat *h)
{
	unsigned n = atomic_load(&h->nrings);
	uint32_t e = epoch_now(h);

	pthread_mutex_lock(&h->lock);
	for (unsigned i = 0; i < n; i++) {
		struct ring *r = h->rings[i];
		uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
		uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
		for (; tail != head; tail++)
			apply(h, &r->e[tail & (RING_SIZE - 1)], e);
		atomic_store_explicit(&r->tail, tail, memory_order_release);
	}
	close_windows(h, now_ns());
	pthread_mutex_unlock(&h->lock);
}

void heat_sync(struct heat *h)
{
	drain(h);
}

static void *recorder(void *arg)
{
	struct heat *h = arg;

	pthread_setname_np(pthread_self(), "silt-heat");
	pthread_mutex_lock(&h->stop_lock);
	while (!h->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += DRAIN_MS * 1000000l;
		if (ts.tv_nsec >= 1000000000l) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000l;
		}
		pthread_cond_timedwait(&h->stop_cv, &h->stop_lock, &ts);
		pthread_mutex_unlock(&h->stop_lock);
		drain(h);
		pthread_mutex_lock(&h->stop_lock);
	}
	pthread_mutex_unlock(&h->stop_lock);
	return NULL;
}

/* ---- life cycle ---- */

int heat_policy_ok(enum policy_kind kind)
{
	return (unsigned)kind < POLICY__COUNT && kind != POLICY_BELADY && kind != POLICY_LEARNED &&
	       kind != POLICY_MIX;
}

void heat_policy_names(char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int k = 0; k < POLICY__COUNT && n < len; k++)
		if (heat_policy_ok((enum policy_kind)k))
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "",
					      policy_kind_name((enum policy_kind)k));
}

static int make_policy(enum policy_kind kind, uint64_t capacity, policy_t **out)
{
	if (!heat_policy_ok(kind))
		return -EINVAL;
	return policy_create(kind, capacity, out);
}

int heat_start(const struct heat_conf *c, struct heat **out)
{
	struct heat *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return -ENOMEM;
	h->conf = *c;
	if (!h->conf.half_life_s)
		h->conf.half_life_s = 60;
	if (!h->conf.window_ms)
		h->conf.window_ms = 1000;
	h->fsize = 64;
	if (!(h->ftab = calloc(h->fsize, sizeof(*h->ftab)))) {
		free(h);
		return -ENOMEM;
	}
	if ((r = make_policy(c->policy, c->capacity, &h->pol)) || (r = -pthread_key_create(&h->key, NULL))) {
		policy_destroy(h->pol);
		free(h->ftab);
		free(h);
		return r;
	}
	pthread_mutex_init(&h->rings_lock, NULL);
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->stop_lock, NULL);
	pthread_cond_init(&h->stop_cv, NULL);
	h->t0_ns = h->window_start_ns = now_ns();
	if ((r = -pthread_create(&h->thread, NULL, recorder, h))) {
		h->thread = 0;
		heat_stop(h);
		return r;
	}
	*out = h;
	return 0;
}

void heat_stop(struct heat *h)
{
	if (!h)
		return;
	if (h->thread) {
		pthread_mutex_lock(&h->stop_lock);
		h->stopping = 1;
		pthread_cond_signal(&h->stop_cv);
		pthread_mutex_unlock(&h->stop_lock);
		pthread_join(h->thread, NULL);
	}
	for (unsigned i = 0; i < atomic_load(&h->nrings); i++)
		free(h->rings[i]);
	for (size_t i = 0; i < h->fsize; i++)
		for (struct hfile *f = h->ftab[i], *next; f; f = next) {
			next = f->next;
			file_free(f);
		}
	free(h->ftab);
	policy_destroy(h->pol);
	pthread_key_delete(h->key);
	pthread_mutex_destroy(&h->rings_lock);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->stop_lock);
	pthread_cond_destroy(&h->stop_cv);
	free(h);
}

/* ---- queries ---- */

int heat_set_policy(struct heat *h, enum policy_kind kind, uint64_t capacity)
{
	policy_t *p;
	int r = make_policy(kind, capacity, &p);

	if (r)
		return r;
	pthread_mutex_lock(&h->lock);
	policy_destroy(h->pol);
	h->pol = p;
	h->conf.policy = kind;
	h->conf.capacity = capacity;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

unsigned heat_of(struct heat *h, uint64_t ino, uint64_t k)
{
	unsigned v = 0;

	pthread_mutex_lock(&h->lock);
	struct hfile *f = file_find(h, ino);
	struct hpage *pg = f ? page_get(f, k, epoch_now(h), 0) : NULL;
	if (pg)
		v = pg->h[k & (PAGE_CHUNKS - 1)];
	pthread_mutex_unlock(&h->lock);
	return v;
}

int heat_contains(struct heat *h, uint64_t ino, uint64_t k)
{
	int r = 0;

	if (ino > PRED_MAX_FILE || k > PRED_MAX_CHUNK)
		return 0;
	pthread_mutex_lock(&h->lock);
	if (h->pol)
		r = policy_contains(h->pol, PRED_KEY(ino, k));
	pthread_mutex_unlock(&h->lock);
	return r;
}

long heat_place(struct heat *h, const uint64_t *caps, unsigned ntiers, uint64_t *keys,
		uint8_t *tiers, size_t max)
{
	long r;

	pthread_mutex_lock(&h->lock);
	r = h->pol ? policy_place(h->pol, caps, ntiers, keys, tiers, max) : 0;
	pthread_mutex_unlock(&h->lock);
	return r;
}

int heat_set_weight(struct heat *h, uint64_t ino, unsigned weight)
{
	int r = 0;

	pthread_mutex_lock(&h->lock);
	struct hfile *f = weight > 1 ? file_get(h, ino) : file_find(h, ino);
	if (f)
		f->weight = weight > 255 ? 255 : weight;
	else if (weight > 1)
		r = -ENOMEM;
	pthread_mutex_unlock(&h->lock);
	return r;
}

unsigned heat_weight(struct heat *h, uint64_t ino)
{
	pthread_mutex_lock(&h->lock);
	struct hfile *f = file_find(h, ino);
	unsigned w = f && f->weight > 1 ? f->weight : 1;
	pthread_mutex_unlock(&h->lock);
	return w;
}

void heat_forget_file(struct heat *h, uint64_t ino)
{
	pthread_mutex_lock(&h->lock);
	struct hfile **pp = &h->ftab[fhash(h, ino)];
	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->next;
	if (*pp) {
		struct hfile *f = *pp;
		*pp = f->next;
		h->fcount--;
		file_free(f);
	}
	pthread_mutex_unlock(&h->lock);
}

void heat_stats(struct heat *h, struct heat_stats *s)
{
	pthread_mutex_lock(&h->lock);
	s->policy = h->conf.policy;
	s->capacity = h->conf.capacity;
	s->resident = h->pol ? policy_size(h->pol) : 0;
	s->recorded = h->recorded;
	s->windows = h->windows;
	s->last_window_accesses = h->last_acc;
	s->last_window_chunks = h->last_chunks;
	pthread_mutex_unlock(&h->lock);
	s->dropped = atomic_load(&h->dropped);
}
