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
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return err_set(err, ERR_RUNTIME, "%s: cannot open for appending: %s",
                               path, strerror(errno));
    int lr;
    do lr = flock(fd, LOCK_EX);
    while (lr != 0 && errno == EINTR);
    if (lr != 0) {
        rc = err_set(err, ERR_RUNTIME, "%s: cannot lock: %s", path, strerror(errno));
    } else {
        rc = append_locked(path, fd, ncols, header, quote, row, err);
        flock(fd, LOCK_UN);
    }
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

    Parse ps = {.path = path, .err = err};
    struct csv_parser p;
    if (parser_init(&ps, &p) == 0) {
        parse_feed(&ps, &p, text ? text : "", len);
        parse_finish(&ps, &p);
        csv_free(&p);
    }
    free(text);
    if (!ps.failed && !ps.header) {
        err_set(err, ERR_RUNTIME, "%s: empty file (no header row)", path);
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

void csv_table_free(CsvTable *t) {
    if (!t) return;
    free_strs(t->header, (size_t)t->ncols);
    free_strs(t->cells, (size_t)t->nrows * t->ncols);
    memset(t, 0, sizeof *t);
}
