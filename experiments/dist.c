/* Data parallelism over MPI ranks; one-rank no-ops without MPI. See dist.h. */
#include "dist.h"
#include "util.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef EWA_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
static double g_comm_s = 0.0, g_wait_s = 0.0;
static long g_comm_calls = 0;

/* Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; PMIx launchers (srun
 * --mpi=pmix, prterun) set PMIX_RANK; MPICH/Hydra sets PMI_SIZE. */
static int launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }

void dist_split(int n, int *off, int *cnt) {
    int q = n / g_size, r = n % g_size;
    *cnt = q + (g_rank < r);
    *off = g_rank * q + (g_rank < r ? g_rank : r);
}

double dist_comm_seconds(long *calls) {
    if (calls) *calls = g_comm_calls;
    return g_comm_s;
}

void dist_report(long steps, size_t floats) {
    if (g_size == 1 || g_rank) return;
    double n = g_comm_calls ? (double)g_comm_calls : 1.0;
    fprintf(stderr,
            "[mpi] %d ranks: %ld steps, gradient allreduce %.3f ms/step (%zu floats, %.2f MB), "
            "rank 0 waited %.3f ms/step for the slowest rank\n",
            g_size, steps, 1e3 * g_comm_s / n, floats, floats * 4e-6, 1e3 * g_wait_s / n);
}

#ifdef EWA_MPI

static int mpi_fail(int rc, const char *what, Err *err) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, s, &len);
    return err_set(err, ERR_RUNTIME, "rank %d of %d: %s failed: %s", g_rank, g_size, what, s);
}

int dist_init(int *argc, char ***argv, Err *err) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited || !launched_by_mpi()) return 0;
    int rc = MPI_Init(argc, argv);
    if (rc != MPI_SUCCESS) return err_set(err, ERR_RUNTIME, "MPI_Init failed (code %d)", rc);
    /* errors come back as codes (reported with the rank), not as aborts */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return 0;
}

void dist_finalize(void) {
    int inited = 0, fin = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&fin);
    if (inited && !fin) MPI_Finalize();
}

void dist_abort(int code) {
    if (g_size > 1) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
}

int dist_reduce_grads(float *g, size_t n, int cnt, int total, double *stats, int ns, Err *err) {
    if (g_size == 1) return 0;
    float w = total > 0 ? (float)cnt / (float)total : 0.0f;
    if (w != 1.0f)
        for (size_t i = 0; i < n; i++) g[i] *= w;
    /* a barrier first, so the allreduce time is the communication alone and
     * the time the faster ranks wait for the slowest is counted apart */
    double t0 = now_s();
    int rc0 = MPI_Barrier(MPI_COMM_WORLD);
    if (rc0 != MPI_SUCCESS) return mpi_fail(rc0, "MPI_Barrier before the gradient allreduce", err);
    double t1 = now_s();
    g_wait_s += t1 - t0;
    t0 = t1;
    /* MPI counts are int: reduce in chunks of at most 2^30 floats */
    for (size_t o = 0; o < n; o += (size_t)1 << 30) {
        size_t c = n - o < ((size_t)1 << 30) ? n - o : ((size_t)1 << 30);
        int rc = MPI_Allreduce(MPI_IN_PLACE, g + o, (int)c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce of the gradients", err);
    }
    g_comm_s += now_s() - t0;
    g_comm_calls++;
    return ns > 0 ? dist_sum_doubles(stats, ns, err) : 0;
}

int dist_sum_doubles(double *v, int n, Err *err) {
    if (g_size == 1) return 0;
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(rc, "MPI_Allreduce of the step statistics", err);
}

int dist_sum_longs(long *v, size_t n, Err *err) {
    if (g_size == 1) return 0;
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(rc, "MPI_Allreduce of the routing counts", err);
}

int dist_check_equal(const float *v, size_t n, const char *what, Err *err) {
    if (g_size == 1) return 0;
    uint64_t h = 1469598103934665603ull;   /* FNV-1a 64 over the bytes */
    const unsigned char *p = (const unsigned char *)v;
    for (size_t i = 0; i < n * sizeof(float); i++) h = (h ^ p[i]) * 1099511628211ull;
    unsigned long long mn = h, mx = h;
    int rc = MPI_Allreduce(MPI_IN_PLACE, &mn, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    if (rc == MPI_SUCCESS)
        rc = MPI_Allreduce(MPI_IN_PLACE, &mx, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce of a checksum", err);
    if (mn != mx)
        return err_set(err, ERR_RUNTIME, "the ranks' %s differ (checksums %016llx .. %016llx)", what, mn, mx);
    return 0;
}

#else /* one process */

int dist_init(int *argc, char ***argv, Err *err) {
    (void)argc; (void)argv;
    if (launched_by_mpi() && getenv("OMPI_COMM_WORLD_SIZE") && strcmp(getenv("OMPI_COMM_WORLD_SIZE"), "1"))
        return err_set(err, ERR_RUNTIME,
                       "started by mpirun with %s ranks, but bin/ewa was built without MPI "
                       "(install libopenmpi-dev and rebuild: make MPI=1)", getenv("OMPI_COMM_WORLD_SIZE"));
    return 0;
}
void dist_finalize(void) {}
void dist_abort(int code) { (void)code; }
int dist_reduce_grads(float *g, size_t n, int cnt, int total, double *stats, int ns, Err *err) {
    (void)g; (void)n; (void)cnt; (void)total; (void)stats; (void)ns; (void)err;
    return 0;
}
int dist_sum_doubles(double *v, int n, Err *err) { (void)v; (void)n; (void)err; return 0; }
int dist_sum_longs(long *v, size_t n, Err *err) { (void)v; (void)n; (void)err; return 0; }
int dist_check_equal(const float *v, size_t n, const char *what, Err *err) {
    (void)v; (void)n; (void)what; (void)err;
    return 0;
}

#endif
