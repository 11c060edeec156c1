"""``train`` and ``evaluate`` subcommands for the session models.

    python -m plugin train --model stamp --data ../shared/data/diginetica_srgnn --out runs/stamp_digi --epochs 5
    python -m plugin evaluate --model runs/stamp_digi --data ../shared/data/diginetica_srgnn --json

``register(subparsers)`` adds both to an ``argparse`` sub-parser set; each sets ``func`` (args -> exit code).
``python -m plugin.models.cli ...`` runs them standalone.

``--data`` is an SR-GNN-format folder, a raw click CSV (DIGINETICA ``;`` format, or ``session,item,time``; both
run through the SR-GNN preprocessing) or a plugin JSONL event log. Neural models train on the first 90% of the
training sessions and pick their epoch on the last 10% (validation); the test split is only read by
``evaluate``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, PluginError
from . import MODEL_NAMES, get_model, load_model
from ._neural import NeuralModel
from .data import (
    SessionData,
    augment,
    load_srgnn_folder,
    read_click_csv,
    read_diginetica_clicks,
    read_jsonl_events,
    split_validation,
    srgnn_preprocess,
)
from .device import DEVICE_CHOICES, resolve_device
from .precision import PRECISIONS
from .training import TrainConfig

__all__ = ["register", "main", "load_data", "parse_options", "train_config"]

logger = logging.getLogger(__name__)

# train options whose default comes from the model (its paper), not from the parser
_MODEL_DEFAULTED = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "lr_decay",
    "lr_decay_every",
    "lr_decay_first",
    "patience",
)


def load_data(path: str | Path) -> SessionData:
    """An SR-GNN folder, a raw click CSV (SR-GNN preprocessing) or a JSONL event log, by what the path is."""
    p = Path(path)
    if p.is_dir():
        return load_srgnn_folder(p)
    if p.suffix == ".jsonl":
        return read_jsonl_events(p)
    if p.suffix in (".csv", ".tsv", ".dat"):
        header = p.open().readline()
        if "timeframe" in header and ";" in header:
            return srgnn_preprocess(read_diginetica_clicks(p), test_days=7, name=p.stem)
        return srgnn_preprocess(read_click_csv(p), test_days=1, name=p.stem)
    raise ConfigError(f"--data {path}: expected an SR-GNN folder, a .csv click log or a .jsonl event log")


def parse_options(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--option {item!r}: expected key=value")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _interrupt_on_sigterm() -> None:
    """SIGTERM stops training like Ctrl-C: the best validated epoch is kept and saved."""
    import signal

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass


def train_config(args: argparse.Namespace, device: torch.device, model_cls: type[NeuralModel]) -> TrainConfig:
    """The `TrainConfig` that ``train``'s arguments describe for a model class, on ``device``: flags not given
    take the model's published defaults (`NeuralModel.train_defaults`), then `TrainConfig`'s."""
    precision = "fp32" if args.no_bf16 else args.precision
    given = {k: getattr(args, k) for k in _MODEL_DEFAULTED if getattr(args, k) is not None}
    # bf16 autocast is a CPU speed measure; a GPU trains these small nets in float32 at no cost
    bf16 = False if device.type != "cpu" else (None if precision == "auto" else precision == "bf16")
    return model_cls.default_train_config(
        **given,
        max_len=args.max_len,
        max_valid=args.max_valid,
        max_epoch_units=args.max_epoch_units,
        time_budget_s=args.time_budget,
        seed=args.seed,
        bucket=args.bucket,
        progress=not args.quiet,
        bf16=bf16,
        device=str(device),
    )


def _train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)  # before loading data: a wrong --device fails at once
    _interrupt_on_sigterm()
    data = load_data(args.data)
    keys = data.item_keys if data.item_keys is not None else tuple(str(i) for i in range(1, data.n_items + 1))
    fit_kwargs: dict[str, Any] = {"item_keys": keys}
    if args.init:
        model = load_model(args.init)
        if model.name != args.model or model.n_items != data.n_items:
            raise ConfigError(
                f"--init {args.init} holds a {model.name} over {model.n_items} items, not "
                f"{args.model} over {data.n_items}"
            )
        fit_kwargs["warm_start"] = True
    else:
        model = get_model(args.model, **parse_options(args.option))
    t0 = time.perf_counter()
    if isinstance(model, NeuralModel):
        train, valid_sessions = split_validation(data.train_sessions, args.valid_fraction)
        fit_kwargs["train_config"] = train_config(args, device, type(model))
        if args.content:
            fit_kwargs["content"] = np.load(args.content, allow_pickle=False)
        report = model.fit(train, data.n_items, augment(valid_sessions), **fit_kwargs)
    else:
        report = model.fit(data.train_sessions, data.n_items, **fit_kwargs)
    seconds = time.perf_counter() - t0
    out = model.save(args.out)
    summary = {
        "model": model.name,
        "data": str(args.data),
        "n_items": data.n_items,
        "seconds": seconds,
        "argv": sys.argv,
        "report": report,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if "train_config" in fit_kwargs:
        summary["train_config"] = asdict(fit_kwargs["train_config"])
    (out / "train_report.json").write_text(json.dumps(summary, indent=1))
    sys.stdout.write(f"saved {model.name} to {out} ({seconds:.0f} s)\n")
    if isinstance(report.get("precision"), dict):
        sys.stdout.write(f"precision {report['precision']['name']}: {report['precision']['reason']}\n")
    for warning in report.get("warnings", ()):
        sys.stderr.write(f"WARNING: {warning}\n")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = load_model(args.model)
    if isinstance(model, NeuralModel):
        model.to(device)  # count models always score on the CPU
    data = load_data(args.data)
    if data.n_items != model.n_items:
        raise ConfigError(f"the model knows {model.n_items} items but {args.data} has {data.n_items}")
    r = evaluate(
        model,
        data.test,
        ks=(5, 10, 20),
        batch_size=args.batch_size,
        item_counts=data.item_counts(),
        progress=not args.quiet,
        exact_ranks=args.ranks_out is not None,
    )
    if args.ranks_out:
        np.save(args.ranks_out, r.ranks, allow_pickle=False)
    result = {
        "model": model.name,
        "model_dir": str(args.model),
        "data": str(args.data),
        "examples": r.n_examples,
        "eval_seconds": round(r.seconds, 2),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "metrics": r.metrics,
    }
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        sys.stdout.write(f"{model.name} on {args.data}: {r.n_examples} examples in {r.seconds:.1f} s\n")
        for k in (5, 10, 20):
            sys.stdout.write(
                f"  @{k:<3} HR {100 * r.metrics[f'HR@{k}']:6.2f}  MRR {100 * r.metrics[f'MRR@{k}']:6.2f}  "
                f"NDCG {100 * r.metrics[f'NDCG@{k}']:6.2f}  coverage {100 * r.metrics[f'coverage@{k}']:6.2f}  "
                f"popularity {100 * r.metrics[f'popularity@{k}']:6.2f}\n"
            )
    return 0


def _guard(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except PluginError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2

    return run


_DEVICE_HELP = f"torch device for the neural models: {', '.join(DEVICE_CHOICES)} or cuda:N (auto: CUDA if available)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``evaluate``; each parser sets ``func(args) -> int``."""
    t = subparsers.add_parser("train", help="train a session model on a dataset and save it")
    t.add_argument("--model", required=True, help=f"one of: {', '.join(MODEL_NAMES)}")
    t.add_argument("--data", required=True, help="SR-GNN folder, raw click CSV or JSONL event log")
    t.add_argument("--out", required=True, help="folder to write config.json + state.npz")
    t.add_argument("--option", action="append", default=[], help="model option key=value (repeatable)")
    # unset: the model's published defaults (`NeuralModel.train_defaults`), then `TrainConfig`'s
    t.add_argument("--epochs", type=int, default=None, help="default: the model's paper setting")
    t.add_argument("--batch-size", type=int, default=None, help="default: the model's paper setting")
    t.add_argument("--lr", type=float, default=None, help="default: the model's paper setting")
    t.add_argument("--weight-decay", type=float, default=None, help="default: the model's paper setting (L2)")
    t.add_argument("--lr-decay", type=float, default=None, help="lr factor every --lr-decay-every epochs")
    t.add_argument("--lr-decay-every", type=int, default=None)
    t.add_argument("--lr-decay-first", type=int, default=None, help="epochs before the first decay (--lr-decay-every)")
    t.add_argument("--patience", type=int, default=None, help="epochs without improvement before stopping (2)")
    t.add_argument("--max-len", type=int, default=None)
    t.add_argument("--max-valid", type=int, default=30000)
    t.add_argument("--max-epoch-units", type=int, default=None)
    t.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds; once spent, the current epoch stops and is validated (a warning says so when "
        "that is the first epoch)",
    )
    t.add_argument("--valid-fraction", type=float, default=0.1)
    t.add_argument("--init", default=None, help="continue training a saved neural model (its weights and config)")
    t.add_argument("--content", default=None, help="(n_items, c) .npy content matrix for hybrid STAMP")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="bf16 autocast or float32 training; auto: bf16 only where the CPU has it natively",
    )
    t.add_argument("--no-bf16", action="store_true", help="same as --precision fp32")
    t.add_argument(
        "--bucket",
        type=int,
        default=64,
        help="batches of similar-length units from shuffled pools of BUCKET batches (0: plain shuffle)",
    )
    t.add_argument("--device", default="cpu", help=_DEVICE_HELP + " (a GPU trains in float32)")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_guard(_train))
    e = subparsers.add_parser("evaluate", help="evaluate a saved session model on a dataset's test split")
    e.add_argument("--model", required=True, help="folder written by train")
    e.add_argument("--data", required=True)
    e.add_argument("--json", action="store_true")
    e.add_argument("--batch-size", type=int, default=1024)
    e.add_argument("--ranks-out", default=None, help="write exact per-example ranks (.npy)")
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--device", default="cpu", help=_DEVICE_HELP)
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_guard(_evaluate))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m plugin.models.cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
