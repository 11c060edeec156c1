"""Title similarity: a second, short view of each article beside its pooled full-text vector.

A page's title is the site author's own one-line summary of it, and pages of one section tend to share its words
("GeoDjango Database API", "GeoDjango Management Commands"; "pg_enum", "pg_extension"). The full-text vector
averages a whole page of windows and blurs that; BM25 misses it when the shared part is inside a token
(`pg_enum`). So the recommender also compares titles: the mean of the read pages' centred title vectors against
each candidate's, added with `SuggestSettings.title_weight` (chosen on the relevance benchmark's tuning chapters,
BENCHMARKS.md, relevance round 3).

Title vectors come from the index's own encoder through its embedding cache, which is saved with the index: an
index built with titles already embedded needs no model to use them. A request never embeds titles: when some
are not in the cache (an index built before titles were, a recommender made around a fresh cache), they are left
out of scoring until `warm()` embeds them (servers call it in their loading thread) or the KB changes.

The centred title matrix is saved with the index folder's version (`titles.npz`, `plugin.persistence`), so a load
reads it instead of centring every title vector again. Above `COMPACT_ABOVE` articles it is kept in float16: it
would otherwise double the memory of the index's own vectors, and a title cosine (one small term of the score)
needs no more precision; below, float32, so that no suggestion of an ordinary KB moves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from itertools import repeat

import numpy as np

from .errors import ConfigError

__all__ = ["COMPACT_ABOVE", "TitleIndex"]

logger = logging.getLogger(__name__)

COMPACT_ABOVE = 200_000


class TitleIndex:
    """Centred, unit title vectors of the KB's articles, rebuilt lazily after `invalidate`.

    `source(allow_encoding)` returns (article ids, their title vectors (N, D)), or None when the vectors are not at
    hand without loading a model and `allow_encoding` is False."""

    def __init__(self, source: Callable[[bool], tuple[Sequence[str], np.ndarray] | None]) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._vecs: np.ndarray | None = None  # (N, D) centred, unit (float16 above COMPACT_ABOVE articles)
        self._row: dict[str, int] = {}
        self._missing = False  # some title is not embedded: left out until warm() or a change

    def invalidate(self) -> None:
        with self._lock:
            self._vecs = None
            self._row = {}
            self._missing = False

    def warm(self) -> None:
        """Embed any title missing from the cache now (it is otherwise left out of scoring until then)."""
        self._built(allow_encoding=True)

    def _built(self, allow_encoding: bool) -> tuple[np.ndarray | None, dict[str, int]]:
        with self._lock:
            if self._vecs is None:
                if self._missing and not allow_encoding:
                    return None, {}
                got = self._source(allow_encoding)
                if got is None:
                    self._missing = True
                    return None, {}
                ids, vecs = got
                vecs = np.asarray(vecs, dtype=np.float32)  # (N, D)
                if len(ids):
                    c = vecs - vecs.mean(0)  # (N, D): titles share "the", "how to", the product name
                    vecs = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
                self._vecs, self._row = _compact(vecs), {a: i for i, a in enumerate(ids)}
                logger.debug("title vectors ready for %d articles", len(ids))
            return self._vecs, self._row

    def export(self) -> tuple[list[str], np.ndarray] | None:
        """(article ids, their centred title vectors (N, D)) when they are ready without a model."""
        vecs, row = self._built(allow_encoding=False)
        return None if vecs is None else (list(row), vecs)

    def preload(self, ids: Sequence[str], vecs: np.ndarray) -> None:
        """Install centred title vectors saved earlier for exactly this KB (a saved version's)."""
        if len(ids) != len(vecs):
            raise ConfigError(f"{len(ids)} ids but {len(vecs)} title vectors")
        with self._lock:
            self._vecs, self._row, self._missing = _compact(vecs), {a: i for i, a in enumerate(ids)}, False

    def query(self, ids: Sequence[str | None]) -> np.ndarray | None:
        """The unit mean of these articles' title vectors, (D,); None when none of them has one (pages outside
        the KB) or the titles are not embedded yet."""
        vecs, row = self._built(allow_encoding=False)
        rows = [row[a] for a in ids if a is not None and a in row]
        if vecs is None or not rows:
            return None
        q = vecs[rows].astype(np.float32).mean(0)  # (D,)
        n = float(np.linalg.norm(q))
        return q / n if n > 1e-12 else None

    def scores(self, query: np.ndarray, ids: Sequence[str]) -> np.ndarray:
        """Cosine of each article's title vector with `query`, (len(ids),); 0 for an article without one."""
        vecs, row = self._built(allow_encoding=False)
        out = np.zeros(len(ids), dtype=np.float32)
        if vecs is None:
            return out
        rows = np.fromiter(map(row.get, ids, repeat(-1)), dtype=np.int64, count=len(ids))  # (n,) -1: no title
        have = np.flatnonzero(rows >= 0)
        if len(have):
            out[have] = vecs[rows[have]].astype(np.float32) @ query  # (n,)
        return out


def _compact(vecs: np.ndarray) -> np.ndarray:
    return np.asarray(vecs, dtype=np.float16 if len(vecs) > COMPACT_ABOVE else np.float32)
