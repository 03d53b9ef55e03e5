#include "layers.h"

void patchify(float *patches, const float *img, int B, int Cin, int H, int W, int P) {
    int gh = H / P, gw = W / P, Np = gh * gw, K = Cin * P * P;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int p = 0; p < Np; p++) {
            int py0 = (p / gw) * P, px0 = (p % gw) * P;
            float *dst = patches + ((size_t)b * Np + p) * K;
            for (int c = 0; c < Cin; c++)
                for (int y = 0; y < P; y++) {
                    const float *src = img + (((size_t)b * Cin + c) * H + py0 + y) * W + px0;
                    for (int x = 0; x < P; x++) *dst++ = src[x];
                }
        }
}

void tokens_forward(float *x, const float *emb, const float *cls, const float *pos,
                    int B, int Np, int D) {
    int T = Np + 1;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = x + ((size_t)b * T + t) * D;
            const float *src = t == 0 ? cls : emb + ((size_t)b * Np + t - 1) * D;
            const float *p = pos + (size_t)t * D;
            for (int i = 0; i < D; i++) o[i] = src[i] + p[i];
        }
}

void tokens_backward(float *demb, float *dcls, float *dpos, const float *dx,
                     int B, int Np, int D) {
    int T = Np + 1;
    if (demb) {
        #pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int t = 1; t < T; t++) {
                const float *g = dx + ((size_t)b * T + t) * D;
                float *o = demb + ((size_t)b * Np + t - 1) * D;
                for (int i = 0; i < D; i++) o[i] += g[i];
            }
    }
    /* dpos[t] += sum_b dx[b,t]; dcls += sum_b dx[b,0]. Threads own tokens. */
    #pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float *dp = dpos + (size_t)t * D;
        for (int b = 0; b < B; b++) {
            const float *g = dx + ((size_t)b * T + t) * D;
            for (int i = 0; i < D; i++) dp[i] += g[i];
            if (t == 0 && dcls)
                for (int i = 0; i < D; i++) dcls[i] += g[i];
        }
    }
}
