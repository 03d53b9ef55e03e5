#!/usr/bin/env bash
# plots/forest.sh DIR: forest plot of the paired differences to the baseline
# (EWA minus dense in Table 1; each method minus the table's baseline) from DIR/table.tsv (`ewa aggregate`): one row
# per compared cell, the mean paired difference over seeds in points of top-1
# with its 95% interval, a zero line, p (and Holm-adjusted p) beside each
# row, and the pooled difference per method as the last rows when the table
# has rows whose first cell is `pooled`. This is the figure that carries the main claim.
#
# Columns read: diff, ci_low, ci_high, p, p_holm, mde, n_pairs (the aggregate
# of issue 10; differences, intervals and MDE as fractions of top-1, shown in
# points). Tables written before those columns existed have only diff,
# n_pairs, t and p_value: the interval is then diff +- t_{0.975,n-1} |diff/t|
# (the same paired t interval, recovered from the t statistic), and the
# caption says so. Writes DIR/forest.png and DIR/forest.svg.
set -eu
here=$(dirname "$0"); . "$here/common.sh"
DIR=$1
T=$DIR/table.tsv
[ -s "$T" ] || { echo "plots/forest.sh: no $T" >&2; exit 1; }
table_current "$DIR" || exit 1   # not a stale table nor an unfinished grid (common.sh)
dc=$(col "$T" diff); nc=$(col "$T" n); npc=$(col "$T" n_pairs); mc=$(col "$T" method)
lo=$(col "$T" ci_low); hi=$(col "$T" ci_high); pc=$(col "$T" p); ph=$(col "$T" p_holm); mdc=$(col "$T" mde)
tc=$(col "$T" t); [ -n "$pc" ] || pc=$(col "$T" p_value)
[ -n "$dc" ] && [ -n "$npc" ] || { echo "plots/forest.sh: $T has no diff/n_pairs columns (skipped)"; exit 0; }
how="95% CI of the paired difference (ci_low, ci_high)"
if [ -z "$lo" ] || [ -z "$hi" ]; then
  [ -n "$tc" ] || { echo "plots/forest.sh: $T has neither ci_low/ci_high nor t (skipped)"; exit 0; }
  how="95% CI = diff ± t(0.975, n-1)·|diff/t| (table without ci_low/ci_high)"
fi
# the baseline's method, from the first filled `baseline` cell label ("... method=dense ...")
bc=$(col "$T" baseline)
base=$([ -n "$bc" ] && awk -F'\t' -v bc="$bc" 'NR > 1 && $bc != "" { n = split($bc, kv, " "); for (i = 1; i <= n; i++)
  if (kv[i] ~ /^method=/) { sub(/^method=/, "", kv[i]); print kv[i]; exit } }' "$T")
base=${base:-dense}
DAT=$DIR/forest.dat
# one line per compared cell: y, diff, low, high (points), label, annotation
awk -F'\t' -v dc="$dc" -v nc="$nc" -v npc="$npc" -v mc="$mc" -v lo="${lo:-0}" -v hi="${hi:-0}" \
    -v pc="${pc:-0}" -v ph="${ph:-0}" -v mdc="${mdc:-0}" -v tc="${tc:-0}" -v tq="$(for d in $(seq 1 30); do t975 "$d"; done | paste -sd' ')" '
function q(df) { return df < 1 ? "nan" : (df <= 30 ? tt[df] : (df <= 60 ? 2.0 : (df <= 120 ? 1.98 : 1.96))) }
BEGIN { split(tq, tt, " ") }
NR == 1 { for (i = 1; i < nc; i++) h[i] = $i; g0 = (h[1] == "cell") ? 2 : 1; next }   # issue-10 tables lead with a cell label
$dc == "" { next }
{
  pooled = ($1 == "pooled");
  lab = "";
  for (i = g0; i < nc; i++) {
    v = $i;
    if (h[i] == "dim" || h[i] == "depth" || v == "" || v == "all") continue;
    if (h[i] == "train_subset") { if (v == "0") continue; v = v " train" }
    if (h[i] == "dataset" && v == "shapes3d") v = "shapes3d (synthetic)";
    if (h[i] == "epochs") v = v " ep";
    else if (h[i] == "classes") v = "classes " v;
    else if (h[i] !~ /^(dataset|train_subset|preset|method)$/) v = h[i] "=" v;
    if (h[i] == "method") { rm = v; if (!(v in ms)) { ms[v] = 1; nms++ } continue }
    lab = lab (lab == "" ? "" : ", ") v;
  }
  d = $dc * 100; n = $npc;
  if (lo && hi && $lo != "" && $hi != "") { l = $lo * 100; u = $hi * 100 }
  else if (tc && $tc != "" && $tc + 0 != 0) { half = q(n - 1) * (d / $tc); if (half < 0) half = -half; l = d - half; u = d + half }
  else { l = "NaN"; u = "NaN" }
  p = (pc && $pc != "") ? sprintf("p=%.3g", $pc) : "p=n/a";
  if (ph && $ph != "") p = p sprintf(", Holm %.3g", $ph);
  if (mdc && $mdc != "") p = p sprintf(", MDE %.2f", 100 * $mdc);
  np = pooled ? sprintf("%d cell%s, %d seeds", $nc, $nc == 1 ? "" : "s", n) : sprintf("%d pairs", n);   # pooled: n = cells, n_pairs = seeds
  ann = (l == "NaN") ? sprintf("%+.2f (no interval, %s)", d, np) : sprintf("%+.2f [%+.2f, %+.2f], %s, %s", d, l, u, p, np);
  nr++; D[nr] = d; L[nr] = l; U[nr] = u; LAB[nr] = (pooled ? "pooled: mean over the cells" : lab); ANN[nr] = ann; P[nr] = pooled; M[nr] = rm;
}
END {   # the method is named only when the table compares more than one
  for (r = 1; r <= nr; r++)
    printf "%d\t%s\t%s\t%s\t\"%s%s\"\t\"%s\"\t%d\n", nr - r, D[r], L[r], U[r], LAB[r],
           (nms > 1 ? " [" M[r] "]" : ""), ANN[r], P[r] }' "$T" > "$DAT"
nrows=$(wc -l < "$DAT")
[ "$nrows" -gt 0 ] || { echo "plots/forest.sh: no compared cells in $T (skipped)"; rm -f "$DAT"; exit 0; }
cap=$(caption "$DIR")
read -r xmin xmax < <(awk -F'\t' '{ for (i = 2; i <= 4; i++) if ($i != "NaN") { if (min == "" || $i < min) min = $i; if (max == "" || $i > max) max = $i } }
  END { if (min > 0) min = 0; if (max < 0) max = 0; pad = (max - min) * 0.08 + 0.5; print min - pad, max + pad }' "$DAT")
h=$((140 + 34 * nrows))
render "$DIR/forest" 1300 "$h" <<GP
set termoption noenhanced
set datafile separator '\t'
set datafile missing 'NaN'
set title "Paired difference to $base (method - $base, points of top-1): mean over seeds and $how\n$cap" font ',10'
set xlabel 'difference in test top-1 (percentage points); right of 0: better than $base'
set xrange [$xmin:$xmax]
set yrange [-0.7:$nrows-0.3]
unset ytics
set lmargin 50
set rmargin 62
set grid xtics
set arrow from 0, graph 0 to 0, graph 1 nohead lw 1.5 lc rgb '#000000'
unset key
plot '$DAT' using 2:1:3:4:(\$7 > 0.5 ? 0 : 13983232) with xerrorbars pt 7 ps 1.2 lw 1.5 lc rgb variable, \
     '' using ($xmin):1:5 with labels right offset -1,0 font ',9', \
     '' using ($xmax):1:6 with labels left offset 1,0 font ',9'
GP
echo "wrote $DIR/forest.png and .svg"
