#!/usr/bin/env bash
# plots/table1.sh DIR [BASELINE_COLUMN] [BASELINE_VALUE]: Table 1 bars from
# DIR/table.tsv (written by `ewa aggregate`): one cluster per dataset, subset
# and model (with its epochs), one bar per method in the method's colour
# (plots/common.sh), mean top-1 over seeds with a +-1 std error bar, the y
# axis from zero, and the chance level 1/K of each cluster as a dashed line.
# The caption gives profile, seeds per cell, epochs and datasets.
# Writes DIR/table1.png and DIR/table1.svg.
set -eu
here=$(dirname "$0"); . "$here/common.sh"
DIR=$1; KEY=${2:-method}; BASE=${3:-dense}
T=$DIR/table.tsv
[ -s "$T" ] || { echo "plots/table1.sh: no $T" >&2; exit 1; }
table_current "$DIR" || exit 1   # not a stale table nor an unfinished grid (common.sh)
kc=$(col "$T" "$KEY"); mc=$(col "$T" mean_top1); sc=$(col "$T" std_top1); nc=$(col "$T" n)
[ -n "$kc" ] && [ -n "$mc" ] || { echo "plots/table1.sh: $T lacks $KEY or mean_top1" >&2; exit 1; }
# label columns: everything before n except the method key and dim/depth
# (implied by the preset); the chance level needs dataset and classes
DAT=$DIR/table1_bars.dat
awk -F'\t' -v kc="$kc" -v mc="$mc" -v sc="$sc" -v nc="$nc" -v base="$BASE" '
NR==1 { for (i = 1; i < nc; i++) h[i] = $i; g0 = (h[1] == "cell") ? 2 : 1; next }   # issue-10 tables lead with a cell label
$1 == "pooled" { next }
{
  lab = ""; ds = ""; cl = "all";
  for (i = g0; i < nc; i++) {
    if (i == kc || h[i] == "dim" || h[i] == "depth") continue;
    v = $i;
    if (h[i] == "dataset") { ds = v; if (v == "shapes3d") v = "shapes3d (synthetic)" }
    if (h[i] == "train_subset") { if (v == "0" || v == "") continue; v = v " train" }
    if (h[i] == "classes") { cl = v; if (v == "all") continue; v = "classes " v }
    if (h[i] == "epochs") v = v " epochs";
    if (v == "") continue;
    lab = lab (lab == "" ? "" : "\\n") v;
  }
  if (!(lab in seen)) { seen[lab] = 1; labs[++nl] = lab; lds[nl] = ds; lcl[nl] = cl }
  m = $kc; if (!(m in mseen)) { mseen[m] = 1; meth[++nm] = m }
  mean[lab, m] = ($mc == "" ? "NaN" : $mc); sd[lab, m] = ($sc == "" ? 0 : $sc);
}
END {
  order[1] = base; k = 1;
  for (j = 1; j <= nm; j++) if (meth[j] != base) order[++k] = meth[j];
  printf "label\tdataset\tclasses";
  for (j = 1; j <= k; j++) printf "\t%s\t%s_std", order[j], order[j];
  printf "\n";
  for (i = 1; i <= nl; i++) {
    printf "\"%s\"\t%s\t%s", labs[i], lds[i], lcl[i];
    for (j = 1; j <= k; j++) {
      key = labs[i] SUBSEP order[j];
      printf "\t%s\t%s", (key in mean ? mean[key] : "NaN"), (key in sd ? sd[key] : 0);
    }
    printf "\n";
  }
}' "$T" > "$DAT"
nmeth=$(head -1 "$DAT" | awk -F'\t' '{print (NF-3)/2}')
nrows=$(($(wc -l < "$DAT") - 1))
width=$((300 + 110 * nrows * nmeth / 2)); [ $width -lt 760 ] && width=760
plot=""
for ((j = 0; j < nmeth; j++)); do
  c=$((4 + 2 * j))
  m=$(head -1 "$DAT" | cut -f"$c")
  [ -n "$plot" ] && plot="$plot, "
  xt=""; if [ $j -eq 0 ]; then xt=":xtic(1)"; fi
  plot="$plot'$DAT' using $c:$((c + 1))$xt title '$m' lc rgb '$(method_color "$m")'"
done
# chance level of each cluster (cluster i is centred at x = i)
arrows=""; i=0
while IFS=$'\t' read -r _ ds cl _; do
  k=$(num_classes "$ds" "$cl")
  [ "$k" -gt 0 ] && arrows="$arrows
set arrow from $i-0.45,$(awk -v k="$k" 'BEGIN{print 1/k}') to $i+0.45,$(awk -v k="$k" 'BEGIN{print 1/k}') nohead dt 2 lw 2 lc rgb '#56B4E9' front"
  i=$((i + 1))
done < <(tail -n +2 "$DAT")
cap=$(caption "$DIR")
render "$DIR/table1" "$width" 560 <<GP
set termoption noenhanced
set datafile separator '\t'
set datafile missing 'NaN'
set key autotitle columnhead
set title "Top-1 test accuracy by dataset and model: mean ± std over seeds; dashed: chance (1/classes); settings ours\n$cap" font ',10'
set style data histograms
set style histogram errorbars gap 1.5 lw 1.2
set style fill solid 0.8 border -1
set key top right
set ylabel 'test top-1'
set yrange [0:1.08]
set ytics 0.1
set grid ytics
set xtics font ',8'
set bmargin 6
$arrows
plot $plot, NaN with lines dt 2 lw 2 lc rgb '#56B4E9' title 'chance'
GP
echo "wrote $DIR/table1.png and .svg"
