/* Compressed chunk format (see zchunk.h). The per-thread I/O context lends
 * the aligned scratch buffer and the zstd contexts, so nothing is allocated
 * per chunk. */
#include "tiers/zchunk.h"
#include "tiers/io.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
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
	uint64_t csum;
	uint64_t reserved;
} __attribute__((packed));

static int io1(struct silt_ioctx *c, int fd, int write, uint64_t off, void *buf, uint32_t len)
{
	struct tier_io op = { .fd = fd, .write = write, .off = off, .buf = buf, .len = len };
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

int zchunk_read(struct silt_ioctx *c, int fd, uint64_t slot, uint32_t chunk_size, int plain,
		uint64_t csum, void *raw)
{
	char *buf = silt_ioctx_scratch(c, 0, chunk_size);
	struct zc_hdr h;
	int r;

	if (!buf)
		return -ENOMEM;
	if (plain) {
		if ((r = io1(c, fd, 0, slot, raw, chunk_size)))
			return r;
		if (csum && XXH3_64bits(raw, chunk_size) != csum) {
			log_err("chunk stored plain at offset %llu: checksum mismatch", (unsigned long long)slot);
			return -EIO;
		}
		return 0;
	}
	if ((r = io1(c, fd, 0, slot, buf, chunk_size)))
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
	if (h.version != ZC_VERSION || h.codec != ZC_CODEC_ZSTD || h.raw_len != chunk_size ||
	    h.stored_len > chunk_size - sizeof(h)) {
		log_err("compressed chunk at offset %llu: unsupported or corrupt header", (unsigned long long)slot);
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

int zchunk_write(struct silt_ioctx *c, int fd, uint64_t slot, uint32_t chunk_size, int level,
		 const void *raw, struct zchunk_info *info)
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
		return io1(c, fd, 1, slot, (void *)raw, chunk_size);
	}
	h.stored_len = (uint32_t)n;
	h.csum = info->csum;
	memcpy(buf, &h, sizeof(h));
	uint32_t used = (uint32_t)((sizeof(h) + n + SILT_ALIGN - 1) & ~(size_t)(SILT_ALIGN - 1));
	memset(buf + sizeof(h) + n, 0, used - sizeof(h) - n);
	if ((r = io1(c, fd, 1, slot, buf, used)))
		return r;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(slot + used),
		      (off_t)(chunk_size - used)) < 0)
		return -errno;
	info->plain = 0;
	info->stored_len = used;
	return 0;
}
