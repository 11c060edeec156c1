"""STAMP: Short-Term Attention/Memory Priority model (Liu et al., KDD 2018) — the maths, and nothing else.

Given the vectors of the items in a session x_1..x_t (any item space: learned ID embeddings, projected
text embeddings, or both summed), STAMP forms

    m_s = mean(x_1..x_t)                                   session memory
    m_t = x_t                                              last click (short-term memory)
    a_i = w_0 . sigmoid(W_1 x_i + W_2 x_t + W_3 m_s + b_a)  attention over the session   (paper eq. 7)
    m_a = sum_i a_i x_i                                    attended memory                 (eq. 8)
    h_s = tanh(W_s m_a + b_s),  h_t = tanh(W_t m_t + b_t)  two MLP cells                   (eq. 9-10)
    z_j = < h_s, h_t, x_j > = (h_s * h_t) . x_j            trilinear score of candidate j  (eq. 11)

so the *query* q = h_s * h_t lives in the item space, and ranking candidates is one inner product
(a FAISS inner-product search in serving).

`attention="similarity"` swaps eq. 7 for a parameter-free a_i = softmax_i(tau * (x_i.x_t + x_i.m_s)); with
`STAMP.zero_shot` (identity W_s, saturated h_t = 1) this gives a sensible untrained model over normalised
text embeddings: q is an attention-weighted mean that favours pages close to the last click.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .errors import DimensionMismatchError
from .intent_config import STAMPConfig  # torch-free, for the numpy form's loader; re-exported here
from .zero_shot import zero_shot_query  # the closed form lives torch-free; re-exported here

__all__ = ["STAMPConfig", "STAMP", "STAMPOutput", "zero_shot_query"]


class STAMPOutput(NamedTuple):
    query: torch.Tensor  # (B, d) q = h_s * h_t; score of item j is q . x_j
    attention: torch.Tensor  # (B, L) a_i, 0 on padding


class STAMP(nn.Module):
    def __init__(self, config: STAMPConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dim
        self.w1 = nn.Linear(d, d, bias=False)  # on x_i
        self.w2 = nn.Linear(d, d, bias=False)  # on x_t
        self.w3 = nn.Linear(d, d, bias=True)  # on m_s, its bias is b_a
        self.w0 = nn.Linear(d, 1, bias=False)
        self.mlp_s = nn.Linear(d, d)  # W_s, b_s
        self.mlp_t = nn.Linear(d, d)  # W_t, b_t
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, 0.0, self.config.init_std)
            else:
                nn.init.zeros_(p)

    @classmethod
    def zero_shot(cls, dim: int, temperature: float = 10.0, gain: float = 1.0) -> STAMP:
        """An untrained STAMP whose query is a similarity-attended session mean (for unit-norm items).

        W_s = gain*I with b_s = 0 keeps h_s ~ gain*m_a (tanh is near-linear on unit vectors' entries);
        W_t = 0 with a large b_t saturates h_t to 1, so the trilinear score reduces to h_s . x_j.
        """
        model = cls(STAMPConfig(dim=dim, attention="similarity", similarity_temperature=temperature))
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
            model.mlp_s.weight.copy_(torch.eye(dim) * gain)
            model.mlp_t.bias.fill_(math.atanh(1.0 - 1e-6))
        return model

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> STAMPOutput:
        """items: (B, L, d) session item vectors, left-aligned; mask: (B, L) True on real clicks."""
        if items.dim() != 3 or items.size(-1) != self.config.dim:
            raise DimensionMismatchError(
                f"STAMP expected items of shape (batch, length, {self.config.dim}), got {tuple(items.shape)}"
            )
        if mask.shape != items.shape[:2]:
            raise DimensionMismatchError(f"mask shape {tuple(mask.shape)} != items (B, L) {tuple(items.shape[:2])}")
        mask = mask.to(items.dtype)  # (B, L)
        lengths = mask.sum(1)  # (B,)
        if bool((lengths < 1).any()):
            raise DimensionMismatchError("every session in the batch needs at least one item (mask row of all False)")
        last_idx = (lengths.long() - 1).clamp(min=0)  # (B,)
        x_t = items[torch.arange(items.size(0), device=items.device), last_idx]  # (B, d)
        m_s = (items * mask.unsqueeze(-1)).sum(1) / lengths.unsqueeze(-1)  # (B, d)

        if self.config.attention == "additive":
            pre = self.w1(items) + self.w2(x_t).unsqueeze(1) + self.w3(m_s).unsqueeze(1)  # (B, L, d)
            alpha = self.w0(torch.sigmoid(pre)).squeeze(-1) * mask  # (B, L), un-normalised as in the paper
        else:
            sim = (items * (x_t + m_s).unsqueeze(1)).sum(-1) * self.config.similarity_temperature  # (B, L)
            sim = sim.masked_fill(mask == 0, float("-inf"))  # (B, L)
            alpha = torch.softmax(sim, dim=1) * mask  # (B, L), sums to 1 over real clicks

        m_a = (alpha.unsqueeze(-1) * items).sum(1)  # (B, d)
        h_s = torch.tanh(self.mlp_s(m_a))  # (B, d)
        h_t = torch.tanh(self.mlp_t(x_t))  # (B, d)
        return STAMPOutput(query=h_s * h_t, attention=alpha)  # (B, d), (B, L)

    @staticmethod
    def score(query: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
        """Trilinear scores of every candidate: (B, d) x (N, d) -> (B, N) logits."""
        return query @ item_table.t()  # (B, N)
