#!/usr/bin/env python3
"""The campaign's blinded extension rule (issue 16, paper_configs/CAMPAIGN.md): from a grid's runs.csv, the
seed-to-seed sd that decides how many seeds a cell needs, and nothing that shows an effect (no mean difference,
no slope, no run's accuracy), so the decision to add seeds cannot depend on the result.

usage:
  blind_sd.py paired RUNS_CSV METHOD_A METHOD_B TARGET [GROUP,...]
      per cell (the runs grouped by the comma-separated runs.csv columns GROUP): the sd over seeds of the
      paired difference A - B of final test top-1 in points, the MDE at the seeds there are and the seeds
      an MDE <= TARGET points needs.
  blind_sd.py slope RUNS_CSV X_COLUMN TARGET [VARIANT]
      per VARIANT value (a runs.csv column, e.g. shared_expert): per seed the least-squares slope of final top-1
      (points) over the number in X_COLUMN (e.g. blocks: last:1, last:2, last:4 -> 1, 2, 4), then the sd of
      those slopes over seeds, the MDE at the seeds there are and the seeds an MDE <= TARGET points per unit
      of X needs.

MDE: (t_{0.975, n-1} + t_{0.8, n-1}) sd / sqrt(n), the paired t test's minimum detectable effect at 80% power
(the harness's stats.c; t quantiles from pilot_report.py). Only rows with status ok count.
"""
import csv
import math
import re
import sys

from pilot_report import t_quantile   # the campaign's t quantiles (same directory)


def mde(sd, n):
    """Minimum detectable effect at n seeds (two-sided 5%, power 80%) for a per-seed sd."""
    return (t_quantile(0.975, n - 1) + t_quantile(0.8, n - 1)) * sd / math.sqrt(n)


def sd(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def verdict_line(label, what, values, target, unit):
    n = len(values)
    if n < 2:
        return f"{label}: {n} {what}: too few for an sd"
    s = sd(values)
    need = next(k for k in range(2, 1000) if mde(s, k) <= target)
    return (f"{label}: {what} {n}; sd {s:.3f} {unit}; MDE at {n}: {mde(s, n):.3f}; "
            f"seeds for MDE <= {target}: {need}")


def ok_rows(path):
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("status") == "ok"]


def paired(path, a, b, target, group):
    cells = {}
    for r in ok_rows(path):
        key = tuple(r[g] for g in group)
        cells.setdefault(key, {}).setdefault(int(r["seed"]), {})[r["method"]] = float(r["final_top1"])
    for key, by_seed in sorted(cells.items()):
        d = [100 * (v[a] - v[b]) for _, v in sorted(by_seed.items()) if a in v and b in v]
        print(verdict_line(" ".join(f"{g}={k}" for g, k in zip(group, key)) or "all runs", "pairs", d, target,
                           "points"))


def slope_of(points):
    xs, ys = zip(*sorted(points.items()))
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def slope(path, xcol, target, variant):
    by = {}
    for r in ok_rows(path):
        digits = re.findall(r"\d+(?:\.\d+)?", r[xcol])
        if not digits:
            sys.exit(f"{path}: run {r['run_id']}: {xcol} = '{r[xcol]}' holds no number")
        key = r[variant] if variant else "all"
        by.setdefault(key, {}).setdefault(int(r["seed"]), {})[float(digits[-1])] = 100 * float(r["final_top1"])
    nx = max(len(p) for seeds in by.values() for p in seeds.values())
    for key, seeds in sorted(by.items()):
        slopes = [slope_of(p) for _, p in sorted(seeds.items()) if len(p) == nx]   # seeds with every x only
        print(verdict_line(f"{variant}={key}" if variant else key, "seeds with every x", slopes, target,
                           f"points per unit of {xcol}"))


def main(argv):
    if len(argv) >= 6 and argv[1] == "paired":
        paired(argv[2], argv[3], argv[4], float(argv[5]), argv[6].split(",") if len(argv) > 6 else [])
    elif len(argv) >= 5 and argv[1] == "slope":
        slope(argv[2], argv[3], float(argv[4]), argv[5] if len(argv) > 5 else "")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
