/* Run configuration (docs/DESIGN.md 4): one static table of keys drives defaults,
 * parsing, printing and hashing. INI text is parsed with inih through our own
 * line reader, which counts lines (Debian's libinih passes no line number to
 * the handler) and lets values longer than inih's line buffer through. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "config.h"
#include "methods.h"
#include <ctype.h>
#include "../core/vit.h"
#include "util.h"
#include "../core/fsutil.h"
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---------------------------------------------------------------- table */

typedef enum { T_INT, T_LONG, T_U64, T_FLOAT, T_STR, T_BOOL } KeyType;

typedef struct {
    const char *section, *key;
    KeyType type;
    size_t off, size;          /* offsetof / sizeof the RunConfig field */
    const char *def, *doc;
} ConfigKey;

#define FLD(f) offsetof(RunConfig, f), sizeof(((RunConfig *)0)->f)

static const ConfigKey KEYS[] = {
    {"model", "preset", T_STR, FLD(preset), "", "named preset; explicit model keys override it"},
    {"model", "dim", T_INT, FLD(dim), "192", "embedding width D"},
    {"model", "depth", T_INT, FLD(depth), "6", "number of transformer blocks"},
    {"model", "heads", T_INT, FLD(heads), "3", "attention heads (divides dim)"},
    {"model", "mlp_ratio", T_FLOAT, FLD(mlp_ratio), "4", "FFN hidden width / dim"},
    {"model", "patch", T_INT, FLD(patch), "4", "images: patch size P (PxP)"},
    {"model", "pool", T_STR, FLD(pool), "cls",
     "cls | mean | avg (timm global_pool: token | avg with fc_norm=False | avg, its default fc_norm)"},
    {"model", "pn_width", T_INT, FLD(pn_width), "128", "3D mini-PointNet widths w, 2w, 4w (Point-BERT: 128)"},
    {"data", "dataset", T_STR, FLD(dataset), "fashion-mnist", "fashion-mnist | cifar10 | cifar100 | shapes3d | modelnet40"},
    {"data", "dir", T_STR, FLD(dir), "", "data directory; empty = the dataset's default (shapes3d is generated: none)"},
    {"data", "train_subset", T_INT, FLD(train_subset), "0", "images: 0 = full set, else class-balanced subset size"},
    {"data", "val_size", T_INT, FLD(val_size), "-1",
     "validation images/clouds held out of the training set (class-balanced, own seed stream); "
     "-1 = 10% of the training set for fashion-mnist and shapes3d, 0 otherwise; 0 = none"},
    {"data", "augment", T_BOOL, FLD(augment), "1", "training augmentation on/off"},
    {"data", "classes", T_STR, FLD(classes), "all", "images: all | LO-HI (keep and relabel a class range)"},
    {"data", "points", T_INT, FLD(points), "1024", "3D: points per cloud"},
    {"data", "groups", T_INT, FLD(groups), "64", "3D: FPS centres (tokens) per cloud"},
    {"data", "group_size", T_INT, FLD(group_size), "32", "3D: k nearest points per centre"},
    {"data", "train_size", T_INT, FLD(train_size), "2800", "shapes3d: generated training clouds"},
    {"data", "test_size", T_INT, FLD(test_size), "1400", "shapes3d: generated test clouds"},
    {"train", "epochs", T_INT, FLD(epochs), "10", "training epochs"},
    {"train", "batch_size", T_INT, FLD(batch_size), "128", "images per optimizer step"},
    {"train", "lr", T_FLOAT, FLD(lr), "1e-3", "peak AdamW learning rate"},
    {"train", "min_lr", T_FLOAT, FLD(min_lr), "1e-5", "cosine schedule floor"},
    {"train", "weight_decay", T_FLOAT, FLD(weight_decay), "0.05", "AdamW decoupled weight decay"},
    {"train", "warmup_epochs", T_FLOAT, FLD(warmup_epochs), "1", "linear warm-up length in epochs"},
    {"train", "beta1", T_FLOAT, FLD(beta1), "0.9", "AdamW beta1"},
    {"train", "beta2", T_FLOAT, FLD(beta2), "0.999", "AdamW beta2"},
    {"train", "eps", T_FLOAT, FLD(eps), "1e-8", "AdamW epsilon"},
    {"train", "grad_clip", T_FLOAT, FLD(grad_clip), "1.0", "global gradient norm clip; 0 = off"},
    {"train", "label_smoothing", T_FLOAT, FLD(label_smoothing), "0.1", "cross-entropy label smoothing"},
    {"train", "seed", T_U64, FLD(seed), "0", "RNG seed (not part of the config hash)"},
    {"train", "threads", T_INT, FLD(threads), "0", "0 = all cores (not part of the config hash)"},
    {"train", "max_steps", T_LONG, FLD(max_steps), "0", "stop after this many steps; 0 = no limit"},
    {"train", "eval_every", T_INT, FLD(eval_every), "1",
     "evaluate every N epochs and after the last; 0 = only after the last (not part of the config hash)"},
    {"train", "precision", T_STR, FLD(precision), "fp32",
     "fp32 | bf16: bf16 GEMM inputs with fp32 accumulation and fp32 master weights (needs avx512_bf16 or AMX)"},
    {"moe", "method", T_STR, FLD(method), "dense", "dense | ewa | rmoe | moe | moe-early-ewa | vimoe"},
    {"moe", "experts", T_INT, FLD(experts), "4", "experts per MoE layer N"},
    {"moe", "beta", T_FLOAT, FLD(beta), "0.3", "EWA share rate, in [0, (N-1)/N]"},
    {"moe", "blocks", T_STR, FLD(blocks), "every_other", "every_other | last:L | list 1,3,5"},
    {"moe", "top_k", T_INT, FLD(top_k), "1", "router top-k"},
    {"moe", "capacity_factor", T_FLOAT, FLD(capacity_factor), "1.25", "expert capacity factor"},
    {"moe", "aux_coef", T_FLOAT, FLD(aux_coef), "0.01", "load-balancing loss weight"},
    {"moe", "zloss_coef", T_FLOAT, FLD(zloss_coef), "0", "router z-loss weight"},
    {"moe", "shared_expert", T_BOOL, FLD(shared_expert), "0", "always-on shared expert (ViMoE)"},
    {"moe", "routing", T_STR, FLD(routing), "token", "token | image"},
    {"moe", "ewa_epochs", T_FLOAT, FLD(ewa_epochs), "-1", "early-EWA length; -1 = a quarter of train.epochs"},
    {"moe", "rmoe_partition", T_STR, FLD(rmoe_partition), "batch", "batch | sample"},
    {"finetune", "init_checkpoint", T_STR, FLD(init_checkpoint), "", "dense checkpoint to start from"},
    {"finetune", "reset_head", T_BOOL, FLD(reset_head), "0", "re-initialise the classifier head"},
};
#define NKEYS ((int)(sizeof KEYS / sizeof KEYS[0]))
#define PRESET_ROW 0 /* KEYS[0] is model.preset */

static void *field(RunConfig *c, const ConfigKey *k) { return (char *)c + k->off; }
static const void *cfield(const RunConfig *c, const ConfigKey *k) {
    return (const char *)c + k->off;
}

static int find_key(const char *section, const char *key) {
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(KEYS[i].section, section) && !strcmp(KEYS[i].key, key)) return i;
    return -1;
}

static int known_section(const char *section) {
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(KEYS[i].section, section)) return 1;
    return 0;
}

/* ---------------------------------------------------------------- values */

/* Each parser returns NULL on success or the reason the text was rejected. */
static const char *parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end) return "is not an integer";
    if (errno == ERANGE || v < lo || v > hi) return "is out of range";
    *out = v;
    return NULL;
}

static const char *parse_u64(const char *s, uint64_t *out) {
    if ((*s < '0' || *s > '9') && *s != '+') return "is not a non-negative integer";
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end) return "is not a non-negative integer";
    if (errno == ERANGE) return "is out of range";
    *out = (uint64_t)v;
    return NULL;
}

static const char *parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (end == s || *end) return "is not a number";
    if (errno == ERANGE) return "is out of range for a float";
    if (!isfinite(v)) return "is not a finite number";
    *out = v;
    return NULL;
}

static const char *parse_bool(const char *s, int *out) {
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) { *out = 1; return NULL; }
        if (!strcasecmp(s, no[i])) { *out = 0; return NULL; }
    }
    return "is not a boolean (0/1, true/false, yes/no, on/off)";
}

static const char *parse_str(const char *s, size_t size, char *out) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return "contains a control character";
    if (strlen(s) >= size) return "is too long";
    memcpy(out, s, strlen(s) + 1);
    return NULL;
}

/* Parses s into row k of c; NULL or the reason. */
static const char *parse_value(const ConfigKey *k, const char *s, RunConfig *c) {
    void *f = field(c, k);
    long l;
    const char *why;
    switch (k->type) {
    case T_INT:
        if ((why = parse_long(s, INT_MIN, INT_MAX, &l))) return why;
        *(int *)f = (int)l;
        return NULL;
    case T_LONG:
        if ((why = parse_long(s, LONG_MIN, LONG_MAX, &l))) return why;
        *(long *)f = l;
        return NULL;
    case T_U64: return parse_u64(s, f);
    case T_FLOAT: return parse_float(s, f);
    case T_BOOL: return parse_bool(s, f);
    case T_STR: return parse_str(s, k->size, f);
    }
    return "has an unknown type";
}

/* Shortest "%.Ng" (N <= 9) that reads back as exactly v. */
static void format_float(char *buf, size_t n, float v) {
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

static void format_value(const ConfigKey *k, const RunConfig *c, char *buf, size_t n) {
    const void *f = cfield(c, k);
    switch (k->type) {
    case T_INT:
    case T_BOOL: snprintf(buf, n, "%d", *(const int *)f); break;
    case T_LONG: snprintf(buf, n, "%ld", *(const long *)f); break;
    case T_U64: snprintf(buf, n, "%" PRIu64, *(const uint64_t *)f); break;
    case T_FLOAT: format_float(buf, n, *(const float *)f); break;
    case T_STR: snprintf(buf, n, "%s", (const char *)f); break;
    }
}

int config_format_key(const RunConfig *c, const char *name, char *buf, size_t n) {
    const char *dot = strchr(name, '.');
    for (int i = 0; dot && i < NKEYS; i++)
        if (!strncmp(KEYS[i].section, name, (size_t)(dot - name)) && !KEYS[i].section[dot - name] &&
            !strcmp(KEYS[i].key, dot + 1)) {
            format_value(&KEYS[i], c, buf, n);
            return 0;
        }
    if (n) buf[0] = '\0';
    return -1;
}

void config_defaults(RunConfig *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NKEYS; i++) parse_value(&KEYS[i], KEYS[i].def, c);
}

/* ---------------------------------------------------------------- presets */

typedef struct {
    int dim, depth, heads;
    float mlp_ratio;
    int patch;
} Preset;

static const char *const PRESET_NAMES[] = {
    "vit-tiny", "vit-small", "vit-base", "vit-r1",
    "vit-micro", "vit-mini", "vit-cpu-small", "vit-s-cifar",
};
static const Preset PRESETS[] = { /* same order as PRESET_NAMES */
    {192, 12, 3, 4, 16}, {384, 12, 6, 4, 16}, {768, 12, 12, 4, 16}, {192, 6, 3, 4, 4},
    {64, 4, 2, 2, 4},    {96, 4, 3, 2, 4},    {128, 6, 4, 2, 4},    {384, 12, 6, 4, 4},
};
#define NPRESETS ((int)(sizeof PRESETS / sizeof PRESETS[0]))
_Static_assert(sizeof PRESET_NAMES / sizeof PRESET_NAMES[0] == sizeof PRESETS / sizeof PRESETS[0],
               "one name per preset");

const char *const *config_preset_names(int *n) {
    if (n) *n = NPRESETS;
    return PRESET_NAMES;
}

static int find_preset(const char *name) {
    for (int i = 0; i < NPRESETS; i++)
        if (!strcmp(PRESET_NAMES[i], name)) return i;
    return -1;
}

/* ", did you mean 'x'?" when v is close to one of the n names, else "". */
static void did_you_mean(const char *v, const char *const *names, int n, char *buf, size_t size) {
    const char *best = str_closest(v, names, n);
    if (best) snprintf(buf, size, "; did you mean '%s'?", best);
    else buf[0] = '\0';
}

/* "a, b, c" of the n names. */
static void join_names(const char *const *names, int n, char *buf, size_t size) {
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i) strncat(buf, ", ", size - strlen(buf) - 1);
        strncat(buf, names[i], size - strlen(buf) - 1);
    }
}

static int unknown_preset(Err *err, const char *name) {
    char known[256], hint[96];
    join_names(PRESET_NAMES, NPRESETS, known, sizeof known);
    did_you_mean(name, PRESET_NAMES, NPRESETS, hint, sizeof hint);
    return err_set(err, ERR_USAGE, "unknown preset '%s' (known: %s)%s", name, known, hint);
}

int config_apply_preset(RunConfig *c, const char *name, Err *err) {
    if (!name[0]) return 0; /* "" = no preset */
    int i = find_preset(name);
    if (i < 0) return unknown_preset(err, name);
    const Preset *p = &PRESETS[i];
    c->dim = p->dim;
    c->depth = p->depth;
    c->heads = p->heads;
    c->mlp_ratio = p->mlp_ratio;
    c->patch = p->patch;
    snprintf(c->pool, sizeof c->pool, "cls");
    snprintf(c->preset, sizeof c->preset, "%s", name);
    return 0;
}

/* ---------------------------------------------------------------- loading */

typedef struct {
    const char *origin;        /* file name or "<string>" */
    RunConfig given;           /* explicitly given values, by row */
    unsigned char set[NKEYS];  /* row was given (file or --set) */
    int line[NKEYS];           /* file line of the row, 0 = not from the file */
    const char *pos;           /* reader position in the text */
    int lineno;                /* line the reader handed out last */
    int long_line;             /* line whose value sits in long_val */
    char long_val[1024];
    int err_line;              /* first error found by reader/handler */
    Err err;
    const char *set_arg[NKEYS]; /* the --set argument that gave the row, if any */
} LoadCtx;

/* Gives the value of row i (parsed from s) to the context; `where` names the
 * place for messages ("f.ini: line 3" or "--set 'a.b=c'"). */
static int give(LoadCtx *x, int i, const char *s, const char *where, Err *err) {
    const ConfigKey *k = &KEYS[i];
    const char *why = parse_value(k, s, &x->given);
    if (!why && i == PRESET_ROW && s[0] && find_preset(s) < 0) {
        Err e;
        unknown_preset(&e, s);
        return err_set(err, ERR_USAGE, "%s: model.preset: %s", where, e.msg);
    }
    if (why) {
        size_t len = strlen(s);
        int show = len > 64 ? 64 : (int)len;
        if (k->type == T_STR && !strcmp(why, "is too long"))
            return err_set(err, ERR_USAGE, "%s: %s.%s = '%.*s%s' is too long (max %zu characters)",
                           where, k->section, k->key, show, s, len > 64 ? "..." : "", k->size - 1);
        return err_set(err, ERR_USAGE, "%s: %s.%s = '%.*s%s' %s", where, k->section, k->key,
                       show, s, len > 64 ? "..." : "", why);
    }
    x->set[i] = 1;
    return 0;
}

/* " (did you mean 'x'?)" for the known key closest to section.key, or "". */
static void suggest_key(const char *section, const char *key, char *buf, size_t n) {
    const char *names[NKEYS];
    char full[NKEYS][64], want[160];
    for (int i = 0; i < NKEYS; i++) {
        snprintf(full[i], sizeof full[i], "%s.%s", KEYS[i].section, KEYS[i].key);
        names[i] = full[i];
    }
    snprintf(want, sizeof want, "%s.%s", section, key);
    const char *best = NULL;
    for (int i = 0; i < NKEYS && !best; i++)   /* the key in another section: [train] beta */
        if (!strcmp(KEYS[i].key, key)) best = full[i];
    if (!best) best = str_closest(want, names, NKEYS);
    if (best) snprintf(buf, n, " (did you mean '%s'?)", best);
    else buf[0] = '\0';
}

static int lookup(const char *section, const char *key, const char *where, Err *err) {
    int i = find_key(section, key);
    if (i >= 0) return i;
    char hint[128];
    suggest_key(section, key, hint, sizeof hint);
    if (!section[0])
        err_set(err, ERR_USAGE, "%s: key '%s' is outside any [section]%s", where, key, hint);
    else if (!known_section(section))
        err_set(err, ERR_USAGE, "%s: unknown section [%s] (key '%s')%s", where, section, key, hint);
    else
        err_set(err, ERR_USAGE, "%s: unknown key '%s' in [%s]%s", where, key, section, hint);
    return -1;
}

static int ini_handler_cb(void *user, const char *section, const char *name, const char *value) {
    LoadCtx *x = user;
    if (x->err_line) return 1; /* report only the first problem */
    char where[1024];
    snprintf(where, sizeof where, "%s: line %d", x->origin, x->lineno);
    if (x->long_line == x->lineno && !strcmp(value, "\x1f")) value = x->long_val;
    int i = lookup(section, name, where, &x->err);
    if (i >= 0 && x->line[i]) {
        err_set(&x->err, ERR_USAGE, "%s: duplicate key '%s' in [%s] (first on line %d)", where,
                name, section, x->line[i]);
        i = -1;
    } else if (i >= 0 && give(x, i, value, where, &x->err)) {
        i = -1;
    }
    if (i < 0) {
        x->err_line = x->lineno;
        return 0;
    }
    x->line[i] = x->lineno;
    return 1;
}

static int is_blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

/* Start of an inline comment (';' after whitespace, as inih) in [p, end), or end. */
static const char *comment_start(const char *p, const char *end) {
    for (const char *q = p; q < end; q++)
        if (*q == ';' && q > p && is_blank(q[-1])) return q;
    return end;
}

static void long_line_error(LoadCtx *x, const char *what) {
    if (x->err_line) return;
    x->err_line = x->lineno;
    err_set(&x->err, ERR_USAGE, "%s: line %d: %s", x->origin, x->lineno, what);
}

/* A line longer than inih's buffer: hand inih "key=\x1f" and keep the value
 * (stripped as inih would) in long_val for the handler. */
static void shorten_line(LoadCtx *x, const char *p, const char *end, char *str, int num) {
    snprintf(str, (size_t)num, "\n");
    while (p < end && is_blank(*p)) p++;
    if (p < end && (*p == ';' || *p == '#')) return; /* a long comment */
    const char *cend = comment_start(p, end);
    const char *sep = p;
    while (sep < cend && *sep != '=' && *sep != ':') sep++;
    const char *kend = sep;
    while (kend > p && is_blank(kend[-1])) kend--;
    if (sep == cend || kend - p + 4 > num) {
        long_line_error(x, "line too long");
        return;
    }
    const char *v = sep + 1, *vend = comment_start(v, end);
    while (v < vend && is_blank(*v)) v++;
    while (vend > v && is_blank(vend[-1])) vend--;
    if ((size_t)(vend - v) >= sizeof x->long_val) {
        long_line_error(x, "value too long");
        return;
    }
    memcpy(x->long_val, v, (size_t)(vend - v));
    x->long_val[vend - v] = '\0';
    x->long_line = x->lineno;
    snprintf(str, (size_t)num, "%.*s=\x1f\n", (int)(kend - p), p);
}

/* fgets-style reader over the in-memory text; one call = one line. */
static char *ini_reader_cb(char *str, int num, void *stream) {
    LoadCtx *x = stream;
    size_t len;
    const char *line = ini_text_next_line(&x->pos, &x->lineno, &len);
    if (!line) return NULL;
    if (len + 1 <= (size_t)num) {
        memcpy(str, line, len);
        str[len] = '\0';
    } else {
        shorten_line(x, line, line + len, str, num);
    }
    return str;
}

static int parse_text(LoadCtx *x, const char *text, Err *err) {
    x->pos = text;
    int r = ini_parse_stream(ini_reader_cb, x, ini_handler_cb, x);
    if (r > 0 && (!x->err_line || r < x->err_line))
        return err_set(err, ERR_USAGE, "%s: line %d: syntax error", x->origin, r);
    if (x->err_line) return err_set(err, ERR_USAGE, "%s", x->err.msg);
    if (r < 0) return err_set(err, ERR_USAGE, "%s: cannot parse (inih error %d)", x->origin, r);
    return 0;
}

/* One "section.key=value" override. */
static int apply_set(LoadCtx *x, const char *arg, Err *err) {
    char where[1100], buf[1100];
    snprintf(where, sizeof where, "--set '%s'", arg);
    if (strlen(arg) >= sizeof buf) return err_set(err, ERR_USAGE, "%s: too long", where);
    memcpy(buf, arg, strlen(arg) + 1);
    char *eq = strchr(buf, '=');
    char *dot = eq ? memchr(buf, '.', (size_t)(eq - buf)) : NULL;
    if (!eq || !dot)
        return err_set(err, ERR_USAGE, "%s: expected section.key=value", where);
    *eq = '\0';
    *dot = '\0';
    char *section = buf, *key = dot + 1, *value = eq + 1;
    str_trim(section);
    str_trim(key);
    str_trim(value);
    if (!section[0] || !key[0])
        return err_set(err, ERR_USAGE, "%s: expected section.key=value", where);
    int i = lookup(section, key, where, err);
    if (i < 0) return ERR_USAGE;
    int rc = give(x, i, value, where, err);
    if (!rc) x->set_arg[i] = arg;
    return rc;
}

/* The given key (only --set ones if only_set) that msg names first; -1 none. */
static int blame_key(const LoadCtx *x, const char *msg, int only_set) {
    const char *best = NULL;
    int bi = -1;
    for (int i = 0; i < NKEYS; i++) {
        if (!x->set[i] || (only_set && !x->set_arg[i])) continue;
        char name[96];
        int nl = snprintf(name, sizeof name, "%s.%s", KEYS[i].section, KEYS[i].key);
        for (const char *p = strstr(msg, name); p; p = strstr(p + 1, name)) {
            char after = p[nl], before = p > msg ? p[-1] : ' ';
            if (isalnum((unsigned char)after) || after == '_' || isalnum((unsigned char)before) ||
                before == '_' || before == '.')
                continue;   /* part of a longer name */
            if (!best || p < best) { best = p; bi = i; }
            break;
        }
    }
    return bi;
}

/* Where the key a validation message names first was given: "--set '...'",
 * "FILE: line N", or the origin (a default or a preset's value). A key given
 * by --set is preferred over one from the file when the message names both
 * ("data.groups = 16 and data.group_size = 999 ..." after --set
 * data.group_size=999 blames the --set): the override made the conflict. */
static void blame(const LoadCtx *x, const char *msg, char *where, size_t n) {
    int bi = blame_key(x, msg, 1);
    if (bi < 0) bi = blame_key(x, msg, 0);
    if (bi >= 0 && x->set_arg[bi]) snprintf(where, n, "--set '%s'", x->set_arg[bi]);
    else if (bi >= 0 && x->line[bi]) snprintf(where, n, "%s: line %d", x->origin, x->line[bi]);
    else snprintf(where, n, "%s", x->origin ? x->origin : "");
}

/* Defaults, then the preset, then every explicitly given key, then validate. */
static int resolve(const LoadCtx *x, RunConfig *c, Err *err) {
    RunConfig r;
    config_defaults(&r);
    if (x->set[PRESET_ROW]) {
        config_apply_preset(&r, x->given.preset, NULL); /* name checked in give() */
        memcpy(r.preset, x->given.preset, sizeof r.preset);
    }
    for (int i = 0; i < NKEYS; i++)
        if (i != PRESET_ROW && x->set[i])
            memcpy(field(&r, &KEYS[i]), cfield(&x->given, &KEYS[i]), KEYS[i].size);
    Err e;
    if (config_validate(&r, &e)) {
        char where[1200];
        blame(x, e.msg, where, sizeof where);
        if (where[0]) return err_set(err, ERR_USAGE, "%s: %s", where, e.msg);
        return err_set(err, ERR_USAGE, "%s", e.msg);
    }
    *c = r;
    return 0;
}

static int load(RunConfig *c, const char *text, const char *origin, int n_set,
                char *const *sets, Err *err) {
    LoadCtx *x = calloc(1, sizeof *x);
    if (!x) return err_set(err, ERR_RUNTIME, "out of memory");
    x->origin = origin;
    int rc = text ? parse_text(x, text, err) : 0;
    for (int i = 0; !rc && i < n_set; i++) rc = apply_set(x, sets[i], err);
    if (!rc) rc = resolve(x, c, err);
    free(x);
    return rc;
}

#define MAX_CONFIG_BYTES (1 << 20)

int config_load(RunConfig *c, const char *path, int n_set, char *const *sets, Err *err) {
    char *text = NULL;
    if (path && fs_read_file(path, MAX_CONFIG_BYTES, 1, ERR_USAGE, &text, NULL, err)) return ERR_USAGE;
    int rc = load(c, text, path, n_set, sets, err);
    free(text);
    return rc;
}

int config_load_string(RunConfig *c, const char *text, const char *origin, int n_set,
                       char *const *sets, Err *err) {
    if (!origin) origin = "<string>";
    return load(c, text ? text : "", origin, n_set, sets, err);
}

/* ---------------------------------------------------------------- validation */

static int one_of(const char *v, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(v, *list)) return 1;
    return 0;
}

static int check_enum(const char *key, const char *v, const char *const *list, Err *err) {
    if (one_of(v, list)) return 0;
    int n = 0;
    while (list[n]) n++;
    char all[256], hint[96];
    join_names(list, n, all, sizeof all);
    did_you_mean(v, list, n, hint, sizeof hint);
    return err_set(err, ERR_USAGE, "%s = '%s' must be one of: %s%s", key, v, all, hint);
}

static int check_min(const char *key, long v, long min, Err *err) {
    if (v >= min) return 0;
    return err_set(err, ERR_USAGE, "%s = %ld must be >= %ld", key, v, min);
}

static int check_bool(const char *key, int v, Err *err) {
    if (v == 0 || v == 1) return 0;
    return err_set(err, ERR_USAGE, "%s = %d must be 0 or 1", key, v);
}

/* lo <= v (or lo < v when open_lo) and v < hi (or v <= hi when closed_hi);
 * hi = INFINITY for no upper bound. */
static int check_range(const char *key, float v, double lo, int open_lo, double hi,
                       int closed_hi, Err *err) {
    int ok = (open_lo ? v > lo : v >= lo) && (closed_hi ? v <= hi : v < hi);
    if (ok) return 0;
    if (isinf(hi))
        return err_set(err, ERR_USAGE, "%s = %g must be %s %g", key, (double)v,
                       open_lo ? ">" : ">=", lo);
    return err_set(err, ERR_USAGE, "%s = %g is outside %c%g, %g%c", key, (double)v,
                   open_lo ? '(' : '[', lo, hi, closed_hi ? ']' : ')');
}

/* Parses a non-negative decimal int occupying [s, *end) fully; -1 if none. */
static long parse_nonneg(const char *s, char **end) {
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    long v = strtol(s, end, 10);
    return errno == ERANGE || v > INT_MAX ? -1 : v;
}

static int check_classes(const char *v, Err *err) {
    if (!strcmp(v, "all")) return 0;
    char *e1 = NULL, *e2 = NULL;
    long lo = parse_nonneg(v, &e1);
    long hi = lo >= 0 && *e1 == '-' ? parse_nonneg(e1 + 1, &e2) : -1;
    if (hi < 0 || *e2)
        return err_set(err, ERR_USAGE, "data.classes = '%s': expected all or LO-HI", v);
    if (lo > hi)
        return err_set(err, ERR_USAGE, "data.classes = '%s': LO %ld is greater than HI %ld", v,
                       lo, hi);
    return 0;
}

/* moe.blocks: the grammar has one parser, vit_parse_moe_blocks (core/vit.c);
 * a method with MoE layers must select at least one block. */
static int check_blocks(const RunConfig *c, Err *err) {
    unsigned char mask[VIT_MAX_DEPTH];
    if (vit_parse_moe_blocks(c->blocks, c->depth, mask, err)) return ERR_USAGE;
    int any = 0;
    for (int l = 0; l < c->depth; l++) any |= mask[l];
    if (!any && method_reads_key(c, "moe", "blocks"))
        return err_set(err, ERR_USAGE, "moe.blocks = %s selects no block of a depth-%d model (moe.method = %s)",
                       c->blocks, c->depth, c->method);
    return 0;
}

static int validate_model(const RunConfig *c, Err *err) {
    static const char *const pools[] = {"cls", "mean", "avg", NULL};
    if (c->preset[0] && find_preset(c->preset) < 0) {
        Err e;
        unknown_preset(&e, c->preset);
        return err_set(err, ERR_USAGE, "model.preset: %s", e.msg);
    }
    if (c->depth > VIT_MAX_DEPTH)
        return err_set(err, ERR_USAGE, "model.depth = %d exceeds VIT_MAX_DEPTH = %d", c->depth, VIT_MAX_DEPTH);
    if (check_min("model.dim", c->dim, 1, err) || check_min("model.depth", c->depth, 1, err) ||
        check_min("model.heads", c->heads, 1, err) || check_min("model.patch", c->patch, 1, err))
        return ERR_USAGE;
    if (c->dim % c->heads)
        return err_set(err, ERR_USAGE, "model.dim = %d is not divisible by model.heads = %d",
                       c->dim, c->heads);
    double hidden = c->dim * (double)c->mlp_ratio;
    if (!(c->mlp_ratio > 0) || hidden < 1 || hidden != floor(hidden))
        return err_set(err, ERR_USAGE,
                       "model.mlp_ratio = %g: model.dim * mlp_ratio = %g must be an integer >= 1",
                       (double)c->mlp_ratio, hidden);
    if (check_min("model.pn_width", c->pn_width, 1, err)) return ERR_USAGE;
    return check_enum("model.pool", c->pool, pools, err);
}

/* ---------------------------------------------------------------- dataset kinds */

int config_is_points(const RunConfig *c) {
    return !strcmp(c->dataset, "shapes3d") || !strcmp(c->dataset, "modelnet40");
}

/* The datasets a key applies to (issue 9); a key not listed applies to every
 * dataset. Grids share keys across datasets (table1.ini's profiles set the
 * 3D keys for its image runs too), so a key the dataset ignores is accepted
 * (config_ignored_keys reports it) and stays in the config hash (leaving it
 * out would change the run id of every existing run). The exceptions are
 * data.classes and data.train_subset, which select the training data: on a
 * point-cloud set they are an error (validate_data). */
enum { FOR_IMAGES = 1, FOR_SHAPES3D = 2, FOR_MODELNET40 = 4, FOR_POINTS = FOR_SHAPES3D | FOR_MODELNET40 };
static const struct {
    const char *name;
    int applies;
} DATASET_KEYS[] = {
    {"model.patch", FOR_IMAGES},    {"data.train_subset", FOR_IMAGES}, {"data.classes", FOR_IMAGES},
    {"data.dir", FOR_IMAGES | FOR_MODELNET40},
    {"model.pn_width", FOR_POINTS}, {"data.points", FOR_POINTS},       {"data.groups", FOR_POINTS},
    {"data.group_size", FOR_POINTS}, {"data.train_size", FOR_SHAPES3D}, {"data.test_size", FOR_SHAPES3D},
};

int config_ignored_keys(const RunConfig *c, char *buf, size_t n) {
    int bit = !strcmp(c->dataset, "shapes3d") ? FOR_SHAPES3D : !strcmp(c->dataset, "modelnet40") ? FOR_MODELNET40
                                                                                                   : FOR_IMAGES;
    RunConfig d;
    config_defaults(&d);
    int count = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof DATASET_KEYS / sizeof DATASET_KEYS[0]; i++) {
        char v[600], dv[600];
        config_format_key(c, DATASET_KEYS[i].name, v, sizeof v);
        config_format_key(&d, DATASET_KEYS[i].name, dv, sizeof dv);
        if ((DATASET_KEYS[i].applies & bit) || !strcmp(v, dv)) continue;
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s = %s", count++ ? ", " : "", DATASET_KEYS[i].name, v);
    }
    return count;
}

static int validate_data(const RunConfig *c, Err *err) {
    static const char *const sets[] = {"fashion-mnist", "cifar10", "cifar100", "shapes3d",
                                       "modelnet40", NULL};
    if (check_enum("data.dataset", c->dataset, sets, err) ||
        check_min("data.train_subset", c->train_subset, 0, err) ||
        check_min("data.val_size", c->val_size, -1, err) ||
        check_min("data.points", c->points, 16, err) || check_min("data.groups", c->groups, 1, err) ||
        check_min("data.group_size", c->group_size, 1, err) ||
        check_min("data.train_size", c->train_size, 1, err) ||
        check_min("data.test_size", c->test_size, 1, err))
        return ERR_USAGE;
    if (config_is_points(c) && strcmp(c->classes, "all"))
        return err_set(err, ERR_USAGE, "data.classes = %s applies to image datasets only (data.dataset = %s)",
                       c->classes, c->dataset);
    if (config_is_points(c) && c->train_subset)
        return err_set(err, ERR_USAGE, "data.train_subset = %d applies to image datasets only (data.dataset = %s)",
                       c->train_subset, c->dataset);
    if (c->groups > c->points || c->group_size > c->points)
        return err_set(err, ERR_USAGE, "data.groups = %d and data.group_size = %d must not exceed data.points = %d",
                       c->groups, c->group_size, c->points);
    return check_classes(c->classes, err);
}

static int validate_train(const RunConfig *c, Err *err) {
    const double inf = INFINITY;
    if (check_min("train.epochs", c->epochs, 1, err) ||
        check_min("train.batch_size", c->batch_size, 1, err) ||
        check_range("train.lr", c->lr, 0, 1, inf, 0, err) ||
        check_range("train.min_lr", c->min_lr, 0, 0, inf, 0, err) ||
        check_range("train.weight_decay", c->weight_decay, 0, 0, inf, 0, err) ||
        check_range("train.warmup_epochs", c->warmup_epochs, 0, 0, inf, 0, err) ||
        check_range("train.beta1", c->beta1, 0, 0, 1, 0, err) ||
        check_range("train.beta2", c->beta2, 0, 0, 1, 0, err) ||
        check_range("train.eps", c->eps, 0, 1, inf, 0, err) ||
        check_range("train.grad_clip", c->grad_clip, 0, 0, inf, 0, err) ||
        check_range("train.label_smoothing", c->label_smoothing, 0, 0, 1, 0, err) ||
        check_min("train.threads", c->threads, 0, err) ||
        check_min("train.max_steps", c->max_steps, 0, err) ||
        check_min("train.eval_every", c->eval_every, 0, err))
        return ERR_USAGE;
    static const char *const precisions[] = {"fp32", "bf16", NULL};
    return check_enum("train.precision", c->precision, precisions, err);
}

static int validate_moe_kinds(const RunConfig *c, Err *err) {
    static const char *const routings[] = {"token", "image", NULL};
    static const char *const parts[] = {"batch", "sample", NULL};
    if (check_enum("moe.routing", c->routing, routings, err) ||
        check_enum("moe.rmoe_partition", c->rmoe_partition, parts, err))
        return ERR_USAGE;
    if (c->ewa_epochs != -1 && !(c->ewa_epochs >= 0))
        return err_set(err, ERR_USAGE, "moe.ewa_epochs = %g must be -1 (auto) or >= 0",
                       (double)c->ewa_epochs);
    return 0;
}

/* Per-key ranges of [moe]; the cross-field rules of each method are in
 * methods.c (method_validate). */
static int validate_moe(const RunConfig *c, Err *err) {
    int n;
    const char *const *methods = method_names(&n);
    const char *list[16];
    for (int i = 0; i < n && i < 15; i++) list[i] = methods[i];
    list[n < 15 ? n : 15] = NULL;
    const double inf = INFINITY;
    if (check_enum("moe.method", c->method, list, err)) return ERR_USAGE;
    if (check_min("moe.experts", c->experts, 1, err) || check_min("moe.top_k", c->top_k, 1, err) ||
        check_range("moe.beta", c->beta, 0, 0, inf, 0, err) ||
        check_blocks(c, err) ||
        check_range("moe.capacity_factor", c->capacity_factor, 0, 1, inf, 0, err) ||
        check_range("moe.aux_coef", c->aux_coef, 0, 0, inf, 0, err) ||
        check_range("moe.zloss_coef", c->zloss_coef, 0, 0, inf, 0, err) ||
        check_bool("moe.shared_expert", c->shared_expert, err))
        return ERR_USAGE;
    if (validate_moe_kinds(c, err)) return ERR_USAGE;
    return method_validate(c, err);
}

int config_validate(const RunConfig *c, Err *err) {
    if (validate_model(c, err) || validate_data(c, err) || validate_train(c, err) ||
        validate_moe(c, err))
        return ERR_USAGE;
    if (check_bool("data.augment", c->augment, err) ||
        check_bool("finetune.reset_head", c->reset_head, err))
        return ERR_USAGE;
    return 0;
}

/* ---------------------------------------------------------------- output */

/* Keys left out of the config hash: train.seed, train.threads and
 * train.eval_every (they do not change what is trained) and the keys c's
 * method ignores (methods.h). */
static int hash_excluded(const RunConfig *c, const ConfigKey *k) {
    if (!method_reads_key(c, k->section, k->key)) return 1;
    return !strcmp(k->section, "train") &&
           (!strcmp(k->key, "seed") || !strcmp(k->key, "threads") || !strcmp(k->key, "eval_every"));
}

/* INI text of c; without_run_keys drops the keys hash_excluded names. */
static char *emit_ini(const RunConfig *c, int without_run_keys) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    const char *section = "";
    char val[1024];
    for (int i = 0; i < NKEYS; i++) {
        const ConfigKey *k = &KEYS[i];
        if (strcmp(section, k->section)) {
            section = k->section;
            fprintf(f, "%s[%s]\n", i ? "\n" : "", section);
        }
        if (without_run_keys && hash_excluded(c, k)) continue;
        format_value(k, c, val, sizeof val);
        fprintf(f, "%s =%s%s\n", k->key, val[0] ? " " : "", val);
    }
    if (fclose(f)) {
        free(text);
        return NULL;
    }
    return text;
}

char *config_to_ini(const RunConfig *c) { return emit_ini(c, 0); }

uint64_t config_hash(const RunConfig *c) {
    char *text = emit_ini(c, 1);
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)text; p && *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    free(text);
    return h;
}

int config_write(const RunConfig *c, const char *path, Err *err) {
    char *text = config_to_ini(c);
    if (!text) return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    int rc = fs_write_text_atomic(path, text, err);
    free(text);
    return rc;
}

int config_first_difference(const RunConfig *a, const RunConfig *b, char *key, size_t kn, char *va,
                            char *vb, size_t vn) {
    for (int i = 0; i < NKEYS; i++) {
        format_value(&KEYS[i], a, va, vn);
        format_value(&KEYS[i], b, vb, vn);
        if (strcmp(va, vb)) {
            snprintf(key, kn, "%s.%s", KEYS[i].section, KEYS[i].key);
            return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- listing */

static const char *type_name(KeyType t) {
    switch (t) {
    case T_INT: case T_LONG: return "int";
    case T_U64: return "uint64";
    case T_FLOAT: return "float";
    case T_STR: return "string";
    case T_BOOL: return "bool";
    }
    return "?";
}

void config_print_keys(FILE *f) {
    fprintf(f, "%-24s %-7s %-14s %s\n", "key", "type", "default", "meaning");
    for (int i = 0; i < NKEYS; i++) {
        char full[64];
        snprintf(full, sizeof full, "%s.%s", KEYS[i].section, KEYS[i].key);
        fprintf(f, "%-24s %-7s %-14s %s\n", full, type_name(KEYS[i].type),
                KEYS[i].def[0] ? KEYS[i].def : "\"\"", KEYS[i].doc);
    }
}
