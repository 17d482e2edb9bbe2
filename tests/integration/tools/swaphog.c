/* silt-swaphog MIB PASSES [GATE]
 * Touches MIB MiB of anonymous memory page by page, PASSES times: each pass
 * writes a pattern of its own into every page (so, in a memory cgroup
 * limited below MIB, earlier pages are swapped out), then reads every page
 * back and checks it (so they are swapped in again).  The pattern of page i
 * in pass p is derived from (i, p) and starts with both, so a page swapped
 * back from the wrong slot, a stale page of the previous pass, a torn or a
 * zeroed page all show.
 *
 * Prints one line per sweep, for the test and for bench/fs/swap.sh:
 *   pass=P write_s=S out_pages=N          (pswpout growth in /proc/vmstat)
 *   pass=P verify_s=S in_pages=N bad=B    (pswpin growth; B wrong pages)
 * and the first few wrong pages.  Exit status 1 if any page was wrong.
 *
 * With GATE (a path), after the first write sweep it creates GATE.ready and
 * waits until GATE exists: the test corrupts the swap area in between, to
 * see the check fail. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / 8)
#define MAGIC 0x7377617068616721ull	/* "swaphag!" */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Global swap counters from /proc/vmstat ("pswpin"/"pswpout"). */
static uint64_t vmstat(const char *key)
{
	char name[64];
	unsigned long long v;
	uint64_t r = 0;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return 0;
	while (fscanf(f, "%63s %llu", name, &v) == 2)
		if (!strcmp(name, key))
			r = v;
	fclose(f);
	return r;
}

static void fill(uint64_t *w, uint64_t page, uint64_t pass)
{
	uint64_t x = page * 0x9e3779b97f4a7c15ull ^ pass << 56 ^ 0x2545f4914f6cdd1dull;

	w[0] = MAGIC;
	w[1] = page;
	w[2] = pass;
	for (unsigned i = 3; i < WORDS; i++) {
		x ^= x << 13;	/* xorshift64 */
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
}

static int gate_wait(const char *gate)
{
	char ready[4096];
	FILE *f;

	snprintf(ready, sizeof(ready), "%s.ready", gate);
	if (!(f = fopen(ready, "w")))
		return -errno;
	fclose(f);
	while (access(gate, F_OK))
		usleep(10000);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t want[WORDS], npages, bad_total = 0;
	size_t len;
	uint64_t *mem;

	if (argc < 3) {
		fprintf(stderr, "usage: %s MIB PASSES [GATE]\n", argv[0]);
		return 2;
	}
	len = strtoull(argv[1], NULL, 0) << 20;
	npages = len / PAGE;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("swaphog: mmap");
		return 2;
	}
	/* whole 4 KiB pages in and out, as a guest's memory would be */
	madvise(mem, len, MADV_NOHUGEPAGE);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (uint64_t pass = 1; pass <= strtoull(argv[2], NULL, 0); pass++) {
		uint64_t out0 = vmstat("pswpout"), in0, bad = 0;
		double t = now();

		for (uint64_t i = 0; i < npages; i++)
			fill(mem + i * WORDS, i, pass);
		printf("pass=%" PRIu64 " write_s=%.3f out_pages=%" PRIu64 "\n", pass, now() - t,
		       vmstat("pswpout") - out0);
		if (pass == 1 && argc > 3 && gate_wait(argv[3])) {
			perror("swaphog: gate");
			return 2;
		}
		in0 = vmstat("pswpin");
		t = now();
		for (uint64_t i = 0; i < npages; i++) {
			const uint64_t *w = mem + i * WORDS;
			fill(want, i, pass);
			if (!memcmp(w, want, PAGE))
				continue;
			if (bad++ < 5)
				printf("bad page %" PRIu64 " (pass %" PRIu64 "): holds page %" PRIu64 " of pass %" PRIu64
				       "%s\n", i, pass, w[1], w[2], w[0] == MAGIC ? "" : ", no magic");
		}
		printf("pass=%" PRIu64 " verify_s=%.3f in_pages=%" PRIu64 " bad=%" PRIu64 "\n", pass,
		       now() - t, vmstat("pswpin") - in0, bad);
		bad_total += bad;
	}
	return bad_total ? 1 : 0;
}
