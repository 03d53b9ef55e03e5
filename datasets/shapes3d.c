/* shapes3d: a procedural, synthetic point-cloud classification set (docs/DESIGN.md 3),
 * generated in C and deterministic for a seed. 14 classes of parametric
 * surfaces, several of which differ only in proportions; every cloud gets a
 * random anisotropic scale, a random 3D rotation, possibly a missing cap,
 * Gaussian jitter and uniform outliers, and is then normalised to the unit
 * sphere. See SHAPES3D.md for the classes and all constants. */
#include "points.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI_F 3.14159265358979f

/* Generator constants (documented in SHAPES3D.md). */
#define S3_SCALE_LO      0.8f    /* per-axis scale, log-uniform in [LO, HI] */
#define S3_SCALE_HI      1.25f
#define S3_CUT_PROB      0.6f    /* probability of a missing cap */
#define S3_CUT_LO        0.05f   /* fraction of the surface removed by the cap */
#define S3_CUT_HI        0.25f
#define S3_JITTER        0.012f  /* Gaussian jitter std (shape units, size ~1) */
#define S3_JITTER_CLIP   0.036f
#define S3_OUTLIER_MAX   0.03f   /* fraction of outliers, uniform in [0, MAX] */
#define S3_OVERSAMPLE    1.4f    /* candidates drawn per kept surface point */

static const char *const kNames[SHAPES3D_NUM_CLASSES] = {
    "sphere", "ellipsoid", "cube", "box_tall", "cylinder_short", "cylinder_tall", "cone",
    "pyramid", "torus_thin", "torus_fat", "capsule", "helix", "disc", "bowl",
};

const char *shapes3d_class_name(int k) {
    return k >= 0 && k < SHAPES3D_NUM_CLASSES ? kNames[k] : NULL;
}

/* ---- surface samplers: one point of class k's canonical shape ----------- */

static void unit_sphere(Rng *r, float *p) {
    float n2;
    do {
        p[0] = rng_normal(r); p[1] = rng_normal(r); p[2] = rng_normal(r);
        n2 = p[0] * p[0] + p[1] * p[1] + p[2] * p[2];
    } while (n2 < 1e-12f);
    float inv = 1.0f / sqrtf(n2);
    p[0] *= inv; p[1] *= inv; p[2] *= inv;
}

/* Surface of the box [-a,a] x [-b,b] x [-c,c], uniform by area. */
static void box(Rng *r, float a, float b, float c, float *p) {
    float ax = b * c, ay = a * c, az = a * b;   /* one face each (x 4, cancels) */
    float u = rng_uniform(r) * (ax + ay + az);
    float s = rng_uniform(r) < 0.5f ? -1.0f : 1.0f;
    float v = 2.0f * rng_uniform(r) - 1.0f, w = 2.0f * rng_uniform(r) - 1.0f;
    if (u < ax)           { p[0] = s * a; p[1] = v * b; p[2] = w * c; }
    else if (u < ax + ay) { p[0] = v * a; p[1] = s * b; p[2] = w * c; }
    else                  { p[0] = v * a; p[1] = w * b; p[2] = s * c; }
}

/* Closed cylinder along y, radius R, y in [-H, H], uniform by area. */
static void cylinder(Rng *r, float R, float H, float *p) {
    float side = 2.0f * PI_F * R * 2.0f * H, cap = PI_F * R * R;
    float u = rng_uniform(r) * (side + 2.0f * cap);
    float th = 2.0f * PI_F * rng_uniform(r);
    if (u < side) {
        p[0] = R * cosf(th); p[2] = R * sinf(th);
        p[1] = H * (2.0f * rng_uniform(r) - 1.0f);
    } else {
        float rr = R * sqrtf(rng_uniform(r));
        p[0] = rr * cosf(th); p[2] = rr * sinf(th);
        p[1] = u < side + cap ? -H : H;
    }
}

/* Cone with base radius R at y = -h/2 and apex at y = +h/2, with its base. */
static void cone(Rng *r, float R, float h, float *p) {
    float side = PI_F * R * sqrtf(R * R + h * h), base = PI_F * R * R;
    float th = 2.0f * PI_F * rng_uniform(r);
    if (rng_uniform(r) * (side + base) < side) {
        float t = sqrtf(rng_uniform(r));   /* distance from the apex, density ~ t */
        p[0] = t * R * cosf(th); p[2] = t * R * sinf(th);
        p[1] = 0.5f * h - t * h;
    } else {
        float rr = R * sqrtf(rng_uniform(r));
        p[0] = rr * cosf(th); p[2] = rr * sinf(th);
        p[1] = -0.5f * h;
    }
}

static void triangle(Rng *r, const float *A, const float *B, const float *C, float *p) {
    float u = rng_uniform(r), v = rng_uniform(r);
    if (u + v > 1.0f) { u = 1.0f - u; v = 1.0f - v; }
    for (int i = 0; i < 3; i++) p[i] = A[i] + u * (B[i] - A[i]) + v * (C[i] - A[i]);
}

/* Square pyramid: base [-a,a]^2 at y = -h/2, apex at y = +h/2. */
static void pyramid(Rng *r, float a, float h, float *p) {
    float side = 0.5f * 2.0f * a * sqrtf(h * h + a * a), base = 4.0f * a * a;
    float u = rng_uniform(r) * (4.0f * side + base);
    float y0 = -0.5f * h;
    if (u >= 4.0f * side) {
        p[0] = a * (2.0f * rng_uniform(r) - 1.0f); p[1] = y0;
        p[2] = a * (2.0f * rng_uniform(r) - 1.0f);
        return;
    }
    int f = (int)(u / side);
    if (f > 3) f = 3;
    static const float cx[5] = {1, -1, -1, 1, 1}, cz[5] = {1, 1, -1, -1, 1};
    float A[3] = {0, 0.5f * h, 0};
    float B[3] = {a * cx[f], y0, a * cz[f]}, C[3] = {a * cx[f + 1], y0, a * cz[f + 1]};
    triangle(r, A, B, C, p);
}

/* Torus around the y axis, tube centre radius R, tube radius t; uniform by
 * area (rejection on the tube angle). */
static void torus(Rng *r, float R, float t, float *p) {
    float phi;
    do phi = 2.0f * PI_F * rng_uniform(r);
    while (rng_uniform(r) * (R + t) > R + t * cosf(phi));
    float th = 2.0f * PI_F * rng_uniform(r), rr = R + t * cosf(phi);
    p[0] = rr * cosf(th); p[2] = rr * sinf(th); p[1] = t * sinf(phi);
}

/* Capsule along y: cylinder radius R, y in [-H, H], hemispherical ends. */
static void capsule(Rng *r, float R, float H, float *p) {
    float side = 2.0f * PI_F * R * 2.0f * H, ends = 4.0f * PI_F * R * R;
    if (rng_uniform(r) * (side + ends) < side) {
        float th = 2.0f * PI_F * rng_uniform(r);
        p[0] = R * cosf(th); p[2] = R * sinf(th);
        p[1] = H * (2.0f * rng_uniform(r) - 1.0f);
    } else {
        unit_sphere(r, p);
        p[0] *= R; p[2] *= R;
        p[1] = p[1] * R + (p[1] >= 0 ? H : -H);
    }
}

/* Tube of radius t around a helix of radius R, `turns` turns, height h. The
 * helix has constant speed, so uniform t along it is uniform in arc length. */
static void helix(Rng *r, float R, float turns, float h, float t, float *p) {
    float s = rng_uniform(r), a = 2.0f * PI_F * turns * s;
    float c = cosf(a), sn = sinf(a);
    float cpt[3] = {R * c, h * (s - 0.5f), R * sn};
    float tan_[3] = {-R * sn * 2.0f * PI_F * turns, h, R * c * 2.0f * PI_F * turns};
    float tl = sqrtf(tan_[0] * tan_[0] + tan_[1] * tan_[1] + tan_[2] * tan_[2]);
    for (int i = 0; i < 3; i++) tan_[i] /= tl;
    float nrm[3] = {-c, 0, -sn};   /* towards the axis, orthogonal to tan_ */
    float bin[3] = {tan_[1] * nrm[2] - tan_[2] * nrm[1], tan_[2] * nrm[0] - tan_[0] * nrm[2],
                    tan_[0] * nrm[1] - tan_[1] * nrm[0]};
    float b = 2.0f * PI_F * rng_uniform(r), cb = cosf(b) * t, sb = sinf(b) * t;
    for (int i = 0; i < 3; i++) p[i] = cpt[i] + cb * nrm[i] + sb * bin[i];
}

static void sample_class(int k, Rng *r, float *p) {
    switch (k) {
    case 0: unit_sphere(r, p); break;
    case 1: unit_sphere(r, p); p[1] *= 0.6f; p[2] *= 0.35f; break;
    case 2: box(r, 1.0f, 1.0f, 1.0f, p); break;
    case 3: box(r, 0.4f, 1.0f, 0.4f, p); break;
    case 4: cylinder(r, 1.0f, 0.35f, p); break;
    case 5: cylinder(r, 0.4f, 1.0f, p); break;
    case 6: cone(r, 1.0f, 1.6f, p); break;
    case 7: pyramid(r, 1.0f, 1.4f, p); break;
    case 8: torus(r, 1.0f, 0.12f, p); break;
    case 9: torus(r, 1.0f, 0.45f, p); break;
    case 10: capsule(r, 0.4f, 0.6f, p); break;
    case 11: helix(r, 1.0f, 3.0f, 2.4f, 0.1f, p); break;
    case 12: {
        float rr = sqrtf(rng_uniform(r)), th = 2.0f * PI_F * rng_uniform(r);
        p[0] = rr * cosf(th); p[1] = 0.0f; p[2] = rr * sinf(th);
        break;
    }
    default:   /* 13: bowl, the lower half of the unit sphere, open */
        unit_sphere(r, p);
        p[1] = -fabsf(p[1]);
        break;
    }
}

/* ---- one cloud ---------------------------------------------------------- */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Rotation matrix of a uniformly random unit quaternion. */
static void random_rotation(Rng *r, float R[9]) {
    float q[4], n2 = 0;
    do {
        n2 = 0;
        for (int i = 0; i < 4; i++) { q[i] = rng_normal(r); n2 += q[i] * q[i]; }
    } while (n2 < 1e-12f);
    float inv = 1.0f / sqrtf(n2), w = q[0] * inv, x = q[1] * inv, y = q[2] * inv, z = q[3] * inv;
    R[0] = 1 - 2 * (y * y + z * z); R[1] = 2 * (x * y - w * z);     R[2] = 2 * (x * z + w * y);
    R[3] = 2 * (x * y + w * z);     R[4] = 1 - 2 * (x * x + z * z); R[5] = 2 * (y * z - w * x);
    R[6] = 2 * (x * z - w * y);     R[7] = 2 * (y * z + w * x);     R[8] = 1 - 2 * (x * x + y * y);
}

/* Fills out (P,3). cand: 3*M floats, proj: 2*M floats of scratch. */
static void make_cloud(int k, int P, int M, Rng *r, float *out, float *cand, float *proj) {
    int n_out = (int)(S3_OUTLIER_MAX * rng_uniform(r) * P + 0.5f);
    int Ps = P - n_out;
    float s[3], R[9];
    for (int a = 0; a < 3; a++)
        s[a] = S3_SCALE_LO * powf(S3_SCALE_HI / S3_SCALE_LO, rng_uniform(r));
    random_rotation(r, R);
    for (int i = 0; i < M; i++) {
        float p[3], *c = cand + 3 * (size_t)i;
        sample_class(k, r, p);
        for (int a = 0; a < 3; a++) p[a] *= s[a];
        for (int a = 0; a < 3; a++) c[a] = R[3 * a] * p[0] + R[3 * a + 1] * p[1] + R[3 * a + 2] * p[2];
    }
    /* Missing cap: drop the fraction f of candidates farthest along d. */
    float thr = INFINITY, d[3] = {0, 0, 0};
    if (rng_uniform(r) < S3_CUT_PROB) {
        unit_sphere(r, d);
        float f = S3_CUT_LO + (S3_CUT_HI - S3_CUT_LO) * rng_uniform(r);
        for (int i = 0; i < M; i++) {
            const float *c = cand + 3 * (size_t)i;
            proj[i] = proj[M + i] = c[0] * d[0] + c[1] * d[1] + c[2] * d[2];
        }
        qsort(proj + M, (size_t)M, sizeof(float), cmp_float);
        int q = (int)((1.0f - f) * M);
        if (q < Ps) q = Ps;
        if (q < M) thr = proj[M + q];
    }
    int m = 0;
    for (int i = 0; i < M && m < Ps; i++) {
        const float *c = cand + 3 * (size_t)i;
        if (thr != INFINITY && c[0] * d[0] + c[1] * d[1] + c[2] * d[2] >= thr) continue;
        memcpy(out + 3 * (size_t)m++, c, 3 * sizeof(float));
    }
    for (int i = 0; m < Ps; i++)   /* only on exact ties at thr: reuse candidates */
        memcpy(out + 3 * (size_t)m++, cand + 3 * (size_t)(i % M), 3 * sizeof(float));
    /* Jitter. */
    for (int i = 0; i < 3 * Ps; i++) {
        float e = S3_JITTER * rng_normal(r);
        out[i] += e < -S3_JITTER_CLIP ? -S3_JITTER_CLIP : (e > S3_JITTER_CLIP ? S3_JITTER_CLIP : e);
    }
    /* Outliers: uniform in the ball around the surface points' mean that
     * holds them all. */
    double mu[3] = {0, 0, 0};
    for (int i = 0; i < Ps; i++)
        for (int a = 0; a < 3; a++) mu[a] += out[3 * i + a];
    for (int a = 0; a < 3; a++) mu[a] /= Ps;
    float rmax = 0;
    for (int i = 0; i < Ps; i++) {
        float dx = out[3 * i] - (float)mu[0], dy = out[3 * i + 1] - (float)mu[1],
              dz = out[3 * i + 2] - (float)mu[2], dd = dx * dx + dy * dy + dz * dz;
        if (dd > rmax) rmax = dd;
    }
    rmax = sqrtf(rmax);
    for (int i = Ps; i < P; i++) {
        float v[3], n2;
        do {
            for (int a = 0; a < 3; a++) v[a] = 2.0f * rng_uniform(r) - 1.0f;
            n2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
        } while (n2 > 1.0f);
        for (int a = 0; a < 3; a++) out[3 * i + a] = (float)mu[a] + rmax * v[a];
    }
    /* Shuffle so outliers and cap edges are not at fixed positions (FPS
     * starts at point 0). */
    for (int i = P; i > 1; i--) {
        int j = (int)rng_below(r, (uint32_t)i);
        for (int a = 0; a < 3; a++) {
            float t = out[3 * (i - 1) + a];
            out[3 * (i - 1) + a] = out[3 * j + a];
            out[3 * j + a] = t;
        }
    }
    points_normalize(out, P);
}

int shapes3d_generate(int n, int P, uint64_t seed, int train, PointSet *out, Err *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!out) return err_set(err, ERR_USAGE, "shapes3d: NULL output");
    if (n < 1 || P < 16 || P > (1 << 24))
        return err_set(err, ERR_USAGE, "shapes3d: %d clouds of %d points; need n >= 1 and "
                       "16 <= points <= 2^24", n, P);
    if ((size_t)n * P > ((size_t)1 << 34))
        return err_set(err, ERR_USAGE, "shapes3d: %d x %d points is too large", n, P);
    snprintf(out->name, sizeof out->name, "shapes3d");
    snprintf(out->source, sizeof out->source, "shapes3d generator (%s split, seed %" PRIu64 ")",
             train ? "train" : "test", seed);
    out->n = n;
    out->P = P;
    out->num_classes = SHAPES3D_NUM_CLASSES;
    out->xyz = malloc((size_t)n * P * 3 * sizeof(float));
    out->labels = malloc((size_t)n * sizeof(int));
    out->class_names = calloc(SHAPES3D_NUM_CLASSES, sizeof(char *));
    int oom = !out->xyz || !out->labels || !out->class_names;
    for (int k = 0; !oom && k < SHAPES3D_NUM_CLASSES; k++)
        oom = !(out->class_names[k] = strdup(kNames[k]));
    if (oom) {
        pointset_free(out);
        return err_set(err, ERR_RUNTIME, "shapes3d: out of memory for %d clouds", n);
    }
    int M = (int)ceilf(S3_OVERSAMPLE * P) + 1;
    #pragma omp parallel
    {
        float *cand = malloc((size_t)M * 3 * sizeof(float));
        float *proj = malloc((size_t)M * 2 * sizeof(float));
        if (!cand || !proj) {
            #pragma omp atomic write
            oom = 1;
        }
        #pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            if (!cand || !proj) continue;
            Rng r;
            rng_seed_stream(&r, seed, 2 * (uint64_t)i + (train ? 1 : 0));
            out->labels[i] = i % SHAPES3D_NUM_CLASSES;
            make_cloud(out->labels[i], P, M, &r, out->xyz + (size_t)i * P * 3, cand, proj);
        }
        free(cand); free(proj);
    }
    if (oom) {
        pointset_free(out);
        return err_set(err, ERR_RUNTIME, "shapes3d: out of memory");
    }
    return 0;
}
