"""Batched full-catalogue evaluation of a `SessionModel` on prefix examples (SR-GNN protocol).

Scores every item of the id space for each example, ranks the target with ties counted against it
(`plugin.metrics.pessimistic_ranks`), and averages HR/MRR/NDCG@k over examples. Examples are scored in
batches sorted by prefix length (less padding for the neural models); rank counting and top-k run in torch.

Speed: the metrics only need ranks up to max(k), so by default the rank comes from one ``torch.topk`` per
batch (which the coverage/popularity lists need anyway): a target scoring strictly above the k-th value has
rank = #top-k scores >= its score; one strictly below has rank > k and is recorded as k+1; an exact tie with
the k-th value falls back to a full count. ``exact_ranks=True`` counts over the whole catalogue instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import Examples
from .errors import ConfigError
from .metrics import DEFAULT_KS, coverage, pessimistic_ranks, popularity_bias, rank_metrics
from .models.base import SessionModel

__all__ = ["EvaluationResult", "evaluate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationResult:
    metrics: dict[str, float]
    ranks: np.ndarray = field(repr=False)  # (n,) 1-based, example order; max(k)+1 means "beyond max(k)" unless exact
    n_examples: int = 0
    seconds: float = 0.0


def _scores(model: SessionModel, prefixes: np.ndarray) -> torch.Tensor:
    fast = getattr(model, "score_torch", None)
    if fast is not None:
        return fast(prefixes)  # (B, N+1)
    return torch.from_numpy(np.ascontiguousarray(model.score(prefixes)))  # (B, N+1)


def _ranks_from_top(scores: torch.Tensor, targets: torch.Tensor, top_values: torch.Tensor, kmax: int) -> torch.Tensor:
    ts = scores.gather(1, targets.view(-1, 1))  # (B, 1)
    kth = top_values[:, -1:]  # (B, 1)
    ranks = (top_values >= ts).sum(1)  # (B,) exact when ts > kth
    ranks = torch.where(ts.squeeze(1) < kth.squeeze(1), torch.full_like(ranks, kmax + 1), ranks)
    tied = (ts == kth).squeeze(1).nonzero().squeeze(1)  # (m,) rows needing a full count
    if tied.numel():
        ranks[tied] = pessimistic_ranks(scores[tied], targets[tied]).clamp(max=kmax + 1)
    return ranks


@torch.no_grad()
def evaluate(
    model: SessionModel, examples: Examples, ks: Iterable[int] = DEFAULT_KS, batch_size: int = 1024,
    item_counts: np.ndarray | None = None, max_len: int | None = None, progress: bool = False,
    beyond_accuracy: bool = True, exact_ranks: bool = False,
) -> EvaluationResult:
    """Rank every target among all n_items items. ``item_counts`` (training clicks, (n_items+1,)) enables
    popularity bias; ``beyond_accuracy`` adds coverage@k and popularity@k from the top-k lists."""
    ks = tuple(sorted(set(ks)))
    if not ks:
        raise ConfigError("give at least one cut-off k")
    n = len(examples)
    if n == 0:
        raise ConfigError("no examples to evaluate")
    if batch_size < 1:
        raise ConfigError("batch_size must be >= 1")
    kmax = max(ks)
    start = time.perf_counter()
    order = np.argsort(examples.lengths, kind="stable")  # (n,)
    ranks = np.empty(n, dtype=np.int64)
    top = np.empty((n, kmax), dtype=np.int64) if beyond_accuracy else None
    for lo in tqdm(range(0, n, batch_size), disable=not progress, desc="evaluate", unit="batch"):
        idx = order[lo : lo + batch_size]
        prefixes, targets = examples.batch(idx, max_len)
        scores = _scores(model, prefixes)  # (B, N+1)
        t = torch.from_numpy(targets)  # (B,)
        best = torch.topk(scores, kmax, dim=1, sorted=True)  # values/indices (B, kmax)
        if exact_ranks:
            ranks[idx] = pessimistic_ranks(scores, t).numpy()
        else:
            ranks[idx] = _ranks_from_top(scores, t, best.values, kmax).numpy()
        if top is not None:
            top[idx] = best.indices.numpy()
    metrics = rank_metrics(ranks, ks)
    if top is not None:
        for k in ks:
            metrics[f"coverage@{k}"] = coverage(top[:, :k], model.n_items)
            if item_counts is not None:
                metrics[f"popularity@{k}"] = popularity_bias(top[:, :k], np.asarray(item_counts))
    seconds = time.perf_counter() - start
    logger.info("evaluated %d examples in %.1f s: %s", n, seconds, metrics)
    return EvaluationResult(metrics=metrics, ranks=ranks, n_examples=n, seconds=seconds)
