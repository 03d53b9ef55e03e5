#!/usr/bin/env bash
# plots/routing.sh ROUTING.csv OUT.png: routing heatmaps (docs/DESIGN.md 2.8) from a
# run's routing.csv (columns [epoch,]layer,class,expert,count; with an epoch
# column the last epoch is drawn): one panel per MoE block, rows the classes
# by name (plots/class_names.tsv, from the run's config.ini beside the csv),
# columns the experts, colour = fraction of the class's routed assignments
# that went to the expert (each row sums to 1 over the kept and dropped
# assignments of top-k routing), on a labelled colour bar. Blocks are
# numbered from 0, as moe.blocks and the timm tensor names blocks.{i}.
# Writes OUT.png and OUT.svg (OUT without .png).
set -eu
here=$(dirname "$0"); . "$here/common.sh"
CSV=$1; OUT=${2%.png}
[ -s "$CSV" ] || { echo "plots/routing.sh: no $CSV" >&2; exit 1; }
CFG=$(dirname "$CSV")/config.ini
ds=unknown; cl=all; depth="?"; meth="?"; prof=""
if [ -s "$CFG" ]; then
  ds=$(ini_get "$CFG" dataset); cl=$(ini_get "$CFG" classes); depth=$(ini_get "$CFG" depth)
  meth=$(ini_get "$CFG" method); steps=$(ini_get "$CFG" max_steps)
  [ -n "$steps" ] && [ "$steps" != 0 ] && prof="SMOKE TEST (at most $steps steps, not a result)"
fi
DAT=$OUT.dat
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
  print nl, K + 1, E + 1, maxep > "/dev/stderr";
}' "$CSV" > "$DAT" 2> "$DAT.dims"
read -r NL NK NE EP < "$DAT.dims"; rm -f "$DAT.dims"
[ "${NL:-0}" -gt 0 ] || { echo "plots/routing.sh: no rows in $CSV" >&2; exit 1; }
LAYERS=$(grep '^# layer' "$DAT" | awk '{print $3}' | tr '\n' ' ')
ytics=""; for ((k = 0; k < NK; k++)); do ytics="$ytics${ytics:+, }\"$(class_name "$ds" "${cl:-all}" "$k")\" $k"; done
cols=$(( NL < 3 ? NL : 3 )); rows=$(( (NL + cols - 1) / cols ))
{
  echo "set termoption noenhanced"
  echo "set multiplot layout $rows,$cols title \"${prof:+$prof\n}routing of $meth on $(dataset_label "$ds") (classes $cl), evaluation after epoch $EP\nfraction of each class's routed assignments per expert; blocks numbered from 0 of $depth\" font ',10'"
  echo "set cbrange [0:1]; set palette defined (0 'white', 1 '#0072B2')"
  echo "set cblabel 'fraction of the class routed to the expert' font ',8'"
  echo "set xlabel 'expert'; set yrange [$NK-0.5:-0.5]; set xrange [-0.5:$NE-0.5]"
  echo "set xtics 1; set ytics ($ytics) font ',8'"
  echo "set lmargin 13"
  i=0
  for l in $LAYERS; do
    echo "set title 'block $l'"
    echo "plot '$DAT' index $i matrix with image notitle"
    i=$((i + 1))
  done
  echo "unset multiplot"
} | render "$OUT" $((400 * cols + 60 < 640 ? 640 : 400 * cols + 60)) $((330 * rows + 90))
echo "wrote $OUT.png and .svg"
