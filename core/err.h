/* Error reporting: library functions return an int code (0 = ok) and fill an
 * Err with one message naming the file, the place and the problem. Only the
 * command-line front end prints and exits. Codes follow docs/DESIGN.md 6:
 * 2 = usage or config error, 1 = runtime failure (bad data file, I/O). */
#ifndef EWA_ERR_H
#define EWA_ERR_H

enum { ERR_OK = 0, ERR_RUNTIME = 1, ERR_USAGE = 2 };

typedef struct {
    int code;
    char msg[1024];
} Err;

/* Sets err (if non-NULL) and returns code, so callers can `return err_set(...)`.
 * A message longer than msg keeps its words: each run of over 160 non-blank
 * characters (a long path or value) is shortened to its first and last 60
 * around "...". */
int err_set(Err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
