"""Issue #13 item 1 from outside, for two versions at the same moments: long / 3-page GET suggestions p50 of a base
checkout and of this one, served side by side.

    git worktree add --detach /tmp/base <commit>
    python bench/wrk_pair.py --base /tmp/base [--visitors 2000] [--rounds 8] [--seconds 8] [--json OUT]

Each version runs as in `bench/wrk_load.py --length-ratio` (hardened app, `python -m plugin serve --workers 2`, its
own private redis-server, --visitors seeded visitors of which half are filled to 190 events), both at once; then
--rounds rounds of 1-connection wrk runs of --seconds each, base short, base long, this short, this long (which
version goes first alternates by round). On a shared box the load moves between rounds by more than the changes
measured: two versions run one after the other (as `bench/wrk_load.py` twice) never see the same box, while here each
round's four runs are next to each other. Reported per version: the median over rounds of each round's long / short
p50 (all rounds, and without the first two, in which each worker's caches are still filling). Keep --visitors at a
few hundred or more: one connection at ~500 req/s over a few dozen sessions trips the per-session rate limit (120
requests a minute), and every 429 counts as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import wrk_load  # noqa: E402
from http_load import _index  # noqa: E402
from soak import Redis  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, type=Path, help="a checkout of the other version")
    p.add_argument("--cache", help="where to build/cache the demo index (default: a temp dir)")
    p.add_argument("--visitors", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2

    from plugin.versions import resolve_version

    index = _index(argparse.Namespace(index=None, cache=args.cache, encoder="hashing:384"))
    arts = [json.loads(line) for line in open(resolve_version(index)[0] / "articles.jsonl", encoding="utf-8")]
    kb = [(a["id"], a["url"]) for a in arts if a.get("url") and " " not in a["id"] and " " not in a["url"]]
    work = Path(tempfile.mkdtemp(prefix="wrk-pair-"))
    sides: dict[str, tuple[Redis, str, wrk_load.Service, dict[str, Path]]] = {}
    load0 = os.getloadavg()[0]
    try:
        for name, root in (("base", args.base.resolve()), ("this", ROOT)):
            wrk_load.ROOT = root  # the service runs `python -m plugin serve` from this checkout
            redis, prefix = Redis(None), f"wrk-pair-{name}:"
            service = wrk_load.Service(index, 2, redis.url, prefix)
            sides[name] = (redis, prefix, service, {})
            visitors = asyncio.run(wrk_load._seed_visitors(service.url, args.visitors, [u for _, u in kb], 0))
            filled = visitors[: len(visitors) // 2]
            t0 = time.monotonic()
            asyncio.run(wrk_load._fill_visitors(service.url, filled, kb, 190, 0))
            print(f"{name}: {len(filled)} sessions filled in {time.monotonic() - t0:.0f} s", flush=True)
            for kind, group in (("long", filled), ("short", visitors[len(filled) :])):
                path = work / f"{name}-{kind}.txt"
                path.write_text("".join(f"{sid} {ip}\n" for sid, ip in group))
                sides[name][3][kind] = path
        order = [("base", "short"), ("base", "long"), ("this", "short"), ("this", "long")]
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in order}
        for i in range(args.rounds):
            for name, kind in order[2 * (i % 2) :] + order[: 2 * (i % 2)]:
                url, files = sides[name][2].url, sides[name][3]
                runs[(name, kind)].append(
                    wrk_load._wrk("suggest.lua", url, 1, args.seconds, 1, [str(files[kind]), "0"])
                )
            print(
                f"round {i}: "
                + ", ".join(
                    f"{n} {runs[(n, 'long')][-1]['p50_ms'] / runs[(n, 'short')][-1]['p50_ms']:.2f}" for n in sides
                )
                + f" (load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    finally:
        for redis, prefix, service, _ in sides.values():
            service.stop()
            redis.close(prefix)
        shutil.rmtree(work, ignore_errors=True)
    report: dict[str, Any] = {"visitors": args.visitors, "rounds": args.rounds, "seconds": args.seconds}
    print(
        f"\n{args.visitors} visitors ({args.visitors // 2} filled to 190 events) per version, both served at once; "
        f"{args.rounds} rounds of {args.seconds:g} s per run; load average {load0:.2f} → {os.getloadavg()[0]:.2f}\n"
    )
    print(
        "| version | 3-page p50 ms | long p50 ms | long / 3-page p50, median of rounds | without the first two | per round | errors |"
    )
    print("|---|---:|---:|---:|---:|---|---:|")
    for name in sides:
        long_runs, short_runs = runs[(name, "long")], runs[(name, "short")]
        ratios = [lo["p50_ms"] / sh["p50_ms"] for lo, sh in zip(long_runs, short_runs)]
        row = {
            "short_p50_ms": statistics.median(r["p50_ms"] for r in short_runs),
            "long_p50_ms": statistics.median(r["p50_ms"] for r in long_runs),
            "ratio": statistics.median(ratios),
            "ratio_after_two": statistics.median(ratios[2:]) if len(ratios) > 2 else None,
            "ratios": [round(r, 3) for r in ratios],
            "errors": sum(r["errors"] for r in long_runs + short_runs),
        }
        report[name] = row
        after = f"{row['ratio_after_two']:.2f}" if row["ratio_after_two"] is not None else "–"
        print(
            f"| {name} | {row['short_p50_ms']:.2f} | {row['long_p50_ms']:.2f} | **{row['ratio']:.2f}** | {after} "
            f"| {', '.join(f'{r:.2f}' for r in ratios)} | {row['errors']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
