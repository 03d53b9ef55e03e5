/* Shared by the libFuzzer harnesses (make fuzz): a private temporary
 * directory per process and whole-buffer file writes, because the parsers
 * under test read files, as they do for a user. */
#ifndef EWA_FUZZ_UTIL_H
#define EWA_FUZZ_UTIL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fz_dir[64];

/* Called from LLVMFuzzerInitialize: creates /tmp/ewa-fuzz-XXXXXX, removed
 * at exit. */
static inline void fz_rmdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz_dir);
    if (system(cmd)) { /* best effort */ }
}

static inline void fz_init(void) {
    snprintf(fz_dir, sizeof fz_dir, "/tmp/ewa-fuzz-XXXXXX");
    if (!mkdtemp(fz_dir)) { perror("mkdtemp"); abort(); }
    atexit(fz_rmdir);
}

/* fz_dir/name (name may hold one '/': the directory is created). */
static inline const char *fz_path(const char *name) {
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", fz_dir, name);
    return p[k];
}

static inline const char *fz_write(const char *name, const uint8_t *data, size_t len) {
    const char *path = fz_path(name);
    const char *slash = strrchr(name, '/');
    if (slash) {
        char d[256];
        snprintf(d, sizeof d, "%s/%.*s", fz_dir, (int)(slash - name), name);
        mkdir(d, 0755);
    }
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    if (len && fwrite(data, 1, len, f) != len) { perror(path); abort(); }
    fclose(f);
    return path;
}

/* Splits data at the first NUL byte: *a = before it, *b = after (empty if
 * none). */
static inline void fz_split(const uint8_t *data, size_t size, size_t *alen, const uint8_t **b,
                     size_t *blen) {
    const uint8_t *z = memchr(data, 0, size);
    *alen = z ? (size_t)(z - data) : size;
    *b = z ? z + 1 : data + size;
    *blen = z ? size - *alen - 1 : 0;
}
#endif
