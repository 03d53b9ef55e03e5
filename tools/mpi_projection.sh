#!/usr/bin/env bash
# Issue 15: projected time of the ViT-S CIFAR-100 run
# (paper_configs/vit_s_cifar100.ini: preset vit-s-cifar = dim 384, depth 12,
# 6 heads, patch 4 on 32x32x3, 100 classes; 300 epochs of 50,000 images,
# global batch 128) data-parallel on N nodes, from one measured number: this
# machine's training throughput on that model shape (build/bench_train).
#
#   tools/mpi_projection.sh [NODES...]        (default 1 2 4 8 16 32)
#   BW_GBPS=10 ALPHA_US=50 THREADS=2 tools/mpi_projection.sh
#   T_IMG_S=0.05 tools/mpi_projection.sh      (a per-image time measured before)
#
# Model (bin/ewa train under mpirun: the allreduce starts after the whole
# backward, nothing overlaps):
#   T_step(N) = (B/N) * t_img(B/N)  +  2 (N-1)/N * 4P / BW  +  2 (N-1) alpha
#   t_img     = seconds per training image on one node, measured with
#               bench_train at batch B (unless T_IMG_S is given) and taken as
#               independent of the per-node batch B/N: optimistic for small
#               B/N, where real nodes run their GEMMs less efficiently
#   P         = parameters (floats; the gradient is 4P bytes), ring allreduce
#   BW, alpha = link bandwidth (bytes/s) and per-message latency: ASSUMED
#               (BW_GBPS gigabit/s, ALPHA_US microseconds), not measured here
#   run time  = 300 epochs * ceil(50000 / B) steps * T_step(N)
export LC_ALL=C   # awk and printf read and write decimal points in any user locale
set -euo pipefail
cd "$(dirname "$0")/.."
BW_GBPS=${BW_GBPS:-10}
ALPHA_US=${ALPHA_US:-50}
THREADS=${THREADS:-2}
B=128
NODES=("$@")
[ ${#NODES[@]} -gt 0 ] || NODES=(1 2 4 8 16 32)
make -s build/bench_train >/dev/null
SHAPE=(--dim 384 --depth 12 --heads 6 --patch 4 --img 32 --chans 3 --classes 100)
if [ -n "${T_IMG_S:-}" ]; then
  out=$(build/bench_train "${SHAPE[@]}" --batch 1 --steps 0 --warmup 0 --threads 1)
  T_IMG=$T_IMG_S
  echo "given: t_img = $T_IMG s per training image"
else
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  out=$(build/bench_train "${SHAPE[@]}" --batch "$B" --steps 2 --warmup 1 --threads "$THREADS")
  ips=$(sed -E 's/.* images_per_s=([^ ]+).*/\1/' <<<"$out")
  T_IMG=$(awk -v i="$ips" 'BEGIN { printf "%.6f", 1 / i }')
  echo "measured: batch $B, $THREADS threads: $ips images/s ($(sed -E 's/.* gflops=([^ ]+).*/\1/' <<<"$out") GFLOP/s)"
  echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
fi
P=$(sed -E 's/.* params=([^ ]+).*/\1/' <<<"$out")
echo "ViT-S CIFAR-100: P = $P parameters, global batch $B, 300 epochs x $(( (50000 + B - 1) / B )) steps;"
echo "assumed link: $BW_GBPS Gbit/s, alpha $ALPHA_US us (ring allreduce)"
printf '%6s %12s %14s %12s %10s %12s\n' nodes compute_s allreduce_s step_s speedup run_hours
t1=$(awk -v B="$B" -v t="$T_IMG" 'BEGIN { printf "%.6f", B * t }')
for n in "${NODES[@]}"; do
  awk -v n="$n" -v B="$B" -v t="$T_IMG" -v P="$P" -v bw="$BW_GBPS" -v a="$ALPHA_US" -v t1="$t1" '
    BEGIN {
      comp = (B / n) * t
      ar = (n > 1) ? 2 * (n - 1) / n * 4 * P / (bw * 1e9 / 8) + 2 * (n - 1) * a * 1e-6 : 0
      step = comp + ar
      printf "%6d %12.3f %14.4f %12.3f %10.2f %12.1f\n", n, comp, ar, step, t1 / step, 300 * int((50000 + B - 1) / B) * step / 3600
    }'
done
