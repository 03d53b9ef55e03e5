/* The run record (docs/DESIGN.md 8.2): ONE column
 * table describes the row of a training run. It writes a run's summary.csv,
 * the rows a grid appends to runs.csv (run_id and sweep in front), and the
 * rows of runs that failed before writing a summary (only the config columns
 * filled). Adding a column is one line in RECORD_COLUMNS (runrecord.c).
 *
 * Values: numbers in C locale; hashes and the commit are always written
 * quoted, so an all-digit id is read back as text; a column a run cannot
 * fill (a failed run's results) is empty. */
#ifndef EWA_RUNRECORD_H
#define EWA_RUNRECORD_H
#include <stdint.h>
#include <stdio.h>
#include "config.h"
#include "csvio.h"
#include "train.h"
#include "../core/err.h"
#include "../core/vit.h"

/* Where and how a run ran (record_env_begin / record_env_end). */
typedef struct {
    char start_time[32], end_time[32];   /* ISO 8601 UTC, "2026-11-30T00:12:03Z" */
    double t0;                           /* now_s() at the start */
    char host[64];
    char cpu_model[128];                 /* /proc/cpuinfo "model name" */
    int cores;                           /* online CPUs */
    long peak_rss_kib;                   /* getrusage ru_maxrss at the end */
} RunEnv;

/* The parts of a record; every pointer but cfg may be NULL (a run that did
 * not finish), and cfg too (a run whose config.ini is unreadable). */
typedef struct {
    const RunConfig *cfg;
    const TrainResult *res;
    const ViTDims *deployed, *trained;   /* the evaluated and the trained model */
    const char *dataset_name;            /* the loaded set's name; NULL = cfg's */
    const char *status;                  /* NULL = res->status, else e.g. "failed" */
    const RunEnv *env;
    const char *checkpoint_sha256;       /* of final.safetensors (64 hex digits); NULL = none */
    const char *data_sha256;             /* data_sha256 (data.h); NULL = not known */
} RunRecord;

/* Fills start_time, host, cpu_model and cores (at the start of a run). */
void record_env_begin(RunEnv *env);
/* Fills end_time and peak_rss_kib (at the end of a run). */
void record_env_end(RunEnv *env);

/* The number of columns and column i's name; 1 if the column is always
 * quoted (hashes, commit). */
int record_ncols(void);
const char *record_col_name(int i);
int record_col_quoted(const char *name);

/* The values of r, one per column, into vals[i] (size n each). */
void record_values(const RunRecord *r, char (*vals)[600]);

/* Writes summary.csv (header and the one row of r) atomically. */
int record_write_summary(const char *path, const RunRecord *r, Err *err);

/* Records the run in run_dir in csv_path (a grid's runs.csv): its
 * summary.csv, or a status `failed` row built from its config.ini when there
 * is none, with run_id (the name of run_dir), sweep (run_dir/sweep.txt, for
 * reading) and one column sweep.KEY per swept key (run_dir/sweep.csv). One
 * row per run: an earlier row of the run is replaced (a retried failed run),
 * an ok row is never replaced, and an interrupted run gets no row (the grid
 * resumes it). Columns are matched by name; columns the file lacks are added
 * (csv_upsert_row_q). *appended (may be NULL) tells whether a row was
 * written; *status receives the run's status. */
int grid_record(const char *run_dir, const char *csv_path, int *appended, char status[16],
                Err *err);

/* *ok = 1 if csv_path holds an ok row for the run in run_dir (its id is the
 * directory's name), 0 if not or if csv_path does not exist yet. */
int runs_is_ok(const char *run_dir, const char *csv_path, int *ok, Err *err);

/* The status of the (last) row of run id in the runs.csv table t, or NULL. */
const char *runs_row_status(const CsvTable *t, const char *id);

/* 1 if the runs.csv table t holds a row with run_id id and status ok. */
int runs_has_ok_row(const CsvTable *t, const char *id);

/* A grid's plan: OUT/plan.csv (docs/DESIGN.md 8.5), columns run_id, seed,
 * profile (the profile that makes the run: a union's part, "" none), sweep;
 * one row per run the grid invocations into OUT set out to make (run or
 * export). It is what tells a finished grid from one still running or
 * stopped: a runs.csv alone cannot show the runs that have no row yet. */
#define RUNS_PLAN_FILE "plan.csv"

/* Writes out_dir/plan.csv atomically: the rows of the existing plan, then
 * the n runs (ids, seeds, profiles, sweep labels) not listed yet. merge 0 (a
 * whole invocation) first drops the existing rows whose profile is one of
 * the n runs' profiles (runs a changed config no longer makes; the other
 * parts of a union run one by one into the same directory keep theirs);
 * merge 1 (a --seeds subset) drops nothing. ERR_RUNTIME on an unreadable or
 * unwritable file. */
int runs_plan_write(const char *out_dir, int n, const char *const *ids, const uint64_t *seeds,
                    const char *const *profiles, const char *const *sweeps, int merge, Err *err);

/* The plan beside runs_csv (dirname(runs_csv)/plan.csv) against the rows
 * of runs_t (runs_csv read): *planned = its runs, *missing = those with no
 * finished row (ok, failed or diverged) in runs_t and not among the ncoming
 * ids coming (runs about to get a row, e.g. an export's; NULL, 0 for
 * none), first_missing = the
 * first such id ("" none), *unplanned = ids of runs_t the plan does not list
 * (runs of an earlier config of the grid).
 * No plan file (a hand-made runs.csv, or a grid older than plans): 0 and
 * *planned = *missing = 0. ERR_RUNTIME for a malformed plan. */
int runs_plan_missing(const char *runs_csv, const CsvTable *runs_t, const char *const *coming, int ncoming,
                      int *planned, int *missing, char first_missing[64], int *unplanned, Err *err);

#endif
