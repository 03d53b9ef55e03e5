/* bin/ewa claims (experiments/claims.h) and the class-expert mutual
 * information of routed runs (experiments/routing_mi.h): hand-computed MI
 * values, routing.csv errors, and every figure and verdict against
 * tests/fixtures/claims/expected_*.csv, computed independently (mpmath,
 * plain Python) by tests/fixtures/claims/make_fixture.py from the fixture
 * tables it writes. */
#include <criterion/criterion.h>
#include <math.h>
#include <sys/stat.h>

#include "../experiments/aggregate.h"
#include "../experiments/claims.h"
#include "../experiments/csvio.h"
#include "../experiments/routing_mi.h"
#include "../experiments/stats.h"
#include "testproc.h"

#define NEAR(a, b, tol) cr_expect(fabs((a) - (b)) <= (tol), "%s = %.12g, expected %.12g", #a, (double)(a), (double)(b))

/* ---------------------------------------------------------------- MI by hand */

Test(routing_mi, hand_computed_values) {
    /* independent: p(c, e) = p(c) p(e) */
    double ind[3 * 4];
    const double pc[3] = {1, 2, 5}, pe[4] = {3, 1, 1, 7};
    for (int k = 0; k < 3; k++)
        for (int e = 0; e < 4; e++) ind[k * 4 + e] = 10 * pc[k] * pe[e];
    NEAR(routing_mi_bits(ind, 3, 4), 0, 1e-12);
    /* one-to-one, K = E = 4, equal classes: log2 min(4, 4) = 2 bits; with
     * unequal classes the expert still determines the class: I = H(class) */
    double one[16] = {0}, h = 0;
    for (int k = 0; k < 4; k++) one[k * 4 + (3 - k)] = 25;
    NEAR(routing_mi_bits(one, 4, 4), 2, 1e-12);
    for (int k = 0; k < 4; k++) {
        one[k * 4 + (3 - k)] = 10 + 7 * k;   /* 10, 17, 24, 31 of 82 */
        h -= (10 + 7 * k) / 82.0 * log2((10 + 7 * k) / 82.0);
    }
    NEAR(routing_mi_bits(one, 4, 4), h, 1e-12);
    /* 2 classes to 2 of 4 experts, equal sizes: log2 min(2, 4) = 1 bit */
    double two[8] = {0, 50, 0, 0, 0, 0, 0, 50};
    NEAR(routing_mi_bits(two, 2, 4), 1, 1e-12);
    /* [[3, 1], [1, 3]]: 1 - H(1/4) = 1 - (0.75 log2(4/3) + 0.25 log2 4) */
    double mix[4] = {3, 1, 1, 3};
    NEAR(routing_mi_bits(mix, 2, 2), 1 - (0.75 * log2(4.0 / 3.0) + 0.25 * 2), 1e-12);
    double zero[4] = {0};
    cr_expect(isnan(routing_mi_bits(zero, 2, 2)));
}

Test(stats, ols_slope) {
    double x[4] = {1, 2, 3, 6}, y[4], same[3] = {2, 2, 2};
    for (int i = 0; i < 4; i++) y[i] = 0.5 - 0.01 * x[i];
    NEAR(stats_ols_slope(x, y, 4), -0.01, 1e-15);
    cr_expect(isnan(stats_ols_slope(same, y, 3)));
    cr_expect(isnan(stats_ols_slope(x, y, 1)));
}

/* ---------------------------------------------------------------- routing.csv */

static char *write_text(const char *dir, const char *name, const char *text) {
    return tu_write(dir, name, text, strlen(text));
}

Test(routing_mi, reads_the_last_epoch) {
    char *dir = tu_tmpdir();
    /* epoch 1: independent; epoch 2: layer 3 one-to-one, layer 1 independent */
    char *p = write_text(dir, "routing.csv",
                         "epoch,layer,class,expert,count\n"
                         "1,1,0,0,5\n1,1,0,1,5\n1,1,1,0,5\n1,1,1,1,5\n"
                         "1,3,0,0,5\n1,3,0,1,5\n1,3,1,0,5\n1,3,1,1,5\n"
                         "2,3,0,0,9\n2,3,0,1,0\n2,3,1,0,0\n2,3,1,1,9\n"
                         "2,1,0,0,2\n2,1,0,1,6\n2,1,1,0,1\n2,1,1,1,3\n");
    RoutingMI m;
    Err err = {0};
    cr_assert_eq(routing_mi_read(p, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m.epoch, 2);
    cr_assert_eq(m.nl, 2);
    cr_expect_eq(m.layer[0], 1);
    cr_expect_eq(m.layer[1], 3);
    NEAR(m.mi[0], 0, 1e-12);
    NEAR(m.mi[1], 1, 1e-12);
    NEAR(m.max_bits[1], 1, 1e-12);
    cr_expect_eq(m.total[1], 18);
    cr_expect_eq(m.classes[0], 2);
    cr_expect_eq(m.experts, 2);
    routing_mi_free(&m);
    free(p);
    tu_rmrf(dir);
    free(dir);
}

static void expect_read_error(const char *text, const char *want) {
    char *dir = tu_tmpdir(), *p = write_text(dir, "routing.csv", text);
    RoutingMI m;
    Err err = {0};
    cr_expect_eq(routing_mi_read(p, &m, &err), ERR_RUNTIME, "accepted:\n%s", text);
    cr_expect(strstr(err.msg, p) && strstr(err.msg, want), "message '%s' should name %s and '%s'", err.msg, p, want);
    free(p);
    tu_rmrf(dir);
    free(dir);
}

Test(routing_mi, bad_files_are_errors_naming_file_and_line) {
    expect_read_error("epoch,layer,class,expert\n1,1,0,0\n", "no column 'count'");
    expect_read_error("epoch,layer,class,expert,count\n1,1,0,0,5\n1,1,0,1,-2\n", "line 3: count '-2'");
    expect_read_error("epoch,layer,class,expert,count\n1,1,0,0,5\n1,x,0,1,2\n", "line 3: layer 'x'");
    expect_read_error("epoch,layer,class,expert,count\n1,1,0,99999999,2\n", "line 2: expert");
    expect_read_error("epoch,layer,class,expert,count\n", "no rows");
}

/* ---------------------------------------------------------------- fixtures */

static char *fixture(const char *name) {
    char *p = tu_fixture_path(__FILE__, "claims", name);
    if (!p) cr_skip_test("fixture %s not found (run from the repository root)", name);
    return p;
}

/* A copy of the fixture results in a fresh directory, with results/mi
 * aggregated (routing_mi.csv). */
static char *fixture_results(void) {
    char *src = fixture("results"), *dir = tu_tmpdir(), cmd[2400];
    snprintf(cmd, sizeof cmd, "cp -r '%s/.' '%s/'", src, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    static const char *const agg[] = {"mi", "vimoe"};   /* tables a slope or MI claim needs beside its runs */
    for (int k = 0; k < 2; k++) {
        char runs[1200];
        snprintf(runs, sizeof runs, "%s/%s/runs.csv", dir, agg[k]);
        char *out = tu_path(dir, agg[k]);
        Err err = {0};
        cr_assert_eq(aggregate_runs(runs, out, NULL, "method=dense", 0, &err), 0, "%s", err.msg);
        free(out);
    }
    free(src);
    return dir;
}

/* Row of t whose columns keys[] hold vals[] (n of them), or -1. */
static int find(const CsvTable *t, const char *const *keys, const char *const *vals, int n) {
    for (int r = 0; r < t->nrows; r++) {
        int ok = 1;
        for (int k = 0; k < n && ok; k++) ok = !strcmp(csv_cell(t, r, csv_col(t, keys[k])), vals[k]);
        if (ok) return r;
    }
    return -1;
}

/* Compares column col of got row g with want row w: both empty, or within
 * abs + rel * |want|. Returns 1 when a number was compared. */
static int cmp_num(const CsvTable *got, int g, const CsvTable *want, int w, const char *col, double abs_tol,
                   double rel, const char *what) {
    int gc = csv_col(got, col), wc = csv_col(want, col);
    cr_assert(gc >= 0 && wc >= 0, "no column %s", col);
    const char *a = csv_cell(got, g, gc), *b = csv_cell(want, w, wc);
    cr_expect_eq(!a[0], !b[0], "%s %s: got '%s', expected '%s'", what, col, a, b);
    if (!a[0] || !b[0]) return 0;
    cr_expect(fabs(atof(a) - atof(b)) <= abs_tol + rel * fabs(atof(b)), "%s %s: got %s, expected %s", what, col, a, b);
    return 1;
}

Test(routing_mi, aggregate_matches_the_independent_computation) {
    char *dir = fixture_results(), *want_p = fixture("expected_routing_mi.csv"),
         *want_runs_p = fixture("expected_routing_mi_runs.csv");
    char *got_p = tu_path(dir, "mi/routing_mi.csv"), *got_runs_p = tu_path(dir, "mi/routing_mi_runs.csv");
    CsvTable got, want, gr, wr;
    Err err = {0};
    cr_assert_eq(csv_read_file(got_p, &got, &err), 0, "%s", err.msg);
    cr_assert_eq(csv_read_file(want_p, &want, &err), 0, "%s", err.msg);
    cr_expect_eq(got.nrows, want.nrows, "rows: got %d, expected %d", got.nrows, want.nrows);
    static const char *const keys[] = {"cell", "layer", "vs_layer"};
    static const char *const nums[] = {"mean_bits", "ci_low", "ci_high", "max_bits", "mde"};
    int checked = 0;
    for (int w = 0; w < want.nrows; w++) {
        const char *v[3] = {csv_cell(&want, w, 0), csv_cell(&want, w, 1), csv_cell(&want, w, 2)};
        int g = find(&got, keys, v, 3);
        cr_assert_geq(g, 0, "no row %s %s %s in %s", v[0], v[1], v[2], got_p);
        for (int k = 0; k < 5; k++) checked += cmp_num(&got, g, &want, w, nums[k], 6e-7, 0, v[0]);
        for (int k = 0; k < 2; k++) checked += cmp_num(&got, g, &want, w, k ? "p_holm" : "p", 1e-12, 1e-5, v[0]);
        cr_expect_str_eq(csv_cell(&got, g, csv_col(&got, "n")), csv_cell(&want, w, csv_col(&want, "n")));
        cr_expect_str_eq(csv_cell(&got, g, csv_col(&got, "n_pairs")), csv_cell(&want, w, csv_col(&want, "n_pairs")));
    }
    cr_expect_geq(checked, 40, "only %d figures compared", checked);
    cr_assert_eq(csv_read_file(got_runs_p, &gr, &err), 0, "%s", err.msg);
    cr_assert_eq(csv_read_file(want_runs_p, &wr, &err), 0, "%s", err.msg);
    cr_expect_eq(gr.nrows, wr.nrows, "the dense run has no routing.csv and no row");
    static const char *const rkeys[] = {"run_id", "layer"};
    for (int w = 0; w < wr.nrows; w++) {
        const char *v[2] = {csv_cell(&wr, w, 0), csv_cell(&wr, w, 3)};
        int g = find(&gr, rkeys, v, 2);
        cr_assert_geq(g, 0, "no row %s layer %s", v[0], v[1]);
        cmp_num(&gr, g, &wr, w, "mi_bits", 2e-9, 0, v[0]);
        cr_expect_str_eq(csv_cell(&gr, g, csv_col(&gr, "cell")), csv_cell(&wr, w, 2));
    }
    csv_table_free(&got); csv_table_free(&want); csv_table_free(&gr); csv_table_free(&wr);
    tu_rmrf(dir);
    free(dir); free(want_p); free(want_runs_p); free(got_p); free(got_runs_p);
}

/* ---------------------------------------------------------------- claims */

static void claims_fixture(char **dir, CsvTable *got, char **md) {
    *dir = fixture_results();
    char *ini = fixture("claims.ini"), *out = tu_path(*dir, "CLAIMS.md"), *csv = tu_path(*dir, "CLAIMS.csv");
    Err err = {0};
    cr_assert_eq(claims_run(ini, *dir, out, &err), 0, "%s", err.msg);
    cr_assert_eq(csv_read_file(csv, got, &err), 0, "%s", err.msg);
    *md = slurp(out, NULL);
    cr_assert(*md);
    cr_expect_eq(tu_count_tmp_files(*dir), 0);
    free(ini); free(out); free(csv);
}

Test(claims, every_figure_and_verdict_matches_the_independent_computation) {
    char *dir, *md, *want_p = fixture("expected_claims.csv");
    CsvTable got, want;
    Err err = {0};
    claims_fixture(&dir, &got, &md);
    cr_assert_eq(csv_read_file(want_p, &want, &err), 0, "%s", err.msg);
    cr_expect_eq(got.nrows, want.nrows, "rows: got %d, expected %d", got.nrows, want.nrows);
    static const char *const keys[] = {"claim", "row"};
    int checked = 0;
    for (int w = 0; w < want.nrows; w++) {
        const char *v[2] = {csv_cell(&want, w, 0), csv_cell(&want, w, 2)};
        int g = find(&got, keys, v, 2);
        cr_assert_geq(g, 0, "no row '%s' of claim %s in CLAIMS.csv", v[1], v[0]);
        for (int k = 1; k < want.ncols; k++) {
            const char *col = want.header[k];
            if (!strcmp(col, "row")) continue;
            if (!strcmp(col, "claim_verdict") || !strcmp(col, "verdict") || !strcmp(col, "n")) {
                cr_expect_str_eq(csv_cell(&got, g, csv_col(&got, col)), csv_cell(&want, w, k), "%s %s %s", v[0], v[1], col);
                continue;
            }
            /* tables print %.6f (p %.6g); the claim's p uses se from the printed interval */
            int p = !strcmp(col, "p") || !strcmp(col, "p_holm");
            checked += cmp_num(&got, g, &want, w, col, p ? 1e-9 : 1.1e-6, p ? 2e-3 : 0, v[0]);
        }
    }
    cr_expect_geq(checked, 60, "only %d figures compared", checked);
    csv_table_free(&got); csv_table_free(&want);
    tu_rmrf(dir);
    free(dir); free(md); free(want_p);
}

/* A paired row shows its training cost beside the accuracy (issue 16): the
 * ratios of the cell's mean train_seconds and flops_train (bin/ewa aggregate)
 * to its baseline's, in CLAIMS.csv and in the claim's table. */
/* dir/t/runs.csv with runs_text, aggregated into dir/t/ against method=dense;
 * returns dir/t. */
static char *aggregated_table_dir(const char *dir, const char *runs_text) {
    char *tdir = tu_path(dir, "t"), *runs;
    cr_assert_eq(mkdir(tdir, 0755), 0);
    runs = write_text(tdir, "runs.csv", runs_text);
    Err err = {0};
    cr_assert_eq(aggregate_runs(runs, tdir, NULL, "method=dense", 0, &err), 0, "%s", err.msg);
    free(runs);
    return tdir;
}

/* bin/ewa aggregate replaces its outputs as a set: when one of them cannot be
 * replaced (here table.md is a directory), the others keep their previous
 * contents (table.csv was replaced before, leaving a mixed set) and no
 * staging directory is left behind. */
Test(claims, aggregate_failure_leaves_the_previous_outputs) {
    char *dir = tu_tmpdir();
    const char *runs1 = "run_id,status,final_top1,seed,method\n"
                        "a,ok,0.50,0,dense\nb,ok,0.60,1,dense\nd,ok,0.52,0,ewa\ne,ok,0.61,1,ewa\n";
    char *tdir = aggregated_table_dir(dir, runs1);
    char *csv = tu_path(tdir, "table.csv"), *md = tu_path(tdir, "table.md");
    char *before = slurp(csv, NULL);
    cr_assert_eq(unlink(md), 0);
    cr_assert_eq(mkdir(md, 0755), 0);
    char *runs = write_text(tdir, "runs.csv", "run_id,status,final_top1,seed,method\n"
                                              "a,ok,0.40,0,dense\nb,ok,0.60,1,dense\nd,ok,0.52,0,ewa\ne,ok,0.61,1,ewa\n");
    Err err = {0};
    cr_assert_neq(aggregate_runs(runs, tdir, NULL, "method=dense", 0, &err), 0);
    cr_expect(strstr(err.msg, "table.md") && strstr(err.msg, "nothing was replaced"), "%s", err.msg);
    char *after = slurp(csv, NULL);
    cr_expect_str_eq(after, before, "table.csv must keep its previous contents");
    DIR *d = opendir(tdir);
    cr_assert(d);
    for (struct dirent *e; (e = readdir(d));)
        cr_expect(strncmp(e->d_name, ".aggregate-staging-", 19), "left behind: %s", e->d_name);
    closedir(d);
    tu_rmrf(dir);
    free(runs); free(csv); free(md); free(before); free(after); free(tdir); free(dir);
}

Test(claims, paired_rows_report_the_training_cost_ratio) {
    char *dir = tu_tmpdir();
    char *tdir = aggregated_table_dir(dir,
                            "run_id,status,final_top1,seed,method,train_seconds,flops_train\n"
                            "a,ok,0.50,0,dense,100,3e12\nb,ok,0.60,1,dense,100,3e12\nc,ok,0.70,2,dense,100,3e12\n"
                            "d,ok,0.52,0,ewa,110,3e12\ne,ok,0.61,1,ewa,110,3e12\nf,ok,0.73,2,ewa,110,3e12\n");
    Err err = {0};
    char *ini = write_text(dir, "claims.ini", "[claim.x]\ntext = t\ntest = paired\ntable = t\nselect = method=ewa\n"
                                              "baseline = method=dense\ndirection = greater\nprimary = pooled\n");
    char *out = tu_path(dir, "CLAIMS.md"), *csv = tu_path(dir, "CLAIMS.csv");
    cr_assert_eq(claims_run(ini, dir, out, &err), 0, "%s", err.msg);
    CsvTable t;
    cr_assert_eq(csv_read_file(csv, &t, &err), 0, "%s", err.msg);
    int rs = csv_col(&t, "train_seconds_ratio"), rf = csv_col(&t, "flops_train_ratio"), rr = csv_col(&t, "row");
    cr_assert(rs >= 0 && rf >= 0);
    int seen = 0, seen_pooled = 0;
    for (int r = 0; r < t.nrows; r++) {
        if (!strcmp(csv_cell(&t, r, rr), "pooled")) {   /* a pooled row has no cost of its own (was 0) */
            cr_expect_str_eq(csv_cell(&t, r, rs), "");
            cr_expect_str_eq(csv_cell(&t, r, rf), "");
            seen_pooled++;
            continue;
        }
        cr_expect_str_eq(csv_cell(&t, r, rs), "1.1");
        cr_expect_str_eq(csv_cell(&t, r, rf), "1");
        seen++;
    }
    cr_expect_eq(seen, 1);
    cr_expect_eq(seen_pooled, 1);
    char *md = slurp(out, NULL);
    cr_expect(strstr(md, "| training cost vs baseline |") && strstr(md, "| 1.10x s, 1.00x FLOPs |"), "%s", md);
    cr_expect(!strstr(md, "0.00x"), "%s", md);
    csv_table_free(&t);
    tu_rmrf(dir);
    free(dir); free(tdir); free(ini); free(out); free(csv); free(md);
}

/* A claim has no data while its grid is unfinished: a plan.csv beside the
 * runs (docs/DESIGN.md 8.5) lists a run with no row, and the table there
 * (aggregated earlier, or with --partial) gives no verdict. */
Test(claims, unfinished_grid_has_no_data) {
    char *dir = tu_tmpdir();
    char *tdir = aggregated_table_dir(dir, "run_id,status,final_top1,seed,method\n"
                                           "a,ok,0.50,0,dense\nb,ok,0.60,1,dense\nd,ok,0.52,0,ewa\ne,ok,0.61,1,ewa\n");
    char *vs = tu_path(tdir, "vs_dense"), *truns = tu_path(tdir, "runs.csv");   /* its runs against a baseline, by hand */
    Err err = {0};
    cr_assert_eq(aggregate_runs(truns, vs, NULL, "method=dense", 0, &err), 0, "%s", err.msg);
    char *plan = write_text(tdir, "plan.csv", "run_id,seed,sweep\na,0,\nb,1,\nd,0,\ne,1,\nf,2,\n");
    char *ini = write_text(dir, "claims.ini", "[claim.x]\ntext = t\ntest = paired\ntable = t\nselect = method=ewa\n"
                                              "baseline = method=dense\ndirection = greater\nprimary = all\n"
                                              "[claim.y]\ntext = t\ntest = paired\ntable = t/vs_dense\n"
                                              "select = method=ewa\nbaseline = method=dense\ndirection = greater\n"
                                              "primary = all\n");
    char *out = tu_path(dir, "CLAIMS.md"), *csv = tu_path(dir, "CLAIMS.csv");
    cr_assert_eq(claims_run(ini, dir, out, &err), 0, "%s", err.msg);
    CsvTable t;
    cr_assert_eq(csv_read_file(csv, &t, &err), 0, "%s", err.msg);
    cr_assert_eq(t.nrows, 2);
    cr_expect_str_eq(csv_cell(&t, 0, 1), "no data");
    cr_expect_str_eq(csv_cell(&t, 1, 1), "no data", "a vs_* table is read with its parent's runs and plan");
    csv_table_free(&t);
    char *md = slurp(out, NULL);
    cr_expect(strstr(md, "1 of the 5 runs of its grid's plan.csv have no row yet"), "%s", md);
    free(md);
    /* the missing run recorded: a verdict again */
    char *runs = write_text(tdir, "runs.csv", "run_id,status,final_top1,seed,method\n"
                                              "a,ok,0.50,0,dense\nb,ok,0.60,1,dense\nd,ok,0.52,0,ewa\ne,ok,0.61,1,ewa\n"
                                              "f,failed,,2,ewa\n");
    cr_assert_eq(claims_run(ini, dir, out, &err), 0, "%s", err.msg);
    cr_assert_eq(csv_read_file(csv, &t, &err), 0, "%s", err.msg);
    cr_expect_str_neq(csv_cell(&t, 0, 1), "no data");
    cr_expect_str_neq(csv_cell(&t, 1, 1), "no data");
    csv_table_free(&t);
    tu_rmrf(dir);
    free(dir); free(tdir); free(plan); free(ini); free(out); free(csv); free(runs); free(vs); free(truns);
}

/* A runs.csv whose ok row holds no number: the claim has no data, named, and
 * claims does not crash (load_runs freed the set and claims freed it again). */
Test(claims, malformed_runs_row_is_no_data_not_a_crash) {
    char *dir = tu_tmpdir();
    char *tdir = aggregated_table_dir(dir, "run_id,status,final_top1,seed,method\n"
                                           "a,ok,0.50,0,dense\nb,ok,0.60,1,dense\nd,ok,0.52,0,ewa\ne,ok,0.61,1,ewa\n");
    char *runs = write_text(tdir, "runs.csv", "run_id,status,final_top1,seed,method\n"
                                              "a,ok,0.50,0,dense\nb,ok,xx,1,dense\nd,ok,0.52,0,ewa\ne,ok,0.61,1,ewa\n");
    char *ini = write_text(dir, "claims.ini", "[claim.x]\ntext = t\ntest = paired\ntable = t\nselect = method=ewa\n"
                                              "baseline = method=dense\ndirection = greater\nprimary = all\n");
    char *out = tu_path(dir, "CLAIMS.md"), *csv = tu_path(dir, "CLAIMS.csv");
    Err err = {0};
    cr_assert_eq(claims_run(ini, dir, out, &err), 0, "%s", err.msg);
    CsvTable t;
    cr_assert_eq(csv_read_file(csv, &t, &err), 0, "%s", err.msg);
    cr_expect_str_eq(csv_cell(&t, 0, 1), "no data");
    csv_table_free(&t);
    char *md = slurp(out, NULL);
    cr_expect(strstr(md, "'xx'"), "%s", md);
    tu_rmrf(dir);
    free(dir); free(tdir); free(runs); free(ini); free(out); free(csv); free(md);
}

/* A table that exists but is not what bin/ewa aggregate writes is an error
 * naming the file, row and column (exit 1, nothing written), never "no
 * data" or a verdict read from garbage; a --results that is no directory is
 * a usage error. The table is aggregate's own, then one cell is broken. */
#define OK_CLAIM_TEXT "[claim.a]\ntext = t\ntest = paired\ntable = x\ndirection = greater\n"

static void expect_broken_cell(const char *col, const char *value, const char *want) {
    char *dir = tu_tmpdir();
    char *tdir = aggregated_table_dir(dir, "run_id,status,final_top1,seed,method\n"
                                           "a,ok,0.50,0,dense\nb,ok,0.60,1,dense\nc,ok,0.70,2,dense\n"
                                           "d,ok,0.52,0,ewa\ne,ok,0.61,1,ewa\nf,ok,0.73,2,ewa\n");
    Err err = {0};
    char *table = tu_path(tdir, "table.csv");
    CsvTable t;
    cr_assert_eq(csv_read_file(table, &t, &err), 0, "%s", err.msg);
    int c = csv_col(&t, col), r = 0;
    cr_assert_geq(c, 0, "table.csv has no column %s", col);
    while (r < t.nrows && strcmp(csv_cell(&t, r, csv_col(&t, "method")), "ewa")) r++;
    cr_assert_lt(r, t.nrows);
    free(t.cells[(size_t)r * t.ncols + c]);
    t.cells[(size_t)r * t.ncols + c] = strdup(value);
    cr_assert_eq(csv_write_file(table, t.ncols, (const char *const *)t.header, t.nrows,
                                (const char *const *)t.cells, &err), 0, "%s", err.msg);
    char *ini = write_text(dir, "claims.ini", "[claim.x]\ntext = t\ntest = paired\ntable = t\nselect = method=ewa\n"
                                              "baseline = method=dense\ndirection = greater\n");
    char *out = tu_path(dir, "CLAIMS.md");
    cr_expect_eq(claims_run(ini, dir, out, &err), ERR_RUNTIME, "%s = '%s' accepted", col, value);
    char where[64];
    snprintf(where, sizeof where, "line %d, column %s = '%s' %s", r + 2, col, value, want);
    cr_expect(strstr(err.msg, "claim x: ") && strstr(err.msg, table) && strstr(err.msg, where),
              "message '%s' should name %s and '%s'", err.msg, table, where);
    cr_expect(!tu_file_exists(out), "nothing is written from a broken table");
    csv_table_free(&t);
    tu_rmrf(dir);
    free(dir); free(tdir); free(table); free(ini); free(out);
}

Test(claims, a_broken_table_is_an_error_not_no_data) {
    expect_broken_cell("diff", "abc", "is not a number");
    expect_broken_cell("diff", "nan", "is not a number");
    expect_broken_cell("ci_high", "1e999", "is not a number");
    expect_broken_cell("ci_low", "5", "is above ci_high");
    expect_broken_cell("p", "2", "is not a probability");
    expect_broken_cell("mde", "-1", "is negative");
    expect_broken_cell("n_pairs", "1e9", "is not a whole number of pairs");
    Err err = {0};
    char *dir = tu_tmpdir(), *ini = write_text(dir, "claims.ini", OK_CLAIM_TEXT), *out = tu_path(dir, "C.md");
    cr_expect_eq(claims_run(ini, "/nonexistent/results", out, &err), ERR_USAGE);
    cr_expect(strstr(err.msg, "--results /nonexistent/results: no such directory"), "%s", err.msg);
    cr_expect(!tu_file_exists(out));
    tu_rmrf(dir);
    free(dir); free(ini); free(out);
}

/* Each verdict kind occurs (the expected file says which claim gets which). */
Test(claims, each_verdict_kind_and_its_reason) {
    char *dir, *md;
    CsvTable got;
    claims_fixture(&dir, &got, &md);
    static const char *const expect[][2] = {
        {"sup", "supported"},         {"sup_missing", "inconclusive"}, {"con", "contradicted"},
        {"inc", "inconclusive"},      {"ni", "supported"},             {"ni_tight", "inconclusive"},
        {"missing", "no data"},       {"wrong_baseline", "no data"},   {"falls", "supported"},
        {"flat", "supported"},        {"flat_broken", "contradicted"}, {"routing", "supported"},
        {"cost", "inconclusive"}};
    for (size_t i = 0; i < sizeof expect / sizeof *expect; i++) {
        const char *k[1] = {"claim"}, *v[1] = {expect[i][0]};
        int r = find(&got, k, v, 1);
        cr_assert_geq(r, 0, "claim %s missing", expect[i][0]);
        cr_expect_str_eq(csv_cell(&got, r, 1), expect[i][1], "claim %s", expect[i][0]);
    }
    cr_expect(strstr(md, "## (missing) a table that does not exist\n"), "%s", md);
    cr_expect(strstr(md, "nothere/table.csv does not exist"), "missing table: the reason names it");
    cr_expect(strstr(md, "this claim needs a baseline cell with method=moe"), "wrong baseline: the reason");
    cr_expect(strstr(md, "No row for dataset=Z."), "require: the missing setting is named");
    cr_expect(strstr(md, "fewer than 2 pairs"), "the one-pair cell is a row without a test");
    cr_expect(strstr(md, "[sup/table.csv](sup/table.csv)"), "links are relative to CLAIMS.md");
    cr_expect(strstr(md, "`sup/forest.png` (missing)"), "a named figure that is not there");
    cr_expect(strstr(md, "**1 from a dirty tree**"), "the dirty run of sup is reported");
    cr_expect(strstr(md, "`inc/runs.csv` not found: commits unknown"), "no runs.csv: provenance unknown");
    cr_expect(strstr(md, "at 1 commit (`abc123`)"), "the commit of the runs");
    cr_expect(strstr(md, "Inference cost: every compared row has its baseline's `params_inference` and "
                         "`flops_inference` (2 rows)."), "equal_cost, equal");
    cr_expect(strstr(md, "1 row differs from the baseline in inference cost") &&
                  strstr(md, "inference cost differs from the baseline's: params 1500 vs 1000, FLOPs 20000 vs 20000"),
              "equal_cost, a row that differs");
    csv_table_free(&got);
    tu_rmrf(dir);
    free(dir); free(md);
}

/* A slope claim reads its runs.csv, but like every claim it has no data
 * until its table is aggregated (CLAIMS.md's rule; the campaign aggregates a
 * table only when every cell has its seeds): with runs.csv and no table.csv
 * it reported a verdict from whatever runs existed. */
Test(claims, slope_claim_without_its_table_has_no_data) {
    char *dir = fixture_results(), *table = tu_path(dir, "vimoe/table.csv");
    cr_assert_eq(unlink(table), 0);
    char *ini = fixture("claims.ini"), *out = tu_path(dir, "CLAIMS.md"), *csv = tu_path(dir, "CLAIMS.csv");
    Err err = {0};
    cr_assert_eq(claims_run(ini, dir, out, &err), 0, "%s", err.msg);
    CsvTable got;
    cr_assert_eq(csv_read_file(csv, &got, &err), 0, "%s", err.msg);
    static const char *const slope_claims[] = {"falls", "flat", "flat_broken"};
    for (int i = 0; i < 3; i++) {
        const char *k[1] = {"claim"}, *v[1] = {slope_claims[i]};
        int r = find(&got, k, v, 1);
        cr_assert_geq(r, 0, "claim %s missing", slope_claims[i]);
        cr_expect_str_eq(csv_cell(&got, r, 1), "no data", "claim %s", slope_claims[i]);
    }
    char *md = slurp(out, NULL);
    cr_expect(strstr(md, "vimoe/table.csv does not exist"), "the reason names the table");
    csv_table_free(&got);
    tu_rmrf(dir);
    free(dir); free(table); free(ini); free(out); free(csv); free(md);
}

/* ---------------------------------------------------------------- config errors */

static void expect_config_error(const char *text, const char *want) {
    char *dir = tu_tmpdir(), *ini = write_text(dir, "claims.ini", text), *out = tu_path(dir, "CLAIMS.md");
    Err err = {0};
    cr_expect_eq(claims_run(ini, dir, out, &err), ERR_USAGE, "accepted:\n%s", text);
    cr_expect(strstr(err.msg, ini) && strstr(err.msg, want), "message '%s' should name %s and '%s'", err.msg, ini,
              want);
    cr_expect(!tu_file_exists(out), "nothing is written on a config error");
    free(ini); free(out);
    tu_rmrf(dir);
    free(dir);
}

#define OK_CLAIM OK_CLAIM_TEXT

Test(claims, config_errors_name_file_and_line) {
    expect_config_error(OK_CLAIM "colour = red\n", "line 6: [claim.a] unknown key 'colour'");
    expect_config_error(OK_CLAIM "direction = up\n", "line 6: [claim.a] direction 'up': expected greater | less | flat");
    expect_config_error(OK_CLAIM "margin = -1\n", "line 6: [claim.a] margin '-1'");
    expect_config_error("[claim.a]\ntext = t\ntest = paired\ntable = x\ndirection = flat\n",
                        "line 1: [claim.a] direction = flat needs a margin > 0");
    expect_config_error("[claim.a]\ntext = t\ntest = slope\ntable = x\ndirection = less\n",
                        "line 1: [claim.a] test = slope needs x");
    expect_config_error("[claim.a]\ntest = paired\ntable = x\ndirection = less\n", "line 1: [claim.a] text is missing");
    expect_config_error(OK_CLAIM "select = method\n", "line 6: [claim.a] select: 'method' is not of the form key=value");
    expect_config_error(OK_CLAIM "require = a=1, b\n", "line 6: [claim.a] require: 'b' is not of the form key=value");
    expect_config_error(OK_CLAIM "primary = pooled m\n", "line 6: [claim.a] primary: 'm' is not of the form key=value");
    expect_config_error(OK_CLAIM "primary = best\n", "primary 'best'");
    expect_config_error(OK_CLAIM OK_CLAIM, "line 6: [claim.a] is defined twice (first at line 1)");
    expect_config_error("[claims]\ntext = t\n", "line 1: section [claims]: expected [claim.ID]");
    expect_config_error("text = t\n" OK_CLAIM, "line 1: key 'text' is outside a [claim.ID] section");
    expect_config_error("; nothing\n", "no [claim.ID] section");
    expect_config_error(OK_CLAIM "equal_cost = yes\n", "line 6: [claim.a] equal_cost 'yes': expected 0 or 1");
    char longl[4000];
    snprintf(longl, sizeof longl, OK_CLAIM "source = %02990d\n", 0);
    expect_config_error(longl, "line 6: line too long");
}

Test(claims, command_line) {
    char *dir = tu_tmpdir();
    int k = 0;
    const char *bad[] = {"claims", "--config", "/nonexistent/claims.ini", "--out", "x.md", NULL};
    Proc p = run_list(dir, &k, bad);
    cr_expect_eq(p.status, 2, "stderr: %s", p.err);
    cr_expect(strstr(p.err, "/nonexistent/claims.ini"), "%s", p.err);
    proc_free(&p);
    char *ini = fixture("claims.ini"), *res = fixture("results"), *out = tu_path(dir, "sub/CLAIMS.md");
    const char *ok[] = {"claims", "--config", ini, "--results", res, "--out", out, NULL};
    p = run_list(dir, &k, ok);
    cr_expect_eq(p.status, 0, "stderr: %s", p.err);
    cr_expect(strstr(p.out, "claim sup: supported\n") && strstr(p.out, "claim missing: no data\n"), "%s", p.out);
    cr_expect(tu_file_exists(out));
    proc_free(&p);
    free(ini); free(res); free(out);
    tu_rmrf(dir);
    free(dir);
}
