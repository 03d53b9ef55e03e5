/* Aggregation of a grid's runs.csv into tables (docs/DESIGN.md 5) and the regression
 * check of `make regress`. */
#ifndef EWA_AGGREGATE_H
#define EWA_AGGREGATE_H
#include <stdio.h>
#include "../core/err.h"

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
 * the key is the method, the MoE keys the baseline method does not use (an
 * exact match preferred) - paired by seed, on final_top1.
 *
 * table.csv columns: cell (the "key=value ..." label, or "pooled"), the
 * grouping keys, n, n_failed, mean_top1, std_top1, se_binomial, n_test,
 * params_inference, flops_inference, baseline (the baseline cell's label),
 * baseline_mean_top1, diff, ci_low, ci_high, t, p, p_holm, mde, n_pairs
 * (formulas in stats.h; p empty for zero-variance differences, everything
 * but diff and n_pairs empty for one pair). p_holm: Holm over the compared
 * cells with a p. One "pooled" row per compared value of the baseline key
 * (its column holds the value, n the number of cells pooled): per seed the
 * mean over those cells (with >= 2 pairs) of their paired differences, on
 * the seeds all of them share, and a one-sample t over the seeds (n_pairs =
 * seeds); its p_holm is empty. */
int aggregate_runs(const char *runs_csv, const char *out_dir, const char *group,
                   const char *baseline, Err *err);

/* The ok runs of runs_csv, deduplicated as aggregate_runs does, with their
 * values of the grouping keys (group as in aggregate_runs; key[g] are the
 * canonical names) and their provenance. Strings are malloc'd copies; a
 * missing git_commit is "", a missing git_dirty -1. */
typedef struct {
    int ng, n;
    char **key;            /* ng */
    char **val;            /* n * ng, row-major */
    char **run_id, **commit;
    int *dirty;
    long *seed;
    double *final_top1;
} RunValues;
int aggregate_run_values(const char *runs_csv, const char *group, RunValues *out, Err *err);
void run_values_free(RunValues *v);

/* Compares two table.csv files cell by cell (cells matched on the grouping
 * columns, those before "n" but "cell"; pooled rows skipped): FAIL when |mean_new - mean_ref| >
 * max(3 std_ref, 2 SE_binomial(mean_ref, n_test_ref)), or when a reference
 * cell is missing from new. Prints one verdict line per cell to out;
 * *nfail counts the failures. */
int regress_tables(const char *ref_csv, const char *new_csv, FILE *out, int *nfail, Err *err);

#endif
