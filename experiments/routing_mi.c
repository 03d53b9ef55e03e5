/* Class-expert mutual information per routed MoE layer, per run and over
 * seeds. Formula and source: routing_mi.h. */
#include "routing_mi.h"
#include "csvio.h"
#include "stats.h"
#include "util.h"
#include "../core/fsutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MI_MAX_LAYERS = 1024, MI_MAX_CLASSES = 100000, MI_MAX_EXPERTS = 4096 };
#define MI_MAX_CELLS (1L << 26)   /* layers x classes x experts */

double routing_mi_bits(const double *count, int K, int E) {
    double n = 0;
    for (int i = 0; i < K * E; i++) n += count[i];
    if (!(n > 0)) return NAN;
    double *pe = xmalloc(sizeof(double) * (size_t)E);
    for (int e = 0; e < E; e++) {
        pe[e] = 0;
        for (int k = 0; k < K; k++) pe[e] += count[(size_t)k * E + e];
        pe[e] /= n;
    }
    double mi = 0;
    for (int k = 0; k < K; k++) {
        double pc = 0;
        for (int e = 0; e < E; e++) pc += count[(size_t)k * E + e];
        pc /= n;
        for (int e = 0; e < E; e++) {
            double p = count[(size_t)k * E + e] / n;
            if (p > 0) mi += p * log2(p / (pc * pe[e]));
        }
    }
    free(pe);
    return mi > 0 ? mi : 0;   /* rounding can leave -1e-17 for independent counts */
}

/* ---------------------------------------------------------------- one run */

enum { RC_EPOCH, RC_LAYER, RC_CLASS, RC_EXPERT, RC_COUNT, RC_N };

/* The five integer fields of row r of t (cols), each in [0, max[i]]. */
static int read_fields(const char *path, const CsvTable *t, const int *cols, int r, long long *v,
                       Err *err) {
    static const char *const name[RC_N] = {"epoch", "layer", "class", "expert", "count"};
    static const long long max[RC_N] = {1000000000LL, MI_MAX_LAYERS - 1, MI_MAX_CLASSES - 1,
                                        MI_MAX_EXPERTS - 1, (long long)9e18};
    for (int i = 0; i < RC_N; i++) {
        const char *s = csv_cell(t, r, cols[i]);
        char *end;
        errno = 0;
        v[i] = strtoll(s, &end, 10);
        if (!*s || *end || errno || v[i] < 0 || v[i] > max[i])
            return err_set(err, ERR_RUNTIME, "%s: line %d: %s '%s' is not an integer in [0, %lld]", path,
                           r + 2, name[i], s, max[i]);
    }
    return 0;
}

typedef struct {
    int last_epoch, K, E;
    int present[MI_MAX_LAYERS];
} RoutingShape;

/* The last epoch, the class and expert counts and the layers present there. */
static int routing_shape(const char *path, const CsvTable *t, const int *cols, RoutingShape *s, Err *err) {
    memset(s, 0, sizeof *s);
    s->last_epoch = -1;
    long long v[RC_N];
    for (int r = 0; r < t->nrows; r++) {
        if (read_fields(path, t, cols, r, v, err)) return ERR_RUNTIME;
        if (v[RC_EPOCH] > s->last_epoch) s->last_epoch = (int)v[RC_EPOCH];
    }
    for (int r = 0; r < t->nrows; r++) {
        read_fields(path, t, cols, r, v, err);
        if (v[RC_EPOCH] != s->last_epoch) continue;
        s->present[v[RC_LAYER]] = 1;
        if (v[RC_CLASS] + 1 > s->K) s->K = (int)v[RC_CLASS] + 1;
        if (v[RC_EXPERT] + 1 > s->E) s->E = (int)v[RC_EXPERT] + 1;
    }
    if (s->last_epoch < 0) return err_set(err, ERR_RUNTIME, "%s: no rows", path);
    return 0;
}

static void routing_fill(RoutingMI *out, const RoutingShape *s, const double *count) {
    int KE = s->K * s->E;
    for (int i = 0; i < out->nl; i++) {
        const double *c = count + (size_t)i * KE;
        int kp = 0;
        double tot = 0;
        for (int k = 0; k < s->K; k++) {
            double row = 0;
            for (int e = 0; e < s->E; e++) row += c[(size_t)k * s->E + e];
            kp += row > 0;
            tot += row;
        }
        out->mi[i] = routing_mi_bits(c, s->K, s->E);
        out->classes[i] = kp;
        out->total[i] = (long long)tot;
        int m = kp < s->E ? kp : s->E;
        out->max_bits[i] = m > 0 ? log2(m) : NAN;
    }
}

int routing_mi_read(const char *path, RoutingMI *out, Err *err) {
    memset(out, 0, sizeof *out);
    CsvTable t;
    if (csv_read_file(path, &t, err)) return ERR_RUNTIME;
    static const char *const name[RC_N] = {"epoch", "layer", "class", "expert", "count"};
    int cols[RC_N], rc = 0;
    for (int i = 0; i < RC_N && !rc; i++)
        if ((cols[i] = csv_col(&t, name[i])) < 0)
            rc = err_set(err, ERR_RUNTIME, "%s: no column '%s' (routing.csv: epoch, layer, class, expert, count)",
                         path, name[i]);
    RoutingShape *s = xmalloc(sizeof *s);
    if (!rc) rc = routing_shape(path, &t, cols, s, err);
    int slot[MI_MAX_LAYERS];
    for (int l = 0; !rc && l < MI_MAX_LAYERS; l++) slot[l] = s->present[l] ? out->nl++ : -1;
    if (!rc && (long)out->nl * s->K * s->E > MI_MAX_CELLS)
        rc = err_set(err, ERR_RUNTIME, "%s: %d layers x %d classes x %d experts is too large", path, out->nl,
                     s->K, s->E);
    if (rc) { csv_table_free(&t); free(s); return rc; }
    double *count = calloc((size_t)out->nl * s->K * s->E, sizeof(double));
    out->epoch = s->last_epoch;
    out->experts = s->E;
    out->layer = xmalloc(sizeof(int) * (size_t)out->nl);
    out->classes = xmalloc(sizeof(int) * (size_t)out->nl);
    out->mi = xmalloc(sizeof(double) * (size_t)out->nl);
    out->max_bits = xmalloc(sizeof(double) * (size_t)out->nl);
    out->total = xmalloc(sizeof(long long) * (size_t)out->nl);
    for (int l = 0; l < MI_MAX_LAYERS; l++)
        if (slot[l] >= 0) out->layer[slot[l]] = l;
    long long v[RC_N];
    for (int r = 0; count && r < t.nrows; r++) {
        read_fields(path, &t, cols, r, v, err);
        if (v[RC_EPOCH] == s->last_epoch)
            count[((size_t)slot[v[RC_LAYER]] * s->K + (size_t)v[RC_CLASS]) * s->E + (size_t)v[RC_EXPERT]] +=
                (double)v[RC_COUNT];
    }
    if (count) routing_fill(out, s, count);
    else rc = err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    free(count);
    free(s);
    csv_table_free(&t);
    if (rc) routing_mi_free(out);
    return rc;
}

void routing_mi_free(RoutingMI *r) {
    free(r->layer);
    free(r->classes);
    free(r->mi);
    free(r->max_bits);
    free(r->total);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- over seeds */

enum { ROW_LAYER, ROW_DIFF, ROW_POOLED };

typedef struct {
    int kind, cell, layer, vs_layer, n;
    TTest t;
    double max_bits, p_holm;
} MiRow;

typedef struct {
    MiRow *row;
    int n;
    /* per cell, its deepest - shallowest pairs (for the pooled row) */
    int *np;
    long **seed;
    double **d;
} MiTable;

static MiRow *mi_add(MiTable *tb, int kind, int cell) {
    tb->row = xrealloc(tb->row, sizeof(MiRow) * (size_t)(tb->n + 1));
    MiRow *r = memset(&tb->row[tb->n++], 0, sizeof(MiRow));
    r->kind = kind;
    r->cell = cell;
    r->vs_layer = -1;
    r->max_bits = r->p_holm = NAN;
    return r;
}

static int mi_slot(const RoutingMI *m, int layer) {
    for (int i = 0; i < m->nl; i++)
        if (m->layer[i] == layer) return i;
    return -1;
}

/* One row per layer of cell c (runs idx[0..n)), ascending; *lo, *hi: its
 * shallowest and deepest layer. */
static void mi_layer_rows(MiTable *tb, int c, const RoutingMI *mi, const int *idx, int n, int *lo, int *hi) {
    double *v = xmalloc(sizeof(double) * (size_t)(n + 1)), *zero = calloc((size_t)n + 1, sizeof(double));
    *lo = *hi = -1;
    for (int l = 0; l < MI_MAX_LAYERS; l++) {
        int k = 0;
        double mb = NAN;
        for (int i = 0; i < n; i++) {
            int s = mi_slot(&mi[idx[i]], l);
            if (s < 0 || isnan(mi[idx[i]].mi[s])) continue;
            v[k++] = mi[idx[i]].mi[s];
            if (isnan(mb)) mb = mi[idx[i]].max_bits[s];
        }
        if (!k) continue;
        if (*lo < 0) *lo = l;
        *hi = l;
        MiRow *r = mi_add(tb, ROW_LAYER, c);
        r->layer = l;
        r->n = k;
        r->t = stats_paired_t(zero, v, k);
        r->max_bits = mb;
    }
    free(v);
    free(zero);
}

/* The deepest - shallowest row of cell c, paired by run. */
static void mi_diff_row(MiTable *tb, int c, const RoutingRun *runs, const RoutingMI *mi, const int *idx,
                        int n, int lo, int hi) {
    double *a = xmalloc(sizeof(double) * (size_t)(n + 1)), *b = xmalloc(sizeof(double) * (size_t)(n + 1));
    tb->seed[c] = xmalloc(sizeof(long) * (size_t)(n + 1));
    tb->d[c] = xmalloc(sizeof(double) * (size_t)(n + 1));
    int k = 0;
    for (int i = 0; i < n; i++) {
        const RoutingMI *m = &mi[idx[i]];
        int sl = mi_slot(m, lo), sh = mi_slot(m, hi);
        if (sl < 0 || sh < 0 || isnan(m->mi[sl]) || isnan(m->mi[sh])) continue;
        a[k] = m->mi[sl];
        b[k] = m->mi[sh];
        tb->seed[c][k] = runs[idx[i]].seed;
        tb->d[c][k] = b[k] - a[k];
        k++;
    }
    tb->np[c] = k;
    MiRow *r = mi_add(tb, ROW_DIFF, c);
    r->layer = hi;
    r->vs_layer = lo;
    r->n = k;
    r->t = stats_paired_t(a, b, k);
    free(a);
    free(b);
}

/* Holm over the difference rows, then the pooled row. */
static void mi_finish(MiTable *tb, int ncells) {
    double *p = xmalloc(sizeof(double) * (size_t)(tb->n + 1));
    for (int i = 0; i < tb->n; i++) p[i] = tb->row[i].kind == ROW_DIFF ? tb->row[i].t.p : NAN;
    stats_holm(p, tb->n, p);
    for (int i = 0; i < tb->n; i++) tb->row[i].p_holm = p[i];
    free(p);
    int *np = xmalloc(sizeof(int) * (size_t)(ncells + 1)), k = 0;
    const long **seeds = xmalloc(sizeof(long *) * (size_t)(ncells + 1));
    const double **d = xmalloc(sizeof(double *) * (size_t)(ncells + 1));
    for (int c = 0; c < ncells; c++)
        if (tb->np[c] >= 2) { np[k] = tb->np[c]; seeds[k] = tb->seed[c]; d[k++] = tb->d[c]; }
    if (k) {
        MiRow *r = mi_add(tb, ROW_POOLED, -1);
        r->n = k;
        r->t = stats_pooled(k, np, seeds, d);
    }
    free(np);
    free(seeds);
    free(d);
}

static void mi_build(MiTable *tb, const RoutingRun *runs, const RoutingMI *mi, int nruns, int ncells) {
    memset(tb, 0, sizeof *tb);
    tb->np = calloc((size_t)ncells + 1, sizeof(int));
    tb->seed = calloc((size_t)ncells + 1, sizeof(long *));
    tb->d = calloc((size_t)ncells + 1, sizeof(double *));
    int *idx = xmalloc(sizeof(int) * (size_t)(nruns + 1));
    for (int c = 0; c < ncells; c++) {
        int n = 0, lo, hi;
        for (int i = 0; i < nruns; i++)
            if (runs[i].cell == c) idx[n++] = i;
        if (!n) continue;
        mi_layer_rows(tb, c, mi, idx, n, &lo, &hi);
        if (lo >= 0 && hi > lo) mi_diff_row(tb, c, runs, mi, idx, n, lo, hi);
    }
    free(idx);
    mi_finish(tb, ncells);
}

static void mi_table_free(MiTable *tb, int ncells) {
    for (int c = 0; c < ncells; c++) { free(tb->seed[c]); free(tb->d[c]); }
    free(tb->seed);
    free(tb->d);
    free(tb->np);
    free(tb->row);
}

/* ---------------------------------------------------------------- writing */

static void fmt(char *b, double v, const char *f) {
    if (isnan(v)) b[0] = '\0';
    else snprintf(b, 64, f, v);
}

enum { MI_NSTAT = 13 };
static const char *const mi_stat_cols[MI_NSTAT] = {"layer", "vs_layer", "n", "mean_bits", "sd_bits",
                                                   "ci_low", "ci_high", "max_bits", "t", "p", "p_holm",
                                                   "mde", "n_pairs"};

static void mi_fmt_row(char (*v)[64], const MiRow *r) {
    for (int k = 0; k < MI_NSTAT; k++) v[k][0] = '\0';
    if (r->kind == ROW_POOLED) {
        snprintf(v[0], 64, "deepest");
        snprintf(v[1], 64, "shallowest");
    } else {
        snprintf(v[0], 64, "%d", r->layer);
        if (r->vs_layer >= 0) snprintf(v[1], 64, "%d", r->vs_layer);
    }
    snprintf(v[2], 64, "%d", r->n);
    fmt(v[3], r->t.diff, "%.6f");
    fmt(v[4], r->t.sd, "%.6f");
    fmt(v[5], r->t.ci_low, "%.6f");
    fmt(v[6], r->t.ci_high, "%.6f");
    fmt(v[7], r->max_bits, "%.6f");
    if (r->kind == ROW_LAYER) return;
    fmt(v[8], r->t.t, "%.6f");
    fmt(v[9], r->t.p, "%.6g");
    fmt(v[10], r->p_holm, "%.6g");
    fmt(v[11], r->t.mde, "%.6f");
    snprintf(v[12], 64, "%d", r->t.n);
}

static int mi_write_table(const char *out_dir, const MiTable *tb, const RoutingCells *cs, Err *err) {
    int ncols = 1 + cs->ng + MI_NSTAT;
    const char **hdr = xmalloc(sizeof(char *) * (size_t)ncols);
    hdr[0] = "cell";
    for (int g = 0; g < cs->ng; g++) hdr[1 + g] = cs->gname[g];
    for (int k = 0; k < MI_NSTAT; k++) hdr[1 + cs->ng + k] = mi_stat_cols[k];
    char (*buf)[64] = xmalloc(sizeof *buf * (size_t)(tb->n + 1) * MI_NSTAT);
    const char **cell = xmalloc(sizeof(char *) * (size_t)(tb->n + 1) * (size_t)ncols);
    for (int i = 0; i < tb->n; i++) {
        const MiRow *r = &tb->row[i];
        const char **row = cell + (size_t)i * ncols;
        char (*v)[64] = buf + (size_t)i * MI_NSTAT;
        row[0] = r->cell < 0 ? "pooled" : cs->label[r->cell];
        for (int g = 0; g < cs->ng; g++) row[1 + g] = r->cell < 0 ? "" : cs->vals[(size_t)r->cell * cs->ng + g];
        mi_fmt_row(v, r);
        for (int k = 0; k < MI_NSTAT; k++) row[1 + cs->ng + k] = v[k];
    }
    char path[FS_PATH_BUF];
    snprintf(path, sizeof path, "%s/routing_mi.csv", out_dir);
    int rc = csv_write_file(path, ncols, hdr, tb->n, cell, err);
    free(buf);
    free(cell);
    free(hdr);
    return rc;
}

/* routing_mi_runs.csv: one row per run and layer. */
static int mi_write_runs(const char *out_dir, const RoutingRun *runs, const RoutingMI *mi, int nruns,
                         const RoutingCells *cs, Err *err) {
    static const char *const hdr[] = {"run_id", "seed", "cell", "layer", "classes", "experts",
                                      "assignments", "mi_bits", "max_bits"};
    enum { NC = 9 };
    int n = 0;
    for (int i = 0; i < nruns; i++) n += mi[i].nl;
    char (*buf)[64] = xmalloc(sizeof *buf * (size_t)(n + 1) * NC);
    const char **cell = xmalloc(sizeof(char *) * (size_t)(n + 1) * NC);
    int r = 0;
    for (int i = 0; i < nruns; i++)
        for (int l = 0; l < mi[i].nl; l++, r++) {
            char (*v)[64] = buf + (size_t)r * NC;
            const char **row = cell + (size_t)r * NC;
            snprintf(v[1], 64, "%ld", runs[i].seed);
            snprintf(v[3], 64, "%d", mi[i].layer[l]);
            snprintf(v[4], 64, "%d", mi[i].classes[l]);
            snprintf(v[5], 64, "%d", mi[i].experts);
            snprintf(v[6], 64, "%lld", mi[i].total[l]);
            fmt(v[7], mi[i].mi[l], "%.9f");
            fmt(v[8], mi[i].max_bits[l], "%.9f");
            for (int k = 0; k < NC; k++) row[k] = v[k];
            row[0] = runs[i].run_id;
            row[2] = cs->label[runs[i].cell];
        }
    char path[FS_PATH_BUF];
    snprintf(path, sizeof path, "%s/routing_mi_runs.csv", out_dir);
    int rc = csv_write_file(path, NC, hdr, n, cell, err);
    free(buf);
    free(cell);
    return rc;
}

int routing_mi_write(const char *out_dir, const RoutingRun *runs, int nruns, const RoutingCells *cells,
                     int *nwritten, Err *err) {
    *nwritten = 0;
    if (nruns <= 0) return 0;
    RoutingMI *mi = calloc((size_t)nruns, sizeof *mi);
    int rc = 0, nread = 0;
    for (int i = 0; i < nruns && !rc; i++, nread++) rc = routing_mi_read(runs[i].routing_csv, &mi[i], err);
    MiTable tb;
    if (!rc) {
        mi_build(&tb, runs, mi, nruns, cells->ncells);
        rc = mi_write_runs(out_dir, runs, mi, nruns, cells, err);
        if (!rc) rc = mi_write_table(out_dir, &tb, cells, err);
        mi_table_free(&tb, cells->ncells);
    }
    for (int i = 0; i < nread; i++) routing_mi_free(&mi[i]);
    free(mi);
    if (!rc) *nwritten = nruns;
    return rc;
}
