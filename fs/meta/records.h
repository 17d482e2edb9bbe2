/* Every on-disk record of a volume's metadata store, and its key.
 *
 * One header so that a reader (or fsck, or the replication decoder) sees the
 * whole format in one place. Integers in values are little-endian (the
 * records are packed structs of a little-endian machine); keys are
 * big-endian so that RocksDB's byte order walks one inode's directory
 * entries or chunks in order.
 *
 *   column family  key                      value
 *   facts          "uuid", "name", ...      volume facts (fs/volume.c)
 *   inodes         ino                      struct inode_rec [+ symlink target]
 *   dentries       parent | name            struct dent_val (fs/ns.c)
 *   xattrs         ino | name               the value
 *   chunks         ino | chunk index        struct chunk_rec
 *   facts          "move/" | ino | chunk    struct move_rec (a move in progress)
 *   facts          "event/" | seq           the event log (fs/meta/events.c)
 *   facts          "tierstate/" | tier id   struct tier_state_rec (evacuations)
 *   facts          "pin/" | ino             struct pin_rec (siltctl pin)
 *   facts          "rule/" | name           a live placement rule's text (fs/rules.c)
 */
#ifndef SILT_RECORDS_H
#define SILT_RECORDS_H

#include <stdint.h>

#include "utils/util.h"

#define SILT_FORMAT_VERSION 1
#define INODE_REC_V1 1

/* An inode (CF_INODES value), followed by the target for symlinks. */
struct inode_rec {
	uint8_t version;
	uint8_t pad[3];
	uint32_t mode, uid, gid, nlink, rdev;
	uint64_t size;
	uint64_t nchunks;        /* mapped chunks: st_blocks without loading the map */
	int64_t atime, mtime, ctime; /* ns since the epoch */
} __attribute__((packed));

/* A directory entry (CF_DENTRIES value, key parent | name). */
struct dent_val {
	uint64_t ino;
	uint32_t mode;           /* the S_IFMT bits of the inode */
} __attribute__((packed));

/* Where one chunk lives (CF_CHUNKS value). Only tiers/chunkmap.c writes it. */
struct chunk_rec {
	uint8_t tier;            /* persistent tier id */
	uint8_t flags;           /* CHUNK_* */
	uint32_t stored_len;     /* bytes in the slot (compressed tiers) */
	uint64_t csum;           /* XXH3 of the raw chunk when written whole */
} __attribute__((packed));

/* chunk_rec flags */
#define CHUNK_PLAIN 1   /* on a compressed tier, stored without header */
#define CHUNK_SUMS 2    /* followed by a struct block_sum per 4 KiB block */

/* The bytes of its slot a chunk does not take: a compressed one's tail
 * (punched); 0 for chunks stored plain or on uncompressed tiers. */
static inline uint32_t chunk_rec_saved(const struct chunk_rec *r, uint32_t chunk_size)
{
	return !(r->flags & CHUNK_PLAIN) && r->stored_len && r->stored_len < chunk_size
		       ? chunk_size - r->stored_len : 0;
}

/* The checksum of one 4 KiB block of a chunk on a checksummed tier (hdd and
 * net by default): XXH3-64 folded to 32 bits (tiers/blocksum.h). A write
 * records the new sum before its data goes out, keeping the old one as
 * prev: after a crash the block matches one of the two, and only a block
 * that matches neither is damaged. */
#define SUM_BLOCK 4096
struct block_sum {
	uint32_t cur, prev;
} __attribute__((packed));

/* A move of a chunk between tiers in progress (CF_FACTS, key "move/" | ino |
 * chunk): written before the copy, deleted once the old copy is punched;
 * the next mount settles any that a crash left (tiers/migrate.c). */
#define K_MOVE_PREFIX "move/"
#define K_MOVE_LEN (sizeof(K_MOVE_PREFIX) - 1 + 16)
struct move_rec {
	uint8_t from, to;        /* tier ids */
} __attribute__((packed));

/* A tier's state when it is not simply active (CF_FACTS, "tierstate/" |
 * tier id): an evacuation under way resumes at the next mount, an
 * evacuated tier stays empty (tiers/migrate.c). */
#define K_TIERSTATE_PREFIX "tierstate/"
#define K_TIERSTATE_LEN (sizeof(K_TIERSTATE_PREFIX) - 1 + 1)
struct tier_state_rec {
	uint8_t state;           /* enum tier_state (tiers/tier.h) */
	uint64_t total;          /* chunks on it when the evacuation began */
} __attribute__((packed));

/* A live placement rule (CF_FACTS, "rule/" | its name -> "match=GLOB
 * [pin=T] [min_tier=T] [max_tier=T] [weight=N] [compress=no]", values
 * %-escaped; fs/rules.c). */
#define K_RULE_PREFIX "rule/"

/* An operator's pin of one file (CF_FACTS, "pin/" | ino; fs/pins.c). */
#define K_PIN_PREFIX "pin/"
struct pin_rec {
	uint8_t tier;            /* tier id */
} __attribute__((packed));

/* prefix | ino (be64) */
static inline size_t key_prefixed_ino(uint8_t *k, const char *prefix, uint64_t ino)
{
	size_t n = __builtin_strlen(prefix);
	__builtin_memcpy(k, prefix, n);
	silt_put_be64(k + n, ino);
	return n + 8;
}

static inline void key_ino(uint8_t k[8], uint64_t ino) { silt_put_be64(k, ino); }
static inline void key_move(uint8_t k[K_MOVE_LEN], uint64_t ino, uint64_t chunk)
{
	__builtin_memcpy(k, K_MOVE_PREFIX, sizeof(K_MOVE_PREFIX) - 1);
	silt_put_be64(k + sizeof(K_MOVE_PREFIX) - 1, ino);
	silt_put_be64(k + sizeof(K_MOVE_PREFIX) - 1 + 8, chunk);
}
static inline void key_chunk(uint8_t k[16], uint64_t ino, uint64_t chunk)
{
	silt_put_be64(k, ino);
	silt_put_be64(k + 8, chunk);
}

#endif
