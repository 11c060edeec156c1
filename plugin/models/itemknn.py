"""Item-KNN: items that co-occur in sessions with the last click (SR-GNN's baseline; session-rec's ``iknn``).

    sim(i, j) = co(i, j) / ((supp_i + lambda)^alpha * (supp_j + lambda)^(1 - alpha))

with co(i, j) = sum over training sessions of count_i(s) * count_j(s) and supp = click count (session-rec's
definitions; alpha = 0.5 is cosine). Only the ``n_sims`` most similar items keep a non-zero score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..errors import ConfigError
from ._sparse import SessionMatrixModel, csr_from_arrays, csr_to_arrays, last_items, topk_per_row

__all__ = ["ItemKNN", "ItemKNNConfig"]


@dataclass(frozen=True)
class ItemKNNConfig:
    n_sims: int = 100
    lmbd: float = 20.0
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if self.n_sims < 1 or self.lmbd < 0 or not 0.0 <= self.alpha <= 1.0:
            raise ConfigError("ItemKNNConfig needs n_sims >= 1, lmbd >= 0 and alpha in [0, 1]")


class ItemKNN(SessionMatrixModel):
    name = "itemknn"
    config_class = ItemKNNConfig

    def _set_matrix(self, counts: sparse.csr_matrix) -> None:
        c = self.config
        self.session_items = counts  # (S, N+1) click counts
        support = np.asarray(counts.sum(0)).ravel()  # (N+1,) clicks per item
        co = (counts.T.tocsr() @ counts).tocoo()  # (N+1, N+1) co-occurrence, sum_s count_i(s) * count_j(s)
        off_diag = co.row != co.col
        rows, cols = co.row[off_diag], co.col[off_diag]
        norm = np.power(support[rows] + c.lmbd, c.alpha) * np.power(support[cols] + c.lmbd, 1.0 - c.alpha)
        sims = sparse.csr_matrix((co.data[off_diag] / np.where(norm == 0, 1.0, norm), (rows, cols)), shape=co.shape)
        self.sims = topk_per_row(sims, c.n_sims)  # (N+1, N+1), at most n_sims entries a row

    def score(self, prefixes: np.ndarray) -> np.ndarray:
        p = self._check_prefixes(prefixes)
        out = self.sims[last_items(p)].toarray().astype(np.float32)  # (B, N+1)
        out[:, 0] = -np.inf
        return out

    def state_arrays(self) -> dict[str, np.ndarray]:
        return csr_to_arrays("session_items", self.session_items)

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._set_matrix(csr_from_arrays("session_items", arrays))
