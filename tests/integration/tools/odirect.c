/* silt-odirect write FILE OFFSET MISALIGN < DATA
 * silt-odirect read  FILE OFFSET LENGTH MISALIGN > DATA
 * One pwrite/pread (looping on short counts) on FILE opened with O_DIRECT,
 * using a buffer that starts MISALIGN bytes after a 4096-aligned address;
 * write takes the data from stdin, read prints it.  Offsets and lengths
 * need not be aligned either: the point is to see what siltfs accepts.
 * On failure prints the errno name and exits 1. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int err(const char *what)
{
	printf("%s\n", strerrorname_np(errno));
	fprintf(stderr, "silt-odirect: %s: %s\n", what, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	size_t cap = 64 << 20, len = 0, mis;
	char *raw, *buf;
	off_t off;
	int fd, wr;

	if (argc < 5) {
		fprintf(stderr, "usage: %s write FILE OFFSET MISALIGN | read FILE OFFSET LENGTH MISALIGN\n", argv[0]);
		return 2;
	}
	wr = !strcmp(argv[1], "write");
	off = strtoll(argv[3], NULL, 0);
	mis = strtoul(argv[wr ? 4 : 5], NULL, 0);
	if (posix_memalign((void **)&raw, 4096, cap + 8192))
		return 2;
	buf = raw + mis;
	if (wr) {
		ssize_t n;
		while (len < cap && (n = read(0, buf + len, cap - len)) > 0)
			len += n;
	} else {
		len = strtoul(argv[4], NULL, 0);
		if (len > cap)
			return 2;
	}
	fd = open(argv[2], (wr ? O_WRONLY | O_CREAT : O_RDONLY) | O_DIRECT, 0644);
	if (fd < 0)
		return err("open");
	size_t done = 0;
	while (done < len) {
		ssize_t n = wr ? pwrite(fd, buf + done, len - done, off + done)
			       : pread(fd, buf + done, len - done, off + done);
		if (n < 0)
			return err(wr ? "pwrite" : "pread");
		if (n == 0)
			break;
		done += n; /* short count: go on until EOF */
	}
	if (close(fd) < 0)
		return err("close");
	if (!wr)
		fwrite(buf, 1, done, stdout);
	return 0;
}
