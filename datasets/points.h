/* Point-cloud datasets (docs/DESIGN.md 2.9, 3): the procedural shapes3d set, the
 * ModelNet40 (modelnet40_normal_resampled) loader, FPS + kNN grouping and 3D
 * augmentation. Clouds are stored as float xyz, already centred and scaled to
 * the unit sphere; augmentation is applied when a batch is drawn. */
#ifndef EWA_POINTS_H
#define EWA_POINTS_H
#include <stdint.h>
#include <stddef.h>
#include "../core/err.h"
#include "../core/rng.h"
#include "dataset.h"

typedef struct {
    char name[32];        /* "shapes3d", "modelnet40" */
    char source[300];     /* the file (or generator) the set came from, for messages */
    int n_unmatched;      /* ModelNet40: list entries of no class in the names file (skipped) */
    int n;                /* number of clouds */
    int P;                /* points per cloud */
    int num_classes;
    float *xyz;           /* n * P * 3, cloud i at xyz + i*P*3, point j at +3j */
    int *labels;          /* n, in [0, num_classes) */
    char **class_names;   /* num_classes strings (owned) */
} PointSet;

void pointset_free(PointSet *s);

/* Centres the cloud (P points, xyz interleaved) on its mean and scales it so
 * the largest distance from the centre is 1 (a single point, or all points
 * equal, is only centred). */
void points_normalize(float *xyz, int P);

/* ---- shapes3d (shapes3d.c, documented in SHAPES3D.md; synthetic) ---- */

enum { SHAPES3D_NUM_CLASSES = 14 };
/* The generator's version, named in the run record in place of file
 * checksums: bump it whenever shapes3d_generate's output for the same
 * arguments changes. */
enum { SHAPES3D_GENERATOR_VERSION = 1 };

/* Name of class k of shapes3d, or NULL if k is out of range. */
const char *shapes3d_class_name(int k);

/* Generates n clouds of P points: cloud i has label i % 14 and is drawn from
 * its own random stream derived from (seed, split, i), so the set depends only
 * on (seed, split, n, P) and not on the thread count; train (split=1) and
 * test (split=0) never share a stream. Errors (ERR_USAGE): n < 1, P < 16. */
int shapes3d_generate(int n, int P, uint64_t seed, int train, PointSet *out, Err *err);

/* ---- ModelNet40 (modelnet40.c) ---- */

typedef enum {
    PN_SAMPLE_FIRST = 0,   /* the first P points of the file (PointNet++ / Point-BERT default) */
    PN_SAMPLE_RANDOM = 1,  /* P distinct points, seeded per shape (seed, list position) */
    PN_SAMPLE_FPS = 2      /* farthest point sampling from point 0 */
} PointSample;

/* Reads dir/modelnet40_shape_names.txt (one class per line; the classes
 * define the labels, in file order, so a trimmed file selects fewer classes),
 * dir/modelnet40_train.txt (train=1) or modelnet40_test.txt (train=0) (one
 * shape id per line, e.g. "night_stand_0012"; the class is the id without its
 * trailing "_<digits>"; ids of classes not in the shape-names file are
 * skipped), and each shape dir/<class>/<id>.txt, lines "x,y,z,nx,ny,nz"
 * parsed with libcsv (normals are checked, then dropped). Keeps P points
 * chosen by `sample`, then normalises each cloud to the unit sphere. Files are
 * parsed in parallel (OpenMP); the first error in list order is reported.
 * Errors (ERR_RUNTIME, "<path>: line N: <problem>"): missing file, empty or
 * duplicate shape names, malformed id, no shapes left, a record without 6
 * fields, a field that is not a finite number, fewer than P points. */
/* The files that define modelnet40_load(dir, train, ...)'s split: the shape
 * names and the split's id list (the per-shape files the ids name are not
 * listed). */
int modelnet40_files(const char *dir, int train, DataFiles *f, Err *err);
int modelnet40_load(const char *dir, int train, int P, PointSample sample, uint64_t seed,
                    PointSet *out, Err *err);

/* ---- grouping (pointgroup.c): preprocessing, no gradients ---- */

/* Farthest point sampling on one cloud xyz (P,3): idx[0] = 0, then each next
 * index is the point whose distance to the chosen set is largest (ties go to
 * the lowest index). 1 <= G <= P. mind: P floats of scratch, or NULL to have
 * fps allocate it. Returns 0, ERR_USAGE for bad sizes, ERR_RUNTIME if out of
 * memory. */
int fps(const float *xyz, int P, int G, int *idx, float *mind);

/* k nearest points (squared Euclidean, ties to the lower index) of the query
 * point q among xyz (P,3), written to idx[0..k) nearest first. k <= P. */
void knn(const float *xyz, int P, const float *q, int k, int *idx);

/* For each of B clouds (B,P,3): G centres by fps (centers (B,G,3)) and, for
 * each centre, its k nearest points relative to the centre (patches
 * (B,G,k,3), nearest first, so patch[...,0,:] is the centre itself, 0).
 * center_idx (B,G) and knn_idx (B,G,k) receive the point indices if non-NULL.
 * OpenMP over clouds. Returns 0, or ERR_USAGE for G > P, k > P or sizes < 1. */
int points_group(float *centers, float *patches, int *center_idx, int *knn_idx,
                 const float *xyz, int B, int P, int G, int k, Err *err);

/* ---- augmentation (points_augment.c) ---- */

typedef struct {
    float scale_lo, scale_hi;   /* per-axis scale uniform in [lo, hi]; both 0 = off */
    float translate;            /* per-axis shift uniform in [-t, t]; 0 = off */
    float rotate;               /* rotation about the up axis y by an angle uniform
                                 * in [-rotate, rotate] radians; 0 = off */
    float jitter_sigma;         /* per-coordinate N(0, sigma) noise ... */
    float jitter_clip;          /* ... clipped to [-clip, clip] (clip 0 = no clip); sigma 0 = off */
} Augment3D;

/* Point-BERT's ModelNet recipe: scale [2/3, 3/2], translate 0.2, no rotation,
 * no jitter. */
Augment3D augment3d_default(void);

/* Augments B clouds (B,P,3) in place. Per cloud, in order: scale, rotate,
 * translate, jitter. One 64-bit seed per cloud is drawn from rng in order, and
 * each cloud then uses its own stream, so the result depends on rng only, not
 * on the thread count. aug NULL or rng NULL: nothing happens. */
void points_augment(float *xyz, int B, int P, const Augment3D *aug, Rng *rng);

/* Copies clouds idx[0..B) into x (B,P,3), their labels into y (if non-NULL),
 * then augments x with aug/rng (either may be NULL: no augmentation). */
void pointset_batch(const PointSet *s, const int *idx, int B, const Augment3D *aug, Rng *rng,
                    float *x, int *y);

#endif
