"""Validation-only grid search for the count-based models (never touches the test set).

Fits on the first 90% of the training sessions and scores the last 10% (the validation split) for each
config of the grid; prints one JSON line per config, sorted by the selection metric at the end.

    python bench/tune_knn.py --model vsknn --data ../shared/data/diginetica_srgnn \
        --grid '{"weighting": ["div", "quadratic"], "idf_weighting": [0, 1]}' --max-valid 20000
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.models import get_model  # noqa: E402
from plugin.models.data import augment, load_srgnn_folder, split_validation  # noqa: E402
from plugin.models.evaluation import evaluate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--grid", default="{}", help="JSON object: option -> list of values")
    ap.add_argument("--fixed", default="{}", help="JSON object of options held fixed")
    ap.add_argument("--max-valid", type=int, default=20000, help="random subset of validation examples (seed 0)")
    ap.add_argument("--metric", default="MRR@20")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    data = load_srgnn_folder(args.data)
    train, valid_sessions = split_validation(data.train_sessions)
    valid = augment(valid_sessions)
    if len(valid) > args.max_valid:
        valid = valid.subset(np.sort(np.random.default_rng(0).choice(len(valid), args.max_valid, replace=False)))
    grid = json.loads(args.grid)
    fixed = json.loads(args.fixed)
    results = []
    for values in itertools.product(*grid.values()):
        options = {**fixed, **dict(zip(grid, values))}
        model = get_model(args.model, **options)
        model.fit(train, data.n_items)
        r = evaluate(model, valid, ks=(5, 10, 20), batch_size=512, beyond_accuracy=False)
        row = {"options": options, **{k: round(v, 5) for k, v in r.metrics.items() if "@20" in k}}
        results.append(row)
        print(json.dumps(row), flush=True)
    best = max(results, key=lambda r: r[args.metric])
    print("BEST", json.dumps(best), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
