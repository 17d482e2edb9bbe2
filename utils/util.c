/* Small helpers shared by every module. Nothing here holds state. */
#include "utils/util.h"

#include <ctype.h>
#include <errno.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int silt_parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v;
	uint64_t mul = 1;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	/* digits and one optional fraction only: strtod alone would also take
	 * hex ("0x10K" = 16K) and exponents ("1e3") */
	size_t nnum = strspn(s, "0123456789");
	if (s[nnum] == '.')
		nnum += 1 + strspn(s + nnum + 1, "0123456789");
	errno = 0;
	v = strtod(s, &end);
	if (errno || v < 0 || end != s + nnum)
		return -EINVAL;
	while (isspace((unsigned char)*end))
		end++;
	switch (toupper((unsigned char)*end)) {
	case 'K': mul = 1ull << 10; end++; break;
	case 'M': mul = 1ull << 20; end++; break;
	case 'G': mul = 1ull << 30; end++; break;
	case 'T': mul = 1ull << 40; end++; break;
	case 'P': mul = 1ull << 50; end++; break;
	case 'B': case '\0': break;
	default: return -EINVAL;
	}
	/* accept K, KB, KiB, k, b */
	if (mul > 1 && (*end == 'i' || *end == 'I'))
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	while (isspace((unsigned char)*end))
		end++;
	if (*end)
		return -EINVAL;
	if (v * (double)mul >= 18446744073709551615.0)
		return -ERANGE;
	*out = (uint64_t)(v * (double)mul);
	return 0;
}

int silt_parse_duration(const char *s, uint64_t *ms)
{
	char *end;
	double v;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || v < 0)
		return -EINVAL;
	while (isspace((unsigned char)*end))
		end++;
	if (!strncmp(end, "ms", 2)) {
		end += 2;
	} else if (*end == 's' || *end == '\0') {
		v *= 1000;
		end += *end == 's';
	} else if (*end == 'm') {
		v *= 60000;
		end++;
	} else if (*end == 'h') {
		v *= 3600000;
		end++;
	} else {
		return -EINVAL;
	}
	while (isspace((unsigned char)*end))
		end++;
	if (*end || v > 1e15)
		return -EINVAL;
	*ms = (uint64_t)v;
	return 0;
}

const char *silt_fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double d = (double)v;
	int u = 0;

	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)v);
	else
		snprintf(buf, len, "%.1f %s", d, unit[u]);
	return buf;
}

uint64_t silt_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t silt_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *silt_aligned_alloc(size_t len)
{
	void *p;
	len = (len + SILT_ALIGN - 1) & ~(size_t)(SILT_ALIGN - 1);
	if (posix_memalign(&p, SILT_ALIGN, len))
		return NULL;
	memset(p, 0, len);
	return p;
}

int silt_thread_nice(int nice)
{
	return setpriority(PRIO_PROCESS, (id_t)gettid(), nice) < 0 ? -errno : 0;
}

int silt_mkdir_p(const char *path, unsigned mode)
{
	char tmp[4096];
	size_t n = strlen(path);

	if (n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int silt_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int silt_write_file_atomic(const char *path, const char *data, size_t len)
{
	char tmp[4096], dir[4096];
	int fd, r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) < 0)
		r = errno ? -errno : -EIO;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r) {
		unlink(tmp);
		return r;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = silt_fsync_dir(dir);
	}
	return r;
}

int silt_path_within(const char *path, const struct stat *dir)
{
	struct stat cur, up;
	int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &cur) < 0) {
		r = -errno;
		goto out;
	}
	/* ".." of a mount's root is the parent of its mountpoint, so a bind
	 * mount does not hide where a folder is. The root is its own "..". */
	for (int depth = 0; depth < 4096 && r == 0; depth++) {
		if (cur.st_dev == dir->st_dev && cur.st_ino == dir->st_ino) {
			r = 1;
			break;
		}
		int pfd = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0 || fstat(pfd, &up) < 0) {
			r = -errno;
			if (pfd >= 0)
				close(pfd);
			break;
		}
		close(fd);
		fd = pfd;
		if (up.st_dev == cur.st_dev && up.st_ino == cur.st_ino)
			break;
		cur = up;
	}
out:
	close(fd);
	return r;
}

char *silt_mount_unescape(char *s)
{
	char *o = s, *start = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
			*o++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return start;
}

void silt_pct_put(FILE *o, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c == '%' || c == '=' || c >= 0x7f)
			fprintf(o, "%%%02X", c);
		else
			fputc(c, o);
	}
}

char *silt_pct_unescape(char *s)
{
	char *o = s, *start = s;

	for (; *s; s++) {
		if (*s == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
			char hex[3] = { s[1], s[2], 0 };
			*o++ = (char)strtol(hex, NULL, 16);
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return start;
}

void silt_ctl_default_path(const char *mnt, char *out, size_t len)
{
	char esc[200];
	size_t j = 0;

	while (*mnt == '/')
		mnt++;
	for (; *mnt && j < sizeof(esc) - 1; mnt++) {
		char c = *mnt;
		if (c == '/')
			c = '-';
		else if (!isalnum((unsigned char)c) && c != '.' && c != '_' && c != '-')
			c = '_';
		esc[j++] = c;
	}
	while (j && esc[j - 1] == '-')
		j--;
	esc[j] = '\0';
	if (j > 80) { /* sun_path is 108 bytes: keep a prefix and a hash of the whole */
		uint64_t h = 1469598103934665603ull;
		for (const char *p = esc; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		snprintf(esc + 64, sizeof(esc) - 64, "-%016llx", (unsigned long long)h);
	}
	snprintf(out, len, "/run/siltfs/%s.sock", j ? esc : "root");
}
