"""Score-level blend of two saved session models ("our best" candidate), weight chosen on validation only.

    python bench/blend.py --data ../shared/data/diginetica_srgnn --a runs/bench/vsknn_diginetica_srgnn \
        --b runs/bench/stamp_diginetica_srgnn --weights 0.3,0.5,0.7 --out runs/bench/blend_diginetica_srgnn.json

Each model's scores are turned into a distribution over the catalogue (V-SKNN/counts: divided by the row sum;
neural: softmax), and blended as w * p_a + (1 - w) * p_b. The weight is picked on the validation split
(last 10% of training sessions), with model a refitted on the first 90% for that (so neither model has seen the
validation sessions; b must be a neural model trained on the first 90%, as bench/run_models.sh does). The
test set is then scored once with the chosen weight and model a as saved (fitted on all training sessions).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.data import augment, load_srgnn_folder, split_validation  # noqa: E402
from plugin.evaluation import evaluate  # noqa: E402
from plugin.models import get_model, load_model  # noqa: E402
from plugin.models._neural import NeuralModel  # noqa: E402


def _distribution(model, prefixes: np.ndarray) -> torch.Tensor:
    if isinstance(model, NeuralModel):
        return torch.softmax(model.score_torch(prefixes), dim=1)  # (B, N+1)
    s = torch.from_numpy(model.score(prefixes)).clamp(min=0)  # (B, N+1), -inf padding -> 0
    return s / s.sum(1, keepdim=True).clamp(min=1e-12)


class Blend:
    name = "blend"

    def __init__(self, a, b, weight: float) -> None:
        self.a, self.b, self.weight, self.n_items = a, b, weight, a.n_items

    def score_torch(self, prefixes: np.ndarray) -> torch.Tensor:
        s = self.weight * _distribution(self.a, prefixes) + (1 - self.weight) * _distribution(self.b, prefixes)
        s[:, 0] = float("-inf")
        return s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--a", required=True, help="saved count model (refitted on 90% for validation)")
    ap.add_argument("--b", required=True, help="saved neural model trained on the first 90%")
    ap.add_argument("--weights", default="0.3,0.5,0.7")
    ap.add_argument("--max-valid", type=int, default=15000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_srgnn_folder(args.data)
    a_full, b = load_model(args.a), load_model(args.b)
    train, valid_sessions = split_validation(data.train_sessions)
    valid = augment(valid_sessions)
    if len(valid) > args.max_valid:
        valid = valid.subset(np.sort(np.random.default_rng(0).choice(len(valid), args.max_valid, replace=False)))
    a_90 = get_model(a_full.name, **a_full.config.__dict__)
    a_90.fit(train, data.n_items)
    rows = []
    for w in [float(x) for x in args.weights.split(",")]:
        m = evaluate(Blend(a_90, b, w), valid, ks=(20,), beyond_accuracy=False).metrics
        rows.append({"weight": w, "valid_HR@20": m["HR@20"], "valid_MRR@20": m["MRR@20"]})
        print(json.dumps(rows[-1]), flush=True)
    best = max(rows, key=lambda r: (r["valid_MRR@20"], r["valid_HR@20"]))
    r = evaluate(Blend(a_full, b, best["weight"]), data.test, ks=(5, 10, 20), item_counts=data.item_counts())
    result = {"model": "blend", "a": args.a, "b": args.b, "weight": best["weight"], "validation": rows,
              "examples": r.n_examples, "eval_seconds": round(r.seconds, 2), "threads": torch.get_num_threads(),
              "metrics": r.metrics}
    Path(args.out).write_text(json.dumps(result) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
