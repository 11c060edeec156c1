"""V-SKNN: session-rec's vector-multiplication session kNN (``VMContextKNN``; Ludewig & Jannach 2018).

For the current session (clicks c_1..c_n, repeats included) every distinct item i gets the position weight
w(i) = weighting(p, n) of its *last* position p (``div``: p/n, so the last click weighs 1). Then

    candidates  = training sessions sharing an item with the session, the ``sample_size`` most recent of them
    sim(s)      = sum_{i in session & s} w(i) / #distinct items in the session
    neighbours  = the ``k`` candidates with the highest sim
    score(j)    = sum_{s in neighbours, j in s} sim(s) * weighting_score(step(s)) * (1 + idf_weighting * idf(j))

where step(s) is how far back (1 = last click) the most recent click that s contains lies. This is
session-rec's code as read, done for a whole batch with sparse products instead of per-session dict loops.
"Most recent" is training-session order, which in SR-GNN folders is date order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..errors import ConfigError
from ._sparse import SessionMatrixModel, csr_from_arrays, csr_to_arrays

__all__ = ["VSKNN", "VSKNNConfig"]

_WEIGHTINGS = ("div", "linear", "same", "log", "quadratic")
_SCORE_WEIGHTINGS = ("div", "linear", "same", "log", "quadratic")
_MAX_STEP = 100  # steps further back than this all get the weight of step 100 (keeps 1000^-step in float64)
_BASE = 1000.0


def _position_weight(kind: str, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
    """session-rec's weighting(i, length) with i the 1-based position in the session."""
    if kind == "div":
        return pos / length
    if kind == "linear":
        return np.where(pos <= 10, 1.0 - 0.1 * (length - pos), 0.0)
    if kind == "same":
        return np.ones_like(pos, dtype=np.float64)
    if kind == "log":
        return 1.0 / np.log10((length - pos) + 1.7)
    return (pos / length) ** 2  # quadratic


def _step_weight(kind: str, step: np.ndarray) -> np.ndarray:
    """session-rec's ``<weighting_score>_score(step)``, step 1 = the last click."""
    if kind == "div":
        return 1.0 / step
    if kind == "linear":
        return np.where(step <= 100, 1.0 - 0.1 * step, 0.0)
    if kind == "same":
        return np.ones_like(step, dtype=np.float64)
    if kind == "log":
        return 1.0 / np.log10(step + 1.7)
    return 1.0 / (step * step)  # quadratic


@dataclass(frozen=True)
class VSKNNConfig:
    k: int = 100
    sample_size: int = 500
    weighting: str = "div"
    weighting_score: str = "div"
    idf_weighting: float = 0.0

    def __post_init__(self) -> None:
        if self.k < 1 or self.sample_size < 1:
            raise ConfigError("VSKNNConfig needs k >= 1 and sample_size >= 1")
        if self.weighting not in _WEIGHTINGS:
            raise ConfigError(f"weighting={self.weighting!r} is not valid. Valid options are: {', '.join(_WEIGHTINGS)}")
        if self.weighting_score not in _SCORE_WEIGHTINGS:
            raise ConfigError(
                f"weighting_score={self.weighting_score!r} is not valid. Valid options are: {', '.join(_SCORE_WEIGHTINGS)}"
            )


def _keep_per_row(m: sparse.csr_matrix, keep: np.ndarray) -> sparse.csr_matrix:
    """The entries of m where keep (aligned with m.data) is True, as a CSR matrix of the same shape."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    return sparse.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)


class VSKNN(SessionMatrixModel):
    name = "vsknn"
    config_class = VSKNNConfig

    def _set_matrix(self, counts: sparse.csr_matrix) -> None:
        self.session_counts = counts  # (S, N+1) click counts, kept for the idf
        binary = counts.copy()
        binary.data[:] = 1.0
        self.sessions = binary  # (S, N+1) 0/1
        self.sessions_t = binary.T.tocsr()  # (N+1, S)
        clicks = np.asarray(counts.sum(0)).ravel()  # (N+1,)
        with np.errstate(divide="ignore"):
            self.idf = np.where(clicks > 0, np.log(counts.shape[0] / np.maximum(clicks, 1)), 0.0)  # (N+1,)

    def _query_matrices(self, p: np.ndarray) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        """Position weights / #distinct, and _BASE^-step, at each distinct item's last position."""
        b, width = p.shape
        lengths = (p > 0).sum(1)  # (B,)
        rows, cols = np.nonzero(p)
        items = p[rows, cols]
        order = np.lexsort((-cols, items, rows))  # per (row, item), the last position first
        rows, cols, items = rows[order], cols[order], items[order]
        first = np.ones(rows.size, dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (items[1:] != items[:-1])
        rows, cols, items = rows[first], cols[first], items[first]
        n_distinct = np.bincount(rows, minlength=b).astype(np.float64)  # (B,)
        pos = cols + 1.0
        w = _position_weight(self.config.weighting, pos, lengths[rows].astype(np.float64)) / n_distinct[rows]
        step = np.minimum(lengths[rows] - cols, _MAX_STEP).astype(np.float64)  # 1 = last click
        shape = (b, self.n_items + 1)
        qw = sparse.csr_matrix((w, (rows, items)), shape=shape)
        qs = sparse.csr_matrix((_BASE ** (-step), (rows, items)), shape=shape)
        return qw, qs

    def score(self, prefixes: np.ndarray) -> np.ndarray:
        p = self._check_prefixes(prefixes)
        c = self.config
        b = p.shape[0]
        qw, qs = self._query_matrices(p)
        qbin = qw.copy()
        qbin.data[:] = 1.0
        cand = (qbin @ self.sessions_t).tocsr()  # (B, S) structure: sessions sharing an item
        cand.sort_indices()
        # sample: the sample_size most recent (highest-index) candidates of each row
        counts = np.diff(cand.indptr)
        pos_in_row = np.arange(cand.nnz) - np.repeat(cand.indptr[:-1], counts)
        cand = _keep_per_row(cand, pos_in_row >= np.repeat(counts - c.sample_size, counts))
        cand.sort_indices()
        rows = np.repeat(np.arange(b), np.diff(cand.indptr))
        sess = cand.indices
        # sim and most-recent-shared-click for each (row, candidate) pair, one sparse dot each
        sim = np.asarray(qw[rows].multiply(self.sessions[sess]).sum(1)).ravel()  # (nnz,)
        stepsum = np.asarray(qs[rows].multiply(self.sessions[sess]).sum(1)).ravel()  # (nnz,)
        step = np.clip(np.rint(-np.log(stepsum) / np.log(_BASE)), 1, _MAX_STEP)
        # top-k by sim per row (ties: the more recent session first)
        order = np.lexsort((-sess, -sim, rows))
        rows_o, sess_o, sim_o, step_o = rows[order], sess[order], sim[order], step[order]
        starts = np.searchsorted(rows_o, np.arange(b))
        rank = np.arange(rows_o.size) - starts[rows_o]
        keep = rank < c.k
        weights = sim_o[keep] * _step_weight(c.weighting_score, step_o[keep])
        nb = sparse.csr_matrix((weights, (rows_o[keep], sess_o[keep])), shape=(b, self.sessions.shape[0]))
        out = (nb @ self.sessions).toarray()  # (B, N+1)
        if c.idf_weighting:
            out *= 1.0 + c.idf_weighting * self.idf[None, :]
        out = out.astype(np.float32)
        out[:, 0] = -np.inf
        return out

    def state_arrays(self) -> dict[str, np.ndarray]:
        return csr_to_arrays("session_counts", self.session_counts)

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._set_matrix(csr_from_arrays("session_counts", arrays))
