#!/usr/bin/env python3
"""Doubled-run convergence check (issue 16, paper_configs/CAMPAIGN.md "Definitions").

A cell's epoch budget E counts as converged when the same run (recipe, method, seed) trained for 2E epochs
does not end more than 2 SE higher on validation top-1, SE being the binomial standard error of the E-epoch
run's final validation top-1 on n_val images, sqrt(p (1 - p) / n_val). Under a cosine schedule every run looks
flat over its own last quarter, so only a longer run can say whether a budget is enough.

usage: doubling_check.py SHORT_RUN_DIR:LONG_RUN_DIR...
  each argument names two run directories (holding runs.csv's row as summary.csv and metrics.csv) of the same
  method and seed at two epoch budgets. Prints a Markdown table: per pair the two budgets, the final
  validation top-1 of each, their difference and 2 SE in points, and the verdict.
"""
import csv
import math
import os
import sys

from pilot_report import read_metrics   # the campaign's one reader of metrics.csv (same directory)


def final_val(run_dir):
    """(run_id, method, seed, epochs, final validation top-1, n_val) of a finished run directory."""
    summary = next(csv.DictReader(open(os.path.join(run_dir, "summary.csv"))))
    if summary["status"] != "ok":
        sys.exit(f"{run_dir}: status {summary['status']}, not a finished run")
    _, val = read_metrics(os.path.join(run_dir, "metrics.csv"))   # [(epoch, top1, pass_s)]
    if not val:
        sys.exit(f"{run_dir}/metrics.csv: no validation rows")
    n_val = int(summary.get("n_val") or 0)
    if n_val <= 0:
        sys.exit(f"{run_dir}/summary.csv: no n_val (a run without a validation split)")
    return (os.path.basename(os.path.normpath(run_dir)), summary["method"], summary["seed"],
            int(summary["epochs"]), val[-1][1], n_val)


def main(pairs):
    print("| method | seed | epochs | final val top-1 | longer run | its final val top-1 | difference (pt) | "
          "2 SE (pt) | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for pair in pairs:
        if pair.count(":") != 1:
            sys.exit(f"'{pair}': expected SHORT_RUN_DIR:LONG_RUN_DIR")
        a, b = (final_val(d) for d in pair.split(":"))
        if (a[1], a[2]) != (b[1], b[2]) or b[3] <= a[3]:
            sys.exit(f"'{pair}': the runs must share method and seed, the second with more epochs")
        se = math.sqrt(a[4] * (1 - a[4]) / a[5])
        diff = 100 * (b[4] - a[4])
        verdict = "converged" if diff <= 200 * se else "not converged"
        print(f"| {a[1]} | {a[2]} | {a[3]} ({a[0]}) | {a[4]:.4f} | {b[3]} ({b[0]}) | {b[4]:.4f} | {diff:+.2f} | "
              f"{200 * se:.2f} | {verdict} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
