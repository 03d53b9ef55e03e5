#include "train.h"
#include "data.h"
#include "dist.h"
#include "methods.h"
#include "runrecord.h"
#include "util.h"
#include "../core/fsutil.h"
#include "../core/gemm.h"
#include "../core/checkpoint.h"
#include "csvio.h"
#include "../core/ewa.h"
#include "../core/optim.h"
#include "../core/vit.h"
#include <errno.h>
#include <inttypes.h>
#include <math.h>
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

static void set_threads(int threads) { gemm_set_threads(threads > 0 ? threads : omp_get_num_procs()); }

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

static int add_moe_metric(Rows *r, const char *path, int epoch, long step, double aux, double drop,
                          Err *err) {
    char v[MOE_COLS][32];
    snprintf(v[0], 32, "%d", epoch);
    snprintf(v[1], 32, "%ld", step);
    snprintf(v[2], 32, "%.6f", aux);
    snprintf(v[3], 32, "%.6f", drop);
    const char *p[MOE_COLS] = {v[0], v[1], v[2], v[3]};
    rows_add(r, p, MOE_COLS);
    return csv_write_file(path, MOE_COLS, moe_header, r->nrows, (const char *const *)r->cells, err);
}

static int add_metric(Rows *r, const char *path, int epoch, const char *split, double loss,
                      double loss_smoothed, double top1, double lr, double wall, double pass_s,
                      long images, long step,
                      Err *err) {
    char v[METRIC_COLS][32];
    snprintf(v[0], 32, "%d", epoch);
    snprintf(v[1], 32, "%s", split);
    snprintf(v[2], 32, "%.6f", loss);
    snprintf(v[3], 32, "%.6f", top1);
    snprintf(v[4], 32, "%.6g", lr);
    snprintf(v[5], 32, "%.3f", wall);
    snprintf(v[6], 32, "%.1f", images / (pass_s > 0 ? pass_s : 1e-9));
    snprintf(v[7], 32, "%ld", step);
    snprintf(v[8], 32, "%.6f", loss_smoothed);
    snprintf(v[9], 32, "%.3f", pass_s);
    const char *p[METRIC_COLS];
    for (int i = 0; i < METRIC_COLS; i++) p[i] = v[i];
    rows_add(r, p, METRIC_COLS);
    return csv_write_file(path, METRIC_COLS, metric_header, r->nrows, (const char *const *)r->cells, err);
}

/* Routing statistics (docs/DESIGN.md 2.8): rows epoch, layer, class, expert, count
 * for every routed MoE layer; all evaluations so far, rewritten atomically. */
enum { ROUTE_COLS = 5 };
static int add_routing(Rows *r, const char *path, int epoch, const ViT *m, Err *err) {
    static const char *const header[ROUTE_COLS] = {"epoch", "layer", "class", "expert", "count"};
    int E = m->d.moe.experts, K = m->d.classes;
    for (int l = 0; l < m->d.depth; l++) {
        if (!m->d.moe_block[l]) continue;
        for (int k = 0; k < K; k++)
            for (int e = 0; e < E; e++) {
                char v[ROUTE_COLS][24];
                snprintf(v[0], 24, "%d", epoch);
                snprintf(v[1], 24, "%d", l);
                snprintf(v[2], 24, "%d", k);
                snprintf(v[3], 24, "%d", e);
                snprintf(v[4], 24, "%ld", m->route_counts[((size_t)l * K + k) * E + e]);
                const char *p[ROUTE_COLS] = {v[0], v[1], v[2], v[3], v[4]};
                rows_add(r, p, ROUTE_COLS);
            }
    }
    return csv_write_file(path, ROUTE_COLS, header, r->nrows, (const char *const *)r->cells, err);
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

int train_run(const RunConfig *c, const char *out_dir, TrainResult *res, Err *err) {
    memset(res, 0, sizeof *res);
    snprintf(res->status, sizeof res->status, "failed");
    RunEnv env;   /* start and end time, host, peak memory: the run record */
    record_env_begin(&env);
    MethodPlan plan;   /* what the method does (methods.h); ewa_steps set below */
    method_plan(c, 0, 0, &plan);
    const MoeSpec spec = plan.spec;
    int rc = set_precision(c, err);
    if (rc) return rc;
    /* data parallelism (dist.h): rank 0 alone writes the run directory */
    int writer = dist_rank() == 0;
    rc = writer ? fs_mkdir_p(out_dir, err) : 0;   /* with its missing parents */
    if (rc) return rc;
    char path[1200];
    /* A reused run directory must not keep an earlier run's results beside
     * this one's (e.g. an old final.safetensors next to a diverged summary). */
    static const char *const stale[] = {"final.safetensors", "summary.csv", "metrics.csv",
                                        "moe_metrics.csv", "routing.csv"};
    for (size_t i = 0; writer && i < sizeof stale / sizeof *stale; i++) {
        snprintf(path, sizeof path, "%s/%s", out_dir, stale[i]);
        if (unlink(path) && errno != ENOENT)
            return err_set(err, ERR_RUNTIME, "%s: cannot remove the previous run's file: %s", path,
                           strerror(errno));
    }
    snprintf(path, sizeof path, "%s/config.ini", out_dir);
    if (writer && (rc = config_write(c, path, err))) return rc;
    set_threads(c->threads);

    DataSplit train, val, test;
    if ((rc = data_open(c, &train, &val, &test, err))) return rc;
    char data_sha[600];   /* the data's identity for the run record (data.h) */
    if (writer && (rc = data_sha256(c, data_sha, sizeof data_sha, err))) goto out_data;
    int B = c->batch_size;
    ViT m, dense;   /* dense: the collapsed model of ewa / rmoe runs */
    memset(&dense, 0, sizeof dense);
    int collapse = plan.collapse, routed = spec.kind == MOE_ROUTED;
    if ((rc = build_model(c, &train, B, 0, &m, err))) goto out_data;
    vit_init_weights(&m, c->seed);
    if (c->init_checkpoint[0] && (rc = load_init_checkpoint(&m, c, &train, err))) goto out_model;
    if (collapse && (rc = build_model(c, &train, B, 1, &dense, err))) goto out_model;
    ViT *evm = collapse ? &dense : &m;   /* the model evaluated and saved */
    if (routed) {
        m.route_counts = calloc((size_t)m.d.depth * m.d.classes * m.d.moe.experts, sizeof(long));
        if (!m.route_counts) { rc = err_set(err, ERR_RUNTIME, "out of memory"); goto out_model; }
    }

    int nmax = train.n > test.n ? train.n : test.n;
    if (val.n > nmax) nmax = val.n;
    float *x = malloc(sizeof(float) * data_sample_floats(&train) * B);
    int *y = malloc(sizeof(int) * B), *idx = malloc(sizeof(int) * nmax);
    Rows metrics = {0}, routing = {0}, moe_rows = {0};
    long total_assigned = 0, total_dropped = 0;
    if (!x || !y || !idx) { rc = err_set(err, ERR_RUNTIME, "out of memory"); goto out_buf; }
    if (dist_size() > 1 && collapse) {   /* RMoE partitions the global batch */
        m.shard_scratch = malloc(sizeof(int) * ((size_t)B * m.T + (size_t)m.d.moe.experts + 1));
        if (!m.shard_scratch) { rc = err_set(err, ERR_RUNTIME, "out of memory"); goto out_buf; }
    }

    long steps_per_epoch = (train.n + B - 1) / B;
    long total = steps_per_epoch * c->epochs;
    if (c->max_steps > 0 && c->max_steps < total) total = c->max_steps;
    long warmup = (long)lroundf(c->warmup_epochs * steps_per_epoch);
    method_plan(c, steps_per_epoch, total, &plan);   /* EWA: beta and its step count */
    const float beta = plan.beta;
    const long ewa_steps = plan.ewa_steps;
    Rng shuffle_rng, aug_rng;
    rng_seed_stream(&shuffle_rng, c->seed, 1);
    rng_seed_stream(&aug_rng, c->seed, 2 + ((uint64_t)dist_rank() << 32));   /* rank 0: stream 2 */
    AdamW opt = {.beta1 = c->beta1, .beta2 = c->beta2, .eps = c->eps, .weight_decay = c->weight_decay};
    int tty = writer && isatty(2);
    snprintf(path, sizeof path, "%s/metrics.csv", out_dir);
    double t0 = now_s(), train_time = 0.0;
    long step = 0;
    snprintf(res->status, sizeof res->status, "ok");
    for (int ep = 1; ep <= c->epochs && step < total; ep++) {
        double te = now_s(), loss_sum = 0.0, aux_sum = 0.0, nll_sum = 0.0;
        long ep_assigned = 0, ep_dropped = 0;
        long seen = 0, correct = 0;
        for (int i = 0; i < train.n; i++) idx[i] = i;
        rng_shuffle(&shuffle_rng, idx, (size_t)train.n);
        for (long s = 0; s < steps_per_epoch && step < total; s++, step++) {
            /* nb images this step, ln of them on this rank from lo (all on one rank) */
            int off = (int)(s * B), nb = train.n - off < B ? train.n - off : B, lo, ln;
            dist_split(nb, &lo, &ln);
            if (ln && (rc = data_batch(&train, idx + off + lo, ln, c->augment, &aug_rng, x, y, err)))
                goto out_buf;
            m.moe_step = (uint64_t)step;
            m.shard_off = lo;
            m.shard_batch = dist_size() > 1 ? nb : 0;
            float loss = ln ? vit_forward(&m, x, y, ln) : 0.0f;
            vit_zero_grad(&m);
            if (ln) vit_backward(&m);
            double st[6] = {(double)loss * ln, (double)m.aux_loss * ln, ln ? count_correct(&m, y, ln) : 0,
                            (double)m.moe_assigned, (double)m.moe_dropped, (double)m.nll * ln};
            if ((rc = dist_reduce_grads(m.grads, m.num_params, ln, nb, st, 6, err))) goto out_buf;
            loss = (float)(st[0] / nb);   /* the global batch's mean loss */
            aux_sum += st[1];
            ep_assigned += (long)st[3];
            ep_dropped += (long)st[4];
            if (!isfinite(loss)) {
                mark_diverged(res, step, "training loss");
                break;
            }
            clip_grad_norm(m.grads, m.num_params, c->grad_clip);
            opt.lr = lr_at(step, total, warmup, c->lr, c->min_lr);
            adamw_step(&opt, m.params, m.grads, m.adam_m, m.adam_v, m.specs, m.n_params);
            if (beta > 0 && step < ewa_steps) ewa_update(&m, beta);
            loss_sum += st[0];
            nll_sum += st[5];
            correct += (long)st[2];
            seen += nb;
            double el = now_s() - te, ips = seen / (el > 0 ? el : 1e-9);
            progress(tty, ep, c->epochs, step + 1, total, loss_sum / seen, (double)correct / seen, ips,
                     (total - step - 1) * (double)B / ips);
        }
        double ep_time = now_s() - te;
        train_time += ep_time;
        if (strcmp(res->status, "ok")) break;
        total_assigned += ep_assigned;
        total_dropped += ep_dropped;
        double drop = ep_assigned ? (double)ep_dropped / ep_assigned : 0.0;
        if (writer && (rc = add_metric(&metrics, path, ep, "train", nll_sum / seen, (loss_sum - aux_sum) / seen,
                                       (double)correct / seen,
                             opt.lr, now_s() - t0, ep_time, seen, step, err)))
            goto out_buf;
        if (writer && spec.kind != MOE_NONE) {
            char mpath[1200];
            snprintf(mpath, sizeof mpath, "%s/moe_metrics.csv", out_dir);
            if ((rc = add_moe_metric(&moe_rows, mpath, ep, step, aux_sum / seen, drop, err))) goto out_buf;
        }
        int last = ep == c->epochs || step >= total;
        if (!last && (c->eval_every == 0 || ep % c->eval_every)) {   /* no test pass this epoch */
            if (tty) fprintf(stderr, "\r\033[K");
            if (writer)
                fprintf(stderr, "epoch %d/%d  train loss %.4f (smoothed %.4f) acc %.4f | %.0f img/s\n", ep,
                        c->epochs, nll_sum / seen, (loss_sum - aux_sum) / seen, (double)correct / seen,
                        seen / ep_time);
            continue;
        }
        double tl, tls, ta, tv = now_s(), vl = NAN, vls = NAN, va = NAN;
        if (collapse && (rc = ewa_collapse(&m, &dense, err))) goto out_buf;
        if (val.n && (rc = evaluate(evm, &val, x, y, idx, &vl, &vls, &va, err))) goto out_buf;
        if (writer && val.n && (rc = add_metric(&metrics, path, ep, "val", vl, vls, va, opt.lr, now_s() - t0,
                                               now_s() - tv, val.n, step, err)))
            goto out_buf;
        tv = now_s();
        if (routed)
            memset(m.route_counts, 0, sizeof(long) * m.d.depth * m.d.classes * m.d.moe.experts);
        if ((rc = evaluate(evm, &test, x, y, idx, &tl, &tls, &ta, err))) goto out_buf;
        if (!isfinite(tl)) {
            mark_diverged(res, step, "test loss");
            break;
        }
        if (routed && (rc = dist_sum_longs(m.route_counts, (size_t)m.d.depth * m.d.classes * m.d.moe.experts,
                                           err)))
            goto out_buf;
        if (writer && (rc = add_metric(&metrics, path, ep, "test", tl, tls, ta, opt.lr, now_s() - t0,
                             now_s() - tv, test.n, step, err)))
            goto out_buf;
        if (writer && routed) {
            char rpath[1200];
            snprintf(rpath, sizeof rpath, "%s/routing.csv", out_dir);
            if ((rc = add_routing(&routing, rpath, ep, &m, err))) goto out_buf;
        }
        res->final_top1 = ta;
        res->final_test_loss = tl;
        res->final_val_top1 = va;
        if (val.n && (res->best_epoch == 0 || va > res->best_val_top1)) {   /* selected on val only */
            res->best_val_top1 = va;
            res->best_top1 = ta;
            res->best_epoch = ep;
        }
        if (tty) fprintf(stderr, "\r\033[K");
        if (writer)
            fprintf(stderr, "epoch %d/%d  train loss %.4f (smoothed %.4f) acc %.4f | test loss %.4f top1 %.4f | "
                    "%.0f img/s\n", ep, c->epochs, nll_sum / seen, (loss_sum - aux_sum) / seen,
                    (double)correct / seen, tl, ta, seen / ep_time);
    }
    res->steps = step;
    res->train_seconds = train_time;
    res->n_test = test.n;
    res->n_val = val.n;
    res->drop_rate = total_assigned ? (double)total_dropped / total_assigned : 0.0;
    /* the ranks must still hold the same model (they apply identical updates) */
    if ((rc = dist_check_equal(m.params, m.num_params, "parameters after training", err))) goto out_buf;
    dist_report(step, m.num_params);
    if (!writer) goto out_buf;
    if (!strcmp(res->status, "ok")) {
        if (collapse && (rc = ewa_collapse(&m, &dense, err))) goto out_buf;
        /* never a checkpoint of non-finite weights (e.g. after a huge last step) */
        if (count_nonfinite(m.params, m.num_params) || count_nonfinite(evm->params, evm->num_params))
            mark_diverged(res, step, "parameters");
    }
    char sha[65] = "";   /* of the checkpoint as written: the run's identity (runrecord.h) */
    if (!strcmp(res->status, "ok")) {
        snprintf(path, sizeof path, "%s/final.safetensors", out_dir);
        if ((rc = save_final(evm, c, &train, path, err))) goto out_buf;
        if ((rc = fs_sha256_file(path, sha, err))) goto out_buf;
    } else {
        fprintf(stderr, "run diverged at step %ld (%s not finite); no checkpoint written\n",
                res->diverged_step, res->diverged_what);
    }
    snprintf(path, sizeof path, "%s/summary.csv", out_dir);
    record_env_end(&env);
    RunRecord rec = {.cfg = c, .res = res, .deployed = &evm->d, .trained = &m.d,
                     .dataset_name = train.name, .env = &env, .checkpoint_sha256 = sha[0] ? sha : NULL,
                     .data_sha256 = writer ? data_sha : NULL};
    rc = record_write_summary(path, &rec, err);
out_buf:
    rows_free(&metrics, METRIC_COLS);
    rows_free(&routing, ROUTE_COLS);
    rows_free(&moe_rows, MOE_COLS);
    free(x); free(y); free(idx);
out_model:
    free(m.route_counts);
    m.route_counts = NULL;
    free(m.shard_scratch);
    m.shard_scratch = NULL;
    vit_free(&m);
    if (dense.params) vit_free(&dense);
out_data:
    data_free(&train);
    data_free(&val);
    data_free(&test);
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
