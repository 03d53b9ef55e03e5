/* Tests for experiments/config.c: defaults, presets, INI and --set precedence,
 * round trips, hashing, atomic writes, and every parse/validation error. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../experiments/config.h"
#include "../experiments/methods.h"
#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

static int load_str(RunConfig *c, const char *text, int n, char *const *sets, Err *e) {
    memset(e, 0, sizeof *e);
    return config_load_string(c, text, "test.ini", n, sets, e);
}

static RunConfig load_ok(const char *text, int n, char *const *sets) {
    RunConfig c;
    Err e;
    int rc = load_str(&c, text, n, sets, &e);
    cr_assert_eq(rc, 0, "load failed: %s", e.msg);
    return c;
}

/* Loading fails with ERR_USAGE and the message contains every needle. */
static void expect_fail(const char *text, int n, char *const *sets, const char *const *needles) {
    RunConfig c;
    Err e;
    int rc = load_str(&c, text, n, sets, &e);
    cr_assert_eq(rc, ERR_USAGE, "expected a usage error for:\n%s", text ? text : "(null)");
    cr_assert_eq(e.code, ERR_USAGE);
    for (; *needles; needles++)
        cr_assert(strstr(e.msg, *needles), "message '%s' lacks '%s'", e.msg, *needles);
}
#define FAIL_TEXT(text, ...) expect_fail(text, 0, NULL, (const char *const[]){__VA_ARGS__, NULL})
#define FAIL_SET(set, ...)                                                                       \
    expect_fail("", 1, (char *const[]){set}, (const char *const[]){__VA_ARGS__, NULL})

static RunConfig with_set(const char *set) { return load_ok("", 1, (char *const[]){(char *)set}); }

static void validate_fails(const RunConfig *c, const char *needle) {
    Err e = {0};
    cr_assert_eq(config_validate(c, &e), ERR_USAGE, "expected '%s'", needle);
    cr_assert(strstr(e.msg, needle), "message '%s' lacks '%s'", e.msg, needle);
}

static void set_fails(const char *set, const char *needle) {
    FAIL_SET((char *)set, needle, "--set");
}

static int feq(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

#define EQ_INT(f) cr_assert_eq(a->f, b->f, #f ": %ld vs %ld", (long)a->f, (long)b->f)
#define EQ_FLT(f) cr_assert(feq(a->f, b->f), #f ": %.9g vs %.9g", (double)a->f, (double)b->f)
#define EQ_STR(f) cr_assert_str_eq(a->f, b->f, #f)

static void assert_config_eq(const RunConfig *a, const RunConfig *b) {
    EQ_STR(preset); EQ_INT(dim); EQ_INT(depth); EQ_INT(heads); EQ_FLT(mlp_ratio);
    EQ_INT(patch); EQ_STR(pool);
    EQ_STR(dataset); EQ_STR(dir); EQ_INT(train_subset); EQ_INT(augment); EQ_STR(classes);
    EQ_INT(epochs); EQ_INT(batch_size); EQ_FLT(lr); EQ_FLT(min_lr); EQ_FLT(weight_decay);
    EQ_FLT(warmup_epochs); EQ_FLT(beta1); EQ_FLT(beta2); EQ_FLT(eps); EQ_FLT(grad_clip);
    EQ_FLT(label_smoothing); EQ_INT(threads); EQ_INT(max_steps);
    cr_assert_eq(a->seed, b->seed, "seed");
    EQ_STR(method); EQ_INT(experts); EQ_FLT(beta); EQ_STR(blocks); EQ_INT(top_k);
    EQ_FLT(capacity_factor); EQ_FLT(aux_coef); EQ_FLT(zloss_coef); EQ_INT(shared_expert);
    EQ_STR(routing); EQ_FLT(ewa_epochs); EQ_STR(rmoe_partition);
    EQ_STR(init_checkpoint); EQ_INT(reset_head);
}

static char *fixture(const char *name) {
    static const char *const dirs[] = {"tests/fixtures/config", "fixtures/config",
                                       "../tests/fixtures/config"};
    char *file = strdup(__FILE__), *slash = strrchr(file, '/');
    char buf[1024];
    if (slash) {
        *slash = '\0';
        snprintf(buf, sizeof buf, "%s/fixtures/config/%s", file, name);
    }
    free(file);
    if (slash && access(buf, R_OK) == 0) return strdup(buf);
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(buf, sizeof buf, "%s/%s", dirs[i], name);
        if (access(buf, R_OK) == 0) return strdup(buf);
    }
    cr_skip_test("fixture %s not found (run from the repository root)", name);
    return NULL;
}

/* ---------------------------------------------------------------- defaults */

Test(defaults, values_and_valid) {
    RunConfig c;
    Err e = {0};
    config_defaults(&c);
    cr_assert_eq(config_validate(&c, &e), 0, "%s", e.msg);
    cr_assert_str_eq(c.preset, "");
    cr_assert_eq(c.dim, 192); cr_assert_eq(c.depth, 6); cr_assert_eq(c.heads, 3);
    cr_assert(feq(c.mlp_ratio, 4)); cr_assert_eq(c.patch, 4); cr_assert_str_eq(c.pool, "cls");
    cr_assert_str_eq(c.dataset, "fashion-mnist"); cr_assert_str_eq(c.dir, "");
    cr_assert_eq(c.train_subset, 0); cr_assert_eq(c.augment, 1);
    cr_assert_str_eq(c.classes, "all");
    cr_assert_eq(c.epochs, 10); cr_assert_eq(c.batch_size, 128);
    cr_assert(feq(c.lr, 1e-3f)); cr_assert(feq(c.min_lr, 1e-5f));
    cr_assert(feq(c.weight_decay, 0.05f)); cr_assert(feq(c.warmup_epochs, 1));
    cr_assert(feq(c.beta1, 0.9f)); cr_assert(feq(c.beta2, 0.999f)); cr_assert(feq(c.eps, 1e-8f));
    cr_assert(feq(c.grad_clip, 1)); cr_assert(feq(c.label_smoothing, 0.1f));
    cr_assert_eq(c.seed, 0); cr_assert_eq(c.threads, 0); cr_assert_eq(c.max_steps, 0);
    cr_assert_str_eq(c.method, "dense"); cr_assert_eq(c.experts, 4);
    cr_assert(feq(c.beta, 0.3f)); cr_assert_str_eq(c.blocks, "every_other");
    cr_assert_eq(c.top_k, 1); cr_assert(feq(c.capacity_factor, 1.25f));
    cr_assert(feq(c.aux_coef, 0.01f)); cr_assert(feq(c.zloss_coef, 0));
    cr_assert_eq(c.shared_expert, 0); cr_assert_str_eq(c.routing, "token");
    cr_assert(feq(c.ewa_epochs, -1)); cr_assert_str_eq(c.rmoe_partition, "batch");
    cr_assert_str_eq(c.init_checkpoint, ""); cr_assert_eq(c.reset_head, 0);
}

Test(defaults, load_without_file_gives_defaults) {
    RunConfig d, c;
    Err e = {0};
    config_defaults(&d);
    memset(&c, 0x5a, sizeof c);
    cr_assert_eq(config_load(&c, NULL, 0, NULL, &e), 0, "%s", e.msg);
    assert_config_eq(&c, &d);
    RunConfig s = load_ok("; only a comment\n\n", 0, NULL);
    assert_config_eq(&s, &d);
}

/* ---------------------------------------------------------------- presets */

Test(presets, every_name_applies_and_validates) {
    int n = 0;
    const char *const *names = config_preset_names(&n);
    cr_assert_eq(n, 8);
    for (int i = 0; i < n; i++) {
        RunConfig c;
        Err e = {0};
        config_defaults(&c);
        cr_assert_eq(config_apply_preset(&c, names[i], &e), 0, "%s: %s", names[i], e.msg);
        cr_assert_str_eq(c.preset, names[i]);
        cr_assert_eq(config_validate(&c, &e), 0, "%s: %s", names[i], e.msg);
    }
}

Test(presets, shapes) {
    static const struct { const char *name; int dim, depth, heads; float mlp; int patch; } want[] = {
        {"vit-tiny", 192, 12, 3, 4, 16},  {"vit-small", 384, 12, 6, 4, 16},
        {"vit-base", 768, 12, 12, 4, 16}, {"vit-r1", 192, 6, 3, 4, 4},
        {"vit-micro", 64, 4, 2, 2, 4},    {"vit-mini", 96, 4, 3, 2, 4},
        {"vit-cpu-small", 128, 6, 4, 2, 4}, {"vit-s-cifar", 384, 12, 6, 4, 4},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        RunConfig c;
        config_defaults(&c);
        snprintf(c.pool, sizeof c.pool, "mean");
        cr_assert_eq(config_apply_preset(&c, want[i].name, NULL), 0);
        cr_assert_eq(c.dim, want[i].dim, "%s", want[i].name);
        cr_assert_eq(c.depth, want[i].depth, "%s", want[i].name);
        cr_assert_eq(c.heads, want[i].heads, "%s", want[i].name);
        cr_assert(feq(c.mlp_ratio, want[i].mlp), "%s", want[i].name);
        cr_assert_eq(c.patch, want[i].patch, "%s", want[i].name);
        cr_assert_str_eq(c.pool, "cls");
    }
}

Test(presets, unknown_name_lists_known) {
    RunConfig c;
    Err e = {0};
    config_defaults(&c);
    cr_assert_eq(config_apply_preset(&c, "vit-huge", &e), ERR_USAGE);
    cr_assert(strstr(e.msg, "vit-huge") && strstr(e.msg, "vit-tiny") && strstr(e.msg, "vit-r1") &&
              strstr(e.msg, "vit-s-cifar"), "%s", e.msg);
    cr_assert_eq(c.dim, 192, "config untouched");
    FAIL_TEXT("[model]\n\npreset = vit-huge\n", "test.ini", "line 3", "vit-huge", "vit-micro");
    set_fails("model.preset=nope", "vit-cpu-small");
}

Test(presets, explicit_key_wins_in_either_order) {
    RunConfig a = load_ok("[model]\npreset = vit-tiny\ndim = 96\n", 0, NULL);
    RunConfig b = load_ok("[model]\ndim = 96\npreset = vit-tiny\n", 0, NULL);
    assert_config_eq(&a, &b);
    cr_assert_eq(a.dim, 96); cr_assert_eq(a.depth, 12); cr_assert_eq(a.patch, 16);
    cr_assert_str_eq(a.preset, "vit-tiny");
}

Test(presets, set_preset_under_file_keys) {
    /* The override's preset applies first; the file's explicit dim still wins. */
    char *sets[] = {"model.preset=vit-small"};
    RunConfig c = load_ok("[model]\npreset = vit-micro\ndim = 96\n", 1, sets);
    cr_assert_str_eq(c.preset, "vit-small");
    cr_assert_eq(c.dim, 96); cr_assert_eq(c.depth, 12); cr_assert_eq(c.heads, 6);
    /* ... and an explicit --set given before the preset override wins too. */
    char *sets2[] = {"model.depth=3", "model.preset=vit-mini"};
    RunConfig d = load_ok("", 2, sets2);
    cr_assert_eq(d.depth, 3); cr_assert_eq(d.dim, 96);
    /* Clearing the preset leaves the defaults. */
    char *sets3[] = {"model.preset="};
    RunConfig z = load_ok("[model]\npreset = vit-base\n", 1, sets3);
    cr_assert_str_eq(z.preset, ""); cr_assert_eq(z.dim, 192); cr_assert_eq(z.depth, 6);
}

/* ---------------------------------------------------------------- precedence */

Test(overrides, set_beats_file_and_last_set_wins) {
    char *sets[] = {"train.lr=0.5", "train.epochs = 7", " moe.method = ewa ", "train.lr=2e-4"};
    RunConfig c = load_ok("[train]\nlr = 1e-2\nepochs = 3\nbatch_size = 64\n", 4, sets);
    cr_assert(feq(c.lr, 2e-4f)); cr_assert_eq(c.epochs, 7); cr_assert_eq(c.batch_size, 64);
    cr_assert_str_eq(c.method, "ewa");
}

Test(overrides, every_key_can_be_set) {
    RunConfig d;
    config_defaults(&d);
    char *ini = config_to_ini(&d), *save = NULL, section[32] = "";
    for (char *line = strtok_r(ini, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char key[64], set[700];
        if (sscanf(line, "[%31[^]]]", section) == 1) continue;
        const char *eq = strstr(line, " =");
        cr_assert(eq && (eq[2] == '\0' || eq[2] == ' '), "line '%s'", line);
        snprintf(key, sizeof key, "%.*s", (int)(eq - line), line);
        snprintf(set, sizeof set, "%s.%s=%s", section, key, eq[2] ? eq + 3 : "");
        RunConfig c = with_set(set);
        assert_config_eq(&c, &d);
    }
    free(ini);
}

Test(overrides, bools_accept_words) {
    cr_assert_eq(with_set("data.augment=off").augment, 0);
    cr_assert_eq(with_set("data.augment=TRUE").augment, 1);
    cr_assert_eq(with_set("finetune.reset_head=yes").reset_head, 1);
    set_fails("data.augment=2", "not a boolean");
}

Test(overrides, ini_dialect) {
    /* UTF-8 BOM, CRLF, both comment styles, inline comments, name:value. */
    RunConfig c = load_ok("\xef\xbb\xbf[train]\r\n# c\r\n; c\r\nepochs: 5 ; five\r\n"
                          "lr=2e-4\r\n\r\n[model]\r\n  pool = mean  \r\n",
                          0, NULL);
    cr_assert_eq(c.epochs, 5);
    cr_assert(feq(c.lr, 2e-4f));
    cr_assert_str_eq(c.pool, "mean");
    /* Issue 11.6: an indented line is a line of its own, never inih's
     * continuation of the previous value ("duplicate key 'lr'" blamed the
     * wrong key): an indented key is a key, an indented value a syntax error. */
    FAIL_TEXT("[train]\nlr = 1\n  2\n", "line 3: syntax error");
}

/* ---------------------------------------------------------------- round trip */

static RunConfig odd_config(void) {
    char *sets[] = {"model.preset=vit-mini", "model.mlp_ratio=2.5",    "model.pool=mean",
                    "data.dataset=cifar100", "data.dir=/data/c100",   "data.train_subset=5000",
                    "data.augment=0",        "data.classes=10-19",    "train.epochs=37",
                    "train.lr=3.3e-4",       "train.min_lr=1.234567e-7", "train.weight_decay=0.1",
                    "train.warmup_epochs=0.5", "train.beta2=0.98",    "train.eps=1e-6",
                    "train.grad_clip=0",     "train.label_smoothing=0.05",
                    "train.seed=18446744073709551615", "train.threads=2", "train.max_steps=123456789",
                    "moe.method=moe-early-ewa", "moe.experts=3", "moe.beta=0.6666666",
                    "moe.blocks=0,2,3",      "moe.top_k=2", "moe.capacity_factor=1.1",
                    "moe.aux_coef=0.001",    "moe.zloss_coef=1e-4", "moe.shared_expert=1",
                    "moe.routing=image",     "moe.ewa_epochs=2.75", "moe.rmoe_partition=sample",
                    "finetune.init_checkpoint=runs/a b/final.safetensors",
                    "finetune.reset_head=1"};
    return load_ok("", (int)(sizeof sets / sizeof sets[0]), sets);
}

Test(roundtrip, to_ini_then_load_is_identical) {
    RunConfig cs[3];
    config_defaults(&cs[0]);
    cs[1] = odd_config();
    cs[2] = with_set("model.preset=vit-s-cifar");
    for (int i = 0; i < 3; i++) {
        char *ini = config_to_ini(&cs[i]);
        cr_assert(ini);
        RunConfig back = load_ok(ini, 0, NULL);
        assert_config_eq(&back, &cs[i]);
        char *again = config_to_ini(&back);
        cr_assert_str_eq(again, ini);
        free(ini), free(again);
    }
}

Test(roundtrip, text_layout) {
    RunConfig c = odd_config();
    char *ini = config_to_ini(&c);
    const char *order[] = {"[model]\npreset = vit-mini\ndim = 96\n", "pool = mean\npn_width = 128\n\n[data]\n",
                           "dir = /data/c100\n",
                           "\n[train]\nepochs = 37\n", "lr = 0.00033\n",
                           "seed = 18446744073709551615\n", "\n[moe]\nmethod = moe-early-ewa\n",
                           "\n[finetune]\n", "reset_head = 1\n"};
    const char *p = ini;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *q = strstr(p, order[i]);
        cr_assert(q, "'%s' missing or out of order in:\n%s", order[i], ini);
        p = q;
    }
    free(ini);
}

Test(roundtrip, empty_strings_have_no_trailing_space) {
    RunConfig c;
    config_defaults(&c);
    char *ini = config_to_ini(&c);
    cr_assert(strstr(ini, "\npreset =\n") && strstr(ini, "\ndir =\n"), "%s", ini);
    cr_assert_null(strstr(ini, " \n"), "trailing space in:\n%s", ini);
    free(ini);
}

Test(roundtrip, long_values_beyond_inih_line_buffer) {
    RunConfig c;
    config_defaults(&c);
    memset(c.dir, 'd', sizeof c.dir - 1);
    c.dir[0] = '/';
    c.dir[sizeof c.dir - 1] = '\0';
    memset(c.init_checkpoint, 'k', 300);
    c.init_checkpoint[300] = '\0';
    char *ini = config_to_ini(&c);
    RunConfig back = load_ok(ini, 0, NULL);
    assert_config_eq(&back, &c);
    free(ini);
    /* A long comment line and a long value with an inline comment. */
    char text[2000];
    snprintf(text, sizeof text, ";%0600d\n[data]\ndir = /x%0300d ; comment\n", 0, 0);
    RunConfig d = load_ok(text, 0, NULL);
    cr_assert_eq(strlen(d.dir), 302); cr_assert_eq(d.dir[0], '/');
}

Test(roundtrip, write_is_atomic_and_reloads) {
    char *dir = tu_tmpdir(), *path = tu_path(dir, "config.ini");
    RunConfig c = odd_config(), back;
    Err e = {0};
    cr_assert_eq(config_write(&c, path, &e), 0, "%s", e.msg);
    cr_assert_eq(config_write(&c, path, &e), 0, "overwrite: %s", e.msg);
    cr_assert_eq(config_load(&back, path, 0, NULL, &e), 0, "%s", e.msg);
    assert_config_eq(&back, &c);
    DIR *d = opendir(dir);
    int files = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.') {
            files++;
            cr_assert_str_eq(de->d_name, "config.ini");
        }
    closedir(d);
    cr_assert_eq(files, 1, "no temporary file left behind");
    char *bad = tu_path(dir, "missing/sub/config.ini");
    cr_assert_eq(config_write(&c, bad, &e), ERR_RUNTIME);
    cr_assert(strstr(e.msg, bad) && strstr(e.msg, "cannot write"), "%s", e.msg);
    free(bad), free(path);
    tu_rmrf(dir);
    free(dir);
}

/* ---------------------------------------------------------------- hash */

Test(hash, ignores_seed_threads_and_eval_every_only) {
    RunConfig a = with_set("train.seed=1"), b = with_set("train.seed=99");
    cr_assert_eq(config_hash(&a), config_hash(&b));
    b.threads = 2;
    cr_assert_eq(config_hash(&a), config_hash(&b));
    b.eval_every = 5;
    cr_assert_eq(config_hash(&a), config_hash(&b));
    RunConfig c = a;
    c.lr = 2e-3f;
    cr_assert_neq(config_hash(&a), config_hash(&c));
    RunConfig d = a;
    d.max_steps = 10;
    cr_assert_neq(config_hash(&a), config_hash(&d));
    RunConfig e = a;
    snprintf(e.method, sizeof e.method, "ewa");
    cr_assert_neq(config_hash(&a), config_hash(&e));
}

Test(hash, is_fnv1a_of_the_ini_without_seed_threads_and_eval_every) {
    /* ... and without the [moe] keys the method ignores (methods.h) */
    RunConfig c = odd_config();
    char *ini = config_to_ini(&c), section[32] = "", key[64];
    uint64_t h = 14695981039346656037ULL;
    for (char *line = ini; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = (size_t)(nl - line) + 1;
        sscanf(line, "[%31[^]]]", section);
        int ignored = sscanf(line, "%63s =", key) == 1 && !method_reads_key(&c, section, key);
        if (!ignored && strncmp(line, "seed = ", 7) && strncmp(line, "threads = ", 10) &&
            strncmp(line, "eval_every = ", 13))
            for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)line[i]) * 1099511628211ULL;
        line += len;
    }
    cr_assert_eq(config_hash(&c), h, "%016" PRIx64 " vs %016" PRIx64, config_hash(&c), h);
    free(ini);
}

/* ---------------------------------------------------------------- file errors */

Test(errors, missing_file) {
    RunConfig c;
    Err e = {0};
    cr_assert_eq(config_load(&c, "/nonexistent/dir/x.ini", 0, NULL, &e), ERR_USAGE);
    cr_assert(strstr(e.msg, "/nonexistent/dir/x.ini: cannot open: No such file"), "%s", e.msg);
}

Test(errors, directory_and_nul_byte) {
    char *dir = tu_tmpdir();
    RunConfig c;
    Err e = {0};
    cr_assert_eq(config_load(&c, dir, 0, NULL, &e), ERR_USAGE);
    cr_assert(strstr(e.msg, dir) && strstr(e.msg, "cannot open"), "%s", e.msg);
    char *p = tu_write(dir, "nul.ini", "[model]\ndim = 1\0\n", 17);
    cr_assert_eq(config_load(&c, p, 0, NULL, &e), ERR_USAGE);
    cr_assert(strstr(e.msg, "nul.ini") && strstr(e.msg, "NUL"), "%s", e.msg);
    free(p);
    tu_rmrf(dir);
    free(dir);
}

Test(errors, syntax_error_names_line) {
    FAIL_TEXT("[model]\ndim = 192\nno equals here\n", "test.ini: line 3: syntax error");
    FAIL_TEXT("[model\ndim = 192\n", "test.ini: line 1: syntax error");
    /* The first problem is the one reported, whichever kind. */
    FAIL_TEXT("[train]\nepochs = x\nbroken\n", "line 2", "train.epochs");
    FAIL_TEXT("[train]\nbroken\nepochs = x\n", "line 2: syntax error");
}

Test(errors, unknown_key_and_section) {
    FAIL_TEXT("[model]\ndim = 192\n\n[train]\nfoo = 1\n", "test.ini: line 5: unknown key 'foo' in [train]");
    FAIL_TEXT("[optim]\nlr = 1\n", "test.ini: line 2: unknown section [optim]", "'lr'");
    FAIL_TEXT("lr = 1\n", "test.ini: line 1:", "outside any [section]");
    FAIL_TEXT("[Model]\ndim = 1\n", "line 2", "[Model]");
    set_fails("train.foo=1", "unknown key 'foo' in [train]");
    set_fails("optim.lr=1", "unknown section [optim]");
}

Test(errors, duplicate_key) {
    FAIL_TEXT("[train]\nlr = 1\nepochs = 2\nlr = 2\n", "line 4", "duplicate key 'lr' in [train]",
              "line 2");
}

Test(errors, long_line_without_key) {
    char text[600];
    snprintf(text, sizeof text, "[data]\n%0400d\n", 0);
    FAIL_TEXT(text, "test.ini: line 2: line too long");
    char big[3000];
    snprintf(big, sizeof big, "[data]\ndir = %02000d\n", 0);
    FAIL_TEXT(big, "test.ini: line 2", "too long");
}

Test(errors, bad_integers) {
    static const char *const bad[] = {"12abc", "", "1e3", "1.5", "0x10", "99999999999", "abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[train]\n\nepochs = %s\n", bad[i]);
        FAIL_TEXT(text, "test.ini: line 3", "train.epochs", "'", bad[i]);
    }
    set_fails("train.max_steps=1e3", "train.max_steps = '1e3' is not an integer");
    set_fails("train.max_steps=99999999999999999999", "out of range");
    set_fails("train.seed=-1", "train.seed = '-1' is not a non-negative integer");
    set_fails("train.seed=+-1", "train.seed");
    cr_assert_eq(with_set("train.seed=+42").seed, 42);
    set_fails("train.seed=18446744073709551616", "out of range");
    set_fails("train.seed=", "train.seed");
}

Test(errors, bad_floats) {
    static const struct { const char *v, *why; } bad[] = {
        {"nan", "not a finite number"}, {"inf", "not a finite number"},
        {"-inf", "not a finite number"}, {"Infinity", "not a finite number"},
        {"1e99", "out of range"}, {"1e-50", "out of range"}, {"abc", "not a number"},
        {"", "not a number"}, {"0.1.2", "not a number"}, {"1e-3x", "not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[train]\nlr = %s\n", bad[i].v);
        FAIL_TEXT(text, "test.ini: line 2: train.lr", bad[i].why);
    }
}

Test(errors, string_too_long_or_control_char) {
    char text[256];
    snprintf(text, sizeof text, "[data]\ndataset = %040d\n", 0);
    FAIL_TEXT(text, "test.ini: line 2", "data.dataset", "too long (max 31 characters)");
    set_fails("model.pool=averaged", "too long (max 7 characters)");
    set_fails("data.dir=a\nb", "control character");
}

Test(errors, malformed_set) {
    set_fails("x", "--set 'x': expected section.key=value");
    set_fails("model=1", "--set 'model=1': expected section.key=value");
    set_fails("dim.=1", "expected section.key=value");
    set_fails(".dim=1", "expected section.key=value");
    set_fails("model.dim", "expected section.key=value");
    set_fails("model.dim=abc", "--set 'model.dim=abc': model.dim = 'abc' is not an integer");
}

Test(errors, validation_names_origin) {
    /* issue 11.6: the line of the key the message names */
    FAIL_TEXT("[model]\ndim = 100\n", "test.ini: line 2: model.dim = 100 is not divisible by model.heads = 3");
    RunConfig c;
    Err e = {0};
    char *sets[] = {"model.heads=7"};
    cr_assert_eq(config_load(&c, NULL, 1, sets, &e), ERR_USAGE);
    cr_assert_str_eq(e.msg, "--set 'model.heads=7': model.dim = 192 is not divisible by model.heads = 7");
    /* the key given by --set is blamed (the override made the conflict; the
     * file alone is fine); in the second case the message names the file's
     * key first, which blame used to take */
    char *sets2[] = {"model.dim=100"};
    cr_assert_eq(load_str(&c, "[model]\nheads = 3\n", 1, sets2, &e), ERR_USAGE);
    cr_assert_str_eq(e.msg, "--set 'model.dim=100': model.dim = 100 is not divisible by model.heads = 3");
    char *sets3[] = {"data.group_size=999"};
    cr_assert_eq(load_str(&c, "[data]\ndataset = shapes3d\npoints = 128\ngroups = 16\n", 1, sets3, &e), ERR_USAGE);
    cr_assert(!strncmp(e.msg, "--set 'data.group_size=999': data.groups = 16 and data.group_size = 999", 71), "%s",
              e.msg);
}

Test(errors, output_untouched_on_failure) {
    RunConfig c;
    memset(&c, 0x11, sizeof c);
    RunConfig before = c;
    Err e;
    load_str(&c, "[model]\ndim = 100\n", 0, NULL, &e);
    cr_assert_eq(memcmp(&c, &before, sizeof c), 0);
}

/* ---------------------------------------------------------------- validation */

Test(validate, simple_ranges) {
    static const struct { const char *set, *needle; } cases[] = {
        {"model.dim=0", "model.dim = 0"},
        {"model.depth=-1", "model.depth = -1"},
        {"model.heads=0", "model.heads = 0"},
        {"model.patch=0", "model.patch = 0"},
        {"model.mlp_ratio=0", "model.mlp_ratio"},
        {"model.mlp_ratio=0.3333", "model.mlp_ratio"},
        {"model.mlp_ratio=-4", "model.mlp_ratio"},
        {"model.pool=max", "model.pool = 'max' must be one of: cls, mean, avg"},
        {"data.dataset=mnist", "data.dataset = 'mnist'"},
        {"data.train_subset=-1", "data.train_subset"},
        {"data.classes=5-3", "data.classes = '5-3'"},
        {"data.classes=-1-3", "data.classes"},
        {"data.classes=3", "data.classes"},
        {"data.classes=a-b", "data.classes"},
        {"data.classes=1-2x", "data.classes"},
        {"train.epochs=0", "train.epochs = 0"},
        {"train.batch_size=0", "train.batch_size"},
        {"train.lr=0", "train.lr = 0"},
        {"train.min_lr=-1e-5", "train.min_lr"},
        {"train.weight_decay=-0.1", "train.weight_decay"},
        {"train.warmup_epochs=-1", "train.warmup_epochs"},
        {"train.beta1=1", "train.beta1"},
        {"train.beta1=-0.1", "train.beta1"},
        {"train.beta2=1", "train.beta2"},
        {"train.eps=0", "train.eps"},
        {"train.grad_clip=-1", "train.grad_clip"},
        {"train.label_smoothing=1", "train.label_smoothing"},
        {"train.threads=-2", "train.threads"},
        {"train.max_steps=-1", "train.max_steps"},
        {"moe.method=switch", "moe.method = 'switch'"},
        {"moe.experts=0", "moe.experts = 0"},
        {"moe.top_k=0", "moe.top_k = 0"},
        {"moe.capacity_factor=0", "moe.capacity_factor"},
        {"moe.aux_coef=-1", "moe.aux_coef"},
        {"moe.zloss_coef=-1", "moe.zloss_coef"},
        {"moe.routing=patch", "moe.routing"},
        {"moe.rmoe_partition=token", "moe.rmoe_partition"},
        {"moe.ewa_epochs=-0.5", "moe.ewa_epochs"},
        {"moe.beta=-0.1", "moe.beta"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        FAIL_SET((char *)cases[i].set, cases[i].needle);
}

Test(validate, accepted_edges) {
    static const char *const ok[] = {
        "data.classes=0-0", "data.classes=3-7", "model.mlp_ratio=2.5", "train.min_lr=0",
        "train.beta1=0", "train.grad_clip=0", "train.label_smoothing=0", "moe.ewa_epochs=0",
        "moe.ewa_epochs=-1", "train.warmup_epochs=0", "data.dataset=modelnet40",
        "data.dataset=shapes3d", "data.dataset=cifar10", "moe.routing=image",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) with_set(ok[i]);
}

Test(validate, hand_built_structs) {
    RunConfig c;
    config_defaults(&c);
    c.dim = 100;
    validate_fails(&c, "model.dim = 100 is not divisible by model.heads = 3");
    config_defaults(&c);
    c.augment = 2;
    validate_fails(&c, "data.augment = 2");
    config_defaults(&c);
    c.shared_expert = -1;
    validate_fails(&c, "moe.shared_expert");
    config_defaults(&c);
    c.reset_head = 5;
    validate_fails(&c, "finetune.reset_head");
    config_defaults(&c);
    snprintf(c.preset, sizeof c.preset, "nope");
    validate_fails(&c, "unknown preset 'nope'");
}

Test(validate, beta_bounds) {
    char *ok4[] = {"moe.method=ewa", "moe.experts=4", "moe.beta=0.75"};
    cr_assert(feq(load_ok("", 3, ok4).beta, 0.75f));
    char *zero[] = {"moe.method=ewa", "moe.beta=0"};
    load_ok("", 2, zero);
    char *bad4[] = {"moe.method=ewa", "moe.experts=4", "moe.beta=0.76"};
    expect_fail("", 3, bad4,
                (const char *const[]){"moe.beta = 0.76 is outside [0, (N-1)/N] = [0, 0.75]",
                                      "N = moe.experts = 4", NULL});
    char *ok2[] = {"moe.method=rmoe", "moe.experts=2", "moe.beta=0.5"};
    load_ok("", 3, ok2);
    char *bad2[] = {"moe.method=moe-early-ewa", "moe.experts=2", "moe.beta=0.6"};
    expect_fail("", 3, bad2, (const char *const[]){"[0, 0.5]", "N = moe.experts = 2", NULL});
    /* methods without EWA ignore beta: accepted, and not part of the hash */
    char *moe6[] = {"moe.method=moe", "moe.experts=2", "moe.beta=0.6"};
    char *moe3[] = {"moe.method=moe", "moe.experts=2", "moe.beta=0.3"};
    RunConfig a = load_ok("", 3, moe6), b = load_ok("", 3, moe3);
    cr_assert_eq(config_hash(&a), config_hash(&b), "moe ignores beta, yet it changed the hash");
    char *ewa6[] = {"moe.method=ewa", "moe.experts=4", "moe.beta=0.6"};
    char *ewa3[] = {"moe.method=ewa", "moe.experts=4", "moe.beta=0.3"};
    a = load_ok("", 3, ewa6), b = load_ok("", 3, ewa3);
    cr_assert_neq(config_hash(&a), config_hash(&b), "ewa reads beta, yet the hash ignored it");
    char *ok3[] = {"moe.method=ewa", "moe.experts=3", "moe.beta=0.6666667"};
    load_ok("", 3, ok3);
}

Test(validate, dense_ignores_expert_settings) {
    char *dense[] = {"moe.method=dense", "moe.experts=1", "moe.beta=0.9", "moe.top_k=4"};
    load_ok("", 4, dense);
    char *moe1[] = {"moe.method=moe", "moe.experts=1", "moe.beta=0"};
    expect_fail("", 3, moe1, (const char *const[]){"moe.experts = 1 must be >= 2", NULL});
    char *topk[] = {"moe.method=moe", "moe.experts=4", "moe.top_k=5"};
    expect_fail("", 3, topk,
                (const char *const[]){"moe.top_k = 5 is outside [1, moe.experts = 4]", NULL});
    char *topk_ok[] = {"moe.method=moe", "moe.experts=4", "moe.top_k=4"};
    load_ok("", 3, topk_ok);
    /* ViMoE routes top-1 (checked at resolution, so grid --dry-run sees it) */
    char *vimoe2[] = {"moe.method=vimoe", "moe.experts=4", "moe.top_k=2"};
    expect_fail("", 3, vimoe2,
                (const char *const[]){"moe.method = vimoe routes top-1: moe.top_k = 2 must be 1", NULL});
    char *many[] = {"moe.method=ewa", "moe.experts=65", "moe.beta=0"};
    expect_fail("", 3, many, (const char *const[]){"moe.experts = 65 exceeds MOE_MAX_EXPERTS = 64", NULL});
    /* dense ignores every [moe] key but the method: one hash */
    char *d1[] = {"moe.method=dense", "moe.experts=8", "moe.blocks=last:1"};
    char *d2[] = {"moe.method=dense"};
    RunConfig a = load_ok("", 3, d1), b = load_ok("", 1, d2);
    cr_assert_eq(config_hash(&a), config_hash(&b), "dense ignores [moe], yet the hash changed");
}

Test(validate, cross_field_rules_at_resolution) {
    /* rules the model builder would only find when a run starts */
    char *none[] = {"moe.method=ewa", "model.depth=1", "moe.blocks=every_other"};
    expect_fail("", 3, none, (const char *const[]){"selects no block of a depth-1 model", NULL});
    char *dense[] = {"moe.method=dense", "model.depth=1", "moe.blocks=every_other"};
    load_ok("", 3, dense);   /* dense has no MoE layer: blocks are ignored */
    char *deep[] = {"model.depth=65"};
    expect_fail("", 1, deep, (const char *const[]){"model.depth = 65 exceeds VIT_MAX_DEPTH = 64", NULL});
}

Test(validate, keys_of_the_other_dataset_kind) {
    /* data.classes / data.train_subset select image data: an error for 3D, naming the --set */
    char *cls[] = {"data.dataset=shapes3d", "data.classes=0-4"};
    expect_fail("", 2, cls, (const char *const[]){"--set 'data.classes=0-4'", "image datasets only", NULL});
    char *sub[] = {"data.dataset=modelnet40", "data.train_subset=100"};
    expect_fail("", 2, sub, (const char *const[]){"--set 'data.train_subset=100'", "image datasets only", NULL});
    /* the other keys are accepted (grids share them) and reported */
    char buf[1024];
    RunConfig d = load_ok("", 0, NULL);
    cr_expect_eq(config_ignored_keys(&d, buf, sizeof buf), 0, "defaults: '%s'", buf);
    char *img[] = {"data.points=256", "model.pn_width=32", "data.train_size=560", "model.patch=7"};
    RunConfig c = load_ok("", 4, img);
    cr_expect_eq(config_ignored_keys(&c, buf, sizeof buf), 3);
    cr_expect_str_eq(buf, "model.pn_width = 32, data.points = 256, data.train_size = 560");
    char *p3[] = {"data.dataset=shapes3d", "model.patch=8", "data.points=256", "data.dir=/x"};
    c = load_ok("", 4, p3);
    cr_expect_eq(config_ignored_keys(&c, buf, sizeof buf), 2);
    cr_expect_str_eq(buf, "model.patch = 8, data.dir = /x");
    char *mn[] = {"data.dataset=modelnet40", "data.dir=/x", "data.test_size=28"};
    c = load_ok("", 3, mn);
    cr_expect_eq(config_ignored_keys(&c, buf, sizeof buf), 1);
    cr_expect_str_eq(buf, "data.test_size = 28");
    cr_expect(config_is_points(&c));
}

Test(validate, blocks) {
    static const char *const ok[] = {"every_other", "last:1", "last:6", "1,3,5", "0", "5,0",
                                     "1, 3, 5"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char set[64];
        snprintf(set, sizeof set, "moe.blocks=%s", ok[i]);
        cr_assert_str_eq(with_set(set).blocks, ok[i]);
    }
    static const struct { const char *set, *needle; } bad[] = {
        {"moe.blocks=last:0", "L must be in [1, model.depth = 6]"},
        {"moe.blocks=last:7", "L must be in [1, model.depth = 6]"},
        {"moe.blocks=last:x", "last:L"},
        {"moe.blocks=last:", "last:L"},
        {"moe.blocks=1,1", "block 1 listed twice"},
        {"moe.blocks=6", "block 6 is outside [0, model.depth) = [0, 6)"},
        {"moe.blocks=-1", "moe.blocks = '-1'"},
        {"moe.blocks=1,,3", "moe.blocks = '1,,3'"},
        {"moe.blocks=1,3,", "moe.blocks = '1,3,'"},
        {"moe.blocks=", "moe.blocks = ''"},
        {"moe.blocks=every", "every_other, last:L or a list"},
        {"moe.blocks=+1", "moe.blocks = '+1'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        FAIL_SET((char *)bad[i].set, bad[i].needle);
    /* blocks are checked against the final depth, preset included */
    char *sets[] = {"moe.blocks=last:12", "model.preset=vit-tiny"};
    load_ok("", 2, sets);
}

/* ---------------------------------------------------------------- fixtures */

Test(fixtures, good_file) {
    char *path = fixture("good.ini");
    RunConfig c;
    Err e = {0};
    cr_assert_eq(config_load(&c, path, 0, NULL, &e), 0, "%s", e.msg);
    cr_assert_str_eq(c.preset, "vit-r1");
    cr_assert_eq(c.dim, 96); cr_assert_eq(c.depth, 6); cr_assert_eq(c.heads, 3);
    cr_assert_eq(c.epochs, 3); cr_assert(feq(c.lr, 5e-4f)); cr_assert_eq(c.seed, 7);
    cr_assert_eq(c.augment, 1); cr_assert_str_eq(c.method, "ewa");
    cr_assert(feq(c.beta, 0.75f)); cr_assert_str_eq(c.blocks, "1,3,5");
    char *sets[] = {"train.epochs=4", "model.preset=vit-cpu-small"};
    cr_assert_eq(config_load(&c, path, 2, sets, &e), 0, "%s", e.msg);
    cr_assert_eq(c.epochs, 4); cr_assert_eq(c.dim, 96); cr_assert_eq(c.heads, 4);
    cr_assert(feq(c.mlp_ratio, 2));
    free(path);
}

static void fixture_fails(const char *name, const char *needle) {
    char *path = fixture(name);
    RunConfig c;
    Err e = {0};
    cr_assert_eq(config_load(&c, path, 0, NULL, &e), ERR_USAGE, "%s", name);
    cr_assert(strstr(e.msg, path), "message '%s' lacks the path", e.msg);
    cr_assert(strstr(e.msg, needle), "message '%s' lacks '%s'", e.msg, needle);
    free(path);
}

Test(fixtures, broken_files) {
    fixture_fails("bad_syntax.ini", ": line 3: syntax error");
    fixture_fails("unknown_key.ini", ": line 6: unknown key 'foo' in [train]");
    fixture_fails("bad_int.ini", ": line 2: train.epochs = '12abc' is not an integer");
    fixture_fails("bad_beta.ini", "moe.beta = 0.76 is outside [0, (N-1)/N] = [0, 0.75]");
}

/* Epochs to steps (methods.h): rounded; a huge or infinite length saturates
 * instead of overflowing lround (train.warmup_epochs = 1e19 used to give no
 * warm-up at all); negative and NaN give 0. */
Test(methods, steps_saturate_instead_of_overflowing) {
    cr_expect_eq(method_steps(2.5), 3);
    cr_expect_eq(method_steps(0.4), 0);
    cr_expect_eq(method_steps(1e18), METHOD_MAX_STEPS);
    cr_expect_eq(method_steps(1e19 * 16), METHOD_MAX_STEPS);
    cr_expect_eq(method_steps(1.0 / 0.0), METHOD_MAX_STEPS);
    cr_expect_eq(method_steps(-3), 0);
    cr_expect_eq(method_steps(0.0 / 0.0), 0);
    RunConfig c;
    config_defaults(&c);
    snprintf(c.method, sizeof c.method, "moe-early-ewa");
    c.ewa_epochs = 1e30f;
    MethodPlan p;
    method_plan(&c, 16, 160, &p);
    cr_expect_eq(p.ewa_steps, METHOD_MAX_STEPS, "ewa_steps %ld", p.ewa_steps);
}
