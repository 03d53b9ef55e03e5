/* Vectorisable exp and erf for the element-wise kernels. glibc's expf/erff
 * are scalar calls that block SIMD; these are straight-line code that GCC
 * vectorises under `#pragma omp simd`.
 *   ewa_expf: Cody-Waite range reduction + Cephes' degree-6 polynomial;
 *             measured relative error <= 8.1e-8 on [-87, 88]; 0 below the
 *             float range down to -1e6 (only a diverged run goes further,
 *             and gets NaN, which the training loop's check catches).
 *   ewa_erf_from_exp: Abramowitz & Stegun 7.1.26, measured absolute error
 *             <= 5.1e-7 in float, given e = exp(-u^2) so GELU's forward and
 *             backward share one exponential.
 * Clamping is done on the integer exponent: a float clamp on x stops GCC
 * from if-converting the loop. */
#ifndef EWA_FASTMATH_H
#define EWA_FASTMATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline __attribute__((always_inline)) float ewa_expf(float x) {
    /* n = round(x / ln 2) through an int conversion: floorf would not
     * vectorise under strict floating-point semantics. */
    float t = x * 1.44269504088896341f;
    int32_t ni = (int32_t)(t + copysignf(0.5f, t));
    float n = (float)ni;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * r * r + r + 1.0f;
    int32_t bi = ni + 127;
    bi = bi < 0 ? 0 : (bi > 254 ? 254 : bi);
    int32_t bits = bi << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return e * scale;
}

/* erf(u) given e = exp(-u*u). */
static inline __attribute__((always_inline)) float ewa_erf_from_exp(float u, float e) {
    float a = fabsf(u);
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t
                  + 0.254829592f) * t;
    float y = 1.0f - poly * e;
    return copysignf(y, u);
}
#endif
