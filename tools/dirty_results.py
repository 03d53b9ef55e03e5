#!/usr/bin/python3
"""Which committed results were produced from a dirty tree (issue 10).

Reads every runs.csv tracked by git under results/ and lists those with runs
whose git_dirty is not 0 (the binary was built from a tree with uncommitted
changes to tracked files outside results/, or its provenance is unknown),
with the count and the commits they were built from.

    tools/dirty_results.py                          # print the Markdown list
    tools/dirty_results.py --update results/README.md
    tools/dirty_results.py --check results/README.md   # exit 1 if the block is stale (CI)

(FILE and the listed paths relative to the repository's top, this script's
parent directory, wherever it is run from)

--update replaces the lines between the markers
<!-- dirty-results:begin --> and <!-- dirty-results:end --> of the file with
the list, so the README states what the files say, never a hand count.
"""
import csv
import os
import subprocess
import sys

import mdblock   # tools/mdblock.py: the generated-block markers


def tracked_runs_csv():
    out = subprocess.run(["git", "ls-files", "--", "results/*runs.csv"], check=True,
                         capture_output=True, text=True).stdout
    return sorted(p for p in out.split("\n") if p.endswith("/runs.csv"))


def describe(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and "git_dirty" not in rows[0]:
        return "%d runs, no git_dirty column (provenance unknown)" % len(rows)
    dirty = [r for r in rows if r.get("git_dirty") != "0"]
    if not dirty:
        return None
    commits = sorted({r.get("git_commit", "?") for r in dirty})
    return "%d of %d runs with git_dirty=%s (built at %s)" % (
        len(dirty), len(rows), "/".join(sorted({r.get("git_dirty", "") for r in dirty})),
        ", ".join("`%s`" % c for c in commits))


def listing():
    files = tracked_runs_csv()
    lines = []
    for p in files:
        d = describe(p)
        if d:
            lines.append("- `%s`: %s" % (p, d))
    lines.append("")
    # no total of all files: committing clean results must not make the list stale
    lines.append("%d committed runs.csv files hold runs from a dirty tree "
                 "(`tools/dirty_results.py`)." % (len(lines) - 1))
    return "\n".join(lines)


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    mdblock.main(sys.argv, "tools/dirty_results.py", "dirty-results", "the list of results from a dirty tree",
                 listing)


if __name__ == "__main__":
    main()
