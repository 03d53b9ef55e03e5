/* Tests of `ewa regress` (experiments/regress.h, platform.h): the exact mode
 * (a changed checkpoint_sha256 fails naming run, cell, field, old and new),
 * the platform fallback of auto, the stat mode's p and Holm p against values
 * computed independently (tests/fixtures/regress/make_fixtures.py: mpmath,
 * not GSL), zero-variance cells, the reference writer and the command line. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "../experiments/aggregate.h"
#include "../experiments/csvio.h"
#include "../experiments/platform.h"
#include "../experiments/regress.h"
#include "../core/fsutil.h"
#include "testproc.h"
#include "testutil.h"

static char *tmp;
static int n_spawned;
static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void) {
    tu_rmrf(tmp);
    free(tmp);
}
TestSuite(regress, .init = setup, .fini = teardown, .timeout = 60);

#define EWA(...) run_list(tmp, &n_spawned, (const char *const[]){__VA_ARGS__, NULL})

static char *fixture(const char *name) {
    char *p = tu_fixture_path(__FILE__, "regress", name);
    if (!p) cr_skip_test("fixture %s not found (run from the repository root)", name);
    return p;
}

/* A results directory tmp/<name> holding the fixture as runs.csv, aggregated. */
static char *results_dir(const char *name, const char *fx) {
    char *dir = tu_path(tmp, name), *src = fixture(fx);
    cr_assert_eq(mkdir(dir, 0755), 0);
    size_t len = 0;
    char *text = slurp(src, &len);
    free(tu_write(dir, "runs.csv", text, len));
    Err e = {0};
    cr_assert_eq(aggregate_runs(src, dir, NULL, "moe.method=dense", 0, &e), 0, "%s", e.msg);
    free(text); free(src);
    return dir;
}

/* regress_runs of fixture fx against the reference directory ref (written by
 * the writer); the printed report into *text (malloc'd). */
static RegressResult check(const char *ref, const char *fx, RegressMode mode, char **text) {
    char *runs = tu_path(ref, "runs.csv"), *plat = tu_path(ref, "platform.csv"), *nw = fixture(fx);
    char *log = tu_path(tmp, "report.txt");
    FILE *f = fopen(log, "w");
    RegressResult r;
    Err e = {0};
    cr_assert_eq(regress_runs(runs, plat, nw, mode, 0, "smoke", f, &r, &e), 0, "%s: %s", fx, e.msg);
    fclose(f);
    *text = slurp(log, NULL);
    free(runs); free(plat); free(nw); free(log);
    return r;
}

static char *reference(void) {
    char *from = results_dir("results", "ref.csv"), *ref = tu_path(tmp, "reference");
    Err e = {0};
    FILE *devnull = fopen("/dev/null", "w");
    cr_assert_eq(regress_write_reference(ref, from, 0, devnull, &e), 0, "%s", e.msg);
    fclose(devnull);
    free(from);
    return ref;
}

Test(regress, writer_copies_and_fingerprints) {
    char *ref = reference();
    static const char *const files[] = {"runs.csv", "table.csv", "table.md", "platform.csv"};
    for (int k = 0; k < 4; k++) {
        char *p = tu_path(ref, files[k]);
        cr_assert(fs_file_nonempty(p), "%s missing", p);
        free(p);
    }
    cr_assert_eq(tu_count_tmp_files(ref), 0);
    char *pp = tu_path(ref, "platform.csv");
    Platform p;
    int found = 0;
    Err e = {0};
    cr_assert_eq(platform_read(pp, &p, &found, &e), 0, "%s", e.msg);
    cr_assert_eq(found, 1);
    static const char *const want[PLATFORM_NFIELDS] = {
        "Test CPU @ 2.0GHz", "OpenBLAS 0.3.21 USE_OPENMP Zen", "Zen", "oneDNN 2.6.3 isa 0x7",
        "gcc 12.2.0", "-O3 -march=native (target avx2 fma)", "1"};
    for (int i = 0; i < PLATFORM_NFIELDS; i++) cr_assert_str_eq(p.val[i], want[i], "%s", platform_key(i));
    free(pp); free(ref);
}

/* A table.csv older than its runs.csv (runs recorded after the last
 * aggregate) is not copied into a reference: an error saying to aggregate. */
Test(regress, writer_refuses_tables_older_than_their_runs) {
    char *from = results_dir("results", "ref.csv"), *ref = tu_path(tmp, "reference");
    char *table = tu_path(from, "table.csv");
    struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    cr_assert_eq(utimensat(AT_FDCWD, table, old, 0), 0);
    Err e = {0};
    FILE *devnull = fopen("/dev/null", "w");
    cr_assert_eq(regress_write_reference(ref, from, 0, devnull, &e), ERR_RUNTIME);
    cr_expect(strstr(e.msg, "table.csv: older than") && strstr(e.msg, "bin/ewa aggregate"), "%s", e.msg);
    char *copied = tu_path(ref, "table.csv");
    cr_expect(!fs_file_nonempty(copied), "nothing copied");
    fclose(devnull);
    free(from); free(ref); free(table); free(copied);
}

Test(regress, exact_passes_on_the_same_runs_and_names_a_changed_sha) {
    char *ref = reference(), *text;
    RegressResult r = check(ref, "same.csv", REGRESS_AUTO, &text);
    cr_assert_eq(r.mode, REGRESS_EXACT, "%s", text);
    cr_assert_eq(r.nfail, 0, "%s", text);
    cr_assert_eq(r.nchecked, 12, "%s", text);
    cr_assert(strstr(text, "12 of 12 reference runs reproduced bit for bit"), "%s", text);
    regress_result_free(&r); free(text);

    r = check(ref, "sha_changed.csv", REGRESS_AUTO, &text);
    cr_assert_eq(r.mode, REGRESS_EXACT, "%s", text);
    cr_assert_eq(r.nfail, 1, "%s", text);
    cr_assert(strstr(text, "FAIL  run A-ewa-1  cell dataset=A method=ewa  checkpoint_sha256: reference "),
              "%s", text);
    cr_assert(strstr(text, ", new 0000000000000000000000000000000000000000000000000000000000000000\n"), "%s", text);
    regress_result_free(&r); free(text);
    /* the same values with another SHA pass the statistical check */
    r = check(ref, "sha_changed.csv", REGRESS_STAT, &text);
    cr_assert_eq(r.nfail, 0, "%s", text);
    regress_result_free(&r); free(text); free(ref);
}

Test(regress, another_platform_falls_back_to_stat) {
    char *ref = reference(), *text;
    RegressResult r = check(ref, "other_platform.csv", REGRESS_AUTO, &text);
    cr_assert_eq(r.mode, REGRESS_STAT, "%s", text);
    cr_assert(strstr(text, "regress: platform differs: threads; falling back to stat\n"
                           "  threads: reference '1', new '2'\n"), "%s", text);
    cr_assert_eq(r.nfail, 0, "%s", text);
    cr_assert_eq(r.ntests, 6, "%s", text);
    regress_result_free(&r); free(text);
    /* --mode exact refuses instead */
    char *runs = tu_path(ref, "runs.csv"), *plat = tu_path(ref, "platform.csv"), *nw = fixture("other_platform.csv");
    FILE *devnull = fopen("/dev/null", "w");
    Err e = {0};
    cr_assert_eq(regress_runs(runs, plat, nw, REGRESS_EXACT, 0, "smoke", devnull, &r, &e), ERR_RUNTIME);
    cr_assert(strstr(e.msg, "--mode exact: cannot check bit for bit: platform differs: threads"), "%s", e.msg);
    regress_result_free(&r);
    /* a reference without platform.csv or without checkpoint_sha256 says so and falls back */
    cr_assert_eq(regress_runs(runs, NULL, nw, REGRESS_EXACT, 0, "smoke", devnull, &r, &e), ERR_RUNTIME);
    cr_assert(strstr(e.msg, "reference has no platform.csv"), "%s", e.msg);
    regress_result_free(&r);
    fclose(devnull);
    free(runs); free(plat); free(nw); free(ref);
}

Test(regress, old_reference_without_sha_falls_back_to_stat) {
    char *old = fixture("ref_nosha.csv"), *nw = fixture("same.csv"), *log = tu_path(tmp, "r.txt");
    FILE *f = fopen(log, "w");
    RegressResult r;
    Err e = {0};
    cr_assert_eq(regress_runs(old, NULL, nw, REGRESS_AUTO, 0, "smoke", f, &r, &e), 0, "%s", e.msg);
    fclose(f);
    char *text = slurp(log, NULL);
    cr_assert(strstr(text, "regress: reference has no checkpoint_sha256; regenerate it with "
                           "`make reference PROFILE=smoke`"), "%s", text);
    cr_assert(strstr(text, "; falling back to stat\n"), "%s", text);
    cr_assert_eq(r.mode, REGRESS_STAT);
    cr_assert_eq(r.nfail, 0, "%s", text);
    regress_result_free(&r);
    free(text); free(old); free(nw); free(log);
}

/* Every stat test of every fixture against expected.csv (p and p_holm within
 * 1e-9 relative, n, means, verdict). */
Test(regress, stat_matches_the_independent_computation) {
    char *ref = reference(), *exp = fixture("expected.csv");
    CsvTable w;
    Err e = {0};
    cr_assert_eq(csv_read_file(exp, &w, &e), 0, "%s", e.msg);
    static const char *const fixtures[] = {"other_platform", "shift1", "shift10", "holm", "zerovar_differ"};
    int checked = 0;
    for (int k = 0; k < 5; k++) {
        char name[64], *text;
        snprintf(name, sizeof name, "%s.csv", fixtures[k]);
        RegressResult r = check(ref, name, REGRESS_STAT, &text);
        int nfail_want = 0;
        for (int row = 0; row < w.nrows; row++) {
            if (strcmp(csv_cell(&w, row, 0), fixtures[k])) continue;
            const char *cell = csv_cell(&w, row, 1);
            int is_diff = !strcmp(csv_cell(&w, row, 2), "diff"), t = 0;
            while (t < r.ntests && (strcmp(r.tests[t].cell, cell) || r.tests[t].is_diff != is_diff)) t++;
            cr_assert_lt(t, r.ntests, "%s: no test %s %s\n%s", name, cell, csv_cell(&w, row, 2), text);
            const RegressTest *g = &r.tests[t];
            cr_assert_eq(g->n_ref, atoi(csv_cell(&w, row, 3)));
            cr_assert_eq(g->n_new, atoi(csv_cell(&w, row, 4)));
            double want[4] = {atof(csv_cell(&w, row, 5)), atof(csv_cell(&w, row, 6)), atof(csv_cell(&w, row, 7)),
                              atof(csv_cell(&w, row, 8))},
                   got[4] = {g->mean_ref, g->mean_new, g->p, g->p_holm};
            for (int q = 0; q < 4; q++)
                cr_assert_leq(fabs(got[q] - want[q]), 1e-9 * fmax(fabs(want[q]), 1e-6) + 1e-15,
                              "%s %s %s field %d: %.12g vs %.12g", name, cell, csv_cell(&w, row, 2), q, got[q],
                              want[q]);
            cr_assert_eq(g->fail, atoi(csv_cell(&w, row, 9)), "%s %s\n%s", name, cell, text);
            nfail_want += g->fail;
            checked++;
        }
        cr_assert_eq(r.nfail, nfail_want, "%s\n%s", name, text);
        if (!strcmp(fixtures[k], "shift10"))
            cr_assert(strstr(text, "FAIL  dataset=A method=ewa  top-1: reference 0.707500 (n 3), new "), "%s", text);
        if (!strcmp(fixtures[k], "zerovar_differ"))
            cr_assert(strstr(text, "FAIL  dataset=B method=dense  top-1: reference 0.250000 (n 3), new 0.260000 "
                                   "(n 3)  p 0  p_holm 0 (zero variance on both sides: means differ)"), "%s", text);
        if (!strcmp(fixtures[k], "other_platform"))
            cr_assert(strstr(text, "(zero variance on both sides: means equal)"), "%s", text);
        if (!strcmp(fixtures[k], "holm")) {   /* Holm made the difference */
            int raw = 0;
            for (int t = 0; t < r.ntests; t++) raw += r.tests[t].p < REGRESS_ALPHA;
            cr_assert_gt(raw, 0, "%s", text);
            cr_assert_eq(r.nfail, 0, "%s", text);
        }
        regress_result_free(&r);
        free(text);
    }
    cr_assert_eq(checked, 5 * 6);
    csv_table_free(&w);
    free(exp); free(ref);
}

Test(regress, missing_cells_and_runs_fail) {
    char *ref = reference(), *text;
    /* the new runs without dataset B */
    char *src = fixture("same.csv");
    size_t len = 0;
    char *all = slurp(src, &len), *out = malloc(len + 1), *o = out;
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n"))
        if (!strstr(line, ",B,")) o += sprintf(o, "%s\n", line);
    char *nb = tu_write(tmp, "noB.csv", out, strlen(out));
    char *runs = tu_path(ref, "runs.csv"), *log = tu_path(tmp, "r.txt");
    FILE *f = fopen(log, "w");
    RegressResult r;
    Err e = {0};
    cr_assert_eq(regress_runs(runs, NULL, nb, REGRESS_STAT, 0, "smoke", f, &r, &e), 0, "%s", e.msg);
    fclose(f);
    text = slurp(log, NULL);
    cr_assert(strstr(text, "FAIL  dataset=B method=dense: missing from the new runs (reference: 3 ok runs)"), "%s", text);
    cr_assert_eq(r.nfail, 2, "%s", text);
    regress_result_free(&r); free(text);
    f = fopen(log, "w");
    cr_assert_eq(regress_runs(runs, NULL, nb, REGRESS_AUTO, 0, "smoke", f, &r, &e), 0, "%s", e.msg);
    fclose(f);
    regress_result_free(&r);
    free(all); free(out); free(nb); free(runs); free(log); free(src); free(ref);
}

/* The lines of fixture fx whose text contains none of the `drop` strings
 * (the header always kept), as tmp/<name>; returns its path. */
static char *fixture_without(const char *fx, const char *name, const char *const *drop, int ndrop) {
    char *src = fixture(fx);
    size_t len = 0;
    char *all = slurp(src, &len), *out = malloc(len + 1), *o = out;
    int first = 1;
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n"), first = 0) {
        int keep = 1;
        for (int k = 0; k < ndrop && keep && !first; k++) keep = !strstr(line, drop[k]);
        if (keep) o += sprintf(o, "%s\n", line);
    }
    char *path = tu_write(tmp, name, out, strlen(out));
    free(all); free(out); free(src);
    return path;
}

static RegressResult check_path(const char *ref, const char *nw, RegressMode mode, int subset, char **text) {
    char *runs = tu_path(ref, "runs.csv"), *plat = tu_path(ref, "platform.csv"), *log = tu_path(tmp, "r.txt");
    FILE *f = fopen(log, "w");
    RegressResult r;
    Err e = {0};
    cr_assert_eq(regress_runs(runs, plat, nw, mode, subset, "smoke", f, &r, &e), 0, "%s", e.msg);
    fclose(f);
    *text = slurp(log, NULL);
    free(runs); free(plat); free(log);
    return r;
}

/* --subset: a rerun of some of the reference's runs (here seed 1 of every
 * cell, or dataset A only) checks those and passes; a changed one among them
 * still fails; a rerun holding none of the reference's runs fails. Without
 * --subset the same rerun fails (missing runs). */
Test(regress, subset_checks_the_rerun_runs_only) {
    char *ref = reference(), *text;
    static const char *const not_seed1[] = {"-0,", "-2,"};
    char *seed1 = fixture_without("same.csv", "seed1.csv", not_seed1, 2);
    RegressResult r = check_path(ref, seed1, REGRESS_AUTO, 1, &text);
    cr_assert_eq(r.mode, REGRESS_EXACT, "%s", text);
    cr_assert_eq(r.nfail, 0, "%s", text);
    cr_assert_eq(r.nchecked, 4, "%s", text);
    cr_assert(strstr(text, "4 of 4 reference runs reproduced bit for bit (final_top1 and checkpoint_sha256), "
                           "0 differ; 8 not rerun (--subset)"), "%s", text);
    regress_result_free(&r); free(text);
    r = check_path(ref, seed1, REGRESS_AUTO, 0, &text);
    cr_assert_eq(r.nfail, 8, "without --subset the 8 runs not rerun fail: %s", text);
    regress_result_free(&r); free(text);

    char *bad1 = fixture_without("sha_changed.csv", "bad1.csv", not_seed1, 2);   /* A-ewa-1 changed */
    r = check_path(ref, bad1, REGRESS_AUTO, 1, &text);
    cr_assert_eq(r.nfail, 1, "%s", text);
    cr_assert(strstr(text, "FAIL  run A-ewa-1"), "%s", text);
    regress_result_free(&r); free(text);

    /* stat on one seed: no test can be made (one value a side), which fails
     * rather than passing with nothing compared */
    r = check_path(ref, seed1, REGRESS_STAT, 1, &text);
    cr_assert_eq(r.nfail, 1, "%s", text);
    cr_assert(strstr(text, "FAIL  stat: none of the 6 tests could be made"), "%s", text);
    cr_assert(strstr(text, ": 0 failed, 6 not testable"), "the summary counts the tests, not the no-test fail: %s",
              text);
    regress_result_free(&r); free(text);

    /* stat: the cells of dataset B are skipped, A's are tested (3 runs a side) */
    static const char *const dataset_b[] = {",B,"};
    char *only_a = fixture_without("same.csv", "onlyA.csv", dataset_b, 1);
    r = check_path(ref, only_a, REGRESS_STAT, 1, &text);
    cr_assert_eq(r.nfail, 0, "%s", text);
    cr_assert_eq(r.ntests, 3, "top-1 of A dense and A ewa, and A ewa's difference: %s", text);
    cr_assert(strstr(text, "regress stat: 2 reference cells not rerun (--subset)"), "%s", text);
    regress_result_free(&r); free(text);

    /* nothing of the reference rerun: a failure in either mode. The same runs
     * under other run ids (exact mode: no run matched), then under another
     * dataset (stat: no cell matched) */
    char *src = fixture("same.csv"), *txt = slurp(src, NULL);
    for (char *q = txt; (q = strchr(q, '\n')); q++)
        if (q[1] == 'A' || q[1] == 'B') q[1] = 'Z';
    char *renamed = tu_write(tmp, "renamed.csv", txt, strlen(txt));
    r = check_path(ref, renamed, REGRESS_AUTO, 1, &text);
    cr_assert_eq(r.mode, REGRESS_EXACT, "%s", text);
    cr_assert_eq(r.nfail, 1, "%s", text);
    cr_assert(strstr(text, "FAIL  --subset: none of the reference's runs is in the new runs"), "%s", text);
    cr_assert(strstr(text, "0 of 0 reference runs reproduced bit for bit (final_top1 and checkpoint_sha256), 0 differ; "
                           "12 not rerun (--subset)"), "%s", text);
    regress_result_free(&r); free(text);
    for (char *q = txt; (q = strstr(q, ",A,")) || (q = strstr(txt, ",B,")); q = txt) q[1] = 'Q';
    char *other = tu_write(tmp, "other.csv", txt, strlen(txt));
    r = check_path(ref, other, REGRESS_STAT, 1, &text);
    cr_assert_eq(r.nfail, 1, "%s", text);
    cr_assert(strstr(text, "FAIL  --subset: none of the reference's cells is in the new runs"), "%s", text);
    regress_result_free(&r); free(text); free(src); free(txt); free(other);
    free(seed1); free(bad1); free(only_a); free(renamed); free(ref);
}

Test(regress, writer_refuses_dirty_failed_or_unhashed_runs) {
    static const struct { const char *from, *to, *needle; } cases[] = {
        {",abc123,0,", ",abc123,1,", "was built from a tree with uncommitted changes (git_dirty '1')"},
        {",800,ok,", ",800,failed,", "is failed; a reference holds finished runs only"},
    };
    /* the refusals come before anything is written, in this order */
    char *src = fixture("ref.csv");
    for (int k = 0; k < 2; k++) {
        char *orig = slurp(src, NULL), *hit = strstr(orig, cases[k].from);
        cr_assert(hit, "%s not in %s", cases[k].from, src);
        char *text = malloc(strlen(orig) + strlen(cases[k].to) + 1);
        sprintf(text, "%.*s%s%s", (int)(hit - orig), orig, cases[k].to, hit + strlen(cases[k].from));
        size_t len = strlen(text);
        free(orig);
        char name[32];
        snprintf(name, sizeof name, "bad%d", k);
        char *dir = tu_path(tmp, name), *refdir = tu_path(tmp, "never");
        cr_assert_eq(mkdir(dir, 0755), 0);
        free(tu_write(dir, "runs.csv", text, len));
        Err e = {0};
        FILE *devnull = fopen("/dev/null", "w");
        cr_assert_eq(regress_write_reference(refdir, dir, 0, devnull, &e), ERR_RUNTIME);
        fclose(devnull);
        cr_assert(strstr(e.msg, cases[k].needle), "%s", e.msg);
        cr_assert(!tu_file_exists(refdir), "a refused reference was written");
        if (k == 0) {   /* --allow-dirty writes it (a test's reference from a developer's tree) */
            free(tu_write(dir, "table.csv", "cell\n", 5)); free(tu_write(dir, "table.md", "#\n", 2));
            devnull = fopen("/dev/null", "w");
            char *allowed = tu_path(tmp, "allowed");
            cr_assert_eq(regress_write_reference(allowed, dir, 1, devnull, &e), 0, "%s", e.msg);
            fclose(devnull);
            free(allowed);
        }
        free(text); free(dir); free(refdir);
    }
    /* an old runs.csv without checkpoint_sha256 */
    char *old = results_dir("old", "ref_nosha.csv"), *refdir = tu_path(tmp, "never");
    Err e = {0};
    FILE *devnull = fopen("/dev/null", "w");
    cr_assert_eq(regress_write_reference(refdir, old, 0, devnull, &e), ERR_RUNTIME);
    fclose(devnull);
    cr_assert(strstr(e.msg, "has no checkpoint_sha256 column"), "%s", e.msg);
    free(old); free(refdir); free(src);
}

Test(regress, command_line) {
    char *ref = reference(), *same = results_dir("same", "same.csv"), *bad = results_dir("bad", "sha_changed.csv");
    char *table = tu_path(same, "table.csv");
    Proc p = EWA("regress", "--ref", ref, "--new", table);   /* a file stands for its directory */
    cr_assert_eq(p.status, 0, "exit %d\n%s%s", p.status, p.out, p.err);
    cr_assert(strstr(p.out, "exact mode"), "%s", p.out);
    proc_free(&p);
    p = EWA("regress", "--ref", ref, "--new", bad, "--mode", "exact");
    cr_assert_eq(p.status, 1, "exit %d\n%s", p.status, p.out);
    cr_assert(strstr(p.out, "FAIL  run A-ewa-1"), "%s", p.out);
    proc_free(&p);
    p = EWA("regress", "--ref", ref, "--new", bad, "--mode=stat");
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, p.out);
    proc_free(&p);
    p = EWA("regress", "--ref", ref, "--new", bad, "--mode", "bitwise");
    cr_assert_eq(p.status, 2);
    cr_assert(strstr(p.err, "--mode 'bitwise': expected exact, stat or auto"), "%s", p.err);
    proc_free(&p);
    p = EWA("regress", "--write-reference", ref);
    cr_assert_eq(p.status, 2);
    cr_assert(strstr(p.err, "--write-reference DIR and --from RESULTS_DIR go together"), "%s", p.err);
    proc_free(&p);
    p = EWA("regress", "--ref", ref);
    cr_assert_eq(p.status, 2);
    proc_free(&p);
    p = EWA("regress", "--ref", ref, "--new", same, "--subset");
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, p.out);
    cr_assert(strstr(p.out, "; 0 not rerun (--subset)"), "%s", p.out);
    proc_free(&p);
    p = EWA("regress", "--write-reference", ref, "--from", same, "--subset");
    cr_assert_eq(p.status, 2);
    cr_assert(strstr(p.err, "--write-reference takes no --ref, --new, --mode or --subset"), "%s", p.err);
    proc_free(&p);
    char *ref2 = tu_path(tmp, "ref2");
    p = EWA("regress", "--write-reference", ref2, "--from", same);
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.out, "wrote reference"), "%s", p.out);
    proc_free(&p);
    p = EWA("regress", "--help");
    cr_assert_eq(p.status, 0);
    cr_assert(strstr(p.out, "falls back to stat") && strstr(p.out, "--write-reference DIR"), "%s", p.out);
    proc_free(&p);
    free(ref); free(same); free(bad); free(table); free(ref2);
}
