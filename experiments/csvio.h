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

/* Reads a file whose first row is the header. Every row must have ncols
 * fields; errors name the file and line. */
int csv_read_file(const char *path, CsvTable *out, Err *err);

/* Column index of name, or -1. */
int csv_col(const CsvTable *t, const char *name);
const char *csv_cell(const CsvTable *t, int row, int col);
void csv_table_free(CsvTable *t);

#endif
