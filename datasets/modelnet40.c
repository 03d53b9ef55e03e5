/* ModelNet40 loader for the modelnet40_normal_resampled layout (docs/DESIGN.md 3):
 *   <dir>/modelnet40_shape_names.txt   one class name per line (label order)
 *   <dir>/modelnet40_train.txt, _test.txt   one shape id per line
 *   <dir>/<class>/<id>.txt              "x,y,z,nx,ny,nz" per line
 * Shape files are parsed with libcsv (strict mode), fed one physical line at a
 * time so errors name the line. Every cloud keeps P points and is normalised
 * to the unit sphere. */
#include <csv.h>
#include "points.h"
#include "../core/fsutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MN_LIST_MAX_LINE 4096

/* ---- small text files (names, lists) ------------------------------------ */

typedef struct {
    char **s;    /* trimmed, non-empty lines */
    int *line;   /* their 1-based line numbers */
    int n;
} Lines;

static void lines_free(Lines *l) {
    for (int i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    free(l->line);
    memset(l, 0, sizeof *l);
}

static int read_lines(const char *path, Lines *out, Err *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f) return err_set(err, ERR_RUNTIME, "%s: cannot open: %s", path, strerror(errno));
    char buf[MN_LIST_MAX_LINE];
    int cap = 0, ln = 0, rc = 0;
    while (fgets(buf, sizeof buf, f)) {
        ln++;
        size_t len = strlen(buf);
        if (len == sizeof buf - 1 && buf[len - 1] != '\n' && !feof(f)) {
            rc = err_set(err, ERR_RUNTIME, "%s: line %d: line too long", path, ln);
            break;
        }
        char *a = buf, *b = buf + len;
        if (ln == 1 && !strncmp(a, "\xEF\xBB\xBF", 3)) a += 3;   /* a byte-order mark */
        while (*a && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (a == b) continue;
        *b = '\0';
        if (out->n == cap) {
            cap = cap ? 2 * cap : 64;
            char **s = realloc(out->s, (size_t)cap * sizeof *s);
            if (s) out->s = s;
            int *l = realloc(out->line, (size_t)cap * sizeof *l);
            if (l) out->line = l;
            if (!s || !l) { rc = err_set(err, ERR_RUNTIME, "%s: out of memory", path); break; }
        }
        if (!(out->s[out->n] = strdup(a))) {
            rc = err_set(err, ERR_RUNTIME, "%s: out of memory", path);
            break;
        }
        out->line[out->n++] = ln;
    }
    if (!rc && ferror(f)) rc = err_set(err, ERR_RUNTIME, "%s: read error", path);
    fclose(f);
    if (rc) lines_free(out);
    return rc;
}

static char *join(const char *a, const char *b, const char *c, const char *d) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + strlen(d) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s%s", a, b, c, d);
    return p;
}

/* A class name or shape id must be a plain file name. */
static int safe_name(const char *s) {
    if (!*s || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (; *s; s++)
        if (*s == '/' || isspace((unsigned char)*s)) return 0;
    return 1;
}

/* ---- one shape file ----------------------------------------------------- */

typedef struct {
    const char *path;
    Err *err;
    int failed;
    long line, row_line;
    int at_line_start;
    int nf;              /* fields seen in the current record */
    float v[6];
    float *xyz;          /* points read so far */
    size_t n, cap;
} ShapeParse;

__attribute__((format(printf, 3, 4)))
static void sp_fail(ShapeParse *ps, long line, const char *what, ...) {
    if (ps->failed) return;
    char w[160];
    va_list ap;
    va_start(ap, what);
    vsnprintf(w, sizeof w, what, ap);
    va_end(ap);
    err_set(ps->err, ERR_RUNTIME, "%s: line %ld: %s", ps->path, line, w);
    ps->failed = 1;
}

static void on_field(void *s, size_t len, void *data) {
    ShapeParse *ps = data;
    if (ps->failed) return;
    int i = ps->nf++;
    if (i >= 6) return;   /* counted; the record callback reports it */
    const char *str = s;
    if (len == 0) { sp_fail(ps, ps->row_line, "field %d is empty", i + 1); return; }
    char *end;
    float x = strtof(str, &end);
    if (end == str || (size_t)(end - str) != len || !isfinite(x)) {   /* underflow is fine */
        char shown[41];   /* the field, cut at 40 bytes, non-printables as '?' */
        size_t m = len < 40 ? len : 40;
        for (size_t j = 0; j < m; j++) shown[j] = isprint((unsigned char)str[j]) ? str[j] : '?';
        shown[m] = '\0';
        sp_fail(ps, ps->row_line, "field %d is not a finite number: '%s'", i + 1, shown);
        return;
    }
    ps->v[i] = x;
}

static void on_record(int term, void *data) {
    (void)term;
    ShapeParse *ps = data;
    if (ps->failed) return;
    int nf = ps->nf;
    ps->nf = 0;
    if (nf != 6) { sp_fail(ps, ps->row_line, "expected 6 fields x,y,z,nx,ny,nz, found %d", nf); return; }
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? 2 * ps->cap : 4096;
        float *p = realloc(ps->xyz, cap * 3 * sizeof(float));
        if (!p) {
            err_set(ps->err, ERR_RUNTIME, "%s: out of memory", ps->path);
            ps->failed = 1;
            return;
        }
        ps->xyz = p;
        ps->cap = cap;
    }
    memcpy(ps->xyz + 3 * ps->n++, ps->v, 3 * sizeof(float));
}

/* Parses path into a malloc'd (n,3) array; n >= 1 on success. */
static int parse_shape(const char *path, float **xyz, size_t *n, Err *err) {
    size_t len = 0;
    char *buf = NULL;
    if (fs_read_file(path, 0, 0, ERR_RUNTIME, &buf, &len, err)) return ERR_RUNTIME;
    ShapeParse ps = {.path = path, .err = err, .line = 1, .row_line = 1, .at_line_start = 1};
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        free(buf);
        return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    }
    size_t pos = 0;
    while (pos < len && !ps.failed) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t m = nl ? (size_t)(nl - (buf + pos)) + 1 : len - pos;
        if (ps.at_line_start && p.pstate == 0) ps.row_line = ps.line;
        if (csv_parse(&p, buf + pos, m, on_field, on_record, &ps) != m && !ps.failed) {
            err_set(err, ERR_RUNTIME, "%s: line %ld: CSV parse error (%s)", path, ps.line,
                    csv_strerror(csv_error(&p)));
            ps.failed = 1;
        }
        pos += m;
        ps.at_line_start = nl != NULL;
        if (nl) ps.line++;
    }
    if (!ps.failed && csv_fini(&p, on_field, on_record, &ps) != 0 && !ps.failed) {
        err_set(err, ERR_RUNTIME, "%s: line %ld: CSV parse error: unterminated quoted field",
                path, ps.row_line);
        ps.failed = 1;
    }
    csv_free(&p);
    free(buf);
    if (!ps.failed && ps.n == 0) {
        err_set(err, ERR_RUNTIME, "%s: line 1: no points", path);
        ps.failed = 1;
    }
    if (ps.failed) {
        free(ps.xyz);
        return ERR_RUNTIME;
    }
    *xyz = ps.xyz;
    *n = ps.n;
    return 0;
}

/* Picks P of the n points of src into dst (P,3). */
static int select_points(const float *src, size_t n, int P, PointSample how, uint64_t seed,
                         uint64_t stream, float *dst) {
    if (how == PN_SAMPLE_FIRST) {
        memcpy(dst, src, (size_t)P * 3 * sizeof(float));
        return 0;
    }
    int *idx = malloc((how == PN_SAMPLE_RANDOM ? n : (size_t)P) * sizeof *idx);
    if (!idx) return ERR_RUNTIME;
    if (how == PN_SAMPLE_RANDOM) {
        /* Partial Fisher-Yates: the first P of a seeded shuffle. */
        Rng r;
        rng_seed_stream(&r, seed, stream);
        for (size_t i = 0; i < n; i++) idx[i] = (int)i;
        for (int i = 0; i < P; i++) {
            int j = i + (int)rng_below(&r, (uint32_t)(n - (size_t)i));
            int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
        }
    } else if (fps(src, (int)n, P, idx, NULL) != 0) {
        free(idx);
        return ERR_RUNTIME;
    }
    for (int i = 0; i < P; i++) memcpy(dst + 3 * (size_t)i, src + 3 * (size_t)idx[i], 3 * sizeof(float));
    free(idx);
    return 0;
}

/* ---- the set ------------------------------------------------------------- */

/* Length of the class prefix of id "<class>_<digits>", or 0 if malformed. */
static size_t class_len(const char *id) {
    size_t n = strlen(id), i = n;
    while (i > 0 && isdigit((unsigned char)id[i - 1])) i--;
    if (i == n || i < 2 || id[i - 1] != '_') return 0;
    return i - 1;
}

/* A declared class with no shape in the list is an error (e.g. a misspelled
 * name in the names file, whose real class's shapes would be skipped). */
static int check_every_class(const char *names_path, const Lines *names, const char *list_path,
                             const int *labels, int n, Err *err) {
    int *count = calloc((size_t)names->n, sizeof *count);
    if (!count) return err_set(err, ERR_RUNTIME, "%s: out of memory", names_path);
    for (int i = 0; i < n; i++) count[labels[i]]++;
    int rc = 0;
    for (int k = 0; k < names->n && !rc; k++)
        if (!count[k])
            rc = err_set(err, ERR_RUNTIME, "%s: line %d: class '%s' has no shapes in %s",
                         names_path, names->line[k], names->s[k], list_path);
    free(count);
    return rc;
}

int modelnet40_files(const char *dir, int train, DataFiles *f, Err *err) {
    if (!dir || !*dir) return err_set(err, ERR_USAGE, "modelnet40: no data directory given");
    f->n = 2;
    int a = snprintf(f->path[0], sizeof f->path[0], "%s/modelnet40_shape_names.txt", dir);
    int b = snprintf(f->path[1], sizeof f->path[1], "%s/%s", dir, train ? "modelnet40_train.txt" : "modelnet40_test.txt");
    if (a < 0 || b < 0 || (size_t)a >= sizeof f->path[0] || (size_t)b >= sizeof f->path[1])
        return err_set(err, ERR_USAGE, "%s: modelnet40 directory path too long", dir);
    return 0;
}

int modelnet40_load(const char *dir, int train, int P, PointSample sample, uint64_t seed,
                    PointSet *out, Err *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!out) return err_set(err, ERR_USAGE, "modelnet40: NULL output");
    if (!dir || !*dir) return err_set(err, ERR_USAGE, "modelnet40: no data directory given");
    if (P < 1) return err_set(err, ERR_USAGE, "modelnet40: points per cloud %d, need >= 1", P);
    if (sample != PN_SAMPLE_FIRST && sample != PN_SAMPLE_RANDOM && sample != PN_SAMPLE_FPS)
        return err_set(err, ERR_USAGE, "modelnet40: unknown sampling mode %d", (int)sample);

    Lines names = {0}, list = {0};
    char *names_path = NULL, *list_path = NULL;   /* modelnet40_files: one place names them */
    char **paths = NULL;
    int *labels = NULL, *order = NULL, n = 0, rc = 0, first_unmatched = -1;
    DataFiles *df = malloc(sizeof *df);
    if (!df) { rc = err_set(err, ERR_RUNTIME, "modelnet40: out of memory"); goto done; }
    rc = modelnet40_files(dir, train, df, err);
    if (!rc && (!(names_path = strdup(df->path[0])) || !(list_path = strdup(df->path[1]))))
        rc = err_set(err, ERR_RUNTIME, "modelnet40: out of memory");
    free(df);
    if (rc) goto done;
    if ((rc = read_lines(names_path, &names, err))) goto done;
    if (names.n == 0) {
        rc = err_set(err, ERR_RUNTIME, "%s: line 1: no class names", names_path);
        goto done;
    }
    for (int k = 0; k < names.n; k++) {
        if (!safe_name(names.s[k])) {
            rc = err_set(err, ERR_RUNTIME, "%s: line %d: invalid class name '%s'", names_path,
                         names.line[k], names.s[k]);
            goto done;
        }
        for (int j = 0; j < k; j++)
            if (!strcmp(names.s[j], names.s[k])) {
                rc = err_set(err, ERR_RUNTIME, "%s: line %d: duplicate class name '%s'",
                             names_path, names.line[k], names.s[k]);
                goto done;
            }
    }
    if ((rc = read_lines(list_path, &list, err))) goto done;
    paths = calloc((size_t)list.n + 1, sizeof *paths);
    labels = malloc(((size_t)list.n + 1) * sizeof *labels);
    order = malloc(((size_t)list.n + 1) * sizeof *order);
    if (!paths || !labels || !order) { rc = err_set(err, ERR_RUNTIME, "%s: out of memory", list_path); goto done; }
    for (int i = 0; i < list.n; i++) {
        const char *id = list.s[i];
        size_t cl = class_len(id);
        if (!cl || !safe_name(id)) {
            rc = err_set(err, ERR_RUNTIME, "%s: line %d: malformed shape id '%s' (expected "
                         "<class>_<number>)", list_path, list.line[i], id);
            goto done;
        }
        int k = 0;
        while (k < names.n && !(strlen(names.s[k]) == cl && !strncmp(names.s[k], id, cl))) k++;
        if (k == names.n) {   /* a class not selected by the shape-names file: counted */
            if (!out->n_unmatched++) first_unmatched = i;
            continue;
        }
        if (!(paths[n] = join(dir, "/", names.s[k], "/"))) {
            rc = err_set(err, ERR_RUNTIME, "%s: out of memory", list_path);
            goto done;
        }
        char *full = join(paths[n], id, ".txt", "");
        free(paths[n]);
        if (!(paths[n] = full)) { rc = err_set(err, ERR_RUNTIME, "%s: out of memory", list_path); goto done; }
        labels[n] = k;
        order[n] = i;
        n++;
    }
    if (n == 0) {
        rc = err_set(err, ERR_RUNTIME, "%s: no shapes of the %d classes in %s", list_path,
                     names.n, names_path);
        goto done;
    }
    if ((rc = check_every_class(names_path, &names, list_path, labels, n, err))) goto done;
    if (out->n_unmatched)
        fprintf(stderr, "warning: %s: %d of %d shape ids match no class of %s and are skipped "
                "(first: line %d '%s')\n", list_path, out->n_unmatched, list.n, names_path,
                list.line[first_unmatched], list.s[first_unmatched]);

    snprintf(out->name, sizeof out->name, "modelnet40");
    snprintf(out->source, sizeof out->source, "%s", list_path);
    out->n = n;
    out->P = P;
    out->num_classes = names.n;
    out->xyz = malloc((size_t)n * P * 3 * sizeof(float));
    out->labels = malloc((size_t)n * sizeof(int));
    out->class_names = names.s;   /* moved: names.n strings */
    names.s = NULL;
    names.n = 0;
    if (!out->xyz || !out->labels) {
        rc = err_set(err, ERR_RUNTIME, "modelnet40: out of memory for %d clouds", n);
        goto done;
    }
    memcpy(out->labels, labels, (size_t)n * sizeof(int));

    /* Parse in parallel; keep the first failure in list order. */
    int first_bad = n;
    Err first_err = {0};
    #pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < n; i++) {
        int skip;
        #pragma omp atomic read
        skip = first_bad;
        if (i > skip) continue;
        Err e = {0};
        float *pts = NULL;
        size_t np = 0;
        int r = parse_shape(paths[i], &pts, &np, &e);
        if (!r && np < (size_t)P)
            r = err_set(&e, ERR_RUNTIME, "%s: line %zu: file ends after %zu points, need %d",
                        paths[i], np + 1, np, P);
        if (!r && select_points(pts, np, P, sample, seed, (uint64_t)order[i],
                                out->xyz + (size_t)i * P * 3) != 0)
            r = err_set(&e, ERR_RUNTIME, "%s: out of memory", paths[i]);
        free(pts);
        if (r) {
            #pragma omp critical(modelnet40_err)
            if (i < first_bad) {
                first_err = e;
                #pragma omp atomic write
                first_bad = i;
            }
        } else {
            points_normalize(out->xyz + (size_t)i * P * 3, P);
        }
    }
    if (first_bad < n) rc = err_set(err, first_err.code ? first_err.code : ERR_RUNTIME, "%s",
                                    first_err.msg);

done:
    if (paths)
        for (int i = 0; i < n; i++) free(paths[i]);
    free(paths); free(labels); free(order);
    lines_free(&names);
    lines_free(&list);
    free(names_path); free(list_path);
    if (rc) pointset_free(out);
    return rc;
}
