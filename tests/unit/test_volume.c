/* Engine without FUSE: volume creation and the identity checks at open,
 * the chunk table, and data round trips through vol_read/vol_write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/meta/meta.h"
#include "fs/vol.h"
#include "fs/vol_int.h"
#include "utils/config.h"

struct fixture {
	char dir[64];
	struct silt_config cfg;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/silt-vol-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->cfg.file, sizeof(f->cfg.file), "%s/vol.conf", f->dir);
	snprintf(f->cfg.name, sizeof(f->cfg.name), "unit");
	f->cfg.chunk_size = 4096;
	silt_placement_defaults(&f->cfg.placement);
	f->cfg.ntiers = 2;
	for (int i = 0; i < 2; i++) {
		struct silt_tier_conf *t = &f->cfg.tiers[i];
		snprintf(t->name, sizeof(t->name), "t%d", i);
		snprintf(t->path, sizeof(t->path), "%s/t%d", f->dir, i);
		t->cls = i ? SILT_CLASS_HDD : SILT_CLASS_NVME;
		t->capacity = i ? 0 : (1u << 20);
		t->high_wm = 100;
		t->low_wm = 50;
		t->line = 1;
		mkdir(t->path, 0755);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Listing of a tree (names and sizes) to prove that refusals write nothing. */
static char *snapshot(const char *dir)
{
	char cmd[256], *buf = calloc(1, 1 << 16);
	snprintf(cmd, sizeof(cmd), "cd %s && find . -printf '%%p %%s %%T@\\n' | sort", dir);
	FILE *p = popen(cmd, "r");
	size_t n = fread(buf, 1, (1 << 16) - 1, p);
	buf[n] = '\0';
	pclose(p);
	return buf;
}

static void test_create_then_open(void **state)
{
	struct fixture *f = *state;
	struct silt_vol *v;
	char err[1024], uuid[37];
	int created;

	assert_int_equal(vol_open(&f->cfg, &v, &created, err, sizeof(err)), 0);
	assert_int_equal(created, 1);
	snprintf(uuid, sizeof(uuid), "%s", vol_uuid(v));
	vol_close(v);
	assert_int_equal(vol_open(&f->cfg, &v, &created, err, sizeof(err)), 0);
	assert_int_equal(created, 0);
	assert_string_equal(vol_uuid(v), uuid);
	vol_close(v);
}

static void test_refuse_foreign_tier(void **state)
{
	struct fixture *f = *state;
	struct silt_vol *v;
	char err[1024], other[4096];
	int created;

	assert_int_equal(vol_open(&f->cfg, &v, &created, err, sizeof(err)), 0);
	vol_close(v);
	/* a second volume elsewhere; then point our second tier at its folder */
	struct silt_config o = f->cfg;
	for (int i = 0; i < 2; i++) {
		snprintf(o.tiers[i].path, sizeof(o.tiers[i].path), "%s/o%d", f->dir, i);
		mkdir(o.tiers[i].path, 0755);
	}
	assert_int_equal(vol_open(&o, &v, &created, err, sizeof(err)), 0);
	vol_close(v);
	memcpy(other, o.tiers[1].path, sizeof(other));
	struct silt_config mixed = f->cfg;
	snprintf(mixed.tiers[1].path, sizeof(mixed.tiers[1].path), "%s", other);
	char *before = snapshot(f->dir);
	assert_int_not_equal(vol_open(&mixed, &v, &created, err, sizeof(err)), 0);
	assert_non_null(strstr(err, other));
	assert_non_null(strstr(err, "belongs to volume"));
	char *after = snapshot(f->dir);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void test_refuse_missing_and_blank(void **state)
{
	struct fixture *f = *state;
	struct silt_vol *v;
	char err[1024], marker[4300];
	int created;

	assert_int_equal(vol_open(&f->cfg, &v, &created, err, sizeof(err)), 0);
	vol_close(v);
	struct silt_config c = f->cfg;
	snprintf(c.tiers[1].path, sizeof(c.tiers[1].path), "%s/nowhere", f->dir);
	/* a folder not there (a disk not mounted yet): mounted without it */
	assert_int_equal(vol_open(&c, &v, &created, err, sizeof(err)), 0);
	struct tier_stats st;
	tier_get_stats(v->tiers[1], &st);
	assert_string_equal(st.state_name, "missing");
	assert_non_null(strstr(st.why, "nowhere"));
	vol_close(v);
	/* none there: nothing to mount */
	snprintf(c.tiers[0].path, sizeof(c.tiers[0].path), "%s/nowhere0", f->dir);
	assert_int_not_equal(vol_open(&c, &v, &created, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "does not exist"));
	assert_non_null(strstr(err, "no tier folder"));
	/* the marker vanished: a blank disk mounted at the tier path */
	snprintf(marker, sizeof(marker), "%s/tier.id", f->cfg.tiers[1].path);
	assert_int_equal(unlink(marker), 0);
	assert_int_not_equal(vol_open(&f->cfg, &v, &created, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "no tier.id"));
}

static void test_refuse_newer_format(void **state)
{
	struct fixture *f = *state;
	struct silt_vol *v;
	struct silt_meta *m;
	char err[1024], mdir[4200];
	int created;

	assert_int_equal(vol_open(&f->cfg, &v, &created, err, sizeof(err)), 0);
	snprintf(mdir, sizeof(mdir), "%s/%s/meta", f->cfg.tiers[0].path, vol_uuid(v));
	vol_close(v);
	/* a future siltfs bumped the format */
	assert_int_equal(meta_open(mdir, META_OPEN, &m, err, sizeof(err)), 0);
	struct meta_batch *b = meta_batch_new();
	uint64_t fmt = SILT_FORMAT_VERSION + 1;
	meta_put(b, m, CF_FACTS, "format", 6, &fmt, 8);
	assert_int_equal(meta_commit(m, b, 1), 0);
	meta_batch_free(b);
	meta_close(m);
	char *before = snapshot(f->dir);
	assert_int_not_equal(vol_open(&f->cfg, &v, &created, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "newer"));
	char *after = snapshot(f->dir);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void test_refuse_chunk_size_change(void **state)
{
	struct fixture *f = *state;
	struct silt_vol *v;
	char err[1024];
	int created;

	assert_int_equal(vol_open(&f->cfg, &v, &created, err, sizeof(err)), 0);
	vol_close(v);
	struct silt_config c = f->cfg;
	c.chunk_size = 65536;
	assert_int_not_equal(vol_open(&c, &v, &created, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "chunk_size"));
}

/* Write across tiers through the engine, spill when the first tier fills,
 * read back, punch, truncate, and find everything again after reopen. */
static void test_data_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct silt_vol *v;
	struct silt_file *fh;
	struct stat st;
	char err[1024];
	int created;
	const size_t len = 3u << 20; /* three times the first tier */
	char *pat = malloc(len);

	for (size_t i = 0; i < len; i++)
		pat[i] = (char)(i * 7 + (i >> 12));
	assert_int_equal(vol_open(&f->cfg, &v, &created, err, sizeof(err)), 0);
	assert_int_equal(vol_create(v, SILT_ROOT_INO, "img", 0644, 0, 0, O_RDWR, &st, &fh), 0);
	for (size_t off = 0; off < len; off += 100000)
		assert_int_equal(vol_write(v, fh, pat + off, MIN(100000, len - off), (off_t)off),
				 (ssize_t)MIN(100000, len - off));
	const void *data;
	for (size_t off = 0; off < len; off += 333333) {
		ssize_t n = vol_read(v, fh, 333333, (off_t)off, &data);
		assert_int_equal(n, (ssize_t)MIN(333333, len - off));
		assert_memory_equal(data, pat + off, (size_t)n);
	}
	/* punch the middle chunk-aligned megabyte, then read zeros there */
	assert_int_equal(vol_fallocate(v, fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20), 0);
	memset(pat + (1 << 20), 0, 1 << 20);
	assert_int_equal(vol_lseek(v, fh, 1 << 20, SEEK_HOLE), 1 << 20);
	assert_int_equal(vol_lseek(v, fh, 1 << 20, SEEK_DATA), 2 << 20);
	assert_int_equal(vol_fsync(v, fh, 0), 0);
	vol_release(v, fh);
	vol_forget(v, st.st_ino, 1);
	vol_close(v);

	assert_int_equal(vol_open(&f->cfg, &v, &created, err, sizeof(err)), 0);
	assert_int_equal(vol_lookup(v, SILT_ROOT_INO, "img", &st), 0);
	assert_int_equal(st.st_size, (off_t)len);
	assert_int_equal(vol_open_file(v, st.st_ino, O_RDWR, &fh), 0);
	for (size_t off = 0; off < len; off += SILT_IOBUF) {
		ssize_t n = vol_read(v, fh, SILT_IOBUF, (off_t)off, &data);
		assert_int_equal(n, (ssize_t)MIN((size_t)SILT_IOBUF, len - off));
		assert_memory_equal(data, pat + off, (size_t)n);
	}
	/* shrink to an unaligned size, grow again: the tail reads zeros */
	struct stat a = { .st_size = 5000 };
	assert_int_equal(vol_setattr(v, st.st_ino, &a, SILT_SET_SIZE, &st), 0);
	a.st_size = 20000;
	assert_int_equal(vol_setattr(v, st.st_ino, &a, SILT_SET_SIZE, &st), 0);
	ssize_t n = vol_read(v, fh, 20000, 0, &data);
	assert_int_equal(n, 20000);
	assert_memory_equal(data, pat, 5000);
	for (int i = 5000; i < 20000; i++)
		assert_int_equal(((const char *)data)[i], 0);
	vol_release(v, fh);
	vol_forget(v, st.st_ino, 1);
	vol_close(v);
	free(pat);
}

/* Second tier compressed: compressible chunks shrink on disk, random ones
 * are stored plain, partial overwrites and punches keep the bytes right,
 * and a flipped byte on the tier is reported, never returned. */
static void test_compressed_tier(void **state)
{
	struct fixture *f = *state;
	struct silt_vol *v;
	struct silt_file *fh;
	struct stat st, ts;
	char err[1024], tfile[4300];
	int created;
	const size_t len = 2u << 20; /* first tier (1 MiB) spills into the compressed one */
	char *pat = malloc(len);
	const void *data;

	f->cfg.tiers[1].zstd_level = 3;
	f->cfg.chunk_size = 65536;
	for (size_t i = 0; i < len; i++) /* compressible, except the last 256 KiB */
		pat[i] = i < len - (256 << 10) ? (char)((i / 512) & 0x3f) : (char)(rand() & 0xff);
	assert_int_equal(vol_open(&f->cfg, &v, &created, err, sizeof(err)), 0);
	assert_int_equal(vol_create(v, SILT_ROOT_INO, "z", 0644, 0, 0, O_RDWR, &st, &fh), 0);
	for (size_t off = 0; off < len; off += 65536)
		assert_int_equal(vol_write(v, fh, pat + off, 65536, (off_t)off), 65536);
	/* unaligned overwrite across a chunk boundary, inside the compressed tier */
	memset(pat + (1536 << 10) - 100, 'x', 5000);
	assert_int_equal(vol_write(v, fh, pat + (1536 << 10) - 100, 5000, (1536 << 10) - 100), 5000);
	/* unaligned punch inside a compressed chunk */
	assert_int_equal(vol_fallocate(v, fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (1200 << 10) + 7, 3000), 0);
	memset(pat + (1200 << 10) + 7, 0, 3000);
	for (size_t off = 0; off < len; off += 100000) {
		ssize_t n = vol_read(v, fh, 100000, (off_t)off, &data);
		assert_int_equal(n, (ssize_t)MIN(100000, len - off));
		assert_memory_equal(data, pat + off, (size_t)n);
	}
	assert_int_equal(vol_fsync(v, fh, 0), 0);
	snprintf(tfile, sizeof(tfile), "%s/%s/chunks/%llu", f->cfg.tiers[1].path, vol_uuid(v),
		 (unsigned long long)st.st_ino);
	assert_int_equal(stat(tfile, &ts), 0);
	/* ~1 MiB of chunks live there; compressed they take far less, the
	 * random quarter megabyte stays as it is */
	assert_true(ts.st_blocks * 512 < (512 << 10));
	assert_true(ts.st_blocks * 512 >= (256 << 10));

	/* flip a byte inside a compressed chunk's frame */
	int fd = open(tfile, O_RDWR);
	uint64_t slot = ((1 << 20) + (64 << 10)) / 4096 * 4096; /* second chunk of that tier */
	char c;
	assert_int_equal(pread(fd, &c, 1, (off_t)(slot + 40)), 1);
	c ^= 0x55;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)(slot + 40)), 1);
	close(fd);
	ssize_t n = vol_read(v, fh, 4096, (off_t)slot, &data);
	assert_int_equal(n, -EIO);
	vol_release(v, fh);
	vol_forget(v, st.st_ino, 1);
	vol_close(v);
	free(pat);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_then_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_foreign_tier, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_missing_and_blank, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_newer_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_chunk_size_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compressed_tier, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
