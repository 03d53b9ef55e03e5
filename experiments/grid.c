/* Ablation grids: parsing (inih), expansion, the local parallel runner, job
 * export (Slurm array / GNU parallel) and the runs.csv recorder. See grid.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "grid.h"
#include "../core/fsutil.h"
#include "../core/csvio.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

static char *xstrdup(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) { fputs("ewa: out of memory\n", stderr); abort(); }
    return d;
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) { fputs("ewa: out of memory\n", stderr); abort(); }
    return q;
}

static void trim(char *s) {
    size_t n = strlen(s), i = 0;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    while (s[i] == ' ' || s[i] == '\t') i++;
    memmove(s, s + i, n - i + 1);
}

int grid_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fmt_dur(char *b, size_t n, double s) {
    if (!(s >= 0) || s > 1e8) { snprintf(b, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(b, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(b, n, "%ldm%02lds", t / 60, t % 60);
}

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
        if (!quoted) trim(v);
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

static void free_strs(char **v, int n) {
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

/* ---------------------------------------------------------------- parsing */

typedef struct {
    char name[32];
    int nsets;
    char **sets;
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
    if (!*x->pos) return NULL;
    const char *line = x->pos, *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
    x->pos += len;
    x->lineno++;
    if (len + 1 > (size_t)num) {
        if (!x->err_line) {
            x->err_line = x->lineno;
            err_set(&x->err, ERR_USAGE, "line too long (max %d characters)", num - 2);
        }
        snprintf(str, (size_t)num, "\n");
        return str;
    }
    memcpy(str, line, len);
    str[len] = '\0';
    /* inih does not report an empty section: register [profile.X] here */
    char sec[128];
    if (sscanf(str, " [profile.%126[^]]]", sec) == 1) {
        trim(sec);
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

static int parse_seeds(GridSpec *g, const char *value, Err *err) {
    char **items;
    int n = grid_split_values(value, &items);
    if (n <= 0) return err_set(err, ERR_USAGE, "[grid] seeds: expected a list like 0, 1, 2");
    g->seeds = xrealloc(NULL, sizeof(uint64_t) * (size_t)n);
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(items[i], &end, 10);
        if (items[i][0] < '0' || items[i][0] > '9' || *end || errno) {
            err_set(err, ERR_USAGE, "[grid] seeds: '%s' is not a non-negative integer", items[i]);
            free_strs(items, n);
            return ERR_USAGE;
        }
        for (int j = 0; j < i; j++)
            if (g->seeds[j] == v) {
                err_set(err, ERR_USAGE, "[grid] seeds: seed %llu listed twice", v);
                free_strs(items, n);
                return ERR_USAGE;
            }
        g->seeds[i] = v;
    }
    g->nseeds = n;
    free_strs(items, n);
    return 0;
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
    if (!strcmp(name, "description")) return 0;
    return err_set(&x->err, ERR_USAGE, "unknown key '%s' in [grid] (known: base, seeds, out, description)",
                   name);
}

/* Number of '+'-joined parts of s. */
static int count_parts(const char *s) {
    int n = 1;
    for (; *s; s++) n += *s == '+';
    return n;
}

static int handle_sweep(GridParse *x, const char *name, const char *value) {
    GridSpec *g = x->g;
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", name);
        for (char *save = NULL, *k = strtok_r(buf, "+", &save); k; k = strtok_r(NULL, "+", &save)) {
            trim(k);
            if (check_set_syntax(k, &x->err)) return ERR_USAGE;
            if (!strcmp(k, "train.seed"))
                return err_set(&x->err, ERR_USAGE, "[sweep] train.seed: list the seeds in [grid] seeds");
            if (!strcmp(k, "train.threads"))
                return err_set(&x->err, ERR_USAGE,
                               "[sweep] train.threads: threads are set by the runner (--jobs)");
        }
        if (name[0] == '+' || name[strlen(name) - 1] == '+' || strstr(name, "++"))
            return err_set(&x->err, ERR_USAGE, "[sweep] '%s': empty key in a +-joined list", name);
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
            free_strs(items, n);
            return ERR_USAGE;
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(items[i], items[j])) {
                err_set(&x->err, ERR_USAGE, "[sweep] %s: value '%s' listed twice", name, items[i]);
                free_strs(items, n);
                return ERR_USAGE;
            }
    g->axes = xrealloc(g->axes, sizeof(GridAxis) * (size_t)(g->naxes + 1));
    GridAxis *a = &g->axes[g->naxes++];
    snprintf(a->key, sizeof a->key, "%s", name);
    a->nvals = n;
    a->vals = items;
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
    size_t kl = strlen(name);
    for (int i = 0; i < p->nsets; i++)
        if (!strncmp(p->sets[i], name, kl) && p->sets[i][kl] == '=')
            return err_set(&x->err, ERR_USAGE, "[profile.%s] %s given twice", pname, name);
    char *s = xrealloc(NULL, kl + strlen(value) + 2);
    sprintf(s, "%s=%s", name, value);
    p->sets = xrealloc(p->sets, sizeof(char *) * (size_t)(p->nsets + 1));
    p->sets[p->nsets++] = s;
    return 0;
}

static int handler_cb(void *user, const char *section, const char *name, const char *value) {
    GridParse *x = user;
    if (x->err_line) return 1;
    int rc;
    if (!strcmp(section, "grid")) rc = handle_grid_key(x, name, value);
    else if (!strcmp(section, "sweep")) rc = handle_sweep(x, name, value);
    else if (!strncmp(section, "profile.", 8)) rc = handle_profile(x, section + 8, name, value);
    else if (!section[0])
        rc = err_set(&x->err, ERR_USAGE, "key '%s' is outside any [section]", name);
    else
        rc = err_set(&x->err, ERR_USAGE,
                     "unknown section [%s] (known: [grid], [sweep], [profile.NAME])", section);
    if (rc) {
        x->err_line = x->lineno;
        return 0;
    }
    return 1;
}

static int read_text(const char *path, char **out, Err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, ERR_USAGE, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 20;
    char *b = malloc(cap + 1);
    size_t n = b ? fread(b, 1, cap + 1, f) : 0;
    fclose(f);
    if (!b) return err_set(err, ERR_RUNTIME, "out of memory");
    if (n > cap) { free(b); return err_set(err, ERR_USAGE, "%s: file too large", path); }
    b[n] = '\0';
    if (strlen(b) != n) { free(b); return err_set(err, ERR_USAGE, "%s: contains a NUL byte", path); }
    *out = b;
    return 0;
}

/* Checks base + profile overrides with config_load. */
static int check_profile(const GridSpec *g, const char *pname, int nsets, char **sets, Err *err) {
    RunConfig c;
    Err e = {0};
    if (config_load(&c, g->base, nsets, sets, &e))
        return err_set(err, ERR_USAGE, "%s: [profile.%s]: %s", g->path, pname, e.msg);
    return 0;
}

int grid_load(GridSpec *g, const char *path, const char *profile, const char *out_override,
              Err *err) {
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", path);
    char *text = NULL;
    if (read_text(path, &text, err)) return ERR_USAGE;
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
    /* Profile entries naming a swept key (as written in [sweep], e.g.
     * "model.preset" or "a.b+c.d") replace that axis's values; grid.seeds
     * replaces the seeds. The rest are overrides checked against the base. */
    for (int i = 0; !rc && i < x.nprof; i++) {
        Profile *p = &x.prof[i];
        int keep = 0;
        for (int k = 0; k < p->nsets && !rc; k++) {
            char *eq = strchr(p->sets[k], '=');
            *eq = '\0';
            const char *key = p->sets[k], *val = eq + 1;
            int axis = -1;
            for (int a = 0; a < g->naxes; a++)
                if (!strcmp(g->axes[a].key, key)) axis = a;
            int is_seeds = !strcmp(key, "grid.seeds");
            if (axis < 0 && !is_seeds) {
                *eq = '=';
                p->sets[keep++] = p->sets[k];
                continue;
            }
            if (p == chosen) {
                if (is_seeds) {
                    free(g->seeds);
                    g->seeds = NULL;
                    Err e = {0};
                    if (parse_seeds(g, val, &e))
                        rc = err_set(err, ERR_USAGE, "%s: [profile.%s] grid.seeds: %s", path, p->name, e.msg);
                } else {
                    char **items;
                    int n = grid_split_values(val, &items);
                    int bad = n <= 0;
                    for (int v = 0; v < n && !bad; v++) bad = count_parts(items[v]) != count_parts(key);
                    if (bad) {
                        rc = err_set(err, ERR_USAGE,
                                     "%s: [profile.%s] %s = '%s': expected a non-empty list of values with %d +-joined parts",
                                     path, p->name, key, val, count_parts(key));
                        if (n > 0) free_strs(items, n);
                    } else {
                        free_strs(g->axes[axis].vals, g->axes[axis].nvals);
                        g->axes[axis].vals = items;
                        g->axes[axis].nvals = n;
                    }
                }
            }
            free(p->sets[k]);
        }
        p->nsets = keep;
    }
    for (int i = 0; !rc && i < x.nprof; i++)
        rc = check_profile(g, x.prof[i].name, x.prof[i].nsets, x.prof[i].sets, err);
    if (!rc) {
        if (out_override && *out_override) snprintf(g->out, sizeof g->out, "%s", out_override);
        else if (g->profile[0]) snprintf(g->out, sizeof g->out, "%s/%s", x.out_raw, g->profile);
        else snprintf(g->out, sizeof g->out, "%s", x.out_raw);
        if (chosen) {
            g->nsets = chosen->nsets;
            g->sets = xrealloc(NULL, sizeof(char *) * (size_t)(chosen->nsets + 1));
            for (int i = 0; i < chosen->nsets; i++) g->sets[i] = xstrdup(chosen->sets[i]);
        }
    }
    for (int i = 0; i < x.nprof; i++) free_strs(x.prof[i].sets, x.prof[i].nsets);
    free(x.prof);
    if (rc) grid_free(g);
    return rc;
}

void grid_free(GridSpec *g) {
    free(g->seeds);
    for (int i = 0; i < g->naxes; i++) free_strs(g->axes[i].vals, g->axes[i].nvals);
    free(g->axes);
    free_strs(g->sets, g->nsets);
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

int grid_expand(const GridSpec *g, GridRun **out, int *nout, Err *err) {
    long combos = 1;
    for (int a = 0; a < g->naxes; a++) {
        combos *= g->axes[a].nvals;
        if (combos > 1000000) return err_set(err, ERR_USAGE, "%s: more than a million runs", g->path);
    }
    long total = combos * g->nseeds;
    GridRun *runs = calloc((size_t)total, sizeof *runs);
    if (!runs) return err_set(err, ERR_RUNTIME, "out of memory");
    int nsets = g->nsets + g->naxes + 1;
    char **sets = xrealloc(NULL, sizeof(char *) * (size_t)nsets);
    int idx[64] = {0};
    if (g->naxes > 64) { free(runs); free(sets); return err_set(err, ERR_USAGE, "too many sweep keys"); }
    int rc = 0, n = 0;
    for (int s = 0; s < g->nseeds && !rc; s++) {
        memset(idx, 0, sizeof idx);
        for (long k = 0; k < combos && !rc; k++) {
            /* the combination: last axis fastest */
            long rem = k;
            for (int a = g->naxes - 1; a >= 0; a--) {
                idx[a] = (int)(rem % g->axes[a].nvals);
                rem /= g->axes[a].nvals;
            }
            int ns = 0;
            for (int i = 0; i < g->nsets; i++) sets[ns++] = xstrdup(g->sets[i]);
            size_t swl = 1;
            for (int a = 0; a < g->naxes; a++) {
                /* "k1+k2 = v1+v2": one set per part */
                char kb[256], vb[1024];
                snprintf(kb, sizeof kb, "%s", g->axes[a].key);
                snprintf(vb, sizeof vb, "%s", g->axes[a].vals[idx[a]]);
                char *ks = NULL, *vs = NULL;
                for (char *k = strtok_r(kb, "+", &ks), *v = strtok_r(vb, "+", &vs); k && v;
                     k = strtok_r(NULL, "+", &ks), v = strtok_r(NULL, "+", &vs)) {
                    trim(k);
                    trim(v);
                    if (ns == nsets) {
                        nsets *= 2;
                        sets = xrealloc(sets, sizeof(char *) * (size_t)nsets);
                    }
                    char *st = xrealloc(NULL, strlen(k) + strlen(v) + 2);
                    sprintf(st, "%s=%s", k, v);
                    sets[ns++] = st;
                    swl += strlen(st) + 1;
                }
            }
            int nsweep = ns - g->nsets;
            char seedset[64];
            snprintf(seedset, sizeof seedset, "train.seed=%" PRIu64, g->seeds[s]);
            if (ns == nsets) {
                nsets *= 2;
                sets = xrealloc(sets, sizeof(char *) * (size_t)nsets);
            }
            sets[ns++] = xstrdup(seedset);
            GridRun *r = &runs[n];
            r->seed = g->seeds[s];
            r->sweep = xrealloc(NULL, swl);
            r->sweep[0] = '\0';
            for (int a = 0; a < nsweep; a++) {
                if (a) strcat(r->sweep, ";");
                strcat(r->sweep, sets[g->nsets + a]);
            }
            Err e = {0};
            if (config_load(&r->cfg, g->base, ns, sets, &e)) {
                rc = err_set(err, ERR_USAGE, "%s: run with %s%s%s: %s", g->path,
                             r->sweep[0] ? r->sweep : "", r->sweep[0] ? ", " : "", seedset, e.msg);
            } else {
                grid_run_id(&r->cfg, r->id);
                for (int j = 0; j < n && !rc; j++)
                    if (!strcmp(runs[j].id, r->id))
                        rc = err_set(err, ERR_USAGE,
                                     "%s: runs '%s' and '%s' (seed %" PRIu64
                                     ") resolve to the same configuration",
                                     g->path, runs[j].sweep, r->sweep, r->seed);
            }
            n++;
            for (int i = 0; i < ns; i++) free(sets[i]);
        }
    }
    free(sets);
    if (rc) {
        grid_runs_free(runs, n);
        return rc;
    }
    *out = runs;
    *nout = n;
    return 0;
}

void grid_runs_free(GridRun *runs, int n) {
    for (int i = 0; runs && i < n; i++) free(runs[i].sweep);
    free(runs);
}

/* ---------------------------------------------------------------- recording */

/* The summary.csv columns of experiments/train.c, used as the runs.csv header
 * when the first row to record is a failed run without a summary. */
static const char *const SUMMARY_HEADER[] = {
    "git_commit", "git_dirty", "config_hash", "seed", "threads", "dataset", "train_subset",
    "classes", "preset", "dim", "depth", "heads", "mlp_ratio", "patch", "pool", "method",
    "experts", "beta", "blocks", "epochs", "batch_size", "lr", "final_top1", "best_top1",
    "final_test_loss", "n_test", "params_inference", "flops_inference", "train_seconds",
    "steps", "status", "diverged_step", "params_active", "params_train", "top_k",
    "capacity_factor", "aux_coef", "zloss_coef", "shared_expert", "routing", "rmoe_partition",
    "ewa_epochs", "drop_rate", "init_checkpoint"};
#define N_SUMMARY_HEADER ((int)(sizeof SUMMARY_HEADER / sizeof SUMMARY_HEADER[0]))

static int file_nonempty(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* 1 if t holds a row with run_id id and status ok. */
static int has_ok_row(const CsvTable *t, const char *id) {
    int ci = csv_col(t, "run_id"), cs = csv_col(t, "status");
    if (ci < 0 || cs < 0) return 0;
    for (int r = 0; r < t->nrows; r++)
        if (!strcmp(csv_cell(t, r, ci), id) && !strcmp(csv_cell(t, r, cs), "ok")) return 1;
    return 0;
}

static void read_first_line(const char *path, char *buf, size_t n) {
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!fgets(buf, (int)n, f)) buf[0] = '\0';
    fclose(f);
    trim(buf);
}

/* Row values by column name for a run without a summary. */
static void failed_values(const char *run_dir, char names[][32], char vals[][600], int *nv) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.ini", run_dir);
    RunConfig c;
    Err e;
    int n = 0;
#define PUT(k, ...) do { snprintf(names[n], 32, "%s", k); snprintf(vals[n], 600, __VA_ARGS__); n++; } while (0)
    PUT("status", "failed");
    if (!config_load(&c, path, 0, NULL, &e)) {
        PUT("config_hash", "%016" PRIx64, config_hash(&c));
        PUT("seed", "%" PRIu64, c.seed);
        PUT("threads", "%d", c.threads);
        PUT("dataset", "%s", c.dataset);
        PUT("train_subset", "%d", c.train_subset);
        PUT("classes", "%s", c.classes);
        PUT("preset", "%s", c.preset);
        PUT("dim", "%d", c.dim);
        PUT("depth", "%d", c.depth);
        PUT("heads", "%d", c.heads);
        PUT("mlp_ratio", "%g", c.mlp_ratio);
        PUT("patch", "%d", c.patch);
        PUT("pool", "%s", c.pool);
        PUT("method", "%s", c.method);
        PUT("experts", "%d", c.experts);
        PUT("beta", "%g", c.beta);
        PUT("blocks", "%s", c.blocks);
        PUT("epochs", "%d", c.epochs);
        PUT("batch_size", "%d", c.batch_size);
        PUT("lr", "%g", c.lr);
        PUT("top_k", "%d", c.top_k);
        PUT("shared_expert", "%d", c.shared_expert);
        PUT("routing", "%s", c.routing);
        PUT("init_checkpoint", "%s", c.init_checkpoint);
    }
#undef PUT
    *nv = n;
}

int grid_record(const char *run_dir, const char *csv_path, int *appended, char status[16],
                Err *err) {
    if (appended) *appended = 0;
    char dirbuf[4096];
    snprintf(dirbuf, sizeof dirbuf, "%s", run_dir);
    size_t dl = strlen(dirbuf);
    while (dl > 1 && dirbuf[dl - 1] == '/') dirbuf[--dl] = '\0';
    const char *slash = strrchr(dirbuf, '/');
    const char *id = slash ? slash + 1 : dirbuf;
    struct stat st;
    if (stat(dirbuf, &st) || !S_ISDIR(st.st_mode))
        return err_set(err, ERR_USAGE, "%s: not a run directory", run_dir);

    CsvTable have = {0};
    int have_file = file_nonempty(csv_path);
    if (have_file && csv_read_file(csv_path, &have, err)) return ERR_RUNTIME;
    if (have_file && csv_col(&have, "run_id") < 0) {
        csv_table_free(&have);
        return err_set(err, ERR_RUNTIME, "%s: has no run_id column (not a grid runs.csv)", csv_path);
    }
    if (have_file && has_ok_row(&have, id)) {
        if (status) snprintf(status, 16, "ok");
        csv_table_free(&have);
        return 0;
    }

    char path[4200], sweep[4096];
    snprintf(path, sizeof path, "%s/sweep.txt", dirbuf);
    read_first_line(path, sweep, sizeof sweep);

    /* the values, by column name */
    int nv = 0;
    static char names[128][32];
    static char vals[128][600];
    CsvTable sum = {0};
    snprintf(path, sizeof path, "%s/summary.csv", dirbuf);
    int have_sum = 0;
    if (file_nonempty(path)) {
        Err e = {0};
        if (csv_read_file(path, &sum, &e) == 0 && sum.nrows >= 1 && sum.ncols <= 120) have_sum = 1;
        else {
            fprintf(stderr, "ewa record: %s: unusable summary (%s); recording the run as failed\n",
                    path, e.msg[0] ? e.msg : "no row");
            csv_table_free(&sum);
        }
    }
    if (have_sum) {
        for (int c = 0; c < sum.ncols; c++) {
            snprintf(names[nv], 32, "%s", sum.header[c]);
            snprintf(vals[nv], 600, "%s", csv_cell(&sum, 0, c));
            nv++;
        }
    } else {
        failed_values(dirbuf, names, vals, &nv);
    }

    /* the header: the existing file's, else run_id, sweep and the summary's */
    int ncols;
    const char **header;
    if (have_file) {
        ncols = have.ncols;
        header = xrealloc(NULL, sizeof(char *) * (size_t)ncols);
        for (int c = 0; c < ncols; c++) header[c] = have.header[c];
    } else if (have_sum) {
        ncols = 2 + sum.ncols;
        header = xrealloc(NULL, sizeof(char *) * (size_t)ncols);
        header[0] = "run_id";
        header[1] = "sweep";
        for (int c = 0; c < sum.ncols; c++) header[2 + c] = sum.header[c];
    } else {
        ncols = 2 + N_SUMMARY_HEADER;
        header = xrealloc(NULL, sizeof(char *) * (size_t)ncols);
        header[0] = "run_id";
        header[1] = "sweep";
        for (int c = 0; c < N_SUMMARY_HEADER; c++) header[2 + c] = SUMMARY_HEADER[c];
    }
    const char **row = xrealloc(NULL, sizeof(char *) * (size_t)ncols);
    for (int c = 0; c < ncols; c++) {
        row[c] = "";
        if (!strcmp(header[c], "run_id")) row[c] = id;
        else if (!strcmp(header[c], "sweep")) row[c] = sweep;
        else
            for (int k = 0; k < nv; k++)
                if (!strcmp(names[k], header[c])) row[c] = vals[k];
    }
    for (int k = 0; k < nv; k++) {
        int found = 0;
        for (int c = 0; c < ncols && !found; c++) found = !strcmp(names[k], header[c]);
        if (!found)
            fprintf(stderr, "ewa record: %s has no column '%s'; value dropped\n", csv_path, names[k]);
    }
    const char *stv = "failed";
    for (int k = 0; k < nv; k++)
        if (!strcmp(names[k], "status")) stv = vals[k];
    if (status) snprintf(status, 16, "%.15s", stv);
    int rc = csv_append_row(csv_path, ncols, header, row, err);
    if (!rc && appended) *appended = 1;
    free(header);
    free(row);
    csv_table_free(&sum);
    csv_table_free(&have);
    return rc;
}

/* ---------------------------------------------------------------- runner */

/* Creates OUT/runs/<id>/ with config.ini (threads set) and sweep.txt; removes
 * a stale summary.csv from an earlier attempt. */
static int prepare_run(const char *out, GridRun *r, int threads, char *dir, size_t dn, Err *err) {
    snprintf(dir, dn, "%s/runs/%s", out, r->id);
    if (fs_mkdir_p(dir, err)) return ERR_RUNTIME;
    char path[4400];
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    unlink(path);
    RunConfig c = r->cfg;
    c.threads = threads;
    snprintf(path, sizeof path, "%s/config.ini", dir);
    if (config_write(&c, path, err)) return ERR_RUNTIME;
    snprintf(path, sizeof path, "%s/sweep.txt", dir);
    char *t = xrealloc(NULL, strlen(r->sweep) + 2);
    sprintf(t, "%s\n", r->sweep);
    int rc = fs_write_text_atomic(path, t, err);
    free(t);
    return rc;
}

/* A run dir whose summary.csv is a finished ok run of exactly this config
 * (the grid was killed after the run and before recording it). */
static int finished_unrecorded(const char *out, const GridRun *r) {
    char path[4200];
    snprintf(path, sizeof path, "%s/runs/%s/summary.csv", out, r->id);
    if (!file_nonempty(path)) return 0;
    CsvTable t;
    Err e;
    if (csv_read_file(path, &t, &e)) return 0;
    int cs = csv_col(&t, "status"), ch = csv_col(&t, "config_hash"), cd = csv_col(&t, "seed");
    char hash[17], seed[32];
    snprintf(hash, sizeof hash, "%016" PRIx64, config_hash(&r->cfg));
    snprintf(seed, sizeof seed, "%" PRIu64, r->seed);
    int ok = t.nrows == 1 && cs >= 0 && ch >= 0 && cd >= 0 && !strcmp(csv_cell(&t, 0, cs), "ok") &&
             !strcmp(csv_cell(&t, 0, ch), hash) && !strcmp(csv_cell(&t, 0, cd), seed);
    csv_table_free(&t);
    return ok;
}

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) { g_stop = sig; }

typedef struct {
    pid_t pid;
    int run;
    double t0;
} Slot;

static pid_t spawn_run(const char *exe, const char *dir, int threads) {
    char cfg[4200], logp[4200], th[16];
    snprintf(cfg, sizeof cfg, "%s/config.ini", dir);
    snprintf(logp, sizeof logp, "%s/train.log", dir);
    snprintf(th, sizeof th, "%d", threads);
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* child: dies with the grid (even a SIGKILLed one) */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    int in = open("/dev/null", O_RDONLY), lg = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in >= 0) dup2(in, 0);
    if (lg >= 0) { dup2(lg, 1); dup2(lg, 2); }
    setenv("OMP_NUM_THREADS", th, 1);
    setenv("OPENBLAS_NUM_THREADS", th, 1);
    /* Spinning OpenMP threads collapse when the cores are shared (a vit-micro
     * run with 2 threads on this 2-core machine next to one busy process took
     * 49 s spinning, 6 s passive): sleep instead, unless the user chose. */
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    char *argv[] = {(char *)exe, "train", "--config", cfg, "--out", (char *)dir, NULL};
    execv(exe, argv);
    fprintf(stderr, "ewa grid: cannot execute %s: %s\n", exe, strerror(errno));
    _exit(127);
}

typedef struct {
    int total, done_before, done_now, failed, running;
    double t0;
    int tty;
} Progress;

static void progress_line(const Progress *p, int final) {
    double el = now_s() - p->t0;
    int remaining = p->total - p->done_before - p->done_now;
    double eta = p->done_now ? el / p->done_now * remaining : -1;
    char e1[32], e2[32];
    fmt_dur(e1, sizeof e1, el);
    fmt_dur(e2, sizeof e2, eta);
    fprintf(stderr, "%s[grid] %d/%d runs done, %d failed, %d running, elapsed %s, ETA %s%s",
            p->tty ? "\r\033[K" : "", p->done_before + p->done_now, p->total, p->failed,
            p->running, e1, e2, p->tty && !final ? "" : "\n");
    fflush(stderr);
}

static int export_jobs(const GridSpec *g, const char *out_abs, const char *exe, const char *kind,
                       char **dirs, int np, int threads, Err *err) {
    char path[4200];
    FILE *f;
    if (!strcmp(kind, "parallel")) {
        snprintf(path, sizeof path, "%s/jobs.txt", out_abs);
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
        if (!(f = fopen(tmp, "w"))) return err_set(err, ERR_RUNTIME, "%s: cannot create: %s", tmp, strerror(errno));
        for (int i = 0; i < np; i++)
            fprintf(f,
                    "rm -f '%s/summary.csv'; '%s' train --config '%s/config.ini' --out '%s' > '%s/train.log' 2>&1; "
                    "'%s' record --run '%s' --to '%s/runs.csv' --exit $?\n",
                    dirs[i], exe, dirs[i], dirs[i], dirs[i], exe, dirs[i], out_abs);
        if (fclose(f) || rename(tmp, path)) { unlink(tmp); return err_set(err, ERR_RUNTIME, "%s: cannot write", path); }
        printf("wrote %s: %d runs (train.threads = %d); run them with\n  parallel -j N < %s\n"
               "then: ewa aggregate --runs %s/runs.csv --out %s\n",
               path, np, threads, path, out_abs, out_abs);
        return 0;
    }
    /* slurm */
    snprintf(path, sizeof path, "%s/jobs.list", out_abs);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (!(f = fopen(tmp, "w"))) return err_set(err, ERR_RUNTIME, "%s: cannot create: %s", tmp, strerror(errno));
    for (int i = 0; i < np; i++) fprintf(f, "%s\n", strrchr(dirs[i], '/') + 1);
    if (fclose(f) || rename(tmp, path)) { unlink(tmp); return err_set(err, ERR_RUNTIME, "%s: cannot write", path); }
    snprintf(path, sizeof path, "%s/jobs.sbatch", out_abs);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (!(f = fopen(tmp, "w"))) return err_set(err, ERR_RUNTIME, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f,
            "#!/bin/bash\n"
            "# Slurm job array for the grid %s (%d runs, one per task).\n"
            "# Submit: sbatch %s   Then: ewa aggregate --runs %s/runs.csv --out %s\n"
            "#SBATCH --job-name=ewa-grid\n"
            "#SBATCH --array=1-%d\n"
            "#SBATCH --cpus-per-task=%d\n"
            "#SBATCH --output=%s/runs/slurm-%%A_%%a.log\n"
            "set -u\n"
            "EWA='%s'\n"
            "OUT='%s'\n"
            "ID=$(sed -n \"${SLURM_ARRAY_TASK_ID}p\" \"$OUT/jobs.list\")\n"
            "RUN=\"$OUT/runs/$ID\"\n"
            "rm -f \"$RUN/summary.csv\"\n"
            "\"$EWA\" train --config \"$RUN/config.ini\" --out \"$RUN\" "
            "--set train.threads=\"${SLURM_CPUS_PER_TASK:-1}\" > \"$RUN/train.log\" 2>&1\n"
            "rc=$?\n"
            "\"$EWA\" record --run \"$RUN\" --to \"$OUT/runs.csv\" --exit $rc\n",
            g->path, np, path, out_abs, out_abs, np > 0 ? np : 1, threads, out_abs, exe, out_abs);
    if (fclose(f) || rename(tmp, path)) { unlink(tmp); return err_set(err, ERR_RUNTIME, "%s: cannot write", path); }
    chmod(path, 0755);
    printf("wrote %s and %s/jobs.list: %d runs\n", path, out_abs, np);
    return 0;
}

int grid_run(const GridSpec *g, GridRun *runs, int n, const GridOpts *o, Err *err) {
    int jobs = o->jobs > 0 ? o->jobs : 1;
    int cores = grid_cpu_count();
    int threads = cores / jobs > 0 ? cores / jobs : 1;
    if (jobs > cores)
        fprintf(stderr, "ewa grid: warning: --jobs %d exceeds the %d cores; runs will compete for them\n",
                jobs, cores);
    char runs_csv[4200];
    snprintf(runs_csv, sizeof runs_csv, "%s/runs.csv", g->out);

    /* runs already recorded ok */
    char *done = calloc((size_t)n + 1, 1);
    if (file_nonempty(runs_csv)) {
        CsvTable t;
        if (csv_read_file(runs_csv, &t, err)) { free(done); return ERR_RUNTIME; }
        for (int i = 0; i < n; i++) done[i] = (char)has_ok_row(&t, runs[i].id);
        csv_table_free(&t);
    }
    int ndone = 0;
    for (int i = 0; i < n; i++) ndone += done[i];

    if (o->dry_run) {
        printf("grid %s: %d runs (%d seeds x %d combinations), %d already ok, %d to run; out %s\n",
               g->path, n, g->nseeds, g->nseeds ? n / g->nseeds : 0, ndone, n - ndone, g->out);
        if (g->profile[0]) printf("profile %s:", g->profile);
        for (int i = 0; i < g->nsets; i++) printf(" %s", g->sets[i]);
        if (g->profile[0]) printf("\n");
        printf("jobs %d, train.threads %d per run (%d cores)\n", jobs, threads, cores);
        for (int i = 0; i < n; i++)
            printf("%s %s seed=%" PRIu64 " %s\n", runs[i].id, done[i] ? "ok     " : "pending",
                   runs[i].seed, runs[i].sweep);
        free(done);
        return 0;
    }

    if (fs_mkdir_p(g->out, err)) { free(done); return ERR_RUNTIME; }
    char runs_dir[4200];
    snprintf(runs_dir, sizeof runs_dir, "%s/runs", g->out);
    if (fs_mkdir_p(runs_dir, err)) { free(done); return ERR_RUNTIME; }
    char lockp[4200];
    snprintf(lockp, sizeof lockp, "%s/.grid.lock", g->out);
    int lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB)) {
        if (lockfd >= 0) close(lockfd);
        free(done);
        return err_set(err, ERR_RUNTIME, "%s: another grid is running in this directory", g->out);
    }
    char out_abs[4096];
    if (!realpath(g->out, out_abs)) snprintf(out_abs, sizeof out_abs, "%s", g->out);

    /* the pending runs, and runs finished before an interruption */
    int *pend = malloc(sizeof(int) * ((size_t)n + 1)), np = 0, recovered = 0;
    char **dirs = calloc((size_t)n + 1, sizeof(char *));
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (done[i]) continue;
        if (!o->export_kind && finished_unrecorded(g->out, &runs[i])) {
            char d[4200], st[16];
            snprintf(d, sizeof d, "%s/runs/%s", out_abs, runs[i].id);
            if (grid_record(d, runs_csv, NULL, st, err)) { rc = ERR_RUNTIME; break; }
            done[i] = 1;
            ndone++;
            recovered++;
            continue;
        }
        char d[4200];
        snprintf(d, sizeof d, "%s", out_abs);
        char dir[4300];
        if (prepare_run(d, &runs[i], threads, dir, sizeof dir, err)) { rc = ERR_RUNTIME; break; }
        dirs[np] = xstrdup(dir);
        pend[np++] = i;
    }
    if (recovered) fprintf(stderr, "[grid] recorded %d runs that had finished before an interruption\n", recovered);
    if (!rc && o->export_kind)
        rc = export_jobs(g, out_abs, o->exe, o->export_kind, dirs, np, threads, err);
    if (rc || o->export_kind) goto out;

    fprintf(stderr, "[grid] %s: %d runs, %d already ok, %d to run with %d jobs x %d threads -> %s\n",
            g->path, n, ndone, np, jobs, threads, g->out);
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    g_stop = 0;
    Slot *slots = calloc((size_t)jobs, sizeof *slots);
    Progress pr = {.total = n, .done_before = ndone, .t0 = now_s(), .tty = isatty(2)};
    int next = 0, nfailed = 0;
    double last_draw = 0;
    while ((next < np && !g_stop) || pr.running > 0) {
        while (!g_stop && next < np && pr.running < jobs) {
            int s = 0;
            while (slots[s].pid) s++;
            pid_t pid = spawn_run(o->exe, dirs[next], threads);
            if (pid < 0) {
                rc = err_set(err, ERR_RUNTIME, "fork: %s", strerror(errno));
                g_stop = SIGTERM;
                break;
            }
            slots[s] = (Slot){pid, next, now_s()};
            pr.running++;
            next++;
        }
        int ws;
        pid_t pid = waitpid(-1, &ws, WNOHANG);
        if (pid == 0 || (pid < 0 && errno == EINTR)) {
            if (g_stop) {
                for (int s = 0; s < jobs; s++)
                    if (slots[s].pid) kill(slots[s].pid, SIGTERM);
            }
            if (pr.tty && now_s() - last_draw > 1.0) {
                progress_line(&pr, 0);
                last_draw = now_s();
            }
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (pid < 0) break; /* no children */
        int s = 0;
        while (s < jobs && slots[s].pid != pid) s++;
        if (s == jobs) continue;
        pr.running--;
        int r = slots[s].run;
        double secs = now_s() - slots[s].t0;
        slots[s].pid = 0;
        int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        if (g_stop && code != 0) continue; /* interrupted: no row, redone on resume */
        char st[16] = "failed";
        Err e = {0};
        int appended = 0;
        if (grid_record(dirs[r], runs_csv, &appended, st, &e)) {
            fprintf(stderr, "%s[grid] cannot record %s: %s\n", pr.tty ? "\r\033[K" : "", dirs[r], e.msg);
            snprintf(st, sizeof st, "failed");
        }
        if (strcmp(st, "ok")) { nfailed++; pr.failed++; }
        pr.done_now++;
        /* the run's own result line */
        double top1 = -1;
        char sp[4300];
        snprintf(sp, sizeof sp, "%s/summary.csv", dirs[r]);
        CsvTable t;
        Err e2;
        if (file_nonempty(sp) && !csv_read_file(sp, &t, &e2)) {
            int c = csv_col(&t, "final_top1");
            if (c >= 0 && t.nrows) top1 = atof(csv_cell(&t, 0, c));
            csv_table_free(&t);
        }
        char d1[32];
        fmt_dur(d1, sizeof d1, secs);
        char acc[32] = "n/a";
        if (top1 >= 0) snprintf(acc, sizeof acc, "%.4f", top1);
        fprintf(stderr, "%s[grid] %s %s seed=%" PRIu64 " %s top1=%s (%s, exit %d)%s\n",
                pr.tty ? "\r\033[K" : "", runs[pend[r]].id, st, runs[pend[r]].seed,
                runs[pend[r]].sweep, acc, d1, code,
                strcmp(st, "ok") ? "; log: train.log in the run dir" : "");
        progress_line(&pr, 1);
    }
    free(slots);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (g_stop && !rc) {
        rc = err_set(err, ERR_RUNTIME, "interrupted by signal %d; run the grid again to resume",
                     (int)g_stop);
    } else if (!rc && nfailed) {
        rc = err_set(err, ERR_RUNTIME, "%d of %d runs did not finish ok (see runs.csv and the runs' train.log)",
                     nfailed, np);
    }
out:
    for (int i = 0; i < np; i++) free(dirs[i]);
    free(dirs);
    free(pend);
    free(done);
    close(lockfd);
    return rc;
}
