/* Grid job export: instead of running the pending runs, write them out for a
 * cluster, as a Slurm job array (jobs.sbatch + jobs.list, aggregate.sbatch
 * and submit.sh, which chains the aggregation with --dependency=afterok) or a
 * GNU parallel job list (jobs.txt). Every task
 *  - exits at once when its run already has an ok row in runs.csv
 *    (`ewa record --is-ok`), so re-submitting never retrains a finished run;
 *  - trains its prepared run directory with pinned threads (train.threads,
 *    OMP_WAIT_POLICY=PASSIVE: as the local runner does), with --resume: a
 *    task killed at its time limit (SIGTERM: status interrupted) continues
 *    from its last epoch checkpoint when it is submitted again;
 *  - records the run with `ewa record` and exits with the training's status,
 *    so a failed run is a failed task (FAILED in Slurm, non-zero in parallel).
 * Paths in the scripts are relative to the directory the export ran in (the
 * submit directory) when they lie under it, so an exported tree can be copied
 * to a cluster. Nothing to run: a message, and no script. See grid.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "grid.h"
#include "../core/fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Text built with open_memstream, written atomically to path. */
typedef struct {
    char *text;
    size_t len;
    FILE *f;
} Text;

static int text_open(Text *t, const char *path, Err *err) {
    t->text = NULL;
    t->len = 0;
    t->f = open_memstream(&t->text, &t->len);
    return t->f ? 0 : err_set(err, ERR_RUNTIME, "%s: out of memory", path);
}

static int text_write(Text *t, const char *path, Err *err) {
    int rc = fclose(t->f) ? err_set(err, ERR_RUNTIME, "%s: out of memory", path)
                          : fs_write_atomic(path, t->text, t->len, err);
    free(t->text);
    return rc;
}

/* path relative to the working directory when it lies under it, else path. */
static void rel_path(const char *path, char *out, size_t n) {
    char cwd[4096];
    size_t cl;
    if (!getcwd(cwd, sizeof cwd) || (cl = strlen(cwd)) == 0) { snprintf(out, n, "%s", path); return; }
    if (!strcmp(path, cwd)) snprintf(out, n, ".");
    else if (cl == 1 && path[0] == '/') snprintf(out, n, "%s", path + 1);   /* cwd is / */
    else if (!strncmp(path, cwd, cl) && path[cl] == '/') snprintf(out, n, "%s", path + cl + 1);
    else snprintf(out, n, "%s", path);
}

/* s single-quoted for sh: ' becomes '\'' */
static void sh_quote(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++)
        if (*s == '\'') fputs("'\\''", f);
        else fputc(*s, f);
    fputc('\'', f);
}

static const char *const EXPORT_FILES[] = {"jobs.txt", "jobs.list", "jobs.sbatch", "aggregate.sbatch",
                                           "submit.sh"};

/* Nothing to submit: remove the scripts of an earlier export (running them
 * again could only append junk), say so. */
static int nothing_to_submit(const GridSpec *g, const char *out_abs, Err *err) {
    char path[FS_PATH_BUF];
    for (size_t i = 0; i < sizeof EXPORT_FILES / sizeof *EXPORT_FILES; i++) {
        snprintf(path, sizeof path, "%s/%s", out_abs, EXPORT_FILES[i]);
        if (unlink(path) && errno != ENOENT)
            return err_set(err, ERR_RUNTIME, "%s: cannot remove the earlier export: %s", path, strerror(errno));
    }
    printf("grid %s: every run is already recorded ok in %s/runs.csv: nothing to submit, no job script "
           "written\n", g->path, g->out);
    return 0;
}

/* The body shared by both kinds: RUN and OUT set; skip an ok run, train with
 * THREADS threads, record, exit with the training's status. */
static void task_body(FILE *f, const char *sep, const char *threads_expr) {
    fprintf(f,
            "if \"$EWA\" record --run \"$RUN\" --to \"$OUT/runs.csv\" --is-ok >/dev/null 2>&1; then "
            "echo \"run $RUN is already recorded ok in $OUT/runs.csv: nothing to do\"; exit 0; fi%s"
            "rm -f \"$RUN/summary.csv\"%s"
            "OMP_WAIT_POLICY=\"${OMP_WAIT_POLICY:-PASSIVE}\" \"$EWA\" train --config \"$RUN/config.ini\" "
            "--resume \"$RUN\" --set train.threads=%s >> \"$RUN/train.log\" 2>&1%s"
            "rc=$?%s"
            "\"$EWA\" record --run \"$RUN\" --to \"$OUT/runs.csv\" --exit $rc || exit 1%s"
            "[ $rc -eq 0 ] || echo \"run $RUN failed (exit $rc): see $RUN/train.log\" >&2%s"
            "exit $rc\n",
            sep, sep, threads_expr, sep, sep, sep, sep);
}

static int export_parallel(const GridSpec *g, const char *out_abs, const char *exe, char **dirs, int np,
                           int threads, Err *err) {
    char path[FS_PATH_BUF], out[FS_PATH_BUF], ex[FS_PATH_BUF], run[FS_PATH_BUF];
    snprintf(path, sizeof path, "%s/jobs.txt", out_abs);
    rel_path(out_abs, out, sizeof out);
    rel_path(exe, ex, sizeof ex);
    char th[16];
    snprintf(th, sizeof th, "%d", threads);
    Text t;
    if (text_open(&t, path, err)) return ERR_RUNTIME;
    for (int i = 0; i < np; i++) {
        rel_path(dirs[i], run, sizeof run);
        fputs("EWA=", t.f);
        sh_quote(t.f, ex);
        fputs("; OUT=", t.f);
        sh_quote(t.f, out);
        fputs("; RUN=", t.f);
        sh_quote(t.f, run);
        fputs("; ", t.f);
        task_body(t.f, "; ", th);
    }
    if (text_write(&t, path, err)) return ERR_RUNTIME;
    int jobs = grid_cpu_count() / threads;
    if (jobs < 1) jobs = 1;
    printf("wrote %s: %d runs, train.threads = %d each; from this directory run\n"
           "  parallel -j %d < %s\n"
           "then: %s aggregate --runs %s/runs.csv --out %s\n",
           path, np, threads, jobs, path, ex, out, out);
    return 0;
}


/* The lines every script starts with: paths relative to the submit directory. */
static void script_paths(FILE *f, const char *ex, const char *out) {
    fputs("EWA=", f);
    sh_quote(f, ex);
    fputs("\nOUT=", f);
    sh_quote(f, out);
    fputs("\ncd \"${SLURM_SUBMIT_DIR:-.}\" || exit 1\n"
          "[ -f \"$OUT/jobs.list\" ] || { echo \"$OUT/jobs.list not found under $(pwd): submit from the directory "
          "the grid was exported in\" >&2; exit 1; }\n",
          f);
}

/* What follows the #SBATCH lines of the grid's own header in every sbatch
 * script: the [slurm] resources, set -u and the paths. */
static void sbatch_preamble(FILE *f, const GridSlurm *s, const char *ex, const char *out) {
    if (s->time[0]) fprintf(f, "#SBATCH --time=%s\n", s->time);
    if (s->mem[0]) fprintf(f, "#SBATCH --mem=%s\n", s->mem);
    if (s->partition[0]) fprintf(f, "#SBATCH --partition=%s\n", s->partition);
    for (int i = 0; i < s->nextra; i++) fprintf(f, "#SBATCH %s\n", s->extra[i]);
    fputs("set -u\n", f);
    script_paths(f, ex, out);
}

/* Commits a script written through text_open and makes it executable. */
static int script_write(Text *t, const char *path, Err *err) {
    if (text_write(t, path, err)) return ERR_RUNTIME;
    chmod(path, 0755);
    return 0;
}

static int write_array(const GridSpec *g, const char *out_abs, const char *ex, const char *out, int np,
                       Err *err) {
    const GridSlurm *s = &g->slurm;
    int cpus = s->cpus_per_task > 0 ? s->cpus_per_task : 1;
    char path[FS_PATH_BUF], throttle[24] = "";
    if (s->array_throttle > 0) snprintf(throttle, sizeof throttle, "%%%d", s->array_throttle);
    snprintf(path, sizeof path, "%s/jobs.sbatch", out_abs);
    Text t;
    if (text_open(&t, path, err)) return ERR_RUNTIME;
    fprintf(t.f,
            "#!/bin/bash\n"
            "# Slurm job array of the grid %s: %d runs, one per task (ewa grid --export slurm).\n"
            "# Paths are relative to the directory it was exported in; submit from there:\n"
            "#   sh %s/submit.sh     (this array, then aggregate.sbatch after every task succeeded)\n"
            "#SBATCH --job-name=ewa-grid\n"
            "#SBATCH --array=1-%d%s\n"
            "#SBATCH --cpus-per-task=%d\n"
            "#SBATCH --output=%s/runs/slurm-%%A_%%a.log\n",
            g->path, np, out, np, throttle, cpus, out);
    sbatch_preamble(t.f, s, ex, out);
    fprintf(t.f,
            "ID=$(sed -n \"${SLURM_ARRAY_TASK_ID:?not a Slurm array task}p\" \"$OUT/jobs.list\")\n"
            "[ -n \"$ID\" ] || { echo \"no line $SLURM_ARRAY_TASK_ID in $OUT/jobs.list\" >&2; exit 1; }\n"
            "RUN=\"$OUT/runs/$ID\"\n");
    task_body(t.f, "\n", "\"${SLURM_CPUS_PER_TASK:-1}\"");
    return script_write(&t, path, err);
}

static int write_aggregate_and_submit(const GridSpec *g, const char *out_abs, const char *ex, const char *out,
                                      Err *err) {
    char path[FS_PATH_BUF];
    snprintf(path, sizeof path, "%s/aggregate.sbatch", out_abs);
    Text t;
    if (text_open(&t, path, err)) return ERR_RUNTIME;
    fprintf(t.f,
            "#!/bin/bash\n"
            "# Aggregation of the grid %s, submitted by submit.sh to run after every task of\n"
            "# jobs.sbatch succeeded (--dependency=afterok).\n"
            "#SBATCH --job-name=ewa-grid-aggregate\n"
            "#SBATCH --cpus-per-task=1\n"
            "#SBATCH --output=%s/aggregate-%%j.log\n",
            g->path, out);
    sbatch_preamble(t.f, &g->slurm, ex, out);
    fputs("exec \"$EWA\" aggregate --runs \"$OUT/runs.csv\" --out \"$OUT\"\n", t.f);
    if (script_write(&t, path, err)) return ERR_RUNTIME;

    snprintf(path, sizeof path, "%s/submit.sh", out_abs);
    if (text_open(&t, path, err)) return ERR_RUNTIME;
    fprintf(t.f,
            "#!/bin/sh\n"
            "# Submits the job array of the grid %s, then its aggregation, which runs only\n"
            "# after every task succeeded and is cancelled if one fails. Run it from the\n"
            "# directory the grid was exported in; arguments go to both sbatch calls:\n"
            "#   sh %s/submit.sh [--account=NAME ...]\n"
            "set -eu\n"
            "OUT=",
            g->path, out);
    sh_quote(t.f, out);
    fputs("\n[ -f \"$OUT/jobs.list\" ] || { echo \"submit.sh: $OUT/jobs.list not found under $(pwd): run me from "
          "the directory the grid was exported in\" >&2; exit 1; }\n"
          "array=$(sbatch --parsable \"$@\" \"$OUT/jobs.sbatch\")\n"
          "array=${array%;*}\n"
          "agg=$(sbatch --parsable \"$@\" --dependency=afterok:\"$array\" --kill-on-invalid-dep=yes "
          "\"$OUT/aggregate.sbatch\")\n"
          "agg=${agg%;*}\n"
          "echo \"submitted job array $array and aggregation job $agg (after every task of $array succeeded)\"\n",
          t.f);
    return script_write(&t, path, err);
}

static int export_slurm(const GridSpec *g, const char *out_abs, const char *exe, char **dirs, int np,
                        Err *err) {
    char path[FS_PATH_BUF], out[FS_PATH_BUF], ex[FS_PATH_BUF];
    rel_path(out_abs, out, sizeof out);
    rel_path(exe, ex, sizeof ex);
    snprintf(path, sizeof path, "%s/jobs.list", out_abs);
    Text t;
    if (text_open(&t, path, err)) return ERR_RUNTIME;
    for (int i = 0; i < np; i++) fprintf(t.f, "%s\n", strrchr(dirs[i], '/') + 1);
    if (text_write(&t, path, err)) return ERR_RUNTIME;
    if (write_array(g, out_abs, ex, out, np, err) || write_aggregate_and_submit(g, out_abs, ex, out, err))
        return ERR_RUNTIME;
    const GridSlurm *s = &g->slurm;
    printf("wrote %s/jobs.sbatch (array of %d runs, %d cpus each%s%s%s%s), jobs.list, aggregate.sbatch and "
           "submit.sh; from this directory run\n  sh %s/submit.sh\n",
           out, np, s->cpus_per_task > 0 ? s->cpus_per_task : 1, s->time[0] ? ", time " : "", s->time,
           s->mem[0] ? ", mem " : "", s->mem, out);
    return 0;
}

int grid_export(const GridSpec *g, const char *out_abs, const char *exe, const char *kind,
                char **dirs, int np, int threads, Err *err) {
    if (np == 0) return nothing_to_submit(g, out_abs, err);
    if (!strcmp(kind, "parallel")) return export_parallel(g, out_abs, exe, dirs, np, threads, err);
    return export_slurm(g, out_abs, exe, dirs, np, err);
}
