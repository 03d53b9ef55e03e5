/* CSV reading and writing through libcsv.
 *
 * Reading: the file is fed to csv_parse (strict mode) one physical line at a
 * time so that errors can name the line where the offending record starts;
 * csv_fini flushes a last record that has no trailing newline.
 * Writing: cells that need it are quoted with csv_write; whole files go to
 * fs_write_atomic (core/fsutil.h); csv_append_row
 * appends one row with a single write() under flock().
 */
#include <csv.h>
#include "../core/fsutil.h"
#include "csvio.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define CSV_OPTS (CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL)

/* ------------------------------------------------------------------ */
/* Growable byte buffer                                                */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} Buf;

static char *buf_reserve(Buf *b, size_t n) {
    if (b->oom) return NULL;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return NULL; }
        b->p = q;
        b->cap = cap;
    }
    return b->p + b->len;
}

static void buf_put(Buf *b, const void *s, size_t n) {
    char *d = buf_reserve(b, n);
    if (!d) return;
    memcpy(d, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* ------------------------------------------------------------------ */
/* Formatting                                                          */

/* True if s must be quoted to survive a libcsv round trip: delimiters,
 * quotes, line breaks, or leading/trailing blanks (libcsv trims those from
 * unquoted fields). An empty single-column row would read as a blank line. */
static int needs_quote(const char *s, size_t n, int ncols) {
    if (n == 0) return ncols == 1;
    if (strpbrk(s, ",\"\r\n")) return 1;
    return s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t';
}

static void put_cell(Buf *b, const char *s, int ncols, int force) {
    if (!s) s = "";
    size_t n = strlen(s);
    if (!force && !needs_quote(s, n, ncols)) {
        buf_put(b, s, n);
        return;
    }
    size_t need = csv_write(NULL, 0, s, n);   /* size with quotes and escapes */
    char *d = buf_reserve(b, need);
    if (!d) return;
    csv_write(d, need, s, n);
    b->len += need;
    b->p[b->len] = '\0';
}

/* Appends one row terminated by '\n'. */
/* quote (may be NULL): quote[i] != 0 forces quotes around column i. */
static void put_row(Buf *b, int ncols, const char *const *cells, const char *quote) {
    for (int i = 0; i < ncols; i++) {
        if (i) buf_put(b, ",", 1);
        put_cell(b, cells[i], ncols, quote && quote[i]);
    }
    buf_put(b, "\n", 1);
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

typedef struct {
    const char *path;
    Err *err;
    int failed;         /* an error was recorded; ignore further callbacks */
    int first_only;     /* stop after the header record (csv_append_row) */
    int done;
    long line;          /* physical line being fed (1-based) */
    long row_line;      /* line where the current record started */
    int at_line_start;
    char **row;         /* fields of the record being assembled */
    int nrow, caprow;
    char **header;
    int ncols;
    char **cells;       /* data cells, row-major */
    size_t ncells, capcells;
    int nrows;
    long *lines;        /* line where each data row starts */
    int caplines;
} Parse;

static void free_strs(char **v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void parse_cleanup(Parse *ps) {
    free_strs(ps->row, (size_t)ps->nrow);
    free_strs(ps->header, (size_t)ps->ncols);
    free_strs(ps->cells, ps->ncells);
    free(ps->lines);
    ps->lines = NULL;
    ps->row = ps->header = ps->cells = NULL;
}

static void parse_fail_oom(Parse *ps) {
    if (!ps->failed) err_set(ps->err, ERR_RUNTIME, "%s: out of memory", ps->path);
    ps->failed = 1;
}

/* libcsv field callback: copies the field into the current record. */
static void on_field(void *s, size_t len, void *data) {
    Parse *ps = data;
    if (ps->failed || ps->done) return;
    if (ps->nrow == ps->caprow) {
        int cap = ps->caprow ? ps->caprow * 2 : 16;
        char **r = realloc(ps->row, (size_t)cap * sizeof *r);
        if (!r) { parse_fail_oom(ps); return; }
        ps->row = r;
        ps->caprow = cap;
    }
    char *f = malloc(len + 1);
    if (!f) { parse_fail_oom(ps); return; }
    if (len) memcpy(f, s, len);
    f[len] = '\0';
    ps->row[ps->nrow++] = f;
}

/* Moves the current record's fields onto the data cells. */
static int push_record(Parse *ps) {
    if (ps->ncells + (size_t)ps->nrow > ps->capcells) {
        size_t cap = ps->capcells ? ps->capcells : 64;
        while (cap < ps->ncells + (size_t)ps->nrow) cap *= 2;
        char **c = realloc(ps->cells, cap * sizeof *c);
        if (!c) return -1;
        ps->cells = c;
        ps->capcells = cap;
    }
    if (ps->nrows == ps->caplines) {
        int cap = ps->caplines ? 2 * ps->caplines : 64;
        long *l = realloc(ps->lines, sizeof(long) * (size_t)cap);
        if (!l) return -1;
        ps->lines = l;
        ps->caplines = cap;
    }
    ps->lines[ps->nrows] = ps->row_line;
    memcpy(ps->cells + ps->ncells, ps->row, (size_t)ps->nrow * sizeof(char *));
    ps->ncells += (size_t)ps->nrow;
    ps->nrows++;
    ps->nrow = 0;
    return 0;
}

/* libcsv record callback: the first record is the header, every later one
 * must have the same number of fields. */
static void on_record(int term, void *data) {
    (void)term;
    Parse *ps = data;
    if (ps->failed || ps->done) return;
    if (!ps->header) {
        ps->header = ps->row;
        ps->ncols = ps->nrow;
        ps->row = NULL;
        ps->nrow = ps->caprow = 0;
        if (ps->first_only) ps->done = 1;
        return;
    }
    if (ps->nrow != ps->ncols) {
        err_set(ps->err, ERR_RUNTIME, "%s: line %ld: ragged row: expected %d fields, found %d",
                ps->path, ps->row_line, ps->ncols, ps->nrow);
        ps->failed = 1;
        return;
    }
    if (push_record(ps) != 0) parse_fail_oom(ps);
}

static int parser_init(Parse *ps, struct csv_parser *p) {
    if (csv_init(p, CSV_OPTS) != 0) {
        parse_fail_oom(ps);
        return -1;
    }
    csv_set_realloc_func(p, realloc);
    csv_set_free_func(p, free);
    ps->line = 1;
    ps->row_line = 1;
    ps->at_line_start = 1;
    return 0;
}

/* Feeds len bytes, one physical line at a time, tracking line numbers. */
static void parse_feed(Parse *ps, struct csv_parser *p, const char *buf, size_t len) {
    size_t pos = 0;
    while (pos < len && !ps->failed && !ps->done) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (buf + pos)) + 1 : len - pos;
        /* pstate 0 (ROW_NOT_BEGUN): no record in progress, so the next
         * record starts on this line. */
        if (ps->at_line_start && p->pstate == 0) ps->row_line = ps->line;
        if (csv_parse(p, buf + pos, n, on_field, on_record, ps) != n && !ps->failed) {
            err_set(ps->err, ERR_RUNTIME, "%s: line %ld: CSV parse error (%s)",
                    ps->path, ps->line, csv_strerror(csv_error(p)));
            ps->failed = 1;
        }
        pos += n;
        ps->at_line_start = nl != NULL;
        if (nl) ps->line++;
    }
}

/* Flushes a last record without a trailing newline. */
static void parse_finish(Parse *ps, struct csv_parser *p) {
    if (ps->failed || ps->done) return;
    if (csv_fini(p, on_field, on_record, ps) != 0 && !ps->failed) {
        err_set(ps->err, ERR_RUNTIME,
                "%s: line %ld: CSV parse error: unterminated quoted field at end of file",
                ps->path, ps->row_line);
        ps->failed = 1;
    }
}

/* ------------------------------------------------------------------ */
/* File helpers                                                        */

static int check_args(const char *path, int ncols, const char *const *header, Err *err) {
    if (!path) return err_set(err, ERR_RUNTIME, "csvio: no path given");
    if (ncols < 1 || !header)
        return err_set(err, ERR_RUNTIME, "%s: a CSV needs at least one header column", path);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */

static int parse_text(const char *path, const char *text, size_t len, CsvTable *out, Err *err);
static int open_locked(const char *path, int *fd_out, Err *err);

int csv_write_file(const char *path, int ncols, const char *const *header,
                   int nrows, const char *const *cells, Err *err) {
    return csv_write_file_q(path, ncols, header, NULL, nrows, cells, err);
}

int csv_write_file_q(const char *path, int ncols, const char *const *header, const char *quote,
                     int nrows, const char *const *cells, Err *err) {
    int rc = check_args(path, ncols, header, err);
    if (rc) return rc;
    if (nrows < 0 || (nrows > 0 && !cells))
        return err_set(err, ERR_RUNTIME, "%s: invalid rows", path);
    Buf b = {0};
    put_row(&b, ncols, header, NULL);
    for (int r = 0; r < nrows; r++) put_row(&b, ncols, cells + (size_t)r * ncols, quote);
    if (b.oom) rc = err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    else rc = fs_write_atomic(path, b.p, b.len, err);
    free(b.p);
    return rc;
}

/* Parses the first record of fd's file and compares it with header. */
static int check_existing_header(const char *path, int fd, int ncols,
                                 const char *const *header, Err *err) {
    Parse ps = {.path = path, .err = err, .first_only = 1};
    struct csv_parser p;
    if (parser_init(&ps, &p) != 0) return ERR_RUNTIME;
    char chunk[4096];
    off_t off = 0;
    while (!ps.failed && !ps.done) {
        ssize_t r = pread(fd, chunk, sizeof chunk, off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            err_set(err, ERR_RUNTIME, "%s: read error: %s", path, strerror(errno));
            ps.failed = 1;
            break;
        }
        if (r == 0) {
            parse_finish(&ps, &p);
            break;
        }
        parse_feed(&ps, &p, chunk, (size_t)r);
        off += r;
    }
    csv_free(&p);
    int rc = ps.failed ? ERR_RUNTIME : 0;
    if (!rc && !ps.header)
        rc = err_set(err, ERR_RUNTIME, "%s: existing file has no header row", path);
    if (!rc && ps.ncols != ncols)
        rc = err_set(err, ERR_RUNTIME, "%s: header mismatch: file has %d columns, expected %d",
                     path, ps.ncols, ncols);
    for (int i = 0; !rc && i < ncols; i++) {
        const char *want = header[i] ? header[i] : "";
        if (strcmp(ps.header[i], want) != 0)
            rc = err_set(err, ERR_RUNTIME,
                         "%s: header mismatch in column %d: file has '%s', expected '%s'",
                         path, i + 1, ps.header[i], want);
    }
    parse_cleanup(&ps);
    return rc;
}

/* With the lock held: validates or writes the header and appends the row. */
static int append_locked(const char *path, int fd, int ncols, const char *const *header,
                         const char *quote, const char *const *row, Err *err) {
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return err_set(err, ERR_RUNTIME, "%s: cannot stat: %s", path, strerror(errno));
    off_t size = sb.st_size;
    Buf b = {0};
    if (size == 0) {
        put_row(&b, ncols, header, NULL);
    } else {
        int rc = check_existing_header(path, fd, ncols, header, err);
        if (rc) return rc;
        /* Never glue our row onto a last line that lacks its newline. */
        char last = '\n';
        if (pread(fd, &last, 1, size - 1) == 1 && last != '\n') buf_put(&b, "\n", 1);
    }
    put_row(&b, ncols, row, quote);
    if (b.oom) {
        free(b.p);
        return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    }
    ssize_t w;
    do w = write(fd, b.p, b.len);
    while (w < 0 && errno == EINTR);
    int rc = 0;
    if (w != (ssize_t)b.len) {
        rc = err_set(err, ERR_RUNTIME, "%s: append failed: %s", path,
                     w < 0 ? strerror(errno) : "short write");
        if (ftruncate(fd, size) != 0) { /* keep the first error */ }
    } else if (fdatasync(fd) != 0) {
        rc = err_set(err, ERR_RUNTIME, "%s: fdatasync failed: %s", path, strerror(errno));
    }
    free(b.p);
    return rc;
}

int csv_append_row(const char *path, int ncols, const char *const *header,
                   const char *const *row, Err *err) {
    return csv_append_row_q(path, ncols, header, NULL, row, err);
}

int csv_append_row_q(const char *path, int ncols, const char *const *header, const char *quote,
                     const char *const *row, Err *err) {
    int rc = check_args(path, ncols, header, err);
    if (rc) return rc;
    if (!row) return err_set(err, ERR_RUNTIME, "%s: no row given", path);
    /* O_RDWR (not O_WRONLY) so the existing header can be read back. */
    int fd;
    if ((rc = open_locked(path, &fd, err))) return rc;
    rc = append_locked(path, fd, ncols, header, quote, row, err);
    flock(fd, LOCK_UN);
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------ */
/* One row per key (csv_upsert_row_q)                                  */

/* Opens path (created if missing) and takes its flock; if a concurrent
 * writer replaced the file (rename) meanwhile, the lock is on the old inode:
 * opens the new one and tries again. */
static int open_locked(const char *path, int *fd_out, Err *err) {
    for (int tries = 0; tries < 1000; tries++) {
        int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) return err_set(err, ERR_RUNTIME, "%s: cannot open for appending: %s", path, strerror(errno));
        int lr;
        do lr = flock(fd, LOCK_EX);
        while (lr != 0 && errno == EINTR);
        if (lr != 0) {
            int e = errno;
            close(fd);
            return err_set(err, ERR_RUNTIME, "%s: cannot lock: %s", path, strerror(e));
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
            *fd_out = fd;
            return 0;
        }
        close(fd);
    }
    return err_set(err, ERR_RUNTIME, "%s: cannot lock: the file keeps being replaced", path);
}

/* The whole file behind fd as a table (a UTF-8 byte-order mark dropped). */
static int read_locked(const char *path, int fd, off_t size, CsvTable *t, Err *err) {
    char *b = malloc((size_t)size + 1);
    if (!b) return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    off_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, b + got, (size_t)(size - got), got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(b);
            return err_set(err, ERR_RUNTIME, "%s: read error: %s", path, r < 0 ? strerror(errno) : "short read");
        }
        got += r;
    }
    size_t skip = size >= 3 && !memcmp(b, "\xEF\xBB\xBF", 3) ? 3 : 0;
    int rc = parse_text(path, b + skip, (size_t)size - skip, t, err);
    free(b);
    return rc;
}

/* Index of name in v[0..n), or -1. */
static int name_index(const char *const *v, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], name)) return i;
    return -1;
}

/* The row and its quote flags in the column order of hdr (nh names). */
static void map_row(int ncols, const char *const *header, const char *quote, const char *const *row,
                    int nh, const char *const *hdr, const char **cells, char *q) {
    for (int c = 0; c < nh; c++) {
        int i = name_index(header, ncols, hdr[c]);
        cells[c] = i >= 0 ? row[i] : "";
        q[c] = (char)(i >= 0 && quote && quote[i]);
    }
}

/* Rewrites path as t's header plus the caller's missing columns, t's rows
 * but those whose key column equals kv, and the new row; atomically. */
static int rewrite_with_row(const char *path, const CsvTable *t, int ncols, const char *const *header,
                            const char *quote, const char *const *row, int kc, const char *kv, Err *err) {
    int nh = t->ncols;
    const char **hdr = malloc(sizeof(char *) * (size_t)(t->ncols + ncols));
    const char **cells = malloc(sizeof(char *) * (size_t)(t->ncols + ncols));
    char *q = malloc((size_t)(t->ncols + ncols));
    if (!hdr || !cells || !q) {
        free(hdr); free(cells); free(q);
        return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    }
    for (int c = 0; c < t->ncols; c++) hdr[c] = t->header[c];
    for (int i = 0; i < ncols; i++)
        if (name_index(hdr, nh, header[i]) < 0) hdr[nh++] = header[i];
    map_row(ncols, header, quote, row, nh, hdr, cells, q);
    Buf b = {0};
    put_row(&b, nh, hdr, NULL);
    for (int r = 0; r < t->nrows; r++) {
        const char *const *old = (const char *const *)t->cells + (size_t)r * t->ncols;
        if (!strcmp(old[kc], kv)) continue;
        const char **full = malloc(sizeof(char *) * (size_t)nh);
        if (!full) { b.oom = 1; break; }
        for (int c = 0; c < nh; c++) full[c] = c < t->ncols ? old[c] : "";
        put_row(&b, nh, full, q);
        free(full);
    }
    put_row(&b, nh, cells, q);
    int rc = b.oom ? err_set(err, ERR_RUNTIME, "%s: out of memory", path) : fs_write_atomic(path, b.p, b.len, err);
    free(b.p); free(hdr); free(cells); free(q);
    return rc;
}

/* Appends the row in the file's own column order (every column of header
 * is in the file); one write(). */
static int append_mapped(const char *path, int fd, off_t size, const CsvTable *t, int ncols,
                         const char *const *header, const char *quote, const char *const *row, Err *err) {
    const char **cells = malloc(sizeof(char *) * (size_t)t->ncols);
    char *q = malloc((size_t)t->ncols);
    if (!cells || !q) {
        free(cells); free(q);
        return err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    }
    map_row(ncols, header, quote, row, t->ncols, (const char *const *)t->header, cells, q);
    Buf b = {0};
    char last = '\n';   /* never glue the row onto a last line without its newline */
    if (pread(fd, &last, 1, size - 1) == 1 && last != '\n') buf_put(&b, "\n", 1);
    put_row(&b, t->ncols, cells, q);
    int rc = 0;
    if (b.oom) rc = err_set(err, ERR_RUNTIME, "%s: out of memory", path);
    ssize_t w = rc ? 0 : write(fd, b.p, b.len);
    if (!rc && w != (ssize_t)b.len) {
        rc = err_set(err, ERR_RUNTIME, "%s: append failed: %s", path, w < 0 ? strerror(errno) : "short write");
        if (ftruncate(fd, size) != 0) { /* keep the first error */ }
    } else if (!rc && fdatasync(fd) != 0) {
        rc = err_set(err, ERR_RUNTIME, "%s: fdatasync failed: %s", path, strerror(errno));
    }
    free(b.p); free(cells); free(q);
    return rc;
}

static int upsert_locked(const char *path, int fd, int ncols, const char *const *header, const char *quote,
                         const char *const *row, const char *key, int *added, Err *err) {
    struct stat sb;
    if (fstat(fd, &sb) != 0) return err_set(err, ERR_RUNTIME, "%s: cannot stat: %s", path, strerror(errno));
    if (sb.st_size == 0) return append_locked(path, fd, ncols, header, quote, row, err);
    int ki = name_index(header, ncols, key);
    if (ki < 0) return err_set(err, ERR_RUNTIME, "%s: the new row has no '%s' column", path, key);
    CsvTable t;
    int rc = read_locked(path, fd, sb.st_size, &t, err);
    if (rc) return rc;
    int kc = csv_col(&t, key), nmatch = 0, nmissing = 0;
    for (int r = 0; kc >= 0 && r < t.nrows; r++) nmatch += !strcmp(csv_cell(&t, r, kc), row[ki]);
    for (int i = 0; i < ncols; i++) nmissing += csv_col(&t, header[i]) < 0;
    if (added) *added = nmissing;
    if (kc < 0) rc = err_set(err, ERR_RUNTIME, "%s: has no '%s' column", path, key);
    else if (!nmatch && !nmissing) rc = append_mapped(path, fd, sb.st_size, &t, ncols, header, quote, row, err);
    else rc = rewrite_with_row(path, &t, ncols, header, quote, row, kc, row[ki], err);
    csv_table_free(&t);
    return rc;
}

int csv_upsert_row_q(const char *path, int ncols, const char *const *header, const char *quote,
                     const char *const *row, const char *key, int *added, Err *err) {
    if (added) *added = 0;
    int rc = check_args(path, ncols, header, err), fd;
    if (rc) return rc;
    if (!row || !key) return err_set(err, ERR_RUNTIME, "%s: no row or key given", path);
    if ((rc = open_locked(path, &fd, err))) return rc;
    rc = upsert_locked(path, fd, ncols, header, quote, row, key, added, err);
    flock(fd, LOCK_UN);
    close(fd);
    return rc;
}

int csv_read_file(const char *path, CsvTable *out, Err *err) {
    if (!out) return err_set(err, ERR_RUNTIME, "csv_read_file: no output given");
    memset(out, 0, sizeof *out);
    if (!path) return err_set(err, ERR_RUNTIME, "csv_read_file: no path given");
    char *text = NULL;
    size_t len = 0;
    int rc = fs_read_file(path, 0, 0, ERR_RUNTIME, &text, &len, err);
    if (rc) return rc;

    rc = parse_text(path, text, len, out, err);
    free(text);
    return rc;
}

/* Parses a whole CSV text (header first) into out; errors name path. */
static int parse_text(const char *path, const char *text, size_t len, CsvTable *out, Err *err) {
    memset(out, 0, sizeof *out);
    Parse ps = {.path = path, .err = err};
    struct csv_parser p;
    if (parser_init(&ps, &p) == 0) {
        parse_feed(&ps, &p, text ? text : "", len);
        parse_finish(&ps, &p);
        csv_free(&p);
    }
    if (!ps.failed && !ps.header) {
        err_set(err, ERR_RUNTIME, "%s: empty file (no header row)", path);
        ps.failed = 1;
    }
    /* A file cut inside its header parses as a header with fewer columns,
     * which reads like an older schema; every CSV written here ends in a
     * newline, so a header-only text without one was cut short. */
    if (!ps.failed && ps.nrows == 0 && len > 0 && text[len - 1] != '\n') {
        err_set(err, ERR_RUNTIME, "%s: line 1: the header row does not end with a newline: the file was cut short "
                "(an interrupted write or copy?)", path);
        ps.failed = 1;
    }
    if (ps.failed) {
        parse_cleanup(&ps);
        return ERR_RUNTIME;
    }
    free_strs(ps.row, (size_t)ps.nrow);   /* always empty after a clean finish */
    out->ncols = ps.ncols;
    out->nrows = ps.nrows;
    out->header = ps.header;
    out->cells = ps.cells;
    out->lines = ps.lines;
    out->path = strdup(path);
    return 0;
}

int csv_col(const CsvTable *t, const char *name) {
    if (!t || !name) return -1;
    for (int i = 0; i < t->ncols; i++)
        if (strcmp(t->header[i], name) == 0) return i;
    return -1;
}

const char *csv_cell(const CsvTable *t, int row, int col) {
    if (!t || row < 0 || row >= t->nrows || col < 0 || col >= t->ncols) return NULL;
    return t->cells[(size_t)row * t->ncols + col];
}

int csv_number(const CsvTable *t, int row, int col, double *out, Err *err) {
    const char *s = csv_cell(t, row, col);
    char *end = NULL;
    *out = s ? strtod(s, &end) : NAN;
    if (s && *s && end && !*end && isfinite(*out)) return 0;
    return err_set(err, ERR_RUNTIME, "%s: line %ld, column '%s': '%s' is not a number",
                   t->path ? t->path : "CSV", t->lines && row >= 0 && row < t->nrows ? t->lines[row] : 0L,
                   col >= 0 && col < t->ncols ? t->header[col] : "?", s ? s : "");
}

void csv_table_free(CsvTable *t) {
    if (!t) return;
    free(t->lines);
    free(t->path);
    free_strs(t->header, (size_t)t->ncols);
    free_strs(t->cells, (size_t)t->nrows * t->ncols);
    memset(t, 0, sizeof *t);
}
