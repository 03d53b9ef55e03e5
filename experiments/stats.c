/* Statistics over seeds: see stats.h for the formulas. */
#include "stats.h"
#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double stats_mean(const double *x, int n) {
    if (n <= 0) return NAN;
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s / n;
}

double stats_std(const double *x, int n) {
    if (n <= 0) return NAN;
    if (n == 1) return 0.0;
    double m = stats_mean(x, n), s = 0;
    for (int i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return sqrt(s / (n - 1));
}

double stats_t_pvalue(double t, double df) {
    if (isnan(t) || !(df > 0)) return NAN;
    if (isinf(t)) return 0;
    double p = 2 * gsl_cdf_tdist_Q(fabs(t), df);
    return p > 1 ? 1 : p;
}

double stats_t_quantile(double q, double df) {
    if (!(q > 0 && q < 1) || !(df > 0)) return NAN;
    return gsl_cdf_tdist_Pinv(q, df);
}

static int zero_variance(double sd, double mean) { return sd <= 1e-9 * fabs(mean) || sd < 1e-15; }

/* t, p, interval and mde of t.diff given t.se and t.df. */
static void finish(TTest *t) {
    if (zero_variance(t->se, t->diff)) {
        t->t = t->p = NAN;
        t->ci_low = t->ci_high = t->diff;
        t->mde = 0;
        return;
    }
    double crit = stats_t_quantile(1 - STATS_ALPHA / 2, t->df);
    t->t = t->diff / t->se;
    t->p = stats_t_pvalue(t->t, t->df);
    t->ci_low = t->diff - crit * t->se;
    t->ci_high = t->diff + crit * t->se;
    t->mde = (crit + stats_t_quantile(STATS_POWER, t->df)) * t->se;
}

static TTest ttest_nan(int n) {
    return (TTest){.n = n, .diff = NAN, .sd = NAN, .se = NAN, .df = NAN, .t = NAN, .p = NAN,
                   .ci_low = NAN, .ci_high = NAN, .mde = NAN};
}

TTest stats_paired_t(const double *a, const double *b, int n) {
    TTest r = ttest_nan(n);
    if (n <= 0) return r;
    double *d = malloc(sizeof(double) * (size_t)n);
    if (!d) return r;
    for (int i = 0; i < n; i++) d[i] = b[i] - a[i];
    r.diff = stats_mean(d, n);
    r.sd = stats_std(d, n);
    free(d);
    if (n < 2) return r;
    r.df = n - 1;
    r.se = r.sd / sqrt(n);
    finish(&r);
    return r;
}

TTest stats_welch(const double *x, int nx, const double *y, int ny) {
    TTest r = ttest_nan(nx < ny ? nx : ny);
    if (nx < 2 || ny < 2) return r;
    double vx = pow(stats_std(x, nx), 2) / nx, vy = pow(stats_std(y, ny), 2) / ny;
    r.diff = stats_mean(y, ny) - stats_mean(x, nx);
    r.se = sqrt(vx + vy);
    double den = vx * vx / (nx - 1) + vy * vy / (ny - 1);
    r.df = den > 0 ? (vx + vy) * (vx + vy) / den : 1;
    finish(&r);
    if (isnan(r.p)) r.p = fabs(r.diff) <= 1e-15 ? 1 : 0;
    return r;
}

/* Seed k of cell 0 in every cell: the sum of the cells' differences (cell
 * order) into *sum; 0 when some cell lacks the seed. */
static int pooled_seed(int ncells, const int *npairs, const long *const *seeds, const double *const *d,
                       long seed, double *sum) {
    *sum = 0;
    for (int i = 0; i < ncells; i++) {
        int found = 0;
        for (int j = 0; j < npairs[i] && !found; j++)
            if (seeds[i][j] == seed) { *sum += d[i][j]; found = 1; }
        if (!found) return 0;
    }
    return 1;
}

TTest stats_pooled(int ncells, const int *npairs, const long *const *seeds, const double *const *d) {
    if (ncells <= 0) return stats_paired_t(NULL, NULL, 0);
    int n0 = npairs[0], ns = 0;
    double *m = malloc(sizeof(double) * ((size_t)n0 + 1)), *zero = calloc((size_t)n0 + 1, sizeof(double));
    if (!m || !zero) { free(m); free(zero); return ttest_nan(0); }
    for (int k = 0; k < n0; k++) {
        double sum;
        if (pooled_seed(ncells, npairs, seeds, d, seeds[0][k], &sum)) m[ns++] = sum / ncells;
    }
    TTest t = stats_paired_t(zero, m, ns);
    free(m);
    free(zero);
    return t;
}

double stats_ols_slope(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double mx = stats_mean(x, n), my = stats_mean(y, n), sxy = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
    }
    return sxx > 0 ? sxy / sxx : NAN;
}

typedef struct { double p; int i; } PIdx;

static int pidx_cmp(const void *a, const void *b) {
    const PIdx *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? -1 : 1;
    return x->i - y->i;
}

void stats_holm(const double *p, int n, double *out) {
    PIdx *v = malloc(sizeof(PIdx) * (size_t)(n > 0 ? n : 1));
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(p[i])) v[m++] = (PIdx){p[i], i};
    for (int i = 0; i < n; i++)
        if (isnan(p[i])) out[i] = NAN;
    qsort(v, (size_t)m, sizeof *v, pidx_cmp);
    double run = 0;
    for (int j = 0; j < m; j++) {
        double a = (m - j) * v[j].p;
        if (a > 1) a = 1;
        if (a > run) run = a;
        out[v[j].i] = run;
    }
    free(v);
}

double stats_binom_se(double p, int n) {
    if (n <= 0 || isnan(p)) return NAN;
    double v = p * (1 - p) / n;
    return v > 0 ? sqrt(v) : 0;
}
