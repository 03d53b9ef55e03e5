/* Statistics over seeds for the experiment runner (docs/DESIGN.md 5, issue 10).
 * Student's t distribution from GSL (gsl_cdf_tdist_*).
 *
 * Paired comparison of a cell with its baseline (runs paired by seed),
 * d_i = b_i - a_i, i = 1..n, df = n - 1, s = sample sd of d:
 *   diff             = mean(d)
 *   [ci_low, ci_high] = diff -+ t_{0.975, df} s / sqrt(n)        (95% t-interval)
 *   p                = 2 P(T_df >= |diff| / (s / sqrt(n)))       (two-sided paired t)
 *   mde              = (t_{1 - alpha/2, df} + t_{power, df}) s / sqrt(n),
 *                      alpha = 0.05, power = 0.8: the smallest true mean
 *                      difference the paired t-test detects with power 0.8.
 *                      This is the usual central-t approximation of the
 *                      noncentral-t power equation (it neglects the
 *                      probability of rejecting in the wrong tail and
 *                      replaces the noncentral t by a shifted central t).
 * Zero variance of the differences (s <= 1e-9 |diff| or s < 1e-15, i.e. up
 * to the rounding of differences of decimals): p, t NAN ("no test"), the
 * interval is [diff, diff], mde 0.
 *
 * Holm's step-down adjustment (S. Holm 1979, "A simple sequentially
 * rejective multiple test procedure", Scand. J. Statist. 6: 65-70) over m
 * p-values sorted ascending
 * p_(1) <= ... <= p_(m): p_holm_(j) = max_{i <= j} min(1, (m - i + 1) p_(i)).
 *
 * The pooled effect over cells is a paired test too (see aggregate.c).
 */
#ifndef EWA_STATS_H
#define EWA_STATS_H

/* Arithmetic mean; NAN for n = 0. */
double stats_mean(const double *x, int n);

/* Sample standard deviation (n - 1 in the denominator); 0 for n = 1, NAN
 * for n = 0. */
double stats_std(const double *x, int n);

/* Two-sided p-value of Student's t with df > 0 degrees of freedom,
 * P(|T| >= |t|); t = +-inf gives 0; NAN for NAN t or df <= 0. */
double stats_t_pvalue(double t, double df);

/* The quantile t_{q, df}: P(T <= t) = q, 0 < q < 1, df > 0; NAN otherwise. */
double stats_t_quantile(double q, double df);

#define STATS_ALPHA 0.05
#define STATS_POWER 0.8

/* A mean difference with its standard error and t-test (paired, pooled or
 * two-sample). Fields NAN where undefined. */
typedef struct {
    int n;                  /* pairs (pooled: all pairs of the pooled cells) */
    double diff, sd, se, df, t, p;
    double ci_low, ci_high; /* 95% t-interval */
    double mde;             /* alpha 0.05, power 0.8 */
} TTest;

/* Paired t-test of b - a over n pairs. n < 2: only n and diff (and sd = 0
 * for n = 1) are set. */
TTest stats_paired_t(const double *a, const double *b, int n);

/* Welch's two-sample t-test of mean(y) - mean(x) (nx, ny >= 2), unequal
 * variances (Welch 1947, "The generalization of Student's problem when
 * several different population variances are involved", Biometrika 34):
 *   vx = s_x^2 / nx, vy = s_y^2 / ny, se = sqrt(vx + vy), t = diff / se,
 *   df = (vx + vy)^2 / (vx^2 / (nx - 1) + vy^2 / (ny - 1))
 * (the Welch-Satterthwaite degrees of freedom; Satterthwaite 1946,
 * Biometrics Bulletin 2), p two-sided from Student's t with that
 * non-integer df. Both samples with zero variance: p = 1 when the means are
 * equal, else 0 (t NAN). */
TTest stats_welch(const double *x, int nx, const double *y, int ny);

/* The pooled effect of ncells paired comparisons (docs/DESIGN.md 5): cell i
 * has npairs[i] pairs, pair j with seed seeds[i][j] and difference d[i][j].
 * For every seed of cell 0 that all cells share, in cell 0's order, the mean
 * over the cells (summed in cell order) of their differences; then a
 * one-sample t over those seeds (TTest.n = the seeds used). Seeds are the
 * independent units: cells that share a baseline or a data order are
 * correlated within a seed, never across seeds. ncells = 0: all NAN. */
TTest stats_pooled(int ncells, const int *npairs, const long *const *seeds, const double *const *d);

/* Ordinary least-squares slope of y over x, sum (x - mx)(y - my) / sum (x - mx)^2;
 * NAN when n < 2 or every x is equal. */
double stats_ols_slope(const double *x, const double *y, int n);

/* Holm-adjusted p-values of p[0..n); NAN entries are not part of the family
 * and stay NAN in out. out may alias p. */
void stats_holm(const double *p, int n, double *out);

/* Binomial standard error sqrt(p (1 - p) / n) of an accuracy p measured on n
 * items; NAN for n <= 0. */
double stats_binom_se(double p, int n);

#endif
