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

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
