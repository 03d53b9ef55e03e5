#!/usr/bin/env bash
# Runs every Criterion test binary given as arguments, then prints one totals
# line "N passed, N failed" summed over all of them. Exits non-zero if any
# test failed or crashed, or if a binary could not run.
set -u
pass=0; fail=0; status=0
for t in "$@"; do
  out=$("$t" --jobs 1 2>&1); rc=$?
  printf '%s\n' "$out" | grep -v '^\[----\]' | grep -E 'Synthesis|FAIL|SKIP|Assertion|Warning|crash|signal|rror' | sed "s|^|$(basename "$t"): |"
  line=$(printf '%s\n' "$out" | grep 'Synthesis' | tail -1)
  if [ -z "$line" ]; then echo "$(basename "$t"): no Criterion summary (exit $rc)"; fail=$((fail+1)); status=1; continue; fi
  p=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$line")
  f=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$line")
  c=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$line")
  # Criterion passes a test whose process reports a leak or sanitizer error
  # on exit; count each such report as a failure.
  san=$(printf '%s\n' "$out" | grep -cE '^(==[0-9]+==)?ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:')
  [ "$san" -gt 0 ] && { echo "$(basename "$t"): $san sanitizer report(s)"; printf '%s\n' "$out" | grep -A12 -m3 -E 'ERROR: .*Sanitizer|runtime error:' | head -40; }
  # a failing test's assertion messages (Criterion's "[----]" lines), so that a
  # CI log says why, not only which
  [ $((f+c)) -gt 0 ] && printf '%s\n' "$out" | grep '^\[----\]' | head -60 | sed "s|^|$(basename "$t"): |"
  pass=$((pass+p)); fail=$((fail+f+c+san))
  [ "$rc" -ne 0 ] && status=1
done
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ] || status=1
exit $status
