"""Training speed of our STAMP / GRU4Rec / SR-GNN on an SR-GNN folder: time N mini-batches after a warm-up and
project to one epoch (the same first-90% training split and batch size as `python -m plugin train`).
`bench/train_speed.sh` runs this and RecBole's models on the same data, one after the other, in one run.

    python bench/train_speed.py --data ../shared/data/diginetica_srgnn --model stamp --batches 100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.models import get_model  # noqa: E402
from plugin.models._neural import SoftmaxWorkspace  # noqa: E402
from plugin.models.cli import parse_options  # noqa: E402
from plugin.models.data import load_srgnn_folder, split_validation  # noqa: E402
from plugin.models.training import TrainConfig, batch_order, train_step  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="stamp")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--bucket", type=int, default=64, help="length-bucketed batches as in training (0: plain shuffle)")
    ap.add_argument("--option", action="append", default=[], help="model option key=value (repeatable)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_srgnn_folder(args.data)
    train, _ = split_validation(data.train_sessions, 0.1)
    model = get_model(args.model, **parse_options(args.option))
    model._start_fit(data.n_items, None)
    torch.manual_seed(0)
    model.net = model.build_net()
    model.workspace = SoftmaxWorkspace()
    units = model.training_units(train)
    opt = torch.optim.Adam(model.net.parameters(), lr=1e-3, fused=True)
    batches = batch_order(units.lengths, args.batch_size, np.random.default_rng(0), args.bucket)
    per_epoch = len(batches)
    warm = 3

    config = TrainConfig(batch_size=args.batch_size, bf16=not args.no_bf16, bucket=args.bucket, progress=False)

    def step(b: int) -> None:
        train_step(model, opt, units, batches[b], config)

    for b in range(warm):
        step(b)
    t0 = time.perf_counter()
    for b in range(warm, warm + args.batches):
        step(b % per_epoch)
    per_batch = (time.perf_counter() - t0) / args.batches
    print(
        json.dumps(
            {
                "model": args.model,
                "options": args.option,
                "data": Path(args.data).name,
                "batches_timed": args.batches,
                "batch_size": args.batch_size,
                "units_per_epoch": len(units),
                "batches_per_epoch": per_epoch,
                "ms_per_batch": round(1000 * per_batch, 1),
                "projected_epoch_seconds": round(per_batch * per_epoch, 1),
                "bf16": not args.no_bf16,
                "bucket": args.bucket,
                "threads": args.threads,
                "load1": round(os.getloadavg()[0], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
