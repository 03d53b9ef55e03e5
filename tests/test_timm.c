/* Checkpoints that move between this harness and timm (issue 14).
 *  - timm_kwargs: a collapsed EWA checkpoint (and dense ones of each pooling)
 *    loads with strict=True into the PyTorch twin's
 *    VisionTransformer(**timm_kwargs) and gives bin/ewa's top-1 and plain
 *    cross-entropy (tests/timm_check.py; skipped without python3-torch). */
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
    tmp = tu_tmpdir();
    data_dir = tu_path(tmp, "data");
    cr_assert_eq(mkdir(data_dir, 0755), 0, "mkdir %s", data_dir);
    write_split(data_dir, "train", N_TRAIN, N_TRAIN, 1);
    write_split(data_dir, "t10k", N_TEST, N_TEST, 2);
    snprintf(data_set, sizeof data_set, "data.dir=%s", data_dir);
    static const char ini[] =
        "; tiny recipe for test_timm\n"
        "[model]\ndim = 16\ndepth = 2\nheads = 2\nmlp_ratio = 2\npatch = 7\n"
        "[data]\naugment = 0\n"
        "[train]\nepochs = 2\nlr = 1e-2\nwarmup_epochs = 0\nbatch_size = 32\nthreads = 1\n";
    cfg_path = tu_write(tmp, "tiny.ini", ini, strlen(ini));
    n_spawned = 0;
}

static void teardown(void) {
    tu_rmrf(tmp);
    free(tmp); free(data_dir); free(cfg_path);
}

TestSuite(timm, .init = setup, .fini = teardown, .timeout = 240);

/* `ewa train` of the tiny recipe into tmp/name (2 epochs, 1 thread) with
 * the extra arguments; returns the run directory. */
static char *train_tiny(const char *name, const char *const *extra) {
    char *run = tu_path(tmp, name);
    const char *base[] = {"train", "--config", cfg_path, "--out", run, "--set", data_set};
    enum { NB = sizeof base / sizeof base[0] };
    const char *args[NB + 16];
    int n = 0;
    for (int i = 0; i < NB; i++) args[n++] = base[i];
    for (int i = 0; extra && extra[i]; i++) args[n++] = extra[i];
    args[n] = NULL;
    Proc p = run_list(tmp, &n_spawned, args);
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
