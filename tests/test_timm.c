/* Checkpoints that move between this harness and timm (issue 14).
 *  - timm_kwargs: a collapsed EWA checkpoint (and dense ones of each pooling)
 *    loads with strict=True into the PyTorch twin's
 *    VisionTransformer(**timm_kwargs) and gives bin/ewa's top-1 and plain
 *    cross-entropy (tests/timm_check.py; skipped without python3-torch).
 *  - fine-tuning from other shapes (vit_adapt_checkpoint): bicubic
 *    pos_embed resampling and input-channel adaptation against torch
 *    (tests/torch_ref.py: timm_rgb32), F16/BF16 tensors, and a 32x32 RGB
 *    checkpoint fine-tuned on 28x28 one-channel data by bin/ewa. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../core/checkpoint.h"
#include "testproc.h"
#include "testutil.h"

enum { N_TRAIN = 200, N_TEST = 100 };

static char *tmp, *data_dir, *cfg_path;
static char data_set[600];
static int n_spawned;

static void setup(void) {
    tiny_data_setup(&tmp, &data_dir, data_set, N_TRAIN, N_TEST);
    static const char ini[] =
        "; tiny recipe for test_timm\n"
        "[model]\ndim = 16\ndepth = 2\nheads = 2\nmlp_ratio = 2\npatch = 7\n"
        "[data]\naugment = 0\n"
        "[train]\nepochs = 2\nlr = 1e-2\nwarmup_epochs = 0\nbatch_size = 32\nthreads = 1\n";
    cfg_path = tu_write(tmp, "tiny.ini", ini, strlen(ini));
    n_spawned = 0;
}

static void teardown(void) {
    tiny_data_teardown(tmp, data_dir);
    free(cfg_path);
}

TestSuite(timm, .init = setup, .fini = teardown, .timeout = 240);

/* `ewa train` of the tiny recipe into tmp/name (2 epochs, 1 thread) with
 * the extra arguments; returns the run directory. */
static char *train_tiny(const char *name, const char *const *extra) {
    char *run = tu_path(tmp, name);
    const char *base[] = {"train", "--config", cfg_path, "--out", run, "--set", data_set};
    Proc p = run_base_extra(tmp, &n_spawned, base, sizeof base / sizeof base[0], extra);
    cr_assert_eq(p.status, 0, "ewa train exited %d; stderr:\n%s", p.status, p.err);
    proc_free(&p);
    return run;
}

static const char *python(void) {
    const char *py = getenv("PYTHON");
    return py && *py ? py : "/usr/bin/python3";
}

static int have_torch(void) {
    const char *d = getenv("EWA_PARITY_DIR");   /* set by make test when python3-torch exists */
    return d && *d;
}

/* Checkpoint metadata timm_kwargs of a run, then the twin's strict load. */
static void check_timm_run(const char *name, const char *const *extra, const char *want_kwargs) {
    char *run = train_tiny(name, extra);
    char *ckpt = tu_path(run, "final.safetensors"), *summary = tu_path(run, "summary.csv");
    StFile f;
    Err err = {0};
    cr_assert_eq(st_read(ckpt, &f, &err), 0, "%s", err.msg);
    const char *kw = st_meta(&f, "timm_kwargs");
    cr_assert(kw, "%s has no timm_kwargs", ckpt);
    cr_assert(strstr(kw, want_kwargs), "timm_kwargs %s lacks %s", kw, want_kwargs);
    st_free(&f);
    if (!have_torch()) {
        free(run); free(ckpt); free(summary);
        cr_skip_test("SKIP: python3-torch not available, twin strict load not checked");
    }
    const char *args[] = {"tests/timm_check.py", "--checkpoint", ckpt, "--data", data_dir,
                          "--summary", summary, NULL};
    cr_assert_eq(access("tests/timm_check.py", R_OK), 0, "run the tests from the repository root");
    Proc p = run_prog(python(), tmp, &n_spawned, args);
    cr_assert_eq(p.status, 0, "timm_check.py exited %d:\n%s%s", p.status, p.out, p.err);
    cr_assert(strstr(p.out, "timm_check: ok"), "%s", p.out);
    proc_free(&p);
    free(run); free(ckpt); free(summary);
}

/* The "done when": a collapsed EWA checkpoint with pool = avg. */
Test(timm, collapsed_ewa_avg_pool_loads_strictly_in_the_twin) {
    const char *extra[] = {"--set", "model.pool=avg", "--set", "moe.method=ewa", "--set", "moe.experts=2",
                           "--set", "moe.blocks=1", NULL};
    check_timm_run("ewa_avg", extra, "\"global_pool\":\"avg\",\"fc_norm\":true");
}

Test(timm, dense_mean_pool_is_avg_without_fc_norm) {
    const char *extra[] = {"--set", "model.pool=mean", NULL};
    check_timm_run("dense_mean", extra, "\"global_pool\":\"avg\",\"fc_norm\":false");
}

Test(timm, dense_cls_pool_is_token) {
    const char *extra[] = {"--set", "model.pool=cls", NULL};
    check_timm_run("dense_cls", extra, "\"global_pool\":\"token\"");
}

/* Models timm's VisionTransformer cannot build carry no timm_kwargs. */
Test(timm, routed_moe_has_no_timm_kwargs) {
    ViTDims d;
    Err err = {0};
    cr_assert_eq(vit_dims(&d, 1, 8, 8, 4, 8, 2, 2, 2.0f, 3, VIT_POOL_AVG, &err), 0, "%s", err.msg);
    char buf[512];
    cr_assert_eq(vit_timm_kwargs(&d, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "{\"img_size\":[8,8],\"patch_size\":4,\"in_chans\":1,\"num_classes\":3,"
                          "\"global_pool\":\"avg\",\"fc_norm\":true,\"embed_dim\":8,\"depth\":2,"
                          "\"num_heads\":2,\"mlp_ratio\":2,\"qkv_bias\":true,\"class_token\":true}");
    MoeSpec s = {.kind = MOE_ROUTED, .experts = 2, .top_k = 1, .capacity_factor = 1.0f};
    cr_assert_eq(vit_set_moe(&d, &s, "1", &err), 0, "%s", err.msg);
    cr_assert_eq(vit_timm_kwargs(&d, buf, sizeof buf), 1);
    cr_assert_str_eq(buf, "");
}

/* ---------------------------------------------- fine-tuning at other shapes */

/* A dense ViT of input (c,h,w), patch 4, the shape of torch_ref.py's RGB32. */
static void rgb32_like(ViT *m, int c, int h, int w, int classes) {
    ViTDims d;
    Err err = {0};
    cr_assert_eq(vit_dims(&d, c, h, w, 4, 16, 1, 2, 2.0f, classes, VIT_POOL_CLS, &err), 0, "%s", err.msg);
    cr_assert_eq(vit_init(m, &d, 2, &err), 0, "%s", err.msg);
}

static const char *parity_file(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", getenv("EWA_PARITY_DIR"), name);
    return buf;
}

/* torch_ref.py's timm_rgb32 (BF16 pos_embed, F16 patch projection) adapted to
 * 1x28x28 and 4x48x40 equals torch's F.interpolate(bicubic,
 * align_corners=False) and timm's adapt_input_conv, within 1e-6 of each
 * tensor's largest magnitude; the widened 16-bit tensors equal torch's
 * .float() exactly; the adapted file then loads strictly. */
Test(timm, adaptation_matches_torch) {
    if (!have_torch()) cr_skip_test("SKIP: python3-torch not available, no timm_rgb32 fixture");
    static const struct { const char *name; int c, h, w; } targets[] = {{"1x28x28", 1, 28, 28}, {"4x48x40", 4, 48, 40}};
    char path[1024], rpath[1024];
    parity_file("timm_rgb32.safetensors", path, sizeof path);
    parity_file("timm_rgb32.ref.safetensors", rpath, sizeof rpath);
    StFile ref;
    Err err = {0};
    cr_assert_eq(st_read(rpath, &ref, &err), 0, "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        StFile f;
        cr_assert_eq(st_read(path, &f, &err), 0, "%s", err.msg);
        cr_assert_str_eq(st_find(&f, "pos_embed")->dtype, "BF16");
        cr_assert_str_eq(st_find(&f, "patch_embed.proj.weight")->dtype, "F16");
        static const char *const wide[] = {"pos_embed", "patch_embed.proj.weight"};
        for (int k = 0; k < 2; k++) {
            char rn[96];
            snprintf(rn, sizeof rn, "widened.%s", wide[k]);
            const StTensor *a = st_find(&f, wide[k]), *b = st_find(&ref, rn);
            cr_assert(b && a->numel == b->numel, "%s", rn);
            cr_assert_eq(memcmp(a->data, b->data, a->numel * sizeof(float)), 0, "%s differs from torch's .float()",
                         wide[k]);
        }
        ViT m;
        rgb32_like(&m, targets[i].c, targets[i].h, targets[i].w, 10);
        char rep[600];
        cr_assert_eq(vit_adapt_checkpoint(&m, &f, path, rep, sizeof rep, &err), 0, "%s", err.msg);
        for (int k = 0; k < 2; k++) {
            char rn[96];
            snprintf(rn, sizeof rn, "%s.%s", wide[k], targets[i].name);
            const StTensor *a = st_find(&f, wide[k]), *b = st_find(&ref, rn);
            cr_assert(b, "%s missing", rn);
            cr_assert_eq(a->numel, b->numel, "%s: %zu values, torch %zu", rn, a->numel, b->numel);
            double e = tu_rel_maxdiff(a->data, b->data, a->numel, 1e-12);
            cr_expect_lt(e, 1e-6, "%s: rel err %.2e against torch", rn, e);
        }
        cr_assert(strstr(rep, "pos_embed [1,65,16]") && strstr(rep, "1 F16 and 1 BF16"), "report: %s", rep);
        cr_assert_eq(vit_load_tensors(&m, &f, path, 0, NULL, &err), 0, "%s", err.msg);
        vit_free(&m);
        st_free(&f);
    }
    st_free(&ref);
}

/* Writes a dense 3x32x32 (patch 4, 10 classes) checkpoint of fresh weights
 * with the metadata input_shape a CIFAR run would give it; returns its path. */
static char *rgb32_checkpoint(void) {
    ViT m;
    rgb32_like(&m, 3, 32, 32, 10);
    vit_init_weights(&m, 5);
    char *path = tu_path(tmp, "rgb32.safetensors");
    const char *keys[] = {"input_shape", "num_classes"}, *vals[] = {"3,32,32", "10"};
    Err err = {0};
    cr_assert_eq(vit_save(&m, path, 2, keys, vals, &err), 0, "%s", err.msg);
    vit_free(&m);
    return path;
}

/* Fine-tunes ckpt on the 28x28 one-channel data: the stderr report names the
 * adaptations; with lr ~ 0 the run's final pos_embed is the adapted one
 * (the weights were used); with lr 1e-2 two epochs learn the task. */
static void finetune_28(const char *ckpt) {
    char set[1100];
    snprintf(set, sizeof set, "finetune.init_checkpoint=%s", ckpt);
    const char *frozen[] = {"--set", set, "--set", "model.patch=4", "--set", "model.depth=1", "--set", "train.lr=1e-30",
                            "--set", "train.min_lr=0", "--set", "train.weight_decay=0", "--set", "train.max_steps=2",
                            NULL};
    char *run = train_tiny("ft_frozen", frozen);
    char *log = tu_path(tmp, "stderr.0");   /* the first spawned process of this test */
    char *err_text = slurp(log, NULL);
    cr_assert(err_text, "no stderr capture %s", log);
    cr_assert(strstr(err_text, "pos_embed [1,65,16] -> [1,50,16] (patch grid 8x8 -> 7x7, bicubic, class token kept)"),
              "stderr:\n%s", err_text);
    cr_assert(strstr(err_text, "in_chans 3 -> 1 (sum over channels)"), "stderr:\n%s", err_text);
    StFile src, out;
    Err err = {0};
    cr_assert_eq(st_read(ckpt, &src, &err), 0, "%s", err.msg);
    ViT m;
    rgb32_like(&m, 1, 28, 28, 10);
    char rep[600];
    cr_assert_eq(vit_adapt_checkpoint(&m, &src, ckpt, rep, sizeof rep, &err), 0, "%s", err.msg);
    char *final = tu_path(run, "final.safetensors");
    cr_assert_eq(st_read(final, &out, &err), 0, "%s", err.msg);
    static const char *const names[] = {"pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight"};
    for (int k = 0; k < 3; k++) {
        const StTensor *a = st_find(&src, names[k]), *b = st_find(&out, names[k]);
        cr_assert(a && b && a->numel == b->numel, "%s", names[k]);
        double e = tu_rel_maxdiff(b->data, a->data, a->numel, 1e-12);
        cr_expect_lt(e, 1e-6, "%s: the fine-tuned run did not start from the adapted checkpoint (rel %.2e)", names[k], e);
    }
    st_free(&src); st_free(&out); vit_free(&m);
    free(final); free(run); free(log); free(err_text);

    const char *learn[] = {"--set", set, "--set", "model.patch=4", "--set", "model.depth=1", NULL};
    run = train_tiny("ft_learn", learn);
    char *summary = tu_path(run, "summary.csv");
    char *sum = slurp(summary, NULL);
    cr_assert(sum && strstr(sum, ",ok,"), "summary:\n%s", sum);
    free(sum); free(summary); free(run);
}

/* The "done when": a 32x32 three-channel checkpoint fine-tunes on
 * 28x28 Fashion-MNIST (the generated Fashion-MNIST-format set). */
Test(timm, rgb32_checkpoint_finetunes_on_28x28_fmnist) {
    char *ckpt = rgb32_checkpoint();
    finetune_28(ckpt);
    free(ckpt);
}

/* The same from the timm-style fixture: 16-bit tensors, no input_shape (the
 * grid is inferred as square). */
Test(timm, bf16_timm_checkpoint_finetunes_on_28x28_fmnist) {
    if (!have_torch()) cr_skip_test("SKIP: python3-torch not available, no timm_rgb32 fixture");
    char path[1024];
    finetune_28(parity_file("timm_rgb32.safetensors", path, sizeof path));
}

/* What is not adapted is refused, naming the tensor. */
Test(timm, unadaptable_checkpoints_are_named) {
    char *ckpt = rgb32_checkpoint();
    StFile f;
    Err err = {0};
    ViT m;
    ViTDims d;
    cr_assert_eq(vit_dims(&d, 1, 28, 28, 7, 16, 1, 2, 2.0f, 10, VIT_POOL_CLS, &err), 0, "%s", err.msg);
    cr_assert_eq(vit_init(&m, &d, 2, &err), 0, "%s", err.msg);
    cr_assert_eq(st_read(ckpt, &f, &err), 0, "%s", err.msg);
    char rep[600];
    cr_assert_neq(vit_adapt_checkpoint(&m, &f, ckpt, rep, sizeof rep, &err), 0);
    cr_assert(strstr(err.msg, "patch_embed.proj.weight") && strstr(err.msg, "model.patch = 4"), "%s", err.msg);
    vit_free(&m);
    /* 1 + 63 tokens without input_shape metadata: no grid to infer */
    StTensor *pos = (StTensor *)st_find(&f, "pos_embed");
    pos->shape[1] = 64;
    pos->numel = 64 * 16;
    for (int i = 0; i < f.n_meta; i++) f.meta_keys[i][0] = '_';
    rgb32_like(&m, 1, 28, 28, 10);
    cr_assert_neq(vit_adapt_checkpoint(&m, &f, ckpt, rep, sizeof rep, &err), 0);
    cr_assert(strstr(err.msg, "'pos_embed' has 64 tokens"), "%s", err.msg);
    vit_free(&m);
    st_free(&f);
    free(ckpt);
}
