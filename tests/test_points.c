/* Tests for the 3D point-cloud track: FPS and kNN on hand-made and random
 * clouds, the shapes3d generator (deterministic, normalised, classes distinct
 * but not trivial: a nearest-centroid baseline), the ModelNet40 loader on
 * fixtures in the real layout (good and broken), 3D augmentation, and
 * finite-difference checks of the mini-PointNet patch embedding and the
 * centre position embedding (tolerance: tests/gradcheck.h, GC_TOL). */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include <sys/stat.h>
#include "../datasets/points.h"
#include "../core/layers/pointnet.h"
#include "gradcheck.h"
#include "testutil.h"

static float *zf(size_t n) { float *p = calloc(n ? n : 1, sizeof(float)); cr_assert(p); return p; }

static float d2(const float *a, const float *b) {
    float dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
    return dx * dx + dy * dy + dz * dz;
}

/* ---- FPS -------------------------------------------------------------------- */

Test(fps, line_by_hand) {
    /* x = 0, 1, 2, 10, 5: from 0 the farthest is 10 (3); then 5 (4, min dist 5);
     * then 2 (2, min dist 2); then 1. */
    float xyz[15] = {0, 0, 0, 1, 0, 0, 2, 0, 0, 10, 0, 0, 5, 0, 0};
    int idx[5];
    cr_assert_eq(fps(xyz, 5, 5, idx, NULL), 0);
    int want[5] = {0, 3, 4, 2, 1};
    for (int i = 0; i < 5; i++) cr_expect_eq(idx[i], want[i], "pick %d: %d != %d", i, idx[i], want[i]);
}

Test(fps, square_ties_go_to_lowest_index) {
    /* Unit square corners: from (0,0) the far corner (3); then 1 and 2 tie. */
    float xyz[12] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0};
    int idx[4];
    cr_assert_eq(fps(xyz, 4, 4, idx, NULL), 0);
    int want[4] = {0, 3, 1, 2};
    for (int i = 0; i < 4; i++) cr_expect_eq(idx[i], want[i]);
    /* bad sizes */
    cr_expect_eq(fps(xyz, 4, 5, idx, NULL), ERR_USAGE);
    cr_expect_eq(fps(xyz, 4, 0, idx, NULL), ERR_USAGE);
}

Test(fps, each_pick_is_farthest_from_chosen_set) {
    Rng r; rng_seed(&r, 11);
    int P = 300, G = 40;
    float *xyz = zf(3 * (size_t)P);
    gc_fill(xyz, 3 * (size_t)P, &r, 1);
    int idx[40];
    cr_assert_eq(fps(xyz, P, G, idx, NULL), 0);
    cr_expect_eq(idx[0], 0);
    for (int g = 1; g < G; g++) {
        /* brute force: min distance of every point to idx[0..g) */
        float best = -1; int bi = -1;
        for (int i = 0; i < P; i++) {
            float m = INFINITY;
            for (int j = 0; j < g; j++) { float d = d2(xyz + 3 * i, xyz + 3 * idx[j]); if (d < m) m = d; }
            if (m > best) { best = m; bi = i; }
        }
        cr_expect_eq(idx[g], bi, "pick %d: %d, brute force %d", g, idx[g], bi);
    }
    free(xyz);
}

/* ---- kNN and grouping ------------------------------------------------------- */

typedef struct { float d; int i; } DI;
static int cmp_di(const void *a, const void *b) {
    const DI *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Brute-force k nearest by full sort of (distance, index). */
static void knn_brute(const float *xyz, int P, const float *q, int k, int *idx) {
    DI *v = malloc((size_t)P * sizeof *v);
    for (int i = 0; i < P; i++) { v[i].d = d2(xyz + 3 * i, q); v[i].i = i; }
    qsort(v, (size_t)P, sizeof *v, cmp_di);
    for (int j = 0; j < k; j++) idx[j] = v[j].i;
    free(v);
}

Test(knn, matches_brute_force) {
    Rng r; rng_seed(&r, 12);
    int P = 257;
    float *xyz = zf(3 * (size_t)P);
    gc_fill(xyz, 3 * (size_t)P, &r, 1);
    int ks[4] = {1, 7, 32, P};
    for (int t = 0; t < 4; t++) {
        int k = ks[t];
        int *a = malloc((size_t)k * sizeof *a), *b = malloc((size_t)k * sizeof *b);
        for (int qi = 0; qi < 20; qi++) {
            float q[3] = {rng_normal(&r), rng_normal(&r), rng_normal(&r)};
            knn(xyz, P, q, k, a);
            knn_brute(xyz, P, q, k, b);
            for (int j = 0; j < k; j++) cr_assert_eq(a[j], b[j], "k=%d q=%d j=%d: %d != %d", k, qi, j, a[j], b[j]);
        }
        free(a); free(b);
    }
    /* exact ties: a grid; equal distances keep index order */
    float grid[27 * 3];
    for (int i = 0; i < 27; i++) { grid[3 * i] = (float)(i % 3); grid[3 * i + 1] = (float)(i / 3 % 3); grid[3 * i + 2] = (float)(i / 9); }
    int a[10], b[10];
    knn(grid, 27, grid + 3 * 13, 10, a);
    knn_brute(grid, 27, grid + 3 * 13, 10, b);
    for (int j = 0; j < 10; j++) cr_expect_eq(a[j], b[j]);
    free(xyz);
}

Test(knn, group_centers_and_patches) {
    Rng r; rng_seed(&r, 13);
    int B = 3, P = 200, G = 16, k = 8;
    float *xyz = zf((size_t)B * P * 3), *cent = zf((size_t)B * G * 3), *patch = zf((size_t)B * G * k * 3);
    int *ci = malloc((size_t)B * G * sizeof(int)), *ki = malloc((size_t)B * G * k * sizeof(int));
    gc_fill(xyz, (size_t)B * P * 3, &r, 1);
    Err err = {0};
    cr_assert_eq(points_group(cent, patch, ci, ki, xyz, B, P, G, k, &err), 0, "%s", err.msg);
    int idx[16], nb[8];
    for (int b = 0; b < B; b++) {
        const float *cl = xyz + (size_t)b * P * 3;
        fps(cl, P, G, idx, NULL);
        for (int g = 0; g < G; g++) {
            size_t bg = (size_t)b * G + g;
            cr_assert_eq(ci[bg], idx[g]);
            for (int a = 0; a < 3; a++) cr_assert_eq(cent[3 * bg + a], cl[3 * idx[g] + a]);
            knn_brute(cl, P, cl + 3 * idx[g], k, nb);
            cr_assert_eq(nb[0], idx[g]);   /* the centre is its own nearest point */
            for (int j = 0; j < k; j++) {
                cr_assert_eq(ki[bg * k + j], nb[j]);
                for (int a = 0; a < 3; a++)
                    cr_assert_float_eq(patch[(bg * k + j) * 3 + a], cl[3 * nb[j] + a] - cl[3 * idx[g] + a], 1e-7);
            }
        }
    }
    cr_expect_eq(points_group(cent, patch, NULL, NULL, xyz, B, P, P + 1, k, &err), ERR_USAGE);
    cr_expect(strstr(err.msg, "G=201"), "%s", err.msg);
    free(xyz); free(cent); free(patch); free(ci); free(ki);
}

/* ---- shapes3d --------------------------------------------------------------- */

Test(shapes3d, deterministic_for_seed_and_threads) {
    PointSet a, b, c, d, e;
    Err err = {0};
    int n = 30, P = 128;
    cr_assert_eq(shapes3d_generate(n, P, 7, 1, &a, &err), 0, "%s", err.msg);
    int th = omp_get_max_threads();
    omp_set_num_threads(1);
    cr_assert_eq(shapes3d_generate(n, P, 7, 1, &b, &err), 0, "%s", err.msg);
    omp_set_num_threads(th);
    cr_assert_eq(shapes3d_generate(n, P, 8, 1, &c, &err), 0);
    cr_assert_eq(shapes3d_generate(n, P, 7, 0, &d, &err), 0);
    cr_assert_eq(shapes3d_generate(n + 5, P, 7, 1, &e, &err), 0);
    size_t bytes = (size_t)n * P * 3 * sizeof(float);
    cr_expect(memcmp(a.xyz, b.xyz, bytes) == 0, "same seed, different thread count differ");
    cr_expect(memcmp(a.labels, b.labels, n * sizeof(int)) == 0);
    cr_expect(memcmp(a.xyz, c.xyz, bytes) != 0, "different seeds give the same clouds");
    cr_expect(memcmp(a.xyz, d.xyz, bytes) != 0, "train and test share clouds");
    cr_expect(memcmp(a.xyz, e.xyz, bytes) == 0, "a longer set does not extend the shorter one");
    /* names, labels, normalisation */
    cr_expect_eq(a.num_classes, SHAPES3D_NUM_CLASSES);
    cr_expect_geq(a.num_classes, 10);
    cr_expect_str_eq(a.name, "shapes3d");
    cr_expect_str_eq(a.class_names[0], "sphere");
    cr_expect_str_eq(a.class_names[8], "torus_thin");
    for (int i = 0; i < n; i++) {
        cr_expect_eq(a.labels[i], i % SHAPES3D_NUM_CLASSES);
        double m[3] = {0, 0, 0}, rmax = 0;
        for (int j = 0; j < P; j++)
            for (int q = 0; q < 3; q++) m[q] += a.xyz[((size_t)i * P + j) * 3 + q];
        for (int j = 0; j < P; j++) {
            const float *p = a.xyz + ((size_t)i * P + j) * 3;
            double rr = sqrt((double)p[0] * p[0] + (double)p[1] * p[1] + (double)p[2] * p[2]);
            if (rr > rmax) rmax = rr;
            cr_assert(isfinite(p[0]) && isfinite(p[1]) && isfinite(p[2]));
        }
        for (int q = 0; q < 3; q++) cr_expect_lt(fabs(m[q] / P), 1e-5);
        cr_expect_float_eq(rmax, 1.0, 1e-5);
    }
    Err e2 = {0};
    PointSet bad;
    cr_expect_eq(shapes3d_generate(0, P, 1, 1, &bad, &e2), ERR_USAGE);
    cr_expect_eq(shapes3d_generate(4, 8, 1, 1, &bad, &e2), ERR_USAGE);
    cr_expect(strstr(e2.msg, "shapes3d"), "%s", e2.msg);
    pointset_free(&a); pointset_free(&b); pointset_free(&c); pointset_free(&d); pointset_free(&e);
}

/* Eigenvalues of a symmetric 3x3 matrix by cyclic Jacobi, sorted descending. */
static void eig3(double A[3][3], double ev[3]) {
    for (int sweep = 0; sweep < 50; sweep++) {
        double off = A[0][1] * A[0][1] + A[0][2] * A[0][2] + A[1][2] * A[1][2];
        if (off < 1e-24) break;
        for (int p = 0; p < 2; p++)
            for (int q = p + 1; q < 3; q++) {
                if (fabs(A[p][q]) < 1e-30) continue;
                double th = 0.5 * atan2(2 * A[p][q], A[q][q] - A[p][p]);
                double c = cos(th), s = sin(th);
                for (int k = 0; k < 3; k++) {   /* A = A J */
                    double akp = A[k][p], akq = A[k][q];
                    A[k][p] = c * akp - s * akq; A[k][q] = s * akp + c * akq;
                }
                for (int k = 0; k < 3; k++) {   /* A = J^T A */
                    double apk = A[p][k], aqk = A[q][k];
                    A[p][k] = c * apk - s * aqk; A[q][k] = s * apk + c * aqk;
                }
            }
    }
    for (int i = 0; i < 3; i++) ev[i] = A[i][i];
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (ev[j] > ev[i]) { double t = ev[i]; ev[i] = ev[j]; ev[j] = t; }
}

enum { NBINS = 10, NFEAT = 3 + NBINS };

/* Simple shape statistics: sorted covariance eigenvalues and a histogram of
 * distances from the centroid (clouds are centred, radius 1). */
static void shape_features(const float *xyz, int P, double *f) {
    double C[3][3] = {{0}};
    memset(f, 0, NFEAT * sizeof *f);
    for (int i = 0; i < P; i++) {
        const float *p = xyz + 3 * i;
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) C[a][b] += (double)p[a] * p[b] / P;
        double r = sqrt((double)p[0] * p[0] + (double)p[1] * p[1] + (double)p[2] * p[2]);
        int bin = (int)(r * NBINS);
        f[3 + (bin < NBINS ? bin : NBINS - 1)] += 1.0 / P;
    }
    eig3(C, f);
}

Test(shapes3d, nearest_centroid_baseline_is_above_chance_but_far_from_perfect) {
    int K = SHAPES3D_NUM_CLASSES, ntr = 40 * K, nte = 30 * K, P = 512;
    PointSet tr, te;
    Err err = {0};
    cr_assert_eq(shapes3d_generate(ntr, P, 1, 1, &tr, &err), 0, "%s", err.msg);
    cr_assert_eq(shapes3d_generate(nte, P, 1, 0, &te, &err), 0, "%s", err.msg);
    double *ftr = malloc((size_t)ntr * NFEAT * sizeof(double));
    double *fte = malloc((size_t)nte * NFEAT * sizeof(double));
    for (int i = 0; i < ntr; i++) shape_features(tr.xyz + (size_t)i * P * 3, P, ftr + (size_t)i * NFEAT);
    for (int i = 0; i < nte; i++) shape_features(te.xyz + (size_t)i * P * 3, P, fte + (size_t)i * NFEAT);
    /* standardise with the train statistics */
    double mu[NFEAT] = {0}, sd[NFEAT] = {0};
    for (int i = 0; i < ntr; i++) for (int j = 0; j < NFEAT; j++) mu[j] += ftr[i * NFEAT + j] / ntr;
    for (int i = 0; i < ntr; i++)
        for (int j = 0; j < NFEAT; j++) { double e = ftr[i * NFEAT + j] - mu[j]; sd[j] += e * e / ntr; }
    for (int j = 0; j < NFEAT; j++) sd[j] = sqrt(sd[j]) + 1e-9;
    double cen[SHAPES3D_NUM_CLASSES][NFEAT] = {{0}};
    int cnt[SHAPES3D_NUM_CLASSES] = {0};
    for (int i = 0; i < ntr; i++) {
        int y = tr.labels[i];
        cnt[y]++;
        for (int j = 0; j < NFEAT; j++) cen[y][j] += (ftr[i * NFEAT + j] - mu[j]) / sd[j];
    }
    for (int k = 0; k < K; k++) for (int j = 0; j < NFEAT; j++) cen[k][j] /= cnt[k];
    int correct = 0, percls[SHAPES3D_NUM_CLASSES] = {0};
    for (int i = 0; i < nte; i++) {
        int best = 0; double bd = INFINITY;
        for (int k = 0; k < K; k++) {
            double dd = 0;
            for (int j = 0; j < NFEAT; j++) { double e = (fte[i * NFEAT + j] - mu[j]) / sd[j] - cen[k][j]; dd += e * e; }
            if (dd < bd) { bd = dd; best = k; }
        }
        if (best == te.labels[i]) { correct++; percls[best]++; }
    }
    double acc = (double)correct / nte;
    fprintf(stderr, "shapes3d nearest-centroid (cov eigenvalues + radial histogram, %d train / %d test, "
            "%d points): accuracy %.4f (chance %.4f)\n  per class:", ntr, nte, P, acc, 1.0 / K);
    for (int k = 0; k < K; k++) fprintf(stderr, " %s %.2f", tr.class_names[k], percls[k] / (nte / (double)K));
    fprintf(stderr, "\n");
    cr_expect_gt(acc, 3.0 / K, "classes indistinguishable by simple statistics: %.3f", acc);
    cr_expect_lt(acc, 0.85, "classes trivially separable by simple statistics: %.3f", acc);
    free(ftr); free(fte);
    pointset_free(&tr); pointset_free(&te);
}

/* ---- augmentation ------------------------------------------------------------ */

Test(augment, rotation_about_y_scale_translate_jitter) {
    Rng r; rng_seed(&r, 21);
    int B = 5, P = 64;
    size_t n = (size_t)B * P * 3;
    float *x0 = zf(n), *x = zf(n), *x2 = zf(n);
    gc_fill(x0, n, &r, 1);
    /* rotation only: y unchanged, xz radius unchanged, something moved */
    Augment3D rot = {.rotate = 3.14159265f};
    memcpy(x, x0, n * sizeof(float));
    Rng a; rng_seed(&a, 5);
    points_augment(x, B, P, &rot, &a);
    double moved = 0;
    for (size_t i = 0; i < n; i += 3) {
        cr_assert_float_eq(x[i + 1], x0[i + 1], 1e-6);
        cr_assert_float_eq(hypotf(x[i], x[i + 2]), hypotf(x0[i], x0[i + 2]), 1e-5);
        moved += fabsf(x[i] - x0[i]);
    }
    cr_expect_gt(moved, 1.0);
    /* scale + translate: an affine map per axis within the ranges */
    Augment3D st = {.scale_lo = 0.5f, .scale_hi = 2.0f, .translate = 0.2f};
    memcpy(x, x0, n * sizeof(float));
    points_augment(x, B, P, &st, &a);
    for (int b = 0; b < B; b++)
        for (int ax = 0; ax < 3; ax++) {
            size_t i0 = (size_t)b * P * 3 + ax, i1 = i0 + 3;
            float s = (x[i1] - x[i0]) / (x0[i1] - x0[i0]), t = x[i0] - s * x0[i0];
            cr_expect(s >= 0.5f - 1e-4f && s <= 2.0f + 1e-4f, "scale %f", s);
            cr_expect(fabsf(t) <= 0.2f + 1e-4f, "shift %f", t);
            for (int j = 0; j < P; j++) {
                size_t i = (size_t)b * P * 3 + 3 * j + ax;
                cr_assert_float_eq(x[i], s * x0[i] + t, 1e-4);
            }
        }
    /* jitter clipped; deterministic for the rng state, independent of threads */
    Augment3D jt = {.jitter_sigma = 0.01f, .jitter_clip = 0.02f, .rotate = 0.5f};
    memcpy(x, x0, n * sizeof(float));
    memcpy(x2, x0, n * sizeof(float));
    Rng r1, r2; rng_seed(&r1, 9); rng_seed(&r2, 9);
    points_augment(x, B, P, &jt, &r1);
    int th = omp_get_max_threads();
    omp_set_num_threads(1);
    points_augment(x2, B, P, &jt, &r2);
    omp_set_num_threads(th);
    cr_expect(memcmp(x, x2, n * sizeof(float)) == 0);
    cr_expect_eq(rng_u64(&r1), rng_u64(&r2));
    Augment3D jo = {.jitter_sigma = 0.01f, .jitter_clip = 0.02f};
    memcpy(x, x0, n * sizeof(float));
    points_augment(x, B, P, &jo, &r1);
    for (size_t i = 0; i < n; i++) cr_assert_leq(fabsf(x[i] - x0[i]), 0.02f + 1e-6f);
    /* pointset_batch copies clouds and labels */
    PointSet s = {.n = B, .P = P, .num_classes = 2, .xyz = x0};
    int labels[5] = {0, 1, 0, 1, 1}, idx[2] = {3, 1}, y[2];
    s.labels = labels;
    pointset_batch(&s, idx, 2, NULL, NULL, x, y);
    cr_expect(memcmp(x, x0 + 3 * (size_t)3 * P, (size_t)P * 3 * sizeof(float)) == 0);
    cr_expect_eq(y[0], 1); cr_expect_eq(y[1], 1);
    Augment3D def = augment3d_default();
    cr_expect_float_eq(def.scale_lo, 2.0f / 3.0f, 1e-6);
    cr_expect_float_eq(def.translate, 0.2f, 1e-6);
    free(x0); free(x); free(x2);
}

/* ---- ModelNet40 loader --------------------------------------------------------- */

static char *tmp;
static void mn_setup(void) { tmp = tu_tmpdir(); }
static void mn_teardown(void) { tu_rmrf(tmp); free(tmp); }
TestSuite(modelnet40, .init = mn_setup, .fini = mn_teardown);

#define ASSERT_FAILS(rc, err, path, what) do {                                         \
        cr_assert_eq((rc), ERR_RUNTIME, "rc %d: %s", (rc), (err).msg);                \
        cr_assert_eq((err).code, ERR_RUNTIME);                                         \
        cr_assert(strstr((err).msg, (path)), "msg lacks path %s: %s", (path), (err).msg); \
        cr_assert(strstr((err).msg, (what)), "msg lacks '%s': %s", (what), (err).msg); \
    } while (0)

static void put(const char *rel, const char *text) {
    free(tu_write(tmp, rel, text, strlen(text)));
}

/* Coordinates of point j of shape s: distinct, deterministic. */
static void pt(int s, int j, float *p) {
    p[0] = (float)(s + 1) * 0.1f + 0.01f * (float)j;
    p[1] = (float)((j * 7) % 13) * 0.05f - 0.3f;
    p[2] = (float)((j * 5 + s) % 11) * -0.04f;
}

/* Writes <class>/<id>.txt with n points in the real format. */
static void put_shape(const char *cls, const char *id, int s, int n) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/%s", tmp, cls);
    mkdir(rel, 0755);
    size_t cap = (size_t)n * 96 + 1, len = 0;
    char *buf = malloc(cap);
    buf[0] = '\0';
    for (int j = 0; j < n; j++) {
        float p[3];
        pt(s, j, p);
        len += (size_t)snprintf(buf + len, cap - len, "%.6f,%.6f,%.6f,%.6f,%.6f,%.6f\n",
                                p[0], p[1], p[2], 0.0, 1.0, 0.0);
    }
    snprintf(rel, sizeof rel, "%s/%s.txt", cls, id);
    put(rel, buf);
    free(buf);
}

/* 3 classes (night_stand exercises the underscore), 2+1+2 train, 1 each test. */
static void make_fixture(int npts) {
    put("modelnet40_shape_names.txt", "airplane\nnight_stand\nchair\n");
    put("modelnet40_train.txt", "airplane_0001\nairplane_0002\nnight_stand_0001\nchair_0001\nchair_0002\n");
    put("modelnet40_test.txt", "airplane_0003\r\nnight_stand_0002\r\nchair_0003\r\n");
    put_shape("airplane", "airplane_0001", 0, npts);
    put_shape("airplane", "airplane_0002", 1, npts);
    put_shape("night_stand", "night_stand_0001", 2, npts);
    put_shape("chair", "chair_0001", 3, npts);
    put_shape("chair", "chair_0002", 4, npts);
    put_shape("airplane", "airplane_0003", 5, npts);
    put_shape("night_stand", "night_stand_0002", 6, npts);
    put_shape("chair", "chair_0003", 7, npts);
}

Test(modelnet40, loads_real_layout) {
    make_fixture(40);
    PointSet s, t;
    Err err = {0};
    cr_assert_eq(modelnet40_load(tmp, 1, 32, PN_SAMPLE_FIRST, 0, &s, &err), 0, "%s", err.msg);
    cr_expect_eq(s.n, 5); cr_expect_eq(s.P, 32); cr_expect_eq(s.num_classes, 3);
    cr_expect_str_eq(s.name, "modelnet40");
    cr_expect_str_eq(s.class_names[1], "night_stand");
    int want[5] = {0, 0, 1, 2, 2};
    for (int i = 0; i < 5; i++) cr_expect_eq(s.labels[i], want[i]);
    /* first 32 points of shape 2 (night_stand_0001), normalised */
    float ref[32 * 3];
    for (int j = 0; j < 32; j++) pt(2, j, ref + 3 * j);
    /* the file holds %.6f-rounded values: round the reference the same way */
    for (int j = 0; j < 96; j++) { char b[32]; snprintf(b, sizeof b, "%.6f", ref[j]); ref[j] = strtof(b, NULL); }
    points_normalize(ref, 32);
    for (int j = 0; j < 96; j++) cr_assert_float_eq(s.xyz[2 * 32 * 3 + j], ref[j], 1e-5);
    /* test split, CRLF list */
    cr_assert_eq(modelnet40_load(tmp, 0, 40, PN_SAMPLE_FIRST, 0, &t, &err), 0, "%s", err.msg);
    cr_expect_eq(t.n, 3);
    cr_expect_eq(t.labels[2], 2);
    pointset_free(&t);
    /* seeded random selection: deterministic, distinct points, unit sphere */
    PointSet r1, r2, r3;
    cr_assert_eq(modelnet40_load(tmp, 1, 16, PN_SAMPLE_RANDOM, 3, &r1, &err), 0, "%s", err.msg);
    cr_assert_eq(modelnet40_load(tmp, 1, 16, PN_SAMPLE_RANDOM, 3, &r2, &err), 0, "%s", err.msg);
    cr_assert_eq(modelnet40_load(tmp, 1, 16, PN_SAMPLE_RANDOM, 4, &r3, &err), 0, "%s", err.msg);
    cr_expect(memcmp(r1.xyz, r2.xyz, 5 * 16 * 3 * sizeof(float)) == 0);
    cr_expect(memcmp(r1.xyz, r3.xyz, 5 * 16 * 3 * sizeof(float)) != 0);
    for (int i = 0; i < 5; i++) {
        float rmax = 0;
        for (int j = 0; j < 16; j++) {
            const float *p = r1.xyz + ((size_t)i * 16 + j) * 3;
            rmax = fmaxf(rmax, sqrtf(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]));
            for (int j2 = 0; j2 < j; j2++) cr_assert_gt(d2(p, r1.xyz + ((size_t)i * 16 + j2) * 3), 0.0f);
        }
        cr_expect_float_eq(rmax, 1.0f, 1e-5);
    }
    pointset_free(&r1); pointset_free(&r2); pointset_free(&r3);
    /* FPS selection: the chosen points are the FPS of the file's points */
    PointSet f;
    cr_assert_eq(modelnet40_load(tmp, 1, 8, PN_SAMPLE_FPS, 0, &f, &err), 0, "%s", err.msg);
    float all[40 * 3], sel[8 * 3];
    int idx[8];
    for (int j = 0; j < 40; j++) pt(0, j, all + 3 * j);
    for (int j = 0; j < 120; j++) { char b[32]; snprintf(b, sizeof b, "%.6f", all[j]); all[j] = strtof(b, NULL); }
    fps(all, 40, 8, idx, NULL);
    for (int j = 0; j < 8; j++) memcpy(sel + 3 * j, all + 3 * idx[j], 3 * sizeof(float));
    points_normalize(sel, 8);
    for (int j = 0; j < 24; j++) cr_assert_float_eq(f.xyz[j], sel[j], 1e-5);
    pointset_free(&f);
    pointset_free(&s);
}

Test(modelnet40, fewer_classes_in_shape_names) {
    make_fixture(20);
    put("modelnet40_shape_names.txt", "chair\nairplane\n");
    PointSet s;
    Err err = {0};
    cr_assert_eq(modelnet40_load(tmp, 1, 20, PN_SAMPLE_FIRST, 0, &s, &err), 0, "%s", err.msg);
    cr_expect_eq(s.num_classes, 2);
    cr_expect_eq(s.n, 4);
    int want[4] = {1, 1, 0, 0};   /* airplane x2, chair x2; night_stand skipped */
    for (int i = 0; i < 4; i++) cr_expect_eq(s.labels[i], want[i]);
    cr_expect_eq(s.n_unmatched, 1, "the skipped night_stand entry is counted");
    pointset_free(&s);
}

/* Issue 11.2: a misspelled class in the names file had no shapes and the
 * real class's entries were dropped silently; now it is an error naming the
 * names file's line. */
Test(modelnet40, declared_class_without_shapes) {
    make_fixture(20);
    put("modelnet40_shape_names.txt", "airplane\nnightstand\nchair\n");
    PointSet s;
    Err err = {0};
    int rc = modelnet40_load(tmp, 1, 20, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "modelnet40_shape_names.txt: line 2", "class 'nightstand' has no shapes");
    cr_assert(strstr(err.msg, "modelnet40_train.txt"), "%s", err.msg);
}

Test(modelnet40, wrong_field_count) {
    make_fixture(20);
    put("chair/chair_0001.txt", "0,0,0,0,1,0\n1,0,0,0,1,0\n0,1,0,0,1,0\n0,0,1,0,1,0\n1,2,3,4,5\n");
    PointSet s;
    Err err = {0};
    int rc = modelnet40_load(tmp, 1, 4, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "chair/chair_0001.txt", "line 5");
    cr_expect(strstr(err.msg, "found 5"), "%s", err.msg);
    cr_expect_null(s.xyz);
    put("chair/chair_0001.txt", "0,0,0,0,1,0,7\n");
    rc = modelnet40_load(tmp, 1, 1, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "chair/chair_0001.txt", "line 1: expected 6 fields");
}

Test(modelnet40, text_garbage) {
    make_fixture(20);
    put("airplane/airplane_0002.txt", "0,0,0,0,1,0\n\n1,0,abc,0,1,0\n0,1,0,0,1,0\n");
    PointSet s;
    Err err = {0};
    int rc = modelnet40_load(tmp, 1, 2, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "airplane/airplane_0002.txt", "line 3: field 3 is not a finite number");
    put("airplane/airplane_0002.txt", "0,0,0,0,1,0\n1,0,0,nan,1,0\n");
    rc = modelnet40_load(tmp, 1, 2, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "airplane_0002.txt", "line 2: field 4");
    put("airplane/airplane_0002.txt", "0,0,0,0,1,0\n1,0,0,,1,0\n");
    rc = modelnet40_load(tmp, 1, 2, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "airplane_0002.txt", "line 2: field 4 is empty");
    put("airplane/airplane_0002.txt", "0,0,0,0,1,0\n\"1,0,0,0,1,0\n");
    rc = modelnet40_load(tmp, 1, 2, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "airplane_0002.txt", "line 2");
    /* binary junk */
    char junk[300];
    for (int i = 0; i < 300; i++) junk[i] = (char)((i * 97 + 13) % 251 + 1);
    free(tu_write(tmp, "airplane/airplane_0002.txt", junk, sizeof junk));
    rc = modelnet40_load(tmp, 1, 2, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "airplane_0002.txt", "line ");
}

Test(modelnet40, too_few_points_and_empty_file) {
    make_fixture(20);
    PointSet s;
    Err err = {0};
    int rc = modelnet40_load(tmp, 1, 21, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "airplane/airplane_0001.txt", "line 21: file ends after 20 points, need 21");
    put("chair/chair_0002.txt", "");
    rc = modelnet40_load(tmp, 1, 8, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "chair/chair_0002.txt", "no points");
}

Test(modelnet40, missing_files_and_bad_lists) {
    make_fixture(10);
    PointSet s;
    Err err = {0};
    char *p = tu_path(tmp, "night_stand/night_stand_0001.txt");
    cr_assert_eq(remove(p), 0);
    int rc = modelnet40_load(tmp, 1, 8, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, p, "cannot open");
    free(p);
    /* missing list */
    p = tu_path(tmp, "modelnet40_test.txt");
    remove(p);
    rc = modelnet40_load(tmp, 0, 8, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, p, "cannot open");
    free(p);
    /* malformed id */
    put("modelnet40_train.txt", "airplane_0001\n\nairplane\n");
    rc = modelnet40_load(tmp, 1, 8, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "modelnet40_train.txt", "line 3: malformed shape id 'airplane'");
    put("modelnet40_train.txt", "../x_0001\n");
    rc = modelnet40_load(tmp, 1, 8, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "modelnet40_train.txt", "line 1: malformed");
    /* no shape of a listed class */
    put("modelnet40_train.txt", "sofa_0001\n");
    rc = modelnet40_load(tmp, 1, 8, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "modelnet40_train.txt", "no shapes");
    /* empty and duplicate shape names, missing dir */
    put("modelnet40_shape_names.txt", "\n  \n");
    rc = modelnet40_load(tmp, 1, 8, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "modelnet40_shape_names.txt", "no class names");
    put("modelnet40_shape_names.txt", "chair\nairplane\nchair\n");
    rc = modelnet40_load(tmp, 1, 8, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "modelnet40_shape_names.txt", "line 3: duplicate class name 'chair'");
    p = tu_path(tmp, "nope");
    rc = modelnet40_load(p, 1, 8, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, p, "cannot open");
    free(p);
    cr_expect_eq(modelnet40_load(NULL, 1, 8, PN_SAMPLE_FIRST, 0, &s, &err), ERR_USAGE);
    cr_expect_eq(modelnet40_load(tmp, 1, 0, PN_SAMPLE_FIRST, 0, &s, &err), ERR_USAGE);
}

Test(modelnet40, first_error_in_list_order) {
    make_fixture(10);
    put("airplane/airplane_0002.txt", "1,2\n");
    put("chair/chair_0002.txt", "x,2,3,4,5,6\n");
    PointSet s;
    Err err = {0};
    int rc = modelnet40_load(tmp, 1, 1, PN_SAMPLE_FIRST, 0, &s, &err);
    ASSERT_FAILS(rc, err, "airplane/airplane_0002.txt", "line 1");
}

/* ---- gradient checks ---------------------------------------------------------- */

typedef struct {
    PointNetDims d;
    PointNetActs acts;
    PointNetParams p;
    float *x, *tok, *R;
    int B, G, N, k;     /* N = B * G patches */
    int *ref1, *ref2;   /* argmax of the unperturbed forward */
    int crossed;        /* a forward's argmax differs from ref */
} PnCtx;

static double pn_loss(void *c_) {
    PnCtx *c = c_;
    pointnet_forward(c->tok, &c->acts, &c->p, c->x, c->B, c->G, c->k);
    if (c->ref1 && (memcmp(c->ref1, c->acts.arg1, (size_t)c->N * c->d.c2 * sizeof(int)) ||
                    memcmp(c->ref2, c->acts.arg2, (size_t)c->N * c->d.D * sizeof(int))))
        c->crossed = 1;
    return gc_dot(c->tok, c->R, (size_t)c->N * c->d.D);
}

/* gc_check's measure, except that elements whose +-h perturbation moves an
 * argmax of a max-pool are skipped: the loss has a kink there and a central
 * difference across it is not a derivative. *skipped counts them. */
static double pn_check(float *x, const float *analytic, size_t n, PnCtx *c, int *skipped) {
    double gmax = 1e-12, dmax = 0;
    for (size_t i = 0; i < n; i++) if (fabs(analytic[i]) > gmax) gmax = fabs(analytic[i]);
    for (size_t i = 0; i < n; i++) {
        float save = x[i];
        c->crossed = 0;
        x[i] = save + GC_H; double lp = pn_loss(c);
        x[i] = save - GC_H; double lm = pn_loss(c);
        x[i] = save;
        if (c->crossed) { (*skipped)++; continue; }
        double d = fabs((lp - lm) / (2.0 * GC_H) - analytic[i]);
        if (d > dmax) dmax = d;
    }
    return dmax / gmax;
}

Test(gradcheck3d, pointnet_patch_embedding) {
    Rng r; rng_seed(&r, 31);
    PnCtx c = {.d = {.c1 = 6, .c2 = 5, .c3 = 7, .D = 4}, .B = 2, .G = 2, .N = 4, .k = 6};
    size_t np = pointnet_num_params(c.d), nx = (size_t)c.N * c.k * 3, nt = (size_t)c.N * c.d.D;
    cr_assert_eq(np, 6 * 3 + 2 * 6 + 5 * 6 + 7 * 10 + 2 * 7 + 4 * 7 + 4);
    float *w = zf(np), *dw = zf(np);
    c.x = zf(nx); c.tok = zf(nt); c.R = zf(nt);
    gc_fill(w, np, &r, 0.7f); gc_fill(c.x, nx, &r, 1); gc_fill(c.R, nt, &r, 1);
    pointnet_params_view(&c.p, w, c.d);
    PointNetParams g;
    pointnet_params_view(&g, dw, c.d);
    cr_assert_eq(pointnet_acts_alloc(&c.acts, c.d, c.N, c.k), 0);
    float *dx = zf(nx);
    pn_loss(&c);
    /* max-pool: each token channel is the max over its patch of h4 (in acts.sa) */
    for (int n = 0; n < c.N; n++)
        for (int ch = 0; ch < c.d.D; ch++) {
            float m = -INFINITY;
            for (int j = 0; j < c.k; j++) m = fmaxf(m, c.acts.sa[((size_t)n * c.k + j) * c.d.D + ch]);
            cr_assert_eq(c.tok[n * c.d.D + ch], m);
        }
    pointnet_backward(dx, &g, c.R, &c.acts, &c.p, c.x, c.B, c.G, c.k);
    struct { const char *name; float *v, *gv; size_t n; } t[9] = {
        {"w1", c.p.w1, g.w1, 18}, {"s1", c.p.s1, g.s1, 6}, {"t1", c.p.t1, g.t1, 6},
        {"w2", c.p.w2, g.w2, 30}, {"w3", c.p.w3, g.w3, 70},
        {"s3", c.p.s3, g.s3, 7}, {"t3", c.p.t3, g.t3, 7}, {"w4", c.p.w4, g.w4, 28},
        {"b4", c.p.b4, g.b4, 4}};
    c.ref1 = malloc((size_t)c.N * c.d.c2 * sizeof(int));
    c.ref2 = malloc((size_t)c.N * c.d.D * sizeof(int));
    memcpy(c.ref1, c.acts.arg1, (size_t)c.N * c.d.c2 * sizeof(int));
    memcpy(c.ref2, c.acts.arg2, (size_t)c.N * c.d.D * sizeof(int));
    int skipped = 0;
    for (int i = 0; i < 9; i++) {
        double e = pn_check(t[i].v, t[i].gv, t[i].n, &c, &skipped);
        cr_expect_lt(e, GC_TOL, "%s: relative error %g", t[i].name, e);
    }
    double ex = pn_check(c.x, dx, nx, &c, &skipped);
    cr_expect_lt(ex, GC_TOL, "x: relative error %g", ex);
    cr_expect_lt(skipped, (int)(np + nx) / 10, "%d of %zu elements cross a max-pool kink", skipped, np + nx);
    free(c.ref1); free(c.ref2);
    c.ref1 = c.ref2 = NULL;
    /* backward accumulates; NULL gradients are skipped */
    pn_loss(&c);
    float b40 = g.b4[0], w30 = g.w3[0];
    PointNetParams only_b4 = {.b4 = g.b4};
    pointnet_backward(NULL, &only_b4, c.R, &c.acts, &c.p, c.x, c.B, c.G, c.k);
    cr_expect_float_eq(g.b4[0], 2 * b40, 1e-5 * (1 + fabsf(b40)));
    cr_expect_eq(g.w3[0], w30);
    pointnet_acts_free(&c.acts);
    free(w); free(dw); free(c.x); free(c.tok); free(c.R); free(dx);
}

/* Naive reference of the mini-PointNet forward with an explicit concat
 * [global, local] (torch.cat order of Point-BERT's Encoder) and the instance
 * norms over each cloud's G*k points, in double. */
static double gelu_d(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

/* v (n rows of C, row stride C): per channel (v - mean) / sqrt(var + eps) * s + t */
static void inorm_d(double *v, int n, int C, const float *s, const float *t) {
    for (int c = 0; c < C; c++) {
        double m = 0, var = 0;
        for (int i = 0; i < n; i++) m += v[i * C + c];
        m /= n;
        for (int i = 0; i < n; i++) var += (v[i * C + c] - m) * (v[i * C + c] - m);
        double rs = 1.0 / sqrt(var / n + PN_NORM_EPS);
        for (int i = 0; i < n; i++) v[i * C + c] = (v[i * C + c] - m) * rs * s[c] + t[c];
    }
}

Test(gradcheck3d, pointnet_matches_naive_concat_reference) {
    Rng r; rng_seed(&r, 33);
    enum { B = 2, G = 2, K = 7, C1 = 5, C2 = 4, C3 = 6, DD = 3, NP = G * K };
    PointNetDims d = {.c1 = C1, .c2 = C2, .c3 = C3, .D = DD};
    int N = B * G, k = K;
    size_t np = pointnet_num_params(d), nx = (size_t)N * k * 3;
    float *w = zf(np), *x = zf(nx), *tok = zf((size_t)N * d.D);
    gc_fill(w, np, &r, 0.8f); gc_fill(x, nx, &r, 1);
    PointNetParams p;
    pointnet_params_view(&p, w, d);
    cr_assert_eq(p.b4 + d.D, w + np);
    PointNetActs a;
    cr_assert_eq(pointnet_acts_alloc(&a, d, N, k), 0);
    pointnet_forward(tok, &a, &p, x, B, G, k);
    for (int b = 0; b < B; b++) {
        double h1[NP * C1], f[NP * C2], g[G][C2], h3[NP * C3];
        for (int j = 0; j < NP; j++) {
            const float *pt3 = x + ((size_t)b * NP + j) * 3;
            for (int o = 0; o < C1; o++) {
                double h = 0;
                for (int i = 0; i < 3; i++) h += (double)p.w1[o * 3 + i] * pt3[i];
                h1[j * C1 + o] = h;
            }
        }
        inorm_d(h1, NP, C1, p.s1, p.t1);
        for (int j = 0; j < NP; j++)
            for (int o = 0; o < C2; o++) {
                double h = 0;
                for (int i = 0; i < C1; i++) h += (double)p.w2[o * C1 + i] * gelu_d(h1[j * C1 + i]);
                f[j * C2 + o] = h;
            }
        for (int q = 0; q < G; q++)
            for (int o = 0; o < C2; o++) {
                g[q][o] = f[q * K * C2 + o];
                for (int j = 1; j < K; j++) g[q][o] = fmax(g[q][o], f[(q * K + j) * C2 + o]);
            }
        for (int j = 0; j < NP; j++) {
            double cat[2 * C2];
            for (int i = 0; i < C2; i++) { cat[i] = g[j / K][i]; cat[C2 + i] = f[j * C2 + i]; }
            for (int o = 0; o < C3; o++) {
                double h = 0;
                for (int i = 0; i < 2 * C2; i++) h += (double)p.w3[o * 2 * C2 + i] * cat[i];
                h3[j * C3 + o] = h;
            }
        }
        inorm_d(h3, NP, C3, p.s3, p.t3);
        for (int q = 0; q < G; q++) {
            double out[DD];
            for (int o = 0; o < DD; o++) out[o] = -INFINITY;
            for (int j = q * K; j < (q + 1) * K; j++)
                for (int o = 0; o < DD; o++) {
                    double h = p.b4[o];
                    for (int i = 0; i < C3; i++) h += (double)p.w4[o * C3 + i] * gelu_d(h3[j * C3 + i]);
                    out[o] = fmax(out[o], h);
                }
            for (int o = 0; o < DD; o++) {
                float got = tok[((size_t)b * G + q) * DD + o];
                cr_expect_float_eq(got, out[o], 1e-4 * (1 + fabs(out[o])), "b=%d g=%d o=%d", b, q, o);
            }
        }
    }
    pointnet_acts_free(&a);
    free(w); free(x); free(tok);
}

typedef struct { PosEmbedParams p; float *c, *out, *h, *a, *R; int N, H, D; } PeCtx;
static double pe_loss(void *c_) {
    PeCtx *c = c_;
    posembed_forward(c->out, c->h, c->a, &c->p, c->c, c->N, c->H, c->D);
    return gc_dot(c->out, c->R, (size_t)c->N * c->D);
}

Test(gradcheck3d, centre_position_embedding) {
    Rng r; rng_seed(&r, 32);
    PeCtx c = {.N = 5, .H = 7, .D = 4};
    size_t np = posembed_num_params(c.H, c.D);
    cr_assert_eq(np, 7 * 3 + 7 + 4 * 7 + 4);
    float *w = zf(np), *dw = zf(np), *scratch = zf(2 * (size_t)c.N * c.H);
    c.c = zf(15); c.out = zf(20); c.h = zf(35); c.a = zf(35); c.R = zf(20);
    gc_fill(w, np, &r, 0.8f); gc_fill(c.c, 15, &r, 1); gc_fill(c.R, 20, &r, 1);
    posembed_params_view(&c.p, w, c.H, c.D);
    PosEmbedParams g;
    posembed_params_view(&g, dw, c.H, c.D);
    float *dc = zf(15);
    pe_loss(&c);
    posembed_backward(dc, &g, c.R, c.h, c.a, &c.p, c.c, c.N, c.H, c.D, scratch);
    cr_expect_lt(gc_check(c.p.w1, g.w1, 21, pe_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.p.b1, g.b1, 7, pe_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.p.w2, g.w2, 28, pe_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.p.b2, g.b2, 4, pe_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.c, dc, 15, pe_loss, &c, 0), GC_TOL);
    free(w); free(dw); free(scratch); free(c.c); free(c.out); free(c.h); free(c.a); free(c.R); free(dc);
}
