/* bin/ewa claims: verdicts on the papers' claims from the aggregated tables.
 * The rules are in claims.h. */
#include "claims.h"
#include "../core/fsutil.h"
#include "aggregate.h"
#include "csvio.h"
#include "grid.h"
#include "stats.h"
#include "util.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *ewa_git_commit(void);
int ewa_git_dirty(void);

enum { T_PAIRED, T_SLOPE, T_MI };
enum { D_GREATER, D_LESS, D_FLAT };
enum { V_SUPPORTED, V_CONTRADICTED, V_INCONCLUSIVE, V_NODATA };
static const char *const VERDICT[] = {"supported", "contradicted", "inconclusive", "no data"};

#define CLAIMS_MAX 64
#define CLAIMS_MAX_BYTES (1 << 20)

typedef struct {
    char id[32];
    int line;
    char text[512], source[256], table[512], runs[512], select[512], baseline[256], primary[256],
        require[512], x[64], figures[512];
    int test, dir, have_test, have_dir, equal_cost;
    double margin;
} ClaimDef;

/* ---------------------------------------------------------------- key=value lists */

typedef struct {
    int n;
    char **k, **v;
} KvList;

static void kv_free(KvList *l) {
    for (int i = 0; i < l->n; i++) { free(l->k[i]); free(l->v[i]); }
    free(l->k);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* "k=v, k2=\"a,b\"" -> pairs; ERR_USAGE naming the bad item. */
static int kv_parse(const char *s, KvList *out, Err *err) {
    memset(out, 0, sizeof *out);
    char **items = NULL;
    int n = grid_split_values(s, &items), rc = 0;
    if (n < 0) rc = err_set(err, ERR_USAGE, "'%s': an empty item or bad quoting", s);
    for (int i = 0; i < n; i++) {
        char *eq = strchr(items[i], '=');
        if (!rc && (!eq || eq == items[i]))
            rc = err_set(err, ERR_USAGE, "'%s' is not of the form key=value", items[i]);
        if (!rc) {
            out->k = xrealloc(out->k, sizeof(char *) * (size_t)(out->n + 1));
            out->v = xrealloc(out->v, sizeof(char *) * (size_t)(out->n + 1));
            *eq = '\0';
            out->k[out->n] = xstrdup(items[i]);
            out->v[out->n++] = xstrdup(eq + 1);
        }
        free(items[i]);
    }
    free(items);
    if (rc) kv_free(out);
    return rc;
}

/* Whether the "k=v k=v ..." label holds the token key=value. */
static int label_has(const char *label, const char *key, const char *value) {
    size_t kl = strlen(key), vl = strlen(value);
    for (const char *p = label; *p;) {
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == kl + 1 + vl && !strncmp(p, key, kl) && p[kl] == '=' && !strncmp(p + kl + 1, value, vl))
            return 1;
        p += len;
        while (*p == ' ') p++;
    }
    return 0;
}

/* ---------------------------------------------------------------- parsing */

typedef struct {
    ClaimDef *c;
    int n;
    const char *pos;
    int lineno, err_line;
    Err err;
} ClaimParse;

static char *claims_reader(char *str, int num, void *stream) {
    ClaimParse *x = stream;
    if (!ini_text_read_line(&x->pos, &x->lineno, str, num, &x->err_line, &x->err)) return NULL;
    char sec[128];
    if (x->err_line || sscanf(str, " [%126[^]]]", sec) != 1) return str;
    str_trim(sec);
    const char *id = sec + 6;
    if (strncmp(sec, "claim.", 6) || !*id || strlen(id) >= sizeof x->c[0].id) {
        x->err_line = x->lineno;
        err_set(&x->err, ERR_USAGE, "section [%s]: expected [claim.ID] (ID up to 31 characters)", sec);
    } else if (x->n == CLAIMS_MAX) {
        x->err_line = x->lineno;
        err_set(&x->err, ERR_USAGE, "more than %d claims", CLAIMS_MAX);
    } else {
        for (int i = 0; i < x->n; i++)
            if (!strcmp(x->c[i].id, id)) {
                x->err_line = x->lineno;
                err_set(&x->err, ERR_USAGE, "[claim.%s] is defined twice (first at line %d)", id, x->c[i].line);
                return str;
            }
        ClaimDef *d = memset(&x->c[x->n++], 0, sizeof(ClaimDef));
        snprintf(d->id, sizeof d->id, "%s", id);
        d->line = x->lineno;
        d->test = T_PAIRED;
    }
    return str;
}

typedef struct {
    const char *name;
    size_t off, size;
} StrKey;
#define SK(f) {#f, offsetof(ClaimDef, f), sizeof(((ClaimDef *)0)->f)}
static const StrKey STR_KEYS[] = {SK(text),    SK(source),  SK(table), SK(runs), SK(select),
                                  SK(baseline), SK(primary), SK(require), SK(x),  SK(figures)};
#define NSTR_KEYS ((int)(sizeof STR_KEYS / sizeof STR_KEYS[0]))

static int set_enum(const char *name, const char *value, const char *const *names, int n, int *out,
                    Err *err) {
    for (int i = 0; i < n; i++)
        if (!strcmp(value, names[i])) { *out = i; return 0; }
    char all[128] = "";
    for (int i = 0; i < n; i++) snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? " | " : "", names[i]);
    return err_set(err, ERR_USAGE, "%s '%s': expected %s", name, value, all);
}

static int claim_key(ClaimDef *d, const char *name, const char *value, Err *err) {
    static const char *const tests[] = {"paired", "slope", "routing_mi"}, *const dirs[] = {"greater", "less", "flat"};
    for (int i = 0; i < NSTR_KEYS; i++) {
        if (strcmp(name, STR_KEYS[i].name)) continue;
        if (strlen(value) >= STR_KEYS[i].size)
            return err_set(err, ERR_USAGE, "%s: longer than %zu characters", name, STR_KEYS[i].size - 1);
        snprintf((char *)d + STR_KEYS[i].off, STR_KEYS[i].size, "%s", value);
        /* key=value lists are checked here, so that an error names this line */
        int list = !strcmp(name, "select") || !strcmp(name, "baseline") || !strcmp(name, "require");
        const char *kv = list ? value : !strncmp(name, "primary", 8) && !strncmp(value, "pooled ", 7) ? value + 7 : NULL;
        KvList l;
        Err e = {0};
        if (kv && kv[0] && kv_parse(kv, &l, &e)) return err_set(err, ERR_USAGE, "%s: %s", name, e.msg);
        if (kv && kv[0]) kv_free(&l);
        return 0;
    }
    if (!strcmp(name, "test")) { d->have_test = 1; return set_enum(name, value, tests, 3, &d->test, err); }
    if (!strcmp(name, "direction")) { d->have_dir = 1; return set_enum(name, value, dirs, 3, &d->dir, err); }
    if (!strcmp(name, "equal_cost")) {
        if (strcmp(value, "0") && strcmp(value, "1"))
            return err_set(err, ERR_USAGE, "equal_cost '%s': expected 0 or 1", value);
        d->equal_cost = value[0] == '1';
        return 0;
    }
    if (!strcmp(name, "margin")) {
        char *end;
        d->margin = strtod(value, &end);
        if (!*value || *end || !(d->margin >= 0) || isinf(d->margin))
            return err_set(err, ERR_USAGE, "margin '%s': expected a number >= 0", value);
        return 0;
    }
    return err_set(err, ERR_USAGE, "unknown key '%s' (known: text, source, test, table, runs, select, "
                                   "baseline, direction, margin, primary, require, x, figures, equal_cost)", name);
}

static int claims_handler(void *user, const char *section, const char *name, const char *value) {
    ClaimParse *x = user;
    if (x->err_line) return 1;
    int rc;
    if (!x->n || strncmp(section, "claim.", 6) || strcmp(section + 6, x->c[x->n - 1].id)) {
        rc = err_set(&x->err, ERR_USAGE, "key '%s' is outside a [claim.ID] section", name);
    } else {
        Err e = {0};
        rc = claim_key(&x->c[x->n - 1], name, value, &e);
        if (rc) err_set(&x->err, ERR_USAGE, "[%s] %s", section, e.msg);
    }
    if (rc) x->err_line = x->lineno;
    return 1;
}

/* The cross-key rules of one claim (message without the file). */
static int claim_check(const ClaimDef *d, Err *err) {
    KvList l;
    const char *lists[] = {d->select, d->baseline, d->require}, *names[] = {"select", "baseline", "require"};
    if (!d->text[0]) return err_set(err, ERR_USAGE, "text is missing");
    if (!d->table[0]) return err_set(err, ERR_USAGE, "table is missing");
    if (!d->have_test) return err_set(err, ERR_USAGE, "test is missing (paired | slope | routing_mi)");
    if (!d->have_dir) return err_set(err, ERR_USAGE, "direction is missing (greater | less | flat)");
    if (d->dir == D_FLAT && !(d->margin > 0))
        return err_set(err, ERR_USAGE, "direction = flat needs a margin > 0 (the equivalence interval)");
    if (d->test == T_SLOPE && !d->x[0]) return err_set(err, ERR_USAGE, "test = slope needs x (the column)");
    if (d->equal_cost && d->test != T_PAIRED) return err_set(err, ERR_USAGE, "equal_cost needs test = paired");
    if (d->test == T_SLOPE && d->primary[0] && strcmp(d->primary, "all"))
        return err_set(err, ERR_USAGE, "test = slope has no pooled row: primary = all");
    if (d->primary[0] && strcmp(d->primary, "all") && strcmp(d->primary, "pooled") &&
        strncmp(d->primary, "pooled ", 7))
        return err_set(err, ERR_USAGE, "primary '%s': expected all, pooled or pooled key=value", d->primary);
    if (!strncmp(d->primary, "pooled ", 7) && kv_parse(d->primary + 7, &l, err)) return ERR_USAGE;
    if (!strncmp(d->primary, "pooled ", 7)) kv_free(&l);
    for (int i = 0; i < 3; i++) {
        if (!lists[i][0]) continue;
        Err e = {0};
        if (kv_parse(lists[i], &l, &e)) return err_set(err, ERR_USAGE, "%s: %s", names[i], e.msg);
        kv_free(&l);
    }
    return 0;
}

static int claims_load(const char *path, ClaimDef *defs, int *n, Err *err) {
    char *text = NULL;
    *n = 0;
    if (fs_read_file(path, CLAIMS_MAX_BYTES, 1, ERR_USAGE, &text, NULL, err)) return ERR_USAGE;
    ClaimParse x = {.c = defs, .pos = text};
    int r = ini_parse_stream(claims_reader, &x, claims_handler, &x), rc = 0;
    free(text);
    if (x.err_line) rc = err_set(err, ERR_USAGE, "%s: line %d: %s", path, x.err_line, x.err.msg);
    else if (r > 0) rc = err_set(err, ERR_USAGE, "%s: line %d: syntax error", path, r);
    else if (r < 0) rc = err_set(err, ERR_USAGE, "%s: cannot parse (inih error %d)", path, r);
    else if (!x.n) rc = err_set(err, ERR_USAGE, "%s: no [claim.ID] section", path);
    for (int i = 0; i < x.n && !rc; i++) {
        Err e = {0};
        if (claim_check(&defs[i], &e))
            rc = err_set(err, ERR_USAGE, "%s: line %d: [claim.%s] %s", path, defs[i].line, defs[i].id, e.msg);
    }
    *n = x.n;
    return rc;
}

/* ---------------------------------------------------------------- tests */

typedef struct {
    char label[1024];   /* the row's cell label (series, for slopes) */
    char extra[512];    /* what else the row says (slope: the x values; MI: the two layers) */
    const char *note;   /* why there is no test */
    int n;              /* pairs (seeds) */
    double d, lo, hi, se, df, mde, p0;   /* p0: the table's p against 0, NAN unknown */
    double p, p_holm;   /* against the claim's null value */
    double cost_s, cost_f;   /* paired rows: train_seconds and flops_train / the baseline cell's (NAN unknown) */
    int verdict;
} ClaimTest;

typedef struct {
    const ClaimDef *d;
    int verdict;
    char reason[2048];
    ClaimTest *t;
    int nt;
    ClaimTest pooled;
    int has_pooled, pooled_cells;
    char missing[512];  /* require settings without a row */
    char table_dir[4200], runs_csv[4200];
    /* provenance of the runs */
    int nruns, ndirty, dirty_unknown, ncommits;
    char commits[512];
    int cost_equal, cost_differs;   /* equal_cost: rows whose inference cost equals the baseline's, or not */
    int broken;         /* the table exists but is not one bin/ewa aggregate writes: an error, not no data */
} ClaimResult;

/* A test with every figure unknown (NAN): what a row does not give stays "-". */
static ClaimTest *test_init(ClaimTest *t) {
    memset(t, 0, sizeof *t);
    t->d = t->lo = t->hi = t->se = t->df = t->mde = t->p0 = t->p = t->p_holm = t->cost_s = t->cost_f = NAN;
    t->verdict = V_INCONCLUSIVE;
    return t;
}

static ClaimTest *test_add(ClaimResult *r) {
    r->t = xrealloc(r->t, sizeof(ClaimTest) * (size_t)(r->nt + 1));
    return test_init(&r->t[r->nt++]);
}

/* No data: the verdict with its reason; returns 0 (not an error). */
static int no_data(ClaimResult *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int no_data(ClaimResult *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    r->verdict = V_NODATA;
    return 0;
}

/* A table that exists but cannot be what bin/ewa aggregate wrote: the
 * reason, and claims_run fails (exit 1) instead of writing "no data". */
static int broken(ClaimResult *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int broken(ClaimResult *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    r->verdict = V_NODATA;
    r->broken = 1;
    return 0;
}

static double cell_num(const CsvTable *t, int r, int c) {
    const char *s = c >= 0 ? csv_cell(t, r, c) : "";
    return s[0] ? atof(s) : NAN;
}

/* A test from a table row with the columns diff|mean_bits, ci_low, ci_high,
 * p, mde, n_pairs (cols[0..5]): se from the interval's half-width. */
static void test_from_row(ClaimTest *t, const CsvTable *tb, int r, const int *cols) {
    t->d = cell_num(tb, r, cols[0]);
    t->lo = cell_num(tb, r, cols[1]);
    t->hi = cell_num(tb, r, cols[2]);
    t->p0 = cell_num(tb, r, cols[3]);
    t->mde = cell_num(tb, r, cols[4]);
    t->n = atoi(csv_cell(tb, r, cols[5]));
    t->df = t->n - 1;
    if (t->n >= 2 && !isnan(t->lo) && !isnan(t->hi))
        t->se = (t->hi - t->lo) / (2 * stats_t_quantile(1 - STATS_ALPHA / 2, t->df));
    if (t->n < 2) t->note = "fewer than 2 pairs";
    else if (!(t->se > 0)) t->note = "zero variance";
}

static void test_from_ttest(ClaimTest *t, const TTest *s) {
    t->n = s->n;
    t->d = s->diff;
    t->lo = s->ci_low;
    t->hi = s->ci_high;
    t->se = s->se;
    t->df = s->df;
    t->mde = s->mde;
    t->p0 = s->p;
    if (t->n < 2) t->note = "fewer than 2 seeds";
    else if (!(t->se > 0)) t->note = "zero variance";
}

/* Whether row r of t matches every pair of l; *bad = a key the table lacks. */
static int row_matches(const CsvTable *t, int r, const KvList *l, const char **bad) {
    for (int i = 0; i < l->n; i++) {
        int c = csv_col(t, l->k[i]);
        if (c < 0) { *bad = l->k[i]; return 0; }
        if (strcmp(csv_cell(t, r, c), l->v[i])) return 0;
    }
    return 1;
}

/* Looks up the columns names[0..n) of t into cols; the first missing one or NULL. */
static const char *table_cols(const CsvTable *t, const char *const *names, int n, int *cols) {
    for (int i = 0; i < n; i++)
        if ((cols[i] = csv_col(t, names[i])) < 0) return names[i];
    return NULL;
}

/* Whether label holds every pair of l. */
static int label_has_all(const char *label, const KvList *l) {
    for (int i = 0; i < l->n; i++)
        if (!label_has(label, l->k[i], l->v[i])) return 0;
    return 1;
}

/* Table columns of a test (test_from_row's order), then cell, n, and the
 * source's own. */
enum { C_D, C_LO, C_HI, C_P, C_MDE, C_NP, C_CELL, C_N, C_X1, C_X2, C_X3, C_NCOL };

/* Whether s is a number as aggregate writes one ("%.6f" / "%.6g", "" for
 * none), finite; strtod's whole-string parse. */
static int is_table_number(const char *s) {
    if (!s[0]) return 1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    return end != s && !*end && isfinite(x) && errno != ERANGE;
}

/* The first problem of row i of a test table (columns cols[C_D..C_NP]), or
 * NULL: a cell that is not a number, an interval with its ends swapped, p
 * outside [0, 1], a negative MDE, n_pairs not a whole number >= 0. */
static const char *row_problem(const CsvTable *tb, int i, const int *cols, int *bad_col) {
    for (int k = C_D; k <= C_NP; k++)
        if (!is_table_number(csv_cell(tb, i, cols[k]))) { *bad_col = cols[k]; return "is not a number"; }
    const char *lo = csv_cell(tb, i, cols[C_LO]), *hi = csv_cell(tb, i, cols[C_HI]);
    *bad_col = cols[C_LO];
    if (lo[0] && hi[0] && atof(lo) > atof(hi)) return "is above ci_high";
    const char *p = csv_cell(tb, i, cols[C_P]), *mde = csv_cell(tb, i, cols[C_MDE]), *n = csv_cell(tb, i, cols[C_NP]);
    *bad_col = cols[C_P];
    if (p[0] && !(atof(p) >= 0 && atof(p) <= 1)) return "is not a probability";
    *bad_col = cols[C_MDE];
    if (mde[0] && !(atof(mde) >= 0)) return "is negative";
    *bad_col = cols[C_NP];
    if (n[0] && (strspn(n, "0123456789") != strlen(n))) return "is not a whole number of pairs";
    return NULL;
}

/* Row i is a pooled row: the primary test when the claim's primary is
 * "pooled [key=value]" and the row matches. */
static void take_pooled(ClaimResult *r, const CsvTable *tb, int i, const int *cols, int *npooled) {
    if (strncmp(r->d->primary, "pooled", 6)) return;
    KvList prim = {0};
    const char *bad = NULL;
    if (r->d->primary[6]) kv_parse(r->d->primary + 7, &prim, NULL);
    if (row_matches(tb, i, &prim, &bad)) {
        (*npooled)++;
        r->has_pooled = 1;
        test_init(&r->pooled);   /* no training cost of its own: the cells' rows show theirs */
        snprintf(r->pooled.label, sizeof r->pooled.label, "**%s**", r->d->primary);
        test_from_row(&r->pooled, tb, i, cols);
        r->pooled_cells = atoi(csv_cell(tb, i, cols[C_N]));
    }
    kv_free(&prim);
}

/* No data: the table at path is missing (not aggregated yet); returns 0. */
static int table_missing(ClaimResult *r, const char *path) {
    return no_data(r, "%s does not exist (run the grid and bin/ewa aggregate; paper_configs/claims.ini says which "
                      "table the claim reads)", path);
}

/* Reads dir/name into tb with the columns names (C_NCOL at most); no data
 * (returns 1) when the file or a column is missing. */
static int open_table(ClaimResult *r, const char *name, const char *const *names, int n, CsvTable *tb,
                      int *cols, char *path, size_t pn) {
    snprintf(path, pn, "%s/%s", r->table_dir, name);
    Err e = {0};
    if (access(path, R_OK)) return !table_missing(r, path);
    if (csv_read_file(path, tb, &e)) return !broken(r, "%s", e.msg);
    const char *miss = table_cols(tb, names, n, cols);
    if (miss) {
        csv_table_free(tb);
        return !broken(r, "%s has no column '%s' (aggregated before issue 10? run bin/ewa aggregate again)", path,
                       miss);
    }
    for (int i = 0; i < tb->nrows; i++) {
        int bc;
        const char *why = row_problem(tb, i, cols, &bc);
        if (!why) continue;
        broken(r, "%s: line %ld, column %s = '%s' %s", path, tb->lines ? tb->lines[i] : (long)i + 2, tb->header[bc],
               csv_cell(tb, i, bc), why);
        csv_table_free(tb);
        return 1;
    }
    return 0;
}

/* A selected row of table.csv without a baseline cell: skipped when it is a
 * baseline cell itself, else a test without data. */
static void paired_unmatched(ClaimResult *r, const char *cell, const KvList *base) {
    if (base->n && label_has_all(cell, base)) return;
    ClaimTest *t = test_add(r);
    snprintf(t->label, sizeof t->label, "%s", cell);
    t->note = "no baseline cell in the table";
}

/* The row of table tb whose cell label is label (a baseline cell); -1 none. */
static int find_cell_row(const CsvTable *tb, const char *label) {
    int cc = csv_col(tb, "cell");
    for (int k = 0; cc >= 0 && k < tb->nrows; k++)
        if (!strcmp(csv_cell(tb, k, cc), label)) return k;
    return -1;
}

/* equal_cost: row i's params_inference and flops_inference against its
 * baseline cell's (row b, -1 if absent). */
static void check_cost(ClaimResult *r, ClaimTest *t, const CsvTable *tb, int i, int b, const char *path) {
    int cp = csv_col(tb, "params_inference"), cf = csv_col(tb, "flops_inference");
    if (cp < 0 || cf < 0) {
        no_data(r, "%s has no params_inference / flops_inference columns (equal_cost)", path);
        return;
    }
    const char *p = csv_cell(tb, i, cp), *f = csv_cell(tb, i, cf);
    const char *pb = b >= 0 ? csv_cell(tb, b, cp) : "?", *fb = b >= 0 ? csv_cell(tb, b, cf) : "?";
    if (p[0] && f[0] && !strcmp(p, pb) && !strcmp(f, fb)) { r->cost_equal++; return; }
    r->cost_differs++;
    snprintf(t->extra, sizeof t->extra, "inference cost differs from the baseline's: params %s vs %s, FLOPs %s vs %s",
             p, pb, f, fb);
}

/* Row i's training cost relative to its baseline cell's (row b): the ratios
 * of the table's mean train_seconds and flops_train (issue 16: every
 * comparison shows what its method costs to train); NAN when a table predates
 * the columns or a value is missing. */
static void train_cost(ClaimTest *t, const CsvTable *tb, int i, int b) {
    int cs = csv_col(tb, "train_seconds"), cf = csv_col(tb, "flops_train");
    if (b < 0) return;
    int col[2] = {cs, cf};
    double *out[2] = {&t->cost_s, &t->cost_f};
    for (int k = 0; k < 2; k++) {
        if (col[k] < 0) continue;
        const char *a = csv_cell(tb, i, col[k]), *z = csv_cell(tb, b, col[k]);
        double x = a[0] ? strtod(a, NULL) : NAN, y = z[0] ? strtod(z, NULL) : NAN;
        if (y > 0) *out[k] = x / y;
    }
}

static void load_paired(ClaimResult *r) {
    static const char *const names[] = {"diff", "ci_low", "ci_high", "p", "mde", "n_pairs", "cell", "n", "baseline"};
    CsvTable tb;
    int cols[C_NCOL], npooled = 0;
    char path[4400];
    if (open_table(r, "table.csv", names, 9, &tb, cols, path, sizeof path)) return;
    KvList sel, base;
    kv_parse(r->d->select, &sel, NULL);
    kv_parse(r->d->baseline, &base, NULL);
    const char *bad = NULL;
    for (int i = 0; i < tb.nrows && r->verdict != V_NODATA; i++) {
        const char *cell = csv_cell(&tb, i, cols[C_CELL]), *bl = csv_cell(&tb, i, cols[C_X1]);
        if (!strcmp(cell, "pooled")) { take_pooled(r, &tb, i, cols, &npooled); continue; }
        if (!row_matches(&tb, i, &sel, &bad)) continue;
        if (!bl[0]) { paired_unmatched(r, cell, &base); continue; }
        if (!label_has_all(bl, &base)) {
            no_data(r, "%s compares '%s' with '%s'; this claim needs a baseline cell with %s (bin/ewa aggregate "
                       "--baseline ... --out %s)", path, cell, bl, r->d->baseline, r->table_dir);
            break;
        }
        ClaimTest *t = test_add(r);
        snprintf(t->label, sizeof t->label, "%s", cell);
        test_from_row(t, &tb, i, cols);
        int b = find_cell_row(&tb, bl);
        train_cost(t, &tb, i, b);
        if (r->d->equal_cost) check_cost(r, t, &tb, i, b, path);
    }
    if (bad && r->verdict != V_NODATA) no_data(r, "%s has no column '%s' (select)", path, bad);
    if (npooled > 1 && r->verdict != V_NODATA)
        no_data(r, "%s has %d pooled rows: name one with primary = pooled key=value", path, npooled);
    kv_free(&sel);
    kv_free(&base);
    csv_table_free(&tb);
}

/* The per-layer row of routing_mi.csv for (cell, layer): "mean [lo, hi]". */
static void mi_layer_text(const CsvTable *tb, const int *cols, const char *cell, const char *layer, char *b,
                          size_t n) {
    for (int i = 0; i < tb->nrows; i++)
        if (!strcmp(csv_cell(tb, i, cols[C_CELL]), cell) && !strcmp(csv_cell(tb, i, cols[C_X2]), layer) &&
            !csv_cell(tb, i, cols[C_X1])[0]) {
            snprintf(b, n, "layer %s: %.3f [%.3f, %.3f] of %.3f bits", layer, cell_num(tb, i, cols[C_D]),
                     cell_num(tb, i, cols[C_LO]), cell_num(tb, i, cols[C_HI]), cell_num(tb, i, cols[C_X3]));
            return;
        }
    snprintf(b, n, "layer %s: -", layer);
}

static void load_routing_mi(ClaimResult *r) {
    static const char *const names[] = {"mean_bits", "ci_low", "ci_high", "p", "mde", "n_pairs",
                                        "cell", "n", "vs_layer", "layer", "max_bits"};
    CsvTable tb;
    int cols[C_NCOL], npooled = 0;
    char path[4400];
    if (open_table(r, "routing_mi.csv", names, 11, &tb, cols, path, sizeof path)) return;
    KvList sel;
    kv_parse(r->d->select, &sel, NULL);
    const char *bad = NULL;
    for (int i = 0; i < tb.nrows; i++) {
        const char *cell = csv_cell(&tb, i, cols[C_CELL]), *vs = csv_cell(&tb, i, cols[C_X1]);
        if (!vs[0]) continue;   /* a per-layer row */
        if (!strcmp(cell, "pooled")) { take_pooled(r, &tb, i, cols, &npooled); continue; }
        if (!row_matches(&tb, i, &sel, &bad)) continue;
        ClaimTest *t = test_add(r);
        snprintf(t->label, sizeof t->label, "%s", cell);
        test_from_row(t, &tb, i, cols);
        char a[200], b[200];
        mi_layer_text(&tb, cols, cell, csv_cell(&tb, i, cols[C_X2]), a, sizeof a);
        mi_layer_text(&tb, cols, cell, vs, b, sizeof b);
        snprintf(t->extra, sizeof t->extra, "%s; %s", a, b);
    }
    if (bad) no_data(r, "%s has no column '%s' (select)", path, bad);
    kv_free(&sel);
    csv_table_free(&tb);
}

/* ---------------------------------------------------------------- runs */

/* The ok runs of a runs.csv as the tables see them (aggregate_load: rows
 * deduplicated by run_id, grouped by the default keys); strings point into s. */
typedef struct {
    AggSet s;
    int ng, n;
    const char **key;      /* ng */
    const char **val;      /* n * ng, row-major */
    const char **run_id, **commit;
    int *dirty;
    long *seed;
    double *final_top1;
} RunValues;

static int runs_load(const char *path, RunValues *v, Err *err) {
    memset(v, 0, sizeof *v);
    if (aggregate_load(path, NULL, NULL, 0, &v->s, err)) return ERR_RUNTIME;
    const AggSet *s = &v->s;
    size_t n = (size_t)s->n + 1;
    v->ng = s->ng;
    v->key = xmalloc(sizeof(char *) * (size_t)(s->ng + 1));
    for (int g = 0; g < s->ng; g++) v->key[g] = s->gname[g];
    v->val = xmalloc(sizeof(char *) * n * (size_t)(s->ng + 1));
    v->run_id = xmalloc(sizeof(char *) * n);
    v->commit = xmalloc(sizeof(char *) * n);
    v->dirty = xmalloc(sizeof(int) * n);
    v->seed = xmalloc(sizeof(long) * n);
    v->final_top1 = xmalloc(sizeof(double) * n);
    for (int i = 0; i < s->n; i++) {
        if (s->cell_of[i] < 0) continue;
        for (int g = 0; g < s->ng; g++) v->val[(size_t)v->n * s->ng + g] = aggregate_run_get(s, i, s->gname[g]);
        const char *d = aggregate_run_get(s, i, "git_dirty");
        v->run_id[v->n] = aggregate_run_get(s, i, "run_id");
        v->commit[v->n] = aggregate_run_get(s, i, "git_commit");
        v->dirty[v->n] = d[0] ? atoi(d) : -1;
        v->seed[v->n] = atol(aggregate_run_get(s, i, "seed"));
        v->final_top1[v->n++] = atof(aggregate_run_get(s, i, "final_top1"));
    }
    return 0;
}

static void runs_free(RunValues *v) {
    free(v->key);
    free(v->val);
    free(v->run_id);
    free(v->commit);
    free(v->dirty);
    free(v->seed);
    free(v->final_top1);
    if (v->s.n) aggregate_free(&v->s);
    memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------- slopes */

/* A value of x: a number, or "last:L" (the last L blocks) = L. */
static int x_value(const char *s, double *x) {
    const char *p = strncmp(s, "last:", 5) ? s : s + 5;
    char *end;
    *x = strtod(p, &end);
    return *p && !*end && isfinite(*x);
}

/* The series label of run i: its grouping values but x, "k=v k=v". */
static void series_label(const RunValues *v, int i, int xc, char *b, size_t n) {
    b[0] = '\0';
    for (int g = 0; g < v->ng; g++) {
        if (g == xc) continue;
        size_t L = strlen(b);
        snprintf(b + L, n - L, "%s%s=%s", L ? " " : "", v->key[g], v->val[(size_t)i * v->ng + g]);
    }
}

/* The slope test of one series: runs with series[i] == s (x values xv). */
static void slope_series(ClaimResult *r, const RunValues *v, char **series, const double *xv, const char *s) {
    int n = 0, ns = 0;
    double *x = xmalloc(sizeof(double) * (size_t)(v->n + 1)), *y = xmalloc(sizeof(double) * (size_t)(v->n + 1));
    double *slope = xmalloc(sizeof(double) * (size_t)(v->n + 1)), *zero = calloc((size_t)v->n + 1, sizeof(double));
    char *done = calloc((size_t)v->n + 1, 1), xs[256] = "";
    for (int i = 0; i < v->n; i++) {
        if (!series[i] || strcmp(series[i], s) || done[i]) continue;
        n = 0;
        for (int j = i; j < v->n; j++)   /* every run of this seed */
            if (series[j] && !strcmp(series[j], s) && v->seed[j] == v->seed[i]) {
                x[n] = xv[j];
                y[n++] = v->final_top1[j];
                done[j] = 1;
            }
        double b = stats_ols_slope(x, y, n);
        if (!isnan(b)) slope[ns++] = b;
        if (!xs[0])
            for (int k = 0; k < n; k++) snprintf(xs + strlen(xs), sizeof xs - strlen(xs), "%s%g", k ? ", " : "", x[k]);
    }
    TTest tt = stats_paired_t(zero, slope, ns);
    ClaimTest *t = test_add(r);
    snprintf(t->label, sizeof t->label, "%s", s);
    test_from_ttest(t, &tt);
    snprintf(t->extra, sizeof t->extra, "%s = %s (first seed)", r->d->x, xs);
    free(x); free(y); free(slope); free(zero); free(done);
}

/* The selected runs' series labels and x values; no data on a bad x. */
static int slope_prepare(ClaimResult *r, const RunValues *v, int xc, const KvList *sel, const int *selc,
                         char **series, double *xv) {
    for (int i = 0; i < v->n; i++) {
        int ok = 1;
        for (int k = 0; k < sel->n && ok; k++) ok = !strcmp(v->val[(size_t)i * v->ng + selc[k]], sel->v[k]);
        if (!ok) continue;
        const char *xs = v->val[(size_t)i * v->ng + xc];
        if (!x_value(xs, &xv[i]))
            return !no_data(r, "%s: run %s has %s = '%s', neither a number nor last:L", r->runs_csv, v->run_id[i],
                            r->d->x, xs);
        char b[1024];
        series_label(v, i, xc, b, sizeof b);
        series[i] = xstrdup(b);
    }
    return 0;
}

static int key_index(const RunValues *v, const char *key) {
    for (int g = 0; g < v->ng; g++)
        if (!strcmp(v->key[g], key)) return g;
    return -1;
}

static void load_slope(ClaimResult *r, const RunValues *v) {
    int xc = key_index(v, r->d->x);
    if (xc < 0) { no_data(r, "%s: '%s' is not a grouping key of the runs", r->runs_csv, r->d->x); return; }
    KvList sel;
    kv_parse(r->d->select, &sel, NULL);
    int *selc = xmalloc(sizeof(int) * (size_t)(sel.n + 1));
    for (int k = 0; k < sel.n && r->verdict != V_NODATA; k++)
        if ((selc[k] = key_index(v, sel.k[k])) < 0)
            no_data(r, "%s: '%s' (select) is not a grouping key of the runs", r->runs_csv, sel.k[k]);
    char **series = calloc((size_t)v->n + 1, sizeof(char *));
    double *xv = xmalloc(sizeof(double) * (size_t)(v->n + 1));
    if (r->verdict != V_NODATA && !slope_prepare(r, v, xc, &sel, selc, series, xv))
        for (int i = 0; i < v->n; i++) {
            int first = series[i] != NULL;
            for (int j = 0; j < i && first; j++) first = !series[j] || strcmp(series[j], series[i]);
            if (first) slope_series(r, v, series, xv, series[i]);
        }
    for (int i = 0; i < v->n; i++) free(series[i]);
    free(series);
    free(xv);
    free(selc);
    kv_free(&sel);
}

/* ---------------------------------------------------------------- provenance */

static void provenance(ClaimResult *r, const RunValues *v) {
    r->nruns = v->n;
    for (int i = 0; i < v->n; i++) {
        r->ndirty += v->dirty[i] == 1;
        r->dirty_unknown += v->dirty[i] < 0;
        const char *c = v->commit[i][0] ? v->commit[i] : "unknown";
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = !strcmp(v->commit[j][0] ? v->commit[j] : "unknown", c);
        if (seen) continue;
        size_t L = strlen(r->commits);
        if (r->ncommits < 8) snprintf(r->commits + L, sizeof r->commits - L, "%s`%s`", L ? ", " : "", c);
        r->ncommits++;
    }
}

/* ---------------------------------------------------------------- verdicts */

/* The null value the estimate is tested against (flat: the margin of |d|). */
static double null_value(const ClaimDef *d) {
    return d->dir == D_GREATER ? -d->margin : d->margin;
}

/* Two-sided p of the claim's test (claims.h); NAN without a test. */
static double test_p(const ClaimDef *d, const ClaimTest *t) {
    if (t->n < 2 || !(t->se > 0) || isnan(t->d)) return NAN;
    if (d->dir != D_FLAT && d->margin == 0 && !isnan(t->p0)) return t->p0;
    double tt = d->dir == D_FLAT ? (fabs(t->d) - d->margin) / t->se : (t->d - null_value(d)) / t->se;
    return stats_t_pvalue(tt, t->df);
}

/* +1: the estimate lies on the claimed side of the null value, -1: the
 * other side, 0: on it. */
static int test_side(const ClaimDef *d, double x) {
    double v = null_value(d), a = d->dir == D_FLAT ? fabs(x) : x;
    if (a == v) return 0;
    return (d->dir == D_GREATER) == (a > v) ? 1 : -1;
}

static int test_verdict(const ClaimDef *d, const ClaimTest *t, double p) {
    if (isnan(p) || p >= STATS_ALPHA) return V_INCONCLUSIVE;
    int s = test_side(d, t->d);
    return s > 0 ? V_SUPPORTED : s < 0 ? V_CONTRADICTED : V_INCONCLUSIVE;
}

/* The require settings no test row has, into r->missing. */
static void check_require(ClaimResult *r) {
    KvList req;
    kv_parse(r->d->require, &req, NULL);
    for (int k = 0; k < req.n; k++) {
        int found = 0;
        for (int i = 0; i < r->nt && !found; i++) found = label_has(r->t[i].label, req.k[k], req.v[k]);
        size_t L = strlen(r->missing);
        if (!found) snprintf(r->missing + L, sizeof r->missing - L, "%s%s=%s", L ? ", " : "", req.k[k], req.v[k]);
    }
    kv_free(&req);
}

static void decide(ClaimResult *r) {
    const ClaimDef *d = r->d;
    double *p = xmalloc(sizeof(double) * (size_t)(r->nt + 1));
    for (int i = 0; i < r->nt; i++) p[i] = r->t[i].p = test_p(d, &r->t[i]);
    stats_holm(p, r->nt, p);
    int nsup = 0, ncon = 0;
    for (int i = 0; i < r->nt; i++) {
        r->t[i].p_holm = p[i];
        r->t[i].verdict = test_verdict(d, &r->t[i], p[i]);
        nsup += r->t[i].verdict == V_SUPPORTED;
        ncon += r->t[i].verdict == V_CONTRADICTED;
    }
    free(p);
    if (r->has_pooled) {
        r->pooled.p = test_p(d, &r->pooled);
        r->pooled.p_holm = NAN;
        r->pooled.verdict = test_verdict(d, &r->pooled, r->pooled.p);
    }
    check_require(r);
    int by_pooled = !strncmp(d->primary, "pooled", 6);
    if (ncon || (r->has_pooled && r->pooled.verdict == V_CONTRADICTED)) r->verdict = V_CONTRADICTED;
    else if (r->missing[0] || r->cost_differs) r->verdict = V_INCONCLUSIVE;
    else if (by_pooled) r->verdict = r->has_pooled && r->pooled.verdict == V_SUPPORTED ? V_SUPPORTED : V_INCONCLUSIVE;
    else r->verdict = r->nt && nsup == r->nt ? V_SUPPORTED : V_INCONCLUSIVE;
}

/* ---------------------------------------------------------------- wording */

static double unit_scale(const ClaimDef *d) { return d->test == T_MI ? 1 : 100; }
static int unit_prec(const ClaimDef *d) { return d->test == T_MI ? 3 : 2; }

static void unit_name(const ClaimDef *d, char *b, size_t n) {
    if (d->test == T_MI) snprintf(b, n, "bits");
    else if (d->test == T_PAIRED) snprintf(b, n, "points of top-1");
    else if (!strcmp(d->x, "blocks")) snprintf(b, n, "points of top-1 per MoE layer");
    else snprintf(b, n, "points of top-1 per unit of %s", d->x);
}

/* "+1.20 [-0.30, +2.70]" in the claim's unit (scaled). */
static void fmt_est(char *b, size_t n, const ClaimDef *d, const ClaimTest *t) {
    double s = unit_scale(d);
    int k = unit_prec(d);
    if (isnan(t->d)) snprintf(b, n, "-");
    else if (isnan(t->lo)) snprintf(b, n, "%+.*f", k, s * t->d);
    else snprintf(b, n, "%+.*f [%+.*f, %+.*f]", k, s * t->d, k, s * t->lo, k, s * t->hi);
}

static void fmt_p(char *b, size_t n, double p) {
    if (isnan(p)) snprintf(b, n, "-");
    else snprintf(b, n, "%.3g", p);
}

/* Where a supporting estimate lies (side > 0) or a contradicting one (< 0). */
static void side_text(const ClaimDef *d, int side, char *b, size_t n) {
    double m = unit_scale(d) * d->margin;
    int k = unit_prec(d);
    const char *where = (d->dir == D_GREATER) == (side > 0) ? "above" : "below";
    if (d->dir == D_FLAT) snprintf(b, n, "%s (-%.*f, +%.*f)", side > 0 ? "inside" : "outside", k, m, k, m);
    else if (m == 0) snprintf(b, n, "%s 0", where);
    else snprintf(b, n, "%s %+.*f", where, k, d->dir == D_GREATER ? -m : m);
}

/* "<label>: <estimate> <unit> (p = .., n = ..)". */
static void test_text(const ClaimDef *d, const ClaimTest *t, int holm, char *b, size_t n) {
    char e[128], p[32], u[96];
    fmt_est(e, sizeof e, d, t);
    fmt_p(p, sizeof p, holm ? t->p_holm : t->p);
    unit_name(d, u, sizeof u);
    snprintf(b, n, "%s: %s %s (p%s = %s, n = %d)", t->label, e, u, holm ? " (Holm)" : "", p, t->n);
}

static void explain_inconclusive(ClaimResult *r, char *b, size_t n) {
    const ClaimDef *d = r->d;
    char s[64], tt[1400], u[96];
    side_text(d, 1, s, sizeof s);
    unit_name(d, u, sizeof u);
    size_t L = strlen(b);
    if (!strncmp(d->primary, "pooled", 6) && !r->has_pooled) {
        snprintf(b + L, n - L, "The table has no pooled row for primary = %s.", d->primary);
    } else if (!strncmp(d->primary, "pooled", 6)) {
        test_text(d, &r->pooled, 0, tt, sizeof tt);
        snprintf(b + L, n - L, "%s: %s%s; the smallest effect this n detects (MDE, alpha 0.05, power 0.8) is "
                 "%.*f %s.", tt, r->pooled.note ? "no test, " : "not significantly ",
                 r->pooled.note ? r->pooled.note : s, unit_prec(d), unit_scale(d) * r->pooled.mde, u);
    } else {
        int nsup = 0;
        double lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < r->nt; i++) {
            nsup += r->t[i].verdict == V_SUPPORTED;
            if (!isnan(r->t[i].mde)) { lo = fmin(lo, r->t[i].mde); hi = fmax(hi, r->t[i].mde); }
        }
        snprintf(b + L, n - L, "%d of %d tests significantly %s (Holm within the claim), none contradicts it",
                 nsup, r->nt, s);
        L = strlen(b);
        if (lo <= hi) snprintf(b + L, n - L, "; MDE at the current n: %.*f to %.*f %s", unit_prec(d),
                               unit_scale(d) * lo, unit_prec(d), unit_scale(d) * hi, u);
        L = strlen(b);
        snprintf(b + L, n - L, ".");
    }
}

static void explain(ClaimResult *r) {
    if (r->verdict == V_NODATA) return;
    const ClaimDef *d = r->d;
    char *b = r->reason, s[64], tt[1400];
    size_t n = sizeof r->reason;
    b[0] = '\0';
    if (r->missing[0]) snprintf(b, n, "No row for %s. ", r->missing);
    size_t L = strlen(b);
    if (r->cost_differs)
        snprintf(b + L, n - L, "%d row%s differ%s from the baseline in inference cost (see the notes). ",
                 r->cost_differs, r->cost_differs == 1 ? "" : "s", r->cost_differs == 1 ? "s" : "");
    L = strlen(b);
    if (r->verdict == V_CONTRADICTED) {
        const ClaimTest *c = r->has_pooled && r->pooled.verdict == V_CONTRADICTED ? &r->pooled : NULL;
        for (int i = 0; i < r->nt && !c; i++)
            if (r->t[i].verdict == V_CONTRADICTED) c = &r->t[i];
        test_text(d, c, c != &r->pooled, tt, sizeof tt);
        side_text(d, -1, s, sizeof s);
        snprintf(b + L, n - L, "%s: significantly %s.", tt, s);
    } else if (r->verdict == V_SUPPORTED) {
        side_text(d, 1, s, sizeof s);
        if (r->has_pooled && !strncmp(d->primary, "pooled", 6)) {
            test_text(d, &r->pooled, 0, tt, sizeof tt);
            snprintf(b + L, n - L, "%s: significantly %s; no test contradicts it.", tt, s);
        } else {
            snprintf(b + L, n - L, "Every test (%d) is significantly %s (Holm within the claim).", r->nt, s);
        }
    } else {
        explain_inconclusive(r, b, n);
    }
    int npool = 0;
    for (int i = 0; i < r->nt; i++) npool += r->t[i].n >= 2 && !isnan(r->t[i].d);
    L = strlen(b);
    if (r->has_pooled && npool != r->pooled_cells)
        snprintf(b + L, n - L, " (The pooled row pools %d cells; this claim selects %d with two or more pairs: "
                 "check select.)", r->pooled_cells, npool);
}

/* ---------------------------------------------------------------- links */

/* path (relative to the working directory or absolute) as absolute
 * components without "." and "..": comp[0..*nc) point into buf. */
static void path_components(const char *path, char *buf, size_t bn, char **comp, int *nc, int max) {
    char cwd[4096] = "";
    if (path[0] != '/' && !getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
    snprintf(buf, bn, "%s/%s", cwd, path);
    *nc = 0;
    char *save = NULL;
    for (char *p = strtok_r(buf, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (!strcmp(p, ".")) continue;
        if (!strcmp(p, "..")) { if (*nc) (*nc)--; continue; }
        if (*nc < max) comp[(*nc)++] = p;
    }
}

/* target relative to the directory dir (for a Markdown link). */
static void link_path(const char *dir, const char *target, char *out, size_t n) {
    enum { MAXC = 256 };
    char ba[4400], bb[4400], *a[MAXC], *b[MAXC];
    int na, nb, k = 0;
    path_components(dir, ba, sizeof ba, a, &na, MAXC);
    path_components(target, bb, sizeof bb, b, &nb, MAXC);
    while (k < na && k < nb && !strcmp(a[k], b[k])) k++;
    out[0] = '\0';
    for (int i = k; i < na; i++) snprintf(out + strlen(out), n - strlen(out), "../");
    for (int i = k; i < nb; i++) snprintf(out + strlen(out), n - strlen(out), "%s%s", b[i], i + 1 < nb ? "/" : "");
    if (!out[0]) snprintf(out, n, ".");
}

/* "[name](relative path)" when dir/name exists, else "name (missing)". */
static void md_link(FILE *f, const char *outdir, const char *dir, const char *name, const char *sep) {
    char path[4400], rel[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    link_path(outdir, path, rel, sizeof rel);
    if (access(path, R_OK)) fprintf(f, "%s`%s` (missing)", sep, rel);
    else fprintf(f, "%s[%s](%s)", sep, rel, rel);
}

static void md_links(FILE *f, const ClaimResult *r, const char *outdir) {
    static const char *const data[3][2] = {{"table.md", "table.csv"}, {"runs.csv", "table.md"},
                                            {"routing_mi.csv", "routing_mi_runs.csv"}};
    fprintf(f, "Data:");
    for (int i = 0; i < 2; i++) md_link(f, outdir, r->table_dir, data[r->d->test][i], i ? ", " : " ");
    char **fig = NULL;
    int nf = r->d->figures[0] ? grid_split_values(r->d->figures, &fig) : 0;
    fprintf(f, ". Figures:%s", nf > 0 ? "" : " none named");
    for (int i = 0; i < nf; i++) md_link(f, outdir, r->table_dir, fig[i], i ? ", " : " ");
    for (int i = 0; i < nf; i++) free(fig[i]);
    free(fig);
    fprintf(f, ".\n");
}

/* The runs behind the claim: how many, at which commits, how many dirty. */
static void md_provenance(FILE *f, const ClaimResult *r, const char *outdir) {
    char rel[4400];
    link_path(outdir, r->runs_csv, rel, sizeof rel);
    if (r->nruns < 0) { fprintf(f, "Runs: `%s` not found: commits unknown.\n", rel); return; }
    fprintf(f, "Runs: %d ok runs in [%s](%s) at %d commit%s (%s%s); ", r->nruns, rel, rel, r->ncommits,
            r->ncommits == 1 ? "" : "s", r->commits, r->ncommits > 8 ? ", ..." : "");
    if (r->ndirty) fprintf(f, "**%d from a dirty tree** (git_dirty = 1)", r->ndirty);
    else fprintf(f, "none from a dirty tree");
    if (r->dirty_unknown) fprintf(f, ", %d with no git_dirty record", r->dirty_unknown);
    fprintf(f, ".\n");
}

/* ---------------------------------------------------------------- CLAIMS.md */

static void md_method(FILE *f, const ClaimDef *d) {
    char u[96], s[64];
    unit_name(d, u, sizeof u);
    side_text(d, 1, s, sizeof s);
    if (d->test == T_PAIRED)
        fprintf(f, "Test: paired t over seeds of final test top-1, each cell minus its baseline cell (%s) with the "
                   "same seed (`bin/ewa aggregate`)", d->baseline[0] ? d->baseline : "the table's baseline");
    else if (d->test == T_SLOPE)
        fprintf(f, "Test: per seed, the least-squares slope of final test top-1 over %s%s; per series, a "
                   "one-sample t over the seeds' slopes", d->x, strcmp(d->x, "blocks") ? "" : " (last:L = L MoE layers)");
    else
        fprintf(f, "Test: class-expert mutual information I(class; expert) of the deepest minus the shallowest MoE "
                   "layer of each cell, paired by run (`routing_mi.csv`, formula in experiments/routing_mi.h)");
    if (d->dir == D_FLAT) fprintf(f, "; equivalence: supported when the 95%% CI lies %s %s", s, u);
    else if (d->margin > 0) fprintf(f, "; non-inferiority: supported when significantly %s %s (the 95%% CI above "
                                       "it), contradicted when significantly below it", s, u);
    else fprintf(f, "; supported when significantly %s", s);
    if (!strncmp(d->primary, "pooled", 6))
        fprintf(f, ". Primary test: the pooled row (%s), unadjusted; the rows below are Holm-adjusted together.\n",
                d->primary[6] ? d->primary + 7 : "the table's one");
    else fprintf(f, ". Every test, Holm-adjusted together within the claim, must be supported.\n");
}

/* Tokens of label that not every test of r shares (all of it for one test). */
static void short_label(const ClaimResult *r, const char *label, char *b, size_t n) {
    b[0] = '\0';
    char *copy = xstrdup(label), *save = NULL;
    for (char *p = strtok_r(copy, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(p, '=');
        int common = r->nt > 1 && eq;
        for (int i = 0; i < r->nt && common; i++) {
            *eq = '\0';
            common = label_has(r->t[i].label, p, eq + 1);
            *eq = '=';
        }
        if (!common) snprintf(b + strlen(b), n - strlen(b), "%s%s", b[0] ? " " : "", p);
    }
    free(copy);
    if (!b[0]) snprintf(b, n, "%s", label);
}

static void md_test_row(FILE *f, const ClaimResult *r, const ClaimTest *t, int pooled) {
    char lab[1024], e[128], p[32], ph[32], mde[32], cost[64] = "-";
    if (pooled) snprintf(lab, sizeof lab, "%s", t->label);
    else short_label(r, t->label, lab, sizeof lab);
    fmt_est(e, sizeof e, r->d, t);
    fmt_p(p, sizeof p, t->p);
    fmt_p(ph, sizeof ph, t->p_holm);
    if (isnan(t->mde)) snprintf(mde, sizeof mde, "-");
    else snprintf(mde, sizeof mde, "%.*f", unit_prec(r->d), unit_scale(r->d) * t->mde);
    if (!isnan(t->cost_s) || !isnan(t->cost_f))
        snprintf(cost, sizeof cost, "%.2fx s, %.2fx FLOPs", t->cost_s, t->cost_f);
    char costcol[80] = "";   /* paired claims only: the training cost column */
    if (r->d->test == T_PAIRED) snprintf(costcol, sizeof costcol, " %s |", cost);
    fprintf(f, "| %s | %s | %s | %s | %d | %s |%s %s | %s%s%s |\n", lab, e, p, ph, t->n, mde, costcol,
            VERDICT[t->verdict], t->note ? "no test: " : "", t->note ? t->note : "", t->extra);
}

static void md_claim(FILE *f, const ClaimResult *r, const char *outdir) {
    const ClaimDef *d = r->d;
    char u[96];
    unit_name(d, u, sizeof u);
    fprintf(f, "\n## (%s) %s\n\n", d->id, d->text);
    if (d->source[0]) fprintf(f, "Source: %s. ", d->source);
    md_method(f, d);
    fprintf(f, "\n**Verdict: %s.** %s\n\n", VERDICT[r->verdict], r->reason);
    md_links(f, r, outdir);
    md_provenance(f, r, outdir);
    if (d->equal_cost && r->verdict != V_NODATA && !r->cost_differs)
        fprintf(f, "Inference cost: every compared row has its baseline's `params_inference` and `flops_inference` "
                   "(%d rows).\n", r->cost_equal);
    if (!r->nt && !r->has_pooled) return;
    int paired = d->test == T_PAIRED;   /* paired: training cost beside the accuracy (issue 16) */
    fprintf(f, "\n| row | estimate [95%% CI], %s | p | p (Holm) | n | MDE |%s verdict | note |\n", u,
            paired ? " training cost vs baseline |" : "");
    fprintf(f, "|---|---|---|---|---|---|---|---|%s\n", paired ? "---|" : "");
    if (r->has_pooled) md_test_row(f, r, &r->pooled, 1);
    for (int i = 0; i < r->nt; i++) md_test_row(f, r, &r->t[i], 0);
}

static void md_summary_row(FILE *f, const ClaimResult *r) {
    char e[160] = "-", u[96];
    unit_name(r->d, u, sizeof u);
    if (r->has_pooled && !strncmp(r->d->primary, "pooled", 6)) {
        fmt_est(e, sizeof e, r->d, &r->pooled);
        snprintf(e + strlen(e), sizeof e - strlen(e), " (pooled, n = %d)", r->pooled.n);
    } else if (r->nt) {
        int ns = 0, nc = 0;
        for (int i = 0; i < r->nt; i++) { ns += r->t[i].verdict == V_SUPPORTED; nc += r->t[i].verdict == V_CONTRADICTED; }
        snprintf(e, sizeof e, "%d tests: %d supported, %d contradicted", r->nt, ns, nc);
    }
    fprintf(f, "| (%s) %s | **%s** | %s | %s |\n", r->d->id, r->d->text, VERDICT[r->verdict], e,
            r->verdict == V_NODATA ? "-" : u);
}

static char *markdown(const ClaimResult *res, int n, const char *config, const char *results_dir,
                      const char *out) {
    char *text = NULL, outdir[4400], rel[4400];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    snprintf(outdir, sizeof outdir, "%s", out);
    char *slash = strrchr(outdir, '/');
    if (slash) *slash = '\0';
    else snprintf(outdir, sizeof outdir, ".");
    link_path(outdir, results_dir, rel, sizeof rel);
    int dirty = ewa_git_dirty();
    fprintf(f, "# Claims and their verdicts\n\n"
               "Written by `bin/ewa claims` (ewa %s%s) from `%s` and the tables under `%s`; do not edit: rerun\n"
               "`bin/ewa claims` after `bin/ewa aggregate`. Claims, tests and verdict rules: "
               "`experiments/claims.h`.\n"
               "What the papers say (and which of their numbers we do not know): `../shared/PAPERS.md`; no paper\n"
               "number is used here. Every training setting is ours.\n\n",
            ewa_git_commit(), dirty == 1 ? ", built with uncommitted changes" : "", config, rel);
    fprintf(f, "| claim | verdict | primary estimate [95%% CI] | unit |\n|---|---|---|---|\n");
    for (int i = 0; i < n; i++) md_summary_row(f, &res[i]);
    fprintf(f, "\nA test is *supported* when its Holm-adjusted p (over the tests of its claim) is below 0.05 with the\n"
               "estimate on the claimed side, *contradicted* when it is below 0.05 on the other side, *inconclusive*\n"
               "otherwise; a pooled primary test is not adjusted. A claim is contradicted when any of its tests is,\n"
               "supported when its primary test is and every setting it names has data, and *no data* when its\n"
               "table is missing. p is two-sided, against the null value of the claim's test. MDE: the smallest\n"
               "true effect the test detects with power 0.8 at alpha 0.05 at the current n.\n");
    for (int i = 0; i < n; i++) md_claim(f, &res[i], outdir);
    fclose(f);
    return text;
}

/* ---------------------------------------------------------------- CLAIMS.csv */

static void csv_num(char *b, double v, const char *f) {
    if (isnan(v)) b[0] = '\0';
    else snprintf(b, 32, f, v);
}

/* One row per test (pooled first), unscaled: the numbers of CLAIMS.md for
 * scripts and tests. */
enum { CC_N = 14, CC_NUM = 9 };
static void csv_test_row(const ClaimResult *r, const ClaimTest *t, char (*v)[32], const char **row) {
    csv_num(v[0], t->d, "%.9g");
    csv_num(v[1], t->lo, "%.9g");
    csv_num(v[2], t->hi, "%.9g");
    csv_num(v[3], t->p, "%.9g");
    csv_num(v[4], t->p_holm, "%.9g");
    snprintf(v[5], 32, "%d", t->n);
    csv_num(v[6], t->mde, "%.9g");
    csv_num(v[7], t->cost_s, "%.6g");
    csv_num(v[8], t->cost_f, "%.6g");
    const char *vals[CC_N] = {r->d->id, VERDICT[r->verdict], t == &r->pooled ? "pooled" : t->label, v[0], v[1],
                              v[2], v[3], v[4], v[5], v[6], VERDICT[t->verdict], t->note ? t->note : "", v[7], v[8]};
    memcpy(row, vals, sizeof vals);
}

static int write_claims_csv(const char *path, const ClaimResult *res, int n, Err *err) {
    static const char *const hdr[CC_N] = {"claim", "claim_verdict", "row", "estimate", "ci_low", "ci_high",
                                          "p", "p_holm", "n", "mde", "verdict", "note",
                                          "train_seconds_ratio", "flops_train_ratio"};
    int nrows = 0;
    for (int i = 0; i < n; i++) nrows += res[i].nt + res[i].has_pooled + (!res[i].nt && !res[i].has_pooled);
    const char **cells = xmalloc(sizeof(char *) * (size_t)(nrows + 1) * CC_N);
    char (*buf)[32] = xmalloc(sizeof *buf * (size_t)(nrows + 1) * CC_NUM);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const ClaimResult *r = &res[i];
        if (r->has_pooled) { csv_test_row(r, &r->pooled, buf + CC_NUM * k, cells + CC_N * k); k++; }
        for (int j = 0; j < r->nt; j++, k++) csv_test_row(r, &r->t[j], buf + CC_NUM * k, cells + CC_N * k);
        if (r->nt || r->has_pooled) continue;
        const char *vals[CC_N] = {r->d->id, VERDICT[r->verdict], "", "", "", "", "", "", "", "", "", r->reason,
                                  "", ""};
        memcpy(cells + CC_N * k++, vals, sizeof vals);
    }
    int rc = csv_write_file(path, CC_N, hdr, nrows, cells, err);
    free(cells);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- run */

static void evaluate(ClaimResult *r, const ClaimDef *d, const char *results_dir) {
    memset(r, 0, sizeof *r);
    r->d = d;
    r->verdict = V_INCONCLUSIVE;
    snprintf(r->table_dir, sizeof r->table_dir, "%s/%s", results_dir, d->table);
    const char *leaf = strrchr(d->table, '/');
    leaf = leaf ? leaf + 1 : d->table;
    if (d->runs[0]) snprintf(r->runs_csv, sizeof r->runs_csv, "%s/%s", results_dir, d->runs);
    else if (leaf != d->table && !strncmp(leaf, "vs_", 3))   /* a table of its parent's runs against another baseline (plots/common.sh) */
        snprintf(r->runs_csv, sizeof r->runs_csv, "%s/%.*s/runs.csv", results_dir, (int)(leaf - d->table - 1),
                 d->table);
    else snprintf(r->runs_csv, sizeof r->runs_csv, "%s/runs.csv", r->table_dir);
    RunValues v = {0};
    Err e = {0};
    int have = !access(r->runs_csv, R_OK) && !runs_load(r->runs_csv, &v, &e);
    if (have) provenance(r, &v);
    else r->nruns = -1;
    char table[sizeof r->table_dir + 16];
    snprintf(table, sizeof table, "%s/table.csv", r->table_dir);
    if (!have && e.msg[0]) no_data(r, "%s", e.msg);   /* unreadable, or partial (a grid unfinished): no verdict */
    else if (d->test == T_PAIRED) load_paired(r);
    else if (d->test == T_MI) load_routing_mi(r);
    else if (access(table, R_OK))   /* the slope reads runs.csv, but no table means not aggregated yet */
        table_missing(r, table);
    else if (have) load_slope(r, &v);
    else no_data(r, "%s does not exist", r->runs_csv);
    if (r->verdict != V_NODATA && !r->nt && !r->has_pooled)
        no_data(r, "no row of %s matches select = %s", r->table_dir, d->select[0] ? d->select : "(all)");
    if (r->verdict != V_NODATA) decide(r);
    explain(r);
    runs_free(&v);
}

int claims_run(const char *config, const char *results_dir, const char *out, Err *err) {
    ClaimDef *defs = calloc(CLAIMS_MAX, sizeof *defs);
    int n = 0, rc = claims_load(config, defs, &n, err);
    ClaimResult *res = calloc((size_t)n + 1, sizeof *res);
    struct stat st;
    if (!rc && stat(results_dir, &st))
        rc = err_set(err, ERR_USAGE, "--results %s: no such directory", results_dir);
    else if (!rc && !S_ISDIR(st.st_mode))
        rc = err_set(err, ERR_USAGE, "--results %s: not a directory", results_dir);
    for (int i = 0; i < n && !rc; i++) {
        evaluate(&res[i], &defs[i], results_dir);
        if (res[i].broken) rc = err_set(err, ERR_RUNTIME, "claim %s: %s", defs[i].id, res[i].reason);
    }
    char *text = rc ? NULL : markdown(res, n, config, results_dir, out);
    if (!rc) rc = fs_mkdir_parents(out, err);
    if (!rc) rc = fs_write_text_atomic(out, text, err);
    char csv[4200];
    size_t ol = strlen(out);
    snprintf(csv, sizeof csv, "%.*s.csv", (int)(ol > 3 && !strcmp(out + ol - 3, ".md") ? ol - 3 : ol), out);
    if (!rc) rc = write_claims_csv(csv, res, n, err);
    for (int i = 0; i < n && !rc; i++) printf("claim %s: %s\n", defs[i].id, VERDICT[res[i].verdict]);
    if (!rc) printf("wrote %s and %s\n", out, csv);
    for (int i = 0; i < n; i++) free(res[i].t);
    free(res);
    free(text);
    free(defs);
    return rc;
}
