/* silt-syncio FILE fsync|fdatasync < DATA   |   silt-syncio DIR dirfsync
 * Writes DATA to FILE at offset 0 (creating it, not truncating), then calls
 * fsync(2) or fdatasync(2) and close(2); dirfsync opens a directory and
 * fsyncs it.  On failure prints the errno name and exits 1. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int err(const char *what)
{
	printf("%s\n", strerrorname_np(errno));
	fprintf(stderr, "silt-syncio: %s: %s\n", what, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	char buf[1 << 16];
	ssize_t n;
	off_t off = 0;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: %s FILE fsync|fdatasync < DATA | %s DIR dirfsync\n", argv[0], argv[0]);
		return 2;
	}
	if (!strcmp(argv[2], "dirfsync")) {
		if ((fd = open(argv[1], O_RDONLY | O_DIRECTORY)) < 0)
			return err("open");
		if (fsync(fd) < 0)
			return err("fsync");
		return close(fd) < 0 ? err("close") : 0;
	}
	if ((fd = open(argv[1], O_WRONLY | O_CREAT, 0644)) < 0)
		return err("open");
	while ((n = read(0, buf, sizeof(buf))) > 0) {
		for (ssize_t done = 0; done < n;) {
			ssize_t w = pwrite(fd, buf + done, n - done, off);
			if (w < 0)
				return err("pwrite");
			done += w;
			off += w;
		}
	}
	if (!strcmp(argv[2], "fsync") ? fsync(fd) < 0 : fdatasync(fd) < 0)
		return err(argv[2]);
	return close(fd) < 0 ? err("close") : 0;
}
