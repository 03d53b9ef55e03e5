/* Opens the dataset a config names (docs/DESIGN.md 3) as train and test splits of
 * either images or point clouds, and draws batches in the model's input
 * layout (vit_input_floats): normalised images, or for point clouds the
 * FPS centres and kNN groups (preprocessing without gradients). */
#ifndef EWA_DATA_H
#define EWA_DATA_H
#include "config.h"
#include "../datasets/dataset.h"
#include "../datasets/points.h"

typedef struct {
    int is_points;
    ImageSet img;          /* when !is_points */
    PointSet pts;          /* when is_points */
    int n, num_classes;
    char name[32];
    int groups, group_k;   /* 3D grouping of a batch */
    float *scratch;        /* 3D: raw clouds of one batch (max_batch,P,3) */
    int scratch_batch;
} DataSplit;

/* val (NULL = no validation split, e.g. for eval) gets data_val_size
 * samples held out of the training set (issue 10): class-balanced, from a
 * seed stream of its own, drawn from the training samples data.train_subset
 * does not use (the subset itself is unchanged; without a subset the
 * training split is the rest). val->n = 0 when the size is 0. */
int data_open(const RunConfig *cfg, DataSplit *train, DataSplit *val, DataSplit *test, Err *err);

/* data.val_size resolved: -1 gives 10% (rounded) of the full training set
 * (n_train_full samples, after data.classes) for fashion-mnist and shapes3d,
 * 0 for the others. */
int data_val_size(const RunConfig *cfg, int n_train_full);

/* What identifies the data of cfg's run, for the run record's data_sha256
 * column: "name=<SHA-256 hex>;..." of each file the run reads (train split
 * first, then test; for modelnet40 the shape-name and split lists, not the
 * per-shape files they name), or for the generated shapes3d its generator
 * version and arguments. SHA-256 is fs_sha256_file's (OpenSSL libcrypto, the
 * checkpoint_sha256 column's), chosen over zlib's crc32 so that the values
 * can be compared with published checksums and a changed file cannot pass
 * for the old one. buf: n bytes (600 hold the largest, CIFAR-10's 6 files).
 * ERR_RUNTIME naming the file that cannot be read; ERR_USAGE if buf is short. */
int data_sha256(const RunConfig *cfg, char *buf, size_t n, Err *err);
void data_free(DataSplit *s);

/* Writes B samples idx[0..B) into x (B * data_sample_floats) and their labels
 * into y; augmentation (2D crop+flip, 3D scale/rotate/translate/jitter) when
 * augment is set, drawing from rng. */
int data_batch(DataSplit *s, const int *idx, int B, int augment, Rng *rng, float *x, int *y, Err *err);
size_t data_sample_floats(const DataSplit *s);

#endif
