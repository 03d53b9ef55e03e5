/* Issue 11, kind 9: interrupted runs, end to end through the real binary
 * ($EWA_BIN). A run stopped by SIGINT/SIGTERM records status `interrupted`
 * with its step and exits 128 + the signal; a run directory that holds a run
 * is refused unless --overwrite (or --resume for an interrupted one); and
 * `train --resume DIR` continues from the last epoch checkpoint to the same
 * result, bit for bit, as a run that was never interrupted (final.safetensors
 * bytes, summary and metrics), for dense, EWA, a routed MoE and a 3D model.
 *
 * The deterministic interruptions use the test hook EWA_TEST_STOP_AT_STEP=N
 * (experiments/train.c: the run sends SIGINT to its own process before step N
 * and waits for the flag, so the real signal-waiting thread and stop path
 * run); one test sends a real SIGTERM from outside. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "../experiments/csvio.h"
#include "testproc.h"
#include "testutil.h"

enum { N_TRAIN = 200, N_TEST = 100 };

static char *tmp, *data_dir, *cfg_path;
static char data_set[600];
static int n_spawned;

static void setup(void) {
    tmp = tu_tmpdir();
    data_dir = tu_path(tmp, "data");
    cr_assert_eq(mkdir(data_dir, 0755), 0, "mkdir %s", data_dir);
    write_split(data_dir, "train", N_TRAIN, N_TRAIN, 1);
    write_split(data_dir, "t10k", N_TEST, N_TEST, 2);
    snprintf(data_set, sizeof data_set, "data.dir=%s", data_dir);
    cfg_path = tu_write(tmp, "empty.ini", "", 0);
    n_spawned = 0;
    unsetenv("EWA_TEST_STOP_AT_STEP");
}

static void teardown(void) {
    unsetenv("EWA_TEST_STOP_AT_STEP");
    tu_rmrf(tmp);
    free(tmp); free(data_dir); free(cfg_path);
}

TestSuite(resume, .init = setup, .fini = teardown, .timeout = 240);

#define EWA(...) run_list(tmp, &n_spawned, (const char *const[]){__VA_ARGS__, NULL})

/* `ewa train` of a tiny 2D model, 3 epochs (180 training images after the
 * 20 held out for validation: 6 steps of 32 per epoch), with augmentation,
 * into out; mode ("--overwrite", "--resume" or NULL) and extra --set
 * arguments follow. stop_at > 0 sets EWA_TEST_STOP_AT_STEP. */
static Proc train2d(const char *out, const char *mode, long stop_at, const char *const *extra) {
    const char *base[] = {
        "train", "--config", cfg_path, "--set", data_set,
        "--set", "data.augment=1", "--set", "train.epochs=3", "--set", "train.warmup_epochs=1",
        "--set", "model.dim=16", "--set", "model.depth=2", "--set", "model.heads=2",
        "--set", "model.mlp_ratio=2", "--set", "model.patch=7",
        "--set", "train.batch_size=32", "--set", "train.threads=1",
    };
    enum { NB = sizeof base / sizeof base[0] };
    const char *args[NB + 40];
    int n = 0;
    for (int i = 0; i < NB; i++) args[n++] = base[i];
    if (mode && !strcmp(mode, "--resume")) {
        args[n++] = "--resume";
        args[n++] = out;
    } else {
        args[n++] = "--out";
        args[n++] = out;
        if (mode) args[n++] = mode;
    }
    for (int i = 0; extra && extra[i]; i++) args[n++] = extra[i];
    args[n] = NULL;
    char s[32];
    snprintf(s, sizeof s, "%ld", stop_at);
    if (stop_at > 0) setenv("EWA_TEST_STOP_AT_STEP", s, 1);
    Proc p = run_list(tmp, &n_spawned, args);
    unsetenv("EWA_TEST_STOP_AT_STEP");
    return p;
}

/* Column col of the first row of dir/file (malloc'd; "" if absent). */
static char *csv_first(const char *dir, const char *file, const char *col) {
    char *path = tu_path(dir, file);
    CsvTable t;
    Err e = {0};
    cr_assert_eq(csv_read_file(path, &t, &e), 0, "%s", e.msg);
    int c = csv_col(&t, col);
    char *v = strdup(c >= 0 && t.nrows ? csv_cell(&t, 0, c) : "");
    csv_table_free(&t);
    free(path);
    return v;
}

static void expect_bytes_equal(const char *a_dir, const char *b_dir, const char *file) {
    char *pa = tu_path(a_dir, file), *pb = tu_path(b_dir, file);
    size_t la = 0, lb = 0;
    char *a = slurp(pa, &la), *b = slurp(pb, &lb);
    cr_assert(a && b, "%s or %s missing", pa, pb);
    cr_assert(la == lb && !memcmp(a, b, la), "%s and %s differ", pa, pb);
    free(a); free(b); free(pa); free(pb);
}

/* Every column of dir/file but the timings (wall_s, pass_s, images_per_s)
 * is equal in both runs, row by row. */
static void expect_rows_equal(const char *a_dir, const char *b_dir, const char *file) {
    char *pa = tu_path(a_dir, file), *pb = tu_path(b_dir, file);
    CsvTable a, b;
    Err e = {0};
    cr_assert_eq(csv_read_file(pa, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(csv_read_file(pb, &b, &e), 0, "%s", e.msg);
    cr_assert_eq(a.nrows, b.nrows, "%s: %d rows, %s: %d", pa, a.nrows, pb, b.nrows);
    cr_assert_eq(a.ncols, b.ncols);
    for (int c = 0; c < a.ncols; c++) {
        const char *h = a.header[c];
        if (!strcmp(h, "wall_s") || !strcmp(h, "pass_s") || !strcmp(h, "images_per_s")) continue;
        for (int r = 0; r < a.nrows; r++)
            cr_assert_str_eq(csv_cell(&a, r, c), csv_cell(&b, r, c), "%s row %d column %s", file, r, h);
    }
    csv_table_free(&a); csv_table_free(&b);
    free(pa); free(pb);
}

/* Trains `method` (extra --set args) uninterrupted into A, and stopped
 * before step `stop` then resumed into B (twice, if stop2 > 0: stopped
 * again before step stop2 of the resumed run); both must agree bitwise. */
static void resume_matches(const char *name, long stop, long stop2, const char *const *extra) {
    char an[64], bn[64];
    snprintf(an, sizeof an, "%s_a", name);
    snprintf(bn, sizeof bn, "%s_b", name);
    char *a = tu_path(tmp, an), *b = tu_path(tmp, bn);
    Proc p = train2d(a, NULL, 0, extra);
    cr_assert_eq(p.status, 0, "uninterrupted run: exit %d\n%s", p.status, p.err);
    proc_free(&p);
    p = train2d(b, NULL, stop, extra);
    cr_assert_eq(p.status, 130, "interrupted run: exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "interrupted by signal 2"), "%s", p.err);
    proc_free(&p);
    if (stop2 > 0) {
        p = train2d(b, "--resume", stop2, extra);
        cr_assert_eq(p.status, 130, "second interruption: exit %d\n%s", p.status, p.err);
        proc_free(&p);
    }
    p = train2d(b, "--resume", 0, extra);
    cr_assert_eq(p.status, 0, "resumed run: exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "resumed "), "%s", p.err);
    proc_free(&p);
    expect_bytes_equal(a, b, "final.safetensors");
    expect_rows_equal(a, b, "metrics.csv");
    static const char *const cols[] = {"final_top1", "best_top1", "final_test_loss", "steps", "best_epoch",
                                       "val_top1", "drop_rate", "status", "config_hash"};
    for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) {
        char *va = csv_first(a, "summary.csv", cols[i]), *vb = csv_first(b, "summary.csv", cols[i]);
        cr_assert_str_eq(va, vb, "summary %s: %s uninterrupted, %s resumed", cols[i], va, vb);
        free(va); free(vb);
    }
    char *st = tu_path(b, "train_state.safetensors");
    cr_assert(!tu_file_exists(st), "the epoch checkpoint outlived the finished run");
    cr_assert_eq(tu_count_tmp_files(b), 0);
    free(st); free(a); free(b);
}

Test(resume, dense_is_bitwise_identical) {
    resume_matches("dense", 9, 0, (const char *const[]){NULL});
}

Test(resume, ewa_is_bitwise_identical_after_two_interruptions) {
    /* stopped in epoch 2, then again in epoch 3 of the resumed run */
    resume_matches("ewa", 8, 15, (const char *const[]){"--set", "moe.method=ewa", NULL});
}

Test(resume, routed_moe_is_bitwise_identical) {
    resume_matches("moe", 10, 0, (const char *const[]){"--set", "moe.method=moe", "--set", "moe.top_k=2", NULL});
    char *a = tu_path(tmp, "moe_a"), *b = tu_path(tmp, "moe_b");
    expect_rows_equal(a, b, "routing.csv");
    expect_rows_equal(a, b, "moe_metrics.csv");
    free(a); free(b);
}

Test(resume, eval_every_and_max_steps_are_bitwise_identical) {
    /* an epoch without evaluation is checkpointed too; max_steps ends mid-epoch */
    resume_matches("sparse", 7, 0,
                   (const char *const[]){"--set", "train.eval_every=2", "--set", "train.max_steps=16", NULL});
}

Test(resume, point_cloud_model_is_bitwise_identical) {
    static const char *const pts[] = {
        "--set", "data.dataset=shapes3d", "--set", "data.points=64", "--set", "data.groups=8",
        "--set", "data.group_size=8", "--set", "data.train_size=140", "--set", "data.test_size=42",
        "--set", "model.pn_width=8", "--set", "moe.method=ewa", NULL};
    /* 140 clouds, 14 held out for validation: 4 steps per epoch */
    resume_matches("points", 5, 0, pts);
}

Test(resume, interrupted_run_records_status_step_and_keeps_no_checkpoint) {
    char *run = tu_path(tmp, "run");
    Proc p = train2d(run, NULL, 9, NULL);
    cr_assert_eq(p.status, 130, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.out, "status=interrupted") && strstr(p.out, "steps=9"), "%s", p.out);
    proc_free(&p);
    char *st = csv_first(run, "summary.csv", "status"), *steps = csv_first(run, "summary.csv", "steps");
    cr_assert_str_eq(st, "interrupted");
    cr_assert_str_eq(steps, "9");
    free(st); free(steps);
    char *fin = tu_path(run, "final.safetensors"), *state = tu_path(run, "train_state.safetensors");
    cr_assert(!tu_file_exists(fin), "an interrupted run wrote final.safetensors");
    cr_assert(tu_file_exists(state), "no epoch checkpoint after epoch 1");
    /* metrics: epoch 1 only (train, val, test rows); the stopped epoch has none */
    char *mp = tu_path(run, "metrics.csv");
    CsvTable t;
    Err e = {0};
    cr_assert_eq(csv_read_file(mp, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.nrows, 3);
    for (int r = 0; r < t.nrows; r++) cr_assert_str_eq(csv_cell(&t, r, csv_col(&t, "epoch")), "1");
    csv_table_free(&t);
    cr_assert_eq(tu_count_tmp_files(run), 0);
    /* stopped before its first epoch ended: no checkpoint; --resume starts over */
    char *run0 = tu_path(tmp, "run0");
    p = train2d(run0, NULL, 2, NULL);
    cr_assert_eq(p.status, 130, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "no epoch had ended"), "%s", p.err);
    proc_free(&p);
    p = train2d(run0, "--resume", 0, NULL);
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "starting from step 0"), "%s", p.err);
    proc_free(&p);
    free(fin); free(state); free(mp); free(run); free(run0);
}

Test(resume, run_directories_are_refused_unless_asked) {
    char *run = tu_path(tmp, "run");
    Proc p = train2d(run, NULL, 0, NULL);
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, p.err);
    proc_free(&p);
    char *fin = tu_path(run, "final.safetensors");
    size_t l0 = 0;
    char *before = slurp(fin, &l0);
    /* the same --out again: refused, nothing touched */
    p = train2d(run, NULL, 0, NULL);
    cr_assert_eq(p.status, 2, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "holds a finished run (status ok") && strstr(p.err, "--overwrite"), "%s", p.err);
    proc_free(&p);
    p = train2d(run, "--resume", 0, NULL);
    cr_assert_eq(p.status, 2, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "nothing to resume"), "%s", p.err);
    proc_free(&p);
    size_t l1 = 0;
    char *after = slurp(fin, &l1);
    cr_assert(after && l0 == l1 && !memcmp(before, after, l0), "a refused run changed the checkpoint");
    free(after);
    /* --overwrite trains it again */
    p = train2d(run, "--overwrite", 0, (const char *const[]){"--set", "train.epochs=1", NULL});
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, p.err);
    proc_free(&p);
    char *ep = csv_first(run, "summary.csv", "epochs");
    cr_assert_str_eq(ep, "1");
    free(ep);
    /* an interrupted run: refused without --resume or --overwrite */
    p = train2d(run, "--overwrite", 9, NULL);
    cr_assert_eq(p.status, 130, "exit %d\n%s", p.status, p.err);
    proc_free(&p);
    p = train2d(run, NULL, 0, NULL);
    cr_assert_eq(p.status, 2, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "holds an interrupted run") && strstr(p.err, "--resume"), "%s", p.err);
    proc_free(&p);
    /* a different config is refused, naming the key */
    p = train2d(run, "--resume", 0, (const char *const[]){"--set", "train.lr=0.01", NULL});
    cr_assert_eq(p.status, 2, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "train.lr = 0.001") && strstr(p.err, "train.lr = 0.01"), "%s", p.err);
    proc_free(&p);
    /* --resume DIR alone takes DIR/config.ini */
    p = EWA("train", "--resume", run);
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, p.err);
    proc_free(&p);
    /* usage */
    p = EWA("train", "--resume", run, "--overwrite");
    cr_assert_eq(p.status, 2);
    cr_assert(strstr(p.err, "exclude each other"), "%s", p.err);
    proc_free(&p);
    p = EWA("train", "--config", cfg_path);
    cr_assert_eq(p.status, 2);
    cr_assert(strstr(p.err, "--out"), "%s", p.err);
    proc_free(&p);
    free(before); free(fin); free(run);
}

Test(resume, stale_temporary_files_of_dead_writers_are_removed) {
    char *run = tu_path(tmp, "run");
    cr_assert_eq(mkdir(run, 0755), 0);
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    cr_assert_gt(dead, 0);
    waitpid(dead, NULL, 0);
    char name[64];
    snprintf(name, sizeof name, "metrics.csv.tmp.%d", (int)dead);
    char *stale = tu_write(run, name, "epoch,split\n1,tr", 16);
    snprintf(name, sizeof name, "summary.csv.tmp.%d", (int)getpid());   /* a live writer: kept */
    char *live = tu_write(run, name, "x", 1);
    Proc p = train2d(run, NULL, 0, (const char *const[]){"--set", "train.epochs=1", NULL});
    cr_assert_eq(p.status, 0, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "removed 1 temporary file"), "%s", p.err);
    proc_free(&p);
    cr_assert(!tu_file_exists(stale), "%s was left", stale);
    cr_assert(tu_file_exists(live), "the temporary file of a live process was removed");
    free(stale); free(live); free(run);
}

Test(resume, sigterm_from_outside_stops_at_the_next_step) {
    char *run = tu_path(tmp, "run");
    /* long enough never to finish before the signal: 400 epochs */
    const char *args[] = {"train", "--config", cfg_path, "--out", run, "--set", data_set,
                          "--set", "train.epochs=400", "--set", "model.dim=16", "--set", "model.depth=1",
                          "--set", "model.heads=2", "--set", "model.patch=7", "--set", "train.threads=1",
                          "--set", "train.batch_size=32", NULL};
    char o[PROC_PATH], e[PROC_PATH];
    pid_t pid = proc_spawn(tmp, &n_spawned, args, o, e);
    char *state = tu_path(run, "train_state.safetensors");
    for (int k = 0; k < 120000 && !tu_file_exists(state); k++) {   /* at most 2 minutes */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert(tu_file_exists(state), "no epoch checkpoint appeared");
    kill(pid, SIGTERM);
    Proc p = proc_wait(pid, o, e, false);
    cr_assert_eq(p.status, 143, "exit %d\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "interrupted by signal 15"), "%s", p.err);
    proc_free(&p);
    char *st = csv_first(run, "summary.csv", "status");
    cr_assert_str_eq(st, "interrupted");
    cr_assert_eq(tu_count_tmp_files(run), 0);
    free(st); free(state); free(run);
}
