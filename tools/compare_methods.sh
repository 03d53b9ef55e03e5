#!/usr/bin/env bash
# One-seed comparison of the training methods (issue 3) on Fashion-MNIST with
# the documented CPU recipe (paper_configs/fmnist_cpu.ini), in the small-data
# regime (class-balanced subset) so that it fits a 2-core machine:
#   tools/compare_methods.sh [OUT_DIR] [SUBSET] [EPOCHS]
# Writes OUT_DIR/<method>/ run directories and OUT_DIR/comparison.md.
# The deployed cost columns come from each run's summary.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/compare_methods}; SUBSET=${2:-5000}; EPOCHS=${3:-15}
BIN=${EWA_BIN:-bin/ewa}
mkdir -p "$OUT"
declare -A EXTRA=(
  [dense]="--set moe.method=dense"
  [ewa]="--set moe.method=ewa"
  [moe]="--set moe.method=moe"
  [moe-early-ewa]="--set moe.method=moe-early-ewa"
  [vimoe]="--set moe.method=vimoe --set moe.blocks=last:2"
)
methods=(dense ewa moe moe-early-ewa vimoe)
for m in "${methods[@]}"; do
  if [ -f "$OUT/$m/summary.csv" ] && grep -q ',ok,' "$OUT/$m/summary.csv"; then continue; fi
  echo "== $m" >&2
  # shellcheck disable=SC2086
  "$BIN" train --config paper_configs/fmnist_cpu.ini --set data.train_subset="$SUBSET" \
    --set train.epochs="$EPOCHS" --set train.threads="${THREADS:-0}" ${EXTRA[$m]} --out "$OUT/$m" >&2
done
col() { awk -F, -v name="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==name) c=i} NR==2{print $c}' "$1"; }
{
  echo "Fashion-MNIST, class-balanced subset of $SUBSET training images, full 10000-image test set,"
  echo "recipe paper_configs/fmnist_cpu.ini with train.epochs=$EPOCHS, one seed (0). Settings are ours."
  echo
  echo "| method | final top-1 | best top-1 | params (deployed) | FLOPs/image (deployed) | train s |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for m in "${methods[@]}"; do
    s="$OUT/$m/summary.csv"
    printf '| %s | %s | %s | %s | %s | %s |\n' "$m" "$(col "$s" final_top1)" "$(col "$s" best_top1)" \
      "$(col "$s" params_inference)" "$(col "$s" flops_inference)" "$(col "$s" train_seconds)"
  done
} > "$OUT/comparison.md"
cat "$OUT/comparison.md"
