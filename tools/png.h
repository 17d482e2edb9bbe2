/* A PNG writer for siltctl heat --png: 8-bit RGB, one zlib stream (the
 * format's own compression), no ancillary chunks. */
#ifndef SILT_PNG_H
#define SILT_PNG_H

#include <stddef.h>
#include <stdint.h>

/* Write w x h pixels (rgb: 3 bytes each, row after row) to path, through a
 * temporary file renamed over it. 0, or -errno with why set. */
int png_write(const char *path, uint32_t w, uint32_t h, const uint8_t *rgb, char *why, size_t len);

#endif
