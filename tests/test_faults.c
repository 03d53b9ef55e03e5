/* Issue 11: bad input and faults, end to end through the real binary
 * ($EWA_BIN). Each test is one example of a kind of fault, with the outcome
 * the issue states: a message naming the true source, a non-zero exit, no
 * checkpoint or half-written file.
 *
 * The data is the tiny Fashion-MNIST-format set of testproc.h (gzip IDX,
 * 28x28, classes i % 10) unless a test writes its own broken split. */
#include <criterion/criterion.h>
#include <math.h>
#include <sys/stat.h>

#include "../experiments/csvio.h"
#include "../core/safetensors.h"
#include "testproc.h"
#include "testutil.h"

enum { N_TRAIN = 200, N_TEST = 100 };

static char *tmp, *data_dir, *cfg_path;   /* cfg_path: an empty config (defaults) */
static char data_set[600];
static int n_spawned;

static void setup(void) {
    tiny_data_setup(&tmp, &data_dir, data_set, N_TRAIN, N_TEST);
    cfg_path = tu_write(tmp, "empty.ini", "", 0);
    n_spawned = 0;
}

static void teardown(void) {
    tiny_data_teardown(tmp, data_dir);
    free(cfg_path);
}

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 180);

/* `ewa train` of a tiny model on data_dir into tmp/<name>, plus extra args. */
static Proc train_x(const char *out, const char *dset, const char *const *extra) {
    const char *base[] = {
        "train", "--config", cfg_path, "--out", out, "--set", dset,
        "--set", "data.augment=0", "--set", "train.epochs=1", "--set", "train.warmup_epochs=0",
        "--set", "model.dim=16", "--set", "model.depth=1", "--set", "model.heads=2",
        "--set", "model.mlp_ratio=2", "--set", "model.patch=7",
        "--set", "train.batch_size=32", "--set", "train.threads=1",
    };
    return run_base_extra(tmp, &n_spawned, base, sizeof base / sizeof base[0], extra);
}
#define TRAIN_X(out, dset, ...) train_x(out, dset, (const char *const[]){__VA_ARGS__, NULL})
#define EWA(...) run_list(tmp, &n_spawned, (const char *const[]){__VA_ARGS__, NULL})

static void expect_fail(Proc *p, int code, const char *const *needles) {
    cr_assert_eq(p->status, code, "exit %d, expected %d; stderr:\n%s", p->status, code, p->err);
    for (; *needles; needles++)
        cr_assert(strstr(p->err, *needles), "stderr lacks '%s':\n%s", *needles, p->err);
}
#define EXPECT_FAIL(p, code, ...) expect_fail(&(p), code, (const char *const[]){__VA_ARGS__, NULL})

static int exists_in(const char *dir, const char *name) {
    char *p = tu_path(dir, name);
    int e = tu_file_exists(p);
    free(p);
    return e;
}

/* IDX images of side x side (classes i % 10 as noise; enough for shape
 * tests) with labels lab(i), gzip'ed into dir/<prefix>-*. */
static void write_idx(const char *dir, const char *prefix, int n, int side, int nclasses) {
    size_t len = 16 + (size_t)n * side * side;
    uint8_t *b = malloc(len);
    put_be32(b, 0x803); put_be32(b + 4, (uint32_t)n);
    put_be32(b + 8, (uint32_t)side); put_be32(b + 12, (uint32_t)side);
    uint32_t seed = 7;
    for (size_t j = 16; j < len; j++) b[j] = (uint8_t)lcg(&seed);
    char name[96];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
    write_gz(dir, name, b, len);
    free(b);
    b = malloc(8 + (size_t)n);
    put_be32(b, 0x801); put_be32(b + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) b[8 + i] = (uint8_t)(i % nclasses);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
    write_gz(dir, name, b, 8 + (size_t)n);
    free(b);
}

/* A fresh data directory tmp/<name> holding train (28x28) and the given test split. */
static char *data_with_test(const char *name, int test_side, int test_classes, char *dset,
                            size_t dlen) {
    char *d = tu_path(tmp, name);
    cr_assert_eq(mkdir(d, 0755), 0);
    write_split(d, "train", N_TRAIN, N_TRAIN, 1);
    write_idx(d, "t10k", N_TEST, test_side, test_classes);
    snprintf(dset, dlen, "data.dir=%s", d);
    return d;
}

/* ------------------------------------------------ 1. splits that disagree */

static void splits_disagree(int side) {
    char dset[600], *run = tu_path(tmp, "run");
    char *d = data_with_test("bad", side, 10, dset, sizeof dset);
    Proc p = TRAIN_X(run, dset, "--set", "train.max_steps=1");
    EXPECT_FAIL(p, 1, "train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "disagree");
    cr_assert(!exists_in(run, "final.safetensors"), "a refused run left a checkpoint");
    proc_free(&p);
    free(run); free(d);
}

/* Test images larger than train's overflowed the batch buffer (ASan), smaller
 * ones were read as 28x28 and the run ended ok. */
Test(faults, splits_disagree_in_shape_larger) { splits_disagree(32); }
Test(faults, splits_disagree_in_shape_smaller) { splits_disagree(14); }

/* eval of a 28x28 checkpoint on 14x14 data names both. */
Test(faults, eval_checkpoint_and_data_disagree) {
    char *run = tu_path(tmp, "run");
    Proc p = TRAIN_X(run, data_set, "--set", "train.max_steps=2");
    cr_assert_eq(p.status, 0, "%s", p.err);
    proc_free(&p);
    char dset[600];
    char *d = tu_path(tmp, "small");
    cr_assert_eq(mkdir(d, 0755), 0);
    write_idx(d, "train", N_TRAIN, 14, 10);
    write_idx(d, "t10k", N_TEST, 14, 10);
    snprintf(dset, sizeof dset, "data.dir=%s", d);
    char *ck = tu_path(run, "final.safetensors");
    p = EWA("eval", "--checkpoint", ck, "--set", dset);
    EXPECT_FAIL(p, 1, ck, "t10k-images-idx3-ubyte.gz", "14,14");
    proc_free(&p);
    free(run); free(d); free(ck);
}

/* ------------------------------------------------ 2. classes with no samples */

Test(faults, class_without_samples_is_an_error) {
    char dset[600], *run = tu_path(tmp, "run");
    char *d = data_with_test("nine", 28, 9, dset, sizeof dset);   /* test labels 0..8 */
    Proc p = TRAIN_X(run, dset, "--set", "train.max_steps=1");
    EXPECT_FAIL(p, 1, "t10k-images-idx3-ubyte.gz", "1 of the 10 classes have no samples",
                "class 9");
    proc_free(&p);
    free(run); free(d);
}

Test(faults, train_subset_below_class_count_warns) {
    char *run = tu_path(tmp, "run");
    Proc p = TRAIN_X(run, data_set, "--set", "data.train_subset=5", "--set", "train.max_steps=1");
    cr_assert_eq(p.status, 0, "%s", p.err);
    cr_assert(strstr(p.err, "warning: data.train_subset = 5 is smaller than the 10 classes"),
              "no warning:\n%s", p.err);
    proc_free(&p);
    free(run);
}

Test(faults, shapes3d_split_smaller_than_class_count) {
    char *run = tu_path(tmp, "run");
    Proc p = EWA("train", "--config", cfg_path, "--out", run, "--set", "data.dataset=shapes3d",
                 "--set", "data.train_size=10", "--set", "data.test_size=28");
    EXPECT_FAIL(p, 2, "data.train_size = 10", "14 classes");
    proc_free(&p);
    free(run);
}

/* ------------------------------------------------ 5. safetensors format rules */

/* A checkpoint with 16 trailing bytes loaded silently, in eval and as
 * finetune.init_checkpoint. */
Test(faults, checkpoint_with_trailing_bytes_is_refused_everywhere) {
    char *run = tu_path(tmp, "run");
    Proc p = TRAIN_X(run, data_set, "--set", "train.max_steps=2");
    cr_assert_eq(p.status, 0, "%s", p.err);
    proc_free(&p);
    char *ck = tu_path(run, "final.safetensors");
    FILE *f = fopen(ck, "ab");
    cr_assert(f);
    static const char pad[16] = {0};
    cr_assert_eq(fwrite(pad, 1, 16, f), 16);
    fclose(f);
    p = EWA("eval", "--checkpoint", ck);
    EXPECT_FAIL(p, 1, ck, "16 trailing bytes");
    proc_free(&p);
    char init[1200], *run2 = tu_path(tmp, "run2");
    snprintf(init, sizeof init, "finetune.init_checkpoint=%s", ck);
    p = TRAIN_X(run2, data_set, "--set", init, "--set", "train.max_steps=1");
    EXPECT_FAIL(p, 1, ck, "16 trailing bytes");
    cr_assert(!exists_in(run2, "final.safetensors"));
    proc_free(&p);
    free(run); free(run2); free(ck);
}

/* ------------------------------------------------ 3. non-finite values */

/* One huge step: the training loss of step 0 was finite, the test loss was
 * -nan and the run ended ok with a checkpoint full of 1e30s. */
Test(faults, huge_last_step_is_diverged_without_checkpoint) {
    char *run = tu_path(tmp, "run");
    Proc p = TRAIN_X(run, data_set, "--set", "train.lr=1e30", "--set", "train.max_steps=1");
    EXPECT_FAIL(p, 1, "diverged at step 1", "no checkpoint");
    cr_assert(!exists_in(run, "final.safetensors"), "a diverged run left a checkpoint");
    char *sp = tu_path(run, "summary.csv");
    CsvTable t;
    Err e = {0};
    cr_assert_eq(csv_read_file(sp, &t, &e), 0, "%s", e.msg);
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "status")), "diverged");
    csv_table_free(&t);
    cr_assert_eq(tu_count_tmp_files(run), 0);
    proc_free(&p);
    free(run); free(sp);
}

/* eval of a checkpoint with one NaN weight printed loss=nan and exited 0. */
Test(faults, eval_of_a_nan_weight_exits_1) {
    char *run = tu_path(tmp, "run");
    Proc p = TRAIN_X(run, data_set, "--set", "train.max_steps=2");
    cr_assert_eq(p.status, 0, "%s", p.err);
    proc_free(&p);
    char *ck = tu_path(run, "final.safetensors");
    StFile f;
    Err e = {0};
    cr_assert_eq(st_read(ck, &f, &e), 0, "%s", e.msg);
    StTensor *t = NULL;
    for (int i = 0; i < f.n_tensors; i++)
        if (!strcmp(f.tensors[i].name, "head.weight")) t = &f.tensors[i];
    cr_assert(t);
    t->data[3] = NAN;
    cr_assert_eq(st_write(ck, f.tensors, f.n_tensors, (const char *const *)f.meta_keys,
                          (const char *const *)f.meta_vals, f.n_meta, &e), 0, "%s", e.msg);
    st_free(&f);
    p = EWA("eval", "--checkpoint", ck);
    EXPECT_FAIL(p, 1, ck, "test loss is not finite", "1 non-finite");
    cr_assert(!strstr(p.out, "top1="), "eval printed a result:\n%s", p.out);
    proc_free(&p);
    free(run); free(ck);
}

/* ------------------------------------------------ 6. errors that blame the wrong thing */

#include "../experiments/config.h"
#include "../experiments/grid.h"

/* inih read an indented key as a continuation of the previous value:
 * "line 3: duplicate key 'epochs'"; in a grid file "[grid] base given twice". */
Test(faults, indented_keys_are_keys) {
    RunConfig c;
    Err e = {0};
    cr_assert_eq(config_load_string(&c, "[train]\nepochs = 5\n  lr = 0.25\n\tbatch_size = 8\n", "i.ini",
                                    0, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(c.epochs, 5);
    cr_assert_float_eq(c.lr, 0.25f, 1e-9);
    cr_assert_eq(c.batch_size, 8);
    free(tu_write(tmp, "base.ini", "[train]\nepochs = 1\n", 19));
    static const char g[] = "[grid]\nbase = base.ini\n  seeds = 0, 1\n  out = o\n[sweep]\n  train.lr = 0.1, 0.2\n";
    char *gp = tu_write(tmp, "g.ini", g, sizeof g - 1);
    GridSpec s;
    cr_assert_eq(grid_load(&s, gp, NULL, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(s.nseeds, 2);
    cr_assert_eq(s.naxes, 1);
    grid_free(&s);
    free(gp);
}

/* A byte-order mark at the start of runs.csv hid the first column
 * ("needs the columns run_id, ...", regress: "'\ufeffdataset' vs 'dataset'");
 * at the start of a config or grid file it must not matter either. */
Test(faults, byte_order_mark_is_not_content) {
    static const char csv[] = "\xEF\xBB\xBFrun_id,status\nabc,ok\n";
    char *p = tu_write(tmp, "runs.csv", csv, sizeof csv - 1);
    CsvTable t;
    Err e = {0};
    cr_assert_eq(csv_read_file(p, &t, &e), 0, "%s", e.msg);
    cr_assert_str_eq(t.header[0], "run_id");
    cr_assert_eq(csv_col(&t, "run_id"), 0);
    csv_table_free(&t);
    static const char ini[] = "\xEF\xBB\xBF[train]\nepochs = 3\n";
    char *ip = tu_write(tmp, "bom.ini", ini, sizeof ini - 1);
    RunConfig c;
    cr_assert_eq(config_load(&c, ip, 0, NULL, &e), 0, "%s", e.msg);
    cr_assert_eq(c.epochs, 3);
    free(tu_write(tmp, "base.ini", "", 0));
    static const char g[] = "\xEF\xBB\xBF[grid]\nbase = base.ini\nseeds = 0\nout = o\n";
    char *gp = tu_write(tmp, "g.ini", g, sizeof g - 1);
    GridSpec s;
    cr_assert_eq(grid_load(&s, gp, NULL, NULL, &e), 0, "%s", e.msg);
    grid_free(&s);
    free(p); free(ip); free(gp);
}

/* A value given with --set that fails validation was reported under the
 * config file's name; a file value names its line. */
Test(faults, set_values_are_blamed_on_the_set_argument) {
    char *run = tu_path(tmp, "run");
    Proc p = EWA("train", "--config", cfg_path, "--out", run, "--set", "train.epochs=0");
    EXPECT_FAIL(p, 2, "--set 'train.epochs=0'", "train.epochs");
    cr_assert(!strstr(p.err, "empty.ini"), "blamed the config file:\n%s", p.err);
    proc_free(&p);
    static const char bini[] = "[data]\ndataset = shapes3d\n[train]\nepochs = 0\n";
    char *bad = tu_write(tmp, "bad.ini", bini, sizeof bini - 1);
    p = EWA("train", "--config", bad, "--out", run);
    EXPECT_FAIL(p, 2, "bad.ini: line 4", "train.epochs = 0");
    proc_free(&p);
    free(run); free(bad);
}

/* A lock file that cannot be created was reported as "another grid is
 * running in this directory" (a read-only directory; here the lock path is a
 * directory, which fails the same open(2) also for root). */
Test(faults, grid_lock_failure_names_its_cause) {
    free(tu_write(tmp, "base.ini", "", 0));
    char g[600];
    snprintf(g, sizeof g, "[grid]\nbase = base.ini\nseeds = 0\nout = %s/gout\n", tmp);
    char *gp = tu_write(tmp, "g.ini", g, strlen(g));
    char *out = tu_path(tmp, "gout"), *lock = tu_path(out, ".grid.lock");
    cr_assert_eq(mkdir(out, 0755), 0);
    cr_assert_eq(mkdir(lock, 0755), 0);
    Proc p = EWA("grid", "--allow-dirty", "--config", gp, "--set", data_set);
    EXPECT_FAIL(p, 1, ".grid.lock", "cannot create the lock file");
    cr_assert(!strstr(p.err, "another grid"), "%s", p.err);
    proc_free(&p);
    free(gp); free(out); free(lock);
}

/* A non-empty directory that is no grid's output was accepted as --out
 * (runs/, runs.csv and the lock scattered into it): now exit 2 naming the
 * directory and a file in it, with nothing written; an empty one is used. */
Test(faults, grid_refuses_a_foreign_nonempty_out) {
    free(tu_write(tmp, "base.ini", "", 0));
    char g[600];
    snprintf(g, sizeof g, "[grid]\nbase = base.ini\nseeds = 0\nout = %s/gout\n", tmp);
    char *gp = tu_write(tmp, "g.ini", g, strlen(g));
    char *out = tu_path(tmp, "gout"), *runs = tu_path(out, "runs.csv"), *lock = tu_path(out, ".grid.lock");
    char *tb = tu_path(out, "runs");   /* TensorBoard's default log directory: runs/ alone is not a grid's */
    cr_assert_eq(mkdir(out, 0755), 0);
    cr_assert_eq(mkdir(tb, 0755), 0);
    free(tu_write(out, "thesis.tex", "x", 1));
    Proc p = EWA("grid", "--allow-dirty", "--config", gp, "--set", data_set);
    EXPECT_FAIL(p, 2, "gout: the directory is not empty (it holds '", "name a new or empty directory");
    proc_free(&p);
    p = EWA("grid", "--dry-run", "--config", gp, "--set", data_set);   /* the plan refuses it too */
    EXPECT_FAIL(p, 2, "gout: the directory is not empty (it holds '", "name a new or empty directory");
    struct stat st;
    cr_expect_neq(stat(runs, &st), 0, "runs.csv was created in the foreign directory");
    cr_expect_neq(stat(lock, &st), 0, "the lock was created in the foreign directory");
    proc_free(&p);
    free(gp); free(out); free(runs); free(lock); free(tb);
}

/* A stray last argument read "option 'extra' needs a value". */
Test(faults, stray_argument_is_named_as_such) {
    char *run = tu_path(tmp, "run");
    Proc p = EWA("train", "--config", cfg_path, "--out", run, "extra");
    EXPECT_FAIL(p, 2, "unexpected argument 'extra'");
    cr_assert(!strstr(p.err, "needs a value"), "%s", p.err);
    proc_free(&p);
    p = EWA("grid", "--config", cfg_path, "extra");
    EXPECT_FAIL(p, 2, "unexpected argument 'extra'");
    proc_free(&p);
    free(run);
}

/* ------------------------------------------------ 8. bounded resources */

/* Every size derived from keys, one example each (the list is in the
 * README's error section): capped, refused naming the keys, or warned. */
Test(faults, threads_above_the_cpus_are_capped) {
    char *run = tu_path(tmp, "run");
    Proc p = TRAIN_X(run, data_set, "--set", "train.threads=64");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "train.threads = 64 exceeds the"), "%s", p.err);
    proc_free(&p);
    char *sp = tu_path(run, "summary.csv");
    CsvTable t;
    Err e = {0};
    cr_assert_eq(csv_read_file(sp, &t, &e), 0, "%s", e.msg);
    int th = atoi(csv_cell(&t, 0, csv_col(&t, "threads")));
    cr_assert(th >= 1 && th < 64, "threads column %d", th);
    csv_table_free(&t);
    free(sp); free(run);
}

Test(faults, derived_sizes_that_round_to_nothing_are_refused) {
    char *run = tu_path(tmp, "run");
    /* RMoE: 8 experts, 5 tokens per image (patch 14 on 28x28 + class token) */
    Proc p = TRAIN_X(run, data_set, "--set", "moe.method=ewa", "--set", "moe.experts=8", "--set",
                     "moe.rmoe_partition=sample", "--set", "model.patch=14", "--set", "moe.blocks=0");
    EXPECT_FAIL(p, 2, "moe.experts = 8 exceeds the 5 tokens", "never get a token");
    proc_free(&p);
    /* routed MoE: capacity factor so small the capacity is below one token */
    p = TRAIN_X(run, data_set, "--set", "moe.method=moe", "--set", "moe.capacity_factor=0.0001", "--set",
                "moe.blocks=0");
    EXPECT_FAIL(p, 2, "moe.capacity_factor = 0.0001", "below one unit");
    proc_free(&p);
    /* early EWA for 0.01 epochs of 6 steps: 0 steps */
    p = TRAIN_X(run, data_set, "--set", "moe.method=moe-early-ewa", "--set", "moe.ewa_epochs=0.01", "--set",
                "moe.blocks=0");
    EXPECT_FAIL(p, 2, "moe.ewa_epochs = 0.01", "rounds to 0 EWA steps");
    proc_free(&p);
    free(run);
}

Test(faults, validation_split_that_empties_a_class_is_refused) {
    char dset[600], *d = tu_path(tmp, "small"), *run = tu_path(tmp, "run");
    cr_assert_eq(mkdir(d, 0755), 0);
    write_split(d, "train", 20, 20, 1);   /* 2 images per class */
    write_split(d, "t10k", 20, 20, 2);
    snprintf(dset, sizeof dset, "data.dir=%s", d);
    Proc p = TRAIN_X(run, dset, "--set", "data.val_size=15");
    EXPECT_FAIL(p, 2, "data.val_size = 15 leaves 5 training samples", "classes have no samples");
    proc_free(&p);
    free(d); free(run);
}

Test(faults, other_derived_sizes_are_checked) {
    char *run = tu_path(tmp, "run");
    Proc p = TRAIN_X(run, data_set, "--set", "model.heads=3");   /* heads vs dim */
    EXPECT_FAIL(p, 2, "model.dim = 16 is not divisible by model.heads = 3");
    proc_free(&p);
    p = TRAIN_X(run, data_set, "--set", "model.patch=5");   /* patch vs image size */
    EXPECT_FAIL(p, 2, "model.patch = 5 does not divide the 28x28 input");
    proc_free(&p);
    p = TRAIN_X(run, data_set, "--set", "data.train_subset=5000");   /* subset vs training set */
    EXPECT_FAIL(p, 2, "data.train_subset = 5000 exceeds the");
    proc_free(&p);
    p = EWA("train", "--config", cfg_path, "--out", run, "--set", "data.dataset=shapes3d", "--set",
            "data.points=64", "--set", "data.groups=65");   /* groups vs points */
    EXPECT_FAIL(p, 2, "data.groups = 65", "must not exceed data.points = 64");
    proc_free(&p);
    /* batch vs training set, warm-up vs run length: warnings, the run is kept */
    p = TRAIN_X(run, data_set, "--set", "train.batch_size=512", "--set", "train.warmup_epochs=3");
    cr_assert_eq(p.status, 0, "exit %d:\n%s", p.status, p.err);
    cr_assert(strstr(p.err, "train.batch_size = 512 exceeds the 180 training samples"), "%s", p.err);
    cr_assert(strstr(p.err, "train.warmup_epochs = 3 is 3 steps, more than the run's 1"), "%s", p.err);
    proc_free(&p);
    free(run);
}
