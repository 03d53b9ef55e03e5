/* Aggregation of a grid's runs.csv into tables (DESIGN 5) and the regression
 * check of `make regress`. */
#ifndef EWA_AGGREGATE_H
#define EWA_AGGREGATE_H
#include <stdio.h>
#include "../core/err.h"

/* Reads runs_csv (rows deduplicated by run_id, the last row of a run wins,
 * an ok row over a failed one), groups the ok rows into cells and writes
 * out_dir/table.csv, out_dir/table.md and the training-curve data
 * out_dir/curves.dat + out_dir/curves_index.csv (from the runs' metrics.csv
 * under dirname(runs_csv)/runs/<id>/, when present).
 *
 * group: comma-separated keys, NULL = dataset, train_subset, preset, dim,
 * depth, method and every swept key. A key "section.key" is read from the
 * runs.csv column named `key` when there is one, else from the run's sweep.
 * baseline "key=value" (e.g. moe.method=dense): each cell is compared with
 * the cell that differs from it only in that key, paired by seed. */
int aggregate_runs(const char *runs_csv, const char *out_dir, const char *group,
                   const char *baseline, Err *err);

/* Compares two table.csv files cell by cell (cells matched on the grouping
 * columns, those before "n"): FAIL when |mean_new - mean_ref| >
 * max(3 std_ref, 2 SE_binomial(mean_ref, n_test_ref)), or when a reference
 * cell is missing from new. Prints one verdict line per cell to out;
 * *nfail counts the failures. */
int regress_tables(const char *ref_csv, const char *new_csv, FILE *out, int *nfail, Err *err);

#endif
