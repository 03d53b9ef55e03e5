/* The epoch checkpoint of a training run (docs/DESIGN.md 8.10): everything
 * `ewa train --resume DIR` needs to continue an interrupted run to the same
 * result, bit for bit, as a run that was never interrupted. It is one
 * safetensors file, DIR/train_state.safetensors, written atomically after
 * every epoch but the last and removed when the run ends with a final status:
 *  - tensors "params", "adam_m", "adam_v": the trained model's parameter
 *    block and its AdamW moments, flat (ViT.num_params floats each);
 *  - metadata: "format" (TRAINSTATE_FORMAT), "config" (the resolved INI), the
 *    epoch and optimizer step reached, AdamW's step count, the two stateful
 *    random streams (the data order's and the augmentation's; every other
 *    stream - RMoE partitions, initialisation, subsets - is derived from
 *    (seed, step, ...) and needs no state), the results of the evaluations so
 *    far (final and best-validation bookkeeping), the routed-MoE counters,
 *    the training time, and how many rows metrics.csv, moe_metrics.csv and
 *    routing.csv held at that epoch (later rows, from a run killed between
 *    writing them and this file, are dropped on resume).
 * Doubles are written with 17 significant digits (exact round trip). */
#ifndef EWA_TRAINSTATE_H
#define EWA_TRAINSTATE_H
#include "config.h"
#include "../core/err.h"
#include "../core/rng.h"
#include "../core/vit.h"

#define TRAINSTATE_FILE "train_state.safetensors"
#define TRAINSTATE_FORMAT "ewa-train-state-1"

typedef struct {
    int epoch;                 /* epochs completed */
    long step;                 /* optimizer steps taken */
    int adam_t;                /* AdamW.t */
    Rng shuffle, aug;          /* data order and augmentation streams */
    double train_seconds, wall_s;
    long total_assigned, total_dropped;   /* routed MoE assignments over the run */
    double final_top1, final_test_loss, final_val_top1, best_top1, best_val_top1;
    int best_epoch;
    int metrics_rows, moe_rows, routing_rows;
    char start_time[32];       /* the run's first start (ISO 8601 UTC) */
} TrainState;

/* Writes s with the model's parameters and AdamW moments and the config c
 * to path atomically. ERR_RUNTIME on an I/O failure. */
int trainstate_save(const char *path, const RunConfig *c, const ViT *m, const TrainState *s, Err *err);

/* Reads path into s and the model's parameters and moments (m built for c).
 * The stored config must equal c in every key: otherwise ERR_USAGE naming
 * the first differing key and both values. A file that is not a train state
 * of this model (format, tensor sizes, a missing or malformed field) is
 * ERR_RUNTIME naming path and the field. */
int trainstate_load(const char *path, const RunConfig *c, ViT *m, TrainState *s, Err *err);

#endif
