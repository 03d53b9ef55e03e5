/* AdamW with decoupled weight decay (PyTorch's torch.optim.AdamW update
 * order), global gradient-norm clipping, and the learning-rate schedule:
 * linear warmup then cosine decay to min_lr. */
#ifndef EWA_OPTIM_H
#define EWA_OPTIM_H
#include <stddef.h>
#include "vit.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int t;                 /* steps taken so far */
} AdamW;

/* One step over every tensor of specs (weight decay only where spec.decay). */
void adamw_step(AdamW *opt, float *params, const float *grads, float *m, float *v,
                const ParamSpec *specs, int n_specs);

/* L2 norm of all gradients (accumulated in double). */
double grad_norm(const float *grads, size_t n);
/* Scales grads so their norm is at most max_norm (PyTorch clip_grad_norm_:
 * coef = max_norm / (norm + 1e-6), applied when < 1). Returns the norm before
 * clipping. max_norm <= 0 only measures. */
double clip_grad_norm(float *grads, size_t n, float max_norm);

/* Learning rate at optimizer step `step` (0-based) of total_steps: linear
 * warmup from lr/warmup_steps up to lr over warmup_steps, then cosine from lr
 * to min_lr. */
float lr_at(long step, long total_steps, long warmup_steps, float lr, float min_lr);

#endif
