/* Small helpers shared by the Criterion tests. */
#ifndef EWA_TESTUTIL_H
#define EWA_TESTUTIL_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>

/* Creates a fresh temporary directory and returns its path (static buffer
 * per call site is the caller's business: copy it). */
static inline char *tu_tmpdir(void) {
    char *p = strdup("/tmp/ewa-test-XXXXXX");
    if (!mkdtemp(p)) { perror("mkdtemp"); abort(); }
    return p;
}

/* Writes len bytes to dir/name; returns the full path (malloc'd). */
static inline char *tu_write(const char *dir, const char *name, const void *data, size_t len) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    if (len) fwrite(data, 1, len, f);
    fclose(f);
    return path;
}

static inline char *tu_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    return path;
}

static inline void tu_rmrf(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) { /* best effort */ }
}

/* Number of entries in dir whose name contains ".tmp" (atomic writes must
 * leave none behind). */
static inline int tu_count_tmp_files(const char *d) {
    DIR *dp = opendir(d);
    int n = 0;
    if (!dp) return 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strstr(e->d_name, ".tmp")) n++;
    closedir(dp);
    return n;
}

/* The committed fixture tests/fixtures/<sub>/<name>, found beside the test
 * source src (pass __FILE__) or from the repository root; malloc'd, NULL
 * when neither exists. */
static inline char *tu_fixture_path(const char *src, const char *sub, const char *name) {
    char *file = strdup(src), *slash = strrchr(file, '/'), buf[1024];
    if (slash) *slash = '\0';
    snprintf(buf, sizeof buf, "%s/fixtures/%s/%s", slash ? file : ".", sub, name);
    free(file);
    if (access(buf, R_OK) == 0) return strdup(buf);
    snprintf(buf, sizeof buf, "tests/fixtures/%s/%s", sub, name);
    return access(buf, R_OK) == 0 ? strdup(buf) : NULL;
}

static inline int tu_file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Max |a-b| / max(max|b|, floor). */
static inline double tu_rel_maxdiff(const float *a, const float *b, size_t n, double floor_) {
    double m = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        double ab = b[i] < 0 ? -b[i] : b[i];
        if (ab > m) m = ab;
        double e = a[i] - b[i]; if (e < 0) e = -e;
        if (e > d) d = e;
    }
    return d / (m > floor_ ? m : floor_);
}
#endif
