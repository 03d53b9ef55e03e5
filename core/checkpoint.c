#include "checkpoint.h"
#include <cjson/cJSON.h>
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
