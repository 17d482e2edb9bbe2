/* silt-stripes FILE WRITERS RECSIZE NRECS [direct|verify]
 * Concurrent writers on one file: FILE is cut into NRECS records of RECSIZE
 * bytes; record k belongs to writer k % WRITERS.  WRITERS processes (fork)
 * write their records with pwrite, all at the same time, in a scattered
 * order, opened with O_DIRECT if "direct" is given (so nothing merges
 * the writes in the page cache).  Records need not be block or chunk
 * aligned, so neighbouring writers share blocks and chunks: a lost update
 * in the file system's read-modify-write shows up as a bad record.  Then the
 * file is read back and checked; prints "ok" or the first bad record and
 * exits 1.  "verify" only does the check (of a file written before). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void fill(unsigned char *b, size_t n, unsigned long k)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(k * 131 + i * 7 + (k >> 8));
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s FILE WRITERS RECSIZE NRECS [direct|verify]\n", argv[0]);
		return 2;
	}
	const char *path = argv[1];
	int nw = atoi(argv[2]);
	size_t rs = strtoul(argv[3], NULL, 0);
	unsigned long nr = strtoul(argv[4], NULL, 0);
	int direct = argc > 5 && !strcmp(argv[5], "direct");
	int verify = argc > 5 && !strcmp(argv[5], "verify");
	unsigned char *buf, *want;

	if (posix_memalign((void **)&buf, 4096, rs + 4096) || !(want = malloc(rs)))
		return 2;
	int fd = verify ? -1 : open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (!verify && (fd < 0 || close(fd) < 0)) {
		perror(path);
		return 2;
	}
	for (int w = 0; w < nw && !verify; w++) {
		pid_t p = fork();
		if (p < 0)
			return 2;
		if (p)
			continue;
		fd = open(path, O_WRONLY | (direct ? O_DIRECT : 0));
		if (fd < 0) {
			perror("open");
			_exit(1);
		}
		/* visit this writer's records in a scattered order */
		unsigned long mine = (nr + nw - 1 - w) / nw, step = 7919 % (mine ? mine : 1);
		if (!step)
			step = 1;
		for (unsigned long i = 0, j = w % (mine ? mine : 1); i < mine; i++, j = (j + step) % mine) {
			unsigned long k = j * nw + w;
			fill(buf, rs, k);
			if (pwrite(fd, buf, rs, (off_t)(k * rs)) != (ssize_t)rs) {
				fprintf(stderr, "writer %d: pwrite record %lu: %s\n", w, k, strerror(errno));
				_exit(1);
			}
		}
		_exit(close(fd) < 0);
	}
	int bad = 0, st, rc = 0;
	while (wait(&st) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			bad = 1;
	if (bad) {
		printf("a writer failed\n");
		rc = 1;
	} else if ((fd = open(path, O_RDONLY)) < 0) {
		perror(path);
		rc = 2;
	}
	for (unsigned long k = 0; !rc && k < nr; k++) {
		fill(want, rs, k);
		if (pread(fd, buf, rs, (off_t)(k * rs)) != (ssize_t)rs || memcmp(buf, want, rs)) {
			printf("record %lu (offset %llu, writer %lu) is wrong\n", k,
			       (unsigned long long)k * rs, k % nw);
			rc = 1;
		}
	}
	if (!rc)
		printf("ok\n");
	if (fd >= 0)
		close(fd);
	free(buf);
	free(want);
	return rc;
}
