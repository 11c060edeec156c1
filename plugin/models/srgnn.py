"""SR-GNN (Wu et al., AAAI 2019): session graph, gated graph neural network, soft-attention readout.

For a session s = [v_1..v_n] the graph has one node per distinct item and an edge v_t -> v_{t+1} for each
transition (weight 1, however often it repeats, as in the official code). A_out is row-normalised by
out-degree, A_in column-normalised by in-degree and transposed. ``steps`` GGNN updates:

    a = [A_in (H W_in + b_in) + c_in ; A_out (H W_out + b_out) + c_out]            (B, U, 2d)
    r, z, n = GRU gates of (a, H);   H <- n + z * (H - n)                          (B, U, d)

then, over the click sequence (repeats included), with v_i = H[node of click i] and v_n the last click:

    alpha_i = q . sigmoid(W_1 v_n + W_2 v_i + c);  s_g = sum_i alpha_i v_i;  s_h = W_3 [s_g ; v_n]

and item j scores s_h . e_j over the whole catalogue. Graphs are built in torch for the whole batch: node
slots are click positions, and a click whose item occurred earlier points to its first occurrence (``alias``),
so duplicate slots get no edges and are never read. Init: all parameters U(-1/sqrt(d), 1/sqrt(d)). The node
biases c_in, c_out (the official code's ``b_iah``, ``b_oah``) reach every node, also one without in- or out-edges;
a model saved before they existed loads with them at zero, which is the model it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ._neural import ItemQueryNet, NeuralModel

__all__ = ["SRGNN", "SRGNNConfig"]


@dataclass(frozen=True)
class SRGNNConfig:
    dim: int = 100
    steps: int = 1

    def __post_init__(self) -> None:
        if self.dim < 1 or self.steps < 1:
            raise ConfigError("SRGNNConfig needs dim >= 1 and steps >= 1")


def session_graphs(prefixes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, L) left-aligned prefixes -> alias (B, L), A_in (B, L, L), A_out (B, L, L) over click-position slots."""
    b, length = prefixes.shape
    mask = prefixes > 0  # (B, L)
    same = (prefixes.unsqueeze(2) == prefixes.unsqueeze(1)) & mask.unsqueeze(1)  # (B, L, L)
    alias = same.to(torch.uint8).argmax(2)  # (B, L) first slot holding the same item
    edge_ok = (mask[:, :-1] & mask[:, 1:]).to(torch.float32)  # (B, L-1)
    flat = alias[:, :-1] * length + alias[:, 1:]  # (B, L-1) index of edge (u, v) in the L*L grid
    adj = torch.zeros(b, length * length, device=prefixes.device)  # (B, L*L)
    adj = adj.scatter_add_(1, flat, edge_ok).clamp_(max=1.0).view(b, length, length)  # (B, L, L)
    a_out = adj / adj.sum(2, keepdim=True).clamp(min=1.0)  # (B, L, L) rows by out-degree
    a_in = (adj / adj.sum(1, keepdim=True).clamp(min=1.0)).transpose(1, 2)  # (B, L, L)
    return alias, a_in, a_out


class _SRGNNNet(ItemQueryNet):
    def __init__(self, config: SRGNNConfig, n_items: int) -> None:
        super().__init__()
        d = config.dim
        self.config = config
        self.emb = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.edge_in = nn.Linear(d, d)
        self.edge_out = nn.Linear(d, d)
        self.node_in_bias = nn.Parameter(torch.empty(d))  # b_iah
        self.node_out_bias = nn.Parameter(torch.empty(d))  # b_oah
        self.gate_input = nn.Linear(2 * d, 3 * d)  # w_ih, b_ih
        self.gate_hidden = nn.Linear(d, 3 * d)  # w_hh, b_hh
        self.w1 = nn.Linear(d, d)  # on the last click v_n
        self.w2 = nn.Linear(d, d)  # on every click v_i, its bias is c
        self.q = nn.Linear(d, 1, bias=False)
        self.w3 = nn.Linear(2 * d, d)  # hybrid readout [s_g ; v_n]
        stdv = 1.0 / math.sqrt(d)
        for p in self.parameters():
            nn.init.uniform_(p, -stdv, stdv)
        with torch.no_grad():
            self.emb.weight[0].zero_()

    def item_table(self) -> torch.Tensor:
        return self.emb.weight  # (N+1, d)

    def _ggnn_step(self, h: torch.Tensor, a_in: torch.Tensor, a_out: torch.Tensor) -> torch.Tensor:
        msg_in = a_in @ self.edge_in(h) + self.node_in_bias  # (B, L, d)
        msg_out = a_out @ self.edge_out(h) + self.node_out_bias  # (B, L, d)
        msg = torch.cat([msg_in, msg_out], dim=2)  # (B, L, 2d)
        i_r, i_z, i_n = self.gate_input(msg).chunk(3, dim=2)  # 3 x (B, L, d)
        h_r, h_z, h_n = self.gate_hidden(h).chunk(3, dim=2)  # 3 x (B, L, d)
        reset = torch.sigmoid(i_r + h_r)
        update = torch.sigmoid(i_z + h_z)
        new = torch.tanh(i_n + reset * h_n)
        return new + update * (h - new)  # (B, L, d)

    def query(self, prefixes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        mask = prefixes > 0  # (B, L)
        alias, a_in, a_out = session_graphs(prefixes)
        h = table[prefixes]  # (B, L, d) node slots start as their item's embedding
        for _ in range(self.config.steps):
            h = self._ggnn_step(h, a_in, a_out)
        seq = h.gather(1, alias.unsqueeze(2).expand(-1, -1, h.size(2)))  # (B, L, d) v_i per click
        last = seq[torch.arange(seq.size(0), device=seq.device), mask.sum(1) - 1]  # (B, d) v_n
        alpha = self.q(torch.sigmoid(self.w1(last).unsqueeze(1) + self.w2(seq)))  # (B, L, 1)
        s_g = (alpha * seq * mask.unsqueeze(2).to(seq.dtype)).sum(1)  # (B, d)
        return self.w3(torch.cat([s_g, last], dim=1))  # (B, d)


class SRGNN(NeuralModel):
    name = "srgnn"
    config_class = SRGNNConfig
    # official code (CRIPAC-DIG/SR-GNN pytorch_code/main.py): Adam, lr 1e-3, batch 100, L2 1e-5, lr x0.1 every
    # 3 epochs, 30 epochs; our patience (2) replaces its 10, which only outlasts the decayed lr (1e-6 by epoch 9)
    train_defaults: ClassVar[dict[str, Any]] = {
        "lr": 1e-3,
        "batch_size": 100,
        "weight_decay": 1e-5,
        "lr_decay": 0.1,
        "lr_decay_every": 3,
        "epochs": 30,
    }

    def build_net(self) -> _SRGNNNet:
        return _SRGNNNet(self.config, self.n_items)

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        zero = np.zeros(self.config.dim, dtype=np.float32)
        older = {f"net.{k}": zero for k in ("node_in_bias", "node_out_bias") if f"net.{k}" not in arrays}
        super().load_state_arrays({**arrays, **older})  # saved before the node biases: zero is that model
