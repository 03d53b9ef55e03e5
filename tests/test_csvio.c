/* Tests for experiments/csvio.c: round trips with awkward cells, atomic writes,
 * appends (including concurrent appenders in forked processes), and errors
 * naming the file and line. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "../experiments/csvio.h"
#include "testutil.h"

static char *dir;

static void setup(void) { dir = tu_tmpdir(); }
static void teardown(void) {
    tu_rmrf(dir);
    free(dir);
}
TestSuite(csvio, .init = setup, .fini = teardown);

/* Reads a whole file into a malloc'd string. */
static char *slurp(const char *p) {
    FILE *f = fopen(p, "rb");
    cr_assert_not_null(f, "cannot open %s", p);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* csv_read_file must fail naming the file and mentioning every given word. */
static void expect_fail(const char *path, const char *w1, const char *w2) {
    CsvTable t;
    Err e = {0};
    int rc = csv_read_file(path, &t, &e);
    cr_assert_eq(rc, ERR_RUNTIME, "csv_read_file(%s) should fail", path);
    cr_assert(strstr(e.msg, path) != NULL, "message should name the file: %s", e.msg);
    cr_assert(strstr(e.msg, w1) != NULL, "message should mention '%s': %s", w1, e.msg);
    if (w2) cr_assert(strstr(e.msg, w2) != NULL, "message should mention '%s': %s", w2, e.msg);
    cr_assert_eq(t.nrows, 0);
    cr_assert_null(t.cells);
    cr_assert_null(t.header);
}

static void broken(const char *name, const char *text, const char *w1, const char *w2) {
    char *p = tu_write(dir, name, text, strlen(text));
    expect_fail(p, w1, w2);
    free(p);
}

/* ------------------------------------------------------------------ */
/* Round trips                                                          */

Test(csvio, roundtrip_awkward_cells) {
    const char *hdr[] = {"name", "note, with comma", "\"quoted\" col"};
    const char *cells[] = {
        "plain",        "a,b,c",              "say \"hi\"",
        "multi\nline",  "crlf\r\nend",        "",
        "  padded  ",   "\ttab\t",            "\"\"",
        "caf\xc3\xa9",  "trailing,",          "\n",
    };
    char *p = tu_path(dir, "t.csv");
    Err e = {0};
    cr_assert_eq(csv_write_file(p, 3, hdr, 4, cells, &e), 0, "%s", e.msg);
    cr_assert_eq(tu_count_tmp_files(dir), 0, "temporary file left behind");

    CsvTable t;
    cr_assert_eq(csv_read_file(p, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.ncols, 3);
    cr_assert_eq(t.nrows, 4);
    for (int c = 0; c < 3; c++) cr_assert_str_eq(t.header[c], hdr[c]);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 3; c++)
            cr_assert_str_eq(csv_cell(&t, r, c), cells[r * 3 + c], "cell %d,%d", r, c);
    cr_assert_eq(csv_col(&t, "note, with comma"), 1);
    cr_assert_eq(csv_col(&t, "\"quoted\" col"), 2);
    cr_assert_eq(csv_col(&t, "absent"), -1);
    cr_assert_null(csv_cell(&t, 4, 0));
    cr_assert_null(csv_cell(&t, 0, 3));
    cr_assert_null(csv_cell(&t, -1, 0));
    csv_table_free(&t);
    csv_table_free(&t); /* idempotent after free */
    free(p);
}

Test(csvio, plain_cells_are_not_quoted) {
    const char *hdr[] = {"epoch", "top1"};
    const char *cells[] = {"1", "0.5"};
    char *p = tu_path(dir, "m.csv");
    Err e = {0};
    cr_assert_eq(csv_write_file(p, 2, hdr, 1, cells, &e), 0, "%s", e.msg);
    char *s = slurp(p);
    cr_assert_str_eq(s, "epoch,top1\n1,0.5\n");
    free(s);
    free(p);
}

Test(csvio, single_column_with_empty_cells) {
    const char *hdr[] = {"only"};
    const char *cells[] = {"", "x", ""};
    char *p = tu_path(dir, "one.csv");
    Err e = {0};
    cr_assert_eq(csv_write_file(p, 1, hdr, 3, cells, &e), 0, "%s", e.msg);
    CsvTable t;
    cr_assert_eq(csv_read_file(p, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.nrows, 3);
    cr_assert_str_eq(csv_cell(&t, 0, 0), "");
    cr_assert_str_eq(csv_cell(&t, 1, 0), "x");
    cr_assert_str_eq(csv_cell(&t, 2, 0), "");
    csv_table_free(&t);
    free(p);
}

Test(csvio, header_only_and_no_trailing_newline_and_crlf) {
    CsvTable t;
    Err e = {0};
    char *p = tu_write(dir, "h.csv", "a,b\n", 4);
    cr_assert_eq(csv_read_file(p, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.ncols, 2);
    cr_assert_eq(t.nrows, 0);
    csv_table_free(&t);
    free(p);

    /* a file cut inside its header ("run_id,sta") read as an older schema
     * with fewer columns: every CSV written here ends in a newline */
    p = tu_write(dir, "cut.csv", "run_id,sta", 10);
    cr_assert_neq(csv_read_file(p, &t, &e), 0, "a header cut short was read as a table");
    cr_assert(strstr(e.msg, "cut.csv: line 1: the header row does not end with a newline"), "%s", e.msg);
    free(p);

    const char *txt = "a,b\n1,2\n3,\"4\n5\"";   /* last row: no newline, quoted */
    p = tu_write(dir, "nonl.csv", txt, strlen(txt));
    cr_assert_eq(csv_read_file(p, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.nrows, 2);
    cr_assert_str_eq(csv_cell(&t, 1, 0), "3");
    cr_assert_str_eq(csv_cell(&t, 1, 1), "4\n5");
    csv_table_free(&t);
    free(p);

    txt = "a,b\r\n1,2\r\n\r\n3,4\r\n";   /* CRLF, with a blank line */
    p = tu_write(dir, "crlf.csv", txt, strlen(txt));
    cr_assert_eq(csv_read_file(p, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.nrows, 2);
    cr_assert_str_eq(csv_cell(&t, 1, 1), "4");
    csv_table_free(&t);
    free(p);
}

Test(csvio, overwrite_is_atomic_replace) {
    const char *h[] = {"x"};
    const char *c1[] = {"1", "2"}, *c2[] = {"9"};
    char *p = tu_path(dir, "o.csv");
    Err e = {0};
    cr_assert_eq(csv_write_file(p, 1, h, 2, c1, &e), 0, "%s", e.msg);
    cr_assert_eq(csv_write_file(p, 1, h, 1, c2, &e), 0, "%s", e.msg);
    char *s = slurp(p);
    cr_assert_str_eq(s, "x\n9\n");
    free(s);
    cr_assert_eq(tu_count_tmp_files(dir), 0);
    free(p);
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */

Test(csvio, write_into_missing_directory_fails_cleanly) {
    const char *h[] = {"x"};
    char *sub = tu_path(dir, "no/such");
    char *p = tu_path(sub, "f.csv");
    Err e = {0};
    cr_assert_eq(csv_write_file(p, 1, h, 0, NULL, &e), ERR_RUNTIME);
    cr_assert(strstr(e.msg, p) != NULL, "%s", e.msg);
    cr_assert(strstr(e.msg, "No such file") != NULL, "%s", e.msg);
    cr_assert(!tu_file_exists(p));
    const char *row[] = {"1"};
    cr_assert_eq(csv_append_row(p, 1, h, row, &e), ERR_RUNTIME);
    cr_assert(strstr(e.msg, p) != NULL, "%s", e.msg);
    cr_assert(!tu_file_exists(p));
    free(p);
    free(sub);
}

Test(csvio, missing_file) {
    char *p = tu_path(dir, "absent.csv");
    expect_fail(p, "cannot open", "No such file");
    free(p);
}

Test(csvio, empty_file) {
    broken("empty.csv", "", "empty", NULL);
    broken("blank.csv", "\n\n", "empty", NULL);
}

Test(csvio, ragged_rows_name_the_line) {
    broken("short.csv", "a,b,c\n1,2,3\n4,5\n", "line 3", "ragged");
    broken("long.csv", "a,b\n1,2,3\n", "line 2", "expected 2 fields, found 3");
    /* The record after a two-line cell starts on line 4. */
    broken("multi.csv", "a,b\n\"x\ny\",2\n1\n", "line 4", "ragged");
    /* Last row without a newline. */
    broken("tail.csv", "a,b\n1,2\n3", "line 3", "ragged");
}

Test(csvio, parse_errors) {
    broken("unterminated.csv", "a,b\n1,\"open\n2,3\n", "unterminated", "line 2");
    broken("strict.csv", "a,b\n1,2\n\"x\"y,3\n", "parse error", "line 3");
}

Test(csvio, directory_is_not_a_file) {
    CsvTable t;
    Err e = {0};
    cr_assert_eq(csv_read_file(dir, &t, &e), ERR_RUNTIME);
    cr_assert(strstr(e.msg, dir) != NULL, "%s", e.msg);
}

/* ------------------------------------------------------------------ */
/* Appending                                                            */

Test(csvio, append_creates_header_then_appends) {
    const char *h[] = {"run", "status"};
    const char *r1[] = {"a,1", "ok"}, *r2[] = {"b\n2", "failed"};
    char *p = tu_path(dir, "runs.csv");
    Err e = {0};
    cr_assert_eq(csv_append_row(p, 2, h, r1, &e), 0, "%s", e.msg);
    cr_assert_eq(csv_append_row(p, 2, h, r2, &e), 0, "%s", e.msg);
    CsvTable t;
    cr_assert_eq(csv_read_file(p, &t, &e), 0, "%s", e.msg);
    cr_assert_eq(t.nrows, 2);
    cr_assert_str_eq(csv_cell(&t, 0, 0), "a,1");
    cr_assert_str_eq(csv_cell(&t, 1, 0), "b\n2");
    cr_assert_str_eq(csv_cell(&t, 1, 1), "failed");
    csv_table_free(&t);
    free(p);
}

Test(csvio, append_to_empty_file_writes_header) {
    char *p = tu_write(dir, "e.csv", "", 0);
    const char *h[] = {"k"}, *r[] = {"v"};
    Err e = {0};
    cr_assert_eq(csv_append_row(p, 1, h, r, &e), 0, "%s", e.msg);
    char *s = slurp(p);
    cr_assert_str_eq(s, "k\nv\n");
    free(s);
    free(p);
}

Test(csvio, append_accepts_equivalent_quoted_header_and_fixes_missing_newline) {
    const char *txt = "\"a\",b\n1,2";
    char *p = tu_write(dir, "q.csv", txt, strlen(txt));
    const char *h[] = {"a", "b"}, *r[] = {"3", "4"};
    Err e = {0};
    cr_assert_eq(csv_append_row(p, 2, h, r, &e), 0, "%s", e.msg);
    char *s = slurp(p);
    cr_assert_str_eq(s, "\"a\",b\n1,2\n3,4\n");
    free(s);
    free(p);
}

Test(csvio, append_rejects_mismatched_header) {
    const char *txt = "a,b\n1,2\n";
    char *p = tu_write(dir, "m.csv", txt, strlen(txt));
    const char *h[] = {"a", "c"}, *r[] = {"3", "4"};
    Err e = {0};
    cr_assert_eq(csv_append_row(p, 2, h, r, &e), ERR_RUNTIME);
    cr_assert(strstr(e.msg, p) != NULL, "%s", e.msg);
    cr_assert(strstr(e.msg, "header") != NULL, "%s", e.msg);
    const char *h3[] = {"a", "b", "c"}, *r3[] = {"1", "2", "3"};
    cr_assert_eq(csv_append_row(p, 3, h3, r3, &e), ERR_RUNTIME);
    cr_assert(strstr(e.msg, "header") != NULL, "%s", e.msg);
    char *s = slurp(p);
    cr_assert_str_eq(s, txt, "file must be untouched");
    free(s);
    free(p);
}

#define NCHILD 4
#define NROWS 50

/* Waits for the NCHILD writers (each must exit 0), then reads what they wrote. */
static void wait_children_and_read(const char *p, CsvTable *t) {
    for (int c = 0; c < NCHILD; c++) {
        int st = 0;
        cr_assert_neq(wait(&st), -1);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed");
    }
    Err e = {0};
    cr_assert_eq(csv_read_file(p, t, &e), 0, "%s", e.msg);
}

Test(csvio, concurrent_appends_never_interleave) {
    char *p = tu_path(dir, "conc.csv");
    const char *h[] = {"child", "i", "payload"};
    for (int c = 0; c < NCHILD; c++) {
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            /* Long cells with quotes, commas and newlines make a torn or
             * interleaved write show up as a parse error or bad payload. */
            char cs[16], is[16], payload[3000];
            snprintf(cs, sizeof cs, "%d", c);
            for (int i = 0; i < NROWS; i++) {
                snprintf(is, sizeof is, "%d", i);
                int n = snprintf(payload, sizeof payload, "c%d,i%d\"\n", c, i);
                memset(payload + n, 'a' + c, sizeof payload - (size_t)n - 1);
                payload[sizeof payload - 1] = '\0';
                const char *row[] = {cs, is, payload};
                Err e = {0};
                if (csv_append_row(p, 3, h, row, &e) != 0) {
                    fprintf(stderr, "%s\n", e.msg);
                    _exit(1);
                }
            }
            _exit(0);
        }
    }
    CsvTable t;
    wait_children_and_read(p, &t);
    cr_assert_eq(t.nrows, NCHILD * NROWS);
    int seen[NCHILD][NROWS] = {{0}};
    for (int r = 0; r < t.nrows; r++) {
        int c = atoi(csv_cell(&t, r, 0)), i = atoi(csv_cell(&t, r, 1));
        cr_assert(c >= 0 && c < NCHILD && i >= 0 && i < NROWS);
        seen[c][i]++;
        char pre[32];
        int n = snprintf(pre, sizeof pre, "c%d,i%d\"\n", c, i);
        const char *pl = csv_cell(&t, r, 2);
        cr_assert_eq(strlen(pl), 2999u);
        cr_assert_eq(strncmp(pl, pre, (size_t)n), 0, "payload prefix of row %d", r);
        for (size_t k = (size_t)n; k < 2999; k++)
            if (pl[k] != 'a' + c) cr_assert_fail("payload of row %d corrupted at %zu", r, k);
    }
    for (int c = 0; c < NCHILD; c++)
        for (int i = 0; i < NROWS; i++) cr_assert_eq(seen[c][i], 1, "row %d/%d", c, i);
    csv_table_free(&t);
    free(p);
}

/* csv_upsert_row_q from concurrent processes: each key's row is written
 * twice (the second replaces the first: an atomic rewrite), and child 0's
 * rows carry an extra column (a migration, also a rewrite); writers whose
 * lock is on a replaced file re-open it, so no row is lost or doubled. */
Test(csvio, concurrent_upserts_keep_one_row_per_key) {
    char *p = tu_path(dir, "upsert.csv");
    for (int c = 0; c < NCHILD; c++) {
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            const char *h[] = {"key", "child", "pass", "extra"};
            int nc = c == 0 ? 4 : 3;
            char key[32], cs[16], ps[16];
            for (int i = 0; i < 20; i++)
                for (int pass = 0; pass < 2; pass++) {
                    snprintf(key, sizeof key, "k%d_%d", c, i);
                    snprintf(cs, sizeof cs, "%d", c);
                    snprintf(ps, sizeof ps, "%d", pass);
                    const char *row[] = {key, cs, ps, "x"};
                    Err e = {0};
                    if (csv_upsert_row_q(p, nc, h, NULL, row, "key", NULL, &e)) {
                        fprintf(stderr, "%s\n", e.msg);
                        _exit(1);
                    }
                }
            _exit(0);
        }
    }
    CsvTable t;
    wait_children_and_read(p, &t);
    cr_assert_eq(t.nrows, NCHILD * 20, "%d rows", t.nrows);
    cr_assert_geq(csv_col(&t, "extra"), 0);
    for (int r = 0; r < t.nrows; r++) {
        cr_assert_str_eq(csv_cell(&t, r, csv_col(&t, "pass")), "1", "row %d kept its first pass", r);
        for (int q = 0; q < r; q++)
            cr_assert_str_neq(csv_cell(&t, r, 0), csv_cell(&t, q, 0), "key twice");
    }
    csv_table_free(&t);
    free(p);
}
