/* bin/ewa: the command line (docs/DESIGN.md 4). One table of
 * commands, each with a table of options parsed by getopt_long, so every
 * command has --help, --opt value and --opt=value alike, and a stray argument
 * or unknown option is a usage error naming it.
 * Exit codes: 0 ok, 2 usage/config error, 1 runtime failure. */
#include "aggregate.h"
#include "claims.h"
#include "config.h"
#include "dist.h"
#include "grid.h"
#include "regress.h"
#include "train.h"
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *ewa_git_commit(void);
int ewa_git_dirty(void);

enum { MAX_OPTS = 12 };

typedef struct {
    const char *name;   /* long option without "--" */
    const char *arg;    /* value placeholder, NULL = a flag */
    const char *help;
    int required, repeat;
} OptSpec;

/* Parsed options: val[i] for spec row i (NULL = not given, "1" = flag given);
 * the values of a repeatable option in list[0..nlist). */
typedef struct {
    const char *val[MAX_OPTS];
    int nlist;
    char **list;
} Parsed;

typedef struct Command {
    const char *name, *summary;
    OptSpec opts[MAX_OPTS];
    int (*run)(const struct Command *cmd, Parsed *p);
} Command;

static const Command *commands(int *n);

static void print_synopsis(FILE *f, const Command *c) {
    fprintf(f, "  ewa %s", c->name);
    for (const OptSpec *o = c->opts; o->name; o++) {
        fprintf(f, " %s--%s%s%s%s%s", o->required ? "" : "[", o->name, o->arg ? " " : "",
                o->arg ? o->arg : "", o->required ? "" : "]", o->repeat ? "..." : "");
    }
    fputc('\n', f);
}

static void print_usage(FILE *f) {
    int n;
    const Command *cs = commands(&n);
    fputs("usage:\n", f);
    for (int i = 0; i < n; i++) print_synopsis(f, &cs[i]);
    fputs("  ewa --version | ewa COMMAND --help\n"
          "Configs are INI files (see paper_configs/ and `ewa keys`); --set overrides any key.\n",
          f);
}

static void print_command_help(const Command *c) {
    printf("usage:\n");
    print_synopsis(stdout, c);
    printf("%s\n\noptions:\n", c->summary);
    for (const OptSpec *o = c->opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-26s %s%s\n", left, o->help, o->repeat ? " (repeatable)" : "");
    }
    printf("  %-26s %s\n  %-26s %s\n", "-h, --help", "this text", "--version",
           "the commit this binary was built from");
}

static void print_version(void) {
    int dirty = ewa_git_dirty();
    printf("ewa %s%s\n", ewa_git_commit(),
           dirty == 1 ? " (built with uncommitted changes)" : dirty < 0 ? " (commit unknown)" : "");
}

/* A usage error: the message, then the short usage of the command (or of
 * every command), on stderr; returns ERR_USAGE. */
static int usage_error(const Command *c, const char *fmt, const char *arg) {
    fprintf(stderr, "ewa%s%s: ", c ? " " : "", c ? c->name : "");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    if (c) {
        fputs("usage:\n", stderr);
        print_synopsis(stderr, c);
        fprintf(stderr, "(ewa %s --help for the options)\n", c->name);
    } else {
        print_usage(stderr);
    }
    return ERR_USAGE;
}

/* The option name of argv[i] ("--out=x" -> "--out"), for messages. */
static const char *opt_name(const char *arg, char *buf, size_t n) {
    snprintf(buf, n, "%s", arg);
    char *eq = strchr(buf, '=');
    if (eq) *eq = '\0';
    return buf;
}

enum { OPT_HELP = 'h', OPT_VERSION = 1000 };

/* Parses argv (argv[0] = the command name) against c's table. Returns 0, a
 * usage error, or -1 after printing --help / --version (exit 0). */
static int parse_command(const Command *c, int argc, char **argv, Parsed *p) {
    struct option lo[MAX_OPTS + 3];
    int n = 0;
    for (; c->opts[n].name; n++)
        lo[n] = (struct option){c->opts[n].name, c->opts[n].arg ? required_argument : no_argument,
                                NULL, n + 1};
    lo[n] = (struct option){"help", no_argument, NULL, OPT_HELP};
    lo[n + 1] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    lo[n + 2] = (struct option){NULL, 0, NULL, 0};
    memset(p, 0, sizeof *p);
    p->list = calloc((size_t)argc + 1, sizeof(char *));
    opterr = 0;
    optind = 1;
    char nb[256];
    for (;;) {
        int k = getopt_long(argc, argv, "+:h", lo, NULL);
        if (k == -1) break;
        if (k == OPT_HELP) { print_command_help(c); return -1; }
        if (k == OPT_VERSION) { print_version(); return -1; }
        const char *arg = argv[optind - 1];
        if (k == ':') return usage_error(c, "option '%s' needs a value", opt_name(arg, nb, sizeof nb));
        if (k == '?' && optopt >= 1 && optopt <= n && !c->opts[optopt - 1].arg)
            return usage_error(c, "option '%s' takes no value", opt_name(arg, nb, sizeof nb));
        if (k == '?') return usage_error(c, "unknown option '%s'", opt_name(arg, nb, sizeof nb));
        const OptSpec *o = &c->opts[--k];   /* option rows are numbered from 1 */
        if (o->repeat) { p->list[p->nlist++] = optarg; continue; }
        if (p->val[k]) return usage_error(c, "option '--%s' given twice", o->name);
        p->val[k] = o->arg ? optarg : "1";
    }
    if (optind < argc) return usage_error(c, "unexpected argument '%s'", argv[optind]);
    for (int i = 0; i < n; i++)
        if (c->opts[i].required && !p->val[i] && !c->opts[i].repeat) {
            snprintf(nb, sizeof nb, "%s needs --%s %s", c->name, c->opts[i].name, c->opts[i].arg);
            return usage_error(c, "%s", nb);
        }
    return 0;
}

static int parse_int_opt(const char *name, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "ewa: --%s '%s': expected an integer in [%d, %d]\n", name, v, lo, hi);
        return ERR_USAGE;
    }
    *out = (int)x;
    return 0;
}

/* ---------------------------------------------------------------- commands */

/* Set by SIGINT / SIGTERM during `ewa train`: the run stops at its next step
 * (train.h, TrainOpts.stop). The signals are taken by one thread that does
 * nothing else (sigwait) and are blocked in every other thread (the mask is
 * set before oneDNN, OpenMP or MPI start theirs), so they never interrupt
 * the compute threads: delivered asynchronously into oneDNN's JIT GEMM
 * kernels on the Intel AVX-512/AMX VM, a SIGTERM corrupted the heap in about
 * 1 run in 100 (glibc abort in dnnl_sgemm's free; docs/DESIGN.md 4). */
static atomic_int g_train_stop = 0;   /* lock-free: safe from the thread and from a handler */
static sigset_t g_stop_set;

static void *stop_waiter(void *arg) {
    (void)arg;
    for (;;) {
        int sig;
        if (!sigwait(&g_stop_set, &sig)) g_train_stop = sig;
    }
    return NULL;
}

static void on_train_signal(int sig) { g_train_stop = sig; }

/* The handler is installed as well: a thread the mask did not reach (one a
 * library started before main) then only sets the flag instead of the
 * default action killing the run without its summary. */
static void catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_train_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigemptyset(&g_stop_set);
    sigaddset(&g_stop_set, SIGINT);
    sigaddset(&g_stop_set, SIGTERM);
    pthread_t t;
    if (pthread_sigmask(SIG_BLOCK, &g_stop_set, NULL)) return;
    if (!pthread_create(&t, NULL, stop_waiter, NULL)) {
        pthread_detach(t);
        return;
    }
    /* no thread could be started: the handler alone (a signal may then land in a compute thread) */
    pthread_sigmask(SIG_UNBLOCK, &g_stop_set, NULL);
}

/* train's options: --config FILE (default with --resume: DIR/config.ini),
 * --out DIR (default: the --resume DIR), --resume DIR, --overwrite. */
static int train_args(const Command *cmd, Parsed *p, char *cfg, size_t n, const char **out, TrainMode *mode) {
    const char *resume = p->val[3];
    *out = p->val[1] ? p->val[1] : resume;
    *mode = resume ? TRAIN_RESUME : p->val[4] ? TRAIN_OVERWRITE : TRAIN_FRESH;
    if (resume && p->val[4]) return usage_error(cmd, "%s", "--resume and --overwrite exclude each other");
    if (!*out) return usage_error(cmd, "%s", "train needs --out DIR (or --resume DIR)");
    if (resume && strcmp(*out, resume))
        return usage_error(cmd, "--out and --resume name different directories (--resume %s)", resume);
    if (!p->val[0] && !resume) return usage_error(cmd, "%s", "train needs --config FILE (or --resume DIR)");
    if (p->val[0]) snprintf(cfg, n, "%s", p->val[0]);
    else snprintf(cfg, n, "%s/config.ini", resume);
    return 0;
}

static int cmd_train(const Command *cmd, Parsed *p) {
    RunConfig c;
    Err err = {0};
    TrainResult res;
    char cfg[PATH_MAX + 16];
    TrainOpts o = {.stop = &g_train_stop};
    const char *out;
    int rc = train_args(cmd, p, cfg, sizeof cfg, &out, &o.mode);
    if (rc) return rc;
    catch_stop_signals();
    rc = dist_init(NULL, NULL, &err);   /* MPI data parallelism under mpirun (dist.h) */
    if (!rc) rc = config_load(&c, cfg, p->nlist, p->list, &err);
    char ignored[1024];
    if (!rc && dist_rank() == 0 && config_ignored_keys(&c, ignored, sizeof ignored))
        fprintf(stderr, "ewa train: warning: data.dataset = %s ignores %s\n", c.dataset, ignored);
    if (!rc) rc = train_run(&c, out, &o, &res, &err);
    if (rc) {
        if (dist_size() > 1) fprintf(stderr, "ewa train: rank %d of %d: %s\n", dist_rank(), dist_size(), err.msg);
        else fprintf(stderr, "ewa train: %s\n", err.msg);
        fflush(stderr);
        dist_abort(rc);   /* R > 1: ends every rank, mpirun exits non-zero */
        return rc;
    }
    dist_finalize();
    if (dist_rank() == 0)
        /* best: the test top-1 at the best-validation epoch (nan without data.val_size) */
        printf("status=%s top1=%.4f best=%.4f n=%d steps=%ld train_s=%.1f out=%s\n", res.status,
               res.final_top1, res.best_epoch ? res.best_top1 : NAN, res.n_test, res.steps,
               res.train_seconds, out);
    if (!strcmp(res.status, "interrupted")) return 128 + res.stop_signal;   /* 130 SIGINT, 143 SIGTERM */
    return strcmp(res.status, "ok") ? ERR_RUNTIME : 0;
}

static int cmd_eval(const Command *cmd, Parsed *p) {
    Err err = {0};
    double top1 = 0, loss = 0, smoothed = 0;
    int n = 0;
    int rc = eval_checkpoint(p->val[0], p->nlist, p->list, &top1, &n, &loss, &smoothed, &err);
    if (rc) { fprintf(stderr, "ewa eval: %s\n", err.msg); return rc; }
    /* loss: plain cross-entropy; loss_smoothed: with the run's label smoothing */
    printf("loss=%.6f loss_smoothed=%.6f\n", loss, smoothed);
    printf("top1=%.4f n=%d\n", top1, n);
    return 0;
}

static int cmd_grid(const Command *cmd, Parsed *p) {
    int jobs = 1, rc;
    if (p->val[1] && (rc = parse_int_opt("jobs", p->val[1], 1, 256, &jobs))) return rc;
    const char *export_kind = p->val[5];
    if (export_kind && strcmp(export_kind, "slurm") && strcmp(export_kind, "parallel"))
        return usage_error(cmd, "--export '%s': expected slurm or parallel", export_kind);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) { fprintf(stderr, "ewa grid: cannot find my own binary (/proc/self/exe)\n"); return ERR_RUNTIME; }
    exe[n] = '\0';
    GridSpec g;
    Err err = {0};
    if ((rc = grid_load(&g, p->val[0], p->val[2], p->val[3], &err))) {
        fprintf(stderr, "ewa grid: %s\n", err.msg);
        return rc;
    }
    /* --set: an override for every run, applied after the profile's (e.g. a
     * checkpoint made by an earlier grid) */
    g.sets = realloc(g.sets, sizeof(char *) * (size_t)(g.nsets + p->nlist + 1));
    for (int i = 0; i < p->nlist; i++) g.sets[g.nsets++] = strdup(p->list[i]);
    GridRun *runs = NULL;
    int nruns = 0;
    for (int i = 0; i < p->nlist && !rc; i++) rc = grid_check_set(&g, p->list[i], &err);
    if (!rc) rc = grid_expand(&g, &runs, &nruns, &err);
    if (!rc && p->val[9]) {   /* --seeds: keep a subset */
        uint64_t *seeds;
        int ns;
        Err e = {0};
        if ((rc = grid_parse_seeds(p->val[9], "--seeds", &seeds, &ns, &e))) {
            grid_runs_free(runs, nruns);
            grid_free(&g);
            return usage_error(cmd, "%s", e.msg);
        }
        rc = grid_keep_seeds(runs, &nruns, seeds, ns, &e);
        if (rc) err_set(&err, rc, "--seeds %s: %s", p->val[9], e.msg);
        g.nseeds = 0;   /* the seeds left, for the summary line */
        for (int k = 0; k < ns; k++)
            for (int i = 0; i < nruns; i++)
                if (runs[i].seed == seeds[k]) { g.nseeds++; break; }
        free(seeds);
    }
    if (!rc) {
        /* EWA_TEST_ASSUME_DIRTY=1 (tests only) makes a clean build count as dirty:
         * it can only refuse more, never allow */
        const char *force = getenv("EWA_TEST_ASSUME_DIRTY");
        GridOpts go = {.jobs = jobs, .dry_run = p->val[4] != NULL, .exe = exe, .export_kind = export_kind,
                       .build_dirty = force && !strcmp(force, "1") ? 1 : ewa_git_dirty(),
                       .build_commit = ewa_git_commit(), .allow_dirty = p->val[7] != NULL,
                       .retry_failed = p->val[8] != NULL, .subset = p->val[9] != NULL};
        rc = grid_run(&g, runs, nruns, &go, &err);
    }
    if (rc) fprintf(stderr, "ewa grid: %s\n", err.msg);
    grid_runs_free(runs, nruns);
    grid_free(&g);
    return rc;
}

static int cmd_record(const Command *cmd, Parsed *p) {
    int code = 0, rc;
    if (p->val[3]) {   /* --is-ok: a query for exported job scripts, appends nothing */
        Err err = {0};
        int ok = 0;
        if ((rc = runs_is_ok(p->val[0], p->val[1], &ok, &err))) {
            fprintf(stderr, "ewa record: %s\n", err.msg);
            return rc;
        }
        printf("%s %s\n", p->val[0], ok ? "ok" : "not recorded ok");
        return ok ? 0 : ERR_RUNTIME;
    }
    if (p->val[2] && (rc = parse_int_opt("exit", p->val[2], 0, 255, &code))) return rc;
    Err err = {0};
    int appended = 0;
    char st[16] = "";
    rc = grid_record(p->val[0], p->val[1], &appended, st, &err);
    if (rc) { fprintf(stderr, "ewa record: %s\n", err.msg); return rc; }
    printf("%s %s (train exit %d)%s\n", p->val[0], st, code,
           appended ? "" : ": already recorded ok, nothing appended");
    return 0;
}

static int cmd_aggregate(const Command *cmd, Parsed *p) {
    Err err = {0};
    int rc = aggregate_runs(p->val[0], p->val[1], p->val[2],
                            p->val[3] ? p->val[3] : "moe.method=dense", p->val[4] != NULL, &err);
    if (rc) fprintf(stderr, "ewa aggregate: %s\n", err.msg);
    return rc;
}

static int cmd_write_reference(const Command *cmd, Parsed *p) {
    if (!p->val[3] || !p->val[4])
        return usage_error(cmd, "%s", "--write-reference DIR and --from RESULTS_DIR go together");
    if (p->val[0] || p->val[1] || p->val[2] || p->val[6])
        return usage_error(cmd, "%s", "--write-reference takes no --ref, --new, --mode or --subset");
    Err err = {0};
    int rc = regress_write_reference(p->val[3], p->val[4], p->val[5] != NULL, stdout, &err);
    if (rc) fprintf(stderr, "ewa regress: %s\n", err.msg);
    return rc;
}

static int cmd_regress(const Command *cmd, Parsed *p) {
    if (p->val[3] || p->val[4] || p->val[5]) return cmd_write_reference(cmd, p);
    if (!p->val[0] || !p->val[1])
        return usage_error(cmd, "%s", "needs --ref DIR and --new DIR (or --write-reference DIR --from DIR)");
    Err err = {0};
    RegressMode mode = REGRESS_AUTO;
    if (p->val[2] && regress_parse_mode(p->val[2], &mode, &err)) return usage_error(cmd, "%s", err.msg);
    RegressResult r;
    int rc = regress_dirs(p->val[0], p->val[1], mode, p->val[6] != NULL, stdout, &r, &err);
    if (rc) fprintf(stderr, "ewa regress: %s\n", err.msg);
    int nfail = r.nfail;
    regress_result_free(&r);
    return rc ? rc : nfail ? ERR_RUNTIME : 0;
}

static int cmd_claims(const Command *cmd, Parsed *p) {
    Err err = {0};
    int rc = claims_run(p->val[0] ? p->val[0] : "paper_configs/claims.ini", p->val[1] ? p->val[1] : "results",
                        p->val[2] ? p->val[2] : "results/CLAIMS.md", &err);
    if (rc) fprintf(stderr, "ewa claims: %s\n", err.msg);
    return rc;
}

static int cmd_keys(const Command *cmd, Parsed *p) {
    config_print_keys(stdout);
    return 0;
}

#define SET_OPT {"set", "section.key=value", "override one config key", 0, 1}

static const Command COMMANDS[] = {
    {"train", "Trains one run; writes config.ini, metrics.csv, summary.csv and final.safetensors "
              "into DIR (created with its parents), and an epoch checkpoint while it runs. A DIR that holds "
              "a run is refused unless --overwrite (or --resume for an interrupted one). SIGINT/SIGTERM "
              "stop the run at its next step: status interrupted, exit 130/143.",
     {{"config", "FILE", "the run config (INI); with --resume, default DIR/config.ini", 0, 0},
      {"out", "DIR", "the run directory", 0, 0}, SET_OPT,
      {"resume", "DIR", "continue the interrupted run in DIR from its last epoch checkpoint", 0, 0},
      {"overwrite", NULL, "replace the run already in --out DIR", 0, 0}},
     cmd_train},
    {"eval", "Evaluates a checkpoint on its dataset's test split; prints loss=, then top1= n= last.",
     {{"checkpoint", "FILE", "a final.safetensors written by train", 1, 0}, SET_OPT},
     cmd_eval},
    {"grid", "Runs (or exports) every run of a grid file; resumable, see grid.h. Refuses to start\n"
             "(exit 2) when bin/ewa was built from a tree with uncommitted changes to tracked files\n"
             "outside results/ (git_dirty=1), unless --allow-dirty; --dry-run always works.",
     {{"config", "GRID.ini", "the grid file", 1, 0},
      {"jobs", "N", "runs in parallel (default 1); threads per run = cores / N", 0, 0},
      {"profile", "NAME", "apply the grid's [profile.NAME] (smoke, cpu, paper)", 0, 0},
      {"out", "DIR", "output directory instead of the grid's [grid] out", 0, 0},
      {"dry-run", NULL, "print the runs and their status only", 0, 0},
      {"export", "slurm|parallel", "write the pending runs as cluster jobs instead", 0, 0},
      SET_OPT,
      {"allow-dirty", NULL, "run (or export) even from a binary built with uncommitted changes", 0, 0},
      {"retry-failed", NULL, "rerun the runs recorded failed or diverged (else they count as done)", 0, 0},
      {"seeds", "LIST", "only the runs of these seeds, e.g. 1 or 1,2 (a subset to rerun for `ewa regress --subset`)", 0, 0}},
     cmd_grid},
    {"record", "Appends a finished run's row to a grid's runs.csv (used by exported jobs).",
     {{"run", "RUN_DIR", "the run directory", 1, 0}, {"to", "RUNS.csv", "the runs.csv", 1, 0},
      {"exit", "CODE", "exit code of the run's train command (reported)", 0, 0},
      {"is-ok", NULL, "only ask: exit 0 if RUNS.csv holds an ok row of the run, else 1", 0, 0}},
     cmd_record},
    {"aggregate", "Aggregates a runs.csv into table.csv, table.md and figure data.",
     {{"runs", "RUNS.csv", "the grid's runs.csv", 1, 0}, {"out", "DIR", "output directory", 1, 0},
      {"group", "key,key,...", "group columns (default: the swept keys)", 0, 0},
      {"baseline", "key=value", "the baseline rows (default moe.method=dense)", 0, 0},
      {"partial", NULL, "aggregate although runs of the grid's plan.csv have no row yet, into an --out outside the grid's directory (table.md says so)", 0, 0}},
     cmd_aggregate},
    {"regress",
     "Checks fresh grid results against a reference directory (results/reference/PROFILE:\n"
     "runs.csv, table.csv, table.md, platform.csv); exit 1 on a regression.\n"
     "  exact: every reference run (by run_id) must reproduce final_top1 and checkpoint_sha256\n"
     "         bit for bit; each mismatch names the run, its cell, the field, old and new.\n"
     "  stat:  per cell, Welch t-tests of the new final_top1 values and of the per-seed\n"
     "         differences to the baseline (dense) cell against the reference's; Holm over\n"
     "         all tests, a test fails at p_holm < 0.01.\n"
     "  auto:  exact when the new runs' platform fingerprint (CPU, BLAS and kernel, GEMM\n"
     "         library and ISA, compiler, build flags, threads) equals the reference's and\n"
     "         both record checkpoint_sha256; otherwise says why and falls back to stat.\n"
     "--write-reference DIR --from RESULTS_DIR writes a reference from a clean grid's results\n"
     "(`make reference PROFILE=...`); a commit that changes numerics on purpose regenerates it.",
     {{"ref", "DIR", "the reference directory (or a file in it)", 0, 0},
      {"new", "DIR", "the fresh results directory with runs.csv (or a file in it)", 0, 0},
      {"mode", "exact|stat|auto", "the check (default auto)", 0, 0},
      {"write-reference", "DIR", "write a reference directory instead of checking", 0, 0},
      {"from", "RESULTS_DIR", "the grid output the reference is written from", 0, 0},
      {"allow-dirty", NULL, "write it even from runs built from a dirty tree (git_dirty = 1)", 0, 0},
      {"subset", NULL, "the new results rerun only some reference runs (`ewa grid --seeds`): check those", 0, 0}},
     cmd_regress},
    {"claims", "Writes the verdict on each claim of the papers (results/CLAIMS.md) from the aggregated tables.",
     {{"config", "FILE", "the claim definitions (default paper_configs/claims.ini)", 0, 0},
      {"results", "DIR", "the directory the claims' table paths are relative to (default results)", 0, 0},
      {"out", "FILE", "the Markdown file to write (default results/CLAIMS.md)", 0, 0}},
     cmd_claims},
    {"keys", "Lists every config key: section.key, type, default and what it means.", {{0}},
     cmd_keys},
};

static const Command *commands(int *n) {
    *n = (int)(sizeof COMMANDS / sizeof COMMANDS[0]);
    return COMMANDS;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage_error(NULL, "%s", "missing command");
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
        print_usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version")) {
        print_version();
        return 0;
    }
    int n;
    const Command *cs = commands(&n);
    for (int i = 0; i < n; i++) {
        if (strcmp(cs[i].name, name)) continue;
        Parsed p;
        int rc = parse_command(&cs[i], argc - 1, argv + 1, &p);
        if (rc == 0) rc = cs[i].run(&cs[i], &p);
        else if (rc < 0) rc = 0;
        free(p.list);
        return rc;
    }
    return usage_error(NULL, "unknown command '%s'", name);
}
