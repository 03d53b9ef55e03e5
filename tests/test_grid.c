/* Tests of the experiment runner (issue 5): grid parsing and expansion, run
 * ids, config errors before any run, aggregation statistics against values
 * computed by hand, the regression check, the runs.csv round trip, and
 * resume after an interruption (SIGKILL, or a lost last row).
 *
 * The end-to-end tests run $EWA_BIN on a tiny Fashion-MNIST-format set
 * generated here (as in test_cli.c: 200 train / 100 test images whose class
 * is drawn as lines) with a tiny model, so each run takes a fraction of a
 * second on one thread. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <glob.h>

#include "../experiments/csvio.h"
#include "../experiments/aggregate.h"
#include "../experiments/grid.h"
#include "../core/fsutil.h"
#include "testproc.h"
#include "testutil.h"

static char *tmp;
static char *data_dir;
static char *base_cfg;

/* ---------------------------------------------------------------- dataset */

enum { N_TRAIN = 200, N_TEST = 100 };

static void setup(void) {
    tiny_data_setup(&tmp, &data_dir, NULL, N_TRAIN, N_TEST);
    char ini[1024];
    snprintf(ini, sizeof ini,
             "[model]\ndim = 16\ndepth = 2\nheads = 2\nmlp_ratio = 2\npatch = 7\n"
             "[data]\ndir = %s\naugment = 0\n"
             "[train]\nepochs = 2\nbatch_size = 32\nlr = 1e-2\nwarmup_epochs = 0\n",
             data_dir);
    base_cfg = tu_write(tmp, "base.ini", ini, strlen(ini));
}

static void teardown(void) {
    tiny_data_teardown(tmp, data_dir);
    free(base_cfg);
}

TestSuite(grid, .init = setup, .fini = teardown, .timeout = 120);

/* A grid file in tmp with base = base.ini (relative) and out = tmp/<out>. */
static char *write_grid(const char *name, const char *body) {
    char text[4096];
    snprintf(text, sizeof text, "[grid]\nbase = base.ini\nout = %s/out\n%s", tmp, body);
    return tu_write(tmp, name, text, strlen(text));
}

/* ---------------------------------------------------------------- processes */

static int n_spawned;

/* proc_wait that lets a child die of a signal (the resume test kills one);
 * here any "Sanitizer" output, warnings included, fails the test. */
static Proc finish(pid_t pid, const char *outp, const char *errp) {
    Proc p = proc_wait(pid, outp, errp, true);
    cr_assert(!strstr(p.err, "Sanitizer") && !strstr(p.err, "runtime error:"), "sanitizer report:\n%s", p.err);
    return p;
}

static Proc run_args(const char *const *args) {
    char o[PROC_PATH], e[PROC_PATH];
    pid_t pid = proc_spawn(tmp, &n_spawned, args, o, e);
    return finish(pid, o, e);
}
#define EWA(...) run_args((const char *const[]){__VA_ARGS__, NULL})

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int sh_in_tmp(char **out, const char *fmt, ...);

static CsvTable read_csv(const char *path) {
    CsvTable t;
    Err e = {0};
    cr_assert_eq(csv_read_file(path, &t, &e), 0, "%s", e.msg);
    return t;
}

static int count_rows_with(const CsvTable *t, const char *col, const char *val) {
    int c = csv_col(t, col), n = 0;
    cr_assert_geq(c, 0, "no column %s", col);
    for (int r = 0; r < t->nrows; r++) n += !strcmp(csv_cell(t, r, c), val);
    return n;
}

/* ---------------------------------------------------------------- values */

Test(grid, split_values) {
    char **v;
    int n = grid_split_values(" dense, ewa ,rmoe", &v);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(v[0], "dense");
    cr_assert_str_eq(v[1], "ewa");
    cr_assert_str_eq(v[2], "rmoe");
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
    n = grid_split_values("every_other, \"1,3\", last:2", &v);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(v[1], "1,3");
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
    cr_assert_eq(grid_split_values("   ", &v), 0);
    cr_assert_eq(grid_split_values("a,,b", &v), -1);
    cr_assert_eq(grid_split_values("a, \"b", &v), -1);
    cr_assert_eq(grid_split_values("a,", &v), -1);
}

/* ---------------------------------------------------------------- expansion */

static const char SWEEP2x3[] =
    "seeds = 0, 1\n"
    "[sweep]\n"
    "moe.method = dense, ewa\n"
    "moe.beta = 0.1, 0.3, 0.5\n"
    "[profile.smoke]\n"
    "train.epochs = 1\n"
    "train.max_steps = 3\n";

static void load_expand(const char *grid, const char *profile, GridSpec *g, GridRun **runs, int *n) {
    Err e = {0};
    cr_assert_eq(grid_load(g, grid, profile, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(grid_expand(g, runs, n, &e), 0, "%s", e.msg);
}

Test(grid, expansion_count_values_and_ids) {
    char *grid = write_grid("g.ini", SWEEP2x3);
    GridSpec g;
    GridRun *runs;
    int n;
    load_expand(grid, "smoke", &g, &runs, &n);
    /* dense ignores moe.beta (methods.h): its three beta values are one
     * training, run once; ewa reads it: three runs */
    cr_assert_eq(n, 2 * (1 + 3), "expanded %d runs", n);
    cr_assert_eq(runs[0].merged, 2);
    cr_assert_eq(runs[1].merged, 0);
    /* out gets the profile appended; base is relative to the grid file */
    char want[1024];
    snprintf(want, sizeof want, "%s/out/smoke", tmp);
    cr_assert_str_eq(g.out, want);
    /* seed outermost, last axis fastest */
    cr_assert_eq(runs[0].seed, 0);
    cr_assert_eq(runs[4].seed, 1);
    cr_assert_str_eq(runs[0].sweep, "moe.method=dense;moe.beta=0.1");
    cr_assert_str_eq(runs[1].sweep, "moe.method=ewa;moe.beta=0.1");
    cr_assert_str_eq(runs[3].sweep, "moe.method=ewa;moe.beta=0.5");
    cr_assert_str_eq(runs[3].cfg.method, "ewa");
    cr_assert_float_eq(runs[3].cfg.beta, 0.5f, 1e-7);
    /* base, profile and seed applied */
    cr_assert_eq(runs[7].cfg.dim, 16);
    cr_assert_eq(runs[7].cfg.epochs, 1);
    cr_assert_eq(runs[7].cfg.max_steps, 3);
    cr_assert_eq(runs[7].cfg.seed, 1);
    /* ids: 16 hex digits, all distinct, differ by seed only through the seed */
    for (int i = 0; i < n; i++) {
        cr_assert_eq(strlen(runs[i].id), 16);
        cr_assert_eq(strspn(runs[i].id, "0123456789abcdef"), 16);
        for (int j = 0; j < i; j++) cr_assert_str_neq(runs[i].id, runs[j].id, "runs %d and %d share an id", i, j);
    }
    cr_assert_str_neq(runs[0].id, runs[4].id, "seeds 0 and 1 share an id");
    /* identical ids on a second invocation, and equal to grid_run_id */
    GridSpec g2;
    GridRun *r2;
    int n2;
    load_expand(grid, "smoke", &g2, &r2, &n2);
    cr_assert_eq(n2, n);
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(r2[i].id, runs[i].id);
        char id[17];
        grid_run_id(&runs[i].cfg, id);
        cr_assert_str_eq(id, runs[i].id);
    }
    /* threads do not change the id; another profile does */
    RunConfig c = runs[3].cfg;
    c.threads = 7;
    char id[17];
    grid_run_id(&c, id);
    cr_assert_str_eq(id, runs[3].id);
    GridSpec g3;
    GridRun *r3;
    int n3;
    load_expand(grid, NULL, &g3, &r3, &n3);
    cr_assert_eq(r3[0].cfg.epochs, 2);
    cr_assert_str_neq(r3[0].id, runs[0].id);
    grid_runs_free(runs, n); grid_runs_free(r2, n2); grid_runs_free(r3, n3);
    grid_free(&g); grid_free(&g2); grid_free(&g3);
    free(grid);
}

Test(grid, profile_replaces_axes_and_seeds) {
    char *grid = write_grid("g.ini",
                            "seeds = 0, 1, 2\n[sweep]\nmoe.method = dense, ewa\n"
                            "train.epochs + train.lr = 1+0.01, 2+0.02\n"
                            "[profile.smoke]\ngrid.seeds = 5\nmoe.method = ewa\n"
                            "train.epochs + train.lr = 3+0.03\ntrain.max_steps = 7\n"
                            "[profile.bad]\ntrain.epochs + train.lr = 3\n");
    GridSpec g;
    GridRun *runs;
    int n;
    Err e = {0};
    cr_assert_eq(grid_load(&g, grid, "bad", NULL, &e), ERR_USAGE);
    cr_assert(strstr(e.msg, "profile.bad") && strstr(e.msg, "2 +-joined parts"), "%s", e.msg);
    load_expand(grid, "smoke", &g, &runs, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(runs[0].seed, 5);
    cr_assert_str_eq(runs[0].sweep, "moe.method=ewa;train.epochs=3;train.lr=0.03");
    cr_assert_eq(runs[0].cfg.epochs, 3);
    cr_assert_eq(runs[0].cfg.max_steps, 7);
    grid_runs_free(runs, n);
    grid_free(&g);
    load_expand(grid, NULL, &g, &runs, &n);
    cr_assert_eq(n, 3 * 2 * 2);
    cr_assert_eq(runs[0].cfg.max_steps, 0);
    grid_runs_free(runs, n);
    grid_free(&g);
    free(grid);
}

/* A union profile (grid.h): the runs of its parts, each with its own
 * overrides, axis values and seeds, in the union's output directory; --set
 * (the union's sets) applies to every part. */
Test(grid, union_profile_runs_each_part_with_its_recipe) {
    char *grid = write_grid("g.ini",
                            "seeds = 0, 1, 2\n[sweep]\nmoe.method = dense, ewa\n"
                            "train.epochs + train.lr = 1+0.01, 2+0.02\n"
                            "[profile.all]\ngrid.union = small, big\n"
                            "[profile.small]\ngrid.seeds = 1, 2\ntrain.epochs + train.lr = 3+0.03\n"
                            "[profile.big]\ngrid.seeds = 1, 2, 3\nmoe.method = rmoe\ntrain.batch_size = 16\n"
                            "train.epochs + train.lr = 4+0.04\n");
    GridSpec g;
    GridRun *runs;
    int n;
    load_expand(grid, "all", &g, &runs, &n);
    char want[1024];
    snprintf(want, sizeof want, "%s/out/all", tmp);
    cr_assert_str_eq(g.out, want);
    cr_assert_eq(g.nparts, 2);
    cr_assert_str_eq(g.parts[1].out, want, "a part writes into the union's directory");
    cr_assert_eq(g.nseeds, 3);
    cr_assert_eq(n, 2 * 2 + 3, "expanded %d runs", n);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(runs[i].cfg.epochs, 3);
        cr_assert_eq(runs[i].cfg.batch_size, 32, "part small keeps the base batch size");
        cr_assert_eq(runs[i].seed, (uint64_t)(1 + i / 2));
    }
    cr_assert_str_eq(runs[1].sweep, "moe.method=ewa;train.epochs=3;train.lr=0.03");
    for (int i = 4; i < 7; i++) {
        cr_assert_str_eq(runs[i].cfg.method, "rmoe");
        cr_assert_eq(runs[i].cfg.batch_size, 16);
        cr_assert_float_eq(runs[i].cfg.lr, 0.04f, 1e-9);
        cr_assert_eq(runs[i].seed, (uint64_t)(i - 3));
    }
    /* a part alone is an ordinary profile with its own directory */
    GridSpec gp;
    GridRun *rp;
    int np;
    load_expand(grid, "big", &gp, &rp, &np);
    cr_assert_eq(np, 3);
    cr_assert_str_eq(rp[0].id, runs[4].id, "the same run, alone or in the union");
    snprintf(want, sizeof want, "%s/out/big", tmp);
    cr_assert_str_eq(gp.out, want);
    grid_runs_free(rp, np);
    grid_free(&gp);
    /* --set reaches every part */
    grid_runs_free(runs, n);
    g.sets = realloc(g.sets, sizeof(char *) * (size_t)(g.nsets + 1));
    g.sets[g.nsets++] = strdup("train.max_steps=5");
    Err e = {0};
    cr_assert_eq(grid_expand(&g, &runs, &n, &e), 0, "%s", e.msg);
    cr_assert(runs[0].cfg.max_steps == 5 && runs[6].cfg.max_steps == 5);
    grid_runs_free(runs, n);
    grid_free(&g);
    free(grid);
}

Test(grid, union_profile_errors) {
    static const struct { const char *prof, *needle1, *needle2; } bad[] = {
        {"[profile.u]\ngrid.union = a, nope\n[profile.a]\n", "no [profile.nope]", "profile.u"},
        {"[profile.u]\ngrid.union = a, a\n[profile.a]\n", "'a' listed twice", "profile.u"},
        {"[profile.u]\ngrid.union = a\n[profile.a]\ngrid.union = b\n[profile.b]\n", "union itself", "'a'"},
        {"[profile.u]\ngrid.union = a\ntrain.lr = 0.1\n[profile.a]\n", "no other entry", "train.lr"},
        {"[profile.u]\ngrid.union =\n[profile.a]\n", "line 8: [profile.u] grid.union: expected a list of profile names", "line 8"},
        {"[profile.u]\ngrid.union = a, b\n[profile.a]\nmoe.method = ewa\n[profile.b]\nmoe.method = ewa\n",
         "also another part's", "part b"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "seeds = 0\n[sweep]\nmoe.method = dense, ewa\n%s", bad[i].prof);
        char *grid = write_grid("g.ini", body);
        GridSpec g;
        GridRun *runs = NULL;
        int n = 0;
        Err e = {0};
        int rc = grid_load(&g, grid, "u", NULL, &e);
        if (!rc) {
            rc = grid_expand(&g, &runs, &n, &e);
            grid_free(&g);
        }
        cr_assert_eq(rc, ERR_USAGE, "case %zu accepted", i);
        cr_assert(strstr(e.msg, bad[i].needle1) && strstr(e.msg, bad[i].needle2), "case %zu: %s", i, e.msg);
        free(grid);
    }
}

/* Every committed grid file (paper_configs/ and paper_configs/campaign/)
 * loads and expands with no profile and with each of its profiles, so a typo
 * in a committed design fails here, not hours into a campaign. Run from the
 * repository root (make test). */
static void expect_grid_expands(const char *path, const char *profile) {
    GridSpec g;
    GridRun *runs = NULL;
    int n = 0;
    Err e = {0};
    cr_assert_eq(grid_load(&g, path, profile, NULL, &e), 0, "%s --profile %s: %s", path, profile, e.msg);
    cr_assert_eq(grid_expand(&g, &runs, &n, &e), 0, "%s --profile %s: %s", path, profile, e.msg);
    cr_assert_gt(n, 0, "%s --profile %s: no runs", path, profile);
    grid_runs_free(runs, n);
    grid_free(&g);
}

Test(grid, every_committed_grid_expands_under_every_profile) {
    glob_t gl;
    cr_assert_eq(glob("paper_configs/*.ini", 0, NULL, &gl), 0, "no paper_configs/ (not run from the repository root?)");
    cr_assert_eq(glob("paper_configs/campaign/*.ini", GLOB_APPEND, NULL, &gl), 0);
    int grids = 0, profiles = 0;
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        size_t len;
        char *text = slurp(gl.gl_pathv[i], &len);
        if (strstr(text, "[grid]")) {
            grids++;
            expect_grid_expands(gl.gl_pathv[i], "");
            for (char *q = text; (q = strstr(q, "\n[profile.")); q++) {
                char name[64];
                if (sscanf(q, "\n[profile.%63[^]]]", name) != 1) continue;
                expect_grid_expands(gl.gl_pathv[i], name);
                profiles++;
            }
        }
        free(text);
    }
    globfree(&gl);
    cr_assert_geq(grids, 10, "found only %d grid files", grids);
    cr_assert_geq(profiles, 20, "found only %d profiles", profiles);
}

Test(grid, joined_keys_sweep_together) {
    char *grid = write_grid("g.ini",
                            "seeds = 3\n[sweep]\n"
                            "data.train_subset + model.preset = 0+vit-micro, 100+vit-mini\n"
                            "moe.blocks = every_other, \"1,3\"\n");
    /* vit-micro/mini have depth 4, so block 3 exists; base keys dim etc.
     * would override the preset, so give presets a base without them */
    static const char base2[] = "[data]\naugment = 0\n[moe]\nmethod = ewa\n";
    char *b2 = tu_write(tmp, "base.ini", base2, strlen(base2));
    GridSpec g;
    GridRun *runs;
    int n;
    load_expand(grid, NULL, &g, &runs, &n);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(runs[0].sweep, "data.train_subset=0;model.preset=vit-micro;moe.blocks=every_other");
    cr_assert_str_eq(runs[3].sweep, "data.train_subset=100;model.preset=vit-mini;moe.blocks=1,3");
    cr_assert_eq(runs[3].cfg.train_subset, 100);
    cr_assert_eq(runs[3].cfg.dim, 96);
    cr_assert_str_eq(runs[3].cfg.blocks, "1,3");
    cr_assert_eq(runs[3].seed, 3);
    grid_runs_free(runs, n);
    grid_free(&g);
    free(grid); free(b2);
}

/* A grid with grid.nseeds (under profile, or NULL) and the plain grid of the
 * same trainings without it, expanded on a base without augmentation. */
typedef struct {
    GridSpec g, gp;
    GridRun *runs, *rp;
    int n, np;
    char *files[3];
} NseedsPair;

static void nseeds_pair(NseedsPair *q, const char *grid_body, const char *profile, const char *plain_body) {
    static const char base2[] = "[data]\naugment = 0\n";
    q->files[0] = tu_write(tmp, "base.ini", base2, strlen(base2));
    q->files[1] = write_grid("g.ini", grid_body);
    q->files[2] = write_grid("p.ini", plain_body);
    load_expand(q->files[1], profile, &q->g, &q->runs, &q->n);
    load_expand(q->files[2], NULL, &q->gp, &q->rp, &q->np);
}

static void nseeds_pair_free(NseedsPair *q) {
    grid_runs_free(q->runs, q->n);
    grid_runs_free(q->rp, q->np);
    grid_free(&q->g);
    grid_free(&q->gp);
    for (int i = 0; i < 3; i++) free(q->files[i]);
}

/* Run i of the nseeds grid: no grid.nseeds in its sweep, and exactly one
 * run of the plain grid with its id and seed (the count changes no id). */
static void expect_plain_twin(const NseedsPair *q, int i) {
    const GridRun *r = &q->runs[i];
    cr_assert(!strstr(r->sweep, "nseeds"), "%s", r->sweep);
    for (int k = 0; k < r->nsw; k++) cr_assert(strcmp(r->sw_keys[k], "grid.nseeds"));
    int same = 0;
    for (int j = 0; j < q->np; j++) same += !strcmp(q->rp[j].id, r->id) && q->rp[j].seed == r->seed;
    cr_assert_eq(same, 1, "%s seed %d", r->sweep, (int)r->seed);
}

/* grid.nseeds: a cell runs the first N seeds only; the count is not a config
 * key, so it is in no run's sweep and leaves the run ids as without it. */
Test(grid, nseeds_gives_cells_their_own_seed_count) {
    NseedsPair q;
    nseeds_pair(&q, "seeds = 4, 5, 6\n[sweep]\ndata.train_subset + grid.nseeds = 100+1, 200+3\n"
                    "moe.method = dense, ewa\n", NULL,
                "seeds = 4, 5, 6\n[sweep]\ndata.train_subset = 100, 200\nmoe.method = dense, ewa\n");
    cr_assert_eq(q.n, 2 * 1 + 2 * 3, "runs: %d", q.n);
    cr_assert_eq(q.np, 12);
    int per_seed[3] = {0};
    for (int i = 0; i < q.n; i++) {
        cr_assert(q.runs[i].seed >= 4 && q.runs[i].seed <= 6);
        per_seed[q.runs[i].seed - 4]++;
        if (q.runs[i].seed > 4) cr_assert_eq(q.runs[i].cfg.train_subset, 200, "%s", q.runs[i].sweep);
        expect_plain_twin(&q, i);
    }
    cr_assert(per_seed[0] == 4 && per_seed[1] == 2 && per_seed[2] == 2);
    nseeds_pair_free(&q);
}

/* A profile may give its cells their own seed counts: its entry names the
 * [sweep] key's parts (spacing aside) with grid.nseeds joined on, and the
 * runs are those of the [sweep] key with the profile's values, on the first
 * N seeds per cell, with the ids they have without the count. */
Test(grid, profile_adds_nseeds_to_a_swept_key) {
    NseedsPair q;
    nseeds_pair(&q, "seeds = 0\n[sweep]\nmoe.method + data.train_subset = dense+100, ewa+100\n"
                    "[profile.cpu]\ngrid.seeds = 4, 5, 6\n"
                    "moe.method+data.train_subset +  grid.nseeds = dense+200+3, ewa+200+1\n", "cpu",
                "seeds = 4, 5, 6\n[sweep]\nmoe.method = dense, ewa\ndata.train_subset = 200\n");
    cr_assert_eq(q.n, 3 + 1, "runs: %d", q.n);
    int dense = 0;
    for (int i = 0; i < q.n; i++) {
        cr_assert_eq(q.runs[i].cfg.train_subset, 200);
        dense += !strcmp(q.runs[i].cfg.method, "dense");
        if (strcmp(q.runs[i].cfg.method, "dense")) cr_assert_eq(q.runs[i].seed, 4);
        expect_plain_twin(&q, i);
    }
    cr_assert_eq(dense, 3);
    /* without the profile, the [sweep] values and seeds */
    GridSpec g;
    GridRun *runs;
    int n;
    load_expand(q.files[1], NULL, &g, &runs, &n);
    cr_assert_eq(n, 2);
    grid_runs_free(runs, n);
    grid_free(&g);
    nseeds_pair_free(&q);
}

/* Each bad grid gives exit 2 with the needles on stderr and creates nothing. */
static void expect_bad_grid(const char *body, const char *const *needles) {
    char *grid = write_grid("bad.ini", body);
    char *out = tu_path(tmp, "out");
    Proc p = EWA("grid", "--config", grid, "--profile", "smoke");
    cr_assert_eq(p.status, 2, "exit %d for grid:\n%s\nstderr:\n%s", p.status, body, p.err);
    for (; *needles; needles++) cr_assert(strstr(p.err, *needles), "stderr lacks '%s':\n%s", *needles, p.err);
    cr_assert(!exists(out), "a bad grid created %s", out);
    proc_free(&p);
    free(grid); free(out);
}
#define BAD(body, ...) expect_bad_grid(body, (const char *const[]){__VA_ARGS__, NULL})

Test(grid, bad_grids_fail_before_any_run) {
    BAD("seeds = 0\n[sweep]\nmoe.methd = dense, ewa\n[profile.smoke]\n", "moe.methd", "bad.ini");
    BAD("seeds = 0\n[sweep]\nmoe.method =\n[profile.smoke]\n", "empty list", "moe.method", "line 6");
    BAD("seeds = 0\n[sweep]\ntrain.epochs = 1, abc\n[profile.smoke]\n", "train.epochs", "abc");
    /* a bad value of the grid file names its line and section, not a --set nobody typed */
    BAD("seeds = 0\n[sweep]\ntrain.epochs = 1, abc\n[profile.smoke]\n",
        "bad.ini: line 6: [sweep] train.epochs=abc: train.epochs = 'abc' is not an integer (the run with");
    BAD("seeds = 0\n[sweep]\nmoe.method = dense\n[profile.smoke]\ntrain.epochs = 1\ntrain.lr = x\n",
        "bad.ini: line 9: [profile.smoke] train.lr=x: train.lr = 'x' is not a number");
    /* a profile's replacement of a swept key's values is that profile's line and section */
    BAD("seeds = 0\n[sweep]\ntrain.epochs = 1, 2\n[profile.smoke]\ntrain.epochs = 1, abc\n",
        "bad.ini: line 8: [profile.smoke] train.epochs=abc: train.epochs = 'abc' is not an integer");
    BAD("seeds = 0\n[sweep]\nmoe.method = dense, ewa\nmoe.beta = 0.5, 0.9\n[profile.smoke]\n",
        "moe.beta", "0.9");
    BAD("seeds = 0\n[sweep]\nmoe.method = dense\n[profile.smoke]\ntrain.epoch = 1\n",
        "profile.smoke", "epoch");
    BAD("seeds = 0\n[sweep]\nmoe.method = dense\n[profile.cpu]\n", "profile.smoke");
    BAD("seeds = 0, x\n[sweep]\nmoe.method = dense\n[profile.smoke]\n", "seeds", "'x'");
    BAD("seeds = 0\n[sweep]\nmoe.method = dense\n[profile.smoke]\n[bogus]\nx = 1\n", "bogus");
    BAD("seeds = 0\nbase = other.ini\n[profile.smoke]\n", "base");
    BAD("seeds = 0\n[sweep]\ntrain.seed = 1, 2\n[profile.smoke]\n", "train.seed", "seeds");
    BAD("seeds = 0\n[sweep]\ntrain.lr = 1e-3, 0.001\n[profile.smoke]\n", "same configuration");
    BAD("seeds = 0, 1\n[sweep]\ndata.train_subset + grid.nseeds = 100+3\n[profile.smoke]\n", "grid.nseeds",
        "'3'", "1 to 2");
    BAD("seeds = 0, 1\n[sweep]\ndata.train_subset + grid.nseeds = 100+0\n[profile.smoke]\n", "grid.nseeds",
        "'0'");
    BAD("seeds = 0, 1\n[sweep]\ngrid.nseeds = 1, 2\n[profile.smoke]\n", "grid.nseeds", "join it");
    /* a +-joined or grid.nseeds profile key is a swept key's replacement, never a
     * config override ("unknown key 'method + moe.beta'" named the wrong fault) */
    BAD("seeds = 0, 1\n[sweep]\nmoe.method = dense, ewa\n[profile.smoke]\n"
        "moe.method + moe.beta = ewa+0.1\n", "bad.ini: line 8: [profile.smoke] moe.method + moe.beta",
        "names no [sweep] key", "[sweep] has: moe.method");
    BAD("seeds = 0, 1\n[sweep]\nmoe.method + moe.beta = ewa+0.1\n[profile.smoke]\n"
        "moe.beta + moe.method + grid.nseeds = 0.1+ewa+2\n", "line 8", "names no [sweep] key");
    BAD("seeds = 0, 1\n[sweep]\nmoe.method = dense, ewa\n[profile.smoke]\ngrid.nseeds = 2\n",
        "line 8", "grid.nseeds", "names no [sweep] key");
    BAD("seeds = 0, 1\n[sweep]\nmoe.method = dense, ewa\n[profile.smoke]\n"
        "moe.method + grid.nseeds = dense+2, ewa+3\n", "bad.ini: line 8: [profile.smoke] grid.nseeds = '3'",
        "1 to 2");
    /* two entries of a profile replacing one axis: the second no longer wins silently */
    BAD("seeds = 0, 1\n[sweep]\nmoe.method + moe.beta = dense+0.3, ewa+0.3\n[profile.smoke]\n"
        "moe.method + moe.beta = ewa+0.1\nmoe.method+moe.beta+grid.nseeds = dense+0.3+1, ewa+0.5+2\n",
        "line 9", "replaces the same [sweep] key (moe.method + moe.beta) as line 8");
    /* an earlier profile's rewritten axis key is not what [sweep] has */
    BAD("seeds = 0, 1\n[sweep]\nmoe.method + moe.beta = dense+0.3, ewa+0.3\n[profile.smoke]\n"
        "moe.method + moe.beta + grid.nseeds = ewa+0.1+1\n[profile.other]\nmoe.beta + moe.method = 0.1+ewa\n",
        "line 10", "[sweep] has: moe.method + moe.beta)");
    BAD("seeds = 0, 1\n[sweep]\nmoe.method = dense, ewa\n[profile.smoke]\nmoe.method + = ewa+, dense+\n",
        "line 8", "empty key");
    BAD("seeds = 0, 1\n[sweep]\nmoe.method + + moe.beta = ewa++0.1\n[profile.smoke]\n", "line 6",
        "'' is not of the form section.key");
    /* one seed count per cell: grid.nseeds in two axes (the later silently won) */
    BAD("seeds = 0, 1\n[sweep]\ndata.train_subset + grid.nseeds = 100+1, 200+2\n"
        "moe.method + grid.nseeds = dense+1, ewa+2\n[profile.smoke]\n", "line 7",
        "grid.nseeds is also in 'data.train_subset + grid.nseeds' (line 6, [sweep])");
    BAD("seeds = 0, 1\n[sweep]\ndata.train_subset + grid.nseeds = 100+1\nmoe.method = dense, ewa\n"
        "[profile.smoke]\nmoe.method + grid.nseeds = dense+1, ewa+2\n", "line 9: [profile.smoke] moe.method + grid.nseeds",
        "grid.nseeds is also in");
    /* a part twice in one key */
    BAD("seeds = 0, 1\n[sweep]\nmoe.beta + moe.beta = 0.1+0.2\n[profile.smoke]\n", "moe.beta appears twice");
    BAD("seeds = 0, 1\n[sweep]\nmoe.method = dense, ewa\n[profile.smoke]\n"
        "moe.method + grid.nseeds + grid.nseeds = ewa+1+2\n", "line 8", "grid.nseeds appears twice");
    /* one key in two axes would give a run two values of it */
    BAD("seeds = 0, 1\n[sweep]\nmoe.method = dense, ewa\nmoe.method + grid.nseeds = ewa+1\n[profile.smoke]\n",
        "moe.method is already swept by 'moe.method' (line 6)");
    BAD("seeds = 0, 1\n[sweep]\nmoe.method = dense, ewa\n[profile.smoke]\n"
        "moe.method + grid.nseeds = dense, ewa+1\n", "profile.smoke", "2 +-joined parts");
    /* issue 11.7: an empty [sweep] key read name[-1] and dropped the value */
    BAD("seeds = 0\n[sweep]\n= dense\n[profile.smoke]\n", "line 6", "empty key", "dense");
    /* issue 11.7: a bad override in a profile leaked the rest of the profile
     * (LeakSanitizer in the sanitizer build fails the child) */
    BAD("seeds = 0\n[sweep]\nmoe.method = dense, ewa\n[profile.smoke]\nmoe.method = \"\ntrain.epochs = 1\n"
        "train.lr = 0.1\n", "profile.smoke", "moe.method");
}

/* issue 11.7: usage errors of `ewa grid` leaked their --set list. */
Test(grid, usage_errors_with_set_exit_2_without_leaks) {
    char *grid = write_grid("g.ini", "seeds = 0\n[profile.smoke]\n");
    const char *const cases[][8] = {
        {"grid", "--set", "train.lr=0.1", "--set", "train.epochs=1", NULL},
        {"grid", "--config", grid, "--set", "train.lr=0.1", "--jobs", "0", NULL},
        {"grid", "--config", grid, "--set", "train.lr=0.1", "--export", "nope", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Proc p = run_args(cases[i]);
        cr_assert_eq(p.status, 2, "case %zu: exit %d: %s", i, p.status, p.err);
        proc_free(&p);
    }
    free(grid);
}

/* A --set of a key the grid sweeps (in its own [sweep] or in a part of its
 * union) would be overridden by every sweep value, silently: a usage error
 * naming the key. A --set of another key is an override for every run. */
Test(grid, set_of_a_swept_key_is_a_usage_error) {
    char *grid = write_grid("g.ini", "seeds = 0\n[sweep]\nmoe.method = dense, ewa\n"
                                     "data.train_subset + train.epochs = 100+1\n[profile.smoke]\n");
    Proc p = EWA("grid", "--config", grid, "--profile", "smoke", "--dry-run", "--set", "moe.method=rmoe");
    cr_expect_eq(p.status, 2, "exit %d: %s", p.status, p.err);
    cr_expect(strstr(p.err, "--set 'moe.method=rmoe': moe.method is swept by") && strstr(p.err, grid), "%s", p.err);
    proc_free(&p);
    p = EWA("grid", "--config", grid, "--profile", "smoke", "--dry-run", "--set", "train.epochs=2");   /* a k1+k2 axis */
    cr_expect_eq(p.status, 2, "exit %d: %s", p.status, p.err);
    cr_expect(strstr(p.err, "train.epochs is swept by"), "%s", p.err);
    proc_free(&p);
    p = EWA("grid", "--config", grid, "--profile", "smoke", "--dry-run", "--set", "train.lr=0.01");
    cr_expect_eq(p.status, 0, "exit %d: %s", p.status, p.err);
    proc_free(&p);
    free(grid);
}

Test(grid, missing_base_file) {
    static const char text[] = "[grid]\nbase = nowhere.ini\nseeds = 0\nout = x\n";
    char *grid = tu_write(tmp, "g.ini", text, strlen(text));
    Proc p = EWA("grid", "--config", grid);
    cr_assert_eq(p.status, 2, "exit %d: %s", p.status, p.err);
    cr_assert(strstr(p.err, "nowhere.ini"), "%s", p.err);
    proc_free(&p);
    free(grid);
}

/* ---------------------------------------------------------------- provenance */

/* The decision itself (issue 10): a dirty or unknown build starts nothing
 * without --allow-dirty; the message names the fact and the ways out. */
Test(grid, provenance_decision) {
    Err e = {0};
    cr_assert_eq(grid_provenance_check(0, "abc", 0, &e), 0);
    cr_assert_eq(grid_provenance_check(1, "abc", 1, &e), 0);
    cr_assert_eq(grid_provenance_check(-1, "abc", 1, &e), 0);
    cr_assert_eq(grid_provenance_check(1, "abc", 0, &e), ERR_USAGE);
    cr_assert(strstr(e.msg, "uncommitted changes to tracked files outside results/ (commit abc, git_dirty=1)") &&
                  strstr(e.msg, "commit (or stash) the changes and rebuild") && strstr(e.msg, "--allow-dirty"),
              "%s", e.msg);
    cr_assert_eq(grid_provenance_check(-1, "unknown", 0, &e), ERR_USAGE);
    cr_assert(strstr(e.msg, "does not know whether") && strstr(e.msg, "--allow-dirty"), "%s", e.msg);
}

/* The command with a build that counts as dirty (EWA_TEST_ASSUME_DIRTY=1
 * forces it whatever the tree this binary came from): running and exporting
 * are refused with exit 2 before anything is created; --dry-run works and
 * says so; --allow-dirty runs and says so. */
Test(grid, dirty_build_is_refused_unless_allowed) {
    char *grid = write_grid("g.ini", "seeds = 0\n"), *out = tu_path(tmp, "out");
    cr_assert_eq(setenv("EWA_TEST_ASSUME_DIRTY", "1", 1), 0);
    Proc p = EWA("grid", "--config", grid);
    cr_assert_eq(p.status, 2, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "ewa grid: this binary was built from a tree with uncommitted changes") &&
                  strstr(p.err, "--allow-dirty"), "%s", p.err);
    cr_assert(!exists(out), "a refused grid created %s", out);
    proc_free(&p);
    p = EWA("grid", "--config", grid, "--export", "slurm");
    cr_assert_eq(p.status, 2, "exit %d\n%s", p.status, p.err);
    cr_assert(!exists(out), "a refused export created %s", out);
    proc_free(&p);
    p = EWA("grid", "--config", grid, "--dry-run");
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.out, "note: running it would be refused"), "%s", p.out);
    proc_free(&p);
    p = EWA("grid", "--config", grid, "--allow-dirty");
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "--allow-dirty: starting runs from a binary built with uncommitted changes"), "%s", p.err);
    proc_free(&p);
    unsetenv("EWA_TEST_ASSUME_DIRTY");
    free(grid); free(out);
}

/* --seeds keeps the runs of the seeds asked for (a subset to rerun); an
 * unknown seed or a malformed list is a usage error naming --seeds. */
Test(grid, seeds_option_keeps_a_subset) {
    char *grid = write_grid("g.ini", "seeds = 0, 1, 2\n[sweep]\nmoe.method = dense, ewa\n");
    Proc p = EWA("grid", "--config", grid, "--dry-run", "--seeds", "2, 0");
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.out, ": 4 runs (2 seeds)"), "%s", p.out);
    cr_assert(strstr(p.out, "seed=0 ") && strstr(p.out, "seed=2 ") && !strstr(p.out, "seed=1 "), "%s", p.out);
    proc_free(&p);
    p = EWA("grid", "--config", grid, "--dry-run", "--seeds", "7");
    cr_assert_eq(p.status, 2, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "--seeds 7: no run of the grid has one of the seeds asked for"), "%s", p.err);
    proc_free(&p);
    p = EWA("grid", "--config", grid, "--dry-run", "--seeds", "1,1");
    cr_assert_eq(p.status, 2, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "--seeds: seed 1 listed twice"), "%s", p.err);
    proc_free(&p);
    free(grid);
}

/* ---------------------------------------------------------------- aggregation */

/* A hand-made runs.csv: dense and ewa on two datasets, seeds 0-2, one
 * failed run, and a duplicate row of a run (the later row wins). */
static char *write_runs(void) {
    static const char text[] =
        "run_id,sweep,seed,dataset,train_subset,preset,dim,depth,method,final_top1,n_test,params_inference,flops_inference,status\n"
        "a0,moe.method=dense,0,fmnist,0,vit-micro,64,4,dense,0.80,100,1000,5000,ok\n"
        "b0,moe.method=ewa,0,fmnist,0,vit-micro,64,4,ewa,0.83,100,1000,5000,ok\n"
        "a1,moe.method=dense,1,fmnist,0,vit-micro,64,4,dense,0.82,100,1000,5000,ok\n"
        "b1,moe.method=ewa,1,fmnist,0,vit-micro,64,4,ewa,0.84,100,1000,5000,ok\n"
        "a2,moe.method=dense,2,fmnist,0,vit-micro,64,4,dense,0.81,100,1000,5000,ok\n"
        "b2,moe.method=ewa,2,fmnist,0,vit-micro,64,4,ewa,0.50,100,1000,5000,ok\n"
        "b2,moe.method=ewa,2,fmnist,0,vit-micro,64,4,ewa,0.82,100,1000,5000,ok\n"
        "c0,moe.method=dense,0,shapes3d,0,vit-micro,64,4,dense,0.50,400,1000,5000,ok\n"
        "c1,moe.method=dense,1,shapes3d,0,vit-micro,64,4,dense,0.60,400,1000,5000,ok\n"
        "d0,moe.method=ewa,0,shapes3d,0,vit-micro,64,4,ewa,0.55,400,1000,5000,ok\n"
        "d1,moe.method=ewa,1,shapes3d,0,vit-micro,64,4,ewa,,400,1000,5000,failed\n";
    return tu_write(tmp, "runs.csv", text, strlen(text));
}

static int find_cell(const CsvTable *t, const char *dataset, const char *method) {
    int cd = csv_col(t, "dataset"), cm = csv_col(t, "method");
    for (int r = 0; r < t->nrows; r++)
        if (!strcmp(csv_cell(t, r, cd), dataset) && !strcmp(csv_cell(t, r, cm), method)) return r;
    cr_assert_fail("no cell %s/%s", dataset, method);
    return -1;
}

static double num(const CsvTable *t, int r, const char *col) {
    int c = csv_col(t, col);
    cr_assert_geq(c, 0, "no column %s", col);
    return atof(csv_cell(t, r, c));
}

Test(grid, aggregation_by_hand) {
    char *runs = write_runs(), *out = tu_path(tmp, "agg");
    Err e = {0};
    cr_assert_eq(aggregate_runs(runs, out, NULL, "moe.method=dense", 0, &e), 0, "%s", e.msg);
    char *tp = tu_path(out, "table.csv");
    CsvTable t = read_csv(tp);
    cr_assert_eq(t.nrows, 5);   /* 4 cells and the pooled ewa row */
    cr_assert_str_eq(csv_cell(&t, 4, 0), "pooled");
    int d = find_cell(&t, "fmnist", "dense"), w = find_cell(&t, "fmnist", "ewa");
    /* dense 0.80, 0.82, 0.81: mean 0.81, std 0.01; SE sqrt(.81 .19 / 100) */
    cr_assert_eq(num(&t, d, "n"), 3);
    cr_assert_float_eq(num(&t, d, "mean_top1"), 0.81, 1e-6);
    cr_assert_float_eq(num(&t, d, "std_top1"), 0.01, 1e-6);
    cr_assert_float_eq(num(&t, d, "se_binomial"), sqrt(0.81 * 0.19 / 100), 1e-6);
    /* ewa 0.83, 0.84, 0.82 (the duplicate's later row): d = .03 .02 .01,
     * t = 2 sqrt 3, p = 1 - sqrt(12/14) */
    cr_assert_eq(num(&t, w, "n"), 3);
    cr_assert_float_eq(num(&t, w, "mean_top1"), 0.83, 1e-6);
    cr_assert_float_eq(num(&t, w, "diff"), 0.02, 1e-6);
    cr_assert_float_eq(num(&t, w, "baseline_mean_top1"), 0.81, 1e-6);
    cr_assert_eq(num(&t, w, "n_pairs"), 3);
    cr_assert_float_eq(num(&t, w, "t"), 2 * sqrt(3.0), 1e-3);
    cr_assert_float_eq(num(&t, w, "p"), 1 - sqrt(12.0 / 14.0), 1e-5);
    /* shapes3d: ewa has one ok seed and one failed: n 1, n_failed 1, one
     * pair -> no p-value; the diff is the seed-0 pair's, 0.55 - 0.50 */
    int s = find_cell(&t, "shapes3d", "ewa");
    cr_assert_eq(num(&t, s, "n"), 1);
    cr_assert_eq(num(&t, s, "n_failed"), 1);
    cr_assert_float_eq(num(&t, s, "diff"), 0.05, 1e-6);
    cr_assert_str_eq(csv_cell(&t, s, csv_col(&t, "p")), "");
    cr_assert_eq(num(&t, s, "n_pairs"), 1);
    /* Markdown: the cells, then the comparisons with the interval */
    char *mp = tu_path(out, "table.md");
    char *md = slurp(mp, NULL);
    cr_assert(strstr(md, "| dataset | model | method | top-1 (mean ± std) | n | params | FLOPs |"), "%s", md);
    cr_assert(strstr(md, "| baseline | Δ top-1 | 95% CI | p | p (Holm) | MDE | pairs |"), "%s", md);
    cr_assert(strstr(md, "| fmnist | vit-micro | ewa | method=dense | +0.0200 | [-0.0048, +0.0448] | 0.0742 | 0.0742 |"),
              "%s", md);
    cr_assert(strstr(md, "shapes3d (synthetic)"), "%s", md);
    free(md); free(mp);
    csv_table_free(&t);
    free(tp); free(runs); free(out);
}

Test(grid, aggregation_custom_group_and_errors) {
    char *runs = write_runs(), *out = tu_path(tmp, "agg");
    Err e = {0};
    cr_assert_eq(aggregate_runs(runs, out, "moe.method", NULL, 0, &e), 0, "%s", e.msg);
    char *tp = tu_path(out, "table.csv");
    CsvTable t = read_csv(tp);
    cr_assert_eq(t.nrows, 2);
    cr_assert_str_eq(t.header[0], "cell");
    cr_assert_str_eq(t.header[1], "method");
    csv_table_free(&t);
    cr_assert_eq(aggregate_runs(runs, out, "nosuch", NULL, 0, &e), ERR_USAGE);
    cr_assert(strstr(e.msg, "nosuch"), "%s", e.msg);
    char *bad = tu_write(tmp, "bad.csv", "a,b\n1,2\n", 8);
    cr_assert_eq(aggregate_runs(bad, out, NULL, NULL, 0, &e), ERR_RUNTIME);
    cr_assert(strstr(e.msg, "run_id"), "%s", e.msg);
    free(bad); free(tp); free(runs); free(out);
}

/* Equal tuning: each method at its own learning rate. EWA at lr 2e-3 is
 * compared with dense at its 1e-3; EWA at 1e-3, where dense has a cell too,
 * with that one (an exact match preferred). */
Test(grid, aggregation_pairs_methods_at_their_own_learning_rates) {
    static const char text[] =
        "run_id,sweep,seed,dataset,method,lr,final_top1,n_test,status\n"
        "a0,moe.method=dense;train.lr=1e-3,0,fmnist,dense,1e-3,0.80,100,ok\n"
        "a1,moe.method=dense;train.lr=1e-3,1,fmnist,dense,1e-3,0.82,100,ok\n"
        "b0,moe.method=ewa;train.lr=2e-3,0,fmnist,ewa,2e-3,0.83,100,ok\n"
        "b1,moe.method=ewa;train.lr=2e-3,1,fmnist,ewa,2e-3,0.86,100,ok\n"
        "c0,moe.method=ewa;train.lr=1e-3,0,fmnist,ewa,1e-3,0.81,100,ok\n"
        "c1,moe.method=ewa;train.lr=1e-3,1,fmnist,ewa,1e-3,0.82,100,ok\n";
    char *runs = tu_write(tmp, "runs_lr.csv", text, strlen(text)), *out = tu_path(tmp, "agg_lr");
    Err e = {0};
    cr_assert_eq(aggregate_runs(runs, out, "dataset,method,train.lr", "moe.method=dense", 0, &e), 0, "%s", e.msg);
    char *tp = tu_path(out, "table.csv");
    CsvTable t = read_csv(tp);
    int cl = csv_col(&t, "lr"), cm = csv_col(&t, "method");   /* read from the lr column */
    cr_assert_geq(cl, 0);
    int found = 0;
    for (int r = 0; r < t.nrows; r++) {
        if (strcmp(csv_cell(&t, r, cm), "ewa") || !strcmp(csv_cell(&t, r, 0), "pooled")) continue;
        found++;
        cr_assert_str_eq(csv_cell(&t, r, csv_col(&t, "baseline")), "dataset=fmnist method=dense lr=1e-3");
        double want = !strcmp(csv_cell(&t, r, cl), "2e-3") ? 0.035 : 0.005;
        cr_assert_float_eq(num(&t, r, "diff"), want, 1e-6, "lr %s", csv_cell(&t, r, cl));
        cr_assert_eq(num(&t, r, "n_pairs"), 2);
    }
    cr_assert_eq(found, 2);
    csv_table_free(&t);
    free(tp); free(runs); free(out);
}

Test(grid, aggregation_failed_cells_and_no_baseline) {
    static const char text[] =
        "run_id,sweep,seed,dataset,method,final_top1,n_test,status\n"
        "a0,moe.beta=0.1,0,f,dense,0.5,100,ok\n"
        "b0,moe.beta=0.1,0,f,ewa,,100,failed\n"
        "b1,moe.beta=0.1,1,f,ewa,,100,failed\n"
        "c0,moe.beta=0.3,0,f,ewa,0.7,100,ok\n";
    char *runs = tu_write(tmp, "runs.csv", text, strlen(text)), *out = tu_path(tmp, "agg");
    Err e = {0};
    cr_assert_eq(aggregate_runs(runs, out, NULL, "moe.method=dense", 0, &e), 0, "%s", e.msg);
    char *mp = tu_path(out, "table.md"), *md = slurp(mp, NULL);
    /* group: dataset, method, then the swept moe.beta (no such column: from
     * the sweep); the failed cell has no comparison; dense ignores moe.beta,
     * so it is the baseline of ewa at 0.3 */
    cr_assert(strstr(md, "| f | ewa | 0.1 | - (2 failed) | 0 |"), "%s", md);
    cr_assert(strstr(md, "| f | ewa | 0.1 | method=dense") == NULL, "%s", md);
    cr_assert(strstr(md, "| f | ewa | 0.3 | method=dense, moe.beta=0.1 | +0.2000 | - | - | - | - | 1 |"), "%s", md);
    cr_assert(strstr(md, "pooled") == NULL, "%s", md);
    free(md);
    /* no baseline cell at all: a flat table */
    cr_assert_eq(aggregate_runs(runs, out, NULL, "moe.method=nosuch", 0, &e), 0, "%s", e.msg);
    md = slurp(mp, NULL);
    cr_assert(strstr(md, "| dataset | method | moe.beta | top-1 (mean ± std) | n | params |"), "%s", md);
    cr_assert(strstr(md, "Top-1 difference") == NULL, "%s", md);
    cr_assert(strstr(md, "| f | ewa | 0.1 | - (2 failed) | 0 |"), "%s", md);
    free(md); free(mp); free(runs); free(out);
}

/* ---------------------------------------------------------------- regression */

/* Two runs of one grid on this machine reproduce each other bit for bit, so
 * `ewa regress` against a reference written from the first picks the exact
 * mode and passes (issue 10). */
Test(grid, rerun_is_bit_exact_against_its_reference) {
    char *grid = write_grid("g.ini", "seeds = 0, 1\n[sweep]\nmoe.method = dense, ewa\n");
    char *a = tu_path(tmp, "a"), *b = tu_path(tmp, "b"), *ref = tu_path(tmp, "ref"), *runs = tu_path(a, "runs.csv");
    Proc p = EWA("grid", "--allow-dirty", "--config", grid, "--jobs", "2", "--out", a);
    cr_assert_eq(p.status, 0, "grid: exit %d\n%s", p.status, p.err);
    proc_free(&p);
    p = EWA("aggregate", "--runs", runs, "--out", a);
    cr_assert_eq(p.status, 0, "aggregate: exit %d\n%s", p.status, p.err);
    proc_free(&p);
    /* --allow-dirty: the binary under test may come from a developer's dirty tree */
    p = EWA("regress", "--write-reference", ref, "--from", a, "--allow-dirty");
    cr_assert_eq(p.status, 0, "write-reference: exit %d\n%s", p.status, p.err);
    proc_free(&p);
    p = EWA("grid", "--allow-dirty", "--config", grid, "--jobs", "2", "--out", b);
    cr_assert_eq(p.status, 0, "grid: exit %d\n%s", p.status, p.err);
    proc_free(&p);
    p = EWA("regress", "--ref", ref, "--new", b);
    cr_assert_eq(p.status, 0, "regress: exit %d\n%s%s", p.status, p.out, p.err);
    cr_assert(strstr(p.out, "exact mode") && strstr(p.out, "4 of 4 reference runs reproduced bit for bit"),
              "%s", p.out);
    proc_free(&p);
    free(grid); free(a); free(b); free(ref); free(runs);
}

/* grid.reuse copies a run directory's regular files with fs_copy_dir_files:
 * another writer's temporary (NAME.tmp.PID) and subdirectories stay behind,
 * and the count is of the files copied. */
Test(grid, copy_dir_files_skips_temporaries_and_directories) {
    char *src = tu_path(tmp, "src"), *dst = tu_path(tmp, "dst"), *sub = tu_path(src, "sub");
    cr_assert_eq(mkdir(src, 0755), 0);
    cr_assert_eq(mkdir(dst, 0755), 0);
    cr_assert_eq(mkdir(sub, 0755), 0);
    free(tu_write(src, "a.csv", "a\n", 2));
    free(tu_write(src, "b.txt", "bb\n", 3));
    free(tu_write(src, "runs.csv.tmp.4242", "half", 4));
    int n = -1;
    Err err = {0};
    cr_assert_eq(fs_copy_dir_files(src, dst, &n, &err), 0, "%s", err.msg);
    cr_expect_eq(n, 2);
    char *a = tu_path(dst, "a.csv"), *b = tu_path(dst, "b.txt"), *t = tu_path(dst, "runs.csv.tmp.4242"),
         *s2 = tu_path(dst, "sub");
    struct stat st;
    cr_expect_eq(stat(a, &st), 0);
    cr_expect_eq(stat(b, &st), 0);
    cr_expect_neq(stat(t, &st), 0, "a temporary was copied");
    cr_expect_neq(stat(s2, &st), 0, "a subdirectory was copied");
    cr_expect_neq(fs_copy_dir_files(t, dst, NULL, &err), 0, "a missing source directory is an error");
    cr_expect(strstr(err.msg, "cannot open"), "%s", err.msg);
    free(a); free(b); free(t); free(s2); free(src); free(dst); free(sub);
}

/* grid.reuse (grid.h): a second grid sharing two runs with a first copies
 * them (same ids, same final_top1 and checkpoint_sha256, its own sweep
 * columns) and trains only the rest; a row built from a dirty tree is not
 * reused (the test forces git_dirty: the binary under test may come from a
 * developer's tree). */
Test(grid, reuse_copies_finished_runs_of_another_grid) {
    char *g1 = write_grid("g1.ini", "seeds = 0\n[sweep]\nmoe.method = dense, ewa\n");
    char *a = tu_path(tmp, "a"), *b = tu_path(tmp, "b"), *runs_a = tu_path(a, "runs.csv");
    Proc p = EWA("grid", "--allow-dirty", "--config", g1, "--jobs", "2", "--out", a);
    cr_assert_eq(p.status, 0, "grid: exit %d\n%s", p.status, p.err);
    proc_free(&p);
    /* dense's row from a clean tree, ewa's from a dirty one */
    char *o = NULL;
    cr_assert_eq(sh_in_tmp(&o, "awk -F, -v OFS=, 'NR==1{for(i=1;i<=NF;i++) if($i==\"git_dirty\") c=i; print; next}"
                               " {$c = ($0 ~ /moe.method=dense/) ? 0 : 1; print}' a/runs.csv > a/r && mv a/r a/runs.csv"),
                 0, "%s", o);
    free(o);
    char body[512];
    snprintf(body, sizeof body, "seeds = 0\nreuse = %s\n[sweep]\nmoe.method = dense, ewa, rmoe\nmoe.beta = 0.3\n", a);
    char *g2 = write_grid("g2.ini", body);
    p = EWA("grid", "--config", g2, "--out", b, "--dry-run");
    cr_assert_eq(p.status, 0, "dry run: exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.out, "1 to copy (grid.reuse), 2 to run"), "%s", p.out);
    proc_free(&p);
    p = EWA("grid", "--allow-dirty", "--config", g2, "--jobs", "2", "--out", b);
    cr_assert_eq(p.status, 0, "grid: exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "[grid] copied 1 finished runs from grid.reuse"), "%s", p.err);
    proc_free(&p);
    char *runs_b = tu_path(b, "runs.csv");
    CsvTable ta = read_csv(runs_a), tb = read_csv(runs_b);
    cr_assert_eq(tb.nrows, 3);
    int ia = csv_col(&ta, "run_id"), ib = csv_col(&tb, "run_id"), sb = csv_col(&tb, "sweep.moe.beta");
    cr_assert(sb >= 0, "the copied run's row has this grid's sweep columns");
    int same = 0;
    for (int r = 0; r < ta.nrows; r++)
        for (int q = 0; q < tb.nrows; q++) {
            if (strcmp(csv_cell(&ta, r, ia), csv_cell(&tb, q, ib))) continue;
            static const char *const cols[] = {"final_top1", "checkpoint_sha256", "git_commit"};
            for (int k = 0; k < 3; k++)
                cr_assert_str_eq(csv_cell(&ta, r, csv_col(&ta, cols[k])), csv_cell(&tb, q, csv_col(&tb, cols[k])));
            cr_assert_str_eq(csv_cell(&tb, q, sb), "0.3");
            same++;
        }
    cr_assert_eq(same, 2, "dense (copied) and ewa (trained again) have the first grid's ids");
    csv_table_free(&ta); csv_table_free(&tb);
    /* bad reuse lists name the key */
    char *g3 = write_grid("g3.ini", "seeds = 0\n[profile.p]\ngrid.reuse =\n");
    p = EWA("grid", "--config", g3, "--profile", "p", "--dry-run");
    cr_assert_eq(p.status, 2);
    cr_assert(strstr(p.err, "[profile.p] grid.reuse: expected a list of results directories"), "%s", p.err);
    proc_free(&p);
    free(g1); free(g2); free(g3); free(a); free(b); free(runs_a); free(runs_b);
}

/* ---------------------------------------------------------------- end to end */

static const char TINY3[] =
    "seeds = 0, 1, 2\n"
    "[sweep]\n"
    "moe.blocks = \"1\"\n";

/* mtime of OUT/runs/<id>/summary.csv in ns, 0 if absent */
static long long summary_mtime(const char *out, const char *id) {
    char p[1200];
    snprintf(p, sizeof p, "%s/runs/%s/summary.csv", out, id);
    struct stat st;
    if (stat(p, &st)) return 0;
    return (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

static void assert_each_once(const char *runs_csv, GridRun *runs, int n) {
    CsvTable t = read_csv(runs_csv);
    cr_assert_eq(t.nrows, n, "runs.csv has %d rows, expected %d", t.nrows, n);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(count_rows_with(&t, "run_id", runs[i].id), 1, "run %s appears %d times", runs[i].id,
                     count_rows_with(&t, "run_id", runs[i].id));
    }
    cr_assert_eq(count_rows_with(&t, "status", "ok"), n);
    /* the sweep value with a comma survived the CSV round trip */
    cr_assert_eq(count_rows_with(&t, "sweep", "moe.blocks=1"), n);
    csv_table_free(&t);
}

Test(grid, runs_resume_after_lost_row_and_sigkill) {
    char *grid = write_grid("g.ini", TINY3);
    GridSpec g;
    GridRun *runs;
    int n;
    load_expand(grid, NULL, &g, &runs, &n);
    cr_assert_eq(n, 3);
    char *out = tu_path(tmp, "out"), *runs_csv = tu_path(out, "runs.csv");

    /* a full grid with 2 jobs */
    Proc p = EWA("grid", "--allow-dirty", "--config", grid, "--jobs", "2");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "3/3 runs done"), "%s", p.err);
    proc_free(&p);
    assert_each_once(runs_csv, runs, n);
    long long m[3];
    for (int i = 0; i < 3; i++) cr_assert_gt(m[i] = summary_mtime(out, runs[i].id), 0);
    CsvTable t = read_csv(runs_csv);
    int ct = csv_col(&t, "threads");
    cr_assert_geq(ct, 0);
    cr_assert_geq(atoi(csv_cell(&t, 0, ct)), 1);
    csv_table_free(&t);

    /* a second invocation does nothing */
    p = EWA("grid", "--allow-dirty", "--config", grid, "--jobs", "2");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "3 already ok, 0 to run"), "%s", p.err);
    proc_free(&p);
    assert_each_once(runs_csv, runs, n);

    /* lose the last row (killed between the run and its row): the finished
     * run is recorded from its summary, not redone */
    char *text = slurp(runs_csv, NULL);
    size_t len = strlen(text);
    text[len - 1] = '\0';
    *strrchr(text, '\n') = '\0';
    strcat(text, "\n");
    FILE *f = fopen(runs_csv, "w");
    fputs(text, f);
    fclose(f);
    free(text);
    p = EWA("grid", "--allow-dirty", "--config", grid);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "recorded 1 runs that had finished"), "%s", p.err);
    proc_free(&p);
    assert_each_once(runs_csv, runs, n);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(summary_mtime(out, runs[i].id), m[i], "run %d was redone", i);

    /* SIGKILL the grid after its first recorded row, then resume */
    tu_rmrf(out);
    char o[PROC_PATH], e[PROC_PATH];
    pid_t pid =
        proc_spawn(tmp, &n_spawned, (const char *const[]){"grid", "--allow-dirty", "--config", grid, "--jobs", "1", NULL}, o, e);
    int rows = 0;
    for (int k = 0; k < 20000 && rows < 1; k++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        if (!exists(runs_csv)) continue;
        char *s = slurp(runs_csv, NULL);
        rows = 0;
        for (char *q = s; q && *q; q++) rows += *q == '\n';
        rows -= 1;
        free(s);
    }
    kill(pid, SIGKILL);
    p = finish(pid, o, e);
    cr_assert_eq(p.status, 128 + SIGKILL);
    proc_free(&p);
    CsvTable before = read_csv(runs_csv);
    cr_assert_geq(before.nrows, 1);
    cr_assert_lt(before.nrows, 3, "the grid finished before it was killed");
    long long mk[3];
    for (int i = 0; i < before.nrows; i++) {
        const char *id = csv_cell(&before, i, csv_col(&before, "run_id"));
        for (int j = 0; j < 3; j++)
            if (!strcmp(runs[j].id, id)) mk[j] = summary_mtime(out, id);
    }
    /* let the orphaned child (SIGTERMed through PDEATHSIG) go */
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    p = EWA("grid", "--allow-dirty", "--config", grid, "--jobs", "1");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    assert_each_once(runs_csv, runs, n);
    for (int i = 0; i < before.nrows; i++) {
        const char *id = csv_cell(&before, i, csv_col(&before, "run_id"));
        for (int j = 0; j < 3; j++)
            if (!strcmp(runs[j].id, id))
                cr_assert_eq(summary_mtime(out, id), mk[j], "finished run %s was redone", id);
    }
    csv_table_free(&before);
    grid_runs_free(runs, n);
    grid_free(&g);
    free(grid); free(out); free(runs_csv);
}

Test(grid, failed_runs_are_recorded_once_and_retried_when_asked) {
    char *empty = tu_path(tmp, "empty");
    cr_assert_eq(mkdir(empty, 0755), 0);
    char body[1024];
    snprintf(body, sizeof body, "seeds = 0, 1\n[sweep]\ndata.dir = %s\n", empty);
    char *grid = write_grid("g.ini", body);
    char *out = tu_path(tmp, "out"), *runs_csv = tu_path(out, "runs.csv");
    Proc p = EWA("grid", "--allow-dirty", "--config", grid, "--jobs", "2");
    cr_assert_eq(p.status, 1, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "2 of 2 runs did not finish ok"), "%s", p.err);
    proc_free(&p);
    CsvTable t = read_csv(runs_csv);
    cr_assert_eq(t.nrows, 2);
    cr_assert_eq(count_rows_with(&t, "status", "failed"), 2);
    cr_assert_eq(count_rows_with(&t, "seed", "1"), 1, "the failed row lacks the config's seed");
    csv_table_free(&t);
    /* a resumed grid does not rerun a recorded failure (it would fail the
     * same way): still non-zero, nothing run, one row each */
    p = EWA("grid", "--allow-dirty", "--config", grid, "--jobs", "2");
    cr_assert_eq(p.status, 1);
    cr_assert(strstr(p.err, "2 recorded failed") && strstr(p.err, "0 to run") && strstr(p.err, "--retry-failed"),
              "%s", p.err);
    proc_free(&p);
    t = read_csv(runs_csv);
    cr_assert_eq(t.nrows, 2);
    csv_table_free(&t);
    /* --retry-failed reruns them and replaces their rows */
    p = EWA("grid", "--allow-dirty", "--config", grid, "--jobs", "2", "--retry-failed");
    cr_assert_eq(p.status, 1);
    cr_assert(strstr(p.err, "2 to run"), "%s", p.err);
    proc_free(&p);
    t = read_csv(runs_csv);
    cr_assert_eq(t.nrows, 2);
    csv_table_free(&t);
    free(empty); free(grid); free(out); free(runs_csv);
}

/* Issue 11.9: trainings interrupted inside a grid are resumed from their
 * epoch checkpoints by the next grid invocation, to the same results as an
 * uninterrupted grid; a SIGINT to the grid reaches its trainings. */
Test(grid, interrupted_runs_are_resumed_to_the_same_result) {
    char *grid = write_grid("g.ini", "seeds = 0, 1\n[sweep]\nmoe.method = ewa\n");
    char *a = tu_path(tmp, "a"), *b = tu_path(tmp, "b"), *ca = tu_path(a, "runs.csv"), *cb = tu_path(b, "runs.csv");
    Proc p = EWA("grid", "--allow-dirty", "--config", grid, "--out", a);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    setenv("EWA_TEST_STOP_AT_STEP", "8", 1);   /* every training stops in its epoch 2 */
    p = EWA("grid", "--allow-dirty", "--config", grid, "--out", b);
    unsetenv("EWA_TEST_STOP_AT_STEP");
    cr_assert_eq(p.status, 1, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "interrupted") && strstr(p.err, "resumed when the grid runs again"), "%s", p.err);
    proc_free(&p);
    cr_assert(!exists(cb), "an interrupted run got a row");
    p = EWA("grid", "--allow-dirty", "--config", grid, "--out", b);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "2 to run (2 resumed)"), "%s", p.err);
    proc_free(&p);
    CsvTable ta = read_csv(ca), tb = read_csv(cb);
    cr_assert_eq(ta.nrows, 2);
    cr_assert_eq(tb.nrows, 2);
    for (int r = 0; r < 2; r++) {
        const char *id = csv_cell(&ta, r, csv_col(&ta, "run_id"));
        cr_assert_eq(count_rows_with(&tb, "run_id", id), 1);
        int rb = 0;
        while (strcmp(csv_cell(&tb, rb, csv_col(&tb, "run_id")), id)) rb++;
        cr_assert_str_eq(csv_cell(&ta, r, csv_col(&ta, "final_top1")), csv_cell(&tb, rb, csv_col(&tb, "final_top1")));
        char fa[1200], fb[1200];
        snprintf(fa, sizeof fa, "%s/runs/%s/final.safetensors", a, id);
        snprintf(fb, sizeof fb, "%s/runs/%s/final.safetensors", b, id);
        size_t la = 0, lb = 0;
        char *da = slurp(fa, &la), *db = slurp(fb, &lb);
        cr_assert(da && db && la == lb && !memcmp(da, db, la), "%s and %s differ", fa, fb);
        free(da); free(db);
    }
    csv_table_free(&ta); csv_table_free(&tb);
    /* SIGINT to the grid: forwarded, the trainings record themselves
     * interrupted, the grid exits 130 and no row is written */
    char *c = tu_path(tmp, "c"), *cc = tu_path(c, "runs.csv");
    char o[PROC_PATH], e[PROC_PATH];
    pid_t pid = proc_spawn(tmp, &n_spawned, (const char *const[]){"grid", "--allow-dirty", "--config", grid, "--out", c,
                                                                  "--set", "train.epochs=300", NULL}, o, e);
    int found = 0;
    for (int k = 0; k < 120000 && !found; k++) {   /* until a training has an epoch checkpoint */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        char cmd[1400];
        snprintf(cmd, sizeof cmd, "ls '%s'/runs/*/train_state.safetensors >/dev/null 2>&1", c);
        if (k % 100 == 0) found = system(cmd) == 0;
    }
    cr_assert(found, "no training reached its first epoch checkpoint");
    kill(pid, SIGINT);
    p = finish(pid, o, e);
    cr_assert_eq(p.status, 130, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "interrupted by signal 2"), "%s", p.err);
    proc_free(&p);
    cr_assert(!exists(cc), "an interrupted run got a row");
    free(grid); free(a); free(b); free(ca); free(cb); free(c); free(cc);
}

/* A grid's plan.csv tells a finished grid from one still running: a runs.csv
 * that lacks rows of planned runs is refused by aggregate (and claims and
 * regress, which read runs through it) unless --partial, which says so in
 * table.md; a --seeds subset merges into the plan, a whole grid replaces it;
 * a dry run writes none. */
Test(grid, plan_marks_a_partial_grid) {
    char *grid = write_grid("g.ini", "seeds = 0, 1\n[sweep]\nmoe.method = dense, ewa\n");
    char *d = tu_path(tmp, "res/table1/x"), *runs = tu_path(d, "runs.csv"), *plan = tu_path(d, "plan.csv"),
         *md = tu_path(d, "table.md"), *png = tu_path(d, "table1.png"), cwd[1024], *o = NULL;
    cr_assert(getcwd(cwd, sizeof cwd));
    Proc p = EWA("grid", "--config", grid, "--out", d, "--dry-run");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    cr_assert(!exists(plan), "a dry run wrote a plan");
    p = EWA("grid", "--allow-dirty", "--config", grid, "--out", d, "--seeds", "0");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    CsvTable t = read_csv(plan);
    cr_assert_eq(t.nrows, 2, "the plan of --seeds 0 holds %d runs", t.nrows);
    cr_assert_eq(count_rows_with(&t, "seed", "0"), 2);
    csv_table_free(&t);
    p = EWA("aggregate", "--runs", runs, "--out", d);   /* the subset asked for is complete */
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    /* the whole grid, every training stopped in its epoch 2: two runs planned without a row */
    setenv("EWA_TEST_STOP_AT_STEP", "8", 1);
    p = EWA("grid", "--allow-dirty", "--config", grid, "--out", d);
    unsetenv("EWA_TEST_STOP_AT_STEP");
    cr_assert_eq(p.status, 1, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    t = read_csv(plan);
    cr_assert_eq(t.nrows, 4);
    csv_table_free(&t);
    char *before = slurp(md, NULL);
    p = EWA("aggregate", "--runs", runs, "--out", d);
    cr_assert_eq(p.status, 1, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "2 of the 4 runs of its grid's plan.csv have no row yet") && strstr(p.err, "--partial"),
              "%s", p.err);
    proc_free(&p);
    char *after = slurp(md, NULL);
    cr_assert_str_eq(after, before, "a refused aggregation changed table.md");
    free(after);
    remove(png);   /* make plots draws no unfinished grid, even one whose table is there */
    cr_assert_eq(sh_in_tmp(&o, "EWA='%s' '%s/plots/all.sh' res", ewa_bin(), cwd), 1, "%s", o);
    cr_assert(strstr(o, "have no row yet") && strstr(o, "res/table1/x: not drawn"), "%s", o);
    free(o);
    cr_assert(!exists(png), "an unfinished grid was drawn");
    /* nor does a figure script run by hand on the table an earlier aggregation left */
    cr_assert_eq(sh_in_tmp(&o, "'%s/plots/table1.sh' res/table1/x", cwd), 1, "%s", o);
    cr_assert(strstr(o, "table1.sh: 2 planned run(s) of res/table1/x/plan.csv have no finished row in "
                        "res/table1/x/runs.csv"), "%s", o);
    free(o);
    cr_assert(!exists(png), "a figure script by hand drew an unfinished grid");
    /* --partial writes only outside the grid's directory, where its table cannot pass for the grid's */
    char *inside = tu_path(d, "vs_x"), *peek = tu_path(tmp, "peek"), *peek_md = tu_path(peek, "table.md");
    const char *outs[] = {d, inside};
    for (int k = 0; k < 2; k++) {
        p = EWA("aggregate", "--runs", runs, "--out", outs[k], "--partial");
        cr_assert_eq(p.status, 2, "exit %d:\n%s", p.status, p.err);
        cr_assert(strstr(p.err, "inside the grid's directory"), "%s", p.err);
        proc_free(&p);
    }
    cr_assert(!exists(inside), "a refused --partial made its --out");
    after = slurp(md, NULL);
    cr_assert_str_eq(after, before, "a refused --partial changed table.md");
    free(after);
    p = EWA("aggregate", "--runs", runs, "--out", peek, "--partial");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "the table is partial"), "%s", p.err);
    proc_free(&p);
    after = slurp(peek_md, NULL);
    cr_assert(strstr(after, "**Partial: 2 of the 4 runs of the grid's plan.csv have no row yet"), "%s", after);
    free(after);
    free(inside); free(peek); free(peek_md);
    /* resumed to the end: complete, and the table no longer says partial */
    p = EWA("grid", "--allow-dirty", "--config", grid, "--out", d);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    p = EWA("aggregate", "--runs", runs, "--out", d);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    after = slurp(md, NULL);
    cr_assert(!strstr(after, "Partial"), "%s", after);
    free(after);
    cr_assert_eq(sh_in_tmp(&o, "EWA='%s' '%s/plots/all.sh' res", ewa_bin(), cwd), 0, "%s", o);
    free(o);
    cr_assert(exists(png), "the finished grid was not drawn");
    /* a whole grid whose config changed replaces the plan: the old runs drop out */
    t = read_csv(plan);
    char old_id[17];
    snprintf(old_id, sizeof old_id, "%s", csv_cell(&t, 0, csv_col(&t, "run_id")));
    csv_table_free(&t);
    p = EWA("grid", "--allow-dirty", "--config", grid, "--out", d, "--set", "train.epochs=1");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    t = read_csv(plan);
    cr_assert_eq(t.nrows, 4);
    cr_assert_eq(count_rows_with(&t, "run_id", old_id), 0, "a run the grid no longer makes stayed in its plan");
    csv_table_free(&t);
    p = EWA("aggregate", "--runs", runs, "--out", d);   /* its earlier runs' rows are still there: said */
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "4 of its runs are not in its grid's plan.csv"), "%s", p.err);
    proc_free(&p);
    free(before); free(grid); free(d); free(runs); free(plan); free(md); free(png);
}

/* The plan of a union whose parts run one by one into its directory (the
 * campaign's Table 1): a part keeps the other parts' rows, so the union is
 * unfinished until every part is; a --seeds subset adds to the plan. */
Test(grid, plan_of_a_union_run_part_by_part) {
    char *grid = write_grid("u.ini", "seeds = 0, 1\n[sweep]\nmoe.method = dense, ewa\n"
                                     "[profile.all]\ngrid.union = a, b\n[profile.a]\ntrain.lr = 1e-2\n"
                                     "[profile.b]\ntrain.lr = 2e-2\n");
    char *d = tu_path(tmp, "u"), *runs = tu_path(d, "runs.csv"), *plan = tu_path(d, "plan.csv");
    Proc p = EWA("grid", "--allow-dirty", "--config", grid, "--profile", "all", "--out", d, "--export", "parallel");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    CsvTable t = read_csv(plan);
    cr_assert_eq(t.nrows, 8);
    cr_assert_eq(count_rows_with(&t, "profile", "a"), 4);
    cr_assert_eq(count_rows_with(&t, "profile", "b"), 4);
    csv_table_free(&t);
    p = EWA("grid", "--allow-dirty", "--config", grid, "--profile", "b", "--out", d, "--seeds", "1");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    t = read_csv(plan);
    cr_assert_eq(t.nrows, 8, "a --seeds subset dropped rows of the plan");
    csv_table_free(&t);
    p = EWA("grid", "--allow-dirty", "--config", grid, "--profile", "b", "--out", d);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    t = read_csv(plan);
    cr_assert_eq(t.nrows, 8, "part b's run dropped part a's runs from the union's plan");
    csv_table_free(&t);
    p = EWA("aggregate", "--runs", runs, "--out", d);
    cr_assert_eq(p.status, 1, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "4 of the 8 runs of its grid's plan.csv have no row yet"), "%s", p.err);
    proc_free(&p);
    p = EWA("grid", "--allow-dirty", "--config", grid, "--profile", "a", "--out", d);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    p = EWA("aggregate", "--runs", runs, "--out", d);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    free(grid); free(d); free(runs); free(plan);
}

/* A malformed plan is an error naming the file, not a silent pass. */
Test(grid, malformed_plan_is_an_error) {
    char *runs = write_runs(), *plan = tu_write(tmp, "plan.csv", "id,x\n1,2\n", 9), *out = tu_path(tmp, "agg");
    Err e = {0};
    cr_assert_eq(aggregate_runs(runs, out, NULL, "moe.method=dense", 0, &e), ERR_RUNTIME);
    cr_assert(strstr(e.msg, "plan.csv: not a grid plan"), "%s", e.msg);
    free(runs); free(plan); free(out);
}

/* Issue 11.4: swept values holding the CSV and sweep separators stay apart:
 * one runs.csv column per swept key, and 3 data dirs x 2 lrs = 6 cells. */
Test(grid, sweep_values_with_separators_are_lossless) {
    static const char *const names[] = {"d,a", "d;b", "d;c"};
    for (int i = 0; i < 3; i++) {
        char *d = tu_path(tmp, names[i]);
        cr_assert_eq(mkdir(d, 0755), 0);
        write_split(d, "train", N_TRAIN, N_TRAIN, 1);
        write_split(d, "t10k", N_TEST, N_TEST, 2);
        free(d);
    }
    char body[2048];
    snprintf(body, sizeof body, "seeds = 0\n[sweep]\ndata.dir = \"%s/d,a\", %s/d;b, %s/d;c\n"
             "train.lr = 0.01, 0.02\n[profile.quick]\ntrain.epochs = 1\ntrain.max_steps = 2\n", tmp, tmp, tmp);
    char *grid = write_grid("g.ini", body);
    char *out = tu_path(tmp, "out/quick"), *runs_csv = tu_path(out, "runs.csv"), *agg = tu_path(tmp, "agg");
    Proc p = EWA("grid", "--allow-dirty", "--config", grid, "--profile", "quick");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    CsvTable t = read_csv(runs_csv);
    cr_assert_eq(t.nrows, 6);
    for (int i = 0; i < 3; i++) {
        char v[1100];
        snprintf(v, sizeof v, "%s/%s", tmp, names[i]);
        cr_assert_eq(count_rows_with(&t, "sweep.data.dir", v), 2, "value %s", v);
    }
    cr_assert_eq(count_rows_with(&t, "sweep.train.lr", "0.02"), 3);
    csv_table_free(&t);
    p = EWA("aggregate", "--runs", runs_csv, "--out", agg);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.out, "into 6 cells"), "%s", p.out);
    proc_free(&p);
    free(grid); free(out); free(runs_csv); free(agg);
}

/* `ewa aggregate` of a runs.csv with the text csv, written into tmp. */
static Proc aggregate_text(const char *csv) {
    char *runs_csv = tu_write(tmp, "runs.csv", csv, strlen(csv)), *agg = tu_path(tmp, "agg");
    Proc p = EWA("aggregate", "--runs", runs_csv, "--out", agg);
    free(runs_csv); free(agg);
    return p;
}

/* A baseline value no cell has (a mistyped --baseline) is said on stderr
 * with the values the cells have: the table then has no differences. */
Test(grid, aggregate_names_a_baseline_no_cell_has) {
    static const char csv[] = "run_id,status,final_top1,seed,method\n"
                              "a,ok,0.5,0,dense\nb,ok,0.6,0,moe-early-ewa\nc,ok,0.6,0,ewa\n";
    char *runs_csv = tu_write(tmp, "runs.csv", csv, strlen(csv)), *agg = tu_path(tmp, "agg");
    Proc p = EWA("aggregate", "--runs", runs_csv, "--out", agg, "--baseline", "method=dnse");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_expect(strstr(p.err, "ewa: warning: ") && strstr(p.err, "no cell has the baseline method = dnse (its cells have dense, moe-early-ewa, ewa); "
                            "no differences reported"), "%s", p.err);
    proc_free(&p);
    p = EWA("aggregate", "--runs", runs_csv, "--out", agg);   /* the default baseline is there: no warning */
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_expect(!strstr(p.err, "no cell has"), "%s", p.err);
    proc_free(&p);
    free(runs_csv); free(agg);
}

/* Two ok rows of one run id that differ (a stale row merged in by hand:
 * training is deterministic, so the same run cannot end twice differently)
 * are said on stderr with their lines; the later row is used. */
Test(grid, aggregate_warns_of_two_different_ok_rows_of_one_run) {
    Proc p = aggregate_text("run_id,status,final_top1,seed,method\n"
                            "a,ok,0.5,0,dense\nb,ok,0.6,0,ewa\na,ok,0.7,0,dense\nb,ok,0.6,0,ewa\n");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_expect(strstr(p.err, "run a has two ok rows that differ (line 2: final_top1 0.5, line 4: 0.7); the later "
                            "one is used"), "%s", p.err);
    cr_expect(!strstr(p.err, "run b"), "identical rows are no conflict: %s", p.err);
    proc_free(&p);
}

/* Issue 11.4: aggregate reads numbers with a checked parser, naming the
 * file, line and column. */
Test(grid, aggregate_rejects_a_malformed_number) {
    static const char csv[] = "run_id,status,final_top1,seed,method\n"
                              "a,ok,0.5,0,dense\n"
                              "b,ok,0.5x,1,dense\n";
    Proc p = aggregate_text(csv);
    cr_assert_eq(p.status, 1, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "runs.csv: line 3, column 'final_top1': '0.5x' is not a number"), "%s", p.err);
    proc_free(&p);
    /* the training cost too, when given (an empty one is allowed: older rows) */
    static const char csv2[] = "run_id,status,final_top1,seed,method,flops_train\n"
                               "a,ok,0.5,0,dense,\n"
                               "b,ok,0.5,1,dense,3e1x\n";
    p = aggregate_text(csv2);
    cr_assert_eq(p.status, 1, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "runs.csv: line 3, column 'flops_train': '3e1x' is not a number"), "%s", p.err);
    proc_free(&p);
}

/* The training cost beside the accuracy: table.csv's train_seconds and
 * flops_train are the means over a cell's ok runs of those that record them
 * (a failed run and an empty cell do not count), empty when none does. */
Test(grid, aggregate_reports_the_mean_training_cost) {
    static const char csv[] = "run_id,status,final_top1,seed,method,train_seconds,flops_train\n"
                              "a,ok,0.5,0,dense,100,3e12\n"
                              "b,ok,0.6,1,dense,200,\n"
                              "c,failed,0.1,2,dense,900,9e12\n"
                              "d,ok,0.7,0,ewa,,\n";
    Proc p = aggregate_text(csv);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    char *path = tu_path(tmp, "agg/table.csv");
    CsvTable t;
    Err e = {0};
    cr_assert_eq(csv_read_file(path, &t, &e), 0, "%s", e.msg);
    int cm = csv_col(&t, "method"), cs = csv_col(&t, "train_seconds"), cf = csv_col(&t, "flops_train");
    cr_assert(cm >= 0 && cs >= 0 && cf >= 0);
    int seen = 0;
    for (int r = 0; r < t.nrows; r++) {
        if (!strcmp(csv_cell(&t, r, cm), "dense")) {
            cr_assert_float_eq(atof(csv_cell(&t, r, cs)), 150.0, 1e-9);
            cr_assert_float_eq(atof(csv_cell(&t, r, cf)), 3e12, 1e3);
            seen++;
        } else if (!strcmp(csv_cell(&t, r, cm), "ewa")) {
            cr_assert_str_eq(csv_cell(&t, r, cs), "");
            cr_assert_str_eq(csv_cell(&t, r, cf), "");
            seen++;
        }
    }
    cr_assert_eq(seen, 2);
    char *md_path = tu_path(tmp, "agg/table.md"), *md = slurp(md_path, NULL);
    cr_assert(strstr(md, "| train s | train FLOPs |") && strstr(md, "| 150 | 3.00T |"), "%s", md);
    csv_table_free(&t);
    free(path); free(md_path); free(md);
}

/* tmp/agg aggregated from runs text csv, then `plots/SCRIPT_ARGS` run from
 * tmp (gnuplot, make deps; the test runs from the repository root): the
 * figure's data tmp/agg/STEM.dat and tmp/agg/STEM.svg into *dat, *svg. */
static void plot_from_runs(const char *csv, const char *script_args, const char *stem, char **dat, char **svg) {
    Proc p = aggregate_text(csv);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    char cwd[1024], *o = NULL, name[256];
    cr_assert(getcwd(cwd, sizeof cwd));
    cr_assert_eq(sh_in_tmp(&o, "'%s/plots/'%s", cwd, script_args), 0, "%s", o);
    free(o);
    snprintf(name, sizeof name, "agg/%s.dat", stem);
    char *dp = tu_path(tmp, name);
    snprintf(name, sizeof name, "agg/%s.svg", stem);
    char *sp = tu_path(tmp, name);
    *dat = slurp(dp, NULL);
    *svg = slurp(sp, NULL);
    cr_assert(*dat && *svg, "no %s or %s", dp, sp);
    free(dp); free(sp);
}

/* Three seeds of dense, ewa (+2 points) and rmoe (-0.67) for the forest plot. */
static const char FOREST_CSV[] = "run_id,status,final_top1,seed,method\n"
                                 "a,ok,0.50,0,dense\nb,ok,0.60,1,dense\nc,ok,0.70,2,dense\n"
                                 "d,ok,0.52,0,ewa\ne,ok,0.61,1,ewa\nf,ok,0.73,2,ewa\n"
                                 "g,ok,0.49,0,rmoe\nh,ok,0.58,1,rmoe\ni,ok,0.71,2,rmoe\n";

/* plots/forest.sh on a table comparing two methods with the baseline: each
 * row and each pooled row names its method, the title and axis name the
 * baseline read from the table, and one pooled cell is "1 cell". Needs
 * gnuplot (make deps); run from the repository root (make test). */
Test(grid, forest_plot_names_each_method_and_the_baseline) {
    char *dat, *svg;
    plot_from_runs(FOREST_CSV, "forest.sh agg", "forest", &dat, &svg);
    cr_assert(strstr(dat, "[ewa]\"") && strstr(dat, "[rmoe]\""), "%s", dat);
    cr_assert(strstr(dat, "pooled: mean over the cells [ewa]") && strstr(dat, "pooled: mean over the cells [rmoe]"),
              "%s", dat);
    cr_assert(strstr(dat, "1 cell, 3 seeds") && !strstr(dat, "1 cells"), "%s", dat);
    cr_assert(strstr(svg, "Paired difference to dense (method - dense") && strstr(svg, "better than dense"), "title");
    free(dat); free(svg);
}

/* The figures do not depend on the user's locale: plots/forest.sh run with
 * LC_ALL=de_DE.UTF-8 (a decimal comma, built here with localedef from
 * Debian's locales package, make deps) writes the same decimal points as in
 * C; before plots/common.sh set LC_NUMERIC=C, mawk read every top-1 as 0
 * there and the forest plot showed "+0,00" for every cell. */
Test(grid, plots_read_numbers_with_a_decimal_point_in_any_locale) {
    char *o = NULL, *dat, *svg;
    cr_assert_eq(sh_in_tmp(&o, "mkdir -p loc && localedef -i de_DE -f UTF-8 loc/de_DE.UTF-8"), 0,
                 "localedef (Debian's locales, make deps): %s", o);
    free(o);
    char *loc = tu_path(tmp, "loc");
    setenv("LOCPATH", loc, 1);   /* inherited by the shell plot_from_runs starts */
    setenv("LC_ALL", "de_DE.UTF-8", 1);
    plot_from_runs(FOREST_CSV, "forest.sh agg", "forest", &dat, &svg);
    cr_assert(strstr(dat, "\"+2.00 [") && strstr(dat, "\"-0.67 [") && !strstr(dat, "0,0"), "%s", dat);
    free(dat); free(svg); free(loc);
}

/* ewa aggregate --runs runs --out out [--baseline baseline], asserting exit 0. */
static void aggregate_ok(const char *runs, const char *out, const char *baseline) {
    Proc p = baseline ? EWA("aggregate", "--runs", runs, "--out", out, "--baseline", baseline)
                      : EWA("aggregate", "--runs", runs, "--out", out);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
}

/* Appends run c (dense, seed 2, ok) to a runs.csv of run_id,status,final_top1,seed,method. */
static void append_run_c(const char *runs_csv) {
    FILE *f = fopen(runs_csv, "a");
    cr_assert(f);
    fputs("c,ok,0.70,2,dense\n", f);
    fclose(f);
}

/* A figure script run by hand on a table older than its runs.csv (a run
 * finished after the aggregation) refuses it, naming both counts and the
 * command that brings it up to date; aggregated again, it draws; a run then
 * recorded ok again with another top-1 (the same count) is refused too. */
Test(grid, plots_by_hand_refuse_a_stale_table) {
    static const char csv[] = "run_id,status,final_top1,seed,method\n"
                              "a,ok,0.50,0,dense\nb,ok,0.60,1,dense\nd,ok,0.52,0,ewa\ne,ok,0.61,1,ewa\n";
    char *d = tu_path(tmp, "g"), *vs = tu_path(d, "vs_ewa"), cwd[1024], *o = NULL;
    cr_assert_eq(mkdir(d, 0755), 0);
    cr_assert(getcwd(cwd, sizeof cwd));
    char *runs_csv = tu_write(d, "runs.csv", csv, strlen(csv));
    aggregate_ok(runs_csv, d, NULL);
    aggregate_ok(runs_csv, vs, "method=ewa");
    append_run_c(runs_csv);
    const char *scripts[] = {"table1.sh g", "forest.sh g", "ablation.sh g method", "curves.sh g"};
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(sh_in_tmp(&o, "'%s/plots/'%s", cwd, scripts[k]), 1, "%s: %s", scripts[k], o);
        cr_assert(strstr(o, "g/table.tsv counts 4 runs, g/runs.csv has 5 ok runs: aggregate again") &&
                  strstr(o, "or make plots") && strstr(o, "not drawn"), "%s: %s", scripts[k], o);
        free(o);
    }
    /* a vs_* table counts the parent's runs; make plots does not aggregate it, its --baseline does */
    cr_assert_eq(sh_in_tmp(&o, "'%s/plots/ablation.sh' g/vs_ewa method", cwd), 1, "%s", o);
    cr_assert(strstr(o, "g/vs_ewa/table.tsv counts 4 runs, g/runs.csv has 5 ok runs") && strstr(o, "--baseline") &&
              !strstr(o, "make plots"), "%s", o);
    free(o);
    free(vs);
    char *png = tu_path(d, "table1.png");
    cr_assert(!exists(png), "a stale table was drawn");
    aggregate_ok(runs_csv, d, NULL);
    cr_assert_eq(sh_in_tmp(&o, "'%s/plots/table1.sh' g", cwd), 0, "%s", o);
    free(o);
    cr_assert(exists(png), "the table aggregated again was not drawn");
    /* run a recorded ok again with another top-1: the same 5 ok runs, other results */
    FILE *f = fopen(runs_csv, "a");
    cr_assert(f);
    fputs("a,ok,0.55,0,dense\n", f);
    fclose(f);
    cr_assert_eq(sh_in_tmp(&o, "'%s/plots/forest.sh' g", cwd), 1, "%s", o);
    cr_assert(strstr(o, "g/table.tsv is not the aggregation of the ok runs of g/runs.csv (the same 5 runs") &&
              strstr(o, "g/table.md's SHA-256 of them differs") && strstr(o, "not drawn"), "%s", o);
    free(o);
    free(d); free(runs_csv); free(png);
}

/* make plots aggregates again a table that does not count every ok run even
 * when its runs.csv is not newer (a fresh clone gives every file one mtime),
 * and a planned run recorded diverged is finished, as `ewa aggregate` and
 * `ewa grid` count it: the grid is drawn and counted, exit 0. */
Test(grid, make_plots_aggregates_a_table_missing_runs_of_the_same_mtime) {
    static const char csv[] = "run_id,status,final_top1,seed,method\n"
                              "a,ok,0.50,0,dense\nb,ok,0.60,1,dense\nd,ok,0.52,0,ewa\ne,ok,0.61,1,ewa\n"
                              "f,diverged,,2,ewa\n";
    static const char plan[] = "run_id,seed,profile,sweep\na,0,,\nb,1,,\nd,0,,\ne,1,,\nf,2,,\nc,2,,\n";
    char *o = NULL, *d = tu_path(tmp, "res"), *t1 = tu_path(d, "table1"), *g = tu_path(t1, "g");
    cr_assert(mkdir(d, 0755) == 0 && mkdir(t1, 0755) == 0 && mkdir(g, 0755) == 0);
    char *runs_csv = tu_write(g, "runs.csv", csv, strlen(csv));
    aggregate_ok(runs_csv, g, NULL);   /* no plan yet: a table of the 4 ok runs */
    append_run_c(runs_csv);
    char *plan_csv = tu_write(g, "plan.csv", plan, strlen(plan)), cwd[1024];
    cr_assert(getcwd(cwd, sizeof cwd));
    cr_assert_eq(sh_in_tmp(&o, "touch -r res/table1/g/table.tsv res/table1/g/runs.csv res/table1/g/plan.csv && "
                               "EWA='%s' '%s/plots/all.sh' res", ewa_bin(), cwd), 0, "%s", o);
    cr_assert(strstr(o, "plots: 1 result sets drawn under res") && !strstr(o, "not drawn"), "%s", o);
    free(o);
    char *png = tu_path(g, "table1.png");
    cr_assert(exists(png), "the grid with a diverged run was not drawn");
    cr_assert_eq(sh_in_tmp(&o, "'%s/plots/table1.sh' res/table1/g", cwd), 0, "%s", o);   /* current now */
    free(o);
    free(png); free(plan_csv); free(runs_csv); free(g); free(t1); free(d);
}

/* The line of text that starts with prefix (at the start of text or after a
 * newline), without its newline, malloc'd; NULL if none. */
static char *line_starting(const char *text, const char *prefix) {
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, prefix, n)) {
            const char *e = strchr(p, '\n');
            return strndup(p, e ? (size_t)(e - p) : strlen(p));
        }
    return NULL;
}

/* plots/ablation.sh over a categorical key listed out of order in the table
 * (last:10 first): the categories are drawn in natural order (last:1,
 * last:2, last:10 at x = 0, 1, 2; a string sort would put last:10 second),
 * and with no dense cell to pair with (no panel (b)) panel (a) is zoomed to
 * the data, where 0-1 hid the sub-point differences, and the chance level
 * (0.1 for Fashion-MNIST) is dropped, being off the axis. Needs gnuplot. */
Test(grid, ablation_plot_orders_categories_and_zooms_without_a_baseline) {
    static const char csv[] =
        "run_id,sweep,status,final_top1,seed,dataset,method,blocks\n"
        "a,moe.blocks=last:10,ok,0.931,0,fashion-mnist,moe,last:10\nb,moe.blocks=last:10,ok,0.933,1,fashion-mnist,moe,last:10\n"
        "c,moe.blocks=last:1,ok,0.936,0,fashion-mnist,moe,last:1\nd,moe.blocks=last:1,ok,0.938,1,fashion-mnist,moe,last:1\n"
        "e,moe.blocks=last:2,ok,0.935,0,fashion-mnist,moe,last:2\nf,moe.blocks=last:2,ok,0.937,1,fashion-mnist,moe,last:2\n";
    char *dat, *svg;
    plot_from_runs(csv, "ablation.sh agg blocks", "ablation_blocks", &dat, &svg);
    static const char *const want[] = {"last:1", "last:2", "last:10"};
    for (int k = 0; k < 3; k++) {
        char prefix[8], *line;
        snprintf(prefix, sizeof prefix, "%d\t", k);
        line = line_starting(dat, prefix);
        cr_assert(line, "no x = %d row:\n%s", k, dat);
        const char *tab = strrchr(line, '\t');
        cr_expect(tab && !strcmp(tab + 1, want[k]), "x = %d is '%s', want %s", k, line, want[k]);
        free(line);
    }
    cr_expect(strstr(svg, "zoomed to the data"), "panel (a) not zoomed");
    cr_expect(!strstr(svg, "dashed: chance"), "chance (0.1) is off the zoomed axis");
    free(dat); free(svg);
}

/* plots/ablation.sh over beta with the table's cells out of order (0.5
 * before 0.1) and the rmoe control, whose beta key is an unused 0.3: the EWA
 * line joins its points left to right, and rmoe (EWA without averaging) sits
 * at beta = 0, where a line through the table's order zigzagged and rmoe sat
 * on top of EWA's 0.3. Needs gnuplot. */
Test(grid, ablation_plot_orders_numeric_x_and_puts_rmoe_at_beta_0) {
    static const char csv[] =
        "run_id,status,final_top1,seed,dataset,method,beta,sweep.moe.method,sweep.moe.beta\n"
        "a,ok,0.80,0,fashion-mnist,dense,0.3,dense,0.3\nb,ok,0.81,1,fashion-mnist,dense,0.3,dense,0.3\n"
        "c,ok,0.82,0,fashion-mnist,ewa,0.5,ewa,0.5\nd,ok,0.82,1,fashion-mnist,ewa,0.5,ewa,0.5\n"
        "e,ok,0.83,0,fashion-mnist,ewa,0.1,ewa,0.1\nf,ok,0.84,1,fashion-mnist,ewa,0.1,ewa,0.1\n"
        "g,ok,0.79,0,fashion-mnist,rmoe,0.3,rmoe,0.3\nh,ok,0.80,1,fashion-mnist,rmoe,0.3,rmoe,0.3\n";
    char *dat, *svg;
    plot_from_runs(csv, "ablation.sh agg beta", "ablation_beta", &dat, &svg);
    char *p01 = strstr(dat, "\n0.1\t"), *p05 = strstr(dat, "\n0.5\t"), *p0 = strstr(dat, "\n0\t0.795");
    cr_assert(p01 && p05 && p0, "rows missing:\n%s", dat);
    cr_expect(p01 < p05, "EWA's points not in order of beta:\n%s", dat);
    cr_expect(!strstr(dat, "\n0.3\t0.795"), "rmoe drawn at its unused beta 0.3:\n%s", dat);
    cr_expect(strstr(svg, "rmoe at 0"), "the x label does not say where rmoe is");
    free(dat); free(svg);
}

/* Runs text csv written to tmp/DIR/runs.csv, aggregated against the naive
 * MoE (--baseline moe.method=moe, claim (c)) into tmp/DIR/vs_naive_moe, and
 * plots/ablation.sh drawn over method there; returns that directory. */
static char *plot_vs_naive_moe(const char *dir, const char *csv) {
    char *d = tu_path(tmp, dir), rel[256];
    cr_assert_eq(mkdir(d, 0755), 0);
    char *runs_csv = tu_write(d, "runs.csv", csv, strlen(csv)), *vs = tu_path(d, "vs_naive_moe");
    Proc p = EWA("aggregate", "--runs", runs_csv, "--out", vs, "--baseline", "moe.method=moe");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    proc_free(&p);
    char cwd[1024], *o = NULL;
    cr_assert(getcwd(cwd, sizeof cwd));
    snprintf(rel, sizeof rel, "%s/vs_naive_moe", dir);
    cr_assert_eq(sh_in_tmp(&o, "'%s/plots/ablation.sh' %s method", cwd, rel), 0, "%s", o);
    free(o); free(d); free(runs_csv);
    return vs;
}

/* plots/ablation.sh over method on a table aggregated against the naive MoE
 * (claim (c): --baseline moe.method=moe into tmp/vs_naive_moe, the runs
 * beside it in tmp): ewa_epochs, which the method determines within a dataset
 * (resolved: 0 / 75 on one, 0 / 30 on the other), names no series, so each dataset is one series over the two methods; panel (b)
 * names the baseline moe (it said dense); two datasets draw no single chance
 * line; the caption takes the profile of the parent directory. */
Test(grid, ablation_plot_against_another_baseline) {
    static const char csv[] =
        "run_id,status,final_top1,seed,dataset,method,ewa_epochs,sweep.moe.method,sweep.moe.ewa_epochs\n"
        "a,ok,0.80,1,fashion-mnist,moe,0,moe,0\nb,ok,0.81,1,fashion-mnist,moe-early-ewa,75,moe-early-ewa,-1\n"
        "c,ok,0.79,2,fashion-mnist,moe,0,moe,0\nd,ok,0.81,2,fashion-mnist,moe-early-ewa,75,moe-early-ewa,-1\n"
        "e,ok,0.97,1,shapes3d,moe,0,moe,0\nf,ok,0.975,1,shapes3d,moe-early-ewa,30,moe-early-ewa,-1\n"
        "g,ok,0.96,2,shapes3d,moe,0,moe,0\nh,ok,0.972,2,shapes3d,moe-early-ewa,30,moe-early-ewa,-1\n";
    char *vs = plot_vs_naive_moe("cpu", csv);
    char *dp = tu_path(vs, "ablation_method.dat"), *bp = tu_path(vs, "ablation_method_diff.dat");
    char *sp = tu_path(vs, "ablation_method.svg");
    char *dat = slurp(dp, NULL), *diff = slurp(bp, NULL), *svg = slurp(sp, NULL);
    cr_assert(dat && diff && svg);
    cr_expect_str_eq(dat, "NaN\tNaN\tNaN\tNaN\n0\t0.795000\t0.007071\tmoe\n1\t0.810000\t0.000000\tmoe-early-ewa\n\n\n"
                          "NaN\tNaN\tNaN\tNaN\n0\t0.965000\t0.007071\tmoe\n1\t0.973500\t0.002121\tmoe-early-ewa\n",
                     "one series per dataset over the methods:\n%s", dat);
    cr_expect(strstr(diff, "1\t1.5000\t") && strstr(diff, "1\t0.8500\t"), "%s", diff);
    cr_expect(strstr(svg, "paired difference to moe (points)") && !strstr(svg, "difference to dense"), "panel (b)");
    cr_expect(!strstr(svg, "chance"), "two datasets: no single chance line");
    cr_expect(strstr(svg, "profile cpu,"), "the caption names the profile of the parent directory");
    free(dat); free(diff); free(svg); free(dp); free(bp); free(sp); free(vs);
}

/* Two datasets at disjoint numbers of experts (A at N = 2, 4; B at 8, 16):
 * the dataset is determined by N but not one-to-one with it, so it still
 * splits the series (one line through both datasets would join unrelated
 * cells). And a table aggregated against the naive MoE that also has a dense
 * cell: the baseline (moe) has no difference and gets none from the older
 * tables' pairing with dense (it drew moe - dense under "difference to moe"). */
Test(grid, ablation_plot_series_and_differences_stay_apart) {
    static const char csv[] =
        "run_id,status,final_top1,seed,dataset,method,experts,sweep.moe.experts\n"
        "a,ok,0.80,1,A,ewa,2,2\nb,ok,0.81,2,A,ewa,2,2\nc,ok,0.82,1,A,ewa,4,4\nd,ok,0.83,2,A,ewa,4,4\n"
        "e,ok,0.90,1,B,ewa,8,8\nf,ok,0.91,2,B,ewa,8,8\ng,ok,0.92,1,B,ewa,16,16\nh,ok,0.93,2,B,ewa,16,16\n";
    char *dat, *svg;
    plot_from_runs(csv, "ablation.sh agg experts", "ablation_experts", &dat, &svg);
    cr_expect(strstr(dat, "\n\n") && strstr(svg, "dataset=A") && strstr(svg, "dataset=B"),
              "two series, one per dataset:\n%s", dat);
    free(dat); free(svg);
    static const char three[] =
        "run_id,status,final_top1,seed,method,sweep.moe.method\n"
        "a,ok,0.70,1,dense,dense\nb,ok,0.72,2,dense,dense\nc,ok,0.80,1,moe,moe\nd,ok,0.79,2,moe,moe\n"
        "e,ok,0.81,1,moe-early-ewa,moe-early-ewa\nf,ok,0.82,2,moe-early-ewa,moe-early-ewa\n";
    char *vs = plot_vs_naive_moe("three", three);
    char *bp = tu_path(vs, "ablation_method_diff.dat"), *diff = slurp(bp, NULL);
    cr_assert(diff);
    char *at_moe = line_starting(diff, "1\t");   /* categories dense 0, moe 1, moe-early-ewa 2 */
    cr_expect(!at_moe, "the baseline moe got a difference: %s\n%s", at_moe, diff);
    char *at_early = line_starting(diff, "2\t");
    cr_expect(at_early != NULL, "moe-early-ewa - moe missing:\n%s", diff);
    free(at_moe); free(at_early); free(diff); free(bp); free(vs);
}

/* plots/routing_mi.sh on a routing_mi.csv of two variants (moe, vimoe) whose
 * L series are listed out of order (last:10 before last:2): one panel per
 * variant, the series in natural order, only the per-layer rows drawn (a
 * deepest-minus-shallowest row and the pooled row are not points), the
 * panels named by the column that varies, with its underscore escaped (not a
 * subscript); a csv without the mean_bits column is refused by name. */
Test(grid, routing_mi_plot_panels_series_and_rows) {
    static const char head[] = "cell,method,shared_expert,blocks,layer,vs_layer,n,mean_bits,sd_bits,ci_low,ci_high,"
                               "max_bits\n";
    static const char rows[] =
        "c1,moe,0,last:10,3,,4,1.10,0.1,1.00,1.20,2\n"
        "c2,moe,0,last:2,2,,4,0.70,0.1,0.60,0.80,2\nc2,moe,0,last:2,3,,4,1.20,0.1,1.10,1.30,2\n"
        "c2,moe,0,last:2,3,2,4,0.50,0.1,0.40,0.60,\n"
        "c3,vimoe,1,last:2,2,,1,0.40,,,,2\nc3,vimoe,1,last:2,3,,4,0.90,0.1,0.80,1.00,2\n"
        "pooled,,,,,,2,0.45,0.1,0.30,0.60,\n";
    char *dir = tu_path(tmp, "mi"), text[2048];
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(text, sizeof text, "%s%s", head, rows);
    free(tu_write(dir, "routing_mi.csv", text, strlen(text)));
    char cwd[1024], *o = NULL;
    cr_assert(getcwd(cwd, sizeof cwd));
    cr_assert_eq(sh_in_tmp(&o, "'%s/plots/routing_mi.sh' mi", cwd), 0, "%s", o);
    free(o);
    char *dp = tu_path(dir, "routing_mi.dat"), *sp = tu_path(dir, "routing_mi.svg");
    char *dat = slurp(dp, NULL), *svg = slurp(sp, NULL);
    cr_assert(dat && svg, "no %s or %s", dp, sp);
    /* blocks in order: moe last:2 (layers 2, 3), moe last:10 (layer 3), vimoe last:2 */
    cr_expect_str_eq(dat, "2 0.70 0.60 0.80\n3 1.20 1.10 1.30\n\n\n3 1.10 1.00 1.20\n\n\n"
                          "2 0.40 0.40 0.40\n3 0.90 0.80 1.00\n", "one seed: no bar, not a shifted row\n%s", dat);
    cr_expect(strstr(svg, "(a) method=moe, shared_expert=0"), "panel a (a subscript splits shared_expert)");
    cr_expect(strstr(svg, "(b) method=vimoe"), "panel b");
    cr_expect(strstr(svg, "moe.blocks = last:10"), "series");
    free(dat); free(svg);
    /* cells without a blocks (or method) column, as when every cell has the
     * same moe.blocks: one series per panel, not a refusal */
    static const char noblocks[] = "cell,dataset,layer,vs_layer,mean_bits,ci_low,ci_high,max_bits\n"
                                   "c1,fashion-mnist,1,,0.5,0.4,0.6,2\nc1,fashion-mnist,3,,0.9,0.8,1.0,2\n"
                                   "c2,shapes3d,1,,0.6,0.5,0.7,2\n";
    free(tu_write(dir, "routing_mi.csv", noblocks, strlen(noblocks)));
    cr_assert_eq(sh_in_tmp(&o, "'%s/plots/routing_mi.sh' mi", cwd), 0, "%s", o);
    free(o);
    dat = slurp(dp, NULL);
    cr_expect_str_eq(dat, "1 0.5 0.4 0.6\n3 0.9 0.8 1.0\n\n\n1 0.6 0.5 0.7\n", "%s", dat);
    free(dat);
    static const char bad[] = "cell,method,blocks,layer,vs_layer,ci_low,ci_high,max_bits\nc,moe,last:1,3,,1,2,2\n";
    free(tu_write(dir, "routing_mi.csv", bad, strlen(bad)));
    cr_assert_neq(sh_in_tmp(&o, "'%s/plots/routing_mi.sh' mi", cwd), 0, "%s", o);
    cr_expect(strstr(o, "column mean_bits missing"), "%s", o);
    free(o); free(dir); free(dp); free(sp);
}

/* Runs a shell command in tmp (the submit directory of the exports below);
 * its stdout and stderr go to tmp/sh.out (returned, malloc'd, in *out if
 * non-NULL). Returns the exit status. */
static int sh_in_tmp(char **out, const char *fmt, ...) {
    char cmd[4096], full[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "cd '%s' && { %s\n} > sh.out 2>&1", tmp, cmd);
    int st = system(full);
    char *p = tu_path(tmp, "sh.out");
    if (out) *out = slurp(p, NULL);
    free(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(grid, export_parallel_and_record) {
    char *grid = write_grid("g.ini", "seeds = 0, 1\n");
    char *out = tu_path(tmp, "out");
    /* exported from tmp: the job lines name out/... relative to it */
    char *o = NULL;
    cr_assert_eq(sh_in_tmp(&o, "'%s' grid --allow-dirty --config g.ini --export parallel --jobs 2", ewa_bin()), 0, "%s", o);
    free(o);
    char *jobs = tu_path(out, "jobs.txt");
    char *text = slurp(jobs, NULL);
    cr_assert(text, "no %s", jobs);
    int lines = 0;
    for (char *q = text; *q; q++) lines += *q == '\n';
    cr_assert_eq(lines, 2);
    cr_assert(strstr(text, " train --config ") && strstr(text, " record --run ") && strstr(text, "--is-ok"), "%s", text);
    /* threads pinned as the local runner does */
    cr_assert(strstr(text, "OMP_WAIT_POLICY") && strstr(text, "--set train.threads="), "%s", text);
    cr_assert(strstr(text, "OUT='out'") && !strstr(text, tmp), "paths not relative to the export dir: %s", text);
    /* run the first job line in tmp, twice: one row only, and the second
     * exits at once without touching the run */
    char *nl = strchr(text, '\n');
    *nl = '\0';
    cr_assert_eq(sh_in_tmp(&o, "%s", text), 0, "job failed: %s\n%s", text, o);
    free(o);
    char *runs_csv = tu_path(out, "runs.csv");
    CsvTable t = read_csv(runs_csv);
    cr_assert_eq(t.nrows, 1);
    cr_assert_eq(count_rows_with(&t, "status", "ok"), 1);
    char id[17];
    snprintf(id, sizeof id, "%s", csv_cell(&t, 0, csv_col(&t, "run_id")));
    csv_table_free(&t);
    long long mt = summary_mtime(out, id);
    cr_assert_eq(sh_in_tmp(&o, "%s", text), 0);
    cr_assert(strstr(o, "already recorded ok"), "%s", o);
    free(o);
    cr_assert_eq(summary_mtime(out, id), mt, "a finished run was retrained");
    t = read_csv(runs_csv);
    cr_assert_eq(t.nrows, 1);
    csv_table_free(&t);
    /* the local runner then only does the other run */
    Proc p = EWA("grid", "--allow-dirty", "--config", grid);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "1 already ok, 1 to run"), "%s", p.err);
    proc_free(&p);
    /* a finished grid: nothing to submit, a message, and no script (the
     * earlier export's are removed) */
    p = EWA("grid", "--allow-dirty", "--config", grid, "--export", "slurm");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.out, "nothing to submit"), "%s", p.out);
    proc_free(&p);
    const char *gone[] = {"jobs.sbatch", "jobs.list", "jobs.txt", "submit.sh", "aggregate.sbatch"};
    for (int i = 0; i < 5; i++) {
        char *q = tu_path(out, gone[i]);
        cr_assert(!exists(q), "%s written for a finished grid", gone[i]);
        free(q);
    }
    free(text); free(jobs); free(runs_csv); free(grid); free(out);
}

/* An export of a --seeds subset into a grid whose plan has other runs
 * without rows: the exported aggregation would refuse the grid as partial,
 * and the export says so at once (not when the cluster's job fails). */
Test(grid, export_of_a_subset_notes_the_other_planned_runs) {
    char *grid = write_grid("g.ini", "seeds = 0, 1, 2\n");
    Proc p = EWA("grid", "--allow-dirty", "--config", grid, "--export", "parallel");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(!strstr(p.err, "more runs than this export"), "%s", p.err);
    proc_free(&p);
    p = EWA("grid", "--allow-dirty", "--config", grid, "--export", "slurm", "--seeds", "1");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "plan.csv plans 2 more runs than this export"), "%s", p.err);
    cr_assert(strstr(p.err, "--partial"), "%s", p.err);
    proc_free(&p);
    /* seed 1's run failed: --retry-failed exports it again; seeds 0 and 2 have no row */
    char *plan = tu_path(tmp, "out/plan.csv"), *runs_csv = tu_path(tmp, "out/runs.csv");
    CsvTable t = read_csv(plan);
    const char *id1 = NULL;
    for (int r = 0; r < t.nrows; r++)
        if (!strcmp(csv_cell(&t, r, csv_col(&t, "seed")), "1")) id1 = csv_cell(&t, r, csv_col(&t, "run_id"));
    cr_assert(id1);
    char row[128];
    snprintf(row, sizeof row, "run_id,status,seed\n%s,failed,1\n", id1);
    free(tu_write(tmp, "out/runs.csv", row, strlen(row)));
    csv_table_free(&t);
    p = EWA("grid", "--allow-dirty", "--config", grid, "--export", "slurm", "--seeds", "1", "--retry-failed");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "plans 2 more runs than this export"), "%s", p.err);
    proc_free(&p);
    p = EWA("grid", "--allow-dirty", "--config", grid, "--export", "slurm", "--seeds", "0,1", "--retry-failed");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "plans 1 more runs than this export"), "%s", p.err);
    proc_free(&p);
    free(plan); free(runs_csv);
    free(grid);
}

Test(grid, export_slurm_resources_relative_paths_and_exit_status) {
    char empty[1200];
    snprintf(empty, sizeof empty, "%s/empty", tmp);
    cr_assert_eq(mkdir(empty, 0755), 0);
    char body[2048];
    /* seed 1's run cannot read its data: its task must fail */
    snprintf(body, sizeof body,
             "seeds = 0\n[sweep]\ndata.dir = %s, %s\n"
             "[slurm]\ntime = 1-02:30\nmem = 500M\npartition = cpu,short\ncpus_per_task = 3\n"
             "array_throttle = 1\nsbatch = --account=ewa\nsbatch = --qos=low\n",
             data_dir, empty);
    char *grid = write_grid("g.ini", body);
    char *o = NULL;
    cr_assert_eq(sh_in_tmp(&o, "'%s' grid --allow-dirty --config g.ini --export slurm", ewa_bin()), 0, "%s", o);
    cr_assert(strstr(o, "sh out/submit.sh"), "%s", o);
    free(o);
    char *sb = tu_path(tmp, "out/jobs.sbatch");
    char *s = slurp(sb, NULL);
    cr_assert(s, "no jobs.sbatch");
    const char *want[] = {"#SBATCH --array=1-2%1\n", "#SBATCH --cpus-per-task=3\n", "#SBATCH --time=1-02:30\n",
                          "#SBATCH --mem=500M\n", "#SBATCH --partition=cpu,short\n", "#SBATCH --account=ewa\n",
                          "#SBATCH --qos=low\n", "#SBATCH --output=out/runs/slurm-%A_%a.log\n", "OUT='out'\n"};
    for (int i = 0; i < 9; i++) cr_assert(strstr(s, want[i]), "no '%s' in:\n%s", want[i], s);
    cr_assert(!strstr(s, tmp), "an absolute path in jobs.sbatch:\n%s", s);
    char *sub = tu_path(tmp, "out/submit.sh"), *agg = tu_path(tmp, "out/aggregate.sbatch");
    char *st = slurp(sub, NULL), *at = slurp(agg, NULL);
    cr_assert(st && strstr(st, "--dependency=afterok:") && strstr(st, "--kill-on-invalid-dep=yes"), "%s", st ? st : "");
    cr_assert(at && strstr(at, " aggregate --runs ") && strstr(at, "#SBATCH --account=ewa\n"), "%s", at ? at : "");
    /* the tasks, run as Slurm would (from the submit directory): task 1
     * trains and exits 0, task 2 fails and exits non-zero, both recorded */
    cr_assert_eq(sh_in_tmp(&o, "SLURM_ARRAY_TASK_ID=1 bash out/jobs.sbatch"), 0, "%s", o);
    free(o);
    int rc = sh_in_tmp(&o, "SLURM_ARRAY_TASK_ID=2 bash out/jobs.sbatch");
    cr_assert_neq(rc, 0, "a failed run's task exited 0:\n%s", o);
    cr_assert(strstr(o, "failed (exit"), "%s", o);
    free(o);
    /* a task index past the list: an error, and no junk row */
    cr_assert_neq(sh_in_tmp(&o, "SLURM_ARRAY_TASK_ID=3 bash out/jobs.sbatch"), 0);
    cr_assert(strstr(o, "no line 3 in out/jobs.list"), "%s", o);
    free(o);
    char *runs_csv = tu_path(tmp, "out/runs.csv");
    CsvTable t = read_csv(runs_csv);
    cr_assert_eq(t.nrows, 2);
    cr_assert_eq(count_rows_with(&t, "status", "ok"), 1);
    cr_assert_eq(count_rows_with(&t, "status", "failed"), 1);
    csv_table_free(&t);
    /* submitted from elsewhere: a clear error */
    cr_assert_neq(sh_in_tmp(&o, "cd out && SLURM_ARRAY_TASK_ID=1 bash jobs.sbatch"), 0);
    cr_assert(strstr(o, "submit from the directory the grid was exported in"), "%s", o);
    free(o);
    free(s); free(sb); free(st); free(at); free(sub); free(agg); free(runs_csv); free(grid);
}

Test(grid, slurm_section_errors_name_the_line) {
    const char *bad[][2] = {
        {"[slurm]\ntime = 2h\n", "line 6: [slurm] time = '2h'"},
        {"[slurm]\nmem = lots\n", "line 6: [slurm] mem = 'lots'"},
        {"[slurm]\ncpus_per_task = 0\n", "line 6: [slurm] cpus_per_task = '0'"},
        {"[slurm]\narray_throttle = x\n", "line 6: [slurm] array_throttle = 'x'"},
        {"[slurm]\npartition = a b\n", "line 6: [slurm] partition = 'a b'"},
        {"[slurm]\nsbatch = --array=1-3\n", "--array and --output are set by the export"},
        {"[slurm]\nsbatch = account\n", "expected an sbatch option"},
        {"[slurm]\ntime = 10\ntime = 20\n", "line 7: [slurm] time given twice"},
        {"[slurm]\nnodes = 2\n", "line 6: unknown key 'nodes' in [slurm]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char body[512];
        snprintf(body, sizeof body, "seeds = 0\n%s", bad[i][0]);
        char *grid = write_grid("bad.ini", body);
        Proc p = EWA("grid", "--config", grid, "--export", "slurm");
        cr_assert_eq(p.status, 2, "%s: exit %d", bad[i][0], p.status);
        cr_assert(strstr(p.err, bad[i][1]), "want '%s' in:\n%s", bad[i][1], p.err);
        proc_free(&p);
        free(grid);
    }
}

/* A runs.csv migrated to the sweep.KEY columns: its older rows have them
 * empty and are grouped by their packed sweep column, with the new rows. */
Test(grid, aggregate_groups_migrated_rows_with_new_ones) {
    static const char csv[] = "run_id,sweep,status,final_top1,seed,method,sweep.train.lr\n"
                              "a,train.lr=0.1,ok,0.5,0,dense,\n"
                              "b,train.lr=0.1,ok,0.6,1,dense,0.1\n"
                              "c,train.lr=0.2,ok,0.7,0,dense,0.2\n";
    Proc p = aggregate_text(csv);
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.out, "into 2 cells"), "%s", p.out);
    proc_free(&p);
}
