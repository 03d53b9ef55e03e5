#include "layers.h"
#include "../gemm.h"
#include <string.h>

void linear_forward(float *out, const float *in, const float *w, const float *b,
                    int N, int IC, int OC) {
    /* out starts as the bias rows, then out (N,OC) += in (N,IC) @ w^T;
     * beta = 1 also spares OpenBLAS its separate pass zeroing out. */
    if (b) {
        #pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, sizeof(float) * OC);
    }
    gemm(0, 1, N, OC, IC, 1.0f, in, IC, w, IC, b ? 1.0f : 0.0f, out, OC);
}

/* acc = 1: din += dout @ w; acc = 0: din = dout @ w (beta 0, layers.h). */
static void backward(float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, int N, int IC, int OC, int acc) {
    /* din (N,IC) (+)= dout (N,OC) @ w (OC,IC) */
    if (din)
        gemm(0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, acc ? 1.0f : 0.0f, din, IC);
    /* dw (OC,IC) += dout^T (OC,N) @ in (N,IC); in bf16 the first product's
     * conversion of dout is reused (gemm.h) */
    if (dw) {
        if (din) gemm_next_a_unchanged();
        gemm(1, 0, OC, IC, N, 1.0f, dout, OC, in, IC, 1.0f, dw, IC);
    }
    if (!db) return;
    /* db (OC) += column sums of dout; threads own column blocks, so the
     * summation order is fixed. */
    enum { CB = 32 };
    int nblk = (OC + CB - 1) / CB;
    #pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int j0 = blk * CB, j1 = j0 + CB < OC ? j0 + CB : OC;
        float a[CB] = {0};
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
            for (int j = j0; j < j1; j++) a[j - j0] += d[j];
        }
        for (int j = j0; j < j1; j++) db[j] += a[j - j0];
    }
}

void linear_backward(float *din, float *dw, float *db, const float *dout,
                     const float *in, const float *w, int N, int IC, int OC) {
    backward(din, dw, db, dout, in, w, N, IC, OC, 1);
}

void linear_backward_set(float *din, float *dw, float *db, const float *dout,
                         const float *in, const float *w, int N, int IC, int OC) {
    backward(din, dw, db, dout, in, w, N, IC, OC, 0);
}
