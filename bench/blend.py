"""Score-level blend of saved session models ("our best" candidate), weights chosen on validation only.

    python bench/blend.py --data ../shared/data/diginetica_srgnn --models runs/bench/vsknn_diginetica_srgnn \
        runs/b2/stamp_diginetica_srgnn runs/b2/srgnn_diginetica_srgnn --step 0.1 --out runs/b2/blend_diginetica_srgnn.json

Each model's scores are turned into a distribution over the catalogue (V-SKNN/counts: divided by the row sum;
neural: softmax) and blended as sum_m w_m p_m with the weights on a grid over the simplex (``--step``). The
weights are picked on the validation split (last 10% of training sessions): count models are refitted on the
first 90% for that, neural models must have been trained on the first 90% (as ``python -m plugin train`` does),
so no model has seen the validation sessions. Each model's validation distributions are computed once per
batch and every grid point is ranked from them. The test set is then scored once, with the chosen weights and
the count models as saved (fitted on all training sessions).

``--mix log`` blends log-probabilities instead (sum_m w_m log(p_m + 1e-5), a weighted product of experts: an
item must be likely under every weighted model, which sharpens the top of the list); ``--mix both`` ranks the grid
under both and keeps the better on validation (the mix is then one more choice made on validation).

A member may be several saved models joined by ``+`` (``runs/a_seed0+runs/a_seed1+runs/a_seed2``): their
distributions are averaged with equal weights into one member (a seed ensemble of one model), so the grid stays
over model families. ``--device cuda`` scores and ranks on a GPU (the grid is the slow part: every point ranks every
validation example over the whole catalogue).

``--weights`` skips the validation grid and scores the test set with weights an earlier run chose on validation —
for the papers' second half, where the neural models were retrained on the whole training split (so they have seen
the validation sessions and cannot choose weights themselves): the weights come from the 90% models' grid.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.errors import ConfigError  # noqa: E402
from plugin.models import get_model, load_model  # noqa: E402
from plugin.models._neural import NeuralModel  # noqa: E402
from plugin.models.data import augment, load_srgnn_folder, split_validation  # noqa: E402
from plugin.models.device import resolve_device  # noqa: E402
from plugin.models.evaluation import evaluate  # noqa: E402
from plugin.models.metrics import pessimistic_ranks, rank_metrics  # noqa: E402

_CPU = torch.device("cpu")


class Average:
    """One blend member made of several models (e.g. one model trained with several seeds): the equal-weight
    mean of their distributions."""

    name = "average"

    def __init__(self, models: list) -> None:
        if not models or len({m.n_items for m in models}) != 1:
            raise SystemExit("an averaged member needs models over one catalogue")
        self.models, self.n_items = models, models[0].n_items


def _distribution(model, prefixes: np.ndarray, device: torch.device = _CPU) -> torch.Tensor:
    if isinstance(model, Average):
        return sum(_distribution(m, prefixes, device) for m in model.models) / len(model.models)
    if isinstance(model, NeuralModel):
        return torch.softmax(model.score_torch(prefixes), dim=1).to(device)  # (B, N+1)
    s = torch.from_numpy(model.score(prefixes)).to(device).clamp(min=0)  # (B, N+1), -inf padding -> 0
    return s / s.sum(1, keepdim=True).clamp(min=1e-12)


def _load_member(spec: str, device: torch.device):
    """A saved model folder, or several joined by '+' (averaged); neural models moved to ``device``."""
    models = [load_model(p) for p in spec.split("+")]
    for m in models:
        if isinstance(m, NeuralModel):
            m.to(device)
    return models[0] if len(models) == 1 else Average(models)


def _refit_on_90(member, train, n_items: int):
    """The member as validation needs it: neural models as saved (trained on 90%), count models refitted on 90%."""
    if isinstance(member, Average):
        return Average([_refit_on_90(m, train, n_items) for m in member.models])
    if isinstance(member, NeuralModel):
        return member
    refit = get_model(member.name, **member.config.__dict__)
    refit.fit(train, n_items)
    return refit


LOG_FLOOR = 1e-5  # log mix: a model's zero probability (V-SKNN's unseen items) counts as this


def _mix(weights, dists) -> torch.Tensor:
    """sum_m w_m p_m (or of log p_m: pass log-distributions) over the models with a weight, padding column masked."""
    s = sum(w * d for w, d in zip(weights, dists) if w > 0)
    s[:, 0] = float("-inf")
    return s


def _as_mix(dist: torch.Tensor, mix: str) -> torch.Tensor:
    return torch.log(dist + LOG_FLOOR) if mix == "log" else dist


class Blend:
    name = "blend"

    def __init__(self, models, weights, mix: str = "linear", device: torch.device = _CPU) -> None:
        self.models, self.weights, self.mix, self.n_items = models, weights, mix, models[0].n_items
        self.device = device

    def score_torch(self, prefixes: np.ndarray) -> torch.Tensor:
        dists = [
            _as_mix(_distribution(m, prefixes, self.device), self.mix) if w > 0 else None
            for m, w in zip(self.models, self.weights)
        ]
        return _mix(self.weights, dists)


def simplex_grid(n: int, step: float) -> list[tuple[float, ...]]:
    """All weight vectors of n non-negative multiples of ``step`` summing to 1."""
    units = int(round(1 / step))
    return [
        tuple(c / units for c in combo)
        for combo in itertools.product(range(units + 1), repeat=n)
        if sum(combo) == units
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument(
        "--models",
        nargs="+",
        required=True,
        help="saved model folders (count models are refitted on 90%%); 'a+b+c' averages several into one member",
    )
    ap.add_argument("--step", type=float, default=0.1, help="weight grid step over the simplex")
    ap.add_argument("--max-valid", type=int, default=15000, help="validation examples (0: all)")
    ap.add_argument("--device", default="cpu", help="torch device for scoring and ranking (cpu, cuda, cuda:N, auto)")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--mix", choices=("linear", "log", "both"), default="linear", help="blend probabilities or log-probabilities"
    )
    ap.add_argument("--no-test", action="store_true", help="validation grid only: print the choice, score no test")
    ap.add_argument(
        "--weights",
        help="comma-separated weights, one per model, chosen on validation by an earlier run: no grid, test only",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:  # before anything loads: a count-model blend first touches the device after refitting every member
        device = resolve_device(args.device)
    except ConfigError as exc:
        raise SystemExit(f"--device: {exc}") from None
    data = load_srgnn_folder(args.data)
    full = [_load_member(p, device) for p in args.models]
    for spec, member in zip(args.models, full):
        if member.n_items != data.n_items:
            raise SystemExit(
                f"{spec} scores {member.n_items} items, {args.data} has {data.n_items}: "
                "every member needs the data's catalogue"
            )
    if args.weights:
        return _test_only(args, data, full, device)
    train, valid_sessions = split_validation(data.train_sessions)
    valid = augment(valid_sessions)
    if 0 < args.max_valid < len(valid):
        valid = valid.subset(np.sort(np.random.default_rng(0).choice(len(valid), args.max_valid, replace=False)))
    on_90 = [_refit_on_90(m, train, data.n_items) for m in full]
    mixes = ("linear", "log") if args.mix == "both" else (args.mix,)
    grid = [(mix, w) for mix in mixes for w in simplex_grid(len(full), args.step)]
    ranks = np.zeros((len(grid), len(valid)), dtype=np.int64)
    with torch.no_grad():
        for lo in tqdm(range(0, len(valid), args.batch_size), desc="validation", unit="batch"):
            idx = np.arange(lo, min(lo + args.batch_size, len(valid)))
            prefixes, targets = valid.batch(idx)
            dists = [_distribution(m, prefixes, device) for m in on_90]  # each (B, N+1)
            by_mix = {mix: [_as_mix(d, mix) for d in dists] for mix in mixes}
            t = torch.from_numpy(targets).to(device)
            for g, (mix, weights) in enumerate(grid):
                ranks[g, idx] = pessimistic_ranks(_mix(weights, by_mix[mix]), t).cpu().numpy()
    rows = []
    for g, (mix, weights) in enumerate(grid):
        m = rank_metrics(ranks[g], (20,))
        rows.append({"mix": mix, "weights": weights, "valid_HR@20": m["HR@20"], "valid_MRR@20": m["MRR@20"]})
    best = max(rows, key=lambda r: (r["valid_MRR@20"], r["valid_HR@20"]))
    print(json.dumps({"best_on_validation": best}), flush=True)
    if args.no_test:
        Path(args.out).write_text(json.dumps({"models": args.models, "validation": rows, "best": best}) + "\n")
        return 0
    blend = Blend(full, best["weights"], best["mix"], device)
    r = evaluate(blend, data.test, ks=(5, 10, 20), item_counts=data.item_counts(), progress=True)
    result = {
        "model": "blend",
        "models": args.models,
        "mix": best["mix"],
        "weights": best["weights"],
        "validation": rows,
        "examples": r.n_examples,
        "eval_seconds": round(r.seconds, 2),
        "threads": torch.get_num_threads(),
        "metrics": r.metrics,
    }
    Path(args.out).write_text(json.dumps(result) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "validation"}))
    return 0


def _test_only(args: argparse.Namespace, data, full, device: torch.device = _CPU) -> int:
    weights = tuple(float(w) for w in args.weights.split(","))
    if len(weights) != len(full) or min(weights) < 0 or abs(sum(weights) - 1.0) > 1e-6:
        raise SystemExit(f"--weights needs {len(full)} non-negative weights summing to 1, got {args.weights}")
    if args.mix == "both":
        raise SystemExit("--weights needs the one --mix the validation grid chose (linear or log)")
    mix = args.mix
    r = evaluate(
        Blend(full, weights, mix, device),
        data.test,
        ks=(5, 10, 20),
        item_counts=data.item_counts(),
        progress=True,
    )
    result = {
        "model": "blend",
        "models": args.models,
        "mix": mix,
        "weights": weights,
        "weights_from": "--weights (chosen on validation by an earlier run)",
        "examples": r.n_examples,
        "eval_seconds": round(r.seconds, 2),
        "threads": torch.get_num_threads(),
        "metrics": r.metrics,
    }
    Path(args.out).write_text(json.dumps(result) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
