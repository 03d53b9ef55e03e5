/* bin/ewa: the command line of DESIGN 4.
 *   ewa train --config FILE [--set section.key=value]... --out DIR
 *   ewa eval  --checkpoint FILE [--set section.key=value]...
 * Exit codes (DESIGN 6): 0 ok, 2 usage/config error, 1 runtime failure. */
#include "train.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_text =
    "usage:\n"
    "  ewa train --config FILE [--set section.key=value]... --out DIR\n"
    "  ewa eval  --checkpoint FILE [--set section.key=value]...\n"
    "Configs are INI files (see paper_configs/); --set overrides any key.\n";

static int usage(const char *fmt, const char *arg) {
    fprintf(stderr, "ewa: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage_text);
    return ERR_USAGE;
}

typedef struct {
    const char *config, *out, *checkpoint;
    int n_set;
    char **sets;
} Args;

/* Parses argv[2..] into a; only the options listed are accepted. */
static int parse_args(int argc, char **argv, Args *a, int want_train) {
    memset(a, 0, sizeof *a);
    a->sets = calloc((size_t)argc, sizeof(char *));
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        if (i + 1 >= argc) return usage("option '%s' needs a value", o);
        if (!strcmp(o, "--set")) a->sets[a->n_set++] = argv[++i];
        else if (want_train && !strcmp(o, "--config")) a->config = argv[++i];
        else if (want_train && !strcmp(o, "--out")) a->out = argv[++i];
        else if (!want_train && !strcmp(o, "--checkpoint")) a->checkpoint = argv[++i];
        else return usage("unknown option '%s'", o);
    }
    return 0;
}

static int cmd_train(int argc, char **argv) {
    Args a;
    int rc = parse_args(argc, argv, &a, 1);
    if (!rc && !a.config) rc = usage("%s", "train needs --config FILE");
    if (!rc && !a.out) rc = usage("%s", "train needs --out DIR");
    if (rc) { free(a.sets); return rc; }
    RunConfig c;
    Err err = {0};
    TrainResult res;
    rc = config_load(&c, a.config, a.n_set, a.sets, &err);
    if (!rc) rc = train_run(&c, a.out, &res, &err);
    free(a.sets);
    if (rc) { fprintf(stderr, "ewa train: %s\n", err.msg); return rc; }
    printf("status=%s top1=%.4f best=%.4f n=%d steps=%ld train_s=%.1f out=%s\n", res.status,
           res.final_top1, res.best_top1, res.n_test, res.steps, res.train_seconds, a.out);
    return strcmp(res.status, "ok") ? ERR_RUNTIME : 0;
}

static int cmd_eval(int argc, char **argv) {
    Args a;
    int rc = parse_args(argc, argv, &a, 0);
    if (!rc && !a.checkpoint) rc = usage("%s", "eval needs --checkpoint FILE");
    if (rc) { free(a.sets); return rc; }
    Err err = {0};
    double top1 = 0, loss = 0;
    int n = 0;
    rc = eval_checkpoint(a.checkpoint, a.n_set, a.sets, &top1, &n, &loss, &err);
    free(a.sets);
    if (rc) { fprintf(stderr, "ewa eval: %s\n", err.msg); return rc; }
    printf("loss=%.6f\n", loss);
    printf("top1=%.4f n=%d\n", top1, n);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage("%s", "missing command");
    if (!strcmp(argv[1], "train")) return cmd_train(argc, argv);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc, argv);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { fputs(usage_text, stdout); return 0; }
    return usage("unknown command '%s'", argv[1]);
}
