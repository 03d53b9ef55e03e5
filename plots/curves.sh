#!/usr/bin/env bash
# plots/curves.sh DIR: training curves from DIR/curves.dat and
# DIR/curves_index.tsv (written by `ewa aggregate` from the runs'
# metrics.csv): for each panel (a cell without its method), loss and test
# top-1 against epoch, one line per method in the method's colour
# (plots/common.sh), mean over seeds with a +-1 std band. The loss is the
# metrics.csv `loss` column: plain cross-entropy for runs that also log
# `loss_smoothed`; older runs logged the label-smoothed training objective
# there, and the axis says which. Writes DIR/curves/panel_<n>.png and .svg
# and DIR/curves/index.txt.
set -eu
here=$(dirname "$0"); . "$here/common.sh"
DIR=$1
IDX=$DIR/curves_index.tsv; DAT=$DIR/curves.dat
[ -s "$DIR/table.tsv" ] && { table_current "$DIR" || exit 1; }   # curves.dat is of the same aggregation
[ -s "$IDX" ] && [ -s "$DAT" ] || { echo "plots/curves.sh: no curve data in $DIR (skipped)"; exit 0; }
mkdir -p "$DIR/curves"
: > "$DIR/curves/index.txt"
lossname="label-smoothed cross-entropy (train: + MoE aux)"
m=$(ls "$DIR"/runs/*/metrics.csv 2>/dev/null | head -1)
[ -n "$m" ] && head -1 "$m" | grep -q loss_smoothed && lossname="plain cross-entropy"
cap=$(caption "$DIR")
# "key=value ..." of a panel -> a readable title
readable() {
  echo "$1" | awk '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2]; o[i] = kv[1] }
    ds = v["dataset"]; if (ds == "shapes3d") ds = "shapes3d (synthetic)"; else if (ds == "fashion-mnist") ds = "Fashion-MNIST";
    s = ds; if (v["train_subset"] != "" && v["train_subset"] != "0") s = s ", " v["train_subset"] " train images";
    if (v["classes"] != "" && v["classes"] != "all") s = s ", classes " v["classes"];
    if (v["preset"] != "") s = s ", " v["preset"]; if (v["dim"] != "") s = s " (dim " v["dim"] ", depth " v["depth"] ")";
    if (v["epochs"] != "") s = s ", " v["epochs"] " epochs";
    for (i = 1; i <= NF; i++) if (o[i] !~ /^(dataset|train_subset|classes|preset|dim|depth|epochs)$/) s = s ", " o[i] " " v[o[i]];
    print s }'
}
# panels in order of appearance
awk -F'\t' 'NR>1 && !($2 in s) {s[$2]=1; print $2}' "$IDX" > "$DIR/curves/.panels"
n=0
while IFS= read -r panel; do
  n=$((n + 1))
  loss=""; acc=""
  while IFS=$'\t' read -r block series; do
    c=$(method_color "$series"); [ "$c" = '#999999' ] && c=$(printf '#%02x%02x%02x' $((block * 70 % 200)) $((block * 130 % 200)) $((block * 40 % 200)))
    [ -n "$loss" ] && loss="$loss, " && acc="$acc, "
    loss="$loss'$DAT' index $block using 1:(\$2==1?\$4-\$5:1/0):(\$2==1?\$4+\$5:1/0) with filledcurves fs transparent solid 0.2 noborder lc rgb '$c' notitle, '' index $block using 1:(\$2==1?\$4:1/0) with linespoints pt 7 ps 0.5 lc rgb '$c' title '$series train', '' index $block using 1:(\$2==2?\$4:1/0) with linespoints pt 7 ps 0.5 dt 2 lc rgb '$c' title '$series test'"
    acc="$acc'$DAT' index $block using 1:(\$2==2?\$6-\$7:1/0):(\$2==2?\$6+\$7:1/0) with filledcurves fs transparent solid 0.2 noborder lc rgb '$c' notitle, '' index $block using 1:(\$2==2?\$6:1/0) with linespoints pt 7 ps 0.5 lc rgb '$c' title '$series'"
  done < <(awk -F'\t' -v p="$panel" 'NR>1 && $2==p {print $1 "\t" $3}' "$IDX")
  out="$DIR/curves/panel_$n"
  render "$out" 1100 460 2> >(grep -v 'empty x range' >&2) <<GP
set termoption noenhanced
set multiplot layout 1,2 title "$(readable "$panel") (mean ± std over seeds)\n$cap" font ',9'
set xlabel 'epoch'
set grid
set key top right font ',8'
set ylabel '$lossname'
plot $loss
set ylabel 'test top-1'
set yrange [0:1]
set key bottom right
plot $acc
unset multiplot
GP
  printf '%s\t%s\n' "$out.png" "$panel" >> "$DIR/curves/index.txt"
done < "$DIR/curves/.panels"
rm -f "$DIR/curves/.panels"
echo "wrote $n curve panels into $DIR/curves/ (see index.txt)"
