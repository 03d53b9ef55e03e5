# Shared by the plot scripts: the gnuplot terminal (pngcairo if present).
if gnuplot -e 'set terminal' 2>&1 | grep -q pngcairo; then
  TERM_PNG="pngcairo enhanced font 'sans,10'"
else
  TERM_PNG="png"
fi
# col FILE NAME: 1-based index of column NAME in the header of a TSV file
col() { awk -F'\t' -v n="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==n){print i; exit}}' "$1"; }
