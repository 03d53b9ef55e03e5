/* MoE layers (RMoE, routed top-k with capacity and auxiliary losses, shared
 * expert), placement, EWA invariants and collapse (docs/DESIGN.md 2.2 - 2.6).
 * Gradient tolerance: tests/gradcheck.h (GC_TOL); the probe loss of a routed
 * layer includes its auxiliary loss, and each check also asserts that no
 * finite-difference perturbation changed a routing decision. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include "../core/checkpoint.h"
#include "../core/ewa.h"
#include "../core/layers/layers.h"
#include "../core/layers/moe.h"
#include "../core/vit.h"
#include "gradcheck.h"
#include "testutil.h"

static float *zf(size_t n) { float *p = calloc(n ? n : 1, sizeof(float)); cr_assert(p); return p; }

/* Like gc_check, but an index whose +-h perturbation changes a routing
 * decision (flipped() reports it; reset before each evaluation) is skipped:
 * the loss is not differentiable across a routing change. At most a quarter
 * of the checked indices may be skipped. */
static double gc_check_routed(float *x, const float *analytic, size_t n, gc_loss_fn loss, void *ctx,
                              size_t max_checks, int *flipflag) {
    double gmax = 1e-12, dmax = 0;
    for (size_t i = 0; i < n; i++) if (fabs(analytic[i]) > gmax) gmax = fabs(analytic[i]);
    size_t step = (max_checks && n > max_checks) ? n / max_checks : 1, tried = 0, skipped = 0;
    for (size_t i = 0; i < n; i += step) {
        float save = x[i];
        *flipflag = 0;
        x[i] = save + GC_H; double lp = loss(ctx);
        x[i] = save - GC_H; double lm = loss(ctx);
        x[i] = save;
        tried++;
        if (*flipflag) { skipped++; continue; }
        double d = fabs((lp - lm) / (2.0 * GC_H) - analytic[i]);
        if (d > dmax) dmax = d;
    }
    loss(ctx);
    cr_expect_leq(skipped * 4, tried, "%zu of %zu checks changed a routing decision", skipped, tried);
    return dmax / gmax;
}

/* ---- a standalone layer with its own buffers ---- */
typedef struct {
    MoeSpec s;
    int B, T, D, H, training;
    MoeW w, g;
    MoeActs a;
    MoeScratch sc;
    float *fa, *fs, *x, *y, *R;
    int *ia, *perm;
    /* routing decisions of the reference forward, to detect flips */
    int *choice0, *ucrow0, flipped, ruk;
} Layer;

static void ffn_alloc(FFNW *f, int D, int H) {
    f->fc1_w = zf((size_t)H * D); f->fc1_b = zf(H); f->fc2_w = zf((size_t)D * H); f->fc2_b = zf(D);
}

static void layer_init(Layer *L, MoeSpec s, int B, int T, int D, int H, uint64_t seed) {
    memset(L, 0, sizeof *L);
    L->s = s; L->B = B; L->T = T; L->D = D; L->H = H; L->training = 1;
    int E = s.experts, N = B * T;
    Rng r; rng_seed(&r, seed);
    L->w.experts = calloc(E, sizeof(FFNW));
    L->g.experts = calloc(E, sizeof(FFNW));
    for (int e = 0; e < E; e++) {
        ffn_alloc(&L->w.experts[e], D, H); ffn_alloc(&L->g.experts[e], D, H);
        gc_fill(L->w.experts[e].fc1_w, (size_t)H * D, &r, 0.5f);
        gc_fill(L->w.experts[e].fc1_b, H, &r, 0.5f);
        gc_fill(L->w.experts[e].fc2_w, (size_t)D * H, &r, 0.5f);
        gc_fill(L->w.experts[e].fc2_b, D, &r, 0.5f);
    }
    if (s.kind == MOE_ROUTED) {
        L->w.router_w = zf((size_t)E * D); L->g.router_w = zf((size_t)E * D);
        gc_fill(L->w.router_w, (size_t)E * D, &r, 1.0f);
    }
    if (s.shared) {
        ffn_alloc(&L->w.shared, D, H); ffn_alloc(&L->g.shared, D, H);
        gc_fill(L->w.shared.fc1_w, (size_t)H * D, &r, 0.5f);
        gc_fill(L->w.shared.fc1_b, H, &r, 0.5f);
        gc_fill(L->w.shared.fc2_w, (size_t)D * H, &r, 0.5f);
        gc_fill(L->w.shared.fc2_b, D, &r, 0.5f);
    }
    size_t ni;
    size_t nf = moe_acts_layout(&L->a, NULL, NULL, &ni, &s, B, T, D, H);
    L->fa = zf(nf); L->ia = calloc(ni + 1, sizeof(int));
    moe_acts_layout(&L->a, L->fa, L->ia, &ni, &s, B, T, D, H);
    size_t ns = moe_scratch_layout(&L->sc, NULL, &s, B, T, D, H);
    L->fs = zf(ns);
    moe_scratch_layout(&L->sc, L->fs, &s, B, T, D, H);
    L->x = zf((size_t)N * D); L->y = zf((size_t)N * D); L->R = zf((size_t)N * D);
    gc_fill(L->x, (size_t)N * D, &r, 1.0f);
    gc_fill(L->R, (size_t)N * D, &r, 1.0f);
    L->perm = malloc(sizeof(int) * N);
    if (s.partition_sample)   /* B permutations of 0..T-1 */
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) L->perm[b * T + t] = t;
            rng_shuffle(&r, L->perm + b * T, T);
        }
    else {
        for (int i = 0; i < N; i++) L->perm[i] = i;
        rng_shuffle(&r, L->perm, N);
    }
    L->ruk = (s.route_image ? B : N) * (s.kind == MOE_ROUTED ? s.top_k : 0);
    L->choice0 = calloc(L->ruk + 1, sizeof(int)); L->ucrow0 = calloc(L->ruk + 1, sizeof(int));
}

static void ffn_free(FFNW *f) { free(f->fc1_w); free(f->fc1_b); free(f->fc2_w); free(f->fc2_b); }

static void layer_free(Layer *L) {
    for (int e = 0; e < L->s.experts; e++) { ffn_free(&L->w.experts[e]); ffn_free(&L->g.experts[e]); }
    free(L->w.experts); free(L->g.experts);
    free(L->w.router_w); free(L->g.router_w);
    if (L->s.shared) { ffn_free(&L->w.shared); ffn_free(&L->g.shared); }
    free(L->fa); free(L->ia); free(L->fs); free(L->x); free(L->y); free(L->R);
    free(L->perm); free(L->choice0); free(L->ucrow0);
}

static double layer_loss(void *c) {
    Layer *L = c;
    float aux = moe_forward(L->y, &L->a, L->x, &L->s, &L->w, L->B, L->T, L->D, L->H, L->training,
                            NULL, L->perm);
    for (int i = 0; i < L->ruk; i++)
        if (L->a.choice[i] != L->choice0[i] || (L->a.uc_row[i] < 0) != (L->ucrow0[i] < 0)) L->flipped = 1;
    return gc_dot(L->y, L->R, (size_t)L->B * L->T * L->D) + aux;
}

static void check_tensor(Layer *L, float *p, float *g, size_t n, const char *what) {
    double e = gc_check_routed(p, g, n, layer_loss, L, 60, &L->flipped);
    cr_expect_lt(e, GC_TOL, "%s: relative error %.2e", what, e);
}

static void ffn_check(Layer *L, FFNW *w, FFNW *g, const char *who) {
    size_t D = L->D, H = L->H;
    char b[64];
    snprintf(b, sizeof b, "%s.fc1.weight", who); check_tensor(L, w->fc1_w, g->fc1_w, H * D, b);
    snprintf(b, sizeof b, "%s.fc1.bias", who); check_tensor(L, w->fc1_b, g->fc1_b, H, b);
    snprintf(b, sizeof b, "%s.fc2.weight", who); check_tensor(L, w->fc2_w, g->fc2_w, D * H, b);
    snprintf(b, sizeof b, "%s.fc2.bias", who); check_tensor(L, w->fc2_b, g->fc2_b, D, b);
}

static void layer_gradcheck(MoeSpec s, int B, int T, uint64_t seed) {
    Layer L;
    int D = 6, H = 8, N = B * T;
    layer_init(&L, s, B, T, D, H, seed);
    layer_loss(&L);
    memcpy(L.choice0, L.a.choice, sizeof(int) * L.ruk);
    memcpy(L.ucrow0, L.a.uc_row, sizeof(int) * L.ruk);
    float *dx = zf((size_t)N * D);
    moe_backward(dx, &L.g, L.R, &L.a, L.x, &L.s, &L.w, &L.sc, B, T, D, H);
    check_tensor(&L, L.x, dx, (size_t)N * D, "x");
    for (int e = 0; e < s.experts; e++) {
        char who[32];
        snprintf(who, sizeof who, "experts.%d", e);
        ffn_check(&L, &L.w.experts[e], &L.g.experts[e], who);
    }
    if (s.kind == MOE_ROUTED) check_tensor(&L, L.w.router_w, L.g.router_w, (size_t)s.experts * D, "router");
    if (s.shared) ffn_check(&L, &L.w.shared, &L.g.shared, "shared");
    free(dx);
    layer_free(&L);
}

Test(moe_gradcheck, rmoe_batch) {
    layer_gradcheck((MoeSpec){.kind = MOE_RANDOM, .experts = 3}, 2, 5, 1);
}
Test(moe_gradcheck, rmoe_sample) {
    layer_gradcheck((MoeSpec){.kind = MOE_RANDOM, .experts = 2, .partition_sample = 1}, 3, 5, 2);
}
Test(moe_gradcheck, routed_top1_token_aux_zloss) {
    layer_gradcheck((MoeSpec){.kind = MOE_ROUTED, .experts = 3, .top_k = 1, .capacity_factor = 1.25f,
                              .aux_coef = 0.5f, .zloss_coef = 0.1f}, 2, 6, 3);
}
Test(moe_gradcheck, routed_top2_capacity_drops) {
    MoeSpec s = {.kind = MOE_ROUTED, .experts = 4, .top_k = 2, .capacity_factor = 0.75f,
                 .aux_coef = 0.3f, .zloss_coef = 0.05f};
    layer_gradcheck(s, 2, 6, 4);
    /* this configuration must actually drop something */
    Layer L;
    layer_init(&L, s, 2, 6, 6, 8, 4);
    layer_loss(&L);
    cr_expect_gt(L.a.dropped, 0);
    layer_free(&L);
}
Test(moe_gradcheck, routed_image_shared) {
    layer_gradcheck((MoeSpec){.kind = MOE_ROUTED, .experts = 3, .top_k = 1, .capacity_factor = 1.0f,
                              .aux_coef = 0.5f, .shared = 1, .route_image = 1}, 4, 3, 5);
}
Test(moe_gradcheck, routed_top2_image_shared) {
    layer_gradcheck((MoeSpec){.kind = MOE_ROUTED, .experts = 3, .top_k = 2, .capacity_factor = 1.25f,
                              .aux_coef = 0.2f, .zloss_coef = 0.1f, .shared = 1, .route_image = 1},
                    3, 4, 6);
}

/* ---- router on hand-made inputs ---- */
Test(moe_router, capacity_and_drops) {
    /* D = 2, E = 2, router = identity: logits = x. 4 tokens, 3 prefer
     * expert 0; capacity ceil(1 * 1.0 * 4 / 2) = 2: token 2 (the third in
     * unit order wanting expert 0) is dropped and gets y = 0. */
    MoeSpec s = {.kind = MOE_ROUTED, .experts = 2, .top_k = 1, .capacity_factor = 1.0f};
    Layer L;
    layer_init(&L, s, 1, 4, 2, 3, 7);
    float rw[4] = {1, 0, 0, 1};
    memcpy(L.w.router_w, rw, sizeof rw);
    float x[8] = {2, 0, 1, 0, 3, 0, 0, 1};
    memcpy(L.x, x, sizeof x);
    layer_loss(&L);
    cr_expect_eq(L.a.capacity, 2);
    cr_expect_eq(L.a.dropped, 1);
    cr_expect_eq(L.a.assigned, 4);
    int want[4] = {0, 0, 0, 1};
    for (int u = 0; u < 4; u++) cr_expect_eq(L.a.choice[u], want[u], "unit %d", u);
    cr_expect_lt(L.a.uc_row[2], 0);
    for (int i = 0; i < 2; i++) cr_expect_eq(L.y[2 * 2 + i], 0.0f);
    cr_expect_neq(L.y[0], 0.0f);
    /* f = (3/4, 1/4) from first choices, before capacity */
    cr_expect_float_eq(L.a.frac[0], 0.75f, 1e-7);
    /* gate (k = 1) is the raw probability: y = p0 * expert0(x) */
    float p0 = 1.0f / (1.0f + expf(-2.0f));
    cr_expect_float_eq(L.a.gate[0], p0, 1e-6);
    /* evaluation (training = 0) has no capacity limit */
    L.training = 0;
    layer_loss(&L);
    cr_expect_eq(L.a.dropped, 0);
    cr_expect_neq(L.y[4], 0.0f);
    layer_free(&L);
}

Test(moe_router, top2_gates_renormalised_and_aux_value) {
    MoeSpec s = {.kind = MOE_ROUTED, .experts = 3, .top_k = 2, .capacity_factor = 0, .aux_coef = 0.01f};
    Layer L;
    layer_init(&L, s, 2, 3, 3, 4, 8);
    float rw[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    memcpy(L.w.router_w, rw, sizeof rw);
    layer_loss(&L);
    double f[3] = {0}, P[3] = {0};
    for (int u = 0; u < 6; u++) {
        const float *p = L.a.probs + u * 3;
        int c0 = L.a.choice[2 * u], c1 = L.a.choice[2 * u + 1];
        cr_expect(p[c0] >= p[c1]);
        cr_expect_float_eq(L.a.gate[2 * u] + L.a.gate[2 * u + 1], 1.0f, 1e-6);
        cr_expect_float_eq(L.a.gate[2 * u] / L.a.gate[2 * u + 1], p[c0] / p[c1], 1e-5);
        f[c0] += 1.0 / 6;
        for (int e = 0; e < 3; e++) P[e] += p[e] / 6;
    }
    double aux = 0.01 * 3 * (f[0] * P[0] + f[1] * P[1] + f[2] * P[2]);
    cr_expect_float_eq(L.a.aux, aux, 1e-7);
    cr_expect_eq(L.a.dropped, 0);
    layer_free(&L);
}

/* ---- RMoE partition ---- */
static void check_partition(const int *slot, const int *off, int B, int T, int E, int sample) {
    int N = B * T;
    int *seen = calloc(N, sizeof(int));
    for (int r = 0; r < N; r++) { cr_assert(slot[r] >= 0 && slot[r] < N); seen[slot[r]]++; }
    for (int i = 0; i < N; i++) cr_expect_eq(seen[i], 1, "token %d seen %d times", i, seen[i]);
    int mn = N, mx = 0;
    for (int e = 0; e < E; e++) {
        int n = off[e + 1] - off[e];
        if (n < mn) mn = n;
        if (n > mx) mx = n;
        if (sample)   /* each image contributes T/E or T/E+1 tokens to every expert */
            for (int b = 0; b < B; b++) {
                int c = 0;
                for (int r = off[e]; r < off[e + 1]; r++) c += slot[r] / T == b;
                cr_expect(c == T / E || c == T / E + 1, "image %d expert %d: %d tokens", b, e, c);
            }
    }
    cr_expect_eq(off[E], N);
    if (!sample) cr_expect_leq(mx - mn, 1);
    free(seen);
}

Test(moe_partition, batch_and_sample) {
    int B = 3, T = 17, E = 4, N = B * T;
    int *s1 = malloc(sizeof(int) * N), *s2 = malloc(sizeof(int) * N), *s3 = malloc(sizeof(int) * N);
    int o1[5], o2[5], o3[5];
    for (int sample = 0; sample < 2; sample++) {
        Rng r;
        rng_seed_stream(&r, 42, 7);
        moe_random_partition(s1, o1, B, T, E, sample, &r, NULL);
        check_partition(s1, o1, B, T, E, sample);
        rng_seed_stream(&r, 42, 7);   /* same seed and step: same partition */
        moe_random_partition(s2, o2, B, T, E, sample, &r, NULL);
        cr_expect(!memcmp(s1, s2, sizeof(int) * N) && !memcmp(o1, o2, sizeof o1));
        rng_seed_stream(&r, 42, 8);   /* next step: a different one */
        moe_random_partition(s3, o3, B, T, E, sample, &r, NULL);
        check_partition(s3, o3, B, T, E, sample);
        cr_expect(memcmp(s1, s3, sizeof(int) * N), "partition did not change between steps");
    }
    free(s1); free(s2); free(s3);
}

/* Data parallelism: the shards of a global batch together assign every
 * token to the expert the unsharded partition gives it. */
Test(moe_partition, shards_match_the_global_batch) {
    enum { Bg = 5, T = 7, E = 3, N = Bg * T };
    int gs[N], go[E + 1], ls[N], lo[E + 1], scratch[N + E + 1], want[N], got[N];
    const int cut[2][2] = {{0, 2}, {2, 3}};   /* (off, B): images 0-1 and 2-4 */
    for (int sample = 0; sample < 2; sample++) {
        Rng r;
        rng_seed_stream(&r, 9, 3);
        moe_random_partition(gs, go, Bg, T, E, sample, &r, NULL);
        for (int e = 0; e < E; e++)
            for (int i = go[e]; i < go[e + 1]; i++) want[gs[i]] = e;
        for (int i = 0; i < N; i++) got[i] = -1;
        for (int c = 0; c < 2; c++) {
            int off = cut[c][0], B = cut[c][1];
            rng_seed_stream(&r, 9, 3);
            moe_random_partition_shard(ls, lo, B, T, E, sample, &r, off, Bg, scratch);
            cr_assert_eq(lo[E], B * T);
            for (int e = 0; e < E; e++)
                for (int i = lo[e]; i < lo[e + 1]; i++) {
                    cr_assert(ls[i] >= 0 && ls[i] < B * T);
                    cr_assert_eq(got[off * T + ls[i]], -1, "token twice");
                    got[off * T + ls[i]] = e;
                }
        }
        cr_assert(!memcmp(got, want, sizeof want), "sample=%d: shards disagree with the global partition", sample);
        /* one shard covering the whole batch is the global partition itself */
        rng_seed_stream(&r, 9, 3);
        moe_random_partition_shard(ls, lo, Bg, T, E, sample, &r, 0, Bg, scratch);
        cr_assert(!memcmp(ls, gs, sizeof gs) && !memcmp(lo, go, sizeof go));
    }
}

/* The model draws its partition from (seed, step, block). */
static void tiny_dims(ViTDims *d, int depth) {
    Err err = {0};
    cr_assert_eq(vit_dims(d, 1, 8, 8, 4, 8, depth, 2, 2.0f, 3, 0, &err), 0, "%s", err.msg);
}

Test(moe_partition, model_steps) {
    ViTDims d; Err err = {0};
    tiny_dims(&d, 2);
    MoeSpec s = {.kind = MOE_RANDOM, .experts = 4};
    cr_assert_eq(vit_set_moe(&d, &s, "every_other", &err), 0, "%s", err.msg);
    ViT m;
    cr_assert_eq(vit_init(&m, &d, 4, &err), 0);
    vit_init_weights(&m, 1);
    float img[4 * 64];
    Rng r; rng_seed(&r, 3); gc_fill(img, 256, &r, 1);
    int N = 4 * m.T, *p0 = malloc(sizeof(int) * N);
    m.moe_seed = 9; m.moe_step = 0;
    vit_forward(&m, img, NULL, 4);
    memcpy(p0, m.a.blocks[1].moe.slot_tok, sizeof(int) * N);
    vit_forward(&m, img, NULL, 4);
    cr_expect(!memcmp(p0, m.a.blocks[1].moe.slot_tok, sizeof(int) * N));
    m.moe_step = 1;
    vit_forward(&m, img, NULL, 4);
    cr_expect(memcmp(p0, m.a.blocks[1].moe.slot_tok, sizeof(int) * N));
    free(p0);
    vit_free(&m);
}

/* ---- placement and naming ---- */
Test(moe_placement, blocks_specs) {
    unsigned char m[8];
    Err err = {0};
    cr_assert_eq(vit_parse_moe_blocks("every_other", 6, m, &err), 0);
    for (int l = 0; l < 6; l++) cr_expect_eq(m[l], l % 2);
    cr_assert_eq(vit_parse_moe_blocks("last:2", 6, m, &err), 0);
    for (int l = 0; l < 6; l++) cr_expect_eq(m[l], l >= 4);
    cr_assert_eq(vit_parse_moe_blocks("0, 3,5", 6, m, &err), 0);
    for (int l = 0; l < 6; l++) cr_expect_eq(m[l], l == 0 || l == 3 || l == 5);
    cr_expect_eq(vit_parse_moe_blocks("last:7", 6, m, &err), ERR_USAGE);
    cr_expect_eq(vit_parse_moe_blocks("1,9", 6, m, &err), ERR_USAGE);
    cr_expect(strstr(err.msg, "moe.blocks"));
}

Test(moe_placement, names_and_identical_experts) {
    ViTDims d; Err err = {0};
    tiny_dims(&d, 3);
    MoeSpec s = {.kind = MOE_ROUTED, .experts = 3, .top_k = 1, .shared = 1};
    cr_assert_eq(vit_set_moe(&d, &s, "last:2", &err), 0);
    ViT m;
    cr_assert_eq(vit_init(&m, &d, 2, &err), 0);
    vit_init_weights(&m, 5);
    cr_expect(vit_find_param(&m, "blocks.0.mlp.fc1.weight"));
    cr_expect(!vit_find_param(&m, "blocks.1.mlp.fc1.weight"));
    const ParamSpec *rw = vit_find_param(&m, "blocks.1.mlp.router.weight");
    cr_assert(rw);
    cr_expect(rw->shape[0] == 3 && rw->shape[1] == 8);
    cr_expect(vit_find_param(&m, "blocks.2.mlp.shared.fc2.bias"));
    const char *t[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    for (int l = 1; l < 3; l++)
        for (int k = 0; k < 4; k++) {
            char n0[96], n[96];
            snprintf(n0, sizeof n0, "blocks.%d.mlp.experts.0.%s", l, t[k]);
            const ParamSpec *a = vit_find_param(&m, n0);
            cr_assert(a, "%s", n0);
            for (int e = 1; e < 3; e++) {
                snprintf(n, sizeof n, "blocks.%d.mlp.experts.%d.%s", l, e, t[k]);
                const ParamSpec *b = vit_find_param(&m, n);
                cr_assert(b, "%s", n);
                cr_expect(!memcmp(m.params + a->offset, m.params + b->offset, a->numel * sizeof(float)),
                          "%s differs from expert 0", n);
            }
        }
    /* parameter counts: total and active */
    size_t tot, act, dtot, dact;
    vit_param_counts(&d, &tot, &act);
    cr_expect_eq(tot, m.num_params);
    ViTDims dd = vit_dense_dims(&d);
    vit_param_counts(&dd, &dtot, &dact);
    size_t ffn = 2 * 8 * 16 + 16 + 8;
    cr_expect_eq(tot, dtot + 2 * (2 * ffn + 3 * 8 + ffn));
    cr_expect_eq(act, dtot + 2 * (3 * 8 + ffn));
    vit_free(&m);
}

Test(moe_placement, flops) {
    ViTDims d, dd; Err err = {0};
    tiny_dims(&d, 4);
    dd = d;
    MoeSpec s = {.kind = MOE_RANDOM, .experts = 4};
    cr_assert_eq(vit_set_moe(&d, &s, "every_other", &err), 0);
    cr_expect_eq(vit_flops_per_image(&d), vit_flops_per_image(&dd), "RMoE FLOPs must equal dense");
    MoeSpec r = {.kind = MOE_ROUTED, .experts = 4, .top_k = 2};
    ViTDims dr = dd;
    cr_assert_eq(vit_set_moe(&dr, &r, "last:1", &err), 0);
    double T = 5, D = 8, H = 16;
    cr_expect_float_eq(vit_flops_per_image(&dr) - vit_flops_per_image(&dd), 4 * T * D * H + 2 * T * D * 4, 1e-6);
}

/* ---- EWA invariants ---- */
static void moe_model(ViT *m, int E, uint64_t seed) {
    ViTDims d; Err err = {0};
    tiny_dims(&d, 4);
    MoeSpec s = {.kind = MOE_RANDOM, .experts = E};
    cr_assert_eq(vit_set_moe(&d, &s, "every_other", &err), 0);
    cr_assert_eq(vit_init(m, &d, 3, &err), 0);
    vit_init_weights(m, seed);
    Rng r; rng_seed(&r, seed + 1);
    for (size_t i = 0; i < m->num_params; i++) m->params[i] += 0.1f * rng_normal(&r);
}

static void ewa_case(int E, float beta) {
    ViT m;
    moe_model(&m, E, 21);
    float *before = malloc(m.num_params * sizeof(float));
    memcpy(before, m.params, m.num_params * sizeof(float));
    ewa_update(&m, beta);
    double c = ewa_factor(E, beta);
    if (fabs(c) < 1e-6) c = 0;
    size_t D = m.d.dim, H = m.d.hidden;
    size_t sizes[4] = {H * D, H, D * H, D};
    for (int l = 0; l < m.d.depth; l++) {
        if (!m.d.moe_block[l]) continue;
        for (int k = 0; k < 4; k++) {
            for (size_t i = 0; i < sizes[k]; i++) {
                double mb = 0, ma = 0, dev_max = 0;
                float *pa[64];
                for (int e = 0; e < E; e++) {
                    FFNW *f = &m.w.blocks[l].moe.experts[e];
                    float *p = k == 0 ? f->fc1_w : k == 1 ? f->fc1_b : k == 2 ? f->fc2_w : f->fc2_b;
                    pa[e] = p + i;
                    mb += before[p - m.params + i];
                    ma += p[i];
                }
                mb /= E; ma /= E;
                cr_assert(fabs(ma - mb) <= 1e-6 * (1 + fabs(mb)), "mean moved: %g -> %g", mb, ma);
                for (int e = 0; e < E; e++) {
                    double dev_b = before[pa[e] - m.params] - mb, dev_a = *pa[e] - ma;
                    if (fabs(dev_b) > dev_max) dev_max = fabs(dev_b);
                    cr_assert(fabs(dev_a - c * dev_b) <= 1e-6 * (1 + fabs(mb)),
                              "beta %g: deviation %g -> %g, want factor %g", beta, dev_b, dev_a, c);
                }
                if (c == 0)
                    for (int e = 1; e < E; e++) cr_assert_eq(*pa[e], *pa[0]);
            }
        }
    }
    /* the paper's form, on one element */
    FFNW *f = m.w.blocks[1].moe.experts;
    size_t o0 = f[0].fc1_w - m.params;
    double other = 0;
    for (int e = 1; e < E; e++) other += before[f[e].fc1_w - m.params];
    double eq6 = (1 - beta) * before[o0] + beta / (E - 1) * other;
    cr_expect(fabs(f[0].fc1_w[0] - eq6) < 1e-6, "Eq. 6: %g vs %g", f[0].fc1_w[0], eq6);
    /* nothing else moved */
    for (int i = 0; i < m.n_params; i++)
        if (!strstr(m.specs[i].name, ".experts."))
            cr_expect(!memcmp(before + m.specs[i].offset, m.params + m.specs[i].offset,
                              m.specs[i].numel * sizeof(float)), "%s changed", m.specs[i].name);
    free(before);
    vit_free(&m);
}

Test(ewa, invariants) {
    ewa_case(4, 0.3f);
    ewa_case(3, 0.1f);
    ewa_case(4, 0.75f);        /* (N-1)/N: experts equal */
    ewa_case(3, 2.0f / 3.0f);
    ewa_case(2, 0.5f);
}

Test(ewa, beta_zero_is_noop) {
    ViT m;
    moe_model(&m, 4, 3);
    float *before = malloc(m.num_params * sizeof(float));
    memcpy(before, m.params, m.num_params * sizeof(float));
    ewa_update(&m, 0.0f);
    cr_expect(!memcmp(before, m.params, m.num_params * sizeof(float)));
    free(before);
    vit_free(&m);
}

/* ---- collapse ---- */
Test(collapse, identical_experts_same_logits_and_dense_tensors) {
    ViT m, c;
    Err err = {0};
    moe_model(&m, 4, 5);
    ewa_update(&m, 0.75f);   /* identical experts */
    ViTDims dd = vit_dense_dims(&m.d);
    cr_assert_eq(vit_init(&c, &dd, 3, &err), 0);
    cr_assert_eq(ewa_collapse(&m, &c, &err), 0, "%s", err.msg);
    float img[3 * 64];
    Rng r; rng_seed(&r, 6); gc_fill(img, 192, &r, 1);
    vit_forward(&m, img, NULL, 3);
    vit_forward(&c, img, NULL, 3);
    double e = tu_rel_maxdiff(m.a.logits, c.a.logits, 9, 1e-12);
    cr_expect_lt(e, 1e-6, "logits differ after collapse: %.2e", e);
    /* the collapsed model has exactly a fresh dense model's tensors */
    ViT dense;
    cr_assert_eq(vit_init(&dense, &dd, 3, &err), 0);
    cr_assert_eq(c.n_params, dense.n_params);
    for (int i = 0; i < c.n_params; i++) {
        cr_expect_str_eq(c.specs[i].name, dense.specs[i].name);
        cr_expect_eq(c.specs[i].numel, dense.specs[i].numel);
        cr_expect(!strstr(c.specs[i].name, "experts"));
    }
    /* and its checkpoint loads into a dense model by name */
    char *dir = tu_tmpdir(), *path = tu_path(dir, "c.safetensors");
    cr_assert_eq(vit_save(&c, path, 0, NULL, NULL, &err), 0, "%s", err.msg);
    StFile f;
    cr_assert_eq(st_read(path, &f, &err), 0);
    cr_expect_eq(vit_load_tensors(&dense, &f, path, 0, NULL, &err), 0, "%s", err.msg);
    st_free(&f);
    tu_rmrf(dir);
    free(dir); free(path);
    /* different experts: collapse is their mean */
    vit_free(&m);
    moe_model(&m, 3, 8);
    ViTDims d3 = vit_dense_dims(&m.d);
    ViT c3;
    cr_assert_eq(vit_init(&c3, &d3, 3, &err), 0);
    cr_assert_eq(ewa_collapse(&m, &c3, &err), 0);
    FFNW *x = m.w.blocks[1].moe.experts;
    float want = (float)(((double)x[0].fc2_b[2] + x[1].fc2_b[2] + x[2].fc2_b[2]) / 3);
    cr_expect_eq(c3.w.blocks[1].mlp.fc2_b[2], want);
    vit_free(&c3); vit_free(&dense); vit_free(&c); vit_free(&m);
}

/* ---- whole model with MoE layers ---- */
typedef struct { ViT *m; float *img; int *y; int B; int *choice0[VIT_MAX_DEPTH], *row0[VIT_MAX_DEPTH]; int flipped; } ModelCtx;
static double model_loss(void *c_) {
    ModelCtx *c = c_;
    double l = vit_forward(c->m, c->img, c->y, c->B);
    for (int b = 0; b < c->m->d.depth; b++) {
        if (!c->choice0[b]) continue;
        const MoeActs *a = &c->m->a.blocks[b].moe;
        int n = a->units * c->m->d.moe.top_k;
        for (int i = 0; i < n; i++)
            if (a->choice[i] != c->choice0[b][i] || (a->uc_row[i] < 0) != (c->row0[b][i] < 0)) c->flipped = 1;
    }
    return l;
}

static void model_check(MoeSpec s, const char *blocks, uint64_t seed) {
    ViTDims d; Err err = {0};
    tiny_dims(&d, 2);
    cr_assert_eq(vit_set_moe(&d, &s, blocks, &err), 0, "%s", err.msg);
    ViT m;
    cr_assert_eq(vit_init(&m, &d, 3, &err), 0, "%s", err.msg);
    vit_init_weights(&m, seed);
    Rng r; rng_seed(&r, seed + 1);
    for (size_t i = 0; i < m.num_params; i++) m.params[i] += 0.3f * rng_normal(&r);
    m.label_smoothing = 0.1f;
    float img[3 * 64]; gc_fill(img, 192, &r, 1);
    int y[3] = {2, 0, 1};
    ModelCtx c = {.m = &m, .img = img, .y = y, .B = 3};
    vit_zero_grad(&m);
    float l = model_loss(&c);
    if (s.kind == MOE_ROUTED)
        for (int b = 0; b < d.depth; b++) {
            if (!d.moe_block[b]) continue;
            const MoeActs *a = &m.a.blocks[b].moe;
            int n = a->units * s.top_k;
            c.choice0[b] = malloc(sizeof(int) * n); c.row0[b] = malloc(sizeof(int) * n);
            memcpy(c.choice0[b], a->choice, sizeof(int) * n);
            memcpy(c.row0[b], a->uc_row, sizeof(int) * n);
        }
    cr_expect(s.kind != MOE_ROUTED || m.aux_loss > 0);
    cr_expect(isfinite(l));
    vit_backward(&m);
    float *g = malloc(m.num_params * sizeof(float));
    memcpy(g, m.grads, m.num_params * sizeof(float));
    for (int i = 0; i < m.n_params; i++) {
        const ParamSpec *sp = &m.specs[i];
        double e = gc_check_routed(m.params + sp->offset, g + sp->offset, sp->numel, model_loss, &c, 30,
                                   &c.flipped);
        cr_expect_lt(e, GC_TOL, "%s: relative error %.2e", sp->name, e);
    }
    for (int b = 0; b < VIT_MAX_DEPTH; b++) { free(c.choice0[b]); free(c.row0[b]); }
    free(g);
    vit_free(&m);
}

Test(moe_gradcheck, model_rmoe) {
    model_check((MoeSpec){.kind = MOE_RANDOM, .experts = 3}, "every_other", 31);
}
Test(moe_gradcheck, model_routed_shared) {
    /* image routing: few routing units, so few perturbations cross a
     * routing boundary (token routing is checked layer by layer above) */
    model_check((MoeSpec){.kind = MOE_ROUTED, .experts = 3, .top_k = 2, .capacity_factor = 1.25f,
                          .aux_coef = 0.1f, .zloss_coef = 0.01f, .shared = 1, .route_image = 1}, "0,1", 32);
}
Test(moe_gradcheck, model_routed_token_top1) {
    model_check((MoeSpec){.kind = MOE_ROUTED, .experts = 2, .top_k = 1, .capacity_factor = 0,
                          .aux_coef = 0.1f}, "1", 33);
}

/* ---- upcycling a dense checkpoint (docs/DESIGN.md 2.7) ---- */
Test(upcycle, experts_and_shared_start_as_the_dense_ffn) {
    ViTDims d; Err err = {0};
    tiny_dims(&d, 2);
    ViT dense;
    cr_assert_eq(vit_init(&dense, &d, 2, &err), 0);
    vit_init_weights(&dense, 41);
    Rng r; rng_seed(&r, 42);
    for (size_t i = 0; i < dense.num_params; i++) dense.params[i] += 0.1f * rng_normal(&r);
    char *dir = tu_tmpdir(), *path = tu_path(dir, "dense.safetensors");
    cr_assert_eq(vit_save(&dense, path, 0, NULL, NULL, &err), 0, "%s", err.msg);
    StFile f;
    cr_assert_eq(st_read(path, &f, &err), 0);
    ViTDims dm = d;
    MoeSpec s = {.kind = MOE_ROUTED, .experts = 3, .top_k = 1, .shared = 1};
    cr_assert_eq(vit_set_moe(&dm, &s, "1", &err), 0);
    ViT m;
    cr_assert_eq(vit_init(&m, &dm, 2, &err), 0);
    vit_init_weights(&m, 43);
    float router0 = m.w.blocks[1].moe.router_w[0];
    int n_up = 0;
    cr_assert_eq(vit_load_upcycle(&m, &f, path, 0, NULL, &n_up, &err), 0, "%s", err.msg);
    cr_expect_eq(n_up, 4 * 4);   /* 3 experts + shared, 4 tensors each */
    size_t HD = (size_t)d.hidden * d.dim;
    for (int e = 0; e < 3; e++)
        cr_expect(!memcmp(m.w.blocks[1].moe.experts[e].fc1_w, dense.w.blocks[1].mlp.fc1_w, HD * sizeof(float)));
    cr_expect(!memcmp(m.w.blocks[1].moe.shared.fc2_w, dense.w.blocks[1].mlp.fc2_w, HD * sizeof(float)));
    cr_expect(!memcmp(m.w.blocks[0].mlp.fc1_w, dense.w.blocks[0].mlp.fc1_w, HD * sizeof(float)));
    cr_expect_eq(m.w.blocks[1].moe.router_w[0], router0, "router keeps its fresh init");
    /* RMoE upcycled with identical experts = the dense model (logits) */
    ViTDims dr = d;
    MoeSpec sr = {.kind = MOE_RANDOM, .experts = 4};
    cr_assert_eq(vit_set_moe(&dr, &sr, "every_other", &err), 0);
    ViT mr;
    cr_assert_eq(vit_init(&mr, &dr, 2, &err), 0);
    cr_assert_eq(vit_load_upcycle(&mr, &f, path, 0, NULL, &n_up, &err), 0, "%s", err.msg);
    float img[2 * 64]; gc_fill(img, 128, &r, 1);
    vit_forward(&dense, img, NULL, 2);
    vit_forward(&mr, img, NULL, 2);
    cr_expect_lt(tu_rel_maxdiff(mr.a.logits, dense.a.logits, 6, 1e-12), 1e-6);
    /* a head of another class count is refused unless skipped */
    st_free(&f);
    tu_rmrf(dir);
    free(dir); free(path);
    vit_free(&mr); vit_free(&m); vit_free(&dense);
}

/* A method with MoE layers must have at least one: every_other selects no
 * block of a depth-1 model, which used to train a dense model silently. */
Test(moe_placement, empty_selection_is_a_usage_error) {
    ViTDims d;
    Err err = {0};
    cr_assert_eq(vit_dims(&d, 1, 8, 8, 4, 8, 1, 2, 2.0f, 3, 0, &err), 0, "%s", err.msg);
    MoeSpec s = {.kind = MOE_RANDOM, .experts = 2};
    cr_expect_eq(vit_set_moe(&d, &s, "every_other", &err), ERR_USAGE);
    cr_expect(strstr(err.msg, "selects no block"), "%s", err.msg);
    cr_expect_eq(vit_set_moe(&d, &s, "last:1", &err), 0, "%s", err.msg);
}
