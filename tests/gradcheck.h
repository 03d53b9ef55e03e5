/* Finite-difference gradient checking (ggml test-backend-ops style).
 * A check perturbs every input element (or a seeded sample of them) by +-h,
 * recomputes a scalar probe loss L = sum_i out_i * R_i (R fixed random,
 * summed in double) and compares the central difference with the analytic
 * gradient from the backward pass.
 *
 * Tolerance, stated once for all checks: kernels are float32, h = 1e-2, and
 * the error measure is the largest absolute difference divided by the largest
 * analytic magnitude of that tensor's gradient: it must be below GC_TOL. */
#ifndef EWA_GRADCHECK_H
#define EWA_GRADCHECK_H
#include <math.h>
#include <stdlib.h>
#include "../core/rng.h"

#define GC_H 1e-2f
#define GC_TOL 2e-3

typedef double (*gc_loss_fn)(void *ctx);

static inline void gc_fill(float *x, size_t n, Rng *r, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(r);
}

static inline double gc_dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Compares analytic[0..n) with central differences of loss(ctx) w.r.t.
 * x[0..n). Checks at most max_checks evenly spread indices (all if 0).
 * Returns the relative error measure described above. */
static inline double gc_check(float *x, const float *analytic, size_t n, gc_loss_fn loss,
                              void *ctx, size_t max_checks) {
    double gmax = 1e-12, dmax = 0;
    for (size_t i = 0; i < n; i++) if (fabs(analytic[i]) > gmax) gmax = fabs(analytic[i]);
    size_t step = (max_checks && n > max_checks) ? n / max_checks : 1;
    for (size_t i = 0; i < n; i += step) {
        float save = x[i];
        x[i] = save + GC_H; double lp = loss(ctx);
        x[i] = save - GC_H; double lm = loss(ctx);
        x[i] = save;
        double num = (lp - lm) / (2.0 * GC_H);
        double d = fabs(num - analytic[i]);
        if (d > dmax) dmax = d;
    }
    return dmax / gmax;
}
#endif
