/* Provenance of the binary: the git commit and dirty flag at build time
 * (the Makefile rebuilds this file on every `make`), and the compiler flags
 * that can change a run's numbers (docs/DESIGN.md 8.2). */
#ifndef EWA_GIT_COMMIT
#define EWA_GIT_COMMIT "unknown"
#endif
#ifndef EWA_GIT_DIRTY
#define EWA_GIT_DIRTY -1
#endif
#ifndef EWA_BUILD_FLAGS
#define EWA_BUILD_FLAGS "unknown"
#endif
const char *ewa_git_commit(void) { return EWA_GIT_COMMIT; }
int ewa_git_dirty(void) { return EWA_GIT_DIRTY; }

/* The instruction-set extensions the compiler targeted (what -march=native
 * resolved to on the building machine): they decide vector widths and FMA
 * contraction, so two builds with the same flags on different CPUs can
 * round differently. */
#define ISA_LIST                                                                                   \
    ISA_SSE42 ISA_AVX ISA_AVX2 ISA_FMA ISA_F16C ISA_AVX512F ISA_AVX512BF16 ISA_NEON ISA_SVE ISA_FAST
#ifdef __SSE4_2__
#define ISA_SSE42 " sse4.2"
#else
#define ISA_SSE42 ""
#endif
#ifdef __AVX__
#define ISA_AVX " avx"
#else
#define ISA_AVX ""
#endif
#ifdef __AVX2__
#define ISA_AVX2 " avx2"
#else
#define ISA_AVX2 ""
#endif
#ifdef __FMA__
#define ISA_FMA " fma"
#else
#define ISA_FMA ""
#endif
#ifdef __F16C__
#define ISA_F16C " f16c"
#else
#define ISA_F16C ""
#endif
#ifdef __AVX512F__
#define ISA_AVX512F " avx512f"
#else
#define ISA_AVX512F ""
#endif
#ifdef __AVX512BF16__
#define ISA_AVX512BF16 " avx512bf16"
#else
#define ISA_AVX512BF16 ""
#endif
#ifdef __ARM_NEON
#define ISA_NEON " neon"
#else
#define ISA_NEON ""
#endif
#ifdef __ARM_FEATURE_SVE
#define ISA_SVE " sve"
#else
#define ISA_SVE ""
#endif
#ifdef __FAST_MATH__
#define ISA_FAST " fast-math"
#else
#define ISA_FAST ""
#endif

/* "<the Makefile's OPT> (target<extensions>)", e.g.
 * "-O3 -march=native (target sse4.2 avx avx2 fma f16c)". */
const char *ewa_build_flags(void) { return EWA_BUILD_FLAGS " (target" ISA_LIST ")"; }
