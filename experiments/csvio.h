/* CSV reading and writing through libcsv (quoting, embedded commas and
 * newlines are libcsv's job). Whole files are written to a temporary name and
 * renamed. */
#ifndef EWA_CSVIO_H
#define EWA_CSVIO_H
#include "../core/err.h"

typedef struct {
    int ncols, nrows;
    char **header;      /* ncols strings */
    char **cells;       /* nrows * ncols strings, row-major */
    long *lines;        /* nrows: the file line where each row starts */
    char *path;         /* the file read (a copy), for messages */
} CsvTable;

/* Writes header and rows atomically (tmp + rename). */
int csv_write_file(const char *path, int ncols, const char *const *header,
                   int nrows, const char *const *cells, Err *err);

/* Appends one row to path as a single write() on an O_APPEND descriptor,
 * holding an flock() so concurrent appenders never interleave; writes the
 * header first if the file is new or empty. If the file exists its header
 * must match. */
int csv_append_row(const char *path, int ncols, const char *const *header,
                   const char *const *row, Err *err);

/* The same with quote[i] != 0 forcing quotes around column i of the data
 * rows (an id of digits only then reads back as text in other tools);
 * quote NULL = quotes only where needed. */
int csv_write_file_q(const char *path, int ncols, const char *const *header, const char *quote,
                     int nrows, const char *const *cells, Err *err);
int csv_append_row_q(const char *path, int ncols, const char *const *header, const char *quote,
                     const char *const *row, Err *err);

/* Replaces every row of path whose column `key` holds row's value of that
 * column by row, or appends row when there is none: one row per key (a
 * grid's runs.csv keeps one row per run id). Columns are matched by name:
 * a column of path that header lacks is left empty in row; a column of
 * header that path lacks is added at the end, empty in the earlier rows
 * (an older schema is migrated, not truncated), and *added (may be NULL)
 * gets the number of such columns. A plain append is one write(); a
 * replacement or migration rewrites the file atomically (tmp + rename). Both
 * hold an flock() of path, re-opened if a concurrent writer replaced it, so
 * concurrent writers never lose each other's rows. quote as for
 * csv_append_row_q (applied to every row of a rewrite). */
int csv_upsert_row_q(const char *path, int ncols, const char *const *header, const char *quote,
                     const char *const *row, const char *key, int *added, Err *err);

/* Reads a file whose first row is the header. Every row must have ncols
 * fields; errors name the file and line. */
int csv_read_file(const char *path, CsvTable *out, Err *err);

/* The number in cell (row, col) of t: strtod with the whole cell consumed
 * and a finite result, else ERR_RUNTIME "<path>: line L, column 'NAME':
 * 'TEXT' is not a number". */
int csv_number(const CsvTable *t, int row, int col, double *out, Err *err);

/* Column index of name, or -1. */
int csv_col(const CsvTable *t, const char *name);
const char *csv_cell(const CsvTable *t, int row, int col);
void csv_table_free(CsvTable *t);

#endif
