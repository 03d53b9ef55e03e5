/* The local grid runner: prepares the run directories, runs `ewa train` in
 * --jobs child processes, records each finished run and draws the progress
 * line. See grid.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "grid.h"
#include "runrecord.h"
#include "util.h"
#include "../core/fsutil.h"

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

/* Creates OUT/runs/<id>/ with config.ini (threads set) and sweep.txt; removes
 * a stale summary.csv from an earlier attempt. */
static int prepare_run(const char *out, GridRun *r, int threads, char *dir, size_t dn, Err *err) {
    snprintf(dir, dn, "%s/runs/%s", out, r->id);
    if (fs_mkdir_p(dir, err)) return ERR_RUNTIME;
    char path[4400];
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    unlink(path);
    RunConfig c = r->cfg;
    c.threads = threads;
    snprintf(path, sizeof path, "%s/config.ini", dir);
    if (config_write(&c, path, err)) return ERR_RUNTIME;
    snprintf(path, sizeof path, "%s/sweep.txt", dir);
    char *t = xrealloc(NULL, strlen(r->sweep) + 2);
    sprintf(t, "%s\n", r->sweep);
    int rc = fs_write_text_atomic(path, t, err);
    free(t);
    return rc;
}

/* A run dir whose summary.csv is a finished ok run of exactly this config
 * (the grid was killed after the run and before recording it). */
static int finished_unrecorded(const char *out, const GridRun *r) {
    char path[4200];
    snprintf(path, sizeof path, "%s/runs/%s/summary.csv", out, r->id);
    if (!fs_file_nonempty(path)) return 0;
    CsvTable t;
    Err e;
    if (csv_read_file(path, &t, &e)) return 0;
    int cs = csv_col(&t, "status"), ch = csv_col(&t, "config_hash"), cd = csv_col(&t, "seed");
    char hash[17], seed[32];
    snprintf(hash, sizeof hash, "%016" PRIx64, config_hash(&r->cfg));
    snprintf(seed, sizeof seed, "%" PRIu64, r->seed);
    int ok = t.nrows == 1 && cs >= 0 && ch >= 0 && cd >= 0 && !strcmp(csv_cell(&t, 0, cs), "ok") &&
             !strcmp(csv_cell(&t, 0, ch), hash) && !strcmp(csv_cell(&t, 0, cd), seed);
    csv_table_free(&t);
    return ok;
}

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) { g_stop = sig; }

typedef struct {
    pid_t pid;
    int run;
    double t0;
} Slot;

static pid_t spawn_run(const char *exe, const char *dir, int threads) {
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
    int in = open("/dev/null", O_RDONLY), lg = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in >= 0) dup2(in, 0);
    if (lg >= 0) { dup2(lg, 1); dup2(lg, 2); }
    setenv("OMP_NUM_THREADS", th, 1);
    setenv("OPENBLAS_NUM_THREADS", th, 1);
    /* Spinning OpenMP threads collapse when the cores are shared (a vit-micro
     * run with 2 threads on this 2-core machine next to one busy process took
     * 49 s spinning, 6 s passive): sleep instead, unless the user chose. */
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    char *argv[] = {(char *)exe, "train", "--config", cfg, "--out", (char *)dir, NULL};
    execv(exe, argv);
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
static void print_plan(const GridSpec *g, const GridRun *runs, int n, const char *done, int ndone,
                       int jobs, int threads, int cores, const GridOpts *o) {
    printf("grid %s: %d runs (%d seeds), %d already ok, %d to run; out %s\n", g->path, n,
           g->nseeds, ndone, n - ndone, g->out);
    if (g->profile[0]) printf("profile %s:", g->profile);
    for (int i = 0; i < g->nsets; i++) printf(" %s", g->sets[i]);
    if (g->profile[0]) printf("\n");
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
        printf("%s %s seed=%" PRIu64 " %s%s\n", runs[i].id, done[i] ? "ok     " : "pending",
               runs[i].seed, runs[i].sweep, runs[i].merged ? " (+ identical combinations)" : "");
}

int grid_run(const GridSpec *g, GridRun *runs, int n, const GridOpts *o, Err *err) {
    int jobs = o->jobs > 0 ? o->jobs : 1;
    int cores = grid_cpu_count();
    int threads = cores / jobs > 0 ? cores / jobs : 1;
    if (jobs > cores)
        fprintf(stderr, "ewa grid: warning: --jobs %d exceeds the %d cores; runs will compete for them\n",
                jobs, cores);
    char runs_csv[4200];
    snprintf(runs_csv, sizeof runs_csv, "%s/runs.csv", g->out);

    /* runs already recorded ok */
    char *done = calloc((size_t)n + 1, 1);
    if (fs_file_nonempty(runs_csv)) {
        CsvTable t;
        if (csv_read_file(runs_csv, &t, err)) { free(done); return ERR_RUNTIME; }
        for (int i = 0; i < n; i++) done[i] = (char)runs_has_ok_row(&t, runs[i].id);
        csv_table_free(&t);
    }
    int ndone = 0;
    for (int i = 0; i < n; i++) ndone += done[i];

    if (o->dry_run) {
        print_plan(g, runs, n, done, ndone, jobs, threads, cores, o);
        free(done);
        return 0;
    }
    if (grid_provenance_check(o->build_dirty, o->build_commit, o->allow_dirty, err)) {
        free(done);
        return ERR_USAGE;
    }
    if (o->build_dirty)
        fprintf(stderr, "ewa grid: --allow-dirty: %s runs from a binary built with uncommitted changes "
                "(commit %s); their rows record it in git_dirty\n", o->export_kind ? "exporting" : "starting",
                o->build_commit);

    if (fs_mkdir_p(g->out, err)) { free(done); return ERR_RUNTIME; }
    char runs_dir[4200];
    snprintf(runs_dir, sizeof runs_dir, "%s/runs", g->out);
    if (fs_mkdir_p(runs_dir, err)) { free(done); return ERR_RUNTIME; }
    char lockp[4200];
    snprintf(lockp, sizeof lockp, "%s/.grid.lock", g->out);
    int lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lockfd < 0) {   /* e.g. a read-only directory: say so, not "another grid" */
        int e = errno;
        free(done);
        return err_set(err, ERR_RUNTIME, "%s: cannot create the lock file: %s", lockp, strerror(e));
    }
    if (flock(lockfd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        close(lockfd);
        free(done);
        if (e == EWOULDBLOCK)
            return err_set(err, ERR_RUNTIME, "%s: another grid is running in this directory", g->out);
        return err_set(err, ERR_RUNTIME, "%s: cannot lock: %s", lockp, strerror(e));
    }
    char out_abs[4096];
    if (!realpath(g->out, out_abs)) snprintf(out_abs, sizeof out_abs, "%s", g->out);

    /* the pending runs, and runs finished before an interruption */
    int *pend = malloc(sizeof(int) * ((size_t)n + 1)), np = 0, recovered = 0;
    char **dirs = calloc((size_t)n + 1, sizeof(char *));
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        if (done[i]) continue;
        if (!o->export_kind && finished_unrecorded(g->out, &runs[i])) {
            char d[4200], st[16];
            snprintf(d, sizeof d, "%s/runs/%s", out_abs, runs[i].id);
            if (grid_record(d, runs_csv, NULL, st, err)) { rc = ERR_RUNTIME; break; }
            done[i] = 1;
            ndone++;
            recovered++;
            continue;
        }
        char d[4200];
        snprintf(d, sizeof d, "%s", out_abs);
        char dir[4300];
        if (prepare_run(d, &runs[i], threads, dir, sizeof dir, err)) { rc = ERR_RUNTIME; break; }
        dirs[np] = xstrdup(dir);
        pend[np++] = i;
    }
    if (recovered) fprintf(stderr, "[grid] recorded %d runs that had finished before an interruption\n", recovered);
    if (!rc && o->export_kind)
        rc = grid_export(g, out_abs, o->exe, o->export_kind, dirs, np, threads, err);
    if (rc || o->export_kind) goto out;

    fprintf(stderr, "[grid] %s: %d runs, %d already ok, %d to run with %d jobs x %d threads -> %s\n",
            g->path, n, ndone, np, jobs, threads, g->out);
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    g_stop = 0;
    Slot *slots = calloc((size_t)jobs, sizeof *slots);
    Progress pr = {.total = n, .done_before = ndone, .t0 = now_s(), .tty = isatty(2)};
    int next = 0, nfailed = 0;
    double last_draw = 0;
    while ((next < np && !g_stop) || pr.running > 0) {
        while (!g_stop && next < np && pr.running < jobs) {
            int s = 0;
            while (slots[s].pid) s++;
            pid_t pid = spawn_run(o->exe, dirs[next], threads);
            if (pid < 0) {
                rc = err_set(err, ERR_RUNTIME, "fork: %s", strerror(errno));
                g_stop = SIGTERM;
                break;
            }
            slots[s] = (Slot){pid, next, now_s()};
            pr.running++;
            next++;
        }
        int ws;
        pid_t pid = waitpid(-1, &ws, WNOHANG);
        if (pid == 0 || (pid < 0 && errno == EINTR)) {
            if (g_stop) {
                for (int s = 0; s < jobs; s++)
                    if (slots[s].pid) kill(slots[s].pid, SIGTERM);
            }
            if (pr.tty && now_s() - last_draw > 1.0) {
                progress_line(&pr, 0);
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
        pr.running--;
        int r = slots[s].run;
        double secs = now_s() - slots[s].t0;
        slots[s].pid = 0;
        int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        if (g_stop && code != 0) continue; /* interrupted: no row, redone on resume */
        char st[16] = "failed";
        Err e = {0};
        int appended = 0;
        if (grid_record(dirs[r], runs_csv, &appended, st, &e)) {
            fprintf(stderr, "%s[grid] cannot record %s: %s\n", pr.tty ? "\r\033[K" : "", dirs[r], e.msg);
            snprintf(st, sizeof st, "failed");
        }
        if (strcmp(st, "ok")) { nfailed++; pr.failed++; }
        pr.done_now++;
        /* the run's own result line */
        double top1 = -1;
        char sp[4300];
        snprintf(sp, sizeof sp, "%s/summary.csv", dirs[r]);
        CsvTable t;
        Err e2;
        if (fs_file_nonempty(sp) && !csv_read_file(sp, &t, &e2)) {
            int c = csv_col(&t, "final_top1");
            if (c >= 0 && t.nrows) top1 = atof(csv_cell(&t, 0, c));
            csv_table_free(&t);
        }
        char d1[32];
        fmt_dur(d1, sizeof d1, secs);
        char acc[32] = "n/a";
        if (top1 >= 0) snprintf(acc, sizeof acc, "%.4f", top1);
        fprintf(stderr, "%s[grid] %s %s seed=%" PRIu64 " %s top1=%s (%s, exit %d)%s\n",
                pr.tty ? "\r\033[K" : "", runs[pend[r]].id, st, runs[pend[r]].seed,
                runs[pend[r]].sweep, acc, d1, code,
                strcmp(st, "ok") ? "; log: train.log in the run dir" : "");
        progress_line(&pr, 1);
    }
    free(slots);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (g_stop && !rc) {
        rc = err_set(err, ERR_RUNTIME, "interrupted by signal %d; run the grid again to resume",
                     (int)g_stop);
    } else if (!rc && nfailed) {
        rc = err_set(err, ERR_RUNTIME, "%d of %d runs did not finish ok (see runs.csv and the runs' train.log)",
                     nfailed, np);
    }
out:
    for (int i = 0; i < np; i++) free(dirs[i]);
    free(dirs);
    free(pend);
    free(done);
    close(lockfd);
    return rc;
}
