#!/usr/bin/env bash
# plots/all.sh [RESULTS_DIR]: draws every figure for the results present
# (make plots), each as PNG and SVG: Table 1 bars, the forest plot of the
# paired EWA - dense differences and training curves for results/table1/*/,
# ablation lines for results/ablation_<name>/*/ (x keys in
# plots/ablations.txt) and, over the methods, for a table of theirs
# aggregated against another baseline into vs_*/ (claim (c)), the
# class-expert mutual information per MoE layer for every routing_mi.csv
# (plots/routing_mi.sh), routing heatmaps for every run with a routing.csv.
# Aggregates a runs.csv first when its table is missing, older than it or
# than the grid's plan.csv, or does not count its runs (plots/common.sh
# table_current: a fresh clone gives every file one mtime); a grid that is
# unfinished (runs of its plan without a row) or whose runs cannot be
# aggregated is not drawn, nor its vs_* tables and routing figures (ewa
# aggregate says why), and the exit status is 1; so is it when a figure
# script refuses (a vs_* table older than its runs: aggregate it again with
# its --baseline) or fails. The last line counts the sets drawn whole.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"   # table_current
R=${1:-results}
EWA=${EWA:-bin/ewa}
st=0; n=0; refused=   # n counts the result sets drawn without a refusal
aggregate() { # DIR: 0 when DIR's table is current and may be drawn
  if [ -s "$1/runs.csv" ] && { [ ! -s "$1/table.tsv" ] || [ "$1/runs.csv" -nt "$1/table.tsv" ] ||
                               [ "$1/plan.csv" -nt "$1/table.tsv" ] ||
                               ! table_current "$1" 2>/dev/null; }; then
    if ! "$EWA" aggregate --runs "$1/runs.csv" --out "$1" >/dev/null; then
      echo "plots/all.sh: $1: not drawn" >&2
      refused="$refused$1/
"
      st=1; return 1
    fi
  fi
  return 0
}
drawn() { # SCRIPT ARGS...: runs one figure script; 1 (and the exit status 1) when it refused or failed
  "$@" || { st=1; return 1; }
}
is_refused() { # PATH: 1 when PATH lies in a directory aggregate refused
  local d
  while IFS= read -r d; do
    [ -n "$d" ] && case "$1" in "$d"*) return 0 ;; esac
  done <<< "$refused"
  return 1
}
for d in "$R"/table1/*/; do
  [ -d "$d" ] || continue; d=${d%/}
  aggregate "$d" || continue
  [ -s "$d/table.tsv" ] || continue
  k=0; drawn "$here/table1.sh" "$d" || k=1; drawn "$here/forest.sh" "$d" || k=1; drawn "$here/curves.sh" "$d" || k=1
  [ $k = 1 ] || n=$((n + 1))
done
while read -r name xkey title <&3; do
  case "$name" in ''|\#*) continue ;; esac
  for d in "$R"/ablation_"$name"/*/; do
    [ -d "$d" ] || continue; d=${d%/}
    aggregate "$d" || continue
    [ -s "$d/table.tsv" ] || continue
    k=0; drawn "$here/ablation.sh" "$d" "$xkey" "$title" || k=1; drawn "$here/curves.sh" "$d" || k=1
    [ $k = 1 ] || n=$((n + 1))
    for v in "$d"/vs_*/; do   # the same runs aggregated against another baseline (--baseline, claims.ini)
      [ -s "$v/table.tsv" ] || continue   # aggregated by hand with its --baseline (paper_configs/claims.ini);
                                          # ablation.sh refuses it when it counts fewer runs than $d/runs.csv
      drawn "$here/ablation.sh" "${v%/}" method "$title, against $(basename "$v" | sed 's/^vs_//; s/_/ /g')" &&
        n=$((n + 1))
    done
  done
done 3< "$here/ablations.txt" < /dev/null
for f in $(find "$R" -name routing_mi.csv 2>/dev/null); do   # claim (e)'s measure per MoE layer
  d=$(dirname "$f"); out=$d/routing_mi
  is_refused "$d/" && continue
  [ -s "$out.png" ] && [ -s "$out.svg" ] && [ "$out.png" -nt "$f" ] && [ "$out.png" -nt "$here/routing_mi.sh" ] && continue
  drawn "$here/routing_mi.sh" "$d" >/dev/null && n=$((n + 1))
done
for f in $(find "$R" -name routing.csv 2>/dev/null); do
  out=${f%.csv}
  is_refused "$f" && continue
  [ -s "$out.png" ] && [ -s "$out.svg" ] && [ "$out.png" -nt "$f" ] && [ "$out.png" -nt "$here/routing.sh" ] && continue
  drawn "$here/routing.sh" "$f" "$out.png" >/dev/null && n=$((n + 1))
done
echo "plots: $n result sets drawn under $R"
exit $st
