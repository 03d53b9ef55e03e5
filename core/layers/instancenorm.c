/* Instance normalisation (Ulyanov, Vedaldi, Lempitsky, arXiv 1607.08022;
 * PyTorch InstanceNorm1d(C, affine=True)) over the rows of each sample, see
 * layers.h. Statistics are accumulated in double in a fixed row order, and
 * the weight/bias gradients are reduced over samples in a fixed order, so the
 * results do not depend on the thread count. */
#include <math.h>
#include <string.h>
#include "layers.h"

enum { IN_CB = 32 };   /* channels per work item */

void instnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                      const float *b, int B, int S, int C, float eps) {
    int nblk = (C + IN_CB - 1) / IN_CB;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int s = 0; s < B; s++)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * IN_CB, c1 = c0 + IN_CB < C ? c0 + IN_CB : C, nc = c1 - c0;
            const float *x = in + (size_t)s * S * C;
            float *o = out + (size_t)s * S * C;
            double m[IN_CB] = {0}, v[IN_CB] = {0};
            for (int r = 0; r < S; r++)
                for (int j = 0; j < nc; j++) m[j] += x[(size_t)r * C + c0 + j];
            for (int j = 0; j < nc; j++) m[j] /= S;
            for (int r = 0; r < S; r++)
                for (int j = 0; j < nc; j++) {
                    double d = x[(size_t)r * C + c0 + j] - m[j];
                    v[j] += d * d;
                }
            float mf[IN_CB], sc[IN_CB], sh[IN_CB];
            for (int j = 0; j < nc; j++) {
                int c = c0 + j;
                mf[j] = (float)m[j];
                float rs = (float)(1.0 / sqrt(v[j] / S + eps));
                mean[(size_t)s * C + c] = mf[j];
                rstd[(size_t)s * C + c] = rs;
                sc[j] = rs * w[c];
                sh[j] = b[c];
            }
            for (int r = 0; r < S; r++)
                for (int j = 0; j < nc; j++) {
                    size_t i = (size_t)r * C + c0 + j;
                    o[i] = (x[i] - mf[j]) * sc[j] + sh[j];
                }
        }
}

/* acc = 1: din +=; acc = 0: din = 0.0f + the same value (layers.h). */
static void backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, const float *mean, const float *rstd, int B, int S, int C,
                     float *scratch, int acc) {
    float *sdy = scratch, *sdyx = scratch + (size_t)B * C;   /* per (sample, channel) */
    int nblk = (C + IN_CB - 1) / IN_CB;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int s = 0; s < B; s++)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * IN_CB, c1 = c0 + IN_CB < C ? c0 + IN_CB : C, nc = c1 - c0;
            const float *x = in + (size_t)s * S * C, *d = dout + (size_t)s * S * C;
            const float *mu = mean + (size_t)s * C + c0, *rs = rstd + (size_t)s * C + c0;
            double a[IN_CB] = {0}, ax[IN_CB] = {0};
            for (int r = 0; r < S; r++)
                for (int j = 0; j < nc; j++) {
                    size_t i = (size_t)r * C + c0 + j;
                    a[j] += d[i];
                    ax[j] += (double)d[i] * ((x[i] - mu[j]) * rs[j]);
                }
            for (int j = 0; j < nc; j++) {
                sdy[(size_t)s * C + c0 + j] = (float)a[j];
                sdyx[(size_t)s * C + c0 + j] = (float)ax[j];
            }
            if (!din) continue;
            /* dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat)), dn = dy * w */
            float *dx = din + (size_t)s * S * C;
            float ma[IN_CB], max_[IN_CB], k[IN_CB];
            for (int j = 0; j < nc; j++) {
                ma[j] = (float)(a[j] / S);
                max_[j] = (float)(ax[j] / S);
                k[j] = w[c0 + j] * rs[j];
            }
            for (int r = 0; r < S; r++)
                for (int j = 0; j < nc; j++) {
                    size_t i = (size_t)r * C + c0 + j;
                    float xhat = (x[i] - mu[j]) * rs[j];
                    dx[i] = (acc ? dx[i] : 0.0f) + k[j] * (d[i] - ma[j] - xhat * max_[j]);
                }
        }
    for (int s = 0; s < B; s++)
        for (int c = 0; c < C; c++) {
            if (dw) dw[c] += sdyx[(size_t)s * C + c];
            if (db) db[c] += sdy[(size_t)s * C + c];
        }
}

void instnorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                       const float *w, const float *mean, const float *rstd, int B, int S, int C,
                       float *scratch) {
    backward(din, dw, db, dout, in, w, mean, rstd, B, S, C, scratch, 1);
}

void instnorm_backward_set(float *din, float *dw, float *db, const float *dout, const float *in,
                           const float *w, const float *mean, const float *rstd, int B, int S, int C,
                           float *scratch) {
    backward(din, dw, db, dout, in, w, mean, rstd, B, S, C, scratch, 0);
}
