"""Proof that a restructuring changed no number: fixed-seed ``train-and-eval --quick`` per method, its
``results/comparison.json`` compared value by value with a stored reference.

The references in ``benchmarks/results/sameness/<method>-quick.json`` were written by the code before
the "one shape for every method" restructuring (commit d014896); any later change that should not move
a number can be checked against them. Usage (a few minutes per method on a 2-core CPU):

    DEBIAS_DATA_DIR=../shared/data python benchmarks/sameness.py [--methods gee pcgu] [--runs DIR]
    DEBIAS_DATA_DIR=../shared/data python benchmarks/sameness.py --compare-only --runs DIR

Exit status 0 when every value is equal (NaN equals NaN; ``--tolerance`` allows float slack), else 1
with each differing path printed.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REFERENCES = Path(__file__).parent / "results" / "sameness"


def differences(new: Any, old: Any, tolerance: float = 0.0, path: str = "") -> Iterator[str]:
    """Every path where ``new`` and ``old`` differ: keys, lengths, or values beyond ``tolerance``."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if key not in old or key not in new:
                yield f"{path}/{key}: only in {'new' if key in new else 'reference'}"
            else:
                yield from differences(new[key], old[key], tolerance, f"{path}/{key}")
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            yield f"{path}: {len(new)} items, reference {len(old)}"
        for i, (a, b) in enumerate(zip(new, old, strict=False)):
            yield from differences(a, b, tolerance, f"{path}[{i}]")
    elif isinstance(old, float) and isinstance(new, int | float) and not isinstance(new, bool):
        if math.isnan(old) and math.isnan(new):
            return
        if not (abs(new - old) <= tolerance or new == old):
            yield f"{path}: {new!r}, reference {old!r}"
    elif new != old:
        yield f"{path}: {new!r}, reference {old!r}"


def run_quick(method: str, out: Path) -> None:
    # the references were written with the then-default suite, gee_bias: named, so a new default
    # cannot make the comparison vacuous
    cmd = [sys.executable, str(REPO / "cli.py"), "train-and-eval", "--method", method, "--quick"]
    cmd += ["--tasks", "gee_bias"]
    subprocess.run([*cmd, "--out", str(out)], check=True, cwd=REPO)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["gee", "pcgu"])
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "sameness")
    parser.add_argument("--compare-only", action="store_true", help="compare existing runs/<method>-quick")
    parser.add_argument("--tolerance", type=float, default=0.0)
    args = parser.parse_args()
    failed = False
    for method in args.methods:
        out = args.runs / f"{method}-quick"
        if not args.compare_only:
            run_quick(method, out)
        new = json.loads((out / "results" / "comparison.json").read_text())
        old = json.loads((REFERENCES / f"{method}-quick.json").read_text())
        found = list(differences(new, old, args.tolerance))
        values = sum(1 for rows in old["tasks"].values() for _ in rows)
        print(f"{method}: {values} metric rows compared, {len(found)} differences")
        for line in found[:50]:
            print(f"  {line}")
        failed |= bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
