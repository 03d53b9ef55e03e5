/* Image datasets (docs/DESIGN.md 3): stored as uint8 pixels, normalised and augmented
 * when a batch is drawn. */
#ifndef EWA_DATASET_H
#define EWA_DATASET_H
#include <stdint.h>
#include <stddef.h>
#include "../core/err.h"
#include "../core/rng.h"

typedef struct {
    char name[32];       /* "fashion-mnist", "cifar10", ... */
    char source[300];    /* the file(s) the set was read from, for messages */
    int n;               /* number of images */
    int c, h, w;         /* channels, height, width */
    int num_classes;
    uint8_t *pixels;     /* n * c * h * w, each image CHW */
    int *labels;         /* n, in [0, num_classes) */
    float mean[3], std[3]; /* per-channel normalisation on [0,1] scale */
} ImageSet;

typedef struct {
    int crop_pad;        /* random crop with this much zero padding; 0 = off */
    int hflip;           /* random horizontal flip with p = 0.5 */
} Augment2D;

/* The files a loader reads, named for the run record (experiments/data.c,
 * data_sha256): at most DATA_MAX_FILES paths. */
enum { DATA_MAX_FILES = 8, DATA_PATH_MAX = 4096 };
typedef struct {
    int n;
    char path[DATA_MAX_FILES][DATA_PATH_MAX];
} DataFiles;

/* Reads an IDX image file and an IDX label file (gzip-compressed or plain;
 * zlib's gzread handles both) into out. Errors name the file and problem:
 * wrong magic, truncated, sizes inconsistent between the two files, label out
 * of range. */
int idx_load(const char *images_path, const char *labels_path, ImageSet *out, Err *err);

/* Fashion-MNIST from dir, or if dir is NULL/empty from $EWA_FASHION_MNIST_DIR,
 * else /usr/share/datasets/fashion-mnist. train=1: train-*, else t10k-*.
 * Sets mean/std to 0.2860/0.3530 and name "fashion-mnist". */
int fmnist_load(const char *dir, int train, ImageSet *out, Err *err);
/* The two files fmnist_load(dir, train) reads: images, then labels (dir
 * resolved as there; base.gz, or base when only the uncompressed file exists). */
int fmnist_files(const char *dir, int train, DataFiles *f, Err *err);

/* CIFAR binary version from dir: num_classes 10 reads data_batch_{1..5}.bin /
 * test_batch.bin (1 label byte + 3072 pixel bytes per record); 100 reads
 * train.bin / test.bin (coarse byte, fine byte, 3072 bytes; fine label used).
 * Errors: missing file, size not a multiple of the record size, label out of
 * range. Sets the standard per-channel mean/std. */
int cifar_load(const char *dir, int num_classes, int train, ImageSet *out, Err *err);
/* The files cifar_load(dir, num_classes, train) reads, in reading order (dir
 * resolved as there). */
int cifar_files(const char *dir, int num_classes, int train, DataFiles *f, Err *err);

/* Class-balanced, seeded subset of n_total images (n_total/num_classes per
 * class, the remainder spread over the first classes). Error if a class has
 * too few images. */
int imageset_subset_balanced(const ImageSet *in, int n_total, uint64_t seed,
                             ImageSet *out, Err *err);

/* Keeps only images whose label is in [lo, hi] and relabels them to
 * [0, hi-lo] (transfer protocols: pretrain on 0-4, fine-tune on 5-9). */
/* Class-balanced, seeded choice of n_pick of the n samples with labels in
 * [0, K) (n_pick/K per class, one more for the first n_pick%K classes; one
 * seeded shuffle per class, in class order): sel[0..n_pick) ascending.
 * ERR_USAGE naming `name` when a class has too few samples. */
int labels_pick_balanced(const int *labels, int n, int K, const char *name, int n_pick,
                         uint64_t seed, int *sel, Err *err);

/* out = in's images sel[0..n) in that order. */
int imageset_gather(const ImageSet *in, const int *sel, int n, ImageSet *out, Err *err);

int imageset_class_range(const ImageSet *in, int lo, int hi, ImageSet *out, Err *err);

void imageset_free(ImageSet *s);

/* Writes B images idx[0..B) as normalised floats into x (B*c*h*w, CHW) and
 * their labels into y. aug may be NULL (no augmentation); rng is used only
 * for augmentation. Threaded over images with OpenMP; the random draws are
 * made sequentially first so results do not depend on the thread count. */
void imageset_batch(const ImageSet *s, const int *idx, int B, const Augment2D *aug,
                    Rng *rng, float *x, int *y);

#endif
