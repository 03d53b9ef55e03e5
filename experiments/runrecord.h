/* The run record: the row that describes one training run, as written to a
 * run's summary.csv and appended to a grid's runs.csv (docs/DESIGN.md,
 * "summary.csv and runs.csv"). */
#ifndef EWA_RUNRECORD_H
#define EWA_RUNRECORD_H
#include "csvio.h"
#include "../core/err.h"

/* Appends the row of the run in run_dir (its summary.csv, or a status
 * `failed` row built from its config.ini when there is none) to csv_path,
 * unless csv_path already holds an ok row for that run id. The run id is the
 * name of run_dir; its sweep comes from run_dir/sweep.txt. *appended (may be
 * NULL) tells whether a row was written; *status receives the status. */
int grid_record(const char *run_dir, const char *csv_path, int *appended, char status[16],
                Err *err);

/* *ok = 1 if csv_path holds an ok row for the run in run_dir (its id is the
 * directory's name), 0 if not or if csv_path does not exist yet. */
int runs_is_ok(const char *run_dir, const char *csv_path, int *ok, Err *err);

/* 1 if the runs.csv table t holds a row with run_id id and status ok. */
int runs_has_ok_row(const CsvTable *t, const char *id);

#endif
