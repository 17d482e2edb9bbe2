/* Compressed chunk format (see zchunk.h). The per-thread I/O context lends
 * the aligned scratch buffer and the zstd contexts, so nothing is allocated
 * per chunk.
 *
 * Two checksums guard a compressed chunk: hcsum over every byte the slot
 * stores (header, frame, the zeros up to the next block), checked before
 * anything is decompressed, so that a flip anywhere, also in a header field
 * the reader would not otherwise look at or in the padding, is caught; and
 * csum over the raw chunk, checked after, which also catches a codec that
 * decoded garbage without complaint. Chunks written before hcsum existed
 * carry 0 there (the field was reserved and zero): their header must have
 * its pad zero, and csum alone covers them. */
#include "tiers/zchunk.h"
#include "tiers/io.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stddef.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#define ZC_MAGIC 0x5a544c53u /* "SLTZ" little-endian */
#define ZC_VERSION 1
#define ZC_CODEC_ZSTD 1

struct zc_hdr {
	uint32_t magic;
	uint8_t version, codec;
	uint16_t pad;
	uint32_t raw_len, stored_len;
	uint64_t csum;           /* XXH3-64 of the raw chunk */
	uint64_t hcsum;          /* XXH3-64 of the stored bytes, this field 0; 0: none */
} __attribute__((packed));

#define HCSUM_OFF offsetof(struct zc_hdr, hcsum)

/* The stored bytes' checksum: buf[0, used) with the hcsum field as zeros
 * (it is zeroed in buf), never 0. */
static uint64_t stored_sum(char *buf, uint32_t used)
{
	memset(buf + HCSUM_OFF, 0, sizeof(uint64_t));
	uint64_t s = XXH3_64bits(buf, used);
	return s ? s : 1;
}

static uint32_t used_of(uint32_t stored_len)
{
	return (uint32_t)((sizeof(struct zc_hdr) + stored_len + SILT_ALIGN - 1) & ~(size_t)(SILT_ALIGN - 1));
}

static int io1(struct silt_ioctx *c, int fd, struct silt_netio *net, int write, uint64_t off, void *buf,
	       uint32_t len)
{
	struct tier_io op = { .fd = fd, .write = write, .off = off, .buf = buf, .len = len, .net = net };
	return tier_io_run(c, &op, 1);
}

static int all_zero(const void *p, size_t n)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < n / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

int zchunk_read(struct silt_ioctx *c, int fd, struct silt_netio *net, uint64_t slot, uint32_t chunk_size,
		int plain, uint64_t csum, void *raw)
{
	char *buf = silt_ioctx_scratch(c, 0, chunk_size);
	struct zc_hdr h;
	int r;

	if (!buf)
		return -ENOMEM;
	if (plain) {
		if ((r = io1(c, fd, net, 0, slot, raw, chunk_size)))
			return r;
		if (csum && XXH3_64bits(raw, chunk_size) != csum) {
			log_err("chunk stored plain at offset %llu: checksum mismatch", (unsigned long long)slot);
			return -EIO;
		}
		return 0;
	}
	if ((r = io1(c, fd, net, 0, slot, buf, chunk_size)))
		return r;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != ZC_MAGIC) {
		if (!csum && all_zero(buf, SILT_ALIGN)) { /* allocated, never written */
			memset(raw, 0, chunk_size);
			return 0;
		}
		log_err("compressed chunk at offset %llu: bad header", (unsigned long long)slot);
		return -EIO;
	}
	if (h.version != ZC_VERSION || h.codec != ZC_CODEC_ZSTD || h.raw_len != chunk_size || h.pad ||
	    h.stored_len > chunk_size - SILT_ALIGN - sizeof(h)) {
		log_err("compressed chunk at offset %llu: unsupported or corrupt header", (unsigned long long)slot);
		return -EIO;
	}
	if ((h.hcsum && stored_sum(buf, used_of(h.stored_len)) != h.hcsum) || (csum && h.csum != csum)) {
		log_err("compressed chunk at offset %llu: checksum mismatch", (unsigned long long)slot);
		return -EIO;
	}
	size_t n = ZSTD_decompressDCtx(silt_ioctx_dctx(c), raw, chunk_size, buf + sizeof(h), h.stored_len);
	if (ZSTD_isError(n) || n != chunk_size || XXH3_64bits(raw, chunk_size) != h.csum) {
		log_err("compressed chunk at offset %llu: %s", (unsigned long long)slot,
			ZSTD_isError(n) ? ZSTD_getErrorName(n) : "checksum mismatch");
		return -EIO;
	}
	return 0;
}

int zchunk_write(struct silt_ioctx *c, int fd, struct silt_netio *net, uint64_t slot, uint32_t chunk_size,
		 int level, const void *raw, struct zchunk_info *info)
{
	char *buf = silt_ioctx_scratch(c, 0, chunk_size);
	struct zc_hdr h = { .magic = ZC_MAGIC, .version = ZC_VERSION, .codec = ZC_CODEC_ZSTD,
			    .raw_len = chunk_size };
	size_t n = 0;
	int r;

	if (!buf)
		return -ENOMEM;
	info->csum = XXH3_64bits(raw, chunk_size);
	/* worth it only if at least one block is saved */
	if (chunk_size > 2 * SILT_ALIGN)
		n = ZSTD_compressCCtx(silt_ioctx_cctx(c), buf + sizeof(h), chunk_size - SILT_ALIGN - sizeof(h),
				      raw, chunk_size, level);
	if (chunk_size <= 2 * SILT_ALIGN || ZSTD_isError(n)) { /* store it plain */
		info->plain = 1;
		info->stored_len = chunk_size;
		return io1(c, fd, net, 1, slot, (void *)raw, chunk_size);
	}
	h.stored_len = (uint32_t)n;
	h.csum = info->csum;
	memcpy(buf, &h, sizeof(h));
	uint32_t used = used_of(h.stored_len);
	memset(buf + sizeof(h) + n, 0, used - sizeof(h) - n);
	h.hcsum = stored_sum(buf, used);
	memcpy(buf + HCSUM_OFF, &h.hcsum, sizeof(h.hcsum));
	if ((r = io1(c, fd, net, 1, slot, buf, used)))
		return r;
	/* the rest of the slot back to the filesystem: the saving du shows.
	 * One that cannot punch (sshfs) keeps the old bytes there, which no
	 * read looks at (the header says how much is stored) */
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(slot + used),
		      (off_t)(chunk_size - used)) < 0 && errno != EOPNOTSUPP)
		return -errno;
	info->plain = 0;
	info->stored_len = used;
	return 0;
}
