/* Data parallelism of one training run over MPI ranks (issue 15):
 *
 *   mpirun -np R bin/ewa train --config FILE --out DIR
 *
 * Every rank holds the whole model and the same data order (same seed). Each
 * optimizer step's global batch of nb images (train.batch_size, fewer in the
 * last step of an epoch) is cut into R contiguous shards (dist_split); a rank
 * runs forward and backward on its shard, weights its gradient of the shard's
 * mean loss by n_r / nb and the gradients are summed with MPI_Allreduce, so
 * every rank holds the gradient of the global batch's mean loss and applies
 * the same clipping, AdamW and EWA updates. Evaluation splits the test set the
 * same way and sums (loss, correct). Rank 0 alone writes the run directory.
 *
 * Across ranks (what the MoE methods mean, see README "More than one machine"):
 *  - RMoE / EWA: the random partition is that of the global batch (every rank
 *    draws it from the same stream and keeps its own tokens), so R ranks train
 *    exactly as one process with the global batch.
 *  - Routed MoE: capacity ceil(k * cf * units / E) counts the units of the
 *    rank's shard, and the load-balancing and z losses are computed on the
 *    shard; the global loss is the shard-size-weighted mean of the ranks'
 *    losses (per-device groups, as Switch Transformer and GShard do). With
 *    cf <= 0 and aux_coef = zloss_coef = 0 routed runs are rank-invariant.
 *  - Augmentation draws from a per-rank stream (rank 0's is the one-process
 *    stream), so augmented runs are equivalent in distribution, not bitwise.
 *
 * Without MPI (EWA_MPI undefined, or not launched by mpirun/srun) every
 * function is the one-rank identity: rank 0 of 1, sums return their input. */
#ifndef EWA_DIST_H
#define EWA_DIST_H
#include <stddef.h>
#include "../core/err.h"

/* MPI_Init when the process was started by an MPI launcher (Open MPI's
 * mpirun, or a PMIx launcher such as srun --mpi=pmix); else nothing.
 * Returns 0, or ERR_RUNTIME when launched by mpirun but built without MPI. */
int dist_init(int *argc, char ***argv, Err *err);
/* MPI_Finalize (after a successful run). */
void dist_finalize(void);
/* After a failure on this rank: MPI_Abort(code) when R > 1, so no other rank
 * waits forever in a collective and mpirun exits non-zero; else returns. */
void dist_abort(int code);
int dist_rank(void);
int dist_size(void);

/* This rank's contiguous share [*off, *off + *cnt) of n items: the first
 * n % R ranks get one more. */
void dist_split(int n, int *off, int *cnt);

/* g (n floats) := sum over ranks of (cnt_r / total) * g_r, and stats (ns
 * doubles) := their sum over ranks. cnt = this rank's samples, total = all
 * ranks'. One rank: nothing changes. Counts the time in dist_comm_seconds. */
int dist_reduce_grads(float *g, size_t n, int cnt, int total, double *stats, int ns, Err *err);
int dist_sum_doubles(double *v, int n, Err *err);
int dist_sum_longs(long *v, size_t n, Err *err);
/* ERR_RUNTIME unless the n floats are bitwise equal on every rank. */
int dist_check_equal(const float *v, size_t n, const char *what, Err *err);
/* Seconds spent in the gradient allreduce so far, and how many calls. */
double dist_comm_seconds(long *calls);
/* R > 1, rank 0: one stderr line "[mpi] R ranks: S steps, gradient allreduce
 * X ms/step (N floats, M MB), rank 0 waited W ms/step for the slowest rank"
 * (a barrier before each allreduce separates the two). Nothing on one rank. */
void dist_report(long steps, size_t floats);

#endif
