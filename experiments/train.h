/* One training run (bin/ewa train) and checkpoint evaluation (bin/ewa eval). */
#ifndef EWA_TRAIN_H
#define EWA_TRAIN_H
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
    char status[16];        /* ok | diverged | failed */
    char diverged_what[24]; /* diverged: "training loss", "test loss" or "parameters" */
} TrainResult;

/* Trains cfg, writing config.ini, metrics.csv, summary.csv and
 * final.safetensors into out_dir (created if needed). A run whose training or
 * test loss turns NaN/inf at any evaluation, or whose parameters are not all
 * finite before the checkpoint is written, returns 0 with status "diverged",
 * writes its summary and no checkpoint. */
int train_run(const RunConfig *cfg, const char *out_dir, TrainResult *res, Err *err);

/* Evaluates a checkpoint on its dataset's test split; overrides may change
 * data keys (e.g. data.dir). loss: plain cross-entropy; loss_smoothed: the
 * label-smoothed cross-entropy of the training objective (train.label_smoothing
 * of the checkpoint's config). A non-finite test loss is an error
 * (ERR_RUNTIME) naming the checkpoint and its count of non-finite weights. */
int eval_checkpoint(const char *path, int n_set, char *const *sets, double *top1,
                    int *n, double *loss, double *loss_smoothed, Err *err);

#endif
