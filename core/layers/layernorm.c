#include <math.h>
#include "layers.h"

void layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                       const float *w, const float *b, int N, int C, float eps) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) { float d = x[i] - m; v += d * d; }
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

/* acc = 1: din +=; acc = 0: din = 0.0f + the same value (layers.h). */
static void backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, const float *mean, const float *rstd, int N, int C, int acc) {
    /* din: row-local. */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C, *d = dout + (size_t)n * C;
        float *dx = din + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float xhat = (x[i] - m) * s, dn = d[i] * w[i];
            dnorm_mean += dn;
            dnorm_norm_mean += dn * xhat;
        }
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        for (int i = 0; i < C; i++) {
            float xhat = (x[i] - m) * s, dn = d[i] * w[i];
            dx[i] = (acc ? dx[i] : 0.0f) + (dn - dnorm_mean - xhat * dnorm_norm_mean) * s;
        }
    }
    /* dw, db: reductions over rows; threads own column blocks. */
    enum { CB = 32 };
    int nblk = (C + CB - 1) / CB;
    #pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int j0 = blk * CB, j1 = j0 + CB < C ? j0 + CB : C;
        float aw[CB] = {0}, ab[CB] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = in + (size_t)n * C, *d = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            for (int j = j0; j < j1; j++) {
                aw[j - j0] += d[j] * (x[j] - m) * s;
                ab[j - j0] += d[j];
            }
        }
        for (int j = j0; j < j1; j++) { dw[j] += aw[j - j0]; db[j] += ab[j - j0]; }
    }
}

void layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, const float *mean, const float *rstd, int N, int C) {
    backward(din, dw, db, dout, in, w, mean, rstd, N, C, 1);
}

void layernorm_backward_set(float *din, float *dw, float *db, const float *dout, const float *in,
                            const float *w, const float *mean, const float *rstd, int N, int C) {
    backward(din, dw, db, dout, in, w, mean, rstd, N, C, 0);
}
