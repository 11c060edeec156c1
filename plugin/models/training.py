"""Generic mini-batch trainer for the neural session models (STAMP, GRU4Rec, SR-GNN), and nothing else.

The model supplies its network and a loss on a batch of training units (prefix examples for STAMP/SR-GNN,
whole sessions for GRU4Rec); this module shuffles, batches, runs Adam (or the model's own `EpochRunner`: GRU4Rec's
official session-parallel scheme), decays the learning rate, evaluates
the validation split after every epoch (`plugin.models.evaluation`), keeps the best epoch's weights (early stopping on
``select_metric``, MRR@20 by default, ties broken by HR@20) and restores them at the end. The test set never
comes near it.

Precision: ``bf16=None`` (the default) asks `plugin.models.precision` whether this CPU runs bfloat16 natively and uses
bf16 autocast (and the bf16 evaluation screen) only then; float32 elsewhere. The choice and its reason go in the
report and the log.

Loud failures: the first validation is compared with POP (most-clicked training items) on the same examples; a
model not clearly above it (by 10% on ``select_metric``) has learned nothing useful, and the report says so (``warnings``, ``first_valid_beats_pop``).
A ``time_budget_s`` that ends the first epoch early says so too (``full_epochs`` 0), and warns as soon as the
pace of the first batches shows the epoch will not fit.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError
from .data import Examples
from .device import resolve_device
from .metrics import popularity_ranks, rank_metrics
from .precision import Precision, resolve_precision

__all__ = [
    "TrainConfig",
    "EpochRecord",
    "TrainReport",
    "Trainable",
    "EpochRunner",
    "batch_order",
    "fit_neural",
    "seed_everything",
    "train_step",
]

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
    lr_decay_first: int | None = None  # epochs at the first lr before the first decay (None: lr_decay_every)
    patience: int = 2  # epochs without validation improvement before stopping
    select_metric: str = "MRR@20"
    max_len: int | None = None  # keep only the last max_len clicks of each training unit
    max_valid: int | None = 30000  # validate on a fixed random subset of this many examples (None: all)
    max_epoch_units: int | None = None  # train each epoch on a random subset (time-boxed runs)
    time_budget_s: float | None = None  # stop once this wall time is spent (mid-epoch: validate the partial epoch)
    seed: int = 0
    clip_grad_norm: float | None = None
    bf16: bool | None = None  # bfloat16 autocast for the training matmuls; None: only where the CPU has it natively
    bucket: int = 64  # mini-batches of similar-length units drawn from shuffled pools of bucket x batch_size (0: off)
    progress: bool = True
    device: str = "cpu"  # where the net and its batches live while training (`plugin.models.device.resolve_device`)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.patience < 0:
            raise ConfigError("TrainConfig needs epochs >= 1, batch_size >= 1, lr > 0 and patience >= 0")
        if self.bucket < 0:
            raise ConfigError("TrainConfig.bucket must be >= 0")
        if self.lr_decay_every < 1 or (self.lr_decay_first is not None and self.lr_decay_first < 1):
            raise ConfigError("TrainConfig needs lr_decay_every >= 1 and lr_decay_first >= 1 (or None)")
        if self.select_metric not in _SELECT:
            raise ConfigError(
                f"select_metric={self.select_metric!r} is not valid. Valid metrics are: {', '.join(_SELECT)}"
            )


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float
    train_seconds: float
    valid_seconds: float
    units: int
    valid: dict[str, float] = field(default_factory=dict)
    complete: bool = True  # False: the time budget cut this epoch short


@dataclass(frozen=True)
class TrainReport:
    epochs: tuple[EpochRecord, ...]
    best_epoch: int  # 1-based; 0 when nothing was validated
    stopped: str  # "epochs", "patience", "time budget" or "interrupted" or "on_epoch"
    precision: dict[str, Any] = field(default_factory=dict)  # `Precision.to_dict()`
    full_epochs: int = 0  # epochs that saw every training unit (max_epoch_units counts as full)
    pop_valid: dict[str, float] = field(default_factory=dict)  # POP on the same validation examples
    first_valid_beats_pop: bool | None = None  # None: no validation or no POP counts
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_epoch": self.best_epoch,
            "stopped": self.stopped,
            "precision": self.precision,
            "full_epochs": self.full_epochs,
            "pop_valid": self.pop_valid,
            "first_valid_beats_pop": self.first_valid_beats_pop,
            "warnings": list(self.warnings),
            "epochs": [r.__dict__ for r in self.epochs],
        }


class Trainable(Protocol):
    @property
    def net(self) -> nn.Module: ...  # read-only here, so a model's narrower net type satisfies it

    def batch_loss(self, units: Examples, idx: np.ndarray, max_len: int | None) -> torch.Tensor: ...


class EpochRunner(Protocol):
    """A training scheme that is not "shuffle the units into mini-batches" (GRU4Rec's session-parallel one): it
    names its optimiser and runs one epoch over the units itself. `fit_neural` keeps everything around an epoch
    (validation, early stopping, the learning-rate schedule, the POP check, the time budget)."""

    def optimizer(self, config: TrainConfig) -> torch.optim.Optimizer: ...

    def run_epoch(
        self, opt: torch.optim.Optimizer, units: Examples, config: TrainConfig, out_of_time: Callable[[], bool]
    ) -> tuple[float, int, bool, int]:
        """Train one epoch: (summed loss, what it trained, whether `out_of_time` cut it short, what it planned to),
        the counts in the runner's own unit (the epoch record's ``units``; clicks for session-parallel GRU4Rec)."""
        ...


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def lr_schedule(opt: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Step decay, stepped once after each epoch: lr x ``lr_decay`` every ``lr_decay_every`` epochs, the first
    decay after ``lr_decay_first`` epochs. SR-GNN's official code steps its StepLR(3) at the *start* of each epoch,
    so its first decay comes after 2 epochs, then every 3 (``lr_decay_first=2``)."""
    first = config.lr_decay_first
    if first is None or first == config.lr_decay_every:
        return torch.optim.lr_scheduler.StepLR(opt, step_size=config.lr_decay_every, gamma=config.lr_decay)
    every, gamma = config.lr_decay_every, config.lr_decay

    def factor(done: int) -> float:  # done = epochs finished
        return 1.0 if done < first else gamma ** (1 + (done - first) // every)

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


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
    bf16 = config.bf16 if config.bf16 is not None else resolve_precision("auto").bf16
    with torch.autocast(torch.device(config.device).type, dtype=torch.bfloat16, enabled=bf16):
        loss = model.batch_loss(units, idx, config.max_len)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if config.clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.net.parameters(), config.clip_grad_norm)
    opt.step()
    return float(loss.detach())


_PACE_CHECK_BATCHES = 20  # batches timed before predicting whether epoch 1 fits the time budget
# "above POP" means clearly above: STAMP at lr 1e-3 ended its first YOOCHOOSE-1/256 epoch at MRR@20 5.31 against
# POP's 5.23 (HR@20 19.42 vs 19.45), having learned popularity and nothing else
_POP_MARGIN = 1.1


def _pop_valid(counts: np.ndarray | None, valid: Examples | None) -> dict[str, float]:
    """POP's HR/MRR@10/20 on the validation examples (empty without counts or examples)."""
    if counts is None or valid is None or not len(valid):
        return {}
    return rank_metrics(popularity_ranks(counts, valid.targets), ks=(10, 20))


def fit_neural(
    model: Trainable,
    units: Examples,
    valid: Examples | None,
    config: TrainConfig,
    warm_start: bool = False,
    pop_counts: np.ndarray | None = None,
    on_epoch: Callable[[EpochRecord], bool] | None = None,
    runner: EpochRunner | None = None,
) -> TrainReport:
    """Train ``model.net`` in place. With ``warm_start`` the current weights are validated first and stay the
    selected state unless a new epoch beats them (continuing a time-boxed run). ``pop_counts`` ((N+1,) training
    clicks per item) lets the first validation be checked against POP. ``on_epoch`` sees each epoch's record
    (weights as after that epoch) and stops training by returning True (full-data retraining uses it to snapshot
    every epoch while the validation run that picks one is still going). ``runner``: the model's own optimiser
    and epoch (`EpochRunner`) instead of Adam over shuffled mini-batches."""
    from .evaluation import evaluate  # late: evaluation imports the models package

    precision: Precision = resolve_precision("auto" if config.bf16 is None else ("bf16" if config.bf16 else "fp32"))
    config = replace(config, bf16=precision.bf16)  # train_step sees the decision, not "auto"
    logger.info("precision %s: %s", precision.name, precision.reason)
    warnings: list[str] = []

    def warn(message: str) -> None:
        logger.warning(message)
        warnings.append(message)

    if precision.bf16 and not precision.native:
        warn(
            f"bf16 forced on a CPU without native bf16 ({precision.reason}): expect steps several times slower "
            "than --precision fp32"
        )

    def validate() -> dict[str, float]:
        r = evaluate(
            model,  # type: ignore[arg-type]
            valid,  # type: ignore[arg-type]
            ks=(10, 20),
            batch_size=1024,
            beyond_accuracy=False,
            screen=precision.bf16,
        )
        return r.metrics

    rng = seed_everything(config.seed)
    net = model.net.to(resolve_device(config.device))  # in place: the model's batches follow its parameters
    opt: torch.optim.Optimizer
    if runner is not None:
        opt = runner.optimizer(config)
    else:
        try:  # the fused kernel is one pass over the (large) item table instead of several
            opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
        except (RuntimeError, TypeError):
            opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = lr_schedule(opt, config)
    if valid is not None and config.max_valid is not None and len(valid) > config.max_valid:
        valid = valid.subset(np.sort(rng.choice(len(valid), config.max_valid, replace=False)))
    pop = _pop_valid(pop_counts, valid)
    records: list[EpochRecord] = []
    best_key: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, bad, stopped, full_epochs = 0, 0, "epochs", 0
    beats_pop: bool | None = None
    if warm_start and valid is not None and len(valid):
        net.eval()
        m0 = validate()
        best_key, best_state = (m0[config.select_metric], m0["HR@20"]), copy.deepcopy(net.state_dict())
        records.append(EpochRecord(0, 0.0, 0.0, 0.0, 0, m0))
        logger.info("warm start: valid %s", m0)
    start = time.perf_counter()

    def out_of_budget() -> bool:
        return config.time_budget_s is not None and time.perf_counter() - start > config.time_budget_s

    def minibatch_epoch(epoch: int) -> tuple[float, int, bool, int]:
        """Adam over shuffled mini-batches of units: (summed loss, units, cut by the budget, units planned)."""
        batches = batch_order(units.lengths, config.batch_size, rng, config.bucket)
        if config.max_epoch_units is not None:
            batches = batches[: math.ceil(config.max_epoch_units / config.batch_size)]
        total, count = 0.0, 0
        bar = tqdm(range(len(batches)), disable=not config.progress, desc=f"epoch {epoch}", unit="batch")
        out_of_time = False
        for b in bar:
            elapsed = time.perf_counter() - start
            if out_of_budget():
                out_of_time = True  # validate what we have; the report says the epoch was partial
                break
            if (
                epoch == 1
                and b == _PACE_CHECK_BATCHES
                and config.time_budget_s is not None
                and elapsed / b * len(batches) > config.time_budget_s
            ):
                warn(
                    f"at {elapsed / b:.2f} s a batch, epoch 1 ({len(batches)} batches) needs about "
                    f"{elapsed / b * len(batches):.0f} s, more than the time budget of "
                    f"{config.time_budget_s:.0f} s: training will stop inside the first epoch "
                    f"(precision {precision.name}: {precision.reason})"
                )
            idx = batches[b]
            loss = train_step(model, opt, units, idx, config)
            total += loss * idx.size
            count += idx.size
            if b % 50 == 0:
                bar.set_postfix(loss=f"{total / count:.4f}")
        return total, count, out_of_time, sum(x.size for x in batches)

    try:  # Ctrl-C / SIGTERM (the CLI turns it into KeyboardInterrupt): keep the best epoch so far
        for epoch in range(1, config.epochs + 1):
            net.train()
            t0 = time.perf_counter()
            if runner is None:
                total, count, out_of_time, planned = minibatch_epoch(epoch)
            else:
                total, count, out_of_time, planned = runner.run_epoch(opt, units, config, out_of_budget)
            sched.step()
            train_s = time.perf_counter() - t0
            if not out_of_time:
                full_epochs += 1
            elif full_epochs == 0:
                warn(
                    f"the time budget ({config.time_budget_s:.0f} s) ended epoch 1 after {count} of "
                    f"{planned} training units: no full epoch was trained, and the "
                    "validation below is of a partial epoch"
                )
            metrics: dict[str, float] = {}
            valid_s = 0.0
            if valid is not None and len(valid):
                net.eval()
                v0 = time.perf_counter()
                metrics = validate()
                valid_s = time.perf_counter() - v0
            rec = EpochRecord(epoch, total / max(count, 1), train_s, valid_s, int(count), metrics, not out_of_time)
            records.append(rec)
            logger.info("epoch %d: loss %.4f, %.0f s train, valid %s", epoch, rec.loss, train_s, metrics)
            if config.progress and metrics:  # beside the bars, at any log level: a long run shows where it stands
                tqdm.write(
                    f"epoch {epoch}: loss {rec.loss:.4f}, {train_s:.0f} s; validation HR@20 "
                    f"{100 * metrics['HR@20']:.2f}, MRR@20 {100 * metrics['MRR@20']:.2f}"
                )
            if metrics and pop and beats_pop is None:
                beats_pop = metrics[config.select_metric] > _POP_MARGIN * pop[config.select_metric]
                if not beats_pop:
                    warn(
                        f"NOT LEARNING: the first validation ({config.select_metric} "
                        f"{metrics[config.select_metric]:.4f}, loss {rec.loss:.3f}) is not clearly above POP "
                        f"({pop[config.select_metric]:.4f}, x{_POP_MARGIN} needed) on the same examples; check lr "
                        f"({config.lr:g}), the time budget and the data"
                    )
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
    return TrainReport(
        epochs=tuple(records),
        best_epoch=best_epoch,
        stopped=stopped,
        precision=precision.to_dict(),
        full_epochs=full_epochs,
        pop_valid=pop,
        first_valid_beats_pop=beats_pop,
        warnings=tuple(warnings),
    )
