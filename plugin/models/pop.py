"""POP: every session gets the globally most clicked items (a sanity baseline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .base import SessionModel
from .data import Examples

__all__ = ["POP", "POPConfig"]


@dataclass(frozen=True)
class POPConfig:
    pass


class POP(SessionModel):
    name = "pop"
    config_class: ClassVar[type] = POPConfig

    def fit(
        self,
        train: Sequence[np.ndarray],
        n_items: int,
        valid: Examples | None = None,
        item_keys: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        self._start_fit(n_items, item_keys)
        flat = np.concatenate(train) if len(train) else np.zeros(0, dtype=np.int64)
        self.counts = np.bincount(flat, minlength=n_items + 1).astype(np.float32)  # (N+1,)
        return {"epochs": 0}

    def score(self, prefixes: np.ndarray) -> np.ndarray:
        p = self._check_prefixes(prefixes)
        out = np.repeat(self.counts[None, :], p.shape[0], axis=0)  # (B, N+1)
        out[:, 0] = -np.inf
        return out

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.counts = arrays["counts"].astype(np.float32)
