/* One training run (bin/ewa train) and checkpoint evaluation (bin/ewa eval). */
#ifndef EWA_TRAIN_H
#define EWA_TRAIN_H
#include <stdatomic.h>
#include <signal.h>
#include "config.h"
#include "../core/err.h"

typedef struct {
    double final_top1, final_test_loss, train_seconds;
    /* validation split (issue 10): best_top1 = test top-1 of the evaluation
     * with the best validation top-1 (best_epoch; 0 = no validation split) */
    double best_top1, final_val_top1, best_val_top1;
    int best_epoch, n_val;
    double drop_rate;       /* routed MoE: fraction of assignments dropped in training */
    long steps, diverged_step;
    int n_test;
    /* images the training steps processed (each epoch is the whole training
     * set, its last batch partial): the flops_train column's count */
    double train_images;
    char status[16];        /* ok | diverged | failed | interrupted */
    int stop_signal;        /* interrupted: the signal (SIGINT, SIGTERM) */
    char diverged_what[24]; /* diverged: "training loss", "test loss" or "parameters" */
} TrainResult;

/* What train_run does with a run directory that already holds a run
 * (summary.csv, metrics.csv, final.safetensors or a train state):
 *  TRAIN_FRESH     refuses it (ERR_USAGE): a finished run needs
 *                  TRAIN_OVERWRITE, an interrupted one TRAIN_RESUME or
 *                  TRAIN_OVERWRITE;
 *  TRAIN_OVERWRITE removes the earlier run's files and starts again;
 *  TRAIN_RESUME    continues an interrupted run from its epoch checkpoint
 *                  (trainstate.h), or starts it from step 0 if it stopped
 *                  before its first epoch ended; a finished run is refused. */
typedef enum { TRAIN_FRESH = 0, TRAIN_OVERWRITE, TRAIN_RESUME } TrainMode;

typedef struct {
    TrainMode mode;
    /* set to a signal number (main.c: by its signal-waiting thread) to stop the
     * run at the next step: status "interrupted", no checkpoint; NULL = never */
    atomic_int *stop;
} TrainOpts;

/* Trains cfg, writing config.ini, metrics.csv, summary.csv and
 * final.safetensors into out_dir (created if needed), and after every epoch
 * but the last the epoch checkpoint train_state.safetensors (removed when the
 * run ends ok or diverged). A run whose training or test loss turns NaN/inf at
 * any evaluation, or whose parameters are not all finite before the
 * checkpoint is written, returns 0 with status "diverged", writes its summary
 * and no checkpoint. A run stopped through o->stop returns 0 with status
 * "interrupted" and stop_signal set, its summary (steps = the steps taken)
 * and metrics up to its last finished epoch, and no final.safetensors. */
int train_run(const RunConfig *cfg, const char *out_dir, const TrainOpts *o, TrainResult *res, Err *err);

/* Evaluates a checkpoint on its dataset's test split; overrides may change
 * data keys (e.g. data.dir). loss: plain cross-entropy; loss_smoothed: the
 * label-smoothed cross-entropy of the training objective (train.label_smoothing
 * of the checkpoint's config). A non-finite test loss is an error
 * (ERR_RUNTIME) naming the checkpoint and its count of non-finite weights. */
int eval_checkpoint(const char *path, int n_set, char *const *sets, double *top1,
                    int *n, double *loss, double *loss_smoothed, Err *err);

#endif
