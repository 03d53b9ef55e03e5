/* libFuzzer: the CSV tables (experiments/csvio.c, libcsv), read as a
 * runs.csv by aggregate and by regress (both sides, every mode's path). */
#include "fuzz_util.h"
#include "aggregate.h"
#include "csvio.h"
#include "regress.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { (void)argc; (void)argv; fz_init(); return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_write("t.csv", data, size);
    CsvTable t;
    Err e = {0};
    if (csv_read_file(p, &t, &e) == 0) {
        for (int r = 0; r < t.nrows; r++)
            for (int c = 0; c < t.ncols; c++) (void)csv_cell(&t, r, c);
        csv_table_free(&t);
    }
    FILE *devnull = fopen("/dev/null", "w");
    RegressResult r;
    (void)regress_runs(p, NULL, p, REGRESS_AUTO, 0, "fuzz", devnull, &r, &e);
    regress_result_free(&r);
    (void)regress_runs(p, NULL, p, REGRESS_STAT, 0, "fuzz", devnull, &r, &e);
    regress_result_free(&r);
    (void)regress_runs(p, NULL, p, REGRESS_AUTO, 1, "fuzz", devnull, &r, &e);
    regress_result_free(&r);
    fclose(devnull);
    return 0;
}
