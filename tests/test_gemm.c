/* gemm.h: the fp32 path against a naive product for every transpose; the
 * precision grammar; train.precision = bf16 refused on CPUs without bf16
 * instructions; on CPUs with them, bf16 products against fp32 products of the
 * bf16-rounded inputs (same numbers, so only the summation order differs) and
 * a ViT's logits and gradients in bf16 against fp32 within bf16 tolerances.
 * The bf16 tests skip, saying so, on CPUs without bf16 instructions. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "../core/gemm.h"
#include "../core/rng.h"
#include "../core/vit.h"

static float *randm(Rng *r, size_t n) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = rng_normal(r);
    return p;
}

/* C = alpha op(A) op(B) + beta C in double, row-major. */
static void naive(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            C[(size_t)i * ldc + j] = (float)(alpha * s + beta * C[(size_t)i * ldc + j]);
        }
}

/* bf16 rounding (nearest even), as the GEMM's inputs see it. */
static float round_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Max |got - want| over the M x N block, relative to max |want|. */
static double rel_err(const float *got, const float *want, size_t n) {
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)got[i] - want[i]));
        m = fmax(m, fabs((double)want[i]));
    }
    return e / m;
}

/* Every transpose and beta 0/1 on (M,N,K), leading dimensions ld (wider than
 * the rows), against the naive product (of the bf16-rounded inputs when
 * round_inputs). */
static void check_shape(double tol, int round_inputs, int M, int N, int K, int ld) {
    Rng r;
    rng_seed(&r, 7);
    float *A = randm(&r, (size_t)ld * ld), *B = randm(&r, (size_t)ld * ld);
    float *Ar = malloc(sizeof(float) * ld * ld), *Br = malloc(sizeof(float) * ld * ld);
    for (int i = 0; i < ld * ld; i++) {
        Ar[i] = round_inputs ? round_bf16(A[i]) : A[i];
        Br[i] = round_inputs ? round_bf16(B[i]) : B[i];
    }
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int beta = 0; beta < 2; beta++) {
                float *C = randm(&r, (size_t)M * ld), *W = malloc(sizeof(float) * M * ld);
                memcpy(W, C, sizeof(float) * M * ld);
                gemm(ta, tb, M, N, K, 1.0f, A, ld, B, ld, (float)beta, C, ld);
                naive(ta, tb, M, N, K, 1.0f, Ar, ld, Br, ld, (float)beta, W, ld);
                cr_expect_lt(rel_err(C, W, (size_t)M * ld), tol, "ta %d tb %d beta %d", ta, tb, beta);
                free(C); free(W);
            }
    free(A); free(B); free(Ar); free(Br);
}

static void check_all_transposes(double tol, int round_inputs) {
    check_shape(tol, round_inputs, 37, 29, 45, 50);
}

Test(gemm, fp32_matches_naive_for_every_transpose) {
    Err err = {0};
    cr_assert_eq(gemm_set_precision(GEMM_FP32, &err), 0);
    check_all_transposes(1e-5, 0);
}

Test(gemm, precision_grammar) {
    Err err = {0};
    GemmPrecision p = GEMM_BF16;
    cr_expect_eq(gemm_parse_precision("fp32", "x", &p, &err), 0);
    cr_expect_eq(p, GEMM_FP32);
    cr_expect_eq(gemm_parse_precision("bf16", "x", &p, &err), 0);
    cr_expect_eq(p, GEMM_BF16);
    cr_expect_eq(gemm_parse_precision("fp16", "run.ini:4 train.precision", &p, &err), ERR_USAGE);
    cr_expect(strstr(err.msg, "run.ini:4 train.precision") && strstr(err.msg, "'fp16'"), "%s", err.msg);
    cr_expect_str_eq(gemm_precision_name(GEMM_BF16), "bf16");
}

Test(gemm, bf16_refused_without_bf16_instructions) {
    char why[256];
    if (gemm_bf16_supported(why, sizeof why)) cr_skip_test("this CPU has bf16 instructions");
    Err err = {0};
    cr_expect_eq(gemm_set_precision(GEMM_BF16, &err), ERR_USAGE);
    cr_expect(strstr(err.msg, "train.precision = bf16") && strstr(err.msg, "avx512_bf16"), "%s", err.msg);
    cr_expect_eq(gemm_precision(), GEMM_FP32, "a refused precision must not stick");
}

static void need_bf16(void) {
    char why[256];
    if (!gemm_bf16_supported(why, sizeof why)) cr_skip_test("bf16 test skipped: %s", why);
    Err err = {0};
    cr_assert_eq(gemm_set_precision(GEMM_BF16, &err), 0, "%s", err.msg);
}

/* The products of bf16 numbers are exact in fp32, so bf16 GEMM equals the
 * fp32 GEMM of the rounded inputs up to the fp32 summation order. */
Test(gemm, bf16_equals_fp32_product_of_rounded_inputs) {
    need_bf16();
    check_all_transposes(1e-5, 1);
    gemm_set_precision(GEMM_FP32, NULL);
}

/* Token dimensions over 256 that are not multiples of 64 (a routed expert's
 * share of a batch) take other paths in bf16 (core/gemm.c PAD_TO): K is
 * zero-padded to a multiple of 64, an M (A not transposed) split into two
 * products; M, K and both over the bound, every transpose, beta 0 and 1. */
Test(gemm, bf16_padded_token_dimensions_equal_unpadded_product) {
    need_bf16();
    check_shape(1e-5, 1, 300, 29, 45, 320);    /* M split 256 + 44 */
    check_shape(1e-5, 1, 37, 29, 301, 320);    /* K padded to 320 */
    check_shape(1e-5, 1, 333, 70, 290, 340);   /* both (M 320 + 13) */
    gemm_set_precision(GEMM_FP32, NULL);
}

/* gemm_next_a_unchanged(): a linear backward's two products of dout (dX =
 * dout W, then dW = dout^T X) with the hint give the products of the rounded
 * inputs; the hint before a different A is ignored; and it is a real reuse:
 * A changed behind the hint's back gives the product of the old A. */
Test(gemm, bf16_reuses_a_conversion_only_when_told) {
    need_bf16();
    Rng r;
    rng_seed(&r, 11);
    enum { N = 70, OC = 40, IC = 30 };
    float *dout = randm(&r, N * OC), *w = randm(&r, OC * IC), *x = randm(&r, N * IC), *x2 = randm(&r, N * OC);
    float *dx = calloc(N * IC, sizeof(float)), *dw = calloc(OC * IC, sizeof(float));
    float *rd = malloc(sizeof(float) * N * OC), *rw = malloc(sizeof(float) * OC * IC), *rx = malloc(sizeof(float) * N * IC);
    float *wx = calloc(N * IC, sizeof(float)), *ww = calloc(OC * IC, sizeof(float));
    for (int i = 0; i < N * OC; i++) rd[i] = round_bf16(dout[i]);
    for (int i = 0; i < OC * IC; i++) rw[i] = round_bf16(w[i]);
    for (int i = 0; i < N * IC; i++) rx[i] = round_bf16(x[i]);
    naive(0, 0, N, IC, OC, 1.0f, rd, OC, rw, IC, 0.0f, wx, IC);
    naive(1, 0, OC, IC, N, 1.0f, rd, OC, rx, IC, 0.0f, ww, IC);
    gemm(0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, dx, IC);
    gemm_next_a_unchanged();
    gemm(1, 0, OC, IC, N, 1.0f, dout, OC, x, IC, 0.0f, dw, IC);
    cr_expect_lt(rel_err(dx, wx, N * IC), 1e-5);
    cr_expect_lt(rel_err(dw, ww, OC * IC), 1e-5, "dW with the reused conversion of dout");
    /* the hint before another A (x2, same shape as dout): converted afresh */
    gemm(0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, dx, IC);
    gemm_next_a_unchanged();
    gemm(1, 0, OC, IC, N, 1.0f, x2, OC, x, IC, 0.0f, dw, IC);
    for (int i = 0; i < N * OC; i++) rd[i] = round_bf16(x2[i]);
    naive(1, 0, OC, IC, N, 1.0f, rd, OC, rx, IC, 0.0f, ww, IC);
    cr_expect_lt(rel_err(dw, ww, OC * IC), 1e-5, "a hint before a different A must not reuse");
    /* dout changed between the calls, hint given anyway: the old dout's product */
    gemm(0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, dx, IC);
    for (int i = 0; i < N * OC; i++) rd[i] = round_bf16(dout[i]), dout[i] = 0.0f;
    gemm_next_a_unchanged();
    gemm(1, 0, OC, IC, N, 1.0f, dout, OC, x, IC, 0.0f, dw, IC);
    naive(1, 0, OC, IC, N, 1.0f, rd, OC, rx, IC, 0.0f, ww, IC);
    cr_expect_lt(rel_err(dw, ww, OC * IC), 1e-5, "the hinted call must use the held conversion");
    gemm_set_precision(GEMM_FP32, NULL);
    free(dout); free(w); free(x); free(x2); free(dx); free(dw); free(rd); free(rw); free(rx); free(wx); free(ww);
}

/* The hint is not taken when the two calls lay A out differently: with 300
 * rows of dout, dX's product holds it as 300 rows and dW's needs them padded
 * to 320 (K over 256), so dW converts afresh and sees a changed dout. */
Test(gemm, bf16_hint_ignored_when_layouts_differ) {
    need_bf16();
    Rng r;
    rng_seed(&r, 13);
    enum { N = 300, OC = 40, IC = 30 };
    float *dout = randm(&r, N * OC), *w = randm(&r, OC * IC), *x = randm(&r, N * IC);
    float *dx = calloc(N * IC, sizeof(float)), *dw = calloc(OC * IC, sizeof(float)), *ww = calloc(OC * IC, sizeof(float));
    float *rd = malloc(sizeof(float) * N * OC), *rx = malloc(sizeof(float) * N * IC);
    gemm(0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, dx, IC);
    for (int i = 0; i < N * OC; i++) dout[i] = -dout[i], rd[i] = round_bf16(dout[i]);
    for (int i = 0; i < N * IC; i++) rx[i] = round_bf16(x[i]);
    gemm_next_a_unchanged();
    gemm(1, 0, OC, IC, N, 1.0f, dout, OC, x, IC, 0.0f, dw, IC);
    naive(1, 0, OC, IC, N, 1.0f, rd, OC, rx, IC, 0.0f, ww, IC);
    cr_expect_lt(rel_err(dw, ww, OC * IC), 1e-5, "dW must see the changed dout (layouts differ: no reuse)");
    gemm_set_precision(GEMM_FP32, NULL);
    free(dout); free(w); free(x); free(dx); free(dw); free(ww); free(rd); free(rx);
}

/* A ViT (dim 32, 2 blocks) in bf16 against fp32 on the same weights and
 * batch. Tolerances: bf16 keeps 8 significant bits (unit roundoff 2^-9 =
 * 0.2%); through a few GEMMs with fp32 accumulation the relative L2 error of
 * logits and gradients stays within ~1-2%, so 3% for logits and 5% for the
 * gradient (the backward chains twice as many rounded products). */
static double rel_l2(const float *a, const float *b, size_t n) {
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) { e += (double)(a[i] - b[i]) * (a[i] - b[i]); m += (double)b[i] * b[i]; }
    return sqrt(e / m);
}

Test(gemm, bf16_vit_logits_and_gradients_near_fp32) {
    need_bf16();
    Err err = {0};
    ViTDims d;
    ViT m;
    cr_assert_eq(vit_dims(&d, 1, 8, 8, 4, 32, 2, 2, 2.0f, 5, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(vit_init(&m, &d, 6, &err), 0, "%s", err.msg);
    vit_init_weights(&m, 3);
    Rng r;
    rng_seed(&r, 9);
    float *x = randm(&r, 6 * 64);
    int y[6] = {0, 1, 2, 3, 4, 0};
    float *logits = malloc(sizeof(float) * 30), *grads = malloc(sizeof(float) * m.num_params);
    for (int p = 0; p < 2; p++) {
        gemm_set_precision(p ? GEMM_BF16 : GEMM_FP32, NULL);
        vit_forward(&m, x, y, 6);
        vit_zero_grad(&m);
        vit_backward(&m);
        if (!p) {
            memcpy(logits, m.a.logits, sizeof(float) * 30);
            memcpy(grads, m.grads, sizeof(float) * m.num_params);
        }
    }
    gemm_set_precision(GEMM_FP32, NULL);
    cr_expect_lt(rel_l2(m.a.logits, logits, 30), 0.03);
    cr_expect_lt(rel_l2(m.grads, grads, m.num_params), 0.05);
    free(x); free(logits); free(grads);
    vit_free(&m);
}
