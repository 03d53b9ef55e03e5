/* Tests for datasets/: IDX and CIFAR loaders on fixtures generated here (good
 * and broken), balanced subsets, class ranges, batch normalisation and
 * augmentation. The real Fashion-MNIST test set is checked when installed. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <zlib.h>
#include "../datasets/dataset.h"
#include "testutil.h"

static char *tmp;

static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void) { tu_rmrf(tmp); free(tmp); }

TestSuite(datasets, .init = setup, .fini = teardown);

/* Asserts rc != 0 and that err.msg names `path` and contains `what`. */
#define ASSERT_FAILS(rc, err, code_, path, what) do {                               \
        cr_assert_eq((rc), (code_), "rc %d, expected %d: %s", (rc), (code_), (err).msg); \
        cr_assert_eq((err).code, (code_));                                          \
        cr_assert(strstr((err).msg, (path)), "msg lacks path %s: %s", (path), (err).msg); \
        cr_assert(strstr((err).msg, (what)), "msg lacks '%s': %s", (what), (err).msg); \
    } while (0)

/* ---- fixture builders ---------------------------------------------------- */

static uint8_t pix(int i, int y, int x) { return (uint8_t)(i * 31 + y * 7 + x * 3 + 1); }

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* IDX images: magic, n, h, w, then `ndata` images of pix(); malloc'd, *len set. */
static uint8_t *idx_images(uint32_t magic, uint32_t n, int h, int w, int ndata, size_t *len) {
    *len = 16 + (size_t)ndata * h * w;
    uint8_t *b = malloc(*len);
    put_be32(b, magic); put_be32(b + 4, n); put_be32(b + 8, (uint32_t)h); put_be32(b + 12, (uint32_t)w);
    for (int i = 0; i < ndata; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) b[16 + ((size_t)i * h + y) * w + x] = pix(i, y, x);
    return b;
}

/* IDX labels: magic, n, then ndata labels (i*3)%10 unless bad >= 0 puts
 * value 10 at that index. */
static uint8_t *idx_labels(uint32_t magic, uint32_t n, int ndata, int bad, size_t *len) {
    *len = 8 + (size_t)ndata;
    uint8_t *b = malloc(*len);
    put_be32(b, magic); put_be32(b + 4, n);
    for (int i = 0; i < ndata; i++) b[8 + i] = (uint8_t)(i == bad ? 10 : (i * 3) % 10);
    return b;
}

/* Writes data gzip-compressed to dir/name; returns the path (malloc'd). */
static char *write_gz(const char *dir, const char *name, const void *data, size_t len) {
    char *path = tu_path(dir, name);
    gzFile f = gzopen(path, "wb");
    cr_assert(f, "gzopen %s", path);
    if (len) cr_assert_eq(gzwrite(f, data, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(f), Z_OK);
    return path;
}

static char *write_file(const char *name, const void *data, size_t len, int gz) {
    return gz ? write_gz(tmp, name, data, len) : tu_write(tmp, name, data, len);
}

/* Writes a good (images, labels) pair of n images h x w; paths returned. */
static void good_idx(const char *img_name, const char *lab_name, int n, int h, int w, int gz,
                     char **img, char **lab) {
    size_t li, ll;
    uint8_t *bi = idx_images(0x803, (uint32_t)n, h, w, n, &li);
    uint8_t *bl = idx_labels(0x801, (uint32_t)n, n, -1, &ll);
    *img = write_file(img_name, bi, li, gz);
    *lab = write_file(lab_name, bl, ll, gz);
    free(bi); free(bl);
}

static void check_idx_set(const ImageSet *s, int n, int h, int w) {
    cr_assert_eq(s->n, n);
    cr_assert_eq(s->c, 1);
    cr_assert_eq(s->h, h);
    cr_assert_eq(s->w, w);
    cr_assert_eq(s->num_classes, 10);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(s->labels[i], (i * 3) % 10, "label %d", i);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                cr_assert_eq(s->pixels[((size_t)i * h + y) * w + x], pix(i, y, x),
                             "pixel (%d,%d,%d)", i, y, x);
    }
}

/* ---- IDX: good loads ------------------------------------------------------ */

Test(datasets, idx_gz_and_plain) {
    for (int gz = 0; gz < 2; gz++) {
        char *img, *lab;
        good_idx(gz ? "i.gz" : "i", gz ? "l.gz" : "l", 12, 5, 4, gz, &img, &lab);
        ImageSet s; Err err = {0};
        int rc = idx_load(img, lab, &s, &err);
        cr_assert_eq(rc, 0, "%s", err.msg);
        check_idx_set(&s, 12, 5, 4);   /* 5 rows x 4 cols: catches an h/w swap */
        imageset_free(&s);
        free(img); free(lab);
    }
}

Test(datasets, idx_mixed_gz_plain) {
    size_t li, ll;
    uint8_t *bi = idx_images(0x803, 7, 3, 3, 7, &li);
    uint8_t *bl = idx_labels(0x801, 7, 7, -1, &ll);
    char *img = write_gz(tmp, "i.gz", bi, li), *lab = tu_write(tmp, "l", bl, ll);
    ImageSet s; Err err = {0};
    cr_assert_eq(idx_load(img, lab, &s, &err), 0, "%s", err.msg);
    check_idx_set(&s, 7, 3, 3);
    imageset_free(&s);
    free(bi); free(bl); free(img); free(lab);
}

Test(datasets, fmnist_dir_env_and_splits) {
    char *a, *b;
    good_idx("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 20, 28, 28, 1, &a, &b);
    free(a); free(b);
    /* the test split uncompressed: the loader falls back to the plain name */
    good_idx("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10, 28, 28, 0, &a, &b);
    free(a); free(b);
    ImageSet s; Err err = {0};
    cr_assert_eq(fmnist_load(tmp, 1, &s, &err), 0, "%s", err.msg);
    check_idx_set(&s, 20, 28, 28);
    cr_assert_str_eq(s.name, "fashion-mnist");
    cr_assert_float_eq(s.mean[0], 0.2860f, 1e-7);
    cr_assert_float_eq(s.std[0], 0.3530f, 1e-7);
    imageset_free(&s);
    setenv("EWA_FASHION_MNIST_DIR", tmp, 1);
    cr_assert_eq(fmnist_load(NULL, 0, &s, &err), 0, "%s", err.msg);
    check_idx_set(&s, 10, 28, 28);
    imageset_free(&s);
    cr_assert_eq(fmnist_load("", 1, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(s.n, 20);
    imageset_free(&s);
}

Test(datasets, fmnist_missing_dir) {
    char *dir = tu_path(tmp, "nope");
    ImageSet s; Err err = {0};
    int rc = fmnist_load(dir, 1, &s, &err);
    ASSERT_FAILS(rc, err, ERR_RUNTIME, dir, "train-images-idx3-ubyte.gz: cannot open");
    cr_assert_null(s.pixels);
    free(dir);
}

/* ---- IDX: broken fixtures -------------------------------------------------- */

/* Loads (img, lab) expecting failure with a message naming `path` and `what`. */
static void expect_idx_fail(const char *img, const char *lab, const char *path, const char *what) {
    ImageSet s; Err err = {0};
    int rc = idx_load(img, lab, &s, &err);
    ASSERT_FAILS(rc, err, ERR_RUNTIME, path, what);
    cr_assert_null(s.pixels);
    cr_assert_null(s.labels);
    cr_assert_eq(s.n, 0);
}

Test(datasets, idx_bad_magic_images) {
    for (int gz = 0; gz < 2; gz++) {
        size_t li, ll;
        uint8_t *bi = idx_images(0x802, 4, 2, 2, 4, &li);
        uint8_t *bl = idx_labels(0x801, 4, 4, -1, &ll);
        char *img = write_file(gz ? "i.gz" : "i", bi, li, gz);
        char *lab = write_file(gz ? "l.gz" : "l", bl, ll, gz);
        expect_idx_fail(img, lab, img, "bad magic 0x00000802, expected 0x00000803 (IDX unsigned-byte 3-D images)");
        /* a labels file given as the images file */
        expect_idx_fail(lab, lab, lab, "bad magic 0x00000801, expected 0x00000803");
        free(bi); free(bl); free(img); free(lab);
    }
}

Test(datasets, idx_bad_magic_labels) {
    size_t li, ll;
    uint8_t *bi = idx_images(0x803, 4, 2, 2, 4, &li);
    uint8_t *bl = idx_labels(0x803, 4, 4, -1, &ll);
    char *img = write_gz(tmp, "i.gz", bi, li), *lab = write_gz(tmp, "l.gz", bl, ll);
    expect_idx_fail(img, lab, lab, "bad magic 0x00000803, expected 0x00000801");
    free(bi); free(bl); free(img); free(lab);
}

Test(datasets, idx_truncated_images) {
    for (int gz = 0; gz < 2; gz++) {
        size_t li, ll;
        uint8_t *bi = idx_images(0x803, 10, 4, 4, 9, &li);   /* header says 10, data for 9 */
        uint8_t *bl = idx_labels(0x801, 10, 10, -1, &ll);
        char *img = write_file(gz ? "i.gz" : "i", bi, li, gz);
        char *lab = write_file(gz ? "l.gz" : "l", bl, ll, gz);
        expect_idx_fail(img, lab, img, "truncated: header declares 10 images of 4x4 (160 data bytes), file holds 144");
        free(img);
        img = write_file(gz ? "h.gz" : "h", bi, 10, gz);        /* cut inside the header */
        expect_idx_fail(img, lab, img, "truncated header (10 of 16 bytes)");
        free(img);
        img = write_file(gz ? "e.gz" : "e", bi, 0, gz);         /* empty */
        expect_idx_fail(img, lab, img, "truncated header (0 of 16 bytes)");
        free(bi); free(bl); free(img); free(lab);
    }
}

Test(datasets, idx_truncated_labels) {
    for (int gz = 0; gz < 2; gz++) {
        size_t li, ll;
        uint8_t *bi = idx_images(0x803, 10, 4, 4, 10, &li);
        uint8_t *bl = idx_labels(0x801, 10, 6, -1, &ll);
        char *img = write_file(gz ? "i.gz" : "i", bi, li, gz);
        char *lab = write_file(gz ? "l.gz" : "l", bl, ll, gz);
        expect_idx_fail(img, lab, lab, "truncated: header declares 10 labels");
        free(lab);
        lab = write_file(gz ? "m.gz" : "m", bl, 6, gz);
        expect_idx_fail(img, lab, lab, "truncated header (6 of 8 bytes)");
        free(bi); free(bl); free(img); free(lab);
    }
}

Test(datasets, idx_count_mismatch) {
    size_t li, ll;
    uint8_t *bi = idx_images(0x803, 10, 4, 4, 10, &li);
    uint8_t *bl = idx_labels(0x801, 9, 9, -1, &ll);
    char *img = write_gz(tmp, "i.gz", bi, li), *lab = write_gz(tmp, "l.gz", bl, ll);
    expect_idx_fail(img, lab, lab, "9 labels, but");
    expect_idx_fail(img, lab, img, "has 10 images");
    free(bi); free(bl); free(img); free(lab);
}

Test(datasets, idx_label_out_of_range) {
    size_t li, ll;
    uint8_t *bi = idx_images(0x803, 10, 4, 4, 10, &li);
    uint8_t *bl = idx_labels(0x801, 10, 10, 7, &ll);
    char *img = write_gz(tmp, "i.gz", bi, li), *lab = write_gz(tmp, "l.gz", bl, ll);
    expect_idx_fail(img, lab, lab, "label 10 at index 7 out of range [0, 10)");
    free(bi); free(bl); free(img); free(lab);
}

Test(datasets, idx_missing_files) {
    char *img, *lab;
    good_idx("i.gz", "l.gz", 3, 2, 2, 1, &img, &lab);
    char *nope = tu_path(tmp, "missing.gz");
    expect_idx_fail(nope, lab, nope, "cannot open: No such file or directory");
    expect_idx_fail(img, nope, nope, "cannot open: No such file or directory");
    free(img); free(lab); free(nope);
}

Test(datasets, idx_absurd_headers) {
    size_t li, ll;
    uint8_t *bl = idx_labels(0x801, 3, 3, -1, &ll);
    char *lab = write_gz(tmp, "l.gz", bl, ll);
    /* INT_MAX images of 28x28 (1.7 TB) with 3 present: read, not allocated */
    uint8_t *bi = idx_images(0x803, 0x7fffffff, 28, 28, 3, &li);
    char *img = write_gz(tmp, "big.gz", bi, li);
    expect_idx_fail(img, lab, img, "truncated: header declares 2147483647 images of 28x28");
    free(img); free(bi);
    bi = idx_images(0x803, 4000000000u, 28, 28, 3, &li);        /* more than an int holds */
    img = write_gz(tmp, "huge.gz", bi, li);
    expect_idx_fail(img, lab, img, "header declares 4000000000 images");
    free(img); free(bi);
    bi = idx_images(0x803, 3, 0, 28, 0, &li);                  /* zero rows */
    img = write_gz(tmp, "zero.gz", bi, li);
    expect_idx_fail(img, lab, img, "images of 0x28 pixels");
    free(img); free(bi);
    bi = idx_images(0x803, 3, 65535, 65535, 0, &li);           /* 4e9 pixels per image */
    img = write_gz(tmp, "wide.gz", bi, li);
    expect_idx_fail(img, lab, img, "images of 65535x65535 pixels");
    free(img); free(bi); free(bl); free(lab);
}

Test(datasets, idx_corrupt_gzip_and_trailing_data) {
    size_t li, ll;
    uint8_t *bi = idx_images(0x803, 50, 8, 8, 50, &li);
    uint8_t *bl = idx_labels(0x801, 50, 50, -1, &ll);
    char *lab = write_gz(tmp, "l.gz", bl, ll);
    /* a gzip stream cut in half */
    char *full = write_gz(tmp, "full.gz", bi, li);
    FILE *f = fopen(full, "rb");
    uint8_t gzbuf[8192];
    size_t glen = fread(gzbuf, 1, sizeof gzbuf, f);
    fclose(f);
    cr_assert(glen > 40 && glen < sizeof gzbuf);
    char *cut = tu_write(tmp, "cut.gz", gzbuf, glen / 2);
    ImageSet s; Err err = {0};
    int rc = idx_load(cut, lab, &s, &err);
    ASSERT_FAILS(rc, err, ERR_RUNTIME, cut, ": ");
    cr_assert(strstr(err.msg, "truncated") || strstr(err.msg, "read error"), "%s", err.msg);
    cr_assert_null(s.pixels);
    /* a flipped byte in the CRC trailer: caught because we read to the end */
    gzbuf[glen - 6] ^= 0xff;
    char *crc = tu_write(tmp, "crc.gz", gzbuf, glen);
    rc = idx_load(crc, lab, &s, &err);
    ASSERT_FAILS(rc, err, ERR_RUNTIME, crc, "read error");
    /* one byte more than the header declares */
    uint8_t *more = malloc(li + 1);
    memcpy(more, bi, li); more[li] = 0;
    char *trail = write_gz(tmp, "trail.gz", more, li + 1);
    expect_idx_fail(trail, lab, trail, "trailing data");
    free(more); free(trail); free(crc); free(cut); free(full);
    free(bi); free(bl); free(lab);
}

/* ---- CIFAR ---------------------------------------------------------------- */

enum { CIFAR_IMG = 3072 };

static uint8_t cpix(int i, int k) { return (uint8_t)(i * 13 + k * 5 + (k >> 10) * 7); }

/* Writes `recs` CIFAR records, global indices first..first+recs; label of
 * global image i is i % 10 (CIFAR-10) or fine (i*7)%100 with coarse fine/5
 * (CIFAR-100). bad_label >= 0 replaces the (fine) label of record 0. */
static char *write_cifar(const char *name, int c100, int first, int recs, int bad_label,
                         int extra_bytes) {
    int rs = CIFAR_IMG + (c100 ? 2 : 1);
    size_t len = (size_t)recs * rs + (size_t)extra_bytes;
    uint8_t *b = calloc(len ? len : 1, 1);
    for (int r = 0; r < recs; r++) {
        int i = first + r;
        uint8_t *p = b + (size_t)r * rs;
        if (c100) { p[1] = (uint8_t)((i * 7) % 100); p[0] = p[1] / 5; p += 2; }
        else { p[0] = (uint8_t)(i % 10); p += 1; }
        if (r == 0 && bad_label >= 0) p[-1] = (uint8_t)bad_label;
        for (int k = 0; k < CIFAR_IMG; k++) p[k] = cpix(i, k);
    }
    char *path = tu_write(tmp, name, b, len);
    free(b);
    return path;
}

static void write_cifar10_train(void) {
    const int recs[5] = {3, 2, 3, 1, 2};
    for (int f = 0, first = 0; f < 5; first += recs[f], f++) {
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", f + 1);
        free(write_cifar(name, 0, first, recs[f], -1, 0));
    }
}

static void check_cifar_set(const ImageSet *s, int c100, int n) {
    cr_assert_eq(s->n, n);
    cr_assert_eq(s->c, 3);
    cr_assert_eq(s->h, 32);
    cr_assert_eq(s->w, 32);
    cr_assert_eq(s->num_classes, c100 ? 100 : 10);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(s->labels[i], c100 ? (i * 7) % 100 : i % 10, "label %d", i);
        for (int k = 0; k < CIFAR_IMG; k++)
            cr_assert_eq(s->pixels[(size_t)i * CIFAR_IMG + k], cpix(i, k), "pixel %d,%d", i, k);
    }
}

Test(datasets, cifar10_train_and_test) {
    write_cifar10_train();
    free(write_cifar("test_batch.bin", 0, 0, 4, -1, 0));
    ImageSet s; Err err = {0};
    cr_assert_eq(cifar_load(tmp, 10, 1, &s, &err), 0, "%s", err.msg);
    check_cifar_set(&s, 0, 11);   /* 3+2+3+1+2, in file order */
    cr_assert_str_eq(s.name, "cifar10");
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2470f, 0.2435f, 0.2616f};
    for (int c = 0; c < 3; c++) {
        cr_assert_float_eq(s.mean[c], mean[c], 1e-7);
        cr_assert_float_eq(s.std[c], std[c], 1e-7);
    }
    imageset_free(&s);
    cr_assert_eq(cifar_load(tmp, 10, 0, &s, &err), 0, "%s", err.msg);
    check_cifar_set(&s, 0, 4);
    imageset_free(&s);
}

Test(datasets, cifar100_fine_labels_and_env) {
    free(write_cifar("train.bin", 1, 0, 6, -1, 0));
    free(write_cifar("test.bin", 1, 0, 2, -1, 0));
    ImageSet s; Err err = {0};
    cr_assert_eq(cifar_load(tmp, 100, 1, &s, &err), 0, "%s", err.msg);
    check_cifar_set(&s, 1, 6);
    cr_assert_str_eq(s.name, "cifar100");
    cr_assert_float_eq(s.mean[2], 0.4409f, 1e-7);
    cr_assert_float_eq(s.std[0], 0.2673f, 1e-7);
    imageset_free(&s);
    setenv("EWA_CIFAR100_DIR", tmp, 1);
    cr_assert_eq(cifar_load(NULL, 100, 0, &s, &err), 0, "%s", err.msg);
    check_cifar_set(&s, 1, 2);
    imageset_free(&s);
}

static void expect_cifar_fail(int classes, int train, int code, const char *path,
                              const char *what) {
    ImageSet s; Err err = {0};
    int rc = cifar_load(tmp, classes, train, &s, &err);
    ASSERT_FAILS(rc, err, code, path, what);
    cr_assert_null(s.pixels);
    cr_assert_null(s.labels);
}

Test(datasets, cifar_missing_file) {
    write_cifar10_train();
    char *p = tu_path(tmp, "data_batch_3.bin");
    cr_assert_eq(unlink(p), 0);
    expect_cifar_fail(10, 1, ERR_RUNTIME, p, "cannot open: No such file or directory");
    free(p);
    p = tu_path(tmp, "test.bin");
    expect_cifar_fail(100, 0, ERR_RUNTIME, p, "cannot open");
    free(p);
}

Test(datasets, cifar_bad_size) {
    write_cifar10_train();
    char *p = write_cifar("data_batch_5.bin", 0, 9, 2, -1, 100);
    expect_cifar_fail(10, 1, ERR_RUNTIME, p,
                      "size 6246 bytes is not a multiple of the 3073-byte record size");
    free(p);
    /* a CIFAR-10 file read as CIFAR-100 (3 records of 3073 = 9219, not k*3074) */
    p = write_cifar("train.bin", 0, 0, 3, -1, 0);
    expect_cifar_fail(100, 1, ERR_RUNTIME, p, "not a multiple of the 3074-byte record size");
    free(p);
    p = write_cifar("test_batch.bin", 0, 0, 0, -1, 0);
    expect_cifar_fail(10, 0, ERR_RUNTIME, p, "empty file");
    free(p);
}

Test(datasets, cifar_label_out_of_range) {
    write_cifar10_train();
    char *p = write_cifar("data_batch_4.bin", 0, 8, 1, 10, 0);
    expect_cifar_fail(10, 1, ERR_RUNTIME, p, "record 0: label 10 out of range [0, 10)");
    free(p);
    p = write_cifar("train.bin", 1, 0, 3, 100, 0);
    expect_cifar_fail(100, 1, ERR_RUNTIME, p, "record 0: label 100 out of range [0, 100)");
    free(p);
}

Test(datasets, cifar_bad_arguments) {
    expect_cifar_fail(20, 1, ERR_USAGE, "cifar_load", "num_classes 20");
    unsetenv("EWA_CIFAR10_DIR");
    ImageSet s; Err err = {0};
    cr_assert_eq(cifar_load(NULL, 10, 1, &s, &err), ERR_USAGE);
    cr_assert(strstr(err.msg, "EWA_CIFAR10_DIR"), "%s", err.msg);
}

/* ---- subsets and class ranges --------------------------------------------- */

/* In-memory set: n images of c x h x w; image i has every pixel (i % 256) in
 * channel 0 and label lab(i). Unbalanced: class k has roughly 2k+3 images. */
static ImageSet mem_set(int n, int c, int h, int w, int classes) {
    ImageSet s = {0};
    snprintf(s.name, sizeof s.name, "mem");
    s.n = n; s.c = c; s.h = h; s.w = w; s.num_classes = classes;
    s.pixels = malloc((size_t)n * c * h * w);
    s.labels = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) {
        s.labels[i] = (int)((unsigned)(i * 2654435761u) >> 8) % classes;
        for (int k = 0; k < c * h * w; k++)
            s.pixels[(size_t)i * c * h * w + k] = (uint8_t)(k < h * w ? i : i * 3 + k);
    }
    for (int ch = 0; ch < 3; ch++) { s.mean[ch] = 0.5f; s.std[ch] = 0.25f; }
    return s;
}

/* Original index of each image of a subset (pixels of image i start with i). */
static void subset_origins(const ImageSet *sub, int *orig) {
    size_t ib = (size_t)sub->c * sub->h * sub->w;
    for (int i = 0; i < sub->n; i++) orig[i] = sub->pixels[(size_t)i * ib];
}

Test(datasets, subset_balanced_counts_and_seeds) {
    ImageSet s = mem_set(200, 1, 4, 4, 10);
    int cls[10] = {0};
    for (int i = 0; i < s.n; i++) cls[s.labels[i]]++;
    int minc = 1000;
    for (int k = 0; k < 10; k++) minc = cls[k] < minc ? cls[k] : minc;
    cr_assert(minc >= 6, "fixture class sizes too small: %d", minc);
    ImageSet a, b, c; Err err = {0};
    cr_assert_eq(imageset_subset_balanced(&s, 53, 7, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(a.n, 53);
    cr_assert_eq(a.num_classes, 10);
    int got[10] = {0};
    for (int i = 0; i < a.n; i++) got[a.labels[i]]++;
    for (int k = 0; k < 10; k++) cr_assert_eq(got[k], k < 3 ? 6 : 5, "class %d: %d", k, got[k]);
    int oa[53], ob[53], oc[53];
    subset_origins(&a, oa);
    for (int i = 0; i < a.n; i++) {
        cr_assert_eq(a.labels[i], s.labels[oa[i]], "label carried with its image");
        if (i) cr_assert_lt(oa[i - 1], oa[i], "original order kept, no duplicates");
    }
    cr_assert_eq(imageset_subset_balanced(&s, 53, 7, &b, &err), 0);
    subset_origins(&b, ob);
    cr_assert_arr_eq(oa, ob, sizeof oa, "same seed, same subset");
    cr_assert_eq(imageset_subset_balanced(&s, 53, 8, &c, &err), 0);
    subset_origins(&c, oc);
    cr_assert(memcmp(oa, oc, sizeof oa) != 0, "another seed, another subset");
    imageset_free(&a); imageset_free(&b); imageset_free(&c);
    /* a class with too few images, and sizes out of range */
    int rc = imageset_subset_balanced(&s, 10 * (minc + 1), 1, &a, &err);
    cr_assert_eq(rc, ERR_USAGE);
    cr_assert(strstr(err.msg, "only") && strstr(err.msg, "mem"), "%s", err.msg);
    cr_assert_null(a.pixels);
    cr_assert_eq(imageset_subset_balanced(&s, 0, 1, &a, &err), ERR_USAGE);
    cr_assert_eq(imageset_subset_balanced(&s, 201, 1, &a, &err), ERR_USAGE);
    /* the whole set is a valid "subset" */
    ImageSet all;
    cr_assert_eq(imageset_subset_balanced(&s, 10 * minc, 3, &all, &err), 0, "%s", err.msg);
    imageset_free(&all);
    imageset_free(&s);
    imageset_free(&s);   /* safe twice */
}

Test(datasets, class_range_relabels) {
    ImageSet s = mem_set(100, 1, 3, 3, 10);
    ImageSet r; Err err = {0};
    cr_assert_eq(imageset_class_range(&s, 5, 9, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(r.num_classes, 5);
    int expect = 0;
    for (int i = 0; i < s.n; i++) expect += s.labels[i] >= 5;
    cr_assert_eq(r.n, expect);
    int *orig = malloc((size_t)r.n * sizeof(int));
    subset_origins(&r, orig);
    for (int i = 0; i < r.n; i++) {
        cr_assert(r.labels[i] >= 0 && r.labels[i] < 5);
        cr_assert_eq(r.labels[i], s.labels[orig[i]] - 5);
    }
    free(orig);
    imageset_free(&r);
    cr_assert_eq(imageset_class_range(&s, 0, 4, &r, &err), 0);
    for (int i = 0; i < r.n; i++) cr_assert_lt(r.labels[i], 5);
    cr_assert_eq(r.n, s.n - expect);
    imageset_free(&r);
    cr_assert_eq(imageset_class_range(&s, 3, 10, &r, &err), ERR_USAGE);
    cr_assert(strstr(err.msg, "[3, 10]"), "%s", err.msg);
    cr_assert_eq(imageset_class_range(&s, 4, 3, &r, &err), ERR_USAGE);
    cr_assert_eq(imageset_class_range(&s, -1, 3, &r, &err), ERR_USAGE);
    cr_assert_null(r.pixels);
    imageset_free(&s);
}

/* ---- batches --------------------------------------------------------------- */

/* 3-channel 5x6 set with distinct per-channel mean/std. */
static ImageSet rgb_set(void) {
    ImageSet s = mem_set(8, 3, 5, 6, 4);
    s.mean[0] = 0.1f; s.mean[1] = 0.5f; s.mean[2] = 0.9f;
    s.std[0] = 0.2f; s.std[1] = 0.3f; s.std[2] = 0.4f;
    for (size_t k = 0; k < (size_t)8 * 90; k++) s.pixels[k] = (uint8_t)(k * 37 + 11);
    return s;
}

static float norm(const ImageSet *s, int ch, int p) {
    return ((float)p / 255.0f - s->mean[ch]) / s->std[ch];
}

Test(datasets, batch_normalisation) {
    ImageSet s = rgb_set();
    int idx[3] = {5, 0, 7}, y[3];
    float x[3 * 90];
    imageset_batch(&s, idx, 3, NULL, NULL, x, y);
    for (int b = 0; b < 3; b++) {
        cr_assert_eq(y[b], s.labels[idx[b]]);
        for (int k = 0; k < 90; k++) {
            int p = s.pixels[(size_t)idx[b] * 90 + k];
            cr_assert_float_eq(x[b * 90 + k], norm(&s, k / 30, p), 1e-5, "b %d k %d", b, k);
        }
    }
    /* spot values: 0 -> -mean/std, 255 -> (1-mean)/std */
    cr_assert_float_eq(norm(&s, 2, 0), -0.9f / 0.4f, 1e-5);
    cr_assert_float_eq(norm(&s, 0, 255), 0.9f / 0.2f, 1e-5);
    imageset_free(&s);
}

Test(datasets, batch_no_aug_equals_zero_aug) {
    ImageSet s = rgb_set();
    int idx[4] = {1, 2, 3, 1};
    float a[4 * 90], b[4 * 90];
    int ya[4], yb[4];
    Rng r;
    rng_seed(&r, 42);
    Augment2D off = {0, 0};
    imageset_batch(&s, idx, 4, NULL, &r, a, ya);
    imageset_batch(&s, idx, 4, &off, &r, b, yb);
    cr_assert_arr_eq(a, b, sizeof a);
    cr_assert_arr_eq(ya, yb, sizeof ya);
    imageset_free(&s);
}

Test(datasets, batch_hflip_mirrors) {
    ImageSet s = rgb_set();
    enum { B = 64 };
    int idx[B];
    for (int i = 0; i < B; i++) idx[i] = i % 8;
    float *x = malloc(sizeof(float) * B * 90), ref[90];
    Rng r;
    rng_seed(&r, 3);
    Augment2D aug = {0, 1};
    imageset_batch(&s, idx, B, &aug, &r, x, NULL);
    int flipped = 0;
    for (int b = 0; b < B; b++) {
        imageset_batch(&s, &idx[b], 1, NULL, NULL, ref, NULL);
        int same = memcmp(x + b * 90, ref, sizeof ref) == 0, mirror = 1;
        for (int ch = 0; ch < 3; ch++)
            for (int yy = 0; yy < 5; yy++)
                for (int xx = 0; xx < 6; xx++)
                    mirror &= x[b * 90 + ch * 30 + yy * 6 + xx] == ref[ch * 30 + yy * 6 + 5 - xx];
        cr_assert(same || mirror, "image %d neither original nor mirrored", b);
        flipped += mirror && !same;
    }
    cr_assert(flipped >= 16 && flipped <= 48, "flipped %d of %d", flipped, B);
    free(x);
    imageset_free(&s);
}

Test(datasets, batch_crop_shifts_with_zero_padding) {
    ImageSet s = rgb_set();
    enum { B = 40, P = 2 };
    int idx[B];
    for (int i = 0; i < B; i++) idx[i] = i % 8;
    float *x = malloc(sizeof(float) * B * 90);
    Rng r;
    rng_seed(&r, 11);
    Augment2D aug = {P, 0};
    imageset_batch(&s, idx, B, &aug, &r, x, NULL);
    int shifted_x = 0, shifted_y = 0;
    for (int b = 0; b < B; b++) {
        const uint8_t *src = s.pixels + (size_t)idx[b] * 90;
        int found = 0;
        for (int oy = -P; oy <= P && !found; oy++)
            for (int ox = -P; ox <= P && !found; ox++) {
                int ok = 1;
                for (int ch = 0; ch < 3 && ok; ch++)
                    for (int yy = 0; yy < 5 && ok; yy++)
                        for (int xx = 0; xx < 6 && ok; xx++) {
                            int sy = yy + oy, sx = xx + ox;
                            int p = sy >= 0 && sy < 5 && sx >= 0 && sx < 6 ? src[ch * 30 + sy * 6 + sx] : 0;
                            ok = fabsf(x[b * 90 + ch * 30 + yy * 6 + xx] - norm(&s, ch, p)) < 1e-5f;
                        }
                if (ok) { found = 1; shifted_x += ox != 0; shifted_y += oy != 0; }
            }
        cr_assert(found, "image %d is no zero-padded shift within %d", b, P);
    }
    /* 4 of 5 draws per axis are non-zero */
    cr_assert(shifted_x > B / 2 && shifted_y > B / 2, "shifted x %d y %d", shifted_x, shifted_y);
    free(x);
    imageset_free(&s);
}

Test(datasets, batch_deterministic_across_seeds_and_threads) {
    ImageSet s = rgb_set();
    enum { B = 32 };
    int idx[B];
    for (int i = 0; i < B; i++) idx[i] = (i * 5) % 8;
    float *a = malloc(sizeof(float) * B * 90), *b = malloc(sizeof(float) * B * 90);
    Augment2D aug = {2, 1};
    Rng r1, r2;
    omp_set_num_threads(1);
    rng_seed(&r1, 99);
    imageset_batch(&s, idx, B, &aug, &r1, a, NULL);
    omp_set_num_threads(4);
    rng_seed(&r2, 99);
    imageset_batch(&s, idx, B, &aug, &r2, b, NULL);
    cr_assert_arr_eq(a, b, sizeof(float) * B * 90, "same seed, different thread counts");
    cr_assert_arr_eq(r1.s, r2.s, sizeof r1.s, "same rng consumption");
    rng_seed(&r2, 100);
    imageset_batch(&s, idx, B, &aug, &r2, b, NULL);
    cr_assert(memcmp(a, b, sizeof(float) * B * 90) != 0, "another seed differs");
    free(a); free(b);
    imageset_free(&s);
}

/* ---- the real Fashion-MNIST test set, when installed ----------------------- */

Test(datasets, real_fashion_mnist_test_set) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char *p = tu_path(dir, "t10k-images-idx3-ubyte.gz");
    int have = access(p, R_OK) == 0;
    free(p);
    if (!have) cr_skip_test("%s not installed", dir);
    ImageSet s; Err err = {0};
    cr_assert_eq(fmnist_load(dir, 0, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(s.n, 10000);
    cr_assert_eq(s.c, 1);
    cr_assert_eq(s.h, 28);
    cr_assert_eq(s.w, 28);
    int cls[10] = {0};
    for (int i = 0; i < s.n; i++) {
        cr_assert(s.labels[i] >= 0 && s.labels[i] < 10);
        cls[s.labels[i]]++;
    }
    for (int k = 0; k < 10; k++) cr_assert(cls[k] >= 900 && cls[k] <= 1100, "class %d: %d", k, cls[k]);
    double sum = 0;
    for (size_t k = 0; k < (size_t)s.n * 784; k++) sum += s.pixels[k];
    double mean = sum / ((double)s.n * 784 * 255);
    cr_assert(fabs(mean - 0.2860) < 0.01, "pixel mean %f", mean);
    imageset_free(&s);
}
