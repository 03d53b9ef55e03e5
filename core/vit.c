#include "vit.h"
#include "layers/layers.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-6f

/* ---- parameter layout ------------------------------------------------- */

/* One walk over the tensors in checkpoint order. With base == NULL it only
 * counts; with specs != NULL it records the table. */
typedef struct {
    float *base;
    size_t off;
    ParamSpec *specs;
    int n;
} Layout;

static float *take(Layout *L, int decay, int ndim, const int *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#include <stdarg.h>
static float *take(Layout *L, int decay, int ndim, const int *shape, const char *fmt, ...) {
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= (size_t)shape[i];
    if (L->specs) {
        ParamSpec *s = &L->specs[L->n];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->name, sizeof s->name, fmt, ap);
        va_end(ap);
        s->ndim = ndim;
        for (int i = 0; i < 4; i++) s->shape[i] = i < ndim ? shape[i] : 1;
        s->numel = numel;
        s->offset = L->off;
        s->decay = decay;
    }
    float *p = L->base ? L->base + L->off : NULL;
    L->off += numel;
    L->n++;
    return p;
}

#define T1(a) ((const int[]){a})
#define T2(a, b) ((const int[]){a, b})
#define T3(a, b, c) ((const int[]){a, b, c})
#define T4(a, b, c, d) ((const int[]){a, b, c, d})

static void layout_ffn(Layout *L, FFNW *f, const char *prefix, int D, int H) {
    f->fc1_w = take(L, 1, 2, T2(H, D), "%s.fc1.weight", prefix);
    f->fc1_b = take(L, 0, 1, T1(H), "%s.fc1.bias", prefix);
    f->fc2_w = take(L, 1, 2, T2(D, H), "%s.fc2.weight", prefix);
    f->fc2_b = take(L, 0, 1, T1(D), "%s.fc2.bias", prefix);
}

static void layout_params(Layout *L, ViTW *w, const ViTDims *d, int T) {
    int D = d->dim, P = d->patch;
    w->cls = take(L, 0, 3, T3(1, 1, D), "cls_token");
    w->pos = take(L, 0, 3, T3(1, T, D), "pos_embed");
    w->patch_w = take(L, 1, 4, T4(D, d->in_c, P, P), "patch_embed.proj.weight");
    w->patch_b = take(L, 0, 1, T1(D), "patch_embed.proj.bias");
    for (int l = 0; l < d->depth; l++) {
        BlockW *b = &w->blocks[l];
        b->ln1_w = take(L, 0, 1, T1(D), "blocks.%d.norm1.weight", l);
        b->ln1_b = take(L, 0, 1, T1(D), "blocks.%d.norm1.bias", l);
        b->qkv_w = take(L, 1, 2, T2(3 * D, D), "blocks.%d.attn.qkv.weight", l);
        b->qkv_b = take(L, 0, 1, T1(3 * D), "blocks.%d.attn.qkv.bias", l);
        b->proj_w = take(L, 1, 2, T2(D, D), "blocks.%d.attn.proj.weight", l);
        b->proj_b = take(L, 0, 1, T1(D), "blocks.%d.attn.proj.bias", l);
        b->ln2_w = take(L, 0, 1, T1(D), "blocks.%d.norm2.weight", l);
        b->ln2_b = take(L, 0, 1, T1(D), "blocks.%d.norm2.bias", l);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "blocks.%d.mlp", l);
        layout_ffn(L, &b->mlp, prefix, D, d->hidden);
    }
    w->norm_w = take(L, 0, 1, T1(D), "norm.weight");
    w->norm_b = take(L, 0, 1, T1(D), "norm.bias");
    w->head_w = take(L, 1, 2, T2(d->classes, D), "head.weight");
    w->head_b = take(L, 0, 1, T1(d->classes), "head.bias");
}

/* ---- activation layout ------------------------------------------------ */

static float *carve(float *base, size_t *off, size_t n) {
    float *p = base ? base + *off : NULL;
    *off += n;
    return p;
}

static size_t layout_acts(ViTActs *a, float *base, const ViTDims *d, int B, int T, int Np) {
    size_t off = 0, N = (size_t)B * T, D = d->dim, H = d->hidden;
    size_t K = d->classes, Kp = (size_t)d->in_c * d->patch * d->patch;
    a->patches = carve(base, &off, (size_t)B * Np * Kp);
    a->emb = carve(base, &off, (size_t)B * Np * D);
    a->x0 = carve(base, &off, N * D);
    for (int l = 0; l < d->depth; l++) {
        BlockActs *b = &a->blocks[l];
        b->ln1 = carve(base, &off, N * D);
        b->ln1_mean = carve(base, &off, N);
        b->ln1_rstd = carve(base, &off, N);
        b->qkv = carve(base, &off, N * 3 * D);
        b->att = carve(base, &off, (size_t)B * d->heads * T * T);
        b->attout = carve(base, &off, N * D);
        b->res1 = carve(base, &off, N * D);
        b->ln2 = carve(base, &off, N * D);
        b->ln2_mean = carve(base, &off, N);
        b->ln2_rstd = carve(base, &off, N);
        b->fc1 = carve(base, &off, N * H);
        b->gelu = carve(base, &off, N * H);
        b->res2 = carve(base, &off, N * D);
    }
    a->lnf = carve(base, &off, N * D);
    a->lnf_mean = carve(base, &off, N);
    a->lnf_rstd = carve(base, &off, N);
    a->pooled = carve(base, &off, (size_t)B * D);
    a->logits = carve(base, &off, (size_t)B * K);
    a->probs = carve(base, &off, (size_t)B * K);
    a->losses = carve(base, &off, (size_t)B);
    return off;
}

static size_t layout_scratch(ViTScratch *s, float *base, const ViTDims *d, int B, int T) {
    size_t off = 0, N = (size_t)B * T, D = d->dim;
    s->dres = carve(base, &off, N * D);
    s->dd = carve(base, &off, N * D);
    s->dqkv = carve(base, &off, N * 3 * D);
    s->dh1 = carve(base, &off, N * d->hidden);
    s->dh2 = carve(base, &off, N * d->hidden);
    s->dpooled = carve(base, &off, (size_t)B * D);
    s->dlogits = carve(base, &off, (size_t)B * d->classes);
    return off;
}

/* ---- construction ----------------------------------------------------- */

int vit_dims(ViTDims *d, int in_c, int in_h, int in_w, int patch, int dim, int depth,
             int heads, float mlp_ratio, int classes, int pool_mean, Err *err) {
    if (patch <= 0 || in_h % patch || in_w % patch)
        return err_set(err, ERR_USAGE, "model.patch = %d does not divide the %dx%d input", patch, in_h, in_w);
    if (dim <= 0 || heads <= 0 || dim % heads)
        return err_set(err, ERR_USAGE, "model.dim = %d is not divisible by model.heads = %d", dim, heads);
    if (depth <= 0 || depth > VIT_MAX_DEPTH)
        return err_set(err, ERR_USAGE, "model.depth = %d outside [1, %d]", depth, VIT_MAX_DEPTH);
    int hidden = (int)lroundf(dim * mlp_ratio);
    if (hidden < 1 || fabsf(hidden - dim * mlp_ratio) > 1e-3f)
        return err_set(err, ERR_USAGE, "model.dim * model.mlp_ratio = %g is not a positive integer", dim * mlp_ratio);
    if (classes < 2) return err_set(err, ERR_USAGE, "need at least 2 classes, got %d", classes);
    *d = (ViTDims){in_c, in_h, in_w, patch, dim, depth, heads, hidden, classes, pool_mean};
    return 0;
}

static float *alloc_floats(size_t n) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, (n ? n : 1) * sizeof(float))) return NULL;
    memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

int vit_init(ViT *m, const ViTDims *d, int max_batch, Err *err) {
    memset(m, 0, sizeof *m);
    m->d = *d;
    m->Np = (d->in_h / d->patch) * (d->in_w / d->patch);
    m->T = m->Np + 1;
    m->max_batch = max_batch;
    Layout L = {0};
    layout_params(&L, &m->w, d, m->T);
    m->n_params = L.n;
    m->num_params = L.off;
    m->specs = calloc((size_t)L.n, sizeof *m->specs);
    m->params = alloc_floats(L.off);
    m->grads = alloc_floats(L.off);
    m->adam_m = alloc_floats(L.off);
    m->adam_v = alloc_floats(L.off);
    m->act_floats = layout_acts(&m->a, NULL, d, max_batch, m->T, m->Np);
    m->act_mem = alloc_floats(m->act_floats);
    size_t sf = layout_scratch(&m->s, NULL, d, max_batch, m->T);
    m->scratch_mem = alloc_floats(sf);
    m->labels = calloc((size_t)max_batch, sizeof(int));
    if (!m->specs || !m->params || !m->grads || !m->adam_m || !m->adam_v || !m->act_mem ||
        !m->scratch_mem || !m->labels) {
        vit_free(m);
        return err_set(err, ERR_RUNTIME, "out of memory allocating a %zu-parameter model for batch %d",
                       L.off, max_batch);
    }
    Layout P = {.base = m->params, .specs = m->specs}, G = {.base = m->grads};
    layout_params(&P, &m->w, d, m->T);
    layout_params(&G, &m->g, d, m->T);
    layout_acts(&m->a, m->act_mem, d, max_batch, m->T, m->Np);
    layout_scratch(&m->s, m->scratch_mem, d, max_batch, m->T);
    return 0;
}

void vit_free(ViT *m) {
    free(m->specs); free(m->params); free(m->grads); free(m->adam_m); free(m->adam_v);
    free(m->act_mem); free(m->scratch_mem); free(m->labels);
    memset(m, 0, sizeof *m);
}

const ParamSpec *vit_find_param(const ViT *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->specs[i].name, name)) return &m->specs[i];
    return NULL;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

void vit_init_weights(ViT *m, uint64_t seed) {
    Rng r;
    rng_seed_stream(&r, seed, 0x1417);
    float patch_bound = 1.0f / sqrtf((float)(m->d.in_c * m->d.patch * m->d.patch));
    for (int i = 0; i < m->n_params; i++) {
        const ParamSpec *s = &m->specs[i];
        float *p = m->params + s->offset;
        for (size_t j = 0; j < s->numel; j++) {
            float v;
            if (!strncmp(s->name, "patch_embed.", 12))
                v = (2.0f * rng_uniform(&r) - 1.0f) * patch_bound;
            else if (!strcmp(s->name, "cls_token")) v = 1e-6f * rng_normal(&r);
            else if (!strcmp(s->name, "pos_embed")) v = rng_trunc_normal(&r, 0.02f);
            else if (strstr(s->name, "norm")) v = ends_with(s->name, ".weight") ? 1.0f : 0.0f;
            else if (ends_with(s->name, ".bias")) v = 0.0f;
            else v = rng_trunc_normal(&r, 0.02f);
            p[j] = v;
        }
    }
}

/* ---- forward / backward ----------------------------------------------- */

static void block_forward(const BlockW *w, BlockActs *a, const float *x, const ViTDims *d, int B, int T) {
    int N = B * T, D = d->dim, H = d->hidden;
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, N, D, LN_EPS);
    linear_forward(a->qkv, a->ln1, w->qkv_w, w->qkv_b, N, D, 3 * D);
    attention_forward(a->attout, a->att, a->qkv, B, T, D, d->heads);
    linear_forward(a->res1, a->attout, w->proj_w, w->proj_b, N, D, D);
    residual_forward(a->res1, a->res1, x, (size_t)N * D);
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, w->ln2_w, w->ln2_b, N, D, LN_EPS);
    linear_forward(a->fc1, a->ln2, w->mlp.fc1_w, w->mlp.fc1_b, N, D, H);
    gelu_forward(a->gelu, a->fc1, (size_t)N * H);
    linear_forward(a->res2, a->gelu, w->mlp.fc2_w, w->mlp.fc2_b, N, H, D);
    residual_forward(a->res2, a->res2, a->res1, (size_t)N * D);
}

/* dres holds dL/d(block output) on entry and dL/d(block input) on exit. */
static void block_backward(const BlockW *w, BlockW *g, const BlockActs *a, const float *x,
                           ViTScratch *s, const ViTDims *d, int B, int T) {
    int N = B * T, D = d->dim, H = d->hidden;
    size_t ND = (size_t)N * D, NH = (size_t)N * H;
    /* res2 = res1 + fc2(gelu(fc1(ln2(res1)))): dres passes through to res1. */
    memset(s->dh2, 0, NH * sizeof(float));
    linear_backward(s->dh2, g->mlp.fc2_w, g->mlp.fc2_b, s->dres, a->gelu, w->mlp.fc2_w, N, H, D);
    memset(s->dh1, 0, NH * sizeof(float));
    gelu_backward(s->dh1, s->dh2, a->fc1, NH);
    memset(s->dd, 0, ND * sizeof(float));
    linear_backward(s->dd, g->mlp.fc1_w, g->mlp.fc1_b, s->dh1, a->ln2, w->mlp.fc1_w, N, D, H);
    layernorm_backward(s->dres, g->ln2_w, g->ln2_b, s->dd, a->res1, w->ln2_w, a->ln2_mean, a->ln2_rstd, N, D);
    /* res1 = x + proj(attn(qkv(ln1(x)))) */
    memset(s->dd, 0, ND * sizeof(float));
    linear_backward(s->dd, g->proj_w, g->proj_b, s->dres, a->attout, w->proj_w, N, D, D);
    memset(s->dqkv, 0, 3 * ND * sizeof(float));
    attention_backward(s->dqkv, s->dd, a->qkv, a->att, B, T, D, d->heads);
    memset(s->dd, 0, ND * sizeof(float));
    linear_backward(s->dd, g->qkv_w, g->qkv_b, s->dqkv, a->ln1, w->qkv_w, N, D, 3 * D);
    layernorm_backward(s->dres, g->ln1_w, g->ln1_b, s->dd, x, w->ln1_w, a->ln1_mean, a->ln1_rstd, N, D);
}

float vit_forward(ViT *m, const float *img, const int *y, int B) {
    const ViTDims *d = &m->d;
    ViTActs *a = &m->a;
    int T = m->T, Np = m->Np, D = d->dim, N = B * T;
    int Kp = d->in_c * d->patch * d->patch;
    m->batch = B;
    patchify(a->patches, img, B, d->in_c, d->in_h, d->in_w, d->patch);
    linear_forward(a->emb, a->patches, m->w.patch_w, m->w.patch_b, B * Np, Kp, D);
    tokens_forward(a->x0, a->emb, m->w.cls, m->w.pos, B, Np, D);
    const float *x = a->x0;
    for (int l = 0; l < d->depth; l++) {
        block_forward(&m->w.blocks[l], &a->blocks[l], x, d, B, T);
        x = a->blocks[l].res2;
    }
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, x, m->w.norm_w, m->w.norm_b, N, D, LN_EPS);
    pool_forward(a->pooled, a->lnf, B, T, D, d->pool_mean);
    linear_forward(a->logits, a->pooled, m->w.head_w, m->w.head_b, B, D, d->classes);
    if (!y) return 0.0f;
    memcpy(m->labels, y, (size_t)B * sizeof(int));
    return crossentropy_forward(a->losses, a->probs, a->logits, y, B, d->classes, m->label_smoothing);
}

void vit_zero_grad(ViT *m) { memset(m->grads, 0, m->num_params * sizeof(float)); }

void vit_backward(ViT *m) {
    const ViTDims *d = &m->d;
    ViTActs *a = &m->a;
    ViTScratch *s = &m->s;
    int B = m->batch, T = m->T, Np = m->Np, D = d->dim, N = B * T, K = d->classes;
    int Kp = d->in_c * d->patch * d->patch;
    size_t ND = (size_t)N * D;
    memset(s->dlogits, 0, (size_t)B * K * sizeof(float));
    crossentropy_backward(s->dlogits, a->probs, m->labels, B, K, m->label_smoothing, 1.0f);
    memset(s->dpooled, 0, (size_t)B * D * sizeof(float));
    linear_backward(s->dpooled, m->g.head_w, m->g.head_b, s->dlogits, a->pooled, m->w.head_w, B, D, K);
    memset(s->dd, 0, ND * sizeof(float));
    pool_backward(s->dd, s->dpooled, B, T, D, d->pool_mean);
    const float *xlast = d->depth ? a->blocks[d->depth - 1].res2 : a->x0;
    memset(s->dres, 0, ND * sizeof(float));
    layernorm_backward(s->dres, m->g.norm_w, m->g.norm_b, s->dd, xlast, m->w.norm_w,
                       a->lnf_mean, a->lnf_rstd, N, D);
    for (int l = d->depth - 1; l >= 0; l--) {
        const float *x = l ? a->blocks[l - 1].res2 : a->x0;
        block_backward(&m->w.blocks[l], &m->g.blocks[l], &a->blocks[l], x, s, d, B, T);
    }
    /* tokens: demb reuses dd (B*Np*D <= N*D). */
    memset(s->dd, 0, (size_t)B * Np * D * sizeof(float));
    tokens_backward(s->dd, m->g.cls, m->g.pos, s->dres, B, Np, D);
    linear_backward(NULL, m->g.patch_w, m->g.patch_b, s->dd, a->patches, m->w.patch_w, B * Np, Kp, D);
}

double vit_flops_per_image(const ViTDims *d) {
    double T = (double)(d->in_h / d->patch) * (d->in_w / d->patch) + 1, D = d->dim, H = d->hidden;
    double Np = T - 1, Kp = (double)d->in_c * d->patch * d->patch;
    double f = 2 * Np * Kp * D;                       /* patch embedding */
    double blk = 2 * T * D * 3 * D + 2 * T * D * D    /* qkv, proj */
               + 2 * 2 * T * T * D                    /* q k^T and att v */
               + 2 * 2 * T * D * H;                   /* fc1, fc2 */
    return f + d->depth * blk + 2 * D * d->classes;
}
