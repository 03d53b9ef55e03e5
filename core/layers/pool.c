#include "layers.h"

void pool_forward(float *pooled, const float *x, int B, int T, int D, int mean) {
    for (int b = 0; b < B; b++) {
        float *o = pooled + (size_t)b * D;
        const float *xb = x + (size_t)b * T * D;
        if (!mean) {
            for (int i = 0; i < D; i++) o[i] = xb[i];
            continue;
        }
        for (int i = 0; i < D; i++) o[i] = 0.0f;
        for (int t = 1; t < T; t++)
            for (int i = 0; i < D; i++) o[i] += xb[(size_t)t * D + i];
        for (int i = 0; i < D; i++) o[i] /= (float)(T - 1);
    }
}

void pool_backward(float *dx, const float *dpooled, int B, int T, int D, int mean) {
    for (int b = 0; b < B; b++) {
        const float *g = dpooled + (size_t)b * D;
        float *db = dx + (size_t)b * T * D;
        if (!mean) {
            for (int i = 0; i < D; i++) db[i] += g[i];
            continue;
        }
        float s = 1.0f / (float)(T - 1);
        for (int t = 1; t < T; t++)
            for (int i = 0; i < D; i++) db[(size_t)t * D + i] += g[i] * s;
    }
}
