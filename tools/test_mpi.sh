#!/usr/bin/env bash
# `make test-mpi` (issue 15): one run data-parallel over 2 MPI ranks trains
# the same model as one process with the whole batch.
#
#   EWA=bin/ewa tools/test_mpi.sh
#
# For dense, EWA and routed MoE (top-1, capacity factor 4 = E so no token is
# dropped, no auxiliary loss: capacity and the load-balancing loss are per
# rank, see experiments/dist.h): 5 steps of batch 64 (lr 1e-3) on 64
# Fashion-MNIST images, one thread per process,
#   1 process x batch 64   against   mpirun -np 2: 2 ranks x batch 32;
# checks: every step's training loss and the final test loss within 1e-5, the
# same top-1, and every tensor of final.safetensors within 1e-4 of that
# tensor's largest magnitude (AdamW turns rounding in near-zero gradients into
# large steps, so element-wise relative tolerances would be wrong). AdamW's
# eps is 1e-6 here, not 1e-8: the key bias of attention has an exact gradient
# of zero (softmax is shift-invariant), so its float gradient is rounding
# noise (~1e-10) that any change of summation order changes, and eps 1e-8
# turns it into steps that differ by ~1e-2 lr (measured with eps 1e-8: 2.4e-4
# of qkv.bias's largest magnitude after 5 steps; every other tensor within
# 2e-5). Then a run
# whose rank 1 cannot read its data must end the whole job non-zero, with
# rank 1's message, instead of leaving rank 0 waiting in MPI_Allreduce.
# Exit 0 = pass, 1 = fail.
source "$(dirname "$0")/test_lib.sh"
test_begin test-mpi
command -v mpirun >/dev/null || fail "mpirun not found (make deps: openmpi-bin)"
ldd "$EWA" | grep libmpi >/dev/null || fail "$EWA was built without MPI (install libopenmpi-dev, then make MPI=1)"
# root (CI) needs --allow-run-as-root; 2 ranks may exceed the slots of a
# 1-core machine; shared-memory single copy (CMA) is often not permitted in
# containers.
MPIOPT=(--oversubscribe)
[ "$(id -u)" -eq 0 ] && MPIOPT+=(--allow-run-as-root)
MPIRUN=(mpirun "${MPIOPT[@]}" -np 2)
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMP_WAIT_POLICY=PASSIVE

tiny_base_ini 64 <<EOF
[train]
epochs = 5
batch_size = 64
lr = 1e-3
warmup_epochs = 0
eval_every = 0
threads = 1
eps = 1e-6
[moe]
experts = 4
EOF

run_pair() {   # name, --set arguments...
  local name=$1; shift
  "$EWA" train --config "$T/base.ini" --out "$T/$name-1" "$@" > "$T/$name-1.log" 2>&1 ||
    { cat "$T/$name-1.log" >&2; fail "$name: the one-process run failed"; }
  timeout 300 "${MPIRUN[@]}" "$EWA" train --config "$T/base.ini" --out "$T/$name-2" "$@" \
    > "$T/$name-2.log" 2>&1 || { cat "$T/$name-2.log" >&2; fail "$name: the 2-rank run failed"; }
  grep -q "^\[mpi\] 2 ranks" "$T/$name-2.log" || { cat "$T/$name-2.log" >&2; fail "$name: did not run on 2 ranks"; }
  "${PYTHON:-/usr/bin/python3}" - "$name" "$T/$name-1" "$T/$name-2" <<'EOF' || exit 1
import csv, json, struct, sys
import numpy as np
name, one, two = sys.argv[1:]
def metrics(d):
    with open(d + "/metrics.csv", newline="") as f:
        return list(csv.DictReader(f))
def tensors(d):
    with open(d + "/final.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in head.items():
        if k == "__metadata__": continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"])
    return out
bad = []
m1, m2 = metrics(one), metrics(two)
# 5 training rows, the validation row (data.val_size defaults to 10% for fashion-mnist) and the test row
if len(m1) != len(m2) or len(m1) != 7: bad.append(f"metrics rows {len(m1)} vs {len(m2)}, want 7")
worst_loss = 0.0
for a, b in zip(m1, m2):
    d = abs(float(a["loss"]) - float(b["loss"]))
    worst_loss = max(worst_loss, d)
    if (a["epoch"], a["split"]) != (b["epoch"], b["split"]) or d > 1e-5:
        bad.append(f"step {a['step']} {a['split']} loss {a['loss']} (1 process) vs {b['loss']} (2 ranks)")
    if a["split"] == "test" and a["top1"] != b["top1"]:
        bad.append(f"test top-1 {a['top1']} vs {b['top1']}")
t1, t2 = tensors(one), tensors(two)
if sorted(t1) != sorted(t2): bad.append("the checkpoints hold different tensors")
worst = 0.0
for k in t1:
    if k not in t2: continue
    scale = float(np.abs(t1[k]).max()) or 1.0
    rel = float(np.abs(t1[k] - t2[k]).max()) / scale
    worst = max(worst, rel)
    if rel > 1e-4: bad.append(f"tensor {k}: max |diff| = {rel:.2e} of its largest magnitude (> 1e-4)")
for b in bad: print(f"test-mpi: FAIL: {name}: {b}", file=sys.stderr)
if bad: sys.exit(1)
print(f"test-mpi: {name}: 5 steps, losses within {worst_loss:.1e}, {len(t1)} tensors within "
      f"{worst:.1e} of their largest magnitude")
EOF
}

run_pair dense --set moe.method=dense
run_pair ewa --set moe.method=ewa
run_pair moe --set moe.method=moe --set moe.capacity_factor=4 --set moe.aux_coef=0

# rank 1 fails (its data directory does not exist) while rank 0 trains
mkdir -p "$T/empty"
set +e
timeout 300 mpirun "${MPIOPT[@]}" -np 1 "$EWA" train --config "$T/base.ini" --out "$T/fail" : \
  -np 1 "$EWA" train --config "$T/base.ini" --out "$T/fail" --set data.dir="$T/empty" \
  > "$T/fail.log" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || { cat "$T/fail.log" >&2; fail "a failing rank: exit $rc (want non-zero, no timeout)"; }
grep -q "ewa train: rank 1 of 2: .*$T/empty" "$T/fail.log" ||
  { cat "$T/fail.log" >&2; fail "a failing rank: no message from rank 1 naming its data directory"; }
echo "test-mpi: a failing rank ends the job: exit $rc, message: $(grep -m1 'ewa train: rank 1' "$T/fail.log")"
echo "test-mpi: PASS"
