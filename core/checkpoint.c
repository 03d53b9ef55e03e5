#include "checkpoint.h"
#include "resample.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vit_save(const ViT *m, const char *path, int n_meta, const char *const *keys,
             const char *const *vals, Err *err) {
    StTensor *t = calloc((size_t)m->n_params, sizeof *t);
    if (!t) return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    for (int i = 0; i < m->n_params; i++) {
        const ParamSpec *s = &m->specs[i];
        t[i].name = (char *)s->name;
        t[i].ndim = s->ndim;
        for (int k = 0; k < s->ndim; k++) t[i].shape[k] = s->shape[k];
        t[i].numel = s->numel;
        t[i].data = m->params + s->offset;
    }
    int rc = st_write(path, t, m->n_params, keys, vals, n_meta, err);
    free(t);
    return rc;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static int skipped(const char *name, int n_skip, const char *const *skip) {
    for (int i = 0; i < n_skip; i++)
        if (!strncmp(name, skip[i], strlen(skip[i]))) return 1;
    return 0;
}

static int copy_checked(ViT *m, const ParamSpec *s, const StTensor *t, const char *origin, Err *err);

int vit_load_tensors(ViT *m, const StFile *f, const char *origin,
                     int n_skip, const char *const *skip, Err *err) {
    for (int i = 0; i < f->n_tensors; i++) {
        const StTensor *t = &f->tensors[i];
        if (!vit_find_param(m, t->name) && !skipped(t->name, n_skip, skip))
            return err_set(err, ERR_RUNTIME, "%s: tensor '%s' does not belong to this model", origin, t->name);
    }
    for (int i = 0; i < m->n_params; i++) {
        const ParamSpec *s = &m->specs[i];
        if (skipped(s->name, n_skip, skip)) continue;
        const StTensor *t = st_find(f, s->name);
        if (!t) return err_set(err, ERR_RUNTIME, "%s: tensor '%s' is missing", origin, s->name);
        int rc = copy_checked(m, s, t, origin, err);
        if (rc) return rc;
    }
    return 0;
}

static int copy_checked(ViT *m, const ParamSpec *s, const StTensor *t, const char *origin, Err *err) {
    int64_t want[4];
    int same = t->ndim == s->ndim;
    for (int k = 0; k < s->ndim; k++) {
        want[k] = s->shape[k];
        if (same && t->shape[k] != want[k]) same = 0;
    }
    if (!same) {
        char a[96], b[96];
        shape_str(a, sizeof a, t->ndim, t->shape);
        shape_str(b, sizeof b, s->ndim, want);
        return err_set(err, ERR_RUNTIME, "%s: tensor '%s' has shape %s, the model expects %s",
                       origin, s->name, a, b);
    }
    memcpy(m->params + s->offset, t->data, s->numel * sizeof(float));
    return 0;
}

/* "blocks.{l}.mlp.experts.{e}.X" / "blocks.{l}.mlp.shared.X" -> "blocks.{l}.mlp.X" */
static int dense_source(const char *name, char *out, size_t n) {
    int l, e, k = 0;
    if (sscanf(name, "blocks.%d.mlp.experts.%d.%n", &l, &e, &k) == 2 && k > 0)
        return snprintf(out, n, "blocks.%d.mlp.%s", l, name + k) > 0;
    k = 0;
    if (sscanf(name, "blocks.%d.mlp.shared.%n", &l, &k) == 1 && k > 0)
        return snprintf(out, n, "blocks.%d.mlp.%s", l, name + k) > 0;
    return 0;
}

static int moe_block_ffn(const ViT *m, const char *name) {
    int l, k = 0;
    if (sscanf(name, "blocks.%d.mlp.%n", &l, &k) != 1 || !k || l < 0 || l >= m->d.depth) return 0;
    return m->d.moe.kind != MOE_NONE && m->d.moe_block[l] && !strncmp(name + k, "fc", 2);
}

int vit_load_upcycle(ViT *m, const StFile *f, const char *origin, int n_skip,
                     const char *const *skip, int *n_upcycled, Err *err) {
    *n_upcycled = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const StTensor *t = &f->tensors[i];
        if (!vit_find_param(m, t->name) && !skipped(t->name, n_skip, skip) && !moe_block_ffn(m, t->name))
            return err_set(err, ERR_RUNTIME, "%s: tensor '%s' does not belong to this model", origin, t->name);
    }
    for (int i = 0; i < m->n_params; i++) {
        const ParamSpec *s = &m->specs[i];
        if (skipped(s->name, n_skip, skip)) continue;
        const StTensor *t = st_find(f, s->name);
        char src[VIT_NAME_LEN + 8];
        if (!t && dense_source(s->name, src, sizeof src) && (t = st_find(f, src))) ++*n_upcycled;
        if (!t && strstr(s->name, ".mlp.router.")) continue;
        if (!t) return err_set(err, ERR_RUNTIME, "%s: tensor '%s' is missing", origin, s->name);
        int rc = copy_checked(m, s, t, origin, err);
        if (rc) return rc;
    }
    return 0;
}

int vit_timm_kwargs(const ViTDims *d, char *buf, size_t n) {
    if (n) buf[0] = '\0';
    if (d->points || d->moe.kind != MOE_NONE) return 1;
    static const char *const global_pool[] = {"token", "avg", "avg"};
    cJSON *o = cJSON_CreateObject();
    if (!o) return 1;
    cJSON *size = cJSON_AddArrayToObject(o, "img_size");
    cJSON_AddItemToArray(size, cJSON_CreateNumber(d->in_h));
    cJSON_AddItemToArray(size, cJSON_CreateNumber(d->in_w));
    cJSON_AddNumberToObject(o, "patch_size", d->patch);
    cJSON_AddNumberToObject(o, "in_chans", d->in_c);
    cJSON_AddNumberToObject(o, "num_classes", d->classes);
    cJSON_AddStringToObject(o, "global_pool", global_pool[d->pool]);
    cJSON_AddBoolToObject(o, "fc_norm", d->pool == VIT_POOL_AVG);
    cJSON_AddNumberToObject(o, "embed_dim", d->dim);
    cJSON_AddNumberToObject(o, "depth", d->depth);
    cJSON_AddNumberToObject(o, "num_heads", d->heads);
    cJSON_AddNumberToObject(o, "mlp_ratio", (double)d->hidden / d->dim);
    cJSON_AddBoolToObject(o, "qkv_bias", 1);
    cJSON_AddBoolToObject(o, "class_token", 1);
    char *s = cJSON_PrintUnformatted(o);
    int rc = !s || strlen(s) >= n;
    if (!rc) memcpy(buf, s, strlen(s) + 1);
    free(s);
    cJSON_Delete(o);
    return rc;
}

/* ---- adaptation of other-shaped checkpoints (vit_adapt_checkpoint) ---- */

/* Replaces t's data by data (malloc'd, numel floats) of the given shape. */
static void replace_tensor(StTensor *t, float *data, int ndim, const int64_t *shape) {
    free(t->data);
    t->data = data;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= (size_t)shape[i];
    }
}

/* The source patch grid of a pos_embed of T tokens: from the metadata
 * input_shape "C,H,W" and patch P when (H/P)(W/P) = T-1, else square. */
static int source_grid(const StFile *f, int T, int P, int *gh, int *gw) {
    const char *shape = st_meta(f, "input_shape");
    int c, h, w;
    if (shape && sscanf(shape, "%d,%d,%d", &c, &h, &w) == 3 && P > 0 && (h / P) * (w / P) == T - 1) {
        *gh = h / P;
        *gw = w / P;
        return 0;
    }
    int g = (int)lround(sqrt((double)(T - 1)));
    if (g < 1 || g * g != T - 1) return -1;
    *gh = *gw = g;
    return 0;
}

static int adapt_pos_embed(const ViT *m, StFile *f, const char *origin, int P_src, char *rep, size_t n,
                           Err *err) {
    StTensor *t = (StTensor *)st_find(f, "pos_embed");
    int D = m->d.dim, T = m->T;
    if (!t || t->ndim != 3 || t->shape[0] != 1 || t->shape[2] != D || t->shape[1] == T) return 0;
    int gh, gw, P = m->d.patch, nh = m->d.in_h / P, nw = m->d.in_w / P;
    if (t->shape[1] < 2 || source_grid(f, (int)t->shape[1], P_src, &gh, &gw))
        return err_set(err, ERR_RUNTIME, "%s: tensor 'pos_embed' has %lld tokens: not a class token plus a "
                       "patch grid this can infer (no input_shape metadata and not 1 + a square)",
                       origin, (long long)t->shape[1]);
    float *out = malloc(sizeof(float) * (size_t)T * D);
    if (!out) return err_set(err, ERR_RUNTIME, "%s: out of memory resampling pos_embed", origin);
    memcpy(out, t->data, sizeof(float) * (size_t)D);   /* class token kept */
    resample_bicubic(out + D, t->data + D, gh, gw, D, nh, nw);
    snprintf(rep, n, "pos_embed [1,%lld,%d] -> [1,%d,%d] (patch grid %dx%d -> %dx%d, bicubic, class token kept)",
             (long long)t->shape[1], D, T, D, gh, gw, nh, nw);
    replace_tensor(t, out, 3, (const int64_t[]){1, T, D});
    return 0;
}

static int adapt_in_chans(const ViT *m, StTensor *t, const char *origin, char *rep, size_t n, Err *err) {
    int D = m->d.dim, C = m->d.in_c, Cs = (int)t->shape[1], P = m->d.patch;
    size_t PP = (size_t)P * P;
    float *out = calloc((size_t)D * C * PP, sizeof(float));
    if (!out) return err_set(err, ERR_RUNTIME, "%s: out of memory adapting patch_embed.proj.weight", origin);
    for (int d = 0; d < D; d++)
        for (int c = 0; c < C; c++) {
            float *o = out + ((size_t)d * C + c) * PP;
            for (int s = 0; s < Cs; s++) {
                if (C > 1 && s != c % Cs) continue;
                const float *w = t->data + ((size_t)d * Cs + s) * PP;
                float scale = C == 1 ? 1.0f : (float)Cs / C;
                for (size_t k = 0; k < PP; k++) o[k] += scale * w[k];
            }
        }
    if (C == 1)
        snprintf(rep, n, "patch_embed.proj.weight in_chans %d -> 1 (sum over channels)", Cs);
    else
        snprintf(rep, n, "patch_embed.proj.weight in_chans %d -> %d (channels repeated, scaled by %d/%d)", Cs, C,
                 Cs, C);
    replace_tensor(t, out, 4, (const int64_t[]){D, C, P, P});
    return 0;
}

int vit_adapt_checkpoint(const ViT *m, StFile *f, const char *origin, char *report, size_t n, Err *err) {
    char pos[200] = "", chans[200] = "", widened[120] = "";
    int n16 = 0, nb16 = 0, rc = 0, P_src = m->d.patch;
    for (int i = 0; i < f->n_tensors; i++) {
        n16 += !strcmp(f->tensors[i].dtype, "F16");
        nb16 += !strcmp(f->tensors[i].dtype, "BF16");
    }
    if (n16 || nb16)
        snprintf(widened, sizeof widened, "%d F16 and %d BF16 tensors widened to F32", n16, nb16);
    StTensor *pw = (StTensor *)st_find(f, "patch_embed.proj.weight");
    if (!m->d.points && pw && pw->ndim == 4 && pw->shape[0] == m->d.dim) {
        P_src = (int)pw->shape[2];
        if (pw->shape[2] != m->d.patch || pw->shape[3] != m->d.patch)
            return err_set(err, ERR_RUNTIME, "%s: tensor 'patch_embed.proj.weight' has %lldx%lld patches, the model "
                           "%dx%d (set model.patch = %lld; patch kernels are not resampled)", origin,
                           (long long)pw->shape[2], (long long)pw->shape[3], m->d.patch, m->d.patch,
                           (long long)pw->shape[2]);
        if (pw->shape[1] != m->d.in_c && (rc = adapt_in_chans(m, pw, origin, chans, sizeof chans, err)))
            return rc;
    }
    if (!m->d.points && (rc = adapt_pos_embed(m, f, origin, P_src, pos, sizeof pos, err))) return rc;
    const char *parts[3] = {pos, chans, widened};
    size_t k = 0;
    if (n) report[0] = '\0';
    for (int i = 0; i < 3; i++)
        if (parts[i][0] && k < n) k += (size_t)snprintf(report + k, n - k, "%s%s", k ? "; " : "", parts[i]);
    return 0;
}
