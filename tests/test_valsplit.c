/* The validation split (issue 10, data.val_size): class-balanced, disjoint
 * from the training images (and from data.train_subset, which it leaves
 * unchanged), default 10% of the training set for fashion-mnist and
 * shapes3d, 0 = off, a clear error when too large. Data: a generated
 * Fashion-MNIST-format set (300 train / 100 test, labels i % 10, random
 * pixels, so every image is distinct) and the procedural shapes3d. */
#include <criterion/criterion.h>
#include <string.h>

#include "../experiments/data.h"
#include "testproc.h"
#include "testutil.h"

static char *tmp;

static void setup(void) {
    tmp = tu_tmpdir();
    write_split(tmp, "train", 300, 300, 1);
    write_split(tmp, "t10k", 100, 100, 2);
}
static void teardown(void) {
    tu_rmrf(tmp);
    free(tmp);
}

static RunConfig cfg(int subset, int val) {
    RunConfig c;
    config_defaults(&c);
    snprintf(c.dir, sizeof c.dir, "%s", tmp);
    c.train_subset = subset;
    c.val_size = val;
    c.seed = 4;
    return c;
}

static size_t img_bytes(const ImageSet *s) { return (size_t)s->c * s->h * s->w; }

/* Number of images of a that also occur in b. */
static int shared_images(const ImageSet *a, const ImageSet *b) {
    int n = 0;
    for (int i = 0; i < a->n; i++)
        for (int j = 0; j < b->n; j++)
            if (!memcmp(a->pixels + i * img_bytes(a), b->pixels + j * img_bytes(b), img_bytes(a))) { n++; break; }
    return n;
}

static void expect_balanced(const int *labels, int n, int K) {
    int count[64] = {0};
    for (int i = 0; i < n; i++) count[labels[i]]++;
    for (int k = 0; k < K; k++) cr_expect_eq(count[k], n / K, "class %d: %d of %d", k, count[k], n);
}

Test(valsplit, default_is_ten_percent_disjoint_and_balanced, .init = setup, .fini = teardown) {
    RunConfig c = cfg(0, -1);
    DataSplit tr, va, te;
    Err err = {0};
    cr_assert_eq(data_open(&c, &tr, &va, &te, &err), 0, "%s", err.msg);
    cr_expect_eq(va.n, 30);
    cr_expect_eq(tr.n, 270);
    cr_expect_eq(te.n, 100);
    expect_balanced(va.img.labels, va.n, 10);
    cr_expect_eq(shared_images(&va.img, &tr.img), 0, "validation images are also training images");
    data_free(&tr); data_free(&va); data_free(&te);
    c.val_size = 0;   /* off: the whole training set */
    cr_assert_eq(data_open(&c, &tr, &va, &te, &err), 0, "%s", err.msg);
    cr_expect_eq(va.n, 0);
    cr_expect_eq(tr.n, 300);
    data_free(&tr); data_free(&va); data_free(&te);
}

Test(valsplit, drawn_outside_the_training_subset_which_is_unchanged, .init = setup, .fini = teardown) {
    RunConfig c = cfg(100, -1), c0 = cfg(100, 0);
    DataSplit tr, va, te, tr0, va0, te0;
    Err err = {0};
    cr_assert_eq(data_open(&c, &tr, &va, &te, &err), 0, "%s", err.msg);
    cr_assert_eq(data_open(&c0, &tr0, &va0, &te0, &err), 0, "%s", err.msg);
    cr_expect_eq(va.n, 30, "10%% of the full training set, not of the subset");
    cr_assert_eq(tr.n, 100);
    cr_expect(!memcmp(tr.img.pixels, tr0.img.pixels, 100 * img_bytes(&tr.img)), "the subset changed");
    cr_expect_eq(shared_images(&va.img, &tr.img), 0, "validation images are in the training subset");
    expect_balanced(va.img.labels, va.n, 10);
    /* its own seed stream: another run seed, another validation set */
    DataSplit tr1, va1, te1;
    RunConfig c1 = cfg(100, -1);
    c1.seed = 5;
    cr_assert_eq(data_open(&c1, &tr1, &va1, &te1, &err), 0, "%s", err.msg);
    cr_expect_lt(shared_images(&va.img, &va1.img), 30);
    data_free(&tr); data_free(&va); data_free(&te);
    data_free(&tr0); data_free(&va0); data_free(&te0);
    data_free(&tr1); data_free(&va1); data_free(&te1);
}

Test(valsplit, too_large_is_an_error_naming_the_key, .init = setup, .fini = teardown) {
    RunConfig c = cfg(250, 60);   /* only 50 images outside the subset */
    DataSplit tr, va, te;
    Err err = {0};
    cr_assert_eq(data_open(&c, &tr, &va, &te, &err), ERR_USAGE);
    cr_expect(strstr(err.msg, "data.val_size = 60") && strstr(err.msg, "50"), "%s", err.msg);
}

Test(valsplit, shapes3d_default_and_eval_without_split) {
    RunConfig c;
    config_defaults(&c);
    snprintf(c.dataset, sizeof c.dataset, "shapes3d");
    c.train_size = 280;
    c.test_size = 28;
    c.points = 64;
    c.groups = 8;
    c.group_size = 8;
    DataSplit tr, va, te;
    Err err = {0};
    cr_assert_eq(data_open(&c, &tr, &va, &te, &err), 0, "%s", err.msg);
    cr_expect_eq(va.n, 28);
    cr_expect_eq(tr.n, 252);
    expect_balanced(va.pts.labels, va.n, 14);
    size_t per = (size_t)tr.pts.P * 3 * sizeof(float);
    for (int i = 0; i < va.n; i++)
        for (int j = 0; j < tr.n; j++)
            cr_assert(memcmp(va.pts.xyz + (size_t)i * per / sizeof(float), tr.pts.xyz + (size_t)j * per / sizeof(float), per),
                      "validation cloud %d is training cloud %d", i, j);
    data_free(&tr); data_free(&va); data_free(&te);
    cr_assert_eq(data_open(&c, &tr, NULL, &te, &err), 0, "%s", err.msg);   /* eval: no split */
    cr_expect_eq(tr.n, 280);
    data_free(&tr); data_free(&te);
}
