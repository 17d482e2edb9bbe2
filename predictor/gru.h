/*
 * gru.h - a GRU layer with a linear read-out, trained by backpropagation
 * through time and Adam, in plain C.
 *
 * One model = GRU cell (n_in -> n_hidden) + linear head (n_hidden -> n_out).
 * The head's loss is either per-output sigmoid + binary cross-entropy
 * (placement: "is this region reused soon") or softmax + cross-entropy
 * (prefetch: "which delta comes next").
 *
 * Inference (gru_step) only reads the weights, so several threads may run
 * it at once; training needs a gru_work_t (gradients, Adam moments and the
 * BPTT cache) and exclusive access to the weights it updates.  The usual
 * pattern is a private training copy published with gru_copy_weights().
 *
 * Serialised form (little endian), version GRU_FORMAT_VERSION:
 *   "SGRU" u16 version u16 loss u32 n_in u32 n_hidden u32 n_out
 *   u32 n_params  f32 params[n_params]  u32 crc32(all preceding bytes)
 */
#ifndef SILTFS_PREDICTOR_GRU_H
#define SILTFS_PREDICTOR_GRU_H

#include <stddef.h>
#include <stdint.h>

#define GRU_FORMAT_VERSION 1

enum gru_loss { GRU_LOSS_BCE = 1, GRU_LOSS_SOFTMAX = 2 };

struct gru_shape {
	uint32_t n_in, n_hidden, n_out;
	enum gru_loss loss;
};

typedef struct gru gru_t;
typedef struct gru_work gru_work_t;

/* Weights drawn uniformly in +-1/sqrt(n_hidden) from 'seed'.
 * -EINVAL on a zero or oversized dimension, -ENOMEM. */
int gru_create(const struct gru_shape *shape, uint64_t seed, gru_t **out);
void gru_destroy(gru_t *g);
void gru_get_shape(const gru_t *g, struct gru_shape *shape);
size_t gru_param_count(const gru_t *g);

/* One step: h_out = GRU(x, h_in).  y_out (n_out logits) may be NULL.
 * h_out may alias h_in. */
void gru_step(const gru_t *g, const float *x, const float *h_in, float *h_out,
	      float *y_out);
/* Head only: logits from a hidden state. */
void gru_head(const gru_t *g, const float *h, float *y_out);

/* Copy all weights from src to dst (same shape, else -EINVAL). */
int gru_copy_weights(gru_t *dst, const gru_t *src);
/* A new model of src's shape holding src's weights (a training copy). */
int gru_clone(const gru_t *src, gru_t **out);

/* Training workspace for sequences up to max_t steps. */
int gru_work_create(const gru_t *g, uint32_t max_t, gru_work_t **out);
void gru_work_destroy(gru_work_t *w);

/*
 * Forward and backward over one sequence of T steps starting from hidden
 * state h0 (NULL = zeros); gradients add up in w until gru_adam_step().
 * x: T * n_in inputs.  target: for BCE, T * n_out values in {0..1}, a
 * negative value masks that output; for SOFTMAX, T class indices stored as
 * floats, negative = no loss at that step.  Returns the summed loss in
 * *loss and the number of scored outputs in *count (either may be NULL).
 * -EINVAL if T is 0 or above max_t.
 */
int gru_accumulate(gru_t *g, gru_work_t *w, const float *h0, const float *x,
		   const float *target, uint32_t T, double *loss,
		   uint32_t *count);

/* Apply Adam with learning rate lr to the mean gradient over 'count'
 * scored outputs (gradient norm clipped at 5), then clear the gradients. */
void gru_adam_step(gru_t *g, gru_work_t *w, float lr, uint32_t count);

/* Raw access for tests and tooling (finite differences, inspection). */
float *gru_params(gru_t *g);
const float *gru_work_grad(const gru_work_t *w);
void gru_work_zero(gru_work_t *w);

/* Serialisation.  gru_save writes at most cap bytes and sets *len to the
 * size needed (call with cap 0 to ask); -ENOSPC if cap is too small.
 * gru_load refuses (without touching g) another version (-EPROTO), another
 * shape (-EINVAL), a truncated or corrupt buffer (-EBADMSG), and explains
 * why in err (if non-NULL). */
int gru_save(const gru_t *g, void *buf, size_t cap, size_t *len);
int gru_load(gru_t *g, const void *buf, size_t len, char *err, size_t errlen);

#endif
