#!/usr/bin/env bash
# `make bench`: trains the reference config R1 (DESIGN 7) in C and in PyTorch
# in one run and prints images/s side by side, their ratio, and the C side's
# achieved GFLOP/s and peak memory. STEPS/WARMUP/THREADS may be overridden.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-20}; WARMUP=${WARMUP:-3}; THREADS=${THREADS:-2}
PY=${PYTHON:-/usr/bin/python3}
field() { sed -E "s/.*[ ^]$1=([^ ]+).*/\1/" <<<" $2"; }
echo "R1: ViT dim 192 depth 6 heads 3 mlp 4 patch 4, 28x28x1, batch 128, fp32, $THREADS threads, $STEPS timed steps after $WARMUP"
c=$(build/bench_train --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS")
echo "$c"
if "$PY" -c 'import torch' 2>/dev/null; then
  t=$("$PY" bench/torch_bench.py --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS")
  echo "$t"
  ci=$(field images_per_s "$c"); ti=$(field images_per_s "$t")
  printf '%-22s %12s %12s %8s\n' "" "C" "PyTorch" "C/torch"
  printf '%-22s %12.1f %12.1f %8.2fx\n' "R1 train images/s" "$ci" "$ti" "$(awk -v a="$ci" -v b="$ti" 'BEGIN{print a/b}')"
  printf '%-22s %12.1f %12.1f\n' "peak RSS MiB" "$(field peak_rss_mib "$c")" "$(field peak_rss_mib "$t")"
  printf '%-22s %12.1f\n' "C achieved GFLOP/s" "$(field gflops "$c")"
else
  echo "SKIP PyTorch side: python3-torch not found ($PY)"
fi
