"""Ranking metrics for next-item prediction under the SR-GNN protocol, and nothing else.

Every example has one target; the model ranks it among **all** items of the id space. With ``rank`` 1-based:

    HR@k  = mean(rank <= k)                     (what SR-GNN/STAMP/NARM call "P@20", = Recall@20 here)
    MRR@k = mean(1/rank if rank <= k else 0)
    NDCG@k = mean(1/log2(rank + 1) if rank <= k else 0)   (one relevant item, so IDCG = 1)

averaged over examples, not sessions. ``P@k`` in the results is the same number as ``HR@k`` (the field's
naming), not session-rec's precision (which is HR@k / k).

**Ties are counted pessimistically**: rank = 1 + #(items scoring strictly higher) + #(other items scoring equal).
The official SR-GNN code takes ``torch.topk`` indices, which break ties in an unspecified order; a model whose
target ties with others therefore scores at most what SR-GNN would report, never more. For continuous neural
scores ties do not occur in practice, so the two agree; for count-based baselines (POP, S-POP, kNN) the
pessimistic rule keeps the unscored tail (score 0) from ever counting as a hit.

Besides accuracy: catalogue coverage@k (share of the catalogue that appears in at least one top-k list) and
popularity bias@k (mean training popularity of the recommended items, popularity normalised by the most
popular item: session-rec's "Popularity@k").
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataFormatError, DimensionMismatchError

__all__ = [
    "DEFAULT_KS",
    "pessimistic_ranks",
    "popularity_ranks",
    "rank_metrics",
    "coverage",
    "popularity_bias",
    "RankFile",
    "read_rank_tsv",
]

DEFAULT_KS: tuple[int, ...] = (5, 10, 20)


def pessimistic_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each target among all columns, ties counted against the target.

    scores: (B, N) float, -inf on columns that are not candidates (e.g. padding id 0); targets: (B,) int64.
    """
    if scores.dim() != 2 or targets.dim() != 1 or targets.size(0) != scores.size(0):
        raise DimensionMismatchError(
            f"expected scores (B, N) and targets (B,), got {tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    target_scores = scores.gather(1, targets.view(-1, 1))  # (B, 1)
    # >= counts the target itself once, which supplies the "1 +": rank = #(>) + #(== incl. itself)
    return (scores >= target_scores).sum(1)  # (B,)


def popularity_ranks(counts: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """POP's pessimistic 1-based rank of each target without a (B, N) score matrix.

    counts: (N+1,) training clicks per item, column 0 = padding (never a candidate); targets: (n,) item ids.
    Rank = #(items 1..N with count >= the target's), the same tie rule as `pessimistic_ranks`.
    """
    c = np.asarray(counts, dtype=np.float64)  # (N+1,)
    t = np.asarray(targets, dtype=np.int64)  # (n,)
    if c.ndim != 1 or c.size < 2 or t.ndim != 1:
        raise DimensionMismatchError(f"expected counts (N+1,) and targets (n,), got {c.shape} and {t.shape}")
    if t.size and (int(t.min()) < 1 or int(t.max()) >= c.size):
        raise DimensionMismatchError(f"targets must be item ids in 1..{c.size - 1}")
    ordered = np.sort(c[1:])  # (N,) ascending
    return ordered.size - np.searchsorted(ordered, c[t], side="left")  # (n,)


def rank_metrics(ranks: np.ndarray | torch.Tensor | Sequence[int], ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """HR@k (= P@k of the SR-GNN papers), MRR@k and NDCG@k from 1-based ranks, averaged over examples."""
    r = np.asarray(ranks.cpu().numpy() if isinstance(ranks, torch.Tensor) else ranks, dtype=np.float64)  # (n,)
    if r.ndim != 1 or r.size == 0:
        raise DimensionMismatchError(f"expected a non-empty 1-D array of ranks, got shape {r.shape}")
    if bool((r < 1).any()):
        raise ConfigError("ranks are 1-based; found a rank below 1")
    out: dict[str, float] = {}
    for k in ks:
        if k < 1:
            raise ConfigError(f"cut-off k must be >= 1, got {k}")
        hit = r <= k  # (n,)
        out[f"HR@{k}"] = float(hit.mean())
        out[f"P@{k}"] = out[f"HR@{k}"]
        out[f"MRR@{k}"] = float(np.where(hit, 1.0 / r, 0.0).mean())
        out[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(r + 1.0), 0.0).mean())
    return out


def coverage(top_items: np.ndarray, n_items: int) -> float:
    """Share of the catalogue (ids 1..n_items) that appears in at least one row of top_items (n, k)."""
    if n_items < 1:
        raise ConfigError("n_items must be >= 1")
    seen = np.unique(top_items[top_items > 0])  # (m,)
    return float(seen.size) / float(n_items)


def popularity_bias(top_items: np.ndarray, item_counts: np.ndarray) -> float:
    """Mean popularity (training count / max count) of the recommended items over all top-k lists."""
    if item_counts.ndim != 1 or item_counts.max(initial=0) <= 0:
        raise ConfigError("item_counts must be a 1-D array of training counts with a positive maximum")
    pop = item_counts.astype(np.float64) / float(item_counts.max())  # (N+1,)
    return float(pop[top_items].mean())


@dataclass(frozen=True)
class RankFile:
    """A per-example rank log in the ``stamp_reference_ranks`` TSV format (one session per line)."""

    session_ids: tuple[str, ...]
    ranks: np.ndarray  # (n_examples,) 1-based ranks, sessions concatenated in file order


def read_rank_tsv(path: str | Path) -> RankFile:
    """Read ``log_id<TAB>session_id<TAB>items<TAB>ranks``; ranks[i] is the rank of items[i+1] after items[..i]."""
    path = Path(path)
    ranks: list[int] = []
    sessions: list[str] = []
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f, delimiter="\t")
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:4]] != ["log_id", "session_id", "items", "ranks"]:
                raise DataFormatError(f"{path}: expected header 'log_id, session_id, items, ranks', got {header}")
            for lineno, row in enumerate(reader, start=2):
                if len(row) != 4:
                    raise DataFormatError(f"{path}:{lineno}: expected 4 tab-separated columns, got {len(row)}")
                items = row[2].split()
                rs = [int(x) for x in row[3].split()]
                if len(rs) != len(items) - 1:
                    raise DataFormatError(
                        f"{path}:{lineno}: a session of {len(items)} items needs {len(items) - 1} ranks, got {len(rs)}"
                    )
                sessions.append(row[1])
                ranks.extend(rs)
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(f"cannot read rank file {path}: {exc}") from exc
    return RankFile(session_ids=tuple(sessions), ranks=np.asarray(ranks, dtype=np.int64))
