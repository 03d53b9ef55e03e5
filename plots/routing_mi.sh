#!/usr/bin/env bash
# plots/routing_mi.sh DIR: the figure of claim (e) of results/CLAIMS.md
# ("routing specialises by class in deep layers and not in shallow ones") from
# DIR/routing_mi.csv (written by `ewa aggregate` beside table.csv;
# experiments/routing_mi.h): the class-expert mutual information I(C; E) in
# bits of every routed MoE layer, x = the block index (from 0, as moe.blocks
# and timm's blocks.{i}), y = the mean over the cell's seeds with its 95%
# t-interval (the csv's ci_low, ci_high). One panel per variant (the cells'
# grouping columns that vary, other than blocks: e.g. method and
# shared_expert), one series per moe.blocks value (L = last:1, last:2, ...;
# one series when the cells have no blocks column) in the panel's method colour (plots/common.sh); the dotted line is the
# largest possible value log2(min(classes, experts)).
# Writes DIR/routing_mi.png and .svg (data DIR/routing_mi.dat).
set -eu
here=$(dirname "$0"); . "$here/common.sh"
DIR=$1
CSV=$DIR/routing_mi.csv; OUT=$DIR/routing_mi; DAT=$OUT.dat
[ -s "$CSV" ] || { echo "plots/routing_mi.sh: no $CSV" >&2; exit 1; }
[ -s "$DIR/table.tsv" ] && { table_current "$DIR" || exit 1; }   # routing_mi.csv is of the same aggregation
TSV=$(mktemp); META=$(mktemp); SUM=$(mktemp); trap 'rm -f "$TSV" "$META" "$SUM"' EXIT
csv2tsv "$CSV" > "$TSV"
# DAT: one gnuplot data block per (panel, series), "layer mean lo hi" rows;
# META: one line per block "panel<TAB>series<TAB>method<TAB>panel title";
# SUM: "panels max_bits max_layer".
awk -F'\t' -v DAT="$DAT" -v META="$META" -v SUM="$SUM" '
function xnum(p) { return match(p, /[0-9]+$/) ? substr(p, RSTART) + 0 : 0 }
NR == 1 {
  for (i = 1; i <= NF; i++) { c[$i] = i; hdr[i] = $i }
  split("cell layer vs_layer mean_bits ci_low ci_high max_bits", need, " ")
  for (k in need) if (!(need[k] in c)) { print "plots/routing_mi.sh: column " need[k] " missing" > "/dev/stderr"; bad = 1; exit 1 }
  first = c["cell"] + 1; last = c["layer"] - 1   # the grouping columns sit between cell and layer
  bc = ("blocks" in c) ? c["blocks"] : -1          # absent when every cell has the same moe.blocks
  next
}
$c["vs_layer"] != "" || $c["cell"] == "pooled" { next }   # the deepest-minus-shallowest rows
{
  key = ""
  for (i = first; i <= last; i++) if (i != bc) { key = key "\t" $i; val[i, $i] = 1 }
  if (!(key in pid)) { pid[key] = ++np; pkey[np] = key; pmeth[np] = ("method" in c) ? $c["method"] : "" }
  b = bc > 0 ? $bc : ""; sk = pid[key] SUBSEP b
  if (!(sk in sid)) { sid[sk] = 1; ns[pid[key]]++; ser[pid[key], ns[pid[key]]] = b }
  # an empty cell (NaN in routing_mi.c: one seed has no interval) is NaN here, or the space-separated
  # columns would shift; a mean without an interval is drawn without a bar
  m = $c["mean_bits"] == "" ? "NaN" : $c["mean_bits"]
  lo = $c["ci_low"] == "" ? m : $c["ci_low"]; hi = $c["ci_high"] == "" ? m : $c["ci_high"]
  row[pid[key], b] = row[pid[key], b] sprintf("%s %s %s %s\n", $c["layer"], m, lo, hi)
  if ($c["max_bits"] + 0 > maxb) maxb = $c["max_bits"] + 0
  if ($c["layer"] + 0 > maxl) maxl = $c["layer"] + 0
  nrows++
}
END {
  if (bad) exit 1
  if (!nrows) { print "plots/routing_mi.sh: no per-layer rows in the csv" > "/dev/stderr"; exit 1 }
  for (i = first; i <= last; i++) {   # columns that vary across the file name the panels
    if (i == bc) continue
    m = 0; for (k in val) { split(k, kk, SUBSEP); if (kk[1] == i) m++ }
    if (m > 1) vary[i] = 1
  }
  printf "" > DAT
  blk = 0
  for (p = 1; p <= np; p++) {
    n = split(pkey[p], f, "\t"); t = ""; j = 2
    for (i = first; i <= last; i++) {
      if (i == bc) continue
      if (i in vary) t = t (t == "" ? "" : ", ") hdr[i] "=" f[j]
      j++
    }
    # series in natural order of their trailing number (last:1 < last:2 < last:4)
    for (a = 1; a <= ns[p]; a++) for (b2 = a + 1; b2 <= ns[p]; b2++)
      if (xnum(ser[p, b2]) < xnum(ser[p, a])) { tmp = ser[p, a]; ser[p, a] = ser[p, b2]; ser[p, b2] = tmp }
    for (a = 1; a <= ns[p]; a++) {
      printf "%s%s", (blk++ ? "\n\n" : ""), row[p, ser[p, a]] >> DAT
      printf "%d\t%s\t%s\t%s\n", p, (bc > 0 ? "moe.blocks = " ser[p, a] : "mean over seeds, 95% CI"), pmeth[p],
             (t == "" ? "all cells" : t) >> META
    }
  }
  printf "%d %g %d\n", np, maxb, maxl > SUM
}' "$TSV" || exit 1
read -r NP MAXB MAXL < "$SUM"
CAP=$( [ -s "$DIR/table.tsv" ] && caption "$DIR" || echo "profile $(profile_of "$DIR")")
W=$((420 * NP + 80))
{
  echo "set multiplot layout 1,$NP title \"class-expert mutual information per routed MoE layer (the measure of claim (e))\\n{/*0.85 $CAP}\""
  echo "set grid ytics lc rgb '#dddddd'; set key top left box opaque font ',8'"
  echo "set xrange [-0.5:$MAXL + 0.5]; set xtics 1; set yrange [0:$MAXB * 1.08]"
  echo "set xlabel 'block index (from 0)'; set ylabel 'I(class; expert), bits'; set datafile missing 'NaN'"
  for p in $(seq 1 "$NP"); do
    title=$(awk -F'\t' -v p="$p" '$1 == p { print $4; exit }' "$META" | sed 's/_/\\_/g')   # not a subscript
    meth=$(awk -F'\t' -v p="$p" '$1 == p { print $3; exit }' "$META")
    colr=$(method_color "$meth")
    echo "set title '($(printf "\\x$(printf %x $((96 + p)))")) $title' font ',9'"
    plot="plot $MAXB with lines dt 3 lc rgb '#777777' title 'log_2 min(K, E)'"
    k=0; s=0
    while IFS=$'\t' read -r pp ser _ _; do
      if [ "$pp" = "$p" ]; then
        n=$(awk -F'\t' -v p="$p" '$1 == p { n++ } END { print n }' "$META")
        off=$(awk -v s="$s" -v n="$n" 'BEGIN { printf "%+.2f", (s - (n - 1) / 2) * 0.12 }')   # centred on the layer
        plot="$plot, '$DAT' index $k using (\$1+$off):2:3:4 with yerrorlines lc rgb '$colr' pt $((5 + 2 * s)) title '$ser'"
        s=$((s + 1))
      fi
      k=$((k + 1))
    done < "$META"
    echo "$plot"
  done
  echo "unset multiplot"
} | render "$OUT" "$W" 420
echo "plots/routing_mi.sh: wrote $OUT.png and $OUT.svg"
