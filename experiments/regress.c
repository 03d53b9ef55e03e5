/* The regression check and the reference writer. See regress.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "regress.h"
#include "aggregate.h"
#include "platform.h"
#include "stats.h"
#include "util.h"
#include "../core/fsutil.h"

#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BASELINE "moe.method=dense"

int regress_parse_mode(const char *s, RegressMode *m, Err *err) {
    static const char *const names[] = {"auto", "exact", "stat"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *m = (RegressMode)i;
            return 0;
        }
    return err_set(err, ERR_USAGE, "--mode '%s': expected exact, stat or auto", s);
}

void regress_result_free(RegressResult *r) {
    free(r->tests);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- exact */

static const char *cell_of_run(const AggSet *s, int i) {
    return s->cell_of[i] >= 0 ? s->cells[s->cell_of[i]].label : "(run not ok)";
}

static int find_run(const AggSet *s, const char *id) {
    for (int j = 0; j < s->n; j++)
        if (!strcmp(aggregate_run_get(s, j, "run_id"), id)) return j;
    return -1;
}

/* 1 if s lacks the column checkpoint_sha256 or an ok run has none. */
static int sha_missing(const AggSet *s) {
    if (csv_col(&s->t, "checkpoint_sha256") < 0) return 1;
    for (int i = 0; i < s->n; i++)
        if (s->cell_of[i] >= 0 && !*aggregate_run_get(s, i, "checkpoint_sha256")) return 1;
    return 0;
}

/* Reference run i against its namesake in nw: one FAIL line per field. */
static void exact_run(const AggSet *ref, const AggSet *nw, int i, FILE *out, RegressResult *r) {
    static const char *const fields[] = {"final_top1", "checkpoint_sha256"};
    const char *id = aggregate_run_get(ref, i, "run_id"), *cell = cell_of_run(ref, i);
    int j = find_run(nw, id), bad = 0;
    r->nchecked++;
    if (j < 0 || nw->cell_of[j] < 0) {
        fprintf(out, "FAIL  run %s  cell %s: %s%s\n", id, cell, j < 0 ? "missing from the new runs" : "status ",
                j < 0 ? "" : aggregate_run_get(nw, j, "status"));
        r->nfail++;
        return;
    }
    for (int k = 0; k < 2; k++) {
        const char *a = aggregate_run_get(ref, i, fields[k]), *b = aggregate_run_get(nw, j, fields[k]);
        if (!strcmp(a, b)) continue;
        fprintf(out, "FAIL  run %s  cell %s  %s: reference %s, new %s\n", id, cell, fields[k], a, b);
        bad = 1;
    }
    r->nfail += bad;
}

static void regress_exact(const AggSet *ref, const AggSet *nw, int subset, FILE *out, RegressResult *r) {
    r->mode = REGRESS_EXACT;
    int not_rerun = 0;
    for (int i = 0; i < ref->n; i++) {
        if (ref->cell_of[i] < 0) continue;
        if (subset && find_run(nw, aggregate_run_get(ref, i, "run_id")) < 0) not_rerun++;
        else exact_run(ref, nw, i, out, r);
    }
    for (int j = 0; j < nw->n; j++)
        if (nw->cell_of[j] >= 0 && find_run(ref, aggregate_run_get(nw, j, "run_id")) < 0)
            fprintf(out, "NEW   run %s  cell %s: not in the reference; not checked\n",
                    aggregate_run_get(nw, j, "run_id"), cell_of_run(nw, j));
    fprintf(out,
            "regress exact: %d of %d reference runs reproduced bit for bit (final_top1 and "
            "checkpoint_sha256), %d differ",
            r->nchecked - r->nfail, r->nchecked, r->nfail);
    if (subset) fprintf(out, "; %d not rerun (--subset)", not_rerun);
    fputc('\n', out);
    if (subset && !r->nchecked) {
        fprintf(out, "FAIL  --subset: none of the reference's runs is in the new runs\n");
        r->nfail++;
    }
}

/* ---------------------------------------------------------------- stat */

static void add_test(RegressResult *r, const char *cell, int is_diff, const double *x, int nx,
                     const double *y, int ny) {
    r->tests = xrealloc(r->tests, sizeof *r->tests * (size_t)(r->ntests + 1));
    RegressTest *t = memset(&r->tests[r->ntests++], 0, sizeof *r->tests);
    snprintf(t->cell, sizeof t->cell, "%s", cell);
    t->is_diff = is_diff;
    t->n_ref = nx;
    t->n_new = ny;
    t->mean_ref = stats_mean(x, nx);
    t->mean_new = stats_mean(y, ny);
    t->p = t->p_holm = NAN;
    if (nx < 2 || ny < 2) return;
    TTest w = stats_welch(x, nx, y, ny);
    t->p = w.p;
    t->zero_var = isnan(w.t);   /* stats_welch: p = 1 for equal means, 0 otherwise */
}

static int find_cell(const AggSet *s, const char *label) {
    for (int m = 0; m < s->nc; m++)
        if (!strcmp(s->cells[m].label, label)) return m;
    return -1;
}

/* The tests of reference cell i; missing cells and missing runs fail here,
 * unless subset (a rerun of some of the reference's runs): then a missing cell
 * is skipped (returns 1) and fewer runs are allowed. */
static int stat_cell(const AggSet *ref, const AggSet *nw, int i, int subset, FILE *out, RegressResult *r) {
    const AggCell *a = &ref->cells[i];
    if (a->n == 0) return 0;   /* only failed runs in the reference: nothing to compare */
    int m = find_cell(nw, a->label);
    if (subset && m < 0) return 1;
    if (!subset && (m < 0 || nw->cells[m].n < a->n)) {
        fprintf(out, "FAIL  %s: %s (reference: %d ok runs)\n", a->label,
                m < 0 ? "missing from the new runs" : "fewer ok runs in the new runs", a->n);
        r->nfail++;
        r->nchecked++;
        if (m < 0) return 0;
    }
    const AggCell *b = &nw->cells[m];
    add_test(r, a->label, 0, a->acc, a->n, b->acc, b->n);
    if (a->base >= 0 && b->base >= 0) add_test(r, a->label, 1, a->pair_d, a->cmp.n, b->pair_d, b->cmp.n);
    return 0;
}

static void print_test(FILE *out, const RegressTest *t) {
    const char *what = t->is_diff ? "difference to its baseline" : "top-1";
    const char *fmt = t->is_diff ? "%s  %s  %s: reference %+.6f (n %d), new %+.6f (n %d)"
                                 : "%s  %s  %s: reference %.6f (n %d), new %.6f (n %d)";
    fprintf(out, fmt, isnan(t->p) ? "SKIP" : t->fail ? "FAIL" : "PASS", t->cell, what, t->mean_ref,
            t->n_ref, t->mean_new, t->n_new);
    if (isnan(t->p)) fprintf(out, ": fewer than 2 values on a side, not tested\n");
    else if (t->zero_var)
        fprintf(out, "  p %.3g  p_holm %.3g (zero variance on both sides: means %s)\n", t->p, t->p_holm,
                t->p > 0 ? "equal" : "differ");
    else fprintf(out, "  p %.3g  p_holm %.3g\n", t->p, t->p_holm);
}

/* Holm over every test with a p, the verdicts, one line per test. */
static void stat_verdicts(RegressResult *r, FILE *out) {
    double *p = xmalloc(sizeof(double) * ((size_t)r->ntests + 1));
    int ntestable = 0;
    for (int k = 0; k < r->ntests; k++) {
        p[k] = r->tests[k].p;
        ntestable += !isnan(p[k]);
    }
    stats_holm(p, r->ntests, p);
    int nfail = 0;
    for (int k = 0; k < r->ntests; k++) {
        RegressTest *t = &r->tests[k];
        t->p_holm = p[k];
        t->fail = !isnan(p[k]) && p[k] < REGRESS_ALPHA;
        nfail += t->fail;
        print_test(out, t);
    }
    free(p);
    fprintf(out,
            "regress stat: %d tests (Welch t, Holm over the %d testable ones, alpha %g): %d failed, %d not "
            "testable\n",
            r->ntests, ntestable, REGRESS_ALPHA, nfail, r->ntests - ntestable);
    if (r->ntests > 0 && ntestable == 0) {   /* a check that compared nothing must not pass */
        fprintf(out, "FAIL  stat: none of the %d tests could be made (each needs at least 2 values on a side: "
                     "rerun at least 2 seeds, e.g. bin/ewa grid ... --seeds 1,2)\n", r->ntests);
        nfail++;
    }
    r->nfail += nfail;
    r->nchecked += ntestable;
}

static void regress_stat(const AggSet *ref, const AggSet *nw, int subset, FILE *out, RegressResult *r) {
    r->mode = REGRESS_STAT;
    int skipped = 0;
    for (int i = 0; i < ref->nc; i++) skipped += stat_cell(ref, nw, i, subset, out, r);
    if (subset && r->ntests == 0) {
        fprintf(out, "FAIL  --subset: none of the reference's cells is in the new runs\n");
        r->nfail++;
    }
    if (skipped) fprintf(out, "regress stat: %d reference cells not rerun (--subset)\n", skipped);
    for (int m = 0; m < nw->nc; m++)
        if (find_cell(ref, nw->cells[m].label) < 0)
            fprintf(out, "NEW   %s: not in the reference; not checked\n", nw->cells[m].label);
    stat_verdicts(r, out);
}

/* ---------------------------------------------------------------- auto */

/* 1 when exact mode can run; 0 with the reason in why (and the platforms
 * filled when they differ); -1 when platform.csv is unreadable. */
static int exact_possible(const AggSet *ref, const AggSet *nw, const char *ref_platform,
                          const char *ref_name, Platform *a, Platform *b, char *why, size_t n,
                          Err *err) {
    int found = 0;
    if (ref_platform && platform_read(ref_platform, a, &found, err)) return -1;
    platform_of_runs(nw, b);
    char names[512];
    if (sha_missing(ref))
        snprintf(why, n, "reference has no checkpoint_sha256; regenerate it with `make reference PROFILE=%s` "
                 "(bin/ewa regress --write-reference DIR --from RESULTS_DIR) from a clean tree", ref_name);
    else if (sha_missing(nw))
        snprintf(why, n, "the new runs have no checkpoint_sha256 (recorded by an older binary)");
    else if (!found)
        snprintf(why, n, "reference has no platform.csv; regenerate it with `make reference PROFILE=%s`",
                 ref_name);
    else if (platform_diff(a, b, names, sizeof names))
        snprintf(why, n, "platform differs: %s", names);
    else
        return 1;
    return 0;
}

static void print_platform_diff(FILE *out, const Platform *a, const Platform *b) {
    for (int i = 0; i < PLATFORM_NFIELDS; i++)
        if (strcmp(a->val[i], b->val[i]) || !strcmp(a->val[i], "unknown"))
            fprintf(out, "  %s: reference '%s', new '%s'\n", platform_key(i), a->val[i], b->val[i]);
}

static int run_mode(const AggSet *ref, const AggSet *nw, const char *ref_platform, RegressMode mode,
                    int subset, const char *ref_name, FILE *out, RegressResult *r, Err *err) {
    if (mode == REGRESS_STAT) {
        regress_stat(ref, nw, subset, out, r);
        return 0;
    }
    Platform a, b;
    char why[1024];
    int can = exact_possible(ref, nw, ref_platform, ref_name, &a, &b, why, sizeof why, err);
    if (can < 0) return ERR_RUNTIME;
    if (can) {
        fprintf(out, "regress: platform fingerprint equals the reference's: exact mode\n");
        regress_exact(ref, nw, subset, out, r);
        return 0;
    }
    if (mode == REGRESS_EXACT)
        return err_set(err, ERR_RUNTIME, "--mode exact: cannot check bit for bit: %s (--mode auto falls back to stat)",
                       why);
    fprintf(out, "regress: %s; falling back to stat\n", why);
    if (!strncmp(why, "platform differs", 16)) print_platform_diff(out, &a, &b);
    regress_stat(ref, nw, subset, out, r);
    return 0;
}

int regress_runs(const char *ref_runs, const char *ref_platform, const char *new_runs,
                 RegressMode mode, int subset, const char *ref_name, FILE *out, RegressResult *r, Err *err) {
    memset(r, 0, sizeof *r);
    AggSet ref, nw;
    if (aggregate_load(ref_runs, NULL, BASELINE, 0, &ref, err)) return ERR_RUNTIME;
    if (aggregate_load(new_runs, NULL, BASELINE, 0, &nw, err)) {
        aggregate_free(&ref);
        return ERR_RUNTIME;
    }
    int rc = run_mode(&ref, &nw, ref_platform, mode, subset, ref_name, out, r, err);
    aggregate_free(&ref);
    aggregate_free(&nw);
    return rc;
}

/* arg, or its directory when arg names a regular file (DIR/table.csv). */
static void resolve_dir(const char *arg, char *dir, size_t n) {
    struct stat st;
    snprintf(dir, n, "%s", arg);
    if (stat(arg, &st) || !S_ISREG(st.st_mode)) return;
    char *copy = xstrdup(arg);
    snprintf(dir, n, "%s", dirname(copy));
    free(copy);
}

int regress_dirs(const char *ref_dir, const char *new_dir, RegressMode mode, int subset, FILE *out,
                 RegressResult *r, Err *err) {
    char rd[4096], nd[4096], rr[FS_PATH_BUF], rp[FS_PATH_BUF], nr[FS_PATH_BUF];
    resolve_dir(ref_dir, rd, sizeof rd);
    resolve_dir(new_dir, nd, sizeof nd);
    snprintf(rr, sizeof rr, "%s/runs.csv", rd);
    snprintf(rp, sizeof rp, "%s/platform.csv", rd);
    snprintf(nr, sizeof nr, "%s/runs.csv", nd);
    char *copy = xstrdup(rd);
    fprintf(out, "regress: reference %s, new %s\n", rd, nd);
    int rc = regress_runs(rr, rp, nr, mode, subset, basename(copy), out, r, err);
    free(copy);
    return rc;
}

/* ---------------------------------------------------------------- writer */

/* The runs of a reference: every run ok, with its SHA-256, from a clean tree. */
static int check_reference_runs(const AggSet *s, const char *path, int allow_dirty, Err *err) {
    if (csv_col(&s->t, "checkpoint_sha256") < 0)
        return err_set(err, ERR_RUNTIME, "%s: has no checkpoint_sha256 column (its runs were recorded by an "
                       "older binary); rerun them with this one", path);
    for (int i = 0; i < s->n; i++) {
        const char *id = aggregate_run_get(s, i, "run_id");
        if (s->cell_of[i] < 0)
            return err_set(err, ERR_RUNTIME, "%s: run %s is %s; a reference holds finished runs only (rerun the grid)",
                           path, id, aggregate_run_get(s, i, "status"));
        if (!*aggregate_run_get(s, i, "checkpoint_sha256"))
            return err_set(err, ERR_RUNTIME, "%s: run %s has no checkpoint_sha256; rerun it with this binary", path, id);
        if (!allow_dirty && strcmp(aggregate_run_get(s, i, "git_dirty"), "0"))
            return err_set(err, ERR_RUNTIME, "%s: run %s was built from a tree with uncommitted changes "
                           "(git_dirty '%s'); commit, rebuild and rerun the grid (or --allow-dirty)", path, id,
                           aggregate_run_get(s, i, "git_dirty"));
    }
    return 0;
}

static int copy_file(const char *from_dir, const char *dir, const char *name, Err *err) {
    char src[FS_PATH_BUF], dst[FS_PATH_BUF];
    snprintf(src, sizeof src, "%s/%s", from_dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    return fs_copy_file(src, dst, err);
}

static int write_reference_files(const char *dir, const char *fd, const AggSet *s, Err *err) {
    static const char *const files[] = {"runs.csv", "table.csv", "table.md"};
    char path[FS_PATH_BUF];
    for (int k = 1; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", fd, files[k]);
        if (!fs_file_nonempty(path))
            return err_set(err, ERR_RUNTIME, "%s: missing; run `bin/ewa aggregate --runs %s/runs.csv --out %s` first",
                           path, fd, fd);
    }
    /* the tables must be aggregated from this runs.csv, not an older one */
    struct stat sr, st;
    char runs[FS_PATH_BUF];
    snprintf(runs, sizeof runs, "%s/runs.csv", fd);
    int have_runs = !stat(runs, &sr);
    for (int k = 1; k < 3 && have_runs; k++) {
        snprintf(path, sizeof path, "%s/%s", fd, files[k]);
        if (!stat(path, &st) &&
            (st.st_mtim.tv_sec < sr.st_mtim.tv_sec ||
             (st.st_mtim.tv_sec == sr.st_mtim.tv_sec && st.st_mtim.tv_nsec < sr.st_mtim.tv_nsec)))
            return err_set(err, ERR_RUNTIME, "%s: older than %s (aggregated before its last runs); run `bin/ewa "
                           "aggregate --runs %s --out %s` first", path, runs, runs, fd);
    }
    if (fs_mkdir_p(dir, err)) return ERR_RUNTIME;
    for (int k = 0; k < 3; k++)
        if (copy_file(fd, dir, files[k], err)) return ERR_RUNTIME;
    Platform p;
    platform_of_runs(s, &p);
    snprintf(path, sizeof path, "%s/platform.csv", dir);
    return platform_write(path, &p, err);
}

int regress_write_reference(const char *dir, const char *from, int allow_dirty, FILE *out, Err *err) {
    char fd[4096], runs[FS_PATH_BUF];
    resolve_dir(from, fd, sizeof fd);
    snprintf(runs, sizeof runs, "%s/runs.csv", fd);
    AggSet s;
    if (aggregate_load(runs, NULL, BASELINE, 0, &s, err)) return ERR_RUNTIME;
    int rc = check_reference_runs(&s, runs, allow_dirty, err);
    if (!rc) rc = write_reference_files(dir, fd, &s, err);
    if (!rc) {
        Platform p;
        platform_of_runs(&s, &p);
        fprintf(out, "wrote reference %s from %s: %d runs in %d cells; platform fingerprint:\n", dir, fd, s.n, s.nc);
        for (int i = 0; i < PLATFORM_NFIELDS; i++) fprintf(out, "  %s = %s\n", platform_key(i), p.val[i]);
    }
    aggregate_free(&s);
    return rc;
}
