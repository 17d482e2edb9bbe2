/* The replication protocol: the messages a sender and a receiver exchange
 * inside the secure channel (chan.h), their encoding and their decoding.
 *
 * Nothing a peer sends is trusted: proto_decode() checks every length
 * against the message and against fixed bounds, every name (1-255 bytes,
 * no '/', no NUL, not "." or ".."), every inode number (>= 1, < 2^62),
 * every file type, before anything is handed on; it is the fuzzed entry
 * point (tests/fuzz/). Chunks travel zstd-compressed with the XXH3 of their
 * raw bytes; proto_chunk_unpack() checks both.
 *
 * A session: the sender says START (its volume, its generations), the
 * receiver answers STATE (what it holds, the last batch it applied); then
 * batches: BATCH, any of NODE / DENT / ATTR / CHUNK / FACT, END; the receiver
 * applies the batch and answers ACK (or ERR, and closes). Outside batches,
 * a verify: VERIFY carries hashes of a file's checksum tree (one level,
 * a run of nodes), the receiver answers VDIFF with a bit per node that
 * differs from its own tree; the sender descends only into those.
 *
 * FACT carries the operator's facts of the volume (its pins, live placement
 * rules, event log): a FACT "all" says the whole set follows and replaces
 * the replica's, one FACT per record after it (bounded: events by the log's
 * bound, rules by the rules', pins by the files). Version 2 added FACT. */
#ifndef SILT_SYNC_PROTO_H
#define SILT_SYNC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 2
#define PROTO_MAX_MSG ((4u << 20) + 4096) /* a 4 MiB chunk uncompressed, plus its header */
#define PROTO_MAX_CHUNK (4u << 20)
#define PROTO_MAX_NAME 255
#define PROTO_MAX_LINK 4095
#define PROTO_MAX_XATTRS 256
#define PROTO_MAX_XATTR_VALUE 65536
#define PROTO_MAX_INO (1ull << 62)
#define PROTO_MAX_GENS 16

enum msg_type {
	M_START = 1, M_STATE, M_BATCH, M_NODE, M_DENT, M_ATTR, M_CHUNK, M_END, M_ACK, M_ERR, M_PING,
	M_VERIFY, M_VDIFF, M_FACT,
};

#define PROTO_TREE_FANOUT 64
#define PROTO_MAX_VNODES 4096 /* hashes in one VERIFY */
#define PROTO_MAX_LEVELS 8

/* Batch kinds */
enum {
	B_JOURNAL = 1, /* consistent: applied all or nothing */
	B_RESYNC = 2,  /* part of a resync or full sync: applied as it comes */
};

/* A generation: the epoch a volume was primary in, and the batch it had
 * reached when the next one began (UINT64_MAX: still going). */
struct proto_gen {
	uint64_t epoch, upto;
};

struct msg_start {
	char uuid[37];                 /* the primary volume */
	uint32_t ngens;
	struct proto_gen gens[PROTO_MAX_GENS];
	uint64_t chunk_size;
};

struct msg_state {
	char origin[37];               /* whose replica this is ("" = none yet) */
	uint64_t applied;              /* last batch applied whole */
	uint32_t ngens;
	struct proto_gen gens[PROTO_MAX_GENS];
	uint32_t inconsistent;         /* a resync is under way */
};

struct msg_batch {
	uint64_t seq;
	uint32_t kind;
	uint64_t ns;                   /* NODE and DENT messages follow: a whole namespace */
};

struct proto_xattr {
	const char *name;              /* NUL-terminated (decode copies into the message) */
	const void *value;
	uint32_t len;
};

/* An inode's attributes (ATTR), or all that makes it up (NODE): for NODE,
 * the symlink target and every xattr. */
struct msg_node {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink, rdev;
	uint64_t size;
	int64_t atime, mtime, ctime;
	const char *symlink;           /* "" unless a symlink */
	uint32_t nxattr;
	struct proto_xattr xattr[PROTO_MAX_XATTRS];
};

struct msg_dent {
	uint64_t parent, ino;
	uint32_t type;                 /* S_IFMT bits */
	char name[PROTO_MAX_NAME + 1];
};

enum { CODEC_RAW = 0, CODEC_ZSTD = 1, CODEC_HOLE = 2 };

struct msg_chunk {
	uint64_t ino, index;
	uint32_t len;                  /* raw bytes (a chunk, or less at the end of a file) */
	uint32_t codec;
	uint64_t xxh3;                 /* of the raw bytes */
	const void *payload;
	uint32_t plen;
};

/* FACT kinds */
enum {
	FACT_ALL = 1,   /* the whole set follows: the replica's goes */
	FACT_PIN = 2,   /* id: the inode; name: the tier it is pinned to */
	FACT_RULE = 3,  /* name: the rule's; text: its "key=value ..." */
	FACT_EVENT = 4, /* id: its sequence number; time, sub (its kind), text */
};
#define PROTO_MAX_FACT_NAME 63   /* a tier's or a rule's: 1-63 of [A-Za-z0-9._-] */
#define PROTO_MAX_FACT_TEXT 1023 /* a rule's (printable ASCII), an event's */
#define PROTO_MAX_EVENT_TEXT 399
#define PROTO_MAX_EVENT_KIND 63

struct msg_fact {
	uint32_t kind;
	uint64_t id;
	int64_t time;                  /* ns since the epoch */
	uint32_t sub;
	char name[PROTO_MAX_FACT_NAME + 1];
	char text[PROTO_MAX_FACT_TEXT + 1];
};

struct msg_end {
	uint64_t seq, count;           /* messages in the batch, END excluded */
};

struct msg_ack {
	uint64_t seq;
};

struct msg_verify {
	uint64_t ino, size;            /* the file, and its size on the primary */
	uint32_t level, first, count;  /* nodes first..first+count-1 of a level (0 = chunks) */
	const uint8_t *hashes;         /* count little-endian u64 */
};

struct msg_vdiff {
	uint64_t ino;
	uint32_t level, first, count;
	const uint8_t *bits;           /* bit i: node first+i differs */
};

struct msg_err {
	int32_t code;                  /* positive errno */
	char text[256];
};

struct proto_msg {
	enum msg_type type;
	union {
		struct msg_start start;
		struct msg_state state;
		struct msg_batch batch;
		struct msg_node node;      /* M_NODE and M_ATTR */
		struct msg_dent dent;
		struct msg_chunk chunk;
		struct msg_end end;
		struct msg_ack ack;
		struct msg_err err;
		struct msg_verify verify;
		struct msg_vdiff vdiff;
		struct msg_fact fact;
	};
};

/* A growing buffer for encoding. */
struct proto_buf {
	uint8_t *p;
	size_t len, cap;
	int oom;
};
void proto_buf_free(struct proto_buf *b);

/* Encode m into b (which is reset first). 0 or -ENOMEM / -EINVAL (a value
 * out of bounds: we never send what we would refuse). */
int proto_encode(const struct proto_msg *m, struct proto_buf *b);
/* Decode a whole message. Pointers in m point into buf (which must stay
 * alive). 0, or -EBADMSG with why set to a static string. */
int proto_decode(const void *buf, size_t len, struct proto_msg *m, const char **why);
const char *proto_type_name(int type);

/* A file's checksum tree, the same on both sides: level 0 is the XXH3 of
 * each chunk's bytes (zeros for a hole; UINT64_MAX for a chunk that cannot
 * be read), each level above the XXH3 of up to PROTO_TREE_FANOUT nodes
 * below, up to one root. read(ctx, k, buf, len) fills chunk k. */
struct proto_tree {
	uint32_t levels;
	uint64_t n[PROTO_MAX_LEVELS];
	uint64_t *h[PROTO_MAX_LEVELS];
};
int proto_tree_build(struct proto_tree *t, uint64_t size, uint32_t chunk_size,
		     int (*read)(void *ctx, uint64_t k, void *buf, uint32_t len), void *ctx, void *buf);
void proto_tree_free(struct proto_tree *t);

/* Name a peer may send: 1-255 bytes, no '/', no NUL, not "." or "..". */
int proto_name_ok(const char *s, size_t len);

/* A FACT as the decoder takes it: NULL, or what is wrong (the encoder
 * refuses the same). */
const char *proto_fact_problem(const struct msg_fact *f);

/* Chunks on the wire: compress (falls back to raw when zstd does not
 * save), checksum; dst has room for proto_chunk_bound(len). */
size_t proto_chunk_bound(size_t len);
int proto_chunk_pack(const void *raw, uint32_t len, int level, void *dst, struct msg_chunk *c);
/* Check and expand into out (room for c->len bytes): -EBADMSG when the
 * payload does not decompress to exactly len bytes or the checksum
 * differs. Holes fill zeros. */
int proto_chunk_unpack(const struct msg_chunk *c, void *out);

#endif
