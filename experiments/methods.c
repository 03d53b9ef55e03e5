/* The method table: see methods.h. */
#include "methods.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Which [moe] keys a method reads (bit flags). */
enum {
    K_EXPERTS = 1 << 0, K_BETA = 1 << 1, K_BLOCKS = 1 << 2, K_TOPK = 1 << 3,
    K_CAPACITY = 1 << 4, K_AUX = 1 << 5, K_ZLOSS = 1 << 6, K_SHARED = 1 << 7,
    K_ROUTING = 1 << 8, K_EWA_EPOCHS = 1 << 9, K_PARTITION = 1 << 10,
};
#define K_RMOE (K_EXPERTS | K_BLOCKS | K_PARTITION)
#define K_ROUTED (K_EXPERTS | K_BLOCKS | K_TOPK | K_CAPACITY | K_AUX | K_ZLOSS | K_ROUTING)

enum { EWA_NONE, EWA_ALWAYS, EWA_EARLY };

typedef struct {
    const char *name;
    int kind;          /* MOE_NONE | MOE_RANDOM | MOE_ROUTED */
    int collapse;      /* deployed model: experts averaged into one FFN */
    int ewa;           /* EWA_NONE | EWA_ALWAYS | EWA_EARLY (first moe.ewa_epochs) */
    int force_shared;  /* always-on shared expert regardless of moe.shared_expert */
    int max_top_k;     /* 0 = up to moe.experts */
    unsigned keys;     /* the [moe] keys it reads */
} Method;

static const Method METHODS[] = {
    {"dense", MOE_NONE, 0, EWA_NONE, 0, 0, 0},
    {"ewa", MOE_RANDOM, 1, EWA_ALWAYS, 0, 0, K_RMOE | K_BETA},
    {"rmoe", MOE_RANDOM, 1, EWA_NONE, 0, 0, K_RMOE},
    {"moe", MOE_ROUTED, 0, EWA_NONE, 0, 0, K_ROUTED | K_SHARED},
    {"moe-early-ewa", MOE_ROUTED, 0, EWA_EARLY, 0, 0, K_ROUTED | K_SHARED | K_BETA | K_EWA_EPOCHS},
    {"vimoe", MOE_ROUTED, 0, EWA_NONE, 1, 1, K_ROUTED},
};
#define NMETHODS ((int)(sizeof METHODS / sizeof METHODS[0]))

static const struct { const char *key; unsigned bit; } MOE_KEYS[] = {
    {"experts", K_EXPERTS}, {"beta", K_BETA}, {"blocks", K_BLOCKS}, {"top_k", K_TOPK},
    {"capacity_factor", K_CAPACITY}, {"aux_coef", K_AUX}, {"zloss_coef", K_ZLOSS},
    {"shared_expert", K_SHARED}, {"routing", K_ROUTING}, {"ewa_epochs", K_EWA_EPOCHS},
    {"rmoe_partition", K_PARTITION},
};

static const Method *find(const char *name) {
    for (int i = 0; i < NMETHODS; i++)
        if (!strcmp(METHODS[i].name, name)) return &METHODS[i];
    return NULL;
}

int method_known(const char *name) { return find(name) != NULL; }

const char *const *method_names(int *n) {
    static const char *names[NMETHODS + 1];
    for (int i = 0; i < NMETHODS; i++) names[i] = METHODS[i].name;
    if (n) *n = NMETHODS;
    return names;
}

void method_moe_spec(const RunConfig *c, MoeSpec *s) {
    memset(s, 0, sizeof *s);
    const Method *m = find(c->method);
    if (!m || m->kind == MOE_NONE) return;
    s->kind = m->kind;
    s->experts = c->experts;
    if (m->kind == MOE_RANDOM) {
        s->partition_sample = !strcmp(c->rmoe_partition, "sample");
        return;
    }
    s->top_k = c->top_k;
    s->capacity_factor = c->capacity_factor;
    s->aux_coef = c->aux_coef;
    s->zloss_coef = c->zloss_coef;
    s->shared = m->force_shared || ((m->keys & K_SHARED) && c->shared_expert);
    s->route_image = !strcmp(c->routing, "image");
}

void method_plan(const RunConfig *c, long steps_per_epoch, long total_steps, MethodPlan *p) {
    memset(p, 0, sizeof *p);
    method_moe_spec(c, &p->spec);
    const Method *m = find(c->method);
    if (!m) return;
    p->collapse = m->collapse;
    p->beta = m->ewa != EWA_NONE ? c->beta : 0.0f;
    p->ewa_steps = total_steps;
    if (m->ewa == EWA_EARLY)
        p->ewa_steps = method_steps((c->ewa_epochs < 0 ? c->epochs / 4.0 : c->ewa_epochs) * steps_per_epoch);
}

long method_steps(double x) {
    if (!(x > 0)) return 0;
    return x < (double)METHOD_MAX_STEPS ? lround(x) : METHOD_MAX_STEPS;
}

int method_reads_key(const RunConfig *c, const char *section, const char *key) {
    if (strcmp(section, "moe") || !strcmp(key, "method")) return 1;
    const Method *m = find(c->method);
    if (!m) return 1;
    for (size_t i = 0; i < sizeof MOE_KEYS / sizeof MOE_KEYS[0]; i++)
        if (!strcmp(MOE_KEYS[i].key, key)) return (m->keys & MOE_KEYS[i].bit) != 0;
    return 1;   /* a key this table does not know: kept (hashed) */
}

int method_validate(const RunConfig *c, Err *err) {
    const Method *m = find(c->method);
    if (!m) return err_set(err, ERR_USAGE, "moe.method = '%s' is not a method", c->method);
    if ((m->keys & K_EXPERTS) && c->experts < 2)
        return err_set(err, ERR_USAGE, "moe.experts = %d must be >= 2 for moe.method = %s",
                       c->experts, m->name);
    if (c->experts > MOE_MAX_EXPERTS)
        return err_set(err, ERR_USAGE, "moe.experts = %d exceeds MOE_MAX_EXPERTS = %d", c->experts,
                       MOE_MAX_EXPERTS);
    if (m->keys & K_BETA) {
        int n = c->experts;
        float hi = (float)((n - 1) / (double)n);
        if (!(c->beta >= 0 && c->beta <= hi))
            return err_set(err, ERR_USAGE,
                           "moe.beta = %g is outside [0, (N-1)/N] = [0, %g] for N = moe.experts = %d",
                           (double)c->beta, (double)hi, n);
    }
    if (m->keys & K_TOPK) {
        int hi = m->max_top_k ? m->max_top_k : c->experts;
        if (m->max_top_k && c->top_k != m->max_top_k)
            return err_set(err, ERR_USAGE, "moe.method = %s routes top-%d: moe.top_k = %d must be %d",
                           m->name, m->max_top_k, c->top_k, m->max_top_k);
        if (c->top_k > hi)
            return err_set(err, ERR_USAGE, "moe.top_k = %d is outside [1, moe.experts = %d]",
                           c->top_k, c->experts);
    }
    return 0;
}
