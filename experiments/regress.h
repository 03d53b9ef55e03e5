/* The regression check `ewa regress` (issue 10, docs/DESIGN.md 5): fresh
 * results against a committed reference directory, and the writer of such a
 * directory.
 *
 * A reference directory (results/reference/<profile>/) holds runs.csv,
 * table.csv and table.md copied from a grid's output, and platform.csv, the
 * platform fingerprint of its runs (platform.h). Results directories hold a
 * grid's runs.csv.
 *
 * Modes:
 *  exact  every ok run of the reference (matched by run_id) must be an ok run
 *         of the new results with the same final_top1 (as recorded, 6
 *         decimals) and the same checkpoint_sha256 (the weights bit for bit).
 *         Each mismatch is a line naming the run, its cell, the field and the
 *         old and new values. Needs equal platform fingerprints and
 *         checkpoint_sha256 in both runs.csv.
 *  stat   per cell (cells and baseline pairing as `ewa aggregate` builds them:
 *         default grouping keys, baseline moe.method=dense), Welch's
 *         two-sample t-test (stats.h) of the new runs' final_top1 against the
 *         reference runs', and of the new per-seed differences cell -
 *         baseline cell against the reference's. All these tests form one
 *         family: Holm-adjusted (stats_holm) p_holm < alpha (0.01) fails,
 *         naming the cell, the two means, p and p_holm. Both samples with
 *         zero variance: equal means pass (p = 1), different means fail
 *         (p = 0), and the line says so. A test with fewer than 2 values on a
 *         side is reported as not testable and does not fail. A reference
 *         cell missing from the new results, or with fewer ok runs there,
 *         fails.
 *  auto   exact when the platform fingerprint of the new runs equals the
 *         reference's and both have checkpoint_sha256; otherwise it prints
 *         why ("platform differs: <fields>; falling back to stat", or
 *         "reference has no checkpoint_sha256; regenerate it with ...") and
 *         runs stat. The default.
 * An explicit --mode exact whose preconditions fail is a failure with the
 * same explanation.
 * subset (`--subset`): the new results rerun only some of the reference's
 * runs (e.g. `ewa grid --seeds 1`): exact checks the reference runs present
 * in them and counts the others as not rerun; stat skips the reference cells
 * absent from them and allows fewer runs per cell (a side with fewer than 2
 * values is not testable). Either fails when nothing of the reference is in
 * the new results. */
#ifndef EWA_REGRESS_H
#define EWA_REGRESS_H
#include <stdio.h>
#include "../core/err.h"

typedef enum { REGRESS_AUTO = 0, REGRESS_EXACT, REGRESS_STAT } RegressMode;

#define REGRESS_ALPHA 0.01

/* One test of the stat mode. */
typedef struct {
    char cell[1024];
    int is_diff;               /* 0: final_top1; 1: the paired difference to the baseline cell */
    int n_ref, n_new;
    double mean_ref, mean_new;
    double p, p_holm;          /* NAN: not testable (n < 2 on a side) */
    int zero_var;              /* both samples have zero variance */
    int fail;
} RegressTest;

typedef struct {
    RegressMode mode;          /* the mode that ran (auto resolved) */
    int nfail, nchecked;       /* exact: runs; stat: tests and missing cells */
    RegressTest *tests;        /* stat mode: every test, in cell order */
    int ntests;
} RegressResult;

/* "exact" | "stat" | "auto" into *m; ERR_USAGE naming the value otherwise. */
int regress_parse_mode(const char *s, RegressMode *m, Err *err);

/* Compares the runs.csv new_runs with the reference ref_runs (ref_platform:
 * its platform.csv, NULL = none) in the given mode, printing one line per
 * finding and a summary to out. ref_name names the reference in the advice
 * to regenerate it (e.g. "smoke"). r->nfail > 0 means a regression; the
 * return value is nonzero only when the check could not run (unreadable
 * files, or --mode exact without its preconditions, ERR_RUNTIME). Free r
 * with regress_result_free. */
int regress_runs(const char *ref_runs, const char *ref_platform, const char *new_runs,
                 RegressMode mode, int subset, const char *ref_name, FILE *out, RegressResult *r, Err *err);
void regress_result_free(RegressResult *r);

/* The same on directories: ref_dir/runs.csv and ref_dir/platform.csv against
 * new_dir/runs.csv. A path naming a file (e.g. DIR/table.csv) stands for its
 * directory. */
int regress_dirs(const char *ref_dir, const char *new_dir, RegressMode mode, int subset, FILE *out,
                 RegressResult *r, Err *err);

/* Writes the reference directory dir from the results directory from:
 * copies runs.csv, table.csv and table.md and writes platform.csv, each
 * atomically (fs_write_atomic). Refused (ERR_RUNTIME, nothing written) when
 * from's runs.csv lacks checkpoint_sha256, a run is not ok or has no SHA, or
 * a run was built from a dirty tree (git_dirty != 0) unless allow_dirty
 * (tests writing a reference from a developer's tree). */
int regress_write_reference(const char *dir, const char *from, int allow_dirty, FILE *out, Err *err);

#endif
