/* End-to-end tests of the command line (docs/DESIGN.md 4, 5, 6): they run the real
 * binary ($EWA_BIN) as a child process, capture its stdout, stderr and exit
 * code, and inspect the run directory it leaves.
 *
 * The data is a tiny Fashion-MNIST-format set generated here (gzip IDX files,
 * 200 train / 100 test images of 28x28, 10 balanced classes). Class k is drawn
 * as bright lines on a dark noisy background: horizontal lines at rows
 * k, k+7, k+14, k+21 for k < 7, vertical lines at columns 2(k-7) + 7j for
 * k >= 7. With 7x7 patches every patch token carries the class, so the tiny
 * model (dim 16, depth 1) learns it in 3 epochs: over seeds 0..11 the final
 * top-1 was 0.90-1.00; the test asks for > 0.5. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>

#include "../experiments/config.h"
#include "../experiments/csvio.h"
#include "testproc.h"
#include "testutil.h"

enum { N_TRAIN = 200, N_TEST = 100, EPOCHS = 3 };

static char *tmp;          /* per-test temporary directory */
static char *data_dir;     /* tmp/data: the generated dataset */
static char *cfg_path;     /* tmp/tiny.ini: the training recipe */
static char data_set[600]; /* "data.dir=<data_dir>" */
static int n_spawned;

/* ---------------------------------------------------------------- setup */

static void setup(void) {
    tiny_data_setup(&tmp, &data_dir, data_set, N_TRAIN, N_TEST);
    static const char ini[] =
        "; tiny recipe for test_cli\n"
        "[data]\n"
        "augment = 0\n"
        "[train]\n"
        "epochs = 3\n"
        "lr = 1e-2\n"
        "warmup_epochs = 0\n";
    cfg_path = tu_write(tmp, "tiny.ini", ini, strlen(ini));
    n_spawned = 0;
}

static void teardown(void) {
    tiny_data_teardown(tmp, data_dir);
    free(cfg_path);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 180);

/* ---------------------------------------------------------------- running */

#define EWA(...) run_list(tmp, &n_spawned, (const char *const[]){__VA_ARGS__, NULL})

/* `ewa train` of the tiny recipe into out, with the given seed and extra
 * arguments (NULL-terminated list, may be empty). */
static Proc train_list(const char *out, int seed, const char *const *extra) {
    char seed_set[64];
    snprintf(seed_set, sizeof seed_set, "train.seed=%d", seed);
    const char *base[] = {
        "train", "--config", cfg_path, "--out", out,
        "--set", data_set,
        "--set", "model.dim=16", "--set", "model.depth=1", "--set", "model.heads=2",
        "--set", "model.mlp_ratio=2", "--set", "model.patch=7",
        "--set", "train.batch_size=32", "--set", "train.threads=1",
        "--set", seed_set,
    };
    return run_base_extra(tmp, &n_spawned, base, sizeof base / sizeof base[0], extra);
}
#define TRAIN(out, seed) train_list(out, seed, NULL)
#define TRAIN_X(out, seed, ...) train_list(out, seed, (const char *const[]){__VA_ARGS__, NULL})

/* A successful tiny training run into tmp/name; returns the run dir. */
static char *train_ok(const char *name, int seed) {
    char *run = tu_path(tmp, name);
    Proc p = TRAIN(run, seed);
    cr_assert_eq(p.status, 0, "ewa train exited %d; stderr:\n%s", p.status, p.err);
    proc_free(&p);
    return run;
}

/* Exit status code and every needle in stderr. */
static void expect_fail(Proc *p, int code, const char *const *needles) {
    cr_assert_eq(p->status, code, "exit %d, expected %d; stderr:\n%s", p->status, code, p->err);
    cr_assert(p->err[0], "no message on stderr");
    for (; *needles; needles++)
        cr_assert(strstr(p->err, *needles), "stderr lacks '%s':\n%s", *needles, p->err);
}
#define EXPECT_FAIL(p, code, ...) expect_fail(&(p), code, (const char *const[]){__VA_ARGS__, NULL})

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int file_exists_in(const char *dir, const char *name) {
    char *p = tu_path(dir, name);
    int e = exists(p);
    free(p);
    return e;
}

/* No temporary file (*.tmp.*) left in dir. */
static void assert_no_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        cr_assert(!strstr(e->d_name, ".tmp."), "leftover temporary file %s/%s", dir, e->d_name);
    closedir(d);
}

static CsvTable read_csv(const char *dir, const char *name) {
    char *path = tu_path(dir, name);
    CsvTable t;
    Err err = {0};
    cr_assert_eq(csv_read_file(path, &t, &err), 0, "cannot read %s: %s", path, err.msg);
    free(path);
    return t;
}

static int col(const CsvTable *t, const char *name) {
    int c = csv_col(t, name);
    cr_assert_geq(c, 0, "CSV has no column '%s'", name);
    return c;
}

static const char *cell(const CsvTable *t, int row, const char *name) {
    return csv_cell(t, row, col(t, name));
}

/* SHA-256 of path by coreutils' sha256sum (an implementation independent of
 * the one bin/ewa links), 64 hex digits into hex. */
static void sha256sum(const char *path, char hex[65]) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f, "cannot run sha256sum");
    cr_assert_eq(fscanf(f, "%64s", hex), 1, "no output from %s", cmd);
    cr_assert_eq(pclose(f), 0, "%s failed", cmd);
    cr_assert_eq(strlen(hex), 64, "sha256sum printed '%s'", hex);
}

static const char *last_line(char *text) {
    size_t n = strlen(text);
    while (n && text[n - 1] == '\n') text[--n] = '\0';
    char *nl = strrchr(text, '\n');
    return nl ? nl + 1 : text;
}

/* ---------------------------------------------------------------- usage */

Test(cli, no_arguments_is_a_usage_error) {
    Proc p = run_list(tmp, &n_spawned, (const char *const[]){NULL});
    EXPECT_FAIL(p, 2, "usage", "ewa train", "ewa eval");
    proc_free(&p);
}

Test(cli, help_prints_usage_and_succeeds) {
    Proc p = EWA("--help");
    cr_assert_eq(p.status, 0, "exit %d; stderr:\n%s", p.status, p.err);
    cr_assert(strstr(p.out, "usage"), "stdout lacks usage:\n%s", p.out);
    proc_free(&p);
}

Test(cli, unknown_command_is_a_usage_error) {
    Proc p = EWA("frobnicate");
    EXPECT_FAIL(p, 2, "usage", "frobnicate");
    proc_free(&p);
}

Test(cli, unknown_option_is_a_usage_error) {
    char *run = tu_path(tmp, "run");
    Proc p = EWA("train", "--config", cfg_path, "--out", run, "--bogus", "1");
    EXPECT_FAIL(p, 2, "usage", "--bogus");
    cr_assert(!exists(run), "a usage error created the run directory %s", run);
    proc_free(&p);
    p = EWA("eval", "--checkpoint", "x.safetensors", "--out", run);
    EXPECT_FAIL(p, 2, "usage", "--out");
    proc_free(&p);
    free(run);
}

Test(cli, missing_out_is_a_usage_error) {
    Proc p = EWA("train", "--config", cfg_path, "--set", data_set);
    EXPECT_FAIL(p, 2, "usage", "--out");
    proc_free(&p);
}

Test(cli, missing_option_value_or_checkpoint_is_a_usage_error) {
    Proc p = EWA("train", "--config");
    EXPECT_FAIL(p, 2, "usage", "--config");
    proc_free(&p);
    p = EWA("eval", "--set", data_set);
    EXPECT_FAIL(p, 2, "usage", "--checkpoint");
    proc_free(&p);
}

Test(cli, every_command_has_help) {
    static const char *const cmds[] = {"train", "eval", "grid", "record", "aggregate", "regress", "keys"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        Proc p = EWA(cmds[i], "--help");
        cr_assert_eq(p.status, 0, "ewa %s --help: exit %d; stderr:\n%s", cmds[i], p.status, p.err);
        char want[64];
        snprintf(want, sizeof want, "ewa %s", cmds[i]);
        cr_assert(strstr(p.out, "usage") && strstr(p.out, want) && strstr(p.out, "--help"),
                  "ewa %s --help printed:\n%s", cmds[i], p.out);
        proc_free(&p);
    }
    Proc p = EWA("train", "--help");
    cr_assert(strstr(p.out, "--config FILE") && strstr(p.out, "--set"), "%s", p.out);
    proc_free(&p);
}

Test(cli, version_prints_the_compiled_in_commit) {
    Proc p = EWA("--version");
    cr_assert_eq(p.status, 0, "exit %d; stderr:\n%s", p.status, p.err);
    cr_assert(!strncmp(p.out, "ewa ", 4), "%s", p.out);
    /* the commit the Makefile compiled in: 12 hex digits, or "unknown" */
    const char *c = p.out + 4;
    size_t hex = strspn(c, "0123456789abcdef");
    cr_assert(hex == 12 || !strncmp(c, "unknown", 7), "not a commit: %s", p.out);
    proc_free(&p);
    p = EWA("grid", "--version");
    cr_assert_eq(p.status, 0);
    cr_assert(!strncmp(p.out, "ewa ", 4), "%s", p.out);
    proc_free(&p);
}

Test(cli, option_equals_value_and_stray_arguments) {
    char cfg_opt[700], set_opt[700];
    snprintf(cfg_opt, sizeof cfg_opt, "--config=%s", cfg_path);
    snprintf(set_opt, sizeof set_opt, "--set=%s", data_set);
    char *run = tu_path(tmp, "run");
    /* --opt=value is understood: the config error proves the file was read */
    Proc p = EWA("train", cfg_opt, "--out", run, set_opt, "--set=train.epochz=1");
    EXPECT_FAIL(p, 2, "--set 'train.epochz=1'", "did you mean 'train.epochs'?");
    proc_free(&p);
    p = EWA("train", cfg_opt, "--out", run, "stray");
    EXPECT_FAIL(p, 2, "unexpected argument 'stray'");
    proc_free(&p);
    p = EWA("grid", "--config", cfg_path, "--dry-run=1");
    EXPECT_FAIL(p, 2, "'--dry-run' takes no value");
    proc_free(&p);
    p = EWA("train", cfg_opt, cfg_opt, "--out", run);
    EXPECT_FAIL(p, 2, "'--config' given twice");
    proc_free(&p);
    cr_assert(!exists(run), "a usage error created the run directory %s", run);
    free(run);
}

Test(cli, keys_lists_every_key_with_type_default_and_doc) {
    Proc p = EWA("keys");
    cr_assert_eq(p.status, 0, "exit %d; stderr:\n%s", p.status, p.err);
    /* every key of the resolved config appears, with its default */
    RunConfig c;
    config_defaults(&c);
    char *ini = config_to_ini(&c), *save = NULL, section[32] = "";
    int nkeys = 0;
    for (char *line = strtok_r(ini, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (sscanf(line, "[%31[^]]]", section) == 1) continue;
        char key[64];
        if (sscanf(line, "%63s =", key) != 1) continue;
        char want[128];
        snprintf(want, sizeof want, "\n%s.%s ", section, key);
        cr_assert(strstr(p.out, want), "ewa keys lacks %s.%s:\n%s", section, key, p.out);
        nkeys++;
    }
    cr_assert_gt(nkeys, 40);
    cr_assert(strstr(p.out, "moe.beta") && strstr(p.out, "float") && strstr(p.out, "0.3") &&
              strstr(p.out, "EWA share rate"), "%s", p.out);
    free(ini);
    proc_free(&p);
}

Test(cli, mistyped_method_and_key_get_a_suggestion) {
    char *run = tu_path(tmp, "run");
    Proc p = EWA("train", "--config", cfg_path, "--out", run, "--set", "moe.method=ewaa");
    EXPECT_FAIL(p, 2, "moe.method", "ewaa", "did you mean 'ewa'?");
    proc_free(&p);
    p = EWA("train", "--config", cfg_path, "--out", run, "--set", "model.preset=vit-mni");
    EXPECT_FAIL(p, 2, "vit-mni", "did you mean 'vit-mini'?");
    proc_free(&p);
    static const char ini[] = "[train]\nbeta = 0.3\n";
    char *cfg = tu_write(tmp, "wrongsec.ini", ini, strlen(ini));
    p = EWA("train", "--config", cfg, "--out", run);
    EXPECT_FAIL(p, 2, cfg, "line 2", "did you mean 'moe.beta'?");
    proc_free(&p);
    cr_assert(!exists(run), "a config error created the run directory");
    free(cfg); free(run);
}

/* ---------------------------------------------------------------- config errors */

Test(cli, missing_config_file) {
    char *run = tu_path(tmp, "run"), *cfg = tu_path(tmp, "no-such.ini");
    Proc p = EWA("train", "--config", cfg, "--out", run);
    EXPECT_FAIL(p, 2, cfg);
    cr_assert(!exists(run), "a config error created the run directory");
    proc_free(&p);
    free(run); free(cfg);
}

Test(cli, unknown_key_in_config_file) {
    static const char ini[] = "[train]\nepochs = 3\nepochz = 4\n";
    char *cfg = tu_write(tmp, "unknown.ini", ini, strlen(ini)), *run = tu_path(tmp, "run");
    Proc p = EWA("train", "--config", cfg, "--out", run);
    EXPECT_FAIL(p, 2, cfg, "line 3", "epochz");
    cr_assert(!exists(run), "a config error created the run directory");
    proc_free(&p);
    free(cfg); free(run);
}

Test(cli, bad_value_in_config_file_and_in_set) {
    static const char ini[] = "[train]\nepochs = abc\n";
    char *cfg = tu_write(tmp, "badval.ini", ini, strlen(ini)), *run = tu_path(tmp, "run");
    Proc p = EWA("train", "--config", cfg, "--out", run);
    EXPECT_FAIL(p, 2, cfg, "line 2", "train.epochs", "abc");
    proc_free(&p);
    p = EWA("train", "--config", cfg_path, "--out", run, "--set", "train.epochs=abc");
    EXPECT_FAIL(p, 2, "--set", "train.epochs", "abc");
    cr_assert(!exists(run), "a config error created the run directory");
    proc_free(&p);
    free(cfg); free(run);
}

Test(cli, bad_set_syntax) {
    char *run = tu_path(tmp, "run");
    Proc p = EWA("train", "--config", cfg_path, "--out", run, "--set", "trainepochs");
    EXPECT_FAIL(p, 2, "trainepochs", "section.key=value");
    proc_free(&p);
    p = EWA("train", "--config", cfg_path, "--out", run, "--set", "train.epochs");
    EXPECT_FAIL(p, 2, "train.epochs", "section.key=value");
    proc_free(&p);
    p = EWA("train", "--config", cfg_path, "--out", run, "--set", "train.nokey=1");
    EXPECT_FAIL(p, 2, "nokey");
    cr_assert(!exists(run), "a config error created the run directory");
    proc_free(&p);
    free(run);
}

Test(cli, moe_beta_out_of_range) {
    /* N = 4 experts: beta must lie in [0, 3/4]. */
    static const char ini[] = "[moe]\nmethod = ewa\nexperts = 4\nbeta = 0.9\n";
    char *cfg = tu_write(tmp, "beta.ini", ini, strlen(ini)), *run = tu_path(tmp, "run");
    Proc p = EWA("train", "--config", cfg, "--out", run, "--set", data_set);
    EXPECT_FAIL(p, 2, cfg, "beta");
    cr_assert(!exists(run), "a config error created the run directory");
    proc_free(&p);
    free(cfg); free(run);
}

/* ---------------------------------------------------------------- data errors */

Test(cli, empty_data_dir_names_the_missing_file) {
    char *empty = tu_path(tmp, "empty"), *run = tu_path(tmp, "run"), set[700];
    cr_assert_eq(mkdir(empty, 0755), 0);
    snprintf(set, sizeof set, "data.dir=%s", empty);
    Proc p = EWA("train", "--config", cfg_path, "--out", run, "--set", set,
                 "--set", "train.threads=1");
    EXPECT_FAIL(p, 1, empty, "train-images-idx3-ubyte");
    cr_assert(!file_exists_in(run, "final.safetensors"), "a failed run left a checkpoint");
    assert_no_tmp_files(run);
    proc_free(&p);
    free(empty); free(run);
}

Test(cli, truncated_images_file) {
    char *bad = tu_path(tmp, "bad"), *run = tu_path(tmp, "run"), set[700];
    cr_assert_eq(mkdir(bad, 0755), 0);
    write_split(bad, "train", N_TRAIN, N_TRAIN / 2, 1); /* header says 200, holds 100 */
    write_split(bad, "t10k", N_TEST, N_TEST, 2);
    snprintf(set, sizeof set, "data.dir=%s", bad);
    Proc p = EWA("train", "--config", cfg_path, "--out", run, "--set", set,
                 "--set", "train.threads=1");
    char *img = tu_path(bad, "train-images-idx3-ubyte.gz");
    EXPECT_FAIL(p, 1, img, "truncated");
    cr_assert(!file_exists_in(run, "final.safetensors"), "a failed run left a checkpoint");
    assert_no_tmp_files(run);
    proc_free(&p);
    free(img); free(bad); free(run);
}

Test(cli, out_dir_under_a_regular_file) {
    /* --out creates missing parents (README: runs/fmnist on a fresh clone),
     * but a parent that is a file is an error naming it */
    char *file = tu_write(tmp, "a-file", "x", 1), *run = tu_path(file, "run");
    Proc p = TRAIN(run, 0);
    EXPECT_FAIL(p, 1, file, "cannot create");
    proc_free(&p);
    free(file); free(run);
}

Test(cli, out_is_a_regular_file) {
    char *file = tu_write(tmp, "a-file", "x", 1);
    Proc p = TRAIN(file, 0);
    EXPECT_FAIL(p, 1, file, "exists and is not a directory");
    proc_free(&p);
    free(file);
}

/* An --out longer than the run's former 1,200-byte path buffers (5 levels of
 * 250 characters): every file lands in it. snprintf used to cut each path to
 * the same shorter one, write there, remove it as "the previous run's file",
 * and report status=ok with an empty run directory. */
Test(cli, long_out_path_gets_every_file) {
    char comp[251], *run = tu_path(tmp, "long");
    memset(comp, 'c', 250);
    comp[250] = '\0';
    for (int i = 0; i < 5; i++) {
        char *next = tu_path(run, comp);
        free(run);
        run = next;
    }
    cr_assert_gt(strlen(run), 1250);
    Proc p = TRAIN(run, 0);
    cr_assert_eq(p.status, 0, "ewa train exited %d; stderr:\n%s", p.status, p.err);
    const char *files[] = {"config.ini", "metrics.csv", "summary.csv", "final.safetensors"};
    for (int i = 0; i < 4; i++) cr_expect(file_exists_in(run, files[i]), "missing %s under the long --out", files[i]);
    proc_free(&p);
    free(run);
}

/* An error message longer than Err.msg keeps its words: the long value is
 * shortened in the middle, and the cause after it survives (core/err.h). */
Test(cli, long_error_message_keeps_its_cause) {
    static char v[5000];
    memset(v, 'a', sizeof v - 1);
    Err e;
    err_set(&e, ERR_USAGE, "--set 'data.dir=%s': too long (at most %d)", v, 4096);
    cr_assert_lt(strlen(e.msg), sizeof e.msg);
    cr_expect(!strncmp(e.msg, "--set 'data.dir=aaa", 19), "%s", e.msg);
    cr_expect(strstr(e.msg, "aaa...aaa"), "%s", e.msg);
    const char *tail = "': too long (at most 4096)";
    cr_expect(!strcmp(e.msg + strlen(e.msg) - strlen(tail), tail), "the cause was cut: %s", e.msg);
    err_set(&e, ERR_RUNTIME, "%s: cannot write", "short/path");   /* a message that fits: as formatted */
    cr_expect_str_eq(e.msg, "short/path: cannot write");
    cr_expect_eq(e.code, ERR_RUNTIME);
}

/* train.min_lr above train.lr is allowed (a low lr under the default floor
 * is a plausible sweep) but said: the cosine schedule then rises. */
Test(cli, min_lr_above_lr_is_said) {
    char *run = tu_path(tmp, "minlr");
    Proc p = TRAIN_X(run, 0, "--set", "train.lr=0.001", "--set", "train.min_lr=0.01");
    cr_assert_eq(p.status, 0, "ewa train exited %d; stderr:\n%s", p.status, p.err);
    cr_expect(strstr(p.err, "warning: train.min_lr = 0.01 exceeds train.lr = 0.001"), "%s", p.err);
    proc_free(&p);
    free(run);
}

/* ---------------------------------------------------------------- a good run */

Test(cli, tiny_run_writes_a_complete_run_dir_and_learns) {
    char *run = tu_path(tmp, "new/parents/run");   /* --out creates missing parents */
    Proc p = TRAIN_X(run, 5, "--set", "data.points=256");   /* a 3D key: accepted with a warning */
    cr_assert_eq(p.status, 0, "ewa train exited %d; stderr:\n%s", p.status, p.err);
    cr_assert(strstr(p.out, "status=ok"), "stdout lacks status=ok:\n%s", p.out);
    cr_assert(strstr(p.err, "ewa train: warning: data.dataset = fashion-mnist ignores data.points = 256\n"),
              "stderr lacks the warning:\n%s", p.err);
    proc_free(&p);

    const char *files[] = {"config.ini", "metrics.csv", "summary.csv", "final.safetensors"};
    for (int i = 0; i < 4; i++) {
        char *f = tu_path(run, files[i]);
        struct stat st;
        cr_assert_eq(stat(f, &st), 0, "missing %s", f);
        cr_assert_gt(st.st_size, 0, "empty %s", f);
        free(f);
    }
    assert_no_tmp_files(run);

    /* config.ini is the resolved config: it holds the overrides. */
    char *ini_path = tu_path(run, "config.ini");
    char *ini = slurp(ini_path, NULL);
    cr_assert(strstr(ini, data_dir), "config.ini lacks data.dir %s:\n%s", data_dir, ini);
    cr_assert(strstr(ini, "[model]") && strstr(ini, "[train]"), "config.ini:\n%s", ini);
    free(ini); free(ini_path);

    /* metrics.csv: the header, then one train, one val (data.val_size
     * default: 10% of the 200 training images) and one test row per epoch. */
    CsvTable m = read_csv(run, "metrics.csv");
    static const char *const header[] = {"epoch", "split", "loss", "top1", "lr",
                                         "wall_s", "images_per_s", "step", "loss_smoothed",
                                         "pass_s"};
    cr_assert_eq(m.ncols, 10, "metrics.csv has %d columns", m.ncols);
    for (int c = 0; c < 10; c++)
        cr_assert_str_eq(m.header[c], header[c], "metrics.csv column %d", c);
    cr_assert_eq(m.nrows, 3 * EPOCHS, "metrics.csv has %d rows, expected %d", m.nrows, 3 * EPOCHS);
    static const char *const splits[] = {"train", "val", "test"};
    double best_val = -1, test_at_best = -1;
    int best_ep = 0;
    for (int r = 0; r < m.nrows; r++) {
        char ep[16];
        snprintf(ep, sizeof ep, "%d", r / 3 + 1);
        cr_assert_str_eq(cell(&m, r, "epoch"), ep, "row %d", r);
        cr_assert_str_eq(cell(&m, r, "split"), splits[r % 3], "row %d", r);
        double loss = atof(cell(&m, r, "loss")), top1 = atof(cell(&m, r, "top1"));
        cr_assert(isfinite(loss) && loss > 0, "row %d loss %s", r, cell(&m, r, "loss"));
        /* label smoothing 0.1 (the default): the smoothed loss is the larger
         * once the model is confident (it penalises confidence), and never equal */
        double ls = atof(cell(&m, r, "loss_smoothed"));
        cr_assert(isfinite(ls) && ls > 0 && fabs(ls - loss) > 1e-4, "row %d loss %g loss_smoothed %g", r,
                  loss, ls);
        cr_assert(top1 >= 0 && top1 <= 1, "row %d top1 %s", r, cell(&m, r, "top1"));
        /* 180 training images after the 20 held out for validation */
        cr_assert_eq(atol(cell(&m, r, "step")), (long)(r / 3 + 1) * ((N_TRAIN - 20 + 31) / 32),
                     "row %d step %s", r, cell(&m, r, "step"));
        /* one meaning on every row: images of this row's pass / its seconds */
        double pass = atof(cell(&m, r, "pass_s")), ips = atof(cell(&m, r, "images_per_s"));
        int images = r % 3 == 2 ? N_TEST : r % 3 == 1 ? 20 : N_TRAIN - 20;
        if (pass > 0.05)   /* both printed rounded: 1% from pass_s at most */
            cr_assert(fabs(ips * pass - images) <= 0.02 * images,
                      "row %d: images_per_s %g x pass_s %g != %d images", r, ips, pass, images);
        if (r >= 2)
            cr_assert_geq(atof(cell(&m, r, "wall_s")), atof(cell(&m, r - 1, "wall_s")), "row %d", r);
        if (r % 3 == 1 && top1 > best_val) {
            best_val = top1;
            best_ep = r / 3 + 1;
            test_at_best = atof(cell(&m, r + 1, "top1"));
        }
    }

    /* summary.csv: one row with provenance, status and inference cost. */
    CsvTable s = read_csv(run, "summary.csv");
    cr_assert_eq(s.nrows, 1, "summary.csv has %d rows", s.nrows);
    cr_assert(cell(&s, 0, "git_commit")[0], "empty git_commit");
    const char *hash = cell(&s, 0, "config_hash");
    cr_assert(strlen(hash) == 16 && strspn(hash, "0123456789abcdef") == 16, "config_hash '%s'", hash);
    cr_assert_str_eq(cell(&s, 0, "seed"), "5");
    cr_assert_str_eq(cell(&s, 0, "status"), "ok");
    cr_assert_gt(atol(cell(&s, 0, "params_inference")), 0, "params_inference");
    /* best_top1: the test top-1 of the epoch with the best val top-1 */
    cr_assert_eq(atoi(cell(&s, 0, "n_val")), 20);
    cr_assert_eq(atoi(cell(&s, 0, "best_epoch")), best_ep);
    cr_assert_float_eq(atof(cell(&s, 0, "best_val_top1")), best_val, 1e-9);
    cr_assert_float_eq(atof(cell(&s, 0, "best_top1")), test_at_best, 1e-9);
    cr_assert_str_eq(cell(&s, 0, "val_top1"), cell(&m, 3 * EPOCHS - 2, "top1"));
    cr_assert_gt(atof(cell(&s, 0, "flops_inference")), 0, "flops_inference");
    /* training FLOPs: 3 x forward x images; dense trains the deployed model;
     * 200 images less the 20 of validation, EPOCHS times */
    cr_assert_float_eq(atof(cell(&s, 0, "flops_train")), 3.0 * atof(cell(&s, 0, "flops_inference")) * 180 * EPOCHS,
                       1e-3 * atof(cell(&s, 0, "flops_train")), "flops_train %s", cell(&s, 0, "flops_train"));
    const char *final = cell(&s, 0, "final_top1");
    cr_assert_str_eq(final, cell(&m, m.nrows - 1, "top1"),
                     "summary final_top1 differs from the last test row of metrics.csv");
    cr_assert_gt(atof(final), 0.5, "the learnable task only reached top1 = %s", final);
    /* the run's identity: SHA-256 of its checkpoint, as coreutils computes it */
    char *ckpt = tu_path(run, "final.safetensors");
    char want[65];
    sha256sum(ckpt, want);
    cr_assert_str_eq(cell(&s, 0, "checkpoint_sha256"), want);
    cr_assert(strstr(cell(&s, 0, "build_flags"), " (target"), "build_flags '%s'", cell(&s, 0, "build_flags"));
    /* the data's identity: SHA-256 of each file read, train split first */
    static const char *const data_files[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    char sums[600] = "";
    for (int i = 0; i < 4; i++) {
        char *p = tu_path(data_dir, data_files[i]);
        sha256sum(p, want);
        snprintf(sums + strlen(sums), sizeof sums - strlen(sums), "%s%s=%s", i ? ";" : "", data_files[i], want);
        free(p);
    }
    cr_assert_str_eq(cell(&s, 0, "data_sha256"), sums);
    free(ckpt);
    csv_table_free(&m);
    csv_table_free(&s);
    free(run);
}

Test(cli, same_seed_reproduces_and_other_seed_differs) {
    char *a = train_ok("a", 3), *b = train_ok("b", 3), *c = train_ok("c", 4);
    CsvTable ma = read_csv(a, "metrics.csv"), mb = read_csv(b, "metrics.csv"),
             mc = read_csv(c, "metrics.csv");
    cr_assert_eq(ma.nrows, mb.nrows);
    static const char *const same[] = {"epoch", "split", "loss", "top1", "lr", "step"};
    for (int r = 0; r < ma.nrows; r++)
        for (int k = 0; k < 6; k++)
            cr_assert_str_eq(cell(&ma, r, same[k]), cell(&mb, r, same[k]),
                             "same seed, row %d column %s differs", r, same[k]);
    int differ = 0;
    for (int r = 0; r < ma.nrows && r < mc.nrows; r++)
        differ += strcmp(cell(&ma, r, "loss"), cell(&mc, r, "loss")) != 0;
    cr_assert_gt(differ, 0, "seeds 3 and 4 gave identical losses");

    char *fa = tu_path(a, "final.safetensors"), *fb = tu_path(b, "final.safetensors");
    size_t la = 0, lb = 0;
    char *da = slurp(fa, &la), *db = slurp(fb, &lb);
    cr_assert(da && db, "cannot read the checkpoints");
    cr_assert(la == lb && !memcmp(da, db, la), "same seed, final.safetensors differ (%zu vs %zu bytes)",
              la, lb);
    /* so their recorded identities agree, and another seed's does not */
    CsvTable sa = read_csv(a, "summary.csv"), sb = read_csv(b, "summary.csv"), sc = read_csv(c, "summary.csv");
    cr_assert_eq(strlen(cell(&sa, 0, "checkpoint_sha256")), 64);
    cr_assert_str_eq(cell(&sa, 0, "checkpoint_sha256"), cell(&sb, 0, "checkpoint_sha256"));
    cr_assert_str_neq(cell(&sa, 0, "checkpoint_sha256"), cell(&sc, 0, "checkpoint_sha256"));
    csv_table_free(&sa); csv_table_free(&sb); csv_table_free(&sc);
    free(da); free(db); free(fa); free(fb);
    csv_table_free(&ma); csv_table_free(&mb); csv_table_free(&mc);
    free(a); free(b); free(c);
}

/* train.eval_every = 2 over 5 epochs: test rows after epochs 2, 4 and the
 * last (5) only; the training rows and the final model are those of the
 * run that evaluates every epoch (evaluation does not touch the RNGs). */
/* flops_train counts the images the steps processed: with train.max_steps
 * stopping mid-epoch, one whole epoch (180 images in 2 batches of 128) and
 * one full batch of the next. */
Test(cli, flops_train_counts_the_images_of_the_steps_taken) {
    char *run = tu_path(tmp, "ft");
    Proc p = TRAIN_X(run, 1, "--set", "train.max_steps=3", "--set", "train.batch_size=128");
    cr_assert_eq(p.status, 0, "ewa train exited %d; stderr:\n%s", p.status, p.err);
    proc_free(&p);
    CsvTable s = read_csv(run, "summary.csv");
    cr_assert_str_eq(cell(&s, 0, "steps"), "3");
    double f = atof(cell(&s, 0, "flops_train")), want = 3.0 * atof(cell(&s, 0, "flops_inference")) * (180 + 128);
    cr_assert_float_eq(f, want, 1e-3 * want, "flops_train %s, want %g", cell(&s, 0, "flops_train"), want);
    csv_table_free(&s);
    free(run);
}

Test(cli, eval_every_skips_test_passes_but_not_the_last) {
    char *run = tu_path(tmp, "ee"), *ref = tu_path(tmp, "ee_ref");
    Proc p0 = TRAIN_X(ref, 1, "--set", "train.epochs=5", "--set", "data.val_size=0");
    cr_assert_eq(p0.status, 0, "ewa train exited %d; stderr:\n%s", p0.status, p0.err);
    proc_free(&p0);
    Proc p = TRAIN_X(run, 1, "--set", "train.epochs=5", "--set", "train.eval_every=2", "--set",
                     "data.val_size=0");
    cr_assert_eq(p.status, 0, "ewa train exited %d; stderr:\n%s", p.status, p.err);
    proc_free(&p);
    CsvTable m = read_csv(run, "metrics.csv");
    static const char *const rows[][2] = {{"1", "train"}, {"2", "train"}, {"2", "test"}, {"3", "train"},
                                         {"4", "train"}, {"4", "test"},  {"5", "train"}, {"5", "test"}};
    cr_assert_eq(m.nrows, 8, "metrics.csv has %d rows, expected 8", m.nrows);
    for (int r = 0; r < 8; r++) {
        cr_assert_str_eq(cell(&m, r, "epoch"), rows[r][0], "row %d", r);
        cr_assert_str_eq(cell(&m, r, "split"), rows[r][1], "row %d", r);
    }
    CsvTable s = read_csv(run, "summary.csv");
    cr_assert_str_eq(cell(&s, 0, "final_top1"), cell(&m, 7, "top1"));
    CsvTable r = read_csv(ref, "metrics.csv"), rs = read_csv(ref, "summary.csv");
    cr_assert_eq(r.nrows, 10);
    for (int k = 0; k < 8; k++)   /* rows of r: epoch e train at 2e-2, test at 2e-1 */
        cr_assert_str_eq(cell(&r, 2 * (atoi(rows[k][0]) - 1) + (rows[k][1][1] == 'e'), "loss"),
                         cell(&m, k, "loss"), "eval_every changed row %d (epoch %s %s)", k, rows[k][0],
                         rows[k][1]);
    cr_assert_str_eq(cell(&rs, 0, "config_hash"), cell(&s, 0, "config_hash"),
                     "eval_every is part of the config hash");
    csv_table_free(&r);
    csv_table_free(&rs);
    csv_table_free(&m);
    csv_table_free(&s);
    Proc q = TRAIN_X(run, 1, "--set", "train.eval_every=-1");
    cr_assert_eq(q.status, 2, "eval_every=-1 exited %d", q.status);
    cr_assert(strstr(q.err, "train.eval_every"), "stderr: %s", q.err);
    proc_free(&q);
    free(run);
    free(ref);
}

/* ---------------------------------------------------------------- eval */

Test(cli, eval_matches_the_run_summary) {
    char *run = train_ok("run", 1), *ckpt = tu_path(run, "final.safetensors");
    Proc p = EWA("eval", "--checkpoint", ckpt, "--set", data_set);
    cr_assert_eq(p.status, 0, "ewa eval exited %d; stderr:\n%s", p.status, p.err);
    const char *last = last_line(p.out);
    double top1, loss, smoothed;
    int n, used = 0;
    cr_assert_eq(sscanf(p.out, "loss=%lf loss_smoothed=%lf", &loss, &smoothed), 2, "stdout '%s'", p.out);
    cr_assert_eq(sscanf(last, "top1=%lf n=%d%n", &top1, &n, &used), 2, "last line '%s'", last);
    cr_assert_eq(last[used], '\0', "trailing text on the last line '%s'", last);
    cr_assert_eq(n, N_TEST);
    CsvTable s = read_csv(run, "summary.csv");
    char want[32], got[32];
    snprintf(want, sizeof want, "%.4f", atof(cell(&s, 0, "final_top1")));
    snprintf(got, sizeof got, "%.4f", top1);
    cr_assert_str_eq(got, want, "eval top1 %s, summary final_top1 %s", got, cell(&s, 0, "final_top1"));
    /* loss is the plain cross-entropy, as final_test_loss and the last test row of
     * metrics.csv; loss_smoothed that of the run's label smoothing (0.1) */
    CsvTable m = read_csv(run, "metrics.csv");
    cr_assert_lt(fabs(loss - atof(cell(&s, 0, "final_test_loss"))), 2e-6, "eval loss %.6f vs summary %s", loss,
                 cell(&s, 0, "final_test_loss"));
    cr_assert_lt(fabs(smoothed - atof(cell(&m, m.nrows - 1, "loss_smoothed"))), 2e-6, "loss_smoothed %.6f vs %s",
                 smoothed, cell(&m, m.nrows - 1, "loss_smoothed"));
    cr_assert_gt(fabs(loss - smoothed), 1e-3, "plain %.6f and smoothed %.6f cross-entropy coincide", loss, smoothed);
    csv_table_free(&m);
    csv_table_free(&s);
    proc_free(&p);
    free(run); free(ckpt);
}

Test(cli, eval_rejects_broken_checkpoints) {
    char *run = train_ok("run", 1), *ckpt = tu_path(run, "final.safetensors");
    size_t len;
    char *good = slurp(ckpt, &len);
    cr_assert(good && len > 100);

    char *trunc = tu_write(tmp, "truncated.safetensors", good, len / 2);
    Proc p = EWA("eval", "--checkpoint", trunc, "--set", data_set);
    EXPECT_FAIL(p, 1, trunc);
    proc_free(&p);

    char garbage[4096];
    uint32_t seed = 99;
    for (size_t i = 0; i < sizeof garbage; i++) garbage[i] = (char)lcg(&seed);
    char *junk = tu_write(tmp, "garbage.safetensors", garbage, sizeof garbage);
    p = EWA("eval", "--checkpoint", junk, "--set", data_set);
    EXPECT_FAIL(p, 1, junk);
    proc_free(&p);

    char *tiny = tu_write(tmp, "tiny.safetensors", good, 5); /* shorter than the length prefix */
    p = EWA("eval", "--checkpoint", tiny, "--set", data_set);
    EXPECT_FAIL(p, 1, tiny);
    proc_free(&p);

    char *missing = tu_path(tmp, "missing.safetensors");
    p = EWA("eval", "--checkpoint", missing, "--set", data_set);
    cr_assert_neq(p.status, 0, "eval of a missing checkpoint exited 0");
    cr_assert(strstr(p.err, missing), "stderr lacks '%s':\n%s", missing, p.err);
    proc_free(&p);

    free(good); free(trunc); free(junk); free(tiny); free(missing); free(run); free(ckpt);
}

/* ---------------------------------------------------------------- divergence */

Test(cli, divergence_is_recorded_and_leaves_no_checkpoint) {
    char *run = tu_path(tmp, "run");
    Proc p = TRAIN_X(run, 0, "--set", "train.lr=1e30", "--set", "train.grad_clip=0");
    cr_assert_neq(p.status, 0, "a diverged run exited 0; stderr:\n%s", p.status == 0 ? p.err : "");
    cr_assert_eq(p.status, 1, "a diverged run exited %d, expected 1; stderr:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "diverged"), "stderr lacks 'diverged':\n%s", p.err);
    CsvTable s = read_csv(run, "summary.csv");
    cr_assert_eq(s.nrows, 1);
    cr_assert_str_eq(cell(&s, 0, "status"), "diverged");
    cr_assert_geq(atol(cell(&s, 0, "diverged_step")), 0);
    cr_assert(!file_exists_in(run, "final.safetensors"), "a diverged run left final.safetensors");
    assert_no_tmp_files(run);
    csv_table_free(&s);
    proc_free(&p);
    free(run);
}

/* Re-using a run directory: a diverging run must not leave the earlier
 * run's checkpoint or metrics beside its own 'diverged' summary. */
Test(cli, reused_out_dir_keeps_no_stale_results) {
    char *run = tu_path(tmp, "run");
    Proc ok = TRAIN(run, 0);
    cr_assert_eq(ok.status, 0, "stderr:\n%s", ok.err);
    cr_assert(file_exists_in(run, "final.safetensors"));
    /* --overwrite: without it the finished run is refused (tests/test_resume.c) */
    Proc bad = TRAIN_X(run, 0, "--overwrite", "--set", "train.lr=1e30", "--set", "train.grad_clip=0");
    cr_assert_eq(bad.status, 1, "stderr:\n%s", bad.err);
    CsvTable s = read_csv(run, "summary.csv");
    cr_assert_str_eq(cell(&s, 0, "status"), "diverged");
    cr_assert(!file_exists_in(run, "final.safetensors"), "the earlier run's final.safetensors was left");
    csv_table_free(&s);
    proc_free(&ok);
    proc_free(&bad);
    free(run);
}
