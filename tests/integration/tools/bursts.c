/* silt-bursts FILE CYCLES PERIOD_MS ON_MS RATE COUNTER
 * A bursty writer on an absolute clock: each cycle writes 4 KiB blocks of
 * fresh random data at RATE a second (O_DIRECT, random offsets within
 * FILE's size) for ON_MS, then stays idle to the end of PERIOD_MS. It reads
 * the number in the file COUNTER (e.g. a network device's tx_bytes) as
 * each burst starts, right after its last write, and as the cycle ends,
 * and prints "CYCLE DURING GAP" per cycle: how much the counter grew while
 * it wrote and after. Exits 1 on any error. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long long counter(const char *path)
{
	char buf[64] = { 0 };
	int fd = open(path, O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0) {
		fprintf(stderr, "silt-bursts: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	close(fd);
	return atoll(buf);
}

static void at(const struct timespec *base, long long ms)
{
	struct timespec t = { base->tv_sec + ms / 1000, base->tv_nsec + (ms % 1000) * 1000000 };
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
		;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: silt-bursts FILE CYCLES PERIOD_MS ON_MS RATE COUNTER\n");
		return 1;
	}
	int cycles = atoi(argv[2]);
	long long period = atoll(argv[3]), on = atoll(argv[4]), rate = atoll(argv[5]);
	int fd = open(argv[1], O_RDWR | O_DIRECT);
	struct stat st;
	void *buf;
	if (fd < 0 || fstat(fd, &st) || st.st_size < 4096 || posix_memalign(&buf, 4096, 4096)) {
		fprintf(stderr, "silt-bursts: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	struct timespec base;
	clock_gettime(CLOCK_MONOTONIC, &base);
	long long blocks = st.st_size / 4096, n = on * rate / 1000;
	for (int c = 0; c < cycles; c++) {
		long long t0 = counter(argv[6]);
		for (long long i = 0; i < n; i++) {
			at(&base, c * period + i * 1000 / rate);
			unsigned long long r;
			if (getrandom(buf, 4096, 0) != 4096 || getrandom(&r, sizeof(r), 0) != sizeof(r) ||
			    pwrite(fd, buf, 4096, (off_t)(r % blocks) * 4096) != 4096) {
				fprintf(stderr, "silt-bursts: write: %s\n", strerror(errno));
				return 1;
			}
		}
		long long t1 = counter(argv[6]);
		at(&base, (c + 1) * period);
		long long t2 = counter(argv[6]);
		printf("%d %lld %lld\n", c, t1 - t0, t2 - t1);
		fflush(stdout);
	}
	free(buf);
	close(fd);
	return 0;
}
