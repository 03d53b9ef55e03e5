/* Aggregation of a grid's runs.csv into tables (docs/DESIGN.md 5); the cells
 * are also what `ewa regress --mode stat` compares (regress.h). */
#ifndef EWA_AGGREGATE_H
#define EWA_AGGREGATE_H
#include <stdio.h>
#include "csvio.h"
#include "stats.h"
#include "../core/err.h"

#define AGG_MAXG 32

/* A cell: the runs of one combination of the grouping keys' values. */
typedef struct {
    char *vals[AGG_MAXG];  /* the grouping keys' values */
    char label[1024];      /* "key=value key=value ..." */
    int n, nfail, cap;     /* ok runs, runs not ok */
    double *acc;           /* n: the ok runs' final_top1 */
    long *seed;            /* n: their seeds */
    char n_test[32], params[32], flops[32];
    double mean, std, se;
    /* training cost, mean over the ok runs that record it (NaN: none) */
    double train_s, flops_train;
    int n_train_s, n_flops_train;
    /* comparison with the baseline cell (paired by seed) */
    int base;              /* index of the baseline cell, -1 none */
    TTest cmp;
    double p_holm;
    long *pair_seed;       /* cmp.n pairs: seed and difference cell - baseline */
    double *pair_d;
} AggCell;

/* The pooled effect of the cells whose baseline key has one value. */
typedef struct {
    const char *value;     /* the baseline key's value (e.g. "ewa") */
    int ncells;
    TTest t;
} AggPooled;

struct AggRow;

/* A runs.csv as the aggregation reads it (aggregate_load). */
typedef struct {
    CsvTable t;                    /* the file */
    struct AggRow *rows;           /* n runs after deduplication by run_id */
    int n;
    int *cell_of;                  /* run i's cell, -1 when the run is not ok */
    char gname[AGG_MAXG][128];     /* the grouping keys */
    int ng, bkey;                  /* bkey: the baseline key's index, -1 none */
    char bval[256];                /* the baseline key's value */
    AggCell *cells;
    int nc;
    AggPooled *pool;
    int npool;
    int n_planned, n_missing;      /* the grid's plan.csv beside runs.csv: its runs, those without a row */
} AggSet;

/* Reads runs_csv (rows deduplicated by run_id, the last row of a run wins,
 * an ok row over a failed one), groups the ok rows into cells and writes
 * out_dir/table.csv (+ table.tsv), out_dir/table.md and the training-curve
 * data out_dir/curves.dat + out_dir/curves_index.csv (from the runs'
 * metrics.csv under dirname(runs_csv)/runs/<id>/, when present).
 *
 * group: comma-separated keys, NULL = dataset, train_subset, preset, dim,
 * depth, method and every swept key. A key "section.key" is read from the
 * runs.csv column named `key` when there is one, else from the run's sweep.
 * baseline "key=value" (e.g. moe.method=dense): each cell is compared with
 * the baseline cell that differs from it only in that key - ignoring, when
 * the key is the method, the MoE keys the baseline method does not use and
 * the learning rate, which equal tuning chooses per method (an exact match
 * preferred, else the first such cell) - paired by seed, on final_top1.
 *
 * table.csv columns: cell (the "key=value ..." label, or "pooled"), the
 * grouping keys, n, n_failed, mean_top1, std_top1, se_binomial, n_test,
 * params_inference, flops_inference, baseline (the baseline cell's label),
 * baseline_mean_top1, diff, ci_low, ci_high, t, p, p_holm, mde, n_pairs,
 * train_seconds and flops_train (each the mean over the cell's ok runs of
 * the runs.csv column, empty when none has it: the training cost beside the
 * accuracy)
 * (formulas in stats.h; p empty for zero-variance differences, everything
 * but diff and n_pairs empty for one pair). p_holm: Holm over the compared
 * cells with a p. One "pooled" row per compared value of the baseline key
 * (its column holds the value, n the number of cells pooled): per seed the
 * mean over those cells (with >= 2 pairs) of their paired differences, on
 * the seeds all of them share, and a one-sample t over the seeds (n_pairs =
 * seeds); its p_holm is empty.
 *
 * A grid's output holds plan.csv (runrecord.h), the runs it set out to make;
 * when some of them have no finished row yet (the grid is still running, or
 * was stopped), the runs are partial: ERR_RUNTIME naming the count, unless
 * allow_partial, when table.md says in its first lines that the table is
 * partial and how many runs are missing (and stderr warns). allow_partial
 * writes only outside the grid's directory (ERR_USAGE for an out_dir that is
 * dirname(runs_csv) or inside it): tables there pass for the grid's result. */
int aggregate_runs(const char *runs_csv, const char *out_dir, const char *group,
                   const char *baseline, int allow_partial, Err *err);

/* The same reading, grouping and pairing into s without writing anything
 * (group, baseline and allow_partial as above; s->n_planned and s->n_missing
 * count the plan). ERR_RUNTIME for an unreadable file, missing columns, no
 * runs or partial runs not allowed; ERR_USAGE for a bad group or baseline. On success the
 * caller frees s with aggregate_free. */
int aggregate_load(const char *runs_csv, const char *group, const char *baseline, int allow_partial,
                   AggSet *s, Err *err);
/* Run i's value of column col (or of its swept key col); "" when absent. */
const char *aggregate_run_get(const AggSet *s, int i, const char *col);
void aggregate_free(AggSet *s);

#endif
