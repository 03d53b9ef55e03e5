/* Tests for experiments/stats.c against values computed by hand or in
 * closed form: Student's t with df = 1 is Cauchy (p = 1 - 2 atan|t| / pi),
 * with df = 2 p = 1 - |t| / sqrt(2 + t^2); I_x(a, 1) = x^a and
 * I_x(1, b) = 1 - (1 - x)^b. */
#include <criterion/criterion.h>
#include <math.h>
#include "../experiments/stats.h"

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

Test(stats, incomplete_beta_closed_forms) {
    for (double x = 0.05; x < 1; x += 0.1) {
        NEAR(stats_betainc(2.5, 1, x), pow(x, 2.5), 1e-12);
        NEAR(stats_betainc(1, 3.5, x), 1 - pow(1 - x, 3.5), 1e-12);
        NEAR(stats_betainc(0.5, 0.5, x), 2 / M_PI * asin(sqrt(x)), 1e-10);
        /* symmetry */
        NEAR(stats_betainc(3, 7, x) + stats_betainc(7, 3, 1 - x), 1.0, 1e-12);
    }
    NEAR(stats_betainc(2, 3, 0), 0, 0);
    NEAR(stats_betainc(2, 3, 1), 1, 0);
    cr_assert(isnan(stats_betainc(2, 3, 1.5)) && isnan(stats_betainc(0, 3, 0.5)));
}

Test(stats, t_pvalue_known_values) {
    NEAR(stats_t_pvalue(2.0, 4), 0.1161, 5e-5);
    NEAR(stats_t_pvalue(3.0, 2), 0.0955, 5e-5);
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
}

Test(stats, paired_t_by_hand) {
    /* d = 0.03, 0.02, 0.01: mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3)
     * = 2 sqrt 3, df 2, p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(12/14). */
    double a[] = {0.80, 0.82, 0.81}, b[] = {0.83, 0.84, 0.82};
    PairedT r = stats_paired_t(a, b, 3);
    cr_assert_eq(r.n, 3);
    NEAR(r.mean_diff, 0.02, 1e-12);
    NEAR(r.sd_diff, 0.01, 1e-12);
    NEAR(r.t, 2 * sqrt(3.0), 1e-9);
    NEAR(r.df, 2, 0);
    NEAR(r.p, 1 - sqrt(12.0 / 14.0), 1e-9);
    /* swapping the arms flips t, keeps p */
    PairedT s = stats_paired_t(b, a, 3);
    NEAR(s.t, -2 * sqrt(3.0), 1e-9);
    NEAR(s.p, r.p, 1e-12);
}

Test(stats, paired_t_degenerate_cases) {
    double a[] = {0.5, 0.6, 0.7};
    PairedT r = stats_paired_t(a, a, 3);           /* zero difference */
    NEAR(r.p, 1.0, 0);
    NEAR(r.t, 0.0, 0);
    double b[] = {0.6, 0.7, 0.8};                   /* constant nonzero difference */
    r = stats_paired_t(a, b, 3);
    NEAR(r.p, 0.0, 0);
    cr_assert(isinf(r.t) && r.t > 0);
    r = stats_paired_t(a, b, 1);                    /* one pair: no test */
    cr_assert(isnan(r.p));
    NEAR(r.mean_diff, 0.1, 1e-12);
}

Test(stats, binomial_se_and_regression_tolerance) {
    NEAR(stats_binom_se(0.9, 10000), 0.003, 1e-12);
    NEAR(stats_binom_se(0.5, 100), 0.05, 1e-12);
    NEAR(stats_binom_se(1.0, 100), 0.0, 0);
    cr_assert(isnan(stats_binom_se(0.5, 0)));
    /* max(3 * 0.002, 2 * 0.003) = 0.006 both ways; std dominates; SE dominates */
    NEAR(stats_regress_tol(0.9, 0.002, 10000), 0.006, 1e-12);
    NEAR(stats_regress_tol(0.9, 0.01, 10000), 0.03, 1e-12);
    NEAR(stats_regress_tol(0.5, 0.001, 100), 0.1, 1e-12);
    NEAR(stats_regress_tol(0.5, NAN, 100), 0.1, 1e-12);
}
