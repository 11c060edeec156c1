"""GRU4Rec (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018) with cross-entropy over all items.

A GRU reads the session's item embeddings; its state after the last click, projected to the item space, is the
query, and the score of item j is query . e_j with the *same* embeddings as the input (the official code's
``constrained_embedding``), so the item table goes straight into FAISS.

Training follows the official objective: every click of a session predicts the next one, with the hidden
state carried along the session. The official code streams sessions through "session-parallel mini-batches";
here a mini-batch is a set of whole sessions run to the end with a per-step loss (teacher forcing), which
visits exactly the same (state, next item) pairs once per epoch without the streaming bookkeeping.

Losses (``loss`` x ``negatives``):

* ``negatives="all"`` (default): cross-entropy over the whole catalogue (exact softmax, `full_softmax_loss`);
* ``negatives="sampled"``, the official scheme: the scores of every position go against the targets of all
  positions in the mini-batch plus ``n_sample`` items drawn once per mini-batch with probability
  proportional to popularity^``sample_alpha``; then either ``loss="cross-entropy"`` (softmax over those
  columns, minus ``logq`` x log sampling probability as the official logQ correction) or ``loss="bpr-max"``
  (Hidasi & Karatzoglou 2018: -log sum_j softmax_j(r) sigmoid(r_i - r_j) + bpreg sum_j softmax_j r_j^2 over
  the negatives j). ``elu_param`` > 0 applies the official ELU final activation to the sampled scores.
  Sampled training costs a few thousand columns per step instead of the catalogue, which is what makes the
  official wide settings (``hidden=512`` and dropout) affordable on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ._neural import ItemQueryNet, NeuralModel, full_softmax_loss
from .data import Examples

__all__ = ["GRU4Rec", "GRU4RecConfig", "bpr_max_loss"]

_LOSSES = ("cross-entropy", "bpr-max")
_NEGATIVES = ("all", "sampled")


@dataclass(frozen=True)
class GRU4RecConfig:
    dim: int = 100  # item embedding size (= query size)
    hidden: int = 100  # GRU state size
    layers: int = 1
    dropout_embedding: float = 0.0
    dropout_hidden: float = 0.0
    init_std: float = 0.05
    loss: str = "cross-entropy"  # or "bpr-max" (needs negatives="sampled")
    negatives: str = "all"  # "all": full catalogue; "sampled": in-batch targets + n_sample popularity samples
    n_sample: int = 2048
    sample_alpha: float = 0.5
    bpreg: float = 1.0
    logq: float = 0.0
    elu_param: float = 0.0

    def __post_init__(self) -> None:
        if self.dim < 1 or self.hidden < 1 or self.layers < 1:
            raise ConfigError("GRU4RecConfig needs dim, hidden and layers >= 1")
        if not (0.0 <= self.dropout_embedding < 1.0 and 0.0 <= self.dropout_hidden < 1.0):
            raise ConfigError("GRU4Rec dropout rates must be in [0, 1)")
        if self.loss not in _LOSSES:
            raise ConfigError(f"GRU4Rec loss {self.loss!r} is not valid. Valid losses are: {', '.join(_LOSSES)}")
        if self.negatives not in _NEGATIVES:
            raise ConfigError(
                f"GRU4Rec negatives {self.negatives!r} is not valid. Valid values are: {', '.join(_NEGATIVES)}"
            )
        if self.loss == "bpr-max" and self.negatives != "sampled":
            raise ConfigError("GRU4Rec loss='bpr-max' needs negatives='sampled'")
        if self.n_sample < 0 or self.sample_alpha < 0 or self.bpreg < 0 or self.logq < 0 or self.elu_param < 0:
            raise ConfigError("GRU4Rec n_sample, sample_alpha, bpreg, logq and elu_param must be >= 0")


class _GRU4RecNet(ItemQueryNet):
    def __init__(self, config: GRU4RecConfig, n_items: int) -> None:
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(n_items + 1, config.dim, padding_idx=0)
        self.gru = nn.GRU(config.dim, config.hidden, num_layers=config.layers, batch_first=True)
        self.out = nn.Linear(config.hidden, config.dim)
        for p in self.parameters():
            nn.init.normal_(p, 0.0, config.init_std) if p.dim() > 1 else nn.init.zeros_(p)
        with torch.no_grad():
            self.emb.weight[0].zero_()

    def item_table(self) -> torch.Tensor:
        return self.emb.weight  # (N+1, d)

    def states(self, prefixes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, L, d) query after each click; padding sits after the real clicks, so it never
        reaches the states of real positions."""
        x = F.dropout(table[prefixes], self.config.dropout_embedding, self.training)  # (B, L, d)
        h, _ = self.gru(x)  # (B, L, hidden)
        h = F.dropout(h, self.config.dropout_hidden, self.training)  # (B, L, hidden)
        return self.out(h)  # (B, L, d)

    def query(self, prefixes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        last = (prefixes > 0).sum(1) - 1  # (B,)
        return self.states(prefixes, table)[torch.arange(prefixes.size(0), device=prefixes.device), last]  # (B, d)


def bpr_max_loss(scores: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, bpreg: float) -> torch.Tensor:
    """Mean BPR-max over rows. scores (T, C); positive (T,) column of each row's target; negative (T, C) bool,
    the columns that count as negatives for that row."""
    pos = scores.gather(1, positive.view(-1, 1))  # (T, 1)
    weights = torch.softmax(scores.masked_fill(~negative, float("-inf")), dim=1)  # (T, C), 0 off the negatives
    hit = (weights * torch.sigmoid(pos - scores)).sum(1)  # (T,)
    reg = (weights * scores.square()).sum(1)  # (T,)
    return (-torch.log(hit + 1e-24) + bpreg * reg).mean()


class GRU4Rec(NeuralModel):
    name = "gru4rec"
    config_class = GRU4RecConfig
    net: _GRU4RecNet
    # official paramfile (hidasib/GRU4Rec paramfiles/diginetica_bprmax_shared_best.py): batch 128, 10 epochs.
    # Its optimiser is Adagrad with momentum (lr 0.05), whose rate does not carry to Adam; lr 3e-3, x0.7 per
    # epoch, is the Adam setting chosen on validation for this project (BENCHMARKS.md)
    train_defaults: ClassVar[dict[str, Any]] = {"lr": 3e-3, "batch_size": 128, "lr_decay": 0.7, "epochs": 10}

    def build_net(self) -> _GRU4RecNet:
        return _GRU4RecNet(self.config, self.n_items)

    def training_units(self, train: Sequence[np.ndarray]) -> Examples:
        """One unit per session: prefix = session[:-1], target = its last click; every step is a target."""
        sessions = [s for s in train if len(s) >= 2]
        lens = np.asarray([len(s) - 1 for s in sessions], dtype=np.int64)
        offsets = np.zeros(lens.size + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        counts = np.bincount(np.concatenate(sessions), minlength=self.n_items + 1).astype(np.float64)
        counts[0] = 0.0
        probs = counts**self.config.sample_alpha
        probs[counts == 0] = 0.0
        self._sample_cdf = np.cumsum(probs / probs.sum())  # (N+1,) popularity^alpha sampling distribution
        self._log_p = torch.from_numpy(np.log(np.maximum(probs / probs.sum(), 1e-30)).astype(np.float32))
        self._rng = np.random.default_rng(0)
        return Examples(
            items=np.concatenate([s[:-1] for s in sessions]).astype(np.int64),
            offsets=offsets,
            targets=np.asarray([s[-1] for s in sessions], dtype=np.int64),
        )

    def _sampled_loss(self, q: torch.Tensor, table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """q (T, d), targets (T,): in-batch targets + n_sample shared popularity samples as the columns."""
        c = self.config
        u = self._rng.random(c.n_sample)
        samples = torch.from_numpy(np.minimum(np.searchsorted(self._sample_cdf, u, side="right"), self.n_items))
        samples = samples.to(targets.device)
        cols = torch.cat([targets, samples])  # (C,) C = T + n_sample
        scores = q @ table[cols].t()  # (T, C)
        if c.elu_param > 0:
            scores = F.elu(scores, alpha=c.elu_param)
        positive = torch.arange(targets.numel(), device=targets.device)  # row i's own target is column i
        negative = cols.view(1, -1) != targets.view(-1, 1)  # (T, C) copies of the target are no negatives
        if c.loss == "bpr-max":
            return bpr_max_loss(scores.float(), positive, negative, c.bpreg)
        duplicate = ~negative
        duplicate[positive, positive] = False
        if c.logq > 0:
            scores = scores - c.logq * self._log_p.to(cols.device)[cols].view(1, -1)
        return F.cross_entropy(scores.float().masked_fill(duplicate, float("-inf")), positive)

    def batch_loss(self, units: Examples, idx: np.ndarray, max_len: int | None) -> torch.Tensor:
        prefixes, targets = units.batch(idx, max_len)
        dev = self.device
        p = torch.from_numpy(prefixes).to(dev)  # (B, L)
        mask = p > 0  # (B, L)
        lengths = mask.sum(1)  # (B,)
        nxt = torch.zeros_like(p)  # (B, L) the next click after each position
        nxt[:, :-1] = p[:, 1:]
        nxt[torch.arange(p.size(0), device=dev), lengths - 1] = torch.from_numpy(targets).to(dev)
        table = self.net.item_table()  # (N+1, d)
        q = self.net.states(p, table)[mask]  # (T, d) every real position
        if self.config.negatives == "sampled":
            return self._sampled_loss(q, table, nxt[mask])
        return full_softmax_loss(q, table, nxt[mask], self.workspace)
