/* Aggregation of runs.csv into table.csv / table.md / curve data, and the
 * regression check. See aggregate.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "aggregate.h"
#include "../core/fsutil.h"
#include "stats.h"
#include "csvio.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXG 32

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

typedef struct {
    const CsvTable *t;
    int row;
    char **sk, **sv;   /* parsed sweep */
    int ns;
} Row;

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

typedef struct {
    char *vals[MAXG];
    int n, nfail, cap;
    double *acc;
    long *seed;
    char n_test[32], params[32], flops[32];
    /* baseline comparison */
    int base;          /* index of the baseline cell, -1 none */
    double base_mean, diff;
    PairedT pt;
    double mean, std, se;
} Cell;

static int same_except(const Cell *a, const Cell *b, int ng, int skip) {
    for (int g = 0; g < ng; g++)
        if (g != skip && strcmp(a->vals[g], b->vals[g])) return 0;
    return 1;
}

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
    if (x >= 1e9) snprintf(b, n, "%.2fG%s", x / 1e9, unit);
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

static char *markdown(const char *runs_csv, const char *const *gname, int ng, Cell *cells,
                      int nc, int bkey, const char *bval) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fprintf(f, "# Results: %s\n\n", runs_csv);
    if (bkey < 0) {
        int shown = 0;
        for (int g = 0; g < ng; g++)
            if (md_shown(gname, ng, g, -1)) { fprintf(f, "| "); md_header_name(f, gname[g]); fprintf(f, " "); shown++; }
        fprintf(f, "| top-1 (mean ± std) | n | SE | params | FLOPs |\n");
        for (int g = 0; g < shown + 5; g++) fprintf(f, "|---");
        fprintf(f, "|\n");
        for (int i = 0; i < nc; i++) {
            Cell *c = &cells[i];
            for (int g = 0; g < ng; g++)
                if (md_shown(gname, ng, g, -1)) { fprintf(f, "| "); md_cell_value(f, gname, c, g, ng); fprintf(f, " "); }
            char p[32], fl[32];
            human(p, sizeof p, c->params, "");
            human(fl, sizeof fl, c->flops, "");
            if (c->n == 0) fprintf(f, "| - (%d failed) | 0 | - | %s | %s |\n", c->nfail, p, fl);
            else fprintf(f, "| %.4f ± %.4f | %d | %.4f | %s | %s |\n", c->mean, c->std, c->n, c->se, p, fl);
        }
    } else {
        /* the pivot: one row per combination of the other keys, one column
         * group per value of the baseline key (baseline first) */
        const char *bv[16];
        int nbv = 0;
        bv[nbv++] = bval;
        for (int i = 0; i < nc; i++) {
            int seen = 0;
            for (int k = 0; k < nbv; k++) seen |= !strcmp(bv[k], cells[i].vals[bkey]);
            if (!seen && nbv < 16) bv[nbv++] = cells[i].vals[bkey];
        }
        for (int g = 0; g < ng; g++)
            if (md_shown(gname, ng, g, bkey)) { fprintf(f, "| "); md_header_name(f, gname[g]); fprintf(f, " "); }
        int ncols = 0;
        for (int g = 0; g < ng; g++) ncols += md_shown(gname, ng, g, bkey);
        for (int k = 0; k < nbv; k++) { fprintf(f, "| %s top-1 ", bv[k]); ncols++; }
        for (int k = 1; k < nbv; k++) { fprintf(f, "| Δ %s | p %s ", bv[k], bv[k]); ncols += 2; }
        for (int k = 0; k < nbv; k++) { fprintf(f, "| params %s | FLOPs %s ", bv[k], bv[k]); ncols += 2; }
        fprintf(f, "|\n");
        for (int k = 0; k < ncols; k++) fprintf(f, "|---");
        fprintf(f, "|\n");
        char *done = calloc((size_t)nc, 1);
        for (int i = 0; i < nc; i++) {
            if (done[i]) continue;
            int idx[16];
            for (int k = 0; k < nbv; k++) {
                idx[k] = -1;
                for (int j = i; j < nc; j++)
                    if (!done[j] && same_except(&cells[i], &cells[j], ng, bkey) &&
                        !strcmp(cells[j].vals[bkey], bv[k]))
                        idx[k] = j;
            }
            for (int j = i; j < nc; j++)
                if (same_except(&cells[i], &cells[j], ng, bkey)) done[j] = 1;
            for (int g = 0; g < ng; g++)
                if (md_shown(gname, ng, g, bkey)) { fprintf(f, "| "); md_cell_value(f, gname, &cells[i], g, ng); fprintf(f, " "); }
            for (int k = 0; k < nbv; k++) {
                if (idx[k] < 0) { fprintf(f, "| - "); continue; }
                Cell *c = &cells[idx[k]];
                if (c->n == 0) fprintf(f, "| - (n=0, %d failed) ", c->nfail);
                else fprintf(f, "| %.4f ± %.4f (n=%d) ", c->mean, c->std, c->n);
            }
            for (int k = 1; k < nbv; k++) {
                Cell *c = idx[k] >= 0 ? &cells[idx[k]] : NULL;
                if (!c || c->base < 0 || isnan(c->diff)) { fprintf(f, "| - | - "); continue; }
                fprintf(f, "| %+.4f ", c->diff);
                if (isnan(c->pt.p)) fprintf(f, "| n/a (%d pairs) ", c->pt.n);
                else fprintf(f, "| %.3g ", c->pt.p);
            }
            for (int k = 0; k < nbv; k++) {
                char p[32] = "-", fl[32] = "-";
                if (idx[k] >= 0) {
                    human(p, sizeof p, cells[idx[k]].params, "");
                    human(fl, sizeof fl, cells[idx[k]].flops, "");
                }
                fprintf(f, "| %s | %s ", p, fl);
            }
            fprintf(f, "|\n");
        }
        free(done);
    }
    fprintf(f,
            "\nTop-1: test accuracy at the end of training, mean ± sample std over seeds (n seeds).\n");
    if (bkey >= 0)
        fprintf(f,
                "Δ: mean top-1 minus the %s = %s baseline's; p: two-sided paired t-test over seeds\n"
                "(runs paired by seed). Params and FLOPs are per image at inference (EWA runs are\n"
                "collapsed to the dense model, so they equal the dense ones).\n",
                gname[bkey], bval);
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

static int pt_cmp(const void *a, const void *b) {
    const CurvePt *x = a, *y = b;
    int c = strcmp(y->split, x->split); /* train before test */
    if (c) return c;
    return x->epoch - y->epoch;
}

/* curves.dat: one gnuplot data block per cell (blocks separated by two blank
 * lines), columns epoch, split(1 train, 2 test), n, loss_mean, loss_std,
 * top1_mean, top1_std; curves_index.csv: block, panel, series, cell. */
static int write_curves(const char *runs_csv, const char *out_dir, const CsvTable *t, Row *rows,
                        int nrows, const char *const *gname, int ng, Cell *cells, int nc,
                        int *cell_of, int bkey, Err *err) {
    char *tmp = xs(runs_csv);
    char base[4096];
    snprintf(base, sizeof base, "%s/runs", dirname(tmp));
    free(tmp);
    char *dat = NULL;
    size_t dl = 0;
    FILE *f = open_memstream(&dat, &dl);
    int nidx = 0, cap = 0;
    char **idx = NULL;
    int block = 0;
    for (int ci = 0; ci < nc; ci++) {
        CurvePt *pts = NULL;
        int np = 0;
        for (int r = 0; r < nrows; r++) {
            if (cell_of[r] != ci) continue;
            char path[4400];
            snprintf(path, sizeof path, "%s/%s/metrics.csv", base, row_get(&rows[r], "run_id"));
            CsvTable m;
            Err e;
            if (access(path, R_OK) || csv_read_file(path, &m, &e)) continue;
            int ce = csv_col(&m, "epoch"), cs = csv_col(&m, "split"), cl = csv_col(&m, "loss"),
                ct = csv_col(&m, "top1");
            if (ce < 0 || cs < 0 || cl < 0 || ct < 0) { csv_table_free(&m); continue; }
            for (int k = 0; k < m.nrows; k++) {
                int ep = atoi(csv_cell(&m, k, ce));
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
                double l = atof(csv_cell(&m, k, cl)), a = atof(csv_cell(&m, k, ct));
                pts[j].n++;
                pts[j].s_loss += l; pts[j].ss_loss += l * l;
                pts[j].s_top1 += a; pts[j].ss_top1 += a * a;
            }
            csv_table_free(&m);
        }
        if (!np) continue;
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
                    strcmp(pts[j].split, "train") ? 2 : 1, n, ml, sqrt(vl > 0 ? vl : 0), ma,
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
    int rc = 0;
    if (block) {
        char path[4200];
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

int aggregate_runs(const char *runs_csv, const char *out_dir, const char *group,
                   const char *baseline, Err *err) {
    CsvTable t;
    if (csv_read_file(runs_csv, &t, err)) return ERR_RUNTIME;
    int c_id = csv_col(&t, "run_id"), c_st = csv_col(&t, "status"), c_acc = csv_col(&t, "final_top1"),
        c_seed = csv_col(&t, "seed"), c_sw = csv_col(&t, "sweep");
    if (c_id < 0 || c_st < 0 || c_acc < 0 || c_seed < 0) {
        csv_table_free(&t);
        return err_set(err, ERR_RUNTIME, "%s: needs the columns run_id, status, final_top1 and seed",
                       runs_csv);
    }
    /* dedupe by run_id: the last ok row of a run, else its last row */
    int *keep = malloc(sizeof(int) * ((size_t)t.nrows + 1)), nk = 0;
    for (int r = 0; r < t.nrows; r++) {
        const char *id = csv_cell(&t, r, c_id);
        int ok = !strcmp(csv_cell(&t, r, c_st), "ok"), j = 0;
        while (j < nk && strcmp(csv_cell(&t, keep[j], c_id), id)) j++;
        if (j == nk) keep[nk++] = r;
        else if (ok || strcmp(csv_cell(&t, keep[j], c_st), "ok")) keep[j] = r;
    }
    Row *rows = calloc((size_t)nk + 1, sizeof *rows);
    for (int i = 0; i < nk; i++) {
        rows[i].t = &t;
        rows[i].row = keep[i];
        parse_sweep(&rows[i], c_sw >= 0 ? csv_cell(&t, keep[i], c_sw) : "");
    }
    /* group keys */
    char gbuf[MAXG][128];
    int ng = 0;
    int rc = 0;
    if (group && *group) {
        char *b = xs(group), *save = NULL;
        for (char *p = strtok_r(b, ",", &save); p && !rc; p = strtok_r(NULL, ",", &save)) {
            while (*p == ' ') p++;
            if (!*p) continue;
            if (ng == MAXG) rc = err_set(err, ERR_USAGE, "--group: too many keys");
            else canon(&t, p, gbuf[ng++], sizeof gbuf[0]);
        }
        free(b);
        if (!rc && !ng) rc = err_set(err, ERR_USAGE, "--group: no keys given");
        for (int g = 0; g < ng && !rc; g++) {
            int found = csv_col(&t, gbuf[g]) >= 0;
            for (int i = 0; i < nk && !found; i++)
                for (int k = 0; k < rows[i].ns; k++) found |= !strcmp(rows[i].sk[k], gbuf[g]);
            if (!found)
                rc = err_set(err, ERR_USAGE, "--group: '%s' is neither a column of %s nor a swept key",
                             gbuf[g], runs_csv);
        }
    } else {
        static const char *const def[] = {"dataset", "train_subset", "preset", "dim", "depth", "method"};
        for (int k = 0; k < 6; k++)
            if (csv_col(&t, def[k]) >= 0) snprintf(gbuf[ng++], sizeof gbuf[0], "%s", def[k]);
        for (int i = 0; i < nk; i++)
            for (int k = 0; k < rows[i].ns && ng < MAXG; k++) {
                char cn[128];
                canon(&t, rows[i].sk[k], cn, sizeof cn);
                int dup = 0;
                for (int g = 0; g < ng; g++) dup |= !strcmp(gbuf[g], cn);
                if (!dup) snprintf(gbuf[ng++], sizeof gbuf[0], "%s", cn);
            }
    }
    const char *gname[MAXG];
    for (int g = 0; g < ng; g++) gname[g] = gbuf[g];
    /* baseline */
    int bkey = -1;
    char bval[256] = "";
    if (!rc && baseline && *baseline) {
        const char *eq = strchr(baseline, '=');
        if (!eq || eq == baseline) {
            rc = err_set(err, ERR_USAGE, "--baseline '%s': expected key=value", baseline);
        } else {
            char k[128], cn[128];
            snprintf(k, sizeof k, "%.*s", (int)(eq - baseline), baseline);
            canon(&t, k, cn, sizeof cn);
            snprintf(bval, sizeof bval, "%s", eq + 1);
            for (int g = 0; g < ng; g++)
                if (!strcmp(gname[g], cn)) bkey = g;
            if (bkey < 0)
                fprintf(stderr, "ewa aggregate: baseline key '%s' is not a grouping key; no differences reported\n",
                        k);
        }
    }
    Cell *cells = NULL;
    int nc = 0;
    int *cell_of = malloc(sizeof(int) * ((size_t)nk + 1));
    for (int i = 0; i < nk && !rc; i++) {
        const Row *r = &rows[i];
        int ci = 0;
        for (; ci < nc; ci++) {
            int same = 1;
            for (int g = 0; g < ng && same; g++) same = !strcmp(cells[ci].vals[g], row_get(r, gname[g]));
            if (same) break;
        }
        if (ci == nc) {
            cells = xr(cells, sizeof *cells * (size_t)(nc + 1));
            memset(&cells[nc], 0, sizeof *cells);
            for (int g = 0; g < ng; g++) cells[nc].vals[g] = xs(row_get(r, gname[g]));
            cells[nc].base = -1;
            nc++;
        }
        cell_of[i] = ci;
        Cell *c = &cells[ci];
        if (strcmp(row_get(r, "status"), "ok")) {
            c->nfail++;
            cell_of[i] = -1;
            continue;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 8;
            c->acc = xr(c->acc, sizeof(double) * (size_t)c->cap);
            c->seed = xr(c->seed, sizeof(long) * (size_t)c->cap);
        }
        c->acc[c->n] = atof(row_get(r, "final_top1"));
        c->seed[c->n] = atol(row_get(r, "seed"));
        c->n++;
        snprintf(c->n_test, sizeof c->n_test, "%s", row_get(r, "n_test"));
        snprintf(c->params, sizeof c->params, "%s", row_get(r, "params_inference"));
        snprintf(c->flops, sizeof c->flops, "%s", row_get(r, "flops_inference"));
    }
    for (int i = 0; i < nc && !rc; i++) {
        Cell *c = &cells[i];
        c->mean = stats_mean(c->acc, c->n);
        c->std = stats_std(c->acc, c->n);
        c->se = stats_binom_se(c->mean, c->n_test[0] ? atoi(c->n_test) : 0);
        c->diff = c->base_mean = NAN;
        c->pt = (PairedT){.p = NAN, .t = NAN};
    }
    for (int i = 0; i < nc && !rc && bkey >= 0; i++) {
        Cell *c = &cells[i];
        if (!strcmp(c->vals[bkey], bval)) continue;
        for (int j = 0; j < nc; j++)
            if (!strcmp(cells[j].vals[bkey], bval) && same_except(c, &cells[j], ng, bkey)) c->base = j;
        if (c->base < 0) continue;
        Cell *b = &cells[c->base];
        c->base_mean = b->mean;
        c->diff = c->mean - b->mean;
        double *xa = malloc(sizeof(double) * ((size_t)c->n + 1)), *xb = malloc(sizeof(double) * ((size_t)c->n + 1));
        int np = 0;
        for (int k = 0; k < c->n; k++)
            for (int l = 0; l < b->n; l++)
                if (b->seed[l] == c->seed[k]) {
                    xa[np] = b->acc[l];
                    xb[np] = c->acc[k];
                    np++;
                    break;
                }
        c->pt = stats_paired_t(xa, xb, np);
        if (np == 0) c->pt.n = 0;
        free(xa);
        free(xb);
    }
    if (!rc && !nc) rc = err_set(err, ERR_RUNTIME, "%s: no runs to aggregate", runs_csv);
    if (!rc) rc = fs_mkdir_p(out_dir, err);
    if (!rc) {
        /* table.csv */
        static const char *const stat_cols[] = {"n", "n_failed", "mean_top1", "std_top1", "se_binomial",
                                                "n_test", "params_inference", "flops_inference",
                                                "baseline_mean_top1", "diff", "n_pairs", "t", "p_value"};
        enum { NS = 13 };
        int ncols = ng + NS;
        const char **hdr = malloc(sizeof(char *) * (size_t)ncols);
        for (int g = 0; g < ng; g++) hdr[g] = gname[g];
        for (int k = 0; k < NS; k++) hdr[ng + k] = stat_cols[k];
        char *buf = malloc((size_t)nc * NS * 48);
        const char **cellv = malloc(sizeof(char *) * (size_t)nc * (size_t)ncols);
        for (int i = 0; i < nc; i++) {
            Cell *c = &cells[i];
            const char **row = cellv + (size_t)i * ncols;
            for (int g = 0; g < ng; g++) row[g] = c->vals[g];
            char *v = buf + (size_t)i * NS * 48;
#define S(k) (v + (k) * 48)
            snprintf(S(0), 48, "%d", c->n);
            snprintf(S(1), 48, "%d", c->nfail);
            fmt_num(S(2), 48, c->mean, "%.6f");
            fmt_num(S(3), 48, c->n ? c->std : NAN, "%.6f");
            fmt_num(S(4), 48, c->se, "%.6f");
            snprintf(S(5), 48, "%s", c->n_test);
            snprintf(S(6), 48, "%s", c->params);
            snprintf(S(7), 48, "%s", c->flops);
            fmt_num(S(8), 48, c->base_mean, "%.6f");
            fmt_num(S(9), 48, c->diff, "%.6f");
            if (c->base >= 0) snprintf(S(10), 48, "%d", c->pt.n);
            else S(10)[0] = '\0';
            fmt_num(S(11), 48, c->pt.t, "%.4f");
            fmt_num(S(12), 48, c->pt.p, "%.6g");
            for (int k = 0; k < NS; k++) row[ng + k] = S(k);
#undef S
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/table.csv", out_dir);
        rc = csv_write_file(path, ncols, hdr, nc, cellv, err);
        snprintf(path, sizeof path, "%s/table.tsv", out_dir);
        if (!rc) rc = write_tsv(path, ncols, hdr, nc, cellv, err);
        free(buf);
        free(cellv);
        free(hdr);
        if (!rc) {
            /* the pivot needs baseline cells; without any, a flat table */
            int have_base = 0;
            for (int i = 0; i < nc && bkey >= 0; i++) have_base |= !strcmp(cells[i].vals[bkey], bval);
            char *md = markdown(runs_csv, gname, ng, cells, nc, have_base ? bkey : -1, bval);
            snprintf(path, sizeof path, "%s/table.md", out_dir);
            rc = fs_write_text_atomic(path, md ? md : "", err);
            free(md);
        }
        if (!rc)
            rc = write_curves(runs_csv, out_dir, &t, rows, nk, gname, ng, cells, nc, cell_of, bkey, err);
        if (!rc) {
            int nok = 0, nf = 0;
            for (int i = 0; i < nc; i++) { nok += cells[i].n; nf += cells[i].nfail; }
            printf("aggregated %d runs (%d ok, %d not ok) into %d cells: %s/table.csv, %s/table.md\n",
                   nk, nok, nf, nc, out_dir, out_dir);
        }
    }
    for (int i = 0; i < nc; i++) {
        for (int g = 0; g < ng; g++) free(cells[i].vals[g]);
        free(cells[i].acc);
        free(cells[i].seed);
    }
    free(cells);
    free(cell_of);
    for (int i = 0; i < nk; i++) {
        for (int k = 0; k < rows[i].ns; k++) { free(rows[i].sk[k]); free(rows[i].sv[k]); }
        free(rows[i].sk);
        free(rows[i].sv);
    }
    free(rows);
    free(keep);
    csv_table_free(&t);
    return rc;
}

/* ---------------------------------------------------------------- regress */

static int key_cols(const CsvTable *t) { return csv_col(t, "n"); }

static void cell_key(const CsvTable *t, int r, int nk, char *b, size_t n) {
    b[0] = '\0';
    for (int c = 0; c < nk; c++) {
        char kv[300];
        snprintf(kv, sizeof kv, "%s%s=%s", c ? " " : "", t->header[c], csv_cell(t, r, c));
        strncat(b, kv, n - strlen(b) - 1);
    }
}

int regress_tables(const char *ref_csv, const char *new_csv, FILE *out, int *nfail, Err *err) {
    CsvTable a, b;
    *nfail = 0;
    if (csv_read_file(ref_csv, &a, err)) return ERR_RUNTIME;
    if (csv_read_file(new_csv, &b, err)) { csv_table_free(&a); return ERR_RUNTIME; }
    int ka = key_cols(&a), kb = key_cols(&b), rc = 0;
    int am = csv_col(&a, "mean_top1"), as = csv_col(&a, "std_top1"), an = csv_col(&a, "n_test"),
        bm = csv_col(&b, "mean_top1");
    if (ka < 0 || am < 0 || as < 0 || an < 0)
        rc = err_set(err, ERR_RUNTIME, "%s: not an aggregated table.csv (needs n, mean_top1, std_top1, n_test)",
                     ref_csv);
    else if (kb < 0 || bm < 0)
        rc = err_set(err, ERR_RUNTIME, "%s: not an aggregated table.csv (needs n, mean_top1)", new_csv);
    else if (ka != kb)
        rc = err_set(err, ERR_RUNTIME, "%s and %s group by different keys", ref_csv, new_csv);
    for (int c = 0; !rc && c < ka; c++)
        if (strcmp(a.header[c], b.header[c]))
            rc = err_set(err, ERR_RUNTIME, "%s and %s group by different keys ('%s' vs '%s')", ref_csv,
                         new_csv, a.header[c], b.header[c]);
    int npass = 0;
    for (int r = 0; !rc && r < a.nrows; r++) {
        char key[2048], kb2[2048];
        cell_key(&a, r, ka, key, sizeof key);
        int m = -1;
        for (int s = 0; s < b.nrows && m < 0; s++) {
            cell_key(&b, s, kb, kb2, sizeof kb2);
            if (!strcmp(key, kb2)) m = s;
        }
        double ref = atof(csv_cell(&a, r, am));
        const char *sstd = csv_cell(&a, r, as);
        double sd = sstd[0] ? atof(sstd) : NAN;
        int nt = atoi(csv_cell(&a, r, an));
        double tol = stats_regress_tol(ref, sd, nt);
        if (m < 0 || !csv_cell(&b, m, bm)[0]) {
            fprintf(out, "FAIL  %s  acc=missing  ref=%.4f  tol=%.4f\n", key, ref, tol);
            (*nfail)++;
            continue;
        }
        double acc = atof(csv_cell(&b, m, bm));
        int ok = fabs(acc - ref) <= tol + 1e-12;
        fprintf(out, "%s  %s  acc=%.4f  ref=%.4f  diff=%+.4f  tol=%.4f\n", ok ? "PASS" : "FAIL", key,
                acc, ref, acc - ref, tol);
        if (ok) npass++;
        else (*nfail)++;
    }
    if (!rc) {
        for (int s = 0; s < b.nrows; s++) {
            char kb2[2048], key[2048];
            cell_key(&b, s, kb, kb2, sizeof kb2);
            int found = 0;
            for (int r = 0; r < a.nrows && !found; r++) {
                cell_key(&a, r, ka, key, sizeof key);
                found = !strcmp(key, kb2);
            }
            if (!found) fprintf(out, "NEW   %s  (no reference; not checked)\n", kb2);
        }
        fprintf(out, "regress: %d cells passed, %d failed (ref %s, new %s)\n", npass, *nfail, ref_csv,
                new_csv);
    }
    csv_table_free(&a);
    csv_table_free(&b);
    return rc;
}
