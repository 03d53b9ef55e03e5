#!/usr/bin/env bash
# Issue 15: one R1 training run (docs/DESIGN.md 7: ViT 192/6/3, mlp 4, patch 4,
# 28x28x1, batch 128, fp32) as 1 process x 2 threads against mpirun -np 2 x
# 1 thread each, on Fashion-MNIST classes 0-1 (so the final test pass is short).
#
#   EWA=bin/ewa tools/mpi_speedup.sh [STEPS]      (default 20 steps)
#
# Prints the training images/s of both (metrics.csv, the epoch's training
# rows only), the gradient allreduce time per step that rank 0 measured
# (bin/ewa's "[mpi]" line) and the load average before and after, since the
# numbers mean little on a busy machine.
export LC_ALL=C   # awk and printf read and write decimal points in any user locale
set -euo pipefail
cd "$(dirname "$0")/.."
EWA=$(realpath "${EWA:-bin/ewa}")
STEPS=${1:-20}
T=$(mktemp -d /tmp/ewa-mpi-speedup.XXXXXX)
trap 'rm -rf "$T"' EXIT
MPIOPT=(--oversubscribe)
[ "$(id -u)" -eq 0 ] && MPIOPT+=(--allow-run-as-root)
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMP_WAIT_POLICY=PASSIVE
cat > "$T/r1.ini" <<EOF
[model]
dim = 192
depth = 6
heads = 3
mlp_ratio = 4
patch = 4
[data]
dataset = fashion-mnist
classes = 0-1
train_subset = $((128 * STEPS))
augment = 0
[train]
epochs = 1
batch_size = 128
warmup_epochs = 0
eval_every = 0
EOF
ips() { awk -F, '$2 == "train" { print $7 }' "$1/metrics.csv"; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$EWA" train --config "$T/r1.ini" --set train.threads=2 --out "$T/one" > "$T/one.log" 2>&1 ||
  { cat "$T/one.log" >&2; exit 1; }
mpirun "${MPIOPT[@]}" -np 2 "$EWA" train --config "$T/r1.ini" --set train.threads=1 --out "$T/two" \
  > "$T/two.log" 2>&1 || { cat "$T/two.log" >&2; exit 1; }
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
echo "R1, $STEPS steps of batch 128:"
echo "  1 process x 2 threads: $(ips "$T/one") images/s"
echo "  2 ranks x 1 thread:    $(ips "$T/two") images/s"
echo "  $(grep '^\[mpi\]' "$T/two.log")"
