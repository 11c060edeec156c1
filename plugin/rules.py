"""Business rules applied to index candidates: filters, freshness, minimum score, MMR diversity."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from .knowledge_base import Article

__all__ = [
    "Candidate",
    "passes_filters",
    "passing",
    "freshness_bonus",
    "merge_cold_start",
    "mmr_order",
    "mmr_select",
]


@dataclass(frozen=True)
class Candidate:
    article: Article
    relevance: float  # cosine of intent and article
    score: float  # relevance plus bonuses, what MMR ranks by


def passes_filters(
    article: Article,
    *,
    exclude_ids: Collection[str] = (),
    exclude_urls: Collection[str] = (),
    locale: str | None = None,
    tags: Collection[str] | None = None,
) -> bool:
    if article.meta.get("hub"):
        return False  # a table of contents: it counts as read, but suggesting it sends the visitor to a list
    if article.id in exclude_ids:
        return False
    if exclude_urls and article.url and article.url in exclude_urls:
        return False
    if locale and article.locale and article.locale.split("-")[0].lower() != locale.split("-")[0].lower():
        return False
    if tags and not set(tags) & set(article.tags):
        return False
    return True


def passing(
    articles: Sequence[Article],
    *,
    exclude_ids: Collection[str] = (),
    exclude_urls: Collection[str] = (),
    locale: str | None = None,
    tags: Collection[str] | None = None,
) -> list[Article]:
    """The articles that `passes_filters` keeps, in order: the same rules, with what the articles share (the
    locale's language, the tag set) worked out once instead of per article (a pool is ~80 candidates a pass)."""
    lang = locale.split("-")[0].lower() if locale else None
    wanted = set(tags) if tags else None
    out = []
    for a in articles:
        if a.meta.get("hub") or a.id in exclude_ids:
            continue
        if exclude_urls and a.url and a.url in exclude_urls:
            continue
        if lang is not None and a.locale and a.locale.split("-")[0].lower() != lang:
            continue
        if wanted is not None and wanted.isdisjoint(a.tags):
            continue
        out.append(a)
    return out


def freshness_bonus(article: Article, weight: float, half_life_days: float, now: datetime | None = None) -> float:
    """weight * 2^(-age/half_life): a just-updated article gains `weight`, one half-life old gains half."""
    if weight <= 0 or article.updated_at is None:
        return 0.0
    now = now or datetime.now(timezone.utc)
    age_days = max(0.0, (now - article.updated_at).total_seconds() / 86400.0)
    return weight * math.pow(2.0, -age_days / half_life_days)


def mmr_select(candidates: Sequence[Candidate], vectors: np.ndarray, k: int, lam: float) -> list[int]:
    """Maximal marginal relevance: indices of k candidates trading score against similarity to those chosen."""
    return mmr_order(np.array([c.score for c in candidates], dtype=np.float64), vectors, k, lam)


def mmr_order(scores: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> list[int]:
    """`mmr_select` over the candidates' scores as an array (n,), so that a pool kept as arrays needs no Candidate
    objects to be ranked. vectors: (n, D) rows of the same candidates."""
    n = len(scores)
    if n == 0 or k <= 0:
        return []
    scores = np.asarray(scores, dtype=np.float32)  # (n,) ranked in float32, as the scores were computed
    if lam >= 1.0:
        return list(np.argsort(-scores, kind="stable")[:k])
    # Only the chosen rows of the similarity matrix are ever read: k matrix-vector products instead of the
    # (n, n) product, which was most of this function's time with a pool of 100+ candidates.
    chosen: list[int] = []
    relevance = lam * scores  # (n,)
    penalty = np.zeros(n, dtype=np.float32)  # (n,) similarity to the closest chosen candidate (0 before any)
    for step in range(min(k, n)):
        mmr = relevance - (1.0 - lam) * penalty
        mmr[chosen] = -np.inf
        i = int(np.argmax(mmr))
        chosen.append(i)
        sims = vectors @ vectors[i]  # (n,)
        penalty = sims if step == 0 else np.maximum(penalty, sims)
    return chosen


def merge_cold_start(
    trained: Sequence[Candidate],
    zero_shot: Sequence[Candidate],
    catalogue: Collection[str],
    protected: Collection[str] = (),
) -> list[Candidate]:
    """A trained model's ranking with the articles it never saw (outside `catalogue`, added after training) put
    back at the rank the zero-shot intent gives them.

    Both lists are best first. An article new to the model that zero-shot ranks r-th is r-th in the result, so
    it is suggested as often as zero-shot would suggest it; the trained order fills the other places. It takes
    a score a hair above the candidate after it, so whatever ranks by score afterwards (MMR) keeps the order.

    `protected` (protected slots): the leading run of trained candidates whose ids it holds keep their places,
    and a new article zero-shot ranks above them comes right after them instead. A trained model marks the
    successors its log is confident about (`ContentSTAMPConfig.cold_protect`): a step into an article the log
    never saw is one the counts could not predict, and where they are confident the visitor usually takes the
    known successor.
    """
    known = [c for c in trained if c.article.id in catalogue]
    lead = 0
    while lead < len(known) and known[lead].article.id in protected:
        lead += 1
    merged: list[Candidate | None] = list(known[:lead])
    new: list[Candidate] = []
    ki = lead
    for r, c in enumerate(zero_shot):
        if c.article.id in catalogue:
            continue
        while len(merged) < r and ki < len(known):
            merged.append(known[ki])
            ki += 1
        merged.append(None)  # a place for the new article, scored below
        new.append(c)
    merged.extend(known[ki:])
    trailing = len(merged) - 1 - max((i for i, m in enumerate(merged) if m is not None), default=-1)
    # score of the place after the current one; past the end, just below the last trained candidate
    below = (known[-1].score if known else new[-1].score if new else 0.0) - 1e-6 * (trailing + 1)
    out: list[Candidate] = []
    for place in reversed(merged):
        if place is None:
            c = new.pop()
            place = Candidate(c.article, c.relevance, below + 1e-6)
        out.append(place)
        below = place.score
    return out[::-1]
