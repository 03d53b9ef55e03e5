/* IDX loader (the MNIST file format) and Fashion-MNIST (docs/DESIGN.md 3).
 *
 * IDX layout, all integers big-endian:
 *   images: magic 0x00000803, n, rows, cols, then n*rows*cols bytes (row-major)
 *   labels: magic 0x00000801, n, then n bytes
 * Files are read through zlib's gzread, which reads gzip-compressed and plain
 * files alike. A gzip stream has no trustworthy size up front, so the pixel
 * buffer grows as data actually arrives: a header claiming billions of images
 * fails with "truncated" after reading what is there, it never allocates what
 * the header claims. */
#include "dataset.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

enum {
    IDX_MAGIC_IMAGES = 0x00000803, /* unsigned byte, 3 dims */
    IDX_MAGIC_LABELS = 0x00000801, /* unsigned byte, 1 dim */
    IDX_MAX_SIDE = 65535,          /* rows, cols */
    IDX_MAX_PIXELS = 1 << 24,      /* rows * cols per image */
    IDX_NUM_CLASSES = 10,          /* MNIST, Fashion-MNIST, KMNIST: 10 classes */
    IDX_FIRST_ALLOC = 1 << 20,     /* bytes; the buffer doubles from here */
    IDX_MAX_CHUNK = 1 << 30        /* bytes per gzread call (takes unsigned) */
};

static const char *FMNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist";

static int open_gz(const char *path, gzFile *out, Err *err) {
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return err_set(err, ERR_RUNTIME, "%s: cannot open: %s", path,
                       errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 1 << 17);
    *out = f;
    return 0;
}

/* zlib's message is "path: problem" (or errno's text for Z_ERRNO). A corrupt
 * gzip stream or CRC shows up here; zlib decompresses ahead of what we asked
 * for, so the place in the file is not known. */
static int gz_read_error(gzFile f, const char *path, Err *err) {
    int errnum = 0;
    const char *m = gzerror(f, &errnum);
    if (errnum == Z_ERRNO) m = strerror(errno);
    size_t pl = strlen(path);
    if (m && strncmp(m, path, pl) == 0 && strncmp(m + pl, ": ", 2) == 0) m += pl + 2;
    return err_set(err, ERR_RUNTIME, "%s: read error: %s", path,
                   m && *m ? m : "unknown zlib error");
}

/* Reads the magic and ndims big-endian uint32 dims: hdr[0] = magic,
 * hdr[1..ndims] = dims. */
static int read_header(gzFile f, const char *path, uint32_t magic, int ndims,
                       const char *kind, uint32_t *hdr, Err *err) {
    unsigned char b[16];
    unsigned want = 4u * (unsigned)(1 + ndims);
    int got = gzread(f, b, 4);
    if (got < 0) return gz_read_error(f, path, err);
    if (got < 4)
        return err_set(err, ERR_RUNTIME, "%s: truncated header (%d of %u bytes)",
                       path, got, want);
    hdr[0] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    if (hdr[0] != magic)
        return err_set(err, ERR_RUNTIME, "%s: bad magic 0x%08x, expected 0x%08x (%s)",
                       path, (unsigned)hdr[0], (unsigned)magic, kind);
    int more = gzread(f, b + 4, want - 4);
    if (more < 0) return gz_read_error(f, path, err);
    if ((unsigned)more < want - 4)
        return err_set(err, ERR_RUNTIME, "%s: truncated header (%d of %u bytes)",
                       path, 4 + more, want);
    for (int i = 1; i <= ndims; i++) {
        const unsigned char *p = b + 4 * i;
        hdr[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    }
    return 0;
}

/* Reads exactly `want` bytes (the payload after the header) into a new buffer
 * *out, growing it only as data arrives, then checks that the file ends there
 * (reading to the end also makes zlib verify the gzip CRC). `what` describes
 * the payload for messages, e.g. "10 images of 28x28". */
static int read_payload(gzFile f, const char *path, size_t want, const char *what,
                        uint8_t **out, Err *err) {
    size_t cap = want < IDX_FIRST_ALLOC ? want : IDX_FIRST_ALLOC, got = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) return err_set(err, ERR_RUNTIME, "%s: out of memory for %zu bytes", path, cap);
    while (got < want) {
        if (got == cap) {
            size_t ncap = cap > want / 2 ? want : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return err_set(err, ERR_RUNTIME, "%s: out of memory for %zu bytes", path, ncap);
            }
            buf = nb; cap = ncap;
        }
        size_t chunk = cap - got < IDX_MAX_CHUNK ? cap - got : IDX_MAX_CHUNK;
        int r = gzread(f, buf + got, (unsigned)chunk);
        if (r < 0) { free(buf); return gz_read_error(f, path, err); }
        if (r == 0) {
            free(buf);
            return err_set(err, ERR_RUNTIME,
                           "%s: truncated: header declares %s (%zu data bytes), file holds %zu",
                           path, what, want, got);
        }
        got += (size_t)r;
    }
    unsigned char extra;
    int r = gzread(f, &extra, 1);
    if (r != 0) {
        free(buf);
        if (r < 0) return gz_read_error(f, path, err);
        return err_set(err, ERR_RUNTIME,
                       "%s: trailing data after the %zu data bytes the header declares (%s)",
                       path, want, what);
    }
    *out = buf;
    return 0;
}

/* Images file -> s->pixels, n, c=1, h, w. */
static int load_images(const char *path, ImageSet *s, Err *err) {
    gzFile f = NULL;
    int rc = open_gz(path, &f, err);
    if (rc) return rc;
    uint32_t hdr[4] = {0};
    rc = read_header(f, path, IDX_MAGIC_IMAGES, 3, "IDX unsigned-byte 3-D images", hdr, err);
    if (!rc) {
        uint32_t n = hdr[1], rows = hdr[2], cols = hdr[3];
        if (n == 0 || n > INT_MAX)
            rc = err_set(err, ERR_RUNTIME, "%s: header declares %u images, expected 1..%d",
                         path, (unsigned)n, INT_MAX);
        else if (rows == 0 || cols == 0 || rows > IDX_MAX_SIDE || cols > IDX_MAX_SIDE ||
                 (uint64_t)rows * cols > IDX_MAX_PIXELS)
            rc = err_set(err, ERR_RUNTIME, "%s: header declares images of %ux%u pixels, "
                         "expected sides 1..%d and at most %d pixels", path, (unsigned)rows,
                         (unsigned)cols, IDX_MAX_SIDE, IDX_MAX_PIXELS);
        else if ((size_t)n > SIZE_MAX / ((size_t)rows * cols))
            rc = err_set(err, ERR_RUNTIME, "%s: %u images of %ux%u overflow the address space",
                         path, (unsigned)n, (unsigned)rows, (unsigned)cols);
        else {
            char what[96];
            snprintf(what, sizeof what, "%u images of %ux%u", (unsigned)n, (unsigned)rows,
                     (unsigned)cols);
            rc = read_payload(f, path, (size_t)n * rows * cols, what, &s->pixels, err);
            s->n = (int)n; s->c = 1; s->h = (int)rows; s->w = (int)cols;
        }
    }
    gzclose(f);
    return rc;
}

/* Labels file -> s->labels; its count must equal s->n and labels lie in
 * [0, num_classes). */
static int load_labels(const char *path, const char *images_path, int num_classes,
                       ImageSet *s, Err *err) {
    gzFile f = NULL;
    int rc = open_gz(path, &f, err);
    if (rc) return rc;
    uint32_t hdr[2] = {0};
    uint8_t *raw = NULL;
    rc = read_header(f, path, IDX_MAGIC_LABELS, 1, "IDX unsigned-byte 1-D labels", hdr, err);
    if (!rc && hdr[1] != (uint32_t)s->n)
        rc = err_set(err, ERR_RUNTIME, "%s: %u labels, but %s has %d images", path,
                     (unsigned)hdr[1], images_path, s->n);
    if (!rc) {
        char what[48];
        snprintf(what, sizeof what, "%u labels", (unsigned)hdr[1]);
        rc = read_payload(f, path, (size_t)s->n, what, &raw, err);
    }
    gzclose(f);
    if (rc) return rc;
    for (int i = 0; i < s->n; i++)
        if (raw[i] >= num_classes) {
            rc = err_set(err, ERR_RUNTIME, "%s: label %u at index %d out of range [0, %d)",
                         path, raw[i], i, num_classes);
            free(raw);
            return rc;
        }
    s->labels = malloc((size_t)s->n * sizeof *s->labels);
    if (!s->labels) {
        free(raw);
        return err_set(err, ERR_RUNTIME, "%s: out of memory for %d labels", path, s->n);
    }
    for (int i = 0; i < s->n; i++) s->labels[i] = raw[i];
    free(raw);
    return 0;
}

/* IDX image + label files (10 classes, the MNIST family) -> out. Name "idx",
 * mean 0 / std 1 (identity normalisation) until the caller sets them. */
int idx_load(const char *images_path, const char *labels_path, ImageSet *out, Err *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!images_path || !labels_path || !out)
        return err_set(err, ERR_USAGE, "idx_load: NULL argument");
    ImageSet s = {0};
    int rc = load_images(images_path, &s, err);
    if (!rc) rc = load_labels(labels_path, images_path, IDX_NUM_CLASSES, &s, err);
    if (rc) { imageset_free(&s); return rc; }
    snprintf(s.name, sizeof s.name, "idx");
    snprintf(s.source, sizeof s.source, "%s", images_path);
    s.num_classes = IDX_NUM_CLASSES;
    for (int ch = 0; ch < 3; ch++) { s.mean[ch] = 0.0f; s.std[ch] = 1.0f; }
    *out = s;
    return 0;
}

/* dir/base.gz, or dir/base when only the uncompressed file exists. */
static int fmnist_path(const char *dir, const char *base, char *buf, size_t len, Err *err) {
    int k = snprintf(buf, len, "%s/%s.gz", dir, base);
    if (k < 0 || (size_t)k >= len)
        return err_set(err, ERR_USAGE, "%s: Fashion-MNIST directory path too long", dir);
    if (access(buf, F_OK) != 0) {
        buf[k - 3] = '\0';
        if (access(buf, F_OK) != 0) buf[k - 3] = '.';  /* report the .gz name */
    }
    return 0;
}

int fmnist_files(const char *dir, int train, DataFiles *f, Err *err) {
    if (!dir || !*dir) dir = getenv("EWA_FASHION_MNIST_DIR");
    if (!dir || !*dir) dir = FMNIST_DEFAULT_DIR;
    const char *split = train ? "train" : "t10k";
    char base[64];
    f->n = 2;
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", split);
    int rc = fmnist_path(dir, base, f->path[0], sizeof f->path[0], err);
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", split);
    return rc ? rc : fmnist_path(dir, base, f->path[1], sizeof f->path[1], err);
}

int fmnist_load(const char *dir, int train, ImageSet *out, Err *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!out) return err_set(err, ERR_USAGE, "fmnist_load: NULL output");
    DataFiles *f = malloc(sizeof *f);
    if (!f) return err_set(err, ERR_RUNTIME, "fmnist_load: out of memory");
    int rc = fmnist_files(dir, train, f, err);
    if (!rc) rc = idx_load(f->path[0], f->path[1], out, err);
    free(f);
    if (rc) return rc;
    snprintf(out->name, sizeof out->name, "fashion-mnist");
    out->mean[0] = 0.2860f;
    out->std[0] = 0.3530f;
    return 0;
}
