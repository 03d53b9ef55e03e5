/* The method table (docs/DESIGN.md 2.11): the one place that maps a
 * resolved config's moe.method to what the run does, and the only code that
 * compares method names. train.c, bench/bench_train.c, tests/test_parity.c
 * and config validation use it; adding a method is one row in methods.c.
 *
 *   method         training model              EWA (share rate beta)           deployed model
 *   dense          plain ViT                   -                               the same
 *   ewa            RMoE (random partition)     after every step                experts collapsed (mean)
 *   rmoe           RMoE                        -                               experts collapsed
 *   moe            routed top-k MoE            -                               the routed MoE
 *   moe-early-ewa  routed top-k MoE            the first moe.ewa_epochs only   the routed MoE
 *   vimoe          routed top-1 + shared expert -                              the routed MoE */
#ifndef EWA_METHODS_H
#define EWA_METHODS_H
#include "config.h"
#include "../core/vit.h"

/* What a run does, derived from a resolved config (method_plan). */
typedef struct {
    MoeSpec spec;      /* spec.kind MOE_NONE: a dense ViT */
    int collapse;      /* the experts are averaged into one FFN to evaluate and deploy */
    float beta;        /* EWA share rate; 0 = no EWA update */
    long ewa_steps;    /* EWA applies to optimizer steps [0, ewa_steps) */
} MethodPlan;

/* 1 if name is a method of the table. */
int method_known(const char *name);

/* The method names (static storage), in table order; *n receives the count. */
const char *const *method_names(int *n);

/* The MoE layer of c's method (kind MOE_NONE for dense), from the [moe] keys
 * the method reads. c must be resolved (config_validate passed). */
void method_moe_spec(const RunConfig *c, MoeSpec *s);

/* A length in epochs x steps per epoch as a whole number of steps:
 * round(x), saturated at METHOD_MAX_STEPS (more steps than any run takes), so
 * a huge or infinite length (train.warmup_epochs = 1e19) stays longer than the
 * run instead of overflowing lround, whose result is then unspecified
 * (LONG_MIN here: no warm-up at all). x < 0 gives 0. */
#define METHOD_MAX_STEPS 1000000000000000L
long method_steps(double x);

/* The whole plan of a run of c: MoE spec, collapse, beta and the EWA step
 * count given the run's steps per epoch and total steps. */
void method_plan(const RunConfig *c, long steps_per_epoch, long total_steps, MethodPlan *p);

/* 1 if c's method reads the key section.key. Every key outside [moe] is read
 * by every method; of [moe], each method reads its own (e.g. dense none,
 * rmoe not beta). Keys a method ignores are accepted in a config (base
 * configs and grids share them across methods) but left out of the config
 * hash and run id, so identical trainings get identical ids. */
int method_reads_key(const RunConfig *c, const char *section, const char *key);

/* The cross-field rules of c's method (e.g. beta in [0, (N-1)/N] when the
 * method applies EWA, top_k <= experts for routing, vimoe routes top-1).
 * ERR_USAGE with a message naming the keys. Called by config_validate. */
int method_validate(const RunConfig *c, Err *err);

#endif
