/* The runs.csv recorder: one row per finished grid run (its summary.csv), or
 * a status `failed` row built from its config.ini. See runrecord.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "runrecord.h"
#include "config.h"
#include "util.h"
#include "../core/fsutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The summary.csv columns of experiments/train.c, used as the runs.csv header
 * when the first row to record is a failed run without a summary. */
static const char *const SUMMARY_HEADER[] = {
    "git_commit", "git_dirty", "config_hash", "seed", "threads", "dataset", "train_subset",
    "classes", "preset", "dim", "depth", "heads", "mlp_ratio", "patch", "pool", "method",
    "experts", "beta", "blocks", "epochs", "batch_size", "lr", "final_top1", "best_top1",
    "final_test_loss", "n_test", "params_inference", "flops_inference", "train_seconds",
    "steps", "status", "diverged_step", "params_active", "params_train", "top_k",
    "capacity_factor", "aux_coef", "zloss_coef", "shared_expert", "routing", "rmoe_partition",
    "ewa_epochs", "drop_rate", "init_checkpoint"};
#define N_SUMMARY_HEADER ((int)(sizeof SUMMARY_HEADER / sizeof SUMMARY_HEADER[0]))

/* 1 if t holds a row with run_id id and status ok. */
int runs_has_ok_row(const CsvTable *t, const char *id) {
    int ci = csv_col(t, "run_id"), cs = csv_col(t, "status");
    if (ci < 0 || cs < 0) return 0;
    for (int r = 0; r < t->nrows; r++)
        if (!strcmp(csv_cell(t, r, ci), id) && !strcmp(csv_cell(t, r, cs), "ok")) return 1;
    return 0;
}

static void read_first_line(const char *path, char *buf, size_t n) {
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!fgets(buf, (int)n, f)) buf[0] = '\0';
    fclose(f);
    str_trim(buf);
}

/* Row values by column name for a run without a summary. */
static void failed_values(const char *run_dir, char names[][32], char vals[][600], int *nv) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.ini", run_dir);
    RunConfig c;
    Err e;
    int n = 0;
#define PUT(k, ...) do { snprintf(names[n], 32, "%s", k); snprintf(vals[n], 600, __VA_ARGS__); n++; } while (0)
    PUT("status", "failed");
    if (!config_load(&c, path, 0, NULL, &e)) {
        PUT("config_hash", "%016" PRIx64, config_hash(&c));
        PUT("seed", "%" PRIu64, c.seed);
        PUT("threads", "%d", c.threads);
        PUT("dataset", "%s", c.dataset);
        PUT("train_subset", "%d", c.train_subset);
        PUT("classes", "%s", c.classes);
        PUT("preset", "%s", c.preset);
        PUT("dim", "%d", c.dim);
        PUT("depth", "%d", c.depth);
        PUT("heads", "%d", c.heads);
        PUT("mlp_ratio", "%g", c.mlp_ratio);
        PUT("patch", "%d", c.patch);
        PUT("pool", "%s", c.pool);
        PUT("method", "%s", c.method);
        PUT("experts", "%d", c.experts);
        PUT("beta", "%g", c.beta);
        PUT("blocks", "%s", c.blocks);
        PUT("epochs", "%d", c.epochs);
        PUT("batch_size", "%d", c.batch_size);
        PUT("lr", "%g", c.lr);
        PUT("top_k", "%d", c.top_k);
        PUT("shared_expert", "%d", c.shared_expert);
        PUT("routing", "%s", c.routing);
        PUT("init_checkpoint", "%s", c.init_checkpoint);
    }
#undef PUT
    *nv = n;
}

/* The run id of run_dir: its last path component (trailing slashes ignored). */
static const char *run_id_of(const char *run_dir, char *buf, size_t n) {
    snprintf(buf, n, "%s", run_dir);
    size_t dl = strlen(buf);
    while (dl > 1 && buf[dl - 1] == '/') buf[--dl] = '\0';
    const char *slash = strrchr(buf, '/');
    return slash ? slash + 1 : buf;
}

int runs_is_ok(const char *run_dir, const char *csv_path, int *ok, Err *err) {
    *ok = 0;
    char buf[4096];
    const char *id = run_id_of(run_dir, buf, sizeof buf);
    if (!fs_file_nonempty(csv_path)) return 0;
    CsvTable t;
    if (csv_read_file(csv_path, &t, err)) return ERR_RUNTIME;
    if (csv_col(&t, "run_id") < 0) {
        csv_table_free(&t);
        return err_set(err, ERR_RUNTIME, "%s: has no run_id column (not a grid runs.csv)", csv_path);
    }
    *ok = runs_has_ok_row(&t, id);
    csv_table_free(&t);
    return 0;
}

int grid_record(const char *run_dir, const char *csv_path, int *appended, char status[16],
                Err *err) {
    if (appended) *appended = 0;
    char dirbuf[4096];
    const char *id = run_id_of(run_dir, dirbuf, sizeof dirbuf);   /* dirbuf: run_dir, trimmed */
    struct stat st;
    if (stat(dirbuf, &st) || !S_ISDIR(st.st_mode))
        return err_set(err, ERR_USAGE, "%s: not a run directory", run_dir);
    /* every run directory a grid prepares holds its config.ini: without one
     * this is no run (e.g. OUT/runs/ from an empty job-list line) */
    char cfgp[4200];
    snprintf(cfgp, sizeof cfgp, "%s/config.ini", dirbuf);
    if (stat(cfgp, &st))
        return err_set(err, ERR_USAGE, "%s: not a run directory (no config.ini)", run_dir);

    CsvTable have = {0};
    int have_file = fs_file_nonempty(csv_path);
    if (have_file && csv_read_file(csv_path, &have, err)) return ERR_RUNTIME;
    if (have_file && csv_col(&have, "run_id") < 0) {
        csv_table_free(&have);
        return err_set(err, ERR_RUNTIME, "%s: has no run_id column (not a grid runs.csv)", csv_path);
    }
    if (have_file && runs_has_ok_row(&have, id)) {
        if (status) snprintf(status, 16, "ok");
        csv_table_free(&have);
        return 0;
    }

    char path[4200], sweep[4096];
    snprintf(path, sizeof path, "%s/sweep.txt", dirbuf);
    read_first_line(path, sweep, sizeof sweep);

    /* the values, by column name */
    int nv = 0;
    static char names[128][32];
    static char vals[128][600];
    CsvTable sum = {0};
    snprintf(path, sizeof path, "%s/summary.csv", dirbuf);
    int have_sum = 0;
    if (fs_file_nonempty(path)) {
        Err e = {0};
        if (csv_read_file(path, &sum, &e) == 0 && sum.nrows >= 1 && sum.ncols <= 120) have_sum = 1;
        else {
            fprintf(stderr, "ewa record: %s: unusable summary (%s); recording the run as failed\n",
                    path, e.msg[0] ? e.msg : "no row");
            csv_table_free(&sum);
        }
    }
    if (have_sum) {
        for (int c = 0; c < sum.ncols; c++) {
            snprintf(names[nv], 32, "%s", sum.header[c]);
            snprintf(vals[nv], 600, "%s", csv_cell(&sum, 0, c));
            nv++;
        }
    } else {
        failed_values(dirbuf, names, vals, &nv);
    }

    /* the header: the existing file's, else run_id, sweep and the summary's */
    int ncols;
    const char **header;
    if (have_file) {
        ncols = have.ncols;
        header = xrealloc(NULL, sizeof(char *) * (size_t)ncols);
        for (int c = 0; c < ncols; c++) header[c] = have.header[c];
    } else if (have_sum) {
        ncols = 2 + sum.ncols;
        header = xrealloc(NULL, sizeof(char *) * (size_t)ncols);
        header[0] = "run_id";
        header[1] = "sweep";
        for (int c = 0; c < sum.ncols; c++) header[2 + c] = sum.header[c];
    } else {
        ncols = 2 + N_SUMMARY_HEADER;
        header = xrealloc(NULL, sizeof(char *) * (size_t)ncols);
        header[0] = "run_id";
        header[1] = "sweep";
        for (int c = 0; c < N_SUMMARY_HEADER; c++) header[2 + c] = SUMMARY_HEADER[c];
    }
    const char **row = xrealloc(NULL, sizeof(char *) * (size_t)ncols);
    for (int c = 0; c < ncols; c++) {
        row[c] = "";
        if (!strcmp(header[c], "run_id")) row[c] = id;
        else if (!strcmp(header[c], "sweep")) row[c] = sweep;
        else
            for (int k = 0; k < nv; k++)
                if (!strcmp(names[k], header[c])) row[c] = vals[k];
    }
    for (int k = 0; k < nv; k++) {
        int found = 0;
        for (int c = 0; c < ncols && !found; c++) found = !strcmp(names[k], header[c]);
        if (!found)
            fprintf(stderr, "ewa record: %s has no column '%s'; value dropped\n", csv_path, names[k]);
    }
    const char *stv = "failed";
    for (int k = 0; k < nv; k++)
        if (!strcmp(names[k], "status")) stv = vals[k];
    if (status) snprintf(status, 16, "%.15s", stv);
    int rc = csv_append_row(csv_path, ncols, header, row, err);
    if (!rc && appended) *appended = 1;
    free(header);
    free(row);
    csv_table_free(&sum);
    csv_table_free(&have);
    return rc;
}
