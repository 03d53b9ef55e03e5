/* The run record: one column table (RECORD_COLUMNS) for summary.csv, the
 * runs.csv rows and the rows of failed runs. See runrecord.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "runrecord.h"
#include "methods.h"
#include "util.h"
#include "../core/fsutil.h"
#include "../core/gemm.h"

#include <inttypes.h>
#include <libgen.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *ewa_git_commit(void);
int ewa_git_dirty(void);
const char *ewa_build_flags(void);

/* ---------------------------------------------------------------- environment */

static void iso_now(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon) {
            snprintf(buf, n, "%s", colon + 1);
            str_trim(buf);
            break;
        }
    }
    fclose(f);
}

void record_env_begin(RunEnv *env) {
    memset(env, 0, sizeof *env);
    env->t0 = now_s();
    iso_now(env->start_time, sizeof env->start_time);
    if (gethostname(env->host, sizeof env->host - 1)) snprintf(env->host, sizeof env->host, "unknown");
    cpu_model(env->cpu_model, sizeof env->cpu_model);
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    env->cores = nc > 0 ? (int)nc : 1;
}

void record_env_end(RunEnv *env) {
    iso_now(env->end_time, sizeof env->end_time);
    struct rusage ru;
    if (!getrusage(RUSAGE_SELF, &ru)) env->peak_rss_kib = ru.ru_maxrss;
}

/* ---------------------------------------------------------------- columns */

typedef void (*ColFn)(const RunRecord *r, char *buf, size_t n);

typedef enum { C_CFG, C_RES_D, C_RES_L, C_RES_I, C_FN } ColKind;

typedef struct {
    const char *name;
    ColKind kind;
    const char *arg;   /* C_CFG: "section.key"; C_RES_*: printf format */
    size_t off;        /* C_RES_*: offsetof(TrainResult, field) */
    ColFn fn;          /* C_FN */
    int quoted;        /* always written quoted (hashes, commit) */
} Column;

/* A config key as the resolved config spells it. */
#define CFG(name, key) {name, C_CFG, key, 0, NULL, 0}
/* A result of the finished run (empty for a run that did not finish). */
#define RES(name, T, field, fmt) {name, C_RES_##T, fmt, offsetof(TrainResult, field), NULL, 0}
/* Computed by a function below. */
#define FN(name, fn, quoted) {name, C_FN, NULL, 0, fn, quoted}

static void f_commit(const RunRecord *r, char *b, size_t n) { snprintf(b, n, "%s", ewa_git_commit()); }
static void f_dirty(const RunRecord *r, char *b, size_t n) { snprintf(b, n, "%d", ewa_git_dirty()); }
static void f_build(const RunRecord *r, char *b, size_t n) { snprintf(b, n, "%s", ewa_build_flags()); }
static void f_sha(const RunRecord *r, char *b, size_t n) {
    if (r->checkpoint_sha256) snprintf(b, n, "%s", r->checkpoint_sha256);
}
static void f_data_sha(const RunRecord *r, char *b, size_t n) {
    if (r->data_sha256) snprintf(b, n, "%s", r->data_sha256);
}
static void f_hash(const RunRecord *r, char *b, size_t n) {
    if (r->cfg) snprintf(b, n, "%016" PRIx64, config_hash(r->cfg));
}
static void f_threads(const RunRecord *r, char *b, size_t n) {
    /* a run of this process: the count set_threads used (train.threads capped by the CPUs) */
    if (r->cfg) snprintf(b, n, "%d", r->res ? omp_get_max_threads() : r->cfg->threads);
}
static void f_dataset(const RunRecord *r, char *b, size_t n) {
    if (r->dataset_name) snprintf(b, n, "%s", r->dataset_name);
    else if (r->cfg) snprintf(b, n, "%s", r->cfg->dataset);
}
static void f_status(const RunRecord *r, char *b, size_t n) {
    snprintf(b, n, "%s", r->status ? r->status : r->res ? r->res->status : "failed");
}
static void f_params_inference(const RunRecord *r, char *b, size_t n) {
    size_t tot = 0, act = 0;
    if (r->deployed) vit_param_counts(r->deployed, &tot, &act), snprintf(b, n, "%zu", tot);
}
static void f_params_active(const RunRecord *r, char *b, size_t n) {
    size_t tot = 0, act = 0;
    if (r->deployed) vit_param_counts(r->deployed, &tot, &act), snprintf(b, n, "%zu", act);
}
static void f_params_train(const RunRecord *r, char *b, size_t n) {
    size_t tot = 0, act = 0;
    if (r->trained) vit_param_counts(r->trained, &tot, &act), snprintf(b, n, "%zu", tot);
}
static void f_flops(const RunRecord *r, char *b, size_t n) {
    if (r->deployed) snprintf(b, n, "%.0f", vit_flops_per_image(r->deployed));
}
/* Training FLOPs: 3 x the forward FLOPs of the trained model per image (the
 * backward pass costs about twice the forward; Kaplan et al. 2020, "Scaling
 * Laws for Neural Language Models", 2.1) x the images the steps processed.
 * Not counted: the optimizer, the EWA update after each step (for vit-micro
 * with 4 experts in 2 blocks about 0.5 MFLOP per step, under 0.1% of a
 * 64-image step) and evaluation. */
static void f_flops_train(const RunRecord *r, char *b, size_t n) {
    if (r->trained && r->res && r->res->train_images > 0)
        snprintf(b, n, "%.4g", 3.0 * vit_flops_per_image(r->trained) * r->res->train_images);
}
static void f_shared(const RunRecord *r, char *b, size_t n) {   /* as the method builds it */
    MoeSpec s;
    if (r->cfg) method_moe_spec(r->cfg, &s), snprintf(b, n, "%d", s.shared);
}
static void f_ewa_epochs(const RunRecord *r, char *b, size_t n) {   /* -1 resolved */
    const RunConfig *c = r->cfg;
    if (c) snprintf(b, n, "%g", c->ewa_epochs < 0 ? c->epochs / 4.0 : c->ewa_epochs);
}
static void f_start(const RunRecord *r, char *b, size_t n) { if (r->env) snprintf(b, n, "%s", r->env->start_time); }
static void f_end(const RunRecord *r, char *b, size_t n) { if (r->env) snprintf(b, n, "%s", r->env->end_time); }
static void f_host(const RunRecord *r, char *b, size_t n) { if (r->env) snprintf(b, n, "%s", r->env->host); }
static void f_cpu(const RunRecord *r, char *b, size_t n) { if (r->env) snprintf(b, n, "%s", r->env->cpu_model); }
static void f_cores(const RunRecord *r, char *b, size_t n) { if (r->env) snprintf(b, n, "%d", r->env->cores); }
static void f_peak(const RunRecord *r, char *b, size_t n) {
    if (r->env && r->env->peak_rss_kib) snprintf(b, n, "%.1f", r->env->peak_rss_kib / 1024.0);
}
static void f_compiler(const RunRecord *r, char *b, size_t n) {
#if defined(__clang__)
    snprintf(b, n, "clang %s", __clang_version__);
#elif defined(__GNUC__)
    snprintf(b, n, "gcc %s", __VERSION__);
#else
    snprintf(b, n, "unknown");
#endif
}
static void f_blas(const RunRecord *r, char *b, size_t n) { snprintf(b, n, "%s", gemm_blas_config()); }
static void f_blas_core(const RunRecord *r, char *b, size_t n) { snprintf(b, n, "%s", gemm_blas_core()); }
/* The library of the GEMMs (core/gemm.h) and the ISA it uses. */
static void f_gemm_lib(const RunRecord *r, char *b, size_t n) { gemm_library(b, n); }

/* Results of the validation split: empty when the run had none. */
static void f_best_top1(const RunRecord *r, char *b, size_t n) {
    if (r->res && r->res->best_epoch) snprintf(b, n, "%.6f", r->res->best_top1);
}
static void f_val_top1(const RunRecord *r, char *b, size_t n) {
    if (r->res && r->res->best_epoch) snprintf(b, n, "%.6f", r->res->final_val_top1);
}
static void f_best_val_top1(const RunRecord *r, char *b, size_t n) {
    if (r->res && r->res->best_epoch) snprintf(b, n, "%.6f", r->res->best_val_top1);
}

/* The run record, in column order. Adding a column is one line here. */
static const Column RECORD_COLUMNS[] = {
    FN("git_commit", f_commit, 1), FN("git_dirty", f_dirty, 0), FN("config_hash", f_hash, 1),
    CFG("seed", "train.seed"), FN("threads", f_threads, 0), FN("dataset", f_dataset, 0),
    CFG("train_subset", "data.train_subset"), CFG("classes", "data.classes"),
    CFG("preset", "model.preset"), CFG("dim", "model.dim"), CFG("depth", "model.depth"),
    CFG("heads", "model.heads"), CFG("mlp_ratio", "model.mlp_ratio"), CFG("patch", "model.patch"),
    CFG("pool", "model.pool"), CFG("method", "moe.method"), CFG("experts", "moe.experts"),
    CFG("beta", "moe.beta"), CFG("blocks", "moe.blocks"), CFG("epochs", "train.epochs"),
    CFG("batch_size", "train.batch_size"), CFG("lr", "train.lr"),
    RES("final_top1", D, final_top1, "%.6f"), FN("best_top1", f_best_top1, 0),
    RES("final_test_loss", D, final_test_loss, "%.6f"), RES("n_test", I, n_test, "%d"),
    FN("params_inference", f_params_inference, 0), FN("flops_inference", f_flops, 0),
    RES("train_seconds", D, train_seconds, "%.2f"), RES("steps", L, steps, "%ld"),
    FN("flops_train", f_flops_train, 0),
    FN("status", f_status, 0), RES("diverged_step", L, diverged_step, "%ld"),
    /* MoE: active = per token at inference; train = the trained model, experts included */
    FN("params_active", f_params_active, 0), FN("params_train", f_params_train, 0),
    CFG("top_k", "moe.top_k"), CFG("capacity_factor", "moe.capacity_factor"),
    CFG("aux_coef", "moe.aux_coef"), CFG("zloss_coef", "moe.zloss_coef"),
    FN("shared_expert", f_shared, 0), CFG("routing", "moe.routing"),
    CFG("rmoe_partition", "moe.rmoe_partition"), FN("ewa_epochs", f_ewa_epochs, 0),
    RES("drop_rate", D, drop_rate, "%.6f"), CFG("init_checkpoint", "finetune.init_checkpoint"),
    /* the recipe */
    CFG("weight_decay", "train.weight_decay"), CFG("label_smoothing", "train.label_smoothing"),
    CFG("augment", "data.augment"), CFG("warmup_epochs", "train.warmup_epochs"),
    CFG("min_lr", "train.min_lr"), CFG("max_steps", "train.max_steps"), CFG("precision", "train.precision"),
    /* where and how it ran */
    FN("start_time", f_start, 0), FN("end_time", f_end, 0), FN("host", f_host, 0),
    FN("cpu_model", f_cpu, 0), FN("cores", f_cores, 0), FN("compiler", f_compiler, 0),
    FN("blas", f_blas, 0), FN("blas_core", f_blas_core, 0), FN("gemm_lib", f_gemm_lib, 0),
    FN("peak_rss_mib", f_peak, 0),
    /* validation split (issue 10): best_top1 above is the test top-1 at best_epoch, the
     * evaluation with the best val top-1; val_top1 = the final model's */
    CFG("val_size", "data.val_size"), RES("n_val", I, n_val, "%d"), FN("val_top1", f_val_top1, 0),
    FN("best_val_top1", f_best_val_top1, 0), RES("best_epoch", I, best_epoch, "%d"),
    /* the run's identity (issue 10): what `ewa regress --mode exact` compares, and the
     * compiler flags that change numbers (OPT and the ISA -march=native resolved to) */
    FN("checkpoint_sha256", f_sha, 1), FN("build_flags", f_build, 0),
    /* the data (issue 9): SHA-256 of each file read, or shapes3d's generator (data.h) */
    FN("data_sha256", f_data_sha, 1),
};
#define NCOLS ((int)(sizeof RECORD_COLUMNS / sizeof RECORD_COLUMNS[0]))

int record_ncols(void) { return NCOLS; }
const char *record_col_name(int i) { return i >= 0 && i < NCOLS ? RECORD_COLUMNS[i].name : NULL; }

int record_col_quoted(const char *name) {
    if (!strcmp(name, "run_id")) return 1;
    for (int i = 0; i < NCOLS; i++)
        if (!strcmp(RECORD_COLUMNS[i].name, name)) return RECORD_COLUMNS[i].quoted;
    return 0;
}

static void column_value(const Column *col, const RunRecord *r, char *b, size_t n) {
    b[0] = '\0';
    const char *res = (const char *)r->res;
    switch (col->kind) {
    case C_CFG: if (r->cfg) config_format_key(r->cfg, col->arg, b, n); break;
    case C_RES_D: if (res) snprintf(b, n, col->arg, *(const double *)(res + col->off)); break;
    case C_RES_L: if (res) snprintf(b, n, col->arg, *(const long *)(res + col->off)); break;
    case C_RES_I: if (res) snprintf(b, n, col->arg, *(const int *)(res + col->off)); break;
    case C_FN: col->fn(r, b, n); break;
    }
}

void record_values(const RunRecord *r, char (*vals)[600]) {
    for (int i = 0; i < NCOLS; i++) column_value(&RECORD_COLUMNS[i], r, vals[i], 600);
}

int record_write_summary(const char *path, const RunRecord *r, Err *err) {
    char (*v)[600] = xmalloc(sizeof(*v) * NCOLS);
    const char *hdr[NCOLS], *row[NCOLS];
    char quote[NCOLS];
    record_values(r, v);
    for (int i = 0; i < NCOLS; i++) {
        hdr[i] = RECORD_COLUMNS[i].name;
        row[i] = v[i];
        quote[i] = (char)RECORD_COLUMNS[i].quoted;
    }
    int rc = csv_write_file_q(path, NCOLS, hdr, quote, 1, row, err);
    free(v);
    return rc;
}

/* ---------------------------------------------------------------- runs.csv */

const char *runs_row_status(const CsvTable *t, const char *id) {
    int ci = csv_col(t, "run_id"), cs = csv_col(t, "status");
    const char *st = NULL;
    for (int r = 0; ci >= 0 && cs >= 0 && r < t->nrows; r++)
        if (!strcmp(csv_cell(t, r, ci), id)) st = csv_cell(t, r, cs);
    return st;
}

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

/* The row of the run in dir by column name: its summary.csv, or for a run
 * without a usable one, the record of its config.ini with status failed. */
typedef struct {
    int n;
    const char **names;
    char (*vals)[600];
    CsvTable sum;
} NamedRow;

static void named_row(const char *dir, NamedRow *row) {
    memset(row, 0, sizeof *row);
    char path[FS_PATH_BUF];
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    if (fs_file_nonempty(path)) {
        Err e = {0};
        if (!csv_read_file(path, &row->sum, &e) && row->sum.nrows >= 1) {
            row->n = row->sum.ncols;
            row->names = xmalloc(sizeof(char *) * (size_t)row->n);
            row->vals = xmalloc(sizeof(*row->vals) * (size_t)row->n);
            for (int c = 0; c < row->n; c++) {
                row->names[c] = row->sum.header[c];
                snprintf(row->vals[c], 600, "%s", csv_cell(&row->sum, 0, c));
            }
            return;
        }
        fprintf(stderr, "ewa record: %s: unusable summary (%s); recording the run as failed\n",
                path, e.msg[0] ? e.msg : "no row");
        csv_table_free(&row->sum);
    } else if (access(path, F_OK) == 0) {
        fprintf(stderr, "ewa record: %s: empty summary; recording the run as failed\n", path);
    }
    snprintf(path, sizeof path, "%s/config.ini", dir);
    RunConfig c;
    Err e;
    RunRecord r = {.cfg = config_load(&c, path, 0, NULL, &e) ? NULL : &c, .status = "failed"};
    row->n = NCOLS;
    row->names = xmalloc(sizeof(char *) * NCOLS);
    row->vals = xmalloc(sizeof(*row->vals) * NCOLS);
    for (int i = 0; i < NCOLS; i++) row->names[i] = RECORD_COLUMNS[i].name;
    record_values(&r, row->vals);
    /* a config column of the resolved config.ini is known even for a failed
     * run; threads as the runner set it */
}

static void named_row_free(NamedRow *row) {
    free(row->names);
    free(row->vals);
    csv_table_free(&row->sum);
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

/* The run's swept values, run_dir/sweep.csv (one column "sweep.KEY" per
 * swept key, one row; written by the grid runner): into t, or an empty table. */
static void read_sweep_values(const char *dir, CsvTable *t) {
    char path[FS_PATH_BUF];
    Err e;
    snprintf(path, sizeof path, "%s/sweep.csv", dir);
    memset(t, 0, sizeof *t);
    if (fs_file_nonempty(path) && csv_read_file(path, t, &e)) {
        fprintf(stderr, "ewa record: %s (the run is recorded without its sweep columns)\n", e.msg);
        memset(t, 0, sizeof *t);
    }
    if (t->ncols && t->nrows != 1) csv_table_free(t);
}

/* The runs.csv row of the run: run_id, sweep, the sweep.KEY columns and the
 * record's columns (by name), with their quote flags. Returns the count. */
static int runs_row(const char *id, const char *sweep, const CsvTable *sw, const NamedRow *row,
                    const char **hdr, const char **cells, char *quote) {
    int n = 0;
    hdr[n] = "run_id"; cells[n++] = id;
    hdr[n] = "sweep"; cells[n++] = sweep;
    for (int c = 0; c < sw->ncols && sw->nrows == 1; c++) {
        hdr[n] = sw->header[c];
        cells[n++] = csv_cell(sw, 0, c);
    }
    for (int k = 0; k < row->n; k++) {
        int dup = 0;
        for (int c = 0; c < n && !dup; c++) dup = !strcmp(hdr[c], row->names[k]);
        if (dup) continue;
        hdr[n] = row->names[k];
        cells[n++] = row->vals[k];
    }
    for (int c = 0; c < n; c++) quote[c] = (char)record_col_quoted(hdr[c]);
    return n;
}

/* The status of the run's row (its value in the status column). */
static const char *row_status(const NamedRow *row) {
    for (int k = 0; k < row->n; k++)
        if (!strcmp(row->names[k], "status")) return row->vals[k];
    return "failed";
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
    char cfgp[FS_PATH_BUF];
    snprintf(cfgp, sizeof cfgp, "%s/config.ini", dirbuf);
    if (stat(cfgp, &st))
        return err_set(err, ERR_USAGE, "%s: not a run directory (no config.ini)", run_dir);
    int ok = 0;
    if (runs_is_ok(dirbuf, csv_path, &ok, err)) return ERR_RUNTIME;
    if (ok) {   /* an ok row is never replaced */
        if (status) snprintf(status, 16, "ok");
        return 0;
    }
    char path[FS_PATH_BUF], sweep[4096];
    snprintf(path, sizeof path, "%s/sweep.txt", dirbuf);
    read_first_line(path, sweep, sizeof sweep);
    NamedRow row;
    named_row(dirbuf, &row);
    const char *stv = row_status(&row);
    if (status) snprintf(status, 16, "%.15s", stv);
    int rc = 0;
    if (strcmp(stv, "interrupted")) {   /* an interrupted run gets no row: it is resumed */
        CsvTable sw;
        read_sweep_values(dirbuf, &sw);
        size_t cap = (size_t)(2 + sw.ncols + row.n);
        const char **hdr = xmalloc(sizeof(char *) * cap), **cells = xmalloc(sizeof(char *) * cap);
        char *quote = xmalloc(cap);
        int n = runs_row(id, sweep, &sw, &row, hdr, cells, quote), added = 0;
        rc = csv_upsert_row_q(csv_path, n, hdr, quote, cells, "run_id", &added, err);
        if (!rc && added && fs_file_nonempty(csv_path))
            fprintf(stderr, "ewa record: %s: added %d column(s) this run has and the earlier rows lack (empty "
                    "there)\n", csv_path, added);
        if (!rc && appended) *appended = 1;
        free(hdr); free(cells); free(quote);
        csv_table_free(&sw);
    }
    named_row_free(&row);
    return rc;
}

/* ---------------------------------------------------------------- grid plan */

static void plan_path(const char *dir, char *path, size_t n) { snprintf(path, n, "%s/%s", dir, RUNS_PLAN_FILE); }

/* Reads a plan file; ERR_RUNTIME when it lacks the run_id column. */
static int plan_read(const char *path, CsvTable *t, Err *err) {
    if (csv_read_file(path, t, err)) return ERR_RUNTIME;
    if (csv_col(t, "run_id") < 0 || csv_col(t, "seed") < 0) {
        csv_table_free(t);
        return err_set(err, ERR_RUNTIME, "%s: not a grid plan (no run_id or seed column)", path);
    }
    return 0;
}

/* 1 if name is one of the n strings v. */
static int in_list(const char *name, const char *const *v, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], name)) return 1;
    return 0;
}

int runs_plan_write(const char *out_dir, int n, const char *const *ids, const uint64_t *seeds,
                    const char *const *profiles, const char *const *sweeps, int merge, Err *err) {
    char path[FS_PATH_BUF];
    plan_path(out_dir, path, sizeof path);
    CsvTable old = {0};
    int have = fs_file_nonempty(path);
    if (have && plan_read(path, &old, err)) return ERR_RUNTIME;
    int nold = have ? old.nrows : 0, nrows = 0;
    enum { NC = 4 };
    const char **cells = xmalloc(sizeof(char *) * NC * ((size_t)(nold + n) + 1));
    char (*seedtxt)[24] = xmalloc(sizeof *seedtxt * ((size_t)n + 1));
    int ci = have ? csv_col(&old, "run_id") : -1, cs = have ? csv_col(&old, "seed") : -1,
        cp = have ? csv_col(&old, "profile") : -1, cw = have ? csv_col(&old, "sweep") : -1;
    for (int r = 0; r < nold; r++) {
        const char *prof = cp >= 0 ? csv_cell(&old, r, cp) : "";
        if (!merge && in_list(prof, profiles, n)) continue;   /* this invocation says what its profiles make */
        cells[NC * nrows] = csv_cell(&old, r, ci);
        cells[NC * nrows + 1] = csv_cell(&old, r, cs);
        cells[NC * nrows + 2] = prof;
        cells[NC * nrows + 3] = cw >= 0 ? csv_cell(&old, r, cw) : "";
        nrows++;
    }
    int nkept = nrows;
    for (int i = 0; i < n; i++) {
        int listed = 0;
        for (int r = 0; r < nkept && !listed; r++) listed = !strcmp(cells[NC * r], ids[i]);
        if (listed) continue;
        snprintf(seedtxt[i], sizeof seedtxt[i], "%" PRIu64, seeds[i]);
        cells[NC * nrows] = ids[i];
        cells[NC * nrows + 1] = seedtxt[i];
        cells[NC * nrows + 2] = profiles[i] ? profiles[i] : "";
        cells[NC * nrows + 3] = sweeps[i] ? sweeps[i] : "";
        nrows++;
    }
    static const char *const header[NC] = {"run_id", "seed", "profile", "sweep"};
    static const char quote[NC] = {1, 0, 0, 0};   /* an all-digit id reads back as text */
    int rc = csv_write_file_q(path, NC, header, quote, nrows, cells, err);
    free(seedtxt);
    free(cells);
    if (have) csv_table_free(&old);
    return rc ? ERR_RUNTIME : 0;
}

/* A row that ends a run: ok, failed or diverged (not interrupted, not empty). */
static int finished_status(const char *st) {
    return st && (!strcmp(st, "ok") || !strcmp(st, "failed") || !strcmp(st, "diverged"));
}

int runs_plan_missing(const char *runs_csv, const CsvTable *runs_t, const char *const *coming, int ncoming,
                      int *planned, int *missing, char first_missing[64], int *unplanned, Err *err) {
    *planned = *missing = *unplanned = 0;
    first_missing[0] = '\0';
    char copy[FS_PATH_BUF - 16], path[FS_PATH_BUF];   /* room for "/plan.csv" */
    if ((size_t)snprintf(copy, sizeof copy, "%s", runs_csv) >= sizeof copy)
        return err_set(err, ERR_RUNTIME, "%.80s...: path too long", runs_csv);
    plan_path(dirname(copy), path, sizeof path);
    if (access(path, F_OK)) return 0;
    CsvTable t;
    if (plan_read(path, &t, err)) return ERR_RUNTIME;
    int ci = csv_col(&t, "run_id");
    for (int r = 0; r < t.nrows; r++) {
        const char *id = csv_cell(&t, r, ci);
        (*planned)++;
        if (finished_status(runs_row_status(runs_t, id)) || in_list(id, coming, ncoming)) continue;
        if (!(*missing)++) snprintf(first_missing, 64, "%s", id);
    }
    int ri = csv_col(runs_t, "run_id");
    for (int r = 0; ri >= 0 && r < runs_t->nrows; r++) {
        const char *id = csv_cell(runs_t, r, ri);
        int listed = 0, dup = 0;
        for (int k = 0; k < t.nrows && !listed; k++) listed = !strcmp(csv_cell(&t, k, ci), id);
        for (int q = 0; q < r && !dup; q++) dup = !strcmp(csv_cell(runs_t, q, ri), id);
        *unplanned += !listed && !dup;
    }
    csv_table_free(&t);
    return 0;
}
