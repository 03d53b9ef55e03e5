/* Run configuration: INI files (inih) with `--set section.key=value`
 * overrides, resolved into one plain struct (docs/DESIGN.md 4). Table-driven: every
 * key has a section, name, type, default and check; an unknown key or a bad
 * value is a config error (code ERR_USAGE) naming the file, line and key. */
#ifndef EWA_CONFIG_H
#define EWA_CONFIG_H
#include <stdint.h>
#include <stdio.h>
#include "../core/err.h"

typedef struct {
    /* [model] */
    char preset[32];      /* "" = none; see config_preset_names() */
    int dim, depth, heads;
    float mlp_ratio;
    int patch;
    char pool[8];         /* "cls" | "mean" | "avg" (core/vit.h: VIT_POOL_*) */
    int pn_width;         /* 3D mini-PointNet widths w, 2w, 4w */
    /* [data] */
    char dataset[32];     /* "fashion-mnist" | "cifar10" | "cifar100" (3D sets later) */
    char dir[512];        /* "" = the dataset's default location */
    int train_subset;     /* 0 = full training set; else class-balanced subset size */
    int val_size;         /* validation samples held out of training; -1 = auto (data_val_size) */
    int augment;          /* 0/1 */
    char classes[16];     /* "all" or "LO-HI" (keep and relabel a class range) */
    int points, groups, group_size;   /* 3D: P points, G centres, k neighbours */
    int train_size, test_size;        /* shapes3d split sizes */
    /* [train] */
    int epochs, batch_size;
    float lr, min_lr, weight_decay, warmup_epochs;
    float beta1, beta2, eps;
    float grad_clip;       /* 0 = off */
    float label_smoothing;
    uint64_t seed;
    int threads;           /* 0 = all cores */
    long max_steps;        /* 0 = no limit */
    int eval_every;        /* test-set evaluation every N epochs and after the last; 0 = last only */
    char precision[8];     /* fp32 | bf16: GEMM inputs (core/gemm.h); part of the config hash */
    /* [moe] */
    char method[24];       /* dense | ewa | rmoe | moe | moe-early-ewa | vimoe */
    int experts;
    float beta;
    char blocks[128];      /* every_other | last:L | list "1,3,5" */
    int top_k;
    float capacity_factor;
    float aux_coef, zloss_coef;
    int shared_expert;
    char routing[8];       /* token | image */
    float ewa_epochs;      /* -1 = a quarter of train.epochs */
    char rmoe_partition[8];/* batch | sample */
    /* [finetune] */
    char init_checkpoint[512];
    int reset_head;
} RunConfig;

/* Fills every field with its default (the documented CPU recipe's values are
 * in paper_configs/, not here). */
void config_defaults(RunConfig *c);

/* Loads path (NULL = defaults only), then applies n_set overrides of the form
 * "section.key=value". A `model.preset` (from file or override) is applied
 * first; any explicitly given model key wins over the preset whatever its
 * order. Validates the result (config_validate). */
int config_load(RunConfig *c, const char *path, int n_set, char *const *sets, Err *err);

/* Same from INI text held in memory (checkpoint metadata); `origin` names it
 * in error messages. */
int config_load_string(RunConfig *c, const char *text, const char *origin,
                       int n_set, char *const *sets, Err *err);

/* Cross-field checks: dim % heads == 0, pool, method, 0 <= beta <= (N-1)/N,
 * 1 <= top_k <= experts, ... */
int config_validate(const RunConfig *c, Err *err);

/* 1 if data.dataset is a point-cloud set (shapes3d, modelnet40). */
int config_is_points(const RunConfig *c);

/* The keys that c's dataset ignores (model.patch for point clouds; the 3D
 * keys for images; data.train_size/test_size except for the generated
 * shapes3d; data.dir for shapes3d) given a value other than their default:
 * returns their number and writes "key = value, ..." into buf (n > 0).
 * They are accepted, since grids share keys across datasets; `ewa train`
 * prints them as a warning. */
int config_ignored_keys(const RunConfig *c, char *buf, size_t n);

/* The resolved config as INI text, every key, fixed order (malloc'd). */
char *config_to_ini(const RunConfig *c);

/* Writes config_to_ini atomically (tmp + rename). */
int config_write(const RunConfig *c, const char *path, Err *err);

/* FNV-1a 64 of the resolved INI text without train.seed and train.threads:
 * runs that differ only in seed share a config hash. */
uint64_t config_hash(const RunConfig *c);

/* The first key (table order) whose value differs between a and b, as
 * "section.key" in key with both values as the INI text spells them; returns
 * 1 if one differs, 0 if every key is equal (train resume: docs/DESIGN.md 8.10). */
int config_first_difference(const RunConfig *a, const RunConfig *b, char *key, size_t kn, char *va,
                            char *vb, size_t vn);

/* Named presets: sets dim, depth, heads, mlp_ratio, patch, pool (and
 * c->preset). "" is a no-op. Returns 0, or ERR_USAGE if the name is unknown
 * (message lists the known names). */
int config_apply_preset(RunConfig *c, const char *name, Err *err);

/* The value of key name ("section.key") of c as the INI text spells it;
 * 0, or -1 (buf "") for an unknown key. */
int config_format_key(const RunConfig *c, const char *name, char *buf, size_t n);

/* Prints every key, one a line: section.key, type, default, doc string
 * (`ewa keys`). */
void config_print_keys(FILE *f);

/* The known preset names (static storage); *n receives their count. */
const char *const *config_preset_names(int *n);

#endif
