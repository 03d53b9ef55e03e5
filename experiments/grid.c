/* Grid files: parsing (inih) and expansion into resolved runs. The grammar
 * and the run id are documented in grid.h; the local runner is grid_run.c,
 * the job export grid_export.c, the runs.csv recorder runrecord.c. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "grid.h"
#include "methods.h"
#include "util.h"
#include "../core/fsutil.h"

#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- values */

int grid_split_values(const char *s, char ***items) {
    *items = NULL;
    int n = 0;
    const char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return 0;
    size_t cap = strlen(s) + 1;
    for (;;) {
        char *v = malloc(cap);
        if (!v) abort();
        size_t k = 0;
        while (*p == ' ' || *p == '\t') p++;
        int quoted = 0;
        if (*p == '"') {
            quoted = 1;
            p++;
            while (*p && *p != '"') v[k++] = *p++;
            if (*p != '"') { free(v); goto bad; }
            p++;
            while (*p == ' ' || *p == '\t') p++;
            if (*p && *p != ',') { free(v); goto bad; }
        } else {
            while (*p && *p != ',') v[k++] = *p++;
        }
        v[k] = '\0';
        if (!quoted) str_trim(v);
        if (!v[0]) { free(v); goto bad; }
        *items = xrealloc(*items, sizeof(char *) * (size_t)(n + 1));
        (*items)[n++] = v;
        if (!*p) return n;
        p++; /* the comma */
    }
bad:
    for (int i = 0; i < n; i++) free((*items)[i]);
    free(*items);
    *items = NULL;
    return -1;
}

void grid_free_strs(char **v, int n) {
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

/* ---------------------------------------------------------------- parsing */

#define GRID_MAX_BYTES (1 << 20)

typedef struct {
    char name[32];
    int nsets;
    char **sets;
    int *lines;       /* the grid file's line of each set */
    int nparts;       /* a union profile (grid.h): its grid.union list, split once; 0 otherwise */
    char **parts;
} Profile;

typedef struct {
    GridSpec *g;
    const char *text, *pos;
    int lineno, err_line;
    Err err;
    int have_base, have_seeds, have_out;
    char base_raw[1024], out_raw[1024];
    int nprof;
    Profile *prof;
} GridParse;

static char *reader_cb(char *str, int num, void *stream) {
    GridParse *x = stream;
    if (!ini_text_read_line(&x->pos, &x->lineno, str, num, &x->err_line, &x->err)) return NULL;
    /* inih does not report an empty section: register [profile.X] here */
    char sec[128];
    if (sscanf(str, " [profile.%126[^]]]", sec) == 1) {
        str_trim(sec);
        Profile *p = NULL;
        for (int i = 0; i < x->nprof; i++)
            if (!strcmp(x->prof[i].name, sec)) p = &x->prof[i];
        if (!p && sec[0] && strlen(sec) < sizeof x->prof[0].name) {
            x->prof = xrealloc(x->prof, sizeof(Profile) * (size_t)(x->nprof + 1));
            p = &x->prof[x->nprof++];
            memset(p, 0, sizeof *p);
            snprintf(p->name, sizeof p->name, "%s", sec);
        }
    }
    return str;
}

static int check_set_syntax(const char *name, Err *err) {
    const char *dot = strchr(name, '.');
    if (!dot || dot == name || !dot[1])
        return err_set(err, ERR_USAGE, "'%s' is not of the form section.key", name);
    return 0;
}

int grid_parse_seeds(const char *value, const char *what, uint64_t **seeds, int *n, Err *err) {
    char **items;
    int m = grid_split_values(value, &items);
    *seeds = NULL;
    *n = 0;
    if (m <= 0) return err_set(err, ERR_USAGE, "%s: expected a list like 0, 1, 2", what);
    uint64_t *v = xrealloc(NULL, sizeof(uint64_t) * (size_t)m);
    int rc = 0;
    for (int i = 0; i < m && !rc; i++) {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(items[i], &end, 10);
        if (items[i][0] < '0' || items[i][0] > '9' || *end || errno)
            rc = err_set(err, ERR_USAGE, "%s: '%s' is not a non-negative integer", what, items[i]);
        for (int j = 0; j < i && !rc; j++)
            if (v[j] == x) rc = err_set(err, ERR_USAGE, "%s: seed %llu listed twice", what, x);
        v[i] = x;
    }
    grid_free_strs(items, m);
    if (rc) {
        free(v);
        return rc;
    }
    *seeds = v;
    *n = m;
    return 0;
}

static int parse_seeds(GridSpec *g, const char *value, Err *err) {
    return grid_parse_seeds(value, "[grid] seeds", &g->seeds, &g->nseeds, err);
}

/* grid.reuse's list of results directories into g (replacing any). */
static int set_reuse(GridSpec *g, const char *value, Err *err) {
    grid_free_strs(g->reuse, g->nreuse);
    g->reuse = NULL;
    g->nreuse = grid_split_values(value, &g->reuse);
    if (g->nreuse > 0) return 0;
    g->nreuse = 0;
    return err_set(err, ERR_USAGE, "%s: expected a list of results directories", GRID_REUSE_KEY);
}

static int handle_grid_key(GridParse *x, const char *name, const char *value) {
    GridSpec *g = x->g;
    if (!strcmp(name, "base")) {
        if (x->have_base) return err_set(&x->err, ERR_USAGE, "[grid] base given twice");
        x->have_base = 1;
        snprintf(x->base_raw, sizeof x->base_raw, "%s", value);
        return 0;
    }
    if (!strcmp(name, "out")) {
        if (x->have_out) return err_set(&x->err, ERR_USAGE, "[grid] out given twice");
        x->have_out = 1;
        snprintf(x->out_raw, sizeof x->out_raw, "%s", value);
        return 0;
    }
    if (!strcmp(name, "seeds")) {
        if (x->have_seeds) return err_set(&x->err, ERR_USAGE, "[grid] seeds given twice");
        x->have_seeds = 1;
        return parse_seeds(g, value, &x->err);
    }
    if (!strcmp(name, "reuse")) {
        if (g->reuse) return err_set(&x->err, ERR_USAGE, "[grid] reuse given twice");
        return set_reuse(g, value, &x->err);
    }
    if (!strcmp(name, "description")) return 0;
    return err_set(&x->err, ERR_USAGE, "unknown key '%s' in [grid] (known: base, seeds, out, reuse, description)",
                   name);
}

/* Number of '+'-joined parts of s. */
static int count_parts(const char *s) {
    int n = 1;
    for (; *s; s++) n += *s == '+';
    return n;
}

/* 1 if a +-joined key has an empty part ("a.b +", "a.b + + c.d"). */
static int has_empty_part(const char *key) {
    for (const char *p = key;;) {
        const char *q = strchr(p, '+');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        int blank = 1;
        for (size_t i = 0; i < n && blank; i++) blank = p[i] == ' ' || p[i] == '\t';
        if (blank) return 1;
        if (!q) return 0;
        p = q + 1;
    }
}

static const GridAxis *axis_of_key(const GridSpec *g, const char *k);

/* The +-joined key's parts, trimmed, as pointers into buf (a copy of key):
 * the one splitter of the helpers below. Returns their number (at most 64). */
static int key_parts(const char *key, char buf[256], char *part[64]) {
    char *ks = NULL;
    int np = 0;
    snprintf(buf, 256, "%s", key);
    for (char *t = strtok_r(buf, "+", &ks); t && np < 64; t = strtok_r(NULL, "+", &ks)) {
        str_trim(t);
        part[np++] = t;
    }
    return np;
}

/* 1 if a part of the +-joined key appears twice in it ("a.b + a.b",
 * "a.b + grid.nseeds + grid.nseeds"); the part goes to dup (size n). */
static int dup_part(const char *key, char *dup, size_t n) {
    char kb[256], *part[64];
    int np = key_parts(key, kb, part);
    for (int i = 0; i < np; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(part[i], part[j])) {
                snprintf(dup, n, "%s", part[i]);
                return 1;
            }
    return 0;
}

/* 1 if the +-joined key has a grid.nseeds part. */
static int has_nseeds_part(const char *key) {
    char kb[256], *part[64];
    int np = key_parts(key, kb, part);
    for (int i = 0; i < np; i++)
        if (!strcmp(part[i], GRID_NSEEDS_KEY)) return 1;
    return 0;
}

static int handle_sweep(GridParse *x, const char *name, const char *value) {
    GridSpec *g = x->g;
    if (!name[0]) return err_set(&x->err, ERR_USAGE, "[sweep] line with an empty key (= %s)", value);
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", name);
        for (char *save = NULL, *k = strtok_r(buf, "+", &save); k; k = strtok_r(NULL, "+", &save)) {
            str_trim(k);
            if (check_set_syntax(k, &x->err)) return ERR_USAGE;
            if (!strcmp(k, GRID_NSEEDS_KEY) && !strchr(name, '+'))
                return err_set(&x->err, ERR_USAGE, "[sweep] %s: join it to the keys of a cell with +, "
                               "e.g. data.dataset + %s = shapes3d+10 (alone it is [grid] seeds)",
                               GRID_NSEEDS_KEY, GRID_NSEEDS_KEY);
            if (!strcmp(k, "train.seed"))
                return err_set(&x->err, ERR_USAGE, "[sweep] train.seed: list the seeds in [grid] seeds");
            if (!strcmp(k, "train.threads"))
                return err_set(&x->err, ERR_USAGE,
                               "[sweep] train.threads: threads are set by the runner (--jobs)");
        }
        if (has_empty_part(name))
            return err_set(&x->err, ERR_USAGE, "[sweep] '%s': empty key in a +-joined list", name);
        if (dup_part(name, buf, sizeof buf))
            return err_set(&x->err, ERR_USAGE, "[sweep] %s: %s appears twice in the key", name, buf);
        char *part[64];
        for (int i = 0, np = key_parts(name, buf, part); i < np; i++) {
            const GridAxis *other = strcmp(part[i], GRID_NSEEDS_KEY) ? axis_of_key(g, part[i]) : NULL;
            if (other)   /* two axes would give one run two values of the key */
                return err_set(&x->err, ERR_USAGE, "[sweep] %s: %s is already swept by '%s' (line %d)", name,
                               part[i], other->key, other->line);
        }
    }
    for (int i = 0; i < g->naxes; i++)
        if (!strcmp(g->axes[i].key, name))
            return err_set(&x->err, ERR_USAGE, "[sweep] %s given twice", name);
    if (strlen(name) >= sizeof g->axes[0].key)
        return err_set(&x->err, ERR_USAGE, "[sweep] key '%s' is too long", name);
    char **items;
    int n = grid_split_values(value, &items);
    if (n == 0) return err_set(&x->err, ERR_USAGE, "[sweep] %s: empty list of values", name);
    if (n < 0)
        return err_set(&x->err, ERR_USAGE,
                       "[sweep] %s = '%s': empty value or bad quoting in the list", name, value);
    for (int i = 0; i < n; i++)
        if (count_parts(items[i]) != count_parts(name)) {
            err_set(&x->err, ERR_USAGE, "[sweep] %s: value '%s' has %d +-joined parts, the key %d",
                    name, items[i], count_parts(items[i]), count_parts(name));
            grid_free_strs(items, n);
            return ERR_USAGE;
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(items[i], items[j])) {
                err_set(&x->err, ERR_USAGE, "[sweep] %s: value '%s' listed twice", name, items[i]);
                grid_free_strs(items, n);
                return ERR_USAGE;
            }
    g->axes = xrealloc(g->axes, sizeof(GridAxis) * (size_t)(g->naxes + 1));
    GridAxis *a = &g->axes[g->naxes++];
    snprintf(a->key, sizeof a->key, "%s", name);
    snprintf(a->sweep_key, sizeof a->sweep_key, "%s", name);
    a->nvals = n;
    a->vals = items;
    a->line = x->lineno;
    snprintf(a->section, sizeof a->section, "sweep");
    return 0;
}

static int handle_profile(GridParse *x, const char *pname, const char *name, const char *value) {
    if (!pname[0] || strlen(pname) >= sizeof x->prof[0].name)
        return err_set(&x->err, ERR_USAGE, "bad profile section name [profile.%s]", pname);
    if (check_set_syntax(name, &x->err)) return ERR_USAGE;
    if (!strcmp(name, "train.seed"))
        return err_set(&x->err, ERR_USAGE, "[profile.%s] train.seed: list the seeds in [grid] seeds",
                       pname);
    Profile *p = NULL;
    for (int i = 0; i < x->nprof; i++)
        if (!strcmp(x->prof[i].name, pname)) p = &x->prof[i];
    if (!p) {
        x->prof = xrealloc(x->prof, sizeof(Profile) * (size_t)(x->nprof + 1));
        p = &x->prof[x->nprof++];
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", pname);
    }
    if (!strcmp(name, GRID_UNION_KEY)) {
        if (p->nparts) return err_set(&x->err, ERR_USAGE, "[profile.%s] %s given twice", pname, name);
        p->nparts = grid_split_values(value, &p->parts);
        if (p->nparts <= 0) {
            p->nparts = 0;
            return err_set(&x->err, ERR_USAGE, "[profile.%s] %s: expected a list of profile names", pname, name);
        }
        return 0;
    }
    size_t kl = strlen(name);
    for (int i = 0; i < p->nsets; i++)
        if (!strncmp(p->sets[i], name, kl) && p->sets[i][kl] == '=')
            return err_set(&x->err, ERR_USAGE, "[profile.%s] %s given twice", pname, name);
    char *s = xrealloc(NULL, kl + strlen(value) + 2);
    sprintf(s, "%s=%s", name, value);
    p->sets = xrealloc(p->sets, sizeof(char *) * (size_t)(p->nsets + 1));
    p->lines = xrealloc(p->lines, sizeof(int) * (size_t)(p->nsets + 1));
    p->lines[p->nsets] = x->lineno;
    p->sets[p->nsets++] = s;
    return 0;
}

/* Slurm's --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (digits only). */
static int slurm_time_ok(const char *s) {
    const char *p = s, *dash = strchr(s, '-');
    if (dash) {
        if (dash == s) return 0;
        for (; p < dash; p++) if (*p < '0' || *p > '9') return 0;
        p = dash + 1;
    }
    int groups = 0;
    while (1) {
        const char *q = p;
        while (*p >= '0' && *p <= '9') p++;
        if (p == q || p - q > 9) return 0;
        groups++;
        if (!*p) break;
        if (*p++ != ':') return 0;
    }
    return groups <= 3;
}

static int slurm_mem_ok(const char *s) {
    const char *p = s;
    while (*p >= '0' && *p <= '9') p++;
    if (p == s) return 0;
    if (*p && strchr("KMGTkmgt", *p)) p++;
    return !*p;
}

static int slurm_positive(const char *name, const char *value, int *out, Err *err) {
    if (*out) return err_set(err, ERR_USAGE, "[slurm] %s given twice", name);
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (end == value || *end || errno || v < 1 || v > 1000000)
        return err_set(err, ERR_USAGE, "[slurm] %s = '%s': expected a whole number >= 1", name, value);
    *out = (int)v;
    return 0;
}

static int handle_slurm(GridParse *x, const char *name, const char *value) {
    GridSlurm *s = &x->g->slurm;
    Err *err = &x->err;
    if (!strcmp(name, "sbatch")) {
        if (value[0] != '-' || strspn(value, "-") == strlen(value))
            return err_set(err, ERR_USAGE, "[slurm] sbatch = '%s': expected an sbatch option such as --account=NAME",
                           value);
        if (!strncmp(value, "--array", 7) || !strncmp(value, "-a", 2) || !strncmp(value, "--output", 8) ||
            !strncmp(value, "-o", 2))
            return err_set(err, ERR_USAGE, "[slurm] sbatch = '%s': --array and --output are set by the export",
                           value);
        s->extra = xrealloc(s->extra, sizeof(char *) * (size_t)(s->nextra + 1));
        s->extra[s->nextra++] = xstrdup(value);
        return 0;
    }
    char *dst = NULL;
    size_t cap = 0;
    if (!strcmp(name, "time")) {
        if (!slurm_time_ok(value))
            return err_set(err, ERR_USAGE,
                           "[slurm] time = '%s': expected minutes, MM:SS, HH:MM:SS or D-HH[:MM[:SS]]", value);
        dst = s->time, cap = sizeof s->time;
    } else if (!strcmp(name, "mem")) {
        if (!slurm_mem_ok(value))
            return err_set(err, ERR_USAGE, "[slurm] mem = '%s': expected a number with an optional K, M, G or T",
                           value);
        dst = s->mem, cap = sizeof s->mem;
    } else if (!strcmp(name, "partition")) {
        if (!value[0] || strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,-") !=
                             strlen(value))
            return err_set(err, ERR_USAGE, "[slurm] partition = '%s': expected a partition name (letters, digits, _ . - ,)",
                           value);
        dst = s->partition, cap = sizeof s->partition;
    } else if (!strcmp(name, "cpus_per_task")) {
        return slurm_positive(name, value, &s->cpus_per_task, err);
    } else if (!strcmp(name, "array_throttle")) {
        return slurm_positive(name, value, &s->array_throttle, err);
    } else {
        return err_set(err, ERR_USAGE,
                       "unknown key '%s' in [slurm] (known: time, mem, partition, cpus_per_task, array_throttle, sbatch)",
                       name);
    }
    if (dst[0]) return err_set(err, ERR_USAGE, "[slurm] %s given twice", name);
    if (strlen(value) >= cap) return err_set(err, ERR_USAGE, "[slurm] %s = '%s': too long", name, value);
    snprintf(dst, cap, "%s", value);
    return 0;
}

static int handler_cb(void *user, const char *section, const char *name, const char *value) {
    GridParse *x = user;
    if (x->err_line) return 1;
    int rc;
    if (!strcmp(section, "grid")) rc = handle_grid_key(x, name, value);
    else if (!strcmp(section, "sweep")) rc = handle_sweep(x, name, value);
    else if (!strncmp(section, "profile.", 8)) rc = handle_profile(x, section + 8, name, value);
    else if (!strcmp(section, "slurm")) rc = handle_slurm(x, name, value);
    else if (!section[0])
        rc = err_set(&x->err, ERR_USAGE, "key '%s' is outside any [section]", name);
    else
        rc = err_set(&x->err, ERR_USAGE,
                     "unknown section [%s] (known: [grid], [sweep], [profile.NAME], [slurm])", section);
    if (rc) {
        x->err_line = x->lineno;
        return 0;
    }
    return 1;
}

/* Every union profile (grid.h) names only plain profiles of the file, each
 * once, and has no other entry. */
static int check_unions(const char *path, const GridParse *x, Err *err) {
    for (int i = 0; i < x->nprof; i++) {
        const Profile *p = &x->prof[i];
        if (!p->nparts) continue;
        if (p->nsets)
            return err_set(err, ERR_USAGE, "%s: [profile.%s]: a %s profile has no other entry (%s): "
                           "put it in its parts", path, p->name, GRID_UNION_KEY, p->sets[0]);
        char **names = p->parts;
        int n = p->nparts, bad = 0;
        for (int k = 0; k < n && !bad; k++) {
            const Profile *q = NULL;
            for (int j = 0; j < x->nprof; j++)
                if (!strcmp(x->prof[j].name, names[k])) q = &x->prof[j];
            for (int j = 0; j < k && !bad; j++)
                if (!strcmp(names[j], names[k]))
                    bad = err_set(err, ERR_USAGE, "%s: [profile.%s] %s: '%s' listed twice", path, p->name,
                                  GRID_UNION_KEY, names[k]);
            if (!bad && !q)
                bad = err_set(err, ERR_USAGE, "%s: [profile.%s] %s: no [profile.%s] section", path, p->name,
                              GRID_UNION_KEY, names[k]);
            else if (!bad && q->nparts)
                bad = err_set(err, ERR_USAGE, "%s: [profile.%s] %s: '%s' is a union itself (parts must be "
                              "plain profiles)", path, p->name, GRID_UNION_KEY, names[k]);
        }
        if (bad) return bad;
    }
    return 0;
}

/* Loads each part of the union profile u into g->parts, all with g's out. */
static int load_union_parts(GridSpec *g, const Profile *u, Err *err) {
    int rc = 0;
    g->parts = calloc((size_t)u->nparts, sizeof *g->parts);
    if (!g->parts) return err_set(err, ERR_RUNTIME, "out of memory");
    for (int k = 0; k < u->nparts && !rc; k++) {
        rc = grid_load(&g->parts[k], g->path, u->parts[k], g->out, err);
        if (!rc) {
            g->nparts++;
            if (g->parts[k].nseeds > g->nseeds) g->nseeds = g->parts[k].nseeds;
        }
    }
    return rc;
}

/* key's +-joined parts, trimmed, without a grid.nseeds part, joined by '+'
 * into out (size n): "a.b + grid.nseeds + c.d" gives "a.b+c.d". */
static void axis_keys_canon(const char *key, char *out, size_t n) {
    char kb[256], *part[64];
    out[0] = '\0';
    for (int i = 0, np = key_parts(key, kb, part); i < np; i++) {
        if (!strcmp(part[i], GRID_NSEEDS_KEY)) continue;
        if (out[0]) strncat(out, "+", n - strlen(out) - 1);
        strncat(out, part[i], n - strlen(out) - 1);
    }
}

/* The axis a profile entry's key replaces: the [sweep] key with the same
 * parts in the same order, spacing and a grid.nseeds part aside (a profile
 * may give its cells their own seed counts, grid.h); -1 when none. */
static int profile_axis(const GridSpec *g, const char *key) {
    char pk[256], ak[256];
    axis_keys_canon(key, pk, sizeof pk);
    for (int a = 0; a < g->naxes; a++) {
        axis_keys_canon(g->axes[a].sweep_key, ak, sizeof ak);
        if (pk[0] && !strcmp(pk, ak)) return a;
    }
    return -1;
}

/* Whether a profile key can only mean a sweep axis (+-joined keys or
 * grid.nseeds): no config key has a '+'. */
static int is_axis_key(const char *key) {
    return strchr(key, '+') || strstr(key, GRID_NSEEDS_KEY);
}

static int no_such_axis(const GridSpec *g, const char *path, const char *pname, const char *key,
                        int line, Err *err) {
    char swept[512] = "";
    for (int a = 0; a < g->naxes; a++) {
        if (a) strncat(swept, "; ", sizeof swept - strlen(swept) - 1);
        strncat(swept, g->axes[a].sweep_key, sizeof swept - strlen(swept) - 1);
    }
    return err_set(err, ERR_USAGE,
                   "%s: line %d: [profile.%s] %s: names no [sweep] key (a profile replaces a swept "
                   "key's values, the same keys in the same order, optionally with %s joined on; "
                   "[sweep] has: %s)", path, line, pname, key, GRID_NSEEDS_KEY, swept[0] ? swept : "none");
}

/* An entry of the chosen profile that is not a config override: grid.seeds
 * or grid.reuse (replacing [grid]'s), or a swept key (axis >= 0: replacing
 * that axis's values). */
static int apply_grid_entry(GridSpec *g, const char *path, const char *pname, const char *key,
                            const char *val, int axis, int line, Err *err) {
    Err e = {0};
    if (!strcmp(key, GRID_REUSE_KEY)) {
        if (set_reuse(g, val, &e)) return err_set(err, ERR_USAGE, "%s: [profile.%s] %s", path, pname, e.msg);
        return 0;
    }
    if (axis < 0) {   /* grid.seeds */
        free(g->seeds);
        g->seeds = NULL;
        if (parse_seeds(g, val, &e))
            return err_set(err, ERR_USAGE, "%s: [profile.%s] grid.seeds: %s", path, pname, e.msg);
        return 0;
    }
    char **items;
    int n = grid_split_values(val, &items), bad = n <= 0;
    for (int v = 0; v < n && !bad; v++) bad = count_parts(items[v]) != count_parts(key);
    if (bad) {
        if (n > 0) grid_free_strs(items, n);
        return err_set(err, ERR_USAGE, "%s: [profile.%s] %s = '%s': expected a non-empty list of values with %d "
                       "+-joined parts", path, pname, key, val, count_parts(key));
    }
    if (strlen(key) >= sizeof g->axes[axis].key) {
        grid_free_strs(items, n);
        return err_set(err, ERR_USAGE, "%s: [profile.%s] key '%s' is too long", path, pname, key);
    }
    snprintf(g->axes[axis].key, sizeof g->axes[axis].key, "%s", key);   /* its values' parts */
    grid_free_strs(g->axes[axis].vals, g->axes[axis].nvals);
    g->axes[axis].vals = items;
    g->axes[axis].nvals = n;
    g->axes[axis].line = line;
    snprintf(g->axes[axis].section, sizeof g->axes[axis].section, "profile.%s", pname);
    return 0;
}

/* If msg is config_load's message about one of the overrides sets[0..n)
 * ("--set 'k=v': why"), that set's index, with *why after it; else -1. The
 * grid file's overrides then name their line, not a --set nobody typed. */
static int set_of_message(const char *msg, char *const *sets, int n, const char **why) {
    if (strncmp(msg, "--set '", 7)) return -1;
    for (int i = 0; i < n; i++) {
        size_t L = strlen(sets[i]);
        if (!strncmp(msg + 7, sets[i], L) && !strncmp(msg + 7 + L, "': ", 3)) {
            *why = msg + 10 + L;
            return i;
        }
    }
    return -1;
}

/* Checks base + profile overrides with config_load. */
static int check_profile(const GridSpec *g, const Profile *p, Err *err) {
    RunConfig c;
    Err e = {0};
    if (!config_load(&c, g->base, p->nsets, p->sets, &e)) return 0;
    const char *why;
    int i = set_of_message(e.msg, p->sets, p->nsets, &why);
    if (i >= 0)
        return err_set(err, ERR_USAGE, "%s: line %d: [profile.%s] %s: %s", g->path, p->lines[i], p->name, p->sets[i],
                       why);
    return err_set(err, ERR_USAGE, "%s: [profile.%s]: %s", g->path, p->name, e.msg);
}

int grid_load(GridSpec *g, const char *path, const char *profile, const char *out_override,
              Err *err) {
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", path);
    char *text = NULL;
    if (fs_read_file(path, GRID_MAX_BYTES, 1, ERR_USAGE, &text, NULL, err)) return ERR_USAGE;
    GridParse x = {.g = g, .text = text, .pos = text};
    int r = ini_parse_stream(reader_cb, &x, handler_cb, &x);
    free(text);
    int rc = 0;
    if (x.err_line) rc = err_set(err, ERR_USAGE, "%s: line %d: %s", path, x.err_line, x.err.msg);
    else if (r > 0) rc = err_set(err, ERR_USAGE, "%s: line %d: syntax error", path, r);
    else if (r < 0) rc = err_set(err, ERR_USAGE, "%s: cannot parse (inih error %d)", path, r);
    else if (!x.have_base) rc = err_set(err, ERR_USAGE, "%s: [grid] base is missing", path);
    else if (!x.have_seeds) rc = err_set(err, ERR_USAGE, "%s: [grid] seeds is missing", path);
    else if (!x.have_out && !(out_override && *out_override))
        rc = err_set(err, ERR_USAGE, "%s: [grid] out is missing (or give --out)", path);
    if (!rc) {
        /* base relative to the grid file's directory */
        if (x.base_raw[0] == '/') {
            snprintf(g->base, sizeof g->base, "%s", x.base_raw);
        } else {
            char *tmp = xstrdup(path);
            snprintf(g->base, sizeof g->base, "%s/%s", dirname(tmp), x.base_raw);
            free(tmp);
        }
        if (access(g->base, R_OK))
            rc = err_set(err, ERR_USAGE, "%s: [grid] base = %s: cannot read %s: %s", path,
                         x.base_raw, g->base, strerror(errno));
    }
    if (!rc) rc = check_unions(path, &x, err);
    const Profile *chosen = NULL;
    if (!rc && profile && *profile) {
        for (int i = 0; i < x.nprof; i++)
            if (!strcmp(x.prof[i].name, profile)) chosen = &x.prof[i];
        if (!chosen) {
            char known[256] = "";
            for (int i = 0; i < x.nprof; i++) {
                if (i) strncat(known, ", ", sizeof known - strlen(known) - 1);
                strncat(known, x.prof[i].name, sizeof known - strlen(known) - 1);
            }
            rc = err_set(err, ERR_USAGE, "%s: no [profile.%s] section (profiles: %s)", path,
                         profile, known[0] ? known : "none");
        }
        snprintf(g->profile, sizeof g->profile, "%s", profile);
    }
    /* Profile entries naming a swept key (the [sweep] keys, e.g.
     * "model.preset" or "a.b + c.d", possibly with grid.nseeds joined on)
     * replace that axis's values; grid.seeds replaces the seeds. The rest are
     * overrides checked against the base. */
    int *axis_line = xmalloc(sizeof(int) * ((size_t)g->naxes + 1));   /* the profile line replacing each axis */
    for (int i = 0; !rc && i < x.nprof; i++) {
        Profile *p = &x.prof[i];
        int keep = 0, k;
        memset(axis_line, 0, sizeof(int) * ((size_t)g->naxes + 1));
        for (k = 0; k < p->nsets && !rc; k++) {
            char *eq = strchr(p->sets[k], '=');
            *eq = '\0';
            const char *key = p->sets[k], *val = eq + 1;
            int axis = profile_axis(g, key);
            int is_seeds = !strcmp(key, "grid.seeds"), is_reuse = !strcmp(key, GRID_REUSE_KEY);
            char dup[256];
            if (is_axis_key(key) && has_empty_part(key))
                rc = err_set(err, ERR_USAGE, "%s: line %d: [profile.%s] '%s': empty key in a +-joined list", path,
                             p->lines[k], p->name, key);
            else if (is_axis_key(key) && dup_part(key, dup, sizeof dup))
                rc = err_set(err, ERR_USAGE, "%s: line %d: [profile.%s] %s: %s appears twice in the key", path,
                             p->lines[k], p->name, key, dup);
            else if (axis < 0 && is_axis_key(key))
                rc = no_such_axis(g, path, p->name, key, p->lines[k], err);
            else if (axis >= 0 && axis_line[axis])
                rc = err_set(err, ERR_USAGE, "%s: line %d: [profile.%s] %s replaces the same [sweep] key (%s) as "
                             "line %d", path, p->lines[k], p->name, key, g->axes[axis].sweep_key, axis_line[axis]);
            if (rc) break;
            if (axis >= 0) axis_line[axis] = p->lines[k];
            if (axis < 0 && !is_seeds && !is_reuse) {
                *eq = '=';
                p->lines[keep] = p->lines[k];
                p->sets[keep++] = p->sets[k];
                continue;
            }
            if (p == chosen) rc = apply_grid_entry(g, path, p->name, key, val, axis, p->lines[k], err);
            free(p->sets[k]);
        }
        for (; k < p->nsets; k++) free(p->sets[k]);   /* entries after an error */
        p->nsets = keep;
    }
    free(axis_line);
    /* one seed count per cell: grid.nseeds in one axis only ([sweep]'s, or the one a profile gave it) */
    for (int a = 0, first = -1; !rc && a < g->naxes; a++)
        if (has_nseeds_part(g->axes[a].key)) {
            if (first >= 0)
                rc = err_set(err, ERR_USAGE, "%s: line %d: [%s] %s: %s is also in '%s' (line %d, [%s]); give the "
                             "seed counts in one axis", path, g->axes[a].line, g->axes[a].section, g->axes[a].key,
                             GRID_NSEEDS_KEY, g->axes[first].key, g->axes[first].line, g->axes[first].section);
            first = first >= 0 ? first : a;
        }
    for (int i = 0; !rc && i < x.nprof; i++)
        rc = check_profile(g, &x.prof[i], err);
    if (!rc) {
        if (out_override && *out_override) snprintf(g->out, sizeof g->out, "%s", out_override);
        else if (g->profile[0]) snprintf(g->out, sizeof g->out, "%s/%s", x.out_raw, g->profile);
        else snprintf(g->out, sizeof g->out, "%s", x.out_raw);
        if (chosen && chosen->nparts) {
            free(g->seeds);   /* the parts have the seeds */
            g->seeds = NULL;
            g->nseeds = 0;
            rc = load_union_parts(g, chosen, err);
        } else if (chosen) {
            g->nsets = chosen->nsets;
            g->sets = xrealloc(NULL, sizeof(char *) * (size_t)(chosen->nsets + 1));
            for (int i = 0; i < chosen->nsets; i++) g->sets[i] = xstrdup(chosen->sets[i]);
        }
    }
    for (int i = 0; i < x.nprof; i++) {
        grid_free_strs(x.prof[i].sets, x.prof[i].nsets);
        free(x.prof[i].lines);
        grid_free_strs(x.prof[i].parts, x.prof[i].nparts);
    }
    free(x.prof);
    if (rc) grid_free(g);
    return rc;
}

void grid_free(GridSpec *g) {
    for (int i = 0; i < g->nparts; i++) grid_free(&g->parts[i]);
    free(g->parts);
    g->parts = NULL;
    g->nparts = 0;
    free(g->seeds);
    for (int i = 0; i < g->naxes; i++) grid_free_strs(g->axes[i].vals, g->axes[i].nvals);
    free(g->axes);
    grid_free_strs(g->sets, g->nsets);
    grid_free_strs(g->reuse, g->nreuse);
    g->reuse = NULL;
    g->nreuse = 0;
    grid_free_strs(g->slurm.extra, g->slurm.nextra);
    g->slurm.extra = NULL;
    g->slurm.nextra = 0;
    g->seeds = NULL; g->axes = NULL; g->sets = NULL;
    g->nseeds = g->naxes = g->nsets = 0;
}

/* ---------------------------------------------------------------- expansion */

void grid_run_id(const RunConfig *c, char id[17]) {
    uint64_t h = 14695981039346656037ULL, ch = config_hash(c), seed = c->seed;
    for (int i = 0; i < 8; i++) { h ^= (ch >> (8 * i)) & 0xff; h *= 1099511628211ULL; }
    for (int i = 0; i < 8; i++) { h ^= (seed >> (8 * i)) & 0xff; h *= 1099511628211ULL; }
    snprintf(id, 17, "%016" PRIx64, h);
}

/* 1 if every swept key in which runs a and b differ is a key their method
 * ignores (both sweeps list the same keys in the same order). */
static int only_ignored_keys_differ(const GridRun *a, const GridRun *b) {
    for (int i = 0; i < a->nsw && i < b->nsw; i++) {
        if (!strcmp(a->sw_vals[i], b->sw_vals[i])) continue;
        char sec[256];
        snprintf(sec, sizeof sec, "%s", a->sw_keys[i]);
        char *dot = strchr(sec, '.');
        if (!dot) return 0;
        *dot = '\0';
        if (method_reads_key(&a->cfg, sec, dot + 1)) return 0;
    }
    return 1;
}

/* The run's swept keys and values from its "key=value" sets. */
static void set_sweep_values(GridRun *r, char *const *sets, int n) {
    r->nsw = n;
    r->sw_keys = xmalloc(sizeof(char *) * (size_t)(n + 1));
    r->sw_vals = xmalloc(sizeof(char *) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(sets[i], '=');
        r->sw_keys[i] = strndup(sets[i], (size_t)(eq - sets[i]));
        r->sw_vals[i] = xstrdup(eq + 1);
    }
}

static void free_sweep_values(GridRun *r) {
    grid_free_strs(r->sw_keys, r->nsw);
    grid_free_strs(r->sw_vals, r->nsw);
    r->sw_keys = r->sw_vals = NULL;
    r->nsw = 0;
}

/* The value of grid.nseeds in a sweep tuple: 1 .. the number of [grid] seeds. */
static int parse_nseeds(const GridSpec *g, const GridAxis *a, const char *v, int *n, Err *err) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < 1 || x > g->nseeds)
        return err_set(err, ERR_USAGE, "%s: line %d: [%s] %s = '%s': expected a whole number from 1 to %d "
                       "(the number of [grid] seeds)", g->path, a->line, a->section, GRID_NSEEDS_KEY, v, g->nseeds);
    *n = (int)x;
    return 0;
}

/* The axis of g (not of its union's parts) that sweeps key k, alone or in a
 * k1+k2 list; NULL when none does. */
static const GridAxis *axis_of_key(const GridSpec *g, const char *k) {
    for (int a = 0; a < g->naxes; a++) {
        char kb[256], *part[64];
        for (int i = 0, np = key_parts(g->axes[a].key, kb, part); i < np; i++)
            if (!strcmp(part[i], k)) return &g->axes[a];
    }
    return NULL;
}

/* The key of an override "k=v", trimmed, into k (size n). */
static void set_key(const char *set, char *k, size_t n) {
    const char *eq = strchr(set, '=');
    snprintf(k, n, "%.*s", eq ? (int)(eq - set) : (int)strlen(set), set);
    str_trim(k);
}

/* The axis whose value the override "k=v" is. */
static const GridAxis *axis_of_set(const GridSpec *g, const char *set) {
    char k[256];
    set_key(set, k, sizeof k);
    return axis_of_key(g, k);
}

/* A growable list of owned "key=value" strings (the --set list of one run). */
typedef struct {
    char **v;
    int n, cap;
} SetList;

static void setlist_push(SetList *l, char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = xrealloc(l->v, sizeof(char *) * (size_t)l->cap);
    }
    l->v[l->n++] = s;
}

static void setlist_clear(SetList *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    l->n = 0;
}

/* Appends combination k of the sweep axes (last axis fastest) to l, one
 * set per part of a "k1+k2 = v1+v2" axis; grid.nseeds is not a config key
 * and goes to *nseeds instead. Returns 0 or ERR_USAGE (a bad count). */
static int combo_sets(const GridSpec *g, long k, SetList *l, int *nseeds, Err *err) {
    int idx[64] = {0};
    for (int a = g->naxes - 1; a >= 0; a--) {
        idx[a] = (int)(k % g->axes[a].nvals);
        k /= g->axes[a].nvals;
    }
    for (int a = 0; a < g->naxes; a++) {
        char kb[256], vb[1024];
        snprintf(kb, sizeof kb, "%s", g->axes[a].key);
        snprintf(vb, sizeof vb, "%s", g->axes[a].vals[idx[a]]);
        char *ks = NULL, *vs = NULL;
        for (char *key = strtok_r(kb, "+", &ks), *v = strtok_r(vb, "+", &vs); key && v;
             key = strtok_r(NULL, "+", &ks), v = strtok_r(NULL, "+", &vs)) {
            str_trim(key);
            str_trim(v);
            if (!strcmp(key, GRID_NSEEDS_KEY)) {
                if (parse_nseeds(g, &g->axes[a], v, nseeds, err)) return ERR_USAGE;
                continue;
            }
            char *st = xrealloc(NULL, strlen(key) + strlen(v) + 2);
            sprintf(st, "%s=%s", key, v);
            setlist_push(l, st);
        }
    }
    return 0;
}

/* Fills runs[n] from l (the [grid] sets, then nsweep sweep sets, then the
 * seed set) and resolves its config and id. *merged = 1 when it is the same
 * training as an earlier run (only keys its method ignores differ,
 * methods.h): that run counts it in `merged` and runs[n] is cleared. Returns
 * 0, or ERR_USAGE for a bad config or two runs that resolve alike (runs[n]
 * then holds strings for grid_runs_free). */
static int add_run(const GridSpec *g, GridRun *runs, int n, const SetList *l, int nsweep, uint64_t seed,
                   int *merged, Err *err) {
    GridRun *r = &runs[n];
    char *const *sweep = l->v + g->nsets;
    size_t swl = 1;
    for (int a = 0; a < nsweep; a++) swl += strlen(sweep[a]) + 1;
    r->seed = seed;
    snprintf(r->part, sizeof r->part, "%s", g->profile);
    r->sweep = xrealloc(NULL, swl);
    r->sweep[0] = '\0';
    for (int a = 0; a < nsweep; a++) {
        if (a) strcat(r->sweep, ";");
        strcat(r->sweep, sweep[a]);
    }
    set_sweep_values(r, sweep, nsweep);
    *merged = 0;
    Err e = {0};
    if (config_load(&r->cfg, g->base, l->n, l->v, &e)) {
        const char *why;
        int i = set_of_message(e.msg, sweep, nsweep, &why);
        const GridAxis *a = i >= 0 ? axis_of_set(g, sweep[i]) : NULL;
        if (a)
            return err_set(err, ERR_USAGE, "%s: line %d: [%s] %s: %s (the run with %s, %s)", g->path, a->line,
                           a->section, sweep[i], why, r->sweep, l->v[l->n - 1]);
        return err_set(err, ERR_USAGE, "%s: run with %s%s%s: %s", g->path, r->sweep[0] ? r->sweep : "",
                       r->sweep[0] ? ", " : "", l->v[l->n - 1], e.msg);
    }
    grid_run_id(&r->cfg, r->id);
    int dup = -1;
    for (int j = 0; j < n && dup < 0; j++)
        if (!strcmp(runs[j].id, r->id)) dup = j;
    if (dup < 0) return 0;
    if (!only_ignored_keys_differ(&runs[dup], r))
        return err_set(err, ERR_USAGE, "%s: runs '%s' and '%s' (seed %" PRIu64 ") resolve to the same configuration",
                       g->path, runs[dup].sweep, r->sweep, r->seed);
    runs[dup].merged++;
    free(r->sweep);
    free_sweep_values(r);
    memset(r, 0, sizeof *r);
    *merged = 1;
    return 0;
}

/* Every combination of the sweep axes at every seed (seed-major, last axis
 * fastest), each a run with its config and id (grid.h). */
static int expand_plain(const GridSpec *g, GridRun **out, int *nout, Err *err) {
    long combos = 1;
    for (int a = 0; a < g->naxes; a++) {
        combos *= g->axes[a].nvals;
        if (combos > 1000000) return err_set(err, ERR_USAGE, "%s: more than a million runs", g->path);
    }
    if (g->naxes > 64) return err_set(err, ERR_USAGE, "too many sweep keys");
    GridRun *runs = calloc((size_t)(combos * g->nseeds), sizeof *runs);
    if (!runs) return err_set(err, ERR_RUNTIME, "out of memory");
    SetList l = {0};
    int rc = 0, n = 0;
    for (int s = 0; s < g->nseeds && !rc; s++)
        for (long k = 0; k < combos && !rc; k++) {
            for (int i = 0; i < g->nsets; i++) setlist_push(&l, xstrdup(g->sets[i]));
            int nseeds_here = g->nseeds;
            rc = combo_sets(g, k, &l, &nseeds_here, err);
            if (!rc && s < nseeds_here) {   /* else a cell with fewer seeds (grid.h) */
                int nsweep = l.n - g->nsets;
                char seedset[64];
                snprintf(seedset, sizeof seedset, "train.seed=%" PRIu64, g->seeds[s]);
                setlist_push(&l, xstrdup(seedset));
                int merged;
                rc = add_run(g, runs, n, &l, nsweep, g->seeds[s], &merged, err);
                n += !merged;   /* a failed run too: its strings are freed with the others */
            }
            setlist_clear(&l);
        }
    free(l.v);
    if (rc) {
        grid_runs_free(runs, n);
        return rc;
    }
    *out = runs;
    *nout = n;
    return 0;
}

/* Whether g or a part of its union sweeps the key k. */
static int sweeps_key(const GridSpec *g, const char *k) {
    if (axis_of_key(g, k)) return 1;
    for (int i = 0; i < g->nparts; i++)
        if (sweeps_key(&g->parts[i], k)) return 1;
    return 0;
}

int grid_check_set(const GridSpec *g, const char *set, Err *err) {
    char k[256];
    set_key(set, k, sizeof k);
    if (sweeps_key(g, k))
        return err_set(err, ERR_USAGE, "--set '%s': %s is swept by %s%s%s (its [sweep] values would win over "
                       "the --set); change the grid file or choose another profile", set, k, g->path,
                       g->profile[0] ? ", profile " : "", g->profile);
    return 0;
}

static void grid_runs_free_one(GridRun *r) {
    free(r->sweep);
    free_sweep_values(r);
}

void grid_runs_free(GridRun *runs, int n) {
    for (int i = 0; runs && i < n; i++) grid_runs_free_one(&runs[i]);
    free(runs);
}

int grid_keep_seeds(GridRun *runs, int *n, const uint64_t *seeds, int nseeds, Err *err) {
    int keep = 0;
    for (int i = 0; i < *n; i++) {
        int want = 0;
        for (int k = 0; k < nseeds && !want; k++) want = runs[i].seed == seeds[k];
        if (want) runs[keep++] = runs[i];
        else grid_runs_free_one(&runs[i]);
    }
    *n = keep;
    return keep ? 0 : err_set(err, ERR_USAGE, "no run of the grid has one of the seeds asked for");
}

/* A union profile's runs (grid.h): each part's, with the union's own sets
 * (--set) after the part's; a run two parts both produce is an error. */
static int expand_union(const GridSpec *g, GridRun **out, int *nout, Err *err) {
    GridRun *all = NULL;
    int n = 0, rc = 0;
    for (int k = 0; k < g->nparts && !rc; k++) {
        GridSpec part = g->parts[k];   /* shallow: only sets is replaced */
        part.sets = xrealloc(NULL, sizeof(char *) * (size_t)(part.nsets + g->nsets + 1));
        for (int i = 0; i < part.nsets; i++) part.sets[i] = g->parts[k].sets[i];
        for (int i = 0; i < g->nsets; i++) part.sets[part.nsets + i] = g->sets[i];
        part.nsets += g->nsets;
        GridRun *runs = NULL;
        int m = 0;
        rc = expand_plain(&part, &runs, &m, err);
        free(part.sets);
        if (rc) break;
        for (int i = 0; i < m && !rc; i++)
            for (int j = 0; j < n && !rc; j++)
                if (!strcmp(runs[i].id, all[j].id))
                    rc = err_set(err, ERR_USAGE, "%s: [profile.%s] %s: part %s's run %s (seed %" PRIu64
                                 ") is also another part's", g->path, g->profile, GRID_UNION_KEY,
                                 g->parts[k].profile, runs[i].sweep, runs[i].seed);
        if (!rc) {
            all = xrealloc(all, sizeof *all * (size_t)(n + m + 1));
            for (int i = 0; i < m; i++) all[n + i] = runs[i];
            n += m;
            free(runs);
        } else {
            grid_runs_free(runs, m);
        }
    }
    if (rc) {
        grid_runs_free(all, n);
        return rc;
    }
    *out = all;
    *nout = n;
    return 0;
}

int grid_expand(const GridSpec *g, GridRun **out, int *nout, Err *err) {
    return g->nparts ? expand_union(g, out, nout, err) : expand_plain(g, out, nout, err);
}
