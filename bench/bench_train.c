/* Training-throughput benchmark, the C side of `make bench`: one training
 * step (forward, cross-entropy, backward, clip_grad_norm 1.0, AdamW) on random
 * data of the reference shape R1 (docs/DESIGN.md 7) unless told otherwise; the same
 * work as bench/torch_bench.py, which clips too (the harness's recipes clip:
 * train.grad_clip = 1.0). Prints one line of key=value pairs. Achieved GFLOP/s counts a
 * training step as 3x the forward FLOPs (backward = 2x forward), the usual
 * estimate. cpu_util = process CPU seconds / (wall seconds x threads) over
 * the timed steps (below ~0.9: the run shared its cores).
 * --gemm-peak 1 instead times the engine's GEMM path (linear_forward +
 * linear_backward) on the model's own linear-layer shapes (N = batch x
 * tokens rows; qkv, proj, fc1, fc2) and prints gemm_gflops: the peak the
 * model's achieved GFLOP/s is compared against. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "../core/ewa.h"
#include "../core/gemm.h"
#include "../core/layers/layers.h"
#include "../core/optim.h"
#include "../core/rng.h"
#include "../core/vit.h"
#include "../experiments/methods.h"
#include "../experiments/util.h"

/* Process CPU seconds (all threads). */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* GFLOP/s of linear_forward + linear_backward (din, dw, db) over the block's
 * four linear shapes at N rows, `reps` times after one untimed pass. */
static double gemm_peak(int N, int D, int H, int reps) {
    int shape[4][2] = {{D, 3 * D}, {D, D}, {D, H}, {H, D}};   /* (IC, OC) */
    size_t mx = (size_t)(H > 3 * D ? H : 3 * D);
    float *in = calloc((size_t)N * mx, sizeof(float)), *out = calloc((size_t)N * mx, sizeof(float));
    float *din = calloc((size_t)N * mx, sizeof(float)), *w = calloc(mx * mx, sizeof(float));
    float *dw = calloc(mx * mx, sizeof(float)), *b = calloc(mx, sizeof(float)), *db = calloc(mx, sizeof(float));
    if (!in || !out || !din || !w || !dw || !b || !db) {
        fprintf(stderr, "bench_train: out of memory for --gemm-peak\n");
        exit(1);
    }
    for (size_t i = 0; i < (size_t)N * mx; i++) in[i] = out[i] = (float)(i % 7) * 0.1f;
    double flops = 0, t0 = 0;
    for (int r = 0; r <= reps; r++) {
        if (r == 1) t0 = now_s();
        for (int s = 0; s < 4; s++) {
            int IC = shape[s][0], OC = shape[s][1];
            linear_forward(out, in, w, b, N, IC, OC);
            linear_backward(din, dw, db, out, in, w, N, IC, OC);
            if (r) flops += 3.0 * 2.0 * N * IC * OC;
        }
    }
    double g = flops / (now_s() - t0) / 1e9;
    free(in); free(out); free(din); free(w); free(dw); free(b); free(db);
    return g;
}

/* The command line (bench/run.sh passes each option as "--name value"). */
typedef struct {
    int steps, warmup, threads, dim, depth, heads, patch, img, chans, classes, batch;
    int points, groups, group_k, pn_width;   /* --points P > 0: the 3D model */
    int peak;                                /* --gemm-peak 1: time the GEMM path only */
    float mlp_ratio;
    const char *method;      /* a moe.method: dense, ewa (RMoE + EWA), moe (top-1 routed), ... */
    const char *precision;   /* fp32 | bf16 (gemm.h) */
} BenchOpts;

/* Parses argv into o (defaults: R1, dense, fp32, 20 steps after 3 warm-up
 * steps, 2 threads). Returns 0, or 2 after naming the bad option on stderr. */
static int parse_opts(int argc, char **argv, BenchOpts *o) {
    *o = (BenchOpts){.steps = 20, .warmup = 3, .threads = 2, .dim = 192, .depth = 6, .heads = 3, .patch = 4,
                     .img = 28, .chans = 1, .classes = 10, .batch = 128, .groups = 64, .group_k = 32,
                     .pn_width = 128, .mlp_ratio = 4.0f, .method = "dense", .precision = "fp32"};
    const struct { const char *name; int *v, min; } ints[] = {
        {"--steps", &o->steps, 1},     {"--warmup", &o->warmup, 0},   {"--threads", &o->threads, 1},
        {"--dim", &o->dim, 1},         {"--depth", &o->depth, 1},     {"--heads", &o->heads, 1},
        {"--patch", &o->patch, 1},     {"--img", &o->img, 1},         {"--chans", &o->chans, 1},
        {"--classes", &o->classes, 2}, {"--batch", &o->batch, 1},     {"--points", &o->points, 0},
        {"--groups", &o->groups, 1},   {"--group-k", &o->group_k, 1}, {"--pn-width", &o->pn_width, 1},
        {"--gemm-peak", &o->peak, 0},
    };
    for (int i = 1; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "bench_train: %s needs a value\n", k); return 2; }
        if (!strcmp(k, "--method")) { o->method = v; continue; }
        if (!strcmp(k, "--precision")) { o->precision = v; continue; }
        if (!strcmp(k, "--mlp-ratio")) {
            char *end;
            o->mlp_ratio = strtof(v, &end);
            if (end == v || *end || !(o->mlp_ratio > 0)) {
                fprintf(stderr, "bench_train: --mlp-ratio '%s': expected a positive number\n", v);
                return 2;
            }
            continue;
        }
        size_t j = 0, nints = sizeof ints / sizeof *ints;
        while (j < nints && strcmp(k, ints[j].name)) j++;
        if (j == nints) { fprintf(stderr, "bench_train: unknown option %s\n", k); return 2; }
        char *end;
        long x = strtol(v, &end, 10);
        if (end == v || *end || x < ints[j].min || x > 1 << 20) {
            fprintf(stderr, "bench_train: %s '%s': expected a whole number >= %d\n", k, v, ints[j].min);
            return 2;
        }
        *ints[j].v = (int)x;
    }
    return 0;
}

/* Times o->steps training steps after o->warmup untimed ones on fixed random
 * data and prints the result line (the header comment). */
static void time_steps(ViT *m, const ViTDims *d, const MethodPlan *plan, const BenchOpts *o) {
    Rng r;
    rng_seed(&r, 1);
    size_t nx = (size_t)o->batch * vit_input_floats(d);
    float *x = malloc(nx * sizeof(float));
    int *y = malloc((size_t)o->batch * sizeof(int));
    if (!x || !y) {
        fprintf(stderr, "bench_train: out of memory for the batch\n");
        exit(1);
    }
    for (size_t i = 0; i < nx; i++) x[i] = rng_normal(&r);
    for (int i = 0; i < o->batch; i++) y[i] = (int)rng_below(&r, (uint32_t)o->classes);
    AdamW opt = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.05f};
    double t0 = 0, c0 = 0;
    float loss = 0;
    for (int s = 0; s < o->warmup + o->steps; s++) {
        if (s == o->warmup) { t0 = now_s(); c0 = cpu_s(); }
        loss = vit_forward(m, x, y, o->batch);
        vit_zero_grad(m);
        vit_backward(m);
        clip_grad_norm(m->grads, m->num_params, 1.0f);
        adamw_step(&opt, m->params, m->grads, m->adam_m, m->adam_v, m->specs, m->n_params);
        if (plan->beta > 0 && s < plan->ewa_steps) ewa_update(m, plan->beta);
        m->moe_step++;
    }
    double dt = now_s() - t0, util = (cpu_s() - c0) / (dt * o->threads);
    double ips = (double)o->steps * o->batch / dt;
    double gflops = 3.0 * vit_flops_per_image(d) * ips / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("c precision=%s method=%s images_per_s=%.2f step_ms=%.1f gflops=%.1f cpu_util=%.2f threads=%d "
           "peak_rss_mib=%.1f batch=%d steps=%d dim=%d depth=%d heads=%d patch=%d points=%d "
           "final_loss=%.4f params=%zu train_flops_per_image=%.0f\n",
           o->precision, o->method, ips, 1000.0 * dt / o->steps, gflops, util, o->threads, ru.ru_maxrss / 1024.0,
           o->batch, o->steps, o->dim, o->depth, o->heads, o->patch, o->points, loss, m->num_params,
           3.0 * vit_flops_per_image(d));
    free(x);
    free(y);
}

int main(int argc, char **argv) {
    BenchOpts o;
    if (parse_opts(argc, argv, &o)) return 2;
    gemm_set_threads(o.threads);
    /* The method as bin/ewa trains it with the default [moe] keys (4 experts
     * in every other block; EWA beta 0.3; routed top-1 with capacity 1.25 and
     * Switch loss 0.01): the method table (experiments/methods.h). */
    if (!method_known(o.method)) {
        fprintf(stderr, "bench_train: --method %s is not a method of experiments/methods.c\n", o.method);
        return 2;
    }
    RunConfig cfg;
    config_defaults(&cfg);
    snprintf(cfg.method, sizeof cfg.method, "%s", o.method);
    MethodPlan plan;
    method_plan(&cfg, o.steps + o.warmup, o.steps + o.warmup, &plan);
    if (o.points) o.chans = o.img = o.patch = 1;
    ViTDims d;
    ViT m;
    Err err = {0};
    GemmPrecision prec;
    if (gemm_parse_precision(o.precision, "--precision", &prec, &err) || gemm_set_precision(prec, &err) ||
        vit_dims(&d, o.chans, o.img, o.img, o.patch, o.dim, o.depth, o.heads, o.mlp_ratio, o.classes, 0, &err) ||
        (o.points && vit_set_points(&d, o.points, o.groups, o.group_k, o.pn_width, &err)) ||
        (plan.spec.kind != MOE_NONE && vit_set_moe(&d, &plan.spec, "every_other", &err)) ||
        vit_init(&m, &d, o.batch, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 2;
    }
    if (o.peak) {
        int N = o.batch * vit_tokens(&d);
        printf("c gemm_gflops=%.1f precision=%s rows=%d dim=%d hidden=%d threads=%d\n",
               gemm_peak(N, d.dim, d.hidden, o.steps), o.precision, N, d.dim, d.hidden, o.threads);
    } else {
        vit_init_weights(&m, 0);
        time_steps(&m, &d, &plan, &o);
    }
    vit_free(&m);
    return 0;
}
