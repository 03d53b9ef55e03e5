#!/usr/bin/env bash
# `make test-slurm` (issue 15): a grid exported as a Slurm job array, run by a
# real (single-node, temporary) Slurm cluster, gives the same runs.csv as the
# local runner.
#
#   EWA=bin/ewa tools/test_slurm.sh
#
# 1. a tiny grid (2 seeds x dense/ewa = 4 runs of 4 steps on 128 Fashion-MNIST
#    images, one thread each) is run by the local runner (`ewa grid`);
# 2. the same grid is exported (`ewa grid --export slurm`, resources from its
#    [slurm] section) and submitted with its submit.sh (`sbatch` of the job
#    array, then of the aggregation with --dependency=afterok) to a cluster
#    started by tools/slurm_local.sh, which stops its daemons on every exit
#    path; the test waits until the queue is empty;
# 3. checks: every run id appears exactly once in the Slurm runs.csv, with
#    status ok and final_top1 equal, as text, to the local runner's, and the
#    aggregation job wrote table.csv.
# Exit 0 = pass, 1 = fail (with a message).
source "$(dirname "$0")/test_lib.sh"
test_begin test-slurm
tiny_base_ini 128 <<EOF
[train]
epochs = 1
batch_size = 32
lr = 1e-2
warmup_epochs = 0
EOF
cat > "$T/grid.ini" <<EOF
[grid]
base = base.ini
seeds = 0, 1
out = out
[sweep]
moe.method = dense, ewa
[slurm]
cpus_per_task = 1
time = 10
mem = 1G
array_throttle = 2
EOF

echo "test-slurm: local runner (2 jobs x 1 thread)"
(cd "$T" && "$EWA" grid --allow-dirty --config grid.ini --out local --jobs 2) > "$T/local.log" 2>&1 ||
  { cat "$T/local.log" >&2; fail "the local runner failed"; }

echo "test-slurm: export for Slurm"
(cd "$T" && "$EWA" grid --allow-dirty --config grid.ini --out slurm --export slurm --jobs 2) > "$T/export.log" 2>&1 ||
  { cat "$T/export.log" >&2; fail "the export failed"; }

echo "test-slurm: sbatch on a one-node Slurm cluster"
# shellcheck disable=SC2016
tools/slurm_local.sh -- bash -c '
  set -eu
  cd "$1"
  sh slurm/submit.sh
  for i in $(seq 600); do   # at most 10 min
    [ -z "$(squeue -h -o %i)" ] && break
    sleep 1
  done
  [ -z "$(squeue -h -o %i)" ] || { squeue >&2; echo "jobs still queued after 10 min" >&2; exit 1; }
  [ -s slurm/table.csv ] || { cat slurm/aggregate-*.log >&2; echo "the aggregation job wrote no table.csv" >&2; exit 1; }
' _ "$T" > "$T/sbatch.log" 2>&1 || {
  cat "$T/sbatch.log" >&2
  for l in "$T"/slurm/runs/slurm-*.log; do [ -s "$l" ] && { echo "--- $l" >&2; cat "$l" >&2; }; done
  fail "the Slurm job array failed"
}

"${PYTHON:-/usr/bin/python3}" - "$T/local/runs.csv" "$T/slurm/runs.csv" <<'EOF'
import csv, sys
def rows(p):
    with open(p, newline="") as f:
        return list(csv.DictReader(f))
local, slurm = rows(sys.argv[1]), rows(sys.argv[2])
ids = [r["run_id"] for r in local]
bad = []
if len(ids) != 4 or len(set(ids)) != 4: bad.append(f"local runs.csv: {len(ids)} rows, want 4 distinct runs")
want = {r["run_id"]: r["final_top1"] for r in local}
got = {}
for r in slurm:
    got.setdefault(r["run_id"], []).append(r)
for i in ids:
    g = got.get(i, [])
    if len(g) != 1: bad.append(f"run {i}: {len(g)} rows in the Slurm runs.csv, want 1")
    elif g[0]["status"] != "ok": bad.append(f"run {i}: status {g[0]['status']}")
    elif g[0]["final_top1"] != want[i]:
        bad.append(f"run {i}: final_top1 {g[0]['final_top1']} (Slurm) != {want[i]} (local)")
extra = set(got) - set(ids)
if extra: bad.append(f"Slurm runs.csv has runs the local runner does not: {sorted(extra)}")
for b in bad: print("test-slurm: FAIL:", b, file=sys.stderr)
if bad: sys.exit(1)
print(f"test-slurm: PASS: {len(ids)} runs, each once, final_top1 identical "
      f"({', '.join(want[i] for i in ids)})")
EOF
