/* Small helpers shared by every module: sizes, time, paths, aligned memory. */
#ifndef SILT_UTIL_H
#define SILT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SILT_ALIGN 4096u /* O_DIRECT alignment for buffers, offsets, lengths */

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* "64K", "10G", "1.5T", "4096" -> bytes. Returns -EINVAL on garbage. */
int silt_parse_size(const char *s, uint64_t *out);
/* "500ms", "5s", "2m", "1h", "30" (seconds) -> milliseconds. -EINVAL on garbage. */
int silt_parse_duration(const char *s, uint64_t *ms);
/* "4.0 GiB"-style rendering into buf. */
const char *silt_fmt_size(uint64_t v, char *buf, size_t len);

uint64_t silt_now_ns(void);          /* CLOCK_MONOTONIC */
uint64_t silt_wall_ns(void);         /* CLOCK_REALTIME */
/* The calling thread's nice value (Linux keeps one per thread): 0 or -errno. */
int silt_thread_nice(int nice);

void *silt_aligned_alloc(size_t len); /* SILT_ALIGN-aligned, zeroed; NULL on failure */

int silt_mkdir_p(const char *path, unsigned mode);   /* 0 or -errno */
int silt_fsync_dir(const char *path);                /* 0 or -errno */
/* Write a small file atomically and durably (tmp, fsync, rename, fsync dir). */
int silt_write_file_atomic(const char *path, const char *data, size_t len);

struct stat;
/* 1 if the directory path is dir or lies anywhere below it (through
 * symlinks and bind mounts: directories are compared by device and inode),
 * 0 if not, -errno if path cannot be opened. */
int silt_path_within(const char *path, const struct stat *dir);

/* Undo the octal escapes (\040 for a space, ...) of a path in
 * /proc/self/mounts or mountinfo, in place. */
char *silt_mount_unescape(char *s);

/* The control socket's value escapes (fs/ctl.c): %XX for a byte that is a
 * space or a control character, '%', '=' or not ASCII; and their undoing,
 * in place. */
void silt_pct_put(FILE *o, const char *s);
char *silt_pct_unescape(char *s);

/* Control socket of the volume mounted at mnt: /run/siltfs/<escaped>.sock,
 * the mountpoint escaped systemd-style ('/' -> '-'). */
void silt_ctl_default_path(const char *mnt, char *out, size_t len);

static inline void silt_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}
static inline uint64_t silt_get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
	return v;
}

#endif
