#!/usr/bin/env bash
# `make deps`: the Debian packages this project needs (Debian 12).
#   as root:  apt-get update, then installs them all (non-interactive);
#   otherwise: checks each one, prints the missing ones and the command that
#             installs them, and exits 1 if any is missing.
set -euo pipefail

PACKAGES=(
  build-essential          # cc, make
  pkg-config
  libopenblas-openmp-dev   # OpenBLAS built with OpenMP (shares our thread pool)
  libopenblas-dev
  libdnnl-dev              # oneDNN 2.6: bf16 matmul (train.precision = bf16)
  libcsv-dev               # CSV reading/writing
  gnuplot-nox              # make plots
  locales                  # localedef: the test that figures do not depend on the user's locale
  libcriterion-dev         # unit tests
  zlib1g-dev               # gzip IDX files
  libinih-dev              # INI configs
  libcjson-dev             # safetensors headers
  libgsl-dev               # Student t distribution (ewa aggregate, regress)
  libssl-dev               # libcrypto: SHA-256 of each run's checkpoint (run record, ewa regress)
  dataset-fashion-mnist    # the real Fashion-MNIST in /usr/share/datasets
  python3-torch            # PyTorch parity tests and make bench
  python3-numpy
  openmpi-bin              # mpirun: one run data-parallel over ranks (make test-mpi)
  libopenmpi-dev           # mpicc, mpi.h (bin/ewa is built with MPI when present)
  slurm-wlm                # slurmctld, slurmd, sbatch: make test-slurm (tools/slurm_local.sh)
  munge                    # Slurm's authentication daemon
  clang                    # make fuzz: libFuzzer harnesses (tests/fuzz/)
  libclang-rt-14-dev       # libFuzzer and the sanitizer runtimes for clang
  libomp-dev               # OpenMP for the clang build of the library
)

if [ "$(id -u)" -eq 0 ]; then
  echo "deps: apt-get update"
  apt-get update
  echo "deps: apt-get install ${PACKAGES[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"
  echo "deps: all ${#PACKAGES[@]} packages installed"
  exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps: dpkg-query not found; this script knows Debian packages only. Needed:" >&2
  echo "  ${PACKAGES[*]}" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  # "install ok installed" (or "hold ok installed") when the package is there.
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *" ok installed") ;;
    *) missing+=("$p") ;;
  esac
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages are installed"
  exit 0
fi
echo "deps: ${#missing[@]} of ${#PACKAGES[@]} packages missing: ${missing[*]}" >&2
echo "deps: install them as root with:" >&2
echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
exit 1
