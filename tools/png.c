/* PNG writer (png.h).
 *
 * A PNG is a signature and chunks (length, type, data, CRC-32 of type and
 * data): IHDR (size, 8-bit RGB), one IDAT (the rows, each after a filter
 * byte 0, deflated by zlib) and IEND. That is all a viewer needs; zlib
 * gives both the deflate stream and the CRC. */
#include "tools/png.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int put_chunk(FILE *f, const char type[4], const uint8_t *data, uint32_t len)
{
	uint8_t head[8], tail[4];
	uLong crc = crc32(0, (const Bytef *)type, 4);

	if (len)
		crc = crc32(crc, data, len);
	be32(head, len);
	memcpy(head + 4, type, 4);
	be32(tail, (uint32_t)crc);
	return fwrite(head, 8, 1, f) == 1 && (!len || fwrite(data, len, 1, f) == 1) && fwrite(tail, 4, 1, f) == 1
		       ? 0
		       : -EIO;
}

/* The rows with their filter bytes, deflated: *out malloc'd. */
static int deflate_rows(uint32_t w, uint32_t h, const uint8_t *rgb, uint8_t **out, uLongf *outlen)
{
	size_t stride = (size_t)w * 3 + 1, raw_len = stride * h;
	uint8_t *raw = malloc(raw_len);

	if (!raw)
		return -ENOMEM;
	for (uint32_t y = 0; y < h; y++) {
		raw[y * stride] = 0; /* filter: none */
		memcpy(raw + y * stride + 1, rgb + (size_t)y * w * 3, (size_t)w * 3);
	}
	*outlen = compressBound((uLong)raw_len);
	if (!(*out = malloc(*outlen))) {
		free(raw);
		return -ENOMEM;
	}
	int z = compress2(*out, outlen, raw, (uLong)raw_len, 6);
	free(raw);
	if (z != Z_OK) {
		free(*out);
		return -ENOMEM;
	}
	return 0;
}

int png_write(const char *path, uint32_t w, uint32_t h, const uint8_t *rgb, char *why, size_t len)
{
	static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	uint8_t ihdr[13] = { 0 }, *z;
	uLongf zlen;
	char tmp[4200];
	int r;

	if (!w || !h || w > 1u << 16 || h > 1u << 16) {
		snprintf(why, len, "a picture of %u x %u pixels", w, h);
		return -EINVAL;
	}
	if ((r = deflate_rows(w, h, rgb, &z, &zlen))) {
		snprintf(why, len, "out of memory for the picture");
		return r;
	}
	be32(ihdr, w);
	be32(ihdr + 4, h);
	ihdr[8] = 8; /* bits per sample */
	ihdr[9] = 2; /* RGB */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		r = -errno;
		snprintf(why, len, "%s: %s", tmp, strerror(errno));
		free(z);
		return r;
	}
	r = fwrite(sig, 8, 1, f) == 1 ? 0 : -EIO;
	if (!r)
		r = put_chunk(f, "IHDR", ihdr, sizeof(ihdr));
	if (!r)
		r = put_chunk(f, "IDAT", z, (uint32_t)zlen);
	if (!r)
		r = put_chunk(f, "IEND", NULL, 0);
	free(z);
	if (fclose(f) && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r) {
		snprintf(why, len, "%s: %s", path, strerror(-r));
		unlink(tmp);
	}
	return r;
}
