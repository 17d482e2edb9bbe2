/*
 * gru.c - GRU cell + linear head: forward, BPTT, Adam, serialisation.
 *
 * Data layout: all parameters in one flat float array, so that Adam, the
 * gradient, copying and serialising are single loops over n_params:
 *
 *   Wx[3H][I]  input weights, gate blocks in order z (update), r (reset), n
 *   Wh[3H][H]  recurrent weights, same order
 *   bx[3H], bh[3H]  biases (two sets, as in cuDNN/PyTorch: bh's n block sits
 *                   inside the reset gate, which the equations need)
 *   Wo[O][H], bo[O]  the read-out head
 *
 *   z = sig(Wx_z x + bx_z + Wh_z h + bh_z)
 *   r = sig(Wx_r x + bx_r + Wh_r h + bh_r)
 *   n = tanh(Wx_n x + bx_n + r * (Wh_n h + bh_n))
 *   h' = (1 - z) * n + z * h,     y = Wo h' + bo
 *
 * Matrices are row major and every inner loop is a contiguous dot product or
 * axpy over restrict pointers, which gcc -O3 vectorises.  Sizes here are
 * small (H = 8..32), so no blocking: the win is in doing little work per
 * access, not in FLOP rate.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "predictor/gru.h"
#include "predictor/pred_util.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the serialised format is written as little endian memory");

#define GRU_MAX_DIM 4096
#define GRU_CLIP 5.0f

struct gru {
	struct gru_shape s;
	size_t n_params;
	float *p;
	/* Views into p. */
	float *wx, *wh, *bx, *bh, *wo, *bo;
};

struct gru_work {
	uint32_t max_t;
	size_t n_params;
	float *grad, *m, *v;
	uint64_t adam_t;
	/* BPTT cache, max_t steps. */
	float *xs, *hs, *zs, *rs, *ns, *ghn, *dy;
	float *dh, *dh_prev, *dg; /* scratch */
};

static void gru_views(gru_t *g)
{
	size_t I = g->s.n_in, H = g->s.n_hidden;

	g->wx = g->p;
	g->wh = g->wx + 3 * H * I;
	g->bx = g->wh + 3 * H * H;
	g->bh = g->bx + 3 * H;
	g->wo = g->bh + 3 * H;
	g->bo = g->wo + (size_t)g->s.n_out * H;
}

static size_t count_params(const struct gru_shape *s)
{
	size_t I = s->n_in, H = s->n_hidden, O = s->n_out;

	return 3 * H * I + 3 * H * H + 6 * H + O * H + O;
}

int gru_create(const struct gru_shape *shape, uint64_t seed, gru_t **out)
{
	if (!shape->n_in || !shape->n_hidden || !shape->n_out ||
	    shape->n_in > GRU_MAX_DIM || shape->n_hidden > GRU_MAX_DIM ||
	    shape->n_out > GRU_MAX_DIM ||
	    (shape->loss != GRU_LOSS_BCE && shape->loss != GRU_LOSS_SOFTMAX))
		return -EINVAL;
	gru_t *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->s = *shape;
	g->n_params = count_params(shape);
	g->p = calloc(g->n_params, sizeof(float));
	if (!g->p) {
		free(g);
		return -ENOMEM;
	}
	gru_views(g);
	uint64_t rng = seed ^ 0x5111f5ULL;
	float a = 1.0f / sqrtf((float)shape->n_hidden);
	for (size_t i = 0; i < g->n_params; i++)
		g->p[i] = (2.0f * pu_rng_float(&rng) - 1.0f) * a;
	/* Biases start at zero, except the update gate's, which starts
	 * slightly positive so that early on the cell keeps its state. */
	size_t H = shape->n_hidden;
	memset(g->bx, 0, 6 * H * sizeof(float));
	for (size_t i = 0; i < H; i++)
		g->bx[i] = 0.5f;
	memset(g->bo, 0, shape->n_out * sizeof(float));
	*out = g;
	return 0;
}

void gru_destroy(gru_t *g)
{
	if (!g)
		return;
	free(g->p);
	free(g);
}

void gru_get_shape(const gru_t *g, struct gru_shape *shape) { *shape = g->s; }
size_t gru_param_count(const gru_t *g) { return g->n_params; }
float *gru_params(gru_t *g) { return g->p; }

static inline float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

/* tanh through one expf: libm's tanhf (via expm1f) was a sixth of the
 * prefetcher's time.  Absolute error ~1e-7, and training uses the same
 * function, so gradients stay exact for the function computed.  Saturates
 * cleanly: expf overflow gives 1, underflow -1. */
static inline float fast_tanh(float x) { return 1.0f - 2.0f / (expf(2.0f * x) + 1.0f); }

static inline float dot(const float *restrict a, const float *restrict b, size_t n)
{
	float s = 0;

	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static inline void axpy(float *restrict y, float a, const float *restrict x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

/* Gate pre-activations: gx = Wx x + bx, gh = Wh h + bh (3H each).
 * Inputs are often mostly zeros (the prefetcher's one-hot delta class, an
 * idle region's features), so when at most a quarter of x is non-zero the
 * input product only visits those columns: 4 instead of 19 for the
 * prefetcher, the bulk of its per-request cost. */
static void gru_gates(const gru_t *g, const float *x, const float *h,
		      float *gx, float *gh)
{
	size_t I = g->s.n_in, H = g->s.n_hidden;
	uint16_t nz[64];
	size_t nnz = 0;

	if (I <= 256) {
		for (size_t k = 0; k < I && nnz < 64; k++)
			if (x[k] != 0.0f)
				nz[nnz++] = (uint16_t)k;
	}
	int sparse = I <= 256 && nnz * 4 <= I;
	for (size_t j = 0; j < 3 * H; j++) {
		const float *w = g->wx + j * I;
		float s = g->bx[j];
		if (sparse) {
			for (size_t k = 0; k < nnz; k++)
				s += w[nz[k]] * x[nz[k]];
		} else {
			s += dot(w, x, I);
		}
		gx[j] = s;
		gh[j] = g->bh[j] + dot(g->wh + j * H, h, H);
	}
}

void gru_head(const gru_t *g, const float *h, float *y)
{
	size_t H = g->s.n_hidden;

	for (size_t o = 0; o < g->s.n_out; o++)
		y[o] = g->bo[o] + dot(g->wo + o * H, h, H);
}

void gru_step(const gru_t *g, const float *x, const float *h_in, float *h_out,
	      float *y_out)
{
	size_t H = g->s.n_hidden;
	float gx[3 * 64], gh[3 * 64];
	float *gxp = gx, *ghp = gh;
	float *heap = NULL;

	/* Small models (the ones siltfs uses) stay on the stack. */
	if (H > 64) {
		heap = malloc(6 * H * sizeof(float));
		if (!heap)
			abort(); /* inference cannot report errors; tiny allocation */
		gxp = heap;
		ghp = heap + 3 * H;
	}
	gru_gates(g, x, h_in, gxp, ghp);
	for (size_t i = 0; i < H; i++) {
		float z = sigm(gxp[i] + ghp[i]);
		float r = sigm(gxp[H + i] + ghp[H + i]);
		float n = fast_tanh(gxp[2 * H + i] + r * ghp[2 * H + i]);
		h_out[i] = (1.0f - z) * n + z * h_in[i];
	}
	free(heap);
	if (y_out)
		gru_head(g, h_out, y_out);
}

int gru_copy_weights(gru_t *dst, const gru_t *src)
{
	if (memcmp(&dst->s, &src->s, sizeof(dst->s)) != 0)
		return -EINVAL;
	memcpy(dst->p, src->p, src->n_params * sizeof(float));
	return 0;
}

int gru_clone(const gru_t *src, gru_t **out)
{
	gru_t *g;
	int rc = gru_create(&src->s, 0, &g);

	if (rc)
		return rc;
	gru_copy_weights(g, src); /* same shape by construction */
	*out = g;
	return 0;
}

/* ---- training ---------------------------------------------------------- */

void gru_work_destroy(gru_work_t *w)
{
	if (!w)
		return;
	free(w->grad);
	free(w->m);
	free(w->v);
	free(w->xs);
	free(w->hs);
	free(w->zs);
	free(w->rs);
	free(w->ns);
	free(w->ghn);
	free(w->dy);
	free(w->dh);
	free(w->dh_prev);
	free(w->dg);
	free(w);
}

int gru_work_create(const gru_t *g, uint32_t max_t, gru_work_t **out)
{
	size_t I = g->s.n_in, H = g->s.n_hidden, O = g->s.n_out, T = max_t;

	if (max_t == 0 || max_t > 1 << 16)
		return -EINVAL;
	gru_work_t *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->max_t = max_t;
	w->n_params = g->n_params;
	w->grad = calloc(g->n_params, sizeof(float));
	w->m = calloc(g->n_params, sizeof(float));
	w->v = calloc(g->n_params, sizeof(float));
	w->xs = calloc(T * I, sizeof(float));
	w->hs = calloc((T + 1) * H, sizeof(float));
	w->zs = calloc(T * H, sizeof(float));
	w->rs = calloc(T * H, sizeof(float));
	w->ns = calloc(T * H, sizeof(float));
	w->ghn = calloc(T * H, sizeof(float));
	w->dy = calloc(T * O, sizeof(float));
	w->dh = calloc(H, sizeof(float));
	w->dh_prev = calloc(H, sizeof(float));
	w->dg = calloc(6 * H, sizeof(float));
	if (!w->grad || !w->m || !w->v || !w->xs || !w->hs || !w->zs ||
	    !w->rs || !w->ns || !w->ghn || !w->dy || !w->dh || !w->dh_prev ||
	    !w->dg) {
		gru_work_destroy(w);
		return -ENOMEM;
	}
	*out = w;
	return 0;
}

const float *gru_work_grad(const gru_work_t *w) { return w->grad; }

void gru_work_zero(gru_work_t *w)
{
	memset(w->grad, 0, w->n_params * sizeof(float));
}

/* Loss and dL/dlogits for one step; returns the number of scored outputs. */
static uint32_t step_loss(const gru_t *g, const float *y, const float *target,
			  float *dy, double *loss)
{
	size_t O = g->s.n_out;
	uint32_t n = 0;

	if (g->s.loss == GRU_LOSS_BCE) {
		for (size_t o = 0; o < O; o++) {
			if (target[o] < 0) {
				dy[o] = 0;
				continue;
			}
			float p = sigm(y[o]);
			/* log(sigmoid) computed stably from the logit */
			float l = fmaxf(y[o], 0) - y[o] * target[o] +
				  log1pf(expf(-fabsf(y[o])));
			*loss += l;
			dy[o] = p - target[o];
			n++;
		}
		return n;
	}
	int c = (int)target[0];
	if (target[0] < 0 || c >= (int)O) {
		memset(dy, 0, O * sizeof(float));
		return 0;
	}
	float mx = y[0];
	for (size_t o = 1; o < O; o++)
		mx = fmaxf(mx, y[o]);
	float sum = 0;
	for (size_t o = 0; o < O; o++) {
		dy[o] = expf(y[o] - mx);
		sum += dy[o];
	}
	for (size_t o = 0; o < O; o++)
		dy[o] /= sum;
	*loss += -logf(fmaxf(dy[c], 1e-30f));
	dy[c] -= 1.0f;
	return 1;
}

int gru_accumulate(gru_t *g, gru_work_t *w, const float *h0, const float *x,
		   const float *target, uint32_t T, double *loss_out,
		   uint32_t *count_out)
{
	size_t I = g->s.n_in, H = g->s.n_hidden, O = g->s.n_out;
	size_t tstride = g->s.loss == GRU_LOSS_BCE ? O : 1;
	double loss = 0;
	uint32_t count = 0;
	float y[GRU_MAX_DIM];

	if (T == 0 || T > w->max_t || w->n_params != g->n_params)
		return -EINVAL;
	if (h0)
		memcpy(w->hs, h0, H * sizeof(float));
	else
		memset(w->hs, 0, H * sizeof(float));
	memcpy(w->xs, x, (size_t)T * I * sizeof(float));

	/* Forward, caching what the backward pass needs. */
	float *gx = w->dg, *gh = w->dg + 3 * H;
	for (uint32_t t = 0; t < T; t++) {
		const float *hp = w->hs + t * H;
		float *hn = w->hs + (t + 1) * H;
		gru_gates(g, w->xs + t * I, hp, gx, gh);
		for (size_t i = 0; i < H; i++) {
			float z = sigm(gx[i] + gh[i]);
			float r = sigm(gx[H + i] + gh[H + i]);
			float n = fast_tanh(gx[2 * H + i] + r * gh[2 * H + i]);
			w->zs[t * H + i] = z;
			w->rs[t * H + i] = r;
			w->ns[t * H + i] = n;
			w->ghn[t * H + i] = gh[2 * H + i];
			hn[i] = (1.0f - z) * n + z * hp[i];
		}
		gru_head(g, hn, y);
		count += step_loss(g, y, target + t * tstride, w->dy + t * O, &loss);
	}

	/* Backward through time. */
	float *gwx = w->grad, *gwh = gwx + 3 * H * I, *gbx = gwh + 3 * H * H;
	float *gbh = gbx + 3 * H, *gwo = gbh + 3 * H, *gbo = gwo + O * H;
	float *dh = w->dh, *dgx = w->dg, *dgh = w->dg + 3 * H;
	memset(w->dh_prev, 0, H * sizeof(float));
	for (uint32_t t = T; t-- > 0;) {
		const float *hp = w->hs + t * H, *ht = w->hs + (t + 1) * H;
		const float *dy = w->dy + t * O;
		memcpy(dh, w->dh_prev, H * sizeof(float));
		for (size_t o = 0; o < O; o++) {
			if (dy[o] == 0)
				continue;
			axpy(dh, dy[o], g->wo + o * H, H);
			axpy(gwo + o * H, dy[o], ht, H);
			gbo[o] += dy[o];
		}
		for (size_t i = 0; i < H; i++) {
			float z = w->zs[t * H + i], r = w->rs[t * H + i];
			float n = w->ns[t * H + i];
			float dz = dh[i] * (hp[i] - n);
			float dn = dh[i] * (1.0f - z);
			float dan = dn * (1.0f - n * n);
			float dar = dan * w->ghn[t * H + i] * r * (1.0f - r);
			float daz = dz * z * (1.0f - z);
			dgx[i] = daz;
			dgx[H + i] = dar;
			dgx[2 * H + i] = dan;
			dgh[i] = daz;
			dgh[H + i] = dar;
			dgh[2 * H + i] = dan * r;
			w->dh_prev[i] = dh[i] * z;
		}
		const float *xt = w->xs + t * I;
		for (size_t j = 0; j < 3 * H; j++) {
			axpy(gwx + j * I, dgx[j], xt, I);
			axpy(gwh + j * H, dgh[j], hp, H);
			gbx[j] += dgx[j];
			gbh[j] += dgh[j];
			axpy(w->dh_prev, dgh[j], g->wh + j * H, H);
		}
	}
	if (loss_out)
		*loss_out = loss;
	if (count_out)
		*count_out = count;
	return 0;
}

void gru_adam_step(gru_t *g, gru_work_t *w, float lr, uint32_t count)
{
	const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
	size_t n = g->n_params;
	float scale = 1.0f / (float)(count ? count : 1);
	double norm2 = 0;

	for (size_t i = 0; i < n; i++)
		norm2 += (double)(w->grad[i] * scale) * (w->grad[i] * scale);
	float norm = (float)sqrt(norm2);
	if (norm > GRU_CLIP)
		scale *= GRU_CLIP / norm;
	w->adam_t++;
	float c1 = 1.0f - powf(b1, (float)w->adam_t);
	float c2 = 1.0f - powf(b2, (float)w->adam_t);
	float step = lr * sqrtf(c2) / c1;
	float *restrict p = g->p, *restrict m = w->m, *restrict v = w->v;
	const float *restrict gr = w->grad;
	for (size_t i = 0; i < n; i++) {
		float gi = gr[i] * scale;
		m[i] = b1 * m[i] + (1.0f - b1) * gi;
		v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
		p[i] -= step * m[i] / (sqrtf(v[i]) + eps);
	}
	gru_work_zero(w);
}

/* ---- serialisation ------------------------------------------------------- */

#define GRU_HDR 24 /* magic, version, loss, n_in, n_hidden, n_out, n_params */

int gru_save(const gru_t *g, void *buf, size_t cap, size_t *len)
{
	size_t need = GRU_HDR + g->n_params * sizeof(float) + 4;
	uint8_t *b = buf;

	*len = need;
	if (cap < need)
		return -ENOSPC;
	uint16_t ver = GRU_FORMAT_VERSION, loss = (uint16_t)g->s.loss;
	uint32_t np = (uint32_t)g->n_params;
	memcpy(b, "SGRU", 4);
	memcpy(b + 4, &ver, 2);
	memcpy(b + 6, &loss, 2);
	memcpy(b + 8, &g->s.n_in, 4);
	memcpy(b + 12, &g->s.n_hidden, 4);
	memcpy(b + 16, &g->s.n_out, 4);
	memcpy(b + 20, &np, 4);
	memcpy(b + GRU_HDR, g->p, g->n_params * sizeof(float));
	uint32_t crc = (uint32_t)crc32(0, b, (uInt)(need - 4));
	memcpy(b + need - 4, &crc, 4);
	return 0;
}

int gru_load(gru_t *g, const void *buf, size_t len, char *err, size_t errlen)
{
	const uint8_t *b = buf;
	uint16_t ver, loss;
	uint32_t in, hid, outn, np, crc;

	if (!err)
		errlen = 0;
	if (len < GRU_HDR + 4 || memcmp(b, "SGRU", 4) != 0) {
		if (errlen)
			snprintf(err, errlen, "not a GRU model (bad magic or %zu bytes)", len);
		return -EBADMSG;
	}
	memcpy(&ver, b + 4, 2);
	if (ver != GRU_FORMAT_VERSION) {
		if (errlen)
			snprintf(err, errlen, "GRU model format version %u, this build reads %u",
				 ver, GRU_FORMAT_VERSION);
		return -EPROTO;
	}
	memcpy(&loss, b + 6, 2);
	memcpy(&in, b + 8, 4);
	memcpy(&hid, b + 12, 4);
	memcpy(&outn, b + 16, 4);
	memcpy(&np, b + 20, 4);
	if (in != g->s.n_in || hid != g->s.n_hidden || outn != g->s.n_out ||
	    loss != (uint16_t)g->s.loss || np != g->n_params) {
		if (errlen)
			snprintf(err, errlen,
				 "GRU model shape %ux%ux%u (loss %u) does not match %ux%ux%u (loss %u)",
				 in, hid, outn, loss, g->s.n_in, g->s.n_hidden,
				 g->s.n_out, (unsigned)g->s.loss);
		return -EINVAL;
	}
	size_t need = GRU_HDR + (size_t)np * sizeof(float) + 4;
	if (len != need) {
		if (errlen)
			snprintf(err, errlen, "GRU model is %zu bytes, expected %zu", len, need);
		return -EBADMSG;
	}
	memcpy(&crc, b + need - 4, 4);
	if (crc != (uint32_t)crc32(0, b, (uInt)(need - 4))) {
		if (errlen)
			snprintf(err, errlen, "GRU model checksum mismatch");
		return -EBADMSG;
	}
	memcpy(g->p, b + GRU_HDR, (size_t)np * sizeof(float));
	return 0;
}
