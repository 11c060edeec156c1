"""BM25 over the knowledge base's article texts: the lexical half of lexical + dense fusion.

MiniLM sees the first ~256 word pieces of a page and blurs exact terms (function names, settings, error codes);
BM25 over the whole text keeps them. The recommender asks it how well each candidate matches the text the
visitor has read, and adds that (scaled to [0, 1] per session) to the dense score.

The BM25 maths is the `bm25s` library's (Lucene's variant, sparse matrices, no pickle involved). The index is
built from the KB's own texts, which the index folder already stores atomically in articles.jsonl, so it is
rebuilt lazily after a load or a change instead of being saved beside it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["LexicalIndex", "LexicalScores", "QUERY_CHARS"]

logger = logging.getLogger(__name__)

# Enough of a page to carry its vocabulary; bounds the cost of a session query made of long pages.
QUERY_CHARS = 4000
# Scores of recently read texts, kept so a session's pages are tokenised and scored once, not on every request
# (a page is read in many requests: every suggestion of its session). Bounded in floats, not entries: each
# entry holds one score per article.
_CACHE_FLOATS = 2_000_000  # 8 MB per worker


class LexicalIndex:
    """BM25 scores of the KB's articles for a text. `texts` is called to (re)build after `invalidate`."""

    def __init__(self, texts: Callable[[], tuple[Sequence[str], Sequence[str]]]) -> None:
        self._texts = texts  # -> (article ids, texts)
        self._lock = threading.Lock()
        self._bm25 = None
        self._row: dict[str, int] = {}
        self._ids: list[str] = []
        self._scores: OrderedDict[str, np.ndarray] = OrderedDict()  # text head -> (N,) scores / their best

    def invalidate(self) -> None:
        with self._lock:
            self._bm25 = None
            self._scores.clear()

    def warm(self) -> None:
        """Build the index now (it is otherwise built at the first search): servers call this off the request
        path, so no visitor's request pays for it (hundreds of milliseconds for a thousand pages)."""
        self._built()

    def _built(self):
        import bm25s

        with self._lock:
            if self._bm25 is None:
                ids, texts = self._texts()
                bm25 = bm25s.BM25()
                if ids:
                    bm25.index(bm25s.tokenize(list(texts), stopwords="en", show_progress=False), show_progress=False)
                self._row = {a: i for i, a in enumerate(ids)}
                self._ids = list(ids)
                self._bm25 = bm25
                logger.debug("BM25 index built over %d articles", len(ids))
            return self._bm25, self._row, self._ids

    def search(self, texts: Sequence[str], weights: Sequence[float]) -> LexicalScores:
        """BM25 of every article for each text (a read page, a query), each divided by its best score over the
        KB (so 1.0 is the best lexical match), then summed with `weights`."""
        import bm25s

        bm25, row, ids = self._built()
        total = np.zeros(len(row), dtype=np.float32)  # (N,)
        for text, w in zip(texts, weights):
            if not row or w <= 0 or not text.strip():
                continue
            head = text[:QUERY_CHARS]
            with self._lock:
                scores = self._scores.get(head) if self._bm25 is bm25 else None
                if scores is not None:
                    self._scores.move_to_end(head)
            if scores is None:
                scores = self._normalised(
                    bm25, bm25s.tokenize(head, stopwords="en", return_ids=False, show_progress=False)[0], len(row)
                )
                with self._lock:
                    if self._bm25 is bm25:  # not an index rebuilt meanwhile
                        self._scores[head] = scores
                        while len(self._scores) * max(len(row), 1) > _CACHE_FLOATS and len(self._scores) > 1:
                            self._scores.popitem(last=False)
            total += w * scores
        return LexicalScores(total, row, ids)

    @staticmethod
    def _normalised(bm25, tokens: list[str], n: int) -> np.ndarray:
        """BM25 of every article for these tokens divided by the best (zeros when nothing matches)."""
        if not tokens:
            return np.zeros(n, dtype=np.float32)
        s = np.asarray(bm25.get_scores(tokens), dtype=np.float32)  # (N,)
        top = float(s.max())
        return s / top if top > 0 else np.zeros(n, dtype=np.float32)


class LexicalScores:
    """One search's scores over the KB, looked up by article id."""

    def __init__(self, scores: np.ndarray, row: dict[str, int], ids: list[str]) -> None:
        self._scores = scores  # (N,)
        self._row = row  # article id -> position in scores
        self._ids = ids  # position -> article id

    def get(self, ids: Sequence[str]) -> np.ndarray:
        return np.array([self._scores[self._row[a]] if a in self._row else 0.0 for a in ids], dtype=np.float32)

    def top(self, n: int) -> list[str]:
        """Ids of the n best-scoring articles with a positive score, best first."""
        if n <= 0 or not len(self._scores):
            return []
        n = min(n, len(self._scores))
        best = np.argpartition(-self._scores, n - 1)[:n]
        best = best[np.argsort(-self._scores[best], kind="stable")]
        return [self._ids[i] for i in best if self._scores[i] > 0]
