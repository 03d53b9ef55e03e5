/* Ablation grids (docs/DESIGN.md 8.5): a grid INI names a base run config,
 * the seeds, an output directory, swept keys (cartesian product) and
 * optional per-profile overrides:
 *
 *   [grid]
 *   base  = ../paper_configs/cpu_base.ini   ; relative to the grid file
 *   seeds = 0, 1, 2
 *   out   = results/table1                  ; relative to the working dir
 *   [sweep]
 *   moe.method = dense, ewa
 *   moe.blocks = every_other, "1,3"         ; quote values holding commas
 *   data.dataset + data.train_subset = fashion-mnist+0, fashion-mnist+1000
 *                                           ; keys joined by + sweep together
 *   [profile.smoke]
 *   train.epochs = 1                        ; an override for every run
 *   moe.blocks = every_other                ; a swept key: replaces its values
 *   grid.seeds = 0, 1                       ; replaces the seeds
 *
 * A design that is not a cartesian product (cells with their own recipe,
 * methods with their own tuned learning rate, a control in one cell only) is
 * a union of profiles: a profile whose only entry is grid.union names other
 * profiles of the file, and its runs are the union of theirs, each part with
 * its own overrides, axis values and seeds, all in one output directory
 * (OUT/NAME of the union profile; --set applies to every part):
 *
 *   [profile.cpu]
 *   grid.union = cpu-small, cpu-3d
 *   [profile.cpu-small]
 *   train.lr = 4e-3
 *   [profile.cpu-3d]
 *   data.dataset = shapes3d
 *   grid.seeds = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
 *
 * A part is an ordinary profile (runnable alone, into OUT/PART); it cannot
 * be a union itself, and two parts may not produce the same run.
 *
 * Runs another grid has already made: grid.reuse (in [grid] as `reuse`, or
 * in a profile, which replaces it) names results directories; a run with no
 * row and no directory here whose run id has an ok row from a clean tree
 * (git_dirty 0) in one of them is copied (its run directory's files) and its
 * row recorded, not trained again. The id is a hash of the resolved config
 * and the seed and training is deterministic, so the copy is the run this
 * grid would make (e.g. an ablation's dense and default-EWA cells that are
 * Table 1's):
 *
 *   [profile.cpu]
 *   grid.reuse = results/table1/cpu         ; relative to the working dir
 *
 * Cells that need more seeds than others (a noisier dataset, for the same
 * minimum detectable effect): the pseudo-key grid.nseeds, joined with + to a
 * cell's keys, runs that cell on the first N seeds of [grid] seeds only:
 *
 *   data.dataset + grid.nseeds = fashion-mnist+6, shapes3d+10
 *
 * A profile may join it to a [sweep] key's parts: its entry
 * "moe.method + moe.beta + grid.nseeds = dense+0.3+7, ewa+0.1+6" replaces the
 * values of the [sweep] axis "moe.method + moe.beta" (the same keys in the
 * same order, spacing aside). A +-joined or grid.nseeds profile key that
 * matches no swept key, or a second entry of one profile replacing the same
 * axis, is an error naming its line (not a config override); so is a key
 * swept by two [sweep] axes.
 *
 * It is not a config key: it is left out of the run's config, its sweep
 * columns and its id, so a run has the same id whatever the count.
 *
 * Every run is base + profile overrides + sweep values + train.seed, resolved
 * with config_load, so a bad key or value is a config error before any run
 * starts. A run's id is a hash of its resolved config (config_hash, which
 * leaves out seed, threads and eval_every) and its seed. Runs live in OUT/runs/<id>/ and
 * each finished run's summary row, with run_id and sweep columns in front, is
 * appended to OUT/runs.csv; a second invocation skips the runs recorded ok.
 *
 * The grid lives in four files: grid.c (this grammar: parsing and
 * expansion), grid_run.c (the local process runner), grid_export.c (Slurm and
 * GNU parallel export) and runrecord.c (the runs.csv recorder). */
#ifndef EWA_GRID_H
#define EWA_GRID_H
#include <stdint.h>
#include "config.h"
#include "runrecord.h"
#include "../core/err.h"

#define GRID_NSEEDS_KEY "grid.nseeds"
#define GRID_UNION_KEY "grid.union"
#define GRID_REUSE_KEY "grid.reuse"

typedef struct {
    char key[256];     /* section.key, or keys joined by + (swept together); a profile's
                          replacement may have joined grid.nseeds on */
    char sweep_key[256];   /* the key as [sweep] wrote it */
    int nvals;
    char **vals;
    int line;          /* the grid file's line of the values, in section ("sweep" or "profile.NAME", */
    char section[48];  /* whose entry replaced the [sweep] values) */
} GridAxis;

/* The [slurm] section: resources of every task of the exported job array
 * (grid_export.c); empty / 0 = not given (Slurm's or the partition's default).
 *   [slurm]
 *   time = 2:00:00          ; --time: minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]
 *   mem = 4G                ; --mem: a number with an optional K, M, G or T
 *   partition = cpu         ; --partition (a comma-separated list is allowed)
 *   cpus_per_task = 4       ; --cpus-per-task, also each run's train.threads (default 1)
 *   array_throttle = 8      ; at most 8 tasks at once: --array=1-N%8
 *   sbatch = --account=abc  ; an extra "#SBATCH" line; may be repeated */
typedef struct {
    char time[32], mem[32], partition[128];
    int cpus_per_task, array_throttle;
    int nextra;
    char **extra;
} GridSlurm;

typedef struct GridSpec {
    char path[1024];   /* the grid file */
    char base[2048];   /* the base run config, resolved against the grid file's dir */
    char out[2048];    /* output directory (with /PROFILE appended for a profile) */
    char profile[32];  /* "" = none */
    int nseeds;        /* a union profile: the most seeds of its parts */
    uint64_t *seeds;
    int naxes;
    GridAxis *axes;
    int nsets;         /* the chosen profile's overrides, "section.key=value" */
    char **sets;
    GridSlurm slurm;   /* the [slurm] section */
    int nreuse;        /* grid.reuse: results directories whose ok runs are copied */
    char **reuse;
    int nparts;        /* a union profile (grid.union): its parts, each a loaded */
    struct GridSpec *parts;   /* profile with this out; 0/NULL otherwise */
} GridSpec;

typedef struct {
    char id[17];       /* 16 hex digits */
    uint64_t seed;
    char *sweep;       /* "section.key=value;..." of the swept keys ("" if none), for reading */
    int nsw;           /* the swept keys and this run's values, one per key (lossless) */
    char **sw_keys, **sw_vals;
    int merged;        /* other sweep combinations that are this same training
                        * (they differ only in keys the method ignores) */
    char part[32];     /* the profile that makes it: a union's part, else the grid's profile ("" none) */
    RunConfig cfg;
} GridRun;

/* Parses and checks a grid file. profile may be NULL/"" (no overrides);
 * out_override, if non-empty, replaces the output directory. Every profile
 * section is checked against the base config, not only the chosen one. */
int grid_load(GridSpec *g, const char *path, const char *profile, const char *out_override,
              Err *err);
void grid_free(GridSpec *g);

/* All runs (seed outermost, then the sweep axes, last axis fastest),
 * resolved; a config error in any combination is reported (ERR_USAGE).
 * Combinations that differ only in keys their method ignores (e.g. dense
 * with two values of moe.beta) are one training: kept once, at the first,
 * with `merged` counting the others. Two combinations that are the same
 * training although a key the method reads differs in spelling (1e-3 and
 * 0.001) are an error. */
int grid_expand(const GridSpec *g, GridRun **runs, int *n, Err *err);

/* Checks a command-line override "section.key=value" (`ewa grid --set`)
 * against g: ERR_USAGE when the key is swept by g or by a part of its union,
 * since the sweep's value would win and the --set be ignored in silence. */
int grid_check_set(const GridSpec *g, const char *set, Err *err);
void grid_runs_free(GridRun *runs, int n);

/* A seed list "0, 1, 2" (non-negative integers, none twice) into a malloc'd
 * *seeds of *n; errors (ERR_USAGE) start with `what` (e.g. "[grid] seeds"). */
int grid_parse_seeds(const char *value, const char *what, uint64_t **seeds, int *n, Err *err);

/* Keeps, in order, only the runs whose seed is one of seeds (`ewa grid
 * --seeds`: rerun a subset, e.g. for `ewa regress --subset`); the others are
 * freed. ERR_USAGE when none is left. */
int grid_keep_seeds(GridRun *runs, int *n, const uint64_t *seeds, int nseeds, Err *err);

/* Stable id: FNV-1a 64 over config_hash(c) and c->seed, as 16 hex digits. */
void grid_run_id(const RunConfig *c, char id[17]);

/* Splits a sweep value list "a, b, \"c,d\"" into items (malloc'd); returns
 * the count, 0 for an empty list, -1 for an empty item or bad quoting. */
int grid_split_values(const char *s, char ***items);

typedef struct {
    int jobs;          /* parallel workers */
    int dry_run;       /* print the plan only */
    const char *exe;   /* the ewa binary the runs execute */
    const char *export_kind; /* NULL, "slurm" or "parallel" */
    int build_dirty;   /* the binary's git_dirty (1 dirty, 0 clean, -1 unknown) */
    const char *build_commit;  /* the commit it was built from */
    int allow_dirty;   /* --allow-dirty */
    int retry_failed;  /* rerun runs recorded failed or diverged (else they are done) */
    int subset;        /* --seeds: the runs are a subset of the grid's (OUT/plan.csv is merged, not replaced) */
} GridOpts;

/* Clean provenance (issue 10): whether runs may start from a binary whose
 * build recorded git_dirty = dirty (1: tracked files outside results/ had
 * uncommitted changes, as the Makefile decides; -1: unknown). 0 when dirty
 * == 0 or allow; otherwise ERR_USAGE with a message naming the fact, the
 * commit and the ways out (commit and rebuild, or --allow-dirty). */
int grid_provenance_check(int dirty, const char *commit, int allow, Err *err);

/* Runs (or, with export_kind, exports) the pending runs of the grid
 * (grid_run.c). Except for a dry run, it first applies
 * grid_provenance_check: a binary built from a dirty tree starts (or
 * exports) nothing without allow_dirty; with it, a line on stderr says so
 * and every run records git_dirty = 1 (the run record's own column).
 * A run with a row in runs.csv is done (ok, and also failed or
 * diverged unless retry_failed: a deterministic failure is not rerun on every
 * resume); an interrupted run (its train state or an interrupted summary in
 * its directory) is continued with `train --resume`; every other run starts
 * afresh (`train --overwrite`). SIGINT/SIGTERM are forwarded to the running
 * trainings, which record themselves interrupted; the grid then returns
 * 128 + the signal.
 * Returns 0 when every run finished ok, ERR_RUNTIME when some failed. */
int grid_run(const GridSpec *g, GridRun *runs, int n, const GridOpts *o, Err *err);

/* Writes the prepared run directories dirs[0..np) as cluster jobs into
 * out_abs: kind "slurm" (jobs.sbatch, a job array over jobs.list) or
 * "parallel" (jobs.txt for GNU parallel). Each job trains with `threads`
 * threads and records itself with `ewa record`. (grid_export.c) */
int grid_export(const GridSpec *g, const char *out_abs, const char *exe, const char *kind,
                char **dirs, int np, int threads, Err *err);

/* Frees n strings and the array. */
void grid_free_strs(char **v, int n);

/* Number of CPUs this process may run on. */
int grid_cpu_count(void);

#endif
