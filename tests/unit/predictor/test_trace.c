/*
 * test_trace.c - trace loading (plain and gzip), block expansion, next-use
 * links for Belady, the time split, and refusal of malformed lines.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "predictor/trace.h"

static const char csv[] =
	"timestamp_us,op,offset_bytes,length_bytes,volume_id\n"
	"0,W,4096,8192,0\n"        /* blocks 1, 2 */
	"10,R,4000,200,0\n"        /* blocks 0, 1 (crosses a boundary) */
	"20,R,8192,4096,1\n"       /* block 2 of volume 1 */
	"100,r,12288,1,0\n";       /* block 3 */

static void write_file(const char *path, const char *text, int gz)
{
	if (gz) {
		gzFile f = gzopen(path, "wb");
		assert_non_null(f);
		assert_int_equal(gzwrite(f, text, (unsigned)strlen(text)), (int)strlen(text));
		gzclose(f);
	} else {
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(text, f);
		fclose(f);
	}
}

static void check(int gz)
{
	char path[] = "/tmp/silt-trace-XXXXXX";
	int fd = mkstemp(path);
	struct trace *t;

	assert_true(fd >= 0);
	close(fd);
	write_file(path, csv, gz);
	assert_int_equal(trace_load(path, 0, &t), 0);
	assert_int_equal(t->nreq, 4);
	assert_int_equal(t->req[1].op, TRACE_READ);
	assert_int_equal(t->req[0].op, TRACE_WRITE);
	assert_int_equal(t->req[3].op, TRACE_READ);
	assert_int_equal(t->req[2].vol, 1);
	assert_int_equal(trace_expand(t, 4096), 0);
	assert_int_equal(t->nblk, 6);
	uint64_t want[6] = { TRACE_KEY(0, 1), TRACE_KEY(0, 2), TRACE_KEY(0, 0),
			     TRACE_KEY(0, 1), TRACE_KEY(1, 2), TRACE_KEY(0, 3) };
	for (int i = 0; i < 6; i++)
		assert_true(t->bkey[i] == want[i]);
	assert_int_equal(t->bnext[0], 3); /* block 1 comes back at index 3 */
	assert_int_equal(t->bnext[1], TRACE_NO_NEXT);
	assert_int_equal(t->bnext[3], TRACE_NO_NEXT);
	assert_int_equal(t->distinct, 5);
	assert_int_equal(t->req_first[2], 4);
	assert_int_equal(t->req_first[4], 6);
	/* time split: 80% of 100 us = 80: only the last request is after */
	assert_int_equal(trace_split(t, 0.8), 3);
	assert_int_equal(trace_split(t, 0), 0);
	assert_int_equal(trace_split(t, 1), 4);
	assert_int_equal(trace_expand(t, 3000), -EINVAL);
	trace_free(t);
	/* max_req */
	assert_int_equal(trace_load(path, 2, &t), 0);
	assert_int_equal(t->nreq, 2);
	trace_free(t);
	unlink(path);
}

static void test_plain(void **state) { (void)state; check(0); }
static void test_gzip(void **state) { (void)state; check(1); }

static void test_malformed(void **state)
{
	(void)state;
	char path[] = "/tmp/silt-trace-XXXXXX";
	int fd = mkstemp(path);
	struct trace *t;

	assert_true(fd >= 0);
	close(fd);
	write_file(path, "0,X,0,4096,0\n", 0);
	assert_int_equal(trace_load(path, 0, &t), -EBADMSG);
	write_file(path, "0,R,0\n", 0);
	assert_int_equal(trace_load(path, 0, &t), -EBADMSG);
	write_file(path, "0,R,0,99999999999,0\n", 0);
	assert_int_equal(trace_load(path, 0, &t), -EBADMSG);
	unlink(path);
	assert_true(trace_load("/nonexistent/trace.csv", 0, &t) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
