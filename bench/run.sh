#!/usr/bin/env bash
# `make bench`: training throughput, C beside PyTorch, measured in ONE run (docs/DESIGN.md 7, issue 13).
#  - R0 (ViT 64/6/4, mlp 2) and R1 (192/6/3, mlp 4), patch 4, 28x28x1, batch 128: C (build/bench_train)
#    in each precision this CPU runs, PyTorch (bench/torch_bench.py) in fp32 and in bf16 autocast.
#  - The engine's GEMM path timed on the model's own linear shapes (bench_train --gemm-peak): the achieved
#    GFLOP/s of each C run is reported as a fraction of it.
#  - R1 with RMoE+EWA and with a top-1 routed MoE (4 experts, every other block): step time / dense.
#  - The 3D model of paper_configs/shapes3d_cpu.ini: point clouds/s.
# Robustness on a shared machine: every measurement is repeated ROUNDS times, the C and PyTorch runs of a
# round interleaved (so slow phases of the machine hit both sides), and the median is reported; ratios are
# medians of per-round ratios. The load average before and after, and each run's cpu_util (process CPU
# seconds / (wall x threads); below ~0.9 the run shared its cores) are printed with the table.
# Environment: STEPS (timed steps of R1; R0 runs 4x as many), WARMUP, THREADS, ROUNDS, PYTHON, PREC (one
# precision only: fp32 or bf16);
# MOE_ROUNDS, MOE_STEPS for the MoE step ratios (their own interleaved rounds, below).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-20}; WARMUP=${WARMUP:-3}; THREADS=${THREADS:-2}; ROUNDS=${ROUNDS:-3}
MOE_ROUNDS=${MOE_ROUNDS:-9}; MOE_STEPS=${MOE_STEPS:-10}
PY=${PYTHON:-/usr/bin/python3}
B=build/bench_train
R0="--dim 64 --depth 6 --heads 4 --mlp-ratio 2"
R1="--dim 192 --depth 6 --heads 3 --mlp-ratio 4"
P3="--points 512 --groups 32 --group-k 16 --pn-width 32 --dim 96 --depth 4 --heads 3 --mlp-ratio 2 --classes 14 --batch 32"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

field() { sed -E "s/.*[ ^]$1=([^ ]+).*/\1/" <<<" $2"; }
# median of the numbers on stdin (one per line; empty input -> "nan")
med() { sort -g | awk '{v[NR]=$1} END{if(!NR){print "nan"} else if(NR%2){print v[(NR+1)/2]} else {print (v[NR/2]+v[NR/2+1])/2}}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN{if(b+0==0||a=="nan"||b=="nan"){print "nan"} else printf "%.3f\n", a/b}'; }
# run NAME CMD...: runs once, appends its key=value line to $TMP/NAME, echoes it
run() { local n=$1; shift; local l; l=$("$@"); echo "$l" >>"$TMP/$n"; echo "  $l"; }
col() { [ -s "$TMP/$1" ] || { echo nan; return; }; for l in $(sed -E "s/.*[ ^]$2=([^ ]+).*/\1/" "$TMP/$1" 2>/dev/null); do echo "$l"; done | med; }
# ratios A B F: the per-round ratios of field F between files A and B, one per line (nothing if either is empty)
ratios() { [ -s "$TMP/$1" ] && [ -s "$TMP/$2" ] || return 0
           paste -d'\n' <(sed -E "s/.*[ ^]$3=([^ ]+).*/\1/" "$TMP/$1") <(sed -E "s/.*[ ^]$3=([^ ]+).*/\1/" "$TMP/$2") |
           paste - - | awk '{print $1/$2}'; }
# their median ("nan" without rounds), and their smallest and largest as "min-max"
rcol() { ratios "$@" | med; }
rrng() { ratios "$@" | awk '{if(NR==1||$1<lo)lo=$1; if(NR==1||$1>hi)hi=$1} END{if(NR) printf "%.3f-%.3f\n", lo, hi; else print "nan"}'; }

HAVE_TORCH=0; "$PY" -c 'import torch' 2>/dev/null && HAVE_TORCH=1
# bf16 needs avx512_bf16 or AMX: without them the C engine refuses train.precision = bf16 and PyTorch's
# bf16 autocast runs emulated kernels (3 R1 steps took over 2 CPU-minutes on a Zen 3 without them).
C_PREC=(fp32); T_PREC=(fp32)
if grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then C_PREC+=(bf16); T_PREC+=(bf16)
else BF16_NOTE="bf16 columns: this CPU has neither avx512_bf16 nor amx_bf16 (see /proc/cpuinfo flags)"; fi
# PREC=fp32 or PREC=bf16: measure that precision only (a re-measurement after a change to its path)
case "${PREC:-}" in
  "") ;;
  fp32|bf16) if [[ " ${C_PREC[*]} " == *" $PREC "* ]]; then C_PREC=("$PREC"); T_PREC=("$PREC")
             else echo "bench: PREC=$PREC: this CPU cannot run it (${BF16_NOTE:-})" >&2; exit 2; fi ;;
  *) echo "bench: PREC must be fp32 or bf16, not '$PREC'" >&2; exit 2 ;;
esac
# OpenBLAS 0.3.21 (Debian 12) does not know newer CPUs and falls back to its generic 'Prescott' kernels
# (an Intel Xeon of family 6, model 207 ran PyTorch fp32 R1 at a third of its speed with SkylakeX's): a user
# after speed would set OPENBLAS_CORETYPE, so the bench does it for PyTorch, which takes its fp32 GEMMs from
# the system BLAS (the C engine's fp32 GEMMs are oneDNN's, core/gemm.c), and says so.
TORCH_ENV=()
if [ "$HAVE_TORCH" = 1 ] && [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  blas_core=$(OPENBLAS_VERBOSE=2 "$PY" -c 'import torch' 2>&1 || true)
  if grep -q '^Core: Prescott' <<<"$blas_core"; then
    if grep -qw avx512f /proc/cpuinfo; then TORCH_ENV=(OPENBLAS_CORETYPE=SkylakeX)
    elif grep -qw avx2 /proc/cpuinfo; then TORCH_ENV=(OPENBLAS_CORETYPE=Haswell); fi
    [ ${#TORCH_ENV[@]} = 0 ] || BLAS_NOTE="OpenBLAS took this CPU for a generic Prescott; ${TORCH_ENV[0]} set for the PyTorch runs"
  fi
fi
load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "make bench: $(date -u +%FT%TZ), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $THREADS threads"
echo "load average before: $load0; $ROUNDS rounds, R1 $STEPS timed steps (R0 $((4 * STEPS))) after $WARMUP warm-up"
for r in $(seq "$ROUNDS"); do
  echo "round $r"
  for cfg in R0 R1; do
    args=${!cfg}; st=$STEPS; [ "$cfg" = R0 ] && st=$((4 * STEPS))
    common=(--steps "$st" --warmup "$WARMUP" --threads "$THREADS")
    for p in "${C_PREC[@]}"; do
      run "$cfg.gemm.$p" "$B" --steps 5 --threads "$THREADS" --gemm-peak 1 --precision "$p" $args
      run "$cfg.c.$p" "$B" "${common[@]}" --precision "$p" $args
    done
    if [ "$HAVE_TORCH" = 1 ]; then
      for p in "${T_PREC[@]}"; do run "$cfg.t.$p" env "${TORCH_ENV[@]}" "$PY" bench/torch_bench.py "${common[@]}" --precision "$p" $args; done
    fi
  done
  for p in "${C_PREC[@]}"; do run "P3.c.$p" "$B" --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" --precision "$p" $P3; done
done
# The MoE step ratios are judged against a 5% target, finer than this VM's drift between 20-step runs
# (rounds of 1.02-1.13 measured idle, bench/results/2026-11-30-moe-overhead.txt), so they get their own
# design: MOE_ROUNDS short runs of dense, RMoE+EWA and routed top-1 back to back, the ratio taken within
# each round (the three runs of a round seconds apart) and its median over the rounds reported.
echo "MoE step ratios: $MOE_ROUNDS rounds of dense, RMoE+EWA, top-1 MoE, $MOE_STEPS timed steps each"
for r in $(seq "$MOE_ROUNDS"); do
  for p in "${C_PREC[@]}"; do
    common=(--steps "$MOE_STEPS" --warmup "$WARMUP" --threads "$THREADS" --precision "$p")
    run "R1.c.$p.dense" "$B" "${common[@]}" $R1
    run "R1.c.$p.ewa" "$B" "${common[@]}" --method ewa $R1
    run "R1.c.$p.moe" "$B" "${common[@]}" --method moe $R1
  done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "== make bench summary: medians of $ROUNDS rounds; load average before $load0, after $load1 =="
[ "$HAVE_TORCH" = 1 ] || echo "SKIP PyTorch columns: python3-torch not found ($PY)"
[ -z "${BF16_NOTE:-}" ] || echo "SKIP $BF16_NOTE"
[ -z "${BLAS_NOTE:-}" ] || echo "NOTE $BLAS_NOTE"
printf '%-11s %9s %9s %9s %9s %7s %9s %9s %8s %8s %7s %7s\n' config "img/s" "torch32" "torch16" "C/t32" "C/t16" \
  "GFLOP/s" "GEMMpeak" "%peak" "cpu_util" "RSS_C" "RSS_t32"
for cfg in R0 R1; do
  for p in "${C_PREC[@]}"; do
    gp=$(col "$cfg.gemm.$p" gemm_gflops)
    c="$cfg.c.$p"; t32=nan; t16=nan; r32=nan; r16=nan; rt=nan
    if [ "$HAVE_TORCH" = 1 ]; then
      t32=$(col "$cfg.t.fp32" images_per_s); t16=$(col "$cfg.t.bf16" images_per_s)
      r32=$(rcol "$c" "$cfg.t.fp32" images_per_s); r16=$(rcol "$c" "$cfg.t.bf16" images_per_s)
      rt=$(col "$cfg.t.fp32" peak_rss_mib)
    fi
    g=$(col "$c" gflops)
    printf '%-11s %9.1f %9.1f %9.1f %8.2fx %6.2fx %9.1f %9.1f %7.0f%% %8.2f %7.0f %7.0f\n' "$cfg C $p" \
      "$(col "$c" images_per_s)" "$t32" "$t16" "$r32" "$r16" "$g" "$gp" "$(awk -v a="$g" -v b="$gp" 'BEGIN{print 100*a/b}')" \
      "$(col "$c" cpu_util)" "$(col "$c" peak_rss_mib)" "$rt"
  done
  if [ "$HAVE_TORCH" = 1 ]; then
    printf '%-11s %9s %9s %9s %9s %7s %9.1f %9s %8s %8.2f %7s %7.0f\n' "$cfg torch" "" "" "" \
      "t16/t32" "$(rcol "$cfg.t.bf16" "$cfg.t.fp32" images_per_s)" \
      "$(awk -v a="$(col "$cfg.t.fp32" images_per_s)" -v f="$(col "$cfg.c.${C_PREC[0]}" train_flops_per_image)" 'BEGIN{print a*f/1e9}')" "" "" \
      "$(col "$cfg.t.fp32" cpu_util)" "" "$(col "$cfg.t.bf16" peak_rss_mib)"
  fi
done
echo "  (torch row: bf16/fp32 speed ratio, PyTorch fp32 GFLOP/s, its cpu_util, bf16 peak RSS MiB)"
for p in "${C_PREC[@]}"; do
  printf '%-40s %9s %9s %s\n' "R1 C $p, same round" "step ms" "x dense" "  (per-round ratios: min-max of $MOE_ROUNDS)"
  printf '%-40s %9.1f %9s\n' "dense" "$(col "R1.c.$p.dense" step_ms)" "1.00"
  printf '%-40s %9.1f %9.3f   %s\n' "RMoE+EWA, 4 experts (target <= 1.05)" "$(col "R1.c.$p.ewa" step_ms)" "$(rcol "R1.c.$p.ewa" "R1.c.$p.dense" step_ms)" "$(rrng "R1.c.$p.ewa" "R1.c.$p.dense" step_ms)"
  printf '%-40s %9.1f %9.3f   %s\n' "top-1 routed MoE, 4 experts (<= 1.2)" "$(col "R1.c.$p.moe" step_ms)" "$(rcol "R1.c.$p.moe" "R1.c.$p.dense" step_ms)" "$(rrng "R1.c.$p.moe" "R1.c.$p.dense" step_ms)"
done
for p in "${C_PREC[@]}"; do
  printf '%-40s %9.1f  (batch 32, %.0f MiB)\n' "3D shapes3d_cpu model $p, clouds/s" "$(col "P3.c.$p" images_per_s)" "$(col "P3.c.$p" peak_rss_mib)"
done
