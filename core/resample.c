#include "resample.h"
#include <math.h>
#include <stddef.h>

#define CUBIC_A (-0.75)

/* The 4 weights and clamped indices of output index i along an axis of
 * length n_in resampled to n_out (PyTorch: get_cubic_upsample_coefficients). */
static void cubic_taps(int i, int n_in, int n_out, int idx[4], double w[4]) {
    double scale = (double)n_in / n_out, s = (i + 0.5) * scale - 0.5, f = floor(s), t = s - f;
    double A = CUBIC_A, x1 = t + 1.0, x2 = 1.0 - t, x3 = 2.0 - t;
    w[0] = ((A * x1 - 5.0 * A) * x1 + 8.0 * A) * x1 - 4.0 * A;   /* |x| in [1,2) */
    w[1] = ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0;             /* |x| in [0,1) */
    w[2] = ((A + 2.0) * x2 - (A + 3.0)) * x2 * x2 + 1.0;
    w[3] = ((A * x3 - 5.0 * A) * x3 + 8.0 * A) * x3 - 4.0 * A;
    for (int k = 0; k < 4; k++) {
        int j = (int)f - 1 + k;
        idx[k] = j < 0 ? 0 : j >= n_in ? n_in - 1 : j;
    }
}

void resample_bicubic(float *out, const float *in, int H, int W, int C, int OH, int OW) {
    for (int oy = 0; oy < OH; oy++) {
        int iy[4];
        double wy[4];
        cubic_taps(oy, H, OH, iy, wy);
        for (int ox = 0; ox < OW; ox++) {
            int ix[4];
            double wx[4];
            cubic_taps(ox, W, OW, ix, wx);
            float *o = out + ((size_t)oy * OW + ox) * C;
            for (int c = 0; c < C; c++) {
                double acc = 0.0;
                for (int a = 0; a < 4; a++) {
                    const float *row = in + (size_t)iy[a] * W * C + c;
                    double r = 0.0;   /* along x first, then y, as PyTorch */
                    for (int b = 0; b < 4; b++) r += wx[b] * row[(size_t)ix[b] * C];
                    acc += wy[a] * r;
                }
                o[c] = (float)acc;
            }
        }
    }
}
