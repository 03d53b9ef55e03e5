#include "layers.h"
#include <math.h>
#include <stdlib.h>
#include "fastmath.h"

/* One (b, h) pair per OpenMP iteration; T and hd are small (tens), so the
 * loops are written out rather than sent to sgemm. */

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    int hd = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hd);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *base = qkv + (size_t)b * T * C3;
            float *A = att + ((size_t)b * NH + h) * T * T;
            for (int i = 0; i < T; i++) {
                const float *q = base + (size_t)i * C3 + h * hd;
                float *a = A + (size_t)i * T, mx = -INFINITY;
                for (int j = 0; j < T; j++) {
                    const float *k = base + (size_t)j * C3 + C + h * hd;
                    float s = 0.0f;
                    #pragma omp simd reduction(+ : s)
                    for (int d = 0; d < hd; d++) s += q[d] * k[d];
                    s *= scale;
                    a[j] = s;
                    if (s > mx) mx = s;
                }
                float sum = 0.0f;
                #pragma omp simd reduction(+ : sum)
                for (int j = 0; j < T; j++) { a[j] = ewa_expf(a[j] - mx); sum += a[j]; }
                float inv = 1.0f / sum;
                for (int j = 0; j < T; j++) a[j] *= inv;
                float *o = out + ((size_t)b * T + i) * C + h * hd;
                for (int d = 0; d < hd; d++) o[d] = 0.0f;
                for (int j = 0; j < T; j++) {
                    const float *v = base + (size_t)j * C3 + 2 * C + h * hd;
                    float p = a[j];
                    for (int d = 0; d < hd; d++) o[d] += p * v[d];
                }
            }
        }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH) {
    int hd = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hd);
    #pragma omp parallel
    {
        float *dp = malloc(sizeof(float) * (size_t)T);   /* one row of dP / dS */
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const float *base = qkv + (size_t)b * T * C3;
                float *dbase = dqkv + (size_t)b * T * C3;
                const float *A = att + ((size_t)b * NH + h) * T * T;
                for (int i = 0; i < T; i++) {
                    const float *a = A + (size_t)i * T;
                    const float *go = dout + ((size_t)b * T + i) * C + h * hd;
                    const float *q = base + (size_t)i * C3 + h * hd;
                    float *dq = dbase + (size_t)i * C3 + h * hd;
                    /* dP_ij = dout_i . v_j ; dv_j += P_ij dout_i */
                    float dot = 0.0f;
                    for (int j = 0; j < T; j++) {
                        const float *v = base + (size_t)j * C3 + 2 * C + h * hd;
                        float *dv = dbase + (size_t)j * C3 + 2 * C + h * hd;
                        float s = 0.0f, p = a[j];
                        #pragma omp simd reduction(+ : s)
                        for (int d = 0; d < hd; d++) { s += go[d] * v[d]; dv[d] += p * go[d]; }
                        dp[j] = s;
                        dot += s * p;
                    }
                    /* dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik); S = scale q.k */
                    for (int j = 0; j < T; j++) {
                        const float *k = base + (size_t)j * C3 + C + h * hd;
                        float *dk = dbase + (size_t)j * C3 + C + h * hd;
                        float ds = a[j] * (dp[j] - dot) * scale;
                        for (int d = 0; d < hd; d++) { dq[d] += ds * k[d]; dk[d] += ds * q[d]; }
                    }
                }
            }
        free(dp);
    }
}
