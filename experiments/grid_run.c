/* The local grid runner: prepares the run directories, runs `ewa train` in
 * --jobs child processes, records each finished run and draws the progress
 * line. See grid.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "grid.h"
#include "runrecord.h"
#include "trainstate.h"
#include "util.h"
#include "../core/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int grid_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void fmt_dur(char *b, size_t n, double s) {
    if (!(s >= 0) || s > 1e8) { snprintf(b, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(b, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(b, n, "%ldm%02lds", t / 60, t % 60);
}

/* OUT/runs/<id>/sweep.txt (the swept "key=value;..." for reading) and
 * sweep.csv (one column sweep.KEY per swept key, one row of its values,
 * through libcsv: lossless whatever the values hold). */
static int write_sweep_files(const char *dir, const GridRun *r, Err *err) {
    char path[4400];
    snprintf(path, sizeof path, "%s/sweep.txt", dir);
    char *t = xrealloc(NULL, strlen(r->sweep) + 2);
    sprintf(t, "%s\n", r->sweep);
    int rc = fs_write_text_atomic(path, t, err);
    free(t);
    snprintf(path, sizeof path, "%s/sweep.csv", dir);
    if (rc) return rc;
    if (!r->nsw) {   /* no swept key: no sweep columns */
        unlink(path);
        return 0;
    }
    char **hdr = xmalloc(sizeof(char *) * (size_t)r->nsw);
    for (int i = 0; i < r->nsw; i++) {
        hdr[i] = xmalloc(strlen(r->sw_keys[i]) + 8);
        sprintf(hdr[i], "sweep.%s", r->sw_keys[i]);
    }
    rc = csv_write_file(path, r->nsw, (const char *const *)hdr, 1, (const char *const *)r->sw_vals, err);
    grid_free_strs(hdr, r->nsw);
    return rc;
}

/* Creates OUT/runs/<id>/ with config.ini (threads set) for a run that starts
 * afresh; removes a stale summary.csv from an earlier attempt. */
static int prepare_run(const char *dir, GridRun *r, int threads, Err *err) {
    if (fs_mkdir_p(dir, err)) return ERR_RUNTIME;
    char path[4400];
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    unlink(path);
    RunConfig c = r->cfg;
    c.threads = threads;
    snprintf(path, sizeof path, "%s/config.ini", dir);
    if (config_write(&c, path, err)) return ERR_RUNTIME;
    return write_sweep_files(dir, r, err);
}

/* The status in a run dir's summary.csv when it is a run of exactly this
 * config and seed ("" otherwise). */
static void summary_of(const char *out, const GridRun *r, char *status, size_t n) {
    char path[4200];
    status[0] = '\0';
    snprintf(path, sizeof path, "%s/runs/%s/summary.csv", out, r->id);
    if (!fs_file_nonempty(path)) return;
    CsvTable t;
    Err e;
    if (csv_read_file(path, &t, &e)) return;
    int cs = csv_col(&t, "status"), ch = csv_col(&t, "config_hash"), cd = csv_col(&t, "seed");
    char hash[17], seed[32];
    snprintf(hash, sizeof hash, "%016" PRIx64, config_hash(&r->cfg));
    snprintf(seed, sizeof seed, "%" PRIu64, r->seed);
    if (t.nrows == 1 && cs >= 0 && ch >= 0 && cd >= 0 && !strcmp(csv_cell(&t, 0, ch), hash) &&
        !strcmp(csv_cell(&t, 0, cd), seed))
        snprintf(status, n, "%s", csv_cell(&t, 0, cs));
    csv_table_free(&t);
}

/* What the runner does with a run (grid.h, grid_run). */
typedef enum { PLAN_DONE, PLAN_SKIP_FAILED, PLAN_RECORD, PLAN_RESUME, PLAN_FRESH, PLAN_REUSE } Plan;

/* grid.reuse (grid.h): the results directories of g and of its parts (a
 * union's parts may name their own), each with its runs.csv when it has one. */
typedef struct {
    int n;
    const char **dir;   /* n each; the names are g's */
    CsvTable *t;
    int *have;
} ReuseSet;

static void reuse_add(ReuseSet *rs, const GridSpec *g) {
    for (int i = 0; i < g->nreuse; i++) {
        int dup = 0;
        for (int k = 0; k < rs->n && !dup; k++) dup = !strcmp(rs->dir[k], g->reuse[i]);
        if (dup) continue;
        rs->dir = xrealloc(rs->dir, sizeof *rs->dir * (size_t)(rs->n + 1));
        rs->dir[rs->n++] = g->reuse[i];
    }
    for (int k = 0; k < g->nparts; k++) reuse_add(rs, &g->parts[k]);
}

static int reuse_open(const GridSpec *g, ReuseSet *rs, Err *err) {
    memset(rs, 0, sizeof *rs);
    reuse_add(rs, g);
    rs->t = calloc((size_t)rs->n + 1, sizeof *rs->t);
    rs->have = calloc((size_t)rs->n + 1, sizeof *rs->have);
    if (!rs->t || !rs->have) return err_set(err, ERR_RUNTIME, "out of memory");
    for (int k = 0; k < rs->n; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/runs.csv", rs->dir[k]);
        if (!fs_file_nonempty(path)) continue;   /* nothing made there yet: nothing to reuse */
        Err e = {0};
        if (csv_read_file(path, &rs->t[k], &e))
            return err_set(err, ERR_RUNTIME, "%s: %s", GRID_REUSE_KEY, e.msg);
        rs->have[k] = 1;
    }
    return 0;
}

static void reuse_close(ReuseSet *rs) {
    for (int k = 0; rs->have && k < rs->n; k++)
        if (rs->have[k]) csv_table_free(&rs->t[k]);
    free(rs->dir);
    free(rs->t);
    free(rs->have);
}

/* The index of a reuse directory holding run id ok, from a clean tree, with
 * its run directory's summary; -1 if none. */
static int reuse_find(const ReuseSet *rs, const char *id) {
    for (int k = 0; k < rs->n; k++) {
        const CsvTable *t = &rs->t[k];
        int ci = rs->have[k] ? csv_col(t, "run_id") : -1, cs = csv_col(t, "status"), cd = csv_col(t, "git_dirty");
        if (ci < 0 || cs < 0 || cd < 0) continue;
        for (int r = 0; r < t->nrows; r++) {
            if (strcmp(csv_cell(t, r, ci), id) || strcmp(csv_cell(t, r, cs), "ok") || strcmp(csv_cell(t, r, cd), "0"))
                continue;
            char sum[4200];
            snprintf(sum, sizeof sum, "%s/runs/%s/summary.csv", rs->dir[k], id);
            if (fs_file_nonempty(sum)) return k;
        }
    }
    return -1;
}

static Plan plan_run(const char *out, const GridRun *r, const CsvTable *t, int retry_failed, const ReuseSet *rs,
                     int *src) {
    const char *st = t ? runs_row_status(t, r->id) : NULL;
    if (st) return !strcmp(st, "ok") ? PLAN_DONE : retry_failed ? PLAN_FRESH : PLAN_SKIP_FAILED;
    char sum[32], state[4200];
    summary_of(out, r, sum, sizeof sum);
    if (sum[0] && strcmp(sum, "interrupted")) return PLAN_RECORD;   /* finished before a grid stopped */
    snprintf(state, sizeof state, "%s/runs/%s/" TRAINSTATE_FILE, out, r->id);
    if (sum[0] || access(state, F_OK) == 0) return PLAN_RESUME;
    *src = reuse_find(rs, r->id);
    return *src >= 0 ? PLAN_REUSE : PLAN_FRESH;
}

/* plans[i] for every run, from OUT/runs.csv, the run directories and the
 * grid.reuse directories (src[i]: the reuse directory of a PLAN_REUSE run). */
static int plan_runs(const GridSpec *g, GridRun *runs, int n, int retry_failed, const ReuseSet *rs, Plan *plans,
                     int *src, Err *err) {
    char runs_csv[4200];
    snprintf(runs_csv, sizeof runs_csv, "%s/runs.csv", g->out);
    CsvTable t;
    int have = fs_file_nonempty(runs_csv);
    if (have && csv_read_file(runs_csv, &t, err)) return ERR_RUNTIME;
    for (int i = 0; i < n; i++) {
        src[i] = -1;
        plans[i] = plan_run(g->out, &runs[i], have ? &t : NULL, retry_failed, rs, &src[i]);
    }
    if (have) csv_table_free(&t);
    return 0;
}

/* A PLAN_REUSE run: the files of its run directory in rs's directory k
 * copied into dir, its sweep files rewritten for this grid, its row recorded. */
static int reuse_run(const ReuseSet *rs, int k, const GridRun *r, const char *dir, const char *runs_csv,
                     Err *err) {
    char from[4200], st[16];
    snprintf(from, sizeof from, "%s/runs/%s", rs->dir[k], r->id);
    if (fs_mkdir_p(dir, err) || fs_copy_dir_files(from, dir, NULL, err) || write_sweep_files(dir, r, err) ||
        grid_record(dir, runs_csv, NULL, st, err))
        return ERR_RUNTIME;
    return 0;
}

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) { g_stop = sig; }

typedef struct {
    pid_t pid;
    int run;
    double t0;
} Slot;

/* `ewa train` of the run in dir: --resume DIR, or afresh (--overwrite). */
static pid_t spawn_run(const char *exe, const char *dir, int threads, int resume) {
    char cfg[4200], logp[4200], th[16];
    snprintf(cfg, sizeof cfg, "%s/config.ini", dir);
    snprintf(logp, sizeof logp, "%s/train.log", dir);
    snprintf(th, sizeof th, "%d", threads);
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* child: dies with the grid (even a SIGKILLed one) */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    int in = open("/dev/null", O_RDONLY), lg = open(logp, O_WRONLY | O_CREAT | (resume ? O_APPEND : O_TRUNC), 0644);
    if (in >= 0) dup2(in, 0);
    if (lg >= 0) { dup2(lg, 1); dup2(lg, 2); }
    setenv("OMP_NUM_THREADS", th, 1);
    setenv("OPENBLAS_NUM_THREADS", th, 1);
    /* Spinning OpenMP threads collapse when the cores are shared (a vit-micro
     * run with 2 threads on this 2-core machine next to one busy process took
     * 49 s spinning, 6 s passive): sleep instead, unless the user chose. */
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    char *fresh[] = {(char *)exe, "train", "--config", cfg, "--out", (char *)dir, "--overwrite", NULL};
    char *cont[] = {(char *)exe, "train", "--resume", (char *)dir, NULL};
    execv(exe, resume ? cont : fresh);
    fprintf(stderr, "ewa grid: cannot execute %s: %s\n", exe, strerror(errno));
    _exit(127);
}

typedef struct {
    int total, done_before, done_now, failed, running;
    double t0;
    int tty;
} Progress;

static void progress_line(const Progress *p, int final) {
    double el = now_s() - p->t0;
    int remaining = p->total - p->done_before - p->done_now;
    double eta = p->done_now ? el / p->done_now * remaining : -1;
    char e1[32], e2[32];
    fmt_dur(e1, sizeof e1, el);
    fmt_dur(e2, sizeof e2, eta);
    fprintf(stderr, "%s[grid] %d/%d runs done, %d failed, %d running, elapsed %s, ETA %s%s",
            p->tty ? "\r\033[K" : "", p->done_before + p->done_now, p->total, p->failed,
            p->running, e1, e2, p->tty && !final ? "" : "\n");
    fflush(stderr);
}

int grid_provenance_check(int dirty, const char *commit, int allow, Err *err) {
    if (dirty == 0 || allow) return 0;
    if (dirty < 0)
        return err_set(err, ERR_USAGE, "this binary does not know whether its source tree had uncommitted "
                       "changes (built outside the Makefile, commit %s), so its runs could not be traced to a "
                       "commit; rebuild with `make` from a git checkout, or pass --allow-dirty to run anyway",
                       commit);
    return err_set(err, ERR_USAGE, "this binary was built from a tree with uncommitted changes to tracked files "
                   "outside results/ (commit %s, git_dirty=1), so its runs could not be traced to a commit; "
                   "commit (or stash) the changes and rebuild with `make`, or pass --allow-dirty to run anyway "
                   "(every run then records git_dirty=1)", commit);
}

/* The dry run's plan (nothing is created). */
static void dry_run(const GridSpec *g, const GridRun *runs, int n, const Plan *plans, int jobs, int threads,
                    int cores, const GridOpts *o) {
    static const char *const label[] = {"ok     ", "failed (recorded; --retry-failed reruns it)", "ok     ",
                                        "resume ", "pending", "reuse  "};
    int ndone = 0, nskip = 0, nreuse = 0;
    for (int i = 0; i < n; i++) {
        ndone += plans[i] == PLAN_DONE || plans[i] == PLAN_RECORD;
        nskip += plans[i] == PLAN_SKIP_FAILED;
        nreuse += plans[i] == PLAN_REUSE;
    }
    char copy[64] = "";
    if (nreuse) snprintf(copy, sizeof copy, "%d to copy (%s), ", nreuse, GRID_REUSE_KEY);
    printf("grid %s: %d runs (%d seeds), %d already ok, %d recorded failed, %s%d to run; out %s\n", g->path, n,
           g->nseeds, ndone, nskip, copy, n - ndone - nskip - nreuse, g->out);
    if (g->profile[0] && g->nparts) printf("profile %s, the union of %d parts%s", g->profile, g->nparts,
                                           g->nsets ? "; for every part:" : "");
    else if (g->profile[0]) printf("profile %s:", g->profile);
    for (int i = 0; i < g->nsets; i++) printf(" %s", g->sets[i]);
    if (g->profile[0]) printf("\n");
    for (int k = 0; k < g->nparts; k++) {   /* a union profile (grid.h) */
        const GridSpec *p = &g->parts[k];
        printf("  part %s (%d seeds):", p->profile, p->nseeds);
        for (int i = 0; i < p->nsets; i++) printf(" %s", p->sets[i]);
        for (int a = 0; a < p->naxes; a++) printf(" [%s = %d values]", p->axes[a].key, p->axes[a].nvals);
        printf("\n");
    }
    printf("jobs %d, train.threads %d per run (%d cores)\n", jobs, threads, cores);
    Err e;
    if (grid_provenance_check(o->build_dirty, o->build_commit, o->allow_dirty, &e))
        printf("note: running it would be refused: %s\n", e.msg);
    int merged = 0;
    for (int i = 0; i < n; i++) merged += runs[i].merged;
    if (merged)
        printf("%d more combinations are the same training as a listed run (they differ only "
               "in keys the method ignores) and run once\n", merged);
    for (int i = 0; i < n; i++)
        printf("%s %s seed=%" PRIu64 " %s%s\n", runs[i].id, label[plans[i]], runs[i].seed, runs[i].sweep,
               runs[i].merged ? " (+ identical combinations)" : "");
}

/* Takes OUT/.grid.lock (one grid per directory). */
static int lock_grid(const char *out, int *fd, Err *err) {
    char lockp[4200];
    snprintf(lockp, sizeof lockp, "%s/.grid.lock", out);
    *fd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)   /* e.g. a read-only directory: say so, not "another grid" */
        return err_set(err, ERR_RUNTIME, "%s: cannot create the lock file: %s", lockp, strerror(errno));
    if (!flock(*fd, LOCK_EX | LOCK_NB)) return 0;
    int e = errno;
    close(*fd);
    *fd = -1;
    if (e == EWOULDBLOCK) return err_set(err, ERR_RUNTIME, "%s: another grid is running in this directory", out);
    return err_set(err, ERR_RUNTIME, "%s: cannot lock: %s", lockp, strerror(e));
}

/* The runs to train: dirs[0..*np) with their run index and whether they
 * resume; runs that finished before an interruption are recorded here. */
typedef struct {
    int np, recorded, reused;
    int *run;
    char *resume;
    char **dirs;
} Pending;

static int collect_pending(const GridSpec *g, GridRun *runs, int n, const Plan *plans, const ReuseSet *rs,
                           const int *src, const char *out_abs, const char *runs_csv, int threads, int exporting,
                           Pending *p, Err *err) {
    p->run = xmalloc(sizeof(int) * ((size_t)n + 1));
    p->resume = xmalloc((size_t)n + 1);
    p->dirs = calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        if (plans[i] == PLAN_DONE || plans[i] == PLAN_SKIP_FAILED) continue;
        char dir[4300], st[16];
        snprintf(dir, sizeof dir, "%s/runs/%s", out_abs, runs[i].id);
        if (plans[i] == PLAN_RECORD && !exporting) {
            if (grid_record(dir, runs_csv, NULL, st, err)) return ERR_RUNTIME;
            p->recorded++;
            continue;
        }
        if (plans[i] == PLAN_REUSE) {
            if (reuse_run(rs, src[i], &runs[i], dir, runs_csv, err)) return ERR_RUNTIME;
            p->reused++;
            continue;
        }
        int resume = plans[i] == PLAN_RESUME;
        if (resume ? write_sweep_files(dir, &runs[i], err) : prepare_run(dir, &runs[i], threads, err))
            return ERR_RUNTIME;
        p->dirs[p->np] = xstrdup(dir);
        p->resume[p->np] = (char)resume;
        p->run[p->np++] = i;
    }
    return 0;
}

static void pending_free(Pending *p) {
    for (int i = 0; i < p->np; i++) free(p->dirs[i]);
    free(p->dirs);
    free(p->run);
    free(p->resume);
}

/* A child ended: records its run (an interrupted one gets no row) and
 * prints its result line. */
static void child_done(const GridRun *r, const char *dir, const char *runs_csv, int code, double secs,
                       Progress *pr) {
    char st[16] = "failed";
    Err e = {0};
    if (grid_record(dir, runs_csv, NULL, st, &e)) {
        fprintf(stderr, "%s[grid] cannot record %s: %s\n", pr->tty ? "\r\033[K" : "", dir, e.msg);
        snprintf(st, sizeof st, "failed");
    }
    if (strcmp(st, "ok")) pr->failed++;
    pr->done_now++;
    double top1 = -1;
    char sp[4300];
    snprintf(sp, sizeof sp, "%s/summary.csv", dir);
    CsvTable t;
    Err e2;
    if (strcmp(st, "interrupted") && fs_file_nonempty(sp) && !csv_read_file(sp, &t, &e2)) {
        int c = csv_col(&t, "final_top1");
        if (c >= 0 && t.nrows) top1 = strtod(csv_cell(&t, 0, c), NULL);
        csv_table_free(&t);
    }
    char d1[32], acc[32] = "n/a";
    fmt_dur(d1, sizeof d1, secs);
    if (top1 >= 0) snprintf(acc, sizeof acc, "%.4f", top1);
    fprintf(stderr, "%s[grid] %s %s seed=%" PRIu64 " %s top1=%s (%s, exit %d)%s\n", pr->tty ? "\r\033[K" : "",
            r->id, st, r->seed, r->sweep, acc, d1, code,
            !strcmp(st, "interrupted") ? "; resumed when the grid runs again"
            : strcmp(st, "ok")          ? "; log: train.log in the run dir" : "");
    progress_line(pr, 1);
}

/* Runs the pending trainings with `jobs` children; returns the count that
 * did not finish ok (g_stop set when a signal stopped the grid). */
static int run_children(const GridOpts *o, GridRun *runs, const Pending *p, const char *runs_csv, int jobs,
                        int threads, Progress *pr, Err *err) {
    Slot *slots = calloc((size_t)jobs, sizeof *slots);
    int next = 0, rc = 0, failed0 = pr->failed;
    double last_draw = 0;
    while ((next < p->np && !g_stop) || pr->running > 0) {
        while (!g_stop && next < p->np && pr->running < jobs) {
            int s = 0;
            while (slots[s].pid) s++;
            pid_t pid = spawn_run(o->exe, p->dirs[next], threads, p->resume[next]);
            if (pid < 0) {
                rc = err_set(err, ERR_RUNTIME, "fork: %s", strerror(errno));
                g_stop = SIGTERM;
                break;
            }
            slots[s] = (Slot){pid, next, now_s()};
            pr->running++;
            next++;
        }
        int ws;
        pid_t pid = waitpid(-1, &ws, WNOHANG);
        if (pid == 0 || (pid < 0 && errno == EINTR)) {
            for (int s = 0; g_stop && s < jobs; s++)   /* forward the stop to every training */
                if (slots[s].pid) kill(slots[s].pid, SIGTERM);
            if (pr->tty && now_s() - last_draw > 1.0) {
                progress_line(pr, 0);
                last_draw = now_s();
            }
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (pid < 0) break; /* no children */
        int s = 0;
        while (s < jobs && slots[s].pid != pid) s++;
        if (s == jobs) continue;
        pr->running--;
        slots[s].pid = 0;
        int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        if (g_stop && code != 0) continue; /* stopped: interrupted, or killed before it could say so */
        child_done(&runs[p->run[slots[s].run]], p->dirs[slots[s].run], runs_csv, code, now_s() - slots[s].t0, pr);
    }
    free(slots);
    return rc ? -1 : pr->failed - failed0;
}

/* OUT must be new, empty, or a grid's own output (it has runs.csv or the
 * grid's lock; runs/ alone is not enough, TensorBoard's default log directory
 * has that name): a grid never scatters runs/, runs.csv and its lock into an
 * unrelated directory someone named by mistake (`--out .`, `--out ~`). */
static int check_out_is_ours(const char *out, Err *err) {
    DIR *d = opendir(out);
    if (!d) return 0;   /* missing (made below), or not a directory (fs_mkdir_p says so) */
    int other = 0, ours = 0;
    char first[256] = "";
    for (struct dirent *e; (e = readdir(d));) {
        const char *nm = e->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..")) continue;
        if (!strcmp(nm, "runs.csv") || !strcmp(nm, ".grid.lock")) ours = 1;
        else if (!other++) snprintf(first, sizeof first, "%s", nm);
    }
    closedir(d);
    if (other && !ours)
        return err_set(err, ERR_USAGE, "--out %s: the directory is not empty (it holds '%s'%s) and is not a grid's "
                       "output (no runs.csv or .grid.lock): name a new or empty directory", out, first,
                       other > 1 ? " and more" : "");
    return 0;
}

/* OUT/plan.csv: the runs this invocation sets out to make, so that a table
 * aggregated before they all have a row says it is partial (runrecord.h). */
static int write_plan(const char *out, const GridRun *runs, int n, int subset, Err *err) {
    const char **ids = xmalloc(sizeof(char *) * ((size_t)n + 1)), **sw = xmalloc(sizeof(char *) * ((size_t)n + 1)),
               **prof = xmalloc(sizeof(char *) * ((size_t)n + 1));
    uint64_t *seeds = xmalloc(sizeof(uint64_t) * ((size_t)n + 1));
    for (int i = 0; i < n; i++) {
        ids[i] = runs[i].id;
        seeds[i] = runs[i].seed;
        prof[i] = runs[i].part;
        sw[i] = runs[i].sweep;
    }
    int rc = runs_plan_write(out, n, ids, seeds, prof, sw, subset, err);
    free(prof);
    free(ids);
    free(sw);
    free(seeds);
    return rc;
}

/* After an export of np runs: the planned runs beyond them that have no row
 * yet (other seeds of a --seeds subset, other parts of a union) would make
 * the exported aggregation (aggregate.sbatch, or `ewa aggregate` after
 * parallel) refuse the grid as partial; say so now, not when the cluster
 * job fails. */
static void note_plan_beyond_export(const char *out, const char *runs_csv, const GridRun *runs, const Pending *p) {
    CsvTable t = {0};
    Err e = {0};
    int have = fs_file_nonempty(runs_csv), planned = 0, missing = 0, unplanned = 0;
    char first[64] = "";
    if (have && csv_read_file(runs_csv, &t, &e)) return;
    const char **ids = xmalloc(sizeof(char *) * ((size_t)p->np + 1));   /* the exported runs get rows */
    for (int i = 0; i < p->np; i++) ids[i] = runs[p->run[i]].id;
    if (!runs_plan_missing(runs_csv, &t, ids, p->np, &planned, &missing, first, &unplanned, &e) && missing > 0)
        fprintf(stderr, "ewa grid: note: %s/%s plans %d more runs than this export that have no row yet "
                "(other seeds or profiles, first %s); the grid's aggregation refuses until they have one: export "
                "or run them too, or aggregate what there is with `ewa aggregate --partial --out DIR` outside the "
                "grid\n", out, RUNS_PLAN_FILE, missing, first);
    free(ids);
    if (have) csv_table_free(&t);
}

/* grid_run after planning: lock OUT, write the plan, copy, record and train. */
static int grid_execute(const GridSpec *g, GridRun *runs, int n, const GridOpts *o, const Plan *plans,
                        const ReuseSet *rs, const int *src, int jobs, int threads, Err *err) {
    char runs_csv[4200];
    snprintf(runs_csv, sizeof runs_csv, "%s/runs.csv", g->out);
    if (o->build_dirty)
        fprintf(stderr, "ewa grid: --allow-dirty: %s runs from a binary built with uncommitted changes "
                "(commit %s); their rows record it in git_dirty\n", o->export_kind ? "exporting" : "starting",
                o->build_commit);
    int lockfd = -1, rc = 0, removed = 0;
    char runs_dir[4200], out_abs[4096];
    snprintf(runs_dir, sizeof runs_dir, "%s/runs", g->out);
    if (fs_mkdir_p(g->out, err) || fs_mkdir_p(runs_dir, err) || lock_grid(g->out, &lockfd, err) ||
        (!o->export_kind && fs_remove_stale_tmp(g->out, &removed, err))) {
        if (lockfd >= 0) close(lockfd);
        return ERR_RUNTIME;
    }
    if (!realpath(g->out, out_abs)) snprintf(out_abs, sizeof out_abs, "%s", g->out);
    Pending p = {0};
    rc = write_plan(g->out, runs, n, o->subset, err);
    if (!rc) rc = collect_pending(g, runs, n, plans, rs, src, out_abs, runs_csv, threads, o->export_kind != NULL, &p, err);
    int ndone = 0, nskip = 0, nresume = 0;
    for (int i = 0; i < n; i++) {
        ndone += plans[i] == PLAN_DONE || plans[i] == PLAN_REUSE || (plans[i] == PLAN_RECORD && !o->export_kind);
        nskip += plans[i] == PLAN_SKIP_FAILED;
    }
    for (int i = 0; i < p.np; i++) nresume += p.resume[i];
    if (p.recorded) fprintf(stderr, "[grid] recorded %d runs that had finished before an interruption\n", p.recorded);
    if (p.reused) fprintf(stderr, "[grid] copied %d finished runs from %s (same run ids) and recorded them\n", p.reused,
                          GRID_REUSE_KEY);
    if (!rc && o->export_kind) rc = grid_export(g, out_abs, o->exe, o->export_kind, p.dirs, p.np, threads, err);
    if (!rc && o->export_kind) note_plan_beyond_export(g->out, runs_csv, runs, &p);
    if (!rc && !o->export_kind) {
        char skipped[96] = "";
        if (nskip) snprintf(skipped, sizeof skipped, ", %d recorded failed (--retry-failed reruns them)", nskip);
        fprintf(stderr, "[grid] %s: %d runs, %d already ok, %d to run (%d resumed)%s with %d jobs x %d threads -> %s\n",
                g->path, n, ndone, p.np, nresume, skipped, jobs, threads, g->out);
        struct sigaction sa = {0}, old_int, old_term;
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        g_stop = 0;
        Progress pr = {.total = n, .done_before = ndone + nskip, .t0 = now_s(), .tty = isatty(2)};
        int nfailed = run_children(o, runs, &p, runs_csv, jobs, threads, &pr, err);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        if (nfailed < 0) rc = ERR_RUNTIME;
        else if (g_stop)
            rc = err_set(err, 128 + (int)g_stop, "interrupted by signal %d: the running trainings stopped at "
                         "their next step (status interrupted); run the grid again to resume them", (int)g_stop);
        else if (nfailed)
            rc = err_set(err, ERR_RUNTIME, "%d of %d runs did not finish ok (see runs.csv and the runs' train.log)%s",
                         nfailed, p.np, nskip ? "; more are recorded failed (--retry-failed reruns them)" : "");
        else if (nskip)
            rc = err_set(err, ERR_RUNTIME, "%d runs are recorded failed or diverged and were not rerun "
                         "(--retry-failed reruns them)", nskip);
    }
    pending_free(&p);
    close(lockfd);
    return rc;
}

int grid_run(const GridSpec *g, GridRun *runs, int n, const GridOpts *o, Err *err) {
    int jobs = o->jobs > 0 ? o->jobs : 1;
    int cores = grid_cpu_count();
    int threads = cores / jobs > 0 ? cores / jobs : 1;
    if (jobs > cores)
        fprintf(stderr, "ewa grid: warning: --jobs %d exceeds the %d cores; runs will compete for them\n",
                jobs, cores);
    Plan *plans = xmalloc(sizeof(Plan) * ((size_t)n + 1));
    int *src = xmalloc(sizeof(int) * ((size_t)n + 1));
    ReuseSet rs_ = {0}, *rs = &rs_;   /* zeroed: reuse_close is safe before reuse_open */
    int rc = check_out_is_ours(g->out, err) ? ERR_USAGE : 0;   /* a dry run refuses what the real run would */
    if (!rc) rc = reuse_open(g, rs, err);
    if (!rc && plan_runs(g, runs, n, o->retry_failed, rs, plans, src, err)) rc = ERR_RUNTIME;
    if (!rc && o->dry_run) dry_run(g, runs, n, plans, jobs, threads, cores, o);
    else if (!rc && grid_provenance_check(o->build_dirty, o->build_commit, o->allow_dirty, err)) rc = ERR_USAGE;
    else if (!rc) rc = grid_execute(g, runs, n, o, plans, rs, src, jobs, threads, err);
    reuse_close(rs);
    free(src);
    free(plans);
    return rc;
}
