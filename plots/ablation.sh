#!/usr/bin/env bash
# plots/ablation.sh DIR XKEY [TITLE]: ablation lines from DIR/table.tsv
# (`ewa aggregate`): mean top-1 against the grouping column XKEY (numeric, or
# categories in table order), one line per combination of the other grouping
# columns that vary, error bars = sample std over seeds.
# Writes DIR/ablation_<XKEY>.png.
set -eu
here=$(dirname "$0"); . "$here/common.sh"
DIR=$1; X=$2; TITLE=${3:-"ablation over $X"}
T=$DIR/table.tsv
[ -s "$T" ] || { echo "plots/ablation.sh: no $T" >&2; exit 1; }
xc=$(col "$T" "$X"); nc=$(col "$T" n); mc=$(col "$T" mean_top1); sc=$(col "$T" std_top1)
[ -n "$xc" ] || { echo "plots/ablation.sh: $T has no column $X" >&2; exit 1; }
DAT=$DIR/ablation_$X.dat
awk -F'\t' -v xc="$xc" -v nc="$nc" -v mc="$mc" -v sc="$sc" '
NR==1 { for (i = 1; i < nc; i++) h[i] = $i; next }
{ n++; for (i = 1; i < nc; i++) { v[n, i] = $i; if (!((i, $i) in seen)) { seen[i, $i] = 1; nv[i]++ } }
  x[n] = $xc; m[n] = $mc; s[n] = ($sc == "" ? 0 : $sc);
  if (x[n] !~ /^-?[0-9.eE+-]+$/) cat = 1;
  if (!(x[n] in xi)) { xi[x[n]] = ++nx } }
END {
  for (r = 1; r <= n; r++) {
    lab = "";
    for (i = 1; i < nc; i++) if (i != xc && nv[i] > 1) lab = lab (lab == "" ? "" : " ") h[i] "=" v[r, i];
    if (lab == "") lab = "all";
    if (!(lab in li)) { li[lab] = ++nl; labs[nl] = lab }
    row[li[lab]] = row[li[lab]] sprintf("%s\t%s\t%s\t%s\n", (cat ? xi[x[r]] - 1 : x[r]), m[r], s[r], x[r]);
  }
  for (j = 1; j <= nl; j++) { if (j > 1) printf "\n\n"; printf "\"%s\"\n%s", labs[j], row[j] }
  print nl, cat > "/dev/stderr"
}' "$T" > "$DAT" 2> "$DAT.n"
read -r NL CAT < "$DAT.n"; rm -f "$DAT.n"
plot=""
for ((j = 0; j < NL; j++)); do
  [ -n "$plot" ] && plot="$plot, "
  xt=""; [ "$CAT" = 1 ] && xt=":xtic(4)"
  plot="$plot'$DAT' index $j using 1:2:3$xt with yerrorlines lw 1.5 title columnhead(1)"
done
gnuplot <<GP
set terminal $TERM_PNG size 800,500
set output '$DIR/ablation_$X.png'
set termoption noenhanced
set datafile separator '\t'
set title "$TITLE (mean ± std over seeds; settings ours)"
set xlabel '$X'
set ylabel 'test top-1'
set grid
set key bottom right font ',8'
set offsets 0.2, 0.2, 0, 0
plot $plot
GP
echo "wrote $DIR/ablation_$X.png"
