"""Time the full-catalogue evaluation of a saved model on a dataset's test split (best of N runs), and the
bare score matmul it contains, on the threads given (default 2), with the bf16 screen (default) and without it
(plain float32; the script checks both give the same ranks). Reports the machine load beside it, since
the cores are shared.

    python bench/eval_speed.py --model runs/bench/stamp_diginetica_srgnn --data ../shared/data/diginetica_srgnn
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.models import load_model  # noqa: E402
from plugin.models.data import load_srgnn_folder  # noqa: E402
from plugin.models.evaluation import evaluate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    data = load_srgnn_folder(args.data)
    runs, fp32_runs = [], []
    for _ in range(args.repeats):  # bf16-screened (default) and plain float32, interleaved, same ranks
        load = os.getloadavg()[0]
        r = evaluate(model, data.test, ks=(5, 10, 20), batch_size=args.batch_size, beyond_accuracy=False, screen=True)
        runs.append({"seconds": round(r.seconds, 2), "load1": round(load, 2)})
        r32 = evaluate(
            model, data.test, ks=(5, 10, 20), batch_size=args.batch_size, beyond_accuracy=False, screen=False
        )
        fp32_runs.append({"seconds": round(r32.seconds, 2), "load1": round(os.getloadavg()[0], 2)})
        if not (r.ranks == r32.ranks).all():
            raise SystemExit("screened and float32 ranks differ")
    with_top = evaluate(model, data.test, ks=(5, 10, 20), batch_size=args.batch_size, item_counts=data.item_counts())
    v = torch.from_numpy(model.item_vectors())
    q = torch.randn(len(data.test), v.shape[1])
    t0 = time.perf_counter()
    for lo in range(0, q.shape[0], args.batch_size):
        q[lo : lo + args.batch_size] @ v.t()
    matmul = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "model": args.model,
                "examples": len(data.test),
                "items": data.n_items,
                "threads": torch.get_num_threads(),
                "accuracy_only_runs": runs,
                "float32_accuracy_only_runs": fp32_runs,
                "speedup_best": round(min(x["seconds"] for x in fp32_runs) / min(x["seconds"] for x in runs), 2),
                "with_coverage_and_popularity_s": round(with_top.seconds, 2),
                "bare_matmul_s": round(matmul, 2),
                "HR@20": with_top.metrics["HR@20"],
                "MRR@20": with_top.metrics["MRR@20"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
