/* The engine's one matrix-product entry point (issue 13): every linear layer
 * and the attention products go through gemm(), which sends them to the GEMM
 * library of the process-wide precision.
 *  - GEMM_FP32: oneDNN's dnnl_sgemm (measured faster than OpenBLAS
 *    cblas_sgemm on this project's linear shapes and level on the attention
 *    products; README "GEMM path" gives the numbers).
 *  - GEMM_BF16: mixed precision. A and B are rounded to bfloat16 (round to
 *    nearest even) and multiplied by a oneDNN matmul primitive (bf16 inputs,
 *    fp32 accumulation and fp32 C; one primitive per shape, cached, with token
 *    dimensions over 256 bucketed by 64 so a routed MoE's changing expert
 *    shapes reuse kernels: see gemm.c PAD_TO); all else
 *    (master weights, AdamW state, LayerNorm, softmax, loss, reductions) stays
 *    fp32. Needs a CPU with avx512_bf16 or AMX (oneDNN's ISA
 *    avx512_core_bf16 or later). Products requested from inside an OpenMP
 *    parallel region, or whose primitive oneDNN cannot create, are computed
 *    in fp32.
 * Row-major throughout, as cblas_sgemm(CblasRowMajor, ...):
 *   C (M,N) = alpha op(A) op(B) + beta C, op(A) (M,K), op(B) (K,N).
 * Calls from inside an OpenMP parallel region run on the calling thread. */
#ifndef EWA_GEMM_H
#define EWA_GEMM_H
#include <stddef.h>
#include "err.h"

typedef enum { GEMM_FP32 = 0, GEMM_BF16 = 1 } GemmPrecision;

/* "fp32" / "bf16"; NULL for an unknown value. */
const char *gemm_precision_name(GemmPrecision p);
/* Parses "fp32" | "bf16" into *p; ERR_USAGE naming the value and `where`
 * (e.g. "config.ini:12 train.precision") otherwise. */
int gemm_parse_precision(const char *s, const char *where, GemmPrecision *p, Err *err);
/* 1 if this CPU runs bf16 GEMMs (oneDNN reports avx512_core_bf16 or a later
 * ISA); if not and why is non-NULL, fills why with the reason. */
int gemm_bf16_supported(char *why, size_t why_len);
/* Sets the precision of every following gemm() call in this process.
 * GEMM_BF16 on a CPU without bf16 instructions: ERR_USAGE with a message
 * naming the missing instructions (the run is not started). */
int gemm_set_precision(GemmPrecision p, Err *err);
GemmPrecision gemm_precision(void);

/* The thread count of every GEMM library and of the engine's OpenMP kernels:
 * OpenMP's (oneDNN runs on it) and OpenBLAS's (fp32 fallback, GSL's CBLAS
 * references). n >= 1. */
void gemm_set_threads(int n);

/* Provenance (the run record's blas, blas_core and gemm_lib columns):
 * OpenBLAS's build configuration and core type, and "oneDNN X.Y.Z isa 0x..". */
const char *gemm_blas_config(void);
const char *gemm_blas_core(void);
void gemm_library(char *buf, size_t n);

void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);

/* A hint for the next gemm() call only: its A is the memory the previous
 * call read as A, unchanged since (a linear layer's backward passes dL/dout
 * to both of its products). In bf16 that call's conversion of A is reused when
 * the two calls lay A out alike (the same pointer, rows, columns, leading
 * dimension and padding); otherwise, and in fp32, the hint does nothing. A
 * wrong hint gives wrong products: give it only where A cannot have changed,
 * outside OpenMP parallel regions (products requested inside one run in fp32
 * on the calling thread and neither use nor clear the hint). */
void gemm_next_a_unchanged(void);

/* Always fp32 (the attention's small per-head products, whatever the
 * precision; they are a few percent of the FLOPs). */
void gemm_f32(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

#endif
