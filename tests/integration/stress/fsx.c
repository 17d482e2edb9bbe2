/*
 * fsx: proves, by long randomized operation sequences with fixed seeds, that
 * every byte and every size siltfs returns matches an in-memory model of the
 * files, across chunk boundaries, holes, truncates, fallocate, punch hole,
 * renames, O_DIRECT, mmap and remounts.
 *
 *   fsx --dir DIR --seed N --ops N [--files N] [--max-size BYTES]
 *       [--chunk BYTES] [--remount-cmd CMD] [--remount-every K]
 *       [--without direct,mmap,fallocate,punch,exchange]
 *
 * DIR is an empty directory on the mount. Every op that changes data is
 * followed by a read-back of the range it touched; every remount (CMD is run
 * by the shell with all files closed, then everything is reopened) and the
 * end compare every file fully, sizes included. On the first mismatch or
 * failed system call it prints the seed, the op number, the tail of the op
 * log, the first differing offset, expected and actual bytes, and exits 1.
 * The same seed and options replay the same sequence. --without leaves
 * kinds of operations out, to narrow a failure down; CI never uses it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 8
#define ALIGN 4096u
#define LOG_TAIL 32

struct file {
	int fd, dfd;        /* buffered and O_DIRECT descriptors */
	uint8_t *data;      /* model; bytes at and beyond size are always 0 */
	uint64_t size;
};

enum { NO_DIRECT = 1, NO_MMAP = 2, NO_FALLOCATE = 4, NO_PUNCH = 8, NO_EXCHANGE = 16 };

static struct {
	const char *dir, *remount_cmd;
	unsigned without;           /* NO_* bits: ops left out (diagnosis only) */
	const char *without_list;
	uint64_t seed, ops, max_size, chunk, remount_every;
	int nfiles;
} opt = { .nfiles = 4, .max_size = 3u << 20, .chunk = 65536, .remount_every = 0 };

static struct file files[MAX_FILES];
static int dirfd_g = -1;
static uint8_t *buf, *wbuf;     /* aligned scratch buffers */
static uint64_t rng, opno;
static char oplog[LOG_TAIL][160];

/* ---- randomness ------------------------------------------------------------ */

static uint64_t rnd(void)
{
	uint64_t x = (rng += 0x9e3779b97f4a7c15ull);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* ---- reporting ------------------------------------------------------------- */

static void logop(const char *fmt, ...)
{
	va_list ap;
	char *line = oplog[opno % LOG_TAIL];
	int n = snprintf(line, sizeof(oplog[0]), "%8" PRIu64 " ", opno);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(oplog[0]) - (size_t)n, fmt, ap);
	va_end(ap);
}

static void print_tail(void)
{
	fprintf(stderr, "last operations:\n");
	uint64_t first = opno >= LOG_TAIL ? opno - (LOG_TAIL - 1) : 1;
	for (uint64_t i = first; i <= opno; i++)
		fprintf(stderr, "  %s\n", oplog[i % LOG_TAIL]);
}

static _Noreturn void failure(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "fsx: FAILED seed %" PRIu64 " op %" PRIu64 ": ", opt.seed, opno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	print_tail();
	fprintf(stderr, "replay: fsx --seed %" PRIu64 " --ops %" PRIu64 " --files %d --max-size %"
		PRIu64 " --chunk %" PRIu64 " --remount-every %" PRIu64 "\n",
		opt.seed, opt.ops, opt.nfiles, opt.max_size, opt.chunk, opt.remount_every);
	exit(1);
}

#define CHECK_SYS(expr, what, ...) \
	do { if ((expr) < 0) failure(what ": %s", ##__VA_ARGS__, strerror(errno)); } while (0)

static void hexdump(const char *label, const uint8_t *p, size_t n)
{
	fprintf(stderr, "  %s:", label);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, " %02x", p[i]);
	fprintf(stderr, "\n");
}

/* Compare got[0..len) with the model of file f at off. */
static void compare(int f, uint64_t off, const uint8_t *got, size_t len, const char *how)
{
	const uint8_t *exp = files[f].data + off;
	if (memcmp(got, exp, len) == 0)
		return;
	size_t i = 0;
	while (got[i] == exp[i])
		i++;
	size_t n = len - i < 16 ? len - i : 16;
	fprintf(stderr, "fsx: file f%d (size %" PRIu64 "): %s differs at offset %" PRIu64
		" (0x%" PRIx64 ", chunk %" PRIu64 " + %" PRIu64 ")\n", f, files[f].size, how,
		off + i, off + i, (off + i) / opt.chunk, (off + i) % opt.chunk);
	hexdump("expected", exp + i, n);
	hexdump("got     ", got + i, n);
	failure("data mismatch");
}

/* ---- plumbing --------------------------------------------------------------- */

static void name_of(int f, char *name, size_t cap)
{
	snprintf(name, cap, "f%d", f);
}

static void open_file(int f, int extra)
{
	char name[16];
	name_of(f, name, sizeof(name));
	files[f].fd = openat(dirfd_g, name, O_RDWR | extra, 0644);
	CHECK_SYS(files[f].fd, "open %s", name);
	files[f].dfd = openat(dirfd_g, name, O_RDWR | O_DIRECT);
	CHECK_SYS(files[f].dfd, "open %s O_DIRECT", name);
}

static void close_file(int f)
{
	CHECK_SYS(close(files[f].fd), "close f%d", f);
	CHECK_SYS(close(files[f].dfd), "close f%d O_DIRECT", f);
}

static void open_dir(void)
{
	dirfd_g = open(opt.dir, O_RDONLY | O_DIRECTORY);
	CHECK_SYS(dirfd_g, "open %s", opt.dir);
}

static size_t full_pread(int fd, uint8_t *p, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, p + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		CHECK_SYS(n, "pread %zu at %" PRIu64, len, off);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static void full_pwrite(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, p + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		CHECK_SYS(n, "pwrite %zu at %" PRIu64, len, off);
		if (n == 0)
			failure("pwrite returned 0");
		done += (size_t)n;
	}
}

/* Read [off, off+len) back through the buffered fd and check it and the size. */
static void verify_range(int f, uint64_t off, uint64_t len)
{
	struct file *fl = &files[f];
	struct stat st;
	CHECK_SYS(fstat(fl->fd, &st), "fstat f%d", f);
	if ((uint64_t)st.st_size != fl->size)
		failure("f%d: size is %jd, expected %" PRIu64, f, (intmax_t)st.st_size, fl->size);
	if (off >= fl->size)
		return;
	if (off + len > fl->size)
		len = fl->size - off;
	size_t got = full_pread(fl->fd, buf, len, off);
	if (got != len)
		failure("f%d: short read %zu of %" PRIu64 " at %" PRIu64, f, got, len, off);
	compare(f, off, buf, len, "read-back");
}

static void verify_all(const char *when)
{
	for (int f = 0; f < opt.nfiles; f++) {
		struct stat st;
		CHECK_SYS(fstat(files[f].fd, &st), "fstat f%d", f);
		if ((uint64_t)st.st_size != files[f].size)
			failure("f%d: size %jd after %s, expected %" PRIu64, f,
				(intmax_t)st.st_size, when, files[f].size);
		size_t got = full_pread(files[f].fd, buf, opt.max_size + 1, 0);
		if (got != files[f].size)
			failure("f%d: read %zu bytes after %s, expected %" PRIu64, f, got, when, files[f].size);
		compare(f, 0, buf, got, when);
	}
}

/* ---- choosing offsets and lengths ------------------------------------------- */

static uint64_t pick_off(int f)
{
	uint64_t size = files[f].size;
	switch (below(4)) {
	case 0: {                                   /* just before a chunk edge */
		uint64_t edge = opt.chunk * (1 + below(opt.max_size / opt.chunk));
		return edge - 1 - below(opt.chunk < 8192 ? opt.chunk : 8192);
	}
	case 1:
		return below(size + 1);
	case 2:
		return size + below(opt.chunk * 2);     /* at or past EOF */
	default:
		return below(opt.max_size);
	}
}

static uint64_t pick_len(void)
{
	switch (below(3)) {
	case 0:
		return 1 + below(512);
	case 1:
		return 1 + below(opt.chunk * 2);
	default:
		return 1 + below(256 << 10);
	}
}

/* Clamp [*off, *off+*len) under max_size; false when nothing is left. */
static bool clamp(uint64_t *off, uint64_t *len)
{
	if (*off >= opt.max_size)
		*off = below(opt.max_size);
	if (*off + *len > opt.max_size)
		*len = opt.max_size - *off;
	return *len > 0;
}

static void align_range(uint64_t *off, uint64_t *len)
{
	*off &= ~(uint64_t)(ALIGN - 1);
	*len = (*len + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
	while (*off + *len > opt.max_size && *len > ALIGN)
		*len -= ALIGN;
}

static void model_write(int f, uint64_t off, const uint8_t *p, uint64_t len)
{
	memcpy(files[f].data + off, p, len);
	if (off + len > files[f].size)
		files[f].size = off + len;
}

static void fill_random(uint8_t *p, uint64_t len)
{
	uint64_t v = 0;
	for (uint64_t i = 0; i < len; i++) {
		if ((i & 7) == 0)
			v = rnd();
		p[i] = (uint8_t)(v >> ((i & 7) * 8));
	}
}

/* ---- operations ----------------------------------------------------------------- */

static void op_write(int f, bool direct)
{
	uint64_t off = pick_off(f), len = pick_len();
	if (!clamp(&off, &len))
		return;
	if (direct)
		align_range(&off, &len);
	if (off + len > opt.max_size)
		return;
	fill_random(wbuf, len);
	logop("write%s f%d off %" PRIu64 " len %" PRIu64 " (size %" PRIu64 ")",
	      direct ? "/direct" : "", f, off, len, files[f].size);
	full_pwrite(direct ? files[f].dfd : files[f].fd, wbuf, len, off);
	model_write(f, off, wbuf, len);
	verify_range(f, off, len);
}

static void op_read(int f, bool direct)
{
	uint64_t off = pick_off(f), len = pick_len();
	if (!clamp(&off, &len))
		return;
	if (direct)
		align_range(&off, &len);
	logop("read%s f%d off %" PRIu64 " len %" PRIu64 " (size %" PRIu64 ")",
	      direct ? "/direct" : "", f, off, len, files[f].size);
	size_t got = full_pread(direct ? files[f].dfd : files[f].fd, buf, len, off);
	uint64_t want = off >= files[f].size ? 0 :
			(off + len > files[f].size ? files[f].size - off : len);
	if (got != want)
		failure("f%d: read returned %zu bytes, expected %" PRIu64, f, got, want);
	compare(f, off, buf, got, direct ? "O_DIRECT read" : "read");
}

static void op_mmap_read(int f)
{
	uint64_t size = files[f].size;
	if (size == 0)
		return;
	uint64_t off = below(size), len = 1 + below(size - off);
	uint64_t moff = off & ~(uint64_t)(ALIGN - 1);
	logop("mmap-read f%d off %" PRIu64 " len %" PRIu64 " (size %" PRIu64 ")", f, off, len, size);
	void *map = mmap(NULL, off + len - moff, PROT_READ, MAP_SHARED, files[f].fd, (off_t)moff);
	if (map == MAP_FAILED)
		failure("mmap f%d: %s", f, strerror(errno));
	compare(f, off, (uint8_t *)map + (off - moff), len, "mmap read");
	CHECK_SYS(munmap(map, off + len - moff), "munmap");
}

static void op_truncate(int f)
{
	/* mostly small moves around the current size, sometimes far, rarely 0 */
	uint64_t size = below(8) == 0 ? 0 : below(opt.max_size + 1);
	if (below(3))
		size = files[f].size + below(2 * opt.chunk) - opt.chunk / 2;
	if (size > opt.max_size)
		size = below(opt.max_size + 1);
	uint64_t old = files[f].size;
	logop("truncate f%d %" PRIu64 " -> %" PRIu64, f, old, size);
	CHECK_SYS(ftruncate(files[f].fd, (off_t)size), "ftruncate f%d", f);
	if (size < old)
		memset(files[f].data + size, 0, old - size);
	files[f].size = size;
	uint64_t lo = (size < old ? size : old);
	lo = lo > opt.chunk ? lo - opt.chunk : 0;
	verify_range(f, lo, 2 * opt.chunk + (size > old ? size - old : 0));
}

static void op_fallocate(int f, int mode)
{
	uint64_t off = pick_off(f);
	/* punches stay short, or they would keep the files mostly holes */
	uint64_t len = mode & FALLOC_FL_PUNCH_HOLE ? 1 + below(opt.chunk * 3) : pick_len();
	if (!clamp(&off, &len))
		return;
	const char *name = mode == 0 ? "fallocate" :
			   mode == FALLOC_FL_KEEP_SIZE ? "fallocate/keep-size" : "punch-hole";
	logop("%s f%d off %" PRIu64 " len %" PRIu64 " (size %" PRIu64 ")", name, f, off, len, files[f].size);
	CHECK_SYS(fallocate(files[f].fd, mode, (off_t)off, (off_t)len), "%s f%d", name, f);
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		if (off < files[f].size) {
			uint64_t end = off + len < files[f].size ? off + len : files[f].size;
			memset(files[f].data + off, 0, end - off);
		}
	} else if (mode == 0 && off + len > files[f].size) {
		files[f].size = off + len;
	}
	uint64_t lo = off > 4096 ? off - 4096 : 0;
	verify_range(f, lo, len + 8192);
}

static void op_exchange(int a, int b)
{
	char na[16], nb[16];
	name_of(a, na, sizeof(na));
	name_of(b, nb, sizeof(nb));
	logop("rename-exchange f%d <-> f%d", a, b);
	CHECK_SYS(renameat2(dirfd_g, na, dirfd_g, nb, RENAME_EXCHANGE), "renameat2 exchange %s %s", na, nb);
	struct file t = files[a];
	files[a] = files[b];
	files[b] = t;
	verify_range(a, below(files[a].size + 1), 65536);
	verify_range(b, below(files[b].size + 1), 65536);
}

/* rename a over b: b's old inode goes away, a is recreated empty. */
static void op_rename_over(int a, int b)
{
	char na[16], nb[16];
	name_of(a, na, sizeof(na));
	name_of(b, nb, sizeof(nb));
	logop("rename f%d over f%d", a, b);
	CHECK_SYS(renameat(dirfd_g, na, dirfd_g, nb), "rename %s %s", na, nb);
	close_file(b);
	uint8_t *old = files[b].data;
	files[b] = files[a];
	memset(old, 0, opt.max_size);
	files[a].data = old;
	files[a].size = 0;
	open_file(a, O_CREAT | O_EXCL);
	verify_range(b, below(files[b].size + 1), 65536);
	verify_range(a, 0, 1);
}

static void op_sync(int f)
{
	bool data_only = below(2);
	logop("%s f%d", data_only ? "fdatasync" : "fsync", f);
	CHECK_SYS(data_only ? fdatasync(files[f].fd) : fsync(files[f].fd), "fsync f%d", f);
}

static void remount(void)
{
	logop("remount");
	for (int f = 0; f < opt.nfiles; f++)
		close_file(f);
	CHECK_SYS(close(dirfd_g), "close dir");
	int rc = system(opt.remount_cmd);
	if (rc != 0)
		failure("remount command failed (status %d): %s", rc, opt.remount_cmd);
	open_dir();
	for (int f = 0; f < opt.nfiles; f++)
		open_file(f, 0);
	verify_all("remount");
}

static void one_op(void)
{
	int f = (int)below((uint64_t)opt.nfiles);
	int g = (int)((f + 1 + below((uint64_t)opt.nfiles - 1)) % opt.nfiles);
	unsigned r = (unsigned)below(100), w = opt.without;
	logop("(skipped)");
	if (r < 26)
		op_write(f, false);
	else if (r < 34)
		w & NO_DIRECT ? op_write(f, false) : op_write(f, true);
	else if (r < 53)
		op_read(f, false);
	else if (r < 59)
		w & NO_DIRECT ? op_read(f, false) : op_read(f, true);
	else if (r < 64)
		w & NO_MMAP ? op_read(f, false) : op_mmap_read(f);
	else if (r < 69)
		op_truncate(f);
	else if (r < 75)
		w & NO_FALLOCATE ? op_truncate(f) : op_fallocate(f, 0);
	else if (r < 80)
		w & NO_FALLOCATE ? op_truncate(f) : op_fallocate(f, FALLOC_FL_KEEP_SIZE);
	else if (r < 88)
		w & NO_PUNCH ? op_write(f, false) : op_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
	else if (r < 92)
		w & NO_EXCHANGE ? op_rename_over(f, g) : op_exchange(f, g);
	else if (r < 93)
		op_rename_over(f, g);
	else
		op_sync(f);
}

/* ---- setup ------------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr, "usage: fsx --dir DIR --seed N --ops N [--files N] [--max-size BYTES]\n"
			"           [--chunk BYTES] [--remount-cmd CMD] [--remount-every K]\n"
			"           [--without direct,mmap,fallocate,punch,exchange]\n");
	exit(2);
}

static unsigned parse_without(const char *list)
{
	static const char *names[] = {"direct", "mmap", "fallocate", "punch", "exchange"};
	unsigned bits = 0;
	char *copy = strdup(list), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned i;
		for (i = 0; i < 5 && strcmp(t, names[i]) != 0; i++)
			;
		if (i == 5)
			usage();
		bits |= 1u << i;
	}
	free(copy);
	return bits;
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"dir", required_argument, 0, 'd'}, {"seed", required_argument, 0, 's'},
		{"ops", required_argument, 0, 'n'}, {"files", required_argument, 0, 'f'},
		{"max-size", required_argument, 0, 'm'}, {"chunk", required_argument, 0, 'c'},
		{"remount-cmd", required_argument, 0, 'r'}, {"remount-every", required_argument, 0, 'k'},
		{"without", required_argument, 0, 'w'},
		{0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': opt.dir = optarg; break;
		case 's': opt.seed = strtoull(optarg, NULL, 0); break;
		case 'n': opt.ops = strtoull(optarg, NULL, 0); break;
		case 'f': opt.nfiles = atoi(optarg); break;
		case 'm': opt.max_size = strtoull(optarg, NULL, 0); break;
		case 'c': opt.chunk = strtoull(optarg, NULL, 0); break;
		case 'r': opt.remount_cmd = optarg; break;
		case 'k': opt.remount_every = strtoull(optarg, NULL, 0); break;
		case 'w': opt.without = parse_without(optarg); opt.without_list = optarg; break;
		default: usage();
		}
	}
	if (!opt.dir || opt.ops == 0 || opt.nfiles < 2 || opt.nfiles > MAX_FILES ||
	    opt.chunk < 512 || opt.max_size < 2 * ALIGN || (opt.remount_every && !opt.remount_cmd))
		usage();
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	rng = opt.seed;
	size_t cap = opt.max_size + (512u << 10);
	if (posix_memalign((void **)&buf, ALIGN, cap) || posix_memalign((void **)&wbuf, ALIGN, cap)) {
		fprintf(stderr, "fsx: out of memory\n");
		return 2;
	}
	open_dir();
	for (int f = 0; f < opt.nfiles; f++) {
		files[f].data = calloc(1, cap);
		if (!files[f].data) {
			fprintf(stderr, "fsx: out of memory\n");
			return 2;
		}
		open_file(f, O_CREAT | O_TRUNC);
	}
	for (opno = 1; opno <= opt.ops; opno++) {
		if (opt.remount_every && opno % opt.remount_every == 0)
			remount();
		else
			one_op();
	}
	opno = opt.ops;
	logop("final check");
	verify_all("final check");
	printf("fsx: seed %" PRIu64 ": %" PRIu64 " ops ok\n", opt.seed, opt.ops);
	return 0;
}
