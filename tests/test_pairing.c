/* Pairing of methods (issue 10): runs that differ only in moe.method start,
 * for one seed, from identical values of every tensor they share, and every
 * expert (random-partition, routed, shared) is a bit-exact copy of the dense
 * FFN that seed draws. The collapsed EWA model at step 0 is bitwise the
 * dense model; after one AdamW step at a negligible learning rate on the
 * same batch every shared tensor still matches to 1e-7. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ewa.h"
#include "../core/optim.h"
#include "../core/rng.h"
#include "../core/vit.h"

enum { DEPTH = 4, BATCH = 4, EXPERTS = 4 };
static const uint64_t SEED = 77;

/* A 1x8x8 image ViT, dim 8, patch 4, 3 classes; spec NULL = dense. */
static void model(ViT *m, const MoeSpec *spec, const char *blocks) {
    ViTDims d; Err err = {0};
    cr_assert_eq(vit_dims(&d, 1, 8, 8, 4, 8, DEPTH, 2, 2.0f, 3, 0, &err), 0, "%s", err.msg);
    if (spec) cr_assert_eq(vit_set_moe(&d, spec, blocks, &err), 0, "%s", err.msg);
    cr_assert_eq(vit_init(m, &d, BATCH, &err), 0, "%s", err.msg);
    vit_init_weights(m, SEED);
    m->moe_seed = SEED;
}

/* The dense tensor an MoE tensor starts as (NULL for a router). */
static const ParamSpec *dense_twin(const ViT *dense, const char *name) {
    char canon[VIT_NAME_LEN + 80];
    int l, e, n = 0;
    char tail[64];
    if (sscanf(name, "blocks.%d.mlp.experts.%d.%63s%n", &l, &e, tail, &n) == 3 ||
        sscanf(name, "blocks.%d.mlp.shared.%63s%n", &l, tail, &n) == 2)
        snprintf(canon, sizeof canon, "blocks.%d.mlp.%s", l, tail);
    else
        snprintf(canon, sizeof canon, "%s", name);
    return vit_find_param(dense, canon);
}

static void expect_paired(const ViT *m, const ViT *dense, const char *what) {
    int n_router = 0, n_expert = 0;
    for (int i = 0; i < m->n_params; i++) {
        const ParamSpec *s = &m->specs[i];
        const ParamSpec *t = dense_twin(dense, s->name);
        if (!t) {
            cr_expect(strstr(s->name, ".router.") != NULL, "%s: %s has no dense twin", what, s->name);
            n_router++;
            continue;
        }
        if (strcmp(s->name, t->name)) n_expert++;
        cr_assert_eq(s->numel, t->numel, "%s: %s", what, s->name);
        cr_expect(!memcmp(m->params + s->offset, dense->params + t->offset, s->numel * sizeof(float)),
                  "%s: %s differs from dense %s at init", what, s->name, t->name);
    }
    cr_expect_gt(n_expert, 0, "%s: no expert tensors checked", what);
    (void)n_router;
}

Test(pairing, every_method_starts_from_the_dense_init) {
    ViT dense;
    model(&dense, NULL, NULL);
    struct { const char *name; MoeSpec s; const char *blocks; } cases[] = {
        {"ewa/rmoe", {.kind = MOE_RANDOM, .experts = EXPERTS}, "every_other"},
        {"rmoe sample", {.kind = MOE_RANDOM, .experts = EXPERTS, .partition_sample = 1}, "last:2"},
        {"moe top-2", {.kind = MOE_ROUTED, .experts = EXPERTS, .top_k = 2, .capacity_factor = 1.25f}, "every_other"},
        {"vimoe", {.kind = MOE_ROUTED, .experts = EXPERTS, .top_k = 1, .capacity_factor = 1.25f, .shared = 1},
         "0,1,2,3"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        ViT m;
        model(&m, &cases[k].s, cases[k].blocks);
        expect_paired(&m, &dense, cases[k].name);
        vit_free(&m);
    }
    vit_free(&dense);
}

Test(pairing, router_streams_are_their_own) {
    /* two routed layers: routers differ from each other and from zero */
    ViT m;
    MoeSpec s = {.kind = MOE_ROUTED, .experts = EXPERTS, .top_k = 1, .capacity_factor = 1.25f};
    model(&m, &s, "0,1");
    const ParamSpec *a = vit_find_param(&m, "blocks.0.mlp.router.weight");
    const ParamSpec *b = vit_find_param(&m, "blocks.1.mlp.router.weight");
    cr_assert(a && b);
    cr_expect(memcmp(m.params + a->offset, m.params + b->offset, a->numel * sizeof(float)));
    double ss = 0;
    for (size_t i = 0; i < a->numel; i++) ss += m.params[a->offset + i] * m.params[a->offset + i];
    cr_expect_gt(ss, 0);
    vit_free(&m);
}

static void batch(float *x, int *y) {
    Rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < BATCH * 64; i++) x[i] = rng_normal(&r);
    for (int b = 0; b < BATCH; b++) y[b] = b % 3;
}

static void one_step(ViT *m, const float *x, const int *y, float lr, float beta) {
    AdamW opt = {.lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.05f};
    m->moe_step = 0;
    vit_forward(m, x, y, BATCH);
    vit_zero_grad(m);
    vit_backward(m);
    adamw_step(&opt, m->params, m->grads, m->adam_m, m->adam_v, m->specs, m->n_params);
    if (beta > 0) ewa_update(m, beta);
}

static double max_abs_diff(const ViT *a, const ViT *b) {
    cr_assert_eq(a->num_params, b->num_params);
    double mx = 0;
    for (size_t i = 0; i < a->num_params; i++) mx = fmax(mx, fabs((double)a->params[i] - b->params[i]));
    return mx;
}

Test(pairing, collapsed_ewa_is_dense_at_step_0_and_after_one_tiny_step) {
    ViT dense, ewa, col;
    Err err = {0};
    model(&dense, NULL, NULL);
    MoeSpec s = {.kind = MOE_RANDOM, .experts = EXPERTS};
    model(&ewa, &s, "every_other");
    ViTDims dd = vit_dense_dims(&ewa.d);
    cr_assert_eq(vit_init(&col, &dd, BATCH, &err), 0, "%s", err.msg);
    cr_assert_eq(ewa_collapse(&ewa, &col, &err), 0, "%s", err.msg);
    cr_expect(!memcmp(col.params, dense.params, dense.num_params * sizeof(float)),
              "collapsed EWA at step 0 is not bitwise the dense model");
    float x[BATCH * 64];
    int y[BATCH];
    batch(x, y);
    one_step(&dense, x, y, 1e-12f, 0);
    one_step(&ewa, x, y, 1e-12f, 0.3f);
    cr_assert_eq(ewa_collapse(&ewa, &col, &err), 0, "%s", err.msg);
    double d = max_abs_diff(&col, &dense);
    cr_expect_leq(d, 1e-7, "after one step at lr 1e-12 the shared tensors differ by %g", d);
    /* the test can fail: at lr 1e-2 the same step moves the models apart */
    ViT dense2, ewa2;
    model(&dense2, NULL, NULL);
    model(&ewa2, &s, "every_other");
    one_step(&dense2, x, y, 1e-2f, 0);
    one_step(&ewa2, x, y, 1e-2f, 0.3f);
    cr_assert_eq(ewa_collapse(&ewa2, &col, &err), 0, "%s", err.msg);
    cr_expect_gt(max_abs_diff(&col, &dense2), 1e-7);
    vit_free(&dense); vit_free(&ewa); vit_free(&col); vit_free(&dense2); vit_free(&ewa2);
}
