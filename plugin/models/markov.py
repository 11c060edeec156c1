"""Markov-1: score next items by how often they followed the session's last item in training.

Transition counts from consecutive clicks; items that never followed are ranked by global popularity (a
tie-break scaled below one transition), as in the data README's Markov-1 baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from ._sparse import csr_from_arrays, csr_to_arrays, last_items
from .base import SessionModel
from .data import Examples

__all__ = ["Markov", "MarkovConfig"]


@dataclass(frozen=True)
class MarkovConfig:
    popularity_tiebreak: bool = True


class Markov(SessionModel):
    name = "markov"
    config_class = MarkovConfig

    def fit(
        self,
        train: Sequence[np.ndarray],
        n_items: int,
        valid: Examples | None = None,
        item_keys: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        self._start_fit(n_items, item_keys)
        src = np.concatenate([s[:-1] for s in train]).astype(np.int64)
        dst = np.concatenate([s[1:] for s in train]).astype(np.int64)
        self.transitions = sparse.csr_matrix(
            (np.ones(src.size, dtype=np.float32), (src, dst)), shape=(n_items + 1, n_items + 1)
        )  # (N+1, N+1)
        self.transitions.sum_duplicates()
        flat = np.concatenate(train)
        self.counts = np.bincount(flat, minlength=n_items + 1).astype(np.float32)  # (N+1,)
        return {"epochs": 0}

    def score(self, prefixes: np.ndarray) -> np.ndarray:
        p = self._check_prefixes(prefixes)
        out = self.transitions[last_items(p)].toarray().astype(np.float32)  # (B, N+1)
        if self.config.popularity_tiebreak:
            out += (self.counts / (self.counts.max() + 1.0))[None, :]
        out[:, 0] = -np.inf
        return out

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {**csr_to_arrays("transitions", self.transitions), "counts": self.counts}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.transitions = csr_from_arrays("transitions", arrays)
        self.counts = arrays["counts"].astype(np.float32)
