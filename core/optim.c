#include "optim.h"
#include <math.h>
#include <omp.h>

void adamw_step(AdamW *opt, float *params, const float *grads, float *m, float *v,
                const ParamSpec *specs, int n_specs) {
    opt->t++;
    float b1 = opt->beta1, b2 = opt->beta2, lr = opt->lr, eps = opt->eps;
    float bc1 = 1.0f - powf(b1, (float)opt->t);
    float bc2_sqrt = sqrtf(1.0f - powf(b2, (float)opt->t));
    float step_size = lr / bc1;
    for (int s = 0; s < n_specs; s++) {
        size_t off = specs[s].offset, n = specs[s].numel;
        float decay = specs[s].decay ? 1.0f - lr * opt->weight_decay : 1.0f;
        float *p = params + off, *mm = m + off, *vv = v + off;
        const float *g = grads + off;
        #pragma omp parallel for schedule(static) if (n > 4096)
        for (size_t i = 0; i < n; i++) {
            mm[i] = b1 * mm[i] + (1.0f - b1) * g[i];
            vv[i] = b2 * vv[i] + (1.0f - b2) * g[i] * g[i];
            float denom = sqrtf(vv[i]) / bc2_sqrt + eps;
            p[i] = p[i] * decay - step_size * mm[i] / denom;
        }
    }
}

double grad_norm(const float *grads, size_t n) {
    /* Per-thread partial sums added in thread order: the result depends only
     * on the thread count (an OpenMP reduction's combine order is not fixed). */
    double part[256] = {0};
    int nt = 1;
    #pragma omp parallel
    {
        #pragma omp single
        nt = omp_get_num_threads() < 256 ? omp_get_num_threads() : 256;
        int id = omp_get_thread_num();
        double acc = 0.0;
        #pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) acc += (double)grads[i] * grads[i];
        if (id < 256) part[id] = acc;
    }
    double total = 0.0;
    for (int i = 0; i < nt; i++) total += part[i];
    return sqrt(total);
}

double clip_grad_norm(float *grads, size_t n, float max_norm) {
    double norm = grad_norm(grads, n);
    if (max_norm > 0) {
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0) {
            float c = (float)coef;
            #pragma omp parallel for schedule(static)
            for (size_t i = 0; i < n; i++) grads[i] *= c;
        }
    }
    return norm;
}

float lr_at(long step, long total_steps, long warmup_steps, float lr, float min_lr) {
    if (warmup_steps > 0 && step < warmup_steps)
        return lr * (float)(step + 1) / (float)warmup_steps;
    long span = total_steps - warmup_steps;
    if (span <= 1) return lr;
    double progress = (double)(step - warmup_steps) / (double)(span - 1);
    if (progress > 1.0) progress = 1.0;
    return (float)(min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(M_PI * progress)));
}
