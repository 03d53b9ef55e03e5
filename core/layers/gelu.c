#include "layers.h"
#include "fastmath.h"

/* Exact (erf) GELU, PyTorch's default approximate='none', computed with
 * fastmath.h's erf (|error| <= 1.5e-7, i.e. float precision). */
#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

void gelu_forward(float *out, const float *in, size_t n) {
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = in[i], u = x * INV_SQRT2;
        float e = ewa_expf(-u * u);
        out[i] = 0.5f * x * (1.0f + ewa_erf_from_exp(u, e));
    }
}

/* acc = 1: din += dout * GELU'(in); acc = 0: din = 0.0f + that, the same
 * value as after a memset (layers.h). */
static void backward(float *din, const float *dout, const float *in, size_t n, int acc) {
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = in[i], u = x * INV_SQRT2;
        float e = ewa_expf(-u * u);            /* exp(-x^2/2) */
        float cdf = 0.5f * (1.0f + ewa_erf_from_exp(u, e));
        din[i] = (acc ? din[i] : 0.0f) + dout[i] * (cdf + x * INV_SQRT_2PI * e);
    }
}

void gelu_backward(float *din, const float *dout, const float *in, size_t n) { backward(din, dout, in, n, 1); }
void gelu_backward_set(float *din, const float *dout, const float *in, size_t n) { backward(din, dout, in, n, 0); }
