"""GRU4Rec (Hidasi et al., ICLR 2016; Hidasi & Karatzoglou, CIKM 2018) with cross-entropy over all items.

A GRU reads the session's item embeddings; its state after the last click, projected to the item space, is the
query, and the score of item j is query . e_j with the *same* embeddings as the input (the official code's
``constrained_embedding``), so the item table goes straight into FAISS.

Training follows the official objective: every click of a session predicts the next one, with the hidden
state carried along the session. The official code streams sessions through "session-parallel mini-batches";
here a mini-batch is a set of whole sessions run to the end with a per-step loss (teacher forcing), which
visits exactly the same (state, next item) pairs once per epoch without the streaming bookkeeping. The loss
is full-catalogue cross-entropy (the official ``cross-entropy`` loss; BPR-max needs sampled negatives and
is not implemented).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data import Examples
from ..errors import ConfigError
from ._neural import ItemQueryNet, NeuralModel, full_softmax_loss

__all__ = ["GRU4Rec", "GRU4RecConfig"]


@dataclass(frozen=True)
class GRU4RecConfig:
    dim: int = 100  # item embedding size (= query size)
    hidden: int = 100  # GRU state size
    layers: int = 1
    dropout_embedding: float = 0.0
    dropout_hidden: float = 0.0
    init_std: float = 0.05

    def __post_init__(self) -> None:
        if self.dim < 1 or self.hidden < 1 or self.layers < 1:
            raise ConfigError("GRU4RecConfig needs dim, hidden and layers >= 1")
        if not (0.0 <= self.dropout_embedding < 1.0 and 0.0 <= self.dropout_hidden < 1.0):
            raise ConfigError("GRU4Rec dropout rates must be in [0, 1)")


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
        return self.states(prefixes, table)[torch.arange(prefixes.size(0)), last]  # (B, d)


class GRU4Rec(NeuralModel):
    name = "gru4rec"
    config_class = GRU4RecConfig

    def build_net(self) -> _GRU4RecNet:
        return _GRU4RecNet(self.config, self.n_items)

    def training_units(self, train: Sequence[np.ndarray]) -> Examples:
        """One unit per session: prefix = session[:-1], target = its last click; every step is a target."""
        sessions = [s for s in train if len(s) >= 2]
        lens = np.asarray([len(s) - 1 for s in sessions], dtype=np.int64)
        offsets = np.zeros(lens.size + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        return Examples(
            items=np.concatenate([s[:-1] for s in sessions]).astype(np.int64),
            offsets=offsets,
            targets=np.asarray([s[-1] for s in sessions], dtype=np.int64),
        )

    def batch_loss(self, units: Examples, idx: np.ndarray, max_len: int | None) -> torch.Tensor:
        prefixes, targets = units.batch(idx, max_len)
        p = torch.from_numpy(prefixes)  # (B, L)
        mask = p > 0  # (B, L)
        lengths = mask.sum(1)  # (B,)
        nxt = torch.zeros_like(p)  # (B, L) the next click after each position
        nxt[:, :-1] = p[:, 1:]
        nxt[torch.arange(p.size(0)), lengths - 1] = torch.from_numpy(targets)
        table = self.net.item_table()  # (N+1, d)
        q = self.net.states(p, table)[mask]  # (T, d) every real position
        return full_softmax_loss(q, table, nxt[mask], self.workspace)
