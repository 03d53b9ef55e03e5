#!/usr/bin/env bash
# plots/table1.sh DIR [BASELINE_COLUMN] [BASELINE_VALUE]: Table 1 bars from
# DIR/table.tsv (written by `ewa aggregate`): one cluster per dataset and
# model, one bar per method (mean top-1 over seeds, error bar = sample std).
# Writes DIR/table1.png.
set -eu
here=$(dirname "$0"); . "$here/common.sh"
DIR=$1; KEY=${2:-method}; BASE=${3:-dense}
T=$DIR/table.tsv
[ -s "$T" ] || { echo "plots/table1.sh: no $T" >&2; exit 1; }
kc=$(col "$T" "$KEY"); mc=$(col "$T" mean_top1); sc=$(col "$T" std_top1); nc=$(col "$T" n)
[ -n "$kc" ] && [ -n "$mc" ] || { echo "plots/table1.sh: $T lacks $KEY or mean_top1" >&2; exit 1; }
# label columns: everything before n except the method key, dim/depth and
# epochs (implied by the preset and the dataset)
DAT=$DIR/table1_bars.dat
awk -F'\t' -v kc="$kc" -v mc="$mc" -v sc="$sc" -v nc="$nc" -v base="$BASE" '
NR==1 { for (i = 1; i < nc; i++) h[i] = $i; next }
{
  lab = "";
  for (i = 1; i < nc; i++) {
    if (i == kc || h[i] == "dim" || h[i] == "depth" || h[i] == "epochs") continue;
    v = $i;
    if (h[i] == "train_subset") { if (v == "0" || v == "") continue; v = v " train" }
    if (h[i] == "classes") { if (v == "all") continue; v = "classes " v }
    if (v == "") continue;
    lab = lab (lab == "" ? "" : "\\n") v;
  }
  if (!(lab in seen)) { seen[lab] = 1; labs[++nl] = lab }
  m = $kc; if (!(m in mseen)) { mseen[m] = 1; meth[++nm] = m }
  mean[lab, m] = ($mc == "" ? "NaN" : $mc); sd[lab, m] = ($sc == "" ? 0 : $sc);
}
END {
  # baseline first
  order[1] = base; k = 1;
  for (j = 1; j <= nm; j++) if (meth[j] != base) order[++k] = meth[j];
  printf "label";
  for (j = 1; j <= k; j++) printf "\t%s\t%s_std", order[j], order[j];
  printf "\n";
  for (i = 1; i <= nl; i++) {
    printf "\"%s\"", labs[i];
    for (j = 1; j <= k; j++) {
      key = labs[i] SUBSEP order[j];
      printf "\t%s\t%s", (key in mean ? mean[key] : "NaN"), (key in sd ? sd[key] : 0);
    }
    printf "\n";
  }
}' "$T" > "$DAT"
nmeth=$(head -1 "$DAT" | awk -F'\t' '{print (NF-1)/2}')
nrows=$(($(wc -l < "$DAT") - 1))
width=$((300 + 110 * nrows * nmeth / 2)); [ $width -lt 700 ] && width=700
plot=""
for ((j = 0; j < nmeth; j++)); do
  c=$((2 + 2 * j))
  [ -n "$plot" ] && plot="$plot, "
  xt=""; if [ $j -eq 0 ]; then xt=":xtic(1)"; fi
  plot="$plot'$DAT' using $c:$((c + 1))$xt title columnhead($c)"
done
gnuplot <<GP
set terminal $TERM_PNG size $width,520
set output '$DIR/table1.png'
set datafile separator '\t'
set datafile missing 'NaN'
set title "Top-1 by dataset and model (mean ± std over seeds; settings ours)"
set style data histograms
set style histogram errorbars gap 1.5 lw 1.2
set style fill solid 0.75 border -1
set key top right
set ylabel 'test top-1'
set yrange [0:1.05]
set grid ytics
set xtics font ',8'
set bmargin 5
plot $plot
GP
echo "wrote $DIR/table1.png"
