#include "gemm.h"
#include <cblas.h>
#ifdef __AVX512BF16__
#include <immintrin.h>
#endif
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static GemmPrecision g_precision = GEMM_FP32;

const char *gemm_precision_name(GemmPrecision p) {
    return p == GEMM_FP32 ? "fp32" : p == GEMM_BF16 ? "bf16" : NULL;
}

int gemm_parse_precision(const char *s, const char *where, GemmPrecision *p, Err *err) {
    if (s && !strcmp(s, "fp32")) *p = GEMM_FP32;
    else if (s && !strcmp(s, "bf16")) *p = GEMM_BF16;
    else return err_set(err, ERR_USAGE, "%s: precision '%s' is not fp32 or bf16", where, s ? s : "");
    return 0;
}

int gemm_bf16_supported(char *why, size_t why_len) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    /* oneDNN's ISA values are bit sets; avx512_core_bf16 and every later
     * ISA (avx512_core_amx, ...) contain its bits. */
    int ok = (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
    if (!ok && why)
        snprintf(why, why_len, "this CPU lacks the bf16 instructions (avx512_bf16 or AMX) that oneDNN's "
                 "bf16 GEMM needs: oneDNN reports ISA 0x%x, bf16 needs avx512_core_bf16 (0x%x)",
                 (unsigned)isa, (unsigned)dnnl_cpu_isa_avx512_core_bf16);
    return ok;
}

int gemm_set_precision(GemmPrecision p, Err *err) {
    if (!gemm_precision_name(p)) return err_set(err, ERR_USAGE, "gemm: unknown precision %d", (int)p);
    if (p == GEMM_BF16) {
        char why[256];
        if (!gemm_bf16_supported(why, sizeof why))
            return err_set(err, ERR_USAGE, "train.precision = bf16: %s; use train.precision = fp32", why);
    }
    g_precision = p;
    return 0;
}

GemmPrecision gemm_precision(void) { return g_precision; }

void gemm_set_threads(int n) {
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

const char *gemm_blas_config(void) { return openblas_get_config(); }
const char *gemm_blas_core(void) { return openblas_get_corename(); }

void gemm_library(char *buf, size_t n) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, n, "oneDNN %d.%d.%d isa 0x%x", v->major, v->minor, v->patch, (unsigned)dnnl_get_effective_cpu_isa());
}

void gemm_f32(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    /* oneDNN's row-major sgemm; it fails only on invalid arguments, which
     * OpenBLAS would then report through its xerbla. */
    if (dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) !=
        dnnl_success)
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                    M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- bf16 ---------------------------------------------------------------- */

/* fp32 -> bf16, round to nearest even; NaN stays a (quiet) NaN. */
static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* rows x cols of src (leading dimension ld) into dst, a compact prows x pcols
 * matrix (prows >= rows, pcols >= cols) whose extra rows and columns are
 * zero, in the same orientation: a transposed operand is described to oneDNN
 * by its strides (entry_make), not transposed here (a strided scatter took a
 * quarter of an R1 bf16 step). */
static void convert_bf16(uint16_t *dst, int prows, int pcols, const float *src, int rows, int cols, int ld) {
    #pragma omp parallel for schedule(static) if ((size_t)prows * pcols > 32768)
    for (int r = 0; r < prows; r++) {
        const float *s = src + (size_t)r * ld;
        uint16_t *d = dst + (size_t)r * pcols;
        int c = 0;
        if (r >= rows) {
            memset(d, 0, sizeof(uint16_t) * (size_t)pcols);
            continue;
        }
#ifdef __AVX512BF16__
        /* VCVTNEPS2BF16: the same rounding and NaN rule as to_bf16, but it
         * treats denormal inputs as zero and flushes denormal results (Intel
         * SDM), so values below 2^-126 in magnitude become (signed) zero. */
        for (; c + 16 <= cols; c += 16) {
            __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(s + c));
            _mm256_storeu_si256((__m256i *)(d + c), (__m256i)v);
        }
#endif
        #pragma omp simd
        for (int k = c; k < cols; k++) d[k] = to_bf16(s[k]);
        for (int k = cols; k < pcols; k++) d[k] = 0;
    }
}

/* The token dimension of a product (M of a forward or input-gradient product,
 * K of a weight gradient) changes from call to call in a routed MoE, and
 * oneDNN JIT-compiles a kernel per shape: 360 compilations (0.67 s) in 5 top-1
 * MoE steps of R1. So kernels are compiled per bucket of PAD_TO: a K over
 * PAD_MIN is padded with zeros to a multiple of PAD_TO (zero columns of A and
 * rows of B add exact zeros, 0 x 0, to every sum), and an M over PAD_MIN that
 * is not a multiple of PAD_TO (A not transposed) is split into its first
 * multiple of PAD_TO rows and the rest (under PAD_TO rows), two products
 * written straight into C. The dense models' token and feature dimensions
 * are multiples of 64 except in a last partial batch. */
enum { PAD_MIN = 256, PAD_TO = 64 };
static int padded(int d) { return d > PAD_MIN ? (d + PAD_TO - 1) / PAD_TO * PAD_TO : d; }

/* oneDNN matmul primitives, one per product shape, created on first use
 * (oneDNN JIT-compiles a kernel per shape) and kept in a small cache. */
typedef struct {
    int ta, tb, M, N, K, ldc;
    float alpha, beta;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
} MatmulEntry;
enum { CACHE_N = 1024 };
static MatmulEntry g_cache[CACHE_N];
static int g_cached;
static unsigned g_evict;
static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;

static void entry_free(MatmulEntry *e) {
    dnnl_primitive_destroy(e->prim);
    dnnl_memory_destroy(e->a);
    dnnl_memory_destroy(e->b);
    dnnl_memory_destroy(e->c);
    memset(e, 0, sizeof *e);
}

/* src (M,K) bf16 stored (M,K) or, ta, (K,M); weights (K,N) bf16 stored (K,N)
 * or, tb, (N,K); both compact;
 * dst (M,N) f32 with leading dimension ldc. */
static dnnl_status_t entry_make(MatmulEntry *e) {
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t ad = {e->M, e->K}, bd = {e->K, e->N}, cd = {e->M, e->N};
    dnnl_dims_t as = {e->ta ? 1 : e->K, e->ta ? e->M : 1}, bs = {e->tb ? 1 : e->N, e->tb ? e->K : 1}, cs = {e->ldc, 1};
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_matmul_desc_t md;
    dnnl_status_t st;
    if ((st = dnnl_memory_desc_init_by_strides(&a, 2, ad, dnnl_bf16, as)) ||
        (st = dnnl_memory_desc_init_by_strides(&b, 2, bd, dnnl_bf16, bs)) ||
        (st = dnnl_memory_desc_init_by_strides(&c, 2, cd, dnnl_f32, cs)) ||
        (st = dnnl_matmul_desc_init(&md, &a, &b, NULL, &c)) || (st = dnnl_primitive_attr_create(&attr)))
        return st;
    if (e->alpha != 1.0f) st = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &e->alpha);
    if (!st && e->beta != 0.0f && !(st = dnnl_post_ops_create(&po)) && !(st = dnnl_post_ops_append_sum(po, e->beta)))
        st = dnnl_primitive_attr_set_post_ops(attr, po);
    if (!st) st = dnnl_primitive_desc_create(&pd, &md, attr, g_engine, NULL);
    if (!st) st = dnnl_primitive_create(&e->prim, pd);
    if (!st) st = dnnl_memory_create(&e->a, &a, g_engine, DNNL_MEMORY_NONE);
    if (!st) st = dnnl_memory_create(&e->b, &b, g_engine, DNNL_MEMORY_NONE);
    if (!st) st = dnnl_memory_create(&e->c, &c, g_engine, DNNL_MEMORY_NONE);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

static MatmulEntry *entry_get(int ta, int tb, int M, int N, int K, int ldc, float alpha, float beta) {
    for (int i = 0; i < g_cached; i++) {
        MatmulEntry *e = &g_cache[i];
        if (e->ta == ta && e->tb == tb && e->M == M && e->N == N && e->K == K && e->ldc == ldc &&
            e->alpha == alpha && e->beta == beta)
            return e;
    }
    if (!g_engine && (dnnl_engine_create(&g_engine, dnnl_cpu, 0) ||
                      dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags)))
        return NULL;
    MatmulEntry *e = g_cached < CACHE_N ? &g_cache[g_cached++] : &g_cache[g_evict++ % CACHE_N];
    if (e->prim) entry_free(e);
    *e = (MatmulEntry){.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .ldc = ldc, .alpha = alpha, .beta = beta};
    if (entry_make(e)) {
        entry_free(e);
        return NULL;
    }
    return e;
}

/* Grow-only buffers: the bf16 A and B. */
static uint16_t *g_buf[2];
static size_t g_cap[2];

static uint16_t *scratch(int i, size_t n) {
    if (n > g_cap[i]) {
        uint16_t *p = realloc(g_buf[i], n * sizeof(uint16_t));
        if (!p) return NULL;
        g_buf[i] = p;
        g_cap[i] = n;
    }
    return g_buf[i];
}

/* C (M rows, ldc) op= a (M,K) b (K,N), both bf16 and compact as entry_make describes them. */
static int run_matmul(MatmulEntry *e, uint16_t *a, uint16_t *b, float *C) {
    dnnl_memory_set_data_handle(e->a, a);
    dnnl_memory_set_data_handle(e->b, b);
    dnnl_memory_set_data_handle(e->c, C);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
    return dnnl_primitive_execute(e->prim, g_stream, 3, args) || dnnl_stream_wait(g_stream) != dnnl_success;
}

/* What scratch(0) holds: the bf16 copy of src (rows x cols, ld) laid out as
 * prows x pcols; valid = 0 when it holds nothing reusable. */
static struct {
    const float *src;
    int rows, cols, ld, prows, pcols, valid;
} g_a_held;
static int g_a_unchanged;   /* gemm_next_a_unchanged() was called for the next call */

void gemm_next_a_unchanged(void) { g_a_unchanged = 1; }

/* A (rows x cols of src, ld) into scratch(0) as prows x pcols, unless the
 * caller said A is unchanged and scratch(0) already holds it so. */
static uint16_t *convert_a(const float *src, int rows, int cols, int ld, int prows, int pcols, int unchanged) {
    uint16_t *a = scratch(0, (size_t)prows * pcols);
    if (!a) return NULL;
    if (unchanged && g_a_held.valid && g_a_held.src == src && g_a_held.rows == rows && g_a_held.cols == cols &&
        g_a_held.ld == ld && g_a_held.prows == prows && g_a_held.pcols == pcols)
        return a;
    convert_bf16(a, prows, pcols, src, rows, cols, ld);
    g_a_held.src = src, g_a_held.rows = rows, g_a_held.cols = cols, g_a_held.ld = ld;
    g_a_held.prows = prows, g_a_held.pcols = pcols, g_a_held.valid = 1;
    return a;
}

/* 0 on success; non-zero leaves C untouched (the caller computes in fp32). */
static int gemm_bf16(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc, int a_unchanged) {
    int Kp = padded(K), Mq = M;
    if (!trans_a && M > PAD_MIN && M % PAD_TO) Mq = M / PAD_TO * PAD_TO;
    MatmulEntry *e = entry_get(trans_a, trans_b, Mq, N, Kp, ldc, alpha, beta);
    uint16_t *b = scratch(1, (size_t)Kp * N);
    if (!e || !b) return 1;
    uint16_t *a = trans_a ? convert_a(A, K, M, lda, Kp, M, a_unchanged) : convert_a(A, M, K, lda, M, Kp, a_unchanged);
    if (!a) return 1;
    if (trans_b) convert_bf16(b, N, Kp, B, N, K, ldb);
    else convert_bf16(b, Kp, N, B, K, N, ldb);
    if (run_matmul(e, a, b, C)) return 1;
    if (Mq == M) return 0;
    /* the last M - Mq rows (the lookup may evict e, which is done with) */
    MatmulEntry *er = entry_get(0, trans_b, M - Mq, N, Kp, ldc, alpha, beta);
    if (!er || run_matmul(er, a + (size_t)Mq * Kp, b, C + (size_t)Mq * ldc))
        gemm_f32(0, trans_b, M - Mq, N, K, alpha, A + (size_t)Mq * lda, lda, B, ldb, beta, C + (size_t)Mq * ldc, ldc);
    return 0;
}

void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
    if (omp_in_parallel()) {   /* on the calling thread; the globals below are the process's */
        gemm_f32(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int a_unchanged = g_a_unchanged;
    g_a_unchanged = 0;
    if (g_precision == GEMM_BF16 &&
        !gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, a_unchanged))
        return;
    g_a_held.valid = 0;   /* what scratch(0) holds is no longer the last A */
    gemm_f32(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
