/* CIFAR-10 / CIFAR-100 binary versions (docs/DESIGN.md 3).
 *
 * A file is a sequence of fixed-size records, no header:
 *   CIFAR-10:  label (0..9),                       3072 pixel bytes
 *   CIFAR-100: coarse label (0..19), fine (0..99), 3072 pixel bytes
 * Pixels are 32x32 R plane, then G, then B, each row-major: already CHW.
 * All files of a split are opened and size-checked before anything is
 * allocated, so the total image count comes from real file sizes. */
#include "dataset.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { CIFAR_PIXELS = 3 * 32 * 32, CIFAR_MAX_FILES = 5 };

typedef struct {
    int num_classes;      /* 10 or 100 */
    int label_bytes;      /* 1 or 2 (coarse, fine) */
    const char *name;     /* "cifar10", "cifar100" */
    const char *env;      /* directory variable used when dir is NULL/empty */
    float mean[3], std[3];
} CifarKind;

static const CifarKind CIFAR10 = {10, 1, "cifar10", "EWA_CIFAR10_DIR",
                                  {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
static const CifarKind CIFAR100 = {100, 2, "cifar100", "EWA_CIFAR100_DIR",
                                   {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}};

typedef struct {
    char path[4096];
    FILE *f;
    long long records;
} CifarFile;

/* Opens path and checks it is a non-empty regular file whose size is a
 * multiple of the record size. */
static int open_cifar_file(CifarFile *cf, int rec, const char *kind, Err *err) {
    errno = 0;
    cf->f = fopen(cf->path, "rb");
    if (!cf->f)
        return err_set(err, ERR_RUNTIME, "%s: cannot open: %s", cf->path, strerror(errno));
    struct stat st;
    if (fstat(fileno(cf->f), &st) != 0)
        return err_set(err, ERR_RUNTIME, "%s: cannot stat: %s", cf->path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return err_set(err, ERR_RUNTIME, "%s: not a regular file", cf->path);
    if (st.st_size == 0)
        return err_set(err, ERR_RUNTIME, "%s: empty file", cf->path);
    if (st.st_size % rec != 0)
        return err_set(err, ERR_RUNTIME,
                       "%s: size %lld bytes is not a multiple of the %d-byte record size (%s binary)",
                       cf->path, (long long)st.st_size, rec, kind);
    cf->records = (long long)(st.st_size / rec);
    return 0;
}

/* Reads cf's records into pixels (records*3072) and labels, checking label
 * ranges. */
static int read_cifar_file(CifarFile *cf, const CifarKind *k, uint8_t *pixels, int *labels,
                           Err *err) {
    unsigned char rec[2 + CIFAR_PIXELS];
    size_t rs = (size_t)k->label_bytes + CIFAR_PIXELS;
    for (long long i = 0; i < cf->records; i++) {
        if (fread(rec, 1, rs, cf->f) != rs)
            return err_set(err, ERR_RUNTIME, "%s: truncated in record %lld (%s)", cf->path, i,
                           ferror(cf->f) ? strerror(errno) : "file shrank while reading");
        if (k->label_bytes == 2 && rec[0] >= 20)
            return err_set(err, ERR_RUNTIME,
                           "%s: record %lld: coarse label %u out of range [0, 20)", cf->path, i,
                           rec[0]);
        int lab = rec[k->label_bytes - 1];
        if (lab >= k->num_classes)
            return err_set(err, ERR_RUNTIME, "%s: record %lld: label %d out of range [0, %d)",
                           cf->path, i, lab, k->num_classes);
        labels[i] = lab;
        memcpy(pixels + (size_t)i * CIFAR_PIXELS, rec + k->label_bytes, CIFAR_PIXELS);
    }
    return 0;
}

int cifar_files(const char *dir, int num_classes, int train, DataFiles *f, Err *err) {
    if (num_classes != 10 && num_classes != 100)
        return err_set(err, ERR_USAGE, "cifar_load: num_classes %d, expected 10 or 100",
                       num_classes);
    const CifarKind *k = num_classes == 10 ? &CIFAR10 : &CIFAR100;
    if (!dir || !*dir) dir = getenv(k->env);
    if (!dir || !*dir)
        return err_set(err, ERR_USAGE, "%s: no data directory given (set data.dir or $%s)",
                       k->name, k->env);
    if (strlen(dir) + 32 >= sizeof f->path[0])
        return err_set(err, ERR_USAGE, "%s: %s directory path too long", dir, k->name);
    f->n = 0;
    if (k->num_classes == 10 && train)
        for (int i = 1; i <= 5; i++)
            snprintf(f->path[f->n++], sizeof f->path[0], "%s/data_batch_%d.bin", dir, i);
    else if (k->num_classes == 10)
        snprintf(f->path[f->n++], sizeof f->path[0], "%s/test_batch.bin", dir);
    else
        snprintf(f->path[f->n++], sizeof f->path[0], "%s/%s.bin", dir, train ? "train" : "test");
    return 0;
}

static int cifar_read_all(CifarFile *files, int nf, const CifarKind *k, ImageSet *s, Err *err) {
    int rec = k->label_bytes + CIFAR_PIXELS, rc = 0;
    long long total = 0;
    for (int i = 0; i < nf && !rc; i++) {
        rc = open_cifar_file(&files[i], rec, k->name, err);
        total += files[i].records;
    }
    if (rc) return rc;
    if (total > INT_MAX)
        return err_set(err, ERR_RUNTIME, "%s: %lld records in %d files exceed %d", files[0].path,
                       total, nf, INT_MAX);
    s->n = (int)total;
    s->c = 3; s->h = 32; s->w = 32;
    s->pixels = malloc((size_t)total * CIFAR_PIXELS);
    s->labels = malloc((size_t)total * sizeof *s->labels);
    if (!s->pixels || !s->labels)
        return err_set(err, ERR_RUNTIME, "%s: out of memory for %lld images", files[0].path,
                       total);
    long long at = 0;
    for (int i = 0; i < nf && !rc; i++) {
        rc = read_cifar_file(&files[i], k, s->pixels + (size_t)at * CIFAR_PIXELS,
                             s->labels + at, err);
        at += files[i].records;
    }
    return rc;
}

int cifar_load(const char *dir, int num_classes, int train, ImageSet *out, Err *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!out) return err_set(err, ERR_USAGE, "cifar_load: NULL output");
    DataFiles *df = malloc(sizeof *df);
    if (!df) return err_set(err, ERR_RUNTIME, "cifar_load: out of memory");
    int rc = cifar_files(dir, num_classes, train, df, err);
    if (rc) { free(df); return rc; }
    const CifarKind *k = num_classes == 10 ? &CIFAR10 : &CIFAR100;
    if (!dir || !*dir) dir = getenv(k->env);
    CifarFile files[CIFAR_MAX_FILES];
    memset(files, 0, sizeof files);
    int nf = df->n;
    for (int i = 0; i < nf; i++) snprintf(files[i].path, sizeof files[i].path, "%s", df->path[i]);
    free(df);
    ImageSet s = {0};
    rc = cifar_read_all(files, nf, k, &s, err);
    for (int i = 0; i < nf; i++)
        if (files[i].f) fclose(files[i].f);
    if (rc) { imageset_free(&s); return rc; }
    snprintf(s.name, sizeof s.name, "%s", k->name);
    if (nf > 1)
        snprintf(s.source, sizeof s.source, "%s/data_batch_{1..%d}.bin", dir, nf);
    else
        snprintf(s.source, sizeof s.source, "%.280s", files[0].path);
    s.num_classes = k->num_classes;
    memcpy(s.mean, k->mean, sizeof s.mean);
    memcpy(s.std, k->std, sizeof s.std);
    *out = s;
    return 0;
}
