/* PointSet basics (free, unit-sphere normalisation, batch assembly) and the
 * 3D augmentations of docs/DESIGN.md 3: per-axis scale, rotation about the up axis y,
 * translation, clipped Gaussian jitter. */
#include "points.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void pointset_free(PointSet *s) {
    if (!s) return;
    if (s->class_names)
        for (int k = 0; k < s->num_classes; k++) free(s->class_names[k]);
    free(s->class_names);
    free(s->xyz);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

void points_normalize(float *xyz, int P) {
    if (!xyz || P < 1) return;
    double m[3] = {0, 0, 0};
    for (int i = 0; i < P; i++)
        for (int a = 0; a < 3; a++) m[a] += xyz[3 * (size_t)i + a];
    for (int a = 0; a < 3; a++) m[a] /= P;
    double r2 = 0;
    for (int i = 0; i < P; i++) {
        float *p = xyz + 3 * (size_t)i;
        double d = 0;
        for (int a = 0; a < 3; a++) {
            p[a] = (float)(p[a] - m[a]);
            d += (double)p[a] * p[a];
        }
        if (d > r2) r2 = d;
    }
    if (!(r2 > 0)) return;
    float inv = (float)(1.0 / sqrt(r2));
    for (size_t i = 0; i < 3 * (size_t)P; i++) xyz[i] *= inv;
}

Augment3D augment3d_default(void) {
    Augment3D a = {.scale_lo = 2.0f / 3.0f, .scale_hi = 1.5f, .translate = 0.2f};
    return a;
}

static void augment_one(float *xyz, int P, const Augment3D *aug, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    float s[3] = {1, 1, 1}, t[3] = {0, 0, 0}, c = 1, sn = 0;
    int do_scale = aug->scale_lo != 0 || aug->scale_hi != 0;
    if (do_scale)
        for (int a = 0; a < 3; a++)
            s[a] = aug->scale_lo + (aug->scale_hi - aug->scale_lo) * rng_uniform(&r);
    if (aug->rotate != 0) {
        float th = aug->rotate * (2.0f * rng_uniform(&r) - 1.0f);
        c = cosf(th);
        sn = sinf(th);
    }
    if (aug->translate != 0)
        for (int a = 0; a < 3; a++) t[a] = aug->translate * (2.0f * rng_uniform(&r) - 1.0f);
    float sig = aug->jitter_sigma, clip = aug->jitter_clip;
    for (int i = 0; i < P; i++) {
        float *p = xyz + 3 * (size_t)i;
        float x = p[0] * s[0], y = p[1] * s[1], z = p[2] * s[2];
        p[0] = c * x + sn * z + t[0];
        p[1] = y + t[1];
        p[2] = -sn * x + c * z + t[2];
        if (sig > 0)
            for (int a = 0; a < 3; a++) {
                float e = sig * rng_normal(&r);
                if (clip > 0) e = e < -clip ? -clip : (e > clip ? clip : e);
                p[a] += e;
            }
    }
}

void points_augment(float *xyz, int B, int P, const Augment3D *aug, Rng *rng) {
    if (!xyz || !aug || !rng || B < 1 || P < 1) return;
    uint64_t *seeds = malloc((size_t)B * sizeof *seeds);
    if (!seeds) {  /* same seeds, same result, one thread */
        Rng copy = *rng;
        for (int b = 0; b < B; b++) rng_u64(rng);
        for (int b = 0; b < B; b++)
            augment_one(xyz + (size_t)b * P * 3, P, aug, rng_u64(&copy));
        return;
    }
    for (int b = 0; b < B; b++) seeds[b] = rng_u64(rng);
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) augment_one(xyz + (size_t)b * P * 3, P, aug, seeds[b]);
    free(seeds);
}

void pointset_batch(const PointSet *s, const int *idx, int B, const Augment3D *aug, Rng *rng,
                    float *x, int *y) {
    if (!s || !idx || !x || B < 1) return;
    size_t cb = (size_t)s->P * 3;
    for (int b = 0; b < B; b++) {
        memcpy(x + (size_t)b * cb, s->xyz + (size_t)idx[b] * cb, cb * sizeof(float));
        if (y) y[b] = s->labels[idx[b]];
    }
    if (aug && rng) points_augment(x, B, s->P, aug, rng);
}
