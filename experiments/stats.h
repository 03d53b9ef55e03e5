/* Statistics over seeds for the experiment runner (DESIGN 5): mean, sample
 * standard deviation, the paired t-test (two-sided p-value through the
 * regularized incomplete beta function), the binomial standard error of a
 * test accuracy and the regression tolerance. */
#ifndef EWA_STATS_H
#define EWA_STATS_H

/* Arithmetic mean; NAN for n = 0. */
double stats_mean(const double *x, int n);

/* Sample standard deviation (n - 1 in the denominator); 0 for n = 1, NAN
 * for n = 0. */
double stats_std(const double *x, int n);

/* Regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1
 * (continued fraction, modified Lentz). NAN outside the domain. */
double stats_betainc(double a, double b, double x);

/* Two-sided p-value of Student's t with df degrees of freedom:
 * P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2). t = +-inf gives 0. */
double stats_t_pvalue(double t, double df);

typedef struct {
    int n;          /* pairs */
    double mean_diff, sd_diff;
    double t, df, p;  /* p NAN when n < 2 */
} PairedT;

/* Paired t-test of b - a over n pairs. Zero variance of the differences
 * (sd <= 1e-9 |mean|, i.e. up to the rounding of differences of decimals):
 * p = 1 (t = 0) when every difference is 0, else p = 0 (t = +-inf). */
PairedT stats_paired_t(const double *a, const double *b, int n);

/* Binomial standard error sqrt(p (1 - p) / n) of an accuracy p measured on n
 * items; NAN for n <= 0. */
double stats_binom_se(double p, int n);

/* Regression tolerance of DESIGN 5: max(3 * std_ref, 2 * SE_binomial(ref,
 * n_test)). A NAN std_ref (one seed) counts as 0. */
double stats_regress_tol(double ref, double std_ref, int n_test);

#endif
