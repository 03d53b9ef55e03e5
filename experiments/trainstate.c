/* The epoch checkpoint of a training run: see trainstate.h. */
#include "trainstate.h"
#include "../core/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_INT, F_LONG, F_DBL, F_RNG, F_STR } FieldType;

typedef struct {
    const char *name;
    FieldType type;
    size_t off;
} Field;

#define F(name, T) {#name, F_##T, offsetof(TrainState, name)}
/* Every field of TrainState, as metadata "name" -> text. */
static const Field FIELDS[] = {
    F(epoch, INT), F(step, LONG), F(adam_t, INT), F(shuffle, RNG), F(aug, RNG),
    F(train_seconds, DBL), F(wall_s, DBL), F(total_assigned, LONG), F(total_dropped, LONG),
    F(final_top1, DBL), F(final_test_loss, DBL), F(final_val_top1, DBL), F(best_top1, DBL),
    F(best_val_top1, DBL), F(best_epoch, INT), F(metrics_rows, INT), F(moe_rows, INT),
    F(routing_rows, INT), F(start_time, STR),
};
enum { NFIELDS = sizeof FIELDS / sizeof FIELDS[0], VAL_LEN = 96 };

static void format_field(const Field *f, const TrainState *s, char *b) {
    const char *p = (const char *)s + f->off;
    const Rng *r = (const Rng *)p;
    switch (f->type) {
    case F_INT: snprintf(b, VAL_LEN, "%d", *(const int *)p); break;
    case F_LONG: snprintf(b, VAL_LEN, "%ld", *(const long *)p); break;
    case F_DBL: snprintf(b, VAL_LEN, "%.17g", *(const double *)p); break;
    case F_RNG:
        snprintf(b, VAL_LEN, "%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64, r->s[0], r->s[1],
                 r->s[2], r->s[3]);
        break;
    case F_STR: snprintf(b, VAL_LEN, "%s", p); break;
    }
}

/* Parses text into the field; 0, or -1 if it is malformed. */
static int parse_field(const Field *f, const char *t, TrainState *s) {
    char *p = (char *)s + f->off, *end = NULL;
    errno = 0;
    switch (f->type) {
    case F_INT: { long v = strtol(t, &end, 10); *(int *)p = (int)v; if (v != (int)v) return -1; break; }
    case F_LONG: *(long *)p = strtol(t, &end, 10); break;
    case F_DBL: *(double *)p = strtod(t, &end); break;
    case F_RNG: {
        Rng *r = (Rng *)p;
        end = (char *)t;
        for (int i = 0; i < 4; i++) {
            if (i && *end++ != ',') return -1;
            r->s[i] = strtoull(end, &end, 16);
        }
        break;
    }
    case F_STR: snprintf(p, 32, "%s", t); return strlen(t) < 32 ? 0 : -1;
    }
    return errno || !*t || *end ? -1 : 0;
}

int trainstate_save(const char *path, const RunConfig *c, const ViT *m, const TrainState *s, Err *err) {
    char vals[NFIELDS][VAL_LEN];
    const char *keys[NFIELDS + 2], *pv[NFIELDS + 2];
    for (int i = 0; i < NFIELDS; i++) {
        format_field(&FIELDS[i], s, vals[i]);
        keys[i] = FIELDS[i].name;
        pv[i] = vals[i];
    }
    char *ini = config_to_ini(c);
    if (!ini) return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    keys[NFIELDS] = "format";
    pv[NFIELDS] = TRAINSTATE_FORMAT;
    keys[NFIELDS + 1] = "config";
    pv[NFIELDS + 1] = ini;
    float *data[3] = {m->params, m->adam_m, m->adam_v};
    static const char *const names[3] = {"params", "adam_m", "adam_v"};
    StTensor t[3];
    memset(t, 0, sizeof t);
    for (int i = 0; i < 3; i++) {
        t[i].name = (char *)names[i];
        t[i].ndim = 1;
        t[i].shape[0] = (int64_t)m->num_params;
        t[i].numel = m->num_params;
        t[i].data = data[i];
    }
    int rc = st_write(path, t, 3, keys, pv, NFIELDS + 2, err);
    free(ini);
    return rc;
}

/* The stored config must be c's, key by key. */
static int check_config(const char *path, const StFile *f, const RunConfig *c, Err *err) {
    const char *ini = st_meta(f, "config");
    if (!ini) return err_set(err, ERR_RUNTIME, "%s: no 'config' in the metadata", path);
    char origin[1100], key[64], va[600], vb[600];
    snprintf(origin, sizeof origin, "%s (stored config)", path);
    RunConfig stored;
    Err e;
    if (config_load_string(&stored, ini, origin, 0, NULL, &e))
        return err_set(err, ERR_RUNTIME, "%s", e.msg);
    if (config_first_difference(&stored, c, key, sizeof key, va, vb, sizeof va))
        return err_set(err, ERR_USAGE, "%s: the interrupted run was started with %s = %s, this config has "
                       "%s = %s; a resumed run must have the stored config (every key)", path, key, va,
                       key, vb);
    return 0;
}

static int load_tensors(const char *path, const StFile *f, ViT *m, Err *err) {
    float *data[3] = {m->params, m->adam_m, m->adam_v};
    static const char *const names[3] = {"params", "adam_m", "adam_v"};
    for (int i = 0; i < 3; i++) {
        const StTensor *t = st_find(f, names[i]);
        if (!t || t->ndim != 1 || t->numel != m->num_params)
            return err_set(err, ERR_RUNTIME, "%s: tensor '%s' is missing or does not hold the model's %zu "
                           "parameters", path, names[i], m->num_params);
        memcpy(data[i], t->data, sizeof(float) * m->num_params);
    }
    return 0;
}

int trainstate_load(const char *path, const RunConfig *c, ViT *m, TrainState *s, Err *err) {
    StFile f;
    int rc = st_read(path, &f, err);
    if (rc) return rc;
    const char *fmt = st_meta(&f, "format");
    memset(s, 0, sizeof *s);
    if (!fmt || strcmp(fmt, TRAINSTATE_FORMAT))
        rc = err_set(err, ERR_RUNTIME, "%s: not a training state (format '%s', expected '%s')", path,
                     fmt ? fmt : "", TRAINSTATE_FORMAT);
    if (!rc) rc = check_config(path, &f, c, err);
    for (int i = 0; !rc && i < NFIELDS; i++) {
        const char *v = st_meta(&f, FIELDS[i].name);
        if (!v || parse_field(&FIELDS[i], v, s))
            rc = err_set(err, ERR_RUNTIME, "%s: metadata '%s' is %s", path, FIELDS[i].name,
                         v ? "malformed" : "missing");
    }
    if (!rc) rc = load_tensors(path, &f, m, err);
    st_free(&f);
    return rc;
}
