/* The receiver (receiver.h).
 *
 * One thread ("silt-rx") polls the listening socket, the current
 * connection and a stop pipe. A new connection must complete the handshake
 * (chan.h: only configured keys) before it replaces the current one, so a
 * stranger cannot push a primary off. Messages are decoded (proto.h, every
 * field checked) and then checked again against the session: the batch
 * structure, chunk lengths against the primary's chunk size, a namespace
 * that is a tree (vol_replica_namespace refuses anything else).
 *
 * A JOURNAL batch is applied all or nothing: its messages are written to
 * <state>/spool.tmp as they come, fsynced and renamed to spool.ready at
 * END, then applied, the state file (origin, last applied batch) rewritten
 * and the spool removed, and only then acknowledged. A crash anywhere in
 * between leaves either no spool (nothing applied) or a ready one that the
 * next start applies again: applying is idempotent, every message carries
 * a state, not a difference. RESYNC batches carry no order to keep and are
 * applied as they come; the replica is marked inconsistent until the next
 * JOURNAL batch. A connection that breaks mid-batch applies nothing of a
 * JOURNAL batch. The primary's facts (pins, live rules, events: FACT) are
 * collected like the namespace and applied as one set, in one commit,
 * after the rest of their batch (fs/facts.c): a spool applied again after
 * a crash applies them again, as it does the rest. */
#include "sync/receiver.h"
#include "sync/chan.h"
#include "sync/sync.h"
#include "sync/journal.h"
#include "sync/proto.h"
#include "fs/vol.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_NODES (1u << 20)
#define MAX_FACTS (1u << 20)   /* pins, rules and events of one set */
#define MAX_SPOOL (4ull << 30)

struct rnode {
	struct vol_rnode n;
	char *strings;           /* symlink target, xattr names and values */
	struct vol_rxattr *x;
};

struct sync_receiver {
	struct receiver_conf c;
	pthread_t thread;
	int lfd, wake[2];
	_Atomic int stop;

	/* persistent state */
	char origin[37];
	uint64_t applied, chunk_size;
	int inconsistent;
	int promoted, separate;   /* the operator's decisions (receiver_command) */

	/* a command from the control socket, for the receiver's thread */
	pthread_cond_t cmd_done;
	const char *cmd;
	FILE *cmd_out;
	int cmd_result;

	/* the connection */
	int fd;
	struct sync_chan *ch;
	struct proto_buf out;
	char peer_addr[64];
	int started;
	/* the batch */
	int in_batch;
	struct msg_batch batch;
	uint64_t count;
	int spool_fd;
	uint64_t spool_len;
	/* applying */
	struct rnode *nodes;
	size_t nn, ncap;
	struct vol_rdent *dents;
	size_t nd, dcap;
	int ns_pending;
	struct vol_fact *facts;   /* the set being collected (strings malloc'd) */
	size_t nf, fcap;
	int facts_pending;        /* a set began: it replaces ours once whole */
	int facts_open;           /* (the session's view) a FACT "all" came in this batch */
	uint64_t file_ino;
	struct silt_file *file;
	uint8_t *buf;
	/* verify: this side's tree of the file asked about */
	struct proto_tree tree;
	uint64_t tree_ino, tree_size;
	int have_tree;
	struct proto_buf bits;

	pthread_mutex_t lock;    /* status */
	const char *state;
	char error[256];
	uint64_t batches, chunks, bytes, refused, last_batch_wall;
};

/* ---- persistent state ---- */

static void path_of(const struct sync_receiver *r, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", r->c.state, name);
}

static int save_state(struct sync_receiver *r)
{
	char p[4200], text[256];
	int n = snprintf(text, sizeof(text), "origin=%s\napplied=%llu\ninconsistent=%d\nchunk_size=%llu\n"
			 "promoted=%d\nseparate=%d\n", r->origin[0] ? r->origin : "-",
			 (unsigned long long)r->applied, r->inconsistent, (unsigned long long)r->chunk_size,
			 r->promoted, r->separate);
	path_of(r, "state", p, sizeof(p));
	return silt_write_file_atomic(p, text, (size_t)n);
}

static int load_state(struct sync_receiver *r)
{
	char p[4200], origin[64] = "-";
	unsigned long long applied = 0, cs = 0;
	int inc = 0, prom = 0, sep = 0;

	path_of(r, "state", p, sizeof(p));
	FILE *f = fopen(p, "r");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	int n = fscanf(f, "origin=%40s applied=%llu inconsistent=%d chunk_size=%llu promoted=%d separate=%d",
		       origin, &applied, &inc, &cs, &prom, &sep);
	fclose(f);
	if (n != 6 && n != 4) /* (4: written before promotion existed) */
		return -EUCLEAN;
	r->promoted = prom;
	r->separate = sep;
	snprintf(r->origin, sizeof(r->origin), "%s", strcmp(origin, "-") ? origin : "");
	r->applied = applied;
	r->inconsistent = inc;
	r->chunk_size = cs;
	return 0;
}

static void set_state(struct sync_receiver *r, const char *state, const char *err)
{
	pthread_mutex_lock(&r->lock);
	r->state = state;
	if (err)
		snprintf(r->error, sizeof(r->error), "%.*s", (int)sizeof(r->error) - 1, err);
	pthread_mutex_unlock(&r->lock);
}

/* ---- applying ---- */

static void drop_file(struct sync_receiver *r, int sync)
{
	if (!r->file)
		return;
	if (sync)
		vol_fsync(r->c.vol, r->file, 1);
	vol_release(r->c.vol, r->file);
	r->file = NULL;
	r->file_ino = 0;
}

static void free_facts(struct sync_receiver *r)
{
	for (size_t i = 0; i < r->nf; i++) {
		free((char *)r->facts[i].name);
		free((char *)r->facts[i].text);
	}
	r->nf = 0;
	r->facts_pending = 0;
}

static void free_ns(struct sync_receiver *r)
{
	for (size_t i = 0; i < r->nn; i++) {
		free(r->nodes[i].strings);
		free(r->nodes[i].x);
	}
	for (size_t i = 0; i < r->nd; i++)
		free((char *)r->dents[i].name);
	r->nn = r->nd = 0;
	r->ns_pending = 0;
}

/* Room in array *a (of *cap elements of size each) for element n, which
 * must be under max. */
static int grow(void *a, size_t *cap, size_t n, size_t size, size_t max)
{
	void **p = a;

	if (n >= max)
		return -E2BIG;
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 256;
	void *na = realloc(*p, nc * size);
	if (!na)
		return -ENOMEM;
	*p = na;
	*cap = nc;
	return 0;
}

static int add_node(struct sync_receiver *r, const struct msg_node *m)
{
	int e = grow(&r->nodes, &r->ncap, r->nn, sizeof(*r->nodes), MAX_NODES);

	if (e)
		return e;
	struct rnode *n = &r->nodes[r->nn];
	size_t need = strlen(m->symlink) + 1;
	for (uint32_t i = 0; i < m->nxattr; i++)
		need += strlen(m->xattr[i].name) + 1 + m->xattr[i].len;
	n->strings = malloc(need);
	n->x = calloc(m->nxattr ? m->nxattr : 1, sizeof(*n->x));
	if (!n->strings || !n->x) {
		free(n->strings);
		free(n->x);
		return -ENOMEM;
	}
	n->n = (struct vol_rnode){ .ino = m->ino, .mode = m->mode, .uid = m->uid, .gid = m->gid,
				   .nlink = m->nlink, .rdev = m->rdev, .size = m->size, .atime = m->atime,
				   .mtime = m->mtime, .ctime = m->ctime, .nxattr = m->nxattr, .xattr = n->x };
	char *p = n->strings;
	strcpy(p, m->symlink);
	n->n.symlink = p;
	p += strlen(p) + 1;
	for (uint32_t i = 0; i < m->nxattr; i++) {
		strcpy(p, m->xattr[i].name);
		n->x[i].name = p;
		p += strlen(p) + 1;
		memcpy(p, m->xattr[i].value, m->xattr[i].len);
		n->x[i].value = p;
		n->x[i].len = m->xattr[i].len;
		p += m->xattr[i].len;
	}
	r->nn++;
	return 0;
}

static int add_dent(struct sync_receiver *r, const struct msg_dent *d)
{
	int e = grow(&r->dents, &r->dcap, r->nd, sizeof(*r->dents), MAX_NODES);

	if (e)
		return e;
	char *name = strdup(d->name);
	if (!name)
		return -ENOMEM;
	r->dents[r->nd++] = (struct vol_rdent){ .parent = d->parent, .ino = d->ino, .type = d->type, .name = name };
	return 0;
}

/* A FACT: "all" starts a set, the others join it. */
static int add_fact(struct sync_receiver *r, const struct msg_fact *f)
{
	static const uint32_t kinds[] = { [FACT_PIN] = VOL_FACT_PIN, [FACT_RULE] = VOL_FACT_RULE,
					  [FACT_EVENT] = VOL_FACT_EVENT };

	if (f->kind == FACT_ALL) {
		free_facts(r);
		r->facts_pending = 1;
		return 0;
	}
	if (!r->facts_pending)
		return -EPROTO; /* (handle() refuses it first) */
	int e = grow(&r->facts, &r->fcap, r->nf, sizeof(*r->facts), MAX_FACTS);
	if (e)
		return e;
	struct vol_fact *v = &r->facts[r->nf];
	*v = (struct vol_fact){ .kind = kinds[f->kind], .id = f->id, .time_ns = f->time, .sub = f->sub,
				.name = strdup(f->name), .text = strdup(f->text) };
	if (!v->name || !v->text) {
		free((char *)v->name);
		free((char *)v->text);
		return -ENOMEM;
	}
	r->nf++;
	return 0;
}

/* The set of facts collected, once the batch is in: ours from now on. */
static int flush_facts(struct sync_receiver *r)
{
	if (!r->facts_pending)
		return 0;
	int e = vol_replica_facts(r->c.vol, r->facts, r->nf);
	if (!e)
		log_info("replica: took the primary's %zu pins, rules and events", r->nf);
	free_facts(r);
	return e;
}

/* The namespace collected so far, once its last entry is in. */
static int flush_ns(struct sync_receiver *r)
{
	if (!r->ns_pending)
		return 0;
	drop_file(r, 0);
	struct vol_rnode *v = malloc((r->nn ? r->nn : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < r->nn; i++)
		v[i] = r->nodes[i].n;
	int e = vol_replica_namespace(r->c.vol, v, r->nn, r->dents, r->nd);
	free(v);
	free_ns(r);
	return e;
}

static int apply_chunk(struct sync_receiver *r, const struct msg_chunk *c)
{
	struct stat st;
	int e;

	if (c->len > r->chunk_size)
		return -EBADMSG;
	if ((e = proto_chunk_unpack(c, r->buf))) {
		log_err("replica: inode %llu chunk %llu arrived corrupt (checksum or length): refused",
			(unsigned long long)c->ino, (unsigned long long)c->index);
		return e;
	}
	if (r->file_ino != c->ino) {
		drop_file(r, 1);
		e = vol_open_file(r->c.vol, c->ino, O_RDWR, &r->file);
		if (e == -ENOENT || e == -EISDIR)
			return 0; /* gone since: a later namespace says so */
		if (e)
			return e;
		r->file_ino = c->ino;
	}
	if ((e = vol_getattr(r->c.vol, c->ino, &st)))
		return e == -ENOENT ? 0 : e;
	if (!S_ISREG(st.st_mode))
		return 0;
	uint64_t off = c->index * r->chunk_size;
	if (off >= (uint64_t)st.st_size)
		return 0;
	size_t len = (size_t)MIN((uint64_t)c->len, (uint64_t)st.st_size - off);
	if (c->codec == CODEC_HOLE)
		e = vol_fallocate(r->c.vol, r->file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
				  (off_t)len);
	else {
		ssize_t w = vol_write(r->c.vol, r->file, r->buf, len, (off_t)off);
		e = w < 0 ? (int)w : (size_t)w == len ? 0 : -EIO;
	}
	pthread_mutex_lock(&r->lock);
	r->chunks++;
	r->bytes += len;
	pthread_mutex_unlock(&r->lock);
	return e;
}

/* One message of a batch, applied (or collected, for the namespace). */
static int apply_msg(struct sync_receiver *r, const struct proto_msg *m)
{
	int e;

	switch (m->type) {
	case M_NODE:
		r->ns_pending = 1;
		return add_node(r, &m->node);
	case M_DENT:
		r->ns_pending = 1;
		return add_dent(r, &m->dent);
	case M_ATTR: {
		if ((e = flush_ns(r)))
			return e;
		struct vol_rnode n = { .ino = m->node.ino, .mode = m->node.mode, .uid = m->node.uid,
				       .gid = m->node.gid, .nlink = m->node.nlink, .rdev = m->node.rdev,
				       .size = m->node.size, .atime = m->node.atime, .mtime = m->node.mtime,
				       .ctime = m->node.ctime, .symlink = "" };
		e = vol_replica_attr(r->c.vol, &n);
		return e == -ENOENT ? 0 : e;
	}
	case M_CHUNK:
		if ((e = flush_ns(r)))
			return e;
		return apply_chunk(r, &m->chunk);
	case M_FACT:
		return add_fact(r, &m->fact);
	default:
		return -EPROTO;
	}
}

/* Everything spooled, in order. */
static int apply_spool(struct sync_receiver *r, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), e = 0;
	uint8_t *msg = malloc(PROTO_MAX_MSG);

	if (fd < 0 || !msg) {
		e = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	for (;;) {
		uint8_t hdr[4];
		ssize_t n = read(fd, hdr, 4);
		if (n == 0)
			break;
		uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
		struct proto_msg m;
		const char *why;
		if (n != 4 || len > PROTO_MAX_MSG || read(fd, msg, len) != (ssize_t)len ||
		    proto_decode(msg, len, &m, &why)) {
			e = -EUCLEAN;
			break;
		}
		if ((e = apply_msg(r, &m)))
			break;
	}
	if (!e)
		e = flush_ns(r);
	if (!e)
		e = flush_facts(r);
out:
	drop_file(r, 1);
	free_ns(r);
	free_facts(r);
	free(msg);
	if (fd >= 0)
		close(fd);
	return e;
}

/* A spool that a crash left ready: apply it, then it is done. */
static int finish_spool(struct sync_receiver *r, uint64_t seq)
{
	char ready[4200];
	int e;

	path_of(r, "spool.ready", ready, sizeof(ready));
	if (access(ready, F_OK))
		return 0;
	if ((e = apply_spool(r, ready))) {
		log_err("replica: applying batch %llu failed: %s", (unsigned long long)seq, strerror(-e));
		return e;
	}
	r->applied = seq;
	r->inconsistent = 0;
	if ((e = save_state(r)))
		return e;
	unlink(ready);
	return silt_fsync_dir(r->c.state);
}

/* ---- the session ---- */

static int send_msg(struct sync_receiver *r, const struct proto_msg *m)
{
	int e = proto_encode(m, &r->out);
	return e ? e : chan_send(r->ch, r->out.p, r->out.len);
}

static int refuse(struct sync_receiver *r, int code, const char *text)
{
	struct proto_msg m = { .type = M_ERR, .err = { .code = code } };
	snprintf(m.err.text, sizeof(m.err.text), "%s", text);
	log_err("replica: refused %s: %s", r->peer_addr, text);
	set_state(r, "refused", text);
	send_msg(r, &m);
	return -code;
}

static int on_start(struct sync_receiver *r, const struct msg_start *s)
{
	char why[400];
	struct proto_gen mine[PROTO_MAX_GENS];
	uint32_t nm = 0;
	struct silt_meta *meta = vol_meta(r->c.vol);

	if (r->separate)
		return refuse(r, EEXIST, "kept as a separate volume after a split brain (keep-separate): "
			      "remove it from the primary's peers");
	if (r->promoted)
		return refuse(r, EEXIST, "split brain: this volume was promoted to primary and receives no more; "
			      "the peer is an old primary with writes of its own");
	if (gens_load(meta, mine, &nm))
		return refuse(r, EIO, "cannot read this volume's generations");
	uint64_t pos = MAX(r->applied, journal_local_pos(meta));
	if (gens_follow(mine, nm, pos, s->gens, s->ngens, why, sizeof(why))) {
		log_err("replica: %s. Resolve explicitly: `siltctl replica discard-local` takes the peer's "
			"volume (this side's changes since the split are dropped), `siltctl replica keep-separate` "
			"keeps this one apart", why);
		return refuse(r, EEXIST, why);
	}
	if (r->origin[0] && strcmp(r->origin, s->uuid)) {
		snprintf(why, sizeof(why), "this is a replica of volume %s, not of %s", r->origin, s->uuid);
		return refuse(r, EEXIST, why);
	}
	if (r->chunk_size && r->origin[0] && r->chunk_size != s->chunk_size)
		return refuse(r, EINVAL, "chunk size differs from the one this replica was made with");
	struct proto_msg m = { .type = M_STATE };
	snprintf(m.state.origin, sizeof(m.state.origin), "%s", r->origin);
	m.state.applied = r->applied;
	m.state.ngens = nm;
	memcpy(m.state.gens, mine, nm * sizeof(mine[0]));
	/* from now on we follow the peer's lineage */
	if (s->ngens && gens_store(meta, s->gens, s->ngens))
		return refuse(r, EIO, "cannot record the primary's generations");
	m.state.inconsistent = (uint32_t)r->inconsistent;
	r->chunk_size = s->chunk_size;
	r->started = 1;
	set_state(r, "live", "");
	return send_msg(r, &m);
}

static int spool_write(struct sync_receiver *r, const void *msg, size_t len)
{
	uint8_t hdr[4] = { (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24) };
	if ((r->spool_len += 4 + len) > MAX_SPOOL)
		return -EFBIG;
	if (write(r->spool_fd, hdr, 4) != 4 || write(r->spool_fd, msg, len) != (ssize_t)len)
		return -errno ? -errno : -EIO;
	return 0;
}

static int on_batch(struct sync_receiver *r, const struct msg_batch *b)
{
	char tmp[4200];

	if (r->in_batch)
		return -EPROTO;
	r->in_batch = 1;
	r->batch = *b;
	r->count = 0;
	r->facts_open = 0;
	if (b->kind == B_JOURNAL) {
		path_of(r, "spool.tmp", tmp, sizeof(tmp));
		r->spool_fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		r->spool_len = 0;
		return r->spool_fd < 0 ? -errno : 0;
	}
	if (!r->inconsistent || !r->origin[0]) {
		/* from now on, until a journal batch, the replica is a mixture */
		r->inconsistent = 1;
		r->chunk_size = r->chunk_size ? r->chunk_size : 65536;
		return save_state(r);
	}
	return 0;
}

static int on_end(struct sync_receiver *r, const struct msg_end *e, const char *origin)
{
	char tmp[4200], ready[4200];
	int x;

	if (!r->in_batch || e->seq != r->batch.seq || e->count != r->count)
		return -EPROTO;
	r->in_batch = 0;
	if (r->batch.kind == B_JOURNAL) {
		path_of(r, "spool.tmp", tmp, sizeof(tmp));
		path_of(r, "spool.ready", ready, sizeof(ready));
		x = fsync(r->spool_fd) ? -errno : 0;
		close(r->spool_fd);
		r->spool_fd = -1;
		if (x || (x = rename(tmp, ready) ? -errno : 0) || (x = silt_fsync_dir(r->c.state)))
			return x;
		snprintf(r->origin, sizeof(r->origin), "%s", origin);
		if ((x = finish_spool(r, e->seq)))
			return x;
	} else {
		if ((x = flush_ns(r)) || (x = flush_facts(r)))
			return x;
		drop_file(r, 1);
		if (!r->origin[0]) {
			snprintf(r->origin, sizeof(r->origin), "%s", origin);
			if ((x = save_state(r)))
				return x;
		}
	}
	pthread_mutex_lock(&r->lock);
	r->batches++;
	r->last_batch_wall = silt_wall_ns();
	pthread_mutex_unlock(&r->lock);
	struct proto_msg m = { .type = M_ACK, .ack = { .seq = e->seq } };
	return send_msg(r, &m);
}

/* ---- verify ---- */

static int tree_read(void *ctx, uint64_t k, void *buf, uint32_t len)
{
	struct sync_receiver *r = ctx;

	/* unreadable (damaged): a leaf that matches nothing */
	return vol_read_full(r->c.vol, r->file, buf, len, (off_t)(k * r->chunk_size));
}

static void drop_tree(struct sync_receiver *r)
{
	if (r->have_tree)
		proto_tree_free(&r->tree);
	r->have_tree = 0;
}

/* Our tree of the file (built once per file asked about), compared with
 * the primary's nodes: a bit for each that differs. A file we lack, or
 * cannot read, differs everywhere. */
static int on_verify(struct sync_receiver *r, const struct msg_verify *q)
{
	int e = 0;

	if (!r->have_tree || r->tree_ino != q->ino || r->tree_size != q->size) {
		drop_tree(r);
		drop_file(r, 0);
		if (vol_open_file(r->c.vol, q->ino, O_RDONLY, &r->file) == 0) {
			r->file_ino = q->ino;
			if (!proto_tree_build(&r->tree, q->size, (uint32_t)r->chunk_size, tree_read, r, r->buf))
				r->have_tree = 1;
			drop_file(r, 0);
		}
		r->tree_ino = q->ino;
		r->tree_size = q->size;
	}
	size_t nb = (q->count + 7) / 8;
	uint8_t *bits = calloc(nb, 1);
	if (!bits)
		return -ENOMEM;
	for (uint32_t i = 0; i < q->count; i++) {
		uint64_t h;
		memcpy(&h, q->hashes + (size_t)i * 8, 8);
		uint64_t idx = (uint64_t)q->first + i;
		if (!r->have_tree || q->level >= r->tree.levels || idx >= r->tree.n[q->level] ||
		    r->tree.h[q->level][idx] != h)
			bits[i / 8] |= (uint8_t)(1u << (i % 8));
	}
	struct proto_msg m = { .type = M_VDIFF, .vdiff = { .ino = q->ino, .level = q->level, .first = q->first,
							   .count = q->count, .bits = bits } };
	e = send_msg(r, &m);
	free(bits);
	return e;
}

/* One message from the connection. */
static int handle(struct sync_receiver *r, char origin[37])
{
	const void *buf;
	const char *why;
	size_t len;
	struct proto_msg m;
	int e = chan_recv(r->ch, &buf, &len);

	if (e)
		return e;
	if ((e = proto_decode(buf, len, &m, &why))) {
		char t[200];
		snprintf(t, sizeof(t), "invalid %s message: %s", proto_type_name(((const uint8_t *)buf)[0]),
			 why);
		return refuse(r, EBADMSG, t);
	}
	if (!r->started)
		return m.type == M_START ? (snprintf(origin, 37, "%s", m.start.uuid), on_start(r, &m.start))
					 : refuse(r, EPROTO, "expected START");
	switch (m.type) {
	case M_PING:
		return 0;
	case M_VERIFY:
		if (r->in_batch)
			return refuse(r, EPROTO, "verify inside a batch");
		return on_verify(r, &m.verify);
	case M_BATCH:
		drop_tree(r); /* what we hold changes */
		return on_batch(r, &m.batch);
	case M_END:
		return on_end(r, &m.end, origin);
	case M_NODE:
	case M_DENT:
		if (!r->in_batch || !r->batch.ns)
			return refuse(r, EPROTO, "namespace outside a namespace batch");
		/* fall through */
	case M_FACT:
		if (!r->in_batch)
			return refuse(r, EPROTO, "a fact outside a batch");
		if (m.fact.kind != FACT_ALL && !r->facts_open)
			return refuse(r, EPROTO, "a fact before the set it belongs to");
		r->facts_open = 1;
		/* fall through */
	case M_ATTR:
	case M_CHUNK:
		if (!r->in_batch)
			return refuse(r, EPROTO, "change outside a batch");
		r->count++;
		if (r->batch.kind == B_JOURNAL)
			return spool_write(r, buf, len);
		e = apply_msg(r, &m);
		return e == -EBADMSG ? refuse(r, EBADMSG, "a chunk failed its checksum") : e;
	default:
		return refuse(r, EPROTO, "unexpected message");
	}
}

static void end_conn(struct sync_receiver *r)
{
	if (r->spool_fd >= 0) {
		char tmp[4200];
		close(r->spool_fd);
		r->spool_fd = -1;
		path_of(r, "spool.tmp", tmp, sizeof(tmp));
		unlink(tmp); /* a batch cut off: nothing of it applied */
	}
	drop_file(r, 1);
	drop_tree(r);
	free_ns(r);
	free_facts(r);
	r->in_batch = 0;
	r->started = 0;
	chan_free(r->ch);
	r->ch = NULL;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

static void accept_conn(struct sync_receiver *r)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	char err[256], addr[64] = "?";
	struct sync_chan *ch;
	int which;
	int fd = accept4(r->lfd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (sa.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, addr, sizeof(addr));
	else if (sa.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, addr, sizeof(addr));
	chan_set_timeouts(fd, 5000);
	if (chan_server(fd, r->c.sk, (const uint8_t (*)[32])r->c.peer_pk, r->c.npeers, &which, &ch, err,
			sizeof(err))) {
		log_err("replica: refused a connection from %s: %s", addr, err);
		pthread_mutex_lock(&r->lock);
		r->refused++;
		pthread_mutex_unlock(&r->lock);
		close(fd);
		return;
	}
	if (r->fd >= 0) {
		log_info("replica: a new connection from %s replaces %s", addr, r->peer_addr);
		end_conn(r);
	}
	chan_set_timeouts(fd, 30000);
	r->fd = fd;
	r->ch = ch;
	snprintf(r->peer_addr, sizeof(r->peer_addr), "%s (%s)", addr, r->c.peer_name[which]);
	log_info("replica: primary %s connected", r->peer_addr);
}

/* ---- the operator's decisions ---- */

static int do_promote(struct sync_receiver *r, FILE *o)
{
	struct silt_meta *meta = vol_meta(r->c.vol);
	struct proto_gen g[PROTO_MAX_GENS + 1];
	uint32_t n;
	int e = gens_load(meta, g, &n);

	if (e)
		return e;
	if (r->promoted) {
		fprintf(o, "replica promoted=already epoch=%016llx\n", n ? (unsigned long long)g[n - 1].epoch : 0ull);
		return 0;
	}
	if (r->inconsistent)
		log_warn("replica: promoted while a resync was under way: the volume may mix old and new chunks");
	if (n && g[n - 1].upto == UINT64_MAX)
		g[n - 1].upto = r->applied;
	if (getrandom(&g[n].epoch, sizeof(g[n].epoch), 0) != sizeof(g[n].epoch))
		return -EIO;
	g[n++].upto = UINT64_MAX;
	if ((e = gens_store(meta, g, n)) || (e = journal_set_next(meta, r->applied + 1)))
		return e;
	r->promoted = 1;
	if ((e = save_state(r)))
		return e;
	log_warn("replica: promoted to primary at batch %llu, epoch %016llx: mount it read-write as a primary",
		 (unsigned long long)r->applied, (unsigned long long)g[n - 1].epoch);
	fprintf(o, "replica promoted=yes applied=%llu epoch=%016llx origin=%s\n", (unsigned long long)r->applied,
		(unsigned long long)g[n - 1].epoch, r->origin[0] ? r->origin : "-");
	return 0;
}

static int run_command(struct sync_receiver *r, const char *cmd, FILE *o)
{
	int e;

	if (!strcmp(cmd, "promote"))
		return do_promote(r, o);
	if (!strcmp(cmd, "discard-local")) {
		/* this side's own lineage and changes go; the peer's volume comes
		 * whole. The namespace is emptied first: the two sides numbered
		 * their new inodes from the same point since the split, so the
		 * same number may stand for different files. */
		struct stat st;
		if ((e = vol_getattr(r->c.vol, 1, &st)))
			return e;
		struct vol_rnode root = { .ino = 1, .mode = st.st_mode, .uid = st.st_uid, .gid = st.st_gid,
					  .nlink = 2, .atime = st.st_atim.tv_sec * 1000000000ll + st.st_atim.tv_nsec,
					  .mtime = st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec,
					  .ctime = st.st_ctim.tv_sec * 1000000000ll + st.st_ctim.tv_nsec, .symlink = "" };
		if ((e = vol_replica_namespace(r->c.vol, &root, 1, NULL, 0)) ||
		    (e = journal_forget(vol_meta(r->c.vol))))
			return e;
		r->origin[0] = '\0';
		r->applied = 0;
		r->promoted = r->separate = 0;
		if ((e = save_state(r)))
			return e;
		log_warn("replica: discarding this volume's own changes: the next connection brings a full sync");
		fprintf(o, "replica discarded=yes\n");
		return 0;
	}
	if (!strcmp(cmd, "keep-separate")) {
		r->separate = 1;
		if ((e = save_state(r)))
			return e;
		log_warn("replica: kept as a separate volume: refusing every primary from now on");
		fprintf(o, "replica separate=yes\n");
		return 0;
	}
	return -EINVAL;
}

int receiver_command(struct sync_receiver *r, const char *cmd, FILE *o)
{
	struct timespec until;
	int e = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&r->lock);
	r->cmd = cmd;
	r->cmd_out = o;
	if (write(r->wake[1], "c", 1) < 0)
		e = -errno;
	while (!e && r->cmd)
		if (pthread_cond_timedwait(&r->cmd_done, &r->lock, &until) == ETIMEDOUT)
			e = -ETIMEDOUT;
	r->cmd = NULL;
	if (!e)
		e = r->cmd_result;
	pthread_mutex_unlock(&r->lock);
	return e;
}

/* In the receiver's thread: a pending command, between two messages. */
static void take_command(struct sync_receiver *r)
{
	pthread_mutex_lock(&r->lock);
	const char *cmd = r->cmd;
	FILE *o = r->cmd_out;
	pthread_mutex_unlock(&r->lock);
	if (!cmd)
		return;
	if (r->fd >= 0)
		end_conn(r); /* a decision changes what we accept */
	int e = run_command(r, cmd, o);
	pthread_mutex_lock(&r->lock);
	r->cmd_result = e;
	r->cmd = NULL;
	pthread_cond_broadcast(&r->cmd_done);
	pthread_mutex_unlock(&r->lock);
}

static void *receiver_thread(void *arg)
{
	struct sync_receiver *r = arg;
	char origin[37] = "";

	pthread_setname_np(pthread_self(), "silt-rx");
	/* applying yields the CPU to the replica host's own guests */
	int e = silt_thread_nice(SYNC_NICE);
	if (e)
		log_warn("replica: cannot lower the receiver's priority: %s", strerror(-e));
	while (!atomic_load(&r->stop)) {
		struct pollfd p[3] = { { .fd = r->lfd, .events = POLLIN }, { .fd = r->wake[0], .events = POLLIN },
				       { .fd = r->fd, .events = POLLIN } };
		if (poll(p, r->fd >= 0 ? 3 : 2, 1000) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN) {
			char c;
			if (read(r->wake[0], &c, 1) == 1 && c == 'c')
				take_command(r);
		}
		if (p[0].revents & POLLIN)
			accept_conn(r);
		if (r->fd >= 0 && (p[2].revents & (POLLIN | POLLHUP | POLLERR))) {
			int e = handle(r, origin);
			if (e) {
				if (e != -ECONNRESET)
					log_warn("replica: connection from %s ends: %s", r->peer_addr, strerror(-e));
				set_state(r, "waiting", e == -ECONNRESET ? NULL : strerror(-e));
				end_conn(r);
			}
		}
	}
	end_conn(r);
	return NULL;
}

int receiver_start(const struct receiver_conf *c, struct sync_receiver **out, char *err, size_t errlen)
{
	struct sync_receiver *r = calloc(1, sizeof(*r));
	int e;

	if (!r)
		return -ENOMEM;
	r->c = *c;
	r->fd = r->spool_fd = r->lfd = -1;
	r->wake[0] = r->wake[1] = -1;
	r->state = "waiting";
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cmd_done, NULL);
	if (!(r->buf = malloc(PROTO_MAX_CHUNK)) || pipe2(r->wake, O_CLOEXEC)) {
		e = -ENOMEM;
		goto fail;
	}
	if ((e = silt_mkdir_p(c->state, 0700)) || (e = load_state(r))) {
		snprintf(err, errlen, "replica state %s: %s", c->state, strerror(-e));
		goto fail;
	}
	if ((e = finish_spool(r, r->applied + 1))) {
		snprintf(err, errlen, "replica state %s: cannot finish the batch a crash left: %s", c->state,
			 strerror(-e));
		goto fail;
	}
	if ((r->lfd = chan_listen(c->listen, err, errlen)) < 0) {
		e = r->lfd;
		goto fail;
	}
	if ((e = -pthread_create(&r->thread, NULL, receiver_thread, r)))
		goto fail;
	*out = r;
	return 0;
fail:
	if (r->lfd >= 0)
		close(r->lfd);
	if (r->wake[0] >= 0) {
		close(r->wake[0]);
		close(r->wake[1]);
	}
	free(r->buf);
	free(r);
	return e;
}

void receiver_stop(struct sync_receiver *r)
{
	if (!r)
		return;
	atomic_store(&r->stop, 1);
	if (write(r->wake[1], "x", 1) < 0)
		log_warn("replica: cannot wake the receiver");
	pthread_join(r->thread, NULL);
	close(r->lfd);
	close(r->wake[0]);
	close(r->wake[1]);
	free(r->nodes);
	free(r->dents);
	free(r->facts);
	proto_buf_free(&r->out);
	free(r->buf);
	free(r);
}

void receiver_status(struct sync_receiver *r, FILE *o)
{
	pthread_mutex_lock(&r->lock);
	fprintf(o, "peer name=%s role=replica state=%s origin=%s applied=%llu inconsistent=%d batches=%llu "
		"chunks=%llu bytes=%llu refused=%llu last_ack=%llu promoted=%d separate=%d\n",
		r->fd >= 0 ? "primary" : "-", r->promoted ? "promoted" : r->state, r->origin[0] ? r->origin : "-",
		(unsigned long long)r->applied, r->inconsistent, (unsigned long long)r->batches,
		(unsigned long long)r->chunks, (unsigned long long)r->bytes, (unsigned long long)r->refused,
		(unsigned long long)(r->last_batch_wall / 1000000000ull), r->promoted, r->separate);
	pthread_mutex_unlock(&r->lock);
}
