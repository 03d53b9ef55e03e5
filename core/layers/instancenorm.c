/* Instance normalisation (Ulyanov, Vedaldi, Lempitsky, arXiv 1607.08022;
 * PyTorch InstanceNorm1d(C, affine=True)) over the rows of each sample, see
 * layers.h. Statistics are accumulated in double in a fixed row order, and
 * the weight/bias gradients are reduced over samples in a fixed order, so the
 * results do not depend on the thread count. */
#include <math.h>
#include "layers.h"

/* Channels per work item. Each work item sweeps its sample's rows over up to
 * IN_CB contiguous channels (1 KB of a row), with its accumulators in arrays
 * that stay in L1: measured (shapes3d's B 32, S 512, C 64 and 256, one thread)
 * 1.4-1.7x faster forward and 2-3x faster backward than 32-channel blocks,
 * which read a row's 128 bytes at a stride of C floats. The block width does
 * not change any result: each channel's sums run over the rows in order. */
enum { IN_CB = 256 };

/* One sample, channels c0 .. c0+nc-1 (nc <= IN_CB); sums in double. */
static void fwd_block(float *restrict o, float *restrict mean, float *restrict rstd,
                      const float *restrict x, const float *w, const float *b, int S,
                      int C, int c0, int nc, float eps) {
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
        mean[c] = mf[j];
        rstd[c] = rs;
        sc[j] = rs * w[c];
        sh[j] = b[c];
    }
    for (int r = 0; r < S; r++)
        for (int j = 0; j < nc; j++) {
            size_t i = (size_t)r * C + c0 + j;
            o[i] = (x[i] - mf[j]) * sc[j] + sh[j];
        }
}

void instnorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
                      const float *b, int B, int S, int C, float eps) {
    int nblk = (C + IN_CB - 1) / IN_CB;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int s = 0; s < B; s++)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * IN_CB, nc = c0 + IN_CB < C ? IN_CB : C - c0;
            float *o = out + (size_t)s * S * C, *ms = mean + (size_t)s * C, *rs = rstd + (size_t)s * C;
            const float *x = in + (size_t)s * S * C;
            fwd_block(o, ms, rs, x, w, b, S, C, c0, nc, eps);
        }
}

/* Backward of one sample's channels c0 .. c0+nc-1 (see fwd_block): the
 * per-(sample, channel) sums of dy and dy * xhat go to sdy, sdyx; din, when
 * given, gets dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat)), dn = dy w
 * (acc = 1: din +=; acc = 0: din = 0.0f + the same value, layers.h). */
static void bwd_block(float *restrict dx, float *restrict sdy, float *restrict sdyx,
                      const float *restrict d, const float *restrict x, const float *w,
                      const float *mu, const float *rs, int S, int C, int c0, int nc,
                      int acc) {
    double a[IN_CB] = {0}, ax[IN_CB] = {0};
    for (int r = 0; r < S; r++)
        for (int j = 0; j < nc; j++) {
            size_t i = (size_t)r * C + c0 + j;
            a[j] += d[i];
            ax[j] += (double)d[i] * ((x[i] - mu[c0 + j]) * rs[c0 + j]);
        }
    for (int j = 0; j < nc; j++) {
        sdy[c0 + j] = (float)a[j];
        sdyx[c0 + j] = (float)ax[j];
    }
    if (!dx) return;
    float ma[IN_CB], max_[IN_CB], k[IN_CB], m[IN_CB], r_[IN_CB];
    for (int j = 0; j < nc; j++) {
        ma[j] = (float)(a[j] / S);
        max_[j] = (float)(ax[j] / S);
        k[j] = w[c0 + j] * rs[c0 + j];
        m[j] = mu[c0 + j];
        r_[j] = rs[c0 + j];
    }
    for (int r = 0; r < S; r++)
        for (int j = 0; j < nc; j++) {
            size_t i = (size_t)r * C + c0 + j;
            float xhat = (x[i] - m[j]) * r_[j];
            dx[i] = (acc ? dx[i] : 0.0f) + k[j] * (d[i] - ma[j] - xhat * max_[j]);
        }
}

static void backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, const float *mean, const float *rstd, int B, int S, int C,
                     float *scratch, int acc) {
    float *sdy = scratch, *sdyx = scratch + (size_t)B * C;   /* per (sample, channel) */
    int nblk = (C + IN_CB - 1) / IN_CB;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int s = 0; s < B; s++)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * IN_CB, nc = c0 + IN_CB < C ? IN_CB : C - c0;
            size_t so = (size_t)s * S * C, sc = (size_t)s * C;
            float *dx = din ? din + so : NULL;
            const float *x = in + so, *d = dout + so;
            bwd_block(dx, sdy + sc, sdyx + sc, d, x, w, mean + sc, rstd + sc, S, C, c0, nc, acc);
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
