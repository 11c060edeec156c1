"""Shared plumbing of the neural dot-product models: a network with an item table and a query, trained by
`plugin.training.fit_neural`, persisted as its ``state_dict`` in ``state.npz``.

A network (`ItemQueryNet`) provides ``item_table() -> (N+1, d)`` (row 0 = padding) and
``query(prefixes (B, L), table) -> (B, d)``; the score of item j is ``query . table[j]`` — exactly what a
FAISS inner-product index over ``item_vectors()`` returns.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data import Examples, augment
from ..training import TrainConfig, fit_neural
from .base import DotProductModel

__all__ = ["ItemQueryNet", "NeuralModel"]


class ItemQueryNet(nn.Module):
    @abstractmethod
    def item_table(self) -> torch.Tensor:
        """(N+1, d) item vectors, row 0 = padding."""

    @abstractmethod
    def query(self, prefixes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(B, L) left-aligned int64 prefixes -> (B, d) session queries."""


def full_softmax_loss(query: torch.Tensor, table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the target among all items: one (B, d) x (d, N+1) matmul, padding column masked."""
    logits = query @ table.t()  # (B, N+1)
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits, targets)


class NeuralModel(DotProductModel):
    """A `DotProductModel` backed by an `ItemQueryNet`; subclasses say how to build the net."""

    net: ItemQueryNet

    @abstractmethod
    def build_net(self) -> ItemQueryNet:
        """A fresh network for self.config and self.n_items."""

    # --- training -----------------------------------------------------------------------------------------
    def training_units(self, train: Sequence[np.ndarray]) -> Examples:
        """What one epoch iterates over: every prefix -> next-item example (SR-GNN augmentation)."""
        return augment(train)

    def batch_loss(self, units: Examples, idx: np.ndarray, max_len: int | None) -> torch.Tensor:
        prefixes, targets = units.batch(idx, max_len)
        table = self.net.item_table()  # (N+1, d)
        q = self.net.query(torch.from_numpy(prefixes), table)  # (B, d)
        return full_softmax_loss(q, table, torch.from_numpy(targets))

    def fit(
        self, train: Sequence[np.ndarray], n_items: int, valid: Examples | None = None,
        item_keys: Sequence[str] | None = None, train_config: TrainConfig | None = None,
    ) -> dict[str, Any]:
        self._start_fit(n_items, item_keys)
        cfg = train_config or TrainConfig()
        torch.manual_seed(cfg.seed)
        self.net = self.build_net()
        report = fit_neural(self, self.training_units(train), valid, cfg)
        return report.to_dict()

    # --- scoring ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _query_and_table(self, prefixes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.from_numpy(self._check_prefixes(prefixes))
        was_training = self.net.training
        self.net.eval()
        table = self.net.item_table()  # (N+1, d)
        q = self.net.query(p, table)  # (B, d)
        self.net.train(was_training)
        return q, table

    @torch.no_grad()
    def score_torch(self, prefixes: np.ndarray) -> torch.Tensor:
        q, table = self._query_and_table(prefixes)
        scores = q @ table.t()  # (B, N+1)
        scores[:, 0] = float("-inf")
        return scores

    def score(self, prefixes: np.ndarray) -> np.ndarray:
        return self.score_torch(prefixes).numpy()

    def query_vectors(self, prefixes: np.ndarray) -> np.ndarray:
        return self._query_and_table(prefixes)[0].numpy().astype(np.float32, copy=False)

    @torch.no_grad()
    def item_vectors(self) -> np.ndarray:
        self.net.eval()
        return self.net.item_table()[1:].numpy().astype(np.float32, copy=True)  # (N, d)

    # --- persistence --------------------------------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.net = self.build_net()
        state = {k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("net.")}
        self.net.load_state_dict(state)
        self.net.eval()
