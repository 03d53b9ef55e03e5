#!/usr/bin/env bash
# plots/curves.sh DIR: training curves from DIR/curves.dat and
# DIR/curves_index.tsv (written by `ewa aggregate` from the runs'
# metrics.csv): for each panel (a cell without its method), loss and test
# top-1 against epoch, one line per method, mean over seeds with a +-1 std
# band. Writes DIR/curves/panel_<n>.png and DIR/curves/index.txt.
set -eu
here=$(dirname "$0"); . "$here/common.sh"
DIR=$1
IDX=$DIR/curves_index.tsv; DAT=$DIR/curves.dat
[ -s "$IDX" ] && [ -s "$DAT" ] || { echo "plots/curves.sh: no curve data in $DIR (skipped)"; exit 0; }
mkdir -p "$DIR/curves"
: > "$DIR/curves/index.txt"
# panels in order of appearance
awk -F'\t' 'NR>1 && !($2 in s) {s[$2]=1; print $2}' "$IDX" > "$DIR/curves/.panels"
n=0
while IFS= read -r panel; do
  n=$((n + 1))
  loss=""; acc=""
  while IFS=$'\t' read -r block series; do
    [ -n "$loss" ] && loss="$loss, " && acc="$acc, "
    loss="$loss'$DAT' index $block using 1:(\$2==1?\$4-\$5:1/0):(\$2==1?\$4+\$5:1/0) with filledcurves fs transparent solid 0.2 noborder lc $((block % 8 + 1)) notitle, '' index $block using 1:(\$2==1?\$4:1/0) with linespoints lc $((block % 8 + 1)) title '$series train', '' index $block using 1:(\$2==2?\$4:1/0) with linespoints dt 2 lc $((block % 8 + 1)) title '$series test'"
    acc="$acc'$DAT' index $block using 1:(\$2==2?\$6-\$7:1/0):(\$2==2?\$6+\$7:1/0) with filledcurves fs transparent solid 0.2 noborder lc $((block % 8 + 1)) notitle, '' index $block using 1:(\$2==2?\$6:1/0) with linespoints lc $((block % 8 + 1)) title '$series'"
  done < <(awk -F'\t' -v p="$panel" 'NR>1 && $2==p {print $1 "\t" $3}' "$IDX")
  out="$DIR/curves/panel_$n.png"
  gnuplot 2> >(grep -v 'empty x range' >&2) <<GP
set terminal $TERM_PNG size 1100,420
set output '$out'
set termoption noenhanced
set multiplot layout 1,2 title "${panel//\"/}  (mean ± std over seeds)" font ',9'
set xlabel 'epoch'
set grid
set key top right font ',8'
set ylabel 'loss'
plot $loss
set ylabel 'test top-1'
set key bottom right
plot $acc
unset multiplot
GP
  printf '%s\t%s\n' "$out" "$panel" >> "$DIR/curves/index.txt"
done < "$DIR/curves/.panels"
rm -f "$DIR/curves/.panels"
echo "wrote $n curve panels into $DIR/curves/ (see index.txt)"
