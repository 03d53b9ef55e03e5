#include "data.h"
#include "../core/fsutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- images ---- */

static int load_images(const RunConfig *cfg, int train, ImageSet *out, Err *err) {
    if (!strcmp(cfg->dataset, "fashion-mnist")) return fmnist_load(cfg->dir, train, out, err);
    if (!strcmp(cfg->dataset, "cifar10")) return cifar_load(cfg->dir, 10, train, out, err);
    if (!strcmp(cfg->dataset, "cifar100")) return cifar_load(cfg->dir, 100, train, out, err);
    return err_set(err, ERR_USAGE, "data.dataset = %s is not an image dataset", cfg->dataset);
}

/* Applies data.classes = "LO-HI" in place. */
static int apply_classes(const RunConfig *cfg, ImageSet *s, Err *err) {
    if (!strcmp(cfg->classes, "all")) return 0;
    int lo, hi;
    if (sscanf(cfg->classes, "%d-%d", &lo, &hi) != 2)
        return err_set(err, ERR_USAGE, "data.classes = %s: expected all or LO-HI", cfg->classes);
    if (hi >= s->num_classes)
        return err_set(err, ERR_USAGE, "data.classes = %s: %s has only %d classes", cfg->classes,
                       s->name, s->num_classes);
    ImageSet sub;
    int rc = imageset_class_range(s, lo, hi, &sub, err);
    if (rc) return rc;
    imageset_free(s);
    *s = sub;
    return 0;
}

/* Every class of a split has at least one sample (labels in [0, K)). */
static int check_classes(const char *source, const int *labels, int n, int K,
                         char *const *class_names, Err *err) {
    int *count = calloc((size_t)K, sizeof *count);
    if (!count) return err_set(err, ERR_RUNTIME, "%s: out of memory", source);
    for (int i = 0; i < n; i++) count[labels[i]]++;
    int k = 0, missing = 0;
    for (int j = K - 1; j >= 0; j--)
        if (!count[j]) { k = j; missing++; }
    free(count);
    if (!missing) return 0;
    if (class_names)
        return err_set(err, ERR_RUNTIME, "%s: %d of the %d classes have no samples (first: "
                       "class %d '%s')", source, missing, K, k, class_names[k]);
    return err_set(err, ERR_RUNTIME, "%s: %d of the %d classes have no samples (first: class %d)",
                   source, missing, K, k);
}

/* Two splits of one dataset must agree in sample shape and classes. */
static int check_images_agree(const ImageSet *a, const ImageSet *b, Err *err) {
    if (a->c != b->c || a->h != b->h || a->w != b->w)
        return err_set(err, ERR_RUNTIME, "splits disagree in image shape: %s has %dx%dx%d "
                       "(CxHxW) images, %s has %dx%dx%d", a->source, a->c, a->h, a->w, b->source,
                       b->c, b->h, b->w);
    if (a->num_classes != b->num_classes)
        return err_set(err, ERR_RUNTIME, "splits disagree in class count: %s has %d classes, "
                       "%s has %d", a->source, a->num_classes, b->source, b->num_classes);
    return 0;
}

static int check_points_agree(const PointSet *a, const PointSet *b, Err *err) {
    if (a->P != b->P)
        return err_set(err, ERR_RUNTIME, "splits disagree in points per cloud: %s has %d, %s has %d",
                       a->source, a->P, b->source, b->P);
    if (a->num_classes != b->num_classes)
        return err_set(err, ERR_RUNTIME, "splits disagree in class count: %s has %d classes, "
                       "%s has %d", a->source, a->num_classes, b->source, b->num_classes);
    for (int k = 0; k < a->num_classes; k++)
        if (strcmp(a->class_names[k], b->class_names[k]))
            return err_set(err, ERR_RUNTIME, "splits disagree in class %d: '%s' in %s, '%s' in %s",
                           k, a->class_names[k], a->source, b->class_names[k], b->source);
    return 0;
}

/* ---- validation split (issue 10) ---- */

int data_val_size(const RunConfig *cfg, int n_train_full) {
    if (cfg->val_size >= 0) return cfg->val_size;
    if (!strcmp(cfg->dataset, "fashion-mnist") || !strcmp(cfg->dataset, "shapes3d"))
        return (n_train_full + 5) / 10;
    return 0;
}

/* The validation split's seed: a stream of the run seed of its own. */
static uint64_t val_seed(const RunConfig *cfg) { return cfg->seed ^ 0x76616c5f73706c74ull; }

/* The candidates for validation: the samples not in the training subset
 * (in_sub ascending, n_sub of them; NULL = no subset). cand gets them
 * ascending, *nc their count. */
static void val_candidates(int n, const int *in_sub, int n_sub, int *cand, int *nc) {
    *nc = 0;
    for (int i = 0, j = 0; i < n; i++) {
        if (in_sub && j < n_sub && in_sub[j] == i) { j++; continue; }
        cand[(*nc)++] = i;
    }
}

/* Splits `labels` (n samples, K classes) into a validation choice val_sel
 * (n_val, class-balanced, drawn from the samples outside the training
 * subset) and the training selection train_sel (the subset, or every other
 * sample when there is none). */
static int val_split_indices(const RunConfig *cfg, const int *labels, int n, int K, const char *source,
                             const int *in_sub, int n_sub, int n_val, int *val_sel, int *train_sel,
                             int *n_train, Err *err) {
    int *cand = malloc(sizeof(int) * (size_t)(n + 1)), *clab = malloc(sizeof(int) * (size_t)(n + 1)), nc;
    int *pick = malloc(sizeof(int) * (size_t)(n_val + 1));
    int rc = !cand || !clab || !pick ? err_set(err, ERR_RUNTIME, "out of memory") : 0;
    if (!rc) {
        val_candidates(n, in_sub, n_sub, cand, &nc);
        for (int i = 0; i < nc; i++) clab[i] = labels[cand[i]];
        if (n_val > nc)
            rc = err_set(err, ERR_USAGE, "data.val_size = %d exceeds the %d training samples %s",
                         n_val, nc, in_sub ? "outside data.train_subset" : "available");
        else if (n_val > 0 && n_val < K)
            rc = err_set(err, ERR_USAGE, "data.val_size = %d is smaller than the %d classes", n_val, K);
        else if (n_val > 0)
            rc = labels_pick_balanced(clab, nc, K, source, n_val, val_seed(cfg), pick, err);
    }
    if (!rc) {
        for (int i = 0; i < n_val; i++) val_sel[i] = cand[pick[i]];
        *n_train = 0;
        if (in_sub) {
            memcpy(train_sel, in_sub, sizeof(int) * (size_t)n_sub);
            *n_train = n_sub;
        } else {
            for (int i = 0, j = 0; i < n; i++) {
                if (j < n_val && val_sel[j] == i) { j++; continue; }
                train_sel[(*n_train)++] = i;
            }
        }
    }
    free(cand); free(clab); free(pick);
    return rc;
}

/* The training set the validation split leaves (no data.train_subset: the
 * rest of the split) must still hold every class (issue 11.8). */
static int check_train_left(const RunConfig *cfg, const char *source, const int *labels, int n, int K,
                            char *const *names, Err *err) {
    Err e;
    if (!check_classes(source, labels, n, K, names, &e)) return 0;
    return err_set(err, ERR_USAGE, "data.val_size = %d leaves %d training samples: %s", cfg->val_size, n, e.msg);
}

static int split_images(const RunConfig *cfg, ImageSet *train, const int *in_sub, int n_sub, int n_val,
                        ImageSet *val, Err *err) {
    int *vs = malloc(sizeof(int) * (size_t)(n_val + 1)), *ts = malloc(sizeof(int) * (size_t)(train->n + 1)), nt = 0;
    int rc = !vs || !ts ? err_set(err, ERR_RUNTIME, "out of memory") : 0;
    if (!rc) rc = val_split_indices(cfg, train->labels, train->n, train->num_classes, train->source, in_sub,
                                    n_sub, val ? n_val : 0, vs, ts, &nt, err);
    if (!rc && val && n_val > 0) rc = imageset_gather(train, vs, n_val, val, err);
    ImageSet rest;
    if (!rc && nt != train->n) {
        rc = imageset_gather(train, ts, nt, &rest, err);
        if (!rc) { imageset_free(train); *train = rest; }
    }
    if (!rc && !in_sub) rc = check_train_left(cfg, train->source, train->labels, train->n, train->num_classes, NULL, err);
    free(vs); free(ts);
    return rc;
}

static int pointset_gather(const PointSet *in, const int *sel, int n, PointSet *out, Err *err) {
    memset(out, 0, sizeof *out);
    *out = *in;
    out->n = n;
    out->xyz = malloc(sizeof(float) * (size_t)n * in->P * 3 + 1);
    out->labels = malloc(sizeof(int) * (size_t)n + 1);
    out->class_names = calloc((size_t)in->num_classes, sizeof(char *));
    if (!out->xyz || !out->labels || !out->class_names) {
        free(out->xyz); free(out->labels); free(out->class_names);
        memset(out, 0, sizeof *out);
        return err_set(err, ERR_RUNTIME, "%s: out of memory", in->name);
    }
    size_t per = (size_t)in->P * 3;
    for (int i = 0; i < n; i++) {
        memcpy(out->xyz + i * per, in->xyz + (size_t)sel[i] * per, per * sizeof(float));
        out->labels[i] = in->labels[sel[i]];
    }
    for (int k = 0; k < in->num_classes; k++) out->class_names[k] = strdup(in->class_names[k]);
    return 0;
}

static int split_points(const RunConfig *cfg, PointSet *train, PointSet *val, Err *err) {
    int n_val = data_val_size(cfg, train->n);
    if (!val || n_val == 0) return 0;
    int *vs = malloc(sizeof(int) * (size_t)(n_val + 1)), *ts = malloc(sizeof(int) * (size_t)(train->n + 1)), nt = 0;
    int rc = !vs || !ts ? err_set(err, ERR_RUNTIME, "out of memory") : 0;
    if (!rc) rc = val_split_indices(cfg, train->labels, train->n, train->num_classes, train->source, NULL, 0,
                                    n_val, vs, ts, &nt, err);
    if (!rc) rc = pointset_gather(train, vs, n_val, val, err);
    PointSet rest;
    if (!rc) rc = pointset_gather(train, ts, nt, &rest, err);
    if (!rc) { pointset_free(train); *train = rest; }
    if (!rc) rc = check_train_left(cfg, train->source, train->labels, train->n, train->num_classes,
                                   train->class_names, err);
    free(vs); free(ts);
    return rc;
}

static int open_images(const RunConfig *cfg, ImageSet *train, ImageSet *val, ImageSet *test, Err *err) {
    int rc = load_images(cfg, 1, train, err);
    if (!rc) rc = load_images(cfg, 0, test, err);
    if (!rc) rc = check_images_agree(train, test, err);
    if (!rc) rc = apply_classes(cfg, train, err);
    if (!rc) rc = apply_classes(cfg, test, err);
    if (!rc) rc = check_classes(train->source, train->labels, train->n, train->num_classes, NULL, err);
    if (!rc) rc = check_classes(test->source, test->labels, test->n, test->num_classes, NULL, err);
    if (!rc && cfg->train_subset > 0 && cfg->train_subset < train->num_classes)
        fprintf(stderr, "warning: data.train_subset = %d is smaller than the %d classes: "
                "%d classes get no training image\n", cfg->train_subset, train->num_classes,
                train->num_classes - cfg->train_subset);
    int full = train->n, *in_sub = NULL;
    if (!rc && cfg->train_subset > 0) {
        if (cfg->train_subset > train->n)
            rc = err_set(err, ERR_USAGE, "data.train_subset = %d exceeds the %d training images",
                         cfg->train_subset, train->n);
        else if (!(in_sub = malloc(sizeof(int) * (size_t)cfg->train_subset)))
            rc = err_set(err, ERR_RUNTIME, "out of memory");
        else
            rc = labels_pick_balanced(train->labels, train->n, train->num_classes, train->source,
                                      cfg->train_subset, cfg->seed, in_sub, err);
    }
    int n_val = data_val_size(cfg, full);
    if (!rc && (val || !in_sub)) rc = split_images(cfg, train, in_sub, cfg->train_subset, n_val, val, err);
    else if (!rc) {   /* eval: the subset alone */
        ImageSet sub;
        rc = imageset_gather(train, in_sub, cfg->train_subset, &sub, err);
        if (!rc) { imageset_free(train); *train = sub; }
    }
    free(in_sub);
    return rc;
}

/* ---- the run record's data identity ---- */

/* shapes3d's generator seed: the dataset, not the run, defines it. */
enum { SHAPES3D_SEED = 3517 };

static int data_files(const RunConfig *cfg, int train, DataFiles *f, Err *err) {
    if (!strcmp(cfg->dataset, "fashion-mnist")) return fmnist_files(cfg->dir, train, f, err);
    if (!strcmp(cfg->dataset, "cifar10")) return cifar_files(cfg->dir, 10, train, f, err);
    if (!strcmp(cfg->dataset, "cifar100")) return cifar_files(cfg->dir, 100, train, f, err);
    return modelnet40_files(cfg->dir, train, f, err);
}

/* Appends "name=hex" of each file of f to buf (used bytes *len). */
static int append_sums(const DataFiles *f, char *buf, size_t n, size_t *len, Err *err) {
    for (int i = 0; i < f->n; i++) {
        char hex[65];
        if (fs_sha256_file(f->path[i], hex, err)) return ERR_RUNTIME;
        const char *slash = strrchr(f->path[i], '/');
        int k = snprintf(buf + *len, n - *len, "%s%s=%s", *len ? ";" : "", slash ? slash + 1 : f->path[i], hex);
        if (k < 0 || (size_t)k >= n - *len)
            return err_set(err, ERR_USAGE, "data_sha256: %zu bytes do not hold the checksums", n);
        *len += (size_t)k;
    }
    return 0;
}

int data_sha256(const RunConfig *cfg, char *buf, size_t n, Err *err) {
    buf[0] = '\0';
    if (!strcmp(cfg->dataset, "shapes3d")) {
        snprintf(buf, n, "shapes3d generator v%d seed %d: %d train and %d test clouds of %d points",
                 SHAPES3D_GENERATOR_VERSION, SHAPES3D_SEED, cfg->train_size, cfg->test_size, cfg->points);
        return 0;
    }
    DataFiles *f = malloc(sizeof *f);
    if (!f) return err_set(err, ERR_RUNTIME, "data_sha256: out of memory");
    size_t len = 0;
    int rc = data_files(cfg, 1, f, err);
    if (!rc) rc = append_sums(f, buf, n, &len, err);
    if (!rc) rc = data_files(cfg, 0, f, err);
    if (!rc) rc = append_sums(f, buf, n, &len, err);
    free(f);
    return rc;
}

/* ---- point clouds ---- */

static int open_points(const RunConfig *cfg, PointSet *train, PointSet *val, PointSet *test, Err *err) {
    int rc;   /* data.classes and data.train_subset are refused for 3D by config_validate */
    if (!strcmp(cfg->dataset, "shapes3d")) {
        /* cloud i has class i % 14: fewer clouds leave classes empty */
        if (cfg->train_size < SHAPES3D_NUM_CLASSES || cfg->test_size < SHAPES3D_NUM_CLASSES)
            return err_set(err, ERR_USAGE, "data.train_size = %d, data.test_size = %d: shapes3d "
                           "has %d classes, each split needs at least one cloud of each",
                           cfg->train_size, cfg->test_size, SHAPES3D_NUM_CLASSES);
        rc = shapes3d_generate(cfg->train_size, cfg->points, SHAPES3D_SEED, 1, train, err);
        if (!rc) rc = shapes3d_generate(cfg->test_size, cfg->points, SHAPES3D_SEED, 0, test, err);
    } else {
        if (!cfg->dir[0])
            return err_set(err, ERR_USAGE, "data.dataset = modelnet40 needs data.dir (the modelnet40_normal_resampled directory)");
        rc = modelnet40_load(cfg->dir, 1, cfg->points, PN_SAMPLE_FIRST, cfg->seed, train, err);
        if (!rc) rc = modelnet40_load(cfg->dir, 0, cfg->points, PN_SAMPLE_FIRST, cfg->seed, test, err);
    }
    if (!rc) rc = check_points_agree(train, test, err);
    if (!rc) rc = check_classes(train->source, train->labels, train->n, train->num_classes,
                                train->class_names, err);
    if (!rc) rc = check_classes(test->source, test->labels, test->n, test->num_classes,
                                test->class_names, err);
    if (!rc) rc = split_points(cfg, train, val, err);
    return rc;
}

static void fill_meta(DataSplit *s, const RunConfig *cfg) {
    s->is_points = config_is_points(cfg);
    s->n = s->is_points ? s->pts.n : s->img.n;
    s->num_classes = s->is_points ? s->pts.num_classes : s->img.num_classes;
    snprintf(s->name, sizeof s->name, "%s", s->is_points ? s->pts.name : s->img.name);
    s->groups = cfg->groups;
    s->group_k = cfg->group_size;
}

int data_open(const RunConfig *cfg, DataSplit *train, DataSplit *val, DataSplit *test, Err *err) {
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (val) memset(val, 0, sizeof *val);
    int points = config_is_points(cfg);
    int rc = points ? open_points(cfg, &train->pts, val ? &val->pts : NULL, &test->pts, err)
                    : open_images(cfg, &train->img, val ? &val->img : NULL, &test->img, err);
    if (rc) {
        data_free(train);
        data_free(test);
        if (val) data_free(val);
        return rc;
    }
    fill_meta(train, cfg);
    fill_meta(test, cfg);
    if (val) {
        fill_meta(val, cfg);
        if (!points && val->img.n) {   /* normalised with the training statistics */
            memcpy(val->img.mean, train->img.mean, sizeof val->img.mean);
            memcpy(val->img.std, train->img.std, sizeof val->img.std);
        }
    }
    return 0;
}

void data_free(DataSplit *s) {
    imageset_free(&s->img);
    pointset_free(&s->pts);
    free(s->scratch);
    memset(s, 0, sizeof *s);
}

size_t data_sample_floats(const DataSplit *s) {
    if (s->is_points) return (size_t)s->groups * 3 * (1 + s->group_k);
    return (size_t)s->img.c * s->img.h * s->img.w;
}

/* 3D augmentation of docs/DESIGN.md 3: scale, translate, rotation about the up
 * axis, jitter. */
static Augment3D augment3d(void) {
    Augment3D a = augment3d_default();
    a.rotate = 3.14159265f;
    a.jitter_sigma = 0.01f;
    a.jitter_clip = 0.05f;
    return a;
}

static int points_batch(DataSplit *s, const int *idx, int B, int augment, Rng *rng, float *x, int *y,
                        Err *err) {
    int P = s->pts.P, G = s->groups, k = s->group_k;
    size_t nc = (size_t)G * 3, np = (size_t)G * k * 3, per = nc + np;
    if (s->scratch_batch < B) {   /* clouds (B,P,3), centres (B,G,3), patches (B,G,k,3) */
        free(s->scratch);
        s->scratch = malloc(sizeof(float) * (size_t)B * ((size_t)P * 3 + per));
        if (!s->scratch) return err_set(err, ERR_RUNTIME, "out of memory for a batch of %d clouds", B);
        s->scratch_batch = B;
    }
    float *clouds = s->scratch, *centers = clouds + (size_t)B * P * 3, *patches = centers + (size_t)B * nc;
    Augment3D aug = augment3d();
    pointset_batch(&s->pts, idx, B, augment ? &aug : NULL, rng, clouds, y);
    int rc = points_group(centers, patches, NULL, NULL, clouds, B, P, G, k, err);
    if (rc) return rc;
    for (int b = 0; b < B; b++) {   /* per sample: [centres | patches] */
        memcpy(x + b * per, centers + b * nc, nc * sizeof(float));
        memcpy(x + b * per + nc, patches + b * np, np * sizeof(float));
    }
    return 0;
}

int data_batch(DataSplit *s, const int *idx, int B, int augment, Rng *rng, float *x, int *y, Err *err) {
    if (s->is_points) return points_batch(s, idx, B, augment, rng, x, y, err);
    Augment2D aug = {.crop_pad = 2, .hflip = 1};
    imageset_batch(&s->img, idx, B, augment ? &aug : NULL, rng, x, y);
    return 0;
}
