/* Grid job export: instead of running the pending runs, write them out for a
 * cluster, as a Slurm job array (jobs.sbatch + jobs.list) or a GNU parallel
 * job list (jobs.txt). Every task trains one prepared run directory and
 * records it with `ewa record`. See grid.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "grid.h"
#include "../core/fsutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

static int export_parallel(const char *out_abs, const char *exe, char **dirs, int np, int threads,
                           Err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/jobs.txt", out_abs);
    Text t;
    if (text_open(&t, path, err)) return ERR_RUNTIME;
    for (int i = 0; i < np; i++)
        fprintf(t.f,
                "rm -f '%s/summary.csv'; '%s' train --config '%s/config.ini' --out '%s' > '%s/train.log' 2>&1; "
                "'%s' record --run '%s' --to '%s/runs.csv' --exit $?\n",
                dirs[i], exe, dirs[i], dirs[i], dirs[i], exe, dirs[i], out_abs);
    if (text_write(&t, path, err)) return ERR_RUNTIME;
    printf("wrote %s: %d runs (train.threads = %d); run them with\n  parallel -j N < %s\n"
           "then: ewa aggregate --runs %s/runs.csv --out %s\n",
           path, np, threads, path, out_abs, out_abs);
    return 0;
}

static int export_slurm(const GridSpec *g, const char *out_abs, const char *exe, char **dirs, int np,
                        int threads, Err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/jobs.list", out_abs);
    Text t;
    if (text_open(&t, path, err)) return ERR_RUNTIME;
    for (int i = 0; i < np; i++) fprintf(t.f, "%s\n", strrchr(dirs[i], '/') + 1);
    if (text_write(&t, path, err)) return ERR_RUNTIME;
    snprintf(path, sizeof path, "%s/jobs.sbatch", out_abs);
    if (text_open(&t, path, err)) return ERR_RUNTIME;
    fprintf(t.f,
            "#!/bin/bash\n"
            "# Slurm job array for the grid %s (%d runs, one per task).\n"
            "# Submit: sbatch %s   Then: ewa aggregate --runs %s/runs.csv --out %s\n"
            "#SBATCH --job-name=ewa-grid\n"
            "#SBATCH --array=1-%d\n"
            "#SBATCH --cpus-per-task=%d\n"
            "#SBATCH --output=%s/runs/slurm-%%A_%%a.log\n"
            "set -u\n"
            "EWA='%s'\n"
            "OUT='%s'\n"
            "ID=$(sed -n \"${SLURM_ARRAY_TASK_ID}p\" \"$OUT/jobs.list\")\n"
            "RUN=\"$OUT/runs/$ID\"\n"
            "rm -f \"$RUN/summary.csv\"\n"
            "\"$EWA\" train --config \"$RUN/config.ini\" --out \"$RUN\" "
            "--set train.threads=\"${SLURM_CPUS_PER_TASK:-1}\" > \"$RUN/train.log\" 2>&1\n"
            "rc=$?\n"
            "\"$EWA\" record --run \"$RUN\" --to \"$OUT/runs.csv\" --exit $rc\n",
            g->path, np, path, out_abs, out_abs, np > 0 ? np : 1, threads, out_abs, exe, out_abs);
    if (text_write(&t, path, err)) return ERR_RUNTIME;
    chmod(path, 0755);
    printf("wrote %s and %s/jobs.list: %d runs\n", path, out_abs, np);
    return 0;
}

int grid_export(const GridSpec *g, const char *out_abs, const char *exe, const char *kind,
                char **dirs, int np, int threads, Err *err) {
    if (!strcmp(kind, "parallel")) return export_parallel(out_abs, exe, dirs, np, threads, err);
    return export_slurm(g, out_abs, exe, dirs, np, threads, err);
}
