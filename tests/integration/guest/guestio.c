/* silt-guestio: the disk workload of the test guest (guest.sh), and the
 * host-side checker of what it left on the image.
 *
 *   silt-guestio write DEV MIB      write generation 1 over the layout,
 *                                   fdatasync, read it all back, verify
 *   silt-guestio loop DEV MIB MAXG  generations 1, 2, ... MAXG over the same
 *                                   layout, fdatasync after each; stops at
 *                                   the first I/O error (the daemon was
 *                                   killed under qemu)
 *   silt-guestio check IMG MIB LO HI  every block of the layout holds a
 *                                   valid pattern of a generation in
 *                                   [LO, HI], every other block is zero
 *   silt-guestio corrupt IMG MIB    flip one byte inside the layout (to
 *                                   prove that check fails)
 *
 * It is one static binary so that the same code writes in the guest (from
 * the initramfs) and checks on the host: the layout and the patterns cannot
 * drift apart.  The guest reports on stdout (its serial console) lines that
 * start with "SILTG ", one write() each; "SILTG flushed G" is printed only
 * after the fdatasync of generation G returned, so the host knows which
 * generation must survive a daemon crash.
 *
 * Layout: extents of 4K, 12K, 64K, 128K, 512K and 1M, separated by gaps of
 * 0, 4K, 60K, 256K and 1M+8K, so that writes straddle chunk boundaries
 * (read-modify-write edges in siltfs) and holes stay in between.  Each
 * 4 KiB block of an extent holds a magic, its block number, the generation
 * and 509 words derived from both: a block written to the wrong place, a
 * stale generation, a torn or zeroed block all show.  Four threads write
 * the extents (i mod 4), all with O_DIRECT, so qemu sees a queue depth up
 * to 4. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLK 4096u
#define WORDS (BLK / 8)
#define MAGIC 0x73696c7467756573ull	/* "siltgues" */
#define THREADS 4
#define MAX_EXTENT (1u << 20)

struct extent {
	uint64_t off, len;
};

struct layout {
	struct extent *e;
	size_t n;
	uint64_t size;
};

/* One writer thread's job: its share of the extents for one generation. */
struct job {
	const struct layout *l;
	int fd, idx;
	uint64_t gen;
	int err;	/* errno of the first failure, 0 if none */
	uint64_t err_off;
};

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void fill_block(uint64_t *w, uint64_t blk, uint64_t gen)
{
	w[0] = MAGIC;
	w[1] = blk;
	w[2] = gen;
	for (unsigned i = 3; i < WORDS; i++)
		w[i] = mix(blk * 0x100000001b3ull ^ gen << 40 ^ i);
}

/* 0 if w is block blk of some generation in [lo, hi] (its generation in
 * *gen), 1 if all zero, 2 if it is block blk of another generation, -1
 * otherwise. */
static int block_state(const uint64_t *w, uint64_t blk, uint64_t lo, uint64_t hi, uint64_t *gen)
{
	uint64_t want[WORDS];
	unsigned i;

	*gen = w[2];
	if (w[0] == MAGIC && w[1] == blk) {
		fill_block(want, blk, w[2]);
		if (memcmp(w, want, BLK))
			return -1;
		return w[2] >= lo && w[2] <= hi ? 0 : 2;
	}
	for (i = 0; i < WORDS && !w[i]; i++)
		;
	return i == WORDS ? 1 : -1;
}

static int make_layout(struct layout *l, uint64_t mib)
{
	static const uint64_t lens[] = { 4096, 12288, 65536, 131072, 524288, 1048576 };
	static const uint64_t gaps[] = { 0, 4096, 61440, 262144, 1048576 + 8192 };
	uint64_t off = 0;
	size_t cap = 0;

	l->size = mib << 20;
	l->n = 0;
	l->e = NULL;
	for (size_t i = 0;; i++) {
		uint64_t len = lens[i % 6];
		if (off + len > l->size)
			break;
		if (l->n == cap) {
			cap = cap ? 2 * cap : 64;
			l->e = realloc(l->e, cap * sizeof(*l->e));
			if (!l->e)
				return -ENOMEM;
		}
		l->e[l->n++] = (struct extent){ off, len };
		off += len + gaps[i % 5];
	}
	return 0;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(1, line, n) < 0)
		return;
}

static void *write_share(void *arg)
{
	struct job *j = arg;
	uint64_t *buf;

	if (posix_memalign((void **)&buf, BLK, MAX_EXTENT)) {
		j->err = ENOMEM;
		return NULL;
	}
	for (size_t i = j->idx; i < j->l->n && !j->err; i += THREADS) {
		const struct extent *e = &j->l->e[i];
		for (uint64_t b = 0; b < e->len / BLK; b++)
			fill_block(buf + b * WORDS, e->off / BLK + b, j->gen);
		ssize_t n = pwrite(j->fd, buf, e->len, e->off);
		if (n != (ssize_t)e->len) {
			j->err = n < 0 ? errno : EIO;
			j->err_off = e->off;
		}
	}
	free(buf);
	return NULL;
}

/* Write generation gen over the layout with THREADS threads; 0 or -errno
 * (reported). */
static int write_gen(const struct layout *l, int fd, uint64_t gen)
{
	struct job jobs[THREADS];
	pthread_t th[THREADS];
	int rc = 0;

	for (int t = 0; t < THREADS; t++) {
		jobs[t] = (struct job){ .l = l, .fd = fd, .idx = t, .gen = gen };
		if (pthread_create(&th[t], NULL, write_share, &jobs[t]))
			return -EAGAIN;
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		if (jobs[t].err && !rc) {
			say("SILTG ioerror gen=%" PRIu64 " write offset=%" PRIu64 ": %s", gen,
			    jobs[t].err_off, strerror(jobs[t].err));
			rc = -jobs[t].err;
		}
	}
	return rc;
}

static int flush_gen(int fd, uint64_t gen)
{
	if (fdatasync(fd)) {
		say("SILTG ioerror gen=%" PRIu64 " fdatasync: %s", gen, strerror(errno));
		return -errno;
	}
	say("SILTG flushed %" PRIu64, gen);
	return 0;
}

/* Read the layout (O_DIRECT where the file allows it) and count blocks that
 * are not a pattern of [lo, hi]; with gaps, also blocks between extents
 * that are not zero.  Prints the first few bad blocks. */
static long verify(const struct layout *l, int fd, uint64_t lo, uint64_t hi, int gaps, const char *tag)
{
	uint64_t *buf, gen, next = 0, hist[2] = { 0, 0 };
	long bad = 0;
	int st;

	if (posix_memalign((void **)&buf, BLK, MAX_EXTENT))
		return -1;
	for (size_t i = 0; i <= l->n; i++) {
		uint64_t off = i < l->n ? l->e[i].off : l->size;
		uint64_t len = i < l->n ? l->e[i].len : 0;
		/* the gap before this extent must read as zeros */
		while (gaps && next < off) {
			uint64_t n = off - next < MAX_EXTENT ? off - next : MAX_EXTENT;
			if (pread(fd, buf, n, next) != (ssize_t)n) {
				say("SILTG %s bad offset=%" PRIu64 ": read: %s", tag, next, strerror(errno));
				bad++;
			} else {
				for (uint64_t b = 0; b < n / BLK; b++)
					if (block_state(buf + b * WORDS, ~0ull, 1, 0, &gen) != 1 && bad++ < 5)
						say("SILTG %s bad offset=%" PRIu64 ": not zero between extents",
						    tag, next + b * BLK);
			}
			next += n;
		}
		if (!len)
			break;
		if (pread(fd, buf, len, off) != (ssize_t)len) {
			say("SILTG %s bad offset=%" PRIu64 ": read: %s", tag, off, strerror(errno));
			bad++;
			next = off + len;
			continue;
		}
		for (uint64_t b = 0; b < len / BLK; b++) {
			st = block_state(buf + b * WORDS, off / BLK + b, lo, hi, &gen);
			if (st == 0) {
				hist[gen == hi]++;
				continue;
			}
			if (bad++ < 5)
				say("SILTG %s bad offset=%" PRIu64 ": %s (generation field %" PRIu64
				    ", wanted %" PRIu64 "..%" PRIu64 ")", tag, off + b * BLK,
				    st == 1 ? "zeros" : st == 2 ? "a generation out of range" : "wrong content",
				    gen, lo, hi);
		}
		next = off + len;
	}
	free(buf);
	say("SILTG %s %s: %zu extents, %ld bad blocks (generation %" PRIu64 ": %" PRIu64
	    " blocks, older: %" PRIu64 ")", tag, bad ? "FAILED" : "ok", l->n, bad, hi, hist[1], hist[0]);
	return bad;
}

static int open_dev(const char *path, int flags)
{
	int fd = open(path, flags | O_DIRECT);

	if (fd < 0 && errno == EINVAL)
		fd = open(path, flags);
	if (fd < 0)
		say("SILTG cannot open %s: %s", path, strerror(errno));
	return fd;
}

/* Flip one byte in the middle of the fourth extent (host side, no O_DIRECT). */
static int corrupt(const struct layout *l, const char *path)
{
	uint64_t off = l->e[l->n > 3 ? 3 : 0].off + 1000;
	unsigned char c;
	int fd = open(path, O_RDWR);

	if (fd < 0 || pread(fd, &c, 1, off) != 1)
		return 1;
	c ^= 0x40;
	if (pwrite(fd, &c, 1, off) != 1 || fsync(fd))
		return 1;
	say("SILTG corrupted offset=%" PRIu64, off);
	return close(fd) ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct layout l;
	uint64_t gen, maxg;
	int fd;

	if (argc < 4 || make_layout(&l, strtoull(argv[3], NULL, 0)) || !l.n) {
		fprintf(stderr, "usage: %s write DEV MIB | loop DEV MIB MAXGEN | check IMG MIB LO HI | corrupt IMG MIB\n",
			argv[0]);
		return 2;
	}
	if (!strcmp(argv[1], "corrupt"))
		return corrupt(&l, argv[2]);
	if (!strcmp(argv[1], "check")) {
		if (argc < 6 || (fd = open_dev(argv[2], O_RDONLY)) < 0)
			return 2;
		return verify(&l, fd, strtoull(argv[4], NULL, 0), strtoull(argv[5], NULL, 0), 1, "check") ? 1 : 0;
	}
	if ((fd = open_dev(argv[2], O_RDWR)) < 0)
		return 1;
	say("SILTG start %s: %zu extents over %s MiB", argv[1], l.n, argv[3]);
	if (!strcmp(argv[1], "write")) {
		if (write_gen(&l, fd, 1) || flush_gen(fd, 1))
			return 1;
		return verify(&l, fd, 1, 1, 0, "verify") ? 1 : 0;
	}
	if (strcmp(argv[1], "loop") || argc < 5)
		return 2;
	maxg = strtoull(argv[4], NULL, 0);
	for (gen = 1; gen <= maxg; gen++)
		if (write_gen(&l, fd, gen) || flush_gen(fd, gen))
			return 0;	/* the I/O error is what the host waits for */
	say("SILTG loop done after %" PRIu64 " generations", maxg);
	return 0;
}
