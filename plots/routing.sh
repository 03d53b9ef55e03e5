#!/usr/bin/env bash
# plots/routing.sh ROUTING.csv OUT.png: routing heatmaps (DESIGN 2.8) from a
# run's routing.csv (columns [epoch,]layer,class,expert,count; with an epoch
# column the last epoch is drawn): one panel per MoE layer, rows classes,
# columns experts, colour = fraction of the class's tokens sent to the expert.
set -eu
here=$(dirname "$0"); . "$here/common.sh"
CSV=$1; OUT=$2
[ -s "$CSV" ] || { echo "plots/routing.sh: no $CSV" >&2; exit 1; }
DAT=${OUT%.png}.dat
awk -F, '
NR==1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
{ ep = ("epoch" in c) ? $c["epoch"] + 0 : 0; if (ep > maxep) maxep = ep; rows[NR] = $0; e[NR] = ep }
END {
  for (r in rows) {
    if (e[r] != maxep) continue;
    split(rows[r], f, ",");
    l = f[c["layer"]] + 0; k = f[c["class"]] + 0; x = f[c["expert"]] + 0; n = f[c["count"]] + 0;
    cnt[l, k, x] += n; tot[l, k] += n; L[l] = 1;
    if (k > K) K = k; if (x > E) E = x;
  }
  nl = 0; for (l in L) layers[++nl] = l + 0;
  for (i = 1; i <= nl; i++) for (j = i + 1; j <= nl; j++) if (layers[j] < layers[i]) { t = layers[i]; layers[i] = layers[j]; layers[j] = t }
  for (i = 1; i <= nl; i++) {
    l = layers[i];
    if (i > 1) printf "\n\n";
    printf "# layer %d\n", l;
    for (k = 0; k <= K; k++) {
      for (x = 0; x <= E; x++) printf "%s%.4f", (x ? " " : ""), (tot[l, k] ? cnt[l, k, x] / tot[l, k] : 0);
      printf "\n";
    }
  }
  print nl, K + 1, E + 1 > "/dev/stderr";
}' "$CSV" > "$DAT" 2> "$DAT.dims"
read -r NL NK NE < "$DAT.dims"; rm -f "$DAT.dims"
[ "${NL:-0}" -gt 0 ] || { echo "plots/routing.sh: no rows in $CSV" >&2; exit 1; }
LAYERS=$(grep '^# layer' "$DAT" | awk '{print $3}' | tr '\n' ' ')
cols=$(( NL < 4 ? NL : 4 )); rows=$(( (NL + cols - 1) / cols ))
{
  echo "set terminal $TERM_PNG size $((320 * cols + 80)),$((300 * rows + 60))"
  echo "set output '$OUT'"
  echo "set multiplot layout $rows,$cols title 'routing: fraction of each class sent to each expert (last evaluation)'"
  echo "set cbrange [0:1]; set palette defined (0 'white', 1 '#1f4e9c')"
  echo "set xlabel 'expert'; set ylabel 'class'; set yrange [-0.5:$NK-0.5] reverse; set xrange [-0.5:$NE-0.5]"
  echo "set xtics 1; set ytics 1 font ',7'"
  i=0
  for l in $LAYERS; do
    echo "set title 'block $l'"
    echo "plot '$DAT' index $i matrix with image notitle"
    i=$((i + 1))
  done
  echo "unset multiplot"
} | gnuplot
echo "wrote $OUT"
