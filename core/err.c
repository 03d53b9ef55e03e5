#include "err.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LONG_RUN = 160, KEEP = 60 };   /* a run longer than LONG_RUN keeps KEEP bytes at each end */

/* Copies text into msg (size n), each run of more than LONG_RUN non-blank
 * bytes (a long path or value) shortened to its first and last KEEP bytes
 * around "...", so that the words around it (what failed, and why) survive;
 * what still does not fit is cut. */
static void shorten_into(char *msg, size_t n, const char *text) {
    size_t o = 0;
    for (const char *p = text; *p && o + 1 < n;) {
        size_t run = strcspn(p, " \t\n");
        if (run == 0) run = 1;   /* one blank */
        if (run > LONG_RUN)
            o += (size_t)snprintf(msg + o, n - o, "%.*s...%.*s", KEEP, p, KEEP, p + run - KEEP);
        else
            o += (size_t)snprintf(msg + o, n - o, "%.*s", (int)run, p);
        p += run;
    }
    msg[o < n ? o : n - 1] = '\0';
}

int err_set(Err *err, int code, const char *fmt, ...) {
    if (!err) return code;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int len = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    char *full = len >= (int)sizeof err->msg ? malloc((size_t)len + 1) : NULL;
    if (full) {
        vsnprintf(full, (size_t)len + 1, fmt, ap2);
        shorten_into(err->msg, sizeof err->msg, full);
        free(full);
    }
    va_end(ap2);
    err->code = code;
    return code;
}
