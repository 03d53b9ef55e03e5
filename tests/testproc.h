/* Helpers shared by the Criterion tests that run the real binary ($EWA_BIN)
 * as a child process (test_cli, test_grid, test_model3d), and the tiny
 * Fashion-MNIST-format data set (gzip IDX files) some of them train on. */
#ifndef EWA_TESTPROC_H
#define EWA_TESTPROC_H
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

extern char **environ;

/* ---------------------------------------------------------------- dataset */

/* Fake Fashion-MNIST: SIDE x SIDE images, class k (= index % 10) drawn as
 * bright lines on a dark noisy background: horizontal lines at rows k, k+7,
 * k+14, k+21 for k < 7, vertical lines at columns 2(k-7) + 7j for k >= 7. */
enum { FMNIST_SIDE = 28 };

static inline void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static inline uint32_t lcg(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Writes len bytes gzip-compressed to dir/name. */
static inline void write_gz(const char *dir, const char *name, const void *data, size_t len) {
    char *path = tu_path(dir, name);
    gzFile f = gzopen(path, "wb");
    cr_assert(f, "gzopen %s", path);
    cr_assert_eq(gzwrite(f, data, (unsigned)len), (int)len, "gzwrite %s", path);
    cr_assert_eq(gzclose(f), Z_OK, "gzclose %s", path);
    free(path);
}

/* IDX images with header count n_header but only n_data images of payload
 * (n_data < n_header makes a truncated file); *len set, malloc'd. */
static inline uint8_t *fmnist_images(int n_header, int n_data, uint32_t seed, size_t *len) {
    enum { SIDE = FMNIST_SIDE };
    *len = 16 + (size_t)n_data * SIDE * SIDE;
    uint8_t *b = malloc(*len);
    put_be32(b, 0x803); put_be32(b + 4, (uint32_t)n_header);
    put_be32(b + 8, SIDE); put_be32(b + 12, SIDE);
    for (int i = 0; i < n_data; i++) {
        int k = i % 10;
        uint8_t *px = b + 16 + (size_t)i * SIDE * SIDE;
        for (int j = 0; j < SIDE * SIDE; j++) px[j] = (uint8_t)(lcg(&seed) % 64);
        for (int j = 0; j < 4; j++)
            for (int x = 0; x < SIDE; x++) {
                uint8_t v = (uint8_t)(200 + lcg(&seed) % 56);
                if (k < 7) px[(k + 7 * j) * SIDE + x] = v;
                else px[x * SIDE + 2 * (k - 7) + 7 * j] = v;
            }
    }
    return b;
}

/* IDX labels 0, 1, ..., 9, 0, 1, ... (n of them); *len set, malloc'd. */
static inline uint8_t *fmnist_labels(int n, size_t *len) {
    *len = 8 + (size_t)n;
    uint8_t *b = malloc(*len);
    put_be32(b, 0x801); put_be32(b + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) b[8 + i] = (uint8_t)(i % 10);
    return b;
}

/* Writes one split (prefix "train" or "t10k") of n images into dir, of which
 * only n_data are present in the image file (n_data == n: a sound file). */
static inline void write_split(const char *dir, const char *prefix, int n, int n_data, uint32_t seed) {
    char name[96];
    size_t len;
    uint8_t *b = fmnist_images(n, n_data, seed, &len);
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
    write_gz(dir, name, b, len);
    free(b);
    b = fmnist_labels(n, &len);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
    write_gz(dir, name, b, len);
    free(b);
}

/* ---------------------------------------------------------------- processes */

typedef struct {
    int status;   /* exit code, or 128 + signal number */
    char *out;    /* captured stdout (NUL-terminated) */
    char *err;    /* captured stderr */
} Proc;

/* Reads a whole file into a NUL-terminated malloc'd string (NULL if it
 * cannot be opened); *len gets its size unless len is NULL. */
static inline char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    size_t r;
    while ((r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) b = realloc(b, (cap *= 2) + 1);
    }
    fclose(f);
    b[n] = '\0';
    if (len) *len = n;
    return b;
}

static inline const char *ewa_bin(void) {
    const char *b = getenv("EWA_BIN");
    cr_assert(b && *b, "EWA_BIN is not set (make test exports it; by hand: EWA_BIN=$PWD/bin/ewa)");
    cr_assert_eq(access(b, X_OK), 0, "EWA_BIN=%s is not executable", b);
    return b;
}

enum { PROC_PATH = 700 }; /* size of the capture path buffers */

/* Starts $EWA_BIN with args (NULL-terminated, without argv[0]); stdin is
 * /dev/null, stdout and stderr go to dir/stdout.<id> and dir/stderr.<id>
 * with id = (*counter)++, whose paths are written to outp and errp
 * (PROC_PATH bytes each). Returns the child's pid; see proc_wait. */
static inline pid_t proc_spawn_prog(const char *bin, const char *dir, int *counter, const char *const *args,
                                    char *outp, char *errp);
static inline pid_t proc_spawn(const char *dir, int *counter, const char *const *args, char *outp,
                               char *errp) {
    return proc_spawn_prog(ewa_bin(), dir, counter, args, outp, errp);
}

/* proc_spawn for any program bin (an absolute path). */
static inline pid_t proc_spawn_prog(const char *bin, const char *dir, int *counter, const char *const *args,
                                    char *outp, char *errp) {
    int n = 0;
    while (args[n]) n++;
    char **argv = calloc((size_t)n + 2, sizeof *argv);
    argv[0] = (char *)bin;
    for (int i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    int id = (*counter)++;
    snprintf(outp, PROC_PATH, "%s/stdout.%d", dir, id);
    snprintf(errp, PROC_PATH, "%s/stderr.%d", dir, id);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    free(argv);
    cr_assert_eq(rc, 0, "posix_spawn %s: %s", bin, strerror(rc));
    return pid;
}

/* Waits for a child of proc_spawn and reads what it wrote. Fails the test if
 * the child reports a sanitizer error (the ASan build runs the same tests),
 * and if it died of a signal unless may_die. */
static inline Proc proc_wait(pid_t pid, const char *outp, const char *errp, bool may_die) {
    int ws;
    while (waitpid(pid, &ws, 0) < 0) cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
    Proc p;
    p.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : -1;
    p.out = slurp(outp, NULL);
    p.err = slurp(errp, NULL);
    cr_assert(p.out && p.err, "cannot read the captured output");
    cr_assert(!strstr(p.err, "ERROR: AddressSanitizer") && !strstr(p.err, "ERROR: LeakSanitizer") &&
                  !strstr(p.err, "ERROR: UndefinedBehaviorSanitizer") && !strstr(p.err, "runtime error:"),
              "sanitizer report from ewa:\n%s", p.err);
    if (!may_die) cr_assert(!WIFSIGNALED(ws), "ewa died of signal %d; stderr:\n%s", WTERMSIG(ws), p.err);
    return p;
}

/* Runs $EWA_BIN with args to completion (proc_spawn, then proc_wait that
 * fails the test if the child died of a signal). */
static inline Proc run_list(const char *dir, int *counter, const char *const *args) {
    char outp[PROC_PATH], errp[PROC_PATH];
    pid_t pid = proc_spawn(dir, counter, args, outp, errp);
    return proc_wait(pid, outp, errp, false);
}

/* Runs program bin with args to completion (e.g. the Python twin checks). */
static inline Proc run_prog(const char *bin, const char *dir, int *counter, const char *const *args) {
    char outp[PROC_PATH], errp[PROC_PATH];
    pid_t pid = proc_spawn_prog(bin, dir, counter, args, outp, errp);
    return proc_wait(pid, outp, errp, false);
}

static inline void proc_free(Proc *p) { free(p->out); free(p->err); }

/* Runs $EWA_BIN with base[0..nb) followed by extra (NULL-terminated; may be
 * NULL): the fixed arguments of a test's command plus each case's own. */
static inline Proc run_base_extra(const char *dir, int *counter, const char *const *base, int nb,
                                  const char *const *extra) {
    enum { MAXARGS = 128 };
    const char *args[MAXARGS + 1];
    int n = 0;
    for (int i = 0; i < nb && n < MAXARGS; i++) args[n++] = base[i];
    for (int i = 0; extra && extra[i]; i++) {
        cr_assert_lt(n, MAXARGS, "more than %d arguments", MAXARGS);
        args[n++] = extra[i];
    }
    args[n] = NULL;
    return run_list(dir, counter, args);
}

/* ---------------------------------------------------------------- fixture */

/* The fixture of the suites that train the binary on the tiny set: a fresh
 * temporary directory *tmp holding data/ (*data_dir) with a "train" split of
 * n_train and a "t10k" split of n_test images; data_set (600 bytes; may be
 * NULL) gets the "data.dir=..." --set argument naming it. */
static inline void tiny_data_setup(char **tmp, char **data_dir, char *data_set, int n_train, int n_test) {
    *tmp = tu_tmpdir();
    *data_dir = tu_path(*tmp, "data");
    cr_assert_eq(mkdir(*data_dir, 0755), 0, "mkdir %s", *data_dir);
    write_split(*data_dir, "train", n_train, n_train, 1);
    write_split(*data_dir, "t10k", n_test, n_test, 2);
    if (data_set) snprintf(data_set, 600, "data.dir=%s", *data_dir);
}

/* Removes the fixture's directory and frees its paths. */
static inline void tiny_data_teardown(char *tmp, char *data_dir) {
    tu_rmrf(tmp);
    free(tmp);
    free(data_dir);
}
#endif
