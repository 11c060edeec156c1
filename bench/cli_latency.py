"""How long `python -m plugin suggest --index DIR --viewed …` takes, this tree against a baseline revision, in the
same run (runs alternate, so load on the machine hits both alike).

    python bench/cli_latency.py --index DIR --viewed ID [--viewed ID …] [--baseline-rev 6c265e4] [--runs 7]

DIR must be readable by both: a flat index (as `python -m plugin index` wrote before versioned folders) or, with a
baseline that has them, a versioned one. The baseline is exported with `git archive` into a temporary folder.
Reports the median wall time and the median CPU time (user + sys of the child): on a shared machine the CPU time
is the steadier of the two.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run_once(tree: Path, argv: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "plugin", *argv],
        cwd=tree,
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", required=True, help="index folder both trees can read")
    p.add_argument("--viewed", action="append", required=True, help="article id or url, in reading order")
    p.add_argument("--baseline-rev", default="6c265e4", help="git revision to compare against")
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    argv = ["suggest", "--index", str(Path(args.index).resolve()), *sum((["--viewed", v] for v in args.viewed), [])]
    with tempfile.TemporaryDirectory(prefix="cli-baseline-") as tmp:
        archive = subprocess.run(
            ["git", "archive", args.baseline_rev], cwd=REPO, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        trees = {f"baseline {args.baseline_rev}": Path(tmp), "this tree": REPO}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        for _ in range(args.runs):
            for name, tree in trees.items():
                times[name].append(_run_once(tree, argv))
    print(f"python -m plugin {' '.join(argv[:1])} … ({args.runs} runs each, alternating)\n")
    print(f"{'':24} {'wall s (median)':>16} {'CPU s (median)':>15}")
    medians = {}
    for name, rows in times.items():
        wall, cpu = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
        medians[name] = (wall, cpu)
        print(f"{name:24} {wall:16.2f} {cpu:15.2f}")
    (bw, bc), (tw, tc) = medians.values()
    print(f"{'this tree / baseline':24} {tw / bw:16.2f} {tc / bc:15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
