/* silt-mmaprw write FILE < DATA   |   silt-mmaprw read FILE > DATA
 * write: ftruncate FILE to the size of DATA, map it MAP_SHARED, copy DATA
 * into the mapping, msync(MS_SYNC), munmap, close.
 * read: map FILE MAP_SHARED read-only and print its bytes.
 * On failure prints the errno name and exits 1. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int err(const char *what)
{
	printf("%s\n", strerrorname_np(errno));
	fprintf(stderr, "silt-mmaprw: %s: %s\n", what, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s write|read FILE\n", argv[0]);
		return 2;
	}
	if (!strcmp(argv[1], "write")) {
		size_t cap = 64 << 20, len = 0;
		char *data = malloc(cap);
		ssize_t n;
		while (len < cap && (n = read(0, data + len, cap - len)) > 0)
			len += n;
		int fd = open(argv[2], O_RDWR | O_CREAT, 0644);
		if (fd < 0)
			return err("open");
		if (ftruncate(fd, len) < 0)
			return err("ftruncate");
		char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			return err("mmap");
		memcpy(m, data, len);
		free(data);
		if (msync(m, len, MS_SYNC) < 0)
			return err("msync");
		if (munmap(m, len) < 0)
			return err("munmap");
		return close(fd) < 0 ? err("close") : 0;
	}
	int fd = open(argv[2], O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return err("open");
	if (st.st_size == 0)
		return 0;
	char *m = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return err("mmap");
	fwrite(m, 1, st.st_size, stdout);
	return 0;
}
