"""Item-to-item transitions learned from the event log: where the readers of a page went next.

The trained content intent scores articles by their text (plus learned vectors for the clicked ones); a count
model over the same click sessions knows "after page i comes page j" outright, which is what the lab's Markov-1
is best at (BENCHMARKS "Learning loop", round 2: the trained intent reached 0.88-0.91x Markov-1's MRR@5). This
module is that count model as a component of the trained intent (`intent.ContentSTAMP.transitions`), blended
into its scores:

    P(j | i)   = C[i, j] / (sum_j' C[i, j'] + alpha)        C: consecutive clicks i -> j in training sessions
    T(j | s)   = sum_{t=0..history-1} decay^t P(j | s_{n-t})  s_n: the page read last (unknown pages add nothing)
    pop(j)     = log(1 + n_j) / log(1 + max_j' n_j')         n_j: clicks on j in the training sessions
    score(j)   = content score(j) + weight * T(j | s) + popularity * pop(j)

alpha keeps a page read once from speaking with full confidence. The popularity prior is Markov-1's own tie-break
(its count-free articles rank by how often they were read): the content model has no per-article bias, and the
walks' topic jumps land on popular pages (BENCHMARKS "Learning loop", round 5). Only the `MAX_POPULAR` most read
articles carry it, so the learned part beside FAISS's text search stays small on a large KB. An article nobody
reached in training has T = 0 and pop = 0 and keeps its content rank; one added after training (outside the
intent's catalogue) is ranked by the intent's cold-start policy (its zero-shot rank, or a calibrated score:
`plugin/cold_start.py`). train-intent picks weight, decay and popularity on its own validation split
(`content_training.choose_transitions`); weight 0 and popularity 0 mean the component is not installed.

Persisted beside the intent model: `transitions.json` (config, article ids, the sha256 of the arrays) and
`transitions.npz` (the CSR arrays of P and the click counts, read with allow_pickle=False; a file saved before
the counts were kept reads as no clicks).
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .arrays import open_npz
from .atomic import atomic_write_json, read_committed, recorded_sha256, replace_keeping_committed
from .errors import ConfigError, IndexFormatError

__all__ = ["ItemTransitions", "TransitionConfig", "ITEM_MODELS", "MAX_POPULAR"]

# What `train-intent --item-model` accepts: "auto" lets the validation split decide between the others.
ITEM_MODELS = ("auto", "none", "markov")

# The most read articles that carry the popularity prior: every one is an entry of the intent's learned part,
# scored beside FAISS's text search on each request (recommender._candidates), so the count is kept bounded.
MAX_POPULAR = 1024

_META = "transitions.json"
_ARRAYS = "transitions.npz"


@dataclass(frozen=True)
class TransitionConfig:
    weight: float = 1.0  # added to the content score per unit of T (cosines live in [-1, 1], T in [0, 1 + decay + ...])
    decay: float = 0.0  # weight of the page read t steps before the last: decay^t (0: the last page only, Markov-1)
    history: int = 3  # pages read, newest first, that speak
    alpha: float = 1.0  # additive smoothing of each row's total
    popularity: float = 0.0  # added per unit of pop(j) in [0, 1]: the log-scaled clicks of j (0: no prior)

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ConfigError(f"TransitionConfig.weight must be >= 0, got {self.weight}")
        if self.popularity < 0:
            raise ConfigError(f"TransitionConfig.popularity must be >= 0, got {self.popularity}")
        if not 0.0 <= self.decay < 1.0:
            raise ConfigError(f"TransitionConfig.decay must be in [0, 1), got {self.decay}")
        if self.history < 1:
            raise ConfigError(f"TransitionConfig.history must be >= 1, got {self.history}")
        if self.alpha < 0:
            raise ConfigError(f"TransitionConfig.alpha must be >= 0, got {self.alpha}")


class ItemTransitions:
    """Smoothed first-order transition probabilities between article ids, scored against a session.

    The matrix is kept in CSR form as three numpy arrays (row i's targets are indices[indptr[i]:indptr[i+1]]):
    a session reads at most `history` rows, and numpy alone keeps `import plugin` and the CLI free of scipy."""

    def __init__(
        self,
        keys: Sequence[str],
        indptr: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray,
        config: TransitionConfig | None = None,
        clicks: np.ndarray | None = None,
    ) -> None:
        self.keys = tuple(keys)
        self.indptr = np.asarray(indptr, np.int64)  # (N + 1,)
        self.indices = np.asarray(indices, np.int64)  # (nnz,) target rows
        self.data = np.asarray(data, np.float32)  # (nnz,) P(target | row)
        n = len(self.keys)
        self.clicks = np.zeros(n, np.float32) if clicks is None else np.asarray(clicks, np.float32)  # (N,)
        if self.clicks.shape != (n,) or np.any(self.clicks < 0):
            raise ConfigError(f"transition click counts must be {n} numbers >= 0, got shape {self.clicks.shape}")
        if (
            len(self.indptr) != n + 1
            or self.indptr[0] != 0
            or self.indptr[-1] != len(self.indices)
            or len(self.indices) != len(self.data)
            or np.any(np.diff(self.indptr) < 0)
            or (len(self.indices) and not 0 <= self.indices.min() <= self.indices.max() < n)
        ):
            raise ConfigError(f"transition arrays do not form a {n} x {n} CSR matrix")
        self.config = config or TransitionConfig()
        self._row = {k: i for i, k in enumerate(self.keys)}
        # pop(j) of the MAX_POPULAR most read articles, fixed by the counts: (ids, (m,) values in [0, 1])
        top = np.argsort(-self.clicks, kind="stable")[:MAX_POPULAR]
        top = top[self.clicks[top] > 0]  # (m,)
        self._popular = top
        self._pop = (np.log1p(self.clicks[top]) / max(float(np.log1p(self.clicks.max(initial=0.0))), 1e-12)).astype(
            np.float32
        )  # (m,)

    @classmethod
    def fit(cls, sessions: Sequence[Sequence[str]], config: TransitionConfig | None = None) -> ItemTransitions:
        """Count consecutive clicks i -> j (i != j) and the clicks on each article in article-id sessions,
        oldest first."""
        cfg = config or TransitionConfig()
        pairs = Counter((a, b) for s in sessions for a, b in zip(s, s[1:]) if a != b)
        read = Counter(a for s in sessions for a in s)
        keys = sorted({k for pair in pairs for k in pair} | set(read))
        row = {k: i for i, k in enumerate(keys)}
        triples = sorted((row[a], row[b], c) for (a, b), c in pairs.items())  # row-major: the CSR order
        src = np.array([t[0] for t in triples], np.int64)  # (nnz,)
        counts = np.array([t[2] for t in triples], np.float64)  # (nnz,)
        totals = np.bincount(src, weights=counts, minlength=len(keys))  # (N,)
        data = counts / np.maximum(totals[src] + cfg.alpha, 1e-12)  # (nnz,)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=len(keys)))])  # (N + 1,)
        clicks = np.array([read[k] for k in keys], np.float32)  # (N,)
        return cls(keys, indptr, np.array([t[1] for t in triples], np.int64), data, cfg, clicks)

    def with_config(self, config: TransitionConfig) -> ItemTransitions:
        """The same counts blended with another weight/decay/history/popularity (alpha is fixed at fit time)."""
        if config.alpha != self.config.alpha:
            raise ConfigError("alpha is applied when the counts are fitted; fit again to change it")
        return ItemTransitions(self.keys, self.indptr, self.indices, self.data, config, self.clicks)

    def _rows_of(self, session: Sequence[str | None]) -> list[tuple[float, int]]:
        """(decay^t, row) of the last `history` pages that have transitions out, t steps before the last page.

        A page the counts do not know keeps its place (it adds nothing): after a page added since training the
        content, which reads its text, decides. Falling back to the last page the counts know instead, as the
        bench's Markov-1 does, was tried in round 5 of the learning-loop bench: it helped Django's test steps
        after such a page and hurt PostgreSQL's, and the validation split has no such steps to choose on."""
        out: list[tuple[float, int]] = []
        for t, key in enumerate(reversed(list(session)[-self.config.history :])):
            w = self.config.decay**t
            if w == 0.0:
                break
            r = self._row.get(key) if key is not None else None
            if r is not None and self.indptr[r + 1] > self.indptr[r]:
                out.append((w, r))
        return out

    def components(
        self, session: Sequence[str | None], popular: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """T(j | session) unweighted and pop(j), over the rows either is positive for (pop only when `popular`,
        default: when the config weighs it): (rows (n,) into `keys`, T (n,), pop (n,)). What `scores` weighs;
        validation weighs one session's components many ways."""
        cols, vals = [], []
        for w, r in self._rows_of(session):
            lo, hi = self.indptr[r], self.indptr[r + 1]
            cols.append(self.indices[lo:hi])
            vals.append(w * self.data[lo:hi].astype(np.float64))
        if popular is None:
            popular = self.config.popularity > 0
        pop_rows = self._popular if popular else np.zeros(0, np.int64)
        rows, inverse = np.unique(np.concatenate([*cols, pop_rows]), return_inverse=True)  # (n,), (m,)
        n_t = sum(len(c) for c in cols)
        trans = np.bincount(inverse[:n_t], weights=np.concatenate([*vals, np.zeros(0)]), minlength=len(rows))  # (n,)
        pop = np.zeros(len(rows))  # (n,)
        pop[inverse[n_t:]] = self._pop[: len(pop_rows)]
        return rows, trans, pop

    def scores(self, session: Sequence[str | None]) -> tuple[list[str], np.ndarray]:
        """weight * T(j | session) + popularity * pop(j) for every article j it is positive for: (ids, scores (n,))."""
        cfg = self.config
        if cfg.weight == 0.0 and cfg.popularity == 0.0:
            return [], np.zeros(0, np.float32)
        rows, trans, pop = self.components(session)
        score = cfg.weight * trans + cfg.popularity * pop  # (n,)
        keep = score > 0
        return [self.keys[j] for j in rows[keep]], score[keep].astype(np.float32)

    def save(self, directory: str | os.PathLike[str]) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, indptr=self.indptr, indices=self.indices, data=self.data, clicks=self.clicks)
        # Arrays first, then the metadata recording their sha256: the pair commits with the second rename.
        sha = replace_keeping_committed(d / _ARRAYS, buf.getvalue(), recorded_sha256(d / _META))
        atomic_write_json(
            d / _META,
            {"type": "item-transitions", "config": asdict(self.config), "keys": list(self.keys), "sha256": sha},
        )

    @staticmethod
    def saved_in(directory: str | os.PathLike[str]) -> bool:
        return (Path(directory) / _META).exists()

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ItemTransitions:
        d = Path(directory)
        try:
            meta = json.loads((d / _META).read_text(encoding="utf-8"))
            keys = [str(k) for k in meta["keys"]]
            config = TransitionConfig(**meta["config"])
            data = read_committed(d / _ARRAYS, meta.get("sha256"))
            with open_npz(data) as z:
                clicks = z["clicks"] if "clicks" in z.files else None  # saved before the counts were kept
                return cls(keys, z["indptr"], z["indices"], z["data"], config, clicks)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"no readable item transitions in {d}: {exc}") from None
