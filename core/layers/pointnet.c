/* Mini-PointNet patch embedding and centre position embedding (see
 * pointnet.h). Linear layers and GELU go through layers.h; the split layer 3
 * ([g, f] W3^T) multiplies column blocks of W3 through gemm.h, the engine's
 * one GEMM entry point (so train.precision applies). */
#include "pointnet.h"
#include "layers.h"
#include "../gemm.h"
#include <stdlib.h>
#include <string.h>

static int imax(int a, int b) { return a > b ? a : b; }

size_t pointnet_num_params(PointNetDims d) {
    return (size_t)d.c1 * 3 + 2 * (size_t)d.c1 + (size_t)d.c2 * d.c1 + (size_t)d.c3 * 2 * d.c2 +
           2 * (size_t)d.c3 + (size_t)d.D * d.c3 + d.D;
}

void pointnet_params_view(PointNetParams *p, float *buf, PointNetDims d) {
    p->w1 = buf; buf += (size_t)d.c1 * 3;
    p->s1 = buf; buf += d.c1;
    p->t1 = buf; buf += d.c1;
    p->w2 = buf; buf += (size_t)d.c2 * d.c1;
    p->w3 = buf; buf += (size_t)d.c3 * 2 * d.c2;
    p->s3 = buf; buf += d.c3;
    p->t3 = buf; buf += d.c3;
    p->w4 = buf; buf += (size_t)d.D * d.c3;
    p->b4 = buf;
}

void pointnet_acts_free(PointNetActs *a) {
    if (!a) return;
    free(a->h1); free(a->n1); free(a->a1); free(a->f); free(a->g); free(a->gz);
    free(a->h3); free(a->n3); free(a->a3);
    free(a->mean1); free(a->rstd1); free(a->mean3); free(a->rstd3);
    free(a->arg1); free(a->arg2); free(a->sa); free(a->sb); free(a->ss);
    memset(a, 0, sizeof *a);
}

int pointnet_acts_alloc(PointNetActs *a, PointNetDims d, int N, int k) {
    memset(a, 0, sizeof *a);
    if (N < 1 || k < 1 || d.c1 < 1 || d.c2 < 1 || d.c3 < 1 || d.D < 1) return -1;
    size_t M = (size_t)N * k;
    int wa = imax(imax(d.D, d.c3), imax(d.c2, d.c1)), wb = imax(imax(d.c3, d.c2), d.c1);
    size_t nss = (size_t)N * imax(d.c3 + d.c2, 2 * imax(d.c1, d.c3));
    a->N = N; a->k = k; a->d = d;
    a->h1 = malloc(M * d.c1 * sizeof(float));
    a->n1 = malloc(M * d.c1 * sizeof(float));
    a->a1 = malloc(M * d.c1 * sizeof(float));
    a->f = malloc(M * d.c2 * sizeof(float));
    a->g = malloc((size_t)N * d.c2 * sizeof(float));
    a->gz = malloc((size_t)N * d.c3 * sizeof(float));
    a->h3 = malloc(M * d.c3 * sizeof(float));
    a->n3 = malloc(M * d.c3 * sizeof(float));
    a->mean1 = malloc((size_t)N * d.c1 * sizeof(float));
    a->rstd1 = malloc((size_t)N * d.c1 * sizeof(float));
    a->mean3 = malloc((size_t)N * d.c3 * sizeof(float));
    a->rstd3 = malloc((size_t)N * d.c3 * sizeof(float));
    a->a3 = malloc(M * d.c3 * sizeof(float));
    a->arg1 = malloc((size_t)N * d.c2 * sizeof(int));
    a->arg2 = malloc((size_t)N * d.D * sizeof(int));
    a->sa = malloc(M * wa * sizeof(float));
    a->sb = malloc(M * wb * sizeof(float));
    a->ss = malloc(nss * sizeof(float));
    if (!a->h1 || !a->n1 || !a->a1 || !a->f || !a->g || !a->gz || !a->h3 || !a->n3 || !a->a3 ||
        !a->mean1 || !a->rstd1 || !a->mean3 || !a->rstd3 || !a->arg1 || !a->arg2 || !a->sa ||
        !a->sb || !a->ss) {
        pointnet_acts_free(a);
        return -1;
    }
    return 0;
}

/* out (N,C) = max over j < k of in (N*k, C); arg (N,C) = first argmax j. */
static void maxpool_forward(float *out, int *arg, const float *in, int N, int k, int C) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * C;
        int *ag = arg + (size_t)n * C;
        const float *r = in + (size_t)n * k * C;
        for (int c = 0; c < C; c++) { o[c] = r[c]; ag[c] = 0; }
        for (int j = 1; j < k; j++) {
            const float *rj = r + (size_t)j * C;
            for (int c = 0; c < C; c++)
                if (rj[c] > o[c]) { o[c] = rj[c]; ag[c] = j; }
        }
    }
}

/* din (N*k, C) += dout routed to the argmax rows. */
static void maxpool_backward(float *din, const float *dout, const int *arg, int N, int k, int C) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * C;
        const int *ag = arg + (size_t)n * C;
        float *di = din + (size_t)n * k * C;
        for (int c = 0; c < C; c++) di[(size_t)ag[c] * C + c] += d[c];
    }
}

void pointnet_forward(float *tok, PointNetActs *a, const PointNetParams *p, const float *x,
                      int B, int G, int k) {
    PointNetDims d = a->d;
    int N = B * G, M = N * k, c2x2 = 2 * d.c2;
    linear_forward(a->h1, x, p->w1, NULL, M, 3, d.c1);
    instnorm_forward(a->n1, a->mean1, a->rstd1, a->h1, p->s1, p->t1, B, G * k, d.c1, PN_NORM_EPS);
    gelu_forward(a->a1, a->n1, (size_t)M * d.c1);
    linear_forward(a->f, a->a1, p->w2, NULL, M, d.c1, d.c2);
    maxpool_forward(a->g, a->arg1, a->f, N, k, d.c2);
    /* gz = g W3g^T; h3 = f W3f^T + gz (broadcast over the patch) */
    gemm(0, 1, N, d.c3, d.c2, 1.0f, a->g, d.c2, p->w3, c2x2, 0.0f, a->gz, d.c3);
    gemm(0, 1, M, d.c3, d.c2, 1.0f, a->f, d.c2, p->w3 + d.c2, c2x2, 0.0f, a->h3, d.c3);
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *gz = a->gz + (size_t)n * d.c3;
        for (int j = 0; j < k; j++) {
            float *h = a->h3 + ((size_t)n * k + j) * d.c3;
            for (int c = 0; c < d.c3; c++) h[c] += gz[c];
        }
    }
    instnorm_forward(a->n3, a->mean3, a->rstd3, a->h3, p->s3, p->t3, B, G * k, d.c3, PN_NORM_EPS);
    gelu_forward(a->a3, a->n3, (size_t)M * d.c3);
    float *h4 = a->sa;
    linear_forward(h4, a->a3, p->w4, p->b4, M, d.c3, d.D);
    maxpool_forward(tok, a->arg2, h4, N, k, d.D);
}

void pointnet_backward(float *dx, PointNetParams *dp, const float *dtok, PointNetActs *a,
                       const PointNetParams *p, const float *x, int B, int G, int k) {
    PointNetDims d = a->d;
    int N = B * G, M = N * k, c2x2 = 2 * d.c2;
    float *sa = a->sa, *sb = a->sb;
    float *dsum = a->ss, *dg = a->ss + (size_t)N * d.c3;
    /* layer 4 and the final max-pool: dh4 in sa, da3 in sb */
    memset(sa, 0, (size_t)M * d.D * sizeof(float));
    maxpool_backward(sa, dtok, a->arg2, N, k, d.D);
    linear_backward_set(sb, dp ? dp->w4 : NULL, dp ? dp->b4 : NULL, sa, a->a3, p->w4, M, d.c3, d.D);
    /* GELU: dn3 in sa; instance norm: dh3 in sb (each set by its first write, layers.h) */
    gelu_backward_set(sa, sb, a->n3, (size_t)M * d.c3);
    instnorm_backward_set(sb, dp ? dp->s3 : NULL, dp ? dp->t3 : NULL, sa, a->h3, p->s3, a->mean3,
                          a->rstd3, B, G * k, d.c3, a->ss);
    const float *dh3 = sb;
    /* layer 3: dsum (N,c3) = per-patch sums of dh3 (fixed order) */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *s = dsum + (size_t)n * d.c3;
        memcpy(s, dh3 + (size_t)n * k * d.c3, (size_t)d.c3 * sizeof(float));
        for (int j = 1; j < k; j++) {
            const float *r = dh3 + ((size_t)n * k + j) * d.c3;
            for (int c = 0; c < d.c3; c++) s[c] += r[c];
        }
    }
    if (dp && dp->w3) {
        gemm(1, 0, d.c3, d.c2, M, 1.0f, dh3, d.c3, a->f, d.c2, 1.0f, dp->w3 + d.c2, c2x2);
        gemm(1, 0, d.c3, d.c2, N, 1.0f, dsum, d.c3, a->g, d.c2, 1.0f, dp->w3, c2x2);
    }
    /* df (M,c2) = dh3 W3f into sa; dg (N,c2) = dsum W3g, routed to argmax */
    gemm(0, 0, M, d.c2, d.c3, 1.0f, dh3, d.c3, p->w3 + d.c2, c2x2, 0.0f, sa, d.c2);
    gemm(0, 0, N, d.c2, d.c3, 1.0f, dsum, d.c3, p->w3, c2x2, 0.0f, dg, d.c2);
    maxpool_backward(sa, dg, a->arg1, N, k, d.c2);
    /* layer 2: da1 in sb */
    linear_backward_set(sb, dp ? dp->w2 : NULL, NULL, sa, a->a1, p->w2, M, d.c1, d.c2);
    /* GELU: dn1 in sa; instance norm: dh1 in sb */
    gelu_backward_set(sa, sb, a->n1, (size_t)M * d.c1);
    instnorm_backward_set(sb, dp ? dp->s1 : NULL, dp ? dp->t1 : NULL, sa, a->h1, p->s1, a->mean1,
                          a->rstd1, B, G * k, d.c1, a->ss);
    /* layer 1 */
    linear_backward(dx, dp ? dp->w1 : NULL, NULL, sb, x, p->w1, M, 3, d.c1);
}

/* ---- position embedding ---- */

size_t posembed_num_params(int hidden, int D) {
    return (size_t)hidden * 3 + hidden + (size_t)D * hidden + D;
}

void posembed_params_view(PosEmbedParams *p, float *buf, int hidden, int D) {
    p->w1 = buf; buf += (size_t)hidden * 3;
    p->b1 = buf; buf += hidden;
    p->w2 = buf; buf += (size_t)D * hidden;
    p->b2 = buf;
}

void posembed_forward(float *out, float *h, float *a, const PosEmbedParams *p,
                      const float *centers, int N, int hidden, int D) {
    linear_forward(h, centers, p->w1, p->b1, N, 3, hidden);
    gelu_forward(a, h, (size_t)N * hidden);
    linear_forward(out, a, p->w2, p->b2, N, hidden, D);
}

void posembed_backward(float *dcenters, PosEmbedParams *dp, const float *dout,
                       const float *h, const float *a, const PosEmbedParams *p,
                       const float *centers, int N, int hidden, int D, float *scratch) {
    float *da = scratch, *dh = scratch + (size_t)N * hidden;
    linear_backward_set(da, dp ? dp->w2 : NULL, dp ? dp->b2 : NULL, dout, a, p->w2, N, hidden, D);
    gelu_backward_set(dh, da, h, (size_t)N * hidden);
    linear_backward(dcenters, dp ? dp->w1 : NULL, dp ? dp->b1 : NULL, dh, centers, p->w1, N, 3,
                    hidden);
}
