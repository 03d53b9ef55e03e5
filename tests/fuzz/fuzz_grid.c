/* libFuzzer: grid files (experiments/grid.c): parse, check every profile,
 * expand. The first byte picks no profile, smoke, cpu or paper. */
#include "fuzz_util.h"
#include "grid.h"

/* base.ini (an empty base config) sits beside the grid file: the seeds say
 * `base = base.ini`. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fz_init();
    fz_write("base.ini", (const uint8_t *)"[train]\nepochs = 1\n", 19);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *const profiles[] = {NULL, "smoke", "cpu", "paper"};
    const char *p = fz_write("grid.ini", data + 1, size - 1);
    GridSpec g;
    Err e = {0};
    if (grid_load(&g, p, profiles[data[0] & 3], fz_path("out"), &e) == 0) {
        GridRun *runs = NULL;
        int n = 0;
        if (grid_expand(&g, &runs, &n, &e) == 0) grid_runs_free(runs, n);
        grid_free(&g);
    }
    return 0;
}
