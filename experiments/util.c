#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(void) {
    fputs("ewa: out of memory\n", stderr);
    abort();
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom();
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom();
    return q;
}

char *xstrdup(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) oom();
    return d;
}

static int blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

void str_trim(char *s) {
    size_t n = strlen(s), i = 0;
    while (n && blank(s[n - 1])) s[--n] = '\0';
    while (blank(s[i])) i++;
    memmove(s, s + i, n - i + 1);
}

/* Levenshtein distance of a and b (each at most 63 characters compared). */
static int edit_distance(const char *a, const char *b) {
    int la = (int)strnlen(a, 63), lb = (int)strnlen(b, 63), row[64];
    for (int j = 0; j <= lb; j++) row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

const char *str_closest(const char *word, const char *const *cands, int n) {
    int limit = (int)strlen(word) / 3, best = -1, bestd = 1 << 30;
    if (limit < 2) limit = 2;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(word, cands[i]);
        if (d < bestd) { bestd = d; best = i; }
    }
    return best >= 0 && bestd <= limit ? cands[best] : NULL;
}

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *ini_text_next_line(const char **pos, int *lineno, size_t *len) {
    if (!**pos) return NULL;
    const char *line = *pos, *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
    *pos += n;
    (*lineno)++;
    while (n > 1 && (*line == ' ' || *line == '\t')) { line++; n--; }
    *len = n;
    return line;
}

char *ini_text_read_line(const char **pos, int *lineno, char *str, int num, int *err_line, Err *err) {
    size_t len;
    const char *line = ini_text_next_line(pos, lineno, &len);
    if (!line) return NULL;
    if (len + 1 > (size_t)num) {
        if (!*err_line) {
            *err_line = *lineno;
            err_set(err, ERR_USAGE, "line too long (max %d characters)", num - 2);
        }
        snprintf(str, (size_t)num, "\n");
        return str;
    }
    memcpy(str, line, len);
    str[len] = '\0';
    return str;
}
