#include "ewa.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

double ewa_factor(int n_experts, float beta) {
    return 1.0 - n_experts * (double)beta / (n_experts - 1);
}

/* n elements of E tensors t[e]: t[e][i] <- mean_i + c (t[e][i] - mean_i),
 * mean_i = (sum over e in order of t[e][i], in double) / E. Done in chunks of
 * AVG_CHUNK elements with the sum's e-loop outside the i-loop, so each pass is
 * a contiguous, vectorised sweep (one element at a time over E pointers does
 * not vectorise); each element sees the same operations in the same order. */
enum { AVG_CHUNK = 512 };

static void average_tensor(float *const *t, int E, size_t n, double c) {
    size_t nchunk = (n + AVG_CHUNK - 1) / AVG_CHUNK;
    #pragma omp parallel for schedule(static) if (n > 4096)
    for (size_t k = 0; k < nchunk; k++) {
        size_t i0 = k * AVG_CHUNK, len = n - i0 < AVG_CHUNK ? n - i0 : AVG_CHUNK;
        double mean[AVG_CHUNK];
        for (size_t i = 0; i < len; i++) mean[i] = 0.0;
        for (int e = 0; e < E; e++) {
            const float *x = t[e] + i0;
            for (size_t i = 0; i < len; i++) mean[i] += x[i];
        }
        for (size_t i = 0; i < len; i++) mean[i] /= E;
        for (int e = 0; e < E; e++) {
            float *x = t[e] + i0;
            if (c == 0.0)
                for (size_t i = 0; i < len; i++) x[i] = (float)mean[i];
            else
                for (size_t i = 0; i < len; i++) x[i] = (float)(mean[i] + c * ((double)x[i] - mean[i]));
        }
    }
}

void ewa_update(ViT *m, float beta) {
    const ViTDims *d = &m->d;
    if (d->moe.kind == MOE_NONE || beta == 0.0f) return;
    int E = d->moe.experts;
    double c = ewa_factor(E, beta);
    if (fabs(c) < 1e-6) c = 0.0;
    size_t D = d->dim, H = d->hidden;
    float *t[64];
    for (int l = 0; l < d->depth; l++) {
        if (!d->moe_block[l]) continue;
        FFNW *x = m->w.blocks[l].moe.experts;
        for (int e = 0; e < E; e++) t[e] = x[e].fc1_w;
        average_tensor(t, E, H * D, c);
        for (int e = 0; e < E; e++) t[e] = x[e].fc1_b;
        average_tensor(t, E, H, c);
        for (int e = 0; e < E; e++) t[e] = x[e].fc2_w;
        average_tensor(t, E, D * H, c);
        for (int e = 0; e < E; e++) t[e] = x[e].fc2_b;
        average_tensor(t, E, D, c);
    }
}

static void mean_into(float *out, float *const *t, int E, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (int e = 0; e < E; e++) s += t[e][i];
        out[i] = (float)(s / E);
    }
}

int ewa_collapse(const ViT *src, ViT *dst, Err *err) {
    const ViTDims *d = &src->d;
    if (d->moe.kind == MOE_ROUTED)
        return err_set(err, ERR_USAGE, "cannot collapse a routed MoE model into a dense ViT");
    if (dst->d.moe.kind != MOE_NONE || dst->d.depth != d->depth || dst->d.dim != d->dim ||
        dst->d.hidden != d->hidden || dst->d.classes != d->classes || dst->num_params == 0)
        return err_set(err, ERR_RUNTIME, "collapse: destination is not the dense shape of the source");
    for (int i = 0; i < dst->n_params; i++) {
        const ParamSpec *s = &dst->specs[i];
        const ParamSpec *t = vit_find_param(src, s->name);
        if (t) {
            if (t->numel != s->numel)
                return err_set(err, ERR_RUNTIME, "collapse: tensor '%s' differs in size", s->name);
            memcpy(dst->params + s->offset, src->params + t->offset, s->numel * sizeof(float));
            continue;
        }
        int l;
        char which[32];
        if (sscanf(s->name, "blocks.%d.mlp.%31s", &l, which) != 2 || l < 0 || l >= d->depth ||
            !d->moe_block[l])
            return err_set(err, ERR_RUNTIME, "collapse: no source for tensor '%s'", s->name);
        float *t4[64];
        const FFNW *x = src->w.blocks[l].moe.experts;
        for (int e = 0; e < d->moe.experts; e++)
            t4[e] = !strcmp(which, "fc1.weight") ? x[e].fc1_w : !strcmp(which, "fc1.bias") ? x[e].fc1_b
                  : !strcmp(which, "fc2.weight") ? x[e].fc2_w : x[e].fc2_b;
        mean_into(dst->params + s->offset, t4, d->moe.experts, s->numel);
    }
    return 0;
}
