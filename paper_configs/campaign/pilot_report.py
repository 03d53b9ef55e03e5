#!/usr/bin/env python3
"""Campaign pilot report (issue 16, paper_configs/CAMPAIGN.md).

Reads the pilot grids' outputs (OUT/runs.csv and OUT/runs/<run_id>/metrics.csv) and prints, as Markdown:
  1. per run: final validation and test top-1, and the two convergence criteria of CAMPAIGN.md -
     the relative change of the mean training loss (plain cross-entropy) of the last tenth of the epochs
     against the tenth before it (criterion: within 1%), and
     the change of validation top-1 over the evaluations in the last quarter of training, against its
     binomial standard error (criterion: within 2 SE);
  2. per cell and method: how many runs meet each convergence criterion;
  3. per cell: the paired difference of final test top-1 to dense over seeds (mean, sd, n) for each other
     method, and the
     number of seeds n for which the minimum detectable effect
        MDE(n) = (t_{0.975, n-1} + t_{0.8, n-1}) * sd / sqrt(n)
     (paired t-test, alpha 0.05 two-sided, power 0.8; the same formula as experiments/stats.c)
     falls to 1.0 and to 1.5 points;
  4. per run: training seconds per epoch and the run's wall seconds (start to end: training, every
     evaluation and the checkpoints), the two numbers the design's cost arithmetic uses.
t quantiles come from mpmath (Debian python3-mpmath), independent of the C code's GSL.

usage: pilot_report.py RESULTS_DIR...   (e.g. results/campaign/pilot_small results/campaign/pilot_full)
"""
import csv
import datetime
import math
import os
import sys

import mpmath


def t_quantile(p, df):
    """Quantile of Student's t with df degrees of freedom (bisection on mpmath's regularized beta CDF)."""
    def cdf(t):
        x = df / (df + t * t)
        tail = 0.5 * mpmath.betainc(df / 2.0, 0.5, 0, x, regularized=True)
        return 1 - tail if t > 0 else tail
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if cdf(mid) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def mde(sd, n):
    return (t_quantile(0.975, n - 1) + t_quantile(0.8, n - 1)) * sd / math.sqrt(n)


def seeds_needed(sd, target, nmax=200):
    if sd == 0:
        return 2
    for n in range(2, nmax + 1):
        if mde(sd, n) <= target:
            return n
    return None


def read_metrics(path):
    rows = list(csv.DictReader(open(path)))
    train = [(int(r["epoch"]), float(r["loss"])) for r in rows if r["split"] == "train"]
    val = [(int(r["epoch"]), float(r["top1"]), float(r["pass_s"])) for r in rows if r["split"] == "val"]
    return train, val


def convergence(train, val, n_val):
    """(rel. train-loss change over the last tenth, val change over the last quarter, its SE)."""
    epochs = train[-1][0]
    k = max(1, math.ceil(0.1 * epochs))
    loss = dict(train)
    last = [loss[e] for e in range(epochs - k + 1, epochs + 1) if e in loss]
    before = [loss[e] for e in range(epochs - 2 * k + 1, epochs - k + 1) if e in loss]
    if last and before:
        ref = sum(before) / len(before)
        dloss = (sum(last) / len(last) - ref) / ref
    else:
        dloss = float("nan")
    late = [v for v in val if v[0] >= epochs - max(1, math.ceil(0.25 * epochs))]
    dval = late[-1][1] - late[0][1] if len(late) > 1 else float("nan")
    acc = val[-1][1] if val else float("nan")
    se = math.sqrt(acc * (1 - acc) / n_val) if n_val else float("nan")
    return dloss, dval, se


def wall_seconds(row):
    """end_time - start_time of a run record (ISO 8601 UTC), or nan."""
    try:
        t = [datetime.datetime.strptime(row[k], "%Y-%m-%dT%H:%M:%SZ") for k in ("start_time", "end_time")]
    except (KeyError, ValueError):
        return float("nan")
    return (t[1] - t[0]).total_seconds()


def cell_of(row):
    """The cell: every sweep key but the method."""
    parts = [p for p in row["sweep"].split(";") if not p.startswith("moe.method=")]
    return ";".join(parts)


def report(dirs):
    runs = []
    for d in dirs:
        for r in csv.DictReader(open(os.path.join(d, "runs.csv"))):
            if r["status"] != "ok":
                continue
            train, val = read_metrics(os.path.join(d, "runs", r["run_id"], "metrics.csv"))
            n_val = int(r.get("n_val") or 0)
            dloss, dval, se = convergence(train, val, n_val)
            r.update(dir=d, cell=os.path.basename(d) + ":" + cell_of(r), dloss=dloss, dval=dval, se=se,
                     sec_per_epoch=float(r["train_seconds"]) / int(r["epochs"]), wall=wall_seconds(r))
            runs.append(r)
    print("| cell | method | seed | val top-1 | test top-1 | train-loss change, last tenth | "
          "val change, last quarter (2 SE) | train s/epoch | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: (r["cell"], r["method"], int(r["seed"]))):
        print(f"| {r['cell']} | {r['method']} | {r['seed']} | {float(r['val_top1']):.4f} | "
              f"{float(r['final_top1']):.4f} | {100 * r['dloss']:+.2f}% | {100 * r['dval']:+.2f} "
              f"({200 * r['se']:.2f}) pt | {r['sec_per_epoch']:.1f} | {r['wall']:.0f} |")
    print()
    print("| cell | method | runs | validation flat over the last quarter (within 2 SE) | "
          "training loss within 1% over the last tenth |")
    print("|---|---|---|---|---|")
    for key in sorted({(r["cell"], r["method"]) for r in runs}):
        rs = [r for r in runs if (r["cell"], r["method"]) == key]
        flat = sum(abs(r["dval"]) <= 2 * r["se"] for r in rs)
        loss = sum(abs(r["dloss"]) <= 0.01 for r in rs)
        print(f"| {key[0]} | {key[1]} | {len(rs)} | {flat} of {len(rs)} | {loss} of {len(rs)} |")
    print()
    print("| cell | comparison | n pairs | mean difference (pt) | sd (pt) | MDE at n (pt) | seeds for MDE <= 1.0 | "
          "seeds for MDE <= 1.5 |")
    print("|---|---|---|---|---|---|---|---|")
    for cell in sorted({r["cell"] for r in runs}):
        by = {}
        for r in runs:
            if r["cell"] == cell:
                by.setdefault(r["seed"], {})[r["method"]] = float(r["final_top1"])
        methods = sorted({m for v in by.values() for m in v if m != "dense"})
        for m in methods:
            diffs = [100 * (v[m] - v["dense"]) for v in by.values() if m in v and "dense" in v]
            n = len(diffs)
            if n < 2:
                print(f"| {cell} | {m} - dense | {n} | | | | | |")
                continue
            mean = sum(diffs) / n
            sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / (n - 1))
            print(f"| {cell} | {m} - dense | {n} | {mean:+.2f} | {sd:.2f} | {mde(sd, n):.2f} | "
                  f"{seeds_needed(sd, 1.0)} | {seeds_needed(sd, 1.5)} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    report(sys.argv[1:])
