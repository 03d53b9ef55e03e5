#!/usr/bin/env bash
# `make bench`: throughput measured in one run, C beside PyTorch (DESIGN 7).
#  1. R1 (ViT 192/6/3, mlp 4, patch 4, 28x28x1, batch 128, fp32) training in C
#     and in PyTorch: images/s, ratio, C GFLOP/s, peak RSS.
#  2. R1 with RMoE+EWA and with a top-1 routed MoE (4 experts, every other
#     block): step time relative to the dense C step.
#  3. The 3D model of paper_configs/shapes3d_cpu.ini: point clouds/s.
# STEPS/WARMUP/THREADS may be overridden from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-20}; WARMUP=${WARMUP:-3}; THREADS=${THREADS:-2}
PY=${PYTHON:-/usr/bin/python3}
B=build/bench_train
field() { sed -E "s/.*[ ^]$1=([^ ]+).*/\1/" <<<" $2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
echo "R1: ViT dim 192 depth 6 heads 3 mlp 4 patch 4, 28x28x1, batch 128, fp32, $THREADS threads, $STEPS timed steps after $WARMUP"
c=$($B --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS"); echo "$c"
ewa=$($B --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" --method ewa); echo "$ewa"
moe=$($B --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" --method moe); echo "$moe"
p3=$($B --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" --points 512 --groups 32 --group-k 16 \
       --pn-width 32 --dim 96 --depth 4 --heads 3 --mlp-ratio 2 --classes 14 --batch 32); echo "$p3"
t=""
if "$PY" -c 'import torch' 2>/dev/null; then
  t=$("$PY" bench/torch_bench.py --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS"); echo "$t"
else
  echo "SKIP PyTorch side: python3-torch not found ($PY)"
fi
echo
printf '%-34s %12s %12s %10s\n' "" "C" "PyTorch" "C/PyTorch"
ci=$(field images_per_s "$c")
if [ -n "$t" ]; then
  ti=$(field images_per_s "$t")
  printf '%-34s %12.1f %12.1f %9sx\n' "R1 dense train images/s" "$ci" "$ti" "$(ratio "$ci" "$ti")"
  printf '%-34s %12.1f %12.1f\n' "R1 peak RSS MiB" "$(field peak_rss_mib "$c")" "$(field peak_rss_mib "$t")"
else
  printf '%-34s %12.1f\n' "R1 dense train images/s" "$ci"
fi
printf '%-34s %12.1f\n' "R1 C achieved GFLOP/s" "$(field gflops "$c")"
printf '%-34s %12s %12s\n' "" "step ms" "x dense"
printf '%-34s %12.1f %12s\n' "R1 dense" "$(field step_ms "$c")" "1.00"
printf '%-34s %12.1f %12s\n' "R1 RMoE+EWA (4 experts, target 1.10)" "$(field step_ms "$ewa")" "$(ratio "$(field step_ms "$ewa")" "$(field step_ms "$c")")"
printf '%-34s %12.1f %12s\n' "R1 top-1 MoE (4 experts, target 1.3)" "$(field step_ms "$moe")" "$(ratio "$(field step_ms "$moe")" "$(field step_ms "$c")")"
printf '%-34s %12.1f\n' "3D shapes3d_cpu clouds/s" "$(field images_per_s "$p3")"
