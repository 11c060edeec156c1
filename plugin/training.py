"""Generic mini-batch trainer for the neural session models (STAMP, GRU4Rec, SR-GNN), and nothing else.

The model supplies its network and a loss on a batch of training units (prefix examples for STAMP/SR-GNN,
whole sessions for GRU4Rec); this module shuffles, batches, runs Adam, decays the learning rate, evaluates
the validation split after every epoch (`plugin.evaluation`), keeps the best epoch's weights (early stopping on
``select_metric``, MRR@20 by default, ties broken by HR@20) and restores them at the end. The test set never
comes near it.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import Examples
from .device import resolve_device
from .errors import ConfigError

__all__ = ["TrainConfig", "EpochRecord", "TrainReport", "Trainable", "batch_order", "fit_neural", "seed_everything",
           "train_step"]

logger = logging.getLogger(__name__)

_SELECT = ("MRR@20", "HR@20", "NDCG@20", "MRR@10", "HR@10")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_decay: float = 1.0  # lr *= lr_decay every lr_decay_every epochs
    lr_decay_every: int = 1
    patience: int = 2  # epochs without validation improvement before stopping
    select_metric: str = "MRR@20"
    max_len: int | None = None  # keep only the last max_len clicks of each training unit
    max_valid: int | None = 30000  # validate on a fixed random subset of this many examples (None: all)
    max_epoch_units: int | None = None  # train each epoch on a random subset (time-boxed runs)
    time_budget_s: float | None = None  # stop once this wall time is spent (mid-epoch: validate the partial epoch)
    seed: int = 0
    clip_grad_norm: float | None = None
    bf16: bool = True  # bfloat16 autocast for the training matmuls (CPU avx512_bf16/AMX: ~2-3x); eval stays fp32
    bucket: int = 64  # mini-batches of similar-length units drawn from shuffled pools of bucket x batch_size (0: off)
    progress: bool = True
    device: str = "cpu"  # where the net and its batches live while training (`plugin.device.resolve_device`)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.patience < 0:
            raise ConfigError("TrainConfig needs epochs >= 1, batch_size >= 1, lr > 0 and patience >= 0")
        if self.bucket < 0:
            raise ConfigError("TrainConfig.bucket must be >= 0")
        if self.select_metric not in _SELECT:
            raise ConfigError(f"select_metric={self.select_metric!r} is not valid. Valid metrics are: {', '.join(_SELECT)}")


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float
    train_seconds: float
    valid_seconds: float
    units: int
    valid: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainReport:
    epochs: tuple[EpochRecord, ...]
    best_epoch: int  # 1-based; 0 when nothing was validated
    stopped: str  # "epochs", "patience", "time budget", "interrupted" or "on_epoch"

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_epoch": self.best_epoch,
            "stopped": self.stopped,
            "epochs": [r.__dict__ for r in self.epochs],
        }


class Trainable(Protocol):
    net: nn.Module

    def batch_loss(self, units: Examples, idx: np.ndarray, max_len: int | None) -> torch.Tensor: ...


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def batch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, bucket: int = 64) -> list[np.ndarray]:
    """One epoch's mini-batches (index arrays), every unit once, in random order.

    With ``bucket`` > 0 the shuffled units are cut into pools of ``bucket * batch_size``, each pool is sorted by
    unit length and cut into mini-batches, and the mini-batches of all pools are shuffled: batches hold units of
    similar length, so the padded (B, L) tensors (and SR-GNN's (B, L, L) graphs) carry little padding, while
    which units meet in a batch stays random.
    """
    order = rng.permutation(lengths.size)
    if bucket <= 0:
        return [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
    pool = bucket * batch_size
    batches: list[np.ndarray] = []
    for lo in range(0, order.size, pool):
        chunk = order[lo : lo + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, chunk.size, batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def train_step(
    model: Trainable, opt: torch.optim.Optimizer, units: Examples, idx: np.ndarray, config: TrainConfig
) -> float:
    """One optimiser step on the units ``idx`` (bf16 autocast per ``config``); returns the batch loss."""
    with torch.autocast(torch.device(config.device).type, dtype=torch.bfloat16, enabled=config.bf16):
        loss = model.batch_loss(units, idx, config.max_len)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if config.clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.net.parameters(), config.clip_grad_norm)
    opt.step()
    return float(loss.detach())


def fit_neural(
    model: Trainable, units: Examples, valid: Examples | None, config: TrainConfig, warm_start: bool = False,
    on_epoch: Callable[[EpochRecord], bool] | None = None,
) -> TrainReport:
    """Train ``model.net`` in place. With ``warm_start`` the current weights are validated first and stay the
    selected state unless a new epoch beats them (continuing a time-boxed run). ``on_epoch`` sees each epoch's
    record (weights as after that epoch) and stops training by returning True (full-data retraining uses it to
    snapshot every epoch while the validation run that picks one is still going)."""
    from .evaluation import evaluate  # late: evaluation imports the models package

    rng = seed_everything(config.seed)
    net = model.net.to(resolve_device(config.device))  # in place: the model's batches follow its parameters
    try:  # the fused kernel is one pass over the (large) item table instead of several
        opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=config.lr_decay_every, gamma=config.lr_decay)
    if valid is not None and config.max_valid is not None and len(valid) > config.max_valid:
        valid = valid.subset(np.sort(rng.choice(len(valid), config.max_valid, replace=False)))
    records: list[EpochRecord] = []
    best_key: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, bad, stopped = 0, 0, "epochs"
    if warm_start and valid is not None and len(valid):
        net.eval()
        m0 = evaluate(model, valid, ks=(10, 20), batch_size=1024, beyond_accuracy=False).metrics  # type: ignore[arg-type]
        best_key, best_state = (m0[config.select_metric], m0["HR@20"]), copy.deepcopy(net.state_dict())
        records.append(EpochRecord(0, 0.0, 0.0, 0.0, 0, m0))
        logger.info("warm start: valid %s", m0)
    start = time.perf_counter()
    try:  # Ctrl-C / SIGTERM (the CLI turns it into KeyboardInterrupt): keep the best epoch so far
        for epoch in range(1, config.epochs + 1):
            net.train()
            batches = batch_order(units.lengths, config.batch_size, rng, config.bucket)
            if config.max_epoch_units is not None:
                batches = batches[: math.ceil(config.max_epoch_units / config.batch_size)]
            t0 = time.perf_counter()
            total, count = 0.0, 0
            bar = tqdm(range(len(batches)), disable=not config.progress, desc=f"epoch {epoch}", unit="batch")
            out_of_time = False
            for b in bar:
                if config.time_budget_s is not None and time.perf_counter() - start > config.time_budget_s:
                    out_of_time = True  # validate what we have; the report says the epoch was partial
                    break
                idx = batches[b]
                loss = train_step(model, opt, units, idx, config)
                total += loss * idx.size
                count += idx.size
                if b % 50 == 0:
                    bar.set_postfix(loss=f"{total / count:.4f}")
            sched.step()
            train_s = time.perf_counter() - t0
            metrics: dict[str, float] = {}
            valid_s = 0.0
            if valid is not None and len(valid):
                net.eval()
                r = evaluate(model, valid, ks=(10, 20), batch_size=1024, beyond_accuracy=False)  # type: ignore[arg-type]
                metrics, valid_s = r.metrics, r.seconds
            rec = EpochRecord(epoch, total / max(count, 1), train_s, valid_s, int(count), metrics)
            records.append(rec)
            logger.info("epoch %d: loss %.4f, %.0f s train, valid %s", epoch, rec.loss, train_s, metrics)
            if on_epoch is not None and on_epoch(rec):
                stopped = "on_epoch"
                break
            if metrics:
                key = (metrics[config.select_metric], metrics["HR@20"])
                if best_key is None or key > best_key:
                    best_key, best_epoch, bad = key, epoch, 0
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    bad += 1
                    if bad > config.patience:
                        stopped = "patience"
                        break
            if out_of_time or (config.time_budget_s is not None and time.perf_counter() - start > config.time_budget_s):
                stopped = "time budget"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
        logger.warning("training interrupted: keeping the best validated epoch (%d)", best_epoch)
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return TrainReport(epochs=tuple(records), best_epoch=best_epoch, stopped=stopped)
