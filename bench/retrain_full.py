"""Second half of the papers' protocol: retrain a neural model on the *whole* training split for the number of
epochs that a validation run picked, then evaluate the test split once.

The validation run is the ordinary ``python -m plugin train`` (first 90% of the training sessions, best epoch on
the last 10%), writing ``train_report.json`` into its ``--out`` folder. This script takes the same ``train``
arguments plus ``--select-from VALID_OUT``; it may run *beside* the validation run (two jobs on one GPU): it keeps
a copy of the weights after every epoch, stops as soon as the validation run has finished and the chosen epoch is
reached, and evaluates only that epoch's weights on the test split. The learning-rate schedule (StepLR) does not
depend on the epoch count, so epoch k of this run is what a k-epoch run would give.

    python bench/retrain_full.py --model srgnn --data ../shared/data/diginetica_srgnn --out runs/g/srgnn_full \
        --select-from runs/g/srgnn_valid --json-out runs/g/srgnn_full.json --device cuda --batch-size 100 \
        --lr 1e-3 --weight-decay 1e-5 --lr-decay 0.1 --lr-decay-every 3 --epochs 12 --patience 2

Or, when a validation run made earlier already chose the epoch count (its ``train_report.json`` says which, and
BENCHMARKS.md records it), ``--chosen-epoch K`` instead of ``--select-from``: train on the whole training split for
K epochs and evaluate that model on test once.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.errors import ConfigError  # noqa: E402
from plugin.models import get_model  # noqa: E402
from plugin.models._neural import NeuralModel  # noqa: E402
from plugin.models.cli import load_data, parse_options, register, train_config  # noqa: E402
from plugin.models.device import resolve_device  # noqa: E402
from plugin.models.evaluation import evaluate  # noqa: E402
from plugin.models.precision import resolve_precision  # noqa: E402
from plugin.models.training import EpochRecord  # noqa: E402

logger = logging.getLogger("retrain_full")


def _chosen_epoch(valid_out: Path) -> int | None:
    """The validation run's selected epoch, once its report is written (None while it still runs)."""
    report = valid_out / "train_report.json"
    if not report.is_file():
        return None
    return int(json.loads(report.read_text())["report"]["best_epoch"])


def _precision(device: torch.device, bf16: bool | None) -> str:
    """What the run trained in, resolved as training resolves it (``bf16=None``: this CPU's native support)."""
    if device.type != "cuda":
        p = resolve_precision("auto" if bf16 is None else ("bf16" if bf16 else "fp32"))
        return f"{'bfloat16 autocast' if p.bf16 else 'float32'} ({p.reason})"
    return (
        f"float32 (TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, TF32 cuDNN {torch.backends.cudnn.allow_tf32})"
    )


def main(argv: list[str] | None = None) -> int:
    own = argparse.ArgumentParser(
        prog="retrain_full.py",
        description=__doc__ + "\nEvery other argument is `python -m plugin train`'s.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chosen_by = own.add_mutually_exclusive_group(required=True)
    chosen_by.add_argument("--select-from", help="--out folder of the validation run")
    chosen_by.add_argument(
        "--chosen-epoch", type=int, help="the epoch count an earlier validation run chose (instead of --select-from)"
    )
    own.add_argument("--json-out", required=True, help="where to write this run's result (JSON)")
    own.add_argument("--wait", type=float, default=3600.0, help="seconds to wait for the validation run's report")
    mine, rest = own.parse_known_args(argv)
    train_parser = argparse.ArgumentParser(prog="retrain_full.py")
    register(train_parser.add_subparsers(dest="command", required=True))
    args = train_parser.parse_args(["train", *rest])
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s full:{Path(args.out).name} %(message)s")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_data(args.data)
    model = get_model(args.model, **parse_options(args.option))
    if not isinstance(model, NeuralModel):
        raise ConfigError(f"{args.model} has no epochs to retrain; only the neural models do")
    cfg = train_config(args, device, type(model))
    keys = data.item_keys if data.item_keys is not None else tuple(str(i) for i in range(1, data.n_items + 1))
    if mine.chosen_epoch is not None and mine.chosen_epoch < 1:
        raise ConfigError(f"--chosen-epoch must be at least 1, got {mine.chosen_epoch}")

    def chosen_epoch() -> int | None:
        return mine.chosen_epoch if mine.chosen_epoch is not None else _chosen_epoch(Path(mine.select_from))

    n_units = len(model.training_units(data.train_sessions))
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch(rec: EpochRecord) -> bool:
        if rec.complete:  # not cut short by a time budget (a session-parallel epoch counts clicks, not units)
            snapshots[rec.epoch] = {k: v.detach().to("cpu", copy=True) for k, v in model.net.state_dict().items()}
        chosen = chosen_epoch()
        return chosen is not None and rec.epoch >= chosen

    t0 = time.perf_counter()
    report = model.fit(data.train_sessions, data.n_items, None, item_keys=keys, train_config=cfg, on_epoch=on_epoch)
    train_seconds = time.perf_counter() - t0
    deadline = time.monotonic() + mine.wait
    chosen = chosen_epoch()
    while chosen is None and time.monotonic() < deadline:
        time.sleep(5.0)
        chosen = chosen_epoch()
    result: dict[str, Any] = {
        "stage": "full training split, epoch chosen on validation"
        + ("" if mine.chosen_epoch is None else " (by an earlier run: --chosen-epoch)"),
        "model": model.name,
        "data": str(args.data),
        "argv": sys.argv,
        "device": str(device),
        "precision": _precision(device, cfg.bf16),
        "units_per_epoch": n_units,
        "train_seconds": round(train_seconds, 1),
        "chosen_epoch": chosen,
        "epochs": report["epochs"],
        "stopped": report["stopped"],
        "test": None,
    }
    if chosen is None or chosen not in snapshots:
        result["why_no_test"] = (
            "the validation run wrote no report in time"
            if chosen is None
            else f"epoch {chosen} was not completed on the full split"
        )
    else:
        model.net.load_state_dict(snapshots[chosen])
        model.net.eval()
        model.save(args.out)
        r = evaluate(model, data.test, ks=(5, 10, 20), batch_size=1024, item_counts=data.item_counts())
        result["test"] = {"examples": r.n_examples, "eval_seconds": round(r.seconds, 2), "metrics": r.metrics}
    Path(mine.json_out).write_text(json.dumps(result, indent=1))
    logger.info(
        "chosen epoch %s, test %s",
        chosen,
        result["test"]
        and {k: round(100 * v, 2) for k, v in result["test"]["metrics"].items() if k in ("HR@20", "MRR@20")},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
