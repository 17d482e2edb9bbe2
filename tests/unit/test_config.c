/* Config parser: good files parse to the right values, every kind of bad
 * file is refused with "file:line: what is wrong". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "utils/config.h"
#include "utils/util.h"

static char path[64];

static int load(const char *text, struct silt_config *cfg, char *err, size_t errlen)
{
	strcpy(path, "/tmp/silt-cfg-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	int r = silt_config_load(path, cfg, err, errlen);
	unlink(path);
	return r;
}

static void test_good(void **state)
{
	struct silt_config cfg;
	char err[512];
	int r = load("[volume]\nname = vm\nchunk_size = 128K\n\n[ram]\nsize = 1G\n"
		     "[tier fast]\npath = /srv/a/\nclass = nvme\ncapacity = 10G\nhigh_watermark = 80%\n"
		     "low_watermark = 60\n[tier slow]\npath = /srv/b\nclass = HDD\ncompression = zstd:5\n",
		     &cfg, err, sizeof(err));
	assert_int_equal(r, 0);
	assert_string_equal(cfg.name, "vm");
	assert_int_equal(cfg.chunk_size, 128 * 1024);
	assert_int_equal(cfg.ram_size, 1ull << 30);
	assert_int_equal(cfg.ntiers, 2);
	assert_string_equal(cfg.tiers[0].path, "/srv/a");
	assert_int_equal(cfg.tiers[0].capacity, 10ull << 30);
	assert_int_equal(cfg.tiers[0].high_wm, 80);
	assert_int_equal(cfg.tiers[0].low_wm, 60);
	assert_int_equal(cfg.tiers[1].cls, SILT_CLASS_HDD);
	assert_int_equal(cfg.tiers[1].capacity, 0);
	assert_int_equal(cfg.tiers[1].high_wm, 90);
	assert_int_equal(cfg.tiers[1].zstd_level, 5);
}

struct bad {
	const char *text;
	int line;          /* 0: no line expected */
	const char *words; /* must appear in the message */
};

static const struct bad bads[] = {
	{ "[volume]\nname = v\nchunk_size = 3K\n[tier a]\npath=/a\nclass=ssd\n", 3, "power of two" },
	{ "[volume]\nname = v\nchunk_size = 8M\n[tier a]\npath=/a\nclass=ssd\n", 3, "4K to 4M" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=tape\n", 5, "class = tape" },
	{ "[volume]\nname = v\n[tier a]\npath=relative\nclass=ssd\n", 4, "absolute" },
	{ "[volume]\nname = v\n[tier a]\nclass=ssd\n", 3, "no path" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\n", 3, "no class" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\n[tier a]\npath=/b\nclass=ssd\n", 6, "defined twice" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\nlow_watermark=95\n", 3, "above high_watermark" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\ncompression=zstd:99\n", 6, "1..19" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\nspeed=fast\n", 6, "unknown key 'speed'" },
	{ "[volume]\nname = v\nthis is not ini\n[tier a]\npath=/a\nclass=ssd\n", 3, "syntax" },
	{ "[volume]\nname = v\n", 2, "no [tier NAME]" },
	{ "[volumes]\nname = v\n", 1, "unknown section" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\n[mystery]\n", 6, "unknown section" },
	{ "[volume]\n[tier a]\npath=/a\nclass=ssd\n", 1, "has no name" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\ncapacity=lots\n", 6, "capacity = lots" },
	{ "[volume]\nname = v w\n[tier a]\npath=/a\nclass=ssd\n", 2, "name" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\n[tier b]\npath=/a\nclass=hdd\n", 6, "same path" },
	{ "[volume]\nname = v\n[ram]\nsize = huge\n[tier a]\npath=/a\nclass=ssd\n", 4, "size = huge" },
};

static void test_bad(void **state)
{
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct silt_config cfg;
		char err[512], want[96];
		int r = load(bads[i].text, &cfg, err, sizeof(err));
		if (r == 0 || !strstr(err, bads[i].words))
			fail_msg("case %zu: r=%d err='%s' (wanted '%s')", i, r, err, bads[i].words);
		if (bads[i].line) {
			snprintf(want, sizeof(want), "%s:%d: ", path, bads[i].line);
			if (strncmp(err, want, strlen(want)))
				fail_msg("case %zu: '%s' does not start with '%s'", i, err, want);
		}
	}
}

static void test_missing_file(void **state)
{
	struct silt_config cfg;
	char err[512];
	assert_int_not_equal(silt_config_load("/nonexistent/x.conf", &cfg, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "/nonexistent/x.conf"));
}

static void test_sizes(void **state)
{
	uint64_t v;
	assert_int_equal(silt_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(silt_parse_size("1.5G", &v), 0);
	assert_int_equal(v, 3ull << 29);
	assert_int_equal(silt_parse_size("2TiB", &v), 0);
	assert_int_equal(v, 2ull << 40);
	assert_int_equal(silt_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_not_equal(silt_parse_size("12Q", &v), 0);
	assert_int_not_equal(silt_parse_size("-1", &v), 0);
	assert_int_not_equal(silt_parse_size("", &v), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
