#include "vit.h"
#include "layers/layers.h"
#include "rng.h"
#include <errno.h>
#include <limits.h>
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

/* 3D embedding tensors, in the order pointnet_params_view and
 * posembed_params_view expect (each group is contiguous). Names follow
 * Point-MAE's roles: patch_embed (the mini-PointNet), pos_embed (centre MLP). */
static void layout_points(Layout *L, ViTW *w, const ViTDims *d) {
    int D = d->dim, c1 = d->pn.c1, c2 = d->pn.c2, c3 = d->pn.c3, h = d->pos_hidden;
    w->cls = take(L, 0, 3, T3(1, 1, D), "cls_token");
    w->cls_pos = take(L, 0, 3, T3(1, 1, D), "cls_pos");
    w->pn.w1 = take(L, 1, 2, T2(c1, 3), "patch_embed.conv1.weight");
    w->pn.s1 = take(L, 0, 1, T1(c1), "patch_embed.norm1.weight");
    w->pn.t1 = take(L, 0, 1, T1(c1), "patch_embed.norm1.bias");
    w->pn.w2 = take(L, 1, 2, T2(c2, c1), "patch_embed.conv2.weight");
    w->pn.w3 = take(L, 1, 2, T2(c3, 2 * c2), "patch_embed.conv3.weight");
    w->pn.s3 = take(L, 0, 1, T1(c3), "patch_embed.norm3.weight");
    w->pn.t3 = take(L, 0, 1, T1(c3), "patch_embed.norm3.bias");
    w->pn.w4 = take(L, 1, 2, T2(D, c3), "patch_embed.conv4.weight");
    w->pn.b4 = take(L, 0, 1, T1(D), "patch_embed.conv4.bias");
    w->pe.w1 = take(L, 1, 2, T2(h, 3), "pos_embed.fc1.weight");
    w->pe.b1 = take(L, 0, 1, T1(h), "pos_embed.fc1.bias");
    w->pe.w2 = take(L, 1, 2, T2(D, h), "pos_embed.fc2.weight");
    w->pe.b2 = take(L, 0, 1, T1(D), "pos_embed.fc2.bias");
}

static void layout_params(Layout *L, ViTW *w, const ViTDims *d, int T) {
    int D = d->dim, P = d->patch;
    if (d->points) {
        layout_points(L, w, d);
    } else {
        w->cls = take(L, 0, 3, T3(1, 1, D), "cls_token");
        w->pos = take(L, 0, 3, T3(1, T, D), "pos_embed");
        w->patch_w = take(L, 1, 4, T4(D, d->in_c, P, P), "patch_embed.proj.weight");
        w->patch_b = take(L, 0, 1, T1(D), "patch_embed.proj.bias");
    }
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
        if (d->moe.kind == MOE_NONE || !d->moe_block[l]) {
            snprintf(prefix, sizeof prefix, "blocks.%d.mlp", l);
            layout_ffn(L, &b->mlp, prefix, D, d->hidden);
            continue;
        }
        /* MoE layer: router, experts 0..E-1, shared expert */
        int E = d->moe.experts;
        b->mlp = (FFNW){0};
        if (d->moe.kind == MOE_ROUTED)
            b->moe.router_w = take(L, 1, 2, T2(E, D), "blocks.%d.mlp.router.weight", l);
        for (int e = 0; e < E; e++) {
            FFNW dummy, *f = b->moe.experts ? &b->moe.experts[e] : &dummy;
            snprintf(prefix, sizeof prefix, "blocks.%d.mlp.experts.%d", l, e);
            layout_ffn(L, f, prefix, D, d->hidden);
        }
        if (d->moe.kind == MOE_ROUTED && d->moe.shared) {
            snprintf(prefix, sizeof prefix, "blocks.%d.mlp.shared", l);
            layout_ffn(L, &b->moe.shared, prefix, D, d->hidden);
        }
    }
    const char *fin = d->pool == VIT_POOL_AVG ? "fc_norm" : "norm";
    w->norm_w = take(L, 0, 1, T1(D), "%s.weight", fin);
    w->norm_b = take(L, 0, 1, T1(D), "%s.bias", fin);
    w->head_w = take(L, 1, 2, T2(d->classes, D), "head.weight");
    w->head_b = take(L, 0, 1, T1(d->classes), "head.bias");
}

/* ---- activation layout ------------------------------------------------ */

static float *carve(float *base, size_t *off, size_t n) {
    float *p = base ? base + *off : NULL;
    *off += n;
    return p;
}

static int is_moe(const ViTDims *d, int l) { return d->moe.kind != MOE_NONE && d->moe_block[l]; }

static size_t layout_acts(ViTActs *a, float *base, int *ibase, size_t *ints, const ViTDims *d,
                          int B, int T, int Np) {
    size_t off = 0, ioff = 0, N = (size_t)B * T, D = d->dim, H = d->hidden;
    size_t K = d->classes, Kp = d->points ? (size_t)d->group_k * 3 : (size_t)d->in_c * d->patch * d->patch;
    a->patches = carve(base, &off, (size_t)B * Np * Kp);
    if (d->points) {
        a->centers = carve(base, &off, (size_t)B * Np * 3);
        a->pos3d = carve(base, &off, (size_t)B * Np * D);
        a->pe_h = carve(base, &off, (size_t)B * Np * d->pos_hidden);
        a->pe_a = carve(base, &off, (size_t)B * Np * d->pos_hidden);
    }
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
        int moe = is_moe(d, l);
        b->fc1 = moe ? NULL : carve(base, &off, N * H);
        b->gelu = moe ? NULL : carve(base, &off, N * H);
        b->res2 = carve(base, &off, N * D);
        if (moe) {
            size_t ni = 0;
            off += moe_acts_layout(&b->moe, base ? base + off : NULL, ibase ? ibase + ioff : NULL,
                                   &ni, &d->moe, B, T, (int)D, (int)H);
            ioff += ni;
        }
    }
    *ints = ioff;
    a->lnf = carve(base, &off, N * D);
    a->lnf_mean = carve(base, &off, N);
    a->lnf_rstd = carve(base, &off, N);
    a->pool_in = carve(base, &off, (size_t)B * D);
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
    if (d->points) s->pe_scratch = carve(base, &off, (size_t)2 * B * d->groups * d->pos_hidden);
    if (d->moe.kind != MOE_NONE)
        off += moe_scratch_layout(&s->moe, base ? base + off : NULL, &d->moe, B, T, (int)D, d->hidden);
    return off;
}

/* ---- construction ----------------------------------------------------- */

int vit_dims(ViTDims *d, int in_c, int in_h, int in_w, int patch, int dim, int depth,
             int heads, float mlp_ratio, int classes, int pool, Err *err) {
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
    if (pool < VIT_POOL_CLS || pool > VIT_POOL_AVG)
        return err_set(err, ERR_USAGE, "model.pool: unknown pooling %d (expected cls, mean or avg)", pool);
    memset(d, 0, sizeof *d);
    d->in_c = in_c; d->in_h = in_h; d->in_w = in_w; d->patch = patch;
    d->dim = dim; d->depth = depth; d->heads = heads; d->hidden = hidden;
    d->classes = classes; d->pool = pool;
    return 0;
}

int vit_pool_from_name(const char *name) {
    static const char *const names[] = {"cls", "mean", "avg"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

static float *alloc_floats(size_t n) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, (n ? n : 1) * sizeof(float))) return NULL;
    memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

/* A non-negative decimal int starting at s (no sign, no blank); -1 if none. */
static long parse_block_number(const char *s, char **end) {
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    long v = strtol(s, end, 10);
    return errno == ERANGE || v > INT_MAX ? -1 : v;
}

static int parse_block_list(const char *spec, int depth, unsigned char *mask, Err *err) {
    const char *p = spec;
    for (;;) {
        while (*p == ' ') p++;
        char *end;
        long b = parse_block_number(p, &end);
        if (b < 0) break;
        p = end;
        while (*p == ' ') p++;
        if (b >= depth)
            return err_set(err, ERR_USAGE,
                           "moe.blocks = '%s': block %ld is outside [0, model.depth) = [0, %d)", spec, b,
                           depth);
        if (mask[b]) return err_set(err, ERR_USAGE, "moe.blocks = '%s': block %ld listed twice", spec, b);
        mask[b] = 1;
        if (!*p) return 0;
        if (*p++ != ',') break;
    }
    return err_set(err, ERR_USAGE, "moe.blocks = '%s': expected every_other, last:L or a list like 1,3,5",
                   spec);
}

int vit_parse_moe_blocks(const char *spec, int depth, unsigned char *mask, Err *err) {
    if (depth < 1 || depth > VIT_MAX_DEPTH)
        return err_set(err, ERR_USAGE, "model.depth = %d outside [1, %d]", depth, VIT_MAX_DEPTH);
    memset(mask, 0, (size_t)depth);
    if (!strcmp(spec, "every_other")) {
        for (int l = 1; l < depth; l += 2) mask[l] = 1;
        return 0;
    }
    if (strncmp(spec, "last:", 5)) return parse_block_list(spec, depth, mask, err);
    char *end;
    long L = parse_block_number(spec + 5, &end);
    if (L < 0 || *end)
        return err_set(err, ERR_USAGE, "moe.blocks = '%s': expected last:L with L an integer", spec);
    if (L < 1 || L > depth)
        return err_set(err, ERR_USAGE, "moe.blocks = '%s': L must be in [1, model.depth = %d]", spec, depth);
    for (int l = depth - (int)L; l < depth; l++) mask[l] = 1;
    return 0;
}

int vit_set_moe(ViTDims *d, const MoeSpec *spec, const char *blocks, Err *err) {
    if (spec->kind == MOE_NONE) {
        d->moe = *spec;
        memset(d->moe_block, 0, sizeof d->moe_block);
        return 0;
    }
    if (spec->experts < 2 || spec->experts > MOE_MAX_EXPERTS)
        return err_set(err, ERR_USAGE, "moe.experts = %d outside [2, %d]", spec->experts,
                       MOE_MAX_EXPERTS);
    if (spec->kind == MOE_ROUTED && (spec->top_k < 1 || spec->top_k > spec->experts))
        return err_set(err, ERR_USAGE, "moe.top_k = %d outside [1, moe.experts = %d]", spec->top_k,
                       spec->experts);
    int rc = vit_parse_moe_blocks(blocks, d->depth, d->moe_block, err);
    if (rc) return rc;
    int any = 0;
    for (int l = 0; l < d->depth; l++) any |= d->moe_block[l];
    if (!any)   /* e.g. every_other at depth 1: refuse rather than train a dense model */
        return err_set(err, ERR_USAGE, "moe.blocks = %s selects no block of a depth-%d model", blocks,
                       d->depth);
    d->moe = *spec;
    return 0;
}

ViTDims vit_dense_dims(const ViTDims *d) {
    ViTDims r = *d;
    memset(&r.moe, 0, sizeof r.moe);
    memset(r.moe_block, 0, sizeof r.moe_block);
    return r;
}

int vit_init(ViT *m, const ViTDims *d, int max_batch, Err *err) {
    memset(m, 0, sizeof *m);
    m->d = *d;
    m->T = vit_tokens(d);
    m->Np = m->T - 1;
    m->max_batch = max_batch;
    m->training = 1;
    if (d->moe.kind != MOE_NONE) {
        int E = d->moe.experts;
        m->expert_views = calloc((size_t)2 * d->depth * E, sizeof(FFNW));
        if (!m->expert_views) return err_set(err, ERR_RUNTIME, "out of memory");
        for (int l = 0; l < d->depth; l++) {
            m->w.blocks[l].moe.experts = m->expert_views + (size_t)l * E;
            m->g.blocks[l].moe.experts = m->expert_views + (size_t)(d->depth + l) * E;
        }
    }
    Layout L = {0};
    layout_params(&L, &m->w, d, m->T);
    m->n_params = L.n;
    m->num_params = L.off;
    m->specs = calloc((size_t)L.n, sizeof *m->specs);
    m->params = alloc_floats(L.off);
    m->grads = alloc_floats(L.off);
    m->adam_m = alloc_floats(L.off);
    m->adam_v = alloc_floats(L.off);
    size_t n_ints = 0;
    m->act_floats = layout_acts(&m->a, NULL, NULL, &n_ints, d, max_batch, m->T, m->Np);
    m->act_mem = alloc_floats(m->act_floats);
    m->iact_mem = calloc(n_ints ? n_ints : 1, sizeof(int));
    size_t sf = layout_scratch(&m->s, NULL, d, max_batch, m->T);
    m->scratch_mem = alloc_floats(sf);
    m->labels = calloc((size_t)max_batch, sizeof(int));
    if (!m->specs || !m->params || !m->grads || !m->adam_m || !m->adam_v || !m->act_mem ||
        !m->scratch_mem || !m->labels || !m->iact_mem) {
        vit_free(m);
        return err_set(err, ERR_RUNTIME, "out of memory allocating a %zu-parameter model for batch %d",
                       L.off, max_batch);
    }
    if (d->points && pointnet_acts_alloc(&m->pn_acts, d->pn, max_batch * d->groups, d->group_k)) {
        vit_free(m);
        return err_set(err, ERR_RUNTIME, "out of memory allocating the point-cloud embedding for batch %d",
                       max_batch);
    }
    Layout P = {.base = m->params, .specs = m->specs}, G = {.base = m->grads};
    layout_params(&P, &m->w, d, m->T);
    layout_params(&G, &m->g, d, m->T);
    layout_acts(&m->a, m->act_mem, m->iact_mem, &n_ints, d, max_batch, m->T, m->Np);
    layout_scratch(&m->s, m->scratch_mem, d, max_batch, m->T);
    return 0;
}

void vit_free(ViT *m) {
    free(m->specs); free(m->params); free(m->grads); free(m->adam_m); free(m->adam_v);
    free(m->act_mem); free(m->scratch_mem); free(m->labels);
    free(m->expert_views); free(m->iact_mem);
    if (m->d.points) pointnet_acts_free(&m->pn_acts);
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

/* The dense tensor an MoE tensor is a copy of at initialisation:
 * "blocks.L.mlp.experts.E.X" and "blocks.L.mlp.shared.X" -> "blocks.L.mlp.X".
 * Any other name (the router included) is its own. */
static void init_stream_name(const char *name, char *out, size_t n) {
    const char *p = strstr(name, ".mlp.");
    snprintf(out, n, "%s", name);
    if (!p) return;
    const char *rest = p + 5, *tail = NULL;
    if (!strncmp(rest, "experts.", 8)) {
        tail = strchr(rest + 8, '.');
    } else if (!strncmp(rest, "shared.", 7)) {
        tail = rest + 6;
    }
    if (tail) snprintf(out, n, "%.*s%s", (int)(rest - 1 - name), name, tail);
}

/* FNV-1a 64 of a tensor name: the id of its initialisation stream. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* Pairing (issue 10): every tensor draws from a stream of its own, keyed by
 * (seed, init_stream_name), so models that differ only in their MoE layers
 * start from bit-identical values of every tensor they share, and every
 * expert (routed, random-partition or shared) of an MoE layer is the dense
 * FFN the same seed draws. Router weights have streams of their own. */
void vit_init_weights(ViT *m, uint64_t seed) {
    float bound = 1.0f;   /* 1/sqrt(fan_in) of the last embedding weight seen */
    for (int i = 0; i < m->n_params; i++) {
        const ParamSpec *s = &m->specs[i];
        float *p = m->params + s->offset;
        char canon[sizeof s->name];
        init_stream_name(s->name, canon, sizeof canon);
        Rng r;
        rng_seed_stream(&r, seed, 0x1417ull ^ name_hash(canon));
        /* Embedding convolutions (2D patch projection, 3D mini-PointNet and
         * centre MLP) get PyTorch's Conv/Linear default U(-1/sqrt(fan_in),
         * 1/sqrt(fan_in)) for weight and bias, as timm leaves them; the
         * mini-PointNet's instance norms start at weight 1, bias 0. */
        int embed = (!strncmp(s->name, "patch_embed.", 12) || !strncmp(s->name, "pos_embed.", 10)) &&
                    !strstr(s->name, "norm");
        if (embed && s->ndim >= 2) {
            size_t fan_in = s->numel / (size_t)s->shape[0];
            bound = 1.0f / sqrtf((float)fan_in);
        }
        for (size_t j = 0; j < s->numel; j++) {
            float v;
            if (embed)
                v = (2.0f * rng_uniform(&r) - 1.0f) * bound;
            else if (!strcmp(s->name, "cls_pos")) v = rng_trunc_normal(&r, 0.02f);
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

static void block_forward(ViT *m, int l, const float *x, int B, int T) {
    const ViTDims *d = &m->d;
    const BlockW *w = &m->w.blocks[l];
    BlockActs *a = &m->a.blocks[l];
    int N = B * T, D = d->dim, H = d->hidden;
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, N, D, LN_EPS);
    linear_forward(a->qkv, a->ln1, w->qkv_w, w->qkv_b, N, D, 3 * D);
    attention_forward(a->attout, a->att, a->qkv, B, T, D, d->heads);
    linear_forward(a->res1, a->attout, w->proj_w, w->proj_b, N, D, D);
    residual_forward(a->res1, a->res1, x, (size_t)N * D);
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, w->ln2_w, w->ln2_b, N, D, LN_EPS);
    if (is_moe(d, l)) {
        Rng r;
        rng_seed_stream(&r, m->moe_seed, (0x52ull << 56) + m->moe_step * VIT_MAX_DEPTH + (uint64_t)l);
        a->moe.shard_off = m->shard_off;
        a->moe.shard_batch = m->shard_batch;
        a->moe.shard_scratch = m->shard_scratch;
        m->aux_loss += moe_forward(a->res2, &a->moe, a->ln2, &d->moe, &w->moe, B, T, D, H, m->training,
                                   &r, m->rmoe_perm[l]);
        m->moe_assigned += a->moe.assigned;
        m->moe_dropped += a->moe.dropped;
    } else {
        linear_forward(a->fc1, a->ln2, w->mlp.fc1_w, w->mlp.fc1_b, N, D, H);
        gelu_forward(a->gelu, a->fc1, (size_t)N * H);
        linear_forward(a->res2, a->gelu, w->mlp.fc2_w, w->mlp.fc2_b, N, H, D);
    }
    residual_forward(a->res2, a->res2, a->res1, (size_t)N * D);
}

/* dres holds dL/d(block output) on entry and dL/d(block input) on exit. */
static void block_backward(ViT *m, int l, const float *x, int B, int T) {
    const ViTDims *d = &m->d;
    const BlockW *w = &m->w.blocks[l];
    BlockW *g = &m->g.blocks[l];
    const BlockActs *a = &m->a.blocks[l];
    ViTScratch *s = &m->s;
    int N = B * T, D = d->dim, H = d->hidden;
    size_t ND = (size_t)N * D, NH = (size_t)N * H;
    /* res2 = res1 + fc2(gelu(fc1(ln2(res1)))): dres passes through to res1. */
    if (is_moe(d, l)) {
        memset(s->dd, 0, ND * sizeof(float));
        moe_backward(s->dd, &g->moe, s->dres, &a->moe, a->ln2, &d->moe, &w->moe, &s->moe, B, T, D, H);
    } else {   /* scratch gradients are set by their first write (layers.h *_set) */
        linear_backward_set(s->dh2, g->mlp.fc2_w, g->mlp.fc2_b, s->dres, a->gelu, w->mlp.fc2_w, N, H, D);
        gelu_backward_set(s->dh1, s->dh2, a->fc1, NH);
        linear_backward_set(s->dd, g->mlp.fc1_w, g->mlp.fc1_b, s->dh1, a->ln2, w->mlp.fc1_w, N, D, H);
    }
    layernorm_backward(s->dres, g->ln2_w, g->ln2_b, s->dd, a->res1, w->ln2_w, a->ln2_mean, a->ln2_rstd, N, D);
    /* res1 = x + proj(attn(qkv(ln1(x)))) */
    linear_backward_set(s->dd, g->proj_w, g->proj_b, s->dres, a->attout, w->proj_w, N, D, D);
    attention_backward_set(s->dqkv, s->dd, a->qkv, a->att, B, T, D, d->heads);
    linear_backward_set(s->dd, g->qkv_w, g->qkv_b, s->dqkv, a->ln1, w->qkv_w, N, D, 3 * D);
    layernorm_backward(s->dres, g->ln1_w, g->ln1_b, s->dd, x, w->ln1_w, a->ln1_mean, a->ln1_rstd, N, D);
}

/* Routing statistics (docs/DESIGN.md 2.8): every routed assignment (kept or not) of
 * the last forward, counted per true class and expert. */
static void count_routes(ViT *m, const int *y, int B) {
    const ViTDims *d = &m->d;
    if (d->moe.kind != MOE_ROUTED) return;
    int E = d->moe.experts, k = d->moe.top_k, K = d->classes;
    for (int l = 0; l < d->depth; l++) {
        if (!d->moe_block[l]) continue;
        const MoeActs *a = &m->a.blocks[l].moe;
        long *c = m->route_counts + (size_t)l * K * E;
        for (int u = 0; u < a->units; u++) {
            int b = d->moe.route_image ? u : u / m->T;
            for (int j = 0; j < k; j++) c[(size_t)y[b] * E + a->choice[(size_t)u * k + j]]++;
        }
    }
}

/* ---- 3D embedding (docs/DESIGN.md 2.9) ----------------------------------------- */

int vit_set_points(ViTDims *d, int points, int groups, int k, int pn_width, Err *err) {
    if (points < 1 || groups < 1 || k < 1 || groups > points || k > points || pn_width < 1)
        return err_set(err, ERR_USAGE, "bad point-cloud shape: %d points, %d groups of %d, width %d",
                       points, groups, k, pn_width);
    d->points = points;
    d->groups = groups;
    d->group_k = k;
    d->pn = (PointNetDims){pn_width, 2 * pn_width, 4 * pn_width, d->dim};
    d->pos_hidden = 128;
    return 0;
}

int vit_tokens(const ViTDims *d) {
    return d->points ? d->groups + 1 : (d->in_h / d->patch) * (d->in_w / d->patch) + 1;
}

size_t vit_input_floats(const ViTDims *d) {
    return d->points ? (size_t)d->groups * 3 * (1 + d->group_k) : (size_t)d->in_c * d->in_h * d->in_w;
}

/* in: per cloud G centres (G,3) then (G,k,3) neighbours. Tokens: x[b,0] =
 * cls + cls_pos; x[b,1+g] = pointnet(patch g) + pos_mlp(centre g). */
static void points_embed_forward(ViT *m, const float *in, int B) {
    const ViTDims *d = &m->d;
    ViTActs *a = &m->a;
    int G = d->groups, k = d->group_k, D = d->dim;
    size_t per = vit_input_floats(d), nc = (size_t)G * 3, np = (size_t)G * k * 3;
    for (int b = 0; b < B; b++) {
        memcpy(a->centers + b * nc, in + b * per, nc * sizeof(float));
        memcpy(a->patches + b * np, in + b * per + nc, np * sizeof(float));
    }
    pointnet_forward(a->emb, &m->pn_acts, &m->w.pn, a->patches, B, G, k);
    posembed_forward(a->pos3d, a->pe_h, a->pe_a, &m->w.pe, a->centers, B * G, d->pos_hidden, D);
    #pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *x = a->x0 + (size_t)b * (G + 1) * D;
        for (int i = 0; i < D; i++) x[i] = m->w.cls[i] + m->w.cls_pos[i];
        for (int g = 0; g < G; g++) {
            const float *e = a->emb + ((size_t)b * G + g) * D, *p = a->pos3d + ((size_t)b * G + g) * D;
            float *o = x + (size_t)(1 + g) * D;
            for (int i = 0; i < D; i++) o[i] = e[i] + p[i];
        }
    }
}

/* s->dres holds dL/dx0; the token gradient goes to both embeddings. */
static void points_embed_backward(ViT *m, int B) {
    const ViTDims *d = &m->d;
    ViTActs *a = &m->a;
    ViTScratch *s = &m->s;
    int G = d->groups, k = d->group_k, D = d->dim;
    for (int b = 0; b < B; b++) {
        const float *g0 = s->dres + (size_t)b * (G + 1) * D;
        for (int i = 0; i < D; i++) { m->g.cls[i] += g0[i]; m->g.cls_pos[i] += g0[i]; }
        memcpy(s->dd + (size_t)b * G * D, g0 + D, (size_t)G * D * sizeof(float));
    }
    pointnet_backward(NULL, &m->g.pn, s->dd, &m->pn_acts, &m->w.pn, a->patches, B, G, k);
    posembed_backward(NULL, &m->g.pe, s->dd, a->pe_h, a->pe_a, &m->w.pe, a->centers, B * G,
                      d->pos_hidden, D, s->pe_scratch);
}

/* x (B,T,D), the last block's output -> a->pooled (B,D): final norm then
 * pool (cls, mean), or pool then fc_norm (avg); see VIT_POOL_* in vit.h. */
static void head_input_forward(ViT *m, const float *x, int B) {
    const ViTDims *d = &m->d;
    ViTActs *a = &m->a;
    int T = m->T, D = d->dim;
    if (d->pool == VIT_POOL_AVG) {
        pool_forward(a->pool_in, x, B, T, D, 1);
        layernorm_forward(a->pooled, a->lnf_mean, a->lnf_rstd, a->pool_in, m->w.norm_w, m->w.norm_b, B, D,
                          LN_EPS);
        return;
    }
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, x, m->w.norm_w, m->w.norm_b, B * T, D, LN_EPS);
    pool_forward(a->pooled, a->lnf, B, T, D, d->pool == VIT_POOL_MEAN);
}

/* s->dpooled (B,D) -> s->dres (B,T,D) = dL/dx of the last block's output x;
 * adds the final norm's parameter gradients. Uses s->dd as scratch. */
static void head_input_backward(ViT *m, const float *x, int B) {
    const ViTDims *d = &m->d;
    ViTActs *a = &m->a;
    ViTScratch *s = &m->s;
    int T = m->T, D = d->dim;
    size_t ND = (size_t)B * T * D;
    if (d->pool == VIT_POOL_AVG) {   /* pool_backward skips the class token's row: zero it */
        memset(s->dres, 0, ND * sizeof(float));
        layernorm_backward_set(s->dd, m->g.norm_w, m->g.norm_b, s->dpooled, a->pool_in, m->w.norm_w,
                               a->lnf_mean, a->lnf_rstd, B, D);
        pool_backward(s->dres, s->dd, B, T, D, 1);
        return;
    }
    memset(s->dd, 0, ND * sizeof(float));   /* cls pooling reaches one row per image */
    pool_backward(s->dd, s->dpooled, B, T, D, d->pool == VIT_POOL_MEAN);
    layernorm_backward_set(s->dres, m->g.norm_w, m->g.norm_b, s->dd, x, m->w.norm_w, a->lnf_mean,
                           a->lnf_rstd, B * T, D);
}

float vit_forward(ViT *m, const float *img, const int *y, int B) {
    const ViTDims *d = &m->d;
    ViTActs *a = &m->a;
    int T = m->T, Np = m->Np, D = d->dim;
    int Kp = d->in_c * d->patch * d->patch;
    m->batch = B;
    if (d->points) {
        points_embed_forward(m, img, B);
    } else {
        patchify(a->patches, img, B, d->in_c, d->in_h, d->in_w, d->patch);
        linear_forward(a->emb, a->patches, m->w.patch_w, m->w.patch_b, B * Np, Kp, D);
        tokens_forward(a->x0, a->emb, m->w.cls, m->w.pos, B, Np, D);
    }
    const float *x = a->x0;
    m->aux_loss = 0.0f;
    m->moe_assigned = m->moe_dropped = 0;
    for (int l = 0; l < d->depth; l++) {
        block_forward(m, l, x, B, T);
        x = a->blocks[l].res2;
    }
    head_input_forward(m, x, B);
    linear_forward(a->logits, a->pooled, m->w.head_w, m->w.head_b, B, D, d->classes);
    if (!y) return 0.0f;
    memcpy(m->labels, y, (size_t)B * sizeof(int));
    if (m->route_counts) count_routes(m, y, B);
    m->nll = (float)crossentropy_nll(a->logits, y, B, d->classes);
    return crossentropy_forward(a->losses, a->probs, a->logits, y, B, d->classes, m->label_smoothing) +
           m->aux_loss;
}

void vit_zero_grad(ViT *m) { memset(m->grads, 0, m->num_params * sizeof(float)); }

void vit_backward(ViT *m) {
    const ViTDims *d = &m->d;
    ViTActs *a = &m->a;
    ViTScratch *s = &m->s;
    int B = m->batch, T = m->T, Np = m->Np, D = d->dim, K = d->classes;
    int Kp = d->in_c * d->patch * d->patch;
    memset(s->dlogits, 0, (size_t)B * K * sizeof(float));
    crossentropy_backward(s->dlogits, a->probs, m->labels, B, K, m->label_smoothing, 1.0f);
    linear_backward_set(s->dpooled, m->g.head_w, m->g.head_b, s->dlogits, a->pooled, m->w.head_w, B, D, K);
    head_input_backward(m, d->depth ? a->blocks[d->depth - 1].res2 : a->x0, B);
    for (int l = d->depth - 1; l >= 0; l--) {
        const float *x = l ? a->blocks[l - 1].res2 : a->x0;
        block_backward(m, l, x, B, T);
    }
    /* tokens: demb reuses dd (B*Np*D <= N*D); points_embed_backward sets it */
    if (d->points) {
        points_embed_backward(m, B);
        return;
    }
    memset(s->dd, 0, (size_t)B * Np * D * sizeof(float));
    tokens_backward(s->dd, m->g.cls, m->g.pos, s->dres, B, Np, D);
    linear_backward(NULL, m->g.patch_w, m->g.patch_b, s->dd, a->patches, m->w.patch_w, B * Np, Kp, D);
}

double vit_flops_per_image(const ViTDims *d) {
    double T = vit_tokens(d), D = d->dim, H = d->hidden;
    double Np = T - 1, Kp = (double)d->in_c * d->patch * d->patch;
    double f = 2 * Np * Kp * D;                       /* patch embedding */
    if (d->points) {
        double k = d->group_k, c1 = d->pn.c1, c2 = d->pn.c2, c3 = d->pn.c3, h = d->pos_hidden;
        f = Np * (k * 2 * (3 * c1 + c1 * c2 + c2 * c3 + c3 * D) + 2 * c2 * c3)  /* mini-PointNet */
          + Np * 2 * (3 * h + h * D);                                          /* centre MLP */
    }
    double blk = 2 * T * D * 3 * D + 2 * T * D * D    /* qkv, proj */
               + 2 * 2 * T * T * D;                   /* q k^T and att v */
    for (int l = 0; l < d->depth; l++)
        f += blk + (d->moe.kind != MOE_NONE && d->moe_block[l]
                        ? moe_flops_per_image(&d->moe, (int)T, (int)D, (int)H)
                        : 2 * 2 * T * D * H);         /* fc1, fc2 */
    return f + 2 * D * d->classes;
}

void vit_param_counts(const ViTDims *d, size_t *total, size_t *active) {
    int T = vit_tokens(d);
    ViTDims dd = *d;
    dd.moe.kind = MOE_NONE;   /* count walk without expert views */
    Layout L = {0};
    ViTW w;
    memset(&w, 0, sizeof w);
    layout_params(&L, &w, &dd, T);
    size_t ffn = 2 * (size_t)d->dim * d->hidden + d->hidden + d->dim, tot = L.off, act = L.off;
    if (d->moe.kind != MOE_NONE)
        for (int l = 0; l < d->depth; l++) {
            if (!d->moe_block[l]) continue;
            size_t E = d->moe.experts, extra = (E - 1) * ffn, extra_act = 0;
            if (d->moe.kind == MOE_ROUTED) {
                extra += E * d->dim + (d->moe.shared ? ffn : 0);
                extra_act = (d->moe.top_k - 1) * ffn + E * d->dim + (d->moe.shared ? ffn : 0);
            }
            tot += extra;
            act += extra_act;   /* random partition: one expert per token */
        }
    *total = tot;
    *active = act;
}
