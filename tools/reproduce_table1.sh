#!/usr/bin/env bash
# make reproduce-table1 [PROFILE=smoke|cpu|paper] [JOBS=2] [OUT=dir]: runs the
# Table 1 grid (resumable), aggregates it and draws its figures into
# results/table1/<profile>/ (or OUT; CI uses a fresh OUT so that nothing is
# skipped as already done). Exits non-zero if a run failed (the table and
# figures are still written, failed runs counted as such); an interrupted
# grid is not aggregated or drawn (`ewa aggregate` refuses runs of the
# grid's plan.csv without a row: run it again to resume). Refuses (exit 2,
# from `ewa grid`) on a tree with uncommitted changes to tracked files
# outside results/: results are produced from commits only.
set -u
cd "$(dirname "$0")/.."
P=${1:-smoke}
JOBS=${JOBS:-2}
EWA=${EWA:-bin/ewa}
OUT=${OUT:-results/table1/$P}
mkdir -p "$OUT"
t0=$(date +%s)
"$EWA" grid --config paper_configs/table1.ini --profile "$P" --jobs "$JOBS" --out "$OUT"
st=$?
# exit 2: nothing ran (a config error, or a binary built from a tree with
# uncommitted changes: commit and rebuild; see `bin/ewa grid --help`)
[ $st -eq 2 ] && exit 2
t1=$(date +%s)
# appended, one line per invocation: a resumed grid's later invocations skip the
# runs already done, so each line is that invocation's time only (each run's
# own cost is its train_seconds in runs.csv)
echo "$(date -u +%FT%TZ) grid wall time: $((t1 - t0)) s (profile $P, $JOBS jobs; runs already done are skipped)" | tee -a "$OUT/duration.txt"
if [ -s "$OUT/runs.csv" ]; then
  if "$EWA" aggregate --runs "$OUT/runs.csv" --out "$OUT"; then
    plots/table1.sh "$OUT" || st=1
    plots/forest.sh "$OUT" || st=1
    plots/curves.sh "$OUT" || st=1
  else
    st=1
  fi
fi
exit $st
