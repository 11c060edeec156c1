"""The bf16-screened evaluation gives the float32 ranks and top-k lists (plugin.models.evaluation)."""

from __future__ import annotations

import numpy as np
import torch

from plugin.models.data import Examples
from plugin.models.evaluation import evaluate


class _FixedDotModel:
    """A dot-product model with given queries (one per example, picked by the prefix's first item) and table."""

    name = "fixed"

    def __init__(self, queries: torch.Tensor, table: torch.Tensor) -> None:
        self.queries, self.table, self.n_items = queries, table, table.shape[0] - 1

    def score_parts(self, prefixes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self.queries[torch.from_numpy(prefixes[:, 0]) - 1], self.table

    def score_torch(self, prefixes: np.ndarray) -> torch.Tensor:
        q, t = self.score_parts(prefixes)
        s = q @ t.t()
        s[:, 0] = float("-inf")
        return s


def _case(seed: int, n_items: int = 3000, d: int = 24, n: int = 600) -> tuple[_FixedDotModel, Examples]:
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(n_items + 1, d, generator=g)
    table[0] = 0
    table[50:60] = table[40]  # exact duplicates of an item: ties, and bf16 cannot separate them
    table[60:70] = table[41] * (1 + 1e-4 * torch.arange(1, 11).view(-1, 1))  # near-duplicates: fall back
    queries = torch.randn(n, d, generator=g) * torch.rand(n, 1, generator=g) * 3
    queries[: n // 4] = table[torch.randint(1, n_items + 1, (n // 4,), generator=g)]  # confident rows
    queries[n // 4 : n // 4 + 20] = table[40] + table[41]
    targets = torch.randint(1, n_items + 1, (n,), generator=g)
    targets[n // 4 : n // 4 + 20] = 55  # a tied target
    targets[: n // 8] = torch.argmax(queries[: n // 8] @ table[1:].t(), 1) + 1  # rank-1 targets
    ex = Examples(
        items=np.arange(1, n + 1, dtype=np.int64),
        offsets=np.arange(n + 1, dtype=np.int64),
        targets=targets.numpy().astype(np.int64),
    )
    return _FixedDotModel(queries, table), ex


def test_screened_ranks_and_top_lists_equal_float32() -> None:
    for seed in range(3):
        model, ex = _case(seed)
        fast = evaluate(
            model,
            ex,
            ks=(5, 10, 20),
            batch_size=128,  # type: ignore[arg-type]
            screen=True,
        )
        slow = evaluate(model, ex, ks=(5, 10, 20), batch_size=128, screen=False)  # type: ignore[arg-type]
        exact = evaluate(model, ex, ks=(20,), batch_size=128, exact_ranks=True)  # type: ignore[arg-type]
        np.testing.assert_array_equal(fast.ranks, slow.ranks)
        np.testing.assert_array_equal(fast.ranks, np.minimum(exact.ranks, 21))
        for key, value in slow.metrics.items():  # coverage may differ only by the order of exactly tied items
            assert (
                fast.metrics[key] == value if not key.startswith("coverage") else abs(fast.metrics[key] - value) < 2e-3
            )
        assert 0.1 < fast.metrics["HR@20"] < 1.0  # the case has hits and misses
        # tied targets (item 55 shares its vector with 40 and 50..59) are ranked pessimistically
        tied = fast.ranks[150:170]
        assert (tied >= 11).all()
