"""Derive a smaller SR-GNN-format dataset from one: a fraction of its training sessions, the same test examples.

Checks training defaults on data they were not tuned on (issue #11). SR-GNN's YOOCHOOSE 1/64 is the most recent
1/64 of the training clicks, so the last quarter of its training sessions (date order) is "YOOCHOOSE 1/256" by
the same recency rule; the first 40% of DIGINETICA's is a 290k-example, 43k-item set shaped like the one the
issue reports. The id space (``max_item_id``) is kept, so test items unseen in the smaller training set stay
rankable (and are misses for every model). Output goes where you say (e.g. runs/derived/), never into the repo.

    python bench/derive_fraction.py --data ../shared/data/yoochoose1_64_srgnn --fraction 0.25 --keep last \
        --out runs/derived/yoochoose1_256
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.atomic import atomic_write_text  # noqa: E402
from plugin.models.data import load_srgnn_folder  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="source SR-GNN folder")
    ap.add_argument("--out", required=True, help="folder to write (train_sessions.txt, test_examples.tsv, stats.json)")
    ap.add_argument("--fraction", type=float, required=True, help="share of the training sessions to keep, (0, 1]")
    ap.add_argument("--keep", choices=("first", "last"), default="last", help="oldest or most recent sessions")
    args = ap.parse_args(argv)
    if not 0.0 < args.fraction <= 1.0:
        ap.error("--fraction must be in (0, 1]")
    data = load_srgnn_folder(args.data)
    n = max(1, round(args.fraction * len(data.train_sessions)))
    train = data.train_sessions[:n] if args.keep == "first" else data.train_sessions[-n:]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "train_sessions.txt", "".join(" ".join(map(str, s.tolist())) + "\n" for s in train))
    atomic_write_text(out / "test_examples.tsv", (Path(args.data) / "test_examples.tsv").read_text())
    stats = {
        "derived_from": str(args.data),
        "fraction": args.fraction,
        "keep": args.keep,
        "train_sessions": len(train),
        "train_examples": int(sum(s.size - 1 for s in train)),
        "test_examples": len(data.test),
        "max_item_id": data.n_items,
        "items_in_train": len({int(i) for s in train for i in s}),
    }
    atomic_write_text(out / "stats.json", json.dumps(stats, indent=1))
    sys.stdout.write(json.dumps(stats) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
