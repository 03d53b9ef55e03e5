/* Tests for experiments/runrecord.c: the one run-record schema round-trips
 * through libcsv (summary.csv, a failed run's runs.csv row), hashes are
 * written quoted, every config column holds the config's value, and the
 * checkpoint's SHA-256 is FIPS SHA-256. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include "../experiments/config.h"
#include "../experiments/csvio.h"
#include "../experiments/runrecord.h"
#include "../core/fsutil.h"
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

/* A run directory whose summary.csv is empty (0 bytes) is recorded failed,
 * and record says why on stderr (it said nothing). */
Test(runrecord, empty_summary_recorded_failed_with_a_message) {
    RunConfig c = awkward();
    char *run = tu_path(dir, "0123456789012346");
    cr_assert_eq(mkdir(run, 0755), 0);
    char *ini = tu_path(run, "config.ini"), *sum = tu_path(run, "summary.csv"), *csv = tu_path(dir, "runs.csv");
    char *log = tu_path(dir, "stderr.txt");
    Err e = {0};
    cr_assert_eq(config_write(&c, ini, &e), 0, "%s", e.msg);
    FILE *f = fopen(sum, "w");
    cr_assert(f);
    fclose(f);
    fflush(stderr);
    int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    char st[16];
    int appended = 0, rc = grid_record(run, csv, &appended, st, &e);
    fflush(stderr);
    dup2(saved, 2);
    close(fd);
    close(saved);
    cr_assert_eq(rc, 0, "%s", e.msg);
    cr_assert_str_eq(st, "failed");
    cr_assert(strstr(slurp(log), "summary.csv: empty summary"), "stderr: '%s'", slurp(log));
    free(run); free(ini); free(sum); free(csv); free(log);
}

/* fs_sha256_file against the FIPS 180-2 test vectors (the empty message,
 * "abc", and a million 'a', which spans many 64 KiB reads), and the
 * checkpoint_sha256 column written quoted. */
Test(runrecord, checkpoint_sha256_is_fips_sha256_and_quoted) {
    static const struct { const char *text; size_t repeat; const char *hex; } v[] = {
        {"", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    };
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(v[i].text) * v[i].repeat;
        char *data = malloc(len + 1);
        for (size_t k = 0; k < len; k++) data[k] = v[i].text[k % strlen(v[i].text)];
        char *p = tu_write(dir, "msg.bin", data, len), hex[65];
        Err e = {0};
        cr_assert_eq(fs_sha256_file(p, hex, &e), 0, "%s", e.msg);
        cr_assert_str_eq(hex, v[i].hex, "vector %d", i);
        free(data); free(p);
    }
    char hex[65] = "x";
    Err e = {0};
    char *missing = tu_path(dir, "nope.safetensors");
    cr_assert_eq(fs_sha256_file(missing, hex, &e), ERR_RUNTIME);
    cr_assert(strstr(e.msg, "nope.safetensors: cannot open"), "%s", e.msg);
    cr_assert_str_eq(hex, "");
    free(missing);

    RunConfig c = awkward();
    RunRecord r = {.cfg = &c, .checkpoint_sha256 = v[1].hex};
    char *path = tu_path(dir, "summary.csv");
    cr_assert_eq(record_write_summary(path, &r, &e), 0, "%s", e.msg);
    char quoted[80];
    snprintf(quoted, sizeof quoted, "\"%s\"", v[1].hex);
    cr_assert(strstr(slurp(path), quoted), "checkpoint_sha256 not quoted:\n%s", slurp(path));
    free(path);
}

/* Issue 11.9 and 11.4: one row per run (a retried run replaces its row), an
 * older runs.csv schema is migrated (the new columns added, empty in the old
 * rows) instead of dropping values, and the sweep.KEY columns of sweep.csv
 * keep values holding separators. */
Test(runrecord, one_row_per_run_and_older_schema_migrated) {
    RunConfig c = awkward();
    char *run = tu_path(dir, "00000000000000aa");
    cr_assert_eq(mkdir(run, 0755), 0);
    char *ini = tu_path(run, "config.ini"), *csv = tu_path(dir, "runs.csv");
    Err e = {0};
    cr_assert_eq(config_write(&c, ini, &e), 0, "%s", e.msg);
    static const char sweep[] = "sweep.data.dir,sweep.train.lr\n\"/d;b,x\",0.01\n";
    free(tu_write(run, "sweep.csv", sweep, strlen(sweep)));
    /* an older schema: a row of another run, no best_epoch and no sweep.* columns */
    static const char old[] = "run_id,sweep,status,final_top1,seed\n\"00000000000000bb\",x=1,ok,0.5,3\n";
    free(tu_write(dir, "runs.csv", old, strlen(old)));
    char st[16];
    int appended = 0;
    cr_assert_eq(grid_record(run, csv, &appended, st, &e), 0, "%s", e.msg);
    cr_assert_eq(grid_record(run, csv, &appended, st, &e), 0, "%s", e.msg);   /* retried: replaced */
    CsvTable t;
    cr_assert_eq(csv_read_file(csv, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.nrows, 2, "%d rows", t.nrows);
    int cb = csv_col(&t, "best_epoch"), cd = csv_col(&t, "sweep.data.dir");
    cr_assert(cb >= 0 && cd >= 0, "columns not added");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "run_id")), "00000000000000bb");
    cr_assert_str_eq(csv_cell(&t, 0, csv_col(&t, "final_top1")), "0.5", "the old row lost a value");
    cr_assert_str_eq(csv_cell(&t, 0, cb), "");
    cr_assert_str_eq(csv_cell(&t, 1, csv_col(&t, "run_id")), "00000000000000aa");
    cr_assert_str_eq(csv_cell(&t, 1, cd), "/d;b,x");
    cr_assert_str_eq(csv_cell(&t, 1, csv_col(&t, "sweep.train.lr")), "0.01");
    cr_assert_str_eq(csv_cell(&t, 1, csv_col(&t, "seed")), "7");
    csv_table_free(&t);
    /* an interrupted run gets no row */
    char *run2 = tu_path(dir, "00000000000000cc");
    cr_assert_eq(mkdir(run2, 0755), 0);
    char *ini_text = strdup(slurp(ini));   /* slurp's buffer is static */
    free(tu_write(run2, "config.ini", ini_text, strlen(ini_text)));
    free(ini_text);
    static const char sum[] = "status,steps\ninterrupted,9\n";
    free(tu_write(run2, "summary.csv", sum, strlen(sum)));
    cr_assert_eq(grid_record(run2, csv, &appended, st, &e), 0, "%s", e.msg);
    cr_assert_eq(appended, 0);
    cr_assert_str_eq(st, "interrupted");
    cr_assert_eq(csv_read_file(csv, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.nrows, 2);
    csv_table_free(&t);
    free(run); free(run2); free(ini); free(csv);
}
