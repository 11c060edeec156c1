"""Hubness reduction: an article close to everything is not close to anything in particular.

In sentence-embedding spaces a few articles ("hubs": broad overviews, long pages that touch every topic, pages
full of boilerplate) are among the nearest neighbours of a large share of all others, so plain cosine suggests
them to visitors reading almost anything. CSLS (cross-domain similarity local scaling, Conneau et al., "Word
translation without parallel data", ICLR 2018, eq. 6) discounts each candidate by how close it is to its own
neighbourhood:

    score(q, a) = cos(q, a) - weight * r(a),    r(a) = mean cosine of a to its k nearest articles

(the paper's 2 cos(q, a) - r(q) - r(a), halved, with r(q) dropped: it is the same for every candidate of one
query, so it cannot change their order). Cosines are the recommender's centred ones (`SuggestSettings.centre`).
Chosen on the relevance benchmark's tuning chapters (BENCHMARKS.md, "Relevance on real documentation"):
k = 20 and weight 0.5 lifted topical P@5 by 2-7% over centred cosine + BM25 on both manuals; k in 10-50 and
weights 0.3-0.8 were all within a point of it.

r depends on the whole KB, so it is computed lazily after a change (like the BM25 index) and cached; `warm()`
lets a server do that off the request path. An index folder's version carries the r it was saved with
(`hubness.npz`, `plugin.persistence`): loading it costs a file read, not the (N x sample) products again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from itertools import repeat

import numpy as np

from .errors import ConfigError

__all__ = ["HUBNESS_K", "MAX_ARTICLES", "HubnessIndex", "neighbourhood_similarity"]

logger = logging.getLogger(__name__)

HUBNESS_K = 20
# Above this many articles r is estimated against a fixed random sample of the KB (its k scaled to the
# sample's share), which keeps the cost at (articles x sample) instead of (articles x articles).
_EXACT_MAX = 20_000
# Above this many the discount is not applied at all (`HubnessIndex.get` gives zeros): even the sampled
# estimate would cost minutes of CPU at every reload, and on a KB that large the approximate index's own
# neighbourhoods would be the way to get r (not done yet).
MAX_ARTICLES = 200_000
_BLOCK = 2_048


def neighbourhood_similarity(vectors: np.ndarray, k: int = HUBNESS_K, *, seed: int = 0) -> np.ndarray:
    """r(a) for every row: the mean cosine of the row to its k most similar other rows. vectors: (N, D)
    unit rows -> (N,) float32; zeros when there are fewer than 2 rows."""
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    x = np.asarray(vectors, dtype=np.float32)  # (N, D)
    n = len(x)
    if n < 2:
        return np.zeros(n, dtype=np.float32)
    if n > _EXACT_MAX:
        ref_rows = np.sort(np.random.default_rng(seed).choice(n, _EXACT_MAX, replace=False))  # (M,)
        kk = max(1, round(k * _EXACT_MAX / n))
    else:
        ref_rows = np.arange(n)
        kk = k
    ref = x[ref_rows]  # (M, D)
    kk = min(kk, len(ref) - 1)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, _BLOCK):
        sims = x[start : start + _BLOCK] @ ref.T  # (b, M)
        rows = np.arange(start, min(start + _BLOCK, n))  # (b,)
        # a row is not its own neighbour
        pos = np.searchsorted(ref_rows, rows)  # (b,)
        own = (pos < len(ref_rows)) & (ref_rows[np.minimum(pos, len(ref_rows) - 1)] == rows)
        sims[np.nonzero(own)[0], pos[own]] = -np.inf
        top = np.partition(sims, len(ref) - kk, axis=1)[:, len(ref) - kk :]  # (b, kk)
        out[start : start + len(rows)] = top.mean(1)
    return out


class HubnessIndex:
    """r(a) of the KB's articles, rebuilt lazily after `invalidate`. `vectors(limit)` is called to (re)build and
    returns (article ids, their unit vectors in the space the recommender scores in), or None when the KB holds
    more than `limit` articles (without reading their vectors)."""

    def __init__(self, vectors: Callable[[int], tuple[Sequence[str], np.ndarray] | None], k: int = HUBNESS_K) -> None:
        self._vectors = vectors
        self._k = k
        self._lock = threading.Lock()
        self._r: dict[str, float] | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._r = None

    def warm(self) -> None:
        """Compute r now (it is otherwise computed at the first request that needs it)."""
        self._built()

    def _built(self) -> dict[str, float]:
        with self._lock:
            if self._r is None:
                got = self._vectors(MAX_ARTICLES)
                if got is None:
                    logger.info("hubness discount off: the KB holds more than %d articles", MAX_ARTICLES)
                    self._r = {}
                else:
                    ids, vecs = got
                    r = neighbourhood_similarity(vecs, self._k)
                    self._r = dict(zip(ids, r.tolist()))
                    logger.debug("neighbourhood similarity computed for %d articles", len(ids))
            return self._r

    def export(self) -> tuple[list[str], np.ndarray]:
        """(article ids, their r as float32), computed now if need be; empty when the discount is off (too many
        articles)."""
        r = self._built()
        return list(r), np.fromiter(r.values(), dtype=np.float32, count=len(r))

    def preload(self, ids: Sequence[str], r: np.ndarray) -> None:
        """Install r computed earlier for exactly this KB (a saved version's), instead of computing it."""
        if len(ids) != len(r):
            raise ConfigError(f"{len(ids)} ids but {len(r)} neighbourhood similarities")
        with self._lock:
            self._r = dict(zip(ids, np.asarray(r, dtype=np.float32).tolist()))

    def get(self, ids: Sequence[str]) -> np.ndarray:
        """r of these articles, (len(ids),) float32; 0 for an article the KB does not hold."""
        r = self._built()
        return np.fromiter(map(r.get, ids, repeat(0.0)), dtype=np.float32, count=len(ids))
