/* Encoding and decoding of the replication messages (proto.h).
 *
 * Little-endian fixed-width integers, strings as u16 length + bytes. The
 * decoder reads through a cursor that refuses to step past the end, and
 * checks each value where it is read, so that a message is either wholly
 * valid or refused with the reason; it allocates nothing (strings are
 * copied into the message's fixed buffers, or pointed at in the input). */
#include "sync/proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <zstd.h>

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#define MIN_GENS(n) ((n) < PROTO_MAX_GENS ? (n) : PROTO_MAX_GENS)

/* ---- writing ---- */

void proto_buf_free(struct proto_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void put(struct proto_buf *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->len + n)
			nc *= 2;
		uint8_t *np = realloc(b->p, nc);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	if (n) /* (a hole has no payload: p may be NULL, memcpy's may not) */
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_u8(struct proto_buf *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(struct proto_buf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	put(b, x, 4);
}
static void put_u64(struct proto_buf *b, uint64_t v)
{
	put_u32(b, (uint32_t)v);
	put_u32(b, (uint32_t)(v >> 32));
}
static void put_str(struct proto_buf *b, const char *s, size_t n)
{
	uint8_t x[2] = { (uint8_t)n, (uint8_t)(n >> 8) };
	put(b, x, 2);
	put(b, s, n);
}

static void put_gens(struct proto_buf *b, uint32_t n, const struct proto_gen *g)
{
	put_u32(b, n);
	for (uint32_t i = 0; i < n; i++) {
		put_u64(b, g[i].epoch);
		put_u64(b, g[i].upto);
	}
}

static int encode_node(const struct msg_node *n, struct proto_buf *b, int full)
{
	put_u64(b, n->ino);
	put_u32(b, n->mode);
	put_u32(b, n->uid);
	put_u32(b, n->gid);
	put_u32(b, n->nlink);
	put_u32(b, n->rdev);
	put_u64(b, n->size);
	put_u64(b, (uint64_t)n->atime);
	put_u64(b, (uint64_t)n->mtime);
	put_u64(b, (uint64_t)n->ctime);
	if (!full)
		return 0;
	const char *l = n->symlink ? n->symlink : "";
	if (strlen(l) > PROTO_MAX_LINK || n->nxattr > PROTO_MAX_XATTRS)
		return -EINVAL;
	put_str(b, l, strlen(l));
	put_u32(b, n->nxattr);
	for (uint32_t i = 0; i < n->nxattr; i++) {
		size_t nl = strlen(n->xattr[i].name);
		if (nl == 0 || nl > PROTO_MAX_NAME || n->xattr[i].len > PROTO_MAX_XATTR_VALUE)
			return -EINVAL;
		put_str(b, n->xattr[i].name, nl);
		put_u32(b, n->xattr[i].len);
		put(b, n->xattr[i].value, n->xattr[i].len);
	}
	return 0;
}

int proto_encode(const struct proto_msg *m, struct proto_buf *b)
{
	int r = 0;

	b->len = 0;
	b->oom = 0;
	put_u8(b, (uint8_t)m->type);
	switch (m->type) {
	case M_START:
		put_str(b, m->start.uuid, strlen(m->start.uuid));
		put_u64(b, m->start.chunk_size);
		put_gens(b, MIN_GENS(m->start.ngens), m->start.gens);
		break;
	case M_STATE:
		put_str(b, m->state.origin, strlen(m->state.origin));
		put_u64(b, m->state.applied);
		put_u32(b, m->state.inconsistent);
		put_gens(b, MIN_GENS(m->state.ngens), m->state.gens);
		break;
	case M_BATCH:
		put_u64(b, m->batch.seq);
		put_u32(b, m->batch.kind);
		put_u64(b, m->batch.ns);
		break;
	case M_NODE:
	case M_ATTR:
		r = encode_node(&m->node, b, m->type == M_NODE);
		break;
	case M_DENT:
		put_u64(b, m->dent.parent);
		put_u64(b, m->dent.ino);
		put_u32(b, m->dent.type);
		put_str(b, m->dent.name, strlen(m->dent.name));
		break;
	case M_CHUNK:
		put_u64(b, m->chunk.ino);
		put_u64(b, m->chunk.index);
		put_u32(b, m->chunk.len);
		put_u32(b, m->chunk.codec);
		put_u64(b, m->chunk.xxh3);
		put_u32(b, m->chunk.plen);
		put(b, m->chunk.payload, m->chunk.plen);
		break;
	case M_END:
		put_u64(b, m->end.seq);
		put_u64(b, m->end.count);
		break;
	case M_ACK:
		put_u64(b, m->ack.seq);
		break;
	case M_ERR:
		put_u32(b, (uint32_t)m->err.code);
		put_str(b, m->err.text, strnlen(m->err.text, sizeof(m->err.text) - 1));
		break;
	case M_PING:
		break;
	case M_VERIFY:
		put_u64(b, m->verify.ino);
		put_u64(b, m->verify.size);
		put_u32(b, m->verify.level);
		put_u32(b, m->verify.first);
		put_u32(b, m->verify.count);
		put(b, m->verify.hashes, (size_t)m->verify.count * 8);
		break;
	case M_VDIFF:
		put_u64(b, m->vdiff.ino);
		put_u32(b, m->vdiff.level);
		put_u32(b, m->vdiff.first);
		put_u32(b, m->vdiff.count);
		put(b, m->vdiff.bits, (m->vdiff.count + 7) / 8);
		break;
	case M_FACT:
		if (proto_fact_problem(&m->fact))
			return -EINVAL;
		put_u32(b, m->fact.kind);
		put_u64(b, m->fact.id);
		put_u64(b, (uint64_t)m->fact.time);
		put_u32(b, m->fact.sub);
		put_str(b, m->fact.name, strlen(m->fact.name));
		put_str(b, m->fact.text, strlen(m->fact.text));
		break;
	default:
		return -EINVAL;
	}
	if (r)
		return r;
	if (b->oom)
		return -ENOMEM;
	return b->len > PROTO_MAX_MSG ? -EINVAL : 0;
}

/* ---- reading ---- */

struct cur {
	const uint8_t *p, *end;
	const char *why;
};

static int need(struct cur *c, size_t n, const char *what)
{
	if ((size_t)(c->end - c->p) < n) {
		if (!c->why)
			c->why = what;
		return -1;
	}
	return 0;
}

static uint32_t get_u32(struct cur *c, const char *what)
{
	if (need(c, 4, what))
		return 0;
	uint32_t v = (uint32_t)c->p[0] | (uint32_t)c->p[1] << 8 | (uint32_t)c->p[2] << 16 |
		     (uint32_t)c->p[3] << 24;
	c->p += 4;
	return v;
}

static uint64_t get_u64(struct cur *c, const char *what)
{
	uint64_t lo = get_u32(c, what);
	return lo | (uint64_t)get_u32(c, what) << 32;
}

/* A string of at most max bytes, copied NUL-terminated into out (room for
 * max + 1), no NUL inside. Returns its length, or -1. */
static int get_str(struct cur *c, char *out, size_t max, const char *what)
{
	if (need(c, 2, what))
		return -1;
	size_t n = (size_t)c->p[0] | (size_t)c->p[1] << 8;
	c->p += 2;
	if (n > max || need(c, n, what) || memchr(c->p, 0, n)) {
		if (!c->why)
			c->why = what;
		return -1;
	}
	memcpy(out, c->p, n);
	out[n] = '\0';
	c->p += n;
	return (int)n;
}

static int bad(struct cur *c, const char *why)
{
	if (!c->why)
		c->why = why;
	return -1;
}

int proto_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > PROTO_MAX_NAME || memchr(s, '/', len) || memchr(s, 0, len))
		return 0;
	return !(len == 1 && s[0] == '.') && !(len == 2 && s[0] == '.' && s[1] == '.');
}

static int ino_ok(uint64_t ino) { return ino >= 1 && ino < PROTO_MAX_INO; }

static int type_ok(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK:
		return (mode & ~(uint32_t)(S_IFMT | 07777)) == 0;
	default:
		return 0;
	}
}

static void get_gens(struct cur *c, uint32_t *n, struct proto_gen *g)
{
	*n = get_u32(c, "generations");
	if (*n > PROTO_MAX_GENS) {
		bad(c, "too many generations");
		return;
	}
	for (uint32_t i = 0; i < *n; i++) {
		g[i].epoch = get_u64(c, "generation");
		g[i].upto = get_u64(c, "generation");
	}
}

static void get_uuid(struct cur *c, char out[37])
{
	int n = get_str(c, out, 36, "volume uuid");
	if (n < 0)
		return;
	for (int i = 0; i < n; i++)
		if (!strchr("0123456789abcdef-", out[i]))
			bad(c, "volume uuid is not a uuid");
	if (n != 0 && n != 36)
		bad(c, "volume uuid is not a uuid");
}

/* Attributes; for NODE the symlink target and xattrs after them. The
 * symlink target and the xattr names are copied into the caller's scratch. */

static void get_node(struct cur *c, struct msg_node *n, int full, char *linkbuf, char *names)
{
	n->ino = get_u64(c, "inode");
	n->mode = get_u32(c, "mode");
	n->uid = get_u32(c, "uid");
	n->gid = get_u32(c, "gid");
	n->nlink = get_u32(c, "nlink");
	n->rdev = get_u32(c, "rdev");
	n->size = get_u64(c, "size");
	n->atime = (int64_t)get_u64(c, "times");
	n->mtime = (int64_t)get_u64(c, "times");
	n->ctime = (int64_t)get_u64(c, "times");
	n->symlink = "";
	n->nxattr = 0;
	if (c->why)
		return;
	if (!ino_ok(n->ino))
		bad(c, "inode number out of range");
	if (!type_ok(n->mode))
		bad(c, "not a file type");
	if (n->size > (1ull << 50))
		bad(c, "size out of range");
	if (!full || c->why)
		return;
	int ll = get_str(c, linkbuf, PROTO_MAX_LINK, "symlink target");
	if (ll < 0)
		return;
	if (S_ISLNK(n->mode) != (ll > 0))
		bad(c, "symlink target on a non-symlink, or a symlink without one");
	n->symlink = linkbuf;
	n->nxattr = get_u32(c, "xattr count");
	if (n->nxattr > PROTO_MAX_XATTRS) {
		bad(c, "too many xattrs");
		n->nxattr = 0;
		return;
	}
	for (uint32_t i = 0; i < n->nxattr && !c->why; i++) {
		char *nm = names + i * (PROTO_MAX_NAME + 1);
		if (get_str(c, nm, PROTO_MAX_NAME, "xattr name") <= 0) {
			bad(c, "xattr name");
			break;
		}
		n->xattr[i].name = nm;
		n->xattr[i].len = get_u32(c, "xattr length");
		if (n->xattr[i].len > PROTO_MAX_XATTR_VALUE || need(c, n->xattr[i].len, "xattr value")) {
			bad(c, "xattr value too long");
			break;
		}
		n->xattr[i].value = c->p;
		c->p += n->xattr[i].len;
	}
}

/* Scratch for strings of one decoded NODE, per thread (the decoder is
 * called by the receiver thread and by the fuzzer). */
static __thread char t_link[PROTO_MAX_LINK + 1];
static __thread char t_names[PROTO_MAX_XATTRS * (PROTO_MAX_NAME + 1)];

static void get_chunk(struct cur *c, struct msg_chunk *k)
{
	k->ino = get_u64(c, "inode");
	k->index = get_u64(c, "chunk index");
	k->len = get_u32(c, "chunk length");
	k->codec = get_u32(c, "codec");
	k->xxh3 = get_u64(c, "checksum");
	k->plen = get_u32(c, "payload length");
	if (c->why)
		return;
	if (!ino_ok(k->ino))
		bad(c, "inode number out of range");
	if (k->index > (1ull << 40))
		bad(c, "chunk index out of range");
	if (k->len == 0 || k->len > PROTO_MAX_CHUNK)
		bad(c, "chunk length out of range");
	if (k->codec > CODEC_HOLE)
		bad(c, "unknown codec");
	if ((k->codec == CODEC_RAW && k->plen != k->len) || (k->codec == CODEC_HOLE && k->plen) ||
	    k->plen > PROTO_MAX_CHUNK + 1024)
		bad(c, "payload length does not fit the codec");
	if (c->why || need(c, k->plen, "chunk payload"))
		return;
	k->payload = c->p;
	c->p += k->plen;
}

/* VERIFY and VDIFF share their header: inode, (size,) level, first, count. */
static void get_verify(struct cur *c, struct proto_msg *m)
{
	int v = m->type == M_VERIFY;
	uint64_t ino = get_u64(c, "inode"), size = v ? get_u64(c, "size") : 0;
	uint32_t level = get_u32(c, "tree level"), first = get_u32(c, "tree node"), count = get_u32(c, "node count");
	size_t plen = v ? (size_t)count * 8 : ((size_t)count + 7) / 8;

	if (c->why)
		return;
	if (!ino_ok(ino) || level >= PROTO_MAX_LEVELS || count == 0 || count > PROTO_MAX_VNODES ||
	    size > (1ull << 50)) {
		bad(c, "verify request out of range");
		return;
	}
	if (need(c, plen, "tree hashes"))
		return;
	if (v)
		m->verify = (struct msg_verify){ ino, size, level, first, count, c->p };
	else
		m->vdiff = (struct msg_vdiff){ ino, level, first, count, c->p };
	c->p += plen;
}

/* 1-63 characters of [A-Za-z0-9._-] (tier and rule names). */
static int fact_name_ok(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= PROTO_MAX_FACT_NAME &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return 0;
	return 1;
}

const char *proto_fact_problem(const struct msg_fact *f)
{
	size_t nl = strnlen(f->name, sizeof(f->name)), tl = strnlen(f->text, sizeof(f->text));

	if (nl == sizeof(f->name) || tl == sizeof(f->text))
		return "fact name or text too long";
	switch (f->kind) {
	case FACT_ALL:
		return f->id || f->time || f->sub || nl || tl ? "fact 'all' with a value" : NULL;
	case FACT_PIN:
		if (!ino_ok(f->id) || !fact_name_ok(f->name))
			return "pin: bad inode number or tier name";
		return f->time || f->sub || tl ? "pin with a text" : NULL;
	case FACT_RULE:
		if (!fact_name_ok(f->name) || tl == 0 || !printable(f->text))
			return "rule: bad name, or a text empty or not printable";
		return f->id || f->time || f->sub ? "rule with a number" : NULL;
	case FACT_EVENT:
		if (f->id >= PROTO_MAX_INO || f->sub > PROTO_MAX_EVENT_KIND || tl > PROTO_MAX_EVENT_TEXT)
			return "event: number, kind or text out of range";
		return nl ? "event with a name" : NULL;
	default:
		return "unknown fact kind";
	}
}

static void get_fact(struct cur *c, struct msg_fact *f)
{
	f->kind = get_u32(c, "fact kind");
	f->id = get_u64(c, "fact number");
	f->time = (int64_t)get_u64(c, "fact time");
	f->sub = get_u32(c, "fact sub-kind");
	if (get_str(c, f->name, PROTO_MAX_FACT_NAME, "fact name") < 0 ||
	    get_str(c, f->text, PROTO_MAX_FACT_TEXT, "fact text") < 0 || c->why)
		return;
	const char *p = proto_fact_problem(f);
	if (p)
		bad(c, p);
}

int proto_decode(const void *buf, size_t len, struct proto_msg *m, const char **why)
{
	struct cur c = { .p = buf, .end = (const uint8_t *)buf + len };

	memset(m, 0, offsetof(struct proto_msg, start));
	if (len > PROTO_MAX_MSG || need(&c, 1, "empty message")) {
		*why = len > PROTO_MAX_MSG ? "message too long" : c.why;
		return -EBADMSG;
	}
	m->type = *c.p++;
	switch (m->type) {
	case M_START:
		get_uuid(&c, m->start.uuid);
		m->start.chunk_size = get_u64(&c, "chunk size");
		get_gens(&c, &m->start.ngens, m->start.gens);
		if (!c.why && (!m->start.uuid[0] || m->start.chunk_size < 4096 ||
			       m->start.chunk_size > PROTO_MAX_CHUNK ||
			       (m->start.chunk_size & (m->start.chunk_size - 1))))
			bad(&c, "START without a volume or with a bad chunk size");
		break;
	case M_STATE:
		get_uuid(&c, m->state.origin);
		m->state.applied = get_u64(&c, "applied batch");
		m->state.inconsistent = get_u32(&c, "state flags");
		get_gens(&c, &m->state.ngens, m->state.gens);
		break;
	case M_BATCH:
		m->batch.seq = get_u64(&c, "batch number");
		m->batch.kind = get_u32(&c, "batch kind");
		m->batch.ns = get_u64(&c, "namespace flag");
		if (!c.why && m->batch.kind != B_JOURNAL && m->batch.kind != B_RESYNC)
			bad(&c, "unknown batch kind");
		if (!c.why && m->batch.ns > 1)
			bad(&c, "bad namespace flag");
		break;
	case M_NODE:
	case M_ATTR:
		get_node(&c, &m->node, m->type == M_NODE, t_link, t_names);
		break;
	case M_DENT: {
		m->dent.parent = get_u64(&c, "parent inode");
		m->dent.ino = get_u64(&c, "inode");
		m->dent.type = get_u32(&c, "type");
		int nl = get_str(&c, m->dent.name, PROTO_MAX_NAME, "name");
		if (c.why)
			break;
		if (!ino_ok(m->dent.parent) || !ino_ok(m->dent.ino) || m->dent.ino == 1)
			bad(&c, "inode number out of range");
		if (!type_ok(m->dent.type) || (m->dent.type & 07777))
			bad(&c, "not a file type");
		if (!proto_name_ok(m->dent.name, (size_t)nl))
			bad(&c, "name is empty, '.', '..', or holds a '/'");
		break;
	}
	case M_CHUNK:
		get_chunk(&c, &m->chunk);
		break;
	case M_END:
		m->end.seq = get_u64(&c, "batch number");
		m->end.count = get_u64(&c, "message count");
		break;
	case M_ACK:
		m->ack.seq = get_u64(&c, "batch number");
		break;
	case M_ERR:
		m->err.code = (int32_t)get_u32(&c, "error code");
		get_str(&c, m->err.text, sizeof(m->err.text) - 1, "error text");
		break;
	case M_PING:
		break;
	case M_VERIFY:
	case M_VDIFF:
		get_verify(&c, m);
		break;
	case M_FACT:
		get_fact(&c, &m->fact);
		break;
	default:
		bad(&c, "unknown message type");
	}
	if (!c.why && c.p != c.end)
		bad(&c, "trailing bytes");
	*why = c.why;
	return c.why ? -EBADMSG : 0;
}

const char *proto_type_name(int type)
{
	static const char *n[] = { "?", "START", "STATE", "BATCH", "NODE", "DENT", "ATTR", "CHUNK",
				   "END", "ACK", "ERR", "PING", "VERIFY", "VDIFF", "FACT" };
	return type > 0 && type <= M_FACT ? n[type] : "?";
}

/* ---- chunks ---- */

size_t proto_chunk_bound(size_t len)
{
	return ZSTD_compressBound(len);
}

int proto_chunk_pack(const void *raw, uint32_t len, int level, void *dst, struct msg_chunk *c)
{
	c->len = len;
	c->xxh3 = XXH3_64bits(raw, len);
	size_t z = ZSTD_compress(dst, ZSTD_compressBound(len), raw, len, level);
	if (!ZSTD_isError(z) && z < len) {
		c->codec = CODEC_ZSTD;
		c->payload = dst;
		c->plen = (uint32_t)z;
	} else {
		c->codec = CODEC_RAW;
		c->payload = raw;
		c->plen = len;
	}
	return 0;
}

int proto_chunk_unpack(const struct msg_chunk *c, void *out)
{
	switch (c->codec) {
	case CODEC_HOLE:
		memset(out, 0, c->len);
		return 0;
	case CODEC_RAW:
		memcpy(out, c->payload, c->len);
		break;
	case CODEC_ZSTD: {
		size_t n = ZSTD_decompress(out, c->len, c->payload, c->plen);
		if (ZSTD_isError(n) || n != c->len)
			return -EBADMSG;
		break;
	}
	default:
		return -EBADMSG;
	}
	return XXH3_64bits(out, c->len) == c->xxh3 ? 0 : -EBADMSG;
}

/* ---- checksum trees ---- */

void proto_tree_free(struct proto_tree *t)
{
	for (uint32_t l = 0; l < t->levels; l++)
		free(t->h[l]);
	memset(t, 0, sizeof(*t));
}

int proto_tree_build(struct proto_tree *t, uint64_t size, uint32_t chunk_size,
		     int (*read)(void *ctx, uint64_t k, void *buf, uint32_t len), void *ctx, void *buf)
{
	uint64_t n = (size + chunk_size - 1) / chunk_size;

	memset(t, 0, sizeof(*t));
	n = n ? n : 1; /* an empty file: one leaf, the hash of nothing */
	for (;;) {
		if (t->levels == PROTO_MAX_LEVELS || !(t->h[t->levels] = malloc(n * 8))) {
			proto_tree_free(t);
			return t->levels == PROTO_MAX_LEVELS ? -EFBIG : -ENOMEM;
		}
		t->n[t->levels++] = n;
		if (n == 1)
			break;
		n = (n + PROTO_TREE_FANOUT - 1) / PROTO_TREE_FANOUT;
	}
	for (uint64_t k = 0; k < t->n[0]; k++) {
		uint64_t off = k * chunk_size;
		uint32_t len = size > off ? (uint32_t)MIN((uint64_t)chunk_size, size - off) : 0;
		t->h[0][k] = !len ? XXH3_64bits("", 0) : read(ctx, k, buf, len) ? UINT64_MAX : XXH3_64bits(buf, len);
	}
	for (uint32_t l = 1; l < t->levels; l++)
		for (uint64_t i = 0; i < t->n[l]; i++) {
			uint64_t a = i * PROTO_TREE_FANOUT, b = MIN(a + PROTO_TREE_FANOUT, t->n[l - 1]);
			t->h[l][i] = XXH3_64bits(t->h[l - 1] + a, (size_t)(b - a) * 8);
		}
	return 0;
}
