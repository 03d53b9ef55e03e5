/* Tests for experiments/runrecord.c: the one run-record schema round-trips
 * through libcsv (summary.csv, a failed run's runs.csv row), hashes are
 * written quoted, and every config column holds the config's value. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "../experiments/config.h"
#include "../experiments/csvio.h"
#include "../experiments/runrecord.h"
#include "testutil.h"

static char *dir;
static void setup(void) { dir = tu_tmpdir(); }
static void teardown(void) {
    tu_rmrf(dir);
    free(dir);
}
TestSuite(runrecord, .init = setup, .fini = teardown);

static char *slurp(const char *p) {
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f, "cannot open %s", p);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* An awkward config: commas and quotes in strings, a non-default method. */
static RunConfig awkward(void) {
    RunConfig c;
    Err e = {0};
    char *sets[] = {"moe.method=moe-early-ewa", "moe.blocks=1, 3", "data.classes=0-4",
                    "finetune.init_checkpoint=/tmp/a,\"b\" c.safetensors", "train.lr=0.0025",
                    "train.seed=7"};
    cr_assert_eq(config_load(&c, NULL, 6, sets, &e), 0, "%s", e.msg);
    return c;
}

Test(runrecord, summary_round_trips_through_libcsv) {
    RunConfig c = awkward();
    TrainResult res = {.final_top1 = 0.8125, .best_top1 = 0.875, .final_test_loss = 0.5,
                       .train_seconds = 12.25, .drop_rate = 0.125, .steps = 40, .n_test = 16};
    snprintf(res.status, sizeof res.status, "ok");
    RunEnv env;
    record_env_begin(&env);
    record_env_end(&env);
    RunRecord r = {.cfg = &c, .res = &res, .dataset_name = "fashion-mnist", .env = &env};
    char *path = tu_path(dir, "summary.csv");
    Err e = {0};
    cr_assert_eq(record_write_summary(path, &r, &e), 0, "%s", e.msg);
    CsvTable t;
    cr_assert_eq(csv_read_file(path, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.nrows, 1);
    cr_assert_eq(t.ncols, record_ncols());
    static char vals[256][600];
    cr_assert_lt(record_ncols(), 256);
    record_values(&r, vals);
    for (int i = 0; i < t.ncols; i++) {
        cr_assert_str_eq(t.header[i], record_col_name(i));
        cr_assert_str_eq(csv_cell(&t, 0, i), vals[i], "column %s", t.header[i]);
    }
    /* the values themselves */
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "init_checkpoint")), "/tmp/a,\"b\" c.safetensors");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "blocks")), "1, 3");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "lr")), "0.0025");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "final_top1")), "0.812500");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "status")), "ok");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "method")), "moe-early-ewa");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "weight_decay")), "0.05");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "label_smoothing")), "0.1");
    cr_assert(strlen(csv_cell(&t, 0, csv_col(&t, "start_time"))) == 20, "ISO 8601 UTC");
    cr_assert(csv_cell(&t, 0, csv_col(&t, "host"))[0]);
    cr_assert(atoi(csv_cell(&t, 0, csv_col(&t, "cores"))) >= 1);
    cr_assert(atof(csv_cell(&t, 0, csv_col(&t, "peak_rss_mib"))) > 0);
    cr_assert(csv_cell(&t, 0, csv_col(&t, "blas"))[0] && csv_cell(&t, 0, csv_col(&t, "compiler"))[0]);
    /* the hash is quoted in the file, so an all-digit hash stays text */
    char want[40];
    snprintf(want, sizeof want, ",\"%s\",", csv_cell(&t, 0, csv_col(&t, "config_hash")));
    cr_assert(strstr(slurp(path), want), "config_hash not quoted:\n%s", slurp(path));
    csv_table_free(&t);
    free(path);
}

Test(runrecord, failed_run_row_has_the_config_columns) {
    /* a run directory with only its config.ini: grid_record writes the
     * failed row through the same schema */
    RunConfig c = awkward();
    char *run = tu_path(dir, "0123456789012345");
    cr_assert_eq(mkdir(run, 0755), 0);
    char *ini = tu_path(run, "config.ini"), *csv = tu_path(dir, "runs.csv");
    Err e = {0};
    cr_assert_eq(config_write(&c, ini, &e), 0, "%s", e.msg);
    char st[16];
    int appended = 0;
    cr_assert_eq(grid_record(run, csv, &appended, st, &e), 0, "%s", e.msg);
    cr_assert_eq(appended, 1);
    cr_assert_str_eq(st, "failed");
    CsvTable t;
    cr_assert_eq(csv_read_file(csv, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.ncols, 2 + record_ncols());
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "run_id")), "0123456789012345");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "status")), "failed");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "seed")), "7");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "init_checkpoint")), "/tmp/a,\"b\" c.safetensors");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "final_top1")), "", "no result for a failed run");
    cr_assert(strstr(slurp(csv), "\"0123456789012345\""), "run_id not quoted:\n%s", slurp(csv));
    csv_table_free(&t);
    free(run); free(ini); free(csv);
}
