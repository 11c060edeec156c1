"""Maximal marginal relevance (plugin.rules.mmr_select): known answers and a reference implementation."""

from __future__ import annotations

import numpy as np

from plugin.knowledge_base import Article
from plugin.rules import Candidate, mmr_select


def _cands(scores):
    return [Candidate(Article(id=f"a{i}", title=f"A{i}", text="t"), s, s) for i, s in enumerate(scores)]


def _reference(scores: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> list[int]:
    sims = vectors @ vectors.T
    chosen: list[int] = []
    for _ in range(min(k, len(scores))):
        best, best_v = -1, -np.inf
        for j in range(len(scores)):
            if j in chosen:
                continue
            pen = max((sims[j, c] for c in chosen), default=0.0)
            v = lam * scores[j] - (1 - lam) * pen
            if v > best_v:
                best, best_v = j, v
        chosen.append(best)
    return chosen


def test_a_near_duplicate_of_the_first_pick_gives_way_to_a_different_article():
    e = np.eye(3, dtype=np.float32)
    dup = (e[0] + 0.01 * e[1]) / np.linalg.norm(e[0] + 0.01 * e[1])
    vectors = np.stack([e[0], dup, e[2]])  # 0 and 1 are the same article twice; 2 is about something else
    assert mmr_select(_cands([0.9, 0.89, 0.6]), vectors, 2, 0.5) == [0, 2]
    assert mmr_select(_cands([0.9, 0.89, 0.6]), vectors, 2, 1.0) == [0, 1]  # pure relevance keeps the order


def test_matches_the_textbook_definition_on_random_pools():
    rng = np.random.default_rng(0)
    for n, k, lam in ((1, 3, 0.85), (8, 3, 0.85), (60, 5, 0.85), (120, 5, 0.5), (30, 30, 0.7)):
        v = rng.normal(size=(n, 16)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        s = rng.uniform(size=n).astype(np.float32)
        assert mmr_select(_cands(s.tolist()), v, k, lam) == _reference(s, v, k, lam)
    assert mmr_select([], np.zeros((0, 4), np.float32), 3, 0.85) == []
