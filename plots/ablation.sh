#!/usr/bin/env bash
# plots/ablation.sh DIR XKEY [TITLE]: an ablation figure from DIR/table.tsv and
# DIR/runs.csv (`ewa grid` + `ewa aggregate`), two panels over the grouping
# column XKEY:
#  (a) test top-1, mean +- std over seeds, y from 0 to 1 with the chance level
#      (zoomed to the data when there is no panel (b));
#      the dense baseline (one cell whatever XKEY) as a horizontal line;
#  (b) the paired difference to dense in points of top-1 with its 95%
#      interval and a zero line: the table's diff, ci_low, ci_high when it has
#      them (`ewa aggregate` of issue 10, which compares a cell with the dense
#      cell ignoring the MoE keys dense does not use); for older tables the
#      same paired t interval from runs.csv: the mean over seeds of (cell -
#      dense) for the seeds both have, +- t(0.975, n-1) sd/sqrt(n), dense being
#      the dense cell of the same dataset, subset, model, classes and epochs.
# One series per combination of the other varying columns, in its method's
# colour (plots/common.sh). Numeric XKEY: lines (experts on a log2 axis);
# categorical XKEY (blocks, method): categories in natural order (last:1,
# last:2, last:4), points without lines. With XKEY beta, rmoe (EWA's beta = 0
# control: random partition, no averaging) is drawn at beta = 0.
# Writes DIR/ablation_<XKEY>.png and .svg.
set -eu
here=$(dirname "$0"); . "$here/common.sh"
DIR=$1; X=$2; TITLE=${3:-"ablation over $X"}
T=$DIR/table.tsv; R=$(runs_dir "$DIR").csv   # runs.csv beside runs/
[ -s "$T" ] || { echo "plots/ablation.sh: no $T" >&2; exit 1; }
table_current "$DIR" || exit 1   # not a stale table nor an unfinished grid (common.sh)
[ -n "$(col "$T" "$X")" ] || { echo "plots/ablation.sh: $T has no column $X" >&2; exit 1; }
A=$DIR/ablation_$X.dat; B=$DIR/ablation_${X}_diff.dat; D=$DIR/ablation_${X}_dense.dat
RT=$(mktemp); S=$(mktemp); BF=$(mktemp); trap 'rm -f "$RT" "$S" "$BF"' EXIT
if [ -s "$R" ]; then csv2tsv "$R" > "$RT"; fi
awk -F'\t' -v X="$X" -v tq="$(for d in $(seq 1 30); do t975 "$d"; done | paste -sd' ')" \
    -v A="$A" -v B="$B" -v D="$D" -v S="$S" -v BASE="$BF" '
function q(df) { return df < 1 ? 0 : (df <= 30 ? tt[df] : (df <= 60 ? 2.0 : (df <= 120 ? 1.98 : 1.96))) }
function xnum(p) { return match(p, /[0-9]+(\.[0-9]+)?$/) ? substr(p, RSTART) + 0 : "" }
# categories in natural order: equal prefixes by their trailing number (last:1 < last:2 < last:4)
function xless(u, w,   a, b, pu, pw) {
  a = xnum(u); pu = substr(u, 1, RSTART - 1);
  b = xnum(w); pw = substr(w, 1, RSTART - 1);
  if (a != "" && b != "" && pu == pw) return a < b;
  return u < w
}
function ident(i) { return h[i] == "dataset" || h[i] == "train_subset" || h[i] == "preset" || h[i] == "dim" ||
                           h[i] == "depth" || h[i] == "classes" || h[i] == "epochs" }
# where cell c sits on the x axis: the index of its category, or its value; rmoe is the beta = 0 control of EWA
# (random partition without averaging), plotted at beta = 0 whatever its (unused) beta key says
function xpos(c) {
  if (cat) return xi[v[c, xcol]];
  if (X == "beta" && mcol && v[c, mcol] == "rmoe") return 0;
  return v[c, xcol] + 0
}
BEGIN { split(tq, tt, " ") }
FNR == 1 && FILENAME != ARGV[1] {   # table.tsv header: grouping columns before n
  g0 = ($1 == "cell") ? 2 : 1;   # issue-10 tables lead with a cell label column
  for (i = 1; i <= NF; i++) { if ($i == "n") break; h[i] = $i; ng = i }
  for (i = 1; i <= NF; i++) tcol[$i] = i
  next
}
FNR == 1 { for (i = 1; i <= NF; i++) rcol[$i] = i; next }   # runs.tsv header
FILENAME == ARGV[1] {   # runs: the last ok row of each run, keyed by cell and seed
  if ($rcol["status"] != "ok") next;
  run[$rcol["run_id"]] = $0; next
}
$1 == "pooled" { next }
{
  nc++; for (i = g0; i <= ng; i++) { v[nc, i] = $i; if (!((i, $i) in seen)) { seen[i, $i] = 1; nv[i]++ } }
  mean[nc] = $tcol["mean_top1"]; sd[nc] = ($tcol["std_top1"] == "" ? 0 : $tcol["std_top1"]);
  if (("ci_low" in tcol) && $tcol["ci_low"] != "" && $tcol["ci_high"] != "") {   # the interval of ewa aggregate
    tci[nc] = 1; tdiff[nc] = $tcol["diff"]; tlo[nc] = $tcol["ci_low"]; thi[nc] = $tcol["ci_high"]; tnp[nc] = $tcol["n_pairs"] }
  if (("baseline" in tcol) && $tcol["baseline"] != "" && base == "") base = $tcol["baseline"]
}
END {
  for (i = g0; i <= ng; i++) { if (h[i] == X) xcol = i; if (h[i] == "method") mcol = i }
  # a column one-to-one with the x value within each dataset (the ident columns) names no series: it
  # would split each x into a series of its own (moe.ewa_epochs = 0 / 75 beside method = moe /
  # moe-early-ewa on one dataset, 0 / 30 on another). One-to-one, not only determined by x, and never
  # an ident column or the method: a column at disjoint sets of x (two datasets at other N) splits series.
  for (c = 1; c <= nc; c++) { ctx[c] = ""; for (i = g0; i <= ng; i++) if (ident(i)) ctx[c] = ctx[c] SUBSEP v[c, i] }
  for (i = g0; i <= ng; i++) {
    byx[i] = (i != xcol && i != mcol && !ident(i));
    for (c = 1; c <= nc && byx[i]; c++) {
      kx = ctx[c] SUBSEP v[c, xcol]; kv = ctx[c] SUBSEP v[c, i];
      if (((i, kx) in xval) && xval[i, kx] != v[c, i]) byx[i] = 0;
      if (((i, kv) in xof) && xof[i, kv] != v[c, xcol]) byx[i] = 0;
      xval[i, kx] = v[c, i]; xof[i, kv] = v[c, xcol]
    }
  }
  cat = (X == "method");
  for (c = 1; c <= nc; c++) if (v[c, xcol] !~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/) cat = 1;
  # per-seed accuracies of each cell from the runs
  for (r in run) {
    split(run[r], f, "\t"); key = "";
    for (i = g0; i <= ng; i++) key = key SUBSEP f[rcol[h[i]]];
    acc[key, f[rcol["seed"]]] = f[rcol["final_top1"]]; seeds[f[rcol["seed"]]] = 1;
  }
  for (c = 1; c <= nc; c++) {
    key = ""; id = "";
    for (i = g0; i <= ng; i++) { key = key SUBSEP v[c, i]; if (ident(i)) id = id SUBSEP v[c, i] }
    ckey[c] = key; cid[c] = id;
    isdense[c] = (mcol && v[c, mcol] == "dense" && X != "method");
    if (mcol && v[c, mcol] == "dense") densecell[id] = c;
    if (!(v[c, xcol] in xi)) { xi[v[c, xcol]] = nx++; xs[nx] = v[c, xcol] }
    lab = "";
    for (i = g0; i <= ng; i++)
      if (i != xcol && nv[i] > 1 && !byx[i] && !(i == mcol && X == "method")) lab = lab (lab == "" ? "" : " ") (h[i] == "method" ? "" : h[i] "=") v[c, i];
    if (lab == "") lab = (mcol ? v[c, mcol] : "all");
    slab[c] = lab;
    if (!isdense[c] && !(lab in li)) { li[lab] = ++nl; labs[nl] = lab; smeth[nl] = (mcol ? v[c, mcol] : "") }
  }
  if (cat) {   # natural order of the categories, not the order the table lists them in
    for (a = 2; a <= nx; a++) { t = xs[a]; for (b = a - 1; b >= 1 && xless(t, xs[b]); b--) xs[b + 1] = xs[b]; xs[b + 1] = t }
    for (k = 1; k <= nx; k++) xi[xs[k]] = k - 1;
  }
  ylo = 1; yhi = 0;   # the span of mean +- sd over the series, for a zoomed panel (a)
  for (c = 1; c <= nc; c++) {
    if (mean[c] == "") continue;   # a cell whose runs all failed has no mean
    if (mean[c] - sd[c] < ylo) ylo = mean[c] - sd[c]; if (mean[c] + sd[c] > yhi) yhi = mean[c] + sd[c]
  }
  if (ylo > yhi) { ylo = 0; yhi = 1 }
  printf "" > A; printf "" > B; printf "" > D;
  for (c = 1; c <= nc; c++) if (isdense[c]) {
    dl = ""; for (i = g0; i <= ng; i++) if (ident(i) && nv[i] > 1) dl = dl " " h[i] "=" v[c, i];
    printf "%s\t%s\t\"dense%s\"\n", mean[c], sd[c], dl >> D
  }
  for (j = 1; j <= nl; j++) {   # block j-1 of A and B is series j (a NaN row keeps empty blocks counted)
    if (j > 1) { printf "\n\n" >> A; printf "\n\n" >> B }
    printf "NaN\tNaN\tNaN\tNaN\n", labs[j] >> A; printf "NaN\tNaN\tNaN\tNaN\t0\n" >> B; ndiff = 0;
    m0 = 0;   # the cells of the series in order of x (a line joins them left to right, not in the order of the table)
    for (c = 1; c <= nc; c++) if (!isdense[c] && slab[c] == labs[j]) { mem[++m0] = c; xo[c] = xpos(c) }
    for (a = 2; a <= m0; a++) { t = mem[a]; for (b = a - 1; b >= 1 && xo[mem[b]] > xo[t]; b--) mem[b + 1] = mem[b]; mem[b + 1] = t }
    for (mi = 1; mi <= m0; mi++) {
      c = mem[mi];
      x = xo[c];
      printf "%s\t%s\t%s\t%s\n", x, mean[c], sd[c], v[c, xcol] >> A;
      if (tci[c]) {
        printf "%s\t%.4f\t%.4f\t%.4f\t%d\n", x, 100 * tdiff[c], 100 * tlo[c], 100 * thi[c], tnp[c] >> B; ndiff++;
        continue;
      }
      if ("ci_low" in tcol) continue;   # a table with intervals: a cell without one has none (no pairs, or
                                        # it is the baseline); the dense pairing is for older tables only
      d = densecell[cid[c]];
      if (!d || d == c) continue;
      n = 0; s = 0; ss = 0;
      for (sd0 in seeds) if (((ckey[c], sd0) in acc) && ((ckey[d], sd0) in acc)) {
        e = 100 * (acc[ckey[c], sd0] - acc[ckey[d], sd0]); n++; s += e; ss += e * e }
      if (n < 2) continue;
      m = s / n; var = (ss - n * m * m) / (n - 1); if (var < 0) var = 0;
      half = q(n - 1) * sqrt(var / n);
      printf "%s\t%.4f\t%.4f\t%.4f\t%d\n", x, m, m - half, m + half, n >> B; ndiff++;
    }
    printf "%s\t%s\t%d\n", labs[j], smeth[j], ndiff > S;
  }
  # the baseline of the differences: the method in the baseline cell label of the table (dense unless
  # `ewa aggregate --baseline` chose another)
  bm = "dense"; if (match(base, /(^| )method=[^ ]+/)) { bm = substr(base, RSTART, RLENGTH); sub(/^ ?method=/, "", bm) }
  printf "%s\n", bm > BASE;
  printf "%d %d %.6f %.6f %d", nl, cat, ylo, yhi, nx > "/dev/stderr";
  for (k = 1; k <= nx; k++) printf " %s", xs[k] > "/dev/stderr";
  printf "\n" > "/dev/stderr";
}' "$RT" "$T" 2> "$A.n" || { echo "plots/ablation.sh: $T: $(cat "$A.n")" >&2; rm -f "$A.n"; exit 1; }
read -r NL CAT YLO YHI NX XS < "$A.n"; rm -f "$A.n"
read -r BASEM < "$BF"
DS=$(awk -F'\t' -v c="$(col "$T" dataset)" 'NR==2{print $c}' "$T")
CL=$(for c in "$(runs_dir "$DIR")"/*/config.ini; do [ -s "$c" ] && ini_get "$c" classes; done | sort -u | head -1)
K=$(num_classes "$DS" "${CL:-all}")
# one chance line only when every cell has the same dataset and classes
nds=$(awk -F'\t' -v c="$(col "$T" dataset)" 'NR > 1 && $1 != "pooled" && !s[$c]++ { n++ } END { print n + 0 }' "$T")
ncl=$(for c in "$(runs_dir "$DIR")"/*/config.ini; do [ -s "$c" ] && ini_get "$c" classes; done | sort -u | wc -l)
{ [ "$nds" -gt 1 ] || [ "$ncl" -gt 1 ]; } && K=0
xset="set xlabel '$X'"
[ "$X" = beta ] && cut -f2 "$S" | grep -qx rmoe && xset="set xlabel 'beta (rmoe at 0: random partition without averaging)'"
case " $XS " in *" -1 "*) [ "$X" = ewa_epochs ] && xset="set xlabel 'ewa_epochs (-1: the first quarter of training)'" ;; esac
if [ "$CAT" = 1 ]; then
  tics=""; k=0; for v in $XS; do tics="$tics${tics:+, }'$v' $k"; k=$((k + 1)); done
  xset="$xset; set xtics ($tics); set xrange [-0.5:$NX-0.5]"
elif [ "$X" = experts ]; then
  xset="set xlabel '$X (log2 axis)'; set logscale x 2; set xtics ($(echo "$XS" | tr ' ' '\n' | sort -n | paste -sd, -)); set offsets graph 0.08, graph 0.08, 0, 0"
else
  xset="$xset; set offsets graph 0.05, graph 0.05, 0, 0"
fi
style=$([ "$CAT" = 1 ] && echo "yerrorbars ps 1.2" || echo "yerrorlines ps 1.0")
PTS=(7 5 9 11 13 15)   # series of one method differ by point type
pa=""; pb=""; j=0
while IFS=$'\t' read -r lab meth ndiff; do
  colr=$(method_color "$meth"); off=$([ "$CAT" = 1 ] && awk -v j="$j" -v n="$NL" 'BEGIN{printf "%+.3f", (j - (n - 1) / 2) * 0.12}' || echo 0)
  xexpr=$([ "$CAT" = 1 ] && echo "(\$1$off)" || echo 1)
  pa="$pa${pa:+, }'$A' index $j using $xexpr:2:3 with $style lw 1.5 pt ${PTS[j % 6]} lc rgb '$colr' title '$lab'"
  [ "$ndiff" -gt 0 ] && pb="$pb${pb:+, }'$B' index $j using $xexpr:2:3:4 with $style lw 1.5 pt ${PTS[j % 6]} lc rgb '$colr' title '$lab'"
  j=$((j + 1))
done < "$S"
dense_lines=""
if [ -s "$D" ]; then
  while IFS=$'\t' read -r m s lab; do
    dense_lines="$dense_lines
set arrow from graph 0, first $m to graph 1, first $m nohead lw 2 lc rgb '#000000' front
set object rect from graph 0, first $(awk -v m="$m" -v s="$s" 'BEGIN{print m - s}') to graph 1, first $(awk -v m="$m" -v s="$s" 'BEGIN{print m + s}') fc rgb '#000000' fs transparent solid 0.12 noborder behind"
  done < "$D"
fi
chance=""; [ "$K" -gt 0 ] && chance="set arrow from graph 0, first $(awk -v k="$K" 'BEGIN{print 1/k}') to graph 1, first $(awk -v k="$K" 'BEGIN{print 1/k}') nohead dt 2 lw 1.5 lc rgb '#56B4E9'"
cap=$(caption "$DIR")
panels=1; [ -n "$pb" ] && panels=2
# With a difference panel, (a) shows 0-1 with chance; without one (no dense
# cell to pair with), (a) is zoomed to the data, or sub-point effects vanish.
yset="set yrange [0:1]; set ytics 0.1"; atitle="(a) test top-1, mean ± std over seeds"
if [ "$panels" = 1 ]; then
  read -r lo hi < <(awk -v a="$YLO" -v b="$YHI" 'BEGIN { p = (b - a) * 0.25 + 0.002; print a - p, b + p }')
  yset="set yrange [$lo:$hi]; set ytics autofreq"; atitle="$atitle (y axis zoomed to the data)"
  awk -v k="$K" -v a="$lo" -v b="$hi" 'BEGIN { exit !(k > 0 && (1 / k < a || 1 / k > b)) }' && chance=""   # off the axis
fi
ch_title=""; ch_key=""
[ -n "$chance" ] && ch_title="; dashed: chance" && ch_key=", NaN with lines dt 2 lw 1.5 lc rgb '#56B4E9' title 'chance'"
render "$DIR/ablation_$X" $((560 * panels + 80)) 520 <<GP
set termoption noenhanced
set datafile separator '\t'
set datafile missing 'NaN'
set multiplot layout 1,$panels title "$TITLE (settings ours)\n$(echo "$cap" | sed 's/: /:\\n/')" font ',10'
$xset
set grid
set key below font ',8'
set title '$atitle$( [ -s "$D" ] && echo '; black: dense ± std')$ch_title' font ',9'
set ylabel 'test top-1'
$yset
$dense_lines
$chance
plot $pa$( [ -s "$D" ] && echo ", NaN with lines lc rgb '#000000' lw 2 title 'dense'" )$ch_key
unset arrow; unset object
$( [ -n "$pb" ] && cat <<P2
set title '(b) paired difference to $BASEM (points), mean and 95% CI over seeds' font ',9'
set ylabel 'difference to $BASEM (points of top-1)'
set autoscale y
set ytics autofreq
set arrow from graph 0, first 0 to graph 1, first 0 nohead lw 1.5 lc rgb '#000000'
plot $pb
P2
)
unset multiplot
GP
echo "wrote $DIR/ablation_$X.png and .svg"
