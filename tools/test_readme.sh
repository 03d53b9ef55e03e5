#!/usr/bin/env bash
# make test-readme (run by .ci/run): the README's first command line, exactly
# as written, in a fresh clone of this repository's HEAD, with only a step
# limit appended (--set train.max_steps=2), so the README cannot drift from
# what works on a new checkout. Passes when the command exits 0 and the run
# directory it names holds a summary.csv with status ok.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# The first line of the README's first code block (indented or fenced).
line=$(awk '/^```/ { if (f) exit; f = 1; next }
            f || /^    [^ ]/ { sub(/^    /, ""); print; exit }' "$repo/README.md")
[ -n "$line" ] || { echo "test-readme: no code line found in README.md" >&2; exit 1; }
case "$line" in
  *"bin/ewa train"*) ;;
  *) echo "test-readme: the README's first command line trains nothing: $line" >&2; exit 1 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone -q "$repo" "$tmp/clone"
cd "$tmp/clone"
cmd="$line --set train.max_steps=2"
echo "test-readme: in a fresh clone: $cmd"
bash -c "$cmd"
out=$(sed -E 's/.*--out +([^ ]+).*/\1/' <<<"$line")
sum="$out/summary.csv"
[ -s "$sum" ] || { echo "test-readme: $sum was not written" >&2; exit 1; }
st=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "status") c = i } NR == 2 { print $c }' "$sum")
[ "$st" = ok ] || { echo "test-readme: $sum: status '$st', expected ok" >&2; exit 1; }
echo "test-readme: passed ($sum: status ok)"
