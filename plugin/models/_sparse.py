"""Sparse session x item matrices shared by the count-based models (scipy.sparse, CSR)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse

from .base import SessionModel
from .data import Examples

__all__ = [
    "SessionMatrixModel",
    "session_item_matrix",
    "csr_to_arrays",
    "csr_from_arrays",
    "last_items",
    "topk_per_row",
]


def session_item_matrix(sessions: Sequence[np.ndarray], n_items: int, binary: bool) -> sparse.csr_matrix:
    """(n_sessions, n_items + 1) click counts (or 1/0 when ``binary``); column 0 stays empty."""
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    rows = np.repeat(np.arange(len(sessions)), lengths)
    cols = np.concatenate(sessions).astype(np.int64) if len(sessions) else np.zeros(0, dtype=np.int64)
    m = sparse.csr_matrix((np.ones(cols.size, dtype=np.float64), (rows, cols)), shape=(len(sessions), n_items + 1))
    m.sum_duplicates()
    if binary:
        m.data[:] = 1.0
    m.sort_indices()
    return m


def csr_to_arrays(prefix: str, m: sparse.csr_matrix) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_data": m.data,
        f"{prefix}_indices": m.indices,
        f"{prefix}_indptr": m.indptr,
        f"{prefix}_shape": np.asarray(m.shape, dtype=np.int64),
    }


def csr_from_arrays(prefix: str, a: dict[str, np.ndarray]) -> sparse.csr_matrix:
    shape = tuple(int(x) for x in a[f"{prefix}_shape"])
    return sparse.csr_matrix((a[f"{prefix}_data"], a[f"{prefix}_indices"], a[f"{prefix}_indptr"]), shape=shape)


def last_items(prefixes: np.ndarray) -> np.ndarray:
    """(B, L) left-aligned prefixes -> (B,) the last non-padding item of each row."""
    lengths = (prefixes > 0).sum(1)  # (B,)
    return prefixes[np.arange(prefixes.shape[0]), lengths - 1]


def topk_per_row(m: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Keep the k largest entries of every row (ties: lower column first)."""
    m = m.tocsr()
    m.sort_indices()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((m.indices, -m.data, rows))
    rank = np.arange(order.size) - m.indptr[rows[order]]
    keep = order[rank < k]
    return sparse.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)


class SessionMatrixModel(SessionModel):
    """A count model fitted from the training sessions' (session x item) click-count matrix."""

    def fit(
        self,
        train: Sequence[np.ndarray],
        n_items: int,
        valid: Examples | None = None,
        item_keys: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        self._start_fit(n_items, item_keys)
        self._set_matrix(session_item_matrix(train, n_items, binary=False))
        return {"epochs": 0}

    @abstractmethod
    def _set_matrix(self, counts: sparse.csr_matrix) -> None:
        """Derive the model's state from the (S, N+1) click counts."""
