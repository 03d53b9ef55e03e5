#!/usr/bin/env bash
# Runs each libFuzzer target of `make fuzz` for a fixed number of inputs from
# a fixed seed over its committed seed corpus. The corpus is copied first:
# libFuzzer adds new inputs to its first corpus directory, and the committed
# one must not change. Exits non-zero on the first crash, leak, sanitizer
# report or timeout (the crashing input is kept in build-fuzz/artifacts/).
#   usage: tests/fuzz/run.sh FUZZ_DIR RUNS SEED TARGET...
# A longer run of one target (say 30 minutes, new inputs kept in work/):
#   make fuzz && build-fuzz/fuzz/fuzz_grid -max_total_time=1800 work/ tests/fuzz/corpus/fuzz_grid
set -euo pipefail
dir=$1 runs=$2 seed=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
work=$(dirname "$dir")/fuzz-work
art=$(dirname "$dir")/artifacts
mkdir -p "$art"
for t in "$@"; do
  rm -rf "$work/$t"
  mkdir -p "$work/$t"
  echo "fuzz: $t, $runs runs, seed $seed, corpus tests/fuzz/corpus/$t ($(ls "$here/corpus/$t" | wc -l) files)"
  "$dir/$t" -runs="$runs" -seed="$seed" -max_len=8192 -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art/$t-" "$work/$t" "$here/corpus/$t" 2>"$work/$t.log" || {
      tail -60 "$work/$t.log" >&2
      echo "fuzz: $t FAILED (log $work/$t.log)" >&2
      exit 1
    }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work/$t.log" | tr '\n' ' '; echo
done
echo "fuzz: all $# targets passed"
