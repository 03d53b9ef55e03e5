/* Aggregation of runs.csv into table.csv / table.md / curve data. See
 * aggregate.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "aggregate.h"
#include "../core/fsutil.h"
#include "stats.h"
#include "methods.h"
#include "csvio.h"
#include "routing_mi.h"
#include "runrecord.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXG AGG_MAXG

static void *xr(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) { fputs("ewa: out of memory\n", stderr); abort(); }
    return q;
}
static char *xs(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) abort();
    return d;
}

/* ---------------------------------------------------------------- rows */

typedef struct AggRow {
    const CsvTable *t;
    int row;
    char **sk, **sv;   /* parsed sweep */
    int ns;
} Row;

/* A runs.csv written before the sweep.KEY columns: its packed "k=v;k=v"
 * sweep column (lossy when a value holds ';' or '='; read only for such
 * older files). */
static void parse_sweep(Row *r, const char *s) {
    r->ns = 0;
    r->sk = r->sv = NULL;
    if (!s || !*s) return;
    char *buf = xs(s), *save = NULL;
    for (char *p = strtok_r(buf, ";", &save); p; p = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(p, '=');
        if (!eq) continue;
        *eq = '\0';
        r->sk = xr(r->sk, sizeof(char *) * (size_t)(r->ns + 1));
        r->sv = xr(r->sv, sizeof(char *) * (size_t)(r->ns + 1));
        r->sk[r->ns] = xs(p);
        r->sv[r->ns] = xs(eq + 1);
        r->ns++;
    }
    free(buf);
}

/* The swept values of a runs.csv row: its columns sweep.KEY (one per swept
 * key, written with libcsv, so a value may hold any character). */
static void sweep_columns(Row *r) {
    r->ns = 0;
    r->sk = r->sv = NULL;
    for (int c = 0; c < r->t->ncols; c++) {
        if (strncmp(r->t->header[c], "sweep.", 6)) continue;
        r->sk = xr(r->sk, sizeof(char *) * (size_t)(r->ns + 1));
        r->sv = xr(r->sv, sizeof(char *) * (size_t)(r->ns + 1));
        r->sk[r->ns] = xs(r->t->header[c] + 6);
        r->sv[r->ns] = xs(csv_cell(r->t, r->row, c));
        r->ns++;
    }
}

/* The canonical name of a group key: "section.key" becomes "key" when the
 * table has such a column. */
static void canon(const CsvTable *t, const char *key, char *out, size_t n) {
    const char *dot = strchr(key, '.');
    if (dot && csv_col(t, dot + 1) >= 0) snprintf(out, n, "%s", dot + 1);
    else snprintf(out, n, "%s", key);
}

static const char *row_get(const Row *r, const char *name) {
    int c = csv_col(r->t, name);
    if (c >= 0) return csv_cell(r->t, r->row, c);
    for (int i = 0; i < r->ns; i++)
        if (!strcmp(r->sk[i], name)) return r->sv[i];
    return "";
}

/* ---------------------------------------------------------------- cells */

typedef AggCell Cell;
typedef AggPooled Pooled;

static void fmt_num(char *b, size_t n, double v, const char *f) {
    if (isnan(v)) snprintf(b, n, "%s", "");
    else snprintf(b, n, f, v);
}

/* The same table tab-separated, for gnuplot and awk in plots/ (tabs and
 * line breaks inside cells become spaces). */
static int write_tsv(const char *path, int ncols, const char *const *hdr, int nrows,
                     const char *const *cells, Err *err) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    for (int r = -1; r < nrows; r++)
        for (int c = 0; c < ncols; c++) {
            const char *v = r < 0 ? hdr[c] : cells[(size_t)r * ncols + c];
            for (const char *q = v; *q; q++) fputc(*q == '\t' || *q == '\n' || *q == '\r' ? ' ' : *q, f);
            fputc(c + 1 < ncols ? '\t' : '\n', f);
        }
    fclose(f);
    int rc = fs_write_text_atomic(path, text, err);
    free(text);
    return rc;
}

static void human(char *b, size_t n, const char *v, const char *unit) {
    if (!v || !*v) { snprintf(b, n, "-"); return; }
    double x = atof(v);
    if (x >= 1e12) snprintf(b, n, "%.2fT%s", x / 1e12, unit);
    else if (x >= 1e9) snprintf(b, n, "%.2fG%s", x / 1e9, unit);
    else if (x >= 1e6) snprintf(b, n, "%.2fM%s", x / 1e6, unit);
    else if (x >= 1e3) snprintf(b, n, "%.1fk%s", x / 1e3, unit);
    else snprintf(b, n, "%.0f%s", x, unit);
}

/* ---------------------------------------------------------------- markdown */

static void md_cell_value(FILE *f, const char *const *gname, const Cell *c, int g, int ng) {
    const char *name = gname[g], *v = c->vals[g];
    if (!strcmp(name, "dataset")) {
        const char *sub = "";
        for (int k = 0; k < ng; k++)
            if (!strcmp(gname[k], "train_subset")) sub = c->vals[k];
        if (sub[0] && atol(sub) > 0) fprintf(f, "%s (%s train)", v, sub);
        else fprintf(f, "%s", v);
        if (!strcmp(v, "shapes3d")) fprintf(f, " (synthetic)");
        return;
    }
    if (!strcmp(name, "preset")) {
        if (v[0]) { fprintf(f, "%s", v); return; }
        const char *dim = "?", *depth = "?";
        for (int k = 0; k < ng; k++) {
            if (!strcmp(gname[k], "dim")) dim = c->vals[k];
            if (!strcmp(gname[k], "depth")) depth = c->vals[k];
        }
        fprintf(f, "D%s L%s", dim, depth);
        return;
    }
    fprintf(f, "%s", v[0] ? v : "-");
}

/* Whether group column g is shown in the Markdown table (merged columns are
 * not: train_subset goes into dataset, dim/depth into the model). */
static int md_shown(const char *const *gname, int ng, int g, int bkey) {
    if (g == bkey) return 0;
    int has_ds = 0, has_preset = 0;
    for (int k = 0; k < ng; k++) {
        has_ds |= !strcmp(gname[k], "dataset");
        has_preset |= !strcmp(gname[k], "preset");
    }
    if (has_ds && !strcmp(gname[g], "train_subset")) return 0;
    if (has_preset && (!strcmp(gname[g], "dim") || !strcmp(gname[g], "depth"))) return 0;
    return 1;
}

static void md_header_name(FILE *f, const char *name) {
    if (!strcmp(name, "preset")) fprintf(f, "model");
    else fprintf(f, "%s", name);
}

static void md_row_keys(FILE *f, const char *const *gname, int ng, const Cell *c, int hide) {
    for (int g = 0; g < ng; g++)
        if (md_shown(gname, ng, g, hide)) { fprintf(f, "| "); md_cell_value(f, gname, c, g, ng); fprintf(f, " "); }
}

static void md_header_keys(FILE *f, const char *const *gname, int ng, int hide, int *ncols) {
    for (int g = 0; g < ng; g++)
        if (md_shown(gname, ng, g, hide)) {
            fprintf(f, "| ");
            md_header_name(f, gname[g]);
            fprintf(f, " ");
            (*ncols)++;
        }
}

static void md_rule(FILE *f, int ncols) {
    for (int k = 0; k < ncols; k++) fprintf(f, "|---");
    fprintf(f, "|\n");
}

static void md_pval(FILE *f, double p) {
    if (isnan(p)) fprintf(f, "| - ");
    else fprintf(f, "| %.3g ", p);
}

/* The statistics columns of a comparison row. */
static void md_cmp(FILE *f, const TTest *t, double p_holm) {
    if (isnan(t->ci_low)) fprintf(f, "| %+.4f | - ", t->diff);
    else fprintf(f, "| %+.4f | [%+.4f, %+.4f] ", t->diff, t->ci_low, t->ci_high);
    md_pval(f, t->p);
    md_pval(f, p_holm);
    if (isnan(t->mde)) fprintf(f, "| - ");
    else fprintf(f, "| %.4f ", t->mde);
    fprintf(f, "| %d |\n", t->n);
}

/* The baseline of c, named by the keys in which it differs from c. */
static void md_baseline(FILE *f, const char *const *gname, int ng, const Cell *c, const Cell *b) {
    fprintf(f, "| ");
    int first = 1;
    for (int g = 0; g < ng; g++)
        if (strcmp(c->vals[g], b->vals[g])) {
            fprintf(f, "%s%s=%s", first ? "" : ", ", gname[g], b->vals[g]);
            first = 0;
        }
    fprintf(f, " ");
}

static void md_cells(FILE *f, const char *const *gname, int ng, const Cell *cells, int nc) {
    int ncols = 4;
    md_header_keys(f, gname, ng, -1, &ncols);
    fprintf(f, "| top-1 (mean ± std) | n | params | FLOPs | train s | train FLOPs |\n");
    ncols += 2;
    md_rule(f, ncols);
    for (int i = 0; i < nc; i++) {
        const Cell *c = &cells[i];
        md_row_keys(f, gname, ng, c, -1);
        char p[32], fl[32], ts[32] = "-", tf[32] = "-", tfv[32];
        human(p, sizeof p, c->params, "");
        human(fl, sizeof fl, c->flops, "");
        if (isfinite(c->train_s)) snprintf(ts, sizeof ts, "%.0f", c->train_s);
        if (isfinite(c->flops_train)) {
            snprintf(tfv, sizeof tfv, "%.6g", c->flops_train);
            human(tf, sizeof tf, tfv, "");
        }
        if (c->n == 0) fprintf(f, "| - (%d failed) | 0 | %s | %s | - | - |\n", c->nfail, p, fl);
        else fprintf(f, "| %.4f ± %.4f | %d | %s | %s | %s | %s |\n", c->mean, c->std, c->n, p, fl, ts, tf);
    }
}

static void md_comparisons(FILE *f, const char *const *gname, int ng, const Cell *cells, int nc,
                           const Pooled *pool, int npool, int bkey, const char *bval) {
    fprintf(f, "\n## Top-1 difference from the %s = %s baseline, paired by seed\n\n", gname[bkey], bval);
    int ncols = 7;
    md_header_keys(f, gname, ng, -1, &ncols);
    fprintf(f, "| baseline | Δ top-1 | 95%% CI | p | p (Holm) | MDE | pairs |\n");
    md_rule(f, ncols);
    for (int i = 0; i < nc; i++) {
        const Cell *c = &cells[i];
        if (c->base < 0) continue;
        md_row_keys(f, gname, ng, c, -1);
        md_baseline(f, gname, ng, c, &cells[c->base]);
        md_cmp(f, &c->cmp, c->p_holm);
    }
    for (int k = 0; k < npool; k++) {
        for (int g = 0; g < ng; g++)
            if (md_shown(gname, ng, g, -1))
                fprintf(f, "| %s ", g == bkey ? pool[k].value : g == 0 ? "**pooled**" : "");
        fprintf(f, "| %d cells ", pool[k].ncells);
        md_cmp(f, &pool[k].t, NAN);
    }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The fingerprint of the results aggregated: SHA-256 of the lines
 * "run_id<TAB>final_top1<LF>" of s's ok runs (the row stage 1 kept), sorted
 * bytewise by line, as plots/common.sh's table_current computes it from
 * runs.csv to tell a table that is not the aggregation of its runs; *nok
 * = their number. 0, or -1 on a libcrypto error. */
static int ok_runs_digest(const AggSet *s, char hex[65], int *nok) {
    int c_id = csv_col(&s->t, "run_id"), c_st = csv_col(&s->t, "status"), c_acc = csv_col(&s->t, "final_top1");
    char **line = xr(NULL, sizeof(char *) * ((size_t)s->n + 1)), *text = NULL;
    size_t len = 0;
    *nok = 0;
    for (int i = 0; i < s->n; i++) {
        int r = s->rows[i].row;
        if (strcmp(csv_cell(&s->t, r, c_st), "ok")) continue;
        size_t m = strlen(csv_cell(&s->t, r, c_id)) + strlen(csv_cell(&s->t, r, c_acc)) + 3;
        line[*nok] = xr(NULL, m);
        snprintf(line[(*nok)++], m, "%s\t%s\n", csv_cell(&s->t, r, c_id), csv_cell(&s->t, r, c_acc));
    }
    qsort(line, (size_t)*nok, sizeof *line, cmp_str);
    FILE *f = open_memstream(&text, &len);
    for (int i = 0; i < *nok; i++) { fputs(line[i], f); free(line[i]); }
    fclose(f);
    int rc = fs_sha256_buf(text, len, hex);
    free(text);
    free(line);
    return rc;
}

static char *markdown(const char *runs_csv, const AggSet *s, const char *const *gname, int ng, const Cell *cells,
                      int nc, const Pooled *pool, int npool, int bkey, const char *bval) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fprintf(f, "# Results: %s\n\n", runs_csv);
    char hex[65];
    int nok;
    if (!ok_runs_digest(s, hex, &nok))
        fprintf(f, "Aggregated from %d ok runs; SHA-256 of their sorted \"run_id<TAB>final_top1\" lines: %s\n\n", nok, hex);
    if (s->n_missing)
        fprintf(f, "**Partial: %d of the %d runs of the grid's %s have no row yet; these numbers are not the "
                "grid's result.**\n\n", s->n_missing, s->n_planned, RUNS_PLAN_FILE);
    md_cells(f, gname, ng, cells, nc);
    int ncmp = 0, nholm = 0;
    for (int i = 0; i < nc; i++) {
        ncmp += cells[i].base >= 0;
        nholm += !isnan(cells[i].p_holm);
    }
    if (bkey >= 0 && ncmp) md_comparisons(f, gname, ng, cells, nc, pool, npool, bkey, bval);
    fprintf(f,
            "\nTop-1: test accuracy of the final model, mean ± sample std over seeds (n seeds).\n");
    if (bkey >= 0 && ncmp)
        fprintf(f,
                "Δ: mean over seeds of (top-1 - the baseline's top-1 with the same seed); 95%% CI: its\n"
                "t-interval; p: two-sided paired t-test; p (Holm): Holm-adjusted over the %d comparisons\n"
                "with a p in this table; MDE: the smallest true Δ this n detects with power 0.8 at alpha 0.05\n"
                "(paired t, (t_{.975,n-1} + t_{.8,n-1}) sd/sqrt(n)). The baseline of a cell is the\n"
                "cell that differs only in %s, ignoring keys the baseline method does not use and the\n"
                "learning rate (tuned per method; the same learning rate is preferred when there is one).\n"
                "Pooled: per seed, the mean of the cells' paired differences (cells with >= 2\n"
                "pairs); Δ, CI, p and MDE of a one-sample t over the seeds they all share\n"
                "(pairs = seeds); not part of the Holm family. p is '-' when the differences\n"
                "have zero variance. Params and FLOPs are per image at inference (EWA runs are\n"
                "collapsed to the dense model, so they equal the dense ones).\n",
                nholm, gname[bkey]);
    fprintf(f,
            "The binomial standard error of each accuracy is in table.csv (se_binomial).\n"
            "All training settings are ours: the EWA paper's recipes and numbers are not known to us.\n"
            "shapes3d is a synthetic procedural point-cloud dataset.\n");
    fclose(f);
    return text;
}

/* ---------------------------------------------------------------- curves */

typedef struct {
    int epoch;
    char split[8];
    int n;
    double s_loss, ss_loss, s_top1, ss_top1;
} CurvePt;

static int split_code(const char *split) {
    return !strcmp(split, "train") ? 1 : !strcmp(split, "val") ? 3 : 2;
}

static int pt_cmp(const void *a, const void *b) {
    const CurvePt *x = a, *y = b;
    int c = split_code(x->split) - split_code(y->split); /* train, test, val */
    if (c) return c;
    return x->epoch - y->epoch;
}

/* The run directories of a grid: dirname(runs_csv)/runs. */
static void runs_dir(const char *runs_csv, char *base, size_t n) {
    char *tmp = xs(runs_csv);
    snprintf(base, n, "%s/runs", dirname(tmp));
    free(tmp);
}

/* curves.dat: one gnuplot data block per cell (blocks separated by two blank
 * lines), columns epoch, split(1 train, 2 test, 3 val), n, loss_mean, loss_std,
 * top1_mean, top1_std; curves_index.csv: block, panel, series, cell. */
static int write_curves(const char *runs_csv, const char *out_dir, const CsvTable *t, Row *rows,
                        int nrows, const char *const *gname, int ng, Cell *cells, int nc,
                        int *cell_of, int bkey, Err *err) {
    char base[4096];
    runs_dir(runs_csv, base, sizeof base);
    char *dat = NULL;
    size_t dl = 0;
    FILE *f = open_memstream(&dat, &dl);
    int nidx = 0, cap = 0, rc = 0;
    char **idx = NULL;
    int block = 0;
    for (int ci = 0; ci < nc && !rc; ci++) {
        CurvePt *pts = NULL;
        int np = 0;
        for (int r = 0; r < nrows && !rc; r++) {
            if (cell_of[r] != ci) continue;
            char path[FS_PATH_BUF];
            snprintf(path, sizeof path, "%s/%s/metrics.csv", base, row_get(&rows[r], "run_id"));
            CsvTable m;
            Err e;
            if (access(path, R_OK) || csv_read_file(path, &m, &e)) continue;
            int ce = csv_col(&m, "epoch"), cs = csv_col(&m, "split"), cl = csv_col(&m, "loss"),
                ct = csv_col(&m, "top1");
            if (ce < 0 || cs < 0 || cl < 0 || ct < 0) { csv_table_free(&m); continue; }
            for (int k = 0; k < m.nrows && !rc; k++) {
                double dep, l, a;
                if (csv_number(&m, k, ce, &dep, err) || csv_number(&m, k, cl, &l, err) ||
                    csv_number(&m, k, ct, &a, err)) {
                    rc = ERR_RUNTIME;
                    break;
                }
                int ep = (int)dep;
                const char *sp = csv_cell(&m, k, cs);
                int j = 0;
                while (j < np && !(pts[j].epoch == ep && !strcmp(pts[j].split, sp))) j++;
                if (j == np) {
                    pts = xr(pts, sizeof *pts * (size_t)(np + 1));
                    memset(&pts[np], 0, sizeof *pts);
                    pts[np].epoch = ep;
                    snprintf(pts[np].split, sizeof pts[np].split, "%s", sp);
                    np++;
                }
                pts[j].n++;
                pts[j].s_loss += l; pts[j].ss_loss += l * l;
                pts[j].s_top1 += a; pts[j].ss_top1 += a * a;
            }
            csv_table_free(&m);
        }
        if (rc || !np) {
            free(pts);
            continue;
        }
        qsort(pts, (size_t)np, sizeof *pts, pt_cmp);
        if (block) fprintf(f, "\n\n");
        fprintf(f, "# block %d\n", block);
        for (int j = 0; j < np; j++) {
            if (j && strcmp(pts[j].split, pts[j - 1].split)) fprintf(f, "\n"); /* a new line segment */
            int n = pts[j].n;
            double ml = pts[j].s_loss / n, ma = pts[j].s_top1 / n;
            double vl = n > 1 ? (pts[j].ss_loss - n * ml * ml) / (n - 1) : 0;
            double va = n > 1 ? (pts[j].ss_top1 - n * ma * ma) / (n - 1) : 0;
            fprintf(f, "%d %d %d %.6f %.6f %.6f %.6f\n", pts[j].epoch,
                    split_code(pts[j].split), n, ml, sqrt(vl > 0 ? vl : 0), ma,
                    sqrt(va > 0 ? va : 0));
        }
        free(pts);
        /* index row: block, panel (the other keys), series (baseline key value), cell */
        char panel[1024] = "", cell[1024] = "";
        for (int g = 0; g < ng; g++) {
            char kv[300];
            snprintf(kv, sizeof kv, "%s%s=%s", cell[0] ? " " : "", gname[g], cells[ci].vals[g]);
            strncat(cell, kv, sizeof cell - strlen(cell) - 1);
            if (g == bkey) continue;
            snprintf(kv, sizeof kv, "%s%s=%s", panel[0] ? " " : "", gname[g], cells[ci].vals[g]);
            strncat(panel, kv, sizeof panel - strlen(panel) - 1);
        }
        char bs[16];
        snprintf(bs, sizeof bs, "%d", block);
        if (nidx + 4 > cap) { cap = cap ? cap * 2 : 64; idx = xr(idx, sizeof(char *) * (size_t)cap); }
        idx[nidx++] = xs(bs);
        idx[nidx++] = xs(panel);
        idx[nidx++] = xs(bkey >= 0 ? cells[ci].vals[bkey] : "all");
        idx[nidx++] = xs(cell);
        block++;
    }
    fclose(f);
    (void)t;
    if (block && !rc) {
        char path[FS_PATH_BUF];
        snprintf(path, sizeof path, "%s/curves.dat", out_dir);
        rc = fs_write_text_atomic(path, dat, err);
        static const char *const h[] = {"block", "panel", "series", "cell"};
        snprintf(path, sizeof path, "%s/curves_index.csv", out_dir);
        if (!rc) rc = csv_write_file(path, 4, h, nidx / 4, (const char *const *)idx, err);
        snprintf(path, sizeof path, "%s/curves_index.tsv", out_dir);
        if (!rc) rc = write_tsv(path, 4, h, nidx / 4, (const char *const *)idx, err);
    }
    for (int i = 0; i < nidx; i++) free(idx[i]);
    free(idx);
    free(dat);
    return rc;
}

/* ---------------------------------------------------------------- aggregate */

/* Stage 1: the rows of runs.csv, deduplicated by run_id (the last ok row of
 * a run, else its last row), with their sweeps parsed (AggSet's t, rows, n). */
typedef AggSet RunSet;

static void runset_free(RunSet *s) {
    for (int i = 0; i < s->n; i++) {
        for (int k = 0; k < s->rows[i].ns; k++) { free(s->rows[i].sk[k]); free(s->rows[i].sv[k]); }
        free(s->rows[i].sk);
        free(s->rows[i].sv);
    }
    free(s->rows);
    csv_table_free(&s->t);
    memset(s, 0, sizeof *s);   /* a caller that frees it again (claims) frees nothing */
}

/* The training-cost columns of a run record (runrecord.c): optional (older
 * rows lack them), a number when given; averaged per cell. */
static const char *const COST_COLS[2] = {"train_seconds", "flops_train"};

static int load_runs(const char *runs_csv, RunSet *s, Err *err) {
    memset(s, 0, sizeof *s);
    if (csv_read_file(runs_csv, &s->t, err)) return ERR_RUNTIME;
    const CsvTable *t = &s->t;
    int c_id = csv_col(t, "run_id"), c_st = csv_col(t, "status"), c_acc = csv_col(t, "final_top1"),
        c_seed = csv_col(t, "seed"), c_sw = csv_col(t, "sweep");
    if (c_id < 0 || c_st < 0 || c_acc < 0 || c_seed < 0) {
        csv_table_free(&s->t);
        return err_set(err, ERR_RUNTIME, "%s: needs the columns run_id, status, final_top1 and seed",
                       runs_csv);
    }
    int *keep = xr(NULL, sizeof(int) * ((size_t)t->nrows + 1)), nk = 0;
    for (int r = 0; r < t->nrows; r++) {
        const char *id = csv_cell(t, r, c_id);
        int ok = !strcmp(csv_cell(t, r, c_st), "ok"), j = 0;
        while (j < nk && strcmp(csv_cell(t, keep[j], c_id), id)) j++;
        if (j == nk) keep[nk++] = r;
        else if (ok || strcmp(csv_cell(t, keep[j], c_st), "ok")) {
            if (ok && !strcmp(csv_cell(t, keep[j], c_st), "ok") &&
                strcmp(csv_cell(t, keep[j], c_acc), csv_cell(t, r, c_acc)))   /* a deterministic run differs */
                fprintf(stderr, "ewa: warning: %s: run %s has two ok rows that differ (line %ld: "
                        "final_top1 %s, line %ld: %s); the later one is used\n", runs_csv, id, t->lines[keep[j]],
                        csv_cell(t, keep[j], c_acc), t->lines[r], csv_cell(t, r, c_acc));
            keep[j] = r;
        }
    }
    s->rows = calloc((size_t)nk + 1, sizeof *s->rows);
    int rc = 0, nsw = 0;
    for (int c = 0; c < t->ncols; c++) nsw += !strncmp(t->header[c], "sweep.", 6);
    for (int i = 0; i < nk; i++) {
        s->rows[i].t = t;
        s->rows[i].row = keep[i];
        /* a row recorded before the sweep.KEY columns existed (a migrated
         * runs.csv) has them empty: its packed sweep column is all it has */
        int blank = 1;
        for (int c = 0; c < t->ncols && blank; c++)
            blank = strncmp(t->header[c], "sweep.", 6) || !csv_cell(t, keep[i], c)[0];
        if (nsw && !blank) sweep_columns(&s->rows[i]);
        else parse_sweep(&s->rows[i], c_sw >= 0 ? csv_cell(t, keep[i], c_sw) : "");
        double v;
        if (!rc && !strcmp(csv_cell(t, keep[i], c_st), "ok") &&
            (csv_number(t, keep[i], c_acc, &v, err) || csv_number(t, keep[i], c_seed, &v, err)))
            rc = ERR_RUNTIME;
        for (int k = 0; k < 2 && !rc; k++) {
            int cc = csv_col(t, COST_COLS[k]);
            if (cc >= 0 && csv_cell(t, keep[i], cc)[0] && csv_number(t, keep[i], cc, &v, err)) rc = ERR_RUNTIME;
        }
    }
    s->n = nk;
    free(keep);
    if (rc) runset_free(s);
    return rc;
}

/* Stage 2: the grouping keys (canonical names), from --group or the
 * default: dataset, train_subset, preset, dim, depth, method and every swept
 * key. */
static int group_keys(const RunSet *s, const char *runs_csv, const char *group, char (*gbuf)[128],
                      int *ng, Err *err) {
    *ng = 0;
    if (!group || !*group) {
        static const char *const def[] = {"dataset", "train_subset", "preset", "dim", "depth", "method"};
        for (int k = 0; k < 6; k++)
            if (csv_col(&s->t, def[k]) >= 0) snprintf(gbuf[(*ng)++], 128, "%s", def[k]);
        for (int i = 0; i < s->n; i++)
            for (int k = 0; k < s->rows[i].ns && *ng < MAXG; k++) {
                char cn[128];
                canon(&s->t, s->rows[i].sk[k], cn, sizeof cn);
                int dup = 0;
                for (int g = 0; g < *ng; g++) dup |= !strcmp(gbuf[g], cn);
                if (!dup) snprintf(gbuf[(*ng)++], 128, "%s", cn);
            }
        return 0;
    }
    int rc = 0;
    char *b = xs(group), *save = NULL;
    for (char *p = strtok_r(b, ",", &save); p && !rc; p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ') p++;
        if (!*p) continue;
        if (*ng == MAXG) rc = err_set(err, ERR_USAGE, "--group: too many keys");
        else canon(&s->t, p, gbuf[(*ng)++], 128);
    }
    free(b);
    if (!rc && !*ng) rc = err_set(err, ERR_USAGE, "--group: no keys given");
    for (int g = 0; g < *ng && !rc; g++) {
        int found = csv_col(&s->t, gbuf[g]) >= 0;
        for (int i = 0; i < s->n && !found; i++)
            for (int k = 0; k < s->rows[i].ns; k++) found |= !strcmp(s->rows[i].sk[k], gbuf[g]);
        if (!found)
            rc = err_set(err, ERR_USAGE, "--group: '%s' is neither a column of %s nor a swept key",
                         gbuf[g], runs_csv);
    }
    return rc;
}

/* Stage 3: the baseline "key=value" -> the grouping key's index (-1 when it
 * is not a grouping key) and its value. */
static int parse_baseline(const CsvTable *t, const char *baseline, const char *const *gname, int ng,
                          int *bkey, char *bval, size_t bn, Err *err) {
    *bkey = -1;
    bval[0] = '\0';
    if (!baseline || !*baseline) return 0;
    const char *eq = strchr(baseline, '=');
    if (!eq || eq == baseline)
        return err_set(err, ERR_USAGE, "--baseline '%s': expected key=value", baseline);
    char k[128], cn[128];
    snprintf(k, sizeof k, "%.*s", (int)(eq - baseline), baseline);
    canon(t, k, cn, sizeof cn);
    snprintf(bval, bn, "%s", eq + 1);
    for (int g = 0; g < ng; g++)
        if (!strcmp(gname[g], cn)) *bkey = g;
    if (*bkey < 0)
        fprintf(stderr, "ewa aggregate: baseline key '%s' is not a grouping key; no differences reported\n", k);
    return 0;
}

/* Stage 4: cells (one per combination of the grouping keys' values) with
 * their ok runs' final_top1 and seeds; cell_of[row] = its cell, -1 when the
 * run is not ok. */
static void cell_add_run(Cell *c, const Row *r) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->acc = xr(c->acc, sizeof(double) * (size_t)c->cap);
        c->seed = xr(c->seed, sizeof(long) * (size_t)c->cap);
    }
    c->acc[c->n] = strtod(row_get(r, "final_top1"), NULL);   /* checked by load_runs */
    c->seed[c->n] = (long)strtod(row_get(r, "seed"), NULL);
    c->n++;
    snprintf(c->n_test, sizeof c->n_test, "%s", row_get(r, "n_test"));
    snprintf(c->params, sizeof c->params, "%s", row_get(r, "params_inference"));
    snprintf(c->flops, sizeof c->flops, "%s", row_get(r, "flops_inference"));
    /* training cost (checked by load_runs): running sums here, divided in cell_finish_cost */
    const char *ts = row_get(r, COST_COLS[0]), *tf = row_get(r, COST_COLS[1]);
    if (ts[0]) c->train_s += strtod(ts, NULL), c->n_train_s++;
    if (tf[0]) c->flops_train += strtod(tf, NULL), c->n_flops_train++;
}

static void cell_finish_cost(Cell *c) {
    c->train_s = c->n_train_s ? c->train_s / c->n_train_s : NAN;
    c->flops_train = c->n_flops_train ? c->flops_train / c->n_flops_train : NAN;
}

static Cell *build_cells(const RunSet *s, const char *const *gname, int ng, int *nc_out, int *cell_of) {
    Cell *cells = NULL;
    int nc = 0;
    for (int i = 0; i < s->n; i++) {
        const Row *r = &s->rows[i];
        int ci = 0;
        for (; ci < nc; ci++) {
            int same = 1;
            for (int g = 0; g < ng && same; g++) same = !strcmp(cells[ci].vals[g], row_get(r, gname[g]));
            if (same) break;
        }
        if (ci == nc) {
            cells = xr(cells, sizeof *cells * (size_t)(nc + 1));
            Cell *c = memset(&cells[nc], 0, sizeof *cells);
            for (int g = 0; g < ng; g++) {
                c->vals[g] = xs(row_get(r, gname[g]));
                size_t L = strlen(c->label);
                snprintf(c->label + L, sizeof c->label - L, "%s%s=%s", g ? " " : "", gname[g], c->vals[g]);
            }
            nc++;
        }
        cell_of[i] = ci;
        if (strcmp(row_get(r, "status"), "ok")) {
            cells[ci].nfail++;
            cell_of[i] = -1;
        } else {
            cell_add_run(&cells[ci], r);
        }
    }
    for (int i = 0; i < nc; i++) {
        Cell *c = &cells[i];
        c->mean = stats_mean(c->acc, c->n);
        c->std = stats_std(c->acc, c->n);
        c->se = stats_binom_se(c->mean, c->n_test[0] ? atoi(c->n_test) : 0);
        cell_finish_cost(c);
        c->base = -1;
        c->cmp = stats_paired_t(NULL, NULL, 0);
        c->p_holm = NAN;
    }
    *nc_out = nc;
    return cells;
}

/* Whether `method` reads the key `key` ("experts" or "moe.experts"; the
 * method table decides): cells of a method that ignores a key are the
 * baseline of cells with any value of it (the dense runs of the experts
 * ablation carry experts = 4 and are the baseline of N = 2 and N = 8). */
static int method_uses(const char *method, const char *key) {
    RunConfig c;
    memset(&c, 0, sizeof c);
    snprintf(c.method, sizeof c.method, "%s", method);
    const char *dot = strchr(key, '.');
    if (dot && strncmp(key, "moe.", 4)) return 1;   /* another section: read by every method */
    return method_reads_key(&c, "moe", dot ? dot + 1 : key);
}

/* Whether key is the learning rate, which equal tuning chooses for each
 * method separately (paper_configs/CAMPAIGN.md): a method's cell at its
 * own learning rate is compared with the baseline method's cell at the
 * baseline's own. */
static int tuned_per_method(const char *key) {
    return !strcmp(key, "lr") || !strcmp(key, "train.lr");
}

/* Whether b (a baseline cell) is the baseline of c: equal in every key but
 * bkey and, only when bkey is the method, the keys the baseline method
 * ignores and the learning rate. exact: equal in those too. */
static int is_baseline_of(const Cell *b, const Cell *c, const char *const *gname, int ng, int bkey,
                          int *exact) {
    int method = !strcmp(gname[bkey], "method") || !strcmp(gname[bkey], "moe.method");
    *exact = 1;
    for (int g = 0; g < ng; g++) {
        if (g == bkey || !strcmp(b->vals[g], c->vals[g])) continue;
        if (!method || (method_uses(b->vals[bkey], gname[g]) && !tuned_per_method(gname[g]))) return 0;
        *exact = 0;
    }
    return 1;
}

/* Stage 5: each non-baseline cell against its baseline (paired by seed),
 * Holm over them, and the pooled effect per value of the baseline key. */
static void compare_cell(Cell *c, const Cell *b) {
    double *xa = xr(NULL, sizeof(double) * ((size_t)c->n + 1)), *xb = xr(NULL, sizeof(double) * ((size_t)c->n + 1));
    c->pair_seed = xr(NULL, sizeof(long) * ((size_t)c->n + 1));
    c->pair_d = xr(NULL, sizeof(double) * ((size_t)c->n + 1));
    int np = 0;
    for (int k = 0; k < c->n; k++)
        for (int l = 0; l < b->n; l++)
            if (b->seed[l] == c->seed[k]) {
                xa[np] = b->acc[l];
                xb[np] = c->acc[k];
                c->pair_seed[np] = c->seed[k];
                c->pair_d[np] = xb[np] - xa[np];
                np++;
                break;
            }
    c->cmp = stats_paired_t(xa, xb, np);
    free(xa);
    free(xb);
}

/* The pooled effect (stats_pooled) of the compared cells whose baseline key
 * is `value`, cells with fewer than 2 pairs left out. */
static int pooled_in(const Cell *c, int bkey, const char *value) {
    return c->base >= 0 && c->cmp.n >= 2 && !strcmp(c->vals[bkey], value);
}

static Pooled pool_cells(const Cell *cells, int nc, int bkey, const char *value) {
    Pooled pl = {.value = value};
    int *np = xr(NULL, sizeof(int) * ((size_t)nc + 1));
    const long **seeds = xr(NULL, sizeof(long *) * ((size_t)nc + 1));
    const double **d = xr(NULL, sizeof(double *) * ((size_t)nc + 1));
    for (int i = 0; i < nc; i++)
        if (pooled_in(&cells[i], bkey, value)) {
            np[pl.ncells] = cells[i].cmp.n;
            seeds[pl.ncells] = cells[i].pair_seed;
            d[pl.ncells++] = cells[i].pair_d;
        }
    pl.t = stats_pooled(pl.ncells, np, seeds, d);
    free(np);
    free(seeds);
    free(d);
    return pl;
}

static Pooled *compare_cells(Cell *cells, int nc, const char *const *gname, int ng, int bkey,
                             const char *bval, int *npool) {
    *npool = 0;
    if (bkey < 0) return NULL;
    double *p = xr(NULL, sizeof(double) * ((size_t)nc + 1));
    for (int i = 0; i < nc; i++) {
        Cell *c = &cells[i];
        p[i] = NAN;
        if (!strcmp(c->vals[bkey], bval) || c->n == 0) continue;
        int found_exact = 0;
        for (int j = 0; j < nc && !found_exact; j++) {
            int exact;
            if (strcmp(cells[j].vals[bkey], bval) || !is_baseline_of(&cells[j], c, gname, ng, bkey, &exact))
                continue;
            if (c->base < 0 || exact) c->base = j;
            found_exact = exact;
        }
        if (c->base < 0) continue;
        compare_cell(c, &cells[c->base]);
        p[i] = c->cmp.p;
    }
    double *ph = xr(NULL, sizeof(double) * ((size_t)nc + 1));
    stats_holm(p, nc, ph);
    for (int i = 0; i < nc; i++) cells[i].p_holm = ph[i];
    free(p);
    free(ph);
    Pooled *pool = xr(NULL, sizeof(Pooled) * ((size_t)nc + 1));
    for (int i = 0; i < nc; i++) {
        if (cells[i].base < 0) continue;
        int seen = 0;
        for (int k = 0; k < *npool; k++) seen |= !strcmp(pool[k].value, cells[i].vals[bkey]);
        if (seen) continue;
        pool[*npool] = pool_cells(cells, nc, bkey, cells[i].vals[bkey]);
        if (pool[*npool].ncells) (*npool)++;
    }
    return pool;
}

/* Stage 6: table.csv and table.tsv (columns in aggregate.h). */
enum { NSTAT = 20 };
static const char *const stat_cols[NSTAT] = {
    "n", "n_failed", "mean_top1", "std_top1", "se_binomial", "n_test", "params_inference",
    "flops_inference", "baseline", "baseline_mean_top1", "diff", "ci_low", "ci_high", "t", "p",
    "p_holm", "mde", "n_pairs", "train_seconds", "flops_train"};

static void fmt_cmp(char (*v)[64], const TTest *t, double p_holm) {
    fmt_num(v[10], 64, t->diff, "%.6f");
    fmt_num(v[11], 64, t->ci_low, "%.6f");
    fmt_num(v[12], 64, t->ci_high, "%.6f");
    fmt_num(v[13], 64, t->t, "%.6f");
    fmt_num(v[14], 64, t->p, "%.6g");
    fmt_num(v[15], 64, p_holm, "%.6g");
    fmt_num(v[16], 64, t->mde, "%.6f");
    snprintf(v[17], 64, "%d", t->n);
}

static void fmt_cell(char (*v)[64], const Cell *c, const Cell *cells) {
    snprintf(v[0], 64, "%d", c->n);
    snprintf(v[1], 64, "%d", c->nfail);
    fmt_num(v[2], 64, c->mean, "%.6f");
    fmt_num(v[3], 64, c->n ? c->std : NAN, "%.6f");
    fmt_num(v[4], 64, c->se, "%.6f");
    snprintf(v[5], 64, "%s", c->n_test);
    snprintf(v[6], 64, "%s", c->params);
    snprintf(v[7], 64, "%s", c->flops);
    for (int k = 8; k < NSTAT; k++) v[k][0] = '\0';
    fmt_num(v[18], 64, c->train_s, "%.2f");
    fmt_num(v[19], 64, c->flops_train, "%.4g");
    if (c->base < 0) return;
    fmt_num(v[9], 64, cells[c->base].mean, "%.6f");
    fmt_cmp(v, &c->cmp, c->p_holm);
}

static int write_table(const char *out_dir, const char *const *gname, int ng, const Cell *cells, int nc,
                       const Pooled *pool, int npool, int bkey, Err *err) {
    int ncols = 1 + ng + NSTAT, nrows = nc + npool;
    const char **hdr = xr(NULL, sizeof(char *) * (size_t)ncols);
    hdr[0] = "cell";
    for (int g = 0; g < ng; g++) hdr[1 + g] = gname[g];
    for (int k = 0; k < NSTAT; k++) hdr[1 + ng + k] = stat_cols[k];
    char (*buf)[64] = xr(NULL, sizeof *buf * (size_t)nrows * NSTAT);
    const char **cellv = xr(NULL, sizeof(char *) * (size_t)nrows * (size_t)ncols);
    for (int i = 0; i < nrows; i++) {
        const char **row = cellv + (size_t)i * ncols;
        char (*v)[64] = buf + (size_t)i * NSTAT;
        if (i < nc) {
            const Cell *c = &cells[i];
            row[0] = c->label;
            for (int g = 0; g < ng; g++) row[1 + g] = c->vals[g];
            fmt_cell(v, c, cells);
            if (c->base >= 0) row[1 + ng + 8] = cells[c->base].label;
        } else {
            const Pooled *pl = &pool[i - nc];
            row[0] = "pooled";
            for (int g = 0; g < ng; g++) row[1 + g] = g == bkey ? pl->value : "";
            for (int k = 0; k < NSTAT; k++) v[k][0] = '\0';
            snprintf(v[0], 64, "%d", pl->ncells);
            fmt_cmp(v, &pl->t, NAN);
        }
        for (int k = 0; k < NSTAT; k++)
            if (!(i < nc && k == 8 && cells[i].base >= 0)) row[1 + ng + k] = v[k];
    }
    char path[FS_PATH_BUF];
    snprintf(path, sizeof path, "%s/table.csv", out_dir);
    int rc = csv_write_file(path, ncols, hdr, nrows, cellv, err);
    snprintf(path, sizeof path, "%s/table.tsv", out_dir);
    if (!rc) rc = write_tsv(path, ncols, hdr, nrows, cellv, err);
    free(buf);
    free(cellv);
    free(hdr);
    return rc;
}

static void cells_free(Cell *cells, int nc, int ng) {
    for (int i = 0; i < nc; i++) {
        for (int g = 0; g < ng; g++) free(cells[i].vals[g]);
        free(cells[i].acc);
        free(cells[i].seed);
        free(cells[i].pair_seed);
        free(cells[i].pair_d);
    }
    free(cells);
}

/* Stage 7: class-expert mutual information of the runs with a routing.csv
 * (routing_mi.h), written beside the table. */
static int write_routing(const char *runs_csv, const char *out_dir, const char *shown_dir, const RunSet *s,
                         const char *const *gname,
                         int ng, const Cell *cells, int nc, const int *cell_of, Err *err) {
    char base[4096];
    runs_dir(runs_csv, base, sizeof base);
    RoutingRun *rr = xr(NULL, sizeof *rr * ((size_t)s->n + 1));
    char **paths = xr(NULL, sizeof(char *) * ((size_t)s->n + 1));
    int n = 0, nw = 0;
    for (int i = 0; i < s->n; i++) {
        char p[FS_PATH_BUF];
        snprintf(p, sizeof p, "%s/%s/routing.csv", base, row_get(&s->rows[i], "run_id"));
        if (cell_of[i] < 0 || access(p, R_OK)) continue;
        paths[n] = xs(p);
        rr[n] = (RoutingRun){paths[n], row_get(&s->rows[i], "run_id"), atol(row_get(&s->rows[i], "seed")),
                             cell_of[i]};
        n++;
    }
    const char **label = xr(NULL, sizeof(char *) * ((size_t)nc + 1));
    const char **vals = xr(NULL, sizeof(char *) * ((size_t)nc * ng + 1));
    for (int c = 0; c < nc; c++) {
        label[c] = cells[c].label;
        for (int g = 0; g < ng; g++) vals[(size_t)c * ng + g] = cells[c].vals[g];
    }
    RoutingCells cs = {.ncells = nc, .ng = ng, .gname = gname, .label = label, .vals = vals};
    int rc = routing_mi_write(out_dir, rr, n, &cs, &nw, err);
    if (!rc && nw) printf("routing mutual information of %d runs: %s/routing_mi.csv\n", nw, shown_dir);
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(rr);
    free(label);
    free(vals);
    return rc;
}

/* A baseline value that no cell has (a mistyped --baseline, or a grid
 * without dense runs under the default): said on stderr with the values the
 * cells have, since the table then has no differences. */
static void warn_no_baseline_cell(const AggSet *s, const char *runs_csv) {
    if (s->bkey < 0 || !s->nc) return;
    char have[512] = "";
    for (int i = 0; i < s->nc; i++) {
        const char *v = s->cells[i].vals[s->bkey];
        if (!strcmp(v, s->bval)) return;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = !strcmp(s->cells[j].vals[s->bkey], v);
        size_t L = strlen(have);
        if (!seen && L + strlen(v) + 3 < sizeof have)
            snprintf(have + L, sizeof have - L, "%s%s", L ? ", " : "", v);
    }
    fprintf(stderr, "ewa: warning: %s: no cell has the baseline %s = %s (its cells have %s); no differences "
            "reported\n", runs_csv, s->gname[s->bkey], s->bval, have);
}

/* The plan beside runs_csv against its rows: an error naming the missing
 * runs unless allow_partial (then a warning). */
static int check_plan(const char *runs_csv, AggSet *s, int allow_partial, Err *err) {
    char first[64];
    int unplanned = 0;
    if (runs_plan_missing(runs_csv, &s->t, NULL, 0, &s->n_planned, &s->n_missing, first, &unplanned, err)) return ERR_RUNTIME;
    if (unplanned)
        fprintf(stderr, "ewa: warning: %s: %d of its runs are not in its grid's %s (runs of an earlier config of the "
                "grid?); they are aggregated with the others\n", runs_csv, unplanned, RUNS_PLAN_FILE);
    if (!s->n_missing) return 0;
    if (allow_partial) {
        fprintf(stderr, "ewa: warning: %s: %d of the %d runs of its grid's %s have no row yet (e.g. %s); the "
                "table is partial and says so\n", runs_csv, s->n_missing, s->n_planned, RUNS_PLAN_FILE, first);
        return 0;
    }
    return err_set(err, ERR_RUNTIME, "%s: %d of the %d runs of its grid's %s have no row yet (e.g. %s): the grid "
                   "is still running or was stopped; run it again to finish them (it resumes), or look at the runs "
                   "there are with `ewa aggregate --partial --out DIR` into a directory outside the grid's",
                   runs_csv, s->n_missing, s->n_planned, RUNS_PLAN_FILE, first);
}

int aggregate_load(const char *runs_csv, const char *group, const char *baseline, int allow_partial,
                   AggSet *s, Err *err) {
    if (load_runs(runs_csv, s, err)) return ERR_RUNTIME;
    if (check_plan(runs_csv, s, allow_partial, err)) {
        aggregate_free(s);   /* and zeroes s, as every failure does: a caller may free it again */
        return ERR_RUNTIME;
    }
    const char *gname[MAXG];
    int rc = group_keys(s, runs_csv, group, s->gname, &s->ng, err);
    for (int g = 0; g < s->ng; g++) gname[g] = s->gname[g];
    if (!rc) rc = parse_baseline(&s->t, baseline, gname, s->ng, &s->bkey, s->bval, sizeof s->bval, err);
    s->cell_of = xr(NULL, sizeof(int) * ((size_t)s->n + 1));
    if (!rc) s->cells = build_cells(s, gname, s->ng, &s->nc, s->cell_of);
    if (!rc) warn_no_baseline_cell(s, runs_csv);
    if (!rc) s->pool = compare_cells(s->cells, s->nc, gname, s->ng, s->bkey, s->bval, &s->npool);
    if (!rc && !s->nc) rc = err_set(err, ERR_RUNTIME, "%s: no runs to aggregate", runs_csv);
    if (rc) aggregate_free(s);
    return rc;
}

const char *aggregate_run_get(const AggSet *s, int i, const char *col) { return row_get(&s->rows[i], col); }

void aggregate_free(AggSet *s) {
    free(s->pool);
    cells_free(s->cells, s->nc, s->ng);
    free(s->cell_of);
    runset_free(s);
    memset(s, 0, sizeof *s);
}

/* The absolute, resolved form of path, which may not exist yet (then its
 * parent must): 0, or -1. */
static int resolve_maybe_new(const char *path, char out[PATH_MAX]) {
    if (realpath(path, out)) return 0;
    char a[PATH_MAX], b[PATH_MAX], parent[PATH_MAX];
    snprintf(a, sizeof a, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    if (!realpath(dirname(a), parent)) return -1;
    const char *base = basename(b);
    if (!strcmp(base, ".") || !strcmp(base, "..") ||
        (size_t)snprintf(out, PATH_MAX, "%s/%s", parent, base) >= PATH_MAX) return -1;
    return 0;
}

/* --partial writes only outside the grid's directory (dirname(runs_csv)):
 * there its tables would pass for the grid's result (claims, make plots,
 * regress read them). ERR_USAGE when out_dir is that directory or inside it. */
static int check_partial_out(const char *runs_csv, const char *out_dir, Err *err) {
    char a[PATH_MAX], grid[PATH_MAX], out[PATH_MAX];
    snprintf(a, sizeof a, "%s", runs_csv);
    if (!realpath(dirname(a), grid) || resolve_maybe_new(out_dir, out))
        return err_set(err, ERR_USAGE, "--out %s: cannot resolve it or the directory of %s", out_dir, runs_csv);
    size_t n = strlen(grid);
    if (!strcmp(out, grid) || (!strncmp(out, grid, n) && (out[n] == '/' || !strcmp(grid, "/"))))
        return err_set(err, ERR_USAGE, "--partial --out %s: inside the grid's directory %s, where a partial table "
                       "would pass for the grid's result; name a directory outside it", out_dir, grid);
    return 0;
}

int aggregate_runs(const char *runs_csv, const char *out_dir, const char *group,
                   const char *baseline, int allow_partial, Err *err) {
    if (allow_partial && check_partial_out(runs_csv, out_dir, err)) return ERR_USAGE;
    AggSet s;
    int rc = aggregate_load(runs_csv, group, baseline, allow_partial, &s, err);
    if (rc) return rc;
    const char *gname[MAXG];
    for (int g = 0; g < s.ng; g++) gname[g] = s.gname[g];
    int ng = s.ng, nc = s.nc, bkey = s.bkey;
    /* every output goes to a staging directory inside out_dir and replaces
     * the older set together (fs_move_dir_files), so a failure part-way
     * leaves the previous tables as they were, not a mix */
    char stage[FS_PATH_BUF - 64];   /* room for "/<file name>" in the writers' FS_PATH_BUF paths */
    if ((size_t)snprintf(stage, sizeof stage, "%s/.aggregate-staging-%ld", out_dir, (long)getpid()) >= sizeof stage)
        rc = err_set(err, ERR_USAGE, "--out %.80s...: path too long", out_dir);
    if (!rc) fs_remove_dir_files(stage);   /* a killed run's leftover under our pid */
    if (!rc) rc = fs_mkdir_p(stage, err);
    int staged = !rc;   /* stage exists and is ours to remove */
    if (!rc) rc = write_table(stage, gname, ng, s.cells, nc, s.pool, s.npool, bkey, err);
    if (!rc) {
        char *md = markdown(runs_csv, &s, gname, ng, s.cells, nc, s.pool, s.npool, bkey, s.bval);
        char path[FS_PATH_BUF];
        snprintf(path, sizeof path, "%s/table.md", stage);
        rc = fs_write_text_atomic(path, md ? md : "", err);
        free(md);
    }
    if (!rc)
        rc = write_curves(runs_csv, stage, &s.t, s.rows, s.n, gname, ng, s.cells, nc, s.cell_of, bkey, err);
    if (!rc) rc = write_routing(runs_csv, stage, out_dir, &s, gname, ng, s.cells, nc, s.cell_of, err);
    if (!rc) rc = fs_move_dir_files(stage, out_dir, err);
    if (rc && staged) fs_remove_dir_files(stage);
    if (!rc) {
        int nok = 0, nf = 0;
        for (int i = 0; i < nc; i++) { nok += s.cells[i].n; nf += s.cells[i].nfail; }
        printf("aggregated %d runs (%d ok, %d not ok) into %d cells: %s/table.csv, %s/table.md\n", s.n,
               nok, nf, nc, out_dir, out_dir);
    }
    aggregate_free(&s);
    return rc;
}
