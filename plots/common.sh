# Shared by the plot scripts (sourced): terminals, the one colour per method,
# class names, chance levels, captions, and rendering every figure as PNG and
# SVG from one gnuplot script.
PLOTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# awk, sort and gnuplot read and write numbers with a decimal point whatever
# the user's locale (mawk reads "0.85" as 0 in a decimal-comma locale); the
# rest of an LC_ALL stays as LANG
if [ -n "${LC_ALL:-}" ]; then export LANG=$LC_ALL; unset LC_ALL; fi
export LC_NUMERIC=C
if gnuplot -e 'set terminal' </dev/null 2>&1 | grep -q pngcairo; then
  TERM_PNG="pngcairo enhanced font 'sans,10'"
else
  TERM_PNG="png"
fi
TERM_SVG="svg dynamic enhanced font 'sans,10' background '#ffffff'"

# col FILE NAME: 1-based index of column NAME in the header of a TSV file
col() { awk -F'\t' -v n="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==n){print i; exit}}' "$1"; }

# One colour per method in every figure (Okabe-Ito palette, colour-blind safe).
method_color() {
  case "$1" in
    dense) echo '#000000' ;;
    ewa) echo '#D55E00' ;;
    rmoe) echo '#E69F00' ;;
    moe) echo '#0072B2' ;;
    moe-early-ewa) echo '#CC79A7' ;;
    vimoe) echo '#009E73' ;;
    *) echo '#999999' ;;
  esac
}

# class_name DATASET CLASSES K: the name of (relabelled) class K of a run
# whose data.classes is CLASSES ("all" or "LO-HI"), from plots/class_names.tsv;
# the number itself when the dataset has no names there.
class_name() {
  awk -F'\t' -v ds="$1" -v cl="$2" -v k="$3" '
    BEGIN { lo = 0; if (cl ~ /^[0-9]+-[0-9]+$/) { split(cl, r, "-"); lo = r[1] + 0 } }
    $1 == ds && $2 == k + lo { print $3; found = 1; exit }
    END { if (!found) print k + lo }' "$PLOTS_DIR/class_names.tsv"
}

# num_classes DATASET CLASSES: classes of a run (for the chance level 1/K).
num_classes() {
  case "$2" in
    [0-9]*-[0-9]*) echo $(( ${2#*-} - ${2%-*} + 1 )); return ;;
  esac
  case "$1" in
    fashion-mnist|cifar10) echo 10 ;;
    cifar100) echo 100 ;;
    shapes3d) echo 14 ;;
    modelnet40) echo 40 ;;
    *) echo 0 ;;
  esac
}

# dataset_label DATASET: the dataset as figures name it.
dataset_label() {
  case "$1" in
    shapes3d) echo "shapes3d (synthetic)" ;;
    fashion-mnist) echo "Fashion-MNIST" ;;
    *) echo "$1" ;;
  esac
}

# ini_get FILE KEY: the value of KEY in a resolved config.ini.
ini_get() { awk -v k="$2" '$1 == k && $2 == "=" { sub(/^[^=]*= */, ""); print; exit }' "$1"; }

# profile_of DIR: the grid profile a result directory was run with (its last
# path component when that is a profile name such as cpu or cpu-finetune, or
# its parent's for a table aggregated into DIR/vs_*; else "-").
profile_of() {
  local b
  b=$(basename "$1")
  case "$b" in vs_*) b=$(basename "$(dirname "$1")") ;; esac   # DIR/vs_*: its parent's profile
  case "$b" in
    smoke|cpu|paper|smoke-*|cpu-*|paper-*) echo "$b" ;;
    *) echo "-" ;;
  esac
}

# runs_dir DIR: the run directories behind a table: DIR/runs, or for a table
# aggregated against another baseline into DIR/vs_* its parent's runs.
runs_dir() {
  case "$(basename "$1")" in vs_*) echo "$(dirname "$1")/runs" ;; *) echo "$1/runs" ;; esac
}

# run_ids RUNS.csv STATUS_REGEX: the distinct run_ids of RUNS.csv with a
# row whose status matches STATUS_REGEX (awk ERE), one per line, sorted
run_ids() {
  csv2tsv "$1" | awk -F'\t' -v re="$2" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    $c["status"] ~ re { print $c["run_id"] }' | sort -u | sed '/^$/d'
}

# table_current DIR: 0 when DIR/table.tsv (`ewa aggregate`) is the
# aggregation of every run behind it: each run of the grid's plan.csv has a
# finished row (ok, failed or diverged, as runs_plan_missing in
# experiments/runrecord.c counts them) in the runs.csv beside DIR/runs (or
# the parent's, for DIR/vs_*), and the table's cells count every ok run
# (their n add up to them; the pooled rows are not cells) with the same
# final_top1 (table.md's SHA-256 of the ok runs' run_id and final_top1, when
# it has one). Otherwise says
# which on stderr, naming the caller ($0), and returns 1: the table is older
# than its runs or the grid is unfinished, and a figure of it would pass for
# the grid's result. Contents, not times, decide: a fresh clone gives every
# file one mtime.
table_current() {
  local rd runs plan ok n miss again want got
  rd=$(runs_dir "$1"); runs=$rd.csv; plan=$(dirname "$rd")/plan.csv
  [ -s "$runs" ] || return 0   # a table without runs beside it: nothing to compare
  if [ -s "$plan" ]; then
    miss=$(csv2tsv "$plan" | awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } { print $c["run_id"] }' |
           sort -u | comm -23 - <(run_ids "$runs" '^(ok|failed|diverged)$') | wc -l)
    if [ "$miss" -gt 0 ]; then
      echo "$(basename "$0"): $miss planned run(s) of $plan have no finished row in $runs: the grid is unfinished;" \
           "not drawn (finish it, or draw a copy aggregated with \`ewa aggregate --partial --out\` elsewhere)" >&2
      return 1
    fi
  fi
  n=$(awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } $1 != "pooled" { n += $c["n"] } END { print n + 0 }' \
      "$1/table.tsv")
  ok=$(run_ids "$runs" '^ok$' | wc -l)
  case "$(basename "$1")" in
    vs_*) again="\`ewa aggregate --runs $runs --out $1\` with its --baseline (paper_configs/claims.ini)" ;;
    *) again="\`ewa aggregate --runs $runs --out $1\`, or make plots" ;;
  esac
  if [ "$ok" != "$n" ]; then
    echo "$(basename "$0"): $1/table.tsv counts $n runs, $runs has $ok ok runs: aggregate again ($again); not drawn" >&2
    return 1
  fi
  # the same count with other results (a run recorded ok again with another
  # top-1): table.md's fingerprint of the ok runs (aggregate.c,
  # ok_runs_digest) against the same from runs.csv; tables written before
  # it existed have none and get the count check only
  want=$(sed -n 's/^Aggregated from [0-9]* ok runs; SHA-256 of their sorted "run_id<TAB>final_top1" lines: \([0-9a-f]\{64\}\)$/\1/p' \
         "$1/table.md" 2>/dev/null)
  [ -z "$want" ] && return 0
  got=$(csv2tsv "$runs" | awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
                           $c["status"] == "ok" { t[$c["run_id"]] = $c["final_top1"] }
                           END { for (r in t) printf "%s\t%s\n", r, t[r] }' | LC_ALL=C sort | sha256sum | cut -c1-64)
  if [ "$got" != "$want" ]; then
    echo "$(basename "$0"): $1/table.tsv is not the aggregation of the ok runs of $runs (the same $n runs, other" \
         "final_top1: $1/table.md's SHA-256 of them differs): aggregate again ($again); not drawn" >&2
    return 1
  fi
}

# caption DIR: "profile P, n = N seeds per cell, epochs E; DATASETS" for a
# grid output directory (table.tsv, runs/<id>/config.ini); epochs and step
# limits as the runs' configs say. Smoke figures say they are smoke.
caption() {
  local dir=$1 T=$1/table.tsv prof nmin nmax eps steps ds c n
  prof=$(profile_of "$dir")
  n=$(col "$T" n)
  read -r nmin nmax < <(awk -F'\t' -v c="$n" 'NR > 1 && $c != "" && $1 != "pooled" {
      if (min == "" || $c < min) min = $c; if ($c > max) max = $c }
      END { print min, max }' "$T")
  local rd; rd=$(runs_dir "$dir")
  eps=$(for c in "$rd"/*/config.ini; do [ -s "$c" ] && ini_get "$c" epochs; done | sort -n | uniq | paste -sd/)
  steps=$(for c in "$rd"/*/config.ini; do [ -s "$c" ] && ini_get "$c" max_steps; done | sort -n | uniq | paste -sd/)
  ds=$(awk -F'\t' -v c="$(col "$T" dataset)" 'NR > 1 && $1 != "pooled" && $c != "" && !s[$c]++ { print $c }' "$T" |
       while read -r d; do dataset_label "$d"; done | paste -sd, | sed 's/,/, /g')
  local s="profile $prof, n = $nmin"
  [ "$nmin" != "$nmax" ] && s="$s-$nmax"
  s="$s seeds per cell, epochs ${eps:-?}"
  [ -n "$steps" ] && [ "$steps" != 0 ] && s="$s (at most $steps steps)"
  s="$s; $ds"
  [ "$prof" = smoke ] && s="SMOKE TEST (pipeline check, not a result): $s"
  echo "$s"
}

# render OUT_BASE WIDTH HEIGHT: runs the gnuplot script on stdin twice,
# writing OUT_BASE.png and OUT_BASE.svg.
render() {
  local out=$1 w=$2 h=$3 body
  body=$(cat)
  printf 'set terminal %s size %s,%s\nset output "%s.png"\n%s\n' "$TERM_PNG" "$w" "$h" "$out" "$body" | gnuplot
  printf 'set terminal %s size %s,%s\nset output "%s.svg"\n%s\n' "$TERM_SVG" "$w" "$h" "$out" "$body" | gnuplot
}

# t975 DF: the two-sided 95% Student t quantile t_{0.975, DF} (DF >= 1;
# tabulated to 3 decimals, normal beyond 120), for intervals of paired
# differences when a table has no ci_low/ci_high columns.
t975() {
  awk -v df="$1" 'BEGIN {
    split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228 2.201 2.179 2.160 2.145 2.131 2.120 2.110 2.101 2.093 2.086 2.080 2.074 2.069 2.064 2.060 2.056 2.052 2.048 2.045 2.042", t, " ");
    if (df < 1) print "nan"; else if (df <= 30) print t[df]; else if (df <= 60) print 2.000; else if (df <= 120) print 1.980; else print 1.960 }'
}

# csv2tsv FILE: a CSV file as TSV (RFC 4180 quoting: fields in double quotes
# may hold commas and doubled quotes; no embedded newlines, which bin/ewa's
# runs.csv never has), for the awk in the plot scripts.
csv2tsv() {
  awk '{
    sub(/\r$/, "");   # a CRLF file, as csvio.c reads it
    out = ""; f = ""; q = 0; n = length($0);
    for (i = 1; i <= n; i++) {
      c = substr($0, i, 1);
      if (q) { if (c == "\"") { if (substr($0, i + 1, 1) == "\"") { f = f c; i++ } else q = 0 } else f = f c }
      else if (c == "\"") q = 1;
      else if (c == ",") { out = out f "\t"; f = "" }
      else f = f c;
    }
    print out f }' "$1"
}
