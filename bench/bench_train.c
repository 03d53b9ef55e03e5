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

int main(int argc, char **argv) {
    int steps = 20, warmup = 3, threads = 2, dim = 192, depth = 6, heads = 3, patch = 4;
    int img = 28, chans = 1, classes = 10, batch = 128;
    float mlp_ratio = 4.0f;
    const char *method = "dense";     /* a moe.method: dense, ewa (RMoE + EWA), moe (top-1 routed), ... */
    int points = 0, groups = 64, group_k = 32, pn_width = 128;   /* --points P: 3D model */
    int peak = 0;                     /* --gemm-peak 1: time the GEMM path only */
    const char *precision = "fp32";   /* --precision fp32 | bf16 (gemm.h) */
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        int v = atoi(argv[i + 1]);
        if (!strcmp(k, "--steps")) steps = v;
        else if (!strcmp(k, "--warmup")) warmup = v;
        else if (!strcmp(k, "--threads")) threads = v;
        else if (!strcmp(k, "--dim")) dim = v;
        else if (!strcmp(k, "--depth")) depth = v;
        else if (!strcmp(k, "--heads")) heads = v;
        else if (!strcmp(k, "--patch")) patch = v;
        else if (!strcmp(k, "--img")) img = v;
        else if (!strcmp(k, "--chans")) chans = v;
        else if (!strcmp(k, "--classes")) classes = v;
        else if (!strcmp(k, "--batch")) batch = v;
        else if (!strcmp(k, "--mlp-ratio")) mlp_ratio = (float)atof(argv[i + 1]);
        else if (!strcmp(k, "--method")) method = argv[i + 1];
        else if (!strcmp(k, "--points")) points = v;
        else if (!strcmp(k, "--groups")) groups = v;
        else if (!strcmp(k, "--group-k")) group_k = v;
        else if (!strcmp(k, "--pn-width")) pn_width = v;
        else if (!strcmp(k, "--gemm-peak")) peak = v;
        else if (!strcmp(k, "--precision")) precision = argv[i + 1];
        else { fprintf(stderr, "bench_train: unknown option %s\n", k); return 2; }
    }
    gemm_set_threads(threads);
    ViTDims d;
    Err err = {0};
    ViT m;
    /* The method as bin/ewa trains it with the default [moe] keys (4 experts
     * in every other block; EWA beta 0.3; routed top-1 with capacity 1.25 and
     * Switch loss 0.01): the method table (experiments/methods.h). */
    RunConfig cfg;
    config_defaults(&cfg);
    snprintf(cfg.method, sizeof cfg.method, "%s", method);
    if (!method_known(method)) {
        fprintf(stderr, "bench_train: --method %s is not a method of experiments/methods.c\n", method);
        return 2;
    }
    MethodPlan plan;
    method_plan(&cfg, steps + warmup, steps + warmup, &plan);
    const MoeSpec spec = plan.spec;
    if (points) chans = img = patch = 1;
    GemmPrecision prec;
    if (gemm_parse_precision(precision, "--precision", &prec, &err) || gemm_set_precision(prec, &err) ||
        vit_dims(&d, chans, img, img, patch, dim, depth, heads, mlp_ratio, classes, 0, &err) ||
        (points && vit_set_points(&d, points, groups, group_k, pn_width, &err)) ||
        (spec.kind != MOE_NONE && vit_set_moe(&d, &spec, "every_other", &err)) ||
        vit_init(&m, &d, batch, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 2;
    }
    if (peak) {
        int N = batch * vit_tokens(&d);
        printf("c gemm_gflops=%.1f precision=%s rows=%d dim=%d hidden=%d threads=%d\n",
               gemm_peak(N, d.dim, d.hidden, steps), precision, N, d.dim, d.hidden, threads);
        vit_free(&m);
        return 0;
    }
    vit_init_weights(&m, 0);
    Rng r;
    rng_seed(&r, 1);
    size_t nx = (size_t)batch * vit_input_floats(&d);
    float *x = malloc(nx * sizeof(float));
    int *y = malloc(batch * sizeof(int));
    for (size_t i = 0; i < nx; i++) x[i] = rng_normal(&r);
    for (int i = 0; i < batch; i++) y[i] = (int)rng_below(&r, (uint32_t)classes);
    AdamW opt = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.05f};
    double t0 = 0, c0 = 0;
    float loss = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) { t0 = now_s(); c0 = cpu_s(); }
        loss = vit_forward(&m, x, y, batch);
        vit_zero_grad(&m);
        vit_backward(&m);
        clip_grad_norm(m.grads, m.num_params, 1.0f);
        adamw_step(&opt, m.params, m.grads, m.adam_m, m.adam_v, m.specs, m.n_params);
        if (plan.beta > 0 && s < plan.ewa_steps) ewa_update(&m, plan.beta);
        m.moe_step++;
    }
    double dt = now_s() - t0, util = (cpu_s() - c0) / (dt * threads);
    double ips = (double)steps * batch / dt;
    double gflops = 3.0 * vit_flops_per_image(&d) * ips / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("c precision=%s method=%s images_per_s=%.2f step_ms=%.1f gflops=%.1f cpu_util=%.2f threads=%d "
           "peak_rss_mib=%.1f batch=%d steps=%d dim=%d depth=%d heads=%d patch=%d points=%d "
           "final_loss=%.4f params=%zu train_flops_per_image=%.0f\n",
           precision, method, ips, 1000.0 * dt / steps, gflops, util, threads, ru.ru_maxrss / 1024.0, batch, steps,
           dim, depth, heads, patch, points, loss, m.num_params, 3.0 * vit_flops_per_image(&d));
    free(x); free(y);
    vit_free(&m);
    return 0;
}
