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


class _FullSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of each target among all N+1 columns (column 0, padding, masked), fused.

    One (B, N+1) buffer holds the logits and then, in place, their gradient softmax - onehot; the backward is
    the two matmuls. Saves the allocations/fills of log_softmax + nll (~15-30% of a CPU training step).
    With ``low_precision`` the three matmuls run in bfloat16; softmax and loss stay float32.
    """

    @staticmethod
    def forward(ctx, query, table, targets, low_precision):  # type: ignore[override]
        with torch.autocast("cpu", enabled=False):
            qc, tc = (query.bfloat16(), table.bfloat16()) if low_precision else (query, table)
            logits = (qc @ tc.t()).float()  # (B, N+1)
            logits[:, 0] = float("-inf")
            lse = torch.logsumexp(logits, 1)  # (B,)
            loss = (lse - logits.gather(1, targets.view(-1, 1)).squeeze(1)).mean()
            grad = logits.sub_(lse.unsqueeze(1)).exp_()  # (B, N+1) softmax, in place
            grad.scatter_add_(1, targets.view(-1, 1), torch.full((targets.numel(), 1), -1.0))
            grad.div_(targets.numel())
        ctx.save_for_backward(qc, tc, grad)
        ctx.dtypes = (query.dtype, table.dtype)
        return loss

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        qc, tc, grad = ctx.saved_tensors
        with torch.autocast("cpu", enabled=False):
            gc = (grad * g).to(qc.dtype)  # (B, N+1)
            return (gc @ tc).to(ctx.dtypes[0]), (gc.t() @ qc).to(ctx.dtypes[1]), None, None


def full_softmax_loss(query: torch.Tensor, table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the target among all items: (B, d) x (d, N+1), padding column masked; bfloat16
    matmuls when the caller runs under CPU autocast (the trainer's ``bf16``)."""
    low = torch.is_autocast_enabled("cpu")
    return _FullSoftmaxCE.apply(query.float(), table.float(), targets, low)


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
        warm_start: bool = False,
    ) -> dict[str, Any]:
        """``warm_start``: keep the current (loaded) weights and continue training them."""
        keep = warm_start and getattr(self, "net", None) is not None and self.n_items == n_items
        self._start_fit(n_items, item_keys)
        cfg = train_config or TrainConfig()
        torch.manual_seed(cfg.seed)
        if not keep:
            self.net = self.build_net()
        report = fit_neural(self, self.training_units(train), valid, cfg, warm_start=keep)
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
