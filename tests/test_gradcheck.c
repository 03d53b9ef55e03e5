/* Finite-difference checks of every layer's backward pass and of the whole
 * ViT on a tiny configuration. Tolerance: see tests/gradcheck.h (GC_TOL). */
#include <criterion/criterion.h>
#include <string.h>
#include "../core/layers/layers.h"
#include "../core/vit.h"
#include "gradcheck.h"

/* Zeroed float buffers, freed after each test (each Criterion test runs in
 * its own process, so this list is per test). */
static void *allocs[64];
static int n_allocs;
static float *zf(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    cr_assert(p && n_allocs < 64);
    return allocs[n_allocs++] = p;
}
static void free_allocs(void) { while (n_allocs) free(allocs[--n_allocs]); }
TestSuite(gradcheck, .fini = free_allocs);

/* ---- linear ---- */
typedef struct { float *in, *w, *b, *out, *R; int N, IC, OC; } LinCtx;
static double lin_loss(void *c_) {
    LinCtx *c = c_;
    linear_forward(c->out, c->in, c->w, c->b, c->N, c->IC, c->OC);
    return gc_dot(c->out, c->R, (size_t)c->N * c->OC);
}
Test(gradcheck, linear) {
    Rng r; rng_seed(&r, 1);
    LinCtx c = {.N = 7, .IC = 5, .OC = 6};
    c.in = zf(35); c.w = zf(30); c.b = zf(6); c.out = zf(42); c.R = zf(42);
    gc_fill(c.in, 35, &r, 1); gc_fill(c.w, 30, &r, 1); gc_fill(c.b, 6, &r, 1); gc_fill(c.R, 42, &r, 1);
    float *din = zf(35), *dw = zf(30), *db = zf(6);
    lin_loss(&c);
    linear_backward(din, dw, db, c.R, c.in, c.w, c.N, c.IC, c.OC);
    cr_expect_lt(gc_check(c.in, din, 35, lin_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.w, dw, 30, lin_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.b, db, 6, lin_loss, &c, 0), GC_TOL);
    /* accumulation: a second backward doubles the gradients */
    float db0 = db[0];
    linear_backward(NULL, NULL, db, c.R, c.in, c.w, c.N, c.IC, c.OC);
    cr_expect_float_eq(db[0], 2 * db0, 1e-5 * (1 + fabsf(db0)));
}

/* ---- layernorm ---- */
typedef struct { float *in, *w, *b, *out, *mean, *rstd, *R; int N, C; } LnCtx;
static double ln_loss(void *c_) {
    LnCtx *c = c_;
    layernorm_forward(c->out, c->mean, c->rstd, c->in, c->w, c->b, c->N, c->C, 1e-6f);
    return gc_dot(c->out, c->R, (size_t)c->N * c->C);
}
Test(gradcheck, layernorm) {
    Rng r; rng_seed(&r, 2);
    int N = 13, C = 40; size_t n = (size_t)N * C;   /* N > 8: a full and a partial row block; C > 32: two column blocks */
    LnCtx c = {.N = N, .C = C};
    c.in = zf(n); c.w = zf(C); c.b = zf(C); c.out = zf(n); c.mean = zf(N); c.rstd = zf(N); c.R = zf(n);
    gc_fill(c.in, n, &r, 1); gc_fill(c.w, C, &r, 1); gc_fill(c.b, C, &r, 1); gc_fill(c.R, n, &r, 1);
    float *din = zf(n), *dw = zf(C), *db = zf(C);
    ln_loss(&c);
    layernorm_backward(din, dw, db, c.R, c.in, c.w, c.mean, c.rstd, N, C);
    cr_expect_lt(gc_check(c.in, din, n, ln_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.w, dw, C, ln_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.b, db, C, ln_loss, &c, 0), GC_TOL);
}

/* ---- instance norm (the mini-PointNet's normalisation) ---- */
typedef struct { float *in, *w, *b, *out, *mean, *rstd, *R; int B, S, C; } InCtx;
static double in_loss(void *c_) {
    InCtx *c = c_;
    instnorm_forward(c->out, c->mean, c->rstd, c->in, c->w, c->b, c->B, c->S, c->C, 1e-5f);
    return gc_dot(c->out, c->R, (size_t)c->B * c->S * c->C);
}
Test(gradcheck, instance_norm) {
    Rng r; rng_seed(&r, 12);
    int B = 3, S = 5, C = 261; size_t n = (size_t)B * S * C;   /* C > 256: a full and a partial channel block */
    InCtx c = {.B = B, .S = S, .C = C};
    c.in = zf(n); c.w = zf(C); c.b = zf(C); c.out = zf(n); c.R = zf(n);
    c.mean = zf((size_t)B * C); c.rstd = zf((size_t)B * C);
    gc_fill(c.in, n, &r, 1); gc_fill(c.w, C, &r, 1); gc_fill(c.b, C, &r, 1); gc_fill(c.R, n, &r, 1);
    for (size_t i = 0; i < n; i++) c.in[i] += 3.0f;   /* a mean far from 0 */
    float *din = zf(n), *dw = zf(C), *db = zf(C), *scratch = zf(2 * (size_t)B * C);
    in_loss(&c);
    /* forward against a double reference: per sample and channel over S rows */
    for (int s = 0; s < B; s++)
        for (int ch = 0; ch < C; ch++) {
            double m = 0, v = 0;
            for (int i = 0; i < S; i++) m += c.in[((size_t)s * S + i) * C + ch];
            m /= S;
            for (int i = 0; i < S; i++) {
                double d = c.in[((size_t)s * S + i) * C + ch] - m;
                v += d * d;
            }
            double rs = 1.0 / sqrt(v / S + 1e-5);
            for (int i = 0; i < S; i++) {
                size_t k = ((size_t)s * S + i) * C + ch;
                double want = (c.in[k] - m) * rs * c.w[ch] + c.b[ch];
                cr_expect_float_eq(c.out[k], want, 1e-5 * (1 + fabs(want)), "s=%d c=%d i=%d", s, ch, i);
            }
        }
    instnorm_backward(din, dw, db, c.R, c.in, c.w, c.mean, c.rstd, B, S, C, scratch);
    cr_expect_lt(gc_check(c.in, din, n, in_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.w, dw, C, in_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.b, db, C, in_loss, &c, 0), GC_TOL);
    /* backward accumulates, and NULL din / dw / db are skipped */
    float d0 = din[0], w0 = dw[0], b0 = db[0];
    in_loss(&c);
    instnorm_backward(NULL, dw, NULL, c.R, c.in, c.w, c.mean, c.rstd, B, S, C, scratch);
    cr_expect_eq(din[0], d0);
    cr_expect_float_eq(dw[0], 2 * w0, 1e-5 * (1 + fabsf(w0)));
    cr_expect_eq(db[0], b0);
}

/* ---- gelu ---- */
typedef struct { float *in, *out, *R; size_t n; } GeluCtx;
static double gelu_loss(void *c_) {
    GeluCtx *c = c_;
    gelu_forward(c->out, c->in, c->n);
    return gc_dot(c->out, c->R, c->n);
}
Test(gradcheck, gelu) {
    Rng r; rng_seed(&r, 3);
    size_t n = 64;
    GeluCtx c = {.in = zf(n), .out = zf(n), .R = zf(n), .n = n};
    gc_fill(c.in, n, &r, 2); gc_fill(c.R, n, &r, 1);
    float *din = zf(n);
    gelu_loss(&c);
    gelu_backward(din, c.R, c.in, n);
    cr_expect_lt(gc_check(c.in, din, n, gelu_loss, &c, 0), GC_TOL);
    /* exact erf GELU at known points */
    float x[3] = {-1.0f, 0.0f, 2.0f}, y[3];
    gelu_forward(y, x, 3);
    cr_expect_float_eq(y[0], -0.15865525f, 1e-6);
    cr_expect_float_eq(y[1], 0.0f, 1e-7);
    cr_expect_float_eq(y[2], 1.95449974f, 1e-6);
}

/* ---- attention ---- */
typedef struct { float *qkv, *out, *att, *R; int B, T, C, NH; } AttCtx;
static double att_loss(void *c_) {
    AttCtx *c = c_;
    attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH);
    return gc_dot(c->out, c->R, (size_t)c->B * c->T * c->C);
}
Test(gradcheck, attention) {
    Rng r; rng_seed(&r, 4);
    AttCtx c = {.B = 2, .T = 5, .C = 6, .NH = 2};
    size_t nq = (size_t)c.B * c.T * 3 * c.C, no = (size_t)c.B * c.T * c.C;
    c.qkv = zf(nq); c.out = zf(no); c.att = zf((size_t)c.B * c.NH * c.T * c.T); c.R = zf(no);
    gc_fill(c.qkv, nq, &r, 1); gc_fill(c.R, no, &r, 1);
    float *dqkv = zf(nq);
    att_loss(&c);
    attention_backward(dqkv, c.R, c.qkv, c.att, c.B, c.T, c.C, c.NH);
    cr_expect_lt(gc_check(c.qkv, dqkv, nq, att_loss, &c, 0), GC_TOL);
    /* rows of the attention matrix are distributions */
    for (int i = 0; i < c.B * c.NH * c.T; i++) {
        double s = 0;
        for (int j = 0; j < c.T; j++) s += c.att[i * c.T + j];
        cr_expect_float_eq(s, 1.0, 1e-6);
    }
}

/* ---- tokens (cls + pos) ---- */
typedef struct { float *emb, *cls, *pos, *x, *R; int B, Np, D; } TokCtx;
static double tok_loss(void *c_) {
    TokCtx *c = c_;
    tokens_forward(c->x, c->emb, c->cls, c->pos, c->B, c->Np, c->D);
    return gc_dot(c->x, c->R, (size_t)c->B * (c->Np + 1) * c->D);
}
Test(gradcheck, tokens) {
    Rng r; rng_seed(&r, 5);
    TokCtx c = {.B = 3, .Np = 4, .D = 5};
    size_t ne = 3 * 4 * 5, nx = 3 * 5 * 5;
    c.emb = zf(ne); c.cls = zf(5); c.pos = zf(25); c.x = zf(nx); c.R = zf(nx);
    gc_fill(c.emb, ne, &r, 1); gc_fill(c.cls, 5, &r, 1); gc_fill(c.pos, 25, &r, 1); gc_fill(c.R, nx, &r, 1);
    float *demb = zf(ne), *dcls = zf(5), *dpos = zf(25);
    tok_loss(&c);
    tokens_backward(demb, dcls, dpos, c.R, c.B, c.Np, c.D);
    cr_expect_lt(gc_check(c.emb, demb, ne, tok_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.cls, dcls, 5, tok_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.pos, dpos, 25, tok_loss, &c, 0), GC_TOL);
}

/* ---- pooling ---- */
typedef struct { float *x, *out, *R; int B, T, D, mean; } PoolCtx;
static double pool_loss(void *c_) {
    PoolCtx *c = c_;
    pool_forward(c->out, c->x, c->B, c->T, c->D, c->mean);
    return gc_dot(c->out, c->R, (size_t)c->B * c->D);
}
Test(gradcheck, pool_cls_and_mean) {
    for (int mean = 0; mean < 2; mean++) {
        Rng r; rng_seed(&r, 6);
        PoolCtx c = {.B = 2, .T = 4, .D = 3, .mean = mean};
        size_t nx = 24;
        c.x = zf(nx); c.out = zf(6); c.R = zf(6);
        gc_fill(c.x, nx, &r, 1); gc_fill(c.R, 6, &r, 1);
        float *dx = zf(nx);
        pool_loss(&c);
        pool_backward(dx, c.R, c.B, c.T, c.D, mean);
        cr_expect_lt(gc_check(c.x, dx, nx, pool_loss, &c, 0), GC_TOL, "mean=%d", mean);
    }
}

/* ---- residual ---- */
typedef struct { float *a, *b, *out, *R; size_t n; } ResCtx;
static double res_loss(void *c_) {
    ResCtx *c = c_;
    residual_forward(c->out, c->a, c->b, c->n);
    return gc_dot(c->out, c->R, c->n);
}
Test(gradcheck, residual) {
    Rng r; rng_seed(&r, 7);
    size_t n = 20;
    ResCtx c = {.a = zf(n), .b = zf(n), .out = zf(n), .R = zf(n), .n = n};
    gc_fill(c.a, n, &r, 1); gc_fill(c.b, n, &r, 1); gc_fill(c.R, n, &r, 1);
    float *da = zf(n), *db = zf(n);
    residual_backward(da, db, c.R, n);
    cr_expect_lt(gc_check(c.a, da, n, res_loss, &c, 0), GC_TOL);
    cr_expect_lt(gc_check(c.b, db, n, res_loss, &c, 0), GC_TOL);
}

/* ---- cross-entropy with label smoothing ---- */
typedef struct { float *logits, *probs, *losses; int *y; int B, K; float s; } XeCtx;
static double xe_loss(void *c_) {
    XeCtx *c = c_;
    return crossentropy_forward(c->losses, c->probs, c->logits, c->y, c->B, c->K, c->s);
}
Test(gradcheck, crossentropy) {
    for (int si = 0; si < 2; si++) {
        Rng r; rng_seed(&r, 8);
        XeCtx c = {.B = 4, .K = 5, .s = si ? 0.1f : 0.0f};
        int y[4] = {0, 3, 4, 1};
        c.y = y; c.logits = zf(20); c.probs = zf(20); c.losses = zf(4);
        gc_fill(c.logits, 20, &r, 2);
        float *d = zf(20);
        xe_loss(&c);
        crossentropy_backward(d, c.probs, y, c.B, c.K, c.s, 1.0f);
        cr_expect_lt(gc_check(c.logits, d, 20, xe_loss, &c, 0), GC_TOL, "smoothing=%g", c.s);
    }
    /* uniform logits: loss = log K whatever the smoothing */
    float l[5] = {0}, p[5], ls[1]; int y0 = 2;
    cr_expect_float_eq(crossentropy_forward(ls, p, l, &y0, 1, 5, 0.1f), logf(5.0f), 1e-6);
}

/* ---- patchify is a permutation matching Conv2d weight order ---- */
Test(gradcheck, patchify_order) {
    /* B=1, C=2, 4x4 image, P=2: patch 1 (top-right) channel 1 row 1 col 0 */
    float img[32], patches[32];
    for (int i = 0; i < 32; i++) img[i] = (float)i;
    patchify(patches, img, 1, 2, 4, 4, 2);
    /* patch p=1 covers rows 0-1, cols 2-3; element (c=1, py=1, px=0) is at
     * index 1*4 + 1*2 + 0 = 6 of that patch; image index c*16 + 1*4 + 2 */
    cr_expect_float_eq(patches[1 * 8 + 6], img[16 + 4 + 2], 0);
    cr_expect_float_eq(patches[3 * 8 + 0], img[2 * 4 + 2], 0);
}

/* ---- *_set variants (layers.h): bitwise equal to memset + accumulate ---- */

/* A buffer of n floats filled with NaN: a _set variant must overwrite all of it. */
static float *nanf_buf(size_t n) {
    float *p = zf(n);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}
static void expect_same_bits(const float *a, const float *b, size_t n, const char *what) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    cr_expect_eq(bad, 0, "%s: %zu of %zu elements differ from memset + accumulate", what, bad, n);
}
static float *filled(size_t n, Rng *r) { float *p = zf(n); gc_fill(p, n, r, 1); return p; }

Test(gradcheck, set_variants_linear_gelu) {
    Rng r; rng_seed(&r, 21);
    int N = 300, IC = 96, OC = 200;   /* big enough for the GEMM library's blocking */
    size_t ni = (size_t)N * IC, no = (size_t)N * OC;
    float *in = filled(ni, &r), *w = filled((size_t)OC * IC, &r), *dout = filled(no, &r);
    float *acc = zf(ni), *set = nanf_buf(ni), *dw1 = filled((size_t)OC * IC, &r), *db1 = filled(OC, &r);
    float *dw2 = zf((size_t)OC * IC), *db2 = zf(OC);
    memcpy(dw2, dw1, sizeof(float) * OC * IC);
    memcpy(db2, db1, sizeof(float) * OC);
    linear_backward(acc, dw1, db1, dout, in, w, N, IC, OC);
    linear_backward_set(set, dw2, db2, dout, in, w, N, IC, OC);
    expect_same_bits(set, acc, ni, "linear din");
    expect_same_bits(dw2, dw1, (size_t)OC * IC, "linear dw (accumulated)");
    expect_same_bits(db2, db1, OC, "linear db (accumulated)");
    float *gacc = zf(no), *gset = nanf_buf(no), *x = filled(no, &r);
    gelu_backward(gacc, dout, x, no);
    gelu_backward_set(gset, dout, x, no);
    expect_same_bits(gset, gacc, no, "gelu din");
}

Test(gradcheck, set_variants_norms_attention) {
    Rng r; rng_seed(&r, 22);
    int B = 3, S = 17, C = 40;
    size_t n = (size_t)B * S * C;
    float *in = filled(n, &r), *dout = filled(n, &r), *w = filled(C, &r), *b = filled(C, &r), *out = zf(n);
    float *mean = zf((size_t)B * C), *rstd = zf((size_t)B * C), *scratch = zf(2 * (size_t)B * C);
    float *acc = zf(n), *set = nanf_buf(n), *dw1 = zf(C), *db1 = zf(C), *dw2 = zf(C), *db2 = zf(C);
    layernorm_forward(out, mean, rstd, in, w, b, B * S, C, 1e-6f);
    layernorm_backward(acc, dw1, db1, dout, in, w, mean, rstd, B * S, C);
    layernorm_backward_set(set, dw2, db2, dout, in, w, mean, rstd, B * S, C);
    expect_same_bits(set, acc, n, "layernorm din");
    expect_same_bits(dw2, dw1, C, "layernorm dw");
    float *iacc = zf(n), *iset = nanf_buf(n);
    instnorm_forward(out, mean, rstd, in, w, b, B, S, C, 1e-5f);
    instnorm_backward(iacc, dw1, db1, dout, in, w, mean, rstd, B, S, C, scratch);
    instnorm_backward_set(iset, dw2, db2, dout, in, w, mean, rstd, B, S, C, scratch);
    expect_same_bits(iset, iacc, n, "instnorm din");
    expect_same_bits(db2, db1, C, "instnorm db");
    int T = 17, NH = 3, D = 24;
    size_t nq = (size_t)B * T * 3 * D, na = (size_t)B * T * D;
    float *qkv = filled(nq, &r), *att = zf((size_t)B * NH * T * T), *ao = zf(na), *g = filled(na, &r);
    float *qacc = zf(nq), *qset = nanf_buf(nq);
    attention_forward(ao, att, qkv, B, T, D, NH);
    attention_backward(qacc, g, qkv, att, B, T, D, NH);
    attention_backward_set(qset, g, qkv, att, B, T, D, NH);
    expect_same_bits(qset, qacc, nq, "attention dqkv");
}

/* ---- whole model ---- */
typedef struct { ViT *m; float *img; int *y; int B; } ModelCtx;
static double model_loss(void *c_) {
    ModelCtx *c = c_;
    return vit_forward(c->m, c->img, c->y, c->B);
}
static void model_check(int pool, float smoothing) {
    ViTDims d; Err err = {0};
    cr_assert_eq(vit_dims(&d, 2, 8, 8, 4, 8, 2, 2, 2.0f, 3, pool, &err), 0, "%s", err.msg);
    ViT m;
    cr_assert_eq(vit_init(&m, &d, 3, &err), 0, "%s", err.msg);
    vit_init_weights(&m, 11);
    /* make every tensor non-trivial (timm init has zero biases, unit norms) */
    Rng r; rng_seed(&r, 12);
    for (size_t i = 0; i < m.num_params; i++) m.params[i] += 0.3f * rng_normal(&r);
    m.label_smoothing = smoothing;
    float img[3 * 2 * 8 * 8]; gc_fill(img, sizeof img / sizeof *img, &r, 1);
    int y[3] = {2, 0, 1};
    ModelCtx c = {&m, img, y, 3};
    vit_zero_grad(&m);
    model_loss(&c);
    vit_backward(&m);
    float *g = malloc(m.num_params * sizeof(float));
    memcpy(g, m.grads, m.num_params * sizeof(float));
    for (int i = 0; i < m.n_params; i++) {
        const ParamSpec *s = &m.specs[i];
        double e = gc_check(m.params + s->offset, g + s->offset, s->numel, model_loss, &c, 40);
        cr_expect_lt(e, GC_TOL, "%s: relative error %.2e (pool=%d)", s->name, e, pool);
    }
    free(g);
    vit_free(&m);
}
Test(gradcheck, vit_model_cls) { model_check(VIT_POOL_CLS, 0.1f); }
Test(gradcheck, vit_model_mean) { model_check(VIT_POOL_MEAN, 0.0f); }
/* timm's default avg pool: mean of the patch tokens, then fc_norm (the
 * LayerNorm's backward on B rows, the pool's on the tokens) */
Test(gradcheck, vit_model_avg_fc_norm) {
    model_check(VIT_POOL_AVG, 0.1f);
    ViTDims d; Err err = {0};
    cr_assert_eq(vit_dims(&d, 2, 8, 8, 4, 8, 2, 2, 2.0f, 3, VIT_POOL_AVG, &err), 0, "%s", err.msg);
    ViT m;
    cr_assert_eq(vit_init(&m, &d, 1, &err), 0, "%s", err.msg);
    cr_expect_not_null(vit_find_param(&m, "fc_norm.weight"));
    cr_expect_not_null(vit_find_param(&m, "fc_norm.bias"));
    cr_expect_null(vit_find_param(&m, "norm.weight"), "timm's avg pool has no final norm.*");
    vit_free(&m);
}
