#include "train.h"
#include "data.h"
#include "dist.h"
#include "grid.h"
#include "methods.h"
#include "runrecord.h"
#include "util.h"
#include "../core/fsutil.h"
#include "../core/gemm.h"
#include "../core/checkpoint.h"
#include "csvio.h"
#include "trainstate.h"
#include "../core/ewa.h"
#include "../core/optim.h"
#include "../core/vit.h"
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *ewa_git_commit(void);
int ewa_git_dirty(void);

/* train.threads (0 = every core). More threads than the CPUs this process
 * may run on (sched_getaffinity, grid_cpu_count) only oversubscribe them
 * (issue 11.8: 64 threads on 2 cores ran at 12-50 img/s instead of ~500, and
 * hung in OpenBLAS's buffer allocation under a memory limit): capped, with a
 * warning. The summary's threads column records the count used. */
static void set_threads(int threads) {
    int cores = grid_cpu_count(), nt = threads > 0 ? threads : omp_get_num_procs();
    if (threads > cores) {
        fprintf(stderr, "warning: train.threads = %d exceeds the %d CPUs this process may run on: using %d\n",
                threads, cores, cores);
        nt = cores;
    }
    gemm_set_threads(nt);
}

/* train.precision for every GEMM of this process; bf16 on a CPU without
 * bf16 instructions is refused here, before the run directory is touched. */
static int set_precision(const RunConfig *c, Err *err) {
    GemmPrecision p;
    return gemm_parse_precision(c->precision, "train.precision", &p, err) || gemm_set_precision(p, err)
               ? ERR_USAGE : 0;
}

/* The training model's shape; deployed = 1 gives the shape that is evaluated
 * and saved (dense for the methods that collapse their experts, methods.h). */
static int model_dims(const RunConfig *c, const DataSplit *ds, int deployed, ViTDims *d, Err *err) {
    int rc, pool = vit_pool_from_name(c->pool);
    if (pool < 0) return err_set(err, ERR_USAGE, "model.pool = '%s': expected cls, mean or avg", c->pool);
    if (ds->is_points) {   /* the image fields are unused: a 1x1 "image", patch 1 */
        rc = vit_dims(d, 1, 1, 1, 1, c->dim, c->depth, c->heads, c->mlp_ratio, ds->num_classes,
                      pool, err);
        if (!rc) rc = vit_set_points(d, ds->pts.P, c->groups, c->group_size, c->pn_width, err);
    } else {
        rc = vit_dims(d, ds->img.c, ds->img.h, ds->img.w, c->patch, c->dim, c->depth, c->heads,
                      c->mlp_ratio, ds->num_classes, pool, err);
    }
    if (rc) return rc;
    MethodPlan p;
    method_plan(c, 0, 0, &p);
    if (p.spec.kind == MOE_NONE || (deployed && p.collapse)) return 0;
    return vit_set_moe(d, &p.spec, c->blocks, err);
}

static int build_model(const RunConfig *c, const DataSplit *ds, int max_batch, int deployed, ViT *m,
                       Err *err) {
    ViTDims d;
    int rc = model_dims(c, ds, deployed, &d, err);
    if (rc) return rc;
    rc = vit_init(m, &d, max_batch, err);
    if (rc) return rc;
    m->label_smoothing = c->label_smoothing;
    m->moe_seed = c->seed;
    return 0;
}

/* Top-1 count of the logits of the last forward. */
static int count_correct(const ViT *m, const int *y, int B) {
    int K = m->d.classes, correct = 0;
    for (int b = 0; b < B; b++) {
        const float *l = m->a.logits + (size_t)b * K;
        int best = 0;
        for (int k = 1; k < K; k++) if (l[k] > l[best]) best = k;
        correct += best == y[b];
    }
    return correct;
}

/* Over a whole split, no augmentation: the mean plain cross-entropy (loss),
 * the mean label-smoothed cross-entropy of the training objective (smoothed;
 * equal to loss when train.label_smoothing = 0; MoE auxiliary losses are not
 * included) and top-1. */
static int evaluate(ViT *m, DataSplit *s, float *x, int *y, int *idx, double *loss, double *smoothed,
                    double *top1, Err *err) {
    int B = m->max_batch, correct = 0, lo, n;
    double total = 0.0, total_s = 0.0;
    dist_split(s->n, &lo, &n);   /* this rank's part of the split (all of it on one rank) */
    for (int i = 0; i < n; i++) idx[i] = lo + i;
    for (int off = 0; off < n; off += B) {
        int nb = n - off < B ? n - off : B;
        int rc = data_batch(s, idx + off, nb, 0, NULL, x, y, err);
        if (rc) return rc;
        int training = m->training;
        m->training = 0;   /* no capacity limit at evaluation */
        total_s += ((double)vit_forward(m, x, y, nb) - m->aux_loss) * nb;
        total += (double)m->nll * nb;
        m->training = training;
        correct += count_correct(m, y, nb);
    }
    double sums[3] = {total, correct, total_s};
    int rc = dist_sum_doubles(sums, 3, err);
    *loss = sums[0] / s->n;
    *top1 = sums[1] / s->n;
    *smoothed = sums[2] / s->n;
    return rc;
}

/* Number of non-finite values among n floats. */
static size_t count_nonfinite(const float *v, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !isfinite(v[i]);
    return bad;
}

/* Marks the run diverged at step because `what` is not finite (train loss,
 * test loss, parameters, ...): no checkpoint is written after this. */
static void mark_diverged(TrainResult *res, long step, const char *what) {
    snprintf(res->status, sizeof res->status, "diverged");
    snprintf(res->diverged_what, sizeof res->diverged_what, "%s", what);
    res->diverged_step = step;
}

/* ---- run directory files ---------------------------------------------- */

/* metrics.csv: one row per pass over a split (train: the epoch's training
 * steps; test: one evaluation). Every column means the same on every row:
 * loss (plain cross-entropy), loss_smoothed (the label-smoothed cross-entropy
 * that training minimises, train.label_smoothing; without the MoE auxiliary
 * losses, which moe_metrics.csv holds) and top1 of that pass, lr and step at
 * its end, wall_s = seconds since the run started at its end, pass_s = the
 * pass's own seconds, images_per_s = the pass's images / pass_s (training
 * throughput on train rows, evaluation throughput on test rows). */
enum { METRIC_COLS = 10, MOE_COLS = 4 };
static const char *const metric_header[METRIC_COLS] = {
    "epoch", "split", "loss", "top1", "lr", "wall_s", "images_per_s", "step", "loss_smoothed",
    "pass_s"};
/* moe_metrics.csv (runs with MoE layers): per training epoch, the mean
 * auxiliary loss and the fraction of routed assignments dropped. */
static const char *const moe_header[MOE_COLS] = {"epoch", "step", "aux_loss", "drop_rate"};

typedef struct { int nrows, cap; char **cells; } Rows;

static void rows_add(Rows *r, const char *const *vals, int ncols) {
    if (r->nrows == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->cells = realloc(r->cells, sizeof(char *) * (size_t)r->cap * ncols);
    }
    for (int i = 0; i < ncols; i++) r->cells[(size_t)r->nrows * ncols + i] = strdup(vals[i]);
    r->nrows++;
}

static void rows_free(Rows *r, int ncols) {
    for (int i = 0; i < r->nrows * ncols; i++) free(r->cells[i]);
    free(r->cells);
}

/* Adds one row of ncols cells printed by fmt, the cells separated by tabs
 * (no cell of these files holds a tab). */
static void rows_addf(Rows *r, int ncols, const char *fmt, ...) {
    char line[512], *p[16];
    assert(ncols <= 16);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    int n = 0;
    for (char *c = line; n < ncols; c++) {
        p[n++] = c;
        c = strchr(c, '\t');
        if (!c) break;
        *c = '\0';
    }
    assert(n == ncols);
    rows_add(r, (const char *const *)p, ncols);
}

/* Rewrites the whole file from the rows so far, atomically (csvio.h). */
static int rows_save(const Rows *r, const char *path, int ncols, const char *const *header, Err *err) {
    return csv_write_file(path, ncols, header, r->nrows, (const char *const *)r->cells, err);
}

static int add_moe_metric(Rows *r, const char *path, int epoch, long step, double aux, double drop,
                          Err *err) {
    rows_addf(r, MOE_COLS, "%d\t%ld\t%.6f\t%.6f", epoch, step, aux, drop);
    return rows_save(r, path, MOE_COLS, moe_header, err);
}

static int add_metric(Rows *r, const char *path, int epoch, const char *split, double loss,
                      double loss_smoothed, double top1, double lr, double wall, double pass_s,
                      long images, long step,
                      Err *err) {
    rows_addf(r, METRIC_COLS, "%d\t%s\t%.6f\t%.6f\t%.6g\t%.3f\t%.1f\t%ld\t%.6f\t%.3f", epoch, split, loss,
              top1, lr, wall, images / (pass_s > 0 ? pass_s : 1e-9), step, loss_smoothed, pass_s);
    return rows_save(r, path, METRIC_COLS, metric_header, err);
}

/* Routing statistics (docs/DESIGN.md 2.8): rows epoch, layer, class, expert, count
 * for every routed MoE layer; all evaluations so far, rewritten atomically. */
enum { ROUTE_COLS = 5 };
static const char *const route_header[ROUTE_COLS] = {"epoch", "layer", "class", "expert", "count"};
static int add_routing(Rows *r, const char *path, int epoch, const ViT *m, Err *err) {
    int E = m->d.moe.experts, K = m->d.classes;
    for (int l = 0; l < m->d.depth; l++) {
        if (!m->d.moe_block[l]) continue;
        for (int k = 0; k < K; k++)
            for (int e = 0; e < E; e++)
                rows_addf(r, ROUTE_COLS, "%d\t%d\t%d\t%d\t%ld", epoch, l, k, e,
                          m->route_counts[((size_t)l * K + k) * E + e]);
    }
    return rows_save(r, path, ROUTE_COLS, route_header, err);
}

static int save_final(const ViT *m, const RunConfig *c, const DataSplit *split, const char *path,
                      Err *err) {
    char *ini = config_to_ini(c);
    char mean[64] = "0", std[64] = "1", shape[64], classes[16];
    const ImageSet *ds = &split->img;
    if (split->is_points) {
        snprintf(shape, sizeof shape, "%d,3", split->pts.P);   /* unit-sphere clouds */
    } else if (ds->c == 3) {
        snprintf(mean, sizeof mean, "%.4f,%.4f,%.4f", ds->mean[0], ds->mean[1], ds->mean[2]);
        snprintf(std, sizeof std, "%.4f,%.4f,%.4f", ds->std[0], ds->std[1], ds->std[2]);
    } else {
        snprintf(mean, sizeof mean, "%.4f", ds->mean[0]);
        snprintf(std, sizeof std, "%.4f", ds->std[0]);
    }
    if (!split->is_points) snprintf(shape, sizeof shape, "%d,%d,%d", ds->c, ds->h, ds->w);
    snprintf(classes, sizeof classes, "%d", split->num_classes);
    char timm[512];   /* absent for models timm's VisionTransformer cannot build */
    int has_timm = !vit_timm_kwargs(&m->d, timm, sizeof timm);
    const char *keys[] = {"config", "data.mean", "data.std", "input_shape", "num_classes", "format", "timm_kwargs"};
    const char *vals[] = {ini ? ini : "", mean, std, shape, classes, "pt", timm};
    int rc = vit_save(m, path, 6 + has_timm, keys, vals, err);
    free(ini);
    return rc;
}

/* ---- progress line ---------------------------------------------------- */

static void progress(int tty, int epoch, int epochs, long step, long total, double loss,
                     double acc, double ips, double eta) {
    if (!tty) return;
    fprintf(stderr, "\r\033[Kepoch %d/%d  step %ld/%ld  loss %.4f  acc %.3f  %.0f img/s  ETA %dm%02ds",
            epoch, epochs, step, total, loss, acc, ips, (int)(eta / 60), (int)fmod(eta, 60));
    fflush(stderr);
}

/* ---- the run ------------------------------------------------------------ */

/* A checkpoint's input shape (if shape; fine-tuning adapts an image
 * checkpoint instead) and class count (unless the head is new) must be the
 * data's: a mismatch names both the checkpoint and the data file. */
static int check_ckpt_data(const StFile *f, const char *path, const DataSplit *s, int classes, int shape_check,
                           Err *err) {
    const char *shape = st_meta(f, "input_shape"), *k = st_meta(f, "num_classes");
    char want[64], src[300];
    if (s->is_points) {
        snprintf(want, sizeof want, "%d,3", s->pts.P);
        snprintf(src, sizeof src, "%s", s->pts.source);
    } else {
        snprintf(want, sizeof want, "%d,%d,%d", s->img.c, s->img.h, s->img.w);
        snprintf(src, sizeof src, "%s", s->img.source);
    }
    if (shape_check && shape && strcmp(shape, want))
        return err_set(err, ERR_RUNTIME, "%s: the checkpoint's input shape is %s, but %s holds "
                       "samples of shape %s", path, shape, src, want);
    if (classes && k && atoi(k) != s->num_classes)
        return err_set(err, ERR_RUNTIME, "%s: the checkpoint has %s classes, but %s has %d",
                       path, k, src, s->num_classes);
    return 0;
}

/* Fine-tuning (docs/DESIGN.md 2.7): loads a checkpoint, re-initialised head if
 * asked, MoE layers upcycled from the checkpoint's FFNs. */
static int load_init_checkpoint(ViT *m, const RunConfig *c, const DataSplit *train, Err *err) {
    StFile f;
    int rc = st_read(c->init_checkpoint, &f, err);
    if (rc) return rc;
    const char *skip[] = {"head."};
    int n_up = 0;
    char adapted[600] = "";
    rc = check_ckpt_data(&f, c->init_checkpoint, train, !c->reset_head, train->is_points, err);
    if (!rc) rc = vit_adapt_checkpoint(m, &f, c->init_checkpoint, adapted, sizeof adapted, err);
    if (!rc) rc = vit_load_upcycle(m, &f, c->init_checkpoint, c->reset_head ? 1 : 0, skip, &n_up, err);
    st_free(&f);
    if (!rc)
        fprintf(stderr, "loaded %s%s%s\n", c->init_checkpoint, c->reset_head ? " (head re-initialised)" : "",
                n_up ? " (MoE experts upcycled from its FFNs)" : "");
    if (!rc && adapted[0]) fprintf(stderr, "adapted %s: %s\n", c->init_checkpoint, adapted);
    return rc;
}

/* ---- the run directory: refusal, cleaning, resume ---------------------- */

/* The files of a run in its directory, besides config.ini. */
static const char *const RUN_FILES[] = {"final.safetensors", "summary.csv", "metrics.csv",
                                        "moe_metrics.csv", "routing.csv", TRAINSTATE_FILE};
enum { N_RUN_FILES = sizeof RUN_FILES / sizeof RUN_FILES[0] };

static int dir_has(const char *dir, const char *name) {
    char p[FS_PATH_BUF];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* The status in dir/summary.csv ("" if there is none or it is unreadable). */
static void summary_status(const char *dir, char *st, size_t n) {
    char p[FS_PATH_BUF];
    CsvTable t;
    Err e;
    st[0] = '\0';
    snprintf(p, sizeof p, "%s/summary.csv", dir);
    if (!fs_file_nonempty(p) || csv_read_file(p, &t, &e)) return;
    int c = csv_col(&t, "status");
    if (c >= 0 && t.nrows >= 1) snprintf(st, n, "%s", csv_cell(&t, 0, c));
    csv_table_free(&t);
}

/* What mode (train.h) does with the run in dir: ERR_USAGE if it is refused;
 * *resume = 1 when its train state is to be loaded. */
static int check_run_dir(const char *dir, TrainMode mode, int writer, int *resume, Err *err) {
    char st[32];
    summary_status(dir, st, sizeof st);
    int holds = 0;
    for (int i = 0; i < N_RUN_FILES; i++) holds |= dir_has(dir, RUN_FILES[i]);
    int finished = st[0] && strcmp(st, "interrupted");
    *resume = mode == TRAIN_RESUME && !finished && dir_has(dir, TRAINSTATE_FILE);
    if (mode == TRAIN_OVERWRITE || !holds) return 0;
    if (finished)
        return err_set(err, ERR_USAGE, "%s holds a finished run (status %s in its summary.csv): %s", dir, st,
                       mode == TRAIN_RESUME ? "nothing to resume; give --overwrite to train it again"
                                            : "give --overwrite to replace it");
    if (mode == TRAIN_FRESH)
        return err_set(err, ERR_USAGE, "%s holds an interrupted run%s: give --resume %s to continue it or "
                       "--overwrite to start again", dir, st[0] ? "" : " (no summary.csv)", dir);
    if (!*resume && writer)
        fprintf(stderr, "%s: no epoch checkpoint (the run stopped before its first epoch ended): "
                "starting from step 0\n", dir);
    return 0;
}

/* Removes the files of an earlier run (for a resumed run only its summary:
 * the metrics are cut back to the train state's rows) and the temporary
 * files of killed processes (fs_remove_stale_tmp). */
static int clean_run_dir(const char *dir, int resume, Err *err) {
    char path[FS_PATH_BUF];
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return err_set(err, ERR_RUNTIME, "--out %s: exists and is not a directory", dir);
    for (int i = 0; i < N_RUN_FILES; i++) {
        if (resume && strcmp(RUN_FILES[i], "summary.csv")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, RUN_FILES[i]);
        if (unlink(path) && errno != ENOENT)
            return err_set(err, ERR_RUNTIME, "%s: cannot remove the previous run's file: %s", path,
                           strerror(errno));
    }
    int removed = 0, rc = fs_remove_stale_tmp(dir, &removed, err);
    if (!rc && removed) fprintf(stderr, "%s: removed %d temporary file(s) of killed processes\n", dir, removed);
    return rc;
}

/* A resumed run's config must be the one in dir/config.ini, key by key
 * (checked before anything in dir changes). */
static int check_resume_config(const char *dir, const RunConfig *c, Err *err) {
    char path[FS_PATH_BUF], key[64], va[600], vb[600];
    snprintf(path, sizeof path, "%s/config.ini", dir);
    RunConfig stored;
    if (config_load(&stored, path, 0, NULL, err)) return ERR_USAGE;
    if (config_first_difference(&stored, c, key, sizeof key, va, vb, sizeof va))
        return err_set(err, ERR_USAGE, "%s: the interrupted run has %s = %s, this config %s = %s; a resumed "
                       "run must have the stored config (every key)", path, key, va, key, vb);
    return 0;
}

/* The first n rows of this run's CSV at path (header `header`) into r, and
 * the file rewritten with exactly them: a run killed after writing an
 * epoch's rows and before its train state left later rows behind. */
static int rows_restore(Rows *r, const char *path, int ncols, const char *const *header, int n, Err *err) {
    if (n == 0) return unlink(path) && errno != ENOENT
                          ? err_set(err, ERR_RUNTIME, "%s: cannot remove: %s", path, strerror(errno)) : 0;
    CsvTable t;
    int rc = csv_read_file(path, &t, err);
    if (rc) return rc;
    int ok = t.ncols == ncols && t.nrows >= n;
    for (int i = 0; ok && i < ncols; i++) ok = !strcmp(t.header[i], header[i]);
    if (!ok)
        rc = err_set(err, ERR_RUNTIME, "%s: does not hold the %d rows the train state counts (%d columns, "
                     "%d rows)", path, n, t.ncols, t.nrows);
    for (int i = 0; !rc && i < n; i++) rows_add(r, (const char *const *)t.cells + (size_t)i * ncols, ncols);
    csv_table_free(&t);
    if (!rc) rc = rows_save(r, path, ncols, header, err);
    return rc;
}

/* ---- the run ------------------------------------------------------------ */

/* One training run: its inputs, model, buffers and bookkeeping. */
typedef struct {
    const RunConfig *c;
    const char *out;
    const TrainOpts *o;
    TrainResult *res;
    RunEnv env;
    MethodPlan plan;     /* what the method does (methods.h) */
    int writer, tty, collapse, routed;
    DataSplit train, val, test;
    ViT m, dense, *evm;  /* dense: the collapsed model of ewa / rmoe runs; evm: evaluated and saved */
    float *x;
    int *y, *idx;
    Rows metrics, routing, moe_rows;
    long steps_per_epoch, total, warmup, test_stop_step;
    AdamW opt;
    TrainState ts;       /* epoch, step, random streams, results so far: saved after every epoch */
    double t0;
    char metrics_path[FS_PATH_BUF];
    char data_sha[600];  /* the data's identity for the run record (data.h), rank 0 */
} Run;

/* Sums over one epoch's training steps. */
typedef struct {
    double loss_sum, aux_sum, nll_sum;
    long assigned, dropped, seen, correct;
} EpochStats;

static void run_path(const Run *r, const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", r->out, name);
}

static int stop_requested(const Run *r) { return r->o && r->o->stop && *r->o->stop; }

static void mark_interrupted(Run *r) {
    snprintf(r->res->status, sizeof r->res->status, "interrupted");
    r->res->stop_signal = r->o && r->o->stop && *r->o->stop ? (int)*r->o->stop : SIGTERM;
}

/* Test hook (EWA_TEST_STOP_AT_STEP): SIGINT to the process, as a user's
 * Ctrl-C would send it, then a wait (at most 10 s) until the caller's signal
 * path has set the stop flag, so that the run stops at exactly this step. */
static void test_stop_hook(const Run *r) {
    kill(getpid(), SIGINT);
    for (int k = 0; k < 10000 && r->o && r->o->stop && !stop_requested(r); k++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* The training steps of epoch ep (stops early on divergence or a stop
 * request, with res->status set). */
static int train_epoch(Run *r, int ep, double te, EpochStats *es, Err *err) {
    const RunConfig *c = r->c;
    TrainState *ts = &r->ts;
    ViT *m = &r->m;
    int B = c->batch_size, rc;
    for (int i = 0; i < r->train.n; i++) r->idx[i] = i;
    rng_shuffle(&ts->shuffle, r->idx, (size_t)r->train.n);
    for (long s = 0; s < r->steps_per_epoch && ts->step < r->total; s++, ts->step++) {
        if (ts->step == r->test_stop_step) test_stop_hook(r);   /* EWA_TEST_STOP_AT_STEP */
        /* nb images this step, ln of them on this rank from lo (all on one rank) */
        int off = (int)(s * B), nb = r->train.n - off < B ? r->train.n - off : B, lo, ln;
        dist_split(nb, &lo, &ln);
        if (ln && (rc = data_batch(&r->train, r->idx + off + lo, ln, c->augment, &ts->aug, r->x, r->y, err)))
            return rc;
        m->moe_step = (uint64_t)ts->step;
        m->shard_off = lo;
        m->shard_batch = dist_size() > 1 ? nb : 0;
        float loss = ln ? vit_forward(m, r->x, r->y, ln) : 0.0f;
        vit_zero_grad(m);
        if (ln) vit_backward(m);
        /* the stop request is summed over the ranks, so every rank stops at the same step */
        double st[7] = {(double)loss * ln, (double)m->aux_loss * ln, ln ? count_correct(m, r->y, ln) : 0,
                        (double)m->moe_assigned, (double)m->moe_dropped, (double)m->nll * ln,
                        stop_requested(r)};
        if ((rc = dist_reduce_grads(m->grads, m->num_params, ln, nb, st, 7, err))) return rc;
        if (st[6] > 0) { mark_interrupted(r); return 0; }
        loss = (float)(st[0] / nb);   /* the global batch's mean loss */
        es->aux_sum += st[1];
        es->assigned += (long)st[3];
        es->dropped += (long)st[4];
        if (!isfinite(loss)) { mark_diverged(r->res, ts->step, "training loss"); return 0; }
        clip_grad_norm(m->grads, m->num_params, c->grad_clip);
        r->opt.lr = lr_at(ts->step, r->total, r->warmup, c->lr, c->min_lr);
        adamw_step(&r->opt, m->params, m->grads, m->adam_m, m->adam_v, m->specs, m->n_params);
        if (r->plan.beta > 0 && ts->step < r->plan.ewa_steps) ewa_update(m, r->plan.beta);
        es->loss_sum += st[0];
        es->nll_sum += st[5];
        es->correct += (long)st[2];
        es->seen += nb;
        double el = now_s() - te, ips = es->seen / (el > 0 ? el : 1e-9);
        progress(r->tty, ep, c->epochs, ts->step + 1, r->total, es->loss_sum / es->seen,
                 (double)es->correct / es->seen, ips, (r->total - ts->step - 1) * (double)B / ips);
    }
    return 0;
}

/* The epoch's train row of metrics.csv (and moe_metrics.csv). */
static int epoch_train_rows(Run *r, int ep, const EpochStats *es, double ep_time, Err *err) {
    r->ts.total_assigned += es->assigned;
    r->ts.total_dropped += es->dropped;
    if (!r->writer) return 0;
    double drop = es->assigned ? (double)es->dropped / es->assigned : 0.0;
    int rc = add_metric(&r->metrics, r->metrics_path, ep, "train", es->nll_sum / es->seen,
                        (es->loss_sum - es->aux_sum) / es->seen, (double)es->correct / es->seen, r->opt.lr,
                        now_s() - r->t0, ep_time, es->seen, r->ts.step, err);
    if (!rc && r->plan.spec.kind != MOE_NONE) {
        char mpath[FS_PATH_BUF];
        run_path(r, "moe_metrics.csv", mpath, sizeof mpath);
        rc = add_moe_metric(&r->moe_rows, mpath, ep, r->ts.step, es->aux_sum / es->seen, drop, err);
    }
    return rc;
}

/* Records an evaluation's results: final, and best by validation top-1. */
static void note_eval(TrainResult *res, int ep, double ta, double tl, double va, int n_val) {
    res->final_top1 = ta;
    res->final_test_loss = tl;
    res->final_val_top1 = va;
    if (n_val && (res->best_epoch == 0 || va > res->best_val_top1)) {   /* selected on val only */
        res->best_val_top1 = va;
        res->best_top1 = ta;
        res->best_epoch = ep;
    }
}

/* Validation and test evaluation after epoch ep (divergence on a non-finite
 * test loss sets res->status). */
static int epoch_eval(Run *r, int ep, const EpochStats *es, double ep_time, Err *err) {
    double tl, tls, ta, tv = now_s(), vl = NAN, vls = NAN, va = NAN;
    ViT *m = &r->m;
    int rc = 0, nv = r->val.n;
    size_t nroute = (size_t)m->d.depth * m->d.classes * m->d.moe.experts;
    if (r->collapse && (rc = ewa_collapse(m, &r->dense, err))) return rc;
    if (nv && (rc = evaluate(r->evm, &r->val, r->x, r->y, r->idx, &vl, &vls, &va, err))) return rc;
    if (r->writer && nv && (rc = add_metric(&r->metrics, r->metrics_path, ep, "val", vl, vls, va, r->opt.lr,
                                            now_s() - r->t0, now_s() - tv, nv, r->ts.step, err)))
        return rc;
    tv = now_s();
    if (r->routed) memset(m->route_counts, 0, sizeof(long) * nroute);
    if ((rc = evaluate(r->evm, &r->test, r->x, r->y, r->idx, &tl, &tls, &ta, err))) return rc;
    if (!isfinite(tl)) { mark_diverged(r->res, r->ts.step, "test loss"); return 0; }
    if (r->routed && (rc = dist_sum_longs(m->route_counts, nroute, err))) return rc;
    if (r->writer && (rc = add_metric(&r->metrics, r->metrics_path, ep, "test", tl, tls, ta, r->opt.lr,
                                      now_s() - r->t0, now_s() - tv, r->test.n, r->ts.step, err)))
        return rc;
    if (r->writer && r->routed) {
        char rpath[FS_PATH_BUF];
        run_path(r, "routing.csv", rpath, sizeof rpath);
        if ((rc = add_routing(&r->routing, rpath, ep, m, err))) return rc;
    }
    note_eval(r->res, ep, ta, tl, va, nv);
    if (r->tty) fprintf(stderr, "\r\033[K");
    if (r->writer)
        fprintf(stderr, "epoch %d/%d  train loss %.4f (smoothed %.4f) acc %.4f | test loss %.4f top1 %.4f | "
                "%.0f img/s\n", ep, r->c->epochs, es->nll_sum / es->seen, (es->loss_sum - es->aux_sum) / es->seen,
                (double)es->correct / es->seen, tl, ta, es->seen / ep_time);
    return 0;
}

/* The epoch checkpoint (trainstate.h), rank 0 only. */
static int save_state(Run *r, Err *err) {
    TrainState *ts = &r->ts;
    const TrainResult *res = r->res;
    ts->adam_t = r->opt.t;
    ts->wall_s = now_s() - r->t0;
    ts->final_top1 = res->final_top1;
    ts->final_test_loss = res->final_test_loss;
    ts->final_val_top1 = res->final_val_top1;
    ts->best_top1 = res->best_top1;
    ts->best_val_top1 = res->best_val_top1;
    ts->best_epoch = res->best_epoch;
    ts->metrics_rows = r->metrics.nrows;
    ts->moe_rows = r->moe_rows.nrows;
    ts->routing_rows = r->routing.nrows;
    snprintf(ts->start_time, sizeof ts->start_time, "%s", r->env.start_time);
    char path[FS_PATH_BUF];
    run_path(r, TRAINSTATE_FILE, path, sizeof path);
    return trainstate_save(path, r->c, &r->m, ts, err);
}

/* Continues from the epoch checkpoint: model, moments, streams, results and
 * the metrics rows up to that epoch. */
static int resume_state(Run *r, Err *err) {
    char path[FS_PATH_BUF];
    TrainState *ts = &r->ts;
    run_path(r, TRAINSTATE_FILE, path, sizeof path);
    int rc = trainstate_load(path, r->c, &r->m, ts, err);
    if (rc) return rc;
    r->opt.t = ts->adam_t;
    note_eval(r->res, 0, ts->final_top1, ts->final_test_loss, ts->final_val_top1, 0);
    r->res->best_top1 = ts->best_top1;
    r->res->best_val_top1 = ts->best_val_top1;
    r->res->best_epoch = ts->best_epoch;
    r->t0 = now_s() - ts->wall_s;
    snprintf(r->env.start_time, sizeof r->env.start_time, "%s", ts->start_time);
    char p2[FS_PATH_BUF], p3[FS_PATH_BUF];
    run_path(r, "moe_metrics.csv", p2, sizeof p2);
    run_path(r, "routing.csv", p3, sizeof p3);
    if (r->writer && !rc) rc = rows_restore(&r->metrics, r->metrics_path, METRIC_COLS, metric_header, ts->metrics_rows, err);
    if (r->writer && !rc) rc = rows_restore(&r->moe_rows, p2, MOE_COLS, moe_header, ts->moe_rows, err);
    if (r->writer && !rc) rc = rows_restore(&r->routing, p3, ROUTE_COLS, route_header, ts->routing_rows, err);
    if (!rc && r->writer)
        fprintf(stderr, "resumed %s after epoch %d (step %ld) from %s\n", r->out, ts->epoch, ts->step, path);
    return rc;
}

/* The epochs from the one after ts.epoch; returns with res->status ok,
 * diverged or interrupted, or an error. */
static int train_loop(Run *r, Err *err) {
    const RunConfig *c = r->c;
    TrainState *ts = &r->ts;
    for (int ep = ts->epoch + 1; ep <= c->epochs && ts->step < r->total; ep++) {
        EpochStats es = {0};
        double te = now_s();
        int rc = train_epoch(r, ep, te, &es, err);
        double ep_time = now_s() - te;
        ts->train_seconds += ep_time;
        if (rc || strcmp(r->res->status, "ok")) return rc;
        if ((rc = epoch_train_rows(r, ep, &es, ep_time, err))) return rc;
        int last = ep == c->epochs || ts->step >= r->total;
        if (last || (c->eval_every && ep % c->eval_every == 0)) {
            if ((rc = epoch_eval(r, ep, &es, ep_time, err)) || strcmp(r->res->status, "ok")) return rc;
        } else {   /* no test pass this epoch */
            if (r->tty) fprintf(stderr, "\r\033[K");
            if (r->writer)
                fprintf(stderr, "epoch %d/%d  train loss %.4f (smoothed %.4f) acc %.4f | %.0f img/s\n", ep,
                        c->epochs, es.nll_sum / es.seen, (es.loss_sum - es.aux_sum) / es.seen,
                        (double)es.correct / es.seen, es.seen / ep_time);
        }
        ts->epoch = ep;
        if (!last && r->writer && (rc = save_state(r, err))) return rc;
    }
    return 0;
}

/* Training images the first `steps` optimizer steps processed: whole epochs
 * of train.n images, then `batch_size` per step of the last, partial epoch
 * (its final batch may be short). */
static double images_processed(long steps, long steps_per_epoch, long batch_size, long n_train) {
    long full = steps / steps_per_epoch, rem = steps % steps_per_epoch;
    double part = (double)rem * batch_size;
    return (double)full * n_train + (part < n_train ? part : n_train);
}

/* After the loop: the final checkpoint (ok runs), summary.csv, and the
 * epoch checkpoint removed once the run has a final status. */
static int finish_run(Run *r, Err *err) {
    TrainResult *res = r->res;
    res->steps = r->ts.step;
    res->train_images = images_processed(res->steps, r->steps_per_epoch, r->c->batch_size, r->train.n);
    res->train_seconds = r->ts.train_seconds;
    res->n_test = r->test.n;
    res->n_val = r->val.n;
    res->drop_rate = r->ts.total_assigned ? (double)r->ts.total_dropped / r->ts.total_assigned : 0.0;
    /* the ranks must still hold the same model (they apply identical updates) */
    int rc = dist_check_equal(r->m.params, r->m.num_params, "parameters after training", err);
    if (rc) return rc;
    dist_report(r->ts.step, r->m.num_params);
    if (!r->writer) return 0;
    ViT *evm = r->evm;
    char path[FS_PATH_BUF];
    if (!strcmp(res->status, "ok")) {
        if (r->collapse && (rc = ewa_collapse(&r->m, &r->dense, err))) return rc;
        /* never a checkpoint of non-finite weights (e.g. after a huge last step) */
        if (count_nonfinite(r->m.params, r->m.num_params) || count_nonfinite(evm->params, evm->num_params))
            mark_diverged(res, r->ts.step, "parameters");
    }
    char sha[65] = "";   /* of the checkpoint as written: the run's identity (runrecord.h) */
    if (!strcmp(res->status, "ok")) {
        run_path(r, "final.safetensors", path, sizeof path);
        if ((rc = save_final(evm, r->c, &r->train, path, err))) return rc;
        if ((rc = fs_sha256_file(path, sha, err))) return rc;
    } else if (!strcmp(res->status, "interrupted")) {
        if (r->tty) fprintf(stderr, "\r\033[K");
        fprintf(stderr, "interrupted by signal %d at step %ld; %s; no checkpoint written; `ewa train --resume "
                "%s` continues the run\n", res->stop_signal, r->ts.step,
                r->ts.epoch ? "the last epoch checkpoint is " TRAINSTATE_FILE : "no epoch had ended", r->out);
    } else {
        fprintf(stderr, "run diverged at step %ld (%s not finite); no checkpoint written\n", res->diverged_step,
                res->diverged_what);
    }
    run_path(r, "summary.csv", path, sizeof path);
    record_env_end(&r->env);
    RunRecord rec = {.cfg = r->c, .res = res, .deployed = &evm->d, .trained = &r->m.d,
                     .dataset_name = r->train.name, .env = &r->env, .checkpoint_sha256 = sha[0] ? sha : NULL,
                     .data_sha256 = r->data_sha};
    rc = record_write_summary(path, &rec, err);
    run_path(r, TRAINSTATE_FILE, path, sizeof path);
    if (!rc && strcmp(res->status, "interrupted") && unlink(path) && errno != ENOENT)
        rc = err_set(err, ERR_RUNTIME, "%s: cannot remove: %s", path, strerror(errno));
    return rc;
}

/* Model(s), buffers, schedule and random streams of the run. */
static int setup_model(Run *r, int resume, Err *err) {
    const RunConfig *c = r->c;
    int B = c->batch_size, rc;
    if ((rc = build_model(c, &r->train, B, 0, &r->m, err))) return rc;
    vit_init_weights(&r->m, c->seed);
    if (!resume && c->init_checkpoint[0] && (rc = load_init_checkpoint(&r->m, c, &r->train, err))) return rc;
    if (r->collapse && (rc = build_model(c, &r->train, B, 1, &r->dense, err))) return rc;
    r->evm = r->collapse ? &r->dense : &r->m;
    if (r->routed && !(r->m.route_counts = calloc((size_t)r->m.d.depth * r->m.d.classes * r->m.d.moe.experts,
                                                  sizeof(long))))
        return err_set(err, ERR_RUNTIME, "out of memory");
    int nmax = r->train.n > r->test.n ? r->train.n : r->test.n;
    if (r->val.n > nmax) nmax = r->val.n;
    r->x = malloc(sizeof(float) * data_sample_floats(&r->train) * B);
    r->y = malloc(sizeof(int) * B);
    r->idx = malloc(sizeof(int) * nmax);
    if (!r->x || !r->y || !r->idx) return err_set(err, ERR_RUNTIME, "out of memory");
    if (dist_size() > 1 && r->collapse) {   /* RMoE partitions the global batch */
        r->m.shard_scratch = malloc(sizeof(int) * ((size_t)B * r->m.T + (size_t)r->m.d.moe.experts + 1));
        if (!r->m.shard_scratch) return err_set(err, ERR_RUNTIME, "out of memory");
    }
    r->steps_per_epoch = (r->train.n + B - 1) / B;
    r->total = r->steps_per_epoch * c->epochs;
    if (c->max_steps > 0 && c->max_steps < r->total) r->total = c->max_steps;
    r->warmup = method_steps(c->warmup_epochs * r->steps_per_epoch);   /* the float product, as lroundf had it */
    method_plan(c, r->steps_per_epoch, r->total, &r->plan);   /* EWA: beta and its step count */
    rng_seed_stream(&r->ts.shuffle, c->seed, 1);
    rng_seed_stream(&r->ts.aug, c->seed, 2 + ((uint64_t)dist_rank() << 32));   /* rank 0: stream 2 */
    r->opt = (AdamW){.beta1 = c->beta1, .beta2 = c->beta2, .eps = c->eps, .weight_decay = c->weight_decay};
    return 0;
}

/* Sizes derived from the keys and the data (issue 11.8), with the full
 * batch: none may round to zero or make the run meaningless. Errors
 * (ERR_USAGE) and warnings name the keys. */
static int check_sizes(const Run *r, Err *err) {
    const RunConfig *c = r->c;
    const MoeSpec *s = &r->plan.spec;
    long B = c->batch_size, T = r->m.T, n = r->train.n;
    if (s->kind == MOE_RANDOM && (s->partition_sample ? T : B * T) < s->experts)
        return err_set(err, ERR_USAGE, "moe.experts = %d exceeds the %ld tokens a random partition divides (%s): "
                       "some experts would never get a token", s->experts, s->partition_sample ? T : B * T,
                       s->partition_sample ? "per image, moe.rmoe_partition = sample" : "per batch of train.batch_size");
    double units = s->route_image ? (double)B : (double)B * T;
    if (s->kind == MOE_ROUTED && s->top_k * (double)s->capacity_factor * units / s->experts < 1)
        return err_set(err, ERR_USAGE, "moe.capacity_factor = %g: the expert capacity moe.top_k x factor x %.0f %s / "
                       "moe.experts = %.3g is below one unit and would round up to 1 (nearly every unit dropped)",
                       (double)s->capacity_factor, units, s->route_image ? "images" : "tokens",
                       s->top_k * (double)s->capacity_factor * units / s->experts);
    if (r->plan.ewa_steps == 0 && r->plan.beta > 0 && c->ewa_epochs != 0)
        return err_set(err, ERR_USAGE, "moe.ewa_epochs = %g (-1: a quarter of train.epochs) x %ld steps per epoch "
                       "rounds to 0 EWA steps (set 0 for none)", (double)c->ewa_epochs, r->steps_per_epoch);
    if (B > n)
        fprintf(stderr, "warning: train.batch_size = %ld exceeds the %ld training samples: one step of %ld per "
                "epoch\n", B, n, n);
    if (c->min_lr > c->lr && r->writer)
        fprintf(stderr, "warning: train.min_lr = %g exceeds train.lr = %g: the cosine schedule rises from train.lr "
                "to its floor\n", (double)c->min_lr, (double)c->lr);
    if (r->warmup > r->total)
        fprintf(stderr, "warning: train.warmup_epochs = %g is %ld steps, more than the run's %ld: the learning rate "
                "never reaches train.lr\n", (double)c->warmup_epochs, r->warmup, r->total);
    return 0;
}

static void run_free(Run *r) {
    rows_free(&r->metrics, METRIC_COLS);
    rows_free(&r->routing, ROUTE_COLS);
    rows_free(&r->moe_rows, MOE_COLS);
    free(r->x); free(r->y); free(r->idx);
    free(r->m.route_counts);
    r->m.route_counts = NULL;
    free(r->m.shard_scratch);
    r->m.shard_scratch = NULL;
    if (r->m.params) vit_free(&r->m);
    if (r->dense.params) vit_free(&r->dense);
    data_free(&r->train);
    data_free(&r->val);
    data_free(&r->test);
}

/* The run directory before training: refused, cleaned or resumed (train.h),
 * config.ini written. */
static int prepare_dir(Run *r, TrainMode mode, int *resume, Err *err) {
    int rc = check_run_dir(r->out, mode, r->writer, resume, err);
    if (!rc && *resume) rc = check_resume_config(r->out, r->c, err);
    if (!rc && *resume && dist_size() > 1 && r->c->augment)
        rc = err_set(err, ERR_USAGE, "--resume with %d ranks and data.augment = 1: only rank 0's augmentation "
                     "stream is in the train state", dist_size());
    if (rc || !r->writer) return rc;
    if ((rc = fs_mkdir_p(r->out, err)) || (rc = clean_run_dir(r->out, *resume, err))) return rc;
    char path[FS_PATH_BUF];
    run_path(r, "config.ini", path, sizeof path);
    return *resume ? 0 : config_write(r->c, path, err);
}

int train_run(const RunConfig *c, const char *out_dir, const TrainOpts *o, TrainResult *res, Err *err) {
    memset(res, 0, sizeof *res);
    snprintf(res->status, sizeof res->status, "failed");
    Run *r = calloc(1, sizeof *r);
    if (!r) return err_set(err, ERR_RUNTIME, "out of memory");
    *r = (Run){.c = c, .out = out_dir, .o = o, .res = res, .writer = dist_rank() == 0, .test_stop_step = -1};
    record_env_begin(&r->env);
    method_plan(c, 0, 0, &r->plan);
    r->collapse = r->plan.collapse;
    r->routed = r->plan.spec.kind == MOE_ROUTED;
    r->tty = r->writer && isatty(2);
    const char *hook = getenv("EWA_TEST_STOP_AT_STEP");
    if (hook && *hook) r->test_stop_step = strtol(hook, NULL, 10);
    run_path(r, "metrics.csv", r->metrics_path, sizeof r->metrics_path);
    int resume = 0, rc = set_precision(c, err);
    /* data parallelism (dist.h): rank 0 alone writes the run directory */
    if (!rc) rc = prepare_dir(r, o ? o->mode : TRAIN_FRESH, &resume, err);
    if (!rc) set_threads(c->threads);
    if (!rc) rc = data_open(c, &r->train, &r->val, &r->test, err);
    if (!rc && r->writer) rc = data_sha256(c, r->data_sha, sizeof r->data_sha, err);
    if (!rc) rc = setup_model(r, resume, err);
    if (!rc) rc = check_sizes(r, err);
    r->t0 = now_s();
    if (!rc && resume) rc = resume_state(r, err);
    if (!rc) snprintf(res->status, sizeof res->status, "ok");
    if (!rc) rc = train_loop(r, err);
    if (!rc) rc = finish_run(r, err);
    if (rc && !strcmp(res->status, "ok")) snprintf(res->status, sizeof res->status, "failed");
    run_free(r);
    free(r);
    return rc;
}

int eval_checkpoint(const char *path, int n_set, char *const *sets, double *top1, int *n,
                    double *loss, double *loss_smoothed, Err *err) {
    StFile f;
    int rc = st_read(path, &f, err);
    if (rc) return rc;
    const char *ini = st_meta(&f, "config");
    RunConfig c;
    if (!ini) { rc = err_set(err, ERR_RUNTIME, "%s: no 'config' in the safetensors metadata", path); goto out_f; }
    char origin[1100];
    snprintf(origin, sizeof origin, "%s (metadata config)", path);
    if ((rc = config_load_string(&c, ini, origin, n_set, sets, err)) || (rc = set_precision(&c, err))) goto out_f;
    set_threads(c.threads);
    DataSplit train, test;
    RunConfig dc = c;
    dc.train_subset = 0;   /* the test split does not depend on the subset */
    if ((rc = data_open(&dc, &train, NULL, &test, err))) goto out_f;
    ViT m;
    if ((rc = check_ckpt_data(&f, path, &test, 1, 1, err))) goto out_data;
    if ((rc = build_model(&c, &test, c.batch_size, 1, &m, err))) goto out_data;
    if ((rc = vit_load_tensors(&m, &f, path, 0, NULL, err))) goto out_model;
    float *x = malloc(sizeof(float) * data_sample_floats(&test) * c.batch_size);
    int *y = malloc(sizeof(int) * c.batch_size), *idx = malloc(sizeof(int) * test.n);
    if (!x || !y || !idx) rc = err_set(err, ERR_RUNTIME, "out of memory");
    else {
        rc = evaluate(&m, &test, x, y, idx, loss, loss_smoothed, top1, err);
        *n = test.n;
        size_t bad = count_nonfinite(m.params, m.num_params);
        if (!rc && !isfinite(*loss))
            rc = err_set(err, ERR_RUNTIME, "%s: the test loss is not finite (%g); the checkpoint holds "
                         "%zu non-finite of %zu parameters", path, *loss, bad, m.num_params);
    }
    free(x); free(y); free(idx);
out_model:
    vit_free(&m);
out_data:
    data_free(&train);
    data_free(&test);
out_f:
    st_free(&f);
    return rc;
}
