"""Two `bench.relevance --json` reports side by side: the default method's every metric, with 95% CIs, and
whether the second's mean lies inside the first's CI (the check for "equal relevance" of two encoder backends).

    python bench/compare_relevance.py runs/rel-torch.json runs/rel-int8.json [--method default]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(a: dict, b: dict, method: str, name_a: str, name_b: str) -> list[str]:
    out = [
        f"| corpus | split | protocol | metric | {name_a} [95% CI] | {name_b} [95% CI] | {name_b} inside {name_a}'s CI |",
        "|---|---|---|---|---|---|---|",
    ]
    inside = total = 0
    for corpus, ca in a["corpora"].items():
        cb = b["corpora"].get(corpus)
        if cb is None:
            continue
        for split in ("tuning", "report"):
            if split not in ca or split not in cb:
                continue
            for proto, methods in ca[split]["results"].items():
                ma, mb = methods.get(method), cb[split]["results"].get(proto, {}).get(method)
                if ma is None or mb is None:
                    continue
                for metric, sa in ma.items():
                    sb = mb.get(metric)
                    if not isinstance(sa, dict) or not isinstance(sb, dict) or "mean" not in sa:
                        continue
                    ok = sa["lo"] <= sb["mean"] <= sa["hi"]
                    inside += ok
                    total += 1
                    out.append(
                        f"| {corpus} | {split} | {proto} | {metric} | {sa['mean']:.3f} [{sa['lo']:.3f}, "
                        f"{sa['hi']:.3f}] | {sb['mean']:.3f} [{sb['lo']:.3f}, {sb['hi']:.3f}] | "
                        f"{'yes' if ok else '**no**'} |"
                    )
    out.append(f"\n{inside} of {total} {name_b} means inside {name_a}'s 95% CI.")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("first", type=Path)
    ap.add_argument("second", type=Path)
    ap.add_argument("--method", default="default")
    args = ap.parse_args()
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (args.first, args.second))
    names = [r.get("encoder", p.stem).rsplit(":", 1)[-1] for r, p in ((a, args.first), (b, args.second))]
    print("\n".join(rows(a, b, args.method, *names)))


if __name__ == "__main__":
    main()
