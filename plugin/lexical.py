"""BM25 over the knowledge base's article texts: the lexical half of lexical + dense fusion.

MiniLM sees the first ~256 word pieces of a page and blurs exact terms (function names, settings, error codes);
BM25 over the whole text keeps them. The recommender asks it how well each candidate matches the text the
visitor has read, and adds that (scaled to [0, 1] per session) to the dense score.

The BM25 maths is the `bm25s` library's (Lucene's variant, sparse matrices, no pickle involved). The index is
built from the KB's own texts, which the index folder already stores atomically in articles.jsonl, so it is
rebuilt lazily after a load or a change instead of being saved beside it.

Up to `FULL_SCAN_MAX` articles every article is scored (and the best lexical matches join the dense candidates).
Above it, a request scores only the candidates it is asked about (`LexicalScores.get`): a dense array over a
million articles, summed and partitioned on every request, cost more than everything else in a suggestion
(BENCHMARKS.md, "A million articles"). There each text's scores are divided by their best over those candidates
instead of over the whole KB, and no article joins the candidates on its words alone.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import Any

import numpy as np

from .ttl_cache import TTLCache

__all__ = ["FULL_SCAN_MAX", "LexicalIndex", "LexicalScores", "QUERY_CHARS", "query_terms"]

logger = logging.getLogger(__name__)

# Enough of a page to carry its vocabulary; bounds the cost of a session query made of long pages.
QUERY_CHARS = 4000
# Scores of recently read texts, kept so a session's pages are tokenised and scored once, not on every request
# (a page is read in many requests: every suggestion of its session). Bounded in floats, not entries: each
# entry holds one score per article. Entries lapse after the session TTL where one is given (`LexicalIndex`):
# an erased session's scores and tokens leave every worker, not only the one that erased it (`forget`).
_CACHE_FLOATS = 2_000_000  # 8 MB per worker
# ... and in entries: with a small KB the float bound alone would allow hundreds of thousands of entries. Entries are
# keyed by a digest of the text, not the text: keys of up to QUERY_CHARS characters each were outside the float
# bound and grew a worker by ~0.4 MiB/s under bench/wrk_load.py's mixed traffic (every site page a new text).
_CACHE_ENTRIES = 8192


def _cache_key(head: str) -> bytes:
    return hashlib.blake2b(head.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def query_terms(text: str) -> str:
    """The BM25 terms of a text as `LexicalIndex.search` queries with it (its head, tokenised), joined by spaces (a
    token is a run of word characters: never a space). Kept with a stored page's content (`PageContent.terms`), so
    that a worker whose BM25 cache lost the page does not tokenise it again: that was a third of a miss's cost."""
    import bm25s

    return " ".join(_tokens(text[:QUERY_CHARS], bm25s))


def _tokens(head: str, bm25s: Any) -> list[str]:
    """``bm25s.tokenize(head, stopwords="en", return_ids=False)[0]``: the same tokens (its pattern, lower-casing and
    English stop words, no stemmer; a test holds them equal), without its per-call cost — a progress-bar object,
    a stop-word set and a vocabulary for one text, ~40 % of tokenising a short query on the request path."""
    split, stop = _tokenizer(bm25s)
    return [t for t in split(head.lower()) if t not in stop]


@functools.lru_cache(maxsize=1)
def _tokenizer(bm25s: Any) -> tuple[Callable[[str], list[str]], frozenset[str]]:
    """bm25s.tokenize's default token pattern (its signature's default) and its English stop words."""
    pattern = inspect.signature(bm25s.tokenize).parameters["token_pattern"].default
    return re.compile(pattern).findall, frozenset(bm25s.tokenization._infer_stopwords("en"))


def _query(text: str, name: tuple[str, ...] | None) -> tuple[str, bytes | tuple[str, ...]] | None:
    """A text's head as a query and its cache key (its name, else a digest of the head); None for a blank text."""
    if not text.strip():
        return None
    head = text[:QUERY_CHARS]
    return head, name if name is not None else _cache_key(head)


def _query_of(
    texts: Sequence[str], i: int, name: tuple[str, ...] | None, terms: str | None
) -> tuple[str, bytes | tuple[str, ...]] | None:
    """`_query(texts[i], name)`, without making the text when it is named and its terms are known (a stored page's:
    terms come from a text that was not blank, and a miss then reads the terms, not the head)."""
    if name is not None and terms:
        return "", name
    return _query(texts[i], name)


# A caller that can name a text more cheaply than by hashing it passes a key of its own (a tuple: never equal to a
# digest, which is bytes, so a text a visitor wrote cannot land on a named text's entry). Hashing 4,000 characters
# costs ~8 us, twenty of them a long session's suggestion (bench/session_length.py).
TextKey = tuple[str, ...]


def _text_cache(ttl_seconds: float | None, clock: Callable[[], float]) -> TTLCache:
    # the bounds are read when an index is made (a test lowers them for one index)
    return TTLCache(_CACHE_ENTRIES, max_weight=_CACHE_FLOATS, ttl_seconds=ttl_seconds, clock=clock)


# Above this many articles BM25 scores the dense candidates only (see the module docstring). The relevance
# benchmark's KBs (hundreds to thousands of pages) stay far below it: their suggestions do not change.
FULL_SCAN_MAX = 200_000


class LexicalIndex:
    """BM25 scores of the KB's articles for a text. `texts` is called to (re)build after `invalidate`."""

    def __init__(
        self,
        texts: Callable[[], tuple[Sequence[str], Sequence[str]]],
        *,
        full_scan_max: int = FULL_SCAN_MAX,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`ttl_seconds`: cached scores and tokens unused for that long are dropped (the recommender gives the
        session TTL); None: only the bounds drop them."""
        self._texts = texts  # -> (article ids, texts)
        self._full_scan_max = full_scan_max
        self._lock = threading.Lock()
        self._bm25 = None
        self._row: dict[str, int] = {}
        self._ids: list[str] = []
        self._docs = None  # above full_scan_max: the scores article-major (scipy CSR, N x vocabulary)
        # Keyed by `_cache_key` of a text's head or by its name, bounded in the numbers they hold (`_CACHE_FLOATS`)
        # and in entries (`_CACHE_ENTRIES`); guarded by self._lock.
        self._scores: TTLCache[bytes | TextKey, np.ndarray] = _text_cache(ttl_seconds, clock)  # (N,) / their best
        self._tokens: TTLCache[bytes | TextKey, tuple[np.ndarray, np.ndarray]] = _text_cache(ttl_seconds, clock)

    def invalidate(self) -> None:
        with self._lock:
            self._bm25 = None
            self._scores.clear()
            self._tokens.clear()

    def forget(self, texts: Iterable[str] = (), names: Iterable[TextKey] = ()) -> None:
        """Drop what is cached for these texts (found by the digest of their head) and names: their session was
        erased, and a text's scores, and its tokens, are traces of what the visitor read or typed."""
        keys: list[bytes | TextKey] = list(names)
        keys.extend(q[1] for q in (_query(t, None) for t in texts) if q is not None)
        with self._lock:
            self._scores.forget(keys)
            self._tokens.forget(keys)

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
                self._docs = _article_major(bm25) if len(ids) > self._full_scan_max else None
                self._bm25 = bm25
                logger.debug("BM25 index built over %d articles", len(ids))
            return self._bm25, self._row, self._ids

    def search(
        self,
        texts: Sequence[str],
        weights: Sequence[float],
        keys: Sequence[TextKey | None] | None = None,
        terms: Sequence[str | None] | None = None,
    ) -> LexicalScores:
        """BM25 of every article for each text (a read page, a query), each divided by its best score over the
        KB (so 1.0 is the best lexical match), then summed with `weights`. `keys`: where not None, a name that
        stands for exactly that text while the KB is unchanged: the cache is keyed by it instead of the text's
        digest, and `texts[i]` is not read when the cache holds it (`texts` may make its items on demand).
        `terms`: where not None, `query_terms(texts[i])` worked out before (a stored page's), read instead of
        tokenising the text on a cache miss (read only then: it may make its items on demand too)."""
        import bm25s

        bm25, row, ids = self._built()
        named = keys if keys is not None else [None] * len(texts)
        known = terms if terms is not None else [None] * len(texts)
        docs = self._docs
        if docs is not None and self._bm25 is bm25:
            return self._candidate_scores(bm25, docs, row, texts, weights, named, known)
        parts: list[np.ndarray] = []  # each text's (N,) scores, and its weight
        kept: list[float] = []
        asked = [(i, name) for i, name in enumerate(named) if name is not None and weights[i] > 0]
        with self._lock:  # the named ones at once, at one clock reading: a long session names 20
            found = self._scores.get_many([name for _, name in asked]) if self._bm25 is bm25 else []
        cached = {i: scores for (i, _), scores in zip(asked, found)}
        for i, (w, name) in enumerate(zip(weights, named)):
            if not row or w <= 0:
                continue
            # a cached text was not blank: only a blank one is skipped below, never cached
            scores = cached.get(i)
            if scores is None:
                query = _query_of(texts, i, name, known[i])
                if query is None:
                    continue
                head, key = query
                with self._lock:
                    # again for a name: the same page can come twice in one call, and its first use put it there
                    scores = self._scores.get(key) if self._bm25 is bm25 else None
                if scores is None:
                    scores = self._normalised(bm25, _terms_or_tokens(known[i], head, bm25s), len(row))
                    with self._lock:
                        if self._bm25 is bm25:  # not an index rebuilt meanwhile
                            self._scores.put(key, scores, len(scores))
            parts.append(scores)
            kept.append(w)
        return LexicalScores(_weighted_sum(parts, kept, len(row)), row, ids)

    def _candidate_scores(
        self,
        bm25,
        docs,
        row: dict[str, int],
        texts: Sequence[str],
        weights: Sequence[float],
        named: Sequence[TextKey | None],
        known: Sequence[str | None],
    ) -> LexicalScores:
        """Scores computed later, for the candidates asked about: each text's tokens (cached like the full
        scores) as a query."""
        import bm25s

        queries: list[tuple[np.ndarray, np.ndarray]] = []
        kept: list[float] = []
        for i, (w, name) in enumerate(zip(weights, named)):
            if not row or w <= 0:
                continue
            q = None
            if name is not None:  # as in `search`: a cached text was not blank
                with self._lock:
                    q = self._tokens.get(name)
            if q is None:
                query = _query_of(texts, i, name, known[i])
                if query is None:
                    continue
                head, key = query
                with self._lock:
                    q = self._tokens.get(key)
            if q is None:
                tokens = _terms_or_tokens(known[i], head, bm25s)
                tok, counts = np.unique(np.asarray(bm25.get_tokens_ids(tokens), dtype=np.int64), return_counts=True)
                q = (tok, counts.astype(np.float32))
                with self._lock:
                    self._tokens.put(key, q, 2 * len(tok))
            queries.append(q)
            kept.append(w)
        return LexicalScores(np.zeros(0, dtype=np.float32), row, [], candidates=(docs, queries, kept))

    @staticmethod
    def _normalised(bm25, tokens: list[str], n: int) -> np.ndarray:
        """BM25 of every article for these tokens divided by the best (zeros when nothing matches)."""
        if not tokens:
            return np.zeros(n, dtype=np.float32)
        s = np.asarray(_bm25_scores(bm25, tokens), dtype=np.float32)  # (N,)
        top = float(s.max())
        return s / top if top > 0 else np.zeros(n, dtype=np.float32)


def _terms_or_tokens(terms: str | None, head: str, bm25s: Any) -> list[str]:
    """The head's tokens: from its stored terms (`query_terms`) when there are some, else tokenised now."""
    return terms.split() if terms is not None else _tokens(head, bm25s)


def _bm25_scores(bm25, tokens: list[str]) -> np.ndarray:
    """`bm25.get_scores(tokens)`, the same float32 numbers, in one numpy call instead of one per query token.

    bm25s adds each token's column of precomputed scores into the result with its own `np.add.at`, token after
    token (a 220-word page: 220 calls, ~0.4 ms; a KB page's 4,000 characters ~0.6 ms, most of a BM25 cache miss).
    Here every token's column is gathered in query order and added with a single `np.add.at`, which adds its items
    one after another in that order: each article's score gets the same float32 additions in the same order, so
    the result is bit for bit bm25s's (tests/test_lexical_scores.py). A variant with a non-occurrence score
    (BM25L / BM25+) goes to bm25s itself."""
    s = bm25.scores
    if getattr(bm25, "nonoccurrence_array", None) is not None:
        return bm25.get_scores(tokens)
    ids = np.asarray(bm25.get_tokens_ids(tokens), dtype=np.int64)  # (Q,) unknown tokens left out, repeats kept
    indptr, indices, data = s["indptr"], s["indices"], s["data"]
    starts, ends = indptr[ids], indptr[ids + 1]  # (Q,) each token's column
    lengths = (ends - starts).astype(np.int64)
    # positions of every column's entries, columns in query order: start_q, start_q + 1, ..., end_q - 1, then q + 1
    at = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(lengths.sum())
    out = np.zeros(int(s["num_docs"]), dtype=np.dtype(bm25.dtype))  # (N,)
    np.add.at(out, indices[at], data[at])
    return out


def _article_major(bm25):
    """bm25s's precomputed scores (token-major CSC: a token's column lists the articles holding it) as an
    article-major CSR matrix, N x vocabulary, so that a few articles' scores are read without touching the rest."""
    import scipy.sparse as sp

    s = bm25.scores
    if getattr(bm25, "nonoccurrence_array", None) is not None:  # BM25L / BM25+ (not the default Lucene variant)
        raise NotImplementedError("candidate-only BM25 needs a variant without a non-occurrence score")
    shape = (int(s["num_docs"]), len(s["indptr"]) - 1)
    return sp.csc_matrix((s["data"], s["indices"], s["indptr"]), shape=shape).tocsr()


def _weighted_sum(parts: Sequence[np.ndarray], weights: Sequence[float], n: int) -> np.ndarray:
    """sum_i weights[i] * parts[i] in float32, added in order from zero -- the same numbers as a loop of `total +=
    w * scores` -- as two numpy calls: a long session's 20 texts cost ~2 us each as separate calls."""
    if not parts:
        return np.zeros(n, dtype=np.float32)
    stacked = np.array(parts, dtype=np.float32)  # (T, N); half np.stack's cost for a list of equal rows
    stacked *= np.asarray(weights, dtype=np.float32)[:, None]
    # a reduction over the outer axis adds the rows one after another (pairwise summation is along the inner,
    # contiguous axis only); 0 + x is x, so the first row needs no zero before it
    return np.add.reduce(stacked, axis=0)


class LexicalScores:
    """One search's scores over the KB, looked up by article id."""

    def __init__(
        self,
        scores: np.ndarray,
        row: dict[str, int],
        ids: list[str],
        *,
        candidates: tuple[object, list[tuple[np.ndarray, np.ndarray]], list[float]] | None = None,
    ) -> None:
        self._scores = scores  # (N,); empty when scored per candidate
        self._row = row  # article id -> position in scores
        self._ids = ids  # position -> article id
        self._candidates = candidates  # (article-major scores, each text's (token ids, counts), weights)

    def get(self, ids: Sequence[str]) -> np.ndarray:
        if self._candidates is not None:
            return self._get_candidates(ids)
        rows = np.fromiter(map(self._row.get, ids, repeat(-1)), dtype=np.int64, count=len(ids))  # (n,) -1: not held
        out = np.zeros(len(ids), dtype=np.float32)
        have = rows >= 0
        out[have] = self._scores[rows[have]]
        return out

    def _get_candidates(self, ids: Sequence[str]) -> np.ndarray:
        """BM25 of these articles for each text, divided by the text's best over them, summed with the weights.

        Read from the articles' rows alone (numpy, no sparse product: scipy's converts a matrix as wide as the
        vocabulary on every call, ~1.3 ms at 200,000 articles)."""
        assert self._candidates is not None
        docs, queries, weights = self._candidates
        out = np.zeros(len(ids), dtype=np.float32)  # (n,)
        every = np.fromiter(map(self._row.get, ids, repeat(-1)), dtype=np.int64, count=len(ids))  # (n,) -1: none
        have = np.flatnonzero(every >= 0)  # (m,)
        if not len(have) or not queries:
            return out
        indptr, indices, data = docs.indptr, docs.indices, docs.data  # type: ignore[attr-defined]
        rows = every[have]  # (m,)
        starts, ends = indptr[rows], indptr[rows + 1]  # (m,)
        lengths = (ends - starts).astype(np.int64)
        at = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(lengths.sum())
        tokens, scores = indices[at], data[at]  # (nnz,) each article's tokens and their BM25 parts
        owner = np.repeat(np.arange(len(rows)), lengths)  # (nnz,) which article each belongs to
        s = np.zeros((len(rows), len(queries)), dtype=np.float32)  # (m, T)
        for j, (tok, counts) in enumerate(queries):  # tok sorted (np.unique)
            if not len(tok):
                continue
            pos = np.minimum(np.searchsorted(tok, tokens), len(tok) - 1)
            hit = tok[pos] == tokens
            s[:, j] = np.bincount(owner[hit], weights=scores[hit] * counts[pos[hit]], minlength=len(rows))
        top = s.max(axis=0)  # (T,)
        s = np.divide(s, top, out=np.zeros_like(s), where=top > 0)
        out[have] = s @ np.asarray(weights, dtype=np.float32)  # (m,)
        return out

    def top(self, n: int) -> list[str]:
        """Ids of the n best-scoring articles with a positive score, best first (none when scored per
        candidate: finding them would be the full scan)."""
        if n <= 0 or not len(self._scores):
            return []
        n = min(n, len(self._scores))
        best = np.argpartition(-self._scores, n - 1)[:n]
        best = best[np.argsort(-self._scores[best], kind="stable")]
        return [self._ids[i] for i in best if self._scores[i] > 0]
