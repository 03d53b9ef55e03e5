#include "layers.h"
#include "../gemm.h"
#include <math.h>
#include <stdlib.h>
#include "fastmath.h"

/* Multi-head attention as batched matrix products: one (b, h) pair per
 * OpenMP iteration, each doing its two (forward) or four (backward) products
 * through gemm.h's gemm_f32 on strided views of qkv (no copies: head h of q
 * is the T x hd matrix at qkv + h*hd with leading dimension 3C), in fp32
 * whatever the GEMM precision. Called inside the parallel region, the GEMM
 * library runs each product on the calling thread, so the (b, h) pairs are
 * the parallelism. The row softmax and its backward are vectorised (fastmath.h's ewa_expf under omp simd).
 * Formulas: S = scale Q K^T, P = softmax_rows(S), O = P V;
 * dV = P^T dO, dP = dO V^T, dS = P .* (dP - rowsum(P .* dP)),
 * dQ = scale dS K, dK = scale dS^T Q (e.g. Vaswani et al. 2017; the softmax
 * Jacobian diag(p) - p p^T). */

/* In place: each of the T rows of a (T,T) becomes softmax(row). */
static void softmax_rows(float *a, int T) {
    for (int i = 0; i < T; i++) {
        float *r = a + (size_t)i * T, mx = -INFINITY, sum = 0.0f;
        #pragma omp simd reduction(max : mx)
        for (int j = 0; j < T; j++) mx = r[j] > mx ? r[j] : mx;
        #pragma omp simd reduction(+ : sum)
        for (int j = 0; j < T; j++) { r[j] = ewa_expf(r[j] - mx); sum += r[j]; }
        float inv = 1.0f / sum;
        #pragma omp simd
        for (int j = 0; j < T; j++) r[j] *= inv;
    }
}

/* In place: dp (T,T) holding dP becomes scale * dS for probabilities p. */
static void softmax_rows_backward(float *dp, const float *p, int T, float scale) {
    for (int i = 0; i < T; i++) {
        float *g = dp + (size_t)i * T, dot = 0.0f;
        const float *r = p + (size_t)i * T;
        #pragma omp simd reduction(+ : dot)
        for (int j = 0; j < T; j++) dot += r[j] * g[j];
        #pragma omp simd
        for (int j = 0; j < T; j++) g[j] = scale * r[j] * (g[j] - dot);
    }
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    int hd = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hd);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hd, *k = q + C, *v = q + 2 * C;
            float *A = att + ((size_t)b * NH + h) * T * T;
            float *o = out + (size_t)b * T * C + h * hd;
            gemm_f32(0, 1, T, T, hd,
                        scale, q, C3, k, C3, 0.0f, A, T);
            softmax_rows(A, T);
            gemm_f32(0, 0, T, hd, T,
                        1.0f, A, T, v, C3, 0.0f, o, C);
        }
}

/* acc = 1: dqkv +=; acc = 0: dqkv = (beta 0: every (b, h) writes its own
 * columns of q, k and v exactly once, so all of dqkv is set; layers.h). */
static void backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T,
                     int C, int NH, int acc) {
    int hd = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hd), beta = acc ? 1.0f : 0.0f;
    #pragma omp parallel
    {
        /* dP, then scale * dS: on the stack for the small T of these ViTs. */
        enum { STACK_TT = 64 * 64 };
        float stack_ds[STACK_TT];
        float *ds = (size_t)T * T <= STACK_TT ? stack_ds : malloc(sizeof(float) * (size_t)T * T);
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                size_t qo = (size_t)b * T * C3 + h * hd;
                const float *q = qkv + qo, *k = q + C, *v = q + 2 * C;
                float *dq = dqkv + qo, *dk = dq + C, *dv = dq + 2 * C;
                const float *A = att + ((size_t)b * NH + h) * T * T;
                const float *go = dout + (size_t)b * T * C + h * hd;
                gemm_f32(1, 0, T, hd, T, 1.0f, A, T, go, C, beta, dv, C3);
                gemm_f32(0, 1, T, T, hd, 1.0f, go, C, v, C3, 0.0f, ds, T);
                softmax_rows_backward(ds, A, T, scale);
                gemm_f32(0, 0, T, hd, T, 1.0f, ds, T, k, C3, beta, dq, C3);
                gemm_f32(1, 0, T, hd, T, 1.0f, ds, T, q, C3, beta, dk, C3);
            }
        if (ds != stack_ds) free(ds);
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH) {
    backward(dqkv, dout, qkv, att, B, T, C, NH, 1);
}

void attention_backward_set(float *dqkv, const float *dout, const float *qkv,
                            const float *att, int B, int T, int C, int NH) {
    backward(dqkv, dout, qkv, att, B, T, C, NH, 0);
}
