#!/usr/bin/python3
"""The claims' verdicts in the README, copied from results/CLAIMS.md (issue 16).

`bin/ewa claims` writes results/CLAIMS.md from the aggregated tables; its first
table holds each claim's verdict and primary estimate with its 95% interval.
This copies that table, verbatim, between the markers
<!-- claims:begin --> and <!-- claims:end --> of a Markdown file, so the README
states what CLAIMS.md says and never a hand-typed number:

    tools/claims_block.py                      # print the block
    tools/claims_block.py --update README.md
    tools/claims_block.py --check README.md    # exit 1 if the block is stale (CI)

--check first reruns `bin/ewa claims` (or $EWA) into a temporary directory and
compares its CLAIMS.csv with results/CLAIMS.csv: results/CLAIMS.md must itself
be current with the committed tables and claims.ini.

(paths relative to the repository's top, this script's parent directory)
"""
import filecmp
import os
import subprocess
import sys
import tempfile

import mdblock   # tools/mdblock.py: the generated-block markers

CLAIMS = "results/CLAIMS.md"


def block():
    with open(CLAIMS) as f:
        lines = f.read().split("\n")
    first = [i for i, l in enumerate(lines) if l.startswith("| claim | verdict |")]
    if not first:
        sys.exit("%s: no '| claim | verdict |' table (rerun bin/ewa claims)" % CLAIMS)
    table = []
    for l in lines[first[0]:]:
        if not l.startswith("|"):
            break
        table.append(l)
    # the table's links and the version line of CLAIMS.md stay there; say where this comes from
    gen = next((l for l in lines if l.startswith("Written by `bin/ewa claims`")), "")
    ver = gen.split("(", 1)[1].split(")", 1)[0] if "(" in gen else "?"
    return "\n".join(table + ["", "(copied from [`%s`](%s) by `tools/claims_block.py`; written there by "
                                  "`bin/ewa claims`, %s)" % (CLAIMS, CLAIMS, ver)])


def check_claims_current():
    """Exit 1 when bin/ewa claims, run now, gives another CLAIMS.csv."""
    ewa = os.environ.get("EWA", "bin/ewa")
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([ewa, "claims", "--out", os.path.join(d, "CLAIMS.md")], capture_output=True, text=True)
        if out.returncode:
            sys.exit("%s claims failed (exit %d):\n%s" % (ewa, out.returncode, out.stderr))
        if not filecmp.cmp(os.path.join(d, "CLAIMS.csv"), "results/CLAIMS.csv", shallow=False):
            sys.exit("results/CLAIMS.md and CLAIMS.csv are stale (the tables or claims.ini changed): run "
                     "bin/ewa claims, then tools/claims_block.py --update README.md, and commit them")
    print("results/CLAIMS.csv is current with the tables and paper_configs/claims.ini")


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    if sys.argv[1:2] == ["--check"]:
        check_claims_current()
    mdblock.main(sys.argv, "tools/claims_block.py", "claims", "the claims' verdicts block", block)


if __name__ == "__main__":
    main()
