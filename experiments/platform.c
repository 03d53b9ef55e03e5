/* The platform fingerprint of a set of runs. See platform.h. */
#include "platform.h"
#include "csvio.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const KEYS[PLATFORM_NFIELDS] = {"cpu_model", "blas",        "blas_core", "gemm_lib",
                                                   "compiler",  "build_flags", "threads"};

const char *platform_key(int i) { return i >= 0 && i < PLATFORM_NFIELDS ? KEYS[i] : NULL; }

static void set_unknown(Platform *p) {
    for (int i = 0; i < PLATFORM_NFIELDS; i++) snprintf(p->val[i], sizeof p->val[i], "unknown");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The distinct values of column key over the ok runs of s, sorted, joined
 * by " | " into out. */
static void field_of_runs(const AggSet *s, const char *key, char *out, size_t n) {
    const char **v = xmalloc(sizeof(char *) * ((size_t)s->n + 1));
    int nv = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->cell_of[i] < 0) continue;
        const char *x = aggregate_run_get(s, i, key);
        if (!*x || csv_col(&s->t, key) < 0) x = "unknown";
        int dup = 0;
        for (int k = 0; k < nv && !dup; k++) dup = !strcmp(v[k], x);
        if (!dup) v[nv++] = x;
    }
    qsort(v, (size_t)nv, sizeof *v, cmp_str);
    out[0] = '\0';
    for (int k = 0; k < nv; k++) {
        size_t L = strlen(out);
        snprintf(out + L, n - L, "%s%s", k ? " | " : "", v[k]);
    }
    if (!nv) snprintf(out, n, "unknown");
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20) *c = ' ';
    free(v);
}

void platform_of_runs(const AggSet *s, Platform *p) {
    for (int i = 0; i < PLATFORM_NFIELDS; i++) field_of_runs(s, KEYS[i], p->val[i], sizeof p->val[i]);
}

int platform_write(const char *path, const Platform *p, Err *err) {
    const char *hdr[2] = {"key", "value"}, *cells[2 * PLATFORM_NFIELDS];
    for (int i = 0; i < PLATFORM_NFIELDS; i++) {
        cells[2 * i] = KEYS[i];
        cells[2 * i + 1] = p->val[i];
    }
    return csv_write_file(path, 2, hdr, PLATFORM_NFIELDS, cells, err);
}

static int key_index(const char *k) {
    for (int i = 0; i < PLATFORM_NFIELDS; i++)
        if (!strcmp(KEYS[i], k)) return i;
    return -1;
}

int platform_read(const char *path, Platform *p, int *found, Err *err) {
    set_unknown(p);
    *found = 0;
    struct stat st;
    if (stat(path, &st) && errno == ENOENT) return 0;
    CsvTable t;
    if (csv_read_file(path, &t, err)) return ERR_RUNTIME;
    int rc = 0;
    if (t.ncols != 2 || strcmp(t.header[0], "key") || strcmp(t.header[1], "value"))
        rc = err_set(err, ERR_RUNTIME, "%s: not a platform fingerprint (header must be key,value)", path);
    for (int r = 0; !rc && r < t.nrows; r++) {
        int k = key_index(csv_cell(&t, r, 0));
        if (k < 0)
            rc = err_set(err, ERR_RUNTIME, "%s: row %d: unknown field '%s'", path, r + 1, csv_cell(&t, r, 0));
        else
            snprintf(p->val[k], sizeof p->val[k], "%s", csv_cell(&t, r, 1));
    }
    csv_table_free(&t);
    *found = !rc;
    return rc;
}

int platform_diff(const Platform *a, const Platform *b, char *names, size_t n) {
    int nd = 0;
    names[0] = '\0';
    for (int i = 0; i < PLATFORM_NFIELDS; i++) {
        if (!strcmp(a->val[i], b->val[i]) && strcmp(a->val[i], "unknown")) continue;
        size_t L = strlen(names);
        snprintf(names + L, n - L, "%s%s", nd ? ", " : "", KEYS[i]);
        nd++;
    }
    return nd;
}
