#!/usr/bin/env bash
# tools/grid_speedup.sh [NRUNS]: measures the grid speed-up of --jobs 2 over
# --jobs 1 (DESIGN 7: at least 0.8 N) on NRUNS (default 4) independent small
# runs (vit-micro, SUBSET (default 2000) Fashion-MNIST images, 4 classes, 1 epoch). --jobs 1
# runs each with 2 threads, --jobs 2 runs two at once with 1 thread each.
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
for j in 1 2; do
  rm -rf "$T/out"
  t0=$(date +%s.%N)
  "$EWA" grid --config "$T/grid.ini" --profile bench --jobs $j --out "$T/out/j$j" > /dev/null 2>&1
  t1=$(date +%s.%N)
  secs[$j]=$(echo "$t1 - $t0" | bc -l)
  printf 'jobs %d: %d runs in %.1f s\n' $j $N "${secs[$j]}"
done
printf 'speed-up of --jobs 2 over --jobs 1: %.2fx (target >= 1.6x); load average now: %s\n' \
  "$(echo "${secs[1]} / ${secs[2]}" | bc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$T"
