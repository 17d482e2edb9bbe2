/*
 * crashwriter: proves that data acknowledged by fsync/fdatasync survives a
 * kill -9 of the siltfs daemon and a remount.
 *
 *   crashwriter write  DIR SEED CHUNK_SIZE   > LOG   (runs until killed)
 *   crashwriter verify DIR LOG [DIGEST_FILE]
 *
 * write mode works in DIR (a fresh directory on the mount) and prints one
 * line per step to stdout, flushed at once, so that the log on the local
 * disk is complete up to the moment the writer dies:
 *
 *   C f                    file f is created and durable (file and dir synced)
 *   W f off len seed       intent: pattern(seed) is being written at [off, off+len)
 *   T f size               intent: file f is being truncated to size
 *   A f                    acknowledged: every intent on f so far is durable
 *   N name seed len        intent: name is being created by rename (tmp synced)
 *   NA name                acknowledged: name is durable (dir synced)
 *   P seed len             intent: "current" is being replaced by rename
 *   PA                     acknowledged: that version of "current" is durable
 *
 * The workload mixes extending appends, overwrites in place, writes that
 * straddle chunk boundaries, O_DIRECT writes and buffered writes, fsync and
 * fdatasync (on either descriptor of the file), truncates up and down,
 * create-by-rename and atomic replace-by-rename with fsync of the directory.
 *
 * verify mode replays the log. For every byte of every file the content must
 * be the acknowledged one, unless an unacknowledged intent touched it, in
 * which case any of the intended values is accepted (the crash may have torn
 * it). Sizes must lie between the smallest and largest size the file had
 * since its last acknowledgement. A renamed-in file, once acknowledged, must
 * exist and be whole; "current" must be exactly one whole version (the last
 * acknowledged one or a later intended one), never a mixture. With
 * DIGEST_FILE the verifier also records a digest of every file on first run
 * and on later runs demands the same digest: nothing may change after the
 * writer is dead, whatever crashes happen later.
 *
 * verify exits 0 when everything holds, 1 on any failure, and 4 when the
 * only failures (tagged [rename]) concern what renames made: an
 * acknowledged renamed-in file missing, "current" missing, an older
 * acknowledged version or unreadable (EIO; "current" is the only name a
 * rename replaces, so the only inode a rename frees). A power cut shows
 * them when the fsync of the directory does not make a rename durable, or
 * a replaced inode's data is freed before the rename is durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NFILES 4
#define MAX_FILE (3u << 20)     /* files stay below 3 MiB */
#define MAX_WRITE (192u << 10)
#define DIO_ALIGN 4096u
#define MAX_PENDING 4096

/* ---- deterministic randomness and the data pattern ---------------------- */

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state = splitmix(rng_state);
	return rng_state;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* The byte at absolute file offset pos of the pattern with this seed.
 * Never 0, so that a hole (zeros) is never mistaken for written data. */
static uint8_t pattern_byte(uint64_t seed, uint64_t pos)
{
	uint8_t b = (uint8_t)(splitmix(seed ^ ((pos >> 3) * 0x9e3779b97f4a7c15ull)) >> ((pos & 7) * 8));
	return b ? b : 0x5a;
}

static void fill_pattern(uint8_t *buf, uint64_t seed, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern_byte(seed, off + i);
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "crashwriter: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

/* ---- write mode ---------------------------------------------------------- */

struct wfile {
	int fd;       /* buffered */
	int dfd;      /* O_DIRECT */
	uint64_t size;
};

static struct wfile wf[NFILES];
static int dirfd_g = -1;
static uint8_t *wbuf;
static uint64_t chunk_size;

/* Any failure in write mode means the daemon went away (or a real error);
 * either way nothing more is acknowledged and the writer just stops. */
static void stop(const char *what)
{
	fprintf(stderr, "crashwriter: %s: %s (stopping)\n", what, strerror(errno));
	exit(3);
}

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (fflush(stdout) != 0)
		die("cannot write the log");
}

static void full_pwrite(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			stop("pwrite");
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
}

static void sync_file(int f)
{
	int fd = (rnd() & 1) ? wf[f].fd : wf[f].dfd;
	int rc = (rnd() & 1) ? fsync(fd) : fdatasync(fd);
	if (rc != 0)
		stop("fsync/fdatasync");
	say("A %d\n", f);
}

static void open_files(void)
{
	char name[32];
	for (int f = 0; f < NFILES; f++) {
		snprintf(name, sizeof(name), "f%d", f);
		wf[f].fd = openat(dirfd_g, name, O_RDWR | O_CREAT | O_EXCL, 0644);
		if (wf[f].fd < 0)
			stop("create");
		wf[f].dfd = openat(dirfd_g, name, O_RDWR | O_DIRECT);
		if (wf[f].dfd < 0)
			stop("open O_DIRECT");
		if (fsync(wf[f].fd) != 0)
			stop("fsync new file");
		wf[f].size = 0;
	}
	if (fsync(dirfd_g) != 0)
		stop("fsync dir");
	for (int f = 0; f < NFILES; f++)
		say("C %d\n", f);
}

/* Choose where a write goes: append, overwrite, or straddle a chunk edge. */
static uint64_t pick_offset(int f, size_t len)
{
	uint64_t size = wf[f].size;
	switch (rnd_below(4)) {
	case 0:
		return size;                                   /* append */
	case 1: {                                          /* straddle an edge */
		uint64_t edge = chunk_size * (1 + rnd_below((size + len) / chunk_size + 1));
		uint64_t back = 1 + rnd_below(len < chunk_size ? len : chunk_size);
		return edge > back ? edge - back : 0;
	}
	case 2:
		return size + rnd_below(2 * chunk_size);       /* leave a hole */
	default:
		return rnd_below(size + 1);                    /* overwrite */
	}
}

static void step_write(int f)
{
	bool direct = rnd_below(3) == 0;
	size_t len = 1 + rnd_below(rnd() & 1 ? 4096 : MAX_WRITE);
	uint64_t off = pick_offset(f, len);
	if (direct) {
		off &= ~(uint64_t)(DIO_ALIGN - 1);
		len = (len + DIO_ALIGN - 1) & ~(size_t)(DIO_ALIGN - 1);
	}
	if (off + len > MAX_FILE)
		return;
	uint64_t seed = rnd();
	fill_pattern(wbuf, seed, off, len);
	say("W %d %" PRIu64 " %zu %" PRIu64 "\n", f, off, len, seed);
	full_pwrite(direct ? wf[f].dfd : wf[f].fd, wbuf, len, off);
	if (off + len > wf[f].size)
		wf[f].size = off + len;
}

static void step_truncate(int f)
{
	uint64_t size = rnd_below(wf[f].size + 2 * chunk_size);
	if (size > MAX_FILE)
		size = MAX_FILE;
	say("T %d %" PRIu64 "\n", f, size);
	if (ftruncate(wf[f].fd, (off_t)size) != 0)
		stop("ftruncate");
	wf[f].size = size;
	if (fsync(wf[f].fd) != 0)
		stop("fsync after truncate");
	say("A %d\n", f);
}

/* Write tmp, make it durable, rename it to target, make the rename durable. */
static void write_and_rename(const char *tmp, const char *target, uint64_t seed, size_t len)
{
	int fd = openat(dirfd_g, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		stop("create tmp");
	fill_pattern(wbuf, seed, 0, len);
	full_pwrite(fd, wbuf, len, 0);
	if (fsync(fd) != 0)
		stop("fsync tmp");
	if (close(fd) != 0)
		stop("close tmp");
	if (renameat(dirfd_g, tmp, dirfd_g, target) != 0)
		stop("rename");
	if (fsync(dirfd_g) != 0)
		stop("fsync dir");
}

static void step_new_file(unsigned *nnew)
{
	char name[32];
	uint64_t seed = rnd();
	size_t len = 1 + rnd_below(3 * chunk_size);
	snprintf(name, sizeof(name), "n%u", (*nnew)++);
	say("N %s %" PRIu64 " %zu\n", name, seed, len);
	write_and_rename("n.tmp", name, seed, len);
	say("NA %s\n", name);
}

static void step_replace(void)
{
	uint64_t seed = rnd();
	size_t len = 1 + rnd_below(3 * chunk_size);
	say("P %" PRIu64 " %zu\n", seed, len);
	write_and_rename("current.tmp", "current", seed, len);
	say("PA\n");
}

/* The new directory's entry is only durable once its parent is synced. */
static void sync_parent(const char *dir)
{
	char parent[4096];
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = 0;
	else if (slash)
		*slash = 0;
	else
		snprintf(parent, sizeof(parent), ".");
	int fd = open(parent, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || fsync(fd) != 0)
		stop("fsync parent dir");
	close(fd);
}

static _Noreturn void do_write(const char *dir, uint64_t seed)
{
	rng_state = seed;
	if (posix_memalign((void **)&wbuf, DIO_ALIGN, MAX_FILE) != 0)
		die("out of memory");
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		stop("mkdir");
	sync_parent(dir);
	dirfd_g = open(dir, O_RDONLY | O_DIRECTORY);
	if (dirfd_g < 0)
		stop("open dir");
	open_files();
	unsigned nnew = 0;
	for (;;) {
		unsigned r = (unsigned)rnd_below(100);
		int f = (int)rnd_below(NFILES);
		if (r < 6) {
			step_new_file(&nnew);
		} else if (r < 10) {
			step_replace();
		} else if (r < 16) {
			step_truncate(f);
		} else {
			int nwrites = 1 + (int)rnd_below(4);
			for (int i = 0; i < nwrites; i++)
				step_write(f);
			sync_file(f);
		}
	}
}

/* ---- verify mode: the model -------------------------------------------- */

enum { OP_WRITE, OP_TRUNC };

struct pend {
	int kind;
	uint64_t off, len, seed;   /* write */
	uint64_t size;             /* size after the op */
};

struct vfile {
	bool created_acked, seen;
	uint8_t *data;             /* acknowledged content */
	uint64_t size;             /* acknowledged size */
	struct pend pend[MAX_PENDING];
	int npend;
};

struct version {
	uint64_t seed, len;
};

struct model {
	struct vfile f[NFILES];
	/* renamed-in files */
	char (*new_names)[32];
	struct version *new_ver;
	bool *new_acked;
	int nnew, cap;
	/* "current": acknowledged version, the ones acknowledged before it,
	 * and later intents */
	bool cur_acked;
	struct version cur;
	struct version *cur_old;
	int ncur_old, cur_old_cap;
	struct version cur_pend[MAX_PENDING];
	int ncur_pend;
};

static void apply_write(uint8_t *data, uint64_t *size, const struct pend *p)
{
	if (p->kind == OP_WRITE) {
		if (p->off > *size)
			memset(data + *size, 0, p->off - *size);
		fill_pattern(data + p->off, p->seed, p->off, p->len);
		if (p->off + p->len > *size)
			*size = p->off + p->len;
	} else {
		if (p->size > *size)
			memset(data + *size, 0, p->size - *size);
		*size = p->size;
	}
}

static void ack_file(struct vfile *v)
{
	for (int i = 0; i < v->npend; i++)
		apply_write(v->data, &v->size, &v->pend[i]);
	v->npend = 0;
}

static void add_pending(struct vfile *v, struct pend p)
{
	uint64_t prev = v->npend ? v->pend[v->npend - 1].size : v->size;
	if (v->npend == MAX_PENDING)
		die("log has too many unacknowledged intents");
	if (p.kind == OP_WRITE)
		p.size = p.off + p.len > prev ? p.off + p.len : prev;
	v->pend[v->npend++] = p;
}

static int add_new(struct model *m, const char *name, uint64_t seed, uint64_t len)
{
	if (m->nnew == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->new_names = realloc(m->new_names, m->cap * sizeof(*m->new_names));
		m->new_ver = realloc(m->new_ver, m->cap * sizeof(*m->new_ver));
		m->new_acked = realloc(m->new_acked, m->cap * sizeof(*m->new_acked));
		if (!m->new_names || !m->new_ver || !m->new_acked)
			die("out of memory");
	}
	snprintf(m->new_names[m->nnew], 32, "%s", name);
	m->new_ver[m->nnew] = (struct version){seed, len};
	m->new_acked[m->nnew] = false;
	return m->nnew++;
}

static int find_new(struct model *m, const char *name)
{
	for (int i = m->nnew - 1; i >= 0; i--)
		if (strcmp(m->new_names[i], name) == 0)
			return i;
	return -1;
}

/* Parse one log line into the model. A torn last line is ignored. */
static void replay_line(struct model *m, const char *line)
{
	int f;
	uint64_t a, b, c;
	char name[32];
	if (sscanf(line, "C %d", &f) == 1 && f >= 0 && f < NFILES) {
		m->f[f].created_acked = true;
	} else if (sscanf(line, "W %d %" SCNu64 " %" SCNu64 " %" SCNu64, &f, &a, &b, &c) == 4) {
		add_pending(&m->f[f], (struct pend){OP_WRITE, a, b, c, 0});
	} else if (sscanf(line, "T %d %" SCNu64, &f, &a) == 2) {
		add_pending(&m->f[f], (struct pend){OP_TRUNC, 0, 0, 0, a});
	} else if (sscanf(line, "A %d", &f) == 1) {
		ack_file(&m->f[f]);
	} else if (sscanf(line, "N %31s %" SCNu64 " %" SCNu64, name, &a, &b) == 3) {
		add_new(m, name, a, b);
	} else if (sscanf(line, "NA %31s", name) == 1) {
		int i = find_new(m, name);
		if (i < 0)
			die("log acknowledges unknown file %s", name);
		m->new_acked[i] = true;
	} else if (sscanf(line, "P %" SCNu64 " %" SCNu64, &a, &b) == 2) {
		m->cur_pend[m->ncur_pend++] = (struct version){a, b};
		if (m->ncur_pend == MAX_PENDING)
			die("log has too many replace intents");
	} else if (strncmp(line, "PA", 2) == 0) {
		if (m->ncur_pend == 0)
			die("log acknowledges a replace that was never intended");
		if (m->cur_acked) {
			if (m->ncur_old == m->cur_old_cap) {
				m->cur_old_cap = m->cur_old_cap ? 2 * m->cur_old_cap : 64;
				m->cur_old = realloc(m->cur_old, m->cur_old_cap * sizeof(*m->cur_old));
				if (!m->cur_old)
					die("out of memory");
			}
			m->cur_old[m->ncur_old++] = m->cur;
		}
		m->cur = m->cur_pend[m->ncur_pend - 1];
		m->cur_acked = true;
		m->ncur_pend = 0;
	}
}

static void read_log(struct model *m, const char *path)
{
	FILE *fp = fopen(path, "r");
	if (!fp)
		die("cannot open log %s: %s", path, strerror(errno));
	char line[256];
	while (fgets(line, sizeof(line), fp)) {
		if (!strchr(line, '\n'))
			break;          /* torn last line: the writer died mid-print */
		replay_line(m, line);
	}
	fclose(fp);
}

/* ---- verify mode: checking ------------------------------------------------ */

static int failures, lost_renames;

static void vreport(bool rename, const char *fmt, va_list ap)
{
	printf("FAIL: ");
	vprintf(fmt, ap);
	printf(rename ? " [rename]\n" : "\n");
	failures++;
	lost_renames += rename;
}

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(false, fmt, ap);
	va_end(ap);
}

static void lost_rename(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(true, fmt, ap);
	va_end(ap);
}

/* Read a whole file of the mount; returns its size or -1 if it is missing
 * (and, with eio_ok, -2 if reading it fails with EIO). */
static int64_t slurp_eio(int dfd, const char *name, uint8_t *buf, size_t cap, bool eio_ok)
{
	int fd = openat(dfd, name, O_RDONLY);
	if (fd < 0) {
		if (errno == ENOENT)
			return -1;
		die("open %s: %s", name, strerror(errno));
	}
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EIO && eio_ok) {
			close(fd);
			return -2;
		}
		if (n < 0)
			die("read %s: %s", name, strerror(errno));
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap)
			break;
	}
	close(fd);
	return (int64_t)got;
}

static int64_t slurp(int dfd, const char *name, uint8_t *buf, size_t cap)
{
	return slurp_eio(dfd, name, buf, cap, false);
}

static bool byte_acceptable(const struct vfile *v, uint64_t pos, uint8_t got)
{
	bool zero_ok = pos >= v->size;
	if (!zero_ok && got == v->data[pos])
		return true;
	for (int i = 0; i < v->npend; i++) {
		const struct pend *p = &v->pend[i];
		if (p->kind == OP_TRUNC && p->size <= pos)
			zero_ok = true;
		if (p->kind == OP_WRITE && pos >= p->off && pos < p->off + p->len &&
		    got == pattern_byte(p->seed, pos))
			return true;
	}
	return zero_ok && got == 0;
}

static void check_file(int dfd, int f, struct vfile *v, uint8_t *buf)
{
	char name[32];
	snprintf(name, sizeof(name), "f%d", f);
	int64_t size = slurp(dfd, name, buf, MAX_FILE + 1);
	if (size < 0) {
		if (v->created_acked)
			fail("%s: acknowledged file is missing", name);
		return;
	}
	uint64_t lo = v->size, hi = v->size;
	for (int i = 0; i < v->npend; i++) {
		lo = v->pend[i].size < lo ? v->pend[i].size : lo;
		hi = v->pend[i].size > hi ? v->pend[i].size : hi;
	}
	if ((uint64_t)size < lo || (uint64_t)size > hi)
		fail("%s: size %" PRId64 ", expected between %" PRIu64 " and %" PRIu64
		     " (acknowledged %" PRIu64 ")", name, size, lo, hi, v->size);
	for (uint64_t pos = 0; pos < (uint64_t)size; pos++) {
		if (!byte_acceptable(v, pos, buf[pos])) {
			fail("%s: byte %" PRIu64 " is 0x%02x, acknowledged 0x%02x "
			     "(acknowledged size %" PRIu64 ", %d unacknowledged intents)",
			     name, pos, buf[pos], pos < v->size ? v->data[pos] : 0,
			     v->size, v->npend);
			return;
		}
	}
}

static bool matches_version(const uint8_t *buf, int64_t size, struct version ver)
{
	if (size != (int64_t)ver.len)
		return false;
	for (uint64_t i = 0; i < ver.len; i++)
		if (buf[i] != pattern_byte(ver.seed, i))
			return false;
	return true;
}

static void check_new_files(int dfd, struct model *m, uint8_t *buf)
{
	for (int i = 0; i < m->nnew; i++) {
		int64_t size = slurp(dfd, m->new_names[i], buf, MAX_FILE + 1);
		if (size < 0) {
			if (m->new_acked[i])
				lost_rename("%s: acknowledged renamed-in file is missing", m->new_names[i]);
			continue;
		}
		if (!matches_version(buf, size, m->new_ver[i]))
			fail("%s: renamed-in file is not whole (size %" PRId64 ", expected %" PRIu64 ")",
			     m->new_names[i], size, m->new_ver[i].len);
	}
}

static void check_current(int dfd, struct model *m, uint8_t *buf)
{
	int64_t size = slurp_eio(dfd, "current", buf, MAX_FILE + 1, true);
	if (size == -2) {
		lost_rename("current: unreadable (Input/output error)");
		return;
	}
	if (size < 0) {
		if (m->cur_acked)
			lost_rename("current: acknowledged file is missing");
		return;
	}
	if (m->cur_acked && matches_version(buf, size, m->cur))
		return;
	for (int i = 0; i < m->ncur_pend; i++)
		if (matches_version(buf, size, m->cur_pend[i]))
			return;
	for (int i = m->ncur_old - 1; i >= 0; i--)
		if (matches_version(buf, size, m->cur_old[i])) {
			lost_rename("current: an older version (%d acknowledged replacements back, len %" PRIu64 ")",
				    m->ncur_old - i, m->cur_old[i].len);
			return;
		}
	fail("current: size %" PRId64 " matches no whole version (acknowledged: %s, len %" PRIu64
	     ", %d later intents)", size, m->cur_acked ? "yes" : "none", m->cur.len, m->ncur_pend);
}

/* FNV-1a over every file in the model, for the "nothing changes later" check. */
static uint64_t digest_all(int dfd, struct model *m, uint8_t *buf)
{
	uint64_t h = 0xcbf29ce484222325ull;
	char name[32];
	for (int i = 0; i < NFILES + m->nnew + 1; i++) {
		const char *n = name;
		if (i < NFILES)
			snprintf(name, sizeof(name), "f%d", i);
		else if (i < NFILES + m->nnew)
			n = m->new_names[i - NFILES];
		else
			n = "current";
		int64_t size = slurp(dfd, n, buf, MAX_FILE + 1);
		h = (h ^ (uint64_t)size) * 0x100000001b3ull;
		for (int64_t k = 0; k < size; k++)
			h = (h ^ buf[k]) * 0x100000001b3ull;
	}
	return h;
}

static void check_digest(int dfd, struct model *m, uint8_t *buf, const char *path)
{
	uint64_t now = digest_all(dfd, m, buf), before;
	FILE *fp = fopen(path, "r");
	if (fp) {
		int n = fscanf(fp, "%" SCNx64, &before);
		fclose(fp);
		if (n == 1 && before != now)
			fail("contents changed since the first verification (digest %016" PRIx64
			     ", was %016" PRIx64 ")", now, before);
		return;
	}
	fp = fopen(path, "w");
	if (!fp || fprintf(fp, "%016" PRIx64 "\n", now) < 0 || fclose(fp) != 0)
		die("cannot write digest %s", path);
}

static int do_verify(const char *dir, const char *log, const char *digest)
{
	static struct model m;
	uint8_t *buf = malloc(MAX_FILE + 1);
	for (int f = 0; f < NFILES; f++)
		m.f[f].data = calloc(1, MAX_FILE);
	if (!buf)
		die("out of memory");
	for (int f = 0; f < NFILES; f++)
		if (!m.f[f].data)
			die("out of memory");
	read_log(&m, log);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0 && errno != ENOENT)
		die("open %s: %s", dir, strerror(errno));
	if (dfd < 0) {
		bool any = m.f[0].created_acked;
		if (any)
			fail("%s: directory with acknowledged files is missing", dir);
		return any ? 1 : 0;
	}
	for (int f = 0; f < NFILES; f++)
		check_file(dfd, f, &m.f[f], buf);
	check_new_files(dfd, &m, buf);
	check_current(dfd, &m, buf);
	if (digest && failures == 0)
		check_digest(dfd, &m, buf, digest);
	close(dfd);
	for (int f = 0; f < NFILES; f++)
		free(m.f[f].data);
	free(buf);
	free(m.cur_old);
	return failures == 0 ? 0 : failures == lost_renames ? 4 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "write") == 0) {
		chunk_size = strtoull(argv[4], NULL, 0);
		if (chunk_size < 512)
			die("bad chunk size %s", argv[4]);
		do_write(argv[2], strtoull(argv[3], NULL, 0));
	}
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "verify") == 0)
		return do_verify(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
	fprintf(stderr, "usage: crashwriter write DIR SEED CHUNK_SIZE > LOG\n"
			"       crashwriter verify DIR LOG [DIGEST_FILE]\n");
	return 2;
}
