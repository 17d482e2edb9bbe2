/*
 * trace.c - load and expand block traces (see trace.h).
 *
 * zlib's gzgets reads both compressed and plain files, so one path serves
 * both.  Parsing is hand written (strtoull on the fields) because the w106
 * trace has 5.3 million lines and sscanf would dominate the load time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "predictor/pred_util.h"
#include "predictor/trace.h"

static int parse_line(char *s, struct trace_req *r)
{
	char *e;

	r->ts_us = strtoull(s, &e, 10);
	if (e == s || *e != ',')
		return -EBADMSG;
	s = e + 1;
	if (*s == 'R' || *s == 'r')
		r->op = TRACE_READ;
	else if (*s == 'W' || *s == 'w')
		r->op = TRACE_WRITE;
	else
		return -EBADMSG;
	s++;
	if (*s != ',')
		return -EBADMSG;
	s++;
	r->offset = strtoull(s, &e, 10);
	if (e == s || *e != ',')
		return -EBADMSG;
	s = e + 1;
	unsigned long long len = strtoull(s, &e, 10);
	if (e == s || *e != ',' || len > UINT32_MAX)
		return -EBADMSG;
	r->len = (uint32_t)len;
	s = e + 1;
	unsigned long long vol = strtoull(s, &e, 10);
	if (e == s || vol > 0xfffffff)
		return -EBADMSG;
	r->vol = (uint32_t)vol;
	return 0;
}

int trace_load(const char *path, size_t max_req, struct trace **out)
{
	gzFile f = gzopen(path, "rb");
	char line[512];
	size_t cap = 1 << 16;
	int rc = 0;

	if (!f)
		return errno ? -errno : -ENOMEM;
	gzbuffer(f, 1 << 20);
	struct trace *t = calloc(1, sizeof(*t));
	if (!t || !(t->req = malloc(cap * sizeof(*t->req)))) {
		free(t);
		gzclose(f);
		return -ENOMEM;
	}
	while (gzgets(f, line, sizeof(line))) {
		if (line[0] < '0' || line[0] > '9')
			continue; /* header or blank line */
		if (t->nreq == cap) {
			struct trace_req *n = realloc(t->req, 2 * cap * sizeof(*n));
			if (!n) {
				rc = -ENOMEM;
				break;
			}
			t->req = n;
			cap *= 2;
		}
		rc = parse_line(line, &t->req[t->nreq]);
		if (rc)
			break;
		if (++t->nreq == max_req)
			break;
	}
	int err;
	const char *msg = gzerror(f, &err);
	(void)msg;
	if (!rc && err != Z_OK && err != Z_STREAM_END)
		rc = -EIO;
	gzclose(f);
	if (rc) {
		trace_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

int trace_expand(struct trace *t, uint32_t bs)
{
	size_t n = 0;

	if (bs == 0 || (bs & (bs - 1)))
		return -EINVAL;
	int shift = __builtin_ctz(bs);
	for (size_t i = 0; i < t->nreq; i++) {
		uint64_t len = t->req[i].len ? t->req[i].len : 1;
		n += ((t->req[i].offset + len - 1) >> shift) -
		     (t->req[i].offset >> shift) + 1;
	}
	if (n >= TRACE_NO_NEXT)
		return -E2BIG;
	free(t->bkey);
	free(t->bnext);
	free(t->req_first);
	t->bkey = malloc(n * sizeof(*t->bkey));
	t->bnext = malloc(n * sizeof(*t->bnext));
	t->req_first = malloc((t->nreq + 1) * sizeof(*t->req_first));
	if (!t->bkey || !t->bnext || !t->req_first)
		return -ENOMEM;
	size_t j = 0;
	for (size_t i = 0; i < t->nreq; i++) {
		uint64_t len = t->req[i].len ? t->req[i].len : 1;
		uint64_t b0 = t->req[i].offset >> shift;
		uint64_t b1 = (t->req[i].offset + len - 1) >> shift;
		t->req_first[i] = j;
		for (uint64_t b = b0; b <= b1; b++)
			t->bkey[j++] = TRACE_KEY(t->req[i].vol, b);
	}
	t->req_first[t->nreq] = j;
	t->nblk = n;
	t->block_size = bs;

	/* Backward pass: last[key] = the most recent (in reverse) index. */
	struct pu_map last;
	int rc = pu_map_init(&last, 1 << 20);
	if (rc)
		return rc;
	for (size_t i = n; i-- > 0;) {
		uint32_t nx = pu_map_get(&last, t->bkey[i]);
		t->bnext[i] = nx == PU_NIL ? TRACE_NO_NEXT : nx;
		rc = pu_map_put(&last, t->bkey[i], (uint32_t)i);
		if (rc) {
			pu_map_free(&last);
			return rc;
		}
	}
	t->distinct = last.count;
	pu_map_free(&last);
	return 0;
}

size_t trace_split(const struct trace *t, double frac)
{
	if (t->nreq == 0 || frac <= 0)
		return 0;
	if (frac >= 1)
		return t->nreq;
	uint64_t t0 = t->req[0].ts_us, t1 = t->req[t->nreq - 1].ts_us;
	uint64_t cut = t0 + (uint64_t)(frac * (double)(t1 - t0));
	size_t lo = 0, hi = t->nreq;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (t->req[mid].ts_us < cut)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void trace_free(struct trace *t)
{
	if (!t)
		return;
	free(t->req);
	free(t->bkey);
	free(t->bnext);
	free(t->req_first);
	free(t);
}
