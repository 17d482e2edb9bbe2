/* The replication protocol and its secure channel: every message through
 * encode and decode, what the decoder refuses (truncations, bad names,
 * inode numbers, lengths), chunks that do not match their checksum, and a
 * channel that refuses wrong keys, another protocol version, an altered
 * frame and a recorded connection played again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sync/chan.h"
#include "sync/proto.h"

/* The encoding of the last roundtrip: a decoded message points into it
 * (names, values, hashes), so it lives until the next one, or the end. */
static struct proto_buf last;

static int free_last(void **state)
{
	proto_buf_free(&last);
	return 0;
}

static void roundtrip(const struct proto_msg *m, struct proto_msg *out)
{
	struct proto_buf b = { 0 };
	const char *why = NULL;

	proto_buf_free(&last);
	assert_int_equal(proto_encode(m, &b), 0);
	assert_int_equal(proto_decode(b.p, b.len, out, &why), 0);
	assert_null(why);
	/* every proper prefix is refused, and so is a trailing byte */
	for (size_t n = 0; n < b.len; n++) {
		struct proto_msg x;
		assert_int_equal(proto_decode(b.p, n, &x, &why), -EBADMSG);
		assert_non_null(why);
	}
	uint8_t *longer = malloc(b.len + 1);
	memcpy(longer, b.p, b.len);
	longer[b.len] = 0;
	struct proto_msg x;
	assert_int_equal(proto_decode(longer, b.len + 1, &x, &why), -EBADMSG);
	free(longer);
	last = b;
}

static void test_messages(void **state)
{
	struct proto_msg m = { .type = M_START }, o;
	strcpy(m.start.uuid, "0123abcd-0000-4000-8000-00000000beef");
	m.start.chunk_size = 65536;
	m.start.ngens = 2;
	m.start.gens[0] = (struct proto_gen){ 1, 40 };
	m.start.gens[1] = (struct proto_gen){ 7, UINT64_MAX };
	roundtrip(&m, &o);
	assert_string_equal(o.start.uuid, m.start.uuid);
	assert_int_equal(o.start.ngens, 2);
	assert_int_equal(o.start.gens[1].epoch, 7);

	m = (struct proto_msg){ .type = M_NODE };
	m.node = (struct msg_node){ .ino = 12, .mode = S_IFLNK | 0777, .nlink = 1, .size = 3,
				    .mtime = -5, .symlink = "a/b", .nxattr = 1 };
	m.node.xattr[0] = (struct proto_xattr){ "user.k", "vv", 2 };
	roundtrip(&m, &o);
	assert_string_equal(o.node.symlink, "a/b");
	assert_int_equal(o.node.mtime, -5);
	assert_string_equal(o.node.xattr[0].name, "user.k");
	assert_memory_equal(o.node.xattr[0].value, "vv", 2);

	m = (struct proto_msg){ .type = M_DENT, .dent = { .parent = 1, .ino = 12, .type = S_IFREG } };
	strcpy(m.dent.name, "disk.img");
	roundtrip(&m, &o);
	assert_string_equal(o.dent.name, "disk.img");

	uint8_t raw[8192], z[16384];
	memset(raw, 'x', sizeof(raw));
	m = (struct proto_msg){ .type = M_CHUNK, .chunk = { .ino = 12, .index = 3 } };
	assert_int_equal(proto_chunk_pack(raw, sizeof(raw), 1, z, &m.chunk), 0);
	assert_int_equal(m.chunk.codec, CODEC_ZSTD);
	assert_true(m.chunk.plen < 200);
	roundtrip(&m, &o);
	uint8_t back[8192];
	assert_int_equal(proto_chunk_unpack(&o.chunk, back), 0);
	assert_memory_equal(back, raw, sizeof(raw));

	m = (struct proto_msg){ .type = M_END, .end = { 9, 1000 } };
	roundtrip(&m, &o);
	assert_int_equal(o.end.count, 1000);
	m = (struct proto_msg){ .type = M_ERR, .err = { .code = EEXIST } };
	strcpy(m.err.text, "split brain");
	roundtrip(&m, &o);
	assert_string_equal(o.err.text, "split brain");
}

static int decode_dent(uint64_t parent, uint64_t ino, uint32_t type, const char *name, size_t nl)
{
	struct proto_buf b = { 0 };
	struct proto_msg m = { .type = M_DENT, .dent = { .parent = 1, .ino = 2, .type = S_IFREG } }, o;
	const char *why;
	strcpy(m.dent.name, "x");
	assert_int_equal(proto_encode(&m, &b), 0);
	/* patch the fields in place: type(1) parent(8) ino(8) type(4) len(2) name */
	memcpy(b.p + 1, &parent, 8);
	memcpy(b.p + 9, &ino, 8);
	memcpy(b.p + 17, &type, 4);
	b.len = 21;
	uint8_t l[2] = { (uint8_t)nl, (uint8_t)(nl >> 8) };
	memcpy(b.p + b.len, l, 2);
	b.len += 2;
	uint8_t *p = malloc(b.len + nl);
	memcpy(p, b.p, b.len);
	memcpy(p + b.len, name, nl);
	int r = proto_decode(p, b.len + nl, &o, &why);
	free(p);
	proto_buf_free(&b);
	return r;
}

static int fake_read(void *ctx, uint64_t k, void *buf, uint32_t len)
{
	const uint8_t *data = ctx;
	if (k == 77)
		return -EIO; /* unreadable: its leaf matches nothing */
	memcpy(buf, data + k * 4096, len);
	return 0;
}

/* Trees of two copies that differ in one chunk differ along one path only;
 * a short last chunk counts its own bytes. */
static void test_tree(void **state)
{
	size_t size = 5000 * 4096 + 100;
	uint8_t *a = calloc(1, size + 4096), *b = calloc(1, size + 4096), buf[4096];
	struct proto_tree ta, tb;
	for (size_t i = 0; i < size; i++)
		a[i] = b[i] = (uint8_t)(i * 31 >> 7);
	b[3000 * 4096 + 5] ^= 1;
	assert_int_equal(proto_tree_build(&ta, size, 4096, fake_read, a, buf), 0);
	assert_int_equal(proto_tree_build(&tb, size, 4096, fake_read, b, buf), 0);
	assert_int_equal(ta.levels, 4); /* 5001 leaves, 79 nodes, 2, the root */
	assert_int_equal(ta.n[0], 5001);
	assert_int_equal(ta.n[ta.levels - 1], 1);
	assert_true(ta.h[ta.levels - 1][0] != tb.h[tb.levels - 1][0]);
	int differ = 0;
	for (uint64_t i = 0; i < ta.n[1]; i++)
		differ += ta.h[1][i] != tb.h[1][i];
	assert_int_equal(differ, 1);
	assert_true(ta.h[1][3000 / 64] != tb.h[1][3000 / 64]);
	assert_int_equal(ta.h[0][77], UINT64_MAX);
	proto_tree_free(&ta);
	proto_tree_free(&tb);

	struct proto_msg m = { .type = M_VERIFY }, o;
	uint64_t h[3] = { 1, 2, 3 };
	m.verify = (struct msg_verify){ .ino = 5, .size = 1 << 20, .level = 1, .first = 64, .count = 3,
					.hashes = (const uint8_t *)h };
	roundtrip(&m, &o);
	assert_memory_equal(o.verify.hashes, h, sizeof(h));
	uint8_t bits[1] = { 5 };
	m = (struct proto_msg){ .type = M_VDIFF, .vdiff = { .ino = 5, .level = 1, .first = 64, .count = 3, .bits = bits } };
	roundtrip(&m, &o);
	assert_int_equal(o.vdiff.bits[0], 5);
	free(a);
	free(b);
}

/* What a hostile peer might send. */
static void test_refused(void **state)
{
	char big[300];
	memset(big, 'a', sizeof(big));
	assert_int_equal(decode_dent(1, 5, S_IFREG, "ok", 2), 0);
	assert_int_equal(decode_dent(1, 5, S_IFREG, "..", 2), -EBADMSG);
	assert_int_equal(decode_dent(1, 5, S_IFREG, ".", 1), -EBADMSG);
	assert_int_equal(decode_dent(1, 5, S_IFREG, "a/b", 3), -EBADMSG);
	assert_int_equal(decode_dent(1, 5, S_IFREG, "a\0b", 3), -EBADMSG);
	assert_int_equal(decode_dent(1, 5, S_IFREG, "", 0), -EBADMSG);
	assert_int_equal(decode_dent(1, 5, S_IFREG, big, 256), -EBADMSG);
	assert_int_equal(decode_dent(0, 5, S_IFREG, "ok", 2), -EBADMSG);
	assert_int_equal(decode_dent(1, 1, S_IFREG, "ok", 2), -EBADMSG);      /* the root under a name */
	assert_int_equal(decode_dent(1, 1ull << 62, S_IFREG, "ok", 2), -EBADMSG);
	assert_int_equal(decode_dent(1, 5, 0170000, "ok", 2), -EBADMSG);
	assert_int_equal(decode_dent(1, 5, S_IFREG | 0644, "ok", 2), -EBADMSG);

	const char *why;
	struct proto_msg o;
	uint8_t unknown[1] = { 99 };
	assert_int_equal(proto_decode(unknown, 1, &o, &why), -EBADMSG);
	assert_int_equal(proto_decode(unknown, 0, &o, &why), -EBADMSG);

	/* a chunk whose payload claims more than the message holds */
	struct proto_buf b = { 0 };
	struct proto_msg m = { .type = M_CHUNK, .chunk = { .ino = 3, .index = 0, .len = 4, .codec = CODEC_RAW,
							  .payload = "abcd", .plen = 4 } };
	assert_int_equal(proto_encode(&m, &b), 0);
	uint32_t huge = 1u << 30;
	memcpy(b.p + 33, &huge, 4);
	assert_int_equal(proto_decode(b.p, b.len, &o, &why), -EBADMSG);
	proto_buf_free(&b);
}

/* A FACT encoded by hand (the encoder refuses what the decoder would),
 * decoded: 0 or -EBADMSG. */
static int decode_fact(uint32_t kind, uint64_t id, int64_t time, uint32_t sub, const char *name, size_t nl,
		       const char *text, size_t tl)
{
	uint8_t buf[4096], *p = buf;
	struct proto_msg o;
	const char *why;

	*p++ = M_FACT;
	memcpy(p, &kind, 4), p += 4; /* (little-endian hosts only, as the rest of this test) */
	memcpy(p, &id, 8), p += 8;
	memcpy(p, &time, 8), p += 8;
	memcpy(p, &sub, 4), p += 4;
	*p++ = (uint8_t)nl, *p++ = (uint8_t)(nl >> 8);
	memcpy(p, name, nl), p += nl;
	*p++ = (uint8_t)tl, *p++ = (uint8_t)(tl >> 8);
	memcpy(p, text, tl), p += tl;
	return proto_decode(buf, (size_t)(p - buf), &o, &why);
}

static void test_facts(void **state)
{
	struct proto_msg m = { .type = M_FACT }, o;
	struct proto_buf b = { 0 };
	char big[1100];

	(void)state;
	m.fact = (struct msg_fact){ .kind = FACT_ALL };
	roundtrip(&m, &o);
	assert_int_equal(o.fact.kind, FACT_ALL);
	m.fact = (struct msg_fact){ .kind = FACT_PIN, .id = 42, .name = "ssd" };
	roundtrip(&m, &o);
	assert_int_equal(o.fact.id, 42);
	assert_string_equal(o.fact.name, "ssd");
	m.fact = (struct msg_fact){ .kind = FACT_RULE, .name = "vm-disks", .text = "match=vms/*.img pin=hdd" };
	roundtrip(&m, &o);
	assert_string_equal(o.fact.text, "match=vms/*.img pin=hdd");
	m.fact = (struct msg_fact){ .kind = FACT_EVENT, .id = 7, .time = 1700000000000000000ll, .sub = 2,
				    .text = "inode 5 pinned to tier ssd" };
	roundtrip(&m, &o);
	assert_int_equal(o.fact.time, 1700000000000000000ll);
	assert_int_equal(o.fact.sub, 2);

	/* good by hand, then every way of being wrong */
	assert_int_equal(decode_fact(FACT_PIN, 5, 0, 0, "ssd", 3, "", 0), 0);
	assert_int_equal(decode_fact(FACT_PIN, 0, 0, 0, "ssd", 3, "", 0), -EBADMSG);         /* inode 0 */
	assert_int_equal(decode_fact(FACT_PIN, 1ull << 62, 0, 0, "ssd", 3, "", 0), -EBADMSG);
	assert_int_equal(decode_fact(FACT_PIN, 5, 0, 0, "", 0, "", 0), -EBADMSG);            /* no tier */
	assert_int_equal(decode_fact(FACT_PIN, 5, 0, 0, "../x", 4, "", 0), -EBADMSG);        /* a path */
	assert_int_equal(decode_fact(FACT_PIN, 5, 0, 0, "s\0d", 3, "", 0), -EBADMSG);
	assert_int_equal(decode_fact(FACT_PIN, 5, 0, 0, "ssd", 3, "x", 1), -EBADMSG);        /* a text */
	memset(big, 'a', sizeof(big));
	assert_int_equal(decode_fact(FACT_PIN, 5, 0, 0, big, 63, "", 0), 0);
	assert_int_equal(decode_fact(FACT_PIN, 5, 0, 0, big, 64, "", 0), -EBADMSG);          /* name too long */
	assert_int_equal(decode_fact(FACT_RULE, 0, 0, 0, "r", 1, "match=*", 7), 0);
	assert_int_equal(decode_fact(FACT_RULE, 0, 0, 0, "r", 1, "", 0), -EBADMSG);          /* no text */
	assert_int_equal(decode_fact(FACT_RULE, 0, 0, 0, "r", 1, "a\nb", 3), -EBADMSG);      /* not printable */
	assert_int_equal(decode_fact(FACT_RULE, 0, 0, 0, "r", 1, "a\0b", 3), -EBADMSG);      /* a NUL */
	assert_int_equal(decode_fact(FACT_RULE, 0, 0, 0, "r", 1, big, 1023), 0);
	assert_int_equal(decode_fact(FACT_RULE, 0, 0, 0, "r", 1, big, 1024), -EBADMSG);      /* text too long */
	assert_int_equal(decode_fact(FACT_RULE, 3, 0, 0, "r", 1, "match=*", 7), -EBADMSG);   /* a number */
	assert_int_equal(decode_fact(FACT_RULE, 0, 0, 0, "a b", 3, "match=*", 7), -EBADMSG); /* bad name */
	assert_int_equal(decode_fact(FACT_EVENT, 9, 1, 6, "", 0, big, 399), 0);
	assert_int_equal(decode_fact(FACT_EVENT, 9, 1, 6, "", 0, big, 400), -EBADMSG);       /* text too long */
	assert_int_equal(decode_fact(FACT_EVENT, 9, 1, 64, "", 0, "x", 1), -EBADMSG);        /* kind */
	assert_int_equal(decode_fact(FACT_EVENT, 9, 1, 1, "n", 1, "x", 1), -EBADMSG);        /* a name */
	assert_int_equal(decode_fact(FACT_ALL, 1, 0, 0, "", 0, "", 0), -EBADMSG);
	assert_int_equal(decode_fact(0, 0, 0, 0, "", 0, "", 0), -EBADMSG);                   /* kinds */
	assert_int_equal(decode_fact(5, 0, 0, 0, "", 0, "", 0), -EBADMSG);

	/* the encoder refuses the same */
	m.fact = (struct msg_fact){ .kind = FACT_PIN, .id = 5, .name = "a/b" };
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	m.fact = (struct msg_fact){ .kind = FACT_RULE, .name = "r", .text = "a\tb" };
	assert_int_equal(proto_encode(&m, &b), -EINVAL);
	proto_buf_free(&b);
	assert_string_equal(proto_type_name(M_FACT), "FACT");
}

static void test_chunk_checksum(void **state)
{
	uint8_t raw[4096], z[8192], out[4096];
	struct msg_chunk c = { .ino = 2 };
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i * 7 / 13);
	assert_int_equal(proto_chunk_pack(raw, sizeof(raw), 1, z, &c), 0);
	assert_int_equal(proto_chunk_unpack(&c, out), 0);
	c.xxh3 ^= 1;
	assert_int_equal(proto_chunk_unpack(&c, out), -EBADMSG);
	c.xxh3 ^= 1;
	if (c.codec == CODEC_ZSTD) {
		z[c.plen / 2] ^= 0x40;
		assert_int_equal(proto_chunk_unpack(&c, out), -EBADMSG);
	}
	c.len = 2048; /* says fewer bytes than the frame holds */
	assert_int_equal(proto_chunk_unpack(&c, out), -EBADMSG);
}

/* ---- the channel ---- */

struct keys {
	uint8_t csk[32], cpk[32], ssk[32], spk[32], other[32];
};

static void make_keys(struct keys *k)
{
	char a[CHAN_KEY_B64], b[CHAN_KEY_B64];
	assert_int_equal(chan_keygen(a, b), 0);
	assert_int_equal(chan_key_parse(a, k->csk), 0);
	assert_int_equal(chan_key_parse(b, k->cpk), 0);
	assert_int_equal(chan_keygen(a, b), 0);
	assert_int_equal(chan_key_parse(a, k->ssk), 0);
	assert_int_equal(chan_key_parse(b, k->spk), 0);
	assert_int_equal(chan_keygen(a, b), 0);
	assert_int_equal(chan_key_parse(b, k->other), 0);
	assert_int_equal(chan_key_parse("tooshort", k->other), -EINVAL);
}

struct client {
	int fd;
	const uint8_t *sk, *peer;
	int r;
	char err[256];
};

static void *client_thread(void *arg)
{
	struct client *c = arg;
	struct sync_chan *ch;
	c->r = chan_client(c->fd, c->sk, c->peer, &ch, c->err, sizeof(c->err));
	if (!c->r) {
		c->r = chan_send(ch, "hello", 5);
		chan_free(ch);
	}
	shutdown(c->fd, SHUT_WR);
	return NULL;
}

/* A relay between the client and the server: records what the client
 * sends, and flips one byte of it at offset flip (if >= 0). */
struct relay {
	int a, b; /* client side, server side */
	long flip;
	uint8_t rec[4096];
	size_t nrec;
};

static void *relay_thread(void *arg)
{
	struct relay *r = arg;
	struct pollfd p[2] = { { .fd = r->a, .events = POLLIN }, { .fd = r->b, .events = POLLIN } };
	uint8_t buf[4096];
	int open = 3;
	while (open && poll(p, 2, 5000) > 0) {
		for (int i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			ssize_t n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				shutdown(i ? r->a : r->b, SHUT_WR);
				p[i].fd = -1;
				open &= ~(1 << i);
				continue;
			}
			if (i == 0) {
				for (ssize_t x = 0; x < n; x++) {
					if ((long)(r->nrec + x) == r->flip)
						buf[x] ^= 1;
				}
				if (r->nrec + (size_t)n <= sizeof(r->rec))
					memcpy(r->rec + r->nrec, buf, (size_t)n);
				r->nrec += (size_t)n;
			}
			if (write(i ? r->a : r->b, buf, (size_t)n) != n)
				open = 0;
		}
	}
	return NULL;
}

/* Run a client against a server (through a relay); the server's result
 * and, when it got that far, what it received. */
static int session(const struct keys *k, const uint8_t *client_sk, const uint8_t *server_expect,
		   const uint8_t (*allowed)[32], long flip, struct relay *rl, char *got, int *client_r)
{
	int cs[2], ss[2], which;
	pthread_t ct, rt;
	struct client c = { .sk = client_sk, .peer = server_expect };
	struct sync_chan *ch;
	char err[256];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, cs), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, ss), 0);
	memset(rl, 0, sizeof(*rl));
	rl->a = cs[1];
	rl->b = ss[0];
	rl->flip = flip;
	c.fd = cs[0];
	pthread_create(&rt, NULL, relay_thread, rl);
	pthread_create(&ct, NULL, client_thread, &c);
	int r = chan_server(ss[1], k->ssk, allowed, 1, &which, &ch, err, sizeof(err));
	if (!r) {
		const void *msg;
		size_t len;
		r = chan_recv(ch, &msg, &len);
		if (!r)
			snprintf(got, 16, "%.*s", (int)len, (const char *)msg);
		chan_free(ch);
	}
	close(ss[1]); /* the client sees the server go */
	pthread_join(ct, NULL);
	close(cs[0]);
	pthread_join(rt, NULL);
	close(cs[1]);
	close(ss[0]);
	*client_r = c.r;
	return r;
}

static void test_channel(void **state)
{
	struct keys k;
	struct relay rl;
	char got[16] = "";
	int cr;

	make_keys(&k);
	const uint8_t (*allowed)[32] = (const uint8_t (*)[32])k.cpk;
	assert_int_equal(session(&k, k.csk, k.spk, allowed, -1, &rl, got, &cr), 0);
	assert_int_equal(cr, 0);
	assert_string_equal(got, "hello");

	/* the client does not know the server's key: it refuses */
	assert_int_not_equal(session(&k, k.csk, k.other, allowed, -1, &rl, got, &cr), 0);
	assert_int_equal(cr, -EACCES);
	/* the server does not know the client's key */
	assert_int_equal(session(&k, k.ssk, k.spk, allowed, -1, &rl, got, &cr), -EACCES);
	/* a byte flipped in the first frame: authentication fails */
	assert_int_equal(session(&k, k.csk, k.spk, allowed, 76 + 24 + 10, &rl, got, &cr), -EBADMSG);
	/* a byte flipped in the hello's ephemeral key: different keys, no decryption */
	assert_int_equal(session(&k, k.csk, k.spk, allowed, 50, &rl, got, &cr), -EBADMSG);
}

/* A recorded connection played to the server again is refused. */
static void test_replay(void **state)
{
	struct keys k;
	struct relay rl;
	char got[16] = "";
	int cr, ss[2], which;
	struct sync_chan *ch;
	char err[256];

	make_keys(&k);
	const uint8_t (*allowed)[32] = (const uint8_t (*)[32])k.cpk;
	assert_int_equal(session(&k, k.csk, k.spk, allowed, -1, &rl, got, &cr), 0);
	assert_true(rl.nrec > 100 && rl.nrec < sizeof(rl.rec));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, ss), 0);
	assert_int_equal(write(ss[0], rl.rec, rl.nrec), (ssize_t)rl.nrec);
	int r = chan_server(ss[1], k.ssk, allowed, 1, &which, &ch, err, sizeof(err));
	if (!r) {
		const void *msg;
		size_t len;
		r = chan_recv(ch, &msg, &len);
		chan_free(ch);
	}
	assert_int_equal(r, -EBADMSG);
	close(ss[0]);
	close(ss[1]);
}

/* A peer of another protocol version: refused with a message saying so. */
static void test_version(void **state)
{
	struct keys k;
	int ss[2], which;
	struct sync_chan *ch;
	char err[256];
	uint8_t hello[76] = { 'S', 'I', 'L', 'T', 'S', 'Y', 'N', 'C', PROTO_VERSION + 1, 0 };
	char want[32];

	make_keys(&k);
	memcpy(hello + 12, k.cpk, 32);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, ss), 0);
	assert_int_equal(write(ss[0], hello, sizeof(hello)), (ssize_t)sizeof(hello));
	const uint8_t (*allowed)[32] = (const uint8_t (*)[32])k.cpk;
	assert_int_equal(chan_server(ss[1], k.ssk, allowed, 1, &which, &ch, err, sizeof(err)),
			 -EPROTONOSUPPORT);
	snprintf(want, sizeof(want), "version %d", PROTO_VERSION + 1);
	assert_non_null(strstr(err, want));
	close(ss[0]);
	close(ss[1]);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* the relay writes to sockets the test closes */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_refused),
		cmocka_unit_test_teardown(test_facts, free_last),
		cmocka_unit_test(test_chunk_checksum),
		cmocka_unit_test(test_tree),
		cmocka_unit_test(test_channel),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_version),
	};
	return cmocka_run_group_tests(tests, NULL, free_last);
}
