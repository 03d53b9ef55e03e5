/* Tests for experiments/stats.c and the statistics of `ewa aggregate`.
 * Student's t against closed forms (df = 1 is Cauchy: p = 1 - 2 atan|t| / pi;
 * df = 2: p = 1 - |t| / sqrt(2 + t^2), quantile t_q = (2q - 1) sqrt(2 / (1 -
 * (2q - 1)^2))); Holm and the paired test by hand; every figure of the
 * aggregate table against tests/fixtures/stats/expected.csv, computed
 * independently (mpmath, plain Python) by tests/fixtures/stats/make_expected.py
 * from tests/fixtures/stats/runs.csv. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../experiments/csvio.h"
#include "../experiments/aggregate.h"
#include "../experiments/stats.h"
#include "testutil.h"

#define NEAR(got, want, tol) \
    cr_assert(fabs((got) - (want)) <= (tol), "%s = %.10g, expected %.10g", #got, (double)(got), (double)(want))

Test(stats, mean_and_sample_std) {
    double x[] = {0.80, 0.82, 0.84};
    NEAR(stats_mean(x, 3), 0.82, 1e-12);
    NEAR(stats_std(x, 3), 0.02, 1e-12);          /* sqrt((4e-4 + 0 + 4e-4) / 2) */
    double y[] = {1, 2, 3, 4};
    NEAR(stats_std(y, 4), sqrt(5.0 / 3.0), 1e-12); /* sum sq 5, n-1 = 3 */
    NEAR(stats_std(y, 1), 0.0, 0);
    cr_assert(isnan(stats_mean(y, 0)) && isnan(stats_std(y, 0)));
}

Test(stats, t_pvalue_and_quantile_closed_forms) {
    NEAR(stats_t_pvalue(3.0, 2), 1 - 3 / sqrt(11.0), 1e-12);
    NEAR(stats_t_pvalue(-3.0, 2), 1 - 3 / sqrt(11.0), 1e-12);
    for (double t = 0.25; t < 20; t *= 2) {
        NEAR(stats_t_pvalue(t, 1), 1 - 2 * atan(t) / M_PI, 1e-10);
        NEAR(stats_t_pvalue(t, 2), 1 - t / sqrt(2 + t * t), 1e-10);
    }
    NEAR(stats_t_pvalue(2.228139, 10), 0.05, 1e-6);  /* two-sided 5% critical value */
    NEAR(stats_t_pvalue(1.959964, 1e7), 0.05, 1e-6); /* normal limit */
    NEAR(stats_t_pvalue(0, 5), 1.0, 1e-12);
    NEAR(stats_t_pvalue(INFINITY, 5), 0.0, 0);
    cr_assert(isnan(stats_t_pvalue(NAN, 5)) && isnan(stats_t_pvalue(1, 0)));
    for (double q = 0.55; q < 1; q += 0.1) {
        double a = 2 * q - 1;
        NEAR(stats_t_quantile(q, 2), a * sqrt(2 / (1 - a * a)), 1e-9);
        NEAR(stats_t_quantile(q, 1), tan(M_PI * (q - 0.5)), 1e-9);
    }
    NEAR(stats_t_quantile(0.975, 10), 2.228139, 1e-6);
    cr_assert(isnan(stats_t_quantile(1.0, 3)) && isnan(stats_t_quantile(0.5, -1)));
}

Test(stats, paired_t_by_hand) {
    /* d = 0.03, 0.02, 0.01: mean 0.02, sd 0.01, se 0.01/sqrt 3, t = 2 sqrt 3,
     * df 2, p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(12/14); t_.975,2 = 4.302653,
     * t_.8,2 = 1.060660 (closed form above). */
    double a[] = {0.80, 0.82, 0.81}, b[] = {0.83, 0.84, 0.82};
    TTest r = stats_paired_t(a, b, 3);
    double se = 0.01 / sqrt(3.0), c975 = 0.95 * sqrt(2 / (1 - 0.95 * 0.95)), c8 = 0.6 * sqrt(2 / (1 - 0.36));
    cr_assert_eq(r.n, 3);
    NEAR(r.diff, 0.02, 1e-12);
    NEAR(r.sd, 0.01, 1e-12);
    NEAR(r.t, 2 * sqrt(3.0), 1e-9);
    NEAR(r.df, 2, 0);
    NEAR(r.p, 1 - sqrt(12.0 / 14.0), 1e-9);
    NEAR(r.ci_low, 0.02 - c975 * se, 1e-9);
    NEAR(r.ci_high, 0.02 + c975 * se, 1e-9);
    NEAR(r.mde, (c975 + c8) * se, 1e-9);
    TTest s = stats_paired_t(b, a, 3);   /* swapping the arms flips t, keeps p */
    NEAR(s.t, -2 * sqrt(3.0), 1e-9);
    NEAR(s.p, r.p, 1e-12);
}

Test(stats, paired_t_degenerate_cases) {
    double a[] = {0.5, 0.6, 0.7};
    TTest r = stats_paired_t(a, a, 3);            /* zero difference: no test */
    cr_assert(isnan(r.p) && isnan(r.t));
    NEAR(r.diff, 0, 0);
    double b[] = {0.6, 0.7, 0.8};                  /* constant nonzero difference: no test, not p = 0 */
    r = stats_paired_t(a, b, 3);
    cr_assert(isnan(r.p), "p = %g for zero-variance differences", r.p);
    NEAR(r.ci_low, 0.1, 1e-12);
    NEAR(r.ci_high, 0.1, 1e-12);
    NEAR(r.mde, 0, 0);
    r = stats_paired_t(a, b, 1);                   /* one pair: no test */
    cr_assert(isnan(r.p) && isnan(r.ci_low) && isnan(r.mde));
    NEAR(r.diff, 0.1, 1e-12);
}

Test(stats, holm_by_hand) {
    /* sorted 0.01, 0.02, 0.04, 0.3 (m = 4): 0.04, 0.06, 0.08, 0.3; the NAN is
     * not in the family; the running max keeps the adjusted p monotone */
    double p[] = {0.04, NAN, 0.01, 0.3, 0.02}, out[5];
    stats_holm(p, 5, out);
    NEAR(out[2], 0.04, 1e-15);
    NEAR(out[4], 0.06, 1e-15);
    NEAR(out[0], 0.08, 1e-15);
    NEAR(out[3], 0.3, 1e-15);
    cr_assert(isnan(out[1]));
    double q[] = {0.03, 0.02}, o2[2];   /* 0.04 then max(0.04, 0.03) */
    stats_holm(q, 2, o2);
    NEAR(o2[1], 0.04, 1e-15);
    NEAR(o2[0], 0.04, 1e-15);
    double big[] = {0.6, 0.7}, o3[2];   /* capped at 1 */
    stats_holm(big, 2, o3);
    NEAR(o3[0], 1, 0);
    NEAR(o3[1], 1, 0);
}

Test(stats, welch_by_hand) {
    /* x = 1,2,3 (mean 2, var 1), y = 2,4,6,8 (mean 5, var 20/3): se^2 =
     * 1/3 + 5/3 = 2, df = 4 / ((1/9)/2 + (25/9)/3) */
    double x[] = {1, 2, 3}, y[] = {2, 4, 6, 8};
    TTest r = stats_welch(x, 3, y, 4);
    double df = 4.0 / ((1.0 / 9) / 2 + (25.0 / 9) / 3);
    NEAR(r.diff, 3, 1e-12);
    NEAR(r.se, sqrt(2.0), 1e-12);
    NEAR(r.df, df, 1e-12);
    NEAR(r.p, stats_t_pvalue(3 / sqrt(2.0), df), 1e-12);
    double z[] = {1, 1, 1}, w[] = {1, 1, 1}, v[] = {2, 2, 2};
    NEAR(stats_welch(z, 3, w, 3).p, 1, 0);   /* identical constants */
    NEAR(stats_welch(z, 3, v, 3).p, 0, 0);   /* different constants */
}

Test(stats, binomial_se) {
    NEAR(stats_binom_se(0.9, 10000), 0.003, 1e-12);
    NEAR(stats_binom_se(0.5, 100), 0.05, 1e-12);
    NEAR(stats_binom_se(1.0, 100), 0.0, 0);
    cr_assert(isnan(stats_binom_se(0.5, 0)));
}

/* ---------------------------------------------------------------- aggregate */

static char *fixture(const char *name) {
    char *p = tu_fixture_path(__FILE__, "stats", name);
    if (!p) cr_skip_test("fixture %s not found (run from the repository root)", name);
    return p;
}

static int find_row(const CsvTable *t, const char *ds, const char *method, const char *experts) {
    int cd = csv_col(t, "dataset"), cm = csv_col(t, "method"), ce = csv_col(t, "experts"),
        cc = csv_col(t, "cell");
    for (int r = 0; r < t->nrows; r++) {
        int pooled = cc >= 0 && !strcmp(csv_cell(t, r, cc), "pooled");
        if (!strcmp(ds, "pooled") ? pooled && !strcmp(csv_cell(t, r, cm), method)
                                  : !pooled && !strcmp(csv_cell(t, r, cd), ds) &&
                                        !strcmp(csv_cell(t, r, cm), method) && !strcmp(csv_cell(t, r, ce), experts))
            return r;
    }
    return -1;
}

Test(aggregate, every_figure_matches_the_independent_computation) {
    char *runs = fixture("runs.csv"), *expected = fixture("expected.csv");
    char *dir = tu_tmpdir();
    Err err = {0};
    cr_assert_eq(aggregate_runs(runs, dir, "dataset,method,experts", "method=dense", 0, &err), 0, "%s", err.msg);
    char *table = tu_path(dir, "table.csv");
    CsvTable got, want;
    cr_assert_eq(csv_read_file(table, &got, &err), 0, "%s", err.msg);
    cr_assert_eq(csv_read_file(expected, &want, &err), 0, "%s", err.msg);
    static const char *const cols[] = {"diff", "ci_low", "ci_high", "p", "p_holm", "mde", "n_pairs"};
    int checked = 0;
    for (int r = 0; r < want.nrows; r++) {
        const char *ds = csv_cell(&want, r, 0), *m = csv_cell(&want, r, 1), *e = csv_cell(&want, r, 2);
        int g = find_row(&got, ds, m, e);
        cr_assert_geq(g, 0, "no row %s %s %s in %s", ds, m, e, table);
        for (size_t k = 0; k < sizeof cols / sizeof *cols; k++) {
            const char *w = csv_cell(&want, r, csv_col(&want, cols[k]));
            int gc = csv_col(&got, cols[k]);
            cr_assert_geq(gc, 0, "table.csv has no column %s", cols[k]);
            const char *v = csv_cell(&got, g, gc);
            cr_expect_eq(!w[0], !v[0], "%s %s %s %s: got '%s', expected '%s'", ds, m, e, cols[k], v, w);
            if (!w[0] || !v[0]) continue;
            /* table.csv prints %.6f, p-values %.6g */
            double tol = cols[k][0] == 'p' ? 1e-5 * fabs(atof(w)) + 1e-12 : 6e-7;
            cr_expect(fabs(atof(v) - atof(w)) <= tol, "%s %s %s %s: got %s, expected %s", ds, m, e,
                      cols[k], v, w);
            checked++;
        }
    }
    cr_expect_geq(checked, 40, "only %d figures compared", checked);
    /* the baseline of ewa N = 2 is dense N = 4 (dense ignores moe.experts) */
    int r2 = find_row(&got, "A", "ewa", "2");
    cr_expect_str_eq(csv_cell(&got, r2, csv_col(&got, "baseline")), "dataset=A method=dense experts=4");
    csv_table_free(&got);
    csv_table_free(&want);
    tu_rmrf(dir);
    free(table); free(dir); free(runs); free(expected);
}
