# Sourced by the end-to-end test scripts that run bin/ewa (tools/test_mpi.sh,
# tools/test_slurm.sh): their common preamble, written once.
#
#   test_begin NAME   cd to the repository; EWA = the binary ($EWA or bin/ewa, absolute, must be
#                     built); T = a fresh temporary directory /tmp/ewa-NAME.XXXXXX, removed on
#                     exit unless KEEP is set
#   fail MSG...       "NAME: FAIL: MSG" on stderr, exit 1
#   tiny_base_ini SUBSET < REST
#                     writes $T/base.ini: the tiny model (dim 16, depth 2, 2 heads, mlp ratio 2,
#                     patch 7) on the first SUBSET Fashion-MNIST images without augmentation,
#                     followed by the sections read from stdin ([train], ...)
set -euo pipefail
test_begin() {
  TEST_NAME=$1
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  EWA=$(realpath "${EWA:-bin/ewa}")
  [ -x "$EWA" ] || { echo "$TEST_NAME: $EWA not built (make)" >&2; exit 1; }
  T=$(mktemp -d "/tmp/ewa-$TEST_NAME.XXXXXX")
  trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
}
fail() { echo "$TEST_NAME: FAIL: $*" >&2; exit 1; }
tiny_base_ini() {
  { printf '[model]\ndim = 16\ndepth = 2\nheads = 2\nmlp_ratio = 2\npatch = 7\n'
    printf '[data]\ndataset = fashion-mnist\ntrain_subset = %s\naugment = 0\n' "$1"
    cat; } > "$T/base.ini"
}
