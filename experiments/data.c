#include "data.h"
#include <stdio.h>
#include <string.h>

static int load_split(const RunConfig *cfg, int train, ImageSet *out, Err *err) {
    if (!strcmp(cfg->dataset, "fashion-mnist")) return fmnist_load(cfg->dir, train, out, err);
    if (!strcmp(cfg->dataset, "cifar10")) return cifar_load(cfg->dir, 10, train, out, err);
    if (!strcmp(cfg->dataset, "cifar100")) return cifar_load(cfg->dir, 100, train, out, err);
    return err_set(err, ERR_USAGE, "data.dataset = %s is not an image dataset this build can load",
                   cfg->dataset);
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

int data_open(const RunConfig *cfg, ImageSet *train, ImageSet *test, Err *err) {
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    int rc = load_split(cfg, 1, train, err);
    if (!rc) rc = load_split(cfg, 0, test, err);
    if (!rc) rc = apply_classes(cfg, train, err);
    if (!rc) rc = apply_classes(cfg, test, err);
    if (!rc && cfg->train_subset > 0) {
        if (cfg->train_subset > train->n)
            rc = err_set(err, ERR_USAGE, "data.train_subset = %d exceeds the %d training images",
                         cfg->train_subset, train->n);
        else {
            ImageSet sub;
            rc = imageset_subset_balanced(train, cfg->train_subset, cfg->seed, &sub, err);
            if (!rc) { imageset_free(train); *train = sub; }
        }
    }
    if (rc) { imageset_free(train); imageset_free(test); }
    return rc;
}
