"""Full metric check: P@20 / MRR@20 recomputed from the STAMP authors' per-example ranks must equal the
log headers to six decimals (0.687484/0.296793, 0.704444/0.300045, 0.620395/0.273871).

    python bench/check_stamp_ranks.py --data ../shared/data/stamp_reference_ranks
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.models.metrics import rank_metrics, read_rank_tsv  # noqa: E402

EXPECTED = {"rsc15_64": (0.687484, 0.296793), "rsc15_4": (0.704444, 0.300045), "cikm16": (0.620395, 0.273871)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the stamp_reference_ranks folder")
    args = ap.parse_args(argv)
    ok = True
    for name, (hr, mrr) in EXPECTED.items():
        rf = read_rank_tsv(Path(args.data) / f"{name}_stamp_ranks.tsv")
        m = rank_metrics(rf.ranks, ks=(5, 10, 20))
        got = (round(m["P@20"], 6), round(m["MRR@20"], 6))
        match = got == (hr, mrr)
        ok &= match
        print(
            f"{name:9s} sessions {len(rf.session_ids):6d} examples {rf.ranks.size:6d}  "
            f"P@20 {got[0]:.6f} MRR@20 {got[1]:.6f}  expected {hr:.6f}/{mrr:.6f}  {'OK' if match else 'MISMATCH'}  "
            f"(HR@10 {m['HR@10']:.4f} MRR@10 {m['MRR@10']:.4f} HR@5 {m['HR@5']:.4f} MRR@5 {m['MRR@5']:.4f})"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
