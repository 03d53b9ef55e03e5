/* Statistics over seeds: see stats.h. The incomplete beta function follows
 * the classic continued fraction (Numerical Recipes' betacf), evaluated with
 * the modified Lentz method, and the symmetry I_x(a,b) = 1 - I_{1-x}(b,a)
 * where the fraction converges slowly. */
#include "stats.h"
#include <math.h>

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

/* Continued fraction of I_x(a, b) (without the prefactor). */
static double betacf(double a, double b, double x) {
    const double tiny = 1e-300, eps = 1e-15;
    double qab = a + b, qap = a + 1, qam = a - 1;
    double c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 1000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < eps) break;
    }
    return h;
}

double stats_betainc(double a, double b, double x) {
    if (!(a > 0) || !(b > 0) || !(x >= 0) || !(x <= 1)) return NAN;
    if (x == 0) return 0;
    if (x == 1) return 1;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    double bt = exp(lbt);
    if (x < (a + 1) / (a + b + 2)) return bt * betacf(a, b, x) / a;
    return 1 - bt * betacf(b, a, 1 - x) / b;
}

double stats_t_pvalue(double t, double df) {
    if (isnan(t) || !(df > 0)) return NAN;
    if (isinf(t)) return 0;
    return stats_betainc(df / 2, 0.5, df / (df + t * t));
}

PairedT stats_paired_t(const double *a, const double *b, int n) {
    PairedT r = {.n = n, .mean_diff = NAN, .sd_diff = NAN, .t = NAN, .df = n - 1, .p = NAN};
    if (n <= 0) return r;
    double d[n];
    for (int i = 0; i < n; i++) d[i] = b[i] - a[i];
    r.mean_diff = stats_mean(d, n);
    r.sd_diff = stats_std(d, n);
    if (n < 2) return r;
    /* zero variance, up to the rounding of differences of decimals */
    if (r.sd_diff <= 1e-9 * fabs(r.mean_diff) || r.sd_diff < 1e-15) {
        r.t = r.mean_diff == 0 ? 0 : copysign(INFINITY, r.mean_diff);
        r.p = r.mean_diff == 0 ? 1 : 0;
        return r;
    }
    r.t = r.mean_diff / (r.sd_diff / sqrt(n));
    r.p = stats_t_pvalue(r.t, r.df);
    return r;
}

double stats_binom_se(double p, int n) {
    if (n <= 0 || isnan(p)) return NAN;
    double v = p * (1 - p) / n;
    return v > 0 ? sqrt(v) : 0;
}

double stats_regress_tol(double ref, double std_ref, int n_test) {
    double s = isnan(std_ref) ? 0 : std_ref;
    double se = stats_binom_se(ref, n_test);
    if (isnan(se)) se = 0;
    return fmax(3 * s, 2 * se);
}
