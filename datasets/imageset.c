/* ImageSet operations: subsets, class ranges, and batch assembly with
 * normalisation and 2D augmentation (docs/DESIGN.md 3). */
#include "dataset.h"
#include <stdlib.h>
#include <string.h>

void imageset_free(ImageSet *s) {
    if (!s) return;
    free(s->pixels);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

static size_t image_bytes(const ImageSet *s) { return (size_t)s->c * s->h * s->w; }

/* Checks the fields a derived set relies on. */
static int check_set(const ImageSet *in, const char *fn, Err *err) {
    if (!in || !in->pixels || !in->labels || in->n <= 0 || in->c <= 0 || in->c > 3 ||
        in->h <= 0 || in->w <= 0 || in->num_classes <= 0)
        return err_set(err, ERR_USAGE, "%s: empty or invalid input set", fn);
    for (int i = 0; i < in->n; i++)
        if (in->labels[i] < 0 || in->labels[i] >= in->num_classes)
            return err_set(err, ERR_USAGE, "%s: %s: label %d at index %d out of range [0, %d)",
                           fn, in->name, in->labels[i], i, in->num_classes);
    return 0;
}

/* out = in's metadata with room for n images; pixels/labels uninitialised. */
static int alloc_like(const ImageSet *in, int n, ImageSet *out, Err *err) {
    *out = *in;
    out->n = n;
    out->pixels = malloc((size_t)n * image_bytes(in));
    out->labels = malloc((size_t)n * sizeof *out->labels);
    if (!out->pixels || !out->labels) {
        imageset_free(out);
        return err_set(err, ERR_RUNTIME, "%s: out of memory for %d images", in->name, n);
    }
    return 0;
}

/* out = in's images sel[0..n) in that order (labels unchanged). */
static int gather(const ImageSet *in, const int *sel, int n, ImageSet *out, Err *err) {
    int rc = alloc_like(in, n, out, err);
    if (rc) return rc;
    size_t ib = image_bytes(in);
    for (int i = 0; i < n; i++) {
        memcpy(out->pixels + (size_t)i * ib, in->pixels + (size_t)sel[i] * ib, ib);
        out->labels[i] = in->labels[sel[i]];
    }
    return 0;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Per-class quota: n_total/K, plus one for the first n_total%K classes. */
static int quota(int n_total, int K, int k) { return n_total / K + (k < n_total % K); }

/* sel[0..n_total) = chosen indices, ascending. start: K+1 ints of scratch,
 * byclass: n ints of scratch (indices grouped by class). */
static int pick_balanced(const int *labels, int n, int K, const char *name, int n_total, uint64_t seed,
                         int *start, int *byclass, int *sel, Err *err) {
    memset(start, 0, (size_t)(K + 1) * sizeof *start);
    for (int i = 0; i < n; i++) start[labels[i] + 1]++;
    for (int k = 0; k < K; k++)
        if (start[k + 1] < quota(n_total, K, k))
            return err_set(err, ERR_USAGE, "%s: balanced subset of %d needs %d samples of "
                           "class %d, only %d available", name, n_total,
                           quota(n_total, K, k), k, start[k + 1]);
    for (int k = 0; k < K; k++) start[k + 1] += start[k];  /* start[k]: first of class k */
    for (int i = 0; i < n; i++) byclass[start[labels[i]]++] = i;
    for (int k = K; k > 0; k--) start[k] = start[k - 1];    /* undo the ++: start[k] again */
    start[0] = 0;
    Rng rng;
    rng_seed(&rng, seed);
    for (int k = 0, m = 0; k < K; k++) {
        int q = quota(n_total, K, k);
        rng_shuffle(&rng, byclass + start[k], (size_t)(start[k + 1] - start[k]));
        memcpy(sel + m, byclass + start[k], (size_t)q * sizeof *sel);
        m += q;
    }
    qsort(sel, (size_t)n_total, sizeof *sel, cmp_int);
    return 0;
}

int labels_pick_balanced(const int *labels, int n, int K, const char *name, int n_pick,
                         uint64_t seed, int *sel, Err *err) {
    if (n_pick <= 0 || n_pick > n)
        return err_set(err, ERR_USAGE, "%s: subset size %d, expected 1..%d", name, n_pick, n);
    int *start = malloc((size_t)(K + 1) * sizeof *start), *byclass = malloc((size_t)n * sizeof *byclass);
    int rc = !start || !byclass ? err_set(err, ERR_RUNTIME, "%s: out of memory", name)
                                : pick_balanced(labels, n, K, name, n_pick, seed, start, byclass, sel, err);
    free(start);
    free(byclass);
    return rc;
}

int imageset_gather(const ImageSet *in, const int *sel, int n, ImageSet *out, Err *err) {
    if (out) memset(out, 0, sizeof *out);
    int rc = check_set(in, "imageset_gather", err);
    return rc ? rc : gather(in, sel, n, out, err);
}

/* Class k gets quota(k) images drawn uniformly without replacement (one
 * seeded shuffle per class, in class order); the chosen images keep their
 * original relative order. */
int imageset_subset_balanced(const ImageSet *in, int n_total, uint64_t seed, ImageSet *out,
                             Err *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!out) return err_set(err, ERR_USAGE, "imageset_subset_balanced: NULL output");
    int rc = check_set(in, "imageset_subset_balanced", err);
    if (rc) return rc;
    if (n_total <= 0 || n_total > in->n)
        return err_set(err, ERR_USAGE, "%s: subset size %d, expected 1..%d", in->name, n_total,
                       in->n);
    int *sel = malloc((size_t)n_total * sizeof *sel);
    if (!sel) return err_set(err, ERR_RUNTIME, "%s: out of memory", in->name);
    rc = labels_pick_balanced(in->labels, in->n, in->num_classes, in->name, n_total, seed, sel, err);
    if (!rc) rc = gather(in, sel, n_total, out, err);
    free(sel);
    return rc;
}

int imageset_class_range(const ImageSet *in, int lo, int hi, ImageSet *out, Err *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!out) return err_set(err, ERR_USAGE, "imageset_class_range: NULL output");
    int rc = check_set(in, "imageset_class_range", err);
    if (rc) return rc;
    if (lo < 0 || hi < lo || hi >= in->num_classes)
        return err_set(err, ERR_USAGE, "%s: class range [%d, %d] invalid for %d classes",
                       in->name, lo, hi, in->num_classes);
    int *sel = malloc((size_t)in->n * sizeof *sel), n = 0;
    if (!sel) return err_set(err, ERR_RUNTIME, "%s: out of memory", in->name);
    for (int i = 0; i < in->n; i++)
        if (in->labels[i] >= lo && in->labels[i] <= hi) sel[n++] = i;
    if (n == 0)
        rc = err_set(err, ERR_USAGE, "%s: no images with labels in [%d, %d]", in->name, lo, hi);
    else
        rc = gather(in, sel, n, out, err);
    free(sel);
    if (rc) return rc;
    out->num_classes = hi - lo + 1;
    for (int i = 0; i < n; i++) out->labels[i] -= lo;
    return 0;
}

/* Per-image augmentation draws: output pixel (y, x) reads source pixel
 * (y + oy, flip ? w-1-x+ox : x+ox), zero outside the image. This is
 * torchvision's RandomCrop(padding=p) (pad with zeros, crop at top-left
 * (p+oy, p+ox)) followed by RandomHorizontalFlip. */
typedef struct { int ox, oy, flip; } AugDraw;

static AugDraw draw_aug(const Augment2D *aug, Rng *rng) {
    AugDraw d = {0, 0, 0};
    if (!aug || !rng) return d;
    if (aug->crop_pad > 0) {
        uint32_t span = 2u * (uint32_t)aug->crop_pad + 1u;
        d.ox = (int)rng_below(rng, span) - aug->crop_pad;
        d.oy = (int)rng_below(rng, span) - aug->crop_pad;
    }
    if (aug->hflip) d.flip = rng_uniform(rng) < 0.5f;
    return d;
}

/* lut[ch][p] = (p/255 - mean[ch]) / std[ch], the normalised value of byte p. */
static void fill_one(const ImageSet *s, const uint8_t *src, AugDraw d,
                     const float (*lut)[256], float *dst) {
    int H = s->h, W = s->w;
    for (int ch = 0; ch < s->c; ch++) {
        const uint8_t *sp = src + (size_t)ch * H * W;
        float *dp = dst + (size_t)ch * H * W;
        for (int y = 0; y < H; y++) {
            int sy = y + d.oy;
            for (int x = 0; x < W; x++) {
                int sx = (d.flip ? W - 1 - x : x) + d.ox;
                int in = sy >= 0 && sy < H && sx >= 0 && sx < W;
                dp[(size_t)y * W + x] = lut[ch][in ? sp[(size_t)sy * W + sx] : 0];
            }
        }
    }
}

/* x: (B, c, h, w) normalised; y: (B). Draws (ox, oy, flip) for every image in
 * order first, then fills images in parallel. */
void imageset_batch(const ImageSet *s, const int *idx, int B, const Augment2D *aug, Rng *rng,
                    float *x, int *y) {
    if (!s || !idx || B <= 0 || !x || s->c < 1 || s->c > 3) return;
    float lut[3][256];
    for (int ch = 0; ch < s->c; ch++)
        for (int p = 0; p < 256; p++)
            lut[ch][p] = ((float)p / 255.0f - s->mean[ch]) / s->std[ch];
    size_t ib = image_bytes(s);
    AugDraw *draws = malloc((size_t)B * sizeof *draws);
    if (!draws) {  /* same draws in the same order, just single-threaded */
        for (int b = 0; b < B; b++)
            fill_one(s, s->pixels + (size_t)idx[b] * ib, draw_aug(aug, rng),
                     (const float (*)[256])lut, x + (size_t)b * ib);
    } else {
        for (int b = 0; b < B; b++) draws[b] = draw_aug(aug, rng);
        #pragma omp parallel for schedule(static)
        for (int b = 0; b < B; b++)
            fill_one(s, s->pixels + (size_t)idx[b] * ib, draws[b], (const float (*)[256])lut,
                     x + (size_t)b * ib);
        free(draws);
    }
    if (y)
        for (int b = 0; b < B; b++) y[b] = s->labels[idx[b]];
}
