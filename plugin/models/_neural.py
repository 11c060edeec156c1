"""Shared plumbing of the neural dot-product models: a network with an item table and a query, trained by
`plugin.models.training.fit_neural`, persisted as its ``state_dict`` in ``state.npz``.

A network (`ItemQueryNet`) provides ``item_table() -> (N+1, d)`` (row 0 = padding) and
``query(prefixes (B, L), table) -> (B, d)``; the score of item j is ``query . table[j]`` — exactly what a
FAISS inner-product index over ``item_vectors()`` returns.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .base import DotProductModel
from .data import Examples, augment
from .training import EpochRecord, EpochRunner, TrainConfig, fit_neural

__all__ = ["ItemQueryNet", "NeuralModel", "SoftmaxWorkspace", "full_softmax_loss"]


class ItemQueryNet(nn.Module):
    @abstractmethod
    def item_table(self) -> torch.Tensor:
        """(N+1, d) item vectors, row 0 = padding."""

    @abstractmethod
    def query(self, prefixes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(B, L) left-aligned int64 prefixes -> (B, d) session queries."""


class SoftmaxWorkspace:
    """One reusable (rows, N+1) buffer for `full_softmax_loss`.

    A (512, 43k) float buffer is 44-88 MB; glibc serves anything above 32 MB with a fresh ``mmap``, so a newly
    allocated logits matrix is page-faulted in on every step, which costs as much as the matmul itself. The
    workspace lends one buffer to a forward and takes it back in the matching backward; a forward that finds it
    still lent (two losses built before one backward) allocates a fresh buffer instead: correct, only slower.
    """

    def __init__(self) -> None:
        self._buf: torch.Tensor | None = None
        self._lent = False

    def take(
        self, rows: int, cols: int, dtype: torch.dtype, device: torch.device | None = None
    ) -> tuple[torch.Tensor, bool]:
        """(rows, cols) buffer on ``device`` (default CPU), and whether it is the workspace's own (to be given back)."""
        if self._lent:
            return torch.empty(rows, cols, dtype=dtype, device=device), False
        buf = self._buf
        if (
            buf is None
            or buf.dtype != dtype
            or buf.shape[1] != cols
            or buf.shape[0] < rows
            or buf.device != torch.device(device or "cpu")
        ):
            self._buf = buf = torch.empty(rows, cols, dtype=dtype, device=device)
        self._lent = True
        return buf[:rows], True

    def give_back(self) -> None:
        self._lent = False


class _FullSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of each target among all N+1 columns (column 0, padding, masked), fused.

    One (B, N+1) buffer holds the logits, then (softmax in place) the probabilities, then p - onehot, which is
    the gradient up to the 1/B scale; the backward is the two matmuls, scaled after (on the small outputs).
    With ``low_precision`` the buffer and the three matmuls are bfloat16 (fp32 accumulation, softmax computed in
    fp32 inside the kernel); otherwise float32. The loss value is -log p_target with p clamped at 1e-30 (a
    logged number; the gradient is exact softmax - onehot).
    """

    @staticmethod
    def forward(ctx, query, table, targets, low_precision, workspace, needs_grad):
        with torch.autocast(query.device.type, enabled=False):
            qc, tc = (query.bfloat16(), table.bfloat16()) if low_precision else (query, table)
            b = qc.shape[0]
            if workspace is not None:
                buf, own = workspace.take(b, tc.shape[0], qc.dtype, qc.device)
            else:
                buf, own = torch.empty(b, tc.shape[0], dtype=qc.dtype, device=qc.device), False
            torch.mm(qc, tc.t(), out=buf)  # (B, N+1) logits
            buf[:, 0] = float("-inf")
            torch._softmax(buf, 1, False, out=buf)  # in place: each row is read before it is written
            rows = torch.arange(b, device=qc.device)
            p_t = buf[rows, targets].float()  # (B,)
            loss = -p_t.clamp(min=1e-30).log().mean()
            if needs_grad:
                buf[rows, targets] = (p_t - 1.0).to(buf.dtype)  # softmax - onehot
        ctx.save_for_backward(qc, tc, buf)
        ctx.meta = (query.dtype, table.dtype, workspace if own else None)
        if own and not needs_grad:
            workspace.give_back()
        return loss

    @staticmethod
    def backward(ctx, g):
        qc, tc, buf = ctx.saved_tensors
        q_dtype, t_dtype, workspace = ctx.meta
        scale = g.float() / buf.shape[0]
        with torch.autocast(qc.device.type, enabled=False):
            gq = (buf @ tc).float().mul_(scale).to(q_dtype)  # (B, d)
            gt = (qc.t() @ buf).t().float().mul_(scale).to(t_dtype)  # (N+1, d); this order is ~15% faster
        if workspace is not None:
            workspace.give_back()
        return gq, gt, None, None, None, None


def full_softmax_loss(
    query: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    workspace: SoftmaxWorkspace | None = None,
) -> torch.Tensor:
    """Cross-entropy of the target among all items: (B, d) x (d, N+1), padding column masked; bfloat16
    matmuls when the caller runs under autocast on the query's device (the trainer's ``bf16``). ``workspace``
    reuses one logits buffer across training steps (see `SoftmaxWorkspace`)."""
    low = torch.is_autocast_enabled(query.device.type)
    needs_grad = torch.is_grad_enabled() and (query.requires_grad or table.requires_grad)
    return _FullSoftmaxCE.apply(query.float(), table.float(), targets, low, workspace, needs_grad)


class NeuralModel(DotProductModel):
    """A `DotProductModel` backed by an `ItemQueryNet`; subclasses say how to build the net."""

    net: ItemQueryNet
    workspace: SoftmaxWorkspace | None = None  # set while fit() runs
    # the paper's / official code's training settings (TrainConfig fields); each subclass cites its source
    train_defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def default_train_config(cls, **overrides: Any) -> TrainConfig:
        """`TrainConfig` with this model's published defaults, then ``overrides`` on top."""
        return TrainConfig(**{**cls.train_defaults, **overrides})

    @abstractmethod
    def build_net(self) -> ItemQueryNet:
        """A fresh network for self.config and self.n_items."""

    def epoch_runner(self) -> EpochRunner | None:
        """The model's own optimiser and epoch (`EpochRunner`), or None for Adam over shuffled mini-batches."""
        return None

    @property
    def device(self) -> torch.device:
        """Where the network's parameters are; every batch is moved there (the trainer or caller picks it)."""
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str) -> NeuralModel:
        """Move the network (in place) to ``device``; saving always writes CPU arrays."""
        self.net.to(device)
        return self

    # --- training -----------------------------------------------------------------------------------------
    def training_units(self, train: Sequence[np.ndarray]) -> Examples:
        """What one epoch iterates over: every prefix -> next-item example (SR-GNN augmentation)."""
        return augment(train)

    def batch_loss(self, units: Examples, idx: np.ndarray, max_len: int | None) -> torch.Tensor:
        prefixes, targets = units.batch(idx, max_len)
        table = self.net.item_table()  # (N+1, d)
        dev = table.device
        q = self.net.query(torch.from_numpy(prefixes).to(dev), table)  # (B, d)
        return full_softmax_loss(q, table, torch.from_numpy(targets).to(dev), self.workspace)

    def fit(
        self,
        train: Sequence[np.ndarray],
        n_items: int,
        valid: Examples | None = None,
        item_keys: Sequence[str] | None = None,
        train_config: TrainConfig | None = None,
        warm_start: bool = False,
        on_epoch: Callable[[EpochRecord], bool] | None = None,
    ) -> dict[str, Any]:
        """``warm_start``: keep the current (loaded) weights and continue training them; ``on_epoch``: see
        `fit_neural`."""
        keep = warm_start and getattr(self, "net", None) is not None and self.n_items == n_items
        self._start_fit(n_items, item_keys)
        cfg = train_config or self.default_train_config()
        torch.manual_seed(cfg.seed)
        if not keep:
            self.net = self.build_net()
        self.workspace = SoftmaxWorkspace()
        try:
            counts = np.bincount(np.concatenate(train), minlength=n_items + 1) if len(train) else None  # (N+1,)
            report = fit_neural(
                self,
                self.training_units(train),
                valid,
                cfg,
                warm_start=keep,
                pop_counts=counts,
                on_epoch=on_epoch,
                runner=self.epoch_runner(),
            )
        finally:
            self.workspace = None  # frees the buffer
        return report.to_dict()

    # --- scoring ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def score_parts(self, prefixes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(queries (B, d), item table (N+1, d), row 0 = padding), float32: score = queries @ table.T."""
        p = torch.from_numpy(self._check_prefixes(prefixes)).to(self.device)
        was_training = self.net.training
        self.net.eval()
        table = self.net.item_table()  # (N+1, d)
        q = self.net.query(p, table)  # (B, d)
        self.net.train(was_training)
        return q, table

    @torch.no_grad()
    def score_torch(self, prefixes: np.ndarray) -> torch.Tensor:
        q, table = self.score_parts(prefixes)
        scores = q @ table.t()  # (B, N+1)
        scores[:, 0] = float("-inf")
        return scores

    def score(self, prefixes: np.ndarray) -> np.ndarray:
        return self.score_torch(prefixes).cpu().numpy()

    def query_vectors(self, prefixes: np.ndarray) -> np.ndarray:
        return self.score_parts(prefixes)[0].cpu().numpy().astype(np.float32, copy=False)

    @torch.no_grad()
    def item_vectors(self) -> np.ndarray:
        self.net.eval()
        return self.net.item_table()[1:].cpu().numpy().astype(np.float32, copy=True)  # (N, d)

    # --- persistence --------------------------------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.net = self.build_net()
        state = {k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("net.")}
        self.net.load_state_dict(state)
        self.net.eval()
