/* The sender of one peer (sender.h).
 *
 * One thread ("silt-tx-NAME") that connects, authenticates, asks the
 * receiver what it holds (STATE) and then ships, in this order of need:
 *   - a full sync, when the peer owes one (a new peer, or a replica that
 *     lost what we shipped): the namespace, then every chunk of every file
 *     in inode order, in RESYNC batches of FULL_BATCH chunks, the position
 *     reached kept in the journal after each acknowledgement;
 *   - a resync from the peer's dirty set (the journal's fallback when the
 *     peer fell too far behind), the same way;
 *   - journal batches: everything the peer has not acknowledged up to a
 *     cut, coalesced, as one JOURNAL batch that the receiver applies
 *     whole; then the acknowledgement moves the peer's position on.
 * The operator's facts (pins, live rules, the event log: vol.h) go whole,
 * as FACT messages at the end of a journal batch whose entries say they
 * changed (JE_FACTS), and with the namespace of every full sync and resync.
 * RESYNC batches are pipelined: up to WINDOW of them in flight, their
 * acknowledgements (the receiver sends them in order) read as they come
 * back, each moving the recorded position (the full sync's, or the dirty
 * set's entries dropped) only once it arrives, so that a cut or a kill
 * with batches in flight resumes from the last one the receiver applied
 * and sends the others again (applying them twice is harmless).
 * State is read when shipping (journal.h): a chunk is read through the
 * engine's API, compressed and checksummed (proto.h). Any error ends the
 * connection; the next one starts again from what the peer says it has, so
 * resuming needs no other state. The thread sleeps on poll() with a pipe
 * that sender_stop() writes to; a blocked send or receive is broken by
 * shutting the socket down. */
#include "sync/sender.h"
#include "sync/chan.h"
#include "sync/sync.h"
#include "sync/journal.h"
#include "sync/proto.h"
#include "sync/schedule.h"
#include "fs/ctl.h"
#include "fs/vol.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FULL_BATCH 256         /* chunks per RESYNC batch... */
#define BATCH_BYTES (16u << 20) /* ...and raw bytes, at most */
#define WINDOW 4               /* RESYNC batches in flight, unacknowledged */
#define DIRTY_BATCH 64         /* dirty-set entries per RESYNC batch */
#define JOURNAL_MAX 8192       /* entries per JOURNAL batch */
#define NET_TIMEOUT_MS 15000
#define SCHED_TICK_MS 200     /* the quiet-period forecaster's tick */
#define SCHED_BUSY_WRITES 100 /* foreground writes a second that make a tick busy */
#define REDIAL_MAX_MS 500      /* a peer that comes back is seen this soon (a SYN each time) */

struct sync_sender {
	struct sender_conf c;
	pthread_t thread;
	int wake[2];
	_Atomic int stop;
	_Atomic int fd;
	struct sync_chan *ch;
	struct sync_sched *sched; /* when to cut the next batch */
	struct proto_buf out;
	uint8_t *raw, *z;         /* a chunk, and its compressed form */
	uint64_t batch_msgs;      /* messages in the batch being sent */
	uint64_t tb_start_ns, tb_bytes; /* bandwidth cap: bytes sent since tb_start */
	struct inflight {         /* a RESYNC batch sent, its ACK awaited: what it settles */
		uint64_t ino, next;       /* full sync: the position once acknowledged */
		struct journal_entry *e;  /* resync: the entries to drop (malloc'd) */
		size_t n;
		uint64_t done;            /* progress it makes */
	} win[WINDOW];
	unsigned win_head, win_n;
	uint64_t win_seq;         /* the seq the batches in flight carry */

	pthread_mutex_t lock;     /* what status reports */
	const char *state;
	char error[256];
	uint64_t sent_bytes, data_bytes, chunks, batches, last_ack_wall;
	uint64_t full_done, full_total;
	uint64_t verify_runs, verify_files, verify_chunks, verify_differ, verify_last_wall;
	_Atomic int verify_asked;
	uint64_t shipping_since_ns; /* first change of the batch on its way, 0 = none */
	double rate;              /* wire bytes per second, smoothed */
	uint64_t rate_ns, rate_bytes;
};

static void set_state(struct sync_sender *s, const char *state, const char *err)
{
	pthread_mutex_lock(&s->lock);
	/* a peer that refuses us stays "refused" while we keep trying */
	int retrying = !strcmp(state, "connecting") || !strcmp(state, "handshake");
	if (!(retrying && s->state && (!strcmp(s->state, "refused") || !strcmp(s->state, "split-brain"))))
		s->state = state;
	if (err)
		snprintf(s->error, sizeof(s->error), "%.*s", (int)sizeof(s->error) - 1, err);
	pthread_mutex_unlock(&s->lock);
}

/* Sleep ms, or less if told to stop. */
static void nap(struct sync_sender *s, int ms)
{
	struct pollfd p = { .fd = s->wake[0], .events = POLLIN };
	poll(&p, 1, ms);
}

/* ---- sending ---- */

static void throttle(struct sync_sender *s, size_t n)
{
	uint64_t now = silt_now_ns();
	pthread_mutex_lock(&s->lock);
	s->sent_bytes += n;
	s->rate_bytes += n;
	if (now - s->rate_ns >= 1000000000ull) {
		double inst = (double)s->rate_bytes * 1e9 / (double)(now - s->rate_ns);
		s->rate = s->rate_ns ? 0.5 * s->rate + 0.5 * inst : inst;
		s->rate_ns = now;
		s->rate_bytes = 0;
	}
	pthread_mutex_unlock(&s->lock);
	if (!s->c.bandwidth)
		return;
	if (now - s->tb_start_ns > 2000000000ull) { /* a fresh window every 2 s */
		s->tb_start_ns = now;
		s->tb_bytes = 0;
	}
	s->tb_bytes += n;
	uint64_t due_ns = s->tb_bytes * 1000000000ull / s->c.bandwidth;
	if (due_ns > now - s->tb_start_ns)
		nap(s, (int)((due_ns - (now - s->tb_start_ns)) / 1000000) + 1);
}

static int send_msg(struct sync_sender *s, const struct proto_msg *m)
{
	int r = proto_encode(m, &s->out);
	uint64_t before, after, rx;

	if (r)
		return r;
	chan_counters(s->ch, &before, &rx);
	if ((r = chan_send(s->ch, s->out.p, s->out.len)))
		return r;
	chan_counters(s->ch, &after, &rx);
	s->batch_msgs++;
	throttle(s, after - before);
	return atomic_load(&s->stop) ? -EINTR : 0;
}

static int recv_msg(struct sync_sender *s, struct proto_msg *m, enum msg_type want)
{
	const void *buf;
	const char *why;
	size_t len;
	int r = chan_recv(s->ch, &buf, &len);

	if (r)
		return r;
	if (proto_decode(buf, len, m, &why)) {
		log_err("replication to %s: bad message from the peer: %s", s->c.name, why);
		return -EBADMSG;
	}
	if (m->type == M_ERR) {
		char e[300];
		snprintf(e, sizeof(e), "the peer refused: %s", m->err.text);
		set_state(s, "refused", e);
		log_err("replication to %s: %s", s->c.name, e);
		return -(m->err.code ? m->err.code : EPROTO);
	}
	return m->type == want ? 0 : -EPROTO;
}

/* ---- what a volume holds ---- */

static void node_of(const struct stat *st, struct msg_node *n)
{
	memset(n, 0, offsetof(struct msg_node, xattr));
	n->ino = st->st_ino;
	n->mode = st->st_mode;
	n->uid = st->st_uid;
	n->gid = st->st_gid;
	n->nlink = (uint32_t)st->st_nlink;
	n->rdev = (uint32_t)st->st_rdev;
	n->size = (uint64_t)st->st_size;
	n->atime = (int64_t)st->st_atim.tv_sec * 1000000000 + st->st_atim.tv_nsec;
	n->mtime = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	n->ctime = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	n->symlink = "";
}

/* The chunks a file of st's size spans. */
static uint64_t chunks_of(const struct sync_sender *s, const struct stat *st)
{
	return ((uint64_t)st->st_size + s->c.chunk_size - 1) / s->c.chunk_size;
}

/* NODE: attributes, symlink target, xattrs. */
static int send_node(struct sync_sender *s, uint64_t ino, struct stat *st_out)
{
	struct proto_msg m = { .type = M_NODE };
	static __thread char link[PROTO_MAX_LINK + 1], names[65536];
	static __thread char values[PROTO_MAX_XATTRS][1024];
	struct stat st;
	int r = vol_getattr(s->c.vol, ino, &st);

	if (r)
		return r;
	node_of(&st, &m.node);
	if (S_ISLNK(st.st_mode)) {
		if ((r = vol_readlink(s->c.vol, ino, link, sizeof(link))))
			return r;
		m.node.symlink = link;
	}
	int nl = vol_listxattr(s->c.vol, ino, names, sizeof(names));
	for (int off = 0; nl > 0 && off < nl && m.node.nxattr < PROTO_MAX_XATTRS;) {
		const char *name = names + off;
		int vl = vol_getxattr(s->c.vol, ino, name, values[m.node.nxattr], sizeof(values[0]));
		if (vl >= 0) /* larger values than 1 KiB are not replicated (logged once) */
			m.node.xattr[m.node.nxattr++] = (struct proto_xattr){ name, values[m.node.nxattr], (uint32_t)vl };
		else if (vl == -ERANGE)
			log_warn("replication: inode %llu xattr %s is over 1 KiB: not replicated",
				 (unsigned long long)ino, name);
		off += (int)strlen(name) + 1;
	}
	if (st_out)
		*st_out = st;
	return send_msg(s, &m);
}

static int send_attr(struct sync_sender *s, uint64_t ino)
{
	struct proto_msg m = { .type = M_ATTR };
	struct stat st;
	int r = vol_getattr(s->c.vol, ino, &st);

	if (r == -ENOENT)
		return 0; /* gone since: the namespace says so */
	if (r)
		return r;
	node_of(&st, &m.node);
	return send_msg(s, &m);
}

/* A set of inode numbers (hard links are sent once). */
struct inoset {
	uint64_t *v;
	size_t n, cap;
};

static int inoset_add(struct inoset *set, uint64_t ino)
{
	if (set->n * 2 >= set->cap) {
		size_t nc = set->cap ? set->cap * 2 : 1024;
		uint64_t *nv = calloc(nc, sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		for (size_t i = 0; i < set->cap; i++)
			if (set->v[i])
				for (size_t h = set->v[i] * 0x9E3779B97F4A7C15ull % nc;; h = (h + 1) % nc)
					if (!nv[h]) {
						nv[h] = set->v[i];
						break;
					}
		free(set->v);
		set->v = nv;
		set->cap = nc;
	}
	for (size_t h = ino * 0x9E3779B97F4A7C15ull % set->cap;; h = (h + 1) % set->cap) {
		if (set->v[h] == ino)
			return 0;
		if (!set->v[h]) {
			set->v[h] = ino;
			set->n++;
			return 1;
		}
	}
}

struct walk {
	struct sync_sender *s;
	uint64_t dir;
	struct inoset seen;
	uint64_t *queue, *files; /* directories to list; regular files (for a full sync) */
	size_t nq, qcap, nfiles, fcap;
	uint64_t chunks;         /* of all regular files */
	int quiet;               /* only collect the files, send nothing */
	int r;
};

static int push_u64(uint64_t **a, size_t *n, size_t *cap, uint64_t v)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		uint64_t *na = realloc(*a, nc * sizeof(*na));
		if (!na)
			return -ENOMEM;
		*a = na;
		*cap = nc;
	}
	(*a)[(*n)++] = v;
	return 0;
}

static int walk_entry(void *ctx, const char *name, uint64_t ino, mode_t type, uint64_t next_off)
{
	struct walk *w = ctx;
	struct proto_msg m = { .type = M_DENT, .dent = { .parent = w->dir, .ino = ino, .type = type & S_IFMT } };
	struct stat st;

	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	snprintf(m.dent.name, sizeof(m.dent.name), "%s", name);
	if (!w->quiet && (w->r = send_msg(w->s, &m)))
		return 1;
	int fresh = inoset_add(&w->seen, ino);
	if (fresh < 0 || (fresh && (w->r = w->quiet ? vol_getattr(w->s->c.vol, ino, &st) : send_node(w->s, ino, &st)))) {
		w->r = fresh < 0 ? fresh : w->r;
		return 1;
	}
	if (fresh && S_ISDIR(st.st_mode))
		w->r = push_u64(&w->queue, &w->nq, &w->qcap, ino);
	else if (fresh && S_ISREG(st.st_mode)) {
		w->r = push_u64(&w->files, &w->nfiles, &w->fcap, ino);
		w->chunks += ((uint64_t)st.st_size + w->s->c.chunk_size - 1) / w->s->c.chunk_size;
	}
	return w->r ? 1 : 0;
}

/* The whole namespace as NODE and DENT messages, breadth first (quiet:
 * only the list of regular files). */
static int walk_namespace(struct sync_sender *s, struct walk *w, int quiet)
{
	memset(w, 0, sizeof(*w));
	w->s = s;
	w->quiet = quiet;
	inoset_add(&w->seen, 1);
	if ((!quiet && (w->r = send_node(s, 1, NULL))) || (w->r = push_u64(&w->queue, &w->nq, &w->qcap, 1)))
		return w->r;
	for (size_t qi = 0; qi < w->nq && !w->r; qi++) {
		struct silt_dir *d;
		w->dir = w->queue[qi];
		int r = vol_opendir(s->c.vol, w->dir, &d);
		if (r == -ENOENT || r == -ENOTDIR)
			continue; /* gone while we walked: the next namespace has it right */
		if (r)
			return r;
		r = vol_readdir(s->c.vol, d, 0, walk_entry, w);
		vol_releasedir(s->c.vol, d);
		if (r && !w->r)
			w->r = r;
	}
	return w->r;
}

static int send_namespace(struct sync_sender *s, struct walk *w)
{
	return walk_namespace(s, w, 0);
}

static void walk_free(struct walk *w)
{
	free(w->seen.v);
	free(w->queue);
	free(w->files);
}

/* CHUNK k of ino as it is now (a hole where nothing is mapped). */
static int send_chunk(struct sync_sender *s, struct silt_file *f, uint64_t ino, uint64_t k, uint64_t size)
{
	uint64_t cs = s->c.chunk_size, off = k * cs;
	struct proto_msg m = { .type = M_CHUNK, .chunk = { .ino = ino, .index = k } };
	int r;

	if (off >= size)
		return 0; /* past the end: the size says it all */
	uint32_t len = (uint32_t)MIN(cs, size - off);
	off_t data = vol_lseek(s->c.vol, f, (off_t)off, SEEK_DATA);
	if (data == -ENXIO || (data >= 0 && (uint64_t)data >= off + len)) {
		m.chunk.len = len;
		m.chunk.codec = CODEC_HOLE;
		m.chunk.xxh3 = 0;
	} else {
		/* (a file that shrank meanwhile reads as zeros: the size will say) */
		if ((r = vol_read_full(s->c.vol, f, s->raw, len, (off_t)off)))
			return r;
		if ((r = proto_chunk_pack(s->raw, len, 1, s->z, &m.chunk)))
			return r;
	}
	pthread_mutex_lock(&s->lock);
	s->data_bytes += len;
	s->chunks++;
	pthread_mutex_unlock(&s->lock);
	return send_msg(s, &m);
}

/* Chunks first..last of ino (clipped to its size). */
static int send_range(struct sync_sender *s, uint64_t ino, uint64_t first, uint64_t last)
{
	struct silt_file *f;
	struct stat st;
	int r = vol_getattr(s->c.vol, ino, &st);

	if (r == -ENOENT)
		return 0;
	if (r)
		return r;
	if (!S_ISREG(st.st_mode))
		return 0;
	if ((r = vol_open_file(s->c.vol, ino, O_RDONLY, &f)))
		return r == -ENOENT ? 0 : r;
	uint64_t end = chunks_of(s, &st);
	for (uint64_t k = first; k <= last && k < end && !r; k++)
		r = send_chunk(s, f, ino, k, (uint64_t)st.st_size);
	vol_release(s->c.vol, f);
	return r;
}

/* What entries say changed: with attrs, the attributes first (a file's
 * new chunks come with its new size, and the replica keeps nothing past
 * the end it knows; read now, the size covers every write the entries
 * record), then the data. */
static int send_entries(struct sync_sender *s, const struct journal_entry *e, size_t n, int attrs)
{
	int r = 0;

	for (size_t i = 0; i < n && !r && attrs; i++)
		if ((e[i].flags & JE_ATTR) && e[i].first == JE_INODE)
			r = send_attr(s, e[i].ino);
	for (size_t i = 0; i < n && !r; i++)
		if ((e[i].flags & JE_DATA) && e[i].first != JE_INODE)
			r = send_range(s, e[i].ino, e[i].first, e[i].last);
	return r;
}

/* ---- facts: pins, live rules, events (vol.h) ---- */

static int send_fact(void *ctx, const struct vol_fact *f)
{
	struct sync_sender *s = ctx;
	struct proto_msg m = { .type = M_FACT };
	static const uint32_t kinds[] = { [VOL_FACT_PIN] = FACT_PIN, [VOL_FACT_RULE] = FACT_RULE,
					  [VOL_FACT_EVENT] = FACT_EVENT };

	m.fact = (struct msg_fact){ .kind = kinds[f->kind], .id = f->id, .time = f->time_ns, .sub = f->sub };
	snprintf(m.fact.name, sizeof(m.fact.name), "%s", f->name);
	snprintf(m.fact.text, sizeof(m.fact.text), "%.*s",
		 f->kind == VOL_FACT_EVENT ? PROTO_MAX_EVENT_TEXT : PROTO_MAX_FACT_TEXT, f->text);
	if (proto_fact_problem(&m.fact)) { /* (a record the peer would refuse) */
		log_warn("replication to %s: %s %s is not replicated: %s", s->c.name,
			 f->kind == VOL_FACT_PIN ? "the pin of" : f->kind == VOL_FACT_RULE ? "rule" : "event",
			 f->kind == VOL_FACT_RULE ? f->name : "a record", proto_fact_problem(&m.fact));
		return 0;
	}
	return send_msg(s, &m);
}

/* The whole set, which replaces the replica's. */
static int send_facts(struct sync_sender *s)
{
	struct proto_msg m = { .type = M_FACT, .fact = { .kind = FACT_ALL } };
	int r = send_msg(s, &m);

	return r ? r : vol_facts_list(s->c.vol, send_fact, s);
}

/* ---- batches ---- */

static int begin_batch(struct sync_sender *s, uint64_t seq, unsigned kind, int ns)
{
	struct proto_msg m = { .type = M_BATCH, .batch = { .seq = seq, .kind = kind, .ns = (uint64_t)ns } };
	int r = send_msg(s, &m);
	s->batch_msgs = 0; /* what END counts: the messages between */
	return r;
}

static int send_end(struct sync_sender *s, uint64_t seq)
{
	struct proto_msg m = { .type = M_END, .end = { .seq = seq, .count = s->batch_msgs } };
	return send_msg(s, &m);
}

static int wait_ack(struct sync_sender *s, uint64_t seq)
{
	struct proto_msg m;
	int r = recv_msg(s, &m, M_ACK);

	if (!r && m.ack.seq != seq)
		r = -EPROTO;
	if (!r) {
		pthread_mutex_lock(&s->lock);
		s->batches++;
		s->last_ack_wall = silt_wall_ns();
		pthread_mutex_unlock(&s->lock);
	}
	return r;
}

/* END, and wait for its ACK. */
static int end_batch(struct sync_sender *s, uint64_t seq)
{
	int r = send_end(s, seq);
	return r ? r : wait_ack(s, seq);
}

/* ---- the window of RESYNC batches in flight ---- */

/* The oldest batch's ACK: record what it settles. */
static int win_ack(struct sync_sender *s)
{
	struct inflight *b = &s->win[s->win_head];
	int r = wait_ack(s, s->win_seq);

	if (!r)
		r = b->e ? journal_dirty_drop(s->c.journal, s->c.peer, b->e, b->n)
			 : journal_set_full(s->c.journal, s->c.peer, 1, b->ino, b->next);
	if (r)
		return r;
	pthread_mutex_lock(&s->lock);
	s->full_done += b->done;
	pthread_mutex_unlock(&s->lock);
	free(b->e);
	b->e = NULL;
	s->win_head = (s->win_head + 1) % WINDOW;
	s->win_n--;
	return 0;
}

/* An ACK already here (never waits)? */
static int ack_ready(struct sync_sender *s)
{
	struct pollfd p = { .fd = atomic_load(&s->fd), .events = POLLIN };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* END of a batch that settles *b once acknowledged (b->e is the window's
 * from now on); read the ACKs that came back meanwhile, and wait for the
 * oldest while the window is full. */
static int win_end(struct sync_sender *s, uint64_t seq, const struct inflight *b)
{
	int r = send_end(s, seq);

	if (r) {
		free(b->e);
		return r;
	}
	s->win_seq = seq;
	s->win[(s->win_head + s->win_n++) % WINDOW] = *b;
	while (!r && s->win_n && (s->win_n == WINDOW || ack_ready(s)))
		r = win_ack(s);
	return r;
}

static int win_drain(struct sync_sender *s)
{
	int r = 0;
	while (!r && s->win_n)
		r = win_ack(s);
	return r;
}

/* A broken connection: what was in flight settles nothing. */
static void win_forget(struct sync_sender *s)
{
	for (; s->win_n; s->win_n--, s->win_head = (s->win_head + 1) % WINDOW) {
		free(s->win[s->win_head].e);
		s->win[s->win_head].e = NULL;
	}
	s->win_head = 0;
}

/* Chunks a full sync resumed at (pos_ino, pos_k) did before: the files
 * below pos_ino, and pos_ino's chunks below pos_k. */
static uint64_t resumed_chunks(struct sync_sender *s, const struct walk *w, uint64_t pos_ino, uint64_t pos_k)
{
	uint64_t n = 0;
	struct stat st;

	for (size_t i = 0; i < w->nfiles && w->files[i] <= pos_ino; i++) {
		if (vol_getattr(s->c.vol, w->files[i], &st))
			continue;
		uint64_t end = chunks_of(s, &st);
		n += w->files[i] < pos_ino ? end : MIN(pos_k, end);
	}
	return n;
}

/* A full sync from the position the journal keeps. */
static int run_full(struct sync_sender *s)
{
	struct sync_journal *j = s->c.journal;
	uint64_t pos_ino = 0, pos_k = 0, seq = journal_acked(j, s->c.peer);
	struct walk w;
	int r;

	if (journal_full(j, s->c.peer, &pos_ino, &pos_k) <= 0)
		return 0;
	if (pos_ino == 0) {
		/* from the start: everything up to now is in what we read */
		seq = journal_cut(j);
		if ((r = journal_ack(j, s->c.peer, seq)) || (r = journal_dirty_clear(j, s->c.peer)) ||
		    (r = journal_fold_floor_clear(j, s->c.peer)))
			return r;
	}
	if ((r = begin_batch(s, seq, B_RESYNC, 1)) || (r = send_namespace(s, &w)) || (r = send_facts(s)) ||
	    (r = end_batch(s, seq)))
		goto out;
	/* inode order, so that a position means the same after a restart */
	for (size_t i = 1; i < w.nfiles; i++)
		for (size_t x = i; x > 0 && w.files[x - 1] > w.files[x]; x--) {
			uint64_t t = w.files[x];
			w.files[x] = w.files[x - 1];
			w.files[x - 1] = t;
		}
	/* the progress says full-sync only once it counts what a resumed
	 * sync did before (a watcher must never see it start from 0) */
	pthread_mutex_lock(&s->lock);
	s->full_total = w.chunks;
	s->full_done = resumed_chunks(s, &w, pos_ino, pos_k);
	pthread_mutex_unlock(&s->lock);
	set_state(s, "full-sync", NULL);
	uint64_t per = MAX(1, MIN(FULL_BATCH, BATCH_BYTES / s->c.chunk_size));
	for (size_t i = 0; i < w.nfiles && !r; i++) {
		uint64_t ino = w.files[i], k = ino == pos_ino ? pos_k : 0;
		struct stat st;
		if (ino < pos_ino || vol_getattr(s->c.vol, ino, &st))
			continue; /* done before the cut, or gone */
		uint64_t end = chunks_of(s, &st);
		while (k < end && !r) {
			uint64_t last = MIN(end, k + per) - 1;
			struct inflight b = { .ino = ino, .next = last + 1, .done = last + 1 - k };
			if ((r = begin_batch(s, seq, B_RESYNC, 0)) || (r = send_range(s, ino, k, last)) ||
			    (r = win_end(s, seq, &b)))
				break;
			k = last + 1;
		}
	}
	if (!r)
		r = win_drain(s);
	if (!r && !(r = journal_set_full(j, s->c.peer, 0, 0, 0)))
		log_info("replication to %s: full sync done (%zu files, %llu chunks)", s->c.name, w.nfiles,
			 (unsigned long long)w.chunks);
out:
	walk_free(&w);
	return r;
}

/* A resync from the peer's dirty set, until it is empty. */
static int run_resync(struct sync_sender *s)
{
	struct sync_journal *j = s->c.journal;
	uint64_t seq = journal_acked(j, s->c.peer);
	struct journal_entry *e;
	struct journal_stats js;
	struct walk w;
	size_t n;
	int r;

	journal_stats(j, s->c.peer, &js);
	if (!js.dirty)
		return 0;
	set_state(s, "resync", NULL);
	pthread_mutex_lock(&s->lock);
	s->full_total = js.dirty;
	s->full_done = 0;
	pthread_mutex_unlock(&s->lock);
	r = begin_batch(s, seq, B_RESYNC, 1);
	if (!r)
		r = send_namespace(s, &w);
	if (!r)
		r = send_facts(s);
	walk_free(&w);
	if (r || (r = end_batch(s, seq)))
		return r;
	/* passes over the set, each from its start: what a pass leaves (a
	 * fold rewrote it meanwhile) the next one ships again */
	uint64_t ino = 0, first = 0;
	while (!r) {
		if ((r = journal_dirty_read(j, s->c.peer, ino, first, DIRTY_BATCH, &e, &n)))
			break;
		if (!n) {
			if (!s->win_n && !ino && !first)
				break; /* empty */
			if (!(r = win_drain(s)))
				ino = first = 0;
			continue;
		}
		/* on after the last read (an inode's attributes come after its chunks) */
		ino = e[n - 1].ino + (e[n - 1].first == JE_INODE);
		first = e[n - 1].first == JE_INODE ? 0 : e[n - 1].first + 1;
		struct inflight b = { .e = e, .n = n, .done = n };
		if ((r = begin_batch(s, seq, B_RESYNC, 0)) || (r = send_entries(s, e, n, 1))) {
			free(e);
			break;
		}
		r = win_end(s, seq, &b);
	}
	return r;
}

/* One JOURNAL batch: everything up to a cut that the peer lacks. */
static int ship_journal(struct sync_sender *s, uint64_t cut)
{
	struct sync_journal *j = s->c.journal;
	uint64_t from = journal_acked(j, s->c.peer), covered;
	struct journal_entry *e;
	struct walk w = { 0 };
	size_t n;
	int r, ns = 0, facts = 0;

	if ((r = journal_read(j, from, cut, JOURNAL_MAX, &e, &n, &covered)))
		return r;
	for (size_t i = 0; i < n; i++) {
		ns |= !!(e[i].flags & JE_NS);
		facts |= !!(e[i].flags & JE_FACTS);
	}
	r = begin_batch(s, covered, B_JOURNAL, ns);
	if (!r && ns)
		r = send_namespace(s, &w);
	if (!r)
		r = send_entries(s, e, n, !ns);
	if (!r && facts) /* last: the pins name inodes the namespace has made */
		r = send_facts(s);
	if (!r)
		r = end_batch(s, covered);
	if (!r)
		r = journal_ack(j, s->c.peer, covered);
	walk_free(&w);
	free(e);
	return r;
}

/* ---- verify: compare checksum trees, repair what differs ---- */

struct tree_src {
	struct sync_sender *s;
	struct silt_file *f;
};

static int tree_read(void *ctx, uint64_t k, void *buf, uint32_t len)
{
	struct tree_src *t = ctx;

	return vol_read_full(t->s->c.vol, t->f, buf, len, (off_t)(k * t->s->c.chunk_size));
}

/* Ask about nodes first..first+count-1 of level; append those that differ. */
static int ask(struct sync_sender *s, const struct proto_tree *t, uint64_t ino, uint64_t size, uint32_t level,
	       uint64_t first, uint32_t count, uint64_t **diff, size_t *nd, size_t *cap)
{
	struct proto_msg m = { .type = M_VERIFY, .verify = { .ino = ino, .size = size, .level = level,
							     .first = (uint32_t)first, .count = count,
							     .hashes = (const uint8_t *)(t->h[level] + first) } };
	int r = send_msg(s, &m);
	if (r || (r = recv_msg(s, &m, M_VDIFF)))
		return r;
	if (m.vdiff.ino != ino || m.vdiff.level != level || m.vdiff.first != first || m.vdiff.count != count)
		return -EPROTO;
	for (uint32_t i = 0; i < count && !r; i++)
		if (m.vdiff.bits[i / 8] & (1u << (i % 8)))
			r = push_u64(diff, nd, cap, first + i);
	return r;
}

/* One file: descend the tree where it differs; ship the chunks that do. */
static int verify_file(struct sync_sender *s, uint64_t ino, uint64_t seq)
{
	struct proto_tree t;
	struct tree_src src = { .s = s };
	struct stat st;
	uint64_t *cur = NULL, *next = NULL;
	size_t ncur = 0, ccap = 0, nnext = 0, ncap = 0;
	int r = vol_getattr(s->c.vol, ino, &st);

	if (r || !S_ISREG(st.st_mode))
		return r == -ENOENT ? 0 : r;
	if ((r = vol_open_file(s->c.vol, ino, O_RDONLY, &src.f)))
		return r == -ENOENT ? 0 : r;
	r = proto_tree_build(&t, (uint64_t)st.st_size, (uint32_t)s->c.chunk_size, tree_read, &src, s->raw);
	if (r)
		goto out;
	r = ask(s, &t, ino, (uint64_t)st.st_size, t.levels - 1, 0, 1, &cur, &ncur, &ccap);
	for (uint32_t l = t.levels - 1; l > 0 && !r && ncur; l--) {
		nnext = 0;
		for (size_t i = 0; i < ncur && !r; i++) {
			uint64_t a = cur[i] * PROTO_TREE_FANOUT, b = MIN(a + PROTO_TREE_FANOUT, t.n[l - 1]);
			r = ask(s, &t, ino, (uint64_t)st.st_size, l - 1, a, (uint32_t)(b - a), &next, &nnext, &ncap);
		}
		uint64_t *x = cur; cur = next; next = x;
		size_t c = ccap; ccap = ncap; ncap = c;
		ncur = nnext;
	}
	if (!r && ncur) {
		log_warn("replication to %s: verify: inode %llu differs in %zu chunks: repairing",
			 s->c.name, (unsigned long long)ino, ncur);
		if (!(r = begin_batch(s, seq, B_RESYNC, 0))) {
			for (size_t i = 0; i < ncur && !r; i++)
				r = send_chunk(s, src.f, ino, cur[i], (uint64_t)st.st_size);
			if (!r)
				r = end_batch(s, seq);
		}
	}
	pthread_mutex_lock(&s->lock);
	s->verify_files++;
	s->verify_chunks += t.n[0];
	s->verify_differ += r ? 0 : ncur;
	pthread_mutex_unlock(&s->lock);
	proto_tree_free(&t);
out:
	free(cur);
	free(next);
	vol_release(s->c.vol, src.f);
	return r;
}

/* Every file; then a journal batch so that the replica is consistent again. */
static int run_verify(struct sync_sender *s)
{
	uint64_t seq = journal_acked(s->c.journal, s->c.peer);
	struct walk w;
	int r;

	set_state(s, "verify", NULL);
	pthread_mutex_lock(&s->lock);
	s->verify_files = s->verify_chunks = s->verify_differ = 0;
	pthread_mutex_unlock(&s->lock);
	if (!(r = walk_namespace(s, &w, 1)))
		for (size_t i = 0; i < w.nfiles && !r; i++)
			r = verify_file(s, w.files[i], seq);
	walk_free(&w);
	if (!r && !(r = begin_batch(s, seq, B_JOURNAL, 0)))
		r = end_batch(s, seq);
	if (r) {
		atomic_store(&s->verify_asked, 1); /* cut off: again on the next connection */
		return r;
	}
	pthread_mutex_lock(&s->lock);
	s->verify_runs++;
	s->verify_last_wall = silt_wall_ns();
	pthread_mutex_unlock(&s->lock);
	if (!r)
		log_info("replication to %s: verify done: %llu files, %llu chunks differed and were repaired",
			 s->c.name, (unsigned long long)s->verify_files, (unsigned long long)s->verify_differ);
	set_state(s, "live", NULL);
	return r;
}

void sender_verify(struct sync_sender *s)
{
	atomic_store(&s->verify_asked, 1);
}

/* Sleep ms while idle, watching the connection too: the receiver says
 * nothing between batches, so anything readable now is its close, its
 * error or a reset, and the peer shows as gone at once, not at the next
 * ping (a send into a dead socket succeeds until the reset comes back). */
static int idle_wait(struct sync_sender *s, int ms)
{
	struct pollfd p[2] = {
		{ .fd = s->wake[0], .events = POLLIN },
		{ .fd = atomic_load(&s->fd), .events = POLLIN | POLLRDHUP },
	};
	struct proto_msg m;
	int r;

	if (poll(p, 2, ms) <= 0 || !p[1].revents)
		return 0;
	if ((r = recv_msg(s, &m, M_PING)))
		return r; /* closed, reset, or the peer's refusal */
	log_err("replication to %s: the peer sent %s between batches", s->c.name,
		proto_type_name(m.type));
	return -EPROTO;
}

/* Ship batches as long as connected: cut when the oldest change is due. */
static int run_live(struct sync_sender *s)
{
	struct sync_journal *j = s->c.journal;
	uint64_t idle_ms = 0;
	int r = 0;

	set_state(s, "live", "");
	pthread_mutex_lock(&s->lock);
	if (!s->verify_last_wall)
		s->verify_last_wall = silt_wall_ns(); /* the first period starts now */
	pthread_mutex_unlock(&s->lock);
	while (!atomic_load(&s->stop) && !r) {
		if ((r = journal_maintain(j)) > 0)
			return 0; /* fell back to a resync: back to the top */
		if (r < 0)
			return r;
		uint64_t age = journal_open_age_ms(j);
		/* batches cut before a connection broke are due at once */
		uint64_t acked = journal_acked(j, s->c.peer), cut = journal_last_cut(j);
		uint64_t now = silt_now_ns();
		sched_look(s->sched, now / 1000000, vol_write_count(s->c.vol));
		if (sched_due(s->sched, age))
			cut = journal_cut(j);
		if (cut > acked) {
			pthread_mutex_lock(&s->lock);
			s->shipping_since_ns = now - age * 1000000;
			pthread_mutex_unlock(&s->lock);
			r = ship_journal(s, cut);
			pthread_mutex_lock(&s->lock);
			s->shipping_since_ns = 0;
			pthread_mutex_unlock(&s->lock);
			sched_shipped(s->sched, (silt_now_ns() - now) / 1000000);
			idle_ms = 0;
			continue;
		}
		/* nothing to ship: a verify now, if asked for or due */
		if (atomic_exchange(&s->verify_asked, 0) ||
		    (s->c.verify_ms && silt_wall_ns() - s->verify_last_wall >= s->c.verify_ms * 1000000ull)) {
			r = run_verify(s);
			continue;
		}
		if ((r = idle_wait(s, 50)))
			break;
		if ((idle_ms += 50) >= 3000) { /* keep the link (and the peer's timeout) alive */
			struct proto_msg m = { .type = M_PING };
			r = send_msg(s, &m);
			idle_ms = 0;
		}
	}
	return r;
}

/* START / STATE: agree on where to go on from. */
static int exchange_state(struct sync_sender *s)
{
	struct proto_msg m = { .type = M_START };
	struct sync_journal *j = s->c.journal;
	int r;

	struct proto_gen mine[PROTO_MAX_GENS];
	uint32_t nm;
	char why[400];

	snprintf(m.start.uuid, sizeof(m.start.uuid), "%s", vol_uuid(s->c.vol));
	m.start.chunk_size = s->c.chunk_size;
	if ((r = gens_load(vol_meta(s->c.vol), mine, &nm)))
		return r;
	m.start.ngens = nm;
	memcpy(m.start.gens, mine, nm * sizeof(mine[0]));
	if ((r = send_msg(s, &m)) || (r = recv_msg(s, &m, M_STATE)))
		return r;
	/* a peer that went its own way (promoted) is not shipped over */
	if (gens_follow(m.state.gens, m.state.ngens, m.state.applied, mine, nm, why, sizeof(why))) {
		log_err("replication to %s: %s: not shipping over it", s->c.name, why);
		set_state(s, "split-brain", why);
		return -EEXIST;
	}
	uint64_t acked = journal_acked(j, s->c.peer);
	if (m.state.origin[0] && strcmp(m.state.origin, vol_uuid(s->c.vol))) {
		char e[200];
		snprintf(e, sizeof(e), "the peer is a replica of another volume (%s)", m.state.origin);
		set_state(s, "refused", e);
		return -EEXIST;
	}
	/* behind our position is expected where a fold put the gap into the
	 * dirty set; anything else is a replica that lost what it applied */
	uint64_t floor = journal_fold_floor(j, s->c.peer);
	int covered = m.state.applied < acked && floor != UINT64_MAX && m.state.applied >= floor;
	if (!m.state.origin[0] || (m.state.applied < acked && !covered)) {
		/* an empty replica, or one that lost batches it acknowledged */
		if (journal_full(j, s->c.peer, NULL, NULL) == 0) {
			log_warn("replication to %s: the peer has %s: full sync", s->c.name,
				 m.state.origin[0] ? "lost acknowledged batches" : "nothing yet");
			if ((r = journal_set_full(j, s->c.peer, 1, 0, 0)))
				return r;
		}
	} else if (m.state.applied > acked) {
		/* it applied a batch whose acknowledgement we never got */
		if ((r = journal_ack(j, s->c.peer, m.state.applied)))
			return r;
	}
	return 0;
}

static void session(struct sync_sender *s, int fd)
{
	char err[256];
	int r;

	set_state(s, "handshake", NULL);
	if ((r = chan_client(fd, s->c.sk, s->c.peer_pk, &s->ch, err, sizeof(err)))) {
		log_err("replication to %s (%s): %s", s->c.name, s->c.address, err);
		set_state(s, "refused", err);
		return;
	}
	if (!(r = exchange_state(s)) && !(r = run_full(s)) && !(r = run_resync(s))) {
		/* a resync leaves the replica inconsistent until a journal batch:
		 * send one (empty, if nothing changed) */
		uint64_t acked = journal_acked(s->c.journal, s->c.peer);
		if (!(r = begin_batch(s, acked, B_JOURNAL, 0)) && !(r = end_batch(s, acked)) &&
		    !(r = journal_fold_floor_clear(s->c.journal, s->c.peer)))
			r = run_live(s);
	}
	if (r && !atomic_load(&s->stop)) {
		snprintf(err, sizeof(err), "%s", strerror(-r));
		pthread_mutex_lock(&s->lock);
		int refused = s->state && (!strcmp(s->state, "refused") || !strcmp(s->state, "split-brain"));
		pthread_mutex_unlock(&s->lock);
		if (!refused) {
			log_warn("replication to %s: connection lost (%s), resuming from the last acknowledged batch",
				 s->c.name, err);
			set_state(s, "disconnected", err);
		}
	}
	win_forget(s);
	chan_free(s->ch);
	s->ch = NULL;
}

static void *sender_thread(void *arg)
{
	struct sync_sender *s = arg;
	char name[16], err[256];
	int backoff = 200;

	snprintf(name, sizeof(name), "silt-tx-%.7s", s->c.name);
	pthread_setname_np(pthread_self(), name);
	/* shipping yields the CPU to the guests' I/O (max_lag still makes it
	 * ship: lower priority, not starved) */
	int r = silt_thread_nice(SYNC_NICE);
	if (r)
		log_warn("replication to %s: cannot lower the sender's priority: %s", s->c.name, strerror(-r));
	while (!atomic_load(&s->stop)) {
		journal_maintain(s->c.journal); /* the bound holds while disconnected too */
		set_state(s, "connecting", NULL);
		int fd = chan_dial(s->c.address, NET_TIMEOUT_MS < 5000 ? NET_TIMEOUT_MS : 5000, err, sizeof(err));
		if (fd < 0) {
			set_state(s, "disconnected", err);
			nap(s, backoff);
			backoff = MIN(backoff * 2, REDIAL_MAX_MS);
			continue;
		}
		chan_set_timeouts(fd, NET_TIMEOUT_MS);
		atomic_store(&s->fd, fd);
		if (!atomic_load(&s->stop))
			session(s, fd);
		atomic_store(&s->fd, -1);
		close(fd);
		backoff = 200;
		nap(s, backoff);
	}
	set_state(s, "stopped", NULL);
	return NULL;
}

static void sender_free(struct sync_sender *s)
{
	close(s->wake[0]);
	close(s->wake[1]);
	sched_free(s->sched);
	proto_buf_free(&s->out);
	free(s->raw);
	free(s->z);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int sender_start(const struct sender_conf *c, struct sync_sender **out)
{
	struct sync_sender *s = calloc(1, sizeof(*s));
	struct sched_conf sc = { .mode = c->schedule, .interval_ms = c->interval_ms, .max_lag_ms = c->max_lag_ms,
				 .tick_ms = SCHED_TICK_MS, .busy_ops = SCHED_BUSY_WRITES };
	int r;

	if (!s)
		return -ENOMEM;
	s->c = *c;
	s->state = "starting";
	s->wake[0] = s->wake[1] = -1;
	atomic_store(&s->fd, -1);
	pthread_mutex_init(&s->lock, NULL);
	if (pipe2(s->wake, O_CLOEXEC) || !(s->raw = malloc(c->chunk_size)) ||
	    !(s->z = malloc(proto_chunk_bound(c->chunk_size)))) {
		sender_free(s);
		return -ENOMEM;
	}
	if ((r = sched_create(&sc, &s->sched)) || (r = -pthread_create(&s->thread, NULL, sender_thread, s))) {
		sender_free(s);
		return r;
	}
	*out = s;
	return 0;
}

void sender_stop(struct sync_sender *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, 1);
	if (write(s->wake[1], "x", 1) < 0)
		log_warn("replication: cannot wake the sender of %s", s->c.name);
	int fd = atomic_load(&s->fd);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
	pthread_join(s->thread, NULL);
	sender_free(s);
}

void sender_status(struct sync_sender *s, FILE *o)
{
	struct journal_stats js;
	uint64_t now = silt_now_ns();

	journal_stats(s->c.journal, s->c.peer, &js);
	uint64_t acked = journal_acked(s->c.journal, s->c.peer);
	int full = journal_full(s->c.journal, s->c.peer, NULL, NULL) > 0;
	uint64_t open_age = journal_open_age_ms(s->c.journal);
	pthread_mutex_lock(&s->lock);
	uint64_t lag_ms = s->shipping_since_ns ? (now - s->shipping_since_ns) / 1000000 : open_age;
	fprintf(o, "peer name=");
	ctl_put_value(o, s->c.name);
	fprintf(o, " address=");
	ctl_put_value(o, s->c.address);
	fprintf(o, " role=primary state=%s lag_ms=%llu lag_entries=%llu acked=%llu journal_entries=%llu "
		"dirty=%llu full_sync=%d progress_done=%llu progress_total=%llu throughput=%.0f "
		"sent_bytes=%llu data_bytes=%llu chunks=%llu batches=%llu last_ack=%llu folds=%llu verify_runs=%llu "
		"verify_files=%llu verify_chunks=%llu verify_differ=%llu verify_last=%llu error=",
		s->state, (unsigned long long)lag_ms, (unsigned long long)(js.open_seq - 1 > acked ? js.entries : 0),
		(unsigned long long)acked, (unsigned long long)js.entries, (unsigned long long)js.dirty, full,
		(unsigned long long)s->full_done, (unsigned long long)s->full_total, s->rate,
		(unsigned long long)s->sent_bytes, (unsigned long long)s->data_bytes,
		(unsigned long long)s->chunks, (unsigned long long)s->batches,
		(unsigned long long)(s->last_ack_wall / 1000000000ull), (unsigned long long)js.folds,
		(unsigned long long)s->verify_runs, (unsigned long long)s->verify_files,
		(unsigned long long)s->verify_chunks, (unsigned long long)s->verify_differ,
		(unsigned long long)(s->verify_last_wall / 1000000000ull));
	ctl_put_value(o, s->error[0] ? s->error : "-");
	pthread_mutex_unlock(&s->lock);
	sched_status(s->sched, o);
	fputc('\n', o);
}
