/* The whole 3D point-cloud model (docs/DESIGN.md 2.9) and its command line:
 *  - input layout and token count (vit_input_floats, vit_tokens), the tensor
 *    table, and the tokens entering block 0 recomputed from the layers;
 *  - symmetries: the logits do not depend on the order of the k points of a
 *    patch (max-pool) nor, with class-token pooling, on the order of the G
 *    groups (attention is permutation-equivariant; position comes only from
 *    the centres);
 *  - finite-difference gradient checks of every tensor of a tiny dense and a
 *    tiny RMoE point model (tolerance: tests/gradcheck.h, GC_TOL; elements
 *    whose +-h perturbation moves an argmax of a mini-PointNet max-pool are
 *    skipped, as in tests/test_points.c, and must be few);
 *  - EWA on a 3D RMoE model: averaging the experts fully and collapsing gives
 *    a dense 3D model with the same logits;
 *  - `ewa train` on shapes3d (dense and moe.method=ewa) and `ewa eval` of
 *    the checkpoint it writes ($EWA_BIN, as in tests/test_cli.c). */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include <sys/stat.h>
#include "../core/checkpoint.h"
#include "../experiments/csvio.h"
#include "../core/ewa.h"
#include "../core/safetensors.h"
#include "../core/vit.h"
#include "gradcheck.h"
#include "testproc.h"
#include "testutil.h"

/* ---- a tiny point model ------------------------------------------------ */

enum { PTS = 64, G = 4, K = 5, PNW = 3, DIM = 8, CLASSES = 3, BATCH = 3 };

static void point_dims(ViTDims *d, int depth, int pool_mean) {
    Err err = {0};
    cr_assert_eq(vit_dims(d, 1, 1, 1, 1, DIM, depth, 2, 2.0f, CLASSES, pool_mean, &err), 0, "%s", err.msg);
    cr_assert_eq(vit_set_points(d, PTS, G, K, PNW, &err), 0, "%s", err.msg);
}

/* The model tests run single-threaded: these shapes are far too small for
 * threads, and on a busy machine OpenMP's barriers make them 100x slower. */
static void one_thread(void) { omp_set_num_threads(1); }

/* Random clouds in the model's input layout, every coordinate N(0, 0.6^2)
 * (wide offsets give the mini-PointNet's first layers gradients well above
 * float32 round-off in the loss). */
static float *point_input(const ViTDims *d, int B, Rng *r) {
    size_t per = vit_input_floats(d);
    float *x = malloc(sizeof(float) * per * B);
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < per; i++) x[b * per + i] = 0.6f * rng_normal(r);
    return x;
}

/* vit_init + vit_init_weights + noise on every parameter (timm init has zero
 * biases and unit norms, which would hide gradient paths). */
static void point_model(ViT *m, const ViTDims *d, uint64_t seed) {
    Err err = {0};
    one_thread();
    cr_assert_eq(vit_init(m, d, BATCH, &err), 0, "%s", err.msg);
    vit_init_weights(m, seed);
    Rng r; rng_seed(&r, seed + 1);
    for (size_t i = 0; i < m->num_params; i++) m->params[i] += 0.3f * rng_normal(&r);
}

Test(model3d, input_layout_tokens_and_tensor_table) {
    ViTDims d; Err err = {0};
    one_thread();
    point_dims(&d, 1, 0);
    cr_expect_eq(vit_input_floats(&d), (size_t)G * 3 + (size_t)G * K * 3);
    cr_expect_eq(vit_tokens(&d), G + 1);
    cr_expect_eq(d.pn.c1, PNW); cr_expect_eq(d.pn.c2, 2 * PNW); cr_expect_eq(d.pn.c3, 4 * PNW);
    cr_expect_eq(d.pn.D, DIM);
    cr_expect_eq(d.pos_hidden, 128);
    /* the same numbers for a realistic shape, and the image model's */
    ViTDims big;
    cr_assert_eq(vit_dims(&big, 1, 1, 1, 1, 192, 2, 3, 4.0f, 40, 0, &err), 0);
    cr_assert_eq(vit_set_points(&big, 1024, 64, 32, 128, &err), 0);
    cr_expect_eq(vit_input_floats(&big), (size_t)64 * 3 * 33);
    cr_expect_eq(vit_tokens(&big), 65);
    ViTDims img;
    cr_assert_eq(vit_dims(&img, 3, 32, 32, 4, 48, 1, 3, 4.0f, 10, 0, &err), 0);
    cr_expect_eq(vit_input_floats(&img), (size_t)3 * 32 * 32);
    cr_expect_eq(vit_tokens(&img), 65);
    /* bad shapes are usage errors */
    ViTDims bad = d;
    cr_expect_eq(vit_set_points(&bad, 8, 9, 4, 4, &err), ERR_USAGE);
    cr_expect_eq(vit_set_points(&bad, 8, 4, 9, 4, &err), ERR_USAGE);
    cr_expect_eq(vit_set_points(&bad, 8, 4, 4, 0, &err), ERR_USAGE);
    cr_expect_eq(vit_set_points(&bad, 8, 0, 4, 4, &err), ERR_USAGE);

    ViT m;
    cr_assert_eq(vit_init(&m, &d, 2, &err), 0, "%s", err.msg);
    cr_expect_eq(m.T, G + 1);
    cr_expect_eq(m.Np, G);
    int c1 = PNW, c2 = 2 * PNW, c3 = 4 * PNW, h = 128, D = DIM, H = 2 * DIM;
    struct { const char *name; int ndim, s0, s1, s2; } want[] = {
        {"cls_token", 3, 1, 1, D}, {"cls_pos", 3, 1, 1, D},
        {"patch_embed.conv1.weight", 2, c1, 3, 0},
        {"patch_embed.norm1.weight", 1, c1, 0, 0}, {"patch_embed.norm1.bias", 1, c1, 0, 0},
        {"patch_embed.conv2.weight", 2, c2, c1, 0},
        {"patch_embed.conv3.weight", 2, c3, 2 * c2, 0},
        {"patch_embed.norm3.weight", 1, c3, 0, 0}, {"patch_embed.norm3.bias", 1, c3, 0, 0},
        {"patch_embed.conv4.weight", 2, D, c3, 0}, {"patch_embed.conv4.bias", 1, D, 0, 0},
        {"pos_embed.fc1.weight", 2, h, 3, 0}, {"pos_embed.fc1.bias", 1, h, 0, 0},
        {"pos_embed.fc2.weight", 2, D, h, 0}, {"pos_embed.fc2.bias", 1, D, 0, 0},
        {"blocks.0.norm1.weight", 1, D, 0, 0}, {"blocks.0.norm1.bias", 1, D, 0, 0},
        {"blocks.0.attn.qkv.weight", 2, 3 * D, D, 0}, {"blocks.0.attn.qkv.bias", 1, 3 * D, 0, 0},
        {"blocks.0.attn.proj.weight", 2, D, D, 0}, {"blocks.0.attn.proj.bias", 1, D, 0, 0},
        {"blocks.0.norm2.weight", 1, D, 0, 0}, {"blocks.0.norm2.bias", 1, D, 0, 0},
        {"blocks.0.mlp.fc1.weight", 2, H, D, 0}, {"blocks.0.mlp.fc1.bias", 1, H, 0, 0},
        {"blocks.0.mlp.fc2.weight", 2, D, H, 0}, {"blocks.0.mlp.fc2.bias", 1, D, 0, 0},
        {"norm.weight", 1, D, 0, 0}, {"norm.bias", 1, D, 0, 0},
        {"head.weight", 2, CLASSES, D, 0}, {"head.bias", 1, CLASSES, 0, 0}};
    int n = sizeof want / sizeof want[0];
    cr_assert_eq(m.n_params, n, "%d tensors, expected %d", m.n_params, n);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const ParamSpec *s = &m.specs[i];
        cr_expect_str_eq(s->name, want[i].name);
        cr_expect_eq(s->ndim, want[i].ndim, "%s ndim", s->name);
        int sh[3] = {want[i].s0, want[i].s1, want[i].s2};
        for (int k = 0; k < want[i].ndim; k++) cr_expect_eq(s->shape[k], sh[k], "%s dim %d", s->name, k);
        /* AdamW decays matrices only: not cls_token/cls_pos, biases, norms */
        cr_expect_eq(s->decay, want[i].ndim == 2, "%s decay %d", s->name, s->decay);
        total += s->numel;
    }
    cr_expect_eq(total, m.num_params);
    size_t tot, act;
    vit_param_counts(&d, &tot, &act);
    cr_expect_eq(tot, m.num_params);
    cr_expect_eq(act, m.num_params);
    vit_free(&m);
}

/* x0 (the tokens entering block 0) recomputed from the layers on the
 * tensors found by name: x0[b,0] = cls_token + cls_pos; x0[b,1+g] =
 * pointnet(patch g) + pos_mlp(centre g), the input being per cloud the G
 * centres then the (G,k,3) neighbour offsets. */
Test(model3d, tokens_entering_block0) {
    ViTDims d;
    point_dims(&d, 1, 0);
    ViT m;
    point_model(&m, &d, 5);
    Rng r; rng_seed(&r, 6);
    int B = 2;
    float *x = point_input(&d, B, &r);
    int y[2] = {0, 2};
    vit_forward(&m, x, y, B);

    size_t per = vit_input_floats(&d), nc = (size_t)G * 3, np = (size_t)G * K * 3;
    float *cent = malloc(sizeof(float) * nc * B), *pat = malloc(sizeof(float) * np * B);
    for (int b = 0; b < B; b++) {
        memcpy(cent + b * nc, x + b * per, nc * sizeof(float));
        memcpy(pat + b * np, x + b * per + nc, np * sizeof(float));
    }
    PointNetParams pn;
    PosEmbedParams pe;
    pointnet_params_view(&pn, m.params + vit_find_param(&m, "patch_embed.conv1.weight")->offset, d.pn);
    posembed_params_view(&pe, m.params + vit_find_param(&m, "pos_embed.fc1.weight")->offset, 128, DIM);
    PointNetActs a;
    cr_assert_eq(pointnet_acts_alloc(&a, d.pn, B * G, K), 0);
    float *tok = malloc(sizeof(float) * B * G * DIM), *pos = malloc(sizeof(float) * B * G * DIM);
    float *ph = malloc(sizeof(float) * B * G * 128), *pa = malloc(sizeof(float) * B * G * 128);
    pointnet_forward(tok, &a, &pn, pat, B, G, K);
    posembed_forward(pos, ph, pa, &pe, cent, B * G, 128, DIM);
    const float *cls = m.params + vit_find_param(&m, "cls_token")->offset;
    const float *clp = m.params + vit_find_param(&m, "cls_pos")->offset;
    double emax = 0, vmax = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= G; t++)
            for (int i = 0; i < DIM; i++) {
                float want = t == 0 ? cls[i] + clp[i]
                                    : tok[((size_t)b * G + t - 1) * DIM + i] + pos[((size_t)b * G + t - 1) * DIM + i];
                float got = m.a.x0[((size_t)b * (G + 1) + t) * DIM + i];
                emax = fmax(emax, fabs(got - want));
                vmax = fmax(vmax, fabs(want));
            }
    cr_expect_lt(emax, 1e-6 * vmax, "x0 differs from the layers' tokens by %g (scale %g)", emax, vmax);
    cr_expect_gt(vmax, 0.1);
    pointnet_acts_free(&a);
    free(tok); free(pos); free(ph); free(pa); free(cent); free(pat); free(x);
    vit_free(&m);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - b[i]));
    return e;
}

Test(model3d, order_of_points_and_groups) {
    ViTDims d;
    point_dims(&d, 2, 0);   /* class-token pooling */
    ViT m;
    point_model(&m, &d, 7);
    Rng r; rng_seed(&r, 8);
    int B = 2;
    float *x = point_input(&d, B, &r);
    size_t per = vit_input_floats(&d), nc = (size_t)G * 3, nl = (size_t)B * CLASSES;
    vit_forward(&m, x, NULL, B);
    float ref[2 * CLASSES];
    memcpy(ref, m.a.logits, sizeof ref);
    double scale = 0;
    for (size_t i = 0; i < nl; i++) scale = fmax(scale, fabs(ref[i]));

    /* reverse the k points of every patch */
    float *xp = malloc(sizeof(float) * per * B);
    for (int b = 0; b < B; b++) {
        memcpy(xp + b * per, x + b * per, nc * sizeof(float));
        for (int g = 0; g < G; g++)
            for (int j = 0; j < K; j++)
                memcpy(xp + b * per + nc + ((size_t)g * K + j) * 3,
                       x + b * per + nc + ((size_t)g * K + (K - 1 - j)) * 3, 3 * sizeof(float));
    }
    vit_forward(&m, xp, NULL, B);
    double e = max_abs_diff(m.a.logits, ref, nl);
    cr_expect_lt(e, 1e-5 * scale, "reordering a patch's points changed the logits by %g", e);

    /* rotate the groups (centre and patch together) */
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            int s = (g + 1) % G;
            memcpy(xp + b * per + 3 * g, x + b * per + 3 * s, 3 * sizeof(float));
            memcpy(xp + b * per + nc + (size_t)g * K * 3, x + b * per + nc + (size_t)s * K * 3,
                   (size_t)K * 3 * sizeof(float));
        }
    vit_forward(&m, xp, NULL, B);
    e = max_abs_diff(m.a.logits, ref, nl);
    cr_expect_lt(e, 1e-5 * scale, "reordering the groups changed the logits by %g", e);

    /* but moving only the centres (not their patches) does change them */
    memcpy(xp, x, sizeof(float) * per * B);
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) memcpy(xp + b * per + 3 * g, x + b * per + 3 * ((g + 1) % G), 3 * sizeof(float));
    vit_forward(&m, xp, NULL, B);
    e = max_abs_diff(m.a.logits, ref, nl);
    cr_expect_gt(e, 1e-3 * scale, "the centres do not reach the logits (%g)", e);
    free(xp); free(x);
    vit_free(&m);
}

/* ---- whole-model gradient check ----------------------------------------- */

typedef struct {
    ViT *m;
    float *x;
    int *y, B;
    int *ref1, *ref2;   /* max-pool argmaxes of the unperturbed forward */
    int crossed;        /* a forward's argmaxes differ from them */
} Ctx;

/* The loss of vit_forward, recomputed in double from the float32 logits
 * (mean cross-entropy with label smoothing, target (1-s) onehot + s/K, plus
 * the MoE auxiliary loss): the float32 loss vit_forward returns has a
 * rounding step of ~1e-7, i.e. ~5e-6 in a central difference with h = 1e-2,
 * as large as the smallest gradients here (the mini-PointNet's conv2). */
static double ce_double(const ViT *m, const int *y, int B) {
    int K = m->d.classes;
    double s = m->label_smoothing, tot = 0;
    for (int b = 0; b < B; b++) {
        const float *z = m->a.logits + (size_t)b * K;
        double mx = z[0], se = 0;
        for (int k = 1; k < K; k++) mx = fmax(mx, z[k]);
        for (int k = 0; k < K; k++) se += exp(z[k] - mx);
        double lse = mx + log(se);
        for (int k = 0; k < K; k++) tot -= ((k == y[b] ? 1 - s : 0) + s / K) * (z[k] - lse);
    }
    return tot / B + m->aux_loss;
}

static double ctx_loss(void *c_) {
    Ctx *c = c_;
    float lf = vit_forward(c->m, c->x, c->y, c->B);
    double l = ce_double(c->m, c->y, c->B);
    cr_assert_lt(fabs(lf - l), 1e-5 * fabs(l), "vit_forward's loss %.7f, recomputed %.7f", lf, l);
    const PointNetActs *a = &c->m->pn_acts;
    size_t N = (size_t)c->B * c->m->d.groups;
    if (c->ref1 && (memcmp(c->ref1, a->arg1, N * c->m->d.pn.c2 * sizeof(int)) ||
                    memcmp(c->ref2, a->arg2, N * c->m->d.pn.D * sizeof(int))))
        c->crossed = 1;
    return l;
}

/* gc_check with step h (at most max_checks evenly spread elements),
 * skipping elements whose perturbation crosses a max-pool kink; counts tried
 * and skipped. */
static double check3d(float *p, const float *an, size_t n, Ctx *c, size_t max_checks, float h,
                      int *tried, int *skipped) {
    double gmax = 1e-12, dmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(an[i]));
    size_t step = (max_checks && n > max_checks) ? n / max_checks : 1;
    for (size_t i = 0; i < n; i += step) {
        float save = p[i];
        c->crossed = 0;
        p[i] = save + h; double lp = ctx_loss(c);
        p[i] = save - h; double lm = ctx_loss(c);
        p[i] = save;
        (*tried)++;
        if (c->crossed) { (*skipped)++; continue; }
        dmax = fmax(dmax, fabs((lp - lm) / (2.0 * h) - an[i]));
    }
    return dmax / gmax;
}

static void model_check(ViTDims d, float smoothing, uint64_t seed) {
    ViT m;
    point_model(&m, &d, seed);
    m.label_smoothing = smoothing;
    m.moe_seed = seed; m.moe_step = 3;   /* a fixed RMoE partition for every forward */
    Rng r; rng_seed(&r, seed + 2);
    float *x = point_input(&d, BATCH, &r);
    int y[BATCH] = {2, 0, 1};
    Ctx c = {.m = &m, .x = x, .y = y, .B = BATCH};
    vit_zero_grad(&m);
    double l0 = ctx_loss(&c);
    cr_assert(isfinite(l0));
    vit_backward(&m);
    float *g = malloc(m.num_params * sizeof(float));
    memcpy(g, m.grads, m.num_params * sizeof(float));
    size_t N = (size_t)BATCH * d.groups;
    c.ref1 = malloc(N * d.pn.c2 * sizeof(int));
    c.ref2 = malloc(N * d.pn.D * sizeof(int));
    memcpy(c.ref1, m.pn_acts.arg1, N * d.pn.c2 * sizeof(int));
    memcpy(c.ref2, m.pn_acts.arg2, N * d.pn.D * sizeof(int));
    int tried = 0, skipped = 0;
    for (int i = 0; i < m.n_params; i++) {
        const ParamSpec *s = &m.specs[i];
        double gn = 0;
        for (size_t j = 0; j < s->numel; j++) gn = fmax(gn, fabs(g[s->offset + j]));
        /* every tensor takes part (the key bias alone has an exactly zero gradient) */
        if (!strstr(s->name, "qkv.bias")) cr_expect_gt(gn, 0, "%s: zero gradient", s->name);
        /* The mini-PointNet's instance norms tie every point of a cloud to every
         * other: a step in one of its weights moves all max-pool candidates
         * (more kinks crossed) and the normalisation adds curvature, so its
         * tensors take a 4x smaller step (the loss is recomputed in double,
         * see ce_double, so the difference stays well above round-off), and
         * at least a third of each tensor's checks must miss every kink. */
        float h = strncmp(s->name, "patch_embed.", 12) ? GC_H : GC_H / 4;
        int tried0 = tried, skipped0 = skipped;
        double e = check3d(m.params + s->offset, g + s->offset, s->numel, &c, 40, h, &tried, &skipped);
        int t = tried - tried0, ok = t - (skipped - skipped0);
        cr_expect_geq(3 * ok, t, "%s: only %d of %d checks miss every max-pool kink", s->name, ok, t);
        cr_expect_lt(e, GC_TOL, "%s: relative error %.2e", s->name, e);
        if (getenv("EWA_GC_VERBOSE"))
            fprintf(stderr, "%-36s rel err %.2e (max grad %.2e), %d of %d checked\n", s->name, e, gn, ok, t);
    }
    cr_expect_leq(skipped * 10, tried, "%d of %d checks crossed a max-pool kink", skipped, tried);
    if (getenv("EWA_GC_VERBOSE")) fprintf(stderr, "skipped %d of %d\n", skipped, tried);
    cr_expect_gt(tried, 500);
    free(c.ref1); free(c.ref2); free(g); free(x);
    vit_free(&m);
}

Test(model3d_gradcheck, dense_cls_pool, .timeout = 60) {
    ViTDims d;
    point_dims(&d, 2, 0);
    model_check(d, 0.1f, 23);   /* 21 puts a max-pool near-tie under every conv1 step */
}

Test(model3d_gradcheck, rmoe_mean_pool, .timeout = 60) {
    ViTDims d; Err err = {0};
    point_dims(&d, 2, 1);
    MoeSpec s = {.kind = MOE_RANDOM, .experts = 3};
    cr_assert_eq(vit_set_moe(&d, &s, "every_other", &err), 0, "%s", err.msg);
    cr_assert(!d.moe_block[0] && d.moe_block[1]);
    model_check(d, 0.0f, 24);
}

/* EWA on a 3D RMoE model: with beta = (N-1)/N one update makes every expert
 * the mean, so the RMoE layer is the dense FFN of the mean for any
 * partition; the collapse keeps the 3D embedding and gives the same logits. */
Test(model3d, ewa_average_and_collapse) {
    ViTDims d; Err err = {0};
    point_dims(&d, 2, 0);
    int E = 4;
    MoeSpec s = {.kind = MOE_RANDOM, .experts = E};
    cr_assert_eq(vit_set_moe(&d, &s, "every_other", &err), 0, "%s", err.msg);
    ViT m;
    point_model(&m, &d, 31);   /* noise: the experts differ */
    m.moe_seed = 4;
    const ParamSpec *e0 = vit_find_param(&m, "blocks.1.mlp.experts.0.fc1.weight");
    const ParamSpec *e1 = vit_find_param(&m, "blocks.1.mlp.experts.1.fc1.weight");
    cr_assert(e0 && e1);
    cr_expect_gt(max_abs_diff(m.params + e0->offset, m.params + e1->offset, e0->numel), 0.1);
    ewa_update(&m, (float)(E - 1) / E);
    cr_expect_lt(max_abs_diff(m.params + e0->offset, m.params + e1->offset, e0->numel), 1e-5);

    ViTDims dd = vit_dense_dims(&d);
    cr_expect_eq(dd.points, PTS); cr_expect_eq(dd.groups, G); cr_expect_eq(dd.group_k, K);
    cr_expect_eq(dd.pn.c3, 4 * PNW); cr_expect_eq(dd.pos_hidden, 128);
    ViT dense;
    cr_assert_eq(vit_init(&dense, &dd, BATCH, &err), 0, "%s", err.msg);
    cr_assert_eq(ewa_collapse(&m, &dense, &err), 0, "%s", err.msg);
    const char *emb[] = {"cls_pos", "patch_embed.conv3.weight", "pos_embed.fc2.weight"};
    for (int i = 0; i < 3; i++) {
        const ParamSpec *a = vit_find_param(&m, emb[i]), *b = vit_find_param(&dense, emb[i]);
        cr_assert(a && b, "%s missing", emb[i]);
        cr_expect(!memcmp(m.params + a->offset, dense.params + b->offset, a->numel * sizeof(float)),
                  "collapse changed %s", emb[i]);
    }
    Rng r; rng_seed(&r, 32);
    float *x = point_input(&d, BATCH, &r);
    vit_forward(&m, x, NULL, BATCH);
    float lm[BATCH * CLASSES];
    memcpy(lm, m.a.logits, sizeof lm);
    vit_forward(&dense, x, NULL, BATCH);
    double scale = 0;
    for (int i = 0; i < BATCH * CLASSES; i++) scale = fmax(scale, fabs(lm[i]));
    double e = max_abs_diff(dense.a.logits, lm, BATCH * CLASSES);
    cr_expect_lt(e, 1e-5 * scale, "collapsed 3D model's logits differ by %g (scale %g)", e, scale);
    free(x);
    vit_free(&dense);
    vit_free(&m);
}

/* ---- command line ------------------------------------------------------- */

static char *tmp;
static int n_spawned;

static void cli_setup(void) { tmp = tu_tmpdir(); n_spawned = 0; }
static void cli_teardown(void) { tu_rmrf(tmp); free(tmp); }

/* `ewa train` of a tiny shapes3d model into tmp/name with extra --set
 * overrides (NULL-terminated); asserts exit 0 and returns the run dir. */
static char *train3d(const char *name, const char *const *extra) {
    static const char ini[] = "; tiny 3D recipe for test_model3d\n[data]\ndataset = shapes3d\n";
    char *cfg = tu_write(tmp, "tiny3d.ini", ini, strlen(ini));
    char *run = tu_path(tmp, name);
    const char *base[] = {
        "train", "--config", cfg, "--out", run,
        "--set", "data.points=128", "--set", "data.groups=8", "--set", "data.group_size=8",
        "--set", "data.train_size=140", "--set", "data.test_size=70",
        "--set", "model.dim=16", "--set", "model.depth=1", "--set", "model.heads=2",
        "--set", "model.pn_width=8", "--set", "train.epochs=1", "--set", "train.threads=1",
        "--set", "train.batch_size=32"};
    Proc p = run_base_extra(tmp, &n_spawned, base, sizeof base / sizeof base[0], extra);
    cr_assert_eq(p.status, 0, "ewa train exited %d; stderr:\n%s", p.status, p.err);
    cr_expect(strstr(p.out, "status=ok") && strstr(p.out, "n=70"), "stdout:\n%s", p.out);
    proc_free(&p);
    free(cfg);
    return run;
}

static const char *cell(const CsvTable *t, const char *col) {
    int c = csv_col(t, col);
    cr_assert_geq(c, 0, "summary.csv has no column '%s'", col);
    return csv_cell(t, 0, c);
}

/* Checks summary.csv and the checkpoint of run, then `ewa eval` on it:
 * n=70 and the same top-1 as the summary's final_top1. */
static void check_run(const char *run, const char *method) {
    char *path = tu_path(run, "summary.csv");
    CsvTable t;
    Err err = {0};
    cr_assert_eq(csv_read_file(path, &t, &err), 0, "cannot read %s: %s", path, err.msg);
    cr_assert_eq(t.nrows, 1, "summary.csv has %d rows", t.nrows);
    cr_expect_str_eq(cell(&t, "dataset"), "shapes3d");
    cr_expect_str_eq(cell(&t, "status"), "ok");
    cr_expect_str_eq(cell(&t, "method"), method);
    cr_expect_str_eq(cell(&t, "n_test"), "70");
    cr_expect_str_eq(cell(&t, "data_sha256"), "shapes3d generator v1 seed 3517: 140 train and 70 test clouds of 128 points");
    double top1 = atof(cell(&t, "final_top1"));
    cr_expect(top1 >= 0 && top1 <= 1);
    if (strcmp(method, "dense")) {   /* the MoE really existed in training, collapsed for eval */
        long ptrain = atol(cell(&t, "params_train")), pinf = atol(cell(&t, "params_inference"));
        cr_expect_gt(ptrain, pinf, "params_train %ld, params_inference %ld", ptrain, pinf);
    }
    free(path);

    char *ck = tu_path(run, "final.safetensors");
    StFile f;
    cr_assert_eq(st_read(ck, &f, &err), 0, "%s", err.msg);
    const char *names[] = {"cls_pos", "patch_embed.conv1.weight", "patch_embed.conv4.weight",
                           "pos_embed.fc1.weight", "pos_embed.fc2.bias"};
    for (int i = 0; i < 5; i++) cr_expect(st_find(&f, names[i]), "checkpoint lacks %s", names[i]);
    const StTensor *w4 = st_find(&f, "patch_embed.conv4.weight");
    if (w4) cr_expect(w4->ndim == 2 && w4->shape[0] == 16 && w4->shape[1] == 32);
    cr_expect(!st_find(&f, "blocks.0.mlp.experts.0.fc1.weight"), "final checkpoint not collapsed");
    st_free(&f);

    Proc p = run_list(tmp, &n_spawned, (const char *const[]){"eval", "--checkpoint", ck, NULL});
    cr_assert_eq(p.status, 0, "ewa eval exited %d; stderr:\n%s", p.status, p.err);
    const char *s = strstr(p.out, "top1=");
    cr_assert(s, "no top1= in eval output:\n%s", p.out);
    double et;
    int en;
    cr_assert_eq(sscanf(s, "top1=%lf n=%d", &et, &en), 2, "eval output:\n%s", p.out);
    cr_expect_eq(en, 70);
    cr_expect_lt(fabs(et - top1), 1e-4, "eval top1 %.4f, summary final_top1 %.4f", et, top1);
    proc_free(&p);
    csv_table_free(&t);
    free(ck);
}

TestSuite(cli3d, .init = cli_setup, .fini = cli_teardown, .timeout = 120);

Test(cli3d, train_and_eval_shapes3d_dense) {
    char *run = train3d("dense", (const char *const[]){NULL});
    check_run(run, "dense");
    free(run);
}

Test(cli3d, train_and_eval_shapes3d_ewa) {
    /* depth 1: the MoE goes in the last (only) block */
    char *run = train3d("ewa", (const char *const[]){"--set", "moe.method=ewa", "--set", "moe.blocks=last:1",
                                                      "--set", "moe.experts=2", NULL});
    check_run(run, "ewa");
    free(run);
}
