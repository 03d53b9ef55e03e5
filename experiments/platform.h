/* The platform fingerprint of a set of runs (issue 10): what a run's numbers
 * depend on besides the code and the config. Two sets of runs with equal
 * fingerprints reproduce each other bit for bit (the engine is
 * deterministic for a given thread count), so `ewa regress` compares them
 * exactly; otherwise only statistically (regress.h).
 *
 * Fields, each read from the runs.csv columns of the same name (the run
 * record, runrecord.c), over the ok runs:
 *   cpu_model    /proc/cpuinfo "model name"
 *   blas         openblas_get_config(): version, build options, kernel family
 *   blas_core    openblas_get_corename(): the kernel type in use
 *   gemm_lib     the GEMM library of the linear layers and its ISA (core/gemm.h:
 *                oneDNN's version and dnnl_get_effective_cpu_isa())
 *   compiler     compiler and version
 *   build_flags  the Makefile's OPT and the ISA the compiler targeted
 *                (-march=native resolves per machine)
 *   threads      the runs' thread counts
 * A field's value is the distinct values of its column, sorted and joined by
 * " | " ("unknown" for a column the runs.csv lacks or an empty value);
 * control characters become spaces.
 *
 * A reference directory stores it as platform.csv: the header "key,value"
 * and one row per field in the order above (csvio.h; written atomically). */
#ifndef EWA_PLATFORM_H
#define EWA_PLATFORM_H
#include <stddef.h>
#include "aggregate.h"
#include "../core/err.h"

enum { PLATFORM_NFIELDS = 7 };

typedef struct {
    char val[PLATFORM_NFIELDS][1024];
} Platform;

/* Field i's name (0 <= i < PLATFORM_NFIELDS). */
const char *platform_key(int i);

/* The fingerprint of the ok runs of s. */
void platform_of_runs(const AggSet *s, Platform *p);

/* Writes p to path (platform.csv) atomically. */
int platform_write(const char *path, const Platform *p, Err *err);

/* Reads path into p. *found = 0 (p all "unknown", returns 0) when path does
 * not exist; ERR_RUNTIME naming the file for anything but a key,value table
 * of known fields. A field the file lacks is "unknown". */
int platform_read(const char *path, Platform *p, int *found, Err *err);

/* The fields in which a and b differ, their names joined by ", " into names;
 * returns how many. A field "unknown" on either side always differs. */
int platform_diff(const Platform *a, const Platform *b, char *names, size_t n);

#endif
