/* bin/ewa: the command line of DESIGN 4.
 *   ewa train --config FILE [--set section.key=value]... --out DIR
 *   ewa eval  --checkpoint FILE [--set section.key=value]...
 *   ewa grid  --config GRID.ini [--jobs N] [--profile P] [--out DIR] [--dry-run]
 *             [--export slurm|parallel]
 *   ewa record --run DIR --to RUNS.csv [--exit CODE | --is-ok]
 *   ewa aggregate --runs RUNS.csv --out DIR [--group k1,k2] [--baseline key=value]
 *   ewa regress --ref TABLE.csv --new TABLE.csv
 * Exit codes (DESIGN 6): 0 ok, 2 usage/config error, 1 runtime failure. */
#include "aggregate.h"
#include "dist.h"
#include "grid.h"
#include "train.h"
#include <limits.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_text =
    "usage:\n"
    "  ewa train --config FILE [--set section.key=value]... --out DIR\n"
    "  ewa eval  --checkpoint FILE [--set section.key=value]...\n"
    "  ewa grid  --config GRID.ini [--jobs N] [--profile smoke|cpu|paper] [--out DIR]\n"
    "            [--set section.key=value]... [--dry-run] [--export slurm|parallel]\n"
    "  ewa record --run RUN_DIR --to RUNS.csv [--exit CODE | --is-ok]\n"
    "  ewa aggregate --runs RUNS.csv --out DIR [--group key,key,...] [--baseline key=value]\n"
    "  ewa regress --ref TABLE.csv --new TABLE.csv\n"
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
    rc = dist_init(&argc, &argv, &err);   /* MPI data parallelism under mpirun (dist.h) */
    if (!rc) rc = config_load(&c, a.config, a.n_set, a.sets, &err);
    if (!rc) rc = train_run(&c, a.out, &res, &err);
    free(a.sets);
    if (rc) {
        if (dist_size() > 1) fprintf(stderr, "ewa train: rank %d of %d: %s\n", dist_rank(), dist_size(), err.msg);
        else fprintf(stderr, "ewa train: %s\n", err.msg);
        fflush(stderr);
        dist_abort(rc);   /* R > 1: ends every rank, mpirun exits non-zero */
        return rc;
    }
    dist_finalize();
    if (dist_rank() == 0)
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
    double top1 = 0, loss = 0, smoothed = 0;
    int n = 0;
    rc = eval_checkpoint(a.checkpoint, a.n_set, a.sets, &top1, &n, &loss, &smoothed, &err);
    free(a.sets);
    if (rc) { fprintf(stderr, "ewa eval: %s\n", err.msg); return rc; }
    /* loss: plain cross-entropy; loss_smoothed: with the run's label smoothing */
    printf("loss=%.6f loss_smoothed=%.6f\n", loss, smoothed);
    printf("top1=%.4f n=%d\n", top1, n);
    return 0;
}

/* Options of the runner commands: "--name value" pairs and flags. */
typedef struct {
    const char *name;
    int flag;            /* takes no value */
    const char *value;   /* NULL = not given; "1" for a given flag */
} Opt;

static int parse_opts(int argc, char **argv, Opt *opts, int nopts) {
    for (int i = 2; i < argc; i++) {
        int k = 0;
        while (k < nopts && strcmp(argv[i], opts[k].name)) k++;
        if (k == nopts) return usage("unknown option '%s'", argv[i]);
        if (opts[k].value) return usage("option '%s' given twice", argv[i]);
        if (opts[k].flag) { opts[k].value = "1"; continue; }
        if (i + 1 >= argc) return usage("option '%s' needs a value", argv[i]);
        opts[k].value = argv[++i];
    }
    return 0;
}

static int parse_int_opt(const char *name, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "ewa: %s '%s': expected an integer in [%d, %d]\n", name, v, lo, hi);
        return ERR_USAGE;
    }
    *out = (int)x;
    return 0;
}

static int cmd_grid(int argc, char **argv) {
    Opt o[] = {{"--config", 0, NULL}, {"--jobs", 0, NULL}, {"--profile", 0, NULL},
               {"--out", 0, NULL}, {"--dry-run", 1, NULL}, {"--export", 0, NULL}};
    /* --set section.key=value (repeatable): an override for every run,
     * applied after the profile's (e.g. a checkpoint made by an earlier grid) */
    char **args = calloc((size_t)argc + 1, sizeof(char *)), **sets = calloc((size_t)argc + 1, sizeof(char *));
    int nargs = 0, nsets = 0;
    for (int i = 0; i < argc; i++) {
        if (i >= 2 && !strcmp(argv[i], "--set")) {
            if (i + 1 >= argc) { free(args); free(sets); return usage("option '%s' needs a value", "--set"); }
            sets[nsets++] = argv[++i];
        } else {
            args[nargs++] = argv[i];
        }
    }
    int rc = parse_opts(nargs, args, o, 6);
    free(args);
    if (rc) { free(sets); return rc; }
    if (!o[0].value) return usage("%s", "grid needs --config GRID.ini");
    int jobs = 1;
    if (o[1].value && (rc = parse_int_opt("--jobs", o[1].value, 1, 256, &jobs))) return rc;
    if (o[5].value && strcmp(o[5].value, "slurm") && strcmp(o[5].value, "parallel"))
        return usage("--export '%s': expected slurm or parallel", o[5].value);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) { fprintf(stderr, "ewa grid: cannot find my own binary (/proc/self/exe)\n"); return ERR_RUNTIME; }
    exe[n] = '\0';
    GridSpec g;
    Err err = {0};
    if ((rc = grid_load(&g, o[0].value, o[2].value, o[3].value, &err))) {
        fprintf(stderr, "ewa grid: %s\n", err.msg);
        free(sets);
        return rc;
    }
    g.sets = realloc(g.sets, sizeof(char *) * (size_t)(g.nsets + nsets + 1));
    for (int i = 0; i < nsets; i++) g.sets[g.nsets++] = strdup(sets[i]);
    free(sets);
    GridRun *runs = NULL;
    int nruns = 0;
    rc = grid_expand(&g, &runs, &nruns, &err);
    if (!rc) {
        GridOpts go = {.jobs = jobs, .dry_run = o[4].value != NULL, .exe = exe, .export_kind = o[5].value};
        rc = grid_run(&g, runs, nruns, &go, &err);
    }
    if (rc) fprintf(stderr, "ewa grid: %s\n", err.msg);
    grid_runs_free(runs, nruns);
    grid_free(&g);
    return rc;
}

static int cmd_record(int argc, char **argv) {
    Opt o[] = {{"--run", 0, NULL}, {"--to", 0, NULL}, {"--exit", 0, NULL}, {"--is-ok", 1, NULL}};
    int rc = parse_opts(argc, argv, o, 4);
    if (rc) return rc;
    if (!o[0].value || !o[1].value) return usage("%s", "record needs --run DIR and --to RUNS.csv");
    if (o[3].value) {   /* --is-ok: a query for exported job scripts, appends nothing */
        Err err = {0};
        int ok = 0;
        if ((rc = runs_is_ok(o[0].value, o[1].value, &ok, &err))) {
            fprintf(stderr, "ewa record: %s\n", err.msg);
            return rc;
        }
        printf("%s %s\n", o[0].value, ok ? "ok" : "not recorded ok");
        return ok ? 0 : ERR_RUNTIME;
    }
    int code = 0;
    if (o[2].value && (rc = parse_int_opt("--exit", o[2].value, 0, 255, &code))) return rc;
    Err err = {0};
    int appended = 0;
    char st[16] = "";
    rc = grid_record(o[0].value, o[1].value, &appended, st, &err);
    if (rc) { fprintf(stderr, "ewa record: %s\n", err.msg); return rc; }
    printf("%s %s (train exit %d)%s\n", o[0].value, st, code,
           appended ? "" : ": already recorded ok, nothing appended");
    return 0;
}

static int cmd_aggregate(int argc, char **argv) {
    Opt o[] = {{"--runs", 0, NULL}, {"--out", 0, NULL}, {"--group", 0, NULL},
               {"--baseline", 0, NULL}};
    int rc = parse_opts(argc, argv, o, 4);
    if (rc) return rc;
    if (!o[0].value || !o[1].value) return usage("%s", "aggregate needs --runs RUNS.csv and --out DIR");
    Err err = {0};
    rc = aggregate_runs(o[0].value, o[1].value, o[2].value, o[3].value ? o[3].value : "moe.method=dense",
                        &err);
    if (rc) fprintf(stderr, "ewa aggregate: %s\n", err.msg);
    return rc;
}

static int cmd_regress(int argc, char **argv) {
    Opt o[] = {{"--ref", 0, NULL}, {"--new", 0, NULL}};
    int rc = parse_opts(argc, argv, o, 2);
    if (rc) return rc;
    if (!o[0].value || !o[1].value) return usage("%s", "regress needs --ref TABLE.csv and --new TABLE.csv");
    Err err = {0};
    int nfail = 0;
    rc = regress_tables(o[0].value, o[1].value, stdout, &nfail, &err);
    if (rc) { fprintf(stderr, "ewa regress: %s\n", err.msg); return rc; }
    return nfail ? ERR_RUNTIME : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage("%s", "missing command");
    if (!strcmp(argv[1], "train")) return cmd_train(argc, argv);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc, argv);
    if (!strcmp(argv[1], "grid")) return cmd_grid(argc, argv);
    if (!strcmp(argv[1], "record")) return cmd_record(argc, argv);
    if (!strcmp(argv[1], "aggregate")) return cmd_aggregate(argc, argv);
    if (!strcmp(argv[1], "regress")) return cmd_regress(argc, argv);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { fputs(usage_text, stdout); return 0; }
    return usage("unknown command '%s'", argv[1]);
}
