/* Config parser: good files parse to the right values, every kind of bad
 * file is refused with "file:line: what is wrong". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
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
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\n[sync]\nschedule = sometimes\n", 7,
	  "schedule = sometimes: must be interval or quiet" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\n[tier a]\npath=/b\nclass=ssd\n", 6, "defined twice" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\nlow_watermark=95\n", 3, "above high_watermark" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\ncompression=zstd:99\n", 6, "1..19" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\nspeed=fast\n", 6, "unknown key 'speed'" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\n[rule r]\nmatch = *\nweight = 0\n", 8,
	  "weight = 0: must be a whole number from 1 to 100" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\n[rule r]\nmatch = *\nweight = 7x\n", 8,
	  "weight = 7x: must be" },
	{ "[volume]\nname = v\nthis is not ini\n[tier a]\npath=/a\nclass=ssd\n", 3, "syntax" },
	{ "[volume]\nname = v\n", 2, "no [tier NAME]" },
	{ "[volumes]\nname = v\n", 1, "unknown section" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\n[mystery]\n", 6, "unknown section" },
	{ "[volume]\n[tier a]\npath=/a\nclass=ssd\n", 1, "has no name" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\ncapacity=lots\n", 6, "capacity = lots" },
	{ "[volume]\nname = v w\n[tier a]\npath=/a\nclass=ssd\n", 2, "name" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\n[tier b]\npath=/a\nclass=hdd\n", 7, "same path" },
	{ "[volume]\nname = v\n[ram]\nsize = huge\n[tier a]\npath=/a\nclass=ssd\n", 4, "size = huge" },
	/* a key given twice is refused, naming both lines (it used to be last-wins) */
	{ "[volume]\nname = x\nname = y\n[tier a]\npath=/a\nclass=ssd\n", 3, "name is set twice in [volume], at lines 2 and 3" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\n\npath = /b\n", 7, "path is set twice in [tier a], at lines 4 and 7" },
	{ "[volume]\nname = v\n[ram]\nsize = 1G\nsize = 2G\n[tier a]\npath=/a\nclass=ssd\n", 5, "lines 4 and 5" },
	/* a missing [volume] is called missing; an empty file names line 1 */
	{ "[tier a]\npath=/a\nclass=ssd\n", 1, "no [volume] section" },
	{ "; only\n# comments\n\n", 1, "no [volume] section" },
	{ "", 1, "the file is empty" },
	/* what inih would drop or misread */
	{ "[volume] junk\nname = v\n[tier a]\npath=/a\nclass=ssd\n", 1, "text after the section header [volume]: 'junk'" },
	{ "[volume]\nname = v\n[tier a] path = /a\nclass=ssd\n", 3, "text after the section header [tier a]" },
	{ "[volume]\nname = v\n[tier a]\nclass=ssd\npath = /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
	  "[tier b]\npath=/b\nclass=hdd\n", 5, "line too long: 208 characters, at most 198" },
	{ "[volume]\nname = v#1\n[tier a]\npath=/a\nclass=ssd\n", 2, "name = v#1" }, /* no space: not a comment */
	{ "[volume]\nname = v\n[tier]\npath=/a\nclass=ssd\n", 3, "[tier] needs a name" },
	/* values that were accepted without a word */
	{ "[volume]\nname = v\nchunk_size = 4M\n[tier a]\npath=/a\nclass=ssd\ncapacity = 2M\n", 7, "no room for one chunk of 4.0 MiB" },
	{ "[volume]\nname = v\nchunk_size = 1M\n[tier a]\npath=/a\nclass=ssd\ncapacity = 1M\nhigh_watermark = 50%\nlow_watermark = 50%\n", 7, "high_watermark = 50% has no room" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\ncapacity=0x10G\n", 6, "capacity = 0x10G" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\ncapacity=1e3G\n", 6, "capacity = 1e3G" },
	{ "[volume]\nname = v\n[placement]\nrate = 1M\n[tier a]\npath=/a\nclass=ssd\n", 4,
	  "[placement] busy_rate (8.0 MiB/s) is above rate (1.0 MiB/s)" }, /* it named no line */
	{ "[volume]\nname = v\n[placement]\nepoch = 5s\nepoch = 10s\n[tier a]\npath=/a\nclass=ssd\n", 5,
	  "epoch is set twice in [placement], at lines 4 and 5" },
	{ "[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\nwrite_promote = no\nwrite_promote = yes\n", 7,
	  "write_promote is set twice" },
};

/* Comments, indentation, a BOM and CRLF line ends are read the way an admin
 * means them. */
static void test_lexing(void **state)
{
	struct silt_config cfg;
	char err[512];
	int r = load("\xEF\xBB\xBF[tier fast]   ; first, before [volume] (used to crash)\n"
		     "    path = /srv/a#1   # '#' inside a value stays, after a space it starts a comment\n"
		     "    class = nvme ; inline\n"
		     "\tcapacity = 64M\t;\ttabs\n"
		     "[volume]\r\n"
		     "  name = vm\r\n"
		     "  chunk_size = 128K # indented keys are keys, not continuations\r\n"
		     "# a comment line\n"
		     "; another\n",
		     &cfg, err, sizeof(err));
	if (r)
		fail_msg("%s", err);
	assert_string_equal(cfg.name, "vm");
	assert_int_equal(cfg.chunk_size, 128 * 1024);
	assert_int_equal(cfg.ntiers, 1);
	assert_string_equal(cfg.tiers[0].name, "fast");
	assert_string_equal(cfg.tiers[0].path, "/srv/a#1");
	assert_int_equal(cfg.tiers[0].cls, SILT_CLASS_NVME);
	assert_int_equal(cfg.tiers[0].capacity, 64ull << 20);
	assert_int_equal(cfg.tiers[0].path_line, 2);
	assert_int_equal(cfg.tiers[0].capacity_line, 4);
}

/* The longest line the parser takes is 198 characters ("path = " and 191);
 * one more is refused, not split in two. */
static void test_long_path(void **state)
{
	struct silt_config cfg;
	char err[512], text[512], longpath[193];

	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[191] = '\0';
	snprintf(text, sizeof(text), "[volume]\nname = v\n[tier a]\nclass = ssd\npath = %s\n", longpath);
	if (load(text, &cfg, err, sizeof(err)))
		fail_msg("%s", err);
	assert_string_equal(cfg.tiers[0].path, longpath);
	longpath[191] = 'p';
	longpath[192] = '\0';
	snprintf(text, sizeof(text), "[volume]\nname = v\n[tier a]\nclass = ssd\npath = %s\n", longpath);
	assert_int_not_equal(load(text, &cfg, err, sizeof(err)), 0);
	assert_non_null(strstr(err, ":5: line too long: 199 characters"));
}

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
	assert_int_not_equal(silt_parse_size("0x10K", &v), 0);
	assert_int_not_equal(silt_parse_size("1e3", &v), 0);
	assert_int_not_equal(silt_parse_size("1.5.3G", &v), 0);
	assert_int_equal(silt_parse_size("0.5K", &v), 0);
	assert_int_equal(v, 512);
}

/* A rule's keys one by one, and the whole against the tiers, as siltctl
 * policy rule add has them checked (a live rule's errors name no line). */
static void test_rule_keys(void **state)
{
	struct silt_config cfg;
	struct silt_rule_conf r;
	char err[512];

	assert_int_equal(load("[volume]\nname = v\n[tier a]\npath=/a\nclass=ssd\n[tier b]\npath=/b\nclass=hdd\n"
			      "[rule c]\nmatch = x/*\nweight = 5\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.rules[0].weight, 5);
	silt_rule_init(&r, "live");
	assert_int_equal(r.weight, 1);
	assert_int_equal(r.compress, 1);
	assert_int_equal(silt_rule_key(&r, "weight", "100", err, sizeof(err)), 0);
	assert_int_equal(r.weight, 100);
	assert_int_equal(silt_rule_key(&r, "weight", "101", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "weight = 101"));
	assert_int_equal(silt_rule_key(&r, "match", "[ab", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a glob"));
	assert_int_equal(silt_rule_check(&cfg, &r, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "rule live: has no match = GLOB");
	assert_int_equal(silt_rule_key(&r, "match", "y/*", err, sizeof(err)), 0);
	assert_int_equal(silt_rule_key(&r, "pin", "z", err, sizeof(err)), 0);
	assert_int_equal(silt_rule_check(&cfg, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "rule live: pin = z: no such tier"));
	assert_int_equal(silt_rule_key(&r, "pin", "b", err, sizeof(err)), 0);
	assert_int_equal(silt_rule_check(&cfg, &r, err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_lexing),
		cmocka_unit_test(test_long_path),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_rule_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
