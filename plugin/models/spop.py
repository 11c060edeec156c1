"""S-POP: items already clicked in this session, most clicked first; ties (and the rest) by global popularity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pop import POP

__all__ = ["SPOP", "SPOPConfig"]


@dataclass(frozen=True)
class SPOPConfig:
    pass


class SPOP(POP):
    """Fits and saves exactly like POP (global click counts); only the scoring differs."""

    name = "spop"
    config_class = SPOPConfig

    def score(self, prefixes: np.ndarray) -> np.ndarray:
        p = self._check_prefixes(prefixes)
        # global popularity scaled into [0, 1) only breaks ties between equal in-session counts
        out = np.repeat((self.counts / (self.counts.max() + 1.0))[None, :], p.shape[0], axis=0)  # (B, N+1)
        rows = np.repeat(np.arange(p.shape[0]), p.shape[1])
        np.add.at(out, (rows, p.ravel()), 1.0)
        out[:, 0] = -np.inf
        return out
