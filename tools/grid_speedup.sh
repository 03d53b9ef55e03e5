#!/usr/bin/env bash
# tools/grid_speedup.sh [NRUNS]: measures the grid speed-up of --jobs 2 over
# --jobs 1 (docs/DESIGN.md 7: at least 0.8 N) on NRUNS (default 4) independent small
# runs (vit-micro, SUBSET (default 2000) Fashion-MNIST images, 4 classes, 1 epoch). --jobs 1
# runs each with 2 threads, --jobs 2 runs two at once with 1 thread each.
export LC_ALL=C   # awk and printf read and write decimal points in any user locale
set -eu
cd "$(dirname "$0")/.."
N=${1:-4}; EWA=${EWA:-bin/ewa}
T=$(mktemp -d /tmp/ewa-speedup-XXXXXX)
seeds=$(seq -s, 0 $((N - 1)))
cat > "$T/grid.ini" <<INI
[grid]
base = $(pwd)/paper_configs/table1_base.ini
seeds = $seeds
out = $T/out
[sweep]
moe.method = dense
[profile.bench]
model.preset = vit-micro
data.train_subset = ${SUBSET:-2000}
data.classes = 0-3
data.augment = 0
train.epochs = 1
train.batch_size = 64
INI
declare -A secs
rm -rf "$T/out"
for j in 1 2; do
  t0=$(date +%s.%N)
  "$EWA" grid --config "$T/grid.ini" --profile bench --jobs $j --out "$T/out/j$j" > /dev/null 2>&1
  t1=$(date +%s.%N)
  secs[$j]=$(echo "$t1 - $t0" | bc -l)
  printf 'jobs %d: %d runs in %.1f s\n' $j $N "${secs[$j]}"
done
printf 'speed-up of --jobs 2 over --jobs 1: %.2fx (target >= 1.6x); load average now: %s\n' \
  "$(echo "${secs[1]} / ${secs[2]}" | bc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)"
# What limits the ratio above: how one run scales from 1 to 2 threads, and
# whether two 1-thread runs at once slow each other down (the runner's own
# parallel efficiency, N runs on N cores vs one run on one core).
one() { OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$1 OPENBLAS_NUM_THREADS=$1 "$EWA" train \
  --config "$T/out/j1/runs/$(ls "$T/out/j1/runs" | head -1)/config.ini" --set train.threads=$1 \
  --out "$T/one_$1_$2" > /dev/null 2>&1; }
t0=$(date +%s.%N); one 1 a; t1=$(date +%s.%N); one 2 b; t2=$(date +%s.%N)
one 1 c & one 1 d; wait; t3=$(date +%s.%N)
printf 'one run: %.1f s on 1 thread, %.1f s on 2 threads (%.2fx); two 1-thread runs at once: %.1f s (throughput %.2fx one 1-thread run)\n' \
  "$(echo "$t1 - $t0" | bc -l)" "$(echo "$t2 - $t1" | bc -l)" "$(echo "($t1 - $t0) / ($t2 - $t1)" | bc -l)" \
  "$(echo "$t3 - $t2" | bc -l)" "$(echo "2 * ($t1 - $t0) / ($t3 - $t2)" | bc -l)"
rm -rf "$T"
